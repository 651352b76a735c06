//! SIMD kernels of the f32 recurrent engine, chosen once at run time: AVX-512F, AVX2 with FMA,
//! or a portable fallback, behind one table ([`Kernels`]) so that one binary runs on any CPU.
//! - a register-blocked product of a few rows of activations with weights packed once into
//!   panels of 16 columns ([`pack_panels`]): up to 6 rows × up to 4 panels per inner loop,
//!   broadcast a[r, k], load the panel's row k, FMA;
//! - a product of one row with weights packed in rows ([`pack_rows_into`]: groups of 256
//!   columns, each `[k][256]`), for steps of one row (B = 1): a pass reads one contiguous run,
//!   which L2 streams faster than the panels' 4 interleaved streams, and the sums are the same;
//! - sigmoid and tanh over slices, 8 or 16 lanes at a time, with the same range reduction and
//!   polynomials as `math.rs` (within 4e-7 relative, tested).
//!
//! Every output element is one sequential sum over k in the same order whatever the tile it
//! falls in, and slice tails go through the same vector code (padded), so results do not
//! depend on how rows and units are split between threads.

use std::sync::OnceLock;

/// Columns per packed panel.
pub const NR: usize = 16;
/// Rows per register tile.
pub const MR: usize = 6;
/// Panels per cache block of [`Kernels::panels`] (the widest register tile).
const QB: usize = 4;
/// Values of k per cache block: QB panels × KC × 16 floats = 16 KiB, half of the smallest L1.
const KC: usize = 64;
/// Values of k per cache block where the L1 data cache holds 48 KiB or more: 32 KiB of
/// weights. Twice the k per block halves the partial sums' stores and reloads between blocks;
/// LSTM B = 64 T = 100 I = H = 512 inference went 3–6% faster on a Zen 5 core (48 KiB L1);
/// training and B ≤ 32 did not change. CPUs with a 32 KiB L1 (Zen 2–4, older Intel) keep KC.
const KC_WIDE_L1: usize = 128;

/// The k block for this CPU's L1 data cache (see [`KC_WIDE_L1`]).
fn k_block() -> usize {
    match l1d_bytes() {
        Some(b) if b >= 48 * 1024 => KC_WIDE_L1,
        _ => KC,
    }
}

/// The L1 data cache's size in bytes from CPUID's cache parameters (leaf 0x8000_001D on AMD,
/// leaf 4 on Intel), or None where the CPU does not say.
#[cfg(target_arch = "x86_64")]
fn l1d_bytes() -> Option<usize> {
    use std::arch::x86_64::{__cpuid_count, CpuidResult};
    // `__cpuid_count` is a safe function on recent compilers and an unsafe one on older ones
    // (every x86-64 CPU has the instruction); the block keeps both building.
    // SAFETY: cpuid reads CPU information only and exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let cpuid = |leaf: u32, sub: u32| -> CpuidResult { unsafe { __cpuid_count(leaf, sub) } };
    let vendor = cpuid(0, 0);
    // "AuthenticAMD" and "HygonGenuine" describe their caches in the extended leaf.
    let amd_like = vendor.ebx == u32::from_le_bytes(*b"Auth") || vendor.ebx == u32::from_le_bytes(*b"Hygo");
    let leaf = if amd_like { 0x8000_001D } else { 4 };
    let max = if amd_like { cpuid(0x8000_0000, 0).eax } else { vendor.eax };
    if max < leaf {
        return None;
    }
    for sub in 0..8 {
        let r = cpuid(leaf, sub);
        let (kind, level) = (r.eax & 0x1f, (r.eax >> 5) & 7);
        if kind == 0 {
            break;
        }
        if kind == 1 && level == 1 {
            let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
            let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
            let line = (r.ebx & 0xfff) as usize + 1;
            let sets = r.ecx as usize + 1;
            return Some(ways * partitions * line * sets);
        }
    }
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn l1d_bytes() -> Option<usize> {
    None
}

/// The instruction set a [`Kernels`] table runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

/// `out[r·ldo + q·16 + l] (+)= Σ_{kk<k} a[r·lda + kk] · b[q·ps + kk·16 + l]` for r < m, q < np:
/// one block of K for every row, added to `out` when `acc` (see [`Kernels::panels`]). Unsafe:
/// the caller guarantees the extents.
type PanelsFn = unsafe fn(
    a: *const f32,
    lda: usize,
    m: usize,
    k: usize,
    b: *const f32,
    ps: usize,
    np: usize,
    out: *mut f32,
    ldo: usize,
    acc: bool,
);
/// `out[j] = Σ_{kk<k} a[kk] · b[kk·w + j]` for j < w (a multiple of 16): one row times one
/// group of weights packed in rows. Unsafe: the caller guarantees the extents.
type RowFn = unsafe fn(a: *const f32, k: usize, b: *const f32, w: usize, out: *mut f32);
type ActFn = fn(&mut [f32]);

/// One instruction set's kernels.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub isa: Isa,
    /// Values of k per cache block of [`Kernels::panels`].
    kc: usize,
    panels: PanelsFn,
    row: RowFn,
    pub sigmoid: ActFn,
    pub tanh: ActFn,
}

