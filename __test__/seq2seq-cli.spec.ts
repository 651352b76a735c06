/**
 * `recurrent train-seq2seq` and `recurrent translate`, run as child processes: a short run
 * writes a checkpoint, a loss curve and validation figures; translate answers one line per
 * source line (greedy, beam, n-best); an interrupted run resumed with `--resume` ends
 * bit-identical to an uninterrupted one; bad input ends with one clear line on stderr.
 */

import test from 'ava'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { assertOneLineError, cli as run, tensorsOf } from './helpers/cli.js'

const work = mkdtempSync(join(tmpdir(), 'recurrent-s2s-cli-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

const cli = (args: string[], stdin?: string) => run(args, stdin === undefined ? {} : { stdin })

/** Reversal of short letter strings: learnable in a few hundred steps. */
const pairsFile = join(work, 'reverse.tsv')
{
  let s = 7
  const r = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31
    return s / 2 ** 31
  }
  const lines: string[] = []
  for (let i = 0; i < 1200; i++) {
    const w = Array.from({ length: 2 + Math.floor(r() * 4) }, () => 'abcdef'[Math.floor(r() * 6)]).join('')
    lines.push(`${w}\t${[...w].reverse().join('')}`)
  }
  writeFileSync(pairsFile, lines.join('\n') + '\n')
}
const small = ['--pairs', pairsFile, '--hidden', '48', '--embedding', '16', '--batch', '32', '--lr', '0.01']

test.serial('train-seq2seq trains, validates and checkpoints; translate answers line by line', async (t) => {
  const out = join(work, 'run')
  const r = await cli(['train-seq2seq', ...small, '--out', out, '--steps', '300', '--val-every', '150', '--checkpoint-every', '100'])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /validation: loss [\d.]+, token accuracy [\d.]+%, exact match [\d.]+%/)
  t.regex(r.stdout, /checkpoint: .*\(step 300\)/)
  t.true(existsSync(join(out, 'checkpoint.safetensors')))
  t.regex(readFileSync(join(out, 'loss.svg'), 'utf8'), /^<svg/)
  const exact = Number(/validation: exact match ([\d.]+)%/.exec(r.stdout)?.[1])
  t.log(`held-out exact match after 300 steps: ${exact}%`)
  t.true(exact >= 50, `exact match ${exact}%`)

  const inputs = ['abc', 'fedcb', '', 'aab']
  const g = await cli(['translate', '--checkpoint', out], inputs.join('\n') + '\n')
  t.is(g.code, 0, g.stderr)
  const lines = g.stdout.split('\n').slice(0, -1)
  t.is(lines.length, inputs.length, 'one output line per input line')
  t.is(lines[2], '', 'an empty source gives an empty line')
  t.is(lines.filter((l, i) => l === [...inputs[i]!].reverse().join('')).length >= 2, true, `outputs: ${JSON.stringify(lines)}`)

  const beam = await cli(['translate', '--checkpoint', join(out, 'checkpoint.safetensors'), '--beam', '4', '--n-best', '3', '--scores'], 'abcd\n')
  t.is(beam.code, 0, beam.stderr)
  const fields = beam.stdout.trim().split('\t')
  t.is(fields.length, 6, `three outputs with scores: ${JSON.stringify(beam.stdout)}`)
  const scores = [fields[1], fields[3], fields[5]].map(Number)
  t.true(scores[0]! >= scores[1]! && scores[1]! >= scores[2]!, `n-best sorted: ${scores}`)
})

test.serial('an interrupted run resumed with --resume ends bit-identical to an uninterrupted one', async (t) => {
  const args = [...small, '--checkpoint-every', '40', '--val-every', '60', '--teacher-forcing', '0.8', '--dropout', '0.1', '--seed', '4']
  const whole = join(work, 'whole')
  const parts = join(work, 'parts')
  const a = await cli(['train-seq2seq', ...args, '--out', whole, '--steps', '120'])
  t.is(a.code, 0, a.stderr)
  const b1 = await cli(['train-seq2seq', ...args, '--out', parts, '--steps', '50'])
  t.is(b1.code, 0, b1.stderr)
  const b2 = await cli(['train-seq2seq', '--out', parts, '--resume', '--steps', '120'])
  t.is(b2.code, 0, b2.stderr)
  t.regex(b2.stdout, /resuming at step 50/)
  const ta = await tensorsOf(join(whole, 'checkpoint.safetensors'))
  const tb = await tensorsOf(join(parts, 'checkpoint.safetensors'))
  t.deepEqual([...tb.keys()], [...ta.keys()])
  const differing = [...ta].filter(([k, va]) => {
    const vb = tb.get(k)!
    return va.length !== vb.length || va.some((x, i) => !Object.is(x, vb[i]))
  })
  t.deepEqual(
    differing.map(([k]) => k),
    [],
    'model and optimizer tensors are bit-identical',
  )
  const clash = await cli(['train-seq2seq', '--out', parts, '--resume', '--hidden', '64'])
  assertOneLineError(t, clash, /--hidden 64 differs from the checkpoint's 48/)
})

test.serial('bad input: malformed lines by number, empty files, wrong checkpoints', async (t) => {
  const bad = join(work, 'bad.tsv')
  writeFileSync(bad, 'ab\tba\ncd dc\nef\tfe\n')
  assertOneLineError(t, await cli(['train-seq2seq', '--pairs', bad, '--out', join(work, 'x'), '--steps', '1']), /bad\.tsv:2: expected one 'source<TAB>target' pair, got a line with no tab: "cd dc"/)
  writeFileSync(bad, 'ab\tba\tzz\n')
  assertOneLineError(t, await cli(['train-seq2seq', '--pairs', bad, '--out', join(work, 'x'), '--steps', '1']), /bad\.tsv:1: .*got a line with 2 tabs/)
  writeFileSync(bad, 'ab\t \n')
  assertOneLineError(t, await cli(['train-seq2seq', '--pairs', bad, '--out', join(work, 'x'), '--steps', '1']), /bad\.tsv:1: the target \(after the tab\) is empty/)
  const empty = join(work, 'empty.tsv')
  writeFileSync(empty, '\n\n')
  assertOneLineError(t, await cli(['train-seq2seq', '--pairs', empty, '--out', join(work, 'x'), '--steps', '1']), /empty\.tsv' has no pairs/)
  assertOneLineError(t, await cli(['train-seq2seq', '--out', join(work, 'x'), '--steps', '1']), /--pairs FILE is required/)
  assertOneLineError(t, await cli(['train-seq2seq', '--pairs', join(work, 'missing.tsv')]), /cannot read --pairs '.*missing\.tsv'/)
  // A train-char checkpoint is not a seq2seq one.
  const charOut = join(work, 'char')
  const c = await cli(['train-char', '--text', pairsFile, '--hidden', '8', '--embedding', '4', '--batch', '2', '--k1', '8', '--steps', '2', '--sample-length', '0', '--val-fraction', '0', '--out', charOut])
  t.is(c.code, 0, c.stderr)
  assertOneLineError(t, await cli(['translate', '--checkpoint', charOut], 'abc\n'), /is not a train-seq2seq checkpoint: its config has no seq2seq model \(it is a 'train-char' checkpoint\)/)
  assertOneLineError(t, await cli(['translate', '--checkpoint', join(work, 'nowhere')], 'abc\n'), /cannot read --checkpoint/)
  assertOneLineError(t, await cli(['translate', '--checkpoint', join(work, 'run'), '--beam', '2', '--n-best', '3'], 'abc\n'), /--n-best 3 needs a beam at least that wide/)
})
