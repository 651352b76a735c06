/**
 * `AttentionDecoder`: the token decoder shared by `Seq2Seq` and `ImageCaptioner`: an embedding,
 * optional attention over a memory (encoder outputs or image regions), one step cell per layer
 * and an output layer; teacher-forced over a whole target, or driven step by step by the
 * decoders of `decode.ts`.
 */

import { Tensor } from '../tensor.js'
import { ShapeError, ValueError } from '../errors.js'
import { randUniform } from '../ops/random.js'
import { concat, reshape, slice, stack } from '../ops/shape.js'
import { argmax, indexSelect } from '../ops/index_ops.js'
import { lt, where } from '../ops/compare.js'
import { noGrad } from '../ops/grad.js'
import { tensorsOf, tidy, tidyAsync } from '../scope.js'
import { Module } from '../nn/module.js'
import { Embedding } from '../nn/embedding.js'
import { Linear } from '../nn/linear.js'
import { Dropout } from '../nn/dropout.js'
import { GRUCell, LSTMCell, RNNCell } from '../nn/cells.js'
import { Attention, type AttentionMemory } from '../nn/attention.js'
import { beamSearch, greedyDecode, sampleDecode, type DecoderStep, type Hypothesis } from './decode.js'
import { boolArg, checkOptions, optionKeys, refusal, typeError, type OptionKeyTable } from '../validate.js'

/** The special ids every decoder vocabulary shares (those of `TokenVocab`). */
export const PAD_ID = 0
export const BOS_ID = 1
export const EOS_ID = 2

/** The recurrent cell of a decoder (and of `Seq2Seq`'s encoder). */
export type DecoderCell = 'lstm' | 'gru' | 'rnn'

/** The score of a decoder's attention (`'luong'` is Luong's `general`), or `'none'`. */
export type DecoderAttention = 'bahdanau' | 'luong' | 'dot' | 'none'

/** Options of {@link AttentionDecoder}. */
export interface AttentionDecoderOptions {
  /** V: target vocabulary size (0 padding, 1 BOS, 2 EOS). */
  vocabSize: number
  /** E: token embedding size. */
  embeddingDim: number
  /** H: hidden size of every layer. */
  hiddenSize: number
  /** L: stacked cells (default 1). */
  numLayers?: number
  /** Default `'lstm'`. */
  cell?: DecoderCell
  /** K: feature size of the memory attended over (ignored with `attention: 'none'`). */
  memorySize?: number
  /** Default `'bahdanau'`. */
  attention?: DecoderAttention
  /** A: hidden size of the additive attention (default H). */
  attentionSize?: number
  /** Dropout between layers and before the output layer, in training mode (default 0). */
  dropout?: number
}

const ATTENTION_DECODER_OPTIONS = optionKeys<AttentionDecoderOptions>({
  vocabSize: true,
  embeddingDim: true,
  hiddenSize: true,
  numLayers: true,
  cell: true,
  memorySize: true,
  attention: true,
  attentionSize: true,
  dropout: true,
})

/**
 * The decoder's state between steps: per layer `h [N, H]` (and `c [N, H]` for LSTM), and the
 * attention memory of the rows (null without attention). N is B, or B·K in a beam.
 */
export interface DecoderState {
  h: Tensor[]
  c: Tensor[] | null
  memory: AttentionMemory | null
}

/** What one {@link AttentionDecoder.step} returns. */
export interface DecoderStepResult {
  /** `[N, V]` */
  logits: Tensor
  state: DecoderState
  /** The attention weights of the step `[N, S]` (null without attention). */
  weights: Tensor | null
}

/** Options of {@link AttentionDecoder.forward}. */
export interface TeacherForcingOptions {
  /**
   * Probability that a step reads the true previous token rather than the model's own last
   * choice (scheduled sampling, drawn per row and step from the global generator). Default 1:
   * pure teacher forcing.
   */
  teacherForcing?: number
  /** Also return the attention weights of every step, `[T, B, S]`. */
  returnWeights?: boolean
}

const TEACHER_FORCING_TABLE = { teacherForcing: true, returnWeights: true } as const satisfies OptionKeyTable<TeacherForcingOptions>
/** The keys of {@link TeacherForcingOptions}. @internal */
export const TEACHER_FORCING_OPTIONS = optionKeys<TeacherForcingOptions>(TEACHER_FORCING_TABLE)
const FORWARD_ASYNC_OPTIONS = optionKeys<TeacherForcingOptions & { yieldEvery?: number }>({ ...TEACHER_FORCING_TABLE, yieldEvery: true })

