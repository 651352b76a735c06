/** Data: vocabularies, token streams for truncated BPTT, seeded batch loaders, and padding/collation of id sequences. */

export {
  CharVocab,
  ByteVocab,
  TokenVocab,
  vocabFromJSON,
  type Vocab,
  type VocabJSON,
  type CharVocabOptions,
  type CharVocabFileOptions,
  type TokenMode,
  type TokenVocabOptions,
  type TokenVocabJSON,
  type TokenEncodeOptions,
} from './vocab.js'
export { padSequences, collatePairs, type PadOptions, type PaddedBatch, type CollatePairsOptions, type CollatedPairs } from './pad.js'
export {
  arrayStream,
  fileStream,
  blockStream,
  type TokenStream,
  type TokenChunk,
  type StreamOptions,
  type FileStreamOptions,
  type BlockSource,
} from './stream.js'
export { DataLoader, epochPermutation, type Dataset, type EpochSource, type DataLoaderOptions } from './loader.js'
export { readImage, readImages, writePng, type ReadImageOptions, type ImageSize } from './image.js'
