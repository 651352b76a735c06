/**
 * The base of the optimizers: the parameter list, the per-parameter state, the fused native
 * update (one op per parameter tensor), `step()` with backpressure, `zeroGrad()`, and state
 * dicts.
 */

import { Tensor, fmtShape } from '../tensor.js'
import { DTypeError, DeviceError, RecurrentError, ShapeError, ValueError, wrap, wrapAsync } from '../errors.js'
import { checkNonNegative, iterableArg, typeError } from '../validate.js'
import { native } from '../native.js'
import { full } from '../ops/factories.js'
import { keep } from '../scope.js'

/** The rule object of the native fused update (`optimizerUpdate`), which subclasses build in `rule()`. */
export interface NativeRule {
  kind: 'sgd' | 'adam' | 'adamw' | 'rmsprop' | 'adagrad'
  lr: number
  momentum?: number
  dampening?: number
  nesterov?: boolean
  weightDecay?: number
  beta1?: number
  beta2?: number
  eps?: number
  alpha?: number
  centered?: boolean
  lrDecay?: number
  step?: number
  first?: boolean
}

/** A hyper-parameter value as state dicts hold it (JSON-safe). */
export type OptionValue = number | boolean | number[]

/**
 * The state of one parameter in {@link OptimizerStateDict}: its step count and its buffers,
 * named as in PyTorch (`momentum_buffer`, `exp_avg`, `exp_avg_sq`, `square_avg`, `grad_avg`,
 * `sum`), each a tensor of the parameter's shape and dtype.
 */
export interface OptimizerParamState {
  /** Number of updates this parameter has received. */
  step: number
  [buffer: string]: Tensor | number
}

/** The hyper-parameters of the (single) parameter group, and the indices of its parameters. */
export interface OptimizerParamGroup {
  lr: number
  /** Indices of the group's parameters, `[0, 1, …, n − 1]`. */
  params: number[]
  [option: string]: OptionValue
}

/**
 * What {@link Optimizer.stateDict} returns, shaped like PyTorch's: `state[i]` is the state of
 * parameter `i` (in the order the optimizer was given them; parameters that never had a
 * gradient have none), `paramGroups[0]` the hyper-parameters. The tensors are snapshots: later
 * steps do not change them. Every non-tensor value is a JSON-safe number, boolean or array.
 */
export interface OptimizerStateDict {
  state: Record<number, OptimizerParamState>
  paramGroups: OptimizerParamGroup[]
}

interface ParamState {
  step: number
  buffers: Map<string, Tensor>
}

/** A resolved promise, shared. */
const DONE: Promise<void> = Promise.resolve()

/**
 * An optimizer updates a fixed list of parameters in place from their `.grad`, PyTorch style:
 *
 * ```ts
 * const opt = new Adam(model.parameters(), { lr: 1e-3 })
 * for (const batch of data) {
 *   opt.zeroGrad()
 *   const loss = lossFn(model.forward(batch.x), batch.y)
 *   loss.backward()
 *   await opt.step()   // backpressure: JS prepares step n+1 while step n runs
 * }
 * ```
 *
 * Each parameter is updated by one fused native op that reads the parameter, its gradient and
 * its state once (the update rules are exactly `torch.optim`'s). Parameters whose `.grad` is
 * null (unused in the last backward) are skipped and their step count is not advanced, as in
 * PyTorch. The update is written in place (`assign`), so the parameter tensors (and any module
 * or state dict holding them) stay the same objects.
 *
 * State (momentum buffers, moment estimates…) is created lazily, zeros shaped like the
 * parameter, at the parameter's first update (marked with `keep()`, so steps may run inside
 * `tidy`). One parameter group: every parameter shares the hyper-parameters, which may be
 * changed between steps (`opt.lr = …`, schedules).
 */
export abstract class Optimizer {
  /** The parameters being optimised, in the order given. */
  readonly params: readonly Tensor[]
  /** Checked learning rate, behind the `lr` accessor. */
  #lr: number
  /** Per parameter index: its step count and buffers, or undefined before its first update. */
  readonly #state: Array<ParamState | undefined>
  /** Resolves when the updates enqueued by the last step that had any have run. */
  #pending: Promise<void> = DONE

