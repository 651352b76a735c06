/**
 * Weight exchange with TensorFlow.js (tfjs-layers) and Keras: load a layers model saved as
 * `model.json` plus weight shard files (what `model.save('file://dir')` writes) into an
 * equivalent `recurrent` model, and write one back that `tf.loadLayersModel` reads. These are
 * the public names of `src/io/tfjs/`; inside `src/`, import from the file that defines a name.
 *
 * Supported layers: `Embedding`, `Dense`, `SimpleRNN`, `LSTM`, `GRU`, `Bidirectional` (around
 * any of the three recurrent layers), `Dropout`, `Activation` and `InputLayer`, in a
 * `Sequential` model or a functional model that is a single chain.
 *
 * - `sequential.ts`: `KerasSequential`, the model with Keras semantics
 * - `layouts.ts`: weight layouts and gate orders, Keras ↔ PyTorch
 * - `topology.ts`: Keras layer configs ↔ `KerasSequential`
 * - `artifacts.ts`: `model.json` + weight files, in-memory artifacts
 */

export {
  KerasSequential,
  KerasActivationLayer,
  type KerasActivation,
  type MergeMode,
  type KerasLayer,
  type KerasLayerOptions,
} from './sequential.js'
export { kerasToTorchRecurrent, torchToKerasRecurrent, type TorchRecurrentArrays } from './layouts.js'
export {
  loadTfjsModel,
  saveTfjsModel,
  fromTfjsArtifacts,
  toTfjsArtifacts,
  type NamedWeight,
  type TfjsWeightSpec,
  type TfjsModelJson,
  type TfjsArtifacts,
} from './artifacts.js'
