/**
 * RNNCell, LSTMCell and GRUCell: PyTorch's names, layouts and initialisation; one step equals the
 * layer op with T = 1 and a loop of steps equals the LSTM/GRU/RNN modules; values and gradients
 * equal PyTorch's cells on hand-set weights (fixtures written by `fixtures/make_cells.py`), a
 * torch.nn.LSTMCell state dict loads; central-difference gradient checks in float64; errors.
 */

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import {
  DTypeError,
  GRU,
  GRUCell,
  LSTM,
  LSTMCell,
  RNN,
  RNNCell,
  type RNNCellBase,
  type RNNBase,
  ShapeError,
  type Tensor,
  ValueError,
  loadTorchStateDict,
  noGrad,
  randn,
  recurrentLayer,
  reshape,
  tensor,
  tidy,
} from '../index.js'

const here = dirname(fileURLToPath(import.meta.url))
const F64 = { dtype: 'float64' as const }

function values(t: Tensor): number[] {
  return Array.from(t.dataSync())
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

type CellKindName = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru' | 'gru_reset_before'
const KINDS: CellKindName[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru', 'gru_reset_before']

function makeCell(kind: CellKindName, I: number, H: number, options: { seed?: number; dtype?: 'float32' | 'float64'; bias?: boolean } = {}): RNNCellBase {
  switch (kind) {
    case 'rnn_tanh':
      return new RNNCell(I, H, options)
    case 'rnn_relu':
      return new RNNCell(I, H, { ...options, nonlinearity: 'relu' })
    case 'lstm':
      return new LSTMCell(I, H, options)
    case 'gru':
      return new GRUCell(I, H, options)
    case 'gru_reset_before':
      return new GRUCell(I, H, { ...options, resetAfter: false })
  }
}

function makeModule(kind: CellKindName, I: number, H: number, options: { seed?: number; dtype?: 'float32' | 'float64' } = {}): RNNBase {
  switch (kind) {
    case 'rnn_tanh':
      return new RNN(I, H, options)
    case 'rnn_relu':
      return new RNN(I, H, { ...options, nonlinearity: 'relu' })
    case 'lstm':
      return new LSTM(I, H, options)
    case 'gru':
      return new GRU(I, H, options)
    case 'gru_reset_before':
      return new GRU(I, H, { ...options, resetAfter: false })
  }
}

/** One step of any cell: `{ h, c? }` whatever the cell's own signature. */
function stepOf(cell: RNNCellBase, x: Tensor, h?: Tensor, c?: Tensor): { h: Tensor; c?: Tensor } {
  if (cell instanceof LSTMCell) return cell.forward(x, h && c ? { h, c } : undefined)
  return { h: (cell as RNNCell | GRUCell).forward(x, h) }
}

/** The cell's parameters under the names of a one-layer module's (`weight_ih` → `weight_ih_l0`). */
function asLayer0(cell: RNNCellBase): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(cell.stateDict()).map(([k, v]) => [`${k}_l0`, v]))
}

// ---- parameters ---------------------------------------------------------------------------------

test('parameters: PyTorch names, layouts and order, U(−1/√H, 1/√H), bias: false drops both biases', (t) => {
  const gates: Record<CellKindName, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3, gru_reset_before: 3 }
  for (const kind of KINDS) {
    const cell = makeCell(kind, 3, 16)
    const G = gates[kind] * 16
    t.deepEqual(
      cell.namedParameters().map(([n, p]) => [n, p.shape]),
      [
        ['weight_ih', [G, 3]],
        ['weight_hh', [G, 16]],
        ['bias_ih', [G]],
        ['bias_hh', [G]],
      ],
      kind,
    )
    t.deepEqual(Object.keys(cell.stateDict()), ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'])
    t.is(cell.mode, kind)
    t.is(cell.gateCount, gates[kind])
    for (const p of cell.parameters()) {
      t.true(p.requiresGrad)
      t.true(values(p).every((v) => Math.abs(v) <= 1 / 4), `${kind}: every value within ±1/√H`)
    }
    // The spread is the bound's, not a narrower one.
    t.true(Math.max(...values(cell.weight_ih).map(Math.abs)) > 0.2)
    const nb = makeCell(kind, 3, 16, { bias: false })
    t.deepEqual(nb.namedParameters().map(([n]) => n), ['weight_ih', 'weight_hh'])
    t.is(nb.bias_ih, null)
  }
  t.is(new GRUCell(2, 3).toString(), 'GRUCell(2, 3)')
  t.is(new GRUCell(2, 3, { resetAfter: false, bias: false }).toString(), 'GRUCell(2, 3, bias=false, resetAfter=false)')
  t.is(new RNNCell(2, 3, { nonlinearity: 'relu' }).toString(), "RNNCell(2, 3, nonlinearity='relu')")
})

