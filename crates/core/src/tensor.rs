//! The tensor handle: shape, dtype and device known at once; data filled in by the executor;
//! optional autograd history.

use crate::autograd::GradFn;
use crate::error::{fmt_shape, Error, Result};
use crate::executor::{DataSlot, Stored};
use crate::storage::{CpuStorage, DType, MAX_ELEMENTS};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// Parses `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Ok(Device::Cuda(n)),
                None => Err(Error::Device {
                    op: "device".into(),
                    expected: "'cpu', 'cuda' or 'cuda:N'".into(),
                    got: format!("'{s}'"),
                }),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE_TENSORS: AtomicI64 = AtomicI64::new(0);

pub(crate) struct TensorImpl {
    id: u64,
    shape: Vec<usize>,
    dtype: DType,
    device: Device,
    /// Swapped, never mutated, by in-place updates: ops enqueued earlier keep the old version.
    data: RwLock<Arc<DataSlot>>,
    requires_grad: AtomicBool,
    pub(crate) grad_fn: Option<GradFn>,
    grad: Mutex<Option<Tensor>>,
}

impl Drop for TensorImpl {
    fn drop(&mut self) {
        LIVE_TENSORS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reference-counted tensor handle. Cloning is cheap and shares data and history.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorImpl>);

/// Number of live tensor handles (distinct tensors, not clones).
pub fn live_tensors() -> i64 {
    LIVE_TENSORS.load(Ordering::Relaxed)
}

pub fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Checks a requested shape: every dimension positive and the total within [`MAX_ELEMENTS`].
pub fn check_shape(op: &str, shape: &[usize]) -> Result<usize> {
    if shape.contains(&0) {
        return Err(Error::shape(
            op,
            "a shape with every dimension ≥ 1 (empty tensors are not supported)",
            fmt_shape(shape),
        ));
    }
    let mut n: usize = 1;
    for &d in shape {
        n = n.checked_mul(d).filter(|&n| n <= MAX_ELEMENTS).ok_or_else(|| Error::Memory {
            op: op.into(),
            what: format!("a tensor of shape {} (limit is {MAX_ELEMENTS} elements)", fmt_shape(shape)),
        })?;
    }
    Ok(n)
}

impl Tensor {
    pub(crate) fn from_parts(
        shape: Vec<usize>, dtype: DType, device: Device, slot: Arc<DataSlot>, grad_fn: Option<GradFn>,
    ) -> Tensor {
        LIVE_TENSORS.fetch_add(1, Ordering::Relaxed);
        let requires_grad = grad_fn.is_some();
        Tensor(Arc::new(TensorImpl {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            dtype,
            device,
            data: RwLock::new(slot),
            requires_grad: AtomicBool::new(requires_grad),
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// Wraps existing storage as a ready leaf tensor; checks the element count.
    pub fn from_storage(storage: CpuStorage, shape: &[usize]) -> Result<Tensor> {
        let n = check_shape("tensor", shape)?;
        if storage.len() != n {
            return Err(Error::shape(
                "tensor",
                format!("{n} values for shape {}", fmt_shape(shape)),
                format!("{} values", storage.len()),
            ));
        }
        let dtype = storage.dtype();
        Ok(Tensor::from_parts(shape.to_vec(), dtype, Device::Cpu, DataSlot::ready(storage), None))
    }

    pub fn from_f32(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Self::from_storage(CpuStorage::new_f32(data), shape)
    }
    pub fn from_f64(data: Vec<f64>, shape: &[usize]) -> Result<Tensor> {
        Self::from_storage(CpuStorage::new_f64(data), shape)
    }
    pub fn from_i32(data: Vec<i32>, shape: &[usize]) -> Result<Tensor> {
        Self::from_storage(CpuStorage::new_i32(data), shape)
    }
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n = check_shape("zeros", shape)?;
        Self::from_storage(CpuStorage::try_full("zeros", dtype, n, 0.0)?, shape)
    }
    /// `value` everywhere. An int32 fill must be an integer in the int32 range (a ValueError
    /// otherwise, as `tensor()` refuses such values), not a saturated or truncated cast.
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let n = check_shape("full", shape)?;
        if dtype == DType::I32 && (value.fract() != 0.0 || !(-2_147_483_648.0..=2_147_483_647.0).contains(&value)) {
            return Err(Error::value(
                "full",
                format!("an int32 fill must be an integer in [-2^31, 2^31), got {value}"),
            ));
        }
        Self::from_storage(CpuStorage::try_full("full", dtype, n, value)?, shape)
    }
    /// Normal(0, 1) samples from a seeded generator: the same seed gives the same tensor.
    pub fn randn(shape: &[usize], dtype: DType, seed: u64) -> Result<Tensor> {
        let n = check_shape("randn", shape)?;
        let mut rng = crate::rng::Rng::new(seed);
        let mut v: Vec<f64> = crate::storage::try_with_capacity("randn", n)?;
        v.extend((0..n).map(|_| rng.normal()));
        match dtype {
            DType::F32 => Self::from_f32(v.into_iter().map(|x| x as f32).collect(), shape),
            DType::F64 => Self::from_f64(v, shape),
            DType::I32 => Err(Error::dtype("randn", "float32 or float64", dtype)),
        }
    }
    /// Uniform(low, high) samples from a seeded generator.
    pub fn rand_uniform(shape: &[usize], low: f64, high: f64, dtype: DType, seed: u64) -> Result<Tensor> {
        let n = check_shape("rand", shape)?;
        let mut rng = crate::rng::Rng::new(seed);
        let mut v: Vec<f64> = crate::storage::try_with_capacity("rand", n)?;
        v.extend((0..n).map(|_| low + (high - low) * rng.uniform()));
        match dtype {
            DType::F32 => Self::from_f32(v.into_iter().map(|x| x as f32).collect(), shape),
            DType::F64 => Self::from_f64(v, shape),
            DType::I32 => Err(Error::dtype("rand", "float32 or float64", dtype)),
        }
    }

    pub fn id(&self) -> u64 {
        self.0.id
    }
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn dims(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel_of(&self.0.shape)
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn device(&self) -> Device {
        self.0.device
    }
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks a leaf as a parameter whose gradient `backward()` accumulates into `.grad()`.
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        if !self.is_leaf() {
            return Err(Error::value(
                "requiresGrad",
                "only leaf tensors can change requiresGrad; use detach() for a new leaf",
            ));
        }
        if on && !self.dtype().is_float() {
            return Err(Error::dtype("requiresGrad", "float32 or float64", self.dtype()));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn slot(&self) -> Arc<DataSlot> {
        self.0.data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A new leaf that shares this tensor's data and has no history.
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.0.shape.clone(), self.0.dtype, self.0.device, self.slot(), None)
    }

    /// Replaces this tensor's data with `src`'s (same shape and dtype). Ops enqueued before keep
    /// reading the old data; later ones and readers see the new. This is how in-place updates
    /// (optimizer steps, `loadStateDict`) work without racing the executor.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::shape("assign", fmt_shape(self.shape()), fmt_shape(src.shape())));
        }
        if src.dtype() != self.dtype() {
            return Err(Error::dtype("assign", self.dtype(), src.dtype()));
        }
        let slot = src.slot();
        *self.0.data.write().unwrap_or_else(|p| p.into_inner()) = slot;
        Ok(())
    }

    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|p| p.into_inner()) = g;
    }
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// True once the executor has produced this tensor's data (or failed to).
    pub fn is_ready(&self) -> bool {
        self.slot().is_done()
    }

