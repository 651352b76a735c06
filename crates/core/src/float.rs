//! The float element trait that every CPU kernel is generic over (f32 for speed, f64 for
//! gradient checks), with vectorisable activations and the GEMM entry point.

use crate::storage::CpuStorage;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + PartialOrd
    + Default
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn sigmoid(self) -> Self;
    fn max(self, other: Self) -> Self {
        if self > other {
            self
        } else {
            other
        }
    }
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn view(s: &CpuStorage) -> &[Self];
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + f64::exp(-self))
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::new_f64(v)
    }
    fn view(s: &CpuStorage) -> &[Self] {
        match s {
            CpuStorage::F64(v) => v,
            // Ops check dtypes when they are built; reaching this is a bug in an op.
            _ => panic!("storage is {}, kernel expected float64", s.dtype()),
        }
    }
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn exp(self) -> Self {
        fast_exp_f32(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn tanh(self) -> Self {
        fast_tanh_f32(self)
    }
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + fast_exp_f32(-self))
    }
    fn wrap(v: Vec<Self>) -> CpuStorage {
        CpuStorage::new_f32(v)
    }
    fn view(s: &CpuStorage) -> &[Self] {
        match s {
            CpuStorage::F32(v) => v,
            _ => panic!("storage is {}, kernel expected float32", s.dtype()),
        }
    }
}

/// exp for f32 by range reduction and a degree-6 minimax polynomial (about 1 ulp).
/// libm's expf does not vectorise; this one does, which matters in the gate loops.
#[inline(always)]
pub fn fast_exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // Round to nearest by adding and subtracting 1.5·2^23 (exact for |v| < 2^22): unlike
    // f32::round, which is a libm call, this stays inside vectorised loops.
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // ln 2 split in two so that x - n ln 2 stays exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    let bits = ((n as i32 + 127) as u32) << 23;
    y * f32::from_bits(bits)
}

/// tanh for f32: an odd polynomial near zero (keeps relative accuracy), the exp form elsewhere.
#[inline(always)]
pub fn fast_tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3_f32;
    p = p * z + 2.063_908_9e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328_2e-1;
    let small = x + x * z * p;
    let e = fast_exp_f32(2.0 * ax.min(9.0));
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    if ax < 0.625 {
        small
    } else {
        large
    }
}

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

/// Below this many multiply-adds a GEMM runs on the calling thread: the fork-join costs more.
const PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// `c[m×n] (+)= a[m×k] · b[k×n]` through the `gemm` crate (packed, SIMD, rayon-parallel).
/// `c` is row-major with leading dimension `ldc`; when `accumulate` the product is added.
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
    let par = if m * n * k >= PARALLEL_MIN_FLOPS {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index the kernel touches; c is uniquely borrowed.
    unsafe {
        gemm::gemm(
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
    fn fast_activations_match_std_closely() {
        let mut worst_exp = 0.0f64;
        let mut worst_tanh = 0.0f64;
        let mut x = -30.0f32;
        while x < 30.0 {
            let e = (fast_exp_f32(x) as f64 - (x as f64).exp()).abs() / (x as f64).exp();
            worst_exp = worst_exp.max(e);
            let t_ref = (x as f64).tanh();
            let t = (fast_tanh_f32(x) as f64 - t_ref).abs() / t_ref.abs().max(1e-30);
            worst_tanh = worst_tanh.max(t);
            x += 0.000_73;
        }
        assert!(worst_exp < 4e-7, "exp rel err {worst_exp}");
        assert!(worst_tanh < 4e-7, "tanh rel err {worst_tanh}");
        assert_eq!(fast_tanh_f32(0.0), 0.0);
        assert!(fast_tanh_f32(1e-20) > 0.0);
    }

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
