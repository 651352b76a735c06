// recurrent side by side with PyTorch on the CPU: same weights, same data, same computation
// (checked once per case), rounds alternating between the two, medians over rounds.
//
//   npm run bench:torch      (node --import @oxc-node/core/register bench/vs-torch.ts)
//
// PyTorch runs in a long-lived Python child (bench/torch_reference.py) that answers JSON lines
// on stdin/stdout. It comes from PyPI into a virtual environment the bench makes on first use,
// .tmp/torch-venv (git-ignored): `python3 -m venv .tmp/torch-venv` and `pip install torch numpy`.
// torch is never a dependency of the package. Without python3, venv or pip, or when the install
// fails, the bench says why and exits 0.
//
// A training call is forward + MSE + backward + Adam (lr 1e-3) and ends when the loss is read
// (a round ends with `await synchronize()`, so the last update is inside it); PyTorch's is
// zero_grad, forward, mse_loss, backward, step, loss.item(). An inference call is the forward
// pass under noGrad / torch.no_grad(), finished (`await synchronize()`). Both sides run float32
// on `BENCH_THREADS` threads (default 2): torch.set_num_threads, and recurrent's rayon pool
// through RAYON_NUM_THREADS (unless already set).
//
// PyTorch's CPU threads are OpenMP threads that spin-wait between parallel regions (its default
// OMP_WAIT_POLICY). On a machine whose cores are busy with other work, that spinning competes
// with the other processes and PyTorch's times can grow by orders of magnitude; measure on a
// quiet machine. OMP_WAIT_POLICY and the other OMP_/KMP_/MKL_ variables set in the environment
// reach the Python process and are printed with the results.
//
// FLOPs (multiply-add = 2): forward Σ over layers and directions of 2·G·H·(I_l + H)·B·T, with
// G = 4 (LSTM), 3 (GRU), 1 (RNN) and I_l = I, then D·H; a training step counts 3× forward.
// Ratio = recurrent time ÷ PyTorch time (> 1: recurrent is slower).
//
// Environment:
//   BENCH_QUICK=1     tiny sizes and 3 rounds, for a smoke run (writes no result files)
//   BENCH_ROUNDS      timed rounds per case (default 7)
//   BENCH_CASES       comma-separated case ids, or "train" / "infer" (default: all; the ids
//                     are listed by BENCH_CASES=help)
//   BENCH_EXTRA       cases at other sizes, `kind-cell:B,T,I,H[,layers[,bi]]` separated by
//                     spaces, e.g. "infer-lstm:16,100,128,128 train-gru:8,50,256,512,2,bi"; set
//                     alone it runs only these (with BENCH_CASES, those too)
//   BENCH_THREADS     threads on each side (default 2)
//   BENCH_WRITE       1/0: write bench/results/vs-torch.{md,json,svg} (default: only for a full,
//                     non-quick run, so that a partial run does not overwrite the full results)

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { mse, noGrad, saveSafetensors, synchronize, type Tensor } from '../index.js'
import { barChartSvg, median } from './chart.js'
import { type Cell, G, LAT, QUICK, S1, S2, type Size, WARM_MS, warmUp } from './sizes.js'
import { LoopDelayMonitor, type LoopStats } from './loop-delay.js'
import { type RecurrentCase, disposeOutputs, recurrentCase } from './recurrent-case.js'

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 3 : 7)))
/** Rounds of recurrent training calls under the event-loop probe (untimed, after the timed ones). */
const LOOP_ROUNDS = QUICK ? 2 : 3
const THREADS = Math.max(1, Number(process.env.BENCH_THREADS ?? 2))
// The rayon pool starts lazily at the first tensor, so this still takes effect here.
process.env.RAYON_NUM_THREADS ??= String(THREADS)
/** Time one side aims to spend per round; the number of calls per round follows from it. */
const ROUND_MS = QUICK ? 30 : 400
const MAX_REL_ERR = 1e-4

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VENV = join(ROOT, '.tmp', 'torch-venv')
const VENV_PY = join(VENV, 'bin', 'python')
const WORK = join(ROOT, '.tmp', 'vs-torch')
const SCRIPT = fileURLToPath(new URL('./torch_reference.py', import.meta.url))
const say = (...a: unknown[]) => console.log(...a)

