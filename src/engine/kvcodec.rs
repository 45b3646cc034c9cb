//! How cached keys and values are stored: in the activation dtype, or
//! quantized to 8 or 4 bits with one scale per (head, token).
//!
//! Quantization is symmetric absmax per token and head: `scale = max|x| / q`
//! (q = 127 for int8, 7 for int4) and `x ≈ scale · round(x / scale)`, so the
//! round-trip error of any element is at most `scale / 2`. Codes are stored
//! offset-binary in `u8` (int4: two codes per byte), scales in f32; values
//! are dequantized when attention reads them. Every buffer has the token slot
//! as dimension 2, so the cache grows, gathers and shares them alike.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};

/// Storage precision of cached K and V.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvPrecision {
    /// The activation dtype (f32 on CPU, f16/bf16 on GPUs).
    #[default]
    Native,
    Int8,
    Int4,
}

impl KvPrecision {
    pub const ALL: [KvPrecision; 3] = [KvPrecision::Native, KvPrecision::Int8, KvPrecision::Int4];

    pub fn name(self) -> &'static str {
        match self {
            KvPrecision::Native => "native",
            KvPrecision::Int8 => "int8",
            KvPrecision::Int4 => "int4",
        }
    }

    /// Largest code magnitude.
    fn levels(self) -> f64 {
        match self {
            KvPrecision::Native => 0.0,
            KvPrecision::Int8 => 127.0,
            KvPrecision::Int4 => 7.0,
        }
    }

    /// Bytes one cached token costs in one layer: K and V for every KV head.
    pub fn bytes_per_slot(self, kv_heads: usize, head_dim: usize, native: DType) -> usize {
        let per_vector = match self {
            KvPrecision::Native => head_dim * native.size_in_bytes(),
            KvPrecision::Int8 => head_dim + 4,
            KvPrecision::Int4 => head_dim.div_ceil(2) + 4,
        };
        2 * kv_heads * per_vector
    }

    /// Encodes `[1, heads, n, d]` K and V into this precision's buffers.
    pub fn encode(self, k: &Tensor, v: &Tensor) -> Result<Vec<Tensor>> {
        if self == KvPrecision::Native {
            return Ok(vec![k.contiguous()?, v.contiguous()?]);
        }
        let mut out = self.encode_one(k)?;
        out.extend(self.encode_one(v)?);
        Ok(out)
    }

    fn encode_one(self, x: &Tensor) -> Result<Vec<Tensor>> {
        let d = x.dim(D::Minus1)?;
        if self == KvPrecision::Int4 && d % 2 == 1 {
            return Err(EngineError::BadSelection(format!("int4 KV needs an even head_dim, got {d}")));
        }
        let x = x.to_dtype(DType::F32)?;
        let scale = (x.abs()?.max_keepdim(D::Minus1)? / self.levels())?.clamp(1e-12f32, f32::MAX)?;
        let codes = (x.broadcast_div(&scale)?.round()? + (self.levels() + 1.0))?;
        let bytes = match self {
            KvPrecision::Int4 => {
                let (b, h, n, _) = codes.dims4()?;
                let pairs = codes.reshape((b, h, n, d / 2, 2))?;
                let hi = pairs.narrow(4, 0, 1)?.squeeze(4)?;
                let lo = pairs.narrow(4, 1, 1)?.squeeze(4)?;
                ((hi * 16.0)? + lo)?
            }
            _ => codes,
        };
        Ok(vec![bytes.to_dtype(DType::U8)?, scale])
    }

    /// Decodes buffers made by [`encode`](Self::encode) (possibly narrowed or
    /// gathered) back to K and V in `native`.
    pub fn decode(self, bufs: &[Tensor], native: DType) -> Result<(Tensor, Tensor)> {
        if self == KvPrecision::Native {
            return Ok((bufs[0].clone(), bufs[1].clone()));
        }
        Ok((self.decode_one(&bufs[0], &bufs[1], native)?, self.decode_one(&bufs[2], &bufs[3], native)?))
    }

    fn decode_one(self, bytes: &Tensor, scale: &Tensor, native: DType) -> Result<Tensor> {
        let b = bytes.to_dtype(DType::F32)?;
        let codes = match self {
            KvPrecision::Int4 => {
                let (n0, h, n, half) = b.dims4()?;
                let hi = (b.clone() / 16.0)?.floor()?;
                let lo = (b - (&hi * 16.0)?)?;
                Tensor::stack(&[hi, lo], 4)?.reshape((n0, h, n, half * 2))?
            }
            _ => b,
        };
        Ok((codes - (self.levels() + 1.0))?.broadcast_mul(scale)?.to_dtype(native)?)
    }
}

impl std::fmt::Display for KvPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KvPrecision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| format!("unknown KV precision '{s}'; valid: native, int8, int4"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn sample() -> Tensor {
        let v: Vec<f32> = (0..2 * 5 * 8).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        Tensor::from_vec(v, (1, 2, 5, 8), &Device::Cpu).unwrap()
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let x = sample();
        for p in [KvPrecision::Int8, KvPrecision::Int4] {
            let bufs = p.encode(&x, &x).unwrap();
            let (k, v) = p.decode(&bufs, DType::F32).unwrap();
            let step = (x.abs().unwrap().max_keepdim(3).unwrap() / p.levels()).unwrap();
            for y in [k, v] {
                let err = (y - &x).unwrap().abs().unwrap();
                let excess = err.broadcast_sub(&(step.clone() * 0.5001).unwrap()).unwrap().max_all().unwrap();
                assert!(excess.to_scalar::<f32>().unwrap() <= 1e-6, "{p}: error beyond half a step");
            }
        }
    }

    #[test]
    fn native_is_exact_and_sizes_are_what_is_stored() {
        let x = sample();
        let (k, _) = KvPrecision::Native.decode(&KvPrecision::Native.encode(&x, &x).unwrap(), DType::F32).unwrap();
        let diff = (k - &x).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        let bufs = KvPrecision::Int4.encode(&x, &x).unwrap();
        assert_eq!(bufs[0].dims(), &[1, 2, 5, 4]);
        assert_eq!(bufs[0].dtype(), DType::U8);
        assert_eq!(KvPrecision::Int8.bytes_per_slot(3, 64, DType::BF16), 2 * 3 * 68);
        assert_eq!(KvPrecision::Int4.bytes_per_slot(3, 64, DType::BF16), 2 * 3 * 36);
        assert_eq!(KvPrecision::Native.bytes_per_slot(3, 64, DType::BF16), 2 * 3 * 128);
    }

    #[test]
    fn zero_vectors_stay_zero() {
        let z = Tensor::zeros((1, 1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        for p in [KvPrecision::Int8, KvPrecision::Int4] {
            let (k, _) = p.decode(&p.encode(&z, &z).unwrap(), DType::F32).unwrap();
            assert_eq!(k.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        }
    }
}
