//! The float32 recurrent engine (persistent team, packed SIMD step kernels) against the float64
//! generic loop, the reference: every cell, lengths, both directions, two stacked bidirectional
//! layers, B = 1 and B > 1, sizes that are not multiples of the 16-unit panels; forward outputs
//! and every gradient. Also: bits do not depend on the team's slot count, and repeat.

use recurrent_core::ops::elementwise::{mul, sum_to};
use recurrent_core::ops::rnn::{
    recurrent_layer, set_lane_min_rows, set_step_input_min_rows, set_team_limits, CellKind, RecurrentWeights,
};
use recurrent_core::ops::shape::concat;
use recurrent_core::{backward, DType, Result, Tensor};
use std::sync::Mutex;

const KINDS: [CellKind; 5] =
    [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore];

/// The team limits are process-wide: tests that set them run one at a time.
static LIMITS: Mutex<()> = Mutex::new(());

fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let t = Tensor::randn(&[n], DType::F64, seed).unwrap();
    t.to_vec_f64().unwrap().into_iter().map(|x| scale * x).collect()
}

fn tensor(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    let t = match dtype {
        DType::F64 => Tensor::from_f64(v.to_vec(), shape).unwrap(),
        _ => Tensor::from_f32(v.iter().map(|&x| x as f32).collect(), shape).unwrap(),
    };
    t.set_requires_grad(true).unwrap();
    t
}

/// A stack of `layers` layers, `dirs` directions each, as the TS modules compose the op.
#[derive(Clone)]
struct Net {
    kind: CellKind,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    layers: usize,
    dirs: usize,
    lengths: Option<Vec<usize>>,
    /// h0 and c0 zero (the engine then skips the first step's recurrent product).
    zero_state: bool,
}

impl Net {
    /// x, then per layer and direction: h0, [c0], w_ih, w_hh, b_ih, b_hh (PyTorch-like scale).
    fn params(&self, seed: u64) -> Vec<(Vec<f64>, Vec<usize>)> {
        let (g, h) = (self.kind.gates(), self.h);
        let s = 1.0 / (h as f64).sqrt();
        let mut v = vec![(values(self.t * self.b * self.i, seed, 1.0), vec![self.t, self.b, self.i])];
        for l in 0..self.layers {
            let in_size = if l == 0 { self.i } else { self.dirs * h };
            for d in 0..self.dirs {
                let sd = seed + 100 * (1 + l as u64) + 10 * d as u64;
                let state = |seed| if self.zero_state { vec![0.0; self.b * h] } else { values(self.b * h, seed, 0.5) };
                v.push((state(sd), vec![self.b, h]));
                if self.kind.has_c() {
                    v.push((state(sd + 1), vec![self.b, h]));
                }
                v.push((values(g * h * in_size, sd + 2, s), vec![g * h, in_size]));
                v.push((values(g * h * h, sd + 3, 1.5 * s), vec![g * h, h]));
                v.push((values(g * h, sd + 4, s), vec![g * h]));
                v.push((values(g * h, sd + 5, s), vec![g * h]));
            }
        }
        v
    }

