// Event-loop delay while a library computes, shared by the side-by-side benches: p99 and max of
// perf_hooks.monitorEventLoopDelay, and a time-weighted p99 that also counts what a blocked loop
// could not sample, over one window of timed calls.

import { monitorEventLoopDelay } from 'node:perf_hooks'

export interface LoopStats {
  /** p99 of perf_hooks.monitorEventLoopDelay, ms. */
  p99: number
  /** Its maximum, ms. */
  max: number
  /**
   * p99 of the delay a callback scheduled at a uniformly random moment would see, ms: a 1 ms
   * timer chain whose late ticks also count the ticks they displaced (a blocked loop takes no
   * samples, so plain sampling under-reports it: "coordinated omission").
   */
  p99Weighted: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A 1 ms timer chain recording lateness, corrected for the ticks a blocked loop swallowed. */
class LoopSampler {
  #timer: NodeJS.Timeout | undefined
  #expected = 0
  constructor(private readonly samples: number[]) {}
  start(): void {
    const tick = () => {
      const now = performance.now()
      let d = now - this.#expected
      this.samples.push(Math.max(0, d))
      for (d -= 1; d > 0; d -= 1) this.samples.push(d)
      this.#expected = now + 1
      this.#timer = setTimeout(tick, 1)
    }
    this.#expected = performance.now() + 1
    this.#timer = setTimeout(tick, 1)
  }
  stop(): void {
    clearTimeout(this.#timer)
  }
}

/**
 * Samples the event loop between `start()` and `stop()`. Both wait a few ms outside the caller's
 * timing: the histogram's first tick only sets its baseline, and its last one must fire after
 * the last blocking call to record it. A fresh histogram per window: one re-enabled after a pause
 * would record the pause as a delay.
 */
export class LoopDelayMonitor {
  #window: { h: ReturnType<typeof monitorEventLoopDelay>; s: LoopSampler; samples: number[] } | null = null

  async start(): Promise<void> {
    if (this.#window) throw new Error('LoopDelayMonitor: already started')
    const samples: number[] = []
    const h = monitorEventLoopDelay({ resolution: 1 })
    const s = new LoopSampler(samples)
    h.enable()
    s.start()
    this.#window = { h, s, samples }
    await sleep(3)
  }

  async stop(): Promise<LoopStats> {
    const w = this.#window
    if (!w) throw new Error('LoopDelayMonitor: not started')
    await sleep(5)
    w.h.disable()
    w.s.stop()
    this.#window = null
    const s = w.samples.sort((a, b) => a - b)
    return {
      p99: w.h.percentile(99) / 1e6,
      max: w.h.max / 1e6,
      p99Weighted: s.length ? s[Math.min(s.length - 1, Math.floor(0.99 * s.length))]! : 0,
    }
  }
}
