//! Comparisons and masks: `eq`/`lt`/`gt` (int32 0/1, broadcasting, no gradient), `where_`
//! (pick from `a` or `b` by an int32 condition, gradients to both), `masked_fill` and
//! `sequence_mask` (1 where t < length). Forward and backward side by side, as in the other ops.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, int, kernels as k, real};
use crate::ops::elementwise::{broadcast_shape, sum_to};
use crate::ops::rnn::parse_lengths;
use crate::storage::{CpuStorage, DType};
use crate::tensor::{check_shape, Device, Tensor};
use std::sync::Arc;

/// An element type of host storage, for the ops that take every dtype (comparisons, selects,
/// index moves): the float kernels' [`crate::cpu::Float`] does not cover int32.
pub(crate) trait Elem: Copy + PartialOrd + Send + Sync + 'static {
    fn view(s: &CpuStorage) -> &[Self];
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn from_f64(v: f64) -> Self;
    const ZERO: Self;
}

macro_rules! elem {
    ($t:ty, $var:ident, $new:ident) => {
        impl Elem for $t {
            fn view(s: &CpuStorage) -> &[Self] {
                match s {
                    CpuStorage::$var(v) => v,
                    // Ops check dtypes when they are built; reaching this is a bug in an op.
                    _ => panic!("storage is {}, expected {}", s.dtype(), stringify!($t)),
                }
            }
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$new(v)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            const ZERO: Self = 0 as $t;
        }
    };
}
elem!(f32, F32, new_f32);
elem!(f64, F64, new_f64);
elem!(i32, I32, new_i32);

/// Calls the generic `$f::<T>` for the storage dtype, whatever it is.
macro_rules! dispatch_any {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            $crate::storage::DType::F32 => $f::<f32>($($arg),*),
            $crate::storage::DType::F64 => $f::<f64>($($arg),*),
            $crate::storage::DType::I32 => $f::<i32>($($arg),*),
        }
    };
}
pub(crate) use dispatch_any;

/// For each element of `out` (row-major), the offset of the element of `shape` that
/// broadcasting maps onto it.
fn bcast_offsets(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let strides = launch::broadcast_strides(shape, out);
    let n: usize = out.iter().product();
    let mut offs = Vec::with_capacity(n);
    let mut idx = vec![0usize; out.len()];
    let mut off = 0usize;
    for _ in 0..n {
        offs.push(off);
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < out[d] {
                break;
            }
            off -= strides[d] * idx[d];
            idx[d] = 0;
        }
    }
    offs
}

