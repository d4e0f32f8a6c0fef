//! The plugin configuration as operators write it, and its validation.
//!
//! Parsing is strict: unknown fields are errors, because a typo in a
//! migration configuration must not pass silently. Every error names the
//! field path and the problem, e.g. `operations[2].path: unbalanced '{'`.
//! A valid configuration is compiled into an immutable [`Plan`].

use std::fmt;

use std::marker::PhantomData;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::compare::json::PointerPattern;
use crate::compare::{CompareRules, HeaderPattern, Mask, NumberTolerance, StatusMatch, UnorderedArray};
use crate::matcher::{parse_template, Matcher};
use crate::plan::{Backend, Mode, Operation, Plan};

pub const DEFAULT_ROUTE_HEADER: &str = "x-parallel-run-cluster";
pub const DEFAULT_MAX_INFLIGHT_SHADOWS: u32 = 256;
pub const DEFAULT_SHADOW_TIMEOUT_MS: u64 = 3000;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
pub const DEFAULT_TARGET_MATCH_RATE: f64 = 0.99;
pub const DEFAULT_MIN_SAMPLES: u64 = 100;
pub const DEFAULT_MAX_DIFF_PATHS: usize = 20;

/// Above this, one shadowed request could hold tens of MiB per side in the VM.
const MAX_BODY_BYTES_LIMIT: u64 = 64 << 20;
const MAX_SHADOW_TIMEOUT_MS: u64 = 600_000;
const MAX_INFLIGHT_LIMIT: u32 = 100_000;
const MAX_DIFF_PATHS_LIMIT: u64 = 500;
/// Each mask is a pass over both bodies.
const MAX_MASKS: usize = 32;

/// A refused configuration: where, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a parallel-run configuration object")]
struct RawConfig {
    revision: Option<String>,
    route_header: Option<String>,
    legacy: RawBackend,
    candidate: RawBackend,
    operation_header: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    max_inflight_shadows: Option<u32>,
    #[serde(default)]
    defaults: RawSettings,
    #[serde(default)]
    operations: Vec<RawOperation>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with \"cluster\" and optionally \"authority\""
)]
struct RawBackend {
    cluster: Option<String>,
    authority: Option<String>,
}

/// What `defaults` may set, and every operation may override.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an object of operation settings")]
struct RawSettings {
    mode: Option<Mode>,
    shadow_percent: Option<f64>,
    #[serde(default, deserialize_with = "whole_number")]
    shadow_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    max_body_bytes: Option<u64>,
    target_match_rate: Option<f64>,
    #[serde(default, deserialize_with = "whole_number")]
    min_samples: Option<u64>,
    shadow_unsafe: Option<bool>,
    noise_percent: Option<f64>,
    learn_noise: Option<bool>,
    #[serde(default, deserialize_with = "whole_number")]
    max_diff_paths: Option<u64>,
    compare: Option<RawCompare>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an operation object with \"id\", \"method\" and \"path\""
)]
struct RawOperation {
    id: String,
    method: String,
    path: String,
    legacy: Option<RawBackend>,
    candidate: Option<RawBackend>,
    // The fields of RawSettings, repeated: serde's `flatten` cannot be
    // combined with `deny_unknown_fields`.
    mode: Option<Mode>,
    shadow_percent: Option<f64>,
    #[serde(default, deserialize_with = "whole_number")]
    shadow_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    max_body_bytes: Option<u64>,
    target_match_rate: Option<f64>,
    #[serde(default, deserialize_with = "whole_number")]
    min_samples: Option<u64>,
    shadow_unsafe: Option<bool>,
    noise_percent: Option<f64>,
    learn_noise: Option<bool>,
    #[serde(default, deserialize_with = "whole_number")]
    max_diff_paths: Option<u64>,
    compare: Option<RawCompare>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "an object of comparison rules (ignore_headers, ignore_json_paths, unordered_arrays, number_tolerance, null_equals_missing, status, status_equivalent, masks)"
)]
struct RawCompare {
    ignore_headers: Option<Vec<String>>,
    ignore_json_paths: Option<Vec<String>>,
    unordered_arrays: Option<Vec<StringOr<RawUnordered>>>,
    number_tolerance: Option<RawTolerance>,
    null_equals_missing: Option<bool>,
    status: Option<StatusMatch>,
    status_equivalent: Option<Vec<Vec<serde_json::Number>>>,
    masks: Option<Vec<StringOr<RawMask>>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, expecting = "an object with \"path\" and optionally \"key\"")]