// ---- cases -------------------------------------------------------------------------------------

interface Case {
  id: string
  kind: 'train' | 'infer'
  cell: Cell
  size: Size
  layers: number
  bidirectional: boolean
}
const CELL_NAME: Record<Cell, string> = { lstm: 'LSTM', gru: 'GRU', rnn: 'RNN tanh' }


const one = (id: string, kind: Case['kind'], cell: Cell, size: Size): Case => ({ id, kind, cell, size, layers: 1, bidirectional: false })
const ALL_CASES: Case[] = [
  one('train-lstm-32', 'train', 'lstm', S1),
  one('train-gru-32', 'train', 'gru', S1),
  one('train-rnn-32', 'train', 'rnn', S1),
  one('train-lstm-64', 'train', 'lstm', S2),
  { id: 'train-bilstm2-32', kind: 'train', cell: 'lstm', size: S1, layers: 2, bidirectional: true },
  one('infer-lstm-1', 'infer', 'lstm', LAT),
  one('infer-lstm-32', 'infer', 'lstm', S1),
  one('infer-gru-32', 'infer', 'gru', S1),
  one('infer-rnn-32', 'infer', 'rnn', S1),
  one('infer-lstm-64', 'infer', 'lstm', S2),
  { id: 'infer-bilstm2-32', kind: 'infer', cell: 'lstm', size: S1, layers: 2, bidirectional: true },
]

function fwdFlops(c: Case): number {
  const D = c.bidirectional ? 2 : 1
  const { B, T, I, H } = c.size
  let f = 0
  for (let l = 0; l < c.layers; l++) f += D * 2 * G[c.cell] * H * ((l === 0 ? I : D * H) + H) * B * T
  return f
}
const flops = (c: Case) => (c.kind === 'train' ? 3 : 1) * fwdFlops(c)
const modelLabel = (c: Case) => (c.layers > 1 || c.bidirectional ? `${c.layers}-layer ${c.bidirectional ? 'bi' : ''}${CELL_NAME[c.cell]}` : CELL_NAME[c.cell])
const sizeLabel = (s: Size) => `B=${s.B} T=${s.T} I=${s.I} H=${s.H}`

/** The cases of BENCH_EXTRA; a malformed entry stops the bench with the form it expects. */
function extraCases(): Case[] {
  const spec = process.env.BENCH_EXTRA?.trim()
  if (!spec) return []
  return spec.split(/\s+/).map((entry) => {
    const m = /^(train|infer)-(lstm|gru|rnn):(\d+),(\d+),(\d+),(\d+)(?:,(\d+))?(?:,(bi))?$/.exec(entry)
    if (!m) {
      console.error(`BENCH_EXTRA: expected kind-cell:B,T,I,H[,layers[,bi]] (kind train|infer, cell lstm|gru|rnn), got '${entry}'`)
      process.exit(2)
    }
    const [B, T, I, H] = [m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number]
    const layers = Number(m[7] ?? 1)
    const bidirectional = m[8] === 'bi'
    const tail = `${layers > 1 ? `-l${layers}` : ''}${bidirectional ? '-bi' : ''}`
    return { id: `${m[1]}-${m[2]}-b${B}-t${T}-i${I}-h${H}${tail}`, kind: m[1] as Case['kind'], cell: m[2] as Cell, size: { B, T, I, H }, layers, bidirectional }
  })
}

function selectCases(): Case[] {
  const spec = process.env.BENCH_CASES?.trim()
  const extra = extraCases()
  if (!spec) return extra.length ? extra : ALL_CASES
  return [...pickCases(spec), ...extra]
}

