//! CPU-vs-device parity cases of the image ops (conv2d, the pools, batch norm, layer norm),
//! shared by `tests/emulated_image.rs` (the host emulator) and `tests/parity.rs` (a real
//! device). Each case runs on the same fresh random inputs on the CPU (the oracle) and on
//! `cuda:0` and compares outputs and input gradients with the tolerances of `common::cases`
//! (relative ∞-norm: float32 1e-5 forward, 1e-4 gradients; float64 1e-10 / 1e-9), printing
//! a `PARITY` line with the max difference for every compared tensor.

use crate::common::cases::{parity, rnd, uni, Outcome, F32_TOL, F64_TOL};
use recurrent_core::ops::conv::{conv2d, Conv2dOptions};
use recurrent_core::ops::norm::{batch_norm2d, layer_norm, BatchNormOptions};
use recurrent_core::ops::pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d, Pool2dOptions};
use recurrent_core::{DType, Device};

fn tol_of(dt: DType) -> (f64, f64) {
    if dt == DType::F64 {
        F64_TOL
    } else {
        F32_TOL
    }
}

fn tag(dt: DType) -> &'static str {
    if dt == DType::F64 {
        "f64"
    } else {
        "f32"
    }
}

/// conv2d with and without bias over stride, padding, dilation and groups.
pub fn convs(dev: Device, dt: DType) -> Vec<Outcome> {
    let (tol, d) = (tol_of(dt), tag(dt));
    let o = |stride, padding, dilation, groups| Conv2dOptions { stride, padding, dilation, groups };
    let cases: [([usize; 4], [usize; 4], Conv2dOptions); 6] = [
        ([2, 3, 6, 5], [4, 3, 3, 3], Conv2dOptions::default()),
        ([3, 3, 9, 8], [5, 3, 3, 2], o([2, 2], [1, 0], [1, 1], 1)),
        ([2, 2, 8, 8], [3, 2, 3, 3], o([1, 1], [2, 2], [2, 2], 1)),
        ([2, 4, 7, 6], [6, 2, 3, 3], o([1, 2], [1, 1], [1, 1], 2)),
        ([1, 4, 7, 7], [4, 1, 3, 3], o([2, 1], [1, 1], [1, 2], 4)),
        ([4, 5, 4, 4], [6, 5, 1, 1], Conv2dOptions::default()),
    ];
    let mut out = Vec::new();
    for (i, (xs, ws, opts)) in cases.into_iter().enumerate() {
        let s = 300 + 10 * i as u64;
        let inputs = [rnd(&xs, s, dt, 1.0), rnd(&ws, s + 1, dt, 0.5), rnd(&[ws[0]], s + 2, dt, 1.0)];
        out.extend(parity(&format!("conv2d{i}_{d}"), dev, &inputs, &[0, 1, 2], tol, move |x| {
            Ok(vec![conv2d(&x[0], &x[1], Some(&x[2]), opts)?])
        }));
        out.extend(parity(&format!("conv2d{i}_nobias_{d}"), dev, &inputs[..2], &[0, 1], tol, move |x| {
            Ok(vec![conv2d(&x[0], &x[1], None, opts)?])
        }));
    }
    out
}