  constructor(params: Iterable<Tensor>, lr: number, name: string) {
    const list = [...iterableArg<Tensor>(name, 'params', params)]
    if (list.length === 0) throw new ValueError(`${name}`, `got an empty parameter list`)
    for (const [i, p] of list.entries()) {
      if (!(p instanceof Tensor)) throw typeError(name, `params[${i}]`, 'a Tensor', p)
      if (p.dtype !== 'float32' && p.dtype !== 'float64') {
        throw new DTypeError(`${name}`, `parameter ${i} must be float32 or float64, got ${p.dtype}`)
      }
    }
    if (new Set(list).size !== list.length) throw new ValueError(`${name}`, `a parameter appears more than once`)
    this.params = list
    this.#lr = checkNonNegative(name, 'lr', lr)
    this.#state = new Array(list.length).fill(undefined)
  }

  /**
   * Learning rate; may be changed between steps (for example by a schedule). Setting it checks
   * it (a finite number ≥ 0; a negative one would run gradient ascent): a ValueError otherwise.
   */
  get lr(): number {
    return this.#lr
  }
  set lr(v: number) {
    this.#lr = checkNonNegative(`${this.constructor.name}.lr`, 'lr', v)
  }

  /**
   * Makes every hyper-parameter of {@link options} a checked accessor: assigning one
   * (`opt.momentum = -1`) runs the same checks as the constructor, on the options with that
   * value, and throws a ValueError naming `<Optimizer>.<option>` without changing anything.
   * Each optimizer calls it at the end of its constructor.
   */
  protected guardOptions(): void {
    const values: Record<string, unknown> = {}
    for (const key of Object.keys(this.options())) {
      values[key] = (this as unknown as Record<string, unknown>)[key]
      Object.defineProperty(this, key, {
        enumerable: true,
        configurable: false,
        get: () => values[key],
        set: (v: unknown) => {
          if (this.#applying) {
            values[key] = v
            return
          }
          const before = { ...values }
          try {
            this.#setOptionsRaw({ ...before, [key]: v })
          } catch (e) {
            Object.assign(values, before)
            if (e instanceof RecurrentError) {
              const detail = e.message.startsWith(`${e.op}: `) ? e.message.slice(e.op.length + 2) : e.message
              // Same class (a wrong type stays an ArgumentTypeError), under the accessor's name.
              const Cls = e.constructor as new (op: string, detail: string) => RecurrentError
              throw new Cls(`${this.constructor.name}.${key}`, detail)
            }
            throw e
          }
        },
      })
    }
  }

  /** True while {@link setOptions} assigns checked values (the accessors then store them as they are). */
  #applying = false

