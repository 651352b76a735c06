//! The device registry and the executors with a second device: a host-memory stand-in for a
//! CUDA device, registered as `cuda:0` (this test binary's own process, so no other test sees
//! it). It really stores data (uploads and downloads round-trip), can be held busy (a gate the
//! test opens), counts its synchronisations and can report a pending fault, so the tests below
//! fail if `queued()` or `synchronize()` forget a device's executor or the device itself.

use recurrent_core::backend::{self, DeviceBuffer, DeviceMemory, GpuBackend, GpuMat, KernelArg};
use recurrent_core::executor::{queued, synchronize};
use recurrent_core::{CpuStorage, DType, Device, Error, ErrorKind, Result, Tensor};
use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Device memory of the stand-in: host data, counted in the device's `in_use` while alive.
struct HostBuf {
    data: CpuStorage,
    in_use: Arc<AtomicU64>,
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        self.in_use.fetch_sub(self.data.bytes() as u64, Ordering::SeqCst);
    }
}

impl DeviceBuffer for HostBuf {
    fn dtype(&self) -> DType {
        self.data.dtype()
    }
    fn len(&self) -> usize {
        self.data.len()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct HostDevice {
    in_use: Arc<AtomicU64>,
    /// While false, uploads wait: the device's executor is busy.
    open: Mutex<bool>,
    opened: Condvar,
    syncs: AtomicUsize,
    /// A fault the device reports at its next synchronisation, as a GPU reports an
    /// asynchronous error.
    fault: Mutex<Option<String>>,
}

fn copy(s: &CpuStorage) -> CpuStorage {
    match s {
        CpuStorage::F32(v) => CpuStorage::new_f32(v.clone()),
        CpuStorage::F64(v) => CpuStorage::new_f64(v.clone()),
        CpuStorage::I32(v) => CpuStorage::new_i32(v.clone()),
    }
}

impl HostDevice {
    fn buf(&self, data: CpuStorage) -> Arc<dyn DeviceBuffer> {
        self.in_use.fetch_add(data.bytes() as u64, Ordering::SeqCst);
        Arc::new(HostBuf { data, in_use: self.in_use.clone() })
    }
    fn set_open(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.opened.notify_all();
    }
}

impl GpuBackend for HostDevice {
    fn describe(&self) -> String {
        "host-memory test device (cuda:0)".into()
    }
    fn alloc(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>> {
        self.zeros(dtype, n)
    }
    fn zeros(&self, dtype: DType, n: usize) -> Result<Arc<dyn DeviceBuffer>> {
        Ok(self.buf(match dtype {
            DType::F32 => CpuStorage::new_f32(vec![0.0; n]),
            DType::F64 => CpuStorage::new_f64(vec![0.0; n]),
            DType::I32 => CpuStorage::new_i32(vec![0; n]),
        }))
    }
    fn upload(&self, host: &CpuStorage) -> Result<Arc<dyn DeviceBuffer>> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        Ok(self.buf(copy(host)))
    }
    fn download(&self, buf: &dyn DeviceBuffer) -> Result<CpuStorage> {
        let b = backend::downcast::<HostBuf>(buf).ok_or_else(|| Error::internal("download", "a foreign buffer"))?;
        Ok(copy(&b.data))
    }
    fn gemm(
        &self, _m: usize, _n: usize, _k: usize, _a: GpuMat, _b: GpuMat, _c: &dyn DeviceBuffer, _c_offset: usize,
        _ldc: usize, _accumulate: bool,
    ) -> Result<()> {
        Err(Error::internal("gemm", "the test device only stores data"))
    }
    fn launch(&self, kernel: &str, _threads: usize, _args: &[KernelArg]) -> Result<()> {
        Err(Error::internal(kernel, "the test device only stores data"))
    }
    fn synchronize(&self) -> Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        match self.fault.lock().unwrap().take() {
            Some(msg) => Err(Error::internal("cuda:0", msg)),
            None => Ok(()),
        }
    }
    fn memory(&self) -> DeviceMemory {
        let in_use = self.in_use.load(Ordering::SeqCst);
        DeviceMemory { in_use, reserved: in_use, peak_reserved: in_use }
    }
    fn empty_cache(&self) -> u64 {
        0
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

static DEVICE: OnceLock<Arc<HostDevice>> = OnceLock::new();

fn device() -> &'static Arc<HostDevice> {
    DEVICE.get_or_init(|| {
        Arc::new(HostDevice {
            in_use: Arc::new(AtomicU64::new(0)),
            open: Mutex::new(true),
            opened: Condvar::new(),
            syncs: AtomicUsize::new(0),
            fault: Mutex::new(None),
        })
    })
}

fn open(ordinal: usize) -> Result<Arc<dyn GpuBackend>> {
    if ordinal != 0 {
        return Err(Error::CudaUnavailable { op: format!("cuda:{ordinal}"), reason: "only cuda:0 here".into() });
    }
    Ok(device().clone())
}

/// The tests share the device and its gate.
static SERIAL: Mutex<()> = Mutex::new(());

fn setup() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    backend::register_cuda(open);
    guard
}

#[test]
fn the_registry_lists_devices_once_opened_and_only_those_that_opened() {
    let _serial = setup();
    let t = Tensor::from_f32(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    let d = t.to(Device::Cuda(0)).unwrap();
    assert_eq!(d.to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0]);
    let err = t.to(Device::Cuda(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CudaUnavailable);
    let opened = backend::opened();
    assert_eq!(opened.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![0], "cuda:1 failed to open");
    assert!(opened[0].1.memory().in_use >= 12, "the live copy is on the device: {:?}", opened[0].1.memory());
    let in_use = opened[0].1.memory().in_use;
    drop(d);
    synchronize().unwrap();
    assert_eq!(opened[0].1.memory().in_use, in_use - 12, "dropping the copy frees its device memory");
}

#[test]
fn queued_counts_and_synchronize_waits_for_the_device_executor() {
    let _serial = setup();
    let dev = device();
    let t = Tensor::from_f32(vec![0.5; 64], &[64]).unwrap();
    // Opens the device, so that the registry holds it before the gate closes.
    t.to(Device::Cuda(0)).unwrap().to_vec_f32().unwrap();
    synchronize().unwrap();
    assert_eq!(queued(), 0);

    /// Opens the gate again when dropped, so that a failed assertion leaves the device free
    /// for the other tests instead of holding its executor forever.
    struct Held<'a>(&'a HostDevice);
    impl Drop for Held<'_> {
        fn drop(&mut self) {
            self.0.set_open(true);
        }
    }
    dev.set_open(false);
    let held = Held(dev);
    let copies: Vec<Tensor> = (0..3).map(|_| t.to(Device::Cuda(0)).unwrap()).collect();
    // The first copy holds the device's executor; the other two wait behind it. The CPU
    // executor has nothing to do, so only the device's queue can account for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queued() != 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(queued(), 2, "two copies wait on the device's executor");

