// recurrent side by side with TensorFlow.js (CPU and wasm backends, and tfjs-node when it is
// installed) and ONNX Runtime: same model, same data, same optimizer (Adam, lr 1e-3).
//
//   npm run bench          (node --import @oxc-node/core/register bench/vs-tfjs.ts)
//
// Training: one step = forward + MSE loss + backward + Adam update, timed until the loss (and
// so the update) is computed. tfjs runs `optimizer.minimize(() => mse(y, model.apply(x)))`.
// Inference: forward only (recurrent under noGrad, tfjs `predict`, onnxruntime `run` of the
// model exported by `toOnnx` from the very same weights, 2 intra-op threads). recurrent and
// onnxruntime run in alternating rounds (median over rounds of the mean per call; each round
// opens with untimed calls).
//
// FLOPs (multiply-add = 2): forward 2·G·H·(I + H)·B·T with G = 4 (LSTM), 3 (GRU), 1 (RNN);
// a training step counts 3× forward. Speed-ups are time(peer) / time(recurrent).
//
// Environment:
//   BENCH_TFJS_BUDGET_S  seconds the tfjs runs may take in all (default 480); rows that would
//                        not fit are reported as skipped, with the estimate
//   BENCH_QUICK=1        tiny sizes, for a smoke run

import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { createRequire } from 'node:module'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import ort from '../__test__/helpers/onnxruntime.js'

import { Adam, GRU, LSTM, RNN, type RNNBase, mse, noGrad, tensor, toOnnx, torchToKerasRecurrent, type Tensor } from '../index.js'
import { barChartSvg, median } from './chart.js'
import { type Cell, G, LAT, QUICK, S1, S2, type Size, WARM_MS, warmUp } from './sizes.js'
import { LoopDelayMonitor, type LoopStats } from './loop-delay.js'
// The same seeded inputs as the parity specs, so benches and tests draw identical data.
import { randomArray } from '../__test__/helpers/numeric.js'

const require = createRequire(import.meta.url)
const TFJS_BUDGET_S = Number(process.env.BENCH_TFJS_BUDGET_S ?? (QUICK ? 60 : 480))
const benchStart = performance.now()

// Silence tfjs's "install tfjs-node" banner and initializer warnings; our own lines go through `say`.
const origWarn = console.warn
const origLog = console.log
const say = (...a: unknown[]) => origLog(...a)
console.warn = () => {}
console.log = (...a: unknown[]) => {
  const s = String(a[0] ?? '')
  if (s.includes('====') || s.includes('tfjs-node') || s.includes('Hi, looks like')) return
  origLog(...a)
}

const CELL_NAME: Record<Cell, string> = { lstm: 'LSTM', gru: 'GRU (reset-before)', rnn: 'SimpleRNN (tanh)' }


const fwdFlops = (c: Cell, s: Size) => 2 * G[c] * s.H * (s.I + s.H) * s.B * s.T
const sizeLabel = (s: Size) => `B=${s.B} T=${s.T} I=${s.I} H=${s.H}`


// ---- measurements ------------------------------------------------------------------------------

interface Timing {
  ms: number
  /** Timed repetitions (after the warm-ups). */
  n: number
  warmup: number
  /** Event-loop delay during the timed repetitions, ms (training only). */
  loop?: LoopStats
  note?: string
}

/** Warm-up, then repeat until `minMs` has passed (at least `minN`, at most `maxN` times); median. */
async function timeIt(fn: () => Promise<void>, o: { warmup: number; minN: number; maxN: number; minMs: number; loop?: boolean }): Promise<Timing> {
  for (let i = 0; i < o.warmup; i++) await fn()
  const monitor = o.loop ? new LoopDelayMonitor() : null
  await monitor?.start()
  const times: number[] = []
  const t0 = performance.now()
  while (times.length < o.minN || (times.length < o.maxN && performance.now() - t0 < o.minMs)) {
    const s = performance.now()
    await fn()
    times.push(performance.now() - s)
    // Yield through the timers phase between calls (setImmediate would skip it), so the delay
    // monitors see each blocking step as one delay rather than one per run of steps.
    if (monitor) await new Promise((r) => setTimeout(r, 1))
  }
  const loop = await monitor?.stop()
  const t: Timing = { ms: median(times), n: times.length, warmup: o.warmup }
  if (loop) t.loop = loop
  return t
}

