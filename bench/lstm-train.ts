// LSTM training-step throughput (forward + backward) through the public API, against the
// machine's SGEMM rate measured in the same run. Prints a table; writes JSON and an SVG chart.
//
//   npm run bench:lstm       (or: node --import @oxc-node/core/register bench/lstm-train.ts)
//
// FLOPs per step: 3 × 2·G·H·(I + H) · B·T with G = 4 (forward GEMMs, backward ≈ 2× forward).

import { writeFileSync, mkdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { LSTM, randn, matmul, mse, synchronize } from '../index.js'
import { barChartSvg, median } from './chart.js'

const repeats = Number(process.env.BENCH_REPEATS ?? 7)

async function timeIt(fn: () => Promise<void>, n: number): Promise<number[]> {
  await fn() // warm-up: first-touch allocation, thread pool start
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    out.push(performance.now() - t0)
  }
  return out
}

async function sgemmGflops(): Promise<number> {
  const n = 2048
  const a = randn([n, n], { seed: 1 })
  const b = randn([n, n], { seed: 2 })
  const times = await timeIt(async () => {
    const c = matmul(a, b)
    await c.data()
    c.dispose()
  }, repeats)
  return (2 * n ** 3) / (median(times) / 1e3) / 1e9
}

interface Row {
  size: string
  B: number
  T: number
  I: number
  H: number
  ms: number
  gflops: number
  ofSgemm: number
}

async function lstmStep(B: number, T: number, I: number, H: number, sgemm: number): Promise<Row> {
  const lstm = new LSTM(I, H, { seed: 3 })
  const x = randn([T, B, I], { seed: 4 })
  const target = randn([T, B, H], { seed: 5 })
  const params = lstm.parameters()
  const times = await timeIt(async () => {
    const { output } = lstm.forward(x)
    const loss = mse(output, target)
    loss.backward()
    // Reading every gradient waits for the whole backward pass.
    await Promise.all(params.map((p) => p.grad!.data()))
    lstm.zeroGrad()
  }, repeats)
  const ms = median(times)
  const flops = 3 * 2 * 4 * H * (I + H) * B * T
  const gflops = flops / (ms / 1e3) / 1e9
  return { size: `B=${B} T=${T} I=${I} H=${H}`, B, T, I, H, ms, gflops, ofSgemm: gflops / sgemm }
}

const sgemm = await sgemmGflops()
const rows = [await lstmStep(32, 50, 64, 256, sgemm), await lstmStep(64, 100, 512, 512, sgemm)]
await synchronize()

const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(`\nLSTM training step (forward + backward), one layer, float32 — ${cpus().length} × ${cpu}, median of ${repeats}`)
console.log(`SGEMM 2048³ in the same run: ${sgemm.toFixed(1)} GFLOP/s\n`)
console.log('| size | ms / step | GFLOP/s | of SGEMM |')
console.log('| --- | ---: | ---: | ---: |')
for (const r of rows) console.log(`| ${r.size} | ${r.ms.toFixed(1)} | ${r.gflops.toFixed(1)} | ${(100 * r.ofSgemm).toFixed(0)}% |`)

mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
writeFileSync(new URL('./results/lstm-train.json', import.meta.url), JSON.stringify({ cpu, cores: cpus().length, sgemm, rows }, null, 2))
writeFileSync(
  new URL('./results/lstm-train.svg', import.meta.url),
  barChartSvg('LSTM training step throughput vs SGEMM (same run)', 'GFLOP/s', [
    { label: 'SGEMM 2048³', value: sgemm },
    ...rows.map((r) => ({ label: r.size, value: r.gflops, note: `${r.ms.toFixed(1)} ms/step` })),
  ]),
)
console.log('\nwrote bench/results/lstm-train.json and bench/results/lstm-train.svg')
