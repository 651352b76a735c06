/**
 * ONNX export: a standard `.onnx` file (IR version 7, default opset 14) that ONNX Runtime and
 * other ONNX tools run, written with the small protobuf encoder of `protobuf.ts`.
 *
 * Exported modules and the ONNX operators they become:
 * - `LSTM`, `GRU`, `RNN` (stacked, bidirectional, batch-first): one ONNX `LSTM`/`GRU`/`RNN`
 *   node per layer, with the gate blocks reordered (LSTM `i,f,g,o` → ONNX `i,o,f,c`; GRU
 *   `r,z,n` → `z,r,h`), `W [D, G·H, in]`, `R [D, G·H, H]`, `B [D, 2·G·H] = [b_ih | b_hh]`.
 *   PyTorch's GRU is `linear_before_reset = 1`; the reset-before GRU (`resetAfter: false`) is
 *   `linear_before_reset = 0`. An RNN with ReLU sets `activations = ['Relu']`.
 *   The layer output `Y [T, D, B, H]` becomes `[T, B, D·H]` by Transpose + Reshape (or Squeeze
 *   when D = 1), as the next layer's input and as the model's output.
 * - `Linear`: `MatMul` by `Wᵀ` (+ `Add` of the bias), on inputs of any rank.
 * - `Embedding`: `Gather` (int32 indices).
 * - `Tanh`, `Sigmoid`, `ReLU`, Keras activations (`Softmax` on the last axis); `Dropout` is
 *   the identity at inference and is left out.
 * - `Sequential` of those, and `KerasSequential` (what `loadTfjsModel` returns), with Keras's
 *   last-step outputs and Bidirectional merge modes.
 *
 * A recurrent module exports the outputs `output`, `hN` (and `cN` for LSTM), with zero
 * initial states; every other model has one output, `output`. The input is `input`.
 */

import type { Tensor } from '../tensor.js'
import { ValueError, CheckpointError } from '../errors.js'
import { Module } from '../nn/module.js'
import { Linear } from '../nn/linear.js'
import { Embedding } from '../nn/embedding.js'
import { Dropout } from '../nn/dropout.js'
import { Sequential } from '../nn/sequential.js'
import { Tanh, Sigmoid, ReLU } from '../nn/activation.js'
import { RNN, RNNBase } from '../nn/rnn.js'
import { LSTM } from '../nn/lstm.js'
import { GRU } from '../nn/gru.js'
import { KerasActivationLayer, KerasSequential, type KerasActivation, type MergeMode } from './tfjs/sequential.js'
import { atomicWrite } from './atomic.js'
import { ProtoWriter } from './protobuf.js'

/** Options of {@link toOnnx} and {@link saveOnnx}. */
export interface OnnxExportOptions {
  /**
   * The input's shape: numbers for fixed sizes, strings (or null) for symbolic ones. Default:
   * `['T', 'B', I]` for a recurrent module (`['B', 'T', I]` with `batchFirst`), `['B', 'T', I]`
   * for a KerasSequential (`['B', 'T']` token ids when it starts with an Embedding),
   * `['N', in]` for a Linear first layer, `['B', 'T']` for an Embedding first layer.
   */
  inputShape?: ReadonlyArray<number | string | null>
  /** The opset of the default domain, 14 (default) to 17. */
  opsetVersion?: number
  /** The graph's name (default: the model's class name). */
  graphName?: string
}

// ---- ONNX enums --------------------------------------------------------------------------------

const FLOAT = 1
const INT32 = 6
const INT64 = 7
const ATTR_FLOAT = 1
const ATTR_INT = 2
const ATTR_STRING = 3
const ATTR_INTS = 7
const ATTR_STRINGS = 8

type Attr =
  | { name: string; int: number }
  | { name: string; float: number }
  | { name: string; str: string }
  | { name: string; ints: number[] }
  | { name: string; strs: string[] }

interface Init {
  name: string
  dims: number[]
  type: number
  raw: Uint8Array
}

interface Node {
  op: string
  inputs: string[]
  outputs: string[]
  attrs: Attr[]
  name: string
}

/** Collects nodes and initializers, with unique value names. */
class GraphBuilder {
  readonly nodes: Node[] = []
  readonly inits: Init[] = []
  readonly #names = new Set<string>()

