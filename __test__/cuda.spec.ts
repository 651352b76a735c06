/**
 * Devices from the TypeScript API: `cudaAvailable()`, `cudaDevices()`, `Tensor.to()`, the
 * factories' `device` option, `Module.to()`, `memory().cuda`, `emptyCache()`.
 *
 * One file for both kinds of machine:
 * - WITHOUT CUDA (no GPU, or no driver/NVRTC/cuBLAS): every CUDA request throws a
 *   `CudaUnavailableError` that says what is missing, nothing is created or moved, and CPU
 *   work goes on. The GPU tests are registered as skipped (`test.skip`), so ava reports them;
 *   with `RECURRENT_REQUIRE_CUDA=1` (scripts/gpu-check.sh) they run and fail instead.
 * - WITH CUDA (`cudaAvailable()` true): the same training code runs on 'cuda' with only the
 *   device changed and must match the CPU (the CPU is the oracle), and cross-device mixing is a
 *   DeviceError. The no-CUDA tests are registered as skipped.
 *
 * `scripts/gpu-check.sh` runs this file on a GPU machine (with the Node.js found there or the one
 * carried in the bundle). Without a GPU, `npm run test:cuda-emu` runs it against the host
 * emulator of the CUDA kernels through a test build of the addon (RECURRENT_CUDA_EMULATOR=1),
 * so the TypeScript → napi → CUDA-backend path is exercised on any machine with a C++ compiler.
 */

import test, { type ExecutionContext } from 'ava'

import {
  Adam,
  Attention,
  attention,
  CudaUnavailableError,
  DeviceError,
  LSTM,
  Linear,
  Module,
  RecurrentLM,
  type Tensor,
  arrayStream,
  clipGradNorm,
  crossEntropy,
  cudaAvailable,
  cudaDevices,
  cudaUnavailableReason,
  emptyCache,
  fit,
  fitTBPTT,
  full,
  manualSeed,
  memory,
  mse,
  noGrad,
  ones,
  onesLike,
  randUniform,
  randn,
  seedState,
  tensor,
  zeros,
  zerosLike,
  type Device,
} from '../index.js'

const HAS_CUDA = cudaAvailable()
const REASON = cudaUnavailableReason()
/** Set where a missing device is a failure (the GPU check), not a skip. */
const REQUIRE_CUDA = process.env.RECURRENT_REQUIRE_CUDA === '1'

/** Largest |a − b| / max(|b|, floor) over two arrays of the same length. */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor))
  return m
}

/** The accepted device forms, as the DeviceError names them. */
const FORMS = /'cpu', 'cuda' or 'cuda:N'/

// ---- on every machine -------------------------------------------------------------------------

test('cudaAvailable, cudaUnavailableReason and cudaDevices agree with each other', (t) => {
  const devs = cudaDevices()
  t.true(Array.isArray(devs))
  t.is(HAS_CUDA, REASON === null)
  t.is(HAS_CUDA, devs.length > 0)
  devs.forEach((d, i) => {
    t.is(d.ordinal, i)
    t.is(typeof d.name, 'string')
    t.true(d.name.length > 0)
    t.true(Number.isInteger(d.memory) && d.memory > 0, `memory ${d.memory}`)
    t.is(d.computeCapability.length, 2)
    t.true(d.computeCapability.every((v) => Number.isInteger(v) && v >= 0))
    // The libraries loaded: known on a GPU (one installation, CUDA 13); absent on the emulator.
    for (const k of ['driverVersion', 'cublasVersion'] as const) t.true(d[k] === null || Number.isInteger(d[k]), k)
    for (const k of ['nvrtcVersion', 'driverPath', 'nvrtcPath', 'cublasPath', 'cublasLtPath'] as const) {
      t.true(d[k] === null || typeof d[k] === 'string', k)
    }
    if (d.computeCapability[0] > 0) {
      t.regex(d.nvrtcVersion ?? '', /^13\./)
      t.is(Math.floor((d.cublasVersion ?? 0) / 10000), 13)
      t.truthy(d.nvrtcPath && d.cublasPath && d.cublasLtPath)
    }
  })
  if (HAS_CUDA) {
    const d = devs[0]!
    t.log(`libraries: driver ${d.driverVersion} ${d.driverPath}; nvrtc ${d.nvrtcVersion} ${d.nvrtcPath}; cublas ${d.cublasVersion} ${d.cublasPath}; cublasLt ${d.cublasLtPath}`)
  }
  t.log(HAS_CUDA ? `CUDA devices: ${devs.map((d) => `${d.name} (sm_${d.computeCapability.join('')}, ${(d.memory / 2 ** 30).toFixed(1)} GiB)`).join(', ')}` : `no CUDA: ${REASON}`)
})

