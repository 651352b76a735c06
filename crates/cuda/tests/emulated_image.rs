//! The image ops' CUDA paths (`kernels/conv.cu`, `pool.cu`, `norm.cu`, and the conv GEMMs'
//! translation to cuBLAS) on the host emulator of the kernels, against the CPU: forward values,
//! input gradients and batch norm's running statistics, on fresh random inputs every run
//! (`tests/image_cases`). Needs a C++ compiler: built without one, every test is `#[ignore]`d
//! (build.rs sets `recurrent_skip = "emulator"`); a test that runs fails without the emulator.

mod common;
mod image_cases;

use common::cases::{assert_all, Outcome};
use common::emu;
use recurrent_core::backend::register_cuda;
use recurrent_core::{DType, Device};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn device(test: &str) -> Option<Device> {
    if let Some(reason) = emu::unavailable_reason() {
        panic!("no kernel emulator ({reason}) [{test}]");
    }
    register_cuda(emu::open);
    Some(Device::Cuda(0))
}

macro_rules! emu_test {
    ($name:ident, |$dev:ident| $body:expr) => {
        #[test]
        #[cfg_attr(recurrent_skip = "emulator", ignore = "needs a C++ compiler for the kernel emulator")]
        fn $name() {
            let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
            let Some($dev) = device(stringify!($name)) else { return };
            let outcomes: Vec<Outcome> = $body;
            assert_all(&outcomes);
        }
    };
}

emu_test!(conv2d_f32, |dev| image_cases::convs(dev, DType::F32));
emu_test!(conv2d_f64, |dev| image_cases::convs(dev, DType::F64));
emu_test!(pools_f32, |dev| image_cases::pools(dev, DType::F32));
emu_test!(pools_f64, |dev| image_cases::pools(dev, DType::F64));
emu_test!(norms_f32, |dev| image_cases::norms(dev, DType::F32));
emu_test!(norms_f64, |dev| image_cases::norms(dev, DType::F64));
