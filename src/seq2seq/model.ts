/**
 * `Seq2Seq`: an encoder–decoder over token ids (embedding + stacked RNN/LSTM/GRU encoder, a
 * bridge of its final states, a decoder of step cells with optional attention), trained with
 * teacher forcing (scheduled sampling by ratio) and decoded by `decode.ts`.
 */

import type { Tensor } from '../tensor.js'
import { ShapeError, ValueError } from '../errors.js'
import { manualSeed, randUniform, seedState, setSeedState } from '../ops/random.js'
import { concat, reshape, slice, stack } from '../ops/shape.js'
import { tanh } from '../ops/elementwise.js'
import { argmax } from '../ops/index_ops.js'
import { indexSelect } from '../ops/index_ops.js'
import { lt, where } from '../ops/compare.js'
import { crossEntropy } from '../ops/loss.js'
import { cast } from '../ops/cast.js'
import { tensorsOf, tidy } from '../scope.js'
import { noGrad } from '../ops/grad.js'
import { Module } from '../nn/module.js'
import { Embedding } from '../nn/embedding.js'
import { Linear } from '../nn/linear.js'
import { Dropout } from '../nn/dropout.js'
import { RNN, type Lengths, type RNNBase } from '../nn/rnn.js'
import { LSTM } from '../nn/lstm.js'
import { GRU } from '../nn/gru.js'
import { GRUCell, LSTMCell, RNNCell } from '../nn/cells.js'
import { Attention, type AttentionMemory } from '../nn/attention.js'
import { beamSearch, greedyDecode, sampleDecode, type DecoderStep, type Hypothesis } from './decode.js'

/** The recurrent cell of the encoder and of the decoder. */
export type Seq2SeqCell = 'lstm' | 'gru' | 'rnn'

/**
 * The attention of the decoder: `'bahdanau'` (additive), `'luong'` (Luong's `general`
 * score, `hᵀ W s`), `'dot'` (Luong's `dot`, `hᵀ s`; needs equal sizes), or `'none'` (the
 * decoder sees the source only through the bridged state).
 */
export type Seq2SeqAttention = 'bahdanau' | 'luong' | 'dot' | 'none'

/** The special ids every `Seq2Seq` vocabulary shares (those of `TokenVocab`). */
export const PAD_ID = 0
export const BOS_ID = 1
export const EOS_ID = 2

/** Options of {@link Seq2Seq}; all of them are its `config`, saved in checkpoints. */
export interface Seq2SeqOptions {
  /** Source vocabulary size (ids 0..V−1; 0 is padding). */
  sourceVocabSize: number
  /** Target vocabulary size (0 padding, 1 BOS, 2 EOS). */
  targetVocabSize: number
  /** H: hidden size of the decoder, and of each encoder direction (default 128). */
  hiddenSize?: number
  /** E: embedding size of source and target tokens (default 64). */
  embeddingDim?: number
  /** L: stacked layers of the encoder and of the decoder (default 1). */
  numLayers?: number
  /** Cell of both sides (default `'lstm'`). */
  cell?: Seq2SeqCell
  /** Run the encoder in both directions (default false); the bridge then projects `2H → H`. */
  bidirectional?: boolean
  /** Default `'bahdanau'`. */
  attention?: Seq2SeqAttention
  /** A: size of the additive attention's hidden layer (default H). */
  attentionSize?: number
  /** Dropout between layers and before the output layer, in training mode (default 0). */
  dropout?: number
  /** Seed of the initialisation (default: the global generator, which is left as it was). */
  seed?: number
}

/** The config of a {@link Seq2Seq}, every option resolved. */
export type Seq2SeqConfig = Required<Omit<Seq2SeqOptions, 'seed'>> & { seed: number | null }

/** A batch for {@link Seq2Seq.loss} and {@link Seq2Seq.forward}, as `collatePairs` builds it. */
export interface Seq2SeqBatch {
  /** int32 `[S, B]`, padded with 0. */
  source: Tensor
  /** `[B]`, each in [1, S]. */
  sourceLengths: Lengths
  /** int32 `[T, B]`: BOS followed by the target, padded. */
  targetIn: Tensor
  /** int32 `[T, B]`: the target followed by EOS, padded with 0 (only for the loss). */
  targetOut?: Tensor
}

