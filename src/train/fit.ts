/**
 * Training loops: {@link fit} over batches `{ x, y }` and {@link fitTBPTT} over a token stream
 * with truncated BPTT. Both are async and never block the event loop: each step enqueues its
 * work and then awaits `optimizer.step()`, which resolves when the *previous* step has run, so
 * JS prepares step n+1 while step n computes. The loss of a step is read (asynchronously) one
 * step later, when it is already computed, so metrics never stall the pipeline.
 *
 * Both return a {@link FitRun}: `await` it for the {@link FitResult}, or iterate it for the
 * progress events (`for await (const ev of fit(...))`), or both.
 */

import { Tensor } from '../tensor.js'
import { crossEntropy as opsCrossEntropy } from '../ops/loss.js'
import { noGrad } from '../ops/grad.js'
import { reshape } from '../ops/shape.js'
import { seedState } from '../ops/random.js'
import { tensor } from '../ops/factories.js'
import { ValueError } from '../errors.js'
import { deviceOfFirst, modelDevice, type Device } from '../device.js'
import { crossEntropy } from '../nn/loss.js'
import { clipGradNorm } from '../optim/clip.js'
import type { EpochSource } from '../data/loader.js'
import type { TokenChunk, TokenStream } from '../data/stream.js'
import { TBPTT, type ChunkLoss, type RecurrentState, type StatefulModel, type TBPTTMeta } from './tbptt.js'
import { loadCheckpoint, saveCheckpoint, type Checkpoint, type HasStateDict, type StatefulModule } from './checkpoint.js'

// ---- public types ---------------------------------------------------------------------------------

/** Aggregated metrics over a number of targets. */
export interface Metrics {
  /** Mean loss per target (the losses of the batches weighted by their number of targets). */
  loss: number
  /** `exp(loss)`, for int32 (class) targets. */
  perplexity?: number
  /** Fraction of targets whose arg-max output is the target, for int32 targets (when computed). */
  accuracy?: number
  /** Number of targets (`y.size` summed). */
  count: number
}

/** After each optimizer step (delivered one step late, once its loss is read). */
export interface StepEvent {
  type: 'step'
  /** Optimizer steps done, this one included (1-based). */
  step: number
  /** Epoch (0-based). */
  epoch: number
  /** Batch or chunk index within the epoch (0-based). */
  batch: number
  /** This step's loss. */
  loss: number
  /** `exp(loss)` for int32 targets. */
  perplexity?: number
  /** Training accuracy of this step, with `trainAccuracy: true`. */
  accuracy?: number
  /** Targets in this step. */
  count: number
  /** Learning rate used by this step. */
  lr?: number
  /** Targets per second, measured between consecutive step events. */
  tokensPerSec: number
  /** Milliseconds since the run started. */
  elapsedMs: number
}

/** After a validation pass. */
export interface ValidationEvent {
  type: 'validation'
  step: number
  epoch: number
  metrics: Metrics
}

/** At the end of each complete epoch (after its validation). */
export interface EpochEndEvent {
  type: 'epochEnd'
  epoch: number
  step: number
  /** Training metrics over the epoch, with the epoch's throughput. */
  train: Metrics & { tokensPerSec: number }
  validation?: Metrics
  durationMs: number
  lr?: number
}

/** After a checkpoint has been written. */
export interface CheckpointEvent {
  type: 'checkpoint'
  step: number
  path: string
}

/** The last event: the run is over. */
export interface EndEvent {
  type: 'end'
  result: FitResult
}

/** The progress events of a {@link FitRun}, in order. */
export type FitEvent = StepEvent | ValidationEvent | EpochEndEvent | CheckpointEvent | EndEvent

/** Why a run stopped. */
export type StopReason = 'completed' | 'maxSteps' | 'earlyStopping' | 'aborted'

/** What a {@link FitRun} resolves to. */
export interface FitResult {
  reason: StopReason
  /** True when an AbortSignal stopped it (between two steps; the model is intact and usable). */
  aborted: boolean
  /** True when early stopping ended it. */
  stoppedEarly: boolean
  /** Optimizer steps done (including those before a resume). */
  steps: number
  /** Complete epochs done. */
  epochs: number
  /** The epoch summaries. */
  history: EpochEndEvent[]
  /** The loss of the last step. */
  lastLoss?: number
  /** The best value of the early-stopping metric and its epoch. */
  best?: { monitor: string; value: number; epoch: number }
}

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

