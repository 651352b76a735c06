//! The recurrent op's batch-first layout and default (zero) states against its plain form: x
//! [B, T, I] taken in place must give the bits of x transposed to [T, B, I] and back, and absent
//! states the bits of explicit zeros, for the outputs and every gradient; on the float32 team
//! engine (input projection hoisted and in steps) and on the float64 generic loop, every cell,
//! both directions, with and without lengths, B = 1 (where the layouts coincide) and B > 1.
//! Also the errors of the new argument combinations.

use recurrent_core::ops::elementwise::{add, mul, sum_to};
use recurrent_core::ops::rnn::{
    recurrent_layer, recurrent_layer_call, set_lane_min_rows, set_step_input_min_rows, set_team_limits, CellKind,
    LayerCall, RecurrentOutput, RecurrentWeights,
};
use recurrent_core::ops::shape::transpose;
use recurrent_core::{backward, DType, Tensor};
use std::sync::Mutex;

const KINDS: [CellKind; 5] =
    [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru, CellKind::GruResetBefore];

/// The team limits are process-wide: tests that set them run one at a time.
static LIMITS: Mutex<()> = Mutex::new(());

fn leaf(n: usize, shape: &[usize], seed: u64, scale: f64, dtype: DType) -> Tensor {
    let v: Vec<f64> = Tensor::randn(&[n], DType::F64, seed).unwrap().to_vec_f64().unwrap();
    let t = match dtype {
        DType::F64 => Tensor::from_f64(v.iter().map(|x| scale * x).collect(), shape).unwrap(),
        _ => Tensor::from_f32(v.iter().map(|x| (scale * x) as f32).collect(), shape).unwrap(),
    };
    t.set_requires_grad(true).unwrap();
    t
}

struct Case {
    kind: CellKind,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    reverse: bool,
    lengths: Option<Vec<f64>>,
    dtype: DType,
}

/// The leaves of a case: x [B, T, I], h0, c0 [B, H], then w_ih, w_hh, b_ih, b_hh.
fn leaves(c: &Case) -> Vec<Tensor> {
    // Buffers the op takes from the pool start as NaN: any element it fails to write shows.
    recurrent_core::pool::poison_takes(true);
    let (g, h) = (c.kind.gates(), c.h);
    let s = 1.0 / (h as f64).sqrt();
    vec![
        leaf(c.b * c.t * c.i, &[c.b, c.t, c.i], 1, 1.0, c.dtype),
        leaf(c.b * h, &[c.b, h], 2, 0.5, c.dtype),
        leaf(c.b * h, &[c.b, h], 3, 0.5, c.dtype),
        leaf(g * h * c.i, &[g * h, c.i], 4, s, c.dtype),
        leaf(g * h * h, &[g * h, h], 5, 1.5 * s, c.dtype),
        leaf(g * h, &[g * h], 6, s, c.dtype),
        leaf(g * h, &[g * h], 7, s, c.dtype),
    ]
}

/// A weighted sum of y [B, T, H], h_T and c_T, backward, and the bits of the outputs and of
/// every leaf's gradient (zero where a leaf took no part).
fn bits(out: RecurrentOutput, ls: &[Tensor], dtype: DType) -> Vec<u64> {
    let mut outs = vec![out.y, out.h_t];
    outs.extend(out.c_t);
    let mut loss: Option<Tensor> = None;
    for (k, o) in outs.iter().enumerate() {
        let w = leaf(o.shape().iter().product(), o.shape(), 100 + k as u64, 1.0, dtype);
        let term = sum_to(&mul(o, &w).unwrap(), &[]).unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => add(&l, &term).unwrap(),
        });
    }
    backward(&loss.unwrap(), None).unwrap();
    let mut v: Vec<f64> = outs.iter().flat_map(|o| o.to_vec_f64().unwrap()).collect();
    for l in ls {
        let n: usize = l.shape().iter().product();
        v.extend(l.grad().map(|g| g.to_vec_f64().unwrap()).unwrap_or_else(|| vec![0.0; n]));
    }
    assert!(v.iter().all(|x| x.is_finite()), "a non-finite output or gradient");
    v.into_iter().map(f64::to_bits).collect()
}

/// The plain call: x transposed to [T, B, I] by the transpose op, y transposed back.
fn plain(c: &Case, ls: &[Tensor], states: bool) -> Vec<u64> {
    let xt = transpose(&ls[0], 0, 1).unwrap();
    let w = RecurrentWeights { w_ih: &ls[3], w_hh: &ls[4], b_ih: Some(&ls[5]), b_hh: Some(&ls[6]) };
    let zero = Tensor::zeros(&[c.b, c.h], c.dtype).unwrap();
    let (h0, c0) = if states { (&ls[1], &ls[2]) } else { (&zero, &zero) };
    let lengths: Option<Vec<usize>> = c.lengths.as_ref().map(|l| l.iter().map(|&v| v as usize).collect());
    let mut o =
        recurrent_layer(c.kind, &xt, h0, c.kind.has_c().then_some(c0), &w, lengths.as_deref(), c.reverse).unwrap();
    o.y = transpose(&o.y, 0, 1).unwrap();
    bits(o, ls, c.dtype)
}