  fresh(base: string): string {
    let name = base
    for (let i = 1; this.#names.has(name); i++) name = `${base}_${i}`
    this.#names.add(name)
    return name
  }

  reserve(name: string): string {
    if (this.#names.has(name)) throw new ValueError('toOnnx', `duplicate value name '${name}'`)
    this.#names.add(name)
    return name
  }

  floats(base: string, dims: number[], data: Float32Array): string {
    const name = this.fresh(base)
    this.inits.push({ name, dims, type: FLOAT, raw: leBytes(data) })
    return name
  }

  int64s(base: string, values: number[]): string {
    const name = this.fresh(base)
    const a = new BigInt64Array(values.map((v) => BigInt(v)))
    this.inits.push({ name, dims: [values.length], type: INT64, raw: leBytes(a) })
    return name
  }

  /** Adds a node; returns its outputs (fresh names from `outs`, or the given names when `named`). */
  node(op: string, inputs: string[], outs: string[], attrs: Attr[] = [], named = false): string[] {
    const outputs = outs.map((o) => (named ? o : this.fresh(o)))
    this.nodes.push({ op, inputs, outputs, attrs, name: this.fresh(`${op}_node`) })
    return outputs
  }

  one(op: string, inputs: string[], out: string, attrs: Attr[] = []): string {
    return this.node(op, inputs, [out], attrs)[0]!
  }
}

function leBytes(a: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  // Typed arrays are little-endian on every platform Node supports; copy to own the bytes.
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))
}

function floatData(op: string, t: Tensor): Float32Array {
  const d = t.dataSync()
  if (d instanceof Float32Array) return d
  if (d instanceof Float64Array) return Float32Array.from(d)
  throw new ValueError(op, `parameters must be floating point, got ${t.dtype}`)
}

// ---- emitters ----------------------------------------------------------------------------------

/** ONNX gate block order, as indices of PyTorch's blocks. */
function onnxOrder(m: RNNBase): number[] {
  if (m instanceof LSTM) return [0, 3, 1, 2] // i o f c  <-  i f g o
  if (m instanceof GRU) return [1, 0, 2] // z r h  <-  r z n
  return [0]
}

function reorderRows(w: Float32Array, H: number, cols: number, order: number[]): Float32Array {
  const out = new Float32Array(w.length)
  const block = H * cols
  order.forEach((src, j) => out.set(w.subarray(src * block, src * block + block), j * block))
  return out
}

interface RecurrentOut {
  /** The last layer's output, time-major `[T, B, D·H]`. */
  seq: string
  /** The last layer's raw output `[T, D, B, H]`. */
  y: string
  /** Per layer, `Y_h [D, B, H]`. */
  yh: string[]
  /** Per layer, `Y_c [D, B, H]` (LSTM). */
  yc: string[]
}

