//! Fused optimizer updates against references written out by hand from the torch.optim
//! formulas, over several steps with weight decay and momentum; and gradient clipping.

use recurrent_core::ops::optim::{clip_grad_norm, clip_grad_value, update, Rule};
use recurrent_core::{DType, Tensor};

const P0: [f64; 4] = [0.5, -1.25, 2.0, 0.1];
/// A different gradient at each step, so that state handling is exercised.
fn grad_at(step: usize) -> Vec<f64> {
    (0..4).map(|j| ((step * 4 + j) as f64 * 0.7).sin() * 1.3).collect()
}

fn run(rule_at: impl Fn(usize) -> Rule, steps: usize) -> Vec<f64> {
    let p = Tensor::from_f64(P0.to_vec(), &[4]).unwrap();
    let n_state = rule_at(1).state_count();
    let state: Vec<Tensor> = (0..n_state).map(|_| Tensor::zeros(&[4], DType::F64).unwrap()).collect();
    for s in 1..=steps {
        let g = Tensor::from_f64(grad_at(s), &[4]).unwrap();
        let refs: Vec<&Tensor> = state.iter().collect();
        update(rule_at(s), &p, &g, &refs).unwrap();
    }
    p.to_vec_f64().unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_with_momentum_nesterov_and_weight_decay() {
    let (lr, mo, damp, wd) = (0.1, 0.9, 0.1, 0.01);
    for nesterov in [false, true] {
        let got =
            run(|s| Rule::Sgd { lr, momentum: mo, dampening: damp, nesterov, weight_decay: wd, first: s == 1 }, 5);
        let mut p = P0.to_vec();
        let mut buf = [0.0; 4];
        for s in 1..=5 {
            let g = grad_at(s);
            for j in 0..4 {
                let gj = g[j] + wd * p[j];
                buf[j] = if s == 1 { gj } else { mo * buf[j] + (1.0 - damp) * gj };
                let d = if nesterov { gj + mo * buf[j] } else { buf[j] };
                p[j] -= lr * d;
            }
        }
        close(&got, &p);
    }
    let plain = run(
        |_| Rule::Sgd { lr: 0.5, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0, first: false },
        1,
    );
    let g = grad_at(1);
    close(&plain, &(0..4).map(|j| P0[j] - 0.5 * g[j]).collect::<Vec<_>>());
}

#[test]
fn adam_and_adamw() {
    let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    for decoupled in [false, true] {
        let got = run(|s| Rule::Adam { lr, beta1: b1, beta2: b2, eps, weight_decay: wd, decoupled, step: s as u64 }, 6);
        let mut p = P0.to_vec();
        let (mut m, mut v) = ([0.0; 4], [0.0; 4]);
        for s in 1..=6 {
            let g = grad_at(s);
            for j in 0..4 {
                let mut gj = g[j];
                if decoupled {
                    p[j] *= 1.0 - lr * wd;
                } else {
                    gj += wd * p[j];
                }
                m[j] = b1 * m[j] + (1.0 - b1) * gj;
                v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                let mhat = m[j] / (1.0 - b1.powi(s as i32));
                let vhat = v[j] / (1.0 - b2.powi(s as i32));
                p[j] -= lr * mhat / (vhat.sqrt() + eps);
            }
        }
        // PyTorch folds the bias corrections differently (eps is added to sqrt(v)/sqrt(bc2));
        // identical math, so only rounding differs.
        close(&got, &p);
    }
}

#[test]
fn rmsprop_variants() {
    let (lr, a, eps, wd) = (0.01, 0.99, 1e-8, 0.05);
    for (mo, centered) in [(0.0, false), (0.9, false), (0.0, true), (0.9, true)] {
        let got = run(|_| Rule::RmsProp { lr, alpha: a, eps, weight_decay: wd, momentum: mo, centered }, 5);
        let mut p = P0.to_vec();
        let (mut sq, mut buf, mut ga) = ([0.0; 4], [0.0; 4], [0.0; 4]);
        for s in 1..=5 {
            let g = grad_at(s);
            for j in 0..4 {
                let gj = g[j] + wd * p[j];
                sq[j] = a * sq[j] + (1.0 - a) * gj * gj;
                let avg = if centered {
                    ga[j] = a * ga[j] + (1.0 - a) * gj;
                    (sq[j] - ga[j] * ga[j]).sqrt() + eps
                } else {
                    sq[j].sqrt() + eps
                };
                if mo > 0.0 {
                    buf[j] = mo * buf[j] + gj / avg;
                    p[j] -= lr * buf[j];
                } else {
                    p[j] -= lr * gj / avg;
                }
            }
        }
        close(&got, &p);
    }
}

#[test]
fn adagrad_with_decay() {
    let (lr, decay, wd, eps) = (0.1, 0.01, 0.02, 1e-10);
    let got = run(|s| Rule::Adagrad { lr, lr_decay: decay, weight_decay: wd, eps, step: s as u64 }, 5);
    let mut p = P0.to_vec();
    let mut sum = [0.0; 4];
    for s in 1..=5 {
        let g = grad_at(s);
        let clr = lr / (1.0 + (s as f64 - 1.0) * decay);
        for j in 0..4 {
            let gj = g[j] + wd * p[j];
            sum[j] += gj * gj;
            p[j] -= clr * gj / (sum[j].sqrt() + eps);
        }
    }
    close(&got, &p);
}

#[test]
fn large_parameters_update_identically_on_the_parallel_path() {
    let n = 100_000;
    let p = Tensor::randn(&[n], DType::F32, 1).unwrap();
    let g = Tensor::randn(&[n], DType::F32, 2).unwrap();
    let (m, v) = (Tensor::zeros(&[n], DType::F32).unwrap(), Tensor::zeros(&[n], DType::F32).unwrap());
    let p0 = p.to_vec_f32().unwrap();
    let gv = g.to_vec_f32().unwrap();
    update(
        Rule::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false, step: 1 },
        &p,
        &g,
        &[&m, &v],
    )
    .unwrap();
    let got = p.to_vec_f32().unwrap();
    for j in (0..n).step_by(997) {
        // First Adam step moves each weight by lr·sign(g) (up to eps).
        let want = p0[j] - 0.1 * gv[j].signum();
        assert!((got[j] - want).abs() < 1e-5, "{j}: {} vs {want}", got[j]);
    }
}

