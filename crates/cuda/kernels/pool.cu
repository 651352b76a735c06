// 2-D pooling (crates/core/src/ops/pool.rs) over `planes` = N·C planes of H×W. Forward kernels
// give a thread to each output; backward kernels a thread to each input pixel, which sums the
// outputs whose windows cover it, in output order as the CPU adds them (no atomics).
// Avg `mode`: 0 fixed windows divided by KH·KW (count_include_pad), 1 fixed windows divided by
// the pixels inside the image, 2 adaptive windows [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉).

struct RcPool {
    i64 planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
};

// Window of output o along one axis, clipped to [0, size); `full` is its length with padding.
__device__ __forceinline__ void rc_fixed_window(i64 o, i64 k, i64 s, i64 p, i64 size, i64& a, i64& b, i64& full) {
    const i64 start = o * s - p;
    const i64 end = start + k < size + p ? start + k : size + p;
    full = end - start;
    a = start > 0 ? start : 0;
    b = end < size ? end : size;
}

__device__ __forceinline__ void rc_adaptive_window(i64 o, i64 out, i64 size, i64& a, i64& b) {
    a = o * size / out;
    b = ((o + 1) * size + out - 1) / out;
}

// The outputs [lo, hi] along one axis whose windows contain input i.
__device__ __forceinline__ void rc_covering(i64 i, i64 k, i64 s, i64 p, i64 out, i64& lo, i64& hi) {
    lo = i + p < k ? 0 : (i + p - k) / s + 1;
    hi = (i + p) / s;
    if (hi > out - 1) hi = out - 1;
}

__device__ __forceinline__ void rc_adaptive_covering(i64 i, i64 out, i64 size, i64& lo, i64& hi) {
    lo = i * out / size;
    hi = ((i + 1) * out + size - 1) / size;
    if (hi > out) hi = out;
    hi -= 1;
}

// Rows [y0, y1), columns [x0, x1) and divisor of output (oy, ox).
__device__ __forceinline__ void rc_avg_window(const RcPool& g, int mode, i64 oy, i64 ox, i64& y0, i64& y1, i64& x0, i64& x1, i64& div) {
    if (mode == 2) {
        rc_adaptive_window(oy, g.oh, g.h, y0, y1);
        rc_adaptive_window(ox, g.ow, g.w, x0, x1);
        div = (y1 - y0) * (x1 - x0);
    } else {
        i64 fy, fx;
        rc_fixed_window(oy, g.kh, g.sh, g.ph, g.h, y0, y1, fy);
        rc_fixed_window(ox, g.kw, g.sw, g.pw, g.w, x0, x1, fx);
        div = mode == 0 ? fy * fx : (y1 - y0) * (x1 - x0);
    }
}

// The first maximum in scan order; a NaN wins and stays (PyTorch's rule).
template <class T> __device__ void max_pool_fwd_impl(T* y, int* idx, const T* x, RcPool g) {
    const i64 n = g.planes * g.oh * g.ow;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 ox = i % g.ow;
        const i64 oy = (i / g.ow) % g.oh;
        const i64 pl = i / (g.ow * g.oh);
        const T* xp = x + pl * g.h * g.w;
        i64 y0, y1, x0, x1, f;
        rc_fixed_window(oy, g.kh, g.sh, g.ph, g.h, y0, y1, f);
        rc_fixed_window(ox, g.kw, g.sw, g.pw, g.w, x0, x1, f);
        i64 best = y0 * g.w + x0;
        T bv = xp[best];
        for (i64 iy = y0; iy < y1; iy++) {
            for (i64 ix = x0; ix < x1; ix++) {
                const T v = xp[iy * g.w + ix];
                if (v > bv || (v != v && bv == bv)) {
                    bv = v;
                    best = iy * g.w + ix;
                }
            }
        }
        y[i] = bv;
        idx[i] = (int)best;
    }
}

