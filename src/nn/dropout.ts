/** `Dropout`, PyTorch's `torch.nn.Dropout`. */

import type { Tensor } from '../tensor.js'
import { dropout } from '../ops/dropout.js'
import { Module } from './module.js'
import { checkProbability, deriveSeed } from './init.js'

/** Options of {@link Dropout}. */
export interface DropoutOptions {
  /**
   * Seed of the masks. Each call draws a new mask; with a seed the sequence of masks is the
   * same on every run. Without one the global generator (`manualSeed`) is used.
   */
  seed?: number
}

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
    this.#seed = options.seed
  }

  /** `x [*]` → `[*]`: masked and rescaled in training mode, unchanged in eval mode. */
  override forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x
    const seed = deriveSeed(this.#seed, this.#calls++)
    return dropout(x, this.p, seed === undefined ? { training: true } : { seed, training: true })
  }

  override extraRepr(): string {
    return `p=${this.p}`
  }
}
