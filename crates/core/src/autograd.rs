//! Dynamic autograd: every differentiable op records a node; `backward()` walks the nodes in
//! reverse topological order and enqueues each op's backward as more ops on the executor.

use crate::backend::{DeviceBuffer, GpuBackend};
use crate::error::{fmt_shape, panic_message, Error, Result};
use crate::executor::{self, DataSlot, Stored};
use crate::storage::{CpuStorage, DType};
use crate::tensor::{Device, Tensor};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One operation: its CPU math and its backward, side by side in the op's file.
pub trait Op: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Runs on the executor thread with every input ready. Must return one storage per output,
    /// with the shapes and dtypes the op promised when it was built.
    fn cpu(&self, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>>;
    /// [`Op::cpu`] given the shared storages themselves, for ops that keep something derived
    /// from an input across calls (a storage never changes once made, so a live one at the same
    /// address holds the same values).
    fn cpu_shared(&self, inputs: &[&Arc<CpuStorage>]) -> Result<Vec<CpuStorage>> {
        self.cpu(&inputs.iter().map(|a| &***a).collect::<Vec<&CpuStorage>>())
    }
    /// Gradients of the inputs from the gradients of the outputs, built from (lazy) ops.
    /// `grads[i]` is None when output i got no gradient.
    fn backward(&self, _ctx: &BackwardCtx, _grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        Err(Error::value(self.name(), "this op is not differentiable"))
    }
    /// Whether backward reads the outputs (then the node keeps them alive).
    fn saves_outputs(&self) -> bool {
        false
    }
    /// The same op on a GPU: inputs and outputs in device memory, as GEMMs and named kernels.
    fn gpu(&self, _backend: &dyn GpuBackend, _inputs: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>> {
        Err(Error::CudaUnavailable { op: self.name().into(), reason: "this op has no CUDA implementation yet".into() })
    }
    /// For ops that move data between devices: the device of the outputs.
    fn output_device(&self) -> Option<Device> {
        None
    }
}

/// What a node's backward may read: its inputs and (if saved) its outputs, both detached, and
/// which inputs want a gradient (an op may skip computing the others).
pub struct BackwardCtx {
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub needs_grad: Vec<bool>,
}

pub(crate) struct Node {
    op: Arc<dyn Op>,
    /// The input tensors with their own history (the graph's edges) and the outputs backward
    /// reads. A backward pass without `retain_graph` empties this, as PyTorch frees saved
    /// tensors, so activations do not live on until the last JS handle is collected.
    saved: Mutex<Option<Saved>>,
    n_outputs: usize,
}

struct Saved {
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

impl Node {
    fn inputs(&self) -> Option<Vec<Tensor>> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|s| s.inputs.clone())
    }
}

#[derive(Clone)]
pub(crate) struct GradFn {
    pub(crate) node: Arc<Node>,
    pub(crate) index: usize,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Sets whether ops record history on this thread; returns the previous setting.
pub fn set_grad_enabled(on: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(on))
}

/// Runs `f` without recording history (like `torch.no_grad()`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_grad_enabled(self.0);
        }
    }
    let _restore = Restore(set_grad_enabled(false));
    f()
}

/// Checks devices, creates the output tensors, records history and enqueues the op.
/// Returns at once; the outputs are filled when the executor reaches the op.
pub fn apply(op: Arc<dyn Op>, inputs: &[&Tensor], outputs: Vec<(Vec<usize>, DType)>) -> Result<Vec<Tensor>> {
    let device = inputs.first().map(|t| t.device()).unwrap_or(Device::Cpu);
    if let Some(bad) = inputs.iter().find(|t| t.device() != device) {
        return Err(Error::Device {
            op: op.name().into(),
            expected: device.to_string(),
            got: bad.device().to_string(),
        });
    }
    // Outputs larger than the machine's memory are refused here, when the op is enqueued, so
    // that the executor never aborts on an allocation (a MemoryError naming the op).
    let out_bytes = outputs.iter().fold(0u64, |acc, (s, d)| {
        let n = s.iter().fold(1u64, |n, &x| n.saturating_mul(x as u64));
        acc.saturating_add(n.saturating_mul(d.size_of() as u64))
    });
    crate::storage::check_host_bytes(op.name(), out_bytes)?;
    let out_device = op.output_device().unwrap_or(device);
    // The device that runs the op: the source for downloads, the destination otherwise.
    let run_device = if out_device == Device::Cpu { device } else { out_device };
    let backend = match run_device {
        Device::Cpu => None,
        Device::Cuda(n) => Some(crate::backend::cuda(n).map_err(|e| match e {
            Error::CudaUnavailable { reason, .. } => Error::CudaUnavailable { op: op.name().into(), reason },
            other => other,
        })?),
    };
    let track = is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
    let slots: Vec<Arc<DataSlot>> = outputs.iter().map(|_| DataSlot::pending()).collect();
    let node = track.then(|| {
        let saved_outputs = if op.saves_outputs() {
            outputs
                .iter()
                .zip(&slots)
                .map(|((s, d), slot)| Tensor::from_parts(s.clone(), *d, out_device, slot.clone(), None))
                .collect()
        } else {
            Vec::new()
        };
        let saved = Saved { inputs: inputs.iter().map(|t| (*t).clone()).collect(), outputs: saved_outputs };
        Arc::new(Node { op: op.clone(), saved: Mutex::new(Some(saved)), n_outputs: outputs.len() })
    });
    let result: Vec<Tensor> = outputs
        .iter()
        .zip(&slots)
        .enumerate()
        .map(|(i, ((shape, dtype), slot))| {
            let grad_fn = node.as_ref().map(|n| GradFn { node: n.clone(), index: i });
            Tensor::from_parts(shape.clone(), *dtype, out_device, slot.clone(), grad_fn)
        })
        .collect();

    let in_slots: Vec<Arc<DataSlot>> = inputs.iter().map(|t| t.slot()).collect();
    executor::submit_on(run_device, Box::new(move || run_job(&*op, backend.as_deref(), &in_slots, &slots, &outputs)));
    Ok(result)
}

