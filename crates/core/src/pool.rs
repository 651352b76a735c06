//! A pool of large host buffers. Every tensor storage gives its buffer back when it is
//! dropped ([`release`], from `CpuStorage`'s drop); ops that write every element of an output
//! take one of a similar size instead of a fresh allocation ([`take`]), and so does a copy
//! handed out of the engine ([`copy_of`]: the binding's `data()` gives it to V8 as an external
//! typed array, released when V8 collects it).
//!
//! Why: the step buffers of a training call (a recurrent layer's saved gates, its gate
//! gradients, outputs) are megabytes each, freed and made again on every call. Fresh, they are
//! zero-filled (a memset of ~20 MB per LSTM training step at B=32 H=256), or, when the
//! allocator returns them to the kernel, new pages whose faults on a virtual machine cost more
//! than the copy they hold (a 1.6 MB read: ~320 faults, ~1.5 ms). A reused buffer has both done.
//!
//! Buffers from the pool hold stale values (always initialised: they were tensors): only
//! callers that overwrite every element use [`take`]. Small buffers (under 64 KiB) are left to
//! the allocator's free lists, which neither fault nor clear.

use std::sync::Mutex;

/// Buffers below this size are left to the allocator.
const MIN_POOLED_BYTES: usize = 64 << 10;
/// What the pool keeps at most, over all its buffers (the oldest go first), and per buffer.
const MAX_POOLED_BYTES: usize = 256 << 20;
const MAX_POOLED_BUFFERS: usize = 32;

/// A released buffer, by element type (all three are 4- or 8-byte values).
pub enum Spare {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
}

impl Spare {
    fn bytes(&self) -> usize {
        match self {
            Spare::F32(v) => 4 * v.capacity(),
            Spare::F64(v) => 8 * v.capacity(),
            Spare::I32(v) => 4 * v.capacity(),
        }
    }
}

/// Element types a read can be made of, with their place in [`Spare`].
pub trait Elem: Copy + Send + 'static {
    /// The buffer, if `s` holds this type with room for `n` values and not more than 2n (a
    /// small read does not pin a large buffer).
    fn fitting(s: &mut Spare, n: usize) -> Option<&mut Vec<Self>>;
    fn spare(v: Vec<Self>) -> Spare;
    /// What [`poison_takes`] fills taken buffers with: NaN, or the most negative int32.
    const POISON: Self;
}

macro_rules! elem {
    ($t:ty, $variant:ident, $poison:expr) => {
        impl Elem for $t {
            const POISON: Self = $poison;
            fn fitting(s: &mut Spare, n: usize) -> Option<&mut Vec<Self>> {
                match s {
                    Spare::$variant(v) if v.capacity() >= n && v.capacity() <= 2 * n => Some(v),
                    _ => None,
                }
            }
            fn spare(v: Vec<Self>) -> Spare {
                Spare::$variant(v)
            }
        }
    };
}
elem!(f32, F32, f32::NAN);
elem!(f64, F64, f64::NAN);
elem!(i32, I32, i32::MIN);

