//! 2-D pooling over NCHW images: `max_pool2d` (its backward routes each gradient to the
//! window's maximum, whose position the forward keeps as a second, int32 output),
//! `avg_pool2d` (PyTorch's `count_include_pad` choice of divisor) and `adaptive_avg_pool2d`
//! (PyTorch's windows `[⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉)`), each with its backward.
//!
//! Every `(n, c)` plane is independent (a task each on the CPU). The device kernels
//! (`kernels/pool.cu`) give one thread to each output in the forward and to each input pixel in
//! the backward, which sums the windows that cover it: no atomics, a fixed order.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::cpu::par::{self, indexed, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, int, kernels as k};
use crate::ops::elementwise::{check_float, dispatch_float};
use crate::storage::{CpuStorage, DType};
use crate::tensor::{check_shape, Tensor};
use std::sync::Arc;

/// How an average window's divisor and bounds are chosen (the `mode` of `kernels/pool.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AvgMode {
    /// Fixed windows, divided by KH·KW (padding counts): PyTorch's default.
    IncludePad = 0,
    /// Fixed windows, divided by the pixels inside the image.
    ExcludePad = 1,
    /// Adaptive windows.
    Adaptive = 2,
}

/// The sizes of one pooling.
#[derive(Clone, Copy, Debug)]
struct Geom {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
}

impl Geom {
    fn args(&self) -> Vec<KernelArg<'static>> {
        [self.planes, self.h, self.w, self.oh, self.ow, self.kh, self.kw, self.sh, self.sw, self.ph, self.pw]
            .iter()
            .map(|&v| int(v))
            .collect()
    }
    fn in_plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
}

/// Window `[start, end)` of output index `o` along one axis of input size `size`, clipped to
/// the image, and its unclipped length (what `count_include_pad` divides by).
#[inline]
fn fixed_window(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> (usize, usize, usize) {
    let start = (o * stride) as isize - pad as isize;
    let end = (start + k as isize).min((size + pad) as isize);
    let full = (end - start) as usize;
    (start.max(0) as usize, (end.min(size as isize)) as usize, full)
}

/// PyTorch's adaptive window of output `o` of `out` over `size` inputs.
#[inline]
fn adaptive_window(o: usize, out: usize, size: usize) -> (usize, usize) {
    (o * size / out, ((o + 1) * size).div_ceil(out))
}

// ---------------------------------------------------------------------------------------------
// max pooling

#[inline]
fn is_nan<T: Float>(v: T) -> bool {
    v.partial_cmp(&v).is_none()
}

/// Outputs `[y, argmax]`: the argmax is the flat index `iy·W + ix` inside the plane.
struct MaxPool {
    g: Geom,
}

fn max_pool_cpu<T: Float>(g: &Geom, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let (ip, op) = (g.in_plane(), g.out_plane());
    let mut y = vec![T::ZERO; g.planes * op];
    let mut idx = vec![0i32; g.planes * op];
    let split = indexed((rows_mut(&mut y, op), rows_mut(&mut idx, op)));
    par::for_each(g.planes * op * g.kh * g.kw, PAR_MIN_ELEMS, split, |(pl, (yp, ip_))| {
        let xp = &x[pl * ip..(pl + 1) * ip];
        for oy in 0..g.oh {
            let (y0, y1, _) = fixed_window(oy, g.kh, g.sh, g.ph, g.h);
            for ox in 0..g.ow {
                let (x0, x1, _) = fixed_window(ox, g.kw, g.sw, g.pw, g.w);
                // PyTorch's rule: the first maximum in scan order; a NaN wins and stays.
                let mut best = y0 * g.w + x0;
                let mut bv = xp[best];
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let v = xp[iy * g.w + ix];
                        if v > bv || (is_nan(v) && !is_nan(bv)) {
                            bv = v;
                            best = iy * g.w + ix;
                        }
                    }
                }
                yp[oy * g.ow + ox] = bv;
                ip_[oy * g.ow + ox] = best as i32;
            }
        }
    });
    Ok(vec![T::wrap(y), CpuStorage::new_i32(idx)])
}

