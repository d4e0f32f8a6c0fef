//! The ECDS resource file Envoy watches: where the plugin configuration sits
//! in it, how to rewrite it without disturbing the rest, and how to replace
//! the file so that Envoy sees one complete new version.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the plugin JSON sits in the resource, for messages.
pub const VALUE_PATH: &str = "resources[0].typed_config.config.configuration.value";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// Puts `config` into the resource's configuration string and returns the
/// string it replaces (`None` when there was none). Errors name the field.
pub fn replace_config(document: &mut Value, config: &str) -> Result<Option<String>, String> {
    let resource = document
        .get_mut("resources")
        .ok_or("resources: missing")?
        .as_array_mut()
        .ok_or("resources: not an array")?
        .first_mut()
        .ok_or("resources: empty, expected the parallel-run filter resource")?;
    let wasm = object_at(resource, "typed_config", "resources[0].typed_config")?;
    let wasm_config = object_at(wasm, "config", "resources[0].typed_config.config")?;
    let configuration = wasm_config
        .as_object_mut()
        .ok_or("resources[0].typed_config.config: not an object")?
        .entry("configuration")
        .or_insert_with(|| serde_json::json!({ "@type": STRING_VALUE }))
        .as_object_mut()
        .ok_or("resources[0].typed_config.config.configuration: not an object")?;
    match configuration.get("@type").and_then(Value::as_str) {
        Some(STRING_VALUE) => {}
        other => {
            return Err(format!(
                "resources[0].typed_config.config.configuration.@type: {} instead of {STRING_VALUE}",
                other.map_or_else(|| "missing".to_string(), |t| format!("{t:?}"))
            ))
        }
    }
    let old = configuration.insert("value".to_string(), Value::String(config.to_string()));
    Ok(old.and_then(|v| v.as_str().map(String::from)))
}

/// The plugin configuration string in a resource document. Errors name the field.
pub fn read_config(document: &Value) -> Result<&str, String> {
    document
        .pointer("/resources/0/typed_config/config/configuration/value")
        .ok_or_else(|| format!("{VALUE_PATH}: missing"))?
        .as_str()
        .ok_or_else(|| format!("{VALUE_PATH}: not a string"))
}

/// `parent[key]`, which must be an object.
fn object_at<'a>(parent: &'a mut Value, key: &str, path: &str) -> Result<&'a mut Value, String> {
    let child = parent.get_mut(key).ok_or_else(|| format!("{path}: missing"))?;
    if !child.is_object() {
        return Err(format!("{path}: not an object"));
    }
    Ok(child)
}

/// The new file text. The operator's layout is kept when the old
/// configuration string can be swapped in place (checked by re-parsing);
/// otherwise the whole document is pretty-printed.
pub fn render(original: &str, old_config: Option<&str>, updated: &Value) -> Result<String, String> {
    if let Some(text) = old_config.and_then(|old| swap_in_place(original, old, updated)) {
        return Ok(text);
    }
    let mut text = serde_json::to_string_pretty(updated).map_err(|err| format!("cannot serialise: {err}"))?;
    text.push('\n');
    Ok(text)
}

fn swap_in_place(original: &str, old_config: &str, updated: &Value) -> Option<String> {
    let old_literal = serde_json::to_string(old_config).ok()?;
    if original.matches(&old_literal).count() != 1 {
        return None;
    }
    let new_config = updated
        .pointer("/resources/0/typed_config/config/configuration/value")?
        .as_str()?;
    let new_literal = serde_json::to_string(new_config).ok()?;
    let text = original.replacen(&old_literal, &new_literal, 1);
    let reparsed: Value = serde_json::from_str(&text).ok()?;
    (reparsed == *updated).then_some(text)
}

/// Compact JSON with the operator's key order: whitespace outside strings
/// dropped. `json` must be valid JSON; the result is checked against it.
pub fn compact(json: &str) -> Result<String, String> {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    let original: Value = serde_json::from_str(json).map_err(|err| format!("invalid JSON: {err}"))?;
    match serde_json::from_str::<Value>(&out) {
        Ok(compacted) if compacted == original => Ok(out),
        // Cannot happen for valid JSON; fall back to serde's own form.
        _ => serde_json::to_string(&original).map_err(|err| format!("cannot serialise: {err}")),
    }
}

