//! CPU-vs-device parity cases, shared by `tests/parity.rs` (a real CUDA device) and
//! `tests/emulated.rs` (the host emulator of the kernels). Each case runs the same op on the
//! same fresh random inputs on the CPU (the oracle) and on `cuda:0`, and compares outputs and
//! gradients by the relative error ‖dev − cpu‖∞ / ‖cpu‖∞, printing one `PARITY` line per tensor.
//! Inputs are N(0,1)-based and never zero; the base seed changes every run (printed; set
//! RECURRENT_PARITY_SEED to replay one).

use recurrent_core::ops::dropout::dropout;
use recurrent_core::ops::elementwise::{
    add, add_scalar, broadcast_to, div, exp, log, mul, neg, relu, scale, sigmoid, sqrt, square, sub, tanh,
};
use recurrent_core::ops::embedding::embedding;
use recurrent_core::ops::loss::{cross_entropy, mse};
use recurrent_core::ops::matmul::{linear, matmul};
use recurrent_core::ops::optim::{clip_grad_norm, clip_grad_value, update, Rule};
use recurrent_core::ops::reduce::{mean, mean_all, sum, sum_all};
use recurrent_core::ops::rnn::{recurrent_layer, recurrent_layer_call, CellKind, LayerCall, RecurrentWeights};
use recurrent_core::ops::shape::{concat, reshape, slice, split, stack, transpose};
use recurrent_core::ops::softmax::{log_softmax, softmax};
use recurrent_core::{backward, DType, Device, ErrorKind, Result, Tensor};
use std::sync::OnceLock;

/// Forward and gradient tolerances (relative, ∞-norm) for float32 with TF32 off.
pub const F32_TOL: (f64, f64) = (1e-5, 1e-4);
/// For float64.
pub const F64_TOL: (f64, f64) = (1e-10, 1e-9);

pub const CELLS: [CellKind; 5] =
    [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore];

pub fn base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let s = std::env::var("RECURRENT_PARITY_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000)
                .unwrap_or(1)
        });
        println!("parity inputs: base seed {s} (RECURRENT_PARITY_SEED={s} replays it)");
        s
    })
}

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub max_abs: f64,
    pub rel: f64,
    pub tol: f64,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.rel <= self.tol
    }
}

pub fn compare(name: &str, cpu: &[f64], dev: &[f64], tol: f64) -> Outcome {
    let mut max_abs = 0.0f64;
    if cpu.len() != dev.len() {
        max_abs = f64::INFINITY;
    }
    for (&a, &b) in cpu.iter().zip(dev) {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => {}
            (false, false) => max_abs = max_abs.max((a - b).abs()),
            _ => max_abs = f64::INFINITY,
        }
        if max_abs.is_nan() {
            max_abs = f64::INFINITY;
        }
    }
    let scale = cpu.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
    let rel = if max_abs == 0.0 { 0.0 } else { max_abs / scale.max(1e-300) };
    let o = Outcome { name: name.to_string(), max_abs, rel, tol };
    println!(
        "PARITY {:<44} max_abs {:>9.2e}  rel {:>9.2e}  tol {:.0e}  {}",
        o.name,
        o.max_abs,
        o.rel,
        o.tol,
        if o.ok() { "ok" } else { "FAIL" }
    );
    o
}

/// Asserts every outcome passed, listing the failures.
pub fn assert_all(outcomes: &[Outcome]) {
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| format!("{} (rel {:.2e} > {:.0e})", o.name, o.rel, o.tol))
        .collect();
    assert!(!outcomes.is_empty(), "no comparisons ran");
    assert!(bad.is_empty(), "parity failures (base seed {}):\n{}", base_seed(), bad.join("\n"));
}

/// N(0,1)·scale values with |v| ≥ 0.05 (never zero), as `dt`.
pub fn rnd(shape: &[usize], seed: u64, dt: DType, scale_by: f64) -> Tensor {
    let t = Tensor::randn(shape, DType::F64, base_seed().wrapping_mul(1000).wrapping_add(seed)).unwrap();
    let v: Vec<f64> = t
        .to_vec_f64()
        .unwrap()
        .into_iter()
        .map(|x| scale_by * if x.abs() < 0.05 { 0.05f64.copysign(x) } else { x })
        .collect();
    cast(v, shape, dt)
}

/// Uniform in [lo, hi), as `dt`.
pub fn uni(shape: &[usize], seed: u64, dt: DType, lo: f64, hi: f64) -> Tensor {
    let t = Tensor::rand_uniform(shape, lo, hi, DType::F64, base_seed().wrapping_mul(1000).wrapping_add(seed)).unwrap();
    cast(t.to_vec_f64().unwrap(), shape, dt)
}

fn cast(v: Vec<f64>, shape: &[usize], dt: DType) -> Tensor {
    match dt {
        DType::F64 => Tensor::from_f64(v, shape).unwrap(),
        _ => Tensor::from_f32(v.into_iter().map(|x| x as f32).collect(), shape).unwrap(),
    }
}

/// Random class indices in [0, c) as int32.
pub fn classes(n: usize, c: usize, seed: u64) -> Tensor {
    let u = uni(&[n], seed, DType::F64, 0.0, c as f64).to_vec_f64().unwrap();
    Tensor::from_i32(u.into_iter().map(|x| (x as i32).min(c as i32 - 1)).collect(), &[n]).unwrap()
}

type Values = Vec<Vec<f64>>;

/// Runs `f` on `dev` with fresh leaves; returns (outputs, gradients of the inputs in `wrt` of
/// Σ_k Σ out_k ⊙ w_k with fixed random w_k).
fn run_on(
    dev: Device, inputs: &[Tensor], wrt: &[usize], seed: u64, f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Result<(Values, Values)> {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.to(dev).map(|d| d.detach())).collect::<Result<_>>()?;
    for &i in wrt {
        leaves[i].set_requires_grad(true)?;
    }
    let outs = f(&leaves)?;
    for o in &outs {
        assert_eq!(o.device(), dev, "an output of the case is on {} instead of {dev}", o.device());
    }
    let values = outs.iter().map(|o| o.to_vec_f64()).collect::<Result<Vec<_>>>()?;
    let mut grads = Vec::new();
    if !wrt.is_empty() {
        let mut total: Option<Tensor> = None;
        for (k, o) in outs.iter().enumerate().filter(|(_, o)| o.dtype().is_float() && o.requires_grad()) {
            let w = Tensor::randn(o.shape(), o.dtype(), seed.wrapping_add(977 * k as u64 + 13))?.to(dev)?;
            let term = sum_all(&mul(o, &w)?)?;
            total = Some(match total {
                Some(t) => add(&t, &term)?,
                None => term,
            });
        }
        if let Some(total) = total {
            backward(&total, None)?;
        }
        for &i in wrt {
            grads.push(match leaves[i].grad() {
                Some(g) => {
                    assert_eq!(g.device(), dev, "a gradient is on {} instead of {dev}", g.device());
                    g.to_vec_f64()?
                }
                None => vec![0.0; leaves[i].numel()],
            });
        }
    }
    Ok((values, grads))
}

