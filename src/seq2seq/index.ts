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
export {
  AttentionDecoder,
  reorderState,
  PAD_ID,
  BOS_ID,
  EOS_ID,
  type AttentionDecoderOptions,
  type DecoderCell,
  type DecoderAttention,
  type DecoderState,
  type DecoderStepResult,
  type TeacherForcingOptions,
  type DecodeRunOptions,
} from './decoder.js'
export {
  Seq2Seq,
  type Seq2SeqOptions,
  type Seq2SeqConfig,
  type Seq2SeqCell,
  type Seq2SeqAttention,
  type Seq2SeqBatch,
  type EncodedSource,
  type TranslateOptions,
} from './model.js'
export { seq2seqToOnnx, type Seq2SeqOnnx, type Seq2SeqOnnxOptions } from './onnx.js'
export {
  ImageCaptioner,
  attentionPanels,
  type ImageCaptionerOptions,
  type ImageCaptionerConfig,
  type CaptionBatch,
  type Caption,
} from './captioning.js'
export { corpusBleu } from './metrics.js'
