/**
 * Plain-JavaScript safety: what the public API does when TypeScript's types are not there to
 * stop a caller. An options object with a key its function does not know is a ValueError
 * naming the op, the key, the nearest known key and the known keys; a non-Tensor where a Tensor
 * goes, or a string where a boolean or number option goes, is an ArgumentTypeError naming the
 * op and the argument. Every entry point of the table still accepts its valid options.
 */

import test, { type ExecutionContext } from 'ava'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  Adagrad,
  Adam,
  AdamW,
  ArgumentTypeError,
  RecurrentError,
  ShapeError,
  Attention,
  AttentionDecoder,
  AvgPool2d,
  BatchNorm2d,
  CharVocab,
  Conv2d,
  CosineWithWarmup,
  CrossEntropyLoss,
  DataLoader,
  Dropout,
  Embedding,
  ExponentialLR,
  GRU,
  GRUCell,
  ImageCaptioner,
  KerasSequential,
  LSTM,
  LSTMCell,
  LanguageModelStep,
  LayerNorm,
  Linear,
  MSELoss,
  MaxPool2d,
  RMSprop,
  RNN,
  RNNCell,
  RecurrentLM,
  ReLU,
  ReduceLROnPlateau,
  SGD,
  Seq2Seq,
  Sequential,
  StepLR,
  TBPTT,
  type Tensor,
  TokenVocab,
  ValueError,
  add,
  arrayStream,
  attention,
  batchNorm2d,
  beamSearch,
  blockStream,
  clipGradNorm,
  collatePairs,
  concat,
  conv2d,
  crossEntropy,
  defaultChunkLoss,
  dropout,
  evaluate,
  evaluateStream,
  fileStream,
  fit,
  fitTBPTT,
  full,
  gather,
  generate,
  greedyDecode,
  layerNorm,
  loadCheckpoint,
  loadTorchStateDict,
  logSoftmax,
  matmul,
  maxPool2d,
  mse,
  ones,
  ops,
  padSequences,
  randUniform,
  randn,
  readImage,
  readImages,
  recurrentLayer,
  restoreCheckpoint,
  sampleDecode,
  saveCheckpoint,
  saveOnnx,
  saveTorchStateDict,
  sequenceMask,
  setGradEnabled,
  softmax,
  sum,
  tensor,
  toOnnx,
  topk,
  where,
  writePng,
  zeros,
  zerosLike,
  type DecoderStep,
  type LSTMOptions,
} from '../index.js'
import { optionKeys } from '../src/validate.js'

// biome-ignore lint/suspicious/noExplicitAny: plain-JS calls break the types on purpose
type Any = any
const bad = (v: unknown): Any => v

const dir = mkdtempSync(join(tmpdir(), 'recurrent-js-safety-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))
const fixtureImage = fileURLToPath(new URL('./fixtures/images/grey.jpg', import.meta.url))
/** A small text file, for the file-reading entry points. */
const textFile = (): string => {
  const p = join(dir, 'text.txt')
  writeFileSync(p, 'abcdabcdabcdabcd\n')
  return p
}

/** Runs `fn` (sync or async) and returns what it threw, checking its class, code and op. */
async function refused(t: ExecutionContext, fn: () => unknown, cls: typeof ValueError, op: string): Promise<ValueError> {
  const e = await t.throwsAsync(async () => {
    await fn()
  }, { instanceOf: cls })
  if (!e) throw new Error(`${op}: nothing was thrown`)
  t.is(e.op, op, e.message)
  t.is(e.code, cls === ArgumentTypeError ? 'ERR_ARG_TYPE' : 'ERR_VALUE', e.message)
  if (cls === ValueError) t.false(e instanceof ArgumentTypeError, `${e.message} is a ValueError, not an ArgumentTypeError`)
  return e as ValueError
}

const ids = (values: number[], shape: number[]) => tensor(Int32Array.from(values), shape, { dtype: 'int32' })
const params = () => new Linear(2, 2, { seed: 1 }).parameters()

/** A decoder over V = 4 tokens with fixed log-probabilities, for the decoding functions. */
function fixedDecoder(): DecoderStep<null> {
  return {
    step: (tokens: Tensor) => ({ logProbs: logSoftmax(zeros([tokens.shape[0]!, 4]).add(tensor([0.1, 0.2, 0.3, 0.4])), -1), state: null }),
    reorder: () => null,
  }
}

const lm = () => new RecurrentLM({ vocabSize: 5, hiddenSize: 4, seed: 1 })
const seq2seq = () => new Seq2Seq({ sourceVocabSize: 6, targetVocabSize: 6, hiddenSize: 4, embeddingDim: 3, seed: 2 })
const fitData = () => [{ x: randn([4, 2], { seed: 3 }), y: ids([0, 1, 1, 0], [4]) }]

// ---- unknown option keys ----------------------------------------------------------------------

test('LSTM: an unknown key names it, the nearest known key and every known key', async (t) => {
  const e = await refused(t, () => new LSTM(8, 16, bad({ numLayer: 2 })), ValueError, 'LSTM')
  t.is(e.message, "LSTM: unknown option 'numLayer' (did you mean 'numLayers'?); known options: numLayers, bias, batchFirst, dropout, bidirectional, seed, dtype")
})

test('a typo gets the nearest known key of that entry point (case-insensitive edit distance ≤ 2)', async (t) => {
  const cases: Array<[string, () => unknown, string, string]> = [
    ['GRU', () => new GRU(2, 3, bad({ resetafter: false })), 'resetafter', 'resetAfter'],
    ['RNN', () => new RNN(2, 3, bad({ nonlinearty: 'relu' })), 'nonlinearty', 'nonlinearity'],
    ['LSTMCell', () => new LSTMCell(2, 3, bad({ biass: false })), 'biass', 'bias'],
    ['GRUCell', () => new GRUCell(2, 3, bad({ resetAfte: false })), 'resetAfte', 'resetAfter'],
    ['Linear', () => new Linear(2, 3, bad({ seeed: 1 })), 'seeed', 'seed'],
    ['Adam', () => new Adam(params(), bad({ betas: [0.9, 0.99], weight_decay: 0.1 })), 'weight_decay', 'weightDecay'],
    ['SGD', () => new SGD(params(), bad({ lr: 0.1, momentun: 0.9 })), 'momentun', 'momentum'],
    ['StepLR', () => new StepLR(new SGD(params(), { lr: 0.1 }), bad({ step_size: 2 })), 'step_size', 'stepSize'],
    ['ReduceLROnPlateau', () => new ReduceLROnPlateau(new SGD(params(), { lr: 0.1 }), bad({ patiense: 2 })), 'patiense', 'patience'],
    ['randn', () => randn([2], bad({ dtpye: 'float64' })), 'dtpye', 'dtype'],
    ['zeros', () => zeros([2], bad({ devise: 'cpu' })), 'devise', 'device'],
    ['Seq2Seq', () => new Seq2Seq(bad({ sourceVocabSize: 6, targetVocabSize: 6, hiddenSise: 4 })), 'hiddenSise', 'hiddenSize'],
    ['AttentionDecoder', () => new AttentionDecoder(bad({ vocabSize: 5, embeddingDim: 3, hiddenSize: 4, memorySize: 4, atention: 'dot' })), 'atention', 'attention'],
    ['fit', () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: new SGD(params(), { lr: 0.1 }), epoch: 2 })), 'epoch', 'epochs'],
    ['beamSearch', () => beamSearch(fixedDecoder(), null, bad({ batchSize: 1, bos: 0, maxLength: 2, beamWith: 3 })), 'beamWith', 'beamWidth'],
    ['greedyDecode', () => greedyDecode(fixedDecoder(), null, bad({ batchSize: 1, bos: 0, maxLenght: 2 })), 'maxLenght', 'maxLength'],
    ['loadTorchStateDict', () => loadTorchStateDict(new Linear(2, 2), join(dir, 'none.safetensors'), bad({ strickt: false })), 'strickt', 'strict'],
    ['saveOnnx', () => saveOnnx(new LSTM(2, 3), join(dir, 'typo.onnx'), bad({ opset: 14 })), 'opset', 'opsetVersion'],
    ['DataLoader', () => new DataLoader([1, 2], bad({ batchSize: 1, collate: (x: number[]) => x, shufle: true })), 'shufle', 'shuffle'],
  ]
  for (const [op, fn, typo, near] of cases) {
    const e = await refused(t, fn, ValueError, op)
    t.true(e.message.startsWith(`${op}: unknown option '${typo}' (did you mean '${near}'?); known options: `), e.message)
    t.true(e.message.includes(near), e.message)
  }
})

