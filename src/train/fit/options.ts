/**
 * The options of `fit` and `fitTBPTT` and what they accept: models, batches and batch sources,
 * optimizers and schedules (as interfaces, so that any object with the methods works),
 * callbacks and periodic checkpoints.
 */

import type { Tensor } from '../../tensor.js'
import type { EpochSource } from '../../data/loader.js'
import type { TokenStream } from '../../data/stream.js'
import type { ChunkLoss, StatefulModel } from '../tbptt.js'
import type { Checkpoint, StatefulModule } from '../checkpoint.js'
import type { EpochEndEvent, StepEvent, ValidationEvent } from './events.js'
import type { EarlyStoppingOptions } from './early-stopping.js'
import { optionKeys, type OptionKeyTable } from '../../validate.js'

/** A learning-rate schedule as `fit` drives it. */
export interface SchedulerLike {
  /** One schedule step; `metric` is passed for plateau schedules. */
  step(metric?: number): unknown
  stateDict?(): unknown
  loadStateDict?(state: unknown): unknown
}

/** The optimizer interface `fit` needs (every optimizer of `optim` has it). */
export interface OptimizerLike {
  zeroGrad(): void
  /** May return a promise (the native optimizers' backpressure); it is awaited. */
  step(): unknown
  lr?: number
  readonly params?: readonly Tensor[]
  stateDict?(): unknown
  loadStateDict?(state: unknown): unknown
}

/** Periodic checkpoints during a run. */
export interface FitCheckpointOptions {
  /** File to write (overwritten atomically each time). */
  path: string
  /** Write every this many steps. */
  everySteps?: number
  /** Write at the end of every epoch (default: true when `everySteps` is not given). */
  atEpochEnd?: boolean
  /** Saved as the checkpoint's `config`. */
  config?: unknown
  /** Saved as the checkpoint's `metadata` (e.g. `{ vocab: vocab.toJSON() }`). */
  metadata?: unknown
}

/** The keys of {@link FitCheckpointOptions}. @internal */
export const FIT_CHECKPOINT_OPTIONS = optionKeys<FitCheckpointOptions>({ path: true, everySteps: true, atEpochEnd: true, config: true, metadata: true })

/** Options shared by {@link fit} and {@link fitTBPTT}. */
export interface CommonFitOptions {
  optimizer: OptimizerLike
  /** Passes over the data (default 1). */
  epochs?: number
  /** Stop after this many optimizer steps in total (counting those before a resume). */
  maxSteps?: number
  /** Clip the global gradient norm to this before each step (`clipGradNorm`). */
  clipGradNorm?: number
  /** A learning-rate schedule, stepped per `schedulerInterval`. */
  scheduler?: SchedulerLike
  /**
   * `'epoch'` (default): `scheduler.step(metric)` after each epoch, with the early-stopping
   * metric (or the validation / training loss); `'step'`: `scheduler.step()` after every step.
   */
  schedulerInterval?: 'epoch' | 'step'
  earlyStopping?: EarlyStoppingOptions
  /** Stops the run between two steps; it then resolves with `aborted: true`. */
  signal?: AbortSignal
  /** Also compute the training accuracy (reads every step's outputs; default false). */
  trainAccuracy?: boolean
  /** Validate every this many steps too (default: only at epoch ends). */
  validateEverySteps?: number
  onStep?: (ev: StepEvent) => unknown
  onValidation?: (ev: ValidationEvent) => unknown
  onEpochEnd?: (ev: EpochEndEvent) => unknown
  checkpoint?: FitCheckpointOptions
  /**
   * Resume from a checkpoint (a path, or what `loadCheckpoint` returned) written by a run with
   * the same data and options: restores the model, optimizer, scheduler, global generator and
   * the position in the data, and continues bit-identically.
   */
  resume?: string | Checkpoint
}

const COMMON_FIT_TABLE = {
  optimizer: true,
  epochs: true,
  maxSteps: true,
  clipGradNorm: true,
  scheduler: true,
  schedulerInterval: true,
  earlyStopping: true,
  signal: true,
  trainAccuracy: true,
  validateEverySteps: true,
  onStep: true,
  onValidation: true,
  onEpochEnd: true,
  checkpoint: true,
  resume: true,
} as const satisfies OptionKeyTable<CommonFitOptions>

