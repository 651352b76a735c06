// The fused attention op and the Attention module through the public API: the op against the
// same math composed from existing ops (matmul, tanh, softmax, maskedFill) in value and gradient,
// finite-difference gradients in float64, the length mask, errors checked by class, code, op and
// message, and the module's parameters, memory, reorder and errors. The engine's own checks are
// in crates/core/tests/attention.rs.

import test from 'ava'

import * as r from '../index.js'
import { ArgumentTypeError, Attention, DTypeError, type RecurrentError, ShapeError, ValueError, type Tensor } from '../index.js'

/** An error class of the library (ShapeError, DTypeError, ValueError, …). */
type ErrorClass = abstract new (op: string, detail: string) => RecurrentError

const list = (t: Tensor) => Array.from(t.dataSync())
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}
const rnd = (shape: number[], seed: number) => r.randn(shape, { dtype: 'float64', seed })

const [B, S, A, E] = [3, 5, 4, 6]

interface Inputs {
  q: Tensor
  k: Tensor
  vals: Tensor
  v: Tensor
}
const inputs = (seed: number): Inputs => ({
  q: rnd([B, A], seed),
  k: rnd([S, B, A], seed + 1),
  vals: rnd([S, B, E], seed + 2),
  v: rnd([A], seed + 3),
})

/** The op's math as a chain of existing ops (the composition the fused op replaces). */
function composed(x: Inputs, score: 'additive' | 'dot', lengths: number[] | null) {
  const kb = x.k.transpose(0, 1) // [B, S, A]
  const e =
    score === 'dot'
      ? kb.matmul(x.q.reshape([B, A, 1])).reshape([B, S])
      : kb.add(x.q.reshape([B, 1, A])).tanh().reshape([B * S, A]).matmul(x.v.reshape([A, 1])).reshape([B, S])
  const masked = lengths === null ? e : e.maskedFill(r.eq(r.sequenceMask(lengths, S), 0), -1e300)
  const weights = masked.softmax(1)
  const context = weights.reshape([B, 1, S]).matmul(x.vals.transpose(0, 1)).reshape([B, E])
  return { context, weights }
}

function fused(x: Inputs, score: 'additive' | 'dot', lengths: number[] | null) {
  return r.attention(x.q, x.k, x.vals, { score, v: score === 'additive' ? x.v : null, lengths })
}

/** Gradients of Σ wc ⊙ context + Σ ww ⊙ weights with respect to q, k, vals and v. */
function grads(x0: Inputs, f: (x: Inputs) => { context: Tensor; weights: Tensor }): number[][] {
  const x = { q: x0.q.detach(), k: x0.k.detach(), vals: x0.vals.detach(), v: x0.v.detach() }
  for (const t of Object.values(x)) t.requiresGrad = true
  const o = f(x)
  const loss = o.context.mul(rnd([B, E], 91)).sum().add(o.weights.mul(rnd([B, S], 92)).sum())
  loss.backward()
  return [x.q, x.k, x.vals, x.v].map((t) => (t.grad ? list(t.grad) : new Array(t.shape.reduce((a, b) => a * b, 1)).fill(0)))
}

for (const score of ['additive', 'dot'] as const) {
  for (const lengths of [null, [5, 2, 1]]) {
    test(`the ${score} op equals the composition of existing ops, values and gradients (lengths ${lengths ? 'given' : 'absent'})`, (t) => {
      const x = inputs(7)
      const a = fused(x, score, lengths)
      const b = composed(x, score, lengths)
      const dc = maxDiff(list(a.context), list(b.context))
      const dw = maxDiff(list(a.weights), list(b.weights))
      t.log(`max |fused − composed|: context ${dc.toExponential(2)}, weights ${dw.toExponential(2)}`)
      t.true(dc < 1e-12 && dw < 1e-12)
      t.deepEqual(a.context.shape, [B, E])
      t.deepEqual(a.weights.shape, [B, S])
      const ga = grads(x, (y) => fused(y, score, lengths))
      const gb = grads(x, (y) => composed(y, score, lengths))
      ga.forEach((g, i) => {
        const d = maxDiff(g, gb[i]!)
        t.log(`gradient of ${['query', 'keys', 'values', 'v'][i]}: max diff ${d.toExponential(2)}`)
        t.true(d < 1e-10, `input ${i}: ${d}`)
      })
    })
  }
}

