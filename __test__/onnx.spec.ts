/**
 * ONNX export, checked by running the exported bytes in onnxruntime-node (CPU).
 *
 * For every cell (LSTM, GRU reset-after and reset-before, RNN tanh and relu), single, stacked,
 * bidirectional and both, time-major and batch-first, the ONNX outputs (`output`, `hN`, `cN`)
 * agree with `recurrent`'s forward pass to a relative error ≤ 1e-5, where
 * relative error = ‖a − b‖₂ / ‖b‖₂ over all elements (b: recurrent's value). So do a Linear
 * head, an Embedding front, nn.Sequential, and KerasSequential chains with Keras's last-step
 * outputs and Bidirectional merge modes. Inputs are random, never zero.
 */

import test from 'ava'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort, { type OrtTensor } from './helpers/onnxruntime.js'

import {
  Dropout,
  Embedding,
  GRU,
  KerasSequential,
  LSTM,
  Linear,
  Module,
  RNN,
  type RNNBase,
  ReLU,
  Sequential,
  Tanh,
  type Tensor,
  ValueError,
  saveOnnx,
  tensor,
  toOnnx,
} from '../index.js'
import { randomArray, relErr } from './helpers/numeric.js'
import { decodeFields } from '../src/io/protobuf.js'


async function runOnnx(bytes: Uint8Array, feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' })
  try {
    return (await s.run(feeds)) as Record<string, OrtTensor>
  } finally {
    await s.release()
  }
}

const TOL = 1e-5

// ---- recurrent modules -------------------------------------------------------------------------

type Kind = 'lstm' | 'gru' | 'gru-reset-before' | 'rnn-tanh' | 'rnn-relu'

function makeModule(kind: Kind, I: number, H: number, opts: { numLayers: number; bidirectional: boolean; batchFirst: boolean; seed: number; bias?: boolean }): RNNBase {
  switch (kind) {
    case 'lstm':
      return new LSTM(I, H, opts)
    case 'gru':
      return new GRU(I, H, opts)
    case 'gru-reset-before':
      return new GRU(I, H, { ...opts, resetAfter: false })
    case 'rnn-tanh':
      return new RNN(I, H, opts)
    case 'rnn-relu':
      return new RNN(I, H, { ...opts, nonlinearity: 'relu' })
  }
}

let seed = 1
for (const kind of ['lstm', 'gru', 'gru-reset-before', 'rnn-tanh', 'rnn-relu'] as const) {
  for (const [numLayers, bidirectional, batchFirst] of [
    [1, false, false],
    [2, false, true],
    [1, true, false],
    [2, true, true],
  ] as const) {
    const s = seed++
    const title = `${kind}${numLayers > 1 ? ` stacked×${numLayers}` : ''}${bidirectional ? ' bidirectional' : ''}${batchFirst ? ' batchFirst' : ''}: onnxruntime agrees`
    test(title, async (t) => {
      const T = 7
      const B = 3
      const I = 5
      const H = 6
      const D = bidirectional ? 2 : 1
      const m = makeModule(kind, I, H, { numLayers, bidirectional, batchFirst, seed: s })
      const shape = batchFirst ? [B, T, I] : [T, B, I]
      const xData = randomArray(B * T * I, 100 + s)
      const ref = m.forward(tensor(xData, shape)) as { output: Tensor; hN: Tensor; cN?: Tensor }
      const got = await runOnnx(toOnnx(m), { input: new ort.Tensor('float32', xData, shape) })
      t.deepEqual(got.output!.dims, batchFirst ? [B, T, D * H] : [T, B, D * H])
      t.deepEqual(got.hN!.dims, [numLayers * D, B, H])
      const errs = [relErr(got.output!.data as Float32Array, await ref.output.data()), relErr(got.hN!.data as Float32Array, await ref.hN.data())]
      if (ref.cN) errs.push(relErr(got.cN!.data as Float32Array, await ref.cN.data()))
      else t.false('cN' in got)
      for (const e of errs) t.true(e <= TOL, `relative error ${e}`)
      t.log(`relative errors: ${errs.map((e) => e.toExponential(2)).join(', ')}`)
    })
  }
}

test('a recurrent module without biases exports (ONNX B omitted)', async (t) => {
  const m = new LSTM(3, 4, { bias: false, seed: 5 })
  const x = randomArray(6 * 2 * 3, 8)
  const ref = m.forward(tensor(x, [6, 2, 3]))
  const got = await runOnnx(toOnnx(m), { input: new ort.Tensor('float32', x, [6, 2, 3]) })
  t.true(relErr(got.output!.data as Float32Array, await ref.output.data()) <= TOL)
})

test('the input shape can be fixed, and the graph is ONNX opset 14', async (t) => {
  const m = new GRU(4, 3, { seed: 3 })
  const bytes = toOnnx(m, { inputShape: [5, 2, 4] })
  const fields = decodeFields(bytes)
  const ir = fields.find((f) => f.field === 1)!
  t.is(ir.value, 7n)
  const opset = decodeFields(fields.find((f) => f.field === 8)!.value as Uint8Array)
  t.deepEqual(opset.find((f) => f.field === 2)!.value, 14n)
  const s = await ort.InferenceSession.create(bytes)
  t.deepEqual(s.inputNames, ['input'])
  t.deepEqual(s.outputNames, ['output', 'hN'])
  await t.throwsAsync(s.run({ input: new ort.Tensor('float32', randomArray(3 * 2 * 4, 1), [3, 2, 4]) }))
  await s.release()
})

