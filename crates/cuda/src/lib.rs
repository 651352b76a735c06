//! recurrent-cuda: the CUDA backend of recurrent, on cudarc with every library (driver, NVRTC,
//! cuBLAS) loaded at run time. Building needs no CUDA; on a machine without a GPU or without
//! the libraries, [`available`] is false, [`devices`] is empty and [`open`] returns a
//! `CudaUnavailable` error that says what is missing. Nothing here runs while a program (or
//! the Node addon) loads: the first CUDA call probes, inside `catch_unwind`.
//!
//! Register it with `recurrent_core::backend::register_cuda(recurrent_cuda::open)`; the core
//! then opens `cuda:N` on the first request for it.

pub mod alloc;
pub mod backend;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod kernels;
pub mod libs;
pub mod plan;

use recurrent_core::backend::GpuBackend;
use recurrent_core::error::panic_message;
use recurrent_core::{Error, Result};
use std::panic::catch_unwind;
use std::sync::{Arc, OnceLock};

pub use alloc::AllocStats;
pub use backend::CudaBackend;
pub use libs::LibraryReport;

/// A CUDA device as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Total device memory in bytes.
    pub memory: u64,
    /// (major, minor), e.g. (9, 0) for an H100.
    pub compute_capability: (u32, u32),
}

/// Which libraries can be loaded; each probe is a dlopen inside catch_unwind.
struct Libraries {
    driver: bool,
    nvrtc: bool,
    cublas: bool,
}

fn probe_libraries() -> Libraries {
    libs::preload();
    let present = |f: fn() -> bool| catch_unwind(f).unwrap_or(false);
    Libraries {
        driver: present(|| unsafe { cudarc::driver::sys::is_culib_present() }),
        nvrtc: present(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }),
        cublas: present(|| unsafe { cudarc::cublas::sys::is_culib_present() }),
    }
}

/// The devices, or why there are none. Probed once.
fn probe() -> &'static std::result::Result<Vec<DeviceInfo>, String> {
    static PROBE: OnceLock<std::result::Result<Vec<DeviceInfo>, String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        let libs = probe_libraries();
        if !libs.driver {
            return Err("the NVIDIA driver library (libcuda.so.1) was not found: this machine has no NVIDIA driver".into());
        }
        let listed = catch_unwind(list_devices).unwrap_or_else(|p| Err(format!("the CUDA driver failed to load: {}", panic_message(p))))?;
        if listed.is_empty() {
            return Err("the NVIDIA driver reports no CUDA device".into());
        }
        let mut missing = Vec::new();
        if !libs.nvrtc {
            missing.push("libnvrtc.so (NVRTC 13, which compiles the kernels: the CUDA toolkit, or `pip install \"nvidia-cuda-nvrtc>=13.0,<13.1\"` with its nvidia/cu13/lib folder on LD_LIBRARY_PATH)");
        }
        if !libs.cublas {
            missing.push("libcublas.so (cuBLAS 13: the CUDA toolkit, or `pip install nvidia-cublas` with its lib folder on LD_LIBRARY_PATH)");
        }
        if !missing.is_empty() {
            return Err(format!("{} device(s) found but {} not found", listed.len(), missing.join(" and ")));
        }
        // Load NVRTC and cuBLAS now (the report does), and refuse a mix of installations.
        let _ = libs::cached_report();
        libs::check_consistent()?;
        Ok(listed)
    })
}

fn list_devices() -> std::result::Result<Vec<DeviceInfo>, String> {
    use cudarc::driver::{result, sys};
    result::init().map_err(|e| format!("cuInit failed ({e:?}): no usable CUDA device or driver"))?;
    let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e:?}"))?;
    let mut out = Vec::new();
    for ordinal in 0..count.max(0) {
        let dev = result::device::get(ordinal).map_err(|e| format!("cuDeviceGet({ordinal}): {e:?}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "CUDA device".into());
        let memory = unsafe { result::device::total_mem(dev) }.unwrap_or(0) as u64;
        let attr = |a| unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0).max(0) as u32;
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        out.push(DeviceInfo { ordinal: ordinal as usize, name, memory, compute_capability: (major, minor) });
    }
    Ok(out)
}

