// Attention without materialized scores, reading each layer's KV cache in place.
//
// Layouts (the engine's grouped-query layout): queries and outputs are
// [kv_head][row][D] with rows = group * n_new laid out [query_in_group][new_token];
// keys and values are [kv_head][slot][D] with a head stride (the cache's
// capacity) and slots contiguous. Row r's new token is r % n_new and, when
// causal, it sees slots 0 .. t - n_new + r % n_new (inclusive).
//
// flash_prefill_*: one block per 64 rows of one KV head; tensor-core products
// (m16n8k16, f32 accumulation) of Q·Kᵀ and P·V tile by tile with an online
// softmax, so a 128K-slot row never exists in memory.
// flash_decode_*: split-K over the slots for the few rows of a decode step
// (one block per KV head and slot range, every query of the group at once),
// then decode_combine_* merges the partial softmaxes.
//
// Compiled by build.rs (nvcc, with the `cuda` feature).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <float.h>
#include <stdint.h>

#define LOG2E 1.4426950408889634f

__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half(v); }

__device__ __forceinline__ uint32_t pack2(float a, float b, const __nv_bfloat16*) {
    __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ uint32_t pack2(float a, float b, const __half*) {
    __half2 v = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1, const __nv_bfloat16*) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1, const __half*) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const void* smem) {
    uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const void* smem) {
    uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    int bytes = valid ? 16 : 0;  // 0 source bytes: the 16 destination bytes are zero-filled
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// ---------------------------------------------------------------- prefill

constexpr int BM = 64;       // query rows per block, 16 per warp
constexpr int BN = 64;       // slots per tile
constexpr int THREADS = 128; // four warps

// Slots [0, limit) are visible to row r.
__device__ __forceinline__ int row_limit(int r, int n_new, int t, int causal) {
    return causal ? t - n_new + (r % n_new) + 1 : t;
}

template <typename T, int D>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int first, int t) {
    constexpr int STRIDE = D + 8;
    constexpr int CHUNKS = BN * D / 8;  // 16-byte pieces
    for (int i = threadIdx.x; i < CHUNKS; i += THREADS) {
        const int row = i / (D / 8), col = (i % (D / 8)) * 8;
        const bool valid = first + row < t;
        // An invalid row reads nothing; the address only has to be mapped.
        cp_async16(dst + row * STRIDE + col, src + (size_t)(valid ? first + row : 0) * D + col, valid);
    }
}

