/**
 * Parity with TensorFlow.js (tfjs-layers, CPU backend) and weight exchange.
 *
 * With the same weights and random (never zero) inputs, `recurrent` and tfjs must agree:
 * - forward outputs and final states to a relative error ≤ 1e-5,
 * - gradients of a loss w.r.t. the input and every weight to ≤ 1e-4,
 * where relative error = ‖a − b‖₂ / ‖b‖₂ over all elements, b being tfjs's value.
 *
 * Cases: LSTM, GRU (tfjs's reset-before GRU against `GRU({ resetAfter: false })`) and
 * SimpleRNN; single, stacked (two tfjs layers against one `numLayers: 2` module),
 * bidirectional, and both; tfjs with `recurrentActivation: 'sigmoid'`.
 *
 * Round trips are exact: tfjs files → recurrent → tfjs files (every weight bit-identical, and
 * tfjs's predictions on the re-exported model identical), and safetensors → recurrent →
 * safetensors. Bad files fail with errors that say what is wrong.
 *
 * Fixtures are generated here with tfjs (into a temporary folder) rather than committed.
 */

import test from 'ava'
import { mkdtempSync, readFileSync, writeFileSync, rmSync, unlinkSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs'

import {
  CheckpointError,
  GRU,
  KerasSequential,
  LSTM,
  Linear,
  Module,
  RNN,
  type RNNBase,
  type Tensor,
  ValueError,
  fromTfjsArtifacts,
  kerasToTorchRecurrent,
  loadTfjsModel,
  loadTorchStateDict,
  saveTfjsModel,
  saveTorchStateDict,
  tensor,
  toTfjsArtifacts,
} from '../index.js'
import { randomArray, relErr } from './helpers/numeric.js'
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js'

// ---- helpers -----------------------------------------------------------------------------------


const TMP = mkdtempSync(join(tmpdir(), 'recurrent-tfjs-'))
test.after.always(() => rmSync(TMP, { recursive: true, force: true }))

test.before(async () => {
  await tf.setBackend('cpu')
  await tf.ready()
})

type Cell = 'lstm' | 'gru' | 'rnn'

function tfjsLayer(cell: Cell, units: number, extra: Record<string, unknown> = {}): tf.layers.Layer {
  const common = { units, returnSequences: true, biasInitializer: 'randomUniform', ...extra } as const
  if (cell === 'lstm') return tf.layers.lstm({ ...common, recurrentActivation: 'sigmoid' } as never)
  if (cell === 'gru') return tf.layers.gru({ ...common, recurrentActivation: 'sigmoid' } as never)
  return tf.layers.simpleRNN(common as never)
}

/** Save handler that writes what tfjs-node's `file://` handler writes: model.json + shards. */
async function saveTfjsFiles(model: tf.LayersModel, dir: string, shards = 1): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = new Uint8Array(a.weightData as ArrayBuffer)
      const paths: string[] = []
      const per = Math.ceil(data.length / shards)
      for (let s = 0; s < shards; s++) {
        const p = shards === 1 ? 'weights.bin' : `group1-shard${s + 1}of${shards}.bin`
        writeFileSync(join(dir, p), data.subarray(s * per, Math.min(data.length, (s + 1) * per)))
        paths.push(p)
      }
      const json = {
        modelTopology: a.modelTopology,
        format: a.format,
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy,
        weightsManifest: [{ paths, weights: a.weightSpecs }],
      }
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json))
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
    }),
  )
}

/** tfjs load handler for a folder written by saveTfjsFiles or saveTfjsModel. */
function tfjsFiles(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'))
      const group = json.weightsManifest[0]
      const parts = group.paths.map((p: string) => readFileSync(join(dir, p)))
      const buf = Buffer.concat(parts)
      return {
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
        weightData: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
      }
    },
  }
}

function newDir(name: string): string {
  return mkdtempSync(join(TMP, `${name}-`))
}

// ---- forward and gradient parity ---------------------------------------------------------------

interface Case {
  cell: Cell
  layers: number
  bidirectional: boolean
}