test("to('gpu') and other malformed devices: DeviceError naming the accepted forms; nothing is made", (t) => {
  const x = randn([2, 2], { seed: 1 })
  for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:-1', 'cuda:x', 'cuda0', ' cpu', '', 'mps']) {
    const e = t.throws(() => x.to(bad as Device), { instanceOf: DeviceError }, bad)!
    t.is(e.code, 'ERR_DEVICE')
    t.is(e.op, 'to')
    t.regex(e.message, FORMS)
    t.true(e.message.includes(`'${bad}'`), e.message)
  }
  t.throws(() => x.to(null as unknown as Device), { instanceOf: DeviceError, message: FORMS })
  const lin = new Linear(2, 2, { seed: 1 })
  // No tensor is made by a refused call (≤: the GC may free others meanwhile).
  const before = memory().tensors
  t.throws(() => zeros([2], { device: 'gpu' as Device }), { instanceOf: DeviceError, message: /^zeros: .*'gpu'/ })
  t.throws(() => randn([2], { device: 'gpu' as Device }), { instanceOf: DeviceError, message: /^randn: / })
  t.throws(() => tensor([1, 2], undefined, { device: 'gpu' as Device }), { instanceOf: DeviceError, message: /^tensor: / })
  t.throws(() => lin.to('gpu' as Device), { instanceOf: DeviceError, message: /^Linear\.to: .*'cpu', 'cuda' or 'cuda:N'/ })
  t.throws(() => emptyCache('gpu' as Device), { instanceOf: DeviceError, message: FORMS })
  t.true(memory().tensors <= before)
  t.true(lin.parameters().every((p) => p.device === 'cpu'))
})

test("to('cpu') on a CPU tensor is the same tensor; the factories take device 'cpu'", async (t) => {
  const x = randn([3], { seed: 2 })
  t.is(x.to('cpu'), x)
  t.is(x.device, 'cpu')
  for (const y of [
    zeros([2], { device: 'cpu' }),
    ones([2], { device: 'cpu' }),
    full([2], 3, { device: 'cpu' }),
    randn([2], { device: 'cpu', seed: 1 }),
    randUniform([2], 0, 1, { device: 'cpu', seed: 1 }),
    tensor([1, 2], undefined, { device: 'cpu' }),
    zerosLike(x),
    onesLike(x, { dtype: 'float64' }),
  ]) {
    t.is(y.device, 'cpu')
  }
  t.deepEqual(Array.from(await full([2], 3, { device: 'cpu' }).data()), [3, 3])
  t.is(onesLike(x, { dtype: 'float64' }).dtype, 'float64')
})

