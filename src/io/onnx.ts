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

import { ValueError, CheckpointError } from '../errors.js'
import { Module } from '../nn/module.js'
import { Linear } from '../nn/linear.js'
import { Embedding } from '../nn/embedding.js'
import { Dropout } from '../nn/dropout.js'
import { Sequential } from '../nn/sequential.js'
import { Tanh, Sigmoid, ReLU } from '../nn/activation.js'
import { RNNBase } from '../nn/rnn.js'
import { LSTM } from '../nn/lstm.js'
import { KerasActivationLayer, KerasSequential, type MergeMode } from './tfjs/sequential.js'
import { atomicWrite } from './atomic.js'
import { checkOptions, optionKeys, refusal, typeError } from '../validate.js'
import { Seq2Seq } from '../seq2seq/model.js'
import { seq2seqToOnnx, type Seq2SeqOnnx } from '../seq2seq/onnx.js'
import { FLOAT, INT32, GraphBuilder, emitActivation, emitLinear, emitRecurrent, encodeModel, floatData, type Io } from './onnx-graph.js'

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

const ONNX_EXPORT_OPTIONS = optionKeys<OnnxExportOptions>({ inputShape: true, opsetVersion: true, graphName: true })

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
 * they are now (this waits for pending updates). A `Seq2Seq` exports as two graphs, its encoder
 * and one decoder step (`Seq2SeqOnnx`, see `src/seq2seq/onnx.ts`).
 *
 * @throws ValueError for a module that has no ONNX export (the message lists those that do).
 */
export function toOnnx(model: Seq2Seq, options?: OnnxExportOptions): Seq2SeqOnnx
export function toOnnx(model: Module, options?: OnnxExportOptions): Uint8Array
export function toOnnx(model: Module, options: OnnxExportOptions = {}): Uint8Array | Seq2SeqOnnx {
  const op = 'toOnnx'
  options = checkOptions(op, options, ONNX_EXPORT_OPTIONS)
  if (model instanceof Seq2Seq) return seq2seqToOnnx(model, options.opsetVersion === undefined ? {} : { opsetVersion: options.opsetVersion })
  if (!(model instanceof Module)) throw typeError(op, "argument 'model'", 'a Module', model)
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


/**
 * Writes {@link toOnnx}'s bytes to `path` (through a temporary file and a rename, so a failed
 * write leaves an earlier file intact). A `Seq2Seq` writes `<path>.encoder.onnx` and
 * `<path>.decoder_step.onnx` (a trailing `.onnx` of `path` is dropped first).
 *
 * @throws CheckpointError when the file cannot be written.
 */
export async function saveOnnx(model: Module, path: string, options: OnnxExportOptions = {}): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw refusal('saveOnnx', 'path', 'a non-empty string', path, 'string')
  options = checkOptions('saveOnnx', options, ONNX_EXPORT_OPTIONS)
  const files: Array<[string, Uint8Array]> = []
  if (model instanceof Seq2Seq) {
    // Two graphs: `<path>.encoder.onnx` and `<path>.decoder_step.onnx` (path without `.onnx`).
    const base = path.replace(/\.onnx$/, '')
    const g = toOnnx(model, options)
    files.push([`${base}.encoder.onnx`, g.encoder], [`${base}.decoder_step.onnx`, g.decoderStep])
  } else files.push([path, toOnnx(model, options)])
  for (const [file, bytes] of files) {
    try {
      await atomicWrite(file, bytes)
    } catch (e) {
      throw new CheckpointError('saveOnnx', `cannot write '${file}': ${(e as Error).message}`, { cause: e })
    }
  }
}
