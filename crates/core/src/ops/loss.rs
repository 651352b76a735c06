//! Losses, each one fused op forward and one fused op backward: `mse` (mean squared error) and
//! `cross_entropy` (log-softmax + negative log-likelihood over class logits).
//!
//! `cross_entropy` follows PyTorch's `reduction='mean'`: the mean over the rows whose target is
//! not `ignore_index`. When every row is ignored the result is NaN (0/0), as in PyTorch, and the
//! gradient is zero.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::cpu::par::{self, items, rows, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, flag, int, kernels as k, real};
use crate::ops::elementwise::{check_float, check_same_dtype, dispatch_float};
use crate::storage::{CpuStorage, DType};
use crate::tensor::{Device, Tensor};
use std::sync::Arc;

/// Elements per partial sum; fixed so that results do not depend on the number of threads.
const SUM_CHUNK: usize = 1 << 12;

// ---------------------------------------------------------------------------------------------
// mse

struct Mse {
    n: usize,
}

fn mse_cpu<T: Float>(p: &CpuStorage, t: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let (p, t) = (T::view(p), T::view(t));
    let part = |(pc, tc): (&[T], &[T])| {
        let mut acc = T::ZERO;
        for (&a, &b) in pc.iter().zip(tc) {
            let d = a - b;
            acc += d * d;
        }
        acc
    };
    let partials: Vec<T> = par::map_collect(p.len(), PAR_MIN_ELEMS, (rows(p, SUM_CHUNK), rows(t, SUM_CHUNK)), part);
    let mut total = T::ZERO;
    for v in partials {
        total += v;
    }
    Ok(vec![T::wrap(vec![total / T::from_f64(p.len() as f64)])])
}

impl Op for Mse {
    fn name(&self) -> &'static str {
        "mse"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), mse_cpu(x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = x[0].len();
        let sq = be.alloc(dt, n)?;
        k::SQ_DIFF.launch(be, dt, n, &[buf(&*sq), buf(x[0]), buf(x[1]), int(n)])?;
        Ok(vec![launch::reduce_sum(be, self.name(), &*sq, &[n], &[true], 1.0 / n as f64)?])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let (p, t) = (&ctx.inputs[0], &ctx.inputs[1]);
        // The target's gradient only when it asks for one (a training target usually does not).
        let target_grad = ctx.needs_grad[1];
        let op = MseGrad { n: self.n, target_grad };
        let mut specs = vec![(p.shape().to_vec(), p.dtype())];
        if target_grad {
            specs.push((t.shape().to_vec(), t.dtype()));
        }
        let mut out: Vec<Option<Tensor>> = apply(Arc::new(op), &[g, p, t], specs)?.into_iter().map(Some).collect();
        out.resize(2, None);
        Ok(out)
    }
}

/// d/dp = 2g(p − t)/n and d/dt = −d/dp, in one pass.
struct MseGrad {
    n: usize,
    /// Whether d/dt is an output too.
    target_grad: bool,
}

fn mse_grad_cpu<T: Float>(op: &MseGrad, g: &CpuStorage, p: &CpuStorage, t: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let (g, p, t) = (T::view(g), T::view(p), T::view(t));
    let c = g[0] * T::from_f64(2.0 / op.n as f64);
    let f = |(&a, &b): (&T, &T)| c * (a - b);
    let gp: Vec<T> = par::map_collect(p.len(), PAR_MIN_ELEMS, (items(p), items(t)), f);
    if !op.target_grad {
        return Ok(vec![T::wrap(gp)]);
    }
    let gt: Vec<T> = par::map_collect(gp.len(), PAR_MIN_ELEMS, items(&gp), |&v: &T| -v);
    Ok(vec![T::wrap(gp), T::wrap(gt)])
}

impl Op for MseGrad {
    fn name(&self) -> &'static str {
        "mseGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), mse_grad_cpu(self, x[0], x[1], x[2]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = x[1].len();
        let (gp, gt) = (be.alloc(dt, n)?, be.alloc(dt, n)?);
        k::MSE_GRAD.launch(
            be,
            dt,
            n,
            &[buf(&*gp), buf(&*gt), buf(x[0]), buf(x[1]), buf(x[2]), int(n), real(2.0 / self.n as f64)],
        )?;
        Ok(if self.target_grad { vec![gp, gt] } else { vec![gp] })
    }
}

