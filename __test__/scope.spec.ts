/**
 * Memory scopes: `tidy` (intermediates freed, returned values kept at any depth, nesting,
 * `keep`, errors), `tidyAsync` across awaits with concurrent scopes, parameters and optimizer
 * state made inside scopes, `using`, and the library's own use of scopes (recurrent modules and
 * RecurrentLM free their intermediates).
 *
 * Every test here frees all it makes, and runs serially: `memory().tensors` counts the whole
 * process, so a leftover handle (freed later by the GC) or a concurrent test would skew it.
 */

import test from 'ava'
import { setTimeout as sleep } from 'node:timers/promises'

import {
  Adam,
  LSTM,
  Linear,
  RecurrentLM,
  type Tensor,
  ValueError,
  crossEntropy,
  dispose,
  isKept,
  keep,
  memory,
  noGrad,
  randn,
  synchronize,
  tensor,
  tidy,
  tidyAsync,
} from '../index.js'

async function live(): Promise<number> {
  await synchronize()
  return memory().tensors
}

test.serial('tidy disposes the intermediates and keeps the returned tensor', async (t) => {
  const x = randn([4, 3], { seed: 1 })
  const before = await live()
  const made: Tensor[] = []
  const y = tidy(() => {
    const a = x.mul(2)
    const b = a.addScalar(1)
    const c = b.tanh()
    made.push(a, b, c)
    return c.sum()
  })
  t.true(made.every((m) => m.isDisposed))
  t.false(y.isDisposed)
  t.false(x.isDisposed, 'a tensor created outside is not touched')
  t.is(await live(), before + 1)
  const expect = Array.from(await x.data()).reduce((s: number, v: number) => s + Math.tanh(2 * v + 1), 0)
  t.true(Math.abs((await y.item()) - expect) < 1e-5)
  y.dispose()
  x.dispose()
})

test.serial('tidy keeps tensors inside nested arrays, objects, Maps and Sets; other values pass through', async (t) => {
  const x = randn([2, 2], { seed: 2 })
  const before = await live()
  const scratch: Tensor[] = []
  const r = tidy(() => {
    scratch.push(x.exp(), x.sqrt())
    return {
      a: x.addScalar(1),
      list: [x.scale(2), { deep: [x.neg()] }],
      map: new Map([['k', x.square()]]),
      set: new Set([x.relu()]),
      n: 3,
      s: 'text',
      none: null,
    }
  })
  t.true(scratch.every((s) => s.isDisposed))
  const kept = [r.a, r.list[0] as Tensor, (r.list[1] as { deep: Tensor[] }).deep[0]!, r.map.get('k')!, [...r.set][0]!]
  t.true(kept.every((k) => !k.isDisposed))
  t.is(r.n, 3)
  t.is(r.s, 'text')
  t.is(r.none, null)
  t.is(await live(), before + 5)
  dispose(r)
  t.true(kept.every((k) => k.isDisposed), 'dispose() walks the same containers')
  t.is(await live(), before)
  x.dispose()
})

test.serial('nested tidy: the inner result belongs to the outer scope', async (t) => {
  const x = randn([3], { seed: 3 })
  const before = await live()
  let inner: Tensor | undefined
  let innerScratch: Tensor | undefined
  let outerScratch: Tensor | undefined
  const out = tidy(() => {
    inner = tidy(() => {
      innerScratch = x.addScalar(1)
      return innerScratch.scale(2)
    })
    t.true(innerScratch!.isDisposed)
    t.false(inner.isDisposed, 'returned by the inner scope: alive while the outer one runs')
    outerScratch = inner.exp()
    return outerScratch.sum()
  })
  t.true(inner!.isDisposed, 'the outer scope did not return it, so it disposed it')
  t.true(outerScratch!.isDisposed)
  t.false(out.isDisposed)
  t.is(await live(), before + 1)
  out.dispose()
  x.dispose()
})

test.serial('keep() protects a tensor created inside a scope; dispose() still frees it', async (t) => {
  const x = randn([3], { seed: 4 })
  const before = await live()
  let held: Tensor | undefined
  let other: Tensor | undefined
  tidy(() => {
    held = keep(x.scale(3))
    other = x.scale(4)
  })
  t.false(held!.isDisposed)
  t.true(isKept(held!))
  t.true(other!.isDisposed)
  t.false(isKept(x))
  t.is(await live(), before + 1)
  held!.dispose()
  t.true(held!.isDisposed)
  t.throws(() => keep(3 as unknown as Tensor), { instanceOf: ValueError, message: /keep.*expected a Tensor, got number/ })
  x.dispose()
})

