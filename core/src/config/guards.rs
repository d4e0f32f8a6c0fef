//! The settings that guard a migration step: the readiness rule
//! (`readiness`, [`crate::window::Rule`]), the circuit breaker
//! (`circuit_breaker`, [`crate::breaker::Settings`]) and what the copies of
//! a request may carry (`shadow_headers`, [`crate::shadow::HeaderRules`]). Each is an object in
//! `defaults` or an operation, merged field by field: an operation that
//! sets `readiness.window_s` keeps the defaults' `confidence`.

use super::names::header_name;
use super::raw::{RawBreaker, RawHeaderRules, RawReadiness};
use super::ConfigError;
use crate::breaker;
use crate::http::{is_hop_by_hop_or_framing, SHADOW_MARKER_HEADER};
use crate::shadow::HeaderRules;
use crate::window::Rule;

/// Header rules per list: a copy's headers are a request's, bounded.
const MAX_HEADER_RULES: usize = 32;
/// A value the filter writes into every copy; large enough for a token.
const MAX_HEADER_VALUE_BYTES: usize = 8 << 10;

/// A day: a window longer than that keeps comparisons from before most
/// fixes; the filter keeps 60 slots per window whatever its length.
const MAX_WINDOW_S: u64 = 86_400;
/// A week of continuous readiness is more than any cutover should wait.
const MAX_READY_AFTER_S: u64 = 7 * 86_400;
/// Probes are real shadow calls to a backend that was failing.
const MAX_PROBES: u32 = 100;

fn fraction(value: f64, at: &str, open_low: bool) -> Result<f64, ConfigError> {
    let low_ok = if open_low { value > 0.0 } else { value >= 0.0 };
    if !(low_ok && value <= 1.0 && value.is_finite()) {
        let range = if open_low {
            "above 0 and at most 1"
        } else {
            "between 0 and 1"
        };
        return Err(ConfigError::new(at, format!("{value} is not a fraction {range}")));
    }
    Ok(value)
}

fn seconds(value: u64, at: &str, max: u64) -> Result<u64, ConfigError> {
    if value == 0 || value > max {
        return Err(ConfigError::new(
            at,
            format!("{value} is not between 1 and {max} seconds"),
        ));
    }
    Ok(value)
}

/// One layer of `readiness`, validated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReadinessLayer {
    window_s: Option<u64>,
    confidence: Option<f64>,
    max_failure_rate: Option<f64>,
    max_latency_ratio: Option<f64>,
    ready_after_s: Option<u64>,
}

impl ReadinessLayer {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn compile(raw: Option<RawReadiness>, at: &str) -> Result<ReadinessLayer, ConfigError> {
        let Some(raw) = raw else {
            return Ok(ReadinessLayer::default());
        };
        let field = |name: &str| format!("{at}.readiness.{name}");
        Ok(ReadinessLayer {
            window_s: raw
                .window_s
                .map(|s| seconds(s, &field("window_s"), MAX_WINDOW_S))
                .transpose()?,
            confidence: raw
                .confidence
                .map(|c| {
                    if !(0.5..1.0).contains(&c) {
                        return Err(ConfigError::new(
                            field("confidence"),
                            format!("{c} is not a confidence from 0.5 up to (not including) 1, such as 0.95"),
                        ));
                    }
                    Ok(c)
                })
                .transpose()?,
            max_failure_rate: raw
                .max_failure_rate
                .map(|r| fraction(r, &field("max_failure_rate"), false))
                .transpose()?,
            max_latency_ratio: raw
                .max_latency_ratio
                .map(|r| {
                    if !(r.is_finite() && (1.0..=1000.0).contains(&r)) {
                        return Err(ConfigError::new(
                            field("max_latency_ratio"),
                            format!("{r} is not a ratio between 1 and 1000 (candidate p99 / serving p99)"),
                        ));
                    }
                    Ok(r)
                })
                .transpose()?,
            ready_after_s: raw
                .ready_after_s
                .map(|s| {
                    if s > MAX_READY_AFTER_S {
                        return Err(ConfigError::new(
                            field("ready_after_s"),
                            format!("{s} is above {MAX_READY_AFTER_S} seconds"),
                        ));
                    }
                    Ok(s)
                })
                .transpose()?,
        })
    }

    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn resolve(&self, base: &ReadinessLayer) -> Rule {
        let built_in = Rule::default();
        Rule {
            window_s: self.window_s.or(base.window_s).unwrap_or(built_in.window_s),
            confidence: self.confidence.or(base.confidence).unwrap_or(built_in.confidence),
            max_failure_rate: self
                .max_failure_rate
                .or(base.max_failure_rate)
                .unwrap_or(built_in.max_failure_rate),
            max_latency_ratio: self.max_latency_ratio.or(base.max_latency_ratio),
            ready_after_s: self
                .ready_after_s
                .or(base.ready_after_s)
                .unwrap_or(built_in.ready_after_s),
        }
    }
}

