//! The LSTM cell (PyTorch gate order i, f, g, o): one step on the CPU (one row) and on a device
//! (`kernels/lstm.cu`, every row of the step); the loop over time is in `rnn.rs`.
//!
//!   i = σ(W_ii x + b_ii + W_hi h + b_hi)     f = σ(W_if x + b_if + W_hf h + b_hf)
//!   g = tanh(W_ig x + b_ig + W_hg h + b_hg)  o = σ(W_io x + b_io + W_ho h + b_ho)
//!   c' = f ⊙ c + i ⊙ g                       h' = o ⊙ tanh(c')
//!
//! Saved per row and step (6 blocks of H): i, f, g, o, c, tanh(c').

use crate::backend::GpuBackend;
use crate::cpu::Float;
use crate::error::Result;
use crate::launch::{buf, flag, kernels as k};
use crate::ops::rnn::Cell;
use crate::ops::rnn_device::{BwdStep, DeviceCell, FwdStep};

pub(crate) struct Lstm;

impl Cell for Lstm {
    const G: usize = 4;
    const HAS_C: bool = true;
    const WS_BLOCKS: usize = 6;

    /// In passes over the row, so that the activations run vectorised over whole gate blocks.
    fn fwd<T: Float>(&self, h: usize, xp: &[T], hh: &[T], hs: &mut [T], cs: &mut [T], ws: &mut [T]) {
        for ((w, &x), &r) in ws[..4 * h].iter_mut().zip(&xp[..4 * h]).zip(&hh[..4 * h]) {
            *w = x + r;
        }
        let (ifg, rest) = ws.split_at_mut(3 * h);
        let (wo, rest) = rest.split_at_mut(h);
        let (wc, wt) = rest.split_at_mut(h);
        T::sigmoid_slice(&mut ifg[..2 * h]);
        T::tanh_slice(&mut ifg[2 * h..]);
        T::sigmoid_slice(wo);
        let (wi, wf, wg) = (&ifg[..h], &ifg[h..2 * h], &ifg[2 * h..]);
        for j in 0..h {
            let c = cs[j];
            let c_new = wf[j] * c + wi[j] * wg[j];
            cs[j] = c_new;
            wc[j] = c;
            wt[j] = c_new;
        }
        T::tanh_slice(&mut wt[..h]);
        for j in 0..h {
            hs[j] = wo[j] * wt[j];
        }
    }

    fn bwd<T: Float>(&self, h: usize, _hprev: &[T], ws: &[T], dh: &mut [T], dc: &mut [T], dg: &mut [T], dxp: &mut [T]) {
        let (wi, wf, wg, wo, wc, wt) =
            (&ws[..h], &ws[h..2 * h], &ws[2 * h..3 * h], &ws[3 * h..4 * h], &ws[4 * h..5 * h], &ws[5 * h..6 * h]);
        for j in 0..h {
            let (i, f, g, o, c, tc) = (wi[j], wf[j], wg[j], wo[j], wc[j], wt[j]);
            let d_h = dh[j];
            let d_c = dc[j] + d_h * o * (T::ONE - tc * tc);
            let di = d_c * g * i * (T::ONE - i);
            let df = d_c * c * f * (T::ONE - f);
            let dgg = d_c * i * (T::ONE - g * g);
            let d_o = d_h * tc * o * (T::ONE - o);
            dg[j] = di;
            dg[h + j] = df;
            dg[2 * h + j] = dgg;
            dg[3 * h + j] = d_o;
            dxp[j] = di;
            dxp[h + j] = df;
            dxp[2 * h + j] = dgg;
            dxp[3 * h + j] = d_o;
            dc[j] = d_c * f;
            dh[j] = T::ZERO;
        }
    }
}

impl DeviceCell for Lstm {
    fn launch_fwd(&self, be: &dyn GpuBackend, a: &FwdStep) -> Result<()> {
        let cs = a.cs.expect("an LSTM step has c");
        a.launch(
            be,
            &k::LSTM_FWD_STEP,
            [buf(a.hs), buf(cs), a.ws_s.arg(), a.hprev_s.arg(), buf(a.y), buf(a.xp), buf(a.hh)],
            [],
        )
    }

    fn launch_bwd(&self, be: &dyn GpuBackend, a: &BwdStep) -> Result<()> {
        let dc = a.dc.expect("an LSTM step has dc");
        a.launch(
            be,
            &k::LSTM_BWD_STEP,
            [buf(a.dh), buf(dc), a.dg_s.arg(), a.dxp_s.arg(), a.ws_s.arg(), buf(a.dy), flag(a.has_dy)],
            [],
        )
    }
}
