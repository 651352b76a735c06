/**
 * Safetensors files: exact round trips (dtypes, special values, metadata), the on-disk format
 * read back by hand, snapshots taken at the call, and bad files → CheckpointError naming them.
 */

import test from 'ava'

import { CheckpointError, type Tensor, ValueError, loadSafetensors, saveSafetensors, tensor, randn } from '../index.js'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

const dir = mkdtempSync(join(tmpdir(), 'recurrent-safetensors-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

let n = 0
const fresh = (name = 'f') => join(dir, `${name}-${n++}.safetensors`)

/** The raw bits of a typed array, so that NaN and −0 compare exactly. */
function bits(a: Float32Array | Float64Array | Int32Array): number[] {
  return a instanceof Float64Array ? Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length * 2)) : Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))
}

/** A safetensors file from a header object and data bytes (for crafting bad files). */
function craft(header: unknown, data: Uint8Array, headerLen?: number): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(headerLen ?? h.length))
  return Buffer.concat([len, h, Buffer.from(data)])
}

test('round trip is exact: float32 (NaN, ±Infinity, −0, subnormals), float64, int32, scalars, and metadata', async (t) => {
  const f32 = new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, 0.1])
  const f64 = new Float64Array([0.1, -0, Number.MIN_VALUE, Number.MAX_VALUE, Math.PI, NaN])
  const i32 = new Int32Array([-2147483648, 2147483647, 0, -1, 42, 7])
  const r = randn([3, 4, 5], { seed: 11 })
  const tensors: Record<string, Tensor> = {
    'model.weight_ih_l0': tensor(f32, [2, 4]),
    'optimizer.state.0.exp_avg': tensor(f64, [3, 2]),
    lengths: tensor(i32, [6]),
    scalar: tensor(2.5),
    big: r,
  }
  const metadata = { format: 'pt', note: 'ünïcödé ✓ "quoted" \\ back', json: JSON.stringify({ step: 12, lr: 0.001 }), empty: '' }
  const file = fresh()
  await saveSafetensors(file, tensors, metadata)
  const back = await loadSafetensors(file)
  t.deepEqual(Object.keys(back.tensors), Object.keys(tensors).sort(), 'names, in sorted order')
  t.deepEqual(back.metadata, metadata)
  for (const [name, want] of Object.entries(tensors)) {
    const got = back.tensors[name]!
    t.deepEqual(got.shape, want.shape, `${name}: shape`)
    t.is(got.dtype, want.dtype, `${name}: dtype`)
    t.deepEqual(bits(await got.data()), bits(await want.data()), `${name}: bits`)
  }
  t.deepEqual(back.tensors.scalar!.shape, [])
  t.is(back.tensors.lengths!.dtype, 'int32')

  // No metadata: an empty map. No tensors: still a valid file.
  const plain = fresh()
  await saveSafetensors(plain, { x: tensor([1, 2]) })
  t.deepEqual((await loadSafetensors(plain)).metadata, {})
  const empty = fresh()
  await saveSafetensors(empty, {}, { only: 'metadata' })
  const e = await loadSafetensors(empty)
  t.deepEqual(e.tensors, {})
  t.deepEqual(e.metadata, { only: 'metadata' })
})

test('the file is standard safetensors: u64 header length, JSON header with dtype/shape/data_offsets, little-endian data', async (t) => {
  const file = fresh()
  await saveSafetensors(file, { b: tensor(new Int32Array([1, -2]), [2, 1]), a: tensor([1.5, -2], [2]) }, { k: 'v' })
  const buf = readFileSync(file)
  const len = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'))
  // Besides the caller's entries, the CRC-32 of each tensor's bytes, in sorted-name order.
  const body = buf.subarray(8 + len)
  const crc = (n: string) => crc32(body.subarray(...(header[n].data_offsets as [number, number]))).toString(16).padStart(8, '0')
  t.deepEqual(header.__metadata__, { k: 'v', 'recurrent.crc32': `${crc('a')},${crc('b')}` })
  t.is(header.a.dtype, 'F32')
  t.deepEqual(header.a.shape, [2])
  t.is(header.b.dtype, 'I32')
  t.deepEqual(header.b.shape, [2, 1])
  const data = buf.subarray(8 + len)
  const [s, e] = header.a.data_offsets as [number, number]
  t.is(e - s, 8)
  t.is(data.readFloatLE(s), 1.5)
  t.is(data.readFloatLE(s + 4), -2)
  const [sb] = header.b.data_offsets as [number, number]
  t.is(data.readInt32LE(sb + 4), -2)
})

