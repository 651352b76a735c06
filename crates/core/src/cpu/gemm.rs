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
    /// The rows from `r0` on (of the logical, possibly transposed, matrix).
    fn rows_from(&self, r0: usize) -> Self {
        let at = if self.trans { r0 } else { r0 * self.ld };
        Mat { data: &self.data[at.min(self.data.len())..], ..*self }
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
    check_operands(m, n, k, a, b);
    if !gemm_crate_runs() {
        gemm_rows(m, n, k, a, b, c, ldc, accumulate);
        return;
    }
    let par = if m * n * k >= PAR_MIN_GEMM_FLOPS {
        ::gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        ::gemm::Parallelism::None
    };
    crate_gemm(m, n, k, a, b, c, ldc, accumulate, par);
}

/// The `gemm` crate's product; the caller has checked the extents and that the crate runs.
#[allow(clippy::too_many_arguments)]
fn crate_gemm<T: Float>(
    m: usize, n: usize, k: usize, a: Mat<T>, b: Mat<T>, c: &mut [T], ldc: usize, accumulate: bool,
    par: ::gemm::Parallelism,
) {
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
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

/// One product of a [`gemm_batch`]: `c[m×n] (+)= a[m×k] · b[k×n]`, as [`gemm`]'s arguments.
pub struct Product<'a, T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Mat<'a, T>,
    pub b: Mat<'a, T>,
    pub c: &'a mut [T],
    pub ldc: usize,
    pub accumulate: bool,
}

/// Several products at once, for tall products such as the weight gradients of a recurrent
/// layer (M = G·H rows, K = T·B): every product is cut into one range of rows per pool thread,
/// and each thread runs its ranges of all of them, one after another, on the crate's
/// single-threaded path, in one parallel region. The crate's own threading splits each product
/// separately and hands packed blocks between threads; here each thread packs only its rows of
/// a and keeps to its own core (LSTM B=32 T=50 H=256, the two weight-gradient products on 2
/// cores: 0.86–0.9× the time). A row range of a product gets the same bits as the whole product
/// (the crate sums over k the same way whatever m is), so the result does not depend on the
/// number of threads.
pub fn gemm_batch<T: Float>(products: Vec<Product<T>>) {
    let flops: usize = products.iter().map(|p| p.m * p.n * p.k).sum();
    let parts = if flops >= PAR_MIN_GEMM_FLOPS { rayon::current_num_threads() } else { 1 };
    if parts <= 1 || !gemm_crate_runs() {
        for p in products {
            gemm(p.m, p.n, p.k, p.a, p.b, p.c, p.ldc, p.accumulate);
        }
        return;
    }
    // Per part, its row range of every product.
    let mut shares: Vec<Vec<Product<T>>> = (0..parts).map(|_| Vec::new()).collect();
    for p in products {
        if p.m == 0 || p.n == 0 || p.k == 0 {
            gemm(p.m, p.n, p.k, p.a, p.b, p.c, p.ldc, p.accumulate);
            continue;
        }
        assert!(p.c.len() >= (p.m - 1) * p.ldc + p.n, "gemm: c too small");
        check_operands(p.m, p.n, p.k, p.a, p.b);
        let mut rest = p.c;
        for (i, share) in shares.iter_mut().enumerate() {
            let (r0, r1) = (i * p.m / parts, (i + 1) * p.m / parts);
            if r1 == r0 {
                continue;
            }
            let len = if r1 == p.m { rest.len() } else { (r1 - r0) * p.ldc };
            let (mine, later) = std::mem::take(&mut rest).split_at_mut(len);
            rest = later;
            share.push(Product { m: r1 - r0, a: p.a.rows_from(r0), c: mine, ..p });
        }
    }
    rayon::scope(|s| {
        for share in shares {
            s.spawn(move |_| {
                for p in share {
                    crate_gemm(p.m, p.n, p.k, p.a, p.b, p.c, p.ldc, p.accumulate, ::gemm::Parallelism::None);
                }
            });
        }
    });
}

/// The operands hold every element an m×k by k×n product reads (m, n, k > 0).
fn check_operands<T>(m: usize, n: usize, k: usize, a: Mat<T>, b: Mat<T>) {
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    let a_need = ((m - 1) as isize * a_rs + (k - 1) as isize * a_cs) as usize + 1;
    let b_need = ((k - 1) as isize * b_rs + (n - 1) as isize * b_cs) as usize + 1;
    assert!(a.data.len() >= a_need && b.data.len() >= b_need, "gemm: operand too small");
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

    /// A batch gives every product the bits the same product gets alone on one thread (each
    /// row range is summed as the whole product sums it), whatever the pool size, with plain
    /// and transposed operands, accumulating or not, rows wider than n, fewer rows than
    /// threads, and k = 0; the columns past n stay as they were.
    #[test]
    fn gemm_batch_matches_each_product_alone() {
        let vals = |n: usize, f: f64| (0..n).map(|i| (i as f64 * f).sin() as f32).collect::<Vec<f32>>();
        // (m, n, k, a transposed, accumulate, ldc)
        let shapes = [
            (300, 70, 210, true, false, 70),
            (1, 40, 33, false, true, 44),
            (97, 5, 0, true, false, 5),
            (64, 129, 80, false, true, 130),
        ];
        let alone: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(s, &(m, n, k, tr, acc, ldc))| {
                let (a, b) = (vals(m * k, 0.013 + s as f64), vals(k * n, 0.029));
                let mut c = vals((m - 1) * ldc + n, 0.7);
                let am = if tr { Mat::t(&a, m) } else { Mat::n(&a, k) };
                // Alone and single-threaded: the reference bits.
                if k > 0 {
                    crate_gemm(m, n, k, am, Mat::n(&b, n), &mut c, ldc, acc, ::gemm::Parallelism::None);
                } else {
                    gemm(m, n, k, am, Mat::n(&b, n), &mut c, ldc, acc);
                }
                c
            })
            .collect();
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let ops: Vec<(Vec<f32>, Vec<f32>)> = shapes
                .iter()
                .enumerate()
                .map(|(s, &(m, n, k, _, _, _))| (vals(m * k, 0.013 + s as f64), vals(k * n, 0.029)))
                .collect();
            let mut outs: Vec<Vec<f32>> =
                shapes.iter().map(|&(m, n, _, _, _, ldc)| vals((m - 1) * ldc + n, 0.7)).collect();
            let products: Vec<Product<f32>> = shapes
                .iter()
                .zip(&ops)
                .zip(outs.iter_mut())
                .map(|((&(m, n, k, tr, acc, ldc), (a, b)), c)| Product {
                    m,
                    n,
                    k,
                    a: if tr { Mat::t(a, m) } else { Mat::n(a, k) },
                    b: Mat::n(b, n),
                    c,
                    ldc,
                    accumulate: acc,
                })
                .collect();
            pool.install(|| gemm_batch(products));
            for (s, (got, want)) in outs.iter().zip(&alone).enumerate() {
                let same = got.iter().zip(want).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "product {s} with {threads} threads differs from the product alone");
            }
        }
    }
}
