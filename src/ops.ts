/**
 * Free functions over tensors: factories, arithmetic, shape ops, reductions, losses and the
 * fused recurrent layer. Every function checks its arguments, enqueues the work on the native
 * executor and returns at once; errors are thrown synchronously as the classes of `errors.ts`.
 *
 * Shape notation: T time steps, B batch, I input size, H hidden size, N rows, C classes.
 */

import { DTypeError, ShapeError, ValueError, wrap, wrapAsync } from './errors.js'
import { native } from './native.js'
import { Tensor, handle, normAxes, normAxis, op, type DType, type TypedArray } from './tensor.js'
import { requireDevice, type CudaMemoryInfo, type Device } from './device.js'

export type { DType, TypedArray } from './tensor.js'
export type { Device } from './device.js'

/** Nested arrays of numbers (rectangular), as accepted by {@link tensor}. */
export type NestedNumbers = number | readonly NestedNumbers[]

/** Options of the factories. */
export interface DTypeOptions {
  /** Element type; default `'float32'` (or the typed array's own type). */
  dtype?: DType
  /**
   * Where to create the tensor: `'cpu'` (default), `'cuda'` (= `'cuda:0'`) or `'cuda:N'`. The
   * values are made on the CPU (so a seed gives the same values on every device) and copied.
   * A CUDA device without CUDA throws a `CudaUnavailableError` saying what is missing.
   */
  device?: Device
}

/** Options of the random factories. */
export interface RandomOptions extends DTypeOptions {
  /** Seed of the generator; the same seed gives bit-identical values. Default: the global generator (see {@link manualSeed}). */
  seed?: number
}

// ---- seeds ----------------------------------------------------------------------------------

const DEFAULT_SEED = 0x5eed
let seedBase = DEFAULT_SEED
let seedCounter = 0

/**
 * Seeds the global generator: every random call without an explicit `seed` (`randn`,
 * `randUniform`, `dropout`, layer initialisation) draws its seed from it, so a program that
 * calls `manualSeed(n)` first is reproducible. The default state equals `manualSeed(0x5eed)`.
 */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new ValueError('manualSeed', `seed must be an integer in [0, 2^53), got ${seed}`)
  }
  seedBase = seed
  seedCounter = 0
}

/**
 * The next seed of the global generator: a hash of (base seed, call count), exact in a double.
 * @internal exported for the `nn` layers.
 */
export function nextSeed(): number {
  const k = seedCounter++
  // Two rounds of a 32-bit integer mix over (base, k); 48 bits of result.
  let h1 = Math.imul((seedBase % 0x100000000) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35)
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x7feb352d)
  h1 ^= h1 >>> 15
  let h2 = Math.imul(Math.floor(seedBase / 0x100000000) ^ k ^ 0x27d4eb2f, 0x165667b1)
  h2 ^= h2 >>> 13
  return (h1 >>> 0) * 0x10000 + ((h2 >>> 0) & 0xffff)
}

/** The state of the global generator: its base seed and how many seeds it has drawn. */
export interface SeedState {
  /** The seed given to {@link manualSeed} (or the default). */
  seed: number
  /** Number of seeds drawn since. */
  counter: number
}

/**
 * The state of the global generator, to save in a checkpoint. Restoring it with
 * {@link setSeedState} makes every later random call (dropout masks included) draw exactly the
 * seeds it would have drawn without the interruption.
 */
export function seedState(): SeedState {
  return { seed: seedBase, counter: seedCounter }
}

/** Restores a state returned by {@link seedState}. */
export function setSeedState(state: SeedState): void {
  const { seed, counter } = state ?? ({} as SeedState)
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER || !Number.isInteger(counter) || counter < 0) {
    throw new ValueError('setSeedState', `expected { seed, counter } with integers in [0, 2^53), got ${JSON.stringify(state)}`)
  }
  seedBase = seed
  seedCounter = counter
}

function seedOf(opName: string, seed: number | undefined): number {
  if (seed === undefined) return nextSeed()
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new ValueError(opName, `seed must be an integer in [0, 2^53), got ${seed}`)
  }
  return seed
}