test('a seed gives a cell the weights of the one-layer module with that seed; dtype option', (t) => {
  for (const kind of KINDS) {
    const cell = makeCell(kind, 3, 5, { seed: 42 })
    const mod = makeModule(kind, 3, 5, { seed: 42 })
    const w = mod.layerWeights(0)
    t.deepEqual(values(cell.weight_ih), values(w.wIh), kind)
    t.deepEqual(values(cell.weight_hh), values(w.wHh))
    t.deepEqual(values(cell.bias_ih!), values(w.bIh!))
    t.deepEqual(values(cell.bias_hh!), values(w.bHh!))
    t.notDeepEqual(values(makeCell(kind, 3, 5, { seed: 43 }).weight_ih), values(w.wIh))
    t.true(makeCell(kind, 3, 5, F64).parameters().every((p) => p.dtype === 'float64'))
  }
})

// ---- one step = the layer op; a loop = the module ------------------------------------------------

test('one step equals the layer op run with T = 1 (float32, given and zero states)', (t) => {
  const B = 3
  const I = 4
  const H = 5
  for (const kind of KINDS) {
    const cell = makeCell(kind, I, H, { seed: 7 })
    const x = randn([B, I], { seed: 1 })
    const h0 = randn([B, H], { seed: 2 })
    const c0 = kind === 'lstm' ? randn([B, H], { seed: 3 }) : null
    const w = { wIh: cell.weight_ih, wHh: cell.weight_hh, bIh: cell.bias_ih, bHh: cell.bias_hh }
    const ref = recurrentLayer(kind, reshape(x, [1, B, I]), h0, c0, w)
    const got = stepOf(cell, x, h0, c0 ?? undefined)
    t.deepEqual(got.h.shape, [B, H])
    t.deepEqual(values(got.h), values(ref.hT), kind)
    t.deepEqual(values(got.h), values(ref.y), kind)
    if (kind === 'lstm') t.deepEqual(values(got.c!), values(ref.cT!))
    // No state: zeros.
    const zero = tensor(new Float32Array(B * H), [B, H])
    const refZero = recurrentLayer(kind, reshape(x, [1, B, I]), zero, kind === 'lstm' ? zero : null, w)
    const gotZero = stepOf(cell, x)
    t.deepEqual(values(gotZero.h), values(refZero.hT))
    if (kind === 'lstm') t.deepEqual(values(gotZero.c!), values(refZero.cT!))
  }
})