impl Op for MaxPool {
    fn name(&self) -> &'static str {
        "maxPool2d"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), max_pool_cpu(&self.g, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = self.g.planes * self.g.out_plane();
        let y = be.alloc(dt, n)?;
        let idx = be.alloc(DType::I32, n)?;
        let mut args = vec![buf(&*y), buf(&*idx), buf(x[0])];
        args.extend(self.g.args());
        k::MAX_POOL_FWD.launch(be, dt, n, &args)?;
        Ok(vec![y, idx])
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("the pooled values get the gradient");
        let x = &ctx.inputs[0];
        let idx = &ctx.outputs[1];
        let op = MaxPoolGrad { g: self.g };
        Ok(vec![Some(apply(Arc::new(op), &[g, idx], vec![(x.shape().to_vec(), g.dtype())])?.remove(0))])
    }
}

/// `dX` from `[dY, argmax]`: each output's gradient added at its maximum.
struct MaxPoolGrad {
    g: Geom,
}

fn max_pool_grad_cpu<T: Float>(g: &Geom, gy: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let gy = T::view(gy);
    let idx = idx.as_i32().expect("int32 argmax");
    let (ip, op) = (g.in_plane(), g.out_plane());
    let mut gx = vec![T::ZERO; g.planes * ip];
    par::for_each(gx.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut gx, ip)), |(pl, gxp)| {
        for (&gv, &at) in gy[pl * op..(pl + 1) * op].iter().zip(&idx[pl * op..(pl + 1) * op]) {
            gxp[at as usize] += gv;
        }
    });
    Ok(vec![T::wrap(gx)])
}

impl Op for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "maxPool2dGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), max_pool_grad_cpu(&self.g, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = self.g.planes * self.g.in_plane();
        let gx = be.alloc(dt, n)?;
        let mut args = vec![buf(&*gx), buf(x[0]), buf(x[1])];
        args.extend(self.g.args());
        k::MAX_POOL_BWD.launch(be, dt, n, &args)?;
        Ok(vec![gx])
    }
}

// ---------------------------------------------------------------------------------------------
// average pooling (fixed and adaptive windows)

struct AvgPool {
    g: Geom,
    mode: AvgMode,
}

/// Rows `[y0, y1)`, columns `[x0, x1)` and divisor of output `(oy, ox)`.
#[inline]
fn avg_window(g: &Geom, mode: AvgMode, oy: usize, ox: usize) -> (usize, usize, usize, usize, usize) {
    match mode {
        AvgMode::Adaptive => {
            let (y0, y1) = adaptive_window(oy, g.oh, g.h);
            let (x0, x1) = adaptive_window(ox, g.ow, g.w);
            (y0, y1, x0, x1, (y1 - y0) * (x1 - x0))
        }
        _ => {
            let (y0, y1, fy) = fixed_window(oy, g.kh, g.sh, g.ph, g.h);
            let (x0, x1, fx) = fixed_window(ox, g.kw, g.sw, g.pw, g.w);
            let div = if mode == AvgMode::IncludePad { fy * fx } else { (y1 - y0) * (x1 - x0) };
            (y0, y1, x0, x1, div)
        }
    }
}

fn avg_pool_cpu<T: Float>(op: &AvgPool, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = &op.g;
    let x = T::view(x);
    let (ip, opl) = (g.in_plane(), g.out_plane());
    let mut y = vec![T::ZERO; g.planes * opl];
    par::for_each(g.planes * ip, PAR_MIN_ELEMS, indexed(rows_mut(&mut y, opl)), |(pl, yp)| {
        let xp = &x[pl * ip..(pl + 1) * ip];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1, div) = avg_window(g, op.mode, oy, ox);
                let mut s = T::ZERO;
                for iy in y0..y1 {
                    for &v in &xp[iy * g.w + x0..iy * g.w + x1] {
                        s += v;
                    }
                }
                yp[oy * g.ow + ox] = s / T::from_f64(div as f64);
            }
        }
    });
    Ok(vec![T::wrap(y)])
}

fn avg_mode_arg(mode: AvgMode) -> KernelArg<'static> {
    KernelArg::I32(mode as i32)
}

impl Op for AvgPool {
    fn name(&self) -> &'static str {
        if self.mode == AvgMode::Adaptive {
            "adaptiveAvgPool2d"
        } else {
            "avgPool2d"
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), avg_pool_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = self.g.planes * self.g.out_plane();
        let y = be.alloc(dt, n)?;
        let mut args = vec![buf(&*y), buf(x[0])];
        args.extend(self.g.args());
        args.push(avg_mode_arg(self.mode));
        k::AVG_POOL_FWD.launch(be, dt, n, &args)?;
        Ok(vec![y])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let x = &ctx.inputs[0];
        let op = AvgPoolGrad { g: self.g, mode: self.mode };
        Ok(vec![Some(apply(Arc::new(op), &[g], vec![(x.shape().to_vec(), g.dtype())])?.remove(0))])
    }
}

