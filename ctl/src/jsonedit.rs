//! Edits of a JSON text that keep everything else byte for byte: the
//! operator's key order, layout and comments-free formatting survive a
//! `cutover`, so that the diff in git is the one line that changed.
//!
//! The scanner walks the text without recursion (nesting is a counter), and
//! every edit is checked by the caller: the edited text must parse to the
//! expected document.

use serde_json::Value;

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Replaces the value at `path` + `key` with `value`, or inserts the member
/// as the object's first one when it is absent. `path` must lead to an object.
pub fn set_member(text: &str, path: &[Step], key: &str, value: &Value) -> Result<String, String> {
    let bytes = text.as_bytes();
    let start = skip_ws(bytes, 0);
    let (object, _) = locate(bytes, start, path)?;
    if bytes.get(object) != Some(&b'{') {
        return Err(format!("{}: not an object", display(path)));
    }
    let rendered = serde_json::to_string(value).map_err(|err| format!("cannot serialise: {err}"))?;
    let members = members(bytes, object)?;
    if let Some(member) = members.iter().find(|m| m.key == key) {
        let mut out = String::with_capacity(text.len() + rendered.len());
        out.push_str(text.get(..member.value.0).unwrap_or_default());
        out.push_str(&rendered);
        out.push_str(text.get(member.value.1..).unwrap_or_default());
        return Ok(out);
    }
    let key_json = serde_json::to_string(key).map_err(|err| format!("cannot serialise: {err}"))?;
    let insert_at = object + 1;
    let insertion = match members.first() {
        // `{` + lead + first key: repeat the lead and the separator style.
        Some(first) => {
            let lead = text.get(insert_at..first.key_start).unwrap_or_default();
            let separator = text.get(first.key_end..first.value.0).unwrap_or(":");
            format!("{lead}{key_json}{separator}{rendered},")
        }
        None => format!("{key_json}:{rendered}"),
    };
    let mut out = String::with_capacity(text.len() + insertion.len());
    out.push_str(text.get(..insert_at).unwrap_or_default());
    out.push_str(&insertion);
    out.push_str(text.get(insert_at..).unwrap_or_default());
    Ok(out)
}

fn display(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

struct Member {
    key: String,
    key_start: usize,
    key_end: usize,
    /// Byte span of the value.
    value: (usize, usize),
}

/// The span of the value at `path`, starting from the value at `at`.
fn locate(bytes: &[u8], mut at: usize, path: &[Step]) -> Result<(usize, usize), String> {
    let mut end = skip_value(bytes, at)?;
    for (depth, step) in path.iter().enumerate() {
        let here = || display(path.get(..depth + 1).unwrap_or_default());
        let span = match *step {
            Step::Key(key) => members(bytes, at)?.into_iter().find(|m| m.key == key).map(|m| m.value),
            Step::Index(index) => elements(bytes, at)?.into_iter().nth(index),
        };
        (at, end) = span.ok_or_else(|| format!("{}: missing", here()))?;
    }
    Ok((at, end))
}

/// The members of the object at `at` (which must be `{`).
fn members(bytes: &[u8], at: usize) -> Result<Vec<Member>, String> {
    if bytes.get(at) != Some(&b'{') {
        return Err("not an object".to_string());
    }
    let mut out = Vec::new();
    let mut i = skip_ws(bytes, at + 1);
    if bytes.get(i) == Some(&b'}') {
        return Ok(out);
    }
    loop {
        let key_start = i;
        let key_end = skip_string(bytes, i)?;
        let key: String = bytes
            .get(key_start..key_end)
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .ok_or("invalid object key")?;
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return Err("expected ':'".to_string());
        }
        let value_start = skip_ws(bytes, i + 1);
        let value_end = skip_value(bytes, value_start)?;
        out.push(Member {
            key,
            key_start,
            key_end,
            value: (value_start, value_end),
        });
        i = skip_ws(bytes, value_end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return Ok(out),
            _ => return Err("expected ',' or '}'".to_string()),
        }
    }
}

/// The spans of the elements of the array at `at` (which must be `[`).
fn elements(bytes: &[u8], at: usize) -> Result<Vec<(usize, usize)>, String> {
    if bytes.get(at) != Some(&b'[') {
        return Err("not an array".to_string());
    }
    let mut out = Vec::new();
    let mut i = skip_ws(bytes, at + 1);
    if bytes.get(i) == Some(&b']') {
        return Ok(out);
    }
    loop {
        let end = skip_value(bytes, i)?;
        out.push((i, end));
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b']') => return Ok(out),
            _ => return Err("expected ',' or ']'".to_string()),
        }
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string starting at `i` (a `"`).
fn skip_string(bytes: &[u8], i: usize) -> Result<usize, String> {
    if bytes.get(i) != Some(&b'"') {
        return Err("expected a string".to_string());
    }
    let mut j = i + 1;
    loop {
        match bytes.get(j) {
            Some(b'"') => return Ok(j + 1),
            Some(b'\\') => j += 2,
            Some(_) => j += 1,
            None => return Err("unterminated string".to_string()),
        }
    }
}

