//! Evidence: a privacy-safe record of one unmatched (or failed) comparison,
//! for an operator who must see *what* differed to tune a rule or fix a
//! bug, in a system whose bodies carry personal data.
//!
//! A record is built only for a comparison the rate limit sampled, so its
//! cost (both bodies decoded, masked and parsed again, then walked) is paid
//! only then. It lists the concrete differing locations (`/items/0/price`,
//! a header name, the status), at most [`MAX_FIELDS`] of them
//! (`fields_omitted` counts exactly how many more differed), and for each,
//! both sides' values *redacted by default*: type, shape, length and a
//! keyed hash ([`siphash`], key = the operator's `hash_key`, never
//! exported), so equal values can be recognised as equal. Raw values only
//! where the operator allowed them ([`RawValues`]); JSON object keys only
//! where `name_keys` allows, written `{}` otherwise, exactly as in diff
//! paths ([`crate::diff_path`]). The record's format is OTLP/HTTP JSON logs
//! ([`otlp`]; README "Evidence").

mod otlp;
pub mod siphash;
mod value;
mod walk;

use std::fmt;

use crate::compare::json::PointerPattern;
use crate::compare::Diff;
use crate::exchange::{CallReply, ServingReply};
use crate::outcome::{Failure, Outcome};
use crate::plan::{Operation, Side};

pub use otlp::{batch, log_record};
pub use value::{shape, Observed, MAX_RAW_VALUE_BYTES};

/// Differing fields listed in one record: enough for every field of a
/// typical difference, bounded so one record stays a few KiB (each field
/// is about 300 bytes of OTLP JSON, 600 with raw values).
pub const MAX_FIELDS: usize = 32;

/// How deep the walk goes into both documents. Past it, a differing
/// subtree is one field. serde_json refuses documents nested deeper than
/// 128 levels, so this is a backstop.
pub const MAX_DEPTH: usize = 128;

/// Two numbers within this relative distance differ by rounding.
pub const ROUNDING: f64 = 1e-6;

/// A request id is the client's: cut to this many bytes, escaped.
const REQUEST_ID_BYTES: usize = 64;

/// `url.path` and `url.query` are cut to this many bytes.
const URL_BYTES: usize = 2048;

/// Which fields' raw values a record may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RawValues {
    /// None: every value is redacted. The default.
    #[default]
    None,
    /// Every field of the operation (`"raw_values": true`).
    All,
    /// JSON fields named by a pattern (itself or any ancestor: `/items`
    /// allows everything under it) and headers by name (lower-case).
    Only {
        json_paths: Vec<PointerPattern>,
        headers: Vec<String>,
    },
}

impl RawValues {
    fn json(&self, tokens: &[&str]) -> bool {
        match self {
            RawValues::None => false,
            RawValues::All => true,
            RawValues::Only { json_paths, .. } => (0..=tokens.len()).any(|n| {
                tokens
                    .get(..n)
                    .is_some_and(|t| json_paths.iter().any(|p| p.matches_tokens(t)))
            }),
        }
    }

    fn header(&self, name: &str) -> bool {
        match self {
            RawValues::None => false,
            RawValues::All => true,
            RawValues::Only { headers, .. } => headers.iter().any(|h| h.eq_ignore_ascii_case(name)),
        }
    }

    /// A body that is not JSON has no fields: only the whole operation's
    /// permission shows it.
    fn body(&self) -> bool {
        *self == RawValues::All
    }
}

/// An operation's evidence settings (`evidence` in `defaults` or an
/// operation), when evidence is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Records per minute for this operation, across the proxy's workers.
    pub records_per_minute: u32,
    /// Failed comparisons are recorded too (else unmatched only).
    pub failed: bool,
    pub raw_values: RawValues,
}

/// The operator's secret for the keyed hash. Its `Debug` never shows it,
/// and nothing exports it: not a record, a log line, a stat or `validate`.
#[derive(Clone, PartialEq, Eq)]
pub struct HashKey(siphash::Key);

