//! The image ops: conv2d, max/avg/adaptive-avg pooling, batch norm and layer norm. Values are
//! compared with direct (loop-by-definition) float64 references, every option is
//! gradient-checked in float64 (tolerance 1e-6 on the relative error, see `gradcheck`), and
//! bad arguments give errors that name the op, what was expected and what was got.

use recurrent_core::gradcheck::assert_grads;
use recurrent_core::ops::conv::{conv2d, Conv2dOptions};
use recurrent_core::ops::norm::{batch_norm2d, layer_norm, BatchNormOptions};
use recurrent_core::ops::pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d, Pool2dOptions};
use recurrent_core::{DType, ErrorKind, Tensor};

const TOL: f64 = 1e-6;

fn rnd(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: got {g}, want {w}");
    }
}

fn opts(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize) -> Conv2dOptions {
    Conv2dOptions { stride, padding, dilation, groups }
}

/// conv2d by its definition, in f64.
fn conv_ref(x: &[f64], xs: [usize; 4], w: &[f64], ws: [usize; 4], b: Option<&[f64]>, o: Conv2dOptions) -> Vec<f64> {
    let [n, c, h, wd] = xs;
    let [oc, cg, kh, kw] = ws;
    let oh = (h + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
    let ow = (wd + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
    let og = oc / o.groups;
    let mut y = vec![0.0; n * oc * oh * ow];
    for b_ in 0..n {
        for k in 0..oc {
            let g = k / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b.map_or(0.0, |b| b[k]);
                    for ci in 0..cg {
                        let cin = g * cg + ci;
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * o.stride[0] + ki * o.dilation[0]) as isize - o.padding[0] as isize;
                                let ix = (ox * o.stride[1] + kj * o.dilation[1]) as isize - o.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xv = x[((b_ * c + cin) * h + iy as usize) * wd + ix as usize];
                                s += xv * w[((k * cg + ci) * kh + ki) * kw + kj];
                            }
                        }
                    }
                    y[((b_ * oc + k) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    y
}

/// The option sets every conv test runs: (input shape, weight shape, options).
fn conv_cases() -> Vec<([usize; 4], [usize; 4], Conv2dOptions)> {
    vec![
        ([2, 3, 5, 5], [4, 3, 3, 3], Conv2dOptions::default()),
        ([2, 3, 7, 6], [4, 3, 3, 2], opts([2, 2], [0, 0], [1, 1], 1)),
        ([1, 2, 5, 5], [3, 2, 3, 3], opts([1, 1], [1, 2], [1, 1], 1)),
        ([2, 2, 7, 7], [3, 2, 3, 3], opts([1, 1], [0, 0], [2, 2], 1)),
        ([2, 4, 5, 5], [6, 2, 3, 3], opts([1, 1], [1, 1], [1, 1], 2)),
        ([1, 4, 6, 5], [4, 1, 2, 3], opts([2, 1], [1, 1], [2, 1], 4)),
        ([2, 3, 4, 4], [5, 3, 1, 1], Conv2dOptions::default()),
    ]
}

#[test]
fn conv2d_matches_the_definition() {
    for (i, (xs, ws, o)) in conv_cases().into_iter().enumerate() {
        let (x, w, b) = (rnd(&xs, 10 + i as u64), rnd(&ws, 20 + i as u64), rnd(&[ws[0]], 30 + i as u64));
        let want = conv_ref(&f64s(&x), xs, &f64s(&w), ws, Some(&f64s(&b)), o);
        close(&f64s(&conv2d(&x, &w, Some(&b), o).unwrap()), &want, 1e-12);
        let want = conv_ref(&f64s(&x), xs, &f64s(&w), ws, None, o);
        close(&f64s(&conv2d(&x, &w, None, o).unwrap()), &want, 1e-12);
        // float32 through the same path.
        let f = |t: &Tensor| Tensor::from_f32(f64s(t).iter().map(|&v| v as f32).collect(), t.shape()).unwrap();
        let y32 = conv2d(&f(&x), &f(&w), None, o).unwrap().to_vec_f32().unwrap();
        close(&y32.iter().map(|&v| v as f64).collect::<Vec<_>>(), &want, 1e-5);
    }
}

#[test]
fn conv2d_on_a_batch_large_enough_for_the_pool() {
    // Above the parallel threshold: images on several threads, weight-gradient partials summed.
    let (xs, ws) = ([9, 8, 12, 12], [16, 8, 3, 3]);
    let o = opts([1, 1], [1, 1], [1, 1], 1);
    let (x, w) = (rnd(&xs, 1), rnd(&ws, 2));
    let want = conv_ref(&f64s(&x), xs, &f64s(&w), ws, None, o);
    close(&f64s(&conv2d(&x, &w, None, o).unwrap()), &want, 1e-12);
    // The weight gradient of Σ y is Σ over images and pixels of the patch: compare one entry.
    let wl = w.detach();
    wl.set_requires_grad(true).unwrap();
    let y = conv2d(&x, &wl, None, o).unwrap();
    recurrent_core::backward(&recurrent_core::ops::reduce::sum_all(&y).unwrap(), None).unwrap();
    let gw = f64s(&wl.grad().unwrap());
    let xv = f64s(&x);
    // dΣy/dw[k, c, 1, 1] (the centre tap, padding 1) = Σ of channel c over every image.
    let want: f64 = (0..9).map(|b| xv[(b * 8 + 3) * 144..(b * 8 + 4) * 144].iter().sum::<f64>()).sum();
    assert!((gw[((5 * 8 + 3) * 3 + 1) * 3 + 1] - want).abs() < 1e-9 * want.abs().max(1.0));
}

#[test]
fn conv2d_gradients_for_every_option() {
    for (i, (xs, ws, o)) in conv_cases().into_iter().enumerate() {
        let name = format!("conv2d case {i} {o:?}");
        let inputs = [rnd(&xs, 40 + i as u64), rnd(&ws, 50 + i as u64), rnd(&[ws[0]], 60 + i as u64)];
        assert_grads(&name, move |t| Ok(vec![conv2d(&t[0], &t[1], Some(&t[2]), o)?]), &inputs, &[0, 1, 2], TOL);
        let name = format!("conv2d case {i} without bias");
        assert_grads(&name, move |t| Ok(vec![conv2d(&t[0], &t[1], None, o)?]), &inputs[..2], &[0, 1], TOL);
    }
}

#[test]
fn conv2d_refuses_bad_arguments_by_content() {
    let x = rnd(&[1, 4, 5, 5], 1);
    let e = conv2d(&x, &rnd(&[2, 3, 3, 3], 2), None, Conv2dOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Shape);
    let m = e.to_string();
    assert!(m.contains("conv2d") && m.contains("[O, 4, KH, KW]") && m.contains("[2, 3, 3, 3]"), "{m}");
    let e = conv2d(&x, &rnd(&[2, 2, 3, 3], 2), None, opts([1, 1], [0, 0], [1, 1], 3)).unwrap_err();
    assert!(e.to_string().contains("divisible by groups = 3"), "{e}");
    let e = conv2d(&rnd(&[4, 5, 5], 1), &rnd(&[2, 4, 3, 3], 2), None, Conv2dOptions::default()).unwrap_err();
    assert!(e.to_string().contains("[N, C, H, W]") && e.to_string().contains("[4, 5, 5]"), "{e}");
    let e = conv2d(&x, &rnd(&[2, 4, 7, 3], 2), None, Conv2dOptions::default()).unwrap_err();
    assert!(e.to_string().contains("dilated kernel 7×3"), "{e}");
    let e = conv2d(&x, &rnd(&[2, 4, 3, 3], 2), Some(&rnd(&[3], 3)), Conv2dOptions::default()).unwrap_err();
    assert!(e.to_string().contains("a bias of shape [2]") && e.to_string().contains("[3]"), "{e}");
    let e = conv2d(&x, &rnd(&[2, 4, 3, 3], 2), None, opts([0, 1], [0, 0], [1, 1], 1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(e.to_string().contains("stride, dilation and groups must be ≥ 1"), "{e}");
    let w32 = Tensor::from_f32(vec![0.0; 2 * 4 * 9], &[2, 4, 3, 3]).unwrap();
    assert_eq!(conv2d(&x, &w32, None, Conv2dOptions::default()).unwrap_err().kind(), ErrorKind::DType);
}

// ---------------------------------------------------------------------------------------------
// pooling

/// Pooling by definition: max (padding is −∞), or mean with a divisor rule.
fn pool_ref(x: &[f64], xs: [usize; 4], k: [usize; 2], s: [usize; 2], p: [usize; 2], kind: &str) -> Vec<f64> {
    let [n, c, h, w] = xs;
    let oh = (h + 2 * p[0] - k[0]) / s[0] + 1;
    let ow = (w + 2 * p[1] - k[1]) / s[1] + 1;
    let mut y = Vec::new();
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut best, mut sum, mut inside) = (f64::NEG_INFINITY, 0.0, 0);
                for ki in 0..k[0] {
                    for kj in 0..k[1] {
                        let iy = (oy * s[0] + ki) as isize - p[0] as isize;
                        let ix = (ox * s[1] + kj) as isize - p[1] as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[pl * h * w + iy as usize * w + ix as usize];
                        best = best.max(v);
                        sum += v;
                        inside += 1;
                    }
                }
                y.push(match kind {
                    "max" => best,
                    "avg" => sum / (k[0] * k[1]) as f64,
                    _ => sum / inside as f64,
                });
            }
        }
    }
    y
}

fn pool_cases() -> Vec<([usize; 4], Pool2dOptions)> {
    vec![
        ([2, 3, 6, 6], Pool2dOptions::new([2, 2])),
        ([1, 2, 7, 5], Pool2dOptions { kernel: [3, 3], stride: Some([2, 2]), padding: [1, 1] }),
        ([2, 2, 5, 6], Pool2dOptions { kernel: [3, 2], stride: Some([1, 2]), padding: [1, 0] }),
        ([1, 3, 8, 7], Pool2dOptions { kernel: [2, 3], stride: Some([3, 2]), padding: [0, 1] }),
    ]
}

#[test]
fn pools_match_the_definition() {
    for (i, (xs, o)) in pool_cases().into_iter().enumerate() {
        let x = rnd(&xs, 70 + i as u64);
        let xv = f64s(&x);
        let s = o.stride.unwrap_or(o.kernel);
        close(&f64s(&max_pool2d(&x, o).unwrap()), &pool_ref(&xv, xs, o.kernel, s, o.padding, "max"), 0.0);
        close(&f64s(&avg_pool2d(&x, o, true).unwrap()), &pool_ref(&xv, xs, o.kernel, s, o.padding, "avg"), 1e-14);
        close(&f64s(&avg_pool2d(&x, o, false).unwrap()), &pool_ref(&xv, xs, o.kernel, s, o.padding, "inside"), 1e-14);
    }
}

#[test]
fn adaptive_avg_pool_uses_pytorchs_windows() {
    // H = 5 into 3 rows: windows [0, 2), [1, 4), [3, 5); W = 4 into 4: one column each.
    let x = Tensor::from_f64((0..20).map(|v| v as f64).collect(), &[1, 1, 5, 4]).unwrap();
    let y = f64s(&adaptive_avg_pool2d(&x, [3, 4]).unwrap());
    let col = |r0: usize, r1: usize, j: usize| (r0..r1).map(|r| (r * 4 + j) as f64).sum::<f64>() / (r1 - r0) as f64;
    let want: Vec<f64> =
        [(0, 2), (1, 4), (3, 5)].iter().flat_map(|&(a, b)| (0..4).map(move |j| col(a, b, j))).collect();
    close(&y, &want, 1e-15);
    // Output larger than the input: windows of one pixel, repeated.
    let y = f64s(&adaptive_avg_pool2d(&x, [7, 1]).unwrap());
    assert_eq!(y.len(), 7);
    assert!((y[0] - 1.5).abs() < 1e-15 && (y[6] - 17.5).abs() < 1e-15, "{y:?}");
}

#[test]
fn max_pool_routes_the_gradient_to_the_first_maximum() {
    // Ties: the gradient goes to the first maximum in scan order only (PyTorch's rule).
    let x =
        Tensor::from_f64(vec![1., 3., 3., 0., 2., 3., 0., 1., 5., 5., 5., 5., 4., 4., 4., 4.], &[1, 1, 4, 4]).unwrap();
    let xl = x.detach();
    xl.set_requires_grad(true).unwrap();
    let y = max_pool2d(&xl, Pool2dOptions::new([2, 2])).unwrap();
    assert_eq!(f64s(&y), vec![3., 3., 5., 5.]);
    recurrent_core::backward(&recurrent_core::ops::reduce::sum_all(&y).unwrap(), None).unwrap();
    let g = f64s(&xl.grad().unwrap());
    assert_eq!(g, vec![0., 1., 1., 0., 0., 0., 0., 0., 1., 0., 1., 0., 0., 0., 0., 0.]);
    // A NaN in a window wins (PyTorch propagates it) and takes the gradient.
    let x = Tensor::from_f64(vec![1., f64::NAN, 3., 2.], &[1, 1, 2, 2]).unwrap();
    let xl = x.detach();
    xl.set_requires_grad(true).unwrap();
    let y = max_pool2d(&xl, Pool2dOptions::new([2, 2])).unwrap();
    assert!(f64s(&y)[0].is_nan());
    let g = Tensor::from_f64(vec![1.0], &[1, 1, 1, 1]).unwrap();
    recurrent_core::backward(&y, Some(g)).unwrap();
    assert_eq!(f64s(&xl.grad().unwrap()), vec![0., 1., 0., 0.]);
}

#[test]
fn pool_gradients_for_every_option() {
    for (i, (xs, o)) in pool_cases().into_iter().enumerate() {
        let x = [rnd(&xs, 80 + i as u64)];
        assert_grads(&format!("maxPool2d case {i}"), move |t| Ok(vec![max_pool2d(&t[0], o)?]), &x, &[0], TOL);
        assert_grads(&format!("avgPool2d case {i}"), move |t| Ok(vec![avg_pool2d(&t[0], o, true)?]), &x, &[0], TOL);
        assert_grads(
            &format!("avgPool2d case {i} excluding padding"),
            move |t| Ok(vec![avg_pool2d(&t[0], o, false)?]),
            &x,
            &[0],
            TOL,
        );
    }
    for (i, (xs, out)) in
        [([2, 2, 5, 7], [3, 4]), ([1, 3, 4, 4], [2, 2]), ([1, 1, 3, 5], [5, 2])].into_iter().enumerate()
    {
        let x = [rnd(&xs, 90 + i as u64)];
        assert_grads(
            &format!("adaptiveAvgPool2d {xs:?} → {out:?}"),
            move |t| Ok(vec![adaptive_avg_pool2d(&t[0], out)?]),
            &x,
            &[0],
            TOL,
        );
    }
}

#[test]
fn pools_refuse_bad_arguments_by_content() {
    let x = rnd(&[1, 1, 4, 4], 1);
    let e = max_pool2d(&x, Pool2dOptions { kernel: [2, 2], stride: None, padding: [2, 0] }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(e.to_string().contains("maxPool2d") && e.to_string().contains("at most half the kernel size"), "{e}");
    let e = avg_pool2d(&x, Pool2dOptions::new([5, 5]), true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Shape);
    assert!(e.to_string().contains("avgPool2d") && e.to_string().contains("4×4"), "{e}");
    let e = adaptive_avg_pool2d(&rnd(&[4, 4], 1), [2, 2]).unwrap_err();
    assert!(e.to_string().contains("adaptiveAvgPool2d") && e.to_string().contains("[N, C, H, W]"), "{e}");
    let e = adaptive_avg_pool2d(&x, [0, 2]).unwrap_err();
    assert!(e.to_string().contains("output size must be ≥ 1"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// batch norm

fn bn(training: bool) -> BatchNormOptions {
    BatchNormOptions { training, momentum: 0.1, eps: 1e-5 }
}

#[test]
fn batch_norm_training_normalises_and_updates_the_running_statistics() {
    let (n, c, h, w) = (3, 2, 2, 3);
    let x = rnd(&[n, c, h, w], 1);
    let (wt, b) = (Tensor::from_f64(vec![2.0, -0.5], &[2]).unwrap(), Tensor::from_f64(vec![0.25, 1.0], &[2]).unwrap());
    let (rm, rv) = (Tensor::from_f64(vec![0.5, -1.0], &[2]).unwrap(), Tensor::from_f64(vec![2.0, 0.5], &[2]).unwrap());
    let y = f64s(&batch_norm2d(&x, Some(&wt), Some(&b), Some(&rm), Some(&rv), bn(true)).unwrap());
    let xv = f64s(&x);
    let m = (n * h * w) as f64;
    for ch in 0..c {
        let vals: Vec<f64> = (0..n).flat_map(|i| xv[(i * c + ch) * 6..(i * c + ch + 1) * 6].to_vec()).collect();
        let mean = vals.iter().sum::<f64>() / m;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m;
        let (wc, bc) = ([2.0, -0.5][ch], [0.25, 1.0][ch]);
        for i in 0..n {
            for j in 0..6 {
                let at = (i * c + ch) * 6 + j;
                let want = (xv[at] - mean) / (var + 1e-5).sqrt() * wc + bc;
                assert!((y[at] - want).abs() < 1e-12, "y[{at}] = {}, want {want}", y[at]);
            }
        }
        // Running statistics: momentum 0.1, the variance unbiased by M / (M − 1).
        let want_m = 0.9 * [0.5, -1.0][ch] + 0.1 * mean;
        let want_v = 0.9 * [2.0, 0.5][ch] + 0.1 * var * m / (m - 1.0);
        assert!((f64s(&rm)[ch] - want_m).abs() < 1e-14 && (f64s(&rv)[ch] - want_v).abs() < 1e-14);
    }
    // Evaluation uses (and keeps) the running statistics.
    let (rm_now, rv_now) = (f64s(&rm), f64s(&rv));
    let y = f64s(&batch_norm2d(&x, Some(&wt), Some(&b), Some(&rm), Some(&rv), bn(false)).unwrap());
    let want = (xv[7] - rm_now[1]) / (rv_now[1] + 1e-5).sqrt() * -0.5 + 1.0;
    assert!((y[7] - want).abs() < 1e-12);
    assert_eq!(f64s(&rm), rm_now);
    assert_eq!(f64s(&rv), rv_now);
}

#[test]
fn batch_norm_gradients_in_training_and_evaluation() {
    let x = rnd(&[3, 2, 3, 2], 5);
    let (wt, b) = (rnd(&[2], 6), rnd(&[2], 7));
    let inputs = [x.clone(), wt.clone(), b.clone()];
    for training in [true, false] {
        assert_grads(
            &format!("batchNorm2d affine, training {training}"),
            move |t| {
                // Fresh running statistics each call (training updates them), so that every
                // evaluation sees the same function.
                let m = Tensor::from_f64(vec![0.3, -0.2], &[2])?;
                let v = Tensor::from_f64(vec![1.5, 0.7], &[2])?;
                Ok(vec![batch_norm2d(&t[0], Some(&t[1]), Some(&t[2]), Some(&m), Some(&v), bn(training))?])
            },
            &inputs,
            &[0, 1, 2],
            TOL,
        );
    }
    // No affine parameters, no running statistics: batch statistics in either mode.
    assert_grads(
        "batchNorm2d plain",
        |t| Ok(vec![batch_norm2d(&t[0], None, None, None, None, bn(false))?]),
        std::slice::from_ref(&x),
        &[0],
        TOL,
    );
    // A weight only.
    assert_grads(
        "batchNorm2d weight only",
        |t| Ok(vec![batch_norm2d(&t[0], Some(&t[1]), None, None, None, bn(true))?]),
        &[x, wt],
        &[0, 1],
        TOL,
    );
}

#[test]
fn batch_norm_refuses_bad_arguments_by_content() {
    let x = rnd(&[1, 2, 1, 1], 1);
    let e = batch_norm2d(&x, None, None, None, None, bn(true)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(e.to_string().contains("more than 1 value per channel when training"), "{e}");
    let e = batch_norm2d(&rnd(&[2, 3, 2, 2], 1), Some(&rnd(&[2], 2)), None, None, None, bn(true)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Shape);
    assert!(e.to_string().contains("batchNorm2d") && e.to_string().contains("a weight of shape [3]"), "{e}");
    let e = batch_norm2d(&rnd(&[2, 3], 1), None, None, None, None, bn(true)).unwrap_err();
    assert!(e.to_string().contains("[N, C, H, W]"), "{e}");
    let e = batch_norm2d(&rnd(&[2, 3, 2, 2], 1), None, None, Some(&rnd(&[3], 2)), None, bn(true)).unwrap_err();
    assert!(e.to_string().contains("running_mean and running_var must be given together"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// layer norm

#[test]
fn layer_norm_values_and_gradients() {
    let x = rnd(&[2, 3, 4], 11);
    let (w, b) = (rnd(&[4], 12), rnd(&[4], 13));
    let y = f64s(&layer_norm(&x, &[4], Some(&w), Some(&b), 1e-5).unwrap());
    let (xv, wv, bv) = (f64s(&x), f64s(&w), f64s(&b));
    for r in 0..6 {
        let row = &xv[r * 4..(r + 1) * 4];
        let mean = row.iter().sum::<f64>() / 4.0;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
        for j in 0..4 {
            let want = (row[j] - mean) / (var + 1e-5).sqrt() * wv[j] + bv[j];
            assert!((y[r * 4 + j] - want).abs() < 1e-12);
        }
    }
    let inputs = [x.clone(), w, b];
    assert_grads(
        "layerNorm [4] affine",
        |t| Ok(vec![layer_norm(&t[0], &[4], Some(&t[1]), Some(&t[2]), 1e-5)?]),
        &inputs,
        &[0, 1, 2],
        TOL,
    );
    assert_grads(
        "layerNorm [3, 4] plain",
        |t| Ok(vec![layer_norm(&t[0], &[3, 4], None, None, 1e-5)?]),
        std::slice::from_ref(&x),
        &[0],
        TOL,
    );
    let (w2, b2) = (rnd(&[3, 4], 14), rnd(&[3, 4], 15));
    assert_grads(
        "layerNorm [3, 4] affine",
        |t| Ok(vec![layer_norm(&t[0], &[3, 4], Some(&t[1]), Some(&t[2]), 1e-5)?]),
        &[x.clone(), w2, b2],
        &[0, 1, 2],
        TOL,
    );
    // More rows than one partial chunk of the weight gradient.
    let tall = rnd(&[150, 3], 16);
    assert_grads(
        "layerNorm tall",
        |t| Ok(vec![layer_norm(&t[0], &[3], Some(&t[1]), Some(&t[2]), 1e-5)?]),
        &[tall, rnd(&[3], 17), rnd(&[3], 18)],
        &[1, 2],
        TOL,
    );
    let e = layer_norm(&x, &[3], None, None, 1e-5).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Shape);
    assert!(
        e.to_string().contains("layerNorm")
            && e.to_string().contains("normalized shape [3]")
            && e.to_string().contains("[2, 3, 4]"),
        "{e}"
    );
    let e = layer_norm(&x, &[4], Some(&rnd(&[3], 1)), None, 1e-5).unwrap_err();
    assert!(e.to_string().contains("a weight of shape [4]"), "{e}");
}
