/**
 * The shared recurrent module: stacking, directions, batch-first layout, dropout between
 * layers, variable lengths and initial states, for {@link RNN}, {@link LSTM} and {@link GRU}.
 *
 * Each layer and direction is one fused native op (`recurrentLayer`): the input projection for
 * all time steps is one GEMM, each step one recurrent GEMM and one fused gate kernel, and the
 * backward pass is fused too. This file only composes those ops, as PyTorch's `rnn.py` does.
 *
 * Shape legend, used in every doc comment of this file:
 * - T: time steps (sequence length)
 * - B: batch size
 * - I: input size (features per step)
 * - H: hidden size
 * - L: number of layers
 * - D: number of directions (2 if bidirectional, else 1)
 */

import { Tensor, type FloatDType } from '../tensor.js'
import { concat, reshape, slice, stack } from '../ops/shape.js'
import { dropout } from '../ops/dropout.js'
import { recurrentLayer, recurrentLayerPair, type CellKind, type RecurrentWeights } from '../ops/rnn.js'
import { zeros } from '../ops/factories.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { floatDTypeOption } from '../cast.js'
import { tidy } from '../scope.js'
import { Module } from './module.js'
import { checkPositiveInt, checkProbability, deriveSeed, uniform } from './init.js'
import { boolArg, checkModelSize, checkOptions, numberArg, optionKeys, optionsArg, type OptionKeyTable, tensorArg, typeError } from '../validate.js'

/** Per-sequence lengths `[B]`: an int32 tensor, an Int32Array or plain numbers, each in [1, T]. */
export type Lengths = Tensor | Int32Array | readonly number[]

/** Options shared by {@link RNN}, {@link LSTM} and {@link GRU}. */
export interface RNNBaseOptions {
  /** Number of stacked layers L (default 1). Layer k > 0 reads the output of layer k − 1. */
  numLayers?: number
  /** Learn the biases `bias_ih` and `bias_hh` (default true). */
  bias?: boolean
  /** Inputs and outputs are `[B, T, ·]` instead of `[T, B, ·]` (default false). States are `[L·D, B, H]` either way. */
  batchFirst?: boolean
  /**
   * Probability of dropout on the output of every layer except the last, in training mode only
   * (default 0), as in PyTorch.
   */
  dropout?: number
  /** Also run each layer from the end to the start and concatenate both outputs (default false). */
  bidirectional?: boolean
  /**
   * Seed of the initialisation and of the dropout masks; without it the global generator
   * (`manualSeed`) is used.
   */
  seed?: number
  /**
   * dtype of the parameters: `'float32'` (default) or `'float64'` (for gradient checks and
   * numerically demanding work). Inputs and given states must have it too.
   */
  dtype?: FloatDType
}

/** The keys of {@link RNNBaseOptions}, for the subclasses' tables. @internal */
export const RNN_BASE_TABLE = {
  numLayers: true,
  bias: true,
  batchFirst: true,
  dropout: true,
  bidirectional: true,
  seed: true,
  dtype: true,
} as const satisfies OptionKeyTable<RNNBaseOptions>
const RNN_BASE_OPTIONS = optionKeys<RNNBaseOptions>(RNN_BASE_TABLE)

/** The optional arguments of `forward`. */
export interface RecurrentInput {
  /** Initial hidden state `[L·D, B, H]` (default zeros). Row `k·D + d` is layer k, direction d (1 = reverse). */
  h0?: Tensor
  /** Initial cell state `[L·D, B, H]`, LSTM only (default zeros). */
  c0?: Tensor
  /**
   * Valid length of each sequence `[B]`, each in [1, T]. Past its length a sequence's state
   * stops changing and its outputs are zero; `hN` (and `cN`) hold the state after its last valid
   * step, and the reverse direction starts at its own last valid element. The inputs need not be
   * sorted. This is PyTorch's `pack_padded_sequence(..., enforce_sorted=False)` without packing.
   */
  lengths?: Lengths
}

const RECURRENT_INPUT_OPTIONS = optionKeys<RecurrentInput>({ h0: true, c0: true, lengths: true })

/** The result of `forward`. */
export interface RecurrentOutput {
  /**
   * The last layer's hidden state at every step, both directions concatenated on the last axis
   * (forward first): `[T, B, D·H]`, or `[B, T, D·H]` with `batchFirst`. Zero past each
   * sequence's length.
   */
  output: Tensor
  /** The final hidden state of every layer and direction: `[L·D, B, H]`. */
  hN: Tensor
  /** The final cell state of every layer and direction, LSTM only: `[L·D, B, H]`. */
  cN?: Tensor
}

