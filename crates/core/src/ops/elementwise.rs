//! Elementwise ops: broadcasting binary arithmetic, activations, and the broadcast/sum-to pair
//! that their gradients need. Forward and backward of each sit together.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::cpu::par::{self, items, items_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, int, kernels as k, real};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use std::sync::Arc;

macro_rules! dispatch_float {
    ($op:expr, $dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            $crate::storage::DType::F32 => $f::<f32>($($arg),*),
            $crate::storage::DType::F64 => $f::<f64>($($arg),*),
            d => Err($crate::error::Error::dtype($op, "float32 or float64", d)),
        }
    };
}
pub(crate) use dispatch_float;

pub(crate) fn check_float(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::dtype(op, "float32 or float64", t.dtype()))
    }
}

pub(crate) fn check_same_dtype(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() == b.dtype() {
        Ok(())
    } else {
        Err(Error::dtype(op, a.dtype(), b.dtype()))
    }
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shape(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::shape(
                op,
                format!("shapes that broadcast (got {} and {})", fmt_shape(a), fmt_shape(b)),
                format!("dimension {i}: {da} vs {db}"),
            ));
        };
    }
    Ok(out)
}

/// Strides of `shape` (row-major) seen through `out` broadcasting: 0 on broadcast dimensions.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let pad = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[pad + i] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// Calls `f(out_row_start, a_offset, a_step, b_offset, b_step, len)` for each last-dim row.
fn for_each_broadcast_row(
    out: &[usize], sa: &[usize], sb: &[usize], mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
) {
    let nd = out.len();
    if nd == 0 {
        f(0, 0, 0, 0, 0, 1);
        return;
    }
    let inner = out[nd - 1];
    let rows: usize = out[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd - 1];
    for r in 0..rows {
        let (mut oa, mut ob) = (0, 0);
        for d in 0..nd - 1 {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
        }
        f(r * inner, oa, sa[nd - 1], ob, sb[nd - 1], inner);
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
}

struct Binary {
    kind: BinaryKind,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    out: Vec<usize>,
}

fn binary_cpu<T: Float>(op: &Binary, a: &CpuStorage, b: &CpuStorage) -> Result<Vec<CpuStorage>> {
    // One instance per operation, so that the arithmetic inlines into the loops (a function
    // pointer per element would be a call each).
    match op.kind {
        BinaryKind::Add => binary_with(op, a, b, |x: T, y: T| x + y),
        BinaryKind::Sub => binary_with(op, a, b, |x: T, y: T| x - y),
        BinaryKind::Mul => binary_with(op, a, b, |x: T, y: T| x * y),
        BinaryKind::Div => binary_with(op, a, b, |x: T, y: T| x / y),
    }
}

fn binary_with<T: Float>(
    op: &Binary, a: &CpuStorage, b: &CpuStorage, f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<Vec<CpuStorage>> {
    let (a, b) = (T::view(a), T::view(b));
    let n: usize = op.out.iter().product();
    // Every element is written below: a pooled buffer, no zeroing.
    let mut out = crate::pool::take(n);
    if op.a_shape == op.b_shape {
        par::for_each(n, PAR_MIN_ELEMS, (items_mut(&mut out), (items(a), items(b))), |(o, (&x, &y))| *o = f(x, y));
    } else {
        let sa = broadcast_strides(&op.a_shape, &op.out);
        let sb = broadcast_strides(&op.b_shape, &op.out);
        for_each_broadcast_row(&op.out, &sa, &sb, |o, oa, da, ob, db, len| {
            for j in 0..len {
                out[o + j] = f(a[oa + j * da], b[ob + j * db]);
            }
        });
    }
    Ok(vec![T::wrap(out)])
}

impl Op for Binary {
    fn name(&self) -> &'static str {
        match self.kind {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
            BinaryKind::Div => "div",
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), binary_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        launch::float_only(self.name(), x[0].dtype())?;
        let code = match self.kind {
            BinaryKind::Add => 0,
            BinaryKind::Sub => 1,
            BinaryKind::Mul => 2,
            BinaryKind::Div => 3,
        };
        Ok(vec![launch::binary_broadcast(be, self.name(), code, x[0], &self.a_shape, x[1], &self.b_shape, &self.out)?])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let (a, b) = (&ctx.inputs[0], &ctx.inputs[1]);
        let (ga, gb) = match self.kind {
            BinaryKind::Add => (g.clone(), g.clone()),
            BinaryKind::Sub => (g.clone(), neg(g)?),
            BinaryKind::Mul => (mul(g, b)?, mul(g, a)?),
            BinaryKind::Div => {
                let ga = div(g, b)?;
                // d(a/b)/db = -a/b² = -(a/b)/b
                let gb = neg(&div(&mul(&ga, a)?, b)?)?;
                (ga, gb)
            }
        };
        Ok(vec![Some(sum_to(&ga, &self.a_shape)?), Some(sum_to(&gb, &self.b_shape)?)])
    }
}

fn binary(kind: BinaryKind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = Binary { kind, a_shape: a.shape().to_vec(), b_shape: b.shape().to_vec(), out: Vec::new() };
    let name = op.name();
    check_float(name, a)?;
    check_same_dtype(name, a, b)?;
    let out = broadcast_shape(name, a.shape(), b.shape())?;
    let dtype = a.dtype();
    let op = Binary { out: out.clone(), ..op };
    Ok(apply(Arc::new(op), &[a, b], vec![(out, dtype)])?.remove(0))
}

/// `a + b` with NumPy broadcasting.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryKind::Add, a, b)
}
/// `a − b` with NumPy broadcasting.
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryKind::Sub, a, b)
}
/// `a ⊙ b` with NumPy broadcasting.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryKind::Mul, a, b)
}
/// `a / b` with NumPy broadcasting.
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryKind::Div, a, b)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryKind {
    Neg,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    Scale(f64),
    AddScalar(f64),
    Square,
    Sqrt,
}