test("Module.to('cpu') keeps every parameter object, its data and requiresGrad; buffers move with it", async (t) => {
  class WithBuffer extends Module {
    readonly lin = this.registerModule('lin', new Linear(2, 2, { seed: 3 }))
    readonly scale = this.registerBuffer('scale', full([2], 2))
    readonly none = this.registerBuffer('none', null)
    forward(x: Tensor): Tensor {
      return this.lin.forward(x).mul(this.scale)
    }
  }
  const m = new WithBuffer()
  const ps = m.parameters()
  const before = await Promise.all(ps.map((p) => p.data()))
  t.is(m.to('cpu'), m)
  t.deepEqual(m.parameters(), ps)
  t.true(ps.every((p) => p.requiresGrad && p.device === 'cpu'))
  t.deepEqual(await Promise.all(ps.map((p) => p.data())), before)
  t.deepEqual(m.namedBuffers().map(([n]) => n), ['scale'])
  t.deepEqual(m.buffers(), [m.scale])
  t.false('scale' in m.stateDict())
  t.throws(() => m.registerBuffer('scale', zeros([1])), { message: /already registered/ })
})

// ---- without CUDA: a clear CudaUnavailableError, nothing moved, CPU work goes on --------------

/** A test for machines without CUDA; registered as skipped where CUDA is available. */
function withoutCuda(title: string, body: (t: ExecutionContext) => void | Promise<void>) {
  ;(HAS_CUDA ? test.skip : test)(`no CUDA: ${title}`, body)
}

/** The CUDA-unavailable error: the class, its code, the op, and what is missing. */
function checkUnavailable(t: ExecutionContext, e: Error | undefined, op: string) {
  t.true(e instanceof CudaUnavailableError, String(e))
  const err = e as CudaUnavailableError
  t.is(err.code, 'ERR_CUDA_UNAVAILABLE')
  t.is(err.op, op)
  t.true(err.message.startsWith(`${op}: CUDA is unavailable`), err.message)
  // It says what is missing: the reason recurrent-cuda found (the driver library, a device, NVRTC or cuBLAS).
  t.true(REASON !== null && err.message.includes(REASON), err.message)
  t.regex(err.message, /libcuda|driver|no CUDA device|libnvrtc|libcublas/)
}

withoutCuda('cudaAvailable() is false, cudaDevices() is [], and the reason names what is missing', (t) => {
  t.false(cudaAvailable())
  t.deepEqual(cudaDevices(), [])
  t.is(typeof REASON, 'string')
  t.regex(REASON!, /libcuda|driver|no CUDA device|libnvrtc|libcublas/)
  t.log(`reason: ${REASON}`)
  t.deepEqual(memory().cuda, [])
  t.is(emptyCache(), 0)
  t.is(emptyCache('cuda'), 0)
  t.is(emptyCache('cpu'), 0)
})

withoutCuda("randn([2, 2]).to('cuda'): CudaUnavailableError naming what is missing", (t) => {
  const x = randn([2, 2], { seed: 4 })
  for (const d of ['cuda', 'cuda:0', 'cuda:1'] as const) checkUnavailable(t, t.throws(() => x.to(d)), 'to')
  t.is(x.device, 'cpu')
  t.false(x.isDisposed)
})

withoutCuda("zeros([2], { device: 'cuda' }) and every other factory: CudaUnavailableError, nothing made, no seed drawn", (t) => {
  const tensors = memory().tensors
  const seeds = seedState()
  checkUnavailable(t, t.throws(() => zeros([2], { device: 'cuda' })), 'zeros')
  checkUnavailable(t, t.throws(() => ones([2], { device: 'cuda' })), 'ones')
  checkUnavailable(t, t.throws(() => full([2], 1, { device: 'cuda:0' })), 'full')
  checkUnavailable(t, t.throws(() => tensor([[1, 2]], undefined, { device: 'cuda' })), 'tensor')
  checkUnavailable(t, t.throws(() => randn([2], { device: 'cuda' })), 'randn')
  checkUnavailable(t, t.throws(() => randUniform([2], 0, 1, { device: 'cuda' })), 'randUniform')
  const x = zeros([2])
  checkUnavailable(t, t.throws(() => zerosLike(x, { device: 'cuda' })), 'zerosLike')
  checkUnavailable(t, t.throws(() => onesLike(x, { device: 'cuda:2' })), 'onesLike')
  x.dispose()
  t.true(memory().tensors <= tensors)
  t.deepEqual(seedState(), seeds)
})