function pickCases(spec: string): Case[] {
  const wanted = spec.split(',').map((s) => s.trim()).filter(Boolean)
  const unknown = wanted.filter((w) => !ALL_CASES.some((c) => c.id === w || c.id.startsWith(`${w}-`)))
  if (unknown.length || wanted.includes('help')) {
    const list = ALL_CASES.map((c) => `  ${c.id.padEnd(18)} ${c.kind} ${modelLabel(c)} ${sizeLabel(c.size)}`).join('\n')
    const head = unknown.length && !wanted.includes('help') ? `unknown BENCH_CASES entr${unknown.length > 1 ? 'ies' : 'y'}: ${unknown.join(', ')}\n` : ''
    console.error(`${head}cases (or "train" / "infer" for a whole group):\n${list}`)
    process.exit(wanted.includes('help') ? 0 : 2)
  }
  return ALL_CASES.filter((c) => wanted.some((w) => c.id === w || c.id.startsWith(`${w}-`)))
}

// ---- the PyTorch side --------------------------------------------------------------------------

/** Says why the bench cannot run PyTorch and stops cleanly: this is a skip, not a failure. */
function skip(reason: string): never {
  say(`bench:torch skipped: ${reason}`)
  process.exit(0)
}

const hasTorch = (py: string) => spawnSync(py, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0

/** The venv's python with torch and numpy importable, making the venv and installing them first if needed. */
function ensureVenv(): string {
  if (existsSync(VENV_PY) && hasTorch(VENV_PY)) return VENV_PY
  if (!existsSync(VENV_PY)) {
    const probe = spawnSync('python3', ['--version'], { encoding: 'utf8' })
    if (probe.error || probe.status !== 0) skip('python3 is not available (it is needed to run PyTorch in .tmp/torch-venv)')
    say(`Creating a Python virtual environment for PyTorch in .tmp/torch-venv (${probe.stdout.trim()}); torch is a bench-only peer, not a dependency of recurrent.`)
    const v = spawnSync('python3', ['-m', 'venv', VENV], { stdio: 'inherit' })
    if (v.error || v.status !== 0 || !existsSync(VENV_PY)) {
      rmSync(VENV, { recursive: true, force: true })
      skip('`python3 -m venv .tmp/torch-venv` failed (on Debian/Ubuntu the venv module is the python3-venv package)')
    }
  }
  say('Installing torch and numpy from PyPI into .tmp/torch-venv (pip install torch numpy: a few minutes, and about 5 GB on Linux, where the PyPI torch wheel brings CUDA libraries) ...')
  const pip = spawnSync(VENV_PY, ['-m', 'pip', 'install', '--disable-pip-version-check', 'torch', 'numpy'], { stdio: 'inherit' })
  if (pip.error || pip.status !== 0) {
    skip(`\`pip install torch numpy\` into .tmp/torch-venv failed (${pip.error ? pip.error.message : `exit code ${pip.status}`}); the next run tries again, or delete .tmp/torch-venv to start over`)
  }
  if (!hasTorch(VENV_PY)) skip('torch was installed into .tmp/torch-venv but does not import')
  return VENV_PY
}

interface TorchInfo {
  torch: string
  numpy: string
  python: string
  threads: number
  cpuCapability: string
  mkldnn: boolean
}
/** Relative errors of the check: output always; loss and grads for training. */
type CheckErrs = { output: number; loss?: number; grads?: number }
const worstErr = (c: CheckErrs) => Math.max(c.output, c.loss ?? 0, c.grads ?? 0)

/** The Python child: one JSON command per line in, one JSON answer per line out, in order. */
class TorchProcess {
  readonly #child: ChildProcessWithoutNullStreams
  readonly #waiting: Array<{ resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }> = []
  #exited: Error | null = null

  constructor(python: string) {
    const env = { ...process.env, OMP_NUM_THREADS: String(THREADS), MKL_NUM_THREADS: String(THREADS), PYTHONUNBUFFERED: '1' }
    this.#child = spawn(python, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env })
    this.#child.stderr.on('data', (d: Buffer) => process.stderr.write(d))
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      const w = this.#waiting.shift()
      if (!w) return
      try {
        const v = JSON.parse(line) as Record<string, unknown>
        if (typeof v.error === 'string') w.reject(new Error(`PyTorch side: ${v.error}${typeof v.trace === 'string' ? `\n${v.trace}` : ''}`))
        else w.resolve(v)
      } catch {
        w.reject(new Error(`PyTorch side printed a line that is not JSON: ${line.slice(0, 200)}`))
      }
    })
    const fail = (e: Error) => {
      this.#exited = e
      for (const w of this.#waiting.splice(0)) w.reject(e)
    }
    this.#child.on('error', (e) => fail(new Error(`cannot run ${python}: ${e.message}`)))
    this.#child.on('exit', (code, signal) => fail(new Error(`the PyTorch process exited (${signal ?? `code ${code}`})`)))
  }

  call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.#exited) return Promise.reject(this.#exited)
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject })
      this.#child.stdin.write(`${JSON.stringify(cmd)}\n`)
    })
  }

  async close(): Promise<void> {
    if (this.#exited) return
    const done = new Promise((r) => this.#child.once('exit', r))
    this.#child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`)
    await done
  }
}

// ---- the recurrent side ------------------------------------------------------------------------

/**
 * Writes the case's weights and data for PyTorch, and recurrent's own results of one
 * computation (output; for training also the loss and every gradient, without an update) for
 * the comparison.
 */
async function writeCaseFiles(c: Case, rc: RecurrentCase): Promise<{ data: string; results: string }> {
  mkdirSync(WORK, { recursive: true })
  const data = join(WORK, `${c.id}.safetensors`)
  const results = join(WORK, `${c.id}.recurrent.safetensors`)
  const inputs: Record<string, Tensor> = { ...rc.model.stateDict(), 'bench.input': rc.x }
  if (c.kind === 'train') inputs['bench.target'] = rc.y
  await saveSafetensors(data, inputs)
  if (c.kind === 'infer') {
    const r = noGrad(() => rc.model.forward(rc.x))
    await saveSafetensors(results, { output: r.output })
    disposeOutputs(r)
  } else {
    rc.model.zeroGrad()
    const r = rc.model.forward(rc.x)
    const loss = mse(r.output, rc.y)
    loss.backward()
    const out: Record<string, Tensor> = { output: r.output, loss }
    for (const [name, p] of rc.model.namedParameters()) out[`grad.${name}`] = p.grad!
    await saveSafetensors(results, out)
    rc.model.zeroGrad()
    loss.dispose()
    disposeOutputs(r)
  }
  return { data, results }
}

/** Worker threads of recurrent's pool in this process (Linux; null elsewhere). */
function recurrentWorkers(): number | null {
  try {
    // comm holds 15 characters: "recurrent-worker-0" reads "recurrent-worke".
    return readdirSync('/proc/self/task').filter((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').startsWith('recurrent-work')).length
  } catch {
    return null
  }
}

// ---- machine -----------------------------------------------------------------------------------

function cpuInfo(): { model: string; avx512: string } {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8')
    const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown CPU'
    const flags = /^flags\s*:\s*(.+)$/m.exec(text)?.[1]?.split(/\s+/) ?? []
    return { model, avx512: flags.includes('avx512f') ? `yes (${flags.filter((f) => f.startsWith('avx512')).join(' ')})` : 'no' }
  } catch {
    return { model: cpus()[0]?.model ?? 'unknown CPU', avx512: 'unknown (no /proc/cpuinfo)' }
  }
}

// ---- run ---------------------------------------------------------------------------------------

interface Side {
  /** Median over rounds of the mean ms per call within a round. */
  ms: number
  /** The mean ms per call of each round. */
  rounds: number[]
  /** Calls per round. */
  reps: number
}
interface Row {
  case: Case
  flops: number
  check: CheckErrs
  checkOk: boolean
  recurrent: Side
  torch: Side
  /** Event-loop delay while recurrent trains: p99 and time-weighted p99 medians over rounds, max over rounds. */
  loop?: LoopStats
}

const repsFor = (ms: number) => Math.max(1, Math.min(100, Math.round(ROUND_MS / Math.max(ms, 1e-3))))
const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2))
const gf = (f: number, ms: number) => f / (ms / 1e3) / 1e9
const fmtGf = (v: number) => v.toFixed(v >= 10 ? 0 : 1)
const fmtRatio = (r: number) => (r >= 0.1 ? r.toFixed(2) : r.toPrecision(2))
const fmtErr = (e: number | undefined) => (e === undefined ? '' : e.toExponential(1))

