/** `Attention`: Bahdanau (additive) and Luong (`dot`, `general`) attention over encoder outputs. */

import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { Tensor, type FloatDType } from '../tensor.js'
import { floatDTypeOption } from '../cast.js'
import { attention, type AttentionResult } from '../ops/attention.js'
import { tensor } from '../ops/factories.js'
import { indexSelect } from '../ops/index_ops.js'
import { tidy } from '../scope.js'
import { checkModelSize, checkOptions, describe, enumArg, numberArg, optionKeys, tensorArg, typeError } from '../validate.js'
import { Module } from './module.js'
import { Linear } from './linear.js'
import { checkPositiveInt, deriveSeed, uniform } from './init.js'

export type { AttentionResult }

/** The score of {@link Attention}. */
export type AttentionKind = 'bahdanau' | 'dot' | 'general'

/** Options of {@link Attention}. */
export interface AttentionOptions {
  /** `'bahdanau'` (default), `'dot'` or `'general'`. */
  score?: AttentionKind
  /** A, the size of the additive score's hidden layer (`'bahdanau'` only). Default: keySize. */
  attentionSize?: number
  /** Seed of the initialisation; without it the global generator (`manualSeed`) is used. */
  seed?: number
  /** dtype of the parameters: `'float32'` (default) or `'float64'`. Inputs must have it too. */
  dtype?: FloatDType
}

const ATTENTION_OPTIONS = optionKeys<AttentionOptions>({ score: true, attentionSize: true, seed: true, dtype: true })

/**
 * The encoder side of {@link Attention}, computed once per source batch by
 * {@link Attention.memory} and read at every decoder step. A plain object (not a class
 * instance), so that `tidy` finds and keeps its tensors when it is returned from a scope.
 */
export interface AttentionMemory {
  /** `[S, B, A]` (bahdanau: the projected encoder outputs) or `[S, B, K]` (dot, general). */
  readonly keys: Tensor
  /** `[S, B, K]`: the encoder outputs. */
  readonly values: Tensor
  /** int32 `[B]` source lengths on the values' device, or null when every row has all S. */
  readonly lengths: Tensor | null
  /**
   * The memory of batch rows `index` (int32 `[B']`, repeats allowed), in that order: selects
   * along the batch axis of keys, values and lengths, as beam search reorders its beams.
   */
  reorder(index: Tensor): AttentionMemory
}

function makeMemory(keys: Tensor, values: Tensor, lengths: Tensor | null): AttentionMemory {
  return {
    keys,
    values,
    lengths,
    reorder(index: Tensor): AttentionMemory {
      tensorArg('AttentionMemory.reorder', 'index', index)
      return makeMemory(
        indexSelect(keys, 1, index),
        indexSelect(values, 1, index),
        lengths === null ? null : indexSelect(lengths, 0, index),
      )
    },
  }
}

