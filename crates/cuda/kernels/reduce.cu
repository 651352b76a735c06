// Sums over any set of axes (crates/core/src/ops/reduce.rs, and every backward that sums a
// broadcast away). The host coalesces the input into at most 4 kept and 4 reduced dimensions,
// each a (size, stride) pair; output element o decodes over the kept sizes (row-major).
//
// sum_threads: one thread per output (many outputs, or short reductions; adjacent threads read
//              adjacent columns when the kept dimension is innermost). The reduced box is
//              walked as nested loops: no division per element.
// sum_blocks:  one block per (output, part) with a tree reduction (the reduced dimension is
//              innermost, so a block reads contiguous memory); `parts` > 1 splits a long
//              reduction over several blocks, and the host sums the partials in a second pass.
// sum_tiles:   the kept dimension is innermost (column sums, e.g. a bias gradient over
//              [rows, n]): a block is a tile of 32 adjacent outputs × 8 lanes along the
//              reduction, so each warp reads 32 adjacent elements; `parts` as in sum_blocks.
// Index arithmetic is 32-bit when the whole input has fewer than 2^31 elements (the common
// case: 64-bit division is many times slower on a GPU), 64-bit otherwise.

#define RC_TILE_W 32
#define RC_TILE_H (RC_BLOCK / RC_TILE_W)

template <class I> __device__ __forceinline__ I red_offset(I r, const i64* d, const i64* s) {
    I off = 0;
#pragma unroll
    for (int k = 3; k >= 0; k--) {
        if (d[k] == 1) continue;  // padding and size-1 runs: nothing to decode
        const I dk = (I)d[k];
        const I q = r / dk;
        off += (r - q * dk) * (I)s[k];
        r = q;
    }
    return off;
}

// Σ x[base + offset(r)] over the whole reduced box, in the order of r, without decoding r.
template <class T> __device__ T red_box_sum(const T* x, i64 base, const i64* rd, const i64* rs) {
    T acc = T(0);
    for (i64 a = 0; a < rd[0]; a++)
        for (i64 b = 0; b < rd[1]; b++)
            for (i64 c = 0; c < rd[2]; c++) {
                const T* p = x + base + a * rs[0] + b * rs[1] + c * rs[2];
                for (i64 d = 0; d < rd[3]; d++) acc += p[d * rs[3]];
            }
    return acc;
}

template <class T, class I>
__device__ void sum_threads_impl(T* out, const T* x, i64 n_out, double factor, const i64* kd, const i64* ks, const i64* rd, const i64* rs) {
    for (i64 o = rc_tid(); o < n_out; o += rc_nthreads()) {
        T acc = red_box_sum(x, (i64)red_offset<I>((I)o, kd, ks), rd, rs);
        if (factor != 1.0) acc *= (T)factor;
        out[o] = acc;
    }
}

template <class T, class I>
__device__ void sum_blocks_impl(T* out, const T* x, i64 n_out, i64 n_red, i64 parts, double factor, const i64* kd, const i64* ks, const i64* rd, const i64* rs) {
    __shared__ T sh[RC_BLOCK];
    const i64 blk = blockIdx.x;
    const i64 o = blk / parts, p = blk - o * parts;
    if (o >= n_out) return;  // whole block: no thread of it reaches a barrier
    const i64 chunk = (n_red + parts - 1) / parts;
    const I lo = (I)(p * chunk);
    const I hi = (I)(p * chunk + chunk < n_red ? p * chunk + chunk : n_red);
    const T* xb = x + (i64)red_offset<I>((I)o, kd, ks);
    T acc = T(0);
    for (I r = lo + (I)threadIdx.x; r < hi; r += (I)blockDim.x) acc += xb[red_offset<I>(r, rd, rs)];
    acc = rc_block_sum(acc, sh);
    if (threadIdx.x == 0) {
        if (factor != 1.0) acc *= (T)factor;
        out[blk] = acc;
    }
}

template <class T, class I>
__device__ void sum_tiles_impl(T* out, const T* x, i64 n_out, i64 n_red, i64 parts, double factor, const i64* kd, const i64* ks, const i64* rd, const i64* rs) {
    __shared__ T sh[RC_BLOCK];
    const i64 blk = blockIdx.x;
    const i64 tile = blk / parts, p = blk - tile * parts;
    const int tx = threadIdx.x % RC_TILE_W, ty = threadIdx.x / RC_TILE_W;
    const i64 o = tile * RC_TILE_W + tx;
    const i64 chunk = (n_red + parts - 1) / parts;
    const I lo = (I)(p * chunk);
    const I hi = (I)(p * chunk + chunk < n_red ? p * chunk + chunk : n_red);
    T acc = T(0);
    if (o < n_out) {  // every thread still reaches the barrier below
        const T* xb = x + (i64)red_offset<I>((I)o, kd, ks);
        for (I r = lo + (I)ty; r < hi; r += (I)RC_TILE_H) acc += xb[red_offset<I>(r, rd, rs)];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    if (ty == 0 && o < n_out) {
        T s = sh[tx];
        for (int k = 1; k < RC_TILE_H; k++) s += sh[k * RC_TILE_W + tx];
        if (factor != 1.0) s *= (T)factor;
        out[o * parts + p] = s;
    }
}

// True when every offset into the input (fewer than n_out · n_red elements) fits 32 bits.
__device__ __forceinline__ bool red_small(i64 n_out, i64 n_red) { return n_out * n_red < 2147483647LL; }

#define RED_ARRAYS                                \
    const i64 kd[4] = {k0, k1, k2, k3};           \
    const i64 ks[4] = {ks0, ks1, ks2, ks3};       \
    const i64 rd[4] = {r0, r1, r2, r3};           \
    const i64 rs[4] = {rs0, rs1, rs2, rs3};

extern "C" __global__ void sum_threads_f32(float* out, const float* x, long long n_out, long long n_red, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    if (red_small(n_out, n_red)) sum_threads_impl<float, unsigned>(out, x, n_out, factor, kd, ks, rd, rs);
    else sum_threads_impl<float, i64>(out, x, n_out, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_threads_f64(double* out, const double* x, long long n_out, long long n_red, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    if (red_small(n_out, n_red)) sum_threads_impl<double, unsigned>(out, x, n_out, factor, kd, ks, rd, rs);
    else sum_threads_impl<double, i64>(out, x, n_out, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_blocks_f32(float* out, const float* x, long long n_out, long long n_red, long long parts, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    if (red_small(n_out, n_red)) sum_blocks_impl<float, unsigned>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
    else sum_blocks_impl<float, i64>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_blocks_f64(double* out, const double* x, long long n_out, long long n_red, long long parts, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    if (red_small(n_out, n_red)) sum_blocks_impl<double, unsigned>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
    else sum_blocks_impl<double, i64>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_tiles_f32(float* out, const float* x, long long n_out, long long n_red, long long parts, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    if (red_small(n_out, n_red)) sum_tiles_impl<float, unsigned>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
    else sum_tiles_impl<float, i64>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
}
extern "C" __global__ void sum_tiles_f64(double* out, const double* x, long long n_out, long long n_red, long long parts, double factor, long long k0, long long k1, long long k2, long long k3, long long ks0, long long ks1, long long ks2, long long ks3, long long r0, long long r1, long long r2, long long r3, long long rs0, long long rs1, long long rs2, long long rs3) {
    RED_ARRAYS
    if (red_small(n_out, n_red)) sum_tiles_impl<double, unsigned>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
    else sum_tiles_impl<double, i64>(out, x, n_out, n_red, parts, factor, kd, ks, rd, rs);
}
