//! The device side of the recurrent op (`rnn.rs`): the same loop as the CPU's, through the
//! [`GpuBackend`] trait. Forward: one GEMM for the input projection over all steps; per step one
//! recurrent GEMM and the cell's fused step (a cell with a mid-step GEMM adds that GEMM and its
//! second half). Backward: per step the cell's fused step and one GEMM (dh += dG · W_hh); the
//! weight gradients are single GEMMs over all T·B rows, the bias gradients GEMMs with a ones
//! vector. Loop kernels: `kernels/rnn.cu`; cells: `lstm.cu`, `gru.cu` (their [`DeviceCell`]
//! impls live beside their CPU cells).

use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::error::Result;
use crate::launch::{self, buf, flag, int, kernels as k, mat_n, mat_t, Buf};
use crate::ops::rnn::{Cell, Plan, RecurrentBackward};
use crate::storage::{CpuStorage, DType};

/// The device half of a cell: one step over all B rows as fused kernels (`kernels/<cell>.cu`,
/// B·H threads each), launched by the device loop between its GEMMs with the same contract as
/// [`Cell`]. Unlike the CPU rows, the kernels see the whole step, so they skip rows past their
/// length themselves (`lengths`, `s`, `reverse`), save h_prev and write y (forward), and add dy
/// (backward).
pub(crate) trait DeviceCell: Cell {
    /// The step, or for a cell with a mid-step GEMM its first half.
    fn launch_fwd(&self, be: &dyn GpuBackend, a: &FwdStep) -> Result<()>;
    /// The second half, after the loop's `mid = ws[MID_WS_BLOCK] · W_hh[mid]ᵀ` (HAS_MID only).
    fn launch_fwd_mid(&self, _be: &dyn GpuBackend, _a: &FwdStep) -> Result<()> {
        Ok(())
    }
    /// The backward step, or for a cell with a mid-step GEMM its first half.
    fn launch_bwd(&self, be: &dyn GpuBackend, a: &BwdStep) -> Result<()>;
    /// The second half, after the loop's `dmid = dG[mid] · W_hh[mid]` (HAS_MID only).
    fn launch_bwd_mid(&self, _be: &dyn GpuBackend, _a: &BwdStep) -> Result<()> {
        Ok(())
    }
}

/// A device buffer from element `off` on: one step's part of a buffer saved for all steps.
#[derive(Clone, Copy)]
pub(crate) struct DevSlice<'a> {
    pub buf: &'a dyn DeviceBuffer,
    pub off: usize,
}

impl<'a> DevSlice<'a> {
    pub fn arg(self) -> KernelArg<'a> {
        KernelArg::Buf(self.buf, self.off)
    }
}

/// Everything a cell's forward step kernels may read or write at step `s` (the same for every
/// cell; each passes what its kernels take).
pub(crate) struct FwdStep<'a> {
    pub dt: DType,
    pub s: usize,
    pub b: usize,
    pub h: usize,
    pub reverse: bool,
    /// int32 [B], each row's length.
    pub lengths: &'a dyn DeviceBuffer,
    /// h [B, H], updated in place.
    pub hs: &'a dyn DeviceBuffer,
    /// c [B, H], updated in place (cells with HAS_C).
    pub cs: Option<&'a dyn DeviceBuffer>,
    /// This step's saved workspace [B, W·H] and previous state [B, H] (processing order).
    pub ws_s: DevSlice<'a>,
    pub hprev_s: DevSlice<'a>,
    /// y [T, B, H] (time order), written for rows still running.
    pub y: &'a dyn DeviceBuffer,
    /// The hoisted input projection [T, B, G·H] (time order) and this step's h·W_hhᵀ
    /// [B, HH_BLOCKS·H].
    pub xp: &'a dyn DeviceBuffer,
    pub hh: &'a dyn DeviceBuffer,
    /// b_hh [G·H] when it is not folded into xp (cells without FOLD_HH_BIAS) and given.
    pub b_hh: Option<&'a dyn DeviceBuffer>,
    /// The mid-step product [B, H] (cells with HAS_MID).
    pub mid: Option<&'a dyn DeviceBuffer>,
}

