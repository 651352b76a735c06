//! The core's kernel table (`recurrent_core::launch::kernels`) against the kernel sources, with
//! no GPU: every listed kernel exists in its `kernels/*.cu` file with exactly the listed
//! arguments for each dtype, the sources define no kernel that the table lacks, and no op in
//! `crates/core/src` launches a kernel by a name of its own (`GpuBackend::launch` is called in
//! one place, `Kernel::launch`). The last test feeds the checks a misspelled kernel, a changed
//! argument and a raw launch, so that they are known to fail when they should.

use recurrent_core::launch::kernels::{Arg, Kernel, ALL};
use recurrent_core::DType;
use recurrent_cuda::kernels::{parse_signatures, signatures, Elem, Param, Signature, FILES};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The one file allowed to call `GpuBackend::launch` directly, relative to `crates/core/src`.
const RAW_LAUNCH_HOME: &str = "launch/kernels.rs";

/// The C parameter an argument kind stands for in the variant for `dt` (None: untyped kernel).
fn param_of(arg: Arg, dt: Option<DType>) -> Result<Param, String> {
    let elem = |dt: DType| match dt {
        DType::F32 => Elem::F32,
        DType::F64 => Elem::F64,
        DType::I32 => Elem::I32,
    };
    let typed = |mutable: bool| match dt {
        Some(dt) => Ok(Param::Ptr { elem: elem(dt), mutable }),
        None => Err(format!("{arg:?} (a T pointer) in an untyped kernel")),
    };
    Ok(match arg {
        Arg::Out => typed(true)?,
        Arg::In => typed(false)?,
        Arg::OutI32 => Param::Ptr { elem: Elem::I32, mutable: true },
        Arg::InI32 => Param::Ptr { elem: Elem::I32, mutable: false },
        Arg::OutF64 => Param::Ptr { elem: Elem::F64, mutable: true },
        Arg::InF64 => Param::Ptr { elem: Elem::F64, mutable: false },
        Arg::I32 => Param::I32,
        Arg::I64 => Param::I64,
        Arg::F64 => Param::F64,
    })
}

/// Every disagreement between the table and the parsed sources, one line each.
fn table_problems(table: &[&Kernel], sigs: &HashMap<String, Signature>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = Vec::new();
    for kernel in table {
        for (dt, name) in kernel.symbols() {
            listed.push(name);
            let Some(sig) = sigs.get(name) else {
                problems.push(format!("{name}: in the table ({}), not in the sources", kernel.file()));
                continue;
            };
            if sig.file != kernel.file() {
                problems.push(format!("{name}: the table says {}, the source is {}", kernel.file(), sig.file));
            }
            let want: Result<Vec<Param>, String> = kernel.args().map(|a| param_of(a, dt)).collect();
            match want {
                Err(e) => problems.push(format!("{name}: {e}")),
                Ok(want) if want != sig.params => problems.push(format!(
                    "{name}: the table's arguments {:?} are not the source's {:?} ({})",
                    kernel.args().collect::<Vec<_>>(),
                    sig.c_types,
                    sig.file
                )),
                Ok(_) => {}
            }
        }
    }
    let mut unlisted: Vec<&String> = sigs.keys().filter(|name| !listed.contains(&name.as_str())).collect();
    unlisted.sort();
    for name in unlisted {
        problems.push(format!("{name}: defined in {}, missing from the table", sigs[name].file));
    }
    problems
}

/// The number of arguments of the call whose parenthesis opens at `open` (string and char
/// literals skipped; a trailing comma does not count).
fn call_arity(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut args, mut seen) = (0usize, 0usize, false);
    let mut i = open;
    while i < bytes.len() {
        let c = bytes[i] as char;
        match c {
            '"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                seen = true;
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > 1 {
                    seen = true;
                }
            }
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return args + seen as usize;
                }
            }
            ',' if depth == 1 => {
                args += seen as usize;
                seen = false;
            }
            c if !c.is_whitespace() => seen = true,
            _ => {}
        }
        i += 1;
    }
    args
}

