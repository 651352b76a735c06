/**
 * The training loops: `fit` over batches and `fitTBPTT` over a token stream. Loss goes down,
 * events and callbacks arrive in order with sane metrics, an AbortSignal stops a run and leaves
 * the model usable, early stopping triggers, and the event loop keeps ticking during a fit.
 */

import test from 'ava'
import { monitorEventLoopDelay } from 'node:perf_hooks'

import {
  Adam,
  DataLoader,
  LSTM,
  Linear,
  Module,
  RecurrentLM,
  SGD,
  type Tensor,
  arrayStream,
  crossEntropy,
  evaluate,
  fit,
  fitTBPTT,
  manualSeed,
  noGrad,
  reshape,
  slice,
  tensor,
  type FitEvent,
} from '../index.js'

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

const T = 10

/** Sequences of T values in U(−1, 1); the class is 1 when their sum is positive. */
function dataset(n: number, seed: number) {
  const rand = mulberry32(seed)
  return Array.from({ length: n }, () => {
    const xs = Array.from({ length: T }, () => 2 * rand() - 1)
    return { xs, label: xs.reduce((a, b) => a + b, 0) > 0 ? 1 : 0 }
  })
}
type Example = ReturnType<typeof dataset>[number]

function collate(items: Example[]) {
  const B = items.length
  const x = new Float32Array(T * B)
  items.forEach((e, b) => e.xs.forEach((v, t) => (x[t * B + b] = v)))
  return { x: tensor(x, [T, B, 1]), y: tensor(Int32Array.from(items.map((e) => e.label))) }
}

/** LSTM over the sequence, a linear head on the last step: `[T, B, 1]` → logits `[B, 2]`. */
class Classifier extends Module {
  lstm = this.registerModule('lstm', new LSTM(1, 16))
  head = this.registerModule('head', new Linear(16, 2))
  forward(x: Tensor): Tensor {
    const [t, b] = x.shape as [number, number]
    const { output } = this.lstm.forward(x)
    return this.head.forward(reshape(slice(output, 0, t - 1, 1), [b, 16]))
  }
}

function setup(seed = 1) {
  manualSeed(seed)
  const model = new Classifier()
  const train = new DataLoader(dataset(256, seed), { batchSize: 32, shuffle: true, seed, collate })
  const val = [...new DataLoader(dataset(128, seed + 100), { batchSize: 64, collate }).epoch(0)]
  return { model, train, val }
}

const ce = (o: Tensor, y: Tensor) => crossEntropy(o, y)

test('fit: the loss of a small classifier decreases and validation accuracy rises', async (t) => {
  const { model, train, val } = setup(1)
  const before = await evaluate(model, val, ce)
  const result = await fit(model, { data: train, loss: ce, optimizer: new Adam(model.parameters(), { lr: 0.02 }), epochs: 6, validation: val })
  const h = result.history
  t.log(h.map((e) => `epoch ${e.epoch}: train ${e.train.loss.toFixed(3)}, val ${e.validation!.loss.toFixed(3)} acc ${e.validation!.accuracy!.toFixed(3)}`).join('\n'))
  t.is(result.reason, 'completed')
  t.is(result.epochs, 6)
  t.is(result.steps, 6 * 8)
  t.true(h[5]!.train.loss < 0.6 * h[0]!.train.loss, 'the training loss did not decrease enough')
  t.true(h[5]!.validation!.loss < 0.6 * before.loss)
  t.true(h[5]!.validation!.accuracy! > 0.85, `validation accuracy ${h[5]!.validation!.accuracy}`)
  t.true(before.accuracy! < 0.75)
})

test('fitTBPTT: a char LSTM on a periodic stream learns it', async (t) => {
  manualSeed(2)
  const pattern = 'the quick brown fox '
  const N = 6000
  const toks = Int32Array.from({ length: N }, (_, i) => pattern.charCodeAt(i % pattern.length) - 32)
  const model = new RecurrentLM({ vocabSize: 96, hiddenSize: 48 })
  const first: number[] = []
  const result = await fitTBPTT(model, {
    onStep: (ev) => void (ev.step <= 2 && first.push(ev.loss)),
    stream: arrayStream(toks, { batchSize: 8, seqLen: 25 }),
    k2: 50,
    optimizer: new Adam(model.parameters(), { lr: 0.01 }),
    epochs: 3,
    clipGradNorm: 1,
    validation: arrayStream(toks.slice(0, 2000), { batchSize: 2, seqLen: 100 }),
  })
  const h = result.history
  t.log(h.map((e) => `epoch ${e.epoch}: train ${e.train.loss.toFixed(3)} ppl ${e.train.perplexity!.toFixed(2)}, val acc ${e.validation!.accuracy!.toFixed(3)}, ${e.train.tokensPerSec.toFixed(0)} tok/s`).join('\n'))
  t.true(first[0]! > 4, `the first loss ${first[0]} should be about ln 96 = 4.56`)
  t.true(h[2]!.train.loss < 0.1 * h[0]!.train.loss)
  t.true(h[2]!.validation!.loss < 0.3, `validation loss ${h[2]!.validation!.loss}`)
  t.true(h[2]!.validation!.accuracy! > 0.9)
  t.is(h[2]!.validation!.perplexity, Math.exp(h[2]!.validation!.loss))
})

