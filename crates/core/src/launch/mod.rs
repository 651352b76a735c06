//! Launch plumbing shared by the ops' device paths (`Op::gpu`); not an op family and not a
//! backend (the CUDA backend is `crates/cuda`, behind [`GpuBackend`]). Here: the table of kernels
//! ([`kernels`]), launch-argument shorthands, and the device routines that several op families
//! use (copies, strided gathers, fills, broadcasting, reductions, index checks).
//!
//! Launch convention (the CUDA backend's): blocks of [`BLOCK`] threads, `ceil(threads / BLOCK)`
//! blocks. Kernels that give one block to each row are launched with `rows × BLOCK` threads.

pub mod kernels;

use crate::backend::{DeviceBuffer, GpuBackend, GpuMat, KernelArg};
use crate::error::{Error, Result};
use crate::storage::{CpuStorage, DType};
use kernels as k;
use std::sync::{Arc, Mutex, OnceLock};

/// A device buffer as ops hold it.
pub(crate) type Buf = Arc<dyn DeviceBuffer>;

/// Threads per block of the CUDA backend's launches (`RC_BLOCK` in `kernels/common.cuh`).
pub const BLOCK: usize = 256;

/// Most dimensions the strided kernels (gather, broadcast) take after coalescing.
const MAX_DIMS: usize = 6;
/// Outputs per block of the tiled reduction (`RC_TILE_W` in `kernels/reduce.cu`).
const TILE_W: usize = 32;
/// Most kept and reduced dimensions the reduction kernels take after coalescing.
const MAX_RED_DIMS: usize = 4;

/// Checks that a float kernel exists for `dt`.
pub(crate) fn float_only(op: &str, dt: DType) -> Result<()> {
    if dt.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(op, "float32 or float64", dt))
    }
}

pub(crate) fn buf(b: &dyn DeviceBuffer) -> KernelArg<'_> {
    KernelArg::Buf(b, 0)
}
pub(crate) fn at(b: &dyn DeviceBuffer, offset: usize) -> KernelArg<'_> {
    KernelArg::Buf(b, offset)
}
pub(crate) fn int(v: usize) -> KernelArg<'static> {
    KernelArg::I64(v as i64)
}
pub(crate) fn flag(v: bool) -> KernelArg<'static> {
    KernelArg::I32(v as i32)
}
pub(crate) fn real(v: f64) -> KernelArg<'static> {
    KernelArg::F64(v)
}

/// Row-major view of `buf[offset..]` with leading dimension `ld`.
pub(crate) fn mat_n(b: &dyn DeviceBuffer, offset: usize, ld: usize) -> GpuMat<'_> {
    GpuMat { buf: b, offset, ld, trans: false }
}
/// The transpose of the row-major matrix stored at `buf[offset..]` with leading dimension `ld`.
pub(crate) fn mat_t(b: &dyn DeviceBuffer, offset: usize, ld: usize) -> GpuMat<'_> {
    GpuMat { buf: b, offset, ld, trans: true }
}

/// Widest row that gets one warp instead of one block in the row kernels (softmax, cross
/// entropy): below this, most of a 256-thread block would idle.
const WARP_ROW_MAX: usize = 512;
/// Threads per warp (`RC_WARP` in `kernels/common.cuh`).
const WARP: usize = 32;

/// The launch of a row kernel over `rows` rows of `n` elements: (threads, the kernel's `warp`
/// flag). Narrow rows get one warp each, long rows a block each.
pub(crate) fn rows_launch(rows: usize, n: usize) -> (usize, KernelArg<'static>) {
    if n <= WARP_ROW_MAX {
        (rows * WARP, flag(true))
    } else {
        (rows * BLOCK, flag(false))
    }
}

/// A new buffer holding a copy of `src`.
pub(crate) fn copy(be: &dyn GpuBackend, src: &dyn DeviceBuffer) -> Result<Buf> {
    let out = be.alloc(src.dtype(), src.len())?;
    copy_into(be, &*out, 0, src, 0, src.len())?;
    Ok(out)
}

/// `dst[dst_off..][..n] = src[src_off..][..n]`.
pub(crate) fn copy_into(
    be: &dyn GpuBackend, dst: &dyn DeviceBuffer, dst_off: usize, src: &dyn DeviceBuffer, src_off: usize, n: usize,
) -> Result<()> {
    k::COPY.launch(be, src.dtype(), n, &[at(dst, dst_off), at(src, src_off), int(n)])
}

