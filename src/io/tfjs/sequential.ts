/**
 * {@link KerasSequential}: a chain of `recurrent` modules run with Keras semantics (batch-first
 * tensors, recurrent layers returning every step or only the last, Bidirectional merge modes,
 * Dense activations). It is the model that tfjs/Keras weights load into and are written from.
 */

import type { Tensor } from '../../tensor.js'
import { concat, reshape, slice, split, transpose } from '../../ops/shape.js'
import { softmax } from '../../ops/softmax.js'
import { ValueError } from '../../errors.js'
import { boolArg, checkOptions, optionKeys, stringArg, tensorArg, typeError } from '../../validate.js'
import { Module } from '../../nn/module.js'
import { Linear } from '../../nn/linear.js'
import { Embedding } from '../../nn/embedding.js'
import { Dropout } from '../../nn/dropout.js'
import { RNNBase } from '../../nn/rnn.js'
import { LSTM } from '../../nn/lstm.js'
import { GRU } from '../../nn/gru.js'

/** Activations of Keras `Dense` and `Activation` layers that `recurrent` runs. */
export type KerasActivation = 'linear' | 'relu' | 'sigmoid' | 'tanh' | 'softmax'

/** How a `Bidirectional` layer merges its two directions (Keras `merge_mode`). */
export type MergeMode = 'concat' | 'sum' | 'mul' | 'ave'

/** Options of {@link KerasSequential.add}. */
export interface KerasLayerOptions {
  /** The Keras layer name (default: generated, e.g. `lstm_LSTM1`). */
  name?: string
  /**
   * Recurrent layers: return the output of every step, `[B, T, D·H]` (true), or only the last
   * one, `[B, D·H]` (false, the Keras default).
   */
  returnSequences?: boolean
  /** Bidirectional recurrent layers: how the two directions merge (default `'concat'`). */
  mergeMode?: MergeMode
  /** `Linear` (Keras `Dense`) and activation layers: the activation applied after it (default `'linear'`). */
  activation?: KerasActivation
  /** Bidirectional layers: the name of the wrapped layer (default: generated). */
  innerName?: string
}

const KERAS_LAYER_OPTIONS = optionKeys<KerasLayerOptions>({ name: true, returnSequences: true, mergeMode: true, activation: true, innerName: true })
const KERAS_SEQUENTIAL_OPTIONS = optionKeys<{ name?: string; inputLength?: number | null }>({ name: true, inputLength: true })

/** One layer of a {@link KerasSequential}, with the Keras settings that are not in its module. */
export interface KerasLayer {
  /** The Keras layer name. */
  readonly name: string
  /**
   * The module that computes it: `Embedding`, `Linear` (Dense), `RNN`/`LSTM`/`GRU`
   * (SimpleRNN/LSTM/GRU, or a Bidirectional wrapper when `bidirectional`), `Dropout`, or a
   * {@link KerasActivationLayer}.
   */
  readonly module: Module
  /** Recurrent layers: every step (true) or only the last (false). */
  readonly returnSequences: boolean
  /** Bidirectional recurrent layers: how the directions merge. */
  readonly mergeMode: MergeMode
  /** Dense and Activation layers: the activation after the affine map. */
  readonly activation: KerasActivation
  /** Bidirectional layers: the Keras name of the wrapped layer. */
  readonly innerName: string | undefined
}

/** A parameter-free layer applying a {@link KerasActivation} (Keras `Activation`). */
export class KerasActivationLayer extends Module {
  readonly activation: KerasActivation
  constructor(activation: KerasActivation) {
    super()
    this.activation = checkActivation('KerasActivationLayer', activation)
  }
  override forward(x: Tensor): Tensor {
    return applyActivation(tensorArg('KerasActivationLayer.forward', 'x', x), this.activation)
  }
  override extraRepr(): string {
    return `'${this.activation}'`
  }
}

/** Every {@link KerasActivation}, for argument checks. @internal */
export const ACTIVATIONS: readonly KerasActivation[] = ['linear', 'relu', 'sigmoid', 'tanh', 'softmax']

