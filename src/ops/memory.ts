/**
 * Native memory accounting and synchronisation: `memory()`, `resetPeakMemory()` and
 * `synchronize()` (which resolves once the executor has run everything enqueued so far).
 */

import { wrapAsync } from '../errors.js'
import { native } from '../native.js'
import type { CudaMemoryInfo } from '../device.js'

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
