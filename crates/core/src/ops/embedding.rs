//! `embedding`: a row lookup `weight[indices]`. Backward scatter-adds the output gradient into
//! a zero `[V, E]`, visiting indices in order so that repeated indices always sum the same way.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, items, rows_mut, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{fmt_shape, Error, Result};
use crate::launch::{self, buf, int, kernels as k};
use crate::ops::elementwise::{check_float, dispatch_float};
use crate::storage::{CpuStorage, DType};
use crate::tensor::{check_shape, Device, Tensor};
use std::sync::Arc;

const OP: &str = "embedding";

fn check_indices(idx: &[i32], v: usize) -> Result<()> {
    match idx.iter().enumerate().find(|(_, &i)| i < 0 || i as usize >= v) {
        Some((at, &i)) => Err(Error::value(OP, format!("index {i} at position {at} is out of range: expected an index in [0, {v}) for a weight with V = {v} rows"))),
        None => Ok(()),
    }
}

struct Embedding {
    v: usize,
    e: usize,
}

fn embedding_cpu<T: Float>(op: &Embedding, w: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let w = T::view(w);
    let idx = idx.as_i32().expect("indices are int32");
    check_indices(idx, op.v)?;
    let e = op.e;
    let mut out = vec![T::ZERO; idx.len() * e];
    let f = |(row, &i): (&mut [T], &i32)| row.copy_from_slice(&w[i as usize * e..(i as usize + 1) * e]);
    par::for_each(out.len(), PAR_MIN_ELEMS, (rows_mut(&mut out, e), items(idx)), f);
    Ok(vec![T::wrap(out)])
}

impl Op for Embedding {
    fn name(&self) -> &'static str {
        OP
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(OP, x[0].dtype(), embedding_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(OP, dt)?;
        let (w, idx) = (x[0], x[1]);
        // Checked without waiting: a bad index is reported (with the CPU's message) at the next
        // read back to the host; the kernels skip it meanwhile.
        let v = self.v;
        launch::check_indices_later(be, OP, idx, v, None, Box::new(move |host| check_indices(host, v)))?;
        let n = idx.len();
        let out = be.alloc(dt, n * self.e)?;
        k::EMBEDDING_FWD.launch(be, dt, n * self.e, &[buf(&*out), buf(w), buf(idx), int(n), int(self.e), int(v)])?;
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        let idx = &ctx.inputs[1];
        let op = EmbeddingGrad { v: self.v, e: self.e };
        let gw = apply(Arc::new(op), &[g, idx], vec![(vec![self.v, self.e], g.dtype())])?.remove(0);
        Ok(vec![Some(gw), None])
    }
}

/// `gw[indices[k]] += g[k]` for k in order, into a zero `[V, E]`.
struct EmbeddingGrad {
    v: usize,
    e: usize,
}

fn embedding_grad_cpu<T: Float>(op: &EmbeddingGrad, g: &CpuStorage, idx: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let g = T::view(g);
    let idx = idx.as_i32().expect("indices are int32");
    let e = op.e;
    let mut gw = vec![T::ZERO; op.v * e];
    for (k, &i) in idx.iter().enumerate() {
        let dst = &mut gw[i as usize * e..(i as usize + 1) * e];
        for (d, &s) in dst.iter_mut().zip(&g[k * e..(k + 1) * e]) {
            *d += s;
        }
    }
    Ok(vec![T::wrap(gw)])
}

impl Op for EmbeddingGrad {
    fn name(&self) -> &'static str {
        "embeddingGrad"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), embedding_grad_cpu(self, x[0], x[1]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let (g, idx) = (x[0], x[1]);
        let n = idx.len();
        let gw = be.zeros(dt, self.v * self.e)?;
        k::EMBEDDING_BWD.launch(
            be,
            dt,
            n * self.e,
            &[buf(&*gw), buf(g), buf(idx), int(n), int(self.e), int(self.v)],
        )?;
        Ok(vec![gw])
    }
}

/// Rows of `weight` `[V, E]` picked by int32 `indices` of any shape → `[...indices, E]`.
/// An index outside `[0, V)` is an error: at once when the indices are already computed, else
/// when the op runs.
pub fn embedding(weight: &Tensor, indices: &Tensor) -> Result<Tensor> {
    check_float(OP, weight)?;
    if indices.dtype() != DType::I32 {
        return Err(Error::dtype(OP, "int32 indices", indices.dtype()));
    }
    let sw = weight.shape();
    if sw.len() != 2 {
        return Err(Error::shape(OP, "a weight of shape [V, E]", fmt_shape(sw)));
    }
    let (v, e) = (sw[0], sw[1]);
    // Host data only: reading device data here would wait for the device (a device op checks
    // its indices itself, reported at the next read).
    if indices.device() == Device::Cpu && indices.is_ready() {
        // A poisoned index tensor surfaces when the op runs; only check values we can read now.
        if let Ok(s) = indices.storage() {
            check_indices(s.as_i32().expect("int32 storage"), v)?;
        }
    }
    let mut out = indices.shape().to_vec();
    out.push(e);
    check_shape(OP, &out)?;
    let op = Embedding { v, e };
    Ok(apply(Arc::new(op), &[weight, indices], vec![(out, weight.dtype())])?.remove(0))
}
