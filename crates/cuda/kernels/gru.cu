// The GRU cells (crates/core/src/ops/gru.rs), gate order r, z, n; the loop is in ops/rnn.rs.
// gru_*:    PyTorch / cuDNN (reset-after): n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)).
//           xp rows 3H (b_ih only), hh rows 3H = h · W_hhᵀ (b_hh added here), ws rows 4H:
//           r, z, n, W_hn h + b_hn.
// gru_rb_*: Keras reset_after=False: n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), all biases
//           folded into xp. Each step is two kernels around a mid-step GEMM
//           mid = (r ⊙ h) · W_hnᵀ; hh rows 2H; ws rows 4H: r, z, n, r ⊙ h.

template <class T>
__device__ void gru_fwd_step_impl(T* hs, T* ws_s, T* hprev_s, T* y, const T* xp, const T* hh, const T* b_hh, int has_bhh, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const T hv = hs[i];
        hprev_s[i] = hv;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        const T* x = xp + (t * B + b) * 3 * H;
        const T* r_ = hh + b * 3 * H;
        const T hr = has_bhh ? r_[j] + b_hh[j] : r_[j];
        const T hz = has_bhh ? r_[H + j] + b_hh[H + j] : r_[H + j];
        const T hn = has_bhh ? r_[2 * H + j] + b_hh[2 * H + j] : r_[2 * H + j];
        const T r = rc_sigmoid(x[j] + hr);
        const T z = rc_sigmoid(x[H + j] + hz);
        const T nn = rc_tanh(x[2 * H + j] + r * hn);
        const T h = (T(1) - z) * nn + z * hv;
        hs[i] = h;
        T* w = ws_s + b * 4 * H;
        w[j] = r;
        w[H + j] = z;
        w[2 * H + j] = nn;
        w[3 * H + j] = hn;
        y[(t * B + b) * H + j] = h;
    }
}

template <class T>
__device__ void gru_bwd_step_impl(T* dh, T* dg_s, T* dxp_s, const T* ws_s, const T* hprev_s, const T* dy, int has_dy, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        T d_h = dh[i];
        if (has_dy) d_h += dy[(t * B + b) * H + j];
        const T* w = ws_s + b * 4 * H;
        const T r = w[j], z = w[H + j], nn = w[2 * H + j], hn = w[3 * H + j];
        const T dn = d_h * (T(1) - z) * (T(1) - nn * nn);
        const T dz = d_h * (hprev_s[i] - nn) * z * (T(1) - z);
        const T dr = dn * hn * r * (T(1) - r);
        T* xg = dxp_s + b * 3 * H;
        T* g = dg_s + b * 3 * H;
        xg[j] = dr;
        xg[H + j] = dz;
        xg[2 * H + j] = dn;
        g[j] = dr;
        g[H + j] = dz;
        g[2 * H + j] = dn * r;
        dh[i] = d_h * z;
    }
}

// Reset-before, first half: r, z and r ⊙ h (the mid-step GEMM's input).
template <class T>
__device__ void gru_rb_fwd_step1_impl(T* hs, T* ws_s, T* hprev_s, const T* xp, const T* hh, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const T hv = hs[i];
        hprev_s[i] = hv;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        const T* x = xp + (t * B + b) * 3 * H;
        const T* r_ = hh + b * 2 * H;
        const T r = rc_sigmoid(x[j] + r_[j]);
        const T z = rc_sigmoid(x[H + j] + r_[H + j]);
        T* w = ws_s + b * 4 * H;
        w[j] = r;
        w[H + j] = z;
        w[3 * H + j] = r * hv;
    }
}

// Reset-before, second half: n from the mid-step product, then h'.
template <class T>
__device__ void gru_rb_fwd_step2_impl(T* hs, T* ws_s, T* y, const T* xp, const T* mid, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        T* w = ws_s + b * 4 * H;
        const T z = w[H + j];
        const T nn = rc_tanh(xp[(t * B + b) * 3 * H + 2 * H + j] + mid[i]);
        w[2 * H + j] = nn;
        const T h = (T(1) - z) * nn + z * hs[i];
        hs[i] = h;
        y[(t * B + b) * H + j] = h;
    }
}

