//! The LSTM cell's step over one row as a single SIMD pass, for the float32 team engine
//! (`ops/rnn_fast.rs` through `ops/lstm.rs`): the generic cell makes ten passes over the row's
//! gate blocks (bias adds, four activations, the state update, the saves), each with its own
//! slice bookkeeping; here every 16 (or 8) units go from the pre-activations to h' in registers.
//!
//! The arithmetic is the generic cell's, operation for operation (the same vector sigmoid and
//! tanh, no fused multiply-adds where the scalar code has none), so the results equal it bit for
//! bit; the tail of a row runs through masked loads and stores of the same vector code.

use super::simd::{kernels, Isa};

/// `rows` rows of an LSTM forward step over `n` units; row r's pointers are the ones below
/// plus r times their row strides (`rs_*`; the bias is the same for every row). Gate block k
/// (i, f, g, o) of the input projection is at `xp + k·ld_in` (of the bias, if not null, at
/// `bias + k·ld_bias`), of the recurrent product at `hh + k·ld_hh`. `c` (n) is updated in place
/// and h' written to `h` and, if not null, to `y`. If `ws` is not null, the six saved blocks
/// (i, f, g, o, c, tanh c') go to `ws + k·ld_ws`. One call takes a step's rows of one part of
/// the team's work: the engine builds no views and makes no call per row.
#[derive(Clone, Copy)]
pub struct FwdRow {
    pub rows: usize,
    pub rs: FwdStrides,
    pub n: usize,
    pub xp: *const f32,
    pub ld_in: usize,
    pub bias: *const f32,
    pub ld_bias: usize,
    pub hh: *const f32,
    pub ld_hh: usize,
    pub c: *mut f32,
    pub h: *mut f32,
    pub y: *mut f32,
    pub ws: *mut f32,
    pub ld_ws: usize,
}

/// Row strides of a [`FwdRow`]'s pointers (all zero for a single row).
#[derive(Clone, Copy, Default)]
pub struct FwdStrides {
    pub xp: usize,
    pub hh: usize,
    pub c: usize,
    pub h: usize,
    pub y: usize,
    pub ws: usize,
}

impl FwdRow {
    /// Row r alone.
    ///
    /// # Safety
    /// r < rows (the pointers then stay inside the extents the struct describes).
    #[inline]
    unsafe fn row(&self, r: usize) -> FwdRow {
        let rs = &self.rs;
        let opt = |p: *mut f32, stride: usize| if p.is_null() { p } else { p.add(r * stride) };
        FwdRow {
            rows: 1,
            xp: self.xp.add(r * rs.xp),
            hh: self.hh.add(r * rs.hh),
            c: self.c.add(r * rs.c),
            h: self.h.add(r * rs.h),
            y: opt(self.y, rs.y),
            ws: opt(self.ws, rs.ws),
            ..*self
        }
    }
}

/// `rows` rows of an LSTM backward step over `n` units (row r's pointers plus r times their
/// row strides `rs_*`, as [`FwdRow`]): from the saved blocks at `ws + k·ld_ws`, dh (plus `dy`
/// if not null) and dc, the gate gradients to `dg + k·ld_dg`, dc_prev's direct part into `dc`
/// and zero into `dh` (the engine adds dG·W_hh to it next).
#[derive(Clone, Copy)]
pub struct BwdRow {
    pub rows: usize,
    pub rs: BwdStrides,
    pub n: usize,
    pub ws: *const f32,
    pub ld_ws: usize,
    pub dy: *const f32,
    pub dh: *mut f32,
    pub dc: *mut f32,
    pub dg: *mut f32,
    pub ld_dg: usize,
}

/// Row strides of a [`BwdRow`]'s pointers (all zero for a single row).
#[derive(Clone, Copy, Default)]
pub struct BwdStrides {
    pub ws: usize,
    pub dy: usize,
    pub dh: usize,
    pub dc: usize,
    pub dg: usize,
}

