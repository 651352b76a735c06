/**
 * Early stopping (Keras' `EarlyStopping` callback): its options, their checks and defaults,
 * and the per-run state that decides at each epoch end whether the run should stop.
 */

import type { Tensor } from '../../tensor.js'
import { noGrad } from '../../ops/grad.js'
import { ValueError } from '../../errors.js'
import { boolArg, checkOptions, enumArg, numberArg, optionKeys } from '../../validate.js'
import type { Metrics } from './metrics.js'

/** Early stopping: stop when `monitor` has not improved for `patience` epochs. */
export interface EarlyStoppingOptions {
  /**
   * The metric: `'val_loss'` (default with validation data), `'val_accuracy'`,
   * `'val_perplexity'`, or the training `'loss'` (default without), `'accuracy'`, `'perplexity'`.
   */
  monitor?: string
  /** Stop after this many epochs in a row without improvement (Keras' semantics; 0 acts as 1). */
  patience: number
  /** Smallest change that counts as an improvement (default 0). */
  minDelta?: number
  /** `'min'` or `'max'` (default: max for accuracy, min otherwise). */
  mode?: 'min' | 'max'
  /** When stopping, load back the parameters of the best epoch (default false). */
  restoreBest?: boolean
}

const EARLY_STOPPING_OPTIONS = optionKeys<EarlyStoppingOptions>({ monitor: true, patience: true, minDelta: true, mode: true, restoreBest: true })

/** {@link EarlyStoppingOptions} checked, with the defaults filled in. @internal */
export type EarlyStoppingConfig = Required<Omit<EarlyStoppingOptions, 'monitor'>> & { monitor: string }

/**
 * Checks `options.earlyStopping` of a run (with or without validation data) and fills in the
 * defaults; null when early stopping is off. Errors name `fit`, like the loop's other checks.
 * @internal
 */
export function earlyStoppingConfig(e: EarlyStoppingOptions | undefined, hasValidation: boolean): EarlyStoppingConfig | null {
  if (e === undefined || e === null) return null
  checkOptions('fit', e, EARLY_STOPPING_OPTIONS, 'earlyStopping')
  const monitor = e.monitor ?? (hasValidation ? 'val_loss' : 'loss')
  if (typeof monitor !== 'string') throw new ValueError('fit', `earlyStopping.monitor must be a string, got ${String(monitor)}`)
  const known = ['loss', 'accuracy', 'perplexity']
  const base = monitor.startsWith('val_') ? monitor.slice(4) : monitor
  if (!known.includes(base)) throw new ValueError('fit', `earlyStopping.monitor must be one of ${known.flatMap((k) => [k, `val_${k}`]).join(', ')}; got '${monitor}'`)
  if (monitor.startsWith('val_') && !hasValidation) throw new ValueError('fit', `earlyStopping.monitor '${monitor}' needs validation data`)
  if (!Number.isInteger(e.patience) || e.patience < 0) throw new ValueError('fit', `earlyStopping.patience must be an integer ≥ 0, got ${String(e.patience)}`)
  return {
    monitor,
    patience: e.patience,
    minDelta: numberArg('fit', 'earlyStopping.minDelta', e.minDelta ?? 0),
    mode: enumArg('fit', 'earlyStopping.mode', e.mode ?? (base === 'accuracy' ? 'max' : 'min'), ['min', 'max'] as const),
    restoreBest: boolArg('fit', 'earlyStopping.restoreBest', e.restoreBest ?? false),
  }
}

function metricOf(name: string, train: Metrics, val: Metrics | undefined): number | undefined {
  const m = name.startsWith('val_') ? val : train
  const key = (name.startsWith('val_') ? name.slice(4) : name) as 'loss' | 'accuracy' | 'perplexity'
  return m?.[key]
}

/**
 * The early-stopping state of one run. `best`, `bestEpoch` and `wait` are saved in checkpoints
 * and restored on resume; the copy of the best parameters (for `restoreBest`) is not.
 * @internal
 */
export class EarlyStopping {
  /** The best value of the monitored metric so far (null before the first finite one). */
  best: number | null = null
  /** The epoch of {@link best} (-1 before). */
  bestEpoch = -1
  /** Epochs in a row without improvement. */
  wait = 0
  #bestParams: Tensor[] | null = null

  constructor(readonly config: EarlyStoppingConfig | null) {}

  /**
   * At the end of `epoch`: records an improvement of the monitored metric (copying the
   * parameters when `restoreBest`) or counts one more epoch without. Returns the monitored
   * value (undefined when early stopping is off or the metric is missing) and whether to stop.
   */
  epochEnd(epoch: number, train: Metrics, validation: Metrics | undefined, params: readonly Tensor[]): { monitored: number | undefined; stop: boolean } {
    const es = this.config
    if (!es) return { monitored: undefined, stop: false }
    let stop = false
    const monitored = metricOf(es.monitor, train, validation)
    if (monitored !== undefined && Number.isFinite(monitored)) {
      const improved = this.best === null || (es.mode === 'min' ? monitored < this.best - es.minDelta : monitored > this.best + es.minDelta)
      if (improved) {
        this.best = monitored
        this.bestEpoch = epoch
        this.wait = 0
        if (es.restoreBest) {
          for (const t of this.#bestParams ?? []) t.dispose()
          this.#bestParams = noGrad(() => params.map((p) => p.scale(1)))
        }
      } else if (++this.wait >= Math.max(1, es.patience)) {
        stop = true
      }
    }
    return { monitored, stop }
  }

  /** Loads the parameters saved at the best epoch back into `params` (only with `restoreBest`). */
  restoreBest(params: readonly Tensor[]): void {
    const saved = this.#bestParams
    if (saved) params.forEach((p, i) => p.assign(saved[i]!))
  }

  /** The best value and its epoch, for the run's result; undefined without one. */
  summary(): { monitor: string; value: number; epoch: number } | undefined {
    if (!this.config || this.best === null) return undefined
    return { monitor: this.config.monitor, value: this.best, epoch: this.bestEpoch }
  }
}
