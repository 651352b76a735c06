//! The shared recurrent loop: one op runs a whole layer in one direction over a whole sequence.
//! It owns time, masking (`lengths`) and direction; a cell (`lstm.rs`, `gru.rs`, the vanilla
//! cell below) only does the math of one step: on the CPU for one batch row ([`Cell`]), on a
//! device for all rows of the step as fused kernels ([`DeviceCell`]). The CPU loop (here, and
//! the float32 team engine in `rnn_fast.rs`) and the device loop (`rnn_device.rs`) are generic
//! over the cell; `with_cell!` is the one place that maps a [`CellKind`] to it.
//!
//! Shapes: T steps, B batch, I input, H hidden, G gate blocks (RNN 1, GRU 3, LSTM 4), W the
//! cell's saved floats per (step, row).
//!
//! Forward, as cuDNN does it:
//!   XP = X·W_ihᵀ + b                  one GEMM over all T·B rows, hoisted out of the loop
//!   per step s: HH = h·W_hhᵀ          one GEMM, then one fused elementwise pass per row
//! Backward:
//!   per step s (reversed): fused elementwise pass → dG_s, then dh += dG_s·W_hh (one GEMM)
//!   dX = DXP·W_ih, dW_ih = DXPᵀ·X, dW_hh = DGᵀ·H_prev: one GEMM each, over all steps.
//!
//! On the CPU, float32 runs the per-step part of both loops on a persistent team with packed
//! SIMD step kernels (`rnn_fast.rs`), which also computes XP itself, per chunk of units; the
//! generic loops below are float64's path and the reference it is tested against.
//!
//! Step s of row b touches time index t_b = s (forward) or len_b − 1 − s (reverse), and only
//! while s < len_b. Past its length a row's state stops changing and its outputs stay zero.
//! Saved buffers (WS, H_prev, DG, DXP) are in processing order [s, b]; X, Y and dX are in
//! time order, [t, b] or, with `batch_first`, [b, t] (`Plan::row`): the CPU loops read and
//! write that layout in place, so a batch-first model needs no transposes around the op.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, indexed, rows_mut, PAR_MIN_ELEMS, PAR_MIN_FUSED};
use crate::cpu::{gemm, gemm_batch, Float, Mat, Product};
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{buf, flag, kernels as k};
use crate::ops::elementwise::dispatch_float;
use crate::ops::gru::{Gru, GruResetBefore};
use crate::ops::lstm::Lstm;
use crate::ops::rnn_device::{backward_gpu, forward_gpu, BwdStep, DeviceCell, FwdStep};
use crate::ops::rnn_fast::{self, BwdIo, FwdIo, StepInput};
use crate::storage::{CpuStorage, DType};
use crate::tensor::Tensor;
use std::any::TypeId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The gate blocks of one row of a buffer: `n` values per block, block k at `k · ld` (ld ≥ n).
/// The generic loop passes whole rows (n = ld = H); the float32 team engine passes one chunk's
/// units of the full-width rows in place (n units from j0, ld = H), so no copies are needed.
#[derive(Clone, Copy)]
pub(crate) struct Blocks<'a, T> {
    data: &'a [T],
    n: usize,
    ld: usize,
}

impl<'a, T> Blocks<'a, T> {
    pub(crate) fn new(data: &'a [T], n: usize, ld: usize) -> Self {
        debug_assert!(ld >= n);
        Blocks { data, n, ld }
    }
    pub(crate) fn blk(&self, k: usize) -> &'a [T] {
        &self.data[k * self.ld..k * self.ld + self.n]
    }
    /// The start of block 0 and the block stride, for a kernel that reads `blocks` blocks of
    /// `n` values through raw pointers (asserted to be in bounds).
    pub(crate) fn raw(&self, blocks: usize, n: usize) -> (*const T, usize) {
        assert!(n == self.n, "Blocks: {n} values per block asked of a view of {}", self.n);
        assert!(blocks == 0 || self.data.len() >= (blocks - 1) * self.ld + n, "Blocks: {blocks} blocks out of bounds");
        (self.data.as_ptr(), self.ld)
    }
}

/// The writable form of [`Blocks`]. The blocks are disjoint (ld ≥ n), so several can be
/// borrowed at once ([`BlocksMut::blks`]); the gaps between them are never touched, which lets
/// several threads hold views of the same rows, each over its own units.
pub(crate) struct BlocksMut<'a, T> {
    ptr: *mut T,
    blocks: usize,
    n: usize,
    ld: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

impl<'a, T> BlocksMut<'a, T> {
    /// `blocks` blocks of `data`.
    pub(crate) fn new(data: &'a mut [T], blocks: usize, n: usize, ld: usize) -> Self {
        assert!(ld >= n && (blocks == 0 || data.len() >= (blocks - 1) * ld + n), "BlocksMut: buffer too small");
        BlocksMut { ptr: data.as_mut_ptr(), blocks, n, ld, _borrow: std::marker::PhantomData }
    }
    /// No blocks: the `dxp` of cells whose DXP is DG.
    pub(crate) fn empty() -> Self {
        BlocksMut {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            blocks: 0,
            n: 0,
            ld: 0,
            _borrow: std::marker::PhantomData,
        }
    }
    /// # Safety
    /// For k < blocks, `[ptr + k·ld, ptr + k·ld + n)` is valid for 'a, and nothing else reads or
    /// writes those ranges while the view lives.
    pub(crate) unsafe fn from_raw(ptr: *mut T, blocks: usize, n: usize, ld: usize) -> Self {
        assert!(ld >= n, "BlocksMut: ld < n");
        BlocksMut { ptr, blocks, n, ld, _borrow: std::marker::PhantomData }
    }
    pub(crate) fn blk(&mut self, k: usize) -> &mut [T] {
        assert!(k < self.blocks, "BlocksMut: block {k} of {}", self.blocks);
        // SAFETY: in bounds (checked here and at construction); the &mut self borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(k * self.ld), self.n) }
    }
    /// The start of block 0, the number of blocks and the block stride, for a row kernel that
    /// writes blocks of `n` values through raw pointers.
    pub(crate) fn raw(&mut self, n: usize) -> (*mut T, usize, usize) {
        assert!(n == self.n, "BlocksMut: {n} values per block asked of a view of {}", self.n);
        (self.ptr, self.blocks, self.ld)
    }
    pub(crate) fn get(&self, k: usize) -> &[T] {
        assert!(k < self.blocks, "BlocksMut: block {k} of {}", self.blocks);
        // SAFETY: as `blk`, shared.
        unsafe { std::slice::from_raw_parts(self.ptr.add(k * self.ld), self.n) }
    }
    /// Several distinct blocks at once.
    pub(crate) fn blks<const K: usize>(&mut self, ks: [usize; K]) -> [&mut [T]; K] {
        // Distinct and in bounds, as one mask (a cell has at most 6 blocks; called per row).
        let mut seen = 0u64;
        for &k in &ks {
            assert!(k < self.blocks.min(64) && seen & (1 << k) == 0, "BlocksMut: blocks {ks:?} of {}", self.blocks);
            seen |= 1 << k;
        }
        let (ptr, ld, n) = (self.ptr, self.ld, self.n);
        // SAFETY: distinct blocks are disjoint ranges (ld ≥ n), each in bounds.
        std::array::from_fn(|i| unsafe { std::slice::from_raw_parts_mut(ptr.add(ks[i] * ld), n) })
    }
}

