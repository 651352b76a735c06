// Optimizer updates and gradient clipping (crates/core/src/ops/optim.rs): one kernel per
// parameter tensor reads the parameter, its gradient and its state once and writes the new
// values into fresh buffers (the op's outputs). Formulas and their order of operations follow
// the CPU code, which follows torch.optim. Absent state pointers are never read or written.

template <class T>
__device__ void sgd_impl(T* p_out, T* buf_out, const T* p, const T* g, const T* buf, i64 n, double lr, double momentum, double dampening, double wd, int nesterov, int first, int has_momentum) {
    const T lr_ = (T)lr, mo = (T)momentum, damp = (T)dampening, wd_ = (T)wd;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        T pv = p[i];
        const T gv = g[i] + wd_ * pv;
        if (has_momentum) {
            const T b = first ? gv : mo * buf[i] + (T(1) - damp) * gv;
            buf_out[i] = b;
            const T d = nesterov ? gv + mo * b : b;
            pv -= lr_ * d;
        } else {
            pv -= lr_ * gv;
        }
        p_out[i] = pv;
    }
}

template <class T>
__device__ void adam_impl(T* p_out, T* m_out, T* v_out, const T* p, const T* g, const T* m, const T* v, i64 n, double step_size, double bc2_sqrt, double beta1, double beta2, double eps, double wd, double lr, int decoupled) {
    const T ss = (T)step_size, bc2s = (T)bc2_sqrt, b1 = (T)beta1, b2 = (T)beta2, eps_ = (T)eps, wd_ = (T)wd, lr_ = (T)lr;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        T pv = p[i];
        T gv = g[i];
        if (decoupled) {
            pv *= T(1) - lr_ * wd_;
        } else {
            gv = gv + wd_ * pv;
        }
        const T mv = b1 * m[i] + (T(1) - b1) * gv;
        const T vv = b2 * v[i] + (T(1) - b2) * gv * gv;
        const T denom = rc_sqrt(vv) / bc2s + eps_;
        pv -= ss * mv / denom;
        p_out[i] = pv;
        m_out[i] = mv;
        v_out[i] = vv;
    }
}

template <class T>
__device__ void rmsprop_impl(T* p_out, T* sq_out, T* buf_out, T* ga_out, const T* p, const T* g, const T* sq, const T* buf, const T* ga, i64 n, double lr, double alpha, double eps, double wd, double momentum, int has_momentum, int centered) {
    const T lr_ = (T)lr, a = (T)alpha, eps_ = (T)eps, wd_ = (T)wd, mo = (T)momentum;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        T pv = p[i];
        const T gv = g[i] + wd_ * pv;
        const T sqv = a * sq[i] + (T(1) - a) * gv * gv;
        sq_out[i] = sqv;
        T avg;
        if (centered) {
            const T gav = a * ga[i] + (T(1) - a) * gv;
            ga_out[i] = gav;
            avg = rc_sqrt(sqv - gav * gav) + eps_;
        } else {
            avg = rc_sqrt(sqv) + eps_;
        }
        if (has_momentum) {
            const T b = mo * buf[i] + gv / avg;
            buf_out[i] = b;
            pv -= lr_ * b;
        } else {
            pv -= lr_ * gv / avg;
        }
        p_out[i] = pv;
    }
}

template <class T>
__device__ void adagrad_impl(T* p_out, T* sum_out, const T* p, const T* g, const T* sum, i64 n, double clr, double wd, double eps) {
    const T clr_ = (T)clr, wd_ = (T)wd, eps_ = (T)eps;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        T pv = p[i];
        const T gv = g[i] + wd_ * pv;
        const T s = sum[i] + gv * gv;
        sum_out[i] = s;
        pv -= clr_ * gv / (rc_sqrt(s) + eps_);
        p_out[i] = pv;
    }
}

template <class T> __device__ void clamp_impl(T* out, const T* x, i64 n, double lo, double hi) {
    const T l = (T)lo, h = (T)hi;
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) {
        const T v = x[i];
        out[i] = v < l ? l : (v > h ? h : v);
    }
}

// One block per part: partials[blockIdx] = Σ |x|^norm_type (or max |x| when is_inf) over that
// part of x, accumulated in double as on the CPU.
template <class T> __device__ void norm_partial_impl(double* partials, const T* x, i64 n, i64 parts, double norm_type, int is_inf) {
    __shared__ double sh[RC_BLOCK];
    const i64 p = blockIdx.x;
    if (p >= parts) return;
    const i64 chunk = (n + parts - 1) / parts;
    const i64 lo = p * chunk;
    const i64 hi = lo + chunk < n ? lo + chunk : n;
    double acc = 0.0;
    for (i64 i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const double a = fabs((double)x[i]);
        acc = is_inf ? (acc > a ? acc : a) : acc + (norm_type == 2.0 ? a * a : pow(a, norm_type));
    }
    acc = is_inf ? rc_block_max(acc, sh) : rc_block_sum(acc, sh);
    if (threadIdx.x == 0) partials[p] = acc;
}

// One block: combines every tensor's partials into out[0] = the total norm and out[1] = the
// clip coefficient max_norm / (total + 1e-6).
extern "C" __global__ void clip_coef(double* out, const double* partials, long long count, double max_norm, double norm_type, int is_inf) {
    __shared__ double sh[RC_BLOCK];
    double acc = 0.0;
    for (i64 i = threadIdx.x; i < count; i += blockDim.x) acc = is_inf ? (acc > partials[i] ? acc : partials[i]) : acc + partials[i];
    acc = is_inf ? rc_block_max(acc, sh) : rc_block_sum(acc, sh);
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        const double total = is_inf ? acc : pow(acc, 1.0 / norm_type);
        out[0] = total;
        out[1] = max_norm / (total + 1e-6);
    }
}

