/**
 * The nn layer: parameter names and shapes (PyTorch's exactly), layouts (batchFirst,
 * bidirectional), variable lengths, state dicts, train/eval, and the cell equations checked
 * against plain-array references (gate orders i,f,g,o and r,z,n).
 */

import test from 'ava'
import type { ExecutionContext } from 'ava'

import {
  Adam,
  DTypeError,
  Dropout,
  Embedding,
  GRU,
  LSTM,
  Linear,
  Module,
  ReLU,
  RNN,
  SGD,
  Sequential,
  ShapeError,
  Tanh,
  type Tensor,
  ValueError,
  concat,
  crossEntropy,
  memory,
  mse,
  ones,
  randn,
  reshape,
  slice,
  synchronize,
  tensor,
  transpose,
} from '../index.js'
import { liveTensorsAfterGC } from './helpers/memory.js'

// ---- helpers ----------------------------------------------------------------------------------

function arr(t: Tensor): number[] {
  return Array.from(t.dataSync())
}

function assertClose(t: ExecutionContext, got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-5, what = '') {
  t.is(got.length, want.length, `${what}: length`)
  let worst = 0
  let at = -1
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!)
    if (!(d <= worst)) {
      worst = d
      at = i
    }
  }
  t.true(worst <= tol, `${what}: max |got − want| = ${worst} at ${at} (got ${got[at]}, want ${want[at]}), tol ${tol}`)
}

function shapesOf(m: Module): Array<[string, number[]]> {
  return m.namedParameters().map(([n, p]) => [n, p.shape])
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

/** `W [R, C]` (row-major flat) times `v [C]`, rows `r0 .. r0+n`. */
function matvec(w: number[], cols: number, v: number[], r0: number, n: number): number[] {
  const out: number[] = []
  for (let r = r0; r < r0 + n; r++) {
    let s = 0
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * v[c]!
    out.push(s)
  }
  return out
}

const vadd = (...vs: number[][]) => vs[0]!.map((_, i) => vs.reduce((s, v) => s + v[i]!, 0))
const vmul = (a: number[], b: number[]) => a.map((x, i) => x * b[i]!)

/** Fixed, distinct, smallish values for a parameter of `n` elements. */
function fixed(n: number, k: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(1.3 * i + 0.7 * k + 0.1) * 0.6)
}

/** Loads fixed values into every parameter of `m`; returns them by name. */
function loadFixed(m: Module): Record<string, number[]> {
  const vals: Record<string, number[]> = {}
  const dict: Record<string, Tensor> = {}
  m.namedParameters().forEach(([name, p], k) => {
    const v = fixed(p.size, k)
    vals[name] = v
    dict[name] = tensor(v, p.shape)
  })
  m.loadStateDict(dict)
  return vals
}

// ---- parameter names and shapes ---------------------------------------------------------------

test('LSTM(3, 4, numLayers 2, bidirectional): names, order and shapes are PyTorch\'s', (t) => {
  const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 1 })
  t.deepEqual(shapesOf(lstm), [
    ['weight_ih_l0', [16, 3]],
    ['weight_hh_l0', [16, 4]],
    ['bias_ih_l0', [16]],
    ['bias_hh_l0', [16]],
    ['weight_ih_l0_reverse', [16, 3]],
    ['weight_hh_l0_reverse', [16, 4]],
    ['bias_ih_l0_reverse', [16]],
    ['bias_hh_l0_reverse', [16]],
    ['weight_ih_l1', [16, 8]],
    ['weight_hh_l1', [16, 4]],
    ['bias_ih_l1', [16]],
    ['bias_hh_l1', [16]],
    ['weight_ih_l1_reverse', [16, 8]],
    ['weight_hh_l1_reverse', [16, 4]],
    ['bias_ih_l1_reverse', [16]],
    ['bias_hh_l1_reverse', [16]],
  ])
  // torch.nn.LSTM(3, 4, 2, bidirectional=True): sum(p.numel()) == 736
  t.is(lstm.numParameters(), 736)
  t.true(lstm.parameters().every((p) => p.requiresGrad && p.dtype === 'float32'))
})

test('GRU and RNN: names and shapes are PyTorch\'s; bias false drops the biases', (t) => {
  t.deepEqual(shapesOf(new GRU(3, 4, { numLayers: 2 })), [
    ['weight_ih_l0', [12, 3]],
    ['weight_hh_l0', [12, 4]],
    ['bias_ih_l0', [12]],
    ['bias_hh_l0', [12]],
    ['weight_ih_l1', [12, 4]],
    ['weight_hh_l1', [12, 4]],
    ['bias_ih_l1', [12]],
    ['bias_hh_l1', [12]],
  ])
  t.deepEqual(shapesOf(new GRU(3, 4, { resetAfter: false, bidirectional: true })), [
    ['weight_ih_l0', [12, 3]],
    ['weight_hh_l0', [12, 4]],
    ['bias_ih_l0', [12]],
    ['bias_hh_l0', [12]],
    ['weight_ih_l0_reverse', [12, 3]],
    ['weight_hh_l0_reverse', [12, 4]],
    ['bias_ih_l0_reverse', [12]],
    ['bias_hh_l0_reverse', [12]],
  ])
  t.deepEqual(shapesOf(new RNN(3, 4, { numLayers: 2, bidirectional: true, bias: false, nonlinearity: 'relu' })), [
    ['weight_ih_l0', [4, 3]],
    ['weight_hh_l0', [4, 4]],
    ['weight_ih_l0_reverse', [4, 3]],
    ['weight_hh_l0_reverse', [4, 4]],
    ['weight_ih_l1', [4, 8]],
    ['weight_hh_l1', [4, 4]],
    ['weight_ih_l1_reverse', [4, 8]],
    ['weight_hh_l1_reverse', [4, 4]],
  ])
  t.is(new RNN(3, 4).mode, 'rnn_tanh')
  t.is(new RNN(3, 4, { nonlinearity: 'relu' }).mode, 'rnn_relu')
  t.is(new GRU(3, 4).mode, 'gru')
  t.is(new GRU(3, 4, { resetAfter: false }).mode, 'gru_reset_before')
})