const CASES: Case[] = []
for (const cell of ['lstm', 'gru', 'rnn'] as const) {
  for (const layers of [1, 2]) for (const bidirectional of [false, true]) CASES.push({ cell, layers, bidirectional })
}

for (const c of CASES) {
  const title = `${c.cell}${c.layers > 1 ? ` stacked×${c.layers}` : ''}${c.bidirectional ? ' bidirectional' : ''}: outputs, final states and gradients match tfjs`
  test.serial(title, async (t) => {
    const B = 3
    const T = 6
    const I = 4
    const H = 5
    const D = c.bidirectional ? 2 : 1
    const G = c.cell === 'lstm' ? 4 : c.cell === 'gru' ? 3 : 1
    const nStates = c.cell === 'lstm' ? 2 : 1
    const seed = 1000 * CASES.indexOf(c)

    // tfjs: one layer per stacked layer, each returning its sequence and states.
    const tfLayers: tf.layers.Layer[] = []
    for (let k = 0; k < c.layers; k++) {
      const inner = tfjsLayer(c.cell, H, { returnState: true })
      tfLayers.push(c.bidirectional ? tf.layers.bidirectional({ layer: inner as never, mergeMode: 'concat' }) : inner)
    }
    const xData = randomArray(B * T * I, seed + 1)
    const xTf = tf.tensor3d(xData, [B, T, I])
    const runTf = (x: tf.Tensor) => {
      let y = x
      const states: tf.Tensor[][] = [] // [layer][dir·nStates + s]
      for (const l of tfLayers) {
        const out = l.apply(y) as tf.Tensor[]
        y = out[0]!
        states.push(out.slice(1))
      }
      return { y, states }
    }
    runTf(xTf) // builds the layers

    // recurrent: one module with numLayers, weights converted from tfjs.
    const opts = { numLayers: c.layers, bidirectional: c.bidirectional, batchFirst: true }
    const mod: RNNBase = c.cell === 'lstm' ? new LSTM(I, H, opts) : c.cell === 'gru' ? new GRU(I, H, { ...opts, resetAfter: false }) : new RNN(I, H, opts)
    const sd: Record<string, Tensor> = {}
    for (let k = 0; k < c.layers; k++) {
      const w = tfLayers[k]!.getWeights().map((v) => v.dataSync() as Float32Array)
      for (let d = 0; d < D; d++) {
        const [kern, rec, bias] = w.slice(3 * d, 3 * d + 3) as [Float32Array, Float32Array, Float32Array]
        const a = kerasToTorchRecurrent(c.cell, H, kern, rec, bias)
        const sfx = `_l${k}${d ? '_reverse' : ''}`
        const inDim = k === 0 ? I : D * H
        sd[`weight_ih${sfx}`] = tensor(a.weightIh, [G * H, inDim])
        sd[`weight_hh${sfx}`] = tensor(a.weightHh, [G * H, H])
        sd[`bias_ih${sfx}`] = tensor(a.biasIh!, [G * H])
        sd[`bias_hh${sfx}`] = tensor(a.biasHh!, [G * H])
      }
    }
    mod.loadStateDict(sd)

    // Forward.
    const x = tensor(xData, [B, T, I])
    x.requiresGrad = true
    const r = mod.forward(x) as { output: Tensor; hN: Tensor; cN?: Tensor }
    const ref = runTf(xTf)
    const eOut = relErr(await r.output.data(), ref.y.dataSync())
    t.true(eOut <= 1e-5, `output relative error ${eOut}`)
    const hN = (await r.hN.data()) as Float32Array
    const cN = r.cN ? ((await r.cN.data()) as Float32Array) : null
    let worstState = 0
    for (let k = 0; k < c.layers; k++) {
      for (let d = 0; d < D; d++) {
        const row = (k * D + d) * B * H
        const st = ref.states[k]!
        worstState = Math.max(worstState, relErr(hN.subarray(row, row + B * H), st[d * nStates]!.dataSync()))
        if (cN) worstState = Math.max(worstState, relErr(cN.subarray(row, row + B * H), st[d * nStates + 1]!.dataSync()))
      }
    }
    t.true(worstState <= 1e-5, `final state relative error ${worstState}`)
    t.log(`forward: output ${eOut.toExponential(2)}, states ${worstState.toExponential(2)}`)

    // Gradients of L = Σ y ⊙ Ry + Σ hN ⊙ Rh (+ Σ cN ⊙ Rc) with random weights R.
    const ry = randomArray(B * T * D * H, seed + 2)
    const rh = randomArray(c.layers * D * B * H, seed + 3)
    const rc = randomArray(c.layers * D * B * H, seed + 4)
    const loss = r.output.mul(tensor(ry, [B, T, D * H])).sum().add(r.hN.mul(tensor(rh, [c.layers * D, B, H])).sum())
    const fullLoss = r.cN ? loss.add(r.cN.mul(tensor(rc, [c.layers * D, B, H])).sum()) : loss
    fullLoss.backward()

    const xVar = tf.variable(xTf, true, `x_${title.replace(/\W/g, '_')}`)
    const vars = [xVar, ...tfLayers.flatMap((l) => l.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val))]
    const { value, grads } = tf.variableGrads(() => {
      const o = runTf(xVar)
      let L = tf.sum(tf.mul(o.y, tf.tensor3d(ry, [B, T, D * H])))
      // states in [L·D, B, H] order: layer k, direction d
      const hs: tf.Tensor[] = []
      const cs: tf.Tensor[] = []
      for (let k = 0; k < c.layers; k++) {
        for (let d = 0; d < D; d++) {
          hs.push(o.states[k]![d * nStates]!)
          if (nStates === 2) cs.push(o.states[k]![d * nStates + 1]!)
        }
      }
      L = tf.add(L, tf.sum(tf.mul(tf.stack(hs), tf.tensor3d(rh, [c.layers * D, B, H]))))
      if (cs.length) L = tf.add(L, tf.sum(tf.mul(tf.stack(cs), tf.tensor3d(rc, [c.layers * D, B, H]))))
      return L as tf.Scalar
    }, vars)
    // L sums terms of both signs, so its own relative error is ill-conditioned (tfjs draws new
    // initial weights every run, and some draws cancel to a small L): measure the difference
    // against the sum of the terms' magnitudes, which is what float32 summation error scales with.
    const yData = await r.output.data()
    let scale = 0
    for (let k = 0; k < yData.length; k++) scale += Math.abs(yData[k]! * ry[k]!)
    for (let k = 0; k < hN.length; k++) scale += Math.abs(hN[k]! * rh[k]!)
    if (cN) for (let k = 0; k < cN.length; k++) scale += Math.abs(cN[k]! * rc[k]!)
    const ourLoss = await fullLoss.item()
    const theirLoss = value.dataSync()[0]!
    const eLoss = Math.abs(ourLoss - theirLoss) / Math.max(scale, Math.abs(theirLoss))
    t.true(eLoss <= 1e-5, `loss error ${eLoss} relative to Σ|terms| = ${scale} (ours ${ourLoss}, tfjs ${theirLoss})`)

    let worstGrad = 0
    const check = async (what: string, ours: Tensor | null, theirs: ArrayLike<number>) => {
      t.truthy(ours, `${what}: no gradient`)
      const e = relErr(await ours!.data(), theirs)
      worstGrad = Math.max(worstGrad, e)
      t.true(e <= 1e-4, `${what}: gradient relative error ${e}`)
    }
    await check('input', x.grad, grads[xVar.name]!.dataSync())
    for (let k = 0; k < c.layers; k++) {
      const tw = tfLayers[k]!.trainableWeights
      for (let d = 0; d < D; d++) {
        const [gk, gr, gb] = tw.slice(3 * d, 3 * d + 3).map((w) => grads[(w as unknown as { val: tf.Variable }).val.name]!.dataSync() as Float32Array) as [Float32Array, Float32Array, Float32Array]
        const a = kerasToTorchRecurrent(c.cell, H, gk, gr, gb)
        const lw = mod.layerWeights(k, d === 1)
        const sfx = `_l${k}${d ? '_reverse' : ''}`
        await check(`weight_ih${sfx}`, lw.wIh.grad, a.weightIh)
        await check(`weight_hh${sfx}`, lw.wHh.grad, a.weightHh)
        // Keras's single bias enters where both of PyTorch's do: each gets its gradient.
        await check(`bias_ih${sfx}`, lw.bIh!.grad, a.biasIh!)
        await check(`bias_hh${sfx}`, lw.bHh!.grad, a.biasIh!)
      }
    }
    t.log(`gradients: worst ${worstGrad.toExponential(2)}`)
    tf.dispose([xTf, xVar, value, ...Object.values(grads)])
  })
}