    /// Forward, a weighted sum of every output as the loss, backward. Returns the outputs and
    /// then every gradient, flattened to f64.
    fn run(&self, params: &[(Vec<f64>, Vec<usize>)], dtype: DType) -> Result<Vec<Vec<f64>>> {
        // Buffers the op takes from the pool start as NaN: any element it fails to write shows.
        recurrent_core::pool::poison_takes(true);
        let ts: Vec<Tensor> = params.iter().map(|(v, s)| tensor(v, s, dtype)).collect();
        let c = self.kind.has_c() as usize;
        let per = 5 + c;
        let mut layer_in = ts[0].clone();
        let mut outs = vec![];
        for l in 0..self.layers {
            let mut ys = vec![];
            for d in 0..self.dirs {
                let p = &ts[1 + (l * self.dirs + d) * per..];
                let c0 = if c == 1 { Some(&p[1]) } else { None };
                let w =
                    RecurrentWeights { w_ih: &p[1 + c], w_hh: &p[2 + c], b_ih: Some(&p[3 + c]), b_hh: Some(&p[4 + c]) };
                let o = recurrent_layer(self.kind, &layer_in, &p[0], c0, &w, self.lengths.as_deref(), d == 1)?;
                outs.push(o.h_t);
                outs.extend(o.c_t);
                ys.push(o.y);
            }
            layer_in = if ys.len() == 1 { ys.pop().unwrap() } else { concat(&[&ys[0], &ys[1]], 2)? };
        }
        outs.push(layer_in);
        let mut loss: Option<Tensor> = None;
        for (k, o) in outs.iter().enumerate() {
            let n: usize = o.shape().iter().product();
            let wv = values(n, 9000 + k as u64, 1.0);
            let w = match dtype {
                DType::F64 => Tensor::from_f64(wv, o.shape())?,
                _ => Tensor::from_f32(wv.iter().map(|&x| x as f32).collect(), o.shape())?,
            };
            let term = sum_to(&mul(o, &w)?, &[])?;
            loss = Some(match loss {
                None => term,
                Some(l) => recurrent_core::ops::elementwise::add(&l, &term)?,
            });
        }
        backward(&loss.unwrap(), None)?;
        let mut res: Vec<Vec<f64>> = outs.iter().map(|o| o.to_vec_f64().unwrap()).collect();
        for t in &ts {
            res.push(t.grad().expect("every input gets a gradient").to_vec_f64()?);
        }
        Ok(res)
    }
}

/// Largest |f32 − f64| of each output and gradient, relative to that array's largest |f64|,
/// with the input projection hoisted before the loop and computed inside the steps, and with
/// the steps shared out by units and by rows (lanes of one row and up).
fn check(net: &Net, tol: f64) {
    let params = net.params(17);
    let want = net.run(&params, DType::F64).unwrap();
    let ways = [("hoisted", usize::MAX, usize::MAX), ("in steps", 0, usize::MAX), ("in steps, in lanes", 0, 1)];
    for (input, rows, lane_rows) in ways {
        set_step_input_min_rows(rows);
        let lanes_before = set_lane_min_rows(lane_rows);
        let got = net.run(&params, DType::F32);
        set_step_input_min_rows(DEFAULT_STEP_INPUT_ROWS);
        set_lane_min_rows(lanes_before);
        let got = got.unwrap();
        assert_eq!(want.len(), got.len());
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            // (f64::max skips NaN, so a NaN would pass the error bound below unseen.)
            assert!(w.iter().chain(g).all(|v| v.is_finite()), "{:?}: array {k} has a non-finite value", net.kind);
            let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
            let err = w.iter().zip(g).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
            assert!(
                err < tol,
                "{:?} B={} H={} layers={} dirs={} lengths={:?}, input projection {input}: array {k} off by {err:e} (relative to {scale:e})",
                net.kind,
                net.b,
                net.h,
                net.layers,
                net.dirs,
                net.lengths
            );
        }
    }
}

/// The engine's default (rnn_fast.rs), restored after each override.
const DEFAULT_STEP_INPUT_ROWS: usize = 8;

/// Tolerance: float32 rounding through a few steps of sums over tens of terms is ~1e-6
/// relative; 1e-4 leaves room for the gradients' longer chains, and is far below what any
/// indexing or masking mistake gives (order 1).
const TOL: f64 = 1e-4;

#[test]
fn f32_engine_matches_f64_reference_single_layer() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    // Every step on a team of 3 slots, whatever the size, so that odd sizes split unevenly.
    set_team_limits(0, 3);
    for kind in KINDS {
        // H = 600: 38 panels split unevenly, packed weights larger than a core's L2.
        let sizes = [
            (3, 37, Some(vec![6, 2, 4])),
            (1, 45, None),
            (13, 50, None),
            (3, 13, Some(vec![1, 6, 3])),
            (2, 600, Some(vec![6, 3])),
        ];
        for (b, h, lengths) in sizes {
            for dirs in [1, 2] {
                let net = Net { kind, t: 6, b, i: 5, h, layers: 1, dirs, lengths: lengths.clone(), zero_state: false };
                check(&net, TOL);
            }
        }
    }
    set_team_limits(1 << 16, 0);
}

