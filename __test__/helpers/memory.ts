// Live-tensor counts that garbage collection cannot move under a test's feet.

import { memory, synchronize } from '../../index.js'

/**
 * The live tensor count once the executors are idle and the garbage of earlier tests is
 * collected (when the process runs with --expose-gc, as the ava workers do) and finalized.
 * Measured before the code under test, it is an upper bound of what the code may leave live:
 * later collections can only lower the count, so the check is `after <= before`.
 */
export async function liveTensorsAfterGC(): Promise<number> {
  await synchronize()
  const gc = (globalThis as { gc?: () => void }).gc
  // Finalizers of collected handles run on later turns of the loop: collect, yield, repeat.
  for (let i = 0; i < 3; i++) {
    gc?.()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return memory().tensors
}
