/**
 * Decoding of sequence models: greedy, sampling (temperature, top-k, top-p) and batched beam
 * search, over any decoder described by a {@link DecoderStep}.
 *
 * Every choice is made where the tensors live, by native ops (`argmax`, `topk`, `gather`,
 * `indexSelect`, `where`, `maskedFill`, ...): no step reads logits back into JS. JS reads the
 * chosen tokens and scores once, at the end, plus one "all finished?" scalar every
 * `checkEvery` steps so that a batch whose rows all emitted EOS stops early. Only streaming
 * (`onTokens`) reads more often: one read per `streamEvery` steps, to show text as it comes.
 *
 * Shapes: B batch rows, K beams, N decoder rows (B, or B·K in beam search), V vocabulary.
 */

import type { Device } from '../device.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { cast } from '../ops/cast.js'
import { eq, lt, maskedFill, where } from '../ops/compare.js'
import { add, log, neg, scale } from '../ops/elementwise.js'
import { full, tensor, zeros } from '../ops/factories.js'
import { noGrad } from '../ops/grad.js'
import { argmax, gather, indexSelect, topk } from '../ops/index_ops.js'
import { randUniform, seedOf } from '../ops/random.js'
import { sum } from '../ops/reduce.js'
import { concat, reshape, slice, stack } from '../ops/shape.js'
import { softmax } from '../ops/softmax.js'
import { isKept, tensorsOf, tidy, tidyAsync } from '../scope.js'
import { Tensor } from '../tensor.js'
import { checkOptions, describe, numberArg, optionKeys, typeError, type OptionKeyTable } from '../validate.js'

/**
 * One step of a decoder, batched over N rows; the decoding functions drive it.
 *
 * `S` is whatever the decoder carries from step to step (recurrent states, attention memory, a
 * step counter, `null`...), in any layout: only the decoder's own `reorder` selects its rows.
 * Tensors of a state that the next state no longer holds are disposed by the decoding loop,
 * except those of the caller's initial state and kept ones (`keep()`); tensors a step makes
 * and caches elsewhere are disposed when decoding ends unless kept.
 */
export interface DecoderStep<S> {
  /**
   * Feeds `tokens` (int32 `[N]`, the previous choice of each row; BOS at the first step) and
   * returns the next-token log-probabilities (float `[N, V]`, log-softmaxed) and the new state.
   */
  step(tokens: Tensor, state: S): { logProbs: Tensor; state: S }
  /**
   * The state of rows `index` (int32 `[N']`, values in `[0, N)`), in that order, repeats
   * allowed: beam search grows B rows to B·K and follows each surviving beam's parent.
   */
  reorder(state: S, index: Tensor): S
}

/** One decoded sequence. */
export interface Hypothesis {
  /** The generated token ids, without BOS and without the EOS that ended it. */
  tokens: number[]
  /**
   * What the hypotheses of a row are ranked by: the log-probability, divided by the length
   * penalty in beam search.
   */
  score: number
  /**
   * Σ log p(token) under the decoder's `logProbs` over the scored steps (the tokens and the
   * EOS, when one ended it). Sampling reports the model's probabilities, not the
   * temperature-scaled or truncated ones it drew from.
   */
  logProb: number
}

/** Options shared by the decoding functions. */
export interface DecodeOptions {
  /** B: the rows of the initial state. */
  batchSize: number
  /** The token fed at the first step. */
  bos: number
  /**
   * The end-of-sequence token: a row that emits it is done (it is fed EOS again, at no cost,
   * until every row is done). Without one every sequence runs to `maxLength`.
   */
  eos?: number
  /** The most tokens generated per row (an ending EOS included). */
  maxLength: number
  /** Where the token tensors fed to the decoder live (default: the device of the initial state's first tensor, else the CPU). */
  device?: Device
  /**
   * Every this many steps, one scalar (are all rows done?) is read so that decoding stops
   * early (default 8; 0 never reads it and always runs `maxLength` steps). Only with `eos`.
   */
  checkEvery?: number
}

/** Streaming options of {@link greedyDecode} and {@link sampleDecode}. */
export interface StreamingOptions {
  /**
   * Called every `streamEvery` steps (and once at the end) with each row's new tokens
   * (none past its EOS). Each call costs one read of the tokens chosen since the last one.
   */
  onTokens?: (tokens: number[][]) => void
  /** Steps per `onTokens` call (default 16). */
  streamEvery?: number
}

