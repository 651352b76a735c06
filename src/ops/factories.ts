/**
 * Tensor factories: `tensor` (from numbers, nested arrays or typed arrays), `zeros`, `ones`,
 * `full` and their `*Like` forms, and the argument checks and device placement that the
 * random factories share. Values are made on the CPU and then copied to the requested device.
 */

import { DTypeError, ShapeError, ValueError, wrap } from '../errors.js'
import { native } from '../native.js'
import { Tensor, handle, op, type DType, type TypedArray } from '../tensor.js'
import { requireDevice, type Device } from '../device.js'
import { checkOptions, describe, int32Arg, numberArg, optionKeys } from '../validate.js'

/** Nested arrays of numbers (rectangular), as accepted by {@link tensor}. */
export type NestedNumbers = number | readonly NestedNumbers[]

/** Options of the factories. */
export interface DTypeOptions {
  /** Element type; default `'float32'` (or the typed array's own type). */
  dtype?: DType
  /**
   * Where to create the tensor: `'cpu'` (default), `'cuda'` (= `'cuda:0'`) or `'cuda:N'`. The
   * values are made on the CPU (so a seed gives the same values on every device) and copied.
   * A CUDA device without CUDA throws a `CudaUnavailableError` saying what is missing.
   */
  device?: Device
}

/** The keys of {@link DTypeOptions}. @internal */
export const DTYPE_OPTIONS = optionKeys<DTypeOptions>({ dtype: true, device: true })

/** The checked `dtype` option. @internal */
export function checkDType(opName: string, dtype: unknown): DType {
  if (dtype === 'float32' || dtype === 'float64' || dtype === 'int32') return dtype
  throw new DTypeError(opName, `expected dtype 'float32', 'float64' or 'int32', got ${String(dtype)}`)
}

/** The checked shape argument (a number means a 1-D shape). @internal */
export function shapeArg(opName: string, shape: number | readonly number[]): number[] {
  const s = typeof shape === 'number' ? [shape] : shape
  if (!Array.isArray(s)) throw new ShapeError(opName, `a shape (array of positive integers), got ${describe(shape)}`)
  for (const [i, d] of s.entries()) {
    // Other types would reach the addon as a raw conversion error.
    if (typeof d !== 'number') throw new ShapeError(opName, `a shape of positive integers, got ${describe(d)} at index ${i}`)
  }
  return s as number[]
}

/** Infers the shape of rectangular nested arrays and flattens them. */
function flatten(data: NestedNumbers): { shape: number[]; values: number[] } {
  if (typeof data === 'number') return { shape: [], values: [data] }
  const shape: number[] = []
  let level: unknown = data
  while (Array.isArray(level)) {
    shape.push(level.length)
    if (level.length === 0) break
    level = level[0]
  }
  const values: number[] = []
  const walk = (x: unknown, d: number, path: string): void => {
    if (d === shape.length) {
      if (typeof x !== 'number') throw new ValueError('tensor', `expected a number at ${path || 'the top'}, got ${Array.isArray(x) ? 'an array' : typeof x}`)
      values.push(x)
      return
    }
    if (!Array.isArray(x) || x.length !== shape[d]) {
      throw new ShapeError('tensor', `a rectangular nested array of shape [${shape.join(', ')}], got ${Array.isArray(x) ? `length ${x.length}` : typeof x} at ${path || 'the top'}`)
    }
    for (let i = 0; i < x.length; i++) walk(x[i], d + 1, `${path}[${i}]`)
  }
  walk(data, 0, '')
  return { shape, values }
}

function checkedInt32(values: ArrayLike<number>): Int32Array {
  const out = new Int32Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
      throw new ValueError('tensor', `int32 values must be integers in [-2^31, 2^31), got ${v} at index ${i}`)
    }
    out[i] = v
  }
  return out
}

/**
 * A leaf tensor holding a copy of `data`.
 *
 * - `data`: a number (scalar, shape `[]`), nested arrays (shape inferred), or a flat array /
 *   Float32Array / Float64Array / Int32Array (shape `[length]` unless `shape` is given).
 * - `shape`: the shape to give the row-major values; its product must equal their count.
 * - `dtype`: default `'float32'`, or the typed array's own type.
 * - `device`: default `'cpu'`; `'cuda'` or `'cuda:N'` copies the values to that device.
 */
