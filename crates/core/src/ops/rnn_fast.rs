//! The f32 time loop of the recurrent op on the CPU: the steps of `rnn.rs`'s loop (same buffers,
//! same order, same cells) run by a persistent team (`cpu::team`) instead of a fork-join per step.
//!
//! The hidden units are cut into chunks (whole 16-unit panels, two per runner) for the whole
//! call. Phase 0 packs, per chunk, the rows of W_hh that produce (forward) or consume (backward)
//! its units into panels (`cpu::simd`), once, and forward the rows of W_ih likewise. Forward,
//! each chunk computes its units' input projection itself ([`StepInput`]: per step, or for
//! every step in a phase before the first when B is small). Then every step computes, per
//! chunk, the slice of the step GEMM for its units and every row (cache-blocked so that the
//! weights come from L1), then the cell's gate math row by row (vectorised activations; one
//! SIMD pass per row for the LSTM, `cpu::lstm_rows`), and writes its units of the next state. The only cross-unit dependency of a step is the full previous state, so one
//! barrier per step (double-buffered h) orders everything; cells with a mid-step GEMM
//! (reset-before GRU) take two. A runner takes its own chunks first, so on a quiet machine a
//! chunk's weights stay in one core's cache across steps, and any chunk nobody has started, so
//! a runner that lost its core does not hold the step up.
//!
//! With enough batch rows ([`LANE_MIN_ROWS`] per runner, and weights that one core can keep
//! near), the team shares a call out by rows instead: each runner takes a lane of rows through
//! every step with the whole chunk of units, so no barrier at all ([`Work`]).
//!
//! Backward, per step: each chunk computes the gate gradients of its units (which need only its
//! units of dh, dc), then after a barrier its units of dh_prev += dG_s · W_hh[:, units] (which
//! needs every unit of dG_s). The weight gradients stay single GEMMs over all steps (`rnn.rs`).
//!
//! The cells are the same `Cell` code as the generic loop (or its `fwd_f32`/`bwd_f32` forms),
//! given strided views (`rnn::Blocks`) of the chunk's units inside its input-projection tile and
//! the full-width rows of WS, DG, h and c, so they read and write the shared buffers in place: no gathers or scatters per row. Each output
//! element is computed in exactly one chunk with a fixed summation order, and the vector code
//! treats a slice's tail like its body, so results do not depend on the number of threads.

use crate::cpu::lstm_rows::{BwdRow, BwdStrides, FwdRow, FwdStrides};
use crate::cpu::simd::{self, pack_panels_into, pack_rows_into, NR};
use crate::cpu::team::{self, SharedMut};
use crate::ops::rnn::{Blocks, BlocksMut, Cell, Plan, Proj};
use crate::storage::CpuStorage;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Multiply-adds of one step's recurrent GEMM below which the team is not worth a barrier per
/// step (a few microseconds of work): the loop then runs on the calling thread.
const TEAM_MIN_STEP_MACS: usize = 1 << 16;
/// Chunks per runner: a runner that finishes early can take over part of a slow one's share.
const CHUNKS_PER_RUNNER: usize = 2;

/// Batch rows from which a forward step computes its chunks' slice of the input projection
/// itself (see [`StepInput`]); below it, each chunk computes it for all steps before the first,
/// which reads W_ih once instead of once per step. Twice as many where the weights spill from
/// L2 ([`input_in_steps`]).
const STEP_INPUT_MIN_ROWS: usize = 8;

/// Batch rows per lane from which a call on a team runs in lanes (see [`Work`]): each runner
/// takes a share of the rows through every step with all of the step's weights, instead of a
/// share of the units of every row with a barrier per step. One full row tile (`simd::MR`) per
/// lane at least. Lanes read all the weights on every core, so they pay where the weights stay
/// in a core's L2 ([`LANE_L2_BYTES`]); beyond it each lane streams them from L3 every step,
/// which takes half again as many rows to cover, and beyond [`LANE_MAX_BYTES`] the doubled
/// L3 traffic costs more than the barrier saves. (Measured on 2-core Zen 4 and Zen 5 VMs with
/// 1 MiB of L2 per core: LSTM H = 256, 1.25 MiB of weights, lost 9% in 8-row lanes and won
/// 1–8% in 12- and 16-row ones; H = 1024, 16 MiB, lost 10–17% in 16-row lanes.)
const LANE_MIN_ROWS: usize = 8;
const LANE_L2_BYTES: usize = 1 << 20;
const LANE_MAX_BYTES: usize = 7 << 20;

static MIN_MACS: AtomicUsize = AtomicUsize::new(TEAM_MIN_STEP_MACS);
static LANE_ROWS: AtomicUsize = AtomicUsize::new(LANE_MIN_ROWS);
static MAX_RUNNERS: AtomicUsize = AtomicUsize::new(0);
static INPUT_MIN_ROWS: AtomicUsize = AtomicUsize::new(STEP_INPUT_MIN_ROWS);

/// Whether a forward call over `b` rows takes its input projection step by step, its step's
/// packed weights (W_hh and W_ih) taking `weight_bytes` in all, shared by `runners`. Weights
/// whose share spills from a core's L2 ([`LANE_L2_BYTES`]) come from L3 every step, and W_ih's
/// part of that traffic pays for itself only from twice the rows: below, the projection is one
/// product before the loop, which reads W_ih once. (2-core Zen 5, LSTM T = 50 inference, the
/// projection before the loop against in steps: B = 8 I = 256 H = 384 0.90× the time, H = 512
/// 0.94–0.99×; B = 12 0.98×, B = 16 0.99×, B = 24 1.00×, B = 64 I = H = 512 1.15×; H = 256
/// I = 64, whose weights fit, the same either way.)
pub(crate) fn input_in_steps(b: usize, weight_bytes: usize, runners: usize) -> bool {
    let rows = INPUT_MIN_ROWS.load(Ordering::Relaxed);
    let spills = weight_bytes > LANE_L2_BYTES.saturating_mul(runners.max(1));
    b >= if spills { rows.saturating_mul(2) } else { rows }
}

