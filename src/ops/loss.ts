/**
 * The fused losses `mse` and `crossEntropy` (plain means; `nn`'s losses add `reduction`);
 * mirrors `crates/core/src/ops/loss.rs`.
 */

import { ValueError } from '../errors.js'
import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'

/** Mean squared error `mean((pred − target)²)`: a scalar `[]`; shapes must match. */
export function mse(pred: Tensor, target: Tensor): Tensor {
  return op(() => native.mse(handle('mse', pred), handle('mse', target)))
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this class are skipped (and excluded from the mean). */
  ignoreIndex?: number
}

/**
 * Cross-entropy of `logits [N, C]` against integer class `targets [N]` (int32):
 * `−(1/N') Σₙ log softmax(logitsₙ)[targetsₙ]`, averaged over the N' targets not equal to
 * `ignoreIndex`. A scalar `[]`.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const ig = options.ignoreIndex
  if (ig !== undefined && !Number.isInteger(ig)) throw new ValueError('crossEntropy', `ignoreIndex must be an integer, got ${ig}`)
  return op(() => native.crossEntropy(handle('crossEntropy', logits), handle('crossEntropy', targets), ig ?? null))
}
