/**
 * The `Tensor` handle.
 *
 * A tensor is a handle on native data. Creating one with an op only checks shapes and enqueues
 * the work on the native executor, so it returns at once; shape and dtype errors are thrown
 * synchronously at the call that caused them. Reading the data (`await t.data()`,
 * `await t.item()`) is the synchronisation point and never blocks the event loop;
 * `dataSync()`/`itemSync()` do block.
 *
 * Memory is freed by `dispose()`, by `using t = ...` (`Symbol.dispose`), by the end of a
 * `tidy`/`tidyAsync` scope (`scope.ts`), or when the handle is garbage-collected.
 */

import { DeviceError, ShapeError, wrap, wrapAsync } from './errors.js'
import { native, type NativeTensor } from './native.js'
import { requireDevice, type Device } from './device.js'
import { track } from './scope.js'
import { boolArg, checkOptions, numberArg, optionKeys, typeError } from './validate.js'

/** Element types of tensors. */
export type DType = 'float32' | 'float64' | 'int32'

/** The element types of parameters (and of the modules' `dtype` option and `Module.to(dtype)`). */
export type FloatDType = 'float32' | 'float64'

/** The typed array that holds a tensor's data: one per dtype. */
export type TypedArray = Float32Array | Float64Array | Int32Array

/** Nested arrays of numbers, as `array()` returns them. */
export type NestedArray = number | NestedArray[]

const inspect = Symbol.for('nodejs.util.inspect.custom')

/**
 * Normalises a possibly negative axis (`-1` is the last) against `rank`.
 * @throws ShapeError when the axis is out of `[-rank, rank)` or not an integer.
 * @internal
 */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new ShapeError(op, `an axis in [${-rank}, ${rank}) for a tensor of rank ${rank}, got ${axis}`)
  }
  return axis < 0 ? axis + rank : axis
}

