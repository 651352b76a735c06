/**
 * Token streams for truncated BPTT: a stream of any length is cut into B contiguous rows (one
 * per batch row), and each row is read in chunks of T = seqLen steps. Chunk i holds, for every
 * row b, the inputs `x[t, b]` = token `i·T + t` of row b and the targets `y[t, b]` = the token
 * after it. The rows advance together, so the state of row b after chunk i is the right initial
 * state for chunk i + 1: a TBPTT trainer carries it across chunks.
 *
 * Three sources:
 * - {@link arrayStream}: an Int32Array in memory;
 * - {@link fileStream}: a file read with positional reads, each row reading its own segment
 *   (byte-level, or char-level through a {@link CharVocab}); the file is never loaded whole;
 * - {@link blockStream}: an (async) iterable of Int32Array blocks, each block split into B
 *   rows of independent sequences, with the state of every row reset at each block start.
 *
 * Memory is O(B·T) (plus a read buffer per row), whatever the stream's length. A chunk's
 * position is a pure function of its index (`chunks(from)` starts anywhere), so a resumed run
 * reads exactly the data an uninterrupted one would have.
 */

import { open, type FileHandle } from 'node:fs/promises'
import { ValueError } from '../errors.js'
import { ByteVocab, type CharVocab } from './vocab.js'
import { checkOptions, optionKeys } from '../validate.js'

/** One chunk of a {@link TokenStream}: time-major `[steps, batchSize]` inputs and targets. */
export interface TokenChunk {
  /** Inputs, row-major `[steps, batchSize]`: `x[t·batchSize + b]`. */
  x: Int32Array
  /** Targets (the next token of each input), same layout. */
  y: Int32Array
  /** T of this chunk: `seqLen`, or fewer for the last chunk of a pass. */
  steps: number
  /** B. */
  batchSize: number
  /** Rows whose state must be reset to zero before this chunk (1 = reset), or null for none. */
  reset: Uint8Array | null
  /** Index of this chunk in its pass (0-based). */
  index: number
}

/** A source of {@link TokenChunk}s, one pass at a time. */
export interface TokenStream {
  /** B: rows read in parallel. */
  readonly batchSize: number
  /** T: steps per chunk (the TBPTT k1). */
  readonly seqLen: number
  /** Chunks in one pass, when known in advance (undefined for char-level files and blocks). */
  readonly numChunks: number | undefined
  /**
   * The chunks of one pass over the stream, starting at chunk index `from` (default 0). Each
   * call starts a new pass; breaking out of the loop releases its resources (file handles).
   */
  chunks(from?: number): AsyncIterableIterator<TokenChunk>
}

/** Options of the streams. */
export interface StreamOptions {
  /** B: the number of rows (contiguous segments) read in parallel. */
  batchSize: number
  /** T: steps per chunk. */
  seqLen: number
}

const STREAM_OPTIONS = optionKeys<StreamOptions>({ batchSize: true, seqLen: true })

/** Checks the geometry of `o`, and its keys against `known` (the stream's own options). */
function checkGeometry(op: string, o: StreamOptions, known: readonly string[] = STREAM_OPTIONS): { B: number; T: number } {
  if (o === null || typeof o !== 'object') throw new ValueError(op, 'options { batchSize, seqLen } are required')
  checkOptions(op, o, known)
  const { batchSize: B, seqLen: T } = o
  if (!Number.isInteger(B) || B < 1) throw new ValueError(op, `batchSize must be a positive integer, got ${String(B)}`)
  if (!Number.isInteger(T) || T < 1) throw new ValueError(op, `seqLen must be a positive integer, got ${String(T)}`)
  return { B, T }
}

function checkFrom(op: string, from: number): number {
  if (!Number.isInteger(from) || from < 0) throw new ValueError(op, `from must be an integer ≥ 0, got ${String(from)}`)
  return from
}

// ---- rows ---------------------------------------------------------------------------------------

