//! One evidence record, and reading the OTLP/HTTP JSON logs request that
//! carries them (the format fixed in the lead's evidence record
//! specification, README "Evidence"): parse, then validate, every problem
//! named by where it is (`resourceLogs[0].scopeLogs[0].logRecords[2]
//! .attributes[parallel_run.fields][1].serving.length: expected an
//! intValue`). Messages name places and types, never a value: a record
//! carries data about a client's request.
//!
//! Bounds: the body's size is checked before this (the receiver); serde_json
//! refuses nesting deeper than 128; here, at most [`Limits::records`]
//! records per request, [`MAX_FIELDS`] fields per record and
//! [`MAX_TEXT`] bytes per string.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields one record may list. The filter lists fewer (its own bound, with
/// `fields_omitted` for the rest); this only stops a runaway sender.
pub const MAX_FIELDS: usize = 256;

/// Longest string accepted anywhere in a record: a raw value the operator
/// allowed may be a sizeable JSON text; a path or an id is far shorter.
pub const MAX_TEXT: usize = 64 << 10;

/// The event names a parallel-run record has.
pub const EVENTS: [&str; 2] = ["parallel_run.unmatched", "parallel_run.failed"];

/// What a receiver accepts from one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Records in one request; more is refused whole (413).
    pub records: usize,
}

/// One side's value, redacted unless the operator allowed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// string|number|bool|null|object|array|missing|bytes.
    #[serde(rename = "type")]
    pub kind: String,
    /// For strings: uuid|iso8601|http_date|integer|decimal|hex|text|empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<i64>,
    /// The keyed hash (hex) of the canonical value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The value's JSON text, only where the operator allowed raw values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One differing field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// body|header|status.
    pub axis: String,
    /// A JSON Pointer (keys hidden per `name_keys`), a header name, or "".
    pub path: String,
    pub serving: Side,
    pub shadow: Side,
    /// permutation|case_only|rounding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_delta: Option<f64>,
}

/// One record, as stored and as `evidence show -o json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Nanoseconds since the Unix epoch (OTLP's `timeUnixNano`).
    pub time_unix_nano: i64,
    /// `parallel_run.unmatched` or `parallel_run.failed`.
    pub event: String,
    pub operation: String,
    pub revision: String,
    pub request_id: String,
    /// unmatched, failed_timeout, failed_error, failed_5xx, failed_body_too_large.
    pub outcome: String,
    /// Which side served the client: legacy or candidate.
    pub serving: String,
    pub method: String,
    pub path: String,
    /// Query parameter names only.
    pub query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_serving: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_shadow: Option<i64>,
    pub fields_omitted: i64,
    pub fields: Vec<Field>,
}

impl Record {
    /// The side that did not serve the client.
    pub fn shadow_side(&self) -> &'static str {
        if self.serving == "candidate" {
            "legacy"
        } else {
            "candidate"
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: what is wrong, and where.
    Malformed(String),
    /// 413: a bound was exceeded.
    TooLarge(String),
}

impl Refusal {
    #[cfg(test)]
    pub fn message(&self) -> &str {
        match self {
            Refusal::Malformed(message) | Refusal::TooLarge(message) => message,
        }
    }
}

type Parsed<T> = Result<T, Refusal>;

fn malformed<T>(at: &str, what: impl std::fmt::Display) -> Parsed<T> {
    Err(Refusal::Malformed(format!("{at}: {what}")))
}

/// Every record of an OTLP/HTTP JSON logs request, or why none is taken.
pub fn parse_request(body: &[u8], limits: Limits) -> Parsed<Vec<Record>> {
    let document: Value =
        serde_json::from_slice(body).map_err(|err| Refusal::Malformed(format!("body: invalid JSON: {err}")))?;
    let resources = array_member(&document, "resourceLogs", "body")?;
    let mut records = Vec::new();
    for (r, resource) in resources.iter().enumerate() {
        let at = format!("resourceLogs[{r}]");
        for (s, scope) in array_member(resource, "scopeLogs", &at)?.iter().enumerate() {
            let at = format!("{at}.scopeLogs[{s}]");
            let logs = array_member(scope, "logRecords", &at)?;
            if records.len().saturating_add(logs.len()) > limits.records {
                return Err(Refusal::TooLarge(format!(
                    "more than {} records in one request",
                    limits.records
                )));
            }
            for (l, log) in logs.iter().enumerate() {
                records.push(parse_record(log, &format!("{at}.logRecords[{l}]"))?);
            }
        }
    }
    Ok(records)
}

/// `value[key]` as an array; absent is empty (OTLP JSON omits empty lists).
fn array_member<'a>(value: &'a Value, key: &str, at: &str) -> Parsed<&'a [Value]> {
    let Some(object) = value.as_object() else {
        return malformed(at, "expected an object");
    };
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => malformed(&format!("{at}.{key}"), "expected an array"),
    }
}

