//! The kernel sources (`kernels/*.cu`, embedded at build time), their `extern "C"` signatures
//! (parsed from the sources: the ABI that launches are checked against), and NVRTC
//! compilation with the full log, which the CI compile check reads for warnings.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

/// Prepended to every kernel file before compiling (helpers and conventions).
pub const COMMON: &str = include_str!("../kernels/common.cuh");

/// Every kernel file, named as in `kernels/`, mirroring `crates/core/src/ops/*.rs`.
pub const FILES: &[(&str, &str)] = &[
    ("elementwise.cu", include_str!("../kernels/elementwise.cu")),
    ("reduce.cu", include_str!("../kernels/reduce.cu")),
    ("shape.cu", include_str!("../kernels/shape.cu")),
    ("softmax.cu", include_str!("../kernels/softmax.cu")),
    ("loss.cu", include_str!("../kernels/loss.cu")),
    ("embedding.cu", include_str!("../kernels/embedding.cu")),
    ("dropout.cu", include_str!("../kernels/dropout.cu")),
    ("rnn.cu", include_str!("../kernels/rnn.cu")),
    ("lstm.cu", include_str!("../kernels/lstm.cu")),
    ("gru.cu", include_str!("../kernels/gru.cu")),
    ("optim.cu", include_str!("../kernels/optim.cu")),
    ("compare.cu", include_str!("../kernels/compare.cu")),
    ("cast.cu", include_str!("../kernels/cast.cu")),
    ("index.cu", include_str!("../kernels/index.cu")),
    ("attention.cu", include_str!("../kernels/attention.cu")),
    ("conv.cu", include_str!("../kernels/conv.cu")),
    ("pool.cu", include_str!("../kernels/pool.cu")),
    ("norm.cu", include_str!("../kernels/norm.cu")),
];

/// The text NVRTC compiles for `file`: the common prelude, then the file with its own line
/// numbers (so compiler messages point into the file).
pub fn program_source(file: &str, src: &str) -> String {
    format!("{COMMON}\n#line 1 \"{file}\"\n{src}")
}

/// Element type behind a pointer parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    I32,
}

/// A kernel parameter type, as the launch checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `T*` or `const T*`.
    Ptr { elem: Elem, mutable: bool },
    /// `int`
    I32,
    /// `long long`
    I64,
    /// `float`
    F32,
    /// `double`
    F64,
}

/// One `extern "C" __global__` kernel.
#[derive(Clone, Debug)]
pub struct Signature {
    pub name: String,
    pub file: &'static str,
    pub params: Vec<Param>,
    /// The parameters' C types as written (`const float*`), for the host emulator's wrappers.
    pub c_types: Vec<String>,
}

fn parse_param(text: &str) -> Result<(Param, String), String> {
    let t = text.trim();
    // The name is the trailing identifier; the rest is the type.
    let split =
        t.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).ok_or_else(|| format!("parameter '{t}' has no type"))?;
    let ty: String = t[..=split].split_whitespace().collect::<Vec<_>>().join(" ").replace(" *", "*");
    let param = match ty.as_str() {
        "float*" => Param::Ptr { elem: Elem::F32, mutable: true },
        "const float*" => Param::Ptr { elem: Elem::F32, mutable: false },
        "double*" => Param::Ptr { elem: Elem::F64, mutable: true },
        "const double*" => Param::Ptr { elem: Elem::F64, mutable: false },
        "int*" => Param::Ptr { elem: Elem::I32, mutable: true },
        "const int*" => Param::Ptr { elem: Elem::I32, mutable: false },
        "int" => Param::I32,
        "long long" => Param::I64,
        "float" => Param::F32,
        "double" => Param::F64,
        other => return Err(format!("parameter '{t}': type '{other}' is not one of the kernel ABI's types")),
    };
    Ok((param, ty))
}

