/** Pooling layers: PyTorch's `MaxPool2d`, `AvgPool2d` and `AdaptiveAvgPool2d`. */

import type { Tensor } from '../tensor.js'
import { AVG_POOL2D_OPTIONS, MAX_POOL2D_OPTIONS, adaptiveAvgPool2d, avgPool2d, maxPool2d, type AvgPool2dOptions, type MaxPool2dOptions } from '../ops/pool.js'
import { boolArg, checkOptions, pairArg, tensorArg } from '../validate.js'
import { Module } from './module.js'

export type { AvgPool2dOptions, MaxPool2dOptions } from '../ops/pool.js'

/**
 * Max pooling over windows of `kernelSize` (stride: the kernel size unless given).
 * Shapes: `[N, C, H, W]` → `[N, C, OH, OW]`, `OH = ⌊(H + 2·padding − KH) / stride⌋ + 1`.
 */
export class MaxPool2d extends Module {
  readonly kernelSize: [number, number]
  readonly stride: [number, number]
  readonly padding: [number, number]

  constructor(kernelSize: number | [number, number], options: MaxPool2dOptions = {}) {
    super()
    const o = checkOptions('MaxPool2d', options, MAX_POOL2D_OPTIONS)
    this.kernelSize = pairArg('MaxPool2d', 'kernelSize', kernelSize, 1)
    this.stride = o.stride === undefined ? this.kernelSize : pairArg('MaxPool2d', 'stride', o.stride, 1)
    this.padding = pairArg('MaxPool2d', 'padding', o.padding ?? 0, 0)
  }

  override forward(x: Tensor): Tensor {
    return maxPool2d(tensorArg('MaxPool2d.forward', 'x', x), this.kernelSize, { stride: this.stride, padding: this.padding })
  }

  override extraRepr(): string {
    return `kernelSize=[${this.kernelSize.join(', ')}], stride=[${this.stride.join(', ')}], padding=[${this.padding.join(', ')}]`
  }
}

/**
 * Average pooling over windows of `kernelSize`; divides by the whole window, padding included,
 * unless `countIncludePad: false` (PyTorch's default and option).
 * Shapes: `[N, C, H, W]` → `[N, C, OH, OW]`.
 */
export class AvgPool2d extends Module {
  readonly kernelSize: [number, number]
  readonly stride: [number, number]
  readonly padding: [number, number]
  readonly countIncludePad: boolean

  constructor(kernelSize: number | [number, number], options: AvgPool2dOptions = {}) {
    super()
    const o = checkOptions('AvgPool2d', options, AVG_POOL2D_OPTIONS)
    this.kernelSize = pairArg('AvgPool2d', 'kernelSize', kernelSize, 1)
    this.stride = o.stride === undefined ? this.kernelSize : pairArg('AvgPool2d', 'stride', o.stride, 1)
    this.padding = pairArg('AvgPool2d', 'padding', o.padding ?? 0, 0)
    this.countIncludePad = boolArg('AvgPool2d', 'countIncludePad', o.countIncludePad ?? true)
  }

  override forward(x: Tensor): Tensor {
    const { stride, padding, countIncludePad } = this
    return avgPool2d(tensorArg('AvgPool2d.forward', 'x', x), this.kernelSize, { stride, padding, countIncludePad })
  }

  override extraRepr(): string {
    return `kernelSize=[${this.kernelSize.join(', ')}], stride=[${this.stride.join(', ')}], padding=[${this.padding.join(', ')}]`
  }
}

/**
 * Average pooling to a fixed `outputSize` whatever the input's size (PyTorch's windows
 * `[⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉)`); `1` gives global average pooling.
 * Shapes: `[N, C, H, W]` → `[N, C, OH, OW]`.
 */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number, number]

  constructor(outputSize: number | [number, number]) {
    super()
    this.outputSize = pairArg('AdaptiveAvgPool2d', 'outputSize', outputSize, 1)
  }

  override forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(tensorArg('AdaptiveAvgPool2d.forward', 'x', x), this.outputSize)
  }

  override extraRepr(): string {
    return `outputSize=[${this.outputSize.join(', ')}]`
  }
}
