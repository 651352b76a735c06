/**
 * `softmax` and `logSoftmax` along an axis; mirrors `crates/core/src/ops/softmax.rs`.
 */

import type { Tensor } from '../tensor.js'
import { tensorArg } from '../validate.js'

/** `softmax(x)ᵢ = exp(xᵢ) / Σⱼ exp(xⱼ)` along `axis` (default last); same shape as `x`. */
export function softmax(x: Tensor, axis = -1): Tensor {
  tensorArg('softmax', 'x', x)
  return x.softmax(axis)
}

/** `xᵢ − log Σⱼ exp(xⱼ)` along `axis` (default last), computed stably; same shape as `x`. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  tensorArg('logSoftmax', 'x', x)
  return x.logSoftmax(axis)
}