/// The end (exclusive) of the value starting at `i`. Nesting is counted,
/// not recursed into.
fn skip_value(bytes: &[u8], i: usize) -> Result<usize, String> {
    match bytes.get(i) {
        Some(b'"') => skip_string(bytes, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match bytes.get(j) {
                    Some(b'"') => {
                        j = skip_string(bytes, j)?;
                        continue;
                    }
                    Some(b'{' | b'[') => depth += 1,
                    Some(b'}' | b']') => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    Some(_) => {}
                    None => return Err("unterminated object or array".to_string()),
                }
                j += 1;
            }
        }
        Some(_) => {
            let mut j = i;
            while let Some(b) = bytes.get(j) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            if j == i {
                Err("expected a value".to_string())
            } else {
                Ok(j)
            }
        }
        None => Err("expected a value".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PRETTY: &str = "{\n  \"revision\": \"r1\",\n  \"operations\": [\n    {\"id\": \"a\", \"mode\": \"shadow\"},\n    {\"id\": \"b\"}\n  ],\n  \"x\": {\"s\": \"}]\\\"{\"}\n}\n";

    #[test]
    fn a_value_is_replaced_in_place() {
        let out = set_member(PRETTY, &[], "revision", &json!("r2")).unwrap();
        assert_eq!(out, PRETTY.replace("\"r1\"", "\"r2\""));
        let path = [Step::Key("operations"), Step::Index(0)];
        let out = set_member(PRETTY, &path, "mode", &json!("cutover")).unwrap();
        assert_eq!(out, PRETTY.replace("\"shadow\"", "\"cutover\""));
    }

    #[test]
    fn a_missing_member_is_inserted_first_in_the_objects_style() {
        let path = [Step::Key("operations"), Step::Index(1)];
        let out = set_member(PRETTY, &path, "mode", &json!("legacy")).unwrap();
        assert_eq!(
            out,
            PRETTY.replace("{\"id\": \"b\"}", "{\"mode\": \"legacy\",\"id\": \"b\"}")
        );
        let out = set_member("{\n  \"a\": 1\n}", &[], "revision", &json!("r")).unwrap();
        assert_eq!(out, "{\n  \"revision\": \"r\",\n  \"a\": 1\n}");
        assert_eq!(
            set_member(r#"{"a":1}"#, &[], "revision", &json!("r")).unwrap(),
            r#"{"revision":"r","a":1}"#
        );
        assert_eq!(set_member("{ }", &[], "k", &json!(1)).unwrap(), r#"{"k":1 }"#);
    }

    #[test]
    fn strings_with_brackets_and_escapes_do_not_confuse_the_scanner() {
        let out = set_member(PRETTY, &[Step::Key("x")], "s", &json!("ok")).unwrap();
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["x"]["s"], "ok");
        assert_eq!(value["operations"][1]["id"], "b");
        let escaped_key = r#"{"a\"b": 1, "c": [1, {"d": "]"}]}"#;
        let out = set_member(escaped_key, &[], "a\"b", &json!(2)).unwrap();
        assert_eq!(out, r#"{"a\"b": 2, "c": [1, {"d": "]"}]}"#);
    }

    #[test]
    fn missing_paths_and_wrong_shapes_are_named() {
        let err = set_member(PRETTY, &[Step::Key("operations"), Step::Index(5)], "mode", &json!("x")).unwrap_err();
        assert_eq!(err, "operations[5]: missing");
        let err = set_member(PRETTY, &[Step::Key("revision")], "mode", &json!("x")).unwrap_err();
        assert_eq!(err, "revision: not an object");
        assert!(set_member("[1]", &[], "k", &json!(1)).is_err());
        assert!(set_member("{\"a\": ", &[], "k", &json!(1)).is_err());
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        let deep = format!("{{\"a\": {}1{}, \"b\": 2}}", "[".repeat(100_000), "]".repeat(100_000));
        let out = set_member(&deep, &[], "b", &json!(3)).unwrap();
        assert!(out.ends_with("\"b\": 3}"));
    }
}