/** Early stopping: stop when `monitor` has not improved for `patience` epochs. */
export interface EarlyStoppingOptions {
  /**
   * The metric: `'val_loss'` (default with validation data), `'val_accuracy'`,
   * `'val_perplexity'`, or the training `'loss'` (default without), `'accuracy'`, `'perplexity'`.
   */
  monitor?: string
  /** Stop after this many epochs in a row without improvement (Keras' semantics; 0 acts as 1). */
  patience: number
  /** Smallest change that counts as an improvement (default 0). */
  minDelta?: number
  /** `'min'` or `'max'` (default: max for accuracy, min otherwise). */
  mode?: 'min' | 'max'
  /** When stopping, load back the parameters of the best epoch (default false). */
  restoreBest?: boolean
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

/** A model for {@link fit}: `forward(x)` returns the output tensor (or `{ output }`). */
export interface FitModel {
  forward(x: Tensor): unknown
  parameters?(): Tensor[]
  train?(mode?: boolean): unknown
  eval?(): unknown
}

/** A batch of {@link fit}. */
export interface Batch {
  x: Tensor
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
export interface FitOptions extends CommonFitOptions {
  data: BatchSource
  /** `loss(output, y)` → a scalar tensor (mean over the batch). */
  loss: (output: Tensor, target: Tensor) => Tensor
  validation?: BatchSource
  /** How to run the model (default `model.forward(x)`, taking `.output` of an object). */
  forward?: (x: Tensor) => unknown
}

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

// ---- events ------------------------------------------------------------------------------------

class Subscription<T> implements AsyncIterableIterator<T> {
  readonly queue: T[] = []
  waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null
  done = false
  error: unknown = undefined
  constructor(readonly unsubscribe: (s: Subscription<T>) => void) {}
  push(v: T): void {
    if (this.done) return
    if (this.waiter) {
      const w = this.waiter
      this.waiter = null
      w.resolve({ value: v, done: false })
    } else {
      this.queue.push(v)
    }
  }
  end(error?: unknown): void {
    if (this.done) return
    this.done = true
    this.error = error
    if (this.waiter && this.queue.length === 0) {
      const w = this.waiter
      this.waiter = null
      if (error !== undefined) w.reject(error)
      else w.resolve({ value: undefined, done: true })
    }
  }
  next(): Promise<IteratorResult<T>> {
    if (this.queue.length > 0) return Promise.resolve({ value: this.queue.shift()!, done: false })
    if (this.done) {
      if (this.error !== undefined) {
        const e = this.error
        this.error = undefined
        return Promise.reject(e)
      }
      return Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }))
  }
  return(): Promise<IteratorResult<T>> {
    this.done = true
    this.queue.length = 0
    this.unsubscribe(this)
    return Promise.resolve({ value: undefined, done: true })
  }
  [Symbol.asyncIterator](): this {
    return this
  }
}

/**
 * A running training loop. `await run` (or `run.result`) gives the {@link FitResult};
 * `for await (const ev of run)` (or `run.events()`) gives the {@link FitEvent}s from the moment
 * the iterator is created. The loop starts on the next microtask, so an iterator created right
 * after `fit(...)` returns sees every event; iterators see the events in order, ending with
 * `'end'`; breaking out of one stops only that iterator, not the run (use an AbortSignal).
 */
export class FitRun implements PromiseLike<FitResult>, AsyncIterable<FitEvent> {
  readonly result: Promise<FitResult>
  readonly #subs = new Set<Subscription<FitEvent>>()

