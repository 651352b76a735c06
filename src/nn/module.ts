/**
 * The `Module` base class: a tree of named parameters and sub-modules, as in PyTorch's
 * `torch.nn.Module`.
 *
 * A module's children and parameters are either registered explicitly
 * ({@link Module.registerModule}, {@link Module.registerParameter}) or simply assigned as
 * properties (`this.head = new Linear(4, 2)`), as PyTorch's `__setattr__` does. Everything else
 * (names, parameter lists, train/eval mode, state dicts, gradient reset) is derived from that
 * tree, so checkpoint keys match PyTorch's `state_dict()` keys exactly (`0.weight`,
 * `lstm.weight_ih_l0`, `lstm.bias_hh_l1_reverse`, ...).
 */

import { Tensor, type FloatDType } from '../tensor.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { requireDevice, type Device } from '../device.js'
import { noGrad } from '../ops/grad.js'
import { keep } from '../scope.js'
import { castLeaf, isFloatDType } from '../cast.js'
import { boolArg, checkOptions, optionKeys } from '../validate.js'

/** Options of {@link Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /**
   * When true (the default) every parameter of the module must be in the dictionary and the
   * dictionary may hold no other key; otherwise the missing and unexpected keys are only
   * reported in the result.
   */
  strict?: boolean
}

/** What {@link Module.loadStateDict} loaded, PyTorch's `_IncompatibleKeys`. */
/** Options of {@link Module.registerBuffer}. */
export interface RegisterBufferOptions {
  /** Whether the buffer belongs in {@link Module.stateDict} (default false). */
  persistent?: boolean
}

const LOAD_STATE_DICT_OPTIONS = optionKeys<LoadStateDictOptions>({ strict: true })
const REGISTER_BUFFER_OPTIONS = optionKeys<RegisterBufferOptions>({ persistent: true })

