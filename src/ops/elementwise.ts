/**
 * Elementwise ops: broadcasting arithmetic (either operand may be a plain number), activations,
 * and the `broadcastTo`/`sumTo` pair; mirrors `crates/core/src/ops/elementwise.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { full, shapeArg, tensor } from './factories.js'

/** Both operands of a binary op are Tensors or numbers (a plain array is refused by name). */
function operands(opName: string, a: unknown, b: unknown): void {
  if (typeof a !== 'number') handle(opName, a as Tensor, 'a', 'a Tensor or a number')
  if (typeof b !== 'number') handle(opName, b as Tensor, 'b', 'a Tensor or a number')
}

function scalarLike(x: Tensor, v: number): Tensor {
  return full([1], v, { dtype: x.dtype, device: x.device })
}

/** `a + b`, elementwise with NumPy broadcasting (either may be a number). */
export function add(a: Tensor | number, b: Tensor | number): Tensor {
  operands('add', a, b)
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a + b)
    return b.addScalar(a)
  }
  return a.add(b)
}

/** `a − b`, elementwise with broadcasting (either may be a number). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  operands('sub', a, b)
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a - b)
    return b.neg().addScalar(a)
  }
  return a.sub(b)
}

/** `a ⊙ b`, elementwise with broadcasting (either may be a number). */
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  operands('mul', a, b)
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a * b)
    return b.scale(a)
  }
  return a.mul(b)
}

/** `a / b`, elementwise with broadcasting (either may be a number). */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  operands('div', a, b)
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a / b)
    return scalarLike(b, a).div(b)
  }
  return a.div(b)
}

/** `−x`. */
export function neg(x: Tensor): Tensor {
  return op(() => native.neg(handle('neg', x, 'x')))
}
/** `eˣ`, elementwise. */
export function exp(x: Tensor): Tensor {
  return op(() => native.exp(handle('exp', x, 'x')))
}
/** `ln x`, elementwise. */
export function log(x: Tensor): Tensor {
  return op(() => native.log(handle('log', x, 'x')))
}
/** `tanh x`, elementwise. */
export function tanh(x: Tensor): Tensor {
  return op(() => native.tanh(handle('tanh', x, 'x')))
}
/** `σ(x) = 1 / (1 + e^−x)`, elementwise. */
export function sigmoid(x: Tensor): Tensor {
  return op(() => native.sigmoid(handle('sigmoid', x, 'x')))
}
/** `max(x, 0)`, elementwise. */
export function relu(x: Tensor): Tensor {
  return op(() => native.relu(handle('relu', x, 'x')))
}
/** `x²`, elementwise. */
export function square(x: Tensor): Tensor {
  return op(() => native.square(handle('square', x, 'x')))
}
/** `√x`, elementwise. */
export function sqrt(x: Tensor): Tensor {
  return op(() => native.sqrt(handle('sqrt', x, 'x')))
}
/** `c · x`. */
export function scale(x: Tensor, c: number): Tensor {
  handle('scale', x, 'x')
  return x.scale(c)
}
/** `x + c`. */
export function addScalar(x: Tensor, c: number): Tensor {
  handle('addScalar', x, 'x')
  return x.addScalar(c)
}

/** Expands `x` to `shape` by broadcasting (materialised copy). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.broadcastTo(handle('broadcastTo', x, 'x'), shapeArg('broadcastTo', shape)))
}

/** Sums `x` down to `shape` over the dimensions broadcasting expanded (adjoint of broadcastTo). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.sumTo(handle('sumTo', x, 'x'), shapeArg('sumTo', shape)))
}