withoutCuda("new LSTM(2, 3).to('cuda'): CudaUnavailableError, and the module is untouched and still trains on the CPU", async (t) => {
  const lstm = new LSTM(2, 3, { seed: 5 })
  const ps = lstm.parameters()
  const before = await Promise.all(ps.map((p) => p.data()))
  checkUnavailable(t, t.throws(() => lstm.to('cuda')), 'LSTM.to')
  checkUnavailable(t, t.throws(() => lstm.to('cuda:1')), 'LSTM.to')
  t.deepEqual(lstm.parameters(), ps)
  t.true(ps.every((p) => p.device === 'cpu' && p.requiresGrad && !p.isDisposed))
  t.deepEqual(await Promise.all(ps.map((p) => p.data())), before)

  // CPU work continues: forward, backward and an optimizer step.
  const opt = new Adam(lstm.parameters(), { lr: 0.01 })
  const x = randn([4, 2, 2], { seed: 6 })
  const loss = lstm.forward(x).output.square().mean()
  const l0 = await loss.item()
  loss.backward()
  await opt.step()
  const l1 = await lstm.forward(x).output.square().mean().item()
  t.true(Number.isFinite(l0) && Number.isFinite(l1))
  t.not(l1, l0)
  t.true(ps.every((p) => p.device === 'cpu'))
})

// ---- with CUDA: the GPU branch ----------------------------------------------------------------
// Everything below needs a CUDA device; on a machine without one each test is reported as
// skipped (or fails, with RECURRENT_REQUIRE_CUDA=1). It was written before any run on a GPU: it is
// exercised by scripts/gpu-check.sh on a GPU machine, and by `npm run test:cuda-emu` on the
// kernel emulator.

/**
 * A test that needs CUDA: registered as skipped where none is available, or, with
 * RECURRENT_REQUIRE_CUDA=1, as a test that fails naming the reason.
 */
function withCuda(title: string, body: (t: ExecutionContext) => void | Promise<void>) {
  if (HAS_CUDA) test.serial(`CUDA: ${title}`, body)
  else if (REQUIRE_CUDA) test.serial(`CUDA: ${title}`, (t) => t.fail(`RECURRENT_REQUIRE_CUDA=1 but no CUDA device: ${REASON}`))
  else test.skip(`CUDA: ${title}`, body)
}

withCuda("randn → to('cuda') → ops → data() matches the CPU", async (t) => {
  const xc = randn([8, 5], { seed: 11 })
  const wc = randn([5, 7], { seed: 12 })
  const bc = randn([7], { seed: 13 })
  const x = xc.to('cuda')
  const w = wc.to('cuda:0')
  const b = bc.to('cuda')
  t.is(x.device, 'cuda:0')
  t.is(x.to('cuda'), x)
  t.is(x.to('cuda:0'), x)
  const chain = (x: Tensor, w: Tensor, b: Tensor) =>
    x.matmul(w).add(b).tanh().mul(x.matmul(w).sigmoid()).softmax(-1).log().sum(1).div(3).addScalar(0.5)
  const cpu = await chain(xc, wc, bc).data()
  const gpuT = chain(x, w, b)
  t.is(gpuT.device, 'cuda:0')
  const gpu = await gpuT.data()
  const err = maxRel(gpu, cpu)
  t.log(`ops chain: max rel diff ${err.toExponential(2)}`)
  t.true(err < 1e-5, `max rel diff ${err}`)
  // Round trip and reads: exact.
  t.deepEqual(await x.to('cpu').data(), await xc.data())
  t.deepEqual(x.dataSync(), xc.dataSync())
  t.deepEqual(await x.array(), await xc.array())
})