/// Threads a team takes for a step of `macs` multiply-adds: one below [`TEAM_MIN_STEP_MACS`].
fn team_threads(macs: usize) -> usize {
    if macs < MIN_MACS.load(Ordering::Relaxed) || ONE_RUNNER.with(|c| c.get()) {
        1
    } else {
        match MAX_RUNNERS.load(Ordering::Relaxed) {
            0 => rayon::current_num_threads(),
            n => n,
        }
    }
}

/// Overrides [`STEP_INPUT_MIN_ROWS`] (tests: both paths at every size).
pub(crate) fn set_step_input_min_rows(rows: usize) {
    INPUT_MIN_ROWS.store(rows, Ordering::Relaxed);
}

/// Overrides [`LANE_MIN_ROWS`] (tests: lanes at small B; `usize::MAX` turns them off); returns
/// the value it replaces, for the caller to put back.
pub(crate) fn set_lane_min_rows(rows: usize) -> usize {
    LANE_ROWS.swap(rows, Ordering::Relaxed)
}

/// Overrides the team's size rule (tests: odd sizes through the team; other runner counts, to
/// check that results do not depend on them). `max_runners` 0 means one per pool thread.
pub(crate) fn set_team_limits(min_step_macs: usize, max_runners: usize) {
    MIN_MACS.store(min_step_macs, Ordering::Relaxed);
    MAX_RUNNERS.store(max_runners, Ordering::Relaxed);
}

/// A chunk of hidden units and where its packed weights live.
#[derive(Clone, Copy)]
struct Chunk {
    j0: usize,
    n: usize,
    /// Panels per gate block, and units padded to whole panels.
    np: usize,
    npad: usize,
    /// Panels (per gate block) of the chunks before it: where its packed panels start.
    first: usize,
}

thread_local! {
    /// Set while this thread runs one of two loops that run at once (`rnn_pair.rs`): each
    /// keeps to its own thread.
    static ONE_RUNNER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every time loop it starts on this thread alone (no team).
pub(crate) fn with_one_runner<R>(f: impl FnOnce() -> R) -> R {
    let before = ONE_RUNNER.with(|c| c.replace(true));
    let out = f();
    ONE_RUNNER.with(|c| c.set(before));
    out
}

/// A range of batch rows: all of them, or one lane's.
#[derive(Clone, Copy)]
struct Rows {
    r0: usize,
    n: usize,
}

/// One share of a step's work: a chunk of units over a range of rows. It keeps its own tile of
/// the input projection (slot = its index).
#[derive(Clone, Copy)]
struct Part {
    ch: Chunk,
    rows: Rows,
}

/// How a call's steps are shared out. On a team, either by units (`lanes` false: every part is
/// a chunk of units over all rows, one barrier per step) or, with enough rows, by rows (`lanes`
/// true: every part is a lane of rows over all units, running every step on its own runner
/// with no barrier, as the two directions of `rnn_pair.rs` do; W_hh is then read whole by
/// each runner, from L2 or L3). Rows never interact within a step, and every output element
/// is the same sequential sum whichever tile computes it, so the split changes no bit.
struct Work {
    runners: usize,
    /// The chunks the weights are packed in (one, in lanes).
    chunks: Vec<Chunk>,
    parts: Vec<Part>,
    lanes: bool,
}

impl Work {
    /// The split of a step over `h` units and `b` rows on up to `threads` ([`team_threads`]), whose packed
    /// weights take `weight_bytes`; lanes only when `lanes_ok` (the step computes its own input
    /// projection).
    fn new(h: usize, b: usize, threads: usize, weight_bytes: usize, lanes_ok: bool) -> Work {
        let panels = h.div_ceil(NR);
        let min_rows = match LANE_ROWS.load(Ordering::Relaxed).max(1) {
            rows if weight_bytes < LANE_L2_BYTES => rows,
            rows if weight_bytes <= LANE_MAX_BYTES => rows.saturating_mul(3) / 2,
            _ => usize::MAX,
        };
        let lanes = if lanes_ok { threads.min(b / min_rows) } else { 1 };
        let runners = if lanes >= 2 { lanes } else { threads.clamp(1, panels) };
        let count = if runners == 1 || lanes >= 2 { 1 } else { (CHUNKS_PER_RUNNER * runners).min(panels) };
        let chunks: Vec<Chunk> = (0..count)
            .map(|c| {
                let (p0, p1) = (c * panels / count, (c + 1) * panels / count);
                let (j0, j1) = (p0 * NR, (p1 * NR).min(h));
                Chunk { j0, n: j1 - j0, np: p1 - p0, npad: (p1 - p0) * NR, first: p0 }
            })
            .collect();
        let parts = if lanes >= 2 {
            (0..lanes)
                .map(|l| {
                    let (r0, r1) = (l * b / lanes, (l + 1) * b / lanes);
                    Part { ch: chunks[0], rows: Rows { r0, n: r1 - r0 } }
                })
                .collect()
        } else {
            chunks.iter().map(|&ch| Part { ch, rows: Rows { r0: 0, n: b } }).collect()
        };
        Work { runners, chunks, parts, lanes: lanes >= 2 }
    }

    /// Runs phase 0, the packing (`pack(chunk, piece)` for every piece of every chunk: split by
    /// piece in lanes, where every part shares the one chunk; by part otherwise), then phases
    /// 1..phases of every part (`work(scratch, part, slot, phase)`).
    fn run<S>(
        &self, phases: usize, pieces: usize, scratch: impl Fn() -> S + Sync, pack: impl Fn(&Chunk, usize) + Sync,
        work: impl Fn(&mut S, &Part, usize, usize) + Sync,
    ) {
        if self.lanes {
            team::run(self.runners, pieces, 1, || (), |_, k, _| pack(&self.chunks[0], k));
            team::lanes(self.parts.len(), 1..phases, scratch, |sc, l, ph| work(sc, &self.parts[l], l, ph));
        } else {
            team::run(self.runners, self.parts.len(), phases, scratch, |sc, c, ph| {
                let part = &self.parts[c];
                if ph == 0 {
                    (0..pieces).for_each(|k| pack(&part.ch, k));
                } else {
                    work(sc, part, c, ph);
                }
            });
        }
    }

    /// The most rows of any part.
    fn rows_max(&self) -> usize {
        self.parts.iter().map(|p| p.rows.n).max().unwrap_or(0)
    }
}

/// The input of a forward call. Each chunk multiplies rows of x by its units' rows of W_ih
/// (packed once and cached, like W_hh) into tiles of its own, which the cell reads as the input
/// projection: from [`STEP_INPUT_MIN_ROWS`] rows ([`input_in_steps`]) one tile per step, computed just before the
/// step's recurrent GEMM; below it (few rows per step: W_ih would be read from memory each
/// step for little work), every step's tile in a phase before the first step. Either way the
/// projection's T·B·G·H floats never make a round trip through memory in one GEMM before the
/// loop, and the work runs on the team, each chunk's on the core that consumes it.
#[derive(Clone, Copy)]
pub(crate) struct StepInput<'a> {
    /// Row r of step s at τ(s)·`step_stride` + r·`row_stride` (I values each), τ(s) = s, or
    /// T − 1 − s when `reversed`: the processing order [T, B, I] (strides B·I and I), or x as
    /// the caller holds it, time-major or batch-first (I and T·I), which then needs no
    /// gathering (a reverse call over full lengths reads its steps from the last time on).
    pub x: &'a [f32],
    pub step_stride: usize,
    pub row_stride: usize,
    pub reversed: bool,
    pub i: usize,
    pub w_ih: &'a [f32],
    /// The storage `w_ih` lives in, for the packed-weights cache (as `FwdIo::w_hh_src`).
    pub w_ih_src: Option<&'a Arc<CpuStorage>>,
}