/// Compares `f` on the CPU and on `dev`: outputs with tol.0, gradients of inputs `wrt` with tol.1.
pub fn parity(
    case: &str, dev: Device, inputs: &[Tensor], wrt: &[usize], tol: (f64, f64),
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Vec<Outcome> {
    let seed = base_seed() ^ 0x5eed;
    let (cv, cg) = run_on(Device::Cpu, inputs, wrt, seed, &f).unwrap_or_else(|e| panic!("{case} on the CPU: {e}"));
    let (dv, dg) = run_on(dev, inputs, wrt, seed, &f).unwrap_or_else(|e| panic!("{case} on {dev}: {e}"));
    let mut out = Vec::new();
    for (k, (c, d)) in cv.iter().zip(&dv).enumerate() {
        out.push(compare(&format!("{case}.out{k}"), c, d, tol.0));
    }
    for (k, (c, d)) in cg.iter().zip(&dg).enumerate() {
        out.push(compare(&format!("{case}.grad{}", wrt[k]), c, d, tol.1));
    }
    out
}

fn tol_of(dt: DType) -> (f64, f64) {
    if dt == DType::F64 {
        F64_TOL
    } else {
        F32_TOL
    }
}

// ---------------------------------------------------------------------------------------------
// op families

pub fn elementwise(dev: Device, dt: DType) -> Vec<Outcome> {
    let tol = tol_of(dt);
    let mut out = Vec::new();
    let d = if dt == DType::F64 { "f64" } else { "f32" };
    let pairs: [(&[usize], &[usize]); 5] =
        [(&[3, 4], &[3, 4]), (&[2, 3, 4], &[4]), (&[2, 1, 4], &[3, 1]), (&[5, 1], &[1, 6]), (&[], &[2, 3])];
    for (pi, (sa, sb)) in pairs.iter().enumerate() {
        let a = rnd(sa, 10 + pi as u64, dt, 1.0);
        let b = rnd(sb, 20 + pi as u64, dt, 1.0);
        let bp = uni(sb, 30 + pi as u64, dt, 0.5, 2.0);
        out.extend(parity(&format!("add{pi}_{d}"), dev, &[a.clone(), b.clone()], &[0, 1], tol, |x| {
            Ok(vec![add(&x[0], &x[1])?])
        }));
        out.extend(parity(&format!("sub{pi}_{d}"), dev, &[a.clone(), b.clone()], &[0, 1], tol, |x| {
            Ok(vec![sub(&x[0], &x[1])?])
        }));
        out.extend(parity(&format!("mul{pi}_{d}"), dev, &[a.clone(), b.clone()], &[0, 1], tol, |x| {
            Ok(vec![mul(&x[0], &x[1])?])
        }));
        out.extend(parity(&format!("div{pi}_{d}"), dev, &[a.clone(), bp], &[0, 1], tol, |x| {
            Ok(vec![div(&x[0], &x[1])?])
        }));
    }
    let x = rnd(&[7, 9], 40, dt, 1.0);
    let pos = uni(&[7, 9], 41, dt, 0.2, 3.0);
    type Un = fn(&Tensor) -> Result<Tensor>;
    let unary: [(&str, Un, bool); 10] = [
        ("neg", neg, false),
        ("exp", exp, false),
        ("log", log, true),
        ("tanh", tanh, false),
        ("sigmoid", sigmoid, false),
        ("relu", relu, false),
        ("scale", |t| scale(t, 0.7), false),
        ("addScalar", |t| add_scalar(t, -0.3), false),
        ("square", square, false),
        ("sqrt", sqrt, true),
    ];
    for (name, f, positive) in unary {
        let input = if positive { pos.clone() } else { x.clone() };
        out.extend(parity(&format!("{name}_{d}"), dev, &[input], &[0], tol, move |x| Ok(vec![f(&x[0])?])));
    }
    let small = rnd(&[3, 1], 42, dt, 1.0);
    out.extend(parity(&format!("broadcastTo_{d}"), dev, &[small], &[0], tol, |x| {
        Ok(vec![broadcast_to(&x[0], &[2, 3, 4])?])
    }));
    out
}

pub fn reductions(dev: Device, dt: DType) -> Vec<Outcome> {
    let tol = tol_of(dt);
    let d = if dt == DType::F64 { "f64" } else { "f32" };
    let mut out = Vec::new();
    // Mixed signs around a mean of 0.5: zero-mean inputs make a full sum ill-conditioned (120
    // N(0,1) values once summed to 0.038, and the order-dependent f32 rounding of the CPU and
    // the device, relative to that small total, read 2.3e-5 against the 1e-5 tolerance).
    let x = uni(&[4, 5, 6], 50, dt, -0.5, 1.5);
    let axes: [(&[usize], bool); 6] =
        [(&[], false), (&[0], false), (&[1], true), (&[0, 2], false), (&[2], false), (&[0, 1, 2], true)];
    for (k, (ax, keep)) in axes.iter().enumerate() {
        out.extend(parity(&format!("sum{k}_{d}"), dev, &[x.clone()], &[0], tol, |x| Ok(vec![sum(&x[0], ax, *keep)?])));
        out.extend(parity(&format!("mean{k}_{d}"), dev, &[x.clone()], &[0], tol, |x| {
            Ok(vec![mean(&x[0], ax, *keep)?])
        }));
    }
    // The block paths: long reductions into one output (split into parts) and into a few.
    // Positive inputs: a sum of zero-mean values is ill-conditioned, and the CPU oracle's own
    // rounding (relative to a small total) would approach the tolerance.
    let long = uni(&[200_000], 51, dt, 0.5, 1.5);
    out.extend(parity(&format!("sumAll_long_{d}"), dev, &[long], &[0], tol, |x| {
        Ok(vec![sum_all(&x[0])?, mean_all(&x[0])?])
    }));
    let tall = uni(&[3000, 3], 52, dt, 0.5, 1.5);
    out.extend(parity(&format!("sum_columns_{d}"), dev, &[tall], &[0], tol, |x| Ok(vec![sum(&x[0], &[0], false)?])));
    // Kept dimension innermost: the tiled path, with a partial last tile of 32 outputs, and
    // a reduction over two non-adjacent runs.
    let cols = uni(&[2000, 70], 54, dt, 0.5, 1.5);
    out.extend(parity(&format!("sum_tiles_{d}"), dev, &[cols], &[0], tol, |x| Ok(vec![sum(&x[0], &[0], false)?])));
    let boxy = uni(&[40, 30, 3, 33], 55, dt, 0.5, 1.5);
    out.extend(parity(&format!("sum_tiles_runs_{d}"), dev, &[boxy], &[0], tol, |x| {
        Ok(vec![sum(&x[0], &[0, 1], false)?, mean(&x[0], &[0, 2], true)?])
    }));
    let wide = rnd(&[4096, 5], 53, dt, 1.0);
    out.extend(parity(&format!("sum_rows_{d}"), dev, &[wide], &[0], tol, |x| Ok(vec![sum(&x[0], &[1], false)?])));
    out
}

pub fn shapes(dev: Device) -> Vec<Outcome> {
    let tol = F32_TOL;
    let dt = DType::F32;
    let mut out = Vec::new();
    let x = rnd(&[2, 3, 4], 60, dt, 1.0);
    out.extend(parity("reshape", dev, &[x.clone()], &[0], tol, |x| Ok(vec![reshape(&x[0], &[4, -1])?])));
    out.extend(parity("transpose02", dev, &[x.clone()], &[0], tol, |x| Ok(vec![transpose(&x[0], 0, 2)?])));
    out.extend(parity("transpose12", dev, &[x.clone()], &[0], tol, |x| Ok(vec![transpose(&x[0], 1, 2)?])));
    let y = rnd(&[2, 5, 4], 61, dt, 1.0);
    let z = rnd(&[2, 1, 4], 62, dt, 1.0);
    out.extend(parity("concat", dev, &[x.clone(), y, z], &[0, 1, 2], tol, |x| {
        Ok(vec![concat(&[&x[0], &x[1], &x[2]], 1)?])
    }));
    let w = rnd(&[2, 3, 4], 63, dt, 1.0);
    out.extend(parity("stack", dev, &[x.clone(), w], &[0, 1], tol, |x| Ok(vec![stack(&[&x[0], &x[1]], 1)?])));
    // Only two of three pieces reach the loss: the third gets zeros on the device.
    out.extend(parity("split", dev, &[x.clone()], &[0], tol, |x| {
        let p = split(&x[0], 2, &[1, 2, 1])?;
        Ok(vec![p[0].clone(), p[2].clone()])
    }));
    out.extend(parity("slice", dev, &[x.clone()], &[0], tol, |x| Ok(vec![slice(&x[0], 1, 1, 2)?])));
    // int32 data through the copy kernels.
    let idx = Tensor::from_i32((0..24).map(|v| v * 7 - 30).collect(), &[2, 3, 4]).unwrap();
    let idx2 = Tensor::from_i32((0..8).map(|v| 100 + v).collect(), &[2, 1, 4]).unwrap();
    out.extend(parity("int32_shape_ops", dev, &[idx, idx2], &[], tol, |x| {
        Ok(vec![transpose(&x[0], 0, 2)?, concat(&[&x[0], &x[1]], 1)?, slice(&x[0], 2, 1, 2)?])
    }));
    out
}

pub fn matmuls(dev: Device, dt: DType) -> Vec<Outcome> {
    let tol = tol_of(dt);
    let d = if dt == DType::F64 { "f64" } else { "f32" };
    let mut out = Vec::new();
    let (a, b) = (rnd(&[5, 7], 70, dt, 1.0), rnd(&[7, 3], 71, dt, 1.0));
    out.extend(parity(&format!("matmul2d_{d}"), dev, &[a, b], &[0, 1], tol, |x| Ok(vec![matmul(&x[0], &x[1])?])));
    let (a, b) = (rnd(&[4, 5, 6], 72, dt, 1.0), rnd(&[4, 6, 2], 73, dt, 1.0));
    out.extend(parity(&format!("matmul3d_{d}"), dev, &[a, b], &[0, 1], tol, |x| Ok(vec![matmul(&x[0], &x[1])?])));
    let (x, w, bias) = (rnd(&[3, 4, 6], 74, dt, 1.0), rnd(&[5, 6], 75, dt, 1.0), rnd(&[5], 76, dt, 1.0));
    out.extend(parity(&format!("linear_{d}"), dev, &[x.clone(), w.clone(), bias], &[0, 1, 2], tol, |x| {
        Ok(vec![linear(&x[0], &x[1], Some(&x[2]))?])
    }));
    out.extend(parity(&format!("linear_nobias_{d}"), dev, &[x, w], &[0, 1], tol, |x| {
        Ok(vec![linear(&x[0], &x[1], None)?])
    }));
    out
}

pub fn softmaxes(dev: Device) -> Vec<Outcome> {
    let tol = F32_TOL;
    let dt = DType::F32;
    let mut out = Vec::new();
    let rows = rnd(&[6, 10], 80, dt, 2.0);
    out.extend(parity("softmax_rows", dev, &[rows.clone()], &[0], tol, |x| Ok(vec![softmax(&x[0], 1)?])));
    out.extend(parity("logSoftmax_rows", dev, &[rows], &[0], tol, |x| Ok(vec![log_softmax(&x[0], 1)?])));
    let cols = rnd(&[3, 5, 4], 81, dt, 2.0);
    out.extend(parity("softmax_cols", dev, &[cols.clone()], &[0], tol, |x| Ok(vec![softmax(&x[0], 1)?])));
    out.extend(parity("logSoftmax_cols", dev, &[cols], &[0], tol, |x| Ok(vec![log_softmax(&x[0], 1)?])));
    let first = rnd(&[7, 3], 82, dt, 2.0);
    out.extend(parity("softmax_axis0", dev, &[first], &[0], tol, |x| Ok(vec![softmax(&x[0], 0)?])));
    let vocab = rnd(&[4, 3000], 83, dt, 3.0);
    out.extend(parity("logSoftmax_vocab", dev, &[vocab], &[0], tol, |x| Ok(vec![log_softmax(&x[0], 1)?])));
    out
}

pub fn losses(dev: Device) -> Vec<Outcome> {
    let tol = F32_TOL;
    let dt = DType::F32;
    let mut out = Vec::new();
    let (p, t) = (rnd(&[4, 5], 90, dt, 1.0), rnd(&[4, 5], 91, dt, 1.0));
    out.extend(parity("mse", dev, &[p, t], &[0, 1], tol, |x| Ok(vec![mse(&x[0], &x[1])?])));
    let logits = rnd(&[8, 5], 92, dt, 2.0);
    let targets = classes(8, 5, 93);
    out.extend(parity("crossEntropy", dev, &[logits.clone(), targets.clone()], &[0], tol, |x| {
        Ok(vec![cross_entropy(&x[0], &x[1], None)?])
    }));
    let mut tv = targets.to_vec_i32().unwrap();
    tv[1] = -100;
    tv[5] = -100;
    let ignored = Tensor::from_i32(tv, &[8]).unwrap();
    out.extend(parity("crossEntropy_ignore", dev, &[logits.clone(), ignored], &[0], tol, |x| {
        Ok(vec![cross_entropy(&x[0], &x[1], Some(-100))?])
    }));
    let all_ignored = Tensor::from_i32(vec![-1; 8], &[8]).unwrap();
    out.extend(parity("crossEntropy_allIgnored", dev, &[logits.clone(), all_ignored], &[0], tol, |x| {
        Ok(vec![cross_entropy(&x[0], &x[1], Some(-1))?])
    }));
    let big = rnd(&[6, 2000], 94, dt, 3.0);
    out.extend(parity("crossEntropy_vocab", dev, &[big, classes(6, 2000, 95)], &[0], tol, |x| {
        Ok(vec![cross_entropy(&x[0], &x[1], None)?])
    }));
    // An out-of-range target is the CPU's error on the device too, and poisons nothing else.
    let bad = Tensor::from_i32(vec![0, 1, 7, 2, 0, 1, 2, 3], &[8]).unwrap();
    let cpu_err = cross_entropy(&logits, &bad, None).and_then(|l| l.item()).unwrap_err();
    let dev_err =
        cross_entropy(&logits.to(dev).unwrap(), &bad.to(dev).unwrap(), None).and_then(|l| l.item()).unwrap_err();
    assert_eq!(cpu_err.kind(), ErrorKind::Value);
    assert_eq!(dev_err.kind(), ErrorKind::Value, "{dev_err}");
    assert!(dev_err.to_string().contains("target 7 at row 2"), "{dev_err}");
    out
}

pub fn embeddings(dev: Device) -> Vec<Outcome> {
    let tol = F32_TOL;
    let mut out = Vec::new();
    let w = rnd(&[10, 4], 100, DType::F32, 1.0);
    let idx = Tensor::from_i32(vec![3, 1, 3, 9, 0, 3, 7, 1, 1, 2, 5, 3, 8, 8, 0], &[3, 5]).unwrap();
    out.extend(parity("embedding", dev, &[w.clone(), idx], &[0], tol, |x| Ok(vec![embedding(&x[0], &x[1])?])));
    let bad = Tensor::from_i32(vec![1, 10], &[2]).unwrap();
    let err = embedding(&w.to(dev).unwrap(), &bad.to(dev).unwrap()).and_then(|e| e.to_vec_f32()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value, "{err}");
    assert!(err.to_string().contains("index 10 at position 1"), "{err}");
    out
}

pub fn dropouts(dev: Device) -> Vec<Outcome> {
    let x = rnd(&[50, 40], 110, DType::F32, 1.0);
    // Exact: the same mask from the same seed, and the same scaling.
    parity("dropout", dev, &[x], &[0], (0.0, 0.0), |x| Ok(vec![dropout(&x[0], 0.3, 7, true)?]))
}

/// Several steps of every update rule, then the parameters and states compared.
pub fn optimizers(dev: Device) -> Vec<Outcome> {
    let tol = F32_TOL.0;
    let dt = DType::F32;
    let shape = [40, 30];
    let rules: Vec<(&str, Box<dyn Fn(u64) -> Rule>)> = vec![
        (
            "sgd",
            Box::new(|_| Rule::Sgd {
                lr: 0.1,
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 0.01,
                first: false,
            }),
        ),
        (
            "sgd_momentum",
            Box::new(|s| Rule::Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
                weight_decay: 0.0,
                first: s == 1,
            }),
        ),
        (
            "sgd_nesterov",
            Box::new(|s| Rule::Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
                weight_decay: 0.01,
                first: s == 1,
            }),
        ),
        (
            "adam",
            Box::new(|s| Rule::Adam {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled: false,
                step: s,
            }),
        ),
        (
            "adamw",
            Box::new(|s| Rule::Adam {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled: true,
                step: s,
            }),
        ),
        (
            "rmsprop",
            Box::new(|_| Rule::RmsProp {
                lr: 1e-2,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.0,
                centered: false,
            }),
        ),
        (
            "rmsprop_momentum",
            Box::new(|_| Rule::RmsProp {
                lr: 1e-2,
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: 0.01,
                momentum: 0.9,
                centered: false,
            }),
        ),
        (
            "rmsprop_centered",
            Box::new(|_| Rule::RmsProp {
                lr: 1e-2,
                alpha: 0.9,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.0,
                centered: true,
            }),
        ),
        (
            "rmsprop_centered_momentum",
            Box::new(|_| Rule::RmsProp {
                lr: 1e-2,
                alpha: 0.9,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.5,
                centered: true,
            }),
        ),
        ("adagrad", Box::new(|s| Rule::Adagrad { lr: 0.1, lr_decay: 0.01, weight_decay: 0.01, eps: 1e-10, step: s })),
    ];
    let mut out = Vec::new();
    for (ri, (name, rule)) in rules.iter().enumerate() {
        let n_state = rule(1).state_count();
        let p0 = rnd(&shape, 120 + ri as u64, dt, 1.0);
        let grads: Vec<Tensor> = (0..3).map(|s| rnd(&shape, 130 + 10 * ri as u64 + s, dt, 1.0)).collect();
        // States start positive where the rule needs it (square averages), small elsewhere.
        let states0: Vec<Tensor> = (0..n_state)
            .map(|k| {
                if k == 0 {
                    uni(&shape, 140 + ri as u64, dt, 0.5, 1.5)
                } else {
                    uni(&shape, 150 + 3 * ri as u64 + k as u64, dt, -0.1, 0.1)
                }
            })
            .collect();
        let run = |d: Device| -> Result<Vec<Vec<f64>>> {
            let p = p0.to(d)?.detach();
            let states: Vec<Tensor> = states0.iter().map(|s| s.to(d).map(|t| t.detach())).collect::<Result<_>>()?;
            for (s, g) in grads.iter().enumerate() {
                let g = g.to(d)?;
                let refs: Vec<&Tensor> = states.iter().collect();
                update(rule(s as u64 + 1), &p, &g, &refs)?;
            }
            let mut v = vec![p.to_vec_f64()?];
            for s in &states {
                assert_eq!(s.device(), d);
                v.push(s.to_vec_f64()?);
            }
            Ok(v)
        };
        let (c, g) = (run(Device::Cpu).unwrap(), run(dev).unwrap_or_else(|e| panic!("{name} on {dev}: {e}")));
        for (k, (a, b)) in c.iter().zip(&g).enumerate() {
            out.push(compare(
                &format!("{name}.{}", if k == 0 { "param".to_string() } else { format!("state{}", k - 1) }),
                a,
                b,
                tol,
            ));
        }
    }
    // Gradient clipping: by norm (2, 1, inf; clipping and not) and by value.
    let gs: Vec<Tensor> =
        [[6, 7], [30, 1], [5, 5]].iter().enumerate().map(|(k, s)| rnd(s, 160 + k as u64, dt, 1.0)).collect();
    for (norm_type, max_norm) in [(2.0, 1.0), (2.0, 1e6), (1.0, 3.0), (f64::INFINITY, 0.5)] {
        let run = |d: Device| -> Result<Vec<Vec<f64>>> {
            let g: Vec<Tensor> = gs.iter().map(|t| t.to(d).map(|x| x.detach())).collect::<Result<_>>()?;
            let refs: Vec<&Tensor> = g.iter().collect();
            let norm = clip_grad_norm(&refs, max_norm, norm_type)?;
            let mut v = vec![norm.to_vec_f64()?];
            for t in &g {
                v.push(t.to_vec_f64()?);
            }
            Ok(v)
        };
        let (c, g) = (run(Device::Cpu).unwrap(), run(dev).unwrap());
        for (k, (a, b)) in c.iter().zip(&g).enumerate() {
            out.push(compare(
                &format!(
                    "clipGradNorm_{norm_type}_{max_norm}.{}",
                    if k == 0 { "norm".into() } else { format!("g{}", k - 1) }
                ),
                a,
                b,
                tol,
            ));
        }
    }
    let run = |d: Device| -> Result<Vec<f64>> {
        let g = gs[0].to(d)?.detach();
        clip_grad_value(&[&g], 0.5)?;
        g.to_vec_f64()
    };
    out.push(compare("clipGradValue", &run(Device::Cpu).unwrap(), &run(dev).unwrap(), 0.0));
    out
}