withCuda('the factories make the same values on CUDA as on the CPU for a seed', async (t) => {
  t.deepEqual(await randn([3, 4], { seed: 21, device: 'cuda' }).data(), await randn([3, 4], { seed: 21 }).data())
  t.deepEqual(await randUniform([5], -1, 1, { seed: 22, device: 'cuda' }).data(), await randUniform([5], -1, 1, { seed: 22 }).data())
  const z = zeros([2, 3], { device: 'cuda' })
  t.is(z.device, 'cuda:0')
  t.deepEqual(Array.from(await z.data()), [0, 0, 0, 0, 0, 0])
  t.deepEqual(Array.from(await full([2], 2.5, { device: 'cuda' }).data()), [2.5, 2.5])
  t.deepEqual(Array.from(await ones([2], { device: 'cuda', dtype: 'float64' }).data()), [1, 1])
  const ids = tensor([1, 2, 3], undefined, { dtype: 'int32', device: 'cuda' })
  t.is(ids.dtype, 'int32')
  t.is(ids.device, 'cuda:0')
  t.deepEqual(Array.from(await ids.data()), [1, 2, 3])
  t.is(zerosLike(z).device, 'cuda:0')
  t.is(onesLike(z, { device: 'cpu' }).device, 'cpu')
  const m = memory().cuda.find((c) => c.device === 'cuda:0')
  t.truthy(m, JSON.stringify(memory()))
  t.true(m!.inUse > 0 && m!.reserved >= m!.inUse && m!.peakReserved >= m!.reserved)
  t.true(emptyCache('cuda') >= 0)
  t.true(emptyCache() >= 0)
})

withCuda('mixing a CPU and a CUDA tensor throws DeviceError (no silent copies)', (t) => {
  const a = randn([2, 2], { seed: 31 })
  const b = a.to('cuda')
  for (const f of [() => a.add(b), () => b.mul(a), () => a.matmul(b), () => b.matmul(a)]) {
    const e = t.throws(f, { instanceOf: DeviceError })!
    t.regex(e.message, /cpu/)
    t.regex(e.message, /cuda:0/)
  }
  t.throws(() => a.assign(b), { instanceOf: DeviceError, message: /^assign: / })
  const lstm = new LSTM(2, 3, { seed: 32 }).to('cuda')
  t.throws(() => lstm.forward(randn([4, 1, 2], { seed: 33 })), { instanceOf: DeviceError })
  // The right device works.
  t.is(lstm.forward(randn([4, 1, 2], { seed: 33, device: 'cuda' })).output.device, 'cuda:0')
})

withCuda("to() is differentiable: the gradient comes back to the CPU leaf", async (t) => {
  const x = randn([3, 4], { seed: 41 })
  x.requiresGrad = true
  const y = x.to('cuda').square().sum()
  t.is(y.device, 'cuda:0')
  y.backward()
  const g = x.grad!
  t.is(g.device, 'cpu')
  const want = Array.from(await x.data(), (v) => 2 * v)
  t.true(maxRel(await g.data(), want) < 1e-6)
})

withCuda("Module.to('cuda') moves every parameter in place, keeps requiresGrad, and loadStateDict takes CPU tensors", async (t) => {
  const lstm = new LSTM(3, 4, { numLayers: 2, seed: 51 })
  const w = lstm.layerWeights(0).wIh
  const cpuState = Object.fromEntries(await Promise.all(Object.entries(lstm.stateDict()).map(async ([k, v]) => [k, await v.data()] as const)))
  t.is(lstm.to('cuda'), lstm)
  t.is(w.device, 'cuda:0')
  t.is(lstm.layerWeights(0).wIh, w)
  for (const [k, p] of lstm.namedParameters()) {
    t.is(p.device, 'cuda:0', k)
    t.true(p.requiresGrad, k)
    t.true(p.isLeaf, k)
    t.deepEqual(await p.data(), cpuState[k], k)
  }
  // A CPU state dict (a checkpoint) loads into the CUDA module.
  const other = new LSTM(3, 4, { numLayers: 2, seed: 52 })
  lstm.loadStateDict(other.stateDict())
  t.is(w.device, 'cuda:0')
  t.deepEqual(await w.data(), await other.layerWeights(0).wIh.data())
  // And back.
  lstm.to('cpu')
  t.is(w.device, 'cpu')
})

