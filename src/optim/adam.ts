/** Adam, PyTorch's `torch.optim.Adam`. */

import type { Tensor } from '../tensor.js'
import { noGrad, zeros } from '../ops.js'
import { ValueError } from '../errors.js'
import { Optimizer, checkNonNegative } from './optimizer.js'

/** Options of {@link Adam}. */
export interface AdamOptions {
  /** Learning rate γ (default 1e-3). */
  lr?: number
  /** Decay rates (β₁, β₂) of the first and second moment estimates (default [0.9, 0.999]). */
  betas?: [number, number]
  /** ε added to the denominator for stability (default 1e-8). */
  eps?: number
  /** L2 penalty λ added to the gradient (default 0; this is Adam's, not AdamW's, decay). */
  weightDecay?: number
}

/**
 * Adam (Kingma & Ba, 2015), with the exact update of PyTorch's `Adam`. For each parameter θ
 * with gradient g, at step t = 1, 2, …:
 *
 *   g ← g + λ θ                                   (weightDecay λ)
 *   m ← β₁ m + (1 − β₁) g
 *   v ← β₂ v + (1 − β₂) g²
 *   θ ← θ − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 *
 * m and v start at zero and have their parameter's shape. The step count t is per parameter,
 * so a parameter without a gradient in some step is not advanced.
 */
export class Adam extends Optimizer {
  betas: [number, number]
  eps: number
  weightDecay: number
  readonly #state = new Map<Tensor, { step: number; m: Tensor; v: Tensor }>()

  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    super(params, options.lr ?? 1e-3, 'Adam')
    const betas = options.betas ?? [0.9, 0.999]
    if (!Array.isArray(betas) || betas.length !== 2 || betas.some((b) => typeof b !== 'number' || !(b >= 0 && b < 1))) {
      throw new ValueError(`Adam`, `betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}`)
    }
    this.betas = [betas[0], betas[1]]
    this.eps = checkNonNegative('Adam', 'eps', options.eps ?? 1e-8)
    this.weightDecay = checkNonNegative('Adam', 'weightDecay', options.weightDecay ?? 0)
  }

  step(): void {
    const [b1, b2] = this.betas
    noGrad(() => {
      for (const p of this.params) {
        const grad = p.grad
        if (grad === null) continue
        // Intermediates are freed at once rather than left to the garbage collector.
        const tmp: Tensor[] = [grad]
        const k = (t: Tensor) => (tmp.push(t), t)
        let st = this.#state.get(p)
        if (st === undefined) {
          st = { step: 0, m: zeros(p.shape, { dtype: p.dtype }), v: zeros(p.shape, { dtype: p.dtype }) }
          this.#state.set(p, st)
        }
        st.step += 1
        const g = this.weightDecay !== 0 ? k(grad.add(k(p.mul(this.weightDecay)))) : grad
        const m = k(st.m.mul(b1)).add(k(g.mul(1 - b1)))
        const v = k(st.v.mul(b2)).add(k(k(g.square()).mul(1 - b2)))
        tmp.push(st.m, st.v)
        st.m = m
        st.v = v
        const bc1 = 1 - b1 ** st.step
        const bc2 = 1 - b2 ** st.step
        const denom = k(k(k(v.sqrt()).mul(1 / Math.sqrt(bc2))).add(this.eps))
        p.assign(k(p.sub(k(k(m.div(denom)).mul(this.lr / bc1)))))
        for (const t of tmp) t.dispose()
      }
    })
  }
}
