// Normalisations (crates/core/src/ops/norm.rs). Batch norm: a block per channel for the
// statistics and the backward's sums (rc_block_sum over N·H·W values), a thread per element
// for the rest. Layer norm: a warp or a block per row (rc_row, the host's `warp` flag), and a
// thread per column for the weight and bias gradients. Statistics are two-pass (mean, then the
// mean squared deviation), as on the CPU.

// Value j of channel ch in x [N, C, HW].
template <class T> __device__ __forceinline__ T rc_bn_at(const T* x, i64 j, i64 ch, i64 c, i64 hw) {
    return x[((j / hw) * c + ch) * hw + j % hw];
}

// mean[ch] and the biased var[ch] over N·HW values; launched with C blocks.
template <class T> __device__ void batch_norm_stats_impl(T* mean, T* var, const T* x, i64 n, i64 c, i64 hw) {
    __shared__ T sh[RC_BLOCK];
    const i64 ch = blockIdx.x;
    if (ch >= c) return;
    const i64 cnt = n * hw;
    T s = T(0);
    for (i64 j = threadIdx.x; j < cnt; j += blockDim.x) s += rc_bn_at(x, j, ch, c, hw);
    const T m = rc_block_sum(s, sh) / T(cnt);
    T q = T(0);
    for (i64 j = threadIdx.x; j < cnt; j += blockDim.x) {
        const T d = rc_bn_at(x, j, ch, c, hw) - m;
        q += d * d;
    }
    q = rc_block_sum(q, sh);
    if (threadIdx.x == 0) {
        mean[ch] = m;
        var[ch] = q / T(cnt);
    }
}

// y = x·scale + shift with scale = w/√(var + eps), shift = b − mean·scale, per channel.
template <class T> __device__ void batch_norm_fwd_impl(T* y, const T* x, const T* mean, const T* var, const T* w, const T* b, i64 n, i64 c, i64 hw, double eps, int has_w, int has_b) {
    const i64 len = n * c * hw;
    for (i64 i = rc_tid(); i < len; i += rc_nthreads()) {
        const i64 ch = (i / hw) % c;
        const T scale = T(1) / rc_sqrt(var[ch] + T(eps)) * (has_w ? w[ch] : T(1));
        const T shift = (has_b ? b[ch] : T(0)) - mean[ch] * scale;
        y[i] = x[i] * scale + shift;
    }
}

// The new running statistics: (1 − m)·r + m·stat, the variance unbiased by count/(count − 1).
template <class T> __device__ void batch_norm_running_impl(T* nm, T* nv, const T* rm, const T* rv, const T* mean, const T* var, i64 c, i64 count, double momentum) {
    const T m = T(momentum), keep = T(1.0 - momentum);
    const T unbias = T((double)count / (double)(count - 1));
    for (i64 i = rc_tid(); i < c; i += rc_nthreads()) {
        nm[i] = keep * rm[i] + m * mean[i];
        nv[i] = keep * rv[i] + m * var[i] * unbias;
    }
}

// Per channel Σ dy and Σ dy·x̂; launched with C blocks.
template <class T> __device__ void batch_norm_bwd_reduce_impl(T* sum_g, T* sum_gx, const T* g, const T* x, const T* mean, const T* var, i64 n, i64 c, i64 hw, double eps) {
    __shared__ T sh[RC_BLOCK];
    const i64 ch = blockIdx.x;
    if (ch >= c) return;
    const i64 cnt = n * hw;
    const T m = mean[ch];
    const T is = T(1) / rc_sqrt(var[ch] + T(eps));
    T sg = T(0), sgx = T(0);
    for (i64 j = threadIdx.x; j < cnt; j += blockDim.x) {
        const T gv = rc_bn_at(g, j, ch, c, hw);
        sg += gv;
        sgx += gv * (rc_bn_at(x, j, ch, c, hw) - m) * is;
    }
    sg = rc_block_sum(sg, sh);
    sgx = rc_block_sum(sgx, sh);
    if (threadIdx.x == 0) {
        sum_g[ch] = sg;
        sum_gx[ch] = sgx;
    }
}

