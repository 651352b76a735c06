//! One thin JS function per core op: unwrap the handles (DisposedError if disposed), convert
//! numbers, call the core (which checks shapes and enqueues), wrap the results.

use crate::convert;
use crate::tensor::NativeTensor;
use crate::{sync_external_memory, IntoJs};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::ops::{
    attention as att, cast as ca, compare as cmp, dropout as dr, elementwise as ew, embedding as emb, index as ix,
    loss, matmul as mm, reduce as red, rnn, shape as sh, softmax as sm,
};
use recurrent_core::Tensor;

fn out(env: &Env, r: recurrent_core::Result<Tensor>) -> Result<NativeTensor> {
    let t = r.js()?;
    sync_external_memory(env);
    Ok(NativeTensor::new(t))
}

fn opt(t: Option<&NativeTensor>, op: &str) -> Result<Option<Tensor>> {
    t.map(|t| t.get(op)).transpose()
}

macro_rules! binary {
    ($($doc:literal $js:ident => $f:path, $name:literal;)*) => {$(
        #[doc = $doc]
        #[napi(catch_unwind)]
        pub fn $js(env: Env, a: &NativeTensor, b: &NativeTensor) -> Result<NativeTensor> {
            out(&env, $f(&a.get($name)?, &b.get($name)?))
        }
    )*};
}

macro_rules! unary {
    ($($doc:literal $js:ident => $f:path, $name:literal;)*) => {$(
        #[doc = $doc]
        #[napi(catch_unwind)]
        pub fn $js(env: Env, x: &NativeTensor) -> Result<NativeTensor> {
            out(&env, $f(&x.get($name)?))
        }
    )*};
}

binary! {
    "a + b, broadcasting."
    add => ew::add, "add";
    "a − b, broadcasting."
    sub => ew::sub, "sub";
    "a ⊙ b, broadcasting."
    mul => ew::mul, "mul";
    "a / b, broadcasting."
    div => ew::div, "div";
    "a · b (batched over leading dims)."
    matmul => mm::matmul, "matmul";
    "mean((pred − target)²)."
    mse => loss::mse, "mse";
    "weight[indices]."
    embedding => emb::embedding, "embedding";
    "a == b as int32 1/0, broadcasting."
    eq => cmp::eq, "eq";
    "a < b as int32 1/0, broadcasting."
    lt => cmp::lt, "lt";
    "a > b as int32 1/0, broadcasting."
    gt => cmp::gt, "gt";
}

unary! {
    "−x"
    neg => ew::neg, "neg";
    "eˣ"
    exp => ew::exp, "exp";
    "ln x"
    log => ew::log, "log";
    "tanh x"
    tanh => ew::tanh, "tanh";
    "σ(x)"
    sigmoid => ew::sigmoid, "sigmoid";
    "max(x, 0)"
    relu => ew::relu, "relu";
    "x²"
    square => ew::square, "square";
    "√x"
    sqrt => ew::sqrt, "sqrt";
    "Σ of every element, shape []."
    sum_all => red::sum_all, "sumAll";
    "Mean of every element, shape []."
    mean_all => red::mean_all, "meanAll";
}

/// c · x
#[napi(catch_unwind)]
pub fn scale(env: Env, x: &NativeTensor, c: f64) -> Result<NativeTensor> {
    out(&env, ew::scale(&x.get("scale")?, c))
}

/// x + c
#[napi(catch_unwind)]
pub fn add_scalar(env: Env, x: &NativeTensor, c: f64) -> Result<NativeTensor> {
    out(&env, ew::add_scalar(&x.get("addScalar")?, c))
}

/// Sums x down to `shape` over broadcast dimensions.
#[napi(catch_unwind)]
pub fn sum_to(env: Env, x: &NativeTensor, shape: Vec<f64>) -> Result<NativeTensor> {
    let s = convert::shape("sumTo", &shape).js()?;
    out(&env, ew::sum_to(&x.get("sumTo")?, &s))
}

