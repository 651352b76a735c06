//! Safetensors checkpoints: exact round trips, atomic replacement, and clear errors on
//! truncated, corrupt and hostile files.

use recurrent_core::io::{from_safetensors_bytes, load_safetensors, save_safetensors, to_safetensors_bytes};
use recurrent_core::{DType, ErrorKind, Tensor};
use std::collections::HashMap;

fn sample() -> (Vec<(String, Tensor)>, HashMap<String, String>) {
    let tensors = vec![
        ("lstm.weight_ih_l0".to_string(), Tensor::randn(&[8, 3], DType::F32, 1).unwrap()),
        ("step".to_string(), Tensor::from_i32(vec![42], &[1]).unwrap()),
        ("exact".to_string(), Tensor::randn(&[2, 2], DType::F64, 2).unwrap()),
    ];
    let meta = HashMap::from([("config".to_string(), "{\"hiddenSize\":2}".to_string())]);
    (tensors, meta)
}

#[test]
fn round_trip_is_bit_exact_with_metadata() {
    let dir = std::env::temp_dir().join(format!("recurrent-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ck.safetensors");
    let (tensors, meta) = sample();
    save_safetensors(&path, &tensors, &meta).unwrap();
    let loaded = load_safetensors(&path).unwrap();
    assert_eq!(loaded.metadata, meta);
    for (name, t) in &tensors {
        let (_, got) = loaded.tensors.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(got.shape(), t.shape());
        assert_eq!(got.dtype(), t.dtype());
        assert_eq!(
            got.to_vec_f64().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            t.to_vec_f64().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_save_leaves_the_previous_file_intact() {
    let dir = std::env::temp_dir().join(format!("recurrent-io-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ck.safetensors");
    let (tensors, meta) = sample();
    save_safetensors(&path, &tensors, &meta).unwrap();
    let before = std::fs::read(&path).unwrap();
    // A tensor whose computation failed: the save must fail before touching the file.
    let a = Tensor::from_i32(vec![1, 2], &[2]).unwrap();
    let bad = recurrent_core::ops::embedding::embedding(&Tensor::randn(&[2, 2], DType::F32, 3).unwrap(), &a);
    let mut more = tensors.clone();
    if let Ok(t) = bad {
        more.push(("bad".into(), t));
    }
    more.push(("lstm.weight_ih_l0".into(), tensors[0].1.clone()));
    let err = save_safetensors(&path, &more, &meta).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Checkpoint);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn err_of(bytes: &[u8]) -> String {
    let e = from_safetensors_bytes(bytes, "'x.safetensors'").err().expect("must fail");
    assert_eq!(e.kind(), ErrorKind::Checkpoint, "{e}");
    e.to_string()
}

#[test]
fn truncated_corrupt_and_hostile_files_are_rejected_cleanly() {
    let (tensors, meta) = sample();
    let good = to_safetensors_bytes(&tensors, &meta).unwrap();
    assert!(err_of(&good[..5]).contains("truncated"));
    assert!(err_of(&good[..good.len() - 3]).contains("not a valid safetensors"));
    // A header length far beyond the file (a hostile 2^60): no allocation, a clear message.
    let mut hostile = good.clone();
    hostile[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let m = err_of(&hostile);
    assert!(m.contains("header claims") && m.contains("x.safetensors"), "{m}");
    // Offsets out of range.
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4000000000]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0u8; 8]);
    assert!(err_of(&file).contains("not a valid safetensors"));
    // Shape that disagrees with its byte range.
    let header = br#"{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,8]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0u8; 8]);
    assert!(err_of(&file).contains("not a valid safetensors"));
    // Garbage JSON.
    let mut file = 4u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"{{{{");
    assert!(err_of(&file).contains("not a valid safetensors"));
    // Unsupported dtype names the tensor.
    let header = br#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0u8; 4]);
    let m = err_of(&file);
    assert!(m.contains("'w'") && m.contains("BF16"), "{m}");
    let m = load_safetensors(std::path::Path::new("/nonexistent/ck.safetensors")).err().unwrap().to_string();
    assert!(m.contains("cannot read") && m.contains("/nonexistent/ck.safetensors"), "{m}");
}

/// Flips one bit of the data of the tensor named `name` in a serialised file.
fn flip_bit_in(bytes: &mut [u8], name: &str) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().to_string();
    let at = header.find(&format!("\"{name}\"")).unwrap();
    let offs = &header[at..];
    let start: usize =
        offs[offs.find("\"data_offsets\":[").unwrap() + 16..].split(',').next().unwrap().parse().unwrap();
    bytes[8 + n + start] ^= 0x10;
}

#[test]
fn every_tensor_is_checksummed_and_a_flipped_bit_is_refused_by_name() {
    let (tensors, meta) = sample();
    let good = to_safetensors_bytes(&tensors, &meta).unwrap();
    // The checksum entry is verified and not handed back as user metadata.
    assert_eq!(from_safetensors_bytes(&good, "'x'").unwrap().metadata, meta);
    for (name, _) in &tensors {
        let mut bad = good.clone();
        flip_bit_in(&mut bad, name);
        let m = err_of(&bad);
        assert!(m.contains("corrupt") && m.contains(&format!("tensor '{name}'")) && m.contains("checksum"), "{m}");
    }
}

#[test]
fn files_without_checksums_still_load() {
    // Written as other tools (and this library before checksums) write them.
    let data = [1.5f32, -2.0];
    let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = vec![(
        "w".to_string(),
        safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, vec![2], &raw).unwrap(),
    )];
    let bytes = safetensors::serialize(views, None).unwrap();
    let loaded = from_safetensors_bytes(&bytes, "'old'").unwrap();
    assert_eq!(loaded.tensors[0].1.to_vec_f32().unwrap(), data);
}