test('an unknown key that resembles nothing gets no suggestion; several unknown keys are all named', async (t) => {
  const one = await refused(t, () => new Linear(2, 3, bad({ frobnicate: true })), ValueError, 'Linear')
  t.is(one.message, "Linear: unknown option 'frobnicate'; known options: bias, seed, dtype")
  const two = await refused(t, () => new Embedding(4, 2, bad({ sed: 1, xyzzy: 2 })), ValueError, 'Embedding')
  t.is(two.message, "Embedding: unknown options 'sed' (did you mean 'seed'?), 'xyzzy'; known options: seed, dtype")
  // Short keys need a closer match: 'lp' is 1 edit from 'lr' and suggested, 'xy' is not.
  t.regex((await refused(t, () => new Adam(params(), bad({ lp: 0.1 })), ValueError, 'Adam')).message, /'lp' \(did you mean 'lr'\?\)/)
  t.notRegex((await refused(t, () => new Adam(params(), bad({ xy: 0.1 })), ValueError, 'Adam')).message, /did you mean/)
  // Without a near key, a known key that the unknown one begins: a shortened name.
  t.regex((await refused(t, () => toOnnx(new Linear(2, 2), bad({ graph: 'g' })), ValueError, 'toOnnx')).message, /'graph' \(did you mean 'graphName'\?\)/)
})

test('nested options (fit checkpoint, earlyStopping, checkpoint extra) are checked with their path', async (t) => {
  const opt = new SGD(params(), { lr: 0.1 })
  const ck = await refused(t, () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: opt, checkpoint: { path: join(dir, 'c'), evrySteps: 2 } })), ValueError, 'fit')
  t.regex(ck.message, /unknown option 'checkpoint\.evrySteps' \(did you mean 'checkpoint\.everySteps'\?\); known options: checkpoint\.path, checkpoint\.everySteps/)
  const es = await refused(t, () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: opt, earlyStopping: { patience: 1, restore_best: true } })), ValueError, 'fit')
  t.regex(es.message, /'earlyStopping\.restore_best' \(did you mean 'earlyStopping\.restoreBest'\?\)/)
  const ex = await refused(t, () => saveCheckpoint(join(dir, 'x.safetensors'), bad({ model: new Linear(2, 2), extra: { mine: { tensor: {} } } })), ValueError, 'saveCheckpoint')
  t.regex(ex.message, /'extra\.mine\.tensor' \(did you mean 'extra\.mine\.tensors'\?\)/)
})

test('absent or undefined options still work; a present key set to undefined takes its default', async (t) => {
  t.notThrows(() => new LSTM(2, 3))
  t.notThrows(() => new LSTM(2, 3, undefined))
  t.notThrows(() => new LSTM(2, 3, { numLayers: undefined, seed: undefined }))
  t.notThrows(() => randn([2], undefined))
  t.notThrows(() => zeros([2], { dtype: undefined }))
  t.notThrows(() => new Adam(params(), undefined))
  t.notThrows(() => new ReduceLROnPlateau(new SGD(params(), { lr: 0.1 })))
  t.notThrows(() => mse(zeros([2]), ones([2]), undefined))
  t.notThrows(() => padSequences([[1, 2]], undefined))
  t.is(new GRU(2, 3, { resetAfter: undefined }).resetAfter, true)
})

