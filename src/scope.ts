/**
 * Memory scopes: `tidy`, `tidyAsync`, `keep` and `dispose`, with TensorFlow.js semantics.
 *
 * Every `Tensor` is registered, when it is constructed, with the innermost open scope of the
 * code that creates it. When a scope ends, the tensors registered with it are disposed, except
 * those the scope's function returned (they move to the enclosing scope) and those marked with
 * `keep()` (parameters, optimizer state, a trainer's carried state).
 *
 * Two kinds of scope share one mechanism:
 * - `tidy(fn)` is synchronous: while `fn` runs no other JS code can, so the innermost scope is a
 *   plain module variable (a branch and an array push per tensor).
 * - `tidyAsync(fn)` lasts across `await`: the scope travels with the async flow through an
 *   `AsyncLocalStorage`, so two scopes running concurrently each collect their own tensors. The
 *   storage is created on the first `tidyAsync` and disabled whenever no async scope is open,
 *   so programs that never use it pay nothing for it (on Node 20 an enabled storage adds a
 *   promise hook to every promise).
 */

import { AsyncLocalStorage } from 'node:async_hooks'
import { ValueError } from './errors.js'
import { Tensor } from './tensor.js'

interface Scope {
  /** Tensors constructed in this scope (some possibly disposed or kept since). */
  tracked: Tensor[]
  /** Where returned tensors go when this scope ends (null: nowhere, they become untracked). */
  readonly parent: Scope | null
  open: boolean
  /** Length of `tracked` at which disposed and kept entries are dropped from it. */
  compactAt: number
}

/**
 * A scope whose function disposes most of what it makes (a generation or training loop inside
 * `tidyAsync`) would otherwise keep growing its list with dead entries; compacting at doubling
 * lengths keeps the list proportional to the live tensors at an amortised O(1) per tensor.
 */
const COMPACT_MIN = 1024

/** The innermost synchronous scope; only set while a `tidy` function runs. */
let syncTop: Scope | null = null
/** The scope of the current async flow; created on the first `tidyAsync`. */
let storage: AsyncLocalStorage<Scope> | null = null
/** Async scopes not ended yet: while 0, `storage` is not consulted (and is disabled). */
let openAsync = 0
/** Tensors that no scope disposes. */
const kept = new WeakSet<Tensor>()

function newScope(): Scope {
  return { tracked: [], parent: currentScope(), open: true, compactAt: COMPACT_MIN }
}

function currentScope(): Scope | null {
  if (syncTop !== null) return syncTop
  if (openAsync === 0) return null
  const s = storage!.getStore()
  // A flow that outlives its scope (a promise started inside and never awaited) is untracked.
  return s?.open ? s : null
}

function add(s: Scope, t: Tensor): void {
  s.tracked.push(t)
  if (s.tracked.length >= s.compactAt) {
    s.tracked = s.tracked.filter((x) => !kept.has(x) && !x.isDisposed)
    s.compactAt = Math.max(COMPACT_MIN, 2 * s.tracked.length)
  }
}

/**
 * Registers a new tensor with the current scope. Called by the `Tensor` constructor, the single
 * place where tensors are made.
 * @internal
 */
export function track(t: Tensor): void {
  const s = syncTop ?? (openAsync === 0 ? null : currentScope())
  if (s !== null) add(s, t)
}

/** The tensors in `x`: itself, or inside arrays, plain objects, Maps and Sets, at any depth. */
function tensorsIn(x: unknown): Set<Tensor> | Tensor | null {
  if (x instanceof Tensor) return x
  if (x === null || typeof x !== 'object') return null
  const out = new Set<Tensor>()
  const seen = new Set<object>()
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object') return
    if (v instanceof Tensor) {
      out.add(v)
      return
    }
    if (seen.has(v)) return
    seen.add(v)
    if (Array.isArray(v)) {
      for (const e of v) walk(e)
    } else if (v instanceof Map) {
      for (const [k, e] of v) {
        walk(k)
        walk(e)
      }
    } else if (v instanceof Set) {
      for (const e of v) walk(e)
    } else {
      const proto = Object.getPrototypeOf(v)
      if (proto === Object.prototype || proto === null) {
        for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k])
      }
    }
  }
  walk(x)
  return out
}

/**
 * The distinct tensors in `x` (found as {@link tidy} finds them in a result).
 * @internal for the decoders, which free the tensors of a state that the next state dropped.
 */
export function tensorsOf(x: unknown): Set<Tensor> {
  const ts = tensorsIn(x)
  return ts instanceof Tensor ? new Set([ts]) : (ts ?? new Set())
}

/** Ends `s`: the tensors of `result` move to the parent scope, the rest are disposed. */
function endScope(s: Scope, result: unknown): void {
  s.open = false
  const out = tensorsIn(result)
  const parent = s.parent?.open ? s.parent : null
  const list = s.tracked
  s.tracked = []
  for (const t of list) {
    if (kept.has(t)) continue
    if (out !== null && (out === t || (out instanceof Set && out.has(t)))) {
      if (parent !== null) add(parent, t)
    } else {
      t.dispose()
    }
  }
}

