//! Fused optimizer updates: one op per parameter tensor reads the parameter, its gradient and
//! its state once and writes the new values, which then replace the old ones in place
//! (`Tensor::assign`). Formulas follow `torch.optim` exactly, so updates can be compared.

use crate::autograd::{apply, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, indexed, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, at, buf, flag, int, kernels as k, real, BLOCK};
use crate::ops::elementwise::dispatch_float;
use crate::storage::CpuStorage;
use crate::storage::DType;
use crate::tensor::Tensor;
use std::sync::Arc;

/// One update rule with its hyper-parameters for this step.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// state: [momentum buffer] when momentum ≠ 0. `first` marks the first step (buffer = g).
    Sgd { lr: f64, momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64, first: bool },
    /// state: [m, v]. `step` counts from 1. `decoupled` is AdamW.
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64, decoupled: bool, step: u64 },
    /// state: [square_avg] (+ [momentum_buffer] when momentum ≠ 0) (+ [grad_avg] when centered).
    RmsProp { lr: f64, alpha: f64, eps: f64, weight_decay: f64, momentum: f64, centered: bool },
    /// state: [sum]. `step` counts from 1.
    Adagrad { lr: f64, lr_decay: f64, weight_decay: f64, eps: f64, step: u64 },
}

impl Rule {
    fn name(&self) -> &'static str {
        match self {
            Rule::Sgd { .. } => "sgd",
            Rule::Adam { decoupled: false, .. } => "adam",
            Rule::Adam { decoupled: true, .. } => "adamw",
            Rule::RmsProp { .. } => "rmsprop",
            Rule::Adagrad { .. } => "adagrad",
        }
    }
    /// How many state tensors this rule keeps per parameter.
    pub fn state_count(&self) -> usize {
        match *self {
            Rule::Sgd { momentum, .. } => (momentum != 0.0) as usize,
            Rule::Adam { .. } => 2,
            Rule::RmsProp { momentum, centered, .. } => 1 + (momentum != 0.0) as usize + centered as usize,
            Rule::Adagrad { .. } => 1,
        }
    }
}

struct Update {
    rule: Rule,
}

/// Runs `run(p, g, states)` over ranges of the parameter in parallel: `p` a range of the new
/// parameter (a copy of the old one), `g` the same range of the gradient and `states` the same
/// range of each state tensor (copies too), all as plain slices. A rule whose loop is a function
/// taking them as separate arguments (`adam_run`) is known to read and write non-overlapping
/// memory, so the compiler vectorises it.
fn for_ranges<T: Float, const S: usize>(
    inp: &[&CpuStorage], run: impl Fn(&mut [T], &[T], [&mut [T]; S]) + Sync,
) -> Vec<CpuStorage> {
    // Copies in pooled buffers: a model's parameters and states are freed and made again on
    // every step.
    let mut p = crate::pool::copy_of(T::view(inp[0]));
    let g = T::view(inp[1]);
    let mut states: Vec<Vec<T>> = (0..S).map(|k| crate::pool::copy_of(T::view(inp[2 + k]))).collect();
    let n = p.len();
    let st_ptrs: Vec<usize> = states.iter_mut().map(|v| v.as_mut_ptr() as usize).collect();
    // About four chunks per thread (at least 4096 elements each), so that the pool balances.
    let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(4096);
    par::for_each(n, PAR_MIN_ELEMS, indexed(rows_mut(&mut p, chunk)), |(c, pc)| {
        let (at, len) = (c * chunk, pc.len());
        // SAFETY: each task owns the disjoint range [at, at + len) of every state vector.
        let st =
            std::array::from_fn(|k| unsafe { std::slice::from_raw_parts_mut((st_ptrs[k] as *mut T).add(at), len) });
        run(pc, &g[at..at + len], st);
    });
    let mut out = vec![T::wrap(p)];
    out.extend(states.into_iter().map(T::wrap));
    out
}

/// Applies `f(p, g, state)` to every element; `state` holds this element's state values.
fn map_elements<T: Float, const S: usize>(
    inp: &[&CpuStorage], f: impl Fn(&mut T, T, &mut [T; S]) + Sync,
) -> Vec<CpuStorage> {
    for_ranges::<T, S>(inp, |p, g, mut st| {
        for (j, (pj, &gj)) in p.iter_mut().zip(g).enumerate() {
            let mut s: [T; S] = std::array::from_fn(|k| st[k][j]);
            f(pj, gj, &mut s);
            for (sk, v) in st.iter_mut().zip(s) {
                sk[j] = v;
            }
        }
    })
}