function makeRecurrent(cell: Cell, s: Size, seed: number): RNNBase {
  const o = { batchFirst: true, seed }
  if (cell === 'lstm') return new LSTM(s.I, s.H, o)
  if (cell === 'gru') return new GRU(s.I, s.H, { ...o, resetAfter: false })
  return new RNN(s.I, s.H, o)
}

/** The module's weights in Keras layout, to give tfjs the very same initial model. */
async function kerasWeights(cell: Cell, m: RNNBase): Promise<Float32Array[]> {
  const w = m.layerWeights(0)
  const arr = async (t: Tensor | null | undefined) => (t ? ((await t.data()) as Float32Array) : null)
  const k = torchToKerasRecurrent(cell, m.hiddenSize, {
    weightIh: (await arr(w.wIh))!,
    weightHh: (await arr(w.wHh))!,
    biasIh: await arr(w.bIh),
    biasHh: await arr(w.bHh),
  })
  return [k.kernel, k.recurrentKernel, k.bias!]
}

interface Data {
  x: Float32Array
  y: Float32Array
}

function dataFor(s: Size, seed: number): Data {
  return { x: randomArray(s.B * s.T * s.I, seed), y: randomArray(s.B * s.T * s.H, seed + 1) }
}

async function recurrentTrain(cell: Cell, s: Size, d: Data, big: boolean): Promise<Timing> {
  const m = makeRecurrent(cell, s, 7)
  const opt = new Adam(m.parameters(), { lr: 1e-3 })
  const x = tensor(d.x, [s.B, s.T, s.I])
  const y = tensor(d.y, [s.B, s.T, s.H])
  return timeIt(
    async () => {
      opt.zeroGrad()
      const { output } = m.forward(x)
      const loss = mse(output, y)
      loss.backward()
      await opt.step()
      await loss.item()
    },
    big ? { warmup: 1, minN: 3, maxN: 5, minMs: 3000, loop: true } : { warmup: 2, minN: 5, maxN: 30, minMs: 2000, loop: true },
  )
}

/** Rounds of the inference comparison with onnxruntime, alternating between the two. */
const INFER_ROUNDS = QUICK ? 3 : 9

/**
 * recurrent's and onnxruntime's inference on the same model, timed in alternating rounds (a
 * round of one, then a round of the other) so that drifts of the machine's speed hit both; each
 * figure is the median over rounds of the mean ms per call in a round, after the round's
 * untimed opening calls (`warmUp`).
 */
async function inferPair(cell: Cell, s: Size, d: Data): Promise<{ recurrent: Timing; ort: Timing }> {
  const m = makeRecurrent(cell, s, 7)
  const x = tensor(d.x, [s.B, s.T, s.I])
  const session = await ort.InferenceSession.create(toOnnx(m), {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  })
  const feeds = { input: new ort.Tensor('float32', d.x, [s.B, s.T, s.I]) }
  const rec = async () => {
    const out = noGrad(() => m.forward(x).output)
    await out.data()
    out.dispose()
  }
  const onnx = async () => {
    await session.run(feeds)
  }
  const round = async (fn: () => Promise<void>, n: number, warm = false) => {
    if (warm) await warmUp(fn)
    const t0 = performance.now()
    for (let i = 0; i < n; i++) await fn()
    return (performance.now() - t0) / n
  }
  try {
    // Warm-up, then calls per round for about 150 ms of the slower side.
    for (let i = 0; i < 3; i++) {
      await rec()
      await onnx()
    }
    const slower = Math.max(await round(rec, 2), await round(onnx, 2))
    const n = Math.max(2, Math.min(100, Math.round(150 / slower)))
    const r: number[] = []
    const o: number[] = []
    for (let k = 0; k < INFER_ROUNDS; k++) {
      r.push(await round(rec, n, true))
      o.push(await round(onnx, n, true))
    }
    return {
      recurrent: { ms: median(r), n: n * INFER_ROUNDS, warmup: 5 },
      ort: { ms: median(o), n: n * INFER_ROUNDS, warmup: 5 },
    }
  } finally {
    await session.release()
    x.dispose()
  }
}

