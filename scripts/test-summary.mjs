#!/usr/bin/env node
// Prints the passed / failed / skipped counts of a test log: cargo's `test result:` lines (its
// ignored tests are the skipped ones) and ava's summary lines, summed. `.ci/run` prints it last.
// Usage: node scripts/test-summary.mjs LOG...
import { readFileSync } from 'node:fs'

const sum = { cargo: { passed: 0, failed: 0, skipped: 0, runs: 0 }, ava: { passed: 0, failed: 0, skipped: 0, runs: 0 } }
for (const file of process.argv.slice(2)) {
  let text
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    console.log(`test summary: cannot read ${file}: ${e.message}`)
    continue
  }
  // Colour codes, should a runner print them despite NO_COLOR.
  text = text.replace(/\x1b\[[0-9;]*m/g, '')
  for (const m of text.matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/gm)) {
    sum.cargo.passed += Number(m[1])
    sum.cargo.failed += Number(m[2])
    sum.cargo.skipped += Number(m[3])
    sum.cargo.runs++
  }
  // ava: "  12 tests passed", "  1 test failed", "  3 tests skipped" (one block per ava run).
  for (const m of text.matchAll(/^\s*(\d+) (?:tests?|known failures?) (passed|failed|skipped)\s*$/gm)) {
    sum.ava[m[2]] += Number(m[1])
    if (m[2] === 'passed') sum.ava.runs++
  }
  // ava prints "✘ ... " lines and no "N tests failed" line when a worker crashes or times out.
  sum.ava.failed += [...text.matchAll(/^\s*✘ (?:Timed out|.*exited with a non-zero exit code|.*Uncaught exception)/gm)].length
}
const line = (name, s) => `${name.padEnd(7)} ${String(s.passed).padStart(5)} passed  ${String(s.failed).padStart(4)} failed  ${String(s.skipped).padStart(4)} skipped   (${s.runs} ${name === 'cargo' ? 'test binaries' : 'ava runs'})`
const total = { passed: sum.cargo.passed + sum.ava.passed, failed: sum.cargo.failed + sum.ava.failed, skipped: sum.cargo.skipped + sum.ava.skipped }
console.log('================ test counts ================')
console.log(line('cargo', sum.cargo))
console.log(line('ava', sum.ava))
console.log(`total   ${String(total.passed).padStart(5)} passed  ${String(total.failed).padStart(4)} failed  ${String(total.skipped).padStart(4)} skipped`)
