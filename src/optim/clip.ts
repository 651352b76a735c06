/** Gradient clipping: `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`. */

import { Tensor } from '../tensor.js'
import { ValueError, wrap } from '../errors.js'
import { native } from '../native.js'
import { zeros } from '../ops/factories.js'
import { iterableArg, typeError } from '../validate.js'

function gradsOf(op: string, params: Iterable<Tensor> | Tensor): Tensor[] {
  const list = params instanceof Tensor ? [params] : [...iterableArg<Tensor>(op, 'params', params)]
  const grads: Tensor[] = []
  for (const [i, p] of list.entries()) {
    if (!(p instanceof Tensor)) {
      for (const g of grads) g.dispose()
      throw typeError(op, `params[${i}]`, 'a Tensor', p)
    }
    const g = p.grad
    if (g !== null) grads.push(g)
  }
  return grads
}

/** The device of the first parameter (where the norm is made when there is no gradient). */
function firstDevice(params: Iterable<Tensor> | Tensor): Tensor['device'] {
  const first = params instanceof Tensor ? params : [...params][0]
  return first instanceof Tensor ? first.device : 'cpu'
}

/**
 * Scales the gradients of `params` in place so that their global norm (all gradients taken
 * as one vector) is at most `maxNorm`, as PyTorch's `clip_grad_norm_`: with N the norm, every
 * gradient is multiplied by `maxNorm / (N + 1e-6)` when that is below 1, and left as it is
 * otherwise. `normType` is p of the p-norm (default 2; `Infinity` or `'inf'` for the largest
 * absolute value). Parameters without a gradient are skipped.
 *
 * Returns the norm before clipping as a 0-d tensor, without waiting for it (read it with
 * `await norm.item()`, or not at all). With no gradients at all it is 0.
 */
export function clipGradNorm(params: Iterable<Tensor> | Tensor, maxNorm: number, normType: number | 'inf' = 2): Tensor {
  const op = 'clipGradNorm'
  const p = normType === 'inf' ? Infinity : normType
  if (typeof p !== 'number' || !(p > 0)) throw new ValueError(op, `normType must be a positive number or 'inf', got ${String(normType)}`)
  if (typeof maxNorm !== 'number' || !(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new ValueError(op, `maxNorm must be a finite number > 0, got ${String(maxNorm)}`)
  }
  const grads = gradsOf(op, params)
  try {
    if (grads.length === 0) return zeros([], { device: firstDevice(params) })
    return new Tensor(wrap(() => native.clipGradNorm(grads.map((g) => g._native), maxNorm, p)))
  } finally {
    for (const g of grads) g.dispose()
  }
}

/**
 * Clamps every gradient element of `params` into `[−limit, limit]` in place, as PyTorch's
 * `clip_grad_value_`. Parameters without a gradient are skipped.
 */
export function clipGradValue(params: Iterable<Tensor> | Tensor, limit: number): void {
  const op = 'clipGradValue'
  if (typeof limit !== 'number' || !(limit > 0)) throw new ValueError(op, `the limit must be a number > 0, got ${String(limit)}`)
  const grads = gradsOf(op, params)
  try {
    if (grads.length > 0) wrap(() => native.clipGradValue(grads.map((g) => g._native), limit))
  } finally {
    for (const g of grads) g.dispose()
  }
}
