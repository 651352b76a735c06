//! Shape ops: `reshape`, `transpose`, `concat`, `split`, `slice` (narrow) and `stack`, each with
//! its backward. Tensors are contiguous, so everything but a reshape copies data.
//!
//! Concat, stack, split and slice all see their tensors as `[outer, row]` matrices, where
//! `outer` is the product of the dimensions before the axis: concatenation joins rows, and
//! splitting cuts them. That makes each the other's adjoint.

use crate::autograd::{apply, is_grad_enabled, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, indexed, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch;
use crate::ops::elementwise::check_same_dtype;
use crate::storage::{CpuStorage, DType};
use crate::tensor::{check_shape, Tensor};
use std::sync::Arc;

/// Copies as i32 too: shape ops apply to index tensors as well as floats.
macro_rules! dispatch_any {
    ($op:expr, $dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
        }
    };
}

/// Element types the copy kernels move: the floats and i32.
trait Elem: crate::pool::Elem + Sync + Default {
    fn view(s: &CpuStorage) -> &[Self];
    fn wrap(v: Vec<Self>) -> CpuStorage;
}
impl Elem for f32 {
    fn view(s: &CpuStorage) -> &[Self] {
        <f32 as Float>::view(s)
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        <f32 as Float>::wrap(v)
    }
}
impl Elem for f64 {
    fn view(s: &CpuStorage) -> &[Self] {
        <f64 as Float>::view(s)
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        <f64 as Float>::wrap(v)
    }
}
impl Elem for i32 {
    fn view(s: &CpuStorage) -> &[Self] {
        s.as_i32().unwrap_or_else(|| panic!("storage is {}, kernel expected int32", s.dtype()))
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::new_i32(v)
    }
}

fn same_dtype_all(op: &str, xs: &[&Tensor]) -> Result<()> {
    for x in &xs[1..] {
        check_same_dtype(op, xs[0], x)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// reshape

/// A copy with a new shape; the backward reshapes back.
struct Reshape {
    in_shape: Vec<usize>,
}

fn copy_cpu<T: Elem>(x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    Ok(vec![T::wrap(T::view(x).to_vec())])
}

impl Op for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(self.name(), x[0].dtype(), copy_cpu(x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        Ok(vec![launch::copy(be, x[0])?])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let s: Vec<isize> = self.in_shape.iter().map(|&d| d as isize).collect();
        Ok(vec![Some(reshape(g, &s)?)])
    }
}

/// The same elements in a new shape; one dimension may be -1 (inferred). Without autograd
/// history to record, the result shares the input's data; otherwise it is a copy.
pub fn reshape(x: &Tensor, shape: &[isize]) -> Result<Tensor> {
    const OP: &str = "reshape";
    let fmt_req = || format!("[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "));
    let mut infer = None;
    let mut known: usize = 1;
    for (i, &d) in shape.iter().enumerate() {
        if d == -1 {
            if infer.replace(i).is_some() {
                return Err(Error::shape(OP, "a shape with at most one -1", fmt_req()));
            }
        } else if d < 1 {
            return Err(Error::shape(OP, "a shape of positive sizes (and at most one -1)", fmt_req()));
        } else {
            known = known.checked_mul(d as usize).ok_or_else(|| {
                Error::shape(
                    OP,
                    format!("a shape with {} elements like {}", x.numel(), fmt_shape(x.shape())),
                    fmt_req(),
                )
            })?;
        }
    }
    let n = x.numel();
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(1) as usize).collect();
    if let Some(i) = infer {
        if !n.is_multiple_of(known) {
            return Err(Error::shape(
                OP,
                format!("a shape whose known sizes divide the {n} elements of {}", fmt_shape(x.shape())),
                fmt_req(),
            ));
        }
        out[i] = n / known;
    } else if known != n {
        return Err(Error::shape(
            OP,
            format!("a shape with {n} elements like {}", fmt_shape(x.shape())),
            format!("{} ({known} elements)", fmt_req()),
        ));
    }
    if out == x.shape() {
        return Ok(x.clone());
    }
    if !(is_grad_enabled() && x.requires_grad()) {
        // Slots are immutable once filled, so sharing one is safe.
        return Ok(Tensor::from_parts(out, x.dtype(), x.device(), x.slot(), None));
    }
    let op = Reshape { in_shape: x.shape().to_vec() };
    Ok(apply(Arc::new(op), &[x], vec![(out, x.dtype())])?.remove(0))
}

