/**
 * What `train-seq2seq` and `train-caption` share: two-column TSV parsing with line numbers, the
 * seeded batch order (a function of the step, so resuming needs nothing else), the step loop
 * with progress, time limit, Ctrl-C, periodic validation and checkpoints, and the loss curve
 * kept in the checkpoint and drawn as an SVG.
 */

import { renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { CliError, type FlagSpec } from './args.js'
import { fmtDuration, fsReason } from './common.js'
import { Progress, Smoother, type Writer } from './progress.js'
import { lineChartSvg } from './svg.js'

/**
 * The optimisation and run flags every `train-*` command of this loop takes, after its own
 * model flags: `unit` names what one batch row is ('pairs', 'captions'), `heldOut` what the
 * validation fraction holds out.
 */
export function runFlags(d: { batch: number; lr: number; clip: number; valFraction: number; seed: number }, unit: string, heldOut: string): FlagSpec[] {
  return [
    { name: 'batch', type: 'int', min: 1, default: d.batch, help: `${unit} per optimizer step` },
    { name: 'lr', type: 'number', above: 0, default: d.lr, help: 'Adam learning rate' },
    { name: 'clip', type: 'number', min: 0, default: d.clip, help: 'clip the global gradient norm to this (0: no clipping)' },
    { name: 'steps', type: 'int', min: 1, metavar: 'N', help: 'train this many optimizer steps in total' },
    { name: 'minutes', type: 'number', above: 0, metavar: 'X', help: 'time budget (default: 1 when --steps is not given; with --steps, a time limit)' },
    { name: 'val-fraction', type: 'number', min: 0, max: 0.5, default: d.valFraction, help: `hold out this fraction of the ${heldOut} for validation (0: none)` },
    { name: 'val-every', type: 'int', min: 1, default: 200, help: 'validate every N steps (and at the end)' },
    { name: 'checkpoint-every', type: 'int', min: 1, default: 200, help: 'write the checkpoint every N steps (and at the end)' },
    { name: 'log-every', type: 'int', min: 1, metavar: 'N', help: 'without a terminal: print a progress line every N steps (default 50)' },
    { name: 'seed', type: 'int', min: 0, default: d.seed, help: 'seed of the initialisation, the split and the batch order' },
    { name: 'resume', type: 'bool', help: 'continue the run in --out from its checkpoint (same settings, bit-identical to an uninterrupted run); --steps N extends it' },
  ]
}

/** One line of a two-column file, with its 1-based line number. */
export interface TabLine {
  a: string
  b: string
  line: number
}

/**
 * Parses `a<TAB>b` lines (`names` say what the columns are, for messages). Blank lines are
 * skipped; any other line without exactly one tab, or with an empty column, is an error naming
 * its line number.
 */
export function parseTabLines(text: string, path: string, names: [string, string]): TabLine[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  const out: TabLine[] = []
  const show = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s)
  const shape = `'${names[0]}<TAB>${names[1]}'`
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line.trim() === '') continue
    const parts = line.split('\t')
    if (parts.length !== 2) {
      const why = parts.length === 1 ? 'no tab' : `${parts.length - 1} tabs`
      throw new CliError(`${path}:${i + 1}: expected one ${shape} pair, got a line with ${why}: ${show(line)}`)
    }
    const [a, b] = parts as [string, string]
    if (a.trim() === '') throw new CliError(`${path}:${i + 1}: the ${names[0]} (before the tab) is empty: ${show(line)}`)
    if (b.trim() === '') throw new CliError(`${path}:${i + 1}: the ${names[1]} (after the tab) is empty: ${show(line)}`)
    out.push({ a, b, line: i + 1 })
  }
  if (out.length === 0) throw new CliError(`'${path}' has no pairs: expected one ${shape} per line`)
  return out
}

/** mulberry32: a small seeded generator of uniform numbers in [0, 1), the same on every platform. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** A deterministic permutation of 0..n−1 from a seed (Fisher–Yates on mulberry32). */
export function permutation(n: number, seed: number): Int32Array {
  const rand = mulberry32(seed)
  const p = new Int32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = p[i]!
    p[i] = p[j]!
    p[j] = t
  }
  return p
}

