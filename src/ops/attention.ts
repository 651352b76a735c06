/**
 * The fused attention op: score, length mask, softmax and context of one decoder step in one
 * native op with one fused backward; mirrors `crates/core/src/ops/attention.rs`.
 *
 * Shapes: B batch rows, S source positions, A score features, E value features.
 */

import { wrap } from '../errors.js'
import { native } from '../native.js'
import { Tensor } from '../tensor.js'
import { checkOptions, enumArg, optionKeys, tensorArg, typeError } from '../validate.js'

/** How {@link attention} scores the query against each key. */
export type AttentionScore = 'additive' | 'dot'

/** Options of {@link attention}. */
export interface AttentionOpOptions {
  /** `'additive'` (Bahdanau: `v · tanh(query + key)`, needs `v`) or `'dot'` (Luong: `query · key`). */
  score: AttentionScore
  /** `[A]`: the additive score's vector; not taken by `'dot'`. */
  v?: Tensor | null | undefined
  /**
   * Per-row source lengths `[B]`, each an integer in `[1, S]`: an int32 Tensor (stays on its
   * device, no read back), an `Int32Array` or numbers. Default: every row has all S positions.
   */
  lengths?: Tensor | Int32Array | readonly number[] | null | undefined
}

/** What {@link attention} returns. */
export interface AttentionResult {
  /** `[B, E]`: the weighted sum of the values. */
  context: Tensor
  /** `[B, S]`: each row sums to 1; exactly 0 past the row's length. */
  weights: Tensor
}

const SCORES: readonly AttentionScore[] = ['additive', 'dot']
const ATTENTION_OP_OPTIONS = optionKeys<AttentionOpOptions>({ score: true, v: true, lengths: true })

/**
 * Attention of `query [B, A]` over `keys [S, B, A]` and `values [S, B, E]` (sequence-major, as
 * the recurrent layers' outputs):
 *
 * - additive: `e[b, s] = Σ_a v[a] · tanh(query[b, a] + keys[s, b, a])`;
 *   dot: `e[b, s] = Σ_a query[b, a] · keys[s, b, a]`;
 * - `weights[b, :] = softmax(e[b, :])` over `s < lengths[b]`, exactly 0 past it;
 * - `context[b, :] = Σ_s weights[b, s] · values[s, b, :]`.
 *
 * One native op (one kernel on a GPU) with one fused backward: both outputs are differentiable,
 * with gradients to query, keys, values and v.
 * @throws ShapeError / DTypeError for mismatched shapes or dtypes.
 * @throws ValueError for a missing or unexpected `v`, or a length outside `[1, S]` (a Tensor
 * computed by pending ops: at the next read of the result).
 */
export function attention(query: Tensor, keys: Tensor, values: Tensor, options: AttentionOpOptions): AttentionResult {
  const O = 'attention'
  tensorArg(O, 'query', query)
  tensorArg(O, 'keys', keys)
  tensorArg(O, 'values', values)
  const opts = checkOptions(O, options, ATTENTION_OP_OPTIONS)
  const score = enumArg(O, 'score', opts.score, SCORES)
  const v = opts.v ?? null
  if (v !== null) tensorArg(O, 'v', v, 'option')
  const l = opts.lengths ?? null
  let lengths: Tensor | null = null
  let numbers: number[] | null = null
  if (l instanceof Tensor) lengths = l
  else if (l instanceof Int32Array || Array.isArray(l)) numbers = Array.from(l as ArrayLike<number>)
  else if (l !== null) {
    throw typeError(O, 'lengths', 'an int32 Tensor, an Int32Array or an array of numbers', l)
  }
  const r = wrap(() =>
    native.attention(query._native, keys._native, values._native, score, v?._native ?? null, lengths?._native ?? null, numbers),
  )
  return { context: new Tensor(r.context), weights: new Tensor(r.weights) }
}
