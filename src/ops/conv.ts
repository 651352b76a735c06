/**
 * `conv2d`: 2-D convolution over NCHW images (stride, padding, dilation, groups); mirrors
 * `crates/core/src/ops/conv.rs`.
 */

import { native } from '../native.js'
import { handle, op, type Tensor } from '../tensor.js'
import { checkOptions, numberArg, optionKeys, pairArg, tensorArg } from '../validate.js'

/** Options of {@link conv2d}; each size is one number (height and width) or `[height, width]`. */
export interface Conv2dOptions {
  /** Step between windows (default 1). */
  stride?: number | [number, number]
  /** Zeros added on each side (default 0). */
  padding?: number | [number, number]
  /** Spacing between kernel taps (default 1). */
  dilation?: number | [number, number]
  /** Channel groups: input and output channels split into `groups` independent convolutions (default 1). */
  groups?: number
}

const CONV2D_OPTIONS = optionKeys<Conv2dOptions>({ stride: true, padding: true, dilation: true, groups: true })

/**
 * 2-D convolution (cross-correlation, as PyTorch's `conv2d`): `x [N, C, H, W]` with
 * `weight [O, C/groups, KH, KW]` and an optional `bias [O]` → `[N, O, OH, OW]`, where
 * `OH = ⌊(H + 2·padding − dilation·(KH − 1) − 1) / stride⌋ + 1` (likewise OW).
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  const OP = 'conv2d'
  tensorArg(OP, 'x', x)
  tensorArg(OP, 'weight', weight)
  if (bias !== undefined && bias !== null) tensorArg(OP, 'bias', bias)
  const o = checkOptions(OP, options, CONV2D_OPTIONS)
  const stride = pairArg(OP, 'stride', o.stride ?? 1, 1)
  const padding = pairArg(OP, 'padding', o.padding ?? 0, 0)
  const dilation = pairArg(OP, 'dilation', o.dilation ?? 1, 1)
  const groups = numberArg(OP, 'groups', o.groups ?? 1, { integer: true, min: 1 })
  return op(() =>
    native.conv2d(handle(OP, x, 'x'), handle(OP, weight, 'weight'), bias ? handle(OP, bias, 'bias') : null, stride, padding, dilation, groups),
  )
}
