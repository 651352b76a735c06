//! Index ops along an axis: `argmax`/`max` (values and int32 indices), `topk`, `gather`
//! (PyTorch's: an index of x's rank) and `index_select` (whole slices, e.g. reordering beams).
//! The values of `max` and `topk` are a gather of x at their indices, so all three share one
//! backward, the scatter-add [`GatherGrad`]; `index_select`'s is an index-add.
//!
//! Order is deterministic: ties go to the lower index (PyTorch's rule for `max`), and NaN
//! counts as larger than every number (it wins `max`, comes first in `topk` and last in
//! `topk(largest = false)`), on the CPU and in the kernels alike.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, flag, int, kernels as k};
use crate::ops::compare::Elem;
use crate::ops::elementwise::dispatch_float;
use crate::ops::shape::reshape;
use crate::storage::{CpuStorage, DType};
use crate::tensor::{check_shape, Device, Tensor};
use std::cmp::Ordering;
use std::sync::Arc;

/// Most dimensions the device's gather kernels take (`gather_axis` in kernels/index.cu).
const MAX_GATHER_DIMS: usize = 6;

fn check_axis(op: &str, x: &Tensor, axis: usize) -> Result<()> {
    if axis < x.dims() {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("an axis in [0, {}) for a tensor of shape {}", x.dims(), fmt_shape(x.shape())),
            format!("axis {axis}"),
        ))
    }
}

fn check_index_dtype(op: &str, idx: &Tensor) -> Result<()> {
    if idx.dtype() == DType::I32 {
        Ok(())
    } else {
        Err(Error::dtype(op, "int32 indices", idx.dtype()))
    }
}

/// Every index in `[0, limit)`, else the first bad one as a `ValueError`.
fn check_range(op: &str, idx: &[i32], limit: usize) -> Result<()> {
    match idx.iter().enumerate().find(|(_, &i)| i < 0 || i as usize >= limit) {
        Some((at, &i)) => Err(Error::value(
            op,
            format!("index {i} at position {at} is out of range: expected an index in [0, {limit}) for an axis of size {limit}"),
        )),
        None => Ok(()),
    }
}

/// Checks indices now when they are already computed on the host (device indices are checked
/// by a kernel and reported at the next read).
fn check_ready(op: &str, idx: &Tensor, limit: usize) -> Result<()> {
    if idx.device() == Device::Cpu && idx.is_ready() {
        if let Ok(s) = idx.storage() {
            check_range(op, s.as_i32().expect("int32 storage"), limit)?;
        }
    }
    Ok(())
}

/// `[outer, n, inner]` around `axis`.
fn split_at(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Whether (a, ia) comes before (b, ib): larger first (smaller when `!largest`), NaN above
/// every number, ties by the lower index. A strict total order, so selections are unique.
fn precedes(a: f64, ia: usize, b: f64, ib: usize, largest: bool) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (true, false) => largest,
        (false, true) => !largest,
        (false, false) if a != b => {
            if largest {
                a > b
            } else {
                a < b
            }
        }
        _ => ia < ib,
    }
}

// ---------------------------------------------------------------------------------------------
// max / argmax

struct MaxAxis {
    outer: usize,
    n: usize,
    inner: usize,
    axis: usize,
    x_shape: Vec<usize>,
    keep_shape: Vec<usize>,
}

fn max_cpu<T: Elem + Into<f64>>(op: &MaxAxis, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let (n, inner) = (op.n, op.inner);
    let mut vals = Vec::with_capacity(op.outer * inner);
    let mut idx = Vec::with_capacity(op.outer * inner);
    for o in 0..op.outer {
        for j in 0..inner {
            let at = |e: usize| x[(o * n + e) * inner + j];
            let mut best = 0;
            for e in 1..n {
                if precedes(at(e).into(), e, at(best).into(), best, true) {
                    best = e;
                }
            }
            vals.push(at(best));
            idx.push(best as i32);
        }
    }
    Ok(vec![T::wrap(vals), CpuStorage::new_i32(idx)])
}

