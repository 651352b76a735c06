/**
 * tfjs artifacts: reading `model.json` and its weight shards (float32, or tfjs-quantized
 * uint8/uint16/float16) from disk or from in-memory `ModelArtifacts`, and writing them back
 * (`model.json` + `weights.bin`, each file replaced atomically). The Keras topology itself is
 * parsed and emitted by `topology.ts`.
 */

import { mkdir, open, realpath } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { native } from '../../native.js'
import { CheckpointError, ValueError } from '../../errors.js'
import { atomicWrite } from '../atomic.js'
import { KerasSequential } from './sequential.js'
import { buildModel, emitModel, fmt } from './topology.js'

/** A dense float32 array with its shape, as weights travel in tfjs artifacts. */
export interface NamedWeight {
  name: string
  shape: number[]
  data: Float32Array
}

/** One entry of a tfjs weights manifest. */
export interface TfjsWeightSpec {
  name: string
  shape: number[]
  dtype: string
  quantization?: { dtype: string; scale?: number; min?: number; original_dtype?: string }
}

/** The `model.json` that tfjs `model.save('file://...')` writes. */
export interface TfjsModelJson {
  modelTopology: unknown
  weightsManifest: Array<{ paths: string[]; weights: TfjsWeightSpec[] }>
  format?: string
  generatedBy?: string
  convertedBy?: string | null
  [k: string]: unknown
}

/**
 * In-memory tfjs artifacts, tfjs's own `ModelArtifacts` shape: what a
 * `tf.io.withSaveHandler` callback receives and what `tf.io.fromMemory` takes.
 */
export interface TfjsArtifacts {
  modelTopology: unknown
  weightSpecs: TfjsWeightSpec[]
  weightData: ArrayBuffer | ArrayBuffer[] | Uint8Array
  format?: string
  generatedBy?: string
  convertedBy?: string | null
}

// The `generatedBy` of written models. It names the file that wrote them before the tfjs code
// was split into this folder; it is kept so that saved models stay byte-identical.
const GENERATED_BY = 'recurrent (io/tfjs.ts)'

function asBytes(d: ArrayBuffer | ArrayBuffer[] | Uint8Array): Uint8Array {
  if (d instanceof Uint8Array) return d
  if (Array.isArray(d)) return concatBytes(d.map((b) => new Uint8Array(b)))
  return new Uint8Array(d)
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0))
  let o = 0
  for (const b of parts) {
    out.set(b, o)
    o += b.length
  }
  return out
}

function half(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1
  const e = (bits >> 10) & 0x1f
  const f = bits & 0x3ff
  if (e === 0) return s * 2 ** -14 * (f / 1024)
  if (e === 31) return f ? NaN : s * Infinity
  return s * 2 ** (e - 15) * (1 + f / 1024)
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 }

/** Splits concatenated weight bytes by the specs (float32, or tfjs-quantized uint8/uint16/float16). */
function decodeWeights(specs: readonly TfjsWeightSpec[], bytes: Uint8Array, where: string): Map<string, NamedWeight> {
  const out = new Map<string, NamedWeight>()
  let off = 0
  for (const s of specs) {
    if (!s || typeof s.name !== 'string' || !Array.isArray(s.shape)) {
      throw new CheckpointError('loadTfjsModel', `${where}: a weights manifest entry lacks a name or shape`)
    }
    if (!s.shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0 && d <= 2 ** 31)) {
      throw new CheckpointError('loadTfjsModel', `${where}: weight '${s.name}' has shape ${JSON.stringify(s.shape)}; a shape is a list of non-negative integers`)
    }
    const n = s.shape.reduce((a, b) => a * b, 1)
    const q = s.quantization
    const stored = q ? q.dtype : s.dtype
    const bpe = BYTES[stored]
    if (bpe === undefined || (s.dtype !== 'float32' && !q)) {
      throw new CheckpointError('loadTfjsModel', `${where}: weight '${s.name}' has dtype '${s.dtype}'${q ? ` quantized as '${q.dtype}'` : ''}; only float32 (optionally uint8/uint16/float16-quantized) is supported`)
    }
    const len = n * bpe
    if (!Number.isSafeInteger(len) || off + len > bytes.length) {
      throw new CheckpointError('loadTfjsModel', `${where}: the weight data holds ${bytes.length} bytes but the manifest needs at least ${off + len} (through '${s.name}' ${fmt(s.shape)}); a shard is missing or truncated`)
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset + off, len)
    const data = new Float32Array(n)
    if (!q) for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true)
    else if (stored === 'float16') for (let i = 0; i < n; i++) data[i] = half(dv.getUint16(i * 2, true))
    else {
      const scale = q.scale ?? 1
      const min = q.min ?? 0
      for (let i = 0; i < n; i++) data[i] = (stored === 'uint8' ? dv.getUint8(i) : dv.getUint16(i * 2, true)) * scale + min
    }
    off += len
    out.set(stripSuffix(s.name), { name: stripSuffix(s.name), shape: [...s.shape], data })
  }
  if (off !== bytes.length) {
    throw new CheckpointError('loadTfjsModel', `${where}: the weight data holds ${bytes.length} bytes but the manifest describes ${off}`)
  }
  return out
}

