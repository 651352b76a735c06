/**
 * A minimal Protocol Buffers encoder (proto2/proto3 wire format), enough to write ONNX models
 * without a dependency: varints, 32-bit floats, length-delimited strings, bytes and nested
 * messages, and packed repeated scalars.
 *
 * Wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit. A field's key is
 * `(field << 3) | wireType`, itself a varint. Negative int64 values are written as 10-byte
 * two's-complement varints, as protobuf requires for `int64`/`int32`.
 *
 * @internal Used by `io/onnx.ts`; not part of the public API.
 */

const textEncoder = new TextEncoder()

/** Builds one message. Nested messages are built by their own writer and embedded with {@link message}. */
export class ProtoWriter {
  #chunks: Uint8Array[] = []
  #buf = new Uint8Array(256)
  #pos = 0
  #length = 0

  /** Bytes written so far. */
  get length(): number {
    return this.#length + this.#pos
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return
    this.#flush()
    if (n > this.#buf.length) this.#buf = new Uint8Array(Math.max(n, 256))
  }

  #flush(): void {
    if (this.#pos === 0) return
    this.#chunks.push(this.#buf.slice(0, this.#pos))
    this.#length += this.#pos
    this.#pos = 0
  }

  /** A raw varint (no key). `v` is an integer; negative values take 10 bytes (two's complement). */
  rawVarint(v: number | bigint): void {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf: varint must be a safe integer, got ${v}`)
      if (v >= 0) {
        this.#ensure(10)
        while (v > 0x7f) {
          this.#buf[this.#pos++] = (v % 0x80) | 0x80
          v = Math.floor(v / 0x80)
        }
        this.#buf[this.#pos++] = v
        return
      }
      v = BigInt(v)
    }
    let u = BigInt.asUintN(64, v)
    this.#ensure(10)
    while (u > 0x7fn) {
      this.#buf[this.#pos++] = Number(u & 0x7fn) | 0x80
      u >>= 7n
    }
    this.#buf[this.#pos++] = Number(u)
  }

  #key(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire)
  }

  /** Raw bytes (no key, no length). */
  rawBytes(bytes: Uint8Array): void {
    if (bytes.length > 1024) {
      this.#flush()
      this.#chunks.push(bytes)
      this.#length += bytes.length
      return
    }
    this.#ensure(bytes.length)
    this.#buf.set(bytes, this.#pos)
    this.#pos += bytes.length
  }

  /** An `int32`/`int64`/`uint64`/`bool`/enum field (wire type 0). */
  int(field: number, v: number | bigint | boolean): this {
    this.#key(field, 0)
    this.rawVarint(typeof v === 'boolean' ? (v ? 1 : 0) : v)
    return this
  }

  /** A `float` field (wire type 5, little-endian IEEE 754 single). */
  float(field: number, v: number): this {
    this.#key(field, 5)
    this.#ensure(4)
    new DataView(this.#buf.buffer, this.#buf.byteOffset).setFloat32(this.#pos, v, true)
    this.#pos += 4
    return this
  }

  /** A `bytes` field (wire type 2). */
  bytes(field: number, b: Uint8Array): this {
    this.#key(field, 2)
    this.rawVarint(b.length)
    this.rawBytes(b)
    return this
  }

  /** A `string` field, UTF-8 (wire type 2). */
  string(field: number, s: string): this {
    return this.bytes(field, textEncoder.encode(s))
  }

  /** An embedded message field (wire type 2), built by `build` on a fresh writer. */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const w = new ProtoWriter()
    build(w)
    const parts = w.chunks()
    let n = 0
    for (const p of parts) n += p.length
    this.#key(field, 2)
    this.rawVarint(n)
    for (const p of parts) this.rawBytes(p)
    return this
  }

  /** A packed repeated varint field (`repeated int64 x = n [packed]`); nothing if empty. */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    if (values.length === 0) return this
    const w = new ProtoWriter()
    for (const v of values) w.rawVarint(v)
    return this.bytes(field, w.finish())
  }

  /** A packed repeated float field; nothing if empty. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this
    const b = new Uint8Array(values.length * 4)
    const dv = new DataView(b.buffer)
    for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i]!, true)
    return this.bytes(field, b)
  }

  /** The chunks written so far (no copy of large payloads). */
  chunks(): Uint8Array[] {
    this.#flush()
    return this.#chunks
  }

  /** The whole message as one array. */
  finish(): Uint8Array {
    const parts = this.chunks()
    if (parts.length === 1) return parts[0]!
    const out = new Uint8Array(this.#length)
    let o = 0
    for (const p of parts) {
      out.set(p, o)
      o += p.length
    }
    return out
  }
}

/** One decoded field: number, wire type, and its value (a bigint for varints, bytes otherwise). */
export interface ProtoField {
  field: number
  wire: number
  /** Varints (wire 0) as bigint; 64-bit (wire 1) and 32-bit (wire 5) fields as raw bytes. */
  value: bigint | Uint8Array
}

/**
 * Decodes the top-level fields of one message (no schema): enough to inspect what
 * {@link ProtoWriter} wrote, in tests and error messages.
 */
export function decodeFields(buf: Uint8Array): ProtoField[] {
  const out: ProtoField[] = []
  let p = 0
  const varint = (): bigint => {
    let r = 0n
    let s = 0n
    for (;;) {
      if (p >= buf.length) throw new RangeError('protobuf: truncated varint')
      const b = buf[p++]!
      r |= BigInt(b & 0x7f) << s
      if ((b & 0x80) === 0) return r
      s += 7n
    }
  }
  while (p < buf.length) {
    const key = Number(varint())
    const field = key >>> 3
    const wire = key & 7
    let value: bigint | Uint8Array
    if (wire === 0) value = varint()
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4
      if (p + n > buf.length) throw new RangeError('protobuf: truncated fixed field')
      value = buf.subarray(p, p + n)
      p += n
    } else if (wire === 2) {
      const n = Number(varint())
      if (p + n > buf.length) throw new RangeError('protobuf: truncated length-delimited field')
      value = buf.subarray(p, p + n)
      p += n
    } else throw new RangeError(`protobuf: unsupported wire type ${wire}`)
    out.push({ field, wire, value })
  }
  return out
}