// ---------------------------------------------------------------------------------------------
// transpose

struct Transpose {
    in_shape: Vec<usize>,
    d0: usize,
    d1: usize,
}

fn transpose_cpu<T: Elem>(op: &Transpose, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let nd = op.in_shape.len();
    let mut in_strides = vec![1usize; nd];
    for d in (0..nd.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * op.in_shape[d + 1];
    }
    let mut out_shape = op.in_shape.clone();
    out_shape.swap(op.d0, op.d1);
    let mut src_strides = in_strides.clone();
    src_strides.swap(op.d0, op.d1);
    let inner = out_shape[nd - 1];
    let step = src_strides[nd - 1];
    let mut out = crate::pool::take(x.len());
    let row = |(r, dst): (usize, &mut [T])| {
        let mut rem = r;
        let mut off = 0;
        for d in (0..nd - 1).rev() {
            off += (rem % out_shape[d]) * src_strides[d];
            rem /= out_shape[d];
        }
        if step == 1 {
            dst.copy_from_slice(&x[off..off + inner]);
        } else {
            for (j, v) in dst.iter_mut().enumerate() {
                *v = x[off + j * step];
            }
        }
    };
    par::for_each(x.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut out, inner)), row);
    Ok(vec![T::wrap(out)])
}

impl Op for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(self.name(), x[0].dtype(), transpose_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let mut out_shape = self.in_shape.clone();
        out_shape.swap(self.d0, self.d1);
        let mut strides = launch::strides_of(&self.in_shape);
        strides.swap(self.d0, self.d1);
        Ok(vec![launch::gather(be, self.name(), x[0], &out_shape, &strides)?])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        Ok(vec![Some(transpose(g, self.d0, self.d1)?)])
    }
}

/// Swaps dimensions `d0` and `d1` (a materialised copy).
pub fn transpose(x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
    const OP: &str = "transpose";
    let nd = x.dims();
    if d0 >= nd || d1 >= nd {
        return Err(Error::shape(
            OP,
            format!("dimensions in [0, {nd}) for a tensor of shape {}", fmt_shape(x.shape())),
            format!("dimensions {d0} and {d1}"),
        ));
    }
    if d0 == d1 || x.shape()[d0] == 1 && x.shape()[d1] == 1 {
        return Ok(x.clone());
    }
    let mut out = x.shape().to_vec();
    out.swap(d0, d1);
    let op = Transpose { in_shape: x.shape().to_vec(), d0, d1 };
    Ok(apply(Arc::new(op), &[x], vec![(out, x.dtype())])?.remove(0))
}

// ---------------------------------------------------------------------------------------------
// concat / stack and split: joining and cutting the rows of [outer, row] matrices

/// Joins inputs viewed as `[outer, rows[i]]` along the row into `[outer, Σ rows]`.
struct Concat {
    outer: usize,
    rows: Vec<usize>,
    in_shapes: Vec<Vec<usize>>,
    name: &'static str,
}

fn concat_cpu<T: Elem>(op: &Concat, xs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let xs: Vec<&[T]> = xs.iter().map(|s| T::view(s)).collect();
    let total: usize = op.rows.iter().sum();
    let mut out = crate::pool::take(op.outer * total);
    let fill = |(o, dst): (usize, &mut [T])| {
        let mut at = 0;
        for (x, &r) in xs.iter().zip(&op.rows) {
            dst[at..at + r].copy_from_slice(&x[o * r..(o + 1) * r]);
            at += r;
        }
    };
    par::for_each(out.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut out, total)), fill);
    Ok(vec![T::wrap(out)])
}

