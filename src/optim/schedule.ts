/**
 * Learning-rate schedules: each sets its optimizer's `lr` as training goes, PyTorch style. Call
 * `step()` once per epoch or per optimizer step (as the schedule's numbers are meant), after
 * `opt.step()`:
 *
 * ```ts
 * const opt = new Adam(model.parameters(), { lr: 1e-3 })
 * const sched = new CosineWithWarmup(opt, { warmupSteps: 100, totalSteps: 10_000 })
 * for (...) { ...; await opt.step(); sched.step() }
 * ```
 *
 * Every schedule has `lastLr` (the lr it set last), and `stateDict()` / `loadStateDict()` with
 * plain JSON-safe numbers, so that a resumed run continues with exactly the same learning rates.
 */

import { ValueError } from '../errors.js'
import { checkOptions, optionKeys, refusal } from '../validate.js'

/** Anything with a mutable learning rate: every {@link Optimizer}. */
export interface HasLr {
  lr: number
}

/** What a schedule's `stateDict()` returns: JSON-safe values only. */
export interface SchedulerStateDict {
  /** The schedule's class name, checked on load. */
  kind: string
  [key: string]: string | number | null
}

function finite(op: string, what: string, v: unknown, { min = -Infinity, positive = false } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (positive && v <= 0)) {
    const want = positive ? ' > 0' : min > -Infinity ? ` ≥ ${min}` : ''
    throw refusal(op, what, `a finite number${want}`, v, 'number')
  }
  return v
}

function integer(op: string, what: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw refusal(op, what, `an integer ≥ ${min}`, v, 'number')
  }
  return v
}

function checkOptimizer(op: string, opt: unknown): HasLr {
  if (opt === null || typeof opt !== 'object' || typeof (opt as HasLr).lr !== 'number') {
    throw new ValueError(op, 'expected an optimizer (an object with a numeric lr)')
  }
  return opt as HasLr
}

function checkKind(op: string, sd: unknown, kind: string): Record<string, unknown> {
  if (sd === null || typeof sd !== 'object') throw new ValueError(op, 'expected a state dict as returned by stateDict()')
  const got = (sd as { kind?: unknown }).kind
  if (got !== kind) throw new ValueError(op, `the state dict is of a ${String(got)} schedule, not ${kind}`)
  return sd as Record<string, unknown>
}

/**
 * The base of the epoch-indexed schedules: after `n` calls of `step()`, the optimizer's lr is
 * `lrAt(n)`, a closed form of `baseLr` (the optimizer's lr when the schedule was made) and `n`.
 * Making the schedule sets lr to `lrAt(0)`, as in PyTorch.
 */
export abstract class LRScheduler {
  /** The optimizer whose lr this schedule sets. */
  readonly optimizer: HasLr
  /** The optimizer's lr when the schedule was made. */
  baseLr: number
  /** How many times `step()` has been called. */
  lastEpoch = 0
  /** The lr this schedule set last. */
  lastLr: number

  constructor(optimizer: HasLr, name: string) {
    this.optimizer = checkOptimizer(name, optimizer)
    this.baseLr = finite(name, 'the optimizer lr', optimizer.lr, { min: 0 })
    this.lastLr = optimizer.lr
  }

  /** The learning rate after `epoch` steps. */
  abstract lrAt(epoch: number): number

  /** The schedule's own options, JSON-safe. @internal */
  protected abstract options(): Record<string, number>
  /** Checks and applies options from a state dict. @internal */
  protected abstract setOptions(o: Record<string, unknown>): void

  /** Sets the optimizer's lr for the current epoch. @internal */
  protected apply(): void {
    this.lastLr = this.lrAt(this.lastEpoch)
    this.optimizer.lr = this.lastLr
  }

  /** Advances one epoch (or step) and sets the optimizer's lr. */
  step(): void {
    this.lastEpoch += 1
    this.apply()
  }

  /** `{ kind, lastEpoch, baseLr, lastLr, ...options }`, JSON-safe. */
  stateDict(): SchedulerStateDict {
    return { kind: this.constructor.name, lastEpoch: this.lastEpoch, baseLr: this.baseLr, lastLr: this.lastLr, ...this.options() }
  }

