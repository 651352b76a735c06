/**
 * Weight exchange with TensorFlow.js (tfjs-layers) and Keras: load a layers model saved as
 * `model.json` plus weight shard files (what `model.save('file://dir')` writes) into an
 * equivalent `recurrent` model, and write one back that `tf.loadLayersModel` reads.
 *
 * Supported layers: `Embedding`, `Dense`, `SimpleRNN`, `LSTM`, `GRU`, `Bidirectional` (around
 * any of the three recurrent layers), `Dropout`, `Activation` and `InputLayer`, in a
 * `Sequential` model or a functional model that is a single chain.
 *
 * Layouts (see `notes/rnn-conventions.md`): Keras stores `kernel [in, G·u]`,
 * `recurrent_kernel [u, G·u]` and one `bias [G·u]`, with gate column blocks `i|f|c|o` (LSTM)
 * and `z|r|h` (GRU). They load as `weight_ih = kernelᵀ`, `weight_hh = recurrent_kernelᵀ`,
 * `bias_ih = bias`, `bias_hh = 0`, with the GRU blocks reordered to PyTorch's `r|z|n`. The
 * tfjs GRU is reset-before and loads as `GRU(..., { resetAfter: false })`; a Keras GRU with
 * `reset_after=True` (bias `[2, 3u]`) loads as the default `GRU` with both biases. On export
 * the two biases are summed, which is exact for every cell this file writes.
 */

import { mkdir, readFile, rename, writeFile, unlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { Tensor } from '../tensor.js'
import { concat, reshape, slice, split, transpose } from '../ops/shape.js'
import { softmax } from '../ops/softmax.js'
import { tensor } from '../ops/factories.js'
import { CheckpointError, ValueError } from '../errors.js'
import { Module } from '../nn/module.js'
import { Linear } from '../nn/linear.js'
import { Embedding } from '../nn/embedding.js'
import { Dropout } from '../nn/dropout.js'
import { RNN, RNNBase } from '../nn/rnn.js'
import { LSTM } from '../nn/lstm.js'
import { GRU } from '../nn/gru.js'

// ---- the model ---------------------------------------------------------------------------------

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
    return applyActivation(x, this.activation)
  }
  override extraRepr(): string {
    return `'${this.activation}'`
  }
}

const ACTIVATIONS: readonly KerasActivation[] = ['linear', 'relu', 'sigmoid', 'tanh', 'softmax']

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
    this.name = options.name ?? 'sequential_1'
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
    if (!(module instanceof Module)) throw new ValueError(op, 'expected a Module')
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
    let y = x
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

function rnnClassOf(m: RNNBase): string {
  if (m instanceof LSTM) return 'LSTM'
  if (m instanceof GRU) return 'GRU'
  return 'SimpleRNN'
}

function snake(cls: string): string {
  return cls === 'SimpleRNN' ? 'simple_rnn' : cls.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()
}

// ---- layout conversions ------------------------------------------------------------------------

/** A dense float32 array with its shape, as weights travel in tfjs artifacts. */
export interface NamedWeight {
  name: string
  shape: number[]
  data: Float32Array
}

/** Gate blocks of a cell: count G and, for each PyTorch block j, the Keras block it comes from. */
function gatesOfCell(cell: 'lstm' | 'gru' | 'rnn'): { G: number; perm: number[] } {
  if (cell === 'lstm') return { G: 4, perm: [0, 1, 2, 3] } // i f g o  ==  i f c o
  if (cell === 'gru') return { G: 3, perm: [1, 0, 2] } // r z n  <-  z r h
  return { G: 1, perm: [0] }
}

/** Keras `[in, G·H]` (blocks in Keras order) → PyTorch `[G·H, in]` (blocks in PyTorch order). */
function kernelToTorch(k: Float32Array, inDim: number, G: number, H: number, perm: number[]): Float32Array {
  const GH = G * H
  const out = new Float32Array(GH * inDim)
  for (let j = 0; j < G; j++) {
    const src = perm[j]! * H
    for (let h = 0; h < H; h++) {
      const row = (j * H + h) * inDim
      const col = src + h
      for (let i = 0; i < inDim; i++) out[row + i] = k[i * GH + col]!
    }
  }
  return out
}

/** The inverse of {@link kernelToTorch}. */
function kernelToKeras(w: Float32Array, inDim: number, G: number, H: number, perm: number[]): Float32Array {
  const GH = G * H
  const out = new Float32Array(GH * inDim)
  for (let j = 0; j < G; j++) {
    const dst = perm[j]! * H
    for (let h = 0; h < H; h++) {
      const row = (j * H + h) * inDim
      const col = dst + h
      for (let i = 0; i < inDim; i++) out[i * GH + col] = w[row + i]!
    }
  }
  return out
}

function biasToTorch(b: Float32Array, G: number, H: number, perm: number[]): Float32Array {
  const out = new Float32Array(G * H)
  for (let j = 0; j < G; j++) out.set(b.subarray(perm[j]! * H, perm[j]! * H + H), j * H)
  return out
}

function biasToKeras(b: Float32Array, G: number, H: number, perm: number[]): Float32Array {
  const out = new Float32Array(G * H)
  for (let j = 0; j < G; j++) out.set(b.subarray(j * H, j * H + H), perm[j]! * H)
  return out
}

