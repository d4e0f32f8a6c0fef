//! From bytes to the raw document: the size bound, JSON syntax, the
//! document's shape, and nothing after it; and from an operation's text to
//! its raw form, when it is compiled. Errors carry the field path the way
//! the rest of the configuration writes it (`operations[0].mode`).
//!
//! Nesting needs no bound of its own here. The schema is at most six levels
//! deep (`operations[i].compare.status_equivalent[j][k]`), every value of
//! the wrong type is refused where it starts, and no field is skipped
//! unread (unknown fields are errors), so the parser never descends past
//! the schema, except where the document's reading scans an operation's
//! text: there serde_json's own recursion limit (128 levels) is the bound,
//! and a document refused there is read again whole, to be refused where
//! the wrong value starts.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::raw::{Object, RawConfig, RawOperation};
use super::ConfigError;
use crate::limits::MAX_CONFIG_BYTES;

/// The raw configuration in `json`, or where and why it is not one. Its
/// operations stay JSON text, checked for syntax only: [`operation`] reads
/// each when it is compiled.
pub(super) fn read(json: &[u8]) -> Result<RawConfig, ConfigError> {
    if json.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            "",
            format!(
                "the configuration is {} bytes, above the limit of {MAX_CONFIG_BYTES} ({} MiB)",
                json.len(),
                MAX_CONFIG_BYTES >> 20
            ),
        ));
    }
    // serde_path_to_error keeps the path of every value as it goes, an
    // allocation per object key: a configuration of 10,000 operations read
    // in about half the time without it. So the document is read plainly,
    // and only one that is refused is read again to say where: that time
    // with its operations read whole, so that a value inside one is refused
    // where it starts, as the operation's own reading does.
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let raw = match Object::<RawConfig>::deserialize(&mut deserializer) {
        Ok(Object(raw)) => raw,
        Err(plain) => {
            let mut strict = serde_json::Deserializer::from_slice(json);
            let refusal =
                match serde_path_to_error::deserialize::<_, Object<RawConfig<Object<RawOperation>>>>(&mut strict) {
                    Err(err) => Refusal::from(err, ""),
                    Ok(_) => Refusal {
                        path: String::new(),
                        err: plain,
                    },
                };
            let Refusal { path, err } = refusal;
            let message = if path.is_empty()
                && !(err.is_syntax() || err.is_eof())
                && json.trim_ascii_start().first() != Some(&b'{')
            {
                "the configuration must be a JSON object".to_string()
            } else {
                strip_position(&err)
            };
            return Err(ConfigError::new(path, message));
        }
    };
    // Whitespace may follow the object; anything else was meant to be part
    // of the configuration, or is garbage: either way not applied silently.
    deserializer
        .end()
        .map_err(|err| ConfigError::new("", format!("{} after the configuration object", strip_position(&err))))?;
    Ok(raw)
}

/// The operation written at `at` (`operations[3]`), from its JSON text
/// (one JSON value, its syntax checked by [`read`]).
pub(super) fn operation(text: &RawValue, at: &str) -> Result<RawOperation, ConfigError> {
    let json = text.get().as_bytes();
    if let Ok(Object(op)) = serde_json::from_slice::<Object<RawOperation>>(json) {
        return Ok(op);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    match serde_path_to_error::deserialize::<_, Object<RawOperation>>(&mut deserializer) {
        Ok(Object(op)) => Ok(op),
        Err(err) => {
            let Refusal { path, err } = Refusal::from(err, at);
            Err(ConfigError::new(path, strip_position(&err)))
        }
    }
}

/// Where (the whole field path) and why a value was refused.
struct Refusal {
    path: String,
    err: serde_json::Error,
}

impl Refusal {
    /// A refusal of a value written at `at`.
    fn from(err: serde_path_to_error::Error<serde_json::Error>, at: &str) -> Refusal {
        Refusal {
            path: below(at, &field_path(err.path())),
            err: err.into_inner(),
        }
    }
}

/// `at` and a path below it: `operations[3]` and `mode`.
fn below(at: &str, path: &str) -> String {
    match (at.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => at.to_string(),
        (false, false) if path.starts_with('[') => format!("{at}{path}"),
        (false, false) => format!("{at}.{path}"),
    }
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
        Some(at) => text.get(..at).unwrap_or(&text).to_string(),
        None => text,
    }
}
