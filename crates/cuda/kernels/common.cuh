// Prepended to every kernels/*.cu file before NVRTC compiles it (and before the host
// emulator used by the no-GPU tests compiles it), so kernels need no #include.
//
// Conventions, shared with crates/core/src/launch/ (the kernel table and launch helpers):
// - Every kernel is `extern "C" __global__ void name_f32(...)` / `name_f64(...)` (shape kernels
//   also `_i32`), a thin wrapper over a template; the wrapper's parameters are the ABI.
//   Parameter types are limited to T*, const T*, int*, const int*, double*, const double*,
//   long long, int, float, double: the backend checks each launch against them.
// - Launches use blocks of RC_BLOCK threads and ceil(threads / RC_BLOCK) blocks. Kernels that
//   give one block to each row are launched with rows × RC_BLOCK threads.
// - Sizes and indices are 64-bit (long long).

#define RC_BLOCK 256
typedef long long i64;

__device__ __forceinline__ i64 rc_tid() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 rc_nthreads() { return (i64)gridDim.x * blockDim.x; }

__device__ __forceinline__ float rc_exp(float x) { return expf(x); }
__device__ __forceinline__ double rc_exp(double x) { return exp(x); }
__device__ __forceinline__ float rc_log(float x) { return logf(x); }
__device__ __forceinline__ double rc_log(double x) { return log(x); }
__device__ __forceinline__ float rc_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double rc_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float rc_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double rc_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float rc_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ double rc_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

// The CPU's max: NaN-propagating the same way (a > b ? a : b).
template <class T> __device__ __forceinline__ T rc_max(T a, T b) { return a > b ? a : b; }

// Sum over the block; every thread of the block must call it. `sh` holds RC_BLOCK values.
template <class T> __device__ T rc_block_sum(T v, T* sh) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = RC_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    const T r = sh[0];
    __syncthreads();
    return r;
}

// Maximum over the block; every thread of the block must call it.
template <class T> __device__ T rc_block_max(T v, T* sh) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = RC_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = rc_max(sh[t], sh[t + s]);
        __syncthreads();
    }
    const T r = sh[0];
    __syncthreads();
    return r;
}

// Row kernels give each row either a whole block (long rows) or one warp (narrow rows: a block
// of 256 threads on a 5-wide row would leave 251 idle), chosen by the host per launch with the
// `warp` flag (launched with rows × RC_BLOCK or rows × 32 threads). Every lane of a row's group
// takes part in its reductions, so a group returns as a whole or not at all.
#define RC_WARP 32
struct RcRow {
    i64 row;
    int lane;
    int width;
};
__device__ __forceinline__ RcRow rc_row(int warp) {
    if (warp) return RcRow{rc_tid() / RC_WARP, (int)(threadIdx.x % RC_WARP), RC_WARP};
    return RcRow{(i64)blockIdx.x, (int)threadIdx.x, (int)blockDim.x};
}
template <class T> __device__ T rc_group_sum(T v, T* sh, int warp) {
    if (!warp) return rc_block_sum(v, sh);
    for (int o = RC_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <class T> __device__ T rc_group_max(T v, T* sh, int warp) {
    if (!warp) return rc_block_max(v, sh);
    for (int o = RC_WARP / 2; o > 0; o >>= 1) v = rc_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Time index of batch row b at step s of a recurrent loop (crates/core/src/ops/rnn.rs), or −1
// once the row is past its length. Reverse directions start at each row's own last element.
__device__ __forceinline__ i64 rc_time_of(const int* lengths, i64 s, i64 b, int reverse) {
    const i64 len = lengths[b];
    if (s >= len) return -1;
    return reverse ? len - 1 - s : s;
}