/** Options of {@link greedyDecode}. */
export interface GreedyOptions extends DecodeOptions, StreamingOptions {}

/** Options of {@link sampleDecode}. */
export interface SampleOptions extends DecodeOptions, StreamingOptions {
  /** Softmax temperature (default 1); 0 is greedy. */
  temperature?: number
  /** Sample only among the k most likely tokens. */
  topK?: number
  /**
   * Nucleus sampling: only among the most likely tokens whose probabilities (after the
   * temperature and top-k) sum to `topP`, the one that crosses it included; in (0, 1], default 1.
   */
  topP?: number
  /** Seed of the noise; the same seed gives the same tokens. Default: one draw of the global generator (`manualSeed`). */
  seed?: number
}

/** Options of {@link beamSearch}. */
export interface BeamSearchOptions extends DecodeOptions {
  /** K: hypotheses kept per row. */
  beamWidth: number
  /**
   * α of GNMT's length penalty (Wu et al. 2016): hypotheses are ranked by
   * logProb / ((5 + len) / 6)^α, len counting the tokens and the ending EOS. Default 0 (no
   * penalty); larger values favour longer outputs.
   */
  lengthPenalty?: number
  /** Hypotheses returned per row, best first (default 1, at most `beamWidth`). */
  nBest?: number
}

const DECODE_TABLE = { batchSize: true, bos: true, eos: true, maxLength: true, device: true, checkEvery: true } as const satisfies OptionKeyTable<DecodeOptions>
const STREAMING_TABLE = { onTokens: true, streamEvery: true } as const satisfies OptionKeyTable<StreamingOptions>
const GREEDY_OPTIONS = optionKeys<GreedyOptions>({ ...DECODE_TABLE, ...STREAMING_TABLE })
const SAMPLE_OPTIONS = optionKeys<SampleOptions>({ ...DECODE_TABLE, ...STREAMING_TABLE, temperature: true, topK: true, topP: true, seed: true })
const BEAM_SEARCH_OPTIONS = optionKeys<BeamSearchOptions>({ ...DECODE_TABLE, beamWidth: true, lengthPenalty: true, nBest: true })

/** The options, checked, with their defaults. */
interface Resolved {
  N: number
  bos: number
  eos: number | undefined
  maxLength: number
  device: Device
  checkEvery: number
}

const INT = { integer: true } as const

function resolve(op: string, options: DecodeOptions | undefined, initState: unknown, known: readonly string[]): Resolved {
  const o = checkOptions(op, options, known)
  const N = numberArg(op, 'batchSize', o.batchSize, { ...INT, min: 1 })
  const bos = numberArg(op, 'bos', o.bos, { ...INT, min: 0, max: 2147483647 })
  const eos = o.eos === undefined ? undefined : numberArg(op, 'eos', o.eos, { ...INT, min: 0, max: 2147483647 })
  const maxLength = numberArg(op, 'maxLength', o.maxLength, { ...INT, min: 1 })
  const checkEvery = o.checkEvery === undefined ? 8 : numberArg(op, 'checkEvery', o.checkEvery, { ...INT, min: 0 })
  let device = o.device
  if (device === undefined) {
    const first = tensorsOf(initState).values().next()
    device = first.done ? 'cpu' : first.value.device
  }
  return { N, bos, eos, maxLength, device, checkEvery }
}

function resolveStream(op: string, o: StreamingOptions): { onTokens: ((t: number[][]) => void) | null; every: number } {
  if (o.onTokens !== undefined && typeof o.onTokens !== 'function') throw typeError(op, 'onTokens', 'a function', o.onTokens)
  const every = o.streamEvery === undefined ? 16 : numberArg(op, 'streamEvery', o.streamEvery, { ...INT, min: 1 })
  return { onTokens: o.onTokens ?? null, every }
}

/** The decoder, checked enough that a wrong object fails by name rather than deep inside. */
function checkDecoder(op: string, dec: unknown, needReorder: boolean): void {
  const d = dec as DecoderStep<unknown> | null
  if (d === null || typeof d !== 'object' || typeof d.step !== 'function' || (needReorder && typeof d.reorder !== 'function')) {
    throw new ValueError(op, `expected a decoder with step(tokens, state)${needReorder ? ' and reorder(state, index)' : ''} methods, got ${describe(dec)}`)
  }
}

