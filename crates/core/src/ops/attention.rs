//! `attention`: score, length mask, softmax and context of one decoder step over a source
//! sequence, as one op with one fused backward (mirrors `kernels/attention.cu`).
//!
//! Shapes: B batch rows, S source positions, A score features, E value features.
//! - `query [B, A]`, `keys [S, B, A]`, `values [S, B, E]`, `v [A]` (additive only), `lengths [B]`.
//! - additive (Bahdanau): `e[b, s] = Σ_a v[a] · tanh(query[b, a] + keys[s, b, a])`;
//!   dot (Luong): `e[b, s] = Σ_a query[b, a] · keys[s, b, a]`.
//! - `weights[b, :] = softmax(e[b, :])` over `s < lengths[b]`, exactly 0 past it.
//! - `context[b, :] = Σ_s weights[b, s] · values[s, b, :]`.
//!
//! Both outputs are differentiable: the backward takes the gradients of `context` and of
//! `weights` (either may be absent) and gives those of query, keys, values and v in one pass,
//! reading the saved weights and recomputing `tanh` rather than keeping a `[S, B, A]` copy.
//! Sequence-major keys and values are the recurrent layers' output layout, so an encoder's
//! outputs feed the op without a transpose.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, indexed, items, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, flag, int, kernels as k};
use crate::ops::elementwise::dispatch_float;
use crate::ops::rnn::parse_lengths;
use crate::storage::{CpuStorage, DType};
use crate::tensor::{Device, Tensor};
use std::sync::Arc;

const OP: &str = "attention";
const GRAD_OP: &str = "attentionGrad";

/// How a query is scored against each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// Bahdanau: `v · tanh(query + key)`, with a learned `v [A]`.
    Additive,
    /// Luong: `query · key`.
    Dot,
}

impl Score {
    /// `'additive'` or `'dot'`.
    pub fn parse(s: &str) -> Result<Score> {
        match s {
            "additive" => Ok(Score::Additive),
            "dot" => Ok(Score::Dot),
            other => Err(Error::value(OP, format!("score must be 'additive' or 'dot', got '{other}'"))),
        }
    }
}

/// Per-row source lengths: an int32 tensor (kept on its device, checked when it can be read),
/// or plain numbers as JS gives them (checked at once, made into a tensor on query's device).
#[derive(Clone, Copy)]
pub enum Lengths<'a> {
    Tensor(&'a Tensor),
    Numbers(&'a [f64]),
}

/// What [`attention`] returns.
pub struct AttentionOutput {
    /// `[B, E]`
    pub context: Tensor,
    /// `[B, S]`, rows summing to 1, zero past each row's length.
    pub weights: Tensor,
}

#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    s: usize,
    a: usize,
    e: usize,
}

/// Every length an integer in [1, S] (the recurrent layers' rule and messages).
fn check_lengths(host: &[i32], s: usize) -> Result<()> {
    let raw: Vec<f64> = host.iter().map(|&l| l as f64).collect();
    parse_lengths(OP, &raw, s, host.len()).map(|_| ())
}

/// The lengths of the CPU paths: checked values, or S for every row.
fn host_lengths(d: Dims, lengths: Option<&CpuStorage>) -> Result<Vec<usize>> {
    match lengths {
        Some(l) => {
            let l = l.as_i32().expect("int32 lengths");
            check_lengths(l, d.s)?;
            Ok(l.iter().map(|&v| v as usize).collect())
        }
        None => Ok(vec![d.s; d.b]),
    }
}

fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    let mut acc = T::ZERO;
    for (&p, &q) in x.iter().zip(y) {
        acc += p * q;
    }
    acc
}

/// `tanh(q + k)` into `t` (vectorised for f32 by `tanh_slice`).
fn tanh_sum<T: Float>(t: &mut [T], q: &[T], k: &[T]) {
    for ((o, &p), &r) in t.iter_mut().zip(q).zip(k) {
        *o = p + r;
    }
    T::tanh_slice(t);
}

// ---------------------------------------------------------------------------------------------
// forward

#[derive(Clone, Copy)]
struct Attention {
    d: Dims,
    score: Score,
    has_len: bool,
}

impl Attention {
    /// Positions of v and lengths among the inputs.
    fn v_at(&self) -> Option<usize> {
        (self.score == Score::Additive).then_some(3)
    }
    fn len_at(&self) -> Option<usize> {
        self.has_len.then_some(3 + (self.score == Score::Additive) as usize)
    }
}

