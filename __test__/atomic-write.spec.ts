/**
 * The atomic writers under injected faults: the native one (saveSafetensors, hence checkpoints)
 * and the TypeScript one (tfjs models, ONNX files). Through `RECURRENT_IO_FAULT`, each write
 * fails after N bytes of the temporary file, before its fsync, before the rename and before the
 * folder's fsync; the previous file's bytes must survive every point before the rename. Through
 * `RECURRENT_IO_TRACE`, the steps are counted: one fsync of the file before the rename, one of
 * the folder after it. The process-wide variables are why this file's tests are serial.
 */

import test from 'ava'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'

import { CheckpointError, saveSafetensors, tensor } from '../index.js'
import { atomicWrite } from '../src/io/atomic.js'

const root = mkdtempSync(join(tmpdir(), 'recurrent-atomic-'))
test.after.always(() => rmSync(root, { recursive: true, force: true }))
test.afterEach.always(() => {
  delete process.env.RECURRENT_IO_FAULT
  delete process.env.RECURRENT_IO_TRACE
})

let folders = 0
const fresh = () => mkdtempSync(join(root, `w${++folders}-`))

interface Writer {
  name: string
  /** Writes version `v` of the file at `path`. */
  write(path: string, v: number): Promise<void>
  /** What a failed write rejects with. */
  failure: new (...args: never[]) => Error
}

const WRITERS: Writer[] = [
  {
    name: 'native (saveSafetensors)',
    // Version v: a different tensor and metadata, so that every byte may differ.
    write: (path, v) => saveSafetensors(path, { w: tensor(Float32Array.from({ length: 300 }, (_, i) => i * v)) }, { v: String(v) }),
    failure: CheckpointError,
  },
  {
    name: 'TypeScript (atomicWrite)',
    write: (path, v) => atomicWrite(path, Uint8Array.from({ length: 1200 }, (_, i) => (i * 7 + v) & 255)),
    failure: Error,
  },
]

/** The steps of one traced write of version `v`. */
async function traced(w: Writer, path: string, v: number): Promise<string[]> {
  const trace = join(dirname(path), '..', `${basename(dirname(path))}.trace`)
  rmSync(trace, { force: true })
  process.env.RECURRENT_IO_TRACE = trace
  try {
    await w.write(path, v)
  } finally {
    delete process.env.RECURRENT_IO_TRACE
  }
  return readFileSync(trace, 'utf8').trim().split('\n')
}

for (const w of WRITERS) {
  test.serial(`${w.name}: one fsync of the file before the rename, one of the folder after it`, async (t) => {
    const dir = fresh()
    const path = join(dir, 'f.bin')
    await w.write(path, 1)
    const steps = await traced(w, path, 2)
    const size = readFileSync(path).length
    t.is(steps.length, 5, steps.join('\n'))
    const [create, write, fsync, rename, fsyncDir] = steps.map((s) => s.split(' '))
    const tmp = create![1]!
    t.is(create![0], 'create')
    t.is(dirname(tmp), dir, 'the temporary file is in the target folder (a rename stays on one file system)')
    t.not(tmp, path, 'the new bytes go to a temporary file, not over the old one')
    t.deepEqual(write, ['write', String(size)], 'the whole file is written before the fsync')
    t.deepEqual(fsync, ['fsync', tmp])
    t.deepEqual(rename, ['rename', tmp, path])
    t.deepEqual(fsyncDir, ['fsync-dir', dir])
    t.is(steps.filter((s) => s.startsWith('fsync ')).length, 1, 'one fsync of the file')
    t.is(steps.filter((s) => s.startsWith('fsync-dir ')).length, 1, 'one fsync of the folder')
    t.deepEqual(readdirSync(dir), ['f.bin'])
  })

  test.serial(`${w.name}: a failure at any point before the rename leaves the previous file's bytes`, async (t) => {
    const probe = join(fresh(), 'probe.bin')
    await w.write(probe, 2)
    const size = readFileSync(probe).length
    for (const point of ['after-bytes=0', 'after-bytes=37', `after-bytes=${size - 1}`, 'before-fsync', 'before-rename']) {
      const dir = fresh()
      const path = join(dir, 'f.bin')
      await w.write(path, 1)
      const before = readFileSync(path)
      process.env.RECURRENT_IO_FAULT = `fail@${point}`
      const e = await t.throwsAsync(w.write(path, 2), { instanceOf: w.failure }, point)
      delete process.env.RECURRENT_IO_FAULT
      t.true(e?.message.includes(`injected fault at ${point}`), `${point}: ${e?.message}`)
      t.deepEqual(readFileSync(path), before, `${point}: the previous bytes survive`)
      t.deepEqual(readdirSync(dir), ['f.bin'], `${point}: the temporary file is removed`)
      // The next write, without a fault, goes through.
      await w.write(path, 2)
      t.deepEqual(readFileSync(path), readFileSync(probe), `${point}: a later write replaces the file`)
    }
  })

  test.serial(`${w.name}: a failure after the rename leaves the new file whole; #k picks the k-th write`, async (t) => {
    const dir = fresh()
    const path = join(dir, 'f.bin')
    await w.write(path, 1)
    process.env.RECURRENT_IO_FAULT = 'fail@before-dir-fsync'
    await t.throwsAsync(w.write(path, 2), { instanceOf: w.failure })
    delete process.env.RECURRENT_IO_FAULT
    const after = readFileSync(path)
    const probe = join(fresh(), 'probe.bin')
    await w.write(probe, 2)
    t.deepEqual(after, readFileSync(probe), 'the renamed file is the complete new version')

    // The temporary name carries the write's number in this process: fail the one after next.
    const n = Number(/-(\d+)$/.exec((await traced(w, path, 3))[0]!.split(' ')[1]!)![1])
    process.env.RECURRENT_IO_FAULT = `fail@before-rename#${n + 2}`
    await w.write(path, 4)
    const kept = readFileSync(path)
    await t.throwsAsync(w.write(path, 5), { instanceOf: w.failure })
    t.deepEqual(readFileSync(path), kept, 'the chosen write failed and left the previous one')
    await w.write(path, 6)
    t.notDeepEqual(readFileSync(path), kept, 'later writes are not affected')
  })
}