/// Adam's per-element constants for one step.
struct AdamConsts<T> {
    b1: T,
    b2: T,
    eps: T,
    wd: T,
    lr_t: T,
    step_size: T,
    bc2_sqrt: T,
}

/// torch.optim.Adam(W)'s update over a range, the same operations in the same order.
#[inline(never)]
fn adam_run<T: Float, const DECOUPLED: bool>(k: &AdamConsts<T>, p: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) {
    let len = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&mut p[..len], &g[..len], &mut m[..len], &mut v[..len]);
    for j in 0..len {
        let gj = if DECOUPLED {
            p[j] *= T::ONE - k.lr_t * k.wd;
            g[j]
        } else {
            g[j] + k.wd * p[j]
        };
        m[j] = k.b1 * m[j] + (T::ONE - k.b1) * gj;
        v[j] = k.b2 * v[j] + (T::ONE - k.b2) * gj * gj;
        let denom = v[j].sqrt() / k.bc2_sqrt + k.eps;
        p[j] -= k.step_size * m[j] / denom;
    }
}

/// torch.optim.SGD's update over a range (MOMENTUM: with its buffer `b`), in the same
/// operations and order as torch; a slice loop, like [`adam_run`], so that it vectorises.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn sgd_run<T: Float, const MOMENTUM: bool>(
    (lr, mo, damp, wd): (T, T, T, T), first: bool, nesterov: bool, p: &mut [T], g: &[T], b: &mut [T],
) {
    let len = p.len().min(g.len()).min(if MOMENTUM { b.len() } else { usize::MAX });
    let (p, g) = (&mut p[..len], &g[..len]);
    if !MOMENTUM {
        for j in 0..len {
            let gj = g[j] + wd * p[j];
            p[j] -= lr * gj;
        }
        return;
    }
    let b = &mut b[..len];
    for j in 0..len {
        let gj = g[j] + wd * p[j];
        b[j] = if first { gj } else { mo * b[j] + (T::ONE - damp) * gj };
        let d = if nesterov { gj + mo * b[j] } else { b[j] };
        p[j] -= lr * d;
    }
}

/// torch.optim.Adagrad's update over a range (as [`sgd_run`]).
#[inline(never)]
fn adagrad_run<T: Float>((clr, wd, eps): (T, T, T), p: &mut [T], g: &[T], sum: &mut [T]) {
    let len = p.len().min(g.len()).min(sum.len());
    let (p, g, sum) = (&mut p[..len], &g[..len], &mut sum[..len]);
    for j in 0..len {
        let gj = g[j] + wd * p[j];
        sum[j] += gj * gj;
        p[j] -= clr * gj / (sum[j].sqrt() + eps);
    }
}

/// torch.optim.RMSprop's update over a range without momentum or centering (as [`sgd_run`]);
/// the other forms keep the per-element loop.
#[inline(never)]
fn rmsprop_run<T: Float>((lr, a, eps, wd): (T, T, T, T), p: &mut [T], g: &[T], sq: &mut [T]) {
    let len = p.len().min(g.len()).min(sq.len());
    let (p, g, sq) = (&mut p[..len], &g[..len], &mut sq[..len]);
    for j in 0..len {
        let gj = g[j] + wd * p[j];
        sq[j] = a * sq[j] + (T::ONE - a) * gj * gj;
        let avg = sq[j].sqrt() + eps;
        p[j] -= lr * gj / avg;
    }
}