withCuda('an optimizer that stepped before Module.to() throws DeviceError at its next step: create it after .to()', async (t) => {
  const lin = new Linear(3, 2, { seed: 81 })
  const opt = new Adam(lin.parameters(), { lr: 0.01 })
  lin.forward(randn([4, 3], { seed: 82 })).sum().backward()
  await opt.step()
  lin.to('cuda')
  opt.zeroGrad()
  lin.forward(randn([4, 3], { seed: 83, device: 'cuda' })).sum().backward()
  await t.throwsAsync(async () => opt.step(), { instanceOf: DeviceError })
  // Created after .to(), it steps on the device.
  const opt2 = new Adam(lin.parameters(), { lr: 0.01 })
  await opt2.step()
  await opt2.step()
  t.true(lin.parameters().every((p) => p.device === 'cuda:0'))
})

/** A 2-layer LSTM with a linear head on every step. */
class Forecaster extends Module {
  readonly rnn = this.registerModule('rnn', new LSTM(2, 16, { numLayers: 2, seed: 61 }))
  readonly head = this.registerModule('head', new Linear(16, 1, { seed: 62 }))
  forward(x: Tensor): Tensor {
    return this.head.forward(this.rnn.forward(x).output)
  }
}

/** The same training code on either device: only `device` changes. Returns the losses. */
async function trainLosses(device: Device, steps: number): Promise<number[]> {
  manualSeed(1234)
  const model = new Forecaster().to(device)
  const opt = new Adam(model.parameters(), { lr: 0.01 }) // after .to(), as in PyTorch
  const losses: number[] = []
  for (let s = 0; s < steps; s++) {
    const x = randn([12, 4, 2], { seed: 100 + s, device })
    const y = randn([12, 4, 1], { seed: 200 + s, device }).scale(0.5)
    opt.zeroGrad()
    const loss = mse(model.forward(x), y)
    loss.backward()
    clipGradNorm(model.parameters(), 1.0)
    await opt.step()
    losses.push(await loss.item())
  }
  return losses
}

withCuda('a 2-layer LSTM trained for 20 Adam steps on CUDA gives the CPU losses within 1e-4 relative', async (t) => {
  const cpu = await trainLosses('cpu', 20)
  const gpu = await trainLosses('cuda', 20)
  const err = maxRel(gpu, cpu, 1e-6)
  t.log(`losses cpu ${cpu[0]!.toFixed(5)} → ${cpu[19]!.toFixed(5)}, cuda ${gpu[0]!.toFixed(5)} → ${gpu[19]!.toFixed(5)}; max rel diff ${err.toExponential(2)}`)
  t.true(cpu[19]! < cpu[0]!, 'the loss goes down')
  t.true(err < 1e-4, `max rel diff ${err} (cpu ${cpu.join(', ')}; cuda ${gpu.join(', ')})`)
})