template <typename T, int D>
__device__ void flash_prefill(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                              T* __restrict__ y, int rows, int n_new, int t, long long kv_stride, float scale,
                              int causal) {
    constexpr int STRIDE = D + 8;  // padded rows: conflict-free fragment loads
    // Two buffers each of K and V tiles (dynamic: 69.6 KB at D = 128).
    extern __shared__ __align__(16) unsigned char smem[];
    T* const tiles_k = reinterpret_cast<T*>(smem);          // [2][BN][STRIDE]
    T* const tiles_v = tiles_k + 2 * BN * STRIDE;           // [2][BN][STRIDE]

    const int head = blockIdx.y;
    const int row0 = (gridDim.x - 1 - blockIdx.x) * BM;  // the rows that see most slots start first
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const T* qh = q + (size_t)head * rows * D;
    T* yh = y + (size_t)head * rows * D;
    const T* kh = k + (size_t)head * kv_stride;
    const T* vh = v + (size_t)head * kv_stride;

    int blk_max = 0, blk_min = t;
    for (int i = 0; i < BM && row0 + i < rows; ++i) {
        const int lim = row_limit(row0 + i, n_new, t, causal);
        blk_max = max(blk_max, lim);
        blk_min = min(blk_min, lim);
    }
    const int ra = row0 + warp * 16 + lane / 4, rb = ra + 8;
    const int lim_a = ra < rows ? row_limit(ra, n_new, t, causal) : 0;
    const int lim_b = rb < rows ? row_limit(rb, n_new, t, causal) : 0;

    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        const int c = kk * 16 + (lane % 4) * 2;
        qf[kk][0] = ra < rows ? *reinterpret_cast<const uint32_t*>(qh + (size_t)ra * D + c) : 0u;
        qf[kk][1] = rb < rows ? *reinterpret_cast<const uint32_t*>(qh + (size_t)rb * D + c) : 0u;
        qf[kk][2] = ra < rows ? *reinterpret_cast<const uint32_t*>(qh + (size_t)ra * D + c + 8) : 0u;
        qf[kk][3] = rb < rows ? *reinterpret_cast<const uint32_t*>(qh + (size_t)rb * D + c + 8) : 0u;
    }

    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -FLT_MAX, m_b = -FLT_MAX, l_a = 0.f, l_b = 0.f;
    const float s2 = scale * LOG2E;

    const int tiles = (blk_max + BN - 1) / BN;
    if (tiles > 0) {
        load_tile<T, D>(tiles_k, kh, 0, t);
        load_tile<T, D>(tiles_v, vh, 0, t);
    }
    cp_async_commit();
    for (int tile = 0; tile < tiles; ++tile) {
        const int buf = tile & 1, first = tile * BN;
        if (tile + 1 < tiles) {  // the next tile streams in while this one is computed
            load_tile<T, D>(tiles_k + (buf ^ 1) * BN * STRIDE, kh, first + BN, t);
            load_tile<T, D>(tiles_v + (buf ^ 1) * BN * STRIDE, vh, first + BN, t);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const T* kt = tiles_k + buf * BN * STRIDE;
        const T* vt = tiles_v + buf * BN * STRIDE;

        // Q·Kᵀ: one ldmatrix brings the B fragments of two k-steps (32 head
        // columns of 8 slots), a quarter of the shared-memory instructions of
        // 32-bit loads. Measured on an H200 it did not change the kernel's
        // time: these loads are not what bounds it.
        float s[BN / 8][4];
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
            const T* kr = kt + (j * 8 + (lane & 7)) * STRIDE + (lane >> 3) * 8;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk += 2) {
                uint32_t b[4];
                ldmatrix_x4(b, kr + kk * 16);
                mma(s[j], qf[kk], b[0], b[1], q);
                mma(s[j], qf[kk + 1], b[2], b[3], q);
            }
        }
        // Scale into log2 units and hide what a row may not see.
        const bool masked = first + BN > blk_min;
        float mx_a = -FLT_MAX, mx_b = -FLT_MAX;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int col = first + j * 8 + (lane % 4) * 2 + e;
                s[j][e] = (masked && col >= lim_a) ? -INFINITY : s[j][e] * s2;
                s[j][2 + e] = (masked && col >= lim_b) ? -INFINITY : s[j][2 + e] * s2;
                mx_a = fmaxf(mx_a, s[j][e]);
                mx_b = fmaxf(mx_b, s[j][2 + e]);
            }
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffff, mx_a, off));
            mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffff, mx_b, off));
        }
        const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
        const float alpha_a = exp2f(m_a - new_a), alpha_b = exp2f(m_b - new_b);
        m_a = new_a;
        m_b = new_b;
        float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                s[j][e] = exp2f(s[j][e] - m_a);
                s[j][2 + e] = exp2f(s[j][2 + e] - m_b);
                sum_a += s[j][e];
                sum_b += s[j][2 + e];
            }
        }
        l_a = l_a * alpha_a + sum_a;
        l_b = l_b * alpha_b + sum_b;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
            o[i][0] *= alpha_a;
            o[i][1] *= alpha_a;
            o[i][2] *= alpha_b;
            o[i][3] *= alpha_b;
        }
        // P·V: two score n-tiles form one A fragment (16 slots of k).
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            uint32_t a[4];
            a[0] = pack2(s[2 * kk][0], s[2 * kk][1], q);
            a[1] = pack2(s[2 * kk][2], s[2 * kk][3], q);
            a[2] = pack2(s[2 * kk + 1][0], s[2 * kk + 1][1], q);
            a[3] = pack2(s[2 * kk + 1][2], s[2 * kk + 1][3], q);
            const int slot = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, vt + slot * STRIDE + dp * 16 + (lane >> 4) * 8);
                mma(o[2 * dp], a, b[0], b[1], q);
                mma(o[2 * dp + 1], a, b[2], b[3], q);
            }
        }
        __syncthreads();  // this buffer is refilled two tiles on
    }

