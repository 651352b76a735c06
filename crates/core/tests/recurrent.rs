//! The fused recurrent layer op: finite-difference gradients for every cell with masking and
//! direction, a naive reference for the equations, masking semantics, determinism, errors.

use recurrent_core::gradcheck::assert_grads;
use recurrent_core::ops::rnn::{parse_lengths, recurrent_layer, CellKind, RecurrentWeights};
use recurrent_core::{DType, Result, Tensor};

const KINDS: [CellKind; 5] =
    [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore];

fn rnd(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    // Scaled so that gates sit in their curved region, not saturated.
    let t = Tensor::randn(shape, DType::F64, seed).unwrap();
    let v: Vec<f64> = t.to_vec_f64().unwrap().into_iter().map(|x| 0.6 * x).collect();
    match dtype {
        DType::F64 => Tensor::from_f64(v, shape).unwrap(),
        _ => Tensor::from_f32(v.into_iter().map(|x| x as f32).collect(), shape).unwrap(),
    }
}

struct Case {
    kind: CellKind,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    bias: bool,
}

impl Case {
    /// Inputs in the order x, h0, [c0], w_ih, w_hh, [b_ih, b_hh].
    fn inputs(&self, seed: u64, dtype: DType) -> Vec<Tensor> {
        let g = self.kind.gates();
        let mut v = vec![rnd(&[self.t, self.b, self.i], seed, dtype), rnd(&[self.b, self.h], seed + 1, dtype)];
        if self.kind.has_c() {
            v.push(rnd(&[self.b, self.h], seed + 2, dtype));
        }
        v.push(rnd(&[g * self.h, self.i], seed + 3, dtype));
        v.push(rnd(&[g * self.h, self.h], seed + 4, dtype));
        if self.bias {
            v.push(rnd(&[g * self.h], seed + 5, dtype));
            v.push(rnd(&[g * self.h], seed + 6, dtype));
        }
        v
    }
}

fn run(kind: CellKind, x: &[Tensor], lengths: Option<&[usize]>, reverse: bool) -> Result<Vec<Tensor>> {
    // Buffers the op takes from the pool start as NaN: any element it fails to write shows.
    recurrent_core::pool::poison_takes(true);
    let c = kind.has_c() as usize;
    let c0 = if c == 1 { Some(&x[2]) } else { None };
    let (b_ih, b_hh) = if x.len() > 4 + c { (Some(&x[4 + c]), Some(&x[5 + c])) } else { (None, None) };
    let w = RecurrentWeights { w_ih: &x[2 + c], w_hh: &x[3 + c], b_ih, b_hh };
    let out = recurrent_layer(kind, &x[0], &x[1], c0, &w, lengths, reverse)?;
    let mut v = vec![out.y, out.h_t];
    v.extend(out.c_t);
    Ok(v)
}

#[test]
fn every_cell_has_correct_gradients_with_masking_and_both_directions() {
    for kind in KINDS {
        for (lengths, reverse) in
            [(None, false), (None, true), (Some(vec![4, 2, 3]), false), (Some(vec![1, 4, 3]), true)]
        {
            for bias in [true, false] {
                let case = Case { kind, t: 4, b: 3, i: 3, h: 4, bias };
                let inputs = case.inputs(11, DType::F64);
                let wrt: Vec<usize> = (0..inputs.len()).collect();
                let name = format!("{kind:?} lengths={lengths:?} reverse={reverse} bias={bias}");
                let l = lengths.clone();
                // f64 central differences: agreement to ~1e-8 is expected; 1e-6 leaves margin.
                assert_grads(&name, move |x| run(kind, x, l.as_deref(), reverse), &inputs, &wrt, 1e-6);
            }
        }
    }
}

