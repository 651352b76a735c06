//! The per-device executor: one worker thread runs ops in the order they were enqueued, so the
//! caller (the Node main thread) only validates shapes and enqueues, and never waits on math.

use crate::backend::{self, DeviceBuffer, GpuBackend};
use crate::error::{panic_message, Error, Result};
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

/// Called once when a slot is filled (see [`DataSlot::when_done`]).
pub(crate) type Waiter = Box<dyn FnOnce() + Send + 'static>;

/// The data of one tensor version. Ops capture slots when they are enqueued and read them
/// when they run; readers block on the condvar until the executor fills the slot, or register
/// a waiter that the filling thread calls.
pub(crate) struct DataSlot {
    state: Mutex<(SlotState, Vec<Waiter>)>,
    filled: Condvar,
}

impl DataSlot {
    pub(crate) fn pending() -> Arc<Self> {
        Arc::new(DataSlot { state: Mutex::new((SlotState::Pending, Vec::new())), filled: Condvar::new() })
    }
    pub(crate) fn ready(s: CpuStorage) -> Arc<Self> {
        let state = (SlotState::Ready(Stored::Host(Arc::new(s))), Vec::new());
        Arc::new(DataSlot { state: Mutex::new(state), filled: Condvar::new() })
    }
    pub(crate) fn fill(&self, result: Result<Stored>) {
        let waiters = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0 = match result {
                Ok(s) => SlotState::Ready(s),
                Err(e) => SlotState::Failed(e),
            };
            self.filled.notify_all();
            std::mem::take(&mut st.1)
        };
        // Outside the lock: a waiter reads the slot. Each is caught on its own, so that one
        // that panics neither skips the others nor reaches the job that filled the slot.
        for w in waiters {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(w));
        }
    }
    /// Runs `w` once the slot is filled: on the thread that fills it, or at once on this
    /// thread when it is already filled. For reads that must not block a thread to wait.
    pub(crate) fn when_done(&self, w: Waiter) {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(st.0, SlotState::Pending) {
                st.1.push(w);
                return;
            }
        }
        w();
    }
    pub(crate) fn wait_stored(&self) -> Result<Stored> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &st.0 {
                SlotState::Ready(s) => return Ok(s.clone()),
                SlotState::Failed(e) => return Err(e.clone()),
                SlotState::Pending => st = self.filled.wait(st).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.state.lock().unwrap_or_else(|p| p.into_inner()).0, SlotState::Pending)
    }
}

/// One worker thread and its queue. The CPU has one; each opened CUDA device has one, kept
/// with its backend in the device registry (`backend.rs`).
pub(crate) struct Executor {
    tx: Mutex<Sender<Job>>,
    queued: Arc<AtomicUsize>,
}

impl Executor {
    fn send(&self, job: Job) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            // The worker never exits (it catches every panic), so this does not happen; running
            // the job here still fills its outputs, so no reader waits forever.
            drop(tx);
            self.queued.fetch_sub(1, Ordering::AcqRel);
            job();
        }
    }

    fn depth(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// A job that runs after every job already on this queue, then waits for `device` (if
    /// any) to finish the work those jobs queued on it. Its slot is filled with the device's
    /// error, if it reports one.
    fn barrier(&self, device: Option<Arc<dyn GpuBackend>>) -> Arc<DataSlot> {
        let slot = DataSlot::pending();
        let s = slot.clone();
        self.send(Box::new(move || {
            let finished = match device {
                Some(be) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    be.synchronize()?;
                    // Deferred index checks are read here too: their flags are ready now.
                    crate::launch::index_faults(&*be)
                }))
                .unwrap_or_else(|p| Err(Error::internal("synchronize", panic_message(p)))),
                None => Ok(()),
            };
            s.fill(finished.map(|()| Stored::Host(Arc::new(CpuStorage::new_f32(Vec::new())))));
        }));
        slot
    }
}

fn cpu_executor() -> &'static Executor {
    static EXEC: OnceLock<Executor> = OnceLock::new();
    EXEC.get_or_init(|| spawn_executor("recurrent-cpu".into()))
}

pub(crate) fn spawn_executor(name: String) -> Executor {
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

/// Enqueues a job on `device`'s executor.
pub(crate) fn submit_on(device: Device, job: Job) {
    match device {
        Device::Cpu => cpu_executor().send(job),
        Device::Cuda(n) => match backend::open(n) {
            Ok(d) => d.executor.send(job),
            // Callers open the device before they build a job for it, so its entry is an opened
            // device; if it were not, the CPU executor still runs the job and fills its outputs.
            Err(_) => cpu_executor().send(job),
        },
    }
}

/// Number of jobs enqueued and not started yet, over every executor: the CPU's and each opened
/// CUDA device's.
pub fn queued() -> usize {
    cpu_executor().depth() + backend::opened_devices().iter().map(|(_, d)| d.executor.depth()).sum::<usize>()
}

/// Blocks until every job enqueued before this call has run, on every executor (the CPU's and
/// each opened CUDA device's), and each device has finished the work those jobs queued on it.
/// Returns the first error a device reports while finishing (an asynchronous fault); the other
/// executors are still waited for.
pub fn synchronize() -> Result<()> {
    // Every barrier is enqueued before any is waited on, so the executors drain in parallel.
    let mut barriers = vec![cpu_executor().barrier(None)];
    for (_, d) in backend::opened_devices() {
        barriers.push(d.executor.barrier(Some(d.backend.clone())));
    }
    let mut first = Ok(());
    for b in barriers {
        let r = b.wait_stored().map(|_| ());
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// Whether a CUDA device has been opened (then [`synchronize`] also waits for devices).
pub fn devices_open() -> bool {
    !backend::opened_devices().is_empty()
}

/// Calls `then` once every job enqueued on the CPU executor before this call has run, with
/// nothing blocked meanwhile (the executor calls it after a barrier job). The CPU's part of
/// [`synchronize`]: with a device open ([`devices_open`]), its finishing is a blocking wait,
/// for [`synchronize`] on a thread of the caller's.
pub fn synchronize_then(then: impl FnOnce() + Send + 'static) {
    cpu_executor().barrier(None).when_done(Box::new(then));
}

/// Holds the CPU executor: a job that blocks its worker until [`Hold::release`] (or the drop of
/// the hold, or `limit`, whichever comes first), so that everything enqueued after it is known
/// to be pending. Tests use it to order events explicitly instead of hoping that a large matmul
/// is still running; the limit keeps a test that forgets to release from stalling the process.
pub struct Hold {
    released: Arc<(Mutex<bool>, Condvar)>,
}

impl Hold {
    pub fn new(limit: std::time::Duration) -> Hold {
        let released = Arc::new((Mutex::new(false), Condvar::new()));
        let r = released.clone();
        cpu_executor().send(Box::new(move || {
            let (lock, cv) = &*r;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let _ = cv.wait_timeout_while(guard, limit, |done| !*done);
        }));
        Hold { released }
    }

    /// Lets the executor go on.
    pub fn release(&self) {
        let (lock, cv) = &*self.released;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}