test('nested modules get dotted names; Sequential children are 0, 1, 2 ...', (t) => {
  class Model extends Module {
    lstm = this.registerModule('lstm', new LSTM(2, 3))
    head = this.registerModule('head', new Sequential(new Linear(3, 5), new Tanh(), new Linear(5, 1, { bias: false })))
    forward(x: Tensor): Tensor {
      return this.head.forward(this.lstm.forward(x).output)
    }
  }
  const m = new Model()
  t.deepEqual(shapesOf(m), [
    ['lstm.weight_ih_l0', [12, 2]],
    ['lstm.weight_hh_l0', [12, 3]],
    ['lstm.bias_ih_l0', [12]],
    ['lstm.bias_hh_l0', [12]],
    ['head.0.weight', [5, 3]],
    ['head.0.bias', [5]],
    ['head.2.weight', [1, 5]],
  ])
  t.deepEqual(Object.keys(m.stateDict()), m.namedParameters().map(([n]) => n))
  t.deepEqual(m.forward(randn([4, 2, 2])).shape, [4, 2, 1])
  t.is(m.numParameters(), 12 * 2 + 12 * 3 + 24 + 15 + 5 + 5)
  t.throws(() => m.registerModule('lstm', new Linear(1, 1)), { instanceOf: ValueError, message: /'lstm' is already registered/ })
})

test('initialisation is U(−1/√H, 1/√H) for recurrent layers and U(−1/√in, 1/√in) for Linear; seeds reproduce', (t) => {
  const lstm = new LSTM(3, 16, { seed: 7 })
  const k = 1 / Math.sqrt(16)
  for (const [name, p] of lstm.namedParameters()) {
    const v = arr(p)
    t.true(v.every((x) => Math.abs(x) <= k), `${name} within ±${k}`)
    t.true(Math.max(...v.map(Math.abs)) > 0.8 * k, `${name} spans the range`)
  }
  const w = arr(lstm.stateDict()['weight_ih_l0']!)
  const b = arr(lstm.stateDict()['bias_hh_l0']!)
  t.notDeepEqual(w.slice(0, 16), b, 'each parameter draws its own stream')
  t.deepEqual(arr(new LSTM(3, 16, { seed: 7 }).stateDict()['weight_ih_l0']!), w, 'same seed, same weights')
  t.notDeepEqual(arr(new LSTM(3, 16, { seed: 8 }).stateDict()['weight_ih_l0']!), w)
  const lin = new Linear(25, 4, { seed: 3 })
  t.true(arr(lin.weight).every((x) => Math.abs(x) <= 0.2))
  t.true(arr(lin.bias!).every((x) => Math.abs(x) <= 0.2))
})

// ---- cell equations against plain arrays -----------------------------------------------------

test('LSTM, T=2 B=1 I=2 H=2: matches the equations by hand (gate order i, f, g, o)', (t) => {
  const lstm = new LSTM(2, 2)
  const P = loadFixed(lstm)
  const xs = [
    [0.5, -1.0],
    [1.5, 0.25],
  ]
  const h0 = [0.1, -0.2]
  const c0 = [0.3, 0.05]
  const H = 2
  let h = h0
  let c = c0
  const outs: number[] = []
  for (const x of xs) {
    const gate = (k: number) =>
      vadd(matvec(P['weight_ih_l0']!, 2, x, k * H, H), P['bias_ih_l0']!.slice(k * H, k * H + H), matvec(P['weight_hh_l0']!, H, h, k * H, H), P['bias_hh_l0']!.slice(k * H, k * H + H))
    const i = gate(0).map(sigmoid)
    const f = gate(1).map(sigmoid)
    const g = gate(2).map(Math.tanh)
    const o = gate(3).map(sigmoid)
    c = vadd(vmul(f, c), vmul(i, g))
    h = vmul(o, c.map(Math.tanh))
    outs.push(...h)
  }
  const r = lstm.forward(tensor([xs], [1, 2, 2]).transpose(0, 1), { h0: tensor(h0, [1, 1, 2]), c0: tensor(c0, [1, 1, 2]) })
  t.deepEqual(r.output.shape, [2, 1, 2])
  assertClose(t, arr(r.output), outs, 1e-6, 'output')
  assertClose(t, arr(r.hN), h, 1e-6, 'hN')
  assertClose(t, arr(r.cN), c, 1e-6, 'cN')
})

