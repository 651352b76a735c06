/**
 * Example: image captioning from pixels. Generates coloured shapes (circle, square, triangle)
 * on 64×64 PNGs with captions such as "a red circle left of a blue square", reads them at
 * 32×32, trains an `ImageCaptioner` (a small CNN and an LSTM decoder attending over the 4×4 grid
 * of regions), reports the exact-caption rate on held-out images, and writes one attention-map
 * picture.
 *
 *   npm run example:shapes
 *
 * `makeShapes` and `trainShapes` are exported for the test suite, which runs a reduced version.
 */

import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  Adam,
  BOS_ID,
  EOS_ID,
  ImageCaptioner,
  TokenVocab,
  attentionPanels,
  clipGradNorm,
  dispose,
  indexSelect,
  manualSeed,
  noGrad,
  padSequences,
  readImages,
  tensor,
  tidy,
  writePng,
} from 'recurrent-nn'

const COLORS: Record<string, [number, number, number]> = {
  red: [0.9, 0.12, 0.1],
  green: [0.15, 0.7, 0.2],
  blue: [0.12, 0.25, 0.9],
  yellow: [0.95, 0.8, 0.1],
}
const SHAPES = ['circle', 'square', 'triangle'] as const

function generator(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

function inside(shape: (typeof SHAPES)[number], dx: number, dy: number, r: number): boolean {
  if (shape === 'circle') return dx * dx + dy * dy <= r * r
  if (shape === 'square') return Math.abs(dx) <= 0.8 * r && Math.abs(dy) <= 0.8 * r
  return dy <= 0.8 * r && dy >= -r && Math.abs(dx) <= (dy + r) / 1.8
}

/** One scene: pixels `[3, S, S]` in [0, 1] and its two captions (the relation both ways). */
function scene(rand: () => number, S: number): { pixels: Float32Array; captions: [string, string] } {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!
  const colors = Object.keys(COLORS)
  let a: [string, (typeof SHAPES)[number]]
  let b: [string, (typeof SHAPES)[number]]
  do {
    a = [pick(colors), pick(SHAPES)]
    b = [pick(colors), pick(SHAPES)]
  } while (a[0] === b[0] && a[1] === b[1])
  const horizontal = rand() < 0.5
  const r = S * (0.11 + 0.03 * rand())
  const near = () => S * (0.2 + 0.12 * rand())
  const far = () => S * (0.68 + 0.12 * rand())
  const free = () => S * (0.25 + 0.5 * rand())
  const pa = horizontal ? [near(), free()] : [free(), near()]
  const pb = horizontal ? [far(), free()] : [free(), far()]
  const pixels = new Float32Array(3 * S * S)
  for (let i = 0; i < S * S; i++) for (let c = 0; c < 3; c++) pixels[c * S * S + i] = 0.92 + 0.06 * rand()
  for (const [[color, shape], [cx, cy]] of [
    [a, pa],
    [b, pb],
  ] as const) {
    const rgb = COLORS[color]!
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        if (inside(shape, x + 0.5 - cx!, y + 0.5 - cy!, r)) for (let c = 0; c < 3; c++) pixels[c * S * S + y * S + x] = rgb[c]!
      }
    }
  }
  const [rel, inv] = horizontal ? ['left of', 'right of'] : ['above', 'below']
  return { pixels, captions: [`a ${a[0]} ${a[1]} ${rel} a ${b[0]} ${b[1]}`, `a ${b[0]} ${b[1]} ${inv} a ${a[0]} ${a[1]}`] }
}

/** Writes `count` scenes as `dir/0000.png`… and `dir/captions.tsv` (two captions per image). */
export async function makeShapes(dir: string, count: number, options: { size?: number; seed?: number } = {}): Promise<{ files: string[]; captions: string[][] }> {
  const S = options.size ?? 64
  const rand = generator(options.seed ?? 1)
  mkdirSync(dir, { recursive: true })
  const files: string[] = []
  const captions: string[][] = []
  const lines: string[] = []
  for (let i = 0; i < count; i++) {
    const s = scene(rand, S)
    const name = `${String(i).padStart(4, '0')}.png`
    const t = tensor(s.pixels, [3, S, S])
    await writePng(join(dir, name), t)
    t.dispose()
    files.push(name)
    captions.push(s.captions)
    for (const c of s.captions) lines.push(`${name}\t${c}`)
  }
  writeFileSync(join(dir, 'captions.tsv'), lines.join('\n') + '\n')
  return { files, captions }
}