/// Mean squared error `mean((pred − target)²)` as a 0-d tensor; the shapes must match exactly.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    const OP: &str = "mse";
    check_float(OP, pred)?;
    check_same_dtype(OP, pred, target)?;
    if pred.shape() != target.shape() {
        return Err(Error::shape(
            OP,
            format!("a target of the prediction's shape {}", fmt_shape(pred.shape())),
            fmt_shape(target.shape()),
        ));
    }
    let op = Mse { n: pred.numel() };
    Ok(apply(Arc::new(op), &[pred, target], vec![(vec![], pred.dtype())])?.remove(0))
}

// ---------------------------------------------------------------------------------------------
// cross_entropy

const CE: &str = "crossEntropy";

struct CrossEntropy {
    c: usize,
    ignore: Option<i32>,
}

/// Checks every target is a class in [0, c) or the ignore index; returns how many count.
fn check_targets(targets: &[i32], c: usize, ignore: Option<i32>) -> Result<usize> {
    let mut count = 0;
    for (i, &t) in targets.iter().enumerate() {
        if Some(t) == ignore {
            continue;
        }
        if t < 0 || t as usize >= c {
            let ig = ignore.map(|v| format!(" or the ignore index {v}")).unwrap_or_default();
            return Err(Error::value(
                CE,
                format!("target {t} at row {i} is out of range: expected a class in [0, {c}) (C = {c}){ig}"),
            ));
        }
        count += 1;
    }
    Ok(count)
}

/// −log softmax(row)[t] = logsumexp(row) − row[t], with the maximum subtracted first.
fn row_nll<T: Float>(row: &[T], t: usize) -> T {
    let m = row.iter().fold(row[0], |a, &b| a.max(b));
    let mut s = T::ZERO;
    for &v in row {
        s += (v - m).exp();
    }
    m + s.ln() - row[t]
}

fn ce_cpu<T: Float>(op: &CrossEntropy, logits: &CpuStorage, targets: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(logits);
    let tg = targets.as_i32().expect("targets are int32");
    let count = check_targets(tg, op.c, op.ignore)?;
    let c = op.c;
    let f = |(row, &t): (&[T], &i32)| if Some(t) == op.ignore { T::ZERO } else { row_nll(row, t as usize) };
    let losses: Vec<T> = par::map_collect(x.len(), PAR_MIN_ELEMS, (rows(x, c), items(tg)), f);
    let mut total = T::ZERO;
    for v in losses {
        total += v;
    }
    // 0/0 = NaN when every row is ignored, as in PyTorch.
    Ok(vec![T::wrap(vec![total / T::from_f64(count as f64)])])
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        CE
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(CE, x[0].dtype(), ce_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(CE, dt)?;
        let sums = ce_sums_gpu(be, x[0], x[1], self.c, self.ignore)?;
        let out = be.alloc(dt, 1)?;
        k::CE_FINISH.launch(be, dt, 1, &[buf(&*out), buf(&*sums)])?;
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let (logits, targets) = (&ctx.inputs[0], &ctx.inputs[1]);
        let op = CrossEntropyGrad { c: self.c, ignore: self.ignore };
        let gx = apply(Arc::new(op), &[g, logits, targets], vec![(logits.shape().to_vec(), logits.dtype())])?.remove(0);
        Ok(vec![Some(gx), None])
    }
}

/// d loss / d logits = g / count · (softmax(row) − onehot(t)) for counted rows, 0 for ignored.
/// The softmax is recomputed from the logits rather than saved: one [N, C] less in memory.
struct CrossEntropyGrad {
    c: usize,
    ignore: Option<i32>,
}

fn ce_grad_cpu<T: Float>(
    op: &CrossEntropyGrad, g: &CpuStorage, logits: &CpuStorage, targets: &CpuStorage,
) -> Result<Vec<CpuStorage>> {
    let (g, x) = (T::view(g), T::view(logits));
    let tg = targets.as_i32().expect("targets are int32");
    let count = check_targets(tg, op.c, op.ignore)?;
    let c = op.c;
    let mut gx = vec![T::ZERO; x.len()];
    if count > 0 {
        let k = g[0] / T::from_f64(count as f64);
        let f = |((o, row), &t): ((&mut [T], &[T]), &i32)| {
            if Some(t) == op.ignore {
                return;
            }
            let m = row.iter().fold(row[0], |a, &b| a.max(b));
            let mut s = T::ZERO;
            for (o, &v) in o.iter_mut().zip(row) {
                *o = (v - m).exp();
                s += *o;
            }
            let r = k / s;
            o.iter_mut().for_each(|v| *v *= r);
            o[t as usize] -= k;
        };
        par::for_each(x.len(), PAR_MIN_ELEMS, ((rows_mut(&mut gx, c), rows(x, c)), items(tg)), f);
    }
    Ok(vec![T::wrap(gx)])
}