function gruReference(P: Record<string, number[]>, xs: number[][], h0: number[], resetAfter: boolean): number[] {
  const H = h0.length
  const I = xs[0]!.length
  let h = h0
  const outs: number[] = []
  for (const x of xs) {
    const xi = (k: number) => vadd(matvec(P['weight_ih_l0']!, I, x, k * H, H), P['bias_ih_l0']!.slice(k * H, k * H + H))
    const hh = (k: number, v: number[]) => vadd(matvec(P['weight_hh_l0']!, H, v, k * H, H), P['bias_hh_l0']!.slice(k * H, k * H + H))
    const r = vadd(xi(0), hh(0, h)).map(sigmoid)
    const z = vadd(xi(1), hh(1, h)).map(sigmoid)
    const n = resetAfter ? vadd(xi(2), vmul(r, hh(2, h))).map(Math.tanh) : vadd(xi(2), hh(2, vmul(r, h))).map(Math.tanh)
    h = n.map((nv, j) => (1 - z[j]!) * nv + z[j]! * h[j]!)
    outs.push(...h)
  }
  return outs
}

for (const resetAfter of [true, false]) {
  test(`GRU (resetAfter ${resetAfter}), T=2 B=1 I=2 H=2: matches the equations by hand (gate order r, z, n)`, (t) => {
    const gru = new GRU(2, 2, { resetAfter })
    const P = loadFixed(gru)
    const xs = [
      [0.5, -1.0],
      [1.5, 0.25],
    ]
    const h0 = [0.4, -0.3]
    const want = gruReference(P, xs, h0, resetAfter)
    const r = gru.forward(tensor(xs, [2, 1, 2]), { h0: tensor(h0, [1, 1, 2]) })
    assertClose(t, arr(r.output), want, 1e-6, 'output')
    assertClose(t, arr(r.hN), want.slice(2), 1e-6, 'hN')
  })
}

test('the two GRU variants differ (the reset gate really moves)', (t) => {
  const a = new GRU(2, 2, { resetAfter: true })
  const b = new GRU(2, 2, { resetAfter: false })
  loadFixed(a)
  loadFixed(b)
  const x = tensor([[[0.5, -1.0]], [[1.5, 0.25]]])
  const h0 = tensor([[[0.4, -0.3]]])
  const ya = arr(a.forward(x, { h0 }).output)
  const yb = arr(b.forward(x, { h0 }).output)
  t.true(ya.some((v, i) => Math.abs(v - yb[i]!) > 1e-4))
})

for (const nonlinearity of ['tanh', 'relu'] as const) {
  test(`RNN (${nonlinearity}), T=2 B=1 I=2 H=2: matches the equations by hand`, (t) => {
    const rnn = new RNN(2, 2, { nonlinearity })
    const P = loadFixed(rnn)
    const act = nonlinearity === 'tanh' ? Math.tanh : (v: number) => Math.max(v, 0)
    const xs = [
      [0.5, -1.0],
      [1.5, 0.25],
    ]
    let h = [0.4, -0.3]
    const want: number[] = []
    for (const x of xs) {
      h = vadd(matvec(P['weight_ih_l0']!, 2, x, 0, 2), P['bias_ih_l0']!, matvec(P['weight_hh_l0']!, 2, h, 0, 2), P['bias_hh_l0']!).map(act)
      want.push(...h)
    }
    const r = rnn.forward(tensor(xs, [2, 1, 2]), { h0: tensor([0.4, -0.3], [1, 1, 2]) })
    assertClose(t, arr(r.output), want, 1e-6, 'output')
  })
}

test('stacked bidirectional LSTM: layer 1 reads [forward | reverse] of layer 0; hN rows are layer·D + direction', (t) => {
  const T = 4
  const B = 2
  const lstm = new LSTM(3, 5, { numLayers: 2, bidirectional: true, seed: 11 })
  const x = randn([T, B, 3], { seed: 12 })
  const r = lstm.forward(x)
  t.deepEqual(r.output.shape, [T, B, 10])
  t.deepEqual(r.hN.shape, [4, B, 5])
  t.deepEqual(r.cN.shape, [4, B, 5])
  // Rebuild it from single-direction, single-layer LSTMs with the same weights.
  const sub = (layer: number, reverse: boolean) => {
    const m = new LSTM(layer === 0 ? 3 : 10, 5)
    const w = lstm.layerWeights(layer, reverse)
    m.loadStateDict({ weight_ih_l0: w.wIh, weight_hh_l0: w.wHh, bias_ih_l0: w.bIh!, bias_hh_l0: w.bHh! })
    return m
  }
  // Reverses the time axis.
  const flip = (v: Tensor) => concat(Array.from({ length: T }, (_, i) => slice(v, 0, T - 1 - i, 1)), 0)
  const f0 = sub(0, false).forward(x)
  const b0 = sub(0, true).forward(flip(x))
  const l1in = concat([f0.output, flip(b0.output)], 2)
  const f1 = sub(1, false).forward(l1in)
  const b1 = sub(1, true).forward(flip(l1in))
  const want = arr(concat([f1.output, flip(b1.output)], 2))
  assertClose(t, arr(r.output), want, 1e-5, 'output')
  assertClose(t, arr(r.hN), [...arr(f0.hN), ...arr(b0.hN), ...arr(f1.hN), ...arr(b1.hN)], 1e-5, 'hN')
  assertClose(t, arr(r.cN), [...arr(f0.cN), ...arr(b0.cN), ...arr(f1.cN), ...arr(b1.cN)], 1e-5, 'cN')
})