/** A reader of one row's token sequence (inputs plus the one-token lookahead for the target). */
interface RowReader {
  /** Up to `k` tokens from the current position (fewer only at the row's end). */
  peek(k: number): Promise<Int32Array> | Int32Array
  /** Moves the position `k` tokens on. */
  advance(k: number): void
  /** Moves to token `pos` of the row. */
  seek(pos: number): Promise<void> | void
  close(): Promise<void> | void
}

/**
 * Builds chunks from B row readers: each chunk takes T + 1 tokens of every row (the inputs and,
 * one step later, the targets) and advances T. The pass ends when a row runs out.
 */
async function* rowChunks(rows: RowReader[], T: number, from: number): AsyncGenerator<TokenChunk> {
  const B = rows.length
  try {
    if (from > 0) await Promise.all(rows.map((r) => r.seek(from * T)))
    for (let index = from; ; index++) {
      const got = await Promise.all(rows.map((r) => r.peek(T + 1)))
      let steps = T
      for (const g of got) steps = Math.min(steps, g.length - 1)
      if (steps < 1) return
      const x = new Int32Array(steps * B)
      const y = new Int32Array(steps * B)
      for (let b = 0; b < B; b++) {
        const g = got[b]!
        for (let t = 0; t < steps; t++) {
          x[t * B + b] = g[t]!
          y[t * B + b] = g[t + 1]!
        }
        rows[b]!.advance(steps)
      }
      yield { x, y, steps, batchSize: B, reset: null, index }
      if (steps < T) return
    }
  } finally {
    await Promise.all(rows.map((r) => r.close()))
  }
}

class ArrayRow implements RowReader {
  #pos = 0
  constructor(
    readonly tokens: Int32Array,
    readonly start: number,
    readonly len: number,
  ) {}
  peek(k: number): Int32Array {
    const a = this.start + this.#pos
    return this.tokens.subarray(a, Math.min(a + k, this.start + this.len))
  }
  advance(k: number): void {
    this.#pos += k
  }
  seek(pos: number): void {
    this.#pos = pos
  }
  close(): void {}
}

// ---- arrays -------------------------------------------------------------------------------------

/**
 * A stream over an Int32Array of token ids, cut into B contiguous rows of
 * n = ⌊(N − 1) / B⌋ steps each (the tail that does not fill a row is dropped, as in PyTorch's
 * `batchify`). Row b covers tokens `[b·n, (b+1)·n]` (its last target is the first token of row
 * b + 1). Chunks: ⌈n / T⌉, the last one possibly shorter.
 */
export function arrayStream(tokens: Int32Array, options: StreamOptions): TokenStream {
  const { B, T } = checkGeometry('arrayStream', options)
  if (!(tokens instanceof Int32Array)) throw new ValueError('arrayStream', 'tokens must be an Int32Array')
  const n = Math.floor((tokens.length - 1) / B)
  if (n < 1) throw new ValueError('arrayStream', `${tokens.length} tokens are too few for ${B} rows (need at least ${B + 1})`)
  return {
    batchSize: B,
    seqLen: T,
    numChunks: Math.ceil(n / T),
    chunks(from = 0) {
      checkFrom('arrayStream.chunks', from)
      return rowChunks(
        Array.from({ length: B }, (_, b) => new ArrayRow(tokens, b * n, n + 1)),
        T,
        from,
      )
    },
  }
}

// ---- files --------------------------------------------------------------------------------------

/** Options of {@link fileStream}. */
export interface FileStreamOptions extends StreamOptions {
  /**
   * How bytes become tokens: omitted or a {@link ByteVocab}, one token per byte (ids 0–255);
   * a {@link CharVocab}, one token per UTF-8 character (unknown characters map to its `unk`).
   */
  vocab?: CharVocab | ByteVocab
  /** Bytes each row reads at a time (default 64 KiB). Memory is about B × this. */
  readBytes?: number
}

const FILE_STREAM_OPTIONS = optionKeys<FileStreamOptions>({ batchSize: true, seqLen: true, vocab: true, readBytes: true })

