/**
 * Padding and collation of variable-length id sequences: {@link padSequences} (one batch of
 * sequences → int32 `[T, B]` + lengths) and {@link collatePairs} (seq2seq (source, target) pairs
 * → encoder input, teacher-forcing decoder input and output, with their lengths).
 */

import type { Tensor } from '../tensor.js'
import { tensor } from '../ops/factories.js'
import { ValueError } from '../errors.js'
import { boolArg, checkOptions, optionKeys } from '../validate.js'

/** Options of {@link padSequences}. */
export interface PadOptions {
  /** The id written after the end of each sequence (default 0). */
  padValue?: number
  /** Cut sequences longer than this (see `truncate`); `T` is then at most `maxLength`. */
  maxLength?: number
  /** `[B, T]` instead of the default time-major `[T, B]` that the recurrent layers take. */
  batchFirst?: boolean
  /** Which end of a too-long sequence is cut: `'post'` (default) keeps its first `maxLength` ids, `'pre'` its last. */
  truncate?: 'post' | 'pre'
}

const PAD_OPTIONS = optionKeys<PadOptions>({ padValue: true, maxLength: true, batchFirst: true, truncate: true })

/** What {@link padSequences} returns. */
export interface PaddedBatch {
  /** int32 `[T, B]` (or `[B, T]` with `batchFirst`), `T` = the longest (truncated) sequence. */
  data: Tensor
  /** int32 `[B]`: the length of each sequence after truncation. */
  lengths: Tensor
}

const I32_MIN = -(2 ** 31)
const I32_MAX = 2 ** 31 - 1

function isInt32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= I32_MIN && v <= I32_MAX
}

function checkId(what: string, name: string, v: unknown): number {
  if (!isInt32(v)) throw new ValueError(what, `${name} must be an integer id in the int32 range, got ${String(v)}`)
  return v
}

function checkSeqs(what: string, name: string, seqs: unknown): readonly ArrayLike<number>[] {
  if (!Array.isArray(seqs)) throw new ValueError(what, `${name} must be an array of id sequences, got ${seqs === null ? 'null' : typeof seqs}`)
  if (seqs.length === 0) throw new ValueError(what, `${name} is an empty batch: give at least one sequence`)
  seqs.forEach((s, i) => {
    if (s === null || typeof s !== 'object' || typeof (s as ArrayLike<number>).length !== 'number') {
      throw new ValueError(what, `${name}[${i}] must be an array of ids, got ${s === null ? 'null' : typeof s}`)
    }
  })
  return seqs as readonly ArrayLike<number>[]
}

/**
 * Lays the sequences out as columns of one int32 array, padded with `pad` after each end:
 * element (t, b) at `t * B + b` (time-major) or `b * T + t` (batch-first). Every id is checked
 * here, where its sequence and position can be named.
 */
function layout(
  what: string,
  name: (b: number, i: number) => string,
  seqs: readonly ArrayLike<number>[],
  pieces: readonly { start: number; length: number; prefix?: number; suffix?: number }[],
  T: number,
  pad: number,
  batchFirst: boolean,
): Int32Array {
  const B = seqs.length
  const out = new Int32Array(T * B).fill(pad)
  const at = batchFirst ? (t: number, b: number) => b * T + t : (t: number, b: number) => t * B + b
  for (let b = 0; b < B; b++) {
    const s = seqs[b]!
    const { start, length, prefix, suffix } = pieces[b]!
    let t = 0
    if (prefix !== undefined) out[at(t++, b)] = prefix
    for (let i = start; i < start + length; i++) {
      const v = s[i]
      if (!isInt32(v)) throw new ValueError(what, `${name(b, i)} must be an integer id in the int32 range, got ${String(v)}`)
      out[at(t++, b)] = v
    }
    if (suffix !== undefined) out[at(t, b)] = suffix
  }
  return out
}

/**
 * Pads a batch of id sequences to a common length, as the recurrent layers and attention want
 * them: the valid ids first, then `padValue`, and the lengths that say where each sequence ends
 * (give them to `LSTM.forward(x, { lengths })`, to `attention`, or to `sequenceMask`).
 *
 * ```ts
 * const { data, lengths } = padSequences([[5, 6, 7], [8]])
 * // data: int32 [3, 2] = [[5, 8], [6, 0], [7, 0]]; lengths: [3, 1]
 * ```
 *
 * Empty sequences are allowed (length 0) as long as one is not empty (tensors have no zero-size
 * axes). The tensors are on the CPU; `fit` copies batches to the model's device.
 */
export function padSequences(seqs: readonly ArrayLike<number>[], options: PadOptions = {}): PaddedBatch {
  const what = 'padSequences'
  const list = checkSeqs(what, 'seqs', seqs)
  options = checkOptions(what, options, PAD_OPTIONS)
  const pad = checkId(what, 'padValue', options.padValue ?? 0)
  const truncate = options.truncate ?? 'post'
  if (truncate !== 'post' && truncate !== 'pre') throw new ValueError(what, `truncate must be 'post' or 'pre', got ${JSON.stringify(truncate)}`)
  const max = options.maxLength
  if (max !== undefined && !(Number.isInteger(max) && max >= 1)) throw new ValueError(what, `maxLength must be a positive integer, got ${String(max)}`)
  const pieces = list.map((s) => {
    const n = max === undefined ? s.length : Math.min(s.length, max)
    return { start: truncate === 'pre' ? s.length - n : 0, length: n }
  })
  const T = pieces.reduce((m, p) => Math.max(m, p.length), 0)
  if (T === 0) throw new ValueError(what, `all ${list.length} sequences are empty: a padded batch needs at least one id`)
  const B = list.length
  const batchFirst = boolArg(what, 'batchFirst', options.batchFirst ?? false)
  const data = layout(what, (b, i) => `seqs[${b}][${i}]`, list, pieces, T, pad, batchFirst)
  return {
    data: tensor(data, batchFirst ? [B, T] : [T, B], { dtype: 'int32' }),
    lengths: tensor(Int32Array.from(pieces, (p) => p.length), [B], { dtype: 'int32' }),
  }
}

