/**
 * Vocabularies for character- and byte-level language models: text ↔ int32 token ids,
 * serialisable to JSON (so that a checkpoint carries the vocabulary it was trained with).
 */

import { open } from 'node:fs/promises'
import { ValueError } from '../errors.js'

/** What every vocabulary offers. */
export interface Vocab {
  /** Number of token ids: ids are in `[0, size)`. */
  readonly size: number
  /** The ids of `text`. */
  encode(text: string): Int32Array
  /** The text of `ids`. */
  decode(ids: ArrayLike<number>): string
  /** A JSON-serialisable description; {@link vocabFromJSON} rebuilds the vocabulary. */
  toJSON(): VocabJSON
}

/** The JSON form of a vocabulary. */
export type VocabJSON = { type: 'char'; chars: string[]; unk: string | null } | { type: 'byte' }

/** Options of {@link CharVocab.fromText} and {@link CharVocab.fromFile}. */
export interface CharVocabOptions {
  /**
   * The character that stands for every character not in the vocabulary. It gets id 0. Default
   * `'\uFFFD'` (the replacement character); `null` makes `encode` throw on unknown characters.
   */
  unk?: string | null
  /** Keep only characters seen at least this many times (default 1). */
  minCount?: number
  /** Keep at most this many characters, the most frequent ones (ties: lower code point first). */
  maxSize?: number
}

/** Options of {@link CharVocab.fromFile}. */
export interface CharVocabFileOptions extends CharVocabOptions {
  /**
   * Read at most this many bytes from the start of the file (default: the whole file). The file
   * is read in 1 MiB pieces, never loaded whole.
   */
  sampleBytes?: number
}

const DEFAULT_UNK = '\uFFFD'

/**
 * A character vocabulary: ids are Unicode code points, sorted by code point (with the unknown
 * character, if any, at id 0), as in the classic char-rnn. Characters outside the vocabulary
 * encode as the unknown id (or throw with `unk: null`).
 *
 * ```ts
 * const vocab = await CharVocab.fromFile('input.txt')
 * const ids = vocab.encode('hello')   // Int32Array
 * vocab.decode(ids)                    // 'hello'
 * JSON.stringify(vocab)                // { type: 'char', chars: [...], unk: '\uFFFD' }
 * ```
 */
export class CharVocab implements Vocab {
  /** The character of each id. */
  readonly chars: readonly string[]
  /** The unknown character, or null. */
  readonly unk: string | null
  /** Id of the unknown character, or −1 without one. */
  readonly unkId: number
  readonly #bmp: Int32Array
  readonly #astral = new Map<number, number>()

  /** A vocabulary of exactly these characters (ids in this order); see {@link fromText}. */
  constructor(chars: readonly string[], unk: string | null = null) {
    if (!Array.isArray(chars)) throw new ValueError('CharVocab', 'chars must be an array of single characters')
    this.#bmp = new Int32Array(65536).fill(-1)
    const list: string[] = []
    for (const ch of chars) {
      if (typeof ch !== 'string' || [...ch].length !== 1) throw new ValueError('CharVocab', `each entry must be one character, got ${JSON.stringify(ch)}`)
      const cp = ch.codePointAt(0)!
      if (this.#lookup(cp) >= 0) throw new ValueError('CharVocab', `duplicate character ${JSON.stringify(ch)}`)
      this.#set(cp, list.length)
      list.push(ch)
    }
    if (unk !== null) {
      if (typeof unk !== 'string' || [...unk].length !== 1) throw new ValueError('CharVocab', `unk must be one character or null, got ${JSON.stringify(unk)}`)
      const id = this.#lookup(unk.codePointAt(0)!)
      if (id < 0) throw new ValueError('CharVocab', `the unknown character ${JSON.stringify(unk)} must be one of the chars`)
      this.unkId = id
    } else {
      this.unkId = -1
    }
    this.unk = unk
    this.chars = Object.freeze(list)
  }

  #set(cp: number, id: number): void {
    if (cp < 65536) this.#bmp[cp] = id
    else this.#astral.set(cp, id)
  }

