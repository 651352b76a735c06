/**
 * The bad-input corpus: calls a hostile or careless user makes, each with the clean error it
 * must give (class and message content) or, for legal calls, the result it must have. The
 * `batch` groups hold cases that cannot crash the process; `isolated` cases (huge allocations,
 * special files, the CLI) each run in a process of their own, so that a regression shows as
 * that one case's abort, hang or memory blow-up.
 */

import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  Adagrad,
  Adam,
  Embedding,
  GRU,
  LSTM,
  Linear,
  RMSprop,
  RecurrentLM,
  SGD,
  crossEntropy,
  full,
  loadCheckpoint,
  loadSafetensors,
  loadTfjsModel,
  loadTorchStateDict,
  manualSeed,
  matmul,
  mse,
  randUniform,
  randn,
  saveCheckpoint,
  saveSafetensors,
  scale,
  tensor,
  tidy,
  zeros,
} from '../../index.js'
import { native } from '../../src/native.js'
import { main } from '../../src/cli/main.js'

/** What a case did, as the child reports it. */
export type Outcome = { kind: 'returned' } | { kind: 'threw'; cls: string; message: string; code: string | undefined }

/** Where a case may write, and the shared fixtures (a small train-char run). */
export interface Ctx {
  dir: string
  fixtures: string
}

export interface Case {
  name: string
  /** `batch-*` groups share a process; `isolated` cases get one each. */
  group: 'batch-api' | 'batch-files' | 'isolated'
  /** The error class and message parts expected, or 'ok' for a legal call (which checks its own result). */
  expect: { cls: string; has: Array<string | RegExp> } | 'ok'
  run: (ctx: Ctx) => unknown
  /** Why the case cannot run here (checked in the parent), or undefined. */
  skip?: () => string | undefined
  /** Run as an unprivileged user (uid 65534) when the tests run as root, who may write anywhere. */
  unprivileged?: boolean
}

export const cases: Case[] = []
const err = (cls: string, ...has: Array<string | RegExp>) => ({ cls, has })
const api = (name: string, expect: Case['expect'], run: Case['run']) => cases.push({ name, group: 'batch-api', expect, run })
const files = (name: string, expect: Case['expect'], run: Case['run']) => cases.push({ name, group: 'batch-files', expect, run })
const isolated = (name: string, expect: Case['expect'], run: Case['run'], skip?: Case['skip']) =>
  cases.push(skip ? { name, group: 'isolated', expect, run, skip } : { name, group: 'isolated', expect, run })

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`wrong result: ${what}`)
}

// biome-ignore lint/suspicious/noExplicitAny: hostile calls break the types on purpose
type Any = any
const bad = (v: unknown): Any => v

// ---- the JS boundary ------------------------------------------------------------------------