/// The input projection of one row's gate blocks, plus the bias where the caller keeps it apart
/// (the team engine adds it as it reads, which saves a pass over XP).
#[derive(Clone, Copy)]
pub(crate) struct Proj<'a, T> {
    pub xp: Blocks<'a, T>,
    pub bias: Option<Blocks<'a, T>>,
}

impl<T: Float> Proj<'_, T> {
    /// `out = xp[k] (+ bias[k])`.
    pub(crate) fn load(&self, k: usize, out: &mut [T]) {
        match self.bias {
            Some(b) => {
                for ((o, &x), &c) in out.iter_mut().zip(self.xp.blk(k)).zip(b.blk(k)) {
                    *o = x + c;
                }
            }
            None => out.copy_from_slice(self.xp.blk(k)),
        }
    }
    /// `out = xp[k] (+ bias[k]) + r`.
    pub(crate) fn add(&self, k: usize, r: &[T], out: &mut [T]) {
        self.load(k, out);
        for (o, &v) in out.iter_mut().zip(r) {
            *o += v;
        }
    }
}

/// One step of one row of a recurrent cell, over `n` hidden units: `hs`, `cs`, `hprev`, `dh`,
/// `dc` and `mid` are those n values; the other arguments are gate blocks of n values each.
pub(crate) trait Cell: Sync {
    /// Gate blocks in w_ih / w_hh.
    const G: usize;
    /// Whether the cell has a cell state c (LSTM).
    const HAS_C: bool = false;
    /// Whether b_hh can be folded into the hoisted projection (false when it sits inside r ⊙ (…)).
    const FOLD_HH_BIAS: bool = true;
    /// Gate blocks of W_hh multiplied by h before the row math; the rest (reset-before GRU) are
    /// multiplied by a mid-step vector the cell writes into `ws` at block `MID_WS_BLOCK`.
    const HH_BLOCKS: usize = Self::G;
    const MID_WS_BLOCK: usize = 0;
    /// Whether a step has a mid-step GEMM (some W_hh blocks multiply the mid-step vector), and
    /// so a second half (`fwd_mid`, `bwd_mid`) and one extra B×H workspace.
    const HAS_MID: bool = Self::HH_BLOCKS < Self::G;
    /// Saved floats per row and step, in units of H.
    const WS_BLOCKS: usize;
    /// Whether the gradient of the input projection equals that of the recurrent one (every
    /// cell but the reset-after GRU, whose n gate sees W_hn h through r): the CPU loops then
    /// keep one buffer, DG, and `bwd` never touches `dxp`.
    const DXP_IS_DG: bool = true;

    /// Whether `fwd` reads h_prev from `hs`; when not, the team engine leaves `hs` as it is
    /// before the call instead of copying h_prev in.
    const FWD_READS_H: bool = true;

    /// h (and c) in place from h_prev; `xp` holds the input projection (with folded biases),
    /// `hh` the recurrent projection of the first HH_BLOCKS gates.
    fn fwd<T: Float>(&self, n: usize, xp: Proj<T>, hh: Blocks<T>, hs: &mut [T], cs: &mut [T], ws: &mut BlocksMut<T>);
    /// The float32 team engine's form of `fwd` for cells without a mid-step GEMM: h' also goes
    /// to `y`, and with `save` false nothing reads `ws` after the step, so it need not be
    /// written (inference). Cells with a fused SIMD row step (LSTM) override it.
    #[allow(clippy::too_many_arguments)]
    fn fwd_f32(
        &self, n: usize, xp: Proj<f32>, hh: Blocks<f32>, hs: &mut [f32], cs: &mut [f32], ws: &mut BlocksMut<f32>,
        y: &mut [f32], _save: bool,
    ) {
        self.fwd(n, xp, hh, hs, cs, ws);
        y.copy_from_slice(hs);
    }
    /// The float32 kernel that takes several rows of a step in one call (`cpu::lstm_rows`),
    /// for cells that have one on this CPU: `fwd_f32`'s work for rows at fixed strides.
    fn fwd_rows_f32(&self) -> Option<crate::cpu::lstm_rows::FwdFn> {
        None
    }
    /// The same for `bwd_f32`.
    fn bwd_rows_f32(&self) -> Option<crate::cpu::lstm_rows::BwdFn> {
        None
    }
    /// Second half of a step for cells with a mid-step GEMM; `mid` = ws[MID]·W_hh[mid]ᵀ.
    fn fwd_mid<T: Float>(&self, _n: usize, _xp: Proj<T>, _mid: &[T], _hs: &mut [T], _ws: &mut BlocksMut<T>) {}
    /// From dh (and dc) of this step's output state: pre-activation gradients of the recurrent
    /// part `dg` and, unless DXP_IS_DG, of the input part `dxp`, and in place the direct part of
    /// dh_prev (and dc_prev). The loop adds dg·W_hh to dh afterwards.
    #[allow(clippy::too_many_arguments)]
    fn bwd<T: Float>(
        &self, n: usize, hprev: &[T], ws: Blocks<T>, dh: &mut [T], dc: &mut [T], dg: &mut BlocksMut<T>,
        dxp: &mut BlocksMut<T>,
    );
    /// The float32 team engine's form of `bwd`: `dy` (this step's output gradient, if any) is
    /// added to `dh` first. Cells with a fused SIMD row step (LSTM) override it.
    #[allow(clippy::too_many_arguments)]
    fn bwd_f32(
        &self, n: usize, hprev: &[f32], ws: Blocks<f32>, dy: Option<&[f32]>, dh: &mut [f32], dc: &mut [f32],
        dg: &mut BlocksMut<f32>, dxp: &mut BlocksMut<f32>,
    ) {
        add_output_grad(dh, dy);
        self.bwd(n, hprev, ws, dh, dc, dg, dxp);
    }
    /// Second half of the backward step for mid-GEMM cells; `dmid` = dg[mid]·W_hh[mid].
    #[allow(clippy::too_many_arguments)]
    fn bwd_mid<T: Float>(
        &self, _n: usize, _hprev: &[T], _ws: Blocks<T>, _dmid: &[T], _dh: &mut [T], _dg: &mut BlocksMut<T>,
        _dxp: &mut BlocksMut<T>,
    ) {
    }
}

/// `dh += dy`: a step's output gradient joins the state's (the generic form of `bwd_f32`).
pub(crate) fn add_output_grad(dh: &mut [f32], dy: Option<&[f32]>) {
    if let Some(dy) = dy {
        for (v, &a) in dh.iter_mut().zip(dy) {
            *v += a;
        }
    }
}

/// Vanilla RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh). Saves h' to differentiate act.
pub(crate) struct Vanilla {
    pub relu: bool,
}