test('a loop of cell steps equals the LSTM/GRU/RNN module over T steps (float64 and float32)', (t) => {
  const T = 5
  const B = 3
  const I = 4
  const H = 6
  for (const dtype of ['float64', 'float32'] as const) {
    const tol = dtype === 'float64' ? 1e-12 : 2e-6
    for (const kind of KINDS) {
      const mod = makeModule(kind, I, H, { seed: 11, dtype })
      const cell = makeCell(kind, I, H, { seed: 99, dtype })
      // The module's weights, loaded under the cell's (PyTorch) names.
      cell.loadStateDict(Object.fromEntries(Object.entries(mod.stateDict()).map(([k, v]) => [k.replace(/_l0$/, ''), v])))
      const x = randn([T, B, I], { seed: 5, dtype })
      const h0 = randn([1, B, H], { seed: 6, dtype })
      const c0 = randn([1, B, H], { seed: 8, dtype })
      const r = mod.forward(x, kind === 'lstm' ? { h0, c0 } : { h0 }) as { output: Tensor; hN: Tensor; cN?: Tensor }
      let h = reshape(h0, [B, H])
      let c: Tensor | undefined = kind === 'lstm' ? reshape(c0, [B, H]) : undefined
      const out = values(r.output)
      for (let s = 0; s < T; s++) {
        const xs = reshape(tensor(values(x).slice(s * B * I, (s + 1) * B * I), [B * I], { dtype }), [B, I])
        const next = stepOf(cell, xs, h, c)
        h = next.h
        c = next.c
        const diff = maxAbsDiff(values(h), out.slice(s * B * H, (s + 1) * B * H))
        t.true(diff <= tol, `${dtype} ${kind} step ${s}: max difference ${diff}`)
      }
      t.true(maxAbsDiff(values(h), values(r.hN)) <= tol)
      if (kind === 'lstm') t.true(maxAbsDiff(values(c!), values(r.cN!)) <= tol)
    }
  }
})

// ---- PyTorch -------------------------------------------------------------------------------------

interface Flat {
  shape: number[]
  data: number[]
}
interface TorchCase {
  kind: 'lstm' | 'gru' | 'gru_reset_before' | 'rnn'
  inputSize: number
  hiddenSize: number
  batch: number
  steps: number
  bias: boolean
  nonlinearity?: 'tanh' | 'relu'
  stateDictKeys: string[]
  stateDict: Record<string, Flat>
  x: Flat
  h0?: Flat
  c0?: Flat
  h: Flat
  c?: Flat
  coefH: Flat
  coefC?: Flat
  loss: number
  grad: Record<string, Flat>
}
const fixture = JSON.parse(readFileSync(join(here, 'fixtures', 'cells.json'), 'utf8')) as { cases: Record<string, TorchCase> }

function cellFor(c: TorchCase, dtype: 'float32' | 'float64'): RNNCellBase {
  const o = { bias: c.bias, dtype }
  if (c.kind === 'lstm') return new LSTMCell(c.inputSize, c.hiddenSize, o)
  if (c.kind === 'gru') return new GRUCell(c.inputSize, c.hiddenSize, o)
  if (c.kind === 'gru_reset_before') return new GRUCell(c.inputSize, c.hiddenSize, { ...o, resetAfter: false })
  return new RNNCell(c.inputSize, c.hiddenSize, { ...o, nonlinearity: c.nonlinearity ?? 'tanh' })
}

/** Rows `[s·n, (s+1)·n)` of a flat fixture array. */
function rows(f: Flat, s: number, n: number): number[] {
  return f.data.slice(s * n, (s + 1) * n)
}

