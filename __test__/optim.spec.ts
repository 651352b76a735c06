/**
 * Optimizers (fused native updates) and LR schedules against torch.optim's own trajectories
 * (`fixtures/optim-torch.json`, written by `scripts/make_optim_fixtures.py`), state dicts (bit-identical continuation), gradient clipping, learning-rate schedules, and
 * the backpressure of `await opt.step()`.
 */

import test from 'ava'
import type { ExecutionContext } from 'ava'

import {
  Adagrad,
  Adam,
  AdamW,
  CosineWithWarmup,
  DTypeError,
  ExponentialLR,
  LSTM,
  Linear,
  type Optimizer,
  RMSprop,
  ReduceLROnPlateau,
  SGD,
  ShapeError,
  StepLR,
  Tensor,
  ValueError,
  clipGradNorm,
  clipGradValue,
  loadSafetensors,
  memory,
  mse,
  randn,
  saveSafetensors,
  synchronize,
  tensor,
  zeros,
  type OptimizerStateDict,
  type SchedulerStateDict,
} from '../index.js'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { native } from '../src/native.js'
import { liveTensorsAfterGC } from './helpers/memory.js'

// ---- helpers ----------------------------------------------------------------------------------

function assertClose(t: ExecutionContext, got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  t.is(got.length, want.length, `${what}: length`)
  let worst = 0
  let at = -1
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!))
    if (!(d <= worst)) {
      worst = d
      at = i
    }
  }
  t.true(worst <= tol, `${what}: max relative |got − want| = ${worst} at ${at} (got ${got[at]}, want ${want[at]}), tol ${tol}`)
}

/** Deterministic pseudo-random numbers in [-1, 1) (a small LCG), so references need no tensors. */
function numbers(seed: number, n: number): number[] {
  let s = seed >>> 0
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out.push(s / 2 ** 31 - 1)
  }
  return out
}

const SHAPES = [[2, 3], [4]] as const
const INIT = [numbers(1, 6).map((v) => 2 * v), numbers(2, 4)]
const STEPS = 5
/** The gradient of parameter `i` at step `s`, or null (parameter 1 has none at step 2). */
function gradAt(i: number, s: number): number[] | null {
  if (i === 1 && s === 2) return null
  return numbers(100 * s + i + 7, i === 0 ? 6 : 4).map((v) => 3 * v)
}

function makeParams(dtype: 'float32' | 'float64' = 'float64', init: number[][] = INIT): Tensor[] {
  return SHAPES.map((shape, i) => {
    const p = tensor(dtype === 'float64' ? Float64Array.from(init[i]!) : Float32Array.from(init[i]!), [...shape])
    p.requiresGrad = true
    return p
  })
}

/** Sets the step-`s` gradients (as if a backward had run). */
function setGrads(ps: Tensor[], s: number) {
  ps.forEach((p, i) => {
    const g = gradAt(i, s)
    p.grad = g === null ? null : tensor(p.dtype === 'float64' ? Float64Array.from(g) : Float32Array.from(g), p.shape)
  })
}

async function values(ps: Tensor[]): Promise<number[][]> {
  return Promise.all(ps.map(async (p) => Array.from(await p.data())))
}

/** Runs steps `from..to` (1-based, inclusive) of `opt` over `ps` with the standard gradients. */
async function run(opt: Optimizer, ps: Tensor[], from: number, to: number, eachStep?: (s: number) => void) {
  for (let s = from; s <= to; s++) {
    setGrads(ps, s)
    await opt.step()
    eachStep?.(s)
  }
  await synchronize()
}

/** What torch.optim computed for the same inputs (see scripts/make_optim_fixtures.py). */
interface TorchFixture {
  steps: number
  init: number[][]
  grads: Array<Array<number[] | null>>
  /** By case name: the parameters (flattened) after each step. */
  optimizers: Record<string, { torch: string; trajectory: number[][][] }>
  lrChanges: { lrs: number[]; trajectory: number[][][] }
  schedules: Record<string, { options: Record<string, number | string>; metrics?: number[]; lrs: number[] }>
}
const TORCH: TorchFixture = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'optim-torch.json'), 'utf8'))

/** torch's parameters after step `s` (1-based) of the case `name`. */
function torchAfter(name: string, s: number): number[][] {
  const c = TORCH.optimizers[name]
  if (!c) throw new Error(`no torch trajectory for '${name}' in fixtures/optim-torch.json (rerun scripts/make_optim_fixtures.py)`)
  return c.trajectory[s - 1]!
}

