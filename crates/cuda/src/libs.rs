//! Which CUDA libraries this process uses, and from where: NVRTC and cuBLAS (with cuBLASLt,
//! which cuBLAS loads itself) should come from one installation. cudarc loads each library by
//! name on first use, so a toolkit `libcublas.so` could otherwise pair with a wheel's
//! `libcublasLt.so.13` of another minor version. Two defences:
//! - `RECURRENT_CUDA_LIB_DIR=<dir>`: the libraries in that one folder are loaded (by absolute
//!   path, globally) before cudarc looks, so its later loads by soname find them;
//!   `scripts/gpu-check.sh` picks that folder and also puts it first on `LD_LIBRARY_PATH`.
//! - after loading, the mapped files are read from `/proc/self/maps`: two copies of a library,
//!   or cuBLAS and cuBLASLt from different folders, make CUDA unavailable with a reason that
//!   names the files, instead of failing later in a GEMM.
//!
//! [`report`] gives the paths and versions (NVRTC, cuBLAS, driver) for logs and `cudaDevices()`.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

/// The libraries loaded for CUDA, with their versions. Every field is None when unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryReport {
    /// `cuDriverGetVersion`, e.g. 13000 for CUDA 13.0.
    pub driver_version: Option<i32>,
    /// `nvrtcVersion` as (major, minor).
    pub nvrtc_version: Option<(i32, i32)>,
    /// cuBLAS's version as `cublasGetVersion` gives it (major·10000 + minor·100 + patch), from
    /// `cublasGetProperty` (which needs no handle).
    pub cublas_version: Option<i32>,
    pub driver_path: Option<String>,
    pub nvrtc_path: Option<String>,
    pub cublas_path: Option<String>,
    pub cublas_lt_path: Option<String>,
    /// The folder asked for with `RECURRENT_CUDA_LIB_DIR`, if any.
    pub lib_dir: Option<String>,
}

impl LibraryReport {
    /// One line per library, for logs.
    pub fn lines(&self) -> Vec<String> {
        let p = |o: &Option<String>| o.clone().unwrap_or_else(|| "not loaded".into());
        let nv = self.nvrtc_version.map(|(a, b)| format!("{a}.{b}")).unwrap_or_else(|| "?".into());
        let cb = self.cublas_version.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        let dv = self.driver_version.map(|v| format!("{v} (CUDA {}.{})", v / 1000, (v % 1000) / 10));
        vec![
            format!("driver: {} version {}", p(&self.driver_path), dv.unwrap_or_else(|| "?".into())),
            format!("nvrtc: {} nvrtcVersion {nv}", p(&self.nvrtc_path)),
            format!("cublas: {} cublasGetVersion {cb}", p(&self.cublas_path)),
            format!("cublasLt: {}", p(&self.cublas_lt_path)),
            format!("RECURRENT_CUDA_LIB_DIR: {}", self.lib_dir.clone().unwrap_or_else(|| "(unset)".into())),
        ]
    }
}

/// Shared-object files mapped into this process whose file name starts with `prefix` followed
/// by `.so` (e.g. `libcublas` matches `libcublas.so.13` but not `libcublasLt.so.13`).
pub fn mapped(maps: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| {
            Path::new(path)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(".so")))
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn maps() -> String {
    std::fs::read_to_string("/proc/self/maps").unwrap_or_default()
}

fn folder(path: &str) -> PathBuf {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The mixing problems in a maps text: a library mapped from two files, or cuBLAS and cuBLASLt
/// from different folders. Empty when the libraries are consistent.
pub fn mixing_problems(maps: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for lib in ["libnvrtc", "libcublas", "libcublasLt"] {
        let files = mapped(maps, lib);
        // Distinct files, not distinct names of one file (a symlinked folder maps as its target).
        let mut real: Vec<PathBuf> =
            files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| PathBuf::from(f))).collect();
        real.sort();
        real.dedup();
        if real.len() > 1 {
            problems.push(format!("{lib} is loaded twice ({})", files.join(" and ")));
        }
    }
    if let (Some(b), Some(lt)) = (mapped(maps, "libcublas").first(), mapped(maps, "libcublasLt").first()) {
        if folder(b) != folder(lt) {
            problems.push(format!("libcublas ({b}) and libcublasLt ({lt}) come from different installations"));
        }
    }
    problems
}

/// Loads the libraries of `RECURRENT_CUDA_LIB_DIR` (if set) globally, before cudarc looks for
/// them by name. Runs once; failures are left for the probe to report.
pub(crate) fn preload() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(dir) = std::env::var_os("RECURRENT_CUDA_LIB_DIR") else { return };
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        // cuBLASLt before cuBLAS, which needs it; the newest versioned name of each.
        for lib in ["libnvrtc.so.", "libcublasLt.so.", "libcublas.so."] {
            let pick = files
                .iter()
                .filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(lib)))
                .min_by_key(|f| f.as_os_str().len());
            if let Some(path) = pick {
                load_global(path);
            }
        }
    });
}