function checkActivation(op: string, a: unknown): KerasActivation {
  if (typeof a === 'string' && (ACTIVATIONS as readonly string[]).includes(a)) return a as KerasActivation
  throw new ValueError(op, `activation must be one of ${ACTIVATIONS.map((s) => `'${s}'`).join(', ')}; got '${String(a)}'`)
}

function applyActivation(x: Tensor, a: KerasActivation): Tensor {
  switch (a) {
    case 'linear':
      return x
    case 'relu':
      return x.relu()
    case 'sigmoid':
      return x.sigmoid()
    case 'tanh':
      return x.tanh()
    case 'softmax':
      return softmax(x, -1)
  }
}

/**
 * A chain of layers with Keras semantics: batch-first tensors (`[B, T, F]`), recurrent layers
 * that return either every step or only the last one, `Dense` applied to the last axis, and
 * Bidirectional merge modes. It is what {@link loadTfjsModel} returns, and what
 * {@link saveTfjsModel} writes back.
 *
 * Each layer's module is registered under its index (`0`, `1`, ...), so the parameter names are
 * PyTorch's: `0.weight` (Embedding), `1.weight_ih_l0`, `1.bias_hh_l0_reverse`, `2.weight`, ...
 *
 * ```ts
 * const m = new KerasSequential()
 *   .add(new Embedding(1000, 32))
 *   .add(new LSTM(32, 64, { batchFirst: true, bidirectional: true }), { returnSequences: false })
 *   .add(new Linear(128, 10), { activation: 'softmax' })
 * m.forward(tokens) // int32 [B, T] → [B, 10]
 * ```
 */
export class KerasSequential extends Module {
  /** The Keras model name. */
  name: string
  /** The time steps T of the first layer's input when fixed (Keras `batch_input_shape[1]`), else null. */
  inputLength: number | null = null
  readonly #layers: KerasLayer[] = []
  readonly #counters = new Map<string, number>()

  constructor(options: { name?: string; inputLength?: number | null } = {}) {
    super()
    options = checkOptions('KerasSequential', options, KERAS_SEQUENTIAL_OPTIONS)
    this.name = options.name === undefined ? 'sequential_1' : stringArg('KerasSequential', 'name', options.name)
    if (options.inputLength !== undefined && options.inputLength !== null) {
      if (!Number.isInteger(options.inputLength) || options.inputLength < 1) {
        throw new ValueError('KerasSequential', `inputLength must be a positive integer or null, got ${options.inputLength}`)
      }
      this.inputLength = options.inputLength
    }
  }

  /** The layers, in order. */
  get layers(): readonly KerasLayer[] {
    return this.#layers
  }

  /** Number of layers. */
  get length(): number {
    return this.#layers.length
  }

