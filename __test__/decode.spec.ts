/**
 * Decoding (src/seq2seq/decode.ts, generate.ts): greedy, sampling and beam search over
 * hand-built table models (the next token's log-probabilities are a row of a fixed matrix,
 * chosen by the previous token) and a small RecurrentLM; scores against hand-computed sums,
 * beam width 1 against greedy, batched beams against one row at a time, sampling frequencies
 * against the softmax, top-k/top-p supports, memory returning to its baseline, and errors by
 * content.
 *
 * Serial: `memory().tensors` counts the whole process.
 */

import test, { type ExecutionContext } from 'ava'

import {
  CharVocab,
  type DecoderStep,
  type Hypothesis,
  LanguageModelStep,
  RecurrentLM,
  ShapeError,
  type Tensor,
  ValueError,
  beamSearch,
  dispose,
  generate,
  greedyDecode,
  indexSelect,
  memory,
  randn,
  sampleDecode,
  slice,
  synchronize,
  tensor,
  tidyAsync,
} from '../index.js'

/**
 * Runs a test inside a scope, so that the tensors it makes (and does not keep) are freed when
 * it ends instead of by the GC in the middle of a later test's count of live tensors.
 */
function scoped(fn: (t: ExecutionContext) => Promise<void>): (t: ExecutionContext) => Promise<void> {
  return async (t) => {
    try {
      await tidyAsync(() => fn(t))
    } finally {
      // Parameters are kept: no scope frees them.
      for (const m of models.splice(0)) dispose([...m.parameters(), ...m.buffers()])
    }
  }
}

/** The models made by the running test. */
const models: RecurrentLM[] = []
function made<M extends RecurrentLM>(m: M): M {
  models.push(m)
  return m
}

async function live(): Promise<number> {
  await synchronize()
  return memory().tensors
}

/** log of each probability; rows are the previous token, columns the next. */
function logTable(probs: number[][]): number[][] {
  return probs.map((row) => row.map((p) => Math.log(p)))
}

/**
 * A decoder whose next-token log-probabilities depend only on the previous token: row `prev`
 * of `table` (float32 [V, V]). Its state is null; it counts its steps.
 */
class TableDecoder implements DecoderStep<null> {
  readonly table: Tensor
  readonly logs: number[][]
  steps = 0
  constructor(logs: number[][]) {
    this.logs = logs
    this.table = tensor(logs)
  }
  step(tokens: Tensor, state: null): { logProbs: Tensor; state: null } {
    this.steps++
    return { logProbs: indexSelect(this.table, 0, tokens), state }
  }
  reorder(state: null): null {
    return state
  }
  /** Σ log p along `tokens` from `bos`, plus the EOS that ends them when given. */
  score(bos: number, tokens: readonly number[], eos?: number): number {
    let prev = bos
    let s = 0
    for (const t of eos === undefined ? tokens : [...tokens, eos]) {
      s += this.logs[prev]![t]!
      prev = t
    }
    return s
  }
  dispose(): void {
    this.table.dispose()
  }
}

const EOS = 0
const A = 1
const B = 2
const BOS = 3

/**
 * Greedy is provably worse here: after BOS, A (0.5) beats B (0.4), but A ends with only 0.4
 * while B ends with 0.9, so BOS B EOS (0.36) beats BOS A EOS (0.2) and everything longer.
 */
const TRAP = [
  [0.25, 0.25, 0.25, 0.25], // after EOS (never used: finished rows are masked)
  [0.4, 0.3, 0.3, 1e-9], // after A
  [0.9, 0.05, 0.05, 1e-9], // after B
  [0.1, 0.5, 0.4, 1e-9], // after BOS
]

/** A small random language model and per-row random initial states ([h, c], each [1, B, H]). */
function lstmModel(seed: number): RecurrentLM {
  return made(new RecurrentLM({ vocabSize: 7, hiddenSize: 12, embeddingDim: 5, cell: 'lstm', seed }))
}
function lstmState(B: number, seed: number): Tensor[] {
  return [randn([1, B, 12], { seed }), randn([1, B, 12], { seed: seed + 1 })]
}
function rowOf(state: Tensor[], b: number): Tensor[] {
  return state.map((s) => slice(s, 1, b, 1))
}

