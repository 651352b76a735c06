/**
 * The autograd mode: whether ops record history for `backward()` (`noGrad`, `isGradEnabled`,
 * `setGradEnabled`). The mode lives in the native engine, global to the JS thread.
 */

import { ValueError } from '../errors.js'
import { native } from '../native.js'
import { boolArg } from '../validate.js'

/** Whether ops record history for `backward()` (false inside {@link noGrad}). */
export function isGradEnabled(): boolean {
  return native.isGradEnabled()
}

/** Turns history recording on or off; returns the previous setting. Prefer {@link noGrad}. */
export function setGradEnabled(enabled: boolean): boolean {
  return native.setGradEnabled(boolArg('setGradEnabled', 'enabled', enabled))
}

/**
 * Runs `fn` without recording history (like `torch.no_grad()`): tensors it computes have no
 * `grad_fn` and cost no autograd memory. The previous mode is restored when `fn` returns or
 * throws.
 *
 * `noGrad` is synchronous-only: the mode is global to the JS thread, so it cannot be kept
 * across an `await` without leaking into unrelated code that runs meanwhile. If `fn` returns a
 * promise, `noGrad` throws a `ValueError`; wrap each synchronous stretch instead
 * (`const y = noGrad(() => model.forward(x)); await y.data()`).
 */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false)
  let result: T
  try {
    result = fn()
  } finally {
    native.setGradEnabled(prev)
  }
  if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof (result as { then?: unknown }).then === 'function') {
    // Keep a rejection of the abandoned promise from surfacing as an unhandled rejection.
    ;(result as unknown as PromiseLike<unknown>).then(undefined, () => {})
    throw new ValueError(
      'noGrad',
      'fn returned a Promise; noGrad is synchronous-only (the mode cannot be kept across await). Wrap each synchronous part in noGrad instead.',
    )
  }
  return result
}
