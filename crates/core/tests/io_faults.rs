//! The atomic writer under injected faults (`RECURRENT_IO_FAULT`, `RECURRENT_IO_TRACE`; see
//! `recurrent_core::io::faults`): a failure after N bytes, before the fsync, before the rename
//! leaves the previous file's bytes; a failure after the rename leaves the new file whole; the
//! trace shows one fsync of the file before the rename and one of the folder after it. Its own
//! test binary with one test, because the variables are process-wide.

use recurrent_core::io::{save_safetensors, write_atomic};
use recurrent_core::{DType, ErrorKind, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn set(var: &str, value: Option<&str>) {
    match value {
        Some(v) => std::env::set_var(var, v),
        None => std::env::remove_var(var),
    }
}

/// A fresh, empty folder of this process.
fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("recurrent-io-faults-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Version `v` of a checkpoint: different tensors and metadata.
fn save(path: &Path, v: u64) -> recurrent_core::Result<()> {
    let tensors = vec![("w".to_string(), Tensor::randn(&[40, 30], DType::F32, v).unwrap())];
    save_safetensors(path, &tensors, &HashMap::from([("v".to_string(), v.to_string())]))
}

#[test]
fn faults_at_every_point_of_an_atomic_write() {
    let probe = folder("probe").join("f.safetensors");
    save(&probe, 2).unwrap();
    let new_bytes = std::fs::read(&probe).unwrap();

    // Before the rename: the previous bytes survive, and the temporary file is removed.
    let cut = format!("after-bytes={}", new_bytes.len() - 1);
    for point in ["after-bytes=0", "after-bytes=37", cut.as_str(), "before-fsync", "before-rename"] {
        let dir = folder(&point.replace('=', "-"));
        let path = dir.join("f.safetensors");
        save(&path, 1).unwrap();
        let before = std::fs::read(&path).unwrap();
        set("RECURRENT_IO_FAULT", Some(&format!("fail@{point}")));
        let err = save(&path, 2).unwrap_err();
        set("RECURRENT_IO_FAULT", None);
        assert_eq!(err.kind(), ErrorKind::Checkpoint, "{point}: {err}");
        assert!(err.to_string().contains(&format!("injected fault at {point}")), "{point}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{point}: the previous bytes must survive");
        assert_eq!(files(&dir), ["f.safetensors"], "{point}: the temporary file must be removed");
        save(&path, 2).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), new_bytes, "{point}: a later write goes through");
    }

    // After the rename: an error, but the file is the whole new version.
    let dir = folder("after-rename");
    let path = dir.join("f.safetensors");
    save(&path, 1).unwrap();
    set("RECURRENT_IO_FAULT", Some("fail@before-dir-fsync"));
    assert!(save(&path, 2).is_err());
    set("RECURRENT_IO_FAULT", None);
    assert_eq!(std::fs::read(&path).unwrap(), new_bytes);
    assert_eq!(files(&dir), ["f.safetensors"]);

    // The trace: create, write everything, fsync the file, rename, fsync the folder.
    let dir = folder("trace");
    let path = dir.join("f.bin");
    let trace = dir.parent().unwrap().join("trace.txt");
    let _ = std::fs::remove_file(&trace);
    set("RECURRENT_IO_TRACE", Some(trace.to_str().unwrap()));
    write_atomic(&path, b"first version").unwrap();
    set("RECURRENT_IO_TRACE", None);
    let text = std::fs::read_to_string(&trace).unwrap();
    let steps: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(steps.len(), 5, "{text}");
    let tmp = steps[0][1];
    assert_eq!(steps[0][0], "create", "{text}");
    assert_ne!(Path::new(tmp), path, "the new bytes go to a temporary file, not over the old one");
    assert_eq!(Path::new(tmp).parent(), Some(dir.as_path()), "the temporary file is in the target's folder");
    assert_eq!(steps[1], ["write", "13"], "{text}");
    assert_eq!(steps[2], ["fsync", tmp], "one fsync of the whole file before the rename: {text}");
    assert_eq!(steps[3], ["rename", tmp, path.to_str().unwrap()], "{text}");
    assert_eq!(steps[4], ["fsync-dir", dir.to_str().unwrap()], "one fsync of the folder after the rename: {text}");
    assert_eq!(steps.iter().filter(|s| s[0] == "fsync").count(), 1, "{text}");
    assert_eq!(steps.iter().filter(|s| s[0] == "fsync-dir").count(), 1, "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), b"first version");

    // `#k` picks the k-th write of the process: the temporary name carries its number.
    let n: u64 = tmp.rsplit('-').next().unwrap().parse().unwrap();
    set("RECURRENT_IO_FAULT", Some(&format!("fail@before-rename#{}", n + 2)));
    write_atomic(&path, b"second").unwrap();
    assert!(write_atomic(&path, b"third").is_err());
    write_atomic(&path, b"fourth").unwrap();
    set("RECURRENT_IO_FAULT", None);
    assert_eq!(std::fs::read(&path).unwrap(), b"fourth");
    assert_eq!(files(&dir), ["f.bin"]);

    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}