// ---- layouts ----------------------------------------------------------------------------------

test('batchFirst gives the same numbers as the transposed input, for every module', (t) => {
  const T = 5
  const B = 3
  const makers = [
    (bf: boolean) => new LSTM(4, 6, { numLayers: 2, bidirectional: true, batchFirst: bf, seed: 21 }),
    (bf: boolean) => new GRU(4, 6, { numLayers: 2, batchFirst: bf, seed: 22 }),
    (bf: boolean) => new RNN(4, 6, { bidirectional: true, batchFirst: bf, seed: 23 }),
  ]
  const x = randn([T, B, 4], { seed: 24 })
  const xb = transpose(x, 0, 1)
  for (const make of makers) {
    const a = make(false)
    const b = make(true)
    const ra = a.forward(x)
    const rb = b.forward(xb)
    t.deepEqual(rb.output.shape, [B, T, a.bidirectional ? 12 : 6])
    assertClose(t, arr(transpose(rb.output, 0, 1)), arr(ra.output), 1e-6, `${a.constructor.name} output`)
    t.deepEqual(rb.hN.shape, ra.hN.shape, 'states stay [L·D, B, H]')
    assertClose(t, arr(rb.hN), arr(ra.hN), 1e-6, `${a.constructor.name} hN`)
  }
})

test('batchFirst is the time-major module bit for bit, gradients included, with lengths and given states', (t) => {
  // The op reads and writes [B, T, ·] in place (no transposes around it), so nothing but the
  // layout may differ: outputs, states and every parameter's and the input's gradient.
  const T = 6
  const B = 3
  const lengths = [6, 2, 5]
  const makers = [
    (bf: boolean) => new LSTM(4, 5, { numLayers: 2, bidirectional: true, batchFirst: bf, seed: 31 }),
    (bf: boolean) => new GRU(4, 5, { bidirectional: true, batchFirst: bf, seed: 32 }),
    (bf: boolean) => new RNN(4, 5, { numLayers: 2, batchFirst: bf, seed: 33 }),
  ]
  for (const make of makers) {
    for (const withState of [false, true]) {
      const a = make(false)
      const b = make(true)
      const name = `${a.constructor.name}${withState ? ' with h0' : ''}`
      const L = a.numLayers * a.numDirections
      const xa = randn([T, B, 4], { seed: 34 })
      const xb = transpose(xa, 0, 1).detach()
      xa.requiresGrad = true
      xb.requiresGrad = true
      const h0 = withState ? randn([L, B, 5], { seed: 35 }) : undefined
      const ra = a.forward(xa, { lengths, ...(h0 ? { h0 } : {}) })
      const rb = b.forward(xb, { lengths, ...(h0 ? { h0 } : {}) })
      t.deepEqual(rb.output.shape, [B, T, a.bidirectional ? 10 : 5], name)
      t.deepEqual(arr(transpose(rb.output, 0, 1)), arr(ra.output), `${name} output`)
      t.deepEqual(arr(rb.hN), arr(ra.hN), `${name} hN`)
      const w = randn(ra.output.shape, { seed: 36 })
      ra.output.mul(w).sum().add(ra.hN.sum()).backward()
      rb.output.mul(transpose(w, 0, 1)).sum().add(rb.hN.sum()).backward()
      t.deepEqual(arr(transpose(xb.grad!, 0, 1)), arr(xa.grad!), `${name} input gradient`)
      const pb = new Map(b.namedParameters())
      for (const [key, p] of a.namedParameters()) t.deepEqual(arr(pb.get(key)!.grad!), arr(p.grad!), `${name} ${key} gradient`)
    }
  }
})

test('bidirectional output is [T, B, 2H]; hN and cN are [L·D, B, H]', (t) => {
  const lstm = new LSTM(3, 4, { numLayers: 3, bidirectional: true })
  const r = lstm.forward(randn([7, 2, 3]))
  t.deepEqual(r.output.shape, [7, 2, 8])
  t.deepEqual(r.hN.shape, [6, 2, 4])
  t.deepEqual(r.cN.shape, [6, 2, 4])
  const g = new GRU(3, 4, { bidirectional: true }).forward(randn([7, 2, 3]))
  t.deepEqual(g.output.shape, [7, 2, 8])
  t.deepEqual(g.hN.shape, [2, 2, 4])
  t.false('cN' in g)
})