/// Straightforward per-step reference in f64, written from the PyTorch equations.
fn reference(
    kind: CellKind, x: &[Vec<f64>], shapes: (usize, usize, usize, usize), lengths: &[usize], reverse: bool,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (t, b, i, h) = shapes;
    let c_off = kind.has_c() as usize;
    let (xs, h0) = (&x[0], &x[1]);
    let (w_ih, w_hh) = (&x[2 + c_off], &x[3 + c_off]);
    let (b_ih, b_hh) = (&x[4 + c_off], &x[5 + c_off]);
    let g = kind.gates();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let mut y = vec![0.0; t * b * h];
    let mut hn = vec![0.0; b * h];
    let mut cn = vec![0.0; b * h];
    for r in 0..b {
        let mut hs: Vec<f64> = h0[r * h..(r + 1) * h].to_vec();
        let mut cs: Vec<f64> = if c_off == 1 { x[2][r * h..(r + 1) * h].to_vec() } else { vec![0.0; h] };
        for s in 0..lengths[r] {
            let tt = if reverse { lengths[r] - 1 - s } else { s };
            let xv = &xs[(tt * b + r) * i..(tt * b + r + 1) * i];
            let gi: Vec<f64> =
                (0..g * h).map(|q| b_ih[q] + (0..i).map(|k| w_ih[q * i + k] * xv[k]).sum::<f64>()).collect();
            let gh: Vec<f64> =
                (0..g * h).map(|q| b_hh[q] + (0..h).map(|k| w_hh[q * h + k] * hs[k]).sum::<f64>()).collect();
            let new_h: Vec<f64> = match kind {
                CellKind::RnnTanh => (0..h).map(|j| (gi[j] + gh[j]).tanh()).collect(),
                CellKind::RnnRelu => (0..h).map(|j| (gi[j] + gh[j]).max(0.0)).collect(),
                CellKind::Lstm => (0..h)
                    .map(|j| {
                        let ig = sig(gi[j] + gh[j]);
                        let fg = sig(gi[h + j] + gh[h + j]);
                        let gg = (gi[2 * h + j] + gh[2 * h + j]).tanh();
                        let og = sig(gi[3 * h + j] + gh[3 * h + j]);
                        cs[j] = fg * cs[j] + ig * gg;
                        og * cs[j].tanh()
                    })
                    .collect(),
                CellKind::Gru => (0..h)
                    .map(|j| {
                        let rg = sig(gi[j] + gh[j]);
                        let zg = sig(gi[h + j] + gh[h + j]);
                        let ng = (gi[2 * h + j] + rg * gh[2 * h + j]).tanh();
                        (1.0 - zg) * ng + zg * hs[j]
                    })
                    .collect(),
                CellKind::GruResetBefore => {
                    let rg: Vec<f64> = (0..h).map(|j| sig(gi[j] + gh[j])).collect();
                    (0..h)
                        .map(|j| {
                            let zg = sig(gi[h + j] + gh[h + j]);
                            let rec: f64 = b_hh[2 * h + j]
                                + (0..h).map(|k| w_hh[(2 * h + j) * h + k] * rg[k] * hs[k]).sum::<f64>();
                            let ng = (gi[2 * h + j] + rec).tanh();
                            (1.0 - zg) * ng + zg * hs[j]
                        })
                        .collect()
                }
            };
            hs = new_h;
            y[(tt * b + r) * h..(tt * b + r + 1) * h].copy_from_slice(&hs);
        }
        hn[r * h..(r + 1) * h].copy_from_slice(&hs);
        cn[r * h..(r + 1) * h].copy_from_slice(&cs);
    }
    (y, hn, cn)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn forward_matches_naive_reference_in_f64_and_f32() {
    let (t, b, i, h) = (6, 4, 5, 7);
    let lengths = [6, 3, 1, 5];
    for kind in KINDS {
        for reverse in [false, true] {
            let case = Case { kind, t, b, i, h, bias: true };
            let inputs = case.inputs(40, DType::F64);
            let raw: Vec<Vec<f64>> = inputs.iter().map(|x| x.to_vec_f64().unwrap()).collect();
            let (y_ref, h_ref, c_ref) = reference(kind, &raw, (t, b, i, h), &lengths, reverse);
            let out = run(kind, &inputs, Some(&lengths), reverse).unwrap();
            let d =
                max_diff(&out[0].to_vec_f64().unwrap(), &y_ref).max(max_diff(&out[1].to_vec_f64().unwrap(), &h_ref));
            assert!(d < 1e-12, "{kind:?} reverse={reverse}: f64 max diff {d:e}");
            if kind.has_c() {
                assert!(max_diff(&out[2].to_vec_f64().unwrap(), &c_ref) < 1e-12);
            }
            let inputs32 = case.inputs(40, DType::F32);
            let out32 = run(kind, &inputs32, Some(&lengths), reverse).unwrap();
            let d32 = max_diff(&out32[0].to_vec_f64().unwrap(), &y_ref);
            // f32 storage of the inputs alone perturbs results by ~1e-7 relative; the fast
            // exp/tanh add a few ulp per step.
            assert!(d32 < 2e-5, "{kind:?} reverse={reverse}: f32 max diff {d32:e}");
        }
    }
}

#[test]
fn masked_rows_freeze_state_and_zero_outputs() {
    let case = Case { kind: CellKind::Lstm, t: 5, b: 3, i: 2, h: 3, bias: true };
    let inputs = case.inputs(3, DType::F64);
    let lengths = [5, 2, 3];
    for reverse in [false, true] {
        let out = run(CellKind::Lstm, &inputs, Some(&lengths), reverse).unwrap();
        let y = out[0].to_vec_f64().unwrap();
        let hn = out[1].to_vec_f64().unwrap();
        for (r, &len) in lengths.iter().enumerate() {
            for t in len..5 {
                assert!(y[(t * 3 + r) * 3..(t * 3 + r + 1) * 3].iter().all(|&v| v == 0.0), "row {r} t {t} not zero");
            }
            // The final state is the output of the last processed step: t = len−1 forward, t = 0 reverse.
            let last = if reverse { 0 } else { len - 1 };
            assert_eq!(&hn[r * 3..(r + 1) * 3], &y[(last * 3 + r) * 3..(last * 3 + r + 1) * 3]);
        }
    }
}

#[test]
fn fixed_seed_gives_bit_identical_results() {
    let go = || {
        let case = Case { kind: CellKind::Lstm, t: 20, b: 16, i: 32, h: 64, bias: true };
        let inputs = case.inputs(99, DType::F32);
        for t in &inputs {
            t.set_requires_grad(true).unwrap();
        }
        let out = run(CellKind::Lstm, &inputs, None, false).unwrap();
        let loss =
            recurrent_core::ops::elementwise::sum_to(&recurrent_core::ops::elementwise::square(&out[0]).unwrap(), &[])
                .unwrap();
        recurrent_core::backward(&loss, None).unwrap();
        let mut v = out[0].to_vec_f32().unwrap();
        for t in &inputs {
            v.extend(t.grad().unwrap().to_vec_f32().unwrap());
        }
        v.into_iter().map(f32::to_bits).collect::<Vec<u32>>()
    };
    assert_eq!(go(), go());
}

#[test]
fn bad_inputs_get_clear_errors() {
    let case = Case { kind: CellKind::Lstm, t: 5, b: 2, i: 3, h: 4, bias: true };
    let x = case.inputs(1, DType::F32);
    let e = |r: Result<Vec<Tensor>>| r.expect_err("should fail").to_string();

    let mut bad = x.clone();
    bad[3] = rnd(&[16, 5], 1, DType::F32);
    let msg = e(run(CellKind::Lstm, &bad, None, false));
    assert!(
        msg.contains("lstm") && msg.contains("w_ih") && msg.contains("[16, 3]") && msg.contains("[16, 5]"),
        "{msg}"
    );

    let mut bad = x.clone();
    bad[1] = rnd(&[3, 4], 1, DType::F32);
    let msg = e(run(CellKind::Lstm, &bad, None, false));
    assert!(msg.contains("h0") && msg.contains("[2, 4]") && msg.contains("[3, 4]"), "{msg}");

    let mut bad = x.clone();
    bad[0] = rnd(&[5, 2, 3], 1, DType::F64);
    let msg = e(run(CellKind::Lstm, &bad, None, false));
    assert!(msg.contains("lstm") && msg.contains("float64"), "{msg}");

    let msg = e(run(CellKind::Lstm, &x, Some(&[6, 1]), false));
    assert!(msg.contains("lengths[0]") && msg.contains("[1, 5]"), "{msg}");
    // Rust callers get the same check, and messages, as JS numbers (parse_lengths below).
    let msg = e(run(CellKind::Lstm, &x, Some(&[3, 0]), false));
    assert!(msg.starts_with("lstm: lengths[1] is 0: zero-length sequences are not supported"), "{msg}");
    let msg = e(run(CellKind::Lstm, &x, Some(&[3]), false));
    assert_eq!(msg, "lstm: expected lengths [B] = [2], got [1]");

    let msg = parse_lengths("lstm", &[f64::NAN, 2.0], 5, 2).unwrap_err().to_string();
    assert!(msg.contains("lengths[0] is NaN"), "{msg}");
    let msg = parse_lengths("lstm", &[3.0, 0.0], 5, 2).unwrap_err().to_string();
    assert!(msg.contains("zero-length"), "{msg}");
    let msg = parse_lengths("lstm", &[3.0, 9.0], 5, 2).unwrap_err().to_string();
    assert!(msg.contains("longer than the sequence (T = 5)"), "{msg}");
    let msg = parse_lengths("lstm", &[-2.0, 2.0], 5, 2).unwrap_err().to_string();
    assert_eq!(msg, "lstm: lengths[0] is -2; expected an integer in [1, T] = [1, 5]");
    let msg = parse_lengths("gru", &[3.0], 5, 2).unwrap_err().to_string();
    assert!(msg.contains("gru") && msg.contains("[2]") && msg.contains("[1]"), "{msg}");
    assert_eq!(parse_lengths("lstm", &[3.0, 5.0], 5, 2).unwrap(), vec![3, 5]);
}

/// Two layers, both directions, with lengths and dropout-free concatenation between layers:
/// how the TS modules compose the op. Checks gradients flow through the whole stack.
#[test]
fn stacked_bidirectional_layers_have_correct_gradients() {
    use recurrent_core::ops::shape::concat;
    let (t, b, i, h) = (4, 2, 3, 3);
    let lengths = vec![4, 2];
    for kind in KINDS {
        let g = kind.gates();
        let c = kind.has_c();
        let mut inputs = vec![rnd(&[t, b, i], 7, DType::F64)];
        // per layer and direction: w_ih, w_hh, b_ih, b_hh
        for layer in 0..2 {
            let in_size = if layer == 0 { i } else { 2 * h };
            for dir in 0..2 {
                let s = 100 + 10 * layer as u64 + dir as u64 * 5;
                inputs.push(rnd(&[g * h, in_size], s, DType::F64));
                inputs.push(rnd(&[g * h, h], s + 1, DType::F64));
                inputs.push(rnd(&[g * h], s + 2, DType::F64));
                inputs.push(rnd(&[g * h], s + 3, DType::F64));
            }
        }
        let h0 = rnd(&[b, h], 3, DType::F64);
        let l = lengths.clone();
        let f = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
            let mut layer_in = x[0].clone();
            let mut finals = vec![];
            for layer in 0..2 {
                let mut dirs = vec![];
                for dir in 0..2 {
                    let p = &x[1 + 8 * layer + 4 * dir..];
                    let w = RecurrentWeights { w_ih: &p[0], w_hh: &p[1], b_ih: Some(&p[2]), b_hh: Some(&p[3]) };
                    let c0 = if c { Some(&h0) } else { None };
                    let out = recurrent_layer(kind, &layer_in, &h0, c0, &w, Some(&l), dir == 1)?;
                    finals.push(out.h_t);
                    finals.extend(out.c_t);
                    dirs.push(out.y);
                }
                layer_in = concat(&[&dirs[0], &dirs[1]], 2)?;
            }
            finals.push(layer_in);
            Ok(finals)
        };
        let wrt: Vec<usize> = (0..inputs.len()).collect();
        assert_grads(&format!("{kind:?} 2-layer bidirectional"), f, &inputs, &wrt, 1e-6);
    }
}

