/**
 * Evaluation without history: {@link evaluate} over batches and {@link evaluateStream} over a
 * token stream (state carried across chunks), plus the chunk helpers `fitTBPTT` shares
 * ({@link chunkTensors}, {@link defaultChunkLoss}).
 */

import { Tensor } from '../../tensor.js'
import { crossEntropy as opsCrossEntropy } from '../../ops/loss.js'
import { noGrad } from '../../ops/grad.js'
import { reshape } from '../../ops/shape.js'
import { tensor } from '../../ops/factories.js'
import { ValueError } from '../../errors.js'
import { boolArg, checkOptions, optionKeys } from '../../validate.js'
import { modelDevice, type Device } from '../../device.js'
import { crossEntropy } from '../../nn/loss.js'
import type { TokenChunk, TokenStream } from '../../data/stream.js'
import type { ChunkLoss, RecurrentState, StatefulModel } from '../tbptt.js'
import { Accumulator, countCorrect, isClassification, type Metrics } from './metrics.js'
import type { Batch, BatchInput, FitModel } from './options.js'

/** Options of {@link evaluate}. */
export interface EvaluateOptions<X extends BatchInput<X> = Tensor> {
  /** How to run the model (default `model.forward(x)`, taking `.output` of an object). */
  forward?: (x: X) => unknown
  /** Compute the accuracy for int32 targets (default true). */
  accuracy?: boolean
  /**
   * The padding target id: targets equal to it are not counted in the mean loss (each batch's
   * loss is weighted by its number of other targets) nor in the accuracy. The loss must ignore
   * them too (`crossEntropy(o, y, { ignoreIndex })`).
   */
  ignoreIndex?: number
  /** Stop early (the metrics cover the batches done). */
  signal?: AbortSignal
}

const EVALUATE_OPTIONS = optionKeys<EvaluateOptions>({ forward: true, accuracy: true, ignoreIndex: true, signal: true })

/** The tensor a model's `forward` returned, itself or as `{ output }`. @internal */
export function outputOf(r: unknown, what: string): Tensor {
  if (r instanceof Tensor) return r
  const o = (r as { output?: unknown } | null)?.output
  if (o instanceof Tensor) return o
  throw new ValueError(what, 'the model must return a Tensor or { output: Tensor }')
}

/** Checks `ignoreIndex` (an integer, or undefined). @internal */
export function checkIgnoreIndex(what: string, v: unknown): number | undefined {
  if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v))) throw new ValueError(what, `ignoreIndex must be an integer, got ${String(v)}`)
  return v
}

