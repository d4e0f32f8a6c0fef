//! What an evidence record says about one side's value at a differing
//! field: its type, the shape of a string, its length, a keyed hash of its
//! canonical form, and the value itself only where the operator allowed
//! it. Bodies carry personal data: by default a record tells an operator
//! *what kind* of value differs and whether two values are equal, never
//! what they are.

use serde_json::{Map, Number, Value};

use super::siphash::{siphash24, Key};

/// A raw value is cut to this many bytes (at a character boundary): enough
/// to read a field, bounded so one record stays small. `length` still says
/// how long the value was.
pub const MAX_RAW_VALUE_BYTES: usize = 1024;

/// How deep the canonical form of a value is written. serde_json stops
/// parsing at 128 levels; this bounds the (recursive) walk all the same.
const MAX_CANONICAL_DEPTH: usize = 160;

/// One side of a field.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub kind: &'static str,
    /// Strings only.
    pub shape: Option<&'static str>,
    /// Characters of a string, elements of an array or object, bytes of
    /// `bytes` and of a number's text; 0 for `missing`, `null` and bools.
    pub length: u64,
    /// The keyed hash of the canonical value; `None` for `missing`.
    pub hash: Option<u64>,
    /// The value's JSON text (a header's values and a body that is not
    /// JSON as a JSON string of their text): only where the operator
    /// allowed raw values. A string is cut to [`MAX_RAW_VALUE_BYTES`]
    /// before it is quoted, so it stays valid JSON; the text of a larger
    /// object or array is cut as it is.
    pub value: Option<String>,
}

impl Observed {
    /// Nothing on this side: an absent member, header or element.
    pub fn missing() -> Observed {
        Observed {
            kind: "missing",
            shape: None,
            length: 0,
            hash: None,
            value: None,
        }
    }

    /// A JSON value.
    pub fn json(value: &Value, key: &Key, raw: bool) -> Observed {
        let (kind, length) = match value {
            Value::Null => ("null", 0),
            Value::Bool(_) => ("bool", 0),
            Value::Number(n) => ("number", n.to_string().len() as u64),
            Value::String(s) => ("string", s.chars().count() as u64),
            Value::Array(items) => ("array", items.len() as u64),
            Value::Object(map) => ("object", map.len() as u64),
        };
        let shape = match value {
            Value::String(s) => Some(shape(s)),
            _ => None,
        };
        let mut canonical = Vec::new();
        write_canonical(value, &mut canonical, 0);
        Observed {
            kind,
            shape,
            length,
            hash: Some(siphash24(*key, &canonical)),
            value: raw.then(|| cut(super::otlp::json_text(value, MAX_RAW_VALUE_BYTES))),
        }
    }

    /// A text value that is no JSON document: a header's values.
    pub fn text(text: &str, key: &Key, raw: bool) -> Observed {
        let mut canonical = vec![b's'];
        canonical.extend_from_slice(text.as_bytes());
        Observed {
            kind: "string",
            shape: Some(shape(text)),
            length: text.chars().count() as u64,
            hash: Some(siphash24(*key, &canonical)),
            value: raw.then(|| quoted(text)),
        }
    }

    /// A body that is not JSON (or not readable as it): bytes.
    pub fn bytes(bytes: &[u8], key: &Key, raw: bool) -> Observed {
        let mut canonical = Vec::with_capacity(bytes.len() + 1);
        canonical.push(b'b');
        canonical.extend_from_slice(bytes);
        Observed {
            kind: "bytes",
            shape: None,
            length: bytes.len() as u64,
            hash: Some(siphash24(*key, &canonical)),
            value: raw.then(|| quoted(&String::from_utf8_lossy(bytes))),
        }
    }

    /// A status code: not personal data, and in the record's attributes
    /// anyway, so its value is always there.
    pub fn status(code: u16, key: &Key) -> Observed {
        Observed::json(&Value::Number(Number::from(code)), key, true)
    }
}

/// Text as a JSON string, cut first.
fn quoted(text: &str) -> String {
    super::otlp::json_text(&Value::String(cut(text.to_string())), usize::MAX)
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_RAW_VALUE_BYTES {
        let mut end = MAX_RAW_VALUE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The canonical form the hash covers: equal values as the comparison sees
/// them (`1` and `1.0`, key order) hash equal. A type tag first, so that
/// the string `"1"` and the number `1` differ.
pub(super) fn write_canonical(value: &Value, out: &mut Vec<u8>, depth: usize) {
    if depth > MAX_CANONICAL_DEPTH {
        out.push(b'~');
        return;
    }
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.extend_from_slice(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            out.push(b'd');
            out.extend_from_slice(canonical_number(n).as_bytes());
            out.push(b';');
        }
        Value::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_canonical(item, out, depth + 1);
            }
        }
        Value::Object(map) => {
            out.push(b'{');
            out.extend_from_slice(&(map.len() as u64).to_le_bytes());
            for (key, item) in sorted(map) {
                out.extend_from_slice(&(key.len() as u64).to_le_bytes());
                out.extend_from_slice(key.as_bytes());
                write_canonical(item, out, depth + 1);
            }
        }
    }
}

fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

/// `1`, `1.0` and `1e0` alike: a whole number within 2^53 as an integer,
/// any other as the bits of its double (equal doubles, equal bits: `0.5`
/// and `5e-1`), which needs no float formatting code in the module.
fn canonical_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return (f as i64).to_string();
    }
    format!("x{:x}", f.to_bits())
}

/// The shape of a string, for a reader who may not see it: the kinds of
/// value that differ between two implementations without being bugs
/// (generated ids, timestamps) and numbers written as strings.
pub fn shape(s: &str) -> &'static str {
    let b = s.as_bytes();
    if b.is_empty() {
        "empty"
    } else if is_uuid(b) {
        "uuid"
    } else if is_iso8601(b) {
        "iso8601"
    } else if is_http_date(b) {
        "http_date"
    } else if is_integer(b) {
        "integer"
    } else if is_decimal(b) {
        "decimal"
    } else if b.len() >= 2 && b.iter().all(u8::is_ascii_hexdigit) {
        "hex"
    } else {
        "text"
    }
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn digits(b: &[u8], range: std::ops::Range<usize>) -> bool {
    b.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// A date and a time: `2026-12-01T10:00:00Z`, `2026-12-01 10:00:00.5+01:00`.
fn is_iso8601(b: &[u8]) -> bool {
    b.len() >= 16
        && digits(b, 0..4)
        && b.get(4) == Some(&b'-')
        && digits(b, 5..7)
        && b.get(7) == Some(&b'-')
        && digits(b, 8..10)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && digits(b, 11..13)
        && b.get(13) == Some(&b':')
        && digits(b, 14..16)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate).
fn is_http_date(b: &[u8]) -> bool {
    b.len() == 29
        && b.get(3) == Some(&b',')
        && digits(b, 5..7)
        && digits(b, 12..16)
        && digits(b, 17..19)
        && b.get(19) == Some(&b':')
        && b.ends_with(b" GMT")
}

fn is_integer(b: &[u8]) -> bool {
    let rest = b.strip_prefix(b"-").unwrap_or(b);
    !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
}

fn is_decimal(b: &[u8]) -> bool {
    let rest = b.strip_prefix(b"-").unwrap_or(b);
    let mut parts = rest.splitn(2, |c| *c == b'.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or_default();
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.iter().all(u8::is_ascii_digit)
        && fraction.iter().all(u8::is_ascii_digit)
}
