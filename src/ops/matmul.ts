/**
 * Matrix products: `matmul` (batched over broadcast leading dims) and `linear` (PyTorch's
 * `x · wᵀ + b`); mirrors `crates/core/src/ops/matmul.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'

/** Matrix product `a · b`: `[M, K] · [K, N] → [M, N]`, batched over broadcast leading dims. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return op(() => native.matmul(handle('matmul', a, 'a'), handle('matmul', b, 'b')))
}

/**
 * Affine map `y = x · wᵀ + b`, PyTorch's layout: `x [N, I]`, `w [O, I]`, `b [O]` → `y [N, O]`.
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return op(() => native.linear(handle('linear', x, 'x'), handle('linear', w, 'w'), b ? handle('linear', b, 'b') : null))
}
