//! Matrix products: `matmul` (2-D and batched 3-D) and `linear` (PyTorch's `x · wᵀ + b`).
//! Everything, forward and backward, is one op, [`Gemm`], over contiguous row-major matrices
//! that it reads through transposed [`Mat`] views, so no operand is ever copied to transpose it.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, Strides};
use crate::cpu::par::{self, indexed, rows_mut, PAR_MIN_ELEMS, PAR_MIN_FUSED};
use crate::cpu::{gemm, Float, Mat};
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, flag, int, kernels as k, mat_n, mat_t};
use crate::ops::elementwise::{check_float, check_same_dtype, dispatch_float};
use crate::ops::reduce::sum;
use crate::storage::CpuStorage;
use crate::tensor::{check_shape, Tensor};
use std::sync::Arc;

/// `C[b] = op_a(A[b]) · op_b(B[b]) (+ bias)` for `b` in `0..batch`, where `op_a(A)` is `m×k`
/// and `op_b(B)` is `k×n`. The inputs are contiguous whatever their tensor shapes: A holds
/// `batch` matrices stored `m×k` (or `k×m` when `ta`), B `k×n` (or `n×k` when `tb`). The
/// optional third input, a bias of `n` values, is added to every row of every C.
struct Gemm {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    bias: bool,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    out_shape: Vec<usize>,
    name: &'static str,
}

fn gemm_cpu<T: Float>(op: &Gemm, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let (a, b) = (T::view(x[0]), T::view(x[1]));
    let (m, n, k) = (op.m, op.n, op.k);
    let mut c = vec![T::ZERO; op.batch * m * n];
    if op.bias {
        let bias = T::view(x[2]);
        par::for_each(c.len(), PAR_MIN_ELEMS, rows_mut(&mut c, n), |row| row.copy_from_slice(bias));
    }
    let (lda, ldb) = (if op.ta { m } else { k }, if op.tb { k } else { n });
    let one = |(bi, c): (usize, &mut [T])| {
        let a = &a[bi * m * k..(bi + 1) * m * k];
        let b = &b[bi * k * n..(bi + 1) * k * n];
        let am = if op.ta { Mat::t(a, lda) } else { Mat::n(a, lda) };
        let bm = if op.tb { Mat::t(b, ldb) } else { Mat::n(b, ldb) };
        gemm(m, n, k, am, bm, c, n, op.bias);
    };
    // Many small products: one per task (each output block is written by one GEMM only).
    par::for_each(op.batch * m * n * k, PAR_MIN_FUSED, indexed(rows_mut(&mut c, m * n)), one);
    Ok(vec![T::wrap(c)])
}

impl Op for Gemm {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name, x[0].dtype(), gemm_cpu(self, x))
    }
    /// One GEMM per batch entry (bias rows filled first, then accumulated onto).
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name, dt)?;
        let (m, n, k) = (self.m, self.n, self.k);
        let c = be.alloc(dt, self.batch * m * n)?;
        if self.bias {
            // Every row of every C starts as the bias: a [rows, n] broadcast of x[2].
            let rows = self.batch * m;
            k::RNN_BIAS_ROWS.launch(
                be,
                dt,
                rows * n,
                &[buf(&*c), buf(x[2]), buf(x[2]), int(rows), int(n), flag(false)],
            )?;
        }
        let (lda, ldb) = (if self.ta { m } else { k }, if self.tb { k } else { n });
        let a = if self.ta { mat_t(x[0], 0, lda) } else { mat_n(x[0], 0, lda) };
        let b = if self.tb { mat_t(x[1], 0, ldb) } else { mat_n(x[1], 0, ldb) };
        if self.batch == 1 {
            be.gemm(m, n, k, a, b, &*c, 0, n, self.bias)?;
        } else {
            // One strided-batched GEMM, not one call per batch entry.
            let strides = Strides { count: self.batch, a: m * k, b: k * n, c: m * n };
            be.gemm_batched(m, n, k, a, b, &*c, 0, n, self.bias, strides)?;
        }
        Ok(vec![c])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let (a, b) = (&ctx.inputs[0], &ctx.inputs[1]);
        let (m, n, k, bt) = (self.m, self.n, self.k, self.batch);
        // d op_a(A) = dC · op_b(B)ᵀ and d op_b(B) = op_a(A)ᵀ · dC, each stored the way A and B are.
        let ga = if self.ta {
            gemm_op("matmulGrad", b, g, None, bt, k, m, n, self.tb, true, self.a_shape.clone())?
        } else {
            gemm_op("matmulGrad", g, b, None, bt, m, k, n, false, !self.tb, self.a_shape.clone())?
        };
        let gb = if self.tb {
            gemm_op("matmulGrad", g, a, None, bt, n, k, m, true, self.ta, self.b_shape.clone())?
        } else {
            gemm_op("matmulGrad", a, g, None, bt, k, n, m, !self.ta, false, self.b_shape.clone())?
        };
        let mut out = vec![Some(ga), Some(gb)];
        if self.bias {
            // Column sums of dC over every row of every batch.
            let axes: Vec<usize> = (0..self.out_shape.len() - 1).collect();
            out.push(Some(if axes.is_empty() { g.clone() } else { sum(g, &axes, false)? }));
        }
        Ok(out)
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm_op(
    name: &'static str, a: &Tensor, b: &Tensor, bias: Option<&Tensor>, batch: usize, m: usize, n: usize, k: usize,
    ta: bool, tb: bool, out_shape: Vec<usize>,
) -> Result<Tensor> {
    debug_assert_eq!(a.numel(), batch * m * k);
    debug_assert_eq!(b.numel(), batch * k * n);
    let op = Gemm {
        batch,
        m,
        n,
        k,
        ta,
        tb,
        bias: bias.is_some(),
        a_shape: a.shape().to_vec(),
        b_shape: b.shape().to_vec(),
        out_shape: out_shape.clone(),
        name,
    };
    let dtype = a.dtype();
    let mut inputs = vec![a, b];
    inputs.extend(bias);
    Ok(apply(Arc::new(op), &inputs, vec![(out_shape, dtype)])?.remove(0))
}

