/**
 * recurrent-nn: RNN, LSTM and GRU training and inference for Node.js at native speed.
 *
 * The public entry point: re-exports the hand-written API of `src/`. (The native addon is
 * found by `src/platform.ts`; it is not part of the API.)
 */

// errors
export {
  RecurrentError,
  ShapeError,
  DTypeError,
  DeviceError,
  DisposedError,
  CudaUnavailableError,
  CheckpointError,
  ValueError,
  ArgumentTypeError,
  MemoryError,
  ImageError,
  InternalError,
  NativeAddonError,
} from './src/errors.js'

// tensor
export { Tensor, type DType, type FloatDType, type TypedArray, type NestedArray } from './src/tensor.js'

// memory scopes: tensors created inside tidy / tidyAsync are disposed at the end unless returned
// or kept
export { tidy, tidyAsync, keep, isKept, dispose } from './src/scope.js'

// devices: CUDA availability and memory (tensors move with `t.to(device)`, `module.to(device)`
// and the factories' `device` option)
export {
  cudaAvailable,
  cudaUnavailableReason,
  cudaDevices,
  emptyCache,
  type Device,
  type CudaDeviceInfo,
  type CudaMemoryInfo,
} from './src/device.js'

// ops and factories. `mse`, `crossEntropy` and their option types are exported at the top
// level by `nn` (with a `reduction` option); the plain ops stay reachable as `ops.mse` etc.
export * as ops from './src/ops/index.js'
export {
  // factories
  tensor,
  zeros,
  ones,
  full,
  zerosLike,
  onesLike,
  randn,
  randUniform,
  manualSeed,
  type NestedNumbers,
  type DTypeOptions,
  type RandomOptions,
  // elementwise
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
  // linear algebra, shape, reductions, softmax
  matmul,
  linear,
  reshape,
  transpose,
  concat,
  stack,
  slice,
  split,
  sum,
  mean,
  softmax,
  logSoftmax,
  // comparisons and masks, index ops, dtype conversion
  eq,
  lt,
  gt,
  where,
  maskedFill,
  sequenceMask,
  type SequenceMaskOptions,
  argmax,
  max,
  topk,
  gather,
  indexSelect,
  type ValuesIndices,
  type TopkOptions,
  cast,
  // embedding, dropout, recurrent layer
  embedding,
  dropout,
  recurrentLayer,
  type CellKind,
  type RecurrentWeights,
  type RecurrentLayerOptions,
  type RecurrentLayerResult,
  // autograd mode, memory
  noGrad,
  isGradEnabled,
  setGradEnabled,
  memory,
  resetPeakMemory,
  synchronize,
  type MemoryInfo,
} from './src/ops/index.js'
// the fused attention op (the `Attention` module is exported with nn below)
export { attention, type AttentionScore, type AttentionOpOptions } from './src/ops/index.js'

// ---- nn ---------------------------------------------------------------------------------------
// The nn layer (src/nn/*.ts: Module, Linear, RNN, LSTM, GRU, losses ...) appends its exports
// below this line. Its `mse`, `crossEntropy`, `CrossEntropyOptions` and `DropoutOptions` take
// the top-level names.
export {
  Module,
  parameter,
  Linear,
  Embedding,
  Dropout,
  Sequential,
  Tanh,
  Sigmoid,
  ReLU,
  RNNBase,
  RNN,
  LSTM,
  GRU,
  RNNCellBase,
  RNNCell,
  LSTMCell,
  GRUCell,
  mse,
  crossEntropy,
  MSELoss,
  CrossEntropyLoss,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type LinearOptions,
  type EmbeddingOptions,
  type DropoutOptions,
  type TensorModule,
  type Lengths,
  type RNNBaseOptions,
  type RNNOptions,
  type RecurrentInput,
  type RecurrentOutput,
  type RNNInput,
  type RNNOutput,
  type LSTMOptions,
  type LSTMInput,
  type LSTMOutput,
  type GRUOptions,
  type RNNCellBaseOptions,
  type RNNCellOptions,
  type LSTMCellOptions,
  type GRUCellOptions,
  type LSTMCellState,
  type Reduction,
  type MSEOptions,
  type CrossEntropyOptions,
} from './src/nn/index.js'
// attention over encoder outputs (bahdanau, dot, general)
export {
  Attention,
  type AttentionKind,
  type AttentionOptions,
  type AttentionMemory,
  type AttentionResult,
} from './src/nn/index.js'