/** What {@link Seq2Seq.encode} returns: everything the decoder needs of the source. */
export interface EncodedSource {
  /** Encoder outputs `[S, B, D·H]`, zero past each row's length. */
  outputs: Tensor
  /** The decoder's initial state (the bridged encoder state). */
  state: DecoderState
}

/**
 * The decoder's state between steps: per layer `h [N, H]` (and `c [N, H]` for LSTM), and the
 * attention memory of the rows' sources (null without attention). N is B, or B·K in a beam.
 */
export interface DecoderState {
  h: Tensor[]
  c: Tensor[] | null
  memory: AttentionMemory | null
}

/** Options of {@link Seq2Seq.translate}. */
export interface TranslateOptions {
  /** The most tokens generated per row, the ending EOS included. */
  maxLength: number
  /** K: 1 (default) decodes greedily, more runs a batched beam search. */
  beamWidth?: number
  /** Hypotheses per row, best first (default 1, at most `beamWidth`). */
  nBest?: number
  /** α of the beam's GNMT length penalty (default 0). */
  lengthPenalty?: number
  /** Sample instead of taking the most likely token (greedy only; 0 is greedy). */
  temperature?: number
  topK?: number
  topP?: number
  seed?: number
}

/** Options of {@link Seq2Seq.forward}. */
export interface TeacherForcingOptions {
  /**
   * Probability that a step reads the true previous token rather than the model's own last
   * choice (scheduled sampling, drawn per row and step from the global generator). Default 1:
   * pure teacher forcing.
   */
  teacherForcing?: number
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

/**
 * An encoder–decoder over token ids.
 *
 * Shapes: S source steps, T target steps, B batch, E embedding, H hidden, D directions of the
 * encoder, V_s / V_t vocabularies, L layers.
 *
 *   encoder:  e = Embedding_s(source) [S, B, E] → RNN/LSTM/GRU (L, D) → outputs [S, B, D·H], hN [L·D, B, H]
 *   bridge:   h⁰ₗ = tanh(W_b [hN_fwd; hN_bwd] + b) when D = 2, else hNₗ (likewise cN for LSTM)
 *   decoder, at step t with the previous token yₜ₋₁:
 *     cₜ = Attention(query = top-layer hₜ₋₁, keys = outputs, masked by the source lengths)
 *     xₜ = [Embedding_t(yₜ₋₁); cₜ]      (without attention: Embedding_t(yₜ₋₁))
 *     hₜ⁽ˡ⁾ = cell⁽ˡ⁾(xₜ or hₜ⁽ˡ⁻¹⁾, hₜ₋₁⁽ˡ⁾)
 *     logitsₜ = W_o [hₜ⁽ᴸ⁾; cₜ] + b_o     [B, V_t]
 *
 * The attention query is the state before the step (Bahdanau's order) for every score; the
 * context also feeds the output layer (Luong's). Parameter names: `srcEmbedding.weight`,
 * `encoder.weight_ih_l0`, …, `bridgeH.weight`, `bridgeC.weight` (bidirectional only),
 * `tgtEmbedding.weight`, `attention.*`, `decoder0.weight_ih`, …, `head.weight`, `head.bias`.
 *
 * ```ts
 * const model = new Seq2Seq({ sourceVocabSize: vs.size, targetVocabSize: vt.size, hiddenSize: 128 })
 * const loss = model.loss(collatePairs(pairs))   // mean cross-entropy over non-padding targets
 * const best = await model.translate(source, sourceLengths, { beamWidth: 4, maxLength: 40 })
 * ```
 */
export class Seq2Seq extends Module {
  readonly config: Seq2SeqConfig
  readonly srcEmbedding: Embedding
  readonly encoder: RNNBase
  readonly bridgeH: Linear | null
  readonly bridgeC: Linear | null
  readonly tgtEmbedding: Embedding
  readonly attention: Attention | null
  readonly decoderCells: Array<LSTMCell | GRUCell | RNNCell>
  readonly drop: Dropout | null
  readonly head: Linear