    let syncs_before = dev.syncs.load(Ordering::SeqCst);
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || done_tx.send(synchronize()).unwrap());
    // While the device is held, synchronize must not return: it would only if it skipped the
    // device's executor.
    assert!(
        done_rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "synchronize returned while the device was busy"
    );
    assert!(copies.iter().all(|c| !c.is_ready()));

    drop(held);
    let r = done_rx.recv_timeout(Duration::from_secs(10)).expect("synchronize returns once the device is free");
    waiter.join().unwrap();
    r.unwrap();
    assert!(copies.iter().all(|c| c.is_ready()), "every copy enqueued before synchronize() has run");
    assert!(dev.syncs.load(Ordering::SeqCst) > syncs_before, "synchronize() also waited for the device itself");
    assert_eq!(queued(), 0);
    for c in &copies {
        assert_eq!(c.to_vec_f32().unwrap(), vec![0.5; 64]);
    }
}

#[test]
fn a_device_fault_surfaces_at_synchronize_and_work_goes_on() {
    let _serial = setup();
    let dev = device();
    let t = Tensor::from_f32(vec![4.0, 5.0], &[2]).unwrap();
    let d = t.to(Device::Cuda(0)).unwrap();
    *dev.fault.lock().unwrap() = Some("an illegal address was encountered".into());
    let err = synchronize().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("illegal address"), "{err}");
    // Reported once; the CPU and the device keep working.
    synchronize().unwrap();
    assert_eq!(d.to_vec_f32().unwrap(), vec![4.0, 5.0]);
    let y = recurrent_core::ops::elementwise::tanh(&t).unwrap();
    assert_eq!(y.to_vec_f32().unwrap().len(), 2);
}
