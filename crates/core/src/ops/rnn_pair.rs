//! Both directions of a bidirectional layer as one op on the CPU: the forward and the reverse
//! loop run at once, each on a thread of its own, instead of one after the other on a team of
//! all threads. Two independent loops need no barrier between threads at every step (the
//! team's main overhead: ~10% of an LSTM step at B = 32 on two cores whose speeds differ), and
//! each direction's weights stay in one core's cache. The backward pass pairs the same way.
//!
//! Each half is exactly the single-direction op (`rnn.rs`: same plan, same loops, same bits:
//! results do not depend on the number of runners), so the pair only splits its inputs and
//! joins its outputs; x, shared by both, gets the sum of both halves' gradients.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::error::{Error, Result};
use crate::ops::rnn::{
    checked_plan, forward_parts, recurrent_layer_call, CellKind, LayerCall, RecurrentBackward, RecurrentForward,
    RecurrentOutput, RecurrentWeights,
};
use crate::ops::rnn_fast::with_one_runner;
use crate::storage::CpuStorage;
use crate::tensor::{Device, Tensor};
use std::sync::Arc;

/// Both directions of one layer over the same x: `calls[0]` must run forward and `calls[1]` in
/// reverse, with the same lengths and layout. On the CPU with two or more pool threads, one op
/// running both loops at once; otherwise the two single-direction calls.
pub fn recurrent_layer_pair(
    kind: CellKind, x: &Tensor, w: [&RecurrentWeights; 2], calls: [&LayerCall; 2],
) -> Result<[RecurrentOutput; 2]> {
    let op = kind.op_name();
    if calls[0].reverse || !calls[1].reverse {
        return Err(Error::value(op, "a pair of directions is a forward call then a reverse one"));
    }
    if calls[0].batch_first != calls[1].batch_first || calls[0].lengths != calls[1].lengths {
        return Err(Error::value(op, "both directions of a pair take the same layout and lengths"));
    }
    if x.device() != Device::Cpu || x.dims() != 3 || rayon::current_num_threads() < 2 {
        return Ok([recurrent_layer_call(kind, x, w[0], calls[0])?, recurrent_layer_call(kind, x, w[1], calls[1])?]);
    }
    let plans = [checked_plan(kind, x, w[0], calls[0])?, checked_plan(kind, x, w[1], calls[1])?];
    let [pf, pb] = plans;
    let (f, in_f, spec_f) = forward_parts(pf, x, calls[0].h0, calls[0].c0, w[0]);
    let (b, in_b, spec_b) = forward_parts(pb, x, calls[1].h0, calls[1].c0, w[1]);
    let split = Split { f_in: in_f.len(), f_out: spec_f.len() };
    // x once, then each half's other inputs.
    let inputs: Vec<&Tensor> = in_f.iter().copied().chain(in_b[1..].iter().copied()).collect();
    let specs = spec_f.into_iter().chain(spec_b).collect();
    let mut outs = apply(Arc::new(PairForward { f, b, split }), &inputs, specs)?;
    let back = outs.split_off(split.f_out);
    Ok([RecurrentOutput::from_outputs(kind, outs), RecurrentOutput::from_outputs(kind, back)])
}

/// Where the forward half's inputs (x included) and outputs end.
#[derive(Clone, Copy)]
struct Split {
    f_in: usize,
    f_out: usize,
}

impl Split {
    /// Each half's inputs from the pair's: x, then its own.
    fn inputs<T: Copy>(&self, all: &[T]) -> [Vec<T>; 2] {
        let f = all[..self.f_in].to_vec();
        let b = std::iter::once(all[0]).chain(all[self.f_in..].iter().copied()).collect();
        [f, b]
    }
}

/// Runs the two halves at once, each alone on its thread.
fn both<R: Send>(f: impl FnOnce() -> R + Send, b: impl FnOnce() -> R + Send) -> (R, R) {
    rayon::join(|| with_one_runner(f), || with_one_runner(b))
}