test.serial('SimpleRNN with relu matches tfjs', async (t) => {
  const l = tf.layers.simpleRNN({ units: 4, returnSequences: true, activation: 'relu', biasInitializer: 'randomUniform', inputShape: [5, 3] })
  const m = tf.sequential({ layers: [l] })
  const xData = randomArray(2 * 5 * 3, 77)
  let arts: tf.io.ModelArtifacts | undefined
  await m.save(tf.io.withSaveHandler(async (a) => ((arts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })))
  const ours = fromTfjsArtifacts(arts as never)
  t.is((ours.layers[0]!.module as RNN).nonlinearity, 'relu')
  const e = relErr(await ours.forward(tensor(xData, [2, 5, 3])).data(), (m.predict(tf.tensor3d(xData, [2, 5, 3])) as tf.Tensor).dataSync())
  t.true(e <= 1e-5, `relative error ${e}`)
})

// ---- files: tfjs → recurrent → tfjs ------------------------------------------------------------

function buildTfjsModel(): tf.Sequential {
  const m = tf.sequential()
  m.add(tf.layers.embedding({ inputDim: 20, outputDim: 6, inputLength: 7 }))
  m.add(tfjsLayer('lstm', 8))
  m.add(tf.layers.bidirectional({ layer: tfjsLayer('gru', 5) as never, mergeMode: 'concat' }))
  m.add(tf.layers.dropout({ rate: 0.25 }))
  m.add(tfjsLayer('rnn', 6, { returnSequences: false }))
  m.add(tf.layers.dense({ units: 4, activation: 'softmax', biasInitializer: 'randomUniform' }))
  return m
}

