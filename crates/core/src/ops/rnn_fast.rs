//! The f32 time loop of the recurrent op on the CPU: the steps of `rnn.rs`'s loop (same buffers,
//! same order, same cells) run by a persistent team (`cpu::team`) instead of a fork-join per step.
//!
//! Each slot of the team owns a range of hidden units [j0, j1) for the whole call. It packs the
//! rows of W_hh that produce (forward) or consume (backward) its units once into 16-column
//! panels (`cpu::simd`), then every step computes, for its units only, the slice of the step
//! GEMM, and right after each tile of up to 6 rows the cell's gate math on those rows
//! (vectorised activations) while the tile is in L1, and writes its units of the next state.
//! The only cross-unit dependency of a step is the full previous state, so one barrier per step
//! (double-buffered h) orders everything; cells with a mid-step GEMM (reset-before GRU) take two.
//!
//! Backward, per step: each slot computes the gate gradients of its units (which need only its
//! units of dh, dc), then after a barrier its units of dh_prev += dG_s · W_hh[:, units] (which
//! needs every unit of dG_s). The weight gradients stay single GEMMs over all steps (`rnn.rs`).
//!
//! The cells are the same `Cell` code as the generic loop, called on a contiguous copy of the
//! slot's units (padded to whole panels): gathers and scatters of a few blocks of n floats per
//! row, small next to the row's share of the GEMM. Each output element is computed by exactly
//! one slot with a fixed summation order, so results do not depend on the number of threads.

use crate::cpu::simd::{self, pack_panels, MR, NR};
use crate::cpu::team::{self, SharedMut};
use crate::ops::rnn::{Cell, Plan};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Multiply-adds of one step's recurrent GEMM below which the team is not worth a barrier per
/// step (a few microseconds of work): the loop then runs on the calling thread.
const TEAM_MIN_STEP_MACS: usize = 1 << 16;

static MIN_MACS: AtomicUsize = AtomicUsize::new(TEAM_MIN_STEP_MACS);
static MAX_SLOTS: AtomicUsize = AtomicUsize::new(0);

/// Overrides the team's size rule (tests: odd sizes through the team; any slot count, to check
/// that results do not depend on it). `max_slots` 0 means one slot per pool thread.
pub(crate) fn set_team_limits(min_step_macs: usize, max_slots: usize) {
    MIN_MACS.store(min_step_macs, Ordering::Relaxed);
    MAX_SLOTS.store(max_slots, Ordering::Relaxed);
}

/// How many slots to split `h` units into for a step of `macs` multiply-adds.
fn team_slots(h: usize, macs: usize) -> usize {
    if macs < MIN_MACS.load(Ordering::Relaxed) {
        return 1;
    }
    let slots = match MAX_SLOTS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    };
    slots.clamp(1, h.div_ceil(NR))
}

/// Slot k's units: whole panels of 16, shared out as evenly as possible.
fn units_of(k: usize, slots: usize, h: usize) -> (usize, usize) {
    let np = h.div_ceil(NR);
    let (p0, p1) = (k * np / slots, (k + 1) * np / slots);
    ((p0 * NR).min(h), (p1 * NR).min(h))
}

/// Buffers of the forward loop (time order for xp and y, processing order for ws and hprev).
pub(crate) struct FwdIo<'a> {
    /// [T, B, G·H], the hoisted input projection with folded biases.
    pub xp: &'a [f32],
    pub w_hh: &'a [f32],
    /// b_hh [G·H] for cells that do not fold it.
    pub hh_bias: Option<&'a [f32]>,
    pub y: &'a mut [f32],
    /// [T, B, W·H] when saving, else one step [B, W·H].
    pub ws: &'a mut [f32],
    /// [T, B, H] when saving, else empty.
    pub hprev: &'a mut [f32],
    /// h0 on entry, h_T on exit; c likewise (cells with c).
    pub hs: &'a mut [f32],
    pub cs: &'a mut [f32],
}

/// A slot's units, its packed weights and its scratch (made on the thread that runs it).
struct Units {
    j0: usize,
    n: usize,
    /// Panels per gate block, and units padded to whole panels.
    np: usize,
    npad: usize,
}

impl Units {
    fn new(k: usize, slots: usize, h: usize) -> Units {
        let (j0, j1) = units_of(k, slots, h);
        let np = (j1 - j0).div_ceil(NR);
        Units { j0, n: j1 - j0, np, npad: np * NR }
    }
}

