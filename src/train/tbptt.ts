/**
 * Truncated backpropagation through time, TBPTT(k1, k2), as DESIGN.md defines it: every k1 steps,
 * backpropagate through the last k2 steps (k1 ≤ k2).
 *
 * The stream is fed in *chunks* of k1 time steps (the last chunk of a stream may be shorter).
 * For each chunk the trainer:
 *
 * 1. takes the state saved (detached) at the window start w = max(0, c − (k2 − k1)), where c is
 *    the first step of the chunk;
 * 2. runs the model forward over [w, c + T) (the last k2 − k1 steps before the chunk are
 *    recomputed from inputs it kept), split into segments at the next window start and at every
 *    chunk start with a per-row reset, and chains the segments through their states so that the
 *    gradient flows across the boundaries;
 * 3. computes the loss on the outputs of the chunk's own T steps only, and calls `backward()`;
 * 4. saves the state at the next window start, detached from the graph, and forgets the inputs
 *    before it.
 *
 * With k1 = k2 the window is the chunk itself: the classic "detach every k steps". Memory is set
 * by k2, B and H: the trainer holds at most k2 steps of inputs and one saved state, whatever the
 * length of the stream.
 *
 * Streams of independent sequences: a chunk may carry a per-row `reset` mask; the rows it marks
 * start the chunk from a zero state (the saved state of those rows is multiplied by 0 at that
 * point, so no gradient flows into the previous sequence either).
 */

import { Tensor } from '../tensor.js'
import { concat, slice } from '../ops/shape.js'
import { noGrad } from '../ops/grad.js'
import { tensor } from '../ops/factories.js'
import { keep, tidy } from '../scope.js'
import { ShapeError, ValueError } from '../errors.js'
import { modelDevice } from '../device.js'
import { checkOptions, optionKeys, tensorArg } from '../validate.js'

/**
 * The recurrent state of a model: a list of tensors, each with the batch axis at
 * `stateBatchAxis` (default 1, PyTorch's `[L·D, B, H]`). An LSTM has `[h, c]`, a GRU or RNN `[h]`.
 * `null` means "the zero state" (the model makes its own zeros).
 */
export type RecurrentState = Tensor[]

/** What {@link StatefulModel.forward} returns. */
export interface StatefulOutput {
  /** Time-major outputs `[T, B, ...]` (for a language model: logits `[T, B, V]`). */
  output: Tensor
  /** The state after the last step (same structure as the input state). */
  state: RecurrentState
}

/**
 * A model that TBPTT can drive: it runs over a time-major chunk from a given state and returns
 * its outputs and its final state, with history, so that chunks chain with gradient flowing
 * through the states.
 *
 * - `x`: `[T, B]` int32 token ids, or `[T, B, I]` features (time-major);
 * - `state`: `null` for the zero state, else the state returned by a previous call (possibly
 *   detached, or with rows zeroed).
 *
 * {@link RecurrentLM} implements it for Embedding → RNN/LSTM/GRU → Linear; any object with
 * this method works.
 */
export interface StatefulModel {
  forward(x: Tensor, state: RecurrentState | null): StatefulOutput
}

/** A loss on a chunk: `output` `[T, B, ...]` against `target`; returns a scalar tensor. */
export type ChunkLoss = (output: Tensor, target: Tensor) => Tensor

/** One chunk of a stream, as fed to {@link TBPTT.backward}. */
export interface TBPTTChunk {
  /** Inputs `[T, B]` (int32 tokens) or `[T, B, I]`, time-major, 1 ≤ T ≤ k1. */
  x: Tensor
  /** Targets of the T steps, passed to the loss as is (for a language model: int32 `[T, B]`). */
  y: Tensor
  /**
   * Rows whose state is reset to zero before this chunk (a new independent sequence starts
   * there): a mask of length B (non-zero / true = reset), or null/undefined for none.
   */
  reset?: ArrayLike<number | boolean> | null | undefined
}

