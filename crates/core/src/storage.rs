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

/// The host memory a single request may use: the machine's RAM (`MemTotal`), lowered to the
/// cgroup's limit when the process runs under one. Read once. Where neither can be read (other
/// operating systems) it is 8 GiB, which refuses only what few machines could hold anyway.
pub fn host_memory_bytes() -> u64 {
    static BYTES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        const FALLBACK: u64 = 8 << 30;
        let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        });
        // cgroup v2 writes "max" when unlimited; v1 writes a huge number, which min() ignores.
        let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
        match (total, cgroup) {
            (Some(t), Some(c)) => t.min(c),
            (Some(t), None) => t,
            (None, Some(c)) => c,
            (None, None) => FALLBACK,
        }
    })
}

/// Refuses, before anything is allocated, a request for more bytes than the machine has: a
/// MemoryError naming the op and the bytes. Smaller requests may still fail (memory in use by
/// others), which the fallible allocation below turns into the same error.
pub fn check_host_bytes(op: &str, bytes: u64) -> Result<()> {
    let limit = host_memory_bytes();
    if bytes > limit {
        return Err(Error::Memory {
            op: op.into(),
            what: format!("{bytes} bytes: more than this machine's {limit} bytes of memory"),
        });
    }
    Ok(())
}

/// A vector of `n` copies of `value`, allocated fallibly: a request above the machine's memory
/// or one the allocator refuses is a MemoryError naming `op` and the bytes, where `vec![]`
/// would abort the process.
pub fn try_filled<T: Clone>(op: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_with_capacity(op, n)?;
    v.resize(n, value);
    Ok(v)
}

/// An empty vector with room for `n` elements, allocated fallibly (see [`try_filled`]).
pub fn try_with_capacity<T>(op: &str, n: usize) -> Result<Vec<T>> {
    let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    check_host_bytes(op, bytes)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|e| Error::Memory { op: op.into(), what: format!("{bytes} bytes: the allocator refused ({e})") })?;
    Ok(v)
}

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BUFFERS: AtomicI64 = AtomicI64::new(0);
static PEAK_BYTES: AtomicI64 = AtomicI64::new(0);

/// Contiguous row-major host data. Dropping it updates the live-memory counters and gives its
/// buffer to the pool.
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
    /// `n` copies of `value` in `dtype`, allocated fallibly (a MemoryError naming `op`). The
    /// value must already be representable (int32 fills are checked by the caller).
    pub fn try_full(op: &str, dtype: DType, n: usize, value: f64) -> Result<Self> {
        Ok(match dtype {
            DType::F32 => Self::new_f32(try_filled(op, n, value as f32)?),
            DType::F64 => Self::new_f64(try_filled(op, n, value)?),
            DType::I32 => Self::new_i32(try_filled(op, n, value as i32)?),
        })
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
    /// The first value widened to f64 (a one-element tensor's value); NaN when empty.
    pub fn first_value(&self) -> f64 {
        match self {
            CpuStorage::F32(v) => v.first().map_or(f64::NAN, |&x| x as f64),
            CpuStorage::F64(v) => v.first().copied().unwrap_or(f64::NAN),
            CpuStorage::I32(v) => v.first().map_or(f64::NAN, |&x| x as f64),
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
    /// Updates the counters and gives a large buffer to the pool, for the next output of its
    /// size (`pool.rs`).
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.bytes() as i64, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
        match self {
            CpuStorage::F32(v) => crate::pool::release(std::mem::take(v)),
            CpuStorage::F64(v) => crate::pool::release(std::mem::take(v)),
            CpuStorage::I32(v) => crate::pool::release(std::mem::take(v)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_memory_is_read_and_positive() {
        let m = host_memory_bytes();
        assert!(m >= 64 << 20, "{m}");
        assert_eq!(m, host_memory_bytes(), "read once");
    }

    #[test]
    fn requests_above_the_machine_are_memory_errors_naming_op_and_bytes() {
        let n = (host_memory_bytes() / 4 + 1) as usize;
        let e = try_filled::<f32>("zeros", n, 0.0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Memory);
        let msg = e.to_string();
        assert!(msg.starts_with("zeros: cannot allocate "), "{msg}");
        assert!(msg.contains(&format!("{} bytes", n as u64 * 4)), "{msg}");
        let e = CpuStorage::try_full("full", DType::F64, usize::MAX / 8, 1.0).err().expect("refused");
        assert_eq!(e.kind(), crate::ErrorKind::Memory);
    }

    #[test]
    fn small_requests_are_filled() {
        let s = CpuStorage::try_full("full", DType::I32, 5, -3.0).unwrap();
        assert_eq!(s.as_i32(), Some(&[-3, -3, -3, -3, -3][..]));
        assert_eq!(try_with_capacity::<u8>("x", 10).unwrap().capacity(), 10);
    }
}