  /** Restores a state from {@link stateDict} (options included) and sets the optimizer's lr to its `lastLr`. */
  loadStateDict(sd: SchedulerStateDict): void {
    const op = `${this.constructor.name}.loadStateDict`
    const s = checkKind(op, sd, this.constructor.name)
    const lastEpoch = integer(op, 'lastEpoch', s.lastEpoch, 0)
    const baseLr = finite(op, 'baseLr', s.baseLr, { min: 0 })
    const lastLr = finite(op, 'lastLr', s.lastLr, { min: 0 })
    const before = this.options()
    const rest: Record<string, unknown> = { ...before }
    for (const [k, v] of Object.entries(s)) {
      if (k === 'kind' || k === 'lastEpoch' || k === 'baseLr' || k === 'lastLr') continue
      if (!(k in before)) throw new ValueError(op, `'${k}' is not an option of ${this.constructor.name}`)
      rest[k] = v
    }
    this.setOptions(rest)
    this.lastEpoch = lastEpoch
    this.baseLr = baseLr
    this.lastLr = lastLr
    this.optimizer.lr = lastLr
  }
}

/** Options of {@link StepLR}. */
export interface StepLROptions {
  /** Epochs between decays (a positive integer). */
  stepSize: number
  /** Decay factor (default 0.1). */
  gamma?: number
}

const STEP_LR_OPTIONS = optionKeys<StepLROptions>({ stepSize: true, gamma: true })

/** Decays the lr by `gamma` every `stepSize` epochs: `lr = baseLr · gamma^⌊epoch / stepSize⌋`. */
export class StepLR extends LRScheduler {
  stepSize: number
  gamma: number

  constructor(optimizer: HasLr, options: StepLROptions) {
    super(optimizer, 'StepLR')
    const h = StepLR.#check('StepLR', checkOptions('StepLR', options, STEP_LR_OPTIONS))
    this.stepSize = h.stepSize
    this.gamma = h.gamma
    this.apply()
  }

  static #check(op: string, o: Record<string, unknown>): { stepSize: number; gamma: number } {
    return { stepSize: integer(op, 'stepSize', o.stepSize, 1), gamma: finite(op, 'gamma', o.gamma ?? 0.1, { positive: true }) }
  }

  lrAt(epoch: number): number {
    return this.baseLr * this.gamma ** Math.floor(epoch / this.stepSize)
  }

  protected options(): Record<string, number> {
    return { stepSize: this.stepSize, gamma: this.gamma }
  }

  protected setOptions(o: Record<string, unknown>): void {
    Object.assign(this, StepLR.#check('StepLR.loadStateDict', o))
  }
}

/** Options of {@link ExponentialLR}. */
export interface ExponentialLROptions {
  /** Decay factor per epoch. */
  gamma: number
}

const EXPONENTIAL_LR_OPTIONS = optionKeys<ExponentialLROptions>({ gamma: true })

/** Decays the lr by `gamma` every epoch: `lr = baseLr · gamma^epoch`. */
export class ExponentialLR extends LRScheduler {
  gamma: number

  constructor(optimizer: HasLr, options: ExponentialLROptions) {
    super(optimizer, 'ExponentialLR')
    this.gamma = finite('ExponentialLR', 'gamma', checkOptions('ExponentialLR', options, EXPONENTIAL_LR_OPTIONS).gamma, { positive: true })
    this.apply()
  }

  lrAt(epoch: number): number {
    return this.baseLr * this.gamma ** epoch
  }

  protected options(): Record<string, number> {
    return { gamma: this.gamma }
  }

  protected setOptions(o: Record<string, unknown>): void {
    this.gamma = finite('ExponentialLR.loadStateDict', 'gamma', o.gamma, { positive: true })
  }
}

/** Options of {@link CosineWithWarmup}. */
export interface CosineWithWarmupOptions {
  /** Steps of linear warmup from 0 to the base lr (an integer ≥ 0). */
  warmupSteps: number
  /** Total steps (an integer ≥ warmupSteps): the lr reaches `minLr` here and stays there. */
  totalSteps: number
  /** The final lr (default 0). */
  minLr?: number
}

const COSINE_WITH_WARMUP_OPTIONS = optionKeys<CosineWithWarmupOptions>({ warmupSteps: true, totalSteps: true, minLr: true })

/**
 * Linear warmup then cosine decay, per optimizer step (as in Hugging Face's
 * `get_cosine_schedule_with_warmup`, with a floor):
 *
 *   lr(s) = baseLr · s / warmupSteps                                        s < warmupSteps
 *   lr(s) = minLr + (baseLr − minLr) · ½ (1 + cos(π (s − warmupSteps) / (totalSteps − warmupSteps)))
 *   lr(s) = minLr                                                           s ≥ totalSteps
 *
 * So the first update (s = 0) uses lr 0 when there is a warmup.
 */
export class CosineWithWarmup extends LRScheduler {
  warmupSteps: number
  totalSteps: number
  minLr: number

