//! Q4_1 matrix products on the CPU with AVX2.
//!
//! candle computes Q4_1 · Q8_1 dot products with its scalar reference loop
//! (it has SIMD kernels for other block types, not this one), and every layer
//! matrix of the default model is Q4_1: that loop made quantized CPU decode
//! slower than dense f32. This kernel gives results bit-identical to candle's,
//! which matters more than it seems: the next layer quantizes its input to
//! 8 bits again, so a last-bit difference here flips whole quantization steps
//! there and grows through the layers. Each block's integer dot product is
//! exact in any order; the activation is quantized as candle does it; and the
//! float accumulation is candle's expression, in candle's block order,
//! evaluated for four weight rows at once in the lanes of one vector.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result, Tensor};
use half::f16;

/// Values per block, for Q4_1 and Q8_1 alike.
const QK: usize = 32;
/// A Q4_1 block: f16 scale, f16 minimum, 16 bytes of 4-bit values.
const Q4_1_BLOCK_BYTES: usize = 20;

/// Most activation rows multiplied block by block; larger products (prefill
/// chunks) dequantize the weight and use the dense GEMM instead.
const MAX_ROWS: usize = 8;

/// One block of the activation, quantized to Q8_1 (scale and scaled sum kept
/// as the f32 values of their f16 forms, which is what the dot product reads).
#[derive(Clone, Copy)]
struct Q8Block {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

/// `x @ w.T` when `w` is a Q4_1 tensor on the CPU and this CPU has AVX2;
/// `None` when the caller should use candle's own product.
pub fn matmul(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    if !applicable(w, x) {
        return Ok(None);
    }
    let (n, k) = w.shape().dims2()?;
    let dims = x.dims();
    let m = x.elem_count() / k;
    if m > MAX_ROWS {
        // A prefill chunk: a dense GEMM on the dequantized weight beats
        // per-row dot products by far, and keeps the activations exact.
        let dense = w.dequantize(&Device::Cpu)?;
        return Ok(Some(x.broadcast_matmul(&dense.t()?)?));
    }
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let data = w.data()?;
    let mut out = vec![0f32; m * n];
    // SAFETY: `applicable` checked AVX2 and that k is a whole number of blocks;
    // `data` holds n rows of k / QK blocks.
    unsafe { avx2::matmul(&data, &xs, (m, k, n), &mut out) };
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("x has a last dimension") = n;
    Ok(Some(Tensor::from_vec(out, shape, &Device::Cpu)?))
}

fn applicable(w: &QTensor, x: &Tensor) -> bool {
    let fits = w.dtype() == GgmlDType::Q4_1
        && w.device().is_cpu()
        && x.dtype() == DType::F32
        && w.shape().dims2().is_ok_and(|(_, k)| k % QK == 0 && x.dims().last() == Some(&k));
    fits && has_avx2()
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Quantizes one row of `k` floats to Q8_1 exactly as candle's `BlockQ8_1::from_float`.
fn quantize_row(xs: &[f32], out: &mut Vec<Q8Block>) {
    for block in xs.chunks_exact(QK) {
        let amax = block.iter().fold(0f32, |a, &x| a.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, &x) in qs.iter_mut().zip(block) {
            *q = (x * id).round() as i8;
            sum += i32::from(*q);
        }
        let d16 = f16::from_f32(d);
        let s16 = f16::from_f32(sum as f32) * d16;
        out.push(Q8Block { d: d16.to_f32(), s: s16.to_f32(), qs });
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    pub unsafe fn matmul(_: &[u8], _: &[f32], _: (usize, usize, usize), _: &mut [f32]) {
        unreachable!("has_avx2() is false off x86_64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{quantize_row, Q8Block, Q4_1_BLOCK_BYTES, QK};
    use std::arch::x86_64::*;

    /// A raw pointer the pool's workers may share: each writes disjoint columns.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}

    /// `out[m][n] = x[m] · w[n]`, output columns split across candle's CPU pool
    /// in groups of four that share each activation block's load.
    ///
    /// # Safety
    /// The CPU has AVX2, `k` is a multiple of 32, `w` holds `n * k / 32`
    /// Q4_1 blocks, `x` holds `m * k` floats and `out` `m * n`.
    pub unsafe fn matmul(w: &[u8], x: &[f32], (m, k, n): (usize, usize, usize), out: &mut [f32]) {
        let nb = k / QK;
        let mut xq = Vec::with_capacity(m * nb);
        for row in x.chunks_exact(k) {
            quantize_row(row, &mut xq);
        }
        let row_bytes = nb * Q4_1_BLOCK_BYTES;
        let dst = Out(out.as_mut_ptr());
        let xq = &xq;
        candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(4), move |groups| {
            let dst = dst;
            for group in groups {
                let first = group * 4;
                let cols = (n - first).min(4);
                let rows: [&[u8]; 4] = std::array::from_fn(|c| {
                    let col = first + c.min(cols - 1);
                    &w[col * row_bytes..(col + 1) * row_bytes]
                });
                for r in 0..m {
                    // SAFETY: the caller's guarantees; these outputs belong to this group only.
                    let dots = unsafe { dot4(rows, &xq[r * nb..(r + 1) * nb]) };
                    for (c, d) in dots.iter().take(cols).enumerate() {
                        unsafe { *dst.0.add(r * n + first + c) = *d };
                    }
                }
            }
        });
    }

    /// Four rows of Q4_1 blocks against one row of Q8_1 blocks; lane `c` of
    /// every vector belongs to row `c`.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn dot4(w: [&[u8]; 4], x: &[Q8Block]) -> [f32; 4] {
        let mut sumf = _mm_setzero_ps();
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        for (b, xb) in x.iter().enumerate() {
            let xv = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
            let block = |c: usize| &w[c][b * Q4_1_BLOCK_BYTES..(b + 1) * Q4_1_BLOCK_BYTES];
            let isum = |c: usize| {
                let packed = _mm_loadu_si128(block(c)[4..].as_ptr() as *const __m128i);
                let lo = _mm_and_si128(packed, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
                // Low nibbles hold values 0..16 and high nibbles 16..32 (ggml's layout);
                // u8 × i8 pairs sum exactly in i16 (at most 2 · 15 · 128), then in i32.
                _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set_m128i(hi, lo), xv), ones)
            };
            // Horizontal sums of the four rows' eight partial sums, as lanes 0..4.
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(isum(0), isum(1)), _mm256_hadd_epi32(isum(2), isum(3)));
            let sumi = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            // The four rows' f16 scales (d) and minimums (m), converted in one
            // instruction (exact, as the scalar conversion is).
            let half = |c: usize, at: usize| i16::from_le_bytes([block(c)[at], block(c)[at + 1]]);
            let dm = _mm256_cvtph_ps(_mm_setr_epi16(
                half(0, 0),
                half(1, 0),
                half(2, 0),
                half(3, 0),
                half(0, 2),
                half(1, 2),
                half(2, 2),
                half(3, 2),
            ));
            let (d, m) = (_mm256_castps256_ps128(dm), _mm256_extractf128_ps(dm, 1));
            // candle: sumf += sumi as f32 * d4 * d8 + m4 * s8 (no fused multiply-add).
            let scaled = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(sumi), d), _mm_set1_ps(xb.d));
            sumf = _mm_add_ps(sumf, _mm_add_ps(scaled, _mm_mul_ps(m, _mm_set1_ps(xb.s))));
        }
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), sumf);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::Module;

    /// Bit-identical to candle's own Q4_1 product, for decode (one row) and
    /// a few rows, with column counts that are and are not multiples of four,
    /// on heavy-tailed activations like a real residual stream's.
    #[test]
    fn equals_candles_q4_1_product_bit_for_bit() {
        if !has_avx2() {
            eprintln!("no AVX2 on this CPU: the kernel is not used here");
            return;
        }
        let dev = Device::Cpu;
        for (m, k, n) in [(1, 576, 192), (1, 1536, 576), (7, 64, 33), (3, 576, 1538), (MAX_ROWS, 64, 5)] {
            let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap();
            let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
            let tails = Tensor::randn(0f32, 2.0, (1, m, k), &dev).unwrap().exp().unwrap();
            let x = (Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap() * tails).unwrap();
            let ours = matmul(&q, &x).unwrap().expect("applicable");
            let theirs = QMatMul::from_qtensor(q).unwrap().forward(&x).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let differing = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differing, 0, "({m},{k},{n}): {differing} of {} outputs differ", a.len());
        }
    }

    /// Prefill-sized products use the exact dequantized weight with f32
    /// activations, so they equal a dense product of the dequantized matrix.
    #[test]
    fn prefill_chunks_use_the_dequantized_weight() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (40, 64), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, MAX_ROWS + 1, 64), &dev).unwrap();
        let Some(ours) = matmul(&q, &x).unwrap() else {
            assert!(!has_avx2(), "with AVX2 the kernel must take Q4_1 products");
            return;
        };
        let dense = x.broadcast_matmul(&q.dequantize(&dev).unwrap().t().unwrap()).unwrap();
        let d = (ours - dense).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn other_types_and_devices_are_left_to_candle() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (8, 64), &dev).unwrap();
        let q8 = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 64), &dev).unwrap();
        assert!(matmul(&q8, &x).unwrap().is_none());
        let q4 = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        assert!(matmul(&q4, &x.to_dtype(DType::F16).unwrap()).unwrap().is_none());
    }
}
