/**
 * `fit` and `evaluate` with batches of several named tensors and padded targets: a small
 * encoder-decoder fed `{ source, sourceLengths, targetIn }` trains, and with `ignoreIndex` the
 * reported losses and accuracies are exact means over the non-padding targets (checked against
 * a hand computation on batches with different amounts of padding).
 */

import test from 'ava'

import {
  Adam,
  DataLoader,
  Embedding,
  LSTM,
  Linear,
  Module,
  TokenVocab,
  ValueError,
  collatePairs,
  crossEntropy,
  evaluate,
  fit,
  manualSeed,
  tensor,
  type Batch,
  type FitEvent,
  type Tensor,
} from '../index.js'

const PAD = TokenVocab.PAD

/** A small deterministic PRNG (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface PairInput {
  source: Tensor
  sourceLengths: Tensor
  targetIn: Tensor
}

/** Encoder LSTM over the source (with its lengths), its final state starts a decoder LSTM over BOS + target. */
class TinySeq2Seq extends Module {
  srcEmb: Embedding
  tgtEmb: Embedding
  enc: LSTM
  dec: LSTM
  head: Linear
  constructor(vocab: number, hidden: number) {
    super()
    this.srcEmb = this.registerModule('srcEmb', new Embedding(vocab, 8))
    this.tgtEmb = this.registerModule('tgtEmb', new Embedding(vocab, 8))
    this.enc = this.registerModule('enc', new LSTM(8, hidden))
    this.dec = this.registerModule('dec', new LSTM(8, hidden))
    this.head = this.registerModule('head', new Linear(hidden, vocab))
  }
  forward(x: PairInput): Tensor {
    const e = this.enc.forward(this.srcEmb.forward(x.source), { lengths: x.sourceLengths })
    const d = this.dec.forward(this.tgtEmb.forward(x.targetIn), { h0: e.hN, c0: e.cN! })
    return this.head.forward(d.output)
  }
}

/** Sequences of 1-4 digits (ids 4-9) and their reversal. */
function reversalPairs(n: number, seed: number): [number[], number[]][] {
  const rand = mulberry32(seed)
  return Array.from({ length: n }, () => {
    const s = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => 4 + Math.floor(rand() * 6))
    return [s, [...s].reverse()]
  })
}

function toBatch(items: [number[], number[]][]): Batch<PairInput> {
  const b = collatePairs(items)
  return { x: { source: b.source, sourceLengths: b.sourceLengths, targetIn: b.targetIn }, y: b.targetOut }
}

test('fit: a model fed a record { source, sourceLengths, targetIn } learns to reverse sequences', async (t) => {
  manualSeed(5)
  const model = new TinySeq2Seq(10, 32)
  const data = new DataLoader(reversalPairs(384, 1), { batchSize: 32, shuffle: true, seed: 2, collate: toBatch })
  const validation = [...new DataLoader(reversalPairs(128, 3), { batchSize: 64, collate: toBatch }).epoch(0)]
  const before = await evaluate(model, validation, (o, y) => crossEntropy(o, y, { ignoreIndex: PAD }), { ignoreIndex: PAD })
  const result = await fit(model, { data, validation, optimizer: new Adam(model.parameters(), { lr: 0.02 }), epochs: 8, ignoreIndex: PAD })
  const first = result.history[0]!
  const last = result.history.at(-1)!
  t.log(`val loss ${before.loss.toFixed(3)} → ${last.validation!.loss.toFixed(3)}, accuracy ${before.accuracy!.toFixed(3)} → ${last.validation!.accuracy!.toFixed(3)}`)
  t.true(last.train.loss < 0.5 * first.train.loss, `train loss ${first.train.loss} → ${last.train.loss}`)
  t.true(last.validation!.loss < 0.5 * before.loss)
  // Chance is about 1/7 (6 digits and EOS); a model that did not use the source stays near it.
  t.true(last.validation!.accuracy! > 0.6, `validation accuracy ${last.validation!.accuracy}`)
  // Only the non-padding targets are counted: every target + its EOS.
  const expected = reversalPairs(128, 3).reduce((n, [, y]) => n + y.length + 1, 0)
  t.is(last.validation!.count, expected)
})

/** Logits = a lookup of the input token: row i of `weight` (argmax i). */
class Lookup extends Module {
  emb: Embedding
  constructor(weight: number[][]) {
    super()
    this.emb = this.registerModule('emb', new Embedding(weight.length, weight[0]!.length))
    this.loadStateDict({ 'emb.weight': tensor(Float32Array.from(weight.flat()), [weight.length, weight[0]!.length]) })
  }
  forward(x: { tokens: Tensor }): Tensor {
    return this.emb.forward(x.tokens)
  }
}