impl Cell for Vanilla {
    const G: usize = 1;
    const WS_BLOCKS: usize = 1;
    const FWD_READS_H: bool = false;
    fn fwd<T: Float>(&self, _n: usize, xp: Proj<T>, hh: Blocks<T>, hs: &mut [T], _cs: &mut [T], ws: &mut BlocksMut<T>) {
        let w = ws.blk(0);
        xp.add(0, hh.blk(0), w);
        if self.relu {
            for w in w.iter_mut() {
                // NaN maps to 0, as the comparison form `if pre > 0 { pre } else { 0 }`.
                *w = if *w > T::ZERO { *w } else { T::ZERO };
            }
        } else {
            T::tanh_slice(w);
        }
        hs.copy_from_slice(w);
    }
    fn bwd<T: Float>(
        &self, _n: usize, _hprev: &[T], ws: Blocks<T>, dh: &mut [T], _dc: &mut [T], dg: &mut BlocksMut<T>,
        _dxp: &mut BlocksMut<T>,
    ) {
        for ((d_g, d_h), &y) in dg.blk(0).iter_mut().zip(dh.iter_mut()).zip(ws.blk(0)) {
            *d_g = if self.relu {
                if y > T::ZERO {
                    *d_h
                } else {
                    T::ZERO
                }
            } else {
                *d_h * (T::ONE - y * y)
            };
            *d_h = T::ZERO;
        }
    }
}

/// `kernels/rnn.cu`: one kernel each way; the activation is a flag.
impl DeviceCell for Vanilla {
    fn launch_fwd(&self, be: &dyn GpuBackend, a: &FwdStep) -> Result<()> {
        a.launch(
            be,
            &k::RNN_FWD_STEP,
            [buf(a.hs), a.ws_s.arg(), a.hprev_s.arg(), buf(a.y), buf(a.xp), buf(a.hh)],
            [flag(self.relu)],
        )
    }
    fn launch_bwd(&self, be: &dyn GpuBackend, a: &BwdStep) -> Result<()> {
        a.launch(
            be,
            &k::RNN_BWD_STEP,
            [buf(a.dh), a.dg_s.arg(), a.dxp_s.arg(), a.ws_s.arg(), buf(a.dy), flag(a.has_dy)],
            [flag(self.relu)],
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    RnnTanh,
    RnnRelu,
    Lstm,
    Gru,
    /// Keras `reset_after=False` (the only GRU tfjs has): n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn).
    GruResetBefore,
}

impl CellKind {
    pub fn parse(s: &str) -> Result<CellKind> {
        match s {
            "rnn_tanh" => Ok(CellKind::RnnTanh),
            "rnn_relu" => Ok(CellKind::RnnRelu),
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            "gru_reset_before" => Ok(CellKind::GruResetBefore),
            other => Err(Error::value(
                "recurrentLayer",
                format!("cell must be one of rnn_tanh, rnn_relu, lstm, gru, gru_reset_before; got '{other}'"),
            )),
        }
    }
    pub fn op_name(self) -> &'static str {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => "rnn",
            CellKind::Lstm => "lstm",
            CellKind::Gru | CellKind::GruResetBefore => "gru",
        }
    }
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru | CellKind::GruResetBefore => 3,
        }
    }
    pub fn has_c(self) -> bool {
        self == CellKind::Lstm
    }
}

/// Weights of one layer and direction, PyTorch layout: w_ih [G·H, I], w_hh [G·H, H], biases [G·H].
pub struct RecurrentWeights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: Option<&'a Tensor>,
    pub b_hh: Option<&'a Tensor>,
}

/// y [T, B, H] (zero past each row's length), h_t [B, H], c_t [B, H] (LSTM).
pub struct RecurrentOutput {
    pub y: Tensor,
    pub h_t: Tensor,
    pub c_t: Option<Tensor>,
}

/// The one check of per-row lengths, for Rust callers and JS numbers alike (possibly NaN,
/// fractional or negative): `b` of them, each an integer in [1, T]. Called by
/// [`recurrent_layer_call`] (and so by [`recurrent_layer`]) against x's T and B.
pub fn parse_lengths(op: &str, raw: &[f64], t: usize, b: usize) -> Result<Vec<usize>> {
    if raw.len() != b {
        return Err(Error::shape(op, format!("lengths [B] = [{b}]"), fmt_shape(&[raw.len()])));
    }
    let range = format!("expected an integer in [1, T] = [1, {t}]");
    raw.iter()
        .enumerate()
        .map(|(i, &l)| {
            if !l.is_finite() || l.fract() != 0.0 || l < 0.0 {
                Err(Error::value(op, format!("lengths[{i}] is {l}; {range}")))
            } else if l == 0.0 {
                Err(Error::value(op, format!("lengths[{i}] is 0: zero-length sequences are not supported; {range}")))
            } else if l > t as f64 {
                Err(Error::value(op, format!("lengths[{i}] is {l}, longer than the sequence (T = {t}); {range}")))
            } else {
                Ok(l as usize)
            }
        })
        .collect()
}

/// Evaluates `$body` with `$cell` bound to the cell of a [`CellKind`], so that the loops can be
/// generic over the cell: the only per-cell match of the recurrent op.
macro_rules! with_cell {
    ($kind:expr, |$cell:ident| $body:expr) => {
        match $kind {
            CellKind::RnnTanh => {
                let $cell = &Vanilla { relu: false };
                $body
            }
            CellKind::RnnRelu => {
                let $cell = &Vanilla { relu: true };
                $body
            }
            CellKind::Lstm => {
                let $cell = &Lstm;
                $body
            }
            CellKind::Gru => {
                let $cell = &Gru;
                $body
            }
            CellKind::GruResetBefore => {
                let $cell = &GruResetBefore;
                $body
            }
        }
    };
}

/// Saved blocks per (step, row) of a cell (for the forward op's output shapes).
fn ws_blocks_of<C: Cell>(_: &C) -> usize {
    C::WS_BLOCKS
}

/// Static description of one layer call, shared by the forward and backward ops.
#[derive(Clone)]
pub(crate) struct Plan {
    pub(crate) kind: CellKind,
    pub(crate) t: usize,
    pub(crate) b: usize,
    pub(crate) i: usize,
    pub(crate) h: usize,
    pub(crate) lengths: Arc<Vec<usize>>,
    pub(crate) reverse: bool,
    /// X, Y, dY and dX are [B, T, ·] instead of [T, B, ·] (CPU only: a device call gets
    /// transposes around it instead, see [`recurrent_layer_call`]).
    pub(crate) batch_first: bool,
    /// Whether h0 (and c0, for cells with c) are inputs; absent states start at zero (CPU only,
    /// as `batch_first`).
    pub(crate) has_h0: bool,
    pub(crate) has_c0: bool,
    pub(crate) has_bias: bool,
    /// Whether the workspace for backward is kept: only when history is recorded. Inference
    /// reuses one step's workspace and skips the saved states, which saves memory traffic.
    pub(crate) save: bool,
}