#[test]
fn f32_engine_matches_f64_reference_two_bidirectional_layers() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    set_team_limits(0, 2);
    for kind in KINDS {
        for (b, h, lengths) in [(3, 37, Some(vec![5, 2, 4])), (1, 20, Some(vec![3]))] {
            let net = Net { kind, t: 5, b, i: 4, h, layers: 2, dirs: 2, lengths, zero_state: false };
            check(&net, TOL);
        }
    }
    set_team_limits(1 << 16, 0);
}

/// The default size rule (the team only above its threshold, one slot per pool thread) at a
/// size that uses it, through B not a multiple of the row tile.
#[test]
fn f32_engine_matches_f64_reference_at_default_limits() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    for kind in KINDS {
        let net = Net {
            kind,
            t: 4,
            b: 9,
            i: 7,
            h: 100,
            layers: 1,
            dirs: 2,
            lengths: Some(vec![4, 1, 2, 3, 4, 4, 2, 3, 1]),
            zero_state: false,
        };
        check(&net, TOL);
        // Enough rows for lanes of the default size on two or more pool threads.
        let lengths = (0..19).map(|r| 1 + r % 5).collect();
        let net = Net { kind, t: 5, b: 19, i: 6, h: 60, layers: 2, dirs: 1, lengths: Some(lengths), zero_state: false };
        check(&net, TOL);
    }
}

#[test]
fn f32_bits_do_not_depend_on_slot_count_and_repeat() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    for kind in KINDS {
        let net = Net {
            kind,
            t: 5,
            b: 7,
            i: 6,
            h: 70,
            layers: 1,
            dirs: 2,
            lengths: Some(vec![5, 3, 5, 1, 2, 5, 4]),
            zero_state: false,
        };
        let params = net.params(5);
        for rows in [usize::MAX, 0] {
            set_step_input_min_rows(rows);
            let bits = |slots: usize| {
                set_team_limits(0, slots);
                let r = net.run(&params, DType::F32).unwrap();
                r.into_iter().flatten().map(f64::to_bits).collect::<Vec<u64>>()
            };
            let one = bits(1);
            assert_eq!(one, bits(1), "{kind:?}: repeat");
            // By units, then by rows: lanes of 1 to 3 rows (where the projection is in steps).
            let lanes_before = set_lane_min_rows(usize::MAX);
            for lane_rows in [usize::MAX, 1, 2] {
                set_lane_min_rows(lane_rows);
                for slots in [2, 3, 5] {
                    let ctx =
                        format!("{slots} slots, input projection in steps from {rows} rows, lanes from {lane_rows}");
                    assert_eq!(one, bits(slots), "{kind:?}: {ctx}");
                }
            }
            set_lane_min_rows(lanes_before);
        }
        set_step_input_min_rows(DEFAULT_STEP_INPUT_ROWS);
    }
    set_team_limits(1 << 16, 0);
}