/// Buffers of the forward loop (the caller's layout for y, processing order for x, ws and hprev).
pub(crate) struct FwdIo<'a> {
    pub input: StepInput<'a>,
    /// The input projection's bias [G·H] (b_ih, plus b_hh where the cell folds it), added as
    /// the cell reads it.
    pub xp_bias: Option<&'a [f32]>,
    pub w_hh: &'a [f32],
    /// The storage `w_hh` lives in, when the caller has it: its packed form is then kept for
    /// the next call on the same weights.
    pub w_hh_src: Option<&'a Arc<CpuStorage>>,
    /// b_hh [G·H] for cells that do not fold it.
    pub hh_bias: Option<&'a [f32]>,
    pub y: &'a mut [f32],
    /// [T, B, W·H] when saving, else one step [B, W·H].
    pub ws: &'a mut [f32],
    /// [T, B, H] when saving, else empty.
    pub hprev: &'a mut [f32],
    /// h0 on entry, h_T on exit; c likewise (cells with c).
    pub hs: &'a mut [f32],
    pub cs: &'a mut [f32],
}

/// W_hh packed for the forward loop, kept for the next call on the same weights: a served model
/// packs once instead of on every request (for B = 1 the packing costs as much as the steps).
/// Storages never change once made (in-place updates swap in new ones), so while the weak
/// reference still reaches the same storage, the packed copy is current.
struct Packed {
    src: Weak<CpuStorage>,
    /// The layout: cell blocks, H, and the chunk boundaries (the panels are stored per chunk).
    layout: Vec<usize>,
    w: Arc<Vec<f32>>,
    wm: Arc<Vec<f32>>,
    /// Every packed weight is finite (see [`forward_steps`]'s first step). Only W_hh's
    /// entries track it; W_ih's say true.
    finite: bool,
}

/// Entries and bytes kept at most; the oldest go first, and entries whose weights are gone at
/// every insert (training makes new weights each step).
const PACKED_MAX_ENTRIES: usize = 8;
const PACKED_MAX_BYTES: usize = 256 << 20;
static PACKED: Mutex<Vec<Packed>> = Mutex::new(Vec::new());

/// The layout key of packed W_hh: cell blocks, H, the packing (rows or panels) and the chunks.
fn packed_layout<C: Cell>(h: usize, chunks: &[Chunk], one_row: bool) -> Vec<usize> {
    [C::HH_BLOCKS, C::G, h, one_row as usize].into_iter().chain(chunks.iter().map(|c| c.j0)).collect()
}

/// A packing of columns [j0, j1) of B[kk][j] = src[kk·rs + j·cs]: (k, j0, j1, src, rs, cs, out).
type PackFn = fn(usize, usize, usize, &[f32], usize, usize, &mut [f32]);

/// Weights for steps of one row (B = 1) are packed in rows ([`simd::pack_rows_into`]) and
/// multiplied by [`simd::Kernels::row`]: the step is a matrix-vector product bound by L2's
/// bandwidth, which streams one contiguous run faster than the 4 interleaved streams of the
/// panels (examples/panels_peak.rs on a 2-core Zen 5, one core: 2.6 µs against 4.9 for a
/// 256 × 512 share of LSTM H = 256's W_hh, 512 KiB; no gain once the weights spill from L2).
/// Same size and place as the panels, and the same bits.
fn pack_for(one_row: bool) -> PackFn {
    if one_row {
        pack_rows_into
    } else {
        pack_panels_into
    }
}

/// A step's product: `rows` rows of `a` (k values each, row stride `lda`) times `blocks`
/// blocks of `np` packed panels each (packed as [`pack_for`] says), into `out` (row stride
/// `ldo`; block b's columns from b·16·np).
#[allow(clippy::too_many_arguments)] // the BLAS shape: sizes, operands, output
fn step_product(
    one_row: bool, a: &[f32], lda: usize, rows: usize, k: usize, w: &[f32], blocks: usize, np: usize, out: &mut [f32],
    ldo: usize,
) {
    let kern = simd::kernels();
    if !one_row {
        return kern.panels(a, lda, rows, k, w, blocks * np, out, ldo);
    }
    let (span, width) = (np * k * NR, np * NR);
    for blk in 0..blocks {
        kern.row(&a[..k], k, &w[blk * span..][..span], width, &mut out[blk * width..][..width]);
    }
}

/// The layout key of packed W_ih (the leading marker keeps it apart from W_hh's keys).
fn packed_ih_layout<C: Cell>(h: usize, i: usize, chunks: &[Chunk]) -> Vec<usize> {
    [usize::MAX, C::G, h, i].into_iter().chain(chunks.iter().map(|c| c.j0)).collect()
}

/// A cache hit: the packed weights, the mid-step block's, and whether all are finite.
struct PackedHit {
    w: Arc<Vec<f32>>,
    wm: Arc<Vec<f32>>,
    finite: bool,
}

