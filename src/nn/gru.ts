/** `GRU`: gated recurrent unit, PyTorch's `torch.nn.GRU`, with the Keras reset-before variant. */

import type { Tensor } from '../tensor.js'
import { RNNBase, RNN_BASE_TABLE, type RNNBaseOptions, type RNNInput, type RNNOutput } from './rnn.js'
import { boolArg, optionKeys, optionsArg } from '../validate.js'

/** Options of {@link GRU}. */
export interface GRUOptions extends RNNBaseOptions {
  /**
   * Where the reset gate applies (default true).
   * - `true`: after the recurrent matrix product, `r ⊙ (W_hn h + b_hn)`. This is PyTorch's and
   *   cuDNN's GRU, and Keras's `reset_after=True`.
   * - `false`: before it, `W_hn (r ⊙ h) + b_hn`. This is Keras's `reset_after=False` and the only
   *   GRU of TensorFlow.js; use it to compare with or import from those.
   */
  resetAfter?: boolean
}

const GRU_OPTIONS = optionKeys<GRUOptions>({ ...RNN_BASE_TABLE, resetAfter: true })

/**
 * A multi-layer gated recurrent unit network, PyTorch's `torch.nn.GRU`. For each step:
 *
 *   rₜ = σ(W_ir xₜ + b_ir + W_hr hₜ₋₁ + b_hr)
 *   zₜ = σ(W_iz xₜ + b_iz + W_hz hₜ₋₁ + b_hz)
 *   nₜ = tanh(W_in xₜ + b_in + rₜ ⊙ (W_hn hₜ₋₁ + b_hn))       (resetAfter: true, default)
 *   nₜ = tanh(W_in xₜ + b_in + W_hn (rₜ ⊙ hₜ₋₁) + b_hn)       (resetAfter: false)
 *   hₜ = (1 − zₜ) ⊙ nₜ + zₜ ⊙ hₜ₋₁
 *
 * σ is the logistic sigmoid and ⊙ the elementwise product. Layer k > 0 reads the output of layer
 * k − 1 (both directions concatenated), with dropout between layers in training mode.
 *
 * Shapes (legend: T time, B batch, I input, H hidden, L layers, D directions):
 * - input `x`: `[T, B, I]`, or `[B, T, I]` with `batchFirst`
 * - `h0`, `hN`: `[L·D, B, H]`
 * - `output`: `[T, B, D·H]`, or `[B, T, D·H]` with `batchFirst`
 *
 * Parameters (gate blocks in the order r, z, n, as in PyTorch):
 * - `weight_ih_l{k}`: `[3H, I]` for k = 0, `[3H, D·H]` for k > 0
 * - `weight_hh_l{k}`: `[3H, H]`
 * - `bias_ih_l{k}`, `bias_hh_l{k}`: `[3H]`
 * - with `bidirectional`, the same with suffix `_reverse`
 *
 * All start from U(−1/√H, 1/√H). Keras orders the blocks z, r, h and transposes the kernels;
 * see `notes/rnn-conventions.md` for the conversion.
 *
 * ```ts
 * const gru = new GRU(10, 20)
 * const { output, hN } = gru.forward(x) // x [T, B, 10] → output [T, B, 20], hN [1, B, 20]
 * ```
 */
export class GRU extends RNNBase {
  /** True: PyTorch/cuDNN formula; false: Keras `reset_after=False` / TensorFlow.js. */
  protected static override readonly optionKeys: readonly string[] = GRU_OPTIONS
  readonly resetAfter: boolean

  constructor(inputSize: number, hiddenSize: number, options: GRUOptions = {}) {
    const resetAfter = boolArg(new.target.name, 'resetAfter', optionsArg(new.target.name, options).resetAfter ?? true)
    super(resetAfter ? 'gru' : 'gru_reset_before', inputSize, hiddenSize, options)
    this.resetAfter = resetAfter
  }

  /** `x [T, B, I]` (or `[B, T, I]`) → `{ output [T, B, D·H], hN [L·D, B, H] }`. */
  override forward(x: Tensor, input: RNNInput = {}): RNNOutput {
    const { output, hN } = this.run(x, input)
    return { output, hN }
  }

  override extraRepr(): string {
    const base = super.extraRepr()
    return this.resetAfter ? base : `${base}, resetAfter=false`
  }
}