/** Largest `model.json` read: topologies are kilobytes, a weights manifest a few more. */
const MAX_MODEL_JSON_BYTES = 64 << 20

function hostMemoryBytes(): number {
  return native.hostMemoryBytes()
}

/**
 * A weight file's path, refused unless it stays inside the model's folder: `..` segments,
 * absolute paths and symbolic links that lead out are a CheckpointError (a manifest is data,
 * and may come from anywhere; it must not make the loader read other files).
 */
async function confinedPath(dir: string, p: unknown, file: string): Promise<string> {
  const op = 'loadTfjsModel'
  if (typeof p !== 'string' || p.length === 0) throw new CheckpointError(op, `'${file}': a weight path must be a non-empty string, got ${JSON.stringify(p)}`)
  if (isAbsolute(p) || p.includes('\0')) throw new CheckpointError(op, `'${file}': weight path '${p}' is absolute; weight files must be inside the model's folder`)
  const target = resolve(dir, p)
  const inside = (root: string, q: string) => {
    const rel = relative(root, q)
    return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel)
  }
  if (!inside(dir, target)) throw new CheckpointError(op, `'${file}': weight path '${p}' leaves the model's folder '${dir}'; weight files must be inside it`)
  let real: string
  try {
    real = await realpath(target)
  } catch {
    return target // a missing file: the read reports it
  }
  const realDir = await realpath(dir)
  if (!inside(realDir, real)) throw new CheckpointError(op, `'${file}': weight path '${p}' is a symbolic link to '${real}', outside the model's folder; weight files must be inside it`)
  return real
}

