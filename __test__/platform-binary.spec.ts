/**
 * The portable Linux x86-64 addon (scripts/build-platforms.sh linux-x64-gnu, linked by zig
 * against glibc 2.17): it must bind to no glibc symbol version above 2.17, so that it loads on
 * every distribution since CentOS 7, and it must load and compute in a plain Node process here.
 *
 * The binary is a build output (.tmp/platforms/), not made by `npm test`. Where it is missing
 * the tests are registered as skipped, with the reason in the title; with
 * RECURRENT_REQUIRE_PLATFORM_BINARY=1 (CI, after building it) they run and fail instead.
 */

import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import test, { type ExecutionContext } from 'ava'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const KEY = 'linux-x64-gnu'
const BINARY = path.join(root, '.tmp', 'platforms', KEY, `recurrent.${KEY}.node`)
const REL = path.relative(root, BINARY)
const MAX_GLIBC = [2, 17]
const REQUIRE = process.env.RECURRENT_REQUIRE_PLATFORM_BINARY === '1'

/** Why the tests cannot run here, or null. */
function missing(): string | null {
  if (!existsSync(BINARY)) return `${REL} is not built (scripts/build-platforms.sh ${KEY})`
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return `a ${KEY} binary cannot load on ${process.platform}-${process.arch}`
  }
  return null
}
const REASON = missing()

/** Runs where the binary is there; else skipped, or failing under RECURRENT_REQUIRE_PLATFORM_BINARY=1. */
function withBinary(title: string, body: (t: ExecutionContext) => void) {
  if (REASON === null) test(`${KEY} binary: ${title}`, body)
  else if (REQUIRE) test(`${KEY} binary: ${title}`, (t) => t.fail(`RECURRENT_REQUIRE_PLATFORM_BINARY=1 but ${REASON}`))
  else test.skip(`${KEY} binary: ${title} (skipped: ${REASON})`, body)
}

/** Every GLIBC_x.y[.z] version in `objdump -T` output, as number arrays. */
function glibcVersions(dump: string): number[][] {
  const found = new Set(dump.match(/\bGLIBC_\d+(?:\.\d+)+\b/g) ?? [])
  return [...found].map((v) => v.slice('GLIBC_'.length).split('.').map(Number))
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

test('glibcVersions and compareVersions read objdump -T lines', (t) => {
  const dump = [
    '0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memcpy',
    '0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.17)  clock_gettime',
    '0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.34)  dlopen',
    '0000000000000000      DF *UND*  0000000000000000 (GLIBC_PRIVATE) _dl_x',
  ].join('\n')
  const vs = glibcVersions(dump).sort(compareVersions)
  t.deepEqual(vs, [
    [2, 2, 5],
    [2, 17],
    [2, 34],
  ])
  t.true(compareVersions([2, 34], MAX_GLIBC) > 0)
  t.is(compareVersions([2, 17, 0], MAX_GLIBC), 0)
  t.true(compareVersions([2, 3, 4], MAX_GLIBC) < 0)
})

withBinary(`needs no GLIBC symbol version above ${MAX_GLIBC.join('.')} (objdump -T)`, (t) => {
  let dump: string
  try {
    dump = execFileSync('objdump', ['-T', BINARY], { encoding: 'utf8', maxBuffer: 64 << 20 })
  } catch (e) {
    t.fail(`objdump -T ${REL} failed (objdump is in binutils): ${(e as Error).message}`)
    return
  }
  const versions = glibcVersions(dump).sort(compareVersions)
  // An empty list would mean a parse failure or a binary not linked against glibc at all.
  t.true(versions.length > 0, `no GLIBC_ version in objdump -T ${REL}`)
  const newest = versions.at(-1)!
  const over = dump
    .split('\n')
    .filter((l) => glibcVersions(l).some((v) => compareVersions(v, MAX_GLIBC) > 0))
    .slice(0, 10)
  t.true(compareVersions(newest, MAX_GLIBC) <= 0, `newest is GLIBC_${newest.join('.')}; symbols above:\n${over.join('\n')}`)
})

/**
 * Run in a child process: the test worker already holds the dev addon from native/, and two
 * copies of the engine (each with its own executor and thread pool) in one process would make a
 * poor check of either. The child loads the binary alone, computes, and prints JSON.
 */
const CHILD = `
const native = require(process.argv[1])
const a = native.fromFloat32(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3])
const b = native.fromFloat32(new Float32Array([0.5, -1, 0.25, 2, -0.75, 0.125]), [3, 2])
const y = native.tanh(native.matmul(a, b))
let error = null
try {
  native.matmul(a, a)
} catch (e) {
  error = { message: String(e.message), code: e.code, op: e.op }
}
console.log(JSON.stringify({ shape: y.shape, dtype: y.dtype, data: Array.from(y.dataSync()), error }))
`

withBinary('loads with require() in a child node process and computes tanh(a·b)', (t) => {
  const out = execFileSync(process.execPath, ['-e', CHILD, BINARY], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
    shape: number[]
    dtype: string
    data: number[]
    error: { message: string; code: unknown; op: unknown } | null
  }
  t.deepEqual(r.shape, [2, 2])
  t.is(r.dtype, 'float32')
  const a = [1, 2, 3, 4, 5, 6]
  const b = [0.5, -1, 0.25, 2, -0.75, 0.125]
  const want: number[] = []
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      let s = 0
      for (let k = 0; k < 3; k++) s += a[i * 3 + k]! * b[k * 2 + j]!
      want.push(Math.tanh(s))
    }
  }
  t.is(r.data.length, 4)
  for (let i = 0; i < 4; i++) t.true(Math.abs(r.data[i]! - want[i]!) <= 1e-6, `element ${i}: ${r.data[i]} vs ${want[i]}`)
  // The error path crosses the binding too: a shape error with its code and op, not a crash.
  t.truthy(r.error, 'matmul of [2, 3] by [2, 3] did not throw')
  t.is(r.error!.op, 'matmul')
  t.is(r.error!.code, 'ERR_SHAPE')
  t.regex(r.error!.message, /matmul: .*\[2, 3\]/)
})