fn check_outputs(op: &dyn Op, out: &[(usize, DType)], specs: &[(Vec<usize>, DType)]) -> Result<()> {
    if out.len() != specs.len() {
        return Err(Error::internal(op.name(), format!("produced {} outputs, promised {}", out.len(), specs.len())));
    }
    for (&(len, dt), (shape, dtype)) in out.iter().zip(specs) {
        if len != shape.iter().product::<usize>() || dt != *dtype {
            return Err(Error::internal(
                op.name(),
                format!("produced {len} {dt} values, promised {} {}", fmt_shape(shape), dtype),
            ));
        }
    }
    Ok(())
}

/// Runs one op on the executor thread: host math, device math, or a copy between the two.
fn run_job(
    op: &dyn Op, backend: Option<&dyn GpuBackend>, in_slots: &[Arc<DataSlot>], out_slots: &[Arc<DataSlot>],
    specs: &[(Vec<usize>, DType)],
) {
    let outcome = (|| -> Result<Vec<Stored>> {
        let mut held = Vec::with_capacity(in_slots.len());
        for s in in_slots {
            // A failed input poisons this op's outputs with the original error.
            held.push(s.wait_stored()?);
        }
        let caught = |f: &mut dyn FnMut() -> Result<Vec<Stored>>| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|p| Error::internal(op.name(), panic_message(p)))?
        };
        let host: Vec<&Arc<CpuStorage>> =
            held.iter().filter_map(|s| if let Stored::Host(h) = s { Some(h) } else { None }).collect();
        let dev: Vec<&dyn DeviceBuffer> =
            held.iter().filter_map(|s| if let Stored::Device(d) = s { Some(&**d) } else { None }).collect();
        let out = match (backend, op.output_device()) {
            (None, _) if host.len() == held.len() => {
                caught(&mut || Ok(op.cpu_shared(&host)?.into_iter().map(|s| Stored::Host(Arc::new(s))).collect()))?
            }
            (Some(be), Some(Device::Cuda(_))) if host.len() == held.len() => {
                caught(&mut || host.iter().map(|h| Ok(Stored::Device(be.upload(h)?))).collect())?
            }
            (Some(be), Some(Device::Cpu)) if dev.len() == held.len() => {
                // A read back to the host: the natural point to report deferred index checks.
                caught(&mut || {
                    crate::launch::index_faults(be)?;
                    dev.iter().map(|d| Ok(Stored::Host(Arc::new(be.download(*d)?)))).collect()
                })?
            }
            (Some(be), None) if dev.len() == held.len() => {
                let run = || op.gpu(be, &dev);
                caught(&mut || {
                    Ok(crate::backend::with_current_op(op.name(), run)?.into_iter().map(Stored::Device).collect())
                })?
            }
            _ => return Err(Error::internal(op.name(), "inputs are not on the device that runs the op")),
        };
        let shapes: Vec<(usize, DType)> = out
            .iter()
            .map(|s| match s {
                Stored::Host(h) => (h.len(), h.dtype()),
                Stored::Device(d) => (d.len(), d.dtype()),
            })
            .collect();
        check_outputs(op, &shapes, specs)?;
        Ok(out)
    })();
    match outcome {
        Ok(out) => {
            for (slot, s) in out_slots.iter().zip(out) {
                slot.fill(Ok(s));
            }
        }
        Err(e) => {
            for slot in out_slots {
                slot.fill(Err(e.clone()));
            }
        }
    }
}

/// Accumulates gradients of `root` into the `.grad()` of every leaf that requires grad.
/// `grad` defaults to 1 for a one-element root, as in PyTorch. The graph's saved tensors are
/// freed as it goes; see [`backward_with`] to keep them for a second pass.
pub fn backward(root: &Tensor, grad: Option<Tensor>) -> Result<()> {
    backward_with(root, grad, false)
}