function assertClose(t: { true(c: boolean, m?: string): void }, a: number, b: number, tol: number, what: string): void {
  t.true(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`)
}

test.serial('greedy follows the locally best token; its score is the sum of the chosen log-probabilities', scoped(async (t) => {
  const dec = new TableDecoder(logTable(TRAP))
  const [[g]] = (await greedyDecode(dec, null, { batchSize: 1, bos: BOS, eos: EOS, maxLength: 10 })) as [[Hypothesis]]
  t.deepEqual(g.tokens, [A])
  assertClose(t, g.score, Math.log(0.5) + Math.log(0.4), 1e-6, 'greedy score')
  t.is(g.logProb, g.score)
  dec.dispose()
}))

test.serial('beam search finds the sequence greedy misses, with the hand-computed log-probability', scoped(async (t) => {
  const dec = new TableDecoder(logTable(TRAP))
  const [[best]] = (await beamSearch(dec, null, { batchSize: 1, bos: BOS, eos: EOS, maxLength: 10, beamWidth: 2 })) as [[Hypothesis]]
  t.deepEqual(best.tokens, [B])
  assertClose(t, best.score, Math.log(0.4) + Math.log(0.9), 1e-6, 'beam score')
  t.true(best.score > Math.log(0.5) + Math.log(0.4))
  // Every beam was finished after 3 steps: the early stop (checked every 2) ended the search at
  // step 4, well before maxLength.
  const d2 = new TableDecoder(logTable(TRAP))
  await beamSearch(d2, null, { batchSize: 1, bos: BOS, eos: EOS, maxLength: 50, beamWidth: 2, checkEvery: 2 })
  t.true(d2.steps <= 4, `${d2.steps} steps`)
  dec.dispose()
  d2.dispose()
}))

test.serial('beam search at width 1 equals greedy decoding (table model and LSTM, batched)', scoped(async (t) => {
  // A random table: every row of it reachable.
  const V = 6
  const logits = (await randn([V, V], { seed: 11 }).scale(2).logSoftmax(-1).array()) as number[][]
  const dec = new TableDecoder(logits)
  for (const bos of [1, 2, 5]) {
    const g = await greedyDecode(dec, null, { batchSize: 2, bos, eos: EOS, maxLength: 15 })
    const b = await beamSearch(dec, null, { batchSize: 2, bos, eos: EOS, maxLength: 15, beamWidth: 1 })
    t.deepEqual(b, g)
  }
  dec.dispose()

  const model = lstmModel(3)
  const step = new LanguageModelStep(model)
  const state = lstmState(4, 21)
  const g = await greedyDecode(step, state, { batchSize: 4, bos: 1, eos: EOS, maxLength: 20 })
  const b = await beamSearch(step, state, { batchSize: 4, bos: 1, eos: EOS, maxLength: 20, beamWidth: 1 })
  t.deepEqual(b, g)
  // Without EOS every row runs to maxLength.
  const g2 = await greedyDecode(step, state, { batchSize: 4, bos: 1, maxLength: 9 })
  const b2 = await beamSearch(step, state, { batchSize: 4, bos: 1, maxLength: 9, beamWidth: 1 })
  t.deepEqual(b2, g2)
  for (const [h] of g2) t.is(h!.tokens.length, 9)
  dispose(state)
}))

test.serial('batched beam search equals beam search run one row at a time', scoped(async (t) => {
  const model = lstmModel(5)
  const step = new LanguageModelStep(model)
  const Bn = 3
  const state = lstmState(Bn, 40)
  const opts = { bos: 1, eos: EOS, maxLength: 12, beamWidth: 4, nBest: 4, lengthPenalty: 0.6 }
  const all = await beamSearch(step, state, { ...opts, batchSize: Bn })
  t.is(all.length, Bn)
  let ended = 0
  for (let b = 0; b < Bn; b++) {
    const one = rowOf(state, b)
    const [alone] = (await beamSearch(step, one, { ...opts, batchSize: 1 })) as [Hypothesis[]]
    t.is(all[b]!.length, 4)
    t.deepEqual(
      all[b]!.map((h) => h.tokens),
      alone.map((h) => h.tokens),
    )
    for (let i = 0; i < alone.length; i++) assertClose(t, all[b]![i]!.score, alone[i]!.score, 1e-5, `row ${b} hypothesis ${i}`)
    ended += all[b]!.filter((h) => h.tokens.length < 12).length
    dispose(one)
  }
  // The comparison covers both finished and cut-off hypotheses.
  t.true(ended > 0)
  dispose(state)
}))

test.serial('n-best: sorted, scores are the log-probability sums, and the length penalty re-ranks as computed by hand', scoped(async (t) => {
  // After BOS: EOS or A (0.5 each); after A: EOS 0.95, A 0.05. B and BOS are impossible.
  const dec = new TableDecoder(
    logTable([
      [0.25, 0.25, 0.25, 0.25],
      [0.95, 0.05, 0, 0],
      [0.25, 0.25, 0.25, 0.25],
      [0.5, 0.5, 0, 0],
    ]),
  )
  const base = { batchSize: 1, bos: BOS, eos: EOS, maxLength: 6, beamWidth: 3, nBest: 3 }
  const [plain] = (await beamSearch(dec, null, base)) as [Hypothesis[]]
  // By log-probability: [] = log .5, [A] = log .5 + log .95, [A, A] = log .5 + log .05 + log .95.
  t.deepEqual(
    plain.map((h) => h.tokens),
    [[], [A], [A, A]],
  )
  for (const h of plain) {
    assertClose(t, h.logProb, dec.score(BOS, h.tokens, EOS), 1e-6, `logProb of [${h.tokens}]`)
    t.is(h.score, h.logProb)
  }
  // GNMT's penalty with α = 1: score = logProb / ((5 + len) / 6), len counting the EOS.
  const [pen] = (await beamSearch(dec, null, { ...base, lengthPenalty: 1 })) as [Hypothesis[]]
  const expected = [[A], [], [A, A]].map((tokens) => ({ tokens, score: dec.score(BOS, tokens, EOS) / ((5 + tokens.length + 1) / 6) }))
  t.deepEqual(
    pen.map((h) => h.tokens),
    expected.map((h) => h.tokens),
  )
  for (let i = 0; i < 3; i++) {
    assertClose(t, pen[i]!.score, expected[i]!.score, 1e-6, `penalised score ${i}`)
    assertClose(t, pen[i]!.logProb, dec.score(BOS, pen[i]!.tokens, EOS), 1e-6, `logProb ${i}`)
  }
  t.true(pen[0]!.score > pen[1]!.score && pen[1]!.score > pen[2]!.score)
  // nBest trims the list; impossible hypotheses (log-probability −∞) are left out.
  const [one] = (await beamSearch(dec, null, { ...base, nBest: 1 })) as [Hypothesis[]]
  t.deepEqual(one, [plain[0]!])
  const [wide] = (await beamSearch(dec, null, { ...base, beamWidth: 6, nBest: 6, maxLength: 2 })) as [Hypothesis[]]
  t.true(wide.every((h) => Number.isFinite(h.score)))
  t.deepEqual(
    wide.map((h) => h.tokens),
    [[], [A], [A, A]],
  )
  dec.dispose()
}))

test.serial('beam search on an LSTM: n-best sorted, distinct, each score its sequence log-probability', scoped(async (t) => {
  const model = lstmModel(9)
  const step = new LanguageModelStep(model)
  const state = lstmState(2, 70)
  const rows = await beamSearch(step, state, { batchSize: 2, bos: 1, eos: EOS, maxLength: 8, beamWidth: 5, nBest: 5 })
  const greedy = await greedyDecode(step, state, { batchSize: 2, bos: 1, eos: EOS, maxLength: 8 })
  for (let b = 0; b < 2; b++) {
    const hyps = rows[b]!
    t.is(hyps.length, 5)
    t.is(new Set(hyps.map((h) => h.tokens.join(','))).size, 5)
    for (let i = 1; i < 5; i++) t.true(hyps[i - 1]!.score >= hyps[i]!.score)
    // The best beam is at least as likely as the greedy sequence.
    t.true(hyps[0]!.score >= greedy[b]![0]!.score - 1e-6)
    // Each score re-computed by teacher forcing the sequence through the model.
    for (const h of hyps) {
      const ids = [1, ...h.tokens, ...(h.tokens.length < 8 ? [EOS] : [])]
      let s = 0
      let st: Tensor[] = rowOf(state, b)
      for (let i = 0; i + 1 < ids.length; i++) {
        const out = step.step(tensor([ids[i]!], [1], { dtype: 'int32' }), st)
        s += (await out.logProbs.data())[ids[i + 1]!]!
        dispose([st, out.logProbs])
        st = out.state
      }
      dispose(st)
      assertClose(t, h.score, s, 1e-4, `score of [${h.tokens}]`)
    }
  }
  dispose(state)
}))

test.serial('sampling: temperature 0 and top-k 1 equal greedy; one seed gives one output', scoped(async (t) => {
  const model = lstmModel(13)
  const step = new LanguageModelStep(model)
  const state = lstmState(6, 90)
  const o = { batchSize: 6, bos: 2, eos: EOS, maxLength: 16 }
  const greedy = await greedyDecode(step, state, o)
  t.deepEqual(await sampleDecode(step, state, { ...o, temperature: 0, seed: 4 }), greedy)
  t.deepEqual(await sampleDecode(step, state, { ...o, temperature: 0.7, topK: 1, seed: 4 }), greedy)
  const s1 = await sampleDecode(step, state, { ...o, temperature: 1.2, seed: 99 })
  const s2 = await sampleDecode(step, state, { ...o, temperature: 1.2, seed: 99 })
  const s3 = await sampleDecode(step, state, { ...o, temperature: 1.2, seed: 100 })
  t.deepEqual(s1, s2)
  t.notDeepEqual(
    s1.map((r) => r[0]!.tokens),
    s3.map((r) => r[0]!.tokens),
  )
  t.notDeepEqual(
    s1.map((r) => r[0]!.tokens),
    greedy.map((r) => r[0]!.tokens),
  )
  dispose(state)
}))

/** Frequencies of the first sampled token over `n` rows. */
async function firstTokenFreqs(dec: TableDecoder, bos: number, n: number, o: { temperature?: number; topK?: number; topP?: number; seed: number }): Promise<number[]> {
  const rows = await sampleDecode(dec, null, { batchSize: n, bos, maxLength: 1, ...o })
  const counts = new Array<number>(dec.logs.length).fill(0)
  for (const [h] of rows) counts[h!.tokens[0]!]!++
  return counts.map((c) => c / n)
}

/**
 * Each frequency within 4.5 standard deviations of its probability (n draws): a correct sampler
 * misses this bound with probability below 1e-5 per token, and the seeds are fixed.
 */
function assertFreqs(t: { true(c: boolean, m?: string): void }, freqs: number[], probs: number[], n: number, what: string): void {
  for (let v = 0; v < probs.length; v++) {
    const p = probs[v]!
    const bound = 4.5 * Math.sqrt((p * (1 - p)) / n) + 1e-9
    t.true(Math.abs(freqs[v]! - p) <= bound, `${what}: token ${v} frequency ${freqs[v]} vs probability ${p.toFixed(4)} (bound ${bound.toFixed(4)})`)
  }
}

/** softmax(log p / T), renormalised over the ids in `support` (all by default). */
function tempered(p: number[], T: number, support?: Set<number>): number[] {
  const w = p.map((x, v) => (support && !support.has(v) ? 0 : x ** (1 / T)))
  const s = w.reduce((a, b) => a + b, 0)
  return w.map((x) => x / s)
}

const DIST = [0.05, 0.1, 0.15, 0.3, 0.4]

test.serial('sampling: first-token frequencies over 4000 rows match softmax(logits / T), top-k and top-p renormalised', scoped(async (t) => {
  const n = 4000
  const rows = DIST.map(() => DIST)
  const dec = new TableDecoder(logTable(rows))
  for (const T of [1, 0.5, 2]) {
    const f = await firstTokenFreqs(dec, 0, n, { temperature: T, seed: 17 })
    assertFreqs(t, f, tempered(DIST, T), n, `T=${T}`)
  }
  // top-k 2: only tokens 4 and 3, in proportion 0.4 : 0.3.
  const fk = await firstTokenFreqs(dec, 0, n, { topK: 2, seed: 18 })
  assertFreqs(t, fk, tempered(DIST, 1, new Set([3, 4])), n, 'topK=2')
  // top-p 0.75: the mass before 0.15 is 0.7 < 0.75, before 0.1 it is 0.85: the nucleus is {4, 3, 2}.
  const fp = await firstTokenFreqs(dec, 0, n, { topP: 0.75, seed: 19 })
  assertFreqs(t, fp, tempered(DIST, 1, new Set([2, 3, 4])), n, 'topP=0.75')
  // top-p after the temperature: at T = 0.5 the probabilities are ∝ p², 0.4² and 0.3² alone
  // hold 0.74 of the mass, so the nucleus of 0.7 is {4, 3}.
  const fpt = await firstTokenFreqs(dec, 0, n, { temperature: 0.5, topP: 0.7, seed: 20 })
  assertFreqs(t, fpt, tempered(DIST, 0.5, new Set([3, 4])), n, 'T=0.5 topP=0.7')
  // top-k then top-p: among the top 3 (renormalised 0.47, 0.35, 0.18) the nucleus of 0.5 is {4, 3}.
  const fkp = await firstTokenFreqs(dec, 0, n, { topK: 3, topP: 0.5, seed: 21 })
  assertFreqs(t, fkp, tempered(DIST, 1, new Set([3, 4])), n, 'topK=3 topP=0.5')
  dec.dispose()
}))

test.serial('sampling over many steps never leaves the top-k or the nucleus; scores are the model log-probabilities', scoped(async (t) => {
  // Each previous token has its own distribution (a random table), so the support moves.
  const V = 8
  const logs = (await randn([V, V], { seed: 5 }).scale(1.5).logSoftmax(-1).array()) as number[][]
  const dec = new TableDecoder(logs)
  const probs = logs.map((row) => row.map(Math.exp))
  const topOf = (prev: number, k: number) => new Set(probs[prev]!.map((p, v) => [p, v] as const).sort((a, b) => b[0] - a[0]).slice(0, k).map(([, v]) => v))
  const nucleusOf = (prev: number, q: number) => {
    const sorted = probs[prev]!.map((p, v) => [p, v] as const).sort((a, b) => b[0] - a[0])
    const keep = new Set<number>()
    let mass = 0
    for (const [p, v] of sorted) {
      if (mass >= q) break
      keep.add(v)
      mass += p
    }
    return keep
  }
  const n = 500
  const steps = 6
  const k = 3
  const rk = await sampleDecode(dec, null, { batchSize: n, bos: 1, maxLength: steps, topK: k, temperature: 1.5, seed: 3 })
  const q = 0.6
  const rp = await sampleDecode(dec, null, { batchSize: n, bos: 1, maxLength: steps, topP: q, seed: 4 })
  let outsideK = 0
  let outsideP = 0
  let nucleusSizes = 0
  for (let i = 0; i < n; i++) {
    let prev = 1
    for (const tok of rk[i]![0]!.tokens) {
      if (!topOf(prev, k).has(tok)) outsideK++
      prev = tok
    }
    prev = 1
    for (const tok of rp[i]![0]!.tokens) {
      const nuc = nucleusOf(prev, q)
      if (!nuc.has(tok)) outsideP++
      nucleusSizes += nuc.size
      prev = tok
    }
    t.is(rk[i]![0]!.tokens.length, steps)
    if (i < 20) assertClose(t, rk[i]![0]!.score, dec.score(1, rk[i]![0]!.tokens), 1e-5, `score of row ${i}`)
  }
  t.is(outsideK, 0)
  t.is(outsideP, 0)
  // The nucleus was a real restriction (not the whole vocabulary).
  t.true(nucleusSizes / (n * steps) < V - 2)
  dec.dispose()
}))

test.serial('streaming: onTokens gets each row its new tokens in order, up to its EOS', scoped(async (t) => {
  const model = lstmModel(13)
  const step = new LanguageModelStep(model)
  const state = lstmState(3, 5)
  const got: number[][] = [[], [], []]
  let calls = 0
  const o = { batchSize: 3, bos: 2, eos: EOS, maxLength: 20, temperature: 1, seed: 8 }
  const rows = await sampleDecode(step, state, {
    ...o,
    streamEvery: 3,
    onTokens: (chunk) => {
      calls++
      chunk.forEach((c, i) => got[i]!.push(...c))
    },
  })
  t.deepEqual(
    got,
    rows.map((r) => r[0]!.tokens),
  )
  t.true(calls >= 2)
  t.deepEqual(await sampleDecode(step, state, o), rows)
  dispose(state)
}))

test.serial('decoding frees all it makes: live tensors return to the baseline, and stay flat while it runs', scoped(async (t) => {
  const model = lstmModel(1)
  const step = new LanguageModelStep(model, { exclude: [3] })
  const dec = new TableDecoder(logTable(TRAP))
  const state = lstmState(2, 7)
  const before = await live()
  await greedyDecode(step, state, { batchSize: 2, bos: 1, eos: EOS, maxLength: 30 })
  await sampleDecode(step, state, { batchSize: 2, bos: 1, eos: EOS, maxLength: 30, topK: 4, topP: 0.9, temperature: 0.8, seed: 1 })
  await beamSearch(step, state, { batchSize: 2, bos: 1, eos: EOS, maxLength: 30, beamWidth: 3, nBest: 2, lengthPenalty: 1 })
  await beamSearch(dec, null, { batchSize: 3, bos: BOS, eos: EOS, maxLength: 30, beamWidth: 2 })
  step.dispose()
  t.is(await live(), before)
  // While streaming, the live count does not grow with the steps.
  const counts: number[] = []
  await sampleDecode(step, state, { batchSize: 2, bos: 1, maxLength: 40, seed: 2, streamEvery: 1, onTokens: () => counts.push(memory().tensors) })
  t.is(counts.length, 40)
  t.true(Math.max(...counts.slice(5)) - Math.min(...counts.slice(5)) <= 2, `live tensors while decoding: ${counts.join(' ')}`)
  step.dispose()
  // A decoder that fails midway: the error surfaces, nothing is left behind.
  let n = 0
  const failing: DecoderStep<null> = {
    step: (tokens, s) => {
      if (++n === 4) throw new Error('decoder broke')
      return dec.step(tokens, s)
    },
    reorder: (s) => s,
  }
  await t.throwsAsync(beamSearch(failing, null, { batchSize: 2, bos: BOS, eos: EOS, maxLength: 10, beamWidth: 2, checkEvery: 0 }), { message: 'decoder broke' })
  n = 0
  await t.throwsAsync(greedyDecode(failing, null, { batchSize: 2, bos: BOS, maxLength: 10 }), { message: 'decoder broke' })
  t.is(await live(), before)
  // The caller's initial state is never freed.
  t.false(state.some((s) => s.isDisposed))
  dec.dispose()
  dispose(state)
}))

test.serial('bad options and decoders are errors that say what is wrong', scoped(async (t) => {
  const dec = new TableDecoder(logTable(TRAP))
  const o = { batchSize: 1, bos: BOS, eos: EOS, maxLength: 5 }
  const before = await live()
  const bad = async (p: Promise<unknown>, re: RegExp, type: new (op: string, detail: string) => Error = ValueError) => {
    const e = await t.throwsAsync(p, { instanceOf: type })
    t.regex(e!.message, re)
  }
  await bad(beamSearch(dec, null, { ...o, beamWidth: 0 }), /^beamSearch: beamWidth must be an integer ≥ 1, got 0$/)
  await bad(beamSearch(dec, null, { ...o, beamWidth: 2.5 }), /beamWidth must be an integer ≥ 1, got 2\.5/)
  await bad(beamSearch(dec, null, { ...o, beamWidth: '3' as unknown as number }), /beamWidth must be an integer ≥ 1, got the string "3"/)
  await bad(beamSearch(dec, null, { ...o, beamWidth: 2, nBest: 3 }), /nBest must be an integer in \[1, 2\], got 3/)
  await bad(beamSearch(dec, null, { ...o, beamWidth: 2, lengthPenalty: -1 }), /lengthPenalty must be a finite number ≥ 0, got -1/)
  await bad(beamSearch(dec, null, { ...o, eos: 7, beamWidth: 2 }), /beamSearch: eos must be a token id below the vocabulary size 4, got 7/)
  await bad(beamSearch({ step: dec.step.bind(dec) } as unknown as DecoderStep<null>, null, { ...o, beamWidth: 2 }), /expected a decoder with step\(tokens, state\) and reorder\(state, index\) methods/)
  await bad(greedyDecode(dec, null, { ...o, maxLength: 0 }), /^greedyDecode: maxLength must be an integer ≥ 1, got 0$/)
  await bad(greedyDecode(dec, null, { ...o, batchSize: -2 }), /batchSize must be an integer ≥ 1, got -2/)
  await bad(greedyDecode(dec, null, { ...o, bos: 1.5 }), /bos must be an integer in \[0, 2147483647\], got 1\.5/)
  await bad(greedyDecode(dec, null, undefined as unknown as { batchSize: 1; bos: 1; maxLength: 1 }), /batchSize must be an integer ≥ 1, got undefined/)
  await bad(sampleDecode(dec, null, { ...o, temperature: -1 }), /^sampleDecode: temperature must be a finite number ≥ 0, got -1$/)
  await bad(sampleDecode(dec, null, { ...o, topK: 0 }), /topK must be an integer ≥ 1, got 0/)
  await bad(sampleDecode(dec, null, { ...o, topP: 0 }), /topP must be a finite number in \(0, 1\], got 0/)
  await bad(sampleDecode(dec, null, { ...o, topP: 1.5 }), /topP must be a finite number in \(0, 1\], got 1\.5/)
  await bad(sampleDecode(dec, null, { ...o, seed: -1 }), /sampleDecode: seed must be an integer in \[0, 2\^53\), got -1/)
  await bad(sampleDecode(dec, null, { ...o, onTokens: 5 as unknown as () => void }), /onTokens must be a function, got 5/)
  // A step whose logProbs do not have one row per decoder row.
  const wrong: DecoderStep<null> = { step: (_tokens, s) => ({ logProbs: dec.table, state: s }), reorder: (s) => s }
  await bad(greedyDecode(wrong, null, { ...o, batchSize: 2 }), /^greedyDecode: the decoder's step returned logProbs of shape \[4, 4\], expected \[2, V\]$/, ShapeError)
  await bad(beamSearch(wrong, null, { ...o, beamWidth: 3 }), /the decoder's step returned logProbs of shape \[4, 4\], expected \[3, V\]/, ShapeError)
  t.is(await live(), before)
  dec.dispose()
}))

test.serial('generate: a character model continues a prime reproducibly, streams the same text, never emits the unknown character', scoped(async (t) => {
  const vocab = CharVocab.fromText('abc de\n', { unk: '?' })
  t.true(vocab.unkId >= 0)
  const model = made(new RecurrentLM({ vocabSize: vocab.size, hiddenSize: 8, embeddingDim: 4, seed: 2 }))
  // A strong bias toward the unknown character: sampling must still never pick it.
  const bias = model.head.bias!
  bias.assign(tensor(Array.from({ length: vocab.size }, (_, v) => (v === vocab.unkId ? 6 : 0))))
  const before = await live()
  const o = { prime: 'ab', length: 60, temperature: 1.5, seed: 7 }
  const a = await generate(model, vocab, o)
  t.is([...a].length, 60)
  t.false(a.includes('?'))
  let streamed = ''
  const b = await generate(model, vocab, { ...o, onText: (s) => (streamed += s) })
  t.is(b, a)
  t.is(streamed, a)
  t.not(await generate(model, vocab, { ...o, seed: 8 }), a)
  // Temperature 0 is greedy decoding of the LanguageModelStep from the prime's state.
  const g = await generate(model, vocab, { ...o, temperature: 0 })
  const x = tensor(vocab.encode('a'), [1, 1], { dtype: 'int32' })
  const prefix = model.forward(x, null)
  const step = new LanguageModelStep(model, { exclude: [vocab.unkId] })
  const [[h]] = (await greedyDecode(step, prefix.state, { batchSize: 1, bos: vocab.encode('b')[0]!, maxLength: 60 })) as [[Hypothesis]]
  t.is(h.tokens.map((id) => vocab.chars[id]).join(''), g)
  step.dispose()
  dispose([prefix, x])
  t.is(await generate(model, vocab, { ...o, length: 0 }), '')
  t.is(await live(), before)
  t.true(model.training)
}))