/// Parses every `extern "C" __global__ void name(params)` in one kernel file.
pub fn parse_signatures(file: &'static str, src: &str) -> Result<Vec<Signature>, String> {
    const MARK: &str = "extern \"C\" __global__ void ";
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(pos) = rest.find(MARK) {
        rest = &rest[pos + MARK.len()..];
        let open = rest.find('(').ok_or_else(|| format!("{file}: kernel without a parameter list"))?;
        let name = rest[..open].trim().to_string();
        let close =
            rest[open..].find(')').ok_or_else(|| format!("{file}: kernel {name}: unclosed parameter list"))? + open;
        let mut params = Vec::new();
        let mut c_types = Vec::new();
        for p in rest[open + 1..close].split(',').filter(|p| !p.trim().is_empty()) {
            let (param, ty) = parse_param(p).map_err(|e| format!("{file}: kernel {name}: {e}"))?;
            params.push(param);
            c_types.push(ty);
        }
        out.push(Signature { name, file, params, c_types });
        rest = &rest[close..];
    }
    Ok(out)
}

/// Every kernel by name (parsed once). Names are unique across files.
pub fn signatures() -> &'static HashMap<String, Signature> {
    static SIGS: OnceLock<HashMap<String, Signature>> = OnceLock::new();
    SIGS.get_or_init(|| {
        let mut all = HashMap::new();
        for (file, src) in FILES {
            for sig in parse_signatures(file, src).unwrap_or_else(|e| panic!("kernel sources: {e}")) {
                if let Some(prev) = all.insert(sig.name.clone(), sig) {
                    panic!("kernel {} is defined twice ({} and another file)", prev.name, prev.file);
                }
            }
        }
        all
    })
}

/// Whether libnvrtc can be loaded (never panics).
pub fn nvrtc_present() -> bool {
    std::panic::catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// NVRTC's version (major, minor). Call only when [`nvrtc_present`].
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    let (mut major, mut minor) = (0, 0);
    let r = std::panic::catch_unwind(move || unsafe {
        let r = cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor);
        (r, major, minor)
    })
    .map_err(|_| "libnvrtc could not be loaded".to_string())?;
    if r.0 != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcVersion failed: {:?}", r.0));
    }
    Ok((r.1, r.2))
}

/// The output of one NVRTC compilation.
pub struct Compiled {
    /// PTX text (always produced).
    pub ptx: String,
    /// Machine code when compiled for a real architecture (`sm_XY`).
    pub cubin: Option<Vec<u8>>,
    /// The compiler log (warnings, and with `-Xptxas -v` the resource usage), possibly empty.
    pub log: String,
}

/// Options every compilation uses.
pub fn base_options(arch: &str) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()]
}

struct Program(cudarc::nvrtc::sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = unsafe { cudarc::nvrtc::result::destroy_program(self.0) };
    }
}

fn c_buf_to_string(v: &[c_char]) -> String {
    if v.is_empty() {
        return String::new();
    }
    unsafe { CStr::from_ptr(v.as_ptr()) }.to_string_lossy().trim_end().to_string()
}

/// Compiles one kernel file with NVRTC for `arch` (`sm_90`: PTX and machine code;
/// `compute_90`: PTX only) with extra options. Errors carry the compiler log.
/// Call only when [`nvrtc_present`] (cudarc panics on a missing library).
pub fn compile(file: &str, src: &str, arch: &str, extra: &[&str]) -> Result<Compiled, String> {
    use cudarc::nvrtc::{result, sys};
    let text = CString::new(program_source(file, src)).map_err(|_| format!("{file}: NUL byte in source"))?;
    let name = CString::new(file).expect("file name");
    let prog =
        Program(result::create_program(&text, Some(&name)).map_err(|e| format!("{file}: nvrtcCreateProgram: {e:?}"))?);
    let mut opts = base_options(arch);
    opts.extend(extra.iter().map(|s| s.to_string()));
    let compiled = unsafe { result::compile_program(prog.0, &opts) };
    let log = unsafe { result::get_program_log(prog.0) }.map(|v| c_buf_to_string(&v)).unwrap_or_default();
    if let Err(e) = compiled {
        return Err(format!("{file} ({arch}): {e:?}\n{log}"));
    }
    let ptx = unsafe { result::get_ptx(prog.0) }
        .map(|v| c_buf_to_string(&v))
        .map_err(|e| format!("{file}: nvrtcGetPTX: {e:?}"))?;
    let cubin = if arch.starts_with("sm_") {
        let mut size = 0usize;
        let r = unsafe { sys::nvrtcGetCUBINSize(prog.0, &mut size) };
        if r != sys::nvrtcResult::NVRTC_SUCCESS || size == 0 {
            None
        } else {
            let mut bin = vec![0u8; size];
            let r = unsafe { sys::nvrtcGetCUBIN(prog.0, bin.as_mut_ptr() as *mut c_char) };
            (r == sys::nvrtcResult::NVRTC_SUCCESS).then_some(bin)
        }
    } else {
        None
    };
    Ok(Compiled { ptx, cubin, log })
}

