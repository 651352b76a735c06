/**
 * `cast`: conversion between float32, float64 and int32; mirrors `crates/core/src/ops/cast.rs`.
 */

import { native } from '../native.js'
import { handle, op, type DType, type Tensor } from '../tensor.js'

/**
 * `x` as `dtype`, same shape and device; `x` itself when it already has that dtype. Float to
 * float keeps the graph (the gradient is converted back); float to int32 truncates toward zero,
 * as PyTorch's `.to(torch.int32)`; conversions to or from int32 have no gradient.
 * @throws ValueError for NaN, ±Infinity or values outside int32's range when converting to int32
 * (values of pending ops: at the next read of the result).
 * @throws DTypeError for a dtype other than `'float32'`, `'float64'` and `'int32'`.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  handle('cast', x, 'x')
  if (x.dtype === dtype) return x
  return op(() => native.cast(x._native, dtype))
}