/// Expands x to `shape` by broadcasting.
#[napi(catch_unwind)]
pub fn broadcast_to(env: Env, x: &NativeTensor, shape: Vec<f64>) -> Result<NativeTensor> {
    let s = convert::shape("broadcastTo", &shape).js()?;
    out(&env, ew::broadcast_to(&x.get("broadcastTo")?, &s))
}

/// x · wᵀ + b.
#[napi(catch_unwind)]
pub fn linear(env: Env, x: &NativeTensor, w: &NativeTensor, b: Option<&NativeTensor>) -> Result<NativeTensor> {
    out(&env, mm::linear(&x.get("linear")?, &w.get("linear")?, opt(b, "linear")?.as_ref()))
}

/// Σ over `axes`.
#[napi(catch_unwind)]
pub fn sum(env: Env, x: &NativeTensor, axes: Vec<f64>, keepdim: bool) -> Result<NativeTensor> {
    let a = convert::axes("sum", &axes).js()?;
    out(&env, red::sum(&x.get("sum")?, &a, keepdim))
}

/// Mean over `axes`.
#[napi(catch_unwind)]
pub fn mean(env: Env, x: &NativeTensor, axes: Vec<f64>, keepdim: bool) -> Result<NativeTensor> {
    let a = convert::axes("mean", &axes).js()?;
    out(&env, red::mean(&x.get("mean")?, &a, keepdim))
}

/// The same data with a new shape (one entry may be -1).
#[napi(catch_unwind)]
pub fn reshape(env: Env, x: &NativeTensor, shape: Vec<f64>) -> Result<NativeTensor> {
    let s = convert::shape_with_infer("reshape", &shape).js()?;
    out(&env, sh::reshape(&x.get("reshape")?, &s))
}

/// Swaps dimensions d0 and d1.
#[napi(catch_unwind)]
pub fn transpose(env: Env, x: &NativeTensor, d0: f64, d1: f64) -> Result<NativeTensor> {
    let a = convert::index("transpose", "dim", d0).js()?;
    let b = convert::index("transpose", "dim", d1).js()?;
    out(&env, sh::transpose(&x.get("transpose")?, a, b))
}

fn unwrap_all(ts: &[&NativeTensor], op: &str) -> Result<Vec<Tensor>> {
    ts.iter().map(|t| t.get(op)).collect()
}

/// Splits x along `axis` into pieces of the given sizes (which must add up to its length).
#[napi(catch_unwind)]
pub fn split(env: Env, x: &NativeTensor, axis: f64, sizes: Vec<f64>) -> Result<Vec<NativeTensor>> {
    let a = convert::index("split", "axis", axis).js()?;
    let s: Vec<usize> =
        sizes.iter().map(|&v| convert::index("split", "size", v)).collect::<recurrent_core::Result<_>>().js()?;
    let parts = sh::split(&x.get("split")?, a, &s).js()?;
    sync_external_memory(&env);
    Ok(parts.into_iter().map(NativeTensor::new).collect())
}

/// Joins tensors along an existing axis.
#[napi(catch_unwind)]
pub fn concat(env: Env, ts: Vec<&NativeTensor>, axis: f64) -> Result<NativeTensor> {
    let a = convert::index("concat", "axis", axis).js()?;
    let v = unwrap_all(&ts, "concat")?;
    out(&env, sh::concat(&v.iter().collect::<Vec<_>>(), a))
}

/// Joins same-shaped tensors along a new axis.
#[napi(catch_unwind)]
pub fn stack(env: Env, ts: Vec<&NativeTensor>, axis: f64) -> Result<NativeTensor> {
    let a = convert::index("stack", "axis", axis).js()?;
    let v = unwrap_all(&ts, "stack")?;
    out(&env, sh::stack(&v.iter().collect::<Vec<_>>(), a))
}

/// `length` entries of x along `axis`, from `start`.
#[napi(catch_unwind)]
pub fn slice(env: Env, x: &NativeTensor, axis: f64, start: f64, length: f64) -> Result<NativeTensor> {
    let a = convert::index("slice", "axis", axis).js()?;
    let s = convert::index("slice", "start", start).js()?;
    let l = convert::index("slice", "length", length).js()?;
    out(&env, sh::slice(&x.get("slice")?, a, s, l))
}

