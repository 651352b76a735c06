/**
 * Training checkpoints: everything needed to resume a run bit-identically, in ONE safetensors
 * file, written atomically (a crash or kill mid-save leaves the previous file intact).
 *
 * Layout of the file:
 *
 * | tensor names            | what                                                            |
 * |-------------------------|-----------------------------------------------------------------|
 * | `model.<name>`          | the model's `stateDict()`, PyTorch names after the `model.` prefix (`model.rnn.weight_ih_l0`, ...) |
 * | `optimizer.<path>`      | the optimizer state tensors (`optimizer.state.0.exp_avg`, ...)  |
 * | `scheduler.<path>`      | scheduler state tensors, if any                                 |
 * | `<namespace>.<name>`    | extra tensors (e.g. `tbptt.saved.0`, the carried TBPTT state)   |
 *
 * and two metadata entries: `format` = `recurrent.checkpoint` and `checkpoint` = one JSON
 * document with `version`, `step`, `rng` (the global seed generator, `seedState()`),
 * `config`, `metadata` (vocabulary, anything), the optimizer and scheduler state dicts with
 * every tensor replaced by `{ "$tensor": "<name in the file>" }`, and the extra JSON state of
 * the trainer (`fit`'s position, early-stopping counters, TBPTT bookkeeping).
 *
 * Model weights carry the `model.` prefix so that every namespace is explicit. In PyTorch:
 * `{k[6:]: v for k, v in safetensors.torch.load_file(p).items() if k.startswith("model.")}` is a
 * `state_dict` for the same architecture.
 */

import { Tensor } from '../tensor.js'
import { seedState, setSeedState, type SeedState } from '../ops/random.js'
import { CheckpointError, ValueError } from '../errors.js'
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js'
import { boolArg, checkOptions, optionKeys } from '../validate.js'

/** The format tag stored in the `format` metadata entry. */
export const CHECKPOINT_FORMAT = 'recurrent.checkpoint'
/** The version of the JSON document. */
export const CHECKPOINT_VERSION = 1

/** A model as checkpoints see it: its named tensors. */
export interface StatefulModule {
  stateDict(): Record<string, Tensor>
  loadStateDict(dict: Record<string, Tensor>, options?: { strict?: boolean }): unknown
}

/** Anything with a state dict (optimizers, schedules): tensors and JSON-safe values. */
export interface HasStateDict {
  stateDict(): unknown
  // biome-ignore lint/suspicious/noExplicitAny: each implementation takes its own state type (parameter bivariance)
  loadStateDict(state: any): unknown
}

/** What {@link saveCheckpoint} saves. */
export interface CheckpointContents {
  /** The model: its `stateDict()` is saved under `model.`. */
  model: StatefulModule
  /** The optimizer: its `stateDict()` (tensors under `optimizer.`, the rest in the JSON). */
  optimizer?: HasStateDict | null
  /** A learning-rate schedule: its `stateDict()`. */
  scheduler?: HasStateDict | null
  /** Optimizer steps taken so far. */
  step?: number
  /** The global generator's state; default: the current one (`seedState()`). */
  rng?: SeedState
  /** The configuration of the run or model (JSON-safe), returned as is by {@link loadCheckpoint}. */
  config?: unknown
  /** Anything else JSON-safe: the vocabulary, the data source, notes. */
  metadata?: unknown
  /**
   * Extra state by namespace: `{ tbptt: { tensors, meta } }` stores the tensors as
   * `tbptt.<name>` and `meta` in the JSON.
   */
  extra?: Record<string, { tensors?: Record<string, Tensor>; meta?: unknown }>
}

const CHECKPOINT_CONTENTS = optionKeys<CheckpointContents>({
  model: true,
  optimizer: true,
  scheduler: true,
  step: true,
  rng: true,
  config: true,
  metadata: true,
  extra: true,
})
const EXTRA_ENTRY = optionKeys<{ tensors?: unknown; meta?: unknown }>({ tensors: true, meta: true })

/** Options of {@link Checkpoint.restore}. */
export interface RestoreOptions {
  /** Restore the global generator (default true). */
  rng?: boolean
  /** Require the model's and checkpoint's parameter names to match exactly (default true). */
  strict?: boolean
}

