// Reading image files into tensors: PNG colour types and depths decode exactly, JPEG (baseline,
// progressive, grey) within a tolerance of Pillow's decode, resize/crop/normalise match hand
// computations and Pillow, bad files reject with an ImageError naming the file, memory stays
// flat over repeated loads, and a big batch decodes without blocking the event loop.

import test from 'ava'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { deflateSync } from 'node:zlib'

import * as r from '../index.js'
import { translate } from '../src/errors.js'

const { ImageError, ValueError, ShapeError, DTypeError, RecurrentError, readImage, readImages, writePng } = r

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'images')
const dir = mkdtempSync(join(tmpdir(), 'recurrent-image-'))

// ---- a small PNG writer: every pixel value of the test files is known exactly ----------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk(kind: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(kind, 'latin1'), data])
  const out = Buffer.alloc(body.length + 8)
  out.writeUInt32BE(data.length, 0)
  body.copy(out, 4)
  out.writeUInt32BE(crc32(body), body.length + 4)
  return out
}

/** PNG colour types: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA. */
interface PngSpec {
  width: number
  height: number
  color: 0 | 2 | 3 | 4 | 6
  depth?: 8 | 16
  /** Samples, row-major and interleaved (palette indices for colour type 3). */
  samples: number[]
  palette?: number[]
  transparency?: number[]
  level?: number
}

const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const

function png(s: PngSpec): Buffer {
  const depth = s.depth ?? 8
  const n = CHANNELS[s.color]
  const bytesPer = depth / 8
  const stride = s.width * n * bytesPer
  const raw = Buffer.alloc(s.height * (stride + 1))
  for (let y = 0; y < s.height; y++) {
    raw[y * (stride + 1)] = 0 // filter: none
    for (let i = 0; i < s.width * n; i++) {
      const v = s.samples[y * s.width * n + i]!
      const at = y * (stride + 1) + 1 + i * bytesPer
      if (depth === 16) raw.writeUInt16BE(v, at)
      else raw[at] = v
    }
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(s.width, 0)
  ihdr.writeUInt32BE(s.height, 4)
  ihdr[8] = depth
  ihdr[9] = s.color
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)]
  if (s.palette) parts.push(chunk('PLTE', Buffer.from(s.palette)))
  if (s.transparency) parts.push(chunk('tRNS', Buffer.from(s.transparency)))
  parts.push(chunk('IDAT', deflateSync(raw, { level: s.level ?? 6 })), chunk('IEND', new Uint8Array(0)))
  return Buffer.concat(parts)
}

let fileNo = 0
function file(bytes: Uint8Array, ext = 'png'): string {
  const p = join(dir, `f${fileNo++}.${ext}`)
  writeFileSync(p, bytes)
  return p
}

/** Deterministic samples in [0, max]. */
function samples(count: number, seed: number, max = 255): number[] {
  let s = seed >>> 0
  return Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % (max + 1)
  })
}

/** Interleaved samples (`n` per pixel) to the planar [C, H, W] values the loader returns. */
function planar(interleaved: number[], n: number, pick: number[], scale: number): number[] {
  const px = interleaved.length / n
  const out: number[] = []
  for (const c of pick) for (let i = 0; i < px; i++) out.push(Math.fround(interleaved[i * n + c]! / scale))
  return out
}

async function values(t: r.Tensor): Promise<number[]> {
  const v = Array.from((await t.data()) as Float32Array)
  t.dispose()
  return v
}

// ---- PNG: exact ------------------------------------------------------------------------------

test('PNG 8-bit RGB decodes exactly, planar [3, H, W] in [0, 1]', async (t) => {
  const s = samples(5 * 3 * 3, 1)
  const x = await readImage(file(png({ width: 5, height: 3, color: 2, samples: s })))
  t.deepEqual(x.shape, [3, 3, 5])
  t.is(x.dtype, 'float32')
  t.deepEqual(await values(x), planar(s, 3, [0, 1, 2], 255))
})