async function runCase(c: Case, torch: TorchProcess): Promise<Row> {
  const rc = recurrentCase(c)
  const files = await writeCaseFiles(c, rc)
  let loaded: Record<string, unknown>
  try {
    loaded = await torch.call({
      cmd: 'load',
      case: c.id,
      kind: c.kind,
      cell: c.cell,
      layers: c.layers,
      bidirectional: c.bidirectional,
      input: c.size.I,
      hidden: c.size.H,
      path: files.data,
      check: files.results,
    })
  } finally {
    rmSync(files.data, { force: true })
    rmSync(files.results, { force: true })
  }
  const check = loaded.check as CheckErrs
  const checkOk = worstErr(check) <= MAX_REL_ERR
  const errText = Object.entries(check)
    .map(([k, v]) => `${k} ${fmtErr(v)}`)
    .join(', ')
  say(`  check ${c.id}: rel err ${errText} — ${checkOk ? `agree (≤ ${MAX_REL_ERR})` : `MISMATCH (> ${MAX_REL_ERR}): not the same computation`}`)

  // With `warm`, a round opens with WARM_MS of untimed calls, on both sides (see warmUp).
  const torchTime = async (reps: number, warm = false) =>
    (await torch.call({ cmd: 'time', case: c.id, reps, warm_ms: warm ? WARM_MS : 0 })).ms as number
  const recTime = async (reps: number, warm = false) => {
    if (warm) await warmUp(rc.call)
    await synchronize()
    const t0 = performance.now()
    for (let i = 0; i < reps; i++) await rc.call()
    await synchronize()
    return (performance.now() - t0) / reps
  }
  // Warm-up: first touches, thread pools, oneDNN primitive caches; the second call sizes the rounds.
  await recTime(1)
  const recReps = repsFor(await recTime(1))
  await torchTime(1)
  const torchReps = repsFor(await torchTime(1))

  const rec: number[] = []
  const tor: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    rec.push(await recTime(recReps, true))
    tor.push(await torchTime(torchReps, true))
  }
  // The event-loop delay in rounds of their own: its two 1 ms timers wake the JS thread about
  // 2000 times a second, and on a 2-core machine each wake takes a core from the compute
  // threads, so timing the same rounds would charge recurrent for a probe PyTorch does not run.
  const loops: LoopStats[] = []
  if (c.kind === 'train') {
    for (let r = 0; r < LOOP_ROUNDS; r++) {
      const monitor = new LoopDelayMonitor()
      await monitor.start()
      await recTime(recReps)
      loops.push(await monitor.stop())
    }
  }
  await torch.call({ cmd: 'drop', case: c.id })
  for (const p of rc.model.parameters()) p.dispose()
  rc.x.dispose()
  rc.y.dispose()

  const row: Row = {
    case: c,
    flops: flops(c),
    check,
    checkOk,
    recurrent: { ms: median(rec), rounds: rec, reps: recReps },
    torch: { ms: median(tor), rounds: tor, reps: torchReps },
  }
  if (loops.length) {
    row.loop = { p99: median(loops.map((l) => l.p99)), max: Math.max(...loops.map((l) => l.max)), p99Weighted: median(loops.map((l) => l.p99Weighted)) }
  }
  say(`  ${c.id}: recurrent ${fmtMs(row.recurrent.ms)} ms, PyTorch ${fmtMs(row.torch.ms)} ms, ratio ${fmtRatio(row.recurrent.ms / row.torch.ms)}`)
  return row
}

