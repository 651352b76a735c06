/** Optimizers, gradient clipping and learning-rate schedules: the `optim` part of the public API. */

export {
  Optimizer,
  type OptimizerStateDict,
  type OptimizerParamState,
  type OptimizerParamGroup,
  type OptionValue,
  type NativeRule,
} from './optimizer.js'
export { SGD, type SGDOptions } from './sgd.js'
export { Adam, AdamW, type AdamOptions, type AdamWOptions } from './adam.js'
export { RMSprop, type RMSpropOptions } from './rmsprop.js'
export { Adagrad, type AdagradOptions } from './adagrad.js'
export { clipGradNorm, clipGradValue } from './clip.js'
export {
  LRScheduler,
  StepLR,
  ExponentialLR,
  CosineWithWarmup,
  ReduceLROnPlateau,
  type HasLr,
  type SchedulerStateDict,
  type StepLROptions,
  type ExponentialLROptions,
  type CosineWithWarmupOptions,
  type ReduceLROnPlateauOptions,
} from './schedule.js'
