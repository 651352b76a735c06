import test from 'ava'

import * as r from '../index.js'
import { translate } from '../src/errors.js'
import { native } from '../src/native.js'

const {
  RecurrentError,
  ShapeError,
  DTypeError,
  DisposedError,
  ValueError,
  MemoryError,
  InternalError,
  DeviceError,
  CudaUnavailableError,
  CheckpointError,
} = r

const int32 = (v: number[], shape?: number[]) => r.tensor(v, shape, { dtype: 'int32' })

test('wrong shapes: ShapeError naming the op and both shapes', (t) => {
  const a = r.zeros([2, 3])
  const b = r.zeros([4, 5])
  const e = t.throws(() => a.matmul(b), { instanceOf: ShapeError })!
  t.true(e instanceof RecurrentError)
  t.true(e instanceof Error)
  t.is(e.name, 'ShapeError')
  t.is(e.code, 'ERR_SHAPE')
  t.is(e.op, 'matmul')
  t.regex(e.message, /^matmul: /)
  t.true(e.message.includes('[2, 3]'), e.message)
  t.true(e.message.includes('[4, 5]'), e.message)
  t.false(e.message.includes('[ShapeError]'), 'the class prefix is stripped')

  const e2 = t.throws(() => r.add(r.zeros([2, 3]), r.zeros([4, 3])), { instanceOf: ShapeError })!
  t.is(e2.op, 'add')
  t.true(e2.message.includes('[2, 3]') && e2.message.includes('[4, 3]'), e2.message)

  const e3 = t.throws(() => r.reshape(r.zeros([2, 3]), [4, 2]), { instanceOf: ShapeError })!
  t.is(e3.op, 'reshape')
  t.true(e3.message.includes('[2, 3]') && e3.message.includes('[4, 2]'), e3.message)

  const e4 = t.throws(() => r.linear(r.zeros([2, 3]), r.zeros([4, 5])), { instanceOf: ShapeError })!
  t.is(e4.op, 'linear')

  const e5 = t.throws(() => r.concat([r.zeros([2, 3]), r.zeros([2, 4])], 0), { instanceOf: ShapeError })!
  t.is(e5.op, 'concat')
})

test('out-of-range axes: ShapeError naming the op', (t) => {
  const x = r.zeros([2, 3])
  const e = t.throws(() => x.softmax(2), { instanceOf: ShapeError })!
  t.is(e.op, 'softmax')
  t.regex(e.message, /rank 2/)
  t.is(t.throws(() => x.sum(-3), { instanceOf: ShapeError })!.op, 'sum')
  t.is(t.throws(() => x.transpose(0, 5), { instanceOf: ShapeError })!.op, 'transpose')
  t.is(t.throws(() => r.slice(x, 1, 2, 2), { instanceOf: ShapeError })!.op, 'slice')
})

test('wrong dtype: DTypeError naming the op and both dtypes', (t) => {
  const e = t.throws(() => r.add(r.zeros([2]), r.zeros([2], { dtype: 'float64' })), { instanceOf: DTypeError })!
  t.is(e.code, 'ERR_DTYPE')
  t.is(e.op, 'add')
  t.true(e.message.includes('float32') && e.message.includes('float64'), e.message)

  const e2 = t.throws(() => r.tanh(int32([1, 2])), { instanceOf: DTypeError })!
  t.is(e2.op, 'tanh')
  t.true(e2.message.includes('int32'), e2.message)

  const e3 = t.throws(() => r.embedding(r.zeros([3, 2]), r.tensor([0, 1])), { instanceOf: DTypeError })!
  t.is(e3.op, 'embedding')
  t.true(e3.message.includes('int32') && e3.message.includes('float32'), e3.message)

  const e4 = t.throws(
    () => {
      int32([1]).requiresGrad = true
    },
    { instanceOf: DTypeError },
  )!
  t.is(e4.op, 'requiresGrad')

  t.throws(() => r.zeros([2], { dtype: 'float16' as never }), { instanceOf: DTypeError })
  t.throws(() => r.randn([2], { dtype: 'int32' }), { instanceOf: DTypeError })
})

test('use after dispose: DisposedError naming the op', async (t) => {
  const a = r.ones([2])
  const b = r.ones([2])
  a.dispose()
  const cases: [string, () => unknown][] = [
    ['add', () => a.add(b)],
    ['add', () => b.add(a)],
    ['matmul', () => r.matmul(a, b)],
    ['tanh', () => r.tanh(a)],
    ['dataSync', () => a.dataSync()],
    ['itemSync', () => a.itemSync()],
    ['backward', () => a.backward()],
    ['detach', () => a.detach()],
    ['requiresGrad', () => a.requiresGrad],
    ['assign', () => b.assign(a)],
    ['concat', () => r.concat([b, a])],
  ]
  for (const [op, fn] of cases) {
    const e = t.throws(fn, { instanceOf: DisposedError }, op)!
    t.is(e.op, op)
    t.is(e.code, 'ERR_DISPOSED')
    t.regex(e.message, /dispose/)
  }
  const e = await t.throwsAsync(a.data(), { instanceOf: DisposedError })
  t.is(e!.op, 'data')
  const e2 = await t.throwsAsync(a.item(), { instanceOf: DisposedError })
  t.is(e2!.op, 'item')
})

