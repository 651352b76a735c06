/**
 * Checkpoints: one safetensors file with the model, optimizer, scheduler, RNG and trainer
 * state. Resuming continues bit-identically (dropout included); SIGKILL at chosen points of a
 * save never leaves a file that does not load; damaged files fail with a CheckpointError. (The
 * writer's faults and fsyncs, point by point, are in atomic-write.spec.ts.)
 */

import test from 'ava'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  Adam,
  CharVocab,
  CheckpointError,
  CosineWithWarmup,
  DataLoader,
  Dropout,
  LSTM,
  Linear,
  Module,
  RecurrentLM,
  StepLR,
  type Tensor,
  arrayStream,
  crossEntropy,
  fit,
  fitTBPTT,
  loadCheckpoint,
  manualSeed,
  reshape,
  saveCheckpoint,
  saveSafetensors,
  seedState,
  slice,
  tensor,
  vocabFromJSON,
} from '../index.js'

const here = dirname(fileURLToPath(import.meta.url))
const made: string[] = []
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'recurrent-ckpt-'))
  made.push(d)
  return d
}
test.after.always(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true })
})

async function paramData(m: Module): Promise<number[][]> {
  return Promise.all(m.parameters().map(async (p) => Array.from(await p.data())))
}

// ---- bit-identical resume ------------------------------------------------------------------------

test.serial('fitTBPTT: save at step N, resume in a fresh model and optimizer → the same losses, bit for bit, as an uninterrupted run (dropout on)', async (t) => {
  const dir = tmp()
  const text = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(30)
  const vocab = CharVocab.fromText(text)
  const toks = vocab.encode(text)
  const N = 7
  const M = 8
  const make = (seed: number) => {
    manualSeed(seed)
    const model = new RecurrentLM({ vocabSize: vocab.size, hiddenSize: 32, numLayers: 2, dropout: 0.3 })
    const optimizer = new Adam(model.parameters(), { lr: 3e-3 })
    const scheduler = new CosineWithWarmup(optimizer, { warmupSteps: 3, totalSteps: 40 })
    return { model, optimizer, scheduler }
  }
  const opts = (o: ReturnType<typeof make>, losses: number[]) => ({
    stream: arrayStream(toks, { batchSize: 4, seqLen: 12 }),
    k2: 20, // k2 > k1: the carried window state must be checkpointed too
    optimizer: o.optimizer,
    scheduler: o.scheduler,
    schedulerInterval: 'step' as const,
    clipGradNorm: 1,
    epochs: 3,
    onStep: (ev: { loss: number }) => void losses.push(ev.loss),
  })
  // Uninterrupted: N + M steps.
  const a = make(1)
  const lossesA: number[] = []
  const ra = await fitTBPTT(a.model, { ...opts(a, lossesA), maxSteps: N + M })
  t.is(ra.steps, N + M)
  // Interrupted at N, with a checkpoint.
  const b = make(1)
  const lossesB: number[] = []
  const path = join(dir, 'run.safetensors')
  await fitTBPTT(b.model, { ...opts(b, lossesB), maxSteps: N, checkpoint: { path, everySteps: N, config: { hiddenSize: 32 }, metadata: { vocab: vocab.toJSON() } } })
  t.deepEqual(lossesB, lossesA.slice(0, N))
  // A fresh model (other initial weights, other RNG state), resumed.
  const c = make(99)
  const lossesC: number[] = []
  const rc = await fitTBPTT(c.model, { ...opts(c, lossesC), maxSteps: N + M, resume: path })
  t.is(rc.steps, N + M)
  t.log(`losses after the resume: ${lossesC.map((l) => l.toFixed(4)).join(' ')}`)
  t.is(lossesC.length, M)
  t.deepEqual(lossesC, lossesA.slice(N)) // bit-identical numbers
  t.deepEqual(await paramData(c.model), await paramData(a.model))
  t.is(c.optimizer.lr, a.optimizer.lr)
  // The vocabulary travels with the checkpoint.
  const ck = await loadCheckpoint(path)
  t.deepEqual(Array.from(vocabFromJSON((ck.metadata as { vocab: never }).vocab).encode('best')), Array.from(vocab.encode('best')))
  t.deepEqual(ck.config, { hiddenSize: 32 })
  t.is(ck.step, N)
})

