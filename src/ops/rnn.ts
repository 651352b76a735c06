/**
 * The fused recurrent layer: one op runs a whole RNN, LSTM or GRU layer in one direction over a
 * whole sequence, with per-row lengths; mirrors `crates/core/src/ops/rnn.rs` (whose cells are in
 * `lstm.rs` and `gru.rs`). `CellKind` and `RecurrentWeights` are shared with `nn`'s modules.
 */

import { wrap } from '../errors.js'
import { native, type RecurrentLayerOutput } from '../native.js'
import { Tensor, handle } from '../tensor.js'
import { boolArg, checkOptions, optionKeys, typeError } from '../validate.js'

/**
 * The recurrent cell a layer runs: the `kind` of {@link recurrentLayer}, and the `mode` of the
 * `nn` modules (`RNNBase.mode`).
 */
export type CellKind = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru' | 'gru_reset_before'

/**
 * Weights of one layer and direction, PyTorch layout (G gate blocks: 1 RNN, 3 GRU, 4 LSTM): what
 * {@link recurrentLayer} takes and what `RNNBase.layerWeights` returns (the live parameters).
 */
export interface RecurrentWeights {
  /** `[G·H, I]`; in a stacked module `[G·H, D·H]` above layer 0. */
  wIh: Tensor
  /** `[G·H, H]` */
  wHh: Tensor
  /** `[G·H]`, or absent without bias. */
  bIh?: Tensor | null | undefined
  /** `[G·H]`, or absent without bias. */
  bHh?: Tensor | null | undefined
}

/** Options of {@link recurrentLayer}. */
export interface RecurrentLayerOptions {
  /** Per-row sequence lengths `[B]`, each an integer in `[1, T]`. */
  lengths?: Int32Array | readonly number[] | Tensor | null | undefined
  /** Run from the last step (of each row's own length) to the first. Default false. */
  reverse?: boolean | undefined
  /**
   * `x` is `[B, T, I]` and `y` `[B, T, H]` instead of `[T, B, ·]` (the states stay `[B, H]`).
   * On the CPU the op reads and writes that layout in place. Default false.
   */
  batchFirst?: boolean | undefined
}

const RECURRENT_LAYER_OPTIONS = optionKeys<RecurrentLayerOptions>({ lengths: true, reverse: true, batchFirst: true })

/** What {@link recurrentLayer} returns. */
export interface RecurrentLayerResult {
  /** Outputs of every step, `[T, B, H]` (`[B, T, H]` with `batchFirst`); zero past a row's length. */
  y: Tensor
  /** Final hidden state `[B, H]` (at each row's own last step). */
  hT: Tensor
  /** Final cell state `[B, H]` (LSTM only). */
  cT?: Tensor
}

/**
 * One recurrent layer in one direction over a whole sequence, as a single fused op (one input
 * GEMM for all steps, one recurrent GEMM and one fused gate kernel per step, one fused
 * backward).
 *
 * - `x [T, B, I]` (`[B, T, I]` with `batchFirst`), `h0 [B, H]`, `c0 [B, H]` (LSTM only, else
 *   null). `h0` null starts every state (h and, for an LSTM, c) at zero; then `c0` must be
 *   null too.
 * - rnn: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
 * - lstm (gates i, f, g, o): `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`.
 * - gru (gates r, z, n): `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
 *
 * `lengths`, if given, holds each row's length: past it the state stops changing and outputs
 * are zero; a `reverse` pass starts at each row's own last element. A lengths Tensor is read
 * on the JS thread, so it should be a ready leaf (e.g. made by `tensor()`).
 */
export function recurrentLayer(
  kind: CellKind,
  x: Tensor,
  h0: Tensor | null | undefined,
  c0: Tensor | null | undefined,
  weights: RecurrentWeights,
  options: RecurrentLayerOptions = {},
): RecurrentLayerResult {
  const O = 'recurrentLayer'
  options = checkOptions(O, options, RECURRENT_LAYER_OPTIONS)
  if (weights === null || typeof weights !== 'object') throw typeError(O, "argument 'weights'", 'an object { wIh, wHh, bIh?, bHh? } of Tensors', weights)
  const reverse = options.reverse === undefined ? false : boolArg(O, 'reverse', options.reverse)
  const batchFirst = options.batchFirst === undefined ? false : boolArg(O, 'batchFirst', options.batchFirst)
  let lengths: number[] | null = null
  const l = options.lengths
  if (l !== undefined && l !== null) {
    if (l instanceof Tensor) lengths = Array.from(l.dataSync())
    else if (l instanceof Int32Array || Array.isArray(l)) lengths = Array.from(l as ArrayLike<number>)
    else throw typeError(O, 'lengths', 'an Int32Array, an array of numbers or a Tensor', l)
  }
  const r = wrap(() =>
    native.recurrentLayer(
      kind,
      handle(O, x, 'x'),
      h0 === null || h0 === undefined ? null : handle(O, h0, 'h0'),
      c0 ? handle(O, c0, 'c0') : null,
      handle(O, weights.wIh, 'weights.wIh'),
      handle(O, weights.wHh, 'weights.wHh'),
      weights.bIh ? handle(O, weights.bIh, 'weights.bIh') : null,
      weights.bHh ? handle(O, weights.bHh, 'weights.bHh') : null,
      lengths,
      reverse,
      batchFirst,
    ),
  )
  return layerResult(r)
}

/** A native layer result as Tensors. */
function layerResult(r: RecurrentLayerOutput): RecurrentLayerResult {
  const out: RecurrentLayerResult = { y: new Tensor(r.y), hT: new Tensor(r.hT) }
  if (r.cT) out.cT = new Tensor(r.cT)
  return out
}

/**
 * Both directions of a bidirectional layer over the same `x`, as one op: on the CPU the forward
 * and the reverse loop run at once, one per thread, which saves the per-step synchronisation of
 * running each on all threads. `[forward, reverse]`, each as {@link recurrentLayer} returns.
 * `h0` and `c0` are per direction (`[forward, reverse]`, or null for zeros). For the `nn`
 * modules. @internal
 */
export function recurrentLayerPair(
  kind: CellKind,
  x: Tensor,
  h0: readonly [Tensor | null, Tensor | null],
  c0: readonly [Tensor | null, Tensor | null],
  weights: readonly [RecurrentWeights, RecurrentWeights],
  options: { lengths?: Int32Array | readonly number[]; batchFirst: boolean },
): [RecurrentLayerResult, RecurrentLayerResult] {
  const O = 'recurrentLayer'
  const h = (t: Tensor | null | undefined, name: string) => (t === null || t === undefined ? null : handle(O, t, name))
  const [wf, wb] = weights
  const lengths = options.lengths === undefined ? null : Array.from(options.lengths as ArrayLike<number>)
  const r = wrap(() =>
    native.recurrentLayerPair(
      kind,
      handle(O, x, 'x'),
      h(h0[0], 'h0'),
      h(c0[0], 'c0'),
      h(h0[1], 'h0'),
      h(c0[1], 'c0'),
      handle(O, wf.wIh, 'weights.wIh'),
      handle(O, wf.wHh, 'weights.wHh'),
      h(wf.bIh, 'weights.bIh'),
      h(wf.bHh, 'weights.bHh'),
      handle(O, wb.wIh, 'weights.wIh'),
      handle(O, wb.wHh, 'weights.wHh'),
      h(wb.bIh, 'weights.bIh'),
      h(wb.bHh, 'weights.bHh'),
      lengths,
      options.batchFirst,
    ),
  )
  return [layerResult(r[0]!), layerResult(r[1]!)]
}