struct RawUnordered {
    path: String,
    key: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, expecting = "an object with \"absolute\" and/or \"relative\"")]
struct RawTolerance {
    absolute: Option<f64>,
    relative: Option<f64>,
}

#[derive(Deserialize, Clone)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with \"pattern\" and optionally \"name\""
)]
struct RawMask {
    pattern: String,
    name: Option<String>,
}

/// A list entry written either as a string or as an object.
#[derive(Clone)]
enum StringOr<T> {
    Str(String),
    Obj(T),
}

trait Expecting {
    const EXPECTING: &'static str;
}

impl Expecting for RawUnordered {
    const EXPECTING: &'static str = "a JSON Pointer string or an object {\"path\": ..., \"key\": ...}";
}

impl Expecting for RawMask {
    const EXPECTING: &'static str = "a built-in mask name or an object {\"pattern\": ..., \"name\": ...}";
}

impl<'de, T: Deserialize<'de> + Expecting> Deserialize<'de> for StringOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Expecting> Visitor<'de> for EntryVisitor<T> {
            type Value = StringOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(StringOr::Str(value.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(StringOr::Obj)
            }
        }
        deserializer.deserialize_any(EntryVisitor(PhantomData))
    }
}

impl RawOperation {
    /// This operation's own settings, with `defaults` filling the gaps.
    fn settings_over(&self, defaults: &RawSettings) -> RawSettings {
        RawSettings {
            mode: self.mode.or(defaults.mode),
            shadow_percent: self.shadow_percent.or(defaults.shadow_percent),
            shadow_timeout_ms: self.shadow_timeout_ms.or(defaults.shadow_timeout_ms),
            max_body_bytes: self.max_body_bytes.or(defaults.max_body_bytes),
            target_match_rate: self.target_match_rate.or(defaults.target_match_rate),
            min_samples: self.min_samples.or(defaults.min_samples),
            shadow_unsafe: self.shadow_unsafe.or(defaults.shadow_unsafe),
            noise_percent: self.noise_percent.or(defaults.noise_percent),
            learn_noise: self.learn_noise.or(defaults.learn_noise),
            max_diff_paths: self.max_diff_paths.or(defaults.max_diff_paths),
            compare: Some(merge_compare(self.compare.as_ref(), defaults.compare.as_ref())),
        }
    }
}

/// Per field, an operation's value replaces the defaults' value (a list or
/// an object as a whole).
fn merge_compare(own: Option<&RawCompare>, defaults: Option<&RawCompare>) -> RawCompare {
    let own = own.cloned().unwrap_or_default();
    let defaults = defaults.cloned().unwrap_or_default();
    RawCompare {
        ignore_headers: own.ignore_headers.or(defaults.ignore_headers),
        ignore_json_paths: own.ignore_json_paths.or(defaults.ignore_json_paths),
        unordered_arrays: own.unordered_arrays.or(defaults.unordered_arrays),
        number_tolerance: own.number_tolerance.or(defaults.number_tolerance),
        null_equals_missing: own.null_equals_missing.or(defaults.null_equals_missing),
        status: own.status.or(defaults.status),
        status_equivalent: own.status_equivalent.or(defaults.status_equivalent),
        masks: own.masks.or(defaults.masks),
    }
}