/** `a + b` elementwise in float32, keeping `a` bit for bit where `b` is zero (so `-0` survives). */
function addExact(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = b[i] === 0 ? a[i]! : a[i]! + b[i]!
  return out
}

/** The PyTorch-layout weights of one recurrent layer and direction, as plain arrays. */
export interface TorchRecurrentArrays {
  /** `[G·H, in]` */
  weightIh: Float32Array
  /** `[G·H, H]` */
  weightHh: Float32Array
  /** `[G·H]`, or null without bias */
  biasIh: Float32Array | null
  /** `[G·H]`, or null without bias */
  biasHh: Float32Array | null
}

/**
 * Converts Keras/tfjs weights of one recurrent layer (one direction) to PyTorch layout.
 *
 * - `kernel [in, G·H]` → `weightIh [G·H, in]`; `recurrentKernel [H, G·H]` → `weightHh [G·H, H]`
 * - `bias [G·H]` → `biasIh`, with `biasHh = 0`; a Keras reset-after GRU bias `[2, 3H]` →
 *   `biasIh` (row 0) and `biasHh` (row 1)
 * - GRU blocks `z|r|h` → `r|z|n`
 */
export function kerasToTorchRecurrent(
  cell: 'lstm' | 'gru' | 'rnn',
  H: number,
  kernel: Float32Array,
  recurrentKernel: Float32Array,
  bias: Float32Array | null,
): TorchRecurrentArrays {
  const { G, perm } = gatesOfCell(cell)
  const GH = G * H
  if (kernel.length % GH !== 0) throw new ValueError('kerasToTorchRecurrent', `kernel of ${kernel.length} values is not [in, ${GH}]`)
  if (recurrentKernel.length !== H * GH) throw new ValueError('kerasToTorchRecurrent', `recurrent kernel must be [${H}, ${GH}], got ${recurrentKernel.length} values`)
  const inDim = kernel.length / GH
  const out: TorchRecurrentArrays = {
    weightIh: kernelToTorch(kernel, inDim, G, H, perm),
    weightHh: kernelToTorch(recurrentKernel, H, G, H, perm),
    biasIh: null,
    biasHh: null,
  }
  if (bias !== null) {
    if (bias.length === GH) {
      out.biasIh = biasToTorch(bias, G, H, perm)
      out.biasHh = new Float32Array(GH)
    } else if (bias.length === 2 * GH && cell === 'gru') {
      out.biasIh = biasToTorch(bias.subarray(0, GH), G, H, perm)
      out.biasHh = biasToTorch(bias.subarray(GH), G, H, perm)
    } else throw new ValueError('kerasToTorchRecurrent', `bias must have ${GH} values${cell === 'gru' ? ` (or ${2 * GH} for reset_after)` : ''}, got ${bias.length}`)
  }
  return out
}

/**
 * Converts PyTorch-layout weights of one recurrent layer (one direction) to Keras/tfjs layout:
 * the inverse of {@link kerasToTorchRecurrent}. `resetAfter` (GRU only) keeps the two biases
 * as Keras's `[2, 3H]`; otherwise they are summed into one `[G·H]` bias.
 */
export function torchToKerasRecurrent(
  cell: 'lstm' | 'gru' | 'rnn',
  H: number,
  w: TorchRecurrentArrays,
  resetAfter = false,
): { kernel: Float32Array; recurrentKernel: Float32Array; bias: Float32Array | null } {
  const { G, perm } = gatesOfCell(cell)
  const GH = G * H
  const inDim = w.weightIh.length / GH
  const kernel = kernelToKeras(w.weightIh, inDim, G, H, perm)
  const recurrentKernel = kernelToKeras(w.weightHh, H, G, H, perm)
  let bias: Float32Array | null = null
  if (w.biasIh !== null || w.biasHh !== null) {
    const bi = w.biasIh ?? new Float32Array(GH)
    const bh = w.biasHh ?? new Float32Array(GH)
    if (resetAfter) {
      bias = new Float32Array(2 * GH)
      bias.set(biasToKeras(bi, G, H, perm), 0)
      bias.set(biasToKeras(bh, G, H, perm), GH)
    } else bias = biasToKeras(addExact(bi, bh), G, H, perm)
  }
  return { kernel, recurrentKernel, bias }
}

// ---- tfjs artifacts ----------------------------------------------------------------------------

/** One entry of a tfjs weights manifest. */
export interface TfjsWeightSpec {
  name: string
  shape: number[]
  dtype: string
  quantization?: { dtype: string; scale?: number; min?: number; original_dtype?: string }
}

/** The `model.json` that tfjs `model.save('file://...')` writes. */
export interface TfjsModelJson {
  modelTopology: unknown
  weightsManifest: Array<{ paths: string[]; weights: TfjsWeightSpec[] }>
  format?: string
  generatedBy?: string
  convertedBy?: string | null
  [k: string]: unknown
}

/**
 * In-memory tfjs artifacts, tfjs's own `ModelArtifacts` shape: what a
 * `tf.io.withSaveHandler` callback receives and what `tf.io.fromMemory` takes.
 */
