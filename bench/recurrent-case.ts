// The recurrent side of a bench case: its model, data and one call (a training step or a forward
// pass), shared by bench/vs-torch.ts and bench/profile.ts so that both time the same thing.

import { Adam, GRU, LSTM, RNN, type RNNBase, mse, noGrad, synchronize, tensor, type Tensor } from '../index.js'
// The same seeded inputs as the parity specs and the side-by-side benches.
import { randomArray } from '../__test__/helpers/numeric.js'
import type { Cell, Size } from './sizes.js'

/** What a case runs: a training step or inference, of which cell, size and stack. */
export interface CaseSpec {
  kind: 'train' | 'infer'
  cell: Cell
  size: Size
  layers: number
  bidirectional: boolean
}

/** The model, its data, and one call of the case. */
export interface RecurrentCase {
  model: RNNBase
  x: Tensor
  y: Tensor
  call: () => Promise<void>
}

/** Batch-first, seeded weights; GRU is recurrent's default reset-after form (PyTorch's formula). */
function makeModel(c: CaseSpec): RNNBase {
  const o = { batchFirst: true, seed: 7, numLayers: c.layers, bidirectional: c.bidirectional }
  const { I, H } = c.size
  return c.cell === 'lstm' ? new LSTM(I, H, o) : c.cell === 'gru' ? new GRU(I, H, o) : new RNN(I, H, o)
}

export function disposeOutputs(r: { output: Tensor; hN: Tensor; cN?: Tensor }): void {
  r.output.dispose()
  r.hN.dispose()
  r.cN?.dispose()
}

/**
 * A training call is zeroGrad, forward, MSE, backward, Adam (lr 1e-3) step, and ends when the
 * loss is read; an inference call is the forward pass under noGrad, finished (`synchronize`).
 */
export function recurrentCase(c: CaseSpec): RecurrentCase {
  const { B, T, I } = c.size
  const HD = c.size.H * (c.bidirectional ? 2 : 1)
  const model = makeModel(c)
  const x = tensor(randomArray(B * T * I, 11), [B, T, I])
  const y = tensor(randomArray(B * T * HD, 12), [B, T, HD])
  if (c.kind === 'infer') {
    const call = async () => {
      const r = noGrad(() => model.forward(x))
      await synchronize()
      disposeOutputs(r)
    }
    return { model, x, y, call }
  }
  const opt = new Adam(model.parameters(), { lr: 1e-3 })
  const call = async () => {
    opt.zeroGrad()
    const r = model.forward(x)
    const loss = mse(r.output, y)
    loss.backward()
    await opt.step()
    await loss.item()
    loss.dispose()
    disposeOutputs(r)
  }
  return { model, x, y, call }
}