  /** {@link setOptions}, with the accessors of {@link guardOptions} storing what it assigns. */
  #setOptionsRaw(o: Record<string, unknown>): void {
    const outer = this.#applying
    this.#applying = true
    try {
      this.setOptions(o)
    } finally {
      this.#applying = outer
    }
  }

  // ---- what each optimizer defines -----------------------------------------------------------

  /** The names of the state buffers the current hyper-parameters need, in the native order. */
  protected abstract bufferNames(): string[]
  /** Every buffer name this optimizer can hold (for checking loaded state dicts). */
  protected abstract allBufferNames(): readonly string[]
  /** The native rule for one update of a parameter at step `step` (from 1). */
  protected abstract rule(step: number, first: boolean): NativeRule
  /** The hyper-parameters other than lr, JSON-safe, as the state dict holds them. */
  protected abstract options(): Record<string, OptionValue>
  /**
   * Checks `o` (the current options, other than lr, overridden by a state dict's) and applies
   * it, or throws without changing anything.
   */
  protected abstract setOptions(o: Record<string, unknown>): void
  /** The initial value of a state buffer (0 unless overridden). */
  protected initialValue(_buffer: string): number {
    return 0
  }

  // ---- the update ----------------------------------------------------------------------------

  /** Clears the gradient of every parameter (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad()
  }

  /**
   * Applies one update from the current gradients: enqueues one fused native op per parameter
   * that has a gradient, and returns at once. Shape, dtype and disposed-tensor errors are
   * thrown here, before any parameter is changed.
   *
   * The returned promise resolves when the updates of the *previous* step have run (at once
   * for the first), so a loop that does `await opt.step()` prepares step n+1 while step n
   * runs and never gets more than about two steps ahead of the executor. It rejects with the
   * error of a failed update (which also poisons the parameters, so it surfaces at their next
   * read as well); not awaiting it is safe and never causes an unhandled rejection.
   */
  step(): Promise<void> {
    // Check everything first, so that an error leaves every parameter as it was.
    const grads: Array<Tensor | null> = []
    try {
      for (const [i, p] of this.params.entries()) {
        const g = p.grad
        grads.push(g)
        if (g === null) continue
        const op = `${this.constructor.name}.step`
        if (g.shape.length !== p.shape.length || g.shape.some((d, k) => d !== p.shape[k])) {
          throw new ShapeError(op, `parameter ${i}: a gradient of shape ${fmtShape(p.shape)}, got ${fmtShape(g.shape)}`)
        }
        if (g.dtype !== p.dtype) throw new DTypeError(op, `parameter ${i}: a ${p.dtype} gradient, got ${g.dtype}`)
        if (g.device !== p.device) throw new DeviceError(op, `parameter ${i}: a gradient on ${p.device}, got ${g.device}`)
      }
    } catch (e) {
      for (const g of grads) g?.dispose()
      throw e
    }
    // The last parameter updated on each device: each device's executor runs ops in order.
    const last = new Map<string, Tensor>()
    try {
      for (const [i, p] of this.params.entries()) {
        const g = grads[i]
        if (!g) continue
        let st = this.#state[i]
        if (st === undefined) {
          st = { step: 0, buffers: new Map() }
          this.#state[i] = st
        }
        const names = this.bufferNames()
        let first = false
        const bufs = names.map((n) => {
          let b = st.buffers.get(n)
          if (b === undefined) {
            // Kept: a step taken inside tidy must not free the state it creates.
            b = keep(onDevice(full(p.shape, this.initialValue(n), { dtype: p.dtype }), p.device))
            st.buffers.set(n, b)
            first = true
          }
          return b._native
        })
        // Buffers the current hyper-parameters no longer use (momentum set to 0...) are dropped.
        for (const [n, b] of st.buffers) {
          if (!names.includes(n)) {
            b.dispose()
            st.buffers.delete(n)
          }
        }
        const rule = this.rule(st.step + 1, first)
        wrap(() => native.optimizerUpdate(rule, p._native, g._native, bufs))
        st.step += 1
        last.set(p.device, p)
      }
    } finally {
      for (const g of grads) g?.dispose()
    }
    const previous = this.#pending
    if (last.size > 0) {
      // Once the last parameter's update on a device has run, all that device's updates have.
      const waits = [...last.values()].map((p) => wrapAsync(() => native.ready(p._native)))
      const done = waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => {})
      done.catch(() => {})
      this.#pending = done
    }
    return previous
  }

  // ---- state dicts ---------------------------------------------------------------------------

  /**
   * The optimizer's state, PyTorch style (see {@link OptimizerStateDict}): per-parameter step
   * counts and buffers (snapshots, not live), and the hyper-parameters. Restoring it with
   * {@link loadStateDict} into an optimizer of the same kind over the same parameters continues
   * bit-identically.
   */
  stateDict(): OptimizerStateDict {
    const state: Record<number, OptimizerParamState> = {}
    for (const [i, st] of this.#state.entries()) {
      if (st === undefined) continue
      const entry: OptimizerParamState = { step: st.step }
      for (const [n, b] of st.buffers) entry[n] = b.detach()
      state[i] = entry
    }
    const group: OptimizerParamGroup = { ...this.options(), lr: this.lr, params: this.params.map((_, i) => i) }
    return { state, paramGroups: [group] }
  }

  /**
   * Restores a state returned by {@link stateDict}: hyper-parameters (lr included), step
   * counts and buffers. Everything is checked before anything changes; errors say what did not
   * match (another optimizer's state, another parameter list, a buffer of the wrong shape...).
   * The given tensors are not modified by later steps (the optimizer keeps its own handles).
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = `${this.constructor.name}.loadStateDict`
    if (sd === null || typeof sd !== 'object' || typeof sd.state !== 'object' || sd.state === null || !Array.isArray(sd.paramGroups)) {
      throw new ValueError(op, 'expected a state dict { state, paramGroups } as returned by stateDict()')
    }
    if (sd.paramGroups.length !== 1) {
      throw new ValueError(op, `the state dict has ${sd.paramGroups.length} parameter groups; this optimizer has 1`)
    }
    const group = sd.paramGroups[0]!
    if (group === null || typeof group !== 'object' || !Array.isArray(group.params)) {
      throw new ValueError(op, 'paramGroups[0] must be an object with a params array')
    }
    const n = this.params.length
    if (group.params.length !== n) {
      throw new ValueError(op, `the state dict is for ${group.params.length} parameters; this optimizer has ${n}`)
    }
    const known = this.options()
    const incoming: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(group)) {
      if (k === 'params' || k === 'lr') continue
      if (!Object.hasOwn(known, k)) {
        throw new ValueError(op, `'${k}' is not an option of ${this.constructor.name} (is this the state of another optimizer?)`)
      }
      incoming[k] = v
    }
    const lr = checkNonNegative(op, 'lr', group.lr ?? this.lr)

    // Check the per-parameter state against the parameters, under the incoming options.
    const before = { ...this.options() }
    this.#setOptionsRaw({ ...before, ...incoming }) // validates; reverted below if the state is bad
    const next: Array<ParamState | undefined> = new Array(n).fill(undefined)
    try {
      const all = this.allBufferNames()
      const needed = this.bufferNames()
      for (const [key, entry] of Object.entries(sd.state)) {
        const i = Number(key)
        if (!Number.isInteger(i) || i < 0 || i >= n) {
          throw new ValueError(op, `state for parameter '${key}', but the optimizer has parameters 0..${n - 1}`)
        }
        if (entry === null || typeof entry !== 'object') throw new ValueError(op, `state of parameter ${i} must be an object`)
        const step = entry.step
        if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) {
          throw new ValueError(op, `state of parameter ${i}: step must be an integer ≥ 0, got ${String(step)}`)
        }
        const p = this.params[i]!
        const buffers = new Map<string, Tensor>()
        for (const [name, t] of Object.entries(entry)) {
          if (name === 'step') continue
          if (!all.includes(name)) {
            throw new ValueError(op, `state of parameter ${i} has a buffer '${name}', which ${this.constructor.name} does not use (is this the state of another optimizer?)`)
          }
          if (!(t instanceof Tensor)) throw new ValueError(op, `state of parameter ${i}: '${name}' must be a Tensor`)
          if (t.isDisposed) throw new ValueError(op, `state of parameter ${i}: '${name}' was disposed`)
          if (t.shape.length !== p.shape.length || t.shape.some((d, k) => d !== p.shape[k])) {
            throw new ShapeError(op, `state of parameter ${i}: '${name}' must have the parameter's shape ${fmtShape(p.shape)}, got ${fmtShape(t.shape)}`)
          }
          if (t.dtype !== p.dtype) {
            throw new DTypeError(op, `state of parameter ${i}: '${name}' must have the parameter's dtype ${p.dtype}, got ${t.dtype}`)
          }
          buffers.set(name, t)
        }
        if (step > 0) {
          const missing = needed.filter((b) => !buffers.has(b))
          if (missing.length > 0) {
            throw new ValueError(op, `state of parameter ${i} lacks ${missing.map((m) => `'${m}'`).join(', ')} (is this the state of another optimizer, or other options?)`)
          }
        }
        next[i] = { step, buffers }
      }
    } catch (e) {
      this.#setOptionsRaw(before)
      throw e
    }
    // Commit: our own handles on the given data, so later steps leave the caller's tensors be.
    for (const st of this.#state) for (const b of st?.buffers.values() ?? []) b.dispose()
    for (let i = 0; i < n; i++) {
      const st = next[i]
      if (st === undefined) {
        this.#state[i] = undefined
        continue
      }
      const own = new Map<string, Tensor>()
      for (const [name, t] of st.buffers) own.set(name, keep(onDevice(t.detach(), this.params[i]!.device)))
      this.#state[i] = { step: st.step, buffers: own }
    }
    this.lr = lr
  }
}

/** `t` on `device` (`t` itself when already there; otherwise a copy, and `t` is disposed). */
function onDevice(t: Tensor, device: string): Tensor {
  if (t.device === device) return t
  try {
    return new Tensor(wrap(() => t._native.to(device)))
  } finally {
    t.dispose()
  }
}

export { checkBool, checkNonNegative, checkUnit } from '../validate.js'