function isPromiseLike(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function'
}

/**
 * Runs `fn` and disposes every tensor created while it ran (by ops, factories, modules...),
 * except those it returns, as TensorFlow.js's `tf.tidy`:
 *
 * ```ts
 * const loss = tidy(() => crossEntropy(model.forward(x), y)) // the logits are freed, loss is not
 * ```
 *
 * - The result may be a tensor, or arrays, plain objects, Maps and Sets holding tensors at any
 *   depth; those tensors are kept. If this `tidy` runs inside another scope, they now belong to
 *   that scope (and are disposed when it ends, unless it returns them too). Tensors inside other
 *   class instances are not looked for: `keep()` them.
 * - Tensors created outside (the inputs, parameters) are never disposed by it.
 * - Tensors passed to {@link keep} are never disposed by any scope. Parameters, module buffers,
 *   optimizer state and the carried state of `TBPTT` are kept, so modules and optimizers may
 *   be created or stepped inside a scope.
 * - If `fn` throws, its tensors are disposed and the error is rethrown.
 *
 * Scopes nest. `tidy` is synchronous: a `fn` that returns a Promise gets its tensors disposed
 * and a `ValueError`; use {@link tidyAsync} across `await`.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('tidy', `expected a function, got ${fn === null ? 'null' : typeof fn}`)
  const scope = newScope()
  const prev = syncTop
  syncTop = scope
  let result: T
  try {
    result = fn()
  } catch (e) {
    syncTop = prev
    endScope(scope, undefined)
    throw e
  }
  syncTop = prev
  if (isPromiseLike(result)) {
    endScope(scope, undefined)
    // Keep a rejection of the abandoned promise from surfacing as an unhandled rejection.
    ;(result as PromiseLike<unknown>).then(undefined, () => {})
    throw new ValueError('tidy', 'fn returned a Promise; tidy is synchronous-only. Use tidyAsync for a function that awaits.')
  }
  endScope(scope, result)
  return result
}

/**
 * The asynchronous form of {@link tidy}: runs `fn` (which may `await`) and, when its promise
 * settles, disposes every tensor that this async flow created meanwhile, except those in the
 * resolved value (which move to the enclosing scope, as with `tidy`) and kept ones.
 *
 * ```ts
 * const bits = await tidyAsync(async () => {
 *   const loss = crossEntropy(model.forward(x), y)
 *   return (await loss.item()) / Math.LN2
 * }) // the logits and the loss are freed here
 * ```
 *
 * The scope follows the async flow of `fn` (through `AsyncLocalStorage`): code that runs
 * concurrently outside `fn`, including another `tidyAsync`, registers its tensors with its own
 * scope, never with this one. A `tidy` inside `fn` nests in it. Errors dispose and reject.
 */
export async function tidyAsync<T>(fn: () => Promise<T> | T): Promise<T> {
  if (typeof fn !== 'function') throw new ValueError('tidyAsync', `expected a function, got ${fn === null ? 'null' : typeof fn}`)
  storage ??= new AsyncLocalStorage<Scope>()
  const scope = newScope()
  openAsync++
  try {
    let pending: Promise<T> | T
    // The part of fn before its first await runs now: it belongs to this scope even when this
    // call is made inside a synchronous tidy.
    const prev = syncTop
    syncTop = null
    try {
      pending = storage.run(scope, fn)
    } finally {
      syncTop = prev
    }
    let result: T
    try {
      result = await pending
    } catch (e) {
      endScope(scope, undefined)
      throw e
    }
    endScope(scope, result)
    return result
  } finally {
    if (--openAsync === 0) storage.disable()
  }
}

/**
 * Marks `t` so that no scope ({@link tidy}, {@link tidyAsync}) disposes it, and returns it, as
 * TensorFlow.js's `tf.keep`: for a tensor created inside a scope and stored in long-lived state.
 * `dispose()` still frees it.
 */
export function keep<T extends Tensor>(t: T): T {
  if (!(t instanceof Tensor)) throw new ValueError('keep', `expected a Tensor, got ${t === null ? 'null' : typeof t}`)
  kept.add(t)
  return t
}

/** True when `t` was passed to {@link keep}. */
export function isKept(t: Tensor): boolean {
  return kept.has(t)
}

/**
 * Disposes every tensor in `container`: a tensor, or arrays, plain objects, Maps and Sets of
 * them at any depth (kept tensors included). Anything else is ignored.
 */
export function dispose(container: unknown): void {
  const ts = tensorsIn(container)
  if (ts instanceof Tensor) ts.dispose()
  else if (ts !== null) for (const t of ts) t.dispose()
}