class DropLSTMClassifier extends Module {
  lstm = this.registerModule('lstm', new LSTM(2, 12, { numLayers: 2, dropout: 0.25 }))
  drop = this.registerModule('drop', new Dropout(0.2))
  head = this.registerModule('head', new Linear(12, 3))
  forward(x: Tensor): Tensor {
    const [T, B] = x.shape as [number, number]
    const { output } = this.lstm.forward(x)
    return this.head.forward(this.drop.forward(reshape(slice(output, 0, T - 1, 1), [B, 12])))
  }
}

test.serial('fit: resume mid-epoch with a shuffled DataLoader and dropout → bit-identical losses', async (t) => {
  const dir = tmp()
  const items = Array.from({ length: 120 }, (_, i) => ({ x: Array.from({ length: 8 * 2 }, (_, k) => Math.sin(i * 0.37 + k * 0.11)), label: i % 3 }))
  const loader = new DataLoader(items, {
    batchSize: 16,
    shuffle: true,
    seed: 5,
    collate: (its) => {
      const B = its.length
      const x = new Float32Array(8 * B * 2)
      its.forEach((e, b) => {
        for (let t = 0; t < 8; t++) for (let f = 0; f < 2; f++) x[(t * B + b) * 2 + f] = e.x[t * 2 + f]!
      })
      return { x: tensor(x, [8, B, 2]), y: tensor(Int32Array.from(its.map((e) => e.label))) }
    },
  })
  t.is(loader.length, 8)
  const make = (seed: number) => {
    manualSeed(seed)
    const model = new DropLSTMClassifier()
    const optimizer = new Adam(model.parameters(), { lr: 0.01 })
    const scheduler = new StepLR(optimizer, { stepSize: 1, gamma: 0.7 })
    return { model, optimizer, scheduler }
  }
  const ce = (o: Tensor, y: Tensor) => crossEntropy(o, y)
  const N = 11 // epoch 1, batch 3
  const total = 21
  const a = make(3)
  const lossesA: number[] = []
  await fit(a.model, { data: loader, loss: ce, optimizer: a.optimizer, scheduler: a.scheduler, epochs: 4, maxSteps: total, onStep: (e) => void lossesA.push(e.loss) })
  t.is(lossesA.length, total)
  const b = make(3)
  const path = join(dir, 'fit.safetensors')
  await fit(b.model, { data: loader, loss: ce, optimizer: b.optimizer, scheduler: b.scheduler, epochs: 4, maxSteps: N, checkpoint: { path, everySteps: N } })
  const c = make(1234)
  const lossesC: number[] = []
  await fit(c.model, { data: loader, loss: ce, optimizer: c.optimizer, scheduler: c.scheduler, epochs: 4, maxSteps: total, resume: path, onStep: (e) => void lossesC.push(e.loss) })
  t.deepEqual(lossesC, lossesA.slice(N))
  t.deepEqual(await paramData(c.model), await paramData(a.model))
  // Without restoring the RNG, dropout masks differ: the test above could fail.
  const d = make(1234)
  const lossesD: number[] = []
  const ck = await loadCheckpoint(path)
  ck.restore(d.model, d.optimizer, d.scheduler, { rng: false })
  manualSeed(77)
  // Continue by hand over the same batches as the resumed run.
  const rest = [...loader.epoch(1, 3)]
  for (const batch of rest.slice(0, 3)) {
    d.optimizer.zeroGrad()
    const l = ce(d.model.forward(batch.x), batch.y)
    l.backward()
    await d.optimizer.step()
    lossesD.push(await l.item())
  }
  t.notDeepEqual(lossesD, lossesC.slice(0, 3))
})

