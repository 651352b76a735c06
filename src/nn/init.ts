/**
 * Parameter initialisation shared by the layers of `nn/`.
 *
 * Every layer takes an optional `seed`. With a seed the layer's parameters are the same on
 * every run (each parameter draws from its own stream, derived from the seed and the
 * parameter's index); without one they come from the global generator (`manualSeed`).
 */

import type { FloatDType, Tensor } from '../tensor.js'
import { randn, randUniform } from '../ops/random.js'
import { ValueError } from '../errors.js'

/**
 * The seed of the `index`-th random draw of a layer built with `seed`: a 48-bit integer hash
 * of (seed, index), so that every parameter (and every dropout mask) gets its own stream.
 * `undefined` (no seed) stays `undefined`: the global generator (`manualSeed`) is used.
 */
export function deriveSeed(seed: number | undefined, index: number): number | undefined {
  if (seed === undefined) return undefined
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new ValueError('seed', `must be an integer in [0, 2^53), got ${seed}`)
  }
  const lo = seed % 0x100000000
  const hi = Math.floor(seed / 0x100000000)
  let h1 = Math.imul(lo ^ 0x3c6ef372, 0x85ebca6b) ^ Math.imul(index + 1, 0xcc9e2d51)
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x7feb352d)
  h1 ^= h1 >>> 15
  let h2 = Math.imul(hi ^ Math.imul(index + 1, 0x1b873593) ^ 0x27d4eb2f, 0x165667b1)
  h2 ^= h2 >>> 13
  return (h1 >>> 0) * 0x10000 + ((h2 >>> 0) & 0xffff)
}

/** A fresh leaf tensor of `shape` drawn from U(-bound, bound), in `dtype`. */
export function uniform(shape: number[], bound: number, seed: number | undefined, dtype: FloatDType = 'float32'): Tensor {
  return randUniform(shape, -bound, bound, seed === undefined ? { dtype } : { seed, dtype })
}

/** A fresh leaf tensor of `shape` drawn from N(0, 1), in `dtype`. */
export function normal(shape: number[], seed: number | undefined, dtype: FloatDType = 'float32'): Tensor {
  return randn(shape, seed === undefined ? { dtype } : { seed, dtype })
}

export { checkPositiveInt, checkProbability } from '../validate.js'
