//! The GRU cells (PyTorch gate order r, z, n): one step on the CPU (one row) and on a device
//! (`kernels/gru.cu`, every row of the step); the loop over time is in `rnn.rs`.
//!
//! `Gru` (PyTorch, cuDNN, Keras reset_after=True):
//!   r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
//!   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//!   h' = (1 − z) ⊙ n + z ⊙ h
//! `GruResetBefore` (Keras reset_after=False, the only GRU of tfjs):
//!   n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), the rest as above.
//!
//! Saved per row and step (4 blocks of H): r, z, n and W_hn h + b_hn (reset-after) or r ⊙ h
//! (reset-before, which also feeds the mid-step GEMM).

use crate::backend::GpuBackend;
use crate::cpu::Float;
use crate::error::Result;
use crate::launch::{buf, flag, kernels as k};
use crate::ops::rnn::{Blocks, BlocksMut, Cell, Proj};
use crate::ops::rnn_device::{BwdStep, DeviceCell, FwdStep};

pub(crate) struct Gru;

impl Cell for Gru {
    const G: usize = 3;
    const FOLD_HH_BIAS: bool = false;
    const WS_BLOCKS: usize = 4;

    const DXP_IS_DG: bool = false;

    /// In passes over the row, so that the activations run vectorised over whole gate blocks.
    fn fwd<T: Float>(&self, _n: usize, xp: Proj<T>, hh: Blocks<T>, hs: &mut [T], _cs: &mut [T], ws: &mut BlocksMut<T>) {
        let [wr, wz, wn, whn] = ws.blks([0, 1, 2, 3]);
        for (k, w) in [&mut *wr, &mut *wz].into_iter().enumerate() {
            xp.add(k, hh.blk(k), w);
        }
        T::sigmoid_slice(wr);
        T::sigmoid_slice(wz);
        xp.load(2, wn);
        for (((wn, whn), &hn), &r) in wn.iter_mut().zip(whn.iter_mut()).zip(hh.blk(2)).zip(&*wr) {
            *whn = hn;
            *wn += r * hn;
        }
        T::tanh_slice(wn);
        for ((h, &z), &n) in hs.iter_mut().zip(&*wz).zip(&*wn) {
            *h = (T::ONE - z) * n + z * *h;
        }
    }

    fn bwd<T: Float>(
        &self, _n: usize, hprev: &[T], ws: Blocks<T>, dh: &mut [T], _dc: &mut [T], dg: &mut BlocksMut<T>,
        dxp: &mut BlocksMut<T>,
    ) {
        let (wr, wz, wn, whn) = (ws.blk(0), ws.blk(1), ws.blk(2), ws.blk(3));
        let [gr, gz, gn] = dg.blks([0, 1, 2]);
        let [xr, xz, xn] = dxp.blks([0, 1, 2]);
        for j in 0..dh.len() {
            let (r, z, n, hn) = (wr[j], wz[j], wn[j], whn[j]);
            let d_h = dh[j];
            let dn = d_h * (T::ONE - z) * (T::ONE - n * n);
            let dz = d_h * (hprev[j] - n) * z * (T::ONE - z);
            let dr = dn * hn * r * (T::ONE - r);
            xr[j] = dr;
            xz[j] = dz;
            xn[j] = dn;
            gr[j] = dr;
            gz[j] = dz;
            gn[j] = dn * r;
            dh[j] = d_h * z;
        }
    }
}

/// b_hh is not folded (it sits inside r ⊙ (…)): the kernel adds it, when given, to hh.
impl DeviceCell for Gru {
    fn launch_fwd(&self, be: &dyn GpuBackend, a: &FwdStep) -> Result<()> {
        a.launch(
            be,
            &k::GRU_FWD_STEP,
            [
                buf(a.hs),
                a.ws_s.arg(),
                a.hprev_s.arg(),
                buf(a.y),
                buf(a.xp),
                buf(a.hh),
                buf(a.b_hh.unwrap_or(a.hh)),
                flag(a.b_hh.is_some()),
            ],
            [],
        )
    }

    fn launch_bwd(&self, be: &dyn GpuBackend, a: &BwdStep) -> Result<()> {
        a.launch(
            be,
            &k::GRU_BWD_STEP,
            [buf(a.dh), a.dg_s.arg(), a.dxp_s.arg(), a.ws_s.arg(), a.hprev_s.arg(), buf(a.dy), flag(a.has_dy)],
            [],
        )
    }
}

pub(crate) struct GruResetBefore;

