//! Checkpoint files in the safetensors format (PyTorch parameter names, a JSON metadata map),
//! written atomically and read with every size and offset checked before anything is allocated.

use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

fn ck(msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint { msg: msg.to_string() }
}

/// The metadata key holding the CRC-32 of every tensor's bytes: 8 hex digits per tensor, in
/// the order of the sorted tensor names, comma-separated. Written by every save and checked by
/// every load that finds it; files without it (older ones, other tools') load unchecked.
pub const CHECKSUM_KEY: &str = "recurrent.crc32";

/// Largest header a file may declare. A checkpoint of a few thousand tensors needs well under
/// 1 MiB; the format's own limit (100 MB) would let a hostile file cost seconds and hundreds of
/// MB before it is refused.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Most tensors a file may hold (a model of this library has tens; PyTorch LLM checkpoints a
/// few thousand).
pub const MAX_TENSORS: usize = 65_536;

fn checksums_value(sums: &[u32]) -> String {
    sums.iter().map(|c| format!("{c:08x}")).collect::<Vec<_>>().join(",")
}

/// Serialises named tensors and string metadata; waits for every tensor to be computed. The
/// checksum entry ([`CHECKSUM_KEY`]) is added to the metadata.
pub fn to_safetensors_bytes(tensors: &[(String, Tensor)], metadata: &HashMap<String, String>) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut owned: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name == "__metadata__" {
            return Err(ck("'__metadata__' is reserved by the safetensors format and cannot name a tensor"));
        }
        if !seen.insert(name.as_str()) {
            return Err(ck(format!("duplicate tensor name '{name}'")));
        }
        let s = t.storage().map_err(|e| ck(format!("tensor '{name}' could not be computed: {e}")))?;
        let mut bytes: Vec<u8> = crate::storage::try_with_capacity("saveSafetensors", s.bytes())?;
        let dtype = match &*s {
            CpuStorage::F32(v) => {
                v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
                StDtype::F32
            }
            CpuStorage::F64(v) => {
                v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
                StDtype::F64
            }
            CpuStorage::I32(v) => {
                v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
                StDtype::I32
            }
        };
        owned.push((name.clone(), dtype, t.shape().to_vec(), bytes));
    }
    let mut order: Vec<usize> = (0..owned.len()).collect();
    order.sort_by(|&a, &b| owned[a].0.cmp(&owned[b].0));
    let sums: Vec<u32> = order.iter().map(|&i| crc32fast::hash(&owned[i].3)).collect();
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)).map_err(|e| ck(format!("tensor '{n}': {e}")))
        })
        .collect::<Result<_>>()?;
    let mut meta: std::collections::BTreeMap<&str, &str> =
        metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sums = checksums_value(&sums);
    meta.insert(CHECKSUM_KEY, &sums);
    let plain = safetensors::serialize(views, None).map_err(|e| ck(format!("cannot serialise: {e}")))?;
    Ok(with_metadata(&plain, &meta))
}

/// `plain` (a serialised file without metadata) with `meta` as its `__metadata__`, keys in
/// sorted order. The `safetensors` crate writes metadata in `HashMap` order, which differs
/// between runs; sorting makes the same tensors and metadata give the same bytes every time.
fn with_metadata(plain: &[u8], meta: &std::collections::BTreeMap<&str, &str>) -> Vec<u8> {
    let n = u64::from_le_bytes(plain[..8].try_into().expect("8 bytes")) as usize;
    let header = std::str::from_utf8(&plain[8..8 + n]).expect("the crate writes UTF-8").trim_end();
    let body = header.strip_prefix('{').and_then(|h| h.strip_suffix('}')).expect("a JSON object");
    let meta_json = serde_json::to_string(meta).expect("strings serialise");
    let mut out_header = format!("{{\"__metadata__\":{meta_json}");
    if !body.is_empty() {
        out_header.push(',');
        out_header.push_str(body);
    }
    out_header.push('}');
    // The data starts 8-byte aligned, as the crate pads it.
    while out_header.len() % 8 != 0 {
        out_header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + out_header.len() + plain.len() - 8 - n);
    out.extend_from_slice(&(out_header.len() as u64).to_le_bytes());
    out.extend_from_slice(out_header.as_bytes());
    out.extend_from_slice(&plain[8 + n..]);
    out
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, written whole and
/// fsynced, renamed over the target, then the folder fsynced (so the rename itself is durable).
/// A crash or failure at any point leaves the previous file intact.
///
/// Every step goes through [`faults`]: the tests inject failures and hangs at chosen points and
/// count the fsyncs from outside the process (`RECURRENT_IO_FAULT`, `RECURRENT_IO_TRACE`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| ck(format!("'{}' is not a file path", path.display())))?;
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let tmp = dir.join(format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id()));
    let hooks = faults::Hooks::from_env(n);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        hooks.trace(&format!("create {}", tmp.display()));
        hooks.write_all(&mut f, bytes)?;
        hooks.point("before-fsync")?;
        hooks.fsync(&f, &tmp)?;
        drop(f);
        hooks.point("before-rename")?;
        std::fs::rename(&tmp, path)?;
        hooks.trace(&format!("rename {} {}", tmp.display(), path.display()));
        hooks.point("before-dir-fsync")?;
        // Best effort: some file systems cannot fsync a folder; the file itself is on disk.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = hooks.fsync_dir(&d, dir);
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ck(format!("cannot write '{}': {e}", path.display()))
    })
}