impl Kernels {
    /// The table for `isa`, or None when this CPU lacks it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        let kc = k_block();
        match isa {
            Isa::Portable => Some(Kernels {
                isa,
                kc,
                panels: portable::panels,
                row: portable::row,
                sigmoid: portable::sigmoid,
                tanh: portable::tanh,
            }),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") => {
                Some(Kernels {
                    isa,
                    kc,
                    panels: avx2::panels,
                    row: avx2::row,
                    sigmoid: avx2::sigmoid,
                    tanh: avx2::tanh,
                })
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if std::is_x86_feature_detected!("avx512f") => Some(Kernels {
                isa,
                kc,
                panels: avx512::panels,
                row: avx512::row,
                sigmoid: avx512::sigmoid,
                tanh: avx512::tanh,
            }),
            _ => None,
        }
    }

    /// `out[r·ldo + q·16 + l] = Σ_k a[r·lda + k] · b[(q·k_len + k)·16 + l]` for r < m, q < np,
    /// l < 16: m rows of activations times np packed panels.
    ///
    /// Blocked so that the weights come from L1: for each group of [`QB`] panels and each block
    /// of [`KC`] values of k (16 KiB of packed weights; [`KC_WIDE_L1`], 32 KiB, where L1 holds
    /// 48 KiB), every row tile of the m rows passes over
    /// that block, carrying its partial sums in `out` from one block to the next. Each element
    /// stays one sequential sum over k, so the blocking changes no bit of the result. A single
    /// row tile (m ≤ [`MR`], e.g. B = 1 steps) reads each weight once and is not blocked.
    #[allow(clippy::too_many_arguments)]
    pub fn panels(&self, a: &[f32], lda: usize, m: usize, k: usize, b: &[f32], np: usize, out: &mut [f32], ldo: usize) {
        if m == 0 || np == 0 {
            return;
        }
        assert!(k > 0 && a.len() >= (m - 1) * lda + k, "panels: a too small");
        assert!(b.len() >= np * k * NR, "panels: b too small");
        assert!(out.len() >= (m - 1) * ldo + np * NR, "panels: out too small");
        let ps = k * NR;
        if m <= MR {
            // One row tile reads each weight once, so blocking would only add the partial sums'
            // stores and reloads: the whole of k in one pass (same sums, same bits).
            // SAFETY: as below, with the whole range of panels and of k.
            unsafe { (self.panels)(a.as_ptr(), lda, m, k, b.as_ptr(), ps, np, out.as_mut_ptr(), ldo, false) };
            return;
        }
        for q0 in (0..np).step_by(QB) {
            let qn = QB.min(np - q0);
            for k0 in (0..k).step_by(self.kc) {
                let kc = self.kc.min(k - k0);
                // SAFETY: the asserts bound every read and write (rows < m, k0 + kc ≤ k, panels
                // q0 + qn ≤ np); the table holds only kernels whose instruction set this CPU has
                // (checked in `for_isa`).
                unsafe {
                    (self.panels)(
                        a.as_ptr().add(k0),
                        lda,
                        m,
                        kc,
                        b.as_ptr().add(q0 * ps + k0 * NR),
                        ps,
                        qn,
                        out.as_mut_ptr().add(q0 * NR),
                        ldo,
                        k0 > 0,
                    )
                }
            }
        }
    }
}

impl Kernels {
    /// `out[j] = Σ_kk a[kk] · B[kk][j]` for j < w: one row of activations (k values) times
    /// weights packed by [`pack_rows_into`] (`w` = 16 · panels), one group of columns at a
    /// time. Each output is the same sequential sum over k, with the same multiply-adds, as
    /// [`Kernels::panels`] computes from the panel packing of the same weights, so the two
    /// give the same bits.
    pub fn row(&self, a: &[f32], k: usize, b: &[f32], w: usize, out: &mut [f32]) {
        if w == 0 {
            return;
        }
        assert!(k > 0 && a.len() >= k, "row: a too small");
        assert!(w.is_multiple_of(NR), "row: w = {w} is not a multiple of {NR}");
        assert!(b.len() >= k * w, "row: b too small");
        assert!(out.len() >= w, "row: out too small");
        for c0 in (0..w).step_by(ROW_GROUP) {
            let gw = ROW_GROUP.min(w - c0);
            // SAFETY: the asserts bound every read and write (group c0 is k·gw floats at k·c0);
            // the table holds only kernels whose instruction set this CPU has (`for_isa`).
            unsafe { (self.row)(a.as_ptr(), k, b.as_ptr().add(k * c0), gw, out.as_mut_ptr().add(c0)) }
        }
    }
}

/// The best table for this CPU, chosen on first use. `RECURRENT_SIMD=portable|avx2|avx512`
/// caps it (for testing the fallbacks on a machine that has more).
pub fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        let cap = std::env::var("RECURRENT_SIMD").unwrap_or_default();
        let order: &[Isa] = match cap.trim() {
            "portable" => &[Isa::Portable],
            "avx2" => &[Isa::Avx2, Isa::Portable],
            _ => &[Isa::Avx512, Isa::Avx2, Isa::Portable],
        };
        order.iter().find_map(|&i| Kernels::for_isa(i)).expect("the portable kernels always exist")
    })
}

/// Packs columns [j0, j1) of the k × n matrix `B[kk][j] = src[kk·rs + j·cs]` into panels of
/// 16 columns (`[panel][kk][16]`, zero past j1), the layout [`Kernels::panels`] reads (each
/// layout of the source read as [`copy_columns`] says).
pub fn pack_panels(k: usize, j0: usize, j1: usize, src: &[f32], rs: usize, cs: usize, out: &mut Vec<f32>) {
    let np = (j1 - j0).div_ceil(NR);
    out.clear();
    out.resize(np * k * NR, 0.0);
    pack_panels_into(k, j0, j1, src, rs, cs, out);
}