impl Plan {
    pub(crate) fn g(&self) -> usize {
        self.kind.gates()
    }
    /// Time index of row `b` at step `s`, or None once the row is past its length.
    #[inline]
    pub(crate) fn time_of(&self, s: usize, b: usize) -> Option<usize> {
        let len = self.lengths[b];
        if s >= len {
            None
        } else if self.reverse {
            Some(len - 1 - s)
        } else {
            Some(s)
        }
    }
    /// Index of the row of time `tt` and batch row `r` in X, Y, dY and dX.
    #[inline]
    pub(crate) fn row(&self, tt: usize, r: usize) -> usize {
        if self.batch_first {
            r * self.t + tt
        } else {
            tt * self.b + r
        }
    }
    /// True when processing order [s, b] is the layout of X, Y and dX for every row.
    pub(crate) fn identity_order(&self) -> bool {
        !self.reverse && (!self.batch_first || self.b == 1)
    }
    /// Whether every row runs all T steps (no row's buffers keep zeros past its length).
    pub(crate) fn full_lengths(&self) -> bool {
        self.lengths.iter().all(|&l| l == self.t)
    }
    /// Where w_ih is among the forward op's inputs (after x and the given states).
    pub(crate) fn weights_at(&self) -> usize {
        1 + self.has_h0 as usize + self.has_c0 as usize
    }
    pub(crate) fn ws_blocks(&self) -> usize {
        with_cell!(self.kind, |cell| ws_blocks_of(cell))
    }
}

/// One layer, one direction, over a whole sequence: x [T, B, I], h0 [B, H], c0 [B, H] (LSTM
/// only), lengths per row in [1, T] (see [`parse_lengths`]). Returns at once; the work is
/// enqueued as one op with one fused backward. [`recurrent_layer_call`] takes the other options.
pub fn recurrent_layer(
    kind: CellKind, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>, w: &RecurrentWeights, lengths: Option<&[usize]>,
    reverse: bool,
) -> Result<RecurrentOutput> {
    let numbers: Option<Vec<f64>> = lengths.map(|l| l.iter().map(|&v| v as f64).collect());
    let call = LayerCall { h0: Some(h0), c0, lengths: numbers.as_deref(), reverse, batch_first: false };
    recurrent_layer_call(kind, x, w, &call)
}

/// The optional arguments of [`recurrent_layer_call`].
#[derive(Clone, Copy, Default)]
pub struct LayerCall<'a> {
    /// Initial states [B, H] (c0: LSTM only); zeros when absent.
    pub h0: Option<&'a Tensor>,
    pub c0: Option<&'a Tensor>,
    /// Per-row lengths as JS numbers, unchecked: checked here against x's T and B
    /// ([`parse_lengths`]), so the binding passes them as they come.
    pub lengths: Option<&'a [f64]>,
    pub reverse: bool,
    /// x is [B, T, I] and y [B, T, H] (PyTorch's `batch_first`); the states stay [B, H].
    pub batch_first: bool,
}

/// [`recurrent_layer`] with every option. On the CPU, a batch-first layout and absent states
/// cost nothing (the loops index x and y in place; zero states are made inside the op), which
/// spares a small model's call the extra ops; on a device they become transposes and zero
/// tensors around the same op.
pub fn recurrent_layer_call(
    kind: CellKind, x: &Tensor, w: &RecurrentWeights, call: &LayerCall,
) -> Result<RecurrentOutput> {
    let op = kind.op_name();
    if x.dims() != 3 {
        let want = if call.batch_first { "x of shape [B, T, I]" } else { "x of shape [T, B, I]" };
        return Err(Error::shape(op, want, fmt_shape(x.shape())));
    }
    if x.device() != crate::tensor::Device::Cpu
        && (call.batch_first || call.h0.is_none() || (kind.has_c() && call.c0.is_none()))
    {
        return on_device(kind, x, w, call);
    }
    let plan = checked_plan(kind, x, w, call)?;
    let (op, inputs, specs) = forward_parts(plan, x, call.h0, call.c0, w);
    let outs = apply(Arc::new(op), &inputs, specs)?;
    Ok(RecurrentOutput::from_outputs(kind, outs))
}

/// Every check of a call (x already known to be 3-D) and the plan it makes.
pub(crate) fn checked_plan(kind: CellKind, x: &Tensor, w: &RecurrentWeights, call: &LayerCall) -> Result<Plan> {
    let op = kind.op_name();
    let g = kind.gates();
    let h0 = call.h0;
    let c0 = call.c0;
    for (name, t) in [("x", Some(x)), ("h0", h0), ("w_ih", Some(w.w_ih)), ("w_hh", Some(w.w_hh))] {
        let Some(t) = t else { continue };
        if !t.dtype().is_float() {
            return Err(Error::dtype(op, "float32 or float64", format!("{} for {name}", t.dtype())));
        }
        if t.dtype() != x.dtype() {
            return Err(Error::dtype(op, format!("{} for {name} (the dtype of x)", x.dtype()), t.dtype()));
        }
    }
    let (t, b, i) = if call.batch_first {
        (x.shape()[1], x.shape()[0], x.shape()[2])
    } else {
        (x.shape()[0], x.shape()[1], x.shape()[2])
    };
    if w.w_hh.dims() != 2 || w.w_hh.shape()[0] != g * w.w_hh.shape()[1] {
        return Err(Error::shape(op, format!("w_hh of shape [{g}·H, H]"), fmt_shape(w.w_hh.shape())));
    }
    let h = w.w_hh.shape()[1];
    if w.w_ih.shape() != [g * h, i] {
        return Err(Error::shape(
            op,
            format!("w_ih of shape {} ({g}·H × I with H = {h}, I = {i})", fmt_shape(&[g * h, i])),
            fmt_shape(w.w_ih.shape()),
        ));
    }
    if let Some(h0) = h0 {
        if h0.shape() != [b, h] {
            return Err(Error::shape(op, format!("h0 of shape {} (B × H)", fmt_shape(&[b, h])), fmt_shape(h0.shape())));
        }
    }
    match (kind.has_c(), c0) {
        (true, Some(c)) if c.shape() != [b, h] || c.dtype() != x.dtype() => {
            return Err(Error::shape(
                op,
                format!("c0 of shape {} {}", fmt_shape(&[b, h]), x.dtype()),
                format!("{} {}", fmt_shape(c.shape()), c.dtype()),
            ));
        }
        (true, None) if h0.is_some() => {
            return Err(Error::value(op, "an LSTM given h0 needs an initial cell state c0 of shape [B, H] too"))
        }
        (true, Some(_)) if h0.is_none() => {
            return Err(Error::value(op, "an LSTM given c0 needs an initial hidden state h0 of shape [B, H] too"))
        }
        (false, Some(_)) => return Err(Error::value(op, "only an LSTM takes a cell state c0")),
        _ => {}
    }
    let has_bias = match (w.b_ih, w.b_hh) {
        (Some(bi), Some(bh)) => {
            for (name, bias) in [("b_ih", bi), ("b_hh", bh)] {
                if bias.shape() != [g * h] || bias.dtype() != x.dtype() {
                    return Err(Error::shape(
                        op,
                        format!("{name} of shape [{}] {}", g * h, x.dtype()),
                        format!("{} {}", fmt_shape(bias.shape()), bias.dtype()),
                    ));
                }
            }
            true
        }
        (None, None) => false,
        _ => return Err(Error::value(op, "pass both b_ih and b_hh, or neither")),
    };
    let lengths = match call.lengths {
        Some(raw) => parse_lengths(op, raw, t, b)?,
        None => vec![t; b],
    };
    let save = crate::is_grad_enabled() && inputs_require_grad(x, h0, c0, w);
    Ok(Plan {
        kind,
        t,
        b,
        i,
        h,
        lengths: Arc::new(lengths),
        reverse: call.reverse,
        batch_first: call.batch_first,
        has_h0: h0.is_some(),
        has_c0: c0.is_some(),
        has_bias,
        save,
    })
}