fn joined(r: (Result<Vec<CpuStorage>>, Result<Vec<CpuStorage>>)) -> Result<Vec<CpuStorage>> {
    let (mut f, b) = (r.0?, r.1?);
    f.extend(b);
    Ok(f)
}

struct PairForward {
    f: RecurrentForward,
    b: RecurrentForward,
    split: Split,
}

impl Op for PairForward {
    fn name(&self) -> &'static str {
        self.f.name()
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        let [fi, bi] = self.split.inputs(inp);
        joined(both(|| self.f.cpu(&fi), || self.b.cpu(&bi)))
    }
    fn cpu_shared(&self, inp: &[&Arc<CpuStorage>]) -> Result<Vec<CpuStorage>> {
        let [fi, bi] = self.split.inputs(inp);
        joined(both(|| self.f.cpu_shared(&fi), || self.b.cpu_shared(&bi)))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        // Not built for device inputs (`recurrent_layer_pair` makes two calls there); correct
        // regardless, one half after the other.
        let [fi, bi] = self.split.inputs(x);
        let mut out = self.f.gpu(be, &fi)?;
        out.extend(self.b.gpu(be, &bi)?);
        Ok(out)
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let s = self.split;
        let [in_f, in_b] = s.inputs(&ctx.inputs.iter().collect::<Vec<_>>());
        let [ng_f, ng_b] = s.inputs(&ctx.needs_grad);
        let half = |inputs: Vec<&Tensor>, outputs: &[Tensor], needs_grad: Vec<bool>| BackwardCtx {
            inputs: inputs.into_iter().cloned().collect(),
            outputs: outputs.to_vec(),
            needs_grad,
        };
        let ctx_f = half(in_f, &ctx.outputs[..s.f_out], ng_f);
        let ctx_b = half(in_b, &ctx.outputs[s.f_out..], ng_b);
        let (op_f, inputs_f, specs_f) = self.f.backward_op(&ctx_f, &grads[..s.f_out]);
        let (op_b, inputs_b, specs_b) = self.b.backward_op(&ctx_b, &grads[s.f_out..]);
        let (need_f, need_b) = (op_f.need_dx, op_b.need_dx);
        let bsplit = Split { f_in: inputs_f.len(), f_out: specs_f.len() };
        // Both backward ops' inputs in full (x appears in each), then their outputs.
        let inputs: Vec<&Tensor> = inputs_f.iter().chain(&inputs_b).collect();
        let specs = specs_f.into_iter().chain(specs_b).collect();
        let mut outs = apply(Arc::new(PairBackward { f: op_f, b: op_b, f_in: bsplit.f_in }), &inputs, specs)?;
        let outs_b = outs.split_off(bsplit.f_out);
        let mut gf = self.f.input_grads(need_f, outs);
        let gb = self.b.input_grads(need_b, outs_b);
        // x is the first input of both halves: its gradient is the sum; the rest follow in order.
        let mut gb = gb.into_iter();
        let dx_b = gb.next().flatten();
        gf[0] = match (gf[0].take(), dx_b) {
            (Some(a), Some(b)) => Some(crate::ops::elementwise::add(&a, &b)?),
            (a, b) => a.or(b),
        };
        gf.extend(gb);
        Ok(gf)
    }
}

struct PairBackward {
    f: RecurrentBackward,
    b: RecurrentBackward,
    /// Inputs of the forward half's backward.
    f_in: usize,
}

impl Op for PairBackward {
    fn name(&self) -> &'static str {
        self.f.name()
    }
    fn cpu(&self, inp: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        let (fi, bi) = inp.split_at(self.f_in);
        joined(both(|| self.f.cpu(fi), || self.b.cpu(bi)))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let (fi, bi) = x.split_at(self.f_in);
        let mut out = self.f.gpu(be, fi)?;
        out.extend(self.b.gpu(be, bi)?);
        Ok(out)
    }
}
