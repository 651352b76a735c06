//! Gradient checks and values for the elementwise ops.

use recurrent_core::gradcheck::assert_grads;
use recurrent_core::ops::elementwise::*;
use recurrent_core::{DType, Tensor};

fn rnd(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed).unwrap()
}

#[test]
fn broadcasting_binary_ops_have_correct_gradients() {
    let a = rnd(&[3, 4], 1);
    let b = rnd(&[4], 2);
    let c = rnd(&[3, 1], 3);
    assert_grads("add", |x| Ok(vec![add(&x[0], &x[1])?]), &[a.clone(), b.clone()], &[0, 1], 1e-6);
    assert_grads("sub", |x| Ok(vec![sub(&x[0], &x[1])?]), &[c.clone(), b.clone()], &[0, 1], 1e-6);
    assert_grads("mul", |x| Ok(vec![mul(&x[0], &x[1])?]), &[a.clone(), c.clone()], &[0, 1], 1e-6);
    let pos = add_scalar(&square(&b).unwrap(), 0.5).unwrap();
    assert_grads("div", |x| Ok(vec![div(&x[0], &x[1])?]), &[a.clone(), pos], &[0, 1], 1e-6);
}

#[test]
fn activations_have_correct_gradients() {
    let x = rnd(&[2, 5], 4);
    assert_grads("tanh", |x| Ok(vec![tanh(&x[0])?]), std::slice::from_ref(&x), &[0], 1e-6);
    assert_grads("sigmoid", |x| Ok(vec![sigmoid(&x[0])?]), std::slice::from_ref(&x), &[0], 1e-6);
    assert_grads("exp", |x| Ok(vec![exp(&x[0])?]), std::slice::from_ref(&x), &[0], 1e-6);
    assert_grads("relu", |x| Ok(vec![relu(&x[0])?]), std::slice::from_ref(&x), &[0], 1e-6);
    assert_grads("scale", |x| Ok(vec![scale(&add_scalar(&x[0], 1.5)?, -2.0)?]), std::slice::from_ref(&x), &[0], 1e-6);
    let pos = add_scalar(&square(&x).unwrap(), 0.5).unwrap();
    assert_grads("log", |x| Ok(vec![log(&x[0])?]), std::slice::from_ref(&pos), &[0], 1e-6);
    assert_grads("sqrt", |x| Ok(vec![sqrt(&x[0])?]), &[pos], &[0], 1e-6);
}

#[test]
fn broadcast_values_and_errors() {
    let a = Tensor::from_f32(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    let b = Tensor::from_f32(vec![10., 20., 30.], &[3]).unwrap();
    assert_eq!(add(&a, &b).unwrap().to_vec_f32().unwrap(), vec![11., 22., 33., 14., 25., 36.]);
    let c = Tensor::from_f32(vec![1., 2.], &[2]).unwrap();
    let err = add(&a, &c).unwrap_err().to_string();
    assert!(err.contains("add") && err.contains("[2, 3]") && err.contains("[2]"), "{err}");
    let i = Tensor::from_i32(vec![1, 2, 3], &[3]).unwrap();
    let err = mul(&b, &i).unwrap_err().to_string();
    assert!(err.contains("mul") && err.contains("int32"), "{err}");
    assert_eq!(sum_to(&a, &[]).unwrap().item().unwrap(), 21.0);
    assert_eq!(sum_to(&a, &[3]).unwrap().to_vec_f32().unwrap(), vec![5., 7., 9.]);
}

#[test]
fn backward_frees_the_graph_unless_retained() {
    let x = Tensor::from_f64(vec![1.0, 2.0], &[2]).unwrap();
    x.set_requires_grad(true).unwrap();
    let y = sum_to(&tanh(&x).unwrap(), &[]).unwrap();
    recurrent_core::backward_with(&y, None, true).unwrap();
    recurrent_core::backward(&y, None).unwrap();
    let g = x.grad().unwrap().to_vec_f64().unwrap();
    assert!((g[0] - 2.0 * (1.0 - 1f64.tanh().powi(2))).abs() < 1e-12, "two passes accumulate: {g:?}");
    let msg = recurrent_core::backward(&y, None).unwrap_err().to_string();
    assert!(msg.contains("already freed") && msg.contains("retainGraph"), "{msg}");
}

#[test]
fn an_output_larger_than_the_machine_is_refused_when_enqueued() {
    // [2^16, 1] + [1, 2^17] broadcasts to 2^33 float64 values (64 GiB): more than a test
    // machine has, refused before the executor would allocate (and abort).
    let a = Tensor::zeros(&[1 << 16, 1], DType::F64).unwrap();
    let b = Tensor::zeros(&[1, 1 << 17], DType::F64).unwrap();
    if recurrent_core::storage::host_memory_bytes() >= 1 << 36 {
        return; // a machine with 64 GiB or more could hold it
    }
    let e = add(&a, &b).expect_err("refused");
    assert_eq!(e.kind(), recurrent_core::ErrorKind::Memory);
    let m = e.to_string();
    assert!(m.starts_with("add: cannot allocate 68719476736 bytes"), "{m}");
    // The process goes on.
    assert_eq!(add(&a, &a).unwrap().to_vec_f64().unwrap().len(), 1 << 16);
}

#[test]
fn backward_names_itself_for_a_gradient_of_the_wrong_dtype() {
    let x = rnd(&[3], 1);
    x.set_requires_grad(true).unwrap();
    let y = square(&x).unwrap();
    let g = Tensor::zeros(&[3], DType::F32).unwrap();
    let m = recurrent_core::backward_with(&y, Some(g), false).err().unwrap().to_string();
    assert!(m.starts_with("backward: expected dtype float64") && m.ends_with("got float32"), "{m}");
}