export interface TfjsArtifacts {
  modelTopology: unknown
  weightSpecs: TfjsWeightSpec[]
  weightData: ArrayBuffer | ArrayBuffer[] | Uint8Array
  format?: string
  generatedBy?: string
  convertedBy?: string | null
}

const GENERATED_BY = 'recurrent (io/tfjs.ts)'

function asBytes(d: ArrayBuffer | ArrayBuffer[] | Uint8Array): Uint8Array {
  if (d instanceof Uint8Array) return d
  if (Array.isArray(d)) return concatBytes(d.map((b) => new Uint8Array(b)))
  return new Uint8Array(d)
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0))
  let o = 0
  for (const b of parts) {
    out.set(b, o)
    o += b.length
  }
  return out
}

function half(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1
  const e = (bits >> 10) & 0x1f
  const f = bits & 0x3ff
  if (e === 0) return s * 2 ** -14 * (f / 1024)
  if (e === 31) return f ? NaN : s * Infinity
  return s * 2 ** (e - 15) * (1 + f / 1024)
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 }

/** Splits concatenated weight bytes by the specs (float32, or tfjs-quantized uint8/uint16/float16). */
function decodeWeights(specs: readonly TfjsWeightSpec[], bytes: Uint8Array, where: string): Map<string, NamedWeight> {
  const out = new Map<string, NamedWeight>()
  let off = 0
  for (const s of specs) {
    if (!s || typeof s.name !== 'string' || !Array.isArray(s.shape)) {
      throw new CheckpointError('loadTfjsModel', `${where}: a weights manifest entry lacks a name or shape`)
    }
    const n = s.shape.reduce((a, b) => a * b, 1)
    const q = s.quantization
    const stored = q ? q.dtype : s.dtype
    const bpe = BYTES[stored]
    if (bpe === undefined || (s.dtype !== 'float32' && !q)) {
      throw new CheckpointError('loadTfjsModel', `${where}: weight '${s.name}' has dtype '${s.dtype}'${q ? ` quantized as '${q.dtype}'` : ''}; only float32 (optionally uint8/uint16/float16-quantized) is supported`)
    }
    const len = n * bpe
    if (off + len > bytes.length) {
      throw new CheckpointError('loadTfjsModel', `${where}: the weight data holds ${bytes.length} bytes but the manifest needs at least ${off + len} (through '${s.name}' ${fmt(s.shape)}); a shard is missing or truncated`)
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset + off, len)
    const data = new Float32Array(n)
    if (!q) for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true)
    else if (stored === 'float16') for (let i = 0; i < n; i++) data[i] = half(dv.getUint16(i * 2, true))
    else {
      const scale = q.scale ?? 1
      const min = q.min ?? 0
      for (let i = 0; i < n; i++) data[i] = (stored === 'uint8' ? dv.getUint8(i) : dv.getUint16(i * 2, true)) * scale + min
    }
    off += len
    out.set(stripSuffix(s.name), { name: stripSuffix(s.name), shape: [...s.shape], data })
  }
  if (off !== bytes.length) {
    throw new CheckpointError('loadTfjsModel', `${where}: the weight data holds ${bytes.length} bytes but the manifest describes ${off}`)
  }
  return out
}

function stripSuffix(name: string): string {
  return name.replace(/:\d+$/, '')
}

