//! The same parity cases as `tests/parity.rs`, on the host emulator of `kernels/*.cu`
//! (tests/common/emu.rs): the ops' CUDA paths, the kernels' arithmetic and indexing, the GEMM
//! translation to cuBLAS's column-major convention and the caching allocator are checked
//! against the CPU on machines without a GPU. What only a GPU shows (cudarc, NVRTC-compiled
//! code, cuBLAS itself, races between blocks, speed) is left to `tests/parity.rs`.
//!
//! Needs a C++ compiler (c++ or $CXX): built without one, every test is `#[ignore]`d (build.rs
//! sets `recurrent_skip = "emulator"`) and cargo reports it as ignored; a test that runs fails
//! when the emulator cannot be built (`RECURRENT_REQUIRE_EMULATOR=1` never ignores them).

mod common;

use common::cases::{self, assert_all, CELLS};
use common::emu;
use recurrent_core::backend::register_cuda;
use recurrent_core::{DType, Device, ErrorKind};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn device(test: &str) -> Option<Device> {
    if let Some(reason) = emu::unavailable_reason() {
        panic!("no kernel emulator ({reason}) [{test}]");
    }
    register_cuda(emu::open);
    println!("device: {} [{test}]", recurrent_core::backend::cuda(0).expect("emulator").describe());
    Some(Device::Cuda(0))
}

macro_rules! emu_test {
    ($name:ident, |$dev:ident| $body:expr) => {
        #[test]
        #[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
        fn $name() {
            let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
            let Some($dev) = device(stringify!($name)) else { return };
            let outcomes: Vec<cases::Outcome> = $body;
            assert_all(&outcomes);
        }
    };
}

emu_test!(elementwise_f32, |dev| cases::elementwise(dev, DType::F32));
emu_test!(elementwise_f64, |dev| cases::elementwise(dev, DType::F64));
emu_test!(reductions_f32, |dev| cases::reductions(dev, DType::F32));
emu_test!(reductions_f64, |dev| cases::reductions(dev, DType::F64));
emu_test!(shape_ops, |dev| cases::shapes(dev));
emu_test!(matmul_f32, |dev| cases::matmuls(dev, DType::F32));
emu_test!(matmul_f64, |dev| cases::matmuls(dev, DType::F64));
emu_test!(softmax_ops, |dev| cases::softmaxes(dev));
emu_test!(loss_ops, |dev| cases::losses(dev));
emu_test!(embedding_op, |dev| cases::embeddings(dev));
emu_test!(primitives_f32, |dev| cases::primitives(dev, DType::F32));
emu_test!(primitives_f64, |dev| cases::primitives(dev, DType::F64));
emu_test!(attention_f32, |dev| cases::attentions(dev, DType::F32));
emu_test!(attention_f64, |dev| cases::attentions(dev, DType::F64));
emu_test!(dropout_same_mask_as_cpu, |dev| cases::dropouts(dev));
emu_test!(optimizer_updates_and_clipping, |dev| cases::optimizers(dev));
emu_test!(recurrent_cells_f32, |dev| CELLS.iter().flat_map(|&k| cases::recurrent(dev, k, DType::F32)).collect());
emu_test!(recurrent_cells_f64, |dev| CELLS.iter().flat_map(|&k| cases::recurrent(dev, k, DType::F64)).collect());
emu_test!(training_steps, |dev| CELLS
    .iter()
    .flat_map(|&k| [(false, false), (true, true)].into_iter().flat_map(move |(l, r)| cases::training(dev, k, l, r)))
    .collect());

#[test]
#[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
fn tbptt_chunks_keep_device_memory_flat() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("tbptt_chunks_keep_device_memory_flat") else { return };
    let be = recurrent_core::backend::cuda(0).unwrap();
    let before = emu::alloc_stats().unwrap();
    let series = cases::tbptt_memory(dev, &|| {
        let s = emu::alloc_stats().unwrap();
        (s.mallocs, be.memory().reserved)
    });
    let after = emu::alloc_stats().unwrap();
    println!(
        "{}; cache reuses {}",
        cases::assert_memory_flat(&series, cases::tbptt_bucket_slack()),
        after.reuses - before.reuses
    );
    assert!(after.reuses > before.reuses, "the cache served no request");
}

#[test]
#[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
fn oom_is_a_clear_error_and_the_device_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("oom_is_a_clear_error_and_the_device_recovers") else { return };
    let be = recurrent_core::backend::cuda(0).unwrap();
    let err = match be.alloc(DType::F32, 250_000_000_000) {
        Err(e) => e,
        Ok(_) => panic!("allocated 10^12 bytes"),
    };
    assert_eq!(err.kind(), ErrorKind::Memory);
    assert!(
        err.to_string().contains("1000000000000 bytes") && err.to_string().contains("out of device memory"),
        "{err}"
    );
    assert_all(&cases::matmuls(dev, DType::F32));
}