  constructor(optimizer: HasLr, options: CosineWithWarmupOptions) {
    super(optimizer, 'CosineWithWarmup')
    const h = CosineWithWarmup.#check('CosineWithWarmup', checkOptions('CosineWithWarmup', options, COSINE_WITH_WARMUP_OPTIONS))
    this.warmupSteps = h.warmupSteps
    this.totalSteps = h.totalSteps
    this.minLr = h.minLr
    this.apply()
  }

  static #check(op: string, o: Record<string, unknown>): { warmupSteps: number; totalSteps: number; minLr: number } {
    const warmupSteps = integer(op, 'warmupSteps', o.warmupSteps, 0)
    const totalSteps = integer(op, 'totalSteps', o.totalSteps, 1)
    if (totalSteps < warmupSteps) throw new ValueError(op, `totalSteps (${totalSteps}) must be ≥ warmupSteps (${warmupSteps})`)
    return { warmupSteps, totalSteps, minLr: finite(op, 'minLr', o.minLr ?? 0, { min: 0 }) }
  }

  lrAt(s: number): number {
    if (s < this.warmupSteps) return (this.baseLr * s) / this.warmupSteps
    if (s >= this.totalSteps) return this.minLr
    const progress = (s - this.warmupSteps) / (this.totalSteps - this.warmupSteps)
    return this.minLr + (this.baseLr - this.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress))
  }

  protected options(): Record<string, number> {
    return { warmupSteps: this.warmupSteps, totalSteps: this.totalSteps, minLr: this.minLr }
  }

  protected setOptions(o: Record<string, unknown>): void {
    Object.assign(this, CosineWithWarmup.#check('CosineWithWarmup.loadStateDict', o))
  }
}

/** Options of {@link ReduceLROnPlateau}. */
export interface ReduceLROnPlateauOptions {
  /** 'min': the metric should go down (a loss; default); 'max': up (an accuracy). */
  mode?: 'min' | 'max'
  /** Multiplies the lr on a plateau (default 0.1; in (0, 1)). */
  factor?: number
  /** Epochs without improvement tolerated before the lr is reduced (default 10). */
  patience?: number
  /** Minimum change that counts as an improvement (default 1e-4). */
  threshold?: number
  /** 'rel' (default): relative to the best value; 'abs': absolute. */
  thresholdMode?: 'rel' | 'abs'
  /** Epochs to wait after a reduction before counting bad epochs again (default 0). */
  cooldown?: number
  /** Lower bound of the lr (default 0). */
  minLr?: number
  /** Reductions smaller than this are skipped (default 1e-8). */
  eps?: number
}

const REDUCE_LR_ON_PLATEAU_OPTIONS = optionKeys<ReduceLROnPlateauOptions>({
  mode: true,
  factor: true,
  patience: true,
  threshold: true,
  thresholdMode: true,
  cooldown: true,
  minLr: true,
  eps: true,
})

interface PlateauHyper {
  mode: 'min' | 'max'
  factor: number
  patience: number
  threshold: number
  thresholdMode: 'rel' | 'abs'
  cooldown: number
  minLr: number
  eps: number
}

/**
 * Reduces the lr by `factor` when a metric has stopped improving for more than `patience`
 * epochs, as PyTorch's `ReduceLROnPlateau`. Call `step(metric)` once per epoch with the
 * validation loss (or accuracy with mode 'max').
 */
export class ReduceLROnPlateau {
  readonly optimizer: HasLr
  mode: 'min' | 'max'
  factor: number
  patience: number
  threshold: number
  thresholdMode: 'rel' | 'abs'
  cooldown: number
  minLr: number
  eps: number
  /** The best metric so far (null before the first step). */
  best: number | null = null
  /** Epochs since the last improvement (reset by a reduction and during cooldown). */
  numBadEpochs = 0
  /** Epochs of cooldown left. */
  cooldownCounter = 0
  /** How many times `step()` has been called. */
  lastEpoch = 0
  /** The optimizer's lr after the last step. */
  lastLr: number

  constructor(optimizer: HasLr, options: ReduceLROnPlateauOptions = {}) {
    this.optimizer = checkOptimizer('ReduceLROnPlateau', optimizer)
    const h = ReduceLROnPlateau.#check('ReduceLROnPlateau', checkOptions('ReduceLROnPlateau', options, REDUCE_LR_ON_PLATEAU_OPTIONS))
    this.mode = h.mode
    this.factor = h.factor
    this.patience = h.patience
    this.threshold = h.threshold
    this.thresholdMode = h.thresholdMode
    this.cooldown = h.cooldown
    this.minLr = h.minLr
    this.eps = h.eps
    this.lastLr = optimizer.lr
  }