/// Shapes and dtypes of an op's outputs.
pub(crate) type Specs = Vec<(Vec<usize>, DType)>;

/// The forward op of a checked call, its inputs and its outputs' specs.
pub(crate) fn forward_parts<'a>(
    plan: Plan, x: &'a Tensor, h0: Option<&'a Tensor>, c0: Option<&'a Tensor>, w: &RecurrentWeights<'a>,
) -> (RecurrentForward, Vec<&'a Tensor>, Specs) {
    let (kind, t, b, h, save) = (plan.kind, plan.t, plan.b, plan.h, plan.save);
    let mut inputs: Vec<&Tensor> = vec![x];
    inputs.extend(h0);
    inputs.extend(c0);
    inputs.push(w.w_ih);
    inputs.push(w.w_hh);
    if let (Some(bi), Some(bh)) = (w.b_ih, w.b_hh) {
        inputs.push(bi);
        inputs.push(bh);
    }
    let dt = x.dtype();
    let y_shape = if plan.batch_first { vec![b, t, h] } else { vec![t, b, h] };
    let mut specs = vec![(y_shape, dt), (vec![b, h], dt)];
    if kind.has_c() {
        specs.push((vec![b, h], dt));
    }
    if save {
        specs.push((vec![t, b, plan.ws_blocks() * h], dt));
        specs.push((vec![t, b, h], dt));
    }
    (RecurrentForward { plan }, inputs, specs)
}

impl RecurrentOutput {
    /// y, h_T and (cells with c) c_T from the forward op's outputs (saved buffers dropped).
    pub(crate) fn from_outputs(kind: CellKind, outs: Vec<Tensor>) -> RecurrentOutput {
        let mut outs = outs.into_iter();
        let y = outs.next().expect("y");
        let h_t = outs.next().expect("h_t");
        let c_t = if kind.has_c() { outs.next() } else { None };
        RecurrentOutput { y, h_t, c_t }
    }
}

/// A device call with a batch-first layout or absent states: the same op in its plain form,
/// between transposes (autograd runs through them) and with zero states made on the device.
fn on_device(kind: CellKind, x: &Tensor, w: &RecurrentWeights, call: &LayerCall) -> Result<RecurrentOutput> {
    use crate::ops::shape::transpose;
    let xt = if call.batch_first { transpose(x, 0, 1)? } else { x.clone() };
    let (b, h) = (xt.shape()[1], w.w_hh.shape().last().copied().unwrap_or(0));
    let zero = || Tensor::zeros(&[b, h], x.dtype())?.to(x.device());
    let h0 = match call.h0 {
        Some(h0) => h0.clone(),
        None => zero()?,
    };
    let c0 = match (kind.has_c(), call.c0) {
        (true, Some(c0)) => Some(c0.clone()),
        (true, None) => Some(zero()?),
        (false, c0) => c0.cloned(),
    };
    let plain = LayerCall { h0: Some(&h0), c0: c0.as_ref(), batch_first: false, ..*call };
    let mut out = recurrent_layer_call(kind, &xt, w, &plain)?;
    if call.batch_first {
        out.y = transpose(&out.y, 0, 1)?;
    }
    Ok(out)
}

fn inputs_require_grad(x: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>, w: &RecurrentWeights) -> bool {
    [Some(x), h0, c0, Some(w.w_ih), Some(w.w_hh), w.b_ih, w.b_hh].into_iter().flatten().any(|t| t.requires_grad())
}

pub(crate) struct RecurrentForward {
    pub(crate) plan: Plan,
}

/// Whether float32 runs the persistent-team engine (`rnn_fast.rs`); the generic loop below is
/// the reference it is tested against (and float64's path).
static FAST_F32: AtomicBool = AtomicBool::new(true);

/// Switches float32 between the team engine (default) and the generic per-step loop, for
/// before/after measurements in one process (`examples/rnn_steps.rs`). Process-wide.
#[doc(hidden)]
pub fn set_fast_f32_engine(on: bool) {
    FAST_F32.store(on, Ordering::Relaxed);
}

/// Overrides when float32 runs its time loop on a team and with how many slots (0: one per pool
/// thread); results do not depend on either. For tests; process-wide.
#[doc(hidden)]
pub fn set_team_limits(min_step_macs: usize, max_slots: usize) {
    rnn_fast::set_team_limits(min_step_macs, max_slots)
}

/// Overrides from how many batch rows the float32 team engine computes the input projection
/// inside its steps instead of before the loop (0: always; `usize::MAX`: never). For tests;
/// process-wide.
#[doc(hidden)]
pub fn set_step_input_min_rows(rows: usize) {
    rnn_fast::set_step_input_min_rows(rows)
}

/// Overrides from how many batch rows per lane the float32 team engine shares a call out by
/// rows (lanes: each runner takes rows through every step) instead of by hidden units
/// (`usize::MAX`: never); results do not depend on it. Returns the value it replaces, to put
/// back. For tests and measurements; process-wide.
#[doc(hidden)]
pub fn set_lane_min_rows(rows: usize) -> usize {
    rnn_fast::set_lane_min_rows(rows)
}

/// `v` as f32 when T is f32 (the loops are generic; the team engine is f32 only).
fn f32s<T: Float>(v: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32, checked by its TypeId.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) })
}

fn f32s_mut<T: Float>(v: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: as `f32s`.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) })
}

fn use_fast<T: Float>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>() && FAST_F32.load(Ordering::Relaxed)
}

/// A buffer of `n` values for a loop or GEMM that writes all of them (`whole`: stale values
/// from the pool), or only some (zeros).
fn out_buf<T: Float>(n: usize, whole: bool) -> Vec<T> {
    if whole {
        crate::pool::take(n)
    } else {
        crate::pool::zeros(n)
    }
}

/// Copies `bias` into every row of `dst` ([rows, n]); the GEMM then accumulates onto it.
fn fill_rows<T: Float>(dst: &mut [T], bias: &[T]) {
    for row in dst.chunks_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// The storages of a forward call's weights, for the team engine's packed-weights cache.
#[derive(Clone, Copy)]
pub(crate) struct WeightSources<'a> {
    w_ih: &'a Arc<CpuStorage>,
    w_hh: &'a Arc<CpuStorage>,
}

/// Rows of n values moved between the caller's layout (row `p.row(t, r)`) and processing order
/// (row s·B + r): to processing order, or back to the caller's when `to_time`. Rows past their
/// length are zero.
fn reorder_rows<T: Float>(p: &Plan, src: &[T], n: usize, to_time: bool) -> Vec<T> {
    let (t, b) = (p.t, p.b);
    let mut dst = crate::pool::zeros(t * b * n);
    for s in 0..t {
        for r in 0..b {
            if let Some(tt) = p.time_of(s, r) {
                let (from, to) = if to_time { (s * b + r, p.row(tt, r)) } else { (p.row(tt, r), s * b + r) };
                dst[to * n..][..n].copy_from_slice(&src[from * n..][..n]);
            }
        }
    }
    dst
}

