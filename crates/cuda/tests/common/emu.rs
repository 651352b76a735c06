//! The host emulator of the kernels, for the test binaries: `recurrent_cuda::emulator` (built
//! here with the `emulator` feature, which the crate's dev-dependency on itself turns on).
#[allow(unused_imports)]
pub use recurrent_cuda::emulator::*;
