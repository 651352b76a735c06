// Inverted dropout (crates/core/src/ops/dropout.rs). The keep mask comes from the CPU's seeded
// generator (Rng::new(seed), one uniform per element, in order), built on the host and uploaded
// as a scale per element (0 or 1/(1 − p)), so that CUDA and CPU drop exactly the same elements
// for a seed. Forward and backward are the same masked scaling.

template <class T> __device__ void dropout_impl(T* out, const T* x, const T* scale, i64 n) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const T s = scale[i];
        out[i] = s != T(0) ? x[i] * s : T(0);
    }
}

extern "C" __global__ void dropout_f32(float* out, const float* x, const float* scale, long long n) { dropout_impl<float>(out, x, scale, n); }
extern "C" __global__ void dropout_f64(double* out, const double* x, const double* scale, long long n) { dropout_impl<double>(out, x, scale, n); }
