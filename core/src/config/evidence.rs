//! The evidence settings ([`crate::evidence`]): `evidence` in `defaults` or
//! an operation (merged field by field, like `readiness`), and the
//! top-level `evidence_collector`. Evidence is off unless an operation
//! turns it on, and a setting that cannot have an effect is refused: raw
//! values, failed outcomes or a rate for an operation whose evidence is
//! off, a collector no operation sends to, an operation that sends
//! nowhere.

use super::names;
use super::raw::{RawCollector, RawEvidence, RawRawValues};
use super::ConfigError;
use crate::compare::json::PointerPattern;
use crate::evidence::{
    Collector, HashKey, Policy, RawValues, DEFAULT_COLLECTOR_MAX_INFLIGHT, DEFAULT_COLLECTOR_PATH,
    DEFAULT_COLLECTOR_TIMEOUT_MS, DEFAULT_GLOBAL_RECORDS_PER_MINUTE, DEFAULT_RECORDS_PER_MINUTE,
};
use crate::limits::MAX_POINTER_BYTES;

/// Records per minute for one operation: ten a second is more than anyone
/// reads, and each costs a re-parse of both bodies.
pub const MAX_RECORDS_PER_MINUTE: u32 = 600;
/// Records per minute for the whole proxy.
pub const MAX_GLOBAL_RECORDS_PER_MINUTE: u32 = 6_000;
/// POSTs in flight per worker: records are batched, a few suffice.
pub const MAX_COLLECTOR_INFLIGHT: u32 = 16;
/// A collector slower than this is down, as far as evidence goes.
pub const MAX_COLLECTOR_TIMEOUT_MS: u64 = 60_000;
/// The hash key: at least 128 bits, the SipHash key size (16 bytes of a
/// random secret; a longer passphrase is folded into 128 bits); bounded
/// like any input.
pub const MIN_HASH_KEY_BYTES: usize = 16;
pub const MAX_HASH_KEY_BYTES: usize = 256;
/// Entries of `raw_values`.
pub const MAX_RAW_VALUE_FIELDS: usize = 64;
const MAX_PATH_BYTES: usize = 1024;

/// One layer of `evidence`, validated.
#[derive(Debug, Clone, Default)]
pub(super) struct EvidenceLayer {
    enabled: Option<bool>,
    records_per_minute: Option<u32>,
    failed: Option<bool>,
    raw_values: Option<RawValues>,
}

impl EvidenceLayer {
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn compile(raw: Option<RawEvidence>, at: &str) -> Result<EvidenceLayer, ConfigError> {
        let Some(raw) = raw else {
            return Ok(EvidenceLayer::default());
        };
        let field = |name: &str| format!("{at}.evidence.{name}");
        let records_per_minute = raw
            .records_per_minute
            .map(|n| {
                if n == 0 || n > MAX_RECORDS_PER_MINUTE {
                    return Err(ConfigError::new(
                        field("records_per_minute"),
                        format!("{n} is not between 1 and {MAX_RECORDS_PER_MINUTE} (evidence.enabled: false turns evidence off)"),
                    ));
                }
                Ok(n)
            })
            .transpose()?;
        let raw_values = raw
            .raw_values
            .map(|values| raw_values(values, &field("raw_values")))
            .transpose()?;
        Ok(EvidenceLayer {
            enabled: raw.enabled,
            records_per_minute,
            failed: raw.failed,
            raw_values,
        })
    }

    /// The settings this layer writes that only mean something with
    /// evidence on, by field name.
    fn needs_evidence(&self) -> Option<&'static str> {
        if self.raw_values.as_ref().is_some_and(|r| *r != RawValues::None) {
            Some("raw_values")
        } else if self.failed == Some(true) {
            Some("failed")
        } else if self.records_per_minute.is_some() {
            Some("records_per_minute")
        } else {
            None
        }
    }

    /// Whether this layer turns evidence on (`None`: it does not say).
    pub(super) fn enabled(&self) -> Option<bool> {
        self.enabled
    }

    /// The operation's policy over `base`; refuses what this layer sets
    /// that would have no effect (`at`: the operation).
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub(super) fn resolve(&self, base: &EvidenceLayer, at: &str) -> Result<Option<Policy>, ConfigError> {
        let enabled = self.enabled.or(base.enabled).unwrap_or(false);
        if !enabled {
            if let Some(name) = self.needs_evidence() {
                return Err(ConfigError::new(
                    format!("{at}.evidence.{name}"),
                    "evidence is off for this operation (evidence.enabled is not true): this has no effect",
                ));
            }
            return Ok(None);
        }
        Ok(Some(Policy {
            records_per_minute: self
                .records_per_minute
                .or(base.records_per_minute)
                .unwrap_or(DEFAULT_RECORDS_PER_MINUTE),
            failed: self.failed.or(base.failed).unwrap_or(false),
            raw_values: self
                .raw_values
                .clone()
                .or_else(|| base.raw_values.clone())
                .unwrap_or_default(),
        }))
    }

    /// `defaults.evidence` settings no operation can use: refused when no
    /// operation turns evidence on.
    pub(super) fn unused(&self) -> Option<String> {
        self.needs_evidence().map(|name| format!("defaults.evidence.{name}"))
    }
}