/// Parses and validates a plugin configuration, compiling it into a [`Plan`].
pub fn parse(json: &[u8]) -> Result<Plan, ConfigError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(json);
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = field_path(err.path());
        let err = err.into_inner();
        let message = if path.is_empty()
            && !(err.is_syntax() || err.is_eof())
            && json.trim_ascii_start().first() != Some(&b'{')
        {
            // serde would say "invalid length 0, expected ..." for `[]`.
            "the configuration must be a JSON object".to_string()
        } else {
            strip_position(&err)
        };
        ConfigError::new(path, message)
    })?;
    compile(raw)
}

/// `operations[0].mode`, the way this module writes its own paths. Segments
/// serde could not name (inside a syntax error) are left out rather than
/// printed as `?`.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// serde_json appends "at line L column C"; the field path says more, but
/// keep the position for syntax errors, where there is no path.
fn strip_position(err: &serde_json::Error) -> String {
    if err.is_syntax() || err.is_eof() {
        return format!("invalid JSON: {err}");
    }
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn compile(raw: RawConfig) -> Result<Plan, ConfigError> {
    let route_header = match raw.route_header {
        Some(name) => header_name(&name, "route_header")?,
        None => DEFAULT_ROUTE_HEADER.to_string(),
    };
    let operation_header = raw
        .operation_header
        .map(|name| header_name(&name, "operation_header"))
        .transpose()?;
    if operation_header.as_deref() == Some(route_header.as_str()) {
        // The filter overwrites the route header: the operation id would be lost.
        return Err(ConfigError::new(
            "operation_header",
            format!("\"{route_header}\" is also the route_header; they must differ"),
        ));
    }
    let max_inflight_shadows = raw.max_inflight_shadows.unwrap_or(DEFAULT_MAX_INFLIGHT_SHADOWS);
    if max_inflight_shadows == 0 || max_inflight_shadows > MAX_INFLIGHT_LIMIT {
        return Err(ConfigError::new(
            "max_inflight_shadows",
            format!("must be between 1 and {MAX_INFLIGHT_LIMIT}"),
        ));
    }
    let legacy = top_backend(&raw.legacy, "legacy")?;
    let candidate = top_backend(&raw.candidate, "candidate")?;
    // Defaults are validated on their own too, so that an error in them is
    // reported at `defaults.*` and not at the first operation inheriting it.
    check_settings(&raw.defaults, "defaults")?;

    let mut operations = Vec::with_capacity(raw.operations.len());
    let mut matcher = Matcher::default();
    let mut by_id = hashbrown::HashMap::with_capacity(raw.operations.len());
    for (index, op) in raw.operations.iter().enumerate() {
        let at = format!("operations[{index}]");
        let operation = compile_operation(op, &raw.defaults, &legacy, &candidate, &at)?;
        if let Some(first) = by_id.insert(operation.id.clone(), index) {
            return Err(ConfigError::new(
                format!("{at}.id"),
                format!("duplicate id \"{}\" (also operations[{first}])", operation.id),
            ));
        }
        let segments = parse_template(&op.path).map_err(|msg| ConfigError::new(format!("{at}.path"), msg))?;
        if let Err(other) = matcher.insert(&operation.method, &segments, index) {
            return Err(ConfigError::new(
                format!("{at}.path"),
                format!(
                    "{} {} is already matched by operations[{other}] (\"{}\")",
                    operation.method,
                    op.path,
                    operations
                        .get(other)
                        .map(|o: &Operation| o.id.as_str())
                        .unwrap_or_default()
                ),
            ));
        }
        operations.push(operation);
    }

    Ok(Plan {
        revision: raw.revision.unwrap_or_default(),
        route_header,
        operation_header,
        max_inflight_shadows,
        legacy,
        candidate,
        operations,
        matcher,
        by_id,
    })
}

fn compile_operation(
    op: &RawOperation,
    defaults: &RawSettings,
    legacy: &Backend,
    candidate: &Backend,
    at: &str,
) -> Result<Operation, ConfigError> {
    if op.id.is_empty()
        || !op
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            format!("{at}.id"),
            format!(
                "\"{}\" must match [A-Za-z0-9_-]+ (it becomes part of a stats name)",
                op.id
            ),
        ));
    }
    if op.method.is_empty() || !op.method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ConfigError::new(
            format!("{at}.method"),
            format!("\"{}\" is not an upper-case HTTP method such as GET or POST", op.method),
        ));
    }
    let settings = op.settings_over(defaults);
    check_settings(&settings, at)?;
    let mut compare = compile_compare(settings.compare.as_ref(), at)?;
    let max_body_bytes =
        usize::try_from(settings.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)).unwrap_or(usize::MAX);
    // A gzip or deflate body is decoded into no more than a body may be.
    compare.max_decoded_bytes = max_body_bytes;
    Ok(Operation {
        id: op.id.clone(),
        method: op.method.clone(),
        path: op.path.clone(),
        mode: settings.mode.unwrap_or(Mode::Legacy),
        legacy: override_backend(legacy, op.legacy.as_ref(), &format!("{at}.legacy"))?,
        candidate: override_backend(candidate, op.candidate.as_ref(), &format!("{at}.candidate"))?,
        sample_per_million: percent_to_per_million(settings.shadow_percent.unwrap_or(100.0)),
        shadow_timeout_ms: settings.shadow_timeout_ms.unwrap_or(DEFAULT_SHADOW_TIMEOUT_MS),
        max_body_bytes,
        target_match_rate: settings.target_match_rate.unwrap_or(DEFAULT_TARGET_MATCH_RATE),
        min_samples: settings.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES),
        shadow_unsafe: settings.shadow_unsafe.unwrap_or(false),
        noise_per_million: percent_to_per_million(settings.noise_percent.unwrap_or(0.0)),
        learn_noise: settings.learn_noise.unwrap_or(false),
        max_diff_paths: settings
            .max_diff_paths
            .map_or(DEFAULT_MAX_DIFF_PATHS, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        compare,
    })
}