fn packed_lookup(src: &Arc<CpuStorage>, layout: &[usize]) -> Option<PackedHit> {
    let cache = PACKED.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .iter()
        .find(|e| e.layout == layout && e.src.upgrade().is_some_and(|a| Arc::ptr_eq(&a, src)))
        .map(|e| PackedHit { w: e.w.clone(), wm: e.wm.clone(), finite: e.finite })
}

fn packed_insert(src: &Arc<CpuStorage>, layout: Vec<usize>, w: Vec<f32>, wm: Vec<f32>, finite: bool) {
    let mut cache = PACKED.lock().unwrap_or_else(|p| p.into_inner());
    // Entries whose weights are gone (training makes new weights every step) give their
    // buffers to the pool, where the next call's packing takes them.
    let (live, gone): (Vec<Packed>, Vec<Packed>) = cache.drain(..).partition(|e| e.src.strong_count() > 0);
    *cache = live;
    cache.push(Packed { src: Arc::downgrade(src), layout, w: Arc::new(w), wm: Arc::new(wm), finite });
    let bytes = |c: &[Packed]| c.iter().map(|e| 4 * (e.w.len() + e.wm.len())).sum::<usize>();
    let mut evicted = Vec::new();
    while cache.len() > PACKED_MAX_ENTRIES || (cache.len() > 1 && bytes(&cache) > PACKED_MAX_BYTES) {
        evicted.push(cache.remove(0));
    }
    drop(cache);
    for e in gone.into_iter().chain(evicted) {
        // A call still reading the entry holds a clone: then it is simply dropped later.
        for v in [e.w, e.wm] {
            if let Ok(v) = Arc::try_unwrap(v) {
                crate::pool::release(v);
            }
        }
    }
}

/// A runner's scratch, sized for the largest chunk.
struct FwdScratch {
    /// The step GEMM of every row for the chunk's units: [B][HH_BLOCKS · npad].
    tile: Vec<f32>,
    /// The c of cells without one (never read).
    cs: Vec<f32>,
}

