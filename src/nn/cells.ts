/**
 * One-step recurrent cells, PyTorch's `torch.nn.RNNCell`, `LSTMCell` and `GRUCell`: the building
 * block of decoders that choose each step's input from the previous step's output.
 *
 * A cell runs the same fused native op as the sequence modules (`recurrentLayer`), over one
 * time step: its input projection, recurrent GEMM, gate kernel and fused backward are the ones
 * the LSTM/GRU/RNN modules run at every step, so a loop of cell steps computes what the module
 * computes over the whole sequence.
 *
 * Shape legend, used in every doc comment of this file:
 * - B: batch size
 * - I: input size (features)
 * - H: hidden size
 * - G: number of gate blocks (4 LSTM, 3 GRU, 1 RNN)
 */

import type { FloatDType, Tensor } from '../tensor.js'
import { reshape } from '../ops/shape.js'
import { recurrentLayer, type CellKind, type RecurrentWeights } from '../ops/rnn.js'
import { zeros } from '../ops/factories.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { floatDTypeOption } from '../cast.js'
import { tidy } from '../scope.js'
import { Module } from './module.js'
import { checkPositiveInt, deriveSeed, uniform } from './init.js'
import { boolArg, checkModelSize, checkOptions, numberArg, optionKeys, optionsArg, tensorArg, type OptionKeyTable } from '../validate.js'

/** Options shared by {@link RNNCell}, {@link LSTMCell} and {@link GRUCell}. */
export interface RNNCellBaseOptions {
  /** Learn the biases `bias_ih` and `bias_hh` (default true). */
  bias?: boolean
  /**
   * Seed of the initialisation; without it the global generator (`manualSeed`) is used. A cell
   * and a one-layer module of the same kind built with the same seed get the same weights.
   */
  seed?: number
  /** dtype of the parameters: `'float32'` (default) or `'float64'`. Inputs and states must have it too. */
  dtype?: FloatDType
}

const CELL_BASE_TABLE = { bias: true, seed: true, dtype: true } as const satisfies OptionKeyTable<RNNCellBaseOptions>

/** Options of {@link RNNCell}. */
export interface RNNCellOptions extends RNNCellBaseOptions {
  /** The activation: `'tanh'` (default) or `'relu'`. */
  nonlinearity?: 'tanh' | 'relu'
}

/** Options of {@link LSTMCell}: those of every cell. */
export type LSTMCellOptions = RNNCellBaseOptions

/** Options of {@link GRUCell}. */
export interface GRUCellOptions extends RNNCellBaseOptions {
  /**
   * Where the reset gate applies (default true): `true` is PyTorch's (and cuDNN's, and Keras's
   * `reset_after=True`) `r ⊙ (W_hn h + b_hn)`; `false` is Keras's `reset_after=False` (the
   * GRU of TensorFlow.js) `W_hn (r ⊙ h) + b_hn`. As `GRU`'s option of the same name.
   */
  resetAfter?: boolean
}

const RNN_CELL_OPTIONS = optionKeys<RNNCellOptions>({ ...CELL_BASE_TABLE, nonlinearity: true })
const LSTM_CELL_OPTIONS = optionKeys<LSTMCellOptions>(CELL_BASE_TABLE)
const GRU_CELL_OPTIONS = optionKeys<GRUCellOptions>({ ...CELL_BASE_TABLE, resetAfter: true })

