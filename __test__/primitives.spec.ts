// The decoding primitives through the public API: values, int32 results, negative axes,
// finite-difference gradients in float64, and errors checked by class and content (op, expected,
// got). The engine's own checks are in crates/core/tests/primitives.rs.

import test from 'ava'

import * as r from '../index.js'
import { DTypeError, ShapeError, ValueError, type Tensor } from '../index.js'

const f64 = (v: number[], shape?: number[]) => r.tensor(new Float64Array(v), shape)
const i32 = (v: number[], shape?: number[]) => r.tensor(new Int32Array(v), shape)
const list = (t: Tensor) => Array.from(t.dataSync())

/** Max relative error between autograd and central differences of Σ w ⊙ f(x) (float64). */
function gradError(f: (x: Tensor) => Tensor, x0: number[], shape: number[]): number {
  const x = f64(x0, shape)
  x.requiresGrad = true
  const y = f(x)
  const w = r.randn(y.shape, { dtype: 'float64', seed: 11 })
  y.mul(w).sum().backward()
  const analytic = list(x.grad!)
  const h = 1e-6
  let worst = 0
  for (let j = 0; j < x0.length; j++) {
    const at = (d: number) => {
      const v = x0.slice()
      v[j]! += d
      return r.noGrad(() => f(f64(v, shape)).mul(w).sum().itemSync())
    }
    const numeric = (at(h) - at(-h)) / (2 * h)
    worst = Math.max(worst, Math.abs(numeric - analytic[j]!) / Math.max(1e-2, Math.abs(numeric)))
  }
  return worst
}

const distinct = [0.3, -1.2, 2.5, 0.7, 1.1, -0.4, 0.9, 3.3, -2.0, 0.1, 0.2, 1.7]

test('eq, lt and gt broadcast, take numbers and give int32 0/1 without history', (t) => {
  const a = f64([1, 2, 3, 4, 5, 6], [2, 3])
  a.requiresGrad = true
  const b = f64([2, 5, 3])
  const e = r.eq(a, b)
  t.is(e.dtype, 'int32')
  t.deepEqual(e.shape, [2, 3])
  t.deepEqual(list(e), [0, 0, 1, 0, 1, 0])
  t.deepEqual(list(r.lt(a, b)), [1, 1, 0, 0, 0, 0])
  t.deepEqual(list(a.gt(b)), [0, 0, 0, 1, 0, 1])
  t.deepEqual(list(r.gt(a, 3)), [0, 0, 0, 1, 1, 1])
  t.deepEqual(list(r.eq(i32([4, 5]), 5)), [0, 1])
  t.false(e.requiresGrad)
  const err = t.throws(() => r.eq(a, i32([1, 2, 3])), { instanceOf: DTypeError })
  t.regex(err.message, /^eq: .*float64.*int32/)
  t.regex(t.throws(() => r.lt(a, f64([1, 2])), { instanceOf: ShapeError }).message, /^lt: .*\[2, 3\].*\[2\]/)
})

test('where picks by an int32 condition, broadcasts, and sends gradients to both branches', (t) => {
  const cond = i32([1, 0, 0, 1], [2, 2])
  t.deepEqual(list(r.where(cond, f64([1, 2, 3, 4], [2, 2]), f64([-1, -2]))), [1, -2, -1, 4])
  const c = r.gt(f64(distinct.slice(0, 4), [4]), f64([0.5]))
  t.true(gradError((x) => r.where(c, x, x.mul(x)), distinct.slice(0, 12), [3, 4]) < 1e-6)
  const b = f64([0.5, -0.25, 2, 1])
  b.requiresGrad = true
  const out = r.where(c, f64([0, 0, 0, 0]), b)
  out.sum().backward()
  t.deepEqual(list(b.grad!), list(r.eq(c, 0).cast('float64')))
  t.regex(t.throws(() => r.where(f64([1]), b, b), { instanceOf: DTypeError }).message, /^where: .*int32 condition.*float64/)
})

