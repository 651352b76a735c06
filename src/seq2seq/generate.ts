/**
 * Text generation with a recurrent language model: {@link LanguageModelStep} (a
 * {@link DecoderStep} over a `RecurrentLM` or any stateful model with logits `[T, B, V]`) and
 * {@link generate}, which continues a prime with the sampling decoder of `decode.ts`.
 */

import { ValueError } from '../errors.js'
import { maskedFill } from '../ops/compare.js'
import { tensor } from '../ops/factories.js'
import { noGrad } from '../ops/grad.js'
import { indexSelect } from '../ops/index_ops.js'
import { reshape } from '../ops/shape.js'
import { logSoftmax } from '../ops/softmax.js'
import { dispose, keep, tidy } from '../scope.js'
import type { Tensor } from '../tensor.js'
import type { CharVocab } from '../data/vocab.js'
import type { Module } from '../nn/module.js'
import type { RecurrentState, StatefulModel } from '../train/tbptt.js'
import { checkOptions, describe, numberArg, optionKeys, typeError } from '../validate.js'
import { sampleDecode, type DecoderStep, type SampleOptions } from './decode.js'

/** Options of {@link LanguageModelStep}. */
export interface LanguageModelStepOptions {
  /** Token ids never to generate (their log-probability is −∞, the rest renormalised), e.g. the unknown character. */
  exclude?: readonly number[]
}

const LANGUAGE_MODEL_STEP_OPTIONS = optionKeys<LanguageModelStepOptions>({ exclude: true })

/**
 * A language model as a {@link DecoderStep}: each step runs the model on one token per row
 * (`[1, N]`) and returns the log-softmax of its logits. The state is the model's recurrent
 * state (`[h]` or `[h, c]`, each `[L, N, H]`), or null for zeros; `reorder` selects rows of
 * each state tensor along its batch axis (1).
 *
 * With `exclude`, the step holds a small kept mask tensor: call {@link dispose} when done.
 */
export class LanguageModelStep implements DecoderStep<RecurrentState | null> {
  readonly #model: StatefulModel
  readonly #exclude: readonly number[]
  #mask: Tensor | null = null

  constructor(model: StatefulModel, options: LanguageModelStepOptions = {}) {
    if (model === null || typeof model !== 'object' || typeof model.forward !== 'function') throw new ValueError('LanguageModelStep', `expected a model with forward(x, state), got ${describe(model)}`)
    const o = checkOptions('LanguageModelStep', options, LANGUAGE_MODEL_STEP_OPTIONS)
    const exclude = o.exclude ?? []
    if (!Array.isArray(exclude)) throw typeError('LanguageModelStep', 'exclude', 'an array of token ids', exclude)
    for (const id of exclude) numberArg('LanguageModelStep', 'each excluded id', id, { integer: true, min: 0 })
    this.#model = model
    this.#exclude = [...exclude]
  }