/** The state of an {@link LSTMCell}: hidden and cell state, each `[B, H]`. */
export interface LSTMCellState {
  /** Hidden state `[B, H]`. */
  h: Tensor
  /** Cell state `[B, H]`. */
  c: Tensor
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

/**
 * The common base of {@link RNNCell}, {@link LSTMCell} and {@link GRUCell}: the parameters, in
 * PyTorch's names, layouts and order, and the checked single step.
 *
 * Parameters (G gate blocks in PyTorch's order):
 * - `weight_ih`: `[G·H, I]`
 * - `weight_hh`: `[G·H, H]`
 * - `bias_ih`, `bias_hh`: `[G·H]` (absent with `bias: false`)
 *
 * All start from U(−1/√H, 1/√H), as in PyTorch, so a `torch.nn.LSTMCell` state dict loads
 * unchanged (`loadStateDict`, `loadTorchStateDict`).
 */
export abstract class RNNCellBase extends Module {
  /** The native cell the step runs. */
  readonly mode: CellKind
  /** I. */
  readonly inputSize: number
  /** H. */
  readonly hiddenSize: number
  /** Whether the cell has biases. */
  readonly bias: boolean
  /** Number of gate blocks G in each weight: 4 (LSTM), 3 (GRU) or 1 (RNN). */
  readonly gateCount: number
  /** `[G·H, I]`. */
  readonly weight_ih: Tensor
  /** `[G·H, H]`. */
  readonly weight_hh: Tensor
  /** `[G·H]`, or null without bias. */
  readonly bias_ih: Tensor | null
  /** `[G·H]`, or null without bias. */
  readonly bias_hh: Tensor | null
  /** The option keys the concrete cell accepts, which the shared constructor checks (see `RNNBase.optionKeys`). */
  protected static readonly optionKeys: readonly string[] = LSTM_CELL_OPTIONS

  protected constructor(mode: CellKind, gateCount: number, inputSize: number, hiddenSize: number, options: RNNCellBaseOptions) {
    super()
    const name = new.target.name
    options = checkOptions(name, options, new.target.optionKeys)
    this.mode = mode
    this.gateCount = gateCount
    this.inputSize = checkPositiveInt(name, 'inputSize', inputSize)
    this.hiddenSize = checkPositiveInt(name, 'hiddenSize', hiddenSize)
    this.bias = boolArg(name, 'bias', options.bias ?? true)
    if (options.seed !== undefined) numberArg(name, 'seed', options.seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    const dtype = floatDTypeOption(name, options.dtype)
    const G = gateCount * this.hiddenSize
    const H = this.hiddenSize
    checkModelSize(name, `a ${name}(${this.inputSize}, ${H})`, G * (this.inputSize + H) + (this.bias ? 2 * G : 0), dtype)
    // The draws in RNNBase's order for layer 0 (weight_ih, weight_hh, bias_ih, bias_hh), so that
    // a seed gives a cell the weights of the one-layer module with that seed.
    const k = 1 / Math.sqrt(H)
    let n = 0
    const init = (shape: number[]) => uniform(shape, k, deriveSeed(options.seed, n++), dtype)
    this.weight_ih = this.registerParameter('weight_ih', init([G, this.inputSize]))
    this.weight_hh = this.registerParameter('weight_hh', init([G, H]))
    this.bias_ih = this.registerParameter('bias_ih', this.bias ? init([G]) : null)
    this.bias_hh = this.registerParameter('bias_hh', this.bias ? init([G]) : null)
  }

  /**
   * One checked step of the native cell: `x [B, I]`, `h [B, H]` and, for LSTM, `c [B, H]`
   * (zeros in the input's dtype, on its device, when absent) → the next `h` (and `c`).
   * Intermediates (the reshaped input, the default states, the op's `[1, B, H]` output) are
   * freed before it returns.
   */
  protected step(x: Tensor, h: Tensor | null | undefined, c: Tensor | null | undefined): { h: Tensor; c: Tensor | undefined } {
    const op = `${this.constructor.name}.forward`
    const I = this.inputSize
    const H = this.hiddenSize
    tensorArg(op, 'x', x)
    const xs = x.shape
    if (xs.length !== 2 || xs[1] !== I) {
      const hint = xs.length === 1 ? ' (unbatched 1-D input is not supported; add a batch axis of 1)' : ''
      throw new ShapeError(op, `expected input x [B, ${I}], got ${fmt(xs)}${hint}`)
    }
    const dtype = this.weight_ih.dtype
    if (x.dtype !== dtype) {
      throw new DTypeError(op, `expected input x of the parameters' dtype ${dtype}, got ${x.dtype}`)
    }
    const B = xs[0]!
    const checkState = (label: string, s: Tensor | null | undefined): void => {
      if (s === undefined || s === null) return
      tensorArg(op, label, s)
      if (s.shape.length !== 2 || s.shape[0] !== B || s.shape[1] !== H) {
        throw new ShapeError(op, `expected ${label} [B, H] = [${B}, ${H}], got ${fmt(s.shape)}`)
      }
      if (s.dtype !== dtype) {
        throw new DTypeError(op, `expected ${label} of the parameters' dtype ${dtype}, got ${s.dtype}`)
      }
    }
    checkState('h', h)
    checkState('c', c)
    const isLstm = this.mode === 'lstm'
    const w: RecurrentWeights = { wIh: this.weight_ih, wHh: this.weight_hh, bIh: this.bias_ih, bHh: this.bias_hh }
    return tidy(() => {
      const zero = { device: x.device, dtype: x.dtype }
      const h0 = h ?? zeros([B, H], zero)
      const c0 = isLstm ? (c ?? zeros([B, H], zero)) : null
      const r = recurrentLayer(this.mode, reshape(x, [1, B, I]), h0, c0, w)
      if (isLstm && r.cT === undefined) throw new ValueError(op, 'the native LSTM step returned no cell state')
      return { h: r.hT, c: r.cT }
    })
  }

  override extraRepr(): string {
    const parts = [`${this.inputSize}`, `${this.hiddenSize}`]
    if (!this.bias) parts.push('bias=false')
    return parts.join(', ')
  }
}

/**
 * An Elman cell with tanh or ReLU, PyTorch's `torch.nn.RNNCell`: one step of {@link RNN}.
 *
 *   h' = act(W_ih x + b_ih + W_hh h + b_hh),  act = tanh or relu
 *
 * Shapes (legend: B batch, I input, H hidden):
 * - `x`: `[B, I]`; `h`, `h'`: `[B, H]` (`h` defaults to zeros)
 *
 * Parameters: `weight_ih` `[H, I]`, `weight_hh` `[H, H]`, `bias_ih` and `bias_hh` `[H]`, all from
 * U(−1/√H, 1/√H).
 *
 * ```ts
 * const cell = new RNNCell(10, 20)
 * let h = cell.forward(x0)        // x0 [3, 10] → h [3, 20]
 * h = cell.forward(x1, h)
 * ```
 */
export class RNNCell extends RNNCellBase {
  protected static override readonly optionKeys: readonly string[] = RNN_CELL_OPTIONS
  readonly nonlinearity: 'tanh' | 'relu'

