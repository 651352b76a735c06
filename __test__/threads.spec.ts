/**
 * Placement of the compute threads (Linux): with one pool thread per usable CPU, each thread is
 * pinned to its own CPU (so that the team engine's runners never share a core after an idle
 * spell); with fewer threads, or RECURRENT_PIN_THREADS=0, they stay free. Each case runs in a
 * child process (the pool is made once per process) and reads /proc there.
 */

import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const here = path.dirname(fileURLToPath(import.meta.url))
const script = path.join(here, 'fixtures', 'worker-cpus.ts')

interface Placement {
  process: number[]
  workers: number[][]
}

function placement(env: Record<string, string>): Placement {
  const base = { ...process.env }
  delete base.RAYON_NUM_THREADS
  delete base.RECURRENT_PIN_THREADS
  const out = execFileSync(process.execPath, ['--import', '@oxc-node/core/register', script], {
    env: { ...base, ...env },
    encoding: 'utf8',
  })
  return JSON.parse(out) as Placement
}

const linux = process.platform === 'linux'
const usable = linux ? placement({ RECURRENT_PIN_THREADS: '0' }).process.length : 0
const runs = linux && usable >= 2
const when = runs ? test : test.skip
/** The title, with why it is skipped where it is. */
const title = (s: string) => (runs ? s : `${s} (skipped: ${linux ? `needs 2 usable CPUs, has ${usable}` : 'Linux only'})`)

when(title('one pool thread per usable CPU: each pinned to its own CPU'), (t) => {
  const p = placement({ RAYON_NUM_THREADS: String(usable) })
  t.is(p.workers.length, usable)
  const cpus = p.workers.map((w) => {
    t.is(w.length, 1, `a worker may run on ${JSON.stringify(w)}, not on one CPU`)
    return w[0]!
  })
  t.deepEqual([...cpus].sort((a, b) => a - b), p.process, 'the workers cover the usable CPUs, one each')
})

when(title('RECURRENT_PIN_THREADS=0 leaves every pool thread free'), (t) => {
  const p = placement({ RAYON_NUM_THREADS: String(usable), RECURRENT_PIN_THREADS: '0' })
  t.is(p.workers.length, usable)
  for (const w of p.workers) t.deepEqual(w, p.process)
})

when(title('a pool smaller than the CPUs stays free, unless RECURRENT_PIN_THREADS=1'), (t) => {
  const fewer = String(usable - 1)
  const free = placement({ RAYON_NUM_THREADS: fewer })
  t.is(free.workers.length, usable - 1)
  for (const w of free.workers) t.deepEqual(w, free.process)
  if (usable - 1 >= 2) {
    const pinned = placement({ RAYON_NUM_THREADS: fewer, RECURRENT_PIN_THREADS: '1' })
    t.deepEqual(pinned.workers.map((w) => w.length), pinned.workers.map(() => 1))
    t.is(new Set(pinned.workers.map((w) => w[0])).size, usable - 1)
  } else {
    // One thread is never pinned, even when asked: there is no barrier to keep apart.
    const one = placement({ RAYON_NUM_THREADS: fewer, RECURRENT_PIN_THREADS: '1' })
    t.deepEqual(one.workers, [one.process])
  }
})