pub(crate) fn forward_steps<C: Cell>(cell: &C, p: &Plan, io: FwdIo) {
    let (t, b, h, g) = (p.t, p.b, p.h, C::G);
    let (hh_w, ws_w) = (C::HH_BLOCKS * h, C::WS_BLOCKS * h);
    let kern = simd::kernels();
    let weight_bytes = 4 * ((C::HH_BLOCKS + C::HAS_MID as usize) * h * h + g * h * io.input.i);
    let threads = team_threads(b * hh_w * h);
    let hoist = !input_in_steps(b, weight_bytes, threads);
    let split = Work::new(h, b, threads, weight_bytes, !hoist);
    let chunks = &split.chunks;
    let panels = h.div_ceil(NR);
    let npad_max = chunks.iter().map(|c| c.npad).max().unwrap_or(0);
    let panel = h * NR;
    // Packed W_hhᵀ, per chunk its panels of every gate block ([chunk][block][panel]), and of
    // the mid-step blocks ([chunk][panel]): from the last call on these weights, or packed in
    // phase 0.
    // Steps of one row in unit split (lanes need more rows) read W_hh packed in rows.
    let one_row = b == 1 && !split.lanes;
    let pack_hh = pack_for(one_row);
    let layout = packed_layout::<C>(h, chunks, one_row);
    let cached = io.w_hh_src.and_then(|src| packed_lookup(src, &layout));
    let (mut w_pk, mut wm_pk) = match cached {
        Some(_) => (Vec::new(), Vec::new()),
        // Every float is written by the packing (padding included): no zeroing.
        None => (
            crate::pool::take(C::HH_BLOCKS * panels * panel),
            crate::pool::take(if C::HAS_MID { panels * panel } else { 0 }),
        ),
    };
    // SAFETY: a cached pair is only read (phase 0 packs only when nothing was cached).
    let (w_sh, wm_sh) = match &cached {
        Some(hit) => unsafe { (SharedMut::from_shared(&hit.w), SharedMut::from_shared(&hit.wm)) },
        None => (SharedMut::new(&mut w_pk), SharedMut::new(&mut wm_pk)),
    };
    // W_ih likewise ([chunk][block][panel of K = I]), and per part its units' input projection
    // ([rows][G · npad]) for one step's rows, or for every step's when hoisted.
    let input = io.input;
    let ipanel = input.i * NR;
    let ih_layout = packed_ih_layout::<C>(h, input.i, chunks);
    let ih_cached = input.w_ih_src.and_then(|src| packed_lookup(src, &ih_layout));
    let mut wi_pk: Vec<f32> = crate::pool::take(if ih_cached.is_none() { g * panels * ipanel } else { 0 });
    // SAFETY: as for W_hh.
    let wi_sh = match &ih_cached {
        Some(hit) => unsafe { SharedMut::from_shared(&hit.w) },
        None => SharedMut::new(&mut wi_pk),
    };
    let rows_max = split.rows_max();
    let xt_len = if hoist { t * b } else { rows_max } * g * npad_max;
    // Every tile is written (by the projection) before it is read, so a pooled buffer with
    // stale values does: no zeroing, and no fresh pages to fault in on every call.
    let mut xtiles: Vec<f32> = crate::pool::take(split.parts.len() * xt_len);
    let xt_sh = SharedMut::new(&mut xtiles);
    // Phases before the first step: packing, and the hoisted projection.
    let pre = 1 + hoist as usize;
    // r ⊙ h of every unit for the mid-step GEMM (cells with one), apart from ws so that the
    // GEMM's reads never overlap another chunk's writes.
    let mut mid_in = vec![0f32; if C::HAS_MID { b * h } else { 0 }];
    let mut h_other = vec![0f32; b * h];
    let (xp_bias, w_hh, hh_bias, save) = (io.xp_bias, io.w_hh, io.hh_bias, p.save);
    // With h0 = 0 the first step's recurrent product is +0 everywhere (each sum starts at +0
    // and adds only ±0 terms, the weights being finite; 0·∞ would be NaN), so the step takes a
    // zeroed tile instead: the same bits without one of the T step GEMMs (2% of an LSTM call
    // at T = 50). Packing notes any non-finite weight of the gate blocks.
    let h0_zero = io.hs.iter().all(|&v| v == 0.0);
    let hh_nonfinite = AtomicBool::new(cached.as_ref().is_some_and(|hit| !hit.finite));
    let (ha, hb) = (SharedMut::new(io.hs), SharedMut::new(&mut h_other));
    let (cs, y, ws, hprev) =
        (SharedMut::new(io.cs), SharedMut::new(io.y), SharedMut::new(io.ws), SharedMut::new(io.hprev));
    let mid_sh = SharedMut::new(&mut mid_in);
    let halves = if C::HAS_MID { 2 } else { 1 };

    // Cells with a row kernel for several rows take a part's rows of a step in one call when
    // every row runs every step (no lengths to stop some rows early).
    let rows_kernel = cell
        .fwd_rows_f32()
        .filter(|_| p.full_lengths() && !C::HAS_MID && !C::FWD_READS_H && hh_bias.is_none() && C::WS_BLOCKS == 6);
    let scratch = || FwdScratch { tile: vec![0.0; rows_max * C::HH_BLOCKS * npad_max], cs: vec![0.0; npad_max] };

    // SAFETY (every shared access below): in a phase, a part writes only its units [j0, j0 + n)
    // of its rows of next, cs, y, ws, hprev and mid_in, its own tile slot and its chunk's packed
    // panels, and reads other parts' data only from buffers written before the last barrier
    // (in lanes there is no barrier, and a lane reads only its own rows).
    // Packing, in pieces: W_hh's gate blocks, its mid-step block, W_ih's gate blocks.
    let hh_pieces = if cached.is_none() { C::HH_BLOCKS + C::HAS_MID as usize } else { 0 };
    let pieces = hh_pieces + if ih_cached.is_none() { g } else { 0 };
    let pack = |ch: &Chunk, k: usize| {
        let (j0, j1) = (ch.j0, ch.j0 + ch.n);
        if k < C::HH_BLOCKS && k < hh_pieces {
            // B[kk][j] = W_hh[(blk·H + j)·H + kk]: W_hhᵀ for this gate block.
            let at = (C::HH_BLOCKS * ch.first + k * ch.np) * panel;
            let dst = unsafe { w_sh.get_mut(at, ch.np * panel) };
            pack_hh(h, j0, j1, &w_hh[k * h * h..], 1, h, dst);
            // A fold, not `all`: no early exit, so the check vectorises.
            if !dst.iter().fold(true, |ok, v| ok & v.is_finite()) {
                hh_nonfinite.store(true, Ordering::Relaxed);
            }
        } else if k < hh_pieces {
            let dst = unsafe { wm_sh.get_mut(ch.first * panel, ch.np * panel) };
            pack_hh(h, j0, j1, &w_hh[hh_w * h..], 1, h, dst);
        } else {
            // B[kk][j] = W_ih[(blk·H + j)·I + kk].
            let (inp, blk) = (&input, k - hh_pieces);
            let dst = unsafe { wi_sh.get_mut((g * ch.first + blk * ch.np) * ipanel, ch.np * ipanel) };
            pack_panels_into(inp.i, j0, j1, &inp.w_ih[blk * h * inp.i..], 1, inp.i, dst);
        }
    };

    let work = |sc: &mut FwdScratch, part: &Part, slot: usize, ph: usize| {
        let (ch, Rows { r0, n: nr }) = (&part.ch, part.rows);
        let (i, npad, x) = (input.i, ch.npad, input.x);
        let (step_stride, row_stride) = (input.step_stride, input.row_stride);
        let time = |s: usize| if input.reversed { t - 1 - s } else { s };
        let wi = unsafe { wi_sh.get(g * ch.first * ipanel, g * ch.np * ipanel) };
        // The chunk's input projection of rows [row0, row0 + rows) of step s: its tile.
        let project = |s: usize, row0: usize, rows: usize| {
            let xt = unsafe { xt_sh.get_mut(slot * xt_len, rows * g * npad) };
            let a = &x[time(s) * step_stride + row0 * row_stride..];
            kern.panels(a, row_stride, rows, i, wi, g * ch.np, xt, g * npad);
        };
        if ph < pre {
            // Hoisted, every step's rows, tile row s·B + r: one product over all of them when
            // they are in that order, one per step when reversed, else one per batch row (its
            // T steps, strided).
            let xt = unsafe { xt_sh.get_mut(slot * xt_len, t * b * g * npad) };
            if input.reversed {
                for s in 0..t {
                    let (a, out) = (&x[time(s) * step_stride..], &mut xt[s * b * g * npad..]);
                    kern.panels(a, row_stride, b, i, wi, g * ch.np, out, g * npad);
                }
                return;
            }
            if step_stride == b * i && row_stride == i {
                return kern.panels(x, i, t * b, i, wi, g * ch.np, xt, g * npad);
            }
            for r in 0..b {
                let (a, out) = (&x[r * row_stride..], &mut xt[r * g * npad..]);
                kern.panels(a, step_stride, t, i, wi, g * ch.np, out, b * g * npad);
            }
            return;
        }
        let (s, half) = ((ph - pre) / halves, (ph - pre) % halves);
        let (cur, next) = if s % 2 == 0 { (ha, hb) } else { (hb, ha) };
        let (j0, n, npad) = (ch.j0, ch.n, ch.npad);
        let ws_base = if save { s * b } else { 0 };
        // This part's rows of the state (row r at (r − r0)·H).
        let h_cur = unsafe { cur.get(r0 * h, nr * h) };
        // The chunk's units of a row's gate blocks, read and written in place.
        let ws_row = |r: usize| {
            let at = ws.ptr_at((ws_base + r) * ws_w + j0, (C::WS_BLOCKS - 1) * h + n);
            unsafe { BlocksMut::from_raw(at, C::WS_BLOCKS, n, h) }
        };
        // The chunk's units of a row's input projection, in its tile.
        let proj = |r: usize| {
            let row = if hoist { s * b + r } else { r - r0 };
            let xt = unsafe { xt_sh.get(slot * xt_len + row * g * npad, (g - 1) * npad + n) };
            Proj {
                xp: Blocks::new(xt, n, npad),
                bias: xp_bias.map(|bv| Blocks::new(&bv[j0..][..(g - 1) * h + n], n, h)),
            }
        };
        if half == 0 {
            let hw = C::HH_BLOCKS * npad;
            let nq = C::HH_BLOCKS * ch.np;
            let w = unsafe { w_sh.get(C::HH_BLOCKS * ch.first * panel, nq * panel) };
            if !hoist {
                project(s, r0, nr);
            }
            // Packing finished before the first step (a barrier, or a team call of its own).
            if s == 0 && h0_zero && !hh_nonfinite.load(Ordering::Relaxed) {
                sc.tile[..nr * hw].fill(0.0);
            } else {
                step_product(one_row, h_cur, h, nr, h, w, C::HH_BLOCKS, ch.np, &mut sc.tile, hw);
            }
            if let Some(fwd_rows) = rows_kernel {
                // Every row of the part runs, at the same time index: one call for all of them.
                let tt = p.time_of(s, r0).expect("full lengths");
                if save {
                    for r in r0..r0 + nr {
                        let mine = (r - r0) * h + j0;
                        unsafe { hprev.get_mut((s * b + r) * h + j0, n) }.copy_from_slice(&h_cur[mine..mine + n]);
                    }
                }
                let y_rs = if p.batch_first { t * h } else { h };
                let tile_row = if hoist { s * b + r0 } else { 0 };
                let xt =
                    unsafe { xt_sh.get(slot * xt_len + tile_row * g * npad, (nr - 1) * g * npad + (g - 1) * npad + n) };
                let hh = &sc.tile[..(nr - 1) * hw + (C::HH_BLOCKS - 1) * npad + n];
                let bias = xp_bias.map(|bv| &bv[j0..][..(g - 1) * h + n]);
                let rows = FwdRow {
                    rows: nr,
                    rs: FwdStrides { xp: g * npad, hh: hw, c: h, h, y: y_rs, ws: ws_w },
                    n,
                    xp: xt.as_ptr(),
                    ld_in: npad,
                    bias: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
                    ld_bias: h,
                    hh: hh.as_ptr(),
                    ld_hh: npad,
                    c: cs.ptr_at(r0 * h + j0, (nr - 1) * h + n),
                    h: next.ptr_at(r0 * h + j0, (nr - 1) * h + n),
                    y: y.ptr_at(p.row(tt, r0) * h + j0, (nr - 1) * y_rs + n),
                    ws: if save {
                        ws.ptr_at((ws_base + r0) * ws_w + j0, (nr - 1) * ws_w + (C::WS_BLOCKS - 1) * h + n)
                    } else {
                        std::ptr::null_mut()
                    },
                    ld_ws: h,
                };
                // SAFETY: every span was bounds-checked above (`get`, slicing, `ptr_at`); this
                // part alone writes its units of its rows of c, next, y and ws in this phase,
                // and the row kernel writes nothing past n units of a block.
                unsafe { fwd_rows(&rows) };
                return;
            }
            for r in r0..r0 + nr {
                let (own, mine) = (r * h + j0, (r - r0) * h + j0);
                if save {
                    unsafe { hprev.get_mut((s * b + r) * h + j0, n) }.copy_from_slice(&h_cur[mine..mine + n]);
                }
                // The state moves on in place in `next` (a masked row's stays as it was).
                let hs = unsafe { next.get_mut(own, n) };
                let Some(tt) = p.time_of(s, r) else {
                    hs.copy_from_slice(&h_cur[mine..mine + n]);
                    continue;
                };
                if C::FWD_READS_H {
                    hs.copy_from_slice(&h_cur[mine..mine + n]);
                }
                let hh = &mut sc.tile[(r - r0) * hw..(r - r0 + 1) * hw];
                if let Some(bias) = hh_bias {
                    for blk in 0..C::HH_BLOCKS {
                        for (v, &bv) in hh[blk * npad..][..n].iter_mut().zip(&bias[blk * h + j0..][..n]) {
                            *v += bv;
                        }
                    }
                }
                let cs_r = if C::HAS_C { unsafe { cs.get_mut(own, n) } } else { &mut sc.cs[..n] };
                let mut wr = ws_row(r);
                if C::HAS_MID {
                    cell.fwd(n, proj(r), Blocks::new(hh, n, npad), hs, cs_r, &mut wr);
                    unsafe { mid_sh.get_mut(own, n) }.copy_from_slice(wr.get(C::MID_WS_BLOCK));
                } else {
                    let y_r = unsafe { y.get_mut(p.row(tt, r) * h + j0, n) };
                    cell.fwd_f32(n, proj(r), Blocks::new(hh, n, npad), hs, cs_r, &mut wr, y_r, save);
                }
            }
        } else {
            // Second half (mid-step GEMM): mid = (r ⊙ h) · W_hh[mid]ᵀ for these units.
            let mid_in = unsafe { mid_sh.get(r0 * h, nr * h) };
            let wm = unsafe { wm_sh.get(ch.first * panel, ch.np * panel) };
            step_product(one_row, mid_in, h, nr, h, wm, 1, ch.np, &mut sc.tile, npad);
            for r in r0..r0 + nr {
                let Some(tt) = p.time_of(s, r) else { continue };
                let own = r * h + j0;
                // h_prev, copied into `next` by the first half.
                let hs = unsafe { next.get_mut(own, n) };
                let mut wr = ws_row(r);
                cell.fwd_mid(n, proj(r), &sc.tile[(r - r0) * npad..][..n], hs, &mut wr);
                unsafe { y.get_mut(p.row(tt, r) * h + j0, n) }.copy_from_slice(hs);
            }
        }
    };
    split.run(pre + t * halves, pieces, scratch, pack, work);
    crate::pool::release(xtiles);
    if t % 2 == 1 {
        io.hs.copy_from_slice(&h_other);
    }
    match (io.w_hh_src, &cached) {
        (Some(src), None) => packed_insert(src, layout, w_pk, wm_pk, !hh_nonfinite.load(Ordering::Relaxed)),
        _ => [w_pk, wm_pk].into_iter().for_each(crate::pool::release),
    }
    match (input.w_ih_src, &ih_cached) {
        (Some(src), None) => packed_insert(src, ih_layout, wi_pk, Vec::new(), true),
        _ => crate::pool::release(wi_pk),
    }
}

