/** Stochastic gradient descent with momentum, PyTorch's `torch.optim.SGD`. */

import type { Tensor } from '../tensor.js'
import { noGrad } from '../ops.js'
import { ValueError } from '../errors.js'
import { Optimizer, checkNonNegative } from './optimizer.js'

/** Options of {@link SGD}. */
export interface SGDOptions {
  /** Learning rate γ (required). */
  lr: number
  /** Momentum factor μ (default 0: plain SGD). */
  momentum?: number
  /** Dampening τ of the momentum (default 0). */
  dampening?: number
  /** L2 penalty λ added to the gradient (default 0). */
  weightDecay?: number
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov?: boolean
}

/**
 * Stochastic gradient descent, with the exact update of PyTorch's `SGD`. For each parameter θ
 * with gradient g, at step t:
 *
 *   g ← g + λ θ                            (weightDecay λ)
 *   b ← g                   if t = 1       (momentum buffer, when μ > 0)
 *   b ← μ b + (1 − τ) g     otherwise
 *   g ← g + μ b  if nesterov, else g ← b
 *   θ ← θ − γ g
 *
 * Shapes: each buffer has its parameter's shape.
 */
export class SGD extends Optimizer {
  momentum: number
  dampening: number
  weightDecay: number
  nesterov: boolean
  readonly #buffers = new Map<Tensor, Tensor>()

  constructor(params: Iterable<Tensor>, options: SGDOptions) {
    if (options === undefined || options.lr === undefined) throw new ValueError('SGD', 'options.lr is required')
    super(params, options.lr, 'SGD')
    this.momentum = checkNonNegative('SGD', 'momentum', options.momentum ?? 0)
    this.dampening = checkNonNegative('SGD', 'dampening', options.dampening ?? 0)
    this.weightDecay = checkNonNegative('SGD', 'weightDecay', options.weightDecay ?? 0)
    this.nesterov = options.nesterov ?? false
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new ValueError('SGD', 'nesterov momentum needs momentum > 0 and dampening = 0')
    }
  }

  step(): void {
    noGrad(() => {
      for (const p of this.params) {
        const grad = p.grad
        if (grad === null) continue
        // Intermediates are freed at once rather than left to the garbage collector.
        const tmp: Tensor[] = [grad]
        const k = (t: Tensor) => (tmp.push(t), t)
        let g: Tensor = grad
        if (this.weightDecay !== 0) g = k(g.add(k(p.mul(this.weightDecay))))
        if (this.momentum !== 0) {
          const prev = this.#buffers.get(p)
          let buf: Tensor
          if (prev === undefined) {
            buf = g.detach()
          } else {
            buf = k(prev.mul(this.momentum)).add(this.dampening === 0 ? g : k(g.mul(1 - this.dampening)))
            tmp.push(prev)
          }
          this.#buffers.set(p, buf)
          g = this.nesterov ? k(g.add(k(buf.mul(this.momentum)))) : buf
        }
        p.assign(k(p.sub(k(g.mul(this.lr)))))
        for (const t of tmp) t.dispose()
      }
    })
  }
}
