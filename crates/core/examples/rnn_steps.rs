//! Before/after timing of the float32 recurrent op alone: the generic per-step loop against the
//! team engine, rounds alternating in one process, for every cell at the sizes (or the
//! ones given), training (forward + backward of a weighted sum) and inference (no_grad forward).
//!
//!   cargo run --release -p recurrent-core --example rnn_steps [-- lstm:32,50,64,256 ...]
//!
//! Prints the median ms of each engine and their ratio. The user-facing comparison against
//! PyTorch is `npm run bench:torch`. `CPU=1` reports CPU time of all threads instead of wall time (with
//! RAYON_NUM_THREADS=1: single-core cost, which other load on the machine disturbs less).
//! `INPUT_ROWS=n` sets from how many rows the input projection runs inside the steps.
//! `AB=lanes` compares the team sharing steps by units (first column) with the team in lanes
//! (rows through every step per runner). `ONLY=team` (or `generic`) runs one engine and
//! `MODE=infer` (or `train`) one mode, for profiling; `MODE=fwd` reports, in the infer row, the
//! training forward (with the saves for backward) instead.

use recurrent_core::ops::elementwise::{mul, sum_to};
use recurrent_core::ops::rnn::{
    recurrent_layer, set_fast_f32_engine, set_lane_min_rows, set_step_input_min_rows, CellKind, RecurrentWeights,
};
use recurrent_core::{backward, no_grad, DType, Tensor};
use std::time::Instant;

/// On-CPU nanoseconds of every thread of this process so far (Linux schedstat), in ms: with
/// `CPU=1` the example reports this instead of wall time, which a busy machine distorts less.
fn cpu_ms() -> f64 {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                ns += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    ns as f64 * 1e-6
}

fn median(v: Vec<f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Case {
    kind: CellKind,
    b: usize,
    t: usize,
    i: usize,
    h: usize,
}

fn parse(arg: &str) -> Case {
    let (k, dims) = arg.split_once(':').expect("cell:B,T,I,H");
    let v: Vec<usize> = dims.split(',').map(|x| x.parse().expect("a number")).collect();
    Case { kind: CellKind::parse(k).expect("a cell name"), b: v[0], t: v[1], i: v[2], h: v[3] }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<Case> = if args.is_empty() {
        ["lstm:32,50,64,256", "gru:32,50,64,256", "rnn_tanh:32,50,64,256", "lstm:1,100,256,256", "lstm:64,100,512,512"]
            .iter()
            .map(|s| parse(s))
            .collect()
    } else {
        args.iter().map(|s| parse(s)).collect()
    };
    // INPUT_ROWS=n: the team computes the input projection inside its steps from n rows (the
    // engine's rule otherwise).
    if let Some(rows) = std::env::var("INPUT_ROWS").ok().and_then(|v| v.parse().ok()) {
        set_step_input_min_rows(rows);
    }
    // The engine's rows per lane, put back after each lanes-off round of AB=lanes.
    let lane_rows = set_lane_min_rows(0);
    set_lane_min_rows(lane_rows);
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    for c in &cases {
        let (g, h) = (c.kind.gates(), c.h);
        let s = 1.0 / (h as f64).sqrt();
        let x = Tensor::randn(&[c.t, c.b, c.i], DType::F32, 1).unwrap();
        let h0 = Tensor::zeros(&[c.b, h], DType::F32).unwrap();
        let c0 = Tensor::zeros(&[c.b, h], DType::F32).unwrap();
        let w_ih = Tensor::rand_uniform(&[g * h, c.i], -s, s, DType::F32, 2).unwrap();
        let w_hh = Tensor::rand_uniform(&[g * h, h], -s, s, DType::F32, 3).unwrap();
        let b_ih = Tensor::rand_uniform(&[g * h], -s, s, DType::F32, 4).unwrap();
        let b_hh = Tensor::rand_uniform(&[g * h], -s, s, DType::F32, 5).unwrap();
        let params = [&w_ih, &w_hh, &b_ih, &b_hh];
        for p in params {
            p.set_requires_grad(true).unwrap();
        }
        let target = Tensor::randn(&[c.t, c.b, h], DType::F32, 6).unwrap();
        let c0 = if c.kind.has_c() { Some(&c0) } else { None };
        let w = RecurrentWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: Some(&b_ih), b_hh: Some(&b_hh) };
        let use_cpu = std::env::var("CPU").is_ok_and(|v| v == "1");
        let clock = |t0: Instant, cpu0: f64| if use_cpu { cpu_ms() - cpu0 } else { t0.elapsed().as_secs_f64() * 1e3 };
        let train = || {
            let (t0, cpu0) = (Instant::now(), cpu_ms());
            let out = recurrent_layer(c.kind, &x, &h0, c0, &w, None, false).unwrap();
            let loss = sum_to(&mul(&out.y, &target).unwrap(), &[]).unwrap();
            backward(&loss, None).unwrap();
            for p in params {
                p.grad().unwrap().storage().unwrap();
                p.zero_grad();
            }
            clock(t0, cpu0)
        };
        // MODE=fwd times the training forward instead (it saves the workspace for backward).
        let saving = std::env::var("MODE").is_ok_and(|m| m == "fwd");
        let infer = || {
            let (t0, cpu0) = (Instant::now(), cpu_ms());
            let run = || recurrent_layer(c.kind, &x, &h0, c0, &w, None, false).unwrap().y.storage().unwrap();
            if saving {
                run();
            } else {
                no_grad(run);
            }
            clock(t0, cpu0)
        };
        // [engine][mode] samples; warm-up round first.
        let mut ms = vec![vec![vec![]; 2]; 2];
        // ONLY=team or ONLY=generic runs one engine (for profiling).
        let only = std::env::var("ONLY").unwrap_or_default();
        // AB=lanes compares the team by units ("generic" column) with the team in lanes.
        let lanes_ab = std::env::var("AB").is_ok_and(|v| v == "lanes");
        for round in 0..=rounds {
            for (e, fast) in [false, true].into_iter().enumerate() {
                if (only == "team" && !fast) || (only == "generic" && fast) {
                    ms[e][0].push(f64::NAN);
                    ms[e][1].push(f64::NAN);
                    continue;
                }
                if lanes_ab {
                    // Both engines are the team; the first never shares a call out by rows.
                    set_lane_min_rows(if fast { lane_rows } else { usize::MAX });
                } else {
                    set_fast_f32_engine(fast);
                }
                let mode = std::env::var("MODE").unwrap_or_default();
                let tr = if mode == "infer" || mode == "fwd" { f64::NAN } else { train() };
                let inf = if mode == "train" { f64::NAN } else { infer() };
                if round > 0 {
                    ms[e][0].push(tr);
                    ms[e][1].push(inf);
                }
            }
        }
        set_fast_f32_engine(true);
        set_lane_min_rows(lane_rows);
        let name = format!("{:?} B={} T={} I={} H={}", c.kind, c.b, c.t, c.i, c.h);
        for (m, mode) in ["train", "infer"].iter().enumerate() {
            let (old, new) = (median(ms[0][m].clone()), median(ms[1][m].clone()));
            println!("{mode} {name}: generic {old:.2} ms, team {new:.2} ms, ratio {:.2}", old / new);
        }
    }
}