fn check_settings(settings: &RawSettings, at: &str) -> Result<(), ConfigError> {
    if let Some(percent) = settings.noise_percent {
        if !(0.0..=100.0).contains(&percent) {
            return Err(ConfigError::new(
                format!("{at}.noise_percent"),
                format!("{percent} is not between 0 and 100"),
            ));
        }
    }
    // Only checked where the two meet: an operation may switch learning on
    // under defaults that sample.
    if settings.learn_noise == Some(true) && settings.noise_percent.unwrap_or(0.0) == 0.0 && at != "defaults" {
        return Err(ConfigError::new(
            format!("{at}.learn_noise"),
            "needs noise_percent above 0: noise is learned from the requests sent twice to the serving backend",
        ));
    }
    if let Some(limit) = settings.max_diff_paths {
        if limit > MAX_DIFF_PATHS_LIMIT {
            return Err(ConfigError::new(
                format!("{at}.max_diff_paths"),
                format!("{limit} is above the limit of {MAX_DIFF_PATHS_LIMIT} (each path is a stats counter)"),
            ));
        }
    }
    if let Some(percent) = settings.shadow_percent {
        if !(0.0..=100.0).contains(&percent) {
            return Err(ConfigError::new(
                format!("{at}.shadow_percent"),
                format!("{percent} is not between 0 and 100"),
            ));
        }
    }
    if let Some(ms) = settings.shadow_timeout_ms {
        if ms == 0 || ms > MAX_SHADOW_TIMEOUT_MS {
            return Err(ConfigError::new(
                format!("{at}.shadow_timeout_ms"),
                format!("{ms} is not between 1 and {MAX_SHADOW_TIMEOUT_MS}"),
            ));
        }
    }
    if let Some(bytes) = settings.max_body_bytes {
        if bytes > MAX_BODY_BYTES_LIMIT {
            return Err(ConfigError::new(
                format!("{at}.max_body_bytes"),
                format!("{bytes} is above the limit of {MAX_BODY_BYTES_LIMIT}"),
            ));
        }
    }
    if settings.min_samples == Some(0) {
        // A verdict on no comparisons at all would be 0/0.
        return Err(ConfigError::new(format!("{at}.min_samples"), "must be at least 1"));
    }
    if let Some(rate) = settings.target_match_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::new(
                format!("{at}.target_match_rate"),
                format!("{rate} is not a fraction between 0 and 1 (0.95 means 95%)"),
            ));
        }
    }
    if let Some(compare) = &settings.compare {
        compile_compare(Some(compare), at)?;
    }
    Ok(())
}