interface Case {
  /** Also the key of its torch trajectory in the fixture. */
  name: string
  make: (ps: Tensor[]) => Optimizer
  /** Buffer names expected in the state dict of a parameter. */
  buffers: string[]
}

const CASES: Case[] = [
  { name: 'SGD', make: (ps) => new SGD(ps, { lr: 0.1 }), buffers: [] },
  {
    name: 'SGD momentum + dampening + weight decay',
    make: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }),
    buffers: ['momentum_buffer'],
  },
  {
    name: 'SGD nesterov',
    make: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.02 }),
    buffers: ['momentum_buffer'],
  },
  {
    name: 'Adam',
    make: (ps) => new Adam(ps, { lr: 0.01, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.05 }),
    buffers: ['exp_avg', 'exp_avg_sq'],
  },
  {
    name: 'AdamW (default weight decay 0.01)',
    make: (ps) => new AdamW(ps, { lr: 0.02 }),
    buffers: ['exp_avg', 'exp_avg_sq'],
  },
  {
    name: 'RMSprop',
    make: (ps) => new RMSprop(ps, { lr: 0.01 }),
    buffers: ['square_avg'],
  },
  {
    name: 'RMSprop centered + momentum + weight decay',
    make: (ps) => new RMSprop(ps, { lr: 0.005, alpha: 0.9, eps: 1e-6, weightDecay: 0.1, momentum: 0.7, centered: true }),
    buffers: ['square_avg', 'momentum_buffer', 'grad_avg'],
  },
  {
    name: 'Adagrad with lrDecay',
    make: (ps) => new Adagrad(ps, { lr: 0.1, lrDecay: 0.05, weightDecay: 0.01, initialAccumulatorValue: 0.1 }),
    buffers: ['sum'],
  },
]

// ---- update rules -----------------------------------------------------------------------------

test('the torch fixture was computed from the inputs these tests use', (t) => {
  t.is(TORCH.steps, STEPS)
  t.deepEqual(TORCH.init, INIT)
  for (let s = 1; s <= STEPS; s++) t.deepEqual(TORCH.grads[s - 1], [gradAt(0, s), gradAt(1, s)], `gradients of step ${s}`)
  t.deepEqual(Object.keys(TORCH.optimizers).sort(), CASES.map((c) => c.name).sort(), 'one trajectory per case')
})

for (const c of CASES) {
  test(`${c.name} matches torch.optim step by step (float64, ${STEPS} steps, a skipped gradient)`, async (t) => {
    const ps = makeParams('float64')
    const opt = c.make(ps)
    for (let s = 1; s <= STEPS; s++) {
      setGrads(ps, s)
      await opt.step()
      await synchronize()
      const want = torchAfter(c.name, s)
      ;(await values(ps)).forEach((g, i) => assertClose(t, g, want[i]!, 1e-13, `${c.name}, step ${s}, parameter ${i}`))
    }
  })
}

test('float32 parameters follow the same rules (to float32 precision)', async (t) => {
  for (const c of [CASES[2]!, CASES[3]!, CASES[6]!, CASES[7]!]) {
    const ps = makeParams('float32', INIT.map((v) => Array.from(Float32Array.from(v))))
    await run(c.make(ps), ps, 1, STEPS)
    const want = torchAfter(c.name, STEPS)
    ;(await values(ps)).forEach((g, i) => assertClose(t, g, want[i]!, 2e-5, `${c.name} float32, parameter ${i}`))
  }
})

test('lr may change between steps (a schedule) and the next step uses it', async (t) => {
  const ps = makeParams('float64')
  const opt = new SGD(ps, { lr: 0.1, momentum: 0.9 })
  const lrs = TORCH.lrChanges.lrs
  for (let s = 1; s <= STEPS; s++) {
    opt.lr = lrs[s - 1]!
    setGrads(ps, s)
    await opt.step()
  }
  const want = TORCH.lrChanges.trajectory[STEPS - 1]!
  ;(await values(ps)).forEach((g, i) => assertClose(t, g, want[i]!, 1e-13, `parameter ${i}`))
})

