//! Values, gradient checks (f64, tolerance 1e-6 on the relative error, as in tests/ops.rs) and
//! error messages of the decoding primitives: comparisons, where/maskedFill, sequenceMask,
//! cast, max/argmax, topk, gather and indexSelect.

use recurrent_core::gradcheck::assert_grads;
use recurrent_core::ops::cast::cast;
use recurrent_core::ops::compare::{eq, gt, lt, masked_fill, sequence_mask, sequence_mask_numbers, where_};
use recurrent_core::ops::elementwise::mul;
use recurrent_core::ops::index::{argmax, gather, index_select, max, topk};
use recurrent_core::ops::reduce::sum_all;
use recurrent_core::{backward, DType, ErrorKind, Tensor};

const TOL: f64 = 1e-6;

fn rnd(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed).unwrap()
}
fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}
fn i32s(t: &Tensor) -> Vec<i32> {
    t.to_vec_i32().unwrap()
}
fn ints(v: &[i32], shape: &[usize]) -> Tensor {
    Tensor::from_i32(v.to_vec(), shape).unwrap()
}
fn reals(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64(v.to_vec(), shape).unwrap()
}
fn err<T: std::fmt::Debug>(r: recurrent_core::Result<T>, kind: ErrorKind, parts: &[&str]) {
    let e = r.unwrap_err();
    assert_eq!(e.kind(), kind, "{e}");
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "error message {msg:?} should mention {p:?}");
    }
}