fn compile_compare(raw: Option<&RawCompare>, at: &str) -> Result<CompareRules, ConfigError> {
    let mut rules = CompareRules::default();
    let Some(raw) = raw else { return Ok(rules) };
    for (i, name) in raw.ignore_headers.iter().flatten().enumerate() {
        let path = format!("{at}.compare.ignore_headers[{i}]");
        let pattern = HeaderPattern::parse(name).map_err(|msg| ConfigError::new(path, msg))?;
        rules.ignore_headers.push(pattern);
    }
    for (i, pointer) in raw.ignore_json_paths.iter().flatten().enumerate() {
        let path = format!("{at}.compare.ignore_json_paths[{i}]");
        let pattern = PointerPattern::parse(pointer).map_err(|msg| ConfigError::new(path, msg))?;
        rules.ignore_json_paths.push(pattern);
    }
    for (i, entry) in raw.unordered_arrays.iter().flatten().enumerate() {
        let at = format!("{at}.compare.unordered_arrays[{i}]");
        let (path, key, path_at) = match entry {
            StringOr::Str(path) => (path, None, at.clone()),
            StringOr::Obj(RawUnordered { path, key }) => (path, key.as_deref(), format!("{at}.path")),
        };
        let path = PointerPattern::parse_location(path).map_err(|msg| ConfigError::new(path_at, msg))?;
        let key = key
            .map(UnorderedArray::parse_key)
            .transpose()
            .map_err(|msg| ConfigError::new(format!("{at}.key"), msg))?;
        rules.unordered_arrays.push(UnorderedArray { path, key });
    }
    if let Some(tolerance) = &raw.number_tolerance {
        let at = format!("{at}.compare.number_tolerance");
        if tolerance.absolute.is_none() && tolerance.relative.is_none() {
            return Err(ConfigError::new(at, "set \"absolute\" and/or \"relative\""));
        }
        for (name, bound) in [("absolute", tolerance.absolute), ("relative", tolerance.relative)] {
            if let Some(bound) = bound {
                if !(bound.is_finite() && bound >= 0.0) {
                    return Err(ConfigError::new(
                        format!("{at}.{name}"),
                        format!("{bound} is not a finite number >= 0"),
                    ));
                }
            }
        }
        rules.number_tolerance = Some(NumberTolerance {
            absolute: tolerance.absolute,
            relative: tolerance.relative,
        });
    }
    rules.null_equals_missing = raw.null_equals_missing.unwrap_or(false);
    rules.status.matching = raw.status.unwrap_or_default();
    for (i, group) in raw.status_equivalent.iter().flatten().enumerate() {
        let at = format!("{at}.compare.status_equivalent[{i}]");
        if group.len() < 2 {
            return Err(ConfigError::new(at, "a group needs at least two status codes"));
        }
        let mut codes = Vec::with_capacity(group.len());
        for (j, number) in group.iter().enumerate() {
            let code = number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (100.0..=599.0).contains(f))
                .map(|f| f as u16)
                .ok_or_else(|| {
                    ConfigError::new(format!("{at}[{j}]"), format!("{number} is not a status code (100-599)"))
                })?;
            if codes.contains(&code) {
                return Err(ConfigError::new(
                    format!("{at}[{j}]"),
                    format!("{code} appears twice in the group"),
                ));
            }
            if let Some(other) = rules.status.equivalent.iter().position(|g| g.contains(&code)) {
                return Err(ConfigError::new(
                    format!("{at}[{j}]"),
                    format!("{code} is already in status_equivalent[{other}]; merge the two groups"),
                ));
            }
            codes.push(code);
        }
        rules.status.equivalent.push(codes);
    }
    let masks = raw.masks.as_deref().unwrap_or_default();
    if masks.len() > MAX_MASKS {
        return Err(ConfigError::new(
            format!("{at}.compare.masks"),
            format!("{} masks, at most {MAX_MASKS} are allowed", masks.len()),
        ));
    }
    for (i, entry) in masks.iter().enumerate() {
        let at = format!("{at}.compare.masks[{i}]");
        let mask = match entry {
            StringOr::Str(name) => Mask::builtin(name).map_err(|msg| ConfigError::new(at, msg))?,
            StringOr::Obj(RawMask { pattern, name }) => {
                let name = name.as_deref().unwrap_or("masked");
                Mask::check_name(name).map_err(|msg| ConfigError::new(format!("{at}.name"), msg))?;
                Mask::custom(name, pattern).map_err(|msg| ConfigError::new(format!("{at}.pattern"), msg))?
            }
        };
        rules.masks.push(mask);
    }
    Ok(rules)
}