struct Unary {
    kind: UnaryKind,
}

fn unary_map<T: Float>(kind: UnaryKind, x: T) -> T {
    match kind {
        UnaryKind::Neg => -x,
        UnaryKind::Exp => x.exp(),
        UnaryKind::Log => x.ln(),
        UnaryKind::Tanh => x.tanh(),
        UnaryKind::Sigmoid => x.sigmoid(),
        UnaryKind::Relu => {
            if x > T::ZERO {
                x
            } else {
                T::ZERO
            }
        }
        UnaryKind::Scale(c) => x * T::from_f64(c),
        UnaryKind::AddScalar(c) => x + T::from_f64(c),
        UnaryKind::Square => x * x,
        UnaryKind::Sqrt => x.sqrt(),
    }
}

fn unary_cpu<T: Float>(kind: UnaryKind, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let out: Vec<T> = par::map_collect(x.len(), PAR_MIN_ELEMS, items(x), |&v| unary_map(kind, v));
    Ok(vec![T::wrap(out)])
}

impl Op for Unary {
    fn name(&self) -> &'static str {
        match self.kind {
            UnaryKind::Neg => "neg",
            UnaryKind::Exp => "exp",
            UnaryKind::Log => "log",
            UnaryKind::Tanh => "tanh",
            UnaryKind::Sigmoid => "sigmoid",
            UnaryKind::Relu => "relu",
            UnaryKind::Scale(_) => "scale",
            UnaryKind::AddScalar(_) => "addScalar",
            UnaryKind::Square => "square",
            UnaryKind::Sqrt => "sqrt",
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), unary_cpu(self.kind, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let (code, c) = unary_code(self.kind);
        let n = x[0].len();
        let out = be.alloc(dt, n)?;
        k::UNARY.launch(be, dt, n, &[buf(&*out), buf(x[0]), int(n), KernelArg::I32(code), real(c)])?;
        Ok(vec![out])
    }
    fn saves_outputs(&self) -> bool {
        matches!(self.kind, UnaryKind::Exp | UnaryKind::Tanh | UnaryKind::Sigmoid | UnaryKind::Relu | UnaryKind::Sqrt)
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let gx = match self.kind {
            UnaryKind::Neg => neg(g)?,
            UnaryKind::Scale(c) => scale(g, c)?,
            UnaryKind::AddScalar(_) => g.clone(),
            UnaryKind::Log => div(g, &ctx.inputs[0])?,
            UnaryKind::Square => mul(g, &scale(&ctx.inputs[0], 2.0)?)?,
            kind => unary_grad(kind, g, &ctx.outputs[0])?,
        };
        Ok(vec![Some(gx)])
    }
}