/// As [`pack_panels`], into `out` (np·k·16 floats, each written: zero past j1), e.g. a part of
/// a larger packed buffer, which then needs neither zeroing nor a copy.
pub fn pack_panels_into(k: usize, j0: usize, j1: usize, src: &[f32], rs: usize, cs: usize, out: &mut [f32]) {
    let np = (j1 - j0).div_ceil(NR);
    assert_eq!(out.len(), np * k * NR, "pack_panels_into: out is not np·k·16 floats");
    for q in 0..np {
        let panel = &mut out[q * k * NR..(q + 1) * k * NR];
        let (jq, w) = (j0 + q * NR, NR.min(j1 - j0 - q * NR));
        if w < NR {
            panel.fill(0.0);
        }
        copy_columns(k, jq, w, src, rs, cs, panel, NR);
    }
}

/// `dst[kk·ld + x] = B[kk][j0 + x]` for kk < k, x < n, with `B[kk][j] = src[kk·rs + j·cs]`.
/// Rows of B contiguous (cs = 1): row copies. Columns contiguous (rs = 1, W_hhᵀ): 16 × 16
/// blocks transposed through a small buffer, so that both the reads and the writes run along
/// cache lines.
#[allow(clippy::too_many_arguments)] // the source's and the destination's shapes
fn copy_columns(k: usize, j0: usize, n: usize, src: &[f32], rs: usize, cs: usize, dst: &mut [f32], ld: usize) {
    if cs == 1 {
        for kk in 0..k {
            dst[kk * ld..][..n].copy_from_slice(&src[kk * rs + j0..][..n]);
        }
    } else if rs == 1 {
        let mut blk = [[0f32; NR]; NR];
        for jb in (0..n).step_by(NR) {
            let jw = NR.min(n - jb);
            for k0 in (0..k).step_by(NR) {
                let kw = NR.min(k - k0);
                for (l, row) in blk.iter_mut().enumerate().take(jw) {
                    row[..kw].copy_from_slice(&src[(j0 + jb + l) * cs + k0..][..kw]);
                }
                for x in 0..kw {
                    for (l, d) in dst[(k0 + x) * ld + jb..][..jw].iter_mut().enumerate() {
                        *d = blk[l][x];
                    }
                }
            }
        }
    } else {
        for x in 0..n {
            for kk in 0..k {
                dst[kk * ld + x] = src[kk * rs + (j0 + x) * cs];
            }
        }
    }
}

/// The height of the next row tile when `left` rows remain: as few tiles as [`MR`] allows, of
/// heights as equal as can be (8 rows: 4 + 4, not 6 + 2; 7: 4 + 3, not 6 + 1), since a low
/// tile does fewer multiply-adds per weight it loads (one core, 512 KiB of weights: 2 rows
/// ~140 GFLOP/s, 4–6 rows 210–235). Which tile computes a row changes none of its bits.
fn tile_rows(left: usize) -> usize {
    left.div_ceil(left.div_ceil(MR).max(1))
}

/// Columns per group of the rows packing: 16 vectors of 16, one register tile of
/// [`Kernels::row`] on AVX-512.
pub const ROW_GROUP: usize = 256;

/// Packs columns [j0, j1) of `B[kk][j] = src[kk·rs + j·cs]` (as [`pack_panels`]) in rows, for
/// [`Kernels::row`]: the padded width w = 16 · ⌈(j1 − j0)/16⌉ in groups of [`ROW_GROUP`]
/// columns (the last one narrower), each group `[kk][its width]` and contiguous, so that a
/// pass over one group reads one contiguous run (zero past j1). The same np·k·16 floats as the
/// panel packing, so either fits the same place.
pub fn pack_rows_into(k: usize, j0: usize, j1: usize, src: &[f32], rs: usize, cs: usize, out: &mut [f32]) {
    let n = j1 - j0;
    let w = n.div_ceil(NR) * NR;
    assert_eq!(out.len(), k * w, "pack_rows_into: out is not k·w floats");
    for (gi, group) in out.chunks_mut(k * ROW_GROUP).enumerate() {
        let (c0, gw) = (gi * ROW_GROUP, ROW_GROUP.min(w - gi * ROW_GROUP));
        // Columns of the group that hold values (the rest is padding).
        let filled = n.saturating_sub(c0).min(gw);
        for dst in group.chunks_exact_mut(gw) {
            dst[filled..].fill(0.0);
        }
        copy_columns(k, j0 + c0, filled, src, rs, cs, group, gw);
    }
}

/// Asks for the cache lines of `v` into L2 ahead of use (a hint; nothing on other CPUs). The team
/// engine issues it for the rows a step's epilogue will read (XP; WS and H_prev backward) before
/// that step's GEMM, so the reads from memory overlap the arithmetic.
#[inline]
pub fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch of a valid address; it reads nothing architecturally.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

// Constants of the exp and tanh approximations, shared with `math.rs`'s scalar versions.
const EXP_LO: f32 = -87.3;
const EXP_HI: f32 = 88.7;
const MAGIC: f32 = 12_582_912.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
#[allow(clippy::excessive_precision)]
const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1];
const TANH_CLAMP: f32 = 9.0;

mod portable {
    use super::NR;
    use crate::cpu::math::{fast_exp_f32, fast_tanh_f32};

