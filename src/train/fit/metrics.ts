/**
 * Training and evaluation metrics: the {@link Metrics} record (mean loss per target,
 * perplexity, accuracy) and the accumulator that builds it from per-batch losses and outputs.
 */

import type { Tensor } from '../../tensor.js'

/** Aggregated metrics over a number of targets. */
export interface Metrics {
  /** Mean loss per target (the losses of the batches weighted by their number of targets). */
  loss: number
  /** `exp(loss)`, for int32 (class) targets. */
  perplexity?: number
  /** Fraction of targets whose arg-max output is the target, for int32 targets (when computed). */
  accuracy?: number
  /** Number of targets (`y.size` summed, or the targets that are not `ignoreIndex`). */
  count: number
}

/**
 * Number of rows of `out` (`[N, C]` flattened) whose arg-max equals `y` (int32 `[N]`), leaving
 * out the rows whose target is `ignoreIndex`. @internal
 */
export function countCorrect(out: ArrayLike<number>, y: ArrayLike<number>, ignoreIndex?: number): number {
  const N = y.length
  if (N === 0 || out.length % N !== 0) return 0
  const C = out.length / N
  let correct = 0
  for (let n = 0; n < N; n++) {
    if (y[n] === ignoreIndex) continue
    const base = n * C
    let best = 0
    let bv = out[base]!
    for (let c = 1; c < C; c++) {
      const v = out[base + c]!
      if (v > bv) {
        bv = v
        best = c
      }
    }
    if (best === y[n]) correct++
  }
  return correct
}

/** Whether accuracy can be computed for these outputs and targets. @internal */
export function isClassification(out: Tensor | null, y: Tensor): boolean {
  return y.dtype === 'int32' && out !== null && out.size === y.size * (out.shape[out.rank - 1] ?? 0) && out.rank === y.rank + 1
}

/** Sums of losses and correct predictions over a run of batches. @internal */
export class Accumulator {
  lossSum = 0
  count = 0
  correct = 0
  accCount = 0
  classes = false
  add(loss: number, count: number): void {
    // A batch whose targets are all ignored has a 0/0 mean loss and weighs nothing.
    if (count === 0) return
    this.lossSum += loss * count
    this.count += count
  }
  metrics(): Metrics {
    const loss = this.count > 0 ? this.lossSum / this.count : NaN
    const m: Metrics = { loss, count: this.count }
    if (this.classes) m.perplexity = Math.exp(loss)
    if (this.accCount > 0) m.accuracy = this.correct / this.accCount
    return m
  }
}
