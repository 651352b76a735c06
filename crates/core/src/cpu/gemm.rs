//! The CPU GEMM: every matrix product of the engine goes through [`gemm`] (the `gemm` crate's
//! packed SIMD kernels), reading transposed operands through strided [`Mat`] views.

use super::par::PAR_MIN_GEMM_FLOPS;
use super::Float;

/// Row-major matrix view for [`gemm`]: `data[r * ld + c]`, or transposed when `trans`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    pub data: &'a [T],
    pub ld: usize,
    pub trans: bool,
}

impl<'a, T> Mat<'a, T> {
    pub fn n(data: &'a [T], ld: usize) -> Self {
        Mat { data, ld, trans: false }
    }
    pub fn t(data: &'a [T], ld: usize) -> Self {
        Mat { data, ld, trans: true }
    }
    fn strides(&self) -> (isize, isize) {
        // (row stride, column stride) of the logical (possibly transposed) matrix
        if self.trans {
            (1, self.ld as isize)
        } else {
            (self.ld as isize, 1)
        }
    }
}

/// `c[m×n] (+)= a[m×k] · b[k×n]` through the `gemm` crate (packed, SIMD, rayon-parallel).
/// `c` is row-major with leading dimension `ldc`; when `accumulate` the product is added.
#[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output, mode
pub fn gemm<T: Float>(m: usize, n: usize, k: usize, a: Mat<T>, b: Mat<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: c too small");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + n].iter_mut().for_each(|v| *v = T::ZERO);
            }
        }
        return;
    }
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    let a_need = ((m - 1) as isize * a_rs + (k - 1) as isize * a_cs) as usize + 1;
    let b_need = ((k - 1) as isize * b_rs + (n - 1) as isize * b_cs) as usize + 1;
    assert!(a.data.len() >= a_need && b.data.len() >= b_need, "gemm: operand too small");
    let par = if m * n * k >= PAR_MIN_GEMM_FLOPS {
        ::gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index the kernel touches; c is uniquely borrowed.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_with_transposes() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    want[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        let mut c = vec![0.0; m * n];
        gemm(m, n, k, Mat::n(&a, k), Mat::n(&b, n), &mut c, n, false);
        // aᵀ stored [k×m]
        let mut at = vec![0.0; k * m];
        for i in 0..m {
            for p in 0..k {
                at[p * m + i] = a[i * k + p];
            }
        }
        let mut bt = vec![0.0; n * k];
        for p in 0..k {
            for j in 0..n {
                bt[j * k + p] = b[p * n + j];
            }
        }
        let mut c2 = vec![1.0; m * n];
        gemm(m, n, k, Mat::t(&at, m), Mat::t(&bt, k), &mut c2, n, true);
        for i in 0..m * n {
            assert!((c[i] - want[i]).abs() < 1e-12);
            assert!((c2[i] - want[i] - 1.0).abs() < 1e-12);
        }
    }
}
