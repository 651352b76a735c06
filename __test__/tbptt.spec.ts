/**
 * Truncated BPTT against hand-written references, in float64 (the model here is built from the
 * raw float64 ops: embedding → fused LSTM layer → linear). Tolerances: 1e-9 relative to the gradient's scale where the computation order
 * differs (window recompute vs. one pass), exact equality where it does not.
 *
 * Also: the token streams (array, file byte/char-level, blocks) and the char vocabulary.
 */

import test from 'ava'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  ByteVocab,
  CharVocab,
  RecurrentLM,
  manualSeed,
  seedState,
  setSeedState,
  TBPTT,
  type Tensor,
  arrayStream,
  blockStream,
  concat,
  crossEntropy,
  embedding,
  fileStream,
  linear,
  noGrad,
  randn,
  recurrentLayer,
  reshape,
  slice,
  tensor,
  vocabFromJSON,
  zeros,
  type RecurrentState,
  type StatefulModel,
  type TokenChunk,
} from '../index.js'

/** Temporary files of this file's tests, removed when they end. */
const scratch = mkdtempSync(join(tmpdir(), 'recurrent-tbptt-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

const F64 = { dtype: 'float64' as const }

/** A float64 LSTM language model on the raw ops: state [h, c], each [1, B, H]. */
class F64LM implements StatefulModel {
  readonly params: Tensor[]
  constructor(
    readonly V: number,
    readonly E: number,
    readonly H: number,
    seed: number,
  ) {
    const p = (shape: number[], k: number, s: number) => {
      const t = randn(shape, { dtype: 'float64', seed: seed * 100 + s }).scale(k).detach()
      t.requiresGrad = true
      return t
    }
    this.params = [p([V, E], 1, 1), p([4 * H, E], 0.4, 2), p([4 * H, H], 0.4, 3), p([4 * H], 0.1, 4), p([4 * H], 0.1, 5), p([V, H], 0.5, 6), p([V], 0.1, 7)]
  }
  forward(x: Tensor, state: RecurrentState | null) {
    const [emb, wIh, wHh, bIh, bHh, hw, hb] = this.params as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
    const [T, B] = x.shape as [number, number]
    const H = this.H
    const e = embedding(emb, x)
    const h0 = state ? reshape(state[0]!, [B, H]) : zeros([B, H], F64)
    const c0 = state ? reshape(state[1]!, [B, H]) : zeros([B, H], F64)
    const r = recurrentLayer('lstm', e, h0, c0, { wIh, wHh, bIh, bHh })
    const logits = reshape(linear(reshape(r.y, [T * B, H]), hw, hb), [T, B, this.V])
    return { output: logits, state: [reshape(r.hT, [1, B, H]), reshape(r.cT!, [1, B, H])] }
  }
  zeroGrad() {
    for (const p of this.params) p.zeroGrad()
  }
  grads(): Float64Array[] {
    return this.params.map((p) => (p.grad ? (p.grad.dataSync() as Float64Array) : new Float64Array(p.size)))
  }
}

const loss = (o: Tensor, y: Tensor) => crossEntropy(o, y)

/** Deterministic tokens, [N, B] time-major as Int32Array. */
function tokens(n: number, V: number, seed: number): Int32Array {
  const out = new Int32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = (s >>> 8) % V
  }
  return out
}

/** Time-major data of T steps, B rows: x [T, B], y [T, B] (y = the next token of each row). */
function sequence(T: number, B: number, V: number, seed: number) {
  const rows = tokens((T + 1) * B, V, seed)
  const x = new Int32Array(T * B)
  const y = new Int32Array(T * B)
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      x[t * B + b] = rows[b * (T + 1) + t]!
      y[t * B + b] = rows[b * (T + 1) + t + 1]!
    }
  }
  return { x: tensor(x, [T, B], { dtype: 'int32' }), y: tensor(y, [T, B], { dtype: 'int32' }) }
}

function chunk(x: Tensor, start: number, len: number) {
  return slice(x, 0, start, len)
}

function maxRelDiff(a: Float64Array[], b: Float64Array[]): { diff: number; scale: number } {
  let diff = 0
  let scale = 0
  for (let i = 0; i < a.length; i++) {
    for (let k = 0; k < a[i]!.length; k++) {
      diff = Math.max(diff, Math.abs(a[i]![k]! - b[i]![k]!))
      scale = Math.max(scale, Math.abs(b[i]![k]!))
    }
  }
  return { diff, scale }
}

