/**
 * `recurrent train-char`: trains a character-level language model (Embedding → LSTM/GRU →
 * Linear, {@link RecurrentLM}) on a text file with truncated BPTT (`fitTBPTT`), holding out the
 * tail of the text for validation. Progress on the terminal, validation in bits per character,
 * atomic checkpoints (resumable bit-identically), a loss-curve SVG, and a sample at the end.
 */

import { createHash } from 'node:crypto'
import { existsSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { manualSeed } from '../ops/random.js'
import { Adam } from '../optim/adam.js'
import { CosineWithWarmup } from '../optim/schedule.js'
import { CharVocab } from '../data/vocab.js'
import { arrayStream, type TokenStream } from '../data/stream.js'
import { evaluateStream } from '../train/fit/evaluate.js'
import { fitTBPTT } from '../train/fit/loop.js'
import type { FitEvent, FitResult } from '../train/fit/events.js'
import type { Metrics } from '../train/fit/metrics.js'
import type { Checkpoint } from '../train/checkpoint.js'
import type { RecurrentLM } from '../train/lm.js'
import { generate } from '../seq2seq/generate.js'
import { CliError, helpText, parseArgs, UsageError, type FlagSpec, type FlagValue } from './args.js'
import {
  CHECKPOINT_FILE,
  TRAIN_CHAR_KIND,
  buildModel,
  bundledCorpus,
  charCheckpointParts,
  fmtDuration,
  fmtInt,
  fmtSI,
  fsReason,
  readCheckpoint,
  readText,
  type CharModelConfig,
  makeOutDir,
  removeStaleTemps,
} from './common.js'
import { Progress, Smoother, type Writer } from './progress.js'
import { lineChartSvg } from './svg.js'

// ---- defaults -------------------------------------------------------------------------------------
// Chosen for the best validation bits per character after one minute on a 2-core CPU, on the
// bundled corpus (see README: "The CLI").
export const DEFAULTS = {
  cell: 'lstm',
  hidden: 128,
  layers: 1,
  embedding: 32,
  dropout: 0,
  k1: 64,
  batch: 16,
  lr: 2e-2,
  warmup: 30,
  clip: 5,
  valFraction: 0.05,
  seed: 1,
  minutes: 1,
  temperature: 0.8,
  sampleLength: 400,
} as const

/** The final learning rate of the cosine schedule, as a fraction of --lr. */
const MIN_LR_RATIO = 0.1
/** Validation chunks: this many steps, and at most this many rows. */
const VAL_SEQ_LEN = 128
const VAL_MAX_BATCH = 64

export const TRAIN_FLAGS: readonly FlagSpec[] = [
  { name: 'text', type: 'string', metavar: 'FILE', help: 'UTF-8 text to train on (default: the bundled KJV New Testament, data/kjv-new-testament.txt)' },
  { name: 'out', type: 'string', metavar: 'DIR', default: './checkpoints/char-lstm', help: 'folder for checkpoint.safetensors and loss.svg' },
  { name: 'cell', type: 'string', choices: ['lstm', 'gru', 'rnn'], default: DEFAULTS.cell, help: 'recurrent cell' },
  { name: 'hidden', type: 'int', min: 1, default: DEFAULTS.hidden, help: 'hidden size of each recurrent layer' },
  { name: 'layers', type: 'int', min: 1, default: DEFAULTS.layers, help: 'stacked recurrent layers' },
  { name: 'embedding', type: 'int', min: 1, default: DEFAULTS.embedding, help: 'character embedding size' },
  { name: 'dropout', type: 'number', min: 0, max: 0.95, default: DEFAULTS.dropout, help: 'dropout between layers and before the output layer' },
  { name: 'k1', type: 'int', min: 1, default: DEFAULTS.k1, help: 'TBPTT: characters per chunk (one optimizer step per chunk)' },
  { name: 'k2', type: 'int', min: 1, metavar: 'N', help: 'TBPTT: characters backpropagated through, k2 ≥ k1 (default: k1)' },
  { name: 'batch', type: 'int', min: 1, default: DEFAULTS.batch, help: 'parallel streams (the text is cut into this many contiguous rows)' },
  { name: 'lr', type: 'number', above: 0, default: DEFAULTS.lr, help: 'Adam learning rate (peak of a warmup + cosine schedule down to lr/10)' },
  { name: 'warmup', type: 'int', min: 0, default: DEFAULTS.warmup, help: 'learning-rate warmup steps' },
  { name: 'clip', type: 'number', min: 0, default: DEFAULTS.clip, help: 'clip the global gradient norm to this (0: no clipping)' },
  { name: 'steps', type: 'int', min: 1, metavar: 'N', help: 'train this many optimizer steps in total (the schedule ends there)' },
  { name: 'minutes', type: 'number', above: 0, metavar: 'X', help: 'time budget: plans the number of steps from a speed measurement, and stops a run that gets much slower at 1.5× the budget (default: 1 when --steps is not given; with --steps, a time limit)' },
  { name: 'val-fraction', type: 'number', min: 0, max: 0.5, default: DEFAULTS.valFraction, help: 'hold out this tail of the text for validation (0: none)' },
  { name: 'val-every', type: 'int', min: 1, metavar: 'N', help: 'validate every N steps (default: about 5 times per run; also at epoch ends and at the end)' },
  { name: 'checkpoint-every', type: 'int', min: 1, metavar: 'N', help: 'write the checkpoint every N steps (default: about 10 times per run, and at the end)' },
  { name: 'log-every', type: 'int', min: 1, metavar: 'N', help: 'without a terminal: print a progress line every N steps (default: about 20 per run)' },
  { name: 'seed', type: 'int', min: 0, default: DEFAULTS.seed, help: 'seed of the initialisation and of the sample' },
  { name: 'resume', type: 'bool', help: "continue the run in --out from its checkpoint (same settings, bit-identical to an uninterrupted run); --steps N extends it to N steps" },
  { name: 'prime', type: 'string', metavar: 'TEXT', default: '', help: 'text the final sample starts from (default: start of a line)' },
  { name: 'temperature', type: 'number', min: 0, default: DEFAULTS.temperature, help: 'temperature of the final sample' },
  { name: 'sample-length', type: 'int', min: 0, default: DEFAULTS.sampleLength, help: 'characters in the final sample (0: none)' },
]

export const TRAIN_HELP = helpText(
  'Usage: recurrent train-char [--text FILE] [--out DIR] [--minutes X | --steps N] [options]',
  [
    'Trains a character-level language model (embedding → stacked LSTM/GRU → linear) on a text file',
    'with truncated backpropagation through time, holding out the tail of the text for validation.',
    'Shows progress (loss, bits per character, tokens/s, ETA), validates in bits per character, writes',
    'DIR/checkpoint.safetensors (atomically; resumable with --resume) and DIR/loss.svg, and prints',
    'the final validation bits/char against the unigram entropy of the text and a generated sample.',
    '',
    'Example: recurrent train-char --minutes 5 && recurrent sample --prime "And Jesus said"',
  ].join('\n'),
  TRAIN_FLAGS,
)

/** The `config` of a train-char checkpoint. */
export interface TrainCharConfig {
  kind: typeof TRAIN_CHAR_KIND
  model: CharModelConfig
  train: {
    k1: number
    k2: number
    batch: number
    lr: number
    warmup: number
    minLr: number
    clip: number
    seed: number
    valFraction: number
    /** The step at which the schedule ends (and the run, unless extended). */
    plannedSteps: number
    checkpointEvery: number
    valEvery: number
  }
  text: { path: string; bytes: number; chars: number; sha256: string }
}

/** Settings that `--resume` takes from the checkpoint; giving a different value is an error. */
const RUN_FLAGS: Array<[flag: string, get: (c: TrainCharConfig) => FlagValue]> = [
  ['cell', (c) => c.model.cell],
  ['hidden', (c) => c.model.hiddenSize],
  ['layers', (c) => c.model.numLayers],
  ['embedding', (c) => c.model.embeddingDim],
  ['dropout', (c) => c.model.dropout],
  ['k1', (c) => c.train.k1],
  ['k2', (c) => c.train.k2],
  ['batch', (c) => c.train.batch],
  ['lr', (c) => c.train.lr],
  ['warmup', (c) => c.train.warmup],
  ['clip', (c) => c.train.clip],
  ['seed', (c) => c.train.seed],
  ['val-fraction', (c) => c.train.valFraction],
  ['checkpoint-every', (c) => c.train.checkpointEvery],
  ['val-every', (c) => c.train.valEvery],
]

/** The loss curve kept in the checkpoint metadata: bucketed training bpc and validation bpc. */
interface CurveJSON {
  /** Training points `[step, mean bpc over the bucket]`, buckets of `bucket` steps. */
  train: Array<[number, number]>
  bucket: number
  val: Array<[number, number]>
}

const MAX_CURVE_POINTS = 2000

class Curve {
  train: Array<[number, number]> = []
  val: Array<[number, number]> = []
  bucket = 1
  #sum = 0
  #n = 0
  #first = 0

  static from(j: unknown, upTo: number): Curve {
    const c = new Curve()
    const o = j as Partial<CurveJSON> | null
    const ok = (a: unknown): a is Array<[number, number]> => Array.isArray(a) && a.every((p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite))
    if (o && ok(o.train) && ok(o.val)) {
      c.train = o.train.filter(([s]) => s <= upTo)
      c.val = o.val.filter(([s]) => s <= upTo)
      c.bucket = Number.isInteger(o.bucket) && o.bucket! > 0 ? o.bucket! : 1
    }
    return c
  }

  addTrain(step: number, bpc: number): void {
    if (!Number.isFinite(bpc)) return
    if (this.#n === 0) this.#first = step
    this.#sum += bpc
    this.#n++
    if (this.#n >= this.bucket) {
      this.train.push([(this.#first + step) / 2, +(this.#sum / this.#n).toFixed(5)])
      this.#sum = 0
      this.#n = 0
      if (this.train.length > MAX_CURVE_POINTS) {
        const merged: Array<[number, number]> = []
        for (let i = 0; i + 1 < this.train.length; i += 2) {
          const [a, b] = [this.train[i]!, this.train[i + 1]!]
          merged.push([(a[0] + b[0]) / 2, +((a[1] + b[1]) / 2).toFixed(5)])
        }
        if (this.train.length % 2 === 1) merged.push(this.train[this.train.length - 1]!)
        this.train = merged
        this.bucket *= 2
      }
    }
  }

  addVal(step: number, bpc: number): void {
    if (!Number.isFinite(bpc)) return
    const last = this.val[this.val.length - 1]
    if (last && last[0] === step) last[1] = +bpc.toFixed(5)
    else this.val.push([step, +bpc.toFixed(5)])
  }

  toJSON(): CurveJSON {
    return { train: this.train, bucket: this.bucket, val: this.val }
  }
}

/** Bits per character of the unigram distribution of `tokens`. */
export function unigramEntropyBits(tokens: Int32Array, size: number): number {
  const counts = new Float64Array(size)
  for (const t of tokens) counts[t]!++
  let h = 0
  for (const c of counts) {
    if (c > 0) {
      const p = c / tokens.length
      h -= p * Math.log2(p)
    }
  }
  return h
}

function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`
  try {
    writeFileSync(tmp, data)
    renameSync(tmp, path)
  } catch (e) {
    // A full disk leaves a partial temporary file: remove it rather than leave it behind.
    try {
      unlinkSync(tmp)
    } catch {}
    throw e
  }
}

function curveSvg(curve: Curve, unigram: number, title: string): string {
  // A centred moving average (no lag on the steep start).
  const pts = curve.train
  const w = Math.max(1, Math.round(pts.length / 60))
  const smooth: Array<[number, number]> = pts.map(([s], i) => {
    const lo = Math.max(0, i - w)
    const hi = Math.min(pts.length, i + w + 1)
    let sum = 0
    for (let j = lo; j < hi; j++) sum += pts[j]![1]
    return [s, sum / (hi - lo)]
  })
  const ys = [...curve.train.slice(Math.min(5, curve.train.length - 1)).map(([, v]) => v), ...curve.val.map(([, v]) => v), unigram]
  const yMax = ys.length ? Math.min(Math.max(...ys, unigram) * 1.05, Math.max(...ys) + 0.5) : undefined
  const opts: Parameters<typeof lineChartSvg>[1] = {
    title,
    xLabel: 'optimizer step',
    xMin: 0,
    yLabel: 'bits per character',
    hlines: [{ y: unigram, label: `unigram entropy ${unigram.toFixed(2)} bits/char`, color: '#888888' }],
  }
  if (yMax !== undefined) opts.yMax = yMax
  return lineChartSvg(
    [
      { name: 'training (per step)', points: curve.train, color: '#9ecae1', width: 1 },
      { name: 'training (smoothed)', points: smooth, color: '#1f77b4', width: 2 },
      { name: 'validation', points: curve.val, color: '#d62728', markers: true, width: 2 },
    ],
    opts,
  )
}

export interface TrainIO {
  out: Writer
  /** Redraw the progress line in place. */
  tty: boolean
  columns?: number
}

/** Runs `recurrent train-char`; returns the exit status. */
export async function trainCharCommand(argv: readonly string[], io: TrainIO): Promise<number> {
  const tCommand = performance.now()
  const args = parseArgs('train-char', argv, TRAIN_FLAGS)
  if (args.values.help) {
    io.out.write(TRAIN_HELP)
    return 0
  }
  const v = args.values
  const given = args.given
  const print = (s = '') => io.out.write(s + '\n')
  const outDir = String(v.out)
  const ckFile = join(outDir, CHECKPOINT_FILE)
  const svgFile = join(outDir, 'loss.svg')

  // ---- settings: from the flags, or from the checkpoint with --resume
  let resumeCk: Checkpoint | null = null
  let prev: TrainCharConfig | null = null
  let vocab: CharVocab | null = null
  if (v.resume) {
    if (!existsSync(ckFile)) throw new CliError(`--resume: no checkpoint at '${ckFile}' (start a run with --out ${outDir} first)`)
    resumeCk = await readCheckpoint(ckFile)
    const parts = charCheckpointParts(resumeCk)
    prev = parts.config as unknown as TrainCharConfig
    if (!prev.train || !prev.text || !Number.isInteger(prev.train.plannedSteps)) throw new CliError(`'${ckFile}' has no train-char run settings; it can be sampled from but not resumed`)
    vocab = parts.vocab
    for (const [flag, get] of RUN_FLAGS) {
      if (given.has(flag) && v[flag] !== get(prev)) {
        throw new UsageError(`--${flag} ${String(v[flag])} differs from the checkpoint's ${String(get(prev))}: --resume continues a run with its own settings (drop --${flag}, or start a new run in another --out)`)
      }
    }
  }
  const k1 = prev ? prev.train.k1 : Number(v.k1)
  const k2 = prev ? prev.train.k2 : v.k2 !== undefined ? Number(v.k2) : k1
  if (k2 < k1) throw new UsageError(`--k2 (${k2}) must be at least --k1 (${k1})`)
  const batch = prev ? prev.train.batch : Number(v.batch)
  const lr = prev ? prev.train.lr : Number(v.lr)
  const warmup = prev ? prev.train.warmup : Number(v.warmup)
  const clip = prev ? prev.train.clip : Number(v.clip)
  const seed = prev ? prev.train.seed : Number(v.seed)
  const valFraction = prev ? prev.train.valFraction : Number(v['val-fraction'])

  // ---- the text
  const textPath = v.text !== undefined ? String(v.text) : prev ? prev.text.path : bundledCorpus()
  const text = await readText(textPath, '--text')
  const sha256 = createHash('sha256').update(text).digest('hex')
  if (prev && sha256 !== prev.text.sha256) {
    throw new CliError(`--text '${textPath}' is not the text the checkpoint was trained on (${fmtInt(prev.text.chars)} characters from '${prev.text.path}')`)
  }
  vocab ??= CharVocab.fromText(text)
  const tokens = vocab.encode(text)
  const N = tokens.length
  const nVal = valFraction > 0 ? Math.floor(N * valFraction) : 0
  const trainTokens = tokens.subarray(0, N - nVal)
  const valTokens = tokens.subarray(N - nVal)
  if (trainTokens.length < 2 * batch + 1) {
    throw new CliError(`--text '${textPath}' has ${fmtInt(N)} characters${nVal ? ` (${fmtInt(trainTokens.length)} for training)` : ''}: too few for --batch ${batch} (need at least ${2 * batch + 1})`)
  }
  if (valFraction > 0 && nVal < 2) throw new CliError(`--text '${textPath}' is too short to hold out --val-fraction ${valFraction} for validation (use --val-fraction 0)`)
  const stream = arrayStream(trainTokens, { batchSize: batch, seqLen: k1 })
  let valStream: TokenStream | null = null
  if (nVal >= 2) {
    const vb = Math.max(1, Math.min(VAL_MAX_BATCH, batch * 2, Math.floor((nVal - 1) / (2 * VAL_SEQ_LEN))))
    valStream = arrayStream(valTokens, { batchSize: vb, seqLen: VAL_SEQ_LEN })
  }
  const unigram = unigramEntropyBits(trainTokens, vocab.size)
  const epochSteps = stream.numChunks ?? 1

  const modelCfg: CharModelConfig = prev
    ? prev.model
    : {
        vocabSize: vocab.size,
        hiddenSize: Number(v.hidden),
        embeddingDim: Number(v.embedding),
        numLayers: Number(v.layers),
        cell: String(v.cell) as CharModelConfig['cell'],
        dropout: Number(v.dropout),
      }

  makeOutDir(outDir)
  const stale = removeStaleTemps(outDir)
  if (stale.length > 0) print(`  removed ${stale.length} temporary file(s) left by an interrupted run: ${stale.join(', ')}`)

  const cellName = modelCfg.cell.toUpperCase()
  print(`recurrent train-char: ${textPath}`)
  print(
    `  text: ${fmtInt(N)} characters, ${vocab.size} symbols; ${fmtInt(trainTokens.length)} for training, ${fmtInt(nVal)} for validation; unigram entropy ${unigram.toFixed(3)} bits/char`,
  )

  // ---- how far to go
  const start = resumeCk?.step ?? 0
  const minutes = v.minutes !== undefined ? Number(v.minutes) : undefined
  let planned: number
  let target: number
  let capSec: number | null = null
  let plan = ''
  if (prev) {
    planned = prev.train.plannedSteps
    target = v.steps !== undefined ? Number(v.steps) : planned
    if (minutes !== undefined) capSec = minutes * 60
    plan = `resuming at step ${fmtInt(start)} of ${fmtInt(target)}`
    if (target > planned) plan += ` (the schedule ended at step ${fmtInt(planned)}: later steps use its final lr ${(prev.train.minLr).toExponential(1)})`
  } else if (v.steps !== undefined) {
    planned = target = Number(v.steps)
    if (minutes !== undefined) capSec = minutes * 60
    plan = `${fmtInt(target)} steps${capSec !== null ? `, at most ${fmtDuration(capSec)}` : ''}`
  } else {
    const budget = (minutes ?? DEFAULTS.minutes) * 60
    const m = await measureSpeed(modelCfg, seed, stream, valStream, { k2, lr, clip })
    // Validations: about 5 planned ones, one per epoch, and the final one.
    const valCost = valStream ? nVal / m.evalTokensPerSec : 0
    const sampleCost = 0.5 + Number(v['sample-length']) * 0.002
    const used = (performance.now() - tCommand) / 1000
    const avail = Math.max(0, 0.97 * (budget - used) - sampleCost - 6 * valCost)
    planned = target = Math.max(1, Math.floor(avail / (m.secPerStep + valCost / epochSteps)))
    // A safety net for a machine that gets much slower: the plan is what normally ends the run.
    capSec = Math.max(1, budget * 1.5 + 5 - used)
    plan = `${fmtDuration(budget)} budget: ${(m.secPerStep * 1000).toFixed(1)} ms/step measured → ${fmtInt(target)} steps`
  }
  const ckEvery = prev ? prev.train.checkpointEvery : v['checkpoint-every'] !== undefined ? Number(v['checkpoint-every']) : Math.max(1, Math.ceil(planned / 10))
  const valEvery = prev ? prev.train.valEvery : v['val-every'] !== undefined ? Number(v['val-every']) : Math.max(1, Math.ceil(planned / 5))
  const logEvery = v['log-every'] !== undefined ? Number(v['log-every']) : Math.max(1, Math.round(Math.max(1, target - start) / 20))
  const minLr = prev ? prev.train.minLr : lr * MIN_LR_RATIO

  const config: TrainCharConfig = {
    kind: TRAIN_CHAR_KIND,
    model: modelCfg,
    train: { k1, k2, batch, lr, warmup, minLr, clip, seed, valFraction, plannedSteps: planned, checkpointEvery: ckEvery, valEvery },
    text: prev ? prev.text : { path: resolve(textPath), bytes: Buffer.byteLength(text), chars: N, sha256 },
  }

  // ---- model, optimizer, schedule
  const model = buildModel(modelCfg, seed)
  manualSeed(seed)
  const opt = new Adam(model.parameters(), { lr })
  const sched = new CosineWithWarmup(opt, { warmupSteps: Math.min(warmup, planned), totalSteps: planned, minLr })
  const curve = prev ? Curve.from((resumeCk!.metadata as { curve?: unknown } | null)?.curve, start) : new Curve()
  const metadata = { vocab: vocab.toJSON(), curve, unigramBitsPerChar: unigram }
  const nParams = model.numParameters()
  print(
    `  model: ${cellName} ${modelCfg.numLayers}×${modelCfg.hiddenSize}, embedding ${modelCfg.embeddingDim}${modelCfg.dropout ? `, dropout ${modelCfg.dropout}` : ''}; ${fmtInt(nParams)} parameters`,
  )
  print(
    `  training: TBPTT k1=${k1} k2=${k2}, batch ${batch} (${fmtInt(batch * k1)} chars/step, ${fmtInt(epochSteps)} steps/epoch), Adam lr ${lr} (warmup ${Math.min(warmup, planned)}, cosine to ${minLr.toExponential(1)}), clip ${clip || 'off'}, seed ${seed}`,
  )
  print(`  plan: ${plan}; checkpoint every ${fmtInt(ckEvery)} steps → ${ckFile}`)
  if (!prev && existsSync(ckFile)) print(`  note: starting a new run; it replaces ${ckFile} (use --resume to continue that run instead)`)

  const title = `${cellName} ${modelCfg.numLayers}×${modelCfg.hiddenSize} on ${textPath.split(/[\\/]/).pop()}`
  const writeSvg = () => {
    try {
      writeFileAtomic(svgFile, curveSvg(curve, unigram, title))
    } catch (e) {
      throw new CliError(`cannot write '${svgFile}': ${fsReason(e)}`, { cause: e })
    }
  }

  // ---- train
  const progress = new Progress(io.out, { tty: io.tty, every: logEvery, columns: io.columns ?? 100 })
  const ac = new AbortController()
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
    ac.abort()
    progress.log('interrupted: stopping after this step (Ctrl-C again to quit at once)')
  }
  process.on('SIGINT', onSigint)

  const t0 = performance.now()
  const smooth = new Smoother(0.95)
  for (const [, bpc] of curve.train.slice(-20)) smooth.add(bpc * Math.LN2)
  let step = start
  let seen = 0
  const rates: number[] = []
  let lastVal: { step: number; metrics: Metrics } | null = null
  let lastCkStep = resumeCk ? start : -1
  let result: FitResult | null = null
  const elapsed = () => (performance.now() - t0) / 1000

  const onEvent = (ev: FitEvent) => {
    if (ev.type === 'step') {
      step = ev.step
      seen += ev.count
      if (ev.step - start > 2) rates.push(ev.tokensPerSec)
      smooth.add(ev.loss)
      curve.addTrain(ev.step, ev.loss / Math.LN2)
      const el = elapsed()
      const done = ev.step - start
      let eta = done > 0 ? ((target - ev.step) * el) / done : NaN
      if (capSec !== null) eta = Math.min(eta, Math.max(0, capSec - el))
      progress.update({
        step: ev.step,
        totalSteps: target,
        loss: smooth.value,
        valBpc: lastVal ? lastVal.metrics.loss / Math.LN2 : undefined,
        tokensPerSec: seen / Math.max(1e-9, el),
        elapsedSec: el,
        etaSec: eta,
      })
      if (capSec !== null && el >= capSec && !ac.signal.aborted) {
        stopWhy = `time limit (${fmtDuration(capSec)})`
        ac.abort()
      }
    } else if (ev.type === 'validation') {
      lastVal = { step: ev.step, metrics: ev.metrics }
      curve.addVal(ev.step, ev.metrics.loss / Math.LN2)
      progress.log(`step ${String(ev.step).padStart(String(target).length)}  validation: loss ${ev.metrics.loss.toFixed(4)}, ${(ev.metrics.loss / Math.LN2).toFixed(3)} bits/char`)
    } else if (ev.type === 'checkpoint') {
      lastCkStep = ev.step
      writeSvg()
    }
  }

  const runSegment = async (maxSteps: number, everySteps: number, resume: Checkpoint | string | null) => {
    const run = fitTBPTT(model, {
      stream,
      k2,
      optimizer: opt,
      scheduler: sched,
      schedulerInterval: 'step',
      epochs: Number.MAX_SAFE_INTEGER,
      maxSteps,
      ...(clip > 0 ? { clipGradNorm: clip } : {}),
      ...(valStream ? { validation: valStream, validateEverySteps: valEvery } : {}),
      signal: ac.signal,
      checkpoint: { path: ckFile, everySteps, atEpochEnd: false, config, metadata },
      ...(resume ? { resume } : {}),
    })
    for await (const ev of run) onEvent(ev)
    return await run
  }

  try {
    if (start >= target) {
      print(`  already at step ${fmtInt(start)}: nothing to train (pass --steps N with N > ${start} to train further)`)
    } else {
      // The last chunk of steps ends at `target` with a checkpoint: the run stops at the last
      // multiple of the checkpoint interval, then resumes from that checkpoint to `target`
      // with `target` as the interval (fit writes checkpoints at multiples of everySteps).
      const m = Math.floor(target / ckEvery) * ckEvery
      let from: Checkpoint | string | null = resumeCk
      if (m > start) {
        result = await runSegment(m, ckEvery, resumeCk)
        from = ckFile
      }
      if (target > Math.max(m, start) && !ac.signal.aborted) {
        // Make sure the segment restarts from a checkpoint of the step it stopped at.
        if (m > start && lastCkStep !== m) throw new CliError(`internal: expected a checkpoint at step ${m}, the last one is at step ${lastCkStep}`)
        result = await runSegment(target, target, from)
      }
    }
  } finally {
    process.off('SIGINT', onSigint)
    progress.done()
  }
  const trainSec = elapsed()
  const finalStep = step

  // ---- final validation, report, sample
  let finalVal: Metrics | null = null
  if (valStream) {
    if (lastVal !== null && (lastVal as { step: number }).step === finalStep) finalVal = (lastVal as { metrics: Metrics }).metrics
    else {
      finalVal = await evaluateStream(model, valStream)
      curve.addVal(finalStep, finalVal.loss / Math.LN2)
    }
  }
  writeSvg()
  print()
  if (stopWhy) print(`stopped: ${stopWhy} at step ${fmtInt(finalStep)}${lastCkStep >= 0 && lastCkStep !== finalStep ? `; the checkpoint holds step ${fmtInt(lastCkStep)} (continue with --resume)` : ''}`)
  if (result || finalStep > start) {
    const median = rates.length ? [...rates].sort((a, b) => a - b)[Math.floor(rates.length / 2)]! : seen / Math.max(1e-9, trainSec)
    print(`trained: steps ${fmtInt(start)} → ${fmtInt(finalStep)} (${(finalStep / epochSteps).toFixed(2)} epochs) in ${fmtDuration(trainSec)}, ${fmtInt(seen)} characters`)
    print(`throughput: ${fmtSI(median)} tokens/s per training step (median), ${fmtSI(seen / Math.max(1e-9, trainSec))} tokens/s overall with validation and checkpoints`)
  }
  if (finalVal) {
    const bpc = finalVal.loss / Math.LN2
    print(`validation: ${bpc.toFixed(3)} bits/char (loss ${finalVal.loss.toFixed(4)} nats, perplexity ${Math.exp(finalVal.loss).toFixed(2)}) on ${fmtInt(nVal)} held-out characters`)
    print(`unigram entropy of the training text: ${unigram.toFixed(3)} bits/char (the model saves ${(unigram - bpc).toFixed(3)} bits/char, ${(100 * (1 - bpc / unigram)).toFixed(1)}%)`)
  } else {
    print(`unigram entropy of the training text: ${unigram.toFixed(3)} bits/char (no validation: --val-fraction 0)`)
  }
  print(`checkpoint: ${ckFile}${lastCkStep >= 0 ? ` (step ${fmtInt(lastCkStep)})` : ' (none written yet)'}`)
  print(`loss curve: ${svgFile}`)
  const length = Number(v['sample-length'])
  if (length > 0) {
    const prime = String(v.prime ?? '')
    const temperature = Number(v.temperature)
    print(`sample (temperature ${temperature}, seed ${seed}; more with: recurrent sample --checkpoint ${outDir}):`)
    print('-'.repeat(72))
    io.out.write(prime)
    await generate(model, vocab, { prime, length, temperature, seed, onText: (s) => io.out.write(s) })
    print()
    print('-'.repeat(72))
  }
  return stopWhy === 'interrupted' ? 130 : 0
}

