/**
 * Training loops and evaluation (`fit`, `fitTBPTT`, `evaluate`, `evaluateStream`): the public
 * names of `src/train/fit/`. Inside `src/`, import from the file that defines a name.
 *
 * - `loop.ts`: `fit`, `fitTBPTT` and the loop they share
 * - `events.ts`: progress events, `FitResult`, `FitRun`
 * - `options.ts`: options and the model, data, optimizer and schedule interfaces
 * - `evaluate.ts`: evaluation and the chunk helpers
 * - `metrics.ts`: `Metrics` and their accumulation
 * - `early-stopping.ts`: early stopping
 */

export { fit, fitTBPTT } from './loop.js'
export { evaluate, evaluateStream, chunkTensors, defaultChunkLoss, type EvaluateOptions, type EvaluateStreamOptions } from './evaluate.js'
export {
  FitRun,
  type FitEvent,
  type StepEvent,
  type ValidationEvent,
  type EpochEndEvent,
  type CheckpointEvent,
  type EndEvent,
  type FitResult,
  type StopReason,
} from './events.js'
export type {
  FitOptions,
  FitTBPTTOptions,
  FitTBPTTModel,
  CommonFitOptions,
  FitModel,
  Batch,
  BatchInput,
  BatchSource,
  OptimizerLike,
  SchedulerLike,
  FitCheckpointOptions,
} from './options.js'
export type { EarlyStoppingOptions } from './early-stopping.js'
export type { Metrics } from './metrics.js'