struct FwdSlot {
    u: Units,
    /// W_hh rows of the first HH_BLOCKS gate blocks, for these units, as panels (K = H).
    w: Vec<f32>,
    /// W_hh rows of the mid-step blocks (cells with a mid-step GEMM).
    w_mid: Vec<f32>,
    /// One row tile of the step GEMM: [MR][HH_BLOCKS · npad].
    tile: Vec<f32>,
    xp: Vec<f32>,
    hs: Vec<f32>,
    cs: Vec<f32>,
    /// The cell's workspace for every row: [B][W · npad] (kept between the halves of a step).
    ws: Vec<f32>,
}

pub(crate) fn forward_steps<C: Cell>(cell: &C, p: &Plan, io: FwdIo) {
    let (t, b, h, g) = (p.t, p.b, p.h, C::G);
    let (gh, hh_w, ws_w) = (g * h, C::HH_BLOCKS * h, C::WS_BLOCKS * h);
    let kern = simd::kernels();
    let slots = team_slots(h, b * hh_w * h);
    let mut h_other = vec![0f32; b * h];
    // r ⊙ h of every unit for the mid-step GEMM (cells with one), apart from ws so that the
    // GEMM's reads never overlap another slot's writes.
    let mut mid_in = vec![0f32; if C::HAS_MID { b * h } else { 0 }];
    let mid_sh = SharedMut::new(&mut mid_in);
    let xp = io.xp;
    let w_hh = io.w_hh;
    let hh_bias = io.hh_bias;
    let (ha, hb) = (SharedMut::new(io.hs), SharedMut::new(&mut h_other));
    let cs = SharedMut::new(io.cs);
    let y = SharedMut::new(io.y);
    let ws = SharedMut::new(io.ws);
    let hprev = SharedMut::new(io.hprev);
    let save = p.save;
    let halves = if C::HAS_MID { 2 } else { 1 };

    let init = |k: usize| {
        let u = Units::new(k, slots, h);
        let mut w = Vec::new();
        let mut one = Vec::new();
        for blk in 0..C::HH_BLOCKS {
            // B[kk][j] = W_hh[(blk·H + j)·H + kk]: W_hhᵀ for this gate block.
            pack_panels(h, u.j0, u.j0 + u.n, &w_hh[blk * h * h..], 1, h, &mut one);
            w.extend_from_slice(&one);
        }
        let mut w_mid = Vec::new();
        if C::HAS_MID {
            pack_panels(h, u.j0, u.j0 + u.n, &w_hh[hh_w * h..], 1, h, &mut w_mid);
        }
        let npad = u.npad;
        FwdSlot {
            tile: vec![0.0; MR * C::HH_BLOCKS.max(1) * npad],
            xp: vec![0.0; g * npad],
            hs: vec![0.0; npad],
            cs: vec![0.0; npad],
            ws: vec![0.0; b * C::WS_BLOCKS * npad],
            u,
            w,
            w_mid,
        }
    };

    let phase = |sl: &mut FwdSlot, _k: usize, ph: usize| {
        let (s, half) = (ph / halves, ph % halves);
        let (cur, next) = if s % 2 == 0 { (ha, hb) } else { (hb, ha) };
        let (j0, n, npad) = (sl.u.j0, sl.u.n, sl.u.npad);
        let ws_base = if save { s * b } else { 0 };
        // SAFETY (every access below): this slot reads all of `cur` (written before the last
        // barrier) and writes only its units [j0, j0 + n) of next, cs, y, ws and hprev.
        let h_cur = unsafe { cur.get(0, b * h) };
        let wsl = C::WS_BLOCKS * npad;
        if half == 0 {
            let hw = C::HH_BLOCKS * npad;
            for r0 in (0..b).step_by(MR) {
                let m = MR.min(b - r0);
                kern.panels(&h_cur[r0 * h..], h, m, h, &sl.w, C::HH_BLOCKS * sl.u.np, &mut sl.tile, hw);
                for rl in 0..m {
                    let r = r0 + rl;
                    let own = r * h + j0;
                    if save {
                        unsafe { hprev.get_mut((s * b + r) * h + j0, n) }.copy_from_slice(&h_cur[own..own + n]);
                    }
                    let Some(tt) = p.time_of(s, r) else {
                        if !C::HAS_MID {
                            unsafe { next.get_mut(own, n) }.copy_from_slice(&h_cur[own..own + n]);
                        }
                        continue;
                    };
                    let hh = &mut sl.tile[rl * hw..(rl + 1) * hw];
                    if let Some(bias) = hh_bias {
                        for blk in 0..C::HH_BLOCKS {
                            for (v, &bv) in hh[blk * npad..][..n].iter_mut().zip(&bias[blk * h + j0..][..n]) {
                                *v += bv;
                            }
                        }
                    }
                    let xrow = &xp[(tt * b + r) * gh..][..gh];
                    for blk in 0..g {
                        sl.xp[blk * npad..][..n].copy_from_slice(&xrow[blk * h + j0..][..n]);
                    }
                    sl.hs[..n].copy_from_slice(&h_cur[own..own + n]);
                    if C::HAS_C {
                        sl.cs[..n].copy_from_slice(unsafe { cs.get(own, n) });
                    }
                    let wr = &mut sl.ws[r * wsl..(r + 1) * wsl];
                    cell.fwd(npad, &sl.xp, hh, &mut sl.hs, &mut sl.cs, wr);
                    if C::HAS_C {
                        unsafe { cs.get_mut(own, n) }.copy_from_slice(&sl.cs[..n]);
                    }
                    if C::HAS_MID {
                        let mb = C::MID_WS_BLOCK;
                        unsafe { mid_sh.get_mut(own, n) }.copy_from_slice(&wr[mb * npad..][..n]);
                    } else {
                        unsafe { next.get_mut(own, n) }.copy_from_slice(&sl.hs[..n]);
                        unsafe { y.get_mut((tt * b + r) * h + j0, n) }.copy_from_slice(&sl.hs[..n]);
                        if save {
                            for blk in 0..C::WS_BLOCKS {
                                unsafe { ws.get_mut((ws_base + r) * ws_w + blk * h + j0, n) }
                                    .copy_from_slice(&wr[blk * npad..][..n]);
                            }
                        }
                    }
                }
            }
        } else {
            // Second half (mid-step GEMM): mid = (r ⊙ h) · W_hh[mid]ᵀ for these units.
            let mid_in = unsafe { mid_sh.get(0, b * h) };
            for r0 in (0..b).step_by(MR) {
                let m = MR.min(b - r0);
                kern.panels(&mid_in[r0 * h..], h, m, h, &sl.w_mid, sl.u.np, &mut sl.tile, npad);
                for rl in 0..m {
                    let r = r0 + rl;
                    let own = r * h + j0;
                    let Some(tt) = p.time_of(s, r) else {
                        unsafe { next.get_mut(own, n) }.copy_from_slice(&h_cur[own..own + n]);
                        continue;
                    };
                    let xrow = &xp[(tt * b + r) * gh..][..gh];
                    for blk in 0..g {
                        sl.xp[blk * npad..][..n].copy_from_slice(&xrow[blk * h + j0..][..n]);
                    }
                    sl.hs[..n].copy_from_slice(&h_cur[own..own + n]);
                    let wr = &mut sl.ws[r * wsl..(r + 1) * wsl];
                    cell.fwd_mid(npad, &sl.xp, &sl.tile[rl * npad..(rl + 1) * npad], &mut sl.hs, wr);
                    unsafe { next.get_mut(own, n) }.copy_from_slice(&sl.hs[..n]);
                    unsafe { y.get_mut((tt * b + r) * h + j0, n) }.copy_from_slice(&sl.hs[..n]);
                    if save {
                        for blk in 0..C::WS_BLOCKS {
                            unsafe { ws.get_mut((ws_base + r) * ws_w + blk * h + j0, n) }
                                .copy_from_slice(&wr[blk * npad..][..n]);
                        }
                    }
                }
            }
        }
    };
    team::run(slots, t * halves, init, phase);
    if t % 2 == 1 {
        io.hs.copy_from_slice(&h_other);
    }
}