  step(tokens: Tensor, state: RecurrentState | null): { logProbs: Tensor; state: RecurrentState } {
    const N = tokens.shape[0]!
    const out = this.#model.forward(reshape(tokens, [1, N]), state)
    const V = out.output.shape[out.output.rank - 1]!
    let logits = reshape(out.output, [N, V])
    if (this.#exclude.length > 0) logits = maskedFill(logits, this.#maskFor(V, logits), -Infinity)
    return { logProbs: logSoftmax(logits, -1), state: out.state }
  }

  reorder(state: RecurrentState | null, index: Tensor): RecurrentState | null {
    return state === null ? null : state.map((s) => indexSelect(s, 1, index))
  }

  /** Frees the exclusion mask (the step makes a new one if used again). */
  dispose(): void {
    this.#mask?.dispose()
    this.#mask = null
  }

  #maskFor(V: number, like: Tensor): Tensor {
    if (this.#mask === null || this.#mask.isDisposed || this.#mask.shape[1] !== V || this.#mask.device !== like.device) {
      this.#mask?.dispose()
      const m = new Int32Array(V)
      for (const id of this.#exclude) if (id < V) m[id] = 1
      // Kept: decoding frees what its steps make, and this outlives the step that made it.
      this.#mask = keep(tensor(m, [1, V], { dtype: 'int32', device: like.device }))
    }
    return this.#mask
  }
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Text to condition on; it is not repeated in the result. */
  prime: string
  /** Characters to generate. */
  length: number
  /** Softmax temperature; 0 picks the most likely character every time. */
  temperature: number
  /** Sample only among the k most likely characters. */
  topK?: number
  /** Sample only within the nucleus of probability mass `topP`, in (0, 1]. */
  topP?: number
  /** Seed of the sampling noise: the same seed gives the same text. */
  seed: number
  /**
   * Called with each generated piece of text, for streaming output. Text is read back every
   * few characters (16): a terminal is the one reader worth a read per few steps.
   */
  onText?: (s: string) => void
}

const GENERATE_OPTIONS = optionKeys<GenerateOptions>({ prime: true, length: true, temperature: true, topK: true, topP: true, seed: true, onText: true })

/**
 * Generates `length` characters after `prime` with a character model (e.g. one trained by
 * `recurrent train-char`): runs the prime through the model (one forward over all its
 * characters but the last), then samples with {@link sampleDecode} from the last one, with the
 * temperature, top-k and top-p given. The unknown character is never generated. Without a
 * prime the model starts after a newline. The model is in eval mode meanwhile.
 *
 * ```ts
 * const text = await generate(model, vocab, { prime: 'And he said', length: 200, temperature: 0.8, seed: 1 })
 * ```
 */
export async function generate(model: StatefulModel & Module, vocab: CharVocab, options: GenerateOptions): Promise<string> {
  const op = 'generate'
  const o = checkOptions(op, options, GENERATE_OPTIONS) as GenerateOptions
  if (typeof o.prime !== 'string') throw typeError(op, 'prime', 'a string', o.prime)
  if (o.onText !== undefined && typeof o.onText !== 'function') throw typeError(op, 'onText', 'a function', o.onText)
  const length = numberArg(op, 'length', o.length, { integer: true, min: 0 })
  if (length === 0) return ''
  const V = vocab.size
  let ids = vocab.encode(o.prime)
  if (ids.length === 0) {
    const nl = vocab.idOf(10)
    ids = Int32Array.of(nl >= 0 && nl !== vocab.unkId ? nl : vocab.unkId === 0 && V > 1 ? 1 : 0)
  }
  const dec = new LanguageModelStep(model, vocab.unkId >= 0 ? { exclude: [vocab.unkId] } : {})
  const wasTraining = model.training
  model.eval()
  const device = model.parameters()[0]?.device ?? 'cpu'
  const text = (tokens: readonly number[]) => tokens.map((id) => vocab.chars[id]!).join('')
  let state: RecurrentState | null = null
  try {
    if (ids.length > 1) {
      const prefix = ids.subarray(0, ids.length - 1)
      state = tidy(() => noGrad(() => model.forward(tensor(prefix, [prefix.length, 1], { dtype: 'int32', device }), null).state))
    }
    const onText = o.onText
    const sampleOptions: SampleOptions = { batchSize: 1, bos: ids[ids.length - 1]!, maxLength: length, device, temperature: o.temperature, seed: o.seed }
    if (o.topK !== undefined) sampleOptions.topK = o.topK
    if (o.topP !== undefined) sampleOptions.topP = o.topP
    if (onText !== undefined) {
      sampleOptions.onTokens = (rows) => {
        if (rows[0]!.length > 0) onText(text(rows[0]!))
      }
    }
    const rows = await sampleDecode(dec, state, sampleOptions)
    return text(rows[0]![0]!.tokens)
  } finally {
    dispose(state)
    dec.dispose()
    model.train(wasTraining)
  }
}
