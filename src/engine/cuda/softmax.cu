// Row softmax over the last dimension of attention scores, with the causal
// mask of a chunk of new tokens applied on the fly: no mask tensor, no extra
// pass over the scores. One block per row; f32 arithmetic for every dtype.
//
// Rows are laid out [kv_head][query_in_group][new_token] (the engine's
// grouped-query layout), so a row's new token is `row % n_new`, and it sees
// every cached slot plus the new tokens up to itself: columns
// `0 ..= t - n_new + row % n_new`.
//
// Compiled by build.rs (nvcc, with the `cuda` feature).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <float.h>

__device__ __forceinline__ float load(float x) { return x; }
__device__ __forceinline__ float load(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float load(__half x) { return __half2float(x); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half(v); }

template <bool IS_MAX>
__device__ float block_reduce(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffff, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : (IS_MAX ? -FLT_MAX : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffff, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    __syncthreads();  // `shared` is reused by the next reduction
    return v;
}

template <typename T>
__device__ void masked_softmax(const T* x, T* y, int t, int n_new, int causal) {
    __shared__ float shared[32];
    const size_t row = blockIdx.x;
    const T* xr = x + row * t;
    T* yr = y + row * t;
    const int limit = causal ? t - n_new + (int)(row % n_new) + 1 : t;
    float m = -FLT_MAX;
    for (int c = threadIdx.x; c < limit; c += blockDim.x) m = fmaxf(m, load(xr[c]));
    m = block_reduce<true>(m, shared);
    float s = 0.f;
    for (int c = threadIdx.x; c < limit; c += blockDim.x) s += expf(load(xr[c]) - m);
    s = block_reduce<false>(s, shared);
    const float inv = 1.f / s;
    for (int c = threadIdx.x; c < t; c += blockDim.x) store(yr + c, c < limit ? expf(load(xr[c]) - m) * inv : 0.f);
}

extern "C" __global__ void masked_softmax_f32(const float* x, float* y, int t, int n_new, int causal) {
    masked_softmax(x, y, t, n_new, causal);
}
extern "C" __global__ void masked_softmax_bf16(const __nv_bfloat16* x, __nv_bfloat16* y, int t, int n_new, int causal) {
    masked_softmax(x, y, t, n_new, causal);
}
extern "C" __global__ void masked_softmax_f16(const __half* x, __half* y, int t, int n_new, int causal) {
    masked_softmax(x, y, t, n_new, causal);
}