fn attention_cpu<T: Float>(op: &Attention, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let Dims { b, s, a, e } = op.d;
    let (q, keys, vals) = (T::view(x[0]), T::view(x[1]), T::view(x[2]));
    let v = op.v_at().map(|i| T::view(x[i]));
    let lens = host_lengths(op.d, op.len_at().map(|i| x[i]))?;
    let mut ctx = vec![T::ZERO; b * e];
    let mut w = vec![T::ZERO; b * s];
    // One task per batch row: its scores, softmax and context touch only its own output rows.
    let work = b * s * (a + e);
    let split = indexed((rows_mut(&mut ctx, e), (rows_mut(&mut w, s), items(&lens))));
    par::for_each(work, PAR_MIN_ELEMS, split, |(bi, (cr, (wr, &len)))| {
        let qr = &q[bi * a..(bi + 1) * a];
        let mut t = vec![T::ZERO; if v.is_some() { a } else { 0 }];
        for (si, o) in wr[..len].iter_mut().enumerate() {
            let kr = &keys[(si * b + bi) * a..][..a];
            *o = match v {
                Some(v) => {
                    tanh_sum(&mut t, qr, kr);
                    dot(v, &t)
                }
                None => dot(qr, kr),
            };
        }
        let m = wr[..len].iter().fold(wr[0], |acc, &y| acc.max(y));
        let mut sum = T::ZERO;
        for o in wr[..len].iter_mut() {
            *o = (*o - m).exp();
            sum += *o;
        }
        let r = T::ONE / sum;
        wr[..len].iter_mut().for_each(|o| *o *= r);
        for (si, &ws) in wr[..len].iter().enumerate() {
            let vr = &vals[(si * b + bi) * e..][..e];
            cr.iter_mut().zip(vr).for_each(|(c, &y)| *c += ws * y);
        }
    });
    Ok(vec![T::wrap(ctx), T::wrap(w)])
}

