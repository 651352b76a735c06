/**
 * Argument checks at the JS boundary, in one place: every public function and setter checks
 * what it is given with these before anything reaches the native addon, so a bad argument is a
 * `ValueError` (or `ShapeError`, `DTypeError`) whose message names the op, what was expected
 * and what was got, never a raw napi or V8 message. A value of the wrong type (a string for a
 * number, an array for a Tensor) is the `ValueError` subclass `ArgumentTypeError`; an options
 * object with a key its function does not know is refused, with the nearest known key.
 */

import { ArgumentTypeError, MemoryError, ValueError } from './errors.js'
import { native } from './native.js'
import { Tensor } from './tensor.js'

/** A short description of any value, for the "got …" part of messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'undefined'
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
  if (typeof v === 'bigint') return `the bigint ${v}n`
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (typeof v === 'symbol') return 'a symbol'
  if (typeof v === 'function') return 'a function'
  if (Array.isArray(v)) return `an array of length ${v.length}`
  if (v instanceof Tensor) return `a Tensor of shape [${v.shape.join(', ')}]`
  const name = (v as object).constructor?.name
  return name && name !== 'Object' ? `a ${name}` : 'an object'
}

/** The error for `v` not being of the `expected` type: `<op>: <what> must be <expected>, got <v>`. */
export function typeError(op: string, what: string, expected: string, v: unknown): ArgumentTypeError {
  return new ArgumentTypeError(op, `${what} must be ${expected}, got ${describe(v)}`)
}

/**
 * An options argument: `undefined` (no options) or a plain object. Prefer {@link checkOptions},
 * which also refuses unknown keys; this is for options read before the function knows its
 * whole key list (a base class's constructor reads what its subclass takes).
 */
export function optionsArg<T extends object>(op: string, v: T | undefined | null): Partial<T> {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ArgumentTypeError(op, `expected an options object, got ${describe(v)}`)
  return v
}

/**
 * Every key of an options interface, each mapped to `true`: an object literal of this type
 * must list each key of `T` (a key added to the interface and not here fails to compile) and
 * nothing else (an excess property fails too), so the runtime list cannot drift from the type.
 */
export type OptionKeyTable<T> = { readonly [K in keyof Required<T>]: true }

/** The known keys of options `T`, from a table that TypeScript checks against `T` both ways. */
export function optionKeys<T extends object>(table: OptionKeyTable<T>): readonly (keyof T & string)[] {
  return Object.freeze(Object.keys(table)) as readonly (keyof T & string)[]
}

/**
 * An options argument whose every key is one of `known`: `undefined` (no options) or a plain
 * object. A key it does not know is a ValueError naming it, the nearest known key (a typo such
 * as `numLayer` for `numLayers` is otherwise silently ignored, and the default used) and the
 * known keys. Only own enumerable string keys are checked. `path` names a nested options
 * object (`'checkpoint'` for `fit`'s `checkpoint: { … }`): keys are then written `checkpoint.x`.
 */
export function checkOptions<T extends object>(op: string, v: T | undefined | null, known: readonly string[], path?: string): Partial<T> {
  const o = path === undefined ? optionsArg(op, v) : nestedOptionsArg(op, path, v)
  let unknown: string[] | undefined
  for (const k of Object.keys(o)) if (!known.includes(k)) (unknown ??= []).push(k)
  if (unknown) {
    const full = (k: string) => (path === undefined ? k : `${path}.${k}`)
    const each = unknown.map((k) => {
      const near = closestName(k, known)
      return `'${full(k)}'${near === undefined ? '' : ` (did you mean '${full(near)}'?)`}`
    })
    const list = known.length === 0 ? 'none' : known.map(full).join(', ')
    throw new ValueError(op, `unknown option${unknown.length > 1 ? 's' : ''} ${each.join(', ')}; known options: ${list}`)
  }
  return o
}

