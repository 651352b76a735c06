//! The buffers that `data()` and `dataSync()` hand to JavaScript: a copy of a tensor's data
//! from the core's buffer pool (`recurrent_core::pool`, which says why it pools), given
//! to V8 as an external typed array whose memory returns to the pool when the array is collected.

use napi::bindgen_prelude::{Either3, Float32Array, Float64Array, Int32Array};
use recurrent_core::pool::{copy_of, release};
use recurrent_core::storage::CpuStorage;

/// Host data read back from a tensor, already copied off the engine's storage.
pub enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
}

pub type TypedData = Either3<Float32Array, Float64Array, Int32Array>;

/// A copy of a storage's data (on any thread).
pub fn copy_out(s: &CpuStorage) -> HostData {
    match s {
        CpuStorage::F32(v) => HostData::F32(copy_of(v)),
        CpuStorage::F64(v) => HostData::F64(copy_of(v)),
        CpuStorage::I32(v) => HostData::I32(copy_of(v)),
    }
}

/// `v` as the memory of an external typed array, returned to the pool when V8 collects it.
macro_rules! external {
    ($arr:ident, $v:expr) => {{
        let mut v = $v;
        let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
        std::mem::forget(v);
        // SAFETY: ptr, len and cap are a forgotten Vec's, rebuilt exactly once, by the
        // finalizer V8 calls when the array is collected; nothing else frees them.
        unsafe { $arr::with_external_data(ptr, len, move |p, l| release(Vec::from_raw_parts(p, l, cap))) }
    }};
}

/// The copy as a JS typed array (on the JS thread, when the value is made).
pub fn to_typed(d: HostData) -> TypedData {
    match d {
        HostData::F32(v) => Either3::A(external!(Float32Array, v)),
        HostData::F64(v) => Either3::B(external!(Float64Array, v)),
        HostData::I32(v) => Either3::C(external!(Int32Array, v)),
    }
}
