//! A `GpuBackend` that runs the real `kernels/*.cu` on the host, for tests on machines without
//! a GPU (feature `emulator`, off by default: test builds only). The Rust tests
//! (`tests/emulated.rs`) register it directly; a test build of the Node addon (`npm run
//! build:native:emu`) answers for 'cuda' with it when `RECURRENT_CUDA_EMULATOR=1`, so the
//! TypeScript GPU spec runs through napi into the same device paths (see `crate::emulated`).
//! The kernel files are compiled with the system C++ compiler against `tests/emu/emu.h`
//! (CUDA built-ins as fibers and statics), with one wrapper per kernel generated from the
//! signatures that the CUDA backend checks launches against. Everything else is the CUDA
//! backend's own code: the caching allocator, the row-major → cuBLAS GEMM translation (run by
//! a reference column-major GEMM with cuBLAS's semantics), and argument packing and checking.
//! Fresh buffers are poisoned (all bits set: NaN, or −1 for int32) so unwritten outputs show.

use crate::alloc::{AllocStats, DevBuffer, Pool, RawAlloc, RawError};
use crate::{kernels, plan, DeviceInfo};
use recurrent_core::backend::{downcast, DeviceBuffer, DeviceMemory, GpuBackend, GpuMat, KernelArg, Strides};
use recurrent_core::{CpuStorage, DType, Error, Result};
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Host memory with a capacity, so that out-of-memory can be tested.
struct HostAlloc {
    cap: u64,
    used: AtomicU64,
    sizes: Mutex<HashMap<u64, usize>>,
}

impl RawAlloc for HostAlloc {
    fn malloc(&self, bytes: usize) -> std::result::Result<u64, RawError> {
        if self.used.load(Ordering::SeqCst) + bytes as u64 > self.cap {
            return Err(RawError::OutOfMemory);
        }
        let layout = std::alloc::Layout::from_size_align(bytes, 256).map_err(|e| RawError::Other(e.to_string()))?;
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return Err(RawError::OutOfMemory);
        }
        self.used.fetch_add(bytes as u64, Ordering::SeqCst);
        self.sizes.lock().unwrap().insert(p as u64, bytes);
        Ok(p as u64)
    }
    fn free(&self, ptr: u64) {
        if let Some(bytes) = self.sizes.lock().unwrap().remove(&ptr) {
            self.used.fetch_sub(bytes as u64, Ordering::SeqCst);
            unsafe { std::alloc::dealloc(ptr as *mut u8, std::alloc::Layout::from_size_align(bytes, 256).unwrap()) };
        }
    }
    fn mem_info(&self) -> Option<(u64, u64)> {
        Some((self.cap - self.used.load(Ordering::SeqCst), self.cap))
    }
}

type Wrapper = unsafe extern "C" fn(*mut *mut c_void);
type Run = unsafe extern "C" fn(Wrapper, *mut *mut c_void, u32, u32) -> i32;

pub struct EmuBackend {
    pool: Arc<Pool>,
    lib: libloading::Library,
    /// The emulator has global state (fibers): one launch at a time.
    launch_lock: Mutex<()>,
    launches: AtomicU64,
    syncs: AtomicU64,
    batched_gemms: AtomicU64,
}

/// Capacity of the emulated device: enough for the tests, far below 10^12 bytes.
const CAPACITY: u64 = 8 << 30;

/// The emulator's C++ sources, embedded so that a built addon needs no source tree.
const EMU_H: &str = include_str!("../tests/emu/emu.h");
const RUNTIME_CPP: &str = include_str!("../tests/emu/runtime.cpp");