api('full with a string value', err('ArgumentTypeError', 'full', 'the string "x"'), () => full([2], bad('x')))
api('full with an object value', err('ArgumentTypeError', 'full', 'an object'), () => full([2], bad({})))
api('scale by a string', err('ArgumentTypeError', 'scale', 'the string "a"'), () => scale(zeros([2]), bad('a')))
api('addScalar with undefined', err('ArgumentTypeError', 'addScalar', 'undefined'), () => zeros([2]).addScalar(bad(undefined)))
api('zeros with a bigint dimension', err('ShapeError', 'zeros', 'bigint 3n'), () => zeros([bad(3n)]))
api('zeros with a string shape', err('ShapeError', 'zeros', 'the string'), () => zeros(bad('3')))
api('zeros with a negative dimension', err('ShapeError', 'zeros', '-1'), () => zeros([-1]))
api('zeros with a fractional dimension', err('ShapeError', 'zeros', '1.5'), () => zeros([2, 1.5]))
api('zeros with a zero dimension', err('ShapeError', 'zeros', 'empty'), () => zeros([0, 3]))
api('zeros with a NaN dimension', err('ShapeError', 'zeros', 'NaN'), () => zeros([Number.NaN]))
api('zeros with options null', err('ArgumentTypeError', 'zeros', 'options object', 'null'), () => zeros([2], bad(null)))
api('zeros with dtype int8', err('DTypeError', 'zeros', 'int8'), () => zeros([2], { dtype: bad('int8') }))
api('full int32 2^40', err('ValueError', 'full', 'int32', '1099511627776'), () => full([2], 2 ** 40, { dtype: 'int32' }))
api('full int32 -2^40', err('ValueError', 'full', 'int32', '-1099511627776'), () => full([2], -(2 ** 40), { dtype: 'int32' }))
api('full int32 NaN', err('ValueError', 'full', 'int32', 'NaN'), () => full([2], Number.NaN, { dtype: 'int32' }))
api('full int32 1.5', err('ValueError', 'full', 'int32', '1.5'), () => full([2], 1.5, { dtype: 'int32' }))
api('full int32 Infinity', err('ValueError', 'full', 'int32', 'Infinity'), () => full([2], Number.POSITIVE_INFINITY, { dtype: 'int32' }))
api('full int32 at the range ends is legal', 'ok', async () => {
  const d = await full([2], -(2 ** 31), { dtype: 'int32' }).data()
  check(d[0] === -(2 ** 31), `-2^31 fill gave ${d[0]}`)
  check((await full([1], 2 ** 31 - 1, { dtype: 'int32' }).data())[0] === 2 ** 31 - 1, '2^31 − 1 fill')
})
api('full float32 NaN is legal', 'ok', async () => check(Number.isNaN((await full([1], Number.NaN).data())[0]!), 'NaN fill'))
api('tensor with a string element', err('ValueError', 'tensor', 'expected a number'), () => tensor(bad([1, 'a'])))
api('tensor int32 2^40', err('ValueError', 'tensor', 'int32'), () => tensor([2 ** 40], [1], { dtype: 'int32' }))
api('tensor with a shape of the wrong size', err('ShapeError', 'tensor', '3 values'), () => tensor([1, 2], [3]))
api('tensor ragged', err('ShapeError', 'tensor', 'rectangular'), () => tensor(bad([[1, 2], [3]])))
api('randn with a negative seed', err('ValueError', 'randn', 'seed'), () => randn([2], { seed: -1 }))
api('randn int32', err('DTypeError', 'randn'), () => randn([2], { dtype: 'int32' }))
api('randUniform with a string bound', err('ArgumentTypeError', 'randUniform', 'low', 'the string'), () => randUniform([2], bad('a'), 1))
api('randUniform low > high', err('ValueError', 'randUniform', 'low'), () => randUniform([2], 2, 1))
api('manualSeed(-1)', err('ValueError', 'manualSeed', '-1'), () => manualSeed(-1))
api('reshape to another size', err('ShapeError', 'reshape'), () => zeros([2, 3]).reshape([5]))
api('matmul of mismatched shapes', err('ShapeError', 'matmul', '[2, 3]'), () => matmul(zeros([2, 3]), zeros([4, 5])))
api('add of unbroadcastable shapes', err('ShapeError', 'add'), () => zeros([2, 3]).add(zeros([4])))
api('add a string', err('ArgumentTypeError', 'add', 'Tensor'), () => zeros([2]).add(bad('x')))
api('mul by null', err('ArgumentTypeError', 'mul', 'null'), () => zeros([2]).mul(bad(null)))
api('transpose an axis out of range', err('ShapeError', 'transpose', '5'), () => zeros([2, 3]).transpose(5))
api('sum over a repeated axis', err('ShapeError', 'sum', 'distinct'), () => zeros([2, 3]).sum([0, 0]))
api('a disposed tensor', err('DisposedError', 'add', 'dispose'), () => {
  const t = zeros([2])
  t.dispose()
  return t.add(1)
})
api('item of a 2-element tensor', err('ShapeError', 'item', 'one element'), () => zeros([2]).itemSync())
api('to an unknown device', err('DeviceError', 'to', 'gpu'), () => zeros([2]).to(bad('gpu')))
api('tidy of an async function', err('ValueError', 'tidy', 'Promise'), () => tidy(bad(async () => zeros([1]))))
api('data() then dispose(): the read completes', 'ok', async () => {
  const y = zeros([3]).add(2)
  const p = y.data()
  y.dispose()
  const d = await p
  check(d.length === 3 && d[0] === 2, `data after dispose gave ${Array.from(d)}`)
  check(y.isDisposed, 'y is disposed')
})
api('backward with a wrong-dtype gradient', err('DTypeError', 'backward', 'float32', 'float64'), () => {
  const x = zeros([3])
  x.requiresGrad = true
  x.square().backward(zeros([3], { dtype: 'float64' }))
})
api('backward with a wrong-shape gradient', err('ShapeError', 'backward', '[3]'), () => {
  const x = zeros([3])
  x.requiresGrad = true
  x.square().backward(zeros([4]))
})
api('backward retainGraph "yes"', err('ArgumentTypeError', 'backward', 'retainGraph'), () => {
  const x = zeros([1])
  x.requiresGrad = true
  x.square().backward(null, bad({ retainGraph: 'yes' }))
})
api('backward of a tensor without history', err('ValueError', 'backward', 'grad'), () => zeros([1]).backward())
api('requiresGrad on int32', err('DTypeError', 'requiresGrad', 'int32'), () => {
  zeros([1], { dtype: 'int32' }).requiresGrad = true
})