/**
 * What a batch feeds the model: one tensor, or several by name (a seq2seq batch
 * `{ source, sourceLengths, targetIn }`). Written as a bound on `X` so that an interface with
 * tensor fields qualifies, not only a type with an index signature.
 */
export type BatchInput<X = unknown> = Tensor | { readonly [K in keyof X]: Tensor }

/** A model for {@link fit}: `forward(x)` returns the output tensor (or `{ output }`); `x` is the batch's input, a tensor or a record of tensors. */
export interface FitModel<X extends BatchInput<X> = Tensor> {
  forward(x: X): unknown
  parameters?(): Tensor[]
  train?(mode?: boolean): unknown
  eval?(): unknown
}

/** A batch of {@link fit}: the model's input `x` (one tensor or several by name) and the target `y`. */
export interface Batch<X extends BatchInput<X> = Tensor> {
  x: X
  y: Tensor
}

/**
 * Where batches come from, for each epoch: a {@link EpochSource} (such as `DataLoader`, whose
 * order is a function of the seed and the epoch), a function `(epoch, skip) => iterable`, or a
 * plain (async) iterable, re-iterated every epoch (an array works; a one-shot generator gives
 * one epoch).
 */
export type BatchSource<B = Batch> =
  | EpochSource<B>
  | ((epoch: number, skip: number) => Iterable<B> | AsyncIterable<B>)
  | Iterable<B>
  | AsyncIterable<B>

/** Options of {@link fit}. */
export interface FitOptions<X extends BatchInput<X> = Tensor> extends CommonFitOptions {
  data: BatchSource<Batch<X>>
  /**
   * `loss(output, y)` → a scalar tensor, the mean over the batch's (non-ignored) targets.
   * Default: `crossEntropy(output, y, { ignoreIndex })` (class axis last). A loss of your own
   * must ignore the same targets as `ignoreIndex` does.
   */
  loss?: (output: Tensor, target: Tensor) => Tensor
  /**
   * The target id that marks padding (e.g. `TokenVocab.PAD`): targets equal to it are not
   * counted. The epoch and validation losses are then means over the other targets (each
   * batch's loss weighted by its number of them, not by `y.size`), the accuracy counts only
   * them, and the step events' `count` is that number. Needs int32 targets.
   */
  ignoreIndex?: number
  validation?: BatchSource<Batch<X>>
  /** How to run the model (default `model.forward(x)`, taking `.output` of an object). */
  forward?: (x: X) => unknown
}

/** The keys of {@link FitOptions}. @internal */
export const FIT_OPTIONS = optionKeys<FitOptions>({ ...COMMON_FIT_TABLE, data: true, loss: true, ignoreIndex: true, validation: true, forward: true })

/** A model for {@link fitTBPTT}. */
export type FitTBPTTModel = StatefulModel & Partial<Pick<FitModel, 'parameters' | 'train' | 'eval'>> & Partial<StatefulModule>

/** Options of {@link fitTBPTT}. */
export interface FitTBPTTOptions extends CommonFitOptions {
  /** The training stream; its `seqLen` is k1. */
  stream: TokenStream
  /** Steps backpropagated through at each update (default k1 = `stream.seqLen`). */
  k2?: number
  /** Chunk loss (default: mean cross-entropy of logits `[T, B, V]` against int32 `[T, B]`). */
  loss?: ChunkLoss
  /** A validation stream, evaluated with the state carried across its chunks. */
  validation?: TokenStream
  /** Batch axis of the state tensors (default 1). */
  stateBatchAxis?: number
}

/** The keys of {@link FitTBPTTOptions}. @internal */
export const FIT_TBPTT_OPTIONS = optionKeys<FitTBPTTOptions>({ ...COMMON_FIT_TABLE, stream: true, k2: true, loss: true, validation: true, stateBatchAxis: true })