#[test]
fn clipping_by_norm_and_value() {
    let a = Tensor::from_f64(vec![3.0, 0.0], &[2]).unwrap();
    let b = Tensor::from_f64(vec![0.0, 4.0, 0.0], &[3]).unwrap();
    let norm = clip_grad_norm(&[&a, &b], 1.0, 2.0).unwrap();
    assert_eq!(norm.item().unwrap(), 5.0);
    let s = 1.0 / (5.0 + 1e-6);
    close(&a.to_vec_f64().unwrap(), &[3.0 * s, 0.0]);
    close(&b.to_vec_f64().unwrap(), &[0.0, 4.0 * s, 0.0]);
    // Under the limit: unchanged.
    let c = Tensor::from_f64(vec![0.3, 0.4], &[2]).unwrap();
    assert!((clip_grad_norm(&[&c], 1.0, 2.0).unwrap().item().unwrap() - 0.5).abs() < 1e-15);
    close(&c.to_vec_f64().unwrap(), &[0.3, 0.4]);
    clip_grad_value(&[&b], 0.5).unwrap();
    close(&b.to_vec_f64().unwrap(), &[0.0, 0.5, 0.0]);
    let e = clip_grad_norm(&[&c], -1.0, 2.0).unwrap_err().to_string();
    assert!(e.contains("clipGradNorm") && e.contains("-1"), "{e}");
    let st = Tensor::zeros(&[3], DType::F64).unwrap();
    let e = update(Rule::Adagrad { lr: 0.1, lr_decay: 0.0, weight_decay: 0.0, eps: 1e-10, step: 1 }, &a, &a, &[&st])
        .unwrap_err()
        .to_string();
    assert!(e.contains("adagrad") && e.contains("[2]") && e.contains("[3]"), "{e}");
}