/** Options of {@link AttentionDecoder.decode}. */
export interface DecodeRunOptions {
  /** The most tokens generated per row, the ending EOS included. */
  maxLength: number
  /** K: 1 (default) decodes greedily, more runs a batched beam search. */
  beamWidth?: number
  /** Hypotheses per row, best first (default 1, at most `beamWidth`). */
  nBest?: number
  /** α of the beam's GNMT length penalty (default 0). */
  lengthPenalty?: number
  /** Sample instead of taking the most likely token (with width 1; 0 is greedy). */
  temperature?: number
  topK?: number
  topP?: number
  seed?: number
}

/** The keys of {@link DecodeRunOptions}. @internal */
export const DECODE_RUN_OPTIONS = optionKeys<DecodeRunOptions>({
  maxLength: true,
  beamWidth: true,
  nBest: true,
  lengthPenalty: true,
  temperature: true,
  topK: true,
  topP: true,
  seed: true,
})

function checkTokens(op: string, t: Tensor, rank: number, name: string): void {
  if (!(t instanceof Tensor)) throw typeError(op, `argument '${name}'`, 'an int32 Tensor of token ids', t)
  if (t.rank !== rank || t.dtype !== 'int32') throw new ShapeError(op, `expected int32 token ids ${rank === 1 ? '[N]' : '[T, B]'}, got ${t.dtype} [${t.shape.join(', ')}]`)
}

/**
 * A token decoder with attention. At step t, with the previous token yₜ₋₁:
 *
 *   cₜ = Attention(query = top-layer hₜ₋₁, memory)            (skipped without attention)
 *   xₜ = [Embedding(yₜ₋₁); cₜ]
 *   hₜ⁽ˡ⁾ = cell⁽ˡ⁾(xₜ or hₜ⁽ˡ⁻¹⁾, hₜ₋₁⁽ˡ⁾)
 *   logitsₜ = W_o [hₜ⁽ᴸ⁾; cₜ] + b_o                            [N, V]
 *
 * The query is the state before the step (Bahdanau's order) for every score; the context also
 * feeds the output layer (Luong's). Parameters: `embedding.weight`, `attention.*`,
 * `cell0.weight_ih`, …, `head.weight`, `head.bias`.
 */
export class AttentionDecoder extends Module {
  readonly vocabSize: number
  readonly hiddenSize: number
  readonly numLayers: number
  readonly cellKind: DecoderCell
  readonly embedding: Embedding
  readonly attention: Attention | null
  readonly cells: Array<LSTMCell | GRUCell | RNNCell>
  readonly drop: Dropout | null
  readonly head: Linear

  constructor(o: AttentionDecoderOptions) {
    super()
    if (o === null || typeof o !== 'object') throw new ValueError('AttentionDecoder', 'options { vocabSize, embeddingDim, hiddenSize } are required')
    checkOptions('AttentionDecoder', o, ATTENTION_DECODER_OPTIONS)
    const cell = o.cell ?? 'lstm'
    const kind = o.attention ?? 'bahdanau'
    const H = o.hiddenSize
    const L = o.numLayers ?? 1
    const K = kind === 'none' ? 0 : (o.memorySize ?? 0)
    if (kind !== 'none' && !(Number.isInteger(K) && K >= 1)) throw new ValueError('AttentionDecoder', `memorySize must be a positive integer with attention '${kind}', got ${String(o.memorySize)}`)
    if (kind === 'dot' && K !== H) {
      throw new ValueError('AttentionDecoder', `attention 'dot' needs the memory (${K}) and the decoder state (${H}) to have one size; use 'luong' or 'bahdanau'`)
    }
    this.vocabSize = o.vocabSize
    this.hiddenSize = H
    this.numLayers = L
    this.cellKind = cell
    this.embedding = this.registerModule('embedding', new Embedding(o.vocabSize, o.embeddingDim))
    this.attention =
      kind === 'none'
        ? null
        : this.registerModule(
            'attention',
            new Attention(H, K, kind === 'bahdanau' ? { score: 'bahdanau', attentionSize: o.attentionSize ?? H } : { score: kind === 'luong' ? 'general' : 'dot' }),
          )
    this.cells = []
    for (let l = 0; l < L; l++) {
      const inSize = l === 0 ? o.embeddingDim + K : H
      const c = cell === 'lstm' ? new LSTMCell(inSize, H) : cell === 'gru' ? new GRUCell(inSize, H) : new RNNCell(inSize, H)
      this.cells.push(this.registerModule(`cell${l}`, c))
    }
    const p = o.dropout ?? 0
    this.drop = p > 0 ? this.registerModule('drop', new Dropout(p)) : null
    this.head = this.registerModule('head', new Linear(H + K, o.vocabSize))
  }

