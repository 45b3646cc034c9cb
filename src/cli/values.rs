//! Typed, range-checked flag values. Everything here runs while clap parses
//! the command line, so a bad value is refused before any file is read or a
//! model is loaded, with the valid range in the message.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::engine::device::DeviceChoice;
use crate::engine::flash::AttentionKernel;
use crate::engine::weights::WeightMode;
use crate::engine::KvPrecision;
use crate::eval::tasks::TaskKind;
use crate::prune::{Scorer, StrategyKind};

/// Longest prompt (in tokens) any flag may refer to: far beyond the models
/// depthkv runs, small enough that sizes computed from it cannot overflow.
pub const MAX_TOKENS: usize = 1 << 20;

/// An interval of finite numbers; `open_*` excludes that end.
struct Interval {
    lo: f64,
    hi: f64,
    open_lo: bool,
    open_hi: bool,
}

impl Interval {
    fn parse(&self, s: &str) -> Result<f64, String> {
        let x: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
        let above = if self.open_lo { x > self.lo } else { x >= self.lo };
        let below = if self.open_hi { x < self.hi } else { x <= self.hi };
        if x.is_finite() && above && below {
            Ok(x)
        } else {
            Err(format!("{s} is outside the valid range {}", self.describe()))
        }
    }

    fn describe(&self) -> String {
        let hi = if self.hi == f64::MAX { "∞".to_string() } else { self.hi.to_string() };
        let (l, r) = (if self.open_lo { '(' } else { '[' }, if self.open_hi { ')' } else { ']' });
        format!("{l}{}, {hi}{r}", self.lo)
    }
}

const fn interval(lo: f64, hi: f64, open_lo: bool, open_hi: bool) -> Interval {
    Interval { lo, hi, open_lo, open_hi }
}

/// A global KV budget: fraction of the prompt's cache kept, in (0, 1].
pub fn budget(s: &str) -> Result<f64, String> {
    interval(0.0, 1.0, true, false).parse(s)
}

/// A share in [0, 1] (DepthKV `--mix`, task depths).
pub fn unit(s: &str) -> Result<f64, String> {
    interval(0.0, 1.0, false, false).parse(s)
}

/// DepthKV `--floor`: smallest kept fraction per layer, in [0, 1).
pub fn floor(s: &str) -> Result<f64, String> {
    interval(0.0, 1.0, false, true).parse(s)
}

/// A fraction strictly inside (0, 1) (calibration's ablation keep).
pub fn open_unit(s: &str) -> Result<f64, String> {
    interval(0.0, 1.0, true, true).parse(s)
}

/// A softmax temperature: finite and above 0.
pub fn positive(s: &str) -> Result<f64, String> {
    interval(0.0, f64::MAX, true, false).parse(s)
}

/// Sampling temperature: 0 (greedy) up to 100.
pub fn temperature(s: &str) -> Result<f64, String> {
    interval(0.0, 100.0, false, false).parse(s)
}

/// Nucleus threshold in (0, 1].
pub fn top_p(s: &str) -> Result<f64, String> {
    budget(s)
}

fn count_in(s: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("`{s}` is not a whole number"))?;
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is outside the valid range {lo}..={hi}"))
    }
}

/// Attention sinks: 0 up to [`MAX_TOKENS`].
pub fn sinks(s: &str) -> Result<usize, String> {
    count_in(s, 0, MAX_TOKENS)
}

/// A token count of at least 1 (observation window, task lengths).
pub fn tokens(s: &str) -> Result<usize, String> {
    count_in(s, 1, MAX_TOKENS)
}

/// A token count that may be 0 (tokens to generate or score).
pub fn tokens_or_zero(s: &str) -> Result<usize, String> {
    count_in(s, 0, MAX_TOKENS)
}

/// SnapKV pooling kernel: 1 (no pooling) to 1024.
pub fn kernel(s: &str) -> Result<usize, String> {
    count_in(s, 1, 1024)
}

/// A plot file name: its extension picks the format.
pub fn plot_path(s: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(s);
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" | "svg" => Ok(path),
        _ => Err(format!("{s}: plots are written as .png or .svg; name the file accordingly")),
    }
}

/// A memory size: a number of bytes with an optional unit (B, KB, MB, GB,
/// KiB, MiB, GiB; case-insensitive), e.g. `64MiB`, `1.5GB`, `300000`.
pub fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let x: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not a size (e.g. 64MiB, 1.5GB, 300000)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    let bytes = x * scale;
    if !(bytes.is_finite() && (1.0..=1e15).contains(&bytes)) {
        return Err(format!("`{s}` is outside the valid range [1 B, 1 PB]"));
    }
    Ok(bytes as usize)
}

/// How a layer's budget is shared among its KV heads, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadsArg {
    /// Every head keeps the layer's budget.
    Even,
    /// AdaKV: shared by score, each head keeping a safeguard share.
    Ada,
}

