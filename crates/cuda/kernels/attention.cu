// attention over a source sequence (crates/core/src/ops/attention.rs): scores (additive
// v·tanh(q + k) or dot q·k), length mask, softmax and context in one kernel with one block per
// batch row; the backward as three kernels (score gradients per row, keys/values elementwise,
// query and v's per-row partials). query [B, A], keys [S, B, A], values [S, B, E], v [A],
// lengths [B], weights [B, S], context [B, E].
//
// The scores live in the weights row itself (global memory, read back only by the row's own
// block after __syncthreads), so any S fits without a shared-memory size limit.

// A row's length clamped to [1, S]: a bad length reads nothing out of bounds (the forward
// also raises `bad`, reported to the host at the next read with the CPU's message).
__device__ __forceinline__ i64 rc_attn_len(const int* lengths, i64 b, i64 S) {
    const i64 len = lengths[b];
    return len < 1 ? 1 : (len > S ? S : len);
}

template <class T>
__device__ void attention_fwd_impl(T* ctx, T* w, const T* q, const T* k, const T* vals, const T* v, const int* lengths,
                                   int* bad, i64 B, i64 S, i64 A, i64 E, int additive) {
    __shared__ T sh[RC_BLOCK];
    const i64 b = blockIdx.x;
    if (b >= B) return;
    const int tid = threadIdx.x, lane = tid % RC_WARP, warp = tid / RC_WARP, warps = blockDim.x / RC_WARP;
    const i64 raw = lengths[b];
    if ((raw < 1 || raw > S) && tid == 0) atomicMax(bad, 1);
    const i64 len = rc_attn_len(lengths, b, S);
    const T* qr = q + b * A;
    T* wr = w + b * S;
    // One warp per source position, its lanes over the features.
    for (i64 s = warp; s < len; s += warps) {
        const T* kr = k + (s * B + b) * A;
        T acc = T(0);
        for (i64 a = lane; a < A; a += RC_WARP) acc += additive ? v[a] * rc_tanh(qr[a] + kr[a]) : qr[a] * kr[a];
        for (int o = RC_WARP / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) wr[s] = acc;
    }
    __syncthreads();
    T m = wr[0];
    for (i64 s = tid; s < len; s += blockDim.x) m = rc_max(m, wr[s]);
    m = rc_block_max(m, sh);
    T sum = T(0);
    for (i64 s = tid; s < len; s += blockDim.x) sum += rc_exp(wr[s] - m);
    sum = rc_block_sum(sum, sh);
    const T r = T(1) / sum;
    for (i64 s = tid; s < S; s += blockDim.x) wr[s] = s < len ? rc_exp(wr[s] - m) * r : T(0);
    __syncthreads();
    for (i64 e = tid; e < E; e += blockDim.x) {
        T acc = T(0);
        for (i64 s = 0; s < len; s++) acc += wr[s] * vals[(s * B + b) * E + e];
        ctx[b * E + e] = acc;
    }
}

// ge[b, s] = w[b, s] · (u[b, s] − Σ_s' w[b, s'] u[b, s']) with u = gw + gc·values (the terms
// whose flags are off are zero); 0 past the row's length.
template <class T>
__device__ void attention_bwd_scores_impl(T* ge, const T* w, const T* gc, const T* gw, const T* vals, const int* lengths,
                                          i64 B, i64 S, i64 E, int has_gc, int has_gw) {
    __shared__ T sh[RC_BLOCK];
    const i64 b = blockIdx.x;
    if (b >= B) return;
    const int tid = threadIdx.x, lane = tid % RC_WARP, warp = tid / RC_WARP, warps = blockDim.x / RC_WARP;
    const i64 len = rc_attn_len(lengths, b, S);
    const T* wr = w + b * S;
    T* gr = ge + b * S;
    for (i64 s = warp; s < len; s += warps) {
        T acc = T(0);
        if (has_gc) {
            const T* vr = vals + (s * B + b) * E;
            for (i64 e = lane; e < E; e += RC_WARP) acc += gc[b * E + e] * vr[e];
            for (int o = RC_WARP / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        }
        if (lane == 0) gr[s] = acc + (has_gw ? gw[b * S + s] : T(0));
    }
    __syncthreads();
    T d = T(0);
    for (i64 s = tid; s < len; s += blockDim.x) d += wr[s] * gr[s];
    d = rc_block_sum(d, sh);
    for (i64 s = tid; s < S; s += blockDim.x) gr[s] = s < len ? wr[s] * (gr[s] - d) : T(0);
}

// Elementwise over [S, B, A] (keys) and [S, B, E] (values) at once:
// gk = ge · q (dot) or ge · v ⊙ (1 − tanh²(q + k)) (additive); gvals = w · gc.
template <class T>
__device__ void attention_bwd_keys_impl(T* gk, T* gvals, const T* ge, const T* w, const T* q, const T* k, const T* v,
                                        const T* gc, const int* lengths, i64 B, i64 S, i64 A, i64 E, int additive,
                                        int has_gc) {
    const i64 nk = S * B * A, nv = S * B * E;
    const i64 n = nk > nv ? nk : nv;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        if (i < nk) {
            const i64 sb = i / A, a = i - sb * A, s = sb / B, b = sb - s * B;
            T g = T(0);
            if (s < rc_attn_len(lengths, b, S)) {
                const T c = ge[b * S + s];
                if (additive) {
                    const T t = rc_tanh(q[b * A + a] + k[i]);
                    g = c * v[a] * (T(1) - t * t);
                } else {
                    g = c * q[b * A + a];
                }
            }
            gk[i] = g;
        }
        if (i < nv) {
            const i64 sb = i / E, e = i - sb * E, s = sb / B, b = sb - s * B;
            gvals[i] = (has_gc && s < rc_attn_len(lengths, b, S)) ? w[b * S + s] * gc[b * E + e] : T(0);
        }
    }
}

