//! Rotary position embeddings: the inverse frequencies of each scaling type,
//! computed as transformers 5 computes them (`modeling_rope_utils`).

use super::error::{EngineError, Result};

/// A RoPE scaling type and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Scaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_context: f64,
    },
    /// YaRN: per-frequency blend of interpolation and extrapolation, cos/sin scaled.
    Yarn {
        factor: f64,
        original_context: f64,
        beta_fast: f64,
        beta_slow: f64,
        attention_factor: f64,
        truncate: bool,
    },
    /// LongRoPE (Phi-3 `longrope`/`su`): per-frequency divisors, `long` once the
    /// sequence is longer than `original_context`, `short` before.
    LongRope {
        short: Vec<f64>,
        long: Vec<f64>,
        original_context: usize,
        attention_factor: f64,
    },
    /// Per-frequency divisors given directly (GGUF `rope_freqs.weight`, Llama 3).
    Divisors(Vec<f64>),
}

/// One rotary embedding: base, dimension and scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub head_dim: usize,
    pub scaling: Scaling,
}

/// Frequencies for a forward pass: `inv_freq[i]` and the factor cos/sin are multiplied by.
#[derive(Debug, Clone, PartialEq)]
pub struct Frequencies {
    pub inv_freq: Vec<f32>,
    pub attention_factor: f32,
}

impl Rope {
    pub fn plain(theta: f64, head_dim: usize) -> Self {
        Self { theta, head_dim, scaling: Scaling::None }
    }

    /// Checks the numbers that would make every angle NaN or infinite.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::BadConfig(m));
        if !(self.theta.is_finite() && self.theta > 0.0) {
            return bad(format!("rope_theta {} must be a positive number", self.theta));
        }
        let half = self.head_dim / 2;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match &self.scaling {
            Scaling::None => Ok(()),
            Scaling::Linear { factor } if !positive(*factor) => {
                bad(format!("RoPE linear factor {factor} must be positive"))
            }
            Scaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_context } => {
                let ok = [*factor, *low_freq_factor, *high_freq_factor, *original_context].into_iter().all(positive)
                    && high_freq_factor > low_freq_factor;
                if ok {
                    Ok(())
                } else {
                    bad("RoPE llama3 scaling needs positive factors with high_freq_factor > low_freq_factor".into())
                }
            }
            Scaling::Yarn { factor, original_context, .. } if !(positive(*factor) && *original_context > 1.0) => {
                bad("RoPE yarn scaling needs a positive factor and original_max_position_embeddings".into())
            }
            Scaling::LongRope { short, long, original_context, .. } => {
                if short.len() != half || long.len() != half || *original_context == 0 {
                    return bad(format!(
                        "RoPE longrope needs {half} short and long factors and an original context (got {}, {})",
                        short.len(),
                        long.len()
                    ));
                }
                match short.iter().chain(long).all(|&x| positive(x)) {
                    true => Ok(()),
                    false => bad("RoPE longrope factors must be positive".into()),
                }
            }
            Scaling::Divisors(d) if d.len() != half || !d.iter().all(|&x| positive(x)) => {
                bad(format!("rope_freqs must hold {half} positive factors, got {}", d.len()))
            }
            _ => Ok(()),
        }
    }

    /// Computed in f32 as transformers and candle do: the last bits of these
    /// frequencies decide near-ties between logits.
    fn default_inv_freq(&self) -> Vec<f64> {
        let (theta, d) = (self.theta as f32, self.head_dim as f32);
        (0..self.head_dim / 2).map(|i| f64::from(1.0 / theta.powf((2 * i) as f32 / d))).collect()
    }

    /// The frequencies for a sequence whose last position is `seq_len - 1`
    /// (only LongRoPE depends on it, as transformers' does).
    pub fn frequencies(&self, seq_len: usize) -> Frequencies {
        let base = self.default_inv_freq();
        let (inv, factor): (Vec<f64>, f64) = match &self.scaling {
            Scaling::None => (base, 1.0),
            Scaling::Linear { factor } => (base.iter().map(|f| f / factor).collect(), 1.0),
            Scaling::Divisors(d) => (base.iter().zip(d).map(|(f, d)| f / d).collect(), 1.0),
            Scaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_context } => {
                let low_wavelen = original_context / low_freq_factor;
                let high_wavelen = original_context / high_freq_factor;
                let inv = base
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth =
                                (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect();
                (inv, 1.0)
            }
            Scaling::Yarn { factor, original_context, beta_fast, beta_slow, attention_factor, truncate } => {
                let d = self.head_dim as f64;
                let dim_for = |rot: f64| {
                    d * (original_context / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * self.theta.ln())
                };
                let (mut low, mut high) = (dim_for(*beta_fast), dim_for(*beta_slow));
                if *truncate {
                    (low, high) = (low.floor(), high.ceil());
                }
                let (low, mut high) = (low.max(0.0), high.min(d - 1.0));
                if low == high {
                    high += 0.001;
                }
                let inv = base
                    .iter()
                    .enumerate()
                    .map(|(i, &f)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        (f / factor) * (1.0 - extrapolation) + f * extrapolation
                    })
                    .collect();
                (inv, *attention_factor)
            }
            Scaling::LongRope { short, long, original_context, attention_factor } => {
                let ext = if seq_len > *original_context { long } else { short };
                (base.iter().zip(ext).map(|(f, e)| f / e).collect(), *attention_factor)
            }
        };
        Frequencies { inv_freq: inv.into_iter().map(|x| x as f32).collect(), attention_factor: factor as f32 }
    }

    /// Whether the frequencies change with the sequence length.
    pub fn depends_on_length(&self) -> bool {
        matches!(self.scaling, Scaling::LongRope { .. })
    }
}

