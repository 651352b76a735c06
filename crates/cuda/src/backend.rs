//! `CudaBackend`: one device, one context, one stream (all work in call order), one cuBLAS
//! handle in the default FP32 math mode (no TF32), the caching allocator, and the kernels of
//! `kernels/*.cu`, compiled with NVRTC on first use for the device's architecture and cached.

use crate::alloc::{AllocStats, DevBuffer, Pool, RawAlloc, RawError};
use crate::kernels;
use crate::plan::{self, grid_for, BLOCK};
use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{result as drv, sys as drv_sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;
use recurrent_core::backend::{downcast, DeviceBuffer, DeviceMemory, GpuBackend, GpuMat, KernelArg, Strides};
use recurrent_core::{CpuStorage, DType, Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn driver_err(what: &str, e: drv::DriverError) -> Error {
    Error::internal("cuda", format!("{what}: {e:?}"))
}

/// The driver's allocator, with the device's context bound to the calling thread.
struct DriverAlloc {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

impl RawAlloc for DriverAlloc {
    fn malloc(&self, bytes: usize) -> std::result::Result<u64, RawError> {
        self.ctx.bind_to_thread().map_err(|e| RawError::Other(format!("{e:?}")))?;
        match unsafe { drv::malloc_sync(bytes) } {
            Ok(p) => Ok(p),
            Err(drv::DriverError(drv_sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY)) => Err(RawError::OutOfMemory),
            Err(e) => Err(RawError::Other(format!("cuMemAlloc: {e:?}"))),
        }
    }
    fn free(&self, ptr: u64) {
        if self.ctx.bind_to_thread().is_ok() {
            let _ = unsafe { drv::free_sync(ptr) };
        }
    }
    fn synchronize(&self) {
        let _ = self.stream.synchronize();
    }
    fn mem_info(&self) -> Option<(u64, u64)> {
        self.ctx.bind_to_thread().ok()?;
        drv::mem_get_info().ok().map(|(f, t)| (f as u64, t as u64))
    }
}

/// Compiled kernel images shared by devices of the same architecture: (file, arch) → image.
type ImageCache = Mutex<HashMap<(&'static str, String), Arc<Vec<u8>>>>;

fn image_cache() -> &'static ImageCache {
    static CACHE: OnceLock<ImageCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub struct CudaBackend {
    ordinal: usize,
    name: String,
    cc: (i32, i32),
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: Mutex<CudaBlas>,
    pool: Arc<Pool>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// `RECURRENT_CUDA_SYNC=1`: synchronize after every launch and GEMM, so that an
    /// asynchronous fault is reported at the kernel that caused it (debugging; slow).
    sync_each: bool,
}

impl CudaBackend {
    /// Opens `cuda:ordinal`. Callers have checked that the libraries are present.
    pub fn new(ordinal: usize) -> Result<CudaBackend> {
        let unavailable = |reason: String| Error::CudaUnavailable { op: format!("cuda:{ordinal}"), reason };
        let ctx = CudaContext::new(ordinal).map_err(|e| unavailable(format!("cannot open the device: {e:?}")))?;
        let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let cc =
            ctx.compute_capability().map_err(|e| unavailable(format!("cannot read the compute capability: {e:?}")))?;
        let stream = ctx.new_stream().map_err(|e| unavailable(format!("cannot create a stream: {e:?}")))?;
        // One stream and buffers that are not cudarc slices: no event tracking needed.
        unsafe { ctx.disable_event_tracking() };
        let blas = CudaBlas::new(stream.clone()).map_err(|e| unavailable(format!("cuBLAS: {e:?}")))?;
        // FP32 GEMMs in true FP32: the default math mode (TF32 only if asked for).
        unsafe { blas_sys::cublasSetMathMode(*blas.handle(), blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH) }
            .result()
            .map_err(|e| unavailable(format!("cublasSetMathMode: {e:?}")))?;
        let pool =
            Pool::new(Box::new(DriverAlloc { ctx: ctx.clone(), stream: stream.clone() }), format!("cuda:{ordinal}"));
        let sync_each = std::env::var("RECURRENT_CUDA_SYNC").is_ok_and(|v| v == "1");
        Ok(CudaBackend {
            ordinal,
            name,
            cc,
            ctx,
            stream,
            blas: Mutex::new(blas),
            pool,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            sync_each,
        })
    }

    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| driver_err("binding the context", e))
    }

    pub fn alloc_stats(&self) -> AllocStats {
        self.pool.stats()
    }

    fn buffer<'a>(&self, b: &'a dyn DeviceBuffer) -> Result<&'a DevBuffer> {
        let d =
            downcast::<DevBuffer>(b).ok_or_else(|| Error::internal("cuda", "a device buffer from another backend"))?;
        if !Arc::ptr_eq(d.pool(), &self.pool) {
            return Err(Error::Device {
                op: "cuda".into(),
                expected: format!("cuda:{}", self.ordinal),
                got: d.pool().device().to_string(),
            });
        }
        Ok(d)
    }

    fn arch(&self) -> String {
        format!("sm_{}{}", self.cc.0, self.cc.1)
    }

    /// The module of `file`, compiled (or taken from the image cache) and loaded on first use.
    fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|p| p.into_inner()).get(file) {
            return Ok(m.clone());
        }
        let arch = self.arch();
        let key = (file, arch.clone());
        let cached = image_cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let image = match cached {
            Some(img) => img,
            None => {
                let src = kernels::FILES.iter().find(|(f, _)| *f == file).map(|(_, s)| *s).expect("known kernel file");
                // Machine code for this architecture; PTX for the newest NVRTC knows when the
                // device is newer than this NVRTC (the driver then compiles the PTX).
                let img = match kernels::compile(file, src, &arch, &[]) {
                    Ok(c) => c.cubin.unwrap_or_else(|| nul_terminated(c.ptx)),
                    Err(first) => {
                        let fallback = "compute_90";
                        let c = kernels::compile(file, src, fallback, &[]).map_err(|e| {
                            Error::internal(
                                "cuda",
                                format!(
                                    "NVRTC could not compile kernels/{file} for {arch} ({first}) nor {fallback}: {e}"
                                ),
                            )
                        })?;
                        nul_terminated(c.ptx)
                    }
                };
                let img = Arc::new(img);
                image_cache().lock().unwrap_or_else(|p| p.into_inner()).insert(key, img.clone());
                img
            }
        };
        self.bind()?;
        let module = self
            .ctx
            .load_module(Ptx::from_binary(image.to_vec()))
            .map_err(|e| driver_err(&format!("loading kernels/{file}"), e))?;
        self.modules.lock().unwrap_or_else(|p| p.into_inner()).insert(file, module.clone());
        Ok(module)
    }

    fn function(&self, kernel: &str) -> Result<CudaFunction> {
        if let Some(f) = self.functions.lock().unwrap_or_else(|p| p.into_inner()).get(kernel) {
            return Ok(f.clone());
        }
        let file = kernels::file_of(kernel)
            .ok_or_else(|| Error::internal(kernel, "no such kernel in crates/cuda/kernels/*.cu"))?;
        let f = self.module(file)?.load_function(kernel).map_err(|e| driver_err(&format!("kernel {kernel}"), e))?;
        self.functions.lock().unwrap_or_else(|p| p.into_inner()).insert(kernel.to_string(), f.clone());
        Ok(f)
    }

    /// With `RECURRENT_CUDA_SYNC=1`, waits for the work just queued, so that a fault is
    /// reported at the launch that caused it, naming the kernel, the op that launched it and
    /// the label set with [`crate::set_launch_context`] (e.g. the test).
    fn after_work(&self, what: &str) -> Result<()> {
        if self.sync_each {
            self.stream.synchronize().map_err(|e| fault(what, e))?;
        }
        Ok(())
    }
}