template <class T> __device__ void max_pool_bwd_impl(T* gx, const T* gy, const int* idx, RcPool g) {
    const i64 n = g.planes * g.h * g.w;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 ix = i % g.w;
        const i64 iy = (i / g.w) % g.h;
        const i64 pl = i / (g.w * g.h);
        const i64 base = pl * g.oh * g.ow;
        const int here = (int)(iy * g.w + ix);
        i64 ylo, yhi, xlo, xhi;
        rc_covering(iy, g.kh, g.sh, g.ph, g.oh, ylo, yhi);
        rc_covering(ix, g.kw, g.sw, g.pw, g.ow, xlo, xhi);
        T s = T(0);
        for (i64 oy = ylo; oy <= yhi; oy++) {
            for (i64 ox = xlo; ox <= xhi; ox++) {
                const i64 o = base + oy * g.ow + ox;
                if (idx[o] == here) s += gy[o];
            }
        }
        gx[i] = s;
    }
}

template <class T> __device__ void avg_pool_fwd_impl(T* y, const T* x, RcPool g, int mode) {
    const i64 n = g.planes * g.oh * g.ow;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 ox = i % g.ow;
        const i64 oy = (i / g.ow) % g.oh;
        const i64 pl = i / (g.ow * g.oh);
        const T* xp = x + pl * g.h * g.w;
        i64 y0, y1, x0, x1, div;
        rc_avg_window(g, mode, oy, ox, y0, y1, x0, x1, div);
        T s = T(0);
        for (i64 iy = y0; iy < y1; iy++)
            for (i64 ix = x0; ix < x1; ix++) s += xp[iy * g.w + ix];
        y[i] = s / T(div);
    }
}

template <class T> __device__ void avg_pool_bwd_impl(T* gx, const T* gy, RcPool g, int mode) {
    const i64 n = g.planes * g.h * g.w;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 ix = i % g.w;
        const i64 iy = (i / g.w) % g.h;
        const i64 pl = i / (g.w * g.h);
        const i64 base = pl * g.oh * g.ow;
        i64 ylo, yhi, xlo, xhi;
        if (mode == 2) {
            rc_adaptive_covering(iy, g.oh, g.h, ylo, yhi);
            rc_adaptive_covering(ix, g.ow, g.w, xlo, xhi);
        } else {
            rc_covering(iy, g.kh, g.sh, g.ph, g.oh, ylo, yhi);
            rc_covering(ix, g.kw, g.sw, g.pw, g.ow, xlo, xhi);
        }
        T s = T(0);
        for (i64 oy = ylo; oy <= yhi; oy++) {
            for (i64 ox = xlo; ox <= xhi; ox++) {
                i64 y0, y1, x0, x1, div;
                rc_avg_window(g, mode, oy, ox, y0, y1, x0, x1, div);
                s += gy[base + oy * g.ow + ox] / T(div);
            }
        }
        gx[i] = s;
    }
}

#define RC_POOL_ARGS RcPool{planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw}

extern "C" __global__ void max_pool_fwd_f32(float* y, int* idx, const float* x, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw) { max_pool_fwd_impl<float>(y, idx, x, RC_POOL_ARGS); }
extern "C" __global__ void max_pool_fwd_f64(double* y, int* idx, const double* x, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw) { max_pool_fwd_impl<double>(y, idx, x, RC_POOL_ARGS); }
extern "C" __global__ void max_pool_bwd_f32(float* gx, const float* gy, const int* idx, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw) { max_pool_bwd_impl<float>(gx, gy, idx, RC_POOL_ARGS); }
extern "C" __global__ void max_pool_bwd_f64(double* gx, const double* gy, const int* idx, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw) { max_pool_bwd_impl<double>(gx, gy, idx, RC_POOL_ARGS); }
extern "C" __global__ void avg_pool_fwd_f32(float* y, const float* x, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw, int mode) { avg_pool_fwd_impl<float>(y, x, RC_POOL_ARGS, mode); }
extern "C" __global__ void avg_pool_fwd_f64(double* y, const double* x, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw, int mode) { avg_pool_fwd_impl<double>(y, x, RC_POOL_ARGS, mode); }
extern "C" __global__ void avg_pool_bwd_f32(float* gx, const float* gy, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw, int mode) { avg_pool_bwd_impl<float>(gx, gy, RC_POOL_ARGS, mode); }
extern "C" __global__ void avg_pool_bwd_f64(double* gx, const double* gy, long long planes, long long h, long long w, long long oh, long long ow, long long kh, long long kw, long long sh, long long sw, long long ph, long long pw, int mode) { avg_pool_bwd_impl<double>(gx, gy, RC_POOL_ARGS, mode); }