// Modules.
api('LSTM batchFirst "yes"', err('ArgumentTypeError', 'LSTM', 'batchFirst', 'the string "yes"'), () => new LSTM(4, 4, bad({ batchFirst: 'yes' })))
api('LSTM bidirectional 1', err('ArgumentTypeError', 'LSTM', 'bidirectional', '1'), () => new LSTM(4, 4, bad({ bidirectional: 1 })))
api('GRU bias "false"', err('ArgumentTypeError', 'GRU', 'bias'), () => new GRU(4, 4, bad({ bias: 'false' })))
api('LSTM dropout 2', err('ValueError', 'LSTM', 'dropout', '2'), () => new LSTM(4, 4, { dropout: 2 }))
api('LSTM numLayers 1.5', err('ValueError', 'LSTM', 'numLayers', '1.5'), () => new LSTM(4, 4, { numLayers: 1.5 }))
api('LSTM hiddenSize "8"', err('ArgumentTypeError', 'LSTM', 'hiddenSize', 'the string "8"'), () => new LSTM(4, bad('8')))
api('LSTM options null', err('ArgumentTypeError', 'LSTM', 'options object'), () => new LSTM(4, 4, bad(null)))
api('LSTM seed -3', err('ValueError', 'LSTM', 'seed', '-3'), () => new LSTM(4, 4, { seed: -3 }))
api('LSTM dtype int32', err('DTypeError', 'LSTM', 'int32'), () => new LSTM(4, 4, bad({ dtype: 'int32' })))
api('LSTM.forward(null)', err('ArgumentTypeError', 'LSTM.forward', 'null'), () => new LSTM(4, 4).forward(bad(null)))
api('LSTM.forward of a 2-D input', err('ShapeError', 'LSTM.forward', 'unbatched'), () => new LSTM(4, 4).forward(zeros([3, 4])))
api('LSTM.forward h0 a string', err('ArgumentTypeError', 'LSTM.forward', 'h0'), () => new LSTM(4, 4).forward(zeros([2, 1, 4]), bad({ h0: 'a' })))
api('LSTM.forward lengths a string', err('ArgumentTypeError', 'LSTM.forward', 'lengths', 'the string'), () => new LSTM(4, 4).forward(zeros([2, 1, 4]), bad({ lengths: 'abc' })))
api('LSTM.forward lengths with a string', err('ArgumentTypeError', 'LSTM.forward', 'lengths[0]'), () => new LSTM(4, 4).forward(zeros([2, 1, 4]), bad({ lengths: ['2'] })))
api('LSTM.forward lengths 0', err('ValueError', 'lengths'), () => new LSTM(4, 4).forward(zeros([2, 1, 4]), { lengths: [0] }))
api('LSTM.forward float64 input', err('DTypeError', 'LSTM.forward', 'float64'), () => new LSTM(4, 4).forward(zeros([2, 1, 4], { dtype: 'float64' })))
api('Linear inFeatures 0', err('ValueError', 'Linear', 'inFeatures', '0'), () => new Linear(0, 3))
api('Linear bias "no"', err('ArgumentTypeError', 'Linear', 'bias'), () => new Linear(3, 3, bad({ bias: 'no' })))
api('Linear.forward(undefined)', err('ArgumentTypeError', 'Linear.forward', 'undefined'), () => new Linear(3, 3).forward(bad(undefined)))
api('Embedding embeddingDim -1', err('ValueError', 'Embedding', 'embeddingDim'), () => new Embedding(10, -1))
api('crossEntropy(null, t)', err('ArgumentTypeError', 'crossEntropy', 'null'), () => crossEntropy(bad(null), zeros([2], { dtype: 'int32' })))
api('mse(t, undefined)', err('ArgumentTypeError', 'mse', 'target', 'undefined'), () => mse(zeros([2]), bad(undefined)))
api('crossEntropy with float targets', err('DTypeError', 'crossEntropy'), () => crossEntropy(zeros([2, 3]), zeros([2])))
api('crossEntropy ignoreIndex 0.5', err('ValueError', 'crossEntropy', 'ignoreIndex'), () => crossEntropy(zeros([2, 3]), zeros([2], { dtype: 'int32' }), { ignoreIndex: 0.5 }))
api('RecurrentLM hiddenSize 2^30 (refused before allocating)', err('MemoryError', 'cannot allocate', 'bytes'), () => new RecurrentLM({ vocabSize: 8, hiddenSize: 2 ** 30 }))
api('LSTM 2^30 wide (refused before allocating)', err('MemoryError', 'LSTM', 'hiddenSize 1073741824', 'bytes'), () => new LSTM(4, 2 ** 30))
api('Linear 2^20 × 2^20 (refused before allocating)', err('MemoryError', 'Linear', 'bytes'), () => new Linear(2 ** 20, 2 ** 20))