/// Inputs of one recurrent layer: x, h0, [c0], w_ih, w_hh, [b_ih, b_hh].
pub fn layer_inputs(
    kind: CellKind, t: usize, b: usize, i: usize, h: usize, bias: bool, dt: DType, seed: u64,
) -> Vec<Tensor> {
    let g = kind.gates();
    let s = 0.6;
    let mut v = vec![rnd(&[t, b, i], seed, dt, s), rnd(&[b, h], seed + 1, dt, s)];
    if kind.has_c() {
        v.push(rnd(&[b, h], seed + 2, dt, s));
    }
    let ws = 1.0 / (h as f64).sqrt();
    v.push(rnd(&[g * h, i], seed + 3, dt, ws));
    v.push(rnd(&[g * h, h], seed + 4, dt, ws));
    if bias {
        v.push(rnd(&[g * h], seed + 5, dt, 0.3));
        v.push(rnd(&[g * h], seed + 6, dt, 0.3));
    }
    v
}

pub fn run_layer(kind: CellKind, x: &[Tensor], lengths: Option<&[usize]>, reverse: bool) -> Result<Vec<Tensor>> {
    let c = kind.has_c() as usize;
    let c0 = if c == 1 { Some(&x[2]) } else { None };
    let (b_ih, b_hh) = if x.len() > 4 + c { (Some(&x[4 + c]), Some(&x[5 + c])) } else { (None, None) };
    let w = RecurrentWeights { w_ih: &x[2 + c], w_hh: &x[3 + c], b_ih, b_hh };
    let out = recurrent_layer(kind, &x[0], &x[1], c0, &w, lengths, reverse)?;
    let mut v = vec![out.y, out.h_t];
    v.extend(out.c_t);
    Ok(v)
}