function emitRecurrent(g: GraphBuilder, m: RNNBase, x: string, batchMajor: boolean, prefix: string): RecurrentOut {
  const op = 'toOnnx'
  const H = m.hiddenSize
  const D = m.numDirections
  const G = m.gateCount
  const order = onnxOrder(m)
  const onnxOp = m instanceof LSTM ? 'LSTM' : m instanceof GRU ? 'GRU' : 'RNN'
  if (!(m instanceof LSTM || m instanceof GRU || m instanceof RNN)) {
    throw new ValueError(op, `unsupported recurrent module ${m.constructor.name}`)
  }
  let input = batchMajor ? g.one('Transpose', [x], `${prefix}x_tm`, [{ name: 'perm', ints: [1, 0, 2] }]) : x
  const out: RecurrentOut = { seq: '', y: '', yh: [], yc: [] }
  for (let k = 0; k < m.numLayers; k++) {
    const ws: Float32Array[] = []
    const rs: Float32Array[] = []
    const bs: Float32Array[] = []
    let inDim = 0
    for (let d = 0; d < D; d++) {
      const lw = m.layerWeights(k, d === 1)
      inDim = lw.wIh.shape[1]!
      ws.push(reorderRows(floatData(op, lw.wIh), H, inDim, order))
      rs.push(reorderRows(floatData(op, lw.wHh), H, H, order))
      if (lw.bIh || lw.bHh) {
        const b = new Float32Array(2 * G * H)
        if (lw.bIh) b.set(reorderRows(floatData(op, lw.bIh), H, 1, order), 0)
        if (lw.bHh) b.set(reorderRows(floatData(op, lw.bHh), H, 1, order), G * H)
        bs.push(b)
      }
    }
    const cat = (parts: Float32Array[]) => {
      const a = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
      let o = 0
      for (const p of parts) {
        a.set(p, o)
        o += p.length
      }
      return a
    }
    const W = g.floats(`${prefix}W_l${k}`, [D, G * H, inDim], cat(ws))
    const R = g.floats(`${prefix}R_l${k}`, [D, G * H, H], cat(rs))
    const inputs = [input, W, R]
    if (bs.length === D) inputs.push(g.floats(`${prefix}B_l${k}`, [D, 2 * G * H], cat(bs)))
    const attrs: Attr[] = [
      { name: 'hidden_size', int: H },
      { name: 'direction', str: D === 2 ? 'bidirectional' : 'forward' },
    ]
    if (m instanceof GRU) attrs.push({ name: 'linear_before_reset', int: m.resetAfter ? 1 : 0 })
    if (m instanceof RNN) attrs.push({ name: 'activations', strs: Array(D).fill(m.nonlinearity === 'relu' ? 'Relu' : 'Tanh') })
    const outNames = [`${prefix}Y_l${k}`, `${prefix}Y_h_l${k}`]
    if (m instanceof LSTM) outNames.push(`${prefix}Y_c_l${k}`)
    const [Y, Yh, Yc] = g.node(onnxOp, inputs, outNames, attrs)
    out.yh.push(Yh!)
    if (Yc) out.yc.push(Yc)
    // [T, D, B, H] → [T, B, D·H]
    if (D === 1) {
      input = g.one('Squeeze', [Y!, g.int64s(`${prefix}axes1`, [1])], `${prefix}seq_l${k}`)
    } else {
      const t = g.one('Transpose', [Y!], `${prefix}Y_tbdh_l${k}`, [{ name: 'perm', ints: [0, 2, 1, 3] }])
      input = g.one('Reshape', [t, g.int64s(`${prefix}shape_tb_1`, [0, 0, -1])], `${prefix}seq_l${k}`)
    }
    out.y = Y!
  }
  out.seq = input
  return out
}

function emitLinear(g: GraphBuilder, m: Linear, x: string, prefix: string): string {
  const W = floatData('toOnnx', m.weight)
  const Wt = new Float32Array(W.length)
  const o = m.outFeatures
  const n = m.inFeatures
  for (let r = 0; r < o; r++) for (let c = 0; c < n; c++) Wt[c * o + r] = W[r * n + c]!
  let y = g.one('MatMul', [x, g.floats(`${prefix}weight_t`, [n, o], Wt)], `${prefix}matmul`)
  if (m.bias) y = g.one('Add', [y, g.floats(`${prefix}bias`, [o], floatData('toOnnx', m.bias))], `${prefix}linear`)
  return y
}

function emitActivation(g: GraphBuilder, a: KerasActivation | 'tanh' | 'sigmoid' | 'relu', x: string, prefix: string): string {
  switch (a) {
    case 'linear':
      return x
    case 'tanh':
      return g.one('Tanh', [x], `${prefix}tanh`)
    case 'sigmoid':
      return g.one('Sigmoid', [x], `${prefix}sigmoid`)
    case 'relu':
      return g.one('Relu', [x], `${prefix}relu`)
    case 'softmax':
      return g.one('Softmax', [x], `${prefix}softmax`, [{ name: 'axis', int: -1 }])
  }
}

/** Merges the two directions along `axis` of a `[.., D, ..]` value. */
function emitMerge(g: GraphBuilder, mode: MergeMode, v: string, axis: number, prefix: string): string {
  if (mode === 'sum') return g.one('ReduceSum', [v, g.int64s(`${prefix}merge_axes`, [axis])], `${prefix}merged`, [{ name: 'keepdims', int: 0 }])
  const op = mode === 'mul' ? 'ReduceProd' : 'ReduceMean'
  return g.one(op, [v], `${prefix}merged`, [
    { name: 'axes', ints: [axis] },
    { name: 'keepdims', int: 0 },
  ])
}