test('empty shapes are a ShapeError; malformed shapes too', (t) => {
  const e = t.throws(() => r.zeros([2, 0]), { instanceOf: ShapeError })!
  t.is(e.op, 'zeros')
  t.true(e.message.includes('[2, 0]'), e.message)
  t.is(t.throws(() => r.tensor([]), { instanceOf: ShapeError })!.op, 'tensor')
  t.throws(() => r.randn([0]), { instanceOf: ShapeError })
  t.throws(() => r.zeros([2, -1]), { instanceOf: ShapeError })
  t.throws(() => r.zeros([2.5]), { instanceOf: ShapeError })
  t.throws(() => r.zeros([NaN]), { instanceOf: ShapeError })
  // Values that do not fill the shape.
  const e2 = t.throws(() => r.tensor([1, 2, 3], [2, 2]), { instanceOf: ShapeError })!
  t.true(e2.message.includes('4') && e2.message.includes('3'), e2.message)
  // Ragged nested arrays.
  t.throws(() => r.tensor([[1, 2], [3]]), { instanceOf: ShapeError })
})

test('huge sizes are a MemoryError, and nothing crashes', async (t) => {
  for (const make of [
    () => r.zeros([1e6, 1e6, 1e6]),
    () => r.full([1e6, 1e6, 1e6], 1),
    () => r.randn([1e6, 1e6, 1e6], { seed: 1 }),
    () => r.randUniform([1e6, 1e6, 1e6], 0, 1, { seed: 1 }),
    () => r.zeros([2 ** 40, 2 ** 40]),
    () => r.broadcastTo(r.zeros([1]), [1e6, 1e6, 1e6]),
  ]) {
    const e = t.throws(make, { instanceOf: MemoryError })!
    t.is(e.code, 'ERR_MEMORY')
    t.true(e.message.includes('1000000') || e.message.includes(String(2 ** 40)), e.message)
  }
  // Still alive and working.
  t.is(await r.ones([3]).sum().item(), 3)
})

/** A small recurrent layer's sizes and input x [T, B, I] for the recurrentLayer specs. */
function smallLayer() {
  const [T, B, I, H] = [4, 2, 3, 2]
  return { T, B, I, H, x: r.randn([T, B, I], { seed: 1 }) }
}

test('recurrentLayer rejects NaN, too long and zero lengths with a ValueError', (t) => {
  const { T, B, I, H, x } = smallLayer()
  const h0 = r.zeros([B, H])
  const w = { wIh: r.randn([3 * H, I], { seed: 2 }), wHh: r.randn([3 * H, H], { seed: 3 }) }
  const bad: [number[], RegExp][] = [
    [[NaN, 1], /NaN/],
    [[T + 1, 1], /5/],
    [[0, 1], /0/],
    [[1.5, 1], /1\.5/],
    [[-1, 1], /-1/],
  ]
  for (const [lengths, re] of bad) {
    const e = t.throws(() => r.recurrentLayer('gru', x, h0, null, w, { lengths }), { instanceOf: ValueError }, String(lengths))!
    t.is(e.op, 'gru')
    t.is(e.code, 'ERR_VALUE')
    t.regex(e.message, /length/)
    t.regex(e.message, re)
  }
  // Wrong number of lengths.
  t.throws(() => r.recurrentLayer('gru', x, h0, null, w, { lengths: [1, 2, 3] }), { instanceOf: RecurrentError })
  // Unknown cell kind.
  const e = t.throws(() => r.recurrentLayer('lstmx' as never, x, h0, null, w), { instanceOf: ValueError })!
  t.regex(e.message, /lstmx/)
  // Wrong weight shapes name the op.
  const e2 = t.throws(() => r.recurrentLayer('gru', x, h0, null, { wIh: r.zeros([3 * H, I + 1]), wHh: w.wHh }), { instanceOf: ShapeError })!
  t.true(['recurrentLayer', 'gru'].includes(e2.op), e2.op)
  t.true(e2.message.includes(`[${3 * H}, ${I + 1}]`), e2.message)
})