/// Where the emulator library is built: `$RECURRENT_EMU_DIR`, or a folder under the system's
/// temporary directory (one subfolder per source version, so builds are reused).
fn build_root() -> PathBuf {
    std::env::var_os("RECURRENT_EMU_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("recurrent-kernel-emu"))
}

fn hash_of(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Builds (once per source version) the emulator library; returns its path or why not.
fn build_library() -> std::result::Result<PathBuf, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err(format!("no C++ compiler ('{cxx}') to build the kernel emulator")),
    }
    let mut parts: Vec<&str> = vec![EMU_H, RUNTIME_CPP, kernels::COMMON];
    for (_, src) in kernels::FILES {
        parts.push(src);
    }
    let dir = build_root().join(format!("kernel-emu-{:016x}", hash_of(&parts)));
    let lib = dir.join("libkernel_emu.so");
    if lib.exists() {
        return Ok(lib);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let emu_h = dir.join("emu.h");
    std::fs::write(&emu_h, EMU_H).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("runtime.cpp"), RUNTIME_CPP).map_err(|e| e.to_string())?;
    let sigs = kernels::signatures();
    let mut units = vec![dir.join("runtime.cpp")];
    for (file, src) in kernels::FILES {
        let mut tu = format!("#include \"{}\"\n{}\n#line 1 \"{file}\"\n{src}\n", emu_h.display(), kernels::COMMON);
        let mut names: Vec<&String> = sigs.values().filter(|s| s.file == *file).map(|s| &s.name).collect();
        names.sort();
        for name in names {
            let sig = &sigs[name];
            let args: Vec<String> = sig.c_types.iter().enumerate().map(|(i, t)| format!("*({t}*)a[{i}]")).collect();
            tu.push_str(&format!("extern \"C\" void emu__{name}(void** a) {{ {name}({}); }}\n", args.join(", ")));
        }
        let path = dir.join(file.replace(".cu", ".cpp"));
        std::fs::write(&path, tu).map_err(|e| e.to_string())?;
        units.push(path);
    }
    // Compile the units in parallel, then link.
    let mut jobs = Vec::new();
    for u in &units {
        let obj = dir.join(format!("{}.o", u.file_stem().unwrap().to_string_lossy()));
        let child = Command::new(&cxx)
            .args(["-std=c++17", "-O2", "-fPIC", "-w", "-c"])
            .arg(u)
            .arg("-o")
            .arg(&obj)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        jobs.push((u.clone(), obj, child));
    }
    let mut objs = Vec::new();
    for (u, obj, child) in jobs {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "compiling {} for the emulator failed:\n{}",
                u.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        objs.push(obj);
    }
    let tmp = dir.join(format!("libkernel_emu.{}.so", std::process::id()));
    let out = Command::new(&cxx).args(["-shared", "-o"]).arg(&tmp).args(&objs).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("linking the emulator failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::rename(&tmp, &lib).map_err(|e| e.to_string())?;
    Ok(lib)
}

fn library() -> &'static std::result::Result<PathBuf, String> {
    static LIB: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    LIB.get_or_init(build_library)
}

/// Why the emulator cannot run here, if it cannot.
pub fn unavailable_reason() -> Option<String> {
    library().as_ref().err().cloned()
}

/// The factory to register with `register_cuda`: only `cuda:0` exists. The core's device
/// registry keeps what it returns, as it keeps the CUDA backend.
pub fn open(ordinal: usize) -> Result<Arc<dyn GpuBackend>> {
    let unavailable = |reason: String| Error::CudaUnavailable { op: format!("cuda:{ordinal}"), reason };
    if ordinal != 0 {
        return Err(unavailable("the kernel emulator has only cuda:0".into()));
    }
    let path = library().as_ref().map_err(|e| unavailable(e.clone()))?;
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| unavailable(e.to_string()))?;
    let raw = HostAlloc { cap: CAPACITY, used: AtomicU64::new(0), sizes: Mutex::new(HashMap::new()) };
    Ok(Arc::new(EmuBackend {
        pool: Pool::new(Box::new(raw), "cuda:0".into()),
        lib,
        launch_lock: Mutex::new(()),
        launches: AtomicU64::new(0),
        syncs: AtomicU64::new(0),
        batched_gemms: AtomicU64::new(0),
    }))
}