  static #check(op: string, o: Record<string, unknown>): PlateauHyper {
    const mode = o.mode ?? 'min'
    if (mode !== 'min' && mode !== 'max') throw new ValueError(op, `mode must be 'min' or 'max', got ${String(mode)}`)
    const thresholdMode = o.thresholdMode ?? 'rel'
    if (thresholdMode !== 'rel' && thresholdMode !== 'abs') {
      throw new ValueError(op, `thresholdMode must be 'rel' or 'abs', got ${String(thresholdMode)}`)
    }
    const factor = finite(op, 'factor', o.factor ?? 0.1, { positive: true })
    if (factor >= 1) throw new ValueError(op, `factor must be < 1, got ${factor}`)
    return {
      mode,
      factor,
      patience: integer(op, 'patience', o.patience ?? 10, 0),
      threshold: finite(op, 'threshold', o.threshold ?? 1e-4, { min: 0 }),
      thresholdMode,
      cooldown: integer(op, 'cooldown', o.cooldown ?? 0, 0),
      minLr: finite(op, 'minLr', o.minLr ?? 0, { min: 0 }),
      eps: finite(op, 'eps', o.eps ?? 1e-8, { min: 0 }),
    }
  }

  #isBetter(a: number): boolean {
    const best = this.best
    if (best === null) return !Number.isNaN(a)
    if (this.mode === 'min') return this.thresholdMode === 'rel' ? a < best * (1 - this.threshold) : a < best - this.threshold
    return this.thresholdMode === 'rel' ? a > best * (1 + this.threshold) : a > best + this.threshold
  }

  /** Records one epoch's metric and reduces the lr if it has plateaued. */
  step(metric: number): void {
    if (typeof metric !== 'number') throw refusal('ReduceLROnPlateau.step', 'the metric', 'a number', metric, 'number')
    this.lastEpoch += 1
    if (this.#isBetter(metric)) {
      this.best = metric
      this.numBadEpochs = 0
    } else {
      this.numBadEpochs += 1
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1
      this.numBadEpochs = 0
    }
    if (this.numBadEpochs > this.patience) {
      const old = this.optimizer.lr
      const next = Math.max(old * this.factor, this.minLr)
      if (old - next > this.eps) this.optimizer.lr = next
      this.cooldownCounter = this.cooldown
      this.numBadEpochs = 0
    }
    this.lastLr = this.optimizer.lr
  }

  /** Options and counters, JSON-safe (`best` is null before the first step). */
  stateDict(): SchedulerStateDict {
    return {
      kind: 'ReduceLROnPlateau',
      mode: this.mode,
      factor: this.factor,
      patience: this.patience,
      threshold: this.threshold,
      thresholdMode: this.thresholdMode,
      cooldown: this.cooldown,
      minLr: this.minLr,
      eps: this.eps,
      best: this.best,
      numBadEpochs: this.numBadEpochs,
      cooldownCounter: this.cooldownCounter,
      lastEpoch: this.lastEpoch,
      lastLr: this.lastLr,
    }
  }

  /** Restores a state from {@link stateDict} and sets the optimizer's lr to its `lastLr`. */
  loadStateDict(sd: SchedulerStateDict): void {
    const op = 'ReduceLROnPlateau.loadStateDict'
    const s = checkKind(op, sd, 'ReduceLROnPlateau')
    const known = new Set(Object.keys(this.stateDict()))
    for (const k of Object.keys(s)) if (!known.has(k)) throw new ValueError(op, `'${k}' is not part of a ReduceLROnPlateau state`)
    const h = ReduceLROnPlateau.#check(op, { ...this.stateDict(), ...s })
    const best = s.best ?? null
    if (best !== null && typeof best !== 'number') throw new ValueError(op, `best must be a number or null, got ${String(best)}`)
    const numBadEpochs = integer(op, 'numBadEpochs', s.numBadEpochs ?? 0, 0)
    const cooldownCounter = integer(op, 'cooldownCounter', s.cooldownCounter ?? 0, 0)
    const lastEpoch = integer(op, 'lastEpoch', s.lastEpoch ?? 0, 0)
    const lastLr = finite(op, 'lastLr', s.lastLr, { min: 0 })
    Object.assign(this, h)
    this.best = best
    this.numBadEpochs = numBadEpochs
    this.cooldownCounter = cooldownCounter
    this.lastEpoch = lastEpoch
    this.lastLr = lastLr
    this.optimizer.lr = lastLr
  }
}