/// Everything a cell's backward step kernels may read or write at step `s`.
pub(crate) struct BwdStep<'a> {
    pub dt: DType,
    pub s: usize,
    pub b: usize,
    pub h: usize,
    pub reverse: bool,
    pub lengths: &'a dyn DeviceBuffer,
    /// dh [B, H] (and dc for HAS_C): the gradient of this step's output state on entry, the
    /// direct part of the previous state's on exit.
    pub dh: &'a dyn DeviceBuffer,
    pub dc: Option<&'a dyn DeviceBuffer>,
    /// This step's gate gradients, recurrent part dG and input part dXP [B, G·H], zero on entry.
    pub dg_s: DevSlice<'a>,
    pub dxp_s: DevSlice<'a>,
    pub ws_s: DevSlice<'a>,
    pub hprev_s: DevSlice<'a>,
    /// dy [T, B, H] (time order) when `has_dy`; otherwise any buffer (the kernels skip it).
    pub dy: &'a dyn DeviceBuffer,
    pub has_dy: bool,
    /// dG[mid] · W_hh[mid] [B, H] (cells with HAS_MID).
    pub dmid: Option<&'a dyn DeviceBuffer>,
}

/// Launches a step kernel over the step's B·H threads. Every step kernel takes the cell's own
/// buffers (`head`), then the same tail (lengths, s, b, h, reverse), then any cell flags (`extra`).
fn launch_step<'a, const N: usize, const E: usize>(
    be: &dyn GpuBackend, kernel: &k::Kernel, dt: DType,
    (lengths, s, b, h, reverse): (&'a dyn DeviceBuffer, usize, usize, usize, bool), head: [KernelArg<'a>; N],
    extra: [KernelArg<'a>; E],
) -> Result<()> {
    let tail = [buf(lengths), int(s), int(b), int(h), flag(reverse)];
    let args: Vec<KernelArg> = head.into_iter().chain(tail).chain(extra).collect();
    kernel.launch(be, dt, b * h, &args)
}

impl<'a> FwdStep<'a> {
    pub fn launch<const N: usize, const E: usize>(
        &self, be: &dyn GpuBackend, kernel: &k::Kernel, head: [KernelArg<'a>; N], extra: [KernelArg<'a>; E],
    ) -> Result<()> {
        launch_step(be, kernel, self.dt, (self.lengths, self.s, self.b, self.h, self.reverse), head, extra)
    }
}

impl<'a> BwdStep<'a> {
    pub fn launch<const N: usize, const E: usize>(
        &self, be: &dyn GpuBackend, kernel: &k::Kernel, head: [KernelArg<'a>; N], extra: [KernelArg<'a>; E],
    ) -> Result<()> {
        launch_step(be, kernel, self.dt, (self.lengths, self.s, self.b, self.h, self.reverse), head, extra)
    }
}

/// The device loop takes the plain form only: time-major, states given (`recurrent_layer_call`
/// wraps any other call in transposes and zero states before it reaches a device).
fn device_plan(p: &Plan) -> Result<()> {
    if p.batch_first || !p.has_h0 || (p.kind.has_c() && !p.has_c0) {
        return Err(crate::error::Error::internal(
            p.kind.op_name(),
            "a device recurrent call reached the loop batch-first or without its states",
        ));
    }
    Ok(())
}

fn upload_lengths(be: &dyn GpuBackend, p: &Plan) -> Result<Buf> {
    be.upload(&CpuStorage::new_i32(p.lengths.iter().map(|&l| l as i32).collect()))
}