export interface LoadStateDictResult {
  /** Parameters of the module that the dictionary did not hold (left unchanged). */
  missingKeys: string[]
  /** Keys of the dictionary that name no parameter of the module (ignored). */
  unexpectedKeys: string[]
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

const NAME_RE = /^[A-Za-z0-9_]+$/

/**
 * Whether a tensor assigned as a property counts as a parameter: a live leaf that requires a
 * gradient (what {@link parameter} makes), PyTorch's `nn.Parameter`. A plain tensor (a constant,
 * a cached state) or the output of an op is an ordinary property.
 */
function isParameterLike(v: Tensor): boolean {
  return !v.isDisposed && v.isLeaf && v.requiresGrad
}

/**
 * Marks `tensor` as a trainable parameter and returns it, PyTorch's `nn.Parameter`: it sets
 * `requiresGrad` and `keep()`s it (so no `tidy` scope disposes it). Assigned as a property of a
 * {@link Module}, it registers itself under the property's name:
 *
 * ```ts
 * class Scaler extends Module {
 *   gain = parameter(ones([4]))
 *   forward(x: Tensor) { return x.mul(this.gain) }
 * }
 * new Scaler().namedParameters() // [['gain', Tensor [4]]]
 * ```
 *
 * Any leaf tensor with `requiresGrad = true` assigned as a property registers too; `parameter`
 * only saves the two steps, and keeps the tensor from the moment it is made (a module built
 * inside `tidy` would otherwise lose a plain `requiresGrad` tensor when the scope ends, before
 * the module first lists it).
 */
export function parameter(tensor: Tensor): Tensor {
  if (!(tensor instanceof Tensor)) throw new ValueError('parameter', `expected a Tensor, got ${tensor === null ? 'null' : typeof tensor}`)
  if (!tensor.isLeaf) throw new ValueError('parameter', 'expected a leaf tensor (a factory result or a detach()), got the output of an op')
  if (!tensor.requiresGrad) tensor.requiresGrad = true
  keep(tensor)
  return tensor
}

/**
 * Base class of every layer and model.
 *
 * Subclasses declare their children and parameters in their constructor (or as class fields)
 * and implement `forward`. Parameters are leaf tensors with `requiresGrad = true`; their names
 * in {@link namedParameters} and {@link stateDict} are the dotted paths through the module tree,
 * own parameters first, then each child's, in declaration order (PyTorch's order).
 *
 * ```ts
 * class Model extends Module {
 *   lstm = new LSTM(1, 32, { numLayers: 2 })
 *   head = new Linear(32, 1)
 *   forward(x: Tensor) { return this.head.forward(this.lstm.forward(x).output) }
 * }
 * new Model().namedParameters().map(([n]) => n)
 * // ['lstm.weight_ih_l0', 'lstm.weight_hh_l0', 'lstm.bias_ih_l0', 'lstm.bias_hh_l0',
 * //  'lstm.weight_ih_l1', ..., 'head.weight', 'head.bias']
 * ```
 *
 * **Registration by assignment**, as PyTorch's `__setattr__`. A property of the module (an own,
 * enumerable data property whose name is letters, digits and `_`) registers itself when it
 * holds:
 * - a `Module`: a child, under the property's name;
 * - a leaf tensor with `requiresGrad = true` (see {@link parameter}): a parameter. A tensor
 *   without `requiresGrad` (a constant, a carried state) and the output of an op are ordinary
 *   properties; a non-trainable tensor that should move with {@link to} is a buffer
 *   ({@link registerBuffer}).
 *
 * The properties are discovered lazily: every method that reads the tree (listing parameters,
 * children or modules, state dicts, `to`, `train`, the `register*` methods, `toString`) first
 * looks at this module's own properties, in definition order, and registers what is new. That
 * is why it works for class fields (defined with define semantics, so no setter could see
 * them) and for plain assignments in a constructor or later, without a Proxy (which would
 * break the private members of every subclass). A consequence: registration happens at the
 * first such read, so the order of names is the order of the properties' definition, and
 * explicit `register*` calls made in between keep their place (each looks first).
 *
 * Reassigning a property updates the registry in place, keeping the name's position, as in
 * PyTorch: a new Module or parameter tensor replaces the old one; `null` leaves the name
 * registered but absent (in no list, as PyTorch's `None`); for a name that was registered by
 * assignment, any other value (or `delete`) unregisters it. Explicitly registered names follow
 * a property of the same name only when it holds a Module (child), a tensor (parameter or
 * buffer) or `null`; assigning a tensor without `requiresGrad` to a parameter's name is an
 * error at the next read (PyTorch's `TypeError`).
 *
 * Not registered: a value already registered in this module under another name (so
 * `this.w = this.registerParameter('weight', t)` is listed once, as `weight`), a module that
 * would make a cycle (this module itself or one of its ancestors), arrays or maps of modules
 * (use {@link Sequential} or `registerModule` with indices), getters, and properties whose
 * names have other characters (`$cache`). A back-reference from a child to its parent is such a
 * cycle: whichever of the two is read first keeps the other as its child, so keep such
 * references out of the tree with a private field (`#owner`), which is never discovered.
 */
export abstract class Module {
  /** True in training mode (the default), false after {@link eval}. Read by Dropout and RNN dropout. */
  training = true
  readonly #parameters = new Map<string, Tensor | null>()
  readonly #buffers = new Map<string, Tensor | null>()
  /** The buffers (by name) that belong in the state dict. */
  readonly #persistent = new Set<string>()
  /** Children by name; null is a registered but absent child (a property set to null). */
  readonly #modules = new Map<string, Module | null>()
  /** The names registered by assignment: their entries follow their property (see the class doc). */
  readonly #assigned = new Set<string>()
  /** Set while {@link #sync} runs, so that a cycle check reaching back here does not re-enter it. */
  #syncing = false

  /**
   * The computation of the module. Each subclass declares its own signature, for example
   * `forward(x: Tensor): Tensor` (Linear) or `forward(x, { h0, c0, lengths })` (LSTM).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  // biome-ignore lint/suspicious/noExplicitAny: subclasses declare their own argument types
  abstract forward(...args: any[]): unknown

  /**
   * Registers `tensor` as the parameter `name` of this module, marks it `requiresGrad`, and
   * returns it (so that `this.weight = this.registerParameter('weight', w)` reads naturally).
   * `null` registers an absent optional parameter (such as a disabled bias): it keeps its
   * place in the order but appears in no list.
   *
   * The tensor is marked with `keep()`, so a module built inside `tidy` keeps its parameters.
   * A name registered by assignment (a property, see the class doc) is taken over.
   */
  registerParameter<T extends Tensor | null>(name: string, tensor: T): T {
    this.#claim(name, this.#parameters)
    if (tensor !== null) {
      if (!(tensor instanceof Tensor)) {
        throw new ValueError(`registerParameter`, `'${name}' must be a Tensor or null`)
      }
      if (!tensor.requiresGrad) tensor.requiresGrad = true
      keep(tensor)
    }
    this.#parameters.set(name, tensor)
    return tensor
  }

