//! Inverted dropout: in training, each element is zeroed with probability p and the survivors
//! are scaled by 1/(1 − p), so that evaluation needs no rescaling. The mask comes from
//! `Rng::new(seed)`, one uniform draw per element in order, so the same seed and shape give the
//! same mask for f32 and f64 alike. Backward regenerates that mask from the seed instead of
//! saving it: the gradient is the same masked scaling applied to the output gradient.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::cpu::par::{self, items, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{Error, Result};
use crate::launch::{self, buf, int, kernels as k};
use crate::ops::elementwise::{check_float, dispatch_float};
use crate::rng::Rng;
use crate::storage::CpuStorage;
use crate::storage::DType;
use crate::tensor::Tensor;
use std::sync::Arc;

struct Dropout {
    p: f64,
    seed: u64,
}

/// The keep mask for `n` elements: element k survives when its uniform draw is ≥ p.
fn keep_mask(n: usize, p: f64, seed: u64) -> Vec<bool> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform() >= p).collect()
}

fn dropout_cpu<T: Float>(op: &Dropout, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    let mask = keep_mask(x.len(), op.p, op.seed);
    let s = T::from_f64(1.0 / (1.0 - op.p));
    let f = |(&v, &keep): (&T, &bool)| if keep { v * s } else { T::ZERO };
    let out: Vec<T> = par::map_collect(x.len(), PAR_MIN_ELEMS, (items(x), items(&mask)), f);
    Ok(vec![T::wrap(out)])
}

impl Op for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_float!(self.name(), x[0].dtype(), dropout_cpu(self, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let dt = x[0].dtype();
        launch::float_only(self.name(), dt)?;
        let n = x[0].len();
        let scale = upload_mask(be, dt, n, self.p, self.seed)?;
        let out = be.alloc(dt, n)?;
        k::DROPOUT.launch(be, dt, n, &[buf(&*out), buf(x[0]), buf(&*scale), int(n)])?;
        Ok(vec![out])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        // The op is linear in x with a diagonal matrix: its adjoint is itself, same mask.
        let op = Dropout { p: self.p, seed: self.seed };
        Ok(vec![Some(apply(Arc::new(op), &[g], vec![(g.shape().to_vec(), g.dtype())])?.remove(0))])
    }
}

/// The CPU's keep mask as a per-element scale (0 or 1/(1 − p), the same value the CPU multiplies
/// by), uploaded: CUDA drops exactly the elements the CPU drops for the same seed.
fn upload_mask(be: &dyn GpuBackend, dt: DType, n: usize, p: f64, seed: u64) -> Result<Arc<dyn DeviceBuffer>> {
    let mask = keep_mask(n, p, seed);
    let s = 1.0 / (1.0 - p);
    let host = match dt {
        DType::F32 => CpuStorage::new_f32(mask.iter().map(|&k| if k { s as f32 } else { 0.0 }).collect()),
        _ => CpuStorage::new_f64(mask.iter().map(|&k| if k { s } else { 0.0 }).collect()),
    };
    be.upload(&host)
}

/// Inverted dropout with drop probability `p` in [0, 1). Identity when `!training` or `p == 0`.
/// The same `seed` and shape give the same mask.
pub fn dropout(x: &Tensor, p: f64, seed: u64, training: bool) -> Result<Tensor> {
    const OP: &str = "dropout";
    check_float(OP, x)?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::value(OP, format!("expected a drop probability p in [0, 1), got {p}")));
    }
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    let op = Dropout { p, seed };
    Ok(apply(Arc::new(op), &[x], vec![(x.shape().to_vec(), x.dtype())])?.remove(0))
}
