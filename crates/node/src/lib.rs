//! recurrent-node: the napi-rs binding of `recurrent-core`.
//!
//! This crate only converts values between JavaScript and Rust and maps errors; every piece of
//! math lives in `recurrent-core`. Each core [`Error`](recurrent_core::Error) becomes a JS
//! `Error` with the core's message (`<op>: <details>`) and `code` and `op` properties
//! (`errors.rs`); the TypeScript layer (`src/errors.ts`) picks the matching class by `code`.
//!
//! Nothing may panic across the boundary: sync functions use `#[napi(catch_unwind)]`, and the
//! async tasks run their `compute` inside `std::panic::catch_unwind` ([`errors::Pending`]; a
//! panic inside `Task::compute` would abort Node).

#![deny(clippy::all)]
// In a test build napi-rs does not register the exports, so every #[napi] function looks unused.
#![cfg_attr(test, allow(dead_code))]

mod convert;
mod cuda;
mod errors;
mod factories;
mod image;
mod image_ops;
mod io;
mod ops;
mod optim;
mod readback;
mod settle;
mod tensor;

pub use cuda::{CudaDeviceInfo, CudaMemoryInfo};
pub use tensor::NativeTensor;

pub(crate) use errors::js_err;

use errors::Pending;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::executor;
use std::sync::atomic::{AtomicI64, Ordering};

/// Nice value given to the compute threads (the rayon pool the CPU kernels run on), so that
/// the JS thread, which only enqueues work and resolves reads, wins the CPU whenever it wakes
/// up: this is what keeps the event loop responsive while a training step saturates every
/// core. `RECURRENT_WORKER_NICE` overrides it (0 keeps the default priority).
const DEFAULT_WORKER_NICE: i32 = 10;

fn worker_nice() -> i32 {
    std::env::var("RECURRENT_WORKER_NICE")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
        .map(|n| n.clamp(0, 19))
        .unwrap_or(DEFAULT_WORKER_NICE)
}

/// Lowers the calling thread's scheduling priority (Linux: nice is per thread).
fn lower_this_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: plain syscalls on the current thread; failure only leaves the priority as is.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The CPUs the compute threads are pinned to, one each (worker i on `cpus[i]`), or None to
/// leave their placement to the OS.
///
/// Why pin: the team engine's runners meet at a barrier every step, and after the process has
/// been idle for a while (a server between requests, or another library's turn) Linux wakes
/// both pool threads onto the same core, where a call's runners take turns instead of running
/// side by side, until its load averages catch up some 40 ms later. Measured on a 2-core VM
/// (LSTM B=1, T=100, H=256 inference from JS, after 80 ms idle): the first ~30 calls took
/// 1.3–1.4 ms instead of 0.8; pinned, only the first call is slow.
///
/// Pinned only when the pool has exactly one thread per CPU the process may use (the default):
/// a smaller pool pinned to the first CPUs would crowd them when several processes share the
/// machine. `RECURRENT_PIN_THREADS=0` never pins; `=1` pins whenever the pool fits the CPUs.
fn pinned_cpus() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        let setting = std::env::var("RECURRENT_PIN_THREADS").unwrap_or_default();
        if setting.trim() == "0" {
            return None;
        }
        // SAFETY: sched_getaffinity fills the zeroed set it is given; nothing else is touched.
        let allowed: Vec<usize> = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return None;
            }
            (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
        };
        // The pool's size as rayon picks it when building the global pool.
        let threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let fits = threads >= 2 && threads <= allowed.len();
        let pin = if setting.trim() == "1" { fits } else { fits && threads == allowed.len() };
        pin.then(|| allowed[..threads].to_vec())
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Pins the calling thread to one CPU; failure (e.g. a CPU taken away since) leaves it free.
fn pin_this_thread(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the current thread with a set built here.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Lazy start-up of the engine, once, before the first op can run: configures the global rayon
/// pool (named threads, lowered priority, pinned to CPUs as [`pinned_cpus`] says) and registers
/// the CUDA backend. Called whenever a tensor handle is made: every op needs a handle as input,
/// so this runs before the first op is enqueued. Not at module load: spawning threads while the
/// dynamic loader holds its lock deadlocks, and the design forbids touching CUDA while the addon
/// loads. If something else already built the pool, it is kept as it is.
///
/// Registering CUDA only stores a function pointer: no library is loaded and no device is
/// probed until a tensor is first sent to 'cuda' (then `recurrent_cuda::open` probes inside
/// `catch_unwind`, and a missing driver or library is a `CudaUnavailableError` naming it).
pub(crate) fn ensure_runtime() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let nice = worker_nice();
        let cpus = pinned_cpus();
        let _ = std::panic::catch_unwind(|| {
            rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("recurrent-worker-{i}"))
                .start_handler(move |i| {
                    lower_this_thread_priority(nice);
                    if let Some(&cpu) = cpus.as_ref().and_then(|c| c.get(i)) {
                        pin_this_thread(cpu);
                    }
                })
                .build_global()
        });
        recurrent_core::backend::register_cuda(recurrent_cuda::open);
    });
}

