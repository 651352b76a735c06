/** `Sequential`: a chain of modules, PyTorch's `torch.nn.Sequential`. */

import type { Tensor } from '../tensor.js'
import { ValueError } from '../errors.js'
import { Module } from './module.js'
import { tensorArg } from '../validate.js'

/** A module whose `forward` maps one tensor to one tensor, as `Sequential` chains them. */
export interface TensorModule extends Module {
  forward(x: Tensor): Tensor
}

/**
 * Runs its children in order, feeding each one's output to the next:
 * `y = mₙ(… m₁(m₀(x)))`.
 *
 * Children are named `0`, `1`, ... so that parameter names match PyTorch
 * (`0.weight`, `0.bias`, `2.weight`, ...). Every child must map one tensor to one tensor
 * (Linear, Dropout, Embedding, activations); recurrent layers return several tensors and are
 * composed in a custom `Module` instead.
 *
 * ```ts
 * const mlp = new Sequential(new Linear(4, 16), new Tanh(), new Linear(16, 1))
 * mlp.namedParameters().map(([n]) => n) // ['0.weight', '0.bias', '2.weight', '2.bias']
 * ```
 */
export class Sequential extends Module {
  readonly #layers: TensorModule[] = []

  constructor(...modules: TensorModule[]) {
    super()
    for (const m of modules) this.append(m)
  }

  /** Adds `module` at the end, under the next index as its name. Returns `this`. */
  append(module: TensorModule): this {
    if (!(module instanceof Module) || typeof (module as { forward?: unknown }).forward !== 'function') {
      throw new ValueError('Sequential', 'every element must be a Module with a forward(x) method')
    }
    this.registerModule(String(this.#layers.length), module)
    this.#layers.push(module)
    return this
  }

  /** The number of children. */
  get length(): number {
    return this.#layers.length
  }

  /** The child at `index` (negative counts from the end). */
  at(index: number): TensorModule | undefined {
    return this.#layers.at(index)
  }

  [Symbol.iterator](): Iterator<TensorModule> {
    return this.#layers[Symbol.iterator]()
  }

  /** Applies every child in order. */
  override forward(x: Tensor): Tensor {
    let y = tensorArg('Sequential.forward', 'x', x)
    for (const m of this.#layers) y = m.forward(y)
    return y
  }
}
