//! A record in OTLP/HTTP JSON (OpenTelemetry's logs data model, JSON
//! encoding): any OpenTelemetry Collector with an `otlphttp` receiver takes
//! it, and so does `parallel-run-ctl evidence serve`. The format is fixed
//! in README "Evidence"; 64-bit integers are strings, as OTLP JSON encodes
//! them.
//!
//! Written straight into a string rather than built as a `serde_json`
//! tree: the tree's `json!` expansions, inlined at every call site, cost
//! the module far more than these few functions (the unit tests read the
//! output back with serde_json).

use serde_json::Value;

use super::{Field, Hint, Observed, Record};

/// A JSON text being written.
struct Out(String);

impl Out {
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    fn string(&mut self, text: &str) {
        self.0.push('"');
        for c in text.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                c if u32::from(c) < 0x20 => self.0.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => self.0.push(c),
            }
        }
        self.0.push('"');
    }

    /// `{"key":K,"value":{"<kind>":` ... the caller closes it with `}}`.
    fn open_kv(&mut self, key: &str, kind: &str) {
        self.raw(r#"{"key":"#);
        self.string(key);
        self.raw(r#","value":{""#);
        self.raw(kind);
        self.raw(r#"":"#);
    }

    fn string_kv(&mut self, key: &str, value: &str) {
        self.open_kv(key, "stringValue");
        self.string(value);
        self.raw("}}");
    }

    fn int_kv(&mut self, key: &str, value: u64) {
        self.open_kv(key, "intValue");
        self.string(&value.to_string());
        self.raw("}}");
    }

    /// Entries separated by commas.
    fn list<T>(&mut self, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Out, T)) {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            each(self, item);
        }
    }
}

/// The JSON text of `value`, written until it passes `limit` bytes (the
/// caller cuts it there): a raw value costs no more than what is kept of
/// it. Recursive, to the depth serde_json parsed (at most 128 levels).
pub(super) fn json_text(value: &Value, limit: usize) -> String {
    fn write(out: &mut Out, value: &Value, limit: usize) {
        if out.0.len() > limit {
            return;
        }
        match value {
            Value::Null => out.raw("null"),
            Value::Bool(b) => out.raw(if *b { "true" } else { "false" }),
            Value::Number(n) => out.raw(&n.to_string()),
            Value::String(s) => out.string(s),
            Value::Array(items) => {
                out.raw("[");
                out.list(items, |out, item| write(out, item, limit));
                out.raw("]");
            }
            Value::Object(map) => {
                out.raw("{");
                out.list(map, |out, (key, item)| {
                    out.string(key);
                    out.raw(":");
                    write(out, item, limit);
                });
                out.raw("}");
            }
        }
    }
    let mut out = Out(String::new());
    write(&mut out, value, limit);
    out.0
}

/// A side of a field: `{"kvlistValue":{"values":[...]}}`.
fn side(out: &mut Out, observed: &Observed) {
    out.raw(r#"{"kvlistValue":{"values":["#);
    out.string_kv("type", observed.kind);
    if let Some(shape) = observed.shape {
        out.raw(",");
        out.string_kv("shape", shape);
    }
    out.raw(",");
    out.int_kv("length", observed.length);
    if let Some(hash) = observed.hash {
        out.raw(",");
        out.string_kv("hash", &format!("{hash:016x}"));
    }
    if let Some(value) = &observed.value {
        out.raw(",");
        out.string_kv("value", value);
    }
    out.raw("]}}");
}

fn field(out: &mut Out, field: &Field) {
    out.raw(r#"{"kvlistValue":{"values":["#);
    out.string_kv("axis", field.axis.as_str());
    out.raw(",");
    out.string_kv("path", &field.path);
    for (name, observed) in [("serving", &field.serving), ("shadow", &field.shadow)] {
        out.raw(r#",{"key":"#);
        out.string(name);
        out.raw(r#","value":"#);
        side(out, observed);
        out.raw("}");
    }
    match &field.hint {
        Some(Hint::Permutation { array_key }) => {
            out.raw(",");
            out.string_kv("hint", "permutation");
            if let Some(key) = array_key {
                out.raw(",");
                out.string_kv("array_key", key);
            }
        }
        Some(Hint::CaseOnly) => {
            out.raw(",");
            out.string_kv("hint", "case_only");
        }
        Some(Hint::Rounding) => {
            out.raw(",");
            out.string_kv("hint", "rounding");
        }
        None => {}
    }
    // A finite double as JSON writes it (serde_json's shortest form).
    if let Some(delta) = field.relative_delta.and_then(serde_json::Number::from_f64) {
        out.raw(",");
        out.open_kv("relative_delta", "doubleValue");
        out.raw(&delta.to_string());
        out.raw("}}");
    }
    out.raw("]}}");
}

/// One `logRecords` entry, as JSON text.
pub fn log_record(record: &Record) -> String {
    let mut out = Out(String::with_capacity(1024 + 320 * record.fields.len()));
    out.raw(r#"{"timeUnixNano":"#);
    out.string(&record.time_unix_nano.to_string());
    out.raw(r#","severityNumber":13,"severityText":"WARN","eventName":"#);
    out.string(record.event_name());
    out.raw(r#","body":{"stringValue":"#);
    let kind = if record.outcome == "unmatched" {
        "unmatched"
    } else {
        "failed"
    };
    out.string(&format!("{kind} {}", record.operation_id));
    out.raw(r#"},"attributes":["#);
    let strings = [
        ("parallel_run.operation_id", record.operation_id.as_str()),
        ("parallel_run.revision", &record.revision),
        ("parallel_run.request_id", &record.request_id),
        ("parallel_run.outcome", record.outcome),
        ("parallel_run.serving", record.serving_side),
        ("http.request.method", &record.method),
        ("url.path", &record.url_path),
        ("url.query", &record.url_query),
    ];
    out.list(strings, |out, (key, value)| out.string_kv(key, value));
    let statuses = [
        ("parallel_run.status.serving", record.status_serving),
        ("parallel_run.status.shadow", record.status_shadow),
    ];
    for (key, status) in statuses {
        if let Some(status) = status {
            out.raw(",");
            out.int_kv(key, u64::from(status));
        }
    }
    out.raw(",");
    out.int_kv("parallel_run.fields_omitted", record.fields_omitted);
    out.raw(",");
    out.open_kv("parallel_run.fields", "arrayValue");
    out.raw(r#"{"values":["#);
    out.list(&record.fields, field);
    out.raw("]}}}]}");
    out.0
}

/// One export request carrying `records` (each from [`log_record`]).
pub fn batch<S: AsRef<str>>(records: &[S], version: &str) -> String {
    let mut out = Out(String::with_capacity(
        records.iter().map(|r| r.as_ref().len() + 1).sum::<usize>() + 256,
    ));
    out.raw(
        r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"parallel-run"}}]},"scopeLogs":[{"scope":{"name":"parallel-run","version":"#,
    );
    out.string(version);
    out.raw(r#"},"logRecords":["#);
    out.list(records, |out, record| out.raw(record.as_ref()));
    out.raw("]}]}]}");
    out.0
}
