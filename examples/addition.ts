/**
 * Example: a seq2seq model with attention learns to add, character by character:
 * `"123+456"` → `"579"`. It trains on random pairs, then reports the exact-match accuracy of
 * greedy decoding on held-out pairs it never saw.
 *
 *   npm run example:addition                  # 3-digit numbers, until 99% exact match (or the budget)
 *   ADDITION_DIGITS=2 npm run example:addition
 *
 * `trainAddition` is exported for the test suite, which runs a reduced version.
 */

import { pathToFileURL } from 'node:url'
import { Adam, BOS_ID, CosineWithWarmup, EOS_ID, PAD_ID, Seq2Seq, TokenVocab, clipGradNorm, collatePairs, dispose, manualSeed, tidy } from 'recurrent-nn'

/** Options of {@link trainAddition}. */
export interface AdditionOptions {
  /** Numbers are drawn uniformly from [0, 10^digits) (default 3). */
  digits?: number
  /** Stop once held-out exact match reaches this (default 0.99). */
  targetAccuracy?: number
  /** Give up after this many optimizer steps, where the learning-rate schedule ends (default 5000). */
  maxSteps?: number
  /** Give up after this many seconds (default 1200). */
  maxSeconds?: number
  /** Validate every this many steps (default 250). */
  evalEvery?: number
  hiddenSize?: number
  batchSize?: number
  /** Adam's peak learning rate (default 5e-3). */
  lr?: number
  /** Encoder in both directions (default true). */
  bidirectional?: boolean
  seed?: number
  /** Held-out pairs (default 1000). */
  heldOut?: number
  /** Progress lines go here (default: none). */
  log?: (line: string) => void
}

/** What {@link trainAddition} reached. */
export interface AdditionResult {
  exactMatch: number
  steps: number
  seconds: number
  /** A few held-out examples: source, output, expected. */
  examples: Array<[string, string, string]>
}

function randomPair(rand: () => number, digits: number): [string, string] {
  // Uniform over [0, 10^digits): held-out pairs are a small part of the space, so every one of
  // them tests generalisation to sums never seen (small numbers are as rare as they are).
  const n = () => Math.floor(rand() * 10 ** digits)
  const a = n()
  const b = n()
  return [`${a}+${b}`, String(a + b)]
}

/** A small seeded generator (mulberry32), so that the pairs are the same on every run. */
function generator(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** Trains an attending LSTM seq2seq model on fresh addition pairs until it adds. */
export async function trainAddition(options: AdditionOptions = {}): Promise<AdditionResult> {
  const digits = options.digits ?? 3
  const target = options.targetAccuracy ?? 0.99
  const maxSteps = options.maxSteps ?? 5000
  const maxSeconds = options.maxSeconds ?? 1200
  const evalEvery = options.evalEvery ?? 250
  const batchSize = options.batchSize ?? 64
  const seed = options.seed ?? 1
  const log = options.log ?? (() => {})
  manualSeed(seed)
  const rand = generator(seed)
  // Held-out pairs first; training pairs never repeat one of them.
  const heldOut = new Map<string, string>()
  while (heldOut.size < (options.heldOut ?? 1000)) {
    const [s, t] = randomPair(rand, digits)
    heldOut.set(s, t)
  }
  const vocab = TokenVocab.build(['0123456789+'], { mode: 'char' })
  const model = new Seq2Seq({
    sourceVocabSize: vocab.size,
    targetVocabSize: vocab.size,
    hiddenSize: options.hiddenSize ?? 128,
    embeddingDim: 32,
    attention: 'bahdanau',
    bidirectional: options.bidirectional ?? true,
    seed,
  })
  const lr = options.lr ?? 5e-3
  const opt = new Adam(model.parameters(), { lr })
  // Warmup, then a cosine decay to lr/20 at maxSteps: the late, small steps settle the carries.
  const schedule = new CosineWithWarmup(opt, { warmupSteps: Math.min(100, maxSteps), totalSteps: maxSteps, minLr: lr / 20 })
  const params = model.parameters()
  const evalPairs = [...heldOut].map(([s, t]) => [vocab.encode(s), vocab.encode(t)] as [number[], number[]])
  const maxLength = digits + 3

  const evaluate = async (): Promise<{ exact: number; outputs: number[][] }> => {
    const batch = collatePairs(evalPairs, { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID })
    try {
      const rows = await model.translate(batch.source, batch.sourceLengths, { maxLength })
      const outputs = rows.map((r) => r[0]?.tokens ?? [])
      const exact = outputs.filter((o, i) => o.join(',') === evalPairs[i]![1].join(',')).length / evalPairs.length
      return { exact, outputs }
    } finally {
      dispose(batch)
    }
  }

  const t0 = performance.now()
  const seconds = () => (performance.now() - t0) / 1000
  let step = 0
  let last = { exact: 0, outputs: [] as number[][] }
  while (step < maxSteps && seconds() < maxSeconds) {
    const pairs: Array<[number[], number[]]> = []
    while (pairs.length < batchSize) {
      const [s, t] = randomPair(rand, digits)
      if (!heldOut.has(s)) pairs.push([vocab.encode(s), vocab.encode(t)])
    }
    const loss = tidy(() => {
      const l = model.loss(collatePairs(pairs, { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID }))
      l.backward()
      return l
    })
    clipGradNorm(params, 1).dispose()
    await opt.step()
    schedule.step()
    opt.zeroGrad()
    step++
    if (step % evalEvery === 0 || step === maxSteps) {
      const l = await loss.item()
      last = await evaluate()
      log(`step ${String(step).padStart(5)}  ${seconds().toFixed(0).padStart(4)} s  loss ${l.toFixed(4)}  held-out exact match ${(100 * last.exact).toFixed(1)}%`)
      if (last.exact >= target) {
        loss.dispose()
        break
      }
    }
    loss.dispose()
  }
  const examples = evalPairs.slice(0, 5).map(([s, t], i) => [vocab.decode(s), vocab.decode(last.outputs[i] ?? []), vocab.decode(t)] as [string, string, string])
  return { exactMatch: last.exact, steps: step, seconds: seconds(), examples }
}

const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const digits = Number(process.env.ADDITION_DIGITS ?? 3)
  console.log(`seq2seq with Bahdanau attention learns ${digits}-digit addition (character level)`)
  const r = await trainAddition({ digits, log: (l) => console.log(l) })
  for (const [s, o, t] of r.examples) console.log(`  ${s} → ${o}${o === t ? '' : `   (expected ${t})`}`)
  console.log(`held-out exact match ${(100 * r.exactMatch).toFixed(2)}% after ${r.steps} steps, ${(r.seconds / 60).toFixed(1)} minutes`)
  if (r.exactMatch < 0.99) process.exitCode = 1
}