function assertClose(t: import('ava').ExecutionContext, a: Float64Array[], b: Float64Array[], tol: number, what: string) {
  const { diff, scale } = maxRelDiff(a, b)
  t.log(`${what}: max |Δ| = ${diff.toExponential(2)} (gradient scale ${scale.toExponential(2)})`)
  t.true(scale > 1e-3, `${what}: the gradients are ~0, the test could not fail`)
  t.true(diff <= tol * scale, `${what}: max |Δ| ${diff} > ${tol} × ${scale}`)
}

test('k2 ≥ sequence length: TBPTT gradients (summed over chunks) equal full BPTT', (t) => {
  const T = 24
  const B = 3
  const k1 = 6
  for (const k2 of [24, 100]) {
    const m = new F64LM(7, 5, 6, 1)
    const { x, y } = sequence(T, B, 7, 11)
    // TBPTT, accumulating the gradients of every chunk.
    const tb = new TBPTT(m, { k1, k2, loss })
    m.zeroGrad()
    for (let c = 0; c < T; c += k1) tb.backward({ x: chunk(x, c, k1), y: chunk(y, c, k1) })
    const g1 = m.grads()
    // Full BPTT of the same total loss: Σ over chunks of the chunk's mean loss.
    m.zeroGrad()
    const { output } = m.forward(x, null)
    let total: Tensor | null = null
    for (let c = 0; c < T; c += k1) {
      const l = loss(chunk(output, c, k1), chunk(y, c, k1))
      total = total ? total.add(l) : l
    }
    total!.backward()
    assertClose(t, g1, m.grads(), 1e-9, `k1 = ${k1}, k2 = ${k2}`)
  }
  // One chunk covering everything: the same computation, bit for bit.
  const m = new F64LM(7, 5, 6, 2)
  const { x, y } = sequence(T, B, 7, 12)
  m.zeroGrad()
  new TBPTT(m, { k1: T, k2: T, loss }).backward({ x, y })
  const g1 = m.grads()
  m.zeroGrad()
  loss(m.forward(x, null).output, y).backward()
  t.deepEqual(g1, m.grads())
})

test('k1 = k2 = k: the same gradients as detaching by hand every k steps', (t) => {
  const T = 30
  const B = 4
  const k = 5
  const m = new F64LM(9, 4, 5, 3)
  const { x, y } = sequence(T, B, 9, 13)
  const tb = new TBPTT(m, { k1: k, loss })
  const ours: Float64Array[][] = []
  const losses: number[] = []
  for (let c = 0; c < T; c += k) {
    m.zeroGrad()
    const r = tb.backward({ x: chunk(x, c, k), y: chunk(y, c, k) })
    losses.push(r.loss.itemSync())
    ours.push(m.grads())
  }
  // The manual version.
  let state: RecurrentState | null = null
  for (let i = 0, c = 0; c < T; c += k, i++) {
    m.zeroGrad()
    const r = m.forward(chunk(x, c, k), state)
    const l = loss(r.output, chunk(y, c, k))
    l.backward()
    t.is(l.itemSync(), losses[i]!, `loss of chunk ${i}`)
    t.deepEqual(m.grads(), ours[i]!, `gradients of chunk ${i}`)
    state = r.state.map((s) => s.detach())
  }
  // The carried state is the full forward's state at the end (the forward is not truncated).
  const full = noGrad(() => m.forward(x, null))
  t.deepEqual(tb.state!.map((s) => s.dataSync()), full.state.map((s) => s.dataSync()))
  t.is(tb.position, T)
})

/**
 * The reference of TBPTT(k1, k2) for the update at chunk [c, c + T): the state at
 * w = max(0, c − (k2 − k1)) from a no-grad forward over [0, w) (with the same resets), then a
 * forward with history over [w, c + T), loss on the last T outputs.
 */