#[test]
#[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
fn synchronize_and_queued_cover_the_device_executor() {
    use recurrent_core::executor::{queued, synchronize};
    use recurrent_core::ops::matmul::matmul;
    use recurrent_core::Tensor;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("synchronize_and_queued_cover_the_device_executor") else { return };
    let be = recurrent_core::backend::cuda(0).unwrap();
    let syncs = emu::synchronizations().unwrap();
    // A chain of GEMMs that keeps the device's executor busy for a while after enqueueing
    // returns; the CPU executor has nothing to do (the upload runs on the device's).
    let a = Tensor::randn(&[192, 192], DType::F32, 5).unwrap().to(dev).unwrap();
    let mut chain = vec![a.clone()];
    for _ in 0..8 {
        let next = matmul(chain.last().unwrap(), &a).unwrap();
        chain.push(next);
    }
    synchronize().unwrap();
    assert!(chain.iter().all(|t| t.is_ready()), "synchronize() returned before the device's executor ran its jobs");
    assert_eq!(queued(), 0, "the device's queue is empty after synchronize()");
    assert!(emu::synchronizations().unwrap() > syncs, "synchronize() also synchronised the device");

    // The registry's backend answers memory() and emptyCache for the same device.
    drop(chain);
    drop(a);
    let before = be.memory();
    assert!(before.reserved > before.in_use, "dropped buffers are cached: {before:?}");
    assert!(before.peak_reserved >= before.reserved);
    let released = be.empty_cache();
    let after = be.memory();
    assert_eq!(released, before.reserved - before.in_use);
    assert_eq!(after.reserved, after.in_use);
    assert_eq!(emu::alloc_stats().unwrap().cached, 0);
}

#[test]
#[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
fn batched_matmul_is_one_strided_batched_gemm() {
    use recurrent_core::ops::matmul::matmul;
    use recurrent_core::Tensor;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("batched_matmul_is_one_strided_batched_gemm") else { return };
    let (a, b) = (Tensor::randn(&[6, 5, 4], DType::F32, 1).unwrap(), Tensor::randn(&[6, 4, 3], DType::F32, 2).unwrap());
    let before = emu::batched_gemms().unwrap();
    let on_dev = matmul(&a.to(dev).unwrap(), &b.to(dev).unwrap()).unwrap().to_vec_f32().unwrap();
    assert_eq!(emu::batched_gemms().unwrap(), before + 1, "six products in one batched call");
    let cpu = matmul(&a, &b).unwrap().to_vec_f32().unwrap();
    let worst = cpu.iter().zip(&on_dev).map(|(c, d)| (c - d).abs() / c.abs().max(1e-3)).fold(0f32, f32::max);
    assert!(worst < 1e-5, "batched GEMM differs from the CPU by {worst}");
}

#[test]
#[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
fn a_bad_index_is_reported_at_the_next_read_not_at_the_launch() {
    use recurrent_core::ops::embedding::embedding;
    use recurrent_core::Tensor;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("a_bad_index_is_reported_at_the_next_read_not_at_the_launch") else { return };
    let syncs = emu::synchronizations().unwrap();
    let w = Tensor::randn(&[10, 4], DType::F32, 3).unwrap().to(dev).unwrap();
    let bad = Tensor::from_i32(vec![1, -3, 2], &[3]).unwrap().to(dev).unwrap();
    // Enqueued and run without a wait: the embedding's own slot holds data, not an error.
    let e = embedding(&w, &bad).unwrap();
    let doubled = recurrent_core::ops::elementwise::scale(&e, 2.0).unwrap();
    recurrent_core::executor::synchronize().unwrap_err();
    assert!(emu::synchronizations().unwrap() > syncs);
    // The read reports the CPU's message; the check is consumed once reported.
    let err = embedding(&w, &bad).unwrap().to_vec_f32().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value, "{err}");
    assert!(err.to_string().contains("index -3 at position 1"), "{err}");
    assert_eq!(doubled.to_vec_f32().unwrap().len(), 12, "the bad row reads as zeros, nothing faulted");
    let ok = Tensor::from_i32(vec![0, 9], &[2]).unwrap().to(dev).unwrap();
    assert_eq!(embedding(&w, &ok).unwrap().to_vec_f32().unwrap().len(), 8);
}