    /// Blocks until the data is computed; returns it (copied to the host for device tensors),
    /// or the error that poisoned it.
    pub fn storage(&self) -> Result<Arc<CpuStorage>> {
        match self.slot().wait_stored()? {
            Stored::Host(s) => Ok(s),
            Stored::Device(buf) => {
                let Device::Cuda(n) = self.device() else { unreachable!("device data on the CPU") };
                let be = crate::backend::cuda(n)?;
                // A read back to the host: the natural point to report deferred index checks.
                crate::launch::index_faults(&*be)?;
                Ok(Arc::new(be.download(&*buf)?))
            }
        }
    }

    /// Calls `f` with this tensor's data once it is computed (or with the error of the op it
    /// failed in), without blocking any thread to wait: on the thread that computes it, or at
    /// once on this one when it is ready. `f` must be quick (it may run on the executor,
    /// holding up the next op) and must not wait on other tensors. The data is this version's:
    /// an in-place update after this call does not change what `f` gets. Host tensors only:
    /// for a device tensor `f` is dropped uncalled and false returned (reading one back is a
    /// blocking download; use [`Tensor::storage`] on a thread of your own).
    pub fn when_ready(&self, f: impl FnOnce(Result<Arc<CpuStorage>>) + Send + 'static) -> bool {
        if self.device() != Device::Cpu {
            return false;
        }
        let slot = self.slot();
        let read = slot.clone();
        slot.when_done(Box::new(move || {
            f(read.wait_stored().map(|s| match s {
                Stored::Host(h) => h,
                Stored::Device(_) => unreachable!("host tensor with device data"),
            }))
        }));
        true
    }

    /// A copy on `device` (the same tensor when already there). Differentiable: the gradient
    /// is copied back. Data moves between devices only through this call and reads.
    pub fn to(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        if device != Device::Cpu && self.device() != Device::Cpu {
            return Err(Error::Device {
                op: "to".into(),
                expected: "a copy through the host between two CUDA devices".into(),
                got: format!("{} → {device}", self.device()),
            });
        }
        let spec = vec![(self.shape().to_vec(), self.dtype())];
        Ok(crate::autograd::apply(Arc::new(ToDevice { from: self.device(), to: device }), &[self], spec)?.remove(0))
    }

    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let s = self.storage()?;
        Ok(match &*s {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::F64(v) => v.iter().map(|&x| x as f32).collect(),
            CpuStorage::I32(v) => v.iter().map(|&x| x as f32).collect(),
        })
    }
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        Ok(self.storage()?.to_f64_vec())
    }
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        let s = self.storage()?;
        match &*s {
            CpuStorage::I32(v) => Ok(v.clone()),
            other => Err(Error::dtype("toInt32", "int32", other.dtype())),
        }
    }
    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape("item", "a tensor with one element", fmt_shape(self.shape())));
        }
        Ok(self.to_vec_f64()?[0])
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor(id={}, shape={}, {}, {})", self.id(), fmt_shape(self.shape()), self.dtype(), self.device())
    }
}

/// Copies a tensor between the host and a device.
struct ToDevice {
    from: Device,
    to: Device,
}

impl crate::autograd::Op for ToDevice {
    fn name(&self) -> &'static str {
        "to"
    }
    fn cpu(&self, _inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>> {
        Err(Error::internal("to", "copies run in the executor, not as host math"))
    }
    fn output_device(&self) -> Option<Device> {
        Some(self.to)
    }
    fn backward(&self, _ctx: &crate::autograd::BackwardCtx, grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(grads[0].as_ref().expect("gradient").to(self.from)?)])
    }
}