// image ops and layers (convolution, pooling, normalisation). The layers' option types take
// the top-level names; the ops' own stay reachable as `ops.Conv2dOptions` etc.
export { conv2d, maxPool2d, avgPool2d, adaptiveAvgPool2d, batchNorm2d, layerNorm, flatten } from './src/ops/index.js'
export {
  Conv2d,
  Flatten,
  MaxPool2d,
  AvgPool2d,
  AdaptiveAvgPool2d,
  BatchNorm2d,
  LayerNorm,
  type Conv2dOptions,
  type MaxPool2dOptions,
  type AvgPool2dOptions,
  type BatchNorm2dOptions,
  type LayerNormOptions,
  type RegisterBufferOptions,
} from './src/nn/index.js'

// ---- optim ------------------------------------------------------------------------------------
export {
  Optimizer,
  SGD,
  Adam,
  AdamW,
  RMSprop,
  Adagrad,
  clipGradNorm,
  clipGradValue,
  LRScheduler,
  StepLR,
  ExponentialLR,
  CosineWithWarmup,
  ReduceLROnPlateau,
  type SGDOptions,
  type AdamOptions,
  type AdamWOptions,
  type RMSpropOptions,
  type AdagradOptions,
  type OptimizerStateDict,
  type OptimizerParamState,
  type OptimizerParamGroup,
  type OptionValue,
  type NativeRule,
  type HasLr,
  type SchedulerStateDict,
  type StepLROptions,
  type ExponentialLROptions,
  type CosineWithWarmupOptions,
  type ReduceLROnPlateauOptions,
} from './src/optim/index.js'

// ---- io: safetensors --------------------------------------------------------------------------
export { saveSafetensors, loadSafetensors, type SafetensorsContents } from './src/io/safetensors.js'

// ---- train ------------------------------------------------------------------------------------
// Truncated BPTT, training loops (fit, fitTBPTT), checkpoints, the RecurrentLM model; and the
// data layer (vocabularies, token streams, seeded loaders). The seed-state pair lives in ops.
export { seedState, setSeedState, type SeedState } from './src/ops/index.js'
export * from './src/train/index.js'
export * from './src/data/index.js'

// ---- io (tfjs, onnx, pytorch) -----------------------------------------------------------------
// Weight exchange with TensorFlow.js/Keras (model.json + shards), ONNX export, and PyTorch
// state dicts in safetensors files.
export {
  KerasSequential,
  KerasActivationLayer,
  loadTfjsModel,
  saveTfjsModel,
  fromTfjsArtifacts,
  toTfjsArtifacts,
  kerasToTorchRecurrent,
  torchToKerasRecurrent,
  type KerasActivation,
  type MergeMode,
  type KerasLayer,
  type KerasLayerOptions,
  type NamedWeight,
  type TorchRecurrentArrays,
  type TfjsWeightSpec,
  type TfjsModelJson,
  type TfjsArtifacts,
} from './src/io/tfjs/index.js'
export { toOnnx, saveOnnx, type OnnxExportOptions } from './src/io/onnx.js'
export { loadTorchStateDict, saveTorchStateDict } from './src/io/pytorch.js'

// ---- seq2seq ----------------------------------------------------------------------------------
// Decoding over a step interface (greedy, sampling, batched beam search) and text generation
// with a language model.
export * from './src/seq2seq/index.js'