impl Op for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "crossEntropyGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), ce_grad_cpu(self, x[0], x[1], x[2]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[1].dtype();
        launch::float_only(self.name(), dt)?;
        let (g, logits, targets) = (x[0], x[1], x[2]);
        let sums = ce_sums_gpu(be, logits, targets, self.c, self.ignore)?;
        let rows = targets.len();
        let gx = be.alloc(dt, logits.len())?;
        let (threads, warp) = launch::rows_launch(rows, self.c);
        k::CE_GRAD.launch(
            be,
            dt,
            threads,
            &[
                buf(&*gx),
                buf(g),
                buf(&*sums),
                buf(logits),
                buf(targets),
                int(rows),
                int(self.c),
                KernelArg::I32(self.ignore.unwrap_or(0)),
                flag(self.ignore.is_some()),
                warp,
            ],
        )?;
        Ok(vec![gx])
    }
}

/// On the device: checks the targets (an out-of-range one gives the CPU's error), then returns
/// `[Σ loss, count]` over the rows.
fn ce_sums_gpu(
    be: &dyn GpuBackend, logits: &dyn DeviceBuffer, targets: &dyn DeviceBuffer, c: usize, ignore: Option<i32>,
) -> Result<Arc<dyn DeviceBuffer>> {
    // Checked without waiting: a bad target is reported (with the CPU's message) at the next
    // read back to the host; the kernels skip it meanwhile.
    let report = move |host: &[i32]| check_targets(host, c, ignore).map(|_| ());
    launch::check_indices_later(be, CE, targets, c, ignore, Box::new(report))?;
    let dt = logits.dtype();
    let rows = targets.len();
    let acc = be.alloc(dt, 2 * rows)?;
    let (threads, warp) = launch::rows_launch(rows, c);
    k::CE_ROWS.launch(
        be,
        dt,
        threads,
        &[
            buf(&*acc),
            buf(logits),
            buf(targets),
            int(rows),
            int(c),
            KernelArg::I32(ignore.unwrap_or(0)),
            flag(ignore.is_some()),
            warp,
        ],
    )?;
    launch::reduce_sum(be, CE, &*acc, &[rows, 2], &[true, false], 1.0)
}

/// Cross-entropy of class logits `[N, C]` against int32 class indices `[N]`: the mean over the
/// rows whose target is not `ignore_index` of `−log softmax(logits)[target]`, as a 0-d tensor.
/// All rows ignored gives NaN (PyTorch's behaviour) with a zero gradient. A target outside
/// `[0, C)` is an error: at once when the targets are already computed, else when the op runs.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore_index: Option<i32>) -> Result<Tensor> {
    check_float(CE, logits)?;
    if targets.dtype() != DType::I32 {
        return Err(Error::dtype(CE, "int32 targets", targets.dtype()));
    }
    let sl = logits.shape();
    if sl.len() != 2 {
        return Err(Error::shape(CE, "logits of shape [N, C]", fmt_shape(sl)));
    }
    let (n, c) = (sl[0], sl[1]);
    if targets.shape() != [n] {
        return Err(Error::shape(
            CE,
            format!("targets of shape [{n}] for logits of shape {}", fmt_shape(sl)),
            fmt_shape(targets.shape()),
        ));
    }
    // Host data only: reading device data here would wait for the device (a device op checks
    // its indices itself, reported at the next read).
    if targets.device() == Device::Cpu && targets.is_ready() {
        // A poisoned target surfaces when the op runs; only check values we can read now.
        if let Ok(s) = targets.storage() {
            check_targets(s.as_i32().expect("int32 storage"), c, ignore_index)?;
        }
    }
    let op = CrossEntropy { c, ignore: ignore_index };
    Ok(apply(Arc::new(op), &[logits, targets], vec![(vec![], logits.dtype())])?.remove(0))
}