impl Op for Concat {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(self.name, x[0].dtype(), concat_cpu(self, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let total: usize = self.rows.iter().sum();
        let out = be.alloc(x[0].dtype(), self.outer * total)?;
        let mut at = 0;
        for (xi, &r) in x.iter().zip(&self.rows) {
            launch::copy2d(be, &*out, at, total, *xi, 0, r, self.outer, r)?;
            at += r;
        }
        Ok(vec![out])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let op = Split {
            outer: self.outer,
            rows: self.rows.clone(),
            in_shape: g.shape().to_vec(),
            out_shapes: self.in_shapes.clone(),
            name: "concatGrad",
        };
        let specs = self.in_shapes.iter().map(|s| (s.clone(), g.dtype())).collect();
        Ok(apply(Arc::new(op), &[g], specs)?.into_iter().map(Some).collect())
    }
}

/// Cuts an input viewed as `[outer, Σ rows]` into pieces `[outer, rows[i]]`.
struct Split {
    outer: usize,
    rows: Vec<usize>,
    in_shape: Vec<usize>,
    out_shapes: Vec<Vec<usize>>,
    name: &'static str,
}

fn split_cpu<T: Elem>(op: &Split, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let total: usize = op.rows.iter().sum();
    let mut at = 0;
    let mut outs = Vec::with_capacity(op.rows.len());
    for &r in &op.rows {
        let mut out = crate::pool::take(op.outer * r);
        let fill = |(o, dst): (usize, &mut [T])| dst.copy_from_slice(&x[o * total + at..o * total + at + r]);
        par::for_each(out.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut out, r)), fill);
        outs.push(T::wrap(out));
        at += r;
    }
    Ok(outs)
}

impl Op for Split {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(self.name, x[0].dtype(), split_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let total: usize = self.rows.iter().sum();
        let mut at = 0;
        let mut outs = Vec::with_capacity(self.rows.len());
        for &r in &self.rows {
            let out = be.alloc(x[0].dtype(), self.outer * r)?;
            launch::copy2d(be, &*out, 0, r, x[0], at, total, self.outer, r)?;
            outs.push(out);
            at += r;
        }
        Ok(outs)
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let given = grads.iter().flatten().next().expect("some output has a gradient");
        let (dtype, device) = (given.dtype(), given.device());
        let gs: Vec<Tensor> = grads
            .iter()
            .zip(&self.out_shapes)
            .map(|(g, s)| match g {
                Some(g) => Ok(g.clone()),
                // Zeros on the gradients' device (a no-op move on the CPU).
                None => Tensor::zeros(s, dtype)?.to(device),
            })
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = gs.iter().collect();
        let op = Concat {
            outer: self.outer,
            rows: self.rows.clone(),
            in_shapes: self.out_shapes.clone(),
            name: "splitGrad",
        };
        Ok(vec![Some(apply(Arc::new(op), &refs, vec![(self.in_shape.clone(), dtype)])?.remove(0))])
    }
}

