/**
 * The bad-input corpus (`cases.ts`) run in child processes: every case must end in the clean
 * error it names (class and message content) or, for legal calls, succeed; no process may die
 * by a signal, hang (each child is killed at its time limit) or grow past the RSS bound. The
 * summary line gives the counts per class.
 */

import test from 'ava'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cases, type Case, type Outcome } from './cases.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
/** Peak RSS a child may reach: the runtime, the addon and small tensors, far from any real allocation. */
const RSS_LIMIT_KB = 1024 * 1024
const ISOLATED_LIMIT_MS = 20_000
const BATCH_LIMIT_MS = 60_000

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  stdout: string
  stderr: string
}

function child(args: string[], env: Record<string, string>, limitMs: number, unprivileged = false): Promise<Run> {
  const asNobody = unprivileged && process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', '@oxc-node/core/register', join(here, 'child.ts'), ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...asNobody,
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      p.kill('SIGKILL')
    }, limitMs)
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, timedOut, stdout, stderr })
    })
  })
}

/** Runs `jobs` with at most `n` at a time. */
async function pool<T>(jobs: Array<() => Promise<T>>, n: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length)
  let next = 0
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < jobs.length) {
        const i = next++
        out[i] = await jobs[i]!()
      }
    }),
  )
  return out
}

/** Why `outcome` is not what `c` expects, or null when it is. */
function judge(c: Case, outcome: Outcome): string | null {
  if (c.expect === 'ok') return outcome.kind === 'returned' ? null : `expected success, got ${outcome.cls}: ${outcome.message}`
  if (outcome.kind === 'returned') return `silently accepted (expected ${c.expect.cls})`
  if (outcome.cls !== c.expect.cls) return `expected ${c.expect.cls}, got ${outcome.cls}: ${outcome.message}`
  const missing = c.expect.has.filter((h) => (typeof h === 'string' ? !outcome.message.includes(h) : !h.test(outcome.message)))
  if (missing.length > 0) return `the message lacks ${missing.map(String).join(', ')}: ${outcome.message}`
  return null
}

const fixtures = mkdtempSync(join(tmpdir(), 'recurrent-hostile-fixtures-'))
test.after.always(() => rmSync(fixtures, { recursive: true, force: true }))

test('the bad-input corpus: clean errors, no aborts, hangs, silent acceptances or memory blow-ups', async (t) => {
  t.timeout(240_000)
  // A small train-char run, for the CLI cases to resume, corrupt and sample from.
  writeFileSync(join(fixtures, 'small.txt'), readFileSync(join(root, 'data', 'kjv-new-testament.txt'), 'utf8').slice(0, 20000))
  const env = { HOSTILE_FIXTURES: fixtures }
  const mk = await new Promise<Run>((resolve, reject) => {
    const p = spawn(
      process.execPath,
      ['--import', '@oxc-node/core/register', join(root, 'src', 'cli', 'main.ts'), 'train-char', '--text', join(fixtures, 'small.txt'), '--steps', '4', '--hidden', '16', '--embedding', '8', '--batch', '4', '--k1', '8', '--out', join(fixtures, 'run')],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stderr = ''
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code, signal) => resolve({ code, signal, timedOut: false, stdout: '', stderr }))
  })
  t.is(mk.code, 0, `the fixture run failed: ${mk.stderr}`)

  const skipped = new Map<string, string>()
  for (const c of cases) {
    const why = c.skip?.()
    if (why) skipped.set(c.name, why)
  }
  const jobs: Array<{ label: string; cases: Case[]; args: string[]; limit: number; unprivileged?: boolean }> = []
  for (const g of ['batch-api', 'batch-files'] as const) {
    jobs.push({ label: g, cases: cases.filter((c) => c.group === g), args: [g], limit: BATCH_LIMIT_MS })
  }
  for (const c of cases.filter((c) => c.group === 'isolated' && !skipped.has(c.name))) {
    jobs.push({ label: c.name, cases: [c], args: ['isolated', c.name], limit: ISOLATED_LIMIT_MS, unprivileged: c.unprivileged === true })
  }
  const runs = await pool(
    jobs.map((j) => async () => ({ job: j, run: await child(j.args, env, j.limit, j.unprivileged) })),
    2,
  )

  const perClass = new Map<string, number>()
  let clean = 0
  let ok = 0
  let aborts = 0
  let hangs = 0
  let silent = 0
  let slowest = { name: '', ms: 0 }
  const failures: string[] = []
  for (const { job, run } of runs) {
    if (run.timedOut) {
      hangs++
      failures.push(`${job.label}: no result within ${job.limit} ms (a hang)`)
      continue
    }
    if (run.signal !== null || run.code !== 0) {
      aborts++
      failures.push(`${job.label}: the process ended by ${run.signal ?? `status ${run.code}`}: ${run.stderr.slice(-400)}`)
      continue
    }
    const lines = run.stdout.split('\n').filter((l) => l.startsWith('{'))
    const results = new Map<string, { ms: number; outcome: Outcome }>()
    let rss = 0
    for (const l of lines) {
      const r = JSON.parse(l)
      if (typeof r.maxRssKB === 'number') rss = r.maxRssKB
      else results.set(r.name, r)
    }
    if (rss > RSS_LIMIT_KB) failures.push(`${job.label}: peak RSS ${rss} KB is above ${RSS_LIMIT_KB} KB`)
    for (const c of job.cases) {
      const r = results.get(c.name)
      if (!r) {
        failures.push(`${c.name}: no result`)
        continue
      }
      if (r.ms > slowest.ms) slowest = { name: c.name, ms: r.ms }
      const why = judge(c, r.outcome)
      if (why) {
        if (why.startsWith('silently accepted')) silent++
        failures.push(`${c.name}: ${why}`)
        continue
      }
      if (r.outcome.kind === 'threw') {
        clean++
        perClass.set(r.outcome.cls, (perClass.get(r.outcome.cls) ?? 0) + 1)
      } else ok++
    }
  }
  const classes = [...perClass].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')
  const summary = `hostile corpus: ${cases.length} cases (${cases.length - skipped.size} run, ${skipped.size} skipped), ${clean} clean errors (${classes}), ${ok} legal calls succeeded; ${aborts} aborts, ${hangs} hangs, ${silent} silent acceptances; ${runs.length} child processes; slowest case ${slowest.ms} ms (${slowest.name})`
  t.log(summary)
  for (const [name, why] of skipped) t.log(`skipped: ${name}: ${why}`)
  console.log(summary)
  t.deepEqual(failures, [])
  t.is(aborts + hangs + silent, 0)
})
