//! Operation settings, one layer per place they are written: `defaults`
//! once, and each operation's own. A layer is validated and compiled where
//! it is written, so an error is reported there (`defaults.shadow_percent`,
//! `operations[3].compare.masks[0]`), and the defaults' layer is compiled
//! once however many operations inherit it. An operation's settings are its
//! own layer over the defaults', over the built-in defaults.

use super::evidence::EvidenceLayer;
use super::guards::{BreakerLayer, HeaderRulesLayer, ReadinessLayer};
use super::raw::{RawNameKeys, RawSettings};
use super::rules::RulesLayer;
use super::{
    ConfigError, DEFAULT_MAX_DIFF_PATHS, DEFAULT_MIN_SAMPLES, DEFAULT_SHADOW_TIMEOUT_MS, DEFAULT_TARGET_MATCH_RATE,
};
use crate::diff_path::KeyNames;
use crate::limits::{DEFAULT_MAX_BODY_BYTES, MAX_BODY_BYTES, MAX_DIFF_PATHS, MAX_SHADOW_TIMEOUT_MS};
use crate::plan::{Mode, Settings};

/// One layer, validated; `None` where it sets nothing.
#[derive(Default)]
pub(super) struct Layer {
    pub mode: Option<Mode>,
    /// `shadow_percent` in parts per million.
    pub sample_per_million: Option<u32>,
    pub shadow_timeout_ms: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub target_match_rate: Option<f64>,
    pub min_samples: Option<u64>,
    pub shadow_unsafe: Option<bool>,
    /// `noise_percent` in parts per million.
    pub noise_per_million: Option<u32>,
    pub learn_noise: Option<bool>,
    pub max_diff_paths: Option<usize>,
    pub compare: RulesLayer,
    pub readiness: ReadinessLayer,
    pub circuit_breaker: BreakerLayer,
    pub name_keys: Option<KeyNames>,
    pub shadow_headers: HeaderRulesLayer,
    pub evidence: EvidenceLayer,
    pub auto_promote: Option<bool>,
    pub rollback_below: Option<f64>,
}