// Optimizers, and their setters.
const params = () => new Linear(2, 2).parameters()
api('new Adam(null)', err('ArgumentTypeError', 'Adam', 'params', 'null'), () => new Adam(bad(null)))
api('new Adam(5)', err('ArgumentTypeError', 'Adam', 'params', '5'), () => new Adam(bad(5)))
api('new Adam([1, 2])', err('ArgumentTypeError', 'Adam', 'params[0] must be a Tensor', 'got 1'), () => new Adam(bad([1, 2])))
api('new Adam(params, null)', err('ArgumentTypeError', 'Adam', 'options object'), () => new Adam(params(), bad(null)))
api('new Adam lr -1', err('ValueError', 'Adam', 'lr', '-1'), () => new Adam(params(), { lr: -1 }))
api('new Adam betas [1.5, 0.9]', err('ValueError', 'Adam', 'betas'), () => new Adam(params(), { betas: [1.5, 0.9] }))
api('new SGD without lr', err('ValueError', 'SGD', 'lr'), () => new SGD(params(), bad({})))
api('new SGD nesterov without momentum', err('ValueError', 'SGD', 'nesterov'), () => new SGD(params(), { lr: 0.1, nesterov: true }))
api('opt.lr = -1', err('ValueError', 'Adam.lr', '-1'), () => {
  new Adam(params()).lr = -1
})
api('opt.lr = NaN', err('ValueError', 'Adam.lr', 'NaN'), () => {
  new Adam(params()).lr = Number.NaN
})
api('opt.lr = "0.1"', err('ArgumentTypeError', 'SGD.lr', 'the string "0.1"'), () => {
  new SGD(params(), { lr: 0.1 }).lr = bad('0.1')
})
api('sgd.momentum = -0.5', err('ValueError', 'SGD.momentum', '-0.5'), () => {
  new SGD(params(), { lr: 0.1 }).momentum = -0.5
})
api('sgd.nesterov = "yes"', err('ArgumentTypeError', 'SGD.nesterov', 'boolean'), () => {
  new SGD(params(), { lr: 0.1, momentum: 0.9 }).nesterov = bad('yes')
})
api('sgd.momentum = 0 under nesterov', err('ValueError', 'SGD.momentum', 'nesterov'), () => {
  new SGD(params(), { lr: 0.1, momentum: 0.9, nesterov: true }).momentum = 0
})
api('adam.betas = [2, 0.9]', err('ValueError', 'Adam.betas', 'betas'), () => {
  new Adam(params()).betas = [2, 0.9]
})
api('adam.eps = -1', err('ValueError', 'Adam.eps', '-1'), () => {
  new Adam(params()).eps = -1
})
api('adam.weightDecay = Infinity', err('ValueError', 'Adam.weightDecay', 'Infinity'), () => {
  new Adam(params()).weightDecay = Number.POSITIVE_INFINITY
})
api('rmsprop.alpha = -1', err('ValueError', 'RMSprop.alpha'), () => {
  new RMSprop(params()).alpha = -1
})
api('adagrad.lrDecay = -1', err('ValueError', 'Adagrad.lrDecay', '-1'), () => {
  new Adagrad(params()).lrDecay = -1
})
api('a refused setter changes nothing; a legal one applies', 'ok', () => {
  const o = new SGD(params(), { lr: 0.1, momentum: 0.5 })
  try {
    o.momentum = -1
  } catch {}
  check(o.momentum === 0.5, `momentum is ${o.momentum}`)
  o.momentum = 0.25
  o.lr = 0.5
  check(o.momentum === 0.25 && o.lr === 0.5 && o.stateDict().paramGroups[0]!.momentum === 0.25, 'legal setters apply')
})
api('opt.loadStateDict(null)', err('ValueError', 'Adam.loadStateDict', 'state dict'), () => new Adam(params()).loadStateDict(bad(null)))

// ---- files ----------------------------------------------------------------------------------

/** A small real checkpoint in `dir`, and its path. */
async function smallCheckpoint(dir: string, name = 'ck.safetensors', config: unknown = { model: 'tiny' }): Promise<string> {
  const model = new Linear(3, 2, { seed: 1 })
  const opt = new Adam(model.parameters())
  // One step, so that the optimizer state holds tensors too.
  model.forward(zeros([1, 3])).sum().backward()
  await opt.step()
  const p = join(dir, name)
  await saveCheckpoint(p, { model, optimizer: opt, step: 7, config })
  return p
}

/** Rewrites a safetensors file's header JSON with `edit` (the data, and so the checksums, unchanged). */
function editHeader(path: string, edit: (h: Record<string, Any>) => void): void {
  const buf = readFileSync(path)
  const n = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))
  edit(header)
  const text = Buffer.from(JSON.stringify(header), 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(text.length))
  writeFileSync(path, Buffer.concat([len, text, buf.subarray(8 + n)]))
}

/** Edits the checkpoint JSON document of a checkpoint file. */
function editDoc(path: string, edit: (doc: Record<string, Any>) => void): void {
  editHeader(path, (h) => {
    const doc = JSON.parse(h.__metadata__.checkpoint)
    edit(doc)
    h.__metadata__.checkpoint = JSON.stringify(doc)
  })
}