const cases = selectCases()
const python = ensureVenv()
const torch = new TorchProcess(python)
const cpu = cpuInfo()
const loadStart = loadavg()
const benchStart = performance.now()
let info: TorchInfo
try {
  info = (await torch.call({ cmd: 'hello', threads: THREADS })) as unknown as TorchInfo
} catch (e) {
  await torch.close().catch(() => {})
  skip(`the PyTorch process did not start: ${(e as Error).message}`)
}

say(`recurrent vs PyTorch ${info.torch} (CPU) — ${cpus().length} × ${cpu.model}, Node ${process.version}, Python ${info.python}`)
say(`AVX-512: ${cpu.avx512}; PyTorch CPU capability ${info.cpuCapability}, oneDNN ${info.mkldnn ? 'on' : 'off'}`)
say(`threads: PyTorch ${info.threads}, recurrent RAYON_NUM_THREADS=${process.env.RAYON_NUM_THREADS}`)
const ompEnv = Object.entries(process.env)
  .filter(([k]) => /^(OMP|KMP|MKL|GOMP)_/.test(k) && k !== 'OMP_NUM_THREADS' && k !== 'MKL_NUM_THREADS')
  .map(([k, v]) => `${k}=${v}`)
  .join(' ')
say(`OpenMP environment: ${ompEnv || 'defaults'}`)
say(`load average at start: ${loadStart.map((l) => l.toFixed(2)).join(' ')}`)
say(`${ROUNDS} rounds per case, ~${ROUND_MS} ms per side per round${QUICK ? ' (BENCH_QUICK: tiny sizes)' : ''}; cases: ${cases.map((c) => c.id).join(', ')}\n`)

