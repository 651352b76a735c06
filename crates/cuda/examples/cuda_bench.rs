//! Times one recurrent layer on `cuda:0`, forward and forward + backward, at DeepBench-style
//! sizes (I = H): LSTM H ∈ {512, 1024} × B ∈ {16, 64} at T = 25, LSTM H = 256 B = 32 T = 150,
//! GRU H = 1024 B = 32 T = 100. Each size: warm-up (kernel compilation, allocator), then
//! repeated runs, each ending in a device synchronisation; the median is reported, with
//! GFLOP/s counted as in shared/notes/perf-anchors.md (forward 2·G·H·(I+H)·B·T, a training step
//! about 3× that). Prints a table and one `BENCH {json}` line per size (scripts/gpu-check.sh
//! reads those). `bench/cudnn_reference.py` times cuDNN (torch.nn.LSTM/GRU) at the same sizes.
//!
//!   cargo run --release -p recurrent-cuda --example cuda_bench [-- --reps 20]

use recurrent_core::backend::register_cuda;
use recurrent_core::ops::reduce::sum_all;
use recurrent_core::ops::rnn::{recurrent_layer, CellKind, RecurrentWeights};
use recurrent_core::{backward, no_grad, DType, Device, Tensor};
use std::time::Instant;

struct Size {
    cell: CellKind,
    h: usize,
    b: usize,
    t: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let reps: usize = arg("--reps").and_then(|v| v.parse().ok()).unwrap_or(20);
    // `--device cpu` runs the same loop on the CPU backend (a sanity check of this program).
    let dev = Device::parse(&arg("--device").unwrap_or_else(|| "cuda".into())).expect("--device cpu|cuda");
    if dev != Device::Cpu {
        if let Some(reason) = recurrent_cuda::unavailable_reason() {
            println!("SKIP: no CUDA device ({reason})");
            return;
        }
        register_cuda(recurrent_cuda::open);
        let be = recurrent_core::backend::cuda(0).expect("open cuda:0");
        println!("device: {}", be.describe());
    } else {
        println!("device: cpu");
    }
    let sizes = [
        Size { cell: CellKind::Lstm, h: 512, b: 16, t: 25 },
        Size { cell: CellKind::Lstm, h: 512, b: 64, t: 25 },
        Size { cell: CellKind::Lstm, h: 1024, b: 16, t: 25 },
        Size { cell: CellKind::Lstm, h: 1024, b: 64, t: 25 },
        Size { cell: CellKind::Lstm, h: 256, b: 32, t: 150 },
        Size { cell: CellKind::Gru, h: 1024, b: 32, t: 100 },
    ];
    println!(
        "{:<5} {:>5} {:>4} {:>4}  {:>9} {:>12}  {:>10} {:>10}",
        "cell", "H", "B", "T", "fwd ms", "fwd+bwd ms", "fwd GF/s", "train GF/s"
    );
    for s in sizes {
        let (g, i, h, b, t) = (s.cell.gates(), s.h, s.h, s.b, s.t);
        let rnd = |shape: &[usize], seed: u64, scale: f64| -> Tensor {
            let v = Tensor::randn(shape, DType::F32, seed).unwrap().to_vec_f32().unwrap();
            Tensor::from_f32(v.into_iter().map(|x| x * scale as f32).collect(), shape).unwrap().to(dev).unwrap()
        };
        let ws = 1.0 / (h as f64).sqrt();
        let x = rnd(&[t, b, i], 1, 1.0);
        let h0 = rnd(&[b, h], 2, 0.5);
        let c0 = rnd(&[b, h], 3, 0.5);
        let w_ih = rnd(&[g * h, i], 4, ws);
        let w_hh = rnd(&[g * h, h], 5, ws);
        let b_ih = rnd(&[g * h], 6, 0.1);
        let b_hh = rnd(&[g * h], 7, 0.1);
        let dy = rnd(&[t, b, h], 8, 1.0);
        for p in [&x, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh] {
            p.set_requires_grad(true).unwrap();
        }
        let c0_arg = if s.cell.has_c() { Some(&c0) } else { None };
        let w = RecurrentWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: Some(&b_ih), b_hh: Some(&b_hh) };
        // Forward only (no graph), ended by reading one value: waits for all device work.
        let fwd = || {
            let start = Instant::now();
            let out = no_grad(|| recurrent_layer(s.cell, &x, &h0, c0_arg, &w, None, false)).unwrap();
            sum_all(&out.h_t).unwrap().item().unwrap();
            start.elapsed().as_secs_f64() * 1e3
        };
        let train = || {
            let start = Instant::now();
            let out = recurrent_layer(s.cell, &x, &h0, c0_arg, &w, None, false).unwrap();
            backward(&out.y, Some(dy.clone())).unwrap();
            let g = w_ih.grad().unwrap();
            sum_all(&g).unwrap().item().unwrap();
            for p in [&x, &h0, &c0, &w_ih, &w_hh, &b_ih, &b_hh] {
                p.zero_grad();
            }
            start.elapsed().as_secs_f64() * 1e3
        };
        for _ in 0..3 {
            fwd();
            train();
        }
        let f_ms = median((0..reps).map(|_| fwd()).collect());
        let t_ms = median((0..reps).map(|_| train()).collect());
        let flops = 2.0 * (g * h * (i + h) * b * t) as f64;
        let (f_gf, t_gf) = (flops / f_ms / 1e6, 3.0 * flops / t_ms / 1e6);
        let name = if s.cell == CellKind::Lstm { "lstm" } else { "gru" };
        println!("{name:<5} {h:>5} {b:>4} {t:>4}  {f_ms:>9.3} {t_ms:>12.3}  {f_gf:>10.0} {t_gf:>10.0}");
        println!("BENCH {{\"impl\":\"recurrent\",\"device\":\"{dev}\",\"cell\":\"{name}\",\"H\":{h},\"B\":{b},\"T\":{t},\"fwd_ms\":{f_ms:.4},\"fwdbwd_ms\":{t_ms:.4}}}");
    }
    if let Some(st) = recurrent_cuda::alloc_stats(0) {
        println!(
            "allocator: {} driver mallocs, {} reuses, peak reserved {:.1} MiB",
            st.mallocs,
            st.reuses,
            st.peak_reserved as f64 / (1 << 20) as f64
        );
    }
}
