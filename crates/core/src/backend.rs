//! The one backend trait for devices other than the host CPU. `crates/cuda` implements it with
//! cudarc; the core only sees this trait, so no caller needs a `cfg(feature = "cuda")`. Until a
//! backend is registered (or when its libraries or device are missing), every CUDA request is
//! a clear `CudaUnavailable` error and the CPU path is untouched.

use crate::error::{panic_message, Error, Result};
use crate::executor::{self, Executor};
use crate::storage::{CpuStorage, DType};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Memory on a device, owned by its backend. Kernels write through it, so methods take `&self`.
pub trait DeviceBuffer: Send + Sync + 'static {
    fn dtype(&self) -> DType;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn as_any(&self) -> &dyn Any;
}

/// A row-major matrix inside a device buffer: `buf[offset + r·ld + c]`, transposed if `trans`.
#[derive(Clone, Copy)]
pub struct GpuMat<'a> {
    pub buf: &'a dyn DeviceBuffer,
    pub offset: usize,
    pub ld: usize,
    pub trans: bool,
}

/// One argument of a kernel launch; must match the kernel's C signature exactly.
pub enum KernelArg<'a> {
    /// A pointer to element `offset` of a buffer.
    Buf(&'a dyn DeviceBuffer, usize),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

/// What a device offers the ops: memory, copies, a GEMM and named kernels from
/// `crates/cuda/kernels/*.cu` (compiled on first use).
pub trait GpuBackend: Send + Sync + 'static {
    /// e.g. "NVIDIA H100 80GB HBM3 (cuda:0, sm_90)".
    fn describe(&self) -> String;
    /// Uninitialised memory for `n` elements (kernels must write every element they promise).
    fn alloc(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>>;
    fn zeros(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>>;
    fn upload(&self, host: &CpuStorage) -> Result<Arc<dyn DeviceBuffer>>;
    fn download(&self, buf: &dyn DeviceBuffer) -> Result<CpuStorage>;
    /// `c[m×n] (+)= a[m×k] · b[k×n]` in the buffers' dtype (FP32 without TF32).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self, m: usize, n: usize, k: usize, a: GpuMat, b: GpuMat, c: &dyn DeviceBuffer, c_offset: usize, ldc: usize,
        accumulate: bool,
    ) -> Result<()>;
    /// `batch.count` products `c_i (+)= a_i · b_i`, where operand i starts `i · stride` elements
    /// after the view's offset (cuBLAS's strided-batched GEMM). The default runs one [`gemm`]
    /// per product; a backend with a batched GEMM overrides it with one call.
    ///
    /// [`gemm`]: GpuBackend::gemm
    #[allow(clippy::too_many_arguments)]
    fn gemm_batched(
        &self, m: usize, n: usize, k: usize, a: GpuMat, b: GpuMat, c: &dyn DeviceBuffer, c_offset: usize, ldc: usize,
        accumulate: bool, batch: Strides,
    ) -> Result<()> {
        for i in 0..batch.count {
            let ai = GpuMat { offset: a.offset + i * batch.a, ..a };
            let bi = GpuMat { offset: b.offset + i * batch.b, ..b };
            self.gemm(m, n, k, ai, bi, c, c_offset + i * batch.c, ldc, accumulate)?;
        }
        Ok(())
    }
    /// Launches `kernel` (a name like `lstm_fwd_step_f32`) over at least `threads` threads.
    fn launch(&self, kernel: &str, threads: usize, args: &[KernelArg]) -> Result<()>;
    /// Blocks until all queued device work is done; device errors surface here.
    fn synchronize(&self) -> Result<()>;
    /// The allocator's figures. Cheap, and never waits for the device.
    fn memory(&self) -> DeviceMemory;
    /// Returns the allocator's cached, unused memory to the driver, after the device has
    /// finished the work that may still read it; returns the bytes released.
    fn empty_cache(&self) -> u64;
    /// The backend itself, so that its crate can read figures the trait does not carry.
    fn as_any(&self) -> &dyn Any;
}

/// The batch of a [`GpuBackend::gemm_batched`]: how many products, and the element distance
/// between consecutive A, B and C matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    pub count: usize,
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

/// Memory of one device, as its caching allocator counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes held by live buffers.
    pub in_use: u64,
    /// Bytes taken from the driver: in use plus cached for reuse.
    pub reserved: u64,
    /// Highest `reserved` seen.
    pub peak_reserved: u64,
}

