//! The CPU GEMM: every matrix product of the engine goes through [`gemm`] (the `gemm` crate's
//! packed SIMD kernels), reading transposed operands through strided [`Mat`] views.

use super::par::{self, PAR_MIN_GEMM_FLOPS};
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

/// Whether the `gemm` crate runs on this CPU. On x86-64 it takes its AVX-512 or FMA kernels
/// whenever the CPU reports `avx512f` or `fma`, and those kernels then unwrap a check for the
/// whole AVX2 + FMA set: on a CPU with FMA but without AVX2 (AMD Piledriver and Steamroller,
/// 2012-2015) every product would fail with "called `Option::unwrap()` on a `None` value". The
/// features below are that set, as the crate (gemm-common 0.19, `simd::V3`) checks it.
fn gemm_crate_runs() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static RUNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *RUNS.get_or_init(|| {
            use std::arch::is_x86_feature_detected as has;
            let takes_simd_kernels = has!("avx512f") || has!("fma");
            let has_its_simd_set = has!("sse")
                && has!("sse2")
                && has!("fxsr")
                && has!("sse3")
                && has!("ssse3")
                && has!("sse4.1")
                && has!("sse4.2")
                && has!("avx")
                && has!("avx2")
                && has!("fma");
            !takes_simd_kernels || has_its_simd_set
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    true
}

/// `c[m×n] (+)= a[m×k] · b[k×n]` through the `gemm` crate (packed, SIMD, rayon-parallel), or
/// [`gemm_rows`] on the CPUs it cannot run on ([`gemm_crate_runs`]).
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
    if !gemm_crate_runs() {
        gemm_rows(m, n, k, a, b, c, ldc, accumulate);
        return;
    }
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

/// The product without the `gemm` crate, one row of `c` per task: plain loops that the
/// compiler vectorises for the baseline instruction set. Slower than the crate's kernels; only
/// for the CPUs those cannot run on. The caller has checked the extents.
#[allow(clippy::too_many_arguments)]
fn gemm_rows<T: Float>(m: usize, n: usize, k: usize, a: Mat<T>, b: Mat<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    // Both strides are non-negative (see `Mat::strides`).
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    let (a_rs, a_cs, b_rs, b_cs) = (a_rs as usize, a_cs as usize, b_rs as usize, b_cs as usize);
    let c = &mut c[..(m - 1) * ldc + n];
    par::for_each(m * n * k, PAR_MIN_GEMM_FLOPS, par::indexed(par::rows_mut(c, ldc)), |(i, row)| {
        let row = &mut row[..n];
        if !accumulate {
            row.fill(T::ZERO);
        }
        for p in 0..k {
            let aip = a.data[i * a_rs + p * a_cs];
            let b0 = p * b_rs;
            for (j, cj) in row.iter_mut().enumerate() {
                *cj += aip * b.data[b0 + j * b_cs];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    type GemmFn = fn(usize, usize, usize, Mat<f64>, Mat<f64>, &mut [f64], usize, bool);

    /// `f` against the naive triple loop, with plain and transposed operands, overwriting and
    /// accumulating.
    fn matches_naive_with_transposes(f: GemmFn) {
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
        f(m, n, k, Mat::n(&a, k), Mat::n(&b, n), &mut c, n, false);
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
        f(m, n, k, Mat::t(&at, m), Mat::t(&bt, k), &mut c2, n, true);
        for i in 0..m * n {
            assert!((c[i] - want[i]).abs() < 1e-12);
            assert!((c2[i] - want[i] - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn gemm_matches_naive_with_transposes() {
        matches_naive_with_transposes(gemm);
    }

    #[test]
    fn gemm_rows_matches_naive_with_transposes() {
        matches_naive_with_transposes(gemm_rows);
    }

    /// The fallback agrees with the crate on a product big enough to run on the pool, written
    /// into rows wider than n (ldc > n): the columns past n stay as they were.
    #[test]
    fn gemm_rows_matches_the_crate_on_the_pool() {
        let (m, k, n, ldc) = (130, 97, 101, 104);
        assert!(m * n * k >= PAR_MIN_GEMM_FLOPS);
        let a: Vec<f64> = (0..k * m).map(|i| (i as f64 * 0.013).sin()).collect(); // aᵀ, [k×m]
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.029).cos()).collect();
        let start: Vec<f64> = (0..(m - 1) * ldc + n).map(|i| (i % 7) as f64).collect();
        let mut want = start.clone();
        gemm(m, n, k, Mat::t(&a, m), Mat::n(&b, n), &mut want, ldc, true);
        let mut got = start.clone();
        gemm_rows(m, n, k, Mat::t(&a, m), Mat::n(&b, n), &mut got, ldc, true);
        for r in 0..m {
            for j in 0..ldc.min(got.len() - r * ldc) {
                let (g, w) = (got[r * ldc + j], want[r * ldc + j]);
                if j < n {
                    assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "[{r}, {j}]: {g} vs {w}");
                } else {
                    assert_eq!(g, start[r * ldc + j], "[{r}, {j}] past n was written");
                }
            }
        }
    }
}
