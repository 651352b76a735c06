//! Normalisations: `batch_norm2d` (per channel of NCHW images; batch statistics in training,
//! with PyTorch's update of the running mean and unbiased running variance, running statistics
//! in evaluation) and `layer_norm` (over the trailing dimensions of each row), both with
//! optional affine weight and bias, and fused backwards.
//!
//! The forward ops keep nothing: their backwards recompute the per-channel (per-row) mean and
//! variance from the saved input, one cheap pass, rather than holding extra outputs alive.
//! Statistics are two-pass (mean, then the mean squared deviation), in the element type.
//! On the CPU channels (rows) run in parallel; sums over rows (layer norm's weight gradient)
//! add fixed chunks in order, so results do not depend on the threads. The device kernels
//! (`kernels/norm.cu`) give a block to each channel (a warp or a block to each row) for the
//! reductions, and a thread to each element for the rest.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::cpu::par::{self, indexed, items, rows, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, flag, int, kernels as k, real, BLOCK};
use crate::ops::elementwise::{check_float, check_same_dtype, dispatch_float};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Rows per partial sum of layer norm's weight and bias gradients.
const ROW_CHUNK: usize = 64;

/// Mean and biased variance of `len` values read by `at(i)`, two-pass.
#[inline]
fn stats<T: Float>(len: usize, at: impl Fn(usize) -> T) -> (T, T) {
    let count = T::from_f64(len as f64);
    let mut s = T::ZERO;
    for i in 0..len {
        s += at(i);
    }
    let mean = s / count;
    let mut q = T::ZERO;
    for i in 0..len {
        let d = at(i) - mean;
        q += d * d;
    }
    (mean, q / count)
}

fn inv_std<T: Float>(var: T, eps: f64) -> T {
    T::ONE / (var + T::from_f64(eps)).sqrt()
}

// ---------------------------------------------------------------------------------------------
// batch norm

/// Which inputs a batch norm has, after `x`: weight, bias, then running mean and variance.
#[derive(Clone, Copy, Debug)]
struct BnLayout {
    n: usize,
    c: usize,
    hw: usize,
    has_w: bool,
    has_b: bool,
    has_running: bool,
    /// Normalise by the batch's statistics (training, or no running statistics kept).
    batch_stats: bool,
    eps: f64,
}

impl BnLayout {
    fn w_at(&self) -> Option<usize> {
        self.has_w.then_some(1)
    }
    fn b_at(&self) -> Option<usize> {
        self.has_b.then_some(1 + self.has_w as usize)
    }
    fn running_at(&self) -> Option<usize> {
        self.has_running.then_some(1 + self.has_w as usize + self.has_b as usize)
    }
    fn count(&self) -> usize {
        self.n * self.hw
    }
    fn dims(&self) -> [KernelArg<'static>; 3] {
        [int(self.n), int(self.c), int(self.hw)]
    }
}

/// Forward: inputs `[x, w?, b?, running_mean?, running_var?]`; outputs `[y]`, plus the new
/// running mean and variance when it updates them.
struct BatchNorm {
    l: BnLayout,
    /// Update the running statistics with this factor (training with running statistics).
    momentum: Option<f64>,
}

/// Per-channel (mean, biased variance) of `x [N, C, HW]`.
fn channel_stats<T: Float>(l: &BnLayout, x: &[T]) -> Vec<(T, T)> {
    let ids: Vec<usize> = (0..l.c).collect();
    par::map_collect(x.len(), PAR_MIN_ELEMS, items(&ids), |&c| {
        stats(l.count(), |i| {
            let (b, j) = (i / l.hw, i % l.hw);
            x[(b * l.c + c) * l.hw + j]
        })
    })
}

/// The statistics a batch norm normalises with: the batch's, or the running ones.
fn bn_stats<T: Float>(l: &BnLayout, x: &[T], inputs: &[&CpuStorage]) -> Vec<(T, T)> {
    match (l.batch_stats, l.running_at()) {
        (false, Some(r)) => {
            let (rm, rv) = (T::view(inputs[r]), T::view(inputs[r + 1]));
            rm.iter().zip(rv).map(|(&m, &v)| (m, v)).collect()
        }
        _ => channel_stats(l, x),
    }
}