/// Calls of `GpuBackend::launch` (method calls with three arguments: name, threads, args; a
/// table launch `Kernel::launch` takes four) outside [`RAW_LAUNCH_HOME`], as `file:line`.
fn raw_launches(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        // Line comments out, line numbers kept.
        let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let mut raw_here = 0;
        for (pos, _) in code.match_indices(".launch(") {
            let open = pos + ".launch".len();
            if call_arity(&code, open) == 3 {
                raw_here += 1;
                if path != RAW_LAUNCH_HOME {
                    let line = code[..pos].matches('\n').count() + 1;
                    found.push(format!("{path}:{line}: GpuBackend::launch called directly"));
                }
            }
        }
        if code.contains("GpuBackend::launch") {
            found.push(format!("{path}: GpuBackend::launch called as a path"));
        }
        if path == RAW_LAUNCH_HOME && raw_here != 1 {
            found.push(format!("{path}: {raw_here} direct launches, expected exactly the one in Kernel::launch"));
        }
    }
    found
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("core sources").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).expect("readable source")));
        }
    }
}

fn core_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let mut files = Vec::new();
    rust_files(&root, &root, &mut files);
    assert!(files.len() > 20, "found only {} files under {}", files.len(), root.display());
    files
}

/// The sources parsed after replacing `from` by `to` in `file`.
fn signatures_with(file: &str, from: &str, to: &str) -> HashMap<String, Signature> {
    let mut all = HashMap::new();
    for (f, src) in FILES {
        let text = if *f == file {
            assert!(src.contains(from), "{file} has no '{from}'");
            src.replacen(from, to, 1)
        } else {
            src.to_string()
        };
        for sig in parse_signatures(f, &text).expect("parses") {
            all.insert(sig.name.clone(), sig);
        }
    }
    all
}

#[test]
fn every_table_entry_matches_the_sources_and_every_source_kernel_is_listed() {
    let problems = table_problems(ALL, signatures());
    assert!(problems.is_empty(), "kernel table and kernels/*.cu disagree:\n{}", problems.join("\n"));
    let variants: usize = ALL.iter().map(|k| k.symbols().len()).sum();
    println!("{} kernels in the table, {variants} exported names, all in the sources", ALL.len());
    assert_eq!(variants, signatures().len());
}

#[test]
fn ops_launch_kernels_only_through_the_table() {
    let problems = raw_launches(&core_sources());
    assert!(problems.is_empty(), "launches that bypass the kernel table:\n{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_a_misspelled_kernel_a_changed_argument_and_a_raw_launch() {
    // A kernel renamed in its source: the table's name is missing, the new one unlisted.
    let sigs = signatures_with("lstm.cu", "void lstm_fwd_step_f32(", "void lstm_fwd_stp_f32(");
    let p = table_problems(ALL, &sigs).join("\n");
    assert!(p.contains("lstm_fwd_step_f32: in the table (lstm.cu), not in the sources"), "{p}");
    assert!(p.contains("lstm_fwd_stp_f32: defined in lstm.cu, missing from the table"), "{p}");

    // One argument's type changed (int → long long) in one variant only.
    let sigs = signatures_with(
        "gru.cu",
        "gru_bwd_step_f64(double* dh, double* dg_s, double* dxp_s, const double* ws_s, const double* hprev_s, const double* dy, int has_dy",
        "gru_bwd_step_f64(double* dh, double* dg_s, double* dxp_s, const double* ws_s, const double* hprev_s, const double* dy, long long has_dy",
    );
    let p = table_problems(ALL, &sigs);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("gru_bwd_step_f64: the table's arguments") && p[0].contains("long long"), "{p:?}");

    // A pointer's constness changed.
    let sigs = signatures_with("shape.cu", "fill_i32(int* out", "fill_i32(const int* out");
    let p = table_problems(ALL, &sigs);
    assert!(p.len() == 1 && p[0].starts_with("fill_i32:"), "{p:?}");

    // A launch by name outside the table, and the table's own forms that are fine.
    let files = vec![
        (
            "ops/new_op.rs".to_string(),
            "fn gpu(be: &dyn GpuBackend) {\n    k::COPY.launch(\n        be,\n        dt,\n        n,\n        &[at(a, 0), buf(b), int(n)],\n    )?;\n    kernel.launch(be, dt, n, &[buf(a), int(f(1, 2))])?;\n    // be.launch(\"in_a_comment\", 1, &[]);\n    be.launch(&format!(\"new_kernel_{}\", \"f32\"), n, &[buf(a), int(n)])?;\n}\n"
                .to_string(),
        ),
        (RAW_LAUNCH_HOME.to_string(), "fn launch() { be.launch(name, threads, args) }".to_string()),
    ];
    assert_eq!(raw_launches(&files), ["ops/new_op.rs:10: GpuBackend::launch called directly"]);
    // Kernel::launch itself must keep its one direct call.
    let files = vec![(RAW_LAUNCH_HOME.to_string(), "fn launch() {}".to_string())];
    assert_eq!(raw_launches(&files).len(), 1);
}