  /** @internal */
  constructor(body: (emit: (ev: FitEvent) => void) => Promise<FitResult>) {
    const emit = (ev: FitEvent) => {
      for (const s of this.#subs) s.push(ev)
    }
    this.result = Promise.resolve()
      .then(() => body(emit))
      .then(
        (r) => {
          emit({ type: 'end', result: r })
          for (const s of this.#subs) s.end()
          return r
        },
        (e) => {
          for (const s of this.#subs) s.end(e)
          throw e
        },
      )
    // The error also reaches iterators and every `then`; do not report it as unhandled here.
    this.result.catch(() => {})
  }

  then<A = FitResult, B = never>(
    onFulfilled?: ((value: FitResult) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.result.then(onFulfilled, onRejected)
  }

  /** The progress events from now on, ending with `'end'` (or throwing the run's error). */
  events(): AsyncIterableIterator<FitEvent> {
    const s = new Subscription<FitEvent>((x) => this.#subs.delete(x))
    this.#subs.add(s)
    return s
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<FitEvent> {
    return this.events()
  }
}

// ---- metrics ------------------------------------------------------------------------------------

/** Number of rows of `out` (`[N, C]` flattened) whose arg-max equals `y` (int32 `[N]`). */
function countCorrect(out: ArrayLike<number>, y: ArrayLike<number>): number {
  const N = y.length
  if (N === 0 || out.length % N !== 0) return 0
  const C = out.length / N
  let correct = 0
  for (let n = 0; n < N; n++) {
    const base = n * C
    let best = 0
    let bv = out[base]!
    for (let c = 1; c < C; c++) {
      const v = out[base + c]!
      if (v > bv) {
        bv = v
        best = c
      }
    }
    if (best === y[n]) correct++
  }
  return correct
}

/** Whether accuracy can be computed for these outputs and targets. */
function isClassification(out: Tensor | null, y: Tensor): boolean {
  return y.dtype === 'int32' && out !== null && out.size === y.size * (out.shape[out.rank - 1] ?? 0) && out.rank === y.rank + 1
}

class Accumulator {
  lossSum = 0
  count = 0
  correct = 0
  accCount = 0
  classes = false
  add(loss: number, count: number): void {
    this.lossSum += loss * count
    this.count += count
  }
  metrics(): Metrics {
    const loss = this.count > 0 ? this.lossSum / this.count : NaN
    const m: Metrics = { loss, count: this.count }
    if (this.classes) m.perplexity = Math.exp(loss)
    if (this.accCount > 0) m.accuracy = this.correct / this.accCount
    return m
  }
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** How to run the model (default `model.forward(x)`, taking `.output` of an object). */
  forward?: (x: Tensor) => unknown
  /** Compute the accuracy for int32 targets (default true). */
  accuracy?: boolean
  /** Stop early (the metrics cover the batches done). */
  signal?: AbortSignal
}

function outputOf(r: unknown, what: string): Tensor {
  if (r instanceof Tensor) return r
  const o = (r as { output?: unknown } | null)?.output
  if (o instanceof Tensor) return o
  throw new ValueError(what, 'the model must return a Tensor or { output: Tensor }')
}

/**
 * Evaluates `model` on batches without history and in eval mode (restoring the previous mode):
 * mean loss per target, perplexity and accuracy for int32 targets. Each batch's loss is read
 * while the next one computes.
 */
export async function evaluate(
  model: FitModel,
  data: Iterable<Batch> | AsyncIterable<Batch>,
  loss: (output: Tensor, target: Tensor) => Tensor,
  options: EvaluateOptions = {},
): Promise<Metrics> {
  const fwd = options.forward ?? ((x: Tensor) => model.forward(x))
  const wantAcc = options.accuracy ?? true
  const device = modelDevice(model)
  const acc = new Accumulator()
  const wasTraining = (model as { training?: boolean }).training
  model.eval?.()
  let pending: { loss: Tensor; out: Tensor; y: Tensor } | null = null
  const settle = async (p: { loss: Tensor; out: Tensor; y: Tensor }) => {
    const cls = isClassification(p.out, p.y)
    acc.classes ||= p.y.dtype === 'int32'
    acc.add(await p.loss.item(), p.y.size)
    if (wantAcc && cls) {
      const [o, t] = await Promise.all([p.out.data(), p.y.data()])
      acc.correct += countCorrect(o, t)
      acc.accCount += p.y.size
    }
    p.loss.dispose()
    p.out.dispose()
  }
  try {
    for await (const b of data) {
      if (options.signal?.aborted) break
      const { out, l } = noGrad(() => {
        const x = onDevice(b.x, device)
        const y = onDevice(b.y, device)
        const out = outputOf(fwd(x), 'evaluate')
        const l = loss(out, y)
        if (x !== b.x) x.dispose()
        if (y !== b.y) y.dispose()
        return { out, l }
      })
      if (pending) await settle(pending)
      pending = { loss: l, out, y: b.y }
    }
    if (pending) await settle(pending)
  } finally {
    if (wasTraining !== false) model.train?.(true)
  }
  return acc.metrics()
}

/** Options of {@link evaluateStream}. */
export interface EvaluateStreamOptions {
  /** Compute the accuracy (default true). */
  accuracy?: boolean
  /** Batch axis of the state tensors (default 1). */
  stateBatchAxis?: number
  /** Stop early (the metrics cover the chunks done). */
  signal?: AbortSignal
}

/** The keep-mask product that zeroes the rows of `state` marked in `reset`. */
function resetRows(state: RecurrentState | null, reset: Uint8Array | null, axis: number): RecurrentState | null {
  if (state === null || reset === null) return state
  let any = false
  let all = true
  for (const r of reset) {
    any ||= r !== 0
    all &&= r !== 0
  }
  if (!any) return state
  if (all) return null
  return state.map((s) => {
    const shape = s.shape.map((_, i) => (i === axis ? reset.length : 1))
    const keep = Array.from(reset, (r) => (r ? 0 : 1))
    return s.mul(tensor(s.dtype === 'float64' ? Float64Array.from(keep) : Float32Array.from(keep), shape, { device: s.device }))
  })
}

/** A {@link TokenChunk} as tensors: `x`, `y` int32 `[steps, B]`, on `device` (default `'cpu'`). */
export function chunkTensors(c: TokenChunk, device: Device = 'cpu'): { x: Tensor; y: Tensor; reset: Uint8Array | null } {
  return {
    x: tensor(c.x, [c.steps, c.batchSize], { dtype: 'int32', device }),
    y: tensor(c.y, [c.steps, c.batchSize], { dtype: 'int32', device }),
    reset: c.reset,
  }
}

/** `t` on `device`: itself when already there, else a copy (without history). */
function onDevice(t: Tensor, device: Device): Tensor {
  return t.device === device ? t : noGrad(() => t.to(device))
}

/**
 * Evaluates a {@link StatefulModel} over a token stream (one pass), carrying the state across
 * chunks (and resetting the rows the stream marks), without history and in eval mode.
 */
export async function evaluateStream(
  model: StatefulModel & Partial<Pick<FitModel, 'train' | 'eval'>>,
  stream: TokenStream,
  loss: ChunkLoss = defaultChunkLoss,
  options: EvaluateStreamOptions = {},
): Promise<Metrics> {
  const wantAcc = options.accuracy ?? true
  const axis = options.stateBatchAxis ?? 1
  const device = modelDevice(model)
  const acc = new Accumulator()
  const wasTraining = (model as { training?: boolean }).training
  model.eval?.()
  let state: RecurrentState | null = null
  let pending: { loss: Tensor; out: Tensor; y: Tensor } | null = null
  const settle = async (p: { loss: Tensor; out: Tensor; y: Tensor }) => {
    acc.classes = true
    acc.add(await p.loss.item(), p.y.size)
    if (wantAcc && isClassification(p.out, p.y)) {
      const [o, t] = await Promise.all([p.out.data(), p.y.data()])
      acc.correct += countCorrect(o, t)
      acc.accCount += p.y.size
    }
    p.loss.dispose()
    p.out.dispose()
    p.y.dispose()
  }
  try {
    for await (const c of stream.chunks(0)) {
      if (options.signal?.aborted) break
      const { x, y, reset } = chunkTensors(c, device)
      const r = noGrad(() => {
        const r = model.forward(x, resetRows(state, reset, axis))
        return { out: r.output, state: r.state, l: loss(r.output, y) }
      })
      x.dispose()
      state = r.state
      if (pending) await settle(pending)
      pending = { loss: r.l, out: r.out, y }
    }
    if (pending) await settle(pending)
  } finally {
    if (wasTraining !== false) model.train?.(true)
  }
  return acc.metrics()
}

/** Mean cross-entropy of logits `[T, B, V]` against int32 targets `[T, B]`. */
export function defaultChunkLoss(output: Tensor, target: Tensor): Tensor {
  if (output.rank !== 3 || target.rank !== 2) return crossEntropy(output, target)
  // nn's crossEntropy, with its reshaped copies freed at once rather than at the next GC.
  const [T, B, V] = output.shape as [number, number, number]
  const o2 = reshape(output, [T * B, V])
  const t1 = reshape(target, [T * B])
  const l = opsCrossEntropy(o2, t1)
  o2.dispose()
  t1.dispose()
  return l
}

// ---- the loop -------------------------------------------------------------------------------------

/** The JSON state of a loop, saved in checkpoints under `fit`. */
interface LoopMeta {
  epoch: number
  batch: number
  best: number | null
  bestEpoch: number
  wait: number
  history: EpochEndEvent[]
}

interface StepOut {
  loss: Tensor
  count: number
  output: Tensor | null
  target: Tensor
  cleanup?: () => void
}

/** What differs between fit and fitTBPTT. */
interface Task<I> {
  model: { train?(mode?: boolean): unknown; eval?(): unknown } & Partial<StatefulModule>
  params: readonly Tensor[]
  items(epoch: number, skip: number): Iterable<I> | AsyncIterable<I>
  /** At the start of an epoch (not when resuming in its middle). */
  startEpoch(epoch: number): void
  trainStep(item: I): StepOut
  validate: ((signal?: AbortSignal) => Promise<Metrics>) | null
  extraState(): Record<string, { tensors?: Record<string, Tensor>; meta?: unknown }>
  loadExtraState(ck: Checkpoint): void
}

function checkPositive(what: string, v: unknown, integer = true): number {
  if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isInteger(v))) {
    throw new ValueError('fit', `${what} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`)
  }
  return v
}

function checkCommon(o: CommonFitOptions, hasValidation: boolean) {
  if (!o.optimizer || typeof o.optimizer.step !== 'function' || typeof o.optimizer.zeroGrad !== 'function') {
    throw new ValueError('fit', 'options.optimizer must have zeroGrad() and step()')
  }
  const epochs = o.epochs === undefined ? 1 : checkPositive('epochs', o.epochs)
  const maxSteps = o.maxSteps === undefined ? Infinity : checkPositive('maxSteps', o.maxSteps)
  if (o.clipGradNorm !== undefined) checkPositive('clipGradNorm', o.clipGradNorm, false)
  if (o.validateEverySteps !== undefined) checkPositive('validateEverySteps', o.validateEverySteps)
  if (o.checkpoint) {
    if (typeof o.checkpoint.path !== 'string' || o.checkpoint.path === '') throw new ValueError('fit', 'checkpoint.path must be a file path')
    if (o.checkpoint.everySteps !== undefined) checkPositive('checkpoint.everySteps', o.checkpoint.everySteps)
  }
  const interval = o.schedulerInterval ?? 'epoch'
  if (interval !== 'epoch' && interval !== 'step') throw new ValueError('fit', `schedulerInterval must be 'epoch' or 'step', got '${String(interval)}'`)
  let es: Required<Omit<EarlyStoppingOptions, 'monitor'>> & { monitor: string } | null = null
  if (o.earlyStopping) {
    const e = o.earlyStopping
    const monitor = e.monitor ?? (hasValidation ? 'val_loss' : 'loss')
    const known = ['loss', 'accuracy', 'perplexity']
    const base = monitor.startsWith('val_') ? monitor.slice(4) : monitor
    if (!known.includes(base)) throw new ValueError('fit', `earlyStopping.monitor must be one of ${known.flatMap((k) => [k, `val_${k}`]).join(', ')}; got '${monitor}'`)
    if (monitor.startsWith('val_') && !hasValidation) throw new ValueError('fit', `earlyStopping.monitor '${monitor}' needs validation data`)
    if (!Number.isInteger(e.patience) || e.patience < 0) throw new ValueError('fit', `earlyStopping.patience must be an integer ≥ 0, got ${String(e.patience)}`)
    es = {
      monitor,
      patience: e.patience,
      minDelta: e.minDelta ?? 0,
      mode: e.mode ?? (base === 'accuracy' ? 'max' : 'min'),
      restoreBest: e.restoreBest ?? false,
    }
  }
  return { epochs, maxSteps, interval, es }
}

function metricOf(name: string, train: Metrics, val: Metrics | undefined): number | undefined {
  const m = name.startsWith('val_') ? val : train
  const key = (name.startsWith('val_') ? name.slice(4) : name) as 'loss' | 'accuracy' | 'perplexity'
  return m?.[key]
}

async function* iterate<I>(src: Iterable<I> | AsyncIterable<I>): AsyncGenerator<I> {
  yield* src as AsyncIterable<I>
}

function runLoop<I>(task: Task<I>, o: CommonFitOptions, hasValidation: boolean): FitRun {
  const { epochs, maxSteps, interval, es } = checkCommon(o, hasValidation)
  const opt = o.optimizer
  return new FitRun(async (emit) => {
    const t0 = performance.now()
    let step = 0
    let epoch = 0
    let skip = 0
    let best: number | null = null
    let bestEpoch = -1
    let wait = 0
    let bestParams: Tensor[] | null = null
    const history: EpochEndEvent[] = []
    let lastLoss: number | undefined
    let reason: StopReason = 'completed'

    if (o.resume !== undefined) {
      const ck = typeof o.resume === 'string' ? await loadCheckpoint(o.resume) : o.resume
      if (!task.model.loadStateDict) throw new ValueError('fit', 'resuming needs a model with loadStateDict()')
      ck.restore(task.model as StatefulModule, o.optimizer as HasStateDict, (o.scheduler as HasStateDict | undefined) ?? null)
      const meta = ck.extra.fit?.meta as LoopMeta | undefined
      if (!meta) throw new ValueError('fit', `'${ck.path}' was not written by fit (no 'fit' state)`)
      step = ck.step
      epoch = meta.epoch
      skip = meta.batch
      best = meta.best
      bestEpoch = meta.bestEpoch
      wait = meta.wait
      history.push(...meta.history)
      if (skip > 0) task.loadExtraState(ck)
    }

    const save = async (path: string, ep: number, batch: number) => {
      const meta: LoopMeta = { epoch: ep, batch, best, bestEpoch, wait, history }
      await saveCheckpoint(path, {
        model: task.model as StatefulModule,
        optimizer: typeof opt.stateDict === 'function' ? (opt as HasStateDict) : null,
        scheduler: o.scheduler && typeof o.scheduler.stateDict === 'function' ? (o.scheduler as HasStateDict) : null,
        step,
        rng: seedState(),
        config: o.checkpoint?.config ?? null,
        metadata: o.checkpoint?.metadata ?? null,
        extra: { fit: { meta }, ...(batch > 0 ? task.extraState() : {}) },
      })
      emit({ type: 'checkpoint', step, path })
    }

    let lastEventAt = performance.now()
    type Pending = StepOut & { step: number; epoch: number; batch: number; lr: number | undefined }
    let pending: Pending | null = null
    let acc = new Accumulator()

    const settle = async (p: Pending) => {
      const loss = await p.loss.item()
      lastLoss = loss
      const cls = p.target.dtype === 'int32'
      acc.classes ||= cls
      acc.add(loss, p.count)
      let accuracy: number | undefined
      if (o.trainAccuracy && p.output && isClassification(p.output, p.target)) {
        const [out, y] = await Promise.all([p.output.data(), p.target.data()])
        const c = countCorrect(out, y)
        acc.correct += c
        acc.accCount += p.target.size
        accuracy = c / p.target.size
      }
      p.loss.dispose()
      p.output?.dispose()
      p.cleanup?.()
      const now = performance.now()
      const ev: StepEvent = {
        type: 'step',
        step: p.step,
        epoch: p.epoch,
        batch: p.batch,
        loss,
        count: p.count,
        tokensPerSec: p.count / Math.max(1e-9, (now - lastEventAt) / 1000),
        elapsedMs: now - t0,
      }
      lastEventAt = now
      if (cls) ev.perplexity = Math.exp(loss)
      if (accuracy !== undefined) ev.accuracy = accuracy
      if (p.lr !== undefined) ev.lr = p.lr
      emit(ev)
      await o.onStep?.(ev)
    }
    const flush = async () => {
      const p = pending
      pending = null
      if (p) await settle(p)
    }
    const validate = async (ep: number): Promise<Metrics | undefined> => {
      if (!task.validate) return undefined
      const metrics = await task.validate(o.signal)
      const ev: ValidationEvent = { type: 'validation', step, epoch: ep, metrics }
      emit(ev)
      await o.onValidation?.(ev)
      return metrics
    }

    task.model.train?.(true)
    try {
      outer: for (; epoch < epochs; epoch++) {
        const epochStart = performance.now()
        acc = new Accumulator()
        if (skip === 0) task.startEpoch(epoch)
        let batch = skip
        let any = false
        for await (const item of iterate(task.items(epoch, skip))) {
          if (o.signal?.aborted) {
            reason = 'aborted'
            break outer
          }
          if (step >= maxSteps) {
            reason = 'maxSteps'
            break outer
          }
          any = true
          opt.zeroGrad()
          const out = task.trainStep(item)
          if (o.clipGradNorm !== undefined) clipGradNorm(task.params, o.clipGradNorm).dispose()
          const lr = opt.lr
          await opt.step()
          step++
          if (interval === 'step') o.scheduler?.step()
          const prev = pending
          pending = { ...out, step, epoch, batch, lr }
          batch++
          if (prev) await settle(prev)
          if (o.validateEverySteps !== undefined && step % o.validateEverySteps === 0) {
            await flush()
            await validate(epoch)
          }
          if (o.checkpoint?.everySteps !== undefined && step % o.checkpoint.everySteps === 0) {
            await save(o.checkpoint.path, epoch, batch)
          }
        }
        await flush()
        if (!any && skip === 0) {
          throw new ValueError('fit', `the data yielded no batch in epoch ${epoch}: for several epochs pass an array, a DataLoader or a function (epoch, skip) => iterable`)
        }
        skip = 0
        if (o.signal?.aborted) {
          reason = 'aborted'
          break
        }
        // ---- epoch end
        const train = { ...acc.metrics(), tokensPerSec: acc.count / Math.max(1e-9, (performance.now() - epochStart) / 1000) }
        const validation = await validate(epoch)
        if (o.signal?.aborted) {
          reason = 'aborted'
          break
        }
        const ev: EpochEndEvent = { type: 'epochEnd', epoch, step, train, durationMs: performance.now() - epochStart }
        if (validation) ev.validation = validation
        if (opt.lr !== undefined) ev.lr = opt.lr
        history.push(ev)
        let stop = false
        let monitored: number | undefined
        if (es) {
          monitored = metricOf(es.monitor, train, validation)
          if (monitored !== undefined && Number.isFinite(monitored)) {
            const improved = best === null || (es.mode === 'min' ? monitored < best - es.minDelta : monitored > best + es.minDelta)
            if (improved) {
              best = monitored
              bestEpoch = epoch
              wait = 0
              if (es.restoreBest) {
                for (const t of bestParams ?? []) t.dispose()
                bestParams = noGrad(() => task.params.map((p) => p.scale(1)))
              }
            } else if (++wait >= Math.max(1, es.patience)) {
              stop = true
            }
          }
        }
        if (interval === 'epoch' && o.scheduler) {
          o.scheduler.step(monitored ?? validation?.loss ?? train.loss)
        }
        emit(ev)
        await o.onEpochEnd?.(ev)
        if (o.checkpoint && (o.checkpoint.atEpochEnd ?? o.checkpoint.everySteps === undefined)) {
          await save(o.checkpoint.path, epoch + 1, 0)
        }
        if (stop) {
          reason = 'earlyStopping'
          if (bestParams) task.params.forEach((p, i) => p.assign(bestParams![i]!))
          epoch++
          break
        }
      }
    } finally {
      // Leave the model usable whatever happened: read the last loss, back to train mode.
      if (pending) await flush().catch(() => {})
      task.model.train?.(true)
    }
    const result: FitResult = {
      reason,
      aborted: reason === 'aborted',
      stoppedEarly: reason === 'earlyStopping',
      steps: step,
      epochs: history.length,
      history,
    }
    if (lastLoss !== undefined) result.lastLoss = lastLoss
    if (es && best !== null) result.best = { monitor: es.monitor, value: best, epoch: bestEpoch }
    return result
  })
}

function paramsOf(what: string, model: { parameters?(): Tensor[] }, opt: OptimizerLike): readonly Tensor[] {
  if (opt.params) return opt.params
  if (typeof model.parameters === 'function') return model.parameters()
  throw new ValueError(what, 'cannot find the parameters: give an optimizer with .params or a model with parameters()')
}

function sourceItems<B>(src: BatchSource<B>, epoch: number, skip: number): Iterable<B> | AsyncIterable<B> {
  if (typeof src === 'function') return src(epoch, skip)
  if (src && typeof (src as EpochSource<B>).epoch === 'function') return (src as EpochSource<B>).epoch(epoch, skip)
  const it = src as Iterable<B> | AsyncIterable<B>
  if (skip === 0) return it
  return (async function* () {
    let i = 0
    for await (const b of it as AsyncIterable<B>) if (i++ >= skip) yield b
  })()
}

function checkSource(what: string, src: unknown): void {
  const ok =
    typeof src === 'function' ||
    (src !== null &&
      typeof src === 'object' &&
      (typeof (src as EpochSource<unknown>).epoch === 'function' || Symbol.iterator in src || Symbol.asyncIterator in src))
  if (!ok) throw new ValueError('fit', `${what} must be an iterable, an async iterable, a DataLoader or a function (epoch, skip) => iterable`)
}

/**
 * Trains `model` on batches `{ x, y }`: for each batch, `zeroGrad`, `loss(forward(x), y)`,
 * `backward`, optional gradient clipping, `await optimizer.step()`. Epochs, validation at each
 * epoch end, metrics (loss, perplexity and accuracy for int32 targets, targets/s), callbacks,
 * progress events, early stopping, periodic checkpoints and resuming, and cancellation by
 * AbortSignal (between steps: the model stays usable). Batches on another device than the
 * model's parameters (a `DataLoader` makes them on the CPU) are copied to it for each step.
 *
 * ```ts
 * const run = fit(model, { data: loader, loss: crossEntropy, optimizer: opt, epochs: 10, validation: valBatches })
 * for await (const ev of run) if (ev.type === 'epochEnd') console.log(ev.epoch, ev.train.loss, ev.validation?.loss)
 * const result = await run
 * ```
 */
export function fit(model: FitModel, options: FitOptions): FitRun {
  if (model === null || typeof model !== 'object' || typeof model.forward !== 'function') throw new ValueError('fit', 'model must have forward(x)')
  if (options === null || typeof options !== 'object') throw new ValueError('fit', 'options are required')
  checkSource('options.data', options.data)
  if (options.validation !== undefined) checkSource('options.validation', options.validation)
  if (typeof options.loss !== 'function') throw new ValueError('fit', 'options.loss must be a function (output, target) => scalar Tensor')
  const fwd = options.forward ?? ((x: Tensor) => model.forward(x))
  const validation = options.validation
  const task: Task<Batch> = {
    model: model as Task<Batch>['model'],
    params: paramsOf('fit', model, options.optimizer),
    items: (e, skip) => sourceItems(options.data, e, skip),
    startEpoch: () => {},
    trainStep: (b) => {
      if (!b || !(b.x instanceof Tensor) || !(b.y instanceof Tensor)) throw new ValueError('fit', 'each batch must be { x: Tensor, y: Tensor }')
      // Batches go to the parameters' device (a DataLoader makes them on the CPU).
      const device = deviceOfFirst(task.params)
      const x = onDevice(b.x, device)
      const y = onDevice(b.y, device)
      const out = outputOf(fwd(x), 'fit')
      const l = options.loss(out, y)
      if (x !== b.x) x.dispose()
      if (y !== b.y) y.dispose()
      if (!(l instanceof Tensor) || l.size !== 1) throw new ValueError('fit', 'the loss must return a one-element Tensor')
      l.backward()
      const r: StepOut = { loss: l.detach(), count: b.y.size, output: options.trainAccuracy ? out.detach() : null, target: b.y }
      l.dispose()
      out.dispose()
      return r
    },
    validate: validation
      ? (signal) => {
          const opts: EvaluateOptions = { forward: fwd }
          if (signal) opts.signal = signal
          return evaluate(model, iterate(sourceItems(validation, 0, 0)), options.loss, opts)
        }
      : null,
    extraState: () => ({}),
    loadExtraState: () => {},
  }
  return runLoop(task, options, validation !== undefined)
}

/**
 * Trains a {@link StatefulModel} on a token stream with truncated BPTT(k1, k2), k1 =
 * `stream.seqLen`: each chunk is one optimizer step, the hidden state carries across chunks
 * (detached) and resets where the stream says. An epoch is one pass over the stream; the state
 * starts from zero at each epoch. Validation evaluates the validation stream with the state
 * carried. Checkpoints also save the carried TBPTT state, so a resume mid-stream continues
 * bit-identically. Everything else is as in {@link fit}.
 *
 * ```ts
 * const stream = await fileStream('input.txt', { batchSize: 32, seqLen: 64, vocab })
 * const model = new RecurrentLM({ vocabSize: vocab.size, hiddenSize: 256 })
 * const result = await fitTBPTT(model, { stream, k2: 128, optimizer: new Adam(model.parameters(), { lr: 2e-3 }), epochs: 5 })
 * ```
 */
export function fitTBPTT(model: FitTBPTTModel, options: FitTBPTTOptions): FitRun {
  if (model === null || typeof model !== 'object' || typeof model.forward !== 'function') throw new ValueError('fitTBPTT', 'model must have forward(x, state)')
  if (options === null || typeof options !== 'object') throw new ValueError('fitTBPTT', 'options are required')
  const stream = options.stream
  if (!stream || typeof stream.chunks !== 'function') throw new ValueError('fitTBPTT', 'options.stream must be a TokenStream (arrayStream, fileStream, blockStream)')
  const loss = options.loss ?? defaultChunkLoss
  const axis = options.stateBatchAxis ?? 1
  const tbptt = new TBPTT(model, { k1: stream.seqLen, k2: options.k2 ?? stream.seqLen, loss, stateBatchAxis: axis })
  const validation = options.validation
  const task: Task<TokenChunk> = {
    model: model as Task<TokenChunk>['model'],
    params: paramsOf('fitTBPTT', model, options.optimizer),
    items: (_e, skip) => stream.chunks(skip),
    startEpoch: () => tbptt.reset(),
    trainStep: (c) => {
      const { x, y, reset } = chunkTensors(c, deviceOfFirst(task.params))
      const r = tbptt.backward({ x, y, reset })
      x.dispose()
      return {
        loss: r.loss,
        count: r.count,
        output: options.trainAccuracy ? r.output : (r.output.dispose(), null),
        target: y,
        cleanup: () => y.dispose(),
      }
    },
    validate: validation
      ? (signal) => {
          const opts: EvaluateStreamOptions = { stateBatchAxis: axis }
          if (signal) opts.signal = signal
          return evaluateStream(model, validation, loss, opts)
        }
      : null,
    extraState: () => ({ tbptt: tbptt.stateDict() }),
    loadExtraState: (ck) => {
      const e = ck.extra.tbptt
      if (!e) throw new ValueError('fitTBPTT', `'${ck.path}' holds no TBPTT state`)
      tbptt.loadStateDict({ tensors: e.tensors, meta: e.meta as TBPTTMeta })
    },
  }
  return runLoop(task, options, validation !== undefined)
}
