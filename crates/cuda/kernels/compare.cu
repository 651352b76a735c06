// Comparisons and masks (crates/core/src/ops/compare.rs): eq/lt/gt to int32 0/1, where,
// maskedFill and sequenceMask. The broadcasting kernels take up to 6 (merged) output dimensions
// `d` and one stride list per operand, 0 on broadcast dimensions (launch::strided_args).

// The offset in an operand with strides s of output element i (row-major over d).
__device__ __forceinline__ i64 cmp_offset(i64 i, const i64* d, const i64* s) {
    i64 off = 0;
#pragma unroll
    for (int k = 5; k >= 0; k--) {
        off += (i % d[k]) * s[k];
        i /= d[k];
    }
    return off;
}

// op: 0 eq, 1 lt, 2 gt (CompareKind). NaN compares false, as on the CPU.
template <class T>
__device__ void compare_impl(int* out, const T* a, const T* b, i64 n, int op, const i64* d, const i64* sa, const i64* sb) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const T x = a[cmp_offset(i, d, sa)], y = b[cmp_offset(i, d, sb)];
        out[i] = op == 0 ? x == y : op == 1 ? x < y : x > y;
    }
}

template <class T>
__device__ void where_impl(T* out, const int* c, const T* a, const T* b, i64 n, const i64* d, const i64* sc, const i64* sa, const i64* sb) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        out[i] = c[cmp_offset(i, d, sc)] != 0 ? a[cmp_offset(i, d, sa)] : b[cmp_offset(i, d, sb)];
    }
}

// out = value where (mask != 0) != invert, else x; x has the output's shape.
template <class T>
__device__ void masked_fill_impl(T* out, const T* x, const int* m, i64 n, double value, int invert, const i64* d, const i64* sx, const i64* sm) {
    const T v = (T)value;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const bool hit = (m[cmp_offset(i, d, sm)] != 0) != (invert != 0);
        out[i] = hit ? v : x[cmp_offset(i, d, sx)];
    }
}

// out [B, T] = t < lengths[b]; a length outside [1, T] sets bad[0] (reported by the host with
// the CPU's message at the next read, as the index checks).
extern "C" __global__ void sequence_mask_i32(int* out, int* bad, const int* lengths, long long b, long long t) {
    const i64 n = b * t;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 r = i / t, s = i - r * t;
        const int len = lengths[r];
        if (s == 0 && (len < 1 || (i64)len > t)) atomicMax(bad, 1);
        out[i] = s < (i64)len;
    }
}

extern "C" __global__ void compare_f32(int* out, const float* a, const float* b, long long n, int op, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};
    compare_impl<float>(out, a, b, n, op, d, sa, sb);
}
extern "C" __global__ void compare_f64(int* out, const double* a, const double* b, long long n, int op, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};
    compare_impl<double>(out, a, b, n, op, d, sa, sb);
}
extern "C" __global__ void compare_i32(int* out, const int* a, const int* b, long long n, int op, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};
    compare_impl<int>(out, a, b, n, op, d, sa, sb);
}
extern "C" __global__ void where_f32(float* out, const int* c, const float* a, const float* b, long long n, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sc0, long long sc1, long long sc2, long long sc3, long long sc4, long long sc5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sc[6] = {sc0, sc1, sc2, sc3, sc4, sc5}; const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};
    where_impl<float>(out, c, a, b, n, d, sc, sa, sb);
}
extern "C" __global__ void where_f64(double* out, const int* c, const double* a, const double* b, long long n, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sc0, long long sc1, long long sc2, long long sc3, long long sc4, long long sc5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sc[6] = {sc0, sc1, sc2, sc3, sc4, sc5}; const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};
    where_impl<double>(out, c, a, b, n, d, sc, sa, sb);
}
extern "C" __global__ void where_i32(int* out, const int* c, const int* a, const int* b, long long n, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sc0, long long sc1, long long sc2, long long sc3, long long sc4, long long sc5, long long sa0, long long sa1, long long sa2, long long sa3, long long sa4, long long sa5, long long sb0, long long sb1, long long sb2, long long sb3, long long sb4, long long sb5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sc[6] = {sc0, sc1, sc2, sc3, sc4, sc5}; const i64 sa[6] = {sa0, sa1, sa2, sa3, sa4, sa5}; const i64 sb[6] = {sb0, sb1, sb2, sb3, sb4, sb5};
    where_impl<int>(out, c, a, b, n, d, sc, sa, sb);
}
extern "C" __global__ void masked_fill_f32(float* out, const float* x, const int* m, long long n, double value, int invert, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sx0, long long sx1, long long sx2, long long sx3, long long sx4, long long sx5, long long sm0, long long sm1, long long sm2, long long sm3, long long sm4, long long sm5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sx[6] = {sx0, sx1, sx2, sx3, sx4, sx5}; const i64 sm[6] = {sm0, sm1, sm2, sm3, sm4, sm5};
    masked_fill_impl<float>(out, x, m, n, value, invert, d, sx, sm);
}
extern "C" __global__ void masked_fill_f64(double* out, const double* x, const int* m, long long n, double value, int invert, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sx0, long long sx1, long long sx2, long long sx3, long long sx4, long long sx5, long long sm0, long long sm1, long long sm2, long long sm3, long long sm4, long long sm5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sx[6] = {sx0, sx1, sx2, sx3, sx4, sx5}; const i64 sm[6] = {sm0, sm1, sm2, sm3, sm4, sm5};
    masked_fill_impl<double>(out, x, m, n, value, invert, d, sx, sm);
}
extern "C" __global__ void masked_fill_i32(int* out, const int* x, const int* m, long long n, double value, int invert, long long d0, long long d1, long long d2, long long d3, long long d4, long long d5, long long sx0, long long sx1, long long sx2, long long sx3, long long sx4, long long sx5, long long sm0, long long sm1, long long sm2, long long sm3, long long sm4, long long sm5) {
    const i64 d[6] = {d0, d1, d2, d3, d4, d5}; const i64 sx[6] = {sx0, sx1, sx2, sx3, sx4, sx5}; const i64 sm[6] = {sm0, sm1, sm2, sm3, sm4, sm5};
    masked_fill_impl<int>(out, x, m, n, value, invert, d, sx, sm);
}