static POISON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every [`take`] return its buffer filled with NaN (int32: its minimum), whatever its
/// size, so that a test shows any element an op fails to write. Process-wide; for tests.
#[doc(hidden)]
pub fn poison_takes(on: bool) {
    POISON.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The buffers kept, newest last.
pub struct Pool {
    spares: Mutex<Vec<Spare>>,
}

/// The process's pool, which every storage's drop feeds.
static POOL: Pool = Pool::new();

impl Pool {
    pub const fn new() -> Pool {
        Pool { spares: Mutex::new(Vec::new()) }
    }

    /// A buffer of `n` values with stale contents, from the pool when one fits; for outputs
    /// whose every element the caller writes. Without a fitting buffer, a zeroed new one.
    pub fn take<T: Elem + Default>(&self, n: usize) -> Vec<T> {
        if n * std::mem::size_of::<T>() >= MIN_POOLED_BYTES {
            let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = spares.iter_mut().position(|s| T::fitting(s, n).is_some()) {
                let mut spare = spares.swap_remove(k);
                drop(spares);
                let mut v = std::mem::take(T::fitting(&mut spare, n).expect("checked above"));
                // Shrinking keeps the values; growing (within the capacity) adds defaults.
                v.resize(n, T::default());
                return v;
            }
        }
        vec![T::default(); n]
    }

    /// Keeps `v` for a later [`Pool::take`] (from any thread), unless it is small or large.
    pub fn release<T: Elem>(&self, v: Vec<T>) {
        let spare = T::spare(v);
        if spare.bytes() < MIN_POOLED_BYTES || spare.bytes() > MAX_POOLED_BYTES / 2 {
            return;
        }
        let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        spares.push(spare);
        while spares.len() > MAX_POOLED_BUFFERS || spares.iter().map(Spare::bytes).sum::<usize>() > MAX_POOLED_BYTES {
            spares.remove(0);
        }
    }

    /// Buffers and bytes kept now.
    pub fn kept(&self) -> (usize, usize) {
        let spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        (spares.len(), spares.iter().map(Spare::bytes).sum())
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

/// [`Pool::take`] on the process's pool.
pub fn take<T: Elem + Default>(n: usize) -> Vec<T> {
    let mut v = POOL.take(n);
    if POISON.load(std::sync::atomic::Ordering::Relaxed) {
        v.fill(T::POISON);
    }
    v
}

/// `n` zeros, in a pooled buffer when one fits (a memset, no page faults).
pub fn zeros<T: Elem + Default>(n: usize) -> Vec<T> {
    let mut v = take(n);
    v.fill(T::default());
    v
}

/// A copy of `src`, in a pooled buffer when one fits.
pub fn copy_of<T: Elem + Default>(src: &[T]) -> Vec<T> {
    if std::mem::size_of_val(src) >= MIN_POOLED_BYTES {
        let mut v = take(src.len());
        v.copy_from_slice(src);
        return v;
    }
    src.to_vec()
}

/// [`Pool::release`] on the process's pool.
pub fn release<T: Elem>(v: Vec<T>) {
    POOL.release(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_buffer_serves_the_next_take_of_a_similar_size_and_type_only() {
        let pool = Pool::new();
        let a: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let ptr = a.as_ptr();
        pool.release(a);
        // Same type, a similar size: the same memory, stale values kept, the length asked for.
        let b: Vec<f32> = pool.take(90_000);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 90_000));
        assert_eq!(b[89_999], 89_999.0, "stale values are kept (the caller overwrites them)");
        pool.release(b);
        // Much smaller (it would pin a large buffer), or another type: a new zeroed buffer.
        let c: Vec<f32> = pool.take(20_000);
        assert!(c.as_ptr() != ptr && c.iter().all(|&v| v == 0.0));
        let d: Vec<i32> = pool.take(100_000);
        assert!(d.as_ptr() as *const f32 != ptr && d.iter().all(|&v| v == 0));
        // Larger than the buffer's capacity: new.
        let e: Vec<f32> = pool.take(100_001);
        assert!(e.as_ptr() != ptr);
        assert_eq!(pool.kept().0, 1, "the f32 buffer is still there");
    }

    #[test]
    fn small_buffers_are_not_kept_and_the_pool_is_bounded() {
        let pool = Pool::new();
        pool.release(vec![0f32; 1000]);
        assert_eq!(pool.kept(), (0, 0));
        for _ in 0..MAX_POOLED_BUFFERS + 5 {
            pool.release(vec![0f64; 1 << 16]);
        }
        let (n, bytes) = pool.kept();
        assert_eq!(n, MAX_POOLED_BUFFERS);
        assert!(bytes <= MAX_POOLED_BYTES);
        // A buffer over half the cap is never kept.
        let huge: Vec<f32> = Vec::with_capacity(MAX_POOLED_BYTES / 4 + 1);
        pool.release(huge);
        assert_eq!(pool.kept().0, MAX_POOLED_BUFFERS);
    }

    #[test]
    fn zeros_and_copies_from_the_process_pool_hold_exactly_their_values() {
        for round in 0..3 {
            let src: Vec<f32> = (0..70_000).map(|i| (i * (round + 1)) as f32).collect();
            let copy = copy_of(&src);
            assert_eq!(copy, src);
            release(copy);
            let z: Vec<f32> = zeros(65_000);
            assert!(z.len() == 65_000 && z.iter().all(|&v| v == 0.0));
            release(z);
        }
    }
}
