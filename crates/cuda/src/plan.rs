//! Backend-independent launch plumbing, shared by the CUDA backend and the host emulator used
//! in the no-GPU tests: the row-major → cuBLAS (column-major) GEMM translation with bounds
//! checks, and the packing of launch arguments checked against the kernel's signature.

use crate::kernels::{Elem, Param, Signature};
use recurrent_core::backend::{DeviceBuffer, GpuMat, KernelArg, Strides};
use recurrent_core::{DType, Error, Result};
use std::ffi::c_void;

/// One cuBLAS `gemm` call (column-major), element offsets into the three buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColGemm {
    pub transa: bool,
    pub transb: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    /// A' is the row-major B operand, B' the row-major A operand (C' = Cᵀ = Bᵀ·Aᵀ).
    pub a_off: usize,
    pub lda: i32,
    pub b_off: usize,
    pub ldb: i32,
    pub c_off: usize,
    pub ldc: i32,
    /// beta = 1 (accumulate) or 0 (C is not read).
    pub accumulate: bool,
}

fn check_operand(what: &str, m: &GpuMat, rows: usize, cols: usize) -> Result<()> {
    // The stored matrix is (rows × cols) or its transpose, row-major with leading dimension ld.
    let (sr, sc) = if m.trans { (cols, rows) } else { (rows, cols) };
    if m.ld < sc.max(1) {
        return Err(Error::internal(
            "gemm",
            format!("{what}: leading dimension {} is smaller than the {sc} columns it stores", m.ld),
        ));
    }
    let need = m.offset + (sr - 1) * m.ld + sc;
    if need > m.buf.len() {
        return Err(Error::internal(
            "gemm",
            format!(
                "{what}: a {sr}×{sc} matrix at offset {} with ld {} needs {need} elements, the buffer has {}",
                m.offset,
                m.ld,
                m.buf.len()
            ),
        ));
    }
    Ok(())
}

fn i32_of(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::internal("gemm", format!("{what} = {v} exceeds cuBLAS's 32-bit sizes")))
}

/// Translates `c[m×n] (+)= a[m×k] · b[k×n]` (row-major views) into one column-major cuBLAS
/// call, checking every operand against its buffer and the dtypes against each other.
#[allow(clippy::too_many_arguments)]
pub fn column_major(
    m: usize, n: usize, k: usize, a: &GpuMat, b: &GpuMat, c: &dyn DeviceBuffer, c_off: usize, ldc: usize,
    accumulate: bool,
) -> Result<ColGemm> {
    let dt = c.dtype();
    if a.buf.dtype() != dt || b.buf.dtype() != dt || !dt.is_float() {
        return Err(Error::internal(
            "gemm",
            format!("operands {} × {} → {}: expected one float dtype", a.buf.dtype(), b.buf.dtype(), dt),
        ));
    }
    if m == 0 || n == 0 || k == 0 {
        return Err(Error::internal("gemm", format!("empty product {m}×{n}×{k}")));
    }
    check_operand("a", a, m, k)?;
    check_operand("b", b, k, n)?;
    let cm = GpuMat { buf: c, offset: c_off, ld: ldc, trans: false };
    check_operand("c", &cm, m, n)?;
    Ok(ColGemm {
        transa: b.trans,
        transb: a.trans,
        m: i32_of(n, "n")?,
        n: i32_of(m, "m")?,
        k: i32_of(k, "k")?,
        a_off: b.offset,
        lda: i32_of(b.ld, "ldb")?,
        b_off: a.offset,
        ldb: i32_of(a.ld, "lda")?,
        c_off,
        ldc: i32_of(ldc, "ldc")?,
        accumulate,
    })
}

/// One cuBLAS strided-batched GEMM: the first product's call, and the strides of A', B', C'
/// (A' is the row-major B, as in [`ColGemm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColBatch {
    pub first: ColGemm,
    pub stride_a: i64,
    pub stride_b: i64,
    pub stride_c: i64,
    pub count: i32,
}

/// Translates `batch.count` row-major products (operand i at `offset + i·stride`) into one
/// strided-batched call, checking the first and the last product against their buffers (the
/// ones between lie between them).
#[allow(clippy::too_many_arguments)]
pub fn column_major_batched(
    m: usize, n: usize, k: usize, a: &GpuMat, b: &GpuMat, c: &dyn DeviceBuffer, c_off: usize, ldc: usize,
    accumulate: bool, batch: Strides,
) -> Result<ColBatch> {
    if batch.count == 0 {
        return Err(Error::internal("gemm", "an empty batch"));
    }
    let first = column_major(m, n, k, a, b, c, c_off, ldc, accumulate)?;
    let last = batch.count - 1;
    let (al, bl) =
        (GpuMat { offset: a.offset + last * batch.a, ..*a }, GpuMat { offset: b.offset + last * batch.b, ..*b });
    column_major(m, n, k, &al, &bl, c, c_off + last * batch.c, ldc, accumulate)?;
    let i64_of =
        |v: usize| i64::try_from(v).map_err(|_| Error::internal("gemm", format!("stride {v} exceeds 64 bits")));
    Ok(ColBatch {
        first,
        stride_a: i64_of(batch.b)?,
        stride_b: i64_of(batch.a)?,
        stride_c: i64_of(batch.c)?,
        count: i32_of(batch.count, "the batch")?,
    })
}