test('PNG RGBA drops alpha; grey and grey+alpha replicate to RGB; channels: 1 keeps grey', async (t) => {
  const rgba = samples(4 * 2 * 4, 2)
  t.deepEqual(await values(await readImage(file(png({ width: 4, height: 2, color: 6, samples: rgba })))), planar(rgba, 4, [0, 1, 2], 255))
  const grey = samples(3 * 4, 3)
  const g = file(png({ width: 3, height: 4, color: 0, samples: grey }))
  const x = await readImage(g)
  t.deepEqual(x.shape, [3, 4, 3])
  t.deepEqual(await values(x), planar(grey, 1, [0, 0, 0], 255))
  const one = await readImage(g, { channels: 1 })
  t.deepEqual(one.shape, [1, 4, 3])
  t.deepEqual(await values(one), planar(grey, 1, [0], 255))
  const ga = samples(3 * 2 * 2, 4)
  t.deepEqual(await values(await readImage(file(png({ width: 3, height: 2, color: 4, samples: ga })))), planar(ga, 2, [0, 0, 0], 255))
})

test('PNG palette expands (with and without transparency); 16-bit keeps its precision', async (t) => {
  const palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 34, 56]
  const idx = [0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 3, 3]
  const rgb = idx.flatMap((k) => palette.slice(k * 3, k * 3 + 3))
  const want = planar(rgb, 3, [0, 1, 2], 255)
  t.deepEqual(await values(await readImage(file(png({ width: 4, height: 3, color: 3, samples: idx, palette })))), want)
  const withAlpha = file(png({ width: 4, height: 3, color: 3, samples: idx, palette, transparency: [0, 128, 255] }))
  t.deepEqual(await values(await readImage(withAlpha)), want)

  const rgb16 = samples(3 * 2 * 3, 5, 65535)
  t.deepEqual(await values(await readImage(file(png({ width: 3, height: 2, color: 2, depth: 16, samples: rgb16 })))), planar(rgb16, 3, [0, 1, 2], 65535))
  const grey16 = samples(2 * 2, 6, 65535)
  const g16 = await readImage(file(png({ width: 2, height: 2, color: 0, depth: 16, samples: grey16 })), { channels: 1 })
  t.deepEqual(await values(g16), planar(grey16, 1, [0], 65535))
})

test('channels: 1 turns RGB into the ITU-R 601 luma', async (t) => {
  const s = samples(4 * 4 * 3, 7)
  const got = await values(await readImage(file(png({ width: 4, height: 4, color: 2, samples: s })), { channels: 1 }))
  const want = Array.from({ length: 16 }, (_, i) => (0.299 * s[i * 3]! + 0.587 * s[i * 3 + 1]! + 0.114 * s[i * 3 + 2]!) / 255)
  got.forEach((v, i) => t.true(Math.abs(v - want[i]!) < 1e-6, `pixel ${i}: ${v} vs ${want[i]}`))
})

// ---- JPEG: within a tolerance of Pillow's decode ------------------------------------------------

interface Reference {
  images: Record<string, { width: number; height: number; progressive: boolean; mode: string; rgb: number[] }>
  resize: { source: string; shorter: number; width: number; height: number; rgb: number[]; planarFloat: number[] }
}
const reference = JSON.parse(readFileSync(join(FIXTURES, 'reference.json'), 'utf8')) as Reference

for (const name of ['baseline.jpg', 'progressive.jpg', 'grey.jpg']) {
  test(`JPEG ${name} decodes within a few levels of Pillow`, async (t) => {
    const ref = reference.images[name]!
    t.is(ref.progressive, name === 'progressive.jpg')
    const x = await readImage(join(FIXTURES, name))
    t.deepEqual(x.shape, [3, ref.height, ref.width])
    const got = await values(x)
    const want = planar(ref.rgb, 3, [0, 1, 2], 255)
    let worst = 0
    let sum = 0
    got.forEach((v, i) => {
      const d = Math.abs(v - want[i]!) * 255
      worst = Math.max(worst, d)
      sum += d
    })
    const mean = sum / got.length
    t.log(`${name}: mean |diff| ${mean.toFixed(3)} levels, max ${worst.toFixed(1)}`)
    // Decoders may round the IDCT and upsample chroma differently; the image itself is kept.
    t.true(mean < 1.5, `mean difference ${mean} levels`)
    t.true(worst <= 8, `largest difference ${worst} levels`)
  })
}