function nestedOptionsArg<T extends object>(op: string, path: string, v: T | undefined | null): Partial<T> {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw typeError(op, path, 'an options object', v)
  return v
}

/** How {@link closestName} matches. */
export interface ClosestNameOptions {
  /** The most edits allowed (default 2, or 1 for names of up to 3 characters, where 2 edits reach unrelated names). */
  maxDistance?: number
  /** Without a match by edits, the first name that `name` (3 characters or more) begins (default true): `opset` → `opsetVersion`. */
  prefixes?: boolean
}

/**
 * The name in `names` nearest to `name` by edit distance, case-insensitive (so `batchfirst`
 * finds `batchFirst`); ties go to the first in `names`. Without one, a name that `name` is
 * the beginning of, when `prefixes` allows.
 */
export function closestName(name: string, names: readonly string[], options: ClosestNameOptions = {}): string | undefined {
  const maxDistance = options.maxDistance ?? (name.length <= 3 ? 1 : 2)
  let best: string | undefined
  let bestD = maxDistance + 1
  const lower = name.toLowerCase()
  for (const n of names) {
    const d = editDistance(lower, n.toLowerCase())
    if (d < bestD) {
      bestD = d
      best = n
    }
  }
  if (best === undefined && (options.prefixes ?? true) && lower.length >= 3) best = names.find((n) => n.toLowerCase().startsWith(lower))
  return best
}

/** Levenshtein distance: insertions, deletions and substitutions of one character. */
export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!
    dp[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return dp[b.length]!
}

/**
 * A Tensor argument (not disposed-checked: the native call names the op for that): anything
 * else is an ArgumentTypeError `<op>: argument '<name>' must be a Tensor, got <v>`. `kind`
 * says whether `name` is a positional argument or a key of an options object.
 */
export function tensorArg(op: string, name: string, v: unknown, kind: 'argument' | 'option' = 'argument'): Tensor {
  if (!(v instanceof Tensor)) throw typeError(op, `${kind} '${name}'`, 'a Tensor', v)
  return v
}

/**
 * The error for `v` failing a check that wants `expected`: an ArgumentTypeError when `v` is not
 * even of JavaScript type `type` (a string for a number), else a ValueError (a number out of range).
 */
export function refusal(op: string, what: string, expected: string, v: unknown, type: 'number' | 'string' | 'boolean'): ValueError {
  const Cls = typeof v === type ? ValueError : ArgumentTypeError
  return new Cls(op, `${what} must be ${expected}, got ${describe(v)}`)
}

/** Range constraints of {@link numberArg}. */
export interface NumberRange {
  /** Must be an integer. */
  integer?: boolean
  min?: number
  /** `min` is exclusive. */
  minExclusive?: boolean
  max?: number
  /** `max` is exclusive. */
  maxExclusive?: boolean
  /** Allow ±Infinity and NaN (default: finite only). */
  nonFinite?: boolean
}

function rangeText(r: NumberRange): string {
  const kind = r.integer ? 'an integer' : r.nonFinite ? 'a number' : 'a finite number'
  const lo = r.min === undefined ? '' : `${r.minExclusive ? '>' : '≥'} ${r.min}`
  const hi = r.max === undefined ? '' : `${r.maxExclusive ? '<' : '≤'} ${r.max}`
  if (lo && hi) return `${kind} in ${r.minExclusive ? '(' : '['}${r.min}, ${r.max}${r.maxExclusive ? ')' : ']'}`
  return [kind, lo || hi].filter(Boolean).join(' ')
}

/** A number in a range; `what` names it in the message (`lr must be a finite number ≥ 0, got -1`). */
export function numberArg(op: string, what: string, v: unknown, r: NumberRange = {}): number {
  const ok =
    typeof v === 'number' &&
    (r.nonFinite || Number.isFinite(v)) &&
    (!r.integer || Number.isInteger(v)) &&
    (r.min === undefined || (r.minExclusive ? v > r.min : v >= r.min)) &&
    (r.max === undefined || (r.maxExclusive ? v < r.max : v <= r.max))
  if (!ok) throw refusal(op, what, rangeText(r), v, 'number')
  return v as number
}