/// Replaces `path` with `contents` in one rename, so a watcher (Envoy's
/// ECDS file watch reacts to the rename) never reads a half-written file.
/// The temporary file is a dot file next to `path`, removed on failure.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file path", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp: PathBuf = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(contents)?;
        if let Ok(metadata) = fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(err) = result {
        // Best effort: the temp file may not even exist.
        let _ = fs::remove_file(&temp);
        return Err(format!(
            "{}: cannot write (via {}): {err}",
            path.display(),
            temp.display()
        ));
    }
    // Make the rename durable; not all platforms can sync a directory.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(value: Value) -> Value {
        json!({"resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "parallel-run",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {"root_id": "parallel_run", "configuration": {"@type": STRING_VALUE, "value": value}}
            }
        }]})
    }

    #[test]
    fn the_configuration_string_is_replaced_and_the_rest_kept() {
        let mut doc = resource(json!("{\"old\":1}"));
        let old = replace_config(&mut doc, "{\"new\":2}").unwrap();
        assert_eq!(old.as_deref(), Some("{\"old\":1}"));
        assert_eq!(doc, resource(json!("{\"new\":2}")));
    }

    #[test]
    fn a_missing_or_non_string_value_is_reported_as_none() {
        let mut doc = resource(json!({"not": "a string"}));
        assert_eq!(replace_config(&mut doc, "{}").unwrap(), None);
        assert_eq!(doc, resource(json!("{}")));

        let mut doc = resource(json!(null));
        doc["resources"][0]["typed_config"]["config"]
            .as_object_mut()
            .unwrap()
            .remove("configuration");
        assert_eq!(replace_config(&mut doc, "{}").unwrap(), None);
        assert_eq!(doc, resource(json!("{}")));
    }

    #[test]
    fn the_configuration_string_is_read() {
        assert_eq!(read_config(&resource(json!("{\"a\":1}"))).unwrap(), "{\"a\":1}");
        let err = read_config(&resource(json!({"a": 1}))).unwrap_err();
        assert_eq!(err, format!("{VALUE_PATH}: not a string"));
        let err = read_config(&json!({"resources": []})).unwrap_err();
        assert_eq!(err, format!("{VALUE_PATH}: missing"));
    }

    #[test]
    fn shape_errors_name_the_field() {
        let cases = [
            (json!({}), "resources: missing"),
            (json!({"resources": {}}), "resources: not an array"),
            (json!({"resources": []}), "resources: empty"),
            (json!({"resources": [{}]}), "resources[0].typed_config: missing"),
            (json!({"resources": [{"typed_config": {"config": 1}}]}), "resources[0].typed_config.config: not an object"),
            (
                json!({"resources": [{"typed_config": {"config": {"configuration": {"@type": "type.googleapis.com/google.protobuf.Struct"}}}}]}),
                "resources[0].typed_config.config.configuration.@type: \"type.googleapis.com/google.protobuf.Struct\" instead of",
            ),
            (
                json!({"resources": [{"typed_config": {"config": {"configuration": {"value": "{}"}}}}]}),
                "resources[0].typed_config.config.configuration.@type: missing",
            ),
        ];
        for (mut doc, problem) in cases {
            let before = doc.clone();
            let err = replace_config(&mut doc, "{}").unwrap_err();
            assert!(err.starts_with(problem), "{err}");
            assert_eq!(doc, before, "a refused document is left as it was");
        }
    }

    #[test]
    fn rendering_keeps_the_layout_when_it_can() {
        let original = "{\n  \"resources\": [ {\"typed_config\": {\"config\": {\"name\": \"x\",\n    \"configuration\": {\"@type\": \"type.googleapis.com/google.protobuf.StringValue\", \"value\": \"{\\\"a\\\":1}\"}}}} ]\n}\n";
        let mut doc: Value = serde_json::from_str(original).unwrap();
        let old = replace_config(&mut doc, "{\"a\":2}").unwrap();
        let text = render(original, old.as_deref(), &doc).unwrap();
        assert_eq!(text, original.replace("{\\\"a\\\":1}", "{\\\"a\\\":2}"));
    }

    #[test]
    fn rendering_falls_back_to_pretty_printing() {
        // The old value spelled with an escape serde would not write.
        let original = r#"{"resources":[{"typed_config":{"config":{"configuration":{"@type":"type.googleapis.com/google.protobuf.StringValue","value":"\u007b}"}}}}]}"#;
        let mut doc: Value = serde_json::from_str(original).unwrap();
        let old = replace_config(&mut doc, "{\"a\":2}").unwrap();
        assert_eq!(old.as_deref(), Some("{}"));
        let text = render(original, old.as_deref(), &doc).unwrap();
        assert!(text.ends_with("}\n") && text.contains("\n  "), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
        // The same string twice: in-place swap is ambiguous.
        let twice = resource(json!("same"));
        let mut with_name = twice.clone();
        with_name["resources"][0]["name"] = json!("same");
        let original = serde_json::to_string(&with_name).unwrap();
        let mut doc = with_name.clone();
        let old = replace_config(&mut doc, "new").unwrap();
        let text = render(&original, old.as_deref(), &doc).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
    }

    #[test]
    fn compact_drops_whitespace_outside_strings_only_and_keeps_key_order() {
        let json = "{\n  \"revision\": \"a b\\\" c\",\n\t\"legacy\": {\"cluster\": \"x\"},\r\n  \"n\": [1, 2]\n}\n";
        assert_eq!(
            compact(json).unwrap(),
            r#"{"revision":"a b\" c","legacy":{"cluster":"x"},"n":[1,2]}"#
        );
        assert_eq!(compact(r#"{"a":"\\","b":" "}"#).unwrap(), r#"{"a":"\\","b":" "}"#);
        assert!(compact("{").is_err());
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("parallel-run-ctl-ecds-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("parallel-run.json");
        fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["parallel-run.json"]);

        let missing_dir = dir.join("no-such-dir").join("parallel-run.json");
        let err = write_atomically(&missing_dir, b"x").unwrap_err();
        assert!(
            err.starts_with(&format!("{}: cannot write", missing_dir.display())),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