// ---- factories ------------------------------------------------------------------------------

function checkDType(opName: string, dtype: unknown): DType {
  if (dtype === 'float32' || dtype === 'float64' || dtype === 'int32') return dtype
  throw new DTypeError(opName, `expected dtype 'float32', 'float64' or 'int32', got ${String(dtype)}`)
}

function shapeArg(opName: string, shape: number | readonly number[]): number[] {
  const s = typeof shape === 'number' ? [shape] : shape
  if (!Array.isArray(s)) throw new ShapeError(opName, `a shape (array of positive integers), got ${typeof shape}`)
  return s as number[]
}

/** Infers the shape of rectangular nested arrays and flattens them. */
function flatten(data: NestedNumbers): { shape: number[]; values: number[] } {
  if (typeof data === 'number') return { shape: [], values: [data] }
  const shape: number[] = []
  let level: unknown = data
  while (Array.isArray(level)) {
    shape.push(level.length)
    if (level.length === 0) break
    level = level[0]
  }
  const values: number[] = []
  const walk = (x: unknown, d: number, path: string): void => {
    if (d === shape.length) {
      if (typeof x !== 'number') throw new ValueError('tensor', `expected a number at ${path || 'the top'}, got ${Array.isArray(x) ? 'an array' : typeof x}`)
      values.push(x)
      return
    }
    if (!Array.isArray(x) || x.length !== shape[d]) {
      throw new ShapeError('tensor', `a rectangular nested array of shape [${shape.join(', ')}], got ${Array.isArray(x) ? `length ${x.length}` : typeof x} at ${path || 'the top'}`)
    }
    for (let i = 0; i < x.length; i++) walk(x[i], d + 1, `${path}[${i}]`)
  }
  walk(data, 0, '')
  return { shape, values }
}

function checkedInt32(values: ArrayLike<number>): Int32Array {
  const out = new Int32Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
      throw new ValueError('tensor', `int32 values must be integers in [-2^31, 2^31), got ${v} at index ${i}`)
    }
    out[i] = v
  }
  return out
}

/**
 * A leaf tensor holding a copy of `data`.
 *
 * - `data`: a number (scalar, shape `[]`), nested arrays (shape inferred), or a flat array /
 *   Float32Array / Float64Array / Int32Array (shape `[length]` unless `shape` is given).
 * - `shape`: the shape to give the row-major values; its product must equal their count.
 * - `dtype`: default `'float32'`, or the typed array's own type.
 * - `device`: default `'cpu'`; `'cuda'` or `'cuda:N'` copies the values to that device.
 */
export function tensor(data: NestedNumbers | TypedArray, shape?: readonly number[], options: DTypeOptions = {}): Tensor {
  let values: ArrayLike<number>
  let inferred: number[]
  let dtype: DType
  if (data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array) {
    values = data
    inferred = [data.length]
    dtype = data instanceof Float64Array ? 'float64' : data instanceof Int32Array ? 'int32' : 'float32'
  } else {
    const f = flatten(data)
    values = f.values
    inferred = f.shape
    dtype = 'float32'
  }
  if (options.dtype !== undefined) dtype = checkDType('tensor', options.dtype)
  const dev = deviceOption('tensor', options.device)
  const s = shape === undefined ? inferred : shapeArg('tensor', shape)
  return placed(dev, () => wrap(() => {
    switch (dtype) {
      case 'float32':
        return new Tensor(native.fromFloat32(values instanceof Float32Array ? values : Float32Array.from(values), s))
      case 'float64':
        return new Tensor(native.fromFloat64(values instanceof Float64Array ? values : Float64Array.from(values), s))
      case 'int32':
        return new Tensor(native.fromInt32(values instanceof Int32Array ? values : checkedInt32(values), s))
    }
  }))
}

/** A leaf tensor of `shape` filled with zeros. */
export function zeros(shape: number | readonly number[], options: DTypeOptions = {}): Tensor {
  return filled('zeros', shape, 0, options)
}

/** A leaf tensor of `shape` filled with ones. */
export function ones(shape: number | readonly number[], options: DTypeOptions = {}): Tensor {
  return filled('ones', shape, 1, options)
}