/// Copies a `rows × cols` block between two row-major matrices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy2d(
    be: &dyn GpuBackend, dst: &dyn DeviceBuffer, dst_off: usize, dst_ld: usize, src: &dyn DeviceBuffer, src_off: usize,
    src_ld: usize, rows: usize, cols: usize,
) -> Result<()> {
    k::COPY2D.launch(
        be,
        src.dtype(),
        rows * cols,
        &[at(dst, dst_off), int(dst_ld), at(src, src_off), int(src_ld), int(rows), int(cols)],
    )
}

/// Sets `n` elements of `dst` to `v` (converted to the buffer's dtype).
pub(crate) fn fill(be: &dyn GpuBackend, dst: &dyn DeviceBuffer, n: usize, v: f64) -> Result<()> {
    k::FILL.launch(be, dst.dtype(), n, &[buf(dst), int(n), real(v)])
}

/// Merges adjacent dimensions that one stride per operand can describe, drops size-1
/// dimensions, and pads to [`MAX_DIMS`] (outer dimensions of size 1). `strides[k]` are the
/// operands' strides over `dims`.
fn coalesce_strided(op: &str, dims: &[usize], strides: &[Vec<usize>]) -> Result<(Vec<usize>, Vec<Vec<usize>>)> {
    let mut d: Vec<usize> = Vec::new();
    let mut s: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for (i, &size) in dims.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable =
            !d.is_empty() && strides.iter().enumerate().all(|(k, st)| s[k].last().copied() == Some(st[i] * size));
        if mergeable {
            *d.last_mut().expect("non-empty") *= size;
            for (k, st) in strides.iter().enumerate() {
                *s[k].last_mut().expect("non-empty") = st[i];
            }
        } else {
            d.push(size);
            for (k, st) in strides.iter().enumerate() {
                s[k].push(st[i]);
            }
        }
    }
    if d.len() > MAX_DIMS {
        return Err(Error::internal(
            op,
            format!("CUDA strided kernels take at most {MAX_DIMS} dimensions after merging, got {}", d.len()),
        ));
    }
    while d.len() < MAX_DIMS {
        d.insert(0, 1);
        for sk in s.iter_mut() {
            sk.insert(0, 0);
        }
    }
    Ok((d, s))
}

/// Row-major strides of `shape`.
pub(crate) fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1];
    }
    st
}

/// Strides of `shape` seen through broadcasting to `out` (0 on broadcast dimensions).
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let pad = out.len() - shape.len();
    let own = strides_of(shape);
    let mut st = vec![0usize; out.len()];
    for i in 0..shape.len() {
        st[pad + i] = if shape[i] == 1 { 0 } else { own[i] };
    }
    st
}

/// `out[i] = x[Σ idx_k · strides_k]` with `idx` the row-major multi-index of `i` over `shape`:
/// materialises transposes and broadcasts.
pub(crate) fn gather(
    be: &dyn GpuBackend, op: &str, x: &dyn DeviceBuffer, shape: &[usize], strides: &[usize],
) -> Result<Buf> {
    let n: usize = shape.iter().product();
    let out = be.alloc(x.dtype(), n)?;
    let (d, s) = coalesce_strided(op, shape, &[strides.to_vec()])?;
    let mut args = vec![buf(&*out), buf(x), int(n)];
    args.extend(d.iter().map(|&v| int(v)));
    args.extend(s[0].iter().map(|&v| int(v)));
    k::GATHER.launch(be, x.dtype(), n, &args)?;
    Ok(out)
}

/// The launch arguments of a strided kernel over `shape` with one stride list per operand:
/// the [`MAX_DIMS`] merged sizes, then each operand's [`MAX_DIMS`] strides.
pub(crate) fn strided_args(op: &str, shape: &[usize], strides: &[Vec<usize>]) -> Result<Vec<KernelArg<'static>>> {
    let (d, s) = coalesce_strided(op, shape, strides)?;
    let mut args: Vec<KernelArg<'static>> = d.iter().map(|&v| int(v)).collect();
    for sk in &s {
        args.extend(sk.iter().map(|&v| int(v)));
    }
    Ok(args)
}

