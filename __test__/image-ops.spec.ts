/**
 * The image ops and layers: conv2d (stride, padding, dilation, groups), the pools and the norms
 * equal PyTorch's forward values and gradients on hand-set inputs (golden values written by
 * `scripts/make_image_fixtures.py` into `fixtures/image-ops.json`), batch norm's running
 * statistics after a training step included; a torchvision-style CNN's state dict
 * (safetensors, with int64 `num_batches_tracked`) loads by name and runs as PyTorch in eval
 * and train mode; central-difference gradient checks in float64 through the public API; the
 * modules' defaults, state dicts and errors (checked by content).
 */

import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'
import type { ExecutionContext } from 'ava'

import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  Flatten,
  LayerNorm,
  Linear,
  MaxPool2d,
  ReLU,
  Sequential,
  ShapeError,
  type Tensor,
  ValueError,
  adaptiveAvgPool2d,
  avgPool2d,
  batchNorm2d,
  conv2d,
  flatten,
  layerNorm,
  loadTorchStateDict,
  maxPool2d,
  noGrad,
  randn,
  saveTorchStateDict,
  tensor,
  tidy,
} from '../index.js'

const here = dirname(fileURLToPath(import.meta.url))
const F64 = { dtype: 'float64' as const }

interface Arr {
  shape: number[]
  data: number[]
}
interface Case {
  x: Arr
  y: Arr
  g: Arr
  grads: Record<string, Arr>
  weight?: Arr
  bias?: Arr
  [k: string]: unknown
}
const fx = JSON.parse(readFileSync(join(here, 'fixtures', 'image-ops.json'), 'utf8')) as {
  torch: string
  conv2d: Array<Case & { stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number }>
  pool: Array<Case & { kind: 'max' | 'avg' | 'adaptive'; kernel?: [number, number]; stride?: [number, number] | null; padding?: [number, number]; countIncludePad?: boolean; outputSize?: [number, number] }>
  batchNorm2d: Array<Case & { training: boolean; momentum: number; eps: number; runningMean: Arr; runningVar: Arr; runningMeanAfter: Arr; runningVarAfter: Arr }>
  layerNorm: Array<Case & { normalizedShape: number[]; eps: number }>
  cnn: { keys: string[]; x: Arr; yEval: Arr; yTrain: Arr; stateAfterTrainStep: Record<string, Arr> }
}