fn kind_name(kind: CellKind) -> &'static str {
    match kind {
        CellKind::RnnTanh => "rnn_tanh",
        CellKind::RnnRelu => "rnn_relu",
        CellKind::Lstm => "lstm",
        CellKind::Gru => "gru",
        CellKind::GruResetBefore => "gru_reset_before",
    }
}

/// The fused recurrent op, forward and every input's gradient, for one cell: full and
/// variable lengths, both directions, with and without biases.
pub fn recurrent(dev: Device, kind: CellKind, dt: DType) -> Vec<Outcome> {
    let tol = tol_of(dt);
    let (t, b, i, h) = (6, 3, 5, 7);
    let lengths = [6usize, 2, 4];
    let mut out = Vec::new();
    let mut seed = 200;
    for (lens, reverse) in [(None, false), (Some(&lengths[..]), false), (None, true), (Some(&lengths[..]), true)] {
        for bias in [true, false] {
            if !bias && (lens.is_some() || reverse) {
                continue;
            }
            seed += 10;
            let x = layer_inputs(kind, t, b, i, h, bias, dt, seed);
            let wrt: Vec<usize> = (0..x.len()).collect();
            let name = format!(
                "{}{}{}{}_{}",
                kind_name(kind),
                if lens.is_some() { "_lengths" } else { "" },
                if reverse { "_reverse" } else { "" },
                if bias { "" } else { "_nobias" },
                if dt == DType::F64 { "f64" } else { "f32" }
            );
            out.extend(parity(&name, dev, &x, &wrt, tol, move |x| run_layer(kind, x, lens, reverse)));
        }
    }
    // Only the final state reaches the loss: the backward runs without dy.
    let x = layer_inputs(kind, t, b, i, h, true, dt, 290);
    let wrt: Vec<usize> = (0..x.len()).collect();
    let name = format!("{}_final_state_only_{}", kind_name(kind), if dt == DType::F64 { "f64" } else { "f32" });
    out.extend(parity(&name, dev, &x, &wrt, tol, move |x| {
        Ok(run_layer(kind, x, Some(&lengths[..]), true)?.split_off(1))
    }));
    // x is data (no gradient asked): the backward skips dX; the other gradients must not change.
    let x = layer_inputs(kind, t, b, i, h, true, dt, 300);
    let wrt: Vec<usize> = (1..x.len()).collect();
    let name = format!("{}_data_input_no_dx_{}", kind_name(kind), if dt == DType::F64 { "f64" } else { "f32" });
    out.extend(parity(&name, dev, &x, &wrt, tol, move |x| run_layer(kind, x, Some(&lengths[..]), true)));
    // Batch-first x [B, T, I] and no states: the CPU reads the layout in place and starts from
    // zeros inside the op; a device call runs the plain op between transposes, with zero states.
    let mut x = layer_inputs(kind, t, b, i, h, true, dt, 310);
    x[0] = rnd(&[b, t, i], 311, dt, 0.6);
    x.drain(1..1 + 1 + kind.has_c() as usize);
    let wrt: Vec<usize> = (0..x.len()).collect();
    let name = format!("{}_batch_first_zero_states_{}", kind_name(kind), if dt == DType::F64 { "f64" } else { "f32" });
    out.extend(parity(&name, dev, &x, &wrt, tol, move |x| {
        let w = RecurrentWeights { w_ih: &x[1], w_hh: &x[2], b_ih: Some(&x[3]), b_hh: Some(&x[4]) };
        let call =
            LayerCall { lengths: Some(&[6.0, 2.0, 4.0]), reverse: true, batch_first: true, ..Default::default() };
        let out = recurrent_layer_call(kind, &x[0], &w, &call)?;
        let mut v = vec![out.y, out.h_t];
        v.extend(out.c_t);
        Ok(v)
    }));
    out
}

