/**
 * The atomic file writer of the TypeScript layer (tfjs models, ONNX files): a temporary file in
 * the same folder, written whole and fsynced, renamed over the target, then the folder fsynced,
 * so that a crash or a failure at any point leaves the previous file intact. It mirrors
 * `write_atomic` in `crates/core/src/io.rs` (safetensors and checkpoints), fault hooks included.
 */

import { appendFileSync } from 'node:fs'
import { type FileHandle, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** Atomic writes of this process, counted from 1 (temporary names and `#k` faults use it). */
let writes = 0

/**
 * The fault and trace hooks of one write, from `RECURRENT_IO_FAULT` and `RECURRENT_IO_TRACE`
 * (the same variables and meanings as the Rust writer: see `faults` in crates/core/src/io.rs).
 */
class Hooks {
  readonly action: string | null
  readonly point: string | null
  readonly trace: string | null

  constructor(n: number) {
    this.trace = process.env.RECURRENT_IO_TRACE || null
    const spec = process.env.RECURRENT_IO_FAULT ?? ''
    const [what = '', which] = spec.split('#')
    const at = what.indexOf('@')
    const chosen = which === undefined || Number(which.trim()) === n
    this.action = at > 0 && chosen ? what.slice(0, at).trim() : null
    this.point = at > 0 && chosen ? what.slice(at + 1).trim() : null
  }

  log(line: string): void {
    if (this.trace !== null) appendFileSync(this.trace, `${line}\n`)
  }

  /** The byte count of an `after-bytes=N` fault, or null. */
  cut(): number | null {
    const m = /^after-bytes=(\d+)$/.exec(this.point ?? '')
    return m ? Number(m[1]) : null
  }

  /**
   * fsync of the open file `h` (at `path`), traced as `fsync <path>` once it succeeded. The trace
   * line comes from the call itself, so a writer that drops the fsync also drops the line the
   * tests count.
   */
  async sync(h: FileHandle, path: string): Promise<void> {
    await h.sync()
    this.log(`fsync ${path}`)
  }

  /**
   * fsync of a folder, so that a rename in it is durable, traced as `fsync-dir <dir>`. Best
   * effort: some file systems refuse.
   */
  async syncDir(dir: string): Promise<void> {
    let h: FileHandle | undefined
    try {
      h = await open(dir, 'r')
      await h.sync()
      this.log(`fsync-dir ${dir}`)
    } catch {
      // The file itself is on disk; only the rename's durability is left to the file system.
    } finally {
      await h?.close().catch(() => {})
    }
  }

  /** Injects the fault chosen for `point`, if any: rejects (`fail`) or never settles (`hang`). */
  async at(point: string): Promise<void> {
    if (this.action === null || this.point !== point) return
    this.log(`fault ${this.action}@${point}`)
    if (this.action === 'hang') {
      process.stderr.write(`RECURRENT_IO_FAULT: hanging at ${point}\n`)
      // A timer keeps the process alive while the write never finishes.
      setInterval(() => {}, 1 << 30)
      await new Promise<never>(() => {})
    }
    throw new Error(`injected fault at ${point} (RECURRENT_IO_FAULT)`)
  }
}


/** Writes `data` to `file` atomically (see the top of this file). @internal */
export async function atomicWrite(file: string, data: Uint8Array): Promise<void> {
  const n = ++writes
  const hooks = new Hooks(n)
  const dir = dirname(file)
  const tmp = join(dir, `.${basename(file)}.tmp-${process.pid}-${n}`)
  let h: FileHandle | undefined
  try {
    h = await open(tmp, 'w')
    hooks.log(`create ${tmp}`)
    const cut = hooks.cut()
    const part = cut === null ? data : data.subarray(0, Math.min(cut, data.length))
    await h.writeFile(part)
    hooks.log(`write ${part.length}`)
    if (cut !== null) await hooks.at(hooks.point!)
    await hooks.at('before-fsync')
    await hooks.sync(h, tmp)
    await h.close()
    h = undefined
    await hooks.at('before-rename')
    await rename(tmp, file)
    hooks.log(`rename ${tmp} ${file}`)
    await hooks.at('before-dir-fsync')
    await hooks.syncDir(dir)
  } catch (e) {
    await h?.close().catch(() => {})
    await unlink(tmp).catch(() => {})
    throw e
  }
}