  constructor(options: Seq2SeqOptions) {
    super()
    if (options === null || typeof options !== 'object') throw new ValueError('Seq2Seq', 'options { sourceVocabSize, targetVocabSize } are required')
    const posInt = (name: keyof Seq2SeqOptions, v: unknown, min = 1): number => {
      if (!Number.isInteger(v) || (v as number) < min) throw new ValueError('Seq2Seq', `${name} must be an integer ≥ ${min}, got ${String(v)}`)
      return v as number
    }
    const cell = options.cell ?? 'lstm'
    if (cell !== 'lstm' && cell !== 'gru' && cell !== 'rnn') throw new ValueError('Seq2Seq', `cell must be 'lstm', 'gru' or 'rnn', got '${String(cell)}'`)
    const attention = options.attention ?? 'bahdanau'
    if (!['bahdanau', 'luong', 'dot', 'none'].includes(attention)) {
      throw new ValueError('Seq2Seq', `attention must be 'bahdanau', 'luong', 'dot' or 'none', got '${String(attention)}'`)
    }
    const bidirectional = options.bidirectional ?? false
    if (typeof bidirectional !== 'boolean') throw new ValueError('Seq2Seq', `bidirectional must be a boolean, got ${typeof bidirectional}`)
    const dropout = options.dropout ?? 0
    if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new ValueError('Seq2Seq', `dropout must be in [0, 1), got ${String(dropout)}`)
    const H = posInt('hiddenSize', options.hiddenSize ?? 128)
    const config: Seq2SeqConfig = {
      sourceVocabSize: posInt('sourceVocabSize', options.sourceVocabSize, 1),
      targetVocabSize: posInt('targetVocabSize', options.targetVocabSize, EOS_ID + 1),
      hiddenSize: H,
      embeddingDim: posInt('embeddingDim', options.embeddingDim ?? 64),
      numLayers: posInt('numLayers', options.numLayers ?? 1),
      cell,
      bidirectional,
      attention,
      attentionSize: posInt('attentionSize', options.attentionSize ?? H),
      dropout,
      seed: options.seed ?? null,
    }
    if (options.seed !== undefined) posInt('seed', options.seed, 0)
    this.config = config
    const { embeddingDim: E, numLayers: L } = config
    const D = bidirectional ? 2 : 1
    const K = D * H
    if (attention === 'dot' && K !== H) {
      throw new ValueError('Seq2Seq', `attention 'dot' needs the encoder outputs (${K}) and the decoder state (${H}) to have one size; a bidirectional encoder needs 'luong' or 'bahdanau'`)
    }
    const saved = options.seed !== undefined ? seedState() : null
    if (options.seed !== undefined) manualSeed(options.seed)
    try {
      this.srcEmbedding = this.registerModule('srcEmbedding', new Embedding(config.sourceVocabSize, E))
      const rnnOpts = { numLayers: L, dropout, bidirectional }
      this.encoder = this.registerModule('encoder', cell === 'lstm' ? new LSTM(E, H, rnnOpts) : cell === 'gru' ? new GRU(E, H, rnnOpts) : new RNN(E, H, rnnOpts))
      // The bridge exists only where the sizes differ: a bidirectional encoder's two final
      // states per layer become one decoder state.
      this.bridgeH = D === 2 ? this.registerModule('bridgeH', new Linear(2 * H, H)) : null
      this.bridgeC = D === 2 && cell === 'lstm' ? this.registerModule('bridgeC', new Linear(2 * H, H)) : null
      this.tgtEmbedding = this.registerModule('tgtEmbedding', new Embedding(config.targetVocabSize, E))
      this.attention =
        attention === 'none'
          ? null
          : this.registerModule(
              'attention',
              new Attention(H, K, attention === 'bahdanau' ? { score: 'bahdanau', attentionSize: config.attentionSize } : { score: attention === 'luong' ? 'general' : 'dot' }),
            )
      const ctx = this.attention ? K : 0
      this.decoderCells = []
      for (let l = 0; l < L; l++) {
        const inSize = l === 0 ? E + ctx : H
        const c = cell === 'lstm' ? new LSTMCell(inSize, H) : cell === 'gru' ? new GRUCell(inSize, H) : new RNNCell(inSize, H)
        this.decoderCells.push(this.registerModule(`decoder${l}`, c))
      }
      this.drop = dropout > 0 ? this.registerModule('drop', new Dropout(dropout)) : null
      this.head = this.registerModule('head', new Linear(H + ctx, config.targetVocabSize))
    } finally {
      if (saved) setSeedState(saved)
    }
  }

