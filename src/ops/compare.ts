/**
 * Comparisons and masks: `eq`/`lt`/`gt` (int32 0/1), `where`, `maskedFill` and `sequenceMask`;
 * mirrors `crates/core/src/ops/compare.rs`.
 *
 * Shapes: B batch, T time steps; `[*]` any shape. Operands broadcast as in NumPy (as `add`).
 */

import { native } from '../native.js'
import { handle, op, Tensor } from '../tensor.js'
import type { Device } from '../device.js'
import { full } from './factories.js'
import { checkOptions, optionKeys, typeError } from '../validate.js'

function operand(name: string, like: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return full([1], b, { dtype: like.dtype, device: like.device })
  handle(name, b, 'b')
  return b
}

/**
 * `a == b` elementwise → int32 `[*]` of 1/0 (the broadcast shape). `b` may be a number (compared
 * in `a`'s dtype). Both tensors must have one dtype. No gradient; NaN equals nothing.
 * @throws DTypeError when the dtypes differ. @throws ShapeError when the shapes do not broadcast.
 */
export function eq(a: Tensor, b: Tensor | number): Tensor {
  const bb = operand('eq', a, b)
  return op(() => native.eq(handle('eq', a, 'a'), bb._native))
}

/** `a < b` elementwise → int32 1/0, broadcasting (see {@link eq}). NaN compares false. */
export function lt(a: Tensor, b: Tensor | number): Tensor {
  const bb = operand('lt', a, b)
  return op(() => native.lt(handle('lt', a, 'a'), bb._native))
}

/** `a > b` elementwise → int32 1/0, broadcasting (see {@link eq}). NaN compares false. */
export function gt(a: Tensor, b: Tensor | number): Tensor {
  const bb = operand('gt', a, b)
  return op(() => native.gt(handle('gt', a, 'a'), bb._native))
}

/**
 * `cond ? a : b` elementwise: `cond` int32 (non-zero is true, e.g. from `eq`/`lt`/`gt` or
 * `sequenceMask`), `a` and `b` of one dtype; all three broadcast together. Gradients flow to `a`
 * (where `cond` holds) and `b` (elsewhere), summed over broadcast dimensions.
 * @throws DTypeError for a non-int32 `cond` or `a`, `b` of different dtypes.
 */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  return op(() => native.where(handle('where', cond, 'cond'), handle('where', a, 'a'), handle('where', b, 'b')))
}

/**
 * `x` with `value` wherever the int32 `mask` is non-zero; `mask` broadcasts to x's shape `[*]`
 * (e.g. `[B, 1]` over `[B, T]`). The gradient flows to `x` at the unfilled positions. An int32
 * `x` takes an integer `value`.
 * @throws ShapeError when the mask does not broadcast to x's shape.
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  return op(() => native.maskedFill(handle('maskedFill', x, 'x'), handle('maskedFill', mask, 'mask'), value))
}

/** Options of {@link sequenceMask}. */
export interface SequenceMaskOptions {
  /** Where to make the mask from array lengths (default `'cpu'`); a Tensor's mask is on its device. */
  device?: Device
}

const SEQUENCE_MASK_OPTIONS = optionKeys<SequenceMaskOptions>({ device: true })

/**
 * int32 `[B, T]` with 1 where `t < lengths[b]` and 0 past each row's length. `lengths [B]` is an
 * int32 Tensor (stays on its device; no read back), an `Int32Array` or numbers, each an integer
 * in `[1, T]` (the rule of the recurrent layers' `lengths`).
 * @throws ValueError for a length outside `[1, T]` (a Tensor computed by pending ops: at the next
 * read of the result).
 */
export function sequenceMask(
  lengths: Tensor | Int32Array | readonly number[],
  T: number,
  options: SequenceMaskOptions = {},
): Tensor {
  options = checkOptions('sequenceMask', options, SEQUENCE_MASK_OPTIONS)
  if (lengths instanceof Tensor) return op(() => native.sequenceMask(lengths._native, T))
  if (!(lengths instanceof Int32Array) && !Array.isArray(lengths)) {
    throw typeError('sequenceMask', "argument 'lengths'", 'an int32 Tensor, an Int32Array or an array of numbers', lengths)
  }
  const mask = op(() => native.sequenceMaskNumbers(Array.from(lengths as ArrayLike<number>), T))
  if (options.device === undefined) return mask
  const moved = mask.to(options.device)
  if (moved !== mask) mask.dispose()
  return moved
}