fn top_backend(raw: &RawBackend, at: &str) -> Result<Backend, ConfigError> {
    let cluster = match &raw.cluster {
        Some(cluster) => cluster_name(cluster, &format!("{at}.cluster"))?,
        None => return Err(ConfigError::new(format!("{at}.cluster"), "missing field")),
    };
    Ok(Backend {
        cluster,
        authority: raw
            .authority
            .as_deref()
            .map(|a| authority(a, &format!("{at}.authority")))
            .transpose()?,
    })
}

fn override_backend(base: &Backend, own: Option<&RawBackend>, at: &str) -> Result<Backend, ConfigError> {
    let Some(own) = own else { return Ok(base.clone()) };
    Ok(Backend {
        cluster: match &own.cluster {
            Some(cluster) => cluster_name(cluster, &format!("{at}.cluster"))?,
            None => base.cluster.clone(),
        },
        authority: match &own.authority {
            Some(a) => Some(authority(a, &format!("{at}.authority"))?),
            None => base.authority.clone(),
        },
    })
}

fn cluster_name(name: &str, at: &str) -> Result<String, ConfigError> {
    // Envoy cluster names are free-form, but this value travels in a request
    // header: refuse what a header value cannot carry.
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ConfigError::new(at, format!("\"{name}\" is not a valid cluster name")));
    }
    Ok(name.to_string())
}

fn authority(value: &str, at: &str) -> Result<String, ConfigError> {
    if value.is_empty() || value.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'/') {
        return Err(ConfigError::new(at, format!("\"{value}\" is not a host[:port]")));
    }
    Ok(value.to_string())
}

fn header_name(name: &str, at: &str) -> Result<String, ConfigError> {
    if name.is_empty() || !name.bytes().all(crate::http::is_token_byte) {
        return Err(ConfigError::new(at, format!("\"{name}\" is not a valid header name")));
    }
    Ok(name.to_ascii_lowercase())
}

/// Sampling works in parts per million so that 0.5% is expressible.
fn percent_to_per_million(percent: f64) -> u32 {
    // Validated to 0..=100 above, so the product fits.
    (percent * 10_000.0).round() as u32
}

#[cfg(test)]
mod tests;

/// Istio hands `pluginConfig` over as a protobuf Struct, whose numbers are
/// doubles: accept `3000.0` where a whole number is expected, not `3000.5`.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        let float = number.as_f64()?;
        // 2^64 as f64 is exact; at or above it the cast would saturate.
        (float >= 0.0 && float.fract() == 0.0 && float < 18_446_744_073_709_551_616.0).then_some(float as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {number}")))
}
