//! CUDA availability, devices and memory, from `recurrent-cuda`. Nothing here runs while the
//! addon loads: the first call probes the libraries (inside `catch_unwind`, once; the result
//! is cached by `recurrent-cuda`), and on a machine without a GPU or CUDA libraries every
//! function answers (false, the reason, no devices, zero bytes) instead of failing.

use crate::IntoJs;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::panic_message;
use recurrent_core::{backend, Device};

/// A CUDA device as the driver describes it.
#[napi(object)]
pub struct CudaDeviceInfo {
    /// N in `cuda:N`.
    pub ordinal: u32,
    /// e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Total device memory in bytes.
    pub memory: i64,
    /// [major, minor], e.g. [9, 0] for an H100.
    pub compute_capability: (u32, u32),
    /// `cuDriverGetVersion`, e.g. 13000 for CUDA 13.0.
    pub driver_version: Option<i32>,
    /// `nvrtcVersion` as "major.minor".
    pub nvrtc_version: Option<String>,
    /// cuBLAS's version as `cublasGetVersion` gives it (major·10000 + minor·100 + patch).
    pub cublas_version: Option<i32>,
    /// The files loaded, from `/proc/self/maps` (one installation for NVRTC and cuBLAS).
    pub driver_path: Option<String>,
    pub nvrtc_path: Option<String>,
    pub cublas_path: Option<String>,
    pub cublas_lt_path: Option<String>,
}

/// Memory of one opened CUDA device, as the caching allocator counts it.
#[napi(object)]
pub struct CudaMemoryInfo {
    /// 'cuda:N'.
    pub device: String,
    pub ordinal: u32,
    /// Bytes held by live tensors (rounded to the allocator's block sizes).
    pub in_use: i64,
    /// Bytes taken from the driver: in use plus cached for reuse.
    pub reserved: i64,
    /// Highest `reserved` seen.
    pub peak_reserved: i64,
}

/// True when a CUDA device and every library the backend needs (driver, NVRTC, cuBLAS) can be
/// used. Never throws; false on machines without a GPU or CUDA libraries.
#[napi(catch_unwind)]
pub fn cuda_available() -> bool {
    std::panic::catch_unwind(recurrent_cuda::available).unwrap_or(false)
}

/// Why CUDA cannot be used (what is missing), or null when it can.
#[napi(catch_unwind)]
pub fn cuda_unavailable_reason() -> Option<String> {
    std::panic::catch_unwind(recurrent_cuda::unavailable_reason)
        .unwrap_or_else(|p| Some(format!("probing CUDA panicked: {}", panic_message(p))))
}

/// The CUDA devices; empty when CUDA is unavailable.
#[napi(catch_unwind)]
pub fn cuda_devices() -> Vec<CudaDeviceInfo> {
    let devices = std::panic::catch_unwind(recurrent_cuda::devices).unwrap_or_default();
    if devices.is_empty() {
        return Vec::new();
    }
    let libs = std::panic::catch_unwind(|| recurrent_cuda::libs::cached_report().clone()).unwrap_or_default();
    devices
        .into_iter()
        .map(|d| CudaDeviceInfo {
            ordinal: d.ordinal as u32,
            name: d.name,
            memory: d.memory.min(i64::MAX as u64) as i64,
            compute_capability: d.compute_capability,
            driver_version: libs.driver_version,
            nvrtc_version: libs.nvrtc_version.map(|(a, b)| format!("{a}.{b}")),
            cublas_version: libs.cublas_version,
            driver_path: libs.driver_path.clone(),
            nvrtc_path: libs.nvrtc_path.clone(),
            cublas_path: libs.cublas_path.clone(),
            cublas_lt_path: libs.cublas_lt_path.clone(),
        })
        .collect()
}

/// The memory of every CUDA device opened so far (none before the first CUDA tensor), from the
/// core's device registry: reading it never probes CUDA.
pub(crate) fn cuda_memory() -> Vec<CudaMemoryInfo> {
    let clamp = |b: u64| b.min(i64::MAX as u64) as i64;
    backend::opened()
        .into_iter()
        .map(|(n, be)| {
            let m = be.memory();
            CudaMemoryInfo {
                device: Device::Cuda(n).to_string(),
                ordinal: n as u32,
                in_use: clamp(m.in_use),
                reserved: clamp(m.reserved),
                peak_reserved: clamp(m.peak_reserved),
            }
        })
        .collect()
}

/// Returns the cached (unused) memory of the caching allocator to the driver, on `device`
/// ('cuda', 'cuda:N'; 'cpu' has no cache) or, without one, on every opened CUDA device.
/// Returns the bytes released. Live tensors are untouched. Waits for the device's queued work.
/// A device that was never opened has no cache: nothing is opened or probed here.
#[napi(catch_unwind)]
pub fn empty_cache(device: Option<String>) -> Result<i64> {
    let only = match device {
        None => None,
        Some(d) => match Device::parse(&d).js()? {
            Device::Cpu => return Ok(0),
            Device::Cuda(n) => Some(n),
        },
    };
    let released: u64 = backend::opened()
        .into_iter()
        .filter(|(n, _)| only.is_none_or(|o| o == *n))
        .map(|(_, be)| be.empty_cache())
        .sum();
    Ok(released.min(i64::MAX as u64) as i64)
}