impl Op for MaxAxis {
    fn name(&self) -> &'static str {
        "max"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        crate::ops::compare::dispatch_any!(x[0].dtype(), max_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        let m = self.outer * self.inner;
        let (vals, idx) = (be.alloc(dt, m)?, be.alloc(DType::I32, m)?);
        let args = [buf(&*vals), buf(&*idx), buf(x[0]), int(self.outer), int(self.n), int(self.inner)];
        k::MAX_AXIS.launch(be, dt, m, &args)?;
        Ok(vec![vals, idx])
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let Some(g) = grads[0].as_ref() else { return Ok(vec![None]) };
        let keep: Vec<isize> = self.keep_shape.iter().map(|&d| d as isize).collect();
        let (g, idx) = (reshape(g, &keep)?, reshape(&ctx.outputs[1], &keep)?);
        Ok(vec![Some(gather_grad(&g, &idx, self.axis, &self.x_shape)?)])
    }
}

/// The largest value along `axis` and its index (int32): `(values, indices)`, both of x's
/// shape without `axis` (kept as size 1 with `keepdim`). Ties give the first index; NaN wins.
/// The values are differentiable: the gradient goes to the chosen position.
pub fn max(x: &Tensor, axis: usize, keepdim: bool) -> Result<(Tensor, Tensor)> {
    const OP: &str = "max";
    check_axis(OP, x, axis)?;
    let (outer, n, inner) = split_at(x.shape(), axis);
    let mut keep_shape = x.shape().to_vec();
    keep_shape[axis] = 1;
    let mut out = x.shape().to_vec();
    if keepdim {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    let op = MaxAxis { outer, n, inner, axis, x_shape: x.shape().to_vec(), keep_shape };
    let mut r = apply(Arc::new(op), &[x], vec![(out.clone(), x.dtype()), (out, DType::I32)])?;
    let idx = r.remove(1);
    Ok((r.remove(0), idx))
}

/// The index (int32) of the largest value along `axis`; ties give the first index, NaN wins.
pub fn argmax(x: &Tensor, axis: usize, keepdim: bool) -> Result<Tensor> {
    check_axis("argmax", x, axis)?;
    Ok(max(&x.detach(), axis, keepdim)?.1)
}

// ---------------------------------------------------------------------------------------------
// topk

struct TopK {
    outer: usize,
    n: usize,
    inner: usize,
    k: usize,
    axis: usize,
    largest: bool,
    sorted: bool,
    x_shape: Vec<usize>,
}

fn topk_cpu<T: Elem + Into<f64>>(op: &TopK, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let (n, inner, kk) = (op.n, op.inner, op.k);
    let m = op.outer * kk * inner;
    let (mut vals, mut idx) = (vec![T::ZERO; m], vec![0i32; m]);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for o in 0..op.outer {
        for j in 0..inner {
            let at = |e: usize| -> f64 { x[(o * n + e) * inner + j].into() };
            let cmp = |&a: &usize, &b: &usize| {
                if a == b {
                    Ordering::Equal
                } else if precedes(at(a), a, at(b), b, op.largest) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            };
            order.clear();
            order.extend(0..n);
            if kk < n {
                order.select_nth_unstable_by(kk - 1, cmp);
                order.truncate(kk);
            }
            if op.sorted {
                order.sort_unstable_by(cmp);
            } else {
                order.sort_unstable();
            }
            for (r, &e) in order.iter().enumerate() {
                let dst = (o * kk + r) * inner + j;
                vals[dst] = x[(o * n + e) * inner + j];
                idx[dst] = e as i32;
            }
        }
    }
    Ok(vec![T::wrap(vals), CpuStorage::new_i32(idx)])
}

impl Op for TopK {
    fn name(&self) -> &'static str {
        "topk"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        crate::ops::compare::dispatch_any!(x[0].dtype(), topk_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        let m = self.outer * self.k * self.inner;
        let (vals, idx) = (be.alloc(dt, m)?, be.alloc(DType::I32, m)?);
        let args = [
            buf(&*vals),
            buf(&*idx),
            buf(x[0]),
            int(self.outer),
            int(self.n),
            int(self.inner),
            int(self.k),
            flag(self.largest),
            flag(self.sorted),
        ];
        k::TOPK.launch(be, dt, self.outer * self.inner, &args)?;
        Ok(vec![vals, idx])
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let Some(g) = grads[0].as_ref() else { return Ok(vec![None]) };
        Ok(vec![Some(gather_grad(g, &ctx.outputs[1], self.axis, &self.x_shape)?)])
    }
}

/// The `k` largest (or smallest) values along `axis` and their int32 indices, x's shape with
/// `axis` of size k. `sorted`: best first; otherwise in increasing index order. Either way the
/// choice is deterministic: ties go to the lower index. The values are differentiable.
pub fn topk(x: &Tensor, k: usize, axis: usize, largest: bool, sorted: bool) -> Result<(Tensor, Tensor)> {
    const OP: &str = "topk";
    check_axis(OP, x, axis)?;
    let (outer, n, inner) = split_at(x.shape(), axis);
    if k == 0 || k > n {
        return Err(Error::value(OP, format!("expected k in [1, {n}] (the size of axis {axis}), got k = {k}")));
    }
    let mut out = x.shape().to_vec();
    out[axis] = k;
    let op = TopK { outer, n, inner, k, axis, largest, sorted, x_shape: x.shape().to_vec() };
    let mut r = apply(Arc::new(op), &[x], vec![(out.clone(), x.dtype()), (out, DType::I32)])?;
    let idx = r.remove(1);
    Ok((r.remove(0), idx))
}

// ---------------------------------------------------------------------------------------------
// gather and its scatter-add

/// Index shape and x strides padded at the front to [`MAX_GATHER_DIMS`], with the axis moved
/// along: the launch arguments shared by `gather_axis` and `gather_axis_bwd`.
fn gather_layout(op: &str, idx_shape: &[usize], x_shape: &[usize], axis: usize) -> Result<Vec<KernelArg<'static>>> {
    let r = idx_shape.len();
    if r > MAX_GATHER_DIMS {
        return Err(Error::internal(op, format!("CUDA gathers take at most {MAX_GATHER_DIMS} dimensions, got {r}")));
    }
    let pad = MAX_GATHER_DIMS - r;
    let xs = launch::strides_of(x_shape);
    let mut args = vec![int(pad + axis), int(x_shape[axis])];
    args.extend((0..MAX_GATHER_DIMS).map(|d| int(if d < pad { 1 } else { idx_shape[d - pad] })));
    args.extend((0..MAX_GATHER_DIMS).map(|d| int(if d < pad { 0 } else { xs[d - pad] })));
    Ok(args)
}