// ---- tfjs --------------------------------------------------------------------------------------

function tfRemainingS(): number {
  return TFJS_BUDGET_S - tfSpentMs / 1e3
}
let tfSpentMs = 0

async function tfModel(cell: Cell, s: Size, weights: Float32Array[]): Promise<tf.Sequential> {
  const common = {
    units: s.H,
    returnSequences: true,
    inputShape: [s.T, s.I],
    // Zeros only to skip tfjs's slow orthogonal initializer: the weights are set just below.
    kernelInitializer: 'zeros',
    recurrentInitializer: 'zeros',
  }
  const layer =
    cell === 'lstm'
      ? tf.layers.lstm({ ...common, recurrentActivation: 'sigmoid' } as never)
      : cell === 'gru'
        ? tf.layers.gru({ ...common, recurrentActivation: 'sigmoid' } as never)
        : tf.layers.simpleRNN(common as never)
  const model = tf.sequential({ layers: [layer] })
  const GH = G[cell] * s.H
  layer.setWeights([tf.tensor2d(weights[0]!, [s.I, GH]), tf.tensor2d(weights[1]!, [s.H, GH]), tf.tensor1d(weights[2]!)])
  return model
}

/**
 * tfjs training steps on `backend`, within the remaining budget: `steps` timed after `warmup`,
 * fewer if they would not fit (at least one), none (skipped) if even one would not.
 */
async function tfTrain(backend: string, cell: Cell, s: Size, d: Data, weights: Float32Array[], plan: { warmup: number; steps: number; estMs: number | null }): Promise<Timing | string> {
  await tf.setBackend(backend)
  const t0 = performance.now()
  try {
    if (plan.estMs !== null && plan.estMs / 1e3 > tfRemainingS()) {
      return `skipped: ~${(plan.estMs / 1e3).toFixed(0)} s/step (estimated from the ${sizeLabel(S1)} rate) exceeds the remaining tfjs budget of ${Math.max(0, tfRemainingS()).toFixed(0)} s`
    }
    const model = await tfModel(cell, s, weights)
    const x = tf.tensor3d(d.x, [s.B, s.T, s.I])
    const y = tf.tensor3d(d.y, [s.B, s.T, s.H])
    const opt = tf.train.adam(1e-3)
    const step = async () => {
      const l = opt.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor) as tf.Scalar, true)!
      await l.data()
      l.dispose()
    }
    let warmup = plan.warmup
    let first = 0
    if (warmup > 0) {
      const a = performance.now()
      await step()
      first = performance.now() - a
      warmup = 1
    }
    // How many timed steps fit the budget, judged by the warm-up (or the estimate).
    const per = first || plan.estMs || 0
    const fit = per > 0 ? Math.floor((tfRemainingS() * 1e3 - (performance.now() - t0)) / per) : plan.steps
    const steps = Math.max(1, Math.min(plan.steps, fit))
    const t = await timeIt(step, { warmup: 0, minN: steps, maxN: steps, minMs: 0, loop: true })
    t.warmup = warmup
    tf.dispose([x, y])
    model.dispose()
    opt.dispose()
    return t
  } catch (e) {
    return `failed: ${(e as Error).message.split('\n')[0]}`
  } finally {
    tfSpentMs += performance.now() - t0
  }
}