function tokens(B: number, T: number, vocab: number, seed: number): Int32Array {
  return Int32Array.from(randomArray(B * T, seed), (u) => Math.floor(((u + 1) / 2) * vocab) % vocab)
}

test.serial('tfjs files load into an equivalent model and round-trip bit for bit', async (t) => {
  const tfm = buildTfjsModel()
  const dir = newDir('roundtrip')
  await saveTfjsFiles(tfm, dir, 2)
  const model = await loadTfjsModel(dir)
  t.is(model.length, 6)
  t.deepEqual(
    model.layers.map((l) => l.module.constructor.name),
    ['Embedding', 'LSTM', 'GRU', 'Dropout', 'RNN', 'Linear'],
  )
  t.false((model.layers[2]!.module as GRU).resetAfter)
  t.true((model.layers[2]!.module as GRU).bidirectional)
  t.deepEqual(model.namedParameters().slice(0, 3).map(([n]) => n), ['0.weight', '1.weight_ih_l0', '1.weight_hh_l0'])

  // Same predictions (eval mode: dropout off, as in tfjs predict).
  model.eval()
  const ids = tokens(3, 7, 20, 5)
  const ours = await model.forward(tensor(ids, [3, 7], { dtype: 'int32' })).data()
  const theirs = (tfm.predict(tf.tensor2d(ids, [3, 7], 'int32')) as tf.Tensor).dataSync()
  const e = relErr(ours, theirs)
  t.true(e <= 1e-5, `prediction relative error ${e}`)

  // Export and compare every weight bit for bit, by name.
  const out = newDir('roundtrip-out')
  await saveTfjsModel(model, out)
  const j0 = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'))
  const j1 = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'))
  const specs0 = j0.weightsManifest[0].weights as Array<{ name: string; shape: number[] }>
  const specs1 = j1.weightsManifest[0].weights as Array<{ name: string; shape: number[] }>
  t.deepEqual(specs1.map((s) => s.name), specs0.map((s) => s.name))
  t.deepEqual(specs1.map((s) => s.shape), specs0.map((s) => s.shape))
  const bin0 = Buffer.concat(j0.weightsManifest[0].paths.map((p: string) => readFileSync(join(dir, p))))
  const bin1 = readFileSync(join(out, 'weights.bin'))
  t.true(bin0.equals(bin1), 'weights.bin differs from the original shards')

  // tfjs reads the export and predicts exactly as the original did.
  const back = await tf.loadLayersModel(tfjsFiles(out))
  const again = (back.predict(tf.tensor2d(ids, [3, 7], 'int32')) as tf.Tensor).dataSync()
  t.deepEqual(Array.from(again), Array.from(theirs))
})

