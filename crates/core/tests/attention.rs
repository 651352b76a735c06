//! The attention op: values against a plain-loop reference, finite-difference gradient checks
//! (f64, tolerance 1e-6 on the relative error) for query, keys, values and v with and without
//! lengths and for both scores, the length mask, and errors by kind and content.

use recurrent_core::gradcheck::assert_grads;
use recurrent_core::ops::attention::{attention, AttentionOutput, Lengths, Score};
use recurrent_core::ops::elementwise::mul;
use recurrent_core::ops::reduce::sum_all;
use recurrent_core::{backward, DType, ErrorKind, Tensor};

const B: usize = 3;
const S: usize = 5;
const A: usize = 4;
const E: usize = 3;

fn rnd(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed).unwrap()
}

struct Inputs {
    q: Tensor,
    k: Tensor,
    vals: Tensor,
    v: Tensor,
}

fn inputs(seed: u64) -> Inputs {
    Inputs {
        q: rnd(&[B, A], seed),
        k: rnd(&[S, B, A], seed + 1),
        vals: rnd(&[S, B, E], seed + 2),
        v: rnd(&[A], seed + 3),
    }
}

/// The op's definition as plain loops in f64: (context [B, E], weights [B, S]).
fn reference(x: &Inputs, score: Score, lens: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let (q, k, vals, v) =
        (x.q.to_vec_f64().unwrap(), x.k.to_vec_f64().unwrap(), x.vals.to_vec_f64().unwrap(), x.v.to_vec_f64().unwrap());
    let mut ctx = vec![0.0; B * E];
    let mut w = vec![0.0; B * S];
    for b in 0..B {
        let scores: Vec<f64> = (0..lens[b])
            .map(|s| {
                (0..A)
                    .map(|a| {
                        let (qa, ka) = (q[b * A + a], k[(s * B + b) * A + a]);
                        match score {
                            Score::Additive => v[a] * (qa + ka).tanh(),
                            Score::Dot => qa * ka,
                        }
                    })
                    .sum()
            })
            .collect();
        let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = scores.iter().map(|e| (e - m).exp()).sum();
        for (s, e) in scores.iter().enumerate() {
            w[b * S + s] = (e - m).exp() / z;
            for j in 0..E {
                ctx[b * E + j] += w[b * S + s] * vals[(s * B + b) * E + j];
            }
        }
    }
    (ctx, w)
}

fn run(x: &Inputs, score: Score, lens: Option<&Tensor>) -> AttentionOutput {
    let v = (score == Score::Additive).then_some(&x.v);
    attention(&x.q, &x.k, &x.vals, score, v, lens.map(Lengths::Tensor)).unwrap()
}

