//! Throughput of the step kernel (`cpu::simd::Kernels::panels`) on one core at the shapes of a
//! recurrent step, in GFLOP/s, next to the core's FMA peak estimate: is the step GEMM the limit?
//!
//!   cargo run --release -p recurrent-core --example panels_peak [-- m,k,n ...]

use recurrent_core::cpu::simd::{kernels, pack_panels, pack_rows_into, NR};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<(usize, usize, usize)> = if args.is_empty() {
        vec![
            (32, 256, 1024),
            (16, 256, 1024),
            (16, 256, 512),
            (32, 256, 512),
            (6, 256, 1024),
            (1, 256, 1024),
            (1, 256, 512),
            (32, 512, 2048),
        ]
    } else {
        args.iter()
            .map(|a| {
                let v: Vec<usize> = a.split(',').map(|x| x.parse().expect("m,k,n")).collect();
                (v[0], v[1], v[2])
            })
            .collect()
    };
    let kern = kernels();
    println!("kernel table {:?}", kern.isa);
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5).collect();
        let mut packed = vec![];
        pack_panels(k, 0, n, &w, n, 1, &mut packed);
        let np = n.div_ceil(NR);
        let mut out = vec![0f32; m * np * NR];
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).ceil() as usize;
        let mut best = f64::INFINITY;
        for _ in 0..7 {
            let t0 = Instant::now();
            for _ in 0..reps {
                kern.panels(&a, k, m, k, &packed, np, &mut out, np * NR);
            }
            best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
        }
        let gf = 2.0 * (m * k * n) as f64 / best / 1e9;
        println!(
            "m={m:3} k={k:4} n={n:5} ({} KiB packed): {:.1} µs, {gf:.0} GFLOP/s",
            packed.len() * 4 / 1024,
            best * 1e6
        );
        if m == 1 {
            // The engine's kernel for steps of one row: the same weights packed in rows.
            let mut rows = vec![0f32; packed.len()];
            pack_rows_into(k, 0, n, &w, n, 1, &mut rows);
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let t0 = Instant::now();
                for _ in 0..reps {
                    kern.row(&a, k, &rows, np * NR, &mut out);
                }
                best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
            }
            let gf = 2.0 * (k * n) as f64 / best / 1e9;
            println!("      the same, packed in rows (Kernels::row): {:.1} µs, {gf:.0} GFLOP/s", best * 1e6);
        }
    }
}
