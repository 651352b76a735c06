//! `softmax` and `log_softmax` along any axis, numerically stable (the maximum is subtracted
//! before exponentiating), each with a fused backward that reads the saved output.
//!
//! The tensor is seen as `[outer, n, inner]` with `n` the softmax axis. Each outer block is
//! independent (split across threads when large); within a block the `inner` columns are
//! processed together so that the loops run over contiguous memory.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, indexed, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, flag, int, kernels as k};
use crate::ops::elementwise::{check_float, dispatch_float};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Softmax,
    LogSoftmax,
}

#[derive(Clone, Copy)]
struct Layout {
    n: usize,
    inner: usize,
}

fn layout(shape: &[usize], axis: usize) -> Layout {
    Layout { n: shape[axis], inner: shape[axis + 1..].iter().product() }
}

/// Softmax (or log-softmax) of one `[n, inner]` block `x` into `y`.
fn block_forward<T: Float>(kind: Kind, l: Layout, x: &[T], y: &mut [T]) {
    let (n, inner) = (l.n, l.inner);
    if inner == 1 {
        let m = x.iter().fold(x[0], |a, &b| a.max(b));
        let mut s = T::ZERO;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v - m).exp();
            s += *o;
        }
        match kind {
            Kind::Softmax => {
                let r = T::ONE / s;
                y.iter_mut().for_each(|o| *o *= r);
            }
            Kind::LogSoftmax => {
                // (x − max) − ln Σ: x − max is exact near the maximum, unlike x − logsumexp.
                let ls = s.ln();
                y.iter_mut().zip(x).for_each(|(o, &v)| *o = (v - m) - ls);
            }
        }
        return;
    }
    let mut m = x[..inner].to_vec();
    for j in 1..n {
        for (a, &v) in m.iter_mut().zip(&x[j * inner..(j + 1) * inner]) {
            *a = a.max(v);
        }
    }
    let mut s = vec![T::ZERO; inner];
    for j in 0..n {
        let r = j * inner..(j + 1) * inner;
        for ((o, &v), (a, &mx)) in y[r.clone()].iter_mut().zip(&x[r]).zip(s.iter_mut().zip(&m)) {
            *o = (v - mx).exp();
            *a += *o;
        }
    }
    match kind {
        Kind::Softmax => {
            s.iter_mut().for_each(|a| *a = T::ONE / *a);
            for j in 0..n {
                y[j * inner..(j + 1) * inner].iter_mut().zip(&s).for_each(|(o, &r)| *o *= r);
            }
        }
        Kind::LogSoftmax => {
            // (x − max) − ln Σ exp(x − max), per column
            s.iter_mut().for_each(|a| *a = a.ln());
            for j in 0..n {
                let r = j * inner..(j + 1) * inner;
                y[r.clone()]
                    .iter_mut()
                    .zip(&x[r])
                    .zip(s.iter().zip(&m))
                    .for_each(|((o, &v), (&ls, &mx))| *o = (v - mx) - ls);
            }
        }
    }
}

struct Softmax {
    kind: Kind,
    l: Layout,
}

fn softmax_cpu<T: Float>(op: &Softmax, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let block = op.l.n * op.l.inner;
    let mut y = vec![T::ZERO; x.len()];
    // Every `[n, inner]` block is independent.
    par::for_each(y.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut y, block)), |(b, yb)| {
        block_forward(op.kind, op.l, &x[b * block..(b + 1) * block], yb)
    });
    Ok(vec![T::wrap(y)])
}

impl Op for Softmax {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Softmax => "softmax",
            Kind::LogSoftmax => "logSoftmax",
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), softmax_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let (n, inner) = (self.l.n, self.l.inner);
        let outer = x[0].len() / (n * inner);
        let log = flag(self.kind == Kind::LogSoftmax);
        let y = be.alloc(dt, x[0].len())?;
        if inner == 1 {
            let (threads, warp) = launch::rows_launch(outer, n);
            k::SOFTMAX_ROWS.launch(be, dt, threads, &[buf(&*y), buf(x[0]), int(outer), int(n), log, warp])?;
        } else {
            k::SOFTMAX_COLS.launch(
                be,
                dt,
                outer * inner,
                &[buf(&*y), buf(x[0]), int(outer), int(n), int(inner), log],
            )?;
        }
        Ok(vec![y])
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let y = &ctx.outputs[0];
        let op = SoftmaxGrad { kind: self.kind, l: self.l };
        Ok(vec![Some(apply(Arc::new(op), &[g, y], vec![(g.shape().to_vec(), g.dtype())])?.remove(0))])
    }
}