test.serial('an error inside tidy disposes what it made and rethrows the same error', async (t) => {
  const x = randn([3], { seed: 5 })
  const before = await live()
  const made: Tensor[] = []
  const boom = new Error('boom')
  const e = t.throws(() =>
    tidy(() => {
      made.push(x.addScalar(1), x.scale(2))
      throw boom
    }),
  )
  t.is(e, boom)
  t.true(made.every((m) => m.isDisposed))
  t.is(await live(), before)
  // The scope is closed: tensors made afterwards are untracked again.
  const after = x.addScalar(1)
  t.false(after.isDisposed)
  after.dispose()
  x.dispose()
})

test.serial('tidy refuses an async function (disposing what it made) and names tidyAsync', async (t) => {
  const x = randn([3], { seed: 6 })
  const before = await live()
  let made: Tensor | undefined
  const e = t.throws(
    () =>
      tidy(async () => {
        made = x.scale(2)
        await sleep(1)
      }),
    { instanceOf: ValueError },
  )
  t.regex(e!.message, /tidy.*Promise.*tidyAsync/)
  t.true(made!.isDisposed)
  await sleep(5)
  t.is(await live(), before)
  t.throws(() => tidy(null as unknown as () => void), { instanceOf: ValueError, message: /expected a function, got null/ })
  x.dispose()
})

test.serial('parameters and lazily created optimizer state made inside tidy survive it', async (t) => {
  const before = await live()
  const model = tidy(() => new Linear(3, 4, { seed: 7 }))
  t.true(model.parameters().every((p) => !p.isDisposed && isKept(p)))
  const opt = new Adam(model.parameters(), { lr: 0.1 })
  const x = tensor([[1, 2, 3], [0.5, -1, 2]])
  const y = tensor([1, 3], [2], { dtype: 'int32' })
  const stepOnce = () =>
    tidy(() => {
      opt.zeroGrad()
      crossEntropy(model.forward(x), y).backward()
      void opt.step() // creates exp_avg / exp_avg_sq on the first call
    })
  stepOnce()
  stepOnce() // would read disposed moments if the scope had freed them
  await opt.step()
  const sd = opt.stateDict()
  t.is(sd.state[0]!.step, 3)
  const m = sd.state[0]!['exp_avg'] as Tensor
  t.true((await m.data()).every(Number.isFinite))
  dispose(sd.state)
  opt.zeroGrad()
  // Module.to(dtype) inside a scope: the converted parameters are the module's own.
  tidy(() => model.to('float64'))
  const w = model.weight
  t.is(w.dtype, 'float64')
  t.false(w.isDisposed)
  const out = tidy(() => model.forward(tensor(Float64Array.of(1, 2, 3), [1, 3])))
  t.is(out.dtype, 'float64')
  out.dispose()
  dispose([x, y])
  // What remains are the 2 parameters and 2 × 2 moments.
  t.is(await live(), before + 6)
})

test.serial('tidyAsync follows its own flow across awaits; a concurrent scope keeps its tensors', async (t) => {
  const x = randn([4], { seed: 8 })
  const before = await live()
  const madeA: Tensor[] = []
  const madeB: Tensor[] = []
  const outside: Tensor[] = []
  const a = tidyAsync(async () => {
    madeA.push(x.scale(2))
    await sleep(5)
    madeA.push(madeA[0]!.addScalar(1))
    await sleep(5)
    return madeA[1]!.scale(10)
  })
  const b = tidyAsync(async () => {
    madeB.push(x.scale(3))
    await sleep(25) // A ends meanwhile; it must not have taken B's tensor
    const next = madeB[0]!.addScalar(1)
    madeB.push(next)
    const s = await next.sum().item()
    return { s, keep: [next.scale(2)] }
  })
  // Unscoped work running between the two: never disposed by either.
  const c = (async () => {
    await sleep(2)
    outside.push(x.scale(5))
    await sleep(10)
    outside.push(x.scale(6))
  })()
  const ra = await a
  t.true(madeA.every((m) => m.isDisposed))
  t.false(madeB[0]!.isDisposed, "A's end leaves B's tensor alone")
  const rb = await b
  await c
  t.true(madeB.every((m) => m.isDisposed))
  t.false(ra.isDisposed)
  t.false(rb.keep[0]!.isDisposed)
  t.true(outside.every((o) => !o.isDisposed))
  const xs = await x.data()
  t.deepEqual(Array.from(await ra.data()), Array.from(xs, (v) => Math.fround(Math.fround(Math.fround(v * 2) + 1) * 10)))
  t.true(Math.abs(rb.s - Array.from(xs).reduce((s: number, v: number) => s + Math.fround(v * 3) + 1, 0)) < 1e-4)
  t.is(await live(), before + 4)
  dispose([ra, rb, outside])
  x.dispose()
})