test('options passed on to inner calls are not refused there', async (t) => {
  // fit passes { ignoreIndex } to crossEntropy and { forward, signal, ignoreIndex } to evaluate.
  const model = new Linear(2, 3, { seed: 4 })
  const r = await fit(model, { data: fitData(), validation: fitData(), optimizer: new SGD(model.parameters(), { lr: 0.1 }), ignoreIndex: 2, epochs: 1 })
  t.is(r.reason, 'completed')
  // RecurrentLM and Seq2Seq build their layers (LSTM, AttentionDecoder, Linear) from options of their own.
  t.notThrows(() => new RecurrentLM({ vocabSize: 5, hiddenSize: 4, numLayers: 2, dropout: 0.1, cell: 'gru', seed: 1 }))
  const s2s = new Seq2Seq({ sourceVocabSize: 6, targetVocabSize: 6, hiddenSize: 4, embeddingDim: 3, bidirectional: true, dropout: 0.1, seed: 2 })
  // A collatePairs batch carries targetLengths, which the loss does not use: batches are not options.
  const batch = collatePairs([
    [[3, 4], [5]],
    [[4], [3, 4]],
  ])
  t.is(s2s.loss(batch).shape.length, 0)
  // translate passes beam options to beamSearch; generate passes sampling options to sampleDecode.
  const rows = await s2s.translate(batch.source, batch.sourceLengths, { maxLength: 3, beamWidth: 2, nBest: 2 })
  t.is(rows.length, 2)
  const vocab = CharVocab.fromText('abcd')
  const text = await generate(lm(), vocab, { prime: 'ab', length: 3, temperature: 0.5, topK: 3, seed: 5 })
  t.is([...text].length, 3)
  // AdamW hands its options to Adam's constructor.
  t.is(new AdamW(params(), { lr: 0.01, weightDecay: 0.1 }).weightDecay, 0.1)
})

test('a subclass with an option of its own extends optionKeys; without that its key is refused', (t) => {
  class TaggedLSTM extends LSTM {
    protected static override readonly optionKeys = [...LSTM.optionKeys, 'tag']
    readonly tag: string
    constructor(i: number, h: number, options: LSTMOptions & { tag?: string } = {}) {
      super(i, h, options)
      this.tag = options.tag ?? ''
    }
  }
  class UntaggedLSTM extends LSTM {
    constructor(i: number, h: number, options: LSTMOptions & { tag?: string } = {}) {
      super(i, h, options)
    }
  }
  t.is(new TaggedLSTM(2, 3, { tag: 'x', numLayers: 2 }).tag, 'x')
  const e = t.throws(() => new UntaggedLSTM(2, 3, { tag: 'x' }), { instanceOf: ValueError })
  t.regex(e!.message, /^UntaggedLSTM: unknown option 'tag'/)
  t.regex(t.throws(() => new TaggedLSTM(2, 3, bad({ tagg: 'x' })))!.message, /'tagg' \(did you mean 'tag'\?\)/)
})

test('the key lists are checked against the option interfaces at compile time', (t) => {
  interface Opts {
    alpha?: number
    beta?: boolean
  }
  t.deepEqual(optionKeys<Opts>({ alpha: true, beta: true }), ['alpha', 'beta'])
  // @ts-expect-error a key of the interface is missing from the table
  optionKeys<Opts>({ alpha: true })
  // @ts-expect-error a key that is not in the interface
  optionKeys<Opts>({ alpha: true, beta: true, gamma: true })
})

// ---- every entry point: valid options pass, an unknown key is refused ------------------------

interface Row {
  op: string
  make: (options: Any) => unknown
  valid: Record<string, unknown>
}