test('recurrentLayer: null states are zeros, batchFirst reads [B, T, I]; half an LSTM state is a ValueError', (t) => {
  const { T, B, I, H, x } = smallLayer()
  const w = { wIh: r.randn([4 * H, I], { seed: 2 }), wHh: r.randn([4 * H, H], { seed: 3 }) }
  const zero = r.zeros([B, H])
  const plain = r.recurrentLayer('lstm', x, zero, zero, w)
  const none = r.recurrentLayer('lstm', x, null, null, w)
  t.deepEqual(Array.from(none.y.dataSync()), Array.from(plain.y.dataSync()))
  t.deepEqual(Array.from(none.cT!.dataSync()), Array.from(plain.cT!.dataSync()))
  const bf = r.recurrentLayer('lstm', r.transpose(x, 0, 1), null, null, w, { batchFirst: true })
  t.deepEqual(bf.y.shape, [B, T, H])
  t.deepEqual(Array.from(r.transpose(bf.y, 0, 1).dataSync()), Array.from(plain.y.dataSync()))
  const onlyC = t.throws(() => r.recurrentLayer('lstm', x, null, zero, w), { instanceOf: ValueError })!
  t.is(onlyC.op, 'lstm')
  t.regex(onlyC.message, /given c0 needs an initial hidden state h0/)
  const onlyH = t.throws(() => r.recurrentLayer('lstm', x, zero, null, w), { instanceOf: ValueError })!
  t.regex(onlyH.message, /given h0 needs an initial cell state c0/)
  // Batch-first, B is the first axis: x [4, 2, 3] has B = 4, so the time-major h0 [2, 2] is wrong.
  const e = t.throws(() => r.recurrentLayer('lstm', x, zero, zero, w, { batchFirst: true }), { instanceOf: ShapeError })!
  t.regex(e.message, /h0 of shape \[4, 2\] \(B × H\)/)
  t.regex(e.message, /got \[2, 2\]/)
})

test.serial('a failing op in the executor poisons its outputs; reads reject naming the op', async (t) => {
  const w = r.randn([5, 3], { seed: 2 })
  const m = r.randn([16, 16], { seed: 3 })
  // Hold the executor so the indices are certainly pending when embedding is enqueued: then
  // their values can only be checked when the op runs.
  const hold = native.holdExecutor()
  try {
    const idx = r.transpose(int32([1, 7], [2, 1]), 0, 1) // [1, 2], pending behind the hold
    t.false(idx.isReady)
    const emb = r.embedding(w, idx) // enqueued without error
    const downstream = emb.mul(2).sum()
    const unrelated = m.matmul(m)
    hold.release()
    const e = await t.throwsAsync(downstream.data(), { instanceOf: ValueError })
    t.is(e!.op, 'embedding')
    t.regex(e!.message, /7/)
    const e2 = await t.throwsAsync(downstream.item(), { instanceOf: ValueError })
    t.is(e2!.op, 'embedding')
    t.throws(() => emb.dataSync(), { instanceOf: ValueError, message: /^embedding: / })
    t.true(emb.isReady)
    // Unrelated work is unaffected.
    t.is((await unrelated.data()).length, 16 * 16)
  } finally {
    hold.release()
  }
})

test('values checked at once when they are ready: ValueError naming the op', (t) => {
  t.is(t.throws(() => r.embedding(r.zeros([3, 2]), int32([0, 3])), { instanceOf: ValueError })!.op, 'embedding')
  const logits = r.zeros([2, 3])
  t.is(t.throws(() => r.ops.crossEntropy(logits, int32([0, 3])), { instanceOf: ValueError })!.op, 'crossEntropy')
  t.is(t.throws(() => r.dropout(logits, 1), { instanceOf: ValueError })!.op, 'dropout')
  t.is(t.throws(() => r.randn([2], { seed: -1 }), { instanceOf: ValueError })!.op, 'randn')
  t.throws(() => r.manualSeed(1.5), { instanceOf: ValueError })
})

test('autograd misuse', (t) => {
  const a = r.tensor([1, 2])
  const e = t.throws(() => a.mul(2).backward(), { instanceOf: ValueError })!
  t.is(e.op, 'backward')
  a.requiresGrad = true
  const e2 = t.throws(() => a.mul(2).backward(), { instanceOf: ShapeError })!
  t.is(e2.op, 'backward')
  const e3 = t.throws(() => a.mul(2).itemSync(), { instanceOf: ShapeError })!
  t.is(e3.op, 'item')
  t.throws(() => {
    a.mul(2).requiresGrad = false
  }, { instanceOf: ValueError })
})

test('item() on a multi-element tensor rejects synchronously-checked ShapeError', async (t) => {
  const e = await t.throwsAsync(r.zeros([2]).item(), { instanceOf: ShapeError })
  t.is(e!.op, 'item')
  t.true(e!.message.includes('[2]'))
})