/// Broadcasting binary op over `out_shape` with each operand's broadcast strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn binary_broadcast(
    be: &dyn GpuBackend, op: &str, code: i32, a: &dyn DeviceBuffer, a_shape: &[usize], b: &dyn DeviceBuffer,
    b_shape: &[usize], out_shape: &[usize],
) -> Result<Buf> {
    let n: usize = out_shape.iter().product();
    let out = be.alloc(a.dtype(), n)?;
    if a_shape == b_shape {
        k::BINARY.launch(be, a.dtype(), n, &[buf(&*out), buf(a), buf(b), int(n), KernelArg::I32(code)])?;
        return Ok(out);
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let (d, s) = coalesce_strided(op, out_shape, &[sa, sb])?;
    let mut args = vec![buf(&*out), buf(a), buf(b), int(n), KernelArg::I32(code)];
    args.extend(d.iter().map(|&v| int(v)));
    args.extend(s[0].iter().map(|&v| int(v)));
    args.extend(s[1].iter().map(|&v| int(v)));
    k::BINARY_BCAST.launch(be, a.dtype(), n, &args)?;
    Ok(out)
}

/// Sums `x` (row-major `shape`) over the dimensions flagged in `reduced`, times `factor`.
/// The result holds the kept dimensions in order (row-major), as the CPU's.
pub(crate) fn reduce_sum(
    be: &dyn GpuBackend, op: &str, x: &dyn DeviceBuffer, shape: &[usize], reduced: &[bool], factor: f64,
) -> Result<Buf> {
    let dt = x.dtype();
    let strides = strides_of(shape);
    // Coalesce into (size, stride) runs of kept and reduced dimensions.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut red: Vec<(usize, usize)> = Vec::new();
    let mut last: Option<bool> = None;
    for ((&size, &st), &r) in shape.iter().zip(&strides).zip(reduced) {
        if size == 1 {
            continue;
        }
        let list = if r { &mut red } else { &mut kept };
        if last == Some(r) {
            let e = list.last_mut().expect("non-empty");
            e.0 *= size;
            e.1 = st;
        } else {
            list.push((size, st));
        }
        last = Some(r);
    }
    let n_out: usize = kept.iter().map(|k| k.0).product();
    let n_red: usize = red.iter().map(|r| r.0).product();
    if red.is_empty() {
        // Nothing of size > 1 is reduced: a copy, scaled like the CPU's.
        let out = be.alloc(dt, n_out)?;
        k::UNARY.launch(be, dt, n_out, &[buf(&*out), buf(x), int(n_out), KernelArg::I32(6), real(factor)])?;
        return Ok(out);
    }
    if kept.len() > MAX_RED_DIMS || red.len() > MAX_RED_DIMS {
        return Err(Error::internal(op, format!("CUDA reductions take at most {MAX_RED_DIMS} kept and {MAX_RED_DIMS} reduced dimension runs, got {} and {}", kept.len(), red.len())));
    }
    let pad = |mut v: Vec<(usize, usize)>| {
        while v.len() < MAX_RED_DIMS {
            v.insert(0, (1, 0));
        }
        v
    };
    let (kept, red) = (pad(kept), pad(red));
    let dims = |kept: &[(usize, usize)], red: &[(usize, usize)]| -> Vec<KernelArg<'static>> {
        let mut a: Vec<KernelArg<'static>> = kept.iter().map(|k| int(k.0)).collect();
        a.extend(kept.iter().map(|k| int(k.1)));
        a.extend(red.iter().map(|r| int(r.0)));
        a.extend(red.iter().map(|r| int(r.1)));
        a
    };
    let out = be.alloc(dt, n_out)?;
    if n_out >= 2048 || n_red <= 32 {
        let mut args = vec![buf(&*out), buf(x), int(n_out), int(n_red), real(factor)];
        args.extend(dims(&kept, &red));
        k::SUM_THREADS.launch(be, dt, n_out, &args)?;
        return Ok(out);
    }
    // Few outputs, long reductions: blocks (or tiles of 32 outputs when the kept dimension is
    // innermost, so that reads stay coalesced), split into parts when one block per output
    // (tile) would leave the GPU idle, then a second pass over the partials.
    let tiled = kept[MAX_RED_DIMS - 1].1 == 1 && red[MAX_RED_DIMS - 1].1 != 1;
    let (kernel, units, lanes) =
        if tiled { (&k::SUM_TILES, n_out.div_ceil(TILE_W), BLOCK / TILE_W) } else { (&k::SUM_BLOCKS, n_out, BLOCK) };
    let parts = (n_red / (lanes * 16)).clamp(1, (1024 / units).max(1));
    if parts == 1 {
        let mut args = vec![buf(&*out), buf(x), int(n_out), int(n_red), int(1), real(factor)];
        args.extend(dims(&kept, &red));
        kernel.launch(be, dt, units * BLOCK, &args)?;
        return Ok(out);
    }
    let partial = be.alloc(dt, n_out * parts)?;
    let mut args = vec![buf(&*partial), buf(x), int(n_out), int(n_red), int(parts), real(1.0)];
    args.extend(dims(&kept, &red));
    kernel.launch(be, dt, units * parts * BLOCK, &args)?;
    let kept2 = pad(vec![(n_out, parts)]);
    let red2 = pad(vec![(parts, 1)]);
    let mut args = vec![buf(&*out), buf(&*partial), int(n_out), int(parts), int(1), real(factor)];
    args.extend(dims(&kept2, &red2));
    k::SUM_BLOCKS.launch(be, dt, n_out * BLOCK, &args)?;
    Ok(out)
}

