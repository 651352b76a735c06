/**
 * Elementwise ops: broadcasting arithmetic (either operand may be a plain number), activations,
 * and the `broadcastTo`/`sumTo` pair; mirrors `crates/core/src/ops/elementwise.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { full, shapeArg, tensor } from './factories.js'

function scalarLike(x: Tensor, v: number): Tensor {
  return full([1], v, { dtype: x.dtype, device: x.device })
}

/** `a + b`, elementwise with NumPy broadcasting (either may be a number). */
export function add(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a + b)
    return b.addScalar(a)
  }
  return a.add(b)
}

/** `a − b`, elementwise with broadcasting (either may be a number). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a - b)
    return b.neg().addScalar(a)
  }
  return a.sub(b)
}

/** `a ⊙ b`, elementwise with broadcasting (either may be a number). */
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a * b)
    return b.scale(a)
  }
  return a.mul(b)
}

/** `a / b`, elementwise with broadcasting (either may be a number). */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a / b)
    return scalarLike(b, a).div(b)
  }
  return a.div(b)
}

/** `−x`. */
export function neg(x: Tensor): Tensor {
  return op(() => native.neg(handle('neg', x)))
}
/** `eˣ`, elementwise. */
export function exp(x: Tensor): Tensor {
  return op(() => native.exp(handle('exp', x)))
}
/** `ln x`, elementwise. */
export function log(x: Tensor): Tensor {
  return op(() => native.log(handle('log', x)))
}
/** `tanh x`, elementwise. */
export function tanh(x: Tensor): Tensor {
  return op(() => native.tanh(handle('tanh', x)))
}
/** `σ(x) = 1 / (1 + e^−x)`, elementwise. */
export function sigmoid(x: Tensor): Tensor {
  return op(() => native.sigmoid(handle('sigmoid', x)))
}
/** `max(x, 0)`, elementwise. */
export function relu(x: Tensor): Tensor {
  return op(() => native.relu(handle('relu', x)))
}
/** `x²`, elementwise. */
export function square(x: Tensor): Tensor {
  return op(() => native.square(handle('square', x)))
}
/** `√x`, elementwise. */
export function sqrt(x: Tensor): Tensor {
  return op(() => native.sqrt(handle('sqrt', x)))
}
/** `c · x`. */
export function scale(x: Tensor, c: number): Tensor {
  handle('scale', x)
  return x.scale(c)
}
/** `x + c`. */
export function addScalar(x: Tensor, c: number): Tensor {
  handle('addScalar', x)
  return x.addScalar(c)
}

/** Expands `x` to `shape` by broadcasting (materialised copy). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.broadcastTo(handle('broadcastTo', x), shapeArg('broadcastTo', shape)))
}

/** Sums `x` down to `shape` over the dimensions broadcasting expanded (adjoint of broadcastTo). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.sumTo(handle('sumTo', x), shapeArg('sumTo', shape)))
}
