// The cost of attention relative to one decoder step, forward + backward, through the public
// API. Issue #10 asks that score, mask, softmax and context not be a chain of many small ops per
// step; this prints what the fused op costs next to one LSTM step (the recurrent layer with
// T = 1) and next to the same math composed from existing ops.
//
//   node --import @oxc-node/core/register bench/attention.ts
//
// Sizes: BENCH_ATTENTION="B,H,S" (default 32,256,30: batch, hidden = attention size = encoder
// output size, source length); BENCH_REPEATS (default 50) timed iterations after a warm-up.
// Each iteration builds the graph, runs backward and waits for the executor; the table shows
// the median time per iteration.

import { cpus } from 'node:os'
import {
  Attention,
  attention,
  eq,
  noGrad,
  randn,
  recurrentLayer,
  sequenceMask,
  synchronize,
  tensor,
  tidy,
  type Tensor,
} from '../index.js'
import { median } from './chart.js'

const [B, H, S] = (process.env.BENCH_ATTENTION ?? '32,256,30').split(',').map(Number) as [number, number, number]
const repeats = Number(process.env.BENCH_REPEATS ?? 50)
if (![B, H, S, repeats].every((v) => Number.isInteger(v) && v > 0)) {
  throw new Error(`BENCH_ATTENTION must be "B,H,S" and BENCH_REPEATS a count, got ${process.env.BENCH_ATTENTION} / ${process.env.BENCH_REPEATS}`)
}

/** Median milliseconds of `fn` (which builds a graph, runs backward and returns) after a warm-up. */
async function time(fn: () => void): Promise<number> {
  const run = async () => {
    tidy(fn)
    await synchronize()
    // Gradients would otherwise accumulate, adding an add per leaf per iteration.
    for (const t of leaves) t.grad = null
    module.zeroGrad()
  }
  await run()
  await run()
  const out: number[] = []
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now()
    await run()
    out.push(performance.now() - t0)
  }
  return median(out)
}

const leaves: Tensor[] = []
const leaf = (shape: number[], seed: number, scale = 1): Tensor => {
  const l = randn(shape, { seed }).scale(scale).detach()
  l.requiresGrad = true
  leaves.push(l)
  return l
}

// One LSTM decoder step: x [1, B, H] → h [B, H], c [B, H] (input size = hidden size).
const k = 1 / Math.sqrt(H)
const lstm = {
  wIh: leaf([4 * H, H], 1, k),
  wHh: leaf([4 * H, H], 2, k),
  bIh: leaf([4 * H], 3, k),
  bHh: leaf([4 * H], 4, k),
}
const x = leaf([1, B, H], 5)
const h0 = leaf([B, H], 6)
const c0 = leaf([B, H], 7)

// Attention over S encoder outputs of size H, with per-row lengths.
const query = leaf([B, H], 8)
const keys = leaf([S, B, H], 9)
const values = leaf([S, B, H], 10)
const v = leaf([H], 11, k)
const lengthList = Array.from({ length: B }, (_, i) => S - (i % Math.max(1, Math.floor(S / 2))))
const lengths = tensor(new Int32Array(lengthList))
const padding = eq(sequenceMask(lengths, S), 0)

const module = new Attention(H, H, { seed: 12 })
// The key projection runs once per source batch, not per step: made outside the timed graph.
const memory = noGrad(() => module.memory(values.detach(), lengths))

/** The additive attention as a chain of existing ops, for comparison. */
function composedAdditive(): { context: Tensor; weights: Tensor } {
  const e = keys
    .transpose(0, 1)
    .add(query.reshape([B, 1, H]))
    .tanh()
    .reshape([B * S, H])
    .matmul(v.reshape([H, 1]))
    .reshape([B, S])
  const weights = e.maskedFill(padding, -1e30).softmax(1)
  const context = weights.reshape([B, 1, S]).matmul(values.transpose(0, 1)).reshape([B, H])
  return { context, weights }
}

const rows: Array<[string, () => void]> = [
  [
    'LSTM step (recurrentLayer, T = 1)',
    () => {
      const r = recurrentLayer('lstm', x, h0, c0, lstm)
      r.hT.sum().add(r.cT!.sum()).backward()
    },
  ],
  [
    'attention op, additive',
    () => {
      const o = attention(query, keys, values, { score: 'additive', v, lengths })
      o.context.sum().backward()
    },
  ],
  [
    'attention op, dot',
    () => {
      const o = attention(query, keys, values, { score: 'dot', lengths })
      o.context.sum().backward()
    },
  ],
  [
    "Attention module, 'bahdanau' (+ query projection)",
    () => {
      const o = module.forward(query, memory)
      o.context.sum().backward()
    },
  ],
  [
    'additive, composed from existing ops',
    () => {
      const o = composedAdditive()
      o.context.sum().backward()
    },
  ],
]

const results: Array<[string, number]> = []
for (const [name, fn] of rows) results.push([name, await time(fn)])
const step = results[0]![1]

console.log(`attention vs one decoder step, forward + backward: B=${B}, H=${H}, S=${S}, median of ${repeats} (${cpus().length} CPUs)`)
console.log(`${'case'.padEnd(52)} ${'ms'.padStart(9)} ${'× LSTM step'.padStart(12)}`)
for (const [name, ms] of results) console.log(`${name.padEnd(52)} ${ms.toFixed(3).padStart(9)} ${(ms / step).toFixed(2).padStart(12)}`)