/// The CPU's check of host indices, which gives the error (and message) a bad index deserves.
pub(crate) type IndexReport = Box<dyn Fn(&[i32]) -> Result<()> + Send>;

/// The CPU's check of host values of any dtype (indices, lengths, values to convert).
pub(crate) type ValueReport = Box<dyn Fn(&CpuStorage) -> Result<()> + Send>;

/// A device check whose flag has not been read yet.
struct PendingCheck {
    /// The backend's address: checks belong to the device that ran them.
    device: usize,
    op: &'static str,
    flag: Buf,
    idx: Buf,
    report: ValueReport,
}

fn pending() -> &'static Mutex<Vec<PendingCheck>> {
    static PENDING: OnceLock<Mutex<Vec<PendingCheck>>> = OnceLock::new();
    PENDING.get_or_init(Default::default)
}

fn device_key(be: &dyn GpuBackend) -> usize {
    be as *const dyn GpuBackend as *const () as usize
}

/// Checks after this many are waiting are read at once, so a loop that never reads a result
/// back holds a bounded number of flags.
const MAX_PENDING: usize = 256;

/// Launches `index_check` over int32 indices (valid in `[0, limit)`, or equal to `ignore`)
/// without waiting for it: the flag is read at the device's next natural synchronisation point
/// (the next read of device data to the host, or `synchronize()`), see [`index_faults`]. The
/// kernels that use the indices skip invalid ones, so nothing reads outside its buffer in the
/// meantime; the error then surfaces there with `report`'s (the CPU's) message.
pub(crate) fn check_indices_later(
    be: &dyn GpuBackend, op: &'static str, idx: &dyn DeviceBuffer, limit: usize, ignore: Option<i32>,
    report: IndexReport,
) -> Result<()> {
    let n = idx.len();
    if n >= i32::MAX as usize {
        return Err(Error::internal("index_check", "more than 2^31 indices"));
    }
    let flag = be.zeros(DType::I32, 1)?;
    k::INDEX_CHECK.launch(
        be,
        DType::I32,
        n,
        &[buf(&*flag), buf(idx), int(n), int(limit), KernelArg::I32(ignore.unwrap_or(0)), flag_arg(ignore.is_some())],
    )?;
    let report: ValueReport = Box::new(move |host| report(host.as_i32().expect("int32 indices")));
    report_later(be, op, flag, idx, report)
}

/// Registers `flag` (an int32 `[1]` that a kernel sets to non-zero on a bad value of `data`)
/// to be read at the device's next natural synchronisation point, as
/// [`check_indices_later`] does; a set flag then fails that read with `report`'s error for
/// the host copy of `data`.
pub(crate) fn report_later(
    be: &dyn GpuBackend, op: &'static str, flag: Buf, data: &dyn DeviceBuffer, report: ValueReport,
) -> Result<()> {
    // A copy, so that later in-place reuse of the caller's buffer cannot change what is reported.
    let kept = copy(be, data)?;
    let key = device_key(be);
    let waiting = {
        let mut p = pending().lock().unwrap_or_else(|p| p.into_inner());
        p.push(PendingCheck { device: key, op, flag, idx: kept, report });
        p.iter().filter(|c| c.device == key).count()
    };
    if waiting >= MAX_PENDING {
        index_faults(be)?;
    }
    Ok(())
}

/// Reads the flags of the index checks `be` ran since the last call (one synchronisation,
/// which the caller is about to pay anyway) and returns the first bad index's error, with the
/// message the CPU gives for those indices.
pub(crate) fn index_faults(be: &dyn GpuBackend) -> Result<()> {
    let key = device_key(be);
    let mine: Vec<PendingCheck> = {
        let mut p = pending().lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest) = std::mem::take(&mut *p).into_iter().partition(|c| c.device == key);
        *p = rest;
        mine
    };
    for check in mine {
        let bad = be.download(&*check.flag)?.as_i32().map(|v| v[0] != 0).unwrap_or(true);
        if bad {
            let host = be.download(&*check.idx)?;
            (check.report)(&host)?;
            return Err(Error::internal(check.op, "the device found an invalid value that the host check did not"));
        }
    }
    Ok(())
}

fn flag_arg(v: bool) -> KernelArg<'static> {
    flag(v)
}