test('files written by other tools load: int64 becomes int32; a file we did not write round trips', async (t) => {
  const data = new Uint8Array(24)
  const dv = new DataView(data.buffer)
  dv.setBigInt64(0, 5n, true)
  dv.setBigInt64(8, -7n, true)
  dv.setFloat32(16, 0.25, true)
  dv.setFloat32(20, -1, true)
  const file = fresh('foreign')
  writeFileSync(file, craft({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, w: { dtype: 'F32', shape: [1, 2], data_offsets: [16, 24] } }, data))
  const { tensors, metadata } = await loadSafetensors(file)
  t.deepEqual(metadata, {})
  t.is(tensors.ids!.dtype, 'int32')
  t.deepEqual(Array.from(await tensors.ids!.data()), [5, -7])
  t.deepEqual(Array.from(await tensors.w!.data()), [0.25, -1])

  const big = new Uint8Array(8)
  new DataView(big.buffer).setBigInt64(0, 1n << 40n, true)
  const file2 = fresh('int64')
  writeFileSync(file2, craft({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, big))
  await t.throwsAsync(loadSafetensors(file2), { instanceOf: CheckpointError, message: /int64 1099511627776, outside the int32 range/ })

  const f16 = fresh('f16')
  writeFileSync(f16, craft({ h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)))
  await t.throwsAsync(loadSafetensors(f16), { instanceOf: CheckpointError, message: /dtype F16; supported: F32, F64, I32, I64/ })
})

test('a save captures the tensors as they are at the call; later in-place updates do not reach the file', async (t) => {
  const w = tensor([1, 2, 3])
  const file = fresh()
  const saving = saveSafetensors(file, { w })
  w.assign(tensor([7, 8, 9])) // e.g. an optimizer step right after
  await saving
  t.deepEqual(Array.from(await (await loadSafetensors(file)).tensors.w!.data()), [1, 2, 3])
})

test('saving over an existing file replaces it atomically and leaves no temporary files', async (t) => {
  const sub = mkdtempSync(join(dir, 'atomic-'))
  const file = join(sub, 'ckpt.safetensors')
  await saveSafetensors(file, { x: tensor([1]) }, { v: '1' })
  await saveSafetensors(file, { x: tensor([2]) }, { v: '2' })
  const back = await loadSafetensors(file)
  t.deepEqual(back.metadata, { v: '2' })
  t.deepEqual(Array.from(await back.tensors.x!.data()), [2])
  t.deepEqual(readdirSync(sub), ['ckpt.safetensors'])

  // A write that fails (the target is a directory) rejects, naming it, and leaves it as it was.
  const target = join(sub, 'a-dir')
  await saveSafetensors(join(sub, 'keep.safetensors'), { x: tensor([3]) })
  const { mkdirSync } = await import('node:fs')
  mkdirSync(target)
  const e = await t.throwsAsync(saveSafetensors(target, { x: tensor([4]) }), { instanceOf: CheckpointError })
  t.is(e!.op, 'saveSafetensors')
  t.true(e!.message.includes(`'${target}'`), e!.message)
  t.true(existsSync(target))
  t.deepEqual(readdirSync(sub).sort(), ['a-dir', 'ckpt.safetensors', 'keep.safetensors'], 'no temporary file left behind')

  const missingDir = join(sub, 'no', 'such', 'dir', 'x.safetensors')
  const e2 = await t.throwsAsync(saveSafetensors(missingDir, { x: tensor([1]) }), { instanceOf: CheckpointError })
  t.regex(e2!.message, /^saveSafetensors: cannot write '.*x\.safetensors'/)
})

test('bad files reject with a CheckpointError that names the file and says what is wrong', async (t) => {
  const good = fresh('good')
  await saveSafetensors(good, { a: tensor([1, 2, 3, 4], [2, 2]), b: tensor([5, 6]) }, { m: 'x' })
  const bytes = readFileSync(good)

  const check = async (file: string, pattern: RegExp, what: string) => {
    const e = await t.throwsAsync(loadSafetensors(file), { instanceOf: CheckpointError }, what)
    if (!e) return
    t.is(e.code, 'ERR_CHECKPOINT')
    t.is(e.op, 'loadSafetensors', what)
    t.true(e.message.includes(`'${file}'`), `${what}: names the file: ${e.message}`)
    t.regex(e.message, pattern, what)
  }

  // Truncated: the data stops early.
  const cut = fresh('truncated')
  writeFileSync(cut, bytes)
  truncateSync(cut, bytes.length - 5)
  await check(cut, /not a valid safetensors file/, 'truncated data')

  // Shorter than the 8-byte length prefix.
  const tiny = fresh('tiny')
  writeFileSync(tiny, Buffer.from([1, 2, 3]))
  await check(tiny, /is truncated: 3 bytes, a safetensors file has at least 8/, 'shorter than 8 bytes')

  // Header length larger than the file.
  const longHeader = fresh('header-len')
  writeFileSync(longHeader, craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4), 100000))
  await check(longHeader, /header claims 100000 bytes but only \d+ follow/, 'header length past the end')

  // Offsets out of range: the header points past the data.
  const offsets = fresh('offsets')
  writeFileSync(offsets, craft({ a: { dtype: 'F32', shape: [200], data_offsets: [0, 800] } }, new Uint8Array(8)))
  await check(offsets, /not a valid safetensors file/, 'offsets out of range')

  // Offsets inconsistent with the shape.
  const mismatch = fresh('shape-offsets')
  writeFileSync(mismatch, craft({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)))
  await check(mismatch, /not a valid safetensors file/, 'offsets do not match the shape')

  // A header that is not JSON; random garbage.
  const notJson = fresh('not-json')
  const h = Buffer.from('{"a": nope', 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(h.length))
  writeFileSync(notJson, Buffer.concat([len, h]))
  await check(notJson, /not a valid safetensors file/, 'header not JSON')
  const garbage = fresh('garbage')
  const g = Buffer.alloc(4096)
  for (let i = 0; i < g.length; i++) g[i] = (i * 2654435761) >>> 24
  writeFileSync(garbage, g)
  await check(garbage, /truncated or corrupt|not a valid safetensors file/, 'garbage')

  // A missing file.
  const missing = join(dir, 'does-not-exist.safetensors')
  await check(missing, /cannot read '.*does-not-exist\.safetensors': .*(No such file|not found|os error 2)/i, 'missing file')
})

test('bad arguments are ValueErrors', async (t) => {
  await t.throwsAsync(saveSafetensors(fresh(), { a: [1, 2] as unknown as Tensor }), { instanceOf: ValueError, message: /'a' must be a Tensor/ })
  await t.throwsAsync(saveSafetensors(fresh(), { a: tensor([1]) }, { n: 3 as unknown as string }), { instanceOf: ValueError, message: /metadata 'n' must be a string/ })
  await t.throwsAsync(saveSafetensors('', { a: tensor([1]) }), { instanceOf: ValueError, message: /path/ })
  await t.throwsAsync(loadSafetensors(42 as unknown as string), { instanceOf: ValueError, message: /path/ })
})
