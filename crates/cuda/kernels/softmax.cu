// softmax / log-softmax along one axis (crates/core/src/ops/softmax.rs), max subtracted first,
// and their fused gradients from the saved output. The tensor is [outer, n, inner].
// *_rows: inner == 1, one block per row (long rows such as vocabularies) or one warp per row
//         (narrow rows), as the host's `warp` flag says (common.cuh, rc_row).
// *_cols: inner > 1, one thread per (outer, inner) column walking the n axis.

template <class T> __device__ void softmax_rows_impl(T* y, const T* x, i64 rows, i64 n, int log_, int warp) {
    __shared__ T sh[RC_BLOCK];
    const RcRow rr = rc_row(warp);
    const i64 row = rr.row;
    if (row >= rows) return;
    const T* xr = x + row * n;
    T* yr = y + row * n;
    T m = xr[0];
    for (i64 j = rr.lane; j < n; j += rr.width) m = rc_max(m, xr[j]);
    m = rc_group_max(m, sh, warp);
    T s = T(0);
    for (i64 j = rr.lane; j < n; j += rr.width) s += rc_exp(xr[j] - m);
    s = rc_group_sum(s, sh, warp);
    if (log_) {
        const T ls = rc_log(s);
        for (i64 j = rr.lane; j < n; j += rr.width) yr[j] = (xr[j] - m) - ls;
    } else {
        const T r = T(1) / s;
        for (i64 j = rr.lane; j < n; j += rr.width) yr[j] = rc_exp(xr[j] - m) * r;
    }
}

template <class T> __device__ void softmax_cols_impl(T* y, const T* x, i64 outer, i64 n, i64 inner, int log_) {
    const i64 cols = outer * inner;
    for (i64 c = rc_tid(); c < cols; c += rc_nthreads()) {
        const i64 o = c / inner, k = c - o * inner;
        const T* xc = x + o * n * inner + k;
        T* yc = y + o * n * inner + k;
        T m = xc[0];
        for (i64 j = 1; j < n; j++) m = rc_max(m, xc[j * inner]);
        T s = T(0);
        for (i64 j = 0; j < n; j++) s += rc_exp(xc[j * inner] - m);
        if (log_) {
            const T ls = rc_log(s);
            for (i64 j = 0; j < n; j++) yc[j * inner] = (xc[j * inner] - m) - ls;
        } else {
            const T r = T(1) / s;
            for (i64 j = 0; j < n; j++) yc[j * inner] = rc_exp(xc[j * inner] - m) * r;
        }
    }
}

// softmax: gx = y ⊙ (g − Σ g⊙y); log-softmax: gx = g − exp(y) ⊙ Σ g.
template <class T> __device__ void softmax_grad_rows_impl(T* gx, const T* g, const T* y, i64 rows, i64 n, int log_, int warp) {
    __shared__ T sh[RC_BLOCK];
    const RcRow rr = rc_row(warp);
    const i64 row = rr.row;
    if (row >= rows) return;
    const T* gr = g + row * n;
    const T* yr = y + row * n;
    T* outr = gx + row * n;
    T acc = T(0);
    for (i64 j = rr.lane; j < n; j += rr.width) acc += log_ ? gr[j] : gr[j] * yr[j];
    acc = rc_group_sum(acc, sh, warp);
    for (i64 j = rr.lane; j < n; j += rr.width) outr[j] = log_ ? gr[j] - rc_exp(yr[j]) * acc : yr[j] * (gr[j] - acc);
}

template <class T> __device__ void softmax_grad_cols_impl(T* gx, const T* g, const T* y, i64 outer, i64 n, i64 inner, int log_) {
    const i64 cols = outer * inner;
    for (i64 c = rc_tid(); c < cols; c += rc_nthreads()) {
        const i64 o = c / inner, k = c - o * inner;
        const i64 base = o * n * inner + k;
        T acc = T(0);
        for (i64 j = 0; j < n; j++) acc += log_ ? g[base + j * inner] : g[base + j * inner] * y[base + j * inner];
        for (i64 j = 0; j < n; j++) {
            const i64 at = base + j * inner;
            gx[at] = log_ ? g[at] - rc_exp(y[at]) * acc : y[at] * (g[at] - acc);
        }
    }
}

extern "C" __global__ void softmax_rows_f32(float* y, const float* x, long long rows, long long n, int log_, int warp) { softmax_rows_impl<float>(y, x, rows, n, log_, warp); }
extern "C" __global__ void softmax_rows_f64(double* y, const double* x, long long rows, long long n, int log_, int warp) { softmax_rows_impl<double>(y, x, rows, n, log_, warp); }
extern "C" __global__ void softmax_cols_f32(float* y, const float* x, long long outer, long long n, long long inner, int log_) { softmax_cols_impl<float>(y, x, outer, n, inner, log_); }
extern "C" __global__ void softmax_cols_f64(double* y, const double* x, long long outer, long long n, long long inner, int log_) { softmax_cols_impl<double>(y, x, outer, n, inner, log_); }
extern "C" __global__ void softmax_grad_rows_f32(float* gx, const float* g, const float* y, long long rows, long long n, int log_, int warp) { softmax_grad_rows_impl<float>(gx, g, y, rows, n, log_, warp); }
extern "C" __global__ void softmax_grad_rows_f64(double* gx, const double* g, const double* y, long long rows, long long n, int log_, int warp) { softmax_grad_rows_impl<double>(gx, g, y, rows, n, log_, warp); }
extern "C" __global__ void softmax_grad_cols_f32(float* gx, const float* g, const float* y, long long outer, long long n, long long inner, int log_) { softmax_grad_cols_impl<float>(gx, g, y, outer, n, inner, log_); }
extern "C" __global__ void softmax_grad_cols_f64(double* gx, const double* g, const double* y, long long outer, long long n, long long inner, int log_) { softmax_grad_cols_impl<double>(gx, g, y, outer, n, inner, log_); }
