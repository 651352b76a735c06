//! Both directions as one op (`rnn_pair.rs`) against the two single-direction calls: the same
//! bits for outputs and every gradient (x's is the sum of both directions'), every cell, with
//! and without lengths, states given or not, both layouts, float32 (team engine) and float64;
//! and the pair's argument errors.

use recurrent_core::ops::elementwise::{add, mul, sum_to};
use recurrent_core::ops::rnn::{recurrent_layer_call, CellKind, LayerCall, RecurrentOutput, RecurrentWeights};
use recurrent_core::ops::rnn_pair::recurrent_layer_pair;
use recurrent_core::{backward, DType, Tensor};

const KINDS: [CellKind; 5] =
    [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore];

fn leaf(shape: &[usize], seed: u64, scale: f64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    let v = Tensor::randn(&[n], DType::F64, seed).unwrap().to_vec_f64().unwrap();
    let t = match dtype {
        DType::F64 => Tensor::from_f64(v.iter().map(|x| scale * x).collect(), shape).unwrap(),
        _ => Tensor::from_f32(v.iter().map(|x| (scale * x) as f32).collect(), shape).unwrap(),
    };
    t.set_requires_grad(true).unwrap();
    t
}

/// x, then per direction h0, c0, w_ih, w_hh, b_ih, b_hh.
fn leaves(kind: CellKind, x_shape: &[usize], b: usize, h: usize, dtype: DType) -> Vec<Tensor> {
    let (g, i) = (kind.gates(), x_shape[2]);
    let s = 1.0 / (h as f64).sqrt();
    let mut v = vec![leaf(x_shape, 1, 1.0, dtype)];
    for d in 0..2u64 {
        let k = 10 * (d + 1);
        v.push(leaf(&[b, h], k + 1, 0.5, dtype));
        v.push(leaf(&[b, h], k + 2, 0.5, dtype));
        v.push(leaf(&[g * h, i], k + 3, s, dtype));
        v.push(leaf(&[g * h, h], k + 4, 1.5 * s, dtype));
        v.push(leaf(&[g * h], k + 5, s, dtype));
        v.push(leaf(&[g * h], k + 6, s, dtype));
    }
    v
}

/// Outputs of both directions, a weighted sum of them backward, then every leaf's gradient:
/// all as bits.
fn bits(outs: [RecurrentOutput; 2], ls: &[Tensor], dtype: DType) -> Vec<u64> {
    let all: Vec<Tensor> = outs.into_iter().flat_map(|o| [Some(o.y), Some(o.h_t), o.c_t]).flatten().collect();
    let mut loss: Option<Tensor> = None;
    for (k, o) in all.iter().enumerate() {
        let w = leaf(o.shape(), 500 + k as u64, 1.0, dtype);
        let term = sum_to(&mul(o, &w).unwrap(), &[]).unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => add(&l, &term).unwrap(),
        });
    }
    backward(&loss.unwrap(), None).unwrap();
    let mut v: Vec<f64> = all.iter().flat_map(|o| o.to_vec_f64().unwrap()).collect();
    for l in ls {
        v.extend(l.grad().map(|g| g.to_vec_f64().unwrap()).unwrap_or_else(|| vec![0.0; l.numel()]));
    }
    assert!(v.iter().all(|x| x.is_finite()), "a non-finite output or gradient");
    v.into_iter().map(f64::to_bits).collect()
}

fn run(kind: CellKind, ls: &[Tensor], call: LayerCall, states: bool, paired: bool) -> [RecurrentOutput; 2] {
    let w = |d: usize| {
        let p = &ls[1 + 6 * d..];
        RecurrentWeights { w_ih: &p[2], w_hh: &p[3], b_ih: Some(&p[4]), b_hh: Some(&p[5]) }
    };
    let (wf, wb) = (w(0), w(1));
    let state = |d: usize, k: usize| states.then_some(&ls[1 + 6 * d + k]);
    let has_c = kind.has_c();
    let cf = LayerCall { h0: state(0, 0), c0: state(0, 1).filter(|_| has_c), reverse: false, ..call };
    let cb = LayerCall { h0: state(1, 0), c0: state(1, 1).filter(|_| has_c), reverse: true, ..call };
    if paired {
        recurrent_layer_pair(kind, &ls[0], [&wf, &wb], [&cf, &cb]).unwrap()
    } else {
        [recurrent_layer_call(kind, &ls[0], &wf, &cf).unwrap(), recurrent_layer_call(kind, &ls[0], &wb, &cb).unwrap()]
    }
}

#[test]
fn a_pair_gives_the_two_calls_bits_outputs_and_gradients() {
    recurrent_core::pool::poison_takes(true);
    for dtype in [DType::F32, DType::F64] {
        for kind in KINDS {
            // H = 300: the team engine's size at B = 9 (each half alone, the calls on the team).
            for (b, h, lengths) in [(1, 20, None), (3, 37, Some(vec![5.0, 2.0, 4.0])), (9, 300, None)] {
                for batch_first in [false, true] {
                    let t = 5;
                    let x_shape = if batch_first { [b, t, 6] } else { [t, b, 6] };
                    let call = LayerCall { lengths: lengths.as_deref(), batch_first, ..Default::default() };
                    for states in [false, true] {
                        let ls = leaves(kind, &x_shape, b, h, dtype);
                        let want = bits(run(kind, &ls, call, states, false), &ls, dtype);
                        let ls = leaves(kind, &x_shape, b, h, dtype);
                        let got = bits(run(kind, &ls, call, states, true), &ls, dtype);
                        assert!(
                            want == got,
                            "{kind:?} {dtype:?} B={b} H={h} lengths={lengths:?} batch_first={batch_first} states={states}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_pair_must_be_forward_then_reverse_with_one_layout() {
    let ls = leaves(CellKind::Gru, &[4, 2, 3], 2, 5, DType::F32);
    let w = RecurrentWeights { w_ih: &ls[3], w_hh: &ls[4], b_ih: None, b_hh: None };
    let fwd = LayerCall::default();
    let rev = LayerCall { reverse: true, ..Default::default() };
    let err = |a: &LayerCall, b: &LayerCall| {
        recurrent_layer_pair(CellKind::Gru, &ls[0], [&w, &w], [a, b]).err().expect("refused").to_string()
    };
    assert!(err(&rev, &fwd).contains("a forward call then a reverse one"));
    let rev_bf = LayerCall { batch_first: true, ..rev };
    assert!(err(&fwd, &rev_bf).contains("same layout and lengths"));
    // The single call's own checks still apply, naming the cell's op.
    let bad = Tensor::zeros(&[4, 2], DType::F32).unwrap();
    let e = recurrent_layer_pair(CellKind::Gru, &bad, [&w, &w], [&fwd, &rev]).err().unwrap().to_string();
    assert!(e.starts_with("gru:") && e.contains("[T, B, I]"), "{e}");
}
