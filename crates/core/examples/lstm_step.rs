//! Quick timing of one LSTM training step (forward + backward) at the sizes, and of a
//! large SGEMM on the same machine. The user-facing benchmark is bench/lstm-train.ts.

use recurrent_core::cpu::{gemm, Mat};
use recurrent_core::ops::elementwise::{mul, sum_to};
use recurrent_core::ops::rnn::{recurrent_layer, CellKind, RecurrentWeights};
use recurrent_core::{backward, DType, Tensor};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let mut c = vec![0f32; n * n];
    let mut ts = vec![];
    let sgemm_runs = if std::env::var("SKIP_SGEMM").is_ok() { 1 } else { 7 };
    for _ in 0..sgemm_runs {
        let t0 = Instant::now();
        gemm(n, n, n, Mat::n(&a, n), Mat::n(&a, n), &mut c, n, false);
        ts.push(t0.elapsed().as_secs_f64());
    }
    let sgemm = 2.0 * (n as f64).powi(3) / median(ts) / 1e9;
    println!("SGEMM {n}: {sgemm:.1} GFLOP/s");
    let sizes: Vec<(usize, usize, usize, usize)> = std::env::args()
        .nth(1)
        .map(|s| {
            let v: Vec<usize> = s.split(',').map(|x| x.parse().unwrap()).collect();
            vec![(v[0], v[1], v[2], v[3])]
        })
        .unwrap_or(vec![(32, 50, 64, 256), (64, 100, 512, 512)]);
    for &(b, t, i, h) in &sizes {
        let x = Tensor::randn(&[t, b, i], DType::F32, 1).unwrap();
        let h0 = Tensor::zeros(&[b, h], DType::F32).unwrap();
        let c0 = Tensor::zeros(&[b, h], DType::F32).unwrap();
        let s = 1.0 / (h as f64).sqrt();
        let w_ih = Tensor::rand_uniform(&[4 * h, i], -s, s, DType::F32, 2).unwrap();
        let w_hh = Tensor::rand_uniform(&[4 * h, h], -s, s, DType::F32, 3).unwrap();
        let b_ih = Tensor::rand_uniform(&[4 * h], -s, s, DType::F32, 4).unwrap();
        let b_hh = Tensor::rand_uniform(&[4 * h], -s, s, DType::F32, 5).unwrap();
        for p in [&w_ih, &w_hh, &b_ih, &b_hh] {
            p.set_requires_grad(true).unwrap();
        }
        let target = Tensor::randn(&[t, b, h], DType::F32, 6).unwrap();
        let mut times = vec![];
        let mut fwd = vec![];
        for _ in 0..7 {
            let t0 = Instant::now();
            let w = RecurrentWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: Some(&b_ih), b_hh: Some(&b_hh) };
            let out = recurrent_layer(CellKind::Lstm, &x, &h0, Some(&c0), &w, None, false).unwrap();
            out.y.storage().unwrap();
            fwd.push(t0.elapsed().as_secs_f64());
            let loss = sum_to(&mul(&out.y, &target).unwrap(), &[]).unwrap();
            backward(&loss, None).unwrap();
            w_ih.grad().unwrap().storage().unwrap();
            b_hh.grad().unwrap().storage().unwrap();
            times.push(t0.elapsed().as_secs_f64());
            for p in [&w_ih, &w_hh, &b_ih, &b_hh] {
                p.zero_grad();
            }
        }
        let flops = 3.0 * 2.0 * 4.0 * h as f64 * (i + h) as f64 * (b * t) as f64;
        let med = median(times);
        println!(
            "LSTM B={b} T={t} I={i} H={h}: fwd {:.1} ms, fwd+bwd {:.1} ms, {:.1} GFLOP/s ({:.0}% of SGEMM)",
            median(fwd) * 1e3,
            med * 1e3,
            flops / med / 1e9,
            100.0 * flops / med / 1e9 / sgemm
        );
    }
}