/// With zero initial states the engine skips the first step's recurrent product (it is +0
/// everywhere when W_hh is finite). Every cell against the reference, in units and in lanes,
/// both directions, with lengths; and bit for bit against the full product: the same rows in a
/// call where one more row has a nonzero h0 (no skip there) give the same outputs, with W_hh
/// finite, and with an infinite weight (0·∞ = NaN in the full product: no skip then either),
/// its packing cold and cached.
#[test]
fn f32_engine_with_zero_initial_state() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    set_team_limits(0, 2);
    for kind in KINDS {
        for (b, h, lengths) in [(3, 37, Some(vec![6, 2, 4])), (13, 50, None), (1, 45, None)] {
            let net = Net { kind, t: 6, b, i: 5, h, layers: 1, dirs: 2, lengths, zero_state: true };
            check(&net, TOL);
        }
    }
    for kind in KINDS {
        let (t, b, i, h) = (4, 16, 5, 40);
        let g = kind.gates();
        let f32t = |v: Vec<f64>, s: &[usize]| Tensor::from_f32(v.iter().map(|&x| x as f32).collect(), s).unwrap();
        // Rows 0..b, and row b, zero in one call and not in the other.
        let x = f32t(values(t * (b + 1) * i, 1, 1.0), &[t, b + 1, i]);
        let zero = f32t(vec![0.0; (b + 1) * h], &[b + 1, h]);
        let mut last = vec![0.0; (b + 1) * h];
        last[b * h..].copy_from_slice(&values(h, 4, 0.5));
        let last = f32t(last, &[b + 1, h]);
        let w_ih = f32t(values(g * h * i, 2, 0.3), &[g * h, i]);
        for infinite in [false, true] {
            let mut whh = values(g * h * h, 3, 0.2);
            if infinite {
                whh[7 * h + 11] = f64::INFINITY;
            }
            let w_hh = f32t(whh, &[g * h, h]);
            for lane_rows in [usize::MAX, 1] {
                let lanes_before = set_lane_min_rows(lane_rows);
                for call in ["packing", "cached packing"] {
                    let run = |h0: &Tensor| {
                        let w = RecurrentWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: None, b_hh: None };
                        let c0 = if kind.has_c() { Some(h0) } else { None };
                        let y = recurrent_layer(kind, &x, h0, c0, &w, None, false).unwrap().y.to_vec_f64().unwrap();
                        // Rows 0..b of every step, as bits (NaN compares too).
                        (0..t)
                            .flat_map(|s| y[s * (b + 1) * h..][..b * h].to_vec())
                            .map(f64::to_bits)
                            .collect::<Vec<_>>()
                    };
                    let (skipped, full) = (run(&zero), run(&last));
                    let ctx = format!("{kind:?}, W_hh infinite {infinite}, lanes from {lane_rows} rows, {call}");
                    assert!(skipped == full, "{ctx}: rows with zero h0 differ from the full product's");
                }
                set_lane_min_rows(lanes_before);
            }
        }
    }
    set_team_limits(1 << 16, 0);
}

/// A NaN in x reaches the outputs as NaN, as in the f64 reference (and PyTorch): from its
/// step on in its row, and nowhere else. The fast activations clamp their argument, and a clamp
/// that turned NaN into a bound would give finite values here. ReLU maps NaN to 0 by design.
#[test]
fn f32_engine_keeps_nan() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    set_team_limits(0, 2);
    for kind in [CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore] {
        let (t, b, i, h, row, step) = (4, 12, 5, 40, 3, 1);
        let g = kind.gates();
        let mut xv = values(t * b * i, 1, 1.0);
        xv[(step * b + row) * i + 2] = f64::NAN;
        let nan_at = |y: &[f64]| (0..t * b * h).map(|k| y[k].is_nan()).collect::<Vec<bool>>();
        let want: Vec<bool> = (0..t * b * h).map(|k| k / (b * h) >= step && (k / h) % b == row).collect();
        for dtype in [DType::F64, DType::F32] {
            let tt = |v: Vec<f64>, s: &[usize]| match dtype {
                DType::F64 => Tensor::from_f64(v, s).unwrap(),
                _ => Tensor::from_f32(v.iter().map(|&x| x as f32).collect(), s).unwrap(),
            };
            let x = tt(xv.clone(), &[t, b, i]);
            let (h0, w_ih, w_hh) = (
                tt(values(b * h, 2, 0.5), &[b, h]),
                tt(values(g * h * i, 3, 0.3), &[g * h, i]),
                tt(values(g * h * h, 4, 0.2), &[g * h, h]),
            );
            for lane_rows in [usize::MAX, 1] {
                let lanes_before = set_lane_min_rows(lane_rows);
                let w = RecurrentWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: None, b_hh: None };
                let c0 = if kind.has_c() { Some(&h0) } else { None };
                let y = recurrent_layer(kind, &x, &h0, c0, &w, None, false).unwrap().y.to_vec_f64().unwrap();
                set_lane_min_rows(lanes_before);
                assert!(
                    nan_at(&y) == want,
                    "{kind:?} {dtype:?}, lanes from {lane_rows} rows: NaN not where x's NaN leads"
                );
            }
        }
    }
    set_team_limits(1 << 16, 0);
}