/** Flips one bit in the data of the first tensor named `name`. */
function flipBit(path: string, name: string): void {
  const buf = readFileSync(path)
  const n = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))
  const [start] = header[name].data_offsets as [number, number]
  buf[8 + n + start + 1]! ^= 0x04
  writeFileSync(path, buf)
}

files('loadSafetensors of a missing file', err('CheckpointError', 'loadSafetensors', 'no-such.safetensors'), ({ dir }) => loadSafetensors(join(dir, 'no-such.safetensors')))
files('loadSafetensors of a folder', err('CheckpointError', 'loadSafetensors', 'a folder'), ({ dir }) => loadSafetensors(dir))
files('loadSafetensors of an empty file', err('CheckpointError', 'loadSafetensors', 'truncated'), ({ dir }) => {
  writeFileSync(join(dir, 'empty'), '')
  return loadSafetensors(join(dir, 'empty'))
})
files('loadSafetensors of garbage', err('CheckpointError', 'loadSafetensors'), ({ dir }) => {
  writeFileSync(join(dir, 'garbage'), Buffer.from('this is not a safetensors file at all'))
  return loadSafetensors(join(dir, 'garbage'))
})
files('loadSafetensors with a 2^60 header length', err('CheckpointError', 'loadSafetensors', 'header claims'), ({ dir }) => {
  const b = Buffer.alloc(64)
  b.writeBigUInt64LE(1n << 60n)
  writeFileSync(join(dir, 'hdr'), b)
  return loadSafetensors(join(dir, 'hdr'))
})
files('loadSafetensors with a path of type number', err('ArgumentTypeError', 'loadSafetensors', 'path'), () => loadSafetensors(bad(5)))
files('saveSafetensors with a tensor named __metadata__', err('ValueError', 'saveSafetensors', '__metadata__', 'reserved'), ({ dir }) => saveSafetensors(join(dir, 'm.safetensors'), { __metadata__: zeros([1]) }))
files('saveSafetensors with a number as a tensor', err('ArgumentTypeError', 'saveSafetensors', "'a'", '5'), ({ dir }) => saveSafetensors(join(dir, 'n.safetensors'), { a: bad(5) }))
files('saveSafetensors with numeric metadata', err('ArgumentTypeError', 'saveSafetensors', 'metadata'), ({ dir }) => saveSafetensors(join(dir, 'n.safetensors'), { a: zeros([1]) }, bad({ k: 5 })))
files('saveSafetensors into a missing folder', err('CheckpointError', 'saveSafetensors', 'no-such-dir'), ({ dir }) => saveSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), { a: zeros([1]) }))
files('a bit flipped in a checkpoint tensor', err('CheckpointError', 'corrupt', 'checksum', "'model.weight'"), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'flip.safetensors')
  flipBit(p, 'model.weight')
  return loadCheckpoint(p)
})
files('a bit flipped in optimizer state', err('CheckpointError', 'corrupt', 'checksum', 'optimizer'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'flip2.safetensors')
  flipBit(p, 'optimizer.state.0.exp_avg_sq')
  return loadCheckpoint(p)
})
files('a checksum list of the wrong length', err('CheckpointError', 'corrupt', 'checksums'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'sums.safetensors')
  editHeader(p, (h) => {
    h.__metadata__['recurrent.crc32'] = '00000000'
  })
  return loadCheckpoint(p)
})
files('a file without checksums (older or foreign) loads', 'ok', async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'old.safetensors')
  editHeader(p, (h) => {
    delete h.__metadata__['recurrent.crc32']
  })
  const ck = await loadCheckpoint(p)
  check(ck.step === 7 && ck.model.weight!.shape.join() === '2,3', 'the old checkpoint loads')
})
files('a checkpoint with step -5', err('CheckpointError', 'loadCheckpoint', 'step', '-5'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'step.safetensors')
  editDoc(p, (d) => {
    d.step = -5
  })
  return loadCheckpoint(p)
})
files('a checkpoint with step 1.5', err('CheckpointError', 'step', '1.5'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'step2.safetensors')
  editDoc(p, (d) => {
    d.step = 1.5
  })
  return loadCheckpoint(p)
})
files('a checkpoint with step "7"', err('CheckpointError', 'step'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'step3.safetensors')
  editDoc(p, (d) => {
    d.step = '7'
  })
  return loadCheckpoint(p)
})
files('a checkpoint with rng counter -1', err('CheckpointError', 'rng'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'rng.safetensors')
  editDoc(p, (d) => {
    d.rng = { seed: 1, counter: -1 }
  })
  return loadCheckpoint(p)
})
files('a checkpoint with version "x"', err('CheckpointError', 'version'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'ver.safetensors')
  editDoc(p, (d) => {
    d.version = 'x'
  })
  return loadCheckpoint(p)
})
files('a checkpoint whose JSON is broken', err('CheckpointError', 'not valid JSON'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'json.safetensors')
  editHeader(p, (h) => {
    h.__metadata__.checkpoint = '{"version": 1,'
  })
  return loadCheckpoint(p)
})
files('a plain safetensors file as a checkpoint', err('CheckpointError', 'not a recurrent checkpoint'), async ({ dir }) => {
  await saveSafetensors(join(dir, 'plain.safetensors'), { a: zeros([1]) })
  return loadCheckpoint(join(dir, 'plain.safetensors'))
})
files('a checkpoint optimizer step -1 on restore', err('ValueError', 'loadStateDict', 'step'), async ({ dir }) => {
  const model = new Linear(3, 2, { seed: 1 })
  const opt = new Adam(model.parameters())
  model.forward(zeros([1, 3])).sum().backward()
  await opt.step()
  const p = join(dir, 'optstep.safetensors')
  await saveCheckpoint(p, { model, optimizer: opt, step: 1 })
  editDoc(p, (d) => {
    d.optimizer.state['0'].step = -1
  })
  const ck = await loadCheckpoint(p)
  ck.restore(new Linear(3, 2), new Adam(new Linear(3, 2).parameters()))
})
files('saveCheckpoint of a circular config', err('ValueError', 'saveCheckpoint', 'circular'), async ({ dir }) => {
  const config: Record<string, unknown> = { a: 1 }
  config.self = config
  return smallCheckpoint(dir, 'circ.safetensors', config)
})
files('saveCheckpoint: a shared (not circular) object is fine', 'ok', async ({ dir }) => {
  const shared = { k: 1 }
  const p = await smallCheckpoint(dir, 'shared.safetensors', { a: shared, b: shared })
  const ck = await loadCheckpoint(p)
  check(JSON.stringify(ck.config) === '{"a":{"k":1},"b":{"k":1}}', JSON.stringify(ck.config))
})
files('saveCheckpoint step -1', err('ValueError', 'saveCheckpoint', 'step'), ({ dir }) => saveCheckpoint(join(dir, 's.safetensors'), { model: new Linear(1, 1), step: -1 }))
files('loadTorchStateDict of a folder', err('CheckpointError', 'a folder'), ({ dir }) => loadTorchStateDict(new Linear(1, 1), dir))
files('loadTorchStateDict of a string as the model', err('ArgumentTypeError', 'loadTorchStateDict', 'Module'), ({ dir }) => loadTorchStateDict(bad(dir), dir))

