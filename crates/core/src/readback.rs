//! Buffers for copies of tensor data handed out of the engine (the binding's `data()` and
//! `dataSync()` give them to V8 as external typed arrays): a small pool that takes a buffer
//! back when its reader is done with it ([`release`]) and serves the next copy of a similar
//! size with it ([`copy_of`]).
//!
//! Why a pool: a read of a few megabytes is otherwise a fresh allocation each time, which the
//! allocator serves with new pages from the kernel, and on a virtual machine faulting those in
//! cost more than the copy itself (a [32, 50, 256] float32 output, 1.6 MB: ~320 page faults and
//! ~1.5 ms per read, against a 6 ms forward pass). Reused buffers have their pages already.

use std::sync::Mutex;

/// Reads below this size come from the allocator's free lists, which fault no new pages.
const MIN_POOLED_BYTES: usize = 64 << 10;
/// What the pool keeps at most, over all its buffers.
const MAX_POOLED_BYTES: usize = 64 << 20;
const MAX_POOLED_BUFFERS: usize = 16;

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

static POOL: Mutex<Vec<Spare>> = Mutex::new(Vec::new());

/// Element types a read can be made of, with their place in [`Spare`].
pub trait Elem: Copy + Send + 'static {
    /// The buffer, if `s` holds this type with room for `n` values and not more than 2n (a
    /// small read does not pin a large buffer).
    fn fitting(s: &mut Spare, n: usize) -> Option<&mut Vec<Self>>;
    fn spare(v: Vec<Self>) -> Spare;
}

macro_rules! elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
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
elem!(f32, F32);
elem!(f64, F64);
elem!(i32, I32);

/// A copy of `src`, in a pooled buffer when one fits.
pub fn copy_of<T: Elem>(src: &[T]) -> Vec<T> {
    if std::mem::size_of_val(src) >= MIN_POOLED_BYTES {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let found = pool.iter_mut().position(|s| T::fitting(s, src.len()).is_some());
        if let Some(k) = found {
            let mut spare = pool.swap_remove(k);
            drop(pool);
            let v = T::fitting(&mut spare, src.len()).expect("checked above");
            let mut v = std::mem::take(v);
            v.clear();
            v.extend_from_slice(src);
            return v;
        }
    }
    src.to_vec()
}

/// Gives a buffer of [`copy_of`] back once nothing reads it any more (from any thread).
pub fn release<T: Elem>(v: Vec<T>) {
    let spare = T::spare(v);
    if spare.bytes() < MIN_POOLED_BYTES {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    pool.push(spare);
    // The oldest go first.
    while pool.len() > MAX_POOLED_BUFFERS || pool.iter().map(Spare::bytes).sum::<usize>() > MAX_POOLED_BYTES {
        pool.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_buffer_serves_the_next_read_of_a_similar_size_only() {
        let big: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let a = copy_of(&big);
        assert_eq!(a, big);
        let ptr = a.as_ptr();
        release(a);
        // Same type, same size: the same memory, with the new contents.
        let other: Vec<f32> = (0..100_000).map(|i| -(i as f32)).collect();
        let b = copy_of(&other);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b, other);
        release(b);
        // Much smaller, or another type: not that buffer.
        let small: Vec<f32> = vec![1.0; 20_000];
        let c = copy_of(&small);
        assert_ne!(c.as_ptr(), ptr);
        assert_eq!(c, small);
        let ints: Vec<i32> = (0..100_000).collect();
        let d = copy_of(&ints);
        assert_eq!(d, ints);
        assert_ne!(d.as_ptr() as *const f32, ptr);
    }
}