// Reset-before backward, first half: z and n; dr needs d(r ⊙ h) from the mid-step GEMM.
template <class T>
__device__ void gru_rb_bwd_step1_impl(T* dh, T* dg_s, T* dxp_s, const T* ws_s, const T* hprev_s, const T* dy, int has_dy, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        T d_h = dh[i];
        if (has_dy) d_h += dy[(t * B + b) * H + j];
        const T* w = ws_s + b * 4 * H;
        const T z = w[H + j], nn = w[2 * H + j];
        const T dn = d_h * (T(1) - z) * (T(1) - nn * nn);
        const T dz = d_h * (hprev_s[i] - nn) * z * (T(1) - z);
        T* xg = dxp_s + b * 3 * H;
        T* g = dg_s + b * 3 * H;
        xg[H + j] = dz;
        xg[2 * H + j] = dn;
        g[H + j] = dz;
        g[2 * H + j] = dn;
        dh[i] = d_h * z;
    }
}

// Reset-before backward, second half: dmid = dG_n · W_hn is d(r ⊙ h).
template <class T>
__device__ void gru_rb_bwd_step2_impl(T* dh, T* dg_s, T* dxp_s, const T* ws_s, const T* hprev_s, const T* dmid, const int* lengths, i64 s, i64 B, i64 H, int reverse) {
    const i64 n = B * H;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / H, j = i - b * H;
        const i64 t = rc_time_of(lengths, s, b, reverse);
        if (t < 0) continue;
        const T r = ws_s[b * 4 * H + j];
        const T drh = dmid[i];
        const T dr = drh * hprev_s[i] * r * (T(1) - r);
        dxp_s[b * 3 * H + j] = dr;
        dg_s[b * 3 * H + j] = dr;
        dh[i] += drh * r;
    }
}

extern "C" __global__ void gru_fwd_step_f32(float* hs, float* ws_s, float* hprev_s, float* y, const float* xp, const float* hh, const float* b_hh, int has_bhh, const int* lengths, long long s, long long B, long long H, int reverse) { gru_fwd_step_impl<float>(hs, ws_s, hprev_s, y, xp, hh, b_hh, has_bhh, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_fwd_step_f64(double* hs, double* ws_s, double* hprev_s, double* y, const double* xp, const double* hh, const double* b_hh, int has_bhh, const int* lengths, long long s, long long B, long long H, int reverse) { gru_fwd_step_impl<double>(hs, ws_s, hprev_s, y, xp, hh, b_hh, has_bhh, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_bwd_step_f32(float* dh, float* dg_s, float* dxp_s, const float* ws_s, const float* hprev_s, const float* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse) { gru_bwd_step_impl<float>(dh, dg_s, dxp_s, ws_s, hprev_s, dy, has_dy, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_bwd_step_f64(double* dh, double* dg_s, double* dxp_s, const double* ws_s, const double* hprev_s, const double* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse) { gru_bwd_step_impl<double>(dh, dg_s, dxp_s, ws_s, hprev_s, dy, has_dy, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_fwd_step1_f32(float* hs, float* ws_s, float* hprev_s, const float* xp, const float* hh, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_fwd_step1_impl<float>(hs, ws_s, hprev_s, xp, hh, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_fwd_step1_f64(double* hs, double* ws_s, double* hprev_s, const double* xp, const double* hh, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_fwd_step1_impl<double>(hs, ws_s, hprev_s, xp, hh, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_fwd_step2_f32(float* hs, float* ws_s, float* y, const float* xp, const float* mid, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_fwd_step2_impl<float>(hs, ws_s, y, xp, mid, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_fwd_step2_f64(double* hs, double* ws_s, double* y, const double* xp, const double* mid, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_fwd_step2_impl<double>(hs, ws_s, y, xp, mid, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_bwd_step1_f32(float* dh, float* dg_s, float* dxp_s, const float* ws_s, const float* hprev_s, const float* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_bwd_step1_impl<float>(dh, dg_s, dxp_s, ws_s, hprev_s, dy, has_dy, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_bwd_step1_f64(double* dh, double* dg_s, double* dxp_s, const double* ws_s, const double* hprev_s, const double* dy, int has_dy, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_bwd_step1_impl<double>(dh, dg_s, dxp_s, ws_s, hprev_s, dy, has_dy, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_bwd_step2_f32(float* dh, float* dg_s, float* dxp_s, const float* ws_s, const float* hprev_s, const float* dmid, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_bwd_step2_impl<float>(dh, dg_s, dxp_s, ws_s, hprev_s, dmid, lengths, s, B, H, reverse); }
extern "C" __global__ void gru_rb_bwd_step2_f64(double* dh, double* dg_s, double* dxp_s, const double* ws_s, const double* hprev_s, const double* dmid, const int* lengths, long long s, long long B, long long H, int reverse) { gru_rb_bwd_step2_impl<double>(dh, dg_s, dxp_s, ws_s, hprev_s, dmid, lengths, s, B, H, reverse); }