impl Layer {
    /// Validates and compiles the settings written at `at`.
    pub(super) fn compile(raw: RawSettings, at: &str) -> Result<Layer, ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        Ok(Layer {
            mode: raw.mode,
            sample_per_million: raw
                .shadow_percent
                .map(|p| percent(p, &field("shadow_percent")))
                .transpose()?,
            shadow_timeout_ms: raw
                .shadow_timeout_ms
                .map(|ms| {
                    if ms == 0 || ms > MAX_SHADOW_TIMEOUT_MS {
                        return Err(ConfigError::new(
                            field("shadow_timeout_ms"),
                            format!("{ms} is not between 1 and {MAX_SHADOW_TIMEOUT_MS}"),
                        ));
                    }
                    Ok(ms)
                })
                .transpose()?,
            max_body_bytes: raw
                .max_body_bytes
                .map(|bytes| {
                    if bytes > MAX_BODY_BYTES {
                        return Err(ConfigError::new(
                            field("max_body_bytes"),
                            format!("{bytes} is above the limit of {MAX_BODY_BYTES}"),
                        ));
                    }
                    Ok(usize::try_from(bytes).unwrap_or(usize::MAX))
                })
                .transpose()?,
            target_match_rate: raw
                .target_match_rate
                .map(|rate| {
                    if !(0.0..=1.0).contains(&rate) {
                        return Err(ConfigError::new(
                            field("target_match_rate"),
                            format!("{rate} is not a fraction between 0 and 1 (0.95 means 95%)"),
                        ));
                    }
                    Ok(rate)
                })
                .transpose()?,
            min_samples: raw
                .min_samples
                .map(|n| {
                    if n == 0 {
                        // A verdict on no comparisons at all would be 0/0.
                        return Err(ConfigError::new(field("min_samples"), "must be at least 1"));
                    }
                    Ok(n)
                })
                .transpose()?,
            shadow_unsafe: raw.shadow_unsafe,
            noise_per_million: raw
                .noise_percent
                .map(|p| percent(p, &field("noise_percent")))
                .transpose()?,
            learn_noise: raw.learn_noise,
            max_diff_paths: raw
                .max_diff_paths
                .map(|limit| {
                    if limit > MAX_DIFF_PATHS {
                        return Err(ConfigError::new(
                            field("max_diff_paths"),
                            format!("{limit} is above the limit of {MAX_DIFF_PATHS} (each path is a stats counter)"),
                        ));
                    }
                    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
                })
                .transpose()?,
            compare: RulesLayer::compile(raw.compare.map(|compare| compare.0), at)?,
            readiness: ReadinessLayer::compile(raw.readiness.map(|r| r.0), at)?,
            circuit_breaker: BreakerLayer::compile(raw.circuit_breaker.map(|b| b.0), at)?,
            name_keys: raw
                .name_keys
                .map(|keys| name_keys(keys, &field("name_keys")))
                .transpose()?,
            shadow_headers: match raw.shadow_headers {
                Some(rules) => HeaderRulesLayer::compile(Some(rules.0), &field("shadow_headers"))?,
                None => HeaderRulesLayer::default(),
            },
            evidence: EvidenceLayer::compile(raw.evidence.map(|e| e.0), at)?,
            auto_promote: raw.auto_promote,
            rollback_below: raw
                .rollback_below
                .map(|rate| {
                    if !(0.0..=1.0).contains(&rate) {
                        return Err(ConfigError::new(
                            field("rollback_below"),
                            format!("{rate} is not a fraction between 0 and 1 (0.95 means 95%)"),
                        ));
                    }
                    Ok(rate)
                })
                .transpose()?,
        })
    }

    /// Each setting from this layer, else from `base`, else built in.
    pub(super) fn resolve(self, base: &Layer, at: &str) -> Result<Settings, ConfigError> {
        let max_body_bytes = self
            .max_body_bytes
            .or(base.max_body_bytes)
            .unwrap_or(usize::try_from(DEFAULT_MAX_BODY_BYTES).unwrap_or(usize::MAX));
        let evidence = self.evidence.resolve(&base.evidence, at)?;
        let key_names = self
            .name_keys
            .clone()
            .or_else(|| base.name_keys.clone())
            .unwrap_or_default();
        Ok(Settings {
            sample_per_million: self.sample_per_million.or(base.sample_per_million).unwrap_or(1_000_000),
            shadow_timeout_ms: self
                .shadow_timeout_ms
                .or(base.shadow_timeout_ms)
                .unwrap_or(DEFAULT_SHADOW_TIMEOUT_MS),
            max_body_bytes,
            target_match_rate: self
                .target_match_rate
                .or(base.target_match_rate)
                .unwrap_or(DEFAULT_TARGET_MATCH_RATE),
            min_samples: self.min_samples.or(base.min_samples).unwrap_or(DEFAULT_MIN_SAMPLES),
            shadow_unsafe: self.shadow_unsafe.or(base.shadow_unsafe).unwrap_or(false),
            noise_per_million: self.noise_per_million.or(base.noise_per_million).unwrap_or(0),
            learn_noise: self.learn_noise.or(base.learn_noise).unwrap_or(false),
            max_diff_paths: self
                .max_diff_paths
                .or(base.max_diff_paths)
                .unwrap_or(DEFAULT_MAX_DIFF_PATHS),
            // A gzip or deflate body is decoded into no more than a body may be.
            compare: self
                .compare
                .over(&base.compare)
                .into_rules(max_body_bytes, key_names.clone()),
            readiness: self.readiness.resolve(&base.readiness),
            circuit_breaker: self.circuit_breaker.resolve(&base.circuit_breaker),
            key_names,
            shadow_headers: self.shadow_headers.resolve(&base.shadow_headers),
            evidence,
            auto_promote: self.auto_promote.or(base.auto_promote),
            rollback_below: self.rollback_below.or(base.rollback_below),
        })
    }
}

/// Keys a diff path may name: each is a stats-name segment, so bounded.
const MAX_NAMED_KEYS: usize = 256;
const MAX_NAMED_KEY_BYTES: usize = 128;

fn name_keys(raw: RawNameKeys, at: &str) -> Result<KeyNames, ConfigError> {
    let keys = match raw {
        RawNameKeys::All(true) => return Ok(KeyNames::All),
        RawNameKeys::All(false) => return Ok(KeyNames::Hidden),
        RawNameKeys::Only(keys) => keys,
    };
    if keys.len() > MAX_NAMED_KEYS {
        return Err(ConfigError::new(
            at,
            format!("{} keys, at most {MAX_NAMED_KEYS}", keys.len()),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        if key.is_empty() || key.len() > MAX_NAMED_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(ConfigError::new(
                format!("{at}[{i}]"),
                format!("a key is 1 to {MAX_NAMED_KEY_BYTES} bytes without control characters"),
            ));
        }
    }
    Ok(KeyNames::Only(keys))
}

/// A percentage (0-100, fractions allowed) in parts per million, so that
/// 0.5% is expressible.
fn percent(value: f64, at: &str) -> Result<u32, ConfigError> {
    if !(0.0..=100.0).contains(&value) {
        return Err(ConfigError::new(at, format!("{value} is not between 0 and 100")));
    }
    Ok((value * 10_000.0).round() as u32)
}