/// Full training steps: layer → linear head → loss → backward → Adam, twice; the updated
/// parameters compared (and the losses). Cross-entropy for the GRUs, MSE for the rest.
pub fn training(dev: Device, kind: CellKind, lengths: bool, reverse: bool) -> Vec<Outcome> {
    let dt = DType::F32;
    let (t, b, i, h, o) = (7, 4, 5, 8, 3);
    let lens = [7usize, 3, 5, 1];
    let lens = if lengths { Some(&lens[..]) } else { None };
    let x0 = layer_inputs(kind, t, b, i, h, true, dt, 300);
    let head_w = rnd(&[o, h], 310, dt, 0.4);
    let head_b = rnd(&[o], 311, dt, 0.1);
    let target = rnd(&[t, b, o], 312, dt, 1.0);
    let cls = classes(t * b, o, 313);
    let use_ce = matches!(kind, CellKind::Gru | CellKind::GruResetBefore);
    let c = kind.has_c() as usize;
    let run = |d: Device| -> Result<Vec<Vec<f64>>> {
        // Parameters: w_ih, w_hh, b_ih, b_hh, head w, head b. Data: x, h0, [c0].
        let data: Vec<Tensor> = x0[..2 + c].iter().map(|v| v.to(d)).collect::<Result<_>>()?;
        let params: Vec<Tensor> =
            x0[2 + c..].iter().chain([&head_w, &head_b]).map(|v| v.to(d).map(|p| p.detach())).collect::<Result<_>>()?;
        for p in &params {
            p.set_requires_grad(true)?;
        }
        let states: Vec<Vec<Tensor>> = params
            .iter()
            .map(|p| (0..2).map(|_| Tensor::zeros(p.shape(), dt).and_then(|z| z.to(d))).collect::<Result<_>>())
            .collect::<Result<_>>()?;
        let (target, cls) = (target.to(d)?, cls.to(d)?);
        let mut losses = Vec::new();
        for step in 1..=2u64 {
            let mut layer_in: Vec<Tensor> = data.clone();
            layer_in.extend(params[..4].iter().cloned());
            let outs = run_layer(kind, &layer_in, lens, reverse)?;
            let pred = linear(&outs[0], &params[4], Some(&params[5]))?;
            let loss = if use_ce {
                cross_entropy(&reshape(&pred, &[-1, o as isize])?, &cls, None)?
            } else {
                mse(&pred, &target)?
            };
            for p in &params {
                p.zero_grad();
            }
            backward(&loss, None)?;
            losses.push(loss.item()?);
            for (p, st) in params.iter().zip(&states) {
                let g = p.grad().expect("every parameter gets a gradient");
                assert_eq!(g.device(), d);
                update(
                    Rule::Adam {
                        lr: 1e-2,
                        beta1: 0.9,
                        beta2: 0.999,
                        eps: 1e-8,
                        weight_decay: 0.0,
                        decoupled: false,
                        step,
                    },
                    p,
                    &g,
                    &[&st[0], &st[1]],
                )?;
            }
        }
        let mut v = vec![losses];
        for p in &params {
            v.push(p.to_vec_f64()?);
        }
        Ok(v)
    };
    let name = format!(
        "train_{}{}{}",
        kind_name(kind),
        if lengths { "_lengths" } else { "" },
        if reverse { "_reverse" } else { "" }
    );
    let cpu = run(Device::Cpu).unwrap();
    let devv = run(dev).unwrap_or_else(|e| panic!("{name} on {dev}: {e}"));
    let labels = ["losses", "w_ih", "w_hh", "b_ih", "b_hh", "head_w", "head_b"];
    cpu.iter()
        .zip(&devv)
        .zip(labels)
        .map(|((a, b), l)| compare(&format!("{name}.{l}"), a, b, if l == "losses" { F32_TOL.0 } else { F32_TOL.1 }))
        .collect()
}