impl HashKey {
    /// The 128-bit SipHash key from a secret of any length: SipHash of the
    /// secret under two fixed keys. A secret is at least 16 bytes
    /// (validated), so the key has as much entropy as the secret up to 128
    /// bits.
    pub fn from_secret(secret: &[u8]) -> HashKey {
        let a = siphash::siphash24(siphash::Key::from_bytes(*b"parallel-run:k0."), secret);
        let b = siphash::siphash24(siphash::Key::from_bytes(*b"parallel-run:k1."), secret);
        let mut bytes = [0u8; 16];
        let (low, high) = bytes.split_at_mut(8);
        low.copy_from_slice(&a.to_le_bytes());
        high.copy_from_slice(&b.to_le_bytes());
        HashKey(siphash::Key::from_bytes(bytes))
    }

    pub(crate) fn key(&self) -> &siphash::Key {
        &self.0
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(<secret>)")
    }
}

/// Where records go (`evidence_collector` at the top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    pub cluster: String,
    pub authority: Option<String>,
    pub path: String,
    pub timeout_ms: u64,
    /// POSTs in flight per worker; records wait (bounded) while they are.
    pub max_inflight: u32,
    /// Records per minute across every operation and worker.
    pub records_per_minute: u32,
    pub hash_key: HashKey,
}

pub const DEFAULT_COLLECTOR_PATH: &str = "/v1/logs";
pub const DEFAULT_COLLECTOR_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_COLLECTOR_MAX_INFLIGHT: u32 = 2;
pub const DEFAULT_GLOBAL_RECORDS_PER_MINUTE: u32 = 60;
pub const DEFAULT_RECORDS_PER_MINUTE: u32 = 6;

/// Which axis a field is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Status,
    Header,
    Body,
}

impl Axis {
    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Status => "status",
            Axis::Header => "header",
            Axis::Body => "body",
        }
    }
}

/// What the filter can tell about why a field differs.
#[derive(Debug, Clone, PartialEq)]
pub enum Hint {
    /// The two arrays hold the same elements in another order; `array_key`
    /// is a member unique and scalar in every element, when there is one.
    Permutation { array_key: Option<String> },
    /// Object keys equal but for ASCII case.
    CaseOnly,
    /// Two numbers within [`ROUNDING`] of each other.
    Rounding,
}

/// One differing field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub axis: Axis,
    /// A concrete JSON Pointer with keys shown as `name_keys` allows, a
    /// header name, or `""` (status, a body that is not JSON).
    pub path: String,
    pub serving: Observed,
    pub shadow: Observed,
    pub hint: Option<Hint>,
    /// For two numbers: |a − b| / max(|a|, |b|).
    pub relative_delta: Option<f64>,
}

/// The request a record is about, as far as a record may say.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub request_id: &'a str,
    /// The path with its query, as the shadow copy carried it.
    pub path: &'a str,
    pub time_unix_nano: u64,
}

/// One evidence record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub operation_id: String,
    pub revision: String,
    pub request_id: String,
    /// `unmatched`, `failed_timeout`, `failed_error`, `failed_5xx`,
    /// `failed_body_too_large`.
    pub outcome: &'static str,
    pub serving_side: &'static str,
    pub method: String,
    pub url_path: String,
    /// Parameter names only, `page=&sort=`.
    pub url_query: String,
    pub status_serving: Option<u16>,
    pub status_shadow: Option<u16>,
    pub fields: Vec<Field>,
    pub fields_omitted: u64,
    pub time_unix_nano: u64,
}

impl Record {
    pub fn event_name(&self) -> &'static str {
        if self.outcome == "unmatched" {
            "parallel_run.unmatched"
        } else {
            "parallel_run.failed"
        }
    }
}