/// The backward skips dX when x does not want a gradient (input data): x gets none, and every
/// other gradient is the same bits as when dX is computed; on both dtypes, all cells, with
/// lengths and in reverse (where dX goes back to time order).
#[test]
fn no_dx_when_x_needs_no_gradient() {
    for dtype in [DType::F64, DType::F32] {
        for kind in [CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore] {
            let case = Case { kind, t: 5, b: 3, i: 4, h: 18, bias: true };
            let grads = |x_grad: bool| {
                let inputs = case.inputs(40, dtype);
                for (k, t) in inputs.iter().enumerate() {
                    t.set_requires_grad(k > 0 || x_grad).unwrap();
                }
                let outs = run(kind, &inputs, Some(&[5, 2, 4]), true).unwrap();
                let w = rnd(outs[0].shape(), 41, dtype);
                let loss = recurrent_core::ops::elementwise::mul(&outs[0], &w).unwrap();
                let loss = recurrent_core::ops::elementwise::sum_to(&loss, &[]).unwrap();
                recurrent_core::backward(&loss, None).unwrap();
                inputs.iter().map(|t| t.grad().map(|g| g.to_vec_f64().unwrap())).collect::<Vec<_>>()
            };
            let (with, without) = (grads(true), grads(false));
            assert!(with[0].as_ref().is_some_and(|g| g.iter().any(|&v| v != 0.0)), "{kind:?} {dtype:?}: dX when asked");
            assert!(without[0].is_none(), "{kind:?} {dtype:?}: no dX when x needs none");
            assert_eq!(with[1..], without[1..], "{kind:?} {dtype:?}: the other gradients");
        }
    }
}