/**
 * Times a few training steps of a throwaway copy of the model (and a short evaluation), to turn
 * a time budget into a number of steps.
 */
async function measureSpeed(
  cfg: CharModelConfig,
  seed: number,
  stream: TokenStream,
  valStream: TokenStream | null,
  o: { k2: number; lr: number; clip: number },
): Promise<{ secPerStep: number; evalTokensPerSec: number }> {
  const model: RecurrentLM = buildModel(cfg, seed)
  const opt = new Adam(model.parameters(), { lr: o.lr })
  const times: number[] = []
  const K = 12
  const run = fitTBPTT(model, { stream, k2: o.k2, optimizer: opt, maxSteps: K, epochs: Number.MAX_SAFE_INTEGER, ...(o.clip > 0 ? { clipGradNorm: o.clip } : {}) })
  for await (const ev of run) if (ev.type === 'step') times.push(ev.elapsedMs)
  await run
  // The median interval between step events after the first three (which include start-up).
  const gaps = times.slice(3).map((t, i) => t - times[i + 2]!).sort((a, b) => a - b)
  const secPerStep = gaps.length > 0 ? gaps[Math.floor(gaps.length / 2)]! / 1000 : times.length > 0 ? times[times.length - 1]! / times.length / 1000 : 0.05
  let evalTokensPerSec = Infinity
  if (valStream) {
    // Time (up to) the first six validation chunks: the whole default validation set.
    const short: TokenStream = {
      batchSize: valStream.batchSize,
      seqLen: valStream.seqLen,
      numChunks: undefined,
      async *chunks(from = 0) {
        let i = 0
        for await (const c of valStream.chunks(from)) {
          yield c
          if (++i >= 6) return
        }
      },
    }
    const t = performance.now()
    const m = await evaluateStream(model, short)
    evalTokensPerSec = m.count / Math.max(1e-6, (performance.now() - t) / 1000)
  }
  manualSeed(seed)
  return { secPerStep, evalTokensPerSec }
}