/// EIATTR_REGCOUNT in a cubin's `.nv.info` attributes: (function symbol index, registers).
const EIATTR_REGCOUNT: u8 = 0x2f;
/// `.nv.info` attribute formats: no value, byte, half-word (u16 value), sized (u16 size, data).
const EIFMT_SVAL: u8 = 0x04;

/// The (function symbol index, registers) pairs of the EIATTR_REGCOUNT attributes in one
/// `.nv.info` section: 4-byte headers (format, attribute, u16 value or size), sized values
/// followed by their bytes.
pub fn nv_info_regcounts(info: &[u8]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= info.len() {
        let (fmt, attr) = (info[at], info[at + 1]);
        let val = u16::from_le_bytes([info[at + 2], info[at + 3]]) as usize;
        at += 4;
        if fmt == EIFMT_SVAL {
            if attr == EIATTR_REGCOUNT && val >= 8 && at + 8 <= info.len() {
                let sym = u32::from_le_bytes(info[at..at + 4].try_into().unwrap());
                let regs = u32::from_le_bytes(info[at + 4..at + 8].try_into().unwrap());
                out.push((sym, regs));
            }
            at += val;
        }
    }
    out
}

/// Per-kernel resources read from a cubin (ELF): (kernel, registers, code bytes). Registers
/// come from the EIATTR_REGCOUNT attributes of the `.nv.info` sections (by function symbol),
/// which every architecture has; where a kernel has none, from its `.text.<kernel>` section's
/// `sh_info` bits 24..31 (older toolchains kept it there; sm_90 cubins from NVRTC 13 leave 0).
pub fn cubin_kernel_resources(cubin: &[u8]) -> Vec<(String, u32, u64)> {
    let rd16 = |o: usize| cubin.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let rd32 = |o: usize| cubin.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let rd64 = |o: usize| cubin.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    let mut out = Vec::new();
    // 64-bit little-endian ELF only.
    if cubin.len() < 64 || &cubin[..4] != b"\x7fELF" || cubin[4] != 2 {
        return out;
    }
    let (Some(shoff), Some(shentsize), Some(shnum), Some(shstrndx)) = (rd64(0x28), rd16(0x3a), rd16(0x3c), rd16(0x3e))
    else {
        return out;
    };
    let sh = |i: usize| shoff as usize + i * shentsize;
    let c_str = |off: usize| -> Option<String> {
        let tail = cubin.get(off..)?;
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    };
    let Some(strtab_off) = rd64(sh(shstrndx) + 0x18) else { return out };
    let mut regcounts: Vec<(u32, u32)> = Vec::new();
    let mut symbols: Vec<String> = Vec::new();
    let mut texts = Vec::new();
    for i in 0..shnum {
        let (Some(name_off), Some(ty), Some(link), Some(info), Some(off), Some(size), Some(entsize)) = (
            rd32(sh(i)),
            rd32(sh(i) + 0x04),
            rd32(sh(i) + 0x28),
            rd32(sh(i) + 0x2c),
            rd64(sh(i) + 0x18),
            rd64(sh(i) + 0x20),
            rd64(sh(i) + 0x38),
        ) else {
            continue;
        };
        let Some(name) = c_str(strtab_off as usize + name_off as usize) else { continue };
        let data = cubin.get(off as usize..(off + size) as usize);
        if let Some(kernel) = name.strip_prefix(".text.") {
            texts.push((kernel.to_string(), info >> 24, size));
        } else if name == ".nv.info" || name.starts_with(".nv.info.") {
            regcounts.extend(data.map(nv_info_regcounts).unwrap_or_default());
        } else if ty == 2 && entsize >= 24 {
            // SHT_SYMTAB: names in the string table it links to.
            let Some(names_off) = rd64(sh(link as usize) + 0x18) else { continue };
            for k in 0..(size / entsize) as usize {
                let e = off as usize + k * entsize as usize;
                let n = rd32(e).and_then(|n| c_str(names_off as usize + n as usize)).unwrap_or_default();
                symbols.push(n);
            }
        }
    }
    for (kernel, from_flags, size) in texts {
        let from_info = regcounts
            .iter()
            .filter(|(sym, _)| symbols.get(*sym as usize).is_some_and(|s| *s == kernel))
            .map(|r| r.1)
            .max();
        out.push((kernel, from_info.unwrap_or(from_flags), size));
    }
    out.sort();
    out
}

