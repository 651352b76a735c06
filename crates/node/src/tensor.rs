//! `NativeTensor`: the JS class around a core tensor handle, and the async reads.

use crate::errors::Pending;
use crate::readback::{copy_out, to_typed, HostData, TypedData};
use crate::{sync_external_memory, IntoJs};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::Error as CoreError;
use recurrent_core::{Device, Tensor};
use std::cell::RefCell;

/// A handle on a core tensor. `dispose()` drops the handle at once; using it afterwards
/// throws a DisposedError naming the operation.
///
/// The handle sits in a `RefCell` so that `dispose` takes `&self`: napi-rs refuses a `&mut self`
/// call while a pending `data()` still borrows the object, which made `const p = t.data();
/// t.dispose()` throw. The read holds its own clone of the tensor, so it completes and the data
/// is freed after it.
#[napi]
pub struct NativeTensor {
    inner: RefCell<Option<Tensor>>,
}

impl NativeTensor {
    pub(crate) fn new(t: Tensor) -> Self {
        crate::ensure_runtime();
        NativeTensor { inner: RefCell::new(Some(t)) }
    }

    /// The live tensor (a cheap shared handle), or a DisposedError naming `op`.
    pub(crate) fn get(&self, op: &str) -> Result<Tensor> {
        self.inner.borrow().clone().ok_or_else(|| crate::js_err(CoreError::Disposed { op: op.into() }))
    }
}

/// Waits on the libuv pool for a tensor's data, then hands a copy to JS as a typed array.
pub struct DataTask {
    tensor: Tensor,
    failure: Pending,
}

#[napi]
impl Task for DataTask {
    type Output = HostData;
    type JsValue = Either3<Float32Array, Float64Array, Int32Array>;

    fn compute(&mut self) -> Result<HostData> {
        let t = &self.tensor;
        self.failure.run("data", || t.storage().map(|s| copy_out(&s)))
    }

    fn resolve(&mut self, env: Env, out: HostData) -> Result<Either3<Float32Array, Float64Array, Int32Array>> {
        sync_external_memory(&env);
        Ok(to_typed(out))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<Either3<Float32Array, Float64Array, Int32Array>> {
        self.failure.reject(&env, err)
    }
}

/// Waits on the libuv pool for a one-element tensor's value.
pub struct ItemTask {
    tensor: Tensor,
    failure: Pending,
}

#[napi]
impl Task for ItemTask {
    type Output = f64;
    type JsValue = f64;

    fn compute(&mut self) -> Result<f64> {
        let t = &self.tensor;
        self.failure.run("item", || t.item())
    }

    fn resolve(&mut self, _env: Env, out: f64) -> Result<f64> {
        Ok(out)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<f64> {
        self.failure.reject(&env, err)
    }
}

#[napi]
impl NativeTensor {
    /// Dimensions, outermost first.
    #[napi(getter, catch_unwind)]
    pub fn shape(&self) -> Result<Vec<u32>> {
        Ok(self.get("shape")?.shape().iter().map(|&d| d as u32).collect())
    }

    /// 'float32', 'float64' or 'int32'.
    #[napi(getter, catch_unwind)]
    pub fn dtype(&self) -> Result<String> {
        Ok(self.get("dtype")?.dtype().name().to_string())
    }

    /// 'cpu' or 'cuda:N'.
    #[napi(getter, catch_unwind)]
    pub fn device(&self) -> Result<String> {
        Ok(self.get("device")?.device().to_string())
    }

    /// A process-unique id of the underlying tensor (shared by handles of the same tensor).
    #[napi(getter, catch_unwind)]
    pub fn id(&self) -> Result<i64> {
        Ok(self.get("id")?.id() as i64)
    }

    #[napi(getter, catch_unwind)]
    pub fn requires_grad(&self) -> Result<bool> {
        Ok(self.get("requiresGrad")?.requires_grad())
    }

    #[napi(setter, catch_unwind)]
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        self.get("requiresGrad")?.set_requires_grad(on).js()
    }

    /// True once the executor has computed (or failed to compute) this tensor.
    #[napi(getter, catch_unwind)]
    pub fn is_ready(&self) -> Result<bool> {
        Ok(self.get("isReady")?.is_ready())
    }

    /// True for a tensor made directly (not by an op that records history).
    #[napi(getter, catch_unwind)]
    pub fn is_leaf(&self) -> Result<bool> {
        Ok(self.get("isLeaf")?.is_leaf())
    }

    #[napi(getter, catch_unwind)]
    pub fn is_disposed(&self) -> bool {
        self.inner.borrow().is_none()
    }

    /// The accumulated gradient, or null.
    #[napi(catch_unwind)]
    pub fn grad(&self) -> Result<Option<NativeTensor>> {
        Ok(self.get("grad")?.grad().map(NativeTensor::new))
    }

