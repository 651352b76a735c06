/**
 * Vocabularies: character- and byte-level ones for language models, and token vocabularies
 * (characters or words, with PAD/BOS/EOS/UNK) for seq2seq. Text ↔ int32 token ids,
 * serialisable to JSON (so that a checkpoint carries the vocabulary it was trained with).
 */

import { open } from 'node:fs/promises'
import { ValueError } from '../errors.js'
import { boolArg, checkOptions, numberArg, optionKeys, typeError } from '../validate.js'

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

const CHAR_VOCAB_OPTIONS = optionKeys<CharVocabOptions>({ unk: true, minCount: true, maxSize: true })
const CHAR_VOCAB_FILE_OPTIONS = optionKeys<CharVocabFileOptions>({ unk: true, minCount: true, maxSize: true, sampleBytes: true })

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
    options = checkOptions('CharVocab.fromText', options, CHAR_VOCAB_OPTIONS)
    if (typeof text !== 'string') throw typeError('CharVocab.fromText', "argument 'text'", 'a string', text)
    const counts = new Map<number, number>()
    countChars(text, counts)
    return CharVocab.#fromCounts(counts, options)
  }

  /**
   * Builds the vocabulary of a UTF-8 text file (or of its first `sampleBytes` bytes), reading
   * it in pieces.
   */
  static async fromFile(path: string, options: CharVocabFileOptions = {}): Promise<CharVocab> {
    options = checkOptions('CharVocab.fromFile', options, CHAR_VOCAB_FILE_OPTIONS)
    if (options.sampleBytes !== undefined) numberArg('CharVocab.fromFile', 'sampleBytes', options.sampleBytes, { integer: true, min: 0 })
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
    if (unk !== null && typeof unk !== 'string') throw typeError('CharVocab', 'unk', 'one character or null', unk)
    const minCount = numberArg('CharVocab', 'minCount', options.minCount ?? 1, { integer: true, min: 1 })
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

/** How a {@link TokenVocab} splits text: into characters (code points) or whitespace-separated words. */
export type TokenMode = 'char' | 'word'

/** Options of {@link TokenVocab.build}. */
export interface TokenVocabOptions {
  /** `'char'` (default): one token per code point; `'word'`: tokens separated by whitespace. */
  mode?: TokenMode
  /** Keep only tokens seen at least this many times (default 1); the others encode as UNK. */
  minCount?: number
  /** At most this many ids in all, the 4 specials included: the most frequent tokens are kept. */
  maxSize?: number
}

const TOKEN_VOCAB_OPTIONS = optionKeys<TokenVocabOptions>({ mode: true, minCount: true, maxSize: true })

/** Options of {@link TokenVocab.encode}. */
export interface TokenEncodeOptions {
  /** Start with BOS (default false). */
  bos?: boolean
  /** End with EOS (default false). */
  eos?: boolean
}

const TOKEN_ENCODE_OPTIONS = optionKeys<TokenEncodeOptions>({ bos: true, eos: true })

/** The JSON form of a {@link TokenVocab}: the specials are fixed, and listed so that other readers need not know them. */
export interface TokenVocabJSON {
  type: 'tokens'
  mode: TokenMode
  specials: { pad: 0; bos: 1; eos: 2; unk: 3 }
  /** The ordinary tokens; the i-th has id `4 + i`. */
  tokens: string[]
}

const SPECIALS = { pad: 0, bos: 1, eos: 2, unk: 3 } as const
const FIRST_TOKEN = 4
const WHITESPACE = /\s+/u

/**
 * A vocabulary for seq2seq: characters or whitespace-separated words, plus four special ids at
 * fixed places: PAD = 0, BOS = 1, EOS = 2, UNK = 3 (so that padding, the decoder's start token,
 * `ignoreIndex` and beam search agree without being told). Ordinary tokens follow from id 4, the
 * most frequent first (ties: in code-point order). The specials are not tokens of the text: a
 * word `<unk>` in the text is an ordinary word.
 *
 * ```ts
 * const vocab = TokenVocab.build(['hello world', 'hello'], { mode: 'word' })
 * vocab.encode('hello there', { bos: true, eos: true })  // [1, 4, 3, 2]
 * vocab.decode([1, 4, 5, 2, 0, 0])                        // 'hello world'
 * saveCheckpoint(path, { model, metadata: { vocab: vocab.toJSON() } })
 * TokenVocab.fromJSON(ck.metadata.vocab)
 * ```
 */
export class TokenVocab {
  static readonly PAD = SPECIALS.pad
  static readonly BOS = SPECIALS.bos
  static readonly EOS = SPECIALS.eos
  static readonly UNK = SPECIALS.unk
  readonly pad = SPECIALS.pad
  readonly bos = SPECIALS.bos
  readonly eos = SPECIALS.eos
  readonly unk = SPECIALS.unk
  readonly mode: TokenMode
  /** The ordinary tokens; `tokens[i]` has id `4 + i`. */
  readonly tokens: readonly string[]
  readonly #ids: Map<string, number>

  /** A vocabulary of exactly these ordinary tokens (ids 4, 5, … in this order); see {@link build}. */
  constructor(mode: TokenMode, tokens: readonly string[]) {
    this.#ids = tokenIds('TokenVocab', mode, tokens)
    this.mode = mode
    this.tokens = Object.freeze([...tokens])
  }

  /** Number of ids: the 4 specials and the ordinary tokens. */
  get size(): number {
    return FIRST_TOKEN + this.tokens.length
  }

  /** The tokens of `text` in this vocabulary's mode (code points, or whitespace-separated words). */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new ValueError('TokenVocab.tokenize', `text must be a string, got ${typeof text}`)
    if (this.mode === 'char') return [...text]
    return text.split(WHITESPACE).filter((w) => w !== '')
  }

  /** Builds the vocabulary of the tokens of `texts`. */
  static build(texts: Iterable<string>, options: TokenVocabOptions = {}): TokenVocab {
    const what = 'TokenVocab.build'
    options = checkOptions(what, options, TOKEN_VOCAB_OPTIONS)
    const mode = options.mode ?? 'char'
    if (mode !== 'char' && mode !== 'word') throw new ValueError(what, `mode must be 'char' or 'word', got ${JSON.stringify(mode)}`)
    const minCount = options.minCount ?? 1
    if (!Number.isInteger(minCount) || minCount < 1) throw new ValueError(what, `minCount must be a positive integer, got ${String(minCount)}`)
    const maxSize = options.maxSize
    if (maxSize !== undefined && !(Number.isInteger(maxSize) && maxSize > FIRST_TOKEN)) {
      throw new ValueError(what, `maxSize must be an integer > ${FIRST_TOKEN} (the specials PAD, BOS, EOS, UNK take ids 0-3), got ${String(maxSize)}`)
    }
    if (texts === null || typeof texts !== 'object' || !(Symbol.iterator in texts)) throw new ValueError(what, 'texts must be an iterable of strings')
    const splitter = new TokenVocab(mode, [])
    const counts = new Map<string, number>()
    let i = 0
    for (const text of texts) {
      if (typeof text !== 'string') throw new ValueError(what, `texts[${i}] must be a string, got ${text === null ? 'null' : typeof text}`)
      for (const tok of splitter.tokenize(text)) counts.set(tok, (counts.get(tok) ?? 0) + 1)
      i++
    }
    const kept = [...counts.entries()].filter(([, n]) => n >= minCount).sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0]))
    const tokens = kept.map(([tok]) => tok)
    return new TokenVocab(mode, maxSize === undefined ? tokens : tokens.slice(0, maxSize - FIRST_TOKEN))
  }

  /** Rebuilds a vocabulary from its {@link toJSON} form (object or string); a malformed one throws a ValueError saying what is wrong. */
  static fromJSON(json: unknown): TokenVocab {
    const what = 'TokenVocab.fromJSON'
    let j = json
    if (typeof j === 'string') {
      try {
        j = JSON.parse(j)
      } catch (e) {
        throw new ValueError(what, `not valid JSON (${(e as Error).message})`)
      }
    }
    if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new ValueError(what, `expected a token vocabulary object, got ${describe(j)}`)
    const o = j as Partial<Record<keyof TokenVocabJSON, unknown>>
    if (o.type !== 'tokens') throw new ValueError(what, `expected type 'tokens', got ${describe(o.type)}`)
    const sp = o.specials as Record<string, unknown> | undefined
    if (sp === null || typeof sp !== 'object' || Object.entries(SPECIALS).some(([k, v]) => sp[k] !== v) || Object.keys(sp).length !== 4) {
      throw new ValueError(what, `specials must be ${JSON.stringify(SPECIALS)}, got ${describe(sp)}`)
    }
    tokenIds(what, o.mode, o.tokens)
    return new TokenVocab(o.mode as TokenMode, o.tokens as string[])
  }

  /** The id of one token (UNK if it has none). */
  idOf(token: string): number {
    return this.#ids.get(token) ?? SPECIALS.unk
  }

  /** The ids of the tokens of `text` (unknown tokens → UNK), optionally framed by BOS and EOS. */
  encode(text: string, options: TokenEncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new ValueError('TokenVocab.encode', `text must be a string, got ${text === null ? 'null' : typeof text}`)
    const o = checkOptions('TokenVocab.encode', options, TOKEN_ENCODE_OPTIONS)
    const ids = this.tokenize(text).map((t) => this.idOf(t))
    if (boolArg('TokenVocab.encode', 'bos', o.bos ?? false)) ids.unshift(SPECIALS.bos)
    if (boolArg('TokenVocab.encode', 'eos', o.eos ?? false)) ids.push(SPECIALS.eos)
    return ids
  }

  /**
   * The text of `ids`: it stops at the first EOS and skips PAD and BOS; UNK reads `'\uFFFD'` in
   * char mode and `'<unk>'` in word mode; words are joined by one space. Throws on an id that
   * is not an integer in `[0, size)`.
   */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = []
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!
      if (!Number.isInteger(id) || id < 0 || id >= this.size) throw new ValueError('TokenVocab.decode', `ids[${i}] = ${id} is not an id in [0, ${this.size})`)
      if (id === SPECIALS.eos) break
      if (id === SPECIALS.pad || id === SPECIALS.bos) continue
      parts.push(id === SPECIALS.unk ? (this.mode === 'char' ? DEFAULT_UNK : '<unk>') : this.tokens[id - FIRST_TOKEN]!)
    }
    return parts.join(this.mode === 'char' ? '' : ' ')
  }

  toJSON(): TokenVocabJSON {
    return { type: 'tokens', mode: this.mode, specials: { ...SPECIALS }, tokens: [...this.tokens] }
  }
}