/// Buffers of the backward loop (see `backward_cpu` in `rnn.rs`).
pub(crate) struct BwdIo<'a> {
    pub w_hh: &'a [f32],
    pub ws: &'a [f32],
    pub hprev: &'a [f32],
    pub dy: Option<&'a [f32]>,
    /// dh_T, dc_T on entry; dh_0, dc_0 on exit.
    pub dh: &'a mut [f32],
    pub dc: &'a mut [f32],
    /// [T, B, G·H], zero on entry.
    pub dg: &'a mut [f32],
    pub dxp: &'a mut [f32],
}

struct BwdSlot {
    u: Units,
    /// W_hh[0..HH_BLOCKS·H, units] as panels (K = HH_BLOCKS·H), for dh += dG·W_hh.
    w: Vec<f32>,
    /// W_hh[mid blocks, units] (K = H), for dmid = dG[mid]·W_hh[mid].
    w_mid: Vec<f32>,
    tile: Vec<f32>,
    hp: Vec<f32>,
    ws: Vec<f32>,
    dh: Vec<f32>,
    dc: Vec<f32>,
    dg: Vec<f32>,
    dxp: Vec<f32>,
}

pub(crate) fn backward_steps<C: Cell>(cell: &C, p: &Plan, io: BwdIo) {
    let (t, b, h, g) = (p.t, p.b, p.h, C::G);
    let (gh, hh_w, ws_w) = (g * h, C::HH_BLOCKS * h, C::WS_BLOCKS * h);
    let kern = simd::kernels();
    let slots = team_slots(h, b * gh * h);
    let (w_hh, ws_all, hprev, dy) = (io.w_hh, io.ws, io.hprev, io.dy);
    let dh = SharedMut::new(io.dh);
    let dc = SharedMut::new(io.dc);
    let dg = SharedMut::new(io.dg);
    let dxp = SharedMut::new(io.dxp);
    // dG_s of the mid-step blocks, copied out for the mid-step GEMM (cells with one), so that
    // its reads never overlap another slot's writes to dG.
    let mut dmid_in = vec![0f32; if C::HAS_MID { b * h } else { 0 }];
    let dmid_sh = SharedMut::new(&mut dmid_in);

    let init = |k: usize| {
        let u = Units::new(k, slots, h);
        let mut w = Vec::new();
        // B[kk][j] = W_hh[kk·H + j], kk over the blocks that multiplied h.
        pack_panels(hh_w, u.j0, u.j0 + u.n, w_hh, h, 1, &mut w);
        let mut w_mid = Vec::new();
        if C::HAS_MID {
            pack_panels(h, u.j0, u.j0 + u.n, &w_hh[hh_w * h..], h, 1, &mut w_mid);
        }
        let npad = u.npad;
        BwdSlot {
            tile: vec![0.0; MR * npad],
            hp: vec![0.0; npad],
            ws: vec![0.0; C::WS_BLOCKS * npad],
            dh: vec![0.0; npad],
            dc: vec![0.0; npad],
            dg: vec![0.0; g * npad],
            dxp: vec![0.0; g * npad],
            u,
            w,
            w_mid,
        }
    };

    // SAFETY (every shared access): a slot reads and writes only its units of dh, dc, dG and
    // dXP, except the GEMM phases, which read all of dG_s after the barrier that completed it.
    let gather = |sl: &mut BwdSlot, s: usize, r: usize| {
        let (j0, n, npad) = (sl.u.j0, sl.u.n, sl.u.npad);
        sl.hp[..n].copy_from_slice(&hprev[(s * b + r) * h + j0..][..n]);
        let wrow = &ws_all[(s * b + r) * ws_w..][..ws_w];
        for blk in 0..C::WS_BLOCKS {
            sl.ws[blk * npad..][..n].copy_from_slice(&wrow[blk * h + j0..][..n]);
        }
        sl.dh[..n].copy_from_slice(unsafe { dh.get(r * h + j0, n) });
        if C::HAS_C {
            sl.dc[..n].copy_from_slice(unsafe { dc.get(r * h + j0, n) });
        }
    };
    let scatter = |sl: &BwdSlot, s: usize, r: usize| {
        let (j0, n, npad) = (sl.u.j0, sl.u.n, sl.u.npad);
        unsafe { dh.get_mut(r * h + j0, n) }.copy_from_slice(&sl.dh[..n]);
        if C::HAS_C {
            unsafe { dc.get_mut(r * h + j0, n) }.copy_from_slice(&sl.dc[..n]);
        }
        for blk in 0..g {
            let off = (s * b + r) * gh + blk * h + j0;
            unsafe { dg.get_mut(off, n) }.copy_from_slice(&sl.dg[blk * npad..][..n]);
            unsafe { dxp.get_mut(off, n) }.copy_from_slice(&sl.dxp[blk * npad..][..n]);
        }
    };
    // The cell's (first) backward half for step s on these units.
    let cell_step = |sl: &mut BwdSlot, s: usize| {
        let (j0, n) = (sl.u.j0, sl.u.n);
        for r in 0..b {
            let Some(tt) = p.time_of(s, r) else { continue };
            if let Some(dy) = dy {
                let d = unsafe { dh.get_mut(r * h + j0, n) };
                for (v, &a) in d.iter_mut().zip(&dy[(tt * b + r) * h + j0..][..n]) {
                    *v += a;
                }
            }
            gather(sl, s, r);
            sl.dg.fill(0.0);
            sl.dxp.fill(0.0);
            let npad = sl.u.npad;
            cell.bwd(npad, &sl.hp, &sl.ws, &mut sl.dh, &mut sl.dc, &mut sl.dg, &mut sl.dxp);
            scatter(sl, s, r);
            if C::HAS_MID {
                unsafe { dmid_sh.get_mut(r * h + j0, n) }.copy_from_slice(&sl.dg[C::HH_BLOCKS * npad..][..n]);
            }
        }
    };
    // Mid-step half (reset-before GRU): dmid = dG_s[mid] · W_hh[mid] for these units, then the
    // cell's second half.
    let mid_step = |sl: &mut BwdSlot, s: usize| {
        let (j0, n, npad) = (sl.u.j0, sl.u.n, sl.u.npad);
        let dmid_in = unsafe { dmid_sh.get(0, b * h) };
        for r0 in (0..b).step_by(MR) {
            let m = MR.min(b - r0);
            kern.panels(&dmid_in[r0 * h..], h, m, h, &sl.w_mid, sl.u.np, &mut sl.tile, npad);
            for rl in 0..m {
                let r = r0 + rl;
                if p.time_of(s, r).is_none() {
                    continue;
                }
                gather(sl, s, r);
                for blk in 0..g {
                    let off = (s * b + r) * gh + blk * h + j0;
                    sl.dg[blk * npad..][..n].copy_from_slice(unsafe { dg.get(off, n) });
                    sl.dxp[blk * npad..][..n].copy_from_slice(unsafe { dxp.get(off, n) });
                }
                let dm = &sl.tile[rl * npad..(rl + 1) * npad];
                cell.bwd_mid(npad, &sl.hp, &sl.ws, dm, &mut sl.dh, &mut sl.dg, &mut sl.dxp);
                scatter(sl, s, r);
            }
        }
    };
    // dh_prev[:, units] += dG_s[:, ..HH_BLOCKS·H] · W_hh[..HH_BLOCKS·H, units].
    let gemm_step = |sl: &mut BwdSlot, s: usize| {
        let (j0, n, npad) = (sl.u.j0, sl.u.n, sl.u.npad);
        let dg_s = unsafe { dg.get(s * b * gh, b * gh) };
        for r0 in (0..b).step_by(MR) {
            let m = MR.min(b - r0);
            kern.panels(&dg_s[r0 * gh..], gh, m, hh_w, &sl.w, sl.u.np, &mut sl.tile, npad);
            for rl in 0..m {
                let r = r0 + rl;
                if p.time_of(s, r).is_none() {
                    continue;
                }
                let d = unsafe { dh.get_mut(r * h + j0, n) };
                for (v, &a) in d.iter_mut().zip(&sl.tile[rl * npad..][..n]) {
                    *v += a;
                }
            }
        }
    };
    // Phases: the cell half of step T−1; then per step s (descending) [its mid half,] its GEMM
    // together with the cell half of step s − 1. Each phase ends at a barrier.
    let per = if C::HAS_MID { 2 } else { 1 };
    let phase = |sl: &mut BwdSlot, _k: usize, ph: usize| {
        if ph == 0 {
            cell_step(sl, t - 1);
            return;
        }
        let (s, part) = (t - 1 - (ph - 1) / per, (ph - 1) % per);
        if part + 1 < per {
            mid_step(sl, s);
        } else {
            gemm_step(sl, s);
            if s > 0 {
                cell_step(sl, s - 1);
            }
        }
    };
    team::run(slots, 1 + per * t, init, phase);
}
