// Runs the `recurrent` CLI as a child process, for the CLI specs (char LM, seq2seq, captioning).

import type { ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const corpus = join(root, 'data', 'kjv-new-testament.txt')

export interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** Options of {@link cli}. */
export interface CliOptions {
  /** Run the installed entry `bin/recurrent.js` (needs dist/) instead of the sources. */
  bin?: boolean
  /** Extra environment variables of the child. */
  env?: Record<string, string>
  /** Written to the child's stdin, which is then closed (default: no stdin). */
  stdin?: string
  /** Called with each chunk of stderr and the child, e.g. to kill it at a chosen moment. */
  onStderr?: (all: string, child: import('node:child_process').ChildProcess) => void
}

/** Runs the CLI from source with `args`. */
export function cli(args: string[], options: CliOptions = {}): Promise<Result> {
  const argv = options.bin ? [join(root, 'bin', 'recurrent.js'), ...args] : ['--import', '@oxc-node/core/register', join(root, 'src', 'cli', 'main.ts'), ...args]
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: root, stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
    if (options.stdin !== undefined) child.stdin!.end(options.stdin)
    let stdout = ''
    let stderr = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      options.onStderr?.(stderr, child)
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Asserts a failed run: non-zero status, exactly one line on stderr matching `reason`, no stack. */
export function assertOneLineError(t: ExecutionContext, r: Result, reason: RegExp): void {
  t.not(r.code, 0, `exit status ${r.code}`)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  t.is(lines.length, 1, `stderr: ${JSON.stringify(r.stderr)}`)
  t.regex(lines[0] ?? '', /^recurrent: /)
  t.regex(lines[0] ?? '', reason)
  t.false(r.stderr.includes('    at '), 'no stack trace')
  t.false(r.stdout.includes('    at '), 'no stack trace on stdout')
}

/** The values of each tensor of a safetensors file, by name (to compare checkpoints bit for bit). */
export async function tensorsOf(file: string): Promise<Map<string, Float64Array>> {
  const { loadSafetensors } = await import('../../index.js')
  const { tensors } = await loadSafetensors(file)
  const out = new Map<string, Float64Array>()
  for (const [k, t] of Object.entries(tensors)) out.set(k, Float64Array.from(await t.data()))
  return out
}