    /// Sets (or clears, with null) the accumulated gradient.
    #[napi(catch_unwind)]
    pub fn set_grad(&self, g: Option<&NativeTensor>) -> Result<()> {
        let t = &self.get("setGrad")?;
        let g = match g {
            Some(g) => {
                let g = &g.get("setGrad")?;
                if g.shape() != t.shape() {
                    return Err(crate::js_err(CoreError::shape(
                        "setGrad",
                        recurrent_core::error::fmt_shape(t.shape()),
                        recurrent_core::error::fmt_shape(g.shape()),
                    )));
                }
                if g.dtype() != t.dtype() {
                    return Err(crate::js_err(CoreError::dtype("setGrad", t.dtype(), g.dtype())));
                }
                Some(g.clone())
            }
            None => None,
        };
        t.set_grad(g);
        Ok(())
    }

    /// Clears the accumulated gradient.
    #[napi(catch_unwind)]
    pub fn zero_grad(&self) -> Result<()> {
        self.get("zeroGrad")?.zero_grad();
        Ok(())
    }

    /// A new leaf sharing this tensor's data, without history.
    #[napi(catch_unwind)]
    pub fn detach(&self) -> Result<NativeTensor> {
        Ok(NativeTensor::new(self.get("detach")?.detach()))
    }

    /// Another handle on the same tensor (dispose() of one leaves the other alive).
    #[napi(catch_unwind)]
    pub fn share(&self) -> Result<NativeTensor> {
        Ok(NativeTensor::new(self.get("share")?.clone()))
    }

    /// A copy on `device` ('cpu', 'cuda' or 'cuda:N'); this same tensor when already there.
    #[napi(catch_unwind)]
    pub fn to(&self, env: Env, device: String) -> Result<NativeTensor> {
        let t = &self.get("to")?;
        let d = recurrent_core::Device::parse(&device).js()?;
        let out = t.to(d).js()?;
        sync_external_memory(&env);
        Ok(NativeTensor::new(out))
    }

    /// Replaces this tensor's data with `src`'s (same shape and dtype).
    #[napi(catch_unwind)]
    pub fn assign(&self, src: &NativeTensor) -> Result<()> {
        let t = &self.get("assign")?;
        t.assign(&src.get("assign")?).js()
    }

    /// Accumulates d(this)/d(leaf) into every leaf that requires grad; frees the graph's saved
    /// tensors unless `retain_graph`.
    #[napi(catch_unwind)]
    pub fn backward(&self, env: Env, grad: Option<&NativeTensor>, retain_graph: Option<bool>) -> Result<()> {
        let t = &self.get("backward")?;
        let g = match grad {
            Some(g) => Some(g.get("backward")?.clone()),
            None => None,
        };
        let r = recurrent_core::backward_with(t, g, retain_graph.unwrap_or(false)).js();
        sync_external_memory(&env);
        r
    }

    /// Drops this handle now. Further use throws a DisposedError.
    #[napi(catch_unwind)]
    pub fn dispose(&self, env: Env) {
        self.inner.borrow_mut().take();
        sync_external_memory(&env);
    }

    /// Reads the data, blocking the JS thread until the executor has produced it.
    #[napi(catch_unwind)]
    pub fn data_sync(&self, env: Env) -> Result<Either3<Float32Array, Float64Array, Int32Array>> {
        let t = &self.get("dataSync")?;
        let s = t.storage().js()?;
        let out = to_typed(copy_out(&s));
        sync_external_memory(&env);
        Ok(out)
    }

    /// Reads the data without blocking. A host tensor's promise is settled by the thread
    /// that computes the data (`settle.rs`); a device tensor's read waits on the libuv pool
    /// (its download blocks).
    #[napi(catch_unwind, ts_return_type = "Promise<Float32Array | Float64Array | Int32Array>")]
    pub fn data<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, TypedData>> {
        let t = self.get("data")?;
        if t.device() != Device::Cpu {
            return Ok(env.spawn(DataTask { tensor: t, failure: Pending::default() })?.promise_object());
        }
        crate::settle::when_ready(env, &t, "data", copy_out, |_, d| Ok(to_typed(d)))
    }

    /// The value of a one-element tensor, without blocking (as `data`).
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn item<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, f64>> {
        let t = self.get("item")?;
        if t.numel() != 1 {
            return Err(crate::js_err(CoreError::shape(
                "item",
                "a tensor with one element",
                recurrent_core::error::fmt_shape(t.shape()),
            )));
        }
        if t.device() != Device::Cpu {
            return Ok(env.spawn(ItemTask { tensor: t, failure: Pending::default() })?.promise_object());
        }
        crate::settle::when_ready(env, &t, "item", |s| s.first_value(), |_, v| Ok(v))
    }

    /// The value of a one-element tensor, blocking.
    #[napi(catch_unwind)]
    pub fn item_sync(&self) -> Result<f64> {
        self.get("itemSync")?.item().js()
    }
}
