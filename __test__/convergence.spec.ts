/**
 * Convergence within a step budget: models built from the public TypeScript API learn a small
 * task. The budgets and thresholds are set with a margin of about 2× over what the runs reach,
 * and each test prints its figures.
 *
 * Task: next-value prediction of noisy sine waves. Each sequence is
 * sₜ = sin(ω t + φ) + ε, ω ~ U(0.15, 0.35), φ ~ U(0, 2π), ε ~ N(0, 0.05²); the input is s₀ … s_{T−1}
 * and the target at step t is the clean next value sin(ω (t+1) + φ). The model must infer the
 * frequency and phase from the noisy history. Repeating the last input scores an MSE of about
 * 0.03; a good model approaches the noise floor.
 */

import test from 'ava'

import { Adam, GRU, LSTM, Linear, Module, SGD, type Tensor, manualSeed, mse, noGrad, tensor, type RNNBase } from '../index.js'

/** A small deterministic PRNG (mulberry32) for the data. */
function mulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Batches of the noisy-sine task, `[T, B, 1]` inputs and targets. */
function sineTask(seed: number, T: number, noise = 0.05) {
  const rand = mulberry32(seed)
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
  return (B: number) => {
    const x = new Float32Array(T * B)
    const y = new Float32Array(T * B)
    for (let b = 0; b < B; b++) {
      const w = 0.15 + 0.2 * rand()
      const phase = 2 * Math.PI * rand()
      for (let t = 0; t < T; t++) {
        x[t * B + b] = Math.sin(w * t + phase) + noise * gauss()
        y[t * B + b] = Math.sin(w * (t + 1) + phase)
      }
    }
    return { x: tensor(x, [T, B, 1]), y: tensor(y, [T, B, 1]), xs: x, ys: y }
  }
}

/** A recurrent body and a linear head on every step: `[T, B, 1]` → `[T, B, 1]`. */
class Forecaster extends Module {
  readonly rnn: RNNBase
  readonly head: Linear
  constructor(rnn: RNNBase, seed: number) {
    super()
    this.rnn = this.registerModule('rnn', rnn)
    this.head = this.registerModule('head', new Linear(rnn.hiddenSize, 1, { seed }))
  }
  forward(x: Tensor): Tensor {
    return this.head.forward(this.rnn.forward(x).output)
  }
}

interface Trained {
  finalTrainLoss: number
  evalLoss: number
  baseline: number
  seconds: number
}

async function train(model: Forecaster, opt: { step(): void; zeroGrad(): void }, steps: number, T: number, B: number): Promise<Trained> {
  const batches = sineTask(1234, T)
  const t0 = performance.now()
  let ema = 0
  for (let s = 1; s <= steps; s++) {
    const { x, y } = batches(B)
    opt.zeroGrad()
    const loss = mse(model.forward(x), y)
    loss.backward()
    opt.step()
    // One await per step: backpressure, and the loss for the running average.
    const l = await loss.item()
    ema = s === 1 ? l : 0.9 * ema + 0.1 * l
  }
  const seconds = (performance.now() - t0) / 1000
  // Held-out data from another stream, dropout off, no history.
  const test = sineTask(99, T)(64)
  model.eval()
  const evalLoss = await noGrad(() => mse(model.forward(test.x), test.y)).item()
  model.train()
  let baseline = 0
  for (let i = 0; i < test.xs.length; i++) baseline += (test.xs[i]! - test.ys[i]!) ** 2
  baseline /= test.xs.length
  return { finalTrainLoss: ema, evalLoss, baseline, seconds }
}

test.serial('a 2-layer LSTM + Adam learns noisy-sine next-value prediction: held-out MSE < 0.01 within 400 steps (B=16, T=30, H=32)', async (t) => {
  manualSeed(2024)
  const steps = 400
  const model = new Forecaster(new LSTM(1, 32, { numLayers: 2, seed: 7 }), 8)
  const opt = new Adam(model.parameters(), { lr: 0.01 })
  const r = await train(model, opt, steps, 30, 16)
  t.log(
    `LSTM(1, 32, numLayers 2) + Adam(lr 0.01), ${steps} steps in ${r.seconds.toFixed(2)} s (${(steps / r.seconds).toFixed(0)} steps/s): ` +
      `final train loss (EMA) ${r.finalTrainLoss.toFixed(5)}, held-out MSE ${r.evalLoss.toFixed(5)}, repeat-last-input baseline ${r.baseline.toFixed(5)}`,
  )
  t.true(r.evalLoss < 0.01, `held-out MSE ${r.evalLoss} < 0.01`)
  t.true(r.evalLoss < r.baseline / 3, `beats repeating the last input 3× (${r.baseline})`)
})

test.serial('a GRU + SGD with momentum learns the same task: held-out MSE < 0.02 within 400 steps (B=16, T=30, H=32)', async (t) => {
  manualSeed(2025)
  const steps = 400
  const model = new Forecaster(new GRU(1, 32, { seed: 17 }), 18)
  const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 })
  const r = await train(model, opt, steps, 30, 16)
  t.log(
    `GRU(1, 32) + SGD(lr 0.1, momentum 0.9), ${steps} steps in ${r.seconds.toFixed(2)} s (${(steps / r.seconds).toFixed(0)} steps/s): ` +
      `final train loss (EMA) ${r.finalTrainLoss.toFixed(5)}, held-out MSE ${r.evalLoss.toFixed(5)}, repeat-last-input baseline ${r.baseline.toFixed(5)}`,
  )
  t.true(r.evalLoss < 0.02, `held-out MSE ${r.evalLoss} < 0.02`)
  t.true(r.evalLoss < r.baseline / 1.5, `beats repeating the last input (${r.baseline})`)
})