/** A regular file's bytes, refused unless it is a regular file of at most `limit` bytes. */
async function readBounded(path: string, limit: number): Promise<Uint8Array> {
  const op = 'loadTfjsModel'
  const h = await open(path, 'r')
  try {
    const st = await h.stat()
    if (!st.isFile()) throw new CheckpointError(op, `cannot read '${path}': it is ${st.isDirectory() ? 'a folder' : 'not a regular file (a device, pipe or socket)'}`)
    if (st.size > limit) throw new CheckpointError(op, `cannot read '${path}': it holds ${st.size} bytes, more than the limit of ${limit}`)
    const buf = new Uint8Array(st.size)
    let got = 0
    while (got < st.size) {
      const { bytesRead } = await h.read(buf, got, st.size - got, got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return got === st.size ? buf : buf.subarray(0, got)
  } finally {
    await h.close()
  }
}

function stripSuffix(name: string): string {
  return name.replace(/:\d+$/, '')
}

/**
 * Loads a tfjs layers model saved as `model.json` plus weight files (the format of
 * `model.save('file://dir')`, and of `tensorflowjs_converter` for Keras models).
 *
 * `path` is the `model.json` file or the folder holding it. The weight files are read from
 * the paths in its `weightsManifest`, relative to it.
 *
 * @throws CheckpointError naming the file: a missing or unreadable `model.json` or weight
 *   file, JSON that is not a layers model, weight data whose size or shapes disagree with the
 *   topology, or a weight the topology needs but the manifest lacks.
 * @throws ValueError for a layer type or setting `recurrent` cannot run (it names the layer and
 *   the setting, e.g. `recurrentActivation: 'hardSigmoid'`).
 */
export async function loadTfjsModel(path: string): Promise<KerasSequential> {
  const op = 'loadTfjsModel'
  if (typeof path !== 'string' || path.length === 0) throw new ValueError(op, `path must be a non-empty string, got ${String(path)}`)
  let file = path.startsWith('file://') ? path.slice('file://'.length) : path
  if (!file.endsWith('.json')) file = join(file, 'model.json')
  let text: string
  try {
    text = new TextDecoder().decode(await readBounded(file, MAX_MODEL_JSON_BYTES))
  } catch (e) {
    if (e instanceof CheckpointError) throw e
    throw new CheckpointError(op, `cannot read '${file}': ${(e as Error).message}`, { cause: e })
  }
  let json: TfjsModelJson
  try {
    json = JSON.parse(text) as TfjsModelJson
  } catch (e) {
    throw new CheckpointError(op, `'${file}' is not valid JSON: ${(e as Error).message}`, { cause: e })
  }
  if (json === null || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new CheckpointError(op, `'${file}' is not a tfjs layers model: it needs 'modelTopology' and 'weightsManifest'`)
  }
  const dir = dirname(resolve(file))
  const weights = new Map<string, NamedWeight>()
  for (const [g, group] of json.weightsManifest.entries()) {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new CheckpointError(op, `'${file}': weightsManifest[${g}] needs 'paths' and 'weights'`)
    }
    const parts: Uint8Array[] = []
    for (const p of group.paths) {
      const wf = await confinedPath(dir, p, file)
      try {
        parts.push(await readBounded(wf, hostMemoryBytes()))
      } catch (e) {
        if (e instanceof CheckpointError) throw e
        throw new CheckpointError(op, `missing weight file '${p}' (listed in '${file}', looked for '${wf}'): ${(e as Error).message}`, { cause: e })
      }
    }
    for (const [k, v] of decodeWeights(group.weights, concatBytes(parts), `'${file}' group ${g} (${group.paths.join(', ')})`)) weights.set(k, v)
  }
  return buildModel(json.modelTopology, weights, `'${file}'`)
}

/**
 * Builds the model of in-memory tfjs artifacts (what `tf.io.withSaveHandler` hands over:
 * `modelTopology`, `weightSpecs`, `weightData`).
 */
export function fromTfjsArtifacts(artifacts: TfjsArtifacts): KerasSequential {
  const op = 'fromTfjsArtifacts'
  if (!artifacts || typeof artifacts !== 'object' || !artifacts.modelTopology) throw new CheckpointError(op, `the artifacts need a 'modelTopology'`)
  if (!Array.isArray(artifacts.weightSpecs) || artifacts.weightData === undefined) throw new CheckpointError(op, `the artifacts need 'weightSpecs' and 'weightData'`)
  const weights = decodeWeights(artifacts.weightSpecs, asBytes(artifacts.weightData), 'the artifacts')
  return buildModel(artifacts.modelTopology, weights, 'the artifacts')
}

/**
 * The tfjs artifacts of `model` (a {@link KerasSequential}): a `modelTopology` that
 * tfjs-layers builds, the weight specs and the concatenated float32 data. Pass them to
 * `tf.loadLayersModel(tf.io.fromMemory(artifacts))`, or use {@link saveTfjsModel} for files.
 *
 * @throws ValueError for what tfjs cannot represent: a GRU with `resetAfter: true` (tfjs's
 *   GRU is reset-before only).
 */
export async function toTfjsArtifacts(model: KerasSequential): Promise<TfjsArtifacts & { format: string; generatedBy: string; convertedBy: null }> {
  const op = 'saveTfjsModel'
  if (!(model instanceof KerasSequential)) {
    throw new ValueError(op, `expected a KerasSequential (what loadTfjsModel returns; build one with new KerasSequential().add(...)), got ${model === null ? 'null' : (model as object).constructor?.name ?? typeof model}`)
  }
  const { modelTopology, weightSpecs, weightData } = await emitModel(model)
  return { modelTopology, weightSpecs, weightData, format: 'layers-model', generatedBy: GENERATED_BY, convertedBy: null }
}

/**
 * Writes `model` as a tfjs layers model: `dir/model.json` and `dir/weights.bin` (the layout of
 * tfjs's `file://` handler), which `tf.loadLayersModel` reads. Each file is written to a
 * temporary name and renamed, so a failed save leaves earlier files intact.
 */
export async function saveTfjsModel(model: KerasSequential, dir: string): Promise<void> {
  const op = 'saveTfjsModel'
  if (typeof dir !== 'string' || dir.length === 0) throw new ValueError(op, `dir must be a non-empty string, got ${String(dir)}`)
  const target = dir.startsWith('file://') ? dir.slice('file://'.length) : dir
  const a = await toTfjsArtifacts(model)
  const json: TfjsModelJson = {
    modelTopology: a.modelTopology,
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
  }
  try {
    await mkdir(target, { recursive: true })
    await atomicWrite(join(target, 'weights.bin'), asBytes(a.weightData))
    await atomicWrite(join(target, 'model.json'), new TextEncoder().encode(JSON.stringify(json)))
  } catch (e) {
    if (e instanceof CheckpointError) throw e
    throw new CheckpointError(op, `cannot write the model to '${target}': ${(e as Error).message}`, { cause: e })
  }
}
