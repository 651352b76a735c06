import test from 'ava'

import * as r from '../index.js'
import { ops, type Tensor } from '../index.js'

const close = (t: { true: (v: boolean, m?: string) => void }, got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-5) => {
  t.true(got.length === want.length, `length ${got.length} vs ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    t.true(Math.abs(got[i]! - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!)), `index ${i}: got ${got[i]}, want ${want[i]}`)
  }
}

// ---- factories and reads ----------------------------------------------------------------------

test('tensor() infers shape and dtype from nested arrays and typed arrays', async (t) => {
  const a = r.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ])
  t.deepEqual(a.shape, [2, 3])
  t.is(a.dtype, 'float32')
  t.is(a.device, 'cpu')
  t.is(a.size, 6)
  t.is(a.rank, 2)
  t.deepEqual(Array.from(await a.data()), [1, 2, 3, 4, 5, 6])

  const f64 = r.tensor(new Float64Array([0.1, 0.2]))
  t.is(f64.dtype, 'float64')
  t.deepEqual(f64.shape, [2])
  const d = await f64.data()
  t.true(d instanceof Float64Array)
  t.is(d[0], 0.1)

  const i32 = r.tensor(new Int32Array([1, 2, 3, 4]), [2, 2])
  t.is(i32.dtype, 'int32')
  t.deepEqual(i32.shape, [2, 2])
  t.true(i32.dataSync() instanceof Int32Array)

  const asInt = r.tensor([1, 2, 3], undefined, { dtype: 'int32' })
  t.is(asInt.dtype, 'int32')
  t.deepEqual(Array.from(asInt.dataSync()), [1, 2, 3])

  const scalar = r.tensor(2.5)
  t.deepEqual(scalar.shape, [])
  t.is(await scalar.item(), 2.5)
  t.is(scalar.itemSync(), 2.5)
})

test('tensor() with an explicit shape and array()', async (t) => {
  const a = r.tensor([1, 2, 3, 4, 5, 6], [3, 2])
  t.deepEqual(a.shape, [3, 2])
  t.deepEqual(await a.array(), [
    [1, 2],
    [3, 4],
    [5, 6],
  ])
  t.deepEqual(a.arraySync(), [
    [1, 2],
    [3, 4],
    [5, 6],
  ])
  t.is(await r.tensor(7).array(), 7)
})

test('zeros, ones, full and the *Like factories', async (t) => {
  t.deepEqual(Array.from(await r.zeros([2, 2]).data()), [0, 0, 0, 0])
  t.deepEqual(Array.from(await r.ones(3).data()), [1, 1, 1])
  const f = r.full([2], 4.5, { dtype: 'float64' })
  t.is(f.dtype, 'float64')
  t.deepEqual(Array.from(await f.data()), [4.5, 4.5])
  const z = r.zeros([2], { dtype: 'int32' })
  t.true((await z.data()) instanceof Int32Array)
  const like = r.onesLike(f)
  t.deepEqual(like.shape, [2])
  t.is(like.dtype, 'float64')
  t.deepEqual(Array.from(r.zerosLike(f).dataSync()), [0, 0])
})

test('randn and randUniform are bit-identical for a seed and differ across seeds', async (t) => {
  const a = await r.randn([64, 33], { seed: 42 }).data()
  const b = await r.randn([64, 33], { seed: 42 }).data()
  const c = await r.randn([64, 33], { seed: 43 }).data()
  t.deepEqual(new Uint8Array(a.buffer), new Uint8Array(b.buffer))
  t.notDeepEqual(new Uint8Array(a.buffer), new Uint8Array(c.buffer))
  // Roughly standard normal.
  let mean = 0
  for (const v of a) mean += v
  mean /= a.length
  t.true(Math.abs(mean) < 0.1)

  const u1 = await r.randUniform([1000], -2, 3, { seed: 7, dtype: 'float64' }).data()
  const u2 = await r.randUniform([1000], -2, 3, { seed: 7, dtype: 'float64' }).data()
  t.true(u1 instanceof Float64Array)
  t.deepEqual(new Uint8Array(u1.buffer), new Uint8Array(u2.buffer))
  t.true(u1.every((v) => v >= -2 && v < 3))
})

test.serial('manualSeed makes unseeded random calls reproducible', async (t) => {
  r.manualSeed(123)
  const a1 = await r.randn([10]).data()
  const a2 = await r.randn([10]).data()
  r.manualSeed(123)
  const b1 = await r.randn([10]).data()
  const b2 = await r.randn([10]).data()
  t.deepEqual(a1, b1)
  t.deepEqual(a2, b2)
  t.notDeepEqual(a1, a2)
})

// ---- op values --------------------------------------------------------------------------------

test('elementwise arithmetic with broadcasting and numbers', async (t) => {
  const a = r.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ])
  const row = r.tensor([10, 20, 30])
  t.deepEqual(Array.from(await a.add(row).data()), [11, 22, 33, 14, 25, 36])
  t.deepEqual(Array.from(await a.sub(row).data()), [-9, -18, -27, -6, -15, -24])
  t.deepEqual(Array.from(await a.mul(row).data()), [10, 40, 90, 40, 100, 180])
  close(t, await a.div(row).data(), [0.1, 0.1, 0.1, 0.4, 0.25, 0.2])
  t.deepEqual(Array.from(await a.add(1).data()), [2, 3, 4, 5, 6, 7])
  t.deepEqual(Array.from(await a.sub(1).data()), [0, 1, 2, 3, 4, 5])
  t.deepEqual(Array.from(await a.mul(2).data()), [2, 4, 6, 8, 10, 12])
  t.deepEqual(Array.from(await a.div(2).data()), [0.5, 1, 1.5, 2, 2.5, 3])
  // Free functions, numbers on either side.
  t.deepEqual(Array.from(await r.add(1, a).data()), [2, 3, 4, 5, 6, 7])
  t.deepEqual(Array.from(await r.sub(10, a).data()), [9, 8, 7, 6, 5, 4])
  t.deepEqual(Array.from(await r.mul(3, a).data()), [3, 6, 9, 12, 15, 18])
  close(t, await r.div(12, a).data(), [12, 6, 4, 3, 2.4, 2])
  t.deepEqual(Array.from(await r.scale(a, -1).data()), Array.from(await a.neg().data()))
  t.deepEqual(Array.from(await r.addScalar(a, 0.5).data()), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
})

test('unary ops', async (t) => {
  const x = r.tensor([-1, 0, 0.5, 2])
  close(t, await x.exp().data(), [-1, 0, 0.5, 2].map(Math.exp))
  close(t, await r.tensor([1, 2, 4]).log().data(), [0, Math.log(2), Math.log(4)])
  close(t, await x.tanh().data(), [-1, 0, 0.5, 2].map(Math.tanh))
  close(t, await x.sigmoid().data(), [-1, 0, 0.5, 2].map((v) => 1 / (1 + Math.exp(-v))))
  t.deepEqual(Array.from(await x.relu().data()), [0, 0, 0.5, 2])
  t.deepEqual(Array.from(await x.square().data()), [1, 0, 0.25, 4])
  close(t, await r.tensor([4, 9]).sqrt().data(), [2, 3])
  t.deepEqual(Array.from(await r.neg(x).data()), [1, -0, -0.5, -2])
  close(t, await r.tanh(x).data(), [-1, 0, 0.5, 2].map(Math.tanh))
  close(t, await r.sigmoid(x).data(), [-1, 0, 0.5, 2].map((v) => 1 / (1 + Math.exp(-v))))
  t.deepEqual(Array.from(await r.relu(x).data()), [0, 0, 0.5, 2])
})

test('matmul, linear and broadcastTo/sumTo', async (t) => {
  const a = r.tensor([
    [1, 2],
    [3, 4],
  ])
  const b = r.tensor([
    [5, 6],
    [7, 8],
  ])
  t.deepEqual(Array.from(await a.matmul(b).data()), [19, 22, 43, 50])
  t.deepEqual(Array.from(await r.matmul(a, b).data()), [19, 22, 43, 50])
  // linear: x · wᵀ + b
  const x = r.tensor([[1, 1]])
  const w = r.tensor([
    [1, 2],
    [3, 4],
    [5, 6],
  ])
  const bias = r.tensor([0.5, 0, -1])
  const y = r.linear(x, w, bias)
  t.deepEqual(y.shape, [1, 3])
  t.deepEqual(Array.from(await y.data()), [3.5, 7, 10])
  t.deepEqual(Array.from(await r.linear(x, w).data()), [3, 7, 11])
  const bc = r.broadcastTo(r.tensor([1, 2]), [3, 2])
  t.deepEqual(Array.from(await bc.data()), [1, 2, 1, 2, 1, 2])
  t.deepEqual(Array.from(await r.sumTo(bc, [2]).data()), [3, 6])
})

test('shape ops: reshape, transpose, concat, stack, slice, split', async (t) => {
  const a = r.tensor([1, 2, 3, 4, 5, 6], [2, 3])
  t.deepEqual(a.reshape(3, 2).shape, [3, 2])
  t.deepEqual(a.reshape([-1]).shape, [6])
  t.deepEqual(r.reshape(a, [1, -1]).shape, [1, 6])
  const at = a.transpose()
  t.deepEqual(at.shape, [3, 2])
  t.deepEqual(Array.from(await at.data()), [1, 4, 2, 5, 3, 6])
  t.deepEqual(Array.from(await r.transpose(a, 1, 0).data()), [1, 4, 2, 5, 3, 6])
  t.deepEqual(Array.from(await r.transpose(a, -1, -2).data()), [1, 4, 2, 5, 3, 6])

  const c0 = r.concat([a, a], 0)
  t.deepEqual(c0.shape, [4, 3])
  const c1 = r.concat([a, r.tensor([[7], [8]])], -1)
  t.deepEqual(c1.shape, [2, 4])
  t.deepEqual(Array.from(await c1.data()), [1, 2, 3, 7, 4, 5, 6, 8])
  const s = r.stack([r.tensor([1, 2]), r.tensor([3, 4])], 1)
  t.deepEqual(s.shape, [2, 2])
  t.deepEqual(Array.from(await s.data()), [1, 3, 2, 4])
  const sl = r.slice(a, 1, 1, 2)
  t.deepEqual(sl.shape, [2, 2])
  t.deepEqual(Array.from(await sl.data()), [2, 3, 5, 6])
  t.deepEqual(Array.from(await r.slice(a, 1, -1, 1).data()), [3, 6])
  const [p, q] = r.split(a, -1, [1, 2])
  t.deepEqual(p!.shape, [2, 1])
  t.deepEqual(Array.from(await q!.data()), [2, 3, 5, 6])
})

test('reductions and softmax', async (t) => {
  const a = r.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ])
  const all = a.sum()
  t.deepEqual(all.shape, [])
  t.is(await all.item(), 21)
  t.is(await a.mean().item(), 3.5)
  t.deepEqual(Array.from(await a.sum(0).data()), [5, 7, 9])
  t.deepEqual(Array.from(await a.sum(-1).data()), [6, 15])
  t.deepEqual(a.sum(1, true).shape, [2, 1])
  t.deepEqual(a.sum(undefined, true).shape, [1, 1])
  t.deepEqual(Array.from(await r.mean(a, [1]).data()), [2, 5])
  t.deepEqual(Array.from(await r.sum(a, [0, 1]).data()), [21])

  const sm = await a.softmax().data()
  const e = [1, 2, 3].map(Math.exp)
  const z = e[0]! + e[1]! + e[2]!
  close(t, sm.slice(0, 3), e.map((v) => v / z))
  close(t, sm.slice(3), e.map((v) => v / z))
  close(t, await r.logSoftmax(a, 1).data(), [1, 2, 3, 1, 2, 3].map((v) => v - Math.log(z)))
  close(t, await r.softmax(a, 0).data(), [1, 1, 1, 4, 4, 4].map((_, i) => (i < 3 ? 1 / (1 + Math.exp(3)) : 1 / (1 + Math.exp(-3)))))
})

test('embedding, dropout, losses', async (t) => {
  const w = r.tensor([
    [0, 1],
    [2, 3],
    [4, 5],
  ])
  const idx = r.tensor([2, 0, 2], undefined, { dtype: 'int32' })
  const e = r.embedding(w, idx)
  t.deepEqual(e.shape, [3, 2])
  t.deepEqual(Array.from(await e.data()), [4, 5, 0, 1, 4, 5])

  const x = r.ones([1000])
  t.deepEqual(Array.from(await r.dropout(x, 0.5, { training: false }).data()), Array.from(await x.data()))
  const d1 = await r.dropout(x, 0.5, { seed: 9 }).data()
  const d2 = await r.dropout(x, 0.5, { seed: 9 }).data()
  t.deepEqual(d1, d2)
  t.true(d1.every((v) => v === 0 || v === 2))
  const kept = d1.filter((v) => v === 2).length
  t.true(kept > 400 && kept < 600, `kept ${kept}`)

  const pred = r.tensor([1, 2, 3])
  const target = r.tensor([1, 0, 0])
  close(t, [await ops.mse(pred, target).item()], [(0 + 4 + 9) / 3])
  const logits = r.tensor([
    [0, 0],
    [1, 3],
  ])
  const targets = r.tensor([0, 1], undefined, { dtype: 'int32' })
  const ce = await ops.crossEntropy(logits, targets).item()
  close(t, [ce], [(Math.log(2) + Math.log(1 + Math.exp(-2))) / 2])
  const ceIgn = await ops.crossEntropy(logits, targets, { ignoreIndex: 1 }).item()
  close(t, [ceIgn], [Math.log(2)])
})

test('recurrentLayer returns y, hT and (for LSTM) cT of the right shapes', async (t) => {
  const T = 5
  const B = 2
  const I = 3
  const H = 4
  const x = r.randn([T, B, I], { seed: 1 })
  const h0 = r.zeros([B, H])
  const lstm = r.recurrentLayer('lstm', x, h0, r.zeros([B, H]), { wIh: r.randn([4 * H, I], { seed: 2 }), wHh: r.randn([4 * H, H], { seed: 3 }) })
  t.deepEqual(lstm.y.shape, [T, B, H])
  t.deepEqual(lstm.hT.shape, [B, H])
  t.deepEqual(lstm.cT?.shape, [B, H])
  // hT is the last output.
  t.deepEqual(Array.from(await lstm.hT.data()), Array.from((await lstm.y.data()).slice((T - 1) * B * H)))

  const wIh = r.randn([H, I], { seed: 4 })
  const wHh = r.randn([H, H], { seed: 5 })
  const bIh = r.randn([H], { seed: 6 })
  const bHh = r.randn([H], { seed: 7 })
  const rnn = r.recurrentLayer('rnn_tanh', x, h0, null, { wIh, wHh, bIh, bHh }, { lengths: new Int32Array([5, 2]) })
  t.is(rnn.cT, undefined)
  const y = await rnn.y.data()
  // Past its length, row 1's outputs are zero.
  for (let s = 2; s < T; s++) for (let h = 0; h < H; h++) t.is(y[(s * B + 1) * H + h], 0)
  // Same lengths as a plain array or a tensor give the same result.
  const viaArray = await r.recurrentLayer('rnn_tanh', x, h0, null, { wIh, wHh, bIh, bHh }, { lengths: [5, 2] }).hT.data()
  const viaTensor = await r.recurrentLayer('rnn_tanh', x, h0, null, { wIh, wHh, bIh, bHh }, { lengths: r.tensor([5, 2], undefined, { dtype: 'int32' }) }).hT.data()
  t.deepEqual(viaArray, await rnn.hT.data())
  t.deepEqual(viaTensor, await rnn.hT.data())
})

// ---- autograd ---------------------------------------------------------------------------------

test('backward on a small graph gives the known gradients', async (t) => {
  // y = Σ (a ⊙ b + a²) → ∂y/∂a = b + 2a, ∂y/∂b = a
  const a = r.tensor([1, 2, 3])
  const b = r.tensor([4, 5, 6])
  a.requiresGrad = true
  b.requiresGrad = true
  t.true(a.requiresGrad)
  t.true(a.isLeaf)
  const y = a.mul(b).add(a.square()).sum()
  t.true(y.requiresGrad)
  t.false(y.isLeaf)
  t.is(await y.item(), 4 + 10 + 18 + 1 + 4 + 9)
  y.backward()
  t.deepEqual(Array.from(await a.grad!.data()), [6, 9, 12])
  t.deepEqual(Array.from(await b.grad!.data()), [1, 2, 3])

  // Gradients accumulate across backward calls; zeroGrad clears them.
  a.mul(b).sum().backward()
  t.deepEqual(Array.from(await a.grad!.data()), [10, 14, 18])
  a.zeroGrad()
  t.is(a.grad, null)
})

test('backward through matmul, broadcasting and tanh', async (t) => {
  // L = Σ tanh(x · w + bias), x [2, 3], w [3, 2], bias [2]
  const xv = [0.1, -0.2, 0.3, 0.4, 0.5, -0.6]
  const wv = [0.7, -0.1, 0.2, 0.3, -0.5, 0.4]
  const bv = [0.05, -0.05]
  const x = r.tensor(xv, [2, 3], { dtype: 'float64' })
  const w = r.tensor(wv, [3, 2], { dtype: 'float64' })
  const bias = r.tensor(bv, [2], { dtype: 'float64' })
  for (const p of [w, bias]) p.requiresGrad = true
  const loss = x.matmul(w).add(bias).tanh().sum()
  loss.backward()
  // Reference by hand.
  const g = [0, 0, 0, 0] // dL/dz = 1 − tanh(z)²
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      let z = bv[j]!
      for (let k = 0; k < 3; k++) z += xv[i * 3 + k]! * wv[k * 2 + j]!
      g[i * 2 + j] = 1 - Math.tanh(z) ** 2
    }
  }
  const gw: number[] = []
  for (let k = 0; k < 3; k++) for (let j = 0; j < 2; j++) gw.push(xv[k]! * g[j]! + xv[3 + k]! * g[2 + j]!)
  close(t, await w.grad!.data(), gw, 1e-12)
  close(t, await bias.grad!.data(), [g[0]! + g[2]!, g[1]! + g[3]!], 1e-12)
  t.is(x.grad, null)
})

test('backward with an explicit upstream gradient', async (t) => {
  const a = r.tensor([1, 2])
  a.requiresGrad = true
  const y = a.scale(3)
  y.backward(r.tensor([1, 10]))
  t.deepEqual(Array.from(await a.grad!.data()), [3, 30])
})

test('noGrad records no history and restores the mode', (t) => {
  const a = r.tensor([1, 2])
  a.requiresGrad = true
  t.true(r.isGradEnabled())
  const y = r.noGrad(() => {
    t.false(r.isGradEnabled())
    // Nested noGrad keeps it off and restores "off".
    r.noGrad(() => t.false(r.isGradEnabled()))
    t.false(r.isGradEnabled())
    return a.mul(a)
  })
  t.true(r.isGradEnabled())
  t.false(y.requiresGrad)
  t.true(a.mul(a).requiresGrad)
  // Restored after a throw too.
  t.throws(() =>
    r.noGrad(() => {
      throw new Error('boom')
    }),
  )
  t.true(r.isGradEnabled())
  // Async functions are refused with a clear error.
  const err = t.throws(() => r.noGrad(async () => 1), { instanceOf: r.ValueError })
  t.regex(err!.message, /synchronous/)
  t.true(r.isGradEnabled())
})

test('detach makes a leaf sharing data without history', async (t) => {
  const a = r.tensor([1, 2, 3])
  a.requiresGrad = true
  const y = a.mul(2)
  const d = y.detach()
  t.false(d.requiresGrad)
  t.true(d.isLeaf)
  t.deepEqual(Array.from(await d.data()), [2, 4, 6])
  // Ops on the detached tensor record no history back to `a`.
  const z = d.mul(a).sum()
  z.backward()
  t.deepEqual(Array.from(await a.grad!.data()), [2, 4, 6])
})

test('assign replaces data in place; earlier ops keep the old data', async (t) => {
  const p = r.tensor([1, 2, 3])
  const before = p.mul(1)
  p.assign(r.tensor([7, 8, 9]))
  t.deepEqual(Array.from(await p.data()), [7, 8, 9])
  t.deepEqual(Array.from(await before.data()), [1, 2, 3])
  t.deepEqual(Array.from(await p.add(1).data()), [8, 9, 10])
  const e = t.throws(() => p.assign(r.tensor([1, 2])), { instanceOf: r.ShapeError })
  t.is(e!.op, 'assign')
})

test('grad can be set and cleared', async (t) => {
  const p = r.tensor([1, 2])
  p.grad = r.tensor([0.5, 0.5])
  t.deepEqual(Array.from(await p.grad!.data()), [0.5, 0.5])
  p.grad = null
  t.is(p.grad, null)
})

// ---- lifetime ---------------------------------------------------------------------------------

test('dispose and Symbol.dispose', (t) => {
  const a = r.zeros([4])
  t.false(a.isDisposed)
  a.dispose()
  t.true(a.isDisposed)
  t.notThrows(() => a.dispose()) // idempotent
  t.regex(String(a), /disposed/)

  let inner: Tensor | undefined
  {
    using b = r.ones([2])
    inner = b
    t.false(b.isDisposed)
  }
  t.true(inner.isDisposed)

  const c = r.ones([2])
  c[Symbol.dispose]()
  t.true(c.isDisposed)
})

test.serial('memory() reports live tensors and bytes; dispose frees them', async (t) => {
  await r.synchronize()
  const m0 = r.memory()
  t.true(m0.tensors >= 0 && m0.bytes >= 0 && m0.peakBytes >= m0.bytes && m0.queued >= 0)
  const big = r.zeros([1000, 1000])
  const m1 = r.memory()
  t.true(m1.bytes >= m0.bytes + 4_000_000)
  t.true(m1.tensors >= m0.tensors + 1)
  t.true(m1.peakBytes >= m1.bytes)
  big.dispose()
  const m2 = r.memory()
  t.true(m2.bytes <= m1.bytes - 4_000_000)
  r.resetPeakMemory()
  t.is(r.memory().peakBytes, r.memory().bytes)
})

// Serial: concurrent tests in this file would enqueue work of their own.
test.serial('data() of pending work resolves after the executor runs it', async (t) => {
  let m = r.randn([256, 256], { seed: 1 })
  const w = r.randn([256, 256], { seed: 2 }).scale(1 / 16)
  for (let i = 0; i < 8; i++) m = m.matmul(w)
  const d = await m.data()
  t.is(d.length, 256 * 256)
  t.true(m.isReady)
  await r.synchronize()
  t.is(r.memory().queued, 0)
})

test('toString and inspect', (t) => {
  const a = r.zeros([2, 3])
  t.is(String(a), 'Tensor(shape=[2, 3], dtype=float32, device=cpu)')
  a.requiresGrad = true
  t.regex(a.toString(), /requiresGrad=true/)
  t.is(typeof a.id, 'number')
})

test('backward frees the graph unless retainGraph is set', async (t) => {
  const a = r.tensor([1, 2, 3], [3], { dtype: 'float64' })
  a.requiresGrad = true
  const y = a.tanh().sum()
  y.backward(null, { retainGraph: true })
  y.backward()
  const g = Array.from(await a.grad!.data())
  t.true(Math.abs(g[0]! - 2 * (1 - Math.tanh(1) ** 2)) < 1e-12)
  const err = t.throws(() => y.backward())
  t.true(err instanceof r.ValueError)
  t.regex(err!.message, /already freed.*retainGraph/)
})

test('data() of large tensors: every read is its own copy, also when a collected read lends its memory to the next', async (t) => {
  // Reads of 64 KiB and more reuse the memory of collected earlier reads (a pool against page
  // faults): whatever buffer a read gets, it holds exactly its tensor's values, and writing to it
  // changes neither the tensor nor any other read.
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) return t.pass('needs --expose-gc (the ava workers have it)')
  const n = 50_000
  const a = r.tensor(Float32Array.from({ length: n }, (_, i) => i), [n])
  const b = r.tensor(Float32Array.from({ length: n }, (_, i) => -2 * i), [n])
  const f64 = r.tensor(Float64Array.from({ length: n }, (_, i) => i / 3), [n], { dtype: 'float64' })
  for (let round = 0; round < 4; round++) {
    // Reads made and dropped, so that the next round can be served from their memory.
    for (const x of [a, b, f64]) {
      const d = await x.data()
      d.fill(7)
    }
    gc()
    await new Promise((resolve) => setImmediate(resolve))
    const [da, db, dd] = [await a.data(), await b.data(), await f64.data()]
    t.true(da instanceof Float32Array && dd instanceof Float64Array)
    t.is(da[123], 123)
    t.is(db[123], -246)
    t.is(dd[123], 41)
    t.is(da[n - 1], n - 1)
    da.fill(1)
    t.is((await a.data())[5], 5, 'the tensor is unchanged by writes to a read')
    t.is(db[5], -10, 'another read is unchanged')
    t.is(a.dataSync()[n - 1], n - 1)
  }
})
