/**
 * `Seq2Seq`: an encoder–decoder over token ids (embedding + stacked RNN/LSTM/GRU encoder, a
 * bridge of its final states, a decoder of step cells with optional attention), trained with
 * teacher forcing (scheduled sampling by ratio) and decoded by `decode.ts`.
 */

import { Tensor } from '../tensor.js'
import { checkOptions, optionKeys, typeError } from '../validate.js'
import { ShapeError, ValueError } from '../errors.js'
import { manualSeed, seedState, setSeedState } from '../ops/random.js'
import { concat, reshape, slice } from '../ops/shape.js'
import { tanh } from '../ops/elementwise.js'
import { crossEntropy } from '../ops/loss.js'
import { tidy, tidyAsync } from '../scope.js'
import { Module } from '../nn/module.js'
import { Embedding } from '../nn/embedding.js'
import { Linear } from '../nn/linear.js'
import { RNN, type Lengths, type RNNBase } from '../nn/rnn.js'
import { LSTM } from '../nn/lstm.js'
import { GRU } from '../nn/gru.js'
import type { DecoderStep, Hypothesis } from './decode.js'
import {
  AttentionDecoder,
  BOS_ID,
  EOS_ID,
  PAD_ID,
  type DecodeRunOptions,
  type DecoderAttention,
  type DecoderCell,
  type DecoderState,
  type TeacherForcingOptions,
  DECODE_RUN_OPTIONS,
  TEACHER_FORCING_OPTIONS,
} from './decoder.js'

export { BOS_ID, EOS_ID, PAD_ID }

/** The recurrent cell of the encoder and of the decoder. */
export type Seq2SeqCell = DecoderCell

/**
 * The attention of the decoder: `'bahdanau'` (additive), `'luong'` (Luong's `general`
 * score, `hᵀ W s`), `'dot'` (Luong's `dot`, `hᵀ s`; needs equal sizes), or `'none'` (the
 * decoder sees the source only through the bridged state).
 */
export type Seq2SeqAttention = DecoderAttention

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

const SEQ2SEQ_OPTIONS = optionKeys<Seq2SeqOptions>({
  sourceVocabSize: true,
  targetVocabSize: true,
  hiddenSize: true,
  embeddingDim: true,
  numLayers: true,
  cell: true,
  bidirectional: true,
  attention: true,
  attentionSize: true,
  dropout: true,
  seed: true,
})

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