/// Max, average (both divisors) and adaptive average pooling.
pub fn pools(dev: Device, dt: DType) -> Vec<Outcome> {
    let (tol, d) = (tol_of(dt), tag(dt));
    let cases = [
        ([2, 3, 6, 6], Pool2dOptions::new([2, 2])),
        ([2, 2, 7, 5], Pool2dOptions { kernel: [3, 3], stride: Some([2, 2]), padding: [1, 1] }),
        ([1, 3, 6, 7], Pool2dOptions { kernel: [3, 2], stride: Some([1, 2]), padding: [1, 1] }),
        ([2, 1, 8, 7], Pool2dOptions { kernel: [2, 3], stride: Some([3, 2]), padding: [0, 1] }),
    ];
    let mut out = Vec::new();
    for (i, (xs, o)) in cases.into_iter().enumerate() {
        let x = [rnd(&xs, 400 + i as u64, dt, 1.0)];
        out.extend(parity(&format!("maxPool2d{i}_{d}"), dev, &x, &[0], tol, move |x| Ok(vec![max_pool2d(&x[0], o)?])));
        out.extend(parity(&format!("avgPool2d{i}_{d}"), dev, &x, &[0], tol, move |x| {
            Ok(vec![avg_pool2d(&x[0], o, true)?, avg_pool2d(&x[0], o, false)?])
        }));
    }
    for (i, (xs, size)) in
        [([2, 3, 7, 5], [3, 2]), ([1, 2, 4, 6], [4, 6]), ([2, 2, 3, 4], [5, 7])].into_iter().enumerate()
    {
        let x = [rnd(&xs, 420 + i as u64, dt, 1.0)];
        out.extend(parity(&format!("adaptiveAvgPool2d{i}_{d}"), dev, &x, &[0], tol, move |x| {
            Ok(vec![adaptive_avg_pool2d(&x[0], size)?])
        }));
    }
    out
}

/// Batch norm (training with the running statistics' update compared too, evaluation, no
/// affine parameters) and layer norm (warp rows, block rows, 2-D normalized shapes).
pub fn norms(dev: Device, dt: DType) -> Vec<Outcome> {
    let (tol, d) = (tol_of(dt), tag(dt));
    let mut out = Vec::new();
    for (i, xs) in [[4, 3, 5, 6], [2, 2, 1, 1], [3, 5, 20, 20]].into_iter().enumerate() {
        let c = xs[1];
        let s = 500 + 10 * i as u64;
        let inputs = [
            rnd(&xs, s, dt, 2.0),
            rnd(&[c], s + 1, dt, 1.0),
            rnd(&[c], s + 2, dt, 1.0),
            rnd(&[c], s + 3, dt, 0.5),
            uni(&[c], s + 4, dt, 0.5, 2.0),
        ];
        for training in [true, false] {
            let opts = BatchNormOptions { training, momentum: 0.1, eps: 1e-5 };
            out.extend(parity(
                &format!("batchNorm2d{i}_train{}_{d}", training as u8),
                dev,
                &inputs,
                &[0, 1, 2],
                tol,
                move |x| {
                    let y = batch_norm2d(&x[0], Some(&x[1]), Some(&x[2]), Some(&x[3]), Some(&x[4]), opts)?;
                    // The running statistics, updated in place in training, are outputs too.
                    Ok(vec![y, x[3].clone(), x[4].clone()])
                },
            ));
        }
        let opts = BatchNormOptions::default();
        out.extend(parity(&format!("batchNorm2d{i}_plain_{d}"), dev, &inputs[..1], &[0], tol, move |x| {
            Ok(vec![batch_norm2d(&x[0], None, None, None, None, opts)?])
        }));
    }
    for (i, (xs, ns)) in
        [(vec![3, 4, 10], vec![10]), (vec![5, 700], vec![700]), (vec![2, 3, 4, 5], vec![4, 5])].into_iter().enumerate()
    {
        let s = 600 + 10 * i as u64;
        let inputs = [rnd(&xs, s, dt, 2.0), rnd(&ns, s + 1, dt, 1.0), rnd(&ns, s + 2, dt, 1.0)];
        let nsc = ns.clone();
        out.extend(parity(&format!("layerNorm{i}_{d}"), dev, &inputs, &[0, 1, 2], tol, move |x| {
            Ok(vec![layer_norm(&x[0], &nsc, Some(&x[1]), Some(&x[2]), 1e-5)?])
        }));
        out.extend(parity(&format!("layerNorm{i}_plain_{d}"), dev, &inputs[..1], &[0], tol, move |x| {
            Ok(vec![layer_norm(&x[0], &ns, None, None, 1e-5)?])
        }));
    }
    out
}