test('cells equal PyTorch (torch.nn.LSTMCell, GRUCell, RNNCell; Keras reset-before GRU) on hand-set weights: states and gradients', (t) => {
  t.true(Object.keys(fixture.cases).length >= 7)
  for (const [name, c] of Object.entries(fixture.cases)) {
    const { batch: B, inputSize: I, hiddenSize: H, steps: T } = c
    for (const dtype of ['float64', 'float32'] as const) {
      const cell = cellFor(c, dtype)
      t.deepEqual(Object.keys(cell.stateDict()), c.stateDictKeys, `${name}: the state dict keys and order of PyTorch's cell`)
      cell.loadStateDict(Object.fromEntries(Object.entries(c.stateDict).map(([k, v]) => [k, tensor(v.data, v.shape, F64)])))
      const leaf = (data: number[], shape: number[]) => {
        const x = tensor(data, shape, { dtype })
        x.requiresGrad = true
        return x
      }
      const xs = Array.from({ length: T }, (_, s) => leaf(rows(c.x, s, B * I), [B, I]))
      const h0 = c.h0 ? leaf(c.h0.data, [B, H]) : undefined
      const c0 = c.c0 ? leaf(c.c0.data, [B, H]) : undefined
      const hTol = dtype === 'float64' ? 1e-13 : 2e-6
      const loss = tidy(() => {
        let h = h0
        let cs = c0
        let total: Tensor | null = null
        for (let s = 0; s < T; s++) {
          const next = stepOf(cell, xs[s]!, h, cs)
          h = next.h
          cs = next.c
          const diff = maxAbsDiff(values(h), rows(c.h, s, B * H))
          t.true(diff <= hTol, `${name} ${dtype} h at step ${s}: max difference ${diff}`)
          if (c.c) t.true(maxAbsDiff(values(cs!), rows(c.c, s, B * H)) <= hTol, `${name} ${dtype} c at step ${s}`)
          const term = h.mul(tensor(rows(c.coefH, s, B * H), [B, H], { dtype })).sum()
          total = total === null ? term : total.add(term)
        }
        if (c.coefC) total = total!.add(cs!.mul(tensor(c.coefC.data, [B, H], { dtype })).sum())
        return total!
      })
      t.true(Math.abs(loss.itemSync() - c.loss) <= (dtype === 'float64' ? 1e-13 : 1e-5), `${name} ${dtype} loss`)
      if (dtype === 'float32') continue
      loss.backward()
      const got: Record<string, number[]> = Object.fromEntries(cell.namedParameters().map(([n, p]) => [n, values(p.grad!)]))
      got.x = xs.flatMap((x) => values(x.grad!))
      if (h0) got.h0 = values(h0.grad!)
      if (c0) got.c0 = values(c0.grad!)
      t.deepEqual(Object.keys(got).sort(), Object.keys(c.grad).sort(), `${name}: every gradient is there`)
      for (const [k, want] of Object.entries(c.grad)) {
        const diff = maxAbsDiff(got[k]!, want.data)
        t.true(diff <= 1e-12, `${name} grad ${k}: max difference ${diff}`)
      }
    }
  }
})

test('a torch.nn.LSTMCell state dict (safetensors, float32) loads with loadTorchStateDict and runs as PyTorch', async (t) => {
  const c = fixture.cases.lstm!
  const cell = new LSTMCell(c.inputSize, c.hiddenSize)
  const r = await loadTorchStateDict(cell, join(here, 'fixtures', 'lstm-cell.safetensors'))
  t.deepEqual(r, { missingKeys: [], unexpectedKeys: [] })
  for (const [k, v] of Object.entries(c.stateDict)) {
    t.deepEqual(values(cell.stateDict()[k]!), Array.from(Float32Array.from(v.data)), k)
  }
  const { batch: B, inputSize: I, hiddenSize: H } = c
  const out = cell.forward(tensor(rows(c.x, 0, B * I), [B, I]), { h: tensor(c.h0!.data, [B, H]), c: tensor(c.c0!.data, [B, H]) })
  t.true(maxAbsDiff(values(out.h), rows(c.h, 0, B * H)) <= 2e-6)
  t.true(maxAbsDiff(values(out.c), rows(c.c!, 0, B * H)) <= 2e-6)
  // A GRUCell is not an LSTMCell: the shapes are refused by name, and nothing is loaded.
  const gru = new GRUCell(c.inputSize, c.hiddenSize)
  const before = values(gru.weight_ih)
  const e = await t.throwsAsync(loadTorchStateDict(gru, join(here, 'fixtures', 'lstm-cell.safetensors')), { instanceOf: ShapeError })
  t.regex(e!.message, /'weight_ih' expected shape \[12, 3\], got \[16, 3\]/)
  t.deepEqual(values(gru.weight_ih), before)
})

// ---- gradients -----------------------------------------------------------------------------------

/** Up to `m` indices spread over [0, n), both ends included. */
function spread(n: number, m: number): number[] {
  if (n <= m) return Array.from({ length: n }, (_, i) => i)
  return Array.from({ length: m }, (_, k) => Math.round((k * (n - 1)) / (m - 1)))
}