#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffff, l_a, off);
        l_b += __shfl_xor_sync(0xffffffff, l_b, off);
    }
    const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
        const int c = i * 8 + (lane % 4) * 2;
        if (ra < rows)
            *reinterpret_cast<uint32_t*>(yh + (size_t)ra * D + c) = pack2(o[i][0] * inv_a, o[i][1] * inv_a, q);
        if (rb < rows)
            *reinterpret_cast<uint32_t*>(yh + (size_t)rb * D + c) = pack2(o[i][2] * inv_b, o[i][3] * inv_b, q);
    }
}

#define PREFILL(NAME, T, D)                                                                                      \
    extern "C" __global__ void __launch_bounds__(THREADS) NAME(const T* q, const T* k, const T* v, T* y, int rows, \
                                                               int n_new, int t, long long kv_stride, float scale,  \
                                                               int causal) {                                        \
        flash_prefill<T, D>(q, k, v, y, rows, n_new, t, kv_stride, scale, causal);                                  \
    }
PREFILL(flash_prefill_bf16_d64, __nv_bfloat16, 64)
PREFILL(flash_prefill_bf16_d128, __nv_bfloat16, 128)
PREFILL(flash_prefill_f16_d64, __half, 64)
PREFILL(flash_prefill_f16_d128, __half, 128)

// ---------------------------------------------------------------- decode

constexpr int WARPS = THREADS / 32;

// The vector type holding N 16-bit elements.
template <int N> struct Vec;
template <> struct Vec<2> { using type = uint32_t; };
template <> struct Vec<4> { using type = uint2; };
template <> struct Vec<8> { using type = uint4; };

// Partial attention of the `group` query rows of one KV head over slots
// [split * per_split, ...): unnormalized output, running max (log2 units)
// and sum. G is `group` rounded up to a power of two (rows past `group` are
// zero and never written): a compile-time row count keeps the loop body
// small, which matters as much as memory here (a body of 200 KB of machine
// code, with the row count a runtime value, ran at a fifth of the speed).
// Each warp walks its own 32-slot chunks with its own online softmax (no
// block-wide barrier in the loop); the four warps merge at the end.
template <typename T, int D, int G>
__device__ void flash_decode(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                             float* __restrict__ part_o, float* __restrict__ part_ml, int group, int t,
                             long long kv_stride, int per_split, float scale) {
    constexpr int LOADS = D / 64;  // 16-byte K loads per lane and slot (eight lanes per slot)
    constexpr int CPL = D / 32;    // output columns per lane
    constexpr int K_PASSES = 4;    // slot quads whose K loads are in flight together
    constexpr int V_ROWS = 16;     // V rows whose loads are in flight together
    __shared__ __align__(16) float qs[G][D];
    __shared__ float merge_o[WARPS][G][D];
    __shared__ float merge_m[WARPS][G], merge_l[WARPS][G];

    const int split = blockIdx.x, head = blockIdx.y, heads = gridDim.y;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, sub = lane % 8, quad = lane / 8;
    const T* kh = k + (size_t)head * kv_stride;
    const T* vh = v + (size_t)head * kv_stride;
    const int first = split * per_split, last = min(t, first + per_split);
    const float s2 = scale * LOG2E;
    for (int i = threadIdx.x; i < G * D; i += THREADS)
        qs[i / D][i % D] = i / D < group ? to_f(q[((size_t)head * group) * D + i]) * s2 : 0.f;
    __syncthreads();

    float m[G], l[G], acc[G][CPL];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        m[g] = -FLT_MAX;
        l[g] = 0.f;
#pragma unroll
        for (int c = 0; c < CPL; ++c) acc[g][c] = 0.f;
    }
    for (int base = first + warp * 32; base < last; base += WARPS * 32) {
        const int valid = min(32, last - base);
        // Scores: pass p scores slots base + 4p .. base + 4p + 3, eight lanes
        // each, and lane j keeps slot j's score. Rows past `valid` read the last
        // valid row again; their scores are never kept.
        float s[G];
#pragma unroll
        for (int g = 0; g < G; ++g) s[g] = -INFINITY;
#pragma unroll 1
        for (int p0 = 0; p0 < 8; p0 += K_PASSES) {
            uint4 kraw[K_PASSES][LOADS];
#pragma unroll
            for (int pp = 0; pp < K_PASSES; ++pp) {
                const T* kr = kh + (size_t)(base + min((p0 + pp) * 4 + quad, valid - 1)) * D;
#pragma unroll
                for (int i = 0; i < LOADS; ++i) kraw[pp][i] = *reinterpret_cast<const uint4*>(kr + (sub + 8 * i) * 8);
            }
#pragma unroll
            for (int pp = 0; pp < K_PASSES; ++pp) {
                float dot[G];
#pragma unroll
                for (int g = 0; g < G; ++g) dot[g] = 0.f;
#pragma unroll
                for (int i = 0; i < LOADS; ++i) {
                    const int c0 = (sub + 8 * i) * 8;
                    const T* x = reinterpret_cast<const T*>(&kraw[pp][i]);
                    float xf[8];
#pragma unroll
                    for (int e = 0; e < 8; ++e) xf[e] = to_f(x[e]);
#pragma unroll
                    for (int g = 0; g < G; ++g) {
                        const float4 a = *reinterpret_cast<const float4*>(&qs[g][c0]);
                        const float4 b = *reinterpret_cast<const float4*>(&qs[g][c0 + 4]);
                        dot[g] += a.x * xf[0] + a.y * xf[1] + a.z * xf[2] + a.w * xf[3] + b.x * xf[4] + b.y * xf[5] +
                                  b.z * xf[6] + b.w * xf[7];
                    }
                }
                const bool mine = lane / 4 == p0 + pp && lane < valid;
#pragma unroll
                for (int g = 0; g < G; ++g) {
                    float d = dot[g];
                    d += __shfl_xor_sync(0xffffffff, d, 1);
                    d += __shfl_xor_sync(0xffffffff, d, 2);
                    d += __shfl_xor_sync(0xffffffff, d, 4);
                    d = __shfl_sync(0xffffffff, d, (lane % 4) * 8);
                    if (mine) s[g] = d;
                }
            }
        }
        // Online softmax per row; the running sum stays per lane until the end.
        float pr[G];
#pragma unroll
        for (int g = 0; g < G; ++g) {
            float mx = s[g];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, off));
            const float m_new = fmaxf(m[g], mx);
            const float alpha = exp2f(m[g] - m_new);
            m[g] = m_new;
            pr[g] = exp2f(s[g] - m_new);
            l[g] = l[g] * alpha + pr[g];