#[test]
fn absurd_headers_and_tensor_counts_are_refused_before_parsing() {
    // 200k tiny tensors: refused by count, quickly and with the limit in the message.
    let mut header = String::from("{");
    for i in 0..200_000 {
        header.push_str(&format!(
            "\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{},{}]}},",
            i * 4,
            i * 4 + 4
        ));
    }
    header.pop();
    header.push('}');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.resize(file.len() + 800_000, 0);
    let t0 = std::time::Instant::now();
    let m = err_of(&file);
    assert!(m.contains("200000 tensors") && m.contains("limit is 65536"), "{m}");
    assert!(t0.elapsed().as_secs_f64() < 2.0, "took {:?}", t0.elapsed());
    // A header larger than the limit (but within the file).
    let mut big = (17u64 << 20).to_le_bytes().to_vec();
    big.resize(8 + (17 << 20), b' ');
    let m = err_of(&big);
    assert!(m.contains("limit is 16777216 bytes"), "{m}");
}

#[test]
fn reserved_names_and_special_files_are_refused() {
    let t = vec![("__metadata__".to_string(), Tensor::from_i32(vec![1], &[1]).unwrap())];
    let m = to_safetensors_bytes(&t, &HashMap::new()).err().unwrap().to_string();
    assert!(m.contains("'__metadata__' is reserved"), "{m}");
    // A character device would be read forever; it is refused by kind, at once.
    let m = load_safetensors(std::path::Path::new("/dev/zero")).err().unwrap().to_string();
    assert!(m.contains("not a regular file") && m.contains("/dev/zero"), "{m}");
    let m = load_safetensors(&std::env::temp_dir()).err().unwrap().to_string();
    assert!(m.contains("a folder"), "{m}");
}

#[test]
fn the_same_tensors_and_metadata_give_the_same_bytes() {
    let (tensors, _) = sample();
    let meta: HashMap<String, String> = (0..20).map(|i| (format!("key{i}"), format!("v{i}"))).collect();
    let first = to_safetensors_bytes(&tensors, &meta).unwrap();
    for _ in 0..5 {
        // A new HashMap each time: its iteration order differs, the file must not.
        let again: HashMap<String, String> = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(to_safetensors_bytes(&tensors, &again).unwrap(), first);
    }
    let loaded = from_safetensors_bytes(&first, "'x'").unwrap();
    assert_eq!(loaded.metadata, meta);
    assert_eq!(loaded.tensors.len(), 3);
}
