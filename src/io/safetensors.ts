/**
 * Safetensors checkpoints (https://github.com/huggingface/safetensors): named tensors and a
 * string-to-string metadata map, in the format PyTorch, JAX and Hugging Face tools read.
 *
 * Reads and writes run off the JS thread. Writes are atomic (a temporary file renamed over the
 * target), so a failed or interrupted save leaves the previous file intact. Reads check every
 * size and offset against the file before allocating anything. Failures reject with a
 * `CheckpointError` whose message names the file.
 */

import { ValueError, wrapAsync } from '../errors.js'
import { native, type NativeTensor } from '../native.js'
import { Tensor } from '../tensor.js'
import { refusal, typeError } from '../validate.js'

/** The metadata key of the per-tensor CRC-32s that every save writes and every load verifies. */
export const CHECKSUM_KEY = 'recurrent.crc32'

/** What {@link loadSafetensors} resolves to. */
export interface SafetensorsContents {
  /** The tensors by name, in sorted name order. */
  tensors: Record<string, Tensor>
  /** The file's `__metadata__` map (empty if it has none). */
  metadata: Record<string, string>
}

/**
 * Writes `tensors` and `metadata` to `path` in the safetensors format (float32, float64 and
 * int32 tensors keep their dtype, bit for bit). The tensors are captured as they are at the
 * call, so training may go on (and update them in place) while the file is written. Resolves
 * once the file is complete on disk.
 *
 * @throws ValueError (rejected) for a value that is not a Tensor or metadata that is not a
 *   string-to-string map; CheckpointError when the file cannot be written or a tensor could
 *   not be computed.
 */
export async function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const op = 'saveSafetensors'
  if (typeof path !== 'string' || path.length === 0) throw refusal(op, 'path', 'a non-empty string', path, 'string')
  if (tensors === null || typeof tensors !== 'object') throw new ValueError(op, 'tensors must be an object mapping names to tensors')
  if (metadata === null || typeof metadata !== 'object') throw new ValueError(op, 'metadata must be an object mapping names to strings')
  const names: string[] = []
  const handles: NativeTensor[] = []
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t instanceof Tensor)) throw typeError(op, `'${name}'`, 'a Tensor', t)
    // The format keeps this key for the metadata map: a tensor of that name makes a file that
    // no reader (this one included) accepts.
    if (name === '__metadata__') throw new ValueError(op, `'__metadata__' is reserved by the safetensors format and cannot name a tensor (pass metadata as the third argument)`)
    names.push(name)
    handles.push(t._native)
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw typeError(op, `metadata '${k}'`, 'a string (JSON.stringify it)', v)
    if (k === CHECKSUM_KEY) throw new ValueError(op, `metadata key '${k}' is reserved: it holds the checksums this library writes`)
  }
  // The native call snapshots the tensors synchronously, before the first await.
  await wrapAsync(() => native.saveSafetensors(path, names, handles, { ...metadata }))
}

/**
 * Reads a safetensors file written by {@link saveSafetensors} or by another framework
 * (float32, float64, int32, and int64 values within the int32 range, which load as int32).
 *
 * @throws CheckpointError (rejected) naming the file: missing or unreadable, not a regular
 *   file, truncated, a header that does not parse, points outside the file or declares more
 *   than 65536 tensors or 16 MiB, a tensor whose bytes do not match the CRC-32 the file
 *   records for it (files without checksums load unchecked), or an unsupported dtype.
 */
export async function loadSafetensors(path: string): Promise<SafetensorsContents> {
  const op = 'loadSafetensors'
  if (typeof path !== 'string' || path.length === 0) throw refusal(op, 'path', 'a non-empty string', path, 'string')
  const r = await wrapAsync(() => native.loadSafetensors(path))
  const tensors: Record<string, Tensor> = {}
  r.names.forEach((name, i) => {
    tensors[name] = new Tensor(r.tensors[i]!)
  })
  return { tensors, metadata: { ...r.metadata } }
}