/// Names of the kernels (`.entry`) in a PTX text.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| l.split(".entry ").nth(1))
        .map(|rest| rest.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("").to_string())
        .collect()
}

/// Lines of an NVRTC log that are warnings (or errors), ignoring resource reports.
pub fn log_problems(log: &str) -> Vec<String> {
    log.lines().filter(|l| l.contains("warning") || l.contains("error")).map(|l| l.to_string()).collect()
}

/// Compiles every kernel file for `arch` and collects the kernels each defines, checking that
/// each source signature made it into the PTX. Used by the CI check and `scripts/gpu-check.sh`.
pub fn check_all(arch: &str) -> Result<Vec<(String, Compiled)>, String> {
    let sigs = signatures();
    let mut out = Vec::new();
    for (file, src) in FILES {
        let c = compile(file, src, arch, &[])?;
        let problems = log_problems(&c.log);
        if !problems.is_empty() {
            return Err(format!("{file} ({arch}) compiled with warnings:\n{}", problems.join("\n")));
        }
        let entries = ptx_entries(&c.ptx);
        for sig in sigs.values().filter(|s| s.file == *file) {
            if !entries.contains(&sig.name) {
                return Err(format!("{file} ({arch}): kernel {} is missing from the PTX", sig.name));
            }
        }
        out.push((file.to_string(), c));
    }
    Ok(out)
}

/// Kernel name → file, for loading a file's module on first use of one of its kernels.
pub fn file_of(kernel: &str) -> Option<&'static str> {
    signatures().get(kernel).map(|s| s.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse_and_are_unique() {
        let sigs = signatures();
        assert!(sigs.len() > 80, "{} kernels", sigs.len());
        let lstm = &sigs["lstm_fwd_step_f32"];
        assert_eq!(lstm.file, "lstm.cu");
        assert_eq!(lstm.params[0], Param::Ptr { elem: Elem::F32, mutable: true });
        assert_eq!(lstm.params[5], Param::Ptr { elem: Elem::F32, mutable: false });
        assert_eq!(lstm.params[8], Param::I64);
        assert_eq!(*lstm.params.last().unwrap(), Param::I32);
        assert_eq!(sigs["unary_f64"].params[4], Param::F64);
        // Every float kernel has both variants.
        for name in sigs.keys() {
            if let Some(base) = name.strip_suffix("_f32") {
                assert!(sigs.contains_key(&format!("{base}_f64")), "{name} has no f64 variant");
            }
        }
    }

    #[test]
    fn nv_info_attributes_are_walked_by_format() {
        // EIATTR_MAX_STACK_SIZE-like sized entry, an NVAL, then REGCOUNT of symbol 7 = 40.
        let mut info = vec![0x04, 0x23, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        info.extend([0x01, 0x0a, 0, 0]);
        info.extend([0x04, 0x2f, 8, 0, 7, 0, 0, 0, 40, 0, 0, 0]);
        assert_eq!(nv_info_regcounts(&info), [(7, 40)]);
        // A truncated entry ends the walk instead of reading past the section.
        assert_eq!(nv_info_regcounts(&info[..info.len() - 2]), []);
    }

    #[test]
    fn bad_parameter_types_are_rejected() {
        let err = parse_signatures("x.cu", "extern \"C\" __global__ void k(float* a, size_t n) {}").unwrap_err();
        assert!(err.contains("size_t"), "{err}");
    }
}
