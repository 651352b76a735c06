/** Data: vocabularies, token streams for truncated BPTT, and seeded batch loaders. */

export { CharVocab, ByteVocab, vocabFromJSON, type Vocab, type VocabJSON, type CharVocabOptions, type CharVocabFileOptions } from './vocab.js'
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