/// The emulator's one device, as `devices()` lists it (empty when it cannot be built here).
pub fn devices() -> Vec<DeviceInfo> {
    if unavailable_reason().is_some() {
        return Vec::new();
    }
    vec![DeviceInfo { ordinal: 0, name: DESCRIPTION.into(), memory: CAPACITY, compute_capability: (0, 0) }]
}

const DESCRIPTION: &str = "host emulator of kernels/*.cu";

/// The opened emulator, from the core's device registry.
pub fn opened() -> Option<Arc<dyn GpuBackend>> {
    recurrent_core::backend::opened().into_iter().find(|(n, _)| *n == 0).map(|(_, be)| be)
}

fn with_emulator<T>(f: impl FnOnce(&EmuBackend) -> T) -> Option<T> {
    let be = opened()?;
    be.as_any().downcast_ref::<EmuBackend>().map(f)
}

/// Allocator counters of the opened emulator.
pub fn alloc_stats() -> Option<AllocStats> {
    with_emulator(|b| b.pool.stats())
}

/// How many strided-batched GEMMs the opened emulator ran (one per batched product).
pub fn batched_gemms() -> Option<u64> {
    with_emulator(|b| b.batched_gemms.load(Ordering::SeqCst))
}

/// How many times the opened emulator was asked to synchronize.
pub fn synchronizations() -> Option<u64> {
    with_emulator(|b| b.syncs.load(Ordering::SeqCst))
}

impl EmuBackend {
    /// The caching allocator's counters.
    pub fn alloc_stats(&self) -> AllocStats {
        self.pool.stats()
    }
    fn buffer<'a>(&self, b: &'a dyn DeviceBuffer) -> Result<&'a DevBuffer> {
        downcast::<DevBuffer>(b).ok_or_else(|| Error::internal("emu", "a buffer from another backend"))
    }
    fn poisoned(&self, dtype: DType, n: usize) -> Result<DevBuffer> {
        let b = self.pool.alloc(dtype, n)?;
        unsafe { std::ptr::write_bytes(b.ptr_at(0) as *mut u8, 0xff, b.bytes()) };
        Ok(b)
    }
}