  constructor(inputSize: number, hiddenSize: number, options: RNNCellOptions = {}) {
    const nonlinearity = optionsArg('RNNCell', options).nonlinearity ?? 'tanh'
    if (nonlinearity !== 'tanh' && nonlinearity !== 'relu') {
      throw new ValueError('RNNCell', `nonlinearity must be 'tanh' or 'relu', got '${String(nonlinearity)}'`)
    }
    super(nonlinearity === 'tanh' ? 'rnn_tanh' : 'rnn_relu', 1, inputSize, hiddenSize, options)
    this.nonlinearity = nonlinearity
  }

  /** `x [B, I]`, `h [B, H]` (default zeros) → `h' [B, H]`. */
  override forward(x: Tensor, h?: Tensor | null): Tensor {
    return this.step(x, h, null).h
  }

  override extraRepr(): string {
    const base = super.extraRepr()
    return this.nonlinearity === 'relu' ? `${base}, nonlinearity='relu'` : base
  }
}

/**
 * A long short-term memory cell, PyTorch's `torch.nn.LSTMCell`: one step of {@link LSTM}.
 *
 *   i = σ(W_ii x + b_ii + W_hi h + b_hi)
 *   f = σ(W_if x + b_if + W_hf h + b_hf)
 *   g = tanh(W_ig x + b_ig + W_hg h + b_hg)
 *   o = σ(W_io x + b_io + W_ho h + b_ho)
 *   c' = f ⊙ c + i ⊙ g
 *   h' = o ⊙ tanh(c')
 *
 * σ is the logistic sigmoid and ⊙ the elementwise product.
 *
 * Shapes (legend: B batch, I input, H hidden):
 * - `x`: `[B, I]`; `h`, `c`, `h'`, `c'`: `[B, H]` (the state defaults to zeros)
 *
 * Parameters (gate blocks i, f, g, o, as in PyTorch): `weight_ih` `[4H, I]`, `weight_hh`
 * `[4H, H]`, `bias_ih` and `bias_hh` `[4H]`, all from U(−1/√H, 1/√H). A `torch.nn.LSTMCell`
 * state dict loads unchanged.
 *
 * ```ts
 * const cell = new LSTMCell(10, 20)
 * let state = cell.forward(x0)     // x0 [3, 10] → { h [3, 20], c [3, 20] }
 * state = cell.forward(x1, state)
 * ```
 */
export class LSTMCell extends RNNCellBase {
  constructor(inputSize: number, hiddenSize: number, options: LSTMCellOptions = {}) {
    super('lstm', 4, inputSize, hiddenSize, options)
  }

