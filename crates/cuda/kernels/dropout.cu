// Inverted dropout (crates/core/src/ops/dropout.rs). Element k is kept when Philox-4x32-10 word
// k of the seed (counter k / 4, key = the seed's halves, word k % 4) is at least `thr` =
// ceil(p · 2^32): the same integers the CPU computes (crates/core/src/rng.rs), so both drop
// exactly the same elements for a seed, and no mask is built on the host or uploaded. One
// thread per Philox block of four elements. Forward and backward are the same masked scaling.

__device__ __forceinline__ void rc_philox4x32_10(unsigned int c[4], unsigned int k0, unsigned int k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        const unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
        const unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
        const unsigned int n0 = (unsigned int)(p1 >> 32) ^ c[1] ^ k0;
        const unsigned int n2 = (unsigned int)(p0 >> 32) ^ c[3] ^ k1;
        c[0] = n0; c[1] = (unsigned int)p1; c[2] = n2; c[3] = (unsigned int)p0;
    }
}

template <class T> __device__ void dropout_impl(T* out, const T* x, i64 n, i64 seed, i64 thr, double scale) {
    const unsigned long long s = (unsigned long long)seed;
    const i64 blocks = (n + 3) / 4;
    for (i64 b = rc_tid(); b < blocks; b += rc_nthreads()) {
        unsigned int c[4] = {(unsigned int)b, (unsigned int)((unsigned long long)b >> 32), 0u, 0u};
        rc_philox4x32_10(c, (unsigned int)s, (unsigned int)(s >> 32));
        for (int w = 0; w < 4; ++w) {
            const i64 i = b * 4 + w;
            if (i < n) out[i] = (long long)c[w] >= thr ? x[i] * T(scale) : T(0);
        }
    }
}

extern "C" __global__ void dropout_f32(float* out, const float* x, long long n, long long seed, long long thr, double scale) { dropout_impl<float>(out, x, n, seed, thr, scale); }
extern "C" __global__ void dropout_f64(double* out, const double* x, long long n, long long seed, long long thr, double scale) { dropout_impl<double>(out, x, n, seed, thr, scale); }