/// Opens `path` with global symbols, so that cudarc's later load by soname finds it.
#[cfg(unix)]
fn load_global(path: &Path) {
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
    if let Ok(l) = unsafe { libloading::os::unix::Library::open(Some(path), flags) } {
        // Kept for the life of the process, as cudarc keeps its own handles.
        std::mem::forget(l);
    }
}

/// Elsewhere (the Windows addon) nothing is preloaded: the names [`preload`] looks for are
/// Linux sonames, which no file of a Windows CUDA installation matches.
#[cfg(not(unix))]
fn load_global(_path: &Path) {}

/// Checks the mapped libraries for mixing (see [`mixing_problems`]); Err names the files.
pub(crate) fn check_consistent() -> Result<(), String> {
    let problems = mixing_problems(&maps());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "inconsistent CUDA libraries: {}; put one installation's folder first on LD_LIBRARY_PATH or set RECURRENT_CUDA_LIB_DIR to it",
            problems.join("; ")
        ))
    }
}

/// Loads NVRTC, cuBLAS and the driver (when present) and reports their files and versions.
/// Never panics; safe without CUDA (then every field is None).
pub fn report() -> LibraryReport {
    preload();
    let mut r = LibraryReport { lib_dir: std::env::var("RECURRENT_CUDA_LIB_DIR").ok(), ..Default::default() };
    r.driver_version = catch_unwind(|| {
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return None;
        }
        let mut v = 0;
        let ok =
            unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) } == cudarc::driver::sys::CUresult::CUDA_SUCCESS;
        ok.then_some(v)
    })
    .ok()
    .flatten();
    if crate::kernels::nvrtc_present() {
        r.nvrtc_version = crate::kernels::nvrtc_version().ok();
    }
    r.cublas_version = catch_unwind(|| {
        use cudarc::cublas::sys::{cublasGetProperty, cublasStatus_t, libraryPropertyType};
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return None;
        }
        let mut parts = [0i32; 3];
        for (i, t) in
            [libraryPropertyType::MAJOR_VERSION, libraryPropertyType::MINOR_VERSION, libraryPropertyType::PATCH_LEVEL]
                .into_iter()
                .enumerate()
        {
            if unsafe { cublasGetProperty(t, &mut parts[i]) } != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                return None;
            }
        }
        Some(parts[0] * 10000 + parts[1] * 100 + parts[2])
    })
    .ok()
    .flatten();
    let m = maps();
    let first = |lib: &str| mapped(&m, lib).into_iter().next();
    r.driver_path = first("libcuda");
    r.nvrtc_path = first("libnvrtc");
    r.cublas_path = first("libcublas");
    r.cublas_lt_path = first("libcublasLt");
    r
}

/// The report, computed once per process.
pub fn cached_report() -> &'static LibraryReport {
    static REPORT: std::sync::OnceLock<LibraryReport> = std::sync::OnceLock::new();
    REPORT.get_or_init(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
7f00-7f01 r-xp 00000000 08:01 11 /usr/local/cuda/lib64/libcublas.so.13.0.2
7f01-7f02 r-xp 00000000 08:01 12 /opt/wheels/nvidia/cu13/lib/libcublasLt.so.13
7f02-7f03 r-xp 00000000 08:01 13 /opt/wheels/nvidia/cu13/lib/libnvrtc.so.13
7f03-7f04 r-xp 00000000 08:01 14 /usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06
7f04-7f05 rw-p 00000000 00:00 0
";

    #[test]
    fn maps_are_parsed_by_library_name() {
        assert_eq!(mapped(MAPS, "libcublas"), ["/usr/local/cuda/lib64/libcublas.so.13.0.2"]);
        assert_eq!(mapped(MAPS, "libcublasLt"), ["/opt/wheels/nvidia/cu13/lib/libcublasLt.so.13"]);
        assert_eq!(mapped(MAPS, "libcuda"), ["/usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06"]);
        assert!(mapped(MAPS, "libcudart").is_empty());
    }

    #[test]
    fn a_toolkit_cublas_with_a_wheel_cublaslt_is_refused() {
        let p = mixing_problems(MAPS);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("/usr/local/cuda/lib64/libcublas.so.13.0.2") && p[0].contains("different"), "{}", p[0]);
        let one_place = MAPS.replace("/usr/local/cuda/lib64/", "/opt/wheels/nvidia/cu13/lib/");
        assert!(mixing_problems(&one_place).is_empty());
        let twice = format!("{one_place}7f05-7f06 r-xp 0 08:01 15 /usr/local/cuda/lib64/libnvrtc.so.13.0.88\n");
        assert!(mixing_problems(&twice)[0].contains("libnvrtc is loaded twice"));
    }

    #[test]
    fn the_report_never_panics_without_cuda() {
        let r = report();
        let lines = r.lines();
        assert_eq!(lines.len(), 5);
        assert!(lines[1].starts_with("nvrtc: "), "{lines:?}");
        eprintln!("{}", lines.join("\n"));
    }
}
