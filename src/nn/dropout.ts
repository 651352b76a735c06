/** `Dropout`, PyTorch's `torch.nn.Dropout`. */

import type { Tensor } from '../tensor.js'
import { dropout } from '../ops/dropout.js'
import { Module } from './module.js'
import { checkProbability, deriveSeed } from './init.js'
import { checkOptions, numberArg, optionKeys, tensorArg } from '../validate.js'

/** Options of {@link Dropout}. */
export interface DropoutOptions {
  /**
   * Seed of the masks. Each call draws a new mask; with a seed the sequence of masks is the
   * same on every run. Without one the global generator (`manualSeed`) is used.
   */
  seed?: number
}

const DROPOUT_OPTIONS = optionKeys<DropoutOptions>({ seed: true })

/**
 * During training, zeroes each element with probability `p` and scales the others by
 * `1 / (1 − p)` (inverted dropout), so that the expected value is unchanged:
 *
 *   y = x ⊙ m / (1 − p),  m ~ Bernoulli(1 − p) elementwise
 *
 * In evaluation mode (`eval()`) it is the identity.
 *
 * Shapes: input `[*]`, output the same shape.
 */
export class Dropout extends Module {
  /** Probability of zeroing an element, in [0, 1). */
  readonly p: number
  readonly #seed: number | undefined
  #calls = 0

  constructor(p = 0.5, options: DropoutOptions = {}) {
    super()
    this.p = checkProbability('Dropout', 'p', p)
    const { seed } = checkOptions('Dropout', options, DROPOUT_OPTIONS)
    if (seed !== undefined) numberArg('Dropout', 'seed', seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    this.#seed = seed
  }

  /** `x [*]` → `[*]`: masked and rescaled in training mode, unchanged in eval mode. */
  override forward(x: Tensor): Tensor {
    tensorArg('Dropout.forward', 'x', x)
    if (!this.training || this.p === 0) return x
    const seed = deriveSeed(this.#seed, this.#calls++)
    return dropout(x, this.p, seed === undefined ? { training: true } : { seed, training: true })
  }

  override extraRepr(): string {
    return `p=${this.p}`
  }
}
