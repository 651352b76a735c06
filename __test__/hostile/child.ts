/**
 * Child process of hostile.spec.ts: runs the cases of one group (or one isolated case) of
 * `cases.ts` and prints one JSON line per case (what it threw, or that it returned), then one
 * line with the process's peak RSS. The parent judges the results; this only observes.
 *
 * Usage: child.ts <group> [case name] (environment: HOSTILE_FIXTURES, a folder with a small
 * train-char run).
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cases, type Outcome } from './cases.js'

const [group, only] = process.argv.slice(2)
const fixtures = process.env.HOSTILE_FIXTURES ?? ''
const dir = mkdtempSync(join(tmpdir(), 'recurrent-hostile-'))
try {
  for (const c of cases.filter((c) => c.group === group && (only === undefined || c.name === only))) {
    const t0 = performance.now()
    let outcome: Outcome
    try {
      await c.run({ dir, fixtures })
      outcome = { kind: 'returned' }
    } catch (e) {
      const err = e as { name?: unknown; message?: unknown; code?: unknown }
      outcome = { kind: 'threw', cls: String(err?.name ?? typeof e), message: String(err?.message ?? e), code: typeof err?.code === 'string' ? err.code : undefined }
    }
    process.stdout.write(`${JSON.stringify({ name: c.name, ms: Math.round(performance.now() - t0), outcome })}\n`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.stdout.write(`${JSON.stringify({ maxRssKB: process.resourceUsage().maxRSS })}\n`)
