/** `Linear`: an affine map, PyTorch's `torch.nn.Linear`. */

import { boolArg, checkModelSize, checkOptions, numberArg, optionKeys, tensorArg } from '../validate.js'
import type { FloatDType, Tensor } from '../tensor.js'
import { linear } from '../ops/matmul.js'
import { reshape } from '../ops/shape.js'
import { ShapeError } from '../errors.js'
import { floatDTypeOption } from '../cast.js'
import { tidy } from '../scope.js'
import { Module } from './module.js'
import { checkPositiveInt, deriveSeed, uniform } from './init.js'

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean
  /** Seed of the initialisation; without it the global generator (`manualSeed`) is used. */
  seed?: number
  /** dtype of the parameters: `'float32'` (default) or `'float64'`. Inputs must have it too. */
  dtype?: FloatDType
}

const LINEAR_OPTIONS = optionKeys<LinearOptions>({ bias: true, seed: true, dtype: true })

/**
 * Applies an affine map to the last axis: `y = x Wᵀ + b`.
 *
 * Shapes:
 * - input `x`: `[*, in]`, any number of leading axes (for example `[N, in]` or `[T, B, in]`)
 * - output `y`: `[*, out]`
 *
 * Parameters (PyTorch layout and names):
 * - `weight`: `[out, in]`
 * - `bias`: `[out]` (absent with `bias: false`)
 *
 * Initialisation, as in PyTorch: every weight and bias from U(−k, k) with k = 1/√in.
 *
 * ```ts
 * const fc = new Linear(32, 10)
 * const y = fc.forward(x) // x [64, 32] → y [64, 10]
 * ```
 */
export class Linear extends Module {
  readonly inFeatures: number
  readonly outFeatures: number
  /** `[out, in]`. */
  readonly weight: Tensor
  /** `[out]`, or null without bias. */
  readonly bias: Tensor | null

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super()
    this.inFeatures = checkPositiveInt('Linear', 'inFeatures', inFeatures)
    this.outFeatures = checkPositiveInt('Linear', 'outFeatures', outFeatures)
    options = checkOptions('Linear', options, LINEAR_OPTIONS)
    if (options.seed !== undefined) numberArg('Linear', 'seed', options.seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER })
    const dtype = floatDTypeOption('Linear', options.dtype)
    const hasBias = boolArg('Linear', 'bias', options.bias ?? true)
    checkModelSize('Linear', `a Linear(${inFeatures}, ${outFeatures})`, outFeatures * inFeatures + (hasBias ? outFeatures : 0), dtype)
    const k = 1 / Math.sqrt(inFeatures)
    this.weight = this.registerParameter('weight', uniform([outFeatures, inFeatures], k, deriveSeed(options.seed, 0), dtype))
    this.bias = this.registerParameter(
      'bias',
      hasBias ? uniform([outFeatures], k, deriveSeed(options.seed, 1), dtype) : null,
    )
  }

  /** `x [*, in]` → `x Wᵀ + b`, `[*, out]`. */
  override forward(x: Tensor): Tensor {
    const shape = tensorArg('Linear.forward', 'x', x).shape
    if (shape.length === 0 || shape[shape.length - 1] !== this.inFeatures) {
      throw new ShapeError(
        'Linear.forward',
        `expected input [*, ${this.inFeatures}], got [${shape.join(', ')}]`,
      )
    }
    if (shape.length === 2) return linear(x, this.weight, this.bias ?? undefined)
    const n = shape.slice(0, -1).reduce((a, b) => a * b, 1)
    return tidy(() => {
      const y = linear(reshape(x, [n, this.inFeatures]), this.weight, this.bias ?? undefined)
      return reshape(y, [...shape.slice(0, -1), this.outFeatures])
    })
  }

  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`
  }
}
