/**
 * `RecurrentLM`: a token-level recurrent language model (Embedding → RNN/LSTM/GRU → dropout →
 * Linear) that implements {@link StatefulModel}, for {@link TBPTT}, `fitTBPTT` and the char-rnn
 * example.
 */

import type { Tensor } from '../tensor.js'
import { manualSeed, seedState, setSeedState } from '../ops/random.js'
import { tidy } from '../scope.js'
import { ShapeError, ValueError } from '../errors.js'
import { checkOptions, optionKeys, tensorArg } from '../validate.js'
import { Module } from '../nn/module.js'
import { Embedding } from '../nn/embedding.js'
import { Linear } from '../nn/linear.js'
import { Dropout } from '../nn/dropout.js'
import { GRU } from '../nn/gru.js'
import { LSTM } from '../nn/lstm.js'
import { RNN, type RNNBase } from '../nn/rnn.js'
import type { RecurrentState, StatefulModel, StatefulOutput } from './tbptt.js'

/** The recurrent cells of {@link RecurrentLM}. */
export type LMCell = 'lstm' | 'gru' | 'rnn'

/** Options of {@link RecurrentLM}; all of them are saved as the model's config. */
export interface RecurrentLMOptions {
  /** V: number of token ids. */
  vocabSize: number
  /** H: hidden size of the recurrent layers. */
  hiddenSize: number
  /** E: embedding size (default H). */
  embeddingDim?: number
  /** L: stacked recurrent layers (default 1). */
  numLayers?: number
  /** The cell (default `'lstm'`). */
  cell?: LMCell
  /**
   * Dropout probability between the recurrent layers and on the last layer's output, in
   * training mode (default 0). The masks draw their seeds from the global generator
   * (`manualSeed`), so a checkpoint that saves it resumes bit-identically.
   */
  dropout?: number
  /**
   * Seed of the initialisation (default: the global generator). Only the initialisation: the
   * global generator is left as it was.
   */
  seed?: number
}

const RECURRENT_LM_OPTIONS = optionKeys<RecurrentLMOptions>({
  vocabSize: true,
  hiddenSize: true,
  embeddingDim: true,
  numLayers: true,
  cell: true,
  dropout: true,
  seed: true,
})

/**
 * A recurrent language model over token ids:
 *
 *   e = Embedding(x) [T, B, E] → RNN/LSTM/GRU (L layers, H) [T, B, H] → Dropout → Linear → logits [T, B, V]
 *
 * Parameter names (PyTorch's): `embedding.weight`, `rnn.weight_ih_l0`, `rnn.weight_hh_l0`,
 * `rnn.bias_ih_l0`, `rnn.bias_hh_l0`, ..., `head.weight`, `head.bias`.
 *
 * The state is `[h]` (RNN, GRU) or `[h, c]` (LSTM), each `[L, B, H]`.
 *
 * ```ts
 * const model = new RecurrentLM({ vocabSize: vocab.size, hiddenSize: 256, numLayers: 2 })
 * const { output, state } = model.forward(tokens, null) // tokens int32 [T, B] → logits [T, B, V]
 * ```
 */
export class RecurrentLM extends Module implements StatefulModel {
  readonly config: Required<Omit<RecurrentLMOptions, 'seed'>> & { seed: number | null }
  readonly embedding: Embedding
  readonly rnn: RNNBase
  readonly drop: Dropout | null
  readonly head: Linear

  constructor(options: RecurrentLMOptions) {
    super()
    if (options === null || typeof options !== 'object') throw new ValueError('RecurrentLM', 'options { vocabSize, hiddenSize } are required')
    checkOptions('RecurrentLM', options, RECURRENT_LM_OPTIONS)
    const cell = options.cell ?? 'lstm'
    if (cell !== 'lstm' && cell !== 'gru' && cell !== 'rnn') throw new ValueError('RecurrentLM', `cell must be 'lstm', 'gru' or 'rnn', got '${String(cell)}'`)
    const H = options.hiddenSize
    const E = options.embeddingDim ?? H
    const L = options.numLayers ?? 1
    const p = options.dropout ?? 0
    this.config = { vocabSize: options.vocabSize, hiddenSize: H, embeddingDim: E, numLayers: L, cell, dropout: p, seed: options.seed ?? null }
    const saved = options.seed !== undefined ? seedState() : null
    if (options.seed !== undefined) manualSeed(options.seed)
    try {
      this.embedding = this.registerModule('embedding', new Embedding(options.vocabSize, E))
      const rnnOpts = { numLayers: L, dropout: p }
      this.rnn = this.registerModule('rnn', cell === 'lstm' ? new LSTM(E, H, rnnOpts) : cell === 'gru' ? new GRU(E, H, rnnOpts) : new RNN(E, H, rnnOpts))
      this.drop = p > 0 ? this.registerModule('drop', new Dropout(p)) : null
      this.head = this.registerModule('head', new Linear(H, options.vocabSize))
    } finally {
      if (saved) setSeedState(saved)
    }
  }

  /** `x` int32 `[T, B]`, state `[h]` or `[h, c]` (each `[L, B, H]`) or null → logits `[T, B, V]` and the final state. */
  override forward(x: Tensor, state: RecurrentState | null = null): StatefulOutput {
    tensorArg('RecurrentLM.forward', 'x', x)
    if (x.rank !== 2 || x.dtype !== 'int32') {
      throw new ShapeError('RecurrentLM.forward', `expected int32 token ids [T, B], got ${x.dtype} [${x.shape.join(', ')}]`)
    }
    const B = x.shape[1]!
    const { hiddenSize: H, numLayers: L } = this.config
    const isLstm = this.config.cell === 'lstm'
    if (state !== null) {
      if (!Array.isArray(state) || state.length !== (isLstm ? 2 : 1)) throw new ValueError('RecurrentLM.forward', `expected a state of ${isLstm ? 2 : 1} tensors, got ${Array.isArray(state) ? state.length : typeof state}`)
      for (const [i, s] of state.entries()) {
        tensorArg('RecurrentLM.forward', `state[${i}]`, s)
        if (s.rank !== 3 || s.shape[0] !== L || s.shape[1] !== B || s.shape[2] !== H) {
          throw new ShapeError('RecurrentLM.forward', `expected state tensors [L, B, H] = [${L}, ${B}, ${H}], got [${s.shape.join(', ')}]`)
        }
      }
    }
    // One scope for the whole forward: the embedding's output and the other intermediate
    // handles keep their autograd graphs (and the activations those saved) alive until they are
    // disposed, so they are freed here rather than whenever the GC runs.
    return tidy(() => {
      const e = this.embedding.forward(x)
      // Neither the rnn nor the dropout module has a seed of its own, so every mask (between the
      // layers, then on the output) draws its seed from the global generator, in that order:
      // the counter a checkpoint saves replays them.
      const r = this.rnn.forward(e, state === null ? {} : isLstm ? { h0: state[0]!, c0: state[1]! } : { h0: state[0]! })
      const h = this.drop ? this.drop.forward(r.output) : r.output
      const output = this.head.forward(h)
      const newState = isLstm ? [r.hN, r.cN!] : [r.hN]
      return { output, state: newState }
    })
  }

  override extraRepr(): string {
    const c = this.config
    return `vocabSize=${c.vocabSize}, hiddenSize=${c.hiddenSize}, cell='${c.cell}', numLayers=${c.numLayers}`
  }
}