// out = x · min(coef, 1) when coef < 1, else a copy; coef = coef_norm[1].
template <class T> __device__ void clip_scale_impl(T* out, const T* x, i64 n, const double* coef_norm) {
    const double coef = coef_norm[1];
    const T s = (T)(coef < 1.0 ? coef : 1.0);
    for (i64 i = rc_tid(); i < n; i += rc_nthreads()) out[i] = coef < 1.0 ? x[i] * s : x[i];
}

template <class T> __device__ void clip_norm_out_impl(T* out, const double* coef_norm) {
    if (rc_tid() == 0) out[0] = (T)coef_norm[0];
}

extern "C" __global__ void sgd_f32(float* p_out, float* buf_out, const float* p, const float* g, const float* buf, long long n, double lr, double momentum, double dampening, double wd, int nesterov, int first, int has_momentum) { sgd_impl<float>(p_out, buf_out, p, g, buf, n, lr, momentum, dampening, wd, nesterov, first, has_momentum); }
extern "C" __global__ void sgd_f64(double* p_out, double* buf_out, const double* p, const double* g, const double* buf, long long n, double lr, double momentum, double dampening, double wd, int nesterov, int first, int has_momentum) { sgd_impl<double>(p_out, buf_out, p, g, buf, n, lr, momentum, dampening, wd, nesterov, first, has_momentum); }
extern "C" __global__ void adam_f32(float* p_out, float* m_out, float* v_out, const float* p, const float* g, const float* m, const float* v, long long n, double step_size, double bc2_sqrt, double beta1, double beta2, double eps, double wd, double lr, int decoupled) { adam_impl<float>(p_out, m_out, v_out, p, g, m, v, n, step_size, bc2_sqrt, beta1, beta2, eps, wd, lr, decoupled); }
extern "C" __global__ void adam_f64(double* p_out, double* m_out, double* v_out, const double* p, const double* g, const double* m, const double* v, long long n, double step_size, double bc2_sqrt, double beta1, double beta2, double eps, double wd, double lr, int decoupled) { adam_impl<double>(p_out, m_out, v_out, p, g, m, v, n, step_size, bc2_sqrt, beta1, beta2, eps, wd, lr, decoupled); }
extern "C" __global__ void rmsprop_f32(float* p_out, float* sq_out, float* buf_out, float* ga_out, const float* p, const float* g, const float* sq, const float* buf, const float* ga, long long n, double lr, double alpha, double eps, double wd, double momentum, int has_momentum, int centered) { rmsprop_impl<float>(p_out, sq_out, buf_out, ga_out, p, g, sq, buf, ga, n, lr, alpha, eps, wd, momentum, has_momentum, centered); }
extern "C" __global__ void rmsprop_f64(double* p_out, double* sq_out, double* buf_out, double* ga_out, const double* p, const double* g, const double* sq, const double* buf, const double* ga, long long n, double lr, double alpha, double eps, double wd, double momentum, int has_momentum, int centered) { rmsprop_impl<double>(p_out, sq_out, buf_out, ga_out, p, g, sq, buf, ga, n, lr, alpha, eps, wd, momentum, has_momentum, centered); }
extern "C" __global__ void adagrad_f32(float* p_out, float* sum_out, const float* p, const float* g, const float* sum, long long n, double clr, double wd, double eps) { adagrad_impl<float>(p_out, sum_out, p, g, sum, n, clr, wd, eps); }
extern "C" __global__ void adagrad_f64(double* p_out, double* sum_out, const double* p, const double* g, const double* sum, long long n, double clr, double wd, double eps) { adagrad_impl<double>(p_out, sum_out, p, g, sum, n, clr, wd, eps); }
extern "C" __global__ void clamp_f32(float* out, const float* x, long long n, double lo, double hi) { clamp_impl<float>(out, x, n, lo, hi); }
extern "C" __global__ void clamp_f64(double* out, const double* x, long long n, double lo, double hi) { clamp_impl<double>(out, x, n, lo, hi); }
extern "C" __global__ void norm_partial_f32(double* partials, const float* x, long long n, long long parts, double norm_type, int is_inf) { norm_partial_impl<float>(partials, x, n, parts, norm_type, is_inf); }
extern "C" __global__ void norm_partial_f64(double* partials, const double* x, long long n, long long parts, double norm_type, int is_inf) { norm_partial_impl<double>(partials, x, n, parts, norm_type, is_inf); }
extern "C" __global__ void clip_scale_f32(float* out, const float* x, long long n, const double* coef_norm) { clip_scale_impl<float>(out, x, n, coef_norm); }
extern "C" __global__ void clip_scale_f64(double* out, const double* x, long long n, const double* coef_norm) { clip_scale_impl<double>(out, x, n, coef_norm); }
extern "C" __global__ void clip_norm_out_f32(float* out, const double* coef_norm) { clip_norm_out_impl<float>(out, coef_norm); }
extern "C" __global__ void clip_norm_out_f64(double* out, const double* coef_norm) { clip_norm_out_impl<double>(out, coef_norm); }
