/**
 * Devices: `'cpu'` and CUDA (`'cuda'`, `'cuda:N'`), CUDA availability and device memory.
 *
 * The addon loads and runs on any machine; CUDA is probed on first use (the driver, NVRTC and
 * cuBLAS libraries are loaded at run time). Without a GPU or without those libraries,
 * {@link cudaAvailable} is false, {@link cudaDevices} is empty, and asking for a CUDA tensor
 * throws a `CudaUnavailableError` whose message says what is missing.
 *
 * Tensors move only when asked (`t.to('cuda')`, `module.to('cuda')`, the `device` option of
 * the factories); an op whose inputs are on different devices throws a `DeviceError`.
 */

import { CudaUnavailableError, DeviceError, wrap } from './errors.js'
import { native } from './native.js'

/** Where a tensor lives: the host (`'cpu'`) or a CUDA device (`'cuda'` is `'cuda:0'`). */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`

/** A CUDA device, as {@link cudaDevices} lists it. */
export interface CudaDeviceInfo {
  /** N in `'cuda:N'`. */
  ordinal: number
  /** The device's name, e.g. `'NVIDIA H100 80GB HBM3'`. */
  name: string
  /** Total device memory in bytes. */
  memory: number
  /** `[major, minor]`, e.g. `[9, 0]` for an H100. */
  computeCapability: [number, number]
  /** The driver's CUDA version (`cuDriverGetVersion`, e.g. 13000 for 13.0), or null if unknown. */
  driverVersion: number | null
  /** NVRTC's version (`nvrtcVersion`, e.g. `'13.0'`), or null if unknown. */
  nvrtcVersion: string | null
  /** cuBLAS's version as `cublasGetVersion` gives it (major·10000 + minor·100 + patch), or null. */
  cublasVersion: number | null
  /** The library files this process loaded (NVRTC and cuBLAS come from one installation). */
  driverPath: string | null
  nvrtcPath: string | null
  cublasPath: string | null
  cublasLtPath: string | null
}

/** The memory of one opened CUDA device, in {@link MemoryInfo.cuda}. */
export interface CudaMemoryInfo {
  /** `'cuda:N'`. */
  device: string
  /** Bytes held by live tensors (rounded up to the caching allocator's block sizes). */
  inUse: number
  /** Bytes taken from the driver: in use plus cached for reuse (see {@link emptyCache}). */
  reserved: number
  /** Highest `reserved` seen. */
  peakReserved: number
}

const DEVICE_RE = /^cuda:(0|[1-9][0-9]{0,5})$/

/**
 * The canonical name of `device`: `'cpu'` or `'cuda:N'` (`'cuda'` becomes `'cuda:0'`).
 * @throws DeviceError naming the accepted forms, for anything else.
 * @internal
 */
export function parseDevice(op: string, device: unknown): string {
  if (device === 'cpu') return 'cpu'
  if (device === 'cuda') return 'cuda:0'
  if (typeof device === 'string' && DEVICE_RE.test(device)) return device
  const got = typeof device === 'string' ? `'${device}'` : device === null ? 'null' : typeof device
  throw new DeviceError(op, `expected a device 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...), got ${got}`)
}

/**
 * {@link parseDevice}, and for a CUDA device a check that CUDA can be used at all, so that
 * nothing is created or moved when it cannot.
 * @throws CudaUnavailableError saying what is missing (no driver, no device, no NVRTC or cuBLAS).
 * @internal
 */
export function requireDevice(op: string, device: unknown): string {
  const d = parseDevice(op, device)
  if (d !== 'cpu' && !native.cudaAvailable()) {
    throw new CudaUnavailableError(op, `CUDA is unavailable (asked for '${d}'): ${native.cudaUnavailableReason() ?? 'unknown reason'}`)
  }
  return d
}

/**
 * True when CUDA can be used: an NVIDIA driver with at least one device, and the NVRTC and
 * cuBLAS libraries. Never throws. The first call probes (loads the libraries); later calls
 * return the cached answer.
 */
export function cudaAvailable(): boolean {
  return native.cudaAvailable()
}

/** Why CUDA cannot be used (which library or device is missing), or null when it can. */
export function cudaUnavailableReason(): string | null {
  return native.cudaUnavailableReason() ?? null
}

/** The CUDA devices, by ordinal; `[]` when CUDA is unavailable. */
export function cudaDevices(): CudaDeviceInfo[] {
  return native.cudaDevices().map((d) => ({
    ordinal: d.ordinal,
    name: d.name,
    memory: d.memory,
    computeCapability: [d.computeCapability[0], d.computeCapability[1]],
    driverVersion: d.driverVersion ?? null,
    nvrtcVersion: d.nvrtcVersion ?? null,
    cublasVersion: d.cublasVersion ?? null,
    driverPath: d.driverPath ?? null,
    nvrtcPath: d.nvrtcPath ?? null,
    cublasPath: d.cublasPath ?? null,
    cublasLtPath: d.cublasLtPath ?? null,
  }))
}

/**
 * Returns the memory cached by CUDA's caching allocator (blocks freed by tensors, kept for
 * reuse) to the driver, on `device` or on every opened CUDA device; as PyTorch's
 * `torch.cuda.empty_cache()`. Live tensors are untouched. Returns the bytes released (0 for
 * `'cpu'`, without CUDA, or before the device was first used). Waits for the device's queued work.
 */
export function emptyCache(device?: Device): number {
  if (device === undefined) return wrap(() => native.emptyCache(null))
  const d = parseDevice('emptyCache', device)
  return wrap(() => native.emptyCache(d))
}

/**
 * The device of a model's first parameter (`model.parameters()`), or `'cpu'` for a model
 * without parameters: where the training loops put the batches and constants they make.
 * @internal
 */
export function modelDevice(model: unknown): Device {
  const ps = typeof (model as { parameters?: unknown } | null)?.parameters === 'function' ? (model as { parameters(): unknown }).parameters() : null
  return deviceOfFirst(Array.isArray(ps) ? ps : [])
}

/** The device of the first tensor of `ts`, or `'cpu'`. @internal */
export function deviceOfFirst(ts: ReadonlyArray<unknown>): Device {
  const d = (ts[0] as { device?: unknown } | undefined)?.device
  return typeof d === 'string' && (d === 'cpu' || DEVICE_RE.test(d)) ? (d as Device) : 'cpu'
}