const KINDS: readonly AttentionKind[] = ['bahdanau', 'dot', 'general']

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`

/**
 * Attention of a decoder state over the encoder outputs, with source positions past each row's
 * length masked out. Score, mask, softmax and context run as one native op with a fused
 * backward ({@link attention}), so a decoder step costs one op here, not a chain of small ones.
 *
 * Shapes: S source positions, B batch rows, Q querySize (decoder state), K keySize (encoder
 * output), A attentionSize.
 * - `memory(encoderOutputs [S, B, K], lengths?)` → keys, values, lengths (once per batch);
 * - `forward(query [B, Q], memory)` → `{ context [B, K], weights [B, S] }`.
 *
 * Scores, with q the query row and h_s the encoder output at s:
 * - bahdanau: `e_s = vᵀ tanh(W_q q + W_k h_s + b_k)`, with `W_k h_s + b_k` precomputed by
 *   `memory()`; parameters `queryProj.weight [A, Q]`, `keyProj.weight [A, K]`,
 *   `keyProj.bias [A]`, `v [A]`;
 * - dot: `e_s = qᵀ h_s` (Q must equal K), no parameters;
 * - general: `e_s = qᵀ W h_s`, computed as `(Wᵀ q) · h_s`; parameter `queryProj.weight [K, Q]`.
 *
 * Then `weights = softmax(e)` over `s < lengths[b]` (exactly 0 past it) and
 * `context = Σ_s weights_s h_s`.
 *
 * Initialisation: the projections as `Linear`; v from U(−k, k) with k = 1/√A.
 *
 * ```ts
 * const attn = new Attention(hidden, 2 * hidden) // bahdanau over a bidirectional encoder
 * const mem = attn.memory(encoderOutputs, lengths) // once per batch
 * const { context, weights } = attn.forward(decoderState, mem) // every step
 * ```
 */
export class Attention extends Module {
  readonly querySize: number
  readonly keySize: number
  readonly score: AttentionKind
  /** A for bahdanau; keySize for dot and general (the size the score is taken in). */
  readonly attentionSize: number
  /** bahdanau: Linear(Q → A, no bias); general: Linear(Q → K, no bias); dot: null. */
  readonly queryProj: Linear | null
  /** bahdanau: Linear(K → A); otherwise null. */
  readonly keyProj: Linear | null
  /** bahdanau: `[A]`; otherwise null. */
  readonly v: Tensor | null

  constructor(querySize: number, keySize: number, options: AttentionOptions = {}) {
    super()
    const O = 'Attention'
    this.querySize = checkPositiveInt(O, 'querySize', querySize)
    this.keySize = checkPositiveInt(O, 'keySize', keySize)
    options = checkOptions(O, options, ATTENTION_OPTIONS)
    this.score = enumArg(O, 'score', options.score ?? 'bahdanau', KINDS)
    const dtype = floatDTypeOption(O, options.dtype)
    const seed = options.seed
    if (seed !== undefined) numberArg(O, 'seed', seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    if (this.score === 'bahdanau') {
      this.attentionSize = checkPositiveInt(O, 'attentionSize', options.attentionSize ?? keySize)
    } else {
      if (options.attentionSize !== undefined) {
        throw new ValueError(O, `attentionSize is only for score 'bahdanau', got ${describe(options.attentionSize)} with score '${this.score}'`)
      }
      this.attentionSize = keySize
    }
    if (this.score === 'dot' && querySize !== keySize) {
      throw new ShapeError(O, `a dot score needs querySize equal to keySize, got querySize ${querySize} and keySize ${keySize} (use score 'general' to project the query)`)
    }
    const a = this.attentionSize
    const count = this.score === 'bahdanau' ? a * querySize + a * keySize + 2 * a : this.score === 'general' ? keySize * querySize : 0
    checkModelSize(O, `an Attention(${querySize}, ${keySize}, '${this.score}')`, count, dtype)
    const lin = (i: number, o: number, bias: boolean, k: number) =>
      new Linear(i, o, { bias, dtype, ...(seed === undefined ? {} : { seed: deriveSeed(seed, k) }) })
    this.queryProj = this.score === 'dot' ? null : this.registerModule('queryProj', lin(querySize, a, false, 0))
    this.keyProj = this.score === 'bahdanau' ? this.registerModule('keyProj', lin(keySize, a, true, 1)) : null
    this.v = this.score === 'bahdanau' ? this.registerParameter('v', uniform([a], 1 / Math.sqrt(a), deriveSeed(seed, 2), dtype)) : null
  }

  /**
   * The memory of one source batch: `encoderOutputs [S, B, K]` (sequence-major, as the recurrent
   * layers return them) and optional `lengths [B]` (int32 Tensor, `Int32Array` or numbers, each
   * an integer in `[1, S]`). For bahdanau the key projection runs here, once, not at each step.
   * @throws ShapeError / DTypeError for a wrong shape or dtype. @throws ValueError for bad lengths.
   */
  memory(encoderOutputs: Tensor, lengths?: Tensor | Int32Array | readonly number[] | null): AttentionMemory {
    const O = 'Attention.memory'
    const enc = tensorArg(O, 'encoderOutputs', encoderOutputs)
    if (enc.shape.length !== 3 || enc.shape[2] !== this.keySize) {
      throw new ShapeError(O, `expected encoderOutputs [S, B, ${this.keySize}], got ${fmt(enc.shape)}`)
    }
    this.#checkDType(O, 'encoderOutputs', enc)
    const [S, B] = [enc.shape[0]!, enc.shape[1]!]
    let lens: Tensor | null = null
    if (lengths !== undefined && lengths !== null) {
      if (Array.isArray(lengths) || lengths instanceof Int32Array) {
        const list = Array.from(lengths as ArrayLike<unknown>)
        if (list.length !== B) throw new ShapeError(O, `expected lengths [B] = [${B}], got [${list.length}]`)
        list.forEach((l, i) => numberArg(O, `lengths[${i}]`, l, { integer: true, min: 1, max: S }))
        lens = tensor(Int32Array.from(list as number[]), [B], { dtype: 'int32', device: enc.device })
      } else {
        if (!(lengths instanceof Tensor)) throw typeError(O, "argument 'lengths'", 'an int32 Tensor, an Int32Array or an array of numbers', lengths)
        const t = lengths
        if (t.dtype !== 'int32') throw new DTypeError(O, `expected lengths of dtype int32, got ${t.dtype}`)
        if (t.shape.length !== 1 || t.shape[0] !== B) throw new ShapeError(O, `expected lengths [B] = [${B}], got ${fmt(t.shape)}`)
        lens = t
      }
    }
    const keys = this.keyProj === null ? enc : this.keyProj.forward(enc)
    return makeMemory(keys, enc, lens)
  }

  /**
   * One step: `query [B, Q]` (e.g. the decoder's hidden state) against `memory` (from
   * {@link Attention.memory}, possibly reordered) → `{ context [B, K], weights [B, S] }`, both
   * differentiable.
   * @throws ShapeError / DTypeError for a wrong shape or dtype.
   */
  override forward(query: Tensor, memory: AttentionMemory): AttentionResult {
    const O = 'Attention.forward'
    const q = tensorArg(O, 'query', query)
    if (q.shape.length !== 2 || q.shape[1] !== this.querySize) {
      throw new ShapeError(O, `expected query [B, ${this.querySize}], got ${fmt(q.shape)}`)
    }
    this.#checkDType(O, 'query', q)
    if (memory === null || typeof memory !== 'object' || typeof memory.reorder !== 'function') {
      throw typeError(O, "argument 'memory'", 'an AttentionMemory (from attention.memory())', memory)
    }
    const B = memory.values.shape[1]
    if (q.shape[0] !== B) {
      throw new ShapeError(O, `expected query [${B}, ${this.querySize}] (B of the memory), got ${fmt(q.shape)}`)
    }
    const score = this.score === 'bahdanau' ? 'additive' : 'dot'
    return tidy(() => {
      const projected = this.queryProj === null ? q : this.queryProj.forward(q)
      return attention(projected, memory.keys, memory.values, { score, v: this.v, lengths: memory.lengths })
    })
  }

  #checkDType(op: string, what: string, t: Tensor): void {
    const want = this.v?.dtype ?? this.queryProj?.weight.dtype
    if (want !== undefined && t.dtype !== want) {
      throw new DTypeError(op, `expected ${what} of the parameters' dtype ${want}, got ${t.dtype}`)
    }
  }

  override extraRepr(): string {
    const parts = [`${this.querySize}`, `${this.keySize}`, `score='${this.score}'`]
    if (this.score === 'bahdanau') parts.push(`attentionSize=${this.attentionSize}`)
    return parts.join(', ')
  }
}