fn batch_norm_cpu<T: Float>(op: &BatchNorm, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let l = &op.l;
    let x = T::view(inputs[0]);
    let st = bn_stats(l, x, inputs);
    let w = l.w_at().map(|i| T::view(inputs[i]));
    let b = l.b_at().map(|i| T::view(inputs[i]));
    // y = x·scale + shift per channel.
    let coef: Vec<(T, T)> = (0..l.c)
        .map(|c| {
            let (mean, var) = st[c];
            let scale = inv_std(var, l.eps) * w.map_or(T::ONE, |w| w[c]);
            (scale, b.map_or(T::ZERO, |b| b[c]) - mean * scale)
        })
        .collect();
    let mut y = vec![T::ZERO; x.len()];
    par::for_each(y.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut y, l.hw)), |(pl, yp)| {
        let (scale, shift) = coef[pl % l.c];
        for (o, &v) in yp.iter_mut().zip(&x[pl * l.hw..(pl + 1) * l.hw]) {
            *o = v * scale + shift;
        }
    });
    let mut out = vec![T::wrap(y)];
    if let (Some(m), Some(r)) = (op.momentum, l.running_at()) {
        let (rm, rv) = (T::view(inputs[r]), T::view(inputs[r + 1]));
        let (m, keep) = (T::from_f64(m), T::from_f64(1.0 - m));
        let unbias = T::from_f64(l.count() as f64 / (l.count() - 1) as f64);
        out.push(T::wrap((0..l.c).map(|c| keep * rm[c] + m * st[c].0).collect()));
        out.push(T::wrap((0..l.c).map(|c| keep * rv[c] + m * st[c].1 * unbias).collect()));
    }
    Ok(out)
}

/// The device's statistics: (mean, variance) buffers, computed or the running ones.
fn bn_stats_gpu(
    be: &dyn GpuBackend, l: &BnLayout, x: &[&dyn DeviceBuffer],
) -> Result<(Option<(launch::Buf, launch::Buf)>, usize)> {
    match (l.batch_stats, l.running_at()) {
        (false, Some(r)) => Ok((None, r)),
        _ => {
            let dt = x[0].dtype();
            let (mean, var) = (be.alloc(dt, l.c)?, be.alloc(dt, l.c)?);
            let mut args = vec![buf(&*mean), buf(&*var), buf(x[0])];
            args.extend(l.dims());
            k::BATCH_NORM_STATS.launch(be, dt, l.c * BLOCK, &args)?;
            Ok((Some((mean, var)), 0))
        }
    }
}

impl Op for BatchNorm {
    fn name(&self) -> &'static str {
        "batchNorm2d"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), batch_norm_cpu(self, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let l = &self.l;
        let (computed, r) = bn_stats_gpu(be, l, x)?;
        let (mean, var): (&dyn DeviceBuffer, &dyn DeviceBuffer) = match &computed {
            Some((m, v)) => (&**m, &**v),
            None => (x[r], x[r + 1]),
        };
        // An absent weight or bias is flagged off; the kernel never reads the stand-in.
        let w = l.w_at().map_or(x[0], |i| x[i]);
        let b = l.b_at().map_or(x[0], |i| x[i]);
        let y = be.alloc(dt, x[0].len())?;
        let mut args = vec![buf(&*y), buf(x[0]), buf(mean), buf(var), buf(w), buf(b)];
        args.extend(l.dims());
        args.extend([real(l.eps), flag(l.has_w), flag(l.has_b)]);
        k::BATCH_NORM_FWD.launch(be, dt, x[0].len(), &args)?;
        let mut out = vec![y];
        if let (Some(m), Some(r)) = (self.momentum, l.running_at()) {
            let (nm, nv) = (be.alloc(dt, l.c)?, be.alloc(dt, l.c)?);
            k::BATCH_NORM_RUNNING.launch(
                be,
                dt,
                l.c,
                &[
                    buf(&*nm),
                    buf(&*nv),
                    buf(x[r]),
                    buf(x[r + 1]),
                    buf(mean),
                    buf(var),
                    int(l.c),
                    int(l.count()),
                    real(m),
                ],
            )?;
            out.extend([nm, nv]);
        }
        Ok(out)
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let mut out: Vec<Option<Tensor>> = vec![None; ctx.inputs.len()];
        let Some(g) = grads[0].as_ref() else { return Ok(out) };
        let l = self.l;
        let mut inputs = vec![g, &ctx.inputs[0]];
        if let Some(i) = l.w_at() {
            inputs.push(&ctx.inputs[i]);
        }
        if let (false, Some(r)) = (l.batch_stats, l.running_at()) {
            inputs.extend([&ctx.inputs[r], &ctx.inputs[r + 1]]);
        }
        let dt = g.dtype();
        let specs = vec![(ctx.inputs[0].shape().to_vec(), dt), (vec![l.c], dt), (vec![l.c], dt)];
        let mut gs = apply(Arc::new(BatchNormGrad { l }), &inputs, specs)?.into_iter();
        out[0] = gs.next();
        let (gw, gb) = (gs.next(), gs.next());
        if let Some(i) = l.w_at() {
            out[i] = gw;
        }
        if let Some(i) = l.b_at() {
            out[i] = gb;
        }
        Ok(out)
    }
}

