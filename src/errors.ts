/**
 * Error classes of `recurrent-nn`.
 *
 * The native engine throws (or rejects with) errors that carry a stable `code` (`'ERR_SHAPE'`,
 * …), the `op` that failed and the message `<op>: <details>`; {@link translate} turns such an
 * error into the class below with that code, so callers can use `instanceof ShapeError` etc.
 */

/** Base class of every error thrown by `recurrent-nn`. */
export class RecurrentError extends Error {
  /** Stable machine-readable code, e.g. `'ERR_SHAPE'`. */
  readonly code: string = 'ERR_RECURRENT'
  /** The operation that failed, e.g. `'matmul'` (empty when unknown). */
  readonly op: string

  /**
   * @param op the operation that failed; the message becomes `<op>: <detail>`.
   * @param detail what was expected and what was got.
   */
  constructor(op: string, detail: string, options?: { cause?: unknown }) {
    super(op ? `${op}: ${detail}` : detail, options)
    this.op = op
    this.name = new.target.name
  }

  /**
   * `instanceof` as usual, and also true of an {@link ArgumentTypeError} for `RecurrentError`
   * and `ValueError` (it extends `TypeError`, so it cannot extend them too).
   */
  static override [Symbol.hasInstance](v: unknown): boolean {
    // `this` is the class asked about: subclasses inherit this method and keep the usual test.
    // biome-ignore lint/complexity/noThisInStatic: the class on the right of instanceof
    if (Function.prototype[Symbol.hasInstance].call(this, v)) return true
    // biome-ignore lint/complexity/noThisInStatic: the class on the right of instanceof
    return (this === RecurrentError || this === ValueError) && v instanceof ArgumentTypeError
  }
}

/** A tensor had the wrong shape (or an empty/invalid shape was requested). */
export class ShapeError extends RecurrentError {
  override readonly code = 'ERR_SHAPE'
}
/** A tensor had the wrong dtype. */
export class DTypeError extends RecurrentError {
  override readonly code = 'ERR_DTYPE'
}
/** Tensors of one op were on different devices, or a device name was invalid. */
export class DeviceError extends RecurrentError {
  override readonly code = 'ERR_DEVICE'
}
/** A tensor was used after `dispose()`. */
export class DisposedError extends RecurrentError {
  override readonly code = 'ERR_DISPOSED'
}
/** CUDA was requested but is not available on this machine or in this build. */
export class CudaUnavailableError extends RecurrentError {
  override readonly code = 'ERR_CUDA_UNAVAILABLE'
}
/** A checkpoint could not be read or written. */
export class CheckpointError extends RecurrentError {
  override readonly code = 'ERR_CHECKPOINT'
}
/** An argument had an invalid value (NaN lengths, p outside [0, 1), an unknown option, ...). */
export class ValueError extends RecurrentError {
  override readonly code: string = 'ERR_VALUE'
}
/**
 * An argument had the wrong type: a plain array where a Tensor goes, the string `'false'` for
 * a boolean option. Only the TypeScript layer throws it, for callers whose types were not
 * checked (plain JavaScript, `any`).
 *
 * It extends the built-in `TypeError`, so plain-JS code catches it as one, and it is also
 * `instanceof ValueError` and `instanceof RecurrentError` (through their `Symbol.hasInstance`),
 * so code that catches bad arguments as `ValueError` sees these too; `code` tells them apart.
 */
export class ArgumentTypeError extends TypeError {
  /** Stable machine-readable code. */
  readonly code: string = 'ERR_ARG_TYPE'
  /** The operation that refused the argument. */
  readonly op: string

  /**
   * @param op the operation; the message becomes `<op>: <detail>`.
   * @param detail what was expected and what was got.
   */
  constructor(op: string, detail: string, options?: { cause?: unknown }) {
    super(op ? `${op}: ${detail}` : detail, options)
    this.op = op
    this.name = new.target.name
  }
}
/** An allocation was refused (too large) or failed. */
export class MemoryError extends RecurrentError {
  override readonly code = 'ERR_MEMORY'
}
/**
 * An image file could not be read, decoded or written: missing, truncated or corrupt data, an
 * unsupported format, or above the size limits. The message names the file and the reason.
 */
export class ImageError extends RecurrentError {
  override readonly code = 'ERR_IMAGE'
}
/**
 * The native addon could not be found or loaded: no prebuilt addon for this platform, its
 * per-platform package not installed, or a binary the system refused. Thrown when the package
 * is first imported; the message says which, and how to build from source.
 */
export class NativeAddonError extends RecurrentError {
  override readonly code = 'ERR_NATIVE_ADDON'
}
/** A bug inside the engine (a caught panic, a broken invariant). Please report it. */
export class InternalError extends RecurrentError {
  override readonly code = 'ERR_INTERNAL'
}

type ErrorClass = new (op: string, detail: string, options?: { cause?: unknown }) => RecurrentError

/** Each class by the `code` its instances carry (the codes of `ErrorKind::code` in the core). */
const BY_CODE: ReadonlyMap<string, ErrorClass> = new Map(
  [ShapeError, DTypeError, DeviceError, DisposedError, CudaUnavailableError, CheckpointError, ValueError, MemoryError, ImageError, InternalError].map(
    (C): [string, ErrorClass] => [new C('', '').code, C],
  ),
)

/** What the native addon's errors carry besides the message. */
interface NativeFailure extends Error {
  code?: unknown
  op?: unknown
}

/**
 * Converts an error from the native addon into the {@link RecurrentError} subclass of its
 * `code`, with its `op`; the message stays as the engine wrote it. Anything else (no known
 * `code`, or no `op`) is returned unchanged.
 */
export function translate(e: unknown): unknown {
  if (e instanceof RecurrentError || !(e instanceof Error)) return e
  const { code, op } = e as NativeFailure
  const Cls = typeof code === 'string' ? BY_CODE.get(code) : undefined
  if (!Cls || typeof op !== 'string') return e
  // The engine writes `<op>: <detail>`; the class puts the op back in front of the detail.
  const prefix = `${op}: `
  const detail = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message
  const err = new Cls(op, detail, { cause: e })
  // Keep the caller's stack (the native error's stack starts at the JS call site too).
  const nl = e.stack?.indexOf('\n') ?? -1
  if (nl >= 0) err.stack = `${err.name}: ${err.message}${e.stack!.slice(nl)}`
  return err
}

/** Throws `e` translated by {@link translate}. */
export function rethrow(e: unknown): never {
  throw translate(e)
}

/** Runs `fn`, rethrowing native errors as their {@link RecurrentError} class. */
export function wrap<T>(fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    rethrow(e)
  }
}

/** Awaits `p`, rethrowing native errors as their {@link RecurrentError} class. */
export async function wrapAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p()
  } catch (e) {
    rethrow(e)
  }
}