function referenceWindow(
  m: F64LM,
  x: Tensor,
  y: Tensor,
  c: number,
  T: number,
  k1: number,
  k2: number,
  resets: Map<number, number[]>,
): Float64Array[] {
  const w = Math.max(0, c - (k2 - k1))
  const B = x.shape[1]!
  // Zeroes rows by rebuilding the state from its data (detached) or, inside the window,
  // by multiplying with a mask built here.
  const zeroRowsDetached = (s: RecurrentState | null, rows: number[]): RecurrentState | null => {
    if (s === null) return null
    return s.map((t) => {
      const d = Float64Array.from(t.dataSync() as Float64Array)
      const H = t.shape[2]!
      for (const b of rows) d.fill(0, b * H, (b + 1) * H)
      return tensor(d, t.shape)
    })
  }
  const zeroRowsGraph = (s: RecurrentState | null, rows: number[]): RecurrentState | null => {
    if (s === null) return null
    if (rows.length === B) return null
    const keep = new Float64Array(B).fill(1)
    for (const b of rows) keep[b] = 0
    return s.map((t) => t.mul(tensor(keep, [1, B, 1])))
  }
  // Steps at which a reset happens, in order; run step ranges between them.
  const run = (from: number, to: number, s: RecurrentState | null, graph: boolean) => {
    const cuts = [...resets.keys()].filter((p) => p >= from && p < to).sort((a, b) => a - b)
    const outs: Tensor[] = []
    let pos = from
    for (const p of [...cuts, to]) {
      if (p > pos) {
        const r = m.forward(chunk(x, pos, p - pos), s)
        outs.push(r.output)
        s = graph ? r.state : r.state.map((q) => q.detach())
        pos = p
      }
      if (p < to && resets.has(p)) s = graph ? zeroRowsGraph(s, resets.get(p)!) : zeroRowsDetached(s, resets.get(p)!)
    }
    return { outs, s }
  }
  const before = noGrad(() => run(0, w, null, false)).s
  m.zeroGrad()
  const { outs } = run(w, c + T, before, true)
  const out = outs.length === 1 ? outs[0]! : concat(outs, 0)
  const n = out.shape[0]!
  loss(slice(out, 0, n - T, T), chunk(y, c, T)).backward()
  return m.grads()
}


for (const [k1, k2] of [
  [4, 8],
  [4, 10],
  [3, 7],
  [5, 5],
] as const) {
  test(`k2 > k1 window recompute: TBPTT(${k1}, ${k2}) equals a hand-built window reference`, (t) => {
    const T = 26
    const B = 3
    const m = new F64LM(8, 4, 5, 4)
    const { x, y } = sequence(T, B, 8, 14 + k2)
    const tb = new TBPTT(m, { k1, k2, loss })
    for (let c = 0; c < T; c += k1) {
      const len = Math.min(k1, T - c)
      m.zeroGrad()
      tb.backward({ x: chunk(x, c, len), y: chunk(y, c, len) })
      const ours = m.grads()
      const ref = referenceWindow(m, x, y, c, len, k1, k2, new Map())
      const { diff, scale } = maxRelDiff(ours, ref)
      t.true(scale > 1e-3)
      t.true(diff <= 1e-9 * scale, `chunk at ${c}: max |Δ| ${diff} (scale ${scale})`)
    }
    t.pass()
  })
}

test('per-row reset zeroes exactly those rows of the state', (t) => {
  const B = 4
  const k = 5
  const m = new F64LM(6, 3, 4, 5)
  const { x, y } = sequence(2 * k, B, 6, 21)
  const tb = new TBPTT(m, { k1: k, loss })
  tb.backward({ x: chunk(x, 0, k), y: chunk(y, 0, k) })
  const s0 = tb.state!.map((s) => s.dataSync() as Float64Array)
  tb.backward({ x: chunk(x, k, k), y: chunk(y, k, k), reset: [0, 1, 0, 1] })
  const after = tb.state!.map((s) => s.dataSync() as Float64Array)
  // Rows 0 and 2 continue from s0, rows 1 and 3 start from zero.
  const cont = noGrad(() => m.forward(chunk(x, k, k), s0.map((d) => tensor(d, [1, B, 4])))).state.map((s) => s.dataSync() as Float64Array)
  const fresh = noGrad(() => m.forward(chunk(x, k, k), null)).state.map((s) => s.dataSync() as Float64Array)
  const H = 4
  for (let i = 0; i < 2; i++) {
    for (let b = 0; b < B; b++) {
      const got = Array.from(after[i]!.subarray(b * H, (b + 1) * H))
      const want = Array.from((b % 2 === 1 ? fresh : cont)[i]!.subarray(b * H, (b + 1) * H))
      t.deepEqual(got, want, `state ${i}, row ${b}`)
    }
  }
  // And the reset rows really differ from continuing (else the test proves nothing).
  t.notDeepEqual(Array.from(cont[0]!.subarray(H, 2 * H)), Array.from(fresh[0]!.subarray(H, 2 * H)))
  // A reset of every row is the zero state: the same as a new stream.
  const tb2 = new TBPTT(m, { k1: k, loss })
  tb2.backward({ x: chunk(x, 0, k), y: chunk(y, 0, k) })
  m.zeroGrad()
  tb2.backward({ x: chunk(x, k, k), y: chunk(y, k, k), reset: [1, 1, 1, 1] })
  const gAll = m.grads()
  m.zeroGrad()
  loss(m.forward(chunk(x, k, k), null).output, chunk(y, k, k)).backward()
  t.deepEqual(gAll, m.grads())
})

