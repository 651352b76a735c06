/**
 * Conversion between float32 and float64 for `Module.to(dtype)` and `loadStateDict`: a native
 * `cast` on the tensor's device (no read back to the host), then a copy to the target device.
 */

import { DTypeError } from './errors.js'
import { cast } from './ops/cast.js'
import { noGrad } from './ops/grad.js'
import type { Device } from './device.js'
import type { DType, FloatDType, Tensor } from './tensor.js'

/** True for float32 and float64. @internal */
export function isFloatDType(d: unknown): d is FloatDType {
  return d === 'float32' || d === 'float64'
}

/**
 * Checks a module's `dtype` option (default float32).
 * @throws DTypeError for anything but `'float32'` and `'float64'`.
 * @internal
 */
export function floatDTypeOption(op: string, dtype: unknown): FloatDType {
  if (dtype === undefined) return 'float32'
  if (isFloatDType(dtype)) return dtype
  throw new DTypeError(op, `dtype must be 'float32' or 'float64', got ${typeof dtype === 'string' ? `'${dtype}'` : String(dtype)}`)
}

/**
 * A new leaf holding the values of float tensor `t` as `dtype`, on `device` (default `t`'s),
 * without history. Enqueued like any op: nothing waits for `t` (a failure of `t` surfaces at the
 * next read of the result, as for other ops).
 * @internal
 */
export function castLeaf(t: Tensor, dtype: FloatDType, device: Device = t.device): Tensor {
  if (!isFloatDType(t.dtype)) throw new DTypeError('cast', `only float32 and float64 tensors convert, got ${t.dtype as DType}`)
  return noGrad(() => {
    // Under noGrad the cast records no history: its result is already a leaf.
    const converted = t.dtype === dtype ? t.detach() : cast(t, dtype)
    if (converted.device === device) return converted
    const moved = converted.to(device)
    converted.dispose()
    return moved
  })
}