/// For each element of an index of `idx_shape` (row-major), its offset in x with the axis
/// coordinate left out (to be added as `index · stride[axis]`).
fn gather_offsets(idx_shape: &[usize], x_shape: &[usize], axis: usize) -> (Vec<usize>, usize) {
    let xs = launch::strides_of(x_shape);
    let mut strides = xs.clone();
    strides[axis] = 0;
    let n: usize = idx_shape.iter().product();
    let mut offs = Vec::with_capacity(n);
    let mut c = vec![0usize; idx_shape.len()];
    for _ in 0..n {
        offs.push(c.iter().zip(&strides).map(|(a, b)| a * b).sum());
        for d in (0..c.len()).rev() {
            c[d] += 1;
            if c[d] < idx_shape[d] {
                break;
            }
            c[d] = 0;
        }
    }
    (offs, xs[axis])
}

struct Gather {
    axis: usize,
    x_shape: Vec<usize>,
    idx_shape: Vec<usize>,
}

fn gather_cpu<T: Elem>(op: &Gather, x: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let idx = idx.as_i32().expect("int32 indices");
    check_range("gather", idx, op.x_shape[op.axis])?;
    let (offs, st) = gather_offsets(&op.idx_shape, &op.x_shape, op.axis);
    Ok(vec![T::wrap(offs.iter().zip(idx).map(|(&o, &i)| x[o + i as usize * st]).collect())])
}