fn parse_record(log: &Value, at: &str) -> Parsed<Record> {
    let Some(object) = log.as_object() else {
        return malformed(at, "expected an object");
    };
    let time_unix_nano = match object.get("timeUnixNano") {
        None => return malformed(at, "timeUnixNano is missing"),
        Some(value) => int64(value).ok_or_else(|| {
            Refusal::Malformed(format!(
                "{at}.timeUnixNano: expected nanoseconds since the epoch (a decimal string)"
            ))
        })?,
    };
    let event = match object.get("eventName") {
        Some(Value::String(name)) if EVENTS.contains(&name.as_str()) => name.clone(),
        Some(Value::String(_)) => {
            return malformed(
                &format!("{at}.eventName"),
                format!("not a parallel-run record (expected {})", EVENTS.join(" or ")),
            )
        }
        Some(_) => return malformed(&format!("{at}.eventName"), "expected a string"),
        None => return malformed(at, "eventName is missing"),
    };
    let attributes = keyvalues(object.get("attributes"), &format!("{at}.attributes"))?;
    let attr_at = |key: &str| format!("{at}.attributes[{key}]");
    let string = |key: &str, required: bool| -> Parsed<String> {
        match attributes.get(key) {
            Some(value) => text(value, &attr_at(key)),
            None if required => malformed(&format!("{at}.attributes"), format!("{key} is missing")),
            None => Ok(String::new()),
        }
    };
    let int = |key: &str| -> Parsed<Option<i64>> {
        attributes
            .get(key)
            .map(|value| integer(value, &attr_at(key)))
            .transpose()
    };
    let operation = string("parallel_run.operation_id", true)?;
    if operation.is_empty()
        || !operation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return malformed(
            &attr_at("parallel_run.operation_id"),
            "expected an operation id ([A-Za-z0-9_-]+)",
        );
    }
    let fields = match attributes.get("parallel_run.fields") {
        None => Vec::new(),
        Some(value) => fields(value, &attr_at("parallel_run.fields"))?,
    };
    Ok(Record {
        time_unix_nano,
        event,
        operation,
        revision: string("parallel_run.revision", false)?,
        request_id: string("parallel_run.request_id", false)?,
        outcome: string("parallel_run.outcome", true)?,
        serving: string("parallel_run.serving", false)?,
        method: string("http.request.method", false)?,
        path: string("url.path", false)?,
        query: string("url.query", false)?,
        status_serving: int("parallel_run.status.serving")?,
        status_shadow: int("parallel_run.status.shadow")?,
        fields_omitted: int("parallel_run.fields_omitted")?.unwrap_or(0),
        fields,
    })
}

/// An OTLP `KeyValue` list as a map from key to `AnyValue`. A key given
/// twice is refused: which one would count?
fn keyvalues(list: Option<&Value>, at: &str) -> Parsed<Map<String, Value>> {
    let items = match list {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return malformed(at, "expected an array of {key, value}"),
    };
    let mut map = Map::new();
    for (i, item) in items.iter().enumerate() {
        let Some(key) = item.get("key").and_then(Value::as_str) else {
            return malformed(&format!("{at}[{i}]"), "expected {\"key\": <string>, \"value\": ...}");
        };
        if key.len() > 256 {
            return malformed(&format!("{at}[{i}].key"), "longer than 256 bytes");
        }
        let value = item.get("value").cloned().unwrap_or(Value::Null);
        if map.insert(key.to_string(), value).is_some() {
            return malformed(at, format!("{key} is given twice"));
        }
    }
    Ok(map)
}