  /**
   * Runs the encoder over `source` (int32 `[S, B]`, 0-padded, with each row's length) and
   * bridges its final state into the decoder's initial state.
   */
  encode(source: Tensor, sourceLengths: Lengths): EncodedSource {
    if (source.rank !== 2 || source.dtype !== 'int32') {
      throw new ShapeError('Seq2Seq.encode', `expected int32 source ids [S, B], got ${source.dtype} ${fmt(source.shape)}`)
    }
    const { hiddenSize: H, numLayers: L, cell } = this.config
    const B = source.shape[1]!
    return tidy(() => {
      const e = this.srcEmbedding.forward(source)
      const r = this.encoder.forward(e, { lengths: sourceLengths })
      const layerStates = (all: Tensor, bridge: Linear | null): Tensor[] => {
        const out: Tensor[] = []
        if (bridge === null) {
          for (let l = 0; l < L; l++) out.push(reshape(slice(all, 0, l, 1), [B, H]))
        } else {
          for (let l = 0; l < L; l++) {
            const both = reshape(slice(all, 0, 2 * l, 2), [2, B, H])
            const fwd = reshape(slice(both, 0, 0, 1), [B, H])
            const bwd = reshape(slice(both, 0, 1, 1), [B, H])
            out.push(tanh(bridge.forward(concat([fwd, bwd], 1))))
          }
        }
        return out
      }
      const h = layerStates(r.hN, this.bridgeH)
      const c = cell === 'lstm' ? layerStates(r.cN!, this.bridgeC) : null
      const memory = this.attention ? this.attention.memory(r.output, sourceLengths) : null
      return { outputs: r.output, state: { h, c, memory } }
    })
  }

  /** One decoder step: previous tokens int32 `[N]` and the state → logits `[N, V_t]` and the new state. */
  step(tokens: Tensor, state: DecoderState): { logits: Tensor; state: DecoderState } {
    return tidy(() => {
      const e = this.tgtEmbedding.forward(tokens)
      const context = this.attention && state.memory ? this.attention.forward(state.h[state.h.length - 1]!, state.memory).context : null
      let x = context ? concat([e, context], 1) : e
      const h: Tensor[] = []
      const c: Tensor[] | null = state.c ? [] : null
      for (let l = 0; l < this.decoderCells.length; l++) {
        if (l > 0 && this.drop) x = this.drop.forward(x)
        const cellModule = this.decoderCells[l]!
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
      return { logits: this.head.forward(out), state: { h, c, memory: state.memory } }
    })
  }

  /**
   * Teacher-forced decoding of a whole batch: logits `[T, B, V_t]` for every target position.
   * With `teacherForcing < 1`, each row and step reads the model's own previous argmax instead
   * of the true token with probability `1 − teacherForcing` (scheduled sampling).
   */
  override forward(batch: Seq2SeqBatch, options: TeacherForcingOptions = {}): Tensor {
    const ratio = options.teacherForcing ?? 1
    if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) throw new ValueError('Seq2Seq.forward', `teacherForcing must be in [0, 1], got ${String(ratio)}`)
    const { source, sourceLengths, targetIn } = checkBatch('Seq2Seq.forward', batch, false)
    const T = targetIn.shape[0]!
    const B = targetIn.shape[1]!
    if (source.shape[1] !== B) throw new ShapeError('Seq2Seq.forward', `source and targetIn must have the same batch size, got ${fmt(source.shape)} and ${fmt(targetIn.shape)}`)
    return tidy(() => {
      let state = this.encode(source, sourceLengths).state
      const steps: Tensor[] = []
      let prevChoice: Tensor | null = null
      for (let t = 0; t < T; t++) {
        let tokens = reshape(slice(targetIn, 0, t, 1), [B])
        if (ratio < 1 && prevChoice !== null) {
          const useTruth = lt(randUniform([B], 0, 1), ratio)
          tokens = where(useTruth, tokens, prevChoice)
        }
        const r = this.step(tokens, state)
        state = r.state
        steps.push(r.logits)
        if (ratio < 1) prevChoice = cast(argmax(r.logits.detach(), 1), 'int32')
      }
      return stack(steps, 0)
    })
  }

  /**
   * Mean cross-entropy of the teacher-forced logits against `targetOut`, over the non-padding
   * targets only (padding is id 0).
   */
  loss(batch: Seq2SeqBatch, options: TeacherForcingOptions = {}): Tensor {
    const { targetOut } = checkBatch('Seq2Seq.loss', batch, true)
    return tidy(() => {
      const logits = this.forward(batch, options)
      const [T, B, V] = logits.shape as [number, number, number]
      return crossEntropy(reshape(logits, [T * B, V]), reshape(targetOut!, [T * B]), { ignoreIndex: PAD_ID })
    })
  }

