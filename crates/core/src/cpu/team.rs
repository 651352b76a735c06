//! A persistent team for loops whose steps depend on each other (the recurrent time loop): one
//! parallel region for the whole loop, `slots` fixed shares of every phase, and one barrier
//! between phases, instead of a fork-join per step.
//!
//! Slots, not threads, are the unit: each slot is claimed once, at the start, by a runner (the
//! thread that called [`run`], or a helper task on the rayon pool), which then runs that slot's
//! share of every phase. The caller never waits on a helper that has not started: if a slot is
//! still unclaimed after [`CLAIM_WAIT`] (the pool is busy, or has fewer threads than slots), the
//! caller claims it and runs it itself. So the team always completes, whatever the pool does.
//! Barrier waits spin briefly, then yield, then sleep, so that an oversubscribed machine makes
//! progress. A panic in any share stops every runner at its next barrier and is re-raised here.
//!
//! Which thread runs a slot does not change what the slot computes, so results do not depend on
//! scheduling.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the caller waits for helpers to claim their slots before it runs them itself.
pub const CLAIM_WAIT: Duration = Duration::from_millis(2);

struct Shared {
    slots: usize,
    /// Next unclaimed slot.
    next: AtomicUsize,
    /// Arrivals at the current barrier, in slots.
    arrived: AtomicUsize,
    /// Completed barriers.
    generation: AtomicUsize,
    poisoned: AtomicBool,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl Shared {
    /// Adds `n` arrivals; the last one opens the barrier. Returns the generation waited on.
    fn arrive(&self, gen: usize, n: usize) {
        if self.arrived.fetch_add(n, Ordering::AcqRel) + n == self.slots {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.store(gen + 1, Ordering::Release);
        }
    }
}

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
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Runs `phase(state, slot, p)` for every slot and every phase p in 0..phases, all slots of a
/// phase finishing before any slot starts the next. `init(slot)` makes a slot's state on the
/// thread that runs it (packed weights, scratch). `slots == 1` runs everything on this thread.
pub fn run<S>(
    slots: usize,
    phases: usize,
    init: impl Fn(usize) -> S + Sync,
    phase: impl Fn(&mut S, usize, usize) + Sync,
) {
    if slots <= 1 {
        let mut st = init(0);
        for p in 0..phases {
            phase(&mut st, 0, p);
        }
        return;
    }
    let sh = Shared {
        slots,
        next: AtomicUsize::new(1),
        arrived: AtomicUsize::new(0),
        generation: AtomicUsize::new(0),
        poisoned: AtomicBool::new(false),
        panic: Mutex::new(None),
    };
    let start = Instant::now();
    let (sh, init, phase) = (&sh, &init, &phase);
    // One runner: its claimed slots, every phase, a barrier after each. The caller (`caller`)
    // also claims what no helper took in time.
    let runner = |first: usize, caller: bool| {
        let body = || {
            let mut mine = vec![(first, init(first))];
            for p in 0..phases {
                for (k, st) in mine.iter_mut() {
                    phase(st, *k, p);
                }
                let gen = sh.generation.load(Ordering::Acquire);
                sh.arrive(gen, mine.len());
                wait_while(|| {
                    if sh.poisoned.load(Ordering::Acquire) {
                        return false;
                    }
                    if sh.generation.load(Ordering::Acquire) != gen {
                        return false;
                    }
                    // Unclaimed slots can only exist in phase 0: its barrier cannot open without them.
                    if caller && sh.next.load(Ordering::Acquire) < slots && start.elapsed() > CLAIM_WAIT {
                        let mut late = 0;
                        loop {
                            let k = sh.next.fetch_add(1, Ordering::AcqRel);
                            if k >= slots {
                                break;
                            }
                            let mut st = init(k);
                            phase(&mut st, k, p);
                            mine.push((k, st));
                            late += 1;
                        }
                        if late > 0 {
                            sh.arrive(gen, late);
                        }
                    }
                    true
                });
                if sh.poisoned.load(Ordering::Acquire) {
                    return;
                }
            }
        };
        if let Err(e) = catch_unwind(AssertUnwindSafe(body)) {
            sh.panic.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            sh.poisoned.store(true, Ordering::Release);
        }
    };
    let runner = &runner;
    rayon::in_place_scope(|s| {
        for _ in 1..slots {
            s.spawn(move |_| {
                let k = sh.next.fetch_add(1, Ordering::AcqRel);
                if k < slots {
                    runner(k, false);
                }
            });
        }
        runner(0, true);
    });
    let caught = sh.panic.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = caught {
        resume_unwind(e);
    }
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

    /// Each phase, every slot reads the whole vector written in the previous phase and writes
    /// its own part: a wrong barrier shows up as a wrong sum.
    fn relay(slots: usize, phases: usize) -> Vec<u64> {
        let n = 64;
        let mut a = vec![1u64; n];
        let mut b = vec![0u64; n];
        let (sa, sb) = (SharedMut::new(&mut a), SharedMut::new(&mut b));
        let per = n.div_ceil(slots);
        run(
            slots,
            phases,
            |_| (),
            |_, k, p| {
                let (src, dst) = if p % 2 == 0 { (sa, sb) } else { (sb, sa) };
                // SAFETY: slot k writes only its range of dst; src was written before the barrier.
                let total: u64 = unsafe { src.get(0, n) }.iter().sum();
                let (j0, j1) = ((k * per).min(n), ((k + 1) * per).min(n));
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
    fn every_slot_count_gives_the_same_result() {
        let want = relay(1, 50);
        for slots in [2, 3, 5, 8] {
            assert_eq!(relay(slots, 50), want, "slots {slots}");
        }
    }

    #[test]
    fn more_slots_than_pool_threads_still_completes() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let want = relay(1, 20);
        assert_eq!(pool.install(|| relay(4, 20)), want);
        // The pool's other thread is busy for the whole run: the caller, on a pool thread,
        // runs every slot itself after CLAIM_WAIT.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.spawn(|| std::thread::sleep(Duration::from_millis(400)));
        std::thread::sleep(Duration::from_millis(20));
        let got = pool.install(|| relay(3, 20));
        assert_eq!(got, want);
    }

    #[test]
    fn a_panic_in_one_slot_reaches_the_caller() {
        let r = catch_unwind(|| {
            run(
                3,
                10,
                |_| (),
                |_, k, p| {
                    if k == 2 && p == 4 {
                        panic!("slot 2 failed");
                    }
                },
            )
        });
        let e = r.expect_err("the panic propagates");
        assert_eq!(e.downcast_ref::<&str>(), Some(&"slot 2 failed"));
    }
}
