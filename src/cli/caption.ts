/**
 * `recurrent caption`: captions image files with a `train-caption` checkpoint, printing
 * `filename<TAB>caption` per image; `--attention-map DIR` also writes, per image, a PNG with
 * one panel per word showing where the model looked.
 */

import { basename, join } from 'node:path'
import type { Tensor } from '../tensor.js'
import { readImage, writePng } from '../data/image.js'
import { loadSafetensors } from '../io/safetensors.js'
import { attentionPanels } from '../seq2seq/captioning.js'
import { CliError, helpText, parseArgs, UsageError, type FlagSpec } from './args.js'
import { makeOutDir, oneLine, readCheckpoint, resolveCheckpointPath } from './common.js'
import { buildCaptioner, captionCheckpointParts } from './train-caption.js'

export const CAPTION_CMD_FLAGS: readonly FlagSpec[] = [
  { name: 'checkpoint', type: 'string', metavar: 'PATH', default: './checkpoints/caption', help: 'a train-caption --out folder (its checkpoint.safetensors) or a checkpoint file' },
  { name: 'beam', type: 'int', min: 1, default: 1, help: 'beam width (1: greedy decoding)' },
  { name: 'features', type: 'string', metavar: 'FILE', help: 'for a model trained on features: the safetensors file holding one tensor per image name' },
  { name: 'attention-map', type: 'string', metavar: 'DIR', help: 'write DIR/<image>.attention.png: one panel per word, the image lit where the model looked' },
]

export const CAPTION_CMD_HELP = helpText(
  'Usage: recurrent caption --checkpoint DIR [--beam K] [--attention-map OUT_DIR] IMAGE...',
  'Captions each image with a model trained by `recurrent train-caption`; prints filename<TAB>caption.',
  CAPTION_CMD_FLAGS,
)

/** Runs `recurrent caption`; returns the exit status. */
export async function captionCommand(argv: readonly string[], out: { write(s: string): unknown }): Promise<number> {
  const args = parseArgs('caption', argv, CAPTION_CMD_FLAGS, Number.MAX_SAFE_INTEGER)
  if (args.values.help) {
    out.write(CAPTION_CMD_HELP)
    return 0
  }
  const files = args.positional
  if (files.length === 0) throw new UsageError('give one or more image files to caption')
  const v = args.values
  const ck = await readCheckpoint(resolveCheckpointPath(String(v.checkpoint)))
  const { config, vocab } = captionCheckpointParts(ck)
  const model = buildCaptioner(config.model)
  model.loadStateDict(ck.model)
  for (const t of Object.values(ck.tensors)) t.dispose()
  model.eval()
  const mapDir = v['attention-map'] !== undefined ? String(v['attention-map']) : null
  if (mapDir !== null) makeOutDir(mapDir, '--attention-map')
  let features: Record<string, Tensor> | null = null
  if (config.model.featureSize !== null) {
    if (v.features === undefined) throw new UsageError('this model was trained on precomputed features: give --features FILE.safetensors')
    features = (
      await loadSafetensors(String(v.features)).catch((e: unknown) => {
        throw new CliError(`cannot load --features '${String(v.features)}': ${oneLine((e as Error).message)}`, { cause: e })
      })
    ).tensors
  }
  for (const file of files) {
    let input: Tensor
    if (features !== null) {
      const t = features[basename(file)] ?? features[file]
      if (!t) throw new CliError(`--features has no tensor named '${basename(file)}'`)
      input = t.reshape(1, ...(t.rank === 1 ? [1, t.shape[0]!] : t.shape))
    } else {
      try {
        const img = await readImage(file, { size: config.imageSize })
        input = img.reshape(1, ...img.shape)
        img.dispose()
      } catch (e) {
        throw new CliError(oneLine((e as Error).message), { cause: e })
      }
    }
    const [best] = (await model.caption(input, { maxLength: config.train.maxCaptionTokens + 5, beamWidth: Number(v.beam) }))[0]!
    out.write(`${file}\t${vocab.decode(best!.tokens)}\n`)
    if (mapDir !== null && features === null) {
      const [, , H, W] = input.shape as [number, number, number, number]
      const pixels = (await input.data()) as Float32Array
      const panels = attentionPanels(pixels, H, W, best!)
      await writePng(join(mapDir, `${basename(file)}.attention.png`), panels)
      panels.dispose()
    }
    input.dispose()
  }
  return 0
}