test('resets inside a k2 > k1 window: no gradient crosses a reset, and the gradients match the reference', (t) => {
  const B = 4
  const k1 = 3
  const k2 = 9
  const T = 18
  const V = 12
  const m = new F64LM(V, 3, 4, 6)
  const { x, y } = sequence(T, B, V, 31)
  // Token 11 appears only at step 4 of row 1; row 1 resets at step 6.
  const xs = x.dataSync() as Int32Array
  for (let i = 0; i < xs.length; i++) if (xs[i] === 11) xs[i] = 0
  xs[4 * B + 1] = 11
  const x2 = tensor(xs, [T, B], { dtype: 'int32' })
  const resets = new Map<number, number[]>([
    [6, [1]],
    [12, [0, 2]],
  ])
  const tb = new TBPTT(m, { k1, k2, loss })
  for (let c = 0; c < T; c += k1) {
    const reset = resets.has(c) ? Array.from({ length: B }, (_, b) => (resets.get(c)!.includes(b) ? 1 : 0)) : null
    m.zeroGrad()
    tb.backward({ x: chunk(x2, c, k1), y: chunk(y, c, k1), reset })
    const ours = m.grads()
    const ref = referenceWindow(m, x2, y, c, k1, k1, k2, resets)
    const { diff, scale } = maxRelDiff(ours, ref)
    t.true(diff <= 1e-9 * scale, `chunk at ${c}: max |Δ| ${diff} (scale ${scale})`)
    const embRow11 = Array.from(ours[0]!.subarray(11 * 3, 12 * 3))
    if (c === 6 || c === 9) {
      // The window [c − 6, c + 3) contains step 4 of row 1, but row 1 was reset at step 6.
      t.true(embRow11.every((v) => v === 0), `chunk at ${c}: the gradient crossed row 1's reset: ${embRow11}`)
    }
    if (c === 3) t.true(embRow11.some((v) => v !== 0), 'before the reset the token does get a gradient')
  }
})

test('stateDict / loadStateDict: a restored TBPTT continues with the same gradients', (t) => {
  const B = 2
  const k1 = 3
  const k2 = 7
  const m = new F64LM(5, 3, 4, 7)
  const { x, y } = sequence(21, B, 5, 41)
  const a = new TBPTT(m, { k1, k2, loss })
  for (let c = 0; c < 9; c += k1) a.backward({ x: chunk(x, c, k1), y: chunk(y, c, k1) })
  const saved = a.stateDict()
  const b = new TBPTT(m, { k1, k2, loss })
  b.loadStateDict({ tensors: Object.fromEntries(Object.entries(saved.tensors).map(([k, v]) => [k, tensor(v.dataSync(), v.shape, { dtype: v.dtype })])), meta: JSON.parse(JSON.stringify(saved.meta)) })
  for (let c = 9; c < 21; c += k1) {
    m.zeroGrad()
    a.backward({ x: chunk(x, c, k1), y: chunk(y, c, k1) })
    const ga = m.grads()
    m.zeroGrad()
    b.backward({ x: chunk(x, c, k1), y: chunk(y, c, k1) })
    t.deepEqual(m.grads(), ga)
  }
  t.throws(() => new TBPTT(m, { k1: 4, k2: 3, loss }), { message: /k2 must be ≥ k1/ })
  t.throws(() => a.backward({ x: chunk(x, 0, 2).reshape([2, B]), y: chunk(y, 0, 2), reset: [1] }), { message: /one entry per batch row/ })
})

// ---- streams and vocabularies ---------------------------------------------------------------------

async function collect(it: AsyncIterable<TokenChunk>): Promise<TokenChunk[]> {
  const out: TokenChunk[] = []
  for await (const c of it) out.push(c)
  return out
}