test('h0 and c0 are used: row layer·D + direction starts each layer', (t) => {
  const lstm = new LSTM(2, 3, { numLayers: 2, seed: 5 })
  const x = randn([3, 2, 2], { seed: 6 })
  const h0 = randn([2, 2, 3], { seed: 7 })
  const c0 = randn([2, 2, 3], { seed: 8 })
  const a = lstm.forward(x)
  const b = lstm.forward(x, { h0, c0 })
  t.notDeepEqual(arr(a.output), arr(b.output))
  // Layer 0 alone, started from row 0 of the states, equals the first layer of the stack.
  const l0 = new LSTM(2, 3)
  const w = lstm.layerWeights(0)
  l0.loadStateDict({ weight_ih_l0: w.wIh, weight_hh_l0: w.wHh, bias_ih_l0: w.bIh!, bias_hh_l0: w.bHh! })
  const r0 = l0.forward(x, { h0: slice(h0, 0, 0, 1), c0: slice(c0, 0, 0, 1) })
  assertClose(t, arr(slice(b.hN, 0, 0, 1)), arr(r0.hN), 1e-6, 'layer 0 hN')
  assertClose(t, arr(slice(b.cN, 0, 0, 1)), arr(r0.cN), 1e-6, 'layer 0 cN')
})

// ---- lengths ----------------------------------------------------------------------------------

test('lengths: outputs past each length are zero and hN is the output at the last valid step', (t) => {
  const T = 6
  const B = 4
  const H = 3
  const lengths = [6, 2, 4, 1]
  for (const make of [
    () => new LSTM(2, H, { numLayers: 2, seed: 31 }),
    () => new GRU(2, H, { seed: 32 }),
    () => new RNN(2, H, { seed: 33 }),
  ]) {
    const m = make()
    const r = m.forward(randn([T, B, 2], { seed: 34 }), { lengths })
    const y = arr(r.output)
    const hN = arr(r.hN)
    const L = m.numLayers
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < T; s++) {
        const v = y.slice((s * B + b) * H, (s * B + b) * H + H)
        if (s >= lengths[b]!) t.deepEqual(v, [0, 0, 0], `${m.constructor.name} row ${b} step ${s} is zero`)
        else t.true(v.some((u) => u !== 0), `${m.constructor.name} row ${b} step ${s} is not zero`)
      }
      const last = lengths[b]! - 1
      const want = y.slice((last * B + b) * H, (last * B + b) * H + H)
      const got = hN.slice(((L - 1) * B + b) * H, ((L - 1) * B + b) * H + H)
      assertClose(t, got, want, 0, `${m.constructor.name} hN row ${b}`)
    }
  }
})

test('lengths: each padded row equals running that row alone, unpadded (bidirectional; reverse starts at its own end)', (t) => {
  const T = 5
  const B = 3
  const H = 4
  const lengths = new Int32Array([3, 5, 1])
  for (const make of [
    () => new GRU(2, H, { numLayers: 2, bidirectional: true, seed: 41 }),
    () => new LSTM(2, H, { bidirectional: true, seed: 42 }),
  ]) {
    const m = make()
    const x = randn([T, B, 2], { seed: 43 })
    const r = m.forward(x, { lengths: tensor(lengths, [B]) })
    const y = arr(r.output)
    const hN = arr(r.hN)
    for (let b = 0; b < B; b++) {
      const n = lengths[b]!
      const alone = m.forward(slice(slice(x, 0, 0, n), 1, b, 1))
      const ya = arr(alone.output)
      const rows: number[] = []
      for (let s = 0; s < n; s++) rows.push(...y.slice((s * B + b) * 2 * H, (s * B + b) * 2 * H + 2 * H))
      assertClose(t, rows, ya, 1e-5, `${m.constructor.name} row ${b} output`)
      const LD = m.numLayers * 2
      const hb: number[] = []
      for (let k = 0; k < LD; k++) hb.push(...hN.slice((k * B + b) * H, (k * B + b) * H + H))
      assertClose(t, hb, arr(alone.hN), 1e-5, `${m.constructor.name} row ${b} hN`)
    }
  }
})

test('lengths are checked with clear errors', (t) => {
  const m = new LSTM(2, 3)
  const x = randn([4, 2, 2])
  t.throws(() => m.forward(x, { lengths: [4] }), { instanceOf: ShapeError, message: /lengths \[B\] = \[2\], got \[1\]/ })
  t.throws(() => m.forward(x, { lengths: [4, 5] }), { instanceOf: ValueError, message: /^lstm: lengths\[1\] is 5, longer than the sequence \(T = 4\); expected an integer in \[1, T\] = \[1, 4\]$/ })
  t.throws(() => m.forward(x, { lengths: [0, 1] }), { instanceOf: ValueError, message: /lengths\[0\]/ })
  t.throws(() => m.forward(x, { lengths: [1.5, 1] }), { instanceOf: ValueError })
  t.throws(() => m.forward(x, { lengths: tensor([1, 2]) }), { instanceOf: ValueError, message: /int32/ })
  // One check, in the native op, whatever form the lengths come in.
  t.throws(() => m.forward(x, { lengths: [NaN, 1] }), { instanceOf: ValueError, message: /^lstm: lengths\[0\] is NaN; expected an integer in \[1, T\] = \[1, 4\]$/ })
  t.throws(() => m.forward(x, { lengths: new Int32Array([4, 0]) }), { instanceOf: ValueError, message: /lengths\[1\] is 0: zero-length sequences are not supported/ })
  t.throws(() => m.forward(x, { lengths: tensor([4, 2, 1], [3], { dtype: 'int32' }) }), { instanceOf: ShapeError, message: /lengths \[B\] = \[2\], got \[3\]/ })
  t.throws(() => m.forward(x, { lengths: tensor([4, 2], [2, 1], { dtype: 'int32' }) }), { instanceOf: ShapeError, message: /^LSTM\.forward: expected lengths \[B\] \(1-D\), got \[2, 1\]$/ })
})