/**
 * Compares `backward()`'s gradients of `loss()` with central differences over `perTensor`
 * entries of every float64 leaf in `wrt`, each within 1e-6 of the larger magnitude (+1e-9).
 */
function gradCheck(t: ExecutionContext, label: string, wrt: Record<string, Tensor>, loss: () => Tensor, perTensor = 8): void {
  const eps = 1e-6
  for (const p of Object.values(wrt)) p.zeroGrad()
  tidy(() => loss().backward())
  const analytic: Record<string, number[]> = {}
  for (const [name, p] of Object.entries(wrt)) {
    const g = p.grad
    t.truthy(g, `${label} ${name} has a gradient`)
    analytic[name] = values(g!)
    g!.dispose()
  }
  const f = () => tidy(() => noGrad(loss).itemSync())
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
      t.true(Math.abs(num - ana) <= 1e-6 * Math.max(Math.abs(ana), Math.abs(num)) + 1e-9, `${label} ${name}[${i}]: backward ${ana}, central difference ${num}`)
    }
    at(base)
  }
}

test('gradient check (float64, central differences) through one cell step of every kind', (t) => {
  const B = 2
  const I = 3
  const H = 4
  for (const kind of KINDS) {
    const cell = makeCell(kind, I, H, { seed: 21, dtype: 'float64' })
    const leaf = (shape: number[], seed: number) => {
      const v = randn(shape, { seed, dtype: 'float64' })
      v.requiresGrad = true
      return v
    }
    const x = leaf([B, I], 1)
    const h0 = leaf([B, H], 2)
    const c0 = leaf([B, H], 3)
    const wh = randn([B, H], { seed: 4, dtype: 'float64' })
    const wc = randn([B, H], { seed: 5, dtype: 'float64' })
    const wrt: Record<string, Tensor> = { x, h0, ...cell.stateDict() }
    if (kind === 'lstm') wrt.c0 = c0
    gradCheck(t, kind, wrt, () => {
      const r = stepOf(cell, x, h0, kind === 'lstm' ? c0 : undefined)
      const l = r.h.mul(wh).sum()
      return r.c ? l.add(r.c.mul(wc).sum()) : l
    })
  }
})

test('gradients flow through several chained steps and equal the module run over the sequence (float64)', (t) => {
  const T = 4
  const B = 2
  const I = 3
  const H = 5
  for (const kind of KINDS) {
    const cell = makeCell(kind, I, H, { seed: 31, dtype: 'float64' })
    const mod = makeModule(kind, I, H, { seed: 77, dtype: 'float64' })
    mod.loadStateDict(asLayer0(cell))
    const xData = values(randn([T, B, I], { seed: 9, dtype: 'float64' }))
    const wh = randn([B, H], { seed: 10, dtype: 'float64' })

    // The cell, chained T times; the loss sees only the last state.
    const xs = Array.from({ length: T }, (_, s) => {
      const v = tensor(xData.slice(s * B * I, (s + 1) * B * I), [B, I], F64)
      v.requiresGrad = true
      return v
    })
    tidy(() => {
      let h: Tensor | undefined
      let c: Tensor | undefined
      for (const x of xs) ({ h, c } = stepOf(cell, x, h, c))
      h!.mul(wh).sum().backward()
    })
    // The module over the whole sequence, same loss.
    const xSeq = tensor(xData, [T, B, I], F64)
    xSeq.requiresGrad = true
    tidy(() => {
      const r = mod.forward(xSeq) as { hN: Tensor }
      reshape(r.hN, [B, H]).mul(wh).sum().backward()
    })

    const gx = values(xSeq.grad!)
    for (let s = 0; s < T; s++) {
      const g = values(xs[s]!.grad!)
      t.true(
        g.some((v) => Math.abs(v) > 1e-8),
        `${kind}: x at step ${s} of ${T} gets a gradient through the chain`,
      )
      t.true(maxAbsDiff(g, gx.slice(s * B * I, (s + 1) * B * I)) <= 1e-12, `${kind}: dx at step ${s} equals the module's`)
    }
    const modGrads = Object.fromEntries(mod.namedParameters().map(([n, p]) => [n.replace(/_l0$/, ''), values(p.grad!)]))
    for (const [n, p] of cell.namedParameters()) {
      const diff = maxAbsDiff(values(p.grad!), modGrads[n]!)
      t.true(diff <= 1e-12, `${kind}: grad ${n} equals the module's (max difference ${diff})`)
    }
  }
})

