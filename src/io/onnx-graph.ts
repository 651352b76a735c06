/**
 * The plumbing of the ONNX exporters: value names, initializers and nodes (`GraphBuilder`),
 * the emitters of the modules every exporter shares (recurrent layers, Linear, activations), and
 * the encoding of a graph as a ModelProto with the small protobuf writer of `protobuf.ts`.
 */

import type { Tensor } from '../tensor.js'
import { ValueError } from '../errors.js'
import type { Linear } from '../nn/linear.js'
import { RNN, type RNNBase } from '../nn/rnn.js'
import { LSTM } from '../nn/lstm.js'
import { GRU } from '../nn/gru.js'
import type { KerasActivation } from './tfjs/sequential.js'
import { ProtoWriter } from './protobuf.js'

// ---- ONNX enums --------------------------------------------------------------------------------

export const FLOAT = 1
export const INT32 = 6
export const INT64 = 7
export const ATTR_FLOAT = 1
export const ATTR_INT = 2
export const ATTR_STRING = 3
export const ATTR_INTS = 7
export const ATTR_STRINGS = 8

export type Attr =
  | { name: string; int: number }
  | { name: string; float: number }
  | { name: string; str: string }
  | { name: string; ints: number[] }
  | { name: string; strs: string[] }

export interface Init {
  name: string
  dims: number[]
  type: number
  raw: Uint8Array
}

export interface Node {
  op: string
  inputs: string[]
  outputs: string[]
  attrs: Attr[]
  name: string
}

/** Collects nodes and initializers, with unique value names. */
export class GraphBuilder {
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

  /** A scalar int64 initializer (as `Range` wants its bounds). */
  int64Scalar(base: string, value: number): string {
    const name = this.fresh(base)
    this.inits.push({ name, dims: [], type: INT64, raw: leBytes(new BigInt64Array([BigInt(value)])) })
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

export function leBytes(a: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  // Typed arrays are little-endian on every platform Node supports; copy to own the bytes.
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))
}

export function floatData(op: string, t: Tensor): Float32Array {
  const d = t.dataSync()
  if (d instanceof Float32Array) return d
  if (d instanceof Float64Array) return Float32Array.from(d)
  throw new ValueError(op, `parameters must be floating point, got ${t.dtype}`)
}

// ---- emitters ----------------------------------------------------------------------------------

/** ONNX gate block order, as indices of PyTorch's blocks. */
export function onnxOrder(m: RNNBase): number[] {
  if (m instanceof LSTM) return [0, 3, 1, 2] // i o f c  <-  i f g o
  if (m instanceof GRU) return [1, 0, 2] // z r h  <-  r z n
  return [0]
}

export function reorderRows(w: Float32Array, H: number, cols: number, order: number[]): Float32Array {
  const out = new Float32Array(w.length)
  const block = H * cols
  order.forEach((src, j) => out.set(w.subarray(src * block, src * block + block), j * block))
  return out
}

export interface RecurrentOut {
  /** The last layer's output, time-major `[T, B, D·H]`. */
  seq: string
  /** The last layer's raw output `[T, D, B, H]`. */
  y: string
  /** Per layer, `Y_h [D, B, H]`. */
  yh: string[]
  /** Per layer, `Y_c [D, B, H]` (LSTM). */
  yc: string[]
}

/**
 * One ONNX recurrent node per layer of `m` over `x`; `lengths` (an int32 `[B]` value) becomes
 * every node's `sequence_lens`, whose semantics are ours: zero outputs past a row's length, and
 * `Y_h` at each row's last valid step.
 */
export function emitRecurrent(g: GraphBuilder, m: RNNBase, x: string, batchMajor: boolean, prefix: string, lengths?: string): RecurrentOut {
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
    if (lengths !== undefined) {
      if (bs.length !== D) inputs.push('')
      inputs.push(lengths)
    }
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

export function emitLinear(g: GraphBuilder, m: Linear, x: string, prefix: string): string {
  const W = floatData('toOnnx', m.weight)
  const Wt = new Float32Array(W.length)
  const o = m.outFeatures
  const n = m.inFeatures
  for (let r = 0; r < o; r++) for (let c = 0; c < n; c++) Wt[c * o + r] = W[r * n + c]!
  let y = g.one('MatMul', [x, g.floats(`${prefix}weight_t`, [n, o], Wt)], `${prefix}matmul`)
  if (m.bias) y = g.one('Add', [y, g.floats(`${prefix}bias`, [o], floatData('toOnnx', m.bias))], `${prefix}linear`)
  return y
}

export function emitActivation(g: GraphBuilder, a: KerasActivation | 'tanh' | 'sigmoid' | 'relu', x: string, prefix: string): string {
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


export interface Io {
  name: string
  type: number
  shape: ReadonlyArray<number | string | null> | null
}

export function writeAttr(w: ProtoWriter, a: Attr): void {
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

export function writeValueInfo(w: ProtoWriter, io: Io): void {
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

export function encodeModel(g: GraphBuilder, inputs: Io[], outputs: Io[], opset: number, graphName: string): Uint8Array {
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
