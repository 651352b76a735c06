/**
 * 2-D pooling over NCHW images: `maxPool2d`, `avgPool2d` and `adaptiveAvgPool2d`; mirrors
 * `crates/core/src/ops/pool.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { boolArg, checkOptions, optionKeys, pairArg, tensorArg } from '../validate.js'

/** Options of {@link maxPool2d}; each size is one number (height and width) or `[height, width]`. */
export interface MaxPool2dOptions {
  /** Step between windows (default: the kernel size). */
  stride?: number | [number, number]
  /** Implicit padding on each side, at most half the kernel size (default 0). */
  padding?: number | [number, number]
}

/** Options of {@link avgPool2d}. */
export interface AvgPool2dOptions extends MaxPool2dOptions {
  /** Divide by the whole window, padding included (default true, as PyTorch), or by its pixels inside the image. */
  countIncludePad?: boolean
}

/** The keys of {@link MaxPool2dOptions}. @internal */
export const MAX_POOL2D_OPTIONS = optionKeys<MaxPool2dOptions>({ stride: true, padding: true })
/** The keys of {@link AvgPool2dOptions}. @internal */
export const AVG_POOL2D_OPTIONS = optionKeys<AvgPool2dOptions>({ stride: true, padding: true, countIncludePad: true })

function windows(opName: string, kernelSize: unknown, options: MaxPool2dOptions | undefined, known: readonly string[]) {
  const o = checkOptions(opName, options, known)
  const kernel = pairArg(opName, 'kernelSize', kernelSize, 1)
  const stride = o.stride === undefined || o.stride === null ? null : pairArg(opName, 'stride', o.stride, 1)
  const padding = pairArg(opName, 'padding', o.padding ?? 0, 0)
  return { o, kernel, stride, padding }
}

/**
 * Max pooling (PyTorch's `max_pool2d`, without ceil mode or dilation): `x [N, C, H, W]` →
 * `[N, C, OH, OW]`, `OH = ⌊(H + 2·padding − KH) / stride⌋ + 1`; padding never wins. The
 * gradient of each window goes to its first maximum.
 */
export function maxPool2d(x: Tensor, kernelSize: number | [number, number], options: MaxPool2dOptions = {}): Tensor {
  const OP = 'maxPool2d'
  tensorArg(OP, 'x', x)
  const { kernel, stride, padding } = windows(OP, kernelSize, options, MAX_POOL2D_OPTIONS)
  return op(() => native.maxPool2d(handle(OP, x, 'x'), kernel, stride, padding))
}

/** Average pooling (PyTorch's `avg_pool2d`, without ceil mode): each window's mean. */
export function avgPool2d(x: Tensor, kernelSize: number | [number, number], options: AvgPool2dOptions = {}): Tensor {
  const OP = 'avgPool2d'
  tensorArg(OP, 'x', x)
  const { o, kernel, stride, padding } = windows(OP, kernelSize, options, AVG_POOL2D_OPTIONS)
  const includePad = boolArg(OP, 'countIncludePad', (o as AvgPool2dOptions).countIncludePad ?? true)
  return op(() => native.avgPool2d(handle(OP, x, 'x'), kernel, stride, padding, includePad))
}

/**
 * Adaptive average pooling to `outputSize` (PyTorch's `adaptive_avg_pool2d`): output `(i, j)`
 * is the mean of rows `[⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉)` and likewise columns. `[N, C, H, W]` →
 * `[N, C, OH, OW]`.
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  const OP = 'adaptiveAvgPool2d'
  tensorArg(OP, 'x', x)
  const size = pairArg(OP, 'outputSize', outputSize, 1)
  return op(() => native.adaptiveAvgPool2d(handle(OP, x, 'x'), size))
}