    /// Plain loops over 16-wide accumulators: the compiler vectorises them for the baseline
    /// target (SSE2 on x86-64, NEON on aarch64).
    #[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output
    pub(super) unsafe fn panels(
        a: *const f32, lda: usize, m: usize, k: usize, b: *const f32, ps: usize, np: usize, out: *mut f32, ldo: usize,
        add: bool,
    ) {
        let mut r0 = 0;
        while r0 < m {
            let mr = super::tile_rows(m - r0);
            for q in 0..np {
                let mut acc = [[0f32; NR]; super::MR];
                if add {
                    for (r, accr) in acc.iter_mut().enumerate().take(mr) {
                        std::ptr::copy_nonoverlapping(out.add((r0 + r) * ldo + q * NR), accr.as_mut_ptr(), NR);
                    }
                }
                let bq = b.add(q * ps);
                for kk in 0..k {
                    let brow = std::slice::from_raw_parts(bq.add(kk * NR), NR);
                    for (r, accr) in acc.iter_mut().enumerate().take(mr) {
                        let av = *a.add((r0 + r) * lda + kk);
                        for l in 0..NR {
                            accr[l] += av * brow[l];
                        }
                    }
                }
                for (r, accr) in acc.iter().enumerate().take(mr) {
                    std::ptr::copy_nonoverlapping(accr.as_ptr(), out.add((r0 + r) * ldo + q * NR), NR);
                }
            }
            r0 += mr;
        }
    }

    /// 16 columns at a time, each a sequential sum over k as in `panels`.
    pub(super) unsafe fn row(a: *const f32, k: usize, b: *const f32, w: usize, out: *mut f32) {
        for j0 in (0..w).step_by(NR) {
            let mut acc = [0f32; NR];
            for kk in 0..k {
                let av = *a.add(kk);
                let brow = std::slice::from_raw_parts(b.add(kk * w + j0), NR);
                for l in 0..NR {
                    acc[l] += av * brow[l];
                }
            }
            std::ptr::copy_nonoverlapping(acc.as_ptr(), out.add(j0), NR);
        }
    }

    pub(super) fn sigmoid(x: &mut [f32]) {
        for v in x {
            *v = 1.0 / (1.0 + fast_exp_f32(-*v));
        }
    }