// ---- heads, fronts, chains ---------------------------------------------------------------------

test('a Linear head on any rank: MatMul + Add', async (t) => {
  const lin = new Linear(6, 4, { seed: 2 })
  for (const shape of [
    [5, 6],
    [3, 2, 6],
  ]) {
    const x = randomArray(shape.reduce((a, b) => a * b, 1), 4)
    const ref = await lin.forward(tensor(x, shape)).data()
    const got = await runOnnx(toOnnx(lin, { inputShape: shape.map((d, i) => (i === shape.length - 1 ? d : `d${i}`)) }), {
      input: new ort.Tensor('float32', x, shape),
    })
    t.deepEqual(got.output!.dims, [...shape.slice(0, -1), 4])
    t.true(relErr(got.output!.data as Float32Array, ref) <= TOL)
  }
})

test('an Embedding front: Gather on int32 ids', async (t) => {
  const emb = new Embedding(11, 5, { seed: 1 })
  const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % 11)
  const ref = await emb.forward(tensor(ids, [3, 4], { dtype: 'int32' })).data()
  const got = await runOnnx(toOnnx(emb), { input: new ort.Tensor('int32', ids, [3, 4]) })
  t.deepEqual(got.output!.dims, [3, 4, 5])
  t.true(relErr(got.output!.data as Float32Array, ref) <= TOL)
})

test('nn.Sequential: Linear, Tanh, Dropout, ReLU, Linear', async (t) => {
  const m = new Sequential(new Linear(4, 8, { seed: 1 }), new Tanh(), new Dropout(0.5), new Linear(8, 8, { seed: 2 }), new ReLU(), new Linear(8, 2, { seed: 3 })).eval()
  const x = randomArray(5 * 4, 6)
  const ref = await m.forward(tensor(x, [5, 4])).data()
  const got = await runOnnx(toOnnx(m), { input: new ort.Tensor('float32', x, [5, 4]) })
  t.true(relErr(got.output!.data as Float32Array, ref) <= TOL)
})

test('Embedding → bidirectional LSTM ×2 → GRU (last step) → Linear softmax head', async (t) => {
  const m = new KerasSequential()
    .add(new Embedding(30, 8, { seed: 1 }))
    .add(new LSTM(8, 6, { numLayers: 2, bidirectional: true, batchFirst: true, seed: 2 }), { returnSequences: true })
    .add(new GRU(12, 5, { batchFirst: true, seed: 3 }))
    .add(new Linear(5, 4, { seed: 4 }), { activation: 'softmax' })
  const ids = Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 13 + 5) % 30)
  const ref = await m.forward(tensor(ids, [2, 9], { dtype: 'int32' })).data()
  const got = await runOnnx(toOnnx(m), { input: new ort.Tensor('int32', ids, [2, 9]) })
  t.deepEqual(got.output!.dims, [2, 4])
  const e = relErr(got.output!.data as Float32Array, ref)
  t.true(e <= TOL, `relative error ${e}`)
})

for (const mergeMode of ['concat', 'sum', 'mul', 'ave'] as const) {
  for (const returnSequences of [true, false]) {
    test(`KerasSequential bidirectional merge '${mergeMode}', returnSequences ${returnSequences}`, async (t) => {
      const m = new KerasSequential()
        .add(new RNN(3, 4, { bidirectional: true, batchFirst: false, seed: 9 }), { mergeMode, returnSequences })
        .add(new Linear(mergeMode === 'concat' ? 8 : 4, 2, { seed: 10 }), { activation: 'sigmoid' })
      const x = randomArray(2 * 5 * 3, 12)
      const ref = await m.forward(tensor(x, [2, 5, 3])).data()
      const got = await runOnnx(toOnnx(m), { input: new ort.Tensor('float32', x, [2, 5, 3]) })
      t.deepEqual(got.output!.dims, returnSequences ? [2, 5, 2] : [2, 2])
      const e = relErr(got.output!.data as Float32Array, ref)
      t.true(e <= TOL, `relative error ${e}`)
    })
  }
}

test('saveOnnx writes the same bytes as toOnnx', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'recurrent-onnx-'))
  try {
    const m = new LSTM(2, 3, { seed: 4 })
    const f = join(dir, 'm.onnx')
    await saveOnnx(m, f)
    t.deepEqual(new Uint8Array(readFileSync(f)), toOnnx(m))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('modules without an ONNX export get a clear error', (t) => {
  class Custom extends Module {
    forward(x: Tensor): Tensor {
      return x
    }
  }
  const e = t.throws(() => toOnnx(new Custom()), { instanceOf: ValueError })
  t.regex(e!.message, /cannot export Custom; supported: LSTM, GRU, RNN, Linear, Embedding/)
  const e2 = t.throws(() => toOnnx(new Sequential(new Linear(2, 2), new Custom() as never)), { instanceOf: ValueError })
  t.regex(e2!.message, /element 1 of the Sequential: cannot export Custom/)
  t.throws(() => toOnnx(new LSTM(2, 2), { opsetVersion: 9 }), { instanceOf: ValueError, message: /opsetVersion must be an integer in \[14, 17\]/ })
})
