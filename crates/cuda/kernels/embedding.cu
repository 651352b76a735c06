// embedding (crates/core/src/ops/embedding.rs): row gather and scatter-add, plus the device-side
// index check that embedding and crossEntropy launch alongside (its flag is read at the next
// read back to the host, crates/core/src/launch/mod.rs), so the kernels that follow it skip an
// invalid index (the gather writes 0) instead of touching memory through it.

// bad[0] = max over invalid positions i of (n − i), so 0 means every index is valid and
// otherwise the first invalid position is n − bad[0]. An index is valid in [0, limit), or
// equal to `ignore` when has_ignore.
extern "C" __global__ void index_check(int* bad, const int* idx, long long n, long long limit, int ignore, int has_ignore) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const int v = idx[i];
        const bool ok = (has_ignore && v == ignore) || (v >= 0 && (i64)v < limit);
        if (!ok) atomicMax(bad, (int)(n - i));
    }
}

template <class T> __device__ void embedding_fwd_impl(T* out, const T* w, const int* idx, i64 n_idx, i64 e, i64 v) {
    const i64 n = n_idx * e;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 k = i / e, j = i - k * e;
        const int r = idx[k];
        out[i] = r >= 0 && r < v ? w[(i64)r * e + j] : T(0);
    }
}

// gw (zeroed by the host) += g rows at their indices. Repeated indices meet in atomicAdd, so
// their order of summation (and the last bits of f32 results) may vary between runs.
template <class T> __device__ void embedding_bwd_impl(T* gw, const T* g, const int* idx, i64 n_idx, i64 e, i64 v) {
    const i64 n = n_idx * e;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 k = i / e, j = i - k * e;
        const int r = idx[k];
        if (r >= 0 && r < v) atomicAdd(&gw[(i64)r * e + j], g[i]);
    }
}

extern "C" __global__ void embedding_fwd_f32(float* out, const float* w, const int* idx, long long n_idx, long long e, long long v) { embedding_fwd_impl<float>(out, w, idx, n_idx, e, v); }
extern "C" __global__ void embedding_fwd_f64(double* out, const double* w, const int* idx, long long n_idx, long long e, long long v) { embedding_fwd_impl<double>(out, w, idx, n_idx, e, v); }
extern "C" __global__ void embedding_bwd_f32(float* gw, const float* g, const int* idx, long long n_idx, long long e, long long v) { embedding_bwd_impl<float>(gw, g, idx, n_idx, e, v); }
extern "C" __global__ void embedding_bwd_f64(double* gw, const double* g, const int* idx, long long n_idx, long long e, long long v) { embedding_bwd_impl<double>(gw, g, idx, n_idx, e, v); }
