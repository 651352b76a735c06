//! A persistent team for loops whose steps depend on each other (the recurrent time loop): one
//! parallel region for the whole loop instead of a fork-join per step. Every phase is cut into
//! the same `chunks` (fixed shares of the work, e.g. ranges of hidden units); all chunks of a
//! phase finish before any chunk of the next starts (a barrier).
//!
//! Runners are tasks on the rayon pool: the scope's body and helpers spawned from it. Each runner first takes its
//! own chunks (runner r: chunks [r·C/R, (r+1)·C/R)), so on a quiet machine a chunk stays on one
//! core and its weights stay in that core's cache; then it takes any chunk nobody has started.
//! So nobody waits on a runner that is slow to start or has lost its core: a helper that never
//! gets a thread (pool busy, or one thread) leaves its chunks to the others, and the first runner
//! alone can finish the loop. Waiting happens only for chunks in progress: spin briefly, then yield,
//! then sleep. A panic in any chunk stops every runner and is re-raised by [`run`].
//!
//! A chunk computes the same thing whichever runner takes it, so results do not depend on
//! scheduling or on the number of runners.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Waits while `busy()`: spins first (a barrier between two cores takes well under a
/// microsecond), then yields the core, then sleeps, so that a runner that lost its core gets it.
fn wait_while(mut busy: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while busy() {
        spins += 1;
        if spins < 2_000 {
            std::hint::spin_loop();
        } else if spins < 4_000 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Runs `work(scratch, chunk, phase)` for every chunk in 0..chunks of every phase in 0..phases,
/// phase by phase, on up to `runners` threads. `scratch()` makes one runner's scratch state (on
/// the thread that uses it); anything a chunk keeps from one phase to the next must live in
/// buffers indexed by chunk, since the next phase's chunk may run elsewhere.
pub fn run<S>(
    runners: usize, chunks: usize, phases: usize, scratch: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize, usize) + Sync,
) {
    if runners <= 1 || chunks <= 1 {
        let mut st = scratch();
        for p in 0..phases {
            for c in 0..chunks {
                work(&mut st, c, p);
            }
        }
        return;
    }
    let runners = runners.min(chunks);
    // claimed[c] == p: chunk c of phase p not taken yet (CAS to p + 1 takes it).
    let claimed: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
    // Chunks finished, over all phases: phase p is complete at (p + 1)·chunks.
    let done = AtomicUsize::new(0);
    let next_id = AtomicUsize::new(1);
    let poisoned = AtomicBool::new(false);
    let panic: Mutex<Option<Box<dyn std::any::Any + Send>>> = Mutex::new(None);
    let total = phases * chunks;
    let runner = |id: usize| {
        let body = || {
            let mut st = scratch();
            let first = id * chunks / runners;
            loop {
                let d = done.load(Ordering::Acquire);
                if d >= total || poisoned.load(Ordering::Acquire) {
                    return;
                }
                let p = d / chunks;
                for i in 0..chunks {
                    let c = (first + i) % chunks;
                    if claimed[c].compare_exchange(p, p + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        work(&mut st, c, p);
                        done.fetch_add(1, Ordering::AcqRel);
                    }
                }
                let end = (p + 1) * chunks;
                wait_while(|| done.load(Ordering::Acquire) < end && !poisoned.load(Ordering::Acquire));
            }
        };
        if let Err(e) = catch_unwind(AssertUnwindSafe(body)) {
            panic.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            poisoned.store(true, Ordering::Release);
        }
    };
    let runner = &runner;
    let next_id = &next_id;
    // `scope`, not `in_place_scope`: called from outside the pool (the executor thread), the
    // caller's share also runs on a pool thread, at the pool's lowered priority, and the
    // calling thread sleeps; the JS thread keeps its edge over all compute.
    rayon::scope(|s| {
        for _ in 1..runners {
            s.spawn(move |_| runner(next_id.fetch_add(1, Ordering::Relaxed)));
        }
        runner(0);
    });
    let caught = panic.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = caught {
        resume_unwind(e);
    }
}

/// Runs `work(scratch, lane, phase)` for every phase in `phases`, in order, for each of `lanes`
/// independent lanes at once, one runner per lane and no barrier between lanes (a lane never
/// reads what another writes). A lane whose runner gets no thread runs after another on its
/// thread, so the call completes on a busy or one-thread pool. Panics propagate to the caller.
pub fn lanes<S>(
    lanes: usize, phases: std::ops::Range<usize>, scratch: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize, usize) + Sync,
) {
    let one = |lane: usize| {
        let mut st = scratch();
        for p in phases.clone() {
            work(&mut st, lane, p);
        }
    };
    if lanes <= 1 {
        return (0..lanes).for_each(one);
    }
    let one = &one;
    // `scope`, as in `run`: from the executor thread, every lane runs on a pool thread.
    rayon::scope(|s| {
        for lane in 1..lanes {
            s.spawn(move |_| one(lane));
        }
        one(0);
    });
}