/** Reassembles row b's inputs from the chunks. */
function rowOf(chunks: TokenChunk[], b: number, which: 'x' | 'y' = 'x'): number[] {
  const out: number[] = []
  for (const c of chunks) for (let t = 0; t < c.steps; t++) out.push(c[which][t * c.batchSize + b]!)
  return out
}

test('arrayStream: B contiguous rows, chunks of T, targets shifted by one, from any chunk', async (t) => {
  const N = 103
  const toks = Int32Array.from({ length: N }, (_, i) => i)
  const s = arrayStream(toks, { batchSize: 4, seqLen: 7 })
  const n = Math.floor((N - 1) / 4) // 25
  t.is(s.numChunks, Math.ceil(n / 7))
  const chunks = await collect(s.chunks())
  t.is(chunks.length, 4)
  t.deepEqual(chunks.map((c) => c.steps), [7, 7, 7, 4])
  for (let b = 0; b < 4; b++) {
    t.deepEqual(rowOf(chunks, b), Array.from({ length: n }, (_, i) => b * n + i))
    t.deepEqual(rowOf(chunks, b, 'y'), Array.from({ length: n }, (_, i) => b * n + i + 1))
  }
  const later = await collect(s.chunks(2))
  t.deepEqual(later.map((c) => Array.from(c.x)), chunks.slice(2).map((c) => Array.from(c.x)))
  t.is(later[0]!.index, 2)
})

test('fileStream byte-level equals arrayStream over the bytes; char-level follows UTF-8 characters', async (t) => {
  const dir = mkdtempSync(join(scratch, 'stream-'))
  const bytes = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)
  const p = join(dir, 'bytes.bin')
  writeFileSync(p, bytes)
  const fs = await fileStream(p, { batchSize: 5, seqLen: 32, readBytes: 100 })
  const as = arrayStream(Int32Array.from(bytes), { batchSize: 5, seqLen: 32 })
  t.is(fs.numChunks, as.numChunks)
  const a = await collect(fs.chunks())
  const b = await collect(as.chunks())
  t.deepEqual(a.map((c) => [Array.from(c.x), Array.from(c.y)]), b.map((c) => [Array.from(c.x), Array.from(c.y)]))
  const a5 = await collect(fs.chunks(5))
  t.deepEqual(Array.from(a5[0]!.x), Array.from(b[5]!.x))

  // Char-level: multi-byte characters, rows cut at byte positions inside characters.
  const text = 'héllo wörld — ünïcödé ✓ 𝄞 '.repeat(40)
  const tp = join(dir, 'text.txt')
  writeFileSync(tp, text)
  const vocab = CharVocab.fromText(text)
  const cs = await fileStream(tp, { batchSize: 3, seqLen: 16, vocab, readBytes: 37 })
  const chunks = await collect(cs.chunks())
  t.true(chunks.length > 5)
  const size = Buffer.byteLength(text)
  const n = Math.floor(size / 3)
  for (let b = 0; b < 3; b++) {
    // Row b: the characters starting in its byte segment, in order.
    const buf = Buffer.from(text)
    let start = b * n
    while (start > 0 && (buf[start]! & 0xc0) === 0x80) start++
    const rowText = buf.subarray(start, size).toString('utf8')
    const got = vocab.decode(rowOf(chunks, b))
    t.true(rowText.startsWith(got), `row ${b} is not a contiguous run of characters from byte ${start}`)
    t.true(got.length >= chunks.length * 16 - 16)
    // Targets are the inputs shifted by one character.
    t.deepEqual(rowOf(chunks, b, 'y').slice(0, -1), rowOf(chunks, b).slice(1))
  }
  const later = await collect(cs.chunks(3))
  t.deepEqual(Array.from(later[0]!.x), Array.from(chunks[3]!.x))
})

