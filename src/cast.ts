/**
 * Conversion between float32 and float64 on the host, for `Module.to(dtype)` and
 * `loadStateDict`: the addon has no cast op yet, so the values go through a typed array (the
 * read waits for pending work on the tensor). A native cast is planned; this file is the one
 * place to switch over.
 */

import { DTypeError } from './errors.js'
import { tensor } from './ops/factories.js'
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
 * without history. Blocks until `t` is computed.
 * @internal
 */
export function castOnHost(t: Tensor, dtype: FloatDType, device: Device = t.device): Tensor {
  if (!isFloatDType(t.dtype)) throw new DTypeError('cast', `only float32 and float64 tensors convert, got ${t.dtype as DType}`)
  const data = t.dataSync()
  const values = dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data)
  return tensor(values, t.shape, { dtype, device })
}