/// Joins tensors along an existing `axis`; all other dimensions must match.
pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    const OP: &str = "concat";
    let Some(first) = xs.first() else {
        return Err(Error::value(OP, "expected at least one tensor, got none"));
    };
    same_dtype_all(OP, xs)?;
    let s0 = first.shape();
    let nd = s0.len();
    if axis >= nd {
        return Err(Error::shape(
            OP,
            format!("an axis in [0, {nd}) for tensors of shape {}", fmt_shape(s0)),
            format!("axis {axis}"),
        ));
    }
    for (i, x) in xs.iter().enumerate() {
        let s = x.shape();
        if s.len() != nd || s.iter().zip(s0).enumerate().any(|(d, (a, b))| d != axis && a != b) {
            let mut want: Vec<String> = s0.iter().map(|d| d.to_string()).collect();
            want[axis] = "*".into();
            return Err(Error::shape(
                OP,
                format!(
                    "tensor {i} to have the shape [{}] of tensor 0 {} (all dimensions equal except axis {axis})",
                    want.join(", "),
                    fmt_shape(s0)
                ),
                fmt_shape(s),
            ));
        }
    }
    if xs.len() == 1 {
        return Ok((*first).clone());
    }
    let outer: usize = s0[..axis].iter().product();
    let inner: usize = s0[axis + 1..].iter().product();
    let rows: Vec<usize> = xs.iter().map(|x| x.shape()[axis] * inner).collect();
    let mut out = s0.to_vec();
    out[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    check_shape(OP, &out)?;
    let op = Concat { outer, rows, in_shapes: xs.iter().map(|x| x.shape().to_vec()).collect(), name: OP };
    Ok(apply(Arc::new(op), xs, vec![(out, first.dtype())])?.remove(0))
}

/// Joins equally shaped tensors along a new `axis` (in `0..=dims`).
pub fn stack(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    const OP: &str = "stack";
    let Some(first) = xs.first() else {
        return Err(Error::value(OP, "expected at least one tensor, got none"));
    };
    same_dtype_all(OP, xs)?;
    let s0 = first.shape();
    let nd = s0.len();
    if axis > nd {
        return Err(Error::shape(
            OP,
            format!("an axis in [0, {}] for tensors of shape {}", nd, fmt_shape(s0)),
            format!("axis {axis}"),
        ));
    }
    for (i, x) in xs.iter().enumerate() {
        if x.shape() != s0 {
            return Err(Error::shape(
                OP,
                format!("tensor {i} to have the shape of tensor 0, {}", fmt_shape(s0)),
                fmt_shape(x.shape()),
            ));
        }
    }
    let outer: usize = s0[..axis].iter().product();
    let row: usize = s0[axis..].iter().product();
    let mut out = s0.to_vec();
    out.insert(axis, xs.len());
    check_shape(OP, &out)?;
    let op = Concat { outer, rows: vec![row; xs.len()], in_shapes: vec![s0.to_vec(); xs.len()], name: OP };
    Ok(apply(Arc::new(op), xs, vec![(out, first.dtype())])?.remove(0))
}

/// Cuts `x` along `axis` into pieces of the given sizes (which must add up to the dimension).
pub fn split(x: &Tensor, axis: usize, sizes: &[usize]) -> Result<Vec<Tensor>> {
    const OP: &str = "split";
    let s = x.shape();
    let nd = s.len();
    if axis >= nd {
        return Err(Error::shape(
            OP,
            format!("an axis in [0, {nd}) for a tensor of shape {}", fmt_shape(s)),
            format!("axis {axis}"),
        ));
    }
    if sizes.is_empty() || sizes.contains(&0) || sizes.iter().sum::<usize>() != s[axis] {
        return Err(Error::shape(
            OP,
            format!("positive sizes adding up to {} (axis {axis} of {})", s[axis], fmt_shape(s)),
            format!("{sizes:?}"),
        ));
    }
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis + 1..].iter().product();
    let out_shapes: Vec<Vec<usize>> = sizes
        .iter()
        .map(|&n| {
            let mut o = s.to_vec();
            o[axis] = n;
            o
        })
        .collect();
    let op = Split {
        outer,
        rows: sizes.iter().map(|&n| n * inner).collect(),
        in_shape: s.to_vec(),
        out_shapes: out_shapes.clone(),
        name: OP,
    };
    apply(Arc::new(op), &[x], out_shapes.into_iter().map(|o| (o, x.dtype())).collect())
}

// ---------------------------------------------------------------------------------------------
// slice (narrow) and its adjoint, which pads with zeros

