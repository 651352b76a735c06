/**
 * Inverted dropout, its mask seeded by the global generator unless a seed is given; mirrors
 * `crates/core/src/ops/dropout.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { seedOf } from './random.js'
import { boolArg, checkOptions, optionKeys, refusal } from '../validate.js'

/** Options of {@link dropout}. */
export interface DropoutOptions {
  /** Seed of the mask; default: the global generator. */
  seed?: number
  /** When false, dropout is the identity. Default true. */
  training?: boolean
}

const DROPOUT_OPTIONS = optionKeys<DropoutOptions>({ seed: true, training: true })

/**
 * Inverted dropout: each element is zeroed with probability `p` and the rest are scaled by
 * `1 / (1 − p)`, so the expectation is unchanged. Identity when `training` is false.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions = {}): Tensor {
  handle('dropout', x, 'x')
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw refusal('dropout', 'p', 'a number in [0, 1)', p, 'number')
  options = checkOptions('dropout', options, DROPOUT_OPTIONS)
  const training = boolArg('dropout', 'training', options.training ?? true)
  const seed = seedOf('dropout', options.seed)
  return op(() => native.dropout(handle('dropout', x, 'x'), p, seed, training))
}