/// Reference strided-batched GEMM with cuBLAS's semantics (used by the host emulator).
///
/// # Safety
/// The pointers must cover what `g` addresses (as [`column_major_batched`] checked).
pub unsafe fn reference_gemm_batched<T>(g: &ColBatch, a: *const T, b: *const T, c: *mut T)
where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    for i in 0..g.count as isize {
        reference_gemm(
            &g.first,
            a.offset(i * g.stride_a as isize),
            b.offset(i * g.stride_b as isize),
            c.offset(i * g.stride_c as isize),
        );
    }
}

/// Reference column-major GEMM with cuBLAS's semantics (used by the host emulator).
///
/// # Safety
/// The pointers must cover what `g` addresses (as [`column_major`] checked).
pub unsafe fn reference_gemm<T>(g: &ColGemm, a: *const T, b: *const T, c: *mut T)
where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    let (lda, ldb, ldc) = (g.lda as usize, g.ldb as usize, g.ldc as usize);
    for j in 0..n {
        for i in 0..m {
            let mut acc = T::default();
            for p in 0..k {
                let av = if g.transa { *a.add(p + i * lda) } else { *a.add(i + p * lda) };
                let bv = if g.transb { *b.add(j + p * ldb) } else { *b.add(p + j * ldb) };
                acc = acc + av * bv;
            }
            let cp = c.add(i + j * ldc);
            *cp = if g.accumulate { *cp + acc } else { acc };
        }
    }
}

/// Kernel arguments laid out for `cuLaunchKernel`: one 8-byte slot per argument and an array
/// of pointers to the slots.
pub struct Packed {
    slots: Vec<u64>,
}

impl Packed {
    /// Pointers to each argument's value, as `kernelParams` wants them. Valid while `self` is.
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        self.slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect()
    }
}

fn elem_of(dt: DType) -> Elem {
    match dt {
        DType::F32 => Elem::F32,
        DType::F64 => Elem::F64,
        DType::I32 => Elem::I32,
    }
}

/// Checks `args` against `sig` (count, kinds, pointer element types, offsets inside their
/// buffers) and packs them; `addr(buf, offset)` gives a buffer element's device address.
pub fn pack(
    sig: &Signature, args: &[KernelArg], addr: impl Fn(&dyn DeviceBuffer, usize) -> Result<u64>,
) -> Result<Packed> {
    let bad = |msg: String| Error::internal(&sig.name, format!("launch does not match kernels/{}: {msg}", sig.file));
    if args.len() != sig.params.len() {
        return Err(bad(format!("{} arguments for {} parameters", args.len(), sig.params.len())));
    }
    let mut slots = Vec::with_capacity(args.len());
    for (i, (arg, param)) in args.iter().zip(&sig.params).enumerate() {
        let slot = match (arg, param) {
            (KernelArg::Buf(b, off), Param::Ptr { elem, .. }) => {
                if elem_of(b.dtype()) != *elem {
                    return Err(bad(format!(
                        "argument {i} ({}) is a {} buffer for a {elem:?} pointer",
                        sig.c_types[i],
                        b.dtype()
                    )));
                }
                if *off > b.len() {
                    return Err(bad(format!("argument {i}: offset {off} past the end of a buffer of {}", b.len())));
                }
                addr(*b, *off)?
            }
            (KernelArg::I32(v), Param::I32) => *v as u32 as u64,
            (KernelArg::I64(v), Param::I64) => *v as u64,
            (KernelArg::F32(v), Param::F32) => v.to_bits() as u64,
            (KernelArg::F64(v), Param::F64) => v.to_bits(),
            (arg, p) => {
                let kind = match arg {
                    KernelArg::Buf(..) => "a buffer",
                    KernelArg::I32(_) => "an i32",
                    KernelArg::I64(_) => "an i64",
                    KernelArg::F32(_) => "an f32",
                    KernelArg::F64(_) => "an f64",
                };
                return Err(bad(format!("argument {i} is {kind} for parameter {p:?} ({})", sig.c_types[i])));
            }
        };
        slots.push(slot);
    }
    Ok(Packed { slots })
}

/// Blocks for a launch of `threads` threads (the convention of `kernels/common.cuh`).
pub const BLOCK: u32 = recurrent_core::launch::BLOCK as u32;

pub fn grid_for(threads: usize) -> Result<u32> {
    let blocks = threads.div_ceil(BLOCK as usize);
    u32::try_from(blocks)
        .ok()
        .filter(|&b| b < (1u32 << 31))
        .ok_or_else(|| Error::internal("launch", format!("{threads} threads exceed the grid limit")))
}