  /**
   * Registers `tensor` as the buffer `name`: a tensor the module computes with but does not
   * train (a constant, a running statistic). Buffers move with {@link to}; they are not in
   * {@link parameters}. By default they are not in {@link stateDict} either (PyTorch's
   * non-persistent buffers); with `{ persistent: true }` they are, after the module's own
   * parameters (PyTorch's order), and {@link loadStateDict} fills them, as BatchNorm's running
   * statistics. `null` registers an absent one. Returns `tensor` (marked with `keep()`, as
   * parameters are).
   */
  registerBuffer<T extends Tensor | null>(name: string, tensor: T, options: RegisterBufferOptions = {}): T {
    this.#claim(name, this.#buffers)
    if (tensor !== null && !(tensor instanceof Tensor)) {
      throw new ValueError(`registerBuffer`, `'${name}' must be a Tensor or null`)
    }
    const persistent = boolArg('registerBuffer', 'persistent', checkOptions('registerBuffer', options, REGISTER_BUFFER_OPTIONS).persistent ?? false)
    if (tensor !== null) keep(tensor)
    this.#buffers.set(name, tensor)
    if (persistent) this.#persistent.add(name)
    else this.#persistent.delete(name)
    return tensor
  }

  /** Every buffer of this module and its descendants with its dotted name (see {@link registerBuffer}). */
  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const seen = new Set<Tensor>()
    const out: Array<[string, Tensor]> = []
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.#buffers) {
        if (t !== null && !seen.has(t)) {
          seen.add(t)
          out.push([path ? `${path}.${name}` : name, t])
        }
      }
    }
    return out
  }

  /** Every buffer, in {@link namedBuffers} order. */
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t)
  }

  /**
   * Moves every parameter and buffer of this module and its descendants to `device`
   * (`'cpu'`, `'cuda'` = `'cuda:0'`, or `'cuda:N'`), with their gradients, and returns `this`;
   * as PyTorch's `module.to(device)`. With `'float64'` or `'float32'` it converts the float
   * parameters and buffers (and their gradients) instead, as PyTorch's `.double()` / `.float()`;
   * int32 buffers stay as they are.
   *
   * The tensors are changed in place: each parameter stays the same `Tensor` object (so the
   * module's fields, `stateDict()` and your own references follow it), now holding a copy on
   * `device` (or in `dtype`) that is a leaf with the same `requiresGrad`. Tensors already there
   * are untouched.
   *
   * Create optimizers after `.to()`, as in PyTorch: an optimizer that has already stepped keeps
   * its state (moments, momentum) on the old device and dtype, and its next step throws.
   * Inputs must be moved or made in the dtype too (`x.to(device)`, `tensor(data, shape,
   * { dtype: 'float64' })`); the recurrent modules make their default zero states on the input's
   * device, in its dtype.
   *
   * @throws CudaUnavailableError (with what is missing) before anything moves, when CUDA cannot
   * be used; DeviceError for a malformed device name; DTypeError for `'int32'`.
   */
  to(target: Device | FloatDType): this {
    if (isFloatDType(target)) return this.#convert(target)
    if ((target as string) === 'int32') {
      throw new DTypeError(`${this.constructor.name}.to`, `parameters are float32 or float64, got 'int32'`)
    }
    const d = requireDevice(`${this.constructor.name}.to`, target) as Device
    return this.#replaceEach((t) => (t.device === d ? null : t.to(d)))
  }

  /** Converts the float tensors to `dtype` in place (see {@link to}). */
  #convert(dtype: FloatDType): this {
    return this.#replaceEach((t) => (t.dtype === dtype || !isFloatDType(t.dtype) ? null : castLeaf(t, dtype)))
  }

  /**
   * Replaces every parameter and buffer `t` for which `change(t)` makes a new tensor (null: leave
   * it), in place: the gradient goes through `change` too, `requiresGrad` is kept, and each
   * `Tensor` object stays the same (it takes the new handle). Nothing changes if any step throws.
   */
  #replaceEach(change: (t: Tensor) => Tensor | null): this {
    const seen = new Set<Tensor>()
    const moves: Array<[Tensor, Tensor]> = []
    try {
      noGrad(() => {
        for (const m of this.modules()) {
          for (const t of [...m.#parameters.values(), ...m.#buffers.values()]) {
            if (t === null || seen.has(t)) continue
            seen.add(t)
            const made = change(t)
            if (made === null) continue
            // Kept: it shares its handle with `t` after _replaceWith, so no scope may dispose it.
            const replaced = keep(made)
            moves.push([t, replaced])
            const g = t.grad
            if (g !== null) {
              const gc = change(g) ?? g
              replaced.grad = gc // the gradient slot holds its own reference
              if (gc !== g) gc.dispose()
              g.dispose()
            }
            if (t.requiresGrad) replaced.requiresGrad = true
          }
        }
      })
    } catch (e) {
      for (const [, replaced] of moves) replaced.dispose()
      throw e
    }
    for (const [t, replaced] of moves) t._replaceWith(replaced)
    return this
  }

  /** Converts the float parameters and buffers to float64 in place: `to('float64')`, PyTorch's `.double()`. */
  double(): this {
    return this.to('float64')
  }

  /** Converts the float parameters and buffers to float32 in place: `to('float32')`, PyTorch's `.float()`. */
  float(): this {
    return this.to('float32')
  }

  /**
   * Registers `module` as the child `name` of this module and returns it. A name registered by
   * assignment (a property, see the class doc) is taken over.
   */
  registerModule<M extends Module>(name: string, module: M): M {
    this.#claim(name, this.#modules)
    if (!(module instanceof Module)) {
      throw new ValueError(`registerModule`, `'${name}' must be a Module`)
    }
    this.#modules.set(name, module)
    return module
  }

  /**
   * Checks `name` for an explicit registration into `into`. The properties defined so far are
   * registered first, so that names keep their declaration order when both ways are mixed. A
   * name registered by assignment becomes explicit (in place when `into` already holds it); one
   * registered explicitly before is an error.
   */
  #claim(name: string, into: Map<string, unknown>): void {
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new ValueError(`register`, `a module or parameter name must be a non-empty string of letters, digits and '_'; got '${String(name)}'`)
    }
    this.#sync()
    if (this.#assigned.has(name)) {
      this.#assigned.delete(name)
      for (const m of [this.#parameters, this.#buffers, this.#modules] as Array<Map<string, unknown>>) if (m !== into) m.delete(name)
      return
    }
    if (this.#parameters.has(name) || this.#buffers.has(name) || this.#modules.has(name)) {
      throw new ValueError(`register`, `'${name}' is already registered in ${this.constructor.name}`)
    }
  }

  /**
   * Brings the registry up to date with this module's own properties (registration by
   * assignment; the rules are in the class doc). Only this module's level: the readers that
   * walk the tree call it on each module they visit.
   */
  #sync(): void {
    if (this.#syncing) return
    this.#syncing = true
    try {
      for (const key of Object.keys(this)) {
        if (!NAME_RE.test(key)) continue
        const d = Object.getOwnPropertyDescriptor(this, key)
        if (d === undefined || !('value' in d)) continue
        this.#adopt(key, d.value)
      }
      for (const key of this.#assigned) {
        if (!Object.hasOwn(this, key)) this.#unassign(key)
      }
    } finally {
      this.#syncing = false
    }
  }

  /** Registers or updates the entry of property `key`, which holds `v`. */
  #adopt(key: string, v: unknown): void {
    const assigned = this.#assigned.has(key)
    if (this.#modules.has(key)) {
      const cur = this.#modules.get(key)
      if (v === cur) return
      if (v === null || (v instanceof Module && !this.#wouldCycle(v))) {
        this.#modules.set(key, v)
        return
      }
      if (!assigned) return
      this.#unassign(key)
    } else if (this.#parameters.has(key)) {
      const cur = this.#parameters.get(key)
      if (v === cur) return
      if (v === null) {
        this.#parameters.set(key, null)
        return
      }
      if (v instanceof Tensor && isParameterLike(v)) {
        this.#parameters.set(key, keep(v))
        return
      }
      if (!assigned) {
        if (v instanceof Tensor) {
          throw new ValueError(
            `${this.constructor.name}`,
            `'${key}' is a parameter: assign a leaf tensor with requiresGrad (see parameter()) or null, got a tensor without requiresGrad`,
          )
        }
        return
      }
      this.#unassign(key)
    } else if (this.#buffers.has(key)) {
      const cur = this.#buffers.get(key)
      if (v !== cur && (v === null || v instanceof Tensor)) this.#buffers.set(key, v === null ? null : keep(v))
      return
    }
    if (v instanceof Module) {
      if (this.#holds(v) || this.#wouldCycle(v)) return
      this.#modules.set(key, v)
      this.#assigned.add(key)
    } else if (v instanceof Tensor && isParameterLike(v)) {
      if (this.#holds(v)) return
      this.#parameters.set(key, keep(v))
      this.#assigned.add(key)
    }
  }

  #unassign(key: string): void {
    this.#assigned.delete(key)
    this.#modules.delete(key)
    this.#parameters.delete(key)
  }

  /** Whether `v` is already registered in this module (under any name). */
  #holds(v: Module | Tensor): boolean {
    const maps: Array<Map<string, unknown>> = v instanceof Module ? [this.#modules] : [this.#parameters, this.#buffers]
    return maps.some((m) => [...m.values()].includes(v))
  }

  /**
   * Whether making `m` a child would make a cycle: it is this module, has it as a descendant, or
   * is itself in the middle of discovering its properties (so it is an ancestor on the path that
   * led here: the module whose tree is being read first keeps its children).
   */
  #wouldCycle(m: Module): boolean {
    return m === this || m.#syncing || m.modules().includes(this)
  }

  /** The direct children, in registration order, with their names. */
  namedChildren(): Array<[string, Module]> {
    return this.#children()
  }

  /** The direct children, in registration order. */
  children(): Module[] {
    return this.#children().map(([, m]) => m)
  }

  /** The present children (not the null ones), after {@link #sync}. */
  #children(): Array<[string, Module]> {
    this.#sync()
    const out: Array<[string, Module]> = []
    for (const [name, m] of this.#modules) if (m !== null) out.push([name, m])
    return out
  }

  /** This module and every descendant, depth first, with dotted names (`''` for this one). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]]
    for (const [name, m] of this.#children()) {
      out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name))
    }
    return out
  }

  /** This module and every descendant, depth first. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m)
  }

  /**
   * Every parameter of this module and its descendants with its dotted name, own parameters
   * first and then each child's in registration order: PyTorch's `named_parameters()`.
   * A tensor shared by two modules is listed once, under its first name.
   */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const seen = new Set<Tensor>()
    const out: Array<[string, Tensor]> = []
    this.#collect(prefix, (name, t) => {
      if (!seen.has(t)) {
        seen.add(t)
        out.push([name, t])
      }
    })
    return out
  }

  /** Visits the parameters (and, for the state dict, the persistent buffers) in PyTorch's order. */
  #collect(prefix: string, visit: (name: string, t: Tensor) => void, withBuffers = false): void {
    const children = this.#children()
    for (const [name, t] of this.#parameters) {
      if (t !== null) visit(prefix ? `${prefix}.${name}` : name, t)
    }
    if (withBuffers) {
      for (const [name, t] of this.#buffers) {
        if (t !== null && this.#persistent.has(name)) visit(prefix ? `${prefix}.${name}` : name, t)
      }
    }
    for (const [name, m] of children) {
      m.#collect(prefix ? `${prefix}.${name}` : name, visit, withBuffers)
    }
  }

  /** Every parameter, in {@link namedParameters} order; pass it to an optimizer. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t)
  }

  /** Total number of scalar values in {@link parameters}. */
  numParameters(): number {
    let n = 0
    for (const t of this.parameters()) n += t.shape.reduce((a, b) => a * b, 1)
    return n
  }

  /**
   * Sets training mode on this module and every descendant (`mode = false` is {@link eval}).
   * Training mode turns dropout on. Returns `this`.
   */
  train(mode = true): this {
    this.training = boolArg(`${this.constructor.name}.train`, 'mode', mode)
    for (const m of this.children()) m.train(mode)
    return this
  }

  /** Evaluation mode: dropout off. Same as `train(false)`. Returns `this`. */
  eval(): this {
    return this.train(false)
  }

  /** Clears the gradient of every parameter (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const t of this.parameters()) t.zeroGrad()
  }

  /**
   * The parameters and persistent buffers (see {@link registerBuffer}) by dotted name, every
   * name of a shared tensor included. The values are the
   * live parameter tensors themselves (as in PyTorch, not copies): an optimizer step is seen
   * through them. Use `t.detach()` or `await t.data()` to snapshot.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {}
    this.#collect(
      '',
      (name, t) => {
        out[name] = t
      },
      true,
    )
    return out
  }

  /**
   * Copies the tensors of `dict` into the parameters of the same names.
   *
   * All keys, shapes and dtypes are checked before anything is written, so a failed load
   * leaves the module exactly as it was. Errors name the parameter:
   * - `ShapeError`: `loadStateDict: 'lstm.weight_ih_l0' expected shape [128, 1], got [128, 3]`
   * - `ValueError`: missing or unexpected keys (with `strict`, the default), or a value that is
   *   not a Tensor.
   * - `DTypeError`: an int32 value for a (float) parameter:
   *   `loadStateDict: 'weight' expected dtype float32, got int32`.
   *
   * The values are copied by {@link Tensor.assign}: the module keeps its own tensor objects, so
   * optimizers holding them stay valid. As PyTorch's `load_state_dict` (which copies into each
   * parameter's dtype), a float64 value loads into a float32 parameter (rounded) and a float32
   * value into a float64 one (exactly); a value on another device than its parameter (a CPU
   * checkpoint loaded into a module moved to CUDA) is copied to the parameter's device.
   * Returns the missing and unexpected keys.
   */
  loadStateDict(dict: Record<string, Tensor>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = boolArg('loadStateDict', 'strict', checkOptions('loadStateDict', options, LOAD_STATE_DICT_OPTIONS).strict ?? true)
    if (dict === null || typeof dict !== 'object') {
      throw new ValueError('loadStateDict', 'expected an object mapping parameter names to tensors')
    }
    const own = this.stateDict()
    const missingKeys = Object.keys(own).filter((k) => !Object.hasOwn(dict, k))
    const unexpectedKeys = Object.keys(dict).filter((k) => !Object.hasOwn(own, k))
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts: string[] = []
      if (missingKeys.length) parts.push(`missing keys: ${missingKeys.map((k) => `'${k}'`).join(', ')}`)
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.map((k) => `'${k}'`).join(', ')}`)
      throw new ValueError(`loadStateDict`, `error loading state dict into ${this.constructor.name}: ${parts.join('; ')}`)
    }
    const todo: Array<[Tensor, Tensor]> = []
    const shapeErrors: string[] = []
    for (const [name, param] of Object.entries(own)) {
      if (!Object.hasOwn(dict, name)) continue
      const src = dict[name]
      if (!(src instanceof Tensor)) {
        throw new ValueError(`loadStateDict`, `'${name}' must be a Tensor, got ${src === null ? 'null' : typeof src}`)
      }
      if (!sameShape(src.shape, param.shape)) {
        shapeErrors.push(`'${name}' expected shape ${fmtShape(param.shape)}, got ${fmtShape(src.shape)}`)
        continue
      }
      if (src.dtype !== param.dtype && !(isFloatDType(src.dtype) && isFloatDType(param.dtype))) {
        throw new DTypeError(`loadStateDict`, `'${name}' expected dtype ${param.dtype}, got ${src.dtype}`)
      }
      todo.push([param, src])
    }
    if (shapeErrors.length > 0) {
      throw new ShapeError(`loadStateDict`, `size mismatch in ${this.constructor.name}: ${shapeErrors.join('; ')}`)
    }
    // Conversions read values, which can fail (a poisoned source): all of them come first, so a
    // failure leaves every parameter as it was.
    const values: Array<[Tensor, Tensor, boolean]> = []
    try {
      noGrad(() => {
        for (const [param, src] of todo) {
          if (param === src) continue
          if (src.dtype !== param.dtype) values.push([param, castLeaf(src, param.dtype as FloatDType, param.device), true])
          else if (src.device !== param.device) values.push([param, src.to(param.device), true])
          else values.push([param, src, false])
        }
      })
    } catch (e) {
      for (const [, v, temp] of values) if (temp) v.dispose()
      throw e
    }
    for (const [param, v, temp] of values) {
      param.assign(v)
      if (temp) v.dispose()
    }
    return { missingKeys, unexpectedKeys }
  }

  /** A one-line-per-module summary with parameter shapes, like printing a PyTorch module. */
  toString(): string {
    const lines = [`${this.constructor.name}(${this.extraRepr()}`]
    const children = this.#children()
    for (const [name, m] of children) {
      lines.push(`  (${name}): ${m.toString().split('\n').join('\n  ')}`)
    }
    if (children.length === 0) return `${lines[0]})`
    lines.push(')')
    return lines.join('\n')
  }

  /** The constructor arguments shown by {@link toString}; subclasses override it. */
  extraRepr(): string {
    return ''
  }
}
