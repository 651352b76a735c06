/**
 * float64 modules: the `dtype` option of the nn modules, `Module.to('float64' | 'float32')`
 * (in place, keeping parameter identity and values), `loadStateDict` across float dtypes, and
 * gradient checks by central differences through the public API in float64 (a 2-layer
 * bidirectional LSTM with lengths, and a Linear → loss chain), where differences are accurate
 * enough for a relative tolerance of 1e-6.
 */

import test from 'ava'
import type { ExecutionContext } from 'ava'

import {
  DTypeError,
  Embedding,
  GRU,
  LSTM,
  Linear,
  RNN,
  RecurrentLM,
  Sequential,
  Tanh,
  type Tensor,
  crossEntropy,
  dispose,
  mse,
  noGrad,
  randn,
  tensor,
  tidy,
} from '../index.js'

const F64 = { dtype: 'float64' as const }

function values(t: Tensor): number[] {
  return Array.from(t.dataSync())
}

/** Up to `m` indices spread over [0, n), both ends included. */
function spread(n: number, m: number): number[] {
  if (n <= m) return Array.from({ length: n }, (_, i) => i)
  return Array.from({ length: m }, (_, k) => Math.round((k * (n - 1)) / (m - 1)))
}

/**
 * Compares the gradients `backward()` gives for `loss()` with central differences
 * (f(p + ε) − f(p − ε)) / 2ε over `perTensor` entries of every tensor in `wrt` (all float64
 * leaves), each within `rel` of the larger magnitude plus a 1e-9 floor for zero gradients.
 * Returns the analytic gradients.
 */
function gradCheck(t: ExecutionContext, wrt: Record<string, Tensor>, loss: () => Tensor, perTensor = 6, rel = 1e-6, eps = 1e-6): Record<string, Float64Array> {
  for (const p of Object.values(wrt)) p.zeroGrad()
  tidy(() => loss().backward())
  const analytic: Record<string, Float64Array> = {}
  for (const [name, p] of Object.entries(wrt)) {
    const g = p.grad
    t.truthy(g, `${name} has a gradient`)
    analytic[name] = Float64Array.from(g!.dataSync())
    g!.dispose()
  }
  const f = () => tidy(() => noGrad(loss).itemSync())
  let checked = 0
  let worst = 0
  for (const [name, p] of Object.entries(wrt)) {
    const base = Float64Array.from(p.dataSync())
    const at = (v: Float64Array) => {
      const next = tensor(v, p.shape, F64)
      p.assign(next)
      next.dispose()
    }
    for (const i of spread(p.size, perTensor)) {
      const v = Float64Array.from(base)
      v[i] = base[i]! + eps
      at(v)
      const up = f()
      v[i] = base[i]! - eps
      at(v)
      const down = f()
      const num = (up - down) / (2 * eps)
      const ana = analytic[name]![i]!
      const err = Math.abs(num - ana)
      worst = Math.max(worst, err / (Math.max(Math.abs(ana), Math.abs(num)) + 1e-9))
      t.true(err <= rel * Math.max(Math.abs(ana), Math.abs(num)) + 1e-9, `${name}[${i}]: backward ${ana}, central difference ${num}`)
      checked++
    }
    at(base)
  }
  t.log(`${checked} entries checked, worst relative difference ${worst.toExponential(2)}`)
  return analytic
}

// ---- the dtype option -------------------------------------------------------------------------