withCuda('fit() and fitTBPTT() train a CUDA model from CPU data, matching the CPU', async (t) => {
  const batches = Array.from({ length: 4 }, (_, i) => ({ x: randn([10, 3, 2], { seed: 300 + i }), y: randn([10, 3, 1], { seed: 400 + i }) }))
  const runFit = async (device: Device) => {
    manualSeed(7)
    const model = new Forecaster().to(device)
    const r = await fit(model, { data: batches, loss: (o, y) => mse(o, y), optimizer: new Adam(model.parameters(), { lr: 0.01 }), epochs: 2, clipGradNorm: 1 })
    return r.history.map((h) => h.train.loss)
  }
  const fc = await runFit('cpu')
  const fg = await runFit('cuda')
  t.true(maxRel(fg, fc, 1e-6) < 1e-4, `fit: cpu ${fc}, cuda ${fg}`)

  const toks = Int32Array.from({ length: 2000 }, (_, i) => (i * 7 + (i >> 3)) % 11)
  let val = NaN
  const runTbptt = async (device: Device) => {
    val = NaN
    manualSeed(8)
    const model = new RecurrentLM({ vocabSize: 11, hiddenSize: 16, numLayers: 2, seed: 9 }).to(device)
    const r = await fitTBPTT(model, {
      stream: arrayStream(toks, { batchSize: 4, seqLen: 16 }),
      k2: 24,
      optimizer: new Adam(model.parameters(), { lr: 0.01 }),
      maxSteps: 12,
      validation: arrayStream(toks.slice(0, 400), { batchSize: 2, seqLen: 20 }),
      validateEverySteps: 12,
      onValidation: (ev) => {
        val = ev.metrics.loss
      },
    })
    return [r.lastLoss!, val]
  }
  const tc = await runTbptt('cpu')
  const tg = await runTbptt('cuda')
  t.log(`fit epoch losses cpu ${fc.map((v) => v.toFixed(5))}, cuda ${fg.map((v) => v.toFixed(5))}; TBPTT last loss cpu ${tc[0]!.toFixed(5)}, cuda ${tg[0]!.toFixed(5)}`)
  t.true(maxRel(tg, tc, 1e-6) < 1e-4, `fitTBPTT: cpu ${tc}, cuda ${tg}`)
})

withCuda('crossEntropy and noGrad inference on CUDA match the CPU', async (t) => {
  const logits = randn([6, 5], { seed: 71 })
  const targets = tensor([0, 1, 2, 3, 4, 0], undefined, { dtype: 'int32' })
  const cpu = await crossEntropy(logits, targets).item()
  const gpu = await crossEntropy(logits.to('cuda'), targets.to('cuda')).item()
  t.true(Math.abs(gpu - cpu) <= 1e-5 * Math.abs(cpu))
  const m = new Forecaster()
  const x = randn([5, 2, 2], { seed: 72 })
  const outCpu = await noGrad(() => m.forward(x)).data()
  m.to('cuda')
  const outGpu = await noGrad(() => m.forward(x.to('cuda'))).data()
  t.true(maxRel(outGpu, outCpu) < 1e-5)
})

/** ‖a − b‖∞ / ‖b‖∞. */
function normRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return maxRel(a, b, Math.max(...Array.from(b, Math.abs)))
}