test.serial('step() keeps the parameter objects, the gradients, and frees what it makes', async (t) => {
  const ps = makeParams('float64')
  const opt = new Adam(ps)
  await run(opt, ps, 1, 2) // the first step allocates the state
  setGrads(ps, 3)
  const before = await liveTensorsAfterGC()
  await opt.step()
  void opt.step()
  opt.step()
  await synchronize()
  // ≤: a collection of earlier garbage may lower the count meanwhile; a leak raises it.
  t.true(memory().tensors <= before, `no live temporaries, awaited or not: ${memory().tensors} live, ${before} before`)
  t.true(ps.every((p) => p.grad !== null), 'gradients are kept')
  t.true(ps.every((p) => p.requiresGrad && p.isLeaf), 'parameters stay leaves that require grad')
})

test('optimizers reject bad options and non-float parameters', (t) => {
  const ps = new Linear(2, 2).parameters()
  t.throws(() => new RMSprop(ps, { alpha: -1 }), { instanceOf: ValueError, message: /alpha/ })
  t.throws(() => new RMSprop(ps, { centered: 1 as unknown as boolean }), { instanceOf: ValueError, message: /centered must be a boolean/ })
  t.throws(() => new Adagrad(ps, { lrDecay: NaN }), { instanceOf: ValueError, message: /lrDecay/ })
  t.throws(() => new AdamW(ps, { betas: [1.5, 0.9] }), { instanceOf: ValueError, message: /betas/ })
  t.throws(() => new SGD([tensor([1, 2], [2], { dtype: 'int32' })], { lr: 0.1 }), { instanceOf: DTypeError, message: /float32 or float64/ })
  t.is(new AdamW(ps).weightDecay, 0.01)
  t.is(new Adam(ps).weightDecay, 0)
  t.is(new RMSprop(ps).lr, 0.01)
  t.is(new Adagrad(ps).eps, 1e-10)
})

// ---- state dicts ------------------------------------------------------------------------------

for (const c of CASES) {
  test(`${c.name}: stateDict → new optimizer → loadStateDict continues bit-identically`, async (t) => {
    // Uninterrupted run.
    const a = makeParams('float64')
    await run(c.make(a), a, 1, 2 * STEPS)
    const want = await values(a)

    // Interrupted after STEPS: a fresh optimizer over fresh copies of the parameters.
    const b = makeParams('float64')
    const optB = c.make(b)
    await run(optB, b, 1, STEPS)
    const sd = optB.stateDict()
    const snapshot = await Promise.all(Object.values(sd.state).flatMap((s) => c.buffers.map((n) => (s[n] as Tensor).data())))
    const copies = makeParams('float64', await values(b))
    const optC = c.make(copies)
    optC.lr = 123 // restored by loadStateDict
    optC.loadStateDict(sd)
    t.is(optC.lr, optB.lr)
    await run(optC, copies, STEPS + 1, 2 * STEPS)
    const got = await values(copies)
    got.forEach((g, i) => t.deepEqual(Float64Array.from(g), Float64Array.from(want[i]!), `${c.name}: parameter ${i} bit-identical`))

    // The state dict's tensors are snapshots: neither optimizer's later steps changed them.
    await run(optB, b, STEPS + 1, STEPS + 2)
    const after = await Promise.all(Object.values(sd.state).flatMap((s) => c.buffers.map((n) => (s[n] as Tensor).data())))
    t.deepEqual(after, snapshot, 'state dict tensors are snapshots')

    // Its shape: per-parameter step counts and PyTorch buffer names; JSON-safe hyper-parameters.
    t.deepEqual(Object.keys(sd.state), ['0', '1'])
    t.is(sd.state[0]!.step, STEPS)
    t.is(sd.state[1]!.step, STEPS - 1, 'parameter 1 had no gradient at step 2')
    t.deepEqual(Object.keys(sd.state[0]!).sort(), ['step', ...c.buffers].sort())
    t.is(sd.paramGroups.length, 1)
    t.deepEqual(sd.paramGroups[0]!.params, [0, 1])
    t.deepEqual(JSON.parse(JSON.stringify(sd.paramGroups)), sd.paramGroups)
  })
}

