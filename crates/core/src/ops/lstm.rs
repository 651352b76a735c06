//! The LSTM cell (PyTorch gate order i, f, g, o): one step on the CPU (one row) and on a device
//! (`kernels/lstm.cu`, every row of the step); the loop over time is in `rnn.rs`.
//!
//!   i = σ(W_ii x + b_ii + W_hi h + b_hi)     f = σ(W_if x + b_if + W_hf h + b_hf)
//!   g = tanh(W_ig x + b_ig + W_hg h + b_hg)  o = σ(W_io x + b_io + W_ho h + b_ho)
//!   c' = f ⊙ c + i ⊙ g                       h' = o ⊙ tanh(c')
//!
//! Saved per row and step (6 blocks of H): i, f, g, o, c, tanh(c').

use crate::backend::GpuBackend;
use crate::cpu::lstm_rows::{row_kernels, BwdRow, BwdStrides, FwdRow, FwdStrides};
use crate::cpu::Float;
use crate::error::Result;
use crate::launch::{buf, flag, kernels as k};
use crate::ops::rnn::{add_output_grad, Blocks, BlocksMut, Cell, Proj};
use crate::ops::rnn_device::{BwdStep, DeviceCell, FwdStep};

pub(crate) struct Lstm;

impl Cell for Lstm {
    const G: usize = 4;
    const HAS_C: bool = true;
    const WS_BLOCKS: usize = 6;
    const FWD_READS_H: bool = false;

    /// In passes over the row, so that the activations run vectorised over whole gate blocks.
    fn fwd<T: Float>(&self, _n: usize, xp: Proj<T>, hh: Blocks<T>, hs: &mut [T], cs: &mut [T], ws: &mut BlocksMut<T>) {
        let [wi, wf, wg, wo, wc, wt] = ws.blks([0, 1, 2, 3, 4, 5]);
        for (k, w) in [&mut *wi, &mut *wf, &mut *wg, &mut *wo].into_iter().enumerate() {
            xp.add(k, hh.blk(k), w);
        }
        T::sigmoid_slice(wi);
        T::sigmoid_slice(wf);
        T::tanh_slice(wg);
        T::sigmoid_slice(wo);
        for (((((c, wc), wt), &i), &f), &g) in
            cs.iter_mut().zip(wc.iter_mut()).zip(wt.iter_mut()).zip(&*wi).zip(&*wf).zip(&*wg)
        {
            let c_new = f * *c + i * g;
            *wc = *c;
            *c = c_new;
            *wt = c_new;
        }
        T::tanh_slice(wt);
        for ((h, &o), &t) in hs.iter_mut().zip(&*wo).zip(&*wt) {
            *h = o * t;
        }
    }

    /// One SIMD pass over the row (`cpu::lstm_rows`), which skips the saves in inference;
    /// the same arithmetic as `fwd`.
    fn fwd_f32(
        &self, n: usize, xp: Proj<f32>, hh: Blocks<f32>, hs: &mut [f32], cs: &mut [f32], ws: &mut BlocksMut<f32>,
        y: &mut [f32], save: bool,
    ) {
        let Some((fwd, _)) = row_kernels() else {
            self.fwd(n, xp, hh, hs, cs, ws);
            return y.copy_from_slice(hs);
        };
        assert!(hs.len() == n && cs.len() == n && y.len() == n, "lstm row: h, c and y of {n} units");
        let (xp_ptr, ld_in) = xp.xp.raw(4, n);
        let (bias, ld_bias) = xp.bias.map_or((std::ptr::null(), 0), |b| b.raw(4, n));
        let (hh_ptr, ld_hh) = hh.raw(4, n);
        let (ws_ptr, blocks, ld_ws) = ws.raw(n);
        assert!(!save || blocks == 6, "lstm row: 6 saved blocks");
        let row = FwdRow {
            rows: 1,
            rs: FwdStrides::default(),
            n,
            xp: xp_ptr,
            ld_in,
            bias,
            ld_bias,
            hh: hh_ptr,
            ld_hh,
            c: cs.as_mut_ptr(),
            h: hs.as_mut_ptr(),
            y: y.as_mut_ptr(),
            ws: if save { ws_ptr } else { std::ptr::null_mut() },
            ld_ws,
        };
        // SAFETY: the block views are in bounds (asserted by `raw` and at the views' making), h,
        // c and y hold n values, and each is a distinct buffer (or a distinct range of one).
        unsafe { fwd(&row) }
    }

    fn fwd_rows_f32(&self) -> Option<crate::cpu::lstm_rows::FwdFn> {
        row_kernels().map(|(fwd, _)| fwd)
    }

    fn bwd_rows_f32(&self) -> Option<crate::cpu::lstm_rows::BwdFn> {
        row_kernels().map(|(_, bwd)| bwd)
    }

    fn bwd_f32(
        &self, n: usize, hprev: &[f32], ws: Blocks<f32>, dy: Option<&[f32]>, dh: &mut [f32], dc: &mut [f32],
        dg: &mut BlocksMut<f32>, dxp: &mut BlocksMut<f32>,
    ) {
        let Some((_, bwd)) = row_kernels() else {
            add_output_grad(dh, dy);
            return self.bwd(n, hprev, ws, dh, dc, dg, dxp);
        };
        assert!(
            dh.len() == n && dc.len() == n && dy.is_none_or(|d| d.len() == n),
            "lstm row: dh, dc and dy of {n} units"
        );
        let (ws_ptr, ld_ws) = ws.raw(6, n);
        let (dg_ptr, blocks, ld_dg) = dg.raw(n);
        assert_eq!(blocks, 4, "lstm row: 4 gradient blocks");
        let row = BwdRow {
            rows: 1,
            rs: BwdStrides::default(),
            n,
            ws: ws_ptr,
            ld_ws,
            dy: dy.map_or(std::ptr::null(), |d| d.as_ptr()),
            dh: dh.as_mut_ptr(),
            dc: dc.as_mut_ptr(),
            dg: dg_ptr,
            ld_dg,
        };
        // SAFETY: as in `fwd_f32`.
        unsafe { bwd(&row) }
    }

    fn bwd<T: Float>(
        &self, _n: usize, _hprev: &[T], ws: Blocks<T>, dh: &mut [T], dc: &mut [T], dg: &mut BlocksMut<T>,
        _dxp: &mut BlocksMut<T>,
    ) {
        let (wi, wf, wg, wo, wc, wt) = (ws.blk(0), ws.blk(1), ws.blk(2), ws.blk(3), ws.blk(4), ws.blk(5));
        let [di_, df_, dg_, do_] = dg.blks([0, 1, 2, 3]);
        for j in 0..dh.len() {
            let (i, f, g, o, c, tc) = (wi[j], wf[j], wg[j], wo[j], wc[j], wt[j]);
            let d_h = dh[j];
            let d_c = dc[j] + d_h * o * (T::ONE - tc * tc);
            di_[j] = d_c * g * i * (T::ONE - i);
            df_[j] = d_c * c * f * (T::ONE - f);
            dg_[j] = d_c * i * (T::ONE - g * g);
            do_[j] = d_h * tc * o * (T::ONE - o);
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
