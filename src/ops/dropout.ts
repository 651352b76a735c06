/**
 * Inverted dropout, its mask seeded by the global generator unless a seed is given; mirrors
 * `crates/core/src/ops/dropout.rs`.
 */

import { ValueError } from '../errors.js'
import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { seedOf } from './random.js'

/** Options of {@link dropout}. */
export interface DropoutOptions {
  /** Seed of the mask; default: the global generator. */
  seed?: number
  /** When false, dropout is the identity. Default true. */
  training?: boolean
}

/**
 * Inverted dropout: each element is zeroed with probability `p` and the rest are scaled by
 * `1 / (1 − p)`, so the expectation is unchanged. Identity when `training` is false.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions = {}): Tensor {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new ValueError('dropout', `p must be a number in [0, 1), got ${String(p)}`)
  const training = options.training ?? true
  const seed = seedOf('dropout', options.seed)
  return op(() => native.dropout(handle('dropout', x), p, seed, training))
}
