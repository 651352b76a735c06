//! Finite-difference gradient checking in f64, shared by every op's tests.

use crate::error::Result;
use crate::ops::elementwise::{mul, sum_to};
use crate::tensor::Tensor;
use crate::{backward, no_grad};

/// Outcome of a check: the worst mismatch, as an absolute error and relative to the scale.
#[derive(Debug)]
pub struct GradReport {
    pub max_abs: f64,
    pub max_rel: f64,
    pub checked: usize,
}

/// Compares autograd gradients of `f` with central differences, for every element of every
/// input in `wrt`. `f` may return several outputs; they are reduced to one scalar by fixed
/// random weights so that every output element matters.
///
/// Inputs must be f64: with h = 1e-6 the central difference has truncation error O(h²) ≈ 1e-12
/// and rounding error ≈ ε/h ≈ 1e-10, so analytic and numeric gradients agree to ~1e-8.
pub fn check<F>(f: F, inputs: &[Tensor], wrt: &[usize], seed: u64) -> Result<GradReport>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let h = 1e-6;
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    for &i in wrt {
        leaves[i].set_requires_grad(true)?;
    }
    let outs = f(&leaves)?;
    let weights: Vec<Tensor> = outs
        .iter()
        .enumerate()
        .map(|(k, o)| Tensor::randn(o.shape(), o.dtype(), seed.wrapping_add(k as u64 * 7919)))
        .collect::<Result<_>>()?;
    let project = |outs: &[Tensor]| -> Result<f64> {
        let mut total = 0.0;
        for (o, w) in outs.iter().zip(&weights) {
            total += sum_to(&mul(o, w)?, &[])?.item()?;
        }
        Ok(total)
    };
    let mut loss: Option<Tensor> = None;
    for (o, w) in outs.iter().zip(&weights) {
        let term = sum_to(&mul(o, w)?, &[])?;
        loss = Some(match loss {
            Some(l) => crate::ops::elementwise::add(&l, &term)?,
            None => term,
        });
    }
    backward(loss.as_ref().expect("f returned at least one output"), None)?;

    let mut report = GradReport { max_abs: 0.0, max_rel: 0.0, checked: 0 };
    for &i in wrt {
        let analytic = match leaves[i].grad() {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; leaves[i].numel()],
        };
        let base = leaves[i].to_vec_f64()?;
        for j in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut xs: Vec<Tensor> = leaves.iter().map(|t| t.detach()).collect();
                xs[i] = Tensor::from_f64(v, leaves[i].shape())?;
                no_grad(|| project(&f(&xs)?))
            };
            let numeric = (eval(h)? - eval(-h)?) / (2.0 * h);
            let abs = (numeric - analytic[j]).abs();
            report.max_abs = report.max_abs.max(abs);
            // Gradients under 1e-2 are judged on absolute error scaled by 1e-2: their central
            // differences carry ~1e-9 absolute rounding noise, which is not a wrong gradient.
            report.max_rel = report.max_rel.max(abs / (numeric.abs().max(analytic[j].abs()).max(1e-2)));
            report.checked += 1;
        }
    }
    Ok(report)
}

/// Asserts a gradient check passes with relative error under `tol`, printing the report.
pub fn assert_grads<F>(name: &str, f: F, inputs: &[Tensor], wrt: &[usize], tol: f64)
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let r = check(f, inputs, wrt, 1234).unwrap_or_else(|e| panic!("{name}: gradcheck failed to run: {e}"));
    println!("gradcheck {name}: {} elements, max abs {:.3e}, max rel {:.3e}", r.checked, r.max_abs, r.max_rel);
    assert!(r.checked > 0, "{name}: nothing checked");
    assert!(r.max_rel < tol, "{name}: max relative error {:.3e} ≥ {tol:.1e} (abs {:.3e})", r.max_rel, r.max_abs);
}
