//! Tensor factories: from JS typed arrays, constants and seeded random samples. Every shape is
//! checked (positive integers, total within the limit) before anything is allocated.

use crate::convert;
use crate::tensor::NativeTensor;
use crate::{sync_external_memory, IntoJs};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::{fmt_shape, Error as CoreError};
use recurrent_core::Tensor;

fn check_len(op: &str, n: usize, len: usize, shape: &[usize]) -> Result<()> {
    if n != len {
        return Err(crate::js_err(CoreError::shape(
            op,
            format!("{n} values for shape {}", fmt_shape(shape)),
            format!("{len} values"),
        )));
    }
    Ok(())
}

fn made(env: &Env, t: recurrent_core::Result<Tensor>) -> Result<NativeTensor> {
    let t = t.js()?;
    sync_external_memory(env);
    Ok(NativeTensor::new(t))
}

/// A float32 tensor holding a copy of `data`, row-major, with the given shape.
#[napi(catch_unwind)]
pub fn from_float32(env: Env, data: Float32Array, shape: Vec<f64>) -> Result<NativeTensor> {
    let s = convert::shape("tensor", &shape).js()?;
    check_len("tensor", s.iter().product(), data.len(), &s)?;
    made(&env, Tensor::from_f32(data.to_vec(), &s))
}

/// A float64 tensor holding a copy of `data`.
#[napi(catch_unwind)]
pub fn from_float64(env: Env, data: Float64Array, shape: Vec<f64>) -> Result<NativeTensor> {
    let s = convert::shape("tensor", &shape).js()?;
    check_len("tensor", s.iter().product(), data.len(), &s)?;
    made(&env, Tensor::from_f64(data.to_vec(), &s))
}

/// An int32 tensor holding a copy of `data`.
#[napi(catch_unwind)]
pub fn from_int32(env: Env, data: Int32Array, shape: Vec<f64>) -> Result<NativeTensor> {
    let s = convert::shape("tensor", &shape).js()?;
    check_len("tensor", s.iter().product(), data.len(), &s)?;
    made(&env, Tensor::from_i32(data.to_vec(), &s))
}

/// Zeros of the given shape and dtype.
#[napi(catch_unwind)]
pub fn zeros(env: Env, shape: Vec<f64>, dtype: String) -> Result<NativeTensor> {
    let s = convert::shape("zeros", &shape).js()?;
    let d = convert::dtype(&dtype).js()?;
    made(&env, Tensor::zeros(&s, d))
}

/// `value` everywhere.
#[napi(catch_unwind)]
pub fn full(env: Env, shape: Vec<f64>, value: f64, dtype: String) -> Result<NativeTensor> {
    let s = convert::shape("full", &shape).js()?;
    let d = convert::dtype(&dtype).js()?;
    made(&env, Tensor::full(&s, value, d))
}

/// Standard normal samples; the same seed gives bit-identical tensors.
#[napi(catch_unwind)]
pub fn randn(env: Env, shape: Vec<f64>, dtype: String, seed: f64) -> Result<NativeTensor> {
    let s = convert::shape("randn", &shape).js()?;
    let d = convert::dtype(&dtype).js()?;
    let seed = convert::seed("randn", seed).js()?;
    made(&env, Tensor::randn(&s, d, seed))
}

/// Uniform samples in [low, high); the same seed gives bit-identical tensors.
#[napi(catch_unwind)]
pub fn rand_uniform(env: Env, shape: Vec<f64>, low: f64, high: f64, dtype: String, seed: f64) -> Result<NativeTensor> {
    let s = convert::shape("randUniform", &shape).js()?;
    let d = convert::dtype(&dtype).js()?;
    let seed = convert::seed("randUniform", seed).js()?;
    if !low.is_finite() || !high.is_finite() || low > high {
        return Err(crate::js_err(CoreError::value(
            "randUniform",
            format!("need finite low ≤ high, got low={low}, high={high}"),
        )));
    }
    made(&env, Tensor::rand_uniform(&s, low, high, d, seed))
}