impl Op for Attention {
    fn name(&self) -> &'static str {
        OP
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(OP, x[0].dtype(), attention_cpu(self, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(OP, dt)?;
        let Dims { b, s, a, e } = self.d;
        let given = self.len_at().map(|i| x[i]);
        let made = full_lengths(be, self.d, given)?;
        let lens = made.as_deref().or(given).expect("lengths given or made");
        let v = self.v_at().map_or(x[0], |i| x[i]);
        let (ctx, w) = (be.alloc(dt, b * e)?, be.alloc(dt, b * s)?);
        let bad = be.zeros(DType::I32, 1)?;
        k::ATTENTION_FWD.launch(
            be,
            dt,
            b * launch::BLOCK,
            &[
                buf(&*ctx),
                buf(&*w),
                buf(x[0]),
                buf(x[1]),
                buf(x[2]),
                buf(v),
                buf(lens),
                buf(&*bad),
                int(b),
                int(s),
                int(a),
                int(e),
                flag(self.score == Score::Additive),
            ],
        )?;
        if let Some(i) = self.len_at() {
            // Bad lengths are clamped by the kernel and reported at the next read, with the
            // CPU's message.
            let report = move |h: &CpuStorage| check_lengths(h.as_i32().expect("int32 lengths"), s);
            launch::report_later(be, OP, bad, x[i], Box::new(report))?;
        }
        Ok(vec![ctx, w])
    }
    fn saves_outputs(&self) -> bool {
        true
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let inp = &ctx.inputs;
        let mut ins: Vec<&Tensor> = vec![&inp[0], &inp[1], &inp[2]];
        if let Some(i) = self.v_at() {
            ins.push(&inp[i]);
        }
        if let Some(i) = self.len_at() {
            ins.push(&inp[i]);
        }
        ins.push(&ctx.outputs[1]);
        let (gc, gw) = (grads[0].as_ref(), grads[1].as_ref());
        ins.extend(gc);
        ins.extend(gw);
        let dt = inp[0].dtype();
        let mut specs =
            vec![(inp[0].shape().to_vec(), dt), (inp[1].shape().to_vec(), dt), (inp[2].shape().to_vec(), dt)];
        if self.score == Score::Additive {
            specs.push((vec![self.d.a], dt));
        }
        let op = AttentionGrad { fwd: *self, has_gc: gc.is_some(), has_gw: gw.is_some() };
        let mut out: Vec<Option<Tensor>> = apply(Arc::new(op), &ins, specs)?.into_iter().map(Some).collect();
        if self.has_len {
            out.push(None);
        }
        Ok(out)
    }
}

/// Lengths of S for every row, for a device launch without lengths (the kernels always read
/// a lengths buffer).
fn full_lengths(be: &dyn GpuBackend, d: Dims, given: Option<&dyn DeviceBuffer>) -> Result<Option<launch::Buf>> {
    if given.is_some() {
        return Ok(None);
    }
    let l = be.alloc(DType::I32, d.b)?;
    launch::fill(be, &*l, d.b, d.s as f64)?;
    Ok(Some(l))
}

// ---------------------------------------------------------------------------------------------
// backward

/// With `g = ∂L/∂context` and `h = ∂L/∂weights` (each may be absent, i.e. zero):
/// - `u[b, s] = h[b, s] + g[b, :] · values[s, b, :]` (the gradient reaching the weights),
/// - `ge[b, s] = w[b, s] · (u[b, s] − Σ_s' w[b, s'] u[b, s'])` (through the softmax; 0 where
///   masked, since w is),
/// - `∂values[s, b, :] = w[b, s] · g[b, :]`,
/// - dot: `∂query[b] = Σ_s ge[b, s] keys[s, b]`, `∂keys[s, b] = ge[b, s] query[b]`;
/// - additive, `t = tanh(query[b] + keys[s, b])`: `∂keys[s, b] = ge[b, s] · v ⊙ (1 − t²)`,
///   `∂query[b] = Σ_s ∂keys[s, b]`, `∂v = Σ_{b, s} ge[b, s] · t`.
struct AttentionGrad {
    fwd: Attention,
    has_gc: bool,
    has_gw: bool,
}

impl AttentionGrad {
    /// Positions of the saved weights and the output gradients among the inputs.
    fn w_at(&self) -> usize {
        3 + (self.fwd.score == Score::Additive) as usize + self.fwd.has_len as usize
    }
    fn gc_at(&self) -> Option<usize> {
        self.has_gc.then_some(self.w_at() + 1)
    }
    fn gw_at(&self) -> Option<usize> {
        self.has_gw.then_some(self.w_at() + 1 + self.has_gc as usize)
    }
}

fn attention_grad_cpu<T: Float>(op: &AttentionGrad, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
    let Dims { b, s, a, e } = op.fwd.d;
    let (q, keys, vals) = (T::view(x[0]), T::view(x[1]), T::view(x[2]));
    let v = op.fwd.v_at().map(|i| T::view(x[i]));
    let lens = host_lengths(op.fwd.d, op.fwd.len_at().map(|i| x[i]))?;
    let w = T::view(x[op.w_at()]);
    let gc = op.gc_at().map(|i| T::view(x[i]));
    let gw = op.gw_at().map(|i| T::view(x[i]));

    // The score gradients, one task per batch row.
    let mut ge = vec![T::ZERO; b * s];
    par::for_each(b * s * e, PAR_MIN_ELEMS, indexed((rows_mut(&mut ge, s), items(&lens))), |(bi, (gr, &len))| {
        let wr = &w[bi * s..(bi + 1) * s];
        for (si, u) in gr[..len].iter_mut().enumerate() {
            let mut acc = gw.map_or(T::ZERO, |h| h[bi * s + si]);
            if let Some(g) = gc {
                acc += dot(&g[bi * e..(bi + 1) * e], &vals[(si * b + bi) * e..][..e]);
            }
            *u = acc;
        }
        let mean = dot(&wr[..len], &gr[..len]);
        gr[..len].iter_mut().zip(wr).for_each(|(u, &ws)| *u = ws * (*u - mean));
    });

    // Keys and values, one task per source position (a contiguous [B, ·] block of each);
    // additive scores also give that position's share of ∂v, summed below in a fixed order.
    let mut gk = vec![T::ZERO; s * b * a];
    let mut gvals = vec![T::ZERO; s * b * e];
    let work = s * b * (a + e);
    let split = indexed((rows_mut(&mut gk, b * a), rows_mut(&mut gvals, b * e)));
    let parts: Vec<Vec<T>> = par::map_collect(work, PAR_MIN_ELEMS, split, |(si, (gks, gvs))| {
        let mut gv_part = vec![T::ZERO; if v.is_some() { a } else { 0 }];
        let mut t = vec![T::ZERO; gv_part.len()];
        for bi in (0..b).filter(|&bi| si < lens[bi]) {
            let (ws, g) = (w[bi * s + si], ge[bi * s + si]);
            let gkr = &mut gks[bi * a..(bi + 1) * a];
            let qr = &q[bi * a..(bi + 1) * a];
            match v {
                Some(v) => {
                    tanh_sum(&mut t, qr, &keys[(si * b + bi) * a..][..a]);
                    for (((o, p), &tv), &vv) in gkr.iter_mut().zip(gv_part.iter_mut()).zip(&t).zip(v) {
                        *o = g * vv * (T::ONE - tv * tv);
                        *p += g * tv;
                    }
                }
                None => gkr.iter_mut().zip(qr).for_each(|(o, &qv)| *o = g * qv),
            }
            if let Some(gc) = gc {
                let gvr = &mut gvs[bi * e..(bi + 1) * e];
                gvr.iter_mut().zip(&gc[bi * e..(bi + 1) * e]).for_each(|(o, &c)| *o = ws * c);
            }
        }
        gv_part
    });

    // The query, one task per batch row, summing over positions in order.
    let mut gq = vec![T::ZERO; b * a];
    par::for_each(b * s * a, PAR_MIN_ELEMS, indexed((rows_mut(&mut gq, a), items(&lens))), |(bi, (gqr, &len))| {
        for si in 0..len {
            let from = match v {
                Some(_) => &gk[(si * b + bi) * a..][..a],
                None => &keys[(si * b + bi) * a..][..a],
            };
            let c = if v.is_some() { T::ONE } else { ge[bi * s + si] };
            gqr.iter_mut().zip(from).for_each(|(o, &y)| *o += c * y);
        }
    });

    let mut out = vec![T::wrap(gq), T::wrap(gk), T::wrap(gvals)];
    if v.is_some() {
        let mut gv = vec![T::ZERO; a];
        for p in parts {
            gv.iter_mut().zip(&p).for_each(|(o, &y)| *o += y);
        }
        out.push(T::wrap(gv));
    }
    Ok(out)
}

impl Op for AttentionGrad {
    fn name(&self) -> &'static str {
        GRAD_OP
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(GRAD_OP, x[0].dtype(), attention_grad_cpu(self, x))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(GRAD_OP, dt)?;
        let Dims { b, s, a, e } = self.fwd.d;
        let additive = self.fwd.score == Score::Additive;
        let given = self.fwd.len_at().map(|i| x[i]);
        let made = full_lengths(be, self.fwd.d, given)?;
        let lens = made.as_deref().or(given).expect("lengths given or made");
        let w = x[self.w_at()];
        // Absent operands are never read (their flags are off); any buffer of the dtype fills
        // their place in the launch.
        let v = self.fwd.v_at().map_or(x[0], |i| x[i]);
        let gc = self.gc_at().map_or(w, |i| x[i]);
        let gw = self.gw_at().map_or(w, |i| x[i]);