fn update_cpu<T: Float>(rule: Rule, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let c = T::from_f64;
    Ok(match rule {
        Rule::Sgd { lr, momentum, dampening, nesterov, weight_decay, first } => {
            let k = (c(lr), c(momentum), c(dampening), c(weight_decay));
            if momentum == 0.0 {
                for_ranges::<T, 0>(inp, |p, g, _| sgd_run::<T, false>(k, first, nesterov, p, g, &mut []))
            } else {
                for_ranges::<T, 1>(inp, |p, g, [b]| sgd_run::<T, true>(k, first, nesterov, p, g, b))
            }
        }
        Rule::Adam { lr, beta1, beta2, eps, weight_decay, decoupled, step } => {
            let bc1 = 1.0 - beta1.powi(step as i32);
            let bc2 = 1.0 - beta2.powi(step as i32);
            let (step_size, bc2_sqrt) = (c(lr / bc1), c(bc2.sqrt()));
            let (b1, b2, eps, wd, lr_t) = (c(beta1), c(beta2), c(eps), c(weight_decay), c(lr));
            let k = AdamConsts { b1, b2, eps, wd, lr_t, step_size, bc2_sqrt };
            for_ranges::<T, 2>(inp, |p, g, [m, v]| {
                if decoupled {
                    adam_run::<T, true>(&k, p, g, m, v)
                } else {
                    adam_run::<T, false>(&k, p, g, m, v)
                }
            })
        }
        Rule::RmsProp { lr, alpha, eps, weight_decay, momentum, centered } => {
            let (lr, a, eps, wd, mo) = (c(lr), c(alpha), c(eps), c(weight_decay), c(momentum));
            let step = move |p: &mut T, g: T, sq: &mut T, buf: Option<&mut T>, ga: Option<&mut T>| {
                let g = g + wd * *p;
                *sq = a * *sq + (T::ONE - a) * g * g;
                let avg = match ga {
                    Some(ga) => {
                        *ga = a * *ga + (T::ONE - a) * g;
                        (*sq - *ga * *ga).sqrt() + eps
                    }
                    None => sq.sqrt() + eps,
                };
                match buf {
                    Some(b) => {
                        *b = mo * *b + g / avg;
                        *p -= lr * *b;
                    }
                    None => *p -= lr * g / avg,
                }
            };
            match (momentum != 0.0, centered) {
                (false, false) => for_ranges::<T, 1>(inp, |p, g, [sq]| rmsprop_run((lr, a, eps, wd), p, g, sq)),
                (true, false) => map_elements::<T, 2>(inp, |p, g, s| {
                    let (a, b) = s.split_at_mut(1);
                    step(p, g, &mut a[0], Some(&mut b[0]), None)
                }),
                (false, true) => map_elements::<T, 2>(inp, |p, g, s| {
                    let (a, b) = s.split_at_mut(1);
                    step(p, g, &mut a[0], None, Some(&mut b[0]))
                }),
                (true, true) => map_elements::<T, 3>(inp, |p, g, s| {
                    let (a, rest) = s.split_at_mut(1);
                    let (b, ga) = rest.split_at_mut(1);
                    step(p, g, &mut a[0], Some(&mut b[0]), Some(&mut ga[0]))
                }),
            }
        }
        Rule::Adagrad { lr, lr_decay, weight_decay, eps, step } => {
            let clr = c(lr / (1.0 + (step as f64 - 1.0) * lr_decay));
            let (wd, eps) = (c(weight_decay), c(eps));
            for_ranges::<T, 1>(inp, |p, g, [sum]| adagrad_run((clr, wd, eps), p, g, sum))
        }
    })
}

/// One kernel per parameter tensor: reads p, g and the state, writes new p and state buffers
/// (absent state slots get a dummy pointer the kernel never touches).
fn update_gpu(rule: Rule, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
    let dt = x[0].dtype();
    launch::float_only(rule.name(), dt)?;
    let n = x[0].len();
    let (p, g) = (x[0], x[1]);
    let mut outs: Vec<Arc<dyn DeviceBuffer>> = Vec::with_capacity(x.len() - 1);
    for _ in 0..x.len() - 1 {
        outs.push(be.alloc(dt, n)?);
    }
    let o = |k: usize| -> &dyn DeviceBuffer { &*outs[k.min(outs.len() - 1)] };
    let kernel = match rule {
        Rule::Sgd { .. } => &k::SGD,
        Rule::Adam { .. } => &k::ADAM,
        Rule::RmsProp { .. } => &k::RMSPROP,
        Rule::Adagrad { .. } => &k::ADAGRAD,
    };
    match rule {
        Rule::Sgd { lr, momentum, dampening, nesterov, weight_decay, first } => {
            let has_m = momentum != 0.0;
            let buf_in = if has_m { x[2] } else { p };
            kernel.launch(
                be,
                dt,
                n,
                &[
                    buf(o(0)),
                    buf(o(1)),
                    buf(p),
                    buf(g),
                    buf(buf_in),
                    int(n),
                    real(lr),
                    real(momentum),
                    real(dampening),
                    real(weight_decay),
                    flag(nesterov),
                    flag(first),
                    flag(has_m),
                ],
            )?;
        }
        Rule::Adam { lr, beta1, beta2, eps, weight_decay, decoupled, step } => {
            let bc1 = 1.0 - beta1.powi(step as i32);
            let bc2 = 1.0 - beta2.powi(step as i32);
            kernel.launch(
                be,
                dt,
                n,
                &[
                    buf(o(0)),
                    buf(o(1)),
                    buf(o(2)),
                    buf(p),
                    buf(g),
                    buf(x[2]),
                    buf(x[3]),
                    int(n),
                    real(lr / bc1),
                    real(bc2.sqrt()),
                    real(beta1),
                    real(beta2),
                    real(eps),
                    real(weight_decay),
                    real(lr),
                    flag(decoupled),
                ],
            )?;
        }
        Rule::RmsProp { lr, alpha, eps, weight_decay, momentum, centered } => {
            let has_m = momentum != 0.0;
            // State order: square_avg, [momentum_buffer], [grad_avg]; outputs follow p.
            let (buf_at, ga_at) =
                (if has_m { Some(1) } else { None }, if centered { Some(1 + has_m as usize) } else { None });
            let sin = |at: Option<usize>| at.map(|a| x[2 + a]).unwrap_or(p);
            let sout = |at: Option<usize>| at.map(|a| o(1 + a)).unwrap_or(o(0));
            kernel.launch(
                be,
                dt,
                n,
                &[
                    buf(o(0)),
                    buf(o(1)),
                    buf(sout(buf_at)),
                    buf(sout(ga_at)),
                    buf(p),
                    buf(g),
                    buf(x[2]),
                    buf(sin(buf_at)),
                    buf(sin(ga_at)),
                    int(n),
                    real(lr),
                    real(alpha),
                    real(eps),
                    real(weight_decay),
                    real(momentum),
                    flag(has_m),
                    flag(centered),
                ],
            )?;
        }
        Rule::Adagrad { lr, lr_decay, weight_decay, eps, step } => {
            let clr = lr / (1.0 + (step as f64 - 1.0) * lr_decay);
            kernel.launch(
                be,
                dt,
                n,
                &[buf(o(0)), buf(o(1)), buf(p), buf(g), buf(x[2]), int(n), real(clr), real(weight_decay), real(eps)],
            )?;
        }
    }
    Ok(outs)
}

