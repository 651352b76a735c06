/**
 * `ImageCaptioner` (Show, Attend and Tell): a small CNN encodes an image into a grid of region
 * features, and the shared `AttentionDecoder` writes the caption while attending over the
 * regions; or it starts from precomputed features of an external vision model.
 */

import { Tensor } from '../tensor.js'
import { checkOptions, optionKeys, typeError } from '../validate.js'
import { ShapeError, ValueError } from '../errors.js'
import { manualSeed, seedState, setSeedState } from '../ops/random.js'
import { reshape, transpose } from '../ops/shape.js'
import { tensor } from '../ops/factories.js'
import { indexSelect } from '../ops/index_ops.js'
import { mean } from '../ops/reduce.js'
import { tanh } from '../ops/elementwise.js'
import { crossEntropy } from '../ops/loss.js'
import { tidy, tidyAsync } from '../scope.js'
import { Module } from '../nn/module.js'
import { Linear } from '../nn/linear.js'
import { Sequential } from '../nn/sequential.js'
import { ReLU } from '../nn/activation.js'
import { Conv2d } from '../nn/conv.js'
import { BatchNorm2d } from '../nn/norm.js'
import { MaxPool2d } from '../nn/pool.js'
import type { Hypothesis } from './decode.js'
import { AttentionDecoder, BOS_ID, DECODE_RUN_OPTIONS, EOS_ID, PAD_ID, type DecodeRunOptions, type DecoderAttention, type DecoderState } from './decoder.js'

/** Options of {@link ImageCaptioner}; all of them are its `config`, saved in checkpoints. */
export interface ImageCaptionerOptions {
  /** V: caption vocabulary size (0 padding, 1 BOS, 2 EOS). */
  vocabSize: number
  /**
   * Output channels of the CNN's blocks (each: 3×3 conv, batch norm, ReLU, 2×2 max pool);
   * default `[32, 64, 96]`. An image of side N becomes a grid of (N / 2^blocks)² regions.
   */
  channels?: number[]
  /** Image channels (default 3). */
  inChannels?: number
  /**
   * Use precomputed features of size D instead of the CNN: the input of every method is then
   * features `[B, R, D]` (or `[B, D]`, one region) rather than images.
   */
  featureSize?: number
  /** H: the decoder's hidden size (default 256). */
  hiddenSize?: number
  /** E: word embedding size (default 64). */
  embeddingDim?: number
  /** Default `'bahdanau'`. */
  attention?: Exclude<DecoderAttention, 'none'>
  /** Dropout before the output layer, in training mode (default 0). */
  dropout?: number
  /** Seed of the initialisation (default: the global generator, which is left as it was). */
  seed?: number
}

const IMAGE_CAPTIONER_OPTIONS = optionKeys<ImageCaptionerOptions>({
  vocabSize: true,
  channels: true,
  inChannels: true,
  featureSize: true,
  hiddenSize: true,
  embeddingDim: true,
  attention: true,
  dropout: true,
  seed: true,
})

/** The config of an {@link ImageCaptioner}. */
export interface ImageCaptionerConfig {
  vocabSize: number
  channels: number[]
  inChannels: number
  featureSize: number | null
  hiddenSize: number
  embeddingDim: number
  attention: Exclude<DecoderAttention, 'none'>
  dropout: number
  seed: number | null
}

/** A training batch: images `[B, C, H, W]` (or features) and the padded captions. */
export interface CaptionBatch {
  /** Images `[B, C, H, W]`, or features `[B, R, D]` / `[B, D]` with `featureSize`. */
  input: Tensor
  /** int32 `[T, B]`: BOS followed by the caption, padded with 0. */
  targetIn: Tensor
  /** int32 `[T, B]`: the caption followed by EOS, padded with 0. */
  targetOut: Tensor
}