/// Inputs `[dY, x, w?, running_mean?, running_var?]` (running statistics only when the forward
/// normalised with them); outputs `[dX, dW, dB]`.
struct BatchNormGrad {
    l: BnLayout,
}

fn batch_norm_grad_cpu<T: Float>(l: &BnLayout, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let (gy, x) = (T::view(inputs[0]), T::view(inputs[1]));
    let w = l.has_w.then(|| T::view(inputs[2]));
    let st: Vec<(T, T)> = if l.batch_stats {
        channel_stats(l, x)
    } else {
        let r = 2 + l.has_w as usize;
        T::view(inputs[r]).iter().zip(T::view(inputs[r + 1])).map(|(&m, &v)| (m, v)).collect()
    };
    let ids: Vec<usize> = (0..l.c).collect();
    // Per channel: Σ dy and Σ dy·x̂.
    let sums: Vec<(T, T)> = par::map_collect(x.len(), PAR_MIN_ELEMS, items(&ids), |&c| {
        let (mean, var) = st[c];
        let is = inv_std(var, l.eps);
        let (mut sg, mut sgx) = (T::ZERO, T::ZERO);
        for b in 0..l.n {
            let at = (b * l.c + c) * l.hw;
            for (&gv, &xv) in gy[at..at + l.hw].iter().zip(&x[at..at + l.hw]) {
                sg += gv;
                sgx += gv * (xv - mean) * is;
            }
        }
        (sg, sgx)
    });
    let count = T::from_f64(l.count() as f64);
    let mut gx = vec![T::ZERO; x.len()];
    par::for_each(gx.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut gx, l.hw)), |(pl, gp)| {
        let c = pl % l.c;
        let (mean, var) = st[c];
        let is = inv_std(var, l.eps);
        let k = is * w.map_or(T::ONE, |w| w[c]);
        let (sg, sgx) = sums[c];
        let at = pl * l.hw;
        for ((o, &gv), &xv) in gp.iter_mut().zip(&gy[at..at + l.hw]).zip(&x[at..at + l.hw]) {
            *o = if l.batch_stats {
                // The batch's mean and variance depend on x too.
                k * (gv - sg / count - (xv - mean) * is * sgx / count)
            } else {
                k * gv
            };
        }
    });
    let gw = sums.iter().map(|s| s.1).collect();
    let gb = sums.iter().map(|s| s.0).collect();
    Ok(vec![T::wrap(gx), T::wrap(gw), T::wrap(gb)])
}