export function tensor(data: NestedNumbers | TypedArray, shape?: readonly number[], options: DTypeOptions = {}): Tensor {
  let values: ArrayLike<number>
  let inferred: number[]
  let dtype: DType
  options = checkOptions('tensor', options, DTYPE_OPTIONS)
  if (data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array) {
    values = data
    inferred = [data.length]
    dtype = data instanceof Float64Array ? 'float64' : data instanceof Int32Array ? 'int32' : 'float32'
  } else {
    const f = flatten(data)
    values = f.values
    inferred = f.shape
    dtype = 'float32'
  }
  if (options.dtype !== undefined) dtype = checkDType('tensor', options.dtype)
  const dev = deviceOption('tensor', options.device)
  const s = shape === undefined ? inferred : shapeArg('tensor', shape)
  return placed(dev, () => wrap(() => {
    switch (dtype) {
      case 'float32':
        return new Tensor(native.fromFloat32(values instanceof Float32Array ? values : Float32Array.from(values), s))
      case 'float64':
        return new Tensor(native.fromFloat64(values instanceof Float64Array ? values : Float64Array.from(values), s))
      case 'int32':
        return new Tensor(native.fromInt32(values instanceof Int32Array ? values : checkedInt32(values), s))
    }
  }))
}

/** A leaf tensor of `shape` filled with zeros. */
export function zeros(shape: number | readonly number[], options: DTypeOptions = {}): Tensor {
  return filled('zeros', shape, 0, options)
}

/** A leaf tensor of `shape` filled with ones. */
export function ones(shape: number | readonly number[], options: DTypeOptions = {}): Tensor {
  return filled('ones', shape, 1, options)
}

/** A leaf tensor of `shape` filled with `value`. */
export function full(shape: number | readonly number[], value: number, options: DTypeOptions = {}): Tensor {
  return filled('full', shape, value, options)
}

/** A leaf tensor of the shape of `t`, filled with zeros; dtype and device default to `t`'s. */
export function zerosLike(t: Tensor, options: DTypeOptions = {}): Tensor {
  handle('zerosLike', t, 't')
  options = checkOptions('zerosLike', options, DTYPE_OPTIONS)
  return filled('zerosLike', t.shape, 0, { dtype: options.dtype ?? t.dtype, device: options.device ?? t.device })
}

/** A leaf tensor of the shape of `t`, filled with ones; dtype and device default to `t`'s. */
export function onesLike(t: Tensor, options: DTypeOptions = {}): Tensor {
  handle('onesLike', t, 't')
  options = checkOptions('onesLike', options, DTYPE_OPTIONS)
  return filled('onesLike', t.shape, 1, { dtype: options.dtype ?? t.dtype, device: options.device ?? t.device })
}

/** `value` everywhere (native zeros for 0), on the requested device; errors name `opName`. */
function filled(opName: string, shape: number | readonly number[], value: number, options: DTypeOptions): Tensor {
  options = checkOptions(opName, options, DTYPE_OPTIONS)
  const dtype = checkDType(opName, options.dtype ?? 'float32')
  // int32 fills take what tensor() takes: integers in range, not saturated or truncated casts.
  if (dtype === 'int32') int32Arg(opName, 'an int32 fill value', value)
  else numberArg(opName, 'the fill value', value, { nonFinite: true })
  const dev = deviceOption(opName, options.device)
  const s = shapeArg(opName, shape)
  return placed(dev, () => op(() => (value === 0 && !Object.is(value, -0) ? native.zeros(s, dtype) : native.full(s, value, dtype))))
}

/**
 * `make()` (a CPU tensor) placed on `device`: checked first (nothing is made when the device is
 * invalid or CUDA is unavailable), then copied and the CPU copy released.
 * @internal
 */
export function placed(device: string | undefined, make: () => Tensor): Tensor {
  const t = make()
  if (device === undefined || device === 'cpu') return t
  try {
    return t.to(device as Device)
  } finally {
    t.dispose()
  }
}

/** The checked `device` option (before anything is made or a seed is drawn). @internal */
export function deviceOption(opName: string, device: Device | undefined): string | undefined {
  return device === undefined ? undefined : requireDevice(opName, device)
}