/** A leaf tensor of `shape` filled with `value`. */
export function full(shape: number | readonly number[], value: number, options: DTypeOptions = {}): Tensor {
  return filled('full', shape, value, options)
}

/** A leaf tensor of the shape of `t`, filled with zeros; dtype and device default to `t`'s. */
export function zerosLike(t: Tensor, options: DTypeOptions = {}): Tensor {
  handle('zerosLike', t)
  return filled('zerosLike', t.shape, 0, { dtype: options.dtype ?? t.dtype, device: options.device ?? t.device })
}

/** A leaf tensor of the shape of `t`, filled with ones; dtype and device default to `t`'s. */
export function onesLike(t: Tensor, options: DTypeOptions = {}): Tensor {
  handle('onesLike', t)
  return filled('onesLike', t.shape, 1, { dtype: options.dtype ?? t.dtype, device: options.device ?? t.device })
}

/** `value` everywhere (native zeros for 0), on the requested device; errors name `opName`. */
function filled(opName: string, shape: number | readonly number[], value: number, options: DTypeOptions): Tensor {
  const dtype = checkDType(opName, options.dtype ?? 'float32')
  const dev = deviceOption(opName, options.device)
  const s = shapeArg(opName, shape)
  return placed(dev, () => op(() => (value === 0 && !Object.is(value, -0) ? native.zeros(s, dtype) : native.full(s, value, dtype))))
}

/**
 * Samples of the standard normal N(0, 1), `shape`, float32 by default. The same `seed` gives
 * bit-identical values on every platform; without one the global generator picks the seed.
 */
export function randn(shape: number | readonly number[], options: RandomOptions = {}): Tensor {
  const dtype = checkDType('randn', options.dtype ?? 'float32')
  const s = shapeArg('randn', shape)
  const dev = deviceOption('randn', options.device)
  const seed = seedOf('randn', options.seed)
  return placed(dev, () => op(() => native.randn(s, dtype, seed)))
}

/** Samples of U(low, high), `shape`, float32 by default; seeded as {@link randn}. */
export function randUniform(shape: number | readonly number[], low: number, high: number, options: RandomOptions = {}): Tensor {
  const dtype = checkDType('randUniform', options.dtype ?? 'float32')
  const s = shapeArg('randUniform', shape)
  const dev = deviceOption('randUniform', options.device)
  const seed = seedOf('randUniform', options.seed)
  return placed(dev, () => op(() => native.randUniform(s, low, high, dtype, seed)))
}

/**
 * `make()` (a CPU tensor) placed on `device`: checked first (nothing is made when the device is
 * invalid or CUDA is unavailable), then copied and the CPU copy released.
 */
function placed(device: string | undefined, make: () => Tensor): Tensor {
  const t = make()
  if (device === undefined || device === 'cpu') return t
  try {
    return t.to(device as Device)
  } finally {
    t.dispose()
  }
}

/** The checked `device` option (before anything is made or a seed is drawn). */
function deviceOption(opName: string, device: Device | undefined): string | undefined {
  return device === undefined ? undefined : requireDevice(opName, device)
}

// ---- elementwise ----------------------------------------------------------------------------

function scalarLike(x: Tensor, v: number): Tensor {
  return full([1], v, { dtype: x.dtype, device: x.device })
}

/** `a + b`, elementwise with NumPy broadcasting (either may be a number). */
export function add(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a + b)
    return b.addScalar(a)
  }
  return a.add(b)
}

/** `a − b`, elementwise with broadcasting (either may be a number). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a - b)
    return b.neg().addScalar(a)
  }
  return a.sub(b)
}

/** `a ⊙ b`, elementwise with broadcasting (either may be a number). */
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a * b)
    return b.scale(a)
  }
  return a.mul(b)
}

/** `a / b`, elementwise with broadcasting (either may be a number). */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    if (typeof b === 'number') return tensor(a / b)
    return scalarLike(b, a).div(b)
  }
  return a.div(b)
}