/// Opens the backend for one device ordinal. Registered by the binding at start-up; called
/// lazily on the first CUDA request, never while the addon loads.
pub type GpuFactory = fn(ordinal: usize) -> Result<Arc<dyn GpuBackend>>;

static FACTORY: OnceLock<GpuFactory> = OnceLock::new();

/// An opened CUDA device: its backend, and the executor thread that enqueues its work in call
/// order (started with the device, so every opened device has exactly one).
pub(crate) struct OpenedDevice {
    pub(crate) backend: Arc<dyn GpuBackend>,
    pub(crate) executor: Executor,
}

/// The one registry of CUDA devices: each ordinal asked for, opened or not (a failure is kept
/// too, so a missing driver is probed once). Op dispatch, the executors, `memory()`,
/// `emptyCache()` and `synchronize()` all read it; no other crate keeps a list of devices.
type Registry = Mutex<BTreeMap<usize, Result<Arc<OpenedDevice>>>>;

fn registry() -> &'static Registry {
    static OPENED: OnceLock<Registry> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Registers the CUDA backend factory (first registration wins).
pub fn register_cuda(factory: GpuFactory) {
    let _ = FACTORY.set(factory);
}

/// The backend of `cuda:ordinal`, opened once and cached (failures too, so a missing driver is
/// probed once). Panics inside the factory become errors.
pub fn cuda(ordinal: usize) -> Result<Arc<dyn GpuBackend>> {
    open(ordinal).map(|d| d.backend.clone())
}

/// `cuda:ordinal` with its executor, opening it on the first request. The factory runs under
/// the registry's lock (so a device is opened once), and must not call back into this module.
pub(crate) fn open(ordinal: usize) -> Result<Arc<OpenedDevice>> {
    let Some(factory) = FACTORY.get().copied() else {
        return Err(Error::CudaUnavailable {
            op: format!("cuda:{ordinal}"),
            reason: "this build of recurrent has no CUDA backend".into(),
        });
    };
    let mut opened = registry().lock().unwrap_or_else(|p| p.into_inner());
    opened
        .entry(ordinal)
        .or_insert_with(|| {
            let backend = std::panic::catch_unwind(|| factory(ordinal)).unwrap_or_else(|p| {
                Err(Error::CudaUnavailable { op: format!("cuda:{ordinal}"), reason: panic_message(p) })
            })?;
            let executor = executor::spawn_executor(format!("recurrent-cuda{ordinal}"));
            Ok(Arc::new(OpenedDevice { backend, executor }))
        })
        .clone()
}

/// Every CUDA device opened so far, by ordinal (devices that failed to open are left out).
/// Reads the registry only: it never probes CUDA or opens a device.
pub fn opened() -> Vec<(usize, Arc<dyn GpuBackend>)> {
    opened_devices().into_iter().map(|(n, d)| (n, d.backend.clone())).collect()
}

pub(crate) fn opened_devices() -> Vec<(usize, Arc<OpenedDevice>)> {
    let opened = registry().lock().unwrap_or_else(|p| p.into_inner());
    opened.iter().filter_map(|(&n, d)| d.as_ref().ok().map(|d| (n, d.clone()))).collect()
}

thread_local! {
    /// The op whose device path runs on this (executor) thread, for fault reports.
    static CURRENT_OP: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `op` recorded as the op launching device work on this thread, so that a
/// backend that finds a fault (e.g. after a synchronous launch) can name the op.
pub(crate) fn with_current_op<T>(op: &'static str, f: impl FnOnce() -> T) -> T {
    let prev = CURRENT_OP.with(|c| c.replace(Some(op)));
    let out = f();
    CURRENT_OP.with(|c| c.set(prev));
    out
}

/// The op whose device work the calling thread is launching, if any.
pub fn current_op() -> Option<&'static str> {
    CURRENT_OP.with(|c| c.get())
}

/// Typed view of a device buffer for backends: downcasts to the backend's own type.
pub fn downcast<T: 'static>(buf: &dyn DeviceBuffer) -> Option<&T> {
    buf.as_any().downcast_ref::<T>()
}
