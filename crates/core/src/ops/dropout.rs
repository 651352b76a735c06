//! Inverted dropout: in training, each element is zeroed with probability p and the survivors
//! are scaled by 1/(1 − p), so that evaluation needs no rescaling. Element k's fate is Philox
//! word k of the seed (`rng::philox_word`) against an integer threshold, so the same seed and
//! shape give the same mask for f32 and f64, on the CPU and on a GPU, whose kernel computes
//! the words itself (nothing is uploaded). Backward regenerates that mask from the seed instead
//! of saving it: the gradient is the same masked scaling applied to the output gradient.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend, KernelArg};
use crate::cpu::par::{self, items, PAR_MIN_ELEMS};
use crate::cpu::Float;
use crate::error::{Error, Result};
use crate::launch::{self, buf, int, kernels as k, real};
use crate::ops::elementwise::{check_float, dispatch_float};
use crate::rng::{drop_threshold, philox_word};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use std::sync::Arc;

struct Dropout {
    p: f64,
    seed: u64,
}

/// The keep mask for `n` elements: element k survives when its Philox word is at or above the
/// threshold of p.
fn keep_mask(n: usize, p: f64, seed: u64) -> Vec<bool> {
    let thr = drop_threshold(p);
    (0..n as u64).map(|i| u64::from(philox_word(seed, i)) >= thr).collect()
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
        let out = be.alloc(dt, n)?;
        let seed = KernelArg::I64(self.seed as i64);
        let thr = int(drop_threshold(self.p) as usize);
        k::DROPOUT.launch(
            be,
            dt,
            n.div_ceil(4),
            &[buf(&*out), buf(x[0]), int(n), seed, thr, real(1.0 / (1.0 - self.p))],
        )?;
        Ok(vec![out])
    }
    fn backward(&self, _ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        // The op is linear in x with a diagonal matrix: its adjoint is itself, same mask.
        let op = Dropout { p: self.p, seed: self.seed };
        Ok(vec![Some(apply(Arc::new(op), &[g], vec![(g.shape().to_vec(), g.dtype())])?.remove(0))])
    }
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