test('an optimizer state survives a safetensors file (tensors) + JSON metadata (the rest) exactly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'recurrent-optim-'))
  try {
    const a = makeParams('float64')
    await run(new Adam(a, { lr: 0.01, weightDecay: 0.1 }), a, 1, 2 * STEPS)
    const want = await values(a)

    const b = makeParams('float64')
    const optB = new Adam(b, { lr: 0.01, weightDecay: 0.1 })
    await run(optB, b, 1, STEPS)
    const sd = optB.stateDict()
    const tensors: Record<string, Tensor> = {}
    const skeleton: Record<string, Record<string, number | string>> = {}
    for (const [i, s] of Object.entries(sd.state)) {
      skeleton[i] = {}
      for (const [k, v] of Object.entries(s)) {
        if (v instanceof Tensor) tensors[`state.${i}.${k}`] = v
        else skeleton[i]![k] = v
      }
    }
    b.forEach((p, i) => (tensors[`param.${i}`] = p))
    const file = join(dir, 'ckpt.safetensors')
    await saveSafetensors(file, tensors, { state: JSON.stringify(skeleton), groups: JSON.stringify(sd.paramGroups) })

    const loaded = await loadSafetensors(file)
    const state: OptimizerStateDict['state'] = {}
    for (const [i, s] of Object.entries(JSON.parse(loaded.metadata.state!) as Record<string, Record<string, number>>)) {
      state[Number(i)] = { step: s.step!, exp_avg: loaded.tensors[`state.${i}.exp_avg`]!, exp_avg_sq: loaded.tensors[`state.${i}.exp_avg_sq`]! }
    }
    const c = b.map((_, i) => loaded.tensors[`param.${i}`]!)
    c.forEach((p) => (p.requiresGrad = true))
    const optC = new Adam(c)
    optC.loadStateDict({ state, paramGroups: JSON.parse(loaded.metadata.groups!) })
    t.is(optC.weightDecay, 0.1)
    await run(optC, c, STEPS + 1, 2 * STEPS)
    ;(await values(c)).forEach((g, i) => t.deepEqual(Float64Array.from(g), Float64Array.from(want[i]!), `parameter ${i}`))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('loadStateDict: clear errors on mismatch, and a failed load changes nothing', async (t) => {
  const ps = makeParams('float64')
  const adam = new Adam(ps, { lr: 0.01 })
  await run(adam, ps, 1, 2)
  const sd = adam.stateDict()

  const sgd = new SGD(ps, { lr: 0.5, momentum: 0.9 })
  t.throws(() => sgd.loadStateDict(sd), { instanceOf: ValueError, message: /'betas' is not an option of SGD \(is this the state of another optimizer\?\)/ })
  t.is(sgd.lr, 0.5, 'nothing changed')

  const three = new Adam([...makeParams('float64'), zeros([2])])
  t.throws(() => three.loadStateDict(sd), { instanceOf: ValueError, message: /state dict is for 2 parameters; this optimizer has 3/ })

  const other = new Adam(makeParams('float64'), { lr: 0.3 })
  const badShape: OptimizerStateDict = { ...sd, state: { ...sd.state, 1: { ...sd.state[1]!, exp_avg: zeros([5], { dtype: 'float64' }) } } }
  t.throws(() => other.loadStateDict(badShape), {
    instanceOf: ShapeError,
    message: /state of parameter 1: 'exp_avg' must have the parameter's shape \[4\], got \[5\]/,
  })
  const badDtype: OptimizerStateDict = { ...sd, state: { 0: { ...sd.state[0]!, exp_avg_sq: zeros([2, 3]) } } }
  t.throws(() => other.loadStateDict(badDtype), { instanceOf: DTypeError, message: /'exp_avg_sq' must have the parameter's dtype float64, got float32/ })
  const missing: OptimizerStateDict = { ...sd, state: { 0: { step: 3, exp_avg: sd.state[0]!.exp_avg as Tensor } } }
  t.throws(() => other.loadStateDict(missing), { instanceOf: ValueError, message: /state of parameter 0 lacks 'exp_avg_sq'/ })
  const stranger: OptimizerStateDict = { ...sd, state: { 0: { ...sd.state[0]!, momentum_buffer: sd.state[0]!.exp_avg as Tensor } } }
  t.throws(() => other.loadStateDict(stranger), { instanceOf: ValueError, message: /buffer 'momentum_buffer', which Adam does not use/ })
  const badIndex: OptimizerStateDict = { ...sd, state: { 7: sd.state[0]! } }
  t.throws(() => other.loadStateDict(badIndex), { instanceOf: ValueError, message: /state for parameter '7'/ })
  const badOption: OptimizerStateDict = { ...sd, paramGroups: [{ ...sd.paramGroups[0]!, eps: -1 }] }
  t.throws(() => other.loadStateDict(badOption), { instanceOf: ValueError, message: /eps must be a finite number ≥ 0/ })
  t.throws(() => other.loadStateDict({} as OptimizerStateDict), { instanceOf: ValueError, message: /expected a state dict/ })
  t.is(other.lr, 0.3, 'failed loads changed nothing')
  t.is(other.eps, 1e-8)
  t.deepEqual(other.stateDict().state, {}, 'no state was loaded')
})

// ---- gradient clipping ------------------------------------------------------------------------

test('clipGradNorm returns the total norm and scales the gradients (torch.nn.utils.clip_grad_norm_)', async (t) => {
  const g1 = [3, -4, 1, 2]
  const g2 = [0.5, -2, 6]
  const setup = () => {
    const a = zeros([2, 2])
    const b = zeros([3])
    const c = zeros([1]) // no gradient: skipped
    for (const p of [a, b, c]) p.requiresGrad = true
    a.grad = tensor(g1, [2, 2])
    b.grad = tensor(g2)
    return [a, b, c] as const
  }
  const all = [...g1, ...g2]
  const l2 = Math.sqrt(all.reduce((s, v) => s + v * v, 0))

  let [a, b, c] = setup()
  const norm = clipGradNorm([a, b, c], 2)
  t.deepEqual(norm.shape, [])
  assertClose(t, [await norm.item()], [l2], 1e-6, 'L2 norm')
  const coef = 2 / (l2 + 1e-6)
  assertClose(t, await a.grad!.data(), g1.map((v) => v * coef), 1e-6, 'scaled grad a')
  assertClose(t, await b.grad!.data(), g2.map((v) => v * coef), 1e-6, 'scaled grad b')
  t.is(c.grad, null)

  // Under the limit: untouched, bit for bit.
  ;[a, b] = setup()
  assertClose(t, [await clipGradNorm([a, b], 100).item()], [l2], 1e-6, 'norm under the limit')
  t.deepEqual(Array.from(await a.grad!.data()), g1)
  t.deepEqual(Array.from(await b.grad!.data()), g2)

  // Other norms.
  ;[a, b] = setup()
  t.is(await clipGradNorm([a, b], 3, 'inf').item(), 6)
  assertClose(t, await b.grad!.data(), g2.map((v) => (v * 3) / (6 + 1e-6)), 1e-6, 'inf-norm clip')
  ;[a, b] = setup()
  assertClose(t, [await clipGradNorm([a, b], 1000, 1).item()], [all.reduce((s, v) => s + Math.abs(v), 0)], 1e-6, 'L1 norm')

  // No gradients: a zero norm; bad arguments: ValueError.
  t.is(await clipGradNorm([zeros([2])], 1).item(), 0)
  t.throws(() => clipGradNorm([a], 0), { instanceOf: ValueError, message: /maxNorm/ })
  t.throws(() => clipGradNorm([a], 1, -2), { instanceOf: ValueError, message: /normType/ })
})

test('clipGradValue clamps every gradient element into [-limit, limit]', async (t) => {
  const a = zeros([2, 2])
  a.requiresGrad = true
  a.grad = tensor([3, -4, 0.25, -0.5], [2, 2])
  clipGradValue([a], 0.5)
  t.deepEqual(Array.from(await a.grad!.data()), [0.5, -0.5, 0.25, -0.5])
  clipGradValue(a, 0.1)
  assertClose(t, await a.grad!.data(), [0.1, -0.1, 0.1, -0.1], 1e-7, 'single tensor')
  t.throws(() => clipGradValue([a], -1), { instanceOf: ValueError, message: /limit/ })
})

test('clipping composes with an optimizer step', async (t) => {
  const ps = makeParams('float64')
  const opt = new SGD(ps, { lr: 1 })
  setGrads(ps, 1)
  const before = await values(ps)
  const norm = clipGradNorm(ps, 0.5)
  await opt.step()
  await synchronize()
  const after = await values(ps)
  let sq = 0
  after.forEach((v, i) => v.forEach((x, j) => (sq += (x - before[i]![j]!) ** 2)))
  assertClose(t, [Math.sqrt(sq)], [0.5], 1e-5, 'the update has the clipped norm')
  t.true((await norm.item()) > 0.5)
})

// ---- schedules --------------------------------------------------------------------------------

/** The optimizer's lr at construction of the schedule and after each of `n` steps. */
function lrSequence(sched: { step(): void; lastLr: number }, opt: { lr: number }, n: number): number[] {
  const out = [opt.lr]
  for (let i = 0; i < n; i++) {
    sched.step()
    if (sched.lastLr !== opt.lr) throw new Error(`lastLr ${sched.lastLr} differs from the optimizer's lr ${opt.lr}`)
    out.push(opt.lr)
  }
  return out
}

test('StepLR: lr = base · gamma^⌊epoch / stepSize⌋', (t) => {
  const opt = new SGD([zeros([1])], { lr: 0.1 })
  const lrs = lrSequence(new StepLR(opt, { stepSize: 3, gamma: 0.5 }), opt, 8)
  assertClose(t, lrs, TORCH.schedules.StepLR!.lrs, 1e-15, 'StepLR against torch')
  const opt2 = new SGD([zeros([1])], { lr: 1 })
  assertClose(t, lrSequence(new StepLR(opt2, { stepSize: 1 }), opt2, 2), [1, 0.1, 0.01], 1e-15, 'default gamma 0.1')
  t.throws(() => new StepLR(opt, { stepSize: 0 }), { instanceOf: ValueError, message: /stepSize must be an integer ≥ 1/ })
})

test('ExponentialLR: lr = base · gamma^epoch', (t) => {
  const opt = new Adam([zeros([1])], { lr: 0.2 })
  const lrs = lrSequence(new ExponentialLR(opt, { gamma: 0.9 }), opt, 4)
  assertClose(t, lrs, TORCH.schedules.ExponentialLR!.lrs, 1e-14, 'ExponentialLR against torch')
  t.throws(() => new ExponentialLR(opt, { gamma: 0 }), { instanceOf: ValueError, message: /gamma/ })
})

test('CosineWithWarmup: linear warmup from 0, then cosine down to minLr, then minLr', (t) => {
  const opt = new AdamW([zeros([1])], { lr: 1 })
  const lrs = lrSequence(new CosineWithWarmup(opt, { warmupSteps: 4, totalSteps: 12, minLr: 0.1 }), opt, 14)
  // torch's LambdaLR with Hugging Face's cosine-with-warmup factor (floored at minLr).
  assertClose(t, lrs, TORCH.schedules.CosineWithWarmup!.lrs, 1e-15, 'CosineWithWarmup against torch')
  assertClose(t, [lrs[6]!], [0.1 + 0.45 * (1 + Math.SQRT1_2)], 1e-15, 'a quarter of the way: cos(π/4)')
  const opt2 = new SGD([zeros([1])], { lr: 0.5 })
  assertClose(t, lrSequence(new CosineWithWarmup(opt2, { warmupSteps: 0, totalSteps: 2 }), opt2, 3), [0.5, 0.25, 0, 0], 1e-15, 'no warmup')
  t.throws(() => new CosineWithWarmup(opt, { warmupSteps: 5, totalSteps: 4 }), { instanceOf: ValueError, message: /totalSteps \(4\) must be ≥ warmupSteps \(5\)/ })
})

test('ReduceLROnPlateau: patience, relative threshold, cooldown, minLr (PyTorch semantics)', (t) => {
  const opt = new SGD([zeros([1])], { lr: 1 })
  const sched = new ReduceLROnPlateau(opt, { mode: 'min', factor: 0.5, patience: 2, threshold: 0.1, cooldown: 1, minLr: 0.01 })
  const metrics = TORCH.schedules.ReduceLROnPlateau!.metrics!
  t.deepEqual(metrics, [10, 9.5, 9.2, 9.1, 8, ...new Array(28).fill(8)])
  const lrs = metrics.map((m) => (sched.step(m), opt.lr))
  // torch's sequence starts with the lr before the first step.
  assertClose(t, [1, ...lrs], TORCH.schedules.ReduceLROnPlateau!.lrs, 1e-15, 'ReduceLROnPlateau against torch')
  // Epoch 1 sets best 10. 9.5, 9.2, 9.1 are not below 10·0.9: the third bad epoch (> patience 2)
  // halves lr at epoch 4. 8 < 9 is an improvement (best 8); cooldown absorbs epoch 5. Then
  // three bad epochs per halving, plus one of cooldown: epochs 8, 12, 16, 20, 24, 28 (floor 0.01).
  const want = [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125, 0.0625]
  for (const lr of [0.0625, 0.0625, 0.0625, 0.03125, 0.03125, 0.03125, 0.03125, 0.015625, 0.015625, 0.015625, 0.015625]) want.push(lr)
  while (want.length < metrics.length) want.push(0.01)
  t.deepEqual(lrs, want)
  t.is(sched.lastLr, 0.01)
  t.is(sched.best, 8)

  // mode 'max' with an absolute threshold, no cooldown.
  const opt2 = new SGD([zeros([1])], { lr: 0.1 })
  const s2 = new ReduceLROnPlateau(opt2, { mode: 'max', factor: 0.1, patience: 1, threshold: 0.05, thresholdMode: 'abs' })
  const lrs2 = [0.5, 0.54, 0.56, 0.6, 0.62].map((m) => (s2.step(m), opt2.lr))
  // 0.54 < 0.55: bad 1; 0.56 ≥ 0.55: better (best .56); 0.6 ≥ .61? no: bad 1; 0.62 ≥ 0.61: better.
  assertClose(t, lrs2, [0.1, 0.1, 0.1, 0.1, 0.1], 1e-15, 'max mode')
  s2.step(0.6)
  const after6 = opt2.lr
  s2.step(0.6)
  assertClose(t, [opt2.lr], [0.01], 1e-15, 'two bad epochs > patience 1')
  assertClose(t, [0.1, ...lrs2, after6, opt2.lr], TORCH.schedules['ReduceLROnPlateau max abs']!.lrs, 1e-15, 'max mode against torch')
  t.throws(() => new ReduceLROnPlateau(opt2, { factor: 1 }), { instanceOf: ValueError, message: /factor must be < 1/ })
  t.throws(() => new ReduceLROnPlateau(opt2, { mode: 'up' as 'min' }), { instanceOf: ValueError, message: /mode/ })
})

test('schedules: stateDict → JSON → loadStateDict continues with exactly the same learning rates', (t) => {
  type Sched = { step(metric?: number): void; stateDict(): SchedulerStateDict; loadStateDict(sd: SchedulerStateDict): void; lastLr: number }
  const makers: Array<[string, (o: { lr: number }) => Sched]> = [
    ['StepLR', (o) => new StepLR(o, { stepSize: 2, gamma: 0.7 })],
    ['ExponentialLR', (o) => new ExponentialLR(o, { gamma: 0.93 })],
    ['CosineWithWarmup', (o) => new CosineWithWarmup(o, { warmupSteps: 3, totalSteps: 11, minLr: 0.001 })],
    ['ReduceLROnPlateau', (o) => new ReduceLROnPlateau(o, { patience: 1, factor: 0.5, cooldown: 1 })],
  ]
  const metric = (i: number) => [5, 4, 4.5, 4.2, 4.1, 3, 3.5, 3.4, 3.6, 3.3, 3.2, 3.9][i % 12]!
  for (const [name, make] of makers) {
    const optA = new SGD([zeros([1])], { lr: 0.3 })
    const a = make(optA)
    const wantLrs: number[] = []
    for (let i = 0; i < 12; i++) {
      a.step(metric(i))
      wantLrs.push(optA.lr)
    }
    const optB = new SGD([zeros([1])], { lr: 0.3 })
    const b = make(optB)
    for (let i = 0; i < 6; i++) b.step(metric(i))
    const sd = JSON.parse(JSON.stringify(b.stateDict())) as SchedulerStateDict
    t.is(sd.kind, name)
    // A fresh optimizer (lr from elsewhere) and a schedule built with other options.
    const optC = new SGD([zeros([1])], { lr: 99 })
    const c = name === 'ReduceLROnPlateau' ? new ReduceLROnPlateau(optC) : name === 'StepLR' ? new StepLR(optC, { stepSize: 9 }) : name === 'ExponentialLR' ? new ExponentialLR(optC, { gamma: 0.5 }) : new CosineWithWarmup(optC, { warmupSteps: 0, totalSteps: 2 })
    c.loadStateDict(sd)
    t.is(optC.lr, wantLrs[5]!, `${name}: the optimizer lr is restored`)
    const got: number[] = []
    for (let i = 6; i < 12; i++) {
      c.step(metric(i))
      got.push(optC.lr)
    }
    t.deepEqual(got, wantLrs.slice(6), `${name}: identical continuation`)
    t.is(c.lastLr, wantLrs[11]!)
  }
  const opt = new SGD([zeros([1])], { lr: 0.1 })
  t.throws(() => new StepLR(opt, { stepSize: 2 }).loadStateDict(new ExponentialLR(opt, { gamma: 0.5 }).stateDict()), {
    instanceOf: ValueError,
    message: /state dict is of a ExponentialLR schedule, not StepLR/,
  })
  t.throws(() => new ReduceLROnPlateau(opt).loadStateDict({ kind: 'ReduceLROnPlateau', patience: -1 }), { instanceOf: ValueError, message: /patience/ })
})

// ---- backpressure -----------------------------------------------------------------------------

test.serial('await opt.step() in a loop keeps memory().queued bounded to about two steps of ops', async (t) => {
  const model = new LSTM(16, 96, { seed: 3 })
  const head = new Linear(96, 1, { seed: 4 })
  const params = [...model.parameters(), ...head.parameters()]
  const opt = new Adam(params, { lr: 1e-3 })
  const x = randn([40, 16, 16], { seed: 5 })
  const y = randn([40, 16, 1], { seed: 6 })
  const oneStep = () => {
    opt.zeroGrad()
    const loss = mse(head.forward(model.forward(x).output), y)
    loss.backward()
    loss.dispose()
    return opt.step()
  }
  await oneStep()
  await synchronize()

  // How many executor ops one step enqueues: keep the executor busy with one big matmul, then
  // enqueue a step and count (nothing of the step can have run yet).
  const big = randn([1400, 1400], { seed: 7 })
  const busy = big.matmul(big)
  const base = memory().queued
  void oneStep()
  const opsPerStep = memory().queued - base
  await busy.data()
  await synchronize()
  t.true(opsPerStep >= 3, `one step enqueues ${opsPerStep} ops`)

  let maxAfterAwait = 0
  let maxEnqueued = 0
  const t0 = performance.now()
  for (let i = 0; i < 40; i++) {
    const p = oneStep()
    maxEnqueued = Math.max(maxEnqueued, memory().queued)
    await p
    maxAfterAwait = Math.max(maxAfterAwait, memory().queued)
  }
  const ms = performance.now() - t0
  await synchronize()
  t.log(`${opsPerStep} ops per step; 40 steps in ${ms.toFixed(0)} ms; max queued: ${maxEnqueued} right after step(), ${maxAfterAwait} after its await`)
  // After `await opt.step()` the previous step has run: at most this step's ops remain.
  t.true(maxAfterAwait <= opsPerStep + 2, `after await: ${maxAfterAwait} ≤ ${opsPerStep} + 2`)
  t.true(maxEnqueued <= 2 * opsPerStep + 2, `right after step(): ${maxEnqueued} ≤ 2·${opsPerStep} + 2`)
})

test.serial('the step promise resolves at once for the first step, then once the previous step has run', async (t) => {
  const ps = makeParams('float64')
  const opt = new SGD(ps, { lr: 0.1 })
  // Hold the executor: nothing enqueued below runs until the hold is released.
  const hold = native.holdExecutor()
  try {
    setGrads(ps, 1)
    const first = opt.step()
    const afterStep1 = ps[0]!.detach() // the parameter's data as step 1 leaves it
    t.false(afterStep1.isReady, 'step 1 is queued behind the hold')
    await first
    t.false(afterStep1.isReady, 'the first step resolved without waiting for its own update')
    setGrads(ps, 3)
    const second = opt.step()
    // Step 2's promise waits for step 1's update, which cannot run while the executor is held:
    // it is still pending however long we look (50 ms here).
    const early = await Promise.race([second.then(() => 'resolved'), new Promise((r) => setTimeout(() => r('pending'), 50))])
    t.is(early, 'pending', "step 2's promise did not wait for step 1's update")
    hold.release()
    await second
    t.true(afterStep1.isReady, "step 2's promise resolved after step 1's update had run")
  } finally {
    hold.release()
  }
  await synchronize()
  const want = torchAfter('SGD', 1)
  const g3 = [gradAt(0, 3)!, gradAt(1, 3)!]
  const want2 = want.map((p, i) => p.map((v, j) => v - 0.1 * g3[i]![j]!))
  ;(await values(ps)).forEach((g, i) => assertClose(t, g, want2[i]!, 1e-13, `parameter ${i}`))
  // A step without any gradient enqueues nothing and returns the pending promise.
  opt.zeroGrad()
  await t.notThrowsAsync(opt.step())
})
