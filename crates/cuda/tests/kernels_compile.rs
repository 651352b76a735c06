//! The CI compile check: every `kernels/*.cu` must compile with NVRTC for sm_90 (H100/H200)
//! and sm_80 (A100) without errors or warnings, define every kernel its source declares, and
//! stay within 255 registers per thread (counts read from each cubin's `.nv.info`). Prints PTX/cubin sizes and per-kernel registers.
//! Needs no GPU, only libnvrtc (`.ci/run` installs the `nvidia-cuda-nvrtc` 13.0 wheel).
//! Built where libnvrtc is not found, the tests are `#[ignore]`d (build.rs sets
//! `recurrent_skip = "nvrtc"`) and cargo reports them as ignored; a test that runs fails without
//! libnvrtc (RECURRENT_REQUIRE_NVRTC=1, set by CI, never ignores them).

use recurrent_cuda::kernels;

const ARCHS: [&str; 2] = ["sm_90", "sm_80"];

/// A test that runs needs libnvrtc (it is ignored where none was found at build time).
fn require_nvrtc() {
    assert!(
        kernels::nvrtc_present(),
        "libnvrtc was not found (install the `nvidia-cuda-nvrtc>=13.0,<13.1` wheel and put its nvidia/cu13/lib folder on LD_LIBRARY_PATH)"
    );
}

#[test]
#[cfg_attr(recurrent_skip = "nvrtc", ignore = "needs libnvrtc (the nvidia-cuda-nvrtc 13.0 wheel on LD_LIBRARY_PATH)")]
fn every_kernel_file_compiles_without_warnings() {
    require_nvrtc();
    let (major, minor) = kernels::nvrtc_version().expect("nvrtc version");
    println!("NVRTC {major}.{minor}");
    let sigs = kernels::signatures();
    let mut failures = Vec::new();
    for arch in ARCHS {
        match kernels::check_all(arch) {
            Err(e) => failures.push(e),
            Ok(files) => {
                println!(
                    "\n{arch}: {:<16} {:>8} {:>8} {:>7}  {:>5}",
                    "file", "PTX B", "cubin B", "kernels", "max regs"
                );
                for (file, c) in &files {
                    let res = c.cubin.as_deref().map(kernels::cubin_kernel_resources).unwrap_or_default();
                    let max_regs = res.iter().map(|r| r.1).max().unwrap_or(0);
                    let n_kernels = sigs.values().filter(|s| s.file == file).count();
                    println!(
                        "{arch}: {file:<16} {:>8} {:>8} {:>7}  {:>5}",
                        c.ptx.len(),
                        c.cubin.as_ref().map_or(0, |b| b.len()),
                        n_kernels,
                        max_regs
                    );
                    for (kernel, regs, code) in &res {
                        println!("    {kernel:<28} {regs:>3} registers, {code:>6} B of code");
                        // 0 would mean the count was not found: the bound would check nothing.
                        if *regs == 0 || *regs > 255 {
                            failures.push(format!("{arch} {kernel}: {regs} registers (expected 1 to 255)"));
                        }
                    }
                    if c.cubin.is_some() && res.len() != n_kernels {
                        failures.push(format!(
                            "{arch} {file}: {} kernels in the cubin, {n_kernels} in the source",
                            res.len()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "kernel compile check failed:\n{}", failures.join("\n"));
}

#[test]
#[cfg_attr(recurrent_skip = "nvrtc", ignore = "needs libnvrtc (the nvidia-cuda-nvrtc 13.0 wheel on LD_LIBRARY_PATH)")]
fn a_broken_kernel_fails_the_check() {
    // The check must catch both an error and a warning, or it guards nothing.
    require_nvrtc();
    let err = kernels::compile(
        "broken.cu",
        "extern \"C\" __global__ void k(float* x) { x[0] = undefined_thing; }",
        "sm_90",
        &[],
    )
    .err()
    .expect("a compile error");
    assert!(err.contains("undefined_thing"), "{err}");
    let warned = kernels::compile(
        "warn.cu",
        "extern \"C\" __global__ void k(float* x) { int unused_variable = 3; x[0] = 1.0f; }",
        "sm_90",
        &[],
    )
    .expect("compiles");
    assert!(
        !kernels::log_problems(&warned.log).is_empty(),
        "NVRTC gave no warning for an unused variable; log: {:?}",
        warned.log
    );
}

#[test]
#[cfg_attr(recurrent_skip = "nvrtc", ignore = "needs libnvrtc (the nvidia-cuda-nvrtc 13.0 wheel on LD_LIBRARY_PATH)")]
fn register_counts_are_read_from_the_cubin_and_follow_a_register_cap() {
    // The parser reads what the compiler did: capping registers lowers the counts it reports.
    require_nvrtc();
    let (_, src) = kernels::FILES.iter().find(|(f, _)| *f == "gru.cu").expect("gru.cu");
    for arch in ARCHS {
        let free = kernels::compile("gru.cu", src, arch, &[]).expect("compiles");
        let capped = kernels::compile("gru.cu", src, arch, &["--maxrregcount=24"]).expect("compiles");
        let free = kernels::cubin_kernel_resources(free.cubin.as_deref().expect("cubin"));
        let capped = kernels::cubin_kernel_resources(capped.cubin.as_deref().expect("cubin"));
        assert_eq!(free.len(), capped.len());
        assert!(!free.is_empty() && free.iter().all(|r| r.1 > 0), "{arch}: {free:?}");
        assert!(capped.iter().all(|r| r.1 > 0 && r.1 <= 24), "{arch}: the cap is not seen: {capped:?}");
        let max_free = free.iter().map(|r| r.1).max().unwrap();
        assert!(max_free > 24, "{arch}: no GRU kernel needs more than 24 registers uncapped? {free:?}");
        println!("{arch}: gru.cu registers uncapped max {max_free}, capped at 24: all within");
    }
}