/// A buffer written by several runners at once, each in its own disjoint part, and read across
/// a barrier. The runners' code states which part is whose; this only carries the pointer.
#[derive(Clone, Copy)]
pub struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: access goes through the unsafe methods below, whose callers guarantee that concurrent
// writes are disjoint and that reads of another runner's writes come after a barrier.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(v: &mut [T]) -> Self {
        SharedMut { ptr: v.as_mut_ptr(), len: v.len() }
    }
    /// # Safety
    /// No other runner writes `[off, off + n)` until the next barrier.
    pub unsafe fn get(&self, off: usize, n: usize) -> &[T] {
        assert!(off + n <= self.len, "SharedMut: {off}+{n} > {}", self.len);
        std::slice::from_raw_parts(self.ptr.add(off), n)
    }
    /// A view of a buffer that the runners only read.
    ///
    /// # Safety
    /// Nothing writes through the view ([`SharedMut::get_mut`], [`SharedMut::ptr_at`]).
    pub unsafe fn from_shared(v: &[T]) -> Self {
        SharedMut { ptr: v.as_ptr() as *mut T, len: v.len() }
    }
    /// The address of element `off`, for a strided view over `[off, off + span)` whose parts
    /// the caller owns (`ops::rnn::BlocksMut::from_raw`).
    pub fn ptr_at(&self, off: usize, span: usize) -> *mut T {
        assert!(off + span <= self.len, "SharedMut: {off}+{span} > {}", self.len);
        // SAFETY: in bounds (asserted); making the pointer reads nothing.
        unsafe { self.ptr.add(off) }
    }
    /// # Safety
    /// No other runner reads or writes `[off, off + n)` until the next barrier.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut(&self, off: usize, n: usize) -> &mut [T] {
        assert!(off + n <= self.len, "SharedMut: {off}+{n} > {}", self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(off), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase, every chunk reads the whole vector written in the previous phase and writes
    /// its own part: a wrong barrier shows up as a wrong sum.
    fn relay(runners: usize, chunks: usize, phases: usize) -> Vec<u64> {
        let n = 64;
        let mut a = vec![1u64; n];
        let mut b = vec![0u64; n];
        let (sa, sb) = (SharedMut::new(&mut a), SharedMut::new(&mut b));
        run(
            runners,
            chunks,
            phases,
            || (),
            |_, c, p| {
                let (src, dst) = if p % 2 == 0 { (sa, sb) } else { (sb, sa) };
                // SAFETY: chunk c writes only its range of dst; src was written before the barrier.
                let total: u64 = unsafe { src.get(0, n) }.iter().sum();
                let (j0, j1) = (c * n / chunks, (c + 1) * n / chunks);
                for v in unsafe { dst.get_mut(j0, j1 - j0) } {
                    *v = total % 1_000_003 + p as u64;
                }
            },
        );
        if phases.is_multiple_of(2) {
            a
        } else {
            b
        }
    }

    #[test]
    fn every_runner_count_gives_the_same_result() {
        let want = relay(1, 8, 50);
        for runners in [2, 3, 5, 8] {
            assert_eq!(relay(runners, 8, 50), want, "runners {runners}");
        }
    }

    #[test]
    fn more_runners_than_pool_threads_still_completes() {
        let want = relay(1, 6, 20);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| relay(4, 6, 20)), want);
        // The pool's other thread is busy for the whole run: the caller, on a pool thread, takes
        // every chunk itself.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.spawn(|| std::thread::sleep(Duration::from_millis(400)));
        std::thread::sleep(Duration::from_millis(20));
        let t0 = std::time::Instant::now();
        let got = pool.install(|| relay(3, 6, 20));
        assert_eq!(got, want);
        assert!(t0.elapsed() < Duration::from_millis(300), "did not wait for the busy thread");
    }

    /// Each lane relays its own part through every phase; the lanes' parts never mix, and every
    /// lane runs every phase once, in order, with one pool thread too.
    #[test]
    fn lanes_run_every_phase_in_order_on_any_pool() {
        let go = |lanes_n: usize| {
            let mut log = vec![0u64; lanes_n];
            let sh = SharedMut::new(&mut log);
            lanes(
                lanes_n,
                3..40,
                || 0u64,
                |calls, l, p| {
                    *calls += 1;
                    // SAFETY: lane l alone touches element l.
                    let v = unsafe { sh.get_mut(l, 1) };
                    assert_eq!(*calls as usize, p - 2, "phases in order on one scratch");
                    v[0] = v[0] * 31 + (p * (l + 1)) as u64;
                },
            );
            log
        };
        let want: Vec<u64> = (0..4).map(|l| (3..40).fold(0u64, |a, p| a * 31 + (p * (l + 1)) as u64)).collect();
        assert_eq!(go(4), want);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| go(4)), want);
        assert_eq!(go(1), want[..1]);
    }

    #[test]
    fn a_panic_in_one_chunk_reaches_the_caller() {
        let r = catch_unwind(|| {
            run(
                3,
                3,
                10,
                || (),
                |_, c, p| {
                    if c == 2 && p == 4 {
                        panic!("chunk 2 failed");
                    }
                },
            )
        });
        let e = r.expect_err("the panic propagates");
        assert_eq!(e.downcast_ref::<&str>(), Some(&"chunk 2 failed"));
    }
}