/** A row of bytes read with positional reads through a buffer of its own. */
class ByteFileRow implements RowReader {
  #pos = 0
  #bufStart = 0
  #bufLen = 0
  readonly #buf: Uint8Array
  constructor(
    readonly fh: FileHandle,
    readonly start: number,
    readonly len: number,
    readBytes: number,
  ) {
    this.#buf = new Uint8Array(readBytes)
  }
  async peek(k: number): Promise<Int32Array> {
    const a = this.start + this.#pos
    const want = Math.min(k, this.start + this.len - a)
    if (want <= 0) return new Int32Array(0)
    if (a < this.#bufStart || a + want > this.#bufStart + this.#bufLen) {
      const n = Math.min(Math.max(this.#buf.length, want), this.start + this.len - a)
      const buf = n > this.#buf.length ? new Uint8Array(n) : this.#buf
      let got = 0
      while (got < n) {
        const { bytesRead } = await this.fh.read(buf, got, n - got, a + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      if (buf !== this.#buf) return Int32Array.from(buf.subarray(0, Math.min(got, want)))
      this.#bufStart = a
      this.#bufLen = got
    }
    const off = a - this.#bufStart
    return Int32Array.from(this.#buf.subarray(off, off + Math.min(want, this.#bufLen - off)))
  }
  advance(k: number): void {
    this.#pos += k
  }
  seek(pos: number): void {
    this.#pos = pos
  }
  close(): void {}
}

/**
 * A row of UTF-8 characters: the characters whose first byte lies in `[start, end)`, then one
 * lookahead character (the first one at or after `end`, if the file has it). A row that starts
 * inside a character skips its continuation bytes (the previous row owns that character).
 * Invalid UTF-8 decodes as U+FFFD, one byte at a time.
 */
class CharFileRow implements RowReader {
  readonly #bytes: Uint8Array
  #bytesStart = 0 // file offset of #bytes[0]
  #bytesLen = 0
  #filePos = 0 // next byte to decode
  #tokens = new Int32Array(256)
  #tokLen = 0
  #tokPos = 0
  #lookaheadDone = false
  #eof = false
  constructor(
    readonly fh: FileHandle,
    readonly start: number,
    readonly end: number,
    readonly size: number,
    readonly vocab: CharVocab,
    readBytes: number,
  ) {
    this.#bytes = new Uint8Array(Math.max(readBytes, 8))
    this.#rewind()
  }
  #rewind(): void {
    this.#bytesStart = this.start
    this.#bytesLen = 0
    this.#filePos = this.start
    this.#tokLen = 0
    this.#tokPos = 0
    this.#lookaheadDone = false
    this.#eof = false
  }
  async #readMore(): Promise<boolean> {
    // Keep the undecoded tail, refill behind it.
    const keep = this.#bytesStart + this.#bytesLen - this.#filePos
    this.#bytes.copyWithin(0, this.#filePos - this.#bytesStart, this.#bytesLen)
    this.#bytesStart = this.#filePos
    this.#bytesLen = keep
    const at = this.#bytesStart + keep
    const n = Math.min(this.#bytes.length - keep, this.size - at)
    if (n <= 0) return false
    const { bytesRead } = await this.fh.read(this.#bytes, keep, n, at)
    this.#bytesLen += bytesRead
    return bytesRead > 0
  }
  #push(cp: number): void {
    const id = this.vocab.idOf(cp)
    if (id < 0) throw new ValueError('fileStream', `character U+${cp.toString(16).toUpperCase().padStart(4, '0')} is not in the vocabulary and it has no unknown character`)
    if (this.#tokLen === this.#tokens.length) {
      // Compact, or grow.
      if (this.#tokPos > 0) {
        this.#tokens.copyWithin(0, this.#tokPos, this.#tokLen)
        this.#tokLen -= this.#tokPos
        this.#tokPos = 0
      }
      if (this.#tokLen === this.#tokens.length) {
        const bigger = new Int32Array(this.#tokens.length * 2)
        bigger.set(this.#tokens)
        this.#tokens = bigger
      }
    }
    this.#tokens[this.#tokLen++] = id
  }
  /** Decodes until `k` tokens are buffered or the row (with its lookahead) is done. */
  async #fill(k: number): Promise<void> {
    while (this.#tokLen - this.#tokPos < k && !this.#lookaheadDone && !this.#eof) {
      const avail = this.#bytesStart + this.#bytesLen - this.#filePos
      if (avail < 4 && this.#bytesStart + this.#bytesLen < this.size) {
        await this.#readMore()
        continue
      }
      if (avail <= 0) {
        this.#eof = true
        break
      }
      const base = this.#filePos - this.#bytesStart
      const b = this.#bytes
      const b0 = b[base]!
      // A row after the first starts at its first character boundary.
      if (this.#filePos === this.start && this.start > 0) {
        let skip = 0
        while (skip < 3 && skip < avail && (b[base + skip]! & 0xc0) === 0x80) skip++
        if (skip > 0) {
          this.#filePos += skip
          continue
        }
      }
      const isLookahead = this.#filePos >= this.end
      let cp = 0xfffd
      let len = 1
      const cont = (i: number) => i < avail && (b[base + i]! & 0xc0) === 0x80
      if (b0 < 0x80) {
        cp = b0
      } else if (b0 >= 0xc2 && b0 <= 0xdf) {
        if (cont(1)) {
          cp = ((b0 & 0x1f) << 6) | (b[base + 1]! & 0x3f)
          len = 2
        }
      } else if (b0 >= 0xe0 && b0 <= 0xef) {
        const b1 = b[base + 1] ?? 0
        const ok1 = cont(1) && !(b0 === 0xe0 && b1 < 0xa0) && !(b0 === 0xed && b1 > 0x9f)
        if (ok1 && cont(2)) {
          cp = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b[base + 2]! & 0x3f)
          len = 3
        }
      } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        const b1 = b[base + 1] ?? 0
        const ok1 = cont(1) && !(b0 === 0xf0 && b1 < 0x90) && !(b0 === 0xf4 && b1 > 0x8f)
        if (ok1 && cont(2) && cont(3)) {
          cp = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b[base + 2]! & 0x3f) << 6) | (b[base + 3]! & 0x3f)
          len = 4
        }
      }
      this.#filePos += len
      this.#push(cp)
      if (isLookahead) this.#lookaheadDone = true
    }
  }
  async peek(k: number): Promise<Int32Array> {
    await this.#fill(k)
    return this.#tokens.slice(this.#tokPos, this.#tokPos + Math.min(k, this.#tokLen - this.#tokPos))
  }
  advance(k: number): void {
    this.#tokPos += k
  }
  async seek(pos: number): Promise<void> {
    this.#rewind()
    // Replays the decoding (its position in bytes depends on the characters before).
    let left = pos
    while (left > 0) {
      const step = Math.min(left, 1 << 16)
      await this.#fill(step)
      const have = Math.min(step, this.#tokLen - this.#tokPos)
      this.#tokPos += have
      left -= have
      if (have < step) break
    }
  }
  close(): void {}
}

/**
 * A stream over a file, read in place: each of the B rows reads its own contiguous segment with
 * positional reads (`readBytes` at a time), so memory is about B × readBytes however large the
 * file is.
 *
 * - Byte-level (no vocab, or a {@link ByteVocab}): tokens are the bytes; the geometry is that of
 *   {@link arrayStream} over the file's bytes, and `numChunks` is known.
 * - Char-level (a {@link CharVocab}): row b owns the characters that start in its byte segment
 *   `[b·n, (b+1)·n)`, n = ⌊size / B⌋; rows hold slightly different numbers of characters, and a
 *   pass ends when the shortest runs out. `chunks(from)` replays the decoding up to `from`.
 */
export async function fileStream(path: string, options: FileStreamOptions): Promise<TokenStream> {
  const { B, T } = checkGeometry('fileStream', options, FILE_STREAM_OPTIONS)
  const readBytes = options.readBytes ?? 1 << 16
  if (!Number.isInteger(readBytes) || readBytes < 1) throw new ValueError('fileStream', `readBytes must be a positive integer, got ${readBytes}`)
  const vocab = options.vocab
  const fh0 = await open(path, 'r')
  const size = (await fh0.stat()).size
  await fh0.close()
  const byteLevel = vocab === undefined || vocab instanceof ByteVocab
  if (byteLevel) {
    const n = Math.floor((size - 1) / B)
    if (n < 1) throw new ValueError('fileStream', `'${path}' has ${size} bytes: too few for ${B} rows`)
    return {
      batchSize: B,
      seqLen: T,
      numChunks: Math.ceil(n / T),
      async *chunks(from = 0) {
        checkFrom('fileStream.chunks', from)
        const fh = await open(path, 'r')
        try {
          const rows = Array.from({ length: B }, (_, b) => new ByteFileRow(fh, b * n, n + 1, readBytes))
          yield* rowChunks(rows, T, from)
        } finally {
          await fh.close()
        }
      },
    }
  }
  const n = Math.floor(size / B)
  if (n < 2) throw new ValueError('fileStream', `'${path}' has ${size} bytes: too few for ${B} rows`)
  return {
    batchSize: B,
    seqLen: T,
    numChunks: undefined,
    async *chunks(from = 0) {
      checkFrom('fileStream.chunks', from)
      const fh = await open(path, 'r')
      try {
        const rows = Array.from({ length: B }, (_, b) => new CharFileRow(fh, b * n, (b + 1) * n, size, vocab as CharVocab, readBytes))
        yield* rowChunks(rows, T, from)
      } finally {
        await fh.close()
      }
    },
  }
}

// ---- blocks of independent sequences ---------------------------------------------------------------

/** A source of blocks: an (async) iterable, or a function returning a fresh one for each pass. */
export type BlockSource =
  | Iterable<Int32Array>
  | AsyncIterable<Int32Array>
  | (() => Iterable<Int32Array> | AsyncIterable<Int32Array>)

/**
 * A stream over blocks of tokens, e.g. documents or records arriving from a queue. Each block of
 * N tokens is split into B contiguous rows of L = ⌊N / B⌋ tokens (the remainder is dropped; a
 * block with L < 2 is skipped), giving L − 1 steps in ⌈(L − 1) / T⌉ chunks. Blocks are
 * independent: the first chunk of every block resets the state of every row.
 *
 * Pass a function returning a fresh iterable to train for several epochs or to resume
 * (`chunks(from)` re-reads the source from its start and skips `from` chunks).
 */
export function blockStream(source: BlockSource, options: StreamOptions): TokenStream {
  const { B, T } = checkGeometry('blockStream', options)
  let used = false
  const open = (): Iterable<Int32Array> | AsyncIterable<Int32Array> => {
    if (typeof source === 'function') return source()
    if (used && isIterator(source)) {
      throw new ValueError('blockStream', 'this block source is a one-shot iterator and was already read: pass a function returning a fresh iterable for another pass')
    }
    used = true
    return source
  }
  return {
    batchSize: B,
    seqLen: T,
    numChunks: undefined,
    async *chunks(from = 0) {
      checkFrom('blockStream.chunks', from)
      let index = 0
      for await (const block of open()) {
        if (!(block instanceof Int32Array)) throw new ValueError('blockStream', 'each block must be an Int32Array of token ids')
        const L = Math.floor(block.length / B)
        if (L < 2) continue
        const steps = L - 1
        const count = Math.ceil(steps / T)
        if (index + count <= from) {
          index += count
          continue
        }
        for (let k = 0; k < count; k++, index++) {
          if (index < from) continue
          const s = k * T
          const st = Math.min(T, steps - s)
          const x = new Int32Array(st * B)
          const y = new Int32Array(st * B)
          for (let b = 0; b < B; b++) {
            const base = b * L + s
            for (let t = 0; t < st; t++) {
              x[t * B + b] = block[base + t]!
              y[t * B + b] = block[base + t + 1]!
            }
          }
          yield { x, y, steps: st, batchSize: B, reset: k === 0 ? new Uint8Array(B).fill(1) : null, index }
        }
      }
    },
  }
}

function isIterator(x: unknown): boolean {
  return x !== null && typeof x === 'object' && typeof (x as { next?: unknown }).next === 'function'
}