// tfjs models.
/** A tfjs model folder whose manifest lists `paths` and `weights`. */
function tfjsModel(dir: string, name: string, paths: unknown[], weights: unknown[] = [{ name: 'dense/kernel', shape: [2, 2], dtype: 'float32' }]): string {
  const d = join(dir, name)
  mkdirSync(d, { recursive: true })
  const topology = {
    class_name: 'Sequential',
    config: { name: 's', layers: [{ class_name: 'Dense', config: { name: 'dense', units: 2, use_bias: false, activation: 'linear', batch_input_shape: [null, 2] } }] },
  }
  writeFileSync(join(d, 'model.json'), JSON.stringify({ modelTopology: topology, weightsManifest: [{ paths, weights }] }))
  return d
}
files('tfjs shard path with ..', err('CheckpointError', 'loadTfjsModel', 'leaves the model', '../../etc/passwd'), ({ dir }) => loadTfjsModel(tfjsModel(dir, 'up', ['../../etc/passwd'])))
files('tfjs shard path absolute', err('CheckpointError', 'loadTfjsModel', 'absolute', '/etc/passwd'), ({ dir }) => loadTfjsModel(tfjsModel(dir, 'abs', ['/etc/passwd'])))
files('tfjs shard path a symlink out of the folder', err('CheckpointError', 'loadTfjsModel', 'symbolic link', '/etc/hostname'), ({ dir }) => {
  const d = tfjsModel(dir, 'link', ['w.bin'])
  symlinkSync('/etc/hostname', join(d, 'w.bin'))
  return loadTfjsModel(d)
})
files('tfjs shard path a number', err('CheckpointError', 'loadTfjsModel', 'weight path'), ({ dir }) => loadTfjsModel(tfjsModel(dir, 'num', [5])))
files('tfjs shard inside a subfolder is fine', 'ok', async ({ dir }) => {
  const d = tfjsModel(dir, 'sub', ['shards/w.bin'])
  mkdirSync(join(d, 'shards'))
  writeFileSync(join(d, 'shards', 'w.bin'), new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer))
  const m = await loadTfjsModel(d)
  check(m.parameters().length === 1, 'the Dense kernel loads')
})
files('tfjs weight with a negative shape', err('CheckpointError', 'loadTfjsModel', 'shape', '-48'), ({ dir }) => {
  const d = tfjsModel(dir, 'neg', ['w.bin'], [{ name: 'dense/kernel', shape: [2, -48], dtype: 'float32' }])
  writeFileSync(join(d, 'w.bin'), new Uint8Array(16))
  return loadTfjsModel(d)
})
files('tfjs weight with a fractional shape', err('CheckpointError', 'loadTfjsModel', 'shape'), ({ dir }) => {
  const d = tfjsModel(dir, 'frac', ['w.bin'], [{ name: 'dense/kernel', shape: [2, 1.5], dtype: 'float32' }])
  writeFileSync(join(d, 'w.bin'), new Uint8Array(16))
  return loadTfjsModel(d)
})
files('tfjs missing shard', err('CheckpointError', 'loadTfjsModel', 'missing weight file'), ({ dir }) => loadTfjsModel(tfjsModel(dir, 'missing', ['nope.bin'])))
files('tfjs model.json not JSON', err('CheckpointError', 'loadTfjsModel', 'not valid JSON'), ({ dir }) => {
  mkdirSync(join(dir, 'nojson'))
  writeFileSync(join(dir, 'nojson', 'model.json'), '{ nope')
  return loadTfjsModel(join(dir, 'nojson'))
})

