//! Reductions: `sum` and `mean` over any set of axes (with or without keepdim), and the
//! `sum_all`/`mean_all` shorthands that return 0-d tensors. Backward broadcasts the gradient.
//!
//! Results are bit-deterministic: every output element is accumulated in one fixed order, and
//! the full reduction sums fixed-size chunks whose partial sums are added in order, whatever
//! the number of threads.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, indexed, items_mut, rows, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch;
use crate::ops::elementwise::{broadcast_to, check_float, dispatch_float, scale};
use crate::ops::shape::reshape;
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Elements per partial sum in [`det_sum`]; fixed so that results do not depend on threads.
const SUM_CHUNK: usize = 1 << 12;

/// Deterministic sum of a slice: fixed-size chunks summed (in parallel when large), then the
/// partial sums added in order.
pub(crate) fn det_sum<T: Float>(x: &[T]) -> T {
    let seq = |c: &[T]| {
        let mut acc = T::ZERO;
        for &v in c {
            acc += v;
        }
        acc
    };
    if x.len() <= SUM_CHUNK {
        return seq(x);
    }
    let partials: Vec<T> = par::map_collect(x.len(), PAR_MIN_ELEMS, rows(x, SUM_CHUNK), seq);
    seq(&partials)
}

/// The input shape with adjacent dimensions of the same kind (kept or reduced) merged.
/// Returns (sizes, reduced flags); size-1 dimensions are dropped.
fn coalesce(shape: &[usize], reduced: &[bool]) -> (Vec<usize>, Vec<bool>) {
    let mut sizes: Vec<usize> = Vec::new();
    let mut flags: Vec<bool> = Vec::new();
    for (&d, &r) in shape.iter().zip(reduced) {
        if d == 1 {
            continue;
        }
        if flags.last() == Some(&r) {
            *sizes.last_mut().expect("non-empty") *= d;
        } else {
            sizes.push(d);
            flags.push(r);
        }
    }
    (sizes, flags)
}

struct Sum {
    in_shape: Vec<usize>,
    /// Which input axes are reduced.
    reduced: Vec<bool>,
    /// The output shape with the reduced axes kept as 1 (what the gradient is broadcast from).
    keep_shape: Vec<usize>,
    out_shape: Vec<usize>,
    /// 1 for sum, 1/count for mean.
    factor: f64,
    name: &'static str,
}

fn sum_cpu<T: Float>(op: &Sum, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let n_out: usize = op.out_shape.iter().product();
    let factor = T::from_f64(op.factor);
    let (sizes, flags) = coalesce(&op.in_shape, &op.reduced);
    let mut out = vec![T::ZERO; n_out];
    if !flags.iter().any(|&r| r) {
        // Nothing (of size > 1) is reduced: a copy.
        out.copy_from_slice(x);
    } else if flags.len() == 1 {
        out[0] = det_sum(x);
    } else {
        // Strides of the coalesced input dims; the reduced ones iterate inside each output.
        let nd = sizes.len();
        let mut strides = vec![1usize; nd];
        for d in (0..nd - 1).rev() {
            strides[d] = strides[d + 1] * sizes[d + 1];
        }
        let kept: Vec<usize> = (0..nd).filter(|&d| !flags[d]).collect();
        let red: Vec<usize> = (0..nd).filter(|&d| flags[d]).collect();
        // Offset of input element for kept multi-index decoded from a flat output position.
        let kept_offset = |mut o: usize| -> usize {
            let mut off = 0;
            for &d in kept.iter().rev() {
                off += (o % sizes[d]) * strides[d];
                o /= sizes[d];
            }
            off
        };
        if flags[nd - 1] {
            // Innermost run is reduced and contiguous: each output sums rows of length `inner`,
            // visiting the other reduced dims with an odometer.
            let inner = sizes[nd - 1];
            let outer_red = &red[..red.len() - 1];
            let n_rows: usize = outer_red.iter().map(|&d| sizes[d]).product();
            let one = |(o, slot): (usize, &mut T)| {
                let base = kept_offset(o);
                let mut idx = vec![0usize; outer_red.len()];
                let mut acc = T::ZERO;
                for _ in 0..n_rows {
                    let off = base + outer_red.iter().zip(&idx).map(|(&d, &i)| i * strides[d]).sum::<usize>();
                    for &v in &x[off..off + inner] {
                        acc += v;
                    }
                    for j in (0..idx.len()).rev() {
                        idx[j] += 1;
                        if idx[j] < sizes[outer_red[j]] {
                            break;
                        }
                        idx[j] = 0;
                    }
                }
                *slot = acc;
            };
            par::for_each(x.len(), PAR_MIN_ELEMS, indexed(items_mut(&mut out)), one);
        } else {
            // Innermost run is kept: outputs come in contiguous rows of length `inner`, each the
            // in-order sum of input rows. Work splits over (output row, column block).
            let inner = sizes[nd - 1];
            let n_rows: usize = red.iter().map(|&d| sizes[d]).product();
            // Few output rows (column sums): split rows into column blocks for parallelism.
            let col_block = if n_out / inner >= 8 { inner } else { inner.div_ceil(8).max(256).min(inner) };
            let blocks_per_row = inner.div_ceil(col_block);
            let mut pieces: Vec<&mut [T]> = Vec::with_capacity(n_out / inner * blocks_per_row);
            for row in out.chunks_mut(inner) {
                pieces.extend(row.chunks_mut(col_block));
            }
            let run = |(pi, chunk): (usize, &mut &mut [T])| {
                let (row, blk) = (pi / blocks_per_row, pi % blocks_per_row);
                let base = kept_offset(row * inner) + blk * col_block;
                let mut idx = vec![0usize; red.len()];
                let len = chunk.len();
                for _ in 0..n_rows {
                    let off = base + red.iter().zip(&idx).map(|(&d, &i)| i * strides[d]).sum::<usize>();
                    for (a, &v) in chunk.iter_mut().zip(&x[off..off + len]) {
                        *a += v;
                    }
                    for j in (0..idx.len()).rev() {
                        idx[j] += 1;
                        if idx[j] < sizes[red[j]] {
                            break;
                        }
                        idx[j] = 0;
                    }
                }
            };
            par::for_each(x.len(), PAR_MIN_ELEMS, indexed(items_mut(&mut pieces)), run);
        }
    }
    if op.factor != 1.0 {
        for v in &mut out {
            *v *= factor;
        }
    }
    Ok(vec![T::wrap(out)])
}