/// exp(x) / Σ exp(x) along `axis`.
#[napi(catch_unwind)]
pub fn softmax(env: Env, x: &NativeTensor, axis: f64) -> Result<NativeTensor> {
    let a = convert::index("softmax", "axis", axis).js()?;
    out(&env, sm::softmax(&x.get("softmax")?, a))
}

/// x − log Σ exp(x) along `axis`.
#[napi(catch_unwind)]
pub fn log_softmax(env: Env, x: &NativeTensor, axis: f64) -> Result<NativeTensor> {
    let a = convert::index("logSoftmax", "axis", axis).js()?;
    out(&env, sm::log_softmax(&x.get("logSoftmax")?, a))
}

/// Mean negative log-likelihood of integer targets under softmax(logits).
#[napi(catch_unwind)]
pub fn cross_entropy(
    env: Env, logits: &NativeTensor, targets: &NativeTensor, ignore_index: Option<i32>,
) -> Result<NativeTensor> {
    out(&env, loss::cross_entropy(&logits.get("crossEntropy")?, &targets.get("crossEntropy")?, ignore_index))
}

/// Inverted dropout: zero with probability p, scale the rest by 1/(1−p); identity when not training.
#[napi(catch_unwind)]
pub fn dropout(env: Env, x: &NativeTensor, p: f64, seed: f64, training: bool) -> Result<NativeTensor> {
    let s = convert::seed("dropout", seed).js()?;
    out(&env, dr::dropout(&x.get("dropout")?, p, s, training))
}

/// What `recurrentLayer` returns.
#[napi(object, object_from_js = false)]
pub struct RecurrentLayerOutput {
    /// Outputs of every step, [T, B, H].
    pub y: NativeTensor,
    /// Final hidden state, [B, H].
    pub h_t: NativeTensor,
    /// Final cell state (LSTM only), [B, H].
    pub c_t: Option<NativeTensor>,
}

/// One recurrent layer in one direction over a whole sequence, as a single fused op. Absent
/// states start at zero; `batch_first` takes x as [B, T, I] and gives y as [B, T, H].
#[napi(catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn recurrent_layer(
    env: Env, kind: String, x: &NativeTensor, h0: Option<&NativeTensor>, c0: Option<&NativeTensor>,
    w_ih: &NativeTensor, w_hh: &NativeTensor, b_ih: Option<&NativeTensor>, b_hh: Option<&NativeTensor>,
    lengths: Option<Vec<f64>>, reverse: bool, batch_first: Option<bool>,
) -> Result<RecurrentLayerOutput> {
    const OP: &str = "recurrentLayer";
    let kind = rnn::CellKind::parse(&kind).js()?;
    let (w_ih, w_hh, b_ih, b_hh) = (w_ih.get(OP)?, w_hh.get(OP)?, opt(b_ih, OP)?, opt(b_hh, OP)?);
    let weights = rnn::RecurrentWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: b_ih.as_ref(), b_hh: b_hh.as_ref() };
    let (h0, c0) = (opt(h0, OP)?, opt(c0, OP)?);
    // The lengths go to the core as the JS numbers they are: it checks them with the rest.
    let call = rnn::LayerCall {
        h0: h0.as_ref(),
        c0: c0.as_ref(),
        lengths: lengths.as_deref(),
        reverse,
        batch_first: batch_first.unwrap_or(false),
    };
    let r = rnn::recurrent_layer_call(kind, &x.get(OP)?, &weights, &call).js()?;
    sync_external_memory(&env);
    Ok(RecurrentLayerOutput {
        y: NativeTensor::new(r.y),
        h_t: NativeTensor::new(r.h_t),
        c_t: r.c_t.map(NativeTensor::new),
    })
}