const W = [
  [2.0, 0.1, -0.3, 0.4, 0.0],
  [0.2, 1.5, 0.3, -0.1, 0.6],
  [-0.4, 0.5, 1.8, 0.2, 0.1],
  [0.3, -0.2, 0.0, 1.1, 0.7],
  [0.1, 0.4, -0.5, 0.6, 1.3],
]

/** A `[T, B]` batch from columns of (token, target) pairs; target 0 is padding. */
function lookupBatch(tokens: number[][], targets: number[][]): Batch<{ tokens: Tensor }> {
  const T = tokens[0]!.length
  const B = tokens.length
  const at = (cols: number[][]) => Int32Array.from({ length: T * B }, (_, i) => cols[i % B]![Math.floor(i / B)]!)
  return { x: { tokens: tensor(at(tokens), [T, B], { dtype: 'int32' }) }, y: tensor(at(targets), [T, B], { dtype: 'int32' }) }
}

/** Per-target cross-entropy and arg-max hits by hand, over the targets ≠ `ignore` (all without). */
function byHand(tokens: number[][], targets: number[][], ignore?: number) {
  let sum = 0
  let n = 0
  let correct = 0
  tokens.forEach((col, b) =>
    col.forEach((tok, i) => {
      const y = targets[b]![i]!
      if (y === ignore) return
      const row = W[tok]!
      const m = Math.max(...row)
      sum += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[y]!
      n++
      if (row.indexOf(m) === y) correct++
    }),
  )
  return { sum, n, correct, mean: sum / n }
}

// Batch A: 6 positions, 1 padding target. Batch B: 8 positions, 4 padding targets.
// The padding positions read token 0 (predicted 0 = the pad id): counting them would add hits.
const A = { tokens: [[1, 2, 3], [4, 2, 0]], targets: [[1, 3, 3], [4, 2, 0]] }
const B = { tokens: [[3, 1, 0, 0], [2, 4, 0, 0]], targets: [[2, 3, 0, 0], [1, 4, 0, 0]] }

test('with ignoreIndex, the epoch and validation losses and accuracies are exact means over non-padding targets', async (t) => {
  const hA = byHand(A.tokens, A.targets, PAD)
  const hB = byHand(B.tokens, B.targets, PAD)
  const expected = (hA.sum + hB.sum) / (hA.n + hB.n)
  const expectedAcc = (hA.correct + hB.correct) / (hA.n + hB.n)
  // What a per-batch mean, or weighting by positions, or counting the pads would give: all differ.
  const allA = byHand(A.tokens, A.targets)
  const allB = byHand(B.tokens, B.targets)
  t.true(Math.abs((hA.mean + hB.mean) / 2 - expected) > 1e-2)
  t.true(Math.abs((hA.mean * 6 + hB.mean * 8) / 14 - expected) > 1e-2)
  t.true(Math.abs((allA.correct + allB.correct) / 14 - expectedAcc) > 1e-2)
  t.deepEqual([hA.n, hB.n], [5, 4])

  const model = new Lookup(W)
  // An optimizer that never changes the weights, so every step sees the same model.
  const optimizer = { zeroGrad() {}, step() {}, params: model.parameters() }
  const batches = () => [lookupBatch(A.tokens, A.targets), lookupBatch(B.tokens, B.targets)]
  const losses = [undefined, (o: Tensor, y: Tensor) => crossEntropy(o, y, { ignoreIndex: PAD })]
  for (const loss of losses) {
    const events: FitEvent[] = []
    const run = fit(model, { data: batches(), validation: batches(), optimizer, ignoreIndex: PAD, trainAccuracy: true, ...(loss ? { loss } : {}) })
    for await (const ev of run) events.push(ev)
    const { history } = await run
    const { train, validation } = history[0]!
    const what = loss ? 'explicit loss' : 'default loss'
    t.true(Math.abs(train.loss - expected) < 1e-5, `${what}: train loss ${train.loss} vs ${expected}`)
    t.true(Math.abs(train.accuracy! - expectedAcc) < 1e-12, `${what}: train accuracy ${train.accuracy} vs ${expectedAcc}`)
    t.is(train.count, 9)
    t.true(Math.abs(validation!.loss - expected) < 1e-5, `${what}: validation loss ${validation!.loss} vs ${expected}`)
    t.true(Math.abs(validation!.accuracy! - expectedAcc) < 1e-12)
    t.is(validation!.count, 9)
    t.true(Math.abs(validation!.perplexity! - Math.exp(expected)) < 1e-4)
    const steps = events.filter((e) => e.type === 'step')
    t.deepEqual(
      steps.map((e) => e.count),
      [5, 4],
    )
    t.true(Math.abs(steps[0]!.loss - hA.mean) < 1e-5 && Math.abs(steps[1]!.loss - hB.mean) < 1e-5)
    t.true(Math.abs(steps[0]!.accuracy! - hA.correct / hA.n) < 1e-12 && Math.abs(steps[1]!.accuracy! - hB.correct / hB.n) < 1e-12)
  }

  // Without ignoreIndex every position counts: the averages are weighted by y.size as before.
  const plain = await evaluate(model, batches(), (o, y) => crossEntropy(o, y))
  t.is(plain.count, 14)
  t.true(Math.abs(plain.loss - (allA.sum + allB.sum) / 14) < 1e-5)
  t.true(Math.abs(plain.accuracy! - (allA.correct + allB.correct) / 14) < 1e-12)
})