/// The same call batch-first, with the states given (`states`) or left to the op.
fn batch_first(c: &Case, ls: &[Tensor], states: bool) -> Vec<u64> {
    let w = RecurrentWeights { w_ih: &ls[3], w_hh: &ls[4], b_ih: Some(&ls[5]), b_hh: Some(&ls[6]) };
    let call = LayerCall {
        h0: states.then_some(&ls[1]),
        c0: (states && c.kind.has_c()).then_some(&ls[2]),
        lengths: c.lengths.as_deref(),
        reverse: c.reverse,
        batch_first: true,
    };
    let o = recurrent_layer_call(c.kind, &ls[0], &w, &call).unwrap();
    assert_eq!(o.y.shape(), [c.b, c.t, c.h], "y is batch-first");
    bits(o, ls, c.dtype)
}

fn check_all(dtype: DType) {
    for kind in KINDS {
        for (b, lengths) in
            [(1, None), (3, Some(vec![5.0, 2.0, 4.0])), (9, None), (9, Some(vec![5., 1., 3., 5., 2., 4., 5., 5., 1.]))]
        {
            for reverse in [false, true] {
                for states in [false, true] {
                    let c = Case { kind, t: 5, b, i: 6, h: 20, reverse, lengths: lengths.clone(), dtype };
                    let want = plain(&c, &leaves(&c), states);
                    let got = batch_first(&c, &leaves(&c), states);
                    assert!(
                        want == got,
                        "{kind:?} {dtype:?} B={b} reverse={reverse} lengths={lengths:?} states given={states}: \
                         batch-first differs from the transposed call"
                    );
                }
            }
        }
    }
}

#[test]
fn batch_first_and_zero_states_give_the_plain_calls_bits_float32_team() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    // The team at every size (H = 20: two panels, the second partial), with the input
    // projection hoisted and in steps.
    set_team_limits(0, 2);
    for rows in [usize::MAX, 0] {
        set_step_input_min_rows(rows);
        check_all(DType::F32);
    }
    // In lanes too (rows per runner through every step; B = 9: lanes of 4 and 5 rows), where
    // a forward call's steps read the batch-first x in place, through strides.
    let lane_rows = set_lane_min_rows(1);
    check_all(DType::F32);
    set_lane_min_rows(lane_rows);
    set_step_input_min_rows(8);
    set_team_limits(1 << 16, 0);
}

#[test]
fn batch_first_and_zero_states_give_the_plain_calls_bits_float64() {
    let _g = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    check_all(DType::F64);
}

#[test]
fn states_and_layout_errors_name_the_op_and_what_was_expected() {
    let c = Case { kind: CellKind::Lstm, t: 4, b: 2, i: 3, h: 5, reverse: false, lengths: None, dtype: DType::F32 };
    let ls = leaves(&c);
    let w = RecurrentWeights { w_ih: &ls[3], w_hh: &ls[4], b_ih: None, b_hh: None };
    let err =
        |call: LayerCall, x: &Tensor| recurrent_layer_call(CellKind::Lstm, x, &w, &call).err().unwrap().to_string();
    let only_h0 = err(LayerCall { h0: Some(&ls[1]), batch_first: true, ..Default::default() }, &ls[0]);
    assert!(only_h0.starts_with("lstm:") && only_h0.contains("needs an initial cell state c0"), "{only_h0}");
    let only_c0 = err(LayerCall { c0: Some(&ls[2]), batch_first: true, ..Default::default() }, &ls[0]);
    assert!(only_c0.contains("needs an initial hidden state h0"), "{only_c0}");
    let flat = Tensor::zeros(&[8, 3], DType::F32).unwrap();
    let two_d = err(LayerCall { batch_first: true, ..Default::default() }, &flat);
    assert!(two_d.contains("[B, T, I]") && two_d.contains("[8, 3]"), "{two_d}");
    // Batch-first reads B from the first axis: h0 must be [B, H] = [2, 5], whatever T is.
    let wrong_h0 = Tensor::zeros(&[4, 5], DType::F32).unwrap();
    let wrong_c0 = Tensor::zeros(&[4, 5], DType::F32).unwrap();
    let h0_shape =
        err(LayerCall { h0: Some(&wrong_h0), c0: Some(&wrong_c0), batch_first: true, ..Default::default() }, &ls[0]);
    assert!(h0_shape.contains("h0 of shape [2, 5]") && h0_shape.contains("[4, 5]"), "{h0_shape}");
    // Lengths are counted against B and checked against T of the batch-first layout.
    let long = [4.0, 5.0];
    let too_long = err(LayerCall { lengths: Some(&long), batch_first: true, ..Default::default() }, &ls[0]);
    assert!(too_long.contains("lengths[1] is 5") && too_long.contains("T = 4"), "{too_long}");
}
