//! The profile document: what one pruning profile says, and the checks that
//! keep a loaded or hand-edited profile honest.
//!
//! The on-disk layout is documented in `docs/profile-format.md`; any change to
//! a field here must be reflected there.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::fingerprint::ModelFingerprint;
use crate::prune::StrategyKind;

/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 1;

/// Every format version this build can read.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Metric names a calibration may record.
pub const METRICS: &[&str] = &["kl", "nll"];

/// One layer-dependent KV budget, plus enough provenance to tell which model
/// it belongs to and how it was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Layout version of this document; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Version of depthkv that wrote the profile (informational).
    pub tool_version: String,
    /// When the profile was written, RFC 3339 in UTC (`2025-01-31T12:00:00Z`).
    pub created: String,
    /// The model the profile was made for.
    pub model: ModelFingerprint,
    /// How the per-layer fractions were derived (`uniform`, `depthkv`, ...).
    pub strategy: StrategyKind,
    /// The nominal fraction of the KV cache kept overall, in (0, 1].
    pub global_budget: f64,
    /// Fraction of each layer's cache that is kept, one per layer, in (0, 1].
    pub kept_fractions: Vec<f64>,
    /// Measured per-layer sensitivity, when the profile came from calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Vec<LayerSensitivity>>,
    /// How the sensitivity was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationMeta>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Damage from pruning one layer alone, averaged over the calibration
/// prompts, with a bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerSensitivity {
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Settings and cost of the calibration run behind a profile's sensitivity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationMeta {
    /// `eval::prompts::prompt_set_sha256` of the calibration prompts.
    pub prompt_set_sha256: String,
    pub n_prompts: usize,
    /// `kl` (divergence from the unpruned model) or `nll` (of a reference).
    pub metric: String,
    /// Fraction of the cache kept in the one layer being ablated.
    pub ablation_keep: f64,
    /// Tokens scored after the prompt for each measurement.
    pub continuation_tokens: usize,
    /// Token scorer used to decide what is pruned (e.g. `snapkv`).
    pub scorer: String,
    /// Permutation-test p-value for "all layers are equally sensitive".
    pub p_value: f64,
    pub permutations: usize,
    /// Bootstrap resamples behind each confidence interval.
    pub bootstrap: usize,
    /// Wall-clock seconds the calibration took.
    pub seconds: f64,
}

/// The first problem [`Profile::validate`] found.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValidationError {
    #[error("unsupported profile format_version {found} (this build reads {supported})")]
    UnsupportedVersion { found: u64, supported: String },
    #[error("model.n_layers is 0; a profile needs at least one layer")]
    NoLayers,
    #[error("{field} has {len} entries but model.n_layers is {n_layers}")]
    LengthMismatch { field: &'static str, len: usize, n_layers: usize },
    #[error("kept_fractions[{layer}] = {value} is outside (0, 1]")]
    FractionOutOfRange { layer: usize, value: f64 },
    #[error("{field} = {value} is outside {range}")]
    OutOfRange { field: &'static str, value: f64, range: &'static str },
    #[error("sensitivity[{layer}]: {reason}")]
    BadSensitivity { layer: usize, reason: String },
    #[error("{field}: {reason}")]
    BadField { field: &'static str, reason: String },
}

impl Profile {
    /// A fresh profile stamped with this build's format and tool versions and
    /// the current time. Optional parts start empty.
    pub fn new(model: ModelFingerprint, strategy: StrategyKind, global_budget: f64, kept_fractions: Vec<f64>) -> Self {
        Profile {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created: now_rfc3339(),
            model,
            strategy,
            global_budget,
            kept_fractions,
            sensitivity: None,
            calibration: None,
            notes: None,
        }
    }

    /// Unweighted mean of the per-layer kept fractions. With equal-length
    /// layers this is the fraction of the whole cache that is kept, and it
    /// should sit close to `global_budget`.
    pub fn mean_kept_fraction(&self) -> f64 {
        if self.kept_fractions.is_empty() {
            return f64::NAN;
        }
        self.kept_fractions.iter().sum::<f64>() / self.kept_fractions.len() as f64
    }

    /// Check the invariants a consumer relies on; returns the first problem.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_version(u64::from(self.format_version))?;
        if self.created.trim().is_empty() {
            return Err(ValidationError::BadField { field: "created", reason: "must not be empty".into() });
        }
        self.model.validate()?;
        let n_layers = self.model.n_layers;
        if self.kept_fractions.len() != n_layers {
            return Err(ValidationError::LengthMismatch {
                field: "kept_fractions",
                len: self.kept_fractions.len(),
                n_layers,
            });
        }
        for (layer, &value) in self.kept_fractions.iter().enumerate() {
            if !in_unit_interval(value) {
                return Err(ValidationError::FractionOutOfRange { layer, value });
            }
        }
        if !in_unit_interval(self.global_budget) {
            return Err(ValidationError::OutOfRange {
                field: "global_budget",
                value: self.global_budget,
                range: "(0, 1]",
            });
        }
        if let Some(sens) = &self.sensitivity {
            if sens.len() != n_layers {
                return Err(ValidationError::LengthMismatch { field: "sensitivity", len: sens.len(), n_layers });
            }
            for (layer, s) in sens.iter().enumerate() {
                s.validate().map_err(|reason| ValidationError::BadSensitivity { layer, reason })?;
            }
        }
        if let Some(cal) = &self.calibration {
            cal.validate()?;
        }
        Ok(())
    }
}