const smallImage = () => zeros([1, 3, 4, 4])
const leaf = () => {
  const x = randn([2], { seed: 1 })
  x.requiresGrad = true
  return x
}
const rows: Row[] = [
  // nn modules
  { op: 'LSTM', make: (o) => new LSTM(2, 3, o), valid: { numLayers: 2, bias: false, batchFirst: true, dropout: 0.1, bidirectional: true, seed: 1, dtype: 'float64' } },
  { op: 'GRU', make: (o) => new GRU(2, 3, o), valid: { resetAfter: false, numLayers: 1, batchFirst: false, seed: 2 } },
  { op: 'RNN', make: (o) => new RNN(2, 3, o), valid: { nonlinearity: 'relu', bidirectional: true, dtype: 'float32' } },
  { op: 'RNNCell', make: (o) => new RNNCell(2, 3, o), valid: { nonlinearity: 'relu', bias: false, seed: 1, dtype: 'float32' } },
  { op: 'LSTMCell', make: (o) => new LSTMCell(2, 3, o), valid: { bias: true, seed: 1, dtype: 'float64' } },
  { op: 'GRUCell', make: (o) => new GRUCell(2, 3, o), valid: { resetAfter: false, seed: 1 } },
  { op: 'Linear', make: (o) => new Linear(2, 3, o), valid: { bias: false, seed: 3, dtype: 'float64' } },
  { op: 'Embedding', make: (o) => new Embedding(5, 2, o), valid: { seed: 3, dtype: 'float32' } },
  { op: 'Dropout', make: (o) => new Dropout(0.2, o), valid: { seed: 3 } },
  { op: 'Conv2d', make: (o) => new Conv2d(2, 4, 3, o), valid: { stride: [1, 2], padding: 1, dilation: 1, groups: 2, bias: false, seed: 1, dtype: 'float32' } },
  { op: 'MaxPool2d', make: (o) => new MaxPool2d(2, o), valid: { stride: 1, padding: 1 } },
  { op: 'AvgPool2d', make: (o) => new AvgPool2d(2, o), valid: { stride: 2, padding: 0, countIncludePad: false } },
  { op: 'BatchNorm2d', make: (o) => new BatchNorm2d(3, o), valid: { eps: 1e-3, momentum: 0.2, affine: false, trackRunningStats: true, dtype: 'float64' } },
  { op: 'LayerNorm', make: (o) => new LayerNorm(4, o), valid: { eps: 1e-3, elementwiseAffine: true, bias: false, dtype: 'float32' } },
  { op: 'Attention', make: (o) => new Attention(4, 4, o), valid: { score: 'bahdanau', attentionSize: 3, seed: 1, dtype: 'float32' } },
  { op: 'MSELoss', make: (o) => new MSELoss(o), valid: { reduction: 'sum' } },
  { op: 'CrossEntropyLoss', make: (o) => new CrossEntropyLoss(o), valid: { ignoreIndex: 0, reduction: 'mean' } },
  { op: 'LSTM.forward', make: (o) => new LSTM(2, 3).forward(zeros([2, 1, 2]), o), valid: { h0: zeros([1, 1, 3]), c0: zeros([1, 1, 3]), lengths: [2] } },
  { op: 'loadStateDict', make: (o) => new Linear(2, 2).loadStateDict({ weight: zeros([2, 2]) }, o), valid: { strict: false } },
  { op: 'registerBuffer', make: (o) => new Sequential().registerBuffer('b', zeros([1]), o), valid: { persistent: true } },
  { op: 'RecurrentLM', make: (o) => new RecurrentLM(o), valid: { vocabSize: 5, hiddenSize: 4, embeddingDim: 3, numLayers: 2, cell: 'gru', dropout: 0.1, seed: 1 } },
  // tensor factories and ops
  { op: 'tensor', make: (o) => tensor([1, 2], [2], o), valid: { dtype: 'float64', device: 'cpu' } },
  { op: 'zeros', make: (o) => zeros([2], o), valid: { dtype: 'int32', device: 'cpu' } },
  { op: 'full', make: (o) => full([2], 3, o), valid: { dtype: 'float64' } },
  { op: 'zerosLike', make: (o) => zerosLike(ones([2]), o), valid: { dtype: 'int32' } },
  { op: 'randn', make: (o) => randn([2], o), valid: { seed: 1, dtype: 'float64', device: 'cpu' } },
  { op: 'randUniform', make: (o) => randUniform([2], 0, 1, o), valid: { seed: 1, dtype: 'float32' } },
  { op: 'dropout', make: (o) => dropout(ones([4]), 0.5, o), valid: { seed: 1, training: false } },
  { op: 'topk', make: (o) => topk(tensor([3, 1, 2]), 2, -1, o), valid: { largest: false, sorted: true } },
  { op: 'backward', make: (o) => leaf().square().sum().backward(null, o), valid: { retainGraph: true } },
  { op: 'crossEntropy', make: (o) => crossEntropy(zeros([2, 3]), ids([0, 1], [2]), o), valid: { ignoreIndex: 1, reduction: 'sum' } },
  { op: 'mse', make: (o) => mse(zeros([2]), ones([2]), o), valid: { reduction: 'none' } },
  { op: 'conv2d', make: (o) => conv2d(zeros([1, 1, 4, 4]), zeros([1, 1, 3, 3]), null, o), valid: { stride: 1, padding: 1, dilation: 1, groups: 1 } },
  { op: 'maxPool2d', make: (o) => maxPool2d(zeros([1, 1, 4, 4]), 2, o), valid: { stride: 2, padding: 0 } },
  { op: 'batchNorm2d', make: (o) => batchNorm2d(randn([2, 1, 2, 2], { seed: 1 }), o), valid: { training: true, momentum: 0.1, eps: 1e-5, weight: ones([1]), bias: zeros([1]) } },
  { op: 'layerNorm', make: (o) => layerNorm(randn([2, 4], { seed: 1 }), 4, o), valid: { weight: ones([4]), bias: zeros([4]), eps: 1e-5 } },
  { op: 'attention', make: (o) => attention(zeros([1, 2]), zeros([3, 1, 2]), zeros([3, 1, 2]), o), valid: { score: 'dot', lengths: [2] } },
  { op: 'sequenceMask', make: (o) => sequenceMask([1, 2], 3, o), valid: { device: 'cpu' } },
  {
    op: 'recurrentLayer',
    make: (o) => recurrentLayer('gru', zeros([2, 1, 2]), zeros([1, 3]), null, { wIh: zeros([9, 2]), wHh: zeros([9, 3]) }, o),
    valid: { lengths: [2], reverse: true },
  },
  // optimizers and schedules
  { op: 'SGD', make: (o) => new SGD(params(), o), valid: { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0.01, nesterov: true } },
  { op: 'Adam', make: (o) => new Adam(params(), o), valid: { lr: 0.01, betas: [0.8, 0.9], eps: 1e-6, weightDecay: 0 } },
  { op: 'AdamW', make: (o) => new AdamW(params(), o), valid: { lr: 0.01, weightDecay: 0.1 } },
  { op: 'RMSprop', make: (o) => new RMSprop(params(), o), valid: { lr: 0.01, alpha: 0.9, eps: 1e-6, weightDecay: 0, momentum: 0.5, centered: true } },
  { op: 'Adagrad', make: (o) => new Adagrad(params(), o), valid: { lr: 0.01, lrDecay: 0.1, weightDecay: 0, initialAccumulatorValue: 0.1, eps: 1e-8 } },
  { op: 'StepLR', make: (o) => new StepLR(new SGD(params(), { lr: 0.1 }), o), valid: { stepSize: 2, gamma: 0.5 } },
  { op: 'ExponentialLR', make: (o) => new ExponentialLR(new SGD(params(), { lr: 0.1 }), o), valid: { gamma: 0.9 } },
  { op: 'CosineWithWarmup', make: (o) => new CosineWithWarmup(new SGD(params(), { lr: 0.1 }), o), valid: { warmupSteps: 1, totalSteps: 5, minLr: 0.01 } },
  {
    op: 'ReduceLROnPlateau',
    make: (o) => new ReduceLROnPlateau(new SGD(params(), { lr: 0.1 }), o),
    valid: { mode: 'max', factor: 0.5, patience: 2, threshold: 0.01, thresholdMode: 'abs', cooldown: 1, minLr: 0.001, eps: 1e-9 },
  },
  // training
  {
    op: 'fit',
    make: (o) => fit(new Linear(2, 2, { seed: 1 }), o),
    valid: {
      data: fitData(),
      validation: fitData(),
      optimizer: new SGD(params(), { lr: 0 }),
      epochs: 2,
      maxSteps: 5,
      clipGradNorm: 1,
      schedulerInterval: 'step',
      earlyStopping: { patience: 3, monitor: 'val_loss', minDelta: 0, mode: 'min', restoreBest: false },
      trainAccuracy: true,
      validateEverySteps: 1,
      onStep: () => {},
      onEpochEnd: () => {},
      signal: new AbortController().signal,
      ignoreIndex: 5,
      loss: (o: Tensor, y: Tensor) => crossEntropy(o, y),
    },
  },
  {
    op: 'fitTBPTT',
    make: (o) => fitTBPTT(lm(), o),
    valid: { stream: arrayStream(Int32Array.from({ length: 20 }, (_, i) => i % 5), { batchSize: 2, seqLen: 3 }), optimizer: new SGD(lm().parameters(), { lr: 0 }), k2: 4, maxSteps: 2, stateBatchAxis: 1 },
  },
  { op: 'evaluate', make: (o) => evaluate(new Linear(2, 2), fitData(), (out: Tensor, y: Tensor) => crossEntropy(out, y), o), valid: { accuracy: false, ignoreIndex: 1 } },
  { op: 'TBPTT', make: (o) => new TBPTT(lm(), o), valid: { k1: 2, k2: 3, loss: defaultChunkLoss, stateBatchAxis: 1 } },
  {
    op: 'evaluateStream',
    make: (o) => evaluateStream(lm(), arrayStream(Int32Array.from({ length: 12 }, (_, i) => i % 5), { batchSize: 2, seqLen: 2 }), defaultChunkLoss, o),
    valid: { accuracy: false, stateBatchAxis: 1, signal: new AbortController().signal },
  },
  // save / load / exchange
  {
    op: 'saveCheckpoint',
    make: (o) => saveCheckpoint(join(dir, 'row.safetensors'), o),
    valid: { model: new Linear(2, 2), optimizer: new Adam(params()), step: 3, config: { a: 1 }, metadata: { b: 2 }, extra: { mine: { tensors: { t: zeros([1]) }, meta: 1 } } },
  },
  {
    op: 'restore',
    make: async (o) => {
      const m = new Linear(2, 2, { seed: 1 })
      await saveCheckpoint(join(dir, 'restore.safetensors'), { model: m })
      restoreCheckpoint(await loadCheckpoint(join(dir, 'restore.safetensors')), m, null, null, o)
    },
    valid: { rng: false, strict: true },
  },
  {
    op: 'loadTorchStateDict',
    make: async (o) => {
      const m = new Linear(2, 2, { seed: 1 })
      await saveTorchStateDict(m, join(dir, 'torch.safetensors'))
      return loadTorchStateDict(m, join(dir, 'torch.safetensors'), o)
    },
    valid: { strict: false },
  },
  { op: 'toOnnx', make: (o) => toOnnx(new LSTM(2, 3), o), valid: { opsetVersion: 15, graphName: 'g', inputShape: ['T', 'B', 2] } },
  { op: 'saveOnnx', make: (o) => saveOnnx(new Linear(2, 3), join(dir, 'row.onnx'), o), valid: { opsetVersion: 14 } },
  { op: 'KerasSequential', make: (o) => new KerasSequential(o), valid: { name: 'm', inputLength: 3 } },
  {
    op: 'KerasSequential.add',
    make: (o) => new KerasSequential().add(new LSTM(2, 3, { bidirectional: true }), o),
    valid: { name: 'l', returnSequences: true, mergeMode: 'sum', innerName: 'inner' },
  },
  // decoding and seq2seq
  { op: 'greedyDecode', make: (o) => greedyDecode(fixedDecoder(), null, o), valid: { batchSize: 2, bos: 0, eos: 3, maxLength: 3, device: 'cpu', checkEvery: 1, streamEvery: 1, onTokens: () => {} } },
  { op: 'sampleDecode', make: (o) => sampleDecode(fixedDecoder(), null, o), valid: { batchSize: 1, bos: 0, maxLength: 2, temperature: 0.5, topK: 2, topP: 0.9, seed: 1 } },
  { op: 'beamSearch', make: (o) => beamSearch(fixedDecoder(), null, o), valid: { batchSize: 1, bos: 0, eos: 3, maxLength: 3, beamWidth: 3, lengthPenalty: 0.6, nBest: 2 } },
  { op: 'LanguageModelStep', make: (o) => new LanguageModelStep(lm(), o), valid: { exclude: [0] } },
  { op: 'generate', make: (o) => generate(lm(), CharVocab.fromText('abcd'), o), valid: { prime: 'a', length: 2, temperature: 0, seed: 1, topP: 0.9, onText: () => {} } },
  {
    op: 'Seq2Seq',
    make: (o) => new Seq2Seq(o),
    valid: { sourceVocabSize: 6, targetVocabSize: 6, hiddenSize: 4, embeddingDim: 3, numLayers: 1, cell: 'gru', bidirectional: true, attention: 'luong', attentionSize: 4, dropout: 0, seed: 1 },
  },
  {
    op: 'AttentionDecoder',
    make: (o) => new AttentionDecoder(o),
    valid: { vocabSize: 5, embeddingDim: 3, hiddenSize: 4, numLayers: 2, cell: 'rnn', memorySize: 4, attention: 'bahdanau', attentionSize: 2, dropout: 0.1 },
  },
  {
    op: 'AttentionDecoder.forwardAsync',
    make: (o) => {
      const m = seq2seq()
      const b = collatePairs([[[3], [4]]])
      return m.decoder.forwardAsync(b.targetIn, m.encode(b.source, b.sourceLengths).state, o)
    },
    valid: { teacherForcing: 0.5, returnWeights: true, yieldEvery: 1 },
  },
  { op: 'Seq2Seq.lossAsync', make: (o) => seq2seq().lossAsync(collatePairs([[[3], [4]]]), o), valid: { teacherForcing: 1 } },
  {
    op: 'Seq2Seq.translate',
    make: (o) => seq2seq().translate(ids([3, 4], [2, 1]), [2], o),
    valid: { maxLength: 3, beamWidth: 2, nBest: 2, lengthPenalty: 0.5 },
  },
  { op: 'Seq2Seq.loss', make: (o) => seq2seq().loss(collatePairs([[[3], [4]]]), o), valid: { teacherForcing: 0.5, returnWeights: true } },
  { op: 'ImageCaptioner', make: (o) => new ImageCaptioner(o), valid: { vocabSize: 5, channels: [2], inChannels: 3, hiddenSize: 4, embeddingDim: 3, attention: 'luong', dropout: 0, seed: 1 } },
  {
    op: 'ImageCaptioner.caption',
    make: (o) => new ImageCaptioner({ vocabSize: 5, channels: [2], hiddenSize: 4, embeddingDim: 3, seed: 1 }).caption(smallImage(), o),
    valid: { maxLength: 2, temperature: 0.5, topK: 2, seed: 3 },
  },
  // data
  { op: 'padSequences', make: (o) => padSequences([[1, 2], [3]], o), valid: { padValue: -1, maxLength: 1, batchFirst: true, truncate: 'pre' } },
  { op: 'collatePairs', make: (o) => collatePairs([[[1], [2]]], o), valid: { pad: 0, bos: 1, eos: 2, batchFirst: true } },
  { op: 'DataLoader', make: (o) => new DataLoader([1, 2, 3], o), valid: { batchSize: 2, shuffle: true, seed: 1, dropLast: true, collate: (x: number[]) => x } },
  { op: 'CharVocab.fromText', make: (o) => CharVocab.fromText('abca', o), valid: { unk: null, minCount: 2, maxSize: 3 } },
  { op: 'TokenVocab.build', make: (o) => TokenVocab.build(['a b a'], o), valid: { mode: 'word', minCount: 1, maxSize: 6 } },
  { op: 'TokenVocab.encode', make: (o) => TokenVocab.build(['ab']).encode('ab', o), valid: { bos: true, eos: true } },
  { op: 'arrayStream', make: (o) => arrayStream(Int32Array.from([1, 2, 3, 4, 5]), o), valid: { batchSize: 2, seqLen: 1 } },
  { op: 'blockStream', make: (o) => blockStream([Int32Array.from([1, 2, 3, 4, 5, 6])], o), valid: { batchSize: 2, seqLen: 1 } },
  { op: 'fileStream', make: (o) => fileStream(textFile(), o), valid: { batchSize: 2, seqLen: 2, vocab: CharVocab.fromText('abcd'), readBytes: 4 } },
  { op: 'CharVocab.fromFile', make: (o) => CharVocab.fromFile(textFile(), o), valid: { sampleBytes: 8, unk: '?', minCount: 1, maxSize: 4 } },
  { op: 'readImages', make: (o) => readImages([fixtureImage, fixtureImage], o), valid: { resize: [6, 8], centerCrop: 4, channels: 3 } },
  { op: 'readImage', make: (o) => readImage(fixtureImage, o), valid: { size: 4, channels: 1, antialias: false, mean: 0.5, std: 0.25, maxFileBytes: 1 << 20, maxPixels: 1 << 20 } },
]

