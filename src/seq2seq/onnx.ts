/**
 * ONNX export of a `Seq2Seq` for serving: two graphs, the encoder (source → encoder outputs,
 * attention keys and the decoder's initial state) and one decoder step (previous token and
 * state → logits and the next state, attention included), so that any ONNX runtime can run
 * greedy or beam decoding with its own loop.
 */

import type { Tensor } from '../tensor.js'
import { ValueError } from '../errors.js'
import { FLOAT, INT32, GraphBuilder, emitLinear, emitRecurrent, encodeModel, floatData, type Io } from '../io/onnx-graph.js'
import type { Linear } from '../nn/linear.js'
import type { Module } from '../nn/module.js'
import { LSTMCell, GRUCell, type RNNCell } from '../nn/cells.js'
import type { Seq2Seq } from './model.js'
import { checkOptions, optionKeys } from '../validate.js'

/** The two graphs of a `Seq2Seq` (the bytes of two `.onnx` files). */
export interface Seq2SeqOnnx {
  /**
   * Inputs `source` int32 `[S, B]`, `source_lengths` int32 `[B]`. Outputs `encoder_outputs`
   * `[S, B, K]`, `memory_keys` `[S, B, A]` (with attention), and the decoder's initial state
   * `h0_l{k}` `[B, H]` (and `c0_l{k}` for LSTM) per decoder layer k.
   */
  encoder: Uint8Array
  /**
   * Inputs `tokens` int32 `[N]` (the previous tokens; BOS first), `h_l{k}` (and `c_l{k}`) `[N, H]`,
   * and with attention `encoder_outputs` `[S, N, K]`, `memory_keys` `[S, N, A]`,
   * `source_lengths` int32 `[N]`. Outputs `logits` `[N, V]`, `h_l{k}_out` (and `c_l{k}_out`), and
   * with attention `attention_weights` `[N, S]`.
   */
  decoderStep: Uint8Array
}

/** Options of {@link seq2seqToOnnx}. */
export interface Seq2SeqOnnxOptions {
  /** The opset of the default domain, 14 (default) to 17. */
  opsetVersion?: number
}

const SEQ2SEQ_ONNX_OPTIONS = optionKeys<Seq2SeqOnnxOptions>({ opsetVersion: true })

function param(m: Module, name: string): Tensor {
  const t = m.namedParameters().find(([n]) => n === name)?.[1]
  if (!t) throw new ValueError('toOnnx', `${m.constructor.name} has no parameter '${name}'`)
  return t
}

/** A weight or bias as plain data. */
interface Mat {
  shape: number[]
  data: Float32Array
}

function mat(t: Tensor): Mat {
  return { shape: [...t.shape], data: floatData('toOnnx', t) }
}

/** Rows `[start, start + n)` of a weight `[R, C]` or a vector `[R]`. */
function rows(m: Mat, start: number, n: number): Mat {
  const cols = m.shape.length === 2 ? m.shape[1]! : 1
  return { shape: m.shape.length === 2 ? [n, cols] : [n], data: m.data.slice(start * cols, (start + n) * cols) }
}

/** `x [N, in] → x Wᵀ (+ b)` for a weight `[out, in]` and an optional bias `[out]`. */
function affine(g: GraphBuilder, x: string, w: Mat, b: Mat | null, prefix: string): string {
  const [o, n] = w.shape as [number, number]
  const t = new Float32Array(w.data.length)
  for (let r = 0; r < o; r++) for (let c = 0; c < n; c++) t[c * o + r] = w.data[r * n + c]!
  const y = g.one('MatMul', [x, g.floats(`${prefix}weight_t`, [n, o], t)], `${prefix}mm`)
  return b ? g.one('Add', [y, g.floats(`${prefix}bias`, b.shape, b.data)], `${prefix}affine`) : y
}

