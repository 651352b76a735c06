/**
 * Keras model topology (the `modelTopology` of `model.json`) ↔ {@link KerasSequential}: parses
 * the layer configs of a Sequential model (or a functional model that is one chain), checks
 * every setting `recurrent` cannot run, and builds the modules with their weights; and emits a
 * model's layer configs and weights back in the form tfjs-layers builds.
 */

import type { Tensor } from '../../tensor.js'
import { tensor } from '../../ops/factories.js'
import { CheckpointError, ValueError } from '../../errors.js'
import { Linear } from '../../nn/linear.js'
import { Embedding } from '../../nn/embedding.js'
import { Dropout } from '../../nn/dropout.js'
import { RNN, RNNBase } from '../../nn/rnn.js'
import { LSTM } from '../../nn/lstm.js'
import { GRU } from '../../nn/gru.js'
import { ACTIVATIONS, KerasActivationLayer, KerasSequential, rnnClassOf, type KerasActivation, type KerasLayerOptions, type MergeMode } from './sequential.js'
import { gatesOfCell, kerasToTorchRecurrent, torchToKerasRecurrent, transpose2d, type TorchRecurrentArrays } from './layouts.js'
import type { NamedWeight, TfjsWeightSpec } from './artifacts.js'

/** A shape for messages; `null` (an unknown size) prints as `?`. @internal */
export function fmt(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]`
}

interface LayerJson {
  class_name: string
  config: Record<string, unknown>
  inbound_nodes?: unknown
  name?: string
}

/** A config value under its snake_case (Keras, tfjs JSON) or camelCase (tfjs TS) name. */
function cfg<T = unknown>(c: Record<string, unknown>, snakeName: string): T | undefined {
  if (snakeName in c) return c[snakeName] as T
  const camel = snakeName.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase())
  return c[camel] as T | undefined
}

function activationName(a: unknown): string {
  if (a === undefined || a === null) return 'linear'
  if (typeof a === 'string') return a
  if (typeof a === 'object' && typeof (a as { class_name?: unknown }).class_name === 'string') {
    return (a as { class_name: string }).class_name
  }
  return String(a)
}

/** Normalises activation names: `hardSigmoid`/`hard_sigmoid`, `Tanh` ... */
function normAct(a: unknown): string {
  return activationName(a)
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase()
}

const SUPPORTED = ['Embedding', 'Dense', 'SimpleRNN', 'LSTM', 'GRU', 'Bidirectional', 'Dropout', 'Activation', 'InputLayer']

function layerList(topology: unknown, where: string): { name: string; layers: LayerJson[] } {
  const op = 'loadTfjsModel'
  let t = topology as Record<string, unknown>
  if (t && typeof t === 'object' && 'model_config' in t) t = t.model_config as Record<string, unknown>
  if (!t || typeof t !== 'object' || typeof t.class_name !== 'string' || !t.config) {
    throw new CheckpointError(op, `${where}: modelTopology has no 'class_name' and 'config'`)
  }
  const config = t.config as Record<string, unknown>
  const cls = t.class_name
  const layers = (Array.isArray(config) ? config : config.layers) as LayerJson[] | undefined
  if (!Array.isArray(layers)) throw new CheckpointError(op, `${where}: the ${cls} model's config has no 'layers' list`)
  const name = (typeof config.name === 'string' ? config.name : undefined) ?? 'sequential_1'
  if (cls === 'Sequential') return { name, layers }
  if (cls === 'Model' || cls === 'Functional') {
    // A functional model is accepted when it is one chain: every layer fed by the one before.
    const chain = layers.filter((l) => l.class_name !== 'InputLayer')
    for (let i = 1; i < chain.length; i++) {
      const prev = String(chain[i - 1]!.name ?? chain[i - 1]!.config.name)
      const inbound = JSON.stringify(chain[i]!.inbound_nodes ?? [])
      if (!inbound.includes(`"${prev}"`)) {
        throw new ValueError(op, `${where}: functional model '${name}' is not a single chain of layers (layer '${String(chain[i]!.config.name)}' is not fed by '${prev}'); only Sequential models and linear chains are supported`)
      }
    }
    return { name, layers }
  }
  throw new ValueError(op, `${where}: unsupported model class '${cls}'; expected Sequential (or a functional Model that is one chain)`)
}

