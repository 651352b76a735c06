// Minimal SVG bar charts for benchmark results: no dependency, readable in any browser.

export interface Bar {
  label: string
  value: number
  /** Optional second line under the label, e.g. "68 ms". */
  note?: string
}

/** Renders horizontal bars scaled to the largest value. */
export function barChartSvg(title: string, unit: string, bars: readonly Bar[]): string {
  const width = 760
  const rowH = 34
  const left = 260
  const top = 44
  const height = top + rowH * bars.length + 20
  const max = Math.max(...bars.map((b) => b.value), 1e-12)
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const rows = bars
    .map((b, i) => {
      const y = top + i * rowH
      const w = Math.max(1, ((width - left - 90) * b.value) / max)
      return [
        `<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-size="13">${esc(b.label)}</text>`,
        b.note ? `<text x="${left - 8}" y="${y + 28}" text-anchor="end" font-size="10" fill="#666">${esc(b.note)}</text>` : '',
        `<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 10}" fill="#3b6ea8"/>`,
        `<text x="${left + w + 6}" y="${y + 20}" font-size="12">${b.value.toFixed(1)} ${esc(unit)}</text>`,
      ].join('')
    })
    .join('\n')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="26" font-size="16" font-weight="bold">${esc(title)}</text>
${rows}
</svg>
`
}

/** The median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
