/**
 * Convergence of the `recurrent` CLI: the default char-LSTM learns the bundled corpus well below
 * its unigram entropy within the demo's step budget. The longest spec of the suite (about 40 s
 * on the 2-core development machine), alone in this file so that ava runs it in its own worker
 * beside the other files instead of after them.
 */

import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { cli } from './helpers/cli.js'

const work = mkdtempSync(join(tmpdir(), 'recurrent-cli-bpc-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

// The char-LSTM at the CLI's defaults on the bundled corpus, for about as many steps as the
// 1-minute demo plans on the 2-core development machine (1,900-2,000 there). Deterministic: a
// step budget, not a time budget, so a slow or busy machine only takes longer. Measured there:
// 1.976 bits/char at 1,800 steps, against a unigram entropy of 4.371 bits/char.
const BPC_STEPS = 1800
const BPC_BOUND = 2.2

test.serial(`the default char-LSTM reaches < ${BPC_BOUND} validation bits/char on the bundled corpus in ${BPC_STEPS} steps`, async (t) => {
  t.timeout(15 * 60_000)
  const r = await cli(['train-char', '--out', work, '--steps', String(BPC_STEPS), '--sample-length', '200'])
  t.is(r.code, 0, r.stderr)
  const bpc = Number(r.stdout.match(/validation: (\d+\.\d+) bits\/char/)?.[1])
  const unigram = Number(r.stdout.match(/unigram entropy of the training text: (\d+\.\d+)/)?.[1])
  t.log(`validation ${bpc} bits/char vs unigram entropy ${unigram} bits/char; ${r.stdout.match(/throughput: [^\n]*/)?.[0]}`)
  t.true(unigram > 4 && unigram < 4.6, `unigram entropy ${unigram}`)
  t.true(bpc < BPC_BOUND, `validation bpc ${bpc}`)
  t.true(bpc < unigram - 1.5)
})