/// An `AnyValue` that must be a `stringValue`, bounded.
fn text(value: &Value, at: &str) -> Parsed<String> {
    match value.get("stringValue") {
        Some(Value::String(s)) if s.len() <= MAX_TEXT => Ok(s.clone()),
        Some(Value::String(_)) => malformed(at, format!("longer than {MAX_TEXT} bytes")),
        _ => malformed(at, "expected a stringValue"),
    }
}

/// An `AnyValue` that must be an `intValue` (a decimal string in OTLP JSON,
/// or a number).
fn integer(value: &Value, at: &str) -> Parsed<i64> {
    value
        .get("intValue")
        .and_then(int64)
        .ok_or_else(|| Refusal::Malformed(format!("{at}: expected an intValue")))
}

fn int64(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn fields(value: &Value, at: &str) -> Parsed<Vec<Field>> {
    let Some(items) = value
        .get("arrayValue")
        .and_then(|a| a.get("values"))
        .and_then(Value::as_array)
    else {
        return malformed(at, "expected an arrayValue");
    };
    if items.len() > MAX_FIELDS {
        return Err(Refusal::TooLarge(format!("{at}: more than {MAX_FIELDS} fields")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| field(item, &format!("{at}[{i}]")))
        .collect()
}

/// An `AnyValue` that must be a `kvlistValue`, as a map.
fn kvlist(value: &Value, at: &str) -> Parsed<Map<String, Value>> {
    match value.get("kvlistValue") {
        Some(list) => keyvalues(list.get("values"), at),
        None => malformed(at, "expected a kvlistValue"),
    }
}

fn field(value: &Value, at: &str) -> Parsed<Field> {
    let members = kvlist(value, at)?;
    let member_at = |key: &str| format!("{at}.{key}");
    let required = |key: &str| -> Parsed<&Value> {
        members
            .get(key)
            .ok_or_else(|| Refusal::Malformed(format!("{at}: {key} is missing")))
    };
    let optional_text =
        |key: &str| -> Parsed<Option<String>> { members.get(key).map(|v| text(v, &member_at(key))).transpose() };
    let axis = text(required("axis")?, &member_at("axis"))?;
    if !matches!(axis.as_str(), "body" | "header" | "status") {
        return malformed(&member_at("axis"), "expected body, header or status");
    }
    let relative_delta = match members.get("relative_delta") {
        None => None,
        Some(v) => Some(
            v.get("doubleValue")
                .and_then(Value::as_f64)
                .or_else(|| v.get("intValue").and_then(int64).map(|i| i as f64))
                .filter(|d| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| {
                    Refusal::Malformed(format!(
                        "{}: expected a doubleValue, finite, not negative",
                        member_at("relative_delta")
                    ))
                })?,
        ),
    };
    Ok(Field {
        path: text(required("path")?, &member_at("path"))?,
        serving: side(required("serving")?, &member_at("serving"))?,
        shadow: side(required("shadow")?, &member_at("shadow"))?,
        hint: optional_text("hint")?,
        array_key: optional_text("array_key")?,
        relative_delta,
        axis,
    })
}

fn side(value: &Value, at: &str) -> Parsed<Side> {
    let members = kvlist(value, at)?;
    let member_at = |key: &str| format!("{at}.{key}");
    let optional_text =
        |key: &str| -> Parsed<Option<String>> { members.get(key).map(|v| text(v, &member_at(key))).transpose() };
    let Some(kind) = members.get("type") else {
        return malformed(at, "type is missing");
    };
    let kind = text(kind, &member_at("type"))?;
    const TYPES: [&str; 8] = [
        "string", "number", "bool", "null", "object", "array", "missing", "bytes",
    ];
    if !TYPES.contains(&kind.as_str()) {
        return malformed(&member_at("type"), format!("expected one of {}", TYPES.join(", ")));
    }
    Ok(Side {
        kind,
        shape: optional_text("shape")?,
        length: members
            .get("length")
            .map(|v| integer(v, &member_at("length")))
            .transpose()?,
        hash: optional_text("hash")?,
        value: optional_text("value")?,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    pub const LIMITS: Limits = Limits { records: 100 };

    fn s(text: &str) -> Value {
        json!({"stringValue": text})
    }

    fn kv(pairs: &[(&str, Value)]) -> Value {
        let values: Vec<Value> = pairs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        json!({"kvlistValue": {"values": values}})
    }

    /// One side in the spec's format.
    pub fn side_json(kind: &str, shape: Option<&str>, length: i64, hash: &str, value: Option<&str>) -> Value {
        let mut pairs = vec![("type", s(kind))];
        if let Some(shape) = shape {
            pairs.push(("shape", s(shape)));
        }
        pairs.push(("length", json!({"intValue": length.to_string()})));
        pairs.push(("hash", s(hash)));
        if let Some(value) = value {
            pairs.push(("value", s(value)));
        }
        kv(&pairs)
    }

    /// One field entry in the spec's format; `extra` are hint, array_key, relative_delta.
    pub fn field_json(axis: &str, path: &str, serving: Value, shadow: Value, extra: &[(&str, Value)]) -> Value {
        let mut pairs = vec![
            ("axis", s(axis)),
            ("path", s(path)),
            ("serving", serving),
            ("shadow", shadow),
        ];
        pairs.extend(extra.iter().cloned());
        kv(&pairs)
    }

    /// One log record in the spec's format.
    pub fn record_json(operation: &str, revision: &str, request_id: &str, fields: Vec<Value>) -> Value {
        let attr = |k: &str, v: Value| json!({"key": k, "value": v});
        json!({
            "timeUnixNano": "1764633600000000000",
            "severityNumber": 13, "severityText": "WARN",
            "eventName": "parallel_run.unmatched",
            "body": {"stringValue": format!("unmatched {operation}")},
            "attributes": [
                attr("parallel_run.operation_id", s(operation)),
                attr("parallel_run.revision", s(revision)),
                attr("parallel_run.request_id", s(request_id)),
                attr("parallel_run.outcome", s("unmatched")),
                attr("parallel_run.serving", s("legacy")),
                attr("http.request.method", s("GET")),
                attr("url.path", s("/returns/123")),
                attr("url.query", s("page=&sort=")),
                attr("parallel_run.status.serving", json!({"intValue": "200"})),
                attr("parallel_run.status.shadow", json!({"intValue": "200"})),
                attr("parallel_run.fields_omitted", json!({"intValue": "0"})),
                attr("parallel_run.fields", json!({"arrayValue": {"values": fields}})),
            ]
        })
    }

    /// A whole request carrying `records`.
    pub fn request_json(records: Vec<Value>) -> Value {
        json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "parallel-run"}}]},
            "scopeLogs": [{"scope": {"name": "parallel-run", "version": "0.1.0"}, "logRecords": records}]
        }]})
    }

    pub fn timestamp_field() -> Value {
        field_json(
            "body",
            "/at",
            side_json(
                "string",
                Some("iso8601"),
                20,
                "9f2c4e1a0b3d5e7f",
                Some("\"2026-12-01T10:00:00Z\""),
            ),
            side_json("string", Some("iso8601"), 20, "0b3d5e7f9f2c4e1a", None),
            &[],
        )
    }

    #[test]
    fn a_spec_record_parses_field_by_field() {
        let body = request_json(vec![record_json("getReturn", "r42", "req-1", vec![timestamp_field()])]);
        let records = parse_request(body.to_string().as_bytes(), LIMITS).unwrap();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.time_unix_nano, 1_764_633_600_000_000_000);
        assert_eq!(record.operation, "getReturn");
        assert_eq!(record.revision, "r42");
        assert_eq!(record.request_id, "req-1");
        assert_eq!(record.serving, "legacy");
        assert_eq!(record.shadow_side(), "candidate");
        assert_eq!(record.query, "page=&sort=");
        assert_eq!(record.status_serving, Some(200));
        let field = &record.fields[0];
        assert_eq!(field.path, "/at");
        assert_eq!(field.serving.shape.as_deref(), Some("iso8601"));
        assert_eq!(field.serving.length, Some(20));
        assert_eq!(field.serving.value.as_deref(), Some("\"2026-12-01T10:00:00Z\""));
        assert_eq!(field.shadow.value, None);
    }

    #[test]
    fn malformed_input_names_where_and_what() {
        let parse = |v: Value| parse_request(v.to_string().as_bytes(), LIMITS).unwrap_err();
        assert_eq!(
            parse_request(b"{", LIMITS).unwrap_err().message().split(':').next(),
            Some("body")
        );
        assert_eq!(
            parse(json!({"resourceLogs": {}})),
            Refusal::Malformed("body.resourceLogs: expected an array".into())
        );
        let mut record = record_json("getReturn", "r", "q", vec![timestamp_field()]);
        record["eventName"] = json!("http.access");
        assert_eq!(
            parse(request_json(vec![record])).message(),
            "resourceLogs[0].scopeLogs[0].logRecords[0].eventName: not a parallel-run record (expected parallel_run.unmatched or parallel_run.failed)"
        );
        let mut record = record_json("getReturn", "r", "q", vec![timestamp_field()]);
        record["timeUnixNano"] = json!("soon");
        assert!(parse(request_json(vec![record]))
            .message()
            .ends_with(".timeUnixNano: expected nanoseconds since the epoch (a decimal string)"));
        let bad_side = field_json(
            "body",
            "/x",
            json!({"kvlistValue": {"values": []}}),
            side_json("string", None, 1, "h", None),
            &[],
        );
        let ok = record_json("getReturn", "r", "q", vec![timestamp_field()]);
        let bad = record_json("getReturn", "r", "q", vec![timestamp_field(), bad_side]);
        assert_eq!(
            parse(request_json(vec![ok, bad])).message(),
            "resourceLogs[0].scopeLogs[0].logRecords[1].attributes[parallel_run.fields][1].serving: type is missing"
        );
        let bad_length = field_json(
            "body",
            "/x",
            side_json("string", None, 1, "h", None),
            kv(&[("type", s("string")), ("length", s("7"))]),
            &[],
        );
        assert!(parse(request_json(vec![record_json("op", "r", "q", vec![bad_length])]))
            .message()
            .ends_with("[0].shadow.length: expected an intValue"));
        let bad_op = record_json("get/Return", "r", "q", vec![]);
        assert!(parse(request_json(vec![bad_op]))
            .message()
            .ends_with("attributes[parallel_run.operation_id]: expected an operation id ([A-Za-z0-9_-]+)"));
        let bad_axis = field_json(
            "cookie",
            "/x",
            side_json("string", None, 1, "h", None),
            side_json("string", None, 1, "h", None),
            &[],
        );
        assert!(parse(request_json(vec![record_json("op", "r", "q", vec![bad_axis])]))
            .message()
            .ends_with("[0].axis: expected body, header or status"));
        // A value never appears in a message.
        let secret = field_json(
            "body",
            "/x",
            side_json("strange", None, 1, "h", Some("\"jane@example.com\"")),
            side_json("string", None, 1, "h", None),
            &[],
        );
        let message = parse(request_json(vec![record_json("op", "r", "q", vec![secret])]))
            .message()
            .to_string();
        assert!(!message.contains("jane") && !message.contains("strange"), "{message}");
    }

    #[test]
    fn bounds_are_refused_as_too_large() {
        let records: Vec<Value> = (0..3).map(|i| record_json("op", "r", &i.to_string(), vec![])).collect();
        let err = parse_request(request_json(records).to_string().as_bytes(), Limits { records: 2 }).unwrap_err();
        assert_eq!(err, Refusal::TooLarge("more than 2 records in one request".into()));
        let many: Vec<Value> = (0..=MAX_FIELDS).map(|_| timestamp_field()).collect();
        let err = parse_request(
            request_json(vec![record_json("op", "r", "q", many)])
                .to_string()
                .as_bytes(),
            LIMITS,
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::TooLarge(_)), "{err:?}");
        let long = "x".repeat(MAX_TEXT + 1);
        let err = parse_request(
            request_json(vec![record_json("op", "r", &long, vec![])])
                .to_string()
                .as_bytes(),
            LIMITS,
        )
        .unwrap_err();
        assert!(
            err.message().ends_with(&format!("longer than {MAX_TEXT} bytes")),
            "{err:?}"
        );
    }
}