test.serial('a model built in recurrent exports to tfjs, and tfjs agrees', async (t) => {
  const m = new KerasSequential({ name: 'built' })
    .add(new LSTM(3, 6, { batchFirst: true, numLayers: 2, seed: 1 }), { returnSequences: true })
    .add(new GRU(6, 4, { batchFirst: true, bidirectional: true, resetAfter: false, seed: 2 }), { mergeMode: 'ave' })
    .add(new Linear(4, 2, { seed: 3 }), { activation: 'tanh' })
  const out = newDir('built')
  await saveTfjsModel(m, out)
  const tfm = await tf.loadLayersModel(tfjsFiles(out))
  t.is(tfm.layers.length, 4) // the 2-layer LSTM becomes two tfjs layers
  const xData = randomArray(2 * 5 * 3, 9)
  const ours = await m.forward(tensor(xData, [2, 5, 3])).data()
  const theirs = (tfm.predict(tf.tensor3d(xData, [2, 5, 3])) as tf.Tensor).dataSync()
  const e = relErr(ours, theirs)
  t.true(e <= 1e-5, `relative error ${e}`)
  // And it loads back to the same parameters.
  const again = await loadTfjsModel(join(out, 'model.json'))
  const x = tensor(xData, [2, 5, 3])
  t.deepEqual(Array.from(await again.forward(x).data()), Array.from(ours))
})

test.serial('in-memory artifacts: fromTfjsArtifacts and toTfjsArtifacts work with tf.io', async (t) => {
  const tfm = tf.sequential({ layers: [tfjsLayer('lstm', 3, { inputShape: [4, 2], returnSequences: false })] })
  let arts: tf.io.ModelArtifacts | undefined
  await tfm.save(tf.io.withSaveHandler(async (a) => ((arts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })))
  const ours = fromTfjsArtifacts(arts as never)
  const back = await tf.loadLayersModel(tf.io.fromMemory((await toTfjsArtifacts(ours)) as never))
  const x = randomArray(2 * 4 * 2, 3)
  const a = (back.predict(tf.tensor3d(x, [2, 4, 2])) as tf.Tensor).dataSync()
  const b = (tfm.predict(tf.tensor3d(x, [2, 4, 2])) as tf.Tensor).dataSync()
  t.deepEqual(Array.from(a), Array.from(b))
})

// ---- bad files ---------------------------------------------------------------------------------

async function savedSmall(name: string): Promise<string> {
  const m = tf.sequential()
  m.add(tfjsLayer('lstm', 5, { inputShape: [4, 3] }))
  m.add(tf.layers.dense({ units: 2 }))
  const dir = newDir(name)
  await saveTfjsFiles(m, dir, 2)
  return dir
}

function editJson(dir: string, edit: (j: { modelTopology: { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } } }) => void): void {
  const f = join(dir, 'model.json')
  const j = JSON.parse(readFileSync(f, 'utf8'))
  edit(j)
  writeFileSync(f, JSON.stringify(j))
}

