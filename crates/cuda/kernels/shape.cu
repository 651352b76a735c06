// Data movement for the shape ops (crates/core/src/ops/shape.rs) and for helpers shared by
// every op family: plain and 2-D strided copies, strided gathers (transpose, broadcast), fills.
// float32, float64 and int32 variants: shape ops also move index tensors.

template <class T> __device__ void copy_impl(T* dst, const T* src, i64 n) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) dst[i] = src[i];
}

// dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols.
template <class T> __device__ void copy2d_impl(T* dst, i64 dst_ld, const T* src, i64 src_ld, i64 rows, i64 cols) {
    const i64 n = rows * cols;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 r = i / cols, c = i - r * cols;
        dst[r * dst_ld + c] = src[r * src_ld + c];
    }
}

// out[i] = x[Σ idx_k · s_k] where idx is i decoded over the (row-major) sizes d.
template <class T> __device__ void gather_impl(T* out, const T* x, i64 n, const i64* d, const i64* s) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        i64 rem = i, off = 0;
#pragma unroll
        for (int k = 5; k >= 0; k--) {
            const i64 idx = rem % d[k];
            rem /= d[k];
            off += idx * s[k];
        }
        out[i] = x[off];
    }
}

template <class T> __device__ void fill_impl(T* out, i64 n, double v) {
    const T tv = (T)v;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) out[i] = tv;
}

#define GATHER_ARRAYS                           \
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; \
    const i64 s[6] = {s0, s1, s2, s3, s4, s5};

extern "C" __global__ void copy_f32(float* dst, const float* src, long long n) { copy_impl<float>(dst, src, n); }
extern "C" __global__ void copy_f64(double* dst, const double* src, long long n) { copy_impl<double>(dst, src, n); }
extern "C" __global__ void copy_i32(int* dst, const int* src, long long n) { copy_impl<int>(dst, src, n); }

extern "C" __global__ void copy2d_f32(float* dst, long long dst_ld, const float* src, long long src_ld, long long rows, long long cols) {
    copy2d_impl<float>(dst, dst_ld, src, src_ld, rows, cols);
}
extern "C" __global__ void copy2d_f64(double* dst, long long dst_ld, const double* src, long long src_ld, long long rows, long long cols) {
    copy2d_impl<double>(dst, dst_ld, src, src_ld, rows, cols);
}
extern "C" __global__ void copy2d_i32(int* dst, long long dst_ld, const int* src, long long src_ld, long long rows, long long cols) {
    copy2d_impl<int>(dst, dst_ld, src, src_ld, rows, cols);
}

extern "C" __global__ void gather_f32(float* out, const float* x, long long n, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    GATHER_ARRAYS
    gather_impl<float>(out, x, n, d, s);
}
extern "C" __global__ void gather_f64(double* out, const double* x, long long n, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    GATHER_ARRAYS
    gather_impl<double>(out, x, n, d, s);
}
extern "C" __global__ void gather_i32(int* out, const int* x, long long n, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long s0, long long s1, long long s2, long long s3, long long s4, long long s5) {
    GATHER_ARRAYS
    gather_impl<int>(out, x, n, d, s);
}

extern "C" __global__ void fill_f32(float* out, long long n, double v) { fill_impl<float>(out, n, v); }
extern "C" __global__ void fill_f64(double* out, long long n, double v) { fill_impl<double>(out, n, v); }
extern "C" __global__ void fill_i32(int* out, long long n, double v) { fill_impl<int>(out, n, v); }