impl LayerSensitivity {
    fn validate(&self) -> Result<(), String> {
        for (name, v) in [("mean", self.mean), ("ci_low", self.ci_low), ("ci_high", self.ci_high)] {
            if !v.is_finite() {
                return Err(format!("{name} is not a finite number"));
            }
        }
        if self.ci_low > self.ci_high {
            return Err(format!("ci_low {} is above ci_high {}", self.ci_low, self.ci_high));
        }
        Ok(())
    }
}

impl CalibrationMeta {
    fn validate(&self) -> Result<(), ValidationError> {
        if !METRICS.contains(&self.metric.as_str()) {
            return Err(ValidationError::BadField {
                field: "calibration.metric",
                reason: format!("{:?} is not one of {}", self.metric, METRICS.join(", ")),
            });
        }
        if !is_sha256_hex(&self.prompt_set_sha256) {
            return Err(ValidationError::BadField {
                field: "calibration.prompt_set_sha256",
                reason: "must be 64 hexadecimal characters".into(),
            });
        }
        if self.n_prompts == 0 {
            return Err(ValidationError::BadField {
                field: "calibration.n_prompts",
                reason: "must be at least 1".into(),
            });
        }
        if !in_unit_interval(self.ablation_keep) {
            return Err(ValidationError::OutOfRange {
                field: "calibration.ablation_keep",
                value: self.ablation_keep,
                range: "(0, 1]",
            });
        }
        if !in_unit_interval(self.p_value) {
            return Err(ValidationError::OutOfRange {
                field: "calibration.p_value",
                value: self.p_value,
                range: "(0, 1]",
            });
        }
        if !(self.seconds.is_finite() && self.seconds >= 0.0) {
            return Err(ValidationError::OutOfRange {
                field: "calibration.seconds",
                value: self.seconds,
                range: "[0, inf)",
            });
        }
        Ok(())
    }
}

/// Fails unless `found` is a version this build reads.
pub fn check_version(found: u64) -> Result<(), ValidationError> {
    if SUPPORTED_VERSIONS.iter().any(|&v| u64::from(v) == found) {
        Ok(())
    } else {
        let supported = SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
        Err(ValidationError::UnsupportedVersion { found, supported })
    }
}

fn in_unit_interval(v: f64) -> bool {
    v.is_finite() && v > 0.0 && v <= 1.0
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The current time as RFC 3339 UTC with whole seconds.
pub fn now_rfc3339() -> String {
    format_rfc3339_utc(SystemTime::now())
}

/// Format a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds). Times before
/// 1970 are clamped to the epoch; profiles are never written in the past.
pub fn format_rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60)
}