/// Buffers of the backward loop (see `backward_cpu` in `rnn.rs`).
pub(crate) struct BwdIo<'a> {
    pub w_hh: &'a [f32],
    pub ws: &'a [f32],
    pub hprev: &'a [f32],
    pub dy: Option<&'a [f32]>,
    /// dh_T, dc_T on entry; dh_0, dc_0 on exit.
    pub dh: &'a mut [f32],
    pub dc: &'a mut [f32],
    /// [T, B, G·H], zero on entry.
    pub dg: &'a mut [f32],
    pub dxp: &'a mut [f32],
}

struct BwdScratch {
    tile: Vec<f32>,
    /// The dc of cells without one (never read).
    dc: Vec<f32>,
}

pub(crate) fn backward_steps<C: Cell>(cell: &C, p: &Plan, io: BwdIo) {
    let (t, b, h, g) = (p.t, p.b, p.h, C::G);
    let (gh, hh_w, ws_w) = (g * h, C::HH_BLOCKS * h, C::WS_BLOCKS * h);
    let split = Work::new(h, b, team_threads(b * gh * h), 4 * gh * h, true);
    let panels = h.div_ceil(NR);
    let npad_max = split.chunks.iter().map(|c| c.npad).max().unwrap_or(0);
    let (w_hh, ws_all, hprev, dy) = (io.w_hh, io.ws, io.hprev, io.dy);
    // W_hh[..HH_BLOCKS·H, units] as panels (K = HH_BLOCKS·H), for dh += dG·W_hh, and
    // W_hh[mid blocks, units] (K = H) for dmid = dG[mid]·W_hh[mid].
    // Every float is written by the packing (padding included): pooled, no zeroing.
    let mut w_pk: Vec<f32> = crate::pool::take(panels * hh_w * NR);
    let mut wm_pk: Vec<f32> = crate::pool::take(if C::HAS_MID { panels * h * NR } else { 0 });
    // dG_s of the mid-step blocks, copied out for the mid-step GEMM (cells with one), so that
    // its reads never overlap another chunk's writes to dG.
    let mut dmid_in = vec![0f32; if C::HAS_MID { b * h } else { 0 }];
    let (dh, dc) = (SharedMut::new(io.dh), SharedMut::new(io.dc));
    let (dg, dxp) = (SharedMut::new(io.dg), SharedMut::new(io.dxp));
    let (w_sh, wm_sh, dmid_sh) = (SharedMut::new(&mut w_pk), SharedMut::new(&mut wm_pk), SharedMut::new(&mut dmid_in));
    let rows_max = split.rows_max();
    let one_row = b == 1 && !split.lanes;
    let pack_hh = pack_for(one_row);

    let scratch = || BwdScratch { tile: vec![0.0; rows_max * npad_max], dc: vec![0.0; npad_max] };

    // SAFETY (every shared access): a part reads and writes only its units of its rows of dh,
    // dc, dG, dXP and dmid_in and its chunk's packed panels, except the GEMM phases, which read
    // all units of its rows of dG_s (or dmid_in) after the barrier that completed them (in
    // lanes, written by the same lane earlier).
    let pack = |ch: &Chunk, k: usize| {
        let (j0, j1) = (ch.j0, ch.j0 + ch.n);
        if k == 0 {
            // B[kk][j] = W_hh[kk·H + j], kk over the blocks that multiplied h.
            let dst = unsafe { w_sh.get_mut(ch.first * hh_w * NR, ch.np * hh_w * NR) };
            pack_hh(hh_w, j0, j1, w_hh, h, 1, dst);
        } else {
            let dst = unsafe { wm_sh.get_mut(ch.first * h * NR, ch.np * h * NR) };
            pack_hh(h, j0, j1, &w_hh[hh_w * h..], h, 1, dst);
        }
    };
    // The chunk's units of row r of step s: saved blocks, and the gradient blocks written in
    // place.
    let ws_row = |ch: &Chunk, s: usize, r: usize| {
        Blocks::new(&ws_all[(s * b + r) * ws_w + ch.j0..][..(C::WS_BLOCKS - 1) * h + ch.n], ch.n, h)
    };
    let grads_row = |ch: &Chunk, s: usize, r: usize| {
        let (off, span) = ((s * b + r) * gh + ch.j0, (g - 1) * h + ch.n);
        let dgr = unsafe { BlocksMut::from_raw(dg.ptr_at(off, span), g, ch.n, h) };
        let dxr = if C::DXP_IS_DG {
            BlocksMut::empty()
        } else {
            unsafe { BlocksMut::from_raw(dxp.ptr_at(off, span), g, ch.n, h) }
        };
        (dgr, dxr)
    };
    let rows_of = |part: &Part| part.rows.r0..part.rows.r0 + part.rows.n;
    // What the cell half of step s reads of these units, asked for ahead (see simd::prefetch).
    let prefetch_step = |part: &Part, s: usize| {
        let ch = &part.ch;
        for r in rows_of(part) {
            let Some(tt) = p.time_of(s, r) else { continue };
            for blk in 0..C::WS_BLOCKS {
                simd::prefetch(&ws_all[(s * b + r) * ws_w + blk * h + ch.j0..][..ch.n]);
            }
            simd::prefetch(&hprev[(s * b + r) * h + ch.j0..][..ch.n]);
            if let Some(dy) = dy {
                simd::prefetch(&dy[p.row(tt, r) * h + ch.j0..][..ch.n]);
            }
        }
    };
    // As forward: cells with a kernel for several rows take a part's rows in one call when
    // every row runs every step.
    let rows_kernel =
        cell.bwd_rows_f32().filter(|_| p.full_lengths() && !C::HAS_MID && C::DXP_IS_DG && C::WS_BLOCKS == 6);
    // The cell's (first) backward half for step s on these units.
    let cell_step = |sc: &mut BwdScratch, part: &Part, s: usize| {
        let (ch, Rows { r0, n: nr }) = (&part.ch, part.rows);
        let (j0, n) = (ch.j0, ch.n);
        if let Some(bwd_rows) = rows_kernel {
            let tt = p.time_of(s, r0).expect("full lengths");
            let dy_rs = if p.batch_first { t * h } else { h };
            let ws_s = &ws_all[(s * b + r0) * ws_w + j0..][..(nr - 1) * ws_w + (C::WS_BLOCKS - 1) * h + n];
            let dy_s = dy.map(|dy| &dy[p.row(tt, r0) * h + j0..][..(nr - 1) * dy_rs + n]);
            let rows = BwdRow {
                rows: nr,
                rs: BwdStrides { ws: ws_w, dy: dy_rs, dh: h, dc: h, dg: gh },
                n,
                ws: ws_s.as_ptr(),
                ld_ws: h,
                dy: dy_s.map_or(std::ptr::null(), |d| d.as_ptr()),
                dh: dh.ptr_at(r0 * h + j0, (nr - 1) * h + n),
                dc: dc.ptr_at(r0 * h + j0, (nr - 1) * h + n),
                dg: dg.ptr_at((s * b + r0) * gh + j0, (nr - 1) * gh + (g - 1) * h + n),
                ld_dg: h,
            };
            // SAFETY: every span was bounds-checked above (slicing, `ptr_at`); this part alone
            // writes its units of its rows of dh, dc and dG_s in this phase, and the kernel
            // writes nothing past n units of a block.
            return unsafe { bwd_rows(&rows) };
        }
        for r in rows_of(part) {
            let Some(tt) = p.time_of(s, r) else { continue };
            let own = r * h + j0;
            let dh_r = unsafe { dh.get_mut(own, n) };
            let dy_r = dy.map(|dy| &dy[p.row(tt, r) * h + j0..][..n]);
            let dc_r = if C::HAS_C { unsafe { dc.get_mut(own, n) } } else { &mut sc.dc[..n] };
            let hp = &hprev[(s * b + r) * h + j0..][..n];
            let (mut dgr, mut dxr) = grads_row(ch, s, r);
            cell.bwd_f32(n, hp, ws_row(ch, s, r), dy_r, dh_r, dc_r, &mut dgr, &mut dxr);
            if C::HAS_MID {
                unsafe { dmid_sh.get_mut(own, n) }.copy_from_slice(dgr.get(C::HH_BLOCKS));
            }
        }
    };
    // Mid-step half (reset-before GRU): dmid = dG_s[mid] · W_hh[mid] for these units, then the
    // cell's second half.
    let mid_step = |sc: &mut BwdScratch, part: &Part, s: usize| {
        let (ch, Rows { r0, n: nr }) = (&part.ch, part.rows);
        let (j0, n, npad) = (ch.j0, ch.n, ch.npad);
        let dmid_in = unsafe { dmid_sh.get(r0 * h, nr * h) };
        let wm = unsafe { wm_sh.get(ch.first * h * NR, ch.np * h * NR) };
        step_product(one_row, dmid_in, h, nr, h, wm, 1, ch.np, &mut sc.tile, npad);
        for r in rows_of(part) {
            if p.time_of(s, r).is_none() {
                continue;
            }
            let dh_r = unsafe { dh.get_mut(r * h + j0, n) };
            let hp = &hprev[(s * b + r) * h + j0..][..n];
            let (mut dgr, mut dxr) = grads_row(ch, s, r);
            cell.bwd_mid(n, hp, ws_row(ch, s, r), &sc.tile[(r - r0) * npad..][..n], dh_r, &mut dgr, &mut dxr);
        }
    };
    // dh_prev[:, units] += dG_s[:, ..HH_BLOCKS·H] · W_hh[..HH_BLOCKS·H, units].
    let gemm_step = |sc: &mut BwdScratch, part: &Part, s: usize| {
        let (ch, Rows { r0, n: nr }) = (&part.ch, part.rows);
        let (j0, n, npad) = (ch.j0, ch.n, ch.npad);
        let dg_s = unsafe { dg.get((s * b + r0) * gh, nr * gh) };
        let w = unsafe { w_sh.get(ch.first * hh_w * NR, ch.np * hh_w * NR) };
        step_product(one_row, dg_s, gh, nr, hh_w, w, 1, ch.np, &mut sc.tile, npad);
        for r in rows_of(part) {
            if p.time_of(s, r).is_none() {
                continue;
            }
            let d = unsafe { dh.get_mut(r * h + j0, n) };
            for (v, &a) in d.iter_mut().zip(&sc.tile[(r - r0) * npad..][..n]) {
                *v += a;
            }
        }
    };
    // Phases: packing; the cell half of step T−1; then per step s (descending) [its mid half,]
    // its GEMM together with the cell half of step s − 1. Each phase ends at a barrier.
    let per = if C::HAS_MID { 2 } else { 1 };
    let work = |sc: &mut BwdScratch, part: &Part, _slot: usize, ph: usize| {
        if ph == 1 {
            return cell_step(sc, part, t - 1);
        }
        let (s, half) = (t - 1 - (ph - 2) / per, (ph - 2) % per);
        if half + 1 < per {
            mid_step(sc, part, s);
        } else {
            if s > 0 {
                prefetch_step(part, s - 1);
            }
            gemm_step(sc, part, s);
            if s > 0 {
                cell_step(sc, part, s - 1);
            }
        }
    };
    split.run(2 + per * t, 1 + C::HAS_MID as usize, scratch, pack, work);
    crate::pool::release(w_pk);
    crate::pool::release(wm_pk);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No unit test of the crate overrides the row threshold, so the default rule is read here.
    #[test]
    fn the_input_projection_moves_into_the_steps_at_more_rows_when_the_weights_spill_from_l2() {
        let (fits, spills) = (LANE_L2_BYTES, 3 * LANE_L2_BYTES);
        assert!(!input_in_steps(STEP_INPUT_MIN_ROWS - 1, fits, 2));
        assert!(input_in_steps(STEP_INPUT_MIN_ROWS, 2 * fits, 2), "a share of 1 MiB per runner fits");
        assert!(!input_in_steps(STEP_INPUT_MIN_ROWS, spills, 2));
        assert!(!input_in_steps(2 * STEP_INPUT_MIN_ROWS - 1, spills, 2));
        assert!(input_in_steps(2 * STEP_INPUT_MIN_ROWS, spills, 2));
        assert!(input_in_steps(STEP_INPUT_MIN_ROWS, spills, 4), "shared by more runners, it fits");
    }
}