/// One layer of `circuit_breaker`, validated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BreakerLayer {
    enabled: Option<bool>,
    failure_rate: Option<f64>,
    min_calls: Option<u64>,
    window_s: Option<u64>,
    cooldown_s: Option<u64>,
    probes: Option<u32>,
}

impl BreakerLayer {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn compile(raw: Option<RawBreaker>, at: &str) -> Result<BreakerLayer, ConfigError> {
        let Some(raw) = raw else {
            return Ok(BreakerLayer::default());
        };
        let field = |name: &str| format!("{at}.circuit_breaker.{name}");
        Ok(BreakerLayer {
            enabled: raw.enabled,
            failure_rate: raw
                .failure_rate
                .map(|r| fraction(r, &field("failure_rate"), true))
                .transpose()?,
            min_calls: raw
                .min_calls
                .map(|n| {
                    if n == 0 {
                        return Err(ConfigError::new(field("min_calls"), "must be at least 1"));
                    }
                    Ok(n)
                })
                .transpose()?,
            window_s: raw
                .window_s
                .map(|s| seconds(s, &field("window_s"), 3_600))
                .transpose()?,
            cooldown_s: raw
                .cooldown_s
                .map(|s| seconds(s, &field("cooldown_s"), 3_600))
                .transpose()?,
            probes: raw
                .probes
                .map(|n| {
                    if n == 0 || n > MAX_PROBES {
                        return Err(ConfigError::new(
                            field("probes"),
                            format!("{n} is not between 1 and {MAX_PROBES}"),
                        ));
                    }
                    Ok(n)
                })
                .transpose()?,
        })
    }

    /// `None` when the breaker is switched off.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn resolve(&self, base: &BreakerLayer) -> Option<breaker::Settings> {
        if !self.enabled.or(base.enabled).unwrap_or(true) {
            return None;
        }
        let built_in = breaker::Settings::default();
        Some(breaker::Settings {
            failure_rate: self.failure_rate.or(base.failure_rate).unwrap_or(built_in.failure_rate),
            min_calls: self.min_calls.or(base.min_calls).unwrap_or(built_in.min_calls),
            window_s: self.window_s.or(base.window_s).unwrap_or(built_in.window_s),
            cooldown_s: self.cooldown_s.or(base.cooldown_s).unwrap_or(built_in.cooldown_s),
            probes: self.probes.or(base.probes).unwrap_or(built_in.probes),
        })
    }
}

/// One layer of `shadow_headers`, validated: each list replaces the
/// defaults' list as a whole (a credential to remove is not inherited
/// piecemeal).
#[derive(Debug, Clone, Default)]
pub(super) struct HeaderRulesLayer {
    remove: Option<Vec<String>>,
    set: Option<Vec<(String, String)>>,
}

/// A header name a rule may touch: not one the filter or Envoy owns in a copy.
fn rule_header(name: &str, at: &str) -> Result<String, ConfigError> {
    let lower = header_name(name, at)?;
    if lower.starts_with(':') || is_hop_by_hop_or_framing(&lower) || lower == SHADOW_MARKER_HEADER {
        return Err(ConfigError::new(
            at,
            format!("\"{lower}\" is set by the filter or Envoy on every copy; a rule cannot change it"),
        ));
    }
    Ok(lower)
}

impl HeaderRulesLayer {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn compile(raw: Option<RawHeaderRules>, at: &str) -> Result<HeaderRulesLayer, ConfigError> {
        let Some(raw) = raw else {
            return Ok(HeaderRulesLayer::default());
        };
        let bounded = |len: usize, list: &str| {
            if len > MAX_HEADER_RULES {
                return Err(ConfigError::new(
                    format!("{at}.{list}"),
                    format!("{len} headers, at most {MAX_HEADER_RULES}"),
                ));
            }
            Ok(())
        };
        let remove = match raw.remove {
            None => None,
            Some(names) => {
                bounded(names.len(), "remove")?;
                let mut out = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    out.push(rule_header(name, &format!("{at}.remove[{i}]"))?);
                }
                Some(out)
            }
        };
        let set = match raw.set {
            None => None,
            Some(values) => {
                bounded(values.len(), "set")?;
                let mut out = Vec::with_capacity(values.len());
                for (name, value) in values {
                    let field = format!("{at}.set.{name}");
                    let lower = rule_header(&name, &field)?;
                    // No CR, LF or NUL: a value must not end the header.
                    if value.len() > MAX_HEADER_VALUE_BYTES || value.chars().any(char::is_control) {
                        return Err(ConfigError::new(
                            field,
                            format!("a value is at most {MAX_HEADER_VALUE_BYTES} bytes without control characters"),
                        ));
                    }
                    out.push((lower, value));
                }
                Some(out)
            }
        };
        Ok(HeaderRulesLayer { remove, set })
    }

    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn resolve(&self, base: &HeaderRulesLayer) -> HeaderRules {
        HeaderRules {
            remove: self.remove.clone().or_else(|| base.remove.clone()).unwrap_or_default(),
            set: self.set.clone().or_else(|| base.set.clone()).unwrap_or_default(),
        }
    }
}