    pub(super) fn tanh(x: &mut [f32]) {
        for v in x {
            *v = fast_tanh_f32(*v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output, mode
    unsafe fn tile<const M: usize, const NP: usize>(
        a: *const f32, lda: usize, k: usize, b: *const f32, ps: usize, out: *mut f32, ldo: usize, add: bool,
    ) {
        let mut acc = [[[_mm256_setzero_ps(); 2]; NP]; M];
        if add {
            for (r, accr) in acc.iter_mut().enumerate() {
                for (q, v) in accr.iter_mut().enumerate() {
                    let o = out.add(r * ldo + q * NR);
                    v[0] = _mm256_loadu_ps(o);
                    v[1] = _mm256_loadu_ps(o.add(8));
                }
            }
        }
        for kk in 0..k {
            let mut bv = [[_mm256_setzero_ps(); 2]; NP];
            for (q, v) in bv.iter_mut().enumerate() {
                let p = b.add(q * ps + kk * NR);
                v[0] = _mm256_loadu_ps(p);
                v[1] = _mm256_loadu_ps(p.add(8));
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*a.add(r * lda + kk));
                for q in 0..NP {
                    accr[q][0] = _mm256_fmadd_ps(av, bv[q][0], accr[q][0]);
                    accr[q][1] = _mm256_fmadd_ps(av, bv[q][1], accr[q][1]);
                }
            }
        }
        for (r, accr) in acc.iter().enumerate() {
            for (q, v) in accr.iter().enumerate() {
                let o = out.add(r * ldo + q * NR);
                _mm256_storeu_ps(o, v[0]);
                _mm256_storeu_ps(o.add(8), v[1]);
            }
        }
    }

    /// Rows of `M` with as many panels per pass as 12 accumulators allow (1 for 4–6 rows,
    /// 2 for 2–3, 4 for 1: a single row would otherwise wait on FMA latency).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows<const M: usize, const NPW: usize>(
        a: *const f32, lda: usize, k: usize, b: *const f32, ps: usize, np: usize, out: *mut f32, ldo: usize, add: bool,
    ) {
        let mut q = 0;
        while q + NPW <= np {
            tile::<M, NPW>(a, lda, k, b.add(q * ps), ps, out.add(q * NR), ldo, add);
            q += NPW;
        }
        while q < np {
            tile::<M, 1>(a, lda, k, b.add(q * ps), ps, out.add(q * NR), ldo, add);
            q += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output
    pub(super) unsafe fn panels(
        a: *const f32, lda: usize, m: usize, k: usize, b: *const f32, ps: usize, np: usize, out: *mut f32, ldo: usize,
        add: bool,
    ) {
        let mut r0 = 0;
        while r0 < m {
            let (ar, or) = (a.add(r0 * lda), out.add(r0 * ldo));
            let mr = tile_rows(m - r0);
            match mr {
                6 => rows::<6, 1>(ar, lda, k, b, ps, np, or, ldo, add),
                5 => rows::<5, 1>(ar, lda, k, b, ps, np, or, ldo, add),
                4 => rows::<4, 1>(ar, lda, k, b, ps, np, or, ldo, add),
                3 => rows::<3, 2>(ar, lda, k, b, ps, np, or, ldo, add),
                2 => rows::<2, 2>(ar, lda, k, b, ps, np, or, ldo, add),
                _ => rows::<1, 4>(ar, lda, k, b, ps, np, or, ldo, add),
            }
            r0 += mr;
        }
    }

    /// V vectors of 8 columns from `b` (row stride w): the whole of k in registers.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn row_cols<const V: usize>(a: *const f32, k: usize, b: *const f32, w: usize, out: *mut f32) {
        let mut acc = [_mm256_setzero_ps(); V];
        for kk in 0..k {
            let av = _mm256_broadcast_ss(&*a.add(kk));
            let brow = b.add(kk * w);
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(av, _mm256_loadu_ps(brow.add(v * 8)), *acc);
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(v * 8), *acc);
        }
    }

    /// 16 registers: up to 8 vectors of 8 columns per pass over k.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row(a: *const f32, k: usize, b: *const f32, w: usize, out: *mut f32) {
        let (nv, mut v0) = (w / 8, 0);
        while v0 < nv {
            let (bv, ov) = (b.add(v0 * 8), out.add(v0 * 8));
            v0 += match nv - v0 {
                left if left >= 8 => {
                    row_cols::<8>(a, k, bv, w, ov);
                    8
                }
                left if left >= 4 => {
                    row_cols::<4>(a, k, bv, w, ov);
                    4
                }
                _ => {
                    row_cols::<2>(a, k, bv, w, ov);
                    2
                }
            };
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp8(x: __m256) -> __m256 {
        // The bound first: min and max return their second operand when either is NaN, so a
        // NaN x passes through (and gives NaN, as libm's exp) instead of becoming a bound.
        let x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
        let (q, s) = expm1_parts8(x);
        _mm256_mul_ps(_mm256_add_ps(q, _mm256_set1_ps(1.0)), s)
    }

    /// As `avx512::expm1_parts16`, over 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn expm1_parts8(x: __m256) -> (__m256, __m256) {
        let magic = _mm256_set1_ps(MAGIC);
        let n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), magic), magic);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(EXP_P[0]);
        for &c in &EXP_P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let q = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
        (q, _mm256_castsi256_ps(bits))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) unsafe fn sigmoid8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) unsafe fn tanh8(x: __m256) -> __m256 {
        // As avx512::tanh16: -em / (2 + em) with em = expm1(-2|x|).
        let sign = _mm256_set1_ps(-0.0);
        let ax = _mm256_andnot_ps(sign, x);
        // The bound first, so that NaN passes (as in exp8).
        let u = _mm256_max_ps(_mm256_set1_ps(-2.0 * TANH_CLAMP), _mm256_mul_ps(ax, _mm256_set1_ps(-2.0)));
        let (q, s) = expm1_parts8(u);
        let em = _mm256_fmadd_ps(q, s, _mm256_sub_ps(s, _mm256_set1_ps(1.0)));
        let mag = _mm256_div_ps(_mm256_sub_ps(_mm256_setzero_ps(), em), _mm256_add_ps(_mm256_set1_ps(2.0), em));
        _mm256_or_ps(mag, _mm256_and_ps(sign, x))
    }

    /// `f` over the slice 8 at a time; the tail through a padded copy, so that every element
    /// gets the same arithmetic wherever it sits.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn map8(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr())));
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut buf = [0f32; 8];
            buf[..rest.len()].copy_from_slice(rest);
            _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr())));
            let n = rest.len();
            rest.copy_from_slice(&buf[..n]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sigmoid_impl(x: &mut [f32]) {
        map8(x, |v| sigmoid8(v))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn tanh_impl(x: &mut [f32]) {
        map8(x, |v| tanh8(v))
    }

    pub(super) fn sigmoid(x: &mut [f32]) {
        // SAFETY: this table entry exists only on CPUs with AVX2 and FMA (`Kernels::for_isa`).
        unsafe { sigmoid_impl(x) }
    }

    pub(super) fn tanh(x: &mut [f32]) {
        // SAFETY: as `sigmoid`.
        unsafe { tanh_impl(x) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output, mode
    unsafe fn tile<const M: usize, const NP: usize>(
        a: *const f32, lda: usize, k: usize, b: *const f32, ps: usize, out: *mut f32, ldo: usize, add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NP]; M];
        if add {
            for (r, accr) in acc.iter_mut().enumerate() {
                for (q, v) in accr.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(out.add(r * ldo + q * NR));
                }
            }
        }
        for kk in 0..k {
            let mut bv = [_mm512_setzero_ps(); NP];
            for (q, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(b.add(q * ps + kk * NR));
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + kk));
                for q in 0..NP {
                    accr[q] = _mm512_fmadd_ps(av, bv[q], accr[q]);
                }
            }
        }
        for (r, accr) in acc.iter().enumerate() {
            for (q, v) in accr.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * ldo + q * NR), *v);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows<const M: usize, const NPW: usize>(
        a: *const f32, lda: usize, k: usize, b: *const f32, ps: usize, np: usize, out: *mut f32, ldo: usize, add: bool,
    ) {
        let mut q = 0;
        while q + NPW <= np {
            tile::<M, NPW>(a, lda, k, b.add(q * ps), ps, out.add(q * NR), ldo, add);
            q += NPW;
        }
        while q < np {
            tile::<M, 1>(a, lda, k, b.add(q * ps), ps, out.add(q * NR), ldo, add);
            q += 1;
        }
    }

    /// 32 registers: up to 6 rows × 4 panels of 16 (24 accumulators).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output
    pub(super) unsafe fn panels(
        a: *const f32, lda: usize, m: usize, k: usize, b: *const f32, ps: usize, np: usize, out: *mut f32, ldo: usize,
        add: bool,
    ) {
        let mut r0 = 0;
        while r0 < m {
            let (ar, or) = (a.add(r0 * lda), out.add(r0 * ldo));
            let mr = tile_rows(m - r0);
            match mr {
                6 => rows::<6, 4>(ar, lda, k, b, ps, np, or, ldo, add),
                5 => rows::<5, 4>(ar, lda, k, b, ps, np, or, ldo, add),
                4 => rows::<4, 4>(ar, lda, k, b, ps, np, or, ldo, add),
                3 => rows::<3, 4>(ar, lda, k, b, ps, np, or, ldo, add),
                2 => rows::<2, 4>(ar, lda, k, b, ps, np, or, ldo, add),
                _ => rows::<1, 4>(ar, lda, k, b, ps, np, or, ldo, add),
            }
            r0 += mr;
        }
    }

    /// V vectors of 16 columns from `b` (row stride w): the whole of k in registers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row_cols<const V: usize>(a: *const f32, k: usize, b: *const f32, w: usize, out: *mut f32) {
        let mut acc = [_mm512_setzero_ps(); V];
        for kk in 0..k {
            let av = _mm512_set1_ps(*a.add(kk));
            let brow = b.add(kk * w);
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(av, _mm512_loadu_ps(brow.add(v * NR)), *acc);
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(v * NR), *acc);
        }
    }

    /// 32 registers: up to 16 vectors of 16 columns (1 KiB of each weight row) per pass over k.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row(a: *const f32, k: usize, b: *const f32, w: usize, out: *mut f32) {
        let (nv, mut v0) = (w / NR, 0);
        while v0 < nv {
            let (bv, ov) = (b.add(v0 * NR), out.add(v0 * NR));
            v0 += match nv - v0 {
                left if left >= 16 => {
                    row_cols::<16>(a, k, bv, w, ov);
                    16
                }
                left if left >= 8 => {
                    row_cols::<8>(a, k, bv, w, ov);
                    8
                }
                left if left >= 4 => {
                    row_cols::<4>(a, k, bv, w, ov);
                    4
                }
                _ => {
                    row_cols::<1>(a, k, bv, w, ov);
                    1
                }
            };
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn exp16(x: __m512) -> __m512 {
        // The bound first: min and max return their second operand when either is NaN, so a
        // NaN x passes through (and gives NaN, as libm's exp) instead of becoming a bound.
        let x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), _mm512_max_ps(_mm512_set1_ps(EXP_LO), x));
        let (q, n) = expm1_parts16(x);
        // (1 + q)·2^n in one instruction (the same value as multiplying by 2^n built from bits).
        _mm512_scalef_ps(_mm512_add_ps(q, _mm512_set1_ps(1.0)), n)
    }

    /// exp(x) − 1 as (q, n), exp(x) = 2^n·(1 + q), n an integer in a float, for x in
    /// [EXP_LO, EXP_HI] (`math.rs`'s `expm1_parts` over 16 lanes; that one returns 2^n, which
    /// `_mm512_scalef_ps` makes here without the integer round trip).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn expm1_parts16(x: __m512) -> (__m512, __m512) {
        let magic = _mm512_set1_ps(MAGIC);
        let n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), magic), magic);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(EXP_P[0]);
        for &c in &EXP_P[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        (_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), n)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn sigmoid16(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_div_ps(one, _mm512_add_ps(one, e))
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn tanh16(x: __m512) -> __m512 {
        // tanh|x| = -em / (2 + em), em = expm1(-2|x|) = 2^n·q + (2^n - 1): no cancellation near
        // 0, so one path serves every x.
        let ax = _mm512_abs_ps(x);
        // The bound first, so that NaN passes (as in exp16).
        let u = _mm512_max_ps(_mm512_set1_ps(-2.0 * TANH_CLAMP), _mm512_mul_ps(ax, _mm512_set1_ps(-2.0)));
        let (q, n) = expm1_parts16(u);
        let s = _mm512_scalef_ps(_mm512_set1_ps(1.0), n);
        let em = _mm512_fmadd_ps(q, s, _mm512_sub_ps(s, _mm512_set1_ps(1.0)));
        // −em / (2 + em) as em / (−2 − em): negating both operands changes no bit of a quotient.
        let mag = _mm512_div_ps(em, _mm512_sub_ps(_mm512_set1_ps(-2.0), em));
        // copysign(mag, x), mag ≥ 0: the sign bit from x, the rest from mag (bitwise select).
        let sign = _mm512_set1_epi32(i32::MIN);
        _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xCA>(sign, _mm512_castps_si512(x), _mm512_castps_si512(mag)))
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn map16(x: &mut [f32], f: impl Fn(__m512) -> __m512) {
        let mut chunks = x.chunks_exact_mut(16);
        for c in &mut chunks {
            _mm512_storeu_ps(c.as_mut_ptr(), f(_mm512_loadu_ps(c.as_ptr())));
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut buf = [0f32; 16];
            buf[..rest.len()].copy_from_slice(rest);
            _mm512_storeu_ps(buf.as_mut_ptr(), f(_mm512_loadu_ps(buf.as_ptr())));
            let n = rest.len();
            rest.copy_from_slice(&buf[..n]);
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn sigmoid_impl(x: &mut [f32]) {
        map16(x, |v| sigmoid16(v))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tanh_impl(x: &mut [f32]) {
        map16(x, |v| tanh16(v))
    }

    pub(super) fn sigmoid(x: &mut [f32]) {
        // SAFETY: this table entry exists only on CPUs with AVX-512F (`Kernels::for_isa`).
        unsafe { sigmoid_impl(x) }
    }

    pub(super) fn tanh(x: &mut [f32]) {
        // SAFETY: as `sigmoid`.
        unsafe { tanh_impl(x) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Vec<Kernels> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().filter_map(Kernels::for_isa).collect()
    }

    /// Every table with each k block this build may choose.
    fn tables_each_k_block() -> Vec<Kernels> {
        tables().into_iter().flat_map(|k| [KC, KC_WIDE_L1].map(|kc| Kernels { kc, ..k })).collect()
    }

    #[test]
    fn the_l1_size_is_plausible_and_picks_a_k_block() {
        let l1 = l1d_bytes();
        if let Some(b) = l1 {
            assert!((8 * 1024..=1024 * 1024).contains(&b), "L1 data cache of {b} bytes");
        }
        let kc = k_block();
        assert!(kc == KC || kc == KC_WIDE_L1);
        assert_eq!(kc == KC_WIDE_L1, l1.is_some_and(|b| b >= 48 * 1024), "L1 {l1:?}");
    }

    #[test]
    fn activations_match_f64_on_every_available_isa() {
        let xs: Vec<f32> =
            (0..200_001).map(|i| -30.0 + i as f32 * 0.0003).chain([0.0, -0.0, 1e-20, -1e-20, 100.0, -100.0]).collect();
        for k in tables() {
            let (mut s, mut t) = (xs.clone(), xs.clone());
            (k.sigmoid)(&mut s);
            (k.tanh)(&mut t);
            let (mut ws, mut wt) = (0f64, 0f64);
            for ((&x, &sv), &tv) in xs.iter().zip(&s).zip(&t) {
                let x = x as f64;
                let sr = 1.0 / (1.0 + (-x).exp());
                ws = ws.max((sv as f64 - sr).abs() / sr.max(1e-30));
                let tr = x.tanh();
                if tr == 0.0 {
                    assert_eq!(tv, 0.0, "{:?} tanh({x})", k.isa);
                } else {
                    wt = wt.max((tv as f64 - tr).abs() / tr.abs());
                }
            }
            // sigmoid underflows to 0 below about -87 (relative error 1 there, as libm's expf):
            // compare on the range where f32 can represent it.
            assert!(wt < 4e-7, "{:?} tanh rel err {wt}", k.isa);
            let ws_mid: f64 = xs
                .iter()
                .zip(&s)
                .filter(|(x, _)| x.abs() < 80.0)
                .map(|(&x, &v)| {
                    let r = 1.0 / (1.0 + (-(x as f64)).exp());
                    (v as f64 - r).abs() / r
                })
                .fold(0.0, f64::max);
            assert!(ws_mid < 4e-7, "{:?} sigmoid rel err {ws_mid} (all: {ws})", k.isa);
            // NaN stays NaN (as libm and PyTorch): a NaN that became ±1 or 0 would hide a diverged
            // model. The infinities give the limits.
            let (mut sn, mut tn) = ([f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY], [0f32; 4]);
            tn.copy_from_slice(&sn);
            (k.sigmoid)(&mut sn);
            (k.tanh)(&mut tn);
            assert!(sn[0].is_nan() && sn[1].is_nan() && tn[0].is_nan() && tn[1].is_nan(), "{:?}: {sn:?} {tn:?}", k.isa);
            assert_eq!((sn[2], tn[2], tn[3]), (1.0, 1.0, -1.0), "{:?}", k.isa);
            assert!((0.0..1e-37).contains(&sn[3]), "{:?}: sigmoid(-inf) = {}", k.isa, sn[3]);
            // Odd lengths: the tail goes through the same code as the body.
            let mut odd: Vec<f32> = xs[1000..1013].to_vec();
            (k.tanh)(&mut odd);
            assert_eq!(odd, t[1000..1013].to_vec(), "{:?}", k.isa);
        }
    }

    /// Every source layout (rows contiguous, columns contiguous, neither) packs to the same
    /// panels as plain indexing, with partial panels and k not a multiple of 16.
    #[test]
    fn packing_matches_plain_indexing_for_every_layout() {
        // k over two blocks of KC: blocked row tiles (m > MR) and single unblocked ones alike.
        let (k, n) = (137, 45);
        let w: Vec<f32> = (0..k * n * 3).map(|i| i as f32).collect();
        for (rs, cs) in [(n, 1), (1, k), (3 * n, 3)] {
            for (j0, j1) in [(0, n), (3, 44), (16, 20)] {
                let mut got = vec![];
                pack_panels(k, j0, j1, &w, rs, cs, &mut got);
                let np = (j1 - j0).div_ceil(NR);
                assert_eq!(got.len(), np * k * NR);
                // Into a buffer with stale contents: every float is written, padding included.
                let mut stale = vec![f32::NAN; np * k * NR];
                pack_panels_into(k, j0, j1, &w, rs, cs, &mut stale);
                assert_eq!(stale, got, "pack_panels_into, rs {rs} cs {cs} [{j0}, {j1})");
                for q in 0..np {
                    for kk in 0..k {
                        for l in 0..NR {
                            let j = j0 + q * NR + l;
                            let want = if j < j1 { w[kk * rs + j * cs] } else { 0.0 };
                            assert_eq!(
                                got[(q * k + kk) * NR + l],
                                want,
                                "rs {rs} cs {cs} [{j0}, {j1}) q {q} k {kk} l {l}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn panel_products_match_a_naive_sum_and_each_other() {
        // k over two blocks of KC_WIDE_L1 (three of KC): blocked row tiles (m > MR) and single
        // unblocked ones alike.
        let (k, n) = (137, 45);
        for m in 1..=14 {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5).collect();
            // B = w as k × n, columns [3, 3 + 41): three panels, the last partial.
            let (j0, j1) = (3, 44);
            let mut packed = vec![];
            pack_panels(k, j0, j1, &w, n, 1, &mut packed);
            let np = (j1 - j0).div_ceil(NR);
            let ldo = np * NR + 5;
            let mut results = vec![];
            for kern in tables_each_k_block() {
                let mut out = vec![f32::NAN; m * ldo];
                kern.panels(&a, k, m, k, &packed, np, &mut out, ldo);
                for r in 0..m {
                    for j in j0..j1 {
                        let want: f64 = (0..k).map(|kk| a[r * k + kk] as f64 * w[kk * n + j] as f64).sum();
                        let got = out[r * ldo + j - j0] as f64;
                        assert!((got - want).abs() < 1e-5, "{:?} m={m} r={r} j={j}: {got} vs {want}", kern.isa);
                    }
                    for j in j1..j0 + np * NR {
                        assert_eq!(out[r * ldo + j - j0], 0.0, "padding columns are zero");
                    }
                }
                results.push(out);
            }
            // The k block changes no bit: the sums run over k in the same order.
            // (Bits, since the columns past the panels keep their NaN.)
            let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for pair in results.chunks(2) {
                assert_eq!(bits(&pair[0]), bits(&pair[1]), "m={m}: k blocks of {KC} and {KC_WIDE_L1} differ");
            }
            // Row tiles of any height give the same bits as computing rows one at a time.
            for kern in tables_each_k_block() {
                let mut whole = vec![0f32; m * ldo];
                kern.panels(&a, k, m, k, &packed, np, &mut whole, ldo);
                for r in 0..m {
                    let mut one = vec![0f32; ldo];
                    kern.panels(&a[r * k..], k, 1, k, &packed, np, &mut one, ldo);
                    assert_eq!(&one[..np * NR], &whole[r * ldo..r * ldo + np * NR], "{:?} m={m} r={r}", kern.isa);
                }
            }
        }
    }

    /// Rows packing: every layout of the source, partial last panel, stale buffer, equals plain
    /// indexing (zero past j1).
    #[test]
    fn row_packing_matches_plain_indexing_for_every_layout() {
        let (k, n): (usize, usize) = (37, 600);
        let w: Vec<f32> = (0..k * n * 3).map(|i| i as f32).collect();
        for (rs, cs) in [(n, 1), (1, k), (3 * n, 3)] {
            // One group, partial panels; three groups, the last partial.
            for (j0, j1) in [(0usize, 45usize), (3, 44), (16, 20), (5, 590)] {
                let width = (j1 - j0).div_ceil(NR) * NR;
                let mut got = vec![f32::NAN; k * width];
                pack_rows_into(k, j0, j1, &w, rs, cs, &mut got);
                for kk in 0..k {
                    for x in 0..width {
                        let j = j0 + x;
                        let want = if j < j1 { w[kk * rs + j * cs] } else { 0.0 };
                        // Group x / G starts at k·G·(x / G) and is G columns wide (the last:
                        // what is left).
                        let (c0, gw) = (x / ROW_GROUP * ROW_GROUP, ROW_GROUP.min(width - x / ROW_GROUP * ROW_GROUP));
                        let at = k * c0 + kk * gw + (x - c0);
                        assert_eq!(got[at], want, "rs {rs} cs {cs} [{j0}, {j1}) k {kk} x {x}");
                    }
                }
            }
        }
    }

    /// One row times rows-packed weights gives the bits of the panel product of the same
    /// weights (the engine takes either by batch size), on every table, for widths that take
    /// every register-group size of the kernels (1 to 40 panels).
    #[test]
    fn row_products_equal_panel_products_bit_for_bit() {
        for (k, n) in [(1usize, 16usize), (37, 45), (256, 640), (200, 100)] {
            let a: Vec<f32> = (0..k).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5).collect();
            let np = n.div_ceil(NR);
            let mut panels = vec![];
            pack_panels(k, 0, n, &w, n, 1, &mut panels);
            let mut rows = vec![f32::NAN; k * np * NR];
            pack_rows_into(k, 0, n, &w, n, 1, &mut rows);
            for kern in tables() {
                let mut want = vec![f32::NAN; np * NR];
                kern.panels(&a, k, 1, k, &panels, np, &mut want, np * NR);
                let mut got = vec![f32::NAN; np * NR];
                kern.row(&a, k, &rows, np * NR, &mut got);
                assert_eq!(got, want, "{:?} k={k} n={n}", kern.isa);
                for (j, &g) in got.iter().enumerate().take(n) {
                    let exact: f64 = (0..k).map(|kk| a[kk] as f64 * w[kk * n + j] as f64).sum();
                    assert!((g as f64 - exact).abs() < 1e-4, "{:?} k={k} j={j}: {g} vs {exact}", kern.isa);
                }
            }
        }
    }
}