const rows: Row[] = []
const errors: Array<[Case, string]> = []
try {
  for (const c of cases) {
    say(`${c.kind} ${modelLabel(c)} ${sizeLabel(c.size)}`)
    try {
      rows.push(await runCase(c, torch))
    } catch (e) {
      // One failed case (say, out of memory on one side) leaves the others to run.
      errors.push([c, (e as Error).message])
      say(`  ${c.id} failed: ${(e as Error).message}`)
      await torch.call({ cmd: 'drop', case: c.id }).catch(() => {})
    }
  }
} finally {
  await torch.close().catch(() => {})
  rmSync(WORK, { recursive: true, force: true })
}
const workers = recurrentWorkers()
const loadEnd = loadavg()

// ---- report ------------------------------------------------------------------------------------

const lines: string[] = []
const out = (s = '') => lines.push(s)
out('# recurrent vs PyTorch (CPU)')
out()
out(`${cpus().length} × ${cpu.model}; AVX-512: ${cpu.avx512}. Node ${process.version}; PyTorch ${info.torch} from PyPI (Python ${info.python}, CPU capability ${info.cpuCapability}, oneDNN ${info.mkldnn ? 'on' : 'off'}).`)
out(`Threads: PyTorch ${info.threads} (torch.set_num_threads); recurrent ${workers ?? process.env.RAYON_NUM_THREADS} worker threads (RAYON_NUM_THREADS=${process.env.RAYON_NUM_THREADS}).`)
out(`OpenMP environment of the PyTorch process: ${ompEnv || 'defaults'} (OMP_NUM_THREADS=${THREADS}).`)
out(`Load average (1, 5, 15 min) at start ${loadStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadEnd.map((l) => l.toFixed(2)).join(' ')}.`)
out()
out(`float32. ${ROUNDS} rounds per case, alternating: recurrent's calls, then PyTorch's, then the next round; each number is the median over rounds of the mean time per call in a round; each round opens with ${WARM_MS} ms of untimed calls of the side it times, so that neither side pays for the other's threads still spinning or its own waking up.`)
out('Training call: forward + MSE + backward + Adam (lr 1e-3) step, until the loss is read. Inference call: forward under noGrad / torch.no_grad(). Batch-first, zero initial states; GRU is the reset-after form (PyTorch\'s) on both sides.')
out(`GFLOP/s count multiply-add as 2: forward Σ over layers and directions of 2·G·H·(I_l + H)·B·T (G = 4 LSTM, 3 GRU, 1 RNN), a training step 3× that. Ratio = recurrent time ÷ PyTorch time: > 1 means recurrent is slower.`)
out(`Check: both sides computed once from the same weights and data; relative error ‖recurrent − PyTorch‖ / ‖PyTorch‖ of the output (and for training the loss and all gradients together), the worst shown; it must be ≤ ${MAX_REL_ERR}.`)
out()
out('| case | model | size | recurrent ms | PyTorch ms | ratio | recurrent GFLOP/s | PyTorch GFLOP/s | check |')
out('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |')
for (const r of rows) {
  const worst = worstErr(r.check)
  out(
    `| ${r.case.id} | ${r.case.kind === 'train' ? 'train' : 'infer'} ${modelLabel(r.case)} | ${sizeLabel(r.case.size)} | ${fmtMs(r.recurrent.ms)} | ${fmtMs(r.torch.ms)} | ${fmtRatio(r.recurrent.ms / r.torch.ms)} | ${fmtGf(gf(r.flops, r.recurrent.ms))} | ${fmtGf(gf(r.flops, r.torch.ms))} | ${fmtErr(worst)} ${r.checkOk ? 'ok' : '**MISMATCH**'} |`,
  )
}
const trainRows = rows.filter((r) => r.loop)
if (trainRows.length) {
  out()
  out(`Event-loop delay while recurrent trains (ms): perf_hooks.monitorEventLoopDelay (resolution 1 ms) over each of ${LOOP_ROUNDS} rounds of recurrent training calls run after the timed rounds (the probe's 1 ms timers wake the JS thread, which on a small machine takes a core from the compute threads, so it stays out of the timed rounds); p99 and time-weighted p99 (which also counts the samples a blocked loop could not take) are medians over rounds, max is over all rounds.`)
  out()
  out('| case | p99 | max | time-weighted p99 |')
  out('| --- | ---: | ---: | ---: |')
  const f = (v: number) => v.toFixed(v >= 100 ? 0 : 1)
  for (const r of trainRows) out(`| ${r.case.id} | ${f(r.loop!.p99)} | ${f(r.loop!.max)} | ${f(r.loop!.p99Weighted)} |`)
}
if (errors.length) {
  out()
  for (const [c, m] of errors) out(`Failed: ${c.id}: ${m.split('\n')[0]}`)
}
out()
out(`Total bench time ${((performance.now() - benchStart) / 1e3).toFixed(0)} s.`)