/// Gradient of softmax from its output y: `y ⊙ (g − Σ g⊙y)`; of log-softmax from its output
/// y: `g − exp(y) ⊙ Σ g` (sums along the axis).
struct SoftmaxGrad {
    kind: Kind,
    l: Layout,
}

fn softmax_grad_cpu<T: Float>(op: &SoftmaxGrad, g: &CpuStorage, y: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let (g, y) = (T::view(g), T::view(y));
    let (n, inner) = (op.l.n, op.l.inner);
    let block = n * inner;
    let mut gx = vec![T::ZERO; g.len()];
    let kind = op.kind;
    par::for_each(gx.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut gx, block)), |(b, out)| {
        let (gb, yb) = (&g[b * block..(b + 1) * block], &y[b * block..(b + 1) * block]);
        let mut acc = vec![T::ZERO; inner];
        for j in 0..n {
            let r = j * inner..(j + 1) * inner;
            match kind {
                Kind::Softmax => {
                    acc.iter_mut().zip(&gb[r.clone()]).zip(&yb[r]).for_each(|((a, &gv), &yv)| *a += gv * yv)
                }
                Kind::LogSoftmax => acc.iter_mut().zip(&gb[r]).for_each(|(a, &gv)| *a += gv),
            }
        }
        for j in 0..n {
            let r = j * inner..(j + 1) * inner;
            let it = out[r.clone()].iter_mut().zip(&gb[r.clone()]).zip(&yb[r]).zip(&acc);
            match kind {
                Kind::Softmax => it.for_each(|(((o, &gv), &yv), &a)| *o = yv * (gv - a)),
                Kind::LogSoftmax => it.for_each(|(((o, &gv), &yv), &a)| *o = gv - yv.exp() * a),
            }
        }
    });
    Ok(vec![T::wrap(gx)])
}

impl Op for SoftmaxGrad {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Softmax => "softmaxGrad",
            Kind::LogSoftmax => "logSoftmaxGrad",
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), softmax_grad_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let (n, inner) = (self.l.n, self.l.inner);
        let outer = x[0].len() / (n * inner);
        let log = flag(self.kind == Kind::LogSoftmax);
        let gx = be.alloc(dt, x[0].len())?;
        if inner == 1 {
            let (threads, warp) = launch::rows_launch(outer, n);
            k::SOFTMAX_GRAD_ROWS.launch(
                be,
                dt,
                threads,
                &[buf(&*gx), buf(x[0]), buf(x[1]), int(outer), int(n), log, warp],
            )?;
        } else {
            k::SOFTMAX_GRAD_COLS.launch(
                be,
                dt,
                outer * inner,
                &[buf(&*gx), buf(x[0]), buf(x[1]), int(outer), int(n), int(inner), log],
            )?;
        }
        Ok(vec![gx])
    }
}

fn build(kind: Kind, name: &'static str, x: &Tensor, axis: usize) -> Result<Tensor> {
    check_float(name, x)?;
    let nd = x.dims();
    if axis >= nd {
        return Err(Error::shape(
            name,
            format!("an axis in [0, {nd}) for a tensor of shape {}", fmt_shape(x.shape())),
            format!("axis {axis}"),
        ));
    }
    let op = Softmax { kind, l: layout(x.shape(), axis) };
    Ok(apply(Arc::new(op), &[x], vec![(x.shape().to_vec(), x.dtype())])?.remove(0))
}

/// `exp(x) / Σ exp(x)` along `axis`.
pub fn softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    build(Kind::Softmax, "softmax", x, axis)
}

/// `x − log Σ exp(x)` along `axis`.
pub fn log_softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    build(Kind::LogSoftmax, "logSoftmax", x, axis)
}
