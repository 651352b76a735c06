/**
 * The `recurrent` CLI, run as a child process: train-char writes a checkpoint and a loss curve,
 * `sample` continues a prime, `--resume` continues a run bit-identically (also after a SIGKILL
 * in the middle of a checkpoint save), and bad input ends with one line on stderr (no stack
 * trace). Each test makes the folders it uses, so any one of them runs alone. The long
 * convergence run is in cli-convergence.spec.ts, its own worker.
 *
 * The specs run `src/cli/main.ts` through @oxc-node (no build needed); one spec checks the
 * installed entry `bin/recurrent.js`, and is skipped, visibly, when `dist/` is not built.
 */

import test from 'ava'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { loadSafetensors } from '../index.js'
import { type Result, assertOneLineError, cli, corpus, root } from './helpers/cli.js'

const work = mkdtempSync(join(tmpdir(), 'recurrent-cli-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

/** A small text: the first 30 000 characters of the bundled corpus. */
const smallText = join(work, 'small.txt')
writeFileSync(smallText, readFileSync(corpus, 'utf8').slice(0, 30000))
const tinyModel = (hidden: number) => ['--text', smallText, '--hidden', String(hidden), '--layers', '1', '--embedding', '16', '--batch', '8', '--k1', '16']
const tiny = tinyModel(32)

/** The values of each tensor of a safetensors file. */
async function tensorsOf(file: string): Promise<Map<string, Float64Array>> {
  const { tensors } = await loadSafetensors(file)
  const out = new Map<string, Float64Array>()
  for (const [k, t] of Object.entries(tensors)) out.set(k, Float64Array.from(await t.data()))
  return out
}

test.serial('--help prints the usage of the CLI and of each command', async (t) => {
  const top = await cli(['--help'])
  t.is(top.code, 0)
  t.regex(top.stdout, /Usage: recurrent <command>/)
  t.regex(top.stdout, /train-char/)
  t.regex(top.stdout, /sample/)
  const train = await cli(['train-char', '--help'])
  t.is(train.code, 0)
  for (const flag of ['--text', '--out', '--hidden', '--layers', '--k1', '--k2', '--batch', '--lr', '--steps', '--minutes', '--val-fraction', '--seed', '--resume', '--cell']) {
    t.true(train.stdout.includes(flag), `train-char --help mentions ${flag}`)
  }
  const sample = await cli(['sample', '-h'])
  t.is(sample.code, 0)
  for (const flag of ['--checkpoint', '--prime', '--temperature', '--length', '--seed']) t.true(sample.stdout.includes(flag))
  t.is(top.stderr + train.stderr + sample.stderr, '')
})

/**
 * A small run (50 steps, checkpoints every 20) in its own folder, made once for the tests that
 * only read it; a test that changes a run copies the folder first.
 */
let baseRun: Promise<{ dir: string; r: Result }> | undefined
function trainedRun(): Promise<{ dir: string; r: Result }> {
  baseRun ??= (async () => {
    const dir = join(work, 'run1')
    const r = await cli(['train-char', ...tiny, '--out', dir, '--steps', '50', '--checkpoint-every', '20', '--sample-length', '80'])
    return { dir, r }
  })()
  return baseRun
}

test.serial('train-char trains a small model, writes the checkpoint and loss.svg, and reports bpc', async (t) => {
  const { dir: out1, r } = await trainedRun()
  t.is(r.code, 0, r.stderr)
  t.is(r.stderr, '')
  t.true(existsSync(join(out1, 'checkpoint.safetensors')))
  const svg = readFileSync(join(out1, 'loss.svg'), 'utf8')
  t.regex(svg, /^<svg /)
  t.regex(svg, /<\/svg>\s*$/)
  t.true(svg.includes('validation'))
  t.true(svg.includes('unigram entropy'))
  t.regex(r.stdout, /validation: \d+\.\d+ bits\/char/)
  t.regex(r.stdout, /unigram entropy of the training text: 4\.\d+ bits\/char/)
  t.regex(r.stdout, /tokens\/s/)
  t.regex(r.stdout, /checkpoint: .*checkpoint\.safetensors \(step 50\)/)
  t.regex(r.stdout, /sample \(temperature 0\.8/)
  // Not a TTY: plain progress lines.
  t.regex(r.stdout, /step +\d+\/50 +loss \d/)
})

test.serial('sample continues the prime with the requested number of characters, reproducibly', async (t) => {
  const { dir: out1, r: trained } = await trainedRun()
  t.is(trained.code, 0, trained.stderr)
  const prime = 'And he said'
  const a = await cli(['sample', '--checkpoint', out1, '--prime', prime, '--length', '120', '--temperature', '0.8', '--seed', '7'])
  t.is(a.code, 0, a.stderr)
  t.is(a.stderr, '')
  t.true(a.stdout.startsWith(prime))
  t.true(a.stdout.endsWith('\n'))
  t.is([...a.stdout.slice(0, -1)].length, prime.length + 120)
  // The checkpoint file works as well as its folder; the same seed gives the same text.
  const b = await cli(['sample', '--checkpoint', join(out1, 'checkpoint.safetensors'), '--prime', prime, '--length', '120', '--seed', '7'])
  t.is(b.stdout, a.stdout)
  // Temperature 0 is greedy: no randomness at all.
  const g1 = await cli(['sample', '--checkpoint', out1, '--length', '40', '--temperature', '0', '--seed', '1'])
  const g2 = await cli(['sample', '--checkpoint', out1, '--length', '40', '--temperature', '0', '--seed', '2'])
  t.is(g1.code, 0)
  t.is(g1.stdout, g2.stdout)
})

test.serial('--resume continues the run to a larger --steps', async (t) => {
  const base = await trainedRun()
  t.is(base.r.code, 0, base.r.stderr)
  const out1 = join(work, 'resumed')
  cpSync(base.dir, out1, { recursive: true })
  const r = await cli(['train-char', '--out', out1, '--resume', '--steps', '70', '--sample-length', '0'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /resuming at step 50 of 70/)
  t.regex(r.stdout, /checkpoint: .*\(step 70\)/)
  // The loss curve keeps the first run's points.
  const svg = readFileSync(join(out1, 'loss.svg'), 'utf8')
  t.true((svg.match(/<circle /g) ?? []).length >= 3, 'validation points of both runs')
  // Nothing left to do at the planned end.
  const again = await cli(['train-char', '--out', out1, '--resume', '--steps', '70', '--sample-length', '0'])
  t.is(again.code, 0, again.stderr)
  t.regex(again.stdout, /already at step 70/)
  // Settings belong to the run: a different one is refused.
  const clash = await cli(['train-char', '--out', out1, '--resume', '--hidden', '64'])
  assertOneLineError(t, clash, /--hidden 64 differs from the checkpoint's 32/)
})

test.serial('a run killed in the middle of a checkpoint save and resumed with --resume ends bit-identical to an uninterrupted one', async (t) => {
  const args = [...tinyModel(48), '--steps', '400', '--checkpoint-every', '25', '--sample-length', '0', '--seed', '3']
  const whole = join(work, 'whole')
  const parts = join(work, 'parts')
  const a = await cli(['train-char', ...args, '--out', whole])
  t.is(a.code, 0, a.stderr)
  // The same run, stopped for certain inside its third checkpoint save (step 75), before the
  // rename, by the writer's `hang` fault, and killed there; then resumed from step 50.
  const hang = 'RECURRENT_IO_FAULT: hanging at before-rename'
  const b1 = await cli(['train-char', ...args, '--out', parts], {
    env: { RECURRENT_IO_FAULT: 'hang@before-rename#3' },
    onStderr: (all, child) => {
      if (all.includes(hang)) child.kill('SIGKILL')
    },
  })
  t.true(b1.stderr.includes(hang), `the run did not stop in its third save: ${b1.stderr}`)
  t.is(b1.code, null, 'killed')
  t.true(
    readdirSync(parts).some((f) => f.startsWith('.checkpoint.safetensors.tmp-')),
    'the killed save left its temporary file',
  )
  const b2 = await cli(['train-char', '--out', parts, '--resume'])
  t.is(b2.code, 0, b2.stderr)
  t.regex(b2.stdout, /resuming at step 50 of 400/)
  t.regex(b2.stdout, /checkpoint: .*\(step 400\)/)
  t.false(
    readdirSync(parts).some((f) => f.includes('.tmp-')),
    'the resumed run removed the dead temporary file',
  )
  const ta = await tensorsOf(join(whole, 'checkpoint.safetensors'))
  const tb = await tensorsOf(join(parts, 'checkpoint.safetensors'))
  t.deepEqual([...tb.keys()], [...ta.keys()])
  let differing = 0
  for (const [k, va] of ta) {
    const vb = tb.get(k)!
    if (va.length !== vb.length || va.some((x, i) => !Object.is(x, vb[i]))) differing++
  }
  t.is(differing, 0, 'model, optimizer and TBPTT state tensors are bit-identical')
})

test.serial('bad flags end with one line on stderr and status 2', async (t) => {
  assertOneLineError(t, await cli(['train-char', '--bogus']), /unknown flag '--bogus'/)
  assertOneLineError(t, await cli(['train-char', '--hidden', 'abc']), /--hidden must be a number, got 'abc'/)
  assertOneLineError(t, await cli(['train-char', '--hidden', '0']), /--hidden must be at least 1/)
  assertOneLineError(t, await cli(['train-char', '--cell', 'transformer']), /--cell must be one of lstm, gru, rnn/)
  assertOneLineError(t, await cli(['train-char', '--steps']), /--steps needs a value/)
  assertOneLineError(t, await cli(['train-char', '--k1', '32', '--k2', '16', '--text', smallText]), /--k2 \(16\) must be at least --k1 \(32\)/)
  assertOneLineError(t, await cli(['sample', '--temperature', '-1']), /--temperature must be at least 0/)
  assertOneLineError(t, await cli(['fly']), /unknown command 'fly'/)
  const r = await cli(['train-char', '--bogus'])
  t.is(r.code, 2)
})

test.serial('a missing file ends with one line on stderr', async (t) => {
  const missing = join(work, 'no-such.txt')
  const r = await cli(['train-char', '--text', missing, '--out', join(work, 'never')])
  assertOneLineError(t, r, /cannot read --text '.*no-such\.txt': no such file/)
  t.is(r.code, 1)
  assertOneLineError(t, await cli(['sample', '--checkpoint', join(work, 'no-such-dir')]), /cannot read --checkpoint '.*no-such-dir': no such file/)
  assertOneLineError(t, await cli(['sample', '--checkpoint', work]), /no checkpoint in '.*'/)
  assertOneLineError(t, await cli(['train-char', '--out', join(work, 'empty-out'), '--resume']), /--resume: no checkpoint at/)
})

test.serial('a corrupt checkpoint ends with one line on stderr', async (t) => {
  const dir = join(work, 'corrupt')
  const r0 = await cli(['train-char', ...tiny, '--out', dir, '--steps', '5', '--sample-length', '0'])
  t.is(r0.code, 0, r0.stderr)
  const file = join(dir, 'checkpoint.safetensors')
  // Garbage over the whole file.
  writeFileSync(file, 'this is not a checkpoint at all, just some garbage bytes\n'.repeat(20))
  assertOneLineError(t, await cli(['sample', '--checkpoint', dir]), /checkpoint '.*checkpoint\.safetensors'.*(corrupt|truncated)/)
  assertOneLineError(t, await cli(['train-char', '--out', dir, '--resume']), /checkpoint '.*checkpoint\.safetensors'.*(corrupt|truncated)/)
  // A cut-off file.
  const r1 = await cli(['train-char', ...tiny, '--out', dir, '--steps', '5', '--sample-length', '0'])
  t.is(r1.code, 0, r1.stderr)
  const bytes = readFileSync(file)
  writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)))
  assertOneLineError(t, await cli(['sample', '--checkpoint', file]), /checkpoint '.*'.*(corrupt|truncated|not a valid)/)
  // A valid safetensors file that is not a train-char checkpoint.
  const other = join(work, 'other.safetensors')
  const { saveSafetensors, zeros } = await import('../index.js')
  await saveSafetensors(other, { w: zeros([2, 2]) })
  assertOneLineError(t, await cli(['sample', '--checkpoint', other]), /not a recurrent checkpoint/)
})

// Registered as skipped, so the runner reports it, where dist/ is not built (npm run build).
const built = existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))
;(built ? test.serial : test.skip)('bin/recurrent.js runs the built CLI', async (t) => {
  const r = await cli(['--help'], { bin: true })
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /Usage: recurrent <command>/)
  assertOneLineError(t, await cli(['train-char', '--text', join(work, 'missing.txt')], { bin: true }), /cannot read --text '.*missing\.txt': no such file/)
})