  #lookup(cp: number): number {
    return cp < 65536 ? this.#bmp[cp]! : (this.#astral.get(cp) ?? -1)
  }

  /** Number of ids. */
  get size(): number {
    return this.chars.length
  }

  /** Builds the vocabulary of the characters of `text`. */
  static fromText(text: string, options: CharVocabOptions = {}): CharVocab {
    const counts = new Map<number, number>()
    countChars(text, counts)
    return CharVocab.#fromCounts(counts, options)
  }

  /**
   * Builds the vocabulary of a UTF-8 text file (or of its first `sampleBytes` bytes), reading
   * it in pieces.
   */
  static async fromFile(path: string, options: CharVocabFileOptions = {}): Promise<CharVocab> {
    const counts = new Map<number, number>()
    const fh = await open(path, 'r')
    try {
      const size = (await fh.stat()).size
      const limit = Math.min(size, options.sampleBytes ?? size)
      const decoder = new TextDecoder('utf-8')
      const buf = new Uint8Array(1 << 20)
      let pos = 0
      while (pos < limit) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, limit - pos), pos)
        if (bytesRead === 0) break
        pos += bytesRead
        countChars(decoder.decode(buf.subarray(0, bytesRead), { stream: pos < limit }), counts)
      }
    } finally {
      await fh.close()
    }
    return CharVocab.#fromCounts(counts, options)
  }

  static #fromCounts(counts: Map<number, number>, options: CharVocabOptions): CharVocab {
    const unk = options.unk === undefined ? DEFAULT_UNK : options.unk
    const minCount = options.minCount ?? 1
    let cps = [...counts.entries()].filter(([, n]) => n >= minCount)
    if (options.maxSize !== undefined) {
      const room = options.maxSize - (unk !== null ? 1 : 0)
      if (!Number.isInteger(options.maxSize) || room < 1) throw new ValueError('CharVocab', `maxSize must leave room for one character, got ${options.maxSize}`)
      cps = cps.sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, room)
    }
    const unkCp = unk !== null ? unk.codePointAt(0)! : -1
    const sorted = cps.map(([cp]) => cp).filter((cp) => cp !== unkCp).sort((a, b) => a - b)
    const chars = sorted.map((cp) => String.fromCodePoint(cp))
    return new CharVocab(unk !== null ? [unk, ...chars] : chars, unk)
  }

  /** Rebuilds a vocabulary from its {@link toJSON} form. */
  static fromJSON(json: VocabJSON | string): CharVocab {
    const j = typeof json === 'string' ? (JSON.parse(json) as VocabJSON) : json
    if (j === null || typeof j !== 'object' || j.type !== 'char' || !Array.isArray(j.chars)) {
      throw new ValueError('CharVocab.fromJSON', `expected { type: 'char', chars: [...], unk }, got ${JSON.stringify(j)?.slice(0, 80)}`)
    }
    return new CharVocab(j.chars, j.unk ?? null)
  }

  /** The id of one code point: the unknown id if it has none, or −1 without an unknown character. */
  idOf(codePoint: number): number {
    const id = this.#lookup(codePoint)
    return id >= 0 ? id : this.unkId
  }

  /** The ids of the characters of `text`; unknown characters map to {@link unkId} (or throw). */
  encode(text: string): Int32Array {
    const out = new Int32Array(text.length)
    let n = 0
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i)
      if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < text.length) {
        const lo = text.charCodeAt(i + 1)
        if (lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00)
          i++
        }
      }
      const id = this.idOf(cp)
      if (id < 0) throw new ValueError('CharVocab.encode', `character ${JSON.stringify(String.fromCodePoint(cp))} (U+${cp.toString(16).toUpperCase().padStart(4, '0')}) is not in the vocabulary and there is no unknown character`)
      out[n++] = id
    }
    return n === out.length ? out : out.slice(0, n)
  }

  /** The text of `ids`; throws on an id outside `[0, size)`. */
  decode(ids: ArrayLike<number>): string {
    let s = ''
    for (let i = 0; i < ids.length; i++) {
      const ch = this.chars[ids[i]!]
      if (ch === undefined) throw new ValueError('CharVocab.decode', `id ${ids[i]} is out of [0, ${this.size})`)
      s += ch
    }
    return s
  }

  toJSON(): VocabJSON {
    return { type: 'char', chars: [...this.chars], unk: this.unk }
  }
}

/**
 * The byte vocabulary: 256 ids, one per byte of the UTF-8 encoding. Every text encodes; decoding
 * an arbitrary id sequence replaces invalid UTF-8 with U+FFFD.
 */
export class ByteVocab implements Vocab {
  readonly size = 256
  encode(text: string): Int32Array {
    return Int32Array.from(new TextEncoder().encode(text))
  }
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length)
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!
      if (!Number.isInteger(v) || v < 0 || v > 255) throw new ValueError('ByteVocab.decode', `id ${v} is out of [0, 256)`)
      bytes[i] = v
    }
    return new TextDecoder('utf-8').decode(bytes)
  }
  toJSON(): VocabJSON {
    return { type: 'byte' }
  }
}

/** Rebuilds a {@link CharVocab} or {@link ByteVocab} from its JSON form (object or string). */
export function vocabFromJSON(json: VocabJSON | string): CharVocab | ByteVocab {
  const j = typeof json === 'string' ? (JSON.parse(json) as VocabJSON) : json
  if (j && j.type === 'byte') return new ByteVocab()
  return CharVocab.fromJSON(j)
}

function countChars(text: string, counts: Map<number, number>): void {
  for (const ch of text) {
    const cp = ch.codePointAt(0)!
    counts.set(cp, (counts.get(cp) ?? 0) + 1)
  }
}