withCuda('the fused attention op and the Attention module on CUDA match the CPU (fresh random inputs)', async (t) => {
  // Fresh inputs each run, logged so that a failure can be replayed.
  const base = Date.now() % 1_000_000
  t.log(`attention inputs: base seed ${base}`)
  const [B, S, A, E] = [3, 37, 40, 45]
  const lengthsCpu = tensor(new Int32Array([37, 5, 1]))
  for (const score of ['additive', 'dot'] as const) {
    const make = () => [randn([B, A], { seed: base + 1 }), randn([S, B, A], { seed: base + 2 }), randn([S, B, E], { seed: base + 3 }), randn([A], { seed: base + 4 })]
    const wc = randn([B, E], { seed: base + 5 })
    const ww = randn([B, S], { seed: base + 6 })
    const run = async (device: Device) => {
      const xs = make().map((x) => {
        const d = x.to(device)
        d.requiresGrad = true
        return d
      })
      const [q, k, vals, v] = xs as [Tensor, Tensor, Tensor, Tensor]
      const o = attention(q, k, vals, { score, v: score === 'additive' ? v : null, lengths: lengthsCpu.to(device) })
      t.is(o.context.device, device === 'cpu' ? 'cpu' : 'cuda:0')
      o.context.mul(wc.to(device)).sum().add(o.weights.mul(ww.to(device)).sum()).backward()
      const grads = await Promise.all((score === 'additive' ? xs : xs.slice(0, 3)).map((x) => x.grad!.data()))
      return [await o.context.data(), await o.weights.data(), ...grads]
    }
    const cpu = await run('cpu')
    const gpu = await run('cuda')
    const names = ['context', 'weights', 'grad query', 'grad keys', 'grad values', 'grad v']
    // Relative to the largest magnitude (‖gpu − cpu‖∞ / ‖cpu‖∞, as crates/cuda/tests/parity.rs):
    // elementwise ratios blow up on entries that merely happen to be near zero.
    cpu.forEach((c, i) => {
      const err = normRel(gpu[i]!, c)
      t.log(`${score} ${names[i]}: max rel diff ${err.toExponential(2)}`)
      t.true(err < (i < 2 ? 1e-5 : 1e-4), `${score} ${names[i]}: ${err}`)
    })
  }
  // The module, with a memory reordered on the device, as beam search does.
  const m = new Attention(6, 8, { seed: base + 7 })
  const enc = randn([S, B, 8], { seed: base + 8 })
  const q = randn([4, 6], { seed: base + 9 })
  const index = tensor(new Int32Array([2, 0, 0, 1]))
  const cpuOut = m.forward(q, m.memory(enc, [37, 5, 1]).reorder(index))
  m.to('cuda')
  const gpuOut = m.forward(q.to('cuda'), m.memory(enc.to('cuda'), [37, 5, 1]).reorder(index.to('cuda')))
  t.is(gpuOut.weights.device, 'cuda:0')
  t.true(normRel(await gpuOut.context.data(), await cpuOut.context.data()) < 1e-5)
  t.true(normRel(await gpuOut.weights.data(), await cpuOut.weights.data()) < 1e-5)
  // A bad length in a device tensor (never read on the host up front) surfaces at the next read,
  // with the CPU's message.
  const bad = attention(randn([2, 3], { device: 'cuda' }), randn([4, 2, 3], { device: 'cuda' }), randn([4, 2, 2], { device: 'cuda' }), {
    score: 'dot',
    lengths: tensor(new Int32Array([2, 9])).to('cuda'),
  })
  await t.throwsAsync(() => bad.context.data(), { message: /^attention: lengths\[1\] is 9/ })
})

withCuda('a small CNN (conv, batch norm, pools, layer norm) trains a step on CUDA as on the CPU', async (t) => {
  // Imported here so that this test stays self-contained.
  const { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, LayerNorm, Linear, MaxPool2d, ReLU, Sequential } = await import('../index.js')
  const make = () =>
    new Sequential(
      new Conv2d(3, 4, 3, { padding: 1, seed: 1 }),
      new BatchNorm2d(4),
      new ReLU(),
      new MaxPool2d(2),
      new Conv2d(4, 6, 3, { stride: 2, padding: 1, groups: 2, seed: 2 }),
      new AdaptiveAvgPool2d(2),
      new Flatten(),
      new LayerNorm(24),
      new Linear(24, 3, { seed: 3 }),
    )
  const cpu = make()
  const gpu = make().to('cuda')
  const xc = randn([4, 3, 8, 8], { seed: 31 })
  const run = (m: Module, x: Tensor) => {
    const y = m.forward(x) as Tensor
    y.square().sum().backward()
    return y
  }
  const yc = await run(cpu, xc).data()
  const yg = await run(gpu, xc.to('cuda')).data()
  t.true(maxRel(yg, yc) < 1e-5, `output: ${maxRel(yg, yc)}`)
  const sc = cpu.stateDict()
  const sg = gpu.stateDict()
  for (const k of ['0.weight', '4.weight', '7.weight', '1.weight']) {
    const err = maxRel(await sg[k]!.grad!.data(), await sc[k]!.grad!.data())
    t.true(err < 1e-4, `${k} gradient: ${err}`)
  }
  for (const k of ['1.running_mean', '1.running_var']) t.true(maxRel(await sg[k]!.data(), await sc[k]!.data()) < 1e-5, k)
  t.is(sg['1.num_batches_tracked']!.itemSync(), 1)
})