  /**
   * The initial state from per-layer `h` (and `c` for LSTM) `[B, H]` and the memory
   * `[S, B, K]` with optional lengths (the attention's key projection runs here, once).
   */
  initialState(h: Tensor[], c: Tensor[] | null, memory: Tensor | null, lengths?: Tensor | Int32Array | readonly number[] | null): DecoderState {
    if (h.length !== this.numLayers) throw new ValueError('AttentionDecoder.initialState', `expected ${this.numLayers} hidden states, got ${h.length}`)
    if ((this.cellKind === 'lstm') !== (c !== null)) throw new ValueError('AttentionDecoder.initialState', this.cellKind === 'lstm' ? 'an LSTM decoder needs cell states' : `a ${this.cellKind} decoder has no cell states`)
    if (this.attention && memory === null) throw new ValueError('AttentionDecoder.initialState', 'a decoder with attention needs a memory [S, B, K]')
    return { h, c, memory: this.attention && memory ? this.attention.memory(memory, lengths) : null }
  }

  /** One step: previous tokens int32 `[N]` and the state → logits `[N, V]`, the new state and the attention weights. */
  step(tokens: Tensor, state: DecoderState): DecoderStepResult {
    checkTokens('AttentionDecoder.step', tokens, 1, 'tokens')
    return tidy(() => {
      const e = this.embedding.forward(tokens)
      const att = this.attention && state.memory ? this.attention.forward(state.h[state.h.length - 1]!, state.memory) : null
      const context = att ? att.context : null
      let x = context ? concat([e, context], 1) : e
      const h: Tensor[] = []
      const c: Tensor[] | null = state.c ? [] : null
      for (let l = 0; l < this.cells.length; l++) {
        if (l > 0 && this.drop) x = this.drop.forward(x)
        const cellModule = this.cells[l]!
        if (cellModule instanceof LSTMCell) {
          const s = cellModule.forward(x, { h: state.h[l]!, c: state.c![l]! })
          h.push(s.h)
          c!.push(s.c)
          x = s.h
        } else {
          const hn = cellModule.forward(x, state.h[l]!)
          h.push(hn)
          x = hn
        }
      }
      let out = context ? concat([x, context], 1) : x
      if (this.drop) out = this.drop.forward(out)
      return { logits: this.head.forward(out), state: { h, c, memory: state.memory }, weights: att ? att.weights : null }
    })
  }

  /**
   * Teacher-forced decoding of `targetIn` (int32 `[T, B]`, BOS first) from `state`: logits
   * `[T, B, V]` (and, with `returnWeights`, the attention weights `[T, B, S]`). With
   * `teacherForcing < 1`, each row and step reads the model's own previous argmax instead of the
   * true token with probability `1 − teacherForcing` (scheduled sampling).
   */
  override forward(targetIn: Tensor, state: DecoderState, options: TeacherForcingOptions = {}): { logits: Tensor; weights: Tensor | null } {
    const run = this.#teacherForced('AttentionDecoder.forward', targetIn, state, checkOptions('AttentionDecoder.forward', options, TEACHER_FORCING_OPTIONS))
    return tidy(() => {
      let r = run.next()
      while (!r.done) r = run.next()
      return r.value
    })
  }

  /**
   * {@link forward}, giving the event loop a turn every `yieldEvery` decoder steps (default 4):
   * building a long teacher-forced graph is milliseconds of JS per step, and a training loop
   * that awaits this keeps the p99 event-loop delay low. Same result, same random draws.
   */
  async forwardAsync(targetIn: Tensor, state: DecoderState, options: TeacherForcingOptions & { yieldEvery?: number } = {}): Promise<{ logits: Tensor; weights: Tensor | null }> {
    options = checkOptions('AttentionDecoder.forwardAsync', options, FORWARD_ASYNC_OPTIONS)
    const every = options.yieldEvery ?? 4
    if (!Number.isInteger(every) || every < 1) throw new ValueError('AttentionDecoder.forwardAsync', `yieldEvery must be a positive integer, got ${String(every)}`)
    const run = this.#teacherForced('AttentionDecoder.forwardAsync', targetIn, state, options)
    return tidyAsync(async () => {
      let n = 0
      let r = run.next()
      while (!r.done) {
        if (++n % every === 0) await new Promise<void>((resolve) => setImmediate(resolve))
        r = run.next()
      }
      return r.value
    })
  }

