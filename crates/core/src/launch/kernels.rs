//! The table of every kernel the ops launch: its exported name per dtype, its file in
//! `crates/cuda/kernels/` and its argument kinds, i.e. the `extern "C"` ABI of the sources as the
//! core sees it. Every launch goes through a [`Kernel`] from this table ([`Kernel::launch`]);
//! the test `crates/cuda/tests/kernel_table.rs` checks, without a GPU, that each entry exists in
//! the sources with exactly these arguments, that the sources define no kernel the table lacks,
//! and that no op calls `GpuBackend::launch` with a name of its own. At run time the CUDA backend
//! still checks every launch against the parsed sources (counts, kinds, element types).

use crate::backend::{GpuBackend, KernelArg};
use crate::error::{Error, Result};
use crate::storage::DType;

/// One parameter of a kernel, by the C type of its wrapper. `T` is the element type of the
/// launched variant (`float` for `_f32`, `double` for `_f64`, `int` for `_i32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// `T*`: an output (or a buffer updated in place).
    Out,
    /// `const T*`
    In,
    /// `int*`, whatever T.
    OutI32,
    /// `const int*` (indices, lengths), whatever T.
    InI32,
    /// `double*` (partial sums kept in double), whatever T.
    OutF64,
    /// `const double*`, whatever T.
    InF64,
    /// `int`: flags and op codes.
    I32,
    /// `long long`: sizes, strides, steps.
    I64,
    /// `double`: scalars, converted to T inside the kernel.
    F64,
}

/// A kernel of `crates/cuda/kernels/*.cu`. Only this module makes them (the fields are private),
/// so every value is one of the constants below, all listed in [`ALL`].
#[derive(Debug)]
pub struct Kernel {
    base: &'static str,
    file: &'static str,
    /// The compiled variants as (dtype, exported name); empty for an untyped kernel, which is
    /// exported as `base` and serves every dtype.
    variants: &'static [(DType, &'static str)],
    /// The arguments as runs of one kind: (kind, count).
    args: &'static [(Arg, usize)],
}