/// The value of `x` (of `shape`) at each element of `out`: `x` itself when the shapes agree.
fn expand<'a, T: Copy>(x: &'a [T], shape: &[usize], out: &[usize]) -> std::borrow::Cow<'a, [T]> {
    if shape == out {
        std::borrow::Cow::Borrowed(x)
    } else {
        std::borrow::Cow::Owned(bcast_offsets(shape, out).into_iter().map(|o| x[o]).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// eq / lt / gt

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareKind {
    Eq,
    Lt,
    Gt,
}

struct Compare {
    kind: CompareKind,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    out: Vec<usize>,
}

fn compare_cpu<T: Elem>(op: &Compare, a: &CpuStorage, b: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let a = expand(T::view(a), &op.a_shape, &op.out);
    let b = expand(T::view(b), &op.b_shape, &op.out);
    let f: fn(T, T) -> bool = match op.kind {
        CompareKind::Eq => |x, y| x == y,
        CompareKind::Lt => |x, y| x < y,
        CompareKind::Gt => |x, y| x > y,
    };
    Ok(vec![CpuStorage::new_i32(a.iter().zip(b.iter()).map(|(&x, &y)| f(x, y) as i32).collect())])
}

impl Op for Compare {
    fn name(&self) -> &'static str {
        match self.kind {
            CompareKind::Eq => "eq",
            CompareKind::Lt => "lt",
            CompareKind::Gt => "gt",
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(x[0].dtype(), compare_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let n: usize = self.out.iter().product();
        let out = be.alloc(DType::I32, n)?;
        let sa = launch::broadcast_strides(&self.a_shape, &self.out);
        let sb = launch::broadcast_strides(&self.b_shape, &self.out);
        let mut args = vec![buf(&*out), buf(x[0]), buf(x[1]), int(n), KernelArg::I32(self.kind as i32)];
        args.extend(launch::strided_args(self.name(), &self.out, &[sa, sb])?);
        k::COMPARE.launch(be, x[0].dtype(), n, &args)?;
        Ok(vec![out])
    }
}

fn compare(kind: CompareKind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = Compare { kind, a_shape: a.shape().to_vec(), b_shape: b.shape().to_vec(), out: Vec::new() };
    let name = op.name();
    if a.dtype() != b.dtype() {
        return Err(Error::dtype(name, format!("b of a's dtype {}", a.dtype()), b.dtype()));
    }
    let out = broadcast_shape(name, a.shape(), b.shape())?;
    let op = Compare { out: out.clone(), ..op };
    // Comparisons have no gradient: their inputs' history is not recorded.
    let (a, b) = (a.detach(), b.detach());
    Ok(apply(Arc::new(op), &[&a, &b], vec![(out, DType::I32)])?.remove(0))
}

/// `a == b` as int32 1/0, broadcasting (any dtype, both the same). No gradient.
pub fn eq(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    compare(CompareKind::Eq, a, b)
}
/// `a < b` as int32 1/0, broadcasting. No gradient; NaN compares false.
pub fn lt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    compare(CompareKind::Lt, a, b)
}
/// `a > b` as int32 1/0, broadcasting. No gradient; NaN compares false.
pub fn gt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    compare(CompareKind::Gt, a, b)
}

fn check_cond(op: &str, what: &str, c: &Tensor) -> Result<()> {
    if c.dtype() == DType::I32 {
        Ok(())
    } else {
        Err(Error::dtype(op, format!("int32 {what} (0/1, e.g. from eq/lt/gt)"), c.dtype()))
    }
}

// ---------------------------------------------------------------------------------------------
// where

struct Where {
    c_shape: Vec<usize>,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    out: Vec<usize>,
}

fn where_cpu<T: Elem>(op: &Where, c: &CpuStorage, a: &CpuStorage, b: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let c = expand(c.as_i32().expect("int32 condition"), &op.c_shape, &op.out);
    let a = expand(T::view(a), &op.a_shape, &op.out);
    let b = expand(T::view(b), &op.b_shape, &op.out);
    let out: Vec<T> = c.iter().zip(a.iter().zip(b.iter())).map(|(&c, (&x, &y))| if c != 0 { x } else { y }).collect();
    Ok(vec![T::wrap(out)])
}

impl Op for Where {
    fn name(&self) -> &'static str {
        "where"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(x[1].dtype(), where_cpu(self, x[0], x[1], x[2]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[1].dtype();
        let n: usize = self.out.iter().product();
        let out = be.alloc(dt, n)?;
        let strides: Vec<Vec<usize>> = [&self.c_shape, &self.a_shape, &self.b_shape]
            .iter()
            .map(|s| launch::broadcast_strides(s, &self.out))
            .collect();
        let mut args = vec![buf(&*out), buf(x[0]), buf(x[1]), buf(x[2]), int(n)];
        args.extend(launch::strided_args(self.name(), &self.out, &strides)?);
        k::WHERE.launch(be, dt, n, &args)?;
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let c = &ctx.inputs[0];
        // a's gradient is g where the condition holds, b's where it does not.
        let ga = masked(g, c, 0.0, true)?;
        let gb = masked(g, c, 0.0, false)?;
        Ok(vec![None, Some(sum_to(&ga, &self.a_shape)?), Some(sum_to(&gb, &self.b_shape)?)])
    }
}

/// `cond ? a : b` elementwise, with `cond` int32 (non-zero is true) and `a`, `b` of one dtype,
/// all three broadcasting together (NumPy rules). Gradients flow to `a` and `b`.
pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "where";
    check_cond(OP, "condition", cond)?;
    if a.dtype() != b.dtype() {
        return Err(Error::dtype(OP, format!("b of a's dtype {}", a.dtype()), b.dtype()));
    }
    let ab = broadcast_shape(OP, a.shape(), b.shape())?;
    let out = broadcast_shape(OP, cond.shape(), &ab)?;
    let op = Where {
        c_shape: cond.shape().to_vec(),
        a_shape: a.shape().to_vec(),
        b_shape: b.shape().to_vec(),
        out: out.clone(),
    };
    let cond = cond.detach();
    Ok(apply(Arc::new(op), &[&cond, a, b], vec![(out, a.dtype())])?.remove(0))
}

// ---------------------------------------------------------------------------------------------
// masked_fill

struct MaskedFill {
    x_shape: Vec<usize>,
    m_shape: Vec<usize>,
    value: f64,
    /// Fill where the mask is 0 instead (the gradient of `where`'s first branch).
    invert: bool,
}

fn masked_fill_cpu<T: Elem>(op: &MaskedFill, x: &CpuStorage, m: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let m = expand(m.as_i32().expect("int32 mask"), &op.m_shape, &op.x_shape);
    let v = T::from_f64(op.value);
    let out: Vec<T> =
        T::view(x).iter().zip(m.iter()).map(|(&x, &m)| if (m != 0) != op.invert { v } else { x }).collect();
    Ok(vec![T::wrap(out)])
}

impl Op for MaskedFill {
    fn name(&self) -> &'static str {
        "maskedFill"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(x[0].dtype(), masked_fill_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        let n = x[0].len();
        let out = be.alloc(dt, n)?;
        let sx = launch::strides_of(&self.x_shape);
        let sm = launch::broadcast_strides(&self.m_shape, &self.x_shape);
        let mut args =
            vec![buf(&*out), buf(x[0]), buf(x[1]), int(n), real(self.value), KernelArg::I32(self.invert as i32)];
        args.extend(launch::strided_args(self.name(), &self.x_shape, &[sx, sm])?);
        k::MASKED_FILL.launch(be, dt, n, &args)?;
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        // Filled positions no longer depend on x.
        Ok(vec![Some(masked(g, &ctx.inputs[1], 0.0, self.invert)?), None])
    }
}

/// `x` with `value` where the mask is non-zero (or zero, when `invert`); the mask broadcasts
/// to x's shape.
fn masked(x: &Tensor, mask: &Tensor, value: f64, invert: bool) -> Result<Tensor> {
    const OP: &str = "maskedFill";
    check_cond(OP, "mask", mask)?;
    let out = broadcast_shape(OP, x.shape(), mask.shape())?;
    if out != x.shape() {
        return Err(Error::shape(
            OP,
            format!("a mask that broadcasts to x's shape {}", fmt_shape(x.shape())),
            fmt_shape(mask.shape()),
        ));
    }
    if x.dtype() == DType::I32 && (value.fract() != 0.0 || !(i32::MIN as f64..=i32::MAX as f64).contains(&value)) {
        return Err(Error::value(OP, format!("an int32 tensor is filled with an int32 value, got {value}")));
    }
    let op = MaskedFill { x_shape: x.shape().to_vec(), m_shape: mask.shape().to_vec(), value, invert };
    let mask = mask.detach();
    Ok(apply(Arc::new(op), &[x, &mask], vec![(x.shape().to_vec(), x.dtype())])?.remove(0))
}

/// `x` with `value` wherever the int32 `mask` (broadcast to x's shape) is non-zero. The
/// gradient flows to x elsewhere.
pub fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Result<Tensor> {
    masked(x, mask, value, false)
}

// ---------------------------------------------------------------------------------------------
// sequence_mask

const SEQ_OP: &str = "sequenceMask";

fn check_lengths(host: &[i32], t: usize) -> Result<()> {
    let raw: Vec<f64> = host.iter().map(|&l| l as f64).collect();
    parse_lengths(SEQ_OP, &raw, t, host.len()).map(|_| ())
}

struct SequenceMask {
    t: usize,
}

impl Op for SequenceMask {
    fn name(&self) -> &'static str {
        SEQ_OP
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        let lens = x[0].as_i32().expect("int32 lengths");
        check_lengths(lens, self.t)?;
        let t = self.t as i32;
        Ok(vec![CpuStorage::new_i32(lens.iter().flat_map(|&l| (0..t).map(move |s| (s < l) as i32)).collect())])
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let b = x[0].len();
        let out = be.alloc(DType::I32, b * self.t)?;
        let flag = be.zeros(DType::I32, 1)?;
        k::SEQUENCE_MASK.launch(
            be,
            DType::I32,
            b * self.t,
            &[buf(&*out), buf(&*flag), buf(x[0]), int(b), int(self.t)],
        )?;
        let t = self.t;
        launch::report_later(be, SEQ_OP, flag, x[0], Box::new(move |h| check_lengths(h.as_i32().expect("int32"), t)))?;
        Ok(vec![out])
    }
}