/** Options of {@link Seq2Seq.translate}. */
export type TranslateOptions = DecodeRunOptions

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
 *   decoder:  an {@link AttentionDecoder} over the encoder outputs (masked by the source
 *             lengths), from the bridged state: logits [T, B, V_t]
 *
 * Parameter names: `srcEmbedding.weight`, `encoder.weight_ih_l0`, …, `bridgeH.weight`,
 * `bridgeC.weight` (bidirectional only), `decoder.embedding.weight`, `decoder.attention.*`,
 * `decoder.cell0.weight_ih`, …, `decoder.head.weight`, `decoder.head.bias`.
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
  readonly decoder: AttentionDecoder

  constructor(options: Seq2SeqOptions) {
    super()
    if (options === null || typeof options !== 'object') throw new ValueError('Seq2Seq', 'options { sourceVocabSize, targetVocabSize } are required')
    checkOptions('Seq2Seq', options, SEQ2SEQ_OPTIONS)
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
    if (typeof bidirectional !== 'boolean') throw typeError('Seq2Seq', 'bidirectional', 'a boolean', bidirectional)
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
    if (attention === 'dot' && D * H !== H) {
      throw new ValueError('Seq2Seq', `attention 'dot' needs the encoder outputs (${D * H}) and the decoder state (${H}) to have one size; a bidirectional encoder needs 'luong' or 'bahdanau'`)
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
      this.decoder = this.registerModule(
        'decoder',
        new AttentionDecoder({
          vocabSize: config.targetVocabSize,
          embeddingDim: E,
          hiddenSize: H,
          numLayers: L,
          cell,
          memorySize: D * H,
          attention,
          attentionSize: config.attentionSize,
          dropout,
        }),
      )
    } finally {
      if (saved) setSeedState(saved)
    }
  }

  /**
   * Runs the encoder over `source` (int32 `[S, B]`, 0-padded, with each row's length) and
   * bridges its final state into the decoder's initial state.
   */
  encode(source: Tensor, sourceLengths: Lengths): EncodedSource {
    if (!(source instanceof Tensor)) throw typeError('Seq2Seq.encode', "argument 'source'", 'an int32 Tensor of source ids', source)
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
        for (let l = 0; l < L; l++) {
          if (bridge === null) out.push(reshape(slice(all, 0, l, 1), [B, H]))
          else {
            const both = slice(all, 0, 2 * l, 2)
            const fwd = reshape(slice(both, 0, 0, 1), [B, H])
            const bwd = reshape(slice(both, 0, 1, 1), [B, H])
            out.push(tanh(bridge.forward(concat([fwd, bwd], 1))))
          }
        }
        return out
      }
      const h = layerStates(r.hN, this.bridgeH)
      const c = cell === 'lstm' ? layerStates(r.cN!, this.bridgeC) : null
      return { outputs: r.output, state: this.decoder.initialState(h, c, r.output, sourceLengths) }
    })
  }

  /**
   * Teacher-forced decoding of a whole batch: logits `[T, B, V_t]` for every target position.
   * With `teacherForcing < 1`, each row and step reads the model's own previous argmax instead
   * of the true token with probability `1 − teacherForcing` (scheduled sampling).
   */
  override forward(batch: Seq2SeqBatch, options: TeacherForcingOptions = {}): Tensor {
    const { source, sourceLengths, targetIn } = checkBatch('Seq2Seq.forward', batch, false)
    checkOptions('Seq2Seq.forward', options, TEACHER_FORCING_OPTIONS)
    if (source.shape[1] !== targetIn.shape[1]) throw new ShapeError('Seq2Seq.forward', `source and targetIn must have the same batch size, got ${fmt(source.shape)} and ${fmt(targetIn.shape)}`)
    return tidy(() => this.decoder.forward(targetIn, this.encode(source, sourceLengths).state, options).logits)
  }

  /**
   * Mean cross-entropy of the teacher-forced logits against `targetOut`, over the non-padding
   * targets only (padding is id 0).
   */
  loss(batch: Seq2SeqBatch, options: TeacherForcingOptions = {}): Tensor {
    const { targetOut } = checkBatch('Seq2Seq.loss', batch, true)
    checkOptions('Seq2Seq.loss', options, TEACHER_FORCING_OPTIONS)
    return tidy(() => {
      const logits = this.forward(batch, options)
      const [T, B, V] = logits.shape as [number, number, number]
      return crossEntropy(reshape(logits, [T * B, V]), reshape(targetOut!, [T * B]), { ignoreIndex: PAD_ID })
    })
  }

  /**
   * {@link loss}, giving the event loop a turn every few decoder steps while the graph is built
   * (see `AttentionDecoder.forwardAsync`): what a training loop in a server should await.
   * Scheduled sampling draws from the global generator across those turns, so other code that
   * draws from it meanwhile changes the draws (as it would between two steps).
   */
  async lossAsync(batch: Seq2SeqBatch, options: TeacherForcingOptions = {}): Promise<Tensor> {
    const { source, sourceLengths, targetIn, targetOut } = checkBatch('Seq2Seq.lossAsync', batch, true)
    checkOptions('Seq2Seq.lossAsync', options, TEACHER_FORCING_OPTIONS)
    if (source.shape[1] !== targetIn.shape[1]) throw new ShapeError('Seq2Seq.lossAsync', `source and targetIn must have the same batch size, got ${fmt(source.shape)} and ${fmt(targetIn.shape)}`)
    return tidyAsync(async () => {
      const state = this.encode(source, sourceLengths).state
      const { logits } = await this.decoder.forwardAsync(targetIn, state, options)
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
    const state = AttentionDecoder.inference(() => this.encode(source, sourceLengths).state)
    return [this.decoder.asDecoderStep(), state]
  }

  /**
   * Decodes `source` (int32 `[S, B]` with each row's length) in eval mode: greedy by default,
   * a batched beam search with `beamWidth > 1`, sampling with `temperature > 0`. Per row, its
   * hypotheses best first (`tokens` without BOS and EOS).
   */
  async translate(source: Tensor, sourceLengths: Lengths, options: TranslateOptions): Promise<Hypothesis[][]> {
    if (options === null || typeof options !== 'object') throw new ValueError('Seq2Seq.translate', 'options { maxLength } are required')
    checkOptions('Seq2Seq.translate', options, DECODE_RUN_OPTIONS)
    const wasTraining = this.training
    this.eval()
    try {
      const state = AttentionDecoder.inference(() => this.encode(source, sourceLengths).state)
      return await this.decoder.decode(state, options, [source, sourceLengths])
    } finally {
      this.train(wasTraining)
    }
  }

  override extraRepr(): string {
    const c = this.config
    return `cell='${c.cell}', hiddenSize=${c.hiddenSize}, numLayers=${c.numLayers}, bidirectional=${c.bidirectional}, attention='${c.attention}'`
  }
}

function checkBatch(op: string, batch: Seq2SeqBatch, needTarget: boolean): Seq2SeqBatch {
  if (batch === null || typeof batch !== 'object') throw new ValueError(op, `expected a batch { source, sourceLengths, targetIn, targetOut }, got ${batch === null ? 'null' : typeof batch}`)
  const ids = (name: 'source' | 'targetIn' | 'targetOut') => {
    const t = batch[name]
    if (!(t instanceof Tensor)) throw typeError(op, `batch.${name}`, 'an int32 Tensor', t)
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
