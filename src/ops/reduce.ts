/**
 * Reductions: `sum` and `mean` over any set of axes; mirrors `crates/core/src/ops/reduce.rs`.
 */

import type { Tensor } from '../tensor.js'
import { tensorArg } from '../validate.js'

/** `Σ x` over `axes` (default: every axis, giving a scalar `[]`); `keepdim` keeps size-1 axes. */
export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  tensorArg('sum', 'x', x)
  return x.sum(axes, keepdim)
}

/** Mean of `x` over `axes` (default: every axis, giving a scalar `[]`). */
export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  tensorArg('mean', 'x', x)
  return x.mean(axes, keepdim)
}