test('gradients of query, keys, values and v match central differences (float64, with lengths)', (t) => {
  const x0 = inputs(21)
  for (const score of ['additive', 'dot'] as const) {
    const lengths = r.tensor(new Int32Array([2, 5, 3]))
    const f = (x: Inputs) => r.attention(x.q, x.k, x.vals, { score, v: score === 'additive' ? x.v : null, lengths })
    const analytic = grads(x0, f)
    const wc = rnd([B, E], 91)
    const ww = rnd([B, S], 92)
    const keys = ['q', 'k', 'vals', 'v'] as const
    let worst = 0
    keys.forEach((name, i) => {
      if (score === 'dot' && name === 'v') return
      const base = list(x0[name])
      const h = 1e-6
      for (let j = 0; j < base.length; j++) {
        const at = (d: number) => {
          const v = base.slice()
          v[j]! += d
          const x = { ...x0, [name]: r.tensor(new Float64Array(v), x0[name].shape) }
          return r.noGrad(() => {
            const o = f(x)
            return o.context.mul(wc).sum().add(o.weights.mul(ww).sum()).itemSync()
          })
        }
        const numeric = (at(h) - at(-h)) / (2 * h)
        worst = Math.max(worst, Math.abs(numeric - analytic[i]![j]!) / Math.max(1e-2, Math.abs(numeric)))
      }
    })
    t.log(`${score}: worst relative error ${worst.toExponential(2)}`)
    t.true(worst < 1e-6)
  }
})

test('positions past a length get weight exactly 0 and do not change the context', (t) => {
  const x = inputs(30)
  const lengths = [3, 1, 5]
  for (const score of ['additive', 'dot'] as const) {
    const o = fused(x, score, lengths)
    const w = list(o.weights)
    for (let b = 0; b < B; b++) {
      const row = w.slice(b * S, (b + 1) * S)
      t.true(row.slice(lengths[b]).every((v) => v === 0), `row ${b}: ${row}`)
      t.true(row.slice(0, lengths[b]).every((v) => v > 0))
      t.true(Math.abs(row.reduce((a, v) => a + v, 0) - 1) < 1e-12)
    }
    // Garbage (huge keys, NaN values) at the padded positions changes nothing.
    const k = list(x.k)
    const vals = list(x.vals)
    for (let b = 0; b < B; b++) {
      for (let s = lengths[b]!; s < S; s++) {
        for (let a = 0; a < A; a++) k[(s * B + b) * A + a] = 1e6
        for (let e = 0; e < E; e++) vals[(s * B + b) * E + e] = Number.NaN
      }
    }
    const padded = { ...x, k: r.tensor(new Float64Array(k), [S, B, A]), vals: r.tensor(new Float64Array(vals), [S, B, E]) }
    const p = fused(padded, score, lengths)
    t.deepEqual(list(p.context), list(o.context))
    t.deepEqual(list(p.weights), w)
    // The three forms of lengths give the same result.
    const asTensor = r.attention(x.q, x.k, x.vals, { score, v: score === 'additive' ? x.v : null, lengths: r.tensor(new Int32Array(lengths)) })
    const asArray = r.attention(x.q, x.k, x.vals, { score, v: score === 'additive' ? x.v : null, lengths: new Int32Array(lengths) })
    t.deepEqual(list(asTensor.context), list(o.context))
    t.deepEqual(list(asArray.weights), w)
  }
})

test('float32 runs and agrees with float64', (t) => {
  const x = inputs(40)
  const to32 = (u: Tensor) => u.cast('float32')
  const x32 = { q: to32(x.q), k: to32(x.k), vals: to32(x.vals), v: to32(x.v) }
  for (const score of ['additive', 'dot'] as const) {
    const a = fused(x32, score, [4, 5, 2])
    t.is(a.context.dtype, 'float32')
    const b = fused(x, score, [4, 5, 2])
    t.true(maxDiff(list(a.context), list(b.context)) < 1e-5)
    t.true(maxDiff(list(a.weights), list(b.weights)) < 1e-5)
  }
})

