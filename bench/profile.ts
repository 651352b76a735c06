// A steady loop of one recurrent case for a profiler to sample (perf), with its time per call:
// the same model, data and calls as bench/vs-torch.ts, recurrent only, nothing else in the process.
//
//   npm run bench:profile -- [train|infer] [lstm|gru|rnn] [calls]     (defaults: train lstm 200)
//   perf record -o p.data node --import @oxc-node/core/register bench/profile.ts infer lstm 600
//   perf report -i p.data --no-children --sort symbol
//
// The size is S1 (B=32 T=50 I=64 H=256, batch-first); PROFILE_SIZE=S2 or LAT picks the others.
// The release build has no frame pointers, so a symbol's callers need `perf record --call-graph
// dwarf` (with fewer calls: its samples are large).
// bench/results/cpu-profile.md holds the last breakdown read this way.

import { median } from './chart.js'
import { recurrentCase } from './recurrent-case.js'
import { type Cell, LAT, S1, S2, type Size } from './sizes.js'

const [modeArg = 'train', cellArg = 'lstm', callsArg = '200'] = process.argv.slice(2)
if (modeArg !== 'train' && modeArg !== 'infer') throw new Error(`bench/profile: mode must be train or infer, got '${modeArg}'`)
if (cellArg !== 'lstm' && cellArg !== 'gru' && cellArg !== 'rnn') {
  throw new Error(`bench/profile: cell must be lstm, gru or rnn, got '${cellArg}'`)
}
const calls = Number(callsArg)
if (!Number.isInteger(calls) || calls < 1) throw new Error(`bench/profile: calls must be a positive integer, got '${callsArg}'`)
const sizes: Record<string, Size> = { S1, S2, LAT }
const sizeName = process.env.PROFILE_SIZE ?? 'S1'
const size = sizes[sizeName]
if (!size) throw new Error(`bench/profile: PROFILE_SIZE must be S1, S2 or LAT, got '${sizeName}'`)
// The rayon pool starts lazily at the first tensor, so this still takes effect here.
process.env.RAYON_NUM_THREADS ??= '2'

const cell: Cell = cellArg
const { B, T, I, H } = size
const { call } = recurrentCase({ kind: modeArg, cell, size, layers: 1, bidirectional: false })

for (let k = 0; k < 10; k++) await call()
// Rounds of a tenth of the calls each; the median of their means is the figure.
const perRound = Math.max(1, Math.round(calls / 10))
const means: number[] = []
for (let done = 0; done < calls; done += perRound) {
  const t0 = performance.now()
  for (let k = 0; k < perRound; k++) await call()
  means.push((performance.now() - t0) / perRound)
}
console.log(`${modeArg} ${cell} B=${B} T=${T} I=${I} H=${H}: median ${median(means).toFixed(3)} ms per call over ${means.length} rounds of ${perRound}`)