/** Number of targets of `y` that are not `ignoreIndex` (all of them without one). @internal */
export function countTargets(y: ArrayLike<number>, ignoreIndex: number | undefined): number {
  if (ignoreIndex === undefined) return y.length
  let n = 0
  for (let i = 0; i < y.length; i++) if (y[i] !== ignoreIndex) n++
  return n
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v !== 'object') return typeof v
  const name = (v as object).constructor?.name ?? 'Object'
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`
}

/**
 * Checks a batch `{ x, y }` (x a Tensor or an object of named Tensors, y a Tensor) and returns
 * its tensors on `device`, with a function that frees the copies made for that. @internal
 */
export function batchOnDevice<X>(what: string, b: unknown, device: Device, ignoreIndex?: number): { x: X; y: Tensor; free: () => void } {
  const shape = 'each batch must be { x, y } with x a Tensor or an object of named Tensors and y a Tensor'
  if (b === null || typeof b !== 'object') throw new ValueError(what, `${shape}, got ${describe(b)}`)
  const { x, y } = b as { x?: unknown; y?: unknown }
  if (!(y instanceof Tensor)) throw new ValueError(what, `${shape}; y is ${describe(y)}`)
  if (ignoreIndex !== undefined && y.dtype !== 'int32') throw new ValueError(what, `ignoreIndex needs int32 (class) targets, got y of dtype ${y.dtype}`)
  const copies: Tensor[] = []
  const move = (t: Tensor) => {
    const m = onDevice(t, device)
    if (m !== t) copies.push(m)
    return m
  }
  let xs: unknown
  if (x instanceof Tensor) {
    xs = move(x)
  } else if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
    const entries = Object.entries(x)
    if (entries.length === 0) throw new ValueError(what, `${shape}; x is an empty object`)
    for (const [k, v] of entries) if (!(v instanceof Tensor)) throw new ValueError(what, `${shape}; x.${k} is ${describe(v)}`)
    xs = Object.fromEntries(entries.map(([k, v]) => [k, move(v as Tensor)]))
  } else {
    throw new ValueError(what, `${shape}; x is ${describe(x)}`)
  }
  const ys = move(y)
  return {
    x: xs as X,
    y: ys,
    free: () => {
      for (const c of copies) c.dispose()
    },
  }
}

/**
 * Evaluates `model` on batches without history and in eval mode (restoring the previous mode):
 * mean loss per target, perplexity and accuracy for int32 targets (with `ignoreIndex`, per
 * non-padding target). Each batch's loss is read while the next one computes.
 */
export async function evaluate<X extends BatchInput<X> = Tensor>(
  model: FitModel<X>,
  data: Iterable<Batch<X>> | AsyncIterable<Batch<X>>,
  loss: (output: Tensor, target: Tensor) => Tensor,
  options: EvaluateOptions<X> = {},
): Promise<Metrics> {
  options = checkOptions('evaluate', options, EVALUATE_OPTIONS)
  const fwd = options.forward ?? ((x: X) => model.forward(x))
  const wantAcc = boolArg('evaluate', 'accuracy', options.accuracy ?? true)
  const ignoreIndex = checkIgnoreIndex('evaluate', options.ignoreIndex)
  const device = modelDevice(model)
  const acc = new Accumulator()
  const wasTraining = (model as { training?: boolean }).training
  model.eval?.()
  let pending: { loss: Tensor; out: Tensor; y: Tensor } | null = null
  const settle = async (p: { loss: Tensor; out: Tensor; y: Tensor }) => {
    const cls = isClassification(p.out, p.y)
    acc.classes ||= p.y.dtype === 'int32'
    const wantY = (wantAcc && cls) || ignoreIndex !== undefined
    const [l, o, t] = await Promise.all([p.loss.item(), wantAcc && cls ? p.out.data() : null, wantY ? p.y.data() : null])
    acc.add(l, t ? countTargets(t, ignoreIndex) : p.y.size)
    if (o && t) {
      acc.correct += countCorrect(o, t, ignoreIndex)
      acc.accCount += countTargets(t, ignoreIndex)
    }
    p.loss.dispose()
    p.out.dispose()
  }
  try {
    for await (const b of data) {
      if (options.signal?.aborted) break
      const { out, l } = noGrad(() => {
        const { x, y, free } = batchOnDevice<X>('evaluate', b, device, ignoreIndex)
        try {
          const out = outputOf(fwd(x), 'evaluate')
          return { out, l: loss(out, y) }
        } finally {
          free()
        }
      })
      if (pending) await settle(pending)
      pending = { loss: l, out, y: b.y }
    }
    if (pending) await settle(pending)
  } finally {
    if (wasTraining !== false) model.train?.(true)
  }
  return acc.metrics()
}

/** Options of {@link evaluateStream}. */
export interface EvaluateStreamOptions {
  /** Compute the accuracy (default true). */
  accuracy?: boolean
  /** Batch axis of the state tensors (default 1). */
  stateBatchAxis?: number
  /** Stop early (the metrics cover the chunks done). */
  signal?: AbortSignal
}

const EVALUATE_STREAM_OPTIONS = optionKeys<EvaluateStreamOptions>({ accuracy: true, stateBatchAxis: true, signal: true })

/** The keep-mask product that zeroes the rows of `state` marked in `reset`. */
function resetRows(state: RecurrentState | null, reset: Uint8Array | null, axis: number): RecurrentState | null {
  if (state === null || reset === null) return state
  let any = false
  let all = true
  for (const r of reset) {
    any ||= r !== 0
    all &&= r !== 0
  }
  if (!any) return state
  if (all) return null
  return state.map((s) => {
    const shape = s.shape.map((_, i) => (i === axis ? reset.length : 1))
    const keep = Array.from(reset, (r) => (r ? 0 : 1))
    return s.mul(tensor(s.dtype === 'float64' ? Float64Array.from(keep) : Float32Array.from(keep), shape, { device: s.device }))
  })
}

/** A {@link TokenChunk} as tensors: `x`, `y` int32 `[steps, B]`, on `device` (default `'cpu'`). */
export function chunkTensors(c: TokenChunk, device: Device = 'cpu'): { x: Tensor; y: Tensor; reset: Uint8Array | null } {
  return {
    x: tensor(c.x, [c.steps, c.batchSize], { dtype: 'int32', device }),
    y: tensor(c.y, [c.steps, c.batchSize], { dtype: 'int32', device }),
    reset: c.reset,
  }
}

/** `t` on `device`: itself when already there, else a copy (without history). @internal */
export function onDevice(t: Tensor, device: Device): Tensor {
  return t.device === device ? t : noGrad(() => t.to(device))
}

/**
 * Evaluates a {@link StatefulModel} over a token stream (one pass), carrying the state across
 * chunks (and resetting the rows the stream marks), without history and in eval mode.
 */
export async function evaluateStream(
  model: StatefulModel & Partial<Pick<FitModel, 'train' | 'eval'>>,
  stream: TokenStream,
  loss: ChunkLoss = defaultChunkLoss,
  options: EvaluateStreamOptions = {},
): Promise<Metrics> {
  options = checkOptions('evaluateStream', options, EVALUATE_STREAM_OPTIONS)
  const wantAcc = boolArg('evaluateStream', 'accuracy', options.accuracy ?? true)
  const axis = options.stateBatchAxis ?? 1
  const device = modelDevice(model)
  const acc = new Accumulator()
  const wasTraining = (model as { training?: boolean }).training
  model.eval?.()
  let state: RecurrentState | null = null
  let pending: { loss: Tensor; out: Tensor; y: Tensor } | null = null
  const settle = async (p: { loss: Tensor; out: Tensor; y: Tensor }) => {
    acc.classes = true
    acc.add(await p.loss.item(), p.y.size)
    if (wantAcc && isClassification(p.out, p.y)) {
      const [o, t] = await Promise.all([p.out.data(), p.y.data()])
      acc.correct += countCorrect(o, t)
      acc.accCount += p.y.size
    }
    p.loss.dispose()
    p.out.dispose()
    p.y.dispose()
  }
  try {
    for await (const c of stream.chunks(0)) {
      if (options.signal?.aborted) break
      const { x, y, reset } = chunkTensors(c, device)
      const r = noGrad(() => {
        const r = model.forward(x, resetRows(state, reset, axis))
        return { out: r.output, state: r.state, l: loss(r.output, y) }
      })
      x.dispose()
      state = r.state
      if (pending) await settle(pending)
      pending = { loss: r.l, out: r.out, y }
    }
    if (pending) await settle(pending)
  } finally {
    if (wasTraining !== false) model.train?.(true)
  }
  return acc.metrics()
}

/** Mean cross-entropy of logits `[T, B, V]` against int32 targets `[T, B]`. */
export function defaultChunkLoss(output: Tensor, target: Tensor): Tensor {
  if (output.rank !== 3 || target.rank !== 2) return crossEntropy(output, target)
  // nn's crossEntropy, with its reshaped copies freed at once rather than at the next GC.
  const [T, B, V] = output.shape as [number, number, number]
  const o2 = reshape(output, [T * B, V])
  const t1 = reshape(target, [T * B])
  const l = opsCrossEntropy(o2, t1)
  o2.dispose()
  t1.dispose()
  return l
}