/** Options of {@link collatePairs}: the special ids (defaults: those of `TokenVocab`). */
export interface CollatePairsOptions {
  /** Padding id (default 0). */
  pad?: number
  /** Begin-of-sequence id, the decoder's first input (default 1). */
  bos?: number
  /** End-of-sequence id, the decoder's last target (default 2). */
  eos?: number
  /** `[B, T]` tensors instead of the default time-major `[T, B]`. */
  batchFirst?: boolean
}

const COLLATE_PAIRS_OPTIONS = optionKeys<CollatePairsOptions>({ pad: true, bos: true, eos: true, batchFirst: true })

/** A seq2seq batch made by {@link collatePairs}. All tensors are int32 and on the CPU. */
export interface CollatedPairs {
  /** The source ids `[S, B]`, padded with `pad`. */
  source: Tensor
  /** `[B]`: the length of each source (≥ 1). */
  sourceLengths: Tensor
  /** The decoder inputs for teacher forcing `[T, B]`: BOS, then the target; `T` = longest target + 1. */
  targetIn: Tensor
  /** The decoder targets `[T, B]`: the target, then EOS, then `pad` (ignore it in the loss). */
  targetOut: Tensor
  /** `[B]`: target length + 1 (the BOS/EOS step), the valid steps of `targetIn` and `targetOut`. */
  targetLengths: Tensor
}

/**
 * Collates (source ids, target ids) pairs into one seq2seq batch for teacher forcing: the
 * decoder reads `targetIn` = BOS + target and is trained to emit `targetOut` = target + EOS,
 * step by step; the steps past each row's end hold `pad` in both.
 *
 * ```ts
 * const loader = new DataLoader(pairs, {
 *   batchSize: 32, shuffle: true,
 *   collate: (items) => {
 *     const b = collatePairs(items)
 *     return { x: { source: b.source, sourceLengths: b.sourceLengths, targetIn: b.targetIn }, y: b.targetOut }
 *   },
 * })
 * await fit(model, { data: loader, optimizer, ignoreIndex: PAD })
 * ```
 *
 * The sources must not be empty (a recurrent encoder needs one step); targets may be.
 */
export function collatePairs(pairs: readonly (readonly [ArrayLike<number>, ArrayLike<number>])[], options: CollatePairsOptions = {}): CollatedPairs {
  const what = 'collatePairs'
  if (!Array.isArray(pairs)) throw new ValueError(what, `pairs must be an array of [source ids, target ids], got ${pairs === null ? 'null' : typeof pairs}`)
  if (pairs.length === 0) throw new ValueError(what, 'pairs is an empty batch: give at least one pair')
  options = checkOptions(what, options, COLLATE_PAIRS_OPTIONS)
  const pad = checkId(what, 'pad', options.pad ?? 0)
  const bos = checkId(what, 'bos', options.bos ?? 1)
  const eos = checkId(what, 'eos', options.eos ?? 2)
  const batchFirst = boolArg(what, 'batchFirst', options.batchFirst ?? false)
  const sources: ArrayLike<number>[] = []
  const targets: ArrayLike<number>[] = []
  pairs.forEach((p, i) => {
    if (!Array.isArray(p) || p.length !== 2) throw new ValueError(what, `pairs[${i}] must be a [source ids, target ids] pair`)
    for (const k of [0, 1] as const) {
      const s = p[k]
      if (s === null || typeof s !== 'object' || typeof s.length !== 'number') {
        throw new ValueError(what, `pairs[${i}][${k}] must be an array of ids, got ${s === null ? 'null' : typeof s}`)
      }
    }
    if (p[0].length === 0) throw new ValueError(what, `pairs[${i}] has an empty source: every source needs at least one id`)
    sources.push(p[0])
    targets.push(p[1])
  })
  const B = pairs.length
  const S = sources.reduce((m, s) => Math.max(m, s.length), 0)
  const T = targets.reduce((m, s) => Math.max(m, s.length), 0) + 1
  const shape = (n: number) => (batchFirst ? [B, n] : [n, B])
  const i32 = { dtype: 'int32' as const }
  const src = layout(what, (b, i) => `pairs[${b}][0][${i}]`, sources, sources.map((s) => ({ start: 0, length: s.length })), S, pad, batchFirst)
  const tin = layout(what, (b, i) => `pairs[${b}][1][${i}]`, targets, targets.map((s) => ({ start: 0, length: s.length, prefix: bos })), T, pad, batchFirst)
  const tout = layout(what, (b, i) => `pairs[${b}][1][${i}]`, targets, targets.map((s) => ({ start: 0, length: s.length, suffix: eos })), T, pad, batchFirst)
  return {
    source: tensor(src, shape(S), i32),
    sourceLengths: tensor(Int32Array.from(sources, (s) => s.length), [B], i32),
    targetIn: tensor(tin, shape(T), i32),
    targetOut: tensor(tout, shape(T), i32),
    targetLengths: tensor(Int32Array.from(targets, (s) => s.length + 1), [B], i32),
  }
}
