/**
 * Normalisations: `batchNorm2d` (per channel, batch or running statistics, updating the running
 * ones in place in training) and `layerNorm` (over trailing dimensions); mirrors
 * `crates/core/src/ops/norm.rs`.
 */

import { ValueError } from '../errors.js'
import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { boolArg, checkOptions, describe, numberArg, optionKeys, tensorArg } from '../validate.js'

/** Options of {@link batchNorm2d}. */
export interface BatchNorm2dOptions {
  /** Per-channel scale `[C]` (default none). */
  weight?: Tensor | null
  /** Per-channel shift `[C]` (default none). */
  bias?: Tensor | null
  /** Running mean `[C]`: read in evaluation, updated in place in training. */
  runningMean?: Tensor | null
  /** Running variance `[C]`, as `runningMean` (the update uses the unbiased batch variance). */
  runningVar?: Tensor | null
  /** Normalise with the batch's statistics (default false, as PyTorch's `batch_norm`). */
  training?: boolean
  /** Weight of the new batch statistic in the running update, in [0, 1] (default 0.1). */
  momentum?: number
  /** Added to the variance (default 1e-5). */
  eps?: number
}

const BATCH_NORM2D_OPTIONS = optionKeys<BatchNorm2dOptions>({
  weight: true,
  bias: true,
  runningMean: true,
  runningVar: true,
  training: true,
  momentum: true,
  eps: true,
})

function optTensor(opName: string, what: string, v: unknown): Tensor | null {
  return v === undefined || v === null ? null : tensorArg(opName, what, v, 'option')
}

function eps(opName: string, v: unknown): number {
  return numberArg(opName, 'eps', v ?? 1e-5, { min: 0, minExclusive: true })
}

/**
 * Batch normalisation of `x [N, C, H, W]` (PyTorch's `batch_norm`):
 * `y = (x − mean) / √(var + eps) · weight + bias` per channel. In training, mean and variance
 * are the batch's (over N, H, W) and the running statistics, when given, are updated in place:
 * `r ← (1 − momentum)·r + momentum·stat` with the unbiased variance. In evaluation the running
 * statistics are used (and required).
 */
export function batchNorm2d(x: Tensor, options: BatchNorm2dOptions = {}): Tensor {
  const OP = 'batchNorm2d'
  tensorArg(OP, 'x', x)
  const o = checkOptions(OP, options, BATCH_NORM2D_OPTIONS)
  const weight = optTensor(OP, 'weight', o.weight)
  const bias = optTensor(OP, 'bias', o.bias)
  const rm = optTensor(OP, 'runningMean', o.runningMean)
  const rv = optTensor(OP, 'runningVar', o.runningVar)
  const training = boolArg(OP, 'training', o.training ?? false)
  const momentum = numberArg(OP, 'momentum', o.momentum ?? 0.1, { min: 0, max: 1 })
  const e = eps(OP, o.eps)
  if ((rm === null) !== (rv === null)) {
    throw new ValueError(OP, `runningMean and runningVar must be given together, got ${describe(rm ?? rv)} for only one of them`)
  }
  if (!training && rm === null) {
    throw new ValueError(OP, 'evaluation (training: false) needs runningMean and runningVar, got neither')
  }
  return op(() =>
    native.batchNorm2d(
      handle(OP, x, 'x'),
      weight && handle(OP, weight, 'weight'),
      bias && handle(OP, bias, 'bias'),
      rm && handle(OP, rm, 'runningMean'),
      rv && handle(OP, rv, 'runningVar'),
      training,
      momentum,
      e,
    ),
  )
}

/** Options of {@link layerNorm}. */
export interface LayerNormOptions {
  /** Scale of shape `normalizedShape` (default none). */
  weight?: Tensor | null
  /** Shift of shape `normalizedShape` (default none). */
  bias?: Tensor | null
  /** Added to the variance (default 1e-5). */
  eps?: number
}

const LAYER_NORM_OPTIONS = optionKeys<LayerNormOptions>({ weight: true, bias: true, eps: true })

/**
 * Layer normalisation (PyTorch's `layer_norm`): every row of `x [..., *normalizedShape]` is
 * normalised over its trailing `normalizedShape` dimensions (mean and biased variance), then
 * scaled by `weight` and shifted by `bias`. Same shape as `x`.
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], options: LayerNormOptions = {}): Tensor {
  const OP = 'layerNorm'
  tensorArg(OP, 'x', x)
  const shape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ValueError(OP, `normalizedShape must be a positive integer or a non-empty array of them, got ${describe(normalizedShape)}`)
  }
  const o = checkOptions(OP, options, LAYER_NORM_OPTIONS)
  const weight = optTensor(OP, 'weight', o.weight)
  const bias = optTensor(OP, 'bias', o.bias)
  const e = eps(OP, o.eps)
  return op(() => native.layerNorm(handle(OP, x, 'x'), shape as number[], weight && handle(OP, weight, 'weight'), bias && handle(OP, bias, 'bias'), e))
}
