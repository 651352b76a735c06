//! Dynamic autograd: every differentiable op records a node; `backward()` walks the nodes in
//! reverse topological order and enqueues each op's backward as more ops on the executor.

use crate::error::{fmt_shape, Error, Result};
use crate::executor::{self, DataSlot};
use crate::storage::{CpuStorage, DType};
use crate::tensor::{Device, Tensor};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

/// One operation: its CPU math and its backward, side by side in the op's file.
pub trait Op: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Runs on the executor thread with every input ready. Must return one storage per output,
    /// with the shapes and dtypes the op promised when it was built.
    fn cpu(&self, inputs: &[&CpuStorage]) -> Result<Vec<CpuStorage>>;
    /// Gradients of the inputs from the gradients of the outputs, built from (lazy) ops.
    /// `grads[i]` is None when output i got no gradient.
    fn backward(&self, _ctx: &BackwardCtx, _grads: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        Err(Error::value(self.name(), "this op is not differentiable"))
    }
    /// Whether backward reads the outputs (then the node keeps them alive).
    fn saves_outputs(&self) -> bool {
        false
    }
}

/// What a node's backward may read: its inputs and (if saved) its outputs, both detached.
pub struct BackwardCtx {
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
}

pub(crate) struct Node {
    op: Arc<dyn Op>,
    /// The input tensors with their own history: the graph's edges.
    inputs: Vec<Tensor>,
    saved_outputs: Vec<Tensor>,
    n_outputs: usize,
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
        return Err(Error::Device { op: op.name().into(), expected: device.to_string(), got: bad.device().to_string() });
    }
    if let Device::Cuda(_) = device {
        return Err(Error::CudaUnavailable { op: op.name().into(), reason: "this build has no CUDA backend".into() });
    }
    let track = is_grad_enabled() && inputs.iter().any(|t| t.requires_grad());
    let slots: Vec<Arc<DataSlot>> = outputs.iter().map(|_| DataSlot::pending()).collect();
    let node = track.then(|| {
        let saved_outputs = if op.saves_outputs() {
            outputs.iter().zip(&slots).map(|((s, d), slot)| Tensor::from_parts(s.clone(), *d, device, slot.clone(), None)).collect()
        } else {
            Vec::new()
        };
        Arc::new(Node { op: op.clone(), inputs: inputs.iter().map(|t| (*t).clone()).collect(), saved_outputs, n_outputs: outputs.len() })
    });
    let result: Vec<Tensor> = outputs
        .iter()
        .zip(&slots)
        .enumerate()
        .map(|(i, ((shape, dtype), slot))| {
            let grad_fn = node.as_ref().map(|n| GradFn { node: n.clone(), index: i });
            Tensor::from_parts(shape.clone(), *dtype, device, slot.clone(), grad_fn)
        })
        .collect();

    let in_slots: Vec<Arc<DataSlot>> = inputs.iter().map(|t| t.slot()).collect();
    executor::submit(Box::new(move || run_job(&*op, &in_slots, &slots, &outputs)));
    Ok(result)
}

fn run_job(op: &dyn Op, in_slots: &[Arc<DataSlot>], out_slots: &[Arc<DataSlot>], specs: &[(Vec<usize>, DType)]) {
    let outcome = (|| -> Result<Vec<CpuStorage>> {
        let mut held = Vec::with_capacity(in_slots.len());
        for s in in_slots {
            // A failed input poisons this op's outputs with the original error.
            held.push(s.wait()?);
        }
        let refs: Vec<&CpuStorage> = held.iter().map(|s| &**s).collect();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.cpu(&refs)))
            .map_err(|p| Error::internal(op.name(), panic_message(&p)))??;
        if out.len() != specs.len() {
            return Err(Error::internal(op.name(), format!("produced {} outputs, promised {}", out.len(), specs.len())));
        }
        for (o, (shape, dtype)) in out.iter().zip(specs) {
            if o.len() != shape.iter().product::<usize>() || o.dtype() != *dtype {
                return Err(Error::internal(op.name(), format!("produced {} {} values, promised {} {}", o.len(), o.dtype(), fmt_shape(shape), dtype)));
            }
        }
        Ok(out)
    })();
    match outcome {
        Ok(out) => {
            for (slot, s) in out_slots.iter().zip(out) {
                slot.fill(Ok(Arc::new(s)));
            }
        }
        Err(e) => {
            for slot in out_slots {
                slot.fill(Err(e.clone()));
            }
        }
    }
}

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Accumulates gradients of `root` into the `.grad()` of every leaf that requires grad.
/// `grad` defaults to 1 for a one-element root, as in PyTorch.
pub fn backward(root: &Tensor, grad: Option<Tensor>) -> Result<()> {
    if !root.requires_grad() {
        return Err(Error::value("backward", "the tensor does not require grad and has no grad_fn (was it computed under noGrad, or from tensors without requiresGrad?)"));
    }
    let seed = match grad {
        Some(g) => {
            if g.shape() != root.shape() {
                return Err(Error::shape("backward", format!("a gradient of shape {}", fmt_shape(root.shape())), fmt_shape(g.shape())));
            }
            g
        }
        None => {
            if root.numel() != 1 {
                return Err(Error::shape("backward", "a one-element tensor (or pass a gradient)", fmt_shape(root.shape())));
            }
            Tensor::full(root.shape(), 1.0, root.dtype())?
        }
    };
    no_grad(|| run_backward(root, seed))
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

fn run_backward(root: &Tensor, seed: Tensor) -> Result<()> {
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
        for inp in &node.inputs {
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
        let ctx = BackwardCtx {
            inputs: node.inputs.iter().map(|t| t.detach()).collect(),
            outputs: node.saved_outputs.clone(),
        };
        let in_grads = node.op.backward(&ctx, &grads)?;
        if in_grads.len() != node.inputs.len() {
            return Err(Error::internal(node.op.name(), "backward returned the wrong number of gradients"));
        }
        for (inp, g) in node.inputs.iter().zip(in_grads) {
            let Some(g) = g else { continue };
            if !inp.requires_grad() {
                continue;
            }
            if g.shape() != inp.shape() {
                return Err(Error::internal(node.op.name(), format!("backward gave a gradient of shape {} for an input of shape {}", fmt_shape(g.shape()), fmt_shape(inp.shape()))));
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