pub(crate) fn forward_gpu<C: DeviceCell>(
    cell: &C, p: &Plan, be: &dyn GpuBackend, inp: &[&dyn DeviceBuffer],
) -> Result<Vec<Buf>> {
    let op = p.kind.op_name();
    let dt = inp[0].dtype();
    launch::float_only(op, dt)?;
    device_plan(p)?;
    let (t, b, i, h) = (p.t, p.b, p.i, p.h);
    let gh = C::G * h;
    let mut taken = 0;
    let mut next = || {
        taken += 1;
        inp[taken - 1]
    };
    let x = next();
    let h0 = next();
    let c0 = if C::HAS_C { Some(next()) } else { None };
    let w_ih = next();
    let w_hh = next();
    let (b_ih, b_hh) = if p.has_bias { (Some(next()), Some(next())) } else { (None, None) };
    let (ws_w, hh_w) = (C::WS_BLOCKS * h, C::HH_BLOCKS * h);
    let lengths = upload_lengths(be, p)?;

    // XP = X·W_ihᵀ + b_ih (+ b_hh when it folds), time order [t, b, G·H].
    let xp = be.alloc(dt, t * b * gh)?;
    if let (Some(bi), Some(bh)) = (b_ih, b_hh) {
        k::RNN_BIAS_ROWS.launch(
            be,
            dt,
            t * b * gh,
            &[buf(&*xp), buf(bi), buf(bh), int(t * b), int(gh), flag(C::FOLD_HH_BIAS)],
        )?;
    }
    be.gemm(t * b, gh, i, mat_n(x, 0, i), mat_t(w_ih, 0, i), &*xp, 0, gh, p.has_bias)?;

    // Zeroed: outputs past a row's length stay zero, and saved rows of finished sequences
    // must be finite (the weight-gradient GEMMs multiply them by zero gradients).
    let y = be.zeros(dt, t * b * h)?;
    let ws = be.zeros(dt, t * b * ws_w)?;
    let hprev = be.alloc(dt, t * b * h)?;
    let hs = launch::copy(be, h0)?;
    let cs = match c0 {
        Some(c) => Some(launch::copy(be, c)?),
        None => None,
    };
    let hh = be.alloc(dt, b * hh_w)?;
    let mid = if C::HAS_MID { Some(be.alloc(dt, b * h)?) } else { None };
    for s in 0..t {
        be.gemm(b, hh_w, h, mat_n(&*hs, 0, h), mat_t(w_hh, 0, h), &*hh, 0, hh_w, false)?;
        let step = FwdStep {
            dt,
            s,
            b,
            h,
            reverse: p.reverse,
            lengths: &*lengths,
            hs: &*hs,
            cs: cs.as_deref(),
            ws_s: DevSlice { buf: &*ws, off: s * b * ws_w },
            hprev_s: DevSlice { buf: &*hprev, off: s * b * h },
            y: &*y,
            xp: &*xp,
            hh: &*hh,
            b_hh: if C::FOLD_HH_BIAS { None } else { b_hh },
            mid: mid.as_deref(),
        };
        cell.launch_fwd(be, &step)?;
        if let Some(mid) = mid.as_deref() {
            let from = mat_n(&*ws, s * b * ws_w + C::MID_WS_BLOCK * h, ws_w);
            be.gemm(b, h, h, from, mat_t(w_hh, hh_w * h, h), mid, 0, h, false)?;
            cell.launch_fwd_mid(be, &step)?;
        }
    }
    let mut out = vec![y, hs];
    out.extend(cs);
    if p.save {
        out.push(ws);
        out.push(hprev);
    }
    Ok(out)
}