test('every entry point of the table accepts its valid options and refuses an unknown key, listing the known ones', async (t) => {
  for (const row of rows) {
    await t.notThrowsAsync(async () => {
      await row.make({ ...row.valid })
    }, `${row.op} with valid options`)
    const e = await refused(t, () => row.make({ ...row.valid, zzzNotAnOption: 1 }), ValueError, row.op)
    const head = `${row.op}: unknown option 'zzzNotAnOption'; known options: `
    t.true(e.message.startsWith(head), e.message)
    const known = e.message.slice(head.length).split(', ')
    for (const k of Object.keys(row.valid)) t.true(known.includes(k), `${row.op}: '${k}' is missing from the known options ${known.join(', ')}`)
  }
  t.true(rows.length >= 70, `${rows.length} entry points`)
})

test('async entry points reject (they do not throw synchronously) with the same errors', async (t) => {
  const p = beamSearch(fixedDecoder(), null, bad({ batchSize: 1, bos: 0, maxLength: 2, beamWidth: 2, nbest: 2 }))
  t.true(p instanceof Promise)
  const e = await t.throwsAsync(p, { instanceOf: ValueError })
  t.regex(e!.message, /^beamSearch: unknown option 'nbest' \(did you mean 'nBest'\?\)/)
})

// ---- a non-Tensor where a Tensor goes ---------------------------------------------------------

