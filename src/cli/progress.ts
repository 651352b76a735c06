/**
 * Training progress for the CLI: on a TTY, one status line redrawn in place (a bar, step,
 * smoothed loss and bits per character, validation bpc, tokens/s, ETA); otherwise a plain line
 * every N steps, so that logs stay readable.
 */

import { fmtDuration, fmtSI } from './common.js'

/** What the status line shows. */
export interface ProgressInfo {
  step: number
  /** Steps the run aims for. */
  totalSteps: number
  /** Smoothed training loss (nats per character). */
  loss: number
  /** Latest validation bits per character, if any. */
  valBpc?: number | undefined
  /** Training tokens per second. */
  tokensPerSec: number
  /** Seconds this run has been training. */
  elapsedSec: number
  /** Estimated seconds left. */
  etaSec: number
  /** Show the loss in bits per character too (default true; off for seq2seq). */
  bpc?: boolean | undefined
  /** More to show after the loss, such as a validation accuracy. */
  extra?: string | undefined
}

export interface ProgressOptions {
  /** Redraw in place (a TTY) or print plain lines. */
  tty: boolean
  /** Plain mode: print every this many steps (and at the last step). */
  every: number
  /** Terminal width (TTY mode). */
  columns?: number
}

/** An output stream as the progress needs it. */
export interface Writer {
  write(s: string): unknown
}

export class Progress {
  #drawn = false
  #lastDraw = 0
  #last: ProgressInfo | null = null

  constructor(
    readonly out: Writer,
    readonly options: ProgressOptions,
  ) {}

  /** A step finished. */
  update(info: ProgressInfo): void {
    this.#last = info
    if (this.options.tty) {
      const now = Date.now()
      if (now - this.#lastDraw < 100 && info.step < info.totalSteps) return
      this.#lastDraw = now
      this.#draw(info)
    } else if (info.step % this.options.every === 0 || info.step === info.totalSteps) {
      this.out.write(Progress.line(info) + '\n')
    }
  }

  /** Prints a line of its own (above the status line on a TTY). */
  log(line: string): void {
    if (this.options.tty && this.#drawn) this.out.write('\r\x1b[2K')
    this.out.write(line + '\n')
    this.#drawn = false
    if (this.options.tty && this.#last) this.#draw(this.#last)
  }

  /** Leaves the status line as it is and moves to a new line. */
  done(): void {
    if (this.options.tty && this.#drawn) {
      if (this.#last) this.#draw(this.#last)
      this.out.write('\n')
    }
    this.#drawn = false
  }

  #draw(info: ProgressInfo): void {
    const cols = Math.max(40, this.options.columns ?? 100)
    const frac = info.totalSteps > 0 ? Math.min(1, info.step / info.totalSteps) : 0
    const text = Progress.line(info, true)
    const barWidth = Math.max(0, Math.min(24, cols - text.length - 10))
    let s = text
    if (barWidth >= 6) {
      const full = Math.round(frac * barWidth)
      s = `${'█'.repeat(full)}${'░'.repeat(barWidth - full)} ${String(Math.round(frac * 100)).padStart(3)}%  ${text}`
    }
    if (s.length > cols - 1) s = s.slice(0, cols - 1)
    this.out.write(`\r\x1b[2K${s}`)
    this.#drawn = true
  }

  /** The text of one progress line. */
  static line(info: ProgressInfo, compact = false): string {
    const w = String(info.totalSteps).length
    const parts = [
      `step ${String(info.step).padStart(w)}/${info.totalSteps}`,
      `loss ${info.loss.toFixed(3)}`,
    ]
    if (info.bpc !== false) parts.push(`bpc ${(info.loss / Math.LN2).toFixed(3)}`)
    if (info.extra) parts.push(info.extra)
    if (info.valBpc !== undefined) parts.push(`val bpc ${info.valBpc.toFixed(3)}`)
    parts.push(`${fmtSI(info.tokensPerSec)} tok/s`)
    if (!compact) parts.push(`elapsed ${fmtDuration(info.elapsedSec)}`)
    parts.push(`ETA ${fmtDuration(info.etaSec)}`)
    return parts.join(compact ? '  ' : '  ')
  }
}

/** An exponential moving average with bias correction (as Adam's moments). */
export class Smoother {
  #v = 0
  #n = 0
  constructor(readonly beta = 0.95) {}
  add(x: number): number {
    if (!Number.isFinite(x)) return this.value
    this.#n++
    this.#v = this.beta * this.#v + (1 - this.beta) * x
    return this.value
  }
  get value(): number {
    return this.#n === 0 ? NaN : this.#v / (1 - this.beta ** this.#n)
  }
}
