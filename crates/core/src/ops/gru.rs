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
use crate::ops::rnn::Cell;
use crate::ops::rnn_device::{BwdStep, DeviceCell, FwdStep};

pub(crate) struct Gru;

impl Cell for Gru {
    const G: usize = 3;
    const FOLD_HH_BIAS: bool = false;
    const WS_BLOCKS: usize = 4;

    /// In passes over the row, so that the activations run vectorised over whole gate blocks.
    fn fwd<T: Float>(&self, h: usize, xp: &[T], hh: &[T], hs: &mut [T], _cs: &mut [T], ws: &mut [T]) {
        for ((w, &x), &r) in ws[..2 * h].iter_mut().zip(&xp[..2 * h]).zip(&hh[..2 * h]) {
            *w = x + r;
        }
        T::sigmoid_slice(&mut ws[..2 * h]);
        for j in 0..h {
            let hn = hh[2 * h + j];
            ws[3 * h + j] = hn;
            ws[2 * h + j] = xp[2 * h + j] + ws[j] * hn;
        }
        T::tanh_slice(&mut ws[2 * h..3 * h]);
        for j in 0..h {
            let (z, n) = (ws[h + j], ws[2 * h + j]);
            hs[j] = (T::ONE - z) * n + z * hs[j];
        }
    }

    fn bwd<T: Float>(&self, h: usize, hprev: &[T], ws: &[T], dh: &mut [T], _dc: &mut [T], dg: &mut [T], dxp: &mut [T]) {
        for j in 0..h {
            let (r, z, n, hn) = (ws[j], ws[h + j], ws[2 * h + j], ws[3 * h + j]);
            let d_h = dh[j];
            let dn = d_h * (T::ONE - z) * (T::ONE - n * n);
            let dz = d_h * (hprev[j] - n) * z * (T::ONE - z);
            let dr = dn * hn * r * (T::ONE - r);
            dxp[j] = dr;
            dxp[h + j] = dz;
            dxp[2 * h + j] = dn;
            dg[j] = dr;
            dg[h + j] = dz;
            dg[2 * h + j] = dn * r;
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
    fn fwd<T: Float>(&self, h: usize, xp: &[T], hh: &[T], hs: &mut [T], _cs: &mut [T], ws: &mut [T]) {
        for ((w, &x), &r) in ws[..2 * h].iter_mut().zip(&xp[..2 * h]).zip(&hh[..2 * h]) {
            *w = x + r;
        }
        T::sigmoid_slice(&mut ws[..2 * h]);
        for j in 0..h {
            ws[3 * h + j] = ws[j] * hs[j];
        }
    }

    fn fwd_mid<T: Float>(&self, h: usize, xp: &[T], mid: &[T], hs: &mut [T], ws: &mut [T]) {
        for j in 0..h {
            ws[2 * h + j] = xp[2 * h + j] + mid[j];
        }
        T::tanh_slice(&mut ws[2 * h..3 * h]);
        for j in 0..h {
            let (z, n) = (ws[h + j], ws[2 * h + j]);
            hs[j] = (T::ONE - z) * n + z * hs[j];
        }
    }

    /// First half: z and n gates; dr needs d(r ⊙ h), which the mid-step GEMM provides.
    fn bwd<T: Float>(&self, h: usize, hprev: &[T], ws: &[T], dh: &mut [T], _dc: &mut [T], dg: &mut [T], dxp: &mut [T]) {
        for j in 0..h {
            let (z, n) = (ws[h + j], ws[2 * h + j]);
            let d_h = dh[j];
            let dn = d_h * (T::ONE - z) * (T::ONE - n * n);
            let dz = d_h * (hprev[j] - n) * z * (T::ONE - z);
            dxp[h + j] = dz;
            dxp[2 * h + j] = dn;
            dg[h + j] = dz;
            dg[2 * h + j] = dn;
            dh[j] = d_h * z;
        }
    }

    fn bwd_mid<T: Float>(&self, h: usize, hprev: &[T], ws: &[T], drh: &[T], dh: &mut [T], dg: &mut [T], dxp: &mut [T]) {
        for j in 0..h {
            let r = ws[j];
            let dr = drh[j] * hprev[j] * r * (T::ONE - r);
            dxp[j] = dr;
            dg[j] = dr;
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
