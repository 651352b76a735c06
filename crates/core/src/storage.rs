//! Host storage for tensor data, and the live-memory accounting that `memory()` reports.

use crate::error::{Error, Result};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I32,
}

impl DType {
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
        }
    }
    pub fn parse(s: &str) -> Result<DType> {
        match s {
            "float32" | "f32" => Ok(DType::F32),
            "float64" | "f64" => Ok(DType::F64),
            "int32" | "i32" => Ok(DType::I32),
            other => Err(Error::dtype("dtype", "one of float32, float64, int32", other)),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest element count a single tensor may have; above this an allocation is refused
/// with a MemoryError instead of aborting the process.
pub const MAX_ELEMENTS: usize = 1 << 34;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BUFFERS: AtomicI64 = AtomicI64::new(0);
static PEAK_BYTES: AtomicI64 = AtomicI64::new(0);

/// Contiguous row-major host data. Dropping it updates the live-memory counters.
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
}

impl CpuStorage {
    pub fn new_f32(v: Vec<f32>) -> Self {
        Self::track(CpuStorage::F32(v))
    }
    pub fn new_f64(v: Vec<f64>) -> Self {
        Self::track(CpuStorage::F64(v))
    }
    pub fn new_i32(v: Vec<i32>) -> Self {
        Self::track(CpuStorage::I32(v))
    }
    fn track(s: Self) -> Self {
        let b = s.bytes() as i64;
        let now = LIVE_BYTES.fetch_add(b, Ordering::Relaxed) + b;
        PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        s
    }
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => Self::new_f32(vec![0.0; n]),
            DType::F64 => Self::new_f64(vec![0.0; n]),
            DType::I32 => Self::new_i32(vec![0; n]),
        }
    }
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I32(_) => DType::I32,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::I32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> usize {
        self.len() * self.dtype().size_of()
    }
    pub fn as_i32(&self) -> Option<&[i32]> {
        match self {
            CpuStorage::I32(v) => Some(v),
            _ => None,
        }
    }
    /// Values widened to f64, for reading back and for tests.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            CpuStorage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            CpuStorage::F64(v) => v.clone(),
            CpuStorage::I32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.bytes() as i64, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live host memory: buffers and bytes now, and the peak bytes since the last reset.
#[derive(Clone, Copy, Debug)]
pub struct MemoryStats {
    pub buffers: i64,
    pub bytes: i64,
    pub peak_bytes: i64,
}

pub fn memory_stats() -> MemoryStats {
    MemoryStats {
        buffers: LIVE_BUFFERS.load(Ordering::Relaxed),
        bytes: LIVE_BYTES.load(Ordering::Relaxed),
        peak_bytes: PEAK_BYTES.load(Ordering::Relaxed),
    }
}

/// Starts a new peak-memory measurement window at the current live size.
pub fn reset_peak_bytes() {
    PEAK_BYTES.store(LIVE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}
