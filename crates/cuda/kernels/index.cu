// Index ops along an axis (crates/core/src/ops/index.rs): max with its index, topk, gather (an
// index of x's rank) with its scatter-add, indexSelect with its index-add. The order rule is the
// CPU's `precedes`: larger first (smaller when !largest), NaN above every number, ties to the
// lower index, so that the device picks the same elements.

template <class T> __device__ __forceinline__ bool ix_isnan(T v) { return v != v; }

template <class T> __device__ __forceinline__ bool ix_precedes(T a, i64 ia, T b, i64 ib, int largest) {
    const bool an = ix_isnan(a), bn = ix_isnan(b);
    if (an != bn) return largest ? an : bn;
    if (!an && a != b) return largest ? a > b : a < b;
    return ia < ib;
}

// One thread per (outer, inner) output: a scan over the axis. Rows are as many as the batch
// (times beams) in decoding, so the scan's length (the vocabulary) is the work per thread.
template <class T> __device__ void max_axis_impl(T* vals, int* idx, const T* x, i64 outer, i64 n, i64 inner) {
    const i64 m = outer * inner;
    for (i64 r = rc_tid(); r < m; r += rc_nthreads()) {
        const i64 o = r / inner, j = r - o * inner;
        const T* row = x + o * n * inner + j;
        i64 best = 0;
        T bv = row[0];
        for (i64 e = 1; e < n; e++) {
            const T v = row[e * inner];
            if (ix_precedes(v, e, bv, best, 1)) {
                best = e;
                bv = v;
            }
        }
        vals[r] = bv;
        idx[r] = (int)best;
    }
}

// One thread per row: the k picks in order, each the best element that comes after the previous
// pick in the total order (no scratch memory; k·n reads). Unsorted output is then put in index
// order by an insertion sort of the k picks.
template <class T>
__device__ void topk_impl(T* vals, int* idx, const T* x, i64 outer, i64 n, i64 inner, i64 k, int largest, int sorted) {
    const i64 rows = outer * inner;
    for (i64 r = rc_tid(); r < rows; r += rc_nthreads()) {
        const i64 o = r / inner, j = r - o * inner;
        const T* row = x + o * n * inner + j;
        T* vr = vals + o * k * inner + j;
        int* ir = idx + o * k * inner + j;
        i64 prev = -1;
        T pv = T(0);
        for (i64 s = 0; s < k; s++) {
            i64 best = -1;
            T bv = T(0);
            for (i64 e = 0; e < n; e++) {
                const T v = row[e * inner];
                if (prev >= 0 && !ix_precedes(pv, prev, v, e, largest)) continue;
                if (best < 0 || ix_precedes(v, e, bv, best, largest)) {
                    best = e;
                    bv = v;
                }
            }
            vr[s * inner] = bv;
            ir[s * inner] = (int)best;
            prev = best;
            pv = bv;
        }
        if (!sorted) {
            for (i64 s = 1; s < k; s++) {
                const T v = vr[s * inner];
                const int ii = ir[s * inner];
                i64 t = s - 1;
                while (t >= 0 && ir[t * inner] > ii) {
                    vr[(t + 1) * inner] = vr[t * inner];
                    ir[(t + 1) * inner] = ir[t * inner];
                    t--;
                }
                vr[(t + 1) * inner] = v;
                ir[(t + 1) * inner] = ii;
            }
        }
    }
}

// The offset in x of index element i (row-major over the index's sizes d), with the axis
// coordinate replaced by the index value; -1 for an index outside [0, limit) (the index check
// reports it; the kernels skip it).
__device__ __forceinline__ i64 ix_gather_offset(i64 i, const int* index, i64 axis, i64 limit, const i64* d, const i64* s) {
    const int v = index[i];
    if (v < 0 || (i64)v >= limit) return -1;
    i64 off = 0, rem = i;
#pragma unroll
    for (int q = 5; q >= 0; q--) {
        const i64 c = rem % d[q];
        rem /= d[q];
        off += (q == axis ? (i64)v : c) * s[q];
    }
    return off;
}

template <class T>
__device__ void gather_axis_impl(T* out, const T* x, const int* index, i64 n, i64 axis, i64 limit, const i64* d, const i64* s) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 off = ix_gather_offset(i, index, axis, limit, d, s);
        out[i] = off >= 0 ? x[off] : T(0);
    }
}

// gx (zeroed by the host) += g at the gathered positions. Repeated positions meet in atomicAdd,
// so their order of summation (the last bits of f32 results) may vary between runs.
template <class T>
__device__ void gather_axis_bwd_impl(T* gx, const T* g, const int* index, i64 n, i64 axis, i64 limit, const i64* d, const i64* s) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 off = ix_gather_offset(i, index, axis, limit, d, s);
        if (off >= 0) atomicAdd(&gx[off], g[i]);
    }
}