/** Options of {@link TBPTT}. */
export interface TBPTTOptions {
  /** Steps between updates: the length of a chunk. */
  k1: number
  /** Steps backpropagated through at each update, k2 ≥ k1 (default k1). */
  k2?: number
  /** The loss on a chunk's outputs. */
  loss: ChunkLoss
  /** Axis of the batch dimension in every state tensor (default 1: `[L·D, B, H]`). */
  stateBatchAxis?: number
}

const TBPTT_OPTIONS = optionKeys<TBPTTOptions>({ k1: true, k2: true, loss: true, stateBatchAxis: true })

/** What {@link TBPTT.backward} returns. */
export interface TBPTTResult {
  /** The chunk's loss, a scalar (detached). Read it with `await loss.item()`. */
  loss: Tensor
  /** The chunk's outputs `[T, B, ...]` (detached), e.g. for accuracy. */
  output: Tensor
  /** T, the chunk's number of steps. */
  steps: number
  /** Number of targets in the chunk (`y.size`). */
  count: number
}

interface Entry {
  x: Tensor
  start: number
  len: number
  /** 'all' (every row reset), a keep-mask per row (1 keep, 0 reset), or null. */
  reset: 'all' | Float64Array | null
}

/** The JSON part of {@link TBPTT.stateDict}. */
export interface TBPTTMeta {
  k1: number
  k2: number
  position: number
  savedPosition: number
  savedState: number
  lastState: number
  history: Array<{ start: number; len: number; reset: 'all' | number[] | null }>
}

function checkInt(what: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new ValueError('TBPTT', `${what} must be an integer ≥ ${min}, got ${String(v)}`)
  }
  return v
}

/** Detached handles of `s`, kept: the trainer's own carried state, which it disposes itself. */
function detachAll(s: RecurrentState | null): RecurrentState | null {
  return s === null ? null : s.map((t) => keep(t.detach()))
}

/**
 * The TBPTT engine: feed it the chunks of a stream in order; each {@link backward} call
 * accumulates into the parameters' `.grad` the gradient of that chunk's loss, backpropagated
 * through the last k2 steps. It never zeroes gradients or steps an optimizer: {@link step} does
 * the usual `zeroGrad → backward → step` and is what `fitTBPTT` and the char-rnn CLI use.
 *
 * ```ts
 * const model = new RecurrentLM({ vocabSize: V, hiddenSize: 256, cell: 'lstm' })
 * const opt = new Adam(model.parameters(), { lr: 2e-3 })
 * const tbptt = new TBPTT(model, { k1: 32, k2: 64, loss: (o, y) => crossEntropy(o, y) })
 * for await (const c of tokenStream.chunks()) {
 *   const { loss } = await tbptt.step(c, opt)
 * }
 * ```
 *
 * Each {@link backward} runs in a `tidy` scope: every tensor the model's `forward` and the loss
 * create is freed when the call returns (a model that stores a tensor it creates must `keep()`
 * it). The trainer's carried state and inputs are kept, so calling it inside a scope is safe.
 */
export class TBPTT {
  readonly model: StatefulModel
  readonly k1: number
  readonly k2: number
  readonly loss: ChunkLoss
  readonly stateBatchAxis: number
  #position = 0
  #savedPosition = 0
  #saved: RecurrentState | null = null
  #last: RecurrentState | null = null
  #history: Entry[] = []
  #batch: number | null = null

  constructor(model: StatefulModel, options: TBPTTOptions) {
    if (model === null || typeof model !== 'object' || typeof (model as StatefulModel).forward !== 'function') {
      throw new ValueError('TBPTT', 'model must have a forward(x, state) method')
    }
    if (options === null || typeof options !== 'object') throw new ValueError('TBPTT', 'options { k1, k2?, loss } are required')
    checkOptions('TBPTT', options, TBPTT_OPTIONS)
    this.model = model
    this.k1 = checkInt('k1', options.k1, 1)
    this.k2 = checkInt('k2', options.k2 ?? options.k1, 1)
    if (this.k2 < this.k1) throw new ValueError('TBPTT', `k2 must be ≥ k1, got k1 = ${this.k1}, k2 = ${this.k2}`)
    if (typeof options.loss !== 'function') throw new ValueError('TBPTT', 'options.loss must be a function (output, target) => scalar Tensor')
    this.loss = options.loss
    this.stateBatchAxis = checkInt('stateBatchAxis', options.stateBatchAxis ?? 1, 0)
  }

