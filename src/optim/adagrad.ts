/** Adagrad, PyTorch's `torch.optim.Adagrad`. */

import { checkOptions, optionKeys } from '../validate.js'
import type { Tensor } from '../tensor.js'
import { Optimizer, checkNonNegative, type NativeRule, type OptionValue } from './optimizer.js'

/** Options of {@link Adagrad}. */
export interface AdagradOptions {
  /** Learning rate γ (default 0.01). */
  lr?: number
  /** Learning-rate decay η: step t uses γ / (1 + (t − 1) η) (default 0). */
  lrDecay?: number
  /** L2 penalty λ added to the gradient (default 0). */
  weightDecay?: number
  /** Initial value of the accumulated squared gradients (default 0). */
  initialAccumulatorValue?: number
  /** ε added to the denominator for stability (default 1e-10). */
  eps?: number
}

const ADAGRAD_OPTIONS = optionKeys<AdagradOptions>({ lr: true, lrDecay: true, weightDecay: true, initialAccumulatorValue: true, eps: true })

interface AdagradHyper {
  lrDecay: number
  weightDecay: number
  initialAccumulatorValue: number
  eps: number
}

function check(op: string, o: Partial<Record<keyof AdagradHyper, unknown>>): AdagradHyper {
  return {
    lrDecay: checkNonNegative(op, 'lrDecay', o.lrDecay ?? 0),
    weightDecay: checkNonNegative(op, 'weightDecay', o.weightDecay ?? 0),
    initialAccumulatorValue: checkNonNegative(op, 'initialAccumulatorValue', o.initialAccumulatorValue ?? 0),
    eps: checkNonNegative(op, 'eps', o.eps ?? 1e-10),
  }
}

/**
 * Adagrad (Duchi et al., 2011), with the exact update of PyTorch's `Adagrad`. For each
 * parameter θ with gradient g, at step t = 1, 2, …:
 *
 *   g ← g + λ θ                                   (weightDecay λ)
 *   γₜ = γ / (1 + (t − 1) η)                       (lrDecay η)
 *   s ← s + g²                                     (sum)
 *   θ ← θ − γₜ g / (√s + ε)
 *
 * State per parameter: `sum` (starting at initialAccumulatorValue), shaped like the parameter,
 * and the step count t.
 */
export class Adagrad extends Optimizer {
  lrDecay: number
  weightDecay: number
  initialAccumulatorValue: number
  eps: number

  constructor(params: Iterable<Tensor>, options: AdagradOptions = {}) {
    options = checkOptions('Adagrad', options, ADAGRAD_OPTIONS) as typeof options
    super(params, options.lr ?? 0.01, 'Adagrad')
    const h = check('Adagrad', options)
    this.lrDecay = h.lrDecay
    this.weightDecay = h.weightDecay
    this.initialAccumulatorValue = h.initialAccumulatorValue
    this.eps = h.eps
    this.guardOptions()
  }

  protected override initialValue(): number {
    return this.initialAccumulatorValue
  }

  protected bufferNames(): string[] {
    return ['sum']
  }

  protected allBufferNames(): readonly string[] {
    return ['sum']
  }

  protected rule(step: number): NativeRule {
    return { kind: 'adagrad', lr: this.lr, lrDecay: this.lrDecay, weightDecay: this.weightDecay, eps: this.eps, step }
  }

  protected options(): Record<string, OptionValue> {
    return { lrDecay: this.lrDecay, weightDecay: this.weightDecay, initialAccumulatorValue: this.initialAccumulatorValue, eps: this.eps }
  }

  protected setOptions(o: Record<string, unknown>): void {
    Object.assign(this, check('Adagrad.loadStateDict', o))
  }
}