test('maskedFill fills where the mask is set and passes the gradient elsewhere', (t) => {
  const x = f64([1, 2, 3, 4, 5, 6], [2, 3])
  t.deepEqual(list(r.maskedFill(x, i32([0, 1, 1]), -1e9)), [1, -1e9, -1e9, 4, -1e9, -1e9])
  t.deepEqual(list(i32([5, 6, 7, 8], [2, 2]).maskedFill(i32([1, 0], [2, 1]), 0)), [0, 0, 7, 8])
  const m = i32([1, 0, 0, 1, 0, 1], [2, 3])
  t.true(gradError((x) => r.maskedFill(x.mul(x), m, 7), distinct.slice(0, 6), [2, 3]) < 1e-6)
  const err = t.throws(() => r.maskedFill(x, i32([1, 1], [2]), 0), { instanceOf: ShapeError })
  t.regex(err.message, /^maskedFill: .*\[2, 3\].*\[2\]/)
})

test('sequenceMask from tensors, Int32Arrays and numbers, validated like recurrent lengths', (t) => {
  const m = r.sequenceMask(i32([3, 1, 4]), 4)
  t.is(m.dtype, 'int32')
  t.deepEqual(m.shape, [3, 4])
  t.deepEqual(list(m), [1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1])
  t.deepEqual(list(r.sequenceMask([2, 1], 2)), [1, 1, 1, 0])
  t.deepEqual(list(r.sequenceMask(new Int32Array([1]), 3, { device: 'cpu' })), [1, 0, 0])
  t.regex(t.throws(() => r.sequenceMask([2, 5], 4), { instanceOf: ValueError }).message, /^sequenceMask: lengths\[1\] is 5.*\[1, 4\]/)
  t.regex(t.throws(() => r.sequenceMask(i32([0]), 4), { instanceOf: ValueError }).message, /^sequenceMask: lengths\[0\] is 0/)
  t.regex(t.throws(() => r.sequenceMask([1.5], 4), { instanceOf: ValueError }).message, /lengths\[0\] is 1\.5/)
  t.regex(t.throws(() => r.sequenceMask(f64([1]), 4), { instanceOf: DTypeError }).message, /^sequenceMask: .*int32 lengths.*float64/)
})

test('cast converts dtypes, truncates toward zero, keeps float gradients and refuses NaN', async (t) => {
  const x = f64([1.9, -1.9, 0.5, -0.5])
  const i = r.cast(x, 'int32')
  t.is(i.dtype, 'int32')
  t.deepEqual(list(i), [1, -1, 0, 0])
  t.deepEqual(list(i.cast('float32')), [1, -1, 0, 0])
  t.is(x.cast('float64'), x)
  const w = f64([0.5, -1.25, 2, 3])
  w.requiresGrad = true
  const y = w.cast('float32')
  t.is(y.dtype, 'float32')
  y.mul(r.tensor([1, 2, 3, 4])).sum().backward()
  t.is(w.grad!.dtype, 'float64')
  t.deepEqual(list(w.grad!), [1, 2, 3, 4])
  const nan = t.throws(() => r.cast(f64([0, Number.NaN]), 'int32'), { instanceOf: ValueError })
  t.regex(nan.message, /^cast: value NaN at position 1 .*int32/)
  t.throws(() => r.cast(f64([3e9]), 'int32'), { instanceOf: ValueError, message: /3000000000/ })
  // A computed value is checked when the op runs (or at once, if it already ran): the read
  // rejects, or the call throws, with the same message.
  await t.throwsAsync(async () => r.cast(f64([1, 1]).mul(f64([1, Infinity])), 'int32').data(), { instanceOf: ValueError, message: /^cast: value Infinity|^cast: value inf/ })
  t.throws(() => r.cast(x, 'int8' as 'int32'), { instanceOf: DTypeError, message: /int8/ })
})

test('argmax and max along an axis (negative too), ties to the first index', (t) => {
  const x = f64([1, 5, 5, 2, 7, 0, -1, 7], [2, 4])
  t.deepEqual(list(r.argmax(x, -1)), [1, 0])
  t.deepEqual(r.argmax(x, 1, true).shape, [2, 1])
  t.is(x.argmax(0).dtype, 'int32')
  const { values, indices } = r.max(x, 0, true)
  t.deepEqual(values.shape, [1, 4])
  t.deepEqual(list(values), [7, 5, 5, 7])
  t.deepEqual(list(indices), [1, 0, 0, 1])
  t.true(gradError((x) => r.max(x, 1).values, distinct, [3, 4]) < 1e-6)
  t.true(gradError((x) => x.max(-3).values, distinct, [2, 3, 2]) < 1e-6)
  t.regex(t.throws(() => r.argmax(x, 2), { instanceOf: ShapeError }).message, /^argmax: .*\[-2, 2\).*got 2/)
})