  /** `x [B, I]`, `{ h, c }` each `[B, H]` (default zeros) → `{ h', c' }`, each `[B, H]`. */
  override forward(x: Tensor, state?: LSTMCellState | null): LSTMCellState {
    let h: Tensor | undefined
    let c: Tensor | undefined
    if (state !== undefined && state !== null) {
      if (typeof state !== 'object' || state.h === undefined || state.c === undefined) {
        throw new ValueError('LSTMCell.forward', 'the state must be an object { h, c } with both tensors (or absent, for zeros)')
      }
      h = state.h
      c = state.c
    }
    const r = this.step(x, h, c)
    return { h: r.h, c: r.c! }
  }
}

/**
 * A gated recurrent unit cell, PyTorch's `torch.nn.GRUCell`: one step of {@link GRU}.
 *
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr)
 *   z = σ(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))       (resetAfter: true, default)
 *   n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)       (resetAfter: false)
 *   h' = (1 − z) ⊙ n + z ⊙ h
 *
 * σ is the logistic sigmoid and ⊙ the elementwise product.
 *
 * Shapes (legend: B batch, I input, H hidden):
 * - `x`: `[B, I]`; `h`, `h'`: `[B, H]` (`h` defaults to zeros)
 *
 * Parameters (gate blocks r, z, n, as in PyTorch): `weight_ih` `[3H, I]`, `weight_hh` `[3H, H]`,
 * `bias_ih` and `bias_hh` `[3H]`, all from U(−1/√H, 1/√H).
 *
 * ```ts
 * const cell = new GRUCell(10, 20)
 * let h = cell.forward(x0)        // x0 [3, 10] → h [3, 20]
 * h = cell.forward(x1, h)
 * ```
 */
export class GRUCell extends RNNCellBase {
  protected static override readonly optionKeys: readonly string[] = GRU_CELL_OPTIONS
  /** True: PyTorch/cuDNN formula; false: Keras `reset_after=False` / TensorFlow.js. */
  readonly resetAfter: boolean

  constructor(inputSize: number, hiddenSize: number, options: GRUCellOptions = {}) {
    const resetAfter = boolArg('GRUCell', 'resetAfter', optionsArg('GRUCell', options).resetAfter ?? true)
    super(resetAfter ? 'gru' : 'gru_reset_before', 3, inputSize, hiddenSize, options)
    this.resetAfter = resetAfter
  }

  /** `x [B, I]`, `h [B, H]` (default zeros) → `h' [B, H]`. */
  override forward(x: Tensor, h?: Tensor | null): Tensor {
    return this.step(x, h, null).h
  }

  override extraRepr(): string {
    const base = super.extraRepr()
    return this.resetAfter ? base : `${base}, resetAfter=false`
  }
}