test('the dtype option makes float64 parameters; outputs and default zero states follow the input', (t) => {
  const x = randn([4, 2, 3], { ...F64, seed: 1 })
  for (const m of [new LSTM(3, 5, { dtype: 'float64' }), new GRU(3, 5, { dtype: 'float64', bidirectional: true }), new RNN(3, 5, { dtype: 'float64', numLayers: 2 })]) {
    t.true(m.parameters().every((p) => p.dtype === 'float64'), m.constructor.name)
    const r = m.forward(x) as { output: Tensor; hN: Tensor; cN?: Tensor }
    t.is(r.output.dtype, 'float64')
    t.is(r.hN.dtype, 'float64')
    if (r.cN) t.is(r.cN.dtype, 'float64')
    t.true(values(r.output).every(Number.isFinite))
    // A float32 input is refused up front, naming both dtypes.
    const e = t.throws(() => m.forward(randn([4, 2, 3], { seed: 2 })), { instanceOf: DTypeError })
    t.regex(e!.message, new RegExp(`${m.constructor.name}.forward.*float64.*got float32`))
  }
  const lin = new Linear(3, 2, { dtype: 'float64' })
  t.deepEqual(lin.parameters().map((p) => p.dtype), ['float64', 'float64'])
  t.is(lin.forward(x).dtype, 'float64')
  const emb = new Embedding(7, 3, { dtype: 'float64' })
  t.is(emb.weight.dtype, 'float64')
  t.is(emb.forward(tensor([1, 6], [2], { dtype: 'int32' })).dtype, 'float64')
  t.is(new LSTM(3, 5).parameters()[0]!.dtype, 'float32', 'float32 stays the default')
  for (const make of [() => new LSTM(3, 5, { dtype: 'int32' as 'float64' }), () => new Linear(3, 2, { dtype: 'float16' as 'float64' }), () => new Embedding(3, 2, { dtype: 'int32' as 'float64' })]) {
    t.throws(make, { instanceOf: DTypeError, message: /dtype must be 'float32' or 'float64', got '(int32|float16)'/ })
  }
})

// ---- to('float64') / to('float32') -----------------------------------------------------------

test("to('float64') converts in place: same tensors, exact values, gradients and requiresGrad kept; to('float32') rounds back", (t) => {
  const model = new LSTM(2, 3, { numLayers: 2, seed: 3 })
  const params = model.parameters()
  const dict = model.stateDict()
  const w = model.layerWeights(1).wHh
  const before = params.map(values)
  // A gradient to carry along.
  const y = model.forward(randn([3, 2, 2], { seed: 4 })).output
  y.sum().backward()
  const grads = params.map((p) => values(p.grad!))

  t.is(model.to('float64'), model)
  t.true(model.parameters().every((p, i) => p === params[i]), 'the same Tensor objects')
  t.is(model.layerWeights(1).wHh, w)
  t.true(Object.values(model.stateDict()).every((p, i) => p === Object.values(dict)[i]))
  t.true(params.every((p) => p.dtype === 'float64' && p.requiresGrad && p.isLeaf))
  t.deepEqual(params.map(values), before, 'float32 → float64 is exact')
  t.deepEqual(params.map((p) => values(p.grad!)), grads)
  t.true(params.every((p) => p.grad!.dtype === 'float64'))
  t.is(model.forward(randn([3, 2, 2], { ...F64, seed: 4 })).output.dtype, 'float64')

  // Values that float32 cannot hold round to nearest on the way back.
  const third = tensor(Float64Array.from({ length: params[0]!.size }, (_, i) => (i + 1) / 3), params[0]!.shape, F64)
  params[0]!.assign(third)
  model.zeroGrad()
  t.is(model.float(), model)
  t.true(params.every((p) => p.dtype === 'float32'))
  t.deepEqual(values(params[0]!), values(third).map(Math.fround))
  t.deepEqual(params.slice(1).map(values), before.slice(1))
  t.is(model.double().parameters()[0]!.dtype, 'float64')
  t.throws(() => model.to('int32' as 'float64'), { instanceOf: DTypeError, message: /LSTM\.to.*float32 or float64, got 'int32'/ })
})

test("to('float64') converts a whole model (RecurrentLM): its forward runs in float64 from int32 tokens", (t) => {
  const lm = new RecurrentLM({ vocabSize: 9, hiddenSize: 4, numLayers: 2, seed: 5 })
  const ids = tensor([[1, 2], [3, 4], [5, 6]], undefined, { dtype: 'int32' })
  const ref = noGrad(() => lm.forward(ids))
  lm.to('float64')
  t.true(lm.parameters().every((p) => p.dtype === 'float64'))
  const r = noGrad(() => lm.forward(ids))
  t.is(r.output.dtype, 'float64')
  t.deepEqual(r.state.map((s) => s.dtype), ['float64', 'float64'])
  // Same weights, computed in float64: close to the float32 result.
  const a = values(r.output)
  const b = values(ref.output)
  t.true(a.every((v, i) => Math.abs(v - b[i]!) < 1e-5))
  dispose([ref, r, ids])
})

// ---- loadStateDict across dtypes --------------------------------------------------------------