test('topk: largest or smallest, sorted or in index order, ties lower index first', (t) => {
  const x = f64([1, 4, 4, 0, 9, 4])
  const best = r.topk(x, 3)
  t.deepEqual([list(best.values), list(best.indices)], [[9, 4, 4], [4, 1, 2]])
  const low = x.topk(2, 0, { largest: false })
  t.deepEqual([list(low.values), list(low.indices)], [[0, 1], [3, 0]])
  const unsorted = r.topk(x, 3, -1, { sorted: false })
  t.deepEqual(list(unsorted.indices), [1, 2, 4])
  t.is(best.indices.dtype, 'int32')
  t.true(gradError((x) => r.topk(x, 2, 1).values, distinct, [3, 4]) < 1e-6)
  t.true(gradError((x) => r.topk(x, 2, 0, { largest: false }).values, distinct, [3, 4]) < 1e-6)
  t.regex(t.throws(() => r.topk(x, 7), { instanceOf: ValueError }).message, /^topk: expected k in \[1, 6\].*got k = 7/)
})

test('gather (PyTorch semantics) and indexSelect, with scatter-add and index-add gradients', (t) => {
  const x = f64([1, 2, 3, 4, 5, 6], [2, 3])
  t.deepEqual(list(r.gather(x, 1, i32([2, 0, 1, 1], [2, 2]))), [3, 1, 5, 5])
  t.deepEqual(list(x.gather(-2, i32([1, 0, 1], [1, 3]))), [4, 2, 6])
  const rep = i32([0, 0, 2, 1, 1, 1, 0, 2], [2, 4])
  t.true(gradError((x) => r.gather(x, 1, rep), distinct.slice(0, 6), [2, 3]) < 1e-6)
  const beams = f64([1, 2, 3, 4, 5, 6], [3, 2])
  t.deepEqual(list(r.indexSelect(beams, 0, i32([2, 2, 0]))), [5, 6, 5, 6, 1, 2])
  t.deepEqual(list(beams.indexSelect(-1, i32([1]))), [2, 4, 6])
  t.true(gradError((x) => r.indexSelect(x, 0, i32([2, 2, 0, 1])), distinct, [3, 4]) < 1e-6)
  const bad = t.throws(() => r.gather(x, 1, i32([0, 3], [1, 2])), { instanceOf: ValueError })
  t.regex(bad.message, /^gather: index 3 at position 1 .*\[0, 3\)/)
  t.regex(t.throws(() => r.gather(x, 1, i32([0, 1])), { instanceOf: ShapeError }).message, /^gather: expected .*rank 2.*got \[2\]/)
  t.regex(t.throws(() => r.indexSelect(x, 0, i32([0, 1], [1, 2])), { instanceOf: ShapeError }).message, /^indexSelect: expected .*\[M\].*got \[1, 2\]/)
  t.regex(t.throws(() => r.indexSelect(x, 0, x), { instanceOf: DTypeError }).message, /^indexSelect: .*int32 indices.*float64/)
})

test('a greedy decoding step stays on the tensors: argmax, then gather of the chosen scores', (t) => {
  const logits = f64([0.1, 2, -1, 0.5, 3, 0.2], [2, 3])
  const ids = r.argmax(logits, -1, true)
  const logp = r.gather(logits.logSoftmax(-1), 1, ids)
  t.deepEqual(list(ids), [1, 1])
  const lse = (v: number[]) => Math.log(v.reduce((s, x) => s + Math.exp(x), 0))
  const want = [2 - lse([0.1, 2, -1]), 3 - lse([0.5, 3, 0.2])]
  list(logp).forEach((v, k) => t.true(Math.abs(v - want[k]!) < 1e-12))
})