// ---- the file --------------------------------------------------------------------------------------

test.serial('checkpoint layout: model.* under PyTorch names, optimizer.* tensors, JSON state; restore() applies it all', async (t) => {
  const dir = tmp()
  manualSeed(4)
  const model = new RecurrentLM({ vocabSize: 10, hiddenSize: 8, cell: 'gru' })
  const opt = new Adam(model.parameters(), { lr: 0.05 })
  const sched = new StepLR(opt, { stepSize: 2, gamma: 0.5 })
  const x = tensor(Int32Array.from({ length: 12 }, (_, i) => i % 10), [6, 2], { dtype: 'int32' })
  for (let i = 0; i < 3; i++) {
    opt.zeroGrad()
    crossEntropy(model.forward(x, null).output, x).backward()
    await opt.step()
    sched.step()
  }
  const path = join(dir, 'a.safetensors')
  const rng = seedState()
  await saveCheckpoint(path, { model, optimizer: opt, scheduler: sched, step: 3, config: { cell: 'gru', n: [1, 2] }, metadata: { note: 'hi', nan: NaN } })
  const ck = await loadCheckpoint(path)
  const names = Object.keys(ck.tensors)
  t.true(names.includes('model.embedding.weight'))
  t.true(names.includes('model.rnn.weight_ih_l0'))
  t.true(names.includes('model.head.bias'))
  t.true(names.includes('optimizer.state.0.exp_avg'))
  t.true(names.includes('optimizer.state.0.exp_avg_sq'))
  t.deepEqual(Object.keys(ck.model).sort(), Object.keys(model.stateDict()).sort())
  t.is(ck.step, 3)
  t.deepEqual(ck.rng, rng)
  t.deepEqual(ck.config, { cell: 'gru', n: [1, 2] })
  t.true(Number.isNaN((ck.metadata as { nan: number }).nan))
  // Into a fresh model, optimizer and schedule.
  manualSeed(50)
  const m2 = new RecurrentLM({ vocabSize: 10, hiddenSize: 8, cell: 'gru' })
  const o2 = new Adam(m2.parameters(), { lr: 1 })
  const s2 = new StepLR(o2, { stepSize: 2, gamma: 0.5 })
  ck.restore(m2, o2, s2)
  t.deepEqual(await paramData(m2), await paramData(model))
  t.is(o2.lr, opt.lr)
  t.deepEqual(JSON.stringify(s2.stateDict()), JSON.stringify(sched.stateDict()))
  t.deepEqual(seedState(), rng)
  // One more identical step on both.
  for (const [m, o] of [
    [model, opt],
    [m2, o2],
  ] as const) {
    o.zeroGrad()
    crossEntropy(m.forward(x, null).output, x).backward()
    await o.step()
  }
  t.deepEqual(await paramData(m2), await paramData(model))
  // A checkpoint of another architecture is refused and changes nothing.
  const other = new RecurrentLM({ vocabSize: 10, hiddenSize: 9, cell: 'gru' })
  const before = await paramData(other)
  t.throws(() => ck.restore(other), { message: /size mismatch|expected shape/ })
  t.deepEqual(await paramData(other), before)
})