impl Op for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        crate::ops::compare::dispatch_any!(x[0].dtype(), gather_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        let limit = self.x_shape[self.axis];
        launch::check_indices_later(
            be,
            "gather",
            x[1],
            limit,
            None,
            Box::new(move |h| check_range("gather", h, limit)),
        )?;
        let n = x[1].len();
        let out = be.alloc(dt, n)?;
        let mut args = vec![buf(&*out), buf(x[0]), buf(x[1]), int(n)];
        args.extend(gather_layout(self.name(), &self.idx_shape, &self.x_shape, self.axis)?);
        k::GATHER_AXIS.launch(be, dt, n, &args)?;
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        Ok(vec![Some(gather_grad(g, &ctx.inputs[1], self.axis, &self.x_shape)?), None])
    }
}

/// `out[i][j][k] = x[i][index[i][j][k]][k]` for axis 1 (likewise for any axis), as PyTorch's
/// `gather`: `index` is int32 of x's rank, no larger than x on the other axes; the output has
/// index's shape. Each index must be in `[0, x.shape[axis])`. Backward scatter-adds.
pub fn gather(x: &Tensor, axis: usize, index: &Tensor) -> Result<Tensor> {
    const OP: &str = "gather";
    check_axis(OP, x, axis)?;
    check_index_dtype(OP, index)?;
    let (xs, is) = (x.shape(), index.shape());
    if is.len() != xs.len() || is.iter().zip(xs).enumerate().any(|(d, (&i, &s))| d != axis && i > s) {
        return Err(Error::shape(
            OP,
            format!("an index of rank {} no larger than x {} outside axis {axis}", xs.len(), fmt_shape(xs)),
            fmt_shape(is),
        ));
    }
    check_ready(OP, index, xs[axis])?;
    let op = Gather { axis, x_shape: xs.to_vec(), idx_shape: is.to_vec() };
    Ok(apply(Arc::new(op), &[x, &index.detach()], vec![(is.to_vec(), x.dtype())])?.remove(0))
}

/// Scatter-add of `g` (index's shape) into zeros of `x_shape` at `index` along `axis`: the
/// gradient of gather, max and topk.
struct GatherGrad {
    axis: usize,
    x_shape: Vec<usize>,
    idx_shape: Vec<usize>,
}

fn gather_grad_cpu<T: crate::cpu::Float>(op: &GatherGrad, g: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = T::view(g);
    let idx = idx.as_i32().expect("int32 indices");
    let (offs, st) = gather_offsets(&op.idx_shape, &op.x_shape, op.axis);
    let mut gx = vec![T::ZERO; op.x_shape.iter().product()];
    // In index order, so that repeated indices always sum the same way.
    for ((&o, &i), &v) in offs.iter().zip(idx).zip(g) {
        gx[o + i as usize * st] += v;
    }
    Ok(vec![T::wrap(gx)])
}

impl Op for GatherGrad {
    fn name(&self) -> &'static str {
        "gatherGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), gather_grad_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let gx = be.zeros(dt, self.x_shape.iter().product())?;
        let n = x[1].len();
        let mut args = vec![buf(&*gx), buf(x[0]), buf(x[1]), int(n)];
        args.extend(gather_layout(self.name(), &self.idx_shape, &self.x_shape, self.axis)?);
        k::GATHER_AXIS_BWD.launch(be, dt, n, &args)?;
        Ok(vec![gx])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        // Linear in g: its adjoint is the gather itself.
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        Ok(vec![Some(gather(g, self.axis, &ctx.inputs[1])?), None])
    }
}

fn gather_grad(g: &Tensor, idx: &Tensor, axis: usize, x_shape: &[usize]) -> Result<Tensor> {
    let op = GatherGrad { axis, x_shape: x_shape.to_vec(), idx_shape: idx.shape().to_vec() };
    Ok(apply(Arc::new(op), &[g, &idx.detach()], vec![(x_shape.to_vec(), g.dtype())])?.remove(0))
}

// ---------------------------------------------------------------------------------------------
// index_select and its index-add

struct IndexSelect {
    outer: usize,
    n: usize,
    inner: usize,
    axis: usize,
    x_shape: Vec<usize>,
}