/// Both directions of a bidirectional layer as one op (on the CPU the two loops run at once,
/// one per thread): `[forward, reverse]`. Arguments as `recurrent_layer`'s, per direction.
#[napi(catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn recurrent_layer_pair(
    env: Env, kind: String, x: &NativeTensor, h0_f: Option<&NativeTensor>, c0_f: Option<&NativeTensor>,
    h0_b: Option<&NativeTensor>, c0_b: Option<&NativeTensor>, w_ih_f: &NativeTensor, w_hh_f: &NativeTensor,
    b_ih_f: Option<&NativeTensor>, b_hh_f: Option<&NativeTensor>, w_ih_b: &NativeTensor, w_hh_b: &NativeTensor,
    b_ih_b: Option<&NativeTensor>, b_hh_b: Option<&NativeTensor>, lengths: Option<Vec<f64>>, batch_first: bool,
) -> Result<Vec<RecurrentLayerOutput>> {
    const OP: &str = "recurrentLayer";
    let kind = rnn::CellKind::parse(&kind).js()?;
    let (wif, whf, bif, bhf) = (w_ih_f.get(OP)?, w_hh_f.get(OP)?, opt(b_ih_f, OP)?, opt(b_hh_f, OP)?);
    let (wib, whb, bib, bhb) = (w_ih_b.get(OP)?, w_hh_b.get(OP)?, opt(b_ih_b, OP)?, opt(b_hh_b, OP)?);
    let wf = rnn::RecurrentWeights { w_ih: &wif, w_hh: &whf, b_ih: bif.as_ref(), b_hh: bhf.as_ref() };
    let wb = rnn::RecurrentWeights { w_ih: &wib, w_hh: &whb, b_ih: bib.as_ref(), b_hh: bhb.as_ref() };
    let (h0f, c0f, h0b, c0b) = (opt(h0_f, OP)?, opt(c0_f, OP)?, opt(h0_b, OP)?, opt(c0_b, OP)?);
    let call = |h0, c0, reverse| rnn::LayerCall { h0, c0, lengths: lengths.as_deref(), reverse, batch_first };
    let (cf, cb) = (call(h0f.as_ref(), c0f.as_ref(), false), call(h0b.as_ref(), c0b.as_ref(), true));
    let outs = recurrent_core::ops::rnn_pair::recurrent_layer_pair(kind, &x.get(OP)?, [&wf, &wb], [&cf, &cb]).js()?;
    sync_external_memory(&env);
    Ok(outs
        .into_iter()
        .map(|r| RecurrentLayerOutput {
            y: NativeTensor::new(r.y),
            h_t: NativeTensor::new(r.h_t),
            c_t: r.c_t.map(NativeTensor::new),
        })
        .collect())
}

/// cond ? a : b elementwise (int32 cond), broadcasting all three.
#[napi(js_name = "where", catch_unwind)]
pub fn where_op(env: Env, cond: &NativeTensor, a: &NativeTensor, b: &NativeTensor) -> Result<NativeTensor> {
    out(&env, cmp::where_(&cond.get("where")?, &a.get("where")?, &b.get("where")?))
}

/// x with `value` where the int32 mask (broadcast to x) is non-zero.
#[napi(catch_unwind)]
pub fn masked_fill(env: Env, x: &NativeTensor, mask: &NativeTensor, value: f64) -> Result<NativeTensor> {
    out(&env, cmp::masked_fill(&x.get("maskedFill")?, &mask.get("maskedFill")?, value))
}

/// int32 [B, T]: 1 where t < lengths[b], from an int32 lengths tensor.
#[napi(catch_unwind)]
pub fn sequence_mask(env: Env, lengths: &NativeTensor, t: f64) -> Result<NativeTensor> {
    let t = convert::index("sequenceMask", "T", t).js()?;
    out(&env, cmp::sequence_mask(&lengths.get("sequenceMask")?, t))
}

/// sequenceMask from lengths as JS numbers (checked by the core), made on the CPU.
#[napi(catch_unwind)]
pub fn sequence_mask_numbers(env: Env, lengths: Vec<f64>, t: f64) -> Result<NativeTensor> {
    let t = convert::index("sequenceMask", "T", t).js()?;
    out(&env, cmp::sequence_mask_numbers(&lengths, t))
}

/// x converted to `dtype` ('float32', 'float64' or 'int32').
#[napi(catch_unwind)]
pub fn cast(env: Env, x: &NativeTensor, dtype: String) -> Result<NativeTensor> {
    let dt = convert::dtype(&dtype).js()?;
    out(&env, ca::cast(&x.get("cast")?, dt))
}