/// `Result` of the core mapped to a napi `Result`.
pub(crate) trait IntoJs<T> {
    fn js(self) -> Result<T>;
}

impl<T> IntoJs<T> for recurrent_core::Result<T> {
    fn js(self) -> Result<T> {
        self.map_err(js_err)
    }
}

/// Host bytes already reported to V8 with `adjust_external_memory`.
static REPORTED_BYTES: AtomicI64 = AtomicI64::new(0);

/// Tells V8 how much native tensor memory is alive now, so that it collects unreachable
/// tensor handles sooner when they hold a lot of memory. Cheap: one atomic swap, and a call
/// into V8 only when the figure changed.
pub(crate) fn sync_external_memory(env: &Env) {
    let now = recurrent_core::memory_stats().bytes.max(0);
    let before = REPORTED_BYTES.swap(now, Ordering::Relaxed);
    let delta = now - before;
    if delta != 0 {
        let _ = env.adjust_external_memory(delta);
    }
}

/// Live native memory, as `memory()` returns it.
#[napi(object)]
pub struct MemoryInfo {
    /// Live tensor handles (distinct tensors, clones not counted).
    pub tensors: i64,
    /// Live host bytes of tensor data.
    pub bytes: i64,
    /// Peak of `bytes` since the last `resetPeakMemory()`.
    pub peak_bytes: i64,
    /// Ops enqueued and not started yet, over every executor (the CPU's and each opened CUDA
    /// device's).
    pub queued: i64,
    /// Live data buffers.
    pub buffers: i64,
    /// Each CUDA device opened so far (empty before the first CUDA tensor, and without CUDA).
    pub cuda: Vec<CudaMemoryInfo>,
}

/// Live tensors and host memory, the executors' queue length, and CUDA memory per opened device.
#[napi(catch_unwind)]
pub fn memory(env: Env) -> MemoryInfo {
    sync_external_memory(&env);
    let m = recurrent_core::memory_stats();
    MemoryInfo {
        tensors: recurrent_core::live_tensors(),
        bytes: m.bytes,
        peak_bytes: m.peak_bytes,
        queued: executor::queued() as i64,
        buffers: m.buffers,
        cuda: cuda::cuda_memory(),
    }
}

/// The host memory one request may use (the machine's RAM, or its cgroup's limit): larger
/// requests are refused with a MemoryError. The TypeScript layer checks model sizes against it.
#[napi(catch_unwind)]
pub fn host_memory_bytes() -> f64 {
    recurrent_core::storage::host_memory_bytes() as f64
}

/// Starts a new peak-memory window at the current live size.
#[napi(catch_unwind)]
pub fn reset_peak_memory() {
    recurrent_core::reset_peak_bytes();
}

/// Waits on the libuv pool until every op enqueued before the call has run, on every device.
#[derive(Default)]
pub struct SyncTask {
    failure: Pending,
}