/// Whether this process answers for CUDA with the host emulator of the kernels (builds with
/// the `emulator` feature, and `RECURRENT_CUDA_EMULATOR=1`): a test mode, see `emulator`.
pub fn emulated() -> bool {
    cfg!(feature = "emulator") && std::env::var("RECURRENT_CUDA_EMULATOR").is_ok_and(|v| v == "1")
}

/// True when a CUDA device and every library the backend needs can be used. Never panics;
/// safe on machines without a GPU or CUDA libraries.
pub fn available() -> bool {
    unavailable_reason().is_none()
}

/// Why CUDA is unavailable, or None when it is available.
pub fn unavailable_reason() -> Option<String> {
    #[cfg(feature = "emulator")]
    if emulated() {
        return emulator::unavailable_reason();
    }
    probe().as_ref().err().cloned()
}

/// The CUDA devices (empty when CUDA is unavailable). Never panics.
pub fn devices() -> Vec<DeviceInfo> {
    #[cfg(feature = "emulator")]
    if emulated() {
        return emulator::devices();
    }
    probe().clone().unwrap_or_default()
}

/// The label of what is running now (a test's name, a script step), included in the report of
/// a device fault. Process-wide: launches run on the device's executor thread, not the caller's.
pub fn set_launch_context(label: &str) {
    *launch_context().lock().unwrap_or_else(|p| p.into_inner()) = label.to_string();
}

pub(crate) fn launch_context() -> &'static std::sync::Mutex<String> {
    static LABEL: OnceLock<std::sync::Mutex<String>> = OnceLock::new();
    LABEL.get_or_init(Default::default)
}

/// Opens the backend of `cuda:ordinal`: the `GpuFactory` to pass to
/// `recurrent_core::backend::register_cuda`. A missing driver, device or library is a
/// `CudaUnavailable` error whose reason names it.
pub fn open(ordinal: usize) -> Result<Arc<dyn GpuBackend>> {
    #[cfg(feature = "emulator")]
    if emulated() {
        return emulator::open(ordinal);
    }
    let unavailable = |reason: String| Error::CudaUnavailable { op: format!("cuda:{ordinal}"), reason };
    let devs = probe().as_ref().map_err(|r| unavailable(r.clone()))?;
    if ordinal >= devs.len() {
        return Err(unavailable(format!(
            "cuda:{ordinal} does not exist: {} device(s) visible (cuda:0 to cuda:{})",
            devs.len(),
            devs.len() - 1
        )));
    }
    let be = catch_unwind(|| CudaBackend::new(ordinal))
        .unwrap_or_else(|p| Err(unavailable(format!("opening the device panicked: {}", panic_message(p)))))?;
    Ok(Arc::new(be))
}

/// The caching allocator's counters for `cuda:ordinal` if the core's device registry has
/// opened it with this backend (None otherwise). Never opens or probes a device.
pub fn alloc_stats(ordinal: usize) -> Option<AllocStats> {
    recurrent_core::backend::opened().into_iter().find(|(n, _)| *n == ordinal).and_then(|(_, be)| {
        let any = be.as_any();
        #[cfg(feature = "emulator")]
        if let Some(e) = any.downcast_ref::<emulator::EmuBackend>() {
            return Some(e.alloc_stats());
        }
        any.downcast_ref::<CudaBackend>().map(|b| b.alloc_stats())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_never_panics_and_explains_itself() {
        // On a machine without CUDA this is the whole contract; with CUDA, it lists devices.
        let ok = available();
        assert_eq!(ok, unavailable_reason().is_none());
        assert_eq!(ok, !devices().is_empty());
        if !ok {
            let err = match open(0) {
                Err(e) => e,
                Ok(_) => panic!("opened a device that probing said is unavailable"),
            };
            assert_eq!(err.kind(), recurrent_core::ErrorKind::CudaUnavailable);
            assert!(err.to_string().contains("cuda:0"), "{err}");
            eprintln!("CUDA unavailable here, as expected without a GPU: {}", unavailable_reason().unwrap());
        }
    }
}