test('evaluate: a batch whose targets are all padding weighs nothing', async (t) => {
  const model = new Lookup(W)
  const hA = byHand(A.tokens, A.targets, PAD)
  const allPad = lookupBatch([[1, 2], [3, 4]], [[0, 0], [0, 0]])
  const m = await evaluate(model, [lookupBatch(A.tokens, A.targets), allPad], (o, y) => crossEntropy(o, y, { ignoreIndex: PAD }), { ignoreIndex: PAD })
  t.is(m.count, 5)
  t.true(Math.abs(m.loss - hA.mean) < 1e-5, `${m.loss} vs ${hA.mean}`)
  t.is(m.accuracy, hA.correct / hA.n)
})

test('fit and evaluate: malformed batches and options are refused by content', async (t) => {
  const model = new Lookup(W)
  const optimizer = { zeroGrad() {}, step() {}, params: model.parameters() }
  const good = lookupBatch(A.tokens, A.targets)
  const tokens = good.x.tokens
  const run = (batch: unknown, extra: object = {}) =>
    fit(model as never, { data: [batch], optimizer, ...extra } as never).result
  const shape = 'fit: each batch must be { x, y } with x a Tensor or an object of named Tensors and y a Tensor'
  const esc = (s: string) => s.replace(/[{}[\]().*+?^$|\\]/g, '\\$&')
  await t.throwsAsync(run({ x: { tokens, mask: [1, 0] }, y: good.y }), { instanceOf: ValueError, message: new RegExp(`${esc(shape)}; x\\.mask is an array`) })
  await t.throwsAsync(run({ x: { tokens, n: 3 }, y: good.y }), { instanceOf: ValueError, message: /; x\.n is number/ })
  await t.throwsAsync(run({ x: { lengths: Int32Array.from([1]) }, y: good.y }), { instanceOf: ValueError, message: /; x\.lengths is an Int32Array/ })
  await t.throwsAsync(run({ x: {}, y: good.y }), { instanceOf: ValueError, message: /; x is an empty object/ })
  await t.throwsAsync(run({ x: [tokens], y: good.y }), { instanceOf: ValueError, message: /; x is an array/ })
  await t.throwsAsync(run({ x: good.x }), { instanceOf: ValueError, message: /; y is undefined/ })
  await t.throwsAsync(run(null), { instanceOf: ValueError, message: new RegExp(`${esc(shape)}, got null`) })
  await t.throwsAsync(run({ x: good.x, y: tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [3, 2]) }, { ignoreIndex: 0 }), {
    instanceOf: ValueError,
    message: /fit: ignoreIndex needs int32 \(class\) targets, got y of dtype float32/,
  })
  t.throws(() => fit(model, { data: [good], optimizer, ignoreIndex: 0.5 }), { instanceOf: ValueError, message: /fit: ignoreIndex must be an integer, got 0\.5/ })
  t.throws(() => fit(model, { data: [good], optimizer, loss: 'crossEntropy' as never }), { instanceOf: ValueError, message: /fit: options\.loss must be a function/ })
  await t.throwsAsync(evaluate(model, [good], (o, y) => crossEntropy(o, y), { ignoreIndex: Number.NaN }), { instanceOf: ValueError, message: /evaluate: ignoreIndex must be an integer, got NaN/ })
  await t.throwsAsync(evaluate(model, [{ x: { tokens: 1 }, y: good.y } as never], (o, y) => crossEntropy(o, y)), {
    instanceOf: ValueError,
    message: /evaluate: each batch must be .*; x\.tokens is number/,
  })
})