test('a plain array, number or null where a Tensor goes names the op and the argument', async (t) => {
  const x = zeros([2, 2])
  const cases: Array<[string, string, () => unknown, string?]> = [
    ['mse', "argument 'target'", () => mse(zeros([2]), bad([1, 2])), 'an array of length 2'],
    ['mse', "argument 'pred'", () => ops.mse(bad(null), zeros([2])), 'null'],
    ['add', "argument 'a'", () => add(bad([1]), x), 'an array of length 1'],
    ['add', "argument 'b'", () => add(x, bad('x')), 'the string "x"'],
    ['add', "argument 'other'", () => x.add(bad([[1, 2]]))],
    ['matmul', "argument 'b'", () => matmul(x, bad([[1], [2]]))],
    ['matmul', "argument 'other'", () => x.matmul(bad(undefined)), 'undefined'],
    ['concat', "argument 'tensors[1]'", () => concat([x, bad([1, 2])], 0)],
    ['sum', "argument 'x'", () => sum(bad([1, 2]))],
    ['softmax', "argument 'x'", () => softmax(bad(3)), '3'],
    ['where', "argument 'cond'", () => where(bad([1, 0]), x, x)],
    ['gather', "argument 'index'", () => gather(x, 1, bad([[0]]))],
    ['maskedFill', "argument 'mask'", () => x.maskedFill(bad([1]), 0)],
    ['backward', "argument 'grad'", () => randn([2], { seed: 1 }).backward(bad([1, 1]))],
    ['LSTM.forward', "argument 'x'", () => new LSTM(2, 3).forward(bad([[[1, 2]]]))],
    ['LSTM.forward', "option 'h0'", () => new LSTM(2, 3).forward(zeros([1, 1, 2]), bad({ h0: [0, 0, 0] }))],
    ['GRU.forward', "option 'lengths'", () => new GRU(2, 3).forward(zeros([1, 1, 2]), bad({ lengths: 'abc' }))],
    ['Linear.forward', "argument 'x'", () => new Linear(2, 3).forward(bad([1, 2]))],
    ['Conv2d.forward', "argument 'x'", () => new Conv2d(1, 1, 1).forward(bad({ shape: [1, 1, 1, 1] })), 'an object'],
    ['LSTMCell.forward', "argument 'x'", () => new LSTMCell(2, 3).forward(bad([1, 2]))],
    ['GRUCell.forward', "argument 'h'", () => new GRUCell(2, 3).forward(zeros([1, 2]), bad([0, 0, 0]))],
    ['Embedding.forward', "argument 'indices'", () => new Embedding(4, 2).forward(bad([1, 2]))],
    ['Dropout.forward', "argument 'x'", () => new Dropout(0.5).eval().forward(bad([1, 2]))],
    ['ReLU.forward', "argument 'x'", () => new ReLU().forward(bad([1]))],
    ['Sequential.forward', "argument 'x'", () => new Sequential(new Linear(2, 2)).forward(bad([1, 2]))],
    ['Attention.forward', "argument 'query'", () => new Attention(2, 2).forward(bad([1, 2]), bad({}))],
    ['RecurrentLM.forward', "argument 'x'", () => lm().forward(bad([[1]]))],
    ['AttentionDecoder.step', "argument 'tokens'", () => seq2seq().decoder.step(bad([1]), bad({}))],
    ['Seq2Seq.encode', "argument 'source'", () => seq2seq().encode(bad([[1]]), [1])],
    ['Adam', 'params[1]', () => new Adam([zeros([1]), bad([1])])],
    ['clipGradNorm', 'params[0]', () => clipGradNorm([bad(5)], 1), '5'],
    ['writePng', "argument 'tensor'", () => writePng(join(dir, 'x.png'), bad([[1]]))],
  ]
  for (const [op, what, fn, got] of cases) {
    const e = await refused(t, fn, ArgumentTypeError, op)
    t.true(e instanceof ValueError, 'an ArgumentTypeError is a ValueError')
    t.true(e.message.startsWith(`${op}: ${what} must be a`), e.message)
    t.regex(e.message, /must be (a Tensor|an int32 Tensor|a Tensor or a number)/, e.message)
    if (got !== undefined) t.true(e.message.endsWith(`got ${got}`), e.message)
  }
})

