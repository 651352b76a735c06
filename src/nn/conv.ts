/** `Conv2d` and `Flatten`, PyTorch's `torch.nn.Conv2d` and `torch.nn.Flatten`. */

import { ShapeError } from '../errors.js'
import { floatDTypeOption } from '../cast.js'
import type { FloatDType, Tensor } from '../tensor.js'
import { conv2d } from '../ops/conv.js'
import { flatten } from '../ops/shape.js'
import { boolArg, checkModelSize, checkOptions, numberArg, optionKeys, pairArg, tensorArg } from '../validate.js'
import { Module } from './module.js'
import { checkPositiveInt, deriveSeed, uniform } from './init.js'

/** Options of {@link Conv2d}; sizes are one number (height and width) or `[height, width]`. */
export interface Conv2dOptions {
  /** Step between windows (default 1). */
  stride?: number | [number, number]
  /** Zeros added on each side (default 0). */
  padding?: number | [number, number]
  /** Spacing between kernel taps (default 1). */
  dilation?: number | [number, number]
  /** Channel groups; both channel counts must be divisible by it (default 1). */
  groups?: number
  /** Learn an additive bias (default true). */
  bias?: boolean
  /** Seed of the initialisation; without it the global generator (`manualSeed`) is used. */
  seed?: number
  /** dtype of the parameters: `'float32'` (default) or `'float64'`. */
  dtype?: FloatDType
}

const CONV2D_OPTIONS = optionKeys<Conv2dOptions>({
  stride: true,
  padding: true,
  dilation: true,
  groups: true,
  bias: true,
  seed: true,
  dtype: true,
})

/**
 * 2-D convolution over NCHW images.
 *
 * Shapes:
 * - input `x`: `[N, inChannels, H, W]`
 * - output: `[N, outChannels, OH, OW]`, `OH = ⌊(H + 2·padding − dilation·(KH − 1) − 1) / stride⌋ + 1`
 *
 * Parameters (PyTorch names and layout, so `torchvision` weights load by name):
 * - `weight`: `[outChannels, inChannels / groups, KH, KW]`
 * - `bias`: `[outChannels]` (absent with `bias: false`)
 *
 * Initialisation, as PyTorch's: weight and bias from U(−k, k) with k = 1/√(inChannels/groups·KH·KW)
 * (the weight's is `kaiming_uniform_` with a = √5).
 *
 * ```ts
 * const conv = new Conv2d(3, 16, 3, { padding: 1 })
 * const y = conv.forward(x) // x [8, 3, 32, 32] → y [8, 16, 32, 32]
 * ```
 */
export class Conv2d extends Module {
  readonly inChannels: number
  readonly outChannels: number
  readonly kernelSize: [number, number]
  readonly stride: [number, number]
  readonly padding: [number, number]
  readonly dilation: [number, number]
  readonly groups: number
  /** `[outChannels, inChannels / groups, KH, KW]`. */
  readonly weight: Tensor
  /** `[outChannels]`, or null without bias. */
  readonly bias: Tensor | null

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], options: Conv2dOptions = {}) {
    super()
    const OP = 'Conv2d'
    this.inChannels = checkPositiveInt(OP, 'inChannels', inChannels)
    this.outChannels = checkPositiveInt(OP, 'outChannels', outChannels)
    this.kernelSize = pairArg(OP, 'kernelSize', kernelSize, 1)
    const o = checkOptions(OP, options, CONV2D_OPTIONS)
    if (o.seed !== undefined) numberArg(OP, 'seed', o.seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    this.stride = pairArg(OP, 'stride', o.stride ?? 1, 1)
    this.padding = pairArg(OP, 'padding', o.padding ?? 0, 0)
    this.dilation = pairArg(OP, 'dilation', o.dilation ?? 1, 1)
    this.groups = numberArg(OP, 'groups', o.groups ?? 1, { integer: true, min: 1 })
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new ShapeError(OP, `inChannels and outChannels must be divisible by groups = ${this.groups}, got ${inChannels} and ${outChannels}`)
    }
    const hasBias = boolArg(OP, 'bias', o.bias ?? true)
    const dtype = floatDTypeOption(OP, o.dtype)
    const [kh, kw] = this.kernelSize
    const fanIn = (inChannels / this.groups) * kh * kw
    const shape = [outChannels, inChannels / this.groups, kh, kw]
    checkModelSize(OP, `a Conv2d(${inChannels}, ${outChannels}, ${kh}×${kw})`, outChannels * fanIn + (hasBias ? outChannels : 0), dtype)
    const k = 1 / Math.sqrt(fanIn)
    this.weight = this.registerParameter('weight', uniform(shape, k, deriveSeed(o.seed, 0), dtype))
    this.bias = this.registerParameter('bias', hasBias ? uniform([outChannels], k, deriveSeed(o.seed, 1), dtype) : null)
  }

  /** `x [N, inChannels, H, W]` → `[N, outChannels, OH, OW]`. */
  override forward(x: Tensor): Tensor {
    const s = tensorArg('Conv2d.forward', 'x', x).shape
    if (s.length !== 4 || s[1] !== this.inChannels) {
      throw new ShapeError('Conv2d.forward', `expected input [N, ${this.inChannels}, H, W], got [${s.join(', ')}]`)
    }
    const { stride, padding, dilation, groups } = this
    return conv2d(x, this.weight, this.bias, { stride, padding, dilation, groups })
  }

  override extraRepr(): string {
    const k = this.kernelSize
    const parts = [`${this.inChannels}, ${this.outChannels}, kernelSize=[${k.join(', ')}]`, `stride=[${this.stride.join(', ')}]`]
    if (this.padding.some((p) => p !== 0)) parts.push(`padding=[${this.padding.join(', ')}]`)
    if (this.dilation.some((d) => d !== 1)) parts.push(`dilation=[${this.dilation.join(', ')}]`)
    if (this.groups !== 1) parts.push(`groups=${this.groups}`)
    if (this.bias === null) parts.push('bias=false')
    return parts.join(', ')
  }
}

/**
 * Merges dimensions `startDim..endDim` (inclusive; default 1 and −1, as PyTorch's `Flatten`):
 * `[N, C, H, W]` → `[N, C·H·W]`, the bridge from convolutions to `Linear`.
 */
export class Flatten extends Module {
  readonly startDim: number
  readonly endDim: number

  constructor(startDim = 1, endDim = -1) {
    super()
    this.startDim = numberArg('Flatten', 'startDim', startDim, { integer: true })
    this.endDim = numberArg('Flatten', 'endDim', endDim, { integer: true })
  }

  /** `x` with dimensions `startDim..endDim` merged into one. */
  override forward(x: Tensor): Tensor {
    return flatten(tensorArg('Flatten.forward', 'x', x), this.startDim, this.endDim)
  }

  override extraRepr(): string {
    return `startDim=${this.startDim}, endDim=${this.endDim}`
  }
}