impl Op for Update {
    fn name(&self) -> &'static str {
        self.rule.name()
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), inp[0].dtype(), update_cpu(self.rule, inp))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        update_gpu(self.rule, be, x)
    }
}

/// Updates `param` and its `state` tensors in place by one step of `rule`, as one fused op.
/// Ops enqueued earlier still see the old values; everything after sees the new.
pub fn update(rule: Rule, param: &Tensor, grad: &Tensor, state: &[&Tensor]) -> Result<()> {
    let op = rule.name();
    if state.len() != rule.state_count() {
        return Err(Error::value(op, format!("expected {} state tensors, got {}", rule.state_count(), state.len())));
    }
    if !param.dtype().is_float() {
        return Err(Error::dtype(op, "a float32 or float64 parameter", param.dtype()));
    }
    for (name, t) in std::iter::once(("grad", grad)).chain(state.iter().map(|t| ("state", *t))) {
        if t.shape() != param.shape() {
            return Err(Error::shape(
                op,
                format!("{name} of shape {} (the parameter's)", fmt_shape(param.shape())),
                fmt_shape(t.shape()),
            ));
        }
        if t.dtype() != param.dtype() {
            return Err(Error::dtype(op, param.dtype(), t.dtype()));
        }
    }
    let mut inputs = vec![param, grad];
    inputs.extend_from_slice(state);
    let specs = inputs.iter().filter(|t| !std::ptr::eq(**t, grad)).map(|t| (t.shape().to_vec(), t.dtype())).collect();
    let outs = crate::no_grad(|| apply(Arc::new(Update { rule }), &inputs, specs))?;
    param.assign(&outs[0])?;
    for (s, new) in state.iter().zip(&outs[1..]) {
        s.assign(new)?;
    }
    Ok(())
}

struct ClipNorm {
    max_norm: f64,
    norm_type: f64,
}

fn clip_norm_cpu<T: Float>(op: &ClipNorm, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    // Accumulated in f64, tensor by tensor in order: deterministic and accurate.
    let total = if op.norm_type.is_infinite() {
        inp.iter().flat_map(|s| T::view(s).iter()).fold(0.0f64, |m, &v| m.max(v.to_f64().abs()))
    } else {
        let mut acc = 0.0f64;
        for s in inp {
            for &v in T::view(s) {
                acc += v.to_f64().abs().powf(op.norm_type);
            }
        }
        acc.powf(1.0 / op.norm_type)
    };
    let coef = op.max_norm / (total + 1e-6);
    let scale = T::from_f64(coef.min(1.0));
    let mut out: Vec<CpuStorage> = inp
        .iter()
        .map(|s| {
            let v = T::view(s);
            T::wrap(if coef < 1.0 { v.iter().map(|&x| x * scale).collect() } else { v.to_vec() })
        })
        .collect();
    out.push(T::wrap(vec![T::from_f64(total)]));
    Ok(out)
}