/// `dX` from `dY`: each output's gradient spread evenly over its window (over its divisor).
struct AvgPoolGrad {
    g: Geom,
    mode: AvgMode,
}

fn avg_pool_grad_cpu<T: Float>(op: &AvgPoolGrad, gy: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = &op.g;
    let gy = T::view(gy);
    let (ip, opl) = (g.in_plane(), g.out_plane());
    let mut gx = vec![T::ZERO; g.planes * ip];
    par::for_each(gx.len(), PAR_MIN_ELEMS, indexed(rows_mut(&mut gx, ip)), |(pl, gxp)| {
        let gp = &gy[pl * opl..(pl + 1) * opl];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1, div) = avg_window(g, op.mode, oy, ox);
                let share = gp[oy * g.ow + ox] / T::from_f64(div as f64);
                for iy in y0..y1 {
                    for d in &mut gxp[iy * g.w + x0..iy * g.w + x1] {
                        *d += share;
                    }
                }
            }
        }
    });
    Ok(vec![T::wrap(gx)])
}

impl Op for AvgPoolGrad {
    fn name(&self) -> &'static str {
        if self.mode == AvgMode::Adaptive {
            "adaptiveAvgPool2dGrad"
        } else {
            "avgPool2dGrad"
        }
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), avg_pool_grad_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = self.g.planes * self.g.in_plane();
        let gx = be.alloc(dt, n)?;
        let mut args = vec![buf(&*gx), buf(x[0])];
        args.extend(self.g.args());
        args.push(avg_mode_arg(self.mode));
        k::AVG_POOL_BWD.launch(be, dt, n, &args)?;
        Ok(vec![gx])
    }
}

// ---------------------------------------------------------------------------------------------
// builders

/// The options of [`max_pool2d`] and [`avg_pool2d`] as (height, width) pairs. `stride`
/// defaults to the kernel size, as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    pub kernel: [usize; 2],
    pub stride: Option<[usize; 2]>,
    pub padding: [usize; 2],
}

impl Pool2dOptions {
    pub fn new(kernel: [usize; 2]) -> Self {
        Pool2dOptions { kernel, stride: None, padding: [0, 0] }
    }
}

fn check_input(op: &str, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    check_float(op, x)?;
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::shape(op, "an input of shape [N, C, H, W]", fmt_shape(s)));
    }
    Ok((s[0], s[1], s[2], s[3]))
}

fn fixed_geom(op: &str, x: &Tensor, o: Pool2dOptions) -> Result<Geom> {
    let (n, c, h, w) = check_input(op, x)?;
    let [kh, kw] = o.kernel;
    let [sh, sw] = o.stride.unwrap_or(o.kernel);
    let [ph, pw] = o.padding;
    if kh < 1 || kw < 1 || sh < 1 || sw < 1 {
        return Err(Error::value(
            op,
            format!("kernel size and stride must be ≥ 1, got kernel {:?}, stride {:?}", o.kernel, [sh, sw]),
        ));
    }
    // PyTorch's rule: a window must always hold at least one pixel of the image.
    if 2 * ph > kh || 2 * pw > kw {
        return Err(Error::value(
            op,
            format!("padding must be at most half the kernel size ({:?}), got {:?}", o.kernel, o.padding),
        ));
    }
    if h + 2 * ph < kh || w + 2 * pw < kw {
        return Err(Error::shape(
            op,
            format!("an input of at least {kh}×{kw} after padding {ph}×{pw}"),
            format!("{h}×{w} (input of shape {})", fmt_shape(x.shape())),
        ));
    }
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    check_shape(op, &[n, c, oh, ow])?;
    Ok(Geom { planes: n * c, h, w, oh, ow, kh, kw, sh, sw, ph, pw })
}

fn out_shape(x: &Tensor, g: &Geom) -> Vec<usize> {
    vec![x.shape()[0], x.shape()[1], g.oh, g.ow]
}