/// A device error at or after `what` (a kernel name, or "a GEMM"), with its op and context.
fn fault(what: &str, e: drv::DriverError) -> Error {
    let op = recurrent_core::backend::current_op().unwrap_or("(no op)");
    let ctx = crate::launch_context().lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ctx = if ctx.is_empty() { String::new() } else { format!(", during {ctx}") };
    Error::internal(op, format!("device fault in {what} (launched by op {op}{ctx}): {e:?}"))
}

fn nul_terminated(ptx: String) -> Vec<u8> {
    let mut v = ptx.into_bytes();
    v.push(0);
    v
}

impl GpuBackend for CudaBackend {
    fn describe(&self) -> String {
        format!("{} (cuda:{}, sm_{}{})", self.name, self.ordinal, self.cc.0, self.cc.1)
    }

    fn alloc(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>> {
        Ok(Arc::new(self.pool.alloc(dtype, n)?))
    }

    fn zeros(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>> {
        let b = self.pool.alloc(dtype, n)?;
        if b.bytes() == 0 {
            return Ok(Arc::new(b));
        }
        self.bind()?;
        unsafe { drv::memset_d8_async(b.ptr_at(0), 0, b.bytes(), self.stream.cu_stream()) }
            .map_err(|e| driver_err("cuMemsetD8Async", e))?;
        Ok(Arc::new(b))
    }

    fn upload(&self, host: &CpuStorage) -> Result<Arc<dyn DeviceBuffer>> {
        let b = self.pool.alloc(host.dtype(), host.len())?;
        if host.is_empty() {
            // An empty Vec's pointer dangles: the driver is never handed it.
            return Ok(Arc::new(b));
        }
        self.bind()?;
        let s = self.stream.cu_stream();
        // From pageable memory the copy is staged before the call returns, so `host` may go.
        let r = unsafe {
            match host {
                CpuStorage::F32(v) => drv::memcpy_htod_async(b.ptr_at(0), v, s),
                CpuStorage::F64(v) => drv::memcpy_htod_async(b.ptr_at(0), v, s),
                CpuStorage::I32(v) => drv::memcpy_htod_async(b.ptr_at(0), v, s),
            }
        };
        r.map_err(|e| driver_err("cuMemcpyHtoDAsync", e))?;
        Ok(Arc::new(b))
    }

    fn download(&self, buf: &dyn DeviceBuffer) -> Result<CpuStorage> {
        let b = self.buffer(buf)?;
        let n = b.len();
        if n == 0 {
            return Ok(match b.dtype() {
                DType::F32 => CpuStorage::new_f32(Vec::new()),
                DType::F64 => CpuStorage::new_f64(Vec::new()),
                DType::I32 => CpuStorage::new_i32(Vec::new()),
            });
        }
        self.bind()?;
        let s = self.stream.cu_stream();
        let host = unsafe {
            match b.dtype() {
                DType::F32 => {
                    let mut v = vec![0f32; n];
                    drv::memcpy_dtoh_async(&mut v, b.ptr_at(0), s).map_err(|e| driver_err("cuMemcpyDtoHAsync", e))?;
                    self.stream.synchronize().map_err(|e| {
                        driver_err(
                            "reading device data (run with RECURRENT_CUDA_SYNC=1 to name the faulting kernel)",
                            e,
                        )
                    })?;
                    CpuStorage::new_f32(v)
                }
                DType::F64 => {
                    let mut v = vec![0f64; n];
                    drv::memcpy_dtoh_async(&mut v, b.ptr_at(0), s).map_err(|e| driver_err("cuMemcpyDtoHAsync", e))?;
                    self.stream.synchronize().map_err(|e| {
                        driver_err(
                            "reading device data (run with RECURRENT_CUDA_SYNC=1 to name the faulting kernel)",
                            e,
                        )
                    })?;
                    CpuStorage::new_f64(v)
                }
                DType::I32 => {
                    let mut v = vec![0i32; n];
                    drv::memcpy_dtoh_async(&mut v, b.ptr_at(0), s).map_err(|e| driver_err("cuMemcpyDtoHAsync", e))?;
                    self.stream.synchronize().map_err(|e| {
                        driver_err(
                            "reading device data (run with RECURRENT_CUDA_SYNC=1 to name the faulting kernel)",
                            e,
                        )
                    })?;
                    CpuStorage::new_i32(v)
                }
            }
        };
        Ok(host)
    }

    /// One product is a batch of one: a single cuBLAS entry point (strided-batched) serves both.
    fn gemm(
        &self, m: usize, n: usize, k: usize, a: GpuMat, b: GpuMat, c: &dyn DeviceBuffer, c_offset: usize, ldc: usize,
        accumulate: bool,
    ) -> Result<()> {
        self.gemm_batched(m, n, k, a, b, c, c_offset, ldc, accumulate, Strides { count: 1, a: 0, b: 0, c: 0 })
    }

    fn gemm_batched(
        &self, m: usize, n: usize, k: usize, a: GpuMat, b: GpuMat, c: &dyn DeviceBuffer, c_offset: usize, ldc: usize,
        accumulate: bool, batch: Strides,
    ) -> Result<()> {
        let bt = plan::column_major_batched(m, n, k, &a, &b, c, c_offset, ldc, accumulate, batch)?;
        let g = bt.first;
        let (da, db, dc) = (self.buffer(b.buf)?, self.buffer(a.buf)?, self.buffer(c)?);
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        self.bind()?;
        let blas = self.blas.lock().unwrap_or_else(|p| p.into_inner());
        let h = *blas.handle();
        let r = unsafe {
            match c.dtype() {
                DType::F32 => {
                    let (alpha, beta) = (1f32, if g.accumulate { 1f32 } else { 0f32 });
                    blas_result::sgemm_strided_batched(
                        h,
                        op(g.transa),
                        op(g.transb),
                        g.m,
                        g.n,
                        g.k,
                        &alpha,
                        da.ptr_at(g.a_off) as *const f32,
                        g.lda,
                        bt.stride_a,
                        db.ptr_at(g.b_off) as *const f32,
                        g.ldb,
                        bt.stride_b,
                        &beta,
                        dc.ptr_at(g.c_off) as *mut f32,
                        g.ldc,
                        bt.stride_c,
                        bt.count,
                    )
                }
                _ => {
                    let (alpha, beta) = (1f64, if g.accumulate { 1f64 } else { 0f64 });
                    blas_result::dgemm_strided_batched(
                        h,
                        op(g.transa),
                        op(g.transb),
                        g.m,
                        g.n,
                        g.k,
                        &alpha,
                        da.ptr_at(g.a_off) as *const f64,
                        g.lda,
                        bt.stride_a,
                        db.ptr_at(g.b_off) as *const f64,
                        g.ldb,
                        bt.stride_b,
                        &beta,
                        dc.ptr_at(g.c_off) as *mut f64,
                        g.ldc,
                        bt.stride_c,
                        bt.count,
                    )
                }
            }
        };
        drop(blas);
        r.map_err(|e| Error::internal("gemm", format!("cuBLAS: {e:?}")))?;
        self.after_work("a GEMM")
    }

    fn launch(&self, kernel: &str, threads: usize, args: &[KernelArg]) -> Result<()> {
        let sig = kernels::signatures()
            .get(kernel)
            .ok_or_else(|| Error::internal(kernel, "no such kernel in crates/cuda/kernels/*.cu"))?;
        let mut packed = plan::pack(sig, args, |b, off| Ok(self.buffer(b)?.ptr_at(off)))?;
        if threads == 0 {
            return Ok(());
        }
        let grid = grid_for(threads)?;
        let f = self.function(kernel)?;
        self.bind()?;
        let mut params = packed.pointers();
        unsafe {
            drv::launch_kernel(f.cu_function(), (grid, 1, 1), (BLOCK, 1, 1), 0, self.stream.cu_stream(), &mut params)
        }
        .map_err(|e| fault(&format!("launching {kernel}"), e))?;
        self.after_work(kernel)
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| driver_err("synchronize", e))
    }

    fn memory(&self) -> DeviceMemory {
        let s = self.pool.stats();
        DeviceMemory { in_use: s.in_use, reserved: s.in_use + s.cached, peak_reserved: s.peak_reserved }
    }

    fn empty_cache(&self) -> u64 {
        // The pool synchronises the stream before it frees blocks; that needs the context.
        let _ = self.bind();
        self.pool.empty_cache()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
