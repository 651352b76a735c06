/**
 * Shape ops: `reshape`, `flatten`, `transpose`, `concat`, `stack`, `slice` and `split`;
 * mirrors `crates/core/src/ops/shape.rs` (`flatten` is a reshape).
 */

import { ValueError, wrap } from '../errors.js'
import { native } from '../native.js'
import { Tensor, handle, normAxis, op } from '../tensor.js'
import { shapeArg } from './factories.js'
import { typeError } from '../validate.js'

/** The same data with a new shape of the same size; one dimension may be `-1`. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.reshape(handle('reshape', x, 'x'), shapeArg('reshape', shape)))
}

/**
 * Merges dimensions `startDim..endDim` (inclusive; negative counts from the end; default all)
 * into one, as PyTorch's `flatten`: `[N, C, H, W]` with `startDim = 1` → `[N, C·H·W]`.
 */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  handle('flatten', x, 'x')
  if (x.rank === 0) return reshape(x, [1])
  const s = normAxis('flatten', startDim, x.rank)
  const e = normAxis('flatten', endDim, x.rank)
  if (s > e) throw new ValueError('flatten', `startDim must not come after endDim, got ${startDim} and ${endDim} for a tensor of rank ${x.rank}`)
  const merged = x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1)
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)])
}

/** Swaps dimensions `d0` and `d1` of `x` (negative counts from the end; default the last two). */
export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  handle('transpose', x, 'x')
  return x.transpose(d0, d1)
}

function tensorList(opName: string, ts: readonly Tensor[]) {
  if (!Array.isArray(ts)) throw typeError(opName, "argument 'tensors'", 'a non-empty array of Tensors', ts)
  if (ts.length === 0) throw new ValueError(opName, 'expected a non-empty array of tensors')
  return ts.map((t, i) => handle(opName, t, `tensors[${i}]`))
}

/**
 * Joins tensors along an existing `axis` (default 0): shapes must agree except on `axis`,
 * whose sizes add up.
 */
export function concat(ts: readonly Tensor[], axis = 0): Tensor {
  const hs = tensorList('concat', ts)
  const a = normAxis('concat', axis, ts[0]!.rank)
  return op(() => native.concat(hs, a))
}

/** Joins same-shaped tensors along a new `axis` (default 0): `n × [d...] → [.., n, ..]`. */
export function stack(ts: readonly Tensor[], axis = 0): Tensor {
  const hs = tensorList('stack', ts)
  const a = normAxis('stack', axis, ts[0]!.rank + 1)
  return op(() => native.stack(hs, a))
}

/**
 * `length` entries of `x` along `axis`, starting at `start` (negative `start` counts from the
 * end); the result keeps the axis, with size `length`.
 */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis('slice', axis, x.rank)
  const n = x.shape[a]!
  const s = start < 0 ? start + n : start
  return op(() => native.slice(handle('slice', x, 'x'), a, s, length))
}

/** Splits `x` along `axis` into consecutive pieces of the given sizes (summing to its length). */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const a = normAxis('split', axis, x.rank)
  return wrap(() => native.split(handle('split', x, 'x'), a, sizes as number[])).map((h) => new Tensor(h))
}
