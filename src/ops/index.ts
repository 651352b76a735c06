/**
 * The ops, one file per family as in `crates/core/src/ops/`: free functions over tensors
 * (factories, arithmetic, shape ops, reductions, losses, the fused recurrent layer), the
 * autograd mode and memory accounting. Every op checks its arguments, enqueues the work on the
 * native executor and returns at once; errors are thrown synchronously as the classes of
 * `errors.ts`.
 *
 * This barrel is the public `ops` namespace; modules inside `src/` import from the file that
 * defines a function instead, so that no import cycle runs through here.
 *
 * Shape notation: T time steps, B batch, I input size, H hidden size, N rows, C classes.
 */

export type { DType, TypedArray } from '../tensor.js'
export type { Device } from '../device.js'
export {
  tensor,
  zeros,
  ones,
  full,
  zerosLike,
  onesLike,
  type NestedNumbers,
  type DTypeOptions,
} from './factories.js'
export {
  manualSeed,
  seedState,
  setSeedState,
  randn,
  randUniform,
  type SeedState,
  type RandomOptions,
} from './random.js'
// Internal: a statement of its own so that the declarations drop it (it stays in the runtime
// namespace, where it has always been).
/** @internal */
export { nextSeed } from './random.js'
export {
  add,
  sub,
  mul,
  div,
  neg,
  exp,
  log,
  tanh,
  sigmoid,
  relu,
  square,
  sqrt,
  scale,
  addScalar,
  broadcastTo,
  sumTo,
} from './elementwise.js'
export { matmul, linear } from './matmul.js'
export { reshape, flatten, transpose, concat, stack, slice, split } from './shape.js'
export { sum, mean } from './reduce.js'
export { softmax, logSoftmax } from './softmax.js'
export { embedding } from './embedding.js'
export { conv2d, type Conv2dOptions } from './conv.js'
export { maxPool2d, avgPool2d, adaptiveAvgPool2d, type MaxPool2dOptions, type AvgPool2dOptions } from './pool.js'
export { batchNorm2d, layerNorm, type BatchNorm2dOptions, type LayerNormOptions } from './norm.js'
export { eq, lt, gt, where, maskedFill, sequenceMask, type SequenceMaskOptions } from './compare.js'
export { argmax, max, topk, gather, indexSelect, type ValuesIndices, type TopkOptions } from './index_ops.js'
export { cast } from './cast.js'
export { attention, type AttentionScore, type AttentionOpOptions, type AttentionResult } from './attention.js'
export { dropout, type DropoutOptions } from './dropout.js'
export { mse, crossEntropy, type CrossEntropyOptions } from './loss.js'
export {
  recurrentLayer,
  type CellKind,
  type RecurrentWeights,
  type RecurrentLayerOptions,
  type RecurrentLayerResult,
} from './rnn.js'
export { noGrad, isGradEnabled, setGradEnabled } from './grad.js'
export { memory, resetPeakMemory, synchronize, type MemoryInfo } from './memory.js'
