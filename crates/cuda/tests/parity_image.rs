//! The image ops' CPU-vs-CUDA parity on a real device (`tests/image_cases`), as
//! `tests/parity.rs` does for the other op families; without a usable CUDA device every test
//! prints "SKIP: no CUDA device (reason)" and passes.

mod common;
mod image_cases;

use common::cases::{assert_all, Outcome};
use recurrent_core::backend::register_cuda;
use recurrent_core::{DType, Device};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn device(test: &str) -> Option<Device> {
    if let Some(reason) = recurrent_cuda::unavailable_reason() {
        println!("SKIP: no CUDA device ({reason}) [{test}]");
        return None;
    }
    register_cuda(recurrent_cuda::open);
    recurrent_cuda::set_launch_context(test);
    let be = recurrent_core::backend::cuda(0).expect("open cuda:0");
    println!("device: {} [{test}]", be.describe());
    Some(Device::Cuda(0))
}

macro_rules! parity_test {
    ($name:ident, |$dev:ident| $body:expr) => {
        #[test]
        fn $name() {
            let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
            let Some($dev) = device(stringify!($name)) else { return };
            let outcomes: Vec<Outcome> = $body;
            assert_all(&outcomes);
        }
    };
}

parity_test!(conv2d_f32, |dev| image_cases::convs(dev, DType::F32));
parity_test!(conv2d_f64, |dev| image_cases::convs(dev, DType::F64));
parity_test!(pools_f32, |dev| image_cases::pools(dev, DType::F32));
parity_test!(pools_f64, |dev| image_cases::pools(dev, DType::F64));
parity_test!(norms_f32, |dev| image_cases::norms(dev, DType::F32));
parity_test!(norms_f64, |dev| image_cases::norms(dev, DType::F64));