  /** The teacher-forced loop, one decoder step per iteration: shared by forward and forwardAsync. */
  *#teacherForced(op: string, targetIn: Tensor, state: DecoderState, options: TeacherForcingOptions): Generator<void, { logits: Tensor; weights: Tensor | null }> {
    const ratio = options.teacherForcing ?? 1
    if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) throw refusal(op, 'teacherForcing', 'in [0, 1]', ratio, 'number')
    const returnWeights = boolArg(op, 'returnWeights', options.returnWeights ?? false)
    checkTokens(op, targetIn, 2, 'targetIn')
    const [T, B] = targetIn.shape as [number, number]
    if (state.h[0]!.shape[0] !== B) throw new ShapeError(op, `expected a state of batch ${B} (targetIn [${T}, ${B}]), got [${state.h[0]!.shape.join(', ')}]`)
    let s = state
    const steps: Tensor[] = []
    const weights: Tensor[] = []
    let prevChoice: Tensor | null = null
    for (let t = 0; t < T; t++) {
      let tokens = reshape(slice(targetIn, 0, t, 1), [B])
      if (ratio < 1 && prevChoice !== null) tokens = where(lt(randUniform([B], 0, 1), ratio), tokens, prevChoice)
      const r = this.step(tokens, s)
      s = r.state
      steps.push(r.logits)
      if (returnWeights && r.weights) weights.push(r.weights)
      if (ratio < 1) prevChoice = argmax(r.logits.detach(), 1)
      yield
    }
    return { logits: stack(steps, 0), weights: weights.length > 0 ? stack(weights, 0) : null }
  }

  /** The decoder as `decode.ts` drives it (log-probabilities, beam reordering). */
  asDecoderStep(): DecoderStep<DecoderState> {
    return {
      step: (tokens, s) =>
        tidy(() => {
          const r = this.step(tokens, s)
          return { logProbs: r.logits.logSoftmax(-1), state: r.state }
        }),
      reorder: (s, index) => reorderState(s, index),
    }
  }

  /**
   * Decodes from `state` (B rows) in eval mode: greedy by default, a batched beam search with
   * `beamWidth > 1`, sampling with `temperature > 0`. Per row, its hypotheses best first
   * (`tokens` without BOS and EOS). The tensors of `state` other than `keep` are disposed.
   */
  async decode(state: DecoderState, options: DecodeRunOptions, keep: readonly unknown[] = []): Promise<Hypothesis[][]> {
    const wasTraining = this.training
    this.eval()
    const dec = this.asDecoderStep()
    try {
      if (options === null || typeof options !== 'object') throw new ValueError('decode', 'options { maxLength } are required')
      checkOptions('decode', options, DECODE_RUN_OPTIONS)
      const common = { batchSize: state.h[0]!.shape[0]!, bos: BOS_ID, eos: EOS_ID, maxLength: options.maxLength }
      const K = options.beamWidth ?? 1
      if (K > 1 || (options.nBest ?? 1) > 1) {
        return await beamSearch(dec, state, { ...common, beamWidth: K, nBest: options.nBest ?? 1, lengthPenalty: options.lengthPenalty ?? 0 })
      }
      if ((options.temperature ?? 0) > 0) {
        return await sampleDecode(dec, state, {
          ...common,
          temperature: options.temperature!,
          ...(options.topK !== undefined ? { topK: options.topK } : {}),
          ...(options.topP !== undefined ? { topP: options.topP } : {}),
          ...(options.seed !== undefined ? { seed: options.seed } : {}),
        })
      }
      return await greedyDecode(dec, state, common)
    } finally {
      for (const t of tensorsOf(state)) if (!keep.includes(t)) t.dispose()
      this.train(wasTraining)
    }
  }

  /** Runs `fn` without gradients inside a scope: for building initial states to decode from. */
  static inference<T>(fn: () => T): T {
    return noGrad(() => tidy(fn))
  }
}

/** Selects (and repeats) rows of a decoder state: beams are reordered with it. */
export function reorderState(state: DecoderState, index: Tensor): DecoderState {
  return tidy(() => ({
    h: state.h.map((t) => indexSelect(t, 0, index)),
    c: state.c ? state.c.map((t) => indexSelect(t, 0, index)) : null,
    memory: state.memory ? state.memory.reorder(index) : null,
  }))
}