/** `−x`. */
export function neg(x: Tensor): Tensor {
  return op(() => native.neg(handle('neg', x)))
}
/** `eˣ`, elementwise. */
export function exp(x: Tensor): Tensor {
  return op(() => native.exp(handle('exp', x)))
}
/** `ln x`, elementwise. */
export function log(x: Tensor): Tensor {
  return op(() => native.log(handle('log', x)))
}
/** `tanh x`, elementwise. */
export function tanh(x: Tensor): Tensor {
  return op(() => native.tanh(handle('tanh', x)))
}
/** `σ(x) = 1 / (1 + e^−x)`, elementwise. */
export function sigmoid(x: Tensor): Tensor {
  return op(() => native.sigmoid(handle('sigmoid', x)))
}
/** `max(x, 0)`, elementwise. */
export function relu(x: Tensor): Tensor {
  return op(() => native.relu(handle('relu', x)))
}
/** `x²`, elementwise. */
export function square(x: Tensor): Tensor {
  return op(() => native.square(handle('square', x)))
}
/** `√x`, elementwise. */
export function sqrt(x: Tensor): Tensor {
  return op(() => native.sqrt(handle('sqrt', x)))
}
/** `c · x`. */
export function scale(x: Tensor, c: number): Tensor {
  return op(() => native.scale(handle('scale', x), c))
}
/** `x + c`. */
export function addScalar(x: Tensor, c: number): Tensor {
  return op(() => native.addScalar(handle('addScalar', x), c))
}

/** Expands `x` to `shape` by broadcasting (materialised copy). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.broadcastTo(handle('broadcastTo', x), shapeArg('broadcastTo', shape)))
}

/** Sums `x` down to `shape` over the dimensions broadcasting expanded (adjoint of broadcastTo). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.sumTo(handle('sumTo', x), shapeArg('sumTo', shape)))
}

// ---- linear algebra -------------------------------------------------------------------------

/** Matrix product `a · b`: `[M, K] · [K, N] → [M, N]`, batched over broadcast leading dims. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return op(() => native.matmul(handle('matmul', a), handle('matmul', b)))
}

/**
 * Affine map `y = x · wᵀ + b`, PyTorch's layout: `x [N, I]`, `w [O, I]`, `b [O]` → `y [N, O]`.
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return op(() => native.linear(handle('linear', x), handle('linear', w), b ? handle('linear', b) : null))
}

// ---- shape ----------------------------------------------------------------------------------

/** The same data with a new shape of the same size; one dimension may be `-1`. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return op(() => native.reshape(handle('reshape', x), shapeArg('reshape', shape)))
}

/** Swaps dimensions `d0` and `d1` of `x` (negative counts from the end; default the last two). */
export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  return x.transpose(d0, d1)
}

function tensorList(opName: string, ts: readonly Tensor[]) {
  if (!Array.isArray(ts) || ts.length === 0) throw new ValueError(opName, 'expected a non-empty array of tensors')
  return ts.map((t) => handle(opName, t))
}

/**
 * Joins tensors along an existing `axis` (default 0): shapes must agree except on `axis`,
 * whose sizes add up.
 */
export function concat(ts: readonly Tensor[], axis = 0): Tensor {
  const hs = tensorList('concat', ts)
  const a = normAxis('concat', axis, ts[0]!.rank)
  return op(() => native.concat(hs, a))
}

/** Joins same-shaped tensors along a new `axis` (default 0): `n × [d...] → [.., n, ..]`. */
export function stack(ts: readonly Tensor[], axis = 0): Tensor {
  const hs = tensorList('stack', ts)
  const a = normAxis('stack', axis, ts[0]!.rank + 1)
  return op(() => native.stack(hs, a))
}

/**
 * `length` entries of `x` along `axis`, starting at `start` (negative `start` counts from the
 * end); the result keeps the axis, with size `length`.
 */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis('slice', axis, x.rank)
  const n = x.shape[a]!
  const s = start < 0 ? start + n : start
  return op(() => native.slice(handle('slice', x), a, s, length))
}

/** Splits `x` along `axis` into consecutive pieces of the given sizes (summing to its length). */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const a = normAxis('split', axis, x.rank)
  return wrap(() => native.split(handle('split', x), a, sizes as number[])).map((h) => new Tensor(h))
}

