//! Cost of the fused LSTM cell (`cpu::lstm_rows`) on one core, forward and backward, in ns per
//! 16 units, at a step's shape (rows × H): how much of a step is activation math?
//!
//!   cargo run --release -p recurrent-core --example cell_peak [-- rows,h ...]

use recurrent_core::cpu::lstm_rows::{row_kernels, BwdRow, BwdStrides, FwdRow, FwdStrides};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<(usize, usize)> = if args.is_empty() {
        vec![(16, 256), (1, 256), (32, 512)]
    } else {
        args.iter()
            .map(|a| {
                let v: Vec<usize> = a.split(',').map(|x| x.parse().expect("rows,h")).collect();
                (v[0], v[1])
            })
            .collect()
    };
    let Some((fwd, bwd)) = row_kernels() else {
        println!("no row kernels on this CPU (portable table)");
        return;
    };
    for (rows, h) in shapes {
        let val = |i: usize| ((i * 7919) % 1000) as f32 / 125.0 - 4.0;
        let xp: Vec<f32> = (0..rows * 4 * h).map(val).collect();
        let hh: Vec<f32> = (0..rows * 4 * h).map(|i| val(i + 17) * 0.5).collect();
        let mut c: Vec<f32> = (0..rows * h).map(|i| val(i + 3) * 0.25).collect();
        let (mut hv, mut ws) = (vec![0f32; rows * h], vec![0f32; rows * 6 * h]);
        let (mut dh, mut dc, mut dg) = (vec![0.1f32; rows * h], vec![0.1f32; rows * h], vec![0f32; rows * 4 * h]);
        let reps = (2e7 / (rows * h) as f64).ceil() as usize;
        let vectors = (rows * h.div_ceil(16) * reps) as f64;
        let mut best = [f64::INFINITY; 2];
        for _ in 0..7 {
            let t0 = Instant::now();
            for _ in 0..reps {
                for r in 0..rows {
                    let row = FwdRow {
                        rows: 1,
                        rs: FwdStrides::default(),
                        n: h,
                        xp: xp[r * 4 * h..].as_ptr(),
                        ld_in: h,
                        bias: std::ptr::null(),
                        ld_bias: 0,
                        hh: hh[r * 4 * h..].as_ptr(),
                        ld_hh: h,
                        c: c[r * h..].as_mut_ptr(),
                        h: hv[r * h..].as_mut_ptr(),
                        y: std::ptr::null_mut(),
                        ws: ws[r * 6 * h..].as_mut_ptr(),
                        ld_ws: h,
                    };
                    // SAFETY: every pointer covers the row's blocks of the vectors above.
                    unsafe { fwd(&row) };
                }
                // Keep c bounded over the repetitions.
                c.iter_mut().for_each(|v| *v = v.clamp(-4.0, 4.0));
            }
            best[0] = best[0].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            for _ in 0..reps {
                for r in 0..rows {
                    let row = BwdRow {
                        rows: 1,
                        rs: BwdStrides::default(),
                        n: h,
                        ws: ws[r * 6 * h..].as_ptr(),
                        ld_ws: h,
                        dy: std::ptr::null(),
                        dh: dh[r * h..].as_mut_ptr(),
                        dc: dc[r * h..].as_mut_ptr(),
                        dg: dg[r * 4 * h..].as_mut_ptr(),
                        ld_dg: h,
                    };
                    // SAFETY: as above.
                    unsafe { bwd(&row) };
                }
                dh.iter_mut().for_each(|v| *v = 0.1);
                dc.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
            }
            best[1] = best[1].min(t0.elapsed().as_secs_f64());
        }
        println!(
            "rows={rows:3} h={h:4}: forward {:.1} ns, backward {:.1} ns per 16 units (with the bounding pass)",
            best[0] * 1e9 / vectors,
            best[1] * 1e9 / vectors
        );
    }
}