impl Cell for GruResetBefore {
    const G: usize = 3;
    const HH_BLOCKS: usize = 2;
    const MID_WS_BLOCK: usize = 3;
    const WS_BLOCKS: usize = 4;

    /// First half: r and z, and r ⊙ h for the mid-step GEMM.
    fn fwd<T: Float>(&self, _n: usize, xp: Proj<T>, hh: Blocks<T>, hs: &mut [T], _cs: &mut [T], ws: &mut BlocksMut<T>) {
        let [wr, wz, wrh] = ws.blks([0, 1, 3]);
        for (k, w) in [&mut *wr, &mut *wz].into_iter().enumerate() {
            xp.add(k, hh.blk(k), w);
        }
        T::sigmoid_slice(wr);
        T::sigmoid_slice(wz);
        for ((v, &r), &h) in wrh.iter_mut().zip(&*wr).zip(&*hs) {
            *v = r * h;
        }
    }

    fn fwd_mid<T: Float>(&self, _n: usize, xp: Proj<T>, mid: &[T], hs: &mut [T], ws: &mut BlocksMut<T>) {
        let [wz, wn] = ws.blks([1, 2]);
        xp.add(2, mid, wn);
        T::tanh_slice(wn);
        for ((h, &z), &n) in hs.iter_mut().zip(&*wz).zip(&*wn) {
            *h = (T::ONE - z) * n + z * *h;
        }
    }

    /// First half: z and n gates; dr needs d(r ⊙ h), which the mid-step GEMM provides.
    fn bwd<T: Float>(
        &self, _n: usize, hprev: &[T], ws: Blocks<T>, dh: &mut [T], _dc: &mut [T], dg: &mut BlocksMut<T>,
        _dxp: &mut BlocksMut<T>,
    ) {
        let (wz, wn) = (ws.blk(1), ws.blk(2));
        let [gz, gn] = dg.blks([1, 2]);
        for j in 0..dh.len() {
            let (z, n) = (wz[j], wn[j]);
            let d_h = dh[j];
            let dn = d_h * (T::ONE - z) * (T::ONE - n * n);
            let dz = d_h * (hprev[j] - n) * z * (T::ONE - z);
            gz[j] = dz;
            gn[j] = dn;
            dh[j] = d_h * z;
        }
    }

    fn bwd_mid<T: Float>(
        &self, _n: usize, hprev: &[T], ws: Blocks<T>, drh: &[T], dh: &mut [T], dg: &mut BlocksMut<T>,
        _dxp: &mut BlocksMut<T>,
    ) {
        let (wr, gr) = (ws.blk(0), dg.blk(0));
        for j in 0..dh.len() {
            let r = wr[j];
            gr[j] = drh[j] * hprev[j] * r * (T::ONE - r);
            dh[j] += drh[j] * r;
        }
    }
}

/// Two kernels each way around the loop's mid-step GEMM, as the CPU halves.
impl DeviceCell for GruResetBefore {
    fn launch_fwd(&self, be: &dyn GpuBackend, a: &FwdStep) -> Result<()> {
        a.launch(be, &k::GRU_RB_FWD_STEP1, [buf(a.hs), a.ws_s.arg(), a.hprev_s.arg(), buf(a.xp), buf(a.hh)], [])
    }

    fn launch_fwd_mid(&self, be: &dyn GpuBackend, a: &FwdStep) -> Result<()> {
        let mid = a.mid.expect("a reset-before GRU step has mid");
        a.launch(be, &k::GRU_RB_FWD_STEP2, [buf(a.hs), a.ws_s.arg(), buf(a.y), buf(a.xp), buf(mid)], [])
    }

    fn launch_bwd(&self, be: &dyn GpuBackend, a: &BwdStep) -> Result<()> {
        a.launch(
            be,
            &k::GRU_RB_BWD_STEP1,
            [buf(a.dh), a.dg_s.arg(), a.dxp_s.arg(), a.ws_s.arg(), a.hprev_s.arg(), buf(a.dy), flag(a.has_dy)],
            [],
        )
    }

    fn launch_bwd_mid(&self, be: &dyn GpuBackend, a: &BwdStep) -> Result<()> {
        let dmid = a.dmid.expect("a reset-before GRU step has dmid");
        a.launch(
            be,
            &k::GRU_RB_BWD_STEP2,
            [buf(a.dh), a.dg_s.arg(), a.dxp_s.arg(), a.ws_s.arg(), a.hprev_s.arg(), buf(dmid)],
            [],
        )
    }
}
