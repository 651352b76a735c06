//! When a CPU loop runs on the rayon pool, and the one way every op runs such a loop: a
//! [`Split`] of its buffers (rows or elements, zipped in pairs) walked by [`for_each`] or
//! [`map_collect`], in order on the calling thread below a threshold and on the pool above it.
//!
//! Only independent outputs are ever split: each item writes its own rows and nothing else, and
//! reductions split into fixed-size partials whose order does not depend on the threads. So a
//! result never depends on the split or the thread count: CPU runs stay bit-identical for a seed.
//!
//! The thresholds: below them the fork-join (waking the pool, stealing, joining) costs more than
//! it saves. One per kind of work, so that an op picks by what its loop does, not by a number.

use rayon::prelude::*;

/// Elementwise work of a few flops per element (maps, copies and gathers, reductions, losses,
/// softmax, optimizer updates), counted in elements.
pub const PAR_MIN_ELEMS: usize = 1 << 15;

/// Loops whose tasks are whole rows of fused math or whole small GEMMs: the gate values of one
/// recurrent step (counted as B·G·H), and a batch of small GEMMs run one per task (counted in
/// multiply-adds). For the gate loop it was measured on the 2-core development machine with
/// `examples/lstm_step.rs`: below it the fork-join, paid at every step, cost more than it saved.
pub const PAR_MIN_FUSED: usize = 1 << 17;

/// Multiply-adds of one GEMM, which the `gemm` crate splits itself (its packing makes a split
/// dearer than an elementwise one).
pub const PAR_MIN_GEMM_FLOPS: usize = 1 << 20;

/// Buffers cut into the same number of items, walkable in order or on the pool.
pub trait Split: Sized + Send {
    type Item: Send;
    /// How many items (for a pair, the shorter side's).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The items in order, on this thread.
    fn seq(self) -> impl Iterator<Item = Self::Item>;
    /// The same items on the pool.
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item>;
}

/// `data` in rows of `width` (the last may be shorter), read-only.
pub struct Rows<'a, T>(&'a [T], usize);
/// `data` in rows of `width` (the last may be shorter), each row written by one task.
pub struct RowsMut<'a, T>(&'a mut [T], usize);
/// The elements of `data`, read-only.
pub struct Items<'a, T>(&'a [T]);
/// The elements of `data`, each written by one task.
pub struct ItemsMut<'a, T>(&'a mut [T]);
/// A split's items with their index: `(i, item)`.
pub struct Indexed<S>(S);

pub fn rows<T: Sync>(data: &[T], width: usize) -> Rows<'_, T> {
    Rows(data, width)
}
pub fn rows_mut<T: Send>(data: &mut [T], width: usize) -> RowsMut<'_, T> {
    RowsMut(data, width)
}
pub fn items<T: Sync>(data: &[T]) -> Items<'_, T> {
    Items(data)
}
pub fn items_mut<T: Send>(data: &mut [T]) -> ItemsMut<'_, T> {
    ItemsMut(data)
}
pub fn indexed<S: Split>(split: S) -> Indexed<S> {
    Indexed(split)
}

impl<'a, T: Sync> Split for Rows<'a, T> {
    type Item = &'a [T];
    fn len(&self) -> usize {
        self.0.len().div_ceil(self.1)
    }
    fn seq(self) -> impl Iterator<Item = Self::Item> {
        self.0.chunks(self.1)
    }
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item> {
        self.0.par_chunks(self.1)
    }
}

impl<'a, T: Send> Split for RowsMut<'a, T> {
    type Item = &'a mut [T];
    fn len(&self) -> usize {
        self.0.len().div_ceil(self.1)
    }
    fn seq(self) -> impl Iterator<Item = Self::Item> {
        self.0.chunks_mut(self.1)
    }
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item> {
        self.0.par_chunks_mut(self.1)
    }
}

impl<'a, T: Sync> Split for Items<'a, T> {
    type Item = &'a T;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn seq(self) -> impl Iterator<Item = Self::Item> {
        self.0.iter()
    }
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item> {
        self.0.par_iter()
    }
}

impl<'a, T: Send> Split for ItemsMut<'a, T> {
    type Item = &'a mut T;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn seq(self) -> impl Iterator<Item = Self::Item> {
        self.0.iter_mut()
    }
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item> {
        self.0.par_iter_mut()
    }
}

impl<S: Split> Split for Indexed<S> {
    type Item = (usize, S::Item);
    fn len(&self) -> usize {
        self.0.len()
    }
    fn seq(self) -> impl Iterator<Item = Self::Item> {
        self.0.seq().enumerate()
    }
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item> {
        self.0.par().enumerate()
    }
}

/// Two splits zipped item by item (nest pairs for more).
impl<A: Split, B: Split> Split for (A, B) {
    type Item = (A::Item, B::Item);
    fn len(&self) -> usize {
        self.0.len().min(self.1.len())
    }
    fn seq(self) -> impl Iterator<Item = Self::Item> {
        self.0.seq().zip(self.1.seq())
    }
    fn par(self) -> impl IndexedParallelIterator<Item = Self::Item> {
        self.0.par().zip(self.1.par())
    }
}

/// Whether a loop of `work` units over `items` tasks goes to the pool: only when there is enough
/// work for its kind (`min`, one of the thresholds above) and more than one task to share.
#[inline]
fn parallel(work: usize, min: usize, items: usize) -> bool {
    work >= min && items > 1
}

/// `f(item)` for every item of `split`; each call may write only its own item.
pub fn for_each<S: Split>(work: usize, min: usize, split: S, f: impl Fn(S::Item) + Sync + Send) {
    if parallel(work, min, split.len()) {
        split.par().for_each(f)
    } else {
        split.seq().for_each(f)
    }
}

/// `f(item)` for every item of `split`, collected in item order.
pub fn map_collect<S: Split, R: Send>(
    work: usize, min: usize, split: S, f: impl Fn(S::Item) -> R + Sync + Send,
) -> Vec<R> {
    if parallel(work, min, split.len()) {
        split.par().map(f).collect()
    } else {
        split.seq().map(f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_thread_give_the_same_items_in_the_same_order() {
        let x: Vec<f64> = (0..10_007).map(|i| (i as f64 * 0.37).sin()).collect();
        let idx: Vec<i32> = (0..10_007 / 7 + 1).map(|i| i * 3).collect();
        for min in [0, usize::MAX] {
            // Rows zipped with items, indexed; a short last row.
            let mut out = vec![0.0; x.len()];
            for_each(
                x.len(),
                min,
                indexed((rows_mut(&mut out, 7), (rows(&x, 7), items(&idx)))),
                |(i, (o, (r, &k)))| {
                    for (o, v) in o.iter_mut().zip(r) {
                        *o = v * k as f64 + i as f64;
                    }
                },
            );
            let want: Vec<f64> = x.iter().enumerate().map(|(j, v)| v * idx[j / 7] as f64 + (j / 7) as f64).collect();
            assert_eq!(out, want, "min {min}");
            let sums = map_collect(x.len(), min, rows(&x, 1000), |r: &[f64]| r.iter().sum::<f64>());
            assert_eq!(sums.len(), 11);
            assert_eq!(sums[10], x[10_000..].iter().sum::<f64>());
        }
        // One task never goes to the pool, whatever the work.
        assert!(!parallel(usize::MAX, 0, 1));
        assert!(parallel(PAR_MIN_ELEMS, PAR_MIN_ELEMS, 2));
        assert!(!parallel(PAR_MIN_ELEMS - 1, PAR_MIN_ELEMS, 2));
    }
}
