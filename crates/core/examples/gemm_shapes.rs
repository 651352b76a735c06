//! Times the GEMM shapes of one recurrent step, in both orientations the `gemm` crate can be
//! asked for (C = A·B, or Cᵀ = Bᵀ·Aᵀ by swapping strides), to pick the faster one.

use std::time::Instant;

#[allow(clippy::too_many_arguments)] // a timing harness: the shape and operands are the point
fn run(m: usize, n: usize, k: usize, swap: bool, a: &[f32], b: &[f32], c: &mut [f32], par: gemm::Parallelism) {
    // a [m×k] row-major, b [k×n] row-major, c [m×n] row-major
    unsafe {
        if !swap {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        } else {
            // Cᵀ[n×m] = Bᵀ[n×k] · Aᵀ[k×m]: element (j, i) of Cᵀ is c[i·n + j]
            gemm::gemm(
                n,
                m,
                k,
                c.as_mut_ptr(),
                n as isize,
                1,
                false,
                b.as_ptr(),
                n as isize,
                1,
                a.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }
}

fn main() {
    for &(m, n, k) in &[
        (1usize, 1024usize, 256usize),
        (32, 1024, 256),
        (32, 256, 1024),
        (64, 512, 2048),
        (64, 2048, 512),
        (1, 256, 1024),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let mut c = vec![0f32; m * n];
        let reps = (2e9 / (2 * m * n * k) as f64).clamp(10.0, 20000.0) as usize;
        let mut line = format!("m={m:4} n={n:5} k={k:5}:");
        for (swap, par, label) in [
            (false, gemm::Parallelism::None, "1t"),
            (false, gemm::Parallelism::Rayon(2), "2t"),
            (true, gemm::Parallelism::None, "1t swap"),
            (true, gemm::Parallelism::Rayon(2), "2t swap"),
        ] {
            for _ in 0..reps / 10 {
                run(m, n, k, swap, &a, &b, &mut c, par);
            }
            let t0 = Instant::now();
            for _ in 0..reps {
                run(m, n, k, swap, &a, &b, &mut c, par);
            }
            let dt = t0.elapsed().as_secs_f64() / reps as f64;
            line += &format!("  {label} {:7.1}µs", dt * 1e6);
        }
        println!("{line}");
    }
}
