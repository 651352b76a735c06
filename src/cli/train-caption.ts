/**
 * `recurrent train-caption`: trains an `ImageCaptioner` (CNN encoder from pixels, or
 * precomputed features, and an attending LSTM decoder) on a folder of images and a
 * `filename<TAB>caption` file, holding out a fraction of the images. Progress, validation
 * exact-caption rate and BLEU-4, atomic checkpoints (resumable bit-identically) and a loss
 * curve.
 */

import { existsSync, statSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import type { Tensor } from '../tensor.js'
import { manualSeed } from '../ops/random.js'
import { concat } from '../ops/shape.js'
import { tensor } from '../ops/factories.js'
import { indexSelect } from '../ops/index_ops.js'
import { noGrad } from '../ops/grad.js'
import { dispose, keep, tidy, tidyAsync } from '../scope.js'
import { Adam } from '../optim/adam.js'
import { clipGradNorm } from '../optim/clip.js'
import { TokenVocab, type TokenVocabJSON } from '../data/vocab.js'
import { padSequences } from '../data/pad.js'
import { readImages } from '../data/image.js'
import { loadSafetensors } from '../io/safetensors.js'
import { saveCheckpoint, type Checkpoint } from '../train/checkpoint.js'
import { ImageCaptioner, type CaptionBatch, type ImageCaptionerConfig } from '../seq2seq/captioning.js'
import { BOS_ID, EOS_ID } from '../seq2seq/decoder.js'
import { corpusBleu } from '../seq2seq/metrics.js'
import { CliError, helpText, parseArgs, UsageError, type FlagSpec, type FlagValue } from './args.js'
import { CHECKPOINT_FILE, fmtDuration, fmtInt, fsReason, makeOutDir, oneLine, readCheckpoint, readText, removeStaleTemps } from './common.js'
import type { Writer } from './progress.js'
import { BatchOrder, curveFrom, parseTabLines, permutation, runFlags, runSteps } from './run-loop.js'

/** The `kind` of a train-caption checkpoint's config. */
export const TRAIN_CAPTION_KIND = 'recurrent.train-caption'

export const CAPTION_DEFAULTS = {
  imageSize: 64,
  channels: '32,64,96',
  hidden: 256,
  embedding: 64,
  attention: 'bahdanau',
  batch: 32,
  lr: 2e-3,
  clip: 5,
  valFraction: 0.1,
  seed: 1,
  minutes: 1,
} as const

export const CAPTION_FLAGS: readonly FlagSpec[] = [
  { name: 'images', type: 'string', metavar: 'DIR', help: 'folder of the images (PNG or JPEG) the captions name' },
  { name: 'captions', type: 'string', metavar: 'FILE', help: 'one `filename<TAB>caption` per line; an image may have several' },
  { name: 'features', type: 'string', metavar: 'FILE', help: 'precomputed features instead of the CNN: a safetensors file with one tensor [R, D] or [D] per image filename' },
  { name: 'out', type: 'string', metavar: 'DIR', default: './checkpoints/caption', help: 'folder for checkpoint.safetensors and loss.svg' },
  { name: 'image-size', type: 'int', min: 8, default: CAPTION_DEFAULTS.imageSize, help: 'images are resized (shorter side) and centre-cropped to N×N' },
  { name: 'channels', type: 'string', metavar: 'LIST', default: CAPTION_DEFAULTS.channels, help: 'output channels of the CNN blocks (conv3×3–BN–ReLU–maxpool2), comma-separated' },
  { name: 'hidden', type: 'int', min: 1, default: CAPTION_DEFAULTS.hidden, help: 'hidden size of the LSTM decoder' },
  { name: 'embedding', type: 'int', min: 1, default: CAPTION_DEFAULTS.embedding, help: 'word embedding size' },
  { name: 'attention', type: 'string', choices: ['bahdanau', 'luong', 'dot'], default: CAPTION_DEFAULTS.attention, help: 'attention over the image regions' },
  ...runFlags(CAPTION_DEFAULTS, 'captions', 'images'),
]

export const CAPTION_HELP = helpText(
  'Usage: recurrent train-caption --images DIR --captions FILE.tsv [--features FILE.safetensors] [--out DIR] [--minutes X | --steps N] [--image-size N]',
  [
    'Trains an image captioner: a small CNN (or precomputed features) and an LSTM decoder that attends',
    'over the image regions at every word. Validates the exact-caption rate and BLEU-4 on held-out',
    'images, writes DIR/checkpoint.safetensors (atomically; resumable with --resume) and DIR/loss.svg.',
    '',
    'Example: recurrent train-caption --images shapes/ --captions shapes/captions.tsv --minutes 5 && recurrent caption --checkpoint ./checkpoints/caption shapes/0001.png',
  ].join('\n'),
  CAPTION_FLAGS,
)

/** The `config` of a train-caption checkpoint. */
export interface TrainCaptionConfig {
  kind: typeof TRAIN_CAPTION_KIND
  model: ImageCaptionerConfig
  imageSize: number
  train: {
    batch: number
    lr: number
    clip: number
    seed: number
    valFraction: number
    valEvery: number
    checkpointEvery: number
    maxCaptionTokens: number
    plannedSteps: number | null
  }
  data: { images: string; captions: string; features: string | null; sha256: string }
}

const RUN_FLAGS: Array<[flag: string, get: (c: TrainCaptionConfig) => FlagValue | undefined]> = [
  ['image-size', (c) => c.imageSize],
  ['channels', (c) => c.model.channels.join(',')],
  ['hidden', (c) => c.model.hiddenSize],
  ['embedding', (c) => c.model.embeddingDim],
  ['attention', (c) => c.model.attention],
  ['batch', (c) => c.train.batch],
  ['lr', (c) => c.train.lr],
  ['clip', (c) => c.train.clip],
  ['seed', (c) => c.train.seed],
  ['val-fraction', (c) => c.train.valFraction],
  ['val-every', (c) => c.train.valEvery],
  ['checkpoint-every', (c) => c.train.checkpointEvery],
]

/** Words of a caption (whitespace-separated, lower case). */
export function captionWords(caption: string): string[] {
  return caption.toLowerCase().split(/\s+/).filter((w) => w.length > 0)
}

/** Reads every image (or its features) into one tensor `[N, ...]`, in order, with one-line errors. */
export async function loadInputs(files: readonly string[], o: { images: string; imageSize: number; features: string | null }): Promise<Tensor> {
  if (o.features !== null) {
    const { tensors } = await loadSafetensors(o.features).catch((e: unknown) => {
      throw new CliError(`cannot load --features '${o.features}': ${oneLine((e as Error).message)}`, { cause: e })
    })
    let shape: readonly number[] | null = null
    for (const f of files) {
      const t = tensors[f]
      if (!t) throw new CliError(`--features '${o.features}' has no tensor named '${f}' (one tensor [R, D] or [D] per image filename)`)
      if (t.rank !== 1 && t.rank !== 2) throw new CliError(`--features '${o.features}': '${f}' is [${t.shape.join(', ')}], expected [R, D] or [D]`)
      if (shape && t.shape.join() !== shape.join()) throw new CliError(`--features '${o.features}': '${f}' is [${t.shape.join(', ')}] but others are [${shape.join(', ')}]`)
      shape = t.shape
    }
    const all = tidy(() =>
      concat(
        files.map((f) => {
          const t = tensors[f]!
          return t.reshape(1, ...(t.rank === 1 ? [1, t.shape[0]!] : t.shape))
        }),
        0,
      ),
    )
    dispose(tensors)
    return all
  }
  const parts: Tensor[] = []
  // In chunks, so that one bad file is named and memory grows by a chunk at a time.
  for (let i = 0; i < files.length; i += 256) {
    const chunk = files.slice(i, i + 256).map((f) => join(o.images, f))
    try {
      parts.push(await readImages(chunk, { size: o.imageSize }))
    } catch (e) {
      dispose(parts)
      throw new CliError(oneLine((e as Error).message), { cause: e })
    }
  }
  const all = parts.length === 1 ? parts[0]! : tidy(() => concat(parts, 0))
  if (parts.length > 1) dispose(parts)
  return all
}

/** A batch of (image row, caption ids) samples. */
function makeBatch(inputs: Tensor, samples: ReadonlyArray<{ image: number; ids: number[] }>): CaptionBatch {
  const rows = tensor(Int32Array.from(samples.map((s) => s.image)), [samples.length], { dtype: 'int32' })
  const targetIn = padSequences(samples.map((s) => [BOS_ID, ...s.ids]))
  const targetOut = padSequences(samples.map((s) => [...s.ids, EOS_ID]))
  return { input: indexSelect(inputs, 0, rows), targetIn: targetIn.data, targetOut: targetOut.data }
}

/** Validation: exact-caption rate (the greedy caption equals one of the references) and BLEU-4. */
export async function evaluateCaptions(
  model: ImageCaptioner,
  inputs: Tensor,
  images: readonly number[],
  refs: readonly string[][][],
  vocab: TokenVocab,
  maxLength: number,
): Promise<{ exact: number; bleu: number; loss: number; outputs: string[][] }> {
  const outputs: string[][] = []
  for (let i = 0; i < images.length; i += 128) {
    const idx = images.slice(i, i + 128)
    const x = noGrad(() => indexSelect(inputs, 0, tensor(Int32Array.from(idx), [idx.length], { dtype: 'int32' })))
    const caps = await model.caption(x, { maxLength })
    x.dispose()
    for (const c of caps) outputs.push(captionWords(vocab.decode(c[0]!.tokens)))
  }
  let exact = 0
  outputs.forEach((o, i) => {
    if (refs[i]!.some((r) => r.join(' ') === o.join(' '))) exact++
  })
  return { exact: exact / Math.max(1, outputs.length), bleu: corpusBleu(outputs, refs), loss: Number.NaN, outputs }
}

/** Checks a train-caption checkpoint and rebuilds its vocabulary. */
export function captionCheckpointParts(ck: Checkpoint): { config: TrainCaptionConfig; vocab: TokenVocab } {
  const bad = (why: string) => new CliError(`'${ck.path}' is not a train-caption checkpoint: ${why}`)
  const config = ck.config as Partial<TrainCaptionConfig> | null
  if (!config || typeof config !== 'object' || config.kind !== TRAIN_CAPTION_KIND || !config.model) {
    const kind = config && typeof config === 'object' && typeof config.kind === 'string' ? ` (it is a '${config.kind.replace(/^recurrent\./, '')}' checkpoint)` : ''
    throw bad(`its config has no captioning model${kind}`)
  }
  let vocab: TokenVocab
  try {
    vocab = TokenVocab.fromJSON((ck.metadata as { vocab?: TokenVocabJSON } | null)?.vocab)
  } catch (e) {
    throw bad(`its vocabulary is invalid (${oneLine((e as Error).message)})`)
  }
  if (config.model.vocabSize !== vocab.size) throw bad(`the model has ${config.model.vocabSize} words but the vocabulary ${vocab.size}`)
  return { config: config as TrainCaptionConfig, vocab }
}

/** The model of a config (weights not loaded). */
export function buildCaptioner(m: ImageCaptionerConfig): ImageCaptioner {
  return new ImageCaptioner({
    vocabSize: m.vocabSize,
    channels: m.channels,
    inChannels: m.inChannels,
    ...(m.featureSize !== null ? { featureSize: m.featureSize } : {}),
    hiddenSize: m.hiddenSize,
    embeddingDim: m.embeddingDim,
    attention: m.attention,
    dropout: m.dropout,
    ...(m.seed !== null ? { seed: m.seed } : {}),
  })
}

/** Runs `recurrent train-caption`; returns the exit status. */
export async function trainCaptionCommand(argv: readonly string[], io: { out: Writer; tty: boolean; columns?: number }): Promise<number> {
  const args = parseArgs('train-caption', argv, CAPTION_FLAGS)
  if (args.values.help) {
    io.out.write(CAPTION_HELP)
    return 0
  }
  const v = args.values
  const print = (s = '') => io.out.write(s + '\n')
  const outDir = String(v.out)
  const ckFile = join(outDir, CHECKPOINT_FILE)
  const svgFile = join(outDir, 'loss.svg')

  let resumeCk: Checkpoint | null = null
  let prev: TrainCaptionConfig | null = null
  let vocab: TokenVocab | null = null
  if (v.resume) {
    if (!existsSync(ckFile)) throw new CliError(`--resume: no checkpoint at '${ckFile}' (start a run with --out ${outDir} first)`)
    resumeCk = await readCheckpoint(ckFile)
    const parts = captionCheckpointParts(resumeCk)
    prev = parts.config
    vocab = parts.vocab
    for (const [flag, get] of RUN_FLAGS) {
      if (args.given.has(flag) && v[flag] !== get(prev)) {
        throw new UsageError(`--${flag} ${String(v[flag])} differs from the checkpoint's ${String(get(prev))}: --resume continues a run with its own settings (drop --${flag}, or start a new run in another --out)`)
      }
    }
  }
  const imagesDir = v.images !== undefined ? String(v.images) : prev ? prev.data.images : null
  const captionsPath = v.captions !== undefined ? String(v.captions) : prev ? prev.data.captions : null
  if (imagesDir === null || captionsPath === null) throw new UsageError('--images DIR and --captions FILE are required')
  const featuresPath = v.features !== undefined ? String(v.features) : (prev?.data.features ?? null)
  try {
    if (!statSync(imagesDir).isDirectory()) throw new CliError(`--images '${imagesDir}' is not a folder`)
  } catch (e) {
    if (e instanceof CliError) throw e
    throw new CliError(`cannot read --images '${imagesDir}': ${fsReason(e)}`, { cause: e })
  }
  const text = await readText(captionsPath, '--captions')
  const sha256 = createHash('sha256').update(text).digest('hex')
  if (prev && sha256 !== prev.data.sha256) throw new CliError(`--captions '${captionsPath}' is not the file the checkpoint was trained on`)
  const lines = parseTabLines(text, captionsPath, ['filename', 'caption'])
  const files: string[] = []
  const fileIndex = new Map<string, number>()
  for (const l of lines) {
    if (!fileIndex.has(l.a)) {
      if (featuresPath === null && !existsSync(join(imagesDir, l.a))) throw new CliError(`${captionsPath}:${l.line}: no image '${l.a}' in '${imagesDir}'`)
      fileIndex.set(l.a, files.length)
      files.push(l.a)
    }
  }
  const seed = prev ? prev.train.seed : Number(v.seed)
  const imageSize = prev ? prev.imageSize : Number(v['image-size'])
  const batch = prev ? prev.train.batch : Number(v.batch)
  const lr = prev ? prev.train.lr : Number(v.lr)
  const clip = prev ? prev.train.clip : Number(v.clip)
  const valFraction = prev ? prev.train.valFraction : Number(v['val-fraction'])
  const valEvery = prev ? prev.train.valEvery : Number(v['val-every'])
  const ckEvery = prev ? prev.train.checkpointEvery : Number(v['checkpoint-every'])
  const channels = prev ? prev.model.channels : String(v.channels).split(',').map((s) => Number(s.trim()))
  if (channels.some((c) => !Number.isInteger(c) || c < 1)) throw new UsageError(`--channels must be a comma-separated list of positive integers, got '${String(v.channels)}'`)
  if (featuresPath === null && imageSize < 2 ** channels.length) throw new UsageError(`--image-size ${imageSize} is too small for ${channels.length} pooling blocks (at least ${2 ** channels.length})`)

  // ---- split by image, vocabulary
  const split = permutation(files.length, seed)
  let nVal = valFraction > 0 ? Math.floor(files.length * valFraction) : 0
  if (valFraction > 0 && nVal < 1) throw new CliError(`--captions '${captionsPath}' names ${files.length} image(s): too few to hold out --val-fraction ${valFraction} (use --val-fraction 0)`)
  if (files.length - nVal < 1) nVal = files.length - 1
  const isVal = new Uint8Array(files.length)
  for (const i of split.subarray(0, nVal)) isVal[i] = 1
  const trainLines = lines.filter((l) => !isVal[fileIndex.get(l.a)!])
  vocab ??= TokenVocab.build(
    trainLines.map((l) => captionWords(l.b).join(' ')),
    { mode: 'word' },
  )
  const samples = trainLines.map((l) => ({ image: fileIndex.get(l.a)!, ids: vocab!.encode(captionWords(l.b).join(' ')) }))
  const valImages = [...split.subarray(0, nVal)]
  const refsOf = new Map<number, string[][]>()
  for (const l of lines) {
    const i = fileIndex.get(l.a)!
    if (!isVal[i]) continue
    if (!refsOf.has(i)) refsOf.set(i, [])
    refsOf.get(i)!.push(captionWords(l.b))
  }
  const valRefs = valImages.map((i) => refsOf.get(i)!)
  const maxCaptionTokens = prev ? prev.train.maxCaptionTokens : Math.max(...samples.map((s) => s.ids.length))
  const maxLength = maxCaptionTokens + 5

  print(`recurrent train-caption: ${captionsPath}`)
  print(`  data: ${fmtInt(files.length)} images, ${fmtInt(lines.length)} captions; ${fmtInt(files.length - nVal)} images for training (${fmtInt(samples.length)} captions), ${fmtInt(nVal)} held out; ${vocab.size} words`)
  const tLoad = performance.now()
  const inputs = keep(await loadInputs(files, { images: imagesDir, imageSize, features: featuresPath }))
  print(`  ${featuresPath ? `features from ${featuresPath}` : `images ${imageSize}×${imageSize}`}: [${inputs.shape.join(', ')}] read in ${fmtDuration((performance.now() - tLoad) / 1000)}`)

  const target = v.steps !== undefined ? Number(v.steps) : (prev?.train.plannedSteps ?? null)
  const minutes = v.minutes !== undefined ? Number(v.minutes) : target === null ? CAPTION_DEFAULTS.minutes : undefined
  const capSec = minutes !== undefined ? minutes * 60 : null
  const modelCfg: ImageCaptionerConfig = prev
    ? prev.model
    : {
        vocabSize: vocab.size,
        channels,
        inChannels: featuresPath ? 3 : inputs.shape[1]!,
        featureSize: featuresPath ? inputs.shape[inputs.rank - 1]! : null,
        hiddenSize: Number(v.hidden),
        embeddingDim: Number(v.embedding),
        attention: String(v.attention) as ImageCaptionerConfig['attention'],
        dropout: 0,
        seed,
      }
  const config: TrainCaptionConfig = {
    kind: TRAIN_CAPTION_KIND,
    model: modelCfg,
    imageSize,
    train: { batch, lr, clip, seed, valFraction, valEvery, checkpointEvery: ckEvery, maxCaptionTokens, plannedSteps: target },
    data: prev ? prev.data : { images: resolve(imagesDir), captions: resolve(captionsPath), features: featuresPath ? resolve(featuresPath) : null, sha256 },
  }
  makeOutDir(outDir)
  const stale = removeStaleTemps(outDir)
  if (stale.length > 0) print(`  removed ${stale.length} temporary file(s) left by an interrupted run: ${stale.join(', ')}`)

  const model = buildCaptioner(modelCfg)
  manualSeed(seed)
  const opt = new Adam(model.parameters(), { lr })
  const start = resumeCk?.step ?? 0
  if (resumeCk) resumeCk.restore(model, opt)
  const curve = prev ? curveFrom((resumeCk!.metadata as { curve?: unknown } | null)?.curve, start) : { train: [], val: [], score: [] }
  const metadata = { vocab: vocab.toJSON(), curve }
  const order = new BatchOrder(samples.length, batch, seed)
  print(`  model: ${modelCfg.featureSize === null ? `CNN [${channels.join(', ')}]` : `features ${modelCfg.featureSize}`} → LSTM ${modelCfg.hiddenSize} with ${modelCfg.attention} attention; ${fmtInt(model.numParameters())} parameters`)
  print(`  training: batch ${batch} (${fmtInt(order.stepsPerEpoch)} steps/epoch), Adam lr ${lr}, clip ${clip || 'off'}, seed ${seed}`)
  const planText = [target !== null ? `to step ${fmtInt(target)}` : null, capSec !== null ? `at most ${fmtDuration(capSec)}` : null].filter(Boolean).join(', ')
  print(`  plan: ${prev ? `resuming at step ${fmtInt(start)}, ` : ''}${planText}; checkpoint every ${fmtInt(ckEvery)} steps → ${ckFile}`)

  const params = model.parameters()
  let last: { exact: number; bleu: number } | null = null
  try {
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
      logEvery: v['log-every'] !== undefined ? Number(v['log-every']) : 50,
      curve,
      svg: { file: svgFile, title: `captioner: ${modelCfg.featureSize === null ? 'CNN' : 'features'} → LSTM ${modelCfg.hiddenSize}`, yLabel: 'cross-entropy per word (nats)' },
      trainStep: async (step) => {
        model.train()
        const chunk = [...order.rows(step)].map((i) => samples[i]!)
        const lossT = await tidyAsync(async () => {
          const l = await model.lossAsync(makeBatch(inputs, chunk))
          l.backward()
          return l
        })
        if (clip > 0) clipGradNorm(params, clip).dispose()
        await opt.step()
        opt.zeroGrad()
        const loss = await lossT.item()
        lossT.dispose()
        return { loss, tokens: chunk.reduce((s, c) => s + c.ids.length + 1, 0) }
      },
      validate: async () => {
        if (valImages.length === 0) return null
        const m = await evaluateCaptions(model, inputs, valImages, valRefs, vocab!, maxLength)
        // The validation loss: teacher forced over the first reference of each held-out image.
        const vs = valImages.map((i, k) => ({ image: i, ids: vocab!.encode(valRefs[k]![0]!.join(' ')) }))
        // In eval mode: a batch-norm layer in training mode would move its running statistics.
        model.eval()
        const lossT = noGrad(() => tidy(() => model.loss(makeBatch(inputs, vs))))
        model.train()
        const loss = await lossT.item()
        lossT.dispose()
        last = m
        return { loss, score: m.exact, line: `loss ${loss.toFixed(4)}, exact caption ${(100 * m.exact).toFixed(2)}%, BLEU-4 ${(100 * m.bleu).toFixed(2)} (${fmtInt(valImages.length)} images)` }
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
    if (r.step > start) print(`trained: steps ${fmtInt(start)} → ${fmtInt(r.step)} (${(r.step / order.stepsPerEpoch).toFixed(2)} epochs) in ${fmtDuration(r.seconds)}`)
    const lv = last as { exact: number; bleu: number } | null
    if (lv && r.validation) print(`validation: exact caption ${(100 * lv.exact).toFixed(2)}%, BLEU-4 ${(100 * lv.bleu).toFixed(2)} on ${fmtInt(valImages.length)} held-out images`)
    print(`checkpoint: ${ckFile} (step ${fmtInt(r.lastCheckpoint)})`)
    print(`loss curve: ${svgFile}`)
    return r.stopWhy === 'interrupted' ? 130 : 0
  } finally {
    inputs.dispose()
  }
}
