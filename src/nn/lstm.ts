/** `LSTM`: long short-term memory, PyTorch's `torch.nn.LSTM`. */

import type { Tensor } from '../tensor.js'
import { RNNBase, type Lengths, type RNNBaseOptions } from './rnn.js'

/** Options of {@link LSTM}: those of every recurrent module. */
export type LSTMOptions = RNNBaseOptions

/** The optional arguments of {@link LSTM.forward}. */
export interface LSTMInput {
  /** Initial hidden state `[L·D, B, H]` (default zeros). */
  h0?: Tensor
  /** Initial cell state `[L·D, B, H]` (default zeros). */
  c0?: Tensor
  /**
   * Valid length of each sequence `[B]`, each in [1, T]. Past its length a sequence's state
   * stops changing and its outputs are zero; the reverse direction starts at its own last element.
   */
  lengths?: Lengths
}

/** The result of {@link LSTM.forward}. */
export interface LSTMOutput {
  /** The last layer's hₜ at every step: `[T, B, D·H]`, or `[B, T, D·H]` with `batchFirst`. */
  output: Tensor
  /** Final hidden state of every layer and direction: `[L·D, B, H]`. */
  hN: Tensor
  /** Final cell state of every layer and direction: `[L·D, B, H]`. */
  cN: Tensor
}

/**
 * A multi-layer long short-term memory network, PyTorch's `torch.nn.LSTM`. For each step:
 *
 *   iₜ = σ(W_ii xₜ + b_ii + W_hi hₜ₋₁ + b_hi)
 *   fₜ = σ(W_if xₜ + b_if + W_hf hₜ₋₁ + b_hf)
 *   gₜ = tanh(W_ig xₜ + b_ig + W_hg hₜ₋₁ + b_hg)
 *   oₜ = σ(W_io xₜ + b_io + W_ho hₜ₋₁ + b_ho)
 *   cₜ = fₜ ⊙ cₜ₋₁ + iₜ ⊙ gₜ
 *   hₜ = oₜ ⊙ tanh(cₜ)
 *
 * σ is the logistic sigmoid and ⊙ the elementwise product. Layer k > 0 reads the output of layer
 * k − 1 (both directions concatenated), with dropout between layers in training mode.
 *
 * Shapes (legend: T time, B batch, I input, H hidden, L layers, D directions):
 * - input `x`: `[T, B, I]`, or `[B, T, I]` with `batchFirst`
 * - `h0`, `c0`, `hN`, `cN`: `[L·D, B, H]`
 * - `output`: `[T, B, D·H]`, or `[B, T, D·H]` with `batchFirst`
 *
 * Parameters (gate blocks in the order i, f, g, o, as in PyTorch):
 * - `weight_ih_l{k}`: `[4H, I]` for k = 0, `[4H, D·H]` for k > 0
 * - `weight_hh_l{k}`: `[4H, H]`
 * - `bias_ih_l{k}`, `bias_hh_l{k}`: `[4H]`
 * - with `bidirectional`, the same with suffix `_reverse`
 *
 * All start from U(−1/√H, 1/√H). Weights load from PyTorch checkpoints unchanged; for
 * Keras/TensorFlow.js, `weight_ih = kernelᵀ`, `weight_hh = recurrent_kernelᵀ`,
 * `bias_ih = bias`, `bias_hh = 0`.
 *
 * ```ts
 * const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true })
 * const { output, hN, cN } = lstm.forward(x) // x [T, B, 3] → output [T, B, 8], hN/cN [4, B, 4]
 * ```
 */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, options: LSTMOptions = {}) {
    super('lstm', inputSize, hiddenSize, options)
  }

  /** `x [T, B, I]` (or `[B, T, I]`) → `{ output [T, B, D·H], hN [L·D, B, H], cN [L·D, B, H] }`. */
  override forward(x: Tensor, input: LSTMInput = {}): LSTMOutput {
    const { output, hN, cN } = this.run(x, input)
    return { output, hN, cN: cN as Tensor }
  }
}