// ---- shape errors -----------------------------------------------------------------------------

test('forward names the expected and received shapes', (t) => {
  const m = new LSTM(3, 4, { numLayers: 2 })
  t.throws(() => m.forward(randn([5, 2, 4])), { instanceOf: ShapeError, message: 'LSTM.forward: expected input [T, B, 3], got [5, 2, 4]' })
  t.throws(() => m.forward(randn([5, 3])), { instanceOf: ShapeError, message: /expected input \[T, B, I\] with I = 3, got \[5, 3\]/ })
  t.throws(() => m.forward(randn([5, 2, 3]), { h0: randn([1, 2, 4]) }), {
    instanceOf: ShapeError,
    message: 'LSTM.forward: expected h0 [L·D, B, H] = [2, 2, 4], got [1, 2, 4]',
  })
  t.throws(() => new GRU(3, 4).forward(randn([5, 2, 3]), { c0: randn([1, 2, 4]) } as never), { instanceOf: ValueError, message: /c0 is only for LSTM/ })
  t.throws(() => new Linear(3, 2).forward(randn([4, 5])), { instanceOf: ShapeError, message: 'Linear.forward: expected input [*, 3], got [4, 5]' })
  t.throws(() => new LSTM(0, 4), { instanceOf: ValueError, message: /inputSize must be a positive integer/ })
  t.throws(() => new LSTM(3, 4, { dropout: 1 }), { instanceOf: ValueError, message: /dropout must be a number in \[0, 1\)/ })
})

// ---- state dicts ------------------------------------------------------------------------------

test('stateDict / loadStateDict round trip gives the same outputs', (t) => {
  const a = new LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 51 })
  const b = new LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 52 })
  const x = randn([5, 2, 3], { seed: 53 })
  t.notDeepEqual(arr(a.forward(x).output), arr(b.forward(x).output))
  const params = b.parameters()
  const res = b.loadStateDict(a.stateDict())
  t.deepEqual(res, { missingKeys: [], unexpectedKeys: [] })
  t.deepEqual(arr(b.forward(x).output), arr(a.forward(x).output))
  t.true(b.parameters().every((p, i) => p === params[i]), 'the parameter objects are kept (optimizers stay valid)')
  // A snapshot (detached copy) is not changed by later updates of the source.
  const snap = Object.fromEntries(Object.entries(a.stateDict()).map(([k, v]) => [k, v.detach()]))
  const before = arr(snap['weight_ih_l0']!)
  a.stateDict()['weight_ih_l0']!.assign(ones([16, 3]))
  t.deepEqual(arr(snap['weight_ih_l0']!), before)
})

test('loadStateDict: a shape mismatch is a ShapeError naming the parameter, and nothing is half-loaded', (t) => {
  const src = new LSTM(3, 4, { seed: 61 }).stateDict()
  const dst = new LSTM(2, 4, { seed: 62 })
  const before = dst.parameters().map(arr)
  const err = t.throws(() => dst.loadStateDict(src), { instanceOf: ShapeError })
  t.regex(err!.message, /'weight_ih_l0' expected shape \[16, 2\], got \[16, 3\]/)
  t.is(err!.op, 'loadStateDict')
  t.deepEqual(dst.parameters().map(arr), before, 'the biases, which fit, were not loaded either')

  // Every mismatch is listed.
  const err2 = t.throws(() => new LSTM(3, 5).loadStateDict(src), { instanceOf: ShapeError })
  t.regex(err2!.message, /'weight_ih_l0' expected shape \[20, 3\], got \[16, 3\]/)
  t.regex(err2!.message, /'bias_hh_l0' expected shape \[20\], got \[16\]/)
})

test('loadStateDict: missing and unexpected keys; strict false loads the rest', (t) => {
  const src = new LSTM(3, 4, { seed: 63 }).stateDict()
  const partial = { ...src, extra: ones([1]) } as Record<string, Tensor>
  delete partial['bias_hh_l0']
  const dst = new LSTM(3, 4, { seed: 64 })
  const before = dst.parameters().map(arr)
  const err = t.throws(() => dst.loadStateDict(partial), { instanceOf: ValueError })
  t.regex(err!.message, /missing keys: 'bias_hh_l0'/)
  t.regex(err!.message, /unexpected keys: 'extra'/)
  t.deepEqual(dst.parameters().map(arr), before)
  const res = dst.loadStateDict(partial, { strict: false })
  t.deepEqual(res, { missingKeys: ['bias_hh_l0'], unexpectedKeys: ['extra'] })
  t.deepEqual(arr(dst.stateDict()['weight_ih_l0']!), arr(src['weight_ih_l0']!))
  t.deepEqual(arr(dst.stateDict()['bias_hh_l0']!), before[3])
  t.throws(() => dst.loadStateDict({ ...src, weight_ih_l0: tensor(new Int32Array(48), [16, 3]) }), {
    instanceOf: DTypeError,
    message: /'weight_ih_l0' expected dtype float32, got int32/,
  })
})

