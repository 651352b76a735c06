//! The per-device executor: one worker thread runs ops in the order they were enqueued, so the
//! caller (the Node main thread) only validates shapes and enqueues, and never waits on math.

use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where a tensor's data will be: not computed yet, computed, or failed (poisoned).
pub(crate) enum SlotState {
    Pending,
    Ready(Arc<CpuStorage>),
    Failed(Error),
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
        Arc::new(DataSlot { state: Mutex::new(SlotState::Ready(Arc::new(s))), filled: Condvar::new() })
    }
    pub(crate) fn fill(&self, result: Result<Arc<CpuStorage>>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *st = match result {
            Ok(s) => SlotState::Ready(s),
            Err(e) => SlotState::Failed(e),
        };
        self.filled.notify_all();
    }
    pub(crate) fn wait(&self) -> Result<Arc<CpuStorage>> {
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
    EXEC.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("recurrent-cpu".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // Jobs catch their own panics; this guard keeps the worker alive regardless.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    q.fetch_sub(1, Ordering::Release);
                }
            })
            .expect("spawn the recurrent-cpu executor thread");
        Executor { tx: Mutex::new(tx), queued }
    })
}

/// Enqueues a job on the CPU executor.
pub(crate) fn submit(job: Job) {
    let ex = cpu_executor();
    ex.queued.fetch_add(1, Ordering::AcqRel);
    let tx = ex.tx.lock().unwrap_or_else(|p| p.into_inner());
    if tx.send(job).is_err() {
        ex.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Number of jobs enqueued and not finished yet.
pub fn queued() -> usize {
    cpu_executor().queued.load(Ordering::Acquire)
}

/// Blocks until every job enqueued before this call has run.
pub fn synchronize() {
    let slot = DataSlot::pending();
    let s = slot.clone();
    submit(Box::new(move || s.fill(Ok(Arc::new(CpuStorage::new_f32(Vec::new()))))));
    let _ = slot.wait();
}
