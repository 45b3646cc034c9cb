// Two fusions that take launches out of every layer of every decode step
// (a decode step of candle ops is bound by launches, not by the GPU):
//
// add_rms_norm_*: sum = x + r (rounded to the activation dtype, as the two
//   separate ops would), norm = rms_norm(sum) * w; one block of 1024 threads
//   per row of at most 8192, writes both into out = [2][rows][h].
// act_mul_*: out = act(gu[:, :f]) * gu[:, f:] for the stacked gate/up
//   projection; act 0 = SiLU, 1 = GELU (tanh), 2 = GELU (erf).
// rope_append_*: the stacked q/k/v projection of n tokens split by head, q
//   and k rotated, q written as [hq][n][d] and k, v appended to the layer's
//   cache buffers in place: seven candle launches (three copies, two RoPEs,
//   two appends) become one.
//
// Compiled by build.rs (nvcc, with the `cuda` feature).

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }

constexpr int NORM_THREADS = 1024;
constexpr int NORM_PER_THREAD = 8;  // rows of up to 8192 elements

template <typename T>
__device__ void add_rms_norm(const T* __restrict__ x, const T* __restrict__ r, const T* __restrict__ w,
                             T* __restrict__ out, int rows, int h, float eps) {
    __shared__ float partial[32];
    const size_t row = blockIdx.x;
    const T* xr = x + row * h;
    const T* rr = r + row * h;
    T* sum = out + row * h;
    T* norm = out + (size_t)rows * h + row * h;
    // All loads first, the sums kept in registers for the second pass.
    float vals[NORM_PER_THREAD];
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < NORM_PER_THREAD; ++k) {
        const int i = threadIdx.x + k * NORM_THREADS;
        vals[k] = i < h ? to_f(from_f<T>(to_f(xr[i]) + to_f(rr[i]))) : 0.f;
        ss += vals[k] * vals[k];
    }
#pragma unroll
    for (int k = 0; k < NORM_PER_THREAD; ++k) {
        const int i = threadIdx.x + k * NORM_THREADS;
        if (i < h) sum[i] = from_f<T>(vals[k]);
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffff, ss, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        ss = partial[lane];
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffff, ss, o);
        if (lane == 0) partial[0] = ss;
    }
    __syncthreads();
    const float scale = rsqrtf(partial[0] / h + eps);
#pragma unroll
    for (int k = 0; k < NORM_PER_THREAD; ++k) {
        const int i = threadIdx.x + k * NORM_THREADS;
        if (i < h) norm[i] = from_f<T>(vals[k] * scale * to_f(w[i]));
    }
}

__device__ __forceinline__ float activate(float g, int act) {
    switch (act) {
        case 0: return g / (1.f + expf(-g));
        case 1: return 0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
        default: return 0.5f * g * (1.f + erff(g * 0.7071067811865476f));
    }
}

template <typename T>
__device__ void act_mul(const T* gu, T* out, size_t rows, int f, int act) {
    const size_t n = rows * f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / f, col = i % f;
        const float g = to_f(gu[row * 2 * f + col]), u = to_f(gu[row * 2 * f + f + col]);
        out[i] = from_f<T>(activate(g, act) * u);
    }
}

// One block per (token, head): heads below hq are query heads, the rest KV
// heads (key rotated, value copied). RoPE in T arithmetic, the expression of
// candle's rope kernels, so the fused path rounds as the separate ops do.
template <typename T>
__device__ void rope_append(const T* __restrict__ qkv, const T* __restrict__ cos, const T* __restrict__ sin,
                            T* __restrict__ q, T* __restrict__ k_cache, T* __restrict__ v_cache, int n, int hq,
                            int hkv, int d, long long head_stride, long long slot, int interleaved) {
    const int tok = blockIdx.x, head = blockIdx.y, half = d / 2;
    const T* row = qkv + (size_t)tok * (hq + 2 * hkv) * d;
    const T* cs = cos + (size_t)tok * half;
    const T* sn = sin + (size_t)tok * half;
    const bool query = head < hq;
    const int kv = head - hq;
    const T* src = row + (size_t)head * d;
    T* dst = query ? q + ((size_t)head * n + tok) * d : k_cache + kv * head_stride + (slot + tok) * d;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const int i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
        const T c = cs[i], s = sn[i], x1 = src[i1], x2 = src[i2];
        dst[i1] = x1 * c - x2 * s;
        dst[i2] = x1 * s + x2 * c;
    }
    if (!query) {
        const T* vs = row + (size_t)(hq + hkv + kv) * d;
        T* vd = v_cache + kv * head_stride + (slot + tok) * d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) vd[i] = vs[i];
    }
}

#define KERNELS(SUFFIX, T)                                                                                     \
    extern "C" __global__ void __launch_bounds__(NORM_THREADS) add_rms_norm_##SUFFIX(const T* x, const T* r, const T* w, T* out, int rows,     \
                                                     int h, float eps) {                                       \
        add_rms_norm<T>(x, r, w, out, rows, h, eps);                                                           \
    }                                                                                                          \
    extern "C" __global__ void act_mul_##SUFFIX(const T* gu, T* out, unsigned long long rows, int f, int act) { \
        act_mul<T>(gu, out, rows, f, act);                                                                     \
    }                                                                                                          \
    extern "C" __global__ void rope_append_##SUFFIX(const T* qkv, const T* cos, const T* sin, T* q, T* k_cache, \
                                                    T* v_cache, int n, int hq, int hkv, int d,                 \
                                                    long long head_stride, long long slot, int interleaved) {  \
        rope_append<T>(qkv, cos, sin, q, k_cache, v_cache, n, hq, hkv, d, head_stride, slot, interleaved);    \
    }
KERNELS(f32, float)
KERNELS(bf16, __nv_bfloat16)
KERNELS(f16, __half)
