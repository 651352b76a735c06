//! Decides, when the tests are built, which requirement-bound tests cargo reports as ignored:
//! `cfg(recurrent_skip = "gpu" | "nvrtc" | "emulator")` is set for each requirement that this
//! machine lacks, and the tests carry `#[cfg_attr(recurrent_skip = "...", ignore = "...")]`. So
//! `cargo test` lists them as ignored, with the reason, instead of passing them vacuously.
//!
//! `RECURRENT_REQUIRE_CUDA=1`, `RECURRENT_REQUIRE_NVRTC=1` and `RECURRENT_REQUIRE_EMULATOR=1`
//! never skip: the tests then run and fail on a machine without the requirement. A binary built
//! here and run elsewhere (the GPU bundle) runs its ignored tests with `--include-ignored`, and
//! each test still checks its requirement at run time and fails without it.

use std::path::Path;
use std::process::Command;

fn required(var: &str) -> bool {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// A CUDA device is visible to the driver (the NVIDIA kernel module lists it).
fn gpu_visible() -> bool {
    std::fs::read_dir("/proc/driver/nvidia/gpus").is_ok_and(|mut d| d.next().is_some())
}

/// libnvrtc is where the dynamic loader looks: `RECURRENT_CUDA_LIB_DIR`, `LD_LIBRARY_PATH`, or
/// the loader's cache.
fn nvrtc_visible() -> bool {
    println!("cargo:rerun-if-env-changed=RECURRENT_CUDA_LIB_DIR");
    println!("cargo:rerun-if-env-changed=LD_LIBRARY_PATH");
    let mut dirs: Vec<String> = Vec::new();
    for var in ["RECURRENT_CUDA_LIB_DIR", "LD_LIBRARY_PATH"] {
        if let Ok(v) = std::env::var(var) {
            dirs.extend(v.split(':').filter(|d| !d.is_empty()).map(String::from));
        }
    }
    let in_dirs = dirs.iter().any(|d| {
        std::fs::read_dir(Path::new(d))
            .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libnvrtc.so")))
    });
    in_dirs
        || Command::new("ldconfig")
            .arg("-p")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libnvrtc.so"))
}

/// The C++ compiler the kernel emulator builds with (`$CXX`, else `c++`) runs.
fn cxx_visible() -> bool {
    println!("cargo:rerun-if-env-changed=CXX");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    Command::new(cxx).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-check-cfg=cfg(recurrent_skip, values(\"gpu\", \"nvrtc\", \"emulator\"))");
    // The emulator stands in for a GPU where asked to (RECURRENT_CUDA_EMULATOR=1).
    let (require_cuda, emulated) = (required("RECURRENT_REQUIRE_CUDA"), required("RECURRENT_CUDA_EMULATOR"));
    let gpu = require_cuda || emulated || gpu_visible();
    let (require_nvrtc, nvrtc_here) = (required("RECURRENT_REQUIRE_NVRTC"), nvrtc_visible());
    let (require_emulator, cxx_here) = (required("RECURRENT_REQUIRE_EMULATOR"), cxx_visible());
    let (nvrtc, emulator) = (require_nvrtc || nvrtc_here, require_emulator || cxx_here);
    for (name, present) in [("gpu", gpu), ("nvrtc", nvrtc), ("emulator", emulator)] {
        if !present {
            println!("cargo:rustc-cfg=recurrent_skip=\"{name}\"");
        }
    }
}
