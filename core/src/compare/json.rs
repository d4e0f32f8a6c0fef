//! Semantic JSON comparison and JSON Pointer patterns.

use serde_json::{Number, Value};

use super::{BodyDiff, MAX_REPORTED};
use crate::http::Response;

/// Whether a body should be compared as JSON: a JSON media type, or no
/// media type and a body that opens like a JSON document.
pub(super) fn looks_like_json(response: &Response) -> bool {
    match response.header("content-type") {
        Some(media_type) => {
            let media_type = media_type.split(|&b| b == b';').next().unwrap_or_default();
            let media_type = media_type.trim_ascii();
            media_type.eq_ignore_ascii_case(b"application/json")
                || media_type
                    .len()
                    .checked_sub(5)
                    .and_then(|start| media_type.get(start..))
                    .is_some_and(|suffix| suffix.eq_ignore_ascii_case(b"+json"))
        }
        None => matches!(response.body.trim_ascii_start().first(), Some(b'{' | b'[')),
    }
}

/// A JSON Pointer (RFC 6901) in which a `*` token stands for any array
/// index or object key, e.g. `/items/*/etag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerPattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Any,
    Key(String),
}

impl PointerPattern {
    pub fn parse(pointer: &str) -> Result<PointerPattern, String> {
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(format!(
                "\"{pointer}\" is not a JSON Pointer: it must start with '/' (ignoring the whole body would hide every difference)"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                tokens.push(Token::Any);
                continue;
            }
            tokens.push(Token::Key(unescape(raw).ok_or_else(|| {
                format!("\"{pointer}\": '~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')")
            })?));
        }
        Ok(PointerPattern { tokens })
    }

    /// Removes every value the pattern points at. Array elements become
    /// `null` rather than disappear, so the indices after them still line up.
    pub fn remove_from(&self, value: &mut Value) {
        remove(value, &self.tokens);
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn remove(value: &mut Value, tokens: &[Token]) {
    let Some((token, rest)) = tokens.split_first() else {
        return;
    };
    match value {
        Value::Object(map) => match token {
            Token::Key(key) if rest.is_empty() => {
                map.remove(key);
            }
            Token::Key(key) => {
                if let Some(child) = map.get_mut(key) {
                    remove(child, rest);
                }
            }
            Token::Any if rest.is_empty() => map.clear(),
            Token::Any => map.values_mut().for_each(|child| remove(child, rest)),
        },
        Value::Array(items) => match token {
            Token::Key(key) => {
                if let Some(child) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    if rest.is_empty() {
                        *child = Value::Null;
                    } else {
                        remove(child, rest);
                    }
                }
            }
            Token::Any if rest.is_empty() => items.iter_mut().for_each(|child| *child = Value::Null),
            Token::Any => items.iter_mut().for_each(|child| remove(child, rest)),
        },
        _ => {}
    }
}

/// The differing paths of two documents, or `None` when they are equal.
pub(super) fn diff(left: &Value, right: &Value) -> Option<BodyDiff> {
    let mut found = BodyDiff::default();
    let mut path = String::new();
    walk(left, right, &mut path, &mut found);
    (!found.json_paths.is_empty() || found.more > 0).then_some(found)
}

fn walk(left: &Value, right: &Value, path: &mut String, found: &mut BodyDiff) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            for (key, lv) in l {
                let mark = path.len();
                push_token(path, key);
                match r.get(key) {
                    Some(rv) => walk(lv, rv, path, found),
                    None => record(path, found),
                }
                path.truncate(mark);
            }
            for key in r.keys().filter(|key| !l.contains_key(*key)) {
                let mark = path.len();
                push_token(path, key);
                record(path, found);
                path.truncate(mark);
            }
        }
        (Value::Array(l), Value::Array(r)) => {
            for (i, (lv, rv)) in l.iter().zip(r).enumerate() {
                let mark = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                walk(lv, rv, path, found);
                path.truncate(mark);
            }
            if l.len() != r.len() {
                // One entry for the length, not one per missing element.
                let mark = path.len();
                path.push_str("/length");
                record(path, found);
                path.truncate(mark);
            }
        }
        (Value::Number(l), Value::Number(r)) => {
            if !numbers_equal(l, r) {
                record(path, found);
            }
        }
        (l, r) => {
            if l != r {
                record(path, found);
            }
        }
    }
}

/// 1 and 1.0 are the same number; integers compare exactly, others as f64.
fn numbers_equal(l: &Number, r: &Number) -> bool {
    if let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (l.as_u64(), r.as_u64()) {
        return a == b;
    }
    match (l.as_f64(), r.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn push_token(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn record(path: &str, found: &mut BodyDiff) {
    if found.json_paths.len() < MAX_REPORTED {
        found.json_paths.push(if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        });
    } else {
        found.more += 1;
    }
}
