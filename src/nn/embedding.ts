/** `Embedding`: a lookup table of vectors, PyTorch's `torch.nn.Embedding`. */

import { checkModelSize, checkOptions, numberArg, optionKeys, tensorArg } from '../validate.js'
import type { FloatDType, Tensor } from '../tensor.js'
import { embedding } from '../ops/embedding.js'
import { floatDTypeOption } from '../cast.js'
import { Module } from './module.js'
import { checkPositiveInt, deriveSeed, normal } from './init.js'

/** Options of {@link Embedding}. */
export interface EmbeddingOptions {
  /** Seed of the initialisation; without it the global generator (`manualSeed`) is used. */
  seed?: number
  /** dtype of the table (and of the output): `'float32'` (default) or `'float64'`. */
  dtype?: FloatDType
}

const EMBEDDING_OPTIONS = optionKeys<EmbeddingOptions>({ seed: true, dtype: true })

/**
 * Looks up one row of a learned table per index: `y[..., :] = weight[idx[...], :]`.
 *
 * Shapes:
 * - input `indices`: int32 of any shape `[*]`, values in `[0, numEmbeddings)`
 *   (for example `[T, B]` token ids)
 * - output: `[*, embeddingDim]`
 *
 * Parameters: `weight` `[numEmbeddings, embeddingDim]`, initialised from N(0, 1) as in PyTorch.
 * The gradient of `weight` is non-zero only in the rows that were looked up.
 *
 * ```ts
 * const emb = new Embedding(vocab, 64)
 * const x = emb.forward(tokens) // tokens int32 [T, B] → [T, B, 64]
 * ```
 */
export class Embedding extends Module {
  readonly numEmbeddings: number
  readonly embeddingDim: number
  /** `[numEmbeddings, embeddingDim]`. */
  readonly weight: Tensor

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super()
    this.numEmbeddings = checkPositiveInt('Embedding', 'numEmbeddings', numEmbeddings)
    this.embeddingDim = checkPositiveInt('Embedding', 'embeddingDim', embeddingDim)
    options = checkOptions('Embedding', options, EMBEDDING_OPTIONS)
    if (options.seed !== undefined) numberArg('Embedding', 'seed', options.seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    const dtype = floatDTypeOption('Embedding', options.dtype)
    checkModelSize('Embedding', `an Embedding(${numEmbeddings}, ${embeddingDim})`, numEmbeddings * embeddingDim, dtype)
    this.weight = this.registerParameter('weight', normal([numEmbeddings, embeddingDim], deriveSeed(options.seed, 0), dtype))
  }

  /** `indices` int32 `[*]` → `[*, embeddingDim]`. */
  override forward(indices: Tensor): Tensor {
    return embedding(this.weight, tensorArg('Embedding.forward', 'indices', indices))
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`
  }
}