impl Kernel {
    /// The name without its dtype suffix, e.g. `lstm_fwd_step`.
    pub fn base(&self) -> &'static str {
        self.base
    }
    /// The source file under `crates/cuda/kernels/`.
    pub fn file(&self) -> &'static str {
        self.file
    }
    /// The exported names with their dtype (`None` for an untyped kernel).
    pub fn symbols(&self) -> Vec<(Option<DType>, &'static str)> {
        if self.variants.is_empty() {
            vec![(None, self.base)]
        } else {
            self.variants.iter().map(|&(dt, name)| (Some(dt), name)).collect()
        }
    }
    /// The exported name of the variant for `dt`, if the kernel has one.
    pub fn symbol(&self, dt: DType) -> Option<&'static str> {
        if self.variants.is_empty() {
            return Some(self.base);
        }
        self.variants.iter().find(|v| v.0 == dt).map(|v| v.1)
    }
    /// The argument kinds in order.
    pub fn args(&self) -> impl Iterator<Item = Arg> + '_ {
        self.args.iter().flat_map(|&(kind, n)| std::iter::repeat_n(kind, n))
    }

    /// Whether `args` fit this kernel's parameters for a launch in `dt` (count, scalar kinds and
    /// the element type behind each pointer).
    fn accepts(&self, dt: DType, args: &[KernelArg]) -> bool {
        let mut n = 0;
        for (kind, arg) in self.args().zip(args) {
            n += 1;
            let ok = match (kind, arg) {
                (Arg::Out | Arg::In, KernelArg::Buf(b, _)) => b.dtype() == dt,
                (Arg::OutI32 | Arg::InI32, KernelArg::Buf(b, _)) => b.dtype() == DType::I32,
                (Arg::OutF64 | Arg::InF64, KernelArg::Buf(b, _)) => b.dtype() == DType::F64,
                (Arg::I32, KernelArg::I32(_)) | (Arg::I64, KernelArg::I64(_)) | (Arg::F64, KernelArg::F64(_)) => true,
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        n == args.len() && n == self.args().count()
    }

    /// Launches the variant for `dt` over at least `threads` threads (the dtype is ignored by
    /// untyped kernels). A dtype the kernel has no variant for is a bug in the calling op.
    pub fn launch(&self, be: &dyn GpuBackend, dt: DType, threads: usize, args: &[KernelArg]) -> Result<()> {
        let Some(name) = self.symbol(dt) else {
            return Err(Error::internal(self.base, format!("kernel {} has no {dt} variant", self.base)));
        };
        debug_assert!(self.accepts(dt, args), "launch of {name} does not match its table entry");
        be.launch(name, threads, args)
    }
}

macro_rules! dtype_of {
    (f32) => {
        DType::F32
    };
    (f64) => {
        DType::F64
    };
    (i32) => {
        DType::I32
    };
}

/// One line per kernel, grouped by file: the constant, the base name, the dtypes it is compiled
/// for (none: untyped) and its argument kinds, `Kind * n` for n in a row. Makes the constants
/// and [`ALL`] from one list, so that no kernel can be made without being listed.
macro_rules! kernels {
    ($($file:literal { $($id:ident = $base:literal [$($dt:ident),*] ($($arg:ident $(* $n:literal)?),* );)* })*) => {
        $($(
            #[doc = concat!("`", $base, "` in `kernels/", $file, "`.")]
            pub const $id: Kernel = Kernel {
                base: $base,
                file: $file,
                variants: &[$((dtype_of!($dt), concat!($base, "_", stringify!($dt)))),*],
                args: &[$((Arg::$arg, 1 $(- 1 + $n)?)),*],
            };
        )*)*
        /// Every kernel of the table, in file order.
        pub const ALL: &[&Kernel] = &[$($(&$id),*),*];
    };
}

kernels! {
    "elementwise.cu" {
        BINARY = "binary" [f32, f64] (Out, In, In, I64, I32);
        BINARY_BCAST = "binary_bcast" [f32, f64] (Out, In, In, I64, I32, I64 * 18);
        UNARY = "unary" [f32, f64] (Out, In, I64, I32, F64);
        UNARY_GRAD = "unary_grad" [f32, f64] (Out, In, In, I64, I32);
    }
    "reduce.cu" {
        SUM_THREADS = "sum_threads" [f32, f64] (Out, In, I64, I64, F64, I64 * 16);
        SUM_BLOCKS = "sum_blocks" [f32, f64] (Out, In, I64, I64, I64, F64, I64 * 16);
        SUM_TILES = "sum_tiles" [f32, f64] (Out, In, I64, I64, I64, F64, I64 * 16);
    }
    "shape.cu" {
        COPY = "copy" [f32, f64, i32] (Out, In, I64);
        COPY2D = "copy2d" [f32, f64, i32] (Out, I64, In, I64, I64, I64);
        GATHER = "gather" [f32, f64, i32] (Out, In, I64 * 13);
        FILL = "fill" [f32, f64, i32] (Out, I64, F64);
    }
    "softmax.cu" {
        SOFTMAX_ROWS = "softmax_rows" [f32, f64] (Out, In, I64, I64, I32, I32);
        SOFTMAX_COLS = "softmax_cols" [f32, f64] (Out, In, I64, I64, I64, I32);
        SOFTMAX_GRAD_ROWS = "softmax_grad_rows" [f32, f64] (Out, In, In, I64, I64, I32, I32);
        SOFTMAX_GRAD_COLS = "softmax_grad_cols" [f32, f64] (Out, In, In, I64, I64, I64, I32);
    }
    "loss.cu" {
        SQ_DIFF = "sq_diff" [f32, f64] (Out, In, In, I64);
        MSE_GRAD = "mse_grad" [f32, f64] (Out, Out, In, In, In, I64, F64);
        CE_ROWS = "ce_rows" [f32, f64] (Out, In, InI32, I64, I64, I32, I32, I32);
        CE_FINISH = "ce_finish" [f32, f64] (Out, In);
        CE_GRAD = "ce_grad" [f32, f64] (Out, In, In, In, InI32, I64, I64, I32, I32, I32);
    }
    "embedding.cu" {
        INDEX_CHECK = "index_check" [] (OutI32, InI32, I64, I64, I32, I32);
        EMBEDDING_FWD = "embedding_fwd" [f32, f64] (Out, In, InI32, I64, I64, I64);
        EMBEDDING_BWD = "embedding_bwd" [f32, f64] (Out, In, InI32, I64, I64, I64);
    }
    "dropout.cu" {
        DROPOUT = "dropout" [f32, f64] (Out, In, I64, I64, I64, F64);
    }
    "rnn.cu" {
        RNN_BIAS_ROWS = "rnn_bias_rows" [f32, f64] (Out, In, In, I64, I64, I32);
        RNN_TIME_GATHER = "rnn_time_gather" [f32, f64] (Out, In, InI32, I64, I64, I64, I32, I32);
        RNN_FWD_STEP = "rnn_fwd_step" [f32, f64] (Out * 4, In, In, InI32, I64, I64, I64, I32, I32);
        RNN_BWD_STEP = "rnn_bwd_step" [f32, f64] (Out, Out, Out, In, In, I32, InI32, I64, I64, I64, I32, I32);
    }
    "lstm.cu" {
        LSTM_FWD_STEP = "lstm_fwd_step" [f32, f64] (Out * 5, In, In, InI32, I64, I64, I64, I32);
        LSTM_BWD_STEP = "lstm_bwd_step" [f32, f64] (Out * 4, In, In, I32, InI32, I64, I64, I64, I32);
    }
    "gru.cu" {
        GRU_FWD_STEP = "gru_fwd_step" [f32, f64] (Out * 4, In, In, In, I32, InI32, I64, I64, I64, I32);
        GRU_BWD_STEP = "gru_bwd_step" [f32, f64] (Out, Out, Out, In, In, In, I32, InI32, I64, I64, I64, I32);
        GRU_RB_FWD_STEP1 = "gru_rb_fwd_step1" [f32, f64] (Out, Out, Out, In, In, InI32, I64, I64, I64, I32);
        GRU_RB_FWD_STEP2 = "gru_rb_fwd_step2" [f32, f64] (Out, Out, Out, In, In, InI32, I64, I64, I64, I32);
        GRU_RB_BWD_STEP1 = "gru_rb_bwd_step1" [f32, f64] (Out, Out, Out, In, In, In, I32, InI32, I64, I64, I64, I32);
        GRU_RB_BWD_STEP2 = "gru_rb_bwd_step2" [f32, f64] (Out, Out, Out, In, In, In, InI32, I64, I64, I64, I32);
    }
    "compare.cu" {
        COMPARE = "compare" [f32, f64, i32] (OutI32, In, In, I64, I32, I64 * 18);
        WHERE = "where" [f32, f64, i32] (Out, InI32, In, In, I64, I64 * 24);
        MASKED_FILL = "masked_fill" [f32, f64, i32] (Out, In, InI32, I64, F64, I32, I64 * 18);
        SEQUENCE_MASK = "sequence_mask" [i32] (OutI32, OutI32, InI32, I64, I64);
    }
    "cast.cu" {
        CAST_TO_I32 = "cast_to_i32" [f32, f64] (OutI32, OutI32, In, I64);
        CAST_TO_F64 = "cast_to_f64" [f32, f64] (OutF64, In, I64);
        CAST_FROM_F64 = "cast_from_f64" [f32, f64] (Out, InF64, I64);
        CAST_FROM_I32 = "cast_from_i32" [f32, f64] (Out, InI32, I64);
    }
    "index.cu" {
        MAX_AXIS = "max_axis" [f32, f64, i32] (Out, OutI32, In, I64, I64, I64);
        TOPK = "topk" [f32, f64, i32] (Out, OutI32, In, I64 * 4, I32, I32);
        GATHER_AXIS = "gather_axis" [f32, f64, i32] (Out, In, InI32, I64 * 15);
        GATHER_AXIS_BWD = "gather_axis_bwd" [f32, f64] (Out, In, InI32, I64 * 15);
        INDEX_SELECT = "index_select" [f32, f64, i32] (Out, In, InI32, I64 * 4);
        INDEX_SELECT_BWD = "index_select_bwd" [f32, f64] (Out, In, InI32, I64 * 4);
    }
    "attention.cu" {
        ATTENTION_FWD = "attention_fwd" [f32, f64] (Out, Out, In * 4, InI32, OutI32, I64 * 4, I32);
        ATTENTION_BWD_SCORES = "attention_bwd_scores" [f32, f64] (Out, In * 4, InI32, I64 * 3, I32, I32);
        ATTENTION_BWD_KEYS = "attention_bwd_keys" [f32, f64] (Out, Out, In * 6, InI32, I64 * 4, I32, I32);
        ATTENTION_BWD_QUERY = "attention_bwd_query" [f32, f64] (Out, Out, In * 4, InI32, I64 * 3, I32);
    }
    "optim.cu" {
        CLIP_COEF = "clip_coef" [] (OutF64, InF64, I64, F64, F64, I32);
        SGD = "sgd" [f32, f64] (Out, Out, In, In, In, I64, F64 * 4, I32, I32, I32);
        ADAM = "adam" [f32, f64] (Out, Out, Out, In * 4, I64, F64 * 7, I32);
        RMSPROP = "rmsprop" [f32, f64] (Out * 4, In * 5, I64, F64 * 5, I32, I32);
        ADAGRAD = "adagrad" [f32, f64] (Out, Out, In, In, In, I64, F64, F64, F64);
        CLAMP = "clamp" [f32, f64] (Out, In, I64, F64, F64);
        NORM_PARTIAL = "norm_partial" [f32, f64] (OutF64, In, I64, I64, F64, I32);
        CLIP_SCALE = "clip_scale" [f32, f64] (Out, In, I64, InF64);
        CLIP_NORM_OUT = "clip_norm_out" [f32, f64] (Out, InF64);
    }
    "conv.cu" {
        IM2COL = "im2col" [f32, f64] (Out, In, I64 * 14);
        COL2IM = "col2im" [f32, f64] (Out, In, I64 * 14);
        CONV_BIAS_FILL = "conv_bias_fill" [f32, f64] (Out, In, I64 * 3);
    }
    "pool.cu" {
        MAX_POOL_FWD = "max_pool_fwd" [f32, f64] (Out, OutI32, In, I64 * 11);
        MAX_POOL_BWD = "max_pool_bwd" [f32, f64] (Out, In, InI32, I64 * 11);
        AVG_POOL_FWD = "avg_pool_fwd" [f32, f64] (Out, In, I64 * 11, I32);
        AVG_POOL_BWD = "avg_pool_bwd" [f32, f64] (Out, In, I64 * 11, I32);
    }
    "norm.cu" {
        BATCH_NORM_STATS = "batch_norm_stats" [f32, f64] (Out, Out, In, I64 * 3);
        BATCH_NORM_FWD = "batch_norm_fwd" [f32, f64] (Out, In * 5, I64 * 3, F64, I32, I32);
        BATCH_NORM_RUNNING = "batch_norm_running" [f32, f64] (Out, Out, In * 4, I64, I64, F64);
        BATCH_NORM_BWD_REDUCE = "batch_norm_bwd_reduce" [f32, f64] (Out, Out, In * 4, I64 * 3, F64);
        BATCH_NORM_BWD = "batch_norm_bwd" [f32, f64] (Out, In * 7, I64 * 3, F64, I32, I32);
        LAYER_NORM_FWD = "layer_norm_fwd" [f32, f64] (Out, In * 3, I64, I64, F64, I32, I32, I32);
        LAYER_NORM_BWD = "layer_norm_bwd" [f32, f64] (Out, Out, In * 3, I64, I64, F64, I32, I32);
        LAYER_NORM_PARAM_GRAD = "layer_norm_param_grad" [f32, f64] (Out, Out, In * 3, I64, I64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_runs_expand() {
        assert_eq!(LSTM_FWD_STEP.symbol(DType::F64), Some("lstm_fwd_step_f64"));
        assert_eq!(LSTM_FWD_STEP.symbol(DType::I32), None);
        assert_eq!(COPY.symbol(DType::I32), Some("copy_i32"));
        assert_eq!(INDEX_CHECK.symbol(DType::F32), Some("index_check"));
        assert_eq!(INDEX_CHECK.symbols(), vec![(None, "index_check")]);
        assert_eq!(BINARY_BCAST.args().count(), 23);
        assert_eq!(LSTM_FWD_STEP.args().take(6).collect::<Vec<_>>(), [[Arg::Out; 5].as_slice(), &[Arg::In]].concat());
        let mut bases: Vec<&str> = ALL.iter().map(|k| k.base()).collect();
        bases.sort();
        bases.dedup();
        assert_eq!(bases.len(), ALL.len(), "a kernel is listed twice");
    }

    struct Fake(DType);
    impl crate::backend::DeviceBuffer for Fake {
        fn dtype(&self) -> DType {
            self.0
        }
        fn len(&self) -> usize {
            1
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn launch_arguments_are_checked_against_the_entry() {
        let (f32s, f64s, ints) = (Fake(DType::F32), Fake(DType::F64), Fake(DType::I32));
        let ok = [KernelArg::Buf(&f32s, 0), KernelArg::Buf(&f32s, 4), KernelArg::I64(3)];
        assert!(COPY.accepts(DType::F32, &ok));
        // The pointers' element type follows the launch dtype: an f32 buffer is not an f64 `T*`.
        assert!(!COPY.accepts(DType::F64, &ok));
        assert!(!COPY.accepts(DType::F32, &ok[..2]));
        assert!(!COPY.accepts(DType::F32, &[KernelArg::Buf(&f32s, 0), KernelArg::Buf(&f32s, 0), KernelArg::I32(3)]));
        let extra = [KernelArg::Buf(&f32s, 0), KernelArg::Buf(&f32s, 0), KernelArg::I64(3), KernelArg::I64(3)];
        assert!(!COPY.accepts(DType::F32, &extra));
        // Fixed-type pointers ignore the launch dtype.
        let (b, i, d) = (KernelArg::Buf, KernelArg::I32, KernelArg::F64);
        let coef = [b(&f64s, 0), b(&f64s, 0), KernelArg::I64(1), d(1.0), d(2.0), i(0)];
        assert!(CLIP_COEF.accepts(DType::F32, &coef));
        let check = [b(&ints, 0), b(&f32s, 0), KernelArg::I64(1), KernelArg::I64(1), i(0), i(0)];
        assert!(!INDEX_CHECK.accepts(DType::I32, &check), "indices must be int32");
        let check = [b(&ints, 0), b(&ints, 0), KernelArg::I64(1), KernelArg::I64(1), i(0), i(0)];
        assert!(INDEX_CHECK.accepts(DType::I32, &check));
    }
}
