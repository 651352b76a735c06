//! The caching allocator: device memory is taken from the driver once and then recycled
//! through free lists keyed by (rounded) byte size, so that a steady training loop, which asks
//! for the same sizes every step, does no cudaMalloc/cudaFree at all.
//!
//! All work runs in order on the backend's one stream, so a block returned by a dropped buffer
//! can be handed to the next request at once: any kernel still reading the old contents was
//! enqueued before whatever the new owner enqueues. When the driver reports out-of-memory, the
//! cache is released (after a synchronize) and the request retried once; if that fails too it
//! is a clear `Error::Memory`, and the allocator keeps working for smaller requests.

use recurrent_core::backend::DeviceBuffer;
use recurrent_core::{DType, Error, Result};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why the underlying allocator failed.
pub enum RawError {
    OutOfMemory,
    Other(String),
}

/// The driver's (or, in tests, the host's) allocator under the cache.
pub trait RawAlloc: Send + Sync + 'static {
    /// A block of at least `bytes` bytes, aligned to 256; its address.
    fn malloc(&self, bytes: usize) -> std::result::Result<u64, RawError>;
    /// Returns a block from [`RawAlloc::malloc`].
    fn free(&self, ptr: u64);
    /// Waits for queued device work (before blocks go back to the driver).
    fn synchronize(&self) {}
    /// (free, total) bytes on the device, for error messages.
    fn mem_info(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Byte size a request is served with: multiples of 512 up to 1 MiB, then of 2 MiB. Requests
/// of the same size always land in the same bucket, so steady-state reuse is exact.
pub fn bucket(bytes: usize) -> usize {
    const SMALL: usize = 512;
    const LARGE: usize = 2 << 20;
    let b = bytes.max(1);
    if b <= 1 << 20 {
        b.div_ceil(SMALL) * SMALL
    } else {
        b.div_ceil(LARGE) * LARGE
    }
}

/// Counters of the allocator's activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Bytes held by live buffers (bucket sizes).
    pub in_use: u64,
    /// Bytes in the free lists.
    pub cached: u64,
    /// Calls to the driver's allocator and free, and requests served from the cache.
    pub mallocs: u64,
    pub frees: u64,
    pub reuses: u64,
    /// Highest `in_use + cached` seen.
    pub peak_reserved: u64,
}

#[derive(Default)]
struct State {
    free: HashMap<usize, Vec<u64>>,
    stats: AllocStats,
}

/// One device's cache.
pub struct Pool {
    raw: Box<dyn RawAlloc>,
    state: Mutex<State>,
    /// "cuda:0", for messages.
    device: String,
}