fn index_select_cpu<T: Elem>(op: &IndexSelect, x: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let idx = idx.as_i32().expect("int32 indices");
    check_range("indexSelect", idx, op.n)?;
    let (n, inner, m) = (op.n, op.inner, idx.len());
    let mut out = Vec::with_capacity(op.outer * m * inner);
    for o in 0..op.outer {
        for &i in idx {
            let src = (o * n + i as usize) * inner;
            out.extend_from_slice(&x[src..src + inner]);
        }
    }
    Ok(vec![T::wrap(out)])
}

impl Op for IndexSelect {
    fn name(&self) -> &'static str {
        "indexSelect"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        crate::ops::compare::dispatch_any!(x[0].dtype(), index_select_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        let n = self.n;
        launch::check_indices_later(
            be,
            "indexSelect",
            x[1],
            n,
            None,
            Box::new(move |h| check_range("indexSelect", h, n)),
        )?;
        let m = x[1].len();
        let total = self.outer * m * self.inner;
        let out = be.alloc(dt, total)?;
        let args = [buf(&*out), buf(x[0]), buf(x[1]), int(self.outer), int(n), int(self.inner), int(m)];
        k::INDEX_SELECT.launch(be, dt, total, &args)?;
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let op = IndexAdd { outer: self.outer, n: self.n, inner: self.inner, axis: self.axis };
        let gx = apply(Arc::new(op), &[g, &ctx.inputs[1]], vec![(self.x_shape.clone(), g.dtype())])?.remove(0);
        Ok(vec![Some(gx), None])
    }
}

/// The slices of `x` at `index` (int32 `[M]`) along `axis`, in that order: x's shape with
/// `axis` of size M. Each index must be in `[0, x.shape[axis])`; repeats are allowed (their
/// gradients add up).
pub fn index_select(x: &Tensor, axis: usize, index: &Tensor) -> Result<Tensor> {
    const OP: &str = "indexSelect";
    check_axis(OP, x, axis)?;
    check_index_dtype(OP, index)?;
    if index.dims() != 1 {
        return Err(Error::shape(OP, "an index of shape [M]", fmt_shape(index.shape())));
    }
    let (outer, n, inner) = split_at(x.shape(), axis);
    check_ready(OP, index, n)?;
    let mut out = x.shape().to_vec();
    out[axis] = index.numel();
    check_shape(OP, &out)?;
    let op = IndexSelect { outer, n, inner, axis, x_shape: x.shape().to_vec() };
    Ok(apply(Arc::new(op), &[x, &index.detach()], vec![(out, x.dtype())])?.remove(0))
}

/// `gx[.., index[j], ..] += g[.., j, ..]` into zeros of x's shape: index_select's gradient.
struct IndexAdd {
    outer: usize,
    n: usize,
    inner: usize,
    axis: usize,
}

fn index_add_cpu<T: crate::cpu::Float>(op: &IndexAdd, g: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = T::view(g);
    let idx = idx.as_i32().expect("int32 indices");
    let (n, inner, m) = (op.n, op.inner, idx.len());
    let mut gx = vec![T::ZERO; op.outer * n * inner];
    for o in 0..op.outer {
        for (j, &i) in idx.iter().enumerate() {
            let (dst, src) = ((o * n + i as usize) * inner, (o * m + j) * inner);
            for (d, &s) in gx[dst..dst + inner].iter_mut().zip(&g[src..src + inner]) {
                *d += s;
            }
        }
    }
    Ok(vec![T::wrap(gx)])
}

impl Op for IndexAdd {
    fn name(&self) -> &'static str {
        "indexSelectGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), index_add_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let gx = be.zeros(dt, self.outer * self.n * self.inner)?;
        let m = x[1].len();
        let args = [buf(&*gx), buf(x[0]), buf(x[1]), int(self.outer), int(self.n), int(self.inner), int(m)];
        k::INDEX_SELECT_BWD.launch(be, dt, self.outer * m * self.inner, &args)?;
        Ok(vec![gx])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        Ok(vec![Some(index_select(g, self.axis, &ctx.inputs[1])?), None])
    }
}