function fmt(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]`
}

/**
 * Loads a tfjs layers model saved as `model.json` plus weight files (the format of
 * `model.save('file://dir')`, and of `tensorflowjs_converter` for Keras models).
 *
 * `path` is the `model.json` file or the folder holding it. The weight files are read from
 * the paths in its `weightsManifest`, relative to it.
 *
 * @throws CheckpointError naming the file: a missing or unreadable `model.json` or weight
 *   file, JSON that is not a layers model, weight data whose size or shapes disagree with the
 *   topology, or a weight the topology needs but the manifest lacks.
 * @throws ValueError for a layer type or setting `recurrent` cannot run (it names the layer and
 *   the setting, e.g. `recurrentActivation: 'hardSigmoid'`).
 */
export async function loadTfjsModel(path: string): Promise<KerasSequential> {
  const op = 'loadTfjsModel'
  if (typeof path !== 'string' || path.length === 0) throw new ValueError(op, `path must be a non-empty string, got ${String(path)}`)
  let file = path.startsWith('file://') ? path.slice('file://'.length) : path
  if (!file.endsWith('.json')) file = join(file, 'model.json')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new CheckpointError(op, `cannot read '${file}': ${(e as Error).message}`, { cause: e })
  }
  let json: TfjsModelJson
  try {
    json = JSON.parse(text) as TfjsModelJson
  } catch (e) {
    throw new CheckpointError(op, `'${file}' is not valid JSON: ${(e as Error).message}`, { cause: e })
  }
  if (json === null || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new CheckpointError(op, `'${file}' is not a tfjs layers model: it needs 'modelTopology' and 'weightsManifest'`)
  }
  const dir = dirname(resolve(file))
  const weights = new Map<string, NamedWeight>()
  for (const [g, group] of json.weightsManifest.entries()) {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new CheckpointError(op, `'${file}': weightsManifest[${g}] needs 'paths' and 'weights'`)
    }
    const parts: Uint8Array[] = []
    for (const p of group.paths) {
      const wf = join(dir, p)
      try {
        parts.push(new Uint8Array(await readFile(wf)))
      } catch (e) {
        throw new CheckpointError(op, `missing weight file '${p}' (listed in '${file}', looked for '${wf}'): ${(e as Error).message}`, { cause: e })
      }
    }
    for (const [k, v] of decodeWeights(group.weights, concatBytes(parts), `'${file}' group ${g} (${group.paths.join(', ')})`)) weights.set(k, v)
  }
  return buildModel(json.modelTopology, weights, `'${file}'`)
}

/**
 * Builds the model of in-memory tfjs artifacts (what `tf.io.withSaveHandler` hands over:
 * `modelTopology`, `weightSpecs`, `weightData`).
 */
export function fromTfjsArtifacts(artifacts: TfjsArtifacts): KerasSequential {
  const op = 'fromTfjsArtifacts'
  if (!artifacts || typeof artifacts !== 'object' || !artifacts.modelTopology) throw new CheckpointError(op, `the artifacts need a 'modelTopology'`)
  if (!Array.isArray(artifacts.weightSpecs) || artifacts.weightData === undefined) throw new CheckpointError(op, `the artifacts need 'weightSpecs' and 'weightData'`)
  const weights = decodeWeights(artifacts.weightSpecs, asBytes(artifacts.weightData), 'the artifacts')
  return buildModel(artifacts.modelTopology, weights, 'the artifacts')
}

// ---- topology → model --------------------------------------------------------------------------

interface LayerJson {
  class_name: string
  config: Record<string, unknown>
  inbound_nodes?: unknown
  name?: string
}

/** A config value under its snake_case (Keras, tfjs JSON) or camelCase (tfjs TS) name. */
function cfg<T = unknown>(c: Record<string, unknown>, snakeName: string): T | undefined {
  if (snakeName in c) return c[snakeName] as T
  const camel = snakeName.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase())
  return c[camel] as T | undefined
}

function activationName(a: unknown): string {
  if (a === undefined || a === null) return 'linear'
  if (typeof a === 'string') return a
  if (typeof a === 'object' && typeof (a as { class_name?: unknown }).class_name === 'string') {
    return (a as { class_name: string }).class_name
  }
  return String(a)
}

/** Normalises activation names: `hardSigmoid`/`hard_sigmoid`, `Tanh` ... */
function normAct(a: unknown): string {
  return activationName(a)
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase()
}

const SUPPORTED = ['Embedding', 'Dense', 'SimpleRNN', 'LSTM', 'GRU', 'Bidirectional', 'Dropout', 'Activation', 'InputLayer']

function layerList(topology: unknown, where: string): { name: string; layers: LayerJson[] } {
  const op = 'loadTfjsModel'
  let t = topology as Record<string, unknown>
  if (t && typeof t === 'object' && 'model_config' in t) t = t.model_config as Record<string, unknown>
  if (!t || typeof t !== 'object' || typeof t.class_name !== 'string' || !t.config) {
    throw new CheckpointError(op, `${where}: modelTopology has no 'class_name' and 'config'`)
  }
  const config = t.config as Record<string, unknown>
  const cls = t.class_name
  const layers = (Array.isArray(config) ? config : config.layers) as LayerJson[] | undefined
  if (!Array.isArray(layers)) throw new CheckpointError(op, `${where}: the ${cls} model's config has no 'layers' list`)
  const name = (typeof config.name === 'string' ? config.name : undefined) ?? 'sequential_1'
  if (cls === 'Sequential') return { name, layers }
  if (cls === 'Model' || cls === 'Functional') {
    // A functional model is accepted when it is one chain: every layer fed by the one before.
    const chain = layers.filter((l) => l.class_name !== 'InputLayer')
    for (let i = 1; i < chain.length; i++) {
      const prev = String(chain[i - 1]!.name ?? chain[i - 1]!.config.name)
      const inbound = JSON.stringify(chain[i]!.inbound_nodes ?? [])
      if (!inbound.includes(`"${prev}"`)) {
        throw new ValueError(op, `${where}: functional model '${name}' is not a single chain of layers (layer '${String(chain[i]!.config.name)}' is not fed by '${prev}'); only Sequential models and linear chains are supported`)
      }
    }
    return { name, layers }
  }
  throw new ValueError(op, `${where}: unsupported model class '${cls}'; expected Sequential (or a functional Model that is one chain)`)
}

/** Tracks the value flowing between layers: its rank and last-axis size. */
interface Flow {
  kind: 'tokens' | 'seq' | 'vec' | 'unknown'
  features: number | null
}