impl Pool {
    pub fn new(raw: Box<dyn RawAlloc>, device: String) -> Arc<Pool> {
        Arc::new(Pool { raw, state: Mutex::new(State::default()), device })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    /// A buffer of `n` elements of `dtype`, from the cache when a block of its bucket is free.
    pub fn alloc(self: &Arc<Self>, dtype: DType, n: usize) -> Result<DevBuffer> {
        let bytes =
            n.checked_mul(dtype.size_of()).ok_or_else(|| self.refuse(dtype, n, usize::MAX, "the size overflows"))?;
        let size = bucket(bytes);
        {
            let mut st = self.lock();
            if let Some(ptr) = st.free.get_mut(&size).and_then(|v| v.pop()) {
                st.stats.cached -= size as u64;
                st.stats.in_use += size as u64;
                st.stats.reuses += 1;
                return Ok(DevBuffer { ptr, len: n, dtype, size, pool: self.clone() });
            }
        }
        let ptr = match self.raw.malloc(size) {
            Ok(p) => p,
            Err(RawError::OutOfMemory) => {
                // Give the cache back to the driver and try once more.
                let released = self.empty_cache();
                match self.raw.malloc(size) {
                    Ok(p) => p,
                    Err(RawError::OutOfMemory) => {
                        let info = match self.raw.mem_info() {
                            Some((free, total)) => format!("{free} of {total} bytes free"),
                            None => "device memory exhausted".into(),
                        };
                        return Err(self.refuse(dtype, n, size, &format!("out of device memory ({info}; {released} cached bytes were released and the allocation retried)")));
                    }
                    Err(RawError::Other(e)) => return Err(self.refuse(dtype, n, size, &e)),
                }
            }
            Err(RawError::Other(e)) => return Err(self.refuse(dtype, n, size, &e)),
        };
        let mut st = self.lock();
        st.stats.mallocs += 1;
        st.stats.in_use += size as u64;
        st.stats.peak_reserved = st.stats.peak_reserved.max(st.stats.in_use + st.stats.cached);
        Ok(DevBuffer { ptr, len: n, dtype, size, pool: self.clone() })
    }

    fn refuse(&self, dtype: DType, n: usize, _bucket: usize, why: &str) -> Error {
        let bytes = n.checked_mul(dtype.size_of()).map(|b| b.to_string()).unwrap_or_else(|| "more than 2^64".into());
        Error::Memory { op: self.device.clone(), what: format!("{bytes} bytes ({n} {dtype} values): {why}") }
    }

    fn release(&self, ptr: u64, size: usize) {
        let mut st = self.lock();
        st.stats.in_use -= size as u64;
        st.stats.cached += size as u64;
        st.free.entry(size).or_default().push(ptr);
    }

    /// Returns every cached block to the driver; returns the bytes released.
    pub fn empty_cache(&self) -> u64 {
        let (blocks, bytes) = {
            let mut st = self.lock();
            let all: Vec<u64> = st.free.drain().flat_map(|(_, v)| v).collect();
            st.stats.frees += all.len() as u64;
            (all, std::mem::take(&mut st.stats.cached))
        };
        if blocks.is_empty() {
            return 0;
        }
        // Kernels enqueued earlier may still read these blocks.
        self.raw.synchronize();
        for p in blocks {
            self.raw.free(p);
        }
        bytes
    }

    pub fn stats(&self) -> AllocStats {
        self.lock().stats
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Every buffer holds the pool, so only cached blocks are left.
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let blocks: Vec<u64> = st.free.drain().flat_map(|(_, v)| v).collect();
        if !blocks.is_empty() {
            self.raw.synchronize();
        }
        for p in blocks {
            self.raw.free(p);
        }
    }
}

/// Device memory for one tensor; returns its block to the pool when dropped.
pub struct DevBuffer {
    ptr: u64,
    len: usize,
    dtype: DType,
    size: usize,
    pool: Arc<Pool>,
}

impl DevBuffer {
    /// Address of element `offset`.
    pub fn ptr_at(&self, offset: usize) -> u64 {
        self.ptr + (offset * self.dtype.size_of()) as u64
    }
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_of()
    }
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl DeviceBuffer for DevBuffer {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for DevBuffer {
    fn drop(&mut self) {
        self.pool.release(self.ptr, self.size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Host memory with a capacity, counting calls.
    struct Fake {
        cap: u64,
        used: Arc<AtomicU64>,
        next: AtomicU64,
    }
    impl RawAlloc for Fake {
        fn malloc(&self, bytes: usize) -> std::result::Result<u64, RawError> {
            if self.used.load(Ordering::SeqCst) + bytes as u64 > self.cap {
                return Err(RawError::OutOfMemory);
            }
            self.used.fetch_add(bytes as u64, Ordering::SeqCst);
            Ok(self.next.fetch_add(bytes as u64, Ordering::SeqCst) + 256)
        }
        fn free(&self, _ptr: u64) {}
    }

    #[test]
    fn buckets_are_exact_for_repeated_sizes() {
        assert_eq!(bucket(1), 512);
        assert_eq!(bucket(512), 512);
        assert_eq!(bucket(513), 1024);
        assert_eq!(bucket(1 << 20), 1 << 20);
        assert_eq!(bucket((1 << 20) + 1), 2 << 20);
        assert_eq!(bucket(5 << 20), 6 << 20);
    }

    #[test]
    fn steady_state_reuses_blocks_and_oom_is_a_clear_error() {
        let used = Arc::new(AtomicU64::new(0));
        let pool =
            Pool::new(Box::new(Fake { cap: 64 << 20, used: used.clone(), next: AtomicU64::new(0) }), "cuda:9".into());
        for _ in 0..5 {
            let a = pool.alloc(DType::F32, 1000).unwrap();
            let b = pool.alloc(DType::F64, 300_000).unwrap();
            assert_eq!(a.len(), 1000);
            drop((a, b));
        }
        let s = pool.stats();
        assert_eq!(s.mallocs, 2, "{s:?}");
        assert_eq!(s.reuses, 8);
        assert_eq!(s.in_use, 0);
        let err = match pool.alloc(DType::F32, 250_000_000_000) {
            Err(e) => e,
            Ok(_) => panic!("10^12 bytes allocated"),
        };
        assert_eq!(err.kind(), recurrent_core::ErrorKind::Memory);
        let msg = err.to_string();
        assert!(
            msg.contains("cuda:9") && msg.contains("out of device memory") && msg.contains("1000000000000 bytes"),
            "{msg}"
        );
        // The cache was released for the retry; the pool still serves requests.
        assert_eq!(pool.stats().cached, 0);
        assert!(pool.alloc(DType::F32, 10).is_ok());
    }
}
