/**
 * A small, dependency-free SVG line chart: axes with round-number ticks, several series (lines
 * with optional point markers), horizontal reference lines, a title and a legend. Used for the
 * loss curves that `recurrent train-char` writes next to its checkpoint.
 */

/** One curve. */
export interface Series {
  name: string
  /** `[x, y]` pairs, in increasing x. Non-finite values are skipped. */
  points: ReadonlyArray<readonly [number, number]>
  color: string
  /** Draw a small circle at every point (for sparse series such as validation). */
  markers?: boolean
  /** Line width (default 1.5). */
  width?: number
}

/** A horizontal reference line across the plot. */
export interface HLine {
  y: number
  label: string
  color: string
}

export interface ChartOptions {
  title: string
  xLabel: string
  yLabel: string
  width?: number
  height?: number
  hlines?: readonly HLine[]
  /** Start the x axis here (otherwise at the smallest x). */
  xMin?: number
  /** Force the y range (otherwise from the data and the reference lines). */
  yMin?: number
  yMax?: number
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** About `count` round-number ticks (1, 2 or 5 × 10^k apart) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / Math.max(1, count)
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag)
  const ticks: number[] = []
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)))
  return ticks
}

function fmt(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`
  return String(Number(v.toPrecision(4)))
}

/** Renders the chart as a standalone SVG document. */
export function lineChartSvg(series: readonly Series[], options: ChartOptions): string {
  const W = options.width ?? 720
  const H = options.height ?? 420
  const m = { left: 64, right: 24, top: 40, bottom: 52 }
  const pw = W - m.left - m.right
  const ph = H - m.top - m.bottom
  const pts = series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)))
  const xs = pts.flatMap((p) => p.map(([x]) => x))
  const ys = [...pts.flatMap((p) => p.map(([, y]) => y)), ...(options.hlines ?? []).map((h) => h.y)]
  let x0 = options.xMin ?? (xs.length ? Math.min(...xs) : 0)
  let x1 = xs.length ? Math.max(...xs) : 1
  if (!(x1 > x0)) x1 = x0 + 1
  let y0 = options.yMin ?? (ys.length ? Math.min(...ys) : 0)
  let y1 = options.yMax ?? (ys.length ? Math.max(...ys) : 1)
  if (!(y1 > y0)) {
    y0 -= 0.5
    y1 += 0.5
  }
  const xt = niceTicks(x0, x1)
  const yt = niceTicks(y0, y1)
  // Extend the y range to whole ticks, so that the top and bottom gridlines frame the data.
  const ystep = yt.length > 1 ? yt[1]! - yt[0]! : 1
  if (options.yMin === undefined) y0 = Math.min(y0, Math.floor(y0 / ystep) * ystep)
  if (options.yMax === undefined) y1 = Math.max(y1, Math.ceil(y1 / ystep) * ystep)
  if (options.xMin === undefined) x0 = Math.min(x0, xt[0] ?? x0)
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw
  const sy = (y: number) => m.top + (1 - (y - y0) / (y1 - y0)) * ph
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`)
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(options.title)}</text>`)
  // grid and ticks
  for (const v of niceTicks(y0, y1)) {
    const y = sy(v).toFixed(1)
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${fmt(v)}</text>`)
  }
  for (const v of niceTicks(x0, x1)) {
    if (v < x0 || v > x1) continue
    const x = sx(v).toFixed(1)
    out.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`)
    out.push(`<text x="${x}" y="${m.top + ph + 16}" text-anchor="middle" fill="#444">${fmt(v)}</text>`)
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`)
  out.push(`<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle" fill="#222">${esc(options.xLabel)}</text>`)
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${esc(options.yLabel)}</text>`)
  out.push(`<defs><clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath></defs>`)
  // reference lines
  for (const h of options.hlines ?? []) {
    if (h.y < y0 || h.y > y1) continue
    const y = sy(h.y).toFixed(1)
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="${h.color}" stroke-dasharray="6 4" stroke-width="1.2"/>`)
    out.push(`<text x="${m.left + pw - 6}" y="${(sy(h.y) - 5).toFixed(1)}" text-anchor="end" fill="${h.color}">${esc(h.label)}</text>`)
  }
  // series
  series.forEach((s, i) => {
    const p = pts[i]!
    if (p.length === 0) return
    const d = p.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-linejoin="round" clip-path="url(#plot)"/>`)
    if (s.markers || p.length === 1) {
      for (const [x, y] of p) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}" clip-path="url(#plot)"/>`)
    }
  })
  // legend
  const shown = series.filter((_, i) => pts[i]!.length > 0)
  shown.forEach((s, i) => {
    const y = m.top + 14 + i * 18
    const x = m.left + pw - 190
    out.push(`<line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2.5"/>`)
    out.push(`<text x="${x + 28}" y="${y}" dominant-baseline="middle" fill="#222">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