/// Deterministic fault injection for [`write_atomic`], read from the environment at each write
/// (one variable lookup, next to the cost of an fsync). Unset, nothing changes.
///
/// - `RECURRENT_IO_FAULT=<action>@<point>[#<k>]`: at `<point>` of the `k`-th atomic write of
///   this process (every write when `#k` is absent), `fail` returns an I/O error (the caller
///   sees a `CheckpointError`) or `hang` prints `RECURRENT_IO_FAULT: hanging at <point>` on
///   stderr and blocks that thread for good, so a test can SIGKILL the process at exactly that
///   point. Points: `after-bytes=<N>` (the temporary file holds its first N bytes),
///   `before-fsync`, `before-rename`, `before-dir-fsync`.
/// - `RECURRENT_IO_TRACE=<file>`: each step (`create`, `write <bytes>`, `fsync`, `rename`,
///   `fsync-dir`, `fault`) is appended to `<file>` as one line, so a test counts the fsyncs
///   and checks their order against the rename.
///
/// The TypeScript writer (`atomicWrite` in `src/io/tfjs/artifacts.ts`) reads the same variables.
pub mod faults {
    use std::io::Write;

    /// The faults and trace of one write.
    pub struct Hooks {
        action: Option<(String, String)>,
        trace: Option<String>,
    }

    impl Hooks {
        /// The hooks for the `n`-th atomic write of this process.
        pub fn from_env(n: u64) -> Hooks {
            let trace = std::env::var("RECURRENT_IO_TRACE").ok().filter(|s| !s.is_empty());
            let action = std::env::var("RECURRENT_IO_FAULT").ok().and_then(|spec| {
                let (spec, which) = match spec.split_once('#') {
                    Some((s, k)) => (s.to_string(), k.trim().parse::<u64>().ok()),
                    None => (spec.clone(), None),
                };
                let (action, point) = spec.split_once('@')?;
                (which.is_none_or(|k| k == n)).then(|| (action.trim().to_string(), point.trim().to_string()))
            });
            Hooks { action, trace }
        }

        /// Appends one line to the trace file, if there is one.
        pub fn trace(&self, line: &str) {
            if let Some(file) = &self.trace {
                if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
                    let _ = writeln!(f, "{line}");
                }
            }
        }

        /// Injects the fault chosen for `point`, if any.
        pub fn point(&self, point: &str) -> std::io::Result<()> {
            let Some((action, at)) = &self.action else { return Ok(()) };
            if at != point {
                return Ok(());
            }
            self.trace(&format!("fault {action}@{point}"));
            match action.as_str() {
                "hang" => {
                    eprintln!("RECURRENT_IO_FAULT: hanging at {point}");
                    loop {
                        std::thread::park();
                    }
                }
                _ => Err(std::io::Error::other(format!("injected fault at {point} (RECURRENT_IO_FAULT)"))),
            }
        }

        /// `f.sync_all()`, traced as `fsync <path>` once it succeeded. The trace line comes from
        /// the call itself, so a writer that drops the fsync also drops the line the tests count.
        pub fn fsync(&self, f: &std::fs::File, path: &std::path::Path) -> std::io::Result<()> {
            f.sync_all()?;
            self.trace(&format!("fsync {}", path.display()));
            Ok(())
        }

        /// The same for the folder `d` at `path`, traced as `fsync-dir <path>`.
        pub fn fsync_dir(&self, d: &std::fs::File, path: &std::path::Path) -> std::io::Result<()> {
            d.sync_all()?;
            self.trace(&format!("fsync-dir {}", path.display()));
            Ok(())
        }

        /// `f.write_all(bytes)`, stopped at `after-bytes=N` when that fault is chosen.
        pub fn write_all(&self, f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
            let cut = self
                .action
                .as_ref()
                .and_then(|(_, p)| Some((p, p.strip_prefix("after-bytes=")?.parse::<usize>().ok()?)));
            match cut {
                Some((point, n)) => {
                    let n = n.min(bytes.len());
                    f.write_all(&bytes[..n])?;
                    self.trace(&format!("write {n}"));
                    self.point(point)
                }
                None => {
                    f.write_all(bytes)?;
                    self.trace(&format!("write {}", bytes.len()));
                    Ok(())
                }
            }
        }
    }
}

pub fn save_safetensors(path: &Path, tensors: &[(String, Tensor)], metadata: &HashMap<String, String>) -> Result<()> {
    write_atomic(path, &to_safetensors_bytes(tensors, metadata)?)
}

/// Named tensors and metadata of a safetensors file.
pub struct Loaded {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
}