/// Takes columns `[start, start + len)` of an input viewed as `[outer, row]`.
struct Narrow {
    outer: usize,
    row: usize,
    start: usize,
    len: usize,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
}

fn narrow_cpu<T: Elem>(op: &Narrow, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let mut out = crate::pool::take(op.outer * op.len);
    let fill =
        |(o, dst): (usize, &mut [T])| dst.copy_from_slice(&x[o * op.row + op.start..o * op.row + op.start + op.len]);
    par::for_each(out.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut out, op.len)), fill);
    Ok(vec![T::wrap(out)])
}

impl Op for Narrow {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(self.name(), x[0].dtype(), narrow_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let out = be.alloc(x[0].dtype(), self.outer * self.len)?;
        launch::copy2d(be, &*out, 0, self.len, x[0], self.start, self.row, self.outer, self.len)?;
        Ok(vec![out])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let op = Pad {
            outer: self.outer,
            row: self.row,
            start: self.start,
            len: self.len,
            in_shape: self.in_shape.clone(),
            out_shape: self.out_shape.clone(),
        };
        Ok(vec![Some(apply(Arc::new(op), &[g], vec![(self.in_shape.clone(), g.dtype())])?.remove(0))])
    }
}

/// The adjoint of [`Narrow`]: scatters `[outer, len]` into columns `[start, start + len)` of a
/// zero `[outer, row]`.
struct Pad {
    outer: usize,
    row: usize,
    start: usize,
    len: usize,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
}

fn pad_cpu<T: Elem>(op: &Pad, g: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = T::view(g);
    let mut out = crate::pool::zeros(op.outer * op.row);
    let fill = |(o, dst): (usize, &mut [T])| {
        dst[op.start..op.start + op.len].copy_from_slice(&g[o * op.len..(o + 1) * op.len])
    };
    par::for_each(out.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut out, op.row)), fill);
    Ok(vec![T::wrap(out)])
}

impl Op for Pad {
    fn name(&self) -> &'static str {
        "sliceGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(self.name(), x[0].dtype(), pad_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let out = be.zeros(x[0].dtype(), self.outer * self.row)?;
        launch::copy2d(be, &*out, self.start, self.row, x[0], 0, self.len, self.outer, self.len)?;
        Ok(vec![out])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let op = Narrow {
            outer: self.outer,
            row: self.row,
            start: self.start,
            len: self.len,
            in_shape: self.in_shape.clone(),
            out_shape: self.out_shape.clone(),
        };
        Ok(vec![Some(apply(Arc::new(op), &[g], vec![(self.out_shape.clone(), g.dtype())])?.remove(0))])
    }
}

/// Elements `start .. start + len` of `x` along `axis` (PyTorch's `narrow`), as a copy.
pub fn slice(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    const OP: &str = "slice";
    let s = x.shape();
    let nd = s.len();
    if axis >= nd {
        return Err(Error::shape(
            OP,
            format!("an axis in [0, {nd}) for a tensor of shape {}", fmt_shape(s)),
            format!("axis {axis}"),
        ));
    }
    if len == 0 || start.checked_add(len).is_none_or(|end| end > s[axis]) {
        return Err(Error::shape(
            OP,
            format!("a range of length ≥ 1 within [0, {}) on axis {axis} of {}", s[axis], fmt_shape(s)),
            format!("start {start}, length {len}"),
        ));
    }
    if len == s[axis] {
        return Ok(x.clone());
    }
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis + 1..].iter().product();
    let mut out = s.to_vec();
    out[axis] = len;
    let op = Narrow {
        outer,
        row: s[axis] * inner,
        start: start * inner,
        len: len * inner,
        in_shape: s.to_vec(),
        out_shape: out.clone(),
    };
    Ok(apply(Arc::new(op), &[x], vec![(out, x.dtype())])?.remove(0))
}
