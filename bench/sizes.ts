// The sizes and cell facts shared by the side-by-side benches (vs-tfjs.ts, vs-torch.ts), so
// both compare the same problems: S1 and S2 are the training sizes, LAT the B=1 case.

/** The cells the benches time. */
export type Cell = 'lstm' | 'gru' | 'rnn'

/** B batch, T steps, I input size, H hidden size. */
export interface Size {
  B: number
  T: number
  I: number
  H: number
}

/** Gate blocks per cell: FLOPs per step and row are 2·G·H·(I + H). */
export const G: Record<Cell, number> = { lstm: 4, gru: 3, rnn: 1 }

/** BENCH_QUICK=1: tiny sizes, for a smoke run. */
export const QUICK = process.env.BENCH_QUICK === '1'

export const S1: Size = QUICK ? { B: 4, T: 10, I: 8, H: 16 } : { B: 32, T: 50, I: 64, H: 256 }
export const S2: Size = QUICK ? { B: 8, T: 12, I: 32, H: 32 } : { B: 64, T: 100, I: 512, H: 512 }
export const LAT: Size = QUICK ? { B: 1, T: 10, I: 16, H: 16 } : { B: 1, T: 100, I: 256, H: 256 }

/**
 * Untimed calls that open each round, a fifth of its timed ones: the side about to be timed
 * first wakes its threads and its caches, and the other side's threads stop spinning (oneDNN's
 * and onnxruntime's wait by spinning after their last call), so that neither side's figure
 * includes the hand-over from the other's round.
 */
export const warmFor = (reps: number) => Math.ceil(reps / 5)