/// x [T, B, I] in processing order (borrowed when that is its layout).
fn in_processing_order<'a, T: Float>(p: &Plan, x: &'a [T], i: usize) -> std::borrow::Cow<'a, [T]> {
    if p.identity_order() {
        std::borrow::Cow::Borrowed(x)
    } else {
        std::borrow::Cow::Owned(reorder_rows(p, x, i, false))
    }
}

fn forward_cpu<T: Float, C: Cell>(
    cell: &C, p: &Plan, inp: &[&CpuStorage], w_src: Option<WeightSources>,
) -> Result<Vec<CpuStorage>> {
    let (t, b, i, h, g) = (p.t, p.b, p.i, p.h, p.g());
    let gh = g * h;
    let mut taken = 0;
    let mut next = || {
        taken += 1;
        T::view(inp[taken - 1])
    };
    let x = next();
    let h0 = if p.has_h0 { Some(next()) } else { None };
    let c0 = if p.has_c0 { Some(next()) } else { None };
    let w_ih = next();
    let w_hh = next();
    let (b_ih, b_hh) = if p.has_bias { (Some(next()), Some(next())) } else { (None, None) };

    // XP = X·W_ihᵀ + b_ih (+ b_hh when it folds): the hoisted input projection. The team
    // engine computes it itself, per chunk of units, and adds the bias as the cell reads it
    // (`rnn_fast::StepInput`).
    let fast = use_fast::<T>();
    let mut xp = vec![T::ZERO; if fast { 0 } else { t * b * gh }];
    let bias = b_ih.map(|bi| {
        let mut bias = bi.to_vec();
        if C::FOLD_HH_BIAS {
            for (v, &w) in bias.iter_mut().zip(b_hh.expect("both biases")) {
                *v += w;
            }
        }
        bias
    });
    if let (Some(bias), false) = (&bias, fast) {
        fill_rows(&mut xp, bias);
    }
    if !fast {
        gemm(t * b, gh, i, Mat::n(x, i), Mat::t(w_ih, i), &mut xp, gh, p.has_bias);
    }

    let ws_w = C::WS_BLOCKS * h;
    let hh_w = C::HH_BLOCKS * h;
    // Every row of y and WS is written while its sequence runs, and every row of H_prev: with
    // no row stopping early they need no zeroing (stale buffers from the pool).
    let whole = p.full_lengths();
    let mut y = out_buf(t * b * h, whole);
    let mut ws = if p.save { out_buf(t * b * ws_w, whole) } else { vec![T::ZERO; b * ws_w] };
    let mut hprev = out_buf(if p.save { t * b * h } else { 0 }, true);
    let mut hs = h0.map_or_else(|| vec![T::ZERO; b * h], |v| v.to_vec());
    // Unused by cells without c, but kept: it keeps the row zips uniform.
    let mut cs = c0.map_or_else(|| vec![T::ZERO; b * h], |v| v.to_vec());
    // Step buffers of the generic loop (the team keeps its own per runner).
    let mut hh = vec![T::ZERO; if fast { 0 } else { b * hh_w }];
    let mut mid = vec![T::ZERO; if C::HAS_MID && !fast { b * h } else { 0 }];
    // Work of one step's row pass, for the parallel threshold: its gate values.
    let work = b * gh;
    let hh_bias: Option<&[T]> = if C::FOLD_HH_BIAS { None } else { b_hh.map(|v| &v[..hh_w]) };

    if fast {
        fn f<T: Float>(v: &[T]) -> &[f32] {
            f32s(v).expect("f32")
        }
        // The steps read x in the caller's layout through strides: a batch-first x is not
        // gathered into time-major order first (in-process alternating: LSTM B = 16 H = 128
        // 0.96× the time, B = 4 0.96×, B = 64 H = 512 0.98×), nor is x reversed for a reverse
        // call over full lengths. With lengths, a reverse call's rows start at different
        // times: gathered.
        let in_place = !p.reverse || p.full_lengths();
        let (x_steps, step_stride, row_stride) = match (in_place, p.batch_first) {
            (true, true) => (std::borrow::Cow::Borrowed(x), i, t * i),
            (true, false) => (std::borrow::Cow::Borrowed(x), b * i, i),
            (false, _) => (in_processing_order(p, x, i), b * i, i),
        };
        let reversed = p.reverse && in_place;
        let w_ih_src = w_src.map(|w| w.w_ih);
        let input = StepInput { x: f(&x_steps), step_stride, row_stride, reversed, i, w_ih: f(w_ih), w_ih_src };
        let io = FwdIo {
            input,
            xp_bias: bias.as_deref().map(f),
            w_hh: f(w_hh),
            w_hh_src: w_src.map(|w| w.w_hh),
            hh_bias: hh_bias.map(f),
            y: f32s_mut(&mut y).expect("f32"),
            ws: f32s_mut(&mut ws).expect("f32"),
            hprev: f32s_mut(&mut hprev).expect("f32"),
            hs: f32s_mut(&mut hs).expect("f32"),
            cs: f32s_mut(&mut cs).expect("f32"),
        };
        rnn_fast::forward_steps(cell, p, io);
        if let std::borrow::Cow::Owned(v) = x_steps {
            crate::pool::release(v);
        }
    } else {
        for s in 0..t {
            if p.save {
                hprev[s * b * h..(s + 1) * b * h].copy_from_slice(&hs);
            }
            if let Some(bias) = hh_bias {
                fill_rows(&mut hh, bias);
            }
            gemm(b, hh_w, h, Mat::n(&hs, h), Mat::t(&w_hh[..hh_w * h], h), &mut hh, hh_w, hh_bias.is_some());
            let ws_s = if p.save { &mut ws[s * b * ws_w..(s + 1) * b * ws_w] } else { &mut ws[..] };
            let rows = indexed(((rows_mut(&mut hs, h), rows_mut(&mut cs, h)), rows_mut(ws_s, ws_w)));
            par::for_each(work, PAR_MIN_FUSED, rows, |(r, ((hr, cr), wr))| {
                if let Some(tt) = p.time_of(s, r) {
                    let xr = &xp[p.row(tt, r) * gh..][..gh];
                    let mut wr = BlocksMut::new(wr, C::WS_BLOCKS, h, h);
                    cell.fwd(
                        h,
                        Proj { xp: Blocks::new(xr, h, h), bias: None },
                        Blocks::new(&hh[r * hh_w..][..hh_w], h, h),
                        hr,
                        cr,
                        &mut wr,
                    );
                }
            });
            if C::HAS_MID {
                let off = C::MID_WS_BLOCK * h;
                gemm(b, h, h, Mat::n(&ws_s[off..], ws_w), Mat::t(&w_hh[hh_w * h..], h), &mut mid, h, false);
                let rows = indexed((rows_mut(&mut hs, h), rows_mut(ws_s, ws_w)));
                par::for_each(work, PAR_MIN_FUSED, rows, |(r, (hr, wr))| {
                    if let Some(tt) = p.time_of(s, r) {
                        let xr = Proj { xp: Blocks::new(&xp[p.row(tt, r) * gh..][..gh], h, h), bias: None };
                        cell.fwd_mid(h, xr, &mid[r * h..][..h], hr, &mut BlocksMut::new(wr, C::WS_BLOCKS, h, h));
                    }
                });
            }
            for r in 0..b {
                if let Some(tt) = p.time_of(s, r) {
                    y[p.row(tt, r) * h..][..h].copy_from_slice(&hs[r * h..][..h]);
                }
            }
        }
    }
    let mut out = vec![T::wrap(y), T::wrap(hs)];
    if C::HAS_C {
        out.push(T::wrap(cs));
    }
    if p.save {
        out.push(T::wrap(ws));
        out.push(T::wrap(hprev));
    }
    Ok(out)
}

