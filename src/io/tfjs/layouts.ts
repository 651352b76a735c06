/**
 * Weight layouts between Keras/tfjs and PyTorch (the layout of `recurrent`'s modules); see
 * `notes/rnn-conventions.md`. Keras stores `kernel [in, G·u]`, `recurrent_kernel [u, G·u]` and
 * one `bias [G·u]`, with gate column blocks `i|f|c|o` (LSTM) and `z|r|h` (GRU). They load as
 * `weight_ih = kernelᵀ`, `weight_hh = recurrent_kernelᵀ`, `bias_ih = bias`, `bias_hh = 0`, with
 * the GRU blocks reordered to PyTorch's `r|z|n`. The tfjs GRU is reset-before and loads as
 * `GRU(..., { resetAfter: false })`; a Keras GRU with `reset_after=True` (bias `[2, 3u]`) loads as
 * the default `GRU` with both biases. On export the two biases are summed, which is exact for
 * every cell that is written.
 */

import { ValueError } from '../../errors.js'

/** Gate blocks of a cell: count G and, for each PyTorch block j, the Keras block it comes from. @internal */
export function gatesOfCell(cell: 'lstm' | 'gru' | 'rnn'): { G: number; perm: number[] } {
  if (cell === 'lstm') return { G: 4, perm: [0, 1, 2, 3] } // i f g o  ==  i f c o
  if (cell === 'gru') return { G: 3, perm: [1, 0, 2] } // r z n  <-  z r h
  return { G: 1, perm: [0] }
}

/** Keras `[in, G·H]` (blocks in Keras order) → PyTorch `[G·H, in]` (blocks in PyTorch order). */
function kernelToTorch(k: Float32Array, inDim: number, G: number, H: number, perm: number[]): Float32Array {
  const GH = G * H
  const out = new Float32Array(GH * inDim)
  for (let j = 0; j < G; j++) {
    const src = perm[j]! * H
    for (let h = 0; h < H; h++) {
      const row = (j * H + h) * inDim
      const col = src + h
      for (let i = 0; i < inDim; i++) out[row + i] = k[i * GH + col]!
    }
  }
  return out
}

/** The inverse of {@link kernelToTorch}. */
function kernelToKeras(w: Float32Array, inDim: number, G: number, H: number, perm: number[]): Float32Array {
  const GH = G * H
  const out = new Float32Array(GH * inDim)
  for (let j = 0; j < G; j++) {
    const dst = perm[j]! * H
    for (let h = 0; h < H; h++) {
      const row = (j * H + h) * inDim
      const col = dst + h
      for (let i = 0; i < inDim; i++) out[i * GH + col] = w[row + i]!
    }
  }
  return out
}

function biasToTorch(b: Float32Array, G: number, H: number, perm: number[]): Float32Array {
  const out = new Float32Array(G * H)
  for (let j = 0; j < G; j++) out.set(b.subarray(perm[j]! * H, perm[j]! * H + H), j * H)
  return out
}

function biasToKeras(b: Float32Array, G: number, H: number, perm: number[]): Float32Array {
  const out = new Float32Array(G * H)
  for (let j = 0; j < G; j++) out.set(b.subarray(j * H, j * H + H), perm[j]! * H)
  return out
}

/** `a + b` elementwise in float32, keeping `a` bit for bit where `b` is zero (so `-0` survives). */
function addExact(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = b[i] === 0 ? a[i]! : a[i]! + b[i]!
  return out
}

/** The PyTorch-layout weights of one recurrent layer and direction, as plain arrays. */
export interface TorchRecurrentArrays {
  /** `[G·H, in]` */
  weightIh: Float32Array
  /** `[G·H, H]` */
  weightHh: Float32Array
  /** `[G·H]`, or null without bias */
  biasIh: Float32Array | null
  /** `[G·H]`, or null without bias */
  biasHh: Float32Array | null
}

/**
 * Converts Keras/tfjs weights of one recurrent layer (one direction) to PyTorch layout.
 *
 * - `kernel [in, G·H]` → `weightIh [G·H, in]`; `recurrentKernel [H, G·H]` → `weightHh [G·H, H]`
 * - `bias [G·H]` → `biasIh`, with `biasHh = 0`; a Keras reset-after GRU bias `[2, 3H]` →
 *   `biasIh` (row 0) and `biasHh` (row 1)
 * - GRU blocks `z|r|h` → `r|z|n`
 */
export function kerasToTorchRecurrent(
  cell: 'lstm' | 'gru' | 'rnn',
  H: number,
  kernel: Float32Array,
  recurrentKernel: Float32Array,
  bias: Float32Array | null,
): TorchRecurrentArrays {
  const { G, perm } = gatesOfCell(cell)
  const GH = G * H
  if (kernel.length % GH !== 0) throw new ValueError('kerasToTorchRecurrent', `kernel of ${kernel.length} values is not [in, ${GH}]`)
  if (recurrentKernel.length !== H * GH) throw new ValueError('kerasToTorchRecurrent', `recurrent kernel must be [${H}, ${GH}], got ${recurrentKernel.length} values`)
  const inDim = kernel.length / GH
  const out: TorchRecurrentArrays = {
    weightIh: kernelToTorch(kernel, inDim, G, H, perm),
    weightHh: kernelToTorch(recurrentKernel, H, G, H, perm),
    biasIh: null,
    biasHh: null,
  }
  if (bias !== null) {
    if (bias.length === GH) {
      out.biasIh = biasToTorch(bias, G, H, perm)
      out.biasHh = new Float32Array(GH)
    } else if (bias.length === 2 * GH && cell === 'gru') {
      out.biasIh = biasToTorch(bias.subarray(0, GH), G, H, perm)
      out.biasHh = biasToTorch(bias.subarray(GH), G, H, perm)
    } else throw new ValueError('kerasToTorchRecurrent', `bias must have ${GH} values${cell === 'gru' ? ` (or ${2 * GH} for reset_after)` : ''}, got ${bias.length}`)
  }
  return out
}

/**
 * Converts PyTorch-layout weights of one recurrent layer (one direction) to Keras/tfjs layout:
 * the inverse of {@link kerasToTorchRecurrent}. `resetAfter` (GRU only) keeps the two biases
 * as Keras's `[2, 3H]`; otherwise they are summed into one `[G·H]` bias.
 */
export function torchToKerasRecurrent(
  cell: 'lstm' | 'gru' | 'rnn',
  H: number,
  w: TorchRecurrentArrays,
  resetAfter = false,
): { kernel: Float32Array; recurrentKernel: Float32Array; bias: Float32Array | null } {
  const { G, perm } = gatesOfCell(cell)
  const GH = G * H
  const inDim = w.weightIh.length / GH
  const kernel = kernelToKeras(w.weightIh, inDim, G, H, perm)
  const recurrentKernel = kernelToKeras(w.weightHh, H, G, H, perm)
  let bias: Float32Array | null = null
  if (w.biasIh !== null || w.biasHh !== null) {
    const bi = w.biasIh ?? new Float32Array(GH)
    const bh = w.biasHh ?? new Float32Array(GH)
    if (resetAfter) {
      bias = new Float32Array(2 * GH)
      bias.set(biasToKeras(bi, G, H, perm), 0)
      bias.set(biasToKeras(bh, G, H, perm), GH)
    } else bias = biasToKeras(addExact(bi, bh), G, H, perm)
  }
  return { kernel, recurrentKernel, bias }
}

/** A row-major `[rows, cols]` matrix transposed (Keras Dense `kernel [in, out]` ↔ PyTorch `weight [out, in]`). @internal */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!
  return out
}