const RESTORE_OPTIONS = optionKeys<RestoreOptions>({ rng: true, strict: true })

/** A checkpoint read by {@link loadCheckpoint}. */
export interface Checkpoint {
  /** The file it was read from. */
  path: string
  step: number
  rng: SeedState | null
  config: unknown
  metadata: unknown
  /** The model's state dict (names without the `model.` prefix). */
  model: Record<string, Tensor>
  /** The optimizer's state dict, tensors restored, or null if none was saved. */
  optimizer: unknown
  /** The scheduler's state dict, or null. */
  scheduler: unknown
  /** Extra state by namespace, as given to {@link saveCheckpoint}. */
  extra: Record<string, { tensors: Record<string, Tensor>; meta: unknown }>
  /** Every tensor of the file by its full name. */
  tensors: Record<string, Tensor>
  /**
   * Loads the weights into `model` (`loadStateDict`, strict by default), the optimizer and
   * scheduler state, and the global generator, so that training continues exactly where the
   * checkpoint was taken.
   */
  restore(model: StatefulModule, optimizer?: HasStateDict | null, scheduler?: HasStateDict | null, options?: RestoreOptions): void
}

const NAME_RE = /^[A-Za-z0-9_]+$/

/**
 * Splits a state dict into tensors (named `<prefix>.<path>`) and a JSON-safe skeleton in which
 * each tensor is `{ $tensor: name }`; non-finite numbers become `{ $number: 'NaN' | ... }`.
 */
