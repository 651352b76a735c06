// embedding (crates/core/src/ops/embedding.rs): row gather and scatter-add, plus the device-side
// index check that embedding and crossEntropy run before touching memory through indices.

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

template <class T> __device__ void embedding_fwd_impl(T* out, const T* w, const int* idx, i64 n_idx, i64 e) {
    const i64 n = n_idx * e;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 k = i / e, j = i - k * e;
        out[i] = w[(i64)idx[k] * e + j];
    }
}

// gw (zeroed by the host) += g rows at their indices. Repeated indices meet in atomicAdd, so
// their order of summation (and the last bits of f32 results) may vary between runs.
template <class T> __device__ void embedding_bwd_impl(T* gw, const T* g, const int* idx, i64 n_idx, i64 e) {
    const i64 n = n_idx * e;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 k = i / e, j = i - k * e;
        atomicAdd(&gw[(i64)idx[k] * e + j], g[i]);
    }
}

extern "C" __global__ void embedding_fwd_f32(float* out, const float* w, const int* idx, long long n_idx, long long e) { embedding_fwd_impl<float>(out, w, idx, n_idx, e); }
extern "C" __global__ void embedding_fwd_f64(double* out, const double* w, const int* idx, long long n_idx, long long e) { embedding_fwd_impl<double>(out, w, idx, n_idx, e); }
extern "C" __global__ void embedding_bwd_f32(float* gw, const float* g, const int* idx, long long n_idx, long long e) { embedding_bwd_impl<float>(gw, g, idx, n_idx, e); }
extern "C" __global__ void embedding_bwd_f64(double* gw, const double* g, const int* idx, long long n_idx, long long e) { embedding_bwd_impl<double>(gw, g, idx, n_idx, e); }
