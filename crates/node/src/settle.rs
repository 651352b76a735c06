//! Promises that the engine settles itself: a read registers a waiter on the data it wants
//! (`Tensor::when_ready`, `executor::synchronize_then`), and whichever thread computes that
//! data settles the promise through a threadsafe function. No thread is parked to wait, which
//! an `AsyncTask` does (a libuv worker blocked until the executor is done): on a small machine
//! that worker's wake-ups and the extra hand-off cost ~0.1–0.3 ms per await.

use crate::errors::Settled;
use napi::bindgen_prelude::*;
use napi::JsDeferred;

type Resolver<T> = Box<dyn FnOnce(Env) -> Result<T>>;

/// A pending promise and the handle that settles it from any thread.
pub(crate) struct Later<T: ToNapiValue + 'static> {
    deferred: JsDeferred<T, Resolver<T>>,
}

// SAFETY: the resolver runs on the JS thread (napi-rs sends it through a threadsafe function);
// what it captures is the `Settled` value, which is Send.
unsafe impl<T: ToNapiValue + 'static> Send for Later<T> {}

impl<T: ToNapiValue + 'static> Later<T> {
    /// A new pending promise, and its settle handle.
    pub(crate) fn new(env: &Env) -> Result<(Later<T>, PromiseRaw<'_, T>)> {
        let (deferred, promise) = env.create_deferred::<T, Resolver<T>>()?;
        Ok((Later { deferred }, PromiseRaw::new(env.raw(), promise.raw())))
    }

    /// Settles the promise with `out`, turned into JS values by `make` on the JS thread.
    pub(crate) fn settle<V: Send + 'static>(self, out: Settled<V>, make: impl FnOnce(&Env, V) -> Result<T> + 'static) {
        self.deferred.resolve(Box::new(move |env: Env| match out {
            Ok(v) => make(&env, v),
            Err(f) => Err(f.into_napi_in(&env)),
        }))
    }
}

/// A promise for a host tensor's data: once it is computed, `read` (on the computing thread,
/// a panic caught as an InternalError naming `op`) takes what the JS value needs from it, and
/// `make` (on the JS thread) turns that into the value; a failed op rejects with its error.
pub(crate) fn when_ready<'env, T: ToNapiValue + 'static, V: Send + 'static>(
    env: &'env Env, t: &recurrent_core::Tensor, op: &'static str,
    read: impl FnOnce(&recurrent_core::storage::CpuStorage) -> V + Send + 'static,
    make: impl FnOnce(&Env, V) -> Result<T> + Send + 'static,
) -> Result<PromiseRaw<'env, T>> {
    let (later, promise) = Later::new(env)?;
    let host = t.when_ready(move |r| {
        let out = crate::errors::settled(op, || r.map(|s| read(&s)));
        later.settle(out, |env, v| {
            crate::sync_external_memory(env);
            make(env, v)
        });
    });
    debug_assert!(host, "settle::when_ready on a device tensor");
    Ok(promise)
}
