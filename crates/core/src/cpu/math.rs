//! Fast f32 activations for the CPU kernels: libm's expf and tanhf do not vectorise, these do,
//! which matters inside the fused gate loops (float64 keeps libm).

/// exp(x) − 1 for f32 as (q, 2^n), exp(x) = 2^n·(1 + q): range reduction x = n·ln 2 + r, then
/// q = expm1(r) by a degree-6 minimax polynomial. `x` must lie in [-87.3, 88.7].
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients as fitted; f32 rounds them
fn expm1_parts(x: f32) -> (f32, f32) {
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
    (p * r * r + r, f32::from_bits(((n as i32 + 127) as u32) << 23))
}

/// exp for f32 by range reduction and a degree-6 minimax polynomial (about 1 ulp).
/// libm's expf does not vectorise; this one does, which matters in the gate loops.
#[inline(always)]
pub fn fast_exp_f32(x: f32) -> f32 {
    let (q, s) = expm1_parts(x.clamp(-87.3, 88.7));
    (q + 1.0) * s
}

/// tanh for f32 as -em / (2 + em), em = expm1(-2|x|) = 2^n·q + (2^n - 1): nothing cancels
/// near zero, so one formula keeps the relative accuracy everywhere (the vector kernels in
/// `simd.rs` compute the same).
#[inline(always)]
pub fn fast_tanh_f32(x: f32) -> f32 {
    // A comparison rather than f32::max, which would turn NaN into the bound: NaN stays NaN.
    let u = -2.0 * x.abs();
    let (q, s) = expm1_parts(if u < -18.0 { -18.0 } else { u });
    let em = q * s + (s - 1.0);
    ((0.0 - em) / (2.0 + em)).copysign(x)
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
        assert!(fast_tanh_f32(f32::NAN).is_nan() && fast_exp_f32(f32::NAN).is_nan());
        assert_eq!((fast_tanh_f32(f32::INFINITY), fast_tanh_f32(f32::NEG_INFINITY)), (1.0, -1.0));
        assert!(fast_tanh_f32(1e-20) > 0.0);
    }
}