impl BwdRow {
    /// Row r alone.
    ///
    /// # Safety
    /// r < rows.
    #[inline]
    unsafe fn row(&self, r: usize) -> BwdRow {
        let rs = &self.rs;
        BwdRow {
            rows: 1,
            ws: self.ws.add(r * rs.ws),
            dy: if self.dy.is_null() { self.dy } else { self.dy.add(r * rs.dy) },
            dh: self.dh.add(r * rs.dh),
            dc: self.dc.add(r * rs.dc),
            dg: self.dg.add(r * rs.dg),
            ..*self
        }
    }
}

/// A row kernel. Unsafe: every pointer is valid for the extents its struct describes, and the
/// output ranges overlap nothing else.
pub type FwdFn = unsafe fn(&FwdRow);
pub type BwdFn = unsafe fn(&BwdRow);

/// The row kernels for the instruction set of the engine's kernel table, or None on the portable
/// table (the cell's generic code runs then).
pub fn row_kernels() -> Option<(FwdFn, BwdFn)> {
    match kernels().isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some((avx512::fwd, avx512::bwd)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some((avx2::fwd, avx2::bwd)),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BwdRow, FwdRow};
    use crate::cpu::simd::avx512::{sigmoid16, tanh16};
    use std::arch::x86_64::*;

    fn mask(left: usize) -> __mmask16 {
        if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as __mmask16
        }
    }

    /// Safety: as [`super::FwdFn`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fwd(rows: &FwdRow) {
        for r in 0..rows.rows {
            fwd_row(&rows.row(r));
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn fwd_row(a: &FwdRow) {
        let mut j = 0;
        while j < a.n {
            let m = mask(a.n - j);
            let pre = |k: usize| {
                let x = _mm512_maskz_loadu_ps(m, a.xp.add(k * a.ld_in + j));
                let x = if a.bias.is_null() {
                    x
                } else {
                    _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, a.bias.add(k * a.ld_bias + j)))
                };
                _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, a.hh.add(k * a.ld_hh + j)))
            };
            let (i, f, g, o) = (sigmoid16(pre(0)), sigmoid16(pre(1)), tanh16(pre(2)), sigmoid16(pre(3)));
            let c = _mm512_maskz_loadu_ps(m, a.c.add(j));
            let c_new = _mm512_add_ps(_mm512_mul_ps(f, c), _mm512_mul_ps(i, g));
            let tc = tanh16(c_new);
            let h = _mm512_mul_ps(o, tc);
            _mm512_mask_storeu_ps(a.c.add(j), m, c_new);
            _mm512_mask_storeu_ps(a.h.add(j), m, h);
            if !a.y.is_null() {
                _mm512_mask_storeu_ps(a.y.add(j), m, h);
            }
            if !a.ws.is_null() {
                for (k, v) in [i, f, g, o, c, tc].into_iter().enumerate() {
                    _mm512_mask_storeu_ps(a.ws.add(k * a.ld_ws + j), m, v);
                }
            }
            j += 16;
        }
    }

    /// Safety: as [`super::BwdFn`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn bwd(rows: &BwdRow) {
        for r in 0..rows.rows {
            bwd_row(&rows.row(r));
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn bwd_row(a: &BwdRow) {
        let one = _mm512_set1_ps(1.0);
        let mut j = 0;
        while j < a.n {
            let m = mask(a.n - j);
            let w = |k: usize| _mm512_maskz_loadu_ps(m, a.ws.add(k * a.ld_ws + j));
            let (i, f, g, o, c, tc) = (w(0), w(1), w(2), w(3), w(4), w(5));
            let mut d_h = _mm512_maskz_loadu_ps(m, a.dh.add(j));
            if !a.dy.is_null() {
                d_h = _mm512_add_ps(d_h, _mm512_maskz_loadu_ps(m, a.dy.add(j)));
            }
            let dc = _mm512_maskz_loadu_ps(m, a.dc.add(j));
            let d_c =
                _mm512_add_ps(dc, _mm512_mul_ps(_mm512_mul_ps(d_h, o), _mm512_sub_ps(one, _mm512_mul_ps(tc, tc))));
            let di = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d_c, g), i), _mm512_sub_ps(one, i));
            let df = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d_c, c), f), _mm512_sub_ps(one, f));
            let dgg = _mm512_mul_ps(_mm512_mul_ps(d_c, i), _mm512_sub_ps(one, _mm512_mul_ps(g, g)));
            let d_o = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d_h, tc), o), _mm512_sub_ps(one, o));
            for (k, v) in [di, df, dgg, d_o].into_iter().enumerate() {
                _mm512_mask_storeu_ps(a.dg.add(k * a.ld_dg + j), m, v);
            }
            _mm512_mask_storeu_ps(a.dc.add(j), m, _mm512_mul_ps(d_c, f));
            _mm512_mask_storeu_ps(a.dh.add(j), m, _mm512_setzero_ps());
            j += 16;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BwdRow, FwdRow};
    use crate::cpu::simd::avx2::{sigmoid8, tanh8};
    use std::arch::x86_64::*;

    /// Lanes below `left` set (their sign bit), for maskload and maskstore.
    #[target_feature(enable = "avx2")]
    unsafe fn mask(left: usize) -> __m256i {
        let left = left.min(8) as i32;
        _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// Safety: as [`super::FwdFn`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fwd(rows: &FwdRow) {
        for r in 0..rows.rows {
            fwd_row(&rows.row(r));
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn fwd_row(a: &FwdRow) {
        let mut j = 0;
        while j < a.n {
            let m = mask(a.n - j);
            let pre = |k: usize| {
                let x = _mm256_maskload_ps(a.xp.add(k * a.ld_in + j), m);
                let x = if a.bias.is_null() {
                    x
                } else {
                    _mm256_add_ps(x, _mm256_maskload_ps(a.bias.add(k * a.ld_bias + j), m))
                };
                _mm256_add_ps(x, _mm256_maskload_ps(a.hh.add(k * a.ld_hh + j), m))
            };
            let (i, f, g, o) = (sigmoid8(pre(0)), sigmoid8(pre(1)), tanh8(pre(2)), sigmoid8(pre(3)));
            let c = _mm256_maskload_ps(a.c.add(j), m);
            let c_new = _mm256_add_ps(_mm256_mul_ps(f, c), _mm256_mul_ps(i, g));
            let tc = tanh8(c_new);
            let h = _mm256_mul_ps(o, tc);
            _mm256_maskstore_ps(a.c.add(j), m, c_new);
            _mm256_maskstore_ps(a.h.add(j), m, h);
            if !a.y.is_null() {
                _mm256_maskstore_ps(a.y.add(j), m, h);
            }
            if !a.ws.is_null() {
                for (k, v) in [i, f, g, o, c, tc].into_iter().enumerate() {
                    _mm256_maskstore_ps(a.ws.add(k * a.ld_ws + j), m, v);
                }
            }
            j += 8;
        }
    }

    /// Safety: as [`super::BwdFn`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn bwd(rows: &BwdRow) {
        for r in 0..rows.rows {
            bwd_row(&rows.row(r));
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn bwd_row(a: &BwdRow) {
        let one = _mm256_set1_ps(1.0);
        let mut j = 0;
        while j < a.n {
            let m = mask(a.n - j);
            let w = |k: usize| _mm256_maskload_ps(a.ws.add(k * a.ld_ws + j), m);
            let (i, f, g, o, c, tc) = (w(0), w(1), w(2), w(3), w(4), w(5));
            let mut d_h = _mm256_maskload_ps(a.dh.add(j), m);
            if !a.dy.is_null() {
                d_h = _mm256_add_ps(d_h, _mm256_maskload_ps(a.dy.add(j), m));
            }
            let dc = _mm256_maskload_ps(a.dc.add(j), m);
            let d_c =
                _mm256_add_ps(dc, _mm256_mul_ps(_mm256_mul_ps(d_h, o), _mm256_sub_ps(one, _mm256_mul_ps(tc, tc))));
            let di = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d_c, g), i), _mm256_sub_ps(one, i));
            let df = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d_c, c), f), _mm256_sub_ps(one, f));
            let dgg = _mm256_mul_ps(_mm256_mul_ps(d_c, i), _mm256_sub_ps(one, _mm256_mul_ps(g, g)));
            let d_o = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d_h, tc), o), _mm256_sub_ps(one, o));
            for (k, v) in [di, df, dgg, d_o].into_iter().enumerate() {
                _mm256_maskstore_ps(a.dg.add(k * a.ld_dg + j), m, v);
            }
            _mm256_maskstore_ps(a.dc.add(j), m, _mm256_mul_ps(d_c, f));
            _mm256_maskstore_ps(a.dh.add(j), m, _mm256_setzero_ps());
            j += 8;
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn vals(n: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                lo + (hi - lo) * (s as f32 / u32::MAX as f32)
            })
            .collect()
    }

    fn sig(x: f32) -> f32 {
        (1.0 / (1.0 + (-(x as f64)).exp())) as f32
    }

    /// Each available ISA's kernels against the equations in f64, at sizes with a masked tail,
    /// with and without the bias, y and the saves; and every ISA gives the same bits as the
    /// generic cell on the same table (checked through the team engine in tests/recurrent_f32.rs).
    #[test]
    fn row_kernels_match_the_equations_on_every_available_isa() {
        let mut tables: Vec<(&str, FwdFn, BwdFn)> = vec![];
        if std::is_x86_feature_detected!("avx512f") {
            tables.push(("avx512", avx512::fwd, avx512::bwd));
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            tables.push(("avx2", avx2::fwd, avx2::bwd));
        }
        for (isa, fwd, bwd) in tables {
            for n in [1, 7, 8, 15, 16, 17, 40, 64] {
                let ld = n + 3;
                for with_bias in [false, true] {
                    let xp = vals(4 * ld, 1, -2.0, 2.0);
                    let bias = vals(4 * ld, 2, -0.5, 0.5);
                    let hh = vals(4 * ld, 3, -2.0, 2.0);
                    let c0 = vals(n, 4, -1.5, 1.5);
                    let (mut c, mut h, mut y) = (c0.clone(), vec![f32::NAN; n], vec![f32::NAN; n]);
                    let mut ws = vec![f32::NAN; 6 * ld];
                    let row = FwdRow {
                        rows: 1,
                        rs: FwdStrides::default(),
                        n,
                        xp: xp.as_ptr(),
                        ld_in: ld,
                        bias: if with_bias { bias.as_ptr() } else { std::ptr::null() },
                        ld_bias: ld,
                        hh: hh.as_ptr(),
                        ld_hh: ld,
                        c: c.as_mut_ptr(),
                        h: h.as_mut_ptr(),
                        y: y.as_mut_ptr(),
                        ws: ws.as_mut_ptr(),
                        ld_ws: ld,
                    };
                    // SAFETY: every block is in bounds (4 or 6 blocks of ld ≥ n); the ISA was detected.
                    unsafe { fwd(&row) };
                    for j in 0..n {
                        let pre =
                            |k: usize| xp[k * ld + j] + if with_bias { bias[k * ld + j] } else { 0.0 } + hh[k * ld + j];
                        let (i, f, g, o) = (sig(pre(0)), sig(pre(1)), (pre(2) as f64).tanh() as f32, sig(pre(3)));
                        let cn = f as f64 * c0[j] as f64 + i as f64 * g as f64;
                        let hn = o as f64 * cn.tanh();
                        let close = |got: f32, want: f64| (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs());
                        assert!(
                            close(c[j], cn) && close(h[j], hn),
                            "{isa} n={n} j={j}: c {} vs {cn}, h {} vs {hn}",
                            c[j],
                            h[j]
                        );
                        assert_eq!(y[j], h[j], "{isa}: y is h'");
                        assert!(close(ws[j], i as f64) && close(ws[3 * ld + j], o as f64) && ws[4 * ld + j] == c0[j]);
                        assert!(close(ws[5 * ld + j], cn.tanh()));
                    }
                    // Past n, nothing is written.
                    assert!(ws[n..ld].iter().all(|v| v.is_nan()), "{isa} n={n}: wrote past the row");

                    let dy = vals(n, 5, -1.0, 1.0);
                    let (dh0, dc0) = (vals(n, 6, -1.0, 1.0), vals(n, 7, -1.0, 1.0));
                    let (mut dh, mut dc) = (dh0.clone(), dc0.clone());
                    let mut dg = vec![f32::NAN; 4 * ld];
                    let row = BwdRow {
                        rows: 1,
                        rs: BwdStrides::default(),
                        n,
                        ws: ws.as_ptr(),
                        ld_ws: ld,
                        dy: dy.as_ptr(),
                        dh: dh.as_mut_ptr(),
                        dc: dc.as_mut_ptr(),
                        dg: dg.as_mut_ptr(),
                        ld_dg: ld,
                    };
                    // SAFETY: as above.
                    unsafe { bwd(&row) };
                    for j in 0..n {
                        let w = |k: usize| ws[k * ld + j] as f64;
                        let (i, f, g, o, cp, tc) = (w(0), w(1), w(2), w(3), w(4), w(5));
                        let d_h = dh0[j] as f64 + dy[j] as f64;
                        let d_c = dc0[j] as f64 + d_h * o * (1.0 - tc * tc);
                        let want = [
                            d_c * g * i * (1.0 - i),
                            d_c * cp * f * (1.0 - f),
                            d_c * i * (1.0 - g * g),
                            d_h * tc * o * (1.0 - o),
                        ];
                        for (k, &wv) in want.iter().enumerate() {
                            let got = dg[k * ld + j] as f64;
                            assert!(
                                (got - wv).abs() <= 1e-5 * (1.0 + wv.abs()),
                                "{isa} n={n} j={j} gate {k}: {got} vs {wv}"
                            );
                        }
                        assert!((dc[j] as f64 - d_c * f).abs() <= 1e-5 * (1.0 + (d_c * f).abs()));
                        assert_eq!(dh[j], 0.0);
                    }
                    assert!(dg[n..ld].iter().all(|v| v.is_nan()), "{isa} n={n}: wrote past the row");
                }
            }
        }
    }

    /// Several rows in one call give each row the bits of that row alone, with a different
    /// stride per buffer, and write nothing between the rows.
    #[test]
    fn several_rows_equal_each_row_alone() {
        let mut tables: Vec<(&str, FwdFn, BwdFn)> = vec![];
        if std::is_x86_feature_detected!("avx512f") {
            tables.push(("avx512", avx512::fwd, avx512::bwd));
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            tables.push(("avx2", avx2::fwd, avx2::bwd));
        }
        let (rows, n, ld) = (3, 21, 24);
        // Row strides, all different: xp, hh, c, h, y, ws.
        let (rx, rh, rc, rhs, ry, rw) = (4 * ld + 3, 4 * ld + 7, n + 2, n + 5, 2 * n, 6 * ld + 1);
        for (isa, fwd, bwd) in tables {
            let xp = vals(rows * rx, 1, -2.0, 2.0);
            let hh = vals(rows * rh, 2, -2.0, 2.0);
            let bias = vals(4 * ld, 3, -0.5, 0.5);
            let c0 = vals(rows * rc, 4, -1.5, 1.5);
            let (mut c, mut h, mut y, mut ws) =
                (c0.clone(), vec![f32::NAN; rows * rhs], vec![f32::NAN; rows * ry], vec![f32::NAN; rows * rw]);
            let all = FwdRow {
                rows,
                rs: FwdStrides { xp: rx, hh: rh, c: rc, h: rhs, y: ry, ws: rw },
                n,
                xp: xp.as_ptr(),
                ld_in: ld,
                bias: bias.as_ptr(),
                ld_bias: ld,
                hh: hh.as_ptr(),
                ld_hh: ld,
                c: c.as_mut_ptr(),
                h: h.as_mut_ptr(),
                y: y.as_mut_ptr(),
                ws: ws.as_mut_ptr(),
                ld_ws: ld,
            };
            // SAFETY: each row's blocks lie inside the vectors (strides ≥ the blocks' extents).
            unsafe { fwd(&all) };
            for r in 0..rows {
                let mut c1 = c0[r * rc..][..n].to_vec();
                let (mut h1, mut y1, mut ws1) = (vec![0f32; n], vec![0f32; n], vec![0f32; 6 * ld]);
                let one = FwdRow {
                    rows: 1,
                    rs: FwdStrides::default(),
                    xp: xp[r * rx..].as_ptr(),
                    hh: hh[r * rh..].as_ptr(),
                    c: c1.as_mut_ptr(),
                    h: h1.as_mut_ptr(),
                    y: y1.as_mut_ptr(),
                    ws: ws1.as_mut_ptr(),
                    ..all
                };
                // SAFETY: as above, one row.
                unsafe { fwd(&one) };
                assert_eq!(bits(&c[r * rc..][..n]), bits(&c1), "{isa} row {r}: c");
                assert_eq!(bits(&h[r * rhs..][..n]), bits(&h1), "{isa} row {r}: h");
                assert_eq!(bits(&y[r * ry..][..n]), bits(&y1), "{isa} row {r}: y");
                for k in 0..6 {
                    assert_eq!(bits(&ws[r * rw + k * ld..][..n]), bits(&ws1[k * ld..][..n]), "{isa} row {r}: ws {k}");
                }
                assert!(h[r * rhs + n..(r + 1) * rhs].iter().all(|v| v.is_nan()), "{isa}: wrote between rows of h");
            }

            let (rd, rdh, rdc, rg) = (n + 1, n + 3, n + 4, 4 * ld + 2);
            let dy = vals(rows * rd, 5, -1.0, 1.0);
            let (dh0, dc0) = (vals(rows * rdh, 6, -1.0, 1.0), vals(rows * rdc, 7, -1.0, 1.0));
            let (mut dh, mut dc, mut dg) = (dh0.clone(), dc0.clone(), vec![f32::NAN; rows * rg]);
            let all = BwdRow {
                rows,
                rs: BwdStrides { ws: rw, dy: rd, dh: rdh, dc: rdc, dg: rg },
                n,
                ws: ws.as_ptr(),
                ld_ws: ld,
                dy: dy.as_ptr(),
                dh: dh.as_mut_ptr(),
                dc: dc.as_mut_ptr(),
                dg: dg.as_mut_ptr(),
                ld_dg: ld,
            };
            // SAFETY: as above.
            unsafe { bwd(&all) };
            for r in 0..rows {
                let (mut dh1, mut dc1, mut dg1) =
                    (dh0[r * rdh..][..n].to_vec(), dc0[r * rdc..][..n].to_vec(), vec![0f32; 4 * ld]);
                let one = BwdRow {
                    rows: 1,
                    rs: BwdStrides::default(),
                    ws: ws[r * rw..].as_ptr(),
                    dy: dy[r * rd..].as_ptr(),
                    dh: dh1.as_mut_ptr(),
                    dc: dc1.as_mut_ptr(),
                    dg: dg1.as_mut_ptr(),
                    ..all
                };
                // SAFETY: as above, one row.
                unsafe { bwd(&one) };
                assert_eq!(bits(&dh[r * rdh..][..n]), bits(&dh1), "{isa} row {r}: dh");
                assert_eq!(bits(&dc[r * rdc..][..n]), bits(&dc1), "{isa} row {r}: dc");
                for k in 0..4 {
                    assert_eq!(bits(&dg[r * rg + k * ld..][..n]), bits(&dg1[k * ld..][..n]), "{isa} row {r}: dg {k}");
                }
            }
        }
    }
}