impl Op for BatchNormGrad {
    fn name(&self) -> &'static str {
        "batchNorm2dGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), batch_norm_grad_cpu(&self.l, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let l = &self.l;
        let (gy, xx) = (x[0], x[1]);
        let computed;
        let (mean, var): (&dyn DeviceBuffer, &dyn DeviceBuffer) = if l.batch_stats {
            let (m, v) = (be.alloc(dt, l.c)?, be.alloc(dt, l.c)?);
            let mut args = vec![buf(&*m), buf(&*v), buf(xx)];
            args.extend(l.dims());
            k::BATCH_NORM_STATS.launch(be, dt, l.c * BLOCK, &args)?;
            computed = (m, v);
            (&*computed.0, &*computed.1)
        } else {
            let r = 2 + l.has_w as usize;
            (x[r], x[r + 1])
        };
        let w = if l.has_w { x[2] } else { xx };
        let (gw, gb) = (be.alloc(dt, l.c)?, be.alloc(dt, l.c)?);
        let mut args = vec![buf(&*gb), buf(&*gw), buf(gy), buf(xx), buf(mean), buf(var)];
        args.extend(l.dims());
        args.push(real(l.eps));
        k::BATCH_NORM_BWD_REDUCE.launch(be, dt, l.c * BLOCK, &args)?;
        let gx = be.alloc(dt, xx.len())?;
        let mut args = vec![buf(&*gx), buf(gy), buf(xx), buf(mean), buf(var), buf(w), buf(&*gb), buf(&*gw)];
        args.extend(l.dims());
        args.extend([real(l.eps), flag(l.has_w), flag(l.batch_stats)]);
        k::BATCH_NORM_BWD.launch(be, dt, xx.len(), &args)?;
        Ok(vec![gx, gw, gb])
    }
}

/// The options of [`batch_norm2d`]: PyTorch's `training`, `momentum` and `eps`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormOptions {
    pub training: bool,
    pub momentum: f64,
    pub eps: f64,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions { training: true, momentum: 0.1, eps: 1e-5 }
    }
}

fn check_channel_vector(op: &str, what: &str, x: &Tensor, t: Option<&Tensor>, c: usize) -> Result<()> {
    if let Some(t) = t {
        check_same_dtype(op, x, t)?;
        if t.shape() != [c] {
            return Err(Error::shape(op, format!("{what} of shape [{c}]"), fmt_shape(t.shape())));
        }
    }
    Ok(())
}

/// Batch normalisation of `x [N, C, H, W]` per channel (PyTorch's `batch_norm` on 4-D input):
/// `y = (x − mean) / √(var + eps) · weight + bias`. In training (or without running
/// statistics) mean and (biased) variance are the batch's over N, H and W, and the running
/// statistics, when given, are updated in place: `r ← (1 − momentum)·r + momentum·stat`, with
/// the unbiased variance. In evaluation the running statistics are used and left alone.
pub fn batch_norm2d(
    x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>, opts: BatchNormOptions,
) -> Result<Tensor> {
    const OP: &str = "batchNorm2d";
    check_float(OP, x)?;
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::shape(OP, "an input of shape [N, C, H, W]", fmt_shape(s)));
    }
    let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
    check_channel_vector(OP, "a weight", x, weight, c)?;
    check_channel_vector(OP, "a bias", x, bias, c)?;
    check_channel_vector(OP, "a running mean", x, running_mean, c)?;
    check_channel_vector(OP, "a running variance", x, running_var, c)?;
    if running_mean.is_some() != running_var.is_some() {
        return Err(Error::value(OP, "running_mean and running_var must be given together"));
    }
    if !(opts.eps > 0.0 && opts.eps.is_finite() && (0.0..=1.0).contains(&opts.momentum)) {
        return Err(Error::value(
            OP,
            format!(
                "eps must be a finite number > 0 and momentum in [0, 1], got eps {}, momentum {}",
                opts.eps, opts.momentum
            ),
        ));
    }
    let has_running = running_mean.is_some();
    let batch_stats = opts.training || !has_running;
    if batch_stats && n * hw < 2 {
        return Err(Error::value(
            OP,
            format!("expected more than 1 value per channel when training, got an input of shape {}", fmt_shape(s)),
        ));
    }
    let l =
        BnLayout { n, c, hw, has_w: weight.is_some(), has_b: bias.is_some(), has_running, batch_stats, eps: opts.eps };
    let update = opts.training && has_running;
    // Detached copies: the op reads the statistics as they are now, whatever is assigned later.
    let running: Vec<Tensor> = running_mean.into_iter().chain(running_var).map(|t| t.detach()).collect();
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    inputs.extend(running.iter());
    let mut specs = vec![(s.to_vec(), x.dtype())];
    if update {
        specs.extend([(vec![c], x.dtype()), (vec![c], x.dtype())]);
    }
    let op = BatchNorm { l, momentum: update.then_some(opts.momentum) };
    let mut outs = apply(Arc::new(op), &inputs, specs)?;
    if let (true, Some(rm), Some(rv)) = (update, running_mean, running_var) {
        rm.assign(&outs[1].detach())?;
        rv.assign(&outs[2].detach())?;
    }
    Ok(outs.remove(0))
}

