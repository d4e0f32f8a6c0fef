//! From bytes to the raw document: the size bound, JSON syntax, the
//! document's shape, and nothing after it. Errors carry the field path the
//! way the rest of the configuration writes it (`operations[0].mode`).
//!
//! Nesting needs no bound of its own here: the schema is at most six levels
//! deep (`operations[i].compare.status_equivalent[j][k]`), every value of the
//! wrong type is refused where it starts, and no field is skipped unread
//! (unknown fields are errors), so the parser never descends past the
//! schema. serde_json's own recursion limit (128 levels) stays behind it.

use serde::Deserialize;

use super::locate;
use super::raw::{Object, RawConfig};
use super::ConfigError;
use crate::limits::MAX_CONFIG_BYTES;

/// The raw configuration in `json`, or where and why it is not one.
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
    // One parse, keeping no path: a refusal is located afterwards
    // (`locate`), so the derived deserializers exist once in the module.
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let Object(raw) = Object::<RawConfig>::deserialize(&mut deserializer).map_err(|err| {
        let path = locate::field_path(json, &err);
        let message = if path.is_empty()
            && !(err.is_syntax() || err.is_eof())
            && json.trim_ascii_start().first() != Some(&b'{')
        {
            "the configuration must be a JSON object".to_string()
        } else {
            strip_position(&err)
        };
        ConfigError::new(path, message)
    })?;
    // Whitespace may follow the object; anything else was meant to be part
    // of the configuration, or is garbage: either way not applied silently.
    deserializer
        .end()
        .map_err(|err| ConfigError::new("", format!("{} after the configuration object", strip_position(&err))))?;
    Ok(raw)
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
