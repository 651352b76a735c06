//! Shared by the test binaries: the parity cases and the host emulator of the kernels.
#![allow(dead_code, clippy::type_complexity, clippy::too_many_arguments, clippy::cloned_ref_to_slice_refs)]

pub mod cases;
pub mod emu;
