/** Layers and models: the `nn` part of the public API. */

export { Module, parameter, type LoadStateDictOptions, type LoadStateDictResult } from './module.js'
export type { RegisterBufferOptions } from './module.js'
export { Linear, type LinearOptions } from './linear.js'
export { Embedding, type EmbeddingOptions } from './embedding.js'
export { Dropout, type DropoutOptions } from './dropout.js'
export { Sequential, type TensorModule } from './sequential.js'
export { Tanh, Sigmoid, ReLU } from './activation.js'
export {
  RNNBase,
  RNN,
  type Lengths,
  type RNNBaseOptions,
  type RNNOptions,
  type RecurrentInput,
  type RecurrentOutput,
  type RNNInput,
  type RNNOutput,
} from './rnn.js'
export { LSTM, type LSTMOptions, type LSTMInput, type LSTMOutput } from './lstm.js'
export { GRU, type GRUOptions } from './gru.js'
export {
  RNNCellBase,
  RNNCell,
  LSTMCell,
  GRUCell,
  type RNNCellBaseOptions,
  type RNNCellOptions,
  type LSTMCellOptions,
  type GRUCellOptions,
  type LSTMCellState,
} from './cells.js'
export {
  mse,
  crossEntropy,
  MSELoss,
  CrossEntropyLoss,
  type Reduction,
  type MSEOptions,
  type CrossEntropyOptions,
} from './loss.js'
export {
  Attention,
  type AttentionKind,
  type AttentionOptions,
  type AttentionMemory,
  type AttentionResult,
} from './attention.js'
export { Conv2d, Flatten, type Conv2dOptions } from './conv.js'
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, type MaxPool2dOptions, type AvgPool2dOptions } from './pool.js'
export { BatchNorm2d, LayerNorm, type BatchNorm2dOptions, type LayerNormOptions } from './norm.js'
