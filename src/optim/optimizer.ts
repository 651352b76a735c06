/** The base of the optimizers: the parameter list, `zeroGrad()`, and option checks. */

import { Tensor } from '../tensor.js'
import { ValueError } from '../errors.js'

/**
 * An optimizer updates a fixed list of parameters in place from their `.grad`, PyTorch style:
 *
 * ```ts
 * const opt = new Adam(model.parameters(), { lr: 1e-3 })
 * for (...) {
 *   opt.zeroGrad()
 *   const loss = lossFn(model.forward(x), y)
 *   loss.backward()
 *   opt.step()
 * }
 * ```
 *
 * Parameters whose `.grad` is null (unused in the last backward) are skipped, as in PyTorch.
 * The update is written with `param.assign(...)`, so the parameter tensors (and any module
 * or state dict holding them) stay the same objects.
 */
export abstract class Optimizer {
  /** The parameters being optimised, in the order given. */
  readonly params: readonly Tensor[]
  /** Learning rate; may be changed between steps (for example by a schedule). */
  lr: number

  constructor(params: Iterable<Tensor>, lr: number, name: string) {
    const list = [...params]
    if (list.length === 0) throw new ValueError(`${name}`, `got an empty parameter list`)
    for (const [i, p] of list.entries()) {
      if (!(p instanceof Tensor)) throw new ValueError(`${name}`, `parameter ${i} is not a Tensor`)
    }
    if (new Set(list).size !== list.length) throw new ValueError(`${name}`, `a parameter appears more than once`)
    checkNonNegative(name, 'lr', lr)
    this.params = list
    this.lr = lr
  }

  /** Clears the gradient of every parameter (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad()
  }

  /**
   * Applies one update from the current gradients. Returns nothing today; it is safe to
   * `await` it, which later native versions use for backpressure.
   */
  abstract step(): void
}

export function checkNonNegative(op: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new ValueError(`${op}`, `${what} must be a finite number ≥ 0, got ${String(v)}`)
  }
  return v
}