#pragma unroll
            for (int c = 0; c < CPL; ++c) acc[g][c] *= alpha;
        }
        // P·V: lane owns columns lane * CPL ..; slot j's weights come from lane j
        // (zero past `valid`, where the last valid row is read again).
#pragma unroll 1
        for (int j0 = 0; j0 < 32; j0 += V_ROWS) {
            typename Vec<CPL>::type vraw[V_ROWS];
#pragma unroll
            for (int jj = 0; jj < V_ROWS; ++jj)
                vraw[jj] = *reinterpret_cast<const typename Vec<CPL>::type*>(
                    vh + (size_t)(base + min(j0 + jj, valid - 1)) * D + lane * CPL);
#pragma unroll
            for (int jj = 0; jj < V_ROWS; ++jj) {
                const T* x = reinterpret_cast<const T*>(&vraw[jj]);
#pragma unroll
                for (int g = 0; g < G; ++g) {
                    const float pj = __shfl_sync(0xffffffff, pr[g], j0 + jj);
#pragma unroll
                    for (int c = 0; c < CPL; ++c) acc[g][c] += pj * to_f(x[c]);
                }
            }
        }
    }
    // Merge the warps: each writes its state, then the block combines per row and column.
#pragma unroll
    for (int g = 0; g < G; ++g) {
        float lsum = l[g];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) lsum += __shfl_xor_sync(0xffffffff, lsum, off);
        if (lane == 0) {
            merge_m[warp][g] = m[g];
            merge_l[warp][g] = lsum;
        }