test('the exact wording of a non-Tensor argument: `<op>: argument <name> must be a Tensor, got <value>`', (t) => {
  const e = t.throws(() => mse(zeros([2]), bad([1, 2])), { instanceOf: ArgumentTypeError })
  t.is(e!.message, "mse: argument 'target' must be a Tensor, got an array of length 2")
  t.is(e!.name, 'ArgumentTypeError')
  t.is(e!.code, 'ERR_ARG_TYPE')
  t.true(e instanceof ValueError, 'code that catches bad arguments as ValueError still catches it')
  t.true(e instanceof TypeError, 'plain-JS code catches it as the built-in TypeError')
  t.true(e instanceof RecurrentError, 'and as any error of the package')
  t.false(e instanceof ShapeError)
  t.false(new ValueError('op', 'x') instanceof TypeError, 'a ValueError is not a TypeError')
  t.false(new ValueError('op', 'x') instanceof ArgumentTypeError)
})

// ---- strings for booleans and numbers ---------------------------------------------------------

test('a string where a boolean option goes is refused, naming the option (it was read as true before)', async (t) => {
  const cases: Array<[string, string, () => unknown]> = [
    ['LSTM', 'bidirectional', () => new LSTM(2, 3, bad({ bidirectional: 'false' }))],
    ['LSTM', 'batchFirst', () => new LSTM(2, 3, bad({ batchFirst: 'yes' }))],
    ['GRU', 'resetAfter', () => new GRU(2, 3, bad({ resetAfter: 'false' }))],
    ['Linear', 'bias', () => new Linear(2, 3, bad({ bias: 'false' }))],
    ['Seq2Seq', 'bidirectional', () => new Seq2Seq(bad({ sourceVocabSize: 6, targetVocabSize: 6, bidirectional: 'false' }))],
    ['DataLoader', 'shuffle', () => new DataLoader([1, 2], bad({ batchSize: 1, collate: (x: number[]) => x, shuffle: 'false' }))],
    ['DataLoader', 'dropLast', () => new DataLoader([1, 2], bad({ batchSize: 1, collate: (x: number[]) => x, dropLast: 'true' }))],
    ['dropout', 'training', () => dropout(ones([2]), 0.5, bad({ training: 'false' }))],
    ['topk', 'largest', () => topk(tensor([1, 2]), 1, -1, bad({ largest: 'false' }))],
    ['padSequences', 'batchFirst', () => padSequences([[1]], bad({ batchFirst: 'yes' }))],
    ['TokenVocab.encode', 'bos', () => TokenVocab.build(['a']).encode('a', bad({ bos: 'yes' }))],
    ['Linear.train', 'mode', () => new Linear(2, 2).train(bad('false'))],
    ['setGradEnabled', 'enabled', () => setGradEnabled(bad('false'))],
    ['fit', 'trainAccuracy', () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: new SGD(params(), { lr: 0 }), trainAccuracy: 'yes' }))],
    ['fit', 'earlyStopping.restoreBest', () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: new SGD(params(), { lr: 0 }), earlyStopping: { patience: 1, restoreBest: 'no' } }))],
    ['AttentionDecoder.forward', 'returnWeights', () => seq2seq().forward(collatePairs([[[3], [4]]]), bad({ returnWeights: 'yes' }))],
    ['KerasSequential.add', 'returnSequences', () => new KerasSequential().add(new LSTM(2, 3), bad({ returnSequences: 'true' }))],
    ['loadStateDict', 'strict', () => new Linear(2, 2).loadStateDict(new Linear(2, 2).stateDict(), bad({ strict: 'false' }))],
  ]
  for (const [op, name, fn] of cases) {
    const e = await refused(t, fn, ArgumentTypeError, op)
    t.regex(e.message, new RegExp(`^${op.replace('.', '\\.')}: ${name.replace('.', '\\.')} must be a boolean.*, got (the string "\\w+")$`), e.message)
  }
  // Before, a string was truthy: the GRU was silently built with PyTorch's formula.
  t.is(new GRU(2, 3, { resetAfter: false }).resetAfter, false)
})