test('events and callbacks arrive in order with sane metrics', async (t) => {
  const { model, train, val } = setup(3)
  const fromCallbacks: string[] = []
  const run = fit(model, {
    data: train,
    loss: ce,
    optimizer: new SGD(model.parameters(), { lr: 0.1 }),
    epochs: 2,
    validation: val,
    trainAccuracy: true,
    onStep: (ev) => void fromCallbacks.push(`step ${ev.step}`),
    onValidation: (ev) => void fromCallbacks.push(`validation ${ev.epoch}`),
    onEpochEnd: async (ev) => {
      await new Promise((r) => setTimeout(r, 5)) // async callbacks are awaited
      fromCallbacks.push(`epochEnd ${ev.epoch}`)
    },
  })
  const events: FitEvent[] = []
  for await (const ev of run) events.push(ev)
  const result = await run
  const names = events.map((e) => (e.type === 'step' ? `step ${e.step}` : e.type === 'end' ? 'end' : e.type === 'checkpoint' ? 'checkpoint' : `${e.type} ${e.epoch}`))
  const expected = [
    ...Array.from({ length: 8 }, (_, i) => `step ${i + 1}`),
    'validation 0',
    'epochEnd 0',
    ...Array.from({ length: 8 }, (_, i) => `step ${i + 9}`),
    'validation 1',
    'epochEnd 1',
    'end',
  ]
  t.deepEqual(names, expected)
  t.deepEqual(fromCallbacks, expected.slice(0, -1))
  const steps = events.filter((e) => e.type === 'step')
  let lastElapsed = 0
  for (const [i, s] of steps.entries()) {
    t.is(s.epoch, i < 8 ? 0 : 1)
    t.is(s.batch, i % 8)
    t.is(s.count, 32)
    t.true(Number.isFinite(s.loss) && s.loss > 0 && s.loss < 5, `loss ${s.loss}`)
    t.is(s.perplexity, Math.exp(s.loss))
    t.true(s.accuracy! >= 0 && s.accuracy! <= 1)
    t.true(s.tokensPerSec > 0 && Number.isFinite(s.tokensPerSec))
    t.true(s.elapsedMs >= lastElapsed)
    t.is(s.lr, 0.1)
    lastElapsed = s.elapsedMs
  }
  const ep0 = events.find((e) => e.type === 'epochEnd')!
  // The epoch's loss is the mean of its steps' losses (equal batch sizes).
  const mean = steps.slice(0, 8).reduce((a, s) => a + s.loss, 0) / 8
  t.true(Math.abs(ep0.train.loss - mean) < 1e-9)
  t.is(ep0.train.count, 256)
  t.true(ep0.validation!.count === 128 && ep0.validation!.accuracy! >= 0)
  t.is(events.at(-1)!.type, 'end')
  t.deepEqual((events.at(-1) as { result: unknown }).result, result)
})

test('an AbortSignal stops the run between steps; the model still works and trains', async (t) => {
  const { model, train, val } = setup(4)
  const opt = new Adam(model.parameters(), { lr: 0.01 })
  const ac = new AbortController()
  const result = await fit(model, {
    data: train,
    loss: ce,
    optimizer: opt,
    epochs: 50,
    signal: ac.signal,
    onStep: (ev) => {
      if (ev.step === 5) ac.abort()
    },
  })
  t.is(result.reason, 'aborted')
  t.true(result.aborted)
  // Step 5's event fires after step 6 was enqueued, so 6 steps ran; never more than 7.
  t.true(result.steps >= 5 && result.steps <= 7, `${result.steps} steps`)
  t.is(result.epochs, 0)
  t.true(model.training)
  // The model runs forward...
  const y = noGrad(() => model.forward(val[0]!.x))
  t.deepEqual(y.shape, [64, 2])
  t.true(Array.from(await y.data()).every(Number.isFinite))
  // ... and keeps training with the same optimizer.
  const w0 = Array.from(await model.head.weight.data())
  const again = await fit(model, { data: train, loss: ce, optimizer: opt, epochs: 1 })
  t.is(again.reason, 'completed')
  t.is(again.steps, 8)
  t.notDeepEqual(Array.from(await model.head.weight.data()), w0)
  // An already-aborted signal runs no step.
  const none = await fit(model, { data: train, loss: ce, optimizer: opt, epochs: 1, signal: AbortSignal.abort() })
  t.is(none.steps, 0)
  t.true(none.aborted)
})