/** Tracks the value flowing between layers: its rank and last-axis size. */
interface Flow {
  kind: 'tokens' | 'seq' | 'vec' | 'unknown'
  features: number | null
}

/**
 * The {@link KerasSequential} that a Keras `modelTopology` describes, its weights taken from
 * `weights` (by Keras weight name); errors name `where` (the file, or the artifacts).
 * @internal
 */
export function buildModel(topology: unknown, weights: Map<string, NamedWeight>, where: string): KerasSequential {
  const op = 'loadTfjsModel'
  const { name, layers } = layerList(topology, where)
  const model = new KerasSequential({ name })
  const used = new Set<string>()
  let flow: Flow = { kind: 'unknown', features: null }
  let first = true

  const take = (layerName: string, leaf: string, scope: string | null, expected: (number | null)[], what: string): NamedWeight => {
    const prefix = `${layerName}/`
    const cands = [...weights.values()].filter((w) => w.name.startsWith(prefix) && w.name.split('/').pop() === leaf)
    const pick = scope === null ? cands : cands.filter((w) => w.name.slice(prefix.length).split('/').some((seg) => seg.startsWith(scope)))
    if (pick.length !== 1) {
      const have = [...weights.keys()].filter((k) => k.startsWith(prefix))
      throw new CheckpointError(op, `${where}: layer '${layerName}' needs ${pick.length === 0 ? 'a' : 'exactly one'} weight '${prefix}${scope ? `${scope}*/` : ''}${leaf}' (${what}), ${pick.length === 0 ? 'but the manifest has none' : `found ${pick.length}`}; its weights in the manifest: ${have.length ? have.join(', ') : 'none'}`)
    }
    const w = pick[0]!
    const ok = w.shape.length === expected.length && expected.every((d, i) => d === null || d === w.shape[i])
    if (!ok) {
      throw new CheckpointError(op, `${where}: weight '${w.name}' has shape ${fmt(w.shape)}, expected ${fmt(expected)} (${what})`)
    }
    used.add(w.name)
    return w
  }

  for (const [idx, layer] of layers.entries()) {
    if (!layer || typeof layer.class_name !== 'string' || !layer.config || typeof layer.config !== 'object') {
      throw new CheckpointError(op, `${where}: layer ${idx} has no 'class_name' and 'config'`)
    }
    const cls = layer.class_name
    const c = layer.config
    const lname = String(c.name ?? layer.name ?? `layer_${idx}`)
    const what = `${cls} layer '${lname}'`
    if (!SUPPORTED.includes(cls)) {
      throw new ValueError(op, `${where}: unsupported layer type '${cls}' (layer '${lname}'); supported: ${SUPPORTED.join(', ')}`)
    }
    const bis = (cfg<(number | null)[]>(c, 'batch_input_shape') ?? cfg<(number | null)[]>(c, 'batch_shape')) as (number | null)[] | undefined
    if (first && Array.isArray(bis)) {
      if (bis.length === 2) flow = { kind: cls === 'Embedding' ? 'tokens' : 'vec', features: cls === 'Embedding' ? null : bis[1] ?? null }
      else if (bis.length === 3) flow = { kind: 'seq', features: bis[2] ?? null }
      else throw new ValueError(op, `${where}: ${what} has input shape ${fmt(bis as number[])}; only [B, T], [B, T, F] and [B, F] inputs are supported`)
      if (bis.length >= 2 && cls !== 'Dense' && typeof bis[1] === 'number') model.inputLength = bis[1]
    }
    if (cls === 'InputLayer') continue
    first = false

    if (cls === 'Dropout') {
      const rate = Number(cfg(c, 'rate') ?? 0)
      model.add(new Dropout(rate), { name: lname })
      continue
    }
    if (cls === 'Activation') {
      const a = normAct(cfg(c, 'activation'))
      if (!(ACTIVATIONS as readonly string[]).includes(a)) {
        throw new ValueError(op, `${where}: ${what} has activation '${a}'; supported: ${ACTIVATIONS.join(', ')}`)
      }
      model.add(new KerasActivationLayer(a as KerasActivation), { name: lname })
      continue
    }
    if (cls === 'Embedding') {
      if (cfg(c, 'mask_zero') === true) {
        throw new ValueError(op, `${where}: ${what} has mask_zero: true; masking is not supported (pass sequence lengths to the recurrent modules instead)`)
      }
      const inputDim = Number(cfg(c, 'input_dim'))
      const outputDim = Number(cfg(c, 'output_dim'))
      const w = take(lname, 'embeddings', null, [inputDim, outputDim], `embeddings [input_dim, output_dim] = [${inputDim}, ${outputDim}]`)
      const emb = new Embedding(inputDim, outputDim)
      emb.loadStateDict({ weight: tensor(w.data, w.shape) })
      model.add(emb, { name: lname })
      const il = cfg<number | null>(c, 'input_length')
      if (model.length === 1 && typeof il === 'number') model.inputLength = il
      flow = { kind: 'seq', features: outputDim }
      continue
    }
    if (cls === 'Dense') {
      const units = Number(cfg(c, 'units'))
      const act = normAct(cfg(c, 'activation'))
      if (!(ACTIVATIONS as readonly string[]).includes(act)) {
        throw new ValueError(op, `${where}: ${what} has activation '${act}'; supported: ${ACTIVATIONS.join(', ')}`)
      }
      const useBias = cfg(c, 'use_bias') !== false
      const k = take(lname, 'kernel', null, [flow.features, units], `kernel [in, units]`)
      const inDim = k.shape[0]!
      const lin = new Linear(inDim, units, { bias: useBias })
      const sd: Record<string, Tensor> = { weight: tensor(transpose2d(k.data, inDim, units), [units, inDim]) }
      if (useBias) sd.bias = tensor(take(lname, 'bias', null, [units], 'bias [units]').data, [units])
      lin.loadStateDict(sd)
      model.add(lin, { name: lname, activation: act as KerasActivation })
      flow = { kind: flow.kind === 'seq' ? 'seq' : 'vec', features: units }
      continue
    }
    // Recurrent layers, possibly wrapped in Bidirectional.
    let inner = layer
    let mergeMode: MergeMode = 'concat'
    const bidi = cls === 'Bidirectional'
    if (bidi) {
      const wrapped = cfg<LayerJson>(c, 'layer')
      if (!wrapped || typeof wrapped.class_name !== 'string' || !wrapped.config) {
        throw new CheckpointError(op, `${where}: ${what} has no wrapped 'layer'`)
      }
      if (!['SimpleRNN', 'LSTM', 'GRU'].includes(wrapped.class_name)) {
        throw new ValueError(op, `${where}: ${what} wraps unsupported layer type '${wrapped.class_name}'; supported: SimpleRNN, LSTM, GRU`)
      }
      const mm = cfg(c, 'merge_mode')
      if (mm === null || !['concat', 'sum', 'mul', 'ave'].includes(String(mm ?? 'concat'))) {
        throw new ValueError(op, `${where}: ${what} has merge_mode ${JSON.stringify(mm)}; supported: 'concat', 'sum', 'mul', 'ave'`)
      }
      mergeMode = (mm ?? 'concat') as MergeMode
      // Keras 3 serialises the (mirrored) backward layer too; accept it when it mirrors the forward one.
      const back = cfg<LayerJson | null>(c, 'backward_layer')
      if (back !== undefined && back !== null) {
        const same = back.class_name === wrapped.class_name && back.config && cfg(back.config, 'units') === cfg(wrapped.config, 'units') &&
          normAct(cfg(back.config, 'activation') ?? 'tanh') === normAct(cfg(wrapped.config, 'activation') ?? 'tanh') &&
          normAct(cfg(back.config, 'recurrent_activation') ?? 'hard_sigmoid') === normAct(cfg(wrapped.config, 'recurrent_activation') ?? 'hard_sigmoid') &&
          cfg(back.config, 'use_bias') === cfg(wrapped.config, 'use_bias') && cfg(back.config, 'reset_after') === cfg(wrapped.config, 'reset_after')
        if (!same) {
          throw new ValueError(op, `${where}: ${what} has a backward_layer that differs from its forward layer; only a mirrored backward layer is supported`)
        }
      }
      inner = wrapped
    }
    const rc = inner.config
    const icls = inner.class_name
    const innerName = String(rc.name ?? lname)
    const iwhat = bidi ? `${what} (wrapping ${icls} '${innerName}')` : what
    const units = Number(cfg(rc, 'units'))
    if (!Number.isInteger(units) || units < 1) throw new CheckpointError(op, `${where}: ${iwhat} has no valid 'units'`)
    const activation = normAct(cfg(rc, 'activation') ?? 'tanh')
    const cell = icls === 'LSTM' ? 'lstm' : icls === 'GRU' ? 'gru' : 'rnn'
    if (cell === 'rnn') {
      if (activation !== 'tanh' && activation !== 'relu') {
        throw new ValueError(op, `${where}: ${iwhat} has activation '${activation}'; SimpleRNN supports 'tanh' and 'relu'`)
      }
    } else {
      if (activation !== 'tanh') throw new ValueError(op, `${where}: ${iwhat} has activation '${activation}'; only 'tanh' is supported`)
      const ra = normAct(cfg(rc, 'recurrent_activation') ?? 'hard_sigmoid')
      if (ra !== 'sigmoid') {
        throw new ValueError(
          op,
          `${where}: ${iwhat} has recurrentActivation '${ra === 'hard_sigmoid' ? 'hardSigmoid' : ra}'${ra === 'hard_sigmoid' ? ' (the tfjs default)' : ''}; recurrent's cells use the logistic sigmoid only. Build the tfjs layer with recurrentActivation: 'sigmoid' (Keras: recurrent_activation='sigmoid') and train or fine-tune it that way, then export again`,
        )
      }
    }
    for (const flag of ['return_state', 'stateful', 'go_backwards'] as const) {
      if (cfg(rc, flag) === true) throw new ValueError(op, `${where}: ${iwhat} has ${flag}: true, which is not supported`)
    }
    const resetAfter = cell === 'gru' && cfg(rc, 'reset_after') === true
    const useBias = cfg(rc, 'use_bias') !== false
    const returnSequences = cfg(rc, 'return_sequences') === true
    const { G } = gatesOfCell(cell)
    const GH = G * units
    const dirs = bidi ? (['forward_', 'backward_'] as const) : ([null] as const)
    const arrays: TorchRecurrentArrays[] = []
    let inDim = flow.features
    for (const scope of dirs) {
      const dirWhat = `${iwhat}${scope ? `, ${scope.slice(0, -1)} direction` : ''}`
      const k = take(lname, 'kernel', scope, [inDim, GH], `${dirWhat}: kernel [in, ${G}·units]`)
      inDim = k.shape[0]!
      const rk = take(lname, 'recurrent_kernel', scope, [units, GH], `${dirWhat}: recurrent_kernel [units, ${G}·units]`)
      const b = useBias ? take(lname, 'bias', scope, resetAfter ? [2, GH] : [GH], `${dirWhat}: bias ${resetAfter ? `[2, ${GH}]` : `[${GH}]`}`) : null
      arrays.push(kerasToTorchRecurrent(cell, units, k.data, rk.data, b ? b.data : null))
    }
    if (flow.kind !== 'seq' && flow.kind !== 'unknown') {
      throw new ValueError(op, `${where}: ${iwhat} needs a sequence input [B, T, F], but the layer before it outputs ${flow.kind === 'vec' ? '[B, F]' : 'token ids'}`)
    }
    const opts = { batchFirst: true, bidirectional: bidi, bias: useBias }
    const mod: RNNBase =
      cell === 'lstm'
        ? new LSTM(inDim!, units, opts)
        : cell === 'gru'
          ? new GRU(inDim!, units, { ...opts, resetAfter })
          : new RNN(inDim!, units, { ...opts, nonlinearity: activation as 'tanh' | 'relu' })
    const sd: Record<string, Tensor> = {}
    arrays.forEach((a, d) => {
      const sfx = `_l0${d === 1 ? '_reverse' : ''}`
      sd[`weight_ih${sfx}`] = tensor(a.weightIh, [GH, inDim!])
      sd[`weight_hh${sfx}`] = tensor(a.weightHh, [GH, units])
      if (useBias) {
        sd[`bias_ih${sfx}`] = tensor(a.biasIh!, [GH])
        sd[`bias_hh${sfx}`] = tensor(a.biasHh!, [GH])
      }
    })
    mod.loadStateDict(sd)
    const lopts: KerasLayerOptions = { name: lname, returnSequences, mergeMode }
    if (bidi) lopts.innerName = innerName
    model.add(mod, lopts)
    const D = bidi ? 2 : 1
    const out = bidi && mergeMode !== 'concat' ? units : D * units
    flow = { kind: returnSequences ? 'seq' : 'vec', features: out }
  }
  const unused = [...weights.keys()].filter((k) => !used.has(k))
  if (unused.length > 0) {
    throw new CheckpointError(op, `${where}: the manifest has weights no layer of the topology uses: ${unused.join(', ')}`)
  }
  if (model.length === 0) throw new CheckpointError(op, `${where}: the model has no layers`)
  return model
}