/** The rows of the batch of step `step` (0-based): every epoch is a fresh seeded shuffle. */
export class BatchOrder {
  #epoch = -1
  #perm: Int32Array = new Int32Array(0)
  readonly stepsPerEpoch: number

  constructor(
    readonly n: number,
    readonly batch: number,
    readonly seed: number,
  ) {
    this.stepsPerEpoch = Math.ceil(n / batch)
  }

  rows(step: number): Int32Array {
    const epoch = Math.floor(step / this.stepsPerEpoch)
    if (epoch !== this.#epoch) {
      this.#perm = permutation(this.n, (this.seed * 7919 + epoch * 104729 + 1) >>> 0)
      this.#epoch = epoch
    }
    const i = step % this.stepsPerEpoch
    return this.#perm.subarray(i * this.batch, Math.min(this.n, (i + 1) * this.batch))
  }
}

/** Writes `data` to `path` through a temporary file and a rename. */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`
  try {
    writeFileSync(tmp, data)
    renameSync(tmp, path)
  } catch (e) {
    try {
      unlinkSync(tmp)
    } catch {}
    throw e
  }
}

/** The loss curve kept in the checkpoint metadata: training means per bucket, validation points. */
export interface CurveJSON {
  train: Array<[number, number]>
  val: Array<[number, number]>
  /** A validation score per point (exact match), for the log. */
  score: Array<[number, number]>
}

const CURVE_BUCKET = 10

/** The curve of a checkpoint up to `upTo` (points after it came from a later, lost run). */
export function curveFrom(j: unknown, upTo: number): CurveJSON {
  const o = j as Partial<CurveJSON> | null
  const ok = (a: unknown): a is Array<[number, number]> => Array.isArray(a) && a.every((p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite))
  const keep = (a: unknown) => (ok(a) ? a.filter(([s]) => s <= upTo) : [])
  return { train: keep(o?.train), val: keep(o?.val), score: keep(o?.score) }
}

/** The curve as an SVG line chart (training and validation loss per step). */
export function curveSvg(curve: CurveJSON, title: string, yLabel: string): string {
  return lineChartSvg(
    [
      { name: `training (mean of ${CURVE_BUCKET} steps)`, points: curve.train, color: '#1f77b4', width: 2 },
      { name: 'validation', points: curve.val, color: '#d62728', markers: true, width: 2 },
    ],
    { title, xLabel: 'optimizer step', xMin: 0, yLabel, yMin: 0 },
  )
}

/** What {@link runSteps} drives. */
export interface StepLoop {
  out: Writer
  tty: boolean
  columns?: number | undefined
  /** The step to start from (the checkpoint's when resuming). */
  start: number
  /** Whether `start` is a resumed checkpoint's step (so a checkpoint of it exists). */
  resumed: boolean
  /** Stop at this step (null: only the time limit). */
  target: number | null
  /** Stop after this many seconds (null: none). */
  capSec: number | null
  valEvery: number
  checkpointEvery: number
  logEvery: number
  curve: CurveJSON
  /** One optimizer step on the batch of step `step` (0-based): its loss and the tokens it saw. */
  trainStep(step: number): Promise<{ loss: number; tokens: number }>
  /** Validation at `step`: its loss, a score in [0, 1] for the progress line, and a log line; null without validation data. */
  validate(step: number): Promise<{ loss: number; score: number; line: string } | null>
  /** Writes the checkpoint of `step`. */
  checkpoint(step: number): Promise<void>
  /** Where the SVG goes, and its title and y label. */
  svg: { file: string; title: string; yLabel: string }
}

/** What {@link runSteps} reached. */
export interface StepLoopResult {
  step: number
  stopWhy: string | null
  seconds: number
  tokens: number
  lastCheckpoint: number
  /** The final validation (at the last step), if any. */
  validation: { loss: number; score: number; line: string } | null
}

/**
 * Runs optimizer steps from `start` until `target`, the time limit or Ctrl-C, with a progress
 * line, validation every `valEvery` steps and a checkpoint (and the SVG) every
 * `checkpointEvery`; then validates and checkpoints the last step if that was not done.
 */
export async function runSteps(o: StepLoop): Promise<StepLoopResult> {
  const writeSvg = () => {
    try {
      writeFileAtomic(o.svg.file, curveSvg(o.curve, o.svg.title, o.svg.yLabel))
    } catch (e) {
      throw new CliError(`cannot write '${o.svg.file}': ${fsReason(e)}`, { cause: e })
    }
  }
  const progress = new Progress(o.out, { tty: o.tty, every: o.logEvery, columns: o.columns ?? 100 })
  let stopWhy: string | null = null
  let interrupts = 0
  const onSigint = () => {
    interrupts++
    if (interrupts > 1) {
      progress.done()
      process.stderr.write('recurrent: interrupted\n')
      process.exit(130)
    }
    stopWhy = 'interrupted'
    progress.log('interrupted: stopping after this step (Ctrl-C again to quit at once)')
  }
  process.on('SIGINT', onSigint)
  const t0 = performance.now()
  const elapsed = () => (performance.now() - t0) / 1000
  const smooth = new Smoother(0.95)
  let step = o.start
  let tokens = 0
  let bucket: number[] = []
  let lastVal: { step: number; v: { loss: number; score: number; line: string } } | null = null
  let lastCk = o.resumed ? o.start : -1
  const validate = async () => {
    const v = await o.validate(step)
    if (v === null) return
    lastVal = { step, v }
    o.curve.val.push([step, +v.loss.toFixed(5)])
    o.curve.score.push([step, +v.score.toFixed(5)])
    progress.log(`step ${String(step).padStart(6)}  validation: ${v.line}`)
  }
  const checkpoint = async () => {
    await o.checkpoint(step)
    lastCk = step
    writeSvg()
  }
  try {
    if (o.target !== null && o.start >= o.target) {
      progress.log(`  already at step ${o.start}: nothing to train (pass --steps N with N > ${o.start} to train further)`)
    } else {
      for (;;) {
        if (o.target !== null && step >= o.target) break
        if (o.capSec !== null && elapsed() >= o.capSec) {
          stopWhy = `time limit (${fmtDuration(o.capSec)})`
          break
        }
        if (stopWhy === 'interrupted') break
        const r = await o.trainStep(step)
        step++
        tokens += r.tokens
        smooth.add(r.loss)
        bucket.push(r.loss)
        if (bucket.length === CURVE_BUCKET) {
          o.curve.train.push([step - (CURVE_BUCKET - 1) / 2, +(bucket.reduce((a, b) => a + b, 0) / CURVE_BUCKET).toFixed(5)])
          bucket = []
        }
        const el = elapsed()
        const done = step - o.start
        const total = o.target ?? o.start + Math.max(done, Math.round((done * (o.capSec ?? el)) / Math.max(1e-9, el)))
        let eta = o.target !== null ? ((o.target - step) * el) / Math.max(1, done) : Math.max(0, (o.capSec ?? el) - el)
        if (o.capSec !== null) eta = Math.min(eta, Math.max(0, o.capSec - el))
        const lv = lastVal as { v: { score: number } } | null
        progress.update({
          step,
          totalSteps: total,
          loss: smooth.value,
          bpc: false,
          extra: lv ? `val exact ${(100 * lv.v.score).toFixed(1)}%` : undefined,
          tokensPerSec: tokens / Math.max(1e-9, el),
          elapsedSec: el,
          etaSec: eta,
        })
        if (step % o.valEvery === 0) await validate()
        if (step % o.checkpointEvery === 0) await checkpoint()
      }
    }
  } finally {
    process.off('SIGINT', onSigint)
    progress.done()
  }
  const seconds = elapsed()
  if ((lastVal as { step: number } | null)?.step !== step) await validate()
  if (lastCk !== step) await checkpoint()
  const lv = lastVal as { step: number; v: { loss: number; score: number; line: string } } | null
  return { step, stopWhy, seconds, tokens, lastCheckpoint: lastCk, validation: lv && lv.step === step ? lv.v : null }
}