/// Whether a comparison's outcome is one the operation records.
pub fn wanted(policy: &Policy, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Unmatched(_) => true,
        Outcome::Failed(_) => policy.failed,
        Outcome::Matched | Outcome::Abandoned => false,
    }
}

/// The record of a comparison: `None` for an outcome that has none
/// (matched, abandoned) or an operation without evidence.
pub fn record(
    operation: &Operation,
    revision: &str,
    key: &HashKey,
    request: &Request<'_>,
    serving: &ServingReply,
    reply: &CallReply,
    outcome: &Outcome,
) -> Option<Record> {
    let policy = operation.settings.evidence.as_ref()?;
    if !wanted(policy, outcome) {
        return None;
    }
    let serving_response = match serving {
        ServingReply::Complete(response) => Some(response),
        ServingReply::TooLarge | ServingReply::Incomplete => None,
    };
    let shadow_response = match reply {
        CallReply::Complete(response) => Some(response),
        _ => None,
    };
    let (path, query) = split_url(request.path);
    let mut record = Record {
        operation_id: operation.id.clone(),
        revision: revision.to_string(),
        request_id: crate::outcome::escaped(request.request_id, REQUEST_ID_BYTES),
        outcome: match outcome {
            Outcome::Failed(Failure::Timeout) => "failed_timeout",
            Outcome::Failed(Failure::Error) => "failed_error",
            Outcome::Failed(Failure::Status5xx) => "failed_5xx",
            Outcome::Failed(Failure::BodyTooLarge) => "failed_body_too_large",
            _ => "unmatched",
        },
        serving_side: match operation.serving().1 {
            Side::Legacy => "legacy",
            Side::Candidate => "candidate",
        },
        method: operation.method.clone(),
        url_path: path,
        url_query: query,
        status_serving: serving_response.map(|r| r.status),
        status_shadow: shadow_response.map(|r| r.status),
        fields: Vec::new(),
        fields_omitted: 0,
        time_unix_nano: request.time_unix_nano,
    };
    if let (Outcome::Unmatched(diff), Some(serving), Some(shadow)) = (outcome, serving_response, shadow_response) {
        let mut fields = walk::Fields::new(MAX_FIELDS);
        differing(operation, policy, key, diff, serving, shadow, &mut fields);
        record.fields_omitted = fields.omitted();
        record.fields = fields.into_listed();
    }
    Some(record)
}

fn differing(
    operation: &Operation,
    policy: &Policy,
    key: &HashKey,
    diff: &Diff,
    serving: &crate::http::Response,
    shadow: &crate::http::Response,
    fields: &mut walk::Fields,
) {
    let key = key.key();
    if diff.status {
        fields.add(|| Field {
            axis: Axis::Status,
            path: String::new(),
            serving: Observed::status(serving.status, key),
            shadow: Observed::status(shadow.status, key),
            hint: None,
            relative_delta: None,
        });
    }
    for name in &diff.headers {
        let raw = policy.raw_values.header(name);
        let side = |response: &crate::http::Response| {
            let values: Vec<String> = response
                .fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect();
            if values.is_empty() {
                Observed::missing()
            } else {
                Observed::text(&values.join(", "), key, raw)
            }
        };
        fields.add(|| Field {
            axis: Axis::Header,
            path: name.clone(),
            serving: side(serving),
            shadow: side(shadow),
            hint: None,
            relative_delta: None,
        });
    }
    if diff.body.is_some() {
        walk::bodies(operation, &policy.raw_values, key, serving, shadow, fields);
    }
}

/// The path, and the query's parameter names with their values dropped.
fn split_url(path_and_query: &str) -> (String, String) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut names = String::new();
    for parameter in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        if !names.is_empty() {
            names.push('&');
        }
        names.push_str(parameter.split_once('=').map_or(parameter, |(name, _)| name));
        names.push('=');
    }
    (bounded(path), bounded(&names))
}

fn bounded(text: &str) -> String {
    let mut end = text.len().min(URL_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests;