#pragma unroll
        for (int c = 0; c < CPL; ++c) merge_o[warp][g][lane * CPL + c] = acc[g][c];
    }
    __syncthreads();
    const size_t row0 = ((size_t)split * heads + head) * group;
    for (int i = threadIdx.x; i < group * D; i += THREADS) {
        const int g = i / D, col = i % D;
        float mx = -FLT_MAX;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) mx = fmaxf(mx, merge_m[w][g]);
        float o = 0.f, lsum = 0.f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) {
            const float f = exp2f(merge_m[w][g] - mx);
            o += merge_o[w][g][col] * f;
            lsum += merge_l[w][g] * f;
        }
        part_o[(row0 + g) * D + col] = o;
        if (col == 0) {
            part_ml[(row0 + g) * 2] = mx;
            part_ml[(row0 + g) * 2 + 1] = lsum;
        }
    }
}

// One block per query row merges the splits' partial softmaxes. Every load
// of a split's state is independent of the others: the reads are spread over
// the block (and unrolled), never a loop of dependent round trips.
constexpr int COMBINE_THREADS = 256;
constexpr int MAX_SPLITS = 1024;

template <bool IS_MAX>
__device__ float block_reduce(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffff, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? shared[lane] : (IS_MAX ? -FLT_MAX : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffff, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    __syncthreads();  // `shared` is reused by the next reduction
    return v;
}

template <typename T, int D>
__device__ void decode_combine(const float* __restrict__ part_o, const float* __restrict__ part_ml, T* __restrict__ y,
                               int splits, int rows) {
    constexpr int GROUPS = COMBINE_THREADS / D;  // splits summed side by side per column
    __shared__ float weight[MAX_SPLITS];
    __shared__ float reduce[32];
    __shared__ float sums[GROUPS][D];
    const int row = blockIdx.x, tid = threadIdx.x;
    float m = -FLT_MAX;
    for (int s = tid; s < splits; s += COMBINE_THREADS) m = fmaxf(m, part_ml[((size_t)s * rows + row) * 2]);
    m = block_reduce<true>(m, reduce);
    float l = 0.f;
    for (int s = tid; s < splits; s += COMBINE_THREADS) {
        const size_t i = (size_t)s * rows + row;
        const float f = exp2f(part_ml[i * 2] - m);
        weight[s] = f;
        l += part_ml[i * 2 + 1] * f;
    }
    l = block_reduce<false>(l, reduce);  // also publishes `weight`
    const int col = tid % D, group = tid / D;
    float o = 0.f;
#pragma unroll 8
    for (int s = group; s < splits; s += GROUPS) o += part_o[((size_t)s * rows + row) * D + col] * weight[s];
    sums[group][col] = o;
    __syncthreads();
    if (group == 0) {
#pragma unroll
        for (int g = 1; g < GROUPS; ++g) o += sums[g][col];
        store(y + (size_t)row * D + col, l > 0.f ? o / l : 0.f);
    }
}

#define DECODE(NAME, T, D, G)                                                                                  \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                         \
        NAME(const T* q, const T* k, const T* v, float* part_o, float* part_ml, int group, int t,                 \
             long long kv_stride, int per_split, float scale) {                                                   \
        flash_decode<T, D, G>(q, k, v, part_o, part_ml, group, t, kv_stride, per_split, scale);                   \
    }
#define DECODE_GROUPS(SUFFIX, T, D)              \
    DECODE(flash_decode_##SUFFIX##_g1, T, D, 1) \
    DECODE(flash_decode_##SUFFIX##_g2, T, D, 2) \
    DECODE(flash_decode_##SUFFIX##_g4, T, D, 4) \
    DECODE(flash_decode_##SUFFIX##_g8, T, D, 8)
#define COMBINE(SUFFIX, T, D)                                                                                     \
    extern "C" __global__ void __launch_bounds__(COMBINE_THREADS)                                                 \
        decode_combine_##SUFFIX(const float* part_o, const float* part_ml, T* y, int splits, int rows) {          \
        decode_combine<T, D>(part_o, part_ml, y, splits, rows);                                                   \
    }
#define DECODE_ALL(SUFFIX, T, D) DECODE_GROUPS(SUFFIX, T, D) COMBINE(SUFFIX, T, D)
DECODE_ALL(bf16_d64, __nv_bfloat16, 64)
DECODE_ALL(bf16_d128, __nv_bfloat16, 128)
DECODE_ALL(bf16_d256, __nv_bfloat16, 256)
DECODE_ALL(f16_d64, __half, 64)
DECODE_ALL(f16_d128, __half, 128)
DECODE_ALL(f16_d256, __half, 256)