test('op errors name the op, what was expected and what was got', (t) => {
  const x = inputs(50)
  const check = (fn: () => unknown, cls: ErrorClass, code: string, re: RegExp) => {
    const e = t.throws(fn, { instanceOf: cls })
    t.is(e.code, code)
    t.is(e.op, 'attention')
    t.regex(e.message, re)
  }
  const att = (o: Partial<Parameters<typeof r.attention>[3]>, q = x.q, k = x.k, vals = x.vals) =>
    r.attention(q, k, vals, { score: 'dot', ...o } as Parameters<typeof r.attention>[3])
  check(() => att({}, x.q, rnd([S, B, A + 1], 1)), ShapeError, 'ERR_SHAPE', /^attention: expected keys of shape \[S, 3, 4\].*got \[5, 3, 5\]$/)
  check(() => att({}, x.q, x.k, rnd([S + 1, B, E], 1)), ShapeError, 'ERR_SHAPE', /values of shape \[5, 3, E\].*got \[6, 3, 6\]/)
  check(() => att({}, rnd([B, A, 1], 1)), ShapeError, 'ERR_SHAPE', /query of shape \[B, A\].*got \[3, 4, 1\]/)
  check(() => att({}, x.q, x.k.cast('float32')), DTypeError, 'ERR_DTYPE', /float64 for keys \(the dtype of query\), got float32/)
  check(() => att({ score: 'additive' }), ValueError, 'ERR_VALUE', /additive score needs v of shape \[A\] = \[4\]/)
  check(() => att({ score: 'additive', v: rnd([A + 1], 1) }), ShapeError, 'ERR_SHAPE', /v of shape \[A\] = \[4\], got \[5\]/)
  check(() => att({ v: x.v }), ValueError, 'ERR_VALUE', /dot score takes no v/)
  check(() => att({ score: 'general' as 'dot' }), ValueError, 'ERR_VALUE', /score must be one of 'additive', 'dot', got the string "general"/)
  check(() => att({ lengths: [1, 0, 2] }), ValueError, 'ERR_VALUE', /lengths\[1\] is 0/)
  check(() => att({ lengths: [1, 6, 2] }), ValueError, 'ERR_VALUE', /lengths\[1\] is 6, longer than the sequence/)
  check(() => att({ lengths: [1, Number.NaN, 2] }), ValueError, 'ERR_VALUE', /lengths\[1\] is NaN/)
  check(() => att({ lengths: r.tensor(new Int32Array([1, 7, 2])) }), ValueError, 'ERR_VALUE', /lengths\[1\] is 7/)
  check(() => att({ lengths: [1, 2] }), ShapeError, 'ERR_SHAPE', /lengths \[B\] = \[3\].*got \[2\]/)
  check(() => att({ lengths: r.tensor([1, 2, 3]) }), DTypeError, 'ERR_DTYPE', /int32 lengths, got float32/)
  check(() => att({ lengths: 'abc' as unknown as number[] }), ArgumentTypeError, 'ERR_ARG_TYPE', /lengths must be an int32 Tensor, an Int32Array or an array of numbers, got the string "abc"/)
  check(() => r.attention(x.q, 5 as unknown as Tensor, x.vals, { score: 'dot' }), ArgumentTypeError, 'ERR_ARG_TYPE', /argument 'keys' must be a Tensor, got 5/)
})

// ---- the module ----------------------------------------------------------------------------

const [Q, K, H] = [5, 6, 7]
const enc = (seed: number, b = B) => r.randn([S, b, K], { dtype: 'float64', seed })

