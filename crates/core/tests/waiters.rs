//! Reads that wait without a blocked thread (`Tensor::when_ready`, `executor::synchronize_then`,
//! what the binding's promises use): the waiter runs once the data is computed, never before,
//! with that version's data even if the tensor is updated in place meanwhile, with the op's
//! error when it failed, and at once when the data is already there.

use recurrent_core::executor::{synchronize_then, Hold};
use recurrent_core::ops::elementwise::add;
use recurrent_core::ops::matmul::matmul;
use recurrent_core::Tensor;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// The executor hold is process-wide: these tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn ones(shape: &[usize]) -> Tensor {
    Tensor::from_f32(vec![1.0; shape.iter().product()], shape).unwrap()
}

#[test]
fn a_waiter_runs_after_the_op_with_its_versions_data() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let hold = Hold::new(Duration::from_secs(10));
    let a = ones(&[2, 2]);
    let s = add(&a, &a).unwrap(); // pending behind the hold
    let (tx, rx) = mpsc::channel();
    assert!(s.when_ready(move |r| tx.send(r.map(|st| st.to_f64_vec())).unwrap()));
    // An in-place update after the wait was registered: the waiter still gets the old version.
    s.assign(&ones(&[2, 2])).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "the waiter ran before the op did");
    hold.release();
    let got = rx.recv_timeout(Duration::from_secs(10)).expect("the waiter runs").unwrap();
    assert_eq!(got, vec![2.0; 4]);
    assert_eq!(s.to_vec_f64().unwrap(), vec![1.0; 4], "the tensor itself holds the update");
}

#[test]
fn a_ready_tensor_calls_its_waiter_at_once_and_a_failed_op_gives_its_error() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let a = ones(&[3]);
    let (tx, rx) = mpsc::channel();
    assert!(a.when_ready(move |r| tx.send(r.is_ok()).unwrap()));
    assert_eq!(rx.try_recv(), Ok(true), "called on this thread, before when_ready returned");

    // An op whose input fails: its outputs are poisoned with the original error.
    let hold = Hold::new(Duration::from_secs(10));
    let bad = Tensor::from_f32(vec![1.0; 6], &[2, 3]).unwrap();
    // Indices still pending behind the hold, so that index 7 (of 2 rows) is found when the
    // embedding runs, not when it is enqueued.
    let idx = recurrent_core::ops::shape::transpose(&Tensor::from_i32(vec![1, 7], &[2, 1]).unwrap(), 0, 1).unwrap();
    let picked = recurrent_core::ops::embedding::embedding(&bad, &idx).unwrap();
    let later = add(&picked, &picked).unwrap();
    let (tx, rx) = mpsc::channel();
    later.when_ready(move |r| tx.send(r.err().map(|e| e.to_string())).unwrap());
    hold.release();
    let err = rx.recv_timeout(Duration::from_secs(10)).unwrap().expect("an error");
    assert!(err.starts_with("embedding:"), "{err}");
}

#[test]
fn synchronize_then_runs_after_every_job_enqueued_before_it() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let hold = Hold::new(Duration::from_secs(10));
    let x = ones(&[64, 64]);
    let y = matmul(&x, &x).unwrap();
    let (tx, rx) = mpsc::channel();
    let y2 = y.clone();
    synchronize_then(move || tx.send(y2.to_vec_f64().unwrap()[0]).unwrap());
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "ran before the held matmul");
    hold.release();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 64.0);
}