/// The team engine keeps W_hh (and W_ih, when the steps compute the input projection) packed
/// for the next forward call on the same weights. Calls that
/// reuse a weight tensor give the bits of the first; a new weight tensor (another storage, so
/// another cache entry, even at an address a dropped one had) gives its own correct result.
#[test]
fn packed_weights_are_reused_only_for_the_same_weights() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    set_team_limits(0, 2);
    // Hoisted input projection (W_hh packed and cached), then in steps (W_ih as well).
    for rows in [usize::MAX, 0] {
        set_step_input_min_rows(rows);
        for kind in KINDS {
            let (t, b, i, h) = (4, 3, 5, 37);
            let g = kind.gates();
            let f32t = |v: Vec<f64>, s: &[usize]| Tensor::from_f32(v.iter().map(|&x| x as f32).collect(), s).unwrap();
            let x = f32t(values(t * b * i, 1, 1.0), &[t, b, i]);
            let h0 = f32t(values(b * h, 2, 0.5), &[b, h]);
            let c0 = f32t(values(b * h, 3, 0.5), &[b, h]);
            let forward = |w_ih: &Tensor, w_hh: &Tensor| {
                let w = RecurrentWeights { w_ih, w_hh, b_ih: None, b_hh: None };
                let c = if kind.has_c() { Some(&c0) } else { None };
                let o = recurrent_layer(kind, &x, &h0, c, &w, Some(&[4, 2, 3]), false).unwrap();
                o.y.to_vec_f64().unwrap()
            };
            // Each weight in turn takes three values while the other stays.
            for varied in ["w_hh", "w_ih"] {
                let fixed_ih = f32t(values(g * h * i, 4, 0.3), &[g * h, i]);
                let fixed_hh = f32t(values(g * h * h, 9, 0.25), &[g * h, h]);
                let make = |seed: u64| match varied {
                    "w_hh" => f32t(values(g * h * h, seed, 0.25), &[g * h, h]),
                    _ => f32t(values(g * h * i, seed, 0.3), &[g * h, i]),
                };
                let run = |w: &Tensor| match varied {
                    "w_hh" => forward(&fixed_ih, w),
                    _ => forward(w, &fixed_hh),
                };
                let ctx = format!("{kind:?}, {varied} varied, input projection in steps from {rows} rows");
                let mut seen = vec![];
                for seed in [10, 11, 12] {
                    let w = make(seed);
                    let first = run(&w);
                    assert_eq!(run(&w), first, "{ctx}: the second call on the same weights");
                    assert_eq!(run(&w), first, "{ctx}: the third call on the same weights");
                    // A copy of the weights in a new storage: no cache entry, the same bits.
                    let copy = f32t(w.to_vec_f64().unwrap(), w.shape());
                    assert_eq!(run(&copy), first, "{ctx}: the same weights in another tensor");
                    assert!(seen.iter().all(|s: &Vec<f64>| *s != first), "{ctx}: other weights, other results");
                    seen.push(first);
                    drop(w);
                }
                // Fresh weights after the others were dropped (their storages' memory may be
                // reused): the result equals the one computed with the cache cold for them.
                for seed in [10, 11, 12] {
                    assert_eq!(run(&make(seed)), seen[(seed - 10) as usize], "{ctx}: weights {seed} again");
                }
            }
        }
    }
    set_step_input_min_rows(DEFAULT_STEP_INPUT_ROWS);
    set_team_limits(1 << 16, 0);
}

/// The engine on the other kernel tables (AVX2 with its LSTM row kernels, and the portable one
/// with the generic cells): this binary again, in a child process per table, since the table is
/// chosen once per process (`RECURRENT_SIMD` caps it).
#[test]
fn f32_engine_matches_f64_reference_on_every_kernel_table() {
    if std::env::var_os("RECURRENT_SIMD").is_some() {
        return; // the child runs the other tests
    }
    let exe = std::env::current_exe().expect("the test binary");
    for isa in ["avx2", "portable"] {
        let out = std::process::Command::new(&exe)
            .env("RECURRENT_SIMD", isa)
            .args(["--test-threads", "1", "f32_"])
            .output()
            .expect("run the test binary");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "RECURRENT_SIMD={isa}:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            text.contains("test result: ok. 7 passed"),
            "RECURRENT_SIMD={isa}: expected the 7 other f32_ tests:\n{text}"
        );
    }
}