function values(t: Tensor): number[] {
  return Array.from(t.dataSync())
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

const t64 = (a: Arr): Tensor => tensor(Float64Array.from(a.data), a.shape, F64)
const t32 = (a: Arr): Tensor => tensor(Float32Array.from(a.data), a.shape)
function leaf(a: Arr): Tensor {
  const t = t64(a)
  t.requiresGrad = true
  return t
}

/**
 * Runs `f` on float64 leaves made from `inputs`, and checks the output and the gradients of
 * sum(out ⊙ g) against PyTorch's (1e-12, float64 against float64: only rounding differs).
 */
function againstTorch(t: ExecutionContext, name: string, c: Case, inputs: Record<string, Arr>, f: (l: Record<string, Tensor>) => Tensor): void {
  tidy(() => {
    const leaves = Object.fromEntries(Object.entries(inputs).map(([k, a]) => [k, leaf(a)]))
    const y = f(leaves)
    t.deepEqual(y.shape, c.y.shape, `${name}: shape`)
    const dy = maxAbsDiff(values(y), c.y.data)
    t.true(dy <= 1e-12, `${name}: output differs from PyTorch's by ${dy}`)
    y.mul(t64(c.g)).sum().backward()
    for (const [k, want] of Object.entries(c.grads)) {
      const g = leaves[k]!.grad
      t.truthy(g, `${name}: ${k} has a gradient`)
      const d = maxAbsDiff(values(g!), want.data)
      t.true(d <= 1e-11, `${name}: d${k} differs from PyTorch's by ${d}`)
    }
  })
}

// ---- golden values --------------------------------------------------------------------------------

test(`conv2d equals PyTorch ${fx.torch} (stride, padding, dilation, groups; values and gradients)`, (t) => {
  for (const [i, c] of fx.conv2d.entries()) {
    const { stride, padding, dilation, groups } = c
    const inputs: Record<string, Arr> = { x: c.x, weight: c.weight! }
    if (c.bias) inputs.bias = c.bias
    againstTorch(t, `conv2d case ${i}`, c, inputs, (l) => conv2d(l.x!, l.weight!, l.bias, { stride, padding, dilation, groups }))
    // float32 through the same kernels.
    tidy(() => {
      const y = conv2d(t32(c.x), t32(c.weight!), c.bias ? t32(c.bias) : null, { stride, padding, dilation, groups })
      t.true(maxAbsDiff(values(y), c.y.data) <= 2e-5, `conv2d case ${i} in float32`)
    })
  }
})

test('maxPool2d, avgPool2d (both divisors) and adaptiveAvgPool2d equal PyTorch (values and gradients)', (t) => {
  const kinds = new Set<string>()
  for (const [i, c] of fx.pool.entries()) {
    kinds.add(`${c.kind}${c.countIncludePad === false ? '-exclude' : ''}`)
    againstTorch(t, `${c.kind} pool case ${i}`, c, { x: c.x }, (l) => {
      if (c.kind === 'adaptive') return adaptiveAvgPool2d(l.x!, c.outputSize!)
      const o = { padding: c.padding!, ...(c.stride ? { stride: c.stride } : {}) }
      return c.kind === 'max' ? maxPool2d(l.x!, c.kernel!, o) : avgPool2d(l.x!, c.kernel!, { ...o, countIncludePad: c.countIncludePad! })
    })
  }
  t.deepEqual([...kinds].sort(), ['adaptive', 'avg', 'avg-exclude', 'max'])
})

test('batchNorm2d equals PyTorch in training and evaluation, running statistics after the step included', (t) => {
  for (const [i, c] of fx.batchNorm2d.entries()) {
    const rm = t64(c.runningMean)
    const rv = t64(c.runningVar)
    const inputs: Record<string, Arr> = { x: c.x }
    if (c.weight) Object.assign(inputs, { weight: c.weight, bias: c.bias })
    againstTorch(t, `batchNorm2d case ${i} (training ${c.training})`, c, inputs, (l) =>
      batchNorm2d(l.x!, { weight: l.weight, bias: l.bias, runningMean: rm, runningVar: rv, training: c.training, momentum: c.momentum, eps: c.eps }),
    )
    t.true(maxAbsDiff(values(rm), c.runningMeanAfter.data) <= 1e-15, `case ${i}: running mean`)
    t.true(maxAbsDiff(values(rv), c.runningVarAfter.data) <= 1e-15, `case ${i}: running variance`)
    if (c.training) t.notDeepEqual(values(rm), c.runningMean.data, `case ${i}: the step moved the running mean`)
    else t.deepEqual(values(rm), c.runningMean.data, `case ${i}: evaluation keeps the running mean`)
  }
})

test('layerNorm equals PyTorch over one and two trailing dimensions (values and gradients)', (t) => {
  for (const [i, c] of fx.layerNorm.entries()) {
    const inputs: Record<string, Arr> = { x: c.x }
    if (c.weight) Object.assign(inputs, { weight: c.weight, bias: c.bias })
    againstTorch(t, `layerNorm case ${i}`, c, inputs, (l) => layerNorm(l.x!, c.normalizedShape, { weight: l.weight, bias: l.bias, eps: c.eps }))
  }
})

// ---- a torchvision-style CNN ----------------------------------------------------------------------

function smallCnn(): Sequential {
  return new Sequential(
    new Conv2d(3, 4, 3, { padding: 1 }),
    new BatchNorm2d(4),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(4, 6, 3, { stride: 2, padding: 1, bias: false }),
    new BatchNorm2d(6),
    new ReLU(),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(6, 5),
  )
}

test("a PyTorch CNN's state dict (safetensors, int64 num_batches_tracked) loads by name and runs as PyTorch in eval and train mode", async (t) => {
  const model = smallCnn()
  t.deepEqual(Object.keys(model.stateDict()), fx.cnn.keys, 'the same names in the same order as torch.nn')
  const r = await loadTorchStateDict(model, join(here, 'fixtures', 'image-cnn.safetensors'))
  t.deepEqual(r, { missingKeys: [], unexpectedKeys: [] })
  const sd = model.stateDict()
  t.is(sd['1.num_batches_tracked']!.dtype, 'int32')
  t.is(sd['1.num_batches_tracked']!.itemSync(), 7)
  const x = t32(fx.cnn.x)
  model.eval()
  const yEval = model.forward(x) as Tensor
  t.true(maxAbsDiff(values(yEval), fx.cnn.yEval.data) <= 2e-5, `eval: ${maxAbsDiff(values(yEval), fx.cnn.yEval.data)}`)
  t.is(sd['1.num_batches_tracked']!.itemSync(), 7, 'evaluation counts no batch')
  model.train()
  const yTrain = model.forward(x) as Tensor
  t.true(maxAbsDiff(values(yTrain), fx.cnn.yTrain.data) <= 2e-5, `train: ${maxAbsDiff(values(yTrain), fx.cnn.yTrain.data)}`)
  for (const [k, want] of Object.entries(fx.cnn.stateAfterTrainStep)) {
    t.true(maxAbsDiff(values(sd[k]!), want.data) <= 2e-6, `${k} after a training step`)
  }
  t.is(sd['5.num_batches_tracked']!.itemSync(), 8)

  // Round trip: saved and loaded into a fresh model, every tensor (buffers included) is equal.
  const dir = await mkdtemp(join(tmpdir(), 'image-ops-'))
  try {
    const file = join(dir, 'cnn.safetensors')
    await saveTorchStateDict(model, file)
    const again = smallCnn()
    t.deepEqual(await loadTorchStateDict(again, file), { missingKeys: [], unexpectedKeys: [] })
    for (const [k, v] of Object.entries(again.stateDict())) t.deepEqual(values(v), values(sd[k]!), k)
    again.eval()
    model.eval()
    t.deepEqual(values(again.forward(x) as Tensor), values(model.forward(x) as Tensor))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

// ---- gradient checks through the public API (float64) ----------------------------------------

/** Up to `m` indices spread over [0, n), both ends included. */
function spread(n: number, m: number): number[] {
  if (n <= m) return Array.from({ length: n }, (_, i) => i)
  return Array.from({ length: m }, (_, k) => Math.round((k * (n - 1)) / (m - 1)))
}

/** backward() against central differences over `perTensor` entries of each tensor of `wrt`. */
function gradCheck(t: ExecutionContext, wrt: Record<string, Tensor>, loss: () => Tensor, perTensor = 8, rel = 1e-6, eps = 1e-6): void {
  for (const p of Object.values(wrt)) p.zeroGrad()
  tidy(() => loss().backward())
  const analytic: Record<string, Float64Array> = {}
  for (const [name, p] of Object.entries(wrt)) {
    t.truthy(p.grad, `${name} has a gradient`)
    analytic[name] = Float64Array.from(p.grad!.dataSync())
  }
  const f = () => tidy(() => noGrad(loss).itemSync())
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
    }
    at(base)
  }
  t.log(`worst relative difference ${worst.toExponential(2)}`)
}

test('float64 gradient check through the layers: grouped strided conv → batch norm (training) → ReLU → avg pool → layer norm', (t) => {
  const conv = new Conv2d(4, 6, 3, { stride: [2, 1], padding: 1, dilation: [1, 2], groups: 2, dtype: 'float64', seed: 3 })
  const bn = new BatchNorm2d(6, { dtype: 'float64' })
  const pool = new AvgPool2d(2, { stride: [2, 1], padding: [1, 0], countIncludePad: false })
  const ln = new LayerNorm([2, 3], { dtype: 'float64' })
  // Non-trivial affine parameters, so that their gradients are not symmetric.
  bn.weight!.assign(randn([6], { ...F64, seed: 4 }))
  bn.bias!.assign(randn([6], { ...F64, seed: 5 }))
  ln.weight!.assign(randn([2, 3], { ...F64, seed: 6 }))
  const x = randn([2, 4, 5, 6], { ...F64, seed: 7 })
  x.requiresGrad = true
  // conv: [2, 6, 3, 4]; pool: [2, 6, 2, 3].
  const w = randn([2, 6, 2, 3], { ...F64, seed: 8 })
  const loss = () => ln.forward(pool.forward(bn.forward(conv.forward(x)).relu())).mul(w).sum()
  // (The conv's bias is left out: batch norm in training subtracts each channel's mean, so its
  // gradient is exactly zero and only rounding noise would be compared.)
  gradCheck(t, { x, 'conv.weight': conv.weight, 'bn.weight': bn.weight!, 'bn.bias': bn.bias!, 'ln.weight': ln.weight!, 'ln.bias': ln.bias! }, loss)
  // Evaluation mode (the running statistics that training left) and max pooling with padding.
  bn.eval()
  const mp = new MaxPool2d([2, 2], { stride: 1, padding: 1 })
  const w2 = randn([2, 6, 4, 5], { ...F64, seed: 9 })
  gradCheck(t, { x, 'conv.weight': conv.weight, 'bn.weight': bn.weight! }, () => mp.forward(bn.forward(conv.forward(x))).mul(w2).sum())
})

// ---- modules: defaults, state dicts, modes ------------------------------------------------------

test("Conv2d's and BatchNorm2d's parameters, buffers and initialisation follow PyTorch", (t) => {
  const conv = new Conv2d(6, 8, [3, 2], { groups: 2, seed: 1 })
  t.deepEqual(conv.weight.shape, [8, 3, 3, 2])
  t.deepEqual(Object.keys(conv.stateDict()), ['weight', 'bias'])
  const bound = 1 / Math.sqrt(3 * 3 * 2)
  const w = values(conv.weight)
  t.true(w.every((v) => Math.abs(v) <= bound) && Math.max(...w.map(Math.abs)) > 0.8 * bound, 'kaiming-uniform bound 1/√fanIn')
  t.true(values(conv.bias!).every((v) => Math.abs(v) <= bound))
  t.deepEqual(Object.keys(new Conv2d(2, 2, 1, { bias: false }).stateDict()), ['weight'])

  const bn = new BatchNorm2d(3)
  t.deepEqual(Object.keys(bn.stateDict()), ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'])
  t.deepEqual(bn.parameters().length, 2, 'buffers are not parameters')
  t.deepEqual(values(bn.weight!), [1, 1, 1])
  t.deepEqual(values(bn.running_var!), [1, 1, 1])
  t.deepEqual(bn.num_batches_tracked!.shape, [])
  t.deepEqual(Object.keys(new BatchNorm2d(3, { affine: false, trackRunningStats: false }).stateDict()), [])
  t.deepEqual(Object.keys(new LayerNorm(4).stateDict()), ['weight', 'bias'])

  // Training moves the running statistics and counts batches; evaluation does neither.
  const x = randn([4, 3, 2, 2], { seed: 2 })
  bn.forward(x)
  bn.forward(x)
  t.is(bn.num_batches_tracked!.itemSync(), 2)
  const mean = values(bn.running_mean!)
  t.true(mean.some((v) => v !== 0))
  bn.eval()
  bn.forward(x)
  t.deepEqual(values(bn.running_mean!), mean)
  t.is(bn.num_batches_tracked!.itemSync(), 2)
  // A state dict with the buffers loads into another module; moving to float64 keeps the counter int32.
  const other = new BatchNorm2d(3)
  other.loadStateDict(bn.stateDict())
  t.deepEqual(values(other.running_mean!), mean)
  t.is(other.num_batches_tracked!.itemSync(), 2)
  other.to('float64')
  t.is(other.running_var!.dtype, 'float64')
  t.is(other.num_batches_tracked!.dtype, 'int32')
})

test('flatten and Flatten merge dimensions as PyTorch', (t) => {
  const x = randn([2, 3, 4, 5], { seed: 1 })
  t.deepEqual(flatten(x).shape, [120])
  t.deepEqual(flatten(x, 1).shape, [2, 60])
  t.deepEqual(flatten(x, 1, 2).shape, [2, 12, 5])
  t.deepEqual(new Flatten().forward(x).shape, [2, 60])
  t.deepEqual(values(flatten(x, 1)), values(x))
  const e = t.throws(() => flatten(x, 2, 1), { instanceOf: ValueError })
  t.regex(e!.message, /flatten: startDim must not come after endDim, got 2 and 1/)
})

// ---- errors ------------------------------------------------------------------------------------

test('bad arguments are errors that name the op, the expectation and what was got', (t) => {
  const x = randn([1, 4, 5, 5], { seed: 1 })
  let e: Error | undefined = t.throws(() => conv2d(x, randn([2, 3, 3, 3], { seed: 2 })), { instanceOf: ShapeError })
  t.regex(e!.message, /conv2d: .*\[O, 4, KH, KW\].*\[2, 3, 3, 3\]/)
  e = t.throws(() => conv2d(x, randn([2, 4, 3, 3]), null, { stride: [1, 0] }), { instanceOf: ValueError })
  t.regex(e!.message, /conv2d: stride must be an integer ≥ 1 or a pair \[height, width\] of them, got \[1, 0\]/)
  e = t.throws(() => conv2d(x, randn([2, 2, 3, 3]), null, { groups: 3 }), { instanceOf: ShapeError })
  t.regex(e!.message, /divisible by groups = 3/)
  e = t.throws(() => conv2d(x, randn([2, 4, 3, 3]), null, { padding: -1 }), { instanceOf: ValueError })
  t.regex(e!.message, /padding must be an integer ≥ 0/)
  e = t.throws(() => maxPool2d(x, 2, { padding: 2 }), { instanceOf: ValueError })
  t.regex(e!.message, /maxPool2d: padding must be at most half the kernel size/)
  e = t.throws(() => avgPool2d(x, 6), { instanceOf: ShapeError })
  t.regex(e!.message, /avgPool2d: .*5×5/)
  e = t.throws(() => adaptiveAvgPool2d(randn([4, 5]), 2), { instanceOf: ShapeError })
  t.regex(e!.message, /adaptiveAvgPool2d: .*\[N, C, H, W\].*\[4, 5\]/)
  e = t.throws(() => batchNorm2d(x), { instanceOf: ValueError })
  t.regex(e!.message, /batchNorm2d: evaluation \(training: false\) needs runningMean and runningVar/)
  e = t.throws(() => batchNorm2d(x, { training: true, weight: randn([3]) }), { instanceOf: ShapeError })
  t.regex(e!.message, /batchNorm2d: .*a weight of shape \[4\].*\[3\]/)
  e = t.throws(() => batchNorm2d(randn([1, 2, 1, 1]), { training: true }), { instanceOf: ValueError })
  t.regex(e!.message, /more than 1 value per channel when training/)
  e = t.throws(() => layerNorm(x, [4]), { instanceOf: ShapeError })
  t.regex(e!.message, /layerNorm: .*normalized shape \[4\].*\[1, 4, 5, 5\]/)
  e = t.throws(() => layerNorm(x, [0]), { instanceOf: ValueError })
  t.regex(e!.message, /layerNorm: normalizedShape must be a positive integer/)
  e = t.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), { instanceOf: ShapeError })
  t.regex(e!.message, /Conv2d: inChannels and outChannels must be divisible by groups = 2, got 3 and 4/)
  e = t.throws(() => new Conv2d(3, 4, 3).forward(x), { instanceOf: ShapeError })
  t.regex(e!.message, /Conv2d.forward: expected input \[N, 3, H, W\], got \[1, 4, 5, 5\]/)
  e = t.throws(() => new BatchNorm2d(3).forward(x), { instanceOf: ShapeError })
  t.regex(e!.message, /BatchNorm2d.forward: expected input \[N, 3, H, W\], got \[1, 4, 5, 5\]/)
  e = t.throws(() => new BatchNorm2d(3, { momentum: null as unknown as number }), { instanceOf: ValueError })
  t.regex(e!.message, /BatchNorm2d: momentum must be a number in \[0, 1\]; a cumulative average \(null\) is not supported/)
  e = t.throws(() => new MaxPool2d([2, 2, 2] as unknown as [number, number]), { instanceOf: ValueError })
  t.regex(e!.message, /MaxPool2d: kernelSize must be an integer ≥ 1 or a pair \[height, width\] of them, got \[2, 2, 2\]/)
})