const md = `${lines.join('\n')}\n`
say(`\n${md}`)

const failed = rows.filter((r) => !r.checkOk)
if (failed.length) say(`output check failed for ${failed.map((r) => r.case.id).join(', ')}: those rows do not compare the same computation`)
if (failed.length || errors.length) process.exitCode = 1

const WRITE = process.env.BENCH_WRITE !== undefined ? process.env.BENCH_WRITE === '1' : !QUICK && !process.env.BENCH_CASES && !process.env.BENCH_EXTRA
if (WRITE) {
  const bars = rows.flatMap((r) => [
    { label: `${r.case.id} · recurrent`, value: gf(r.flops, r.recurrent.ms), note: `${fmtMs(r.recurrent.ms)} ms` },
    { label: `${r.case.id} · PyTorch`, value: gf(r.flops, r.torch.ms), note: `${fmtMs(r.torch.ms)} ms` },
  ])
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/vs-torch.md', import.meta.url), md)
  writeFileSync(new URL('./results/vs-torch.svg', import.meta.url), barChartSvg(`recurrent vs PyTorch ${info.torch} (CPU, ${THREADS} threads) — ${cpu.model}`, 'GFLOP/s', bars))
  const json = {
    cpu: cpu.model,
    cores: cpus().length,
    avx512: cpu.avx512,
    node: process.version,
    torch: info,
    threads: THREADS,
    ompEnv,
    recurrentWorkers: workers,
    loadavgStart: loadStart,
    loadavgEnd: loadEnd,
    rounds: ROUNDS,
    quick: QUICK,
    rows: rows.map((r) => ({ ...r, ratio: r.recurrent.ms / r.torch.ms, gflops: { recurrent: gf(r.flops, r.recurrent.ms), torch: gf(r.flops, r.torch.ms) } })),
  }
  writeFileSync(new URL('./results/vs-torch.json', import.meta.url), `${JSON.stringify(json, null, 2)}\n`)
  say('wrote bench/results/vs-torch.md, bench/results/vs-torch.svg and bench/results/vs-torch.json')
}
