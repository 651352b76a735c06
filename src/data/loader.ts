/**
 * Batches of a dataset in a seeded order that is a pure function of (seed, epoch): a resumed
 * run sees exactly the batches an uninterrupted one would have, from any position.
 */

import { ValueError } from '../errors.js'
import { boolArg, checkOptions, optionKeys } from '../validate.js'

/** Something with a length and items by index: an array, or `{ length, get(i) }`. */
export type Dataset<T> = ArrayLike<T> | { readonly length: number; get(index: number): T }

/**
 * A source of batches per epoch: `fit` calls `epoch(e, skip)` at the start of each epoch (with
 * `skip` > 0 when it resumes in the middle of one) and iterates what it returns.
 */
export interface EpochSource<B> {
  epoch(epoch: number, skip: number): Iterable<B> | AsyncIterable<B>
  /** Batches per epoch, when known. */
  readonly length?: number
}

/** Options of {@link DataLoader}. */
export interface DataLoaderOptions<T, B> {
  /** Items per batch. */
  batchSize: number
  /** Visit the items in a new random order each epoch (default false). */
  shuffle?: boolean
  /** Seed of the order (default 0). The order of epoch e depends only on (seed, e). */
  seed?: number
  /** Drop the last batch if it is smaller than `batchSize` (default false). */
  dropLast?: boolean
  /** Makes a batch from its items, e.g. stacks them into tensors. */
  collate: (items: T[], indices: number[]) => B
}

const DATA_LOADER_OPTIONS = optionKeys<DataLoaderOptions<unknown, unknown>>({ batchSize: true, shuffle: true, seed: true, dropLast: true, collate: true })

/** A 32-bit integer mix (splitmix-like) of (seed, epoch, counter): the shuffle's randomness. */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35)
  h ^= h >>> 16
  h = Math.imul(h, 0x7feb352d)
  h ^= h >>> 15
  h = Math.imul(h, 0x846ca68b)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * The permutation of `[0, n)` for `epoch` under `seed`: a Fisher–Yates shuffle driven by a
 * counter-based generator, identical on every platform.
 */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  const s = mix(seed >>> 0, Math.floor(seed / 0x100000000))
  const e = mix(s, epoch)
  for (let i = n - 1; i > 0; i--) {
    // 53-bit uniform from two 32-bit draws, then an index in [0, i].
    const r = (mix(e, 2 * i) * 0x200000 + (mix(e, 2 * i + 1) >>> 11)) / 2 ** 53
    const j = Math.floor(r * (i + 1))
    const t = p[i]!
    p[i] = p[j]!
    p[j] = t
  }
  return p
}

/**
 * Batches of a dataset, PyTorch `DataLoader` style, with a seeded shuffle:
 *
 * ```ts
 * const loader = new DataLoader(examples, {
 *   batchSize: 32, shuffle: true, seed: 1,
 *   collate: (items) => ({ x: stack(items.map((e) => e.x), 1), y: stack(items.map((e) => e.y), 1) }),
 * })
 * await fit(model, { data: loader, ... })
 * ```
 */
export class DataLoader<T, B> implements EpochSource<B> {
  readonly dataset: Dataset<T>
  readonly batchSize: number
  readonly shuffle: boolean
  readonly seed: number
  readonly dropLast: boolean
  readonly collate: (items: T[], indices: number[]) => B

  constructor(dataset: Dataset<T>, options: DataLoaderOptions<T, B>) {
    if (dataset === null || typeof dataset !== 'object' || !Number.isInteger(dataset.length)) {
      throw new ValueError('DataLoader', 'dataset must be an array or { length, get(i) }')
    }
    if (options === null || typeof options !== 'object') throw new ValueError('DataLoader', 'options { batchSize, collate } are required')
    checkOptions('DataLoader', options, DATA_LOADER_OPTIONS)
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new ValueError('DataLoader', `batchSize must be a positive integer, got ${String(options?.batchSize)}`)
    }
    if (typeof options.collate !== 'function') throw new ValueError('DataLoader', 'collate must be a function (items) => batch')
    const seed = options.seed ?? 0
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new ValueError('DataLoader', `seed must be an integer in [0, 2^53), got ${seed}`)
    this.dataset = dataset
    this.batchSize = options.batchSize
    this.shuffle = boolArg('DataLoader', 'shuffle', options.shuffle ?? false)
    this.seed = seed
    this.dropLast = boolArg('DataLoader', 'dropLast', options.dropLast ?? false)
    this.collate = options.collate
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize)
  }

  /** The order of the items in `epoch`. */
  order(epoch: number): Int32Array {
    const n = this.dataset.length
    if (this.shuffle) return epochPermutation(n, this.seed, epoch)
    return Int32Array.from({ length: n }, (_, i) => i)
  }

  /** The batches of `epoch`, from batch `skip` on. */
  *epoch(epoch: number, skip = 0): IterableIterator<B> {
    const order = this.order(epoch)
    const ds = this.dataset
    const get = typeof (ds as { get?: unknown }).get === 'function' ? (i: number) => (ds as { get(i: number): T }).get(i) : (i: number) => (ds as ArrayLike<T>)[i]!
    for (let k = skip; k < this.length; k++) {
      const idx = Array.from(order.subarray(k * this.batchSize, Math.min((k + 1) * this.batchSize, order.length)))
      yield this.collate(idx.map(get), idx)
    }
  }
}
