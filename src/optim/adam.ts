/** Adam and AdamW, PyTorch's `torch.optim.Adam` and `torch.optim.AdamW`. */

import { checkOptions, optionKeys } from '../validate.js'
import type { Tensor } from '../tensor.js'
import { ValueError } from '../errors.js'
import { Optimizer, checkNonNegative, checkUnit, type NativeRule, type OptionValue } from './optimizer.js'

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

/** Options of {@link AdamW}: those of Adam, with decoupled weight decay (default 0.01). */
export interface AdamWOptions extends AdamOptions {
  /** Decoupled weight decay λ: θ ← θ (1 − γ λ) before the Adam step (default 0.01). */
  weightDecay?: number
}

const ADAM_OPTIONS = optionKeys<AdamOptions & AdamWOptions>({ lr: true, betas: true, eps: true, weightDecay: true })

interface AdamHyper {
  betas: [number, number]
  eps: number
  weightDecay: number
}

function check(op: string, o: { betas?: unknown; eps?: unknown; weightDecay?: unknown }, defaultDecay: number): AdamHyper {
  const betas = o.betas ?? [0.9, 0.999]
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new ValueError(op, `betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}`)
  }
  try {
    checkUnit(op, 'betas[0]', betas[0])
    checkUnit(op, 'betas[1]', betas[1])
  } catch {
    throw new ValueError(op, `betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}`)
  }
  return {
    betas: [betas[0] as number, betas[1] as number],
    eps: checkNonNegative(op, 'eps', o.eps ?? 1e-8),
    weightDecay: checkNonNegative(op, 'weightDecay', o.weightDecay ?? defaultDecay),
  }
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
 * State per parameter: `exp_avg` (m) and `exp_avg_sq` (v), zeros at first, shaped like the
 * parameter, and the step count t (per parameter: one without a gradient is not advanced).
 */
export class Adam extends Optimizer {
  betas: [number, number]
  eps: number
  weightDecay: number

  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    const name = new.target.name
    options = checkOptions(name, options, ADAM_OPTIONS) as typeof options
    super(params, options.lr ?? 1e-3, name)
    const h = check(name, options, this.defaultWeightDecay())
    this.betas = h.betas
    this.eps = h.eps
    this.weightDecay = h.weightDecay
    this.guardOptions()
  }

  /** @internal */
  protected defaultWeightDecay(): number {
    return 0
  }

  /** @internal */
  protected decoupled(): boolean {
    return false
  }

  protected bufferNames(): string[] {
    return ['exp_avg', 'exp_avg_sq']
  }

  protected allBufferNames(): readonly string[] {
    return ['exp_avg', 'exp_avg_sq']
  }

  protected rule(step: number): NativeRule {
    return {
      kind: this.decoupled() ? 'adamw' : 'adam',
      lr: this.lr,
      beta1: this.betas[0],
      beta2: this.betas[1],
      eps: this.eps,
      weightDecay: this.weightDecay,
      step,
    }
  }

  protected options(): Record<string, OptionValue> {
    return { betas: [this.betas[0], this.betas[1]], eps: this.eps, weightDecay: this.weightDecay }
  }

  protected setOptions(o: Record<string, unknown>): void {
    Object.assign(this, check(`${this.constructor.name}.loadStateDict`, o, this.defaultWeightDecay()))
  }
}

/**
 * AdamW (Loshchilov & Hutter, 2019), PyTorch's `AdamW`: Adam with decoupled weight decay,
 *
 *   θ ← θ (1 − γ λ)                               (weightDecay λ, default 0.01)
 *   m, v, θ as in {@link Adam} with g unchanged
 */
export class AdamW extends Adam {
  constructor(params: Iterable<Tensor>, options: AdamWOptions = {}) {
    super(params, options)
  }

  protected override defaultWeightDecay(): number {
    return 0.01
  }

  protected override decoupled(): boolean {
    return true
  }
}
