//! The image ops of the binding (conv2d, the pools, batch norm, layer norm): unwrap the handles,
//! convert the JS numbers into sizes (checked, errors naming the op), call the core.

use crate::convert;
use crate::tensor::NativeTensor;
use crate::{sync_external_memory, IntoJs};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::Error;
use recurrent_core::ops::{conv, norm, pool};
use recurrent_core::Tensor;

fn out(env: &Env, r: recurrent_core::Result<Tensor>) -> Result<NativeTensor> {
    let t = r.js()?;
    sync_external_memory(env);
    Ok(NativeTensor::new(t))
}

fn opt(t: Option<&NativeTensor>, op: &str) -> Result<Option<Tensor>> {
    t.map(|t| t.get(op)).transpose()
}

/// A (height, width) pair of non-negative integers.
fn pair(op: &str, what: &str, v: &[f64]) -> recurrent_core::Result<[usize; 2]> {
    match v {
        [h, w] => Ok([convert::index(op, what, *h)?, convert::index(op, what, *w)?]),
        _ => Err(Error::value(op, format!("{what} must be two integers (height, width), got {} values", v.len()))),
    }
}

/// 2-D convolution of x [N, C, H, W] with weight [O, C/groups, KH, KW] and an optional bias [O].
#[napi(js_name = "conv2d", catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    env: Env, x: &NativeTensor, weight: &NativeTensor, bias: Option<&NativeTensor>, stride: Vec<f64>,
    padding: Vec<f64>, dilation: Vec<f64>, groups: f64,
) -> Result<NativeTensor> {
    const OP: &str = "conv2d";
    let opts = conv::Conv2dOptions {
        stride: pair(OP, "stride", &stride).js()?,
        padding: pair(OP, "padding", &padding).js()?,
        dilation: pair(OP, "dilation", &dilation).js()?,
        groups: convert::index(OP, "groups", groups).js()?,
    };
    out(&env, conv::conv2d(&x.get(OP)?, &weight.get(OP)?, opt(bias, OP)?.as_ref(), opts))
}

fn pool_options(
    op: &str, kernel: &[f64], stride: Option<Vec<f64>>, padding: &[f64],
) -> recurrent_core::Result<pool::Pool2dOptions> {
    Ok(pool::Pool2dOptions {
        kernel: pair(op, "kernelSize", kernel)?,
        stride: stride.map(|s| pair(op, "stride", &s)).transpose()?,
        padding: pair(op, "padding", padding)?,
    })
}

/// Max pooling of x [N, C, H, W] (stride defaults to the kernel size).
#[napi(js_name = "maxPool2d", catch_unwind)]
pub fn max_pool2d(
    env: Env, x: &NativeTensor, kernel: Vec<f64>, stride: Option<Vec<f64>>, padding: Vec<f64>,
) -> Result<NativeTensor> {
    const OP: &str = "maxPool2d";
    let o = pool_options(OP, &kernel, stride, &padding).js()?;
    out(&env, pool::max_pool2d(&x.get(OP)?, o))
}

/// Average pooling of x [N, C, H, W].
#[napi(js_name = "avgPool2d", catch_unwind)]
pub fn avg_pool2d(
    env: Env, x: &NativeTensor, kernel: Vec<f64>, stride: Option<Vec<f64>>, padding: Vec<f64>, count_include_pad: bool,
) -> Result<NativeTensor> {
    const OP: &str = "avgPool2d";
    let o = pool_options(OP, &kernel, stride, &padding).js()?;
    out(&env, pool::avg_pool2d(&x.get(OP)?, o, count_include_pad))
}

/// Adaptive average pooling of x [N, C, H, W] to [N, C, OH, OW].
#[napi(js_name = "adaptiveAvgPool2d", catch_unwind)]
pub fn adaptive_avg_pool2d(env: Env, x: &NativeTensor, output: Vec<f64>) -> Result<NativeTensor> {
    const OP: &str = "adaptiveAvgPool2d";
    let size = pair(OP, "outputSize", &output).js()?;
    out(&env, pool::adaptive_avg_pool2d(&x.get(OP)?, size))
}

/// Batch normalisation of x [N, C, H, W]; in training the running statistics (when given) are
/// updated in place.
#[napi(js_name = "batchNorm2d", catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d(
    env: Env, x: &NativeTensor, weight: Option<&NativeTensor>, bias: Option<&NativeTensor>,
    running_mean: Option<&NativeTensor>, running_var: Option<&NativeTensor>, training: bool, momentum: f64, eps: f64,
) -> Result<NativeTensor> {
    const OP: &str = "batchNorm2d";
    let (rm, rv) = (opt(running_mean, OP)?, opt(running_var, OP)?);
    let opts = norm::BatchNormOptions { training, momentum, eps };
    let r = norm::batch_norm2d(
        &x.get(OP)?,
        opt(weight, OP)?.as_ref(),
        opt(bias, OP)?.as_ref(),
        rm.as_ref(),
        rv.as_ref(),
        opts,
    );
    out(&env, r)
}

/// Layer normalisation over the trailing `normalizedShape` dimensions of x.
#[napi(catch_unwind)]
pub fn layer_norm(
    env: Env, x: &NativeTensor, normalized_shape: Vec<f64>, weight: Option<&NativeTensor>, bias: Option<&NativeTensor>,
    eps: f64,
) -> Result<NativeTensor> {
    const OP: &str = "layerNorm";
    let shape = convert::shape(OP, &normalized_shape).js()?;
    out(&env, norm::layer_norm(&x.get(OP)?, &shape, opt(weight, OP)?.as_ref(), opt(bias, OP)?.as_ref(), eps))
}