/** The id of each ordinary token, after checking the list for `mode`. */
function tokenIds(what: string, mode: unknown, tokens: unknown): Map<string, number> {
  if (mode !== 'char' && mode !== 'word') throw new ValueError(what, `mode must be 'char' or 'word', got ${describe(mode)}`)
  if (!Array.isArray(tokens)) throw new ValueError(what, `tokens must be an array of strings, got ${describe(tokens)}`)
  const ids = new Map<string, number>()
  tokens.forEach((tok: unknown, i) => {
    if (typeof tok !== 'string') throw new ValueError(what, `tokens[${i}] must be a string, got ${describe(tok)}`)
    if (mode === 'char' && [...tok].length !== 1) throw new ValueError(what, `tokens[${i}] must be one character in char mode, got ${JSON.stringify(tok)}`)
    if (mode === 'word' && (tok === '' || WHITESPACE.test(tok))) {
      throw new ValueError(what, `tokens[${i}] must be a non-empty word without whitespace in word mode, got ${JSON.stringify(tok)}`)
    }
    if (ids.has(tok)) throw new ValueError(what, `duplicate token ${JSON.stringify(tok)} (tokens[${i}])`)
    ids.set(tok, FIRST_TOKEN + i)
  })
  return ids
}

/** Orders strings by code point (not by UTF-16 unit, which misorders astral characters). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a]
  const y = [...b]
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!
    if (d !== 0) return d
  }
  return x.length - y.length
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing'
  const s = JSON.stringify(v)
  return s === undefined ? typeof v : s.length > 80 ? `${s.slice(0, 80)}…` : s
}