/// TBPTT: an LSTM trained chunk after chunk with the state carried (detached). After warm-up,
/// the device's memory must stay flat: the caching allocator serves every request. Returns
/// `stats()` after each chunk (driver allocations, reserved bytes), for [`assert_memory_flat`].
pub fn tbptt_memory(dev: Device, stats: &dyn Fn() -> (u64, u64)) -> Vec<(u64, u64)> {
    let dt = DType::F32;
    let (k, b, i, h) = (12, 4, 6, 16);
    let x0 = layer_inputs(CellKind::Lstm, k, b, i, h, true, dt, 400);
    let params: Vec<Tensor> = x0[3..].iter().map(|p| p.to(dev).unwrap().detach()).collect();
    for p in &params {
        p.set_requires_grad(true).unwrap();
    }
    let mut hs = x0[1].to(dev).unwrap();
    let mut cs = x0[2].to(dev).unwrap();
    let mut series = Vec::new();
    for chunk in 0..TBPTT_CHUNKS {
        {
            let x = rnd(&[k, b, i], 500 + chunk, dt, 0.6).to(dev).unwrap();
            let target = rnd(&[k, b, h], 600 + chunk, dt, 0.5).to(dev).unwrap();
            let w =
                RecurrentWeights { w_ih: &params[0], w_hh: &params[1], b_ih: Some(&params[2]), b_hh: Some(&params[3]) };
            let out = recurrent_layer(CellKind::Lstm, &x, &hs, Some(&cs), &w, None, false).unwrap();
            let loss = mse(&out.y, &target).unwrap();
            for p in &params {
                p.zero_grad();
            }
            backward(&loss, None).unwrap();
            for p in &params {
                let g = p.grad().unwrap();
                update(
                    Rule::Sgd {
                        lr: 0.05,
                        momentum: 0.0,
                        dampening: 0.0,
                        nesterov: false,
                        weight_decay: 0.0,
                        first: false,
                    },
                    p,
                    &g,
                    &[],
                )
                .unwrap();
                p.zero_grad();
            }
            hs = out.h_t.detach();
            cs = out.c_t.unwrap().detach();
            // Wait for this chunk's work: the updated parameters and the carried state.
            for p in &params {
                p.to_vec_f32().unwrap();
            }
            hs.to_vec_f32().unwrap();
            assert!(loss.item().unwrap().is_finite());
        }
        series.push(stats());
    }
    series
}