// ---- resize, crop, normalise ------------------------------------------------------------------

test('resize matches Pillow (bilinear, antialiased) on the shorter side', async (t) => {
  const ref = reference.resize
  const x = await readImage(join(FIXTURES, ref.source), { resize: ref.shorter })
  t.deepEqual(x.shape, [3, ref.height, ref.width])
  const got = await values(x)
  const want = planar(ref.rgb, 3, [0, 1, 2], 255)
  // Pillow's 8-bit resize rounds after each of its two passes (and uses fixed-point weights);
  // the loader stays in float, so it is within a level of that...
  const worst = Math.max(...got.map((v, i) => Math.abs(v - want[i]!) * 255))
  t.true(worst < 1, `largest difference from Pillow's 8-bit resize: ${worst} levels`)
  // ...and equal, to float precision, to Pillow's float resize of each channel.
  const worstFloat = Math.max(...got.map((v, i) => Math.abs(v * 255 - ref.planarFloat[i]!)))
  t.true(worstFloat < 1e-3, `largest difference from Pillow's float resize: ${worstFloat} levels`)
})

test('resize, centre crop and normalisation equal a hand computation', async (t) => {
  // A 4×6 grey image (rows of 6). size: 2 resizes the shorter side (4) to 2: 2×3, then the
  // centre 2×2 crop starts at column round((3 - 2) / 2) = 0 (half to even).
  const grey = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200, 210, 220, 230]
  const p = file(png({ width: 6, height: 4, color: 0, samples: grey }))
  const at = (y: number, x: number) => grey[y * 6 + x]! / 255
  // Without antialias, a 2× shrink reads at source 0.5 and 2.5: means of 2×2 blocks.
  const block = (y: number, x: number) => (at(y, x) + at(y, x + 1) + at(y + 1, x) + at(y + 1, x + 1)) / 4
  const plain = await values(await readImage(p, { size: 2, antialias: false, channels: 1 }))
  const wantPlain = [block(0, 0), block(0, 2), block(2, 0), block(2, 2)]
  plain.forEach((v, i) => t.true(Math.abs(v - wantPlain[i]!) < 1e-6, `${v} vs ${wantPlain[i]}`))
  // With antialias: weights (0.75, 0.75, 0.25) / 1.75 around centre 1, (0.25, 0.75, 0.75) / 1.75
  // around centre 3 (and 5 along the width).
  const wa = [
    [0.75, 0.75, 0.25, 0, 0, 0],
    [0, 0.25, 0.75, 0.75, 0.25, 0],
  ].map((r) => r.map((w) => w / r.reduce((a, b) => a + b, 0)))
  const wy = [
    [0.75, 0.75, 0.25, 0],
    [0, 0.25, 0.75, 0.75],
  ].map((r) => r.map((w) => w / 1.75))
  const aa = await values(await readImage(p, { size: 2, channels: 1 }))
  const wantAa = [0, 1].flatMap((oy) => [0, 1].map((ox) => wy[oy]!.reduce((s, wyv, y) => s + wyv * wa[ox]!.reduce((s2, wxv, x) => s2 + wxv * at(y, x), 0), 0)))
  aa.forEach((v, i) => t.true(Math.abs(v - wantAa[i]!) < 1e-6, `${v} vs ${wantAa[i]}`))
  // Normalisation per channel after the crop; grey replicated to 3 channels first.
  const mean = [0.485, 0.456, 0.406]
  const std = [0.229, 0.224, 0.225]
  const norm = await values(await readImage(p, { size: 2, antialias: false, mean, std }))
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 4; i++) {
      const want = (Math.fround(wantPlain[i]!) - Math.fround(mean[c]!)) / Math.fround(std[c]!)
      t.true(Math.abs(norm[c * 4 + i]! - want) < 1e-5, `channel ${c} pixel ${i}`)
    }
  }
  // An exact [h, w] resize and an explicit crop; a crop larger than the image pads with zeros.
  const exact = await readImage(p, { resize: [2, 3], antialias: false, channels: 1 })
  t.deepEqual(exact.shape, [1, 2, 3])
  exact.dispose()
  const padded = await values(await readImage(p, { centerCrop: [4, 8], channels: 1 }))
  t.deepEqual(padded.slice(0, 8), [0, 0, 10, 20, 30, 40, 50, 0].map((v) => Math.fround(v / 255)))
})