/// The kernel's op code (kernels/elementwise.cu) and scalar operand of a unary kind.
fn unary_code(kind: UnaryKind) -> (i32, f64) {
    match kind {
        UnaryKind::Neg => (0, 0.0),
        UnaryKind::Exp => (1, 0.0),
        UnaryKind::Log => (2, 0.0),
        UnaryKind::Tanh => (3, 0.0),
        UnaryKind::Sigmoid => (4, 0.0),
        UnaryKind::Relu => (5, 0.0),
        UnaryKind::Scale(c) => (6, c),
        UnaryKind::AddScalar(c) => (7, c),
        UnaryKind::Square => (8, 0.0),
        UnaryKind::Sqrt => (9, 0.0),
    }
}

fn unary(kind: UnaryKind, x: &Tensor) -> Result<Tensor> {
    let op = Unary { kind };
    check_float(op.name(), x)?;
    let spec = vec![(x.shape().to_vec(), x.dtype())];
    Ok(apply(Arc::new(op), &[x], spec)?.remove(0))
}

pub fn neg(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Neg, x)
}
pub fn exp(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Exp, x)
}
pub fn log(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Log, x)
}
/// tanh(x); f32 uses a vectorisable polynomial accurate to a few ulp.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Tanh, x)
}
/// σ(x) = 1 / (1 + e^−x)
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Sigmoid, x)
}
/// max(x, 0)
pub fn relu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Relu, x)
}
/// c · x
pub fn scale(x: &Tensor, c: f64) -> Result<Tensor> {
    unary(UnaryKind::Scale(c), x)
}
/// x + c
pub fn add_scalar(x: &Tensor, c: f64) -> Result<Tensor> {
    unary(UnaryKind::AddScalar(c), x)
}
pub fn square(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Square, x)
}
pub fn sqrt(x: &Tensor) -> Result<Tensor> {
    unary(UnaryKind::Sqrt, x)
}

/// The fused gradient of an activation from its output y: one pass instead of three ops.
struct UnaryGrad {
    kind: UnaryKind,
}

fn unary_grad_cpu<T: Float>(kind: UnaryKind, g: &CpuStorage, y: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let (g, y) = (T::view(g), T::view(y));
    let two = T::from_f64(2.0);
    let f = move |(&g, &y): (&T, &T)| -> T {
        match kind {
            UnaryKind::Exp => g * y,
            UnaryKind::Tanh => g * (T::ONE - y * y),
            UnaryKind::Sigmoid => g * y * (T::ONE - y),
            UnaryKind::Relu => {
                if y > T::ZERO {
                    g
                } else {
                    T::ZERO
                }
            }
            UnaryKind::Sqrt => g / (two * y),
            _ => unreachable!("no fused gradient for {kind:?}"),
        }
    };
    let out: Vec<T> = par::map_collect(g.len(), PAR_MIN_ELEMS, (items(g), items(y)), f);
    Ok(vec![T::wrap(out)])
}

impl Op for UnaryGrad {
    fn name(&self) -> &'static str {
        "activationGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), unary_grad_cpu(self.kind, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = x[0].len();
        let out = be.alloc(dt, n)?;
        let code = unary_code(self.kind).0;
        k::UNARY_GRAD.launch(be, dt, n, &[buf(&*out), buf(x[0]), buf(x[1]), int(n), KernelArg::I32(code)])?;
        Ok(vec![out])
    }
}