/// int32 `[B, T]` with 1 where `t < lengths[b]`, from int32 `lengths [B]`, each an integer in
/// `[1, T]` (the recurrent layers' rule). Lengths already on the host are checked at once;
/// others when the op runs (on a GPU: at the next read back to the host, as index checks).
pub fn sequence_mask(lengths: &Tensor, t: usize) -> Result<Tensor> {
    if lengths.dtype() != DType::I32 {
        return Err(Error::dtype(SEQ_OP, "int32 lengths", lengths.dtype()));
    }
    if lengths.dims() != 1 {
        return Err(Error::shape(SEQ_OP, "lengths of shape [B]", fmt_shape(lengths.shape())));
    }
    if t == 0 {
        return Err(Error::value(SEQ_OP, "T must be at least 1, got 0"));
    }
    let out = vec![lengths.numel(), t];
    check_shape(SEQ_OP, &out)?;
    if lengths.device() == Device::Cpu && lengths.is_ready() {
        if let Ok(s) = lengths.storage() {
            check_lengths(s.as_i32().expect("int32 storage"), t)?;
        }
    }
    Ok(apply(Arc::new(SequenceMask { t }), &[&lengths.detach()], vec![(out, DType::I32)])?.remove(0))
}

/// [`sequence_mask`] from lengths as plain numbers (possibly NaN or fractional, as JS gives
/// them), checked with the recurrent layers' rule; the mask is made on the CPU.
pub fn sequence_mask_numbers(lengths: &[f64], t: usize) -> Result<Tensor> {
    if lengths.is_empty() {
        return Err(Error::shape(SEQ_OP, "lengths of shape [B] with B ≥ 1", "[0]"));
    }
    let lens = parse_lengths(SEQ_OP, lengths, t, lengths.len())?;
    sequence_mask(&Tensor::from_i32(lens.into_iter().map(|l| l as i32).collect(), &[lengths.len()])?, t)
}
