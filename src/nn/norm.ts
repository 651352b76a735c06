/** Normalisation layers: PyTorch's `BatchNorm2d` and `LayerNorm`. */

import { ShapeError, ValueError } from '../errors.js'
import { floatDTypeOption } from '../cast.js'
import type { FloatDType, Tensor } from '../tensor.js'
import { cast } from '../ops/cast.js'
import { addScalar } from '../ops/elementwise.js'
import { ones, zeros } from '../ops/factories.js'
import { noGrad } from '../ops/grad.js'
import { batchNorm2d, layerNorm } from '../ops/norm.js'
import { tidy } from '../scope.js'
import { boolArg, checkModelSize, checkOptions, describe, numberArg, optionKeys, tensorArg } from '../validate.js'
import { Module } from './module.js'
import { checkPositiveInt } from './init.js'

/** Options of {@link BatchNorm2d}. */
export interface BatchNorm2dOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number
  /**
   * Weight of each batch's statistics in the running ones, in [0, 1] (default 0.1). PyTorch's
   * `momentum=None` (a cumulative average) is not supported.
   */
  momentum?: number
  /** Learn a per-channel `weight` (init 1) and `bias` (init 0) (default true). */
  affine?: boolean
  /** Keep running statistics for evaluation (default true); without them the batch's are always used. */
  trackRunningStats?: boolean
  /** dtype of the parameters and running statistics: `'float32'` (default) or `'float64'`. */
  dtype?: FloatDType
}

const BATCH_NORM2D_OPTIONS = optionKeys<BatchNorm2dOptions>({ eps: true, momentum: true, affine: true, trackRunningStats: true, dtype: true })

/**
 * Batch normalisation of NCHW images, per channel:
 * `y = (x − mean) / √(var + eps) · weight + bias`.
 *
 * In training mode mean and variance are the batch's (over N, H, W) and the running statistics
 * are updated in place: `r ← (1 − momentum)·r + momentum·stat` (the variance unbiased), and
 * `num_batches_tracked` counts the batches. In evaluation mode (`eval()`) the running
 * statistics normalise instead.
 *
 * Shapes: `[N, numFeatures, H, W]` → the same.
 *
 * State dict (PyTorch names and layouts, so `torchvision` weights load by name): parameters
 * `weight` and `bias` `[C]`, then the buffers `running_mean`, `running_var` `[C]` and
 * `num_batches_tracked` (int32 `[]`; PyTorch's int64 loads into it).
 */
export class BatchNorm2d extends Module {
  readonly numFeatures: number
  readonly eps: number
  readonly momentum: number
  readonly affine: boolean
  readonly trackRunningStats: boolean
  /** `[C]`, or null without `affine`. */
  readonly weight: Tensor | null
  /** `[C]`, or null without `affine`. */
  readonly bias: Tensor | null
  /** `[C]`, or null without `trackRunningStats`. */
  readonly running_mean: Tensor | null
  /** `[C]`, or null without `trackRunningStats`. */
  readonly running_var: Tensor | null
  /** int32 `[]`, or null without `trackRunningStats`. */
  readonly num_batches_tracked: Tensor | null

  constructor(numFeatures: number, options: BatchNorm2dOptions = {}) {
    super()
    const OP = 'BatchNorm2d'
    this.numFeatures = checkPositiveInt(OP, 'numFeatures', numFeatures)
    const o = checkOptions(OP, options, BATCH_NORM2D_OPTIONS)
    this.eps = numberArg(OP, 'eps', o.eps ?? 1e-5, { min: 0, minExclusive: true })
    if ((o.momentum as unknown) === null) throw new ValueError(OP, 'momentum must be a number in [0, 1]; a cumulative average (null) is not supported')
    this.momentum = numberArg(OP, 'momentum', o.momentum ?? 0.1, { min: 0, max: 1 })
    this.affine = boolArg(OP, 'affine', o.affine ?? true)
    this.trackRunningStats = boolArg(OP, 'trackRunningStats', o.trackRunningStats ?? true)
    const dtype = floatDTypeOption(OP, o.dtype)
    checkModelSize(OP, `a BatchNorm2d(${numFeatures})`, 4 * numFeatures, dtype)
    const c = [numFeatures]
    this.weight = this.registerParameter('weight', this.affine ? ones(c, { dtype }) : null)
    this.bias = this.registerParameter('bias', this.affine ? zeros(c, { dtype }) : null)
    const track = this.trackRunningStats
    const persistent = { persistent: true }
    this.running_mean = this.registerBuffer('running_mean', track ? zeros(c, { dtype }) : null, persistent)
    this.running_var = this.registerBuffer('running_var', track ? ones(c, { dtype }) : null, persistent)
    this.num_batches_tracked = this.registerBuffer('num_batches_tracked', track ? zeros([], { dtype: 'int32' }) : null, persistent)
  }