// ---------------------------------------------------------------------------------------------
// layer norm

#[derive(Clone, Copy, Debug)]
struct LnLayout {
    rows: usize,
    d: usize,
    has_w: bool,
    has_b: bool,
    eps: f64,
}

/// Forward: inputs `[x, w?, b?]`, output `y`.
struct LayerNorm {
    l: LnLayout,
    /// The normalized shape, which the weight and bias have.
    shape: Vec<usize>,
}

fn layer_norm_cpu<T: Float>(l: &LnLayout, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let x = T::view(inputs[0]);
    let w = l.has_w.then(|| T::view(inputs[1]));
    let b = l.has_b.then(|| T::view(inputs[1 + l.has_w as usize]));
    let mut y = vec![T::ZERO; x.len()];
    par::for_each(y.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut y, l.d)), |(r, yr)| {
        let xr = &x[r * l.d..(r + 1) * l.d];
        let (mean, var) = stats(l.d, |i| xr[i]);
        let is = inv_std(var, l.eps);
        for (j, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
            *o = (v - mean) * is * w.map_or(T::ONE, |w| w[j]) + b.map_or(T::ZERO, |b| b[j]);
        }
    });
    Ok(vec![T::wrap(y)])
}

fn ln_flags(l: &LnLayout) -> [KernelArg<'static>; 5] {
    [int(l.rows), int(l.d), real(l.eps), flag(l.has_w), flag(l.has_b)]
}

impl Op for LayerNorm {
    fn name(&self) -> &'static str {
        "layerNorm"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), layer_norm_cpu(&self.l, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let l = &self.l;
        let w = if l.has_w { x[1] } else { x[0] };
        let b = if l.has_b { x[1 + l.has_w as usize] } else { x[0] };
        let y = be.alloc(dt, x[0].len())?;
        let (threads, warp) = launch::rows_launch(l.rows, l.d);
        let mut args = vec![buf(&*y), buf(x[0]), buf(w), buf(b)];
        args.extend(ln_flags(l));
        args.push(warp);
        k::LAYER_NORM_FWD.launch(be, dt, threads, &args)?;
        Ok(vec![y])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let l = self.l;
        let mut inputs = vec![g, &ctx.inputs[0]];
        if l.has_w {
            inputs.push(&ctx.inputs[1]);
        }
        let dt = g.dtype();
        let specs = vec![(ctx.inputs[0].shape().to_vec(), dt), (self.shape.clone(), dt), (self.shape.clone(), dt)];
        let mut gs = apply(Arc::new(LayerNormGrad { l }), &inputs, specs)?.into_iter();
        let mut out = vec![gs.next()];
        let (gw, gb) = (gs.next(), gs.next());
        if l.has_w {
            out.push(gw);
        }
        if l.has_b {
            out.push(gb);
        }
        Ok(out)
    }
}

/// Inputs `[dY, x, w?]`; outputs `[dX, dW, dB]`.
struct LayerNormGrad {
    l: LnLayout,
}