#[napi]
impl Task for SyncTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.failure.run("synchronize", executor::synchronize)
    }

    fn resolve(&mut self, env: Env, _out: ()) -> Result<()> {
        sync_external_memory(&env);
        Ok(())
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<()> {
        self.failure.reject(&env, err)
    }
}

/// Resolves once every op enqueued so far has run, on the CPU and on every opened CUDA device
/// (whose queued kernels have finished too); rejects with the error a device reports while
/// finishing. Never blocks the JS thread.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn synchronize(env: &Env) -> Result<PromiseRaw<'_, ()>> {
    // Only the CPU executor: its barrier settles the promise. An open device's finishing is a
    // blocking wait, done on the libuv pool.
    if executor::devices_open() {
        return Ok(env.spawn(SyncTask::default())?.promise_object());
    }
    let (later, promise) = crate::settle::Later::new(env)?;
    executor::synchronize_then(move || {
        later.settle(Ok(()), |env, ()| {
            sync_external_memory(env);
            Ok(())
        })
    });
    Ok(promise)
}

/// Waits on the libuv pool until one tensor's data is computed, without copying it.
pub struct ReadyTask {
    tensor: Option<recurrent_core::Tensor>,
    failure: Pending,
}

#[napi]
impl Task for ReadyTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let t = self.tensor.take();
        let r = self.failure.run("ready", || t.as_ref().map(|t| t.storage().map(|_| ())).unwrap_or(Ok(())));
        // Drop the handle here, on the pool thread, once the data is there.
        drop(t);
        r
    }

    fn resolve(&mut self, env: Env, _out: ()) -> Result<()> {
        sync_external_memory(&env);
        Ok(())
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<()> {
        self.failure.reject(&env, err)
    }
}

/// Resolves once `tensor`'s data is computed (rejects with the error of a failed op it
/// depends on), without copying the data. If the tensor is updated in place (`assign`) before
/// the wait starts on the pool, it waits for the newer data, which the executor computes after
/// the older. Never blocks the JS thread.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn ready<'env>(env: &'env Env, tensor: &NativeTensor) -> Result<PromiseRaw<'env, ()>> {
    let t = tensor.get("ready")?;
    if t.device() != recurrent_core::Device::Cpu {
        return Ok(env.spawn(ReadyTask { tensor: Some(t), failure: Pending::default() })?.promise_object());
    }
    crate::settle::when_ready(env, &t, "ready", |_| (), |_, ()| Ok(()))
}

/// Blocks the JS thread until every op enqueued so far has run, on every device; throws the
/// error a device reports while finishing.
#[napi(catch_unwind)]
pub fn synchronize_sync(env: Env) -> Result<()> {
    let r = executor::synchronize().js();
    sync_external_memory(&env);
    r
}

/// Turns history recording on or off for ops built on this thread; returns the old setting.
#[napi(catch_unwind)]
pub fn set_grad_enabled(enabled: bool) -> bool {
    recurrent_core::set_grad_enabled(enabled)
}

/// Whether ops built on this thread record history for backward().
#[napi(catch_unwind)]
pub fn is_grad_enabled() -> bool {
    recurrent_core::is_grad_enabled()
}

/// Holds the CPU executor until `release()` (or 30 s, or garbage collection of the handle), so
/// that ops enqueued meanwhile are certainly pending. For tests that must order events rather
/// than race a long computation; not part of the public TypeScript API.
#[napi]
pub struct ExecutorHold {
    hold: recurrent_core::executor::Hold,
}

#[napi]
impl ExecutorHold {
    /// Lets the executor go on; calling it again does nothing.
    #[napi(catch_unwind)]
    pub fn release(&self) {
        self.hold.release();
    }
}

/// Enqueues a hold on the CPU executor: every op enqueued after it waits until it is released.
#[napi(catch_unwind)]
pub fn hold_executor() -> ExecutorHold {
    ensure_runtime();
    ExecutorHold { hold: recurrent_core::executor::Hold::new(std::time::Duration::from_secs(30)) }
}