// ---- states, dtypes, errors ----------------------------------------------------------------------

test("default states are zeros in the input's dtype; to('float64') converts a cell", (t) => {
  const cell = new LSTMCell(3, 4, { seed: 1 })
  t.is(cell.to('float64'), cell)
  const x = randn([2, 3], { seed: 2, dtype: 'float64' })
  const { h, c } = cell.forward(x)
  t.is(h.dtype, 'float64')
  t.is(c.dtype, 'float64')
  const zero = tensor(new Float64Array(8), [2, 4], F64)
  const given = cell.forward(x, { h: zero, c: zero })
  t.deepEqual(values(h), values(given.h))
  t.deepEqual(values(c), values(given.c))
  const gru = new GRUCell(3, 4, { seed: 1, dtype: 'float64' })
  t.deepEqual(values(gru.forward(x)), values(gru.forward(x, zero)))
  t.deepEqual(values(gru.forward(x, null)), values(gru.forward(x, zero)))
})

test('wrong shapes, dtypes and states are refused by name, with what was expected and what came', (t) => {
  const lstm = new LSTMCell(3, 4)
  let e: Error | undefined = t.throws(() => lstm.forward(randn([2, 5])), { instanceOf: ShapeError })
  t.is(e!.message, 'LSTMCell.forward: expected input x [B, 3], got [2, 5]')
  e = t.throws(() => lstm.forward(randn([3])), { instanceOf: ShapeError })
  t.is(e!.message, 'LSTMCell.forward: expected input x [B, 3], got [3] (unbatched 1-D input is not supported; add a batch axis of 1)')
  e = t.throws(() => lstm.forward(randn([1, 2, 3])), { instanceOf: ShapeError })
  t.regex(e!.message, /expected input x \[B, 3\], got \[1, 2, 3\]/)
  e = t.throws(() => lstm.forward(randn([2, 3]), { h: randn([2, 4]), c: randn([3, 4]) }), { instanceOf: ShapeError })
  t.is(e!.message, 'LSTMCell.forward: expected c [B, H] = [2, 4], got [3, 4]')
  e = t.throws(() => lstm.forward(randn([2, 3]), { h: randn([2, 4]) } as never), { instanceOf: ValueError })
  t.regex(e!.message, /LSTMCell\.forward: the state must be an object \{ h, c \}/)
  e = t.throws(() => lstm.forward(randn([2, 3], F64)), { instanceOf: DTypeError })
  t.is(e!.message, "LSTMCell.forward: expected input x of the parameters' dtype float32, got float64")
  const gru = new GRUCell(3, 4)
  e = t.throws(() => gru.forward(randn([2, 3]), randn([2, 5])), { instanceOf: ShapeError })
  t.is(e!.message, 'GRUCell.forward: expected h [B, H] = [2, 4], got [2, 5]')
  e = t.throws(() => gru.forward(randn([2, 3]), randn([2, 4], F64)), { instanceOf: DTypeError })
  t.is(e!.message, "GRUCell.forward: expected h of the parameters' dtype float32, got float64")
  e = t.throws(() => new RNNCell(3, 4).forward('x' as never), { instanceOf: ValueError })
  t.regex(e!.message, /RNNCell\.forward/)
  t.throws(() => new RNNCell(3, 4, { nonlinearity: 'sigmoid' as never }), { instanceOf: ValueError, message: /RNNCell: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'/ })
  t.throws(() => new LSTMCell(3, 0), { instanceOf: ValueError, message: /LSTMCell.*hiddenSize/ })
  t.throws(() => new GRUCell(3, 4, { resetAfter: 'no' as never }), { instanceOf: ValueError, message: /GRUCell.*resetAfter/ })
})