  /**
   * The decoder as `decode.ts` drives it, and its initial state for `source` (encoded without
   * gradients): pass both to `greedyDecode`, `sampleDecode` or `beamSearch`, then dispose the
   * state's tensors (the decoders free only the states they make), except a `sourceLengths`
   * tensor you passed, which the state shares. {@link translate} does all of this.
   */
  decoding(source: Tensor, sourceLengths: Lengths): [DecoderStep<DecoderState>, DecoderState] {
    const state = noGrad(() =>
      tidy(() => {
        const enc = this.encode(source, sourceLengths)
        return enc.state
      }),
    )
    const step: DecoderStep<DecoderState> = {
      step: (tokens, s) =>
        tidy(() => {
          const r = this.step(tokens, s)
          return { logProbs: r.logits.logSoftmax(-1), state: r.state }
        }),
      reorder: (s, index) => reorderState(s, index),
    }
    return [step, state]
  }

  /**
   * Decodes `source` (int32 `[S, B]` with each row's length) in eval mode: greedy by default,
   * a batched beam search with `beamWidth > 1`, sampling with `temperature > 0`. Per row, its
   * hypotheses best first (`tokens` without BOS and EOS).
   */
  async translate(source: Tensor, sourceLengths: Lengths, options: TranslateOptions): Promise<Hypothesis[][]> {
    if (options === null || typeof options !== 'object') throw new ValueError('Seq2Seq.translate', 'options { maxLength } are required')
    const wasTraining = this.training
    this.eval()
    const [dec, init] = this.decoding(source, sourceLengths)
    try {
      const common = { batchSize: source.shape[1]!, bos: BOS_ID, eos: EOS_ID, maxLength: options.maxLength }
      const K = options.beamWidth ?? 1
      if (K > 1 || (options.nBest ?? 1) > 1) {
        return await beamSearch(dec, init, { ...common, beamWidth: K, nBest: options.nBest ?? 1, lengthPenalty: options.lengthPenalty ?? 0 })
      }
      if ((options.temperature ?? 0) > 0) {
        const o = { ...common, temperature: options.temperature! }
        return await sampleDecode(dec, init, {
          ...o,
          ...(options.topK !== undefined ? { topK: options.topK } : {}),
          ...(options.topP !== undefined ? { topP: options.topP } : {}),
          ...(options.seed !== undefined ? { seed: options.seed } : {}),
        })
      }
      return await greedyDecode(dec, init, common)
    } finally {
      // The state holds the caller's lengths tensor when one was given: free only ours.
      for (const t of tensorsOf(init)) if (t !== source && t !== sourceLengths) t.dispose()
      this.train(wasTraining)
    }
  }

  override extraRepr(): string {
    const c = this.config
    return `cell='${c.cell}', hiddenSize=${c.hiddenSize}, numLayers=${c.numLayers}, bidirectional=${c.bidirectional}, attention='${c.attention}'`
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

function checkBatch(op: string, batch: Seq2SeqBatch, needTarget: boolean): Seq2SeqBatch {
  if (batch === null || typeof batch !== 'object') throw new ValueError(op, `expected a batch { source, sourceLengths, targetIn, targetOut }, got ${batch === null ? 'null' : typeof batch}`)
  const ids = (name: 'source' | 'targetIn' | 'targetOut') => {
    const t = batch[name]
    if (t === undefined || t === null || typeof (t as Tensor).shape !== 'object') throw new ValueError(op, `batch.${name} must be an int32 Tensor`)
    if (t.rank !== 2 || t.dtype !== 'int32') throw new ShapeError(op, `expected batch.${name} int32 [·, B], got ${t.dtype} ${fmt(t.shape)}`)
  }
  ids('source')
  ids('targetIn')
  if (needTarget) {
    ids('targetOut')
    const a = batch.targetIn.shape
    const b = batch.targetOut!.shape
    if (a[0] !== b[0] || a[1] !== b[1]) throw new ShapeError(op, `expected batch.targetOut with targetIn's shape ${fmt(a)}, got ${fmt(b)}`)
  }
  if (batch.sourceLengths === undefined || batch.sourceLengths === null) throw new ValueError(op, 'batch.sourceLengths is required')
  return batch
}