// dx = k·(dy − Σdy/M − x̂·Σdy·x̂/M) with the batch's statistics (which depend on x), k·dy with
// running ones; k = w/√(var + eps).
template <class T> __device__ void batch_norm_bwd_impl(T* gx, const T* g, const T* x, const T* mean, const T* var, const T* w, const T* sum_g, const T* sum_gx, i64 n, i64 c, i64 hw, double eps, int has_w, int batch_stats) {
    const i64 len = n * c * hw;
    const T cnt = T(n * hw);
    for (i64 i = rc_tid(); i < len; i += rc_nthreads()) {
        const i64 ch = (i / hw) % c;
        const T is = T(1) / rc_sqrt(var[ch] + T(eps));
        const T k = is * (has_w ? w[ch] : T(1));
        gx[i] = batch_stats ? k * (g[i] - sum_g[ch] / cnt - (x[i] - mean[ch]) * is * sum_gx[ch] / cnt) : k * g[i];
    }
}

template <class T> __device__ void layer_norm_fwd_impl(T* y, const T* x, const T* w, const T* b, i64 rows, i64 d, double eps, int has_w, int has_b, int warp) {
    __shared__ T sh[RC_BLOCK];
    const RcRow rr = rc_row(warp);
    if (rr.row >= rows) return;
    const T* xr = x + rr.row * d;
    T* yr = y + rr.row * d;
    T s = T(0);
    for (i64 j = rr.lane; j < d; j += rr.width) s += xr[j];
    const T m = rc_group_sum(s, sh, warp) / T(d);
    T q = T(0);
    for (i64 j = rr.lane; j < d; j += rr.width) q += (xr[j] - m) * (xr[j] - m);
    const T is = T(1) / rc_sqrt(rc_group_sum(q, sh, warp) / T(d) + T(eps));
    for (i64 j = rr.lane; j < d; j += rr.width) yr[j] = (xr[j] - m) * is * (has_w ? w[j] : T(1)) + (has_b ? b[j] : T(0));
}

// dx per row; also keeps each row's mean and 1/σ in stats[2·row], stats[2·row + 1].
template <class T> __device__ void layer_norm_bwd_impl(T* gx, T* stats, const T* g, const T* x, const T* w, i64 rows, i64 d, double eps, int has_w, int warp) {
    __shared__ T sh[RC_BLOCK];
    const RcRow rr = rc_row(warp);
    if (rr.row >= rows) return;
    const T* xr = x + rr.row * d;
    const T* gr = g + rr.row * d;
    T s = T(0);
    for (i64 j = rr.lane; j < d; j += rr.width) s += xr[j];
    const T m = rc_group_sum(s, sh, warp) / T(d);
    T q = T(0);
    for (i64 j = rr.lane; j < d; j += rr.width) q += (xr[j] - m) * (xr[j] - m);
    const T is = T(1) / rc_sqrt(rc_group_sum(q, sh, warp) / T(d) + T(eps));
    T s1 = T(0), s2 = T(0);
    for (i64 j = rr.lane; j < d; j += rr.width) {
        const T gw = gr[j] * (has_w ? w[j] : T(1));
        s1 += gw;
        s2 += gw * (xr[j] - m) * is;
    }
    s1 = rc_group_sum(s1, sh, warp);
    s2 = rc_group_sum(s2, sh, warp);
    const T dn = T(d);
    for (i64 j = rr.lane; j < d; j += rr.width) {
        const T gw = gr[j] * (has_w ? w[j] : T(1));
        gx[rr.row * d + j] = is * (gw - s1 / dn - (xr[j] - m) * is * s2 / dn);
    }
    if (rr.lane == 0) {
        stats[2 * rr.row] = m;
        stats[2 * rr.row + 1] = is;
    }
}

// dW[j] = Σ_rows dy·x̂ and dB[j] = Σ_rows dy: a thread per column (coalesced across columns).
template <class T> __device__ void layer_norm_param_grad_impl(T* gw, T* gb, const T* g, const T* x, const T* stats, i64 rows, i64 d) {
    for (i64 j = rc_tid(); j < d; j += rc_nthreads()) {
        T sw = T(0), sb = T(0);
        for (i64 r = 0; r < rows; r++) {
            const T gv = g[r * d + j];
            sw += gv * (x[r * d + j] - stats[2 * r]) * stats[2 * r + 1];
            sb += gv;
        }
        gw[j] = sw;
        gb[j] = sb;
    }
}