/** One element of a chain (Sequential or KerasSequential); returns the output value. */
function emitLeaf(g: GraphBuilder, m: Module, x: string, prefix: string, what: string): string {
  if (m instanceof Linear) return emitLinear(g, m, x, prefix)
  if (m instanceof Embedding) {
    return g.one('Gather', [g.floats(`${prefix}weight`, [m.numEmbeddings, m.embeddingDim], floatData('toOnnx', m.weight)), x], `${prefix}embedding`, [{ name: 'axis', int: 0 }])
  }
  if (m instanceof Dropout) return x
  if (m instanceof Tanh) return emitActivation(g, 'tanh', x, prefix)
  if (m instanceof Sigmoid) return emitActivation(g, 'sigmoid', x, prefix)
  if (m instanceof ReLU) return emitActivation(g, 'relu', x, prefix)
  if (m instanceof KerasActivationLayer) return emitActivation(g, m.activation, x, prefix)
  throw new ValueError('toOnnx', `${what}: cannot export ${m.constructor.name}; supported: LSTM, GRU, RNN, Linear, Embedding, Dropout, Tanh, Sigmoid, ReLU, Sequential, KerasSequential`)
}

// ---- model → ModelProto ------------------------------------------------------------------------

interface Io {
  name: string
  type: number
  shape: ReadonlyArray<number | string | null> | null
}

function defaultInput(model: Module): { type: number; shape: Array<number | string> } {
  const first = (m: Module): Module | undefined => {
    if (m instanceof KerasSequential) return m.layers.find((l) => !(l.module instanceof Dropout))?.module
    if (m instanceof Sequential) return [...m].find((c) => !(c instanceof Dropout))
    return m
  }
  const f = first(model)
  const T: number | string = model instanceof KerasSequential && model.inputLength !== null ? model.inputLength : 'T'
  if (f instanceof Embedding) return { type: INT32, shape: ['B', T] }
  if (f instanceof Linear) return { type: FLOAT, shape: ['N', f.inFeatures] }
  if (f instanceof RNNBase) {
    if (model instanceof KerasSequential || f.batchFirst) return { type: FLOAT, shape: ['B', T, f.inputSize] }
    return { type: FLOAT, shape: ['T', 'B', f.inputSize] }
  }
  return { type: FLOAT, shape: ['N', 'F'] }
}

/**
 * Exports `model` as an ONNX model (the bytes of an `.onnx` file). The parameters are read as
 * they are now (this waits for pending updates).
 *
 * @throws ValueError for a module that has no ONNX export (the message lists those that do).
 */
export function toOnnx(model: Module, options: OnnxExportOptions = {}): Uint8Array {
  const op = 'toOnnx'
  if (!(model instanceof Module)) throw new ValueError(op, `expected a Module, got ${model === null ? 'null' : typeof model}`)
  const opset = options.opsetVersion ?? 14
  if (!Number.isInteger(opset) || opset < 14 || opset > 17) throw new ValueError(op, `opsetVersion must be an integer in [14, 17], got ${opset}`)
  const g = new GraphBuilder()
  const def = defaultInput(model)
  const input: Io = { name: g.reserve('input'), type: def.type, shape: options.inputShape ?? def.shape }
  const outputs: Io[] = []
  const finish = (value: string, name: string) => {
    g.node('Identity', [value], [g.reserve(name)], [], true)
    outputs.push({ name, type: FLOAT, shape: null })
  }

  if (model instanceof RNNBase) {
    const r = emitRecurrent(g, model, input.name, model.batchFirst, '')
    finish(model.batchFirst ? g.one('Transpose', [r.seq], 'output_bm', [{ name: 'perm', ints: [1, 0, 2] }]) : r.seq, 'output')
    finish(r.yh.length === 1 ? r.yh[0]! : g.one('Concat', r.yh, 'hN_cat', [{ name: 'axis', int: 0 }]), 'hN')
    if (model instanceof LSTM) finish(r.yc.length === 1 ? r.yc[0]! : g.one('Concat', r.yc, 'cN_cat', [{ name: 'axis', int: 0 }]), 'cN')
  } else if (model instanceof KerasSequential) {
    let x = input.name
    for (const [i, l] of model.layers.entries()) {
      const m = l.module
      const prefix = `${i}.`
      if (m instanceof RNNBase) {
        const r = emitRecurrent(g, m, x, true, prefix)
        const D = m.numDirections
        if (l.returnSequences) {
          const tm = D === 2 && l.mergeMode !== 'concat' ? emitMerge(g, l.mergeMode, r.y, 1, prefix) : r.seq
          x = g.one('Transpose', [tm], `${prefix}seq_bm`, [{ name: 'perm', ints: [1, 0, 2] }])
        } else {
          const yh = r.yh[r.yh.length - 1]!
          if (D === 2 && l.mergeMode !== 'concat') x = emitMerge(g, l.mergeMode, yh, 0, prefix)
          else {
            const t = g.one('Transpose', [yh], `${prefix}h_bdh`, [{ name: 'perm', ints: [1, 0, 2] }])
            x = g.one('Reshape', [t, g.int64s(`${prefix}shape_b_1`, [0, -1])], `${prefix}last`)
          }
        }
      } else if (m instanceof Linear) {
        x = emitActivation(g, l.activation, emitLinear(g, m, x, prefix), prefix)
      } else x = emitLeaf(g, m, x, prefix, `layer '${l.name}'`)
    }
    finish(x, 'output')
  } else if (model instanceof Sequential) {
    let x = input.name
    let i = 0
    for (const m of model) x = emitLeaf(g, m, x, `${i++}.`, `element ${i - 1} of the Sequential`)
    finish(x, 'output')
  } else {
    finish(emitLeaf(g, model, input.name, '', 'the model'), 'output')
  }
  return encodeModel(g, [input], outputs, opset, options.graphName ?? model.constructor.name)
}