function flatten(prefix: string, value: unknown, out: Array<[string, Tensor]>): unknown {
  // The objects on the current path: a value that contains itself cannot be saved as JSON.
  const open = new Set<object>()
  const walk = (v: unknown, path: string): unknown => {
    if (v !== null && typeof v === 'object') {
      if (open.has(v)) throw new ValueError('saveCheckpoint', `${path} refers back to an object that contains it (a circular structure cannot be saved)`)
      open.add(v)
      try {
        return walkObject(v, path)
      } finally {
        open.delete(v)
      }
    }
    return walkObject(v, path)
  }
  const walkObject = (v: unknown, path: string): unknown => {
    if (v instanceof Tensor) {
      out.push([path, v])
      return { $tensor: path }
    }
    if (typeof v === 'number') return Number.isFinite(v) ? v : { $number: String(v) }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v
    if (v === undefined) return null
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      return { $typed: v.constructor.name, data: Array.from(v as unknown as ArrayLike<number>, (x) => walk(x, path)) }
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}.${i}`))
    if (typeof v === 'object') {
      const o: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k.startsWith('$')) throw new ValueError('saveCheckpoint', `state keys may not start with '$' (got '${k}' in ${path})`)
        o[k] = walk(x, `${path}.${k}`)
      }
      return o
    }
    throw new ValueError('saveCheckpoint', `cannot save a ${typeof v} (at ${path})`)
  }
  return walk(value, prefix)
}

/** Inverse of {@link flatten}. */
function unflatten(skeleton: unknown, tensors: Record<string, Tensor>, path: string): unknown {
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v
    if (Array.isArray(v)) return v.map(walk)
    const o = v as Record<string, unknown>
    if (typeof o.$tensor === 'string') {
      const t = tensors[o.$tensor]
      if (!t) throw new CheckpointError('loadCheckpoint', `'${path}': the JSON refers to tensor '${o.$tensor}', which the file does not hold`)
      return t
    }
    if (typeof o.$number === 'string') return Number(o.$number)
    if (typeof o.$typed === 'string' && Array.isArray(o.data)) {
      const C = { Float32Array, Float64Array, Int32Array, Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array }[o.$typed]
      if (!C) throw new CheckpointError('loadCheckpoint', `'${path}': unknown typed array ${o.$typed}`)
      return C.from(o.data.map((x) => walk(x) as number))
    }
    const r: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(o)) r[k] = walk(x)
    return r
  }
  return walk(skeleton)
}

function checkStep(step: unknown): number {
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) throw new ValueError('saveCheckpoint', `step must be an integer ≥ 0, got ${String(step)}`)
  return step
}

/**
 * Saves a training checkpoint to `path` (see the file layout above). The tensors are captured
 * as they are when the call is made (later optimizer steps do not reach the file); the promise
 * resolves once the file is on disk, and the write is atomic: a crash at any point leaves the
 * previous file intact.
 */
export async function saveCheckpoint(path: string, contents: CheckpointContents): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw new ValueError('saveCheckpoint', 'path must be a non-empty string')
  const { model } = checkOptions('saveCheckpoint', contents, CHECKPOINT_CONTENTS)
  if (!model || typeof model.stateDict !== 'function') throw new ValueError('saveCheckpoint', 'contents.model must have stateDict()')
  const pairs: Array<[string, Tensor]> = []
  for (const [k, t] of Object.entries(model.stateDict())) pairs.push([`model.${k}`, t])
  let optimizer: unknown = null
  if (contents.optimizer) {
    if (typeof contents.optimizer.stateDict !== 'function') throw new ValueError('saveCheckpoint', 'the optimizer has no stateDict()')
    optimizer = flatten('optimizer', contents.optimizer.stateDict(), pairs)
  }
  let scheduler: unknown = null
  if (contents.scheduler) {
    if (typeof contents.scheduler.stateDict !== 'function') throw new ValueError('saveCheckpoint', 'the scheduler has no stateDict()')
    scheduler = flatten('scheduler', contents.scheduler.stateDict(), pairs)
  }
  const extra: Record<string, { tensors: string[]; meta: unknown }> = {}
  for (const [ns, e] of Object.entries(contents.extra ?? {})) {
    if (!NAME_RE.test(ns) || ns === 'model' || ns === 'optimizer' || ns === 'scheduler') {
      throw new ValueError('saveCheckpoint', `extra namespace '${ns}' must be letters, digits and '_', and not model/optimizer/scheduler`)
    }
    checkOptions('saveCheckpoint', e, EXTRA_ENTRY, `extra.${ns}`)
    const names: string[] = []
    for (const [k, t] of Object.entries(e.tensors ?? {})) {
      if (!(t instanceof Tensor)) throw new ValueError('saveCheckpoint', `extra.${ns}.tensors.${k} is not a Tensor`)
      pairs.push([`${ns}.${k}`, t])
      names.push(k)
    }
    extra[ns] = { tensors: names, meta: flatten(ns, e.meta ?? null, pairs) }
  }
  const doc = {
    version: CHECKPOINT_VERSION,
    step: checkStep(contents.step ?? 0),
    rng: contents.rng ?? seedState(),
    config: flatten('config', contents.config ?? null, []),
    metadata: flatten('metadata', contents.metadata ?? null, []),
    optimizer,
    scheduler,
    extra,
    savedAt: new Date().toISOString(),
  }
  const names = new Set<string>()
  for (const [n] of pairs) {
    if (names.has(n)) throw new ValueError('saveCheckpoint', `two tensors would be saved as '${n}'`)
    names.add(n)
  }
  await saveSafetensors(path, Object.fromEntries(pairs), { format: CHECKPOINT_FORMAT, checkpoint: JSON.stringify(doc) })
}

/**
 * Reads a checkpoint written by {@link saveCheckpoint}. Throws a `CheckpointError` naming the
 * file when it is missing, truncated, corrupted, or not a checkpoint of this library.
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const { tensors, metadata } = await loadSafetensors(path)
  if (metadata?.format !== CHECKPOINT_FORMAT || typeof metadata.checkpoint !== 'string') {
    throw new CheckpointError('loadCheckpoint', `'${path}' is a safetensors file but not a recurrent checkpoint (no '${CHECKPOINT_FORMAT}' metadata)`)
  }
  let doc: {
    version: number
    step: number
    rng: SeedState | null
    config: unknown
    metadata: unknown
    optimizer: unknown
    scheduler: unknown
    extra: Record<string, { tensors: string[]; meta: unknown }>
  }
  try {
    doc = JSON.parse(metadata.checkpoint)
  } catch (e) {
    throw new CheckpointError('loadCheckpoint', `'${path}': the checkpoint metadata is not valid JSON (${(e as Error).message})`)
  }
  if (doc === null || typeof doc !== 'object' || typeof doc.version !== 'number') {
    throw new CheckpointError('loadCheckpoint', `'${path}': the checkpoint metadata has no version`)
  }
  if (!Number.isInteger(doc.version) || doc.version < 1) {
    throw new CheckpointError('loadCheckpoint', `'${path}': the checkpoint version must be an integer ≥ 1, got ${JSON.stringify(doc.version)}`)
  }
  // Counters are checked here, where the file is named, rather than where they are used.
  if (typeof doc.step !== 'number' || !Number.isInteger(doc.step) || doc.step < 0 || doc.step > Number.MAX_SAFE_INTEGER) {
    throw new CheckpointError('loadCheckpoint', `'${path}': step must be an integer ≥ 0, got ${JSON.stringify(doc.step)}`)
  }
  if (doc.rng !== null && doc.rng !== undefined) {
    const r = doc.rng as { seed?: unknown; counter?: unknown }
    const okInt = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= Number.MAX_SAFE_INTEGER
    if (typeof r !== 'object' || !okInt(r.seed) || !okInt(r.counter)) {
      throw new CheckpointError('loadCheckpoint', `'${path}': rng must be { seed, counter } with integers in [0, 2^53), got ${JSON.stringify(doc.rng)}`)
    }
  }
  if (doc.extra !== undefined && (doc.extra === null || typeof doc.extra !== 'object' || Object.values(doc.extra).some((e) => e === null || typeof e !== 'object' || !Array.isArray(e.tensors)))) {
    throw new CheckpointError('loadCheckpoint', `'${path}': extra must map namespaces to { tensors: [names], meta }`)
  }
  if (doc.version > CHECKPOINT_VERSION) {
    throw new CheckpointError('loadCheckpoint', `'${path}' has checkpoint version ${doc.version}; this library reads up to ${CHECKPOINT_VERSION}`)
  }
  const model: Record<string, Tensor> = {}
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith('model.')) model[k.slice(6)] = t
  const extra: Checkpoint['extra'] = {}
  for (const [ns, e] of Object.entries(doc.extra ?? {})) {
    const ts: Record<string, Tensor> = {}
    for (const k of e.tensors) {
      const t = tensors[`${ns}.${k}`]
      if (!t) throw new CheckpointError('loadCheckpoint', `'${path}': missing tensor '${ns}.${k}'`)
      ts[k] = t
    }
    extra[ns] = { tensors: ts, meta: unflatten(e.meta, tensors, path) }
  }
  const ck: Checkpoint = {
    path,
    step: doc.step,
    rng: doc.rng ?? null,
    config: unflatten(doc.config, {}, path),
    metadata: unflatten(doc.metadata, {}, path),
    model,
    optimizer: doc.optimizer === null ? null : unflatten(doc.optimizer, tensors, path),
    scheduler: doc.scheduler === null ? null : unflatten(doc.scheduler, tensors, path),
    extra,
    tensors,
    restore(m, optimizer, scheduler, options = {}) {
      restoreCheckpoint(ck, m, optimizer ?? null, scheduler ?? null, options)
    },
  }
  return ck
}

/**
 * Applies a loaded checkpoint: model weights (strict by default), optimizer and scheduler
 * state, and the global generator. Everything is checked by the `loadStateDict`s before they
 * write, so a mismatched checkpoint throws and leaves the model as it was.
 */
export function restoreCheckpoint(
  ck: Checkpoint,
  model: StatefulModule,
  optimizer: HasStateDict | null = null,
  scheduler: HasStateDict | null = null,
  options: RestoreOptions = {},
): void {
  const o = checkOptions('restore', options, RESTORE_OPTIONS)
  const strict = boolArg('restore', 'strict', o.strict ?? true)
  const rng = boolArg('restore', 'rng', o.rng ?? true)
  model.loadStateDict(ck.model, { strict })
  if (optimizer) {
    if (ck.optimizer === null) throw new CheckpointError('restore', `'${ck.path}' holds no optimizer state`)
    optimizer.loadStateDict(ck.optimizer)
  }
  if (scheduler) {
    if (ck.scheduler === null) throw new CheckpointError('restore', `'${ck.path}' holds no scheduler state`)
    scheduler.loadStateDict(ck.scheduler)
  }
  if (rng && ck.rng) setSeedState(ck.rng)
}
