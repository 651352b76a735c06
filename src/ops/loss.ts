/**
 * The fused losses `mse` and `crossEntropy` (plain means; `nn`'s losses add `reduction`);
 * mirrors `crates/core/src/ops/loss.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { checkOptions, numberArg, optionKeys } from '../validate.js'

/** Mean squared error `mean((pred − target)²)`: a scalar `[]`; shapes must match. */
export function mse(pred: Tensor, target: Tensor): Tensor {
  return op(() => native.mse(handle('mse', pred, 'pred'), handle('mse', target, 'target')))
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this class are skipped (and excluded from the mean). */
  ignoreIndex?: number
}

const CROSS_ENTROPY_OPTIONS = optionKeys<CrossEntropyOptions>({ ignoreIndex: true })

/**
 * Cross-entropy of `logits [N, C]` against integer class `targets [N]` (int32):
 * `−(1/N') Σₙ log softmax(logitsₙ)[targetsₙ]`, averaged over the N' targets not equal to
 * `ignoreIndex`. A scalar `[]`.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const ig = checkOptions('crossEntropy', options, CROSS_ENTROPY_OPTIONS).ignoreIndex
  if (ig !== undefined) numberArg('crossEntropy', 'ignoreIndex', ig, { integer: true })
  return op(() => native.crossEntropy(handle('crossEntropy', logits, 'logits'), handle('crossEntropy', targets, 'targets'), ig ?? null))
}
