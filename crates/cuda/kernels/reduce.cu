// Sums over any set of axes (crates/core/src/ops/reduce.rs, and every backward that sums a
// broadcast away). The host coalesces the input into at most 4 kept and 4 reduced dimensions,
// each a (size, stride) pair; output element o decodes over the kept sizes (row-major).
//
// sum_threads: one thread per output (many outputs, or short reductions; adjacent threads read
//              adjacent columns when the kept dimension is innermost).
// sum_blocks:  one block per (output, part) with a tree reduction; `parts` > 1 splits a long
//              reduction over several blocks, and the host sums the partials in a second pass.

__device__ __forceinline__ i64 red_offset(i64 r, const i64* d, const i64* s) {
    i64 off = 0;
#pragma unroll
    for (int k = 3; k >= 0; k--) {
        const i64 idx = r % d[k];
        r /= d[k];
        off += idx * s[k];
    }
    return off;
}

template <class T>
__device__ void sum_threads_impl(T* out, const T* x, i64 n_out, i64 n_red, double factor, const i64* kd, const i64* ks, const i64* rd, const i64* rs) {
    for (i64 o = rc_tid(); o < n_out; o += rc_nthreads()) {
        const i64 base = red_offset(o, kd, ks);
        T acc = T(0);
        for (i64 r = 0; r < n_red; r++) acc += x[base + red_offset(r, rd, rs)];
        if (factor != 1.0) acc *= (T)factor;
        out[o] = acc;
    }
}

template <class T>
__device__ void sum_blocks_impl(T* out, const T* x, i64 n_out, i64 n_red, i64 parts, double factor, const i64* kd, const i64* ks, const i64* rd, const i64* rs) {
    __shared__ T sh[RC_BLOCK];
    const i64 blk = blockIdx.x;
    const i64 o = blk / parts, p = blk - o * parts;
    if (o >= n_out) return;  // whole block: no thread of it reaches a barrier
    const i64 chunk = (n_red + parts - 1) / parts;
    const i64 lo = p * chunk;
    const i64 hi = lo + chunk < n_red ? lo + chunk : n_red;
    const i64 base = red_offset(o, kd, ks);
    T acc = T(0);
    for (i64 r = lo + threadIdx.x; r < hi; r += blockDim.x) acc += x[base + red_offset(r, rd, rs)];
    acc = rc_block_sum(acc, sh);
    if (threadIdx.x == 0) {
        if (factor != 1.0) acc *= (T)factor;
        out[blk] = acc;
    }
}

#define RED_ARRAYS                                \
    const i64 kd[4] = {k0, k1, k2, k3};           \
    const i64 ks[4] = {ks0, ks1, ks2, ks3};       \
    const i64 rd[4] = {r0, r1, r2, r3};           \
    const i64 rs[4] = {rs0, rs1, rs2, rs3};

extern "C" __global__ void sum_threads_f32(float* out, const float* x, long long n_out, long long n_red, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    sum_threads_impl<float>(out, x, n_out, n_red, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_threads_f64(double* out, const double* x, long long n_out, long long n_red, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    sum_threads_impl<double>(out, x, n_out, n_red, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_blocks_f32(float* out, const float* x, long long n_out, long long n_red, long long parts, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    sum_blocks_impl<float>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_blocks_f64(double* out, const double* x, long long n_out, long long n_red, long long parts, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    sum_blocks_impl<double>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
}