// ---- batches -------------------------------------------------------------------------------------

test('readImages stacks files of any colour type into [B, C, H, W], in order', async (t) => {
  const rgb = samples(4 * 3 * 3, 8)
  const grey = samples(4 * 3, 9)
  const rgba = samples(4 * 3 * 4, 10)
  const paths = [
    file(png({ width: 4, height: 3, color: 2, samples: rgb })),
    file(png({ width: 4, height: 3, color: 0, samples: grey })),
    file(png({ width: 4, height: 3, color: 6, samples: rgba })),
  ]
  const b = await readImages(paths)
  t.deepEqual(b.shape, [3, 3, 3, 4])
  t.deepEqual(await values(b), [...planar(rgb, 3, [0, 1, 2], 255), ...planar(grey, 1, [0, 0, 0], 255), ...planar(rgba, 4, [0, 1, 2], 255)])
  const g = await readImages(paths, { channels: 1 })
  t.deepEqual(g.shape, [3, 1, 3, 4])
  const gv = await values(g)
  t.deepEqual(gv.slice(12, 24), planar(grey, 1, [0], 255))
  // Each item of a batch equals the same file read alone.
  const opts = { size: 2, mean: 0.5, std: 0.25 }
  const batch = await values(await readImages(paths, opts))
  for (let i = 0; i < 3; i++) t.deepEqual(batch.slice(i * 12, (i + 1) * 12), await values(await readImage(paths[i]!, opts)))
})

test('readImages refuses images that come out of different sizes, naming the file', async (t) => {
  const a = file(png({ width: 4, height: 3, color: 0, samples: samples(12, 11) }))
  const b = file(png({ width: 5, height: 3, color: 0, samples: samples(15, 12) }))
  const e = await t.throwsAsync(readImages([a, a, b]), { instanceOf: ImageError })
  t.is(e!.op, 'readImages')
  t.true(e!.message.includes(b) && e!.message.includes('3×3×5') && e!.message.includes('3×3×4'), e!.message)
  const ok = await readImages([a, b], { size: 3 })
  t.deepEqual(ok.shape, [2, 3, 3, 3])
  ok.dispose()
})

// ---- errors ----------------------------------------------------------------------------------

async function refused(t: import('ava').ExecutionContext, path: string, reason: RegExp, options?: r.ReadImageOptions): Promise<void> {
  const e = await t.throwsAsync(readImage(path, options), { instanceOf: ImageError })
  t.true(e instanceof RecurrentError)
  t.is(e!.code, 'ERR_IMAGE')
  t.is(e!.op, 'readImage')
  t.true(e!.message.startsWith(`readImage: cannot read '${path}': `), e!.message)
  t.regex(e!.message, reason)
}