/// YaRN's default attention factor (`get_mscale`), with DeepSeek's mscale pair.
pub fn yarn_attention_factor(factor: f64, mscale: Option<f64>, mscale_all_dim: Option<f64>) -> f64 {
    let get = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
    match (mscale, mscale_all_dim) {
        (Some(m), Some(a)) if m != 0.0 && a != 0.0 => get(factor, m) / get(factor, a),
        _ => get(factor, 1.0),
    }
}

/// LongRoPE's default attention factor.
pub fn longrope_attention_factor(factor: f64, original_context: usize) -> f64 {
    if factor <= 1.0 {
        1.0
    } else {
        (1.0 + factor.ln() / (original_context as f64).ln()).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_keeps_high_and_divides_low_frequencies() {
        let r = Rope {
            theta: 10000.0,
            head_dim: 16,
            scaling: Scaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_context: 32.0,
            },
        };
        let plain = Rope::plain(10000.0, 16).frequencies(1).inv_freq;
        let f = r.frequencies(1).inv_freq;
        assert_eq!(f[0], plain[0]);
        assert!((f[7] - plain[7] / 8.0).abs() < 1e-9);
    }

    #[test]
    fn longrope_switches_past_the_original_context() {
        let r = Rope {
            theta: 10000.0,
            head_dim: 4,
            scaling: Scaling::LongRope {
                short: vec![1.0, 1.0],
                long: vec![2.0, 4.0],
                original_context: 8,
                attention_factor: 1.5,
            },
        };
        assert_eq!(r.frequencies(8).inv_freq, vec![1.0, 0.01]);
        assert_eq!(r.frequencies(9).inv_freq, vec![0.5, 0.0025]);
        assert_eq!(r.frequencies(9).attention_factor, 1.5);
    }

    #[test]
    fn nonsense_numbers_are_refused() {
        assert!(Rope::plain(-5.0, 8).validate().is_err());
        assert!(Rope::plain(f64::NAN, 8).validate().is_err());
        assert!(Rope { theta: 1e4, head_dim: 8, scaling: Scaling::Linear { factor: 0.0 } }.validate().is_err());
    }
}
