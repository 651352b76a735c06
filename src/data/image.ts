/**
 * Image files as tensors: PNG and JPEG files decoded natively into float32 `[C, H, W]` tensors
 * (or `[B, C, H, W]` batches), resized, centre-cropped and normalised the way torchvision's
 * `Resize`, `CenterCrop`, `ToTensor` and `Normalize` are; and tensors written as PNG pictures.
 *
 * Decoding runs off the JS thread (a batch decodes its files in parallel), so the event loop
 * keeps running meanwhile. Every file is bounded before it is decoded (`maxFileBytes`, and
 * `maxPixels` against the size its header declares), so a small hostile file cannot make the
 * decoder allocate gigabytes. Failures reject with an `ImageError` naming the file.
 */

import { DTypeError, ShapeError, ValueError, wrapAsync } from '../errors.js'
import { native } from '../native.js'
import { Tensor } from '../tensor.js'
import { boolArg, typeError, checkOptions, describe, numberArg, optionKeys, stringArg, tensorArg } from '../validate.js'

/** A size: one number, or `[height, width]`. */
export type ImageSize = number | readonly [number, number]

/** How {@link readImage} and {@link readImages} turn a file into a tensor, in this order. */
export interface ReadImageOptions {
  /**
   * The usual evaluation transform in one option: resize the shorter side to `size`, then crop
   * the centre `size × size` (torchvision's `Resize(size)` + `CenterCrop(size)`). `resize` and
   * `centerCrop`, when given, take precedence over it.
   */
  size?: number
  /**
   * A number resizes the shorter side to it, the longer one keeping the aspect ratio (rounded
   * down, as torchvision does); `[height, width]` resizes to exactly that. Bilinear
   * interpolation at pixel centres. Default: the decoded size.
   */
  resize?: ImageSize
  /** Crops the centre to this size (a crop larger than the image pads with zeros). */
  centerCrop?: ImageSize
  /**
   * Low-pass filtering when shrinking (default `true`): every source pixel contributes, as in
   * torchvision's `Resize(antialias=True)` and PIL. `false` samples like plain bilinear
   * interpolation (`F.interpolate(mode='bilinear')`), which aliases on large shrinks.
   */
  antialias?: boolean
  /**
   * 3 (default): RGB; grey images are replicated, alpha is dropped (not composited), palettes
   * expand. 1: grey; RGB images become their ITU-R 601 luma `0.299 R + 0.587 G + 0.114 B`.
   */
  channels?: 3 | 1
  /** Subtracted per channel after scaling to [0, 1]: one number, or one per channel. */
  mean?: number | readonly number[]
  /** Then divides per channel: one number, or one per channel (non-zero). */
  std?: number | readonly number[]
  /** Largest file accepted, in bytes (default 256 MiB). */
  maxFileBytes?: number
  /**
   * Most pixels (width × height) an image may declare in its header, and its output may have
   * (default 100 000 000).
   */
  maxPixels?: number
}

const READ_IMAGE_OPTIONS = optionKeys<ReadImageOptions>({
  size: true,
  resize: true,
  centerCrop: true,
  antialias: true,
  channels: true,
  mean: true,
  std: true,
  maxFileBytes: true,
  maxPixels: true,
})

/** The native addon's form of the options: sizes split into named fields. */
interface NativeImageOptions {
  resizeShorter?: number
  resizeHeight?: number
  resizeWidth?: number
  cropHeight?: number
  cropWidth?: number
  channels?: number
  mean?: number[]
  std?: number[]
  antialias?: boolean
  maxFileBytes?: number
  maxPixels?: number
}

const MAX_SIDE = 2 ** 31 - 1

function sideArg(op: string, what: string, v: unknown): number {
  return numberArg(op, what, v, { integer: true, min: 1, max: MAX_SIDE })
}

/** `[height, width]` of a size option (a number gives both). */
function sizeArg(op: string, what: string, v: unknown): [number, number] {
  if (typeof v === 'number') {
    const n = sideArg(op, what, v)
    return [n, n]
  }
  if (!Array.isArray(v) || v.length !== 2) throw new ValueError(op, `${what} must be a positive integer or [height, width], got ${describe(v)}`)
  return [sideArg(op, `${what}[0] (height)`, v[0]), sideArg(op, `${what}[1] (width)`, v[1])]
}

/** Per-channel values: one number, or an array of one value per channel. */
function perChannelArg(op: string, what: string, v: unknown, channels: number, nonZero: boolean): number[] {
  const values = typeof v === 'number' ? [v] : v
  if (!Array.isArray(values) || !(values.length === 1 || values.length === channels)) {
    throw new ValueError(op, `${what} must be a number or an array of ${channels} numbers (one per channel), got ${describe(v)}`)
  }
  return values.map((x, i) => {
    const n = numberArg(op, `${what}[${i}]`, x)
    if (nonZero && n === 0) throw new ValueError(op, `${what}[${i}] must be non-zero, got 0`)
    return n
  })
}