extern "C" __global__ void batch_norm_stats_f32(float* mean, float* var, const float* x, long long n, long long c, long long hw) { batch_norm_stats_impl<float>(mean, var, x, n, c, hw); }
extern "C" __global__ void batch_norm_stats_f64(double* mean, double* var, const double* x, long long n, long long c, long long hw) { batch_norm_stats_impl<double>(mean, var, x, n, c, hw); }
extern "C" __global__ void batch_norm_fwd_f32(float* y, const float* x, const float* mean, const float* var, const float* w, const float* b, long long n, long long c, long long hw, double eps, int has_w, int has_b) { batch_norm_fwd_impl<float>(y, x, mean, var, w, b, n, c, hw, eps, has_w, has_b); }
extern "C" __global__ void batch_norm_fwd_f64(double* y, const double* x, const double* mean, const double* var, const double* w, const double* b, long long n, long long c, long long hw, double eps, int has_w, int has_b) { batch_norm_fwd_impl<double>(y, x, mean, var, w, b, n, c, hw, eps, has_w, has_b); }
extern "C" __global__ void batch_norm_running_f32(float* nm, float* nv, const float* rm, const float* rv, const float* mean, const float* var, long long c, long long count, double momentum) { batch_norm_running_impl<float>(nm, nv, rm, rv, mean, var, c, count, momentum); }
extern "C" __global__ void batch_norm_running_f64(double* nm, double* nv, const double* rm, const double* rv, const double* mean, const double* var, long long c, long long count, double momentum) { batch_norm_running_impl<double>(nm, nv, rm, rv, mean, var, c, count, momentum); }
extern "C" __global__ void batch_norm_bwd_reduce_f32(float* sum_g, float* sum_gx, const float* g, const float* x, const float* mean, const float* var, long long n, long long c, long long hw, double eps) { batch_norm_bwd_reduce_impl<float>(sum_g, sum_gx, g, x, mean, var, n, c, hw, eps); }
extern "C" __global__ void batch_norm_bwd_reduce_f64(double* sum_g, double* sum_gx, const double* g, const double* x, const double* mean, const double* var, long long n, long long c, long long hw, double eps) { batch_norm_bwd_reduce_impl<double>(sum_g, sum_gx, g, x, mean, var, n, c, hw, eps); }
extern "C" __global__ void batch_norm_bwd_f32(float* gx, const float* g, const float* x, const float* mean, const float* var, const float* w, const float* sum_g, const float* sum_gx, long long n, long long c, long long hw, double eps, int has_w, int batch_stats) { batch_norm_bwd_impl<float>(gx, g, x, mean, var, w, sum_g, sum_gx, n, c, hw, eps, has_w, batch_stats); }
extern "C" __global__ void batch_norm_bwd_f64(double* gx, const double* g, const double* x, const double* mean, const double* var, const double* w, const double* sum_g, const double* sum_gx, long long n, long long c, long long hw, double eps, int has_w, int batch_stats) { batch_norm_bwd_impl<double>(gx, g, x, mean, var, w, sum_g, sum_gx, n, c, hw, eps, has_w, batch_stats); }
extern "C" __global__ void layer_norm_fwd_f32(float* y, const float* x, const float* w, const float* b, long long rows, long long d, double eps, int has_w, int has_b, int warp) { layer_norm_fwd_impl<float>(y, x, w, b, rows, d, eps, has_w, has_b, warp); }
extern "C" __global__ void layer_norm_fwd_f64(double* y, const double* x, const double* w, const double* b, long long rows, long long d, double eps, int has_w, int has_b, int warp) { layer_norm_fwd_impl<double>(y, x, w, b, rows, d, eps, has_w, has_b, warp); }
extern "C" __global__ void layer_norm_bwd_f32(float* gx, float* stats, const float* g, const float* x, const float* w, long long rows, long long d, double eps, int has_w, int warp) { layer_norm_bwd_impl<float>(gx, stats, g, x, w, rows, d, eps, has_w, warp); }
extern "C" __global__ void layer_norm_bwd_f64(double* gx, double* stats, const double* g, const double* x, const double* w, long long rows, long long d, double eps, int has_w, int warp) { layer_norm_bwd_impl<double>(gx, stats, g, x, w, rows, d, eps, has_w, warp); }
extern "C" __global__ void layer_norm_param_grad_f32(float* gw, float* gb, const float* g, const float* x, const float* stats, long long rows, long long d) { layer_norm_param_grad_impl<float>(gw, gb, g, x, stats, rows, d); }
extern "C" __global__ void layer_norm_param_grad_f64(double* gw, double* gb, const double* g, const double* x, const double* stats, long long rows, long long d) { layer_norm_param_grad_impl<double>(gw, gb, g, x, stats, rows, d); }
