/**
 * Index ops along an axis: `argmax`, `max` (values and indices), `topk`, `gather` and
 * `indexSelect`; mirrors `crates/core/src/ops/index.rs`. Axes may be negative (`-1` is the last).
 *
 * Order is deterministic everywhere: ties go to the lower index (as PyTorch's `max`), and NaN
 * counts as larger than every number.
 */

import { native } from '../native.js'
import { handle, normAxis, op, valuesIndices as pair, type Tensor, type TopkOptions, type ValuesIndices } from '../tensor.js'
import { wrap } from '../errors.js'

export type { ValuesIndices }

/**
 * The int32 index of the largest value along `axis`: x's shape without `axis` (size 1 with
 * `keepdim`). E.g. logits `[B, V]` → token ids `[B]`. Ties give the first index.
 */
export function argmax(x: Tensor, axis: number, keepdim = false): Tensor {
  handle('argmax', x, 'x')
  const a = normAxis('argmax', axis, x.rank)
  return op(() => native.argmax(x._native, a, keepdim))
}

/**
 * The largest values along `axis` and their int32 indices, each x's shape without `axis` (size 1
 * with `keepdim`). Ties give the first index. The values are differentiable.
 */
export function max(x: Tensor, axis: number, keepdim = false): ValuesIndices {
  handle('max', x, 'x')
  const a = normAxis('max', axis, x.rank)
  return pair(wrap(() => native.max(x._native, a, keepdim)))
}

export type { TopkOptions }

/**
 * The `k` largest (or smallest) values along `axis` (default last) and their int32 indices: x's
 * shape with `axis` of size k, e.g. scores `[B, K·V]` → `[B, k]` for beam search. Ties: the lower
 * index first. The values are differentiable (the gradient scatters back to their positions).
 * @throws ValueError unless `1 ≤ k ≤ x.shape[axis]`.
 */
export function topk(x: Tensor, k: number, axis = -1, options: TopkOptions = {}): ValuesIndices {
  handle('topk', x, 'x')
  return x.topk(k, axis, options)
}

/**
 * PyTorch's `gather`: `index` is int32 of x's rank, no larger than x on the other axes, and
 * `out[i][j] = x[i][index[i][j]]` for axis 1 (likewise for any axis); the output has index's
 * shape. E.g. log-probabilities `[B, V]` at targets `[B, 1]` → `[B, 1]`. Backward scatter-adds.
 * @throws ValueError for an index outside `[0, x.shape[axis])` (pending indices: at the next read).
 */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  handle('gather', x, 'x')
  const a = normAxis('gather', axis, x.rank)
  return op(() => native.gather(x._native, a, handle('gather', index, 'index')))
}

/**
 * The slices of `x` at int32 `index [M]` along `axis`, in that order: x's shape with `axis` of
 * size M. E.g. decoder states `[B·K, H]` reordered by beam parents. Repeats are allowed (their
 * gradients add up).
 * @throws ValueError for an index outside `[0, x.shape[axis])` (pending indices: at the next read).
 */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  handle('indexSelect', x, 'x')
  const a = normAxis('indexSelect', axis, x.rank)
  return op(() => native.indexSelect(x._native, a, handle('indexSelect', index, 'index')))
}
