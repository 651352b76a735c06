/** Stochastic gradient descent with momentum, PyTorch's `torch.optim.SGD`. */

import type { Tensor } from '../tensor.js'
import { ValueError } from '../errors.js'
import { checkOptions, optionKeys } from '../validate.js'
import { Optimizer, checkBool, checkNonNegative, type NativeRule, type OptionValue } from './optimizer.js'

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

const SGD_OPTIONS = optionKeys<SGDOptions>({ lr: true, momentum: true, dampening: true, weightDecay: true, nesterov: true })

interface SGDHyper {
  momentum: number
  dampening: number
  weightDecay: number
  nesterov: boolean
}

function check(op: string, o: Partial<Record<keyof SGDHyper, unknown>>): SGDHyper {
  const h: SGDHyper = {
    momentum: checkNonNegative(op, 'momentum', o.momentum ?? 0),
    dampening: checkNonNegative(op, 'dampening', o.dampening ?? 0),
    weightDecay: checkNonNegative(op, 'weightDecay', o.weightDecay ?? 0),
    nesterov: checkBool(op, 'nesterov', o.nesterov ?? false),
  }
  if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
    throw new ValueError(op, 'nesterov momentum needs momentum > 0 and dampening = 0')
  }
  return h
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
 * State per parameter: `momentum_buffer` (when μ > 0), shaped like the parameter.
 */
export class SGD extends Optimizer {
  momentum: number
  dampening: number
  weightDecay: number
  nesterov: boolean

  constructor(params: Iterable<Tensor>, options: SGDOptions) {
    if (options === undefined || options === null) throw new ValueError('SGD', 'options.lr is required')
    checkOptions('SGD', options, SGD_OPTIONS)
    if (options.lr === undefined) throw new ValueError('SGD', 'options.lr is required')
    super(params, options.lr, 'SGD')
    const h = check('SGD', options)
    this.momentum = h.momentum
    this.dampening = h.dampening
    this.weightDecay = h.weightDecay
    this.nesterov = h.nesterov
    this.guardOptions()
  }

  protected bufferNames(): string[] {
    return this.momentum !== 0 ? ['momentum_buffer'] : []
  }

  protected allBufferNames(): readonly string[] {
    return ['momentum_buffer']
  }

  protected rule(_step: number, first: boolean): NativeRule {
    return {
      kind: 'sgd',
      lr: this.lr,
      momentum: this.momentum,
      dampening: this.dampening,
      nesterov: this.nesterov,
      weightDecay: this.weightDecay,
      first,
    }
  }

  protected options(): Record<string, OptionValue> {
    return { momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov }
  }

  protected setOptions(o: Record<string, unknown>): void {
    Object.assign(this, check('SGD.loadStateDict', o))
  }
}
