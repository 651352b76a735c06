//! Safetensors checkpoints: the reads and writes run on the libuv pool (AsyncTask), each inside
//! `catch_unwind`. Core checkpoint errors become CheckpointErrors naming the JS function and
//! the file.

use crate::errors::{Failure, Pending};
use crate::tensor::NativeTensor;
use crate::{js_err, sync_external_memory};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::Error as CoreError;
use recurrent_core::io;
use recurrent_core::{ErrorKind, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// A core error of a checkpoint op, with the op's name and the file in the message.
fn ck_err(op: &str, path: &str, e: CoreError) -> Failure {
    match e {
        CoreError::Checkpoint { msg } => {
            let quoted = format!("'{path}'");
            let msg = if msg.contains(&quoted) {
                msg
            } else {
                format!("cannot {} {quoted}: {msg}", if op == "saveSafetensors" { "save" } else { "load" })
            };
            Failure::new(ErrorKind::Checkpoint, op, &msg)
        }
        other => other.into(),
    }
}

/// Serialises and writes a snapshot of named tensors on the libuv pool.
pub struct SaveTask {
    path: String,
    tensors: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
    failure: Pending,
}

#[napi]
impl Task for SaveTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let (path, tensors, metadata) = (&self.path, &self.tensors, &self.metadata);
        let r = self.failure.run("saveSafetensors", || {
            io::save_safetensors(&PathBuf::from(path), tensors, metadata)
                .map_err(|e| ck_err("saveSafetensors", path, e))
        });
        // The snapshots are not needed any more: free them now rather than at resolve.
        self.tensors.clear();
        r
    }

    fn resolve(&mut self, env: Env, _out: ()) -> Result<()> {
        sync_external_memory(&env);
        Ok(())
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<()> {
        self.failure.reject(&env, err)
    }
}

/// Writes `tensors` (named by `names`, in the same order) and string `metadata` to `path` in
/// the safetensors format, atomically (a failed write leaves the previous file intact). The
/// tensors are captured as they are at this call: later in-place updates (optimizer steps)
/// do not reach the file. Resolves once the file is on disk; never blocks the JS thread.
#[napi(catch_unwind)]
pub fn save_safetensors(
    path: String, names: Vec<String>, tensors: Vec<&NativeTensor>, metadata: HashMap<String, String>,
) -> Result<AsyncTask<SaveTask>> {
    let op = "saveSafetensors";
    if names.len() != tensors.len() {
        return Err(js_err(CoreError::value(op, format!("{} names for {} tensors", names.len(), tensors.len()))));
    }
    let mut snap = Vec::with_capacity(names.len());
    for (n, t) in names.into_iter().zip(tensors) {
        snap.push((n, t.get(op)?.detach()));
    }
    Ok(AsyncTask::new(SaveTask { path, tensors: snap, metadata, failure: Pending::default() }))
}

/// What `loadSafetensors` resolves to: names sorted, `tensors[i]` named `names[i]`.
#[napi(object, object_from_js = false)]
pub struct LoadedSafetensors {
    pub names: Vec<String>,
    pub tensors: Vec<NativeTensor>,
    pub metadata: HashMap<String, String>,
}

/// Reads and validates a safetensors file on the libuv pool.
pub struct LoadTask {
    path: String,
    failure: Pending,
}

#[napi]
impl Task for LoadTask {
    type Output = io::Loaded;
    type JsValue = LoadedSafetensors;

    fn compute(&mut self) -> Result<io::Loaded> {
        let path = &self.path;
        self.failure.run("loadSafetensors", || {
            io::load_safetensors(&PathBuf::from(path)).map_err(|e| ck_err("loadSafetensors", path, e))
        })
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<LoadedSafetensors> {
        self.failure.reject(&env, err)
    }

    fn resolve(&mut self, env: Env, out: io::Loaded) -> Result<LoadedSafetensors> {
        let (names, tensors): (Vec<String>, Vec<NativeTensor>) =
            out.tensors.into_iter().map(|(n, t)| (n, NativeTensor::new(t))).unzip();
        sync_external_memory(&env);
        Ok(LoadedSafetensors { names, tensors, metadata: out.metadata })
    }
}

/// Reads a safetensors file (f32, f64, i32, and i64 within the int32 range). Every size and
/// offset is checked before anything is allocated; a bad file rejects with a CheckpointError.
#[napi(catch_unwind)]
pub fn load_safetensors(path: String) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask { path, failure: Pending::default() })
}