fn unary_grad(kind: UnaryKind, g: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(apply(Arc::new(UnaryGrad { kind }), &[g, y], vec![(g.shape().to_vec(), g.dtype())])?.remove(0))
}

/// Sums `x` down to `shape` over the dimensions that broadcasting expanded (the adjoint of
/// broadcasting). Returns `x` itself when the shapes already match.
pub fn sum_to(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if x.shape() == shape {
        return Ok(x.clone());
    }
    let out = broadcast_shape("sumTo", shape, x.shape())?;
    if out != x.shape() {
        return Err(Error::shape(
            "sumTo",
            format!("a shape that broadcasts to {}", fmt_shape(x.shape())),
            fmt_shape(shape),
        ));
    }
    let op = SumTo { in_shape: x.shape().to_vec(), out_shape: shape.to_vec() };
    Ok(apply(Arc::new(op), &[x], vec![(shape.to_vec(), x.dtype())])?.remove(0))
}

/// Expands `x` to `shape` by broadcasting (materialised).
pub fn broadcast_to(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if x.shape() == shape {
        return Ok(x.clone());
    }
    let out = broadcast_shape("broadcastTo", x.shape(), shape)?;
    if out != shape {
        return Err(Error::shape(
            "broadcastTo",
            format!("a shape that {} broadcasts to", fmt_shape(x.shape())),
            fmt_shape(shape),
        ));
    }
    let op = BroadcastTo { in_shape: x.shape().to_vec(), out_shape: shape.to_vec() };
    Ok(apply(Arc::new(op), &[x], vec![(shape.to_vec(), x.dtype())])?.remove(0))
}

struct SumTo {
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
}

fn sum_to_cpu<T: Float>(op: &SumTo, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let n_out: usize = op.out_shape.iter().product();
    let mut out = vec![T::ZERO; n_out];
    let so = broadcast_strides(&op.out_shape, &op.in_shape);
    let ident: Vec<usize> = broadcast_strides(&op.in_shape, &op.in_shape);
    for_each_broadcast_row(&op.in_shape, &ident, &so, |_, ox, dx, oo, doo, len| {
        if doo == 0 {
            let mut acc = T::ZERO;
            for j in 0..len {
                acc += x[ox + j * dx];
            }
            out[oo] += acc;
        } else {
            for j in 0..len {
                out[oo + j] += x[ox + j * dx];
            }
        }
    });
    Ok(vec![T::wrap(out)])
}

impl Op for SumTo {
    fn name(&self) -> &'static str {
        "sumTo"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), sum_to_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        launch::float_only(self.name(), x[0].dtype())?;
        // Reduce every input dimension that is 1 (or missing) in the output.
        let pad = self.in_shape.len() - self.out_shape.len();
        let reduced: Vec<bool> = (0..self.in_shape.len()).map(|d| d < pad || self.out_shape[d - pad] == 1).collect();
        Ok(vec![launch::reduce_sum(be, self.name(), x[0], &self.in_shape, &reduced, 1.0)?])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(broadcast_to(grads[0].as_ref().expect("gradient"), &self.in_shape)?)])
    }
}

struct BroadcastTo {
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
}

fn broadcast_to_cpu<T: Float>(op: &BroadcastTo, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let n: usize = op.out_shape.iter().product();
    // Every element is written below: a pooled buffer, no zeroing.
    let mut out = crate::pool::take(n);
    let sx = broadcast_strides(&op.in_shape, &op.out_shape);
    for_each_broadcast_row(&op.out_shape, &sx, &sx, |o, ox, dx, _, _, len| {
        for j in 0..len {
            out[o + j] = x[ox + j * dx];
        }
    });
    Ok(vec![T::wrap(out)])
}

impl Op for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcastTo"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), broadcast_to_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        launch::float_only(self.name(), x[0].dtype())?;
        let strides = launch::broadcast_strides(&self.in_shape, &self.out_shape);
        Ok(vec![launch::gather(be, self.name(), x[0], &self.out_shape, &strides)?])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(sum_to(grads[0].as_ref().expect("gradient"), &self.in_shape)?)])
    }
}