function writeAttr(w: ProtoWriter, a: Attr): void {
  w.string(1, a.name)
  if ('int' in a) w.int(20, ATTR_INT).int(3, a.int)
  else if ('float' in a) w.int(20, ATTR_FLOAT).float(2, a.float)
  else if ('str' in a) w.int(20, ATTR_STRING).string(4, a.str)
  else if ('ints' in a) {
    w.int(20, ATTR_INTS)
    for (const v of a.ints) w.int(8, v)
  } else {
    w.int(20, ATTR_STRINGS)
    for (const s of a.strs) w.string(9, s)
  }
}

function writeValueInfo(w: ProtoWriter, io: Io): void {
  w.string(1, io.name)
  w.message(2, (tp) =>
    tp.message(1, (tt) => {
      tt.int(1, io.type)
      if (io.shape) {
        tt.message(2, (sh) => {
          for (const d of io.shape!) {
            sh.message(1, (dim) => {
              if (typeof d === 'number') dim.int(1, d)
              else if (typeof d === 'string') dim.string(2, d)
            })
          }
        })
      }
    }),
  )
}

function encodeModel(g: GraphBuilder, inputs: Io[], outputs: Io[], opset: number, graphName: string): Uint8Array {
  const w = new ProtoWriter()
  w.int(1, 7) // ir_version 7 (ONNX 1.8+; opsets up to 14 and beyond are read by current runtimes)
  w.string(2, 'recurrent')
  w.string(3, '0.1.0')
  w.message(7, (gw) => {
    for (const n of g.nodes) {
      gw.message(1, (nw) => {
        for (const i of n.inputs) nw.string(1, i)
        for (const o of n.outputs) nw.string(2, o)
        nw.string(3, n.name)
        nw.string(4, n.op)
        for (const a of n.attrs) nw.message(5, (aw) => writeAttr(aw, a))
      })
    }
    gw.string(2, graphName)
    for (const t of g.inits) {
      gw.message(5, (tw) => {
        for (const d of t.dims) tw.int(1, d)
        tw.int(2, t.type)
        tw.string(8, t.name)
        tw.bytes(9, t.raw)
      })
    }
    for (const io of inputs) gw.message(11, (vw) => writeValueInfo(vw, io))
    for (const io of outputs) gw.message(12, (vw) => writeValueInfo(vw, io))
  })
  w.message(8, (ow) => {
    ow.string(1, '')
    ow.int(2, opset)
  })
  return w.finish()
}

/**
 * Writes {@link toOnnx}'s bytes to `path` (through a temporary file and a rename, so a failed
 * write leaves an earlier file intact).
 *
 * @throws CheckpointError when the file cannot be written.
 */
export async function saveOnnx(model: Module, path: string, options: OnnxExportOptions = {}): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw new ValueError('saveOnnx', `path must be a non-empty string, got ${String(path)}`)
  const bytes = toOnnx(model, options)
  try {
    await atomicWrite(path, bytes)
  } catch (e) {
    throw new CheckpointError('saveOnnx', `cannot write '${path}': ${(e as Error).message}`, { cause: e })
  }
}