test.serial('bad files: unknown layer type', async (t) => {
  const dir = await savedSmall('bad-type')
  editJson(dir, (j) => {
    j.modelTopology.config.layers.splice(1, 0, { class_name: 'Conv1D', config: { name: 'conv1d_Conv1D1', filters: 2, kernel_size: [3] } })
  })
  const e = await t.throwsAsync(loadTfjsModel(dir), { instanceOf: ValueError })
  t.regex(e!.message, /unsupported layer type 'Conv1D' \(layer 'conv1d_Conv1D1'\)/)
  t.regex(e!.message, /supported: Embedding, Dense, SimpleRNN, LSTM, GRU, Bidirectional/)
})

test.serial('bad files: shapes that disagree with the topology', async (t) => {
  const dir = await savedSmall('bad-shape')
  editJson(dir, (j) => {
    j.modelTopology.config.layers[0]!.config.units = 6
  })
  const e = await t.throwsAsync(loadTfjsModel(dir), { instanceOf: CheckpointError })
  t.regex(e!.message, /weight 'lstm_LSTM\d+\/kernel' has shape \[3, 20\], expected \[3, 24\]/)
})

test.serial('bad files: a missing weight file', async (t) => {
  const dir = await savedSmall('bad-missing')
  unlinkSync(join(dir, 'group1-shard2of2.bin'))
  t.deepEqual(readdirSync(dir).sort(), ['group1-shard1of2.bin', 'model.json'])
  const e = await t.throwsAsync(loadTfjsModel(dir), { instanceOf: CheckpointError })
  t.regex(e!.message, /missing weight file 'group1-shard2of2\.bin'/)
})

test.serial('bad files: truncated weights, a weight the manifest lacks, no model.json', async (t) => {
  const dir = await savedSmall('bad-trunc')
  const shard = join(dir, 'group1-shard2of2.bin')
  writeFileSync(shard, readFileSync(shard).subarray(0, 8))
  const e1 = await t.throwsAsync(loadTfjsModel(dir), { instanceOf: CheckpointError })
  t.regex(e1!.message, /holds \d+ bytes but the manifest needs at least \d+/)

  const dir2 = await savedSmall('bad-lacks')
  editJson(dir2, (j) => {
    const m = (j as unknown as { weightsManifest: Array<{ weights: Array<{ name: string }> }> }).weightsManifest[0]!
    m.weights = m.weights.map((w) => (w.name.endsWith('/recurrent_kernel') ? { ...w, name: w.name.replace('recurrent_kernel', 'rk') } : w))
  })
  const e2 = await t.throwsAsync(loadTfjsModel(dir2), { instanceOf: CheckpointError })
  t.regex(e2!.message, /needs a weight 'lstm_LSTM\d+\/recurrent_kernel'.*but the manifest has none/)

  const e3 = await t.throwsAsync(loadTfjsModel(join(TMP, 'nowhere')), { instanceOf: CheckpointError })
  t.regex(e3!.message, /cannot read '.*nowhere\/model\.json'/)
})

test.serial('Keras 3 style: a serialised mirrored backward_layer loads; a different one is refused', async (t) => {
  const m = tf.sequential({ layers: [tf.layers.bidirectional({ layer: tfjsLayer('lstm', 3) as never, inputShape: [4, 2] } as never)] })
  const dir = newDir('backward')
  await saveTfjsFiles(m, dir)
  editJson(dir, (j) => {
    const bidi = j.modelTopology.config.layers[0]!.config
    const fwd = bidi.layer as { class_name: string; config: Record<string, unknown> }
    bidi.backward_layer = { class_name: fwd.class_name, config: { ...fwd.config, name: `backward_${String(fwd.config.name)}`, go_backwards: true } }
  })
  const ours = await loadTfjsModel(dir)
  const x = randomArray(2 * 4 * 2, 21)
  const e = relErr(await ours.forward(tensor(x, [2, 4, 2])).data(), (m.predict(tf.tensor3d(x, [2, 4, 2])) as tf.Tensor).dataSync())
  t.true(e <= 1e-5, `relative error ${e}`)
  editJson(dir, (j) => {
    const b = j.modelTopology.config.layers[0]!.config.backward_layer as { config: Record<string, unknown> }
    b.config.units = 4
  })
  const err = await t.throwsAsync(loadTfjsModel(dir), { instanceOf: ValueError })
  t.regex(err!.message, /backward_layer that differs from its forward layer/)
})