/// Chunks run by [`tbptt_memory`], and how many of them are warm-up: the allocator's cache
/// fills over the first chunks (buffers freed late by the executor's threads are not yet back
/// when the next chunk asks), so flatness is judged after them.
pub const TBPTT_CHUNKS: u64 = 16;
pub const TBPTT_WARMUP: usize = 6;

/// Checks a [`tbptt_memory`] series of (driver allocations, reserved bytes) after each chunk:
/// after the warm-up, the driver's allocation count stops growing, with one allocation (one
/// bucket, at most `bucket_slack` bytes) of slack for a late-freed buffer; not exact equality,
/// which would depend on thread timing. Returns the report line.
pub fn assert_memory_flat(series: &[(u64, u64)], bucket_slack: u64) -> String {
    assert_eq!(series.len() as u64, TBPTT_CHUNKS);
    let (warm, end) = (series[TBPTT_WARMUP - 1], series[series.len() - 1]);
    let line = format!(
        "TBPTT memory after each chunk (driver allocations, reserved bytes): {series:?}; after warm-up {warm:?}, end {end:?}"
    );
    assert!(end.0 <= warm.0 + 1, "the driver's allocation count kept growing after the warm-up: {line}");
    assert!(end.1 <= warm.1 + bucket_slack, "reserved memory grew by more than one bucket after the warm-up: {line}");
    line
}

/// The largest buffer of one [`tbptt_memory`] chunk (the gates, k·b·4h floats), as a bucket.
pub fn tbptt_bucket_slack() -> u64 {
    recurrent_cuda::alloc::bucket(12 * 4 * 4 * 16 * 4) as u64
}

/// Int32 `shape` with values in [lo, hi), from fresh random numbers.
fn ints_in(shape: &[usize], seed: u64, lo: i32, hi: i32) -> Tensor {
    let n: usize = shape.iter().product();
    let v = classes(n, (hi - lo) as usize, seed).to_vec_i32().unwrap();
    Tensor::from_i32(v.into_iter().map(|x| x + lo).collect(), shape).unwrap()
}

/// The decoding primitives: comparisons, where, maskedFill, sequenceMask, cast, max/argmax,
/// topk, gather and indexSelect, with their gradients; indices and 0/1 outputs must match
/// exactly (tolerance 0 on them through the relative error of their values).
pub fn primitives(dev: Device, dt: DType) -> Vec<Outcome> {
    use recurrent_core::ops::cast::cast;
    use recurrent_core::ops::compare::{eq, gt, lt, masked_fill, sequence_mask, where_};
    use recurrent_core::ops::index::{argmax, gather, index_select, max, topk};
    let tol = tol_of(dt);
    let d = if dt == DType::F64 { "f64" } else { "f32" };
    let mut out = Vec::new();
    let exact = (0.0, tol.1);

    let (a, b) = (rnd(&[3, 4], 200, dt, 1.0), rnd(&[4], 201, dt, 1.0));
    out.extend(parity(&format!("compare_{d}"), dev, &[a.clone(), b.clone()], &[], exact, |x| {
        Ok(vec![eq(&x[0], &x[0])?, lt(&x[0], &x[1])?, gt(&x[0], &x[1])?])
    }));
    let (ia, ib) = (ints_in(&[5, 1], 202, -2, 3), ints_in(&[1, 6], 203, -2, 3));
    out.extend(parity("compare_i32", dev, &[ia, ib], &[], exact, |x| {
        Ok(vec![eq(&x[0], &x[1])?, lt(&x[0], &x[1])?, gt(&x[0], &x[1])?])
    }));

    let inputs = [
        rnd(&[2, 3, 4], 204, dt, 1.0),
        rnd(&[3, 1], 205, dt, 1.0),
        rnd(&[2, 1, 4], 206, dt, 1.0),
        rnd(&[3, 4], 207, dt, 1.0),
    ];
    out.extend(parity(&format!("where_{d}"), dev, &inputs, &[0, 1], tol, |x| {
        Ok(vec![where_(&gt(&x[2], &x[3])?, &x[0], &x[1])?])
    }));
    let inputs = [rnd(&[4, 5], 208, dt, 1.0), rnd(&[4, 1], 209, dt, 1.0), rnd(&[1, 5], 210, dt, 1.0)];
    out.extend(parity(&format!("maskedFill_{d}"), dev, &inputs, &[0], tol, |x| {
        Ok(vec![masked_fill(&x[0], &gt(&x[1], &x[2])?, -1e4)?, masked_fill(&x[0], &lt(&x[2], &x[2])?, 2.5)?])
    }));
    out.extend(parity("sequenceMask", dev, &[ints_in(&[7], 211, 1, 10)], &[], exact, |x| {
        Ok(vec![sequence_mask(&x[0], 9)?])
    }));

    let other = if dt == DType::F64 { DType::F32 } else { DType::F64 };
    let wide = rnd(&[6, 7], 212, dt, 100.0);
    out.extend(parity(&format!("cast_{d}"), dev, &[wide], &[0], tol, move |x| {
        let i = cast(&x[0], DType::I32)?;
        Ok(vec![cast(&x[0], other)?, i.clone(), cast(&i, dt)?, cast(&i, other)?])
    }));

    let x = rnd(&[4, 5, 6], 213, dt, 1.0);
    for axis in 0..3 {
        out.extend(parity(&format!("max{axis}_{d}"), dev, &[x.clone()], &[0], tol, move |x| {
            let (v, i) = max(&x[0], axis, axis == 1)?;
            Ok(vec![v, i, argmax(&x[0], axis, false)?])
        }));
    }
    // Many ties (values rounded to integers): the same first index must win on both.
    let ties = cast(&cast(&rnd(&[6, 40], 214, dt, 1.5), DType::I32).unwrap(), dt).unwrap();
    out.extend(parity(&format!("ties_{d}"), dev, &[ties], &[], exact, |x| {
        let (v, i) = topk(&x[0], 7, 1, true, true)?;
        let (sv, si) = topk(&x[0], 5, 0, false, false)?;
        Ok(vec![argmax(&x[0], 1, false)?, argmax(&x[0], 0, true)?, v, i, sv, si])
    }));
    let y = rnd(&[4, 7, 5], 215, dt, 1.0);
    for (largest, sorted) in [(true, true), (false, true), (true, false)] {
        out.extend(parity(&format!("topk_{largest}_{sorted}_{d}"), dev, &[y.clone()], &[0], tol, move |x| {
            let (v, i) = topk(&x[0], 3, 1, largest, sorted)?;
            Ok(vec![v, i])
        }));
    }
    let vocab = rnd(&[3, 2000], 216, dt, 3.0);
    out.extend(parity(&format!("topk_vocab_{d}"), dev, &[vocab], &[0], tol, |x| {
        let (v, i) = topk(&x[0], 5, 1, true, true)?;
        let (m, a) = max(&x[0], 1, false)?;
        Ok(vec![v, i, m, a])
    }));

    let z = rnd(&[4, 6, 5], 217, dt, 1.0);
    let cases = [(0usize, vec![3usize, 6, 5], 4i32), (1, vec![4, 9, 5], 6), (2, vec![2, 6, 3], 5)];
    for (k, (axis, ishape, limit)) in cases.into_iter().enumerate() {
        let idx = ints_in(&ishape, 218 + k as u64, 0, limit);
        out.extend(parity(&format!("gather{axis}_{d}"), dev, &[z.clone(), idx], &[0], tol, move |x| {
            Ok(vec![gather(&x[0], axis, &x[1])?])
        }));
    }
    for axis in 0..2 {
        let idx = ints_in(&[9], 221 + axis as u64, 0, [4, 6][axis]);
        out.extend(parity(&format!("indexSelect{axis}_{d}"), dev, &[z.clone(), idx], &[0], tol, move |x| {
            Ok(vec![index_select(&x[0], axis, &x[1])?])
        }));
    }
    let ints_z = ints_in(&[4, 6], 223, -50, 50);
    out.extend(parity("index_ops_i32", dev, &[ints_z, ints_in(&[4, 3], 224, 0, 6)], &[], exact, |x| {
        let (v, i) = topk(&x[0], 2, 1, true, true)?;
        Ok(vec![
            gather(&x[0], 1, &x[1])?,
            index_select(&x[0], 1, &reshape(&x[1], &[-1])?)?,
            v,
            i,
            max(&x[0], 0, false)?.0,
        ])
    }));

    // Bad values on the device are reported at the next read, with the CPU's messages.
    let on = |t: Tensor| t.to(dev).unwrap();
    let zd = on(z.clone());
    let read = |r: Result<Tensor>| r.and_then(|t| t.to_vec_f64()).unwrap_err();
    let e = read(gather(&zd, 1, &on(Tensor::from_i32(vec![0, 6], &[1, 2, 1]).unwrap())));
    assert!(e.kind() == ErrorKind::Value && e.to_string().contains("index 6 at position 1"), "{e}");
    let e = read(index_select(&zd, 0, &on(Tensor::from_i32(vec![-1], &[1]).unwrap())));
    assert!(e.kind() == ErrorKind::Value && e.to_string().contains("index -1 at position 0"), "{e}");
    let e = read(sequence_mask(&on(Tensor::from_i32(vec![2, 0], &[2]).unwrap()), 4));
    assert!(e.kind() == ErrorKind::Value && e.to_string().contains("lengths[1] is 0"), "{e}");
    let nan = on(cast_vec(vec![1.0, f64::NAN], dt));
    let e = read(cast(&nan, DType::I32));
    assert!(e.kind() == ErrorKind::Value && e.to_string().contains("value NaN at position 1"), "{e}");
    out
}