// ---- reductions -----------------------------------------------------------------------------

/** `Σ x` over `axes` (default: every axis, giving a scalar `[]`); `keepdim` keeps size-1 axes. */
export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return x.sum(axes, keepdim)
}

/** Mean of `x` over `axes` (default: every axis, giving a scalar `[]`). */
export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return x.mean(axes, keepdim)
}

// ---- softmax --------------------------------------------------------------------------------

/** `softmax(x)ᵢ = exp(xᵢ) / Σⱼ exp(xⱼ)` along `axis` (default last); same shape as `x`. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return x.softmax(axis)
}

/** `xᵢ − log Σⱼ exp(xⱼ)` along `axis` (default last), computed stably; same shape as `x`. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return x.logSoftmax(axis)
}

// ---- embedding, dropout, losses ----------------------------------------------------------------

/**
 * Looks up rows of `weight [V, E]` by integer `indices` (int32, any shape `[...]`):
 * `out[..., :] = weight[indices[...], :]`, shape `[..., E]`. An index outside `[0, V)` poisons
 * the output: the error surfaces at the next read.
 */
export function embedding(weight: Tensor, indices: Tensor): Tensor {
  return op(() => native.embedding(handle('embedding', weight), handle('embedding', indices)))
}

/** Options of {@link dropout}. */
export interface DropoutOptions {
  /** Seed of the mask; default: the global generator. */
  seed?: number
  /** When false, dropout is the identity. Default true. */
  training?: boolean
}

/**
 * Inverted dropout: each element is zeroed with probability `p` and the rest are scaled by
 * `1 / (1 − p)`, so the expectation is unchanged. Identity when `training` is false.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions = {}): Tensor {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new ValueError('dropout', `p must be a number in [0, 1), got ${String(p)}`)
  const training = options.training ?? true
  const seed = seedOf('dropout', options.seed)
  return op(() => native.dropout(handle('dropout', x), p, seed, training))
}

/** Mean squared error `mean((pred − target)²)`: a scalar `[]`; shapes must match. */
export function mse(pred: Tensor, target: Tensor): Tensor {
  return op(() => native.mse(handle('mse', pred), handle('mse', target)))
}

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this class are skipped (and excluded from the mean). */
  ignoreIndex?: number
}

/**
 * Cross-entropy of `logits [N, C]` against integer class `targets [N]` (int32):
 * `−(1/N') Σₙ log softmax(logitsₙ)[targetsₙ]`, averaged over the N' targets not equal to
 * `ignoreIndex`. A scalar `[]`.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const ig = options.ignoreIndex
  if (ig !== undefined && !Number.isInteger(ig)) throw new ValueError('crossEntropy', `ignoreIndex must be an integer, got ${ig}`)
  return op(() => native.crossEntropy(handle('crossEntropy', logits), handle('crossEntropy', targets), ig ?? null))
}

// ---- recurrent layer ------------------------------------------------------------------------

/** The recurrent cells of {@link recurrentLayer}. */
export type CellKind = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru' | 'gru_reset_before'

/** Weights of one layer and direction, PyTorch layout (G = 1 RNN, 3 GRU, 4 LSTM). */
export interface RecurrentWeights {
  /** `[G·H, I]` */
  wIh: Tensor
  /** `[G·H, H]` */
  wHh: Tensor
  /** `[G·H]` */
  bIh?: Tensor | null | undefined
  /** `[G·H]` */
  bHh?: Tensor | null | undefined
}

/** Options of {@link recurrentLayer}. */
export interface RecurrentLayerOptions {
  /** Per-row sequence lengths `[B]`, each an integer in `[1, T]`. */
  lengths?: Int32Array | readonly number[] | Tensor | null | undefined
  /** Run from the last step (of each row's own length) to the first. Default false. */
  reverse?: boolean | undefined
}

/** What {@link recurrentLayer} returns. */
export interface RecurrentLayerResult {
  /** Outputs of every step, `[T, B, H]`; zero past a row's length. */
  y: Tensor
  /** Final hidden state `[B, H]` (at each row's own last step). */
  hT: Tensor
  /** Final cell state `[B, H]` (LSTM only). */
  cT?: Tensor
}