/// What `max` and `topk` return.
#[napi(object, object_from_js = false)]
pub struct ValuesIndices {
    /// The chosen values, differentiable.
    pub values: NativeTensor,
    /// Their int32 positions along the axis.
    pub indices: NativeTensor,
}

fn values_indices(env: &Env, r: recurrent_core::Result<(Tensor, Tensor)>) -> Result<ValuesIndices> {
    let (v, i) = r.js()?;
    sync_external_memory(env);
    Ok(ValuesIndices { values: NativeTensor::new(v), indices: NativeTensor::new(i) })
}

/// int32 index of the largest value along `axis`.
#[napi(catch_unwind)]
pub fn argmax(env: Env, x: &NativeTensor, axis: f64, keepdim: bool) -> Result<NativeTensor> {
    let a = convert::index("argmax", "axis", axis).js()?;
    out(&env, ix::argmax(&x.get("argmax")?, a, keepdim))
}

/// The largest value along `axis` and its int32 index.
#[napi(catch_unwind)]
pub fn max(env: Env, x: &NativeTensor, axis: f64, keepdim: bool) -> Result<ValuesIndices> {
    let a = convert::index("max", "axis", axis).js()?;
    values_indices(&env, ix::max(&x.get("max")?, a, keepdim))
}

/// The k largest (or smallest) values along `axis` and their int32 indices.
#[napi(catch_unwind)]
pub fn topk(env: Env, x: &NativeTensor, k: f64, axis: f64, largest: bool, sorted: bool) -> Result<ValuesIndices> {
    let kk = convert::index("topk", "k", k).js()?;
    let a = convert::index("topk", "axis", axis).js()?;
    values_indices(&env, ix::topk(&x.get("topk")?, kk, a, largest, sorted))
}

/// PyTorch's gather: out[i][j] = x[i][index[i][j]] for axis 1.
#[napi(catch_unwind)]
pub fn gather(env: Env, x: &NativeTensor, axis: f64, index: &NativeTensor) -> Result<NativeTensor> {
    let a = convert::index("gather", "axis", axis).js()?;
    out(&env, ix::gather(&x.get("gather")?, a, &index.get("gather")?))
}

/// The slices of x at the int32 indices [M] along `axis`.
#[napi(catch_unwind)]
pub fn index_select(env: Env, x: &NativeTensor, axis: f64, index: &NativeTensor) -> Result<NativeTensor> {
    let a = convert::index("indexSelect", "axis", axis).js()?;
    out(&env, ix::index_select(&x.get("indexSelect")?, a, &index.get("indexSelect")?))
}

/// What `attention` returns.
#[napi(object, object_from_js = false)]
pub struct AttentionOutput {
    /// The weighted sum of the values, [B, E].
    pub context: NativeTensor,
    /// The attention weights, [B, S]; zero past each row's length.
    pub weights: NativeTensor,
}

/// Score, length mask, softmax and context in one op; lengths as an int32 tensor or as JS
/// numbers (the core checks either).
#[napi(catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn attention(
    env: Env, query: &NativeTensor, keys: &NativeTensor, values: &NativeTensor, score: String,
    v: Option<&NativeTensor>, lengths: Option<&NativeTensor>, length_numbers: Option<Vec<f64>>,
) -> Result<AttentionOutput> {
    const OP: &str = "attention";
    let score = att::Score::parse(&score).js()?;
    let (v, lens) = (opt(v, OP)?, opt(lengths, OP)?);
    let lengths = match (&lens, &length_numbers) {
        (Some(t), _) => Some(att::Lengths::Tensor(t)),
        (None, Some(n)) => Some(att::Lengths::Numbers(n)),
        (None, None) => None,
    };
    let r = att::attention(&query.get(OP)?, &keys.get(OP)?, &values.get(OP)?, score, v.as_ref(), lengths).js()?;
    sync_external_memory(&env);
    Ok(AttentionOutput { context: NativeTensor::new(r.context), weights: NativeTensor::new(r.weights) })
}