/** The step's log-probabilities, checked: float `[N, V]`. */
function logProbsOf(op: string, out: unknown, N: number): Tensor {
  const lp = (out as { logProbs?: unknown } | null)?.logProbs
  if (!(lp instanceof Tensor)) throw new ValueError(op, `the decoder's step must return { logProbs, state }, got logProbs = ${describe(lp)}`)
  if (lp.rank !== 2 || lp.shape[0] !== N) throw new ShapeError(op, `the decoder's step returned logProbs of shape [${lp.shape.join(', ')}], expected [${N}, V]`)
  if (lp.dtype === 'int32') throw new DTypeError(op, `the decoder's step returned int32 logProbs, expected float32 or float64`)
  return lp
}

/**
 * Frees the tensors that decoding made and no longer needs: those of an old state (and other
 * carried values) that the next one does not hold. The caller's initial state and kept tensors
 * are never freed here (the caller owns them).
 */
class Releaser {
  readonly #owned: Set<Tensor>
  constructor(initState: unknown) {
    this.#owned = tensorsOf(initState)
  }
  release(old: unknown, next: unknown): void {
    const live = tensorsOf(next)
    for (const t of tensorsOf(old)) {
      if (!live.has(t) && !this.#owned.has(t) && !isKept(t) && !t.isDisposed) t.dispose()
    }
  }
}

/** True when every entry of the int32 0/1 flags is 1 (one scalar read). */
async function allSet(flags: Tensor): Promise<boolean> {
  const n = tidy(() => sum(cast(flags, 'float32')))
  try {
    return (await n.item()) === flags.size
  } finally {
    n.dispose()
  }
}

/**
 * Splits the token rows read so far into sequences: tokens up to each row's first EOS.
 * `push` returns, per row, the tokens it added (for streaming).
 */
class Sequences {
  readonly rows: number[][]
  readonly #done: Uint8Array
  constructor(
    readonly N: number,
    readonly eos: number | undefined,
  ) {
    this.rows = Array.from({ length: N }, () => [])
    this.#done = new Uint8Array(N)
  }
  /** `data` holds `[n, N]` tokens, step-major. */
  push(data: ArrayLike<number>): number[][] {
    const { N, eos } = this
    const added: number[][] = Array.from({ length: N }, () => [])
    for (let s = 0; s * N < data.length; s++) {
      for (let i = 0; i < N; i++) {
        if (this.#done[i]) continue
        const v = data[s * N + i]!
        if (v === eos) this.#done[i] = 1
        else {
          this.rows[i]!.push(v)
          added[i]!.push(v)
        }
      }
    }
    return added
  }
}

/** Picks the next token of each row from log-probabilities `[N, V]` at step `t`: int32 `[N]`. */
type Pick = (logProbs: Tensor, t: number) => Tensor

/** The loop of greedy decoding and sampling: one choice per row per step. */
async function decodeLoop<S>(op: string, dec: DecoderStep<S>, initState: S, r: Resolved, stream: ReturnType<typeof resolveStream>, pick: Pick): Promise<Hypothesis[][]> {
  const { N, eos } = r
  const releaser = new Releaser(initState)
  // The scope frees whatever the loop leaves (the token history, and everything on an error);
  // each step also frees the values it replaces, so memory stays flat while it runs.
  return tidyAsync(async () => {
    let state = initState
    let tokens = full([N], r.bos, { dtype: 'int32', device: r.device })
    let logProb: Tensor | null = null
    let finished: Tensor | null = null
    let unread: Tensor[] = []
    // Fed tokens that are no longer in `unread` (BOS, and the newest ones once read): freed
    // after the step that reads them.
    let spare: Tensor | null = tokens
    const seqs = new Sequences(N, eos)
    const flush = async (): Promise<void> => {
      if (unread.length === 0) return
      const block = stack(unread, 0)
      const data = await block.data()
      block.dispose()
      for (const t of unread) {
        if (t === tokens) spare = t
        else t.dispose()
      }
      unread = []
      const added = seqs.push(data)
      stream.onTokens?.(added)
    }
    for (let t = 0; t < r.maxLength; t++) {
      const next = tidy(() =>
        noGrad(() => {
          const out = dec.step(tokens, state)
          const lp = logProbsOf(op, out, N)
          let tok = pick(lp, t)
          // A finished row keeps emitting EOS at no cost.
          if (finished !== null) tok = maskedFill(tok, finished, eos!)
          let chosen = reshape(gather(lp, 1, reshape(tok, [N, 1])), [N])
          if (finished !== null) chosen = maskedFill(chosen, finished, 0)
          const score = logProb === null ? chosen : add(logProb, chosen)
          const fin = eos === undefined ? null : finished === null ? eq(tok, eos) : maskedFill(eq(tok, eos), finished, 1)
          return { state: out.state, tok, score, fin }
        }),
      )
      releaser.release({ state, logProb, finished }, { state: next.state, logProb: next.score, finished: next.fin })
      state = next.state
      logProb = next.score
      finished = next.fin
      tokens = next.tok
      unread.push(tokens)
      spare?.dispose()
      spare = null
      if (stream.onTokens !== null && unread.length >= stream.every) await flush()
      if (finished !== null && r.checkEvery > 0 && (t + 1) % r.checkEvery === 0 && t + 1 < r.maxLength && (await allSet(finished))) break
    }
    await flush()
    const scores = await logProb!.data()
    releaser.release(state, null)
    return seqs.rows.map((tokens, i) => [{ tokens, score: scores[i]!, logProb: scores[i]! }])
  })
}

/**
 * Greedy decoding: each row takes its most likely token at every step (ties: the lower id),
 * until EOS or `maxLength` tokens.
 *
 * ```ts
 * const [[best]] = await greedyDecode(decoder, state, { batchSize: 1, bos: BOS, eos: EOS, maxLength: 50 })
 * best.tokens // ids without BOS/EOS; best.score = Σ log p
 * ```
 *
 * @returns per row, one {@link Hypothesis}.
 * @throws ValueError for bad options or a decoder without `step`. @throws ShapeError when the
 * step's logProbs are not `[batchSize, V]`.
 */
export async function greedyDecode<S>(dec: DecoderStep<S>, initState: S, options: GreedyOptions): Promise<Hypothesis[][]> {
  const op = 'greedyDecode'
  checkDecoder(op, dec, false)
  const r = resolve(op, options, initState, GREEDY_OPTIONS)
  const stream = resolveStream(op, options)
  return decodeLoop(op, dec, initState, r, stream, (lp) => argmax(lp, 1))
}

/** Noise bounds: U(2^-24, 1 − 2^-24) keeps both logarithms of the Gumbel noise finite in float32. */
const U_LOW = 2 ** -24
const U_HIGH = 1 - 2 ** -24
const SEED_SPAN = 2 ** 53

/**
 * The running sum along the last axis of `x [N, k]`, excluding each position itself
 * (`out[:, j] = Σ_{i<j} x[:, i]`), by Hillis–Steele doubling: log2(k) shifted adds of
 * O(N·k) each, where a triangular matmul would cost O(N·k²) (k may be the whole vocabulary).
 */
function exclusiveCumsum(x: Tensor): Tensor {
  const [N, k] = x.shape as [number, number]
  let acc = x
  for (let d = 1; d < k; d *= 2) {
    const shifted = concat([zeros([N, d], { dtype: x.dtype, device: x.device }), slice(acc, 1, 0, k - d)], 1)
    acc = add(acc, shifted)
  }
  return k === 1 ? zeros([N, 1], { dtype: x.dtype, device: x.device }) : concat([zeros([N, 1], { dtype: x.dtype, device: x.device }), slice(acc, 1, 0, k - 1)], 1)
}

/**
 * Sampling: each row draws its next token from softmax(logProbs / temperature), optionally
 * restricted to the `topK` most likely tokens and to the nucleus of mass `topP` (temperature,
 * then top-k, then top-p, renormalised). Temperature 0 is {@link greedyDecode}.
 *
 * The draw is the Gumbel-max trick, argmax(logits / T + G) with G = −log(−log U), so it is one
 * `argmax` on the device; U comes from `randUniform` with a seed derived from `seed` and the
 * step (drawn on the CPU and copied to the device, as all of `randUniform`). top-k and top-p
 * work on the `topk`-sorted candidates (k = V for top-p alone), whose ids are gathered back.
 *
 * @returns per row, one {@link Hypothesis} whose scores are the model's log-probabilities of
 * the drawn tokens.
 * @throws ValueError for bad options (temperature < 0, topK < 1, topP outside (0, 1], ...).
 */
export async function sampleDecode<S>(dec: DecoderStep<S>, initState: S, options: SampleOptions): Promise<Hypothesis[][]> {
  const op = 'sampleDecode'
  checkDecoder(op, dec, false)
  const r = resolve(op, options, initState, SAMPLE_OPTIONS)
  const stream = resolveStream(op, options)
  const T = options.temperature === undefined ? 1 : numberArg(op, 'temperature', options.temperature, { min: 0 })
  const topK = options.topK === undefined ? undefined : numberArg(op, 'topK', options.topK, { ...INT, min: 1 })
  const topP = options.topP === undefined ? 1 : numberArg(op, 'topP', options.topP, { min: 0, minExclusive: true, max: 1 })
  if (T === 0) return decodeLoop(op, dec, initState, r, stream, (lp) => argmax(lp, 1))
  const base = seedOf(op, options.seed)
  const N = r.N
  return decodeLoop(op, dec, initState, r, stream, (lp, t) => {
    const V = lp.shape[1]!
    const k = Math.min(topK ?? V, V)
    let cand = lp
    let ids: Tensor | null = null
    if (k < V || topP < 1) {
      const best = topk(lp, k, 1)
      cand = best.values
      ids = best.indices
    }
    let logits = T === 1 ? cand : scale(cand, 1 / T)
    if (topP < 1) {
      // Keep a candidate while the mass before it is below topP: the first always stays.
      const before = exclusiveCumsum(softmax(logits, 1))
      logits = maskedFill(logits, eq(lt(before, topP), 0), -Infinity)
    }
    const u = randUniform(logits.shape, U_LOW, U_HIGH, { dtype: logits.dtype, device: logits.device, seed: (base + t) % SEED_SPAN })
    const j = argmax(add(logits, neg(log(neg(log(u))))), 1)
    return ids === null ? j : reshape(gather(ids, 1, reshape(j, [N, 1])), [N])
  })
}

/** GNMT's length penalty ((5 + len) / 6)^α. */
function lengthPenaltyOf(len: number, alpha: number): number {
  return alpha === 0 ? 1 : ((5 + len) / 6) ** alpha
}

/**
 * Batched beam search: B rows × K beams decoded together as B·K decoder rows.
 *
 * Each step adds the beams' running log-probabilities to their next-token log-probabilities,
 * keeps each row's K best continuations (a `topk` of K per beam, then of K·K per row: the K
 * best of all K·V), and follows them with `dec.reorder(state, parents)`. Parents and tokens come
 * from the `topk` indices by `gather` (integer tables), never through JS. A beam that emitted
 * EOS is finished: its only continuation is EOS again at no cost, so it keeps its score and its
 * slot. The search stops when every beam is finished (checked every `checkEvery` steps) or
 * after `maxLength` tokens; the beams are then ranked by the length-penalised score (see
 * `lengthPenalty`; the search itself keeps the K best by log-probability, so at α = 0 it is
 * plain beam search). Hypotheses with log-probability −∞ (rows with fewer than K possible
 * sequences) are left out.
 *
 * JS reads the parents, tokens and scores once, at the end, and follows the parents back.
 *
 * ```ts
 * const rows = await beamSearch(decoder, encoderState, { batchSize: B, bos: BOS, eos: EOS, beamWidth: 5, maxLength: 40, nBest: 3 })
 * rows[b][0].tokens // the best of row b
 * ```
 *
 * @returns per row up to `nBest` hypotheses, best first. Width 1 is greedy decoding.
 * @throws ValueError for bad options (beamWidth not a positive integer, nBest > beamWidth,
 * eos ≥ V, ...) or a decoder without `step` and `reorder`.
 */
export async function beamSearch<S>(dec: DecoderStep<S>, initState: S, options: BeamSearchOptions): Promise<Hypothesis[][]> {
  const op = 'beamSearch'
  checkDecoder(op, dec, true)
  const r = resolve(op, options, initState, BEAM_SEARCH_OPTIONS)
  const K = numberArg(op, 'beamWidth', options.beamWidth, { ...INT, min: 1 })
  const alpha = options.lengthPenalty === undefined ? 0 : numberArg(op, 'lengthPenalty', options.lengthPenalty, { min: 0 })
  const nBest = options.nBest === undefined ? 1 : numberArg(op, 'nBest', options.nBest, { ...INT, min: 1, max: K })
  const { N: B, eos } = r
  const N = B * K
  const releaser = new Releaser(initState)
  return tidyAsync(async () => {
    const expand = tensor(Int32Array.from({ length: N }, (_, i) => Math.floor(i / K)), [N], { dtype: 'int32', device: r.device })
    let state = tidy(() => noGrad(() => dec.reorder(initState, expand)))
    let tokens = full([N], r.bos, { dtype: 'int32', device: r.device })
    let scores: Tensor | null = null
    let finished: Tensor | null = null
    // Made at the first step, when V and the logProbs' dtype are known.
    let eosRow: Tensor | null = null
    let parentOf: Tensor | null = null
    let Kc = K
    const parents: Tensor[] = []
    const history: Tensor[] = []
    for (let t = 0; t < r.maxLength; t++) {
      const out = tidy(() => noGrad(() => dec.step(tokens, state)))
      const lp = logProbsOf(op, out, N)
      if (scores === null) {
        const V = lp.shape[1]!
        if (eos !== undefined && eos >= V) throw new ValueError(op, `eos must be a token id below the vocabulary size ${V}, got ${eos}`)
        Kc = Math.min(K, V)
        const dev = lp.device
        // Each row starts with one live beam (the others would only duplicate it).
        const s0 = new (lp.dtype === 'float64' ? Float64Array : Float32Array)(N).fill(-Infinity)
        for (let b = 0; b < B; b++) s0[b * K] = 0
        scores = tensor(s0, [N], { dtype: lp.dtype, device: dev })
        if (eos !== undefined) {
          const row = new (lp.dtype === 'float64' ? Float64Array : Float32Array)(V).fill(-Infinity)
          row[eos] = 0
          eosRow = tensor(row, [1, V], { dtype: lp.dtype, device: dev })
        }
        // Candidate m of row b comes from beam m / Kc: its decoder row is b·K + ⌊m / Kc⌋.
        const table = new Int32Array(B * K * Kc)
        for (let b = 0; b < B; b++) for (let m = 0; m < K * Kc; m++) table[b * K * Kc + m] = b * K + Math.floor(m / Kc)
        parentOf = tensor(table, [B, K * Kc], { dtype: 'int32', device: dev })
      }
      const next = tidy(() =>
        noGrad(() => {
          const masked = finished === null || eosRow === null ? lp : where(reshape(finished, [N, 1]), eosRow, lp)
          // The K best of one beam's V continuations hold all of that beam's share of the K best
          // of the row's K·V, so two small topk give the same choice as one over K·V.
          const perBeam = topk(masked, Kc, 1)
          const total = reshape(add(perBeam.values, reshape(scores!, [N, 1])), [B, K * Kc])
          const best = topk(total, K, 1)
          const parent = reshape(gather(parentOf!, 1, best.indices), [N])
          const tok = reshape(gather(reshape(perBeam.indices, [B, K * Kc]), 1, best.indices), [N])
          let fin: Tensor | null = null
          if (eos !== undefined) {
            const isEos = eq(tok, eos)
            fin = finished === null ? isEos : maskedFill(isEos, indexSelect(finished, 0, parent), 1)
          }
          return { parent, tok, scores: reshape(best.values, [N]), fin, state: dec.reorder(out.state, parent) }
        }),
      )
      releaser.release({ state, scores, finished, out }, { state: next.state, scores: next.scores, finished: next.fin })
      state = next.state
      scores = next.scores
      finished = next.fin
      tokens = next.tok
      parents.push(next.parent)
      history.push(next.tok)
      if (finished !== null && r.checkEvery > 0 && (t + 1) % r.checkEvery === 0 && t + 1 < r.maxLength && (await allSet(finished))) break
    }
    const P = stack(parents, 0)
    const Y = stack(history, 0)
    const [par, tok, raw] = await Promise.all([P.data(), Y.data(), scores!.data()])
    releaser.release(state, null)
    const T = parents.length
    const rows: Hypothesis[][] = []
    for (let b = 0; b < B; b++) {
      const hyps: Hypothesis[] = []
      for (let k = 0; k < K; k++) {
        const slot = b * K + k
        const logProb = raw[slot]!
        if (!Number.isFinite(logProb)) continue
        // Follow the parents back from the last step.
        const path = new Array<number>(T)
        for (let t = T - 1, i = slot; t >= 0; t--) {
          path[t] = tok[t * N + i]!
          i = par[t * N + i]!
        }
        const end = eos === undefined ? -1 : path.indexOf(eos)
        const tokens = end < 0 ? path : path.slice(0, end)
        const len = end < 0 ? T : end + 1
        hyps.push({ tokens, score: logProb / lengthPenaltyOf(len, alpha), logProb })
      }
      // A stable sort: equal scores keep the search's order.
      hyps.sort((x, y) => y.score - x.score)
      rows.push(hyps.slice(0, nBest))
    }
    return rows
  })
}