/** A boolean. */
export function boolArg(op: string, what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw typeError(op, what, 'a boolean (true or false)', v)
  return v
}

/** One of the given strings. */
export function enumArg<T extends string>(op: string, what: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw refusal(op, what, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v, 'string')
  }
  return v as T
}

/** A non-empty string. */
export function stringArg(op: string, what: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw refusal(op, what, 'a non-empty string', v, 'string')
  return v
}

/** An iterable (array, Set, generator…), as parameter lists are. */
export function iterableArg<T>(op: string, what: string, v: unknown): Iterable<T> {
  if (v === null || v === undefined || typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function' || typeof v === 'string') {
    throw typeError(op, what, 'an iterable of Tensors (e.g. model.parameters())', v)
  }
  return v as Iterable<T>
}

/** An int32 value, as `tensor()` and the int32 fills take them. */
export function int32Arg(op: string, what: string, v: unknown): number {
  return numberArg(op, what, v, { integer: true, min: -2147483648, max: 2147483647 })
}

/** Bytes per element of each dtype. */
const BYTES_PER: Record<string, number> = { float32: 4, float64: 8, int32: 4 }

/**
 * Refuses, before anything is made, a model whose parameters alone would not fit in the
 * machine's memory (or its cgroup's limit): a MemoryError naming the op, the size and the
 * bytes, rather than an allocation failure halfway through building it.
 */
export function checkModelSize(op: string, what: string, elements: number, dtype: string): void {
  const bytes = elements * (BYTES_PER[dtype] ?? 8)
  const limit = native.hostMemoryBytes()
  if (!(bytes <= limit)) {
    throw new MemoryError(op, `cannot allocate ${what}: ${elements} parameters need ${bytes} bytes, more than this machine's ${limit} bytes of memory`)
  }
}

/** A positive integer (sizes, counts); `what` names it in the error. */
export function checkPositiveInt(op: string, what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw refusal(op, what, 'a positive integer', value, 'number')
  }
  return value
}

/** A probability in [0, 1) (dropout). */
export function checkProbability(op: string, what: string, p: unknown): number {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) {
    throw refusal(op, what, 'a number in [0, 1)', p, 'number')
  }
  return p
}

/** A finite number ≥ 0 (learning rates, decays, ε). */
export function checkNonNegative(op: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw refusal(op, what, 'a finite number ≥ 0', v, 'number')
  }
  return v
}

/** A boolean, in the optimizers' wording. */
export function checkBool(op: string, what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw typeError(op, what, 'a boolean', v)
  return v
}

/** A number in [0, 1) (momentum-like factors). */
export function checkUnit(op: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
    throw refusal(op, what, 'a number in [0, 1)', v, 'number')
  }
  return v
}

/**
 * A (height, width) pair of integers ≥ `min`, as the image ops take sizes, strides and
 * paddings: one number for both, or an array of two.
 */
export function pairArg(op: string, what: string, v: unknown, min: number): [number, number] {
  const pair = typeof v === 'number' ? [v, v] : v
  const ok =
    Array.isArray(pair) && pair.length === 2 && pair.every((e) => typeof e === 'number' && Number.isInteger(e) && e >= min)
  if (!ok) {
    const got = Array.isArray(v) && v.length <= 4 ? `[${v.map((e) => describe(e)).join(', ')}]` : describe(v)
    const Cls = typeof v === 'number' || Array.isArray(v) ? ValueError : ArgumentTypeError
    throw new Cls(op, `${what} must be an integer ≥ ${min} or a pair [height, width] of them, got ${got}`)
  }
  return [pair[0] as number, pair[1] as number]
}