/// The global norm in double (per-tensor partial sums, one combining block), then one scaling
/// kernel per tensor that reads the coefficient on the device: no host round trip.
fn clip_norm_gpu(op: &ClipNorm, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
    let dt = x[0].dtype();
    launch::float_only("clipGradNorm", dt)?;
    let is_inf = op.norm_type.is_infinite();
    let parts: Vec<usize> = x.iter().map(|t| (t.len() / (BLOCK * 16)).clamp(1, 64)).collect();
    let total_parts: usize = parts.iter().sum();
    let partials = be.alloc(DType::F64, total_parts)?;
    let mut offset = 0;
    for (t, &np) in x.iter().zip(&parts) {
        k::NORM_PARTIAL.launch(
            be,
            dt,
            np * BLOCK,
            &[at(&*partials, offset), buf(*t), int(t.len()), int(np), real(op.norm_type), flag(is_inf)],
        )?;
        offset += np;
    }
    let coef = be.alloc(DType::F64, 2)?;
    k::CLIP_COEF.launch(
        be,
        DType::F64,
        BLOCK,
        &[buf(&*coef), buf(&*partials), int(total_parts), real(op.max_norm), real(op.norm_type), flag(is_inf)],
    )?;
    let mut outs: Vec<Arc<dyn DeviceBuffer>> = Vec::with_capacity(x.len() + 1);
    for t in x {
        let out = be.alloc(dt, t.len())?;
        k::CLIP_SCALE.launch(be, dt, t.len(), &[buf(&*out), buf(*t), int(t.len()), buf(&*coef)])?;
        outs.push(out);
    }
    let norm = be.alloc(dt, 1)?;
    k::CLIP_NORM_OUT.launch(be, dt, 1, &[buf(&*norm), buf(&*coef)])?;
    outs.push(norm);
    Ok(outs)
}

impl Op for ClipNorm {
    fn name(&self) -> &'static str {
        "clipGradNorm"
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), inp[0].dtype(), clip_norm_cpu(self, inp))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        clip_norm_gpu(self, be, x)
    }
}

/// Scales `grads` in place so that their global `norm_type`-norm is at most `max_norm`
/// (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping as a 0-d tensor,
/// without waiting for it.
pub fn clip_grad_norm(grads: &[&Tensor], max_norm: f64, norm_type: f64) -> Result<Tensor> {
    let op = "clipGradNorm";
    if grads.is_empty() {
        return Err(Error::value(op, "no gradients to clip (call backward() first)"));
    }
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // written so that NaN fails too
    if !(max_norm > 0.0) || !(norm_type > 0.0) {
        return Err(Error::value(op, format!("maxNorm and normType must be positive, got {max_norm} and {norm_type}")));
    }
    let dt = grads[0].dtype();
    if let Some(bad) = grads.iter().find(|g| g.dtype() != dt || !dt.is_float()) {
        return Err(Error::dtype(op, format!("float gradients of one dtype ({dt})"), bad.dtype()));
    }
    let mut specs: Vec<_> = grads.iter().map(|g| (g.shape().to_vec(), dt)).collect();
    specs.push((vec![], dt));
    let mut outs = crate::no_grad(|| apply(Arc::new(ClipNorm { max_norm, norm_type }), grads, specs))?;
    let norm = outs.pop().expect("norm output");
    for (g, new) in grads.iter().zip(&outs) {
        g.assign(new)?;
    }
    Ok(norm)
}

struct ClipValue {
    limit: f64,
}

fn clip_value_cpu<T: Float>(limit: f64, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let (lo, hi) = (T::from_f64(-limit), T::from_f64(limit));
    Ok(vec![T::wrap(
        T::view(inp[0])
            .iter()
            .map(|&v| {
                if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            })
            .collect(),
    )])
}

impl Op for ClipValue {
    fn name(&self) -> &'static str {
        "clipGradValue"
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), inp[0].dtype(), clip_value_cpu(self.limit, inp))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = x[0].len();
        let out = be.alloc(dt, n)?;
        k::CLAMP.launch(be, dt, n, &[buf(&*out), buf(x[0]), int(n), real(-self.limit), real(self.limit)])?;
        Ok(vec![out])
    }
}

/// Clamps every gradient element into [−limit, limit] in place (torch.nn.utils.clip_grad_value_).
pub fn clip_grad_value(grads: &[&Tensor], limit: f64) -> Result<()> {
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // written so that NaN fails too
    if !(limit > 0.0) {
        return Err(Error::value("clipGradValue", format!("the limit must be positive, got {limit}")));
    }
    for g in grads {
        let spec = vec![(g.shape().to_vec(), g.dtype())];
        let out = crate::no_grad(|| apply(Arc::new(ClipValue { limit }), &[g], spec))?;
        g.assign(&out[0])?;
    }
    Ok(())
}