test('blockStream: each block split into B rows, rows reset at every block start', async (t) => {
  const blocks = [Int32Array.from({ length: 40 }, (_, i) => i), Int32Array.from({ length: 23 }, (_, i) => 100 + i), Int32Array.from({ length: 3 }, () => 7)]
  const s = blockStream(() => blocks, { batchSize: 2, seqLen: 6 })
  const chunks = await collect(s.chunks())
  // Block 0: L = 20, 19 steps → 4 chunks; block 1: L = 11, 10 steps → 2 chunks; block 2: L = 1, skipped.
  t.deepEqual(chunks.map((c) => c.steps), [6, 6, 6, 1, 6, 4])
  t.deepEqual(chunks.map((c) => (c.reset ? Array.from(c.reset) : null)), [[1, 1], null, null, null, [1, 1], null])
  t.deepEqual(rowOf(chunks.slice(0, 4), 1), Array.from({ length: 19 }, (_, i) => 20 + i))
  t.deepEqual(rowOf(chunks.slice(4), 0, 'y'), Array.from({ length: 10 }, (_, i) => 101 + i))
  const later = await collect(s.chunks(4))
  t.deepEqual(later.map((c) => c.index), [4, 5])
  t.deepEqual(Array.from(later[0]!.x), Array.from(chunks[4]!.x))
  // A one-shot async generator gives one pass, then a clear error.
  const once = blockStream((async function* () { yield blocks[0]! })(), { batchSize: 2, seqLen: 6 })
  t.is((await collect(once.chunks())).length, 4)
  await t.throwsAsync(() => collect(once.chunks()), { message: /one-shot/ })
})

test('CharVocab: encode/decode, unknown characters, JSON round trip; ByteVocab', async (t) => {
  const v = CharVocab.fromText('hello, world 𝄞')
  t.is(v.chars[0], '\uFFFD')
  t.is(v.decode(v.encode('hello 𝄞')), 'hello 𝄞')
  t.is(v.decode(v.encode('hex!')), 'he\uFFFD\uFFFD')
  const back = vocabFromJSON(JSON.parse(JSON.stringify(v)))
  t.deepEqual(Array.from(back.encode('world')), Array.from(v.encode('world')))
  const strict = CharVocab.fromText('abc', { unk: null })
  t.is(strict.size, 3)
  t.throws(() => strict.encode('abd'), { message: /not in the vocabulary/ })
  const top = CharVocab.fromText('aaaabbbcc d', { maxSize: 3 })
  t.deepEqual([...top.chars], ['\uFFFD', 'a', 'b'])
  const dir = mkdtempSync(join(scratch, 'vocab-'))
  writeFileSync(join(dir, 'v.txt'), 'zyx ✓✓')
  const fv = await CharVocab.fromFile(join(dir, 'v.txt'))
  t.deepEqual([...fv.chars], ['\uFFFD', ' ', 'x', 'y', 'z', '✓'])
  const bv = new ByteVocab()
  t.is(bv.decode(bv.encode('ünï')), 'ünï')
  t.is(vocabFromJSON({ type: 'byte' }).size, 256)
})

test('RecurrentLM.forward computes exactly Embedding → RNN module → Dropout → Linear (dropout masks included)', (t) => {
  for (const cell of ['lstm', 'gru', 'rnn'] as const) {
    manualSeed(9)
    const m = new RecurrentLM({ vocabSize: 11, hiddenSize: 6, embeddingDim: 5, numLayers: 2, cell, dropout: 0.3, seed: 3 })
    const x = tensor(Int32Array.from({ length: 8 * 3 }, (_, i) => (i * 5) % 11), [8, 3], { dtype: 'int32' })
    const h0 = randn([2, 3, 6], { seed: 1 })
    const c0 = randn([2, 3, 6], { seed: 2 })
    const state = cell === 'lstm' ? [h0, c0] : [h0]
    const rng = seedState()
    const ours = m.forward(x, state)
    setSeedState(rng)
    const r = m.rnn.forward(m.embedding.forward(x), cell === 'lstm' ? { h0, c0 } : { h0 })
    const ref = m.head.forward(m.drop!.forward(r.output))
    t.deepEqual(ours.output.dataSync(), ref.dataSync(), cell)
    t.deepEqual(ours.state[0]!.dataSync(), r.hN.dataSync(), cell)
    if (cell === 'lstm') t.deepEqual(ours.state[1]!.dataSync(), r.cN!.dataSync())
    t.deepEqual(seedState(), { seed: 9, counter: rng.counter + 2 }, 'two dropout masks drawn from the global generator')
    // The seed option fixes the initial weights and leaves the global generator alone.
    manualSeed(100)
    const before = seedState()
    const m2 = new RecurrentLM({ vocabSize: 11, hiddenSize: 6, embeddingDim: 5, numLayers: 2, cell, dropout: 0.3, seed: 3 })
    t.deepEqual(seedState(), before)
    t.deepEqual(m2.head.weight.dataSync(), m.head.weight.dataSync())
  }
})