// ---- train / eval -----------------------------------------------------------------------------

test('train() / eval() toggle dropout and propagate to children', (t) => {
  const net = new Sequential(new Linear(4, 64, { seed: 1 }), new Dropout(0.5, { seed: 2 }))
  const x = ones([8, 4])
  t.true(net.training)
  net.eval()
  t.true(net.modules().every((m) => !m.training))
  const e1 = arr(net.forward(x))
  const e2 = arr(net.forward(x))
  t.deepEqual(e1, e2)
  t.false(e1.includes(0))
  net.train()
  t.true(net.modules().every((m) => m.training))
  const d1 = arr(net.forward(x))
  const d2 = arr(net.forward(x))
  const zeros = d1.filter((v) => v === 0).length
  t.true(zeros > 0.35 * d1.length && zeros < 0.65 * d1.length, `about half dropped: ${zeros}/${d1.length}`)
  t.notDeepEqual(d1, d2, 'a new mask every call')
  d1.forEach((v, i) => {
    if (v !== 0) t.true(Math.abs(v - 2 * e1[i]!) < 1e-5)
  })

  // Dropout between recurrent layers: training only, and never after the last layer.
  const lstm = new LSTM(3, 8, { numLayers: 2, dropout: 0.5, seed: 3 })
  const xs = randn([4, 2, 3], { seed: 4 })
  const a = arr(lstm.forward(xs).output)
  const b = arr(lstm.forward(xs).output)
  t.notDeepEqual(a, b)
  t.false(a.includes(0), 'no dropout on the last layer output')
  lstm.eval()
  t.deepEqual(arr(lstm.forward(xs).output), arr(lstm.forward(xs).output))
  const single = new LSTM(3, 8, { dropout: 0.5, seed: 3 })
  t.deepEqual(arr(single.forward(xs).output), arr(single.forward(xs).output), 'one layer: dropout never applies')
})

// ---- gradients, other layers, losses, optimizers ----------------------------------------------

test('backward reaches every parameter with its own shape', (t) => {
  const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 71 })
  const head = new Linear(8, 1, { seed: 72 })
  const y = head.forward(lstm.forward(randn([5, 2, 3], { seed: 73 }), { lengths: [5, 2] }).output)
  mse(y, randn([5, 2, 1], { seed: 74 })).backward()
  for (const [name, p] of [...lstm.namedParameters(), ...head.namedParameters()]) {
    const g = p.grad
    t.truthy(g, `${name} has a gradient`)
    t.deepEqual(g!.shape, p.shape, name)
    t.true(arr(g!).some((v) => v !== 0), `${name} gradient is not all zero`)
  }
  lstm.zeroGrad()
  t.true(lstm.parameters().every((p) => p.grad === null))
})

test('Linear computes x Wᵀ + b on any leading shape', (t) => {
  const lin = new Linear(3, 2)
  lin.loadStateDict({ weight: tensor([[1, 2, 3], [-1, 0, 0.5]]), bias: tensor([0.5, -0.5]) })
  const y = lin.forward(tensor([[[1, 1, 1]], [[2, 0, -2]]]))
  t.deepEqual(y.shape, [2, 1, 2])
  assertClose(t, arr(y), [6.5, -1, -3.5, -3.5], 1e-6)
})

test('Embedding looks up rows; ReLU and Sequential compose', (t) => {
  const emb = new Embedding(5, 3, { seed: 1 })
  const w = arr(emb.weight)
  const y = emb.forward(tensor(new Int32Array([4, 0, 4, 2]), [2, 2]))
  t.deepEqual(y.shape, [2, 2, 3])
  t.deepEqual(arr(y), [...w.slice(12, 15), ...w.slice(0, 3), ...w.slice(12, 15), ...w.slice(6, 9)])
  const r = new ReLU().forward(tensor([-1, 2]))
  t.deepEqual(arr(r), [0, 2])
})

test('losses: mse reductions and crossEntropy over [*, C] logits', (t) => {
  const p = tensor([1, 2, 3, 4])
  const q = tensor([1, 0, 3, 1])
  t.is(mse(p, q).itemSync(), (4 + 9) / 4)
  t.is(mse(p, q, { reduction: 'sum' }).itemSync(), 13)
  t.deepEqual(arr(mse(p, q, { reduction: 'none' })), [0, 4, 0, 9])
  const logits = tensor([[[1, 2, 3]], [[0, 0, 0]]]) // [T=2, B=1, C=3]
  const targets = tensor(new Int32Array([2, 1]), [2, 1])
  const l0 = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)))
  const l1 = Math.log(3)
  assertClose(t, [crossEntropy(logits, targets).itemSync()], [(l0 + l1) / 2], 1e-6)
  assertClose(t, [crossEntropy(logits, targets, { reduction: 'sum' }).itemSync()], [l0 + l1], 1e-5)
  assertClose(t, [crossEntropy(logits, targets, { ignoreIndex: 1, reduction: 'sum' }).itemSync()], [l0], 1e-5)
  assertClose(t, [crossEntropy(logits, targets, { ignoreIndex: 1 }).itemSync()], [l0], 1e-5)
  t.throws(() => crossEntropy(logits, tensor(new Int32Array([2, 1]))), { instanceOf: ShapeError, message: /logits \[2, 1, 3\] and targets \[2\]/ })
})