impl GpuBackend for EmuBackend {
    fn describe(&self) -> String {
        format!("{DESCRIPTION} (cuda:0)")
    }
    fn alloc(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>> {
        Ok(Arc::new(self.poisoned(dtype, n)?))
    }
    fn zeros(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>> {
        let b = self.pool.alloc(dtype, n)?;
        unsafe { std::ptr::write_bytes(b.ptr_at(0) as *mut u8, 0, b.bytes()) };
        Ok(Arc::new(b))
    }
    fn upload(&self, host: &CpuStorage) -> Result<Arc<dyn DeviceBuffer>> {
        let b = self.pool.alloc(host.dtype(), host.len())?;
        let bytes = host.bytes();
        let src = match host {
            CpuStorage::F32(v) => v.as_ptr() as *const u8,
            CpuStorage::F64(v) => v.as_ptr() as *const u8,
            CpuStorage::I32(v) => v.as_ptr() as *const u8,
        };
        unsafe { std::ptr::copy_nonoverlapping(src, b.ptr_at(0) as *mut u8, bytes) };
        Ok(Arc::new(b))
    }
    fn download(&self, buf: &dyn DeviceBuffer) -> Result<CpuStorage> {
        let b = self.buffer(buf)?;
        let n = b.len();
        Ok(unsafe {
            match b.dtype() {
                DType::F32 => CpuStorage::new_f32(std::slice::from_raw_parts(b.ptr_at(0) as *const f32, n).to_vec()),
                DType::F64 => CpuStorage::new_f64(std::slice::from_raw_parts(b.ptr_at(0) as *const f64, n).to_vec()),
                DType::I32 => CpuStorage::new_i32(std::slice::from_raw_parts(b.ptr_at(0) as *const i32, n).to_vec()),
            }
        })
    }
    fn gemm(
        &self, m: usize, n: usize, k: usize, a: GpuMat, b: GpuMat, c: &dyn DeviceBuffer, c_offset: usize, ldc: usize,
        accumulate: bool,
    ) -> Result<()> {
        let g = plan::column_major(m, n, k, &a, &b, c, c_offset, ldc, accumulate)?;
        let (da, db, dc) = (self.buffer(b.buf)?, self.buffer(a.buf)?, self.buffer(c)?);
        unsafe {
            match c.dtype() {
                DType::F32 => plan::reference_gemm::<f32>(
                    &g,
                    da.ptr_at(g.a_off) as *const f32,
                    db.ptr_at(g.b_off) as *const f32,
                    dc.ptr_at(g.c_off) as *mut f32,
                ),
                _ => plan::reference_gemm::<f64>(
                    &g,
                    da.ptr_at(g.a_off) as *const f64,
                    db.ptr_at(g.b_off) as *const f64,
                    dc.ptr_at(g.c_off) as *mut f64,
                ),
            }
        }
        Ok(())
    }
    fn gemm_batched(
        &self, m: usize, n: usize, k: usize, a: GpuMat, b: GpuMat, c: &dyn DeviceBuffer, c_offset: usize, ldc: usize,
        accumulate: bool, batch: Strides,
    ) -> Result<()> {
        let g = plan::column_major_batched(m, n, k, &a, &b, c, c_offset, ldc, accumulate, batch)?;
        let (da, db, dc) = (self.buffer(b.buf)?, self.buffer(a.buf)?, self.buffer(c)?);
        self.batched_gemms.fetch_add(1, Ordering::Relaxed);
        unsafe {
            match c.dtype() {
                DType::F32 => plan::reference_gemm_batched::<f32>(
                    &g,
                    da.ptr_at(g.first.a_off) as *const f32,
                    db.ptr_at(g.first.b_off) as *const f32,
                    dc.ptr_at(g.first.c_off) as *mut f32,
                ),
                _ => plan::reference_gemm_batched::<f64>(
                    &g,
                    da.ptr_at(g.first.a_off) as *const f64,
                    db.ptr_at(g.first.b_off) as *const f64,
                    dc.ptr_at(g.first.c_off) as *mut f64,
                ),
            }
        }
        Ok(())
    }
    fn launch(&self, kernel: &str, threads: usize, args: &[KernelArg]) -> Result<()> {
        let sig = kernels::signatures()
            .get(kernel)
            .ok_or_else(|| Error::internal(kernel, "no such kernel in crates/cuda/kernels/*.cu"))?;
        let mut packed = plan::pack(sig, args, |b, off| Ok(self.buffer(b)?.ptr_at(off)))?;
        if threads == 0 {
            return Ok(());
        }
        let grid = plan::grid_for(threads)?;
        let _guard = self.launch_lock.lock().unwrap_or_else(|p| p.into_inner());
        let status = unsafe {
            let run: libloading::Symbol<Run> =
                self.lib.get(b"emu_run").map_err(|e| Error::internal(kernel, e.to_string()))?;
            let f: libloading::Symbol<Wrapper> = self
                .lib
                .get(format!("emu__{kernel}").as_bytes())
                .map_err(|e| Error::internal(kernel, e.to_string()))?;
            let mut ptrs = packed.pointers();
            run(*f, ptrs.as_mut_ptr(), grid, plan::BLOCK)
        };
        self.launches.fetch_add(1, Ordering::Relaxed);
        if status != 0 {
            return Err(Error::internal(
                kernel,
                "divergent __syncthreads: some threads of a block returned while others waited at a barrier",
            ));
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        // Launches run to completion on the calling thread: nothing is ever pending.
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn memory(&self) -> DeviceMemory {
        let s = self.pool.stats();
        DeviceMemory { in_use: s.in_use, reserved: s.in_use + s.cached, peak_reserved: s.peak_reserved }
    }
    fn empty_cache(&self) -> u64 {
        self.pool.empty_cache()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