function buildModel(topology: unknown, weights: Map<string, NamedWeight>, where: string): KerasSequential {
  const op = 'loadTfjsModel'
  const { name, layers } = layerList(topology, where)
  const model = new KerasSequential({ name })
  const used = new Set<string>()
  let flow: Flow = { kind: 'unknown', features: null }
  let first = true

  const take = (layerName: string, leaf: string, scope: string | null, expected: (number | null)[], what: string): NamedWeight => {
    const prefix = `${layerName}/`
    const cands = [...weights.values()].filter((w) => w.name.startsWith(prefix) && w.name.split('/').pop() === leaf)
    const pick = scope === null ? cands : cands.filter((w) => w.name.slice(prefix.length).split('/').some((seg) => seg.startsWith(scope)))
    if (pick.length !== 1) {
      const have = [...weights.keys()].filter((k) => k.startsWith(prefix))
      throw new CheckpointError(op, `${where}: layer '${layerName}' needs ${pick.length === 0 ? 'a' : 'exactly one'} weight '${prefix}${scope ? `${scope}*/` : ''}${leaf}' (${what}), ${pick.length === 0 ? 'but the manifest has none' : `found ${pick.length}`}; its weights in the manifest: ${have.length ? have.join(', ') : 'none'}`)
    }
    const w = pick[0]!
    const ok = w.shape.length === expected.length && expected.every((d, i) => d === null || d === w.shape[i])
    if (!ok) {
      throw new CheckpointError(op, `${where}: weight '${w.name}' has shape ${fmt(w.shape)}, expected ${fmt(expected)} (${what})`)
    }
    used.add(w.name)
    return w
  }

  for (const [idx, layer] of layers.entries()) {
    if (!layer || typeof layer.class_name !== 'string' || !layer.config || typeof layer.config !== 'object') {
      throw new CheckpointError(op, `${where}: layer ${idx} has no 'class_name' and 'config'`)
    }
    const cls = layer.class_name
    const c = layer.config
    const lname = String(c.name ?? layer.name ?? `layer_${idx}`)
    const what = `${cls} layer '${lname}'`
    if (!SUPPORTED.includes(cls)) {
      throw new ValueError(op, `${where}: unsupported layer type '${cls}' (layer '${lname}'); supported: ${SUPPORTED.join(', ')}`)
    }
    const bis = (cfg<(number | null)[]>(c, 'batch_input_shape') ?? cfg<(number | null)[]>(c, 'batch_shape')) as (number | null)[] | undefined
    if (first && Array.isArray(bis)) {
      if (bis.length === 2) flow = { kind: cls === 'Embedding' ? 'tokens' : 'vec', features: cls === 'Embedding' ? null : bis[1] ?? null }
      else if (bis.length === 3) flow = { kind: 'seq', features: bis[2] ?? null }
      else throw new ValueError(op, `${where}: ${what} has input shape ${fmt(bis as number[])}; only [B, T], [B, T, F] and [B, F] inputs are supported`)
      if (bis.length >= 2 && cls !== 'Dense' && typeof bis[1] === 'number') model.inputLength = bis[1]
    }
    if (cls === 'InputLayer') continue
    first = false

    if (cls === 'Dropout') {
      const rate = Number(cfg(c, 'rate') ?? 0)
      model.add(new Dropout(rate), { name: lname })
      continue
    }
    if (cls === 'Activation') {
      const a = normAct(cfg(c, 'activation'))
      if (!(ACTIVATIONS as readonly string[]).includes(a)) {
        throw new ValueError(op, `${where}: ${what} has activation '${a}'; supported: ${ACTIVATIONS.join(', ')}`)
      }
      model.add(new KerasActivationLayer(a as KerasActivation), { name: lname })
      continue
    }
    if (cls === 'Embedding') {
      if (cfg(c, 'mask_zero') === true) {
        throw new ValueError(op, `${where}: ${what} has mask_zero: true; masking is not supported (pass sequence lengths to the recurrent modules instead)`)
      }
      const inputDim = Number(cfg(c, 'input_dim'))
      const outputDim = Number(cfg(c, 'output_dim'))
      const w = take(lname, 'embeddings', null, [inputDim, outputDim], `embeddings [input_dim, output_dim] = [${inputDim}, ${outputDim}]`)
      const emb = new Embedding(inputDim, outputDim)
      emb.loadStateDict({ weight: tensor(w.data, w.shape) })
      model.add(emb, { name: lname })
      const il = cfg<number | null>(c, 'input_length')
      if (model.length === 1 && typeof il === 'number') model.inputLength = il
      flow = { kind: 'seq', features: outputDim }
      continue
    }
    if (cls === 'Dense') {
      const units = Number(cfg(c, 'units'))
      const act = normAct(cfg(c, 'activation'))
      if (!(ACTIVATIONS as readonly string[]).includes(act)) {
        throw new ValueError(op, `${where}: ${what} has activation '${act}'; supported: ${ACTIVATIONS.join(', ')}`)
      }
      const useBias = cfg(c, 'use_bias') !== false
      const k = take(lname, 'kernel', null, [flow.features, units], `kernel [in, units]`)
      const inDim = k.shape[0]!
      const lin = new Linear(inDim, units, { bias: useBias })
      const sd: Record<string, Tensor> = { weight: tensor(transpose2d(k.data, inDim, units), [units, inDim]) }
      if (useBias) sd.bias = tensor(take(lname, 'bias', null, [units], 'bias [units]').data, [units])
      lin.loadStateDict(sd)
      model.add(lin, { name: lname, activation: act as KerasActivation })
      flow = { kind: flow.kind === 'seq' ? 'seq' : 'vec', features: units }
      continue
    }
    // Recurrent layers, possibly wrapped in Bidirectional.
    let inner = layer
    let mergeMode: MergeMode = 'concat'
    const bidi = cls === 'Bidirectional'
    if (bidi) {
      const wrapped = cfg<LayerJson>(c, 'layer')
      if (!wrapped || typeof wrapped.class_name !== 'string' || !wrapped.config) {
        throw new CheckpointError(op, `${where}: ${what} has no wrapped 'layer'`)
      }
      if (!['SimpleRNN', 'LSTM', 'GRU'].includes(wrapped.class_name)) {
        throw new ValueError(op, `${where}: ${what} wraps unsupported layer type '${wrapped.class_name}'; supported: SimpleRNN, LSTM, GRU`)
      }
      const mm = cfg(c, 'merge_mode')
      if (mm === null || !['concat', 'sum', 'mul', 'ave'].includes(String(mm ?? 'concat'))) {
        throw new ValueError(op, `${where}: ${what} has merge_mode ${JSON.stringify(mm)}; supported: 'concat', 'sum', 'mul', 'ave'`)
      }
      mergeMode = (mm ?? 'concat') as MergeMode
      // Keras 3 serialises the (mirrored) backward layer too; accept it when it mirrors the forward one.
      const back = cfg<LayerJson | null>(c, 'backward_layer')
      if (back !== undefined && back !== null) {
        const same = back.class_name === wrapped.class_name && back.config && cfg(back.config, 'units') === cfg(wrapped.config, 'units') &&
          normAct(cfg(back.config, 'activation') ?? 'tanh') === normAct(cfg(wrapped.config, 'activation') ?? 'tanh') &&
          normAct(cfg(back.config, 'recurrent_activation') ?? 'hard_sigmoid') === normAct(cfg(wrapped.config, 'recurrent_activation') ?? 'hard_sigmoid') &&
          cfg(back.config, 'use_bias') === cfg(wrapped.config, 'use_bias') && cfg(back.config, 'reset_after') === cfg(wrapped.config, 'reset_after')
        if (!same) {
          throw new ValueError(op, `${where}: ${what} has a backward_layer that differs from its forward layer; only a mirrored backward layer is supported`)
        }
      }
      inner = wrapped
    }
    const rc = inner.config
    const icls = inner.class_name
    const innerName = String(rc.name ?? lname)
    const iwhat = bidi ? `${what} (wrapping ${icls} '${innerName}')` : what
    const units = Number(cfg(rc, 'units'))
    if (!Number.isInteger(units) || units < 1) throw new CheckpointError(op, `${where}: ${iwhat} has no valid 'units'`)
    const activation = normAct(cfg(rc, 'activation') ?? 'tanh')
    const cell = icls === 'LSTM' ? 'lstm' : icls === 'GRU' ? 'gru' : 'rnn'
    if (cell === 'rnn') {
      if (activation !== 'tanh' && activation !== 'relu') {
        throw new ValueError(op, `${where}: ${iwhat} has activation '${activation}'; SimpleRNN supports 'tanh' and 'relu'`)
      }
    } else {
      if (activation !== 'tanh') throw new ValueError(op, `${where}: ${iwhat} has activation '${activation}'; only 'tanh' is supported`)
      const ra = normAct(cfg(rc, 'recurrent_activation') ?? 'hard_sigmoid')
      if (ra !== 'sigmoid') {
        throw new ValueError(
          op,
          `${where}: ${iwhat} has recurrentActivation '${ra === 'hard_sigmoid' ? 'hardSigmoid' : ra}'${ra === 'hard_sigmoid' ? ' (the tfjs default)' : ''}; recurrent's cells use the logistic sigmoid only. Build the tfjs layer with recurrentActivation: 'sigmoid' (Keras: recurrent_activation='sigmoid') and train or fine-tune it that way, then export again`,
        )
      }
    }
    for (const flag of ['return_state', 'stateful', 'go_backwards'] as const) {
      if (cfg(rc, flag) === true) throw new ValueError(op, `${where}: ${iwhat} has ${flag}: true, which is not supported`)
    }
    const resetAfter = cell === 'gru' && cfg(rc, 'reset_after') === true
    const useBias = cfg(rc, 'use_bias') !== false
    const returnSequences = cfg(rc, 'return_sequences') === true
    const { G } = gatesOfCell(cell)
    const GH = G * units
    const dirs = bidi ? (['forward_', 'backward_'] as const) : ([null] as const)
    const arrays: TorchRecurrentArrays[] = []
    let inDim = flow.features
    for (const scope of dirs) {
      const dirWhat = `${iwhat}${scope ? `, ${scope.slice(0, -1)} direction` : ''}`
      const k = take(lname, 'kernel', scope, [inDim, GH], `${dirWhat}: kernel [in, ${G}·units]`)
      inDim = k.shape[0]!
      const rk = take(lname, 'recurrent_kernel', scope, [units, GH], `${dirWhat}: recurrent_kernel [units, ${G}·units]`)
      const b = useBias ? take(lname, 'bias', scope, resetAfter ? [2, GH] : [GH], `${dirWhat}: bias ${resetAfter ? `[2, ${GH}]` : `[${GH}]`}`) : null
      arrays.push(kerasToTorchRecurrent(cell, units, k.data, rk.data, b ? b.data : null))
    }
    if (flow.kind !== 'seq' && flow.kind !== 'unknown') {
      throw new ValueError(op, `${where}: ${iwhat} needs a sequence input [B, T, F], but the layer before it outputs ${flow.kind === 'vec' ? '[B, F]' : 'token ids'}`)
    }
    const opts = { batchFirst: true, bidirectional: bidi, bias: useBias }
    const mod: RNNBase =
      cell === 'lstm'
        ? new LSTM(inDim!, units, opts)
        : cell === 'gru'
          ? new GRU(inDim!, units, { ...opts, resetAfter })
          : new RNN(inDim!, units, { ...opts, nonlinearity: activation as 'tanh' | 'relu' })
    const sd: Record<string, Tensor> = {}
    arrays.forEach((a, d) => {
      const sfx = `_l0${d === 1 ? '_reverse' : ''}`
      sd[`weight_ih${sfx}`] = tensor(a.weightIh, [GH, inDim!])
      sd[`weight_hh${sfx}`] = tensor(a.weightHh, [GH, units])
      if (useBias) {
        sd[`bias_ih${sfx}`] = tensor(a.biasIh!, [GH])
        sd[`bias_hh${sfx}`] = tensor(a.biasHh!, [GH])
      }
    })
    mod.loadStateDict(sd)
    const lopts: KerasLayerOptions = { name: lname, returnSequences, mergeMode }
    if (bidi) lopts.innerName = innerName
    model.add(mod, lopts)
    const D = bidi ? 2 : 1
    const out = bidi && mergeMode !== 'concat' ? units : D * units
    flow = { kind: returnSequences ? 'seq' : 'vec', features: out }
  }
  const unused = [...weights.keys()].filter((k) => !used.has(k))
  if (unused.length > 0) {
    throw new CheckpointError(op, `${where}: the manifest has weights no layer of the topology uses: ${unused.join(', ')}`)
  }
  if (model.length === 0) throw new CheckpointError(op, `${where}: the model has no layers`)
  return model
}