async function tfInfer(backend: string, cell: Cell, s: Size, d: Data, weights: Float32Array[], reps: number): Promise<Timing | string> {
  await tf.setBackend(backend)
  const t0 = performance.now()
  try {
    const model = await tfModel(cell, s, weights)
    const x = tf.tensor3d(d.x, [s.B, s.T, s.I])
    const t = await timeIt(
      async () => {
        const p = model.predict(x) as tf.Tensor
        await p.data()
        p.dispose()
      },
      { warmup: 1, minN: reps, maxN: reps * 4, minMs: 1000 },
    )
    tf.dispose([x])
    model.dispose()
    return t
  } catch (e) {
    return `failed: ${(e as Error).message.split('\n')[0]}`
  } finally {
    tfSpentMs += performance.now() - t0
  }
}

// ---- optional peers ----------------------------------------------------------------------------

async function tfjsNodeStatus(): Promise<string | null> {
  const name = '@tensorflow/tfjs-node'
  try {
    require.resolve(name)
  } catch {
    return null
  }
  try {
    await import(name)
    return tf.findBackend('tensorflow') ? 'tensorflow' : null
  } catch {
    return null
  }
}

async function cudaStatus(): Promise<{ available: boolean; line: string }> {
  // Tensor.to(device) is not in the TypeScript API yet; probe the native handle directly.
  const probe = tensor([1]) as unknown as { _native: { to?: (d: string) => unknown } }
  const to = probe._native.to
  if (typeof to !== 'function') return { available: false, line: 'cuda: not available (this build has no device API)' }
  try {
    to.call(probe._native, 'cuda')
    return { available: true, line: 'cuda: available' }
  } catch (e) {
    const msg = ((e as Error).message.split('\n')[0] ?? '').replace(/^\[[A-Za-z]+\] /, '').replace(/^[A-Za-z_.]+: /, '')
    return { available: false, line: `cuda: not available (${msg})` }
  }
}

// ---- run ---------------------------------------------------------------------------------------

type Cellish = Timing | string | undefined
interface Row {
  kind: 'train' | 'infer'
  cell: Cell
  size: Size
  flops: number
  recurrent: Timing
  cuda?: Cellish
  tfjsCpu?: Cellish
  tfjsWasm?: Cellish
  tfjsNode?: Cellish
  ort?: Cellish
}

const cpu = cpus()[0]?.model ?? 'unknown CPU'
const tfjsVersion = (tf.version as Record<string, string>)['tfjs-core'] ?? '?'
const ortVersion = (ort.env as { versions?: Record<string, string> }).versions?.common ?? '?'
const nodeBackend = await tfjsNodeStatus()
const cuda = await cudaStatus()
await tf.setBackend('wasm')
await tf.ready()
const wasmFlags = `SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'on' : 'off'}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') ? 'on' : 'off'}`