test('early stopping: stops after `patience` epochs without improvement, and can restore the best weights', async (t) => {
  {
    // lr = 0: the validation loss never improves after the first epoch.
    const { model, train, val } = setup(5)
    const result = await fit(model, {
      data: train,
      loss: ce,
      optimizer: new SGD(model.parameters(), { lr: 0 }),
      epochs: 20,
      validation: val,
      earlyStopping: { patience: 2 },
    })
    t.is(result.reason, 'earlyStopping')
    t.true(result.stoppedEarly)
    t.is(result.epochs, 3)
    t.deepEqual(result.best, { monitor: 'val_loss', value: result.history[0]!.validation!.loss, epoch: 0 })
  }
  {
    // Monitoring the validation loss in 'max' mode on a model that learns: epoch 0 is "best".
    const { model, train, val } = setup(6)
    let atBest: number[] = []
    const result = await fit(model, {
      data: train,
      loss: ce,
      optimizer: new Adam(model.parameters(), { lr: 0.02 }),
      epochs: 20,
      validation: val,
      earlyStopping: { monitor: 'val_loss', mode: 'max', patience: 3, restoreBest: true },
      onEpochEnd: async (ev) => {
        if (ev.epoch === 0) atBest = Array.from(await model.head.weight.data())
      },
    })
    t.is(result.reason, 'earlyStopping')
    t.is(result.epochs, 4)
    t.is(result.best!.epoch, 0)
    t.deepEqual(Array.from(await model.head.weight.data()), atBest)
  }
  t.throws(() => fit(new Classifier(), { data: [], loss: ce, optimizer: new SGD(new Classifier().parameters(), { lr: 0 }), earlyStopping: { monitor: 'val_loss', patience: 1 } }), {
    message: /needs validation data/,
  })
})

test.serial('the event loop keeps ticking during fit (p99 delay < 50 ms)', async (t) => {
  manualSeed(7)
  const model = new RecurrentLM({ vocabSize: 64, hiddenSize: 128 })
  const toks = Int32Array.from({ length: 200_000 }, (_, i) => (i * 31 + (i >> 5)) % 64)
  const stream = arrayStream(toks, { batchSize: 32, seqLen: 64 })
  const h = monitorEventLoopDelay({ resolution: 5 })
  let ticks = 0
  const timer = setInterval(() => ticks++, 5)
  h.enable()
  const start = performance.now()
  // Run for a fixed wall time, not a fixed step count: as the engine gets faster a fixed count
  // would finish before the loop had a chance to stall, and the test could no longer fail.
  const stop = new AbortController()
  const result = await fitTBPTT(model, {
    stream,
    optimizer: new Adam(model.parameters(), { lr: 1e-3 }),
    epochs: 1000,
    maxSteps: 100_000,
    signal: stop.signal,
    onStep: () => {
      if (performance.now() - start > 1500) stop.abort()
    },
  })
  const elapsed = performance.now() - start
  h.disable()
  clearInterval(timer)
  const p99 = h.percentile(99) / 1e6
  t.log(`${result.steps} steps in ${elapsed.toFixed(0)} ms; p99 event-loop delay ${p99.toFixed(2)} ms, max ${(h.max / 1e6).toFixed(2)} ms; ${ticks} timer ticks`)
  t.is(result.reason, 'aborted')
  t.true(result.steps >= 10, `only ${result.steps} steps`)
  t.true(elapsed > 500, `the fit took only ${elapsed.toFixed(0)} ms: the test could not have failed`)
  t.true(ticks > (elapsed / 5) * 0.4, `only ${ticks} ticks of 5 ms in ${elapsed.toFixed(0)} ms`)
  t.true(p99 < 50, `p99 event-loop delay ${p99.toFixed(2)} ms`)
})
