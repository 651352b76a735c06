//! `cast`: conversion between float32, float64 and int32. Float to float is differentiable (the
//! gradient is cast back); float to int32 truncates toward zero, as PyTorch's
//! `.to(torch.int32)`, and refuses NaN, infinities and values outside int32's range with a
//! `ValueError` instead of producing whatever the hardware makes of them.

use crate::autograd::{apply, BackwardCtx, Op};
use crate::backend::{DeviceBuffer, GpuBackend};
use crate::error::{Error, Result};
use crate::launch::{self, buf, int, kernels as k};
use crate::ops::compare::{dispatch_any, Elem};
use crate::storage::{CpuStorage, DType};
use crate::tensor::{Device, Tensor};
use std::sync::Arc;

const OP: &str = "cast";

/// The first value that has no int32 truncation (NaN, ±∞, out of range), as an error.
fn check_int_range(v: &[f64]) -> Result<()> {
    // Truncation keeps (−2^31 − 1, 2^31) inside int32's range.
    let ok = |x: f64| x > i32::MIN as f64 - 1.0 && x < i32::MAX as f64 + 1.0;
    match v.iter().enumerate().find(|(_, &x)| !ok(x)) {
        Some((at, &x)) => Err(Error::value(
            OP,
            format!("value {x} at position {at} has no int32 value: expected finite values in (-2147483649, 2147483648) (truncated toward zero), got {x}"),
        )),
        None => Ok(()),
    }
}

struct Cast {
    to: DType,
}

fn cast_cpu<T: Elem + Into<f64>>(to: DType, x: &CpuStorage) -> Result<Vec<CpuStorage>> {
    let x = T::view(x);
    Ok(vec![match to {
        DType::F32 => CpuStorage::new_f32(x.iter().map(|&v| Into::<f64>::into(v) as f32).collect()),
        DType::F64 => CpuStorage::new_f64(x.iter().map(|&v| v.into()).collect()),
        DType::I32 => {
            let wide: Vec<f64> = x.iter().map(|&v| v.into()).collect();
            check_int_range(&wide)?;
            // `as` truncates toward zero; the range was checked above.
            CpuStorage::new_i32(wide.into_iter().map(|v| v as i32).collect())
        }
    }])
}

impl Op for Cast {
    fn name(&self) -> &'static str {
        OP
    }
    fn cpu(&self, x: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        dispatch_any!(x[0].dtype(), cast_cpu(self.to, x[0]))
    }
    fn gpu(&self, be: &dyn GpuBackend, x: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        let (from, n) = (x[0].dtype(), x[0].len());
        let out = be.alloc(self.to, n)?;
        let args = [buf(&*out), buf(x[0]), int(n)];
        match (from, self.to) {
            (DType::F32, DType::F64) => k::CAST_TO_F64.launch(be, from, n, &args)?,
            (DType::F64, DType::F32) => k::CAST_FROM_F64.launch(be, self.to, n, &args)?,
            (DType::I32, DType::F32 | DType::F64) => k::CAST_FROM_I32.launch(be, self.to, n, &args)?,
            (DType::F32 | DType::F64, DType::I32) => {
                let flag = be.zeros(DType::I32, 1)?;
                k::CAST_TO_I32.launch(be, from, n, &[buf(&*out), buf(&*flag), buf(x[0]), int(n)])?;
                let report = Box::new(|h: &CpuStorage| check_int_range(&h.to_f64_vec()));
                launch::report_later(be, OP, flag, x[0], report)?;
            }
            _ => return Ok(vec![launch::copy(be, x[0])?]),
        }
        Ok(vec![out])
    }
    fn backward(&self, ctx: &BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let g = grads[0].as_ref().expect("single-output op gets its gradient");
        Ok(vec![Some(cast(g, ctx.inputs[0].dtype())?)])
    }
}

/// `x` as `dtype`. Returns `x` itself when it already has that dtype (as PyTorch's `.to`).
/// Float to float keeps the graph; conversions to or from int32 have no gradient. Float values
/// already on the host are checked at once when converting to int32; others when the op runs
/// (on a GPU: at the next read back to the host, the kernel writing 0 meanwhile).
pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    let differentiable = x.dtype().is_float() && dtype.is_float();
    if dtype == DType::I32 && x.device() == Device::Cpu && x.is_ready() {
        if let Ok(s) = x.storage() {
            check_int_range(&s.to_f64_vec())?;
        }
    }
    let input = if differentiable { x.clone() } else { x.detach() };
    Ok(apply(Arc::new(Cast { to: dtype }), &[&input], vec![(x.shape().to_vec(), dtype)])?.remove(0))
}