say(`recurrent vs TensorFlow.js ${tfjsVersion} and onnxruntime-node ${ortVersion} — ${cpus().length} × ${cpu}, Node ${process.version}`)
say(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
say(`tfjs backends: cpu, wasm (${wasmFlags})`)
say(nodeBackend ? 'tfjs-node: installed (backend "tensorflow")' : 'tfjs-node: not installed (its install script downloads libtensorflow from outside the npm registry) — column left out')
say(cuda.line)
say(`tfjs time budget: ${TFJS_BUDGET_S} s${QUICK ? ' (BENCH_QUICK: tiny sizes)' : ''}\n`)

const rows: Row[] = []
const trainCases: Array<[Cell, Size]> = [
  ['lstm', S1],
  ['gru', S1],
  ['rnn', S1],
  ['lstm', S2],
]
const inferCases: Array<[Cell, Size]> = [
  ['lstm', LAT],
  ['lstm', S1],
  ['gru', S1],
  ['rnn', S1],
  ['lstm', S2],
]

// 1. recurrent and onnxruntime (fast), so their numbers are in even if the tfjs budget runs out.
for (const [cell, size] of trainCases) {
  const d = dataFor(size, 11)
  const r = await recurrentTrain(cell, size, d, size === S2)
  const row: Row = { kind: 'train', cell, size, flops: 3 * fwdFlops(cell, size), recurrent: r }
  // Modules cannot be moved to a device from TypeScript yet (no Module.to / Tensor.to).
  if (cuda.available) row.cuda = 'not measured: no Module.to(device) in the TypeScript API yet'
  rows.push(row)
  say(`train ${CELL_NAME[cell]} ${sizeLabel(size)}: recurrent ${r.ms.toFixed(1)} ms`)
}
for (const [cell, size] of inferCases) {
  const d = dataFor(size, 13)
  const { recurrent: r, ort: o } = await inferPair(cell, size, d)
  rows.push({ kind: 'infer', cell, size, flops: fwdFlops(cell, size), recurrent: r, ort: o })
  say(`infer ${CELL_NAME[cell]} ${sizeLabel(size)}: recurrent ${r.ms.toFixed(2)} ms, onnxruntime ${o.ms.toFixed(2)} ms`)
}

// 2. tfjs, cheapest first; the B=64 H=512 training row last, with a step count that fits.
const tfBackends: Array<[keyof Row, string]> = [
  ['tfjsWasm', 'wasm'],
  ['tfjsCpu', 'cpu'],
]
if (nodeBackend) tfBackends.unshift(['tfjsNode', nodeBackend])
const rateAtS1 = new Map<string, number>() // backend → ms per training GFLOP at S1 (LSTM)
for (const row of rows.filter((r) => r.kind === 'infer' && (r.size === LAT || (r.size === S1 && r.cell === 'lstm')))) {
  const d = dataFor(row.size, 13)
  const w = await kerasWeights(row.cell, makeRecurrent(row.cell, row.size, 7))
  for (const [key, backend] of tfBackends) {
    const res = await tfInfer(backend, row.cell, row.size, d, w, row.size === LAT ? 5 : 2)
    ;(row as unknown as Record<string, Cellish>)[key] = res
    say(`infer ${CELL_NAME[row.cell]} ${sizeLabel(row.size)}: tfjs-${backend} ${typeof res === 'string' ? res : `${res.ms.toFixed(1)} ms`}`)
  }
}
for (const row of rows.filter((r) => r.kind === 'train')) {
  const d = dataFor(row.size, 11)
  const w = await kerasWeights(row.cell, makeRecurrent(row.cell, row.size, 7))
  // The big row: tfjs cpu first (the slowest, and the one most worth a number), then wasm.
  const order = row.size === S2 ? [...tfBackends].reverse() : tfBackends
  for (const [key, backend] of order) {
    const big = row.size === S2
    const rate = rateAtS1.get(backend)
    // tfjs cpu takes seconds per step: no warm-up there (its first step costs about the same).
    const plan = big
      ? { warmup: 0, steps: 1, estMs: rate !== undefined ? (rate * row.flops) / 1e9 : null }
      : backend === 'cpu'
        ? { warmup: 0, steps: 2, estMs: null }
        : { warmup: 1, steps: 3, estMs: null }
    const res = await tfTrain(backend, row.cell, row.size, d, w, plan)
    ;(row as unknown as Record<string, Cellish>)[key] = res
    if (typeof res !== 'string' && row.cell === 'lstm' && !big) rateAtS1.set(backend, res.ms / (row.flops / 1e9))
    say(`train ${CELL_NAME[row.cell]} ${sizeLabel(row.size)}: tfjs-${backend} ${typeof res === 'string' ? res : `${res.ms.toFixed(0)} ms (${res.n} timed step${res.n > 1 ? 's' : ''})`}`)
  }
}

// ---- report ------------------------------------------------------------------------------------

const gf = (flops: number, ms: number) => flops / (ms / 1e3) / 1e9
const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2))
function cellText(c: Cellish, flops: number, withSteps = false): string {
  if (c === undefined) return '—'
  if (typeof c === 'string') return c.startsWith('skipped') ? 'skipped¹' : c
  const steps = withSteps ? ` [${c.warmup ? `${c.warmup}+` : ''}${c.n}]` : ''
  return `${fmtMs(c.ms)} ms (${gf(flops, c.ms).toFixed(gf(flops, c.ms) >= 10 ? 0 : 2)})${steps}`
}
const speedup = (c: Cellish, r: Timing) => (c === undefined || typeof c === 'string' ? '—' : `${(c.ms / r.ms).toFixed(c.ms / r.ms >= 10 ? 0 : 1)}×`)