fn forward_typed<T: Float>(p: &Plan, inp: &[&CpuStorage], w_src: Option<WeightSources>) -> Result<Vec<CpuStorage>> {
    with_cell!(p.kind, |cell| forward_cpu::<T, _>(cell, p, inp, w_src))
}

impl Op for RecurrentForward {
    fn name(&self) -> &'static str {
        self.plan.kind.op_name()
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), inp[0].dtype(), forward_typed(&self.plan, inp, None))
    }
    /// As `cpu`, handing the weights' storages to the team engine, which keeps their packed
    /// form for the next call on the same weights.
    fn cpu_shared(&self, inp: &[&Arc<CpuStorage>]) -> Result<Vec<CpuStorage>> {
        let at = self.plan.weights_at();
        let w_src = WeightSources { w_ih: inp[at], w_hh: inp[at + 1] };
        let plain: Vec<&CpuStorage> = inp.iter().map(|a| &***a).collect();
        dispatch_float!(self.name(), plain[0].dtype(), forward_typed(&self.plan, &plain, Some(w_src)))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        with_cell!(self.plan.kind, |cell| forward_gpu(cell, &self.plan, be, x))
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let (op, inputs, specs) = self.backward_op(ctx, grads);
        let need_dx = op.need_dx;
        let inputs: Vec<&Tensor> = inputs.iter().collect();
        let outs = apply(Arc::new(op), &inputs, specs)?;
        Ok(self.input_grads(need_dx, outs))
    }
}

/// What a backward op is built from: the op, its inputs, its outputs' shapes.
pub(crate) type BackwardParts = (RecurrentBackward, Vec<Tensor>, Specs);

impl RecurrentForward {
    /// The backward op of this call, its inputs and output specs (for `backward`, and for a
    /// pair of directions that runs two at once, `rnn_pair.rs`).
    pub(crate) fn backward_op(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> BackwardParts {
        let p = &self.plan;
        let has_c = p.kind.has_c();
        let n_state = if has_c { 3 } else { 2 };
        let (ws, hprev) = (&ctx.outputs[n_state], &ctx.outputs[n_state + 1]);
        let x = &ctx.inputs[0];
        let w_off = p.weights_at();
        let (w_ih, w_hh) = (&ctx.inputs[w_off], &ctx.inputs[w_off + 1]);
        let mut inputs: Vec<Tensor> = vec![x.clone(), w_ih.clone(), w_hh.clone(), ws.clone(), hprev.clone()];
        let present: Vec<bool> = grads[..n_state].iter().map(|g| g.is_some()).collect();
        inputs.extend(grads[..n_state].iter().flatten().cloned());
        let dt = x.dtype();
        let (t, b, i, h, gh) = (p.t, p.b, p.i, p.h, p.g() * p.h);
        // dX only when x wants it: a first layer's input is data, and its dX is a GEMM as large
        // as the input projection's.
        let need_dx = ctx.needs_grad[0];
        let x_shape = if p.batch_first { vec![b, t, i] } else { vec![t, b, i] };
        let mut specs = if need_dx { vec![(x_shape, dt)] } else { vec![] };
        specs.push((vec![b, h], dt));
        if has_c {
            specs.push((vec![b, h], dt));
        }
        specs.push((vec![gh, i], dt));
        specs.push((vec![gh, h], dt));
        if p.has_bias {
            specs.push((vec![gh], dt));
            specs.push((vec![gh], dt));
        }
        (RecurrentBackward { plan: p.clone(), present, need_dx }, inputs, specs)
    }

    /// The backward op's outputs as one gradient per forward input: the initial states' only
    /// where they were inputs.
    pub(crate) fn input_grads(&self, need_dx: bool, outs: Vec<Tensor>) -> Vec<Option<Tensor>> {
        let p = &self.plan;
        let mut outs = outs.into_iter();
        let mut grads: Vec<Option<Tensor>> = vec![if need_dx { outs.next() } else { None }];
        let dh0 = outs.next();
        if p.has_h0 {
            grads.push(dh0);
        }
        if p.kind.has_c() {
            let dc0 = outs.next();
            if p.has_c0 {
                grads.push(dc0);
            }
        }
        grads.extend(outs.map(Some));
        grads
    }
}

pub(crate) struct RecurrentBackward {
    pub(crate) plan: Plan,
    /// Which of dy, dh_T (, dc_T) were given; absent ones are zero.
    pub(crate) present: Vec<bool>,
    /// Whether dX is an output (the first).
    pub(crate) need_dx: bool,
}

/// Column sums of a [rows, n] matrix (the bias gradients: DG summed over time and batch), each
/// block of columns by one task, adding the rows in order. A GEMM with a ones vector, as before,
/// made the GEMM crate pack a copy of all of DG first; this reads it once, and the sums are the
/// same whatever the split.
fn column_sums<T: Float>(m: &[T], rows: usize, n: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; n];
    // 256 columns keep the accumulators in L1 and give a G·H ≥ 512 layer a task per thread.
    let block = n.clamp(1, 256);
    par::for_each(rows * n, PAR_MIN_ELEMS, indexed(rows_mut(&mut out, block)), |(k, acc)| {
        let c0 = k * block;
        for row in m.chunks_exact(n).take(rows) {
            let len = acc.len();
            for (a, &v) in acc.iter_mut().zip(&row[c0..c0 + len]) {
                *a += v;
            }
        }
    });
    out
}