  /** `x [N, C, H, W]` → normalised, same shape; in training mode the running statistics move. */
  override forward(x: Tensor): Tensor {
    const s = tensorArg('BatchNorm2d.forward', 'x', x).shape
    if (s.length !== 4 || s[1] !== this.numFeatures) {
      throw new ShapeError('BatchNorm2d.forward', `expected input [N, ${this.numFeatures}, H, W], got [${s.join(', ')}]`)
    }
    const training = this.training || !this.trackRunningStats
    const y = batchNorm2d(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.running_mean,
      runningVar: this.running_var,
      training,
      momentum: this.momentum,
      eps: this.eps,
    })
    const n = this.num_batches_tracked
    if (this.training && n !== null) {
      // Counted on the tensor's device, without reading it back.
      noGrad(() => tidy(() => void n.assign(cast(addScalar(cast(n, 'float64'), 1), 'int32'))))
    }
    return y
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.affine}, trackRunningStats=${this.trackRunningStats}`
  }
}

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number
  /** Learn `weight` (init 1) and `bias` (init 0) of shape `normalizedShape` (default true). */
  elementwiseAffine?: boolean
  /** With `elementwiseAffine`, also learn the bias (default true). */
  bias?: boolean
  /** dtype of the parameters: `'float32'` (default) or `'float64'`. */
  dtype?: FloatDType
}

const LAYER_NORM_OPTIONS = optionKeys<LayerNormOptions>({ eps: true, elementwiseAffine: true, bias: true, dtype: true })

/**
 * Layer normalisation over the trailing `normalizedShape` dimensions of each input:
 * `y = (x − mean) / √(var + eps) · weight + bias` (PyTorch's `LayerNorm`, parameters `weight`
 * and `bias` of shape `normalizedShape`).
 *
 * Shapes: `[*, ...normalizedShape]` → the same.
 */
export class LayerNorm extends Module {
  readonly normalizedShape: number[]
  readonly eps: number
  readonly elementwiseAffine: boolean
  readonly weight: Tensor | null
  readonly bias: Tensor | null

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super()
    const OP = 'LayerNorm'
    const shape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape
    if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
      throw new ValueError(OP, `normalizedShape must be a positive integer or a non-empty array of them, got ${describe(normalizedShape)}`)
    }
    this.normalizedShape = [...shape]
    const o = checkOptions(OP, options, LAYER_NORM_OPTIONS)
    this.eps = numberArg(OP, 'eps', o.eps ?? 1e-5, { min: 0, minExclusive: true })
    this.elementwiseAffine = boolArg(OP, 'elementwiseAffine', o.elementwiseAffine ?? true)
    const hasBias = boolArg(OP, 'bias', o.bias ?? true)
    const dtype = floatDTypeOption(OP, o.dtype)
    const d = shape.reduce((a, b) => a * b, 1)
    checkModelSize(OP, `a LayerNorm([${shape.join(', ')}])`, 2 * d, dtype)
    this.weight = this.registerParameter('weight', this.elementwiseAffine ? ones(shape, { dtype }) : null)
    this.bias = this.registerParameter('bias', this.elementwiseAffine && hasBias ? zeros(shape, { dtype }) : null)
  }

  /** `x [*, ...normalizedShape]` → normalised, same shape. */
  override forward(x: Tensor): Tensor {
    tensorArg('LayerNorm.forward', 'x', x)
    return layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.eps })
  }

  override extraRepr(): string {
    return `[${this.normalizedShape.join(', ')}], eps=${this.eps}, elementwiseAffine=${this.elementwiseAffine}`
  }
}