/** Options of {@link trainShapes}. */
export interface ShapesOptions {
  /** Images generated (default 2000); a tenth is held out. */
  count?: number
  /** Side of the generated PNGs (default 64). */
  size?: number
  /**
   * Side the images are resized to when read (default 32): the model sees 32×32 pixels, a 4×4
   * grid of regions after its three blocks; 64 gives 8×8 regions and four times the work per step.
   */
  inputSize?: number
  /** Output channels of the CNN's three blocks (default [16, 32, 64]: a 64×64 image → 8×8 regions). */
  channels?: number[]
  /** The decoder's hidden size (default 128). */
  hiddenSize?: number
  /** Stop once the held-out exact-caption rate reaches this (default 0.9). */
  targetAccuracy?: number
  maxSteps?: number
  maxSeconds?: number
  evalEvery?: number
  seed?: number
  /** Where the PNGs, captions and the attention map go (default `.tmp/shapes`). */
  dir?: string
  log?: (line: string) => void
}

/** Generates the images, trains the captioner from their pixels, and reports the held-out rate. */
export async function trainShapes(o: ShapesOptions = {}): Promise<{ exact: number; steps: number; seconds: number; examples: string[]; attentionMap: string }> {
  const dir = o.dir ?? join('.tmp', 'shapes')
  const count = o.count ?? 2000
  const seed = o.seed ?? 1
  const log = o.log ?? (() => {})
  const { files, captions } = await makeShapes(dir, count, { size: o.size ?? 64, seed })
  const images = await readImages(
    files.map((f) => join(dir, f)),
    { size: o.inputSize ?? 32 },
  )
  const nVal = Math.max(1, Math.floor(count / 10))
  const vocab = TokenVocab.build(captions.flat(), { mode: 'word' })
  manualSeed(seed)
  const model = new ImageCaptioner({ vocabSize: vocab.size, channels: o.channels ?? [16, 32, 64], hiddenSize: o.hiddenSize ?? 128, seed })
  const opt = new Adam(model.parameters(), { lr: 2e-3 })
  const params = model.parameters()
  const train: Array<{ image: number; ids: number[] }> = []
  for (let i = nVal; i < count; i++) for (const c of captions[i]!) train.push({ image: i, ids: vocab.encode(c) })
  const rand = generator(seed + 1)
  const evaluate = async () => {
    const idx = tensor(Int32Array.from({ length: nVal }, (_, i) => i), [nVal], { dtype: 'int32' })
    const x = noGrad(() => indexSelect(images, 0, idx))
    const caps = await model.caption(x, { maxLength: 12 })
    dispose([idx, x])
    const outs = caps.map((c) => vocab.decode(c[0]!.tokens))
    return { exact: outs.filter((s, i) => captions[i]!.includes(s)).length / nVal, outs }
  }
  const t0 = performance.now()
  const seconds = () => (performance.now() - t0) / 1000
  let step = 0
  let last = { exact: 0, outs: [] as string[] }
  while (step < (o.maxSteps ?? 3000) && seconds() < (o.maxSeconds ?? 900)) {
    const batch = Array.from({ length: 32 }, () => train[Math.floor(rand() * train.length)]!)
    const loss = tidy(() => {
      const rows = tensor(Int32Array.from(batch.map((b) => b.image)), [batch.length], { dtype: 'int32' })
      const l = model.loss({
        input: indexSelect(images, 0, rows),
        targetIn: padSequences(batch.map((b) => [BOS_ID, ...b.ids])).data,
        targetOut: padSequences(batch.map((b) => [...b.ids, EOS_ID])).data,
      })
      l.backward()
      return l
    })
    clipGradNorm(params, 5).dispose()
    await opt.step()
    opt.zeroGrad()
    step++
    if (step % (o.evalEvery ?? 100) === 0) {
      const l = await loss.item()
      last = await evaluate()
      log(`step ${String(step).padStart(5)}  ${seconds().toFixed(0).padStart(4)} s  loss ${l.toFixed(4)}  held-out exact caption ${(100 * last.exact).toFixed(1)}%`)
      if (last.exact >= (o.targetAccuracy ?? 0.9)) {
        loss.dispose()
        break
      }
    }
    loss.dispose()
  }
  // One attention map: where the model looked for each word of the first held-out image.
  const first = noGrad(() => indexSelect(images, 0, tensor(new Int32Array([0]), [1], { dtype: 'int32' })))
  const [cap] = (await model.caption(first, { maxLength: 12 }))[0]!
  const S = images.shape[2]!
  const panels = attentionPanels((await first.data()) as Float32Array, S, S, cap!)
  const attentionMap = join(dir, 'attention-0000.png')
  await writePng(attentionMap, panels)
  dispose([first, panels, images])
  return { exact: last.exact, steps: step, seconds: seconds(), examples: last.outs.slice(0, 5), attentionMap }
}

const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  console.log('image captioning from pixels: coloured shapes, a CNN encoder and an attending LSTM decoder')
  const r = await trainShapes({ log: (l) => console.log(l) })
  for (const e of r.examples) console.log(`  ${e}`)
  console.log(`held-out exact caption rate ${(100 * r.exact).toFixed(1)}% after ${r.steps} steps, ${(r.seconds / 60).toFixed(1)} minutes; attention map: ${r.attentionMap}`)
  if (r.exact < 0.9) process.exitCode = 1
}