/// Proleptic Gregorian date of the given day count since 1970-01-01.
///
/// Works in 400-year eras (146 097 days each, which repeat exactly) with the
/// year shifted to start on March 1st, so the leap day falls at the end of
/// the shifted year and month lengths follow a simple linear formula.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Day 0 of the shifted calendar is 0000-03-01; 1970-01-01 is 719 468 days later.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    // Day within the era, 0..=146_096.
    let day_of_era = z.rem_euclid(146_097);
    // Years into the era, correcting for the 4-, 100- and 400-year leap rules.
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Shifted months: 0 = March ... 11 = February; lengths 31,30,31,30,31 repeat.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    pub(crate) fn model(n_layers: usize) -> ModelFingerprint {
        ModelFingerprint {
            architecture: "llama".into(),
            n_layers,
            n_kv_heads: 8,
            head_dim: 64,
            weights_sha256: None,
            hub_id: Some("org/model".into()),
            revision: None,
            name: "model".into(),
        }
    }

    fn profile(n_layers: usize) -> Profile {
        Profile::new(model(n_layers), StrategyKind::Uniform, 0.5, vec![0.5; n_layers])
    }

    fn calibration() -> CalibrationMeta {
        CalibrationMeta {
            prompt_set_sha256: "ab".repeat(32),
            n_prompts: 16,
            metric: "kl".into(),
            ablation_keep: 0.1,
            continuation_tokens: 32,
            scorer: "snapkv".into(),
            p_value: 0.001,
            permutations: 999,
            bootstrap: 1000,
            seconds: 12.5,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(format_rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339_utc(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339_utc(at(1_709_251_199)), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339_utc(at(4_107_542_400)), "2100-03-01T00:00:00Z");
        // Before the epoch is clamped.
        assert_eq!(format_rfc3339_utc(UNIX_EPOCH - Duration::from_secs(10)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn civil_dates_advance_one_day_at_a_time() {
        // Walk 1970..~2110 day by day and check the date increments correctly.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for d in 1..51_000 {
            let cur = civil_from_days(d);
            let (y, m, dd) = prev;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if dd < month_len {
                (y, m, dd + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(cur, expected, "day {d}");
            prev = cur;
        }
    }

    #[test]
    fn new_profile_is_valid_and_stamped() {
        let p = profile(4);
        assert_eq!(p.format_version, 1);
        assert_eq!(p.tool_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(p.created.len(), 20);
        assert!(p.created.ends_with('Z'));
        p.validate().unwrap();
        assert!((p.mean_kept_fraction() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn validate_rejects_wrong_lengths() {
        let mut p = profile(4);
        p.kept_fractions.pop();
        assert_eq!(p.validate(), Err(ValidationError::LengthMismatch { field: "kept_fractions", len: 3, n_layers: 4 }));
        let mut p = profile(4);
        p.sensitivity = Some(vec![LayerSensitivity { mean: 1.0, ci_low: 0.5, ci_high: 1.5 }; 5]);
        let err = p.validate().unwrap_err();
        assert_eq!(err.to_string(), "sensitivity has 5 entries but model.n_layers is 4");
    }

    #[test]
    fn validate_rejects_fractions_outside_unit_interval() {
        for bad in [0.0, -0.1, 1.0000001, f64::NAN, f64::INFINITY] {
            let mut p = profile(3);
            p.kept_fractions[2] = bad;
            match p.validate() {
                Err(ValidationError::FractionOutOfRange { layer: 2, .. }) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
        let mut p = profile(3);
        p.kept_fractions = vec![1.0, 1e-6, 0.25];
        p.validate().unwrap();
        p.global_budget = 0.0;
        assert_eq!(p.validate().unwrap_err().to_string(), "global_budget = 0 is outside (0, 1]");
    }

    #[test]
    fn validate_rejects_unsupported_version_and_empty_model() {
        let mut p = profile(2);
        p.format_version = 2;
        assert_eq!(p.validate().unwrap_err().to_string(), "unsupported profile format_version 2 (this build reads 1)");
        let p = Profile::new(model(0), StrategyKind::Uniform, 0.5, vec![]);
        assert_eq!(p.validate(), Err(ValidationError::NoLayers));
    }

    #[test]
    fn validate_checks_sensitivity_and_calibration() {
        let mut p = profile(2);
        p.sensitivity = Some(vec![
            LayerSensitivity { mean: 0.2, ci_low: 0.1, ci_high: 0.3 },
            LayerSensitivity { mean: 0.2, ci_low: 0.4, ci_high: 0.3 },
        ]);
        assert_eq!(p.validate().unwrap_err().to_string(), "sensitivity[1]: ci_low 0.4 is above ci_high 0.3");
        p.sensitivity = None;
        p.calibration = Some(calibration());
        p.validate().unwrap();

        let mut c = calibration();
        c.metric = "ppl".into();
        p.calibration = Some(c);
        assert_eq!(p.validate().unwrap_err().to_string(), "calibration.metric: \"ppl\" is not one of kl, nll");
        let mut c = calibration();
        c.p_value = 0.0;
        p.calibration = Some(c);
        assert!(matches!(p.validate(), Err(ValidationError::OutOfRange { field: "calibration.p_value", .. })));
        let mut c = calibration();
        c.prompt_set_sha256 = "xyz".into();
        p.calibration = Some(c);
        assert!(p.validate().is_err());
    }

    #[test]
    fn optional_parts_are_omitted_and_default_when_absent() {
        let p = profile(1);
        let v = serde_json::to_value(&p).unwrap();
        let obj = v.as_object().unwrap();
        assert!(!obj.contains_key("sensitivity"));
        assert!(!obj.contains_key("calibration"));
        assert!(!obj.contains_key("notes"));
        let back: Profile = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);

        let mut full = profile(2);
        full.calibration = Some(calibration());
        full.notes = Some("hello".into());
        full.sensitivity = Some(vec![LayerSensitivity { mean: 0.5, ci_low: 0.25, ci_high: 0.75 }; 2]);
        let text = serde_json::to_string(&full).unwrap();
        let back: Profile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn strategy_is_typed_and_reads_old_spellings() {
        let mut v = serde_json::to_value(profile(2)).unwrap();
        assert_eq!(v["strategy"], "uniform");
        for (old, kind) in [("depthkv", StrategyKind::DepthKv), ("DepthKV_Rank", StrategyKind::DepthKvRank)] {
            v["strategy"] = old.into();
            let p: Profile = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(p.strategy, kind);
        }
        v["strategy"] = "".into();
        let e = serde_json::from_value::<Profile>(v.clone()).unwrap_err().to_string();
        assert!(e.contains("unknown strategy") && e.contains("depthkv-softmax"), "{e}");
    }
}