/**
 * One recurrent layer in one direction over a whole sequence, as a single fused op (one input
 * GEMM for all steps, one recurrent GEMM and one fused gate kernel per step, one fused
 * backward).
 *
 * - `x [T, B, I]`, `h0 [B, H]`, `c0 [B, H]` (LSTM only, else null).
 * - rnn: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
 * - lstm (gates i, f, g, o): `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`.
 * - gru (gates r, z, n): `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
 *
 * `lengths`, if given, holds each row's length: past it the state stops changing and outputs
 * are zero; a `reverse` pass starts at each row's own last element. A lengths Tensor is read
 * on the JS thread, so it should be a ready leaf (e.g. made by `tensor()`).
 */
export function recurrentLayer(
  kind: CellKind,
  x: Tensor,
  h0: Tensor,
  c0: Tensor | null | undefined,
  weights: RecurrentWeights,
  options: RecurrentLayerOptions = {},
): RecurrentLayerResult {
  const O = 'recurrentLayer'
  let lengths: number[] | null = null
  const l = options.lengths
  if (l !== undefined && l !== null) {
    if (l instanceof Tensor) lengths = Array.from(l.dataSync())
    else if (l instanceof Int32Array || Array.isArray(l)) lengths = Array.from(l as ArrayLike<number>)
    else throw new ValueError(O, 'lengths must be an Int32Array, an array of numbers or a Tensor')
  }
  const r = wrap(() =>
    native.recurrentLayer(
      kind,
      handle(O, x),
      handle(O, h0),
      c0 ? handle(O, c0) : null,
      handle(O, weights.wIh),
      handle(O, weights.wHh),
      weights.bIh ? handle(O, weights.bIh) : null,
      weights.bHh ? handle(O, weights.bHh) : null,
      lengths,
      options.reverse ?? false,
    ),
  )
  const out: RecurrentLayerResult = { y: new Tensor(r.y), hT: new Tensor(r.hT) }
  if (r.cT) out.cT = new Tensor(r.cT)
  return out
}

// ---- autograd mode --------------------------------------------------------------------------

/** Whether ops record history for `backward()` (false inside {@link noGrad}). */
export function isGradEnabled(): boolean {
  return native.isGradEnabled()
}

/** Turns history recording on or off; returns the previous setting. Prefer {@link noGrad}. */
export function setGradEnabled(enabled: boolean): boolean {
  return native.setGradEnabled(enabled)
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

// ---- memory and synchronisation -------------------------------------------------------------

/** Live native memory, as {@link memory} returns it. */
export interface MemoryInfo {
  /** Live tensors (distinct tensors; handles of the same tensor count once). */
  tensors: number
  /** Live host bytes of tensor data. */
  bytes: number
  /** Peak of `bytes` since the start or the last {@link resetPeakMemory}. */
  peakBytes: number
  /** Ops enqueued and not started yet (the queue depth), over every executor: the CPU's and each opened CUDA device's. */
  queued: number
  /**
   * Each CUDA device opened so far (the first CUDA tensor opens it): bytes in use by tensors
   * and reserved by the caching allocator. Empty without CUDA.
   */
  cuda: CudaMemoryInfo[]
}

/** Live tensors, host bytes, peak bytes, the executor's queue length and CUDA memory. */
export function memory(): MemoryInfo {
  const m = native.memory()
  return {
    tensors: m.tensors,
    bytes: m.bytes,
    peakBytes: m.peakBytes,
    queued: m.queued,
    cuda: m.cuda.map((c) => ({ device: c.device, inUse: c.inUse, reserved: c.reserved, peakReserved: c.peakReserved })),
  }
}

/** Starts a new peak-memory window at the current live size. */
export function resetPeakMemory(): void {
  native.resetPeakMemory()
}

/**
 * Resolves when every op enqueued so far has run, on the CPU and on every opened CUDA device
 * (whose kernels have then finished too); rejects with the error a device reports while
 * finishing. Never blocks the event loop.
 */
export function synchronize(): Promise<void> {
  return wrapAsync(() => native.synchronize())
}