function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!
  return out
}

// ---- model → tfjs ------------------------------------------------------------------------------

async function arrayOf(t: Tensor): Promise<Float32Array> {
  const d = await t.data()
  if (!(d instanceof Float32Array)) throw new ValueError('saveTfjsModel', `parameters must be float32, got ${t.dtype}`)
  return d
}

/**
 * The tfjs artifacts of `model` (a {@link KerasSequential}): a `modelTopology` that
 * tfjs-layers builds, the weight specs and the concatenated float32 data. Pass them to
 * `tf.loadLayersModel(tf.io.fromMemory(artifacts))`, or use {@link saveTfjsModel} for files.
 *
 * @throws ValueError for what tfjs cannot represent: a GRU with `resetAfter: true` (tfjs's
 *   GRU is reset-before only).
 */
export async function toTfjsArtifacts(model: KerasSequential): Promise<TfjsArtifacts & { format: string; generatedBy: string; convertedBy: null }> {
  const op = 'saveTfjsModel'
  if (!(model instanceof KerasSequential)) {
    throw new ValueError(op, `expected a KerasSequential (what loadTfjsModel returns; build one with new KerasSequential().add(...)), got ${model === null ? 'null' : (model as object).constructor?.name ?? typeof model}`)
  }
  const layersJson: LayerJson[] = []
  const specs: TfjsWeightSpec[] = []
  const chunks: Float32Array[] = []
  const push = (name: string, shape: number[], data: Float32Array) => {
    specs.push({ name, shape, dtype: 'float32' })
    chunks.push(data)
  }
  let firstShape: (number | null)[] | null = null
  const T = model.inputLength
  for (const [i, l] of model.layers.entries()) {
    const m = l.module
    const base: Record<string, unknown> = { name: l.name, trainable: true }
    if (m instanceof Embedding) {
      if (i === 0) firstShape = [null, T]
      layersJson.push({ class_name: 'Embedding', config: { ...base, input_dim: m.numEmbeddings, output_dim: m.embeddingDim, input_length: i === 0 ? T : null, mask_zero: false } })
      push(`${l.name}/embeddings`, [m.numEmbeddings, m.embeddingDim], await arrayOf(m.weight))
    } else if (m instanceof Linear) {
      if (i === 0) firstShape = [null, m.inFeatures]
      layersJson.push({ class_name: 'Dense', config: { ...base, units: m.outFeatures, activation: l.activation, use_bias: m.bias !== null } })
      push(`${l.name}/kernel`, [m.inFeatures, m.outFeatures], transpose2d(await arrayOf(m.weight), m.outFeatures, m.inFeatures))
      if (m.bias) push(`${l.name}/bias`, [m.outFeatures], await arrayOf(m.bias))
    } else if (m instanceof Dropout) {
      layersJson.push({ class_name: 'Dropout', config: { ...base, rate: m.p } })
    } else if (m instanceof KerasActivationLayer) {
      layersJson.push({ class_name: 'Activation', config: { ...base, activation: m.activation } })
    } else if (m instanceof RNNBase) {
      if (i === 0) firstShape = [null, T, m.inputSize]
      const cls = rnnClassOf(m)
      const cell = cls === 'LSTM' ? 'lstm' : cls === 'GRU' ? 'gru' : 'rnn'
      const resetAfter = m instanceof GRU && m.resetAfter
      if (resetAfter) {
        throw new ValueError(op, `layer '${l.name}': tfjs's GRU is reset-before only, and this GRU has resetAfter: true (PyTorch's formula); build it with new GRU(..., { resetAfter: false }) to exchange it with tfjs`)
      }
      const H = m.hiddenSize
      const D = m.numDirections
      for (let k = 0; k < m.numLayers; k++) {
        const lastOfStack = k === m.numLayers - 1
        const lname = m.numLayers === 1 ? l.name : `${l.name}_l${k}`
        const iname = m.numLayers === 1 ? (l.innerName ?? l.name) : `${l.innerName ?? l.name}_l${k}`
        const rcfg: Record<string, unknown> = {
          name: D === 2 ? iname : lname,
          trainable: true,
          units: H,
          activation: m instanceof RNN ? m.nonlinearity : 'tanh',
          use_bias: m.bias,
          return_sequences: lastOfStack ? l.returnSequences : true,
          return_state: false,
          go_backwards: false,
          stateful: false,
          unroll: false,
          dropout: 0,
          recurrent_dropout: 0,
        }
        if (cell !== 'rnn') rcfg.recurrent_activation = 'sigmoid'
        if (cell === 'gru') rcfg.reset_after = false
        if (D === 1) {
          if (i === 0 && k === 0) rcfg.batch_input_shape = firstShape
          layersJson.push({ class_name: cls, config: rcfg })
        } else {
          const bcfg: Record<string, unknown> = { name: lname, trainable: true, merge_mode: lastOfStack ? l.mergeMode : 'concat', layer: { class_name: cls, config: rcfg } }
          if (i === 0 && k === 0) bcfg.batch_input_shape = firstShape
          layersJson.push({ class_name: 'Bidirectional', config: bcfg })
        }
        for (let d = 0; d < D; d++) {
          const lw = m.layerWeights(k, d === 1)
          const w: TorchRecurrentArrays = {
            weightIh: await arrayOf(lw.wIh),
            weightHh: await arrayOf(lw.wHh),
            biasIh: lw.bIh ? await arrayOf(lw.bIh) : null,
            biasHh: lw.bHh ? await arrayOf(lw.bHh) : null,
          }
          const kw = torchToKerasRecurrent(cell, H, w)
          const inDim = lw.wIh.shape[1]!
          const prefix = D === 1 ? `${lname}/` : `${lname}/${d === 0 ? 'forward' : 'backward'}_${iname}/`
          push(`${prefix}kernel`, [inDim, kw.kernel.length / inDim], kw.kernel)
          push(`${prefix}recurrent_kernel`, [H, kw.recurrentKernel.length / H], kw.recurrentKernel)
          if (kw.bias) push(`${prefix}bias`, [kw.bias.length], kw.bias)
        }
      }
    } else {
      throw new ValueError(op, `layer '${l.name}': unsupported module ${m.constructor.name}`)
    }
  }
  const first = layersJson[0]
  if (first && firstShape && first.config.batch_input_shape === undefined) first.config.batch_input_shape = firstShape
  const n = chunks.reduce((a, c) => a + c.length, 0)
  const data = new Float32Array(n)
  let o = 0
  for (const c of chunks) {
    data.set(c, o)
    o += c.length
  }
  const modelTopology = {
    class_name: 'Sequential',
    config: { name: model.name, layers: layersJson },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  }
  return { modelTopology, weightSpecs: specs, weightData: data.buffer, format: 'layers-model', generatedBy: GENERATED_BY, convertedBy: null }
}