/// Matrix product: `[M, K] × [K, N] → [M, N]`, or batched `[B, M, K] × [B, K, N] → [B, M, N]`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "matmul";
    check_float(OP, a)?;
    check_same_dtype(OP, a, b)?;
    let (sa, sb) = (a.shape(), b.shape());
    match (sa.len(), sb.len()) {
        (2, 2) => {
            if sa[1] != sb[0] {
                return Err(Error::shape(
                    OP,
                    format!("[{}, N] as the right operand of {} (inner dimensions must match)", sa[1], fmt_shape(sa)),
                    fmt_shape(sb),
                ));
            }
            let (m, k, n) = (sa[0], sa[1], sb[1]);
            gemm_op(OP, a, b, None, 1, m, n, k, false, false, vec![m, n])
        }
        (3, 3) => {
            if sa[0] != sb[0] || sa[2] != sb[1] {
                return Err(Error::shape(
                    OP,
                    format!(
                        "[{}, {}, N] as the right operand of {} (equal batch, matching inner dimensions)",
                        sa[0],
                        sa[2],
                        fmt_shape(sa)
                    ),
                    fmt_shape(sb),
                ));
            }
            let (bt, m, k, n) = (sa[0], sa[1], sa[2], sb[2]);
            gemm_op(OP, a, b, None, bt, m, n, k, false, false, vec![bt, m, n])
        }
        _ => Err(Error::shape(
            OP,
            format!("two 2-D or two 3-D tensors (got {} and {})", fmt_shape(sa), fmt_shape(sb)),
            format!("{}-D × {}-D", sa.len(), sb.len()),
        )),
    }
}

/// `x · wᵀ + b` with PyTorch's layout: x `[..., In]`, w `[Out, In]`, b `[Out]` → `[..., Out]`.
/// All leading dimensions of x go through one GEMM that reads w transposed in place.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "linear";
    check_float(OP, x)?;
    check_same_dtype(OP, x, w)?;
    let (sx, sw) = (x.shape(), w.shape());
    if sx.is_empty() {
        return Err(Error::shape(OP, "an input with at least one dimension [..., In]", fmt_shape(sx)));
    }
    let in_f = sx[sx.len() - 1];
    if sw.len() != 2 || sw[1] != in_f {
        return Err(Error::shape(
            OP,
            format!("a weight of shape [Out, {in_f}] for an input of shape {}", fmt_shape(sx)),
            fmt_shape(sw),
        ));
    }
    let out_f = sw[0];
    if let Some(b) = b {
        check_same_dtype(OP, x, b)?;
        if b.shape() != [out_f] {
            return Err(Error::shape(
                OP,
                format!("a bias of shape [{out_f}] for a weight of shape {}", fmt_shape(sw)),
                fmt_shape(b.shape()),
            ));
        }
    }
    let rows = x.numel() / in_f;
    let mut out_shape = sx.to_vec();
    *out_shape.last_mut().expect("non-empty") = out_f;
    check_shape(OP, &out_shape)?;
    gemm_op(OP, x, w, b, 1, rows, out_f, in_f, false, true, out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_gemm_op_matches_plain() {
        // Aᵀ stored [k×m]; the op must read it transposed.
        let at = Tensor::from_f64(vec![1., 4., 2., 5., 3., 6.], &[3, 2]).unwrap(); // A = [[1,2,3],[4,5,6]]
        let b = Tensor::from_f64(vec![1., 0., 0., 1., 1., 1.], &[3, 2]).unwrap();
        let c = gemm_op("t", &at, &b, None, 1, 2, 2, 3, true, false, vec![2, 2]).unwrap();
        assert_eq!(c.to_vec_f64().unwrap(), vec![4., 5., 10., 11.]);
    }
}