/// [`backward`] with PyTorch's `retain_graph`: when true, the graph can be differentiated again.
pub fn backward_with(root: &Tensor, grad: Option<Tensor>, retain_graph: bool) -> Result<()> {
    if !root.requires_grad() {
        return Err(Error::value("backward", "the tensor does not require grad and has no grad_fn (was it computed under noGrad, or from tensors without requiresGrad?)"));
    }
    let seed = match grad {
        Some(g) => {
            if g.shape() != root.shape() {
                return Err(Error::shape(
                    "backward",
                    format!("a gradient of shape {}", fmt_shape(root.shape())),
                    fmt_shape(g.shape()),
                ));
            }
            // Checked here so that the error names backward, not the first op of the pass.
            if g.dtype() != root.dtype() {
                return Err(Error::dtype(
                    "backward",
                    format!("{} (the gradient's dtype must be the tensor's)", root.dtype()),
                    g.dtype(),
                ));
            }
            if g.device() != root.device() {
                return Err(Error::Device {
                    op: "backward".into(),
                    expected: format!("a gradient on {}", root.device()),
                    got: g.device().to_string(),
                });
            }
            g
        }
        None => {
            if root.numel() != 1 {
                return Err(Error::shape(
                    "backward",
                    "a one-element tensor (or pass a gradient)",
                    fmt_shape(root.shape()),
                ));
            }
            // On the root's device, so that a CUDA graph's backward stays on CUDA.
            Tensor::full(root.shape(), 1.0, root.dtype())?.to(root.device())?
        }
    };
    no_grad(|| run_backward(root, seed, retain_graph))
}

fn node_key(n: &Arc<Node>) -> usize {
    Arc::as_ptr(n) as usize
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(prev) => crate::ops::elementwise::add(&prev, &g)?,
        None => g,
    });
    Ok(())
}

fn accumulate_leaf(leaf: &Tensor, g: Tensor) -> Result<()> {
    let mut cur = leaf.grad();
    accumulate(&mut cur, g)?;
    leaf.set_grad(cur);
    Ok(())
}

fn run_backward(root: &Tensor, seed: Tensor, retain_graph: bool) -> Result<()> {
    let Some(root_fn) = root.0.grad_fn.clone() else {
        return accumulate_leaf(root, seed);
    };
    // Iterative DFS post-order gives a topological order (inputs before users).
    let mut order: Vec<Arc<Node>> = Vec::new();
    let mut seen: HashMap<usize, ()> = HashMap::new();
    let mut stack: Vec<(Arc<Node>, bool)> = vec![(root_fn.node.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if seen.insert(node_key(&node), ()).is_some() {
            continue;
        }
        stack.push((node.clone(), true));
        let Some(inputs) = node.inputs() else {
            return Err(Error::value("backward", format!("the graph through '{}' was already freed by an earlier backward(); pass retainGraph: true to the first backward() to differentiate twice", node.op.name())));
        };
        for inp in &inputs {
            if let Some(gf) = &inp.0.grad_fn {
                if !seen.contains_key(&node_key(&gf.node)) {
                    stack.push((gf.node.clone(), false));
                }
            }
        }
    }
    let mut pending: HashMap<usize, Vec<Option<Tensor>>> = HashMap::new();
    let mut root_grads = vec![None; root_fn.node.n_outputs];
    root_grads[root_fn.index] = Some(seed);
    pending.insert(node_key(&root_fn.node), root_grads);

    for node in order.iter().rev() {
        let Some(grads) = pending.remove(&node_key(node)) else { continue };
        if grads.iter().all(|g| g.is_none()) {
            continue;
        }
        let saved = {
            let mut guard = node.saved.lock().unwrap_or_else(|p| p.into_inner());
            if retain_graph {
                guard.as_ref().map(|s| Saved { inputs: s.inputs.clone(), outputs: s.outputs.clone() })
            } else {
                guard.take()
            }
        };
        let Some(saved) = saved else {
            return Err(Error::value(
                "backward",
                format!("the graph through '{}' was already freed by an earlier backward()", node.op.name()),
            ));
        };
        let ctx = BackwardCtx {
            inputs: saved.inputs.iter().map(|t| t.detach()).collect(),
            outputs: saved.outputs,
            needs_grad: saved.inputs.iter().map(|t| t.requires_grad()).collect(),
        };
        let in_grads = node.op.backward(&ctx, &grads)?;
        if in_grads.len() != saved.inputs.len() {
            return Err(Error::internal(node.op.name(), "backward returned the wrong number of gradients"));
        }
        for (inp, g) in saved.inputs.iter().zip(in_grads) {
            let Some(g) = g else { continue };
            if !inp.requires_grad() {
                continue;
            }
            if g.shape() != inp.shape() {
                return Err(Error::internal(
                    node.op.name(),
                    format!(
                        "backward gave a gradient of shape {} for an input of shape {}",
                        fmt_shape(g.shape()),
                        fmt_shape(inp.shape())
                    ),
                ));
            }
            match &inp.0.grad_fn {
                Some(gf) => {
                    let entry = pending.entry(node_key(&gf.node)).or_insert_with(|| vec![None; gf.node.n_outputs]);
                    accumulate(&mut entry[gf.index], g)?;
                }
                None => accumulate_leaf(inp, g)?,
            }
        }
    }
    Ok(())
}