async function arrayOf(t: Tensor): Promise<Float32Array> {
  const d = await t.data()
  if (!(d instanceof Float32Array)) throw new ValueError('saveTfjsModel', `parameters must be float32, got ${t.dtype}`)
  return d
}

/**
 * The Keras topology of `model` and its weights: the specs in manifest order and the float32
 * values concatenated in that order.
 * @throws ValueError for what tfjs cannot represent: a GRU with `resetAfter: true` (tfjs's
 *   GRU is reset-before only).
 * @internal
 */
export async function emitModel(model: KerasSequential): Promise<{ modelTopology: unknown; weightSpecs: TfjsWeightSpec[]; weightData: ArrayBuffer }> {
  const op = 'saveTfjsModel'
  const layersJson: LayerJson[] = []
  const specs: TfjsWeightSpec[] = []
  const chunks: Float32Array[] = []
  const push = (name: string, shape: number[], data: Float32Array) => {
    specs.push({ name, shape, dtype: 'float32' })
    chunks.push(data)
  }
  let firstShape: (number | null)[] | null = null
  const T = model.inputLength
  for (const [i, l] of model.layers.entries()) {
    const m = l.module
    const base: Record<string, unknown> = { name: l.name, trainable: true }
    if (m instanceof Embedding) {
      if (i === 0) firstShape = [null, T]
      layersJson.push({ class_name: 'Embedding', config: { ...base, input_dim: m.numEmbeddings, output_dim: m.embeddingDim, input_length: i === 0 ? T : null, mask_zero: false } })
      push(`${l.name}/embeddings`, [m.numEmbeddings, m.embeddingDim], await arrayOf(m.weight))
    } else if (m instanceof Linear) {
      if (i === 0) firstShape = [null, m.inFeatures]
      layersJson.push({ class_name: 'Dense', config: { ...base, units: m.outFeatures, activation: l.activation, use_bias: m.bias !== null } })
      push(`${l.name}/kernel`, [m.inFeatures, m.outFeatures], transpose2d(await arrayOf(m.weight), m.outFeatures, m.inFeatures))
      if (m.bias) push(`${l.name}/bias`, [m.outFeatures], await arrayOf(m.bias))
    } else if (m instanceof Dropout) {
      layersJson.push({ class_name: 'Dropout', config: { ...base, rate: m.p } })
    } else if (m instanceof KerasActivationLayer) {
      layersJson.push({ class_name: 'Activation', config: { ...base, activation: m.activation } })
    } else if (m instanceof RNNBase) {
      if (i === 0) firstShape = [null, T, m.inputSize]
      const cls = rnnClassOf(m)
      const cell = cls === 'LSTM' ? 'lstm' : cls === 'GRU' ? 'gru' : 'rnn'
      const resetAfter = m instanceof GRU && m.resetAfter
      if (resetAfter) {
        throw new ValueError(op, `layer '${l.name}': tfjs's GRU is reset-before only, and this GRU has resetAfter: true (PyTorch's formula); build it with new GRU(..., { resetAfter: false }) to exchange it with tfjs`)
      }
      const H = m.hiddenSize
      const D = m.numDirections
      for (let k = 0; k < m.numLayers; k++) {
        const lastOfStack = k === m.numLayers - 1
        const lname = m.numLayers === 1 ? l.name : `${l.name}_l${k}`
        const iname = m.numLayers === 1 ? (l.innerName ?? l.name) : `${l.innerName ?? l.name}_l${k}`
        const rcfg: Record<string, unknown> = {
          name: D === 2 ? iname : lname,
          trainable: true,
          units: H,
          activation: m instanceof RNN ? m.nonlinearity : 'tanh',
          use_bias: m.bias,
          return_sequences: lastOfStack ? l.returnSequences : true,
          return_state: false,
          go_backwards: false,
          stateful: false,
          unroll: false,
          dropout: 0,
          recurrent_dropout: 0,
        }
        if (cell !== 'rnn') rcfg.recurrent_activation = 'sigmoid'
        if (cell === 'gru') rcfg.reset_after = false
        if (D === 1) {
          if (i === 0 && k === 0) rcfg.batch_input_shape = firstShape
          layersJson.push({ class_name: cls, config: rcfg })
        } else {
          const bcfg: Record<string, unknown> = { name: lname, trainable: true, merge_mode: lastOfStack ? l.mergeMode : 'concat', layer: { class_name: cls, config: rcfg } }
          if (i === 0 && k === 0) bcfg.batch_input_shape = firstShape
          layersJson.push({ class_name: 'Bidirectional', config: bcfg })
        }
        for (let d = 0; d < D; d++) {
          const lw = m.layerWeights(k, d === 1)
          const w: TorchRecurrentArrays = {
            weightIh: await arrayOf(lw.wIh),
            weightHh: await arrayOf(lw.wHh),
            biasIh: lw.bIh ? await arrayOf(lw.bIh) : null,
            biasHh: lw.bHh ? await arrayOf(lw.bHh) : null,
          }
          const kw = torchToKerasRecurrent(cell, H, w)
          const inDim = lw.wIh.shape[1]!
          const prefix = D === 1 ? `${lname}/` : `${lname}/${d === 0 ? 'forward' : 'backward'}_${iname}/`
          push(`${prefix}kernel`, [inDim, kw.kernel.length / inDim], kw.kernel)
          push(`${prefix}recurrent_kernel`, [H, kw.recurrentKernel.length / H], kw.recurrentKernel)
          if (kw.bias) push(`${prefix}bias`, [kw.bias.length], kw.bias)
        }
      }
    } else {
      throw new ValueError(op, `layer '${l.name}': unsupported module ${m.constructor.name}`)
    }
  }
  const first = layersJson[0]
  if (first && firstShape && first.config.batch_input_shape === undefined) first.config.batch_input_shape = firstShape
  const n = chunks.reduce((a, c) => a + c.length, 0)
  const data = new Float32Array(n)
  let o = 0
  for (const c of chunks) {
    data.set(c, o)
    o += c.length
  }
  const modelTopology = {
    class_name: 'Sequential',
    config: { name: model.name, layers: layersJson },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  }
  return { modelTopology, weightSpecs: specs, weightData: data.buffer }
}