impl ValueEnum for KvPrecision {
    fn value_variants<'a>() -> &'a [Self] {
        &KvPrecision::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(value(&[self.name()]))
    }
}

/// Possible values of a flag: the first name is shown, the rest are accepted aliases.
fn value(names: &[&'static str]) -> PossibleValue {
    PossibleValue::new(names[0]).aliases(names[1..].iter().copied())
}

impl ValueEnum for StrategyKind {
    fn value_variants<'a>() -> &'a [Self] {
        &StrategyKind::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            StrategyKind::DepthKvSoftmax => value(&["depthkv-softmax", "depthkv_softmax"]),
            StrategyKind::DepthKvRank => value(&["depthkv-rank", "depthkv_rank"]),
            other => value(&[other.name()]),
        })
    }
}

impl ValueEnum for Scorer {
    fn value_variants<'a>() -> &'a [Self] {
        &Scorer::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Scorer::SnapKv => value(&["snapkv", "snap-kv", "snap_kv"]),
            Scorer::KeyNorm => value(&["keynorm", "key-norm", "key_norm"]),
            other => value(&[other.name()]),
        })
    }
}

impl ValueEnum for DeviceChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            DeviceChoice::Auto => value(&["auto"]),
            DeviceChoice::Cpu => value(&["cpu"]),
            DeviceChoice::Cuda => value(&["cuda", "gpu"]),
        })
    }
}

impl ValueEnum for WeightMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[WeightMode::Auto, WeightMode::Dequantized, WeightMode::Quantized]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            WeightMode::Auto => value(&["auto"]),
            WeightMode::Dequantized => value(&["dense", "dequantized"]),
            WeightMode::Quantized => value(&["quantized", "quant"]),
        })
    }
}

impl ValueEnum for AttentionKernel {
    fn value_variants<'a>() -> &'a [Self] {
        &[AttentionKernel::Auto, AttentionKernel::Materialized]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            AttentionKernel::Auto => value(&["auto", "flash"]),
            AttentionKernel::Materialized => value(&["materialized"]),
        })
    }
}

impl ValueEnum for TaskKind {
    fn value_variants<'a>() -> &'a [Self] {
        &TaskKind::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            TaskKind::MultiKey => value(&["multikey", "multi-key"]),
            TaskKind::VariableTracking => value(&["vartrack", "variable-tracking"]),
            other => value(&[other.slug()]),
        })
    }
}

/// `--dtype`: the activation and KV dtype on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
    Bf16,
}

impl From<DtypeArg> for candle_core::DType {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => candle_core::DType::F32,
            DtypeArg::F16 => candle_core::DType::F16,
            DtypeArg::Bf16 => candle_core::DType::BF16,
        }
    }
}

/// `profile export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// kvpress `PerLayerCompressionPress` compression ratios.
    Kvpress,
    /// An exact copy of the profile.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_valid_interval() {
        assert_eq!(budget("0.2"), Ok(0.2));
        assert_eq!(budget("1"), Ok(1.0));
        assert_eq!(budget("0").unwrap_err(), "0 is outside the valid range (0, 1]");
        assert_eq!(unit("2").unwrap_err(), "2 is outside the valid range [0, 1]");
        assert_eq!(floor("1").unwrap_err(), "1 is outside the valid range [0, 1)");
        assert_eq!(positive("0").unwrap_err(), "0 is outside the valid range (0, ∞]");
        assert_eq!(temperature("-1").unwrap_err(), "-1 is outside the valid range [0, 100]");
        assert!(temperature("NaN").unwrap_err().contains("outside the valid range"));
        assert!(positive("inf").is_err());
        assert_eq!(top_p("2").unwrap_err(), "2 is outside the valid range (0, 1]");
        assert_eq!(kernel("0").unwrap_err(), "0 is outside the valid range 1..=1024");
        assert_eq!(tokens("1000000000").unwrap_err(), "1000000000 is outside the valid range 1..=1048576");
        assert_eq!(budget("x").unwrap_err(), "`x` is not a number");
        assert!(plot_path("x.gif").is_err() && plot_path("x.SVG").is_ok() && plot_path("png").is_err());
    }

    #[test]
    fn enums_accept_the_old_spellings() {
        assert_eq!(StrategyKind::from_str("depthkv_rank", true), Ok(StrategyKind::DepthKvRank));
        assert_eq!(Scorer::from_str("key_norm", true), Ok(Scorer::KeyNorm));
        assert_eq!(DeviceChoice::from_str("gpu", true), Ok(DeviceChoice::Cuda));
        assert_eq!(WeightMode::from_str("dense", true), Ok(WeightMode::Dequantized));
        assert_eq!(TaskKind::from_str("variable-tracking", true), Ok(TaskKind::VariableTracking));
        for k in StrategyKind::ALL {
            assert_eq!(k.to_possible_value().unwrap().get_name(), k.name());
        }
    }
}