  /** Steps of the stream consumed so far. */
  get position(): number {
    return this.#position
  }

  /**
   * The (detached) state after the last chunk, or null before the first one. Use it to keep
   * evaluating or sampling from where training stopped.
   */
  get state(): RecurrentState | null {
    // New handles on the same data: the trainer frees its own when it moves on.
    return this.#last === null ? null : this.#last.map((t) => t.detach())
  }

  /** Forgets the stream: the next chunk starts from the zero state at position 0. */
  reset(): void {
    for (const t of [...(this.#saved ?? []), ...(this.#last ?? []), ...this.#history.map((e) => e.x)]) t.dispose()
    this.#position = 0
    this.#savedPosition = 0
    this.#saved = null
    this.#last = null
    this.#history = []
    this.#batch = null
  }

  /**
   * Runs TBPTT on the next chunk of the stream: the forward over the window (the chunk plus the
   * k2 − k1 steps before it, recomputed from the saved state), the loss over the chunk's own
   * steps, and `loss.backward()`, which *adds* to the parameters' gradients. Returns the loss
   * and outputs (both detached). Nothing is read back: the call only enqueues work.
   */
  backward(chunk: TBPTTChunk): TBPTTResult {
    if (chunk === null || typeof chunk !== 'object') throw new ValueError('TBPTT.backward', `chunk must be an object { x, y, reset? }, got ${String(chunk)}`)
    const { x, y } = chunk
    tensorArg('TBPTT.backward', 'chunk.x', x)
    tensorArg('TBPTT.backward', 'chunk.y', y)
    if (x.rank < 2) throw new ShapeError('TBPTT.backward', `expected x [T, B] or [T, B, I], got [${x.shape.join(', ')}]`)
    const T = x.shape[0]!
    const B = x.shape[1]!
    if (T < 1 || T > this.k1) throw new ShapeError('TBPTT.backward', `a chunk has 1 to k1 = ${this.k1} steps, got ${T}`)
    if (this.#batch !== null && this.#batch !== B) {
      throw new ShapeError('TBPTT.backward', `the batch size changed from ${this.#batch} to ${B}; call reset() between streams`)
    }
    this.#batch = B
    const c = this.#position
    // A handle of our own: the caller may dispose theirs once the call returns.
    const reset = this.#resetOf(chunk.reset, B)
    const entry: Entry = { x: keep(x.detach()), start: c, len: T, reset }
    this.#history.push(entry)

    const look = this.k2 - this.k1
    const w = this.#savedPosition
    const wNext = Math.max(w, c + T - look)
    // Everything the window's forward and the loss create is freed at the end of the scope:
    // handles of tensors with history keep their autograd graph (and its saved activations)
    // alive until they are disposed, so peak memory is set by the window, not by the GC.
    let next: { saved: RecurrentState | null; last: RecurrentState; result: TBPTTResult }
    try {
      next = tidy(() => {
        const { output, end, atNext } = this.#run(w, wNext, c + T)
        const total = output.shape[0]!
        const out = total === T ? output : slice(output, 0, total - T, T)
        const loss = this.loss(out, y)
        if (!(loss instanceof Tensor) || loss.size !== 1) throw new ValueError('TBPTT.backward', 'the loss must return a one-element Tensor')
        loss.backward()
        return {
          // The state at the next window start and at the end, detached (and kept).
          saved: wNext !== w ? detachAll(atNext) : this.#saved,
          last: detachAll(end)!,
          result: { loss: loss.detach(), output: out.detach(), steps: T, count: y.size },
        }
      })
    } catch (e) {
      // The chunk was not consumed: the next call may retry it.
      this.#history.pop()
      entry.x.dispose()
      throw e
    }
    const old = [...(next.saved !== this.#saved ? (this.#saved ?? []) : []), ...(this.#last ?? [])]
    this.#saved = next.saved
    if (wNext !== w) this.#savedPosition = wNext
    this.#last = next.last
    for (const t of old) t.dispose()
    const result = next.result
    this.#position = c + T
    const remaining: Entry[] = []
    for (const e of this.#history) {
      if (e.start + e.len > this.#savedPosition) remaining.push(e)
      else e.x.dispose()
    }
    this.#history = remaining
    return result
  }

  /**
   * One training step on a chunk: `optimizer.zeroGrad()`, {@link backward}, an optional
   * `clip(params)` hook (for gradient clipping), and `await optimizer.step()`, which gives
   * backpressure. Returns what {@link backward} returned.
   */
  async step(
    chunk: TBPTTChunk,
    optimizer: { zeroGrad(): void; step(): unknown },
    clip?: () => unknown,
  ): Promise<TBPTTResult> {
    optimizer.zeroGrad()
    const r = this.backward(chunk)
    if (clip) await clip()
    await optimizer.step()
    return r
  }

  /**
   * Forward over the history from the saved state at `w` to `end`, splitting at `wNext` and at
   * resets. Returns the concatenated outputs, the end state and the state at `wNext`. Runs
   * inside the `tidy` of {@link backward}, which frees the slices, concatenations and
   * intermediate states.
   */
  #run(w: number, wNext: number, endPos: number) {
    // Segments: maximal runs of (parts of) entries with no reset inside and not crossing wNext.
    type Seg = { xs: Tensor[]; reset: Entry['reset']; endsAt: number }
    const segs: Seg[] = []
    let cur: Seg | null = null
    for (const e of this.#history) {
      const eEnd = e.start + e.len
      if (eEnd <= w) continue
      let from = Math.max(e.start, w)
      while (from < eEnd) {
        const to = from < wNext && wNext < eEnd ? wNext : eEnd
        const startsEntry = from === e.start
        const reset = startsEntry ? e.reset : null
        const piece = from === e.start && to === eEnd ? e.x : slice(e.x, 0, from - e.start, to - from)
        const mustSplit = cur === null || reset !== null || cur.endsAt === wNext
        if (mustSplit) {
          cur = { xs: [piece], reset, endsAt: to }
          segs.push(cur)
        } else {
          cur!.xs.push(piece)
          cur!.endsAt = to
        }
        from = to
      }
    }
    if (segs.length === 0 || segs[segs.length - 1]!.endsAt !== endPos) {
      throw new ValueError('TBPTT', 'internal error: the history does not cover the window')
    }
    let state: RecurrentState | null = this.#saved
    let atNext: RecurrentState | null = wNext === w ? this.#saved : null
    const outs: Tensor[] = []
    for (const s of segs) {
      if (s.reset !== null) state = this.#applyReset(state, s.reset)
      const xs = s.xs.length === 1 ? s.xs[0]! : concat(s.xs, 0)
      const r = this.model.forward(xs, state)
      if (r === null || typeof r !== 'object' || !(r.output instanceof Tensor) || !Array.isArray(r.state)) {
        throw new ValueError('TBPTT', 'model.forward(x, state) must return { output: Tensor, state: Tensor[] }')
      }
      outs.push(r.output)
      state = r.state
      if (s.endsAt === wNext) atNext = state
    }
    const output = outs.length === 1 ? outs[0]! : concat(outs, 0)
    return { output, end: state as RecurrentState, atNext }
  }

  #resetOf(reset: TBPTTChunk['reset'], B: number): Entry['reset'] {
    if (reset === undefined || reset === null) return null
    if (typeof reset !== 'object' || typeof (reset as ArrayLike<unknown>).length !== 'number' || reset.length !== B) {
      throw new ShapeError('TBPTT.backward', `chunk.reset must have one entry per batch row (${B}), got ${String((reset as ArrayLike<unknown>)?.length)}`)
    }
    const keep = new Float64Array(B)
    let any = false
    let all = true
    for (let b = 0; b < B; b++) {
      const r = Boolean(reset[b])
      keep[b] = r ? 0 : 1
      any ||= r
      all &&= r
    }
    if (!any) return null
    return all ? 'all' : keep
  }

  /** Zeroes the rows of `state` that `reset` marks (a new leaf-free product; keeps history). */
  #applyReset(state: RecurrentState | null, reset: 'all' | Float64Array): RecurrentState | null {
    if (state === null || reset === 'all') return null
    return state.map((s) => {
      const ax = this.stateBatchAxis
      if (ax >= s.rank || s.shape[ax] !== reset.length) {
        throw new ShapeError('TBPTT', `state tensor [${s.shape.join(', ')}] has no batch axis ${ax} of size ${reset.length}`)
      }
      const shape = s.shape.map((_, i) => (i === ax ? reset.length : 1))
      const data = s.dtype === 'float64' ? reset : Float32Array.from(reset)
      const mask = tensor(data, shape, { device: s.device })
      return s.mul(mask)
    })
  }

  // ---- checkpointing ---------------------------------------------------------------------

  /**
   * The carried state as tensors and JSON, so that a resumed run continues bit-identically: the
   * saved state at the window start, the last state and the inputs of the last k2 − k1 steps.
   * Tensor names are relative (`saved.0`, `last.0`, `history.0`, ...).
   */
  stateDict(): { tensors: Record<string, Tensor>; meta: TBPTTMeta } {
    const tensors: Record<string, Tensor> = {}
    this.#saved?.forEach((t, i) => (tensors[`saved.${i}`] = t.detach()))
    this.#last?.forEach((t, i) => (tensors[`last.${i}`] = t.detach()))
    this.#history.forEach((e, i) => (tensors[`history.${i}`] = e.x.detach()))
    const meta: TBPTTMeta = {
      k1: this.k1,
      k2: this.k2,
      position: this.#position,
      savedPosition: this.#savedPosition,
      savedState: this.#saved?.length ?? -1,
      lastState: this.#last?.length ?? -1,
      history: this.#history.map((e) => ({
        start: e.start,
        len: e.len,
        reset: e.reset === null || e.reset === 'all' ? e.reset : Array.from(e.reset),
      })),
    }
    return { tensors, meta }
  }