fn raw_values(raw: RawRawValues, at: &str) -> Result<RawValues, ConfigError> {
    let entries = match raw {
        RawRawValues::All(true) => return Ok(RawValues::All),
        RawRawValues::All(false) => return Ok(RawValues::None),
        RawRawValues::Only(entries) => entries,
    };
    if entries.len() > MAX_RAW_VALUE_FIELDS {
        return Err(ConfigError::new(
            at,
            format!("{} fields, at most {MAX_RAW_VALUE_FIELDS}", entries.len()),
        ));
    }
    let mut json_paths = Vec::new();
    let mut headers = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if entry.len() > MAX_POINTER_BYTES {
            return Err(ConfigError::new(here, format!("longer than {MAX_POINTER_BYTES} bytes")));
        }
        if entry.starts_with('/') {
            json_paths.push(PointerPattern::parse(entry).map_err(|msg| ConfigError::new(&here, msg))?);
        } else if entry.is_empty() {
            return Err(ConfigError::new(
                here,
                "\"\" would be the whole body: write raw_values: true to allow every field of the operation",
            ));
        } else {
            headers.push(names::header_name(entry, &here).map_err(|err| {
                ConfigError::new(
                    &here,
                    format!(
                        "{}; an entry is a JSON Pointer (\"/items/*/price\") or a header name",
                        err.message
                    ),
                )
            })?);
        }
    }
    Ok(RawValues::Only { json_paths, headers })
}

/// `evidence_collector`, validated. The hash key is never part of an
/// error message.
pub(super) fn collector(raw: RawCollector) -> Result<Collector, ConfigError> {
    const AT: &str = "evidence_collector";
    let field = |name: &str| format!("{AT}.{name}");
    let cluster = match &raw.cluster {
        Some(cluster) => names::cluster_name(cluster, &field("cluster"))?,
        None => return Err(ConfigError::new(field("cluster"), "missing field")),
    };
    let authority = raw
        .authority
        .as_deref()
        .map(|a| names::authority(a, &field("authority")))
        .transpose()?;
    let path = match raw.path {
        None => DEFAULT_COLLECTOR_PATH.to_string(),
        Some(path) => {
            if !path.starts_with('/') || path.len() > MAX_PATH_BYTES || !path.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    field("path"),
                    format!("a request path starting with '/', at most {MAX_PATH_BYTES} bytes of printable ASCII"),
                ));
            }
            path
        }
    };
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_COLLECTOR_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_COLLECTOR_TIMEOUT_MS {
        return Err(ConfigError::new(
            field("timeout_ms"),
            format!("{timeout_ms} is not between 1 and {MAX_COLLECTOR_TIMEOUT_MS}"),
        ));
    }
    let max_inflight = raw.max_inflight.unwrap_or(DEFAULT_COLLECTOR_MAX_INFLIGHT);
    if max_inflight == 0 || max_inflight > MAX_COLLECTOR_INFLIGHT {
        return Err(ConfigError::new(
            field("max_inflight"),
            format!("{max_inflight} is not between 1 and {MAX_COLLECTOR_INFLIGHT}"),
        ));
    }
    let records_per_minute = raw.records_per_minute.unwrap_or(DEFAULT_GLOBAL_RECORDS_PER_MINUTE);
    if records_per_minute == 0 || records_per_minute > MAX_GLOBAL_RECORDS_PER_MINUTE {
        return Err(ConfigError::new(
            field("records_per_minute"),
            format!("{records_per_minute} is not between 1 and {MAX_GLOBAL_RECORDS_PER_MINUTE}"),
        ));
    }
    let hash_key = match &raw.hash_key {
        None => {
            return Err(ConfigError::new(
                field("hash_key"),
                format!(
                    "missing field: a secret of {MIN_HASH_KEY_BYTES} to {MAX_HASH_KEY_BYTES} bytes that keys the hash of redacted values (the same on every replica)"
                ),
            ))
        }
        Some(key) if key.len() < MIN_HASH_KEY_BYTES || key.len() > MAX_HASH_KEY_BYTES => {
            return Err(ConfigError::new(
                field("hash_key"),
                format!(
                    "is {} bytes; a hash key is {MIN_HASH_KEY_BYTES} to {MAX_HASH_KEY_BYTES} bytes",
                    key.len()
                ),
            ))
        }
        Some(key) => HashKey::from_secret(key.as_bytes()),
    };
    Ok(Collector {
        cluster,
        authority,
        path,
        timeout_ms,
        max_inflight,
        records_per_minute,
        hash_key,
    })
}
