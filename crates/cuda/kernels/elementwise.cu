// Elementwise ops (crates/core/src/ops/elementwise.rs): broadcasting binary arithmetic,
// activations and their fused gradients. Op codes match BinaryKind / UnaryKind there.

template <class T> __device__ __forceinline__ T bin_apply(int op, T x, T y) {
    switch (op) {
        case 0: return x + y;
        case 1: return x - y;
        case 2: return x * y;
        default: return x / y;
    }
}

template <class T> __device__ void binary_impl(T* out, const T* a, const T* b, i64 n, int op) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) out[i] = bin_apply(op, a[i], b[i]);
}

// Up to 6 (coalesced) output dimensions; strides are 0 on broadcast dimensions.
template <class T>
__device__ void binary_bcast_impl(T* out, const T* a, const T* b, i64 n, int op, const i64* d, const i64* sa, const i64* sb) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        i64 rem = i, oa = 0, ob = 0;
#pragma unroll
        for (int k = 5; k >= 0; k--) {
            const i64 idx = rem % d[k];
            rem /= d[k];
            oa += idx * sa[k];
            ob += idx * sb[k];
        }
        out[i] = bin_apply(op, a[oa], b[ob]);
    }
}

// 0 neg, 1 exp, 2 log, 3 tanh, 4 sigmoid, 5 relu, 6 scale(c), 7 add(c), 8 square, 9 sqrt
template <class T> __device__ __forceinline__ T un_apply(int op, T x, T c) {
    switch (op) {
        case 0: return -x;
        case 1: return rc_exp(x);
        case 2: return rc_log(x);
        case 3: return rc_tanh(x);
        case 4: return rc_sigmoid(x);
        case 5: return x > T(0) ? x : T(0);
        case 6: return x * c;
        case 7: return x + c;
        case 8: return x * x;
        default: return rc_sqrt(x);
    }
}

template <class T> __device__ void unary_impl(T* out, const T* x, i64 n, int op, double c) {
    const T cc = (T)c;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) out[i] = un_apply(op, x[i], cc);
}

// Gradient from the activation's output y: 1 exp, 3 tanh, 4 sigmoid, 5 relu, 9 sqrt.
template <class T> __device__ void unary_grad_impl(T* out, const T* g, const T* y, i64 n, int op) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const T gv = g[i], yv = y[i];
        T r;
        switch (op) {
            case 1: r = gv * yv; break;
            case 3: r = gv * (T(1) - yv * yv); break;
            case 4: r = gv * yv * (T(1) - yv); break;
            case 5: r = yv > T(0) ? gv : T(0); break;
            default: r = gv / (T(2) * yv); break;
        }
        out[i] = r;
    }
}

extern "C" __global__ void binary_f32(float* out, const float* a, const float* b, long long n, int op) {
    binary_impl<float>(out, a, b, n, op);
}
extern "C" __global__ void binary_f64(double* out, const double* a, const double* b, long long n, int op) {
    binary_impl<double>(out, a, b, n, op);
}

#define BCAST_ARRAYS                                  \
    const i64 d[6] = {d0, d1, d2, d3, d4, d5};        \
    const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; \
    const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};

extern "C" __global__ void binary_bcast_f32(float* out, const float* a, const float* b, long long n, int op, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    BCAST_ARRAYS
    binary_bcast_impl<float>(out, a, b, n, op, d, sa, sb);
}
extern "C" __global__ void binary_bcast_f64(double* out, const double* a, const double* b, long long n, int op, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    BCAST_ARRAYS
    binary_bcast_impl<double>(out, a, b, n, op, d, sa, sb);
}

extern "C" __global__ void unary_f32(float* out, const float* x, long long n, int op, double c) {
    unary_impl<float>(out, x, n, op, c);
}
extern "C" __global__ void unary_f64(double* out, const double* x, long long n, int op, double c) {
    unary_impl<double>(out, x, n, op, c);
}

extern "C" __global__ void unary_grad_f32(float* out, const float* g, const float* y, long long n, int op) {
    unary_grad_impl<float>(out, g, y, n, op);
}
extern "C" __global__ void unary_grad_f64(double* out, const double* g, const double* y, long long n, int op) {
    unary_grad_impl<double>(out, g, y, n, op);
}