fn layer_norm_grad_cpu<T: Float>(l: &LnLayout, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let (gy, x) = (T::view(inputs[0]), T::view(inputs[1]));
    let w = l.has_w.then(|| T::view(inputs[2]));
    let d = l.d;
    let dn = T::from_f64(d as f64);
    let mut gx = vec![T::ZERO; x.len()];
    par::for_each(gx.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut gx, d)), |(r, gr)| {
        let (xr, g) = (&x[r * d..(r + 1) * d], &gy[r * d..(r + 1) * d]);
        let (mean, var) = stats(d, |i| xr[i]);
        let is = inv_std(var, l.eps);
        let (mut s1, mut s2) = (T::ZERO, T::ZERO);
        for j in 0..d {
            let gw = g[j] * w.map_or(T::ONE, |w| w[j]);
            s1 += gw;
            s2 += gw * (xr[j] - mean) * is;
        }
        for (j, o) in gr.iter_mut().enumerate() {
            let gw = g[j] * w.map_or(T::ONE, |w| w[j]);
            *o = is * (gw - s1 / dn - (xr[j] - mean) * is * s2 / dn);
        }
    });
    // dW = Σ_rows dy·x̂ and dB = Σ_rows dy, as partials over fixed chunks of rows.
    let partials =
        par::map_collect(x.len(), PAR_MIN_ELEMS, (rows(x, ROW_CHUNK * d), rows(gy, ROW_CHUNK * d)), |(xc, gc)| {
            let mut acc = vec![T::ZERO; 2 * d];
            for (xr, g) in xc.chunks(d).zip(gc.chunks(d)) {
                let (mean, var) = stats(d, |i| xr[i]);
                let is = inv_std(var, l.eps);
                for j in 0..d {
                    acc[j] += g[j] * (xr[j] - mean) * is;
                    acc[d + j] += g[j];
                }
            }
            acc
        });
    let mut acc = vec![T::ZERO; 2 * d];
    for p in &partials {
        acc.iter_mut().zip(p).for_each(|(a, &v)| *a += v);
    }
    let gb = acc.split_off(d);
    Ok(vec![T::wrap(gx), T::wrap(acc), T::wrap(gb)])
}

impl Op for LayerNormGrad {
    fn name(&self) -> &'static str {
        "layerNormGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), layer_norm_grad_cpu(&self.l, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let l = &self.l;
        let (gy, xx) = (x[0], x[1]);
        let w = if l.has_w { x[2] } else { xx };
        let gx = be.alloc(dt, xx.len())?;
        // Each row's mean and 1/σ, for the weight gradient's column sums.
        let row_stats = be.alloc(dt, 2 * l.rows)?;
        let (threads, warp) = launch::rows_launch(l.rows, l.d);
        k::LAYER_NORM_BWD.launch(
            be,
            dt,
            threads,
            &[
                buf(&*gx),
                buf(&*row_stats),
                buf(gy),
                buf(xx),
                buf(w),
                int(l.rows),
                int(l.d),
                real(l.eps),
                flag(l.has_w),
                warp,
            ],
        )?;
        let (gw, gb) = (be.alloc(dt, l.d)?, be.alloc(dt, l.d)?);
        k::LAYER_NORM_PARAM_GRAD.launch(
            be,
            dt,
            l.d,
            &[buf(&*gw), buf(&*gb), buf(gy), buf(xx), buf(&*row_stats), int(l.rows), int(l.d)],
        )?;
        Ok(vec![gx, gw, gb])
    }
}

/// Layer normalisation (PyTorch's `layer_norm`): each row of `x [..., *normalized_shape]` is
/// normalised over its trailing `normalized_shape` (mean and biased variance), then scaled by
/// `weight` and shifted by `bias`, both of shape `normalized_shape` when given.
pub fn layer_norm(
    x: &Tensor, normalized_shape: &[usize], weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64,
) -> Result<Tensor> {
    const OP: &str = "layerNorm";
    check_float(OP, x)?;
    let s = x.shape();
    let k = normalized_shape.len();
    if k == 0 || k > s.len() || s[s.len() - k..] != *normalized_shape {
        return Err(Error::shape(
            OP,
            format!("an input whose trailing dimensions are the normalized shape {}", fmt_shape(normalized_shape)),
            fmt_shape(s),
        ));
    }
    for (what, t) in [("a weight", weight), ("a bias", bias)] {
        if let Some(t) = t {
            check_same_dtype(OP, x, t)?;
            if t.shape() != normalized_shape {
                return Err(Error::shape(
                    OP,
                    format!("{what} of shape {}", fmt_shape(normalized_shape)),
                    fmt_shape(t.shape()),
                ));
            }
        }
    }
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::value(OP, format!("eps must be a finite number > 0, got {eps}")));
    }
    let d: usize = normalized_shape.iter().product();
    let l = LnLayout { rows: x.numel() / d, d, has_w: weight.is_some(), has_b: bias.is_some(), eps };
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    Ok(apply(Arc::new(LayerNorm { l, shape: normalized_shape.to_vec() }), &inputs, vec![(s.to_vec(), x.dtype())])?
        .remove(0))
}