test.serial("tfjs's default hardSigmoid gets a clear error naming the fix", async (t) => {
  const m = tf.sequential({ layers: [tf.layers.gru({ units: 3, inputShape: [4, 2] })] })
  const dir = newDir('hard')
  await saveTfjsFiles(m, dir)
  const e = await t.throwsAsync(loadTfjsModel(dir), { instanceOf: ValueError })
  t.regex(e!.message, /recurrentActivation 'hardSigmoid' \(the tfjs default\)/)
  t.regex(e!.message, /recurrentActivation: 'sigmoid'/)
})

test.serial('exporting a reset-after GRU to tfjs is refused', async (t) => {
  const m = new KerasSequential().add(new GRU(2, 3, { batchFirst: true }))
  const e = await t.throwsAsync(toTfjsArtifacts(m), { instanceOf: ValueError })
  t.regex(e!.message, /reset-before only.*resetAfter: false/)
})

// ---- safetensors (PyTorch state dicts) ---------------------------------------------------------

class Tagger extends Module {
  lstm = this.registerModule('lstm', new LSTM(4, 6, { numLayers: 2, bidirectional: true, seed: 11 }))
  head = this.registerModule('head', new Linear(12, 3, { seed: 12 }))
  forward(x: Tensor): Tensor {
    return this.head.forward(this.lstm.forward(x).output)
  }
}

test.serial('safetensors → recurrent → safetensors is exact, with PyTorch names', async (t) => {
  const a = new Tagger()
  const f1 = join(TMP, 'a.safetensors')
  await saveTorchStateDict(a, f1)
  const { tensors, metadata } = await loadSafetensors(f1)
  t.is(metadata.format, 'pt')
  t.deepEqual(Object.keys(tensors).sort(), Object.keys(a.stateDict()).sort())
  t.true('lstm.weight_hh_l1_reverse' in tensors && 'head.bias' in tensors)

  const b = new Tagger()
  // Different seeds: make b differ first, then load.
  for (const p of b.parameters()) p.assign(p.mul(0.5).addScalar(0.25))
  const res = await loadTorchStateDict(b, f1)
  t.deepEqual(res, { missingKeys: [], unexpectedKeys: [] })
  const f2 = join(TMP, 'b.safetensors')
  await saveTorchStateDict(b, f2)
  t.true(readFileSync(f1).equals(readFileSync(f2)), 'the re-saved file differs')
  for (const [name, p] of a.namedParameters()) {
    const q = b.stateDict()[name]!
    t.deepEqual(new Uint8Array((await q.data()).buffer), new Uint8Array((await p.data()).buffer), name)
  }
})

test.serial('loadTorchStateDict: a state dict of another shape fails, naming the file and key', async (t) => {
  const f = join(TMP, 'other.safetensors')
  await saveSafetensors(f, { 'lstm.weight_ih_l0': tensor(randomArray(24 * 5, 1), [24, 5]) })
  const e = await t.throwsAsync(loadTorchStateDict(new Tagger(), f, { strict: false }))
  t.regex(e!.message, /other\.safetensors.*'lstm\.weight_ih_l0' expected shape \[24, 4\], got \[24, 5\]/)
  const e2 = await t.throwsAsync(loadTorchStateDict(new Tagger(), f))
  t.regex(e2!.message, /missing keys: 'lstm\.weight_hh_l0'/)
  const e3 = await t.throwsAsync(loadTorchStateDict(new Tagger(), join(TMP, 'absent.safetensors')), { instanceOf: CheckpointError })
  t.regex(e3!.message, /absent\.safetensors/)
})