  /**
   * Restores what {@link stateDict} returned (k1 and k2 must match). The tensors are copied to
   * the device of the model's parameters when they are elsewhere (a checkpoint is read on the CPU).
   */
  loadStateDict(dict: { tensors: Record<string, Tensor>; meta: TBPTTMeta }): void {
    const { tensors, meta } = dict
    if (meta.k1 !== this.k1 || meta.k2 !== this.k2) {
      throw new ValueError('TBPTT.loadStateDict', `saved with k1 = ${meta.k1}, k2 = ${meta.k2}; this trainer has k1 = ${this.k1}, k2 = ${this.k2}`)
    }
    const device = modelDevice(this.model)
    const get = (k: string): Tensor => {
      const t = tensors[k]
      if (!(t instanceof Tensor)) throw new ValueError('TBPTT.loadStateDict', `missing tensor '${k}'`)
      return t.device === device ? t : noGrad(() => t.to(device))
    }
    const list = (p: string, n: number) => (n < 0 ? null : Array.from({ length: n }, (_, i) => get(`${p}.${i}`)))
    const before = [...(this.#saved ?? []), ...(this.#last ?? []), ...this.#history.map((e) => e.x)]
    this.#saved = detachAll(list('saved', meta.savedState))
    this.#last = detachAll(list('last', meta.lastState))
    this.#position = meta.position
    this.#savedPosition = meta.savedPosition
    this.#history = meta.history.map((h, i) => ({
      x: keep(get(`history.${i}`).detach()),
      start: h.start,
      len: h.len,
      reset: h.reset === null || h.reset === 'all' ? h.reset : Float64Array.from(h.reset),
    }))
    for (const t of before) t.dispose()
    const x0 = this.#history[0]?.x ?? this.#last?.[0]
    this.#batch = x0 ? (this.#history[0] ? x0.shape[1]! : x0.shape[this.stateBatchAxis]!) : null
  }
}

/**
 * Runs `model` over a chunk without history, from `state` (detached), and returns the detached
 * outputs and state: evaluation and sampling over a stream, carrying the state.
 */
export function forwardNoGrad(model: StatefulModel, x: Tensor, state: RecurrentState | null): StatefulOutput {
  return noGrad(() => model.forward(x, state))
}