test('a string where a number option goes is refused with the type named, not coerced', async (t) => {
  const cases: Array<[string, string, () => unknown]> = [
    ['LSTM', 'numLayers', () => new LSTM(2, 3, bad({ numLayers: '2' }))],
    ['LSTM', 'dropout', () => new LSTM(2, 3, bad({ dropout: '0.5' }))],
    ['Linear', 'seed', () => new Linear(2, 3, bad({ seed: '1' }))],
    ['Dropout', 'seed', () => new Dropout(0.5, bad({ seed: '7' }))],
    ['Adam', 'lr', () => new Adam(params(), bad({ lr: '0.01' }))],
    ['StepLR', 'stepSize', () => new StepLR(new SGD(params(), { lr: 0.1 }), bad({ stepSize: '2' }))],
    ['randn', 'seed', () => randn([2], bad({ seed: '1' }))],
    ['crossEntropy', 'ignoreIndex', () => ops.crossEntropy(zeros([2, 3]), ids([0, 1], [2]), bad({ ignoreIndex: '0' }))],
    ['fit', 'epochs', () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: new SGD(params(), { lr: 0 }), epochs: '3' }))],
    ['fit', 'earlyStopping.minDelta', () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: new SGD(params(), { lr: 0 }), earlyStopping: { patience: 1, minDelta: '0.1' } }))],
    ['beamSearch', 'beamWidth', () => beamSearch(fixedDecoder(), null, bad({ batchSize: 1, bos: 0, maxLength: 2, beamWidth: '3' }))],
    ['CharVocab', 'minCount', () => CharVocab.fromText('aab', bad({ minCount: '2' }))],
  ]
  for (const [op, name, fn] of cases) {
    const e = await refused(t, fn, ArgumentTypeError, op)
    t.regex(e.message, new RegExp(`^${op}: ${name.replace('.', '\\.')} must be .*, got the string "[\\w.]+"$`), e.message)
  }
  // A number of the right type but out of range stays a plain ValueError.
  const range = await refused(t, () => new LSTM(2, 3, { numLayers: 0 }), ValueError, 'LSTM')
  t.regex(range.message, /numLayers must be a positive integer, got 0/)
})

test('an options argument that is not an object names the op', async (t) => {
  for (const [op, fn] of [
    ['LSTM', () => new LSTM(2, 3, bad(null))],
    ['randn', () => randn([2], bad('float64'))],
    ['Adam', () => new Adam(params(), bad([0.01]))],
    ['mse', () => mse(zeros([1]), zeros([1]), bad(5))],
  ] as Array<[string, () => unknown]>) {
    const e = await refused(t, fn, ArgumentTypeError, op)
    t.regex(e.message, /expected an options object, got/)
  }
  const nested = await refused(t, () => fit(new Linear(2, 2), bad({ data: fitData(), optimizer: new SGD(params(), { lr: 0 }), checkpoint: 'ck.safetensors' })), ArgumentTypeError, 'fit')
  t.is(nested.message, 'fit: checkpoint must be an options object, got the string "ck.safetensors"')
})

test('fileStream and CharVocab.fromFile check their options before reading', async (t) => {
  const e = await refused(t, () => fileStream(join(dir, 'missing.txt'), bad({ batchSize: 1, seqLen: 2, readbytes: 4 })), ValueError, 'fileStream')
  t.regex(e.message, /'readbytes' \(did you mean 'readBytes'\?\)/)
  const v = await refused(t, () => CharVocab.fromFile(join(dir, 'missing.txt'), bad({ sampleBites: 4 })), ValueError, 'CharVocab.fromFile')
  t.regex(v.message, /'sampleBites' \(did you mean 'sampleBytes'\?\)/)
})
