/**
 * What a training run reports: the progress events, the {@link FitResult}, and {@link FitRun},
 * the handle `fit`/`fitTBPTT` return, which is both a promise of the result and an async
 * iterable of the events.
 */

import type { Metrics } from './metrics.js'

/** After each optimizer step (delivered one step late, once its loss is read). */
export interface StepEvent {
  type: 'step'
  /** Optimizer steps done, this one included (1-based). */
  step: number
  /** Epoch (0-based). */
  epoch: number
  /** Batch or chunk index within the epoch (0-based). */
  batch: number
  /** This step's loss. */
  loss: number
  /** `exp(loss)` for int32 targets. */
  perplexity?: number
  /** Training accuracy of this step, with `trainAccuracy: true`. */
  accuracy?: number
  /** Targets in this step. */
  count: number
  /** Learning rate used by this step. */
  lr?: number
  /** Targets per second, measured between consecutive step events. */
  tokensPerSec: number
  /** Milliseconds since the run started. */
  elapsedMs: number
}

/** After a validation pass. */
export interface ValidationEvent {
  type: 'validation'
  step: number
  epoch: number
  metrics: Metrics
}

/** At the end of each complete epoch (after its validation). */
export interface EpochEndEvent {
  type: 'epochEnd'
  epoch: number
  step: number
  /** Training metrics over the epoch, with the epoch's throughput. */
  train: Metrics & { tokensPerSec: number }
  validation?: Metrics
  durationMs: number
  lr?: number
}

/** After a checkpoint has been written. */
export interface CheckpointEvent {
  type: 'checkpoint'
  step: number
  path: string
}

/** The last event: the run is over. */
export interface EndEvent {
  type: 'end'
  result: FitResult
}

/** The progress events of a {@link FitRun}, in order. */
export type FitEvent = StepEvent | ValidationEvent | EpochEndEvent | CheckpointEvent | EndEvent

/** Why a run stopped. */
export type StopReason = 'completed' | 'maxSteps' | 'earlyStopping' | 'aborted'

/** What a {@link FitRun} resolves to. */
export interface FitResult {
  reason: StopReason
  /** True when an AbortSignal stopped it (between two steps; the model is intact and usable). */
  aborted: boolean
  /** True when early stopping ended it. */
  stoppedEarly: boolean
  /** Optimizer steps done (including those before a resume). */
  steps: number
  /** Complete epochs done. */
  epochs: number
  /** The epoch summaries. */
  history: EpochEndEvent[]
  /** The loss of the last step. */
  lastLoss?: number
  /** The best value of the early-stopping metric and its epoch. */
  best?: { monitor: string; value: number; epoch: number }
}

/** One iterator over the events of a {@link FitRun}: a queue and at most one pending `next()`. */
class Subscription<T> implements AsyncIterableIterator<T> {
  readonly queue: T[] = []
  waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null
  done = false
  error: unknown = undefined
  constructor(readonly unsubscribe: (s: Subscription<T>) => void) {}
  push(v: T): void {
    if (this.done) return
    if (this.waiter) {
      const w = this.waiter
      this.waiter = null
      w.resolve({ value: v, done: false })
    } else {
      this.queue.push(v)
    }
  }
  end(error?: unknown): void {
    if (this.done) return
    this.done = true
    this.error = error
    if (this.waiter && this.queue.length === 0) {
      const w = this.waiter
      this.waiter = null
      if (error !== undefined) w.reject(error)
      else w.resolve({ value: undefined, done: true })
    }
  }
  next(): Promise<IteratorResult<T>> {
    if (this.queue.length > 0) return Promise.resolve({ value: this.queue.shift()!, done: false })
    if (this.done) {
      if (this.error !== undefined) {
        const e = this.error
        this.error = undefined
        return Promise.reject(e)
      }
      return Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }))
  }
  return(): Promise<IteratorResult<T>> {
    this.done = true
    this.queue.length = 0
    this.unsubscribe(this)
    return Promise.resolve({ value: undefined, done: true })
  }
  [Symbol.asyncIterator](): this {
    return this
  }
}

/**
 * A running training loop. `await run` (or `run.result`) gives the {@link FitResult};
 * `for await (const ev of run)` (or `run.events()`) gives the {@link FitEvent}s from the moment
 * the iterator is created. The loop starts on the next microtask, so an iterator created right
 * after `fit(...)` returns sees every event; iterators see the events in order, ending with
 * `'end'`; breaking out of one stops only that iterator, not the run (use an AbortSignal).
 */
export class FitRun implements PromiseLike<FitResult>, AsyncIterable<FitEvent> {
  readonly result: Promise<FitResult>
  readonly #subs = new Set<Subscription<FitEvent>>()

  /** @internal */
  constructor(body: (emit: (ev: FitEvent) => void) => Promise<FitResult>) {
    const emit = (ev: FitEvent) => {
      for (const s of this.#subs) s.push(ev)
    }
    this.result = Promise.resolve()
      .then(() => body(emit))
      .then(
        (r) => {
          emit({ type: 'end', result: r })
          for (const s of this.#subs) s.end()
          return r
        },
        (e) => {
          for (const s of this.#subs) s.end(e)
          throw e
        },
      )
    // The error also reaches iterators and every `then`; do not report it as unhandled here.
    this.result.catch(() => {})
  }

  // biome-ignore lint/suspicious/noThenProperty: a run is awaitable on purpose (`await fit(...)`)
  then<A = FitResult, B = never>(
    onFulfilled?: ((value: FitResult) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.result.then(onFulfilled, onRejected)
  }

  /** The progress events from now on, ending with `'end'` (or throwing the run's error). */
  events(): AsyncIterableIterator<FitEvent> {
    const s = new Subscription<FitEvent>((x) => this.#subs.delete(x))
    this.#subs.add(s)
    return s
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<FitEvent> {
    return this.events()
  }
}