fn lengths(l: &[i32]) -> Tensor {
    Tensor::from_i32(l.to_vec(), &[l.len()]).unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn values_match_the_definition_for_both_scores_with_and_without_lengths() {
    let x = inputs(10);
    for score in [Score::Additive, Score::Dot] {
        for lens in [None, Some(vec![5usize, 2, 1])] {
            let t = lens.as_ref().map(|l| lengths(&l.iter().map(|&v| v as i32).collect::<Vec<_>>()));
            let out = run(&x, score, t.as_ref());
            let (ctx, w) = reference(&x, score, lens.as_deref().unwrap_or(&[S; B]));
            let (dc, dw) =
                (max_diff(&out.context.to_vec_f64().unwrap(), &ctx), max_diff(&out.weights.to_vec_f64().unwrap(), &w));
            println!("{score:?} lengths {lens:?}: context max diff {dc:.2e}, weights {dw:.2e}");
            assert!(dc < 1e-12 && dw < 1e-12, "{score:?} {lens:?}: {dc} {dw}");
            assert_eq!(out.context.shape(), [B, E]);
            assert_eq!(out.weights.shape(), [B, S]);
        }
    }
}

#[test]
fn float32_agrees_with_float64() {
    let x = inputs(20);
    let to32 = |t: &Tensor| Tensor::from_f32(t.to_vec_f32().unwrap(), t.shape()).unwrap();
    let x32 = Inputs { q: to32(&x.q), k: to32(&x.k), vals: to32(&x.vals), v: to32(&x.v) };
    let l = lengths(&[4, 5, 2]);
    for score in [Score::Additive, Score::Dot] {
        let (o64, o32) = (run(&x, score, Some(&l)), run(&x32, score, Some(&l)));
        assert_eq!(o32.context.dtype(), DType::F32);
        let dc = max_diff(&o64.context.to_vec_f64().unwrap(), &o32.context.to_vec_f64().unwrap());
        let dw = max_diff(&o64.weights.to_vec_f64().unwrap(), &o32.weights.to_vec_f64().unwrap());
        println!("{score:?} f32 vs f64: context {dc:.2e}, weights {dw:.2e}");
        assert!(dc < 1e-5 && dw < 1e-5, "{score:?}: {dc} {dw}");
    }
}

#[test]
fn gradients_of_query_keys_values_and_v_match_finite_differences() {
    let x = inputs(30);
    let all = [x.q.clone(), x.k.clone(), x.vals.clone(), x.v.clone()];
    for (name, lens) in [("full", None), ("lengths", Some(lengths(&[2, 5, 1])))] {
        let l = lens.clone();
        // Both outputs feed the checked scalar, so the weights' own gradient is checked too.
        assert_grads(
            &format!("attention additive {name}"),
            move |t| {
                let o = attention(&t[0], &t[1], &t[2], Score::Additive, Some(&t[3]), l.as_ref().map(Lengths::Tensor))?;
                Ok(vec![o.context, o.weights])
            },
            &all,
            &[0, 1, 2, 3],
            1e-6,
        );
        let l = lens.clone();
        assert_grads(
            &format!("attention dot {name}"),
            move |t| {
                let o = attention(&t[0], &t[1], &t[2], Score::Dot, None, l.as_ref().map(Lengths::Tensor))?;
                Ok(vec![o.context, o.weights])
            },
            &all[..3],
            &[0, 1, 2],
            1e-6,
        );
        // Only one output used: the other's gradient is absent, not zero-filled by the caller.
        for (which, score) in [(0usize, Score::Additive), (1, Score::Dot)] {
            let l = lens.clone();
            assert_grads(
                &format!("attention {score:?} {name} output {which} only"),
                move |t| {
                    let v = (score == Score::Additive).then_some(&t[3]);
                    let o = attention(&t[0], &t[1], &t[2], score, v, l.as_ref().map(Lengths::Tensor))?;
                    Ok(vec![if which == 0 { o.context } else { o.weights }])
                },
                &all,
                &[0, 1, 2, 3],
                1e-6,
            );
        }
    }
}

#[test]
fn positions_past_a_length_get_zero_weight_and_no_influence() {
    let x = inputs(40);
    let lens = [3i32, 1, 5];
    for score in [Score::Additive, Score::Dot] {
        let out = run(&x, score, Some(&lengths(&lens)));
        let w = out.weights.to_vec_f64().unwrap();
        for b in 0..B {
            let row = &w[b * S..(b + 1) * S];
            assert!(row[lens[b] as usize..].iter().all(|&v| v == 0.0), "{score:?} row {b}: {row:?}");
            assert!(row[..lens[b] as usize].iter().all(|&v| v > 0.0));
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Changing keys and values at padded positions changes nothing.
        let mut k = x.k.to_vec_f64().unwrap();
        let mut vals = x.vals.to_vec_f64().unwrap();
        for b in 0..B {
            for s in lens[b] as usize..S {
                k[(s * B + b) * A..][..A].iter_mut().for_each(|v| *v = 1e3);
                vals[(s * B + b) * E..][..E].iter_mut().for_each(|v| *v = f64::NAN);
            }
        }
        let padded = Inputs {
            q: x.q.clone(),
            k: Tensor::from_f64(k, &[S, B, A]).unwrap(),
            vals: Tensor::from_f64(vals, &[S, B, E]).unwrap(),
            v: x.v.clone(),
        };
        let other = run(&padded, score, Some(&lengths(&lens)));
        assert_eq!(other.context.to_vec_f64().unwrap(), out.context.to_vec_f64().unwrap(), "{score:?}");
        assert_eq!(other.weights.to_vec_f64().unwrap(), w, "{score:?}");

        // And padded positions get no gradient.
        let (k, vals) = (x.k.detach(), x.vals.detach());
        k.set_requires_grad(true).unwrap();
        vals.set_requires_grad(true).unwrap();
        let xs = Inputs { q: x.q.clone(), k: k.clone(), vals: vals.clone(), v: x.v.clone() };
        let o = run(&xs, score, Some(&lengths(&lens)));
        let loss = sum_all(&mul(&o.context, &o.context).unwrap()).unwrap();
        backward(&loss, None).unwrap();
        let (gk, gv) = (k.grad().unwrap().to_vec_f64().unwrap(), vals.grad().unwrap().to_vec_f64().unwrap());
        for b in 0..B {
            for s in 0..S {
                let zero = s >= lens[b] as usize;
                let gkr = &gk[(s * B + b) * A..][..A];
                let gvr = &gv[(s * B + b) * E..][..E];
                // A one-position row has a constant weight of 1: its key gets no gradient either.
                let keys_zero = zero || lens[b] == 1;
                assert_eq!(gkr.iter().all(|&v| v == 0.0), keys_zero, "{score:?} keys grad at s {s}, b {b}: {gkr:?}");
                assert_eq!(gvr.iter().all(|&v| v == 0.0), zero, "{score:?} values grad at s {s}, b {b}");
            }
        }
    }
}

#[test]
fn lengths_as_numbers_equal_lengths_as_a_tensor() {
    let x = inputs(50);
    let a = run(&x, Score::Dot, Some(&lengths(&[2, 3, 4])));
    let b = attention(&x.q, &x.k, &x.vals, Score::Dot, None, Some(Lengths::Numbers(&[2.0, 3.0, 4.0]))).unwrap();
    assert_eq!(a.weights.to_vec_f64().unwrap(), b.weights.to_vec_f64().unwrap());
    assert_eq!(a.context.to_vec_f64().unwrap(), b.context.to_vec_f64().unwrap());
}

#[test]
fn bad_arguments_are_errors_naming_the_op_expected_and_got() {
    let x = inputs(60);
    let err = |r: recurrent_core::Result<AttentionOutput>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => (e.kind(), e.to_string()),
    };
    let check = |(kind, msg): (ErrorKind, String), want: ErrorKind, parts: &[&str]| {
        assert_eq!(kind, want, "{msg}");
        assert!(msg.starts_with("attention: "), "{msg}");
        for p in parts {
            assert!(msg.contains(p), "'{msg}' lacks '{p}'");
        }
    };
    let dot = |q: &Tensor, k: &Tensor, vals: &Tensor| attention(q, k, vals, Score::Dot, None, None);
    check(err(dot(&rnd(&[B, A, 1], 1), &x.k, &x.vals)), ErrorKind::Shape, &["query of shape [B, A]", "[3, 4, 1]"]);
    check(
        err(dot(&x.q, &rnd(&[S, B, A + 1], 1), &x.vals)),
        ErrorKind::Shape,
        &["keys of shape [S, 3, 4]", "[5, 3, 5]"],
    );
    check(err(dot(&x.q, &x.k, &rnd(&[S - 1, B, E], 1))), ErrorKind::Shape, &["values of shape [5, 3, E]", "[4, 3, 3]"]);
    let k32 = Tensor::from_f32(x.k.to_vec_f32().unwrap(), x.k.shape()).unwrap();
    check(err(dot(&x.q, &k32, &x.vals)), ErrorKind::DType, &["float64 for keys (the dtype of query)", "float32"]);
    let ints = Tensor::from_i32(vec![1; B * A], &[B, A]).unwrap();
    check(err(dot(&ints, &x.k, &x.vals)), ErrorKind::DType, &["float32 or float64", "int32 for query"]);
    check(
        err(attention(&x.q, &x.k, &x.vals, Score::Additive, None, None)),
        ErrorKind::Value,
        &["additive score needs v of shape [A] = [4]"],
    );
    check(
        err(attention(&x.q, &x.k, &x.vals, Score::Additive, Some(&rnd(&[A + 2], 1)), None)),
        ErrorKind::Shape,
        &["v of shape [A] = [4]", "got [6]"],
    );
    check(
        err(attention(&x.q, &x.k, &x.vals, Score::Dot, Some(&x.v), None)),
        ErrorKind::Value,
        &["dot score takes no v"],
    );
    let with = |l: Lengths| attention(&x.q, &x.k, &x.vals, Score::Dot, None, Some(l));
    check(err(with(Lengths::Tensor(&lengths(&[1, 0, 2])))), ErrorKind::Value, &["lengths[1] is 0", "[1, 5]"]);
    check(err(with(Lengths::Tensor(&lengths(&[1, 6, 2])))), ErrorKind::Value, &["lengths[1] is 6", "T = 5"]);
    check(err(with(Lengths::Tensor(&lengths(&[1, 2])))), ErrorKind::Shape, &["lengths of shape [B] = [3]", "[2]"]);
    check(err(with(Lengths::Numbers(&[1.0, f64::NAN, 2.0]))), ErrorKind::Value, &["lengths[1] is NaN"]);
    check(err(with(Lengths::Numbers(&[1.5, 1.0, 2.0]))), ErrorKind::Value, &["lengths[0] is 1.5"]);
    let fl = Tensor::from_f64(vec![1.0; B], &[B]).unwrap();
    check(err(with(Lengths::Tensor(&fl))), ErrorKind::DType, &["int32 lengths", "float64"]);
    assert!(Score::parse("general").unwrap_err().to_string().contains("'additive' or 'dot', got 'general'"));
}
