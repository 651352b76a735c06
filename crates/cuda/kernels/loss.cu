// Losses (crates/core/src/ops/loss.rs). The host sums the per-element or per-row terms with
// the reduce.cu kernels, so these are the fused elementwise / per-row parts.

// (p − t)² per element; the host sums and divides by n.
template <class T> __device__ void sq_diff_impl(T* out, const T* p, const T* t, i64 n) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const T d = p[i] - t[i];
        out[i] = d * d;
    }
}

// d/dp = c (p − t) with c = g · 2/n, and d/dt = −d/dp.
template <class T> __device__ void mse_grad_impl(T* gp, T* gt, const T* g, const T* p, const T* t, i64 n, double two_over_n) {
    const T c = g[0] * (T)two_over_n;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const T v = c * (p[i] - t[i]);
        gp[i] = v;
        gt[i] = -v;
    }
}

// One block or one warp per row (rc_row): acc[2r] = −log softmax(row)[t] (0 for an ignored
// row), acc[2r+1] = 1 if the row counts. Targets are checked by index_check, launched before
// and read later: an invalid one is skipped here, not read through.
template <class T>
__device__ void ce_rows_impl(T* acc, const T* logits, const int* targets, i64 rows, i64 c, int ignore, int has_ignore, int warp) {
    __shared__ T sh[RC_BLOCK];
    const RcRow rr = rc_row(warp);
    const i64 row = rr.row;
    if (row >= rows) return;
    const int t = targets[row];
    const bool skip = has_ignore && t == ignore;
    const T* xr = logits + row * c;
    T m = xr[0];
    for (i64 j = rr.lane; j < c; j += rr.width) m = rc_max(m, xr[j]);
    m = rc_group_max(m, sh, warp);
    T s = T(0);
    for (i64 j = rr.lane; j < c; j += rr.width) s += rc_exp(xr[j] - m);
    s = rc_group_sum(s, sh, warp);
    if (rr.lane == 0) {
        // An invalid target (reported later by the deferred index check) reads nothing.
        const bool valid = t >= 0 && (i64)t < c;
        acc[2 * row] = skip || !valid ? T(0) : m + rc_log(s) - xr[t];
        acc[2 * row + 1] = skip ? T(0) : T(1);
    }
}

// out = Σ loss / count (NaN when every row is ignored, as on the CPU and in PyTorch).
template <class T> __device__ void ce_finish_impl(T* out, const T* sums) {
    if (rc_tid() == 0) out[0] = sums[0] / sums[1];
}

// One block or one warp per row: gx = g / count · (softmax(row) − onehot(t)); 0 for ignored rows, and
// everywhere when no row counts.
template <class T>
__device__ void ce_grad_impl(T* gx, const T* g, const T* sums, const T* logits, const int* targets, i64 rows, i64 c, int ignore, int has_ignore, int warp) {
    __shared__ T sh[RC_BLOCK];
    const RcRow rr = rc_row(warp);
    const i64 row = rr.row;
    if (row >= rows) return;
    const int t = targets[row];
    const T count = sums[1];
    const T* xr = logits + row * c;
    T* outr = gx + row * c;
    if ((has_ignore && t == ignore) || count == T(0)) {
        for (i64 j = rr.lane; j < c; j += rr.width) outr[j] = T(0);
        return;  // uniform across the block: no barrier is skipped by part of it
    }
    const T k = g[0] / count;
    T m = xr[0];
    for (i64 j = rr.lane; j < c; j += rr.width) m = rc_max(m, xr[j]);
    m = rc_group_max(m, sh, warp);
    T s = T(0);
    for (i64 j = rr.lane; j < c; j += rr.width) s += rc_exp(xr[j] - m);
    s = rc_group_sum(s, sh, warp);
    const T r = k / s;
    for (i64 j = rr.lane; j < c; j += rr.width) {
        T v = rc_exp(xr[j] - m) * r;
        if (j == t) v -= k;
        outr[j] = v;
    }
}

extern "C" __global__ void sq_diff_f32(float* out, const float* p, const float* t, long long n) { sq_diff_impl<float>(out, p, t, n); }
extern "C" __global__ void sq_diff_f64(double* out, const double* p, const double* t, long long n) { sq_diff_impl<double>(out, p, t, n); }
extern "C" __global__ void mse_grad_f32(float* gp, float* gt, const float* g, const float* p, const float* t, long long n, double two_over_n) { mse_grad_impl<float>(gp, gt, g, p, t, n, two_over_n); }
extern "C" __global__ void mse_grad_f64(double* gp, double* gt, const double* g, const double* p, const double* t, long long n, double two_over_n) { mse_grad_impl<double>(gp, gt, g, p, t, n, two_over_n); }
extern "C" __global__ void ce_rows_f32(float* acc, const float* logits, const int* targets, long long rows, long long c, int ignore, int has_ignore, int warp) { ce_rows_impl<float>(acc, logits, targets, rows, c, ignore, has_ignore, warp); }
extern "C" __global__ void ce_rows_f64(double* acc, const double* logits, const int* targets, long long rows, long long c, int ignore, int has_ignore, int warp) { ce_rows_impl<double>(acc, logits, targets, rows, c, ignore, has_ignore, warp); }
extern "C" __global__ void ce_finish_f32(float* out, const float* sums) { ce_finish_impl<float>(out, sums); }
extern "C" __global__ void ce_finish_f64(double* out, const double* sums) { ce_finish_impl<double>(out, sums); }
extern "C" __global__ void ce_grad_f32(float* gx, const float* g, const float* sums, const float* logits, const int* targets, long long rows, long long c, int ignore, int has_ignore, int warp) { ce_grad_impl<float>(gx, g, sums, logits, targets, rows, c, ignore, has_ignore, warp); }
extern "C" __global__ void ce_grad_f64(double* gx, const double* g, const double* sums, const double* logits, const int* targets, long long rows, long long c, int ignore, int has_ignore, int warp) { ce_grad_impl<double>(gx, g, sums, logits, targets, rows, c, ignore, has_ignore, warp); }