const lines: string[] = []
const out = (s = '') => lines.push(s)
out(`# recurrent vs TensorFlow.js and ONNX Runtime`)
out()
out(`${cpus().length} × ${cpu}, Node ${process.version}; tfjs ${tfjsVersion} (cpu; wasm with ${wasmFlags}); onnxruntime-node ${ortVersion} (CPU, intraOpNumThreads 2). Load average at start ${loadavg()[0]!.toFixed(2)}.`)
out(nodeBackend ? 'tfjs-node: installed.' : 'tfjs-node: not installed (its install script downloads libtensorflow from outside the npm registry).')
out(`${cuda.line}.`)
out()
out(`Cells: median ms per call, with GFLOP/s in parentheses (multiply-add = 2; forward 2·G·H·(I+H)·B·T, a training step 3× that). Inference against onnxruntime: ${INFER_ROUNDS} rounds alternating between the two, the median over rounds of each round's mean; each round opens with ${WARM_MS} ms of untimed calls of its side, so that neither side pays for the other's threads still spinning (onnxruntime's spin ~40 ms after its last call) or its own waking up.`)
out('Speed-up = peer time ÷ recurrent time. [w+n]: warm-up and timed steps for tfjs rows. Same initial weights, data and optimizer (Adam, lr 1e-3) everywhere; tfjs GRU is reset-before, so recurrent runs GRU({ resetAfter: false }); tfjs LSTM/GRU use recurrentActivation sigmoid.')
out()
out('## Training step (forward + backward + Adam)')
out()
const tfCols = tfBackends.map(([k, b]) => [k, b === 'tensorflow' ? 'tfjs-node' : `tfjs-${b}`] as const)
out(`| model | size | recurrent | ${cuda.available ? 'recurrent cuda | ' : ''}${tfCols.map(([, n]) => n).join(' | ')} | ${tfCols.map(([, n]) => `× vs ${n}`).join(' | ')} |`)
out(`| --- | --- | ---: | ${cuda.available ? '---: | ' : ''}${tfCols.map(() => '---:').join(' | ')} | ${tfCols.map(() => '---:').join(' | ')} |`)
for (const r of rows.filter((r) => r.kind === 'train')) {
  const rec = r as unknown as Record<string, Cellish>
  out(
    `| ${CELL_NAME[r.cell]} | ${sizeLabel(r.size)} | ${cellText(r.recurrent, r.flops)} | ${cuda.available ? `${cellText(r.cuda, r.flops)} | ` : ''}${tfCols.map(([k]) => cellText(rec[k], r.flops, true)).join(' | ')} | ${tfCols.map(([k]) => speedup(rec[k], r.recurrent)).join(' | ')} |`,
  )
}
out()
out('## Inference (forward only)')
out()
out(`| model | size | recurrent | onnxruntime | recurrent ÷ onnxruntime time | ${tfCols.map(([, n]) => n).join(' | ')} | ${tfCols.map(([, n]) => `× vs ${n}`).join(' | ')} |`)
out(`| --- | --- | ---: | ---: | ---: | ${tfCols.map(() => '---:').join(' | ')} | ${tfCols.map(() => '---:').join(' | ')} |`)
for (const r of rows.filter((r) => r.kind === 'infer')) {
  const rec = r as unknown as Record<string, Cellish>
  const o = r.ort as Timing
  out(
    `| ${CELL_NAME[r.cell]} | ${sizeLabel(r.size)} | ${cellText(r.recurrent, r.flops)} | ${cellText(o, r.flops)} | ${(r.recurrent.ms / o.ms).toFixed(2)} | ${tfCols.map(([k]) => cellText(rec[k], r.flops)).join(' | ')} | ${tfCols.map(([k]) => speedup(rec[k], r.recurrent)).join(' | ')} |`,
  )
}
out()
out('## Event-loop delay while training (ms)')
out()
out('p99 and max of perf_hooks.monitorEventLoopDelay (resolution 1 ms) over the timed steps; "time-weighted p99" counts the samples a blocked loop could not take (see bench/loop-delay.ts), i.e. the wait of a request arriving at a random moment. A library that computes on the JS thread blocks the loop for its whole step.')
out()
out('| model | size | library | p99 | max | time-weighted p99 |')
out('| --- | --- | --- | ---: | ---: | ---: |')
for (const r of rows.filter((r) => r.kind === 'train')) {
  const rec = r as unknown as Record<string, Cellish>
  const f = (v: number) => v.toFixed(v >= 100 ? 0 : 1)
  for (const [name, c] of [['recurrent', r.recurrent], ...tfCols.map(([k, n]) => [n, rec[k]])] as Array<[string, Cellish]>) {
    if (c === undefined || typeof c === 'string' || c.loop === undefined) continue
    out(`| ${CELL_NAME[r.cell]} | ${sizeLabel(r.size)} | ${name} | ${f(c.loop.p99)} | ${f(c.loop.max)} | ${f(c.loop.p99Weighted)} |`)
  }
}
const notes = rows.flatMap((r) =>
  tfCols.flatMap(([k, n]) => {
    const c = (r as unknown as Record<string, Cellish>)[k]
    return typeof c === 'string' ? [`${n}, ${r.kind} ${CELL_NAME[r.cell]} ${sizeLabel(r.size)}: ${c}`] : []
  }),
)
if (notes.length) {
  out()
  for (const n of notes) out(`¹ ${n}`)
}
const totalS = (performance.now() - benchStart) / 1e3
out()
out(`Total bench time ${totalS.toFixed(0)} s (tfjs ${(tfSpentMs / 1e3).toFixed(0)} s of a ${TFJS_BUDGET_S} s budget).`)

