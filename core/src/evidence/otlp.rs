//! A record in OTLP/HTTP JSON (OpenTelemetry's logs data model, JSON
//! encoding): any OpenTelemetry Collector with an `otlphttp` receiver takes
//! it, and so does `parallel-run-ctl evidence serve`. The format is fixed
//! in README "Evidence"; 64-bit integers are strings, as OTLP JSON encodes
//! them.

use serde_json::{json, Value};

use super::{Field, Hint, Observed, Record};

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn int(key: &str, value: u64) -> Value {
    json!({"key": key, "value": {"intValue": value.to_string()}})
}

fn side(observed: &Observed) -> Value {
    let mut values = vec![string("type", observed.kind)];
    if let Some(shape) = observed.shape {
        values.push(string("shape", shape));
    }
    values.push(int("length", observed.length));
    if let Some(hash) = observed.hash {
        values.push(string("hash", &format!("{hash:016x}")));
    }
    if let Some(value) = &observed.value {
        values.push(string("value", value));
    }
    json!({"kvlistValue": {"values": values}})
}

fn field(field: &Field) -> Value {
    let mut values = vec![
        string("axis", field.axis.as_str()),
        string("path", &field.path),
        json!({"key": "serving", "value": side(&field.serving)}),
        json!({"key": "shadow", "value": side(&field.shadow)}),
    ];
    match &field.hint {
        Some(Hint::Permutation { array_key }) => {
            values.push(string("hint", "permutation"));
            if let Some(key) = array_key {
                values.push(string("array_key", key));
            }
        }
        Some(Hint::CaseOnly) => values.push(string("hint", "case_only")),
        Some(Hint::Rounding) => values.push(string("hint", "rounding")),
        None => {}
    }
    if let Some(delta) = field.relative_delta.filter(|d| d.is_finite()) {
        values.push(json!({"key": "relative_delta", "value": {"doubleValue": delta}}));
    }
    json!({"kvlistValue": {"values": values}})
}

/// One `logRecords` entry, as JSON text.
pub fn log_record(record: &Record) -> String {
    let mut attributes = vec![
        string("parallel_run.operation_id", &record.operation_id),
        string("parallel_run.revision", &record.revision),
        string("parallel_run.request_id", &record.request_id),
        string("parallel_run.outcome", record.outcome),
        string("parallel_run.serving", record.serving_side),
        string("http.request.method", &record.method),
        string("url.path", &record.url_path),
        string("url.query", &record.url_query),
    ];
    if let Some(status) = record.status_serving {
        attributes.push(int("parallel_run.status.serving", u64::from(status)));
    }
    if let Some(status) = record.status_shadow {
        attributes.push(int("parallel_run.status.shadow", u64::from(status)));
    }
    attributes.push(int("parallel_run.fields_omitted", record.fields_omitted));
    attributes.push(json!({
        "key": "parallel_run.fields",
        "value": {"arrayValue": {"values": record.fields.iter().map(field).collect::<Vec<_>>()}}
    }));
    let body = format!(
        "{} {}",
        if record.outcome == "unmatched" {
            "unmatched"
        } else {
            "failed"
        },
        record.operation_id
    );
    json!({
        "timeUnixNano": record.time_unix_nano.to_string(),
        "severityNumber": 13,
        "severityText": "WARN",
        "eventName": record.event_name(),
        "body": {"stringValue": body},
        "attributes": attributes,
    })
    .to_string()
}

/// One export request carrying `records` (each from [`log_record`]).
pub fn batch<S: AsRef<str>>(records: &[S], version: &str) -> String {
    let scope = json!({"name": "parallel-run", "version": version});
    let mut out = String::with_capacity(records.iter().map(|r| r.as_ref().len() + 1).sum::<usize>() + 256);
    out.push_str(
        r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"parallel-run"}}]},"scopeLogs":[{"scope":"#,
    );
    out.push_str(&scope.to_string());
    out.push_str(r#","logRecords":["#);
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(record.as_ref());
    }
    out.push_str("]}]}]}");
    out
}
