/**
 * Seq2seq data: `padSequences` and `collatePairs` lay out padded int32 batches with their
 * lengths (and the lengths make an LSTM read each row as if it were alone), and `TokenVocab`
 * (char and word modes, PAD/BOS/EOS/UNK at fixed ids) encodes, decodes, and survives a
 * checkpoint's metadata, with clear errors for malformed input.
 */

import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  CharVocab,
  Embedding,
  LSTM,
  Linear,
  TokenVocab,
  ValueError,
  collatePairs,
  loadCheckpoint,
  manualSeed,
  noGrad,
  padSequences,
  saveCheckpoint,
  type Tensor,
} from '../index.js'

/** Temporary files of this file's tests, removed when they end. */
const scratch = mkdtempSync(join(tmpdir(), 'recurrent-seq2seq-data-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

const ints = async (t: Tensor) => Array.from(await t.data())

test('padSequences: time-major [T, B] with padding after each end, and the lengths', async (t) => {
  const { data, lengths } = padSequences([[5, 6, 7], [8], [9, 10]])
  t.deepEqual(data.shape, [3, 3])
  t.is(data.dtype, 'int32')
  // rows are time steps: t=0 → 5 8 9, t=1 → 6 0 10, t=2 → 7 0 0
  t.deepEqual(await ints(data), [5, 8, 9, 6, 0, 10, 7, 0, 0])
  t.deepEqual(lengths.shape, [3])
  t.is(lengths.dtype, 'int32')
  t.deepEqual(await ints(lengths), [3, 1, 2])
})

test('padSequences: batchFirst, padValue, typed arrays and empty rows', async (t) => {
  const bf = padSequences([[5, 6, 7], [8]], { batchFirst: true, padValue: -1 })
  t.deepEqual(bf.data.shape, [2, 3])
  t.deepEqual(await ints(bf.data), [5, 6, 7, 8, -1, -1])
  // CharVocab.encode gives Int32Array; an empty row has length 0.
  const v = new CharVocab(['a', 'b'])
  const r = padSequences([v.encode('ab'), new Int32Array(0), v.encode('b')])
  t.deepEqual(await ints(r.data), [0, 0, 1, 1, 0, 0])
  t.deepEqual(await ints(r.lengths), [2, 0, 1])
})

test("padSequences: maxLength truncates, keeping the start ('post', default) or the end ('pre')", async (t) => {
  const seqs = [[1, 2, 3, 4], [5], [6, 7]]
  const post = padSequences(seqs, { maxLength: 2 })
  t.deepEqual(post.data.shape, [2, 3])
  t.deepEqual(await ints(post.data), [1, 5, 6, 2, 0, 7])
  t.deepEqual(await ints(post.lengths), [2, 1, 2])
  const pre = padSequences(seqs, { maxLength: 2, truncate: 'pre' })
  t.deepEqual(await ints(pre.data), [3, 5, 6, 4, 0, 7])
  // T is the longest row after truncation, not maxLength itself.
  t.deepEqual(padSequences([[1], [2, 3]], { maxLength: 10 }).data.shape, [2, 2])
})

test('padSequences: the lengths make an LSTM read each padded row exactly as the row alone', async (t) => {
  manualSeed(3)
  const emb = new Embedding(12, 4)
  const lstm = new LSTM(4, 5)
  const seqs = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]
  // Pad with a real token id: a mask that failed would change the result.
  const { data, lengths } = padSequences(seqs, { padValue: 11 })
  const batched = noGrad(() => lstm.forward(emb.forward(data), { lengths }).hN)
  const hb = await batched.data()
  for (let b = 0; b < seqs.length; b++) {
    const alone = noGrad(() => lstm.forward(emb.forward(padSequences([seqs[b]!]).data)).hN)
    const ha = await alone.data()
    for (let j = 0; j < 5; j++) t.true(Math.abs(hb[b * 5 + j]! - ha[j]!) < 1e-6, `row ${b}, unit ${j}: ${hb[b * 5 + j]} vs ${ha[j]}`)
  }
})

test('padSequences: errors name what is wrong', (t) => {
  const err = (f: () => unknown, message: RegExp) => t.throws(f, { instanceOf: ValueError, message })
  err(() => padSequences([]), /padSequences: seqs is an empty batch/)
  err(() => padSequences([[1, 2], [3, 1.5]]), /seqs\[1\]\[1\] must be an integer id in the int32 range, got 1\.5/)
  err(() => padSequences([[2 ** 31]]), /seqs\[0\]\[0\] must be an integer id in the int32 range, got 2147483648/)
  err(() => padSequences([[], []]), /all 2 sequences are empty/)
  err(() => padSequences([[1]], { maxLength: 0 }), /maxLength must be a positive integer, got 0/)
  err(() => padSequences([[1]], { maxLength: -3 }), /maxLength must be a positive integer, got -3/)
  err(() => padSequences([[1]], { truncate: 'middle' as 'pre' }), /truncate must be 'post' or 'pre', got "middle"/)
  err(() => padSequences([[1]], { padValue: 0.5 }), /padValue must be an integer id/)
  err(() => padSequences([[1], null as unknown as number[]]), /seqs\[1\] must be an array of ids, got null/)
  err(() => padSequences('abc' as unknown as number[][]), /seqs must be an array of id sequences, got string/)
})

test('collatePairs: source, BOS + target in, target + EOS out, lengths', async (t) => {
  const b = collatePairs([
    [[4, 5, 6], [7, 8]],
    [[9], []],
    [[10, 11], [12]],
  ])
  t.deepEqual(b.source.shape, [3, 3])
  t.deepEqual(await ints(b.source), [4, 9, 10, 5, 0, 11, 6, 0, 0])
  t.deepEqual(await ints(b.sourceLengths), [3, 1, 2])
  t.deepEqual(b.targetIn.shape, [3, 3])
  // columns: [1 7 8], [1 0 0], [1 12 0]
  t.deepEqual(await ints(b.targetIn), [1, 1, 1, 7, 0, 12, 8, 0, 0])
  // columns: [7 8 2], [2 0 0], [12 2 0]
  t.deepEqual(await ints(b.targetOut), [7, 2, 12, 8, 0, 2, 2, 0, 0])
  t.deepEqual(await ints(b.targetLengths), [3, 1, 2])
  for (const x of [b.source, b.sourceLengths, b.targetIn, b.targetOut, b.targetLengths]) t.is(x.dtype, 'int32')
})

test('collatePairs: custom special ids and batchFirst', async (t) => {
  const b = collatePairs([[[4], [5, 6]], [[7, 8], [9]]], { pad: -1, bos: 100, eos: 101, batchFirst: true })
  t.deepEqual(b.source.shape, [2, 2])
  t.deepEqual(await ints(b.source), [4, -1, 7, 8])
  t.deepEqual(b.targetIn.shape, [2, 3])
  t.deepEqual(await ints(b.targetIn), [100, 5, 6, 100, 9, -1])
  t.deepEqual(await ints(b.targetOut), [5, 6, 101, 9, 101, -1])
})

test('collatePairs with a TokenVocab: each targetOut column decodes back to its target', async (t) => {
  const src = TokenVocab.build(['one two', 'three'], { mode: 'word' })
  const tgt = TokenVocab.build(['uno dos', 'tres'], { mode: 'char' })
  const pairs: [string, string][] = [
    ['one two', 'uno dos'],
    ['three', 'tres'],
    ['two', 'dos'],
  ]
  const b = collatePairs(pairs.map(([s, y]) => [src.encode(s), tgt.encode(y)] as const), { pad: tgt.pad, bos: tgt.bos, eos: tgt.eos })
  const [T, B] = b.targetOut.shape as [number, number]
  const out = await b.targetOut.data()
  const inp = await b.targetIn.data()
  const sources = await b.source.data()
  const S = b.source.shape[0]!
  for (let j = 0; j < B; j++) {
    const column = (a: ArrayLike<number>, n: number) => Array.from({ length: n }, (_, i) => a[i * B + j]!)
    t.is(tgt.decode(column(out, T)), pairs[j]![1])
    // BOS + the whole target, then PAD: decoding skips both.
    t.is(tgt.decode(column(inp, T)), pairs[j]![1])
    t.is(inp[j], tgt.bos)
    t.is(src.decode(column(sources, S)), pairs[j]![0])
  }
})

test('collatePairs: errors name the pair', (t) => {
  const err = (f: () => unknown, message: RegExp) => t.throws(f, { instanceOf: ValueError, message })
  err(() => collatePairs([]), /collatePairs: pairs is an empty batch/)
  err(() => collatePairs([[[1], [2]], [[], [3]]]), /pairs\[1\] has an empty source/)
  err(() => collatePairs([[[1], [2, Number.NaN]]]), /pairs\[0\]\[1\]\[1\] must be an integer id in the int32 range, got NaN/)
  err(() => collatePairs([[[1, -0.5], [2]]]), /pairs\[0\]\[0\]\[1\] must be an integer id/)
  err(() => collatePairs([[[1], [2], [3]] as unknown as [number[], number[]]]), /pairs\[0\] must be a \[source ids, target ids\] pair/)
  err(() => collatePairs([[[1], 7 as unknown as number[]]]), /pairs\[0\]\[1\] must be an array of ids, got number/)
  err(() => collatePairs([[[1], [2]]], { eos: 2.5 }), /eos must be an integer id/)
})

test('TokenVocab (char): fixed specials, frequency order, encode/decode with BOS, EOS, PAD and UNK', (t) => {
  t.deepEqual([TokenVocab.PAD, TokenVocab.BOS, TokenVocab.EOS, TokenVocab.UNK], [0, 1, 2, 3])
  const v = TokenVocab.build(['abcab', 'ba', '😀b'])
  // counts: b 4, a 3, c 1, 😀 1 → b a then c 😀 by code point
  t.deepEqual(v.tokens, ['b', 'a', 'c', '😀'])
  t.is(v.size, 8)
  t.is(v.mode, 'char')
  t.deepEqual(v.encode('ab😀'), [5, 4, 7])
  t.deepEqual(v.encode('axb', { bos: true, eos: true }), [1, 5, 3, 4, 2])
  // stops at EOS, skips PAD and BOS; UNK reads U+FFFD
  t.is(v.decode([1, 5, 0, 3, 4, 2, 6, 6]), 'a\uFFFDb')
  t.is(v.decode(Int32Array.from([7, 4])), '😀b')
  t.is(v.decode([]), '')
  t.throws(() => v.decode([4, 8]), { instanceOf: ValueError, message: /TokenVocab\.decode: ids\[1\] = 8 is not an id in \[0, 8\)/ })
  t.throws(() => v.decode([1.5]), { instanceOf: ValueError, message: /ids\[0\] = 1\.5 is not an id/ })
  t.throws(() => v.encode(5 as unknown as string), { instanceOf: ValueError, message: /text must be a string, got number/ })
})

test('TokenVocab (word): whitespace tokens, words joined by one space, minCount and maxSize', (t) => {
  const texts = ['the cat  sat', 'the\tdog\nsat down', ' the end ', '<unk> <pad>']
  const v = TokenVocab.build(texts, { mode: 'word' })
  t.deepEqual(v.tokenize('  the\t cat \n'), ['the', 'cat'])
  // the 3, sat 2, then the rest once each in code-point order
  t.deepEqual(v.tokens, ['the', 'sat', '<pad>', '<unk>', 'cat', 'dog', 'down', 'end'])
  t.deepEqual(v.encode('the cat flew', { eos: true }), [4, 8, 3, 2])
  t.is(v.decode([1, 4, 8, 3, 2, 5]), 'the cat <unk>')
  // '<pad>' in the text is an ordinary word, not the PAD id.
  t.deepEqual(v.encode('<pad>'), [6])
  t.is(v.decode([6, 0, 0]), '<pad>')
  const frequent = TokenVocab.build(texts, { mode: 'word', minCount: 2 })
  t.deepEqual(frequent.tokens, ['the', 'sat'])
  t.deepEqual(frequent.encode('the dog sat'), [4, 3, 5])
  t.deepEqual(TokenVocab.build(texts, { mode: 'word', maxSize: 5 }).tokens, ['the'])
})

test('TokenVocab: JSON round trip, and malformed JSON fails with a clear error', (t) => {
  for (const mode of ['char', 'word'] as const) {
    const v = TokenVocab.build(['hello world', 'hello there 😀'], { mode })
    const text = 'hello there world'
    for (const j of [v.toJSON(), JSON.stringify(v), JSON.parse(JSON.stringify(v))]) {
      const w = TokenVocab.fromJSON(j)
      t.is(w.mode, mode)
      t.deepEqual(w.tokens, v.tokens)
      t.deepEqual(w.encode(text, { bos: true, eos: true }), v.encode(text, { bos: true, eos: true }))
      t.is(w.decode(w.encode(text)), text)
    }
  }
  const good = TokenVocab.build(['ab']).toJSON()
  t.deepEqual(good, { type: 'tokens', mode: 'char', specials: { pad: 0, bos: 1, eos: 2, unk: 3 }, tokens: ['a', 'b'] })
  const err = (j: unknown, message: RegExp) => t.throws(() => TokenVocab.fromJSON(j), { instanceOf: ValueError, message })
  err('{"type": "tokens"', /TokenVocab\.fromJSON: not valid JSON/)
  err(null, /expected a token vocabulary object, got null/)
  err({ ...good, type: 'char' }, /expected type 'tokens', got "char"/)
  err({ ...good, mode: 'bpe' }, /mode must be 'char' or 'word', got "bpe"/)
  err({ ...good, specials: { pad: 0, bos: 1, eos: 3, unk: 2 } }, /specials must be \{"pad":0,"bos":1,"eos":2,"unk":3\}/)
  err({ ...good, specials: undefined }, /specials must be .*got nothing/)
  err({ ...good, tokens: 'ab' }, /tokens must be an array of strings, got "ab"/)
  err({ ...good, tokens: ['a', 7] }, /tokens\[1\] must be a string, got 7/)
  err({ ...good, tokens: ['a', 'bc'] }, /tokens\[1\] must be one character in char mode, got "bc"/)
  err({ ...good, tokens: ['a', 'b', 'a'] }, /duplicate token "a" \(tokens\[2\]\)/)
  err({ ...good, mode: 'word', tokens: ['two words'] }, /tokens\[0\] must be a non-empty word without whitespace in word mode/)
})

test('TokenVocab.build: invalid options and texts are refused by content', (t) => {
  const err = (f: () => unknown, message: RegExp) => t.throws(f, { instanceOf: ValueError, message })
  err(() => TokenVocab.build(['a'], { maxSize: 4 }), /maxSize must be an integer > 4 \(the specials PAD, BOS, EOS, UNK take ids 0-3\), got 4/)
  err(() => TokenVocab.build(['a'], { minCount: 0 }), /minCount must be a positive integer, got 0/)
  err(() => TokenVocab.build(['a'], { mode: 'bytes' as 'char' }), /mode must be 'char' or 'word', got "bytes"/)
  err(() => TokenVocab.build(['a', 3 as unknown as string]), /texts\[1\] must be a string, got number/)
  err(() => TokenVocab.build('abc' as unknown as string[]), /texts must be an iterable of strings/)
})

test('TokenVocab: the vocabularies round-trip through a checkpoint, and a corrupt one gives a clear error', async (t) => {
  const dir = mkdtempSync(join(scratch, 'vocab-'))
  const source = TokenVocab.build(['12+34', '5+678'])
  const target = TokenVocab.build(['forty six', 'six hundred eighty three'], { mode: 'word' })
  manualSeed(1)
  const model = new Linear(2, 2)
  const path = join(dir, 'ck.safetensors')
  await saveCheckpoint(path, { model, metadata: { source: source.toJSON(), target: target.toJSON() } })
  const ck = await loadCheckpoint(path)
  const meta = ck.metadata as { source: unknown; target: unknown }
  const s = TokenVocab.fromJSON(meta.source)
  const y = TokenVocab.fromJSON(meta.target)
  t.deepEqual(s.toJSON(), source.toJSON())
  t.deepEqual(y.toJSON(), target.toJSON())
  t.deepEqual(s.encode('34+5', { eos: true }), source.encode('34+5', { eos: true }))
  t.is(y.decode(y.encode('six hundred', { bos: true, eos: true })), 'six hundred')

  // A checkpoint whose stored vocabulary was damaged: loading the file works, rebuilding the
  // vocabulary says what is wrong with it.
  const bad = join(dir, 'bad.safetensors')
  const damaged = { ...target.toJSON(), tokens: [...target.tokens, target.tokens[0]!] }
  await saveCheckpoint(bad, { model, metadata: { source: source.toJSON(), target: damaged } })
  const ck2 = await loadCheckpoint(bad)
  t.throws(() => TokenVocab.fromJSON((ck2.metadata as { target: unknown }).target), {
    instanceOf: ValueError,
    message: new RegExp(`TokenVocab\\.fromJSON: duplicate token "${target.tokens[0]}"`),
  })
  t.throws(() => TokenVocab.fromJSON((ck2.metadata as { missing?: unknown }).missing), { instanceOf: ValueError, message: /expected a token vocabulary object, got nothing/ })
})
