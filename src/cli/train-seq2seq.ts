/**
 * `recurrent train-seq2seq`: trains a `Seq2Seq` model (encoder, bridge, attending decoder) on a
 * file of `source<TAB>target` pairs, holding out a fraction for validation. Progress on the
 * terminal, validation exact match and token accuracy, atomic checkpoints (model, vocabularies,
 * optimizer; resumable bit-identically) and a loss-curve SVG.
 */

import { existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import type { Tensor } from '../tensor.js'
import { manualSeed } from '../ops/random.js'
import { noGrad } from '../ops/grad.js'
import { crossEntropy } from '../ops/loss.js'
import { reshape } from '../ops/shape.js'
import { dispose, tidy, tidyAsync } from '../scope.js'
import { Adam } from '../optim/adam.js'
import { clipGradNorm } from '../optim/clip.js'
import { TokenVocab, type TokenVocabJSON } from '../data/vocab.js'
import { collatePairs } from '../data/pad.js'
import { saveCheckpoint, type Checkpoint } from '../train/checkpoint.js'
import { Seq2Seq, BOS_ID, EOS_ID, PAD_ID, type Seq2SeqAttention, type Seq2SeqBatch, type Seq2SeqCell, type Seq2SeqConfig } from '../seq2seq/model.js'
import type { Hypothesis } from '../seq2seq/decode.js'
import { CliError, helpText, parseArgs, UsageError, type FlagSpec, type FlagValue } from './args.js'
import { CHECKPOINT_FILE, fmtDuration, fmtInt, fmtSI, fsReason, makeOutDir, readCheckpoint, readText, removeStaleTemps } from './common.js'
import type { Writer } from './progress.js'
import { BatchOrder, curveFrom, parseTabLines, permutation, runFlags, runSteps } from './run-loop.js'

/** The `kind` of a train-seq2seq checkpoint's config. */
export const TRAIN_SEQ2SEQ_KIND = 'recurrent.train-seq2seq'

// ---- defaults -------------------------------------------------------------------------------------
export const SEQ2SEQ_DEFAULTS = {
  cell: 'lstm',
  hidden: 128,
  layers: 1,
  embedding: 64,
  attention: 'bahdanau',
  tokens: 'char',
  batch: 64,
  lr: 3e-3,
  clip: 1,
  teacherForcing: 1,
  dropout: 0,
  valFraction: 0.1,
  seed: 1,
  minutes: 1,
} as const

/** Validation decodes in batches of this many rows. */
const VAL_BATCH = 256
/** Validation uses at most this many held-out pairs (the first ones of the fixed split). */
const VAL_MAX_PAIRS = 2000

export const SEQ2SEQ_FLAGS: readonly FlagSpec[] = [
  { name: 'pairs', type: 'string', metavar: 'FILE', help: 'training pairs: one `source<TAB>target` per line (UTF-8)' },
  { name: 'out', type: 'string', metavar: 'DIR', default: './checkpoints/seq2seq', help: 'folder for checkpoint.safetensors and loss.svg' },
  { name: 'tokens', type: 'string', choices: ['char', 'word'], default: SEQ2SEQ_DEFAULTS.tokens, help: 'tokens: characters, or whitespace-separated words' },
  { name: 'cell', type: 'string', choices: ['lstm', 'gru', 'rnn'], default: SEQ2SEQ_DEFAULTS.cell, help: 'recurrent cell of encoder and decoder' },
  { name: 'hidden', type: 'int', min: 1, default: SEQ2SEQ_DEFAULTS.hidden, help: 'hidden size (of each encoder direction and of the decoder)' },
  { name: 'layers', type: 'int', min: 1, default: SEQ2SEQ_DEFAULTS.layers, help: 'stacked layers of encoder and decoder' },
  { name: 'embedding', type: 'int', min: 1, default: SEQ2SEQ_DEFAULTS.embedding, help: 'token embedding size' },
  { name: 'bidirectional', type: 'bool', help: 'run the encoder in both directions' },
  { name: 'attention', type: 'string', choices: ['bahdanau', 'luong', 'dot', 'none'], default: SEQ2SEQ_DEFAULTS.attention, help: 'attention of the decoder over the encoder outputs' },
  { name: 'dropout', type: 'number', min: 0, max: 0.95, default: SEQ2SEQ_DEFAULTS.dropout, help: 'dropout between layers and before the output layer' },
  { name: 'teacher-forcing', type: 'number', min: 0, max: 1, default: SEQ2SEQ_DEFAULTS.teacherForcing, help: 'probability of feeding the true previous token (below 1: scheduled sampling)' },
  ...runFlags(SEQ2SEQ_DEFAULTS, 'pairs', 'pairs'),
]

export const SEQ2SEQ_HELP = helpText(
  'Usage: recurrent train-seq2seq --pairs FILE.tsv [--out DIR] [--minutes X | --steps N] [options]',
  [
    'Trains an encoder-decoder (embedding → LSTM/GRU encoder → attending decoder) on `source<TAB>target`',
    'pairs, character-level by default. Shows progress, validates exact match and token accuracy on',
    'held-out pairs, writes DIR/checkpoint.safetensors (atomically; resumable with --resume) and',
    'DIR/loss.svg, and prints a few held-out translations.',
    '',
    'Example: recurrent train-seq2seq --pairs data.tsv --minutes 5 && echo "123+456" | recurrent translate --checkpoint ./checkpoints/seq2seq',
  ].join('\n'),
  SEQ2SEQ_FLAGS,
)

/** The `config` of a train-seq2seq checkpoint. */
export interface TrainSeq2SeqConfig {
  kind: typeof TRAIN_SEQ2SEQ_KIND
  model: Seq2SeqConfig
  tokens: 'char' | 'word'
  train: {
    batch: number
    lr: number
    clip: number
    teacherForcing: number
    seed: number
    valFraction: number
    valEvery: number
    checkpointEvery: number
    /** The longest target (in tokens) of the training pairs; bounds decoding. */
    maxTargetTokens: number
    /** The `--steps` of the run (null: a time budget); `--resume` goes there by default. */
    plannedSteps: number | null
  }
  pairs: { path: string; count: number; sha256: string }
}

/** Settings that `--resume` takes from the checkpoint; giving a different value is an error. */
const RUN_FLAGS: Array<[flag: string, get: (c: TrainSeq2SeqConfig) => FlagValue | undefined]> = [
  ['tokens', (c) => c.tokens],
  ['cell', (c) => c.model.cell],
  ['hidden', (c) => c.model.hiddenSize],
  ['layers', (c) => c.model.numLayers],
  ['embedding', (c) => c.model.embeddingDim],
  ['bidirectional', (c) => c.model.bidirectional],
  ['attention', (c) => c.model.attention],
  ['dropout', (c) => c.model.dropout],
  ['teacher-forcing', (c) => c.train.teacherForcing],
  ['batch', (c) => c.train.batch],
  ['lr', (c) => c.train.lr],
  ['clip', (c) => c.train.clip],
  ['seed', (c) => c.train.seed],
  ['val-fraction', (c) => c.train.valFraction],
  ['val-every', (c) => c.train.valEvery],
  ['checkpoint-every', (c) => c.train.checkpointEvery],
]

/** One training pair as read from the file (1-based line number kept for messages). */
export interface TextPair {
  source: string
  target: string
  line: number
}

/** Parses `source<TAB>target` lines (see {@link parseTabLines}). */
export function parsePairs(text: string, path: string): TextPair[] {
  return parseTabLines(text, path, ['source', 'target']).map(({ a, b, line }) => ({ source: a, target: b, line }))
}

/** Token ids of the pairs, encoded once. */
interface EncodedPair {
  source: number[]
  target: number[]
}

function collate(pairs: readonly EncodedPair[]): Seq2SeqBatch {
  return collatePairs(
    pairs.map((p) => [p.source, p.target] as [number[], number[]]),
    { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID },
  )
}

/** Validation figures. */
export interface Seq2SeqMetrics {
  /** Mean cross-entropy per non-padding target token (teacher forced). */
  loss: number
  /** Fraction of non-padding target tokens predicted right (teacher forced). */
  tokenAccuracy: number
  /** Fraction of pairs whose greedy decoding equals the target exactly. */
  exactMatch: number
  count: number
}

/**
 * Teacher-forced loss and token accuracy, and greedy exact match, over `pairs` (eval mode, no
 * gradients). One read of the predictions per batch.
 */
export async function evaluateSeq2Seq(model: Seq2Seq, pairs: readonly EncodedPair[], maxLength: number): Promise<Seq2SeqMetrics> {
  const wasTraining = model.training
  model.eval()
  let lossSum = 0
  let tokens = 0
  let correct = 0
  let exact = 0
  try {
    for (let i = 0; i < pairs.length; i += VAL_BATCH) {
      const chunk = pairs.slice(i, i + VAL_BATCH)
      const b = collate(chunk)
      const { lossT, predT } = noGrad(() =>
        tidy(() => {
          // One teacher-forced pass gives both the loss and the predictions.
          const logits = model.forward(b)
          const [T, B, V] = logits.shape as [number, number, number]
          const lossT = crossEntropy(reshape(logits, [T * B, V]), reshape(b.targetOut!, [T * B]), { ignoreIndex: PAD_ID })
          return { lossT, predT: logits.argmax(2) }
        }),
      )
      const decoded = await model.translate(b.source, b.sourceLengths, { maxLength })
      const n = chunk.reduce((s, p) => s + p.target.length + 1, 0)
      lossSum += (await lossT.item()) * n
      const pred = (await predT.data()) as Int32Array
      dispose([b, lossT, predT])
      const B = chunk.length
      chunk.forEach((p, r) => {
        const want = [...p.target, EOS_ID]
        for (let t = 0; t < want.length; t++) if (pred[t * B + r] === want[t]) correct++
        const got = decoded[r]![0]?.tokens ?? []
        if (got.length === p.target.length && got.every((x, k) => x === p.target[k])) exact++
      })
      tokens += n
    }
  } finally {
    model.train(wasTraining)
  }
  return { loss: lossSum / Math.max(1, tokens), tokenAccuracy: correct / Math.max(1, tokens), exactMatch: exact / Math.max(1, pairs.length), count: pairs.length }
}

/** What the command writes to. */
export interface Seq2SeqIO {
  out: Writer
  tty: boolean
  columns?: number
}

/** Checks a train-seq2seq checkpoint's parts and rebuilds its vocabularies. */
export function seq2seqCheckpointParts(ck: Checkpoint): { config: TrainSeq2SeqConfig; source: TokenVocab; target: TokenVocab } {
  const bad = (why: string) => new CliError(`'${ck.path}' is not a train-seq2seq checkpoint: ${why}`)
  const config = ck.config as Partial<TrainSeq2SeqConfig> | null
  if (!config || typeof config !== 'object' || config.kind !== TRAIN_SEQ2SEQ_KIND || !config.model || !config.train) {
    const kind = config && typeof config === 'object' && typeof config.kind === 'string' ? ` (it is a '${config.kind.replace(/^recurrent\./, '')}' checkpoint)` : ''
    throw bad(`its config has no seq2seq model${kind}`)
  }
  const meta = ck.metadata as { sourceVocab?: TokenVocabJSON; targetVocab?: TokenVocabJSON } | null
  let source: TokenVocab
  let target: TokenVocab
  try {
    source = TokenVocab.fromJSON(meta?.sourceVocab)
    target = TokenVocab.fromJSON(meta?.targetVocab)
  } catch (e) {
    throw bad(`its vocabularies are invalid (${(e as Error).message.split('\n')[0]})`)
  }
  if (config.model.sourceVocabSize !== source.size || config.model.targetVocabSize !== target.size) {
    throw bad(`the model's vocabulary sizes (${config.model.sourceVocabSize}, ${config.model.targetVocabSize}) differ from the stored vocabularies (${source.size}, ${target.size})`)
  }
  return { config: config as TrainSeq2SeqConfig, source, target }
}

/** Builds the model of a checkpoint's config (weights not loaded). */
export function buildSeq2Seq(m: Seq2SeqConfig): Seq2Seq {
  const o = {
    sourceVocabSize: m.sourceVocabSize,
    targetVocabSize: m.targetVocabSize,
    hiddenSize: m.hiddenSize,
    embeddingDim: m.embeddingDim,
    numLayers: m.numLayers,
    cell: m.cell,
    bidirectional: m.bidirectional,
    attention: m.attention,
    attentionSize: m.attentionSize,
    dropout: m.dropout,
  }
  return new Seq2Seq(m.seed === null ? o : { ...o, seed: m.seed })
}

/** Runs `recurrent train-seq2seq`; returns the exit status. */
export async function trainSeq2SeqCommand(argv: readonly string[], io: Seq2SeqIO): Promise<number> {
  const args = parseArgs('train-seq2seq', argv, SEQ2SEQ_FLAGS)
  if (args.values.help) {
    io.out.write(SEQ2SEQ_HELP)
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
  let prev: TrainSeq2SeqConfig | null = null
  let vocabs: { source: TokenVocab; target: TokenVocab } | null = null
  if (v.resume) {
    if (!existsSync(ckFile)) throw new CliError(`--resume: no checkpoint at '${ckFile}' (start a run with --out ${outDir} first)`)
    resumeCk = await readCheckpoint(ckFile)
    const parts = seq2seqCheckpointParts(resumeCk)
    prev = parts.config
    vocabs = { source: parts.source, target: parts.target }
    for (const [flag, get] of RUN_FLAGS) {
      if (given.has(flag) && v[flag] !== get(prev)) {
        throw new UsageError(`--${flag} ${String(v[flag])} differs from the checkpoint's ${String(get(prev))}: --resume continues a run with its own settings (drop --${flag}, or start a new run in another --out)`)
      }
    }
  }
  const pairsPath = v.pairs !== undefined ? String(v.pairs) : prev ? prev.pairs.path : null
  if (pairsPath === null) throw new UsageError('--pairs FILE is required (one `source<TAB>target` pair per line)')
  const text = await readText(pairsPath, '--pairs')
  const sha256 = createHash('sha256').update(text).digest('hex')
  if (prev && sha256 !== prev.pairs.sha256) throw new CliError(`--pairs '${pairsPath}' is not the file the checkpoint was trained on ('${prev.pairs.path}', ${fmtInt(prev.pairs.count)} pairs)`)
  const pairs = parsePairs(text, pairsPath)

  const tokens = prev ? prev.tokens : (String(v.tokens) as 'char' | 'word')
  const seed = prev ? prev.train.seed : Number(v.seed)
  const batch = prev ? prev.train.batch : Number(v.batch)
  const lr = prev ? prev.train.lr : Number(v.lr)
  const clip = prev ? prev.train.clip : Number(v.clip)
  const teacherForcing = prev ? prev.train.teacherForcing : Number(v['teacher-forcing'])
  const valFraction = prev ? prev.train.valFraction : Number(v['val-fraction'])
  const valEvery = prev ? prev.train.valEvery : Number(v['val-every'])
  const ckEvery = prev ? prev.train.checkpointEvery : Number(v['checkpoint-every'])

  // ---- split and vocabularies
  const split = permutation(pairs.length, seed)
  let nVal = valFraction > 0 ? Math.floor(pairs.length * valFraction) : 0
  if (valFraction > 0 && nVal < 1) throw new CliError(`--pairs '${pairsPath}' has ${pairs.length} pair(s): too few to hold out --val-fraction ${valFraction} (use --val-fraction 0)`)
  if (pairs.length - nVal < 1) nVal = pairs.length - 1
  const valText = [...split.subarray(0, nVal)].map((i) => pairs[i]!)
  const trainText = [...split.subarray(nVal)].map((i) => pairs[i]!)
  vocabs ??= {
    source: TokenVocab.build(trainText.map((p) => p.source), { mode: tokens }),
    target: TokenVocab.build(trainText.map((p) => p.target), { mode: tokens }),
  }
  const { source: sv, target: tv } = vocabs
  const encode = (p: TextPair): EncodedPair => ({ source: sv.encode(p.source), target: tv.encode(p.target) })
  const train = trainText.map(encode)
  const val = valText.slice(0, VAL_MAX_PAIRS).map(encode)
  for (const [i, p] of train.entries()) {
    if (p.source.length === 0 || p.target.length === 0) throw new CliError(`${pairsPath}:${trainText[i]!.line}: the pair has no ${p.source.length === 0 ? 'source' : 'target'} tokens`)
  }
  // How far: --steps (or, resuming, the run's own --steps), and/or a time budget.
  const target = v.steps !== undefined ? Number(v.steps) : (prev?.train.plannedSteps ?? null)
  const minutes = v.minutes !== undefined ? Number(v.minutes) : target === null ? SEQ2SEQ_DEFAULTS.minutes : undefined
  const capSec = minutes !== undefined ? minutes * 60 : null
  const maxTargetTokens = prev ? prev.train.maxTargetTokens : Math.max(...train.map((p) => p.target.length))
  const maxLength = 2 * maxTargetTokens + 2

  const modelCfg: Seq2SeqConfig = prev
    ? prev.model
    : {
        sourceVocabSize: sv.size,
        targetVocabSize: tv.size,
        hiddenSize: Number(v.hidden),
        embeddingDim: Number(v.embedding),
        numLayers: Number(v.layers),
        cell: String(v.cell) as Seq2SeqCell,
        bidirectional: v.bidirectional === true,
        attention: String(v.attention) as Seq2SeqAttention,
        attentionSize: Number(v.hidden),
        dropout: Number(v.dropout),
        seed,
      }
  const config: TrainSeq2SeqConfig = {
    kind: TRAIN_SEQ2SEQ_KIND,
    model: modelCfg,
    tokens,
    train: { batch, lr, clip, teacherForcing, seed, valFraction, valEvery, checkpointEvery: ckEvery, maxTargetTokens, plannedSteps: target },
    pairs: prev ? prev.pairs : { path: resolve(pairsPath), count: pairs.length, sha256 },
  }

  makeOutDir(outDir)
  const stale = removeStaleTemps(outDir)
  if (stale.length > 0) print(`  removed ${stale.length} temporary file(s) left by an interrupted run: ${stale.join(', ')}`)

  // ---- model and optimizer
  const model = buildSeq2Seq(modelCfg)
  manualSeed(seed)
  const opt = new Adam(model.parameters(), { lr })
  const start = resumeCk?.step ?? 0
  if (resumeCk) resumeCk.restore(model, opt)
  const curve = prev ? curveFrom((resumeCk!.metadata as { curve?: unknown } | null)?.curve, start) : { train: [], val: [], score: [] }
  const metadata = { sourceVocab: sv.toJSON(), targetVocab: tv.toJSON(), curve }

  const order = new BatchOrder(train.length, batch, seed)
  const logEvery = v['log-every'] !== undefined ? Number(v['log-every']) : 50

  print(`recurrent train-seq2seq: ${pairsPath}`)
  print(`  pairs: ${fmtInt(pairs.length)}; ${fmtInt(train.length)} for training, ${fmtInt(nVal)} held out${nVal > val.length ? ` (${fmtInt(val.length)} validated)` : ''}; ${tokens} tokens, vocabularies ${sv.size} → ${tv.size}`)
  print(
    `  model: ${modelCfg.cell.toUpperCase()} ${modelCfg.numLayers}×${modelCfg.hiddenSize}${modelCfg.bidirectional ? ' bidirectional encoder' : ''}, attention ${modelCfg.attention}, embedding ${modelCfg.embeddingDim}; ${fmtInt(model.numParameters())} parameters`,
  )
  print(`  training: batch ${batch} (${fmtInt(order.stepsPerEpoch)} steps/epoch), Adam lr ${lr}, clip ${clip || 'off'}, teacher forcing ${teacherForcing}, seed ${seed}`)
  const planText = [target !== null ? `to step ${fmtInt(target)}` : null, capSec !== null ? `at most ${fmtDuration(capSec)}` : null].filter(Boolean).join(', ')
  print(`  plan: ${prev ? `resuming at step ${fmtInt(start)}, ` : ''}${planText}; checkpoint every ${fmtInt(ckEvery)} steps → ${ckFile}`)
  if (!prev && existsSync(ckFile)) print(`  note: starting a new run; it replaces ${ckFile} (use --resume to continue that run instead)`)

  const params = model.parameters()
  let lastMetrics: Seq2SeqMetrics | null = null
  const r = await runSteps({
    out: io.out,
    tty: io.tty,
    columns: io.columns,
    start,
    resumed: resumeCk !== null,
    target,
    capSec,
    valEvery,
    checkpointEvery: ckEvery,
    logEvery,
    curve,
    svg: { file: svgFile, title: `seq2seq ${modelCfg.cell.toUpperCase()} ${modelCfg.numLayers}×${modelCfg.hiddenSize}, attention ${modelCfg.attention}`, yLabel: 'cross-entropy per target token (nats)' },
    trainStep: async (step) => {
      model.train()
      const chunk = [...order.rows(step)].map((i) => train[i]!)
      // lossAsync: the decoder's graph is built with turns for the event loop.
      const lossT: Tensor = await tidyAsync(async () => {
        const l = await model.lossAsync(collate(chunk), { teacherForcing })
        l.backward()
        return l
      })
      if (clip > 0) clipGradNorm(params, clip).dispose()
      await opt.step()
      opt.zeroGrad()
      const loss = await lossT.item()
      lossT.dispose()
      return { loss, tokens: chunk.reduce((s, p) => s + p.source.length + p.target.length + 1, 0) }
    },
    validate: async () => {
      if (val.length === 0) return null
      const m = await evaluateSeq2Seq(model, val, maxLength)
      lastMetrics = m
      return {
        loss: m.loss,
        score: m.exactMatch,
        line: `loss ${m.loss.toFixed(4)}, token accuracy ${(100 * m.tokenAccuracy).toFixed(2)}%, exact match ${(100 * m.exactMatch).toFixed(2)}% (${fmtInt(m.count)} pairs)`,
      }
    },
    checkpoint: async (step) => {
      try {
        await saveCheckpoint(ckFile, { model, optimizer: opt, step, config, metadata })
      } catch (e) {
        throw new CliError(`cannot write checkpoint '${ckFile}': ${fsReason(e)}`, { cause: e })
      }
    },
  })
  print()
  if (r.stopWhy) print(`stopped: ${r.stopWhy} at step ${fmtInt(r.step)}`)
  if (r.step > start) print(`trained: steps ${fmtInt(start)} → ${fmtInt(r.step)} (${(r.step / order.stepsPerEpoch).toFixed(2)} epochs) in ${fmtDuration(r.seconds)}, ${fmtSI(r.tokens / Math.max(1e-9, r.seconds))} tokens/s`)
  const fv = lastMetrics as Seq2SeqMetrics | null
  if (fv && r.validation) print(`validation: exact match ${(100 * fv.exactMatch).toFixed(2)}%, token accuracy ${(100 * fv.tokenAccuracy).toFixed(2)}%, loss ${fv.loss.toFixed(4)} on ${fmtInt(fv.count)} held-out pairs`)
  print(`checkpoint: ${ckFile} (step ${fmtInt(r.lastCheckpoint)})`)
  print(`loss curve: ${svgFile}`)
  if (val.length > 0) {
    const show = val.slice(0, 5)
    const decoded = await translateIds(model, show.map((p) => p.source), { beamWidth: 1, nBest: 1, maxLength })
    print('held-out examples (source → output | target):')
    show.forEach((p, i) => print(`  ${sv.decode(p.source)} → ${tv.decode(decoded[i]![0]!.tokens)} | ${tv.decode(p.target)}`))
  }
  return r.stopWhy === 'interrupted' ? 130 : 0
}

/** Options of {@link translateIds}. */
export interface TranslateIdsOptions {
  beamWidth: number
  nBest: number
  maxLength: number
  lengthPenalty?: number
}

/**
 * Decodes source id sequences (greedy at width 1, else beam search): per source, its n best
 * `{ tokens, score }`.
 */
export async function translateIds(model: Seq2Seq, sources: readonly number[][], o: TranslateIdsOptions): Promise<Hypothesis[][]> {
  const b = collatePairs(
    sources.map((s) => [s, []] as [number[], number[]]),
    { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID },
  )
  try {
    return await model.translate(b.source, b.sourceLengths, { beamWidth: o.beamWidth, nBest: o.nBest, maxLength: o.maxLength, lengthPenalty: o.lengthPenalty ?? 0 })
  } finally {
    dispose(b)
  }
}
