//! The CPU backend: the float element trait that every CPU kernel is generic over (f32 for
//! speed, f64 for gradient checks), fast f32 activations (`math`, vectorised in `simd`), the GEMM
//! (`gemm`), the rule for when a loop runs on the thread pool (`par`), and the persistent teams
//! and packed step kernels of the f32 recurrent engine (`team`, `simd`, and the LSTM's fused row
//! step, `lstm_rows`). The ops call these directly; only
//! other devices go through `backend::GpuBackend`.

mod gemm;
pub mod lstm_rows;
mod math;
pub mod par;
pub mod simd;
pub mod team;

pub use self::gemm::{gemm, gemm_batch, Mat, Product};
pub use self::math::{fast_exp_f32, fast_tanh_f32};

use crate::storage::CpuStorage;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// The element type of the CPU kernels: f32 (with the fast activations) or f64 (libm).
pub trait Float:
    Copy
    + crate::pool::Elem
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
    /// `sigmoid` over a slice in place (f32: vectorised, see `simd`).
    fn sigmoid_slice(x: &mut [Self]) {
        for v in x {
            *v = v.sigmoid();
        }
    }
    /// `tanh` over a slice in place (f32: vectorised, see `simd`).
    fn tanh_slice(x: &mut [Self]) {
        for v in x {
            *v = v.tanh();
        }
    }
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
    fn sigmoid_slice(x: &mut [Self]) {
        (simd::kernels().sigmoid)(x)
    }
    fn tanh_slice(x: &mut [Self]) {
        (simd::kernels().tanh)(x)
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