/// Max pooling (PyTorch's `max_pool2d`, `ceil_mode = false`, dilation 1): `x [N, C, H, W]` →
/// `[N, C, OH, OW]`; padding counts as −∞. The gradient goes to the first maximum of each window.
pub fn max_pool2d(x: &Tensor, opts: Pool2dOptions) -> Result<Tensor> {
    let g = fixed_geom("maxPool2d", x, opts)?;
    let shape = out_shape(x, &g);
    let outs = apply(Arc::new(MaxPool { g }), &[x], vec![(shape.clone(), x.dtype()), (shape, DType::I32)])?;
    Ok(outs.into_iter().next().expect("two outputs"))
}

/// Average pooling (PyTorch's `avg_pool2d`, `ceil_mode = false`): each window's mean, divided
/// by KH·KW when `count_include_pad` (PyTorch's default), else by its pixels inside the image.
pub fn avg_pool2d(x: &Tensor, opts: Pool2dOptions, count_include_pad: bool) -> Result<Tensor> {
    let g = fixed_geom("avgPool2d", x, opts)?;
    let mode = if count_include_pad { AvgMode::IncludePad } else { AvgMode::ExcludePad };
    let shape = out_shape(x, &g);
    Ok(apply(Arc::new(AvgPool { g, mode }), &[x], vec![(shape, x.dtype())])?.remove(0))
}

/// Adaptive average pooling to `output [OH, OW]` (PyTorch's `adaptive_avg_pool2d`): output
/// `(i, j)` is the mean of rows `[⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉)` and the same columns for W.
pub fn adaptive_avg_pool2d(x: &Tensor, output: [usize; 2]) -> Result<Tensor> {
    const OP: &str = "adaptiveAvgPool2d";
    let (n, c, h, w) = check_input(OP, x)?;
    let [oh, ow] = output;
    if oh < 1 || ow < 1 {
        return Err(Error::value(OP, format!("the output size must be ≥ 1, got {output:?}")));
    }
    check_shape(OP, &[n, c, oh, ow])?;
    let g = Geom { planes: n * c, h, w, oh, ow, kh: 0, kw: 0, sh: 1, sw: 1, ph: 0, pw: 0 };
    Ok(apply(Arc::new(AvgPool { g, mode: AvgMode::Adaptive }), &[x], vec![(vec![n, c, oh, ow], x.dtype())])?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The backward kernels of kernels/pool.cu find the outputs whose windows cover an input
    // pixel with these formulas (the CPU scatters from the outputs instead).
    /// Output index range `[lo, hi]` of the fixed windows along one axis that contain input `i`.
    #[inline]
    fn covering(i: usize, k: usize, stride: usize, pad: usize, out: usize) -> (usize, usize) {
        let lo = if i + pad < k { 0 } else { (i + pad - k) / stride + 1 };
        let hi = ((i + pad) / stride).min(out - 1);
        (lo, hi)
    }

    /// Output index range of the adaptive windows that contain input `i`.
    #[inline]
    fn adaptive_covering(i: usize, out: usize, size: usize) -> (usize, usize) {
        let lo = i * out / size;
        let hi = (((i + 1) * out).div_ceil(size)).min(out) - 1;
        (lo, hi)
    }

    #[test]
    fn covering_ranges_invert_the_windows() {
        // Every (input, output) pair: the output's window holds the input exactly when the
        // output is in the input's covering range.
        for (k, s, p, size) in [(3, 2, 1, 7), (2, 2, 0, 6), (3, 1, 1, 5), (1, 3, 0, 7), (4, 3, 2, 9)] {
            let out = (size + 2 * p - k) / s + 1;
            for i in 0..size {
                let (lo, hi) = covering(i, k, s, p, out);
                for o in 0..out {
                    let (a, b, _) = fixed_window(o, k, s, p, size);
                    assert_eq!(a <= i && i < b, lo <= o && o <= hi, "k{k} s{s} p{p} size{size} i{i} o{o}");
                }
            }
        }
        for (size, out) in [(7, 3), (5, 5), (4, 7), (10, 4), (1, 3), (6, 1)] {
            for i in 0..size {
                let (lo, hi) = adaptive_covering(i, out, size);
                for o in 0..out {
                    let (a, b) = adaptive_window(o, out, size);
                    assert_eq!(a <= i && i < b, lo <= o && o <= hi, "size{size} out{out} i{i} o{o}");
                }
            }
        }
    }
}
