/** RMSprop, PyTorch's `torch.optim.RMSprop`. */

import { checkOptions, optionKeys } from '../validate.js'
import type { Tensor } from '../tensor.js'
import { Optimizer, checkBool, checkNonNegative, type NativeRule, type OptionValue } from './optimizer.js'

/** Options of {@link RMSprop}. */
export interface RMSpropOptions {
  /** Learning rate γ (default 0.01). */
  lr?: number
  /** Smoothing constant α of the squared-gradient average (default 0.99). */
  alpha?: number
  /** ε added to the denominator for stability (default 1e-8). */
  eps?: number
  /** L2 penalty λ added to the gradient (default 0). */
  weightDecay?: number
  /** Momentum factor μ (default 0). */
  momentum?: number
  /** Normalise by the estimated variance instead of the raw second moment (default false). */
  centered?: boolean
}

const RMSPROP_OPTIONS = optionKeys<RMSpropOptions>({ lr: true, alpha: true, eps: true, weightDecay: true, momentum: true, centered: true })

interface RMSpropHyper {
  alpha: number
  eps: number
  weightDecay: number
  momentum: number
  centered: boolean
}

function check(op: string, o: Partial<Record<keyof RMSpropHyper, unknown>>): RMSpropHyper {
  return {
    alpha: checkNonNegative(op, 'alpha', o.alpha ?? 0.99),
    eps: checkNonNegative(op, 'eps', o.eps ?? 1e-8),
    weightDecay: checkNonNegative(op, 'weightDecay', o.weightDecay ?? 0),
    momentum: checkNonNegative(op, 'momentum', o.momentum ?? 0),
    centered: checkBool(op, 'centered', o.centered ?? false),
  }
}

/**
 * RMSprop (Hinton), with the exact update of PyTorch's `RMSprop`. For each parameter θ with
 * gradient g:
 *
 *   g ← g + λ θ                                   (weightDecay λ)
 *   s ← α s + (1 − α) g²                           (square_avg)
 *   a ← α a + (1 − α) g;  d ← √(s − a²) + ε        if centered (grad_avg a)
 *   d ← √s + ε                                     otherwise
 *   b ← μ b + g / d;  θ ← θ − γ b                  if μ > 0 (momentum_buffer b)
 *   θ ← θ − γ g / d                                otherwise
 *
 * State per parameter: `square_avg`, plus `momentum_buffer` (μ > 0) and `grad_avg`
 * (centered), zeros at first, shaped like the parameter.
 */
export class RMSprop extends Optimizer {
  alpha: number
  eps: number
  weightDecay: number
  momentum: number
  centered: boolean

  constructor(params: Iterable<Tensor>, options: RMSpropOptions = {}) {
    options = checkOptions('RMSprop', options, RMSPROP_OPTIONS) as typeof options
    super(params, options.lr ?? 0.01, 'RMSprop')
    const h = check('RMSprop', options)
    this.alpha = h.alpha
    this.eps = h.eps
    this.weightDecay = h.weightDecay
    this.momentum = h.momentum
    this.centered = h.centered
    this.guardOptions()
  }

  protected bufferNames(): string[] {
    const names = ['square_avg']
    if (this.momentum !== 0) names.push('momentum_buffer')
    if (this.centered) names.push('grad_avg')
    return names
  }

  protected allBufferNames(): readonly string[] {
    return ['square_avg', 'momentum_buffer', 'grad_avg']
  }

  protected rule(): NativeRule {
    return {
      kind: 'rmsprop',
      lr: this.lr,
      alpha: this.alpha,
      eps: this.eps,
      weightDecay: this.weightDecay,
      momentum: this.momentum,
      centered: this.centered,
    }
  }

  protected options(): Record<string, OptionValue> {
    return { alpha: this.alpha, eps: this.eps, weightDecay: this.weightDecay, momentum: this.momentum, centered: this.centered }
  }

  protected setOptions(o: Record<string, unknown>): void {
    Object.assign(this, check('RMSprop.loadStateDict', o))
  }
}