fn cast_vec(v: Vec<f64>, dt: DType) -> Tensor {
    let n = v.len();
    cast(v, &[n], dt)
}

/// The attention op (forward, and the gradients of query, keys, values and v) for both scores,
/// with lengths on the device and without, at sizes that exercise every loop of
/// `kernels/attention.cu` (S and E above a block, A above a warp); then a bad device length,
/// reported at the next read with the CPU's message.
pub fn attentions(dev: Device, dt: DType) -> Vec<Outcome> {
    use recurrent_core::ops::attention::{attention, Lengths, Score};
    let tol = tol_of(dt);
    let d = if dt == DType::F64 { "f64" } else { "f32" };
    let mut out = Vec::new();
    let sizes = [(3usize, 5usize, 4usize, 3usize), (2, 300, 70, 9), (2, 7, 33, 300)];
    for (k, &(b, s, a, e)) in sizes.iter().enumerate() {
        let seed = 300 + 10 * k as u64;
        let inputs = [
            rnd(&[b, a], seed, dt, 0.5),
            rnd(&[s, b, a], seed + 1, dt, 0.5),
            rnd(&[s, b, e], seed + 2, dt, 1.0),
            rnd(&[a], seed + 3, dt, 1.0),
            ints_in(&[b], seed + 4, 1, s as i32 + 1),
        ];
        for score in [Score::Additive, Score::Dot] {
            let name = format!("attention_{score:?}_{b}x{s}x{a}x{e}_{d}");
            for masked in [false, true] {
                out.extend(parity(&format!("{name}_len{}", masked as u8), dev, &inputs, &[0, 1, 2, 3], tol, |x| {
                    let v = (score == Score::Additive).then_some(&x[3]);
                    let l = masked.then(|| Lengths::Tensor(&x[4]));
                    let o = attention(&x[0], &x[1], &x[2], score, v, l)?;
                    Ok(vec![o.context, o.weights])
                }));
            }
            // One output only: the backward without the other's gradient.
            for which in 0..2 {
                out.extend(parity(&format!("{name}_out{which}_only"), dev, &inputs, &[0, 1, 2, 3], tol, |x| {
                    let v = (score == Score::Additive).then_some(&x[3]);
                    let o = attention(&x[0], &x[1], &x[2], score, v, Some(Lengths::Tensor(&x[4])))?;
                    Ok(vec![if which == 0 { o.context } else { o.weights }])
                }));
            }
        }
    }
    let on = |t: Tensor| t.to(dev).unwrap();
    let (q, keys, vals) =
        (on(rnd(&[2, 3], 340, dt, 1.0)), on(rnd(&[4, 2, 3], 341, dt, 1.0)), on(rnd(&[4, 2, 2], 342, dt, 1.0)));
    let bad = on(Tensor::from_i32(vec![2, 5], &[2]).unwrap());
    let e = attention(&q, &keys, &vals, Score::Dot, None, Some(Lengths::Tensor(&bad)))
        .and_then(|o| o.context.to_vec_f64())
        .unwrap_err();
    assert!(e.kind() == ErrorKind::Value && e.to_string().contains("lengths[1] is 5"), "{e}");
    out
}