pub(crate) fn backward_gpu<C: DeviceCell>(
    cell: &C, rb: &RecurrentBackward, be: &dyn GpuBackend, inp: &[&dyn DeviceBuffer],
) -> Result<Vec<Buf>> {
    let p = &rb.plan;
    let op = p.kind.op_name();
    let dt = inp[0].dtype();
    launch::float_only(op, dt)?;
    device_plan(p)?;
    let (t, b, i, h) = (p.t, p.b, p.i, p.h);
    let gh = C::G * h;
    let (x, w_ih, w_hh, ws, hprev) = (inp[0], inp[1], inp[2], inp[3], inp[4]);
    let mut taken = 5;
    let mut grad = |present: bool| {
        if present {
            taken += 1;
            Some(inp[taken - 1])
        } else {
            None
        }
    };
    let dy = grad(rb.present[0]);
    let dh_t = grad(rb.present[1]);
    let dc_t = if C::HAS_C { grad(rb.present[2]) } else { None };
    let (ws_w, hh_w) = (C::WS_BLOCKS * h, C::HH_BLOCKS * h);
    let lengths = upload_lengths(be, p)?;
    let lens = &*lengths;
    let rev = p.reverse;

    let state = |given: Option<&dyn DeviceBuffer>| -> Result<Buf> {
        match given {
            Some(v) => launch::copy(be, v),
            None => be.zeros(dt, b * h),
        }
    };
    let dh = state(dh_t)?;
    let dc = if C::HAS_C { Some(state(dc_t)?) } else { None };
    // Processing order [s, b, G·H]; zero for rows past their length.
    let dg = be.zeros(dt, t * b * gh)?;
    let dxp = be.zeros(dt, t * b * gh)?;
    let dmid = if C::HAS_MID { Some(be.alloc(dt, b * h)?) } else { None };
    for s in (0..t).rev() {
        let og = s * b * gh;
        let step = BwdStep {
            dt,
            s,
            b,
            h,
            reverse: rev,
            lengths: lens,
            dh: &*dh,
            dc: dc.as_deref(),
            dg_s: DevSlice { buf: &*dg, off: og },
            dxp_s: DevSlice { buf: &*dxp, off: og },
            ws_s: DevSlice { buf: ws, off: s * b * ws_w },
            hprev_s: DevSlice { buf: hprev, off: s * b * h },
            dy: dy.unwrap_or(ws),
            has_dy: dy.is_some(),
            dmid: dmid.as_deref(),
        };
        cell.launch_bwd(be, &step)?;
        if let Some(dmid) = dmid.as_deref() {
            be.gemm(b, h, h, mat_n(&*dg, og + hh_w, gh), mat_n(w_hh, hh_w * h, h), dmid, 0, h, false)?;
            cell.launch_bwd_mid(be, &step)?;
        }
        // dh_prev = direct part + dG_s · W_hh (the rows of W_hh that multiplied h)
        be.gemm(b, h, hh_w, mat_n(&*dg, og, gh), mat_n(w_hh, 0, h), &*dh, 0, h, true)?;
    }

    // [T, B, I] between time order and processing order (`to_time`: back to time order).
    let reorder = |src: &dyn DeviceBuffer, to_time: bool| -> Result<std::sync::Arc<dyn DeviceBuffer>> {
        let dst = be.alloc(dt, t * b * i)?;
        k::RNN_TIME_GATHER.launch(
            be,
            dt,
            t * b * i,
            &[buf(&*dst), buf(src), buf(lens), int(t), int(b), int(i), flag(rev), flag(to_time)],
        )?;
        Ok(dst)
    };
    // X in processing order, so that one GEMM covers every step.
    let gathered;
    let x_proc: &dyn DeviceBuffer = if p.identity_order() {
        x
    } else {
        gathered = reorder(x, false)?;
        &*gathered
    };
    let dw_ih = be.alloc(dt, gh * i)?;
    be.gemm(gh, i, t * b, mat_t(&*dxp, 0, gh), mat_n(x_proc, 0, i), &*dw_ih, 0, i, false)?;
    let dw_hh = be.alloc(dt, gh * h)?;
    be.gemm(hh_w, h, t * b, mat_t(&*dg, 0, gh), mat_n(hprev, 0, h), &*dw_hh, 0, h, false)?;
    if C::HAS_MID {
        be.gemm(
            gh - hh_w,
            h,
            t * b,
            mat_t(&*dg, hh_w, gh),
            mat_n(ws, C::MID_WS_BLOCK * h, ws_w),
            &*dw_hh,
            hh_w * h,
            h,
            false,
        )?;
    }
    let mut out = vec![];
    if rb.need_dx {
        let dx_proc = be.alloc(dt, t * b * i)?;
        be.gemm(t * b, i, gh, mat_n(&*dxp, 0, gh), mat_n(w_ih, 0, i), &*dx_proc, 0, i, false)?;
        let dx = if p.identity_order() { dx_proc } else { reorder(&*dx_proc, true)? };
        out.push(dx);
    }
    out.push(dh);
    out.extend(dc);
    out.push(dw_ih);
    out.push(dw_hh);
    if p.has_bias {
        // Column sums of dXP and dG as GEMMs with a ones row.
        let ones = be.alloc(dt, t * b)?;
        launch::fill(be, &*ones, t * b, 1.0)?;
        for m in [&dxp, &dg] {
            let db = be.alloc(dt, gh)?;
            be.gemm(1, gh, t * b, mat_n(&*ones, 0, t * b), mat_n(&**m, 0, gh), &*db, 0, gh, false)?;
            out.push(db);
        }
    }
    Ok(out)
}