function nativeOptions(op: string, options: ReadImageOptions | undefined): { native: NativeImageOptions; channels: number } {
  const o = checkOptions(op, options, READ_IMAGE_OPTIONS)
  const out: NativeImageOptions = {}
  const size = o.size === undefined ? undefined : sideArg(op, 'size', o.size)
  const resize = o.resize ?? size
  if (resize !== undefined) {
    if (typeof resize === 'number') out.resizeShorter = sideArg(op, o.resize === undefined ? 'size' : 'resize', resize)
    else [out.resizeHeight, out.resizeWidth] = sizeArg(op, 'resize', resize)
  }
  const crop = o.centerCrop ?? size
  if (crop !== undefined) [out.cropHeight, out.cropWidth] = sizeArg(op, o.centerCrop === undefined ? 'size' : 'centerCrop', crop)
  const channels = o.channels ?? 3
  if (channels !== 3 && channels !== 1) throw new ValueError(op, `channels must be 3 or 1, got ${describe(channels)}`)
  out.channels = channels
  if (o.mean !== undefined) out.mean = perChannelArg(op, 'mean', o.mean, channels, false)
  if (o.std !== undefined) out.std = perChannelArg(op, 'std', o.std, channels, true)
  if (o.antialias !== undefined) out.antialias = boolArg(op, 'antialias', o.antialias)
  if (o.maxFileBytes !== undefined) out.maxFileBytes = numberArg(op, 'maxFileBytes', o.maxFileBytes, { integer: true, min: 1 })
  if (o.maxPixels !== undefined) out.maxPixels = numberArg(op, 'maxPixels', o.maxPixels, { integer: true, min: 1 })
  return { native: out, channels }
}

/**
 * Reads one PNG or JPEG file (told apart by content, not by name) into a float32 tensor
 * `[C, H, W]` with values in [0, 1] before normalisation.
 *
 * ```ts
 * const x = await readImage('cat.jpg', { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] })
 * ```
 *
 * @throws ValueError for bad options; ImageError (rejected) naming the file when it is
 *   missing, not a PNG or JPEG, truncated or corrupt, or above `maxFileBytes` / `maxPixels`.
 */
export async function readImage(path: string, options?: ReadImageOptions): Promise<Tensor> {
  const op = 'readImage'
  stringArg(op, 'path', path)
  const { native: opts } = nativeOptions(op, options)
  return new Tensor(await wrapAsync(() => native.readImages([path], opts, true)))
}

/**
 * Reads PNG and JPEG files into one float32 batch `[B, C, H, W]`, in the order given; the files
 * are decoded in parallel. Every image must come out the same size: give `size` (or `resize`
 * and `centerCrop`) when the files differ. Files of any channel count mix: all become RGB (or
 * grey with `channels: 1`).
 *
 * @throws ValueError for bad options or an empty list; ImageError (rejected) naming the first
 *   file, in order, that cannot be read, or one whose size differs from the first file's.
 */
export async function readImages(paths: readonly string[], options?: ReadImageOptions): Promise<Tensor> {
  const op = 'readImages'
  if (!Array.isArray(paths)) throw typeError(op, 'paths', 'a non-empty array of file paths', paths)
  if (paths.length === 0) throw new ValueError(op, `paths must be a non-empty array of file paths, got ${describe(paths)}`)
  const list = paths.map((p, i) => stringArg(op, `paths[${i}]`, p))
  const { native: opts } = nativeOptions(op, options)
  return new Tensor(await wrapAsync(() => native.readImages(list, opts, false)))
}

/**
 * Writes a `[3, H, W]` (RGB) or `[1, H, W]` (grey) float tensor with values in [0, 1] as an
 * 8-bit PNG (values are clamped to [0, 1] and rounded; NaN becomes 0). The file is replaced
 * atomically; the tensor is captured as it is at the call.
 *
 * @throws ShapeError / DTypeError for another shape or an int32 tensor; ImageError (rejected)
 *   naming the file when it cannot be written.
 */
export async function writePng(path: string, tensor: Tensor): Promise<void> {
  const op = 'writePng'
  stringArg(op, 'path', path)
  const t = tensorArg(op, 'tensor', tensor)
  const s = t.shape
  if (s.length !== 3 || (s[0] !== 3 && s[0] !== 1)) throw new ShapeError(op, `expected a [3, H, W] or [1, H, W] tensor, got [${s.join(', ')}]`)
  if (t.dtype === 'int32') throw new DTypeError(op, `expected dtype float32 or float64, got ${t.dtype}`)
  await wrapAsync(() => native.writePng(path, t._native))
}