test.serial('tidy nests inside tidyAsync; nested tidyAsync hands its result to the outer one; errors reject and dispose', async (t) => {
  const x = randn([2], { seed: 9 })
  const before = await live()
  const made: Tensor[] = []
  let fromTidy: Tensor | undefined
  let fromInner: Tensor | undefined
  const r = await tidyAsync(async () => {
    fromTidy = tidy(() => {
      made.push(x.scale(2))
      return made[0]!.addScalar(1)
    })
    t.true(made[0]!.isDisposed)
    await sleep(1)
    t.false(fromTidy.isDisposed, 'owned by the async scope until it ends')
    fromInner = await tidyAsync(async () => {
      await sleep(1)
      made.push(x.scale(3))
      return made[1]!.addScalar(2)
    })
    t.true(made[1]!.isDisposed)
    t.false(fromInner.isDisposed)
    return fromTidy.add(fromInner)
  })
  t.true(fromTidy!.isDisposed && fromInner!.isDisposed)
  t.false(r.isDisposed)
  t.is(await live(), before + 1)
  r.dispose()

  const boom = new Error('async boom')
  let inFlight: Tensor | undefined
  await t.throwsAsync(
    tidyAsync(async () => {
      inFlight = x.scale(7)
      await sleep(1)
      throw boom
    }),
    { is: boom },
  )
  t.true(inFlight!.isDisposed)
  t.is(await live(), before)
  x.dispose()
})

test.serial('tidyAsync called inside a synchronous tidy owns the tensors of its first synchronous part', async (t) => {
  const x = randn([2], { seed: 10 })
  let first: Tensor | undefined
  let p: Promise<Tensor> | undefined
  tidy(() => {
    p = tidyAsync(async () => {
      first = x.scale(2)
      await sleep(2)
      return first.addScalar(1)
    })
  })
  t.false(first!.isDisposed, 'not freed by the synchronous scope that ended before the await')
  const r = await p!
  t.true(first!.isDisposed)
  t.false(r.isDisposed)
  dispose([r, x])
})

test.serial('`using` disposes at the end of the block, also when it throws', async (t) => {
  const x = randn([3], { seed: 11 })
  const before = await live()
  let a: Tensor | undefined
  let b: Tensor | undefined
  {
    using a1 = x.scale(2)
    using b1 = a1.addScalar(1)
    a = a1
    b = b1
    t.is(await live(), before + 2)
  }
  t.true(a.isDisposed && b.isDisposed)
  t.is(await live(), before)
  let c: Tensor | undefined
  t.throws(() => {
    using c1 = x.scale(3)
    c = c1
    throw new Error('inside using')
  })
  t.true(c!.isDisposed)
  t.is(await live(), before)
  x.dispose()
})

test.serial('recurrent modules and RecurrentLM leave only their results alive', async (t) => {
  const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 12 })
  const x = randn([5, 2, 3], { seed: 13 })
  const before = await live()
  const r = noGrad(() => lstm.forward(x, { lengths: [5, 3] }))
  t.is(await live(), before + 3, 'output, hN and cN; the rows, directions and zero states are freed')
  dispose(r)

  const lm = new RecurrentLM({ vocabSize: 11, hiddenSize: 6, numLayers: 2, dropout: 0.25, seed: 14 })
  const ids = tensor([[1, 2], [3, 4], [5, 6]], undefined, { dtype: 'int32' })
  const base = await live()
  const o = noGrad(() => lm.forward(ids, null))
  t.is(await live(), base + 3, 'logits and the state [h, c]')
  dispose(o)
  // With history: after backward the graph is freed, so only the results' own tensors stay.
  const targets = tensor([[2, 3], [4, 5], [6, 7]], undefined, { dtype: 'int32' })
  const o2 = lm.forward(ids, null)
  const loss = crossEntropy(o2.output, targets)
  loss.backward()
  dispose([o2, loss, targets])
  lm.zeroGrad()
  t.is(await live(), base)
  dispose([ids, x])
})