#[test]
fn comparisons_broadcast_and_give_int32() {
    let a = reals(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = reals(&[2., 5., 3.], &[3]);
    let r = eq(&a, &b).unwrap();
    assert_eq!((r.dtype(), r.shape()), (DType::I32, &[2usize, 3][..]));
    assert_eq!(i32s(&r), vec![0, 0, 1, 0, 1, 0]);
    assert_eq!(i32s(&lt(&a, &b).unwrap()), vec![1, 1, 0, 0, 0, 0]);
    assert_eq!(i32s(&gt(&a, &b).unwrap()), vec![0, 0, 0, 1, 0, 1]);
    // int32 operands, a column against a row.
    let c = ints(&[1, 2], &[2, 1]);
    let d = ints(&[0, 1, 2], &[1, 3]);
    assert_eq!(i32s(&gt(&c, &d).unwrap()), vec![1, 0, 0, 1, 1, 0]);
    // NaN compares false, except in nothing.
    let n = reals(&[f64::NAN, 1.0], &[2]);
    assert_eq!(i32s(&eq(&n, &n).unwrap()), vec![0, 1]);
    assert_eq!(i32s(&lt(&n, &reals(&[2.0, 2.0], &[2])).unwrap()), vec![0, 1]);
}

#[test]
fn comparisons_record_no_history_and_check_inputs() {
    let a = rnd(&[3], 1);
    a.set_requires_grad(true).unwrap();
    assert!(!gt(&a, &rnd(&[3], 2)).unwrap().requires_grad());
    err(eq(&a, &ints(&[1, 2, 3], &[3])), ErrorKind::DType, &["eq", "float64", "int32"]);
    err(lt(&rnd(&[2, 3], 1), &rnd(&[4], 2)), ErrorKind::Shape, &["lt", "[2, 3]", "[4]"]);
}

#[test]
fn where_values_and_gradients() {
    let c = ints(&[1, 0, 0, 1], &[2, 2]);
    let a = reals(&[1., 2., 3., 4.], &[2, 2]);
    let b = reals(&[-1., -2.], &[2]);
    assert_eq!(f64s(&where_(&c, &a, &b).unwrap()), vec![1., -2., -1., 4.]);
    // The condition broadcasts too (a row mask over [B, T]).
    let row = ints(&[0, 1], &[2, 1]);
    assert_eq!(f64s(&where_(&row, &a, &b).unwrap()), vec![-1., -2., 3., 4.]);
    let cond = gt(&rnd(&[3, 4], 7), &rnd(&[4], 8)).unwrap();
    assert_grads(
        "where broadcast",
        |x| Ok(vec![where_(&cond, &x[0], &x[1])?]),
        &[rnd(&[3, 4], 1), rnd(&[4], 2)],
        &[0, 1],
        TOL,
    );
    assert_grads(
        "where 0-d b",
        |x| Ok(vec![where_(&cond, &x[0], &x[1])?]),
        &[rnd(&[3, 1], 3), rnd(&[], 4)],
        &[0, 1],
        TOL,
    );
    err(where_(&a, &a, &a), ErrorKind::DType, &["where", "int32 condition", "float64"]);
    err(where_(&c, &a, &ints(&[1, 2], &[2])), ErrorKind::DType, &["where", "float64", "int32"]);
    err(where_(&ints(&[1, 0, 1], &[3]), &a, &b), ErrorKind::Shape, &["where", "[3]", "[2, 2]"]);
}

#[test]
fn masked_fill_values_gradients_and_errors() {
    let x = reals(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let m = ints(&[0, 1, 1], &[3]);
    assert_eq!(f64s(&masked_fill(&x, &m, -1e9).unwrap()), vec![1., -1e9, -1e9, 4., -1e9, -1e9]);
    let tokens = ints(&[5, 6, 7, 8], &[2, 2]);
    assert_eq!(i32s(&masked_fill(&tokens, &ints(&[1, 0], &[2, 1]), 0.0).unwrap()), vec![0, 0, 7, 8]);
    let mask = gt(&rnd(&[2, 5], 3), &rnd(&[5], 4)).unwrap();
    assert_grads("maskedFill", |x| Ok(vec![masked_fill(&x[0], &mask, 3.5)?]), &[rnd(&[2, 5], 5)], &[0], TOL);
    err(masked_fill(&x, &ints(&[1; 6], &[6]), 0.0), ErrorKind::Shape, &["maskedFill", "[2, 3]", "[6]"]);
    err(masked_fill(&x, &ints(&[1; 2], &[2, 1, 1]), 0.0), ErrorKind::Shape, &["maskedFill", "[2, 3]", "[2, 1, 1]"]);
    err(masked_fill(&x, &x, 0.0), ErrorKind::DType, &["maskedFill", "int32 mask", "float64"]);
    err(masked_fill(&tokens, &ints(&[1, 0], &[2]), 0.5), ErrorKind::Value, &["maskedFill", "int32 value", "0.5"]);
}

#[test]
fn sequence_mask_values_and_length_checks() {
    let m = sequence_mask(&ints(&[3, 1, 4], &[3]), 4).unwrap();
    assert_eq!(m.shape(), &[3, 4]);
    assert_eq!(i32s(&m), vec![1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(i32s(&sequence_mask_numbers(&[2.0, 1.0], 2).unwrap()), vec![1, 1, 1, 0]);
    err(sequence_mask(&ints(&[3, 5], &[2]), 4), ErrorKind::Value, &["sequenceMask", "lengths[1] is 5", "[1, 4]"]);
    err(sequence_mask(&ints(&[0, 2], &[2]), 4), ErrorKind::Value, &["sequenceMask", "lengths[0] is 0"]);
    err(sequence_mask_numbers(&[1.5], 4), ErrorKind::Value, &["sequenceMask", "lengths[0] is 1.5"]);
    err(sequence_mask_numbers(&[f64::NAN], 4), ErrorKind::Value, &["sequenceMask", "NaN"]);
    err(sequence_mask(&reals(&[1.0], &[1]), 4), ErrorKind::DType, &["sequenceMask", "int32 lengths", "float64"]);
    err(sequence_mask(&ints(&[1, 1], &[1, 2]), 4), ErrorKind::Shape, &["sequenceMask", "[B]", "[1, 2]"]);
    err(sequence_mask(&ints(&[1], &[1]), 0), ErrorKind::Value, &["sequenceMask", "T must be at least 1"]);
    // Lengths computed by an op are checked when it runs (or at once, if it already ran), with
    // the same message.
    let late = cast(&reals(&[2.0, 9.0], &[2]), DType::I32).unwrap();
    err(sequence_mask(&late, 4).and_then(|m| m.to_vec_i32()), ErrorKind::Value, &["sequenceMask", "lengths[1] is 9"]);
}

#[test]
fn cast_values_truncation_and_refusals() {
    let x = reals(&[1.9, -1.9, 0.5, -0.5, 2147483647.0, -2147483648.9], &[6]);
    let i = cast(&x, DType::I32).unwrap();
    assert_eq!(i32s(&i), vec![1, -1, 0, 0, i32::MAX, i32::MIN]);
    assert_eq!(f64s(&cast(&i, DType::F64).unwrap()), vec![1., -1., 0., 0., 2147483647.0, -2147483648.0]);
    let f = cast(&reals(&[0.1, 1e40], &[2]), DType::F32).unwrap();
    assert_eq!(f.dtype(), DType::F32);
    assert_eq!(f.to_vec_f32().unwrap(), vec![0.1f32, f32::INFINITY]);
    assert_eq!(cast(&f, DType::F64).unwrap().to_vec_f64().unwrap()[0], 0.1f32 as f64);
    let same = rnd(&[2], 1);
    assert_eq!(cast(&same, DType::F64).unwrap().id(), same.id(), "a cast to the same dtype is the tensor itself");
    for (bad, shown) in
        [(f64::NAN, "NaN"), (f64::INFINITY, "inf"), (2147483648.0, "2147483648"), (-2147483649.0, "-2147483649")]
    {
        err(cast(&reals(&[0.0, bad], &[2]), DType::I32), ErrorKind::Value, &["cast", shown, "position 1", "int32"]);
    }
    // Values computed by an op are checked when it runs (or at once, if it already ran).
    let late = mul(&reals(&[1.0, 3e9], &[2]), &reals(&[1.0, 1.0], &[2])).unwrap();
    err(cast(&late, DType::I32).and_then(|t| t.to_vec_i32()), ErrorKind::Value, &["cast", "3000000000", "position 1"]);
}

#[test]
fn cast_gradients_flow_between_float_dtypes() {
    // Central differences cannot see through float32 rounding, so the gradient of the round
    // trip is checked exactly: d Σ(w ⊙ cast(x)) / dx = w (as float32, then widened).
    let x = rnd(&[2, 3], 3);
    x.set_requires_grad(true).unwrap();
    let w = Tensor::from_f32(vec![0.5, -1.25, 2.0, 3.0, 0.1, -7.0], &[2, 3]).unwrap();
    let y = mul(&cast(&x, DType::F32).unwrap(), &w).unwrap();
    assert!(y.requires_grad());
    backward(&sum_all(&y).unwrap(), None).unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.dtype(), DType::F64);
    assert_eq!(f64s(&g), w.to_vec_f32().unwrap().into_iter().map(f64::from).collect::<Vec<_>>());
    assert!(!cast(&x, DType::I32).unwrap().requires_grad());
}

#[test]
fn max_and_argmax_values_ties_and_nan() {
    let x = reals(&[1., 5., 5., 2., 7., 0., -1., 7.], &[2, 4]);
    let (v, i) = max(&x, 1, false).unwrap();
    assert_eq!((v.shape(), i.shape()), (&[2usize][..], &[2usize][..]));
    assert_eq!((f64s(&v), i32s(&i)), (vec![5., 7.], vec![1, 0]), "ties give the first index");
    let (v0, i0) = max(&x, 0, true).unwrap();
    assert_eq!(v0.shape(), &[1, 4]);
    assert_eq!((f64s(&v0), i32s(&i0)), (vec![7., 5., 5., 7.], vec![1, 0, 0, 1]));
    assert_eq!(i32s(&argmax(&x, 1, false).unwrap()), vec![1, 0]);
    assert_eq!(argmax(&x, 1, true).unwrap().shape(), &[2, 1]);
    assert_eq!(i32s(&argmax(&reals(&[1., f64::NAN, 3., f64::NAN], &[4]), 0, false).unwrap()), vec![1]);
    assert_eq!(i32s(&argmax(&ints(&[3, 9, 9], &[3]), 0, false).unwrap()), vec![1]);
    err(max(&x, 2, false), ErrorKind::Shape, &["max", "[0, 2)", "axis 2"]);
    err(argmax(&x, 5, false), ErrorKind::Shape, &["argmax", "[2, 4]", "axis 5"]);
}

#[test]
fn max_gradient_goes_to_the_chosen_position() {
    // Distinct values: the argmax is stable under the finite-difference step.
    let x = reals(&[0.3, -1.2, 2.5, 0.7, 1.1, -0.4, 0.9, 3.3, -2.0, 0.1, 0.2, 1.7], &[2, 3, 2]);
    for axis in 0..3 {
        assert_grads(
            &format!("max axis {axis}"),
            |x| Ok(vec![max(&x[0], axis, false)?.0]),
            std::slice::from_ref(&x),
            &[0],
            TOL,
        );
    }
    let t = reals(&[1., 3., 3.], &[3]);
    t.set_requires_grad(true).unwrap();
    backward(&max(&t, 0, false).unwrap().0, None).unwrap();
    assert_eq!(f64s(&t.grad().unwrap()), vec![0., 1., 0.], "a tie's gradient goes to the first index only");
}

#[test]
fn topk_values_order_and_gradients() {
    let x = reals(&[1., 4., 4., 0., 9., 4.], &[6]);
    let (v, i) = topk(&x, 3, 0, true, true).unwrap();
    assert_eq!((f64s(&v), i32s(&i)), (vec![9., 4., 4.], vec![4, 1, 2]), "ties: lower index first");
    let (v, i) = topk(&x, 3, 0, false, true).unwrap();
    assert_eq!((f64s(&v), i32s(&i)), (vec![0., 1., 4.], vec![3, 0, 1]));
    let (v, i) = topk(&x, 3, 0, true, false).unwrap();
    assert_eq!((f64s(&v), i32s(&i)), (vec![4., 4., 9.], vec![1, 2, 4]), "unsorted: in index order");
    // Along a middle axis of a [2, 3, 2] tensor.
    let y = reals(&[1., 6., 3., 5., 2., 4., 0., 0., 8., 1., 7., 2.], &[2, 3, 2]);
    let (v, i) = topk(&y, 2, 1, true, true).unwrap();
    assert_eq!(v.shape(), &[2, 2, 2]);
    assert_eq!((f64s(&v), i32s(&i)), (vec![3., 6., 2., 5., 8., 2., 7., 1.], vec![1, 0, 2, 1, 1, 2, 2, 1]));
    let (_, nan_first) = topk(&reals(&[1., f64::NAN, 2.], &[3]), 2, 0, true, true).unwrap();
    assert_eq!(i32s(&nan_first), vec![1, 2]);
    let distinct = reals(&[0.3, -1.2, 2.5, 0.7, 1.1, -0.4, 0.9, 3.3, -2.0, 0.1, 0.2, 1.7], &[3, 4]);
    for (largest, sorted) in [(true, true), (false, true), (true, false)] {
        assert_grads(
            &format!("topk largest={largest} sorted={sorted}"),
            |x| Ok(vec![topk(&x[0], 2, 1, largest, sorted)?.0]),
            std::slice::from_ref(&distinct),
            &[0],
            TOL,
        );
    }
    assert_grads(
        "topk axis 0",
        |x| Ok(vec![topk(&x[0], 3, 0, true, true)?.0]),
        std::slice::from_ref(&distinct),
        &[0],
        TOL,
    );
    err(topk(&x, 7, 0, true, true), ErrorKind::Value, &["topk", "[1, 6]", "k = 7"]);
    err(topk(&x, 0, 0, true, true), ErrorKind::Value, &["topk", "k = 0"]);
    err(topk(&x, 1, 1, true, true), ErrorKind::Shape, &["topk", "axis 1"]);
}

#[test]
fn gather_values_gradients_and_errors() {
    let x = reals(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let idx = ints(&[2, 0, 1, 1], &[2, 2]);
    assert_eq!(f64s(&gather(&x, 1, &idx).unwrap()), vec![3., 1., 5., 5.]);
    let idx0 = ints(&[1, 0, 1], &[1, 3]);
    assert_eq!(f64s(&gather(&x, 0, &idx0).unwrap()), vec![4., 2., 6.]);
    assert_eq!(i32s(&gather(&ints(&[7, 8, 9], &[3]), 0, &ints(&[2, 2], &[2])).unwrap()), vec![9, 9]);
    // Repeated indices: the gradients add up.
    let rep = ints(&[0, 0, 2, 1, 1, 1, 0, 2], &[2, 4]);
    assert_grads("gather axis 1", |x| Ok(vec![gather(&x[0], 1, &rep)?]), &[rnd(&[2, 3], 1)], &[0], TOL);
    let idx3 = ints(&[1, 0, 0, 2, 1, 1], &[1, 3, 2]);
    assert_grads("gather axis 0 rank 3", |x| Ok(vec![gather(&x[0], 0, &idx3)?]), &[rnd(&[3, 3, 2], 2)], &[0], TOL);
    let t = reals(&[1., 2., 3.], &[1, 3]);
    t.set_requires_grad(true).unwrap();
    backward(&sum_all(&gather(&t, 1, &ints(&[2, 2, 0], &[1, 3])).unwrap()).unwrap(), None).unwrap();
    assert_eq!(f64s(&t.grad().unwrap()), vec![1., 0., 2.]);
    err(gather(&x, 1, &ints(&[0, 3], &[1, 2])), ErrorKind::Value, &["gather", "index 3 at position 1", "[0, 3)"]);
    err(gather(&x, 1, &ints(&[0, 1], &[2])), ErrorKind::Shape, &["gather", "rank 2", "[2]"]);
    err(gather(&x, 1, &ints(&[0; 6], &[3, 2])), ErrorKind::Shape, &["gather", "[2, 3]", "[3, 2]"]);
    err(gather(&x, 1, &reals(&[0.0], &[1, 1])), ErrorKind::DType, &["gather", "int32 indices", "float64"]);
    err(gather(&x, 2, &idx), ErrorKind::Shape, &["gather", "axis 2"]);
    let late = cast(&reals(&[0.0, -1.0], &[1, 2]), DType::I32).unwrap();
    err(gather(&x, 1, &late).and_then(|t| t.to_vec_f64()), ErrorKind::Value, &["gather", "index -1 at position 1"]);
}

#[test]
fn index_select_values_gradients_and_errors() {
    // Beams [B·K = 3, H = 2] reordered by their parents.
    let x = reals(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
    let parents = ints(&[2, 2, 0], &[3]);
    assert_eq!(f64s(&index_select(&x, 0, &parents).unwrap()), vec![5., 6., 5., 6., 1., 2.]);
    assert_eq!(f64s(&index_select(&x, 1, &ints(&[1], &[1])).unwrap()), vec![2., 4., 6.]);
    let h = rnd(&[2, 3, 4], 1);
    assert_grads(
        "indexSelect axis 1",
        |x| Ok(vec![index_select(&x[0], 1, &parents)?]),
        std::slice::from_ref(&h),
        &[0],
        TOL,
    );
    let many = ints(&[3, 0, 3, 3, 1], &[5]);
    assert_grads("indexSelect axis 2", |x| Ok(vec![index_select(&x[0], 2, &many)?]), &[h], &[0], TOL);
    err(
        index_select(&x, 0, &ints(&[0, 3], &[2])),
        ErrorKind::Value,
        &["indexSelect", "index 3 at position 1", "[0, 3)"],
    );
    err(index_select(&x, 0, &ints(&[0, 1], &[1, 2])), ErrorKind::Shape, &["indexSelect", "[M]", "[1, 2]"]);
    err(index_select(&x, 0, &x), ErrorKind::DType, &["indexSelect", "int32 indices", "float64"]);
}