  /**
   * Appends a layer. Recurrent modules that are not `batchFirst` are run on transposed inputs,
   * so any `RNN`, `LSTM` or `GRU` works; a multi-layer one behaves like that many stacked Keras
   * layers (all but the last returning sequences). Returns `this`.
   */
  add(module: Module, options: KerasLayerOptions = {}): this {
    const op = 'KerasSequential.add'
    if (!(module instanceof Module)) throw typeError(op, "argument 'module'", 'a Module', module)
    options = checkOptions(op, options, KERAS_LAYER_OPTIONS)
    if (options.returnSequences !== undefined) boolArg(op, 'returnSequences', options.returnSequences)
    if (options.name !== undefined) stringArg(op, 'name', options.name)
    if (options.innerName !== undefined) stringArg(op, 'innerName', options.innerName)
    const ok =
      module instanceof RNNBase ||
      module instanceof Linear ||
      module instanceof Embedding ||
      module instanceof Dropout ||
      module instanceof KerasActivationLayer
    if (!ok) {
      throw new ValueError(op, `unsupported module ${module.constructor.name}: expected Embedding, Linear, RNN, LSTM, GRU, Dropout or KerasActivationLayer`)
    }
    const mergeMode = options.mergeMode ?? 'concat'
    if (!['concat', 'sum', 'mul', 'ave'].includes(mergeMode)) {
      throw new ValueError(op, `mergeMode must be 'concat', 'sum', 'mul' or 'ave', got '${String(mergeMode)}'`)
    }
    const activation = module instanceof KerasActivationLayer ? module.activation : checkActivation(op, options.activation ?? 'linear')
    if (options.activation !== undefined && !(module instanceof Linear) && !(module instanceof KerasActivationLayer)) {
      throw new ValueError(op, `activation applies to Linear (Dense) layers only; ${module.constructor.name} has its own`)
    }
    const base = kerasClassOf(module)
    const name = options.name ?? this.#uniqueName(base)
    if (this.#layers.some((l) => l.name === name)) throw new ValueError(op, `a layer named '${name}' already exists`)
    const bidi = module instanceof RNNBase && module.bidirectional
    const innerName = bidi ? (options.innerName ?? this.#uniqueName(rnnClassOf(module as RNNBase))) : undefined
    this.registerModule(String(this.#layers.length), module)
    this.#layers.push({
      name,
      module,
      returnSequences: options.returnSequences ?? false,
      mergeMode,
      activation,
      innerName,
    })
    return this
  }

  #uniqueName(cls: string): string {
    const n = (this.#counters.get(cls) ?? 0) + 1
    this.#counters.set(cls, n)
    const name = `${snake(cls)}_${cls}${n}`
    return this.#layers.some((l) => l.name === name) ? this.#uniqueName(cls) : name
  }

  /**
   * Runs the layers in order. The input is `[B, T, I]` floats, or int32 token ids `[B, T]` when
   * the first layer is an Embedding (or `[B, I]` when it is a Dense layer).
   */
  override forward(x: Tensor): Tensor {
    let y = tensorArg('KerasSequential.forward', 'x', x)
    for (const l of this.#layers) y = runLayer(l, y)
    return y
  }

  override extraRepr(): string {
    return `'${this.name}'`
  }
}

function runLayer(l: KerasLayer, x: Tensor): Tensor {
  const m = l.module
  if (m instanceof Linear) return applyActivation(m.forward(x), l.activation)
  if (!(m instanceof RNNBase)) return (m as unknown as { forward(x: Tensor): Tensor }).forward(x)
  if (x.rank !== 3) {
    throw new ValueError(`KerasSequential.forward`, `layer '${l.name}' expects [B, T, ${m.inputSize}], got [${x.shape.join(', ')}]`)
  }
  const { output, hN } = m.forward(m.batchFirst ? x : transpose(x, 0, 1))
  const H = m.hiddenSize
  const D = m.numDirections
  const B = x.shape[0]!
  if (l.returnSequences) {
    const seq = m.batchFirst ? output : transpose(output, 0, 1) // [B, T, D·H]
    if (D === 1 || l.mergeMode === 'concat') return seq
    const [f, b] = split(seq, 2, [H, H]) as [Tensor, Tensor]
    return merge(f, b, l.mergeMode)
  }
  const last = (m.numLayers - 1) * D
  if (D === 1) return reshape(m.numLayers === 1 ? hN : slice(hN, 0, last, 1), [B, H])
  const f = reshape(slice(hN, 0, last, 1), [B, H])
  const b = reshape(slice(hN, 0, last + 1, 1), [B, H])
  return l.mergeMode === 'concat' ? concat([f, b], 1) : merge(f, b, l.mergeMode)
}

function merge(f: Tensor, b: Tensor, mode: MergeMode): Tensor {
  switch (mode) {
    case 'sum':
      return f.add(b)
    case 'mul':
      return f.mul(b)
    case 'ave':
      return f.add(b).scale(0.5)
    default:
      return concat([f, b], -1)
  }
}

function kerasClassOf(m: Module): string {
  if (m instanceof RNNBase) return m.bidirectional ? 'Bidirectional' : rnnClassOf(m)
  if (m instanceof Linear) return 'Dense'
  if (m instanceof Embedding) return 'Embedding'
  if (m instanceof Dropout) return 'Dropout'
  return 'Activation'
}

/** The Keras class of a recurrent module (without a Bidirectional wrapper). @internal */
export function rnnClassOf(m: RNNBase): string {
  if (m instanceof LSTM) return 'LSTM'
  if (m instanceof GRU) return 'GRU'
  return 'SimpleRNN'
}

function snake(cls: string): string {
  return cls === 'SimpleRNN' ? 'simple_rnn' : cls.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()
}