test('loadStateDict copies into each parameter’s dtype (as PyTorch) and refuses int32 with a DTypeError', (t) => {
  const src64 = new Linear(3, 2, { dtype: 'float64', seed: 6 })
  const third = tensor(Float64Array.from({ length: 6 }, (_, i) => (i + 1) / 3), [2, 3], F64)
  src64.weight.assign(third)
  const dst32 = new Linear(3, 2, { seed: 7 })
  const w32 = dst32.weight
  dst32.loadStateDict(src64.stateDict())
  t.is(dst32.weight, w32)
  t.is(w32.dtype, 'float32')
  t.deepEqual(values(w32), values(third).map(Math.fround), 'float64 → float32 rounds to nearest')

  const dst64 = new Linear(3, 2, { dtype: 'float64', seed: 8 })
  dst64.loadStateDict(dst32.stateDict())
  t.is(dst64.weight.dtype, 'float64')
  t.deepEqual(values(dst64.weight), values(w32), 'float32 → float64 is exact')
  t.deepEqual(values(dst64.bias!), values(dst32.bias!))

  const before = values(dst64.weight)
  const e = t.throws(() => dst64.loadStateDict({ weight: tensor(new Int32Array(6), [2, 3]), bias: dst32.bias! }), { instanceOf: DTypeError })
  t.is(e!.message, "loadStateDict: 'weight' expected dtype float64, got int32")
  t.deepEqual(values(dst64.weight), before, 'nothing loaded')
})

// ---- gradient checks --------------------------------------------------------------------------

test('gradient check (float64, central differences): 2-layer bidirectional LSTM with lengths, given and default states', (t) => {
  const T = 5
  const B = 3
  const I = 3
  const H = 4
  const lstm = new LSTM(I, H, { numLayers: 2, bidirectional: true, dtype: 'float64', seed: 9 })
  const leaf = (shape: number[], seed: number, k = 1) => {
    const v = randn(shape, { ...F64, seed }).scale(k).detach()
    v.requiresGrad = true
    return v
  }
  const x = leaf([T, B, I], 10)
  const h0 = leaf([4, B, H], 11, 0.5)
  const c0 = leaf([4, B, H], 12, 0.5)
  const lengths = [5, 2, 4]
  const wo = randn([T, B, 2 * H], { ...F64, seed: 13 })
  const wh = randn([4, B, H], { ...F64, seed: 14 })
  const wc = randn([4, B, H], { ...F64, seed: 15 })
  const loss = () => {
    const a = lstm.forward(x, { h0, c0, lengths })
    const b = lstm.forward(x, { lengths: tensor(lengths, [B], { dtype: 'int32' }) })
    return a.output.mul(wo).sum().add(a.hN.mul(wh).sum()).add(a.cN.mul(wc).sum()).add(b.output.square().sum()).add(b.cN.mul(wc).sum())
  }
  const wrt: Record<string, Tensor> = { ...lstm.stateDict(), x, h0, c0 }
  t.is(Object.keys(wrt).length, 19)
  const g = gradCheck(t, wrt, loss)
  // Steps past a row's length do not reach the loss: their input gradient is exactly zero.
  const gx = g['x']!
  for (let s = 0; s < T; s++) {
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < I; i++) {
        const v = gx[(s * B + b) * I + i]!
        if (s >= lengths[b]!) t.is(v, 0, `x[${s}, ${b}, ${i}]`)
        else if (i === 0) t.not(v, 0, `x[${s}, ${b}, ${i}]`)
      }
    }
  }
})

test('gradient check (float64, central differences): Linear → tanh → Linear → crossEntropy and mse', (t) => {
  const net = new Sequential(new Linear(4, 5, { dtype: 'float64', seed: 16 }), new Tanh(), new Linear(5, 3, { dtype: 'float64', seed: 17 }))
  const x = randn([2, 3, 4], { ...F64, seed: 18 }).detach()
  x.requiresGrad = true
  const targets = tensor([[0, 2, 1], [1, 1, 0]], undefined, { dtype: 'int32' })
  const goal = randn([2, 3, 3], { ...F64, seed: 19 })
  const loss = () => {
    const logits = net.forward(x)
    return crossEntropy(logits, targets).add(mse(logits, goal, { reduction: 'sum' }).scale(0.1))
  }
  gradCheck(t, { ...net.stateDict(), x }, loss, 20)
})
