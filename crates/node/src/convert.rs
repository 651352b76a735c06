//! Checked conversions of JS numbers (always f64 on the wire) into sizes, axes and seeds.
//! Each failure is a core error naming the op, so that it reaches JS with the right class.

use recurrent_core::error::{Error, Result};
use recurrent_core::storage::DType;
use recurrent_core::tensor::check_shape;

fn fmt_raw(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", parts.join(", "))
}

/// A shape from JS: every entry a finite non-negative integer. Zero dims and oversized totals
/// are then refused by the core's `check_shape` (ShapeError / MemoryError) before anything is
/// allocated.
pub(crate) fn shape(op: &str, raw: &[f64]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(raw.len());
    for &d in raw {
        if !d.is_finite() || d < 0.0 || d.fract() != 0.0 {
            return Err(Error::shape(op, "a shape of positive integers", fmt_raw(raw)));
        }
        if d > usize::MAX as f64 / 2.0 {
            return Err(Error::Memory { op: op.into(), what: format!("a tensor of shape {}", fmt_raw(raw)) });
        }
        out.push(d as usize);
    }
    check_shape(op, &out)?;
    Ok(out)
}

/// A target shape that may hold one `-1` (inferred), as `reshape` takes it.
pub(crate) fn shape_with_infer(op: &str, raw: &[f64]) -> Result<Vec<isize>> {
    let mut out = Vec::with_capacity(raw.len());
    for &d in raw {
        if !d.is_finite() || d.fract() != 0.0 || d < -1.0 || d > (isize::MAX / 2) as f64 {
            return Err(Error::shape(op, "a shape of positive integers (one may be -1)", fmt_raw(raw)));
        }
        out.push(d as isize);
    }
    Ok(out)
}

/// A non-negative integer index or size (axis, start, length).
pub(crate) fn index(op: &str, what: &str, v: f64) -> Result<usize> {
    if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > (u32::MAX as f64) * 65536.0 {
        return Err(Error::value(op, format!("{what} must be a non-negative integer, got {v}")));
    }
    Ok(v as usize)
}

/// A list of non-negative axes.
pub(crate) fn axes(op: &str, raw: &[f64]) -> Result<Vec<usize>> {
    raw.iter().map(|&a| index(op, "axis", a)).collect()
}

/// A seed: an integer in [0, 2^53] (what a JS number holds exactly).
pub(crate) fn seed(op: &str, v: f64) -> Result<u64> {
    if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > 9_007_199_254_740_992.0 {
        return Err(Error::value(op, format!("seed must be an integer in [0, 2^53], got {v}")));
    }
    Ok(v as u64)
}

pub(crate) fn dtype(s: &str) -> Result<DType> {
    DType::parse(s)
}
