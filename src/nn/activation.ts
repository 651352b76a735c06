/** Elementwise activation modules, for use in `Sequential`. */

import type { Tensor } from '../tensor.js'
import { Module } from './module.js'
import { tensorArg } from '../validate.js'

/** `y = tanh(x)`. Shapes: `[*]` → `[*]`. */
export class Tanh extends Module {
  override forward(x: Tensor): Tensor {
    return tensorArg('Tanh.forward', 'x', x).tanh()
  }
}

/** `y = σ(x) = 1 / (1 + e^{−x})`. Shapes: `[*]` → `[*]`. */
export class Sigmoid extends Module {
  override forward(x: Tensor): Tensor {
    return tensorArg('Sigmoid.forward', 'x', x).sigmoid()
  }
}

/** `y = max(x, 0)`. Shapes: `[*]` → `[*]`. */
export class ReLU extends Module {
  override forward(x: Tensor): Tensor {
    return tensorArg('ReLU.forward', 'x', x).relu()
  }
}