/**
 * Writes `model` as a tfjs layers model: `dir/model.json` and `dir/weights.bin` (the layout of
 * tfjs's `file://` handler), which `tf.loadLayersModel` reads. Each file is written to a
 * temporary name and renamed, so a failed save leaves earlier files intact.
 */
export async function saveTfjsModel(model: KerasSequential, dir: string): Promise<void> {
  const op = 'saveTfjsModel'
  if (typeof dir !== 'string' || dir.length === 0) throw new ValueError(op, `dir must be a non-empty string, got ${String(dir)}`)
  const target = dir.startsWith('file://') ? dir.slice('file://'.length) : dir
  const a = await toTfjsArtifacts(model)
  const json: TfjsModelJson = {
    modelTopology: a.modelTopology,
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
  }
  try {
    await mkdir(target, { recursive: true })
    await atomicWrite(join(target, 'weights.bin'), asBytes(a.weightData))
    await atomicWrite(join(target, 'model.json'), new TextEncoder().encode(JSON.stringify(json)))
  } catch (e) {
    if (e instanceof CheckpointError) throw e
    throw new CheckpointError(op, `cannot write the model to '${target}': ${(e as Error).message}`, { cause: e })
  }
}

/** Writes `data` to `file` through a temporary file in the same folder and a rename. @internal */
export async function atomicWrite(file: string, data: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`
  try {
    await writeFile(tmp, data)
    await rename(tmp, file)
  } catch (e) {
    await unlink(tmp).catch(() => {})
    throw e
  }
}