/** One step of a decoder cell: `x [N, I]`, `h [N, H]` (and `c`) → the new `h` (and `c`). */
function emitCellStep(g: GraphBuilder, cell: LSTMCell | GRUCell | RNNCell, x: string, h: string, c: string | null, prefix: string): { h: string; c: string | null } {
  const names = cell.namedParameters().map(([n]) => n)
  const wIh = mat(param(cell, 'weight_ih'))
  const wHh = mat(param(cell, 'weight_hh'))
  const bIh = names.includes('bias_ih') ? mat(param(cell, 'bias_ih')) : null
  const bHh = names.includes('bias_hh') ? mat(param(cell, 'bias_hh')) : null
  const H = wHh.shape[1]!
  const gi = affine(g, x, wIh, bIh, `${prefix}ih.`)
  const gh = affine(g, h, wHh, bHh, `${prefix}hh.`)
  if (cell instanceof LSTMCell) {
    const sum = g.one('Add', [gi, gh], `${prefix}gates`)
    const [i, f, gg, o] = g.node('Split', [sum, g.int64s(`${prefix}split4`, [H, H, H, H])], [`${prefix}i`, `${prefix}f`, `${prefix}g`, `${prefix}o`], [{ name: 'axis', int: 1 }])
    const si = g.one('Sigmoid', [i!], `${prefix}si`)
    const sf = g.one('Sigmoid', [f!], `${prefix}sf`)
    const tg = g.one('Tanh', [gg!], `${prefix}tg`)
    const so = g.one('Sigmoid', [o!], `${prefix}so`)
    const c2 = g.one('Add', [g.one('Mul', [sf, c!], `${prefix}fc`), g.one('Mul', [si, tg], `${prefix}ig`)], `${prefix}c`)
    return { h: g.one('Mul', [so, g.one('Tanh', [c2], `${prefix}tc`)], `${prefix}h`), c: c2 }
  }
  if (cell instanceof GRUCell) {
    const split3 = g.int64s(`${prefix}split3`, [H, H, H])
    const [ir, iz, inn] = g.node('Split', [gi, split3], [`${prefix}ir`, `${prefix}iz`, `${prefix}in`], [{ name: 'axis', int: 1 }])
    const r = (hr: string) => g.one('Sigmoid', [g.one('Add', [ir!, hr], `${prefix}r_pre`)], `${prefix}r`)
    const z = (hz: string) => g.one('Sigmoid', [g.one('Add', [iz!, hz], `${prefix}z_pre`)], `${prefix}z`)
    let n: string
    let zv: string
    if (cell.resetAfter) {
      // n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
      const [hr, hz, hn] = g.node('Split', [gh, split3], [`${prefix}hr`, `${prefix}hz`, `${prefix}hn`], [{ name: 'axis', int: 1 }])
      const rv = r(hr!)
      zv = z(hz!)
      n = g.one('Tanh', [g.one('Add', [inn!, g.one('Mul', [rv, hn!], `${prefix}rhn`)], `${prefix}n_pre`)], `${prefix}n`)
    } else {
      // n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn): the recurrent product of n needs r first.
      const [hr, hz] = g.node('Split', [gh, split3], [`${prefix}hr`, `${prefix}hz`, `${prefix}hn_unused`], [{ name: 'axis', int: 1 }])
      const rv = r(hr!)
      zv = z(hz!)
      const rh = g.one('Mul', [rv, h], `${prefix}rh`)
      const hn = affine(g, rh, rows(wHh, 2 * H, H), bHh ? rows(bHh, 2 * H, H) : null, `${prefix}hn.`)
      n = g.one('Tanh', [g.one('Add', [inn!, hn], `${prefix}n_pre`)], `${prefix}n`)
    }
    // h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
    const h2 = g.one('Add', [n, g.one('Mul', [zv, g.one('Sub', [h, n], `${prefix}h_minus_n`)], `${prefix}zhn`)], `${prefix}h`)
    return { h: h2, c: null }
  }
  const pre = g.one('Add', [gi, gh], `${prefix}pre`)
  return { h: g.one(cell.nonlinearity === 'relu' ? 'Relu' : 'Tanh', [pre], `${prefix}h`), c: null }
}

function linearOf(g: GraphBuilder, m: Linear, x: string, prefix: string): string {
  return emitLinear(g, m, x, prefix)
}

/**
 * Exports `model` as its encoder graph and its decoder-step graph (see {@link Seq2SeqOnnx}).
 * The parameters are read as they are now.
 */
