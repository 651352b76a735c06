/**
 * `embedding`: a row lookup `weight[indices]`; mirrors `crates/core/src/ops/embedding.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'

/**
 * Looks up rows of `weight [V, E]` by integer `indices` (int32, any shape `[...]`):
 * `out[..., :] = weight[indices[...], :]`, shape `[..., E]`. An index outside `[0, V)` poisons
 * the output: the error surfaces at the next read.
 */
export function embedding(weight: Tensor, indices: Tensor): Tensor {
  return op(() => native.embedding(handle('embedding', weight, 'weight'), handle('embedding', indices, 'indices')))
}
