// The recurrent loop's device pieces (crates/core/src/ops/rnn.rs) and the vanilla RNN cell.
// The loop itself runs on the host: per step one cuBLAS GEMM (h · W_hhᵀ) and one fused step
// kernel; backward per step one fused kernel and one GEMM (dh += dG · W_hh). Shapes: T steps,
// B rows, H hidden; saved buffers (ws, hprev, dg, dxp) are in processing order [s, b], x, y and
// dx in time order [t, b]. Step kernels run one thread per (row, unit) of the step, B·H.

// xp[r, j] = b_ih[j] (+ b_hh[j]): the folded biases that the input GEMM accumulates onto.
template <class T> __device__ void rnn_bias_rows_impl(T* xp, const T* b_ih, const T* b_hh, i64 rows, i64 gh, int add_hh) {
    const i64 n = rows * gh;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 j = i % gh;
        xp[i] = add_hh ? b_ih[j] + b_hh[j] : b_ih[j];
    }
}

// Reorders [steps, batch, width] rows between time order and processing order; rows with no
// source (past a row's length) are zero. to_time = 0: dst[s, b] = src[t(s, b), b];
// to_time = 1: dst[t, b] = src[s(t, b), b].
template <class T>
__device__ void rnn_time_gather_impl(T* dst, const T* src, const int* lengths, i64 steps, i64 batch, i64 width, int reverse, int to_time) {
    const i64 n = steps * batch * width;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 k = i % width;
        const i64 qb = i / width;
        const i64 b = qb % batch, q = qb / batch;
        i64 from;
        if (to_time) {
            const i64 len = lengths[b];
            from = q < len ? (reverse ? len - 1 - q : q) : -1;
        } else {
            from = rc_time_of(lengths, q, b, reverse);
        }
        dst[i] = from >= 0 ? src[(from * batch + b) * width + k] : T(0);
    }
}

// h' = act(xp + hh) with ws = h' saved; hprev_s = h for every row (as the CPU does).
template <class T>
__device__ void rnn_fwd_step_impl(T* hs, T* ws_s, T* hprev_s, T* y, const T* xp, const T* hh, const int* lengths, i64 s, i64 B, i64 H, int reverse, int relu) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        hprev_s[i] = hs[i];
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        const T pre = xp[(t * B + b) * H + j] + hh[i];
        const T v = relu ? (pre > T(0) ? pre : T(0)) : rc_tanh(pre);
        hs[i] = v;
        ws_s[i] = v;
        y[(t * B + b) * H + j] = v;
    }
}

template <class T>
__device__ void rnn_bwd_step_impl(T* dh, T* dg_s, T* dxp_s, const T* ws_s, const T* dy, int has_dy, const int* lengths, i64 s, i64 B, i64 H, int reverse, int relu) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        T d_h = dh[i];
        if (has_dy) d_h += dy[(t * B + b) * H + j];
        const T yv = ws_s[i];
        const T d = relu ? (yv > T(0) ? d_h : T(0)) : d_h * (T(1) - yv * yv);
        dg_s[i] = d;
        dxp_s[i] = d;
        dh[i] = T(0);
    }
}

extern "C" __global__ void rnn_bias_rows_f32(float* xp, const float* b_ih, const float* b_hh, long long rows, long long gh, int add_hh) { rnn_bias_rows_impl<float>(xp, b_ih, b_hh, rows, gh, add_hh); }
extern "C" __global__ void rnn_bias_rows_f64(double* xp, const double* b_ih, const double* b_hh, long long rows, long long gh, int add_hh) { rnn_bias_rows_impl<double>(xp, b_ih, b_hh, rows, gh, add_hh); }
extern "C" __global__ void rnn_time_gather_f32(float* dst, const float* src, const int* lengths, long long steps, long long batch, long long width, int reverse, int to_time) { rnn_time_gather_impl<float>(dst, src, lengths, steps, batch, width, reverse, to_time); }
extern "C" __global__ void rnn_time_gather_f64(double* dst, const double* src, const int* lengths, long long steps, long long batch, long long width, int reverse, int to_time) { rnn_time_gather_impl<double>(dst, src, lengths, steps, batch, width, reverse, to_time); }
extern "C" __global__ void rnn_fwd_step_f32(float* hs, float* ws_s, float* hprev_s, float* y, const float* xp, const float* hh, const int* lengths, long long s, long long B, long long H, int reverse, int relu) { rnn_fwd_step_impl<float>(hs, ws_s, hprev_s, y, xp, hh, lengths, s, B, H, reverse, relu); }
extern "C" __global__ void rnn_fwd_step_f64(double* hs, double* ws_s, double* hprev_s, double* y, const double* xp, const double* hh, const int* lengths, long long s, long long B, long long H, int reverse, int relu) { rnn_fwd_step_impl<double>(hs, ws_s, hprev_s, y, xp, hh, lengths, s, B, H, reverse, relu); }
extern "C" __global__ void rnn_bwd_step_f32(float* dh, float* dg_s, float* dxp_s, const float* ws_s, const float* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse, int relu) { rnn_bwd_step_impl<float>(dh, dg_s, dxp_s, ws_s, dy, has_dy, lengths, s, B, H, reverse, relu); }
extern "C" __global__ void rnn_bwd_step_f64(double* dh, double* dg_s, double* dxp_s, const double* ws_s, const double* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse, int relu) { rnn_bwd_step_impl<double>(dh, dg_s, dxp_s, ws_s, dy, has_dy, lengths, s, B, H, reverse, relu); }
