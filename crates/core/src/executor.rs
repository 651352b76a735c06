//! The per-device executor: one worker thread runs ops in the order they were enqueued, so the
//! caller (the Node main thread) only validates shapes and enqueues, and never waits on math.

use crate::backend::DeviceBuffer;
use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use crate::tensor::Device;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where a tensor's data will be: not computed yet, computed, or failed (poisoned).
pub(crate) enum SlotState {
    Pending,
    Ready(Stored),
    Failed(Error),
}

/// Computed data: in host memory, or in a device's memory.
#[derive(Clone)]
pub(crate) enum Stored {
    Host(Arc<CpuStorage>),
    Device(Arc<dyn DeviceBuffer>),
}

/// The data of one tensor version. Ops capture slots when they are enqueued and read them
/// when they run; readers block on the condvar until the executor fills the slot.
pub(crate) struct DataSlot {
    state: Mutex<SlotState>,
    filled: Condvar,
}

impl DataSlot {
    pub(crate) fn pending() -> Arc<Self> {
        Arc::new(DataSlot { state: Mutex::new(SlotState::Pending), filled: Condvar::new() })
    }
    pub(crate) fn ready(s: CpuStorage) -> Arc<Self> {
        Arc::new(DataSlot { state: Mutex::new(SlotState::Ready(Stored::Host(Arc::new(s)))), filled: Condvar::new() })
    }
    pub(crate) fn fill(&self, result: Result<Stored>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *st = match result {
            Ok(s) => SlotState::Ready(s),
            Err(e) => SlotState::Failed(e),
        };
        self.filled.notify_all();
    }
    /// Waits for host data; a device tensor's data is an error here (use `wait_stored`).
    pub(crate) fn wait(&self) -> Result<Arc<CpuStorage>> {
        match self.wait_stored()? {
            Stored::Host(s) => Ok(s),
            Stored::Device(_) => Err(Error::internal("read", "host data requested from a device tensor")),
        }
    }
    pub(crate) fn wait_stored(&self) -> Result<Stored> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*st {
                SlotState::Ready(s) => return Ok(s.clone()),
                SlotState::Failed(e) => return Err(e.clone()),
                SlotState::Pending => st = self.filled.wait(st).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
    pub(crate) fn is_done(&self) -> bool {
        !matches!(*self.state.lock().unwrap_or_else(|p| p.into_inner()), SlotState::Pending)
    }
}

struct Executor {
    tx: Mutex<Sender<Job>>,
    queued: Arc<AtomicUsize>,
}

fn cpu_executor() -> &'static Executor {
    static EXEC: OnceLock<Executor> = OnceLock::new();
    EXEC.get_or_init(|| spawn_executor("recurrent-cpu".into()))
}

/// One executor per CUDA device: device ops are enqueued on the GPU stream from this thread,
/// in call order, so JS never waits for a launch.
fn cuda_executor(ordinal: usize) -> &'static Executor {
    static EXECS: OnceLock<Mutex<Vec<Option<&'static Executor>>>> = OnceLock::new();
    let mut all = EXECS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if all.len() <= ordinal {
        all.resize(ordinal + 1, None);
    }
    *all[ordinal].get_or_insert_with(|| Box::leak(Box::new(spawn_executor(format!("recurrent-cuda{ordinal}")))))
}

fn spawn_executor(name: String) -> Executor {
    let (tx, rx) = mpsc::channel::<Job>();
    let queued = Arc::new(AtomicUsize::new(0));
    let q = queued.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                // Counted down when taken off the queue, so `queued()` is the depth still
                // waiting, and a finished `synchronize()` no longer counts its own barrier.
                q.fetch_sub(1, Ordering::AcqRel);
                // Jobs catch their own panics; this guard keeps the worker alive regardless.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .expect("spawn an executor thread");
    Executor { tx: Mutex::new(tx), queued }
}

fn executor_for(device: Device) -> &'static Executor {
    match device {
        Device::Cpu => cpu_executor(),
        Device::Cuda(n) => cuda_executor(n),
    }
}

/// Enqueues a job on the CPU executor.
pub(crate) fn submit(job: Job) {
    submit_on(Device::Cpu, job)
}

/// Enqueues a job on `device`'s executor.
pub(crate) fn submit_on(device: Device, job: Job) {
    let ex = executor_for(device);
    ex.queued.fetch_add(1, Ordering::AcqRel);
    let tx = ex.tx.lock().unwrap_or_else(|p| p.into_inner());
    if tx.send(job).is_err() {
        ex.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Number of jobs enqueued and not started yet (the queue depth).
pub fn queued() -> usize {
    cpu_executor().queued.load(Ordering::Acquire)
}

/// Blocks until every job enqueued before this call has run.
pub fn synchronize() {
    let slot = DataSlot::pending();
    let s = slot.clone();
    submit(Box::new(move || s.fill(Ok(Stored::Host(Arc::new(CpuStorage::new_f32(Vec::new())))))));
    let _ = slot.wait();
}