/// Parses safetensors bytes. The header's size and tensor count are bounded, then its JSON,
/// dtypes, shapes and offsets are checked against the buffer (by the `safetensors` crate), and
/// the checksums (when present) against the data, all before any tensor is allocated.
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
    if header_len > MAX_HEADER_BYTES {
        return Err(ck(format!(
            "{what} declares a header of {header_len} bytes; the limit is {MAX_HEADER_BYTES} bytes (is this a safetensors file?)"
        )));
    }
    let header = &bytes[8..8 + header_len as usize];
    // A cheap count before the JSON is parsed, so that a header of a million tensors is
    // refused in milliseconds; the exact count is checked again after parsing (escaped keys).
    let approx = header.windows(14).filter(|w| w == b"\"data_offsets\"").count();
    if approx > MAX_TENSORS {
        return Err(ck(format!("{what} declares {approx} tensors; the limit is {MAX_TENSORS}")));
    }
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| ck(format!("{what} is not a valid safetensors file: {e}")))?;
    let infos = meta.tensors();
    if infos.len() > MAX_TENSORS {
        return Err(ck(format!("{what} declares {} tensors; the limit is {MAX_TENSORS}", infos.len())));
    }
    let data_start = 8 + header_len as usize;
    let mut names: Vec<&String> = infos.keys().collect();
    names.sort();
    let mut metadata = meta.metadata().clone().unwrap_or_default();
    // Checked before anything is allocated, so a corrupted file costs no more than its read.
    if let Some(list) = metadata.remove(CHECKSUM_KEY) {
        let sums: Vec<&str> = if list.is_empty() { Vec::new() } else { list.split(',').collect() };
        if sums.len() != names.len() {
            return Err(ck(format!(
                "{what} is corrupt: it lists {} checksums for {} tensors",
                sums.len(),
                names.len()
            )));
        }
        for (name, want) in names.iter().zip(sums) {
            let (a, b) = infos[*name].data_offsets;
            let got = crc32fast::hash(&bytes[data_start + a..data_start + b]);
            if u32::from_str_radix(want, 16).ok() != Some(got) || want.len() != 8 {
                return Err(ck(format!(
                    "{what} is corrupt: the data of tensor '{name}' does not match its checksum (CRC-32 {got:08x}, the file records {want})"
                )));
            }
        }
    }
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let info = infos[name];
        let shape = info.shape.clone();
        // Zero-size tensors are valid safetensors but not recurrent tensors; 0-d loads as shape [].
        if shape.contains(&0) {
            return Err(ck(format!(
                "{what}: tensor '{name}' is empty (shape {shape:?}), which recurrent does not support"
            )));
        }
        let data = &bytes[data_start + info.data_offsets.0..data_start + info.data_offsets.1];
        let op = "loadSafetensors";
        let storage = match info.dtype {
            StDtype::F32 => {
                let mut v = crate::storage::try_with_capacity(op, data.len() / 4)?;
                v.extend(data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))));
                CpuStorage::new_f32(v)
            }
            StDtype::F64 => {
                let mut v = crate::storage::try_with_capacity(op, data.len() / 8)?;
                v.extend(data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))));
                CpuStorage::new_f64(v)
            }
            StDtype::I32 => {
                let mut v = crate::storage::try_with_capacity(op, data.len() / 4)?;
                v.extend(data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4"))));
                CpuStorage::new_i32(v)
            }
            StDtype::I64 => {
                let mut v = crate::storage::try_with_capacity(op, data.len() / 8)?;
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
        let t = Tensor::from_storage(storage, &shape).map_err(|e| ck(format!("{what}: tensor '{name}': {e}")))?;
        tensors.push((name.clone(), t));
    }
    Ok(Loaded { tensors, metadata })
}

/// Reads a safetensors file: a regular file only (not a device, pipe or folder, whose reads
/// may never end), no larger than the machine's memory, read to exactly its size.
pub fn load_safetensors(path: &Path) -> Result<Loaded> {
    let what = format!("'{}'", path.display());
    let bytes = read_regular_file(path, &what, "loadSafetensors")?;
    from_safetensors_bytes(&bytes, &what)
}

/// The bytes of a regular file, its size checked before reading (see [`load_safetensors`]).
pub fn read_regular_file(path: &Path, what: &str, op: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| ck(format!("cannot read {what}: {e}")))?;
    let md = f.metadata().map_err(|e| ck(format!("cannot read {what}: {e}")))?;
    if !md.is_file() {
        let kind = if md.is_dir() { "a folder" } else { "not a regular file (a device, pipe or socket)" };
        return Err(ck(format!("cannot read {what}: it is {kind}")));
    }
    let size = md.len();
    crate::storage::check_host_bytes(op, size)?;
    let mut bytes = crate::storage::try_with_capacity(op, size as usize)?;
    // `take` bounds the read even if the file grows meanwhile.
    f.take(size).read_to_end(&mut bytes).map_err(|e| ck(format!("cannot read {what}: {e}")))?;
    Ok(bytes)
}
