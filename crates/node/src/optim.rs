//! Optimizer updates and gradient clipping: the rule object from JS becomes a core `Rule`
//! (each field checked), then one fused core op per parameter tensor. No math here.

use crate::tensor::NativeTensor;
use crate::{sync_external_memory, IntoJs};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::Error as CoreError;
use recurrent_core::ops::optim::{self, Rule};
use recurrent_core::Tensor;

/// One step of an update rule with its hyper-parameters, as the TypeScript optimizers pass it.
/// Which fields are needed depends on `kind`:
/// - `sgd`: lr, momentum, dampening, nesterov, weightDecay, first (the momentum buffer is new)
/// - `adam` / `adamw`: lr, beta1, beta2, eps, weightDecay, step (from 1)
/// - `rmsprop`: lr, alpha, eps, weightDecay, momentum, centered
/// - `adagrad`: lr, lrDecay, weightDecay, eps, step (from 1)
#[napi(object)]
pub struct OptimizerRule {
    pub kind: String,
    pub lr: f64,
    pub momentum: Option<f64>,
    pub dampening: Option<f64>,
    pub nesterov: Option<bool>,
    pub weight_decay: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub alpha: Option<f64>,
    pub centered: Option<bool>,
    pub lr_decay: Option<f64>,
    pub step: Option<f64>,
    pub first: Option<bool>,
}

fn num(op: &str, name: &str, v: Option<f64>) -> recurrent_core::Result<f64> {
    match v {
        Some(x) if x.is_finite() => Ok(x),
        Some(x) => Err(CoreError::value(op, format!("{name} must be a finite number, got {x}"))),
        None => Err(CoreError::value(op, format!("the rule needs {name}"))),
    }
}

fn flag(op: &str, name: &str, v: Option<bool>) -> recurrent_core::Result<bool> {
    v.ok_or_else(|| CoreError::value(op, format!("the rule needs {name}")))
}

fn step_count(op: &str, v: Option<f64>) -> recurrent_core::Result<u64> {
    let s = num(op, "step", v)?;
    // The core raises β to the power `step` with powi (i32).
    if s < 1.0 || s.fract() != 0.0 || s > i32::MAX as f64 {
        return Err(CoreError::value(op, format!("step must be an integer in [1, 2^31 − 1], got {s}")));
    }
    Ok(s as u64)
}

/// Converts the JS rule object into a core `Rule`.
fn to_rule(r: &OptimizerRule) -> recurrent_core::Result<Rule> {
    const OP: &str = "optimizerUpdate";
    let lr = num(OP, "lr", Some(r.lr))?;
    Ok(match r.kind.as_str() {
        "sgd" => Rule::Sgd {
            lr,
            momentum: num(OP, "momentum", r.momentum)?,
            dampening: num(OP, "dampening", r.dampening)?,
            nesterov: flag(OP, "nesterov", r.nesterov)?,
            weight_decay: num(OP, "weightDecay", r.weight_decay)?,
            first: flag(OP, "first", r.first)?,
        },
        "adam" | "adamw" => Rule::Adam {
            lr,
            beta1: num(OP, "beta1", r.beta1)?,
            beta2: num(OP, "beta2", r.beta2)?,
            eps: num(OP, "eps", r.eps)?,
            weight_decay: num(OP, "weightDecay", r.weight_decay)?,
            decoupled: r.kind == "adamw",
            step: step_count(OP, r.step)?,
        },
        "rmsprop" => Rule::RmsProp {
            lr,
            alpha: num(OP, "alpha", r.alpha)?,
            eps: num(OP, "eps", r.eps)?,
            weight_decay: num(OP, "weightDecay", r.weight_decay)?,
            momentum: num(OP, "momentum", r.momentum)?,
            centered: flag(OP, "centered", r.centered)?,
        },
        "adagrad" => Rule::Adagrad {
            lr,
            lr_decay: num(OP, "lrDecay", r.lr_decay)?,
            weight_decay: num(OP, "weightDecay", r.weight_decay)?,
            eps: num(OP, "eps", r.eps)?,
            step: step_count(OP, r.step)?,
        },
        other => {
            return Err(CoreError::value(
                OP,
                format!("unknown rule kind '{other}' (expected 'sgd', 'adam', 'adamw', 'rmsprop' or 'adagrad')"),
            ))
        }
    })
}

/// Updates `param` and its `state` tensors in place by one step of `rule`, as one fused op
/// enqueued on the executor. Returns at once; shape, dtype and state-count errors throw here.
#[napi(catch_unwind)]
pub fn optimizer_update(
    env: Env, rule: OptimizerRule, param: &NativeTensor, grad: &NativeTensor, state: Vec<&NativeTensor>,
) -> Result<()> {
    let r = to_rule(&rule).js()?;
    let op = "optimizerUpdate";
    let p = &param.get(op)?;
    let g = &grad.get(op)?;
    let owned: Vec<Tensor> = state.iter().map(|t| t.get(op)).collect::<Result<_>>()?;
    let st: Vec<&Tensor> = owned.iter().collect();
    let out = optim::update(r, p, g, &st).js();
    sync_external_memory(&env);
    out
}

/// Scales `grads` in place so that their global `normType`-norm (Infinity: the max norm) is at
/// most `maxNorm`. Returns the norm before clipping as a 0-d tensor, without waiting for it.
#[napi(catch_unwind)]
pub fn clip_grad_norm(env: Env, grads: Vec<&NativeTensor>, max_norm: f64, norm_type: f64) -> Result<NativeTensor> {
    let op = "clipGradNorm";
    let owned: Vec<Tensor> = grads.iter().map(|t| t.get(op)).collect::<Result<_>>()?;
    let gs: Vec<&Tensor> = owned.iter().collect();
    let norm = optim::clip_grad_norm(&gs, max_norm, norm_type).js()?;
    sync_external_memory(&env);
    Ok(NativeTensor::new(norm))
}

/// Clamps every gradient element into [−limit, limit] in place.
#[napi(catch_unwind)]
pub fn clip_grad_value(env: Env, grads: Vec<&NativeTensor>, limit: f64) -> Result<()> {
    let op = "clipGradValue";
    let owned: Vec<Tensor> = grads.iter().map(|t| t.get(op)).collect::<Result<_>>()?;
    let gs: Vec<&Tensor> = owned.iter().collect();
    let out = optim::clip_grad_value(&gs, limit).js();
    sync_external_memory(&env);
    out
}