/** Formats a shape as `[2, 3]`. @internal */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`
}

/** Options of {@link topk}. */
export interface TopkOptions {
  /** The largest values (default) or the smallest. */
  largest?: boolean
  /** Best first (default), or in increasing index order. */
  sorted?: boolean
}

const TOPK_OPTIONS = optionKeys<TopkOptions>({ largest: true, sorted: true })
const BACKWARD_OPTIONS = optionKeys<{ retainGraph?: boolean }>({ retainGraph: true })

/** What `max` and `topk` return. */
export interface ValuesIndices {
  /** The chosen values, in x's dtype; differentiable (the gradient goes to their positions). */
  values: Tensor
  /** Their positions along the axis, int32, same shape as `values`. */
  indices: Tensor
}

/** A tensor: an n-dimensional array of float32, float64 or int32 values, with autograd. */
export class Tensor {
  /** Dimensions, outermost first (`[]` for a scalar). */
  readonly shape: number[]
  /** Number of elements: the product of `shape`. */
  readonly size: number
  /**
   * @internal The native handle. Use the methods; its errors are not translated. Replaced only
   * by `Module.to()` (which moves parameters in place, keeping the Tensor objects).
   */
  _native: NativeTensor
  #device: Device
  #dtype: DType

  /**
   * @internal Tensors are made by factories (`tensor`, `zeros`, `randn`...) and ops. Every one
   * passes here, which is where the memory scopes (`tidy`) learn of it.
   */
  constructor(h: NativeTensor) {
    this._native = h
    this.shape = h.shape
    this.#dtype = h.dtype as DType
    this.#device = h.device as Device
    this.size = this.shape.reduce((a, b) => a * b, 1)
    track(this)
  }

  /** Element type. */
  get dtype(): DType {
    return this.#dtype
  }

  /** Where the data lives: `'cpu'` or `'cuda:N'`. */
  get device(): Device {
    return this.#device
  }

  /**
   * @internal Makes this object the handle of `moved` (same shape, possibly another device or
   * dtype), dropping its previous native handle. Used by `Module.to()`, so that a module's
   * fields and users' references keep pointing at its (moved or converted) parameters. `moved`
   * must be a temporary that is dropped afterwards and never disposed: it shares the handle.
   */
  _replaceWith(moved: Tensor): void {
    if (moved === this) return
    const old = this._native
    this._native = moved._native
    this.#device = moved.#device
    this.#dtype = moved.#dtype
    try {
      old.dispose()
    } catch {
      // A native call that borrowed the old handle (the read that ended an awaited
      // `optimizer.step()`) may still hold it until its promise settles: drop it on the next
      // turn of the event loop instead (the handle is unreachable from here on either way).
      setImmediate(() => {
        try {
          old.dispose()
        } catch {
          // Still borrowed: the garbage collector frees it.
        }
      })
    }
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length
  }

  /** A process-unique id of the underlying tensor. */
  get id(): number {
    return wrap(() => this._native.id)
  }

  /**
   * Whether `backward()` accumulates a gradient into this (leaf) tensor's `grad`, and whether
   * ops on it record history. Only leaves can change it; only float tensors can require grad.
   */
  get requiresGrad(): boolean {
    return wrap(() => this._native.requiresGrad)
  }
  set requiresGrad(on: boolean) {
    wrap(() => {
      this._native.requiresGrad = on
    })
  }

  /** True for tensors not produced by a history-recording op (factories, `detach()`). */
  get isLeaf(): boolean {
    return wrap(() => this._native.isLeaf)
  }

  /** True once the executor has computed (or failed to compute) this tensor's data. */
  get isReady(): boolean {
    return wrap(() => this._native.isReady)
  }

  /** True after `dispose()`. */
  get isDisposed(): boolean {
    return this._native.isDisposed
  }

  /**
   * The gradient accumulated by `backward()` (same shape as this tensor), or null.
   * Each read returns a new handle on the same gradient tensor. Assigning sets or clears it.
   */
  get grad(): Tensor | null {
    const g = wrap(() => this._native.grad())
    return g ? new Tensor(g) : null
  }
  set grad(g: Tensor | null) {
    wrap(() => this._native.setGrad(g ? handle('grad', g, 'value') : null))
  }

  /** Clears the accumulated gradient (`grad` becomes null). */
  zeroGrad(): void {
    wrap(() => this._native.zeroGrad())
  }

  /**
   * Backpropagates from this tensor: accumulates ∂this/∂p into `p.grad` for every leaf `p`
   * with `requiresGrad`. `grad` (same shape as this) is the upstream gradient; it defaults to
   * 1 for a one-element tensor. The backward ops are enqueued; nothing blocks.
   *
   * As in PyTorch, the graph's saved activations are freed as the pass goes, so memory does not
   * wait for garbage collection; pass `{ retainGraph: true }` to backpropagate through the
   * same graph again.
   */
  backward(grad?: Tensor | null, options: { retainGraph?: boolean } = {}): void {
    options = checkOptions('backward', options, BACKWARD_OPTIONS)
    if (options.retainGraph !== undefined) boolArg('backward', 'retainGraph', options.retainGraph)
    wrap(() => this._native.backward(grad ? handle('backward', grad, 'grad') : null, options.retainGraph ?? false))
  }

  /**
   * A copy of this tensor on `device` (`'cpu'`, `'cuda'` = `'cuda:0'`, or `'cuda:N'`); this same
   * tensor when it is already there. The copy is differentiable: `backward()` through it
   * brings the gradient back to this tensor's device. Data moves between devices only through
   * `to()` and reads (`data()`); an op whose inputs are on different devices throws a
   * `DeviceError`.
   *
   * @throws CudaUnavailableError for a CUDA device when CUDA cannot be used here; the message
   * says what is missing (the driver, a device, NVRTC or cuBLAS).
   * @throws DeviceError for anything but `'cpu'`, `'cuda'` and `'cuda:N'`.
   */
  to(device: Device): Tensor {
    const d = requireDevice('to', device)
    if (d === this.#device && !this._native.isDisposed) return this
    return new Tensor(wrap(() => this._native.to(d)))
  }

  /** A new leaf sharing this tensor's data, without history (`requiresGrad` false). */
  detach(): Tensor {
    return new Tensor(wrap(() => this._native.detach()))
  }

  /**
   * Replaces this tensor's data with `src`'s (same shape, dtype and device), in place. Ops
   * enqueued earlier still see the old data. This is how optimizers update parameters.
   */
  assign(src: Tensor): this {
    const h = handle('assign', src, 'src')
    if (src.device !== this.device) {
      throw new DeviceError('assign', `expected a source tensor on ${this.device}, got one on ${src.device} (move it first with .to('${this.device}'))`)
    }
    wrap(() => this._native.assign(h))
    return this
  }

  /** Frees this handle now. Using the tensor afterwards throws a `DisposedError`. */
  dispose(): void {
    this._native.dispose()
  }

  /** `using t = ...` disposes `t` at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose()
  }

  /**
   * The data, row-major, as a new typed array (Float32Array, Float64Array or Int32Array per
   * dtype). Resolves when the executor has computed it; never blocks the event loop. Rejects
   * with the error (naming the op) of a failed op this tensor depends on.
   */
  data(): Promise<TypedArray> {
    return wrapAsync(() => this._native.data())
  }

  /** Like `data()`, but blocks the JS thread until the data is computed. */
  dataSync(): TypedArray {
    return wrap(() => this._native.dataSync())
  }

  /** The value of a one-element tensor, without blocking. */
  item(): Promise<number> {
    return wrapAsync(() => this._native.item())
  }

  /** The value of a one-element tensor; blocks until it is computed. */
  itemSync(): number {
    return wrap(() => this._native.itemSync())
  }

  /** The data as nested arrays of numbers, shaped like the tensor (a number for a scalar). */
  async array(): Promise<NestedArray> {
    return nest(await this.data(), this.shape)
  }

  /** Like `array()`, but blocking. */
  arraySync(): NestedArray {
    return nest(this.dataSync(), this.shape)
  }

  toString(): string {
    if (this.isDisposed) return `Tensor(disposed, shape=${fmtShape(this.shape)}, dtype=${this.dtype})`
    return `Tensor(shape=${fmtShape(this.shape)}, dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ', requiresGrad=true' : ''})`
  }

  [inspect](): string {
    return this.toString()
  }

  // ---- ops -------------------------------------------------------------------------------

  /** `this + other` (broadcasting); a number is added to every element. */
  add(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.addScalar(other) : op(() => native.add(this._native, handle('add', other, 'other', 'a Tensor or a number')))
  }

  /** `this − other` (broadcasting); a number is subtracted from every element. */
  sub(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.addScalar(-other) : op(() => native.sub(this._native, handle('sub', other, 'other', 'a Tensor or a number')))
  }

  /** `this ⊙ other`, elementwise (broadcasting); a number scales every element. */
  mul(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.scale(other) : op(() => native.mul(this._native, handle('mul', other, 'other', 'a Tensor or a number')))
  }

  /** `this / other`, elementwise (broadcasting); a number divides every element. */
  div(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.scale(1 / other) : op(() => native.div(this._native, handle('div', other, 'other', 'a Tensor or a number')))
  }

  /** `c · this`. */
  scale(c: number): Tensor {
    numberArg('scale', 'the factor c', c, { nonFinite: true })
    return op(() => native.scale(this._native, c))
  }

  /** `this + c`. */
  addScalar(c: number): Tensor {
    numberArg('addScalar', 'the term c', c, { nonFinite: true })
    return op(() => native.addScalar(this._native, c))
  }

  /** `−this`. */
  neg(): Tensor {
    return op(() => native.neg(this._native))
  }

  /** `eˣ`, elementwise. */
  exp(): Tensor {
    return op(() => native.exp(this._native))
  }

  /** `ln x`, elementwise. */
  log(): Tensor {
    return op(() => native.log(this._native))
  }

  /** `tanh x`, elementwise. */
  tanh(): Tensor {
    return op(() => native.tanh(this._native))
  }

  /** `σ(x) = 1 / (1 + e^−x)`, elementwise. */
  sigmoid(): Tensor {
    return op(() => native.sigmoid(this._native))
  }

  /** `max(x, 0)`, elementwise. */
  relu(): Tensor {
    return op(() => native.relu(this._native))
  }

  /** `x²`, elementwise. */
  square(): Tensor {
    return op(() => native.square(this._native))
  }

  /** `√x`, elementwise. */
  sqrt(): Tensor {
    return op(() => native.sqrt(this._native))
  }

  /**
   * Matrix product `this · other`: `[M, K] · [K, N] → [M, N]`; leading (batch) dimensions
   * broadcast as in NumPy's `matmul`.
   */
  matmul(other: Tensor): Tensor {
    return op(() => native.matmul(this._native, handle('matmul', other, 'other')))
  }

  /**
   * The same data with a new shape of the same size; one dimension may be `-1` (inferred).
   * Accepts `reshape([2, 3])` or `reshape(2, 3)`.
   */
  reshape(...shape: number[] | [number[]]): Tensor {
    const s = (Array.isArray(shape[0]) ? shape[0] : shape) as number[]
    return op(() => native.reshape(this._native, s))
  }

  /** Swaps dimensions `d0` and `d1` (negative counts from the end; default: the last two). */
  transpose(d0 = -2, d1 = -1): Tensor {
    const r = this.rank
    const a = normAxis('transpose', d0, r)
    const b = normAxis('transpose', d1, r)
    return op(() => native.transpose(this._native, a, b))
  }

  /**
   * `Σ` over `axes` (default: all, giving a scalar `[]`). With `keepdim` the summed axes stay
   * as size 1.
   */
  sum(axes?: number | number[], keepdim = false): Tensor {
    if (axes === undefined && !keepdim) return op(() => native.sumAll(this._native))
    const ax = normAxes('sum', axes, this.rank)
    return op(() => native.sum(this._native, ax, keepdim))
  }

  /** Mean over `axes` (default: all, giving a scalar `[]`). */
  mean(axes?: number | number[], keepdim = false): Tensor {
    if (axes === undefined && !keepdim) return op(() => native.meanAll(this._native))
    const ax = normAxes('mean', axes, this.rank)
    return op(() => native.mean(this._native, ax, keepdim))
  }

  /** `softmax(x)ᵢ = exp(xᵢ) / Σⱼ exp(xⱼ)` along `axis` (default last). */
  softmax(axis = -1): Tensor {
    const a = normAxis('softmax', axis, this.rank)
    return op(() => native.softmax(this._native, a))
  }

  /** `log softmax(x)ᵢ = xᵢ − log Σⱼ exp(xⱼ)` along `axis` (default last). */
  logSoftmax(axis = -1): Tensor {
    const a = normAxis('logSoftmax', axis, this.rank)
    return op(() => native.logSoftmax(this._native, a))
  }

  /** `this == other` → int32 1/0, broadcasting; no gradient (`ops.eq` also takes a number). */
  eq(other: Tensor): Tensor {
    return op(() => native.eq(this._native, handle('eq', other, 'other')))
  }

  /** `this < other` → int32 1/0, broadcasting; no gradient. */
  lt(other: Tensor): Tensor {
    return op(() => native.lt(this._native, handle('lt', other, 'other')))
  }

  /** `this > other` → int32 1/0, broadcasting; no gradient. */
  gt(other: Tensor): Tensor {
    return op(() => native.gt(this._native, handle('gt', other, 'other')))
  }

  /** This with `value` where the int32 `mask` (broadcast to this shape) is non-zero. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return op(() => native.maskedFill(this._native, handle('maskedFill', mask, 'mask'), value))
  }

  /** This as `dtype` (this tensor itself when it already is); see `ops.cast`. */
  cast(dtype: DType): Tensor {
    if (dtype === this.#dtype) return this
    return op(() => native.cast(this._native, dtype))
  }

  /** int32 index of the largest value along `axis` (ties: the first); see `ops.argmax`. */
  argmax(axis: number, keepdim = false): Tensor {
    const a = normAxis('argmax', axis, this.rank)
    return op(() => native.argmax(this._native, a, keepdim))
  }

  /** The largest values along `axis` and their int32 indices; see `ops.max`. */
  max(axis: number, keepdim = false): ValuesIndices {
    const a = normAxis('max', axis, this.rank)
    return valuesIndices(wrap(() => native.max(this._native, a, keepdim)))
  }

  /** The `k` largest (or smallest) values along `axis` and their int32 indices; see `ops.topk`. */
  topk(k: number, axis = -1, options: TopkOptions = {}): ValuesIndices {
    const a = normAxis('topk', axis, this.rank)
    const o = checkOptions('topk', options, TOPK_OPTIONS)
    const largest = boolArg('topk', 'largest', o.largest ?? true)
    const sorted = boolArg('topk', 'sorted', o.sorted ?? true)
    return valuesIndices(wrap(() => native.topk(this._native, k, a, largest, sorted)))
  }

  /** PyTorch's `gather` along `axis` with an int32 `index` of this rank; see `ops.gather`. */
  gather(axis: number, index: Tensor): Tensor {
    const a = normAxis('gather', axis, this.rank)
    return op(() => native.gather(this._native, a, handle('gather', index, 'index')))
  }

  /** The slices at int32 `index [M]` along `axis`; see `ops.indexSelect`. */
  indexSelect(axis: number, index: Tensor): Tensor {
    const a = normAxis('indexSelect', axis, this.rank)
    return op(() => native.indexSelect(this._native, a, handle('indexSelect', index, 'index')))
  }
}

/** Wraps the native `{ values, indices }` pair of `max`/`topk`. @internal */
export function valuesIndices(r: { values: NativeTensor; indices: NativeTensor }): ValuesIndices {
  return { values: new Tensor(r.values), indices: new Tensor(r.indices) }
}

/** Wraps a native call that returns a tensor handle, translating its errors. @internal */
export function op(fn: () => NativeTensor): Tensor {
  return new Tensor(wrap(fn))
}

/** Normalises an axis list (undefined: every axis), dropping none and checking each. @internal */
export function normAxes(opName: string, axes: number | number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i)
  const list = typeof axes === 'number' ? [axes] : axes
  const out = list.map((a) => normAxis(opName, a, rank))
  if (new Set(out).size !== out.length) {
    throw new ShapeError(opName, `distinct axes, got [${list.join(', ')}]`)
  }
  return out
}

/**
 * The native handle of a tensor; an ArgumentTypeError naming `opName` and the argument `name`
 * if `t` is not a Tensor (plain JavaScript callers pass arrays, numbers, null). @internal
 */
export function handle(opName: string, t: Tensor, name: string, expected = 'a Tensor'): NativeTensor {
  if (!(t instanceof Tensor)) throw typeError(opName, `argument '${name}'`, expected, t)
  return t._native
}

function nest(data: TypedArray, shape: readonly number[]): NestedArray {
  if (shape.length === 0) return data[0]!
  let i = 0
  const build = (d: number): NestedArray[] => {
    const n = shape[d]!
    const out: NestedArray[] = new Array(n)
    if (d === shape.length - 1) {
      for (let k = 0; k < n; k++) out[k] = data[i++]!
    } else {
      for (let k = 0; k < n; k++) out[k] = build(d + 1)
    }
    return out
  }
  return build(0)
}