test.serial('corrupted, truncated or foreign files → CheckpointError', async (t) => {
  const dir = tmp()
  manualSeed(5)
  const model = new RecurrentLM({ vocabSize: 6, hiddenSize: 4 })
  const good = join(dir, 'good.safetensors')
  await saveCheckpoint(good, { model, step: 1 })
  await t.notThrowsAsync(() => loadCheckpoint(good))
  const bytes = readFileSync(good)
  const cases: Array<[string, (p: string) => void | Promise<void>]> = [
    ['truncated to half', (p) => (writeFileSync(p, bytes), truncateSync(p, Math.floor(bytes.length / 2)))],
    ['truncated to 5 bytes', (p) => (writeFileSync(p, bytes), truncateSync(p, 5))],
    ['empty', (p) => writeFileSync(p, '')],
    ['garbage', (p) => writeFileSync(p, Buffer.from('not a safetensors file at all, just text'))],
    [
      'header length corrupted',
      (p) => {
        const b = Buffer.from(bytes)
        b.writeUInt32LE(0xffffff, 0)
        writeFileSync(p, b)
      },
    ],
    [
      'header JSON corrupted',
      (p) => {
        const b = Buffer.from(bytes)
        b[9] = '}'.charCodeAt(0)
        b[12] = 0
        writeFileSync(p, b)
      },
    ],
    ['a safetensors file that is not a checkpoint', (p) => saveSafetensors(p, { w: tensor([1, 2, 3]) })],
    ['checkpoint JSON corrupted', (p) => saveSafetensors(p, { w: tensor([1]) }, { format: 'recurrent.checkpoint', checkpoint: '{"version": 1, "step": ' })],
    [
      'a tensor the JSON refers to is missing',
      (p) => saveSafetensors(p, { 'model.w': tensor([1]) }, { format: 'recurrent.checkpoint', checkpoint: JSON.stringify({ version: 1, step: 0, optimizer: { $tensor: 'optimizer.gone' }, extra: {} }) }),
    ],
    ['missing file', () => {}],
  ]
  for (const [what, make] of cases) {
    const p = join(dir, `${what.replace(/\W+/g, '-')}.safetensors`)
    await make(p)
    const e = await t.throwsAsync(() => loadCheckpoint(p), { instanceOf: CheckpointError }, what)
    t.is(e?.code, 'ERR_CHECKPOINT', what)
    t.true(e!.message.includes(p), `${what}: the message names the file: ${e?.message}`)
  }
})

test.serial('SIGKILL at chosen points of a save never leaves a checkpoint that does not load', async (t) => {
  const dir = tmp()
  const script = join(here, 'fixtures', 'checkpoint-writer.ts')
  // The child saves after every step; its third save stops at the chosen point (the native
  // writer's `hang` fault, which says so on stderr) and is killed there.
  for (const point of ['after-bytes=4096', 'before-fsync', 'before-rename', 'before-dir-fsync']) {
    const path = join(dir, `${point.replace('=', '-')}.safetensors`)
    const child = spawn(process.execPath, ['--import', '@oxc-node/core/register', script, path, '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RECURRENT_IO_FAULT: `hang@${point}#3` },
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    const hanging = new Promise<boolean>((resolve) => {
      child.stderr.on('data', (d) => {
        err += d
        if (err.includes(`RECURRENT_IO_FAULT: hanging at ${point}`)) resolve(true)
      })
      void exited.then(() => resolve(false))
    })
    const reached = await hanging
    child.kill('SIGKILL')
    await exited
    t.true(reached, `${point}: the child never reached the point (stderr: ${err})`)
    t.deepEqual([...out.matchAll(/saved (\d+)\n/g)].map((m) => Number(m[1])), [1, 2], `${point}: two saves finished`)
    const temps = readdirSync(dir).filter((f) => f.startsWith(`.${basename(path)}.tmp-`))
    // Killed before the rename, the file is save 2 and the temporary file of save 3 is left
    // (the next run of the CLI removes such files); after the rename, it is save 3.
    const renamed = point === 'before-dir-fsync'
    t.is(temps.length, renamed ? 0 : 1, `${point}: temporary files ${temps}`)
    const ck = await loadCheckpoint(path)
    t.is(ck.step, renamed ? 3 : 2, point)
    const marker = await ck.extra.marker!.tensors.value!.data()
    t.true(
      marker.every((v) => v === ck.step),
      `${point}: the file mixes two saves`,
    )
    t.deepEqual(ck.config, { step: ck.step })
    t.true(Object.keys(ck.model).length > 0 && ck.optimizer !== null)
  }
})