test('Attention has PyTorch-style parameters for each score', (t) => {
  const shapes = (m: Attention) => m.namedParameters().map(([n, p]) => `${n} ${JSON.stringify(p.shape)}`)
  // A module's own parameters come before its children's, as in PyTorch's named_parameters().
  t.deepEqual(shapes(new Attention(Q, K, { attentionSize: H })), [
    'v [7]',
    'queryProj.weight [7,5]',
    'keyProj.weight [7,6]',
    'keyProj.bias [7]',
  ])
  t.deepEqual(shapes(new Attention(Q, K)), ['v [6]', 'queryProj.weight [6,5]', 'keyProj.weight [6,6]', 'keyProj.bias [6]'])
  t.deepEqual(shapes(new Attention(Q, K, { score: 'general' })), ['queryProj.weight [6,5]'])
  t.deepEqual(shapes(new Attention(K, K, { score: 'dot' })), [])
  t.regex(String(new Attention(Q, K, { attentionSize: H })), /^Attention\(5, 6, score='bahdanau', attentionSize=7\n/)
})

test('Attention.forward equals the op on the projected query and keys, for every score', (t) => {
  const e = enc(60)
  const lengths = [5, 3, 2]
  for (const score of ['bahdanau', 'general', 'dot'] as const) {
    const m = new Attention(score === 'dot' ? K : Q, K, { score, attentionSize: score === 'bahdanau' ? H : undefined, dtype: 'float64', seed: 3 })
    const q = rnd([B, m.querySize], 61)
    const mem = m.memory(e, lengths)
    const out = m.forward(q, mem)
    t.deepEqual(out.context.shape, [B, K])
    t.deepEqual(out.weights.shape, [B, S])
    let want: { context: Tensor; weights: Tensor }
    if (score === 'bahdanau') {
      const keys = r.linear(e.reshape([S * B, K]), m.keyProj!.weight, m.keyProj!.bias!).reshape([S, B, H])
      want = r.attention(r.linear(q, m.queryProj!.weight), keys, e, { score: 'additive', v: m.v, lengths })
    } else {
      const qq = score === 'general' ? r.linear(q, m.queryProj!.weight) : q
      want = r.attention(qq, e, e, { score: 'dot', lengths })
    }
    t.true(maxDiff(list(out.context), list(want.context)) < 1e-13, score)
    t.deepEqual(list(out.weights), list(want.weights))
    t.true(list(out.weights).filter((_, i) => i % S >= lengths[Math.floor(i / S)]!).every((w) => w === 0))
  }
})

test('Attention parameters get gradients that match central differences (float64)', (t) => {
  const m = new Attention(Q, K, { attentionSize: H, dtype: 'float64', seed: 8 })
  const e = enc(70)
  const q = rnd([B, Q], 71)
  const wc = rnd([B, K], 72)
  const loss = () => {
    const o = m.forward(q, m.memory(e, [4, 5, 1]))
    return o.context.mul(wc).sum().add(o.weights.mul(o.weights).sum())
  }
  m.zeroGrad()
  loss().backward()
  let worst = 0
  for (const [name, p] of m.namedParameters()) {
    const analytic = list(p.grad!)
    const base = list(p)
    const h = 1e-6
    for (let j = 0; j < base.length; j++) {
      const at = (d: number) => {
        const v = base.slice()
        v[j]! += d
        r.noGrad(() => p.assign(r.tensor(new Float64Array(v), p.shape)))
        return r.noGrad(() => loss().itemSync())
      }
      const numeric = (at(h) - at(-h)) / (2 * h)
      r.noGrad(() => p.assign(r.tensor(new Float64Array(base), p.shape)))
      const err = Math.abs(numeric - analytic[j]!) / Math.max(1e-2, Math.abs(numeric))
      t.true(err < 1e-6, `${name}[${j}]: ${err}`)
      worst = Math.max(worst, err)
    }
  }
  t.log(`worst relative error over every parameter: ${worst.toExponential(2)}`)
})

test('AttentionMemory.reorder selects batch rows, as beam search needs', (t) => {
  const m = new Attention(Q, K, { dtype: 'float64', seed: 4 })
  const e = enc(80)
  const mem = m.memory(e, r.tensor(new Int32Array([2, 5, 3])))
  const index = r.tensor(new Int32Array([2, 2, 0, 1]))
  const re = mem.reorder(index)
  t.deepEqual(re.keys.shape, [S, 4, K])
  t.deepEqual(list(re.lengths!), [3, 3, 2, 5])
  const q = rnd([4, Q], 81)
  const got = m.forward(q, re)
  // The same rows attended one at a time from the un-reordered memory.
  for (const [row, src] of [2, 2, 0, 1].entries()) {
    const one = m.memory(e.indexSelect(1, r.tensor(new Int32Array([src]))), [[2, 5, 3][src]!])
    const want = m.forward(q.indexSelect(0, r.tensor(new Int32Array([row]))), one)
    t.true(maxDiff(list(got.context).slice(row * K, (row + 1) * K), list(want.context)) < 1e-14)
    t.deepEqual(list(got.weights).slice(row * S, (row + 1) * S), list(want.weights))
  }
  // Without lengths the reordered memory has none either.
  t.is(m.memory(e).reorder(index).lengths, null)
})

test('a memory made inside tidy keeps its tensors; the module converts with to()', (t) => {
  const m = new Attention(Q, K, { seed: 5 })
  const e = r.randn([S, B, K], { seed: 90 })
  const mem = r.tidy(() => m.memory(e, [5, 4, 3]))
  t.false(mem.keys.isDisposed)
  t.false(mem.lengths!.isDisposed)
  const q = r.randn([B, Q], { seed: 91 })
  const o32 = m.forward(q, mem)
  t.is(o32.context.dtype, 'float32')
  m.to('float64')
  const o64 = m.forward(q.cast('float64'), m.memory(e.cast('float64'), [5, 4, 3]))
  t.is(o64.context.dtype, 'float64')
  t.true(maxDiff(list(o32.context), list(o64.context)) < 1e-5)
})

test('Attention errors name the op, what was expected and what was got', (t) => {
  const check = (fn: () => unknown, cls: ErrorClass, op: string, re: RegExp) => {
    const e = t.throws(fn, { instanceOf: cls })
    t.is(e.op, op)
    t.regex(e.message, re)
  }
  check(() => new Attention(Q, K, { score: 'dot' }), ShapeError, 'Attention', /dot score needs querySize equal to keySize, got querySize 5 and keySize 6/)
  check(() => new Attention(K, K, { score: 'dot', attentionSize: 3 }), ValueError, 'Attention', /attentionSize is only for score 'bahdanau'/)
  check(() => new Attention(Q, K, { score: 'luong' as 'dot' }), ValueError, 'Attention', /score must be one of 'bahdanau', 'dot', 'general', got the string "luong"/)
  check(() => new Attention(0, K), ValueError, 'Attention', /querySize must be a positive integer, got 0/)
  const m = new Attention(Q, K, { dtype: 'float64' })
  const e = enc(100)
  check(() => m.memory(r.randn([S, B, K + 1], { dtype: 'float64' })), ShapeError, 'Attention.memory', /expected encoderOutputs \[S, B, 6\], got \[5, 3, 7\]/)
  check(() => m.memory(e.cast('float32')), DTypeError, 'Attention.memory', /parameters' dtype float64, got float32/)
  check(() => m.memory(e, [1, 0, 2]), ValueError, 'Attention.memory', /lengths\[1\] must be an integer in \[1, 5\], got 0/)
  check(() => m.memory(e, [1, 2]), ShapeError, 'Attention.memory', /lengths \[B\] = \[3\], got \[2\]/)
  check(() => m.memory(e, r.tensor([1, 2, 3])), DTypeError, 'Attention.memory', /lengths of dtype int32, got float32/)
  const mem = m.memory(e)
  check(() => m.forward(rnd([B, Q + 1], 1), mem), ShapeError, 'Attention.forward', /expected query \[B, 5\], got \[3, 6\]/)
  check(() => m.forward(rnd([B + 1, Q], 1), mem), ShapeError, 'Attention.forward', /expected query \[3, 5\] \(B of the memory\), got \[4, 5\]/)
  check(() => m.forward(rnd([B, Q], 1), {} as never), ArgumentTypeError, 'Attention.forward', /argument 'memory' must be an AttentionMemory/)
  // A lengths Tensor's values are checked by the op itself, with its message.
  const bad = m.memory(e, r.tensor(new Int32Array([1, 9, 2])))
  check(() => m.forward(rnd([B, Q], 1), bad), ValueError, 'attention', /lengths\[1\] is 9/)
})
