// conv2d (crates/core/src/ops/conv.rs): im2col and col2im over a chunk of `nb` NCHW images;
// the products themselves are cuBLAS GEMMs launched by the op. The patch matrix of one image
// is [C·KH·KW, OH·OW] (row (c·KH + kh)·KW + kw), images one after another.

struct RcConv {
    i64 nb, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw;
};

// One thread per patch entry: the input pixel it reads, or 0 on padding.
template <class T> __device__ void im2col_impl(T* cols, const T* x, RcConv g) {
    const i64 n = g.nb * g.c * g.kh * g.kw * g.oh * g.ow;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 ox = i % g.ow;
        i64 t = i / g.ow;
        const i64 oy = t % g.oh;
        t /= g.oh;
        const i64 kj = t % g.kw;
        t /= g.kw;
        const i64 ki = t % g.kh;
        t /= g.kh;
        const i64 c = t % g.c, b = t / g.c;
        const i64 iy = oy * g.sh + ki * g.dh - g.ph;
        const i64 ix = ox * g.sw + kj * g.dw - g.pw;
        const bool in = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
        cols[i] = in ? x[((b * g.c + c) * g.h + iy) * g.w + ix] : T(0);
    }
}

// One thread per input pixel: the sum of the patch entries read from it, taps in (kh, kw)
// order as the CPU's col2im adds them. No atomics.
template <class T> __device__ void col2im_impl(T* gx, const T* cols, RcConv g) {
    const i64 n = g.nb * g.c * g.h * g.w;
    const i64 p = g.oh * g.ow;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const i64 ix = i % g.w;
        i64 t = i / g.w;
        const i64 iy = t % g.h;
        const i64 bc = t / g.h;  // b·C + c
        T s = T(0);
        for (i64 ki = 0; ki < g.kh; ki++) {
            const i64 ty = iy + g.ph - ki * g.dh;
            if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.oh) continue;
            const i64 oy = ty / g.sh;
            for (i64 kj = 0; kj < g.kw; kj++) {
                const i64 tx = ix + g.pw - kj * g.dw;
                if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.ow) continue;
                s += cols[((bc * g.kh + ki) * g.kw + kj) * p + oy * g.ow + tx / g.sw];
            }
        }
        gx[i] = s;
    }
}

// y[n, o, :] = bias[o], before the GEMMs accumulate onto it.
template <class T> __device__ void conv_bias_fill_impl(T* y, const T* bias, i64 n, i64 o, i64 hw) {
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) y[i] = bias[(i / hw) % o];
}

#define RC_CONV_ARGS RcConv{nb, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw}

extern "C" __global__ void im2col_f32(float* cols, const float* x, long long nb, long long c, long long h, long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long ph, long long pw, long long dh, long long dw) { im2col_impl<float>(cols, x, RC_CONV_ARGS); }
extern "C" __global__ void im2col_f64(double* cols, const double* x, long long nb, long long c, long long h, long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long ph, long long pw, long long dh, long long dw) { im2col_impl<double>(cols, x, RC_CONV_ARGS); }
extern "C" __global__ void col2im_f32(float* gx, const float* cols, long long nb, long long c, long long h, long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long ph, long long pw, long long dh, long long dw) { col2im_impl<float>(gx, cols, RC_CONV_ARGS); }
extern "C" __global__ void col2im_f64(double* gx, const double* cols, long long nb, long long c, long long h, long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long ph, long long pw, long long dh, long long dw) { col2im_impl<double>(gx, cols, RC_CONV_ARGS); }
extern "C" __global__ void conv_bias_fill_f32(float* y, const float* bias, long long n, long long o, long long hw) { conv_bias_fill_impl<float>(y, bias, n, o, hw); }
extern "C" __global__ void conv_bias_fill_f64(double* y, const double* bias, long long n, long long o, long long hw) { conv_bias_fill_impl<double>(y, bias, n, o, hw); }