impl Op for Sum {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name, x[0].dtype(), sum_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        launch::float_only(self.name, x[0].dtype())?;
        Ok(vec![launch::reduce_sum(be, self.name, x[0], &self.in_shape, &self.reduced, self.factor)?])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let g =
            if g.shape() == self.keep_shape.as_slice() { g.clone() } else { reshape(g, &to_isize(&self.keep_shape))? };
        let mut gx = broadcast_to(&g, &self.in_shape)?;
        if self.factor != 1.0 {
            gx = scale(&gx, self.factor)?;
        }
        Ok(vec![Some(gx)])
    }
}

fn to_isize(s: &[usize]) -> Vec<isize> {
    s.iter().map(|&d| d as isize).collect()
}

fn reduce(name: &'static str, x: &Tensor, axes: &[usize], keepdim: bool, is_mean: bool) -> Result<Tensor> {
    check_float(name, x)?;
    let shape = x.shape();
    let nd = shape.len();
    let mut reduced = vec![axes.is_empty(); nd];
    for &a in axes {
        if a >= nd {
            return Err(Error::shape(
                name,
                format!("axes in [0, {nd}) for a tensor of shape {}", fmt_shape(shape)),
                format!("axis {a}"),
            ));
        }
        if reduced[a] {
            return Err(Error::value(name, format!("axis {a} appears more than once in the axes {axes:?}")));
        }
        reduced[a] = true;
    }
    let keep_shape: Vec<usize> = shape.iter().zip(&reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
    let out_shape: Vec<usize> = if keepdim {
        keep_shape.clone()
    } else {
        shape.iter().zip(&reduced).filter(|(_, &r)| !r).map(|(&d, _)| d).collect()
    };
    let count: usize = shape.iter().zip(&reduced).filter(|(_, &r)| r).map(|(&d, _)| d).product();
    let factor = if is_mean { 1.0 / count as f64 } else { 1.0 };
    let op = Sum { in_shape: shape.to_vec(), reduced, keep_shape, out_shape: out_shape.clone(), factor, name };
    Ok(apply(Arc::new(op), &[x], vec![(out_shape, x.dtype())])?.remove(0))
}

/// Sum over `axes` (all axes when empty); `keepdim` keeps them as size 1.
pub fn sum(x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce("sum", x, axes, keepdim, false)
}

/// Mean over `axes` (all axes when empty); `keepdim` keeps them as size 1.
pub fn mean(x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce("mean", x, axes, keepdim, true)
}

/// Sum of every element, as a 0-d tensor (shape `[]`).
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    reduce("sum", x, &[], false, false)
}

/// Mean of every element, as a 0-d tensor (shape `[]`).
pub fn mean_all(x: &Tensor) -> Result<Tensor> {
    reduce("mean", x, &[], false, true)
}
