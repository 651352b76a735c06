/**
 * Sine-wave forecasting with a 2-layer LSTM, trained from TypeScript at native speed.
 *
 *   npm run demo                 # about 30 s of training
 *   npm run demo -- 10           # about 10 s
 *
 * Each training sequence is a noisy sine wave sₜ = sin(ω t + φ) + ε with a random frequency
 * ω ∈ [0.1, 0.4] and phase φ, ε ~ N(0, 0.05²). The model reads s₀ … s_{T−1} and predicts the
 * clean next value at every step, so it has to infer ω and φ from the noisy history.
 *
 * At the end it prints one-step predictions against the truth on a held-out wave, then lets
 * the model run free: it feeds its own predictions back in, carrying the LSTM state (h, c)
 * from step to step, and compares the generated wave with the true continuation.
 *
 * Shapes: T time steps, B batch, H hidden size; inputs and targets are [T, B, 1].
 */

import { Adam, LSTM, Linear, Module, type Tensor, manualSeed, mse, noGrad, tensor } from 'recurrent-nn'

const T = 50
const B = 32
const H = 64
const LR = 0.005
const SECONDS = Number(process.argv[2] ?? process.env.DEMO_SECONDS ?? 30)
const MAX_STEPS = 20000

/** mulberry32: a small seeded PRNG, so the demo prints the same data each run. */
function mulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = mulberry32(7)
const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())

interface Wave {
  w: number
  phase: number
}
const randomWave = (): Wave => ({ w: 0.1 + 0.3 * rand(), phase: 2 * Math.PI * rand() })
const clean = (v: Wave, t: number) => Math.sin(v.w * t + v.phase)
const noisy = (v: Wave, t: number) => clean(v, t) + 0.05 * gauss()

/** A batch: inputs [T, B, 1] (noisy), targets [T, B, 1] (clean next values). */
function batch(n: number): { x: Tensor; y: Tensor } {
  const x = new Float32Array(T * n)
  const y = new Float32Array(T * n)
  for (let b = 0; b < n; b++) {
    const v = randomWave()
    for (let t = 0; t < T; t++) {
      x[t * n + b] = noisy(v, t)
      y[t * n + b] = clean(v, t + 1)
    }
  }
  return { x: tensor(x, [T, n, 1]), y: tensor(y, [T, n, 1]) }
}

/** LSTM body and a linear read-out on every step. */
class Forecaster extends Module {
  readonly lstm = this.registerModule('lstm', new LSTM(1, H, { numLayers: 2, seed: 1 }))
  readonly head = this.registerModule('head', new Linear(H, 1, { seed: 2 }))

  /** x [T, B, 1] → predictions [T, B, 1], and the final LSTM state to continue from. */
  forward(x: Tensor, state: { h0?: Tensor; c0?: Tensor } = {}) {
    const { output, hN, cN } = this.lstm.forward(x, state)
    return { y: this.head.forward(output), hN, cN }
  }
}

async function main() {
  manualSeed(0)
  const model = new Forecaster()
  const opt = new Adam(model.parameters(), { lr: LR })
  console.log(`${model}`)
  console.log(`${model.numParameters()} parameters; T=${T}, B=${B}, Adam lr=${LR}; training for ~${SECONDS} s\n`)
  console.log('  step      loss   steps/s')

  const t0 = performance.now()
  let last = t0
  let lastStep = 0
  let ema = 0
  let step = 0
  while (step < MAX_STEPS && performance.now() - t0 < SECONDS * 1000) {
    step++
    const { x, y } = batch(B)
    opt.zeroGrad()
    const loss = mse(model.forward(x).y, y)
    loss.backward()
    opt.step()
    const l = await loss.item() // one await per step keeps the event loop free
    ema = step === 1 ? l : 0.95 * ema + 0.05 * l
    if (step % 200 === 0) {
      const now = performance.now()
      const rate = ((step - lastStep) * 1000) / (now - last)
      console.log(`${String(step).padStart(6)}  ${ema.toFixed(5)}  ${rate.toFixed(1).padStart(8)}`)
      last = now
      lastStep = step
    }
  }
  const secs = (performance.now() - t0) / 1000
  console.log(`\n${step} steps in ${secs.toFixed(1)} s (${(step / secs).toFixed(1)} steps/s), final loss ${ema.toFixed(5)}`)

  // ---- held-out wave: one-step predictions, then free running -------------------------------
  model.eval()
  const v = randomWave()
  const xs = Array.from({ length: T }, (_, t) => noisy(v, t))
  const { y, hN, cN } = noGrad(() => model.forward(tensor(xs, [T, 1, 1])))
  const pred = Array.from(await y.data())
  console.log(`\nheld-out wave ω=${v.w.toFixed(3)}: one-step predictions (last 8 steps)`)
  console.log('     t     input      pred     truth')
  for (let t = T - 8; t < T; t++) {
    console.log(`${String(t).padStart(6)}  ${xs[t]!.toFixed(4).padStart(8)}  ${pred[t]!.toFixed(4).padStart(8)}  ${clean(v, t + 1).toFixed(4).padStart(8)}`)
  }

  // Free running: feed each prediction back as the next input, one step at a time.
  console.log('\nfree running from its own predictions (state carried across calls)')
  console.log('     t       gen     truth')
  let state = { h0: hN, c0: cN }
  let next = pred[T - 1]! // the model's value for time T
  let se = 0
  const horizon = 20
  for (let k = 0; k < horizon; k++) {
    const t = T + k
    const truth = clean(v, t)
    se += (next - truth) ** 2
    if (k < 10 || k === horizon - 1) console.log(`${String(t).padStart(6)}  ${next.toFixed(4).padStart(8)}  ${truth.toFixed(4).padStart(8)}`)
    else if (k === 10) console.log('   ...')
    const out = noGrad(() => model.forward(tensor([next], [1, 1, 1]), state))
    state = { h0: out.hN, c0: out.cN }
    next = (await out.y.data())[0]!
  }
  console.log(`free-running RMSE over ${horizon} steps: ${Math.sqrt(se / horizon).toFixed(4)}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