const md = lines.join('\n') + '\n'
say('\n' + md)

const bars = rows.flatMap((r) => {
  const tag = `${r.kind === 'train' ? 'train' : 'infer'} ${r.cell.toUpperCase()} B${r.size.B} H${r.size.H}`
  const entries: Array<[string, Cellish]> = [['recurrent', r.recurrent], ['onnxruntime', r.ort], ...tfCols.map(([k, n]) => [n, (r as unknown as Record<string, Cellish>)[k]] as [string, Cellish])]
  return entries
    .filter(([, c]) => c !== undefined && typeof c !== 'string')
    .map(([name, c]) => ({ label: `${tag} · ${name}`, value: gf(r.flops, (c as Timing).ms), note: `${fmtMs((c as Timing).ms)} ms` }))
})
if (!QUICK) {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/vs-tfjs.md', import.meta.url), md)
  writeFileSync(new URL('./results/vs-tfjs.svg', import.meta.url), barChartSvg(`recurrent vs tfjs and onnxruntime — ${cpus().length} × ${cpu}`, 'GFLOP/s', bars))
  writeFileSync(new URL('./results/vs-tfjs.json', import.meta.url), JSON.stringify({ cpu, cores: cpus().length, tfjsVersion, ortVersion, tfjsNode: nodeBackend, cuda: cuda.line, rows }, null, 2))
  say('wrote bench/results/vs-tfjs.md, bench/results/vs-tfjs.svg and bench/results/vs-tfjs.json')
}
console.warn = origWarn
