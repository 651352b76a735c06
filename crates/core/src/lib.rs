//! recurrent-core: tensors, autograd, the per-device executor, every op (forward next to
//! backward), and the CPU backend. Pure Rust; the Node binding only converts types.
//!
//! `cpu` is the CPU backend the ops compute with; `backend` is the trait other devices implement
//! (CUDA in `crates/cuda`); `launch` is what the ops' device paths share to drive that trait.

pub mod autograd;
pub mod backend;
pub mod cpu;
pub mod error;
pub mod executor;
pub mod gradcheck;
pub mod image;
pub mod io;
pub mod launch;
pub mod ops;
pub mod pool;
pub mod rng;
pub mod storage;
pub mod tensor;

pub use autograd::{backward, backward_with, is_grad_enabled, no_grad, set_grad_enabled};
pub use error::{Error, ErrorKind, Result};
pub use storage::{memory_stats, reset_peak_bytes, CpuStorage, DType, MemoryStats};
pub use tensor::{live_tensors, Device, Tensor};
