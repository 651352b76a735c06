//! Checkpoint files in the safetensors format (PyTorch parameter names, a JSON metadata map),
//! written atomically and read with every size and offset checked before anything is allocated.

use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

fn ck(msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint { msg: msg.to_string() }
}

/// Serialises named tensors and string metadata; waits for every tensor to be computed.
pub fn to_safetensors_bytes(tensors: &[(String, Tensor)], metadata: &HashMap<String, String>) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut owned: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(ck(format!("duplicate tensor name '{name}'")));
        }
        let s = t.storage().map_err(|e| ck(format!("tensor '{name}' could not be computed: {e}")))?;
        let (dtype, bytes): (StDtype, Vec<u8>) = match &*s {
            CpuStorage::F32(v) => (StDtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            CpuStorage::F64(v) => (StDtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            CpuStorage::I32(v) => (StDtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        owned.push((name.clone(), dtype, t.shape().to_vec(), bytes));
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)).map_err(|e| ck(format!("tensor '{n}': {e}")))
        })
        .collect::<Result<_>>()?;
    let meta = if metadata.is_empty() { None } else { Some(metadata.clone()) };
    safetensors::serialize(views, meta).map_err(|e| ck(format!("cannot serialise: {e}")))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over the target. A crash at any point leaves the previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| ck(format!("'{}' is not a file path", path.display())))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}-{}", name.to_string_lossy(), std::process::id(), crate::tensor::live_tensors()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ck(format!("cannot write '{}': {e}", path.display()))
    })
}

pub fn save_safetensors(path: &Path, tensors: &[(String, Tensor)], metadata: &HashMap<String, String>) -> Result<()> {
    write_atomic(path, &to_safetensors_bytes(tensors, metadata)?)
}

/// Named tensors and metadata of a safetensors file.
pub struct Loaded {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
}

/// Parses safetensors bytes. Header length, JSON, dtypes, shapes and offsets are all checked
/// against the buffer (by the `safetensors` crate) before any tensor is allocated.
pub fn from_safetensors_bytes(bytes: &[u8], what: &str) -> Result<Loaded> {
    if bytes.len() < 8 {
        return Err(ck(format!("{what} is truncated: {} bytes, a safetensors file has at least 8", bytes.len())));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if header_len > (bytes.len() - 8) as u64 {
        return Err(ck(format!(
            "{what} is truncated or corrupt: its header claims {header_len} bytes but only {} follow",
            bytes.len() - 8
        )));
    }
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| ck(format!("{what} is not a valid safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| ck(format!("{what} is not a valid safetensors file: {e}")))?;
    let mut tensors = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    for name in names {
        let v = st.tensor(&name).map_err(|e| ck(format!("{what}: tensor '{name}': {e}")))?;
        let shape = v.shape().to_vec();
        let data = v.data();
        let storage = match v.dtype() {
            StDtype::F32 => CpuStorage::new_f32(
                data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect(),
            ),
            StDtype::F64 => CpuStorage::new_f64(
                data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect(),
            ),
            StDtype::I32 => CpuStorage::new_i32(
                data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4"))).collect(),
            ),
            StDtype::I64 => {
                let mut v = Vec::with_capacity(data.len() / 8);
                for c in data.chunks_exact(8) {
                    let x = i64::from_le_bytes(c.try_into().expect("8"));
                    v.push(i32::try_from(x).map_err(|_| {
                        ck(format!("{what}: tensor '{name}' holds the int64 {x}, outside the int32 range"))
                    })?);
                }
                CpuStorage::new_i32(v)
            }
            other => {
                return Err(ck(format!("{what}: tensor '{name}' has dtype {other:?}; supported: F32, F64, I32, I64")))
            }
        };
        // Zero-size tensors are valid safetensors but not recurrent tensors; 0-d loads as shape [].
        if storage.is_empty() {
            return Err(ck(format!(
                "{what}: tensor '{name}' is empty (shape {shape:?}), which recurrent does not support"
            )));
        }
        let t = Tensor::from_storage(storage, &shape).map_err(|e| ck(format!("{what}: tensor '{name}': {e}")))?;
        tensors.push((name, t));
    }
    Ok(Loaded { tensors, metadata: meta.metadata().clone().unwrap_or_default() })
}

pub fn load_safetensors(path: &Path) -> Result<Loaded> {
    let what = format!("'{}'", path.display());
    let bytes = std::fs::read(path).map_err(|e| ck(format!("cannot read {what}: {e}")))?;
    from_safetensors_bytes(&bytes, &what)
}
