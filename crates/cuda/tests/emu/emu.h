// Host emulation of the CUDA subset that kernels/*.cu use, so that the no-GPU tests can run
// the real kernel sources on the CPU (tests/common/emu.rs builds them with the system C++
// compiler). Each block runs its threads as cooperative fibers that switch at
// __syncthreads(); blocks run one after another. __shared__ variables become statics, which
// every fiber of the running block shares. Warp shuffles exchange values through a per-thread
// slot and a barrier over the thread's warp only (32 fibers), so a warp may return while
// others still shuffle, as on a GPU. This checks the kernels' arithmetic and indexing,
// not their speed or inter-block races.
#pragma once
#include <math.h>
#include <cmath>

struct dim3 {
    unsigned x, y, z;
};
extern dim3 threadIdx, blockIdx, blockDim, gridDim;
void __syncthreads();
void emu_syncwarp();
extern double emu_lanes[1024];

// Lane values go through doubles: exact for float and double alike.
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    emu_lanes[threadIdx.x] = (double)v;
    emu_syncwarp();
    const T r = (T)emu_lanes[threadIdx.x ^ (unsigned)lane_mask];
    emu_syncwarp();
    return r;
}

#define __global__
#define __device__ static inline
#define __forceinline__
#define __shared__ static
#define __restrict__

// Fibers never preempt each other, so read-modify-write is atomic here.
static inline int atomicMax(int* a, int v) {
    const int o = *a;
    if (v > o) *a = v;
    return o;
}
static inline float atomicAdd(float* a, float v) {
    const float o = *a;
    *a = o + v;
    return o;
}
static inline double atomicAdd(double* a, double v) {
    const double o = *a;
    *a = o + v;
    return o;
}