// out [outer, m, inner] = x [outer, n, inner] at the m indices along the middle axis.
template <class T> __device__ void index_select_impl(T* out, const T* x, const int* index, i64 outer, i64 n, i64 inner, i64 m) {
    const i64 total = outer * m * inner;
    for (i64 i = rc_tid(); i < total; i += rc_nthreads()) {
        const i64 c = i % inner, rest = i / inner, j = rest % m, o = rest / m;
        const int v = index[j];
        out[i] = v >= 0 && (i64)v < n ? x[(o * n + v) * inner + c] : T(0);
    }
}

template <class T> __device__ void index_select_bwd_impl(T* gx, const T* g, const int* index, i64 outer, i64 n, i64 inner, i64 m) {
    const i64 total = outer * m * inner;
    for (i64 i = rc_tid(); i < total; i += rc_nthreads()) {
        const i64 c = i % inner, rest = i / inner, j = rest % m, o = rest / m;
        const int v = index[j];
        if (v >= 0 && (i64)v < n) atomicAdd(&gx[(o * n + v) * inner + c], g[i]);
    }
}

extern "C" __global__ void max_axis_f32(float* vals, int* idx, const float* x, long long outer, long long n, long long inner) { max_axis_impl<float>(vals, idx, x, outer, n, inner); }
extern "C" __global__ void max_axis_f64(double* vals, int* idx, const double* x, long long outer, long long n, long long inner) { max_axis_impl<double>(vals, idx, x, outer, n, inner); }
extern "C" __global__ void max_axis_i32(int* vals, int* idx, const int* x, long long outer, long long n, long long inner) { max_axis_impl<int>(vals, idx, x, outer, n, inner); }
extern "C" __global__ void topk_f32(float* vals, int* idx, const float* x, long long outer, long long n, long long inner, long long k, int largest, int sorted) { topk_impl<float>(vals, idx, x, outer, n, inner, k, largest, sorted); }
extern "C" __global__ void topk_f64(double* vals, int* idx, const double* x, long long outer, long long n, long long inner, long long k, int largest, int sorted) { topk_impl<double>(vals, idx, x, outer, n, inner, k, largest, sorted); }
extern "C" __global__ void topk_i32(int* vals, int* idx, const int* x, long long outer, long long n, long long inner, long long k, int largest, int sorted) { topk_impl<int>(vals, idx, x, outer, n, inner, k, largest, sorted); }
extern "C" __global__ void gather_axis_f32(float* out, const float* x, const int* index, long long n, long long axis, long long limit, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 s[6] = {s0, s1, s2, s3, s4, s5};
    gather_axis_impl<float>(out, x, index, n, axis, limit, d, s);
}
extern "C" __global__ void gather_axis_f64(double* out, const double* x, const int* index, long long n, long long axis, long long limit, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 s[6] = {s0, s1, s2, s3, s4, s5};
    gather_axis_impl<double>(out, x, index, n, axis, limit, d, s);
}
extern "C" __global__ void gather_axis_i32(int* out, const int* x, const int* index, long long n, long long axis, long long limit, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 s[6] = {s0, s1, s2, s3, s4, s5};
    gather_axis_impl<int>(out, x, index, n, axis, limit, d, s);
}
extern "C" __global__ void gather_axis_bwd_f32(float* gx, const float* g, const int* index, long long n, long long axis, long long limit, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 s[6] = {s0, s1, s2, s3, s4, s5};
    gather_axis_bwd_impl<float>(gx, g, index, n, axis, limit, d, s);
}
extern "C" __global__ void gather_axis_bwd_f64(double* gx, const double* g, const int* index, long long n, long long axis, long long limit, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 s[6] = {s0, s1, s2, s3, s4, s5};
    gather_axis_bwd_impl<double>(gx, g, index, n, axis, limit, d, s);
}
extern "C" __global__ void index_select_f32(float* out, const float* x, const int* index, long long outer, long long n, long long inner, long long m) { index_select_impl<float>(out, x, index, outer, n, inner, m); }
extern "C" __global__ void index_select_f64(double* out, const double* x, const int* index, long long outer, long long n, long long inner, long long m) { index_select_impl<double>(out, x, index, outer, n, inner, m); }
extern "C" __global__ void index_select_i32(int* out, const int* x, const int* index, long long outer, long long n, long long inner, long long m) { index_select_impl<int>(out, x, index, outer, n, inner, m); }
extern "C" __global__ void index_select_bwd_f32(float* gx, const float* g, const int* index, long long outer, long long n, long long inner, long long m) { index_select_bwd_impl<float>(gx, g, index, outer, n, inner, m); }
extern "C" __global__ void index_select_bwd_f64(double* gx, const double* g, const int* index, long long outer, long long n, long long inner, long long m) { index_select_bwd_impl<double>(gx, g, index, outer, n, inner, m); }