// ---- isolated: allocations, special files, the CLI -------------------------------------------

const memory = () => native.hostMemoryBytes()
const unlessBigger = (bytes: number) => () => (memory() >= bytes ? `this machine has ${memory()} bytes, enough for ${bytes}` : undefined)

isolated('zeros([2^34])', err('MemoryError', 'zeros', '68719476736 bytes'), () => zeros([2 ** 34]), unlessBigger(2 ** 36))
isolated('full([2^33], 1)', err('MemoryError', 'full', '34359738368 bytes'), () => full([2 ** 33], 1), unlessBigger(2 ** 35))
isolated('randn([2^33])', err('MemoryError', 'randn', 'bytes'), () => randn([2 ** 33]), unlessBigger(2 ** 36))
isolated('an op output larger than the machine', err('MemoryError', 'add', 'bytes'), () => zeros([2 ** 16, 1]).add(zeros([1, 2 ** 17])), unlessBigger(2 ** 35))
isolated('loadSafetensors(/dev/zero)', err('CheckpointError', 'loadSafetensors', '/dev/zero', 'not a regular file'), () => loadSafetensors('/dev/zero'))
isolated('a safetensors header of 200k tensors', err('CheckpointError', 'loadSafetensors', '200000 tensors', 'limit is 65536'), ({ dir }) => {
  const parts: string[] = []
  for (let i = 0; i < 200_000; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[1],"data_offsets":[${i * 4},${i * 4 + 4}]}`)
  const text = Buffer.from(`{${parts.join(',')}}`)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(text.length))
  writeFileSync(join(dir, 'many.safetensors'), Buffer.concat([len, text, Buffer.alloc(800_000)]))
  return loadSafetensors(join(dir, 'many.safetensors'))
})
isolated('tfjs shard path ../…/dev/zero', err('CheckpointError', 'loadTfjsModel', 'leaves the model'), ({ dir }) => loadTfjsModel(tfjsModel(dir, 'zero', ['../../../../../../../dev/zero'])))
isolated('tfjs model.json a symlink to /dev/zero', err('CheckpointError', 'loadTfjsModel', 'not a regular file'), ({ dir }) => {
  mkdirSync(join(dir, 'zj'))
  symlinkSync('/dev/zero', join(dir, 'zj', 'model.json'))
  return loadTfjsModel(join(dir, 'zj'))
})
isolated('tfjs shard a symlink to /dev/zero inside the folder', err('CheckpointError', 'loadTfjsModel', 'outside the model'), ({ dir }) => {
  const d = tfjsModel(dir, 'zl', ['w.bin'])
  symlinkSync('/dev/zero', join(d, 'w.bin'))
  return loadTfjsModel(d)
})
isolated('a checkpoint config with hiddenSize 2^30, built and restored', err('MemoryError', 'cannot allocate', 'bytes'), async ({ dir }) => {
  const p = await smallCheckpoint(dir, 'huge.safetensors', { vocabSize: 8, hiddenSize: 2 ** 30 })
  const ck = await loadCheckpoint(p)
  const model = new RecurrentLM(ck.config as Any)
  ck.restore(model)
})

/** Thrown for a CLI run that failed: the class its one stderr line names, and the line. */
class CliFailure extends Error {}

/** Runs the CLI in this process; throws a {@link CliFailure} carrying its stderr line when it fails. */
async function cli(args: string[]): Promise<void> {
  const out = process.stdout.write.bind(process.stdout)
  const errw = process.stderr.write.bind(process.stderr)
  let stderr = ''
  process.stdout.write = (() => true) as Any
  process.stderr.write = ((s: string) => {
    stderr += s
    return true
  }) as Any
  let code: number
  try {
    code = await main(args)
  } finally {
    process.stdout.write = out
    process.stderr.write = errw
  }
  if (code !== 0) {
    const line = stderr.trim()
    const cls = /^recurrent: (\w+Error): /.exec(line)?.[1]
    const e = new CliFailure(line)
    e.name = cls ?? `CliExit${code}`
    throw e
  }
}

/** A copy of the fixture run's folder (its checkpoint) in `dir`. */
function runCopy(ctx: Ctx, name: string): string {
  const d = join(ctx.dir, name)
  mkdirSync(d)
  copyFileSync(join(ctx.fixtures, 'run', 'checkpoint.safetensors'), join(d, 'checkpoint.safetensors'))
  return d
}
const text = (ctx: Ctx) => join(ctx.fixtures, 'small.txt')

isolated('train-char --out /proc/x', err('CliExit1', 'cannot create --out', 'special file system'), (ctx) => cli(['train-char', '--text', text(ctx), '--steps', '2', '--out', '/proc/x']))
isolated('train-char --out /sys/kernel/x/y', err('CliExit1', 'cannot create --out', 'special file system'), (ctx) => cli(['train-char', '--text', text(ctx), '--steps', '2', '--out', '/sys/kernel/x/y']))
isolated('train-char --out a file', err('CliExit1', 'cannot create --out', 'not a directory'), (ctx) => cli(['train-char', '--text', text(ctx), '--steps', '2', '--out', join(text(ctx), 'sub')]))
cases.push({
  name: 'train-char --out under a read-only folder',
  group: 'isolated',
  expect: err('CliExit1', 'cannot create --out', 'permission denied', "creating '"),
  unprivileged: true,
  // Root writes anywhere, so the case runs as uid 65534; that user must be able to read this
  // checkout (a clone inside a private folder, such as mktemp's, is not readable to it).
  skip: () => {
    if (process.getuid?.() !== 0) return undefined
    const probe = join(dirname(fileURLToPath(import.meta.url)), 'child.ts')
    const r = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(probe)})`], { uid: 65534, gid: 65534 })
    return r.status === 0 ? undefined : `uid 65534 cannot read this checkout (${probe}), so the read-only case cannot run as that user here`
  },
  run: (ctx) => {
    const ro = join(ctx.dir, 'ro')
    mkdirSync(ro)
    chmodSync(ro, 0o555)
    // Its own text: the fixtures folder is private to the user that made it.
    writeFileSync(join(ctx.dir, 'text.txt'), 'a small text to train on. '.repeat(200))
    return cli(['train-char', '--text', join(ctx.dir, 'text.txt'), '--steps', '2', '--out', join(ro, 'sub', 'run')])
  },
})
isolated('train-char --resume of a bit-flipped checkpoint', err('CliExit1', 'corrupt', 'checksum', 'model.head.weight'), (ctx) => {
  const d = runCopy(ctx, 'flipped')
  flipBit(join(d, 'checkpoint.safetensors'), 'model.head.weight')
  return cli(['train-char', '--text', text(ctx), '--resume', '--out', d])
})
isolated('train-char --resume of a checkpoint at step -5', err('CliExit1', 'step must be an integer', '-5'), (ctx) => {
  const d = runCopy(ctx, 'negstep')
  editDoc(join(d, 'checkpoint.safetensors'), (doc) => {
    doc.step = -5
  })
  return cli(['train-char', '--text', text(ctx), '--resume', '--out', d])
})
isolated('train-char --resume of a checkpoint with hiddenSize 2^30', err('MemoryError', 'bytes'), (ctx) => {
  const d = runCopy(ctx, 'huge-resume')
  editDoc(join(d, 'checkpoint.safetensors'), (doc) => {
    doc.config.model.hiddenSize = 2 ** 30
  })
  return cli(['train-char', '--text', text(ctx), '--resume', '--out', d])
})
isolated('sample --checkpoint with hiddenSize 2^30', err('MemoryError', 'bytes'), (ctx) => {
  const d = runCopy(ctx, 'huge-sample')
  editDoc(join(d, 'checkpoint.safetensors'), (doc) => {
    doc.config.model.hiddenSize = 2 ** 30
  })
  return cli(['sample', '--checkpoint', join(d, 'checkpoint.safetensors'), '--length', '10'])
})
isolated('train-char --resume removes stale temporary files of its own naming only', 'ok', async (ctx) => {
  const d = runCopy(ctx, 'stale')
  const stale = ['.checkpoint.safetensors.tmp-999999-3', 'loss.svg.tmp-999999']
  for (const s of [...stale, 'keep.tmp-999999', 'notes.txt']) writeFileSync(join(d, s), '')
  await cli(['train-char', '--text', text(ctx), '--resume', '--steps', '6', '--out', d])
  const { readdirSync } = await import('node:fs')
  const left = readdirSync(d)
  check(stale.every((s) => !left.includes(s)), `stale files left: ${left.join(', ')}`)
  check(left.includes('keep.tmp-999999') && left.includes('notes.txt'), `other files kept: ${left.join(', ')}`)
})
