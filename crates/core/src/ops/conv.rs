//! `conv2d`: a 2-D convolution over NCHW images (stride, padding, dilation, groups) as
//! im2col + GEMM, with its backward (input, weight and bias gradients) beside it.
//!
//! One image's patches are unrolled into a `[C·KH·KW, OH·OW]` matrix (row `(c·KH + kh)·KW + kw`),
//! so that group `g`'s rows are one contiguous block and the convolution of the group is the
//! product `W_g [O/g, C/g·KH·KW] · cols_g`. The input gradient is `W_gᵀ · dY_g` folded back
//! (col2im, a sum over the patches that touched each pixel, in a fixed order); the weight
//! gradient is `Σ_n dY_{n,g} · cols_{n,g}ᵀ`, summed over fixed chunks of images so that the
//! result does not depend on the number of threads. On the CPU images run in parallel, one
//! task each; on a GPU im2col/col2im are kernels (`kernels/conv.cu`) and the products cuBLAS
//! GEMMs, batched over the images of a chunk.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, Strides};
use crate::cpu::par::{self, indexed, rows, rows_mut, PAR_MIN_FUSED};
use crate::cpu::{gemm, Float, Mat};
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, at, buf, int, kernels as k, mat_n, mat_t};
use crate::ops::elementwise::{check_float, check_same_dtype, dispatch_float};
use crate::ops::reduce::sum;
use crate::storage::CpuStorage;
use crate::tensor::{check_shape, Tensor};
use std::sync::Arc;

const OP: &str = "conv2d";

/// Images per partial weight gradient on the CPU: partials are added in order, so the split
/// depends on the batch size only, never on the threads.
const GW_CHUNK: usize = 4;

/// Most elements of the unrolled patches a device keeps at once; larger batches run in chunks.
const DEVICE_COLS_MAX: usize = 1 << 25;

/// The options of [`conv2d`], PyTorch's `Conv2d` arguments as (height, width) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

/// Every size of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    groups: usize,
}

impl Geom {
    /// Output pixels per image.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Rows of one group's patch matrix: C/g · KH · KW.
    fn cgkk(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Elements of one image's patch matrix.
    fn cols_len(&self) -> usize {
        self.c * self.kh * self.kw * self.p()
    }
    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    /// The kernels' geometry arguments for `nb` images (`kernels/conv.cu`).
    fn args(&self, nb: usize) -> Vec<crate::backend::KernelArg<'static>> {
        [
            nb, self.c, self.h, self.w, self.kh, self.kw, self.oh, self.ow, self.sh, self.sw, self.ph, self.pw,
            self.dh, self.dw,
        ]
        .iter()
        .map(|&v| int(v))
        .collect()
    }
    /// Images per device chunk, so that the patches stay under [`DEVICE_COLS_MAX`].
    fn device_chunk(&self) -> usize {
        (DEVICE_COLS_MAX / self.cols_len()).clamp(1, self.n)
    }
}

/// The input row of output row `o` for kernel tap `k`, if it is inside the image (not padding).
#[inline]
fn source(o: usize, k: usize, stride: usize, dil: usize, pad: usize, size: usize) -> Option<usize> {
    (o * stride + k * dil).checked_sub(pad).filter(|&i| i < size)
}

