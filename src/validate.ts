/**
 * Argument checks at the JS boundary, in one place: every public function and setter checks
 * what it is given with these before anything reaches the native addon, so a bad argument is a
 * `ValueError` (or `ShapeError`, `DTypeError`) whose message names the op, what was expected
 * and what was got, never a raw napi or V8 message.
 */

import { MemoryError, ValueError } from './errors.js'
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

/** An options argument: `undefined` (no options) or a plain object. */
export function optionsArg<T extends object>(op: string, v: T | undefined | null): Partial<T> {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ValueError(op, `expected an options object, got ${describe(v)}`)
  return v
}

/** A Tensor argument (not disposed-checked: the native call names the op for that). */
export function tensorArg(op: string, what: string, v: unknown): Tensor {
  if (!(v instanceof Tensor)) throw new ValueError(op, `expected ${what} to be a Tensor, got ${describe(v)}`)
  return v
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
  if (!ok) throw new ValueError(op, `${what} must be ${rangeText(r)}, got ${describe(v)}`)
  return v as number
}

/** A boolean. */
export function boolArg(op: string, what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ValueError(op, `${what} must be a boolean (true or false), got ${describe(v)}`)
  return v
}

/** One of the given strings. */
export function enumArg<T extends string>(op: string, what: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new ValueError(op, `${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}`)
  }
  return v as T
}

/** A non-empty string. */
export function stringArg(op: string, what: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw new ValueError(op, `${what} must be a non-empty string, got ${describe(v)}`)
  return v
}

/** An iterable (array, Set, generator…), as parameter lists are. */
export function iterableArg<T>(op: string, what: string, v: unknown): Iterable<T> {
  if (v === null || v === undefined || typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function' || typeof v === 'string') {
    throw new ValueError(op, `${what} must be an iterable of Tensors (e.g. model.parameters()), got ${describe(v)}`)
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
    throw new ValueError(op, `${what} must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/** A probability in [0, 1) (dropout). */
export function checkProbability(op: string, what: string, p: unknown): number {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) {
    throw new ValueError(op, `${what} must be a number in [0, 1), got ${describe(p)}`)
  }
  return p
}

/** A finite number ≥ 0 (learning rates, decays, ε). */
export function checkNonNegative(op: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new ValueError(op, `${what} must be a finite number ≥ 0, got ${describe(v)}`)
  }
  return v
}

/** A boolean, in the optimizers' wording. */
export function checkBool(op: string, what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ValueError(op, `${what} must be a boolean, got ${describe(v)}`)
  return v
}

/** A number in [0, 1) (momentum-like factors). */
export function checkUnit(op: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
    throw new ValueError(op, `${what} must be a number in [0, 1), got ${describe(v)}`)
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
    throw new ValueError(op, `${what} must be an integer ≥ ${min} or a pair [height, width] of them, got ${got}`)
  }
  return [pair[0] as number, pair[1] as number]
}