function gatesOf(mode: CellKind): number {
  switch (mode) {
    case 'lstm':
      return 4
    case 'gru':
    case 'gru_reset_before':
      return 3
    case 'rnn_tanh':
    case 'rnn_relu':
      return 1
    default:
      throw new ValueError(`RNNBase`, `mode must be one of rnn_tanh, rnn_relu, lstm, gru, gru_reset_before; got '${String(mode)}'`)
  }
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

/**
 * The common base of {@link RNN}, {@link LSTM} and {@link GRU}: a stack of L recurrent layers,
 * each run forward in time and, if bidirectional, also backward, over whole sequences.
 *
 * For layer k and direction d, with x⁽⁰⁾ the input and x⁽ᵏ⁾ the output of layer k − 1
 * (both directions concatenated, then dropout in training mode):
 *
 *   h⁽ᵏ'ᵈ⁾ₜ = cell(x⁽ᵏ⁾ₜ, h⁽ᵏ'ᵈ⁾ₜ₋₁)   for t = 1 … T (d = 0) or t = T … 1 (d = 1)
 *
 * Parameters, registered in PyTorch's order (layer, then direction, then
 * weight_ih, weight_hh, bias_ih, bias_hh), with G gates (4 LSTM, 3 GRU, 1 RNN):
 * - `weight_ih_l{k}`: `[G·H, I]` for k = 0, `[G·H, D·H]` for k > 0
 * - `weight_hh_l{k}`: `[G·H, H]`
 * - `bias_ih_l{k}`, `bias_hh_l{k}`: `[G·H]`
 * - the reverse direction's have the suffix `_reverse`, e.g. `weight_hh_l0_reverse`
 *
 * Every weight and bias starts from U(−1/√H, 1/√H), as in PyTorch.
 */
export class RNNBase extends Module {
  /** The native cell every layer runs. */
  readonly mode: CellKind
  /** I. */
  readonly inputSize: number
  /** H. */
  readonly hiddenSize: number
  /** L. */
  readonly numLayers: number
  readonly bias: boolean
  readonly batchFirst: boolean
  /** Dropout probability between layers (training mode only). */
  readonly dropout: number
  readonly bidirectional: boolean
  /** Number of gate blocks G in each weight: 4 (LSTM), 3 (GRU) or 1 (RNN). */
  readonly gateCount: number
  readonly #weights: RecurrentWeights[] = []
  readonly #seed: number | undefined
  #dropoutCalls = 0
  /**
   * The option keys the constructor accepts (others are refused): each subclass with options
   * of its own lists them, so that the shared constructor checks the keys of the concrete
   * class. A subclass of yours that passes options of its own on to `super` extends the list:
   * `protected static override readonly optionKeys = [...LSTM.optionKeys, 'mine']`.
   */
  protected static readonly optionKeys: readonly string[] = RNN_BASE_OPTIONS

  constructor(mode: CellKind, inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super()
    const name = this.constructor.name
    options = checkOptions(name, options, new.target.optionKeys)
    this.mode = mode
    this.gateCount = gatesOf(mode)
    this.inputSize = checkPositiveInt(name, 'inputSize', inputSize)
    this.hiddenSize = checkPositiveInt(name, 'hiddenSize', hiddenSize)
    this.numLayers = checkPositiveInt(name, 'numLayers', options.numLayers ?? 1)
    this.bias = boolArg(name, 'bias', options.bias ?? true)
    this.batchFirst = boolArg(name, 'batchFirst', options.batchFirst ?? false)
    this.dropout = checkProbability(name, 'dropout', options.dropout ?? 0)
    this.bidirectional = boolArg(name, 'bidirectional', options.bidirectional ?? false)
    if (options.seed !== undefined) numberArg(name, 'seed', options.seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    this.#seed = options.seed
    const dtype = floatDTypeOption(name, options.dtype)
    {
      // Every parameter's size, checked before the first is allocated.
      const D = this.bidirectional ? 2 : 1
      const G = this.gateCount * this.hiddenSize
      const perDir = (inp: number) => G * inp + G * this.hiddenSize + (this.bias ? 2 * G : 0)
      const total = D * (perDir(this.inputSize) + (this.numLayers - 1) * perDir(D * this.hiddenSize))
      checkModelSize(name, `a ${name} with inputSize ${this.inputSize}, hiddenSize ${this.hiddenSize} and ${this.numLayers} layer(s)`, total, dtype)
    }

    const H = this.hiddenSize
    const D = this.numDirections
    const G = this.gateCount * H
    const k = 1 / Math.sqrt(H)
    let n = 0
    const init = (shape: number[]) => uniform(shape, k, deriveSeed(this.#seed, n++), dtype)
    for (let layer = 0; layer < this.numLayers; layer++) {
      const layerInput = layer === 0 ? this.inputSize : D * H
      for (let dir = 0; dir < D; dir++) {
        const sfx = `_l${layer}${dir === 1 ? '_reverse' : ''}`
        const w: RecurrentWeights = {
          wIh: this.registerParameter(`weight_ih${sfx}`, init([G, layerInput])),
          wHh: this.registerParameter(`weight_hh${sfx}`, init([G, H])),
        }
        if (this.bias) {
          w.bIh = this.registerParameter(`bias_ih${sfx}`, init([G]))
          w.bHh = this.registerParameter(`bias_hh${sfx}`, init([G]))
        }
        this.#weights.push(w)
      }
    }
  }

  /** D: 2 if bidirectional, else 1. */
  get numDirections(): number {
    return this.bidirectional ? 2 : 1
  }

  /** The parameters of layer `layer` (0-based) in direction `reverse`; the live tensors. */
  layerWeights(layer: number, reverse = false): RecurrentWeights {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new ValueError(`${this.constructor.name}.layerWeights`, `layer must be an integer in [0, ${this.numLayers}), got ${layer}`)
    }
    if (reverse && !this.bidirectional) {
      throw new ValueError(`${this.constructor.name}.layerWeights`, `the module is not bidirectional`)
    }
    return { ...this.#weights[layer * this.numDirections + (reverse ? 1 : 0)]! }
  }

  /**
   * Runs the stack over `x`; the subclasses narrow the types (`LSTM.forward` always returns
   * `cN`, `RNN.forward` and `GRU.forward` never take `c0`). See {@link RecurrentInput} and
   * {@link RecurrentOutput}.
   *
   * `x [T, B, I]` (or `[B, T, I]`) → `{ output [T, B, D·H], hN [L·D, B, H], cN? [L·D, B, H] }`.
   */
  forward(x: Tensor, input: RecurrentInput = {}): RecurrentOutput {
    return this.run(x, input)
  }

  /**
   * Runs every layer and direction over `x`.
   *
   * - `x`: `[T, B, I]`, or `[B, T, I]` with `batchFirst`
   * - `h0`, `c0`: `[L·D, B, H]` (default zeros); `c0` only for LSTM
   * - `lengths`: `[B]`, each in [1, T]
   *
   * Returns `output` `[T, B, D·H]` (`[B, T, D·H]` with `batchFirst`), `hN` `[L·D, B, H]` and,
   * for LSTM, `cN` `[L·D, B, H]`.
   *
   * The intermediate tensors (state rows, per-direction outputs, default states) are freed
   * before it returns (a `tidy` scope), so that their autograd graphs do not wait for the GC.
   */
  protected run(x: Tensor, input: RecurrentInput = {}): RecurrentOutput {
    const name = `${this.constructor.name}.forward`
    tensorArg(name, 'x', x)
    input = checkOptions(name, input, RECURRENT_INPUT_OPTIONS)
    if (input.h0 !== undefined) tensorArg(name, 'h0', input.h0, 'option')
    if (input.c0 !== undefined) tensorArg(name, 'c0', input.c0, 'option')
    return tidy(() => this.#run(x, input))
  }

  #run(x: Tensor, input: RecurrentInput): RecurrentOutput {
    const name = `${this.constructor.name}.forward`
    const isLstm = this.mode === 'lstm'
    const xs = x.shape
    if (xs.length !== 3) {
      const want = this.batchFirst ? '[B, T, I]' : '[T, B, I]'
      throw new ShapeError(`${name}`, `expected input ${want} with I = ${this.inputSize}, got ${fmt(xs)} (unbatched 2-D input is not supported; add a batch axis of 1)`)
    }
    if (xs[2] !== this.inputSize) {
      const want = this.batchFirst ? `[B, T, ${this.inputSize}]` : `[T, B, ${this.inputSize}]`
      throw new ShapeError(`${name}`, `expected input ${want}, got ${fmt(xs)}`)
    }
    const pdtype = this.#weights[0]!.wIh.dtype
    if (x.dtype !== pdtype) {
      throw new DTypeError(`${name}`, `expected input of the parameters' dtype ${pdtype}, got ${x.dtype}`)
    }
    const B = (this.batchFirst ? xs[0] : xs[1])!
    const H = this.hiddenSize
    const D = this.numDirections
    const L = this.numLayers
    const stateShape = [L * D, B, H]
    const checkState = (what: string, s: Tensor | undefined) => {
      if (s === undefined) return
      const ss = s.shape
      if (ss.length !== 3 || ss[0] !== L * D || ss[1] !== B || ss[2] !== H) {
        throw new ShapeError(`${name}`, `expected ${what} [L·D, B, H] = ${fmt(stateShape)}, got ${fmt(ss)}`)
      }
    }
    checkState('h0', input.h0)
    if (input.c0 !== undefined && !isLstm) {
      throw new ValueError(`${name}`, `c0 is only for LSTM; ${this.constructor.name} has no cell state`)
    }
    checkState('c0', input.c0)
    const lengths = this.#checkLengths(name, input.lengths)

    // Row k·D + d of a state tensor, as [B, H].
    const row = (s: Tensor, i: number): Tensor => (L * D === 1 ? reshape(s, [B, H]) : reshape(slice(s, 0, i, 1), [B, H]))

    // Every layer reads and writes the module's layout (the op takes batch-first as it is), and
    // absent states are the op's zeros: one native op per layer and direction.
    const batchFirst = this.batchFirst
    let layerInput = x
    const hs: Tensor[] = []
    const cs: Tensor[] = []
    for (let layer = 0; layer < L; layer++) {
      const ys: Tensor[] = []
      // Neither state given: the op starts both at zero. One of an LSTM's given: the other is
      // zeros on the input's device, in its dtype (a device mismatch with the weights is the
      // op's DeviceError).
      const zero = () => zeros([B, H], { device: x.device, dtype: x.dtype })
      const given = input.h0 !== undefined || (isLstm && input.c0 !== undefined)
      const states = (i: number) => ({
        h0: input.h0 !== undefined ? row(input.h0, i) : given ? zero() : null,
        c0: isLstm && given ? (input.c0 !== undefined ? row(input.c0, i) : zero()) : null,
      })
      const keep = (r: { y: Tensor; hT: Tensor; cT?: Tensor }) => {
        ys.push(r.y)
        hs.push(r.hT)
        if (isLstm) {
          if (r.cT === undefined || r.cT === null) throw new ValueError(`${name}`, `the native LSTM layer returned no cell state`)
          cs.push(r.cT)
        }
      }
      if (D === 2) {
        // Both directions as one op: on the CPU their loops run at once, one per thread.
        const [f, b] = [states(layer * 2), states(layer * 2 + 1)]
        const opts: { lengths?: Int32Array | readonly number[]; batchFirst: boolean } = { batchFirst }
        if (lengths !== undefined) opts.lengths = lengths
        const pair = recurrentLayerPair(this.mode, layerInput, [f.h0, b.h0], [f.c0, b.c0], [this.#weights[layer * 2]!, this.#weights[layer * 2 + 1]!], opts)
        for (const r of pair) keep(r)
      } else {
        const st = states(layer)
        const opts: { lengths?: Int32Array | readonly number[]; reverse: boolean; batchFirst: boolean } = { reverse: false, batchFirst }
        if (lengths !== undefined) opts.lengths = lengths
        keep(recurrentLayer(this.mode, layerInput, st.h0, st.c0, this.#weights[layer]!, opts))
      }
      let out = D === 1 ? ys[0]! : concat(ys, 2)
      if (layer < L - 1 && this.dropout > 0 && this.training) {
        const seed = deriveSeed(this.#seed === undefined ? undefined : this.#seed + 1, this.#dropoutCalls++)
        out = dropout(out, this.dropout, seed === undefined ? { training: true } : { seed, training: true })
      }
      layerInput = out
    }
    const stackStates = (s: Tensor[]) => (s.length === 1 ? reshape(s[0]!, [1, B, H]) : stack(s, 0))
    const result: RecurrentOutput = { output: layerInput, hN: stackStates(hs) }
    if (isLstm) result.cN = stackStates(cs)
    return result
  }

  /**
   * `lengths` as `recurrentLayer` takes them, converted once for every layer and direction:
   * arrays pass as they are and a Tensor is read here, once. The native op checks the count and
   * every value (integers in [1, T]); only the form of a Tensor (1-D int32) is checked here.
   */
  #checkLengths(name: string, lengths: Lengths | undefined): Int32Array | readonly number[] | undefined {
    if (lengths === undefined || lengths === null) return undefined
    if (Array.isArray(lengths)) {
      for (const [i, v] of lengths.entries()) numberArg(name, `lengths[${i}]`, v, { nonFinite: true })
      return lengths
    }
    if (lengths instanceof Int32Array) return lengths
    if (!(lengths instanceof Tensor)) throw typeError(name, "option 'lengths'", 'an int32 Tensor, an Int32Array or an array of numbers', lengths)
    const t = lengths
    if (t.shape.length !== 1) {
      throw new ShapeError(`${name}`, `expected lengths [B] (1-D), got ${fmt(t.shape)}`)
    }
    if (t.dtype !== 'int32') {
      throw new ValueError(`${name}`, `expected lengths of dtype int32, got ${t.dtype}`)
    }
    return t.dataSync() as Int32Array
  }

  override extraRepr(): string {
    const parts = [`${this.inputSize}`, `${this.hiddenSize}`]
    if (this.numLayers !== 1) parts.push(`numLayers=${this.numLayers}`)
    if (!this.bias) parts.push('bias=false')
    if (this.batchFirst) parts.push('batchFirst=true')
    if (this.dropout) parts.push(`dropout=${this.dropout}`)
    if (this.bidirectional) parts.push('bidirectional=true')
    return parts.join(', ')
  }
}

/** Options of {@link RNN}. */
export interface RNNOptions extends RNNBaseOptions {
  /** The activation: `'tanh'` (default) or `'relu'`. */
  nonlinearity?: 'tanh' | 'relu'
}

const RNN_OPTIONS = optionKeys<RNNOptions>({ ...RNN_BASE_TABLE, nonlinearity: true })

/** The result of {@link RNN.forward} and {@link GRU.forward}. */
export interface RNNOutput {
  /** `[T, B, D·H]`, or `[B, T, D·H]` with `batchFirst`; zero past each sequence's length. */
  output: Tensor
  /** `[L·D, B, H]`: the state after each sequence's last valid step. */
  hN: Tensor
}

/** The optional arguments of {@link RNN.forward} and {@link GRU.forward}. */
export interface RNNInput {
  /** Initial hidden state `[L·D, B, H]` (default zeros). */
  h0?: Tensor
  /** Valid length of each sequence `[B]`, each in [1, T]; see {@link RecurrentInput.lengths}. */
  lengths?: Lengths
}

/**
 * An Elman recurrent network with tanh or ReLU, PyTorch's `torch.nn.RNN`. For each step:
 *
 *   hₜ = act(W_ih xₜ + b_ih + W_hh hₜ₋₁ + b_hh),  act = tanh or relu
 *
 * Shapes (legend: T time, B batch, I input, H hidden, L layers, D directions):
 * - input `x`: `[T, B, I]`, or `[B, T, I]` with `batchFirst`
 * - `h0`, `hN`: `[L·D, B, H]`
 * - `output`: `[T, B, D·H]`, or `[B, T, D·H]` with `batchFirst`
 *
 * Parameters: `weight_ih_l{k}` `[H, I or D·H]`, `weight_hh_l{k}` `[H, H]`,
 * `bias_ih_l{k}` and `bias_hh_l{k}` `[H]`, and the `_reverse` ones when bidirectional;
 * all from U(−1/√H, 1/√H).
 *
 * ```ts
 * const rnn = new RNN(10, 20, { numLayers: 2 })
 * const { output, hN } = rnn.forward(x) // x [5, 3, 10] → output [5, 3, 20], hN [2, 3, 20]
 * ```
 */
export class RNN extends RNNBase {
  protected static override readonly optionKeys: readonly string[] = RNN_OPTIONS
  readonly nonlinearity: 'tanh' | 'relu'

  constructor(inputSize: number, hiddenSize: number, options: RNNOptions = {}) {
    const nonlinearity = optionsArg(new.target.name, options).nonlinearity ?? 'tanh'
    if (nonlinearity !== 'tanh' && nonlinearity !== 'relu') {
      throw new ValueError(new.target.name, `nonlinearity must be 'tanh' or 'relu', got '${String(nonlinearity)}'`)
    }
    super(nonlinearity === 'tanh' ? 'rnn_tanh' : 'rnn_relu', inputSize, hiddenSize, options)
    this.nonlinearity = nonlinearity
  }

  /** `x [T, B, I]` (or `[B, T, I]`) → `{ output [T, B, D·H], hN [L·D, B, H] }`. */
  override forward(x: Tensor, input: RNNInput = {}): RNNOutput {
    const { output, hN } = this.run(x, input)
    return { output, hN }
  }

  override extraRepr(): string {
    const base = super.extraRepr()
    return this.nonlinearity === 'relu' ? `${base}, nonlinearity='relu'` : base
  }
}
