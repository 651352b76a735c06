//! CPU-vs-CUDA parity on a real device: every op family, every recurrent cell (with lengths
//! and reverse), full training steps, TBPTT memory flatness and out-of-memory recovery. The
//! CPU backend is the oracle; tolerances are relative (∞-norm): 1e-5 forward and 1e-4 for
//! gradients in float32 with TF32 off, 1e-10 / 1e-9 in float64. Each compared tensor prints a
//! `PARITY` line with its max abs and relative difference.
//!
//! Built on a machine without a GPU, every test is `#[ignore]`d (build.rs sets
//! `recurrent_skip = "gpu"`), so `cargo test` reports them as ignored; a test that runs (a GPU
//! was seen at build time, `RECURRENT_REQUIRE_CUDA=1`, or `--include-ignored`) fails when no
//! usable device is found at run time. `scripts/gpu-check.sh` runs each test in its own process (`--exact`), the first pass with
//! `RECURRENT_CUDA_SYNC=1`, so that a fault names its kernel, op and test and poisons nothing
//! else; `libraries_are_one_installation` is its header. With the `emulator` feature (the
//! test build has it) and `RECURRENT_CUDA_EMULATOR=1`, the same binary runs on the host
//! emulator of the kernels, to rehearse the check on a machine without a GPU.

mod common;
mod image_cases;

use common::cases::{self, assert_all, CELLS};
use recurrent_core::backend::register_cuda;
use recurrent_core::{DType, Device, ErrorKind};
use std::sync::Mutex;

/// Tests share one device and its allocator statistics: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The device under test; a test that runs without one fails (it was asked for: see the top).
fn device(test: &str) -> Option<Device> {
    if let Some(reason) = recurrent_cuda::unavailable_reason() {
        panic!(
            "no CUDA device ({reason}) [{test}]: this test needs one (it is ignored where none was seen at build time)"
        );
    }
    register_cuda(recurrent_cuda::open);
    // A fault under RECURRENT_CUDA_SYNC=1 names this test along with the kernel and the op.
    recurrent_cuda::set_launch_context(test);
    let be = recurrent_core::backend::cuda(0).expect("open cuda:0");
    println!("device: {} [{test}]", be.describe());
    Some(Device::Cuda(0))
}

macro_rules! parity_test {
    ($name:ident, |$dev:ident| $body:expr) => {
        #[test]
        #[cfg_attr(recurrent_skip = "gpu", ignore = "needs a CUDA device")]
        fn $name() {
            let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
            let Some($dev) = device(stringify!($name)) else { return };
            let outcomes: Vec<cases::Outcome> = $body;
            assert_all(&outcomes);
        }
    };
}

parity_test!(elementwise_f32, |dev| cases::elementwise(dev, DType::F32));
parity_test!(elementwise_f64, |dev| cases::elementwise(dev, DType::F64));
parity_test!(reductions_f32, |dev| cases::reductions(dev, DType::F32));
parity_test!(reductions_f64, |dev| cases::reductions(dev, DType::F64));
parity_test!(shape_ops, |dev| cases::shapes(dev));
parity_test!(matmul_f32, |dev| cases::matmuls(dev, DType::F32));
parity_test!(matmul_f64, |dev| cases::matmuls(dev, DType::F64));
parity_test!(softmax_ops, |dev| cases::softmaxes(dev));
parity_test!(loss_ops, |dev| cases::losses(dev));
parity_test!(embedding_op, |dev| cases::embeddings(dev));
parity_test!(primitives_f32, |dev| cases::primitives(dev, DType::F32));
parity_test!(primitives_f64, |dev| cases::primitives(dev, DType::F64));
parity_test!(attention_f32, |dev| cases::attentions(dev, DType::F32));
parity_test!(attention_f64, |dev| cases::attentions(dev, DType::F64));
parity_test!(dropout_same_mask_as_cpu, |dev| cases::dropouts(dev));
parity_test!(optimizer_updates_and_clipping, |dev| cases::optimizers(dev));
parity_test!(recurrent_cells_f32, |dev| CELLS.iter().flat_map(|&k| cases::recurrent(dev, k, DType::F32)).collect());
parity_test!(recurrent_cells_f64, |dev| CELLS.iter().flat_map(|&k| cases::recurrent(dev, k, DType::F64)).collect());
parity_test!(training_steps, |dev| CELLS
    .iter()
    .flat_map(|&k| [(false, false), (true, true)].into_iter().flat_map(move |(l, r)| cases::training(dev, k, l, r)))
    .collect());
parity_test!(conv2d_f32, |dev| image_cases::convs(dev, DType::F32));
parity_test!(conv2d_f64, |dev| image_cases::convs(dev, DType::F64));
parity_test!(pools_f32, |dev| image_cases::pools(dev, DType::F32));
parity_test!(pools_f64, |dev| image_cases::pools(dev, DType::F64));
parity_test!(norms_f32, |dev| image_cases::norms(dev, DType::F32));
parity_test!(norms_f64, |dev| image_cases::norms(dev, DType::F64));

#[test]
#[cfg_attr(recurrent_skip = "gpu", ignore = "needs a CUDA device")]
fn tbptt_chunks_keep_device_memory_flat() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("tbptt_chunks_keep_device_memory_flat") else { return };
    let be = recurrent_core::backend::cuda(0).unwrap();
    let before = recurrent_cuda::alloc_stats(0).unwrap();
    let series = cases::tbptt_memory(dev, &|| {
        let s = recurrent_cuda::alloc_stats(0).unwrap();
        (s.mallocs, be.memory().reserved)
    });
    let after = recurrent_cuda::alloc_stats(0).unwrap();
    println!(
        "{}; cache reuses {}",
        cases::assert_memory_flat(&series, cases::tbptt_bucket_slack()),
        after.reuses - before.reuses
    );
    assert!(after.reuses > before.reuses, "the cache served no request");
}

#[test]
#[cfg_attr(recurrent_skip = "gpu", ignore = "needs a CUDA device")]
fn oom_is_a_clear_error_and_the_device_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dev) = device("oom_is_a_clear_error_and_the_device_recovers") else { return };
    let be = recurrent_core::backend::cuda(0).unwrap();
    let err = match be.alloc(DType::F32, 250_000_000_000) {
        Err(e) => e,
        Ok(_) => panic!("allocated 10^12 bytes"),
    };
    println!("10^12 bytes: {err}");
    assert_eq!(err.kind(), ErrorKind::Memory);
    assert!(err.to_string().contains("1000000000000 bytes"), "{err}");
    assert_all(&cases::matmuls(dev, DType::F32));
}

#[test]
#[cfg_attr(recurrent_skip = "gpu", ignore = "needs a CUDA device")]
fn libraries_are_one_installation() {
    // The header of the check: which driver, NVRTC and cuBLAS this process loaded, from where.
    let report = recurrent_cuda::libs::cached_report();
    for line in report.lines() {
        println!("LIB {line}");
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if device("libraries_are_one_installation").is_none() || recurrent_cuda::emulated() {
        return;
    }
    // Available means loaded and consistent (the probe refuses a mix); the versions must be the
    // CUDA 13 series the kernels and the cuBLAS calls are built for.
    assert!(report.nvrtc_path.is_some() && report.cublas_path.is_some(), "{report:?}");
    assert_eq!(report.nvrtc_version.map(|v| v.0), Some(13), "{report:?}");
    assert_eq!(report.cublas_version.map(|v| v / 10000), Some(13), "{report:?}");
    assert!(report.driver_version.is_some_and(|v| v >= 13000), "the driver must support CUDA 13: {report:?}");
}
