//! Errors to JavaScript. Every failure becomes a JS `Error` whose message is the core's
//! (`<op>: expected …, got …`), with two own properties: `code` (`ERR_SHAPE`, … from
//! [`ErrorKind::code`](recurrent_core::ErrorKind::code)) and `op`. `src/errors.ts` picks the
//! class by `code`; nothing parses messages.
//!
//! napi-rs makes a thrown error from a status and a message only (the status becomes `code`),
//! and an `AsyncTask` rejects with an error built the same way. To add `op`, the error object
//! is made here and handed to napi-rs as a reference to that object, which it throws or
//! rejects with as it is. Making a JS object needs the JS thread's environment:
//! - synchronous functions run on the thread that loaded the addon, whose environment is
//!   kept when the module registers ([`keep_env`]);
//! - an async task's `compute` runs on a libuv worker, where no JS value can be made, so the
//!   task keeps its [`Failure`] ([`Pending`]) until `reject`, which runs on the JS thread.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use recurrent_core::error::panic_message;
use recurrent_core::{Error as CoreError, ErrorKind};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A failure as JavaScript sees it.
#[derive(Debug)]
pub(crate) struct Failure {
    code: &'static str,
    op: String,
    message: String,
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure { code: e.kind().code(), op: e.op().to_string(), message: e.to_string() }
    }
}

impl Failure {
    /// A failure whose op the binding names itself (a checkpoint error names the JS function
    /// and the file, the core only the file).
    pub(crate) fn new(kind: ErrorKind, op: &str, detail: &str) -> Self {
        Failure { code: kind.code(), op: op.to_string(), message: format!("{op}: {detail}") }
    }

    /// A caught panic: an InternalError naming the op.
    pub(crate) fn panic(op: &str, payload: Box<dyn std::any::Any + Send>) -> Self {
        CoreError::internal(op, panic_message(payload)).into()
    }

    /// The JS error object: `new Error(message)` with `code` and `op`.
    fn to_js<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, self.message.clone()))?;
        obj.set_named_property("code", self.code)?;
        obj.set_named_property("op", self.op.as_str())?;
        Ok(obj)
    }

    /// A napi error that throws, or rejects with, this failure's JS error made in `env`.
    pub(crate) fn into_napi_in(self, env: &Env) -> napi::Error {
        match self.to_js(env) {
            Ok(obj) => napi::Error::from_unknown_without_coercion(obj.to_unknown()),
            // The engine refused to make an object (it is shutting down): the message alone.
            Err(_) => napi::Error::new(Status::GenericFailure, self.message),
        }
    }

    /// [`Failure::into_napi_in`] with the environment of the calling JS thread.
    pub(crate) fn into_napi(self) -> napi::Error {
        let raw = JS_ENV.with(Cell::get);
        if raw.is_null() {
            // Not a JS thread. Async tasks keep their failures for `reject` instead (see
            // `Pending`), so this does not happen; the message would still name the op.
            return napi::Error::new(Status::GenericFailure, self.message);
        }
        self.into_napi_in(&Env::from_raw(raw))
    }
}

thread_local! {
    /// The environment of the JS thread that loaded the addon on this OS thread (the main
    /// thread, or a worker's), null elsewhere. Node gives each such thread one environment per
    /// addon instance, valid until that thread's environment is torn down.
    static JS_ENV: Cell<sys::napi_env> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs when the addon registers on a JS thread: keeps that thread's environment for the
/// errors of synchronous calls.
#[napi(module_exports)]
pub fn keep_env(env: Env) {
    JS_ENV.with(|e| e.set(env.raw()));
}

/// A core error as a napi error carrying `code` and `op`.
pub(crate) fn js_err(e: CoreError) -> napi::Error {
    Failure::from(e).into_napi()
}

/// The failure of an `AsyncTask`'s `compute`, kept on the task until `reject` makes its JS
/// error on the JS thread.
#[derive(Default)]
pub(crate) struct Pending(Option<Failure>);

impl Pending {
    /// Runs `f` on the worker thread, catching a panic as an InternalError naming `op`. A
    /// failure is kept for [`Pending::reject`]; what `compute` returns meanwhile only tells
    /// napi-rs to call `reject`.
    pub(crate) fn run<T, E: Into<Failure>>(
        &mut self, op: &str, f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> Result<T> {
        let failure = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e.into(),
            Err(p) => Failure::panic(op, p),
        };
        let placeholder = napi::Error::new(Status::GenericFailure, failure.message.clone());
        self.0 = Some(failure);
        Err(placeholder)
    }

    /// The rejection of a task whose `compute` failed: the kept failure as a JS error.
    pub(crate) fn reject<V>(&mut self, env: &Env, err: napi::Error) -> Result<V> {
        Err(match self.0.take() {
            Some(f) => f.into_napi_in(env),
            None => err,
        })
    }
}

/// What a promise settled from another thread carries to the JS thread: its value's parts, or
/// the failure (made into a JS error there, where JS values can be made).
pub(crate) type Settled<T> = std::result::Result<T, Failure>;

/// Runs `f` where a panic must not escape (an executor's waiter): a panic becomes an
/// InternalError naming `op`.
pub(crate) fn settled<T, E: Into<Failure>>(op: &str, f: impl FnOnce() -> std::result::Result<T, E>) -> Settled<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Into::into),
        Err(p) => Err(Failure::panic(op, p)),
    }
}