fn backward_cpu<T: Float, C: Cell>(cell: &C, rb: &RecurrentBackward, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let p = &rb.plan;
    let (t, b, i, h, g) = (p.t, p.b, p.i, p.h, p.g());
    let gh = g * h;
    let (x, w_ih, w_hh, ws, hprev) =
        (T::view(inp[0]), T::view(inp[1]), T::view(inp[2]), T::view(inp[3]), T::view(inp[4]));
    let mut taken = 5;
    let mut grad = |present: bool| {
        if present {
            taken += 1;
            Some(T::view(inp[taken - 1]))
        } else {
            None
        }
    };
    let dy = grad(rb.present[0]);
    let dh_t = grad(rb.present[1]);
    let dc_t = if C::HAS_C { grad(rb.present[2]) } else { None };

    let ws_w = C::WS_BLOCKS * h;
    let hh_w = C::HH_BLOCKS * h;
    let mut dh = dh_t.map(|v| v.to_vec()).unwrap_or_else(|| vec![T::ZERO; b * h]);
    let mut dc = dc_t.map(|v| v.to_vec()).unwrap_or_else(|| vec![T::ZERO; b * h]);
    // Both in processing order [s, b, G·H]; every row is written while its sequence runs.
    let whole = p.full_lengths();
    let mut dg = out_buf(t * b * gh, whole);
    // DXP, where it differs from DG; the generic loop keeps one either way, for its row zips.
    let fast = use_fast::<T>();
    let mut dxp = out_buf(if fast && C::DXP_IS_DG { 0 } else { t * b * gh }, whole);
    let mut dmid = vec![T::ZERO; if C::HAS_MID && !fast { b * h } else { 0 }];
    let work = b * gh;

    if fast {
        fn f<T: Float>(v: &[T]) -> &[f32] {
            f32s(v).expect("f32")
        }
        let io = BwdIo {
            w_hh: f(w_hh),
            ws: f(ws),
            hprev: f(hprev),
            dy: dy.map(f),
            dh: f32s_mut(&mut dh).expect("f32"),
            dc: f32s_mut(&mut dc).expect("f32"),
            dg: f32s_mut(&mut dg).expect("f32"),
            dxp: f32s_mut(&mut dxp).expect("f32"),
        };
        rnn_fast::backward_steps(cell, p, io);
    } else {
        for s in (0..t).rev() {
            if let Some(dy) = dy {
                for r in 0..b {
                    if let Some(tt) = p.time_of(s, r) {
                        let src = &dy[p.row(tt, r) * h..][..h];
                        for (d, &v) in dh[r * h..][..h].iter_mut().zip(src) {
                            *d += v;
                        }
                    }
                }
            }
            let span = s * b * gh..(s + 1) * b * gh;
            let (dg_s, dxp_s) = (&mut dg[span.clone()], &mut dxp[span]);
            let ws_s = &ws[s * b * ws_w..(s + 1) * b * ws_w];
            let hp_s = &hprev[s * b * h..(s + 1) * b * h];
            let rows =
                indexed((((rows_mut(&mut dh, h), rows_mut(&mut dc, h)), rows_mut(dg_s, gh)), rows_mut(dxp_s, gh)));
            par::for_each(work, PAR_MIN_FUSED, rows, |(r, (((dhr, dcr), dgr), dxr))| {
                if p.time_of(s, r).is_some() {
                    let ws_r = Blocks::new(&ws_s[r * ws_w..][..ws_w], h, h);
                    let (mut dgr, mut dxr) = (BlocksMut::new(dgr, g, h, h), BlocksMut::new(dxr, g, h, h));
                    cell.bwd(h, &hp_s[r * h..][..h], ws_r, dhr, dcr, &mut dgr, &mut dxr);
                }
            });
            if C::HAS_MID {
                gemm(b, h, h, Mat::n(&dg_s[hh_w..], gh), Mat::n(&w_hh[hh_w * h..], h), &mut dmid, h, false);
                let rows = indexed(((rows_mut(&mut dh, h), rows_mut(dg_s, gh)), rows_mut(dxp_s, gh)));
                par::for_each(work, PAR_MIN_FUSED, rows, |(r, ((dhr, dgr), dxr))| {
                    if p.time_of(s, r).is_some() {
                        let (hp, wr, dm) = (&hp_s[r * h..][..h], &ws_s[r * ws_w..][..ws_w], &dmid[r * h..][..h]);
                        let (mut dgr, mut dxr) = (BlocksMut::new(dgr, g, h, h), BlocksMut::new(dxr, g, h, h));
                        cell.bwd_mid(h, hp, Blocks::new(wr, h, h), dm, dhr, &mut dgr, &mut dxr);
                    }
                });
            }
            // dh_prev = direct part + dG_s·W_hh (the rows of W_hh that multiplied h)
            gemm(b, h, hh_w, Mat::n(dg_s, gh), Mat::n(&w_hh[..hh_w * h], h), &mut dh, h, true);
        }
    }

    // X in processing order, so that one GEMM covers every step.
    let x_proc_buf = in_processing_order(p, x, i);
    let x_proc: &[T] = &x_proc_buf;
    let dxp_buf = dxp;
    let dxp: &[T] = if C::DXP_IS_DG { &dg } else { &dxp_buf };
    // The weight gradients, sums over every step, in one batch (they overwrite their outputs).
    let mut dw_ih = out_buf(gh * i, true);
    let mut dw_hh = out_buf(gh * h, true);
    let (dw_hh_h, dw_hh_mid) = dw_hh.split_at_mut(hh_w * h);
    let tb = t * b;
    let mut products = vec![
        Product {
            m: gh,
            n: i,
            k: tb,
            a: Mat::t(dxp, gh),
            b: Mat::n(x_proc, i),
            c: &mut dw_ih,
            ldc: i,
            accumulate: false,
        },
        Product {
            m: hh_w,
            n: h,
            k: tb,
            a: Mat::t(&dg, gh),
            b: Mat::n(hprev, h),
            c: dw_hh_h,
            ldc: h,
            accumulate: false,
        },
    ];
    if C::HAS_MID {
        let (a, b) = (Mat::t(&dg[hh_w..], gh), Mat::n(&ws[C::MID_WS_BLOCK * h..], ws_w));
        products.push(Product { m: gh - hh_w, n: h, k: tb, a, b, c: dw_hh_mid, ldc: h, accumulate: false });
    }
    // dX = dXP · W_ih, in the same batch.
    let mut dx_proc = out_buf(if rb.need_dx { tb * i } else { 0 }, true);
    if rb.need_dx {
        let (a, b) = (Mat::n(dxp, gh), Mat::n(w_ih, i));
        products.push(Product { m: tb, n: i, k: gh, a, b, c: &mut dx_proc, ldc: i, accumulate: false });
    }
    gemm_batch(products);
    let mut out = vec![];
    if rb.need_dx {
        let dx = if p.identity_order() {
            dx_proc
        } else {
            let dx = reorder_rows(p, &dx_proc, i, true);
            crate::pool::release(dx_proc);
            dx
        };
        out.push(T::wrap(dx));
    }
    out.push(T::wrap(dh));
    if C::HAS_C {
        out.push(T::wrap(dc));
    }
    out.push(T::wrap(dw_ih));
    out.push(T::wrap(dw_hh));
    if p.has_bias {
        let db_hh = column_sums(&dg, t * b, gh);
        out.push(T::wrap(if C::DXP_IS_DG { db_hh.clone() } else { column_sums(dxp, t * b, gh) }));
        out.push(T::wrap(db_hh));
    }
    // The step buffers go back to the pool: DG alone is 6.5 MB at LSTM B=32 T=50 H=256, and
    // made fresh on every call its pages faulted in again (~1 ms of a 12 ms training step).
    crate::pool::release(dg);
    crate::pool::release(dxp_buf);
    if let std::borrow::Cow::Owned(v) = x_proc_buf {
        crate::pool::release(v);
    }
    Ok(out)
}

fn backward_typed<T: Float>(rb: &RecurrentBackward, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    with_cell!(rb.plan.kind, |cell| backward_cpu::<T, _>(cell, rb, inp))
}

impl Op for RecurrentBackward {
    fn name(&self) -> &'static str {
        match self.plan.kind {
            CellKind::RnnTanh | CellKind::RnnRelu => "rnnBackward",
            CellKind::Lstm => "lstmBackward",
            CellKind::Gru | CellKind::GruResetBefore => "gruBackward",
        }
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), inp[0].dtype(), backward_typed(self, inp))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        with_cell!(self.plan.kind, |cell| backward_gpu(cell, self, be, x))
    }
}
