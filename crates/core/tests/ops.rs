//! Gradient checks, values and error messages for matmul/linear, reductions, shape ops,
//! softmax, losses, embedding and dropout. Every gradient check runs in f64 with tolerance 1e-6
//! on the relative error (see `gradcheck` for why f64 central differences reach ~1e-8).

use recurrent_core::gradcheck::assert_grads;
use recurrent_core::ops::cast::cast;
use recurrent_core::ops::dropout::dropout;
use recurrent_core::ops::elementwise::{mul, scale};
use recurrent_core::ops::embedding::embedding;
use recurrent_core::ops::loss::{cross_entropy, mse};
use recurrent_core::ops::matmul::{linear, matmul};
use recurrent_core::ops::reduce::{mean, mean_all, sum, sum_all};
use recurrent_core::ops::shape::{concat, reshape, slice, split, stack, transpose};
use recurrent_core::ops::softmax::{log_softmax, softmax};
use recurrent_core::{backward, DType, Tensor};

const TOL: f64 = 1e-6;

fn rnd(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}");
    }
}

fn err_text<T: std::fmt::Debug>(r: recurrent_core::Result<T>) -> String {
    r.unwrap_err().to_string()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message {msg:?} should mention {p:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// matmul / linear

#[test]
fn matmul_values() {
    let a = Tensor::from_f32(vec![1., 2., 3., 4.], &[2, 2]).unwrap();
    let b = Tensor::from_f32(vec![5., 6., 7., 8.], &[2, 2]).unwrap();
    assert_eq!(matmul(&a, &b).unwrap().to_vec_f32().unwrap(), vec![19., 22., 43., 50.]);
    // [2, 3] × [3, 1]
    let a = Tensor::from_f64(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    let b = Tensor::from_f64(vec![1., 0., -1.], &[3, 1]).unwrap();
    let c = matmul(&a, &b).unwrap();
    assert_eq!(c.shape(), &[2, 1]);
    assert_eq!(f64s(&c), vec![-2., -2.]);
    // batched: batch 0 is identity · B, batch 1 is 2I · B
    let a = Tensor::from_f64(vec![1., 0., 0., 1., 2., 0., 0., 2.], &[2, 2, 2]).unwrap();
    let b = Tensor::from_f64(vec![1., 2., 3., 4., 5., 6., 7., 8.], &[2, 2, 2]).unwrap();
    let c = matmul(&a, &b).unwrap();
    assert_eq!(c.shape(), &[2, 2, 2]);
    assert_eq!(f64s(&c), vec![1., 2., 3., 4., 10., 12., 14., 16.]);
}

#[test]
fn matmul_gradients() {
    assert_grads("matmul 2-D", |x| Ok(vec![matmul(&x[0], &x[1])?]), &[rnd(&[3, 4], 1), rnd(&[4, 5], 2)], &[0, 1], TOL);
    assert_grads(
        "matmul batched",
        |x| Ok(vec![matmul(&x[0], &x[1])?]),
        &[rnd(&[2, 3, 4], 3), rnd(&[2, 4, 2], 4)],
        &[0, 1],
        TOL,
    );
    // A product of products: the backward GEMMs feed other GEMMs' gradients.
    assert_grads(
        "matmul chain",
        |x| Ok(vec![matmul(&matmul(&x[0], &x[1])?, &x[2])?]),
        &[rnd(&[2, 3], 5), rnd(&[3, 4], 6), rnd(&[4, 2], 7)],
        &[0, 1, 2],
        TOL,
    );
}

#[test]
fn matmul_errors_name_op_and_shapes() {
    let a = rnd(&[2, 3], 1);
    let b = rnd(&[4, 5], 2);
    assert_mentions(&err_text(matmul(&a, &b)), &["matmul", "[2, 3]", "[4, 5]"]);
    let a3 = rnd(&[2, 3, 4], 3);
    let b3 = rnd(&[3, 4, 5], 4);
    assert_mentions(&err_text(matmul(&a3, &b3)), &["matmul", "[2, 3, 4]", "[3, 4, 5]"]);
    assert_mentions(&err_text(matmul(&a, &b3)), &["matmul", "[2, 3]", "[3, 4, 5]"]);
    let i = Tensor::from_i32(vec![1; 6], &[3, 2]).unwrap();
    assert_mentions(&err_text(matmul(&a, &i)), &["matmul", "int32"]);
}

#[test]
fn linear_values() {
    // x [2, 3], w [2, 3], b [2]: y = x wᵀ + b
    let x = Tensor::from_f64(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    let w = Tensor::from_f64(vec![1., 0., 0., 1., 1., 1.], &[2, 3]).unwrap();
    let b = Tensor::from_f64(vec![10., 20.], &[2]).unwrap();
    let y = linear(&x, &w, Some(&b)).unwrap();
    assert_eq!(y.shape(), &[2, 2]);
    assert_eq!(f64s(&y), vec![11., 26., 14., 35.]);
    assert_eq!(f64s(&linear(&x, &w, None).unwrap()), vec![1., 6., 4., 15.]);
    // leading dims flattened: [2, 1, 3] → [2, 1, 2]; a 1-D input gives a 1-D output
    let x3 = reshape(&x, &[2, 1, 3]).unwrap();
    let y3 = linear(&x3, &w, Some(&b)).unwrap();
    assert_eq!(y3.shape(), &[2, 1, 2]);
    assert_eq!(f64s(&y3), vec![11., 26., 14., 35.]);
    let x1 = Tensor::from_f64(vec![1., 2., 3.], &[3]).unwrap();
    let y1 = linear(&x1, &w, Some(&b)).unwrap();
    assert_eq!(y1.shape(), &[2]);
    assert_eq!(f64s(&y1), vec![11., 26.]);
}

#[test]
fn linear_gradients() {
    assert_grads(
        "linear 2-D + bias",
        |x| Ok(vec![linear(&x[0], &x[1], Some(&x[2]))?]),
        &[rnd(&[4, 3], 1), rnd(&[5, 3], 2), rnd(&[5], 3)],
        &[0, 1, 2],
        TOL,
    );
    assert_grads(
        "linear 3-D + bias",
        |x| Ok(vec![linear(&x[0], &x[1], Some(&x[2]))?]),
        &[rnd(&[2, 3, 4], 4), rnd(&[2, 4], 5), rnd(&[2], 6)],
        &[0, 1, 2],
        TOL,
    );
    assert_grads(
        "linear no bias",
        |x| Ok(vec![linear(&x[0], &x[1], None)?]),
        &[rnd(&[3, 4], 7), rnd(&[6, 4], 8)],
        &[0, 1],
        TOL,
    );
    assert_grads(
        "linear 1-D + bias",
        |x| Ok(vec![linear(&x[0], &x[1], Some(&x[2]))?]),
        &[rnd(&[4], 9), rnd(&[3, 4], 10), rnd(&[3], 11)],
        &[0, 1, 2],
        TOL,
    );
}

#[test]
fn linear_large_matches_naive() {
    // Big enough for the parallel GEMM and bias fill.
    let (r, i, o) = (300, 70, 90);
    let x = rnd(&[r, i], 21);
    let w = rnd(&[o, i], 22);
    let b = rnd(&[o], 23);
    let got = f64s(&linear(&x, &w, Some(&b)).unwrap());
    let (xv, wv, bv) = (f64s(&x), f64s(&w), f64s(&b));
    let mut want = vec![0.0; r * o];
    for a in 0..r {
        for c in 0..o {
            let mut s = bv[c];
            for k in 0..i {
                s += xv[a * i + k] * wv[c * i + k];
            }
            want[a * o + c] = s;
        }
    }
    close(&got, &want, 1e-10);
}

#[test]
fn batched_matmul_large_matches_naive() {
    // Enough products to run the batch in parallel.
    let (bt, m, k, n) = (64, 9, 17, 11);
    let a = rnd(&[bt, m, k], 31);
    let b = rnd(&[bt, k, n], 32);
    let got = f64s(&matmul(&a, &b).unwrap());
    let (av, bv) = (f64s(&a), f64s(&b));
    let mut want = vec![0.0; bt * m * n];
    for z in 0..bt {
        for i in 0..m {
            for j in 0..n {
                want[(z * m + i) * n + j] = (0..k).map(|p| av[(z * m + i) * k + p] * bv[(z * k + p) * n + j]).sum();
            }
        }
    }
    close(&got, &want, 1e-10);
}

#[test]
fn linear_errors_name_op_and_shapes() {
    let x = rnd(&[2, 3], 1);
    let w = rnd(&[4, 5], 2);
    assert_mentions(&err_text(linear(&x, &w, None)), &["linear", "[2, 3]", "[4, 5]"]);
    let w = rnd(&[4, 3], 3);
    let b = rnd(&[5], 4);
    assert_mentions(&err_text(linear(&x, &w, Some(&b))), &["linear", "[4]", "[5]"]);
}

// ---------------------------------------------------------------------------------------------
// reductions

#[test]
fn reduce_values_and_shapes() {
    let x = Tensor::from_f64(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    let s0 = sum(&x, &[0], false).unwrap();
    assert_eq!(s0.shape(), &[3]);
    assert_eq!(f64s(&s0), vec![5., 7., 9.]);
    let s1 = sum(&x, &[1], true).unwrap();
    assert_eq!(s1.shape(), &[2, 1]);
    assert_eq!(f64s(&s1), vec![6., 15.]);
    let m1 = mean(&x, &[1], false).unwrap();
    assert_eq!(f64s(&m1), vec![2., 5.]);
    let all = sum(&x, &[], false).unwrap();
    assert_eq!(all.shape(), &[] as &[usize]);
    assert_eq!(all.item().unwrap(), 21.0);
    let all_keep = sum(&x, &[], true).unwrap();
    assert_eq!(all_keep.shape(), &[1, 1]);
    let sa = sum_all(&x).unwrap();
    assert_eq!(sa.shape(), &[] as &[usize]);
    assert_eq!(sa.item().unwrap(), 21.0);
    let ma = mean_all(&x).unwrap();
    assert_eq!(ma.shape(), &[] as &[usize]);
    assert_eq!(ma.item().unwrap(), 3.5);
    // [2, 2, 2] over axes 0 and 2
    let y = Tensor::from_f32((1..=8).map(|v| v as f32).collect(), &[2, 2, 2]).unwrap();
    let s = sum(&y, &[0, 2], false).unwrap();
    assert_eq!(s.to_vec_f32().unwrap(), vec![1. + 2. + 5. + 6., 3. + 4. + 7. + 8.]);
    let m = mean(&y, &[2, 0], true).unwrap();
    assert_eq!(m.shape(), &[1, 2, 1]);
    assert_eq!(m.to_vec_f32().unwrap(), vec![3.5, 5.5]);
    // reducing a size-1 axis is a copy
    let z = sum(&s1, &[1], false).unwrap();
    assert_eq!(f64s(&z), vec![6., 15.]);
}

#[test]
fn reduce_gradients() {
    let x = rnd(&[2, 3, 4], 1);
    for (axes, keep) in [
        (vec![1], false),
        (vec![1], true),
        (vec![0, 2], false),
        (vec![0, 2], true),
        (vec![2], false),
        (vec![0], true),
        (vec![], false),
    ] {
        assert_grads(
            &format!("sum {axes:?} keepdim={keep}"),
            |x| Ok(vec![sum(&x[0], &axes, keep)?]),
            std::slice::from_ref(&x),
            &[0],
            TOL,
        );
        assert_grads(
            &format!("mean {axes:?} keepdim={keep}"),
            |x| Ok(vec![mean(&x[0], &axes, keep)?]),
            std::slice::from_ref(&x),
            &[0],
            TOL,
        );
    }
    assert_grads("sum_all", |x| Ok(vec![sum_all(&x[0])?]), std::slice::from_ref(&x), &[0], TOL);
    assert_grads("mean_all", |x| Ok(vec![mean_all(&x[0])?]), std::slice::from_ref(&x), &[0], TOL);
}

fn naive_sum(x: &[f64], shape: &[usize], axes: &[usize]) -> Vec<f64> {
    let out_shape: Vec<usize> = shape.iter().enumerate().map(|(d, &n)| if axes.contains(&d) { 1 } else { n }).collect();
    let mut out = vec![0.0; out_shape.iter().product()];
    let nd = shape.len();
    let mut idx = vec![0; nd];
    for &v in x {
        let mut o = 0;
        for d in 0..nd {
            o = o * out_shape[d] + if axes.contains(&d) { 0 } else { idx[d] };
        }
        out[o] += v;
        for d in (0..nd).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[test]
fn reduce_large_matches_naive_and_is_deterministic() {
    // Large enough for the parallel paths: column sums, row sums, mixed, and everything.
    for (shape, axes) in [
        (vec![90, 500], vec![0]),
        (vec![90, 500], vec![1]),
        (vec![6, 70, 120], vec![0, 2]),
        (vec![6, 70, 120], vec![1]),
        (vec![4, 5, 6, 300], vec![0, 2]),
        (vec![4, 5, 6, 300], vec![1, 3]),
        (vec![300, 300], vec![0, 1]),
    ] {
        let x = rnd(&shape, 99);
        let xv = f64s(&x);
        let got = f64s(&sum(&x, &axes, false).unwrap());
        close(&got, &naive_sum(&xv, &shape, &axes), 1e-10);
        let again = f64s(&sum(&x, &axes, false).unwrap());
        assert!(
            got.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()),
            "sum {shape:?} {axes:?} not deterministic"
        );
    }
}

#[test]
fn reduce_errors() {
    let x = rnd(&[2, 3], 1);
    assert_mentions(&err_text(sum(&x, &[2], false)), &["sum", "[2, 3]", "axis 2"]);
    assert_mentions(&err_text(mean(&x, &[5], true)), &["mean", "[2, 3]", "axis 5"]);
    assert_mentions(&err_text(sum(&x, &[1, 1], false)), &["sum", "axis 1"]);
}

// ---------------------------------------------------------------------------------------------
// shape ops

#[test]
fn reshape_values_grads_and_errors() {
    let x = Tensor::from_f64((0..24).map(|v| v as f64).collect(), &[2, 3, 4]).unwrap();
    let y = reshape(&x, &[6, -1]).unwrap();
    assert_eq!(y.shape(), &[6, 4]);
    assert_eq!(f64s(&y), f64s(&x));
    let y = reshape(&x, &[-1]).unwrap();
    assert_eq!(y.shape(), &[24]);
    let s = reshape(&Tensor::from_f64(vec![7.0], &[1, 1]).unwrap(), &[]).unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.item().unwrap(), 7.0);
    let i = Tensor::from_i32(vec![1, 2, 3, 4], &[4]).unwrap();
    assert_eq!(reshape(&i, &[2, 2]).unwrap().to_vec_i32().unwrap(), vec![1, 2, 3, 4]);
    assert_grads("reshape", |x| Ok(vec![reshape(&x[0], &[4, -1])?]), &[rnd(&[2, 3, 2], 1)], &[0], TOL);
    assert_grads(
        "reshape then reduce",
        |x| Ok(vec![sum(&reshape(&x[0], &[3, 4])?, &[0], false)?]),
        &[rnd(&[2, 6], 2)],
        &[0],
        TOL,
    );

    let x = rnd(&[2, 3], 3);
    assert_mentions(&err_text(reshape(&x, &[4, 2])), &["reshape", "[2, 3]", "[4, 2]"]);
    assert_mentions(&err_text(reshape(&x, &[-1, -1])), &["reshape", "[-1, -1]"]);
    assert_mentions(&err_text(reshape(&x, &[4, -1])), &["reshape", "[2, 3]", "[4, -1]"]);
    assert_mentions(&err_text(reshape(&x, &[0, 6])), &["reshape", "[0, 6]"]);
}

#[test]
fn transpose_values_and_grads() {
    let x = Tensor::from_f64(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    let t = transpose(&x, 0, 1).unwrap();
    assert_eq!(t.shape(), &[3, 2]);
    assert_eq!(f64s(&t), vec![1., 4., 2., 5., 3., 6.]);
    // [2, 2, 3] swap 0 and 2 → [3, 2, 2]; out[k][j][i] = x[i][j][k]
    let x = Tensor::from_f64((0..12).map(|v| v as f64).collect(), &[2, 2, 3]).unwrap();
    let t = transpose(&x, 2, 0).unwrap();
    assert_eq!(t.shape(), &[3, 2, 2]);
    assert_eq!(f64s(&t), vec![0., 6., 3., 9., 1., 7., 4., 10., 2., 8., 5., 11.]);
    // swapping the leading dims keeps rows contiguous
    let t = transpose(&x, 0, 1).unwrap();
    assert_eq!(f64s(&t), vec![0., 1., 2., 6., 7., 8., 3., 4., 5., 9., 10., 11.]);
    assert_grads("transpose 2-D", |x| Ok(vec![transpose(&x[0], 0, 1)?]), &[rnd(&[3, 4], 1)], &[0], TOL);
    assert_grads("transpose 3-D (0, 2)", |x| Ok(vec![transpose(&x[0], 0, 2)?]), &[rnd(&[2, 3, 4], 2)], &[0], TOL);
    assert_grads("transpose 3-D (0, 1)", |x| Ok(vec![transpose(&x[0], 1, 0)?]), &[rnd(&[2, 3, 4], 3)], &[0], TOL);
    assert_mentions(&err_text(transpose(&x, 0, 3)), &["transpose", "[2, 2, 3]"]);
}

#[test]
fn transpose_large_matches_naive() {
    let (r, c) = (230, 170);
    let x = rnd(&[r, c], 5);
    let xv = f64s(&x);
    let got = f64s(&transpose(&x, 0, 1).unwrap());
    let mut want = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            want[j * r + i] = xv[i * c + j];
        }
    }
    assert_eq!(got, want);
}

#[test]
fn concat_split_values_and_grads() {
    let a = Tensor::from_f64(vec![1., 2., 3., 4.], &[2, 2]).unwrap();
    let b = Tensor::from_f64(vec![5., 6.], &[2, 1]).unwrap();
    let c = concat(&[&a, &b], 1).unwrap();
    assert_eq!(c.shape(), &[2, 3]);
    assert_eq!(f64s(&c), vec![1., 2., 5., 3., 4., 6.]);
    let d = Tensor::from_f64(vec![7., 8.], &[1, 2]).unwrap();
    let c0 = concat(&[&a, &d], 0).unwrap();
    assert_eq!(c0.shape(), &[3, 2]);
    assert_eq!(f64s(&c0), vec![1., 2., 3., 4., 7., 8.]);
    let ii = Tensor::from_i32(vec![1, 2], &[2]).unwrap();
    assert_eq!(concat(&[&ii, &ii], 0).unwrap().to_vec_i32().unwrap(), vec![1, 2, 1, 2]);
    let parts = split(&c, 1, &[2, 1]).unwrap();
    assert_eq!(f64s(&parts[0]), f64s(&a));
    assert_eq!(f64s(&parts[1]), f64s(&b));

    assert_grads(
        "concat axis 1",
        |x| Ok(vec![concat(&[&x[0], &x[1], &x[2]], 1)?]),
        &[rnd(&[2, 1, 3], 1), rnd(&[2, 2, 3], 2), rnd(&[2, 3, 3], 3)],
        &[0, 1, 2],
        TOL,
    );
    assert_grads(
        "concat axis 0",
        |x| Ok(vec![concat(&[&x[0], &x[1]], 0)?]),
        &[rnd(&[1, 4], 4), rnd(&[3, 4], 5)],
        &[0, 1],
        TOL,
    );
    assert_grads(
        "concat last axis",
        |x| Ok(vec![concat(&[&x[0], &x[1]], 2)?]),
        &[rnd(&[2, 2, 1], 6), rnd(&[2, 2, 3], 7)],
        &[0, 1],
        TOL,
    );
    assert_grads("split", |x| split(&x[0], 1, &[1, 3, 1]), &[rnd(&[2, 5, 2], 8)], &[0], TOL);
    // Only one piece used: the others get no gradient and are filled with zeros.
    assert_grads(
        "split one piece used",
        |x| Ok(vec![split(&x[0], 0, &[2, 1])?.remove(1)]),
        &[rnd(&[3, 2], 9)],
        &[0],
        TOL,
    );

    assert_mentions(&err_text(concat(&[&a, &rnd(&[3, 3], 1)], 1)), &["concat", "[2, 2]", "[3, 3]"]);
    assert_mentions(&err_text(concat(&[&a, &b], 2)), &["concat", "[2, 2]", "axis 2"]);
    assert_mentions(&err_text(concat(&[], 0)), &["concat"]);
    assert_mentions(&err_text(split(&a, 0, &[1, 2])), &["split", "[2, 2]"]);
}

#[test]
fn slice_values_and_grads() {
    let x = Tensor::from_f64((0..12).map(|v| v as f64).collect(), &[3, 4]).unwrap();
    let s = slice(&x, 1, 1, 2).unwrap();
    assert_eq!(s.shape(), &[3, 2]);
    assert_eq!(f64s(&s), vec![1., 2., 5., 6., 9., 10.]);
    let s = slice(&x, 0, 2, 1).unwrap();
    assert_eq!(f64s(&s), vec![8., 9., 10., 11.]);
    assert_grads("slice middle axis", |x| Ok(vec![slice(&x[0], 1, 1, 2)?]), &[rnd(&[3, 4, 2], 1)], &[0], TOL);
    assert_grads("slice first axis", |x| Ok(vec![slice(&x[0], 0, 0, 1)?]), &[rnd(&[3, 2], 2)], &[0], TOL);
    assert_grads("slice last axis", |x| Ok(vec![slice(&x[0], 2, 3, 1)?]), &[rnd(&[2, 2, 4], 3)], &[0], TOL);
    // The backward scatters into zeros: rows outside the slice get exactly zero.
    let leaf = rnd(&[3, 2], 4);
    leaf.set_requires_grad(true).unwrap();
    backward(&sum_all(&slice(&leaf, 0, 1, 1).unwrap()).unwrap(), None).unwrap();
    assert_eq!(f64s(&leaf.grad().unwrap()), vec![0., 0., 1., 1., 0., 0.]);
    assert_mentions(&err_text(slice(&x, 1, 3, 2)), &["slice", "[3, 4]", "start 3", "length 2"]);
    assert_mentions(&err_text(slice(&x, 2, 0, 1)), &["slice", "[3, 4]", "axis 2"]);
    assert_mentions(&err_text(slice(&x, 0, 0, 0)), &["slice", "length 0"]);
}

#[test]
fn stack_values_and_grads() {
    let a = Tensor::from_f64(vec![1., 2., 3.], &[3]).unwrap();
    let b = Tensor::from_f64(vec![4., 5., 6.], &[3]).unwrap();
    let s0 = stack(&[&a, &b], 0).unwrap();
    assert_eq!(s0.shape(), &[2, 3]);
    assert_eq!(f64s(&s0), vec![1., 2., 3., 4., 5., 6.]);
    let s1 = stack(&[&a, &b], 1).unwrap();
    assert_eq!(s1.shape(), &[3, 2]);
    assert_eq!(f64s(&s1), vec![1., 4., 2., 5., 3., 6.]);
    for axis in 0..=2 {
        assert_grads(
            &format!("stack axis {axis}"),
            |x| Ok(vec![stack(&[&x[0], &x[1], &x[2]], axis)?]),
            &[rnd(&[2, 3], 1), rnd(&[2, 3], 2), rnd(&[2, 3], 3)],
            &[0, 1, 2],
            TOL,
        );
    }
    assert_mentions(&err_text(stack(&[&a, &rnd(&[4], 1)], 0)), &["stack", "[3]", "[4]"]);
    assert_mentions(&err_text(stack(&[&a, &b], 2)), &["stack", "[3]", "axis 2"]);
}

// ---------------------------------------------------------------------------------------------
// softmax

#[test]
fn softmax_values() {
    let x = Tensor::from_f64(vec![1., 2., 3., 1000., 1001., 1002.], &[2, 3]).unwrap();
    let e: Vec<f64> = [1f64, 2., 3.].iter().map(|v| v.exp()).collect();
    let z: f64 = e.iter().sum();
    let want: Vec<f64> = e.iter().map(|v| v / z).collect();
    let y = f64s(&softmax(&x, 1).unwrap());
    // Shift invariance: the second row (huge logits) must be the same, with no overflow.
    close(&y[..3], &want, 1e-14);
    close(&y[3..], &want, 1e-14);
    let ly = f64s(&log_softmax(&x, 1).unwrap());
    let lwant: Vec<f64> = [1f64, 2., 3.].iter().map(|v| v - z.ln()).collect();
    close(&ly[..3], &lwant, 1e-14);
    close(&ly[3..], &lwant, 1e-14);
    // along axis 0 of [2, 2]: columns sum to one
    let x = Tensor::from_f32(vec![0., 1., 0., 1.], &[2, 2]).unwrap();
    assert_eq!(softmax(&x, 0).unwrap().to_vec_f32().unwrap(), vec![0.5, 0.5, 0.5, 0.5]);
    let x = Tensor::from_f32(vec![-1000., -1000.], &[2]).unwrap();
    let l = log_softmax(&x, 0).unwrap().to_vec_f32().unwrap();
    assert!(l.iter().all(|&v| (v + std::f32::consts::LN_2).abs() < 1e-6), "{l:?}");
}

#[test]
fn softmax_gradients() {
    assert_grads("softmax last axis", |x| Ok(vec![softmax(&x[0], 1)?]), &[rnd(&[3, 5], 1)], &[0], TOL);
    assert_grads("softmax axis 0 of 3-D", |x| Ok(vec![softmax(&x[0], 0)?]), &[rnd(&[4, 3, 2], 2)], &[0], TOL);
    assert_grads("softmax middle axis", |x| Ok(vec![softmax(&x[0], 1)?]), &[rnd(&[2, 4, 3], 3)], &[0], TOL);
    assert_grads("log_softmax last axis", |x| Ok(vec![log_softmax(&x[0], 1)?]), &[rnd(&[3, 5], 4)], &[0], TOL);
    assert_grads("log_softmax axis 0 of 3-D", |x| Ok(vec![log_softmax(&x[0], 0)?]), &[rnd(&[4, 3, 2], 5)], &[0], TOL);
    assert_grads("log_softmax 1-D", |x| Ok(vec![log_softmax(&x[0], 0)?]), &[rnd(&[6], 6)], &[0], TOL);
}

#[test]
fn softmax_large_rows_sum_to_one() {
    // Parallel blocks, inner > 1.
    let x = rnd(&[40, 30, 50], 7);
    let y = f64s(&softmax(&x, 1).unwrap());
    for o in 0..40 {
        for i in 0..50 {
            let s: f64 = (0..30).map(|j| y[o * 1500 + j * 50 + i]).sum();
            assert!((s - 1.0).abs() < 1e-12, "column sum {s}");
        }
    }
}

#[test]
fn softmax_errors() {
    let x = rnd(&[2, 3], 1);
    assert_mentions(&err_text(softmax(&x, 2)), &["softmax", "[2, 3]", "axis 2"]);
    assert_mentions(&err_text(log_softmax(&x, 7)), &["logSoftmax", "[2, 3]", "axis 7"]);
}

// ---------------------------------------------------------------------------------------------
// losses

#[test]
fn mse_values_grads_errors() {
    let p = Tensor::from_f64(vec![1., 2., 3.], &[3]).unwrap();
    let t = Tensor::from_f64(vec![1., 1., 1.], &[3]).unwrap();
    let l = mse(&p, &t).unwrap();
    assert_eq!(l.shape(), &[] as &[usize]);
    assert!((l.item().unwrap() - 5.0 / 3.0).abs() < 1e-15);
    assert_grads("mse", |x| Ok(vec![mse(&x[0], &x[1])?]), &[rnd(&[3, 4], 1), rnd(&[3, 4], 2)], &[0, 1], TOL);
    // Large enough for the chunked parallel sum.
    let (a, b) = (rnd(&[200, 300], 3), rnd(&[200, 300], 4));
    let want: f64 = f64s(&a).iter().zip(f64s(&b)).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / 60000.0;
    assert!((mse(&a, &b).unwrap().item().unwrap() - want).abs() < 1e-12);
    assert_mentions(&err_text(mse(&rnd(&[2, 3], 1), &rnd(&[3, 2], 2))), &["mse", "[2, 3]", "[3, 2]"]);
    // A target without requires_grad gets no gradient; the prediction's is 2(p − t)/n.
    for dtype in [DType::F64, DType::F32] {
        let p = cast(&rnd(&[50, 40], 5), dtype).unwrap();
        let t = cast(&rnd(&[50, 40], 6), dtype).unwrap();
        p.set_requires_grad(true).unwrap();
        backward(&mse(&p, &t).unwrap(), None).unwrap();
        assert!(t.grad().is_none(), "{dtype:?}: no gradient for a target that does not ask for one");
        let got = f64s(&p.grad().unwrap());
        for ((g, a), b) in got.iter().zip(f64s(&p)).zip(f64s(&t)) {
            let want = 2.0 * (a - b) / 2000.0;
            assert!((g - want).abs() <= 1e-6 * want.abs().max(1e-3), "{dtype:?}: {g} vs {want}");
        }
    }
}

fn ce_naive(logits: &[f64], c: usize, targets: &[i32], ignore: Option<i32>) -> f64 {
    let (mut total, mut count) = (0.0, 0);
    for (i, &t) in targets.iter().enumerate() {
        if Some(t) == ignore {
            continue;
        }
        let row = &logits[i * c..(i + 1) * c];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        total += lse - row[t as usize];
        count += 1;
    }
    total / count as f64
}

#[test]
fn cross_entropy_values() {
    // Uniform logits: loss = ln C.
    let x = Tensor::zeros(&[2, 4], DType::F64).unwrap();
    let t = Tensor::from_i32(vec![0, 3], &[2]).unwrap();
    let l = cross_entropy(&x, &t, None).unwrap();
    assert_eq!(l.shape(), &[] as &[usize]);
    assert!((l.item().unwrap() - 4f64.ln()).abs() < 1e-14);
    let xv = vec![1., 2., 3., 0.5, -1., 2., 1000., 0., -1000.];
    let x = Tensor::from_f64(xv.clone(), &[3, 3]).unwrap();
    let t = Tensor::from_i32(vec![2, 0, 0], &[3]).unwrap();
    let l = cross_entropy(&x, &t, None).unwrap().item().unwrap();
    // row 2 by hand: logsumexp(1000, 0, -1000) − 1000 ≈ 0 (the naive formula would overflow)
    let want = (ce_naive(&xv[..6], 3, &[2, 0], None) * 2.0 + 0.0) / 3.0;
    assert!((l - want).abs() < 1e-12, "{l} vs {want}");
    // The ignored row does not count in the mean.
    let t = Tensor::from_i32(vec![2, -100, 1], &[3]).unwrap();
    let l = cross_entropy(&x, &t, Some(-100)).unwrap().item().unwrap();
    let row2 = 1000.0 + (1.0 + (-1000f64).exp() + (-2000f64).exp()).ln() - 0.0;
    let want = (ce_naive(&xv[..3], 3, &[2], None) + row2) / 2.0;
    assert!((l - want).abs() < 1e-9, "{l} vs {want}");
    // f32 matches f64
    let x32 = Tensor::from_f32(xv[..6].iter().map(|&v| v as f32).collect(), &[2, 3]).unwrap();
    let t2 = Tensor::from_i32(vec![1, 2], &[2]).unwrap();
    let l32 = cross_entropy(&x32, &t2, None).unwrap().item().unwrap();
    assert!((l32 - ce_naive(&xv[..6], 3, &[1, 2], None)).abs() < 1e-6);
}

#[test]
fn cross_entropy_gradients() {
    let logits = rnd(&[4, 5], 1);
    let t = Tensor::from_i32(vec![1, 0, 4, 2], &[4]).unwrap();
    assert_grads(
        "cross_entropy",
        |x| Ok(vec![cross_entropy(&x[0], &t, None)?]),
        std::slice::from_ref(&logits),
        &[0],
        TOL,
    );
    let t = Tensor::from_i32(vec![1, -100, 4, 2], &[4]).unwrap();
    assert_grads(
        "cross_entropy ignored row",
        |x| Ok(vec![cross_entropy(&x[0], &t, Some(-100))?]),
        std::slice::from_ref(&logits),
        &[0],
        TOL,
    );
    // ignore_index may be a valid class: those rows drop out.
    let t = Tensor::from_i32(vec![1, 3, 3, 2], &[4]).unwrap();
    assert_grads(
        "cross_entropy ignore a class",
        |x| Ok(vec![cross_entropy(&scale(&x[0], 2.0)?, &t, Some(3))?]),
        std::slice::from_ref(&logits),
        &[0],
        TOL,
    );
    // Ignored rows get exactly zero gradient.
    let leaf = rnd(&[3, 2], 2);
    leaf.set_requires_grad(true).unwrap();
    let t = Tensor::from_i32(vec![0, -1, 1], &[3]).unwrap();
    backward(&cross_entropy(&leaf, &t, Some(-1)).unwrap(), None).unwrap();
    let g = f64s(&leaf.grad().unwrap());
    assert_eq!(&g[2..4], &[0.0, 0.0]);
    // Each counted row's gradient sums to zero (softmax − onehot), scaled by 1/2.
    assert!((g[0] + g[1]).abs() < 1e-15 && (g[4] + g[5]).abs() < 1e-15);
}

#[test]
fn cross_entropy_all_ignored_is_nan_with_zero_grad() {
    let leaf = rnd(&[2, 3], 3);
    leaf.set_requires_grad(true).unwrap();
    let t = Tensor::from_i32(vec![-100, -100], &[2]).unwrap();
    let l = cross_entropy(&leaf, &t, Some(-100)).unwrap();
    assert!(l.item().unwrap().is_nan());
    backward(&l, None).unwrap();
    assert_eq!(f64s(&leaf.grad().unwrap()), vec![0.0; 6]);
}

#[test]
fn cross_entropy_errors() {
    let x = rnd(&[2, 3], 1);
    let bad = Tensor::from_i32(vec![0, 5], &[2]).unwrap();
    assert_mentions(&err_text(cross_entropy(&x, &bad, None)), &["crossEntropy", "5", "[0, 3)"]);
    let neg = Tensor::from_i32(vec![-1, 0], &[2]).unwrap();
    assert_mentions(&err_text(cross_entropy(&x, &neg, Some(-100))), &["crossEntropy", "-1", "[0, 3)"]);
    // Targets still being computed: the error surfaces at the read instead.
    let lazy =
        concat(&[&Tensor::from_i32(vec![1], &[1]).unwrap(), &Tensor::from_i32(vec![7], &[1]).unwrap()], 0).unwrap();
    let msg = match cross_entropy(&x, &lazy, None) {
        Err(e) => e.to_string(),
        Ok(l) => l.item().unwrap_err().to_string(),
    };
    assert_mentions(&msg, &["crossEntropy", "7", "[0, 3)"]);
    let f = Tensor::from_f64(vec![0., 1.], &[2]).unwrap();
    assert_mentions(&err_text(cross_entropy(&x, &f, None)), &["crossEntropy", "int32", "float64"]);
    let t3 = Tensor::from_i32(vec![0, 1, 2], &[3]).unwrap();
    assert_mentions(&err_text(cross_entropy(&x, &t3, None)), &["crossEntropy", "[2]", "[3]", "[2, 3]"]);
    let t = Tensor::from_i32(vec![0, 1], &[2]).unwrap();
    assert_mentions(&err_text(cross_entropy(&rnd(&[2, 3, 1], 2), &t, None)), &["crossEntropy", "[N, C]", "[2, 3, 1]"]);
}

// ---------------------------------------------------------------------------------------------
// embedding

#[test]
fn embedding_values() {
    let w = Tensor::from_f64((0..8).map(|v| v as f64).collect(), &[4, 2]).unwrap();
    let idx = Tensor::from_i32(vec![3, 0, 3, 1], &[2, 2]).unwrap();
    let y = embedding(&w, &idx).unwrap();
    assert_eq!(y.shape(), &[2, 2, 2]);
    assert_eq!(f64s(&y), vec![6., 7., 0., 1., 6., 7., 2., 3.]);
    let one = Tensor::from_i32(vec![2], &[]).unwrap();
    let y = embedding(&w, &one).unwrap();
    assert_eq!(y.shape(), &[2]);
    assert_eq!(f64s(&y), vec![4., 5.]);
}

#[test]
fn embedding_gradients_with_repeated_indices() {
    let idx = Tensor::from_i32(vec![1, 3, 1, 0, 1, 3], &[2, 3]).unwrap();
    assert_grads("embedding", |x| Ok(vec![embedding(&x[0], &idx)?]), &[rnd(&[5, 4], 1)], &[0], TOL);
    // Repeated rows accumulate; unused rows get zero.
    let w = rnd(&[4, 2], 2);
    w.set_requires_grad(true).unwrap();
    backward(&sum_all(&embedding(&w, &idx).unwrap()).unwrap(), None).unwrap();
    assert_eq!(f64s(&w.grad().unwrap()), vec![1., 1., 3., 3., 0., 0., 2., 2.]);
}

#[test]
fn embedding_errors() {
    let w = rnd(&[5, 3], 1);
    let bad = Tensor::from_i32(vec![0, 7], &[2]).unwrap();
    assert_mentions(&err_text(embedding(&w, &bad)), &["embedding", "7", "[0, 5)"]);
    let neg = Tensor::from_i32(vec![-2], &[1]).unwrap();
    assert_mentions(&err_text(embedding(&w, &neg)), &["embedding", "-2", "[0, 5)"]);
    let f = rnd(&[2], 2);
    assert_mentions(&err_text(embedding(&w, &f)), &["embedding", "int32"]);
    let i = Tensor::from_i32(vec![0], &[1]).unwrap();
    assert_mentions(&err_text(embedding(&rnd(&[5], 3), &i)), &["embedding", "[V, E]", "[5]"]);
}

// ---------------------------------------------------------------------------------------------
// dropout

#[test]
fn dropout_values_and_determinism() {
    let x = Tensor::full(&[50, 40], 1.0, DType::F64).unwrap();
    let p = 0.25;
    let y = f64s(&dropout(&x, p, 42, true).unwrap());
    let kept = y.iter().filter(|&&v| v != 0.0).count();
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / (1.0 - p)).abs() < 1e-15));
    let frac = kept as f64 / y.len() as f64;
    assert!((frac - 0.75).abs() < 0.04, "kept fraction {frac}");
    // Same seed, same mask (also across dtypes); another seed, another mask.
    assert_eq!(y, f64s(&dropout(&x, p, 42, true).unwrap()));
    let x32 = Tensor::full(&[50, 40], 1.0, DType::F32).unwrap();
    let y32 = dropout(&x32, p, 42, true).unwrap().to_vec_f32().unwrap();
    assert!(y.iter().zip(&y32).all(|(a, &b)| (*a == 0.0) == (b == 0.0)));
    assert_ne!(y, f64s(&dropout(&x, p, 43, true).unwrap()));
    // Identity in evaluation and for p = 0.
    let r = rnd(&[3, 3], 1);
    assert_eq!(f64s(&dropout(&r, 0.5, 1, false).unwrap()), f64s(&r));
    assert_eq!(f64s(&dropout(&r, 0.0, 1, true).unwrap()), f64s(&r));
}

#[test]
fn dropout_gradients_use_the_same_mask() {
    assert_grads("dropout p=0.3", |x| Ok(vec![dropout(&x[0], 0.3, 7, true)?]), &[rnd(&[4, 5], 1)], &[0], TOL);
    assert_grads(
        "dropout then mul",
        |x| Ok(vec![mul(&dropout(&x[0], 0.5, 9, true)?, &x[1])?]),
        &[rnd(&[3, 4], 2), rnd(&[3, 4], 3)],
        &[0, 1],
        TOL,
    );
    // Gradient is zero exactly where the output was dropped.
    let leaf = rnd(&[6, 6], 4);
    leaf.set_requires_grad(true).unwrap();
    let y = dropout(&leaf, 0.5, 11, true).unwrap();
    backward(&sum_all(&y).unwrap(), None).unwrap();
    for (g, v) in f64s(&leaf.grad().unwrap()).iter().zip(f64s(&y)) {
        assert_eq!(*g == 0.0, v == 0.0);
        assert!(*g == 0.0 || (*g - 2.0).abs() < 1e-15);
    }
}

#[test]
fn dropout_rejects_bad_p() {
    let x = rnd(&[2, 2], 1);
    assert_mentions(&err_text(dropout(&x, 1.5, 0, true)), &["dropout", "1.5", "[0, 1)"]);
    assert_mentions(&err_text(dropout(&x, 1.0, 0, true)), &["dropout", "[0, 1)"]);
    assert_mentions(&err_text(dropout(&x, -0.1, 0, false)), &["dropout", "-0.1"]);
    assert_mentions(&err_text(dropout(&x, f64::NAN, 0, true)), &["dropout", "NaN"]);
}