// One thread per (b, a), summing over the row's positions in order: gq = Σ_s gk (additive) or
// Σ_s ge · k (dot); additive also gv_part[b, a] = Σ_s ge · tanh(q + k), summed over b by the host.
template <class T>
__device__ void attention_bwd_query_impl(T* gq, T* gv_part, const T* ge, const T* gk, const T* k, const T* q,
                                         const int* lengths, i64 B, i64 S, i64 A, int additive) {
    const i64 n = B * A;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 b = i / A, a = i - b * A;
        const i64 len = rc_attn_len(lengths, b, S);
        T acc = T(0), acc_v = T(0);
        for (i64 s = 0; s < len; s++) {
            const i64 at = (s * B + b) * A + a;
            if (additive) {
                acc += gk[at];
                acc_v += ge[b * S + s] * rc_tanh(q[i] + k[at]);
            } else {
                acc += ge[b * S + s] * k[at];
            }
        }
        gq[i] = acc;
        if (additive) gv_part[i] = acc_v;
    }
}

extern "C" __global__ void attention_fwd_f32(float* ctx, float* w, const float* q, const float* k, const float* vals, const float* v, const int* lengths, int* bad, long long B, long long S, long long A, long long E, int additive) { attention_fwd_impl<float>(ctx, w, q, k, vals, v, lengths, bad, B, S, A, E, additive); }
extern "C" __global__ void attention_fwd_f64(double* ctx, double* w, const double* q, const double* k, const double* vals, const double* v, const int* lengths, int* bad, long long B, long long S, long long A, long long E, int additive) { attention_fwd_impl<double>(ctx, w, q, k, vals, v, lengths, bad, B, S, A, E, additive); }
extern "C" __global__ void attention_bwd_scores_f32(float* ge, const float* w, const float* gc, const float* gw, const float* vals, const int* lengths, long long B, long long S, long long E, int has_gc, int has_gw) { attention_bwd_scores_impl<float>(ge, w, gc, gw, vals, lengths, B, S, E, has_gc, has_gw); }
extern "C" __global__ void attention_bwd_scores_f64(double* ge, const double* w, const double* gc, const double* gw, const double* vals, const int* lengths, long long B, long long S, long long E, int has_gc, int has_gw) { attention_bwd_scores_impl<double>(ge, w, gc, gw, vals, lengths, B, S, E, has_gc, has_gw); }
extern "C" __global__ void attention_bwd_keys_f32(float* gk, float* gvals, const float* ge, const float* w, const float* q, const float* k, const float* v, const float* gc, const int* lengths, long long B, long long S, long long A, long long E, int additive, int has_gc) { attention_bwd_keys_impl<float>(gk, gvals, ge, w, q, k, v, gc, lengths, B, S, A, E, additive, has_gc); }
extern "C" __global__ void attention_bwd_keys_f64(double* gk, double* gvals, const double* ge, const double* w, const double* q, const double* k, const double* v, const double* gc, const int* lengths, long long B, long long S, long long A, long long E, int additive, int has_gc) { attention_bwd_keys_impl<double>(gk, gvals, ge, w, q, k, v, gc, lengths, B, S, A, E, additive, has_gc); }
extern "C" __global__ void attention_bwd_query_f32(float* gq, float* gv_part, const float* ge, const float* gk, const float* k, const float* q, const int* lengths, long long B, long long S, long long A, int additive) { attention_bwd_query_impl<float>(gq, gv_part, ge, gk, k, q, lengths, B, S, A, additive); }
extern "C" __global__ void attention_bwd_query_f64(double* gq, double* gv_part, const double* ge, const double* gk, const double* k, const double* q, const int* lengths, long long B, long long S, long long A, int additive) { attention_bwd_query_impl<double>(gq, gv_part, ge, gk, k, q, lengths, B, S, A, additive); }
