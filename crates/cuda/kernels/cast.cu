// cast (crates/core/src/ops/cast.rs): float32 ↔ float64 ↔ int32. Float to int32 truncates toward
// zero; a value with no int32 truncation (NaN, ±∞, out of range) becomes 0 and sets bad[0],
// which the host reports with the CPU's message at the next read (as the index checks).

template <class T> __device__ void cast_to_i32_impl(int* out, int* bad, const T* x, i64 n) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const double v = (double)x[i];
        // The comparisons are false for NaN, so NaN lands in the refused branch.
        if (v > -2147483649.0 && v < 2147483648.0) {
            out[i] = (int)v;
        } else {
            out[i] = 0;
            atomicMax(bad, 1);
        }
    }
}

template <class T, class S> __device__ void cast_impl(T* out, const S* x, i64 n) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) out[i] = (T)x[i];
}

extern "C" __global__ void cast_to_i32_f32(int* out, int* bad, const float* x, long long n) { cast_to_i32_impl<float>(out, bad, x, n); }
extern "C" __global__ void cast_to_i32_f64(int* out, int* bad, const double* x, long long n) { cast_to_i32_impl<double>(out, bad, x, n); }
// float32 → float64 is cast_to_f64_f32 (T the source), float64 → float32 is cast_from_f64_f32 (T
// the result). Every float kernel comes in both variants (the ABI rule of common.cuh), so each
// also has an _f64 identity, which the host never launches (a cast to the same dtype is the
// tensor itself).
extern "C" __global__ void cast_to_f64_f32(double* out, const float* x, long long n) { cast_impl<double, float>(out, x, n); }
extern "C" __global__ void cast_to_f64_f64(double* out, const double* x, long long n) { cast_impl<double, double>(out, x, n); }
extern "C" __global__ void cast_from_f64_f32(float* out, const double* x, long long n) { cast_impl<float, double>(out, x, n); }
extern "C" __global__ void cast_from_f64_f64(double* out, const double* x, long long n) { cast_impl<double, double>(out, x, n); }
extern "C" __global__ void cast_from_i32_f32(float* out, const int* x, long long n) { cast_impl<float, int>(out, x, n); }
extern "C" __global__ void cast_from_i32_f64(double* out, const int* x, long long n) { cast_impl<double, int>(out, x, n); }
