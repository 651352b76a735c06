/** Loss functions: `mse` and `crossEntropy`, and their module forms `MSELoss` and `CrossEntropyLoss`. */

import { checkOptions, optionKeys, tensorArg } from '../validate.js'
import type { Tensor } from '../tensor.js'
import { crossEntropy as crossEntropyOp, mse as mseOp } from '../ops/loss.js'
import { reshape } from '../ops/shape.js'
import { ShapeError, ValueError } from '../errors.js'
import { tidy } from '../scope.js'
import { Module } from './module.js'

/** How the per-element losses are combined. */
export type Reduction = 'mean' | 'sum'

/** Options of {@link mse}. */
export interface MSEOptions {
  /** `'mean'` (default) over all elements, `'sum'`, or `'none'` for the per-element losses. */
  reduction?: Reduction | 'none'
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this class index contribute nothing and are not counted in the mean (like PyTorch's `ignore_index`, which defaults to −100). */
  ignoreIndex?: number
  /** `'mean'` (default) over the targets that are not ignored, or `'sum'`. */
  reduction?: Reduction
}

const MSE_OPTIONS = optionKeys<MSEOptions>({ reduction: true })
const CROSS_ENTROPY_OPTIONS = optionKeys<CrossEntropyOptions>({ ignoreIndex: true, reduction: true })

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/**
 * Mean squared error:
 *
 *   ℓ = (1/N) Σᵢ (predᵢ − targetᵢ)²    (reduction `'mean'`, N = number of elements)
 *
 * `'sum'` drops the 1/N; `'none'` returns the tensor of (predᵢ − targetᵢ)².
 *
 * Shapes: `pred` and `target` `[*]`, the same shape; the result is a scalar `[]` (or `[*]` for `'none'`).
 */
export function mse(pred: Tensor, target: Tensor, options: MSEOptions = {}): Tensor {
  tensorArg('mse', 'pred', pred)
  tensorArg('mse', 'target', target)
  options = checkOptions('mse', options, MSE_OPTIONS)
  const reduction = options.reduction ?? 'mean'
  switch (reduction) {
    case 'mean':
      return mseOp(pred, target)
    case 'sum':
    case 'none': {
      if (pred.shape.length !== target.shape.length || pred.shape.some((d, i) => d !== target.shape[i])) {
        throw new ShapeError(`mse`, `expected target of the prediction's shape ${fmt(pred.shape)}, got ${fmt(target.shape)}`)
      }
      return tidy(() => {
        const sq = pred.sub(target).square()
        return reduction === 'sum' ? sq.sum() : sq
      })
    }
    default:
      throw new ValueError(`mse`, `reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`)
  }
}

/**
 * Softmax cross-entropy between unnormalised scores and class indices:
 *
 *   ℓₙ = −log softmax(logitsₙ)[targetₙ] = −logitsₙ[targetₙ] + log Σ_c exp(logitsₙ[c])
 *   ℓ = (1/N') Σₙ ℓₙ    (reduction `'mean'`; N' = number of targets ≠ ignoreIndex)
 *
 * Shapes (C classes):
 * - `logits`: `[N, C]`, or `[*, C]` with any leading axes (for example `[T, B, V]` from a
 *   language model). The class axis is the **last** one, as in Keras; for 2-D input this is
 *   PyTorch's layout too.
 * - `targets`: int32 `[N]`, or `[*]` matching the leading axes of `logits`, values in [0, C)
 *   or `ignoreIndex`
 * - result: a scalar `[]`
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  tensorArg('crossEntropy', 'logits', logits)
  tensorArg('crossEntropy', 'targets', targets)
  options = checkOptions('crossEntropy', options, CROSS_ENTROPY_OPTIONS)
  const reduction = options.reduction ?? 'mean'
  if (reduction !== 'mean' && reduction !== 'sum') {
    throw new ValueError(`crossEntropy`, `reduction must be 'mean' or 'sum', got '${String(reduction)}'`)
  }
  const ls = logits.shape
  const ts = targets.shape
  if (ls.length < 2 || ts.length !== ls.length - 1 || ts.some((d, i) => d !== ls[i])) {
    throw new ShapeError(
      'crossEntropy',
      `expected logits [*, C] and targets [*] with the same leading axes, got logits ${fmt(ls)} and targets ${fmt(ts)}`,
    )
  }
  const C = ls[ls.length - 1]!
  const N = numel(ts)
  // The flattened views are freed at once rather than when the GC finds them.
  return tidy(() => {
    const l2 = ls.length === 2 ? logits : reshape(logits, [N, C])
    const t1 = ts.length === 1 ? targets : reshape(targets, [N])
    const opts = options.ignoreIndex === undefined ? {} : { ignoreIndex: options.ignoreIndex }
    const loss = crossEntropyOp(l2, t1, opts)
    if (reduction === 'mean') return loss
    let count = N
    if (options.ignoreIndex !== undefined) {
      // The mean divides by the number of counted targets; read them to undo it.
      const t = t1.dataSync() as ArrayLike<number>
      count = 0
      for (let i = 0; i < t.length; i++) if (t[i] !== options.ignoreIndex) count++
    }
    return loss.mul(count)
  })
}

/** The module form of {@link mse}: `new MSELoss().forward(pred, target)`. */
export class MSELoss extends Module {
  readonly reduction: Reduction | 'none'
  constructor(options: MSEOptions = {}) {
    super()
    this.reduction = checkOptions('MSELoss', options, MSE_OPTIONS).reduction ?? 'mean'
  }
  /** `pred [*]`, `target [*]` → scalar loss (or `[*]` with `'none'`). */
  override forward(pred: Tensor, target: Tensor): Tensor {
    return mse(pred, target, { reduction: this.reduction })
  }
}

/** The module form of {@link crossEntropy}: `new CrossEntropyLoss({ ignoreIndex: 0 }).forward(logits, targets)`. */
export class CrossEntropyLoss extends Module {
  readonly options: CrossEntropyOptions
  constructor(options: CrossEntropyOptions = {}) {
    super()
    this.options = { ...checkOptions('CrossEntropyLoss', options, CROSS_ENTROPY_OPTIONS) }
  }
  /** `logits [*, C]`, `targets` int32 `[*]` → scalar loss. */
  override forward(logits: Tensor, targets: Tensor): Tensor {
    return crossEntropy(logits, targets, this.options)
  }
}
