// The README's quick start, runnable: npm run example:quickstart (or, installed: node node_modules/recurrent-nn/dist/examples/quickstart.js)
import { LSTM, Linear, Adam, mse, randn } from 'recurrent-nn'

const lstm = new LSTM(8, 64, { numLayers: 2 }) // input 8, hidden 64
const head = new Linear(64, 1)
const opt = new Adam([...lstm.parameters(), ...head.parameters()], { lr: 1e-2 })
const x = randn([30, 16, 8], { seed: 1 }) // [T, B, I]
const y = x.sum(2, true).tanh() // a target to learn: [T, B, 1]

for (let step = 0; step < 200; step++) {
  const { output } = lstm.forward(x) // output [T, B, H]
  const loss = mse(head.forward(output), y)
  opt.zeroGrad()
  loss.backward()
  await opt.step() // backpressure: JS stays ≤ 2 steps ahead
  if (step % 50 === 0 || step === 199) console.log(step, await loss.item())
}