test('translate maps every code and leaves other errors alone', (t) => {
  const classes = [ShapeError, DTypeError, DeviceError, DisposedError, CudaUnavailableError, CheckpointError, ValueError, MemoryError, InternalError]
  for (const C of classes) {
    const native = Object.assign(new Error('someOp: expected a, got b'), { code: new C('', '').code, op: 'someOp' })
    const e = translate(native) as InstanceType<typeof C>
    t.true(e instanceof C, C.name)
    t.is(e.code, native.code)
    t.is(e.op, 'someOp')
    t.is(e.message, 'someOp: expected a, got b')
    t.is(e.cause, native)
  }
  const plain = new TypeError('nope')
  t.is(translate(plain), plain)
  const unknown = Object.assign(new Error('x: y'), { code: 'ERR_NOT_OURS', op: 'x' })
  t.is(translate(unknown), unknown)
  const node = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })
  t.is(translate(node), node)
  // The old message prefix means nothing any more: classes come from `code` only.
  const prefixed = new Error('[ShapeError] someOp: expected a, got b')
  t.is(translate(prefixed), prefixed)
  // User-constructed errors follow the same format.
  const mine = new ShapeError('Linear.forward', 'expected [*, 4], got [3, 5]')
  t.is(mine.message, 'Linear.forward: expected [*, 4], got [3, 5]')
  t.is(mine.op, 'Linear.forward')
  t.is(mine.code, 'ERR_SHAPE')
})

test('native errors carry code and op as properties; the message has no class prefix', async (t) => {
  const caught = (fn: () => unknown): Error & { code?: unknown; op?: unknown } => {
    try {
      fn()
    } catch (e) {
      return e as Error
    }
    throw new Error('did not throw')
  }
  const a = r.zeros([2, 3])
  const b = r.zeros([4, 5])
  const handle = (x: r.Tensor) => x._native
  // Sync paths, straight from the addon (no translation).
  const shape = caught(() => native.matmul(handle(a), handle(b)))
  t.is(shape.code, 'ERR_SHAPE')
  t.is(shape.op, 'matmul')
  t.regex(shape.message, /^matmul: expected .*\[2, 3\].*, got .*\[4, 5\]/)
  const dtype = caught(() => native.add(handle(a), handle(r.zeros([2, 3], { dtype: 'float64' }))))
  t.is(dtype.code, 'ERR_DTYPE')
  t.is(dtype.op, 'add')
  t.regex(dtype.message, /^add: expected dtype float32, got float64$/)
  const value = caught(() => native.randn([2], 'float32', -1))
  t.is(value.code, 'ERR_VALUE')
  t.is(value.op, 'randn')
  t.regex(value.message, /^randn: seed must be an integer/)
  const memory = caught(() => native.zeros([1e6, 1e6, 1e6], 'float32'))
  t.is(memory.code, 'ERR_MEMORY')
  t.is(memory.op, 'zeros')
  const gone = r.ones([2])
  const h = handle(gone)
  gone.dispose()
  const disposed = caught(() => h.dataSync())
  t.is(disposed.code, 'ERR_DISPOSED')
  t.is(disposed.op, 'dataSync')
  t.is(disposed.message, 'dataSync: tensor was used after dispose()')
  for (const e of [shape, dtype, value, memory, disposed]) {
    t.false(e.message.startsWith('['), e.message)
    t.true(translate(e) instanceof RecurrentError)
  }

  // Async paths: a rejected data() of a tensor poisoned by a failed op, and a failed read of
  // a file on the libuv pool.
  const w = r.randn([5, 3], { seed: 2 })
  let m = r.randn([192, 192], { seed: 3 })
  const k = r.randn([192, 192], { seed: 4 }).scale(1 / 16)
  for (let i = 0; i < 4; i++) m = m.matmul(k)
  const idx = r.transpose(int32([1, 9], [2, 1]), 0, 1) // pending behind the matmuls
  const poisoned = r.embedding(w, idx).mul(2)
  const rejected = await handle(poisoned).data().then(
    () => t.fail('data() of a poisoned tensor resolved'),
    (e: Error & { code?: unknown; op?: unknown }) => e,
  )
  if (!rejected) return
  t.is(rejected.code, 'ERR_VALUE')
  t.is(rejected.op, 'embedding')
  t.regex(rejected.message, /^embedding: .*9/)
  const item = await t.throwsAsync(poisoned.sum().item(), { instanceOf: ValueError })
  t.is(item!.op, 'embedding')
  t.is((item!.cause as { code?: unknown }).code, 'ERR_VALUE')

  const missing = await native.loadSafetensors('/nonexistent/dir/model.safetensors').then(
    () => t.fail('loading a missing file resolved'),
    (e: Error & { code?: unknown; op?: unknown }) => e,
  )
  if (!missing) return
  t.is(missing.code, 'ERR_CHECKPOINT')
  t.is(missing.op, 'loadSafetensors')
  t.regex(missing.message, /^loadSafetensors: .*'\/nonexistent\/dir\/model\.safetensors'/)
  t.is(await r.ones([3]).sum().item(), 3)
})
