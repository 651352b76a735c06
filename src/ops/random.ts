/**
 * The global generator (its seed and state, the seeds it hands out) and the random factories
 * `randn` and `randUniform`. The values are drawn on the CPU from the seed and then placed, so
 * a seed gives the same numbers on every device.
 */

import { ValueError } from '../errors.js'
import { checkOptions, numberArg, optionKeys, refusal } from '../validate.js'
import { native } from '../native.js'
import { op, type Tensor } from '../tensor.js'
import { checkDType, deviceOption, placed, shapeArg, type DTypeOptions } from './factories.js'

/** Options of the random factories. */
export interface RandomOptions extends DTypeOptions {
  /** Seed of the generator; the same seed gives bit-identical values. Default: the global generator (see {@link manualSeed}). */
  seed?: number
}

/** A seed: an integer in [0, 2^53) (exact in a double); a string or other non-number is an ArgumentTypeError. */
function seedArg(opName: string, seed: unknown): number {
  if (!Number.isInteger(seed) || (seed as number) < 0 || (seed as number) > Number.MAX_SAFE_INTEGER) throw refusal(opName, 'seed', 'an integer in [0, 2^53)', seed, 'number')
  return seed as number
}

const RANDOM_OPTIONS = optionKeys<RandomOptions>({ dtype: true, device: true, seed: true })

const DEFAULT_SEED = 0x5eed
let seedBase = DEFAULT_SEED
let seedCounter = 0

/**
 * Seeds the global generator: every random call without an explicit `seed` (`randn`,
 * `randUniform`, `dropout`, layer initialisation) draws its seed from it, so a program that
 * calls `manualSeed(n)` first is reproducible. The default state equals `manualSeed(0x5eed)`.
 */
export function manualSeed(seed: number): void {
  seedArg('manualSeed', seed)
  seedBase = seed
  seedCounter = 0
}

/**
 * The next seed of the global generator: a hash of (base seed, call count), exact in a double.
 * @internal exported for the `nn` layers.
 */
export function nextSeed(): number {
  const k = seedCounter++
  // Two rounds of a 32-bit integer mix over (base, k); 48 bits of result.
  let h1 = Math.imul((seedBase % 0x100000000) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35)
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x7feb352d)
  h1 ^= h1 >>> 15
  let h2 = Math.imul(Math.floor(seedBase / 0x100000000) ^ k ^ 0x27d4eb2f, 0x165667b1)
  h2 ^= h2 >>> 13
  return (h1 >>> 0) * 0x10000 + ((h2 >>> 0) & 0xffff)
}

/** The state of the global generator: its base seed and how many seeds it has drawn. */
export interface SeedState {
  /** The seed given to {@link manualSeed} (or the default). */
  seed: number
  /** Number of seeds drawn since. */
  counter: number
}

/**
 * The state of the global generator, to save in a checkpoint. Restoring it with
 * {@link setSeedState} makes every later random call (dropout masks included) draw exactly the
 * seeds it would have drawn without the interruption.
 */
export function seedState(): SeedState {
  return { seed: seedBase, counter: seedCounter }
}

/** Restores a state returned by {@link seedState}. */
export function setSeedState(state: SeedState): void {
  const { seed, counter } = state ?? ({} as SeedState)
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER || !Number.isInteger(counter) || counter < 0) {
    throw new ValueError('setSeedState', `expected { seed, counter } with integers in [0, 2^53), got ${JSON.stringify(state)}`)
  }
  seedBase = seed
  seedCounter = counter
}

/**
 * The checked `seed` option of a random op, or the next seed of the global generator.
 * @internal exported for the random ops in other files (dropout).
 */
export function seedOf(opName: string, seed: number | undefined): number {
  if (seed === undefined) return nextSeed()
  return seedArg(opName, seed)
}

/**
 * Samples of the standard normal N(0, 1), `shape`, float32 by default. The same `seed` gives
 * bit-identical values on every platform; without one the global generator picks the seed.
 */
export function randn(shape: number | readonly number[], options: RandomOptions = {}): Tensor {
  options = checkOptions('randn', options, RANDOM_OPTIONS)
  const dtype = checkDType('randn', options.dtype ?? 'float32')
  const s = shapeArg('randn', shape)
  const dev = deviceOption('randn', options.device)
  const seed = seedOf('randn', options.seed)
  return placed(dev, () => op(() => native.randn(s, dtype, seed)))
}

/** Samples of U(low, high), `shape`, float32 by default; seeded as {@link randn}. */
export function randUniform(shape: number | readonly number[], low: number, high: number, options: RandomOptions = {}): Tensor {
  options = checkOptions('randUniform', options, RANDOM_OPTIONS)
  numberArg('randUniform', 'low', low)
  numberArg('randUniform', 'high', high)
  const dtype = checkDType('randUniform', options.dtype ?? 'float32')
  const s = shapeArg('randUniform', shape)
  const dev = deviceOption('randUniform', options.device)
  const seed = seedOf('randUniform', options.seed)
  return placed(dev, () => op(() => native.randUniform(s, low, high, dtype, seed)))
}