test('truncated and corrupt files reject with an ImageError naming the file', async (t) => {
  const good = png({ width: 16, height: 16, color: 2, samples: samples(16 * 16 * 3, 13) })
  for (const cut of [8, 30, Math.floor(good.length / 2), good.length - 12]) {
    await refused(t, file(good.subarray(0, cut)), /PNG/)
  }
  const flipped = Buffer.from(good)
  const mid = Math.floor(flipped.length / 2)
  flipped[mid] = flipped[mid]! ^ 0x5a
  await refused(t, file(flipped), /corrupt/)
  for (const name of ['baseline.jpg', 'progressive.jpg']) {
    const jpg = readFileSync(join(FIXTURES, name))
    for (const cut of [3, 200, Math.floor(jpg.length * 0.7)]) await refused(t, file(jpg.subarray(0, cut), 'jpg'), /JPEG/)
  }
  await refused(t, join(dir, 'no-such-file.png'), /no such file$/)
  await refused(t, dir, /folder/)
  await refused(t, file(Buffer.alloc(0)), /empty/)
  await refused(t, file(Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'), 'gif'), /unsupported format Gif/)
  await refused(t, file(Buffer.from('just some text, not pixels')), /not a PNG or JPEG/)
})

test('size limits refuse big files and decompression bombs before decoding', async (t) => {
  const p = file(png({ width: 20, height: 10, color: 2, samples: samples(600, 14) }))
  const size = readFileSync(p).length
  await refused(t, p, /maxFileBytes/, { maxFileBytes: size - 1 })
  await refused(t, p, /20×10 = 200 pixels, more than the limit of 199/, { maxPixels: 199 })
  ;(await readImage(p, { maxPixels: 200, maxFileBytes: size })).dispose()
  // A header declaring 60000 × 60000 pixels over a few hundred bytes of data.
  const bomb = png({ width: 4, height: 4, color: 0, samples: samples(16, 18) })
  bomb.writeUInt32BE(60000, 16)
  bomb.writeUInt32BE(60000, 20)
  bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29)
  await refused(t, file(bomb), /60000×60000 = 3600000000 pixels/)
  // A long, thin image resized on its shorter side would have too many pixels.
  const thin = file(png({ width: 500, height: 1, color: 0, samples: samples(500, 15) }))
  await refused(t, thin, /output image would be 150000×300/, { resize: 300, maxPixels: 1_000_000 })
})

test('bad arguments are ValueErrors; ERR_IMAGE translates to ImageError', async (t) => {
  const p = file(png({ width: 2, height: 2, color: 0, samples: [1, 2, 3, 4] }))
  const bad: unknown[] = [
    { size: 0 },
    { size: 2.5 },
    { resize: [2] },
    { centerCrop: 'big' },
    { channels: 2 },
    { mean: [0.1, 0.2] },
    { std: [1, 0, 1] },
    { mean: Number.NaN },
    { antialias: 'yes' },
    { maxPixels: 0 },
    null,
  ]
  for (const o of bad) await t.throwsAsync(readImage(p, o as r.ReadImageOptions), { instanceOf: ValueError }, JSON.stringify(o))
  await t.throwsAsync(readImage('' as string), { instanceOf: ValueError })
  await t.throwsAsync(readImages([]), { instanceOf: ValueError })
  await t.throwsAsync(readImages([p, 3 as unknown as string]), { instanceOf: ValueError, message: /paths\[1\]/ })
  const native = Object.assign(new Error('readImage: cannot read \'x.png\': no such file'), { code: 'ERR_IMAGE', op: 'readImage' })
  const e = translate(native)
  t.true(e instanceof ImageError)
  t.is((e as r.RecurrentError).message, native.message)
})

// ---- writing PNG -----------------------------------------------------------------------------

test('writePng writes 8-bit RGB and grey PNGs that read back', async (t) => {
  const rgb = r.tensor([0, 0.5, 1, 2, -1, Number.NaN, 0.2, 0.4, 0.6, 0.8, 1, 0], [3, 2, 2])
  const p = join(dir, 'out.png')
  await writePng(p, rgb)
  t.deepEqual(await values(await readImage(p)), [0, 128, 255, 255, 0, 0, 51, 102, 153, 204, 255, 0].map((b) => Math.fround(b / 255)))
  const bytes = readFileSync(p)
  t.is(bytes[25], 2, 'colour type RGB')
  const grey = r.tensor([0.25, 0.75, 1, 0], [1, 2, 2], { dtype: 'float64' })
  await writePng(p, grey)
  t.is(readFileSync(p)[25], 0, 'colour type grey')
  t.deepEqual(await values(await readImage(p, { channels: 1 })), [64, 191, 255, 0].map((b) => Math.fround(b / 255)))
  await t.throwsAsync(writePng(p, r.zeros([2, 2, 2])), { instanceOf: ShapeError })
  await t.throwsAsync(writePng(p, r.zeros([4, 4])), { instanceOf: ShapeError })
  await t.throwsAsync(writePng(p, r.tensor([1, 2, 3], [3, 1, 1], { dtype: 'int32' })), { instanceOf: DTypeError })
  const e = await t.throwsAsync(writePng(join(dir, 'missing', 'dir', 'x.png'), grey), { instanceOf: ImageError })
  t.true(e!.message.startsWith('writePng: cannot write') && e!.message.includes('x.png'), e!.message)
  rgb.dispose()
  grey.dispose()
})

// ---- memory and the event loop ------------------------------------------------------------------

test.serial('memory stays flat over 200 loads', async (t) => {
  const paths = [
    file(png({ width: 32, height: 24, color: 2, samples: samples(32 * 24 * 3, 16) })),
    file(png({ width: 24, height: 32, color: 0, samples: samples(24 * 32, 17) })),
    join(FIXTURES, 'baseline.jpg'),
  ]
  // Warm up (first-use allocations), then measure.
  ;(await readImages(paths, { size: 16 })).dispose()
  const before = r.memory()
  for (let i = 0; i < 200; i++) {
    const x = i % 2 === 0 ? await readImages(paths, { size: 16, mean: 0.5, std: 0.5 }) : await readImage(paths[i % 3]!, { size: 20 })
    x.dispose()
  }
  // A failing load leaves nothing behind either.
  for (let i = 0; i < 20; i++) await t.throwsAsync(readImages([paths[0]!, join(dir, 'gone.png')], { size: 16 }), { instanceOf: ImageError })
  const after = r.memory()
  t.is(after.tensors, before.tensors)
  t.is(after.bytes, before.bytes)
})

test.serial('a big batch decodes without blocking the event loop', async (t) => {
  // 1024 × 1024 noisy RGB: inflating and resizing 24 of them takes a good fraction of a second.
  const side = 1024
  const s = new Array<number>(side * side * 3)
  let seed = 99
  for (let i = 0; i < s.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    s[i] = ((i % (side * 3)) >> 2) + (seed >>> 29)
  }
  const big = file(png({ width: side, height: side, color: 2, samples: s.map((v) => v & 255), level: 1 }))
  const paths = Array.from({ length: 24 }, () => big)
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  let ticks = 0
  const timer = setInterval(() => ticks++, 5)
  const start = performance.now()
  const x = await readImages(paths, { size: 224 })
  const elapsed = performance.now() - start
  clearInterval(timer)
  h.disable()
  t.deepEqual(x.shape, [24, 3, 224, 224])
  x.dispose()
  const p99 = h.percentile(99) / 1e6
  t.log(`decoded 24 × ${side}² in ${elapsed.toFixed(0)} ms; ${ticks} ticks, p99 delay ${p99.toFixed(2)} ms, max ${(h.max / 1e6).toFixed(2)} ms`)
  t.true(elapsed > 150, `the work took only ${elapsed.toFixed(0)} ms: the test could not have failed`)
  t.true(ticks > (elapsed / 5) * 0.5, `only ${ticks} timer ticks in ${elapsed.toFixed(0)} ms`)
  t.true(p99 < 50, `p99 event-loop delay ${p99.toFixed(2)} ms`)
})
