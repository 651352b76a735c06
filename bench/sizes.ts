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
 * How long each round of a side-by-side bench opens with untimed calls of the side it times:
 * that side wakes its threads and caches, and the other side's threads stop spinning. After
 * its last call onnxruntime's intra-op threads spin for ~40 ms (read from /proc on a 2-core
 * machine), and on two cores our next ~30 calls (LSTM B=1) ran at 1.5× their time meanwhile;
 * timing them would charge one side for the other's idle threads.
 */
export const WARM_MS = 100

/** Calls `fn` until `WARM_MS` have passed (at least once), untimed. */
export async function warmUp(fn: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now()
  do await fn()
  while (performance.now() - t0 < WARM_MS)
}
