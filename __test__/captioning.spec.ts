/**
 * Image captioning: the `ImageCaptioner` on images and on precomputed features (shapes, the
 * attention it reports per word, errors), corpus BLEU against hand-counted n-grams, a reduced
 * shapes task that must converge within a step budget, and the `train-caption` / `caption`
 * commands (round trip, bit-identical resume, attention maps, bad input by content).
 */

import test from 'ava'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { BOS_ID, EOS_ID, ImageCaptioner, ShapeError, ValueError, corpusBleu, padSequences, randn, saveSafetensors } from '../index.js'
import { makeShapes, trainShapes } from '../examples/shapes.js'
import { assertOneLineError, cli, tensorsOf } from './helpers/cli.js'

const work = mkdtempSync(join(tmpdir(), 'recurrent-caption-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

const targets = (caps: number[][]) => ({ targetIn: padSequences(caps.map((c) => [BOS_ID, ...c])).data, targetOut: padSequences(caps.map((c) => [...c, EOS_ID])).data })

test('the captioner encodes images into a grid of regions and decodes with attention over them', async (t) => {
  const model = new ImageCaptioner({ vocabSize: 9, channels: [4, 6], hiddenSize: 16, embeddingDim: 8, seed: 1 })
  const images = randn([3, 3, 16, 16], { seed: 2 })
  const { features, grid } = model.encode(images)
  t.deepEqual(features.shape, [3, 16, 6], 'two pooling blocks: 16×16 → 4×4 = 16 regions of 6 channels')
  t.deepEqual(grid, [4, 4])
  const loss = model.loss({ input: images, ...targets([[3, 4], [5], [6, 7, 8]]) })
  loss.backward()
  const missing = model.namedParameters().filter(([, p]) => p.grad === null).map(([n]) => n)
  t.deepEqual(missing, [], 'every parameter gets a gradient')
  const caps = await model.caption(images, { maxLength: 5 })
  t.is(caps.length, 3)
  for (const [c] of caps) {
    t.is(c!.attention.length, c!.tokens.length + 1, 'one attention row per word and the EOS')
    for (const a of c!.attention) {
      t.is(a.length, 16)
      t.true(Math.abs(a.reduce((s, x) => s + x, 0) - 1) < 1e-5, 'weights over the regions sum to 1')
    }
  }
})

test('precomputed features [B, R, D] or [B, D] replace the CNN', async (t) => {
  const model = new ImageCaptioner({ vocabSize: 7, featureSize: 10, hiddenSize: 12, embeddingDim: 4, seed: 3 })
  t.is(model.cnn, null)
  const grid = randn([2, 5, 10], { seed: 4 })
  const flat = randn([2, 10], { seed: 5 })
  t.deepEqual(model.encode(grid).features.shape, [2, 5, 10])
  t.deepEqual(model.encode(flat).features.shape, [2, 1, 10])
  const l = await model.loss({ input: flat, ...targets([[3], [4, 5]]) }).item()
  t.true(Number.isFinite(l))
  t.throws(() => model.encode(randn([2, 5, 9])), { instanceOf: ShapeError, message: /ImageCaptioner.encode: expected features \[B, R, 10\] or \[B, 10\], got \[2, 5, 9\]/ })
  const cnn = new ImageCaptioner({ vocabSize: 7, channels: [4, 4, 4], hiddenSize: 8 })
  t.throws(() => cnn.encode(randn([1, 3, 4, 4])), { instanceOf: ShapeError, message: /at least 8×8 pixels \(3 pooling blocks\), got 4×4/ })
  t.throws(() => cnn.encode(randn([1, 1, 16, 16])), { instanceOf: ShapeError, message: /expected images \[B, 3, H, W\], got \[1, 1, 16, 16\]/ })
  t.throws(() => new ImageCaptioner({ vocabSize: 2 }), { instanceOf: ValueError, message: /vocabSize must be an integer ≥ 3, got 2/ })
})

test('corpus BLEU equals the hand-counted value', (t) => {
  // hyp "a b c d e" vs ref "a b c d f": p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2, no brevity penalty.
  const b = corpusBleu([['a', 'b', 'c', 'd', 'e']], [[['a', 'b', 'c', 'd', 'f']]])
  t.true(Math.abs(b - ((4 / 5) * (3 / 4) * (2 / 3) * (1 / 2)) ** 0.25) < 1e-12)
  t.is(corpusBleu([['x', 'y']], [[['a', 'b']]]), 0)
  t.is(corpusBleu([['a', 'b', 'c', 'd']], [[['q'], ['a', 'b', 'c', 'd']]]), 1, 'the best of several references counts')
  // Brevity: a 4-word hypothesis against a 6-word reference: BP = exp(1 − 6/4).
  const short = corpusBleu([['a', 'b', 'c', 'd']], [[['a', 'b', 'c', 'd', 'e', 'f']]])
  t.true(Math.abs(short - Math.exp(1 - 6 / 4)) < 1e-12)
  t.throws(() => corpusBleu([['a']], []), { instanceOf: ValueError, message: /one reference set per hypothesis/ })
})

test('a reduced shapes task (32×32 images) learns to caption held-out images within the step budget', async (t) => {
  const r = await trainShapes({ dir: join(work, 'shapes-small'), count: 800, size: 32, channels: [16, 32, 48], hiddenSize: 128, targetAccuracy: 0.7, maxSteps: 1500, evalEvery: 100, seed: 3 })
  t.log(`exact caption ${(100 * r.exact).toFixed(1)}% after ${r.steps} steps, ${r.seconds.toFixed(0)} s; e.g. ${r.examples.slice(0, 2).join(' | ')}`)
  t.true(r.exact >= 0.7, `held-out exact caption rate ${r.exact}`)
  t.true(existsSync(r.attentionMap))
})

// ---- CLI -------------------------------------------------------------------------------------

test.serial('train-caption trains, validates, checkpoints and resumes bit-identically; caption writes captions and attention maps', async (t) => {
  const dir = join(work, 'cli-shapes')
  await makeShapes(dir, 120, { size: 32, seed: 5 })
  const common = ['--images', dir, '--captions', join(dir, 'captions.tsv'), '--image-size', '32', '--channels', '8,16', '--hidden', '32', '--embedding', '16', '--batch', '16', '--val-every', '20', '--checkpoint-every', '10']
  const whole = join(work, 'cap-whole')
  const a = await cli(['train-caption', ...common, '--out', whole, '--steps', '30'])
  t.is(a.code, 0, a.stderr)
  t.regex(a.stdout, /validation: loss [\d.]+, exact caption [\d.]+%, BLEU-4 [\d.]+/)
  t.regex(a.stdout, /checkpoint: .*\(step 30\)/)
  t.regex(readFileSync(join(whole, 'loss.svg'), 'utf8'), /^<svg/)
  const parts = join(work, 'cap-parts')
  const b1 = await cli(['train-caption', ...common, '--out', parts, '--steps', '12'])
  t.is(b1.code, 0, b1.stderr)
  const b2 = await cli(['train-caption', '--out', parts, '--resume', '--steps', '30'])
  t.is(b2.code, 0, b2.stderr)
  const ta = await tensorsOf(join(whole, 'checkpoint.safetensors'))
  const tb = await tensorsOf(join(parts, 'checkpoint.safetensors'))
  t.deepEqual([...tb.keys()], [...ta.keys()])
  const differing = [...ta].filter(([k, va]) => va.some((x, i) => !Object.is(x, tb.get(k)![i])))
  t.deepEqual(
    differing.map(([k]) => k),
    [],
    'model (batch-norm statistics included) and optimizer tensors are bit-identical',
  )
  const maps = join(work, 'maps')
  const c = await cli(['caption', '--checkpoint', whole, '--beam', '2', '--attention-map', maps, join(dir, '0000.png'), join(dir, '0001.png')])
  t.is(c.code, 0, c.stderr)
  const lines = c.stdout.trim().split('\n')
  t.is(lines.length, 2)
  t.regex(lines[0]!, /0000\.png\t[a-z ]*$/, 'filename, a tab, then the caption (possibly empty this early)')
  t.true(existsSync(join(maps, '0000.png.attention.png')))
})

test.serial('train-caption and caption: bad input ends with one clear line', async (t) => {
  const dir = join(work, 'bad-shapes')
  await makeShapes(dir, 6, { size: 16, seed: 1 })
  const caps = join(dir, 'bad.tsv')
  writeFileSync(caps, '0000.png\ta red circle\nmissing.png\ta blue square\n')
  assertOneLineError(t, await cli(['train-caption', '--images', dir, '--captions', caps, '--steps', '1', '--out', join(work, 'x')]), /bad\.tsv:2: no image 'missing\.png' in '.*bad-shapes'/)
  writeFileSync(caps, '0000.png a red circle\n')
  assertOneLineError(t, await cli(['train-caption', '--images', dir, '--captions', caps, '--steps', '1', '--out', join(work, 'x')]), /bad\.tsv:1: expected one 'filename<TAB>caption' pair, got a line with no tab/)
  const broken = join(dir, '0001.png')
  writeFileSync(broken, readFileSync(broken).subarray(0, 40))
  writeFileSync(caps, '0000.png\ta red circle\n0001.png\ta blue square\n0002.png\ta green triangle\n')
  assertOneLineError(t, await cli(['train-caption', '--images', dir, '--captions', caps, '--steps', '1', '--image-size', '16', '--channels', '4', '--val-fraction', '0', '--out', join(work, 'x')]), /0001\.png/)
  assertOneLineError(t, await cli(['caption', '--checkpoint', join(work, 'cap-whole'), join(dir, 'nope.png')]), /nope\.png/)
  assertOneLineError(t, await cli(['caption', '--checkpoint', join(work, 'cap-whole'), broken]), /0001\.png/)
  assertOneLineError(t, await cli(['caption', '--checkpoint', join(work, 'cap-whole')]), /give one or more image files/)
  // Features: a file missing one image's tensor.
  const feats = join(work, 'feats.safetensors')
  await saveSafetensors(feats, { '0000.png': randn([4, 6]) })
  writeFileSync(caps, '0000.png\ta red circle\n0002.png\ta blue square\n')
  assertOneLineError(t, await cli(['train-caption', '--images', dir, '--captions', caps, '--features', feats, '--steps', '1', '--val-fraction', '0', '--out', join(work, 'y')]), /has no tensor named '0002\.png'/)
})
