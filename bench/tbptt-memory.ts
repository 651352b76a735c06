/**
 * Peak memory of truncated-BPTT training against stream length.
 *
 * Trains the same char LSTM (RecurrentLM) with TBPTT(k1, k2) over synthetic token streams of
 * different lengths (default 1e5 and 1e7 tokens), each in its own child process so that each
 * peak is clean, and prints one table: tokens streamed, steps, time, throughput, peak RSS of the
 * process and `memory().peakBytes` (peak live tensor bytes) during training.
 *
 * The stream is a byte-level `fileStream` over a synthetic text file written beforehand (in
 * 1 MiB pieces): B rows each read their own segment with positional reads, so nothing of the
 * stream's length is held in memory. DESIGN.md's claim is that peak memory is set by k2, B and
 * H, not by the stream length: the two rows of the table should agree within ±10%.
 *
 *   node --import @oxc-node/core/register bench/tbptt-memory.ts [--tokens 1e5,1e7] [--max-steps N]
 *        [--hidden 64] [--batch 128] [--k1 64] [--k2 96]
 *
 * `--max-steps` caps each run (the table then says how many tokens were streamed).
 */

import { spawnSync } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, writeSync, rmSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Adam, RecurrentLM, fileStream, fitTBPTT, manualSeed, memory, resetPeakMemory, synchronize } from '../index.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def
}

const H = Number(arg('hidden', '64'))
const B = Number(arg('batch', '128'))
const K1 = Number(arg('k1', '64'))
const K2 = Number(arg('k2', '96'))
const MAX_STEPS = arg('max-steps', '')
const V = 128

/** Writes `n` bytes of synthetic ASCII text (words from a small list, seeded) to `path`. */
function writeSynthetic(path: string, n: number): void {
  const words = ['the', 'of', 'and', 'recurrent', 'network', 'state', 'gradient', 'time', 'a', 'is', 'to', 'in', 'stream', 'memory', 'token', 'step']
  const fd = openSync(path, 'w')
  const piece = Buffer.alloc(1 << 20)
  let s = 12345
  let written = 0
  while (written < n) {
    let k = 0
    while (k < piece.length) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0
      const w = words[(s >>> 16) % words.length]!
      const sep = (s & 31) === 0 ? '.\n' : ' '
      for (const ch of w + sep) {
        if (k >= piece.length) break
        piece[k++] = ch.charCodeAt(0)
      }
    }
    const m = Math.min(piece.length, n - written)
    writeSync(fd, piece, 0, m)
    written += m
  }
  closeSync(fd)
}

interface ChildResult {
  tokens: number
  streamed: number
  steps: number
  chunks: number
  seconds: number
  peakRssMiB: number
  rssAtStartMiB: number
  peakTensorMiB: number
  firstLoss: number
  lastLoss: number
}

async function child(path: string, tokens: number): Promise<void> {
  manualSeed(1)
  const stream = await fileStream(path, { batchSize: B, seqLen: K1 })
  const model = new RecurrentLM({ vocabSize: V, hiddenSize: H })
  const optimizer = new Adam(model.parameters(), { lr: 3e-3 })
  await synchronize()
  const rssAtStart = process.memoryUsage().rss
  resetPeakMemory()
  let first = NaN
  let streamed = 0
  let peakRss = rssAtStart
  const t0 = performance.now()
  const opts: Parameters<typeof fitTBPTT>[1] = {
    stream,
    k2: K2,
    optimizer,
    clipGradNorm: 5,
    onStep: (ev) => {
      if (ev.step === 1) first = ev.loss
      streamed += ev.count
      if (ev.step % 16 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss)
      if (ev.step % 200 === 0) process.stderr.write(`  [${tokens.toExponential(0)}] step ${ev.step}, ${streamed} tokens, loss ${ev.loss.toFixed(3)}, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(1)} MiB\n`)
    },
  }
  if (MAX_STEPS) opts.maxSteps = Number(MAX_STEPS)
  const result = await fitTBPTT(model, opts)
  await synchronize()
  const seconds = (performance.now() - t0) / 1000
  // The OS's peak (kB on Linux) covers moments the sampling missed.
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024)
  const out: ChildResult = {
    tokens,
    streamed,
    steps: result.steps,
    chunks: stream.numChunks ?? -1,
    seconds,
    peakRssMiB: peakRss / 2 ** 20,
    rssAtStartMiB: rssAtStart / 2 ** 20,
    peakTensorMiB: memory().peakBytes / 2 ** 20,
    firstLoss: first,
    lastLoss: result.lastLoss ?? NaN,
  }
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`)
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    await child(process.argv[3]!, Number(process.argv[4]))
    return
  }
  const sizes = arg('tokens', '1e5,1e7').split(',').map(Number)
  const dir = mkdtempSync(join(tmpdir(), 'recurrent-tbptt-bench-'))
  console.log(`TBPTT peak memory vs stream length — RecurrentLM(LSTM, V=${V}, H=${H}), B=${B}, k1=${K1}, k2=${K2}, Adam, byte-level fileStream`)
  console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})${MAX_STEPS ? `, capped at ${MAX_STEPS} steps` : ''}\n`)
  const rows: ChildResult[] = []
  try {
    for (const n of sizes) {
      const path = join(dir, `stream-${n}.txt`)
      writeSynthetic(path, n)
      const script = fileURLToPath(import.meta.url)
      const passArgs = ['hidden', 'batch', 'k1', 'k2', 'max-steps'].flatMap((k) => (process.argv.includes(`--${k}`) ? [`--${k}`, arg(k, '')] : []))
      const r = spawnSync(process.execPath, ['--import', '@oxc-node/core/register', script, '--child', path, String(n), ...passArgs], {
        stdio: ['ignore', 'pipe', 'inherit'],
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      })
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '))
      if (!line) throw new Error(`the child for ${n} tokens failed (status ${r.status}):\n${r.stdout}`)
      rows.push(JSON.parse(line.slice(7)) as ChildResult)
      rmSync(path)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const header = ['stream tokens', 'streamed', 'steps', 'time (s)', 'tokens/s', 'peak RSS (MiB)', 'RSS at start (MiB)', 'peak tensors (MiB)', 'loss first → last']
  const table = rows.map((r) => [
    r.tokens.toExponential(0),
    `${r.streamed} (${((100 * r.streamed) / r.tokens).toFixed(1)}%)`,
    String(r.steps),
    r.seconds.toFixed(1),
    (r.streamed / r.seconds).toFixed(0),
    r.peakRssMiB.toFixed(1),
    r.rssAtStartMiB.toFixed(1),
    r.peakTensorMiB.toFixed(2),
    `${r.firstLoss.toFixed(3)} → ${r.lastLoss.toFixed(3)}`,
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)))
  const fmt = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |'
  console.log(fmt(header))
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
  for (const row of table) console.log(fmt(row))
  if (rows.length >= 2) {
    const a = rows[0]!
    const b = rows[rows.length - 1]!
    const rss = (100 * (b.peakRssMiB - a.peakRssMiB)) / a.peakRssMiB
    const ten = (100 * (b.peakTensorMiB - a.peakTensorMiB)) / a.peakTensorMiB
    console.log(
      `\n${(b.streamed / a.streamed).toFixed(0)}× more tokens streamed: peak RSS ${rss >= 0 ? '+' : ''}${rss.toFixed(1)}%, peak tensor bytes ${ten >= 0 ? '+' : ''}${ten.toFixed(1)}%` +
        ` (${Math.abs(rss) <= 10 && Math.abs(ten) <= 10 ? 'within' : 'OUTSIDE'} ±10%)`,
    )
  }
}

await main()