        let ge = be.alloc(dt, b * s)?;
        k::ATTENTION_BWD_SCORES.launch(
            be,
            dt,
            b * launch::BLOCK,
            &[
                buf(&*ge),
                buf(w),
                buf(gc),
                buf(gw),
                buf(x[2]),
                buf(lens),
                int(b),
                int(s),
                int(e),
                flag(self.has_gc),
                flag(self.has_gw),
            ],
        )?;
        let (gk, gvals) = (be.alloc(dt, s * b * a)?, be.alloc(dt, s * b * e)?);
        k::ATTENTION_BWD_KEYS.launch(
            be,
            dt,
            s * b * a.max(e),
            &[
                buf(&*gk),
                buf(&*gvals),
                buf(&*ge),
                buf(w),
                buf(x[0]),
                buf(x[1]),
                buf(v),
                buf(gc),
                buf(lens),
                int(b),
                int(s),
                int(a),
                int(e),
                flag(additive),
                flag(self.has_gc),
            ],
        )?;
        let gq = be.alloc(dt, b * a)?;
        let gv_part = if additive { Some(be.alloc(dt, b * a)?) } else { None };
        k::ATTENTION_BWD_QUERY.launch(
            be,
            dt,
            b * a,
            &[
                buf(&*gq),
                buf(gv_part.as_deref().unwrap_or(&*gq)),
                buf(&*ge),
                buf(&*gk),
                buf(x[1]),
                buf(x[0]),
                buf(lens),
                int(b),
                int(s),
                int(a),
                flag(additive),
            ],
        )?;
        let mut out = vec![gq, gk, gvals];
        if let Some(p) = gv_part {
            out.push(launch::reduce_sum(be, GRAD_OP, &*p, &[b, a], &[true, false], 1.0)?);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// front end

fn check_dtype(name: &str, t: &Tensor, like: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::dtype(OP, "float32 or float64", format!("{} for {name}", t.dtype())));
    }
    if t.dtype() != like.dtype() {
        return Err(Error::dtype(OP, format!("{} for {name} (the dtype of query)", like.dtype()), t.dtype()));
    }
    Ok(())
}

/// Attention of `query [B, A]` over `keys [S, B, A]` and `values [S, B, E]` (see the module
/// documentation): `score` picks additive (`v [A]` required) or dot (no `v`); positions past
/// `lengths[b]` (each an integer in [1, S]) get weight exactly 0. Returns at once; the work is
/// one op (one kernel on a GPU) with one fused backward.
pub fn attention(
    query: &Tensor, keys: &Tensor, values: &Tensor, score: Score, v: Option<&Tensor>, lengths: Option<Lengths>,
) -> Result<AttentionOutput> {
    for (name, t) in [("query", query), ("keys", keys), ("values", values)] {
        check_dtype(name, t, query)?;
    }
    if query.dims() != 2 {
        return Err(Error::shape(OP, "query of shape [B, A]", fmt_shape(query.shape())));
    }
    let (b, a) = (query.shape()[0], query.shape()[1]);
    if keys.dims() != 3 || keys.shape()[1..] != [b, a] {
        return Err(Error::shape(
            OP,
            format!("keys of shape [S, {b}, {a}] ([S, B, A] for query of shape {})", fmt_shape(query.shape())),
            fmt_shape(keys.shape()),
        ));
    }
    let s = keys.shape()[0];
    if values.dims() != 3 || values.shape()[..2] != [s, b] {
        return Err(Error::shape(
            OP,
            format!("values of shape [{s}, {b}, E] ([S, B, E] for keys of shape {})", fmt_shape(keys.shape())),
            fmt_shape(values.shape()),
        ));
    }
    let e = values.shape()[2];
    match (score, v) {
        (Score::Additive, None) => {
            return Err(Error::value(OP, format!("an additive score needs v of shape [A] = [{a}]")));
        }
        (Score::Additive, Some(v)) => {
            check_dtype("v", v, query)?;
            if v.shape() != [a] {
                return Err(Error::shape(OP, format!("v of shape [A] = [{a}]"), fmt_shape(v.shape())));
            }
        }
        (Score::Dot, Some(_)) => return Err(Error::value(OP, "a dot score takes no v (v is for 'additive')")),
        (Score::Dot, None) => {}
    }
    let made;
    let lens = match lengths {
        None => None,
        Some(Lengths::Numbers(raw)) => {
            let l = parse_lengths(OP, raw, s, b)?;
            made = Tensor::from_i32(l.into_iter().map(|x| x as i32).collect(), &[b])?.to(query.device())?;
            Some(&made)
        }
        Some(Lengths::Tensor(l)) => {
            if l.dtype() != DType::I32 {
                return Err(Error::dtype(OP, "int32 lengths", l.dtype()));
            }
            if l.shape() != [b] {
                return Err(Error::shape(OP, format!("lengths of shape [B] = [{b}]"), fmt_shape(l.shape())));
            }
            // Host lengths that are already computed are checked now; others when the op runs
            // (on a GPU: at the next read back to the host).
            if l.device() == Device::Cpu && l.is_ready() {
                if let Ok(st) = l.storage() {
                    check_lengths(st.as_i32().expect("int32 storage"), s)?;
                }
            }
            Some(l)
        }
    };
    let lens_detached = lens.map(|l| l.detach());
    let op = Attention { d: Dims { b, s, a, e }, score, has_len: lens.is_some() };
    let mut inputs: Vec<&Tensor> = vec![query, keys, values];
    inputs.extend(v);
    inputs.extend(lens_detached.as_ref());
    let dt = query.dtype();
    let mut outs = apply(Arc::new(op), &inputs, vec![(vec![b, e], dt), (vec![b, s], dt)])?.into_iter();
    let context = outs.next().expect("context");
    let weights = outs.next().expect("weights");
    Ok(AttentionOutput { context, weights })
}
