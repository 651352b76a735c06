/**
 * Error classes of `recurrent`.
 *
 * The native engine reports every failure as a message `[<ClassName>] <op>: <details>`;
 * {@link rethrow} turns such an error back into the matching class below, so callers can use
 * `instanceof ShapeError` etc. Every error has a stable `code` and the `op` that failed.
 */

/** Base class of every error thrown by `recurrent`. */
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
/** An argument had an invalid value (NaN lengths, p outside [0, 1), ...). */
export class ValueError extends RecurrentError {
  override readonly code = 'ERR_VALUE'
}
/** An allocation was refused (too large) or failed. */
export class MemoryError extends RecurrentError {
  override readonly code = 'ERR_MEMORY'
}
/** A bug inside the engine (a caught panic, a broken invariant). Please report it. */
export class InternalError extends RecurrentError {
  override readonly code = 'ERR_INTERNAL'
}

type ErrorClass = new (op: string, detail: string, options?: { cause?: unknown }) => RecurrentError

const CLASSES: Record<string, ErrorClass> = {
  RecurrentError,
  ShapeError,
  DTypeError,
  DeviceError,
  DisposedError,
  CudaUnavailableError,
  CheckpointError,
  ValueError,
  MemoryError,
  InternalError,
}

const PREFIX = /^\[([A-Za-z]+)\] ([\s\S]*)$/

/**
 * Converts an error from the native addon into the matching {@link RecurrentError} subclass:
 * the `[ClassName]` prefix picks the class and is stripped from the message, and `op` is the
 * text before the first `':'`. Anything else is returned unchanged.
 */
export function translate(e: unknown): unknown {
  if (e instanceof RecurrentError || !(e instanceof Error)) return e
  const m = PREFIX.exec(e.message)
  if (!m) return e
  const Cls = CLASSES[m[1]!]
  if (!Cls) return e
  const text = m[2]!
  const colon = text.indexOf(':')
  const op = colon >= 0 ? text.slice(0, colon) : ''
  const detail = colon >= 0 ? text.slice(colon + 1).replace(/^ /, '') : text
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