test('SGD with momentum and Adam follow PyTorch\'s update rules exactly', (t) => {
  // Minimise Σ (θ − target)² with θ a Linear's bias: g = 2 (θ − target).
  const run = (make: (ps: Tensor[]) => { step(): void; zeroGrad(): void }, steps: number) => {
    const lin = new Linear(1, 2, { bias: true, seed: 5 })
    lin.loadStateDict({ weight: tensor([[0], [0]]), bias: tensor([1, -2]) })
    const opt = make([lin.bias!])
    const target = tensor([0.5, 0.5])
    const hist: number[][] = []
    for (let i = 0; i < steps; i++) {
      opt.zeroGrad()
      lin.bias!.sub(target).square().sum().backward()
      opt.step()
      hist.push(arr(lin.bias!))
    }
    t.is(lin.weight.grad, null, 'parameters not given to the optimizer are untouched')
    return hist
  }
  // SGD momentum 0.9, dampening 0, nesterov false, weightDecay 0.1 (by hand).
  const sgd = run((ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 }), 3)
  let th = [1, -2]
  let buf: number[] | null = null
  const want: number[][] = []
  for (let i = 0; i < 3; i++) {
    const g = th.map((v) => 2 * (v - 0.5) + 0.1 * v)
    buf = buf === null ? g : buf.map((b, j) => 0.9 * b + g[j]!)
    th = th.map((v, j) => v - 0.1 * buf![j]!)
    want.push(th)
  }
  sgd.forEach((h, i) => assertClose(t, h, want[i]!, 1e-6, `SGD step ${i + 1}`))

  const adam = run((ps) => new Adam(ps, { lr: 0.05, betas: [0.8, 0.99], eps: 1e-6 }), 4)
  th = [1, -2]
  let m = [0, 0]
  let v = [0, 0]
  const wantA: number[][] = []
  for (let s = 1; s <= 4; s++) {
    const g = th.map((x) => 2 * (x - 0.5))
    m = m.map((x, j) => 0.8 * x + 0.2 * g[j]!)
    v = v.map((x, j) => 0.99 * x + 0.01 * g[j]! ** 2)
    const bc1 = 1 - 0.8 ** s
    const bc2 = 1 - 0.99 ** s
    th = th.map((x, j) => x - (0.05 / bc1) * (m[j]! / (Math.sqrt(v[j]!) / Math.sqrt(bc2) + 1e-6)))
    wantA.push(th)
  }
  adam.forEach((h, i) => assertClose(t, h, wantA[i]!, 1e-5, `Adam step ${i + 1}`))
})

test.serial('optimizer steps free their intermediates and keep the gradients', async (t) => {
  const model = new LSTM(2, 3, { numLayers: 2, seed: 81 })
  const x = randn([4, 2, 2], { seed: 82 })
  for (const opt of [new Adam(model.parameters()), new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 0.01 })]) {
    for (let i = 0; i < 2; i++) {
      opt.zeroGrad()
      model.forward(x).output.sum().backward()
      opt.step() // the first step allocates the optimizer state
    }
    const before = await liveTensorsAfterGC()
    opt.step()
    opt.step()
    await synchronize()
    // ≤: jobs that finish and garbage collected meanwhile can only lower the count; a leak raises it.
    t.true(memory().tensors <= before, `${opt.constructor.name}.step() leaves no live temporaries: ${memory().tensors} live, ${before} before`)
    t.true(model.parameters().every((p) => p.grad !== null), 'step() does not clear the gradients')
  }
})

test('optimizers reject bad options', (t) => {
  const ps = new Linear(2, 2).parameters()
  t.throws(() => new SGD(ps, { lr: -1 }), { instanceOf: ValueError, message: /lr must be a finite number ≥ 0/ })
  t.throws(() => new SGD([], { lr: 0.1 }), { instanceOf: ValueError, message: /empty parameter list/ })
  t.throws(() => new SGD(ps, { lr: 0.1, nesterov: true }), { instanceOf: ValueError, message: /nesterov/ })
  t.throws(() => new Adam(ps, { betas: [0.9, 1] }), { instanceOf: ValueError, message: /betas/ })
})

test('toString shows the module tree', (t) => {
  const net = new Sequential(new Linear(3, 4), new Tanh())
  t.is(net.toString(), 'Sequential(\n  (0): Linear(inFeatures=3, outFeatures=4, bias=true)\n  (1): Tanh()\n)')
  t.is(new LSTM(3, 4, { numLayers: 2, bidirectional: true }).toString(), 'LSTM(3, 4, numLayers=2, bidirectional=true)')
  t.is(new GRU(3, 4, { resetAfter: false }).toString(), 'GRU(3, 4, resetAfter=false)')
})

test('reshape keeps batch rows apart (sanity of the helpers used above)', (t) => {
  const x = tensor([1, 2, 3, 4, 5, 6], [3, 2, 1])
  t.deepEqual(arr(reshape(slice(x, 1, 1, 1), [3])), [2, 4, 6])
})