export function seq2seqToOnnx(model: Seq2Seq, options: Seq2SeqOnnxOptions = {}): Seq2SeqOnnx {
  const opset = checkOptions('seq2seqToOnnx', options, SEQ2SEQ_ONNX_OPTIONS).opsetVersion ?? 14
  if (!Number.isInteger(opset) || opset < 14 || opset > 17) throw new ValueError('toOnnx', `opsetVersion must be an integer in [14, 17], got ${opset}`)
  const cfg = model.config
  const L = cfg.numLayers
  const H = cfg.hiddenSize
  const D = cfg.bidirectional ? 2 : 1
  const K = D * H
  const isLstm = cfg.cell === 'lstm'
  const att = model.decoder.attention

  // ---- encoder
  const e = new GraphBuilder()
  const eIn: Io[] = [
    { name: e.reserve('source'), type: INT32, shape: ['S', 'B'] },
    { name: e.reserve('source_lengths'), type: INT32, shape: ['B'] },
  ]
  const eOut: Io[] = []
  const finish = (g: GraphBuilder, outs: Io[], value: string, name: string, shape: Array<number | string>) => {
    g.node('Identity', [value], [g.reserve(name)], [], true)
    outs.push({ name, type: FLOAT, shape })
  }
  const srcEmb = e.one('Gather', [e.floats('src_embedding', [cfg.sourceVocabSize, cfg.embeddingDim], floatData('toOnnx', model.srcEmbedding.weight)), 'source'], 'src_emb', [{ name: 'axis', int: 0 }])
  const r = emitRecurrent(e, model.encoder, srcEmb, false, 'enc.', 'source_lengths')
  finish(e, eOut, r.seq, 'encoder_outputs', ['S', 'B', K])
  if (att) {
    const keys = att.score === 'bahdanau' ? linearOf(e, att.keyProj!, r.seq, 'keyproj.') : r.seq
    finish(e, eOut, keys, 'memory_keys', ['S', 'B', att.score === 'bahdanau' ? cfg.attentionSize : K])
  }
  const bridged = (states: string[], bridge: Linear | null, name: string) => {
    for (let l = 0; l < L; l++) {
      // Y_h of layer l is [D, B, H]: one direction squeezes to [B, H]; two are bridged.
      let v: string
      if (bridge === null) v = e.one('Squeeze', [states[l]!, e.int64s(`${name}axes`, [0])], `${name}_sq_l${l}`)
      else {
        const t = e.one('Transpose', [states[l]!], `${name}_bdh_l${l}`, [{ name: 'perm', ints: [1, 0, 2] }])
        const cat = e.one('Reshape', [t, e.int64s(`${name}shape`, [0, -1])], `${name}_cat_l${l}`)
        v = e.one('Tanh', [linearOf(e, bridge, cat, `${name}.bridge.`)], `${name}_bridged_l${l}`)
      }
      finish(e, eOut, v, `${name}_l${l}`, ['B', H])
    }
  }
  bridged(r.yh, model.bridgeH, 'h0')
  if (isLstm) bridged(r.yc, model.bridgeC, 'c0')
  const encoder = encodeModel(e, eIn, eOut, opset, 'Seq2SeqEncoder')

  // ---- decoder step
  const d = new GraphBuilder()
  const dIn: Io[] = [{ name: d.reserve('tokens'), type: INT32, shape: ['N'] }]
  for (let l = 0; l < L; l++) {
    dIn.push({ name: d.reserve(`h_l${l}`), type: FLOAT, shape: ['N', H] })
    if (isLstm) dIn.push({ name: d.reserve(`c_l${l}`), type: FLOAT, shape: ['N', H] })
  }
  const dOut: Io[] = []
  const emb = d.one('Gather', [d.floats('tgt_embedding', [cfg.targetVocabSize, cfg.embeddingDim], floatData('toOnnx', model.decoder.embedding.weight)), 'tokens'], 'tgt_emb', [{ name: 'axis', int: 0 }])
  let context: string | null = null
  let weights: string | null = null
  if (att) {
    const A = att.score === 'bahdanau' ? cfg.attentionSize : K
    dIn.push({ name: d.reserve('encoder_outputs'), type: FLOAT, shape: ['S', 'N', K] })
    dIn.push({ name: d.reserve('memory_keys'), type: FLOAT, shape: ['S', 'N', A] })
    dIn.push({ name: d.reserve('source_lengths'), type: INT32, shape: ['N'] })
    const q = `h_l${L - 1}`
    let scoresSN: string
    if (att.score === 'bahdanau') {
      // e[s, n] = vᵀ tanh(W_q q[n] + keys[s, n])
      const qp = linearOf(d, att.queryProj!, q, 'att.query.')
      const t = d.one('Tanh', [d.one('Add', ['memory_keys', qp], 'att.sum')], 'att.tanh')
      const v = floatData('toOnnx', att.v!)
      const s1 = d.one('MatMul', [t, d.floats('att.v', [v.length, 1], v)], 'att.scores1')
      scoresSN = d.one('Squeeze', [s1, d.int64s('att.axes2', [2])], 'att.scores_sn')
    } else {
      // e[s, n] = q'[n] · keys[s, n], q' = q (dot) or W q (general)
      const qp = att.score === 'general' ? linearOf(d, att.queryProj!, q, 'att.query.') : q
      scoresSN = d.one('ReduceSum', [d.one('Mul', ['memory_keys', qp], 'att.prod'), d.int64s('att.axes2', [2])], 'att.scores_sn', [{ name: 'keepdims', int: 0 }])
    }
    const scores = d.one('Transpose', [scoresSN], 'att.scores', [{ name: 'perm', ints: [1, 0] }])
    // Positions at or past a row's length: −∞ before the softmax, so their weight is exactly 0.
    const S = d.one('Gather', [d.one('Shape', ['memory_keys'], 'att.shape'), d.int64Scalar('att.idx0', 0)], 'att.S', [{ name: 'axis', int: 0 }])
    const pos = d.one('Range', [d.int64Scalar('att.zero', 0), S, d.int64Scalar('att.one', 1)], 'att.pos')
    const len64 = d.one('Cast', ['source_lengths'], 'att.len64', [{ name: 'to', int: 7 }])
    const lenCol = d.one('Unsqueeze', [len64, d.int64s('att.axes1', [1])], 'att.len_col')
    const valid = d.one('Less', [d.one('Unsqueeze', [pos, d.int64s('att.axes0d', [0])], 'att.pos_row'), lenCol], 'att.valid')
    const masked = d.one('Where', [valid, scores, d.floats('att.neg_inf', [], new Float32Array([-Infinity]))], 'att.masked')
    weights = d.one('Softmax', [masked], 'att.weights', [{ name: 'axis', int: 1 }])
    // context[n] = Σ_s w[n, s] values[s, n]
    const vals = d.one('Transpose', ['encoder_outputs'], 'att.values_nsk', [{ name: 'perm', ints: [1, 0, 2] }])
    const w3 = d.one('Unsqueeze', [weights, d.int64s('att.axes1b', [1])], 'att.w3')
    context = d.one('Squeeze', [d.one('MatMul', [w3, vals], 'att.ctx3'), d.int64s('att.axes1c', [1])], 'att.context')
  }
  let x = context ? d.one('Concat', [emb, context], 'dec.x', [{ name: 'axis', int: 1 }]) : emb
  for (let l = 0; l < L; l++) {
    const s = emitCellStep(d, model.decoder.cells[l]!, x, `h_l${l}`, isLstm ? `c_l${l}` : null, `dec${l}.`)
    finish(d, dOut, s.h, `h_l${l}_out`, ['N', H])
    if (s.c) finish(d, dOut, s.c, `c_l${l}_out`, ['N', H])
    x = s.h
  }
  const out = context ? d.one('Concat', [x, context], 'dec.out', [{ name: 'axis', int: 1 }]) : x
  finish(d, dOut, linearOf(d, model.decoder.head, out, 'head.'), 'logits', ['N', cfg.targetVocabSize])
  if (weights) finish(d, dOut, weights, 'attention_weights', ['N', 'S'])
  const decoderStep = encodeModel(d, dIn, dOut, opset, 'Seq2SeqDecoderStep')
  return { encoder, decoderStep }
}
