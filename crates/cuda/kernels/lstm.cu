// The LSTM cell step (crates/core/src/ops/lstm.rs), gate order i, f, g, o; the loop and its
// GEMMs are in ops/rnn.rs. xp rows hold 4H (time order), hh rows 4H (this step's h · W_hhᵀ),
// ws rows 6H: i, f, g, o, c, tanh(c').

template <class T>
__device__ void lstm_fwd_step_impl(T* hs, T* cs, T* ws_s, T* hprev_s, T* y, const T* xp, const T* hh, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        hprev_s[i] = hs[i];
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        const T* x = xp + (t * B + b) * 4 * H;
        const T* r = hh + b * 4 * H;
        const T ig = rc_sigmoid(x[j] + r[j]);
        const T fg = rc_sigmoid(x[H + j] + r[H + j]);
        const T gg = rc_tanh(x[2 * H + j] + r[2 * H + j]);
        const T og = rc_sigmoid(x[3 * H + j] + r[3 * H + j]);
        const T c = cs[i];
        const T c_new = fg * c + ig * gg;
        const T tc = rc_tanh(c_new);
        const T h = og * tc;
        cs[i] = c_new;
        hs[i] = h;
        T* w = ws_s + b * 6 * H;
        w[j] = ig;
        w[H + j] = fg;
        w[2 * H + j] = gg;
        w[3 * H + j] = og;
        w[4 * H + j] = c;
        w[5 * H + j] = tc;
        y[(t * B + b) * H + j] = h;
    }
}

// From dh (+ dy) and dc of this step's output state: the gate gradients into dg_s (recurrent
// part) and dxp_s (input part; the same values for an LSTM), dc ← dc_prev, dh ← 0 (the loop
// then adds dG · W_hh).
template <class T>
__device__ void lstm_bwd_step_impl(T* dh, T* dc, T* dg_s, T* dxp_s, const T* ws_s, const T* dy, int has_dy, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        T d_h = dh[i];
        if (has_dy) d_h += dy[(t * B + b) * H + j];
        const T* w = ws_s + b * 6 * H;
        const T ig = w[j], fg = w[H + j], gg = w[2 * H + j], og = w[3 * H + j], c = w[4 * H + j], tc = w[5 * H + j];
        const T d_c = dc[i] + d_h * og * (T(1) - tc * tc);
        const T di = d_c * gg * ig * (T(1) - ig);
        const T df = d_c * c * fg * (T(1) - fg);
        const T dgg = d_c * ig * (T(1) - gg * gg);
        const T d_o = d_h * tc * og * (T(1) - og);
        T* g = dg_s + b * 4 * H;
        T* xg = dxp_s + b * 4 * H;
        g[j] = di;
        g[H + j] = df;
        g[2 * H + j] = dgg;
        g[3 * H + j] = d_o;
        xg[j] = di;
        xg[H + j] = df;
        xg[2 * H + j] = dgg;
        xg[3 * H + j] = d_o;
        dc[i] = d_c * fg;
        dh[i] = T(0);
    }
}

extern "C" __global__ void lstm_fwd_step_f32(float* hs, float* cs, float* ws_s, float* hprev_s, float* y, const float* xp, const float* hh, const int* lengths, long long s, long long B, long long H, int reverse) { lstm_fwd_step_impl<float>(hs, cs, ws_s, hprev_s, y, xp, hh, lengths, s, B, H, reverse); }
extern "C" __global__ void lstm_fwd_step_f64(double* hs, double* cs, double* ws_s, double* hprev_s, double* y, const double* xp, const double* hh, const int* lengths, long long s, long long B, long long H, int reverse) { lstm_fwd_step_impl<double>(hs, cs, ws_s, hprev_s, y, xp, hh, lengths, s, B, H, reverse); }
extern "C" __global__ void lstm_bwd_step_f32(float* dh, float* dc, float* dg_s, float* dxp_s, const float* ws_s, const float* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse) { lstm_bwd_step_impl<float>(dh, dc, dg_s, dxp_s, ws_s, dy, has_dy, lengths, s, B, H, reverse); }
extern "C" __global__ void lstm_bwd_step_f64(double* dh, double* dc, double* dg_s, double* dxp_s, const double* ws_s, const double* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse) { lstm_bwd_step_impl<double>(dh, dc, dg_s, dxp_s, ws_s, dy, has_dy, lengths, s, B, H, reverse); }
