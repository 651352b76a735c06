/** Sequence-to-sequence: decoding (greedy, sampling, beam search) and text generation. */

export {
  greedyDecode,
  sampleDecode,
  beamSearch,
  type DecoderStep,
  type Hypothesis,
  type DecodeOptions,
  type StreamingOptions,
  type GreedyOptions,
  type SampleOptions,
  type BeamSearchOptions,
} from './decode.js'
export { generate, LanguageModelStep, type GenerateOptions, type LanguageModelStepOptions } from './generate.js'