/** One caption of {@link ImageCaptioner.caption}. */
export interface Caption extends Hypothesis {
  /** Per word (and the ending EOS), the attention over the R regions, each summing to 1. */
  attention: Float32Array[]
  /** The grid of the regions, `[rows, cols]` (`[1, R]` for features without a grid). */
  grid: [number, number]
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`

/**
 * An image captioner with attention over image regions.
 *
 * Shapes: B images, C channels, N side, R regions, D feature size, T caption steps, H hidden.
 *
 *   CNN:      x [B, C, N, N] → blocks of conv3×3–BN–ReLU–maxpool2 → [B, D, n, n] → regions [B, R = n², D]
 *   state:    h⁰ = tanh(W_h mean_r(f) + b_h), c⁰ = tanh(W_c mean_r(f) + b_c)
 *   decoder:  an {@link AttentionDecoder} over the regions → logits [T, B, V]
 *
 * Parameter names: `cnn.0.weight` (conv), `cnn.1.weight`/`running_mean` (batch norm), …,
 * `initH.*`, `initC.*`, `decoder.*`.
 */
export class ImageCaptioner extends Module {
  readonly config: ImageCaptionerConfig
  readonly cnn: Sequential | null
  readonly initH: Linear
  readonly initC: Linear
  readonly decoder: AttentionDecoder

  constructor(options: ImageCaptionerOptions) {
    super()
    const O = 'ImageCaptioner'
    if (options === null || typeof options !== 'object') throw new ValueError(O, 'options { vocabSize } are required')
    checkOptions(O, options, IMAGE_CAPTIONER_OPTIONS)
    const posInt = (name: string, v: unknown, min = 1): number => {
      if (!Number.isInteger(v) || (v as number) < min) throw new ValueError(O, `${name} must be an integer ≥ ${min}, got ${String(v)}`)
      return v as number
    }
    const channels = options.channels ?? [32, 64, 96]
    if (!Array.isArray(channels) || channels.length === 0) throw new ValueError(O, `channels must be a non-empty array of positive integers, got ${String(channels)}`)
    channels.forEach((c, i) => posInt(`channels[${i}]`, c))
    const attention = options.attention ?? 'bahdanau'
    if (!['bahdanau', 'luong', 'dot'].includes(attention)) throw new ValueError(O, `attention must be 'bahdanau', 'luong' or 'dot', got '${String(attention)}'`)
    const dropout = options.dropout ?? 0
    if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new ValueError(O, `dropout must be in [0, 1), got ${String(dropout)}`)
    const config: ImageCaptionerConfig = {
      vocabSize: posInt('vocabSize', options.vocabSize, EOS_ID + 1),
      channels: [...channels],
      inChannels: posInt('inChannels', options.inChannels ?? 3),
      featureSize: options.featureSize === undefined ? null : posInt('featureSize', options.featureSize),
      hiddenSize: posInt('hiddenSize', options.hiddenSize ?? 256),
      embeddingDim: posInt('embeddingDim', options.embeddingDim ?? 64),
      attention,
      dropout,
      seed: options.seed === undefined ? null : posInt('seed', options.seed, 0),
    }
    this.config = config
    const D = config.featureSize ?? channels[channels.length - 1]!
    const H = config.hiddenSize
    const saved = options.seed !== undefined ? seedState() : null
    if (options.seed !== undefined) manualSeed(options.seed)
    try {
      if (config.featureSize === null) {
        const layers = []
        let c = config.inChannels
        for (const out of channels) {
          layers.push(new Conv2d(c, out, 3, { padding: 1, bias: false }), new BatchNorm2d(out), new ReLU(), new MaxPool2d(2))
          c = out
        }
        this.cnn = this.registerModule('cnn', new Sequential(...layers))
      } else this.cnn = null
      this.initH = this.registerModule('initH', new Linear(D, H))
      this.initC = this.registerModule('initC', new Linear(D, H))
      this.decoder = this.registerModule(
        'decoder',
        new AttentionDecoder({ vocabSize: config.vocabSize, embeddingDim: config.embeddingDim, hiddenSize: H, cell: 'lstm', memorySize: D, attention, dropout }),
      )
    } finally {
      if (saved) setSeedState(saved)
    }
  }

  /** The feature size D the decoder attends over. */
  get featureSize(): number {
    return this.config.featureSize ?? this.config.channels[this.config.channels.length - 1]!
  }

  /**
   * Region features `[B, R, D]` and their grid: the CNN's output for images `[B, C, N, N]`, or
   * the given features (`[B, R, D]`, or `[B, D]` as one region).
   */
  encode(input: Tensor): { features: Tensor; grid: [number, number] } {
    const O = 'ImageCaptioner.encode'
    if (!(input instanceof Tensor)) throw typeError(O, "argument 'input'", 'a Tensor', input)
    if (this.cnn === null) {
      const D = this.featureSize
      if (input.rank === 2 && input.shape[1] === D) return { features: reshape(input, [input.shape[0]!, 1, D]), grid: [1, 1] }
      if (input.rank !== 3 || input.shape[2] !== D) throw new ShapeError(O, `expected features [B, R, ${D}] or [B, ${D}], got ${fmt(input.shape)}`)
      return { features: input, grid: [1, input.shape[1]!] }
    }
    const C = this.config.inChannels
    if (input.rank !== 4 || input.shape[1] !== C) throw new ShapeError(O, `expected images [B, ${C}, H, W], got ${fmt(input.shape)}`)
    const k = 2 ** this.config.channels.length
    if (input.shape[2]! < k || input.shape[3]! < k) throw new ShapeError(O, `expected images of at least ${k}×${k} pixels (${this.config.channels.length} pooling blocks), got ${input.shape[2]}×${input.shape[3]}`)
    return tidy(() => {
      const f = this.cnn!.forward(input) // [B, D, n, m]
      const [B, D, n, m] = f.shape as [number, number, number, number]
      return { features: transpose(reshape(f, [B, D, n * m]), 1, 2), grid: [n, m] as [number, number] }
    })
  }

  /** The decoder's initial state from region features `[B, R, D]`: the mean region sets h and c. */
  initialState(features: Tensor): DecoderState {
    return tidy(() => {
      const avg = mean(features, 1)
      const h = tanh(this.initH.forward(avg))
      const c = tanh(this.initC.forward(avg))
      return this.decoder.initialState([h], [c], transpose(features, 0, 1))
    })
  }

  /** Teacher-forced logits `[T, B, V]` of a batch. */
  override forward(batch: CaptionBatch): Tensor {
    return tidy(() => this.decoder.forward(batch.targetIn, this.initialState(this.encode(batch.input).features)).logits)
  }

  /** Mean cross-entropy over the non-padding caption tokens. */
  loss(batch: CaptionBatch): Tensor {
    this.#checkBatch('ImageCaptioner.loss', batch)
    return tidy(() => {
      const logits = this.forward(batch)
      const [T, B, V] = logits.shape as [number, number, number]
      return crossEntropy(reshape(logits, [T * B, V]), reshape(batch.targetOut, [T * B]), { ignoreIndex: PAD_ID })
    })
  }

  #checkBatch(O: string, batch: CaptionBatch): void {
    if (batch === null || typeof batch !== 'object') throw new ValueError(O, 'expected a batch { input, targetIn, targetOut }')
    for (const k of ['targetIn', 'targetOut'] as const) {
      const t = batch[k]
      if (t?.rank !== 2 || t.dtype !== 'int32') throw new ShapeError(O, `expected batch.${k} int32 [T, B], got ${t ? `${t.dtype} ${fmt(t.shape)}` : String(t)}`)
    }
    if (batch.input?.shape?.[0] !== batch.targetIn.shape[1]) throw new ShapeError(O, `expected ${batch.targetIn.shape[1]} inputs (targetIn ${fmt(batch.targetIn.shape)}), got ${fmt(batch.input?.shape ?? [])}`)
  }

  /** {@link loss}, giving the event loop a turn every few decoder steps (`AttentionDecoder.forwardAsync`). */
  async lossAsync(batch: CaptionBatch): Promise<Tensor> {
    this.#checkBatch('ImageCaptioner.lossAsync', batch)
    return tidyAsync(async () => {
      const state = this.initialState(this.encode(batch.input).features)
      const { logits } = await this.decoder.forwardAsync(batch.targetIn, state)
      const [T, B, V] = logits.shape as [number, number, number]
      return crossEntropy(reshape(logits, [T * B, V]), reshape(batch.targetOut, [T * B]), { ignoreIndex: PAD_ID })
    })
  }

  /**
   * Captions images `[B, C, H, W]` (or features): greedy by default, beam search with
   * `beamWidth > 1`. Per image, its captions best first, each with the attention over the
   * regions at every word (from one teacher-forced pass over the chosen words).
   */
  async caption(input: Tensor, options: DecodeRunOptions): Promise<Caption[][]> {
    if (options === null || typeof options !== 'object') throw new ValueError('ImageCaptioner.caption', 'options { maxLength } are required')
    checkOptions('ImageCaptioner.caption', options, DECODE_RUN_OPTIONS)
    const wasTraining = this.training
    this.eval()
    try {
      const { state, grid, features } = AttentionDecoder.inference(() => {
        const e = this.encode(input)
        return { state: this.initialState(e.features), grid: e.grid, features: e.features }
      })
      const hyps = await this.decoder.decode(state, options, [input, features])
      // The attention of every chosen word: run the decoder once over BOS + the words.
      const flat = hyps.flatMap((row, b) => row.map((h) => ({ b, h })))
      const T = Math.max(1, ...flat.map(({ h }) => h.tokens.length + 1))
      const ids = new Int32Array(T * flat.length).fill(PAD_ID)
      flat.forEach(({ h }, i) => {
        ids[i] = BOS_ID
        h.tokens.forEach((tok, t) => {
          ids[(t + 1) * flat.length + i] = tok
        })
      })
      const weightsT = AttentionDecoder.inference(() => {
        const rows = tensor(Int32Array.from(flat.map(({ b }) => b)), [flat.length], { dtype: 'int32' })
        const f = indexSelect(features, 0, rows)
        const targetIn = tensor(ids, [T, flat.length], { dtype: 'int32' })
        return this.decoder.forward(targetIn, this.initialState(f), { returnWeights: true }).weights!
      })
      if (features !== input) features.dispose()
      const w = (await weightsT.data()) as Float32Array
      const R = weightsT.shape[2]!
      weightsT.dispose()
      let i = 0
      return hyps.map((row) =>
        row.map((h) => {
          const n = h.tokens.length + 1
          const attention = Array.from({ length: n }, (_, t) => w.slice((t * flat.length + i) * R, (t * flat.length + i + 1) * R))
          i++
          return { ...h, attention, grid }
        }),
      )
    } finally {
      this.train(wasTraining)
    }
  }

  override extraRepr(): string {
    const c = this.config
    return c.featureSize === null
      ? `channels=[${c.channels.join(', ')}], hiddenSize=${c.hiddenSize}, attention='${c.attention}'`
      : `featureSize=${c.featureSize}, hiddenSize=${c.hiddenSize}, attention='${c.attention}'`
  }
}

/**
 * One panel per word: the image scaled by the word's attention over the region grid (upsampled
 * by nearest neighbour, normalised to its maximum), dimmed to a quarter where it did not look.
 */
export function attentionPanels(image: Float32Array, H: number, W: number, caption: Caption): Tensor {
  const [gr, gc] = caption.grid
  const n = caption.attention.length
  const out = new Float32Array(3 * H * W * n)
  const rowW = W * n
  caption.attention.forEach((a, k) => {
    let max = 0
    for (const x of a) max = Math.max(max, x)
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const r = Math.min(gr - 1, Math.floor((y * gr) / H))
        const c = Math.min(gc - 1, Math.floor((x * gc) / W))
        const w = max > 0 ? a[r * gc + c]! / max : 0
        for (let ch = 0; ch < 3; ch++) out[ch * H * rowW + y * rowW + k * W + x] = image[ch * H * W + y * W + x]! * (0.25 + 0.75 * w)
      }
    }
  })
  return tensor(out, [3, H, rowW])
}