/// Unrolls one image `x [C, H, W]` into `cols [C·KH·KW, OH·OW]` (zeros where the patch is on padding).
fn im2col<T: Float>(g: &Geom, x: &[T], cols: &mut [T]) {
    let p = g.p();
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c * g.kh + ki) * g.kw + kj) * p;
                for oy in 0..g.oh {
                    let dst = &mut cols[row + oy * g.ow..row + (oy + 1) * g.ow];
                    match source(oy, ki, g.sh, g.dh, g.ph, g.h) {
                        None => dst.fill(T::ZERO),
                        Some(iy) => {
                            let src = &plane[iy * g.w..(iy + 1) * g.w];
                            for (ox, d) in dst.iter_mut().enumerate() {
                                *d = source(ox, kj, g.sw, g.dw, g.pw, g.w).map_or(T::ZERO, |ix| src[ix]);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Folds `cols [C·KH·KW, OH·OW]` back into one image `gx [C, H, W]` (zeroed by the caller),
/// adding every patch entry to the pixel it was read from, patches in a fixed order.
fn col2im<T: Float>(g: &Geom, cols: &[T], gx: &mut [T]) {
    let p = g.p();
    for c in 0..g.c {
        let plane = &mut gx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c * g.kh + ki) * g.kw + kj) * p;
                for oy in 0..g.oh {
                    let Some(iy) = source(oy, ki, g.sh, g.dh, g.ph, g.h) else { continue };
                    let src = &cols[row + oy * g.ow..row + (oy + 1) * g.ow];
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    for (ox, &v) in src.iter().enumerate() {
                        if let Some(ix) = source(ox, kj, g.sw, g.dw, g.pw, g.w) {
                            dst[ix] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward: inputs `[x, w]` or `[x, w, b]`, output `y [N, O, OH, OW]`.
struct Conv2d {
    g: Geom,
    bias: bool,
}

fn conv_cpu<T: Float>(op: &Conv2d, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let g = op.g;
    let (x, w) = (T::view(inputs[0]), T::view(inputs[1]));
    let bias = op.bias.then(|| T::view(inputs[2]));
    let (p, cgkk, og) = (g.p(), g.cgkk(), g.og());
    let mut y = vec![T::ZERO; g.n * g.o * p];
    let work = g.n * g.o * p * cgkk;
    par::for_each(work, PAR_MIN_FUSED, indexed(rows_mut(&mut y, g.o * p)), |(i, yi)| {
        let mut cols = vec![T::ZERO; g.cols_len()];
        im2col(&g, &x[i * g.image()..(i + 1) * g.image()], &mut cols);
        if let Some(b) = bias {
            for (row, &bv) in yi.chunks_mut(p).zip(b) {
                row.fill(bv);
            }
        }
        for grp in 0..g.groups {
            let a = Mat::n(&w[grp * og * cgkk..(grp + 1) * og * cgkk], cgkk);
            let bm = Mat::n(&cols[grp * cgkk * p..(grp + 1) * cgkk * p], p);
            gemm(og, p, cgkk, a, bm, &mut yi[grp * og * p..(grp + 1) * og * p], p, bias.is_some());
        }
    });
    Ok(vec![T::wrap(y)])
}

impl Op for Conv2d {
    fn name(&self) -> &'static str {
        OP
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(OP, x[0].dtype(), conv_cpu(self, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(OP, dt)?;
        let g = self.g;
        let (p, cgkk, og, per) = (g.p(), g.cgkk(), g.og(), g.cols_len());
        let y = be.alloc(dt, g.n * g.o * p)?;
        if self.bias {
            let len = g.n * g.o * p;
            k::CONV_BIAS_FILL.launch(be, dt, len, &[buf(&*y), buf(x[2]), int(len), int(g.o), int(p)])?;
        }
        let nb = g.device_chunk();
        let cols = be.alloc(dt, nb * per)?;
        for n0 in (0..g.n).step_by(nb) {
            let cnt = nb.min(g.n - n0);
            let mut args = vec![buf(&*cols), at(x[0], n0 * g.image())];
            args.extend(g.args(cnt));
            k::IM2COL.launch(be, dt, cnt * per, &args)?;
            for grp in 0..g.groups {
                let a = mat_n(x[1], grp * og * cgkk, cgkk);
                let b = mat_n(&*cols, grp * cgkk * p, p);
                let c_off = (n0 * g.o + grp * og) * p;
                // One product per image, the weight shared (stride 0).
                let strides = Strides { count: cnt, a: 0, b: per, c: g.o * p };
                be.gemm_batched(og, p, cgkk, a, b, &*y, c_off, p, self.bias, strides)?;
            }
        }
        Ok(vec![y])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let gy = grads[0].as_ref().expect("single-output op gets its gradient");
        let (x, w) = (&ctx.inputs[0], &ctx.inputs[1]);
        let dt = x.dtype();
        let gx = apply(Arc::new(Conv2dGradInput { g: self.g }), &[gy, w], vec![(x.shape().to_vec(), dt)])?.remove(0);
        let gw = apply(Arc::new(Conv2dGradWeight { g: self.g }), &[gy, x], vec![(w.shape().to_vec(), dt)])?.remove(0);
        let mut out = vec![Some(gx), Some(gw)];
        if self.bias {
            out.push(Some(sum(gy, &[0, 2, 3], false)?));
        }
        Ok(out)
    }
}

/// `dX` from `[dY, w]`: per image and group `W_gᵀ · dY_g`, folded back by col2im.
struct Conv2dGradInput {
    g: Geom,
}

fn grad_input_cpu<T: Float>(op: &Conv2dGradInput, gy: &CpuStorage, w: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = op.g;
    let (gy, w) = (T::view(gy), T::view(w));
    let (p, cgkk, og) = (g.p(), g.cgkk(), g.og());
    let mut gx = vec![T::ZERO; g.n * g.image()];
    let work = g.n * g.o * p * cgkk;
    par::for_each(work, PAR_MIN_FUSED, indexed(rows_mut(&mut gx, g.image())), |(i, gxi)| {
        let mut cols = vec![T::ZERO; g.cols_len()];
        let gyi = &gy[i * g.o * p..(i + 1) * g.o * p];
        for grp in 0..g.groups {
            let a = Mat::t(&w[grp * og * cgkk..(grp + 1) * og * cgkk], cgkk);
            let bm = Mat::n(&gyi[grp * og * p..(grp + 1) * og * p], p);
            gemm(cgkk, p, og, a, bm, &mut cols[grp * cgkk * p..(grp + 1) * cgkk * p], p, false);
        }
        col2im(&g, &cols, gxi);
    });
    Ok(vec![T::wrap(gx)])
}

impl Op for Conv2dGradInput {
    fn name(&self) -> &'static str {
        "conv2dGradInput"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), grad_input_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let g = self.g;
        let (p, cgkk, og, per) = (g.p(), g.cgkk(), g.og(), g.cols_len());
        let gx = be.alloc(dt, g.n * g.image())?;
        let nb = g.device_chunk();
        let cols = be.alloc(dt, nb * per)?;
        for n0 in (0..g.n).step_by(nb) {
            let cnt = nb.min(g.n - n0);
            for grp in 0..g.groups {
                let a = mat_t(x[1], grp * og * cgkk, cgkk);
                let b = mat_n(x[0], (n0 * g.o + grp * og) * p, p);
                let strides = Strides { count: cnt, a: 0, b: g.o * p, c: per };
                be.gemm_batched(cgkk, p, og, a, b, &*cols, grp * cgkk * p, p, false, strides)?;
            }
            let mut args = vec![at(&*gx, n0 * g.image()), buf(&*cols)];
            args.extend(g.args(cnt));
            k::COL2IM.launch(be, dt, cnt * g.image(), &args)?;
        }
        Ok(vec![gx])
    }
}

/// `dW` from `[dY, x]`: `Σ_n dY_{n,g} · cols_{n,g}ᵀ` per group.
struct Conv2dGradWeight {
    g: Geom,
}

fn grad_weight_cpu<T: Float>(op: &Conv2dGradWeight, gy: &CpuStorage, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = op.g;
    let (gy, x) = (T::view(gy), T::view(x));
    let (p, cgkk, og) = (g.p(), g.cgkk(), g.og());
    let len = g.o * cgkk;
    let work = g.n * g.o * p * cgkk;
    let chunks = (rows(x, GW_CHUNK * g.image()), rows(gy, GW_CHUNK * g.o * p));
    let partials = par::map_collect(work, PAR_MIN_FUSED, chunks, |(xc, gc)| {
        let mut part = vec![T::ZERO; len];
        let mut cols = vec![T::ZERO; g.cols_len()];
        for (xi, gi) in xc.chunks(g.image()).zip(gc.chunks(g.o * p)) {
            im2col(&g, xi, &mut cols);
            for grp in 0..g.groups {
                let a = Mat::n(&gi[grp * og * p..(grp + 1) * og * p], p);
                let bm = Mat::t(&cols[grp * cgkk * p..(grp + 1) * cgkk * p], p);
                gemm(og, cgkk, p, a, bm, &mut part[grp * og * cgkk..(grp + 1) * og * cgkk], cgkk, true);
            }
        }
        part
    });
    let mut gw = vec![T::ZERO; len];
    for part in &partials {
        gw.iter_mut().zip(part).for_each(|(a, &b)| *a += b);
    }
    Ok(vec![T::wrap(gw)])
}

impl Op for Conv2dGradWeight {
    fn name(&self) -> &'static str {
        "conv2dGradWeight"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), grad_weight_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let g = self.g;
        let (p, cgkk, og, per) = (g.p(), g.cgkk(), g.og(), g.cols_len());
        let gw = be.zeros(dt, g.o * cgkk)?;
        let nb = g.device_chunk();
        let cols = be.alloc(dt, nb * per)?;
        for n0 in (0..g.n).step_by(nb) {
            let cnt = nb.min(g.n - n0);
            let mut args = vec![buf(&*cols), at(x[1], n0 * g.image())];
            args.extend(g.args(cnt));
            k::IM2COL.launch(be, dt, cnt * per, &args)?;
            for i in 0..cnt {
                // Every group of image i in one batched product, accumulated onto dW.
                let a = mat_n(x[0], (n0 + i) * g.o * p, p);
                let b = mat_t(&*cols, i * per, p);
                let strides = Strides { count: g.groups, a: og * p, b: cgkk * p, c: og * cgkk };
                be.gemm_batched(og, cgkk, p, a, b, &*gw, 0, cgkk, true, strides)?;
            }
        }
        Ok(vec![gw])
    }
}

fn pair_ok(v: [usize; 2], min: usize) -> bool {
    v[0] >= min && v[1] >= min
}

/// 2-D convolution (PyTorch's `conv2d`, cross-correlation): `x [N, C, H, W]`,
/// `weight [O, C/groups, KH, KW]`, optional `bias [O]` → `[N, O, OH, OW]` with
/// `OH = ⌊(H + 2·pad − dil·(KH − 1) − 1) / stride⌋ + 1` (likewise OW).
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, opts: Conv2dOptions) -> Result<Tensor> {
    check_float(OP, x)?;
    check_same_dtype(OP, x, weight)?;
    let (sx, sw) = (x.shape(), weight.shape());
    if sx.len() != 4 {
        return Err(Error::shape(OP, "an input of shape [N, C, H, W]", fmt_shape(sx)));
    }
    if !pair_ok(opts.stride, 1) || !pair_ok(opts.dilation, 1) || opts.groups < 1 {
        return Err(Error::value(
            OP,
            format!(
                "stride, dilation and groups must be ≥ 1, got stride {:?}, dilation {:?}, groups {}",
                opts.stride, opts.dilation, opts.groups
            ),
        ));
    }
    let (n, c, h, w) = (sx[0], sx[1], sx[2], sx[3]);
    let groups = opts.groups;
    if c % groups != 0 {
        return Err(Error::shape(
            OP,
            format!("input channels divisible by groups = {groups}"),
            format!("{c} channels in an input of shape {}", fmt_shape(sx)),
        ));
    }
    if sw.len() != 4 || sw[1] != c / groups || sw[0] % groups != 0 {
        return Err(Error::shape(
            OP,
            format!(
                "a weight of shape [O, {}, KH, KW] with O divisible by groups = {groups} (input of shape {})",
                c / groups,
                fmt_shape(sx)
            ),
            fmt_shape(sw),
        ));
    }
    let (o, kh, kw) = (sw[0], sw[2], sw[3]);
    if let Some(b) = bias {
        check_same_dtype(OP, x, b)?;
        if b.shape() != [o] {
            return Err(Error::shape(OP, format!("a bias of shape [{o}]"), fmt_shape(b.shape())));
        }
    }
    let [sh, sw_] = opts.stride;
    let [ph, pw] = opts.padding;
    let [dh, dw] = opts.dilation;
    let (span_h, span_w) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
    if h + 2 * ph < span_h || w + 2 * pw < span_w {
        return Err(Error::shape(
            OP,
            format!("an input at least as large as the dilated kernel {span_h}×{span_w} after padding {ph}×{pw}"),
            format!("{h}×{w} (input of shape {})", fmt_shape(sx)),
        ));
    }
    let oh = (h + 2 * ph - span_h) / sh + 1;
    let ow = (w + 2 * pw - span_w) / sw_ + 1;
    let out = vec![n, o, oh, ow];
    check_shape(OP, &out)?;
    // The unrolled patches of one image are a buffer of their own.
    check_shape(OP, &[c * kh * kw, oh * ow])?;
    let g = Geom { n, c, h, w, o, kh, kw, oh, ow, sh, sw: sw_, ph, pw, dh, dw, groups };
    let op = Conv2d { g, bias: bias.is_some() };
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    Ok(apply(Arc::new(op), &inputs, vec![(out, x.dtype())])?.remove(0))
}
