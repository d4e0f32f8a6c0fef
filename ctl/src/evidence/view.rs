//! How records are shown: `list` as one line per record, `show` as one
//! record with each differing field's two sides next to each other (type,
//! shape, length, hash, and the value only where the filter exported it),
//! the rows that differ marked `*`.

use serde_json::{json, Value};

use super::record::{Field, Side};
use super::store::{Counts, Stored};

/// `2026-12-01T10:00:00.123Z` from nanoseconds since the epoch (UTC).
pub fn utc(unix_nano: i64) -> String {
    let millis = unix_nano.div_euclid(1_000_000);
    let seconds = millis.div_euclid(1000);
    let (days, in_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = crate::revision::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        millis.rem_euclid(1000)
    )
}

pub fn list_lines(label: &str, counts: Counts, shown: &[Stored]) -> Vec<String> {
    let mut lines = vec![format!(
        "{label}: {} records stored, {} pruned (oldest, past the bound); {} shown, newest first",
        counts.records,
        counts.pruned,
        shown.len()
    )];
    if shown.is_empty() {
        return lines;
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "TIME".into(),
        "OPERATION".into(),
        "OUTCOME".into(),
        "REVISION".into(),
        "REQUEST-ID".into(),
        "REQUEST".into(),
        "FIELDS".into(),
    ]];
    for stored in shown {
        let r = &stored.record;
        rows.push(vec![
            stored.id.to_string(),
            utc(r.time_unix_nano),
            r.operation.clone(),
            r.outcome.clone(),
            r.revision.clone(),
            r.request_id.clone(),
            request_line(&r.method, &r.path, &r.query),
            field_count(r.fields.len(), r.fields_omitted),
        ]);
    }
    lines.extend(align(&rows));
    lines
}

pub fn list_json(label: &str, counts: Counts, shown: &[Stored]) -> Value {
    let records: Vec<Value> = shown
        .iter()
        .map(|stored| {
            let r = &stored.record;
            json!({
                "id": stored.id,
                "time": utc(r.time_unix_nano),
                "time_unix_nano": r.time_unix_nano,
                "operation": r.operation,
                "event": r.event,
                "outcome": r.outcome,
                "revision": r.revision,
                "request_id": r.request_id,
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "fields": r.fields.len(),
                "fields_omitted": r.fields_omitted,
            })
        })
        .collect();
    json!({"db": label, "stored": counts.records, "pruned": counts.pruned, "records": records})
}

fn request_line(method: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{method} {path}")
    } else {
        format!("{method} {path}?{query}")
    }
}

fn field_count(listed: usize, omitted: i64) -> String {
    if omitted > 0 {
        format!("{listed} (+{omitted} not listed)")
    } else {
        listed.to_string()
    }
}

pub fn show_lines(stored: &Stored) -> Vec<String> {
    let r = &stored.record;
    let serving = if r.serving.is_empty() {
        "serving"
    } else {
        r.serving.as_str()
    };
    let shadow = r.shadow_side();
    let status = |code: Option<i64>| code.map_or_else(|| "no reply".to_string(), |c| c.to_string());
    let mut lines = vec![
        format!(
            "record {}: {} {} at {}, revision {:?}",
            stored.id,
            r.operation,
            r.outcome,
            utc(r.time_unix_nano),
            r.revision
        ),
        format!(
            "request: {} (request id {:?})",
            request_line(&r.method, &r.path, &r.query),
            r.request_id
        ),
        format!(
            "status: {serving} {} (served the client), {shadow} {} (shadow)",
            status(r.status_serving),
            status(r.status_shadow)
        ),
        format!("fields: {} differ", field_count(r.fields.len(), r.fields_omitted)),
    ];
    let mut rows = vec![vec![
        String::new(),
        "FIELD".to_string(),
        String::new(),
        format!("{} (SERVING)", serving.to_uppercase()),
        format!("{} (SHADOW)", shadow.to_uppercase()),
    ]];
    for field in &r.fields {
        rows.extend(field_rows(field));
    }
    lines.push(String::new());
    lines.extend(align(&rows));
    lines.push(String::new());
    lines.push(
        "* marks what differs; hash: keyed, equal hashes mean equal values; value: only where raw values are allowed"
            .into(),
    );
    lines
}

/// One field: a head row, then a row per property, serving | shadow.
fn field_rows(field: &Field) -> Vec<Vec<String>> {
    let name = match field.axis.as_str() {
        "header" => format!("header:{}", field.path),
        "status" => "status".to_string(),
        _ if field.path.is_empty() => "(body)".to_string(),
        _ => field.path.clone(),
    };
    let mut hint = field.hint.clone().unwrap_or_default();
    if let Some(key) = &field.array_key {
        hint.push_str(&format!(" (key {key})"));
    }
    if let Some(delta) = field.relative_delta {
        hint.push_str(&format!(" relative delta {delta:e}"));
    }
    let hint = hint.trim().to_string();
    let mut rows = vec![vec![
        String::new(),
        name,
        field.axis.clone(),
        if hint.is_empty() {
            String::new()
        } else {
            format!("hint: {hint}")
        },
        String::new(),
    ]];
    type Property = fn(&Side) -> Option<String>;
    let properties: [(&str, Property); 5] = [
        ("type", |s| Some(s.kind.clone())),
        ("shape", |s| s.shape.clone()),
        ("length", |s| s.length.map(|l| l.to_string())),
        ("hash", |s| s.hash.clone()),
        ("value", |s| s.value.clone()),
    ];
    for (label, get) in properties {
        let (a, b) = (get(&field.serving), get(&field.shadow));
        if a.is_none() && b.is_none() {
            continue;
        }
        // A value exported on one side only is not a difference.
        let differs = a != b && (label != "value" || (a.is_some() && b.is_some()));
        let mark = if differs { "*" } else { "" };
        let shown = |v: Option<String>| match v {
            Some(v) => v,
            None if label == "value" => "(redacted)".into(),
            None => "-".into(),
        };
        rows.push(vec![mark.into(), String::new(), label.into(), shown(a), shown(b)]);
    }
    rows
}

pub fn show_json(stored: &Stored) -> Value {
    json!({
        "id": stored.id,
        "received_unix_ms": stored.received_unix_ms,
        "time": utc(stored.record.time_unix_nano),
        "record": stored.record,
    })
}

/// Columns padded to their widest cell, trailing spaces trimmed.
fn align(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|row| row.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(&format!("{cell:<width$}  "));
            }
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::{parse_request, tests as fixtures};
    use serde_json::json;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(1_764_633_600_000_000_000), "2025-12-02T00:00:00.000Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn show_puts_the_sides_next_to_each_other_and_marks_what_differs() {
        let rounding = fixtures::field_json(
            "body",
            "/items/0/price",
            fixtures::side_json("number", None, 4, "aaaa", None),
            fixtures::side_json("number", None, 4, "bbbb", None),
            &[
                ("hint", json!({"stringValue": "rounding"})),
                ("relative_delta", json!({"doubleValue": 3.2e-9})),
            ],
        );
        let body = fixtures::request_json(vec![fixtures::record_json(
            "getReturn",
            "r42",
            "req-1",
            vec![fixtures::timestamp_field(), rounding],
        )]);
        let record = parse_request(body.to_string().as_bytes(), fixtures::LIMITS)
            .unwrap()
            .remove(0);
        let stored = Stored {
            id: 7,
            received_unix_ms: 0,
            record,
        };
        let lines = show_lines(&stored);
        assert_eq!(
            lines[0],
            "record 7: getReturn unmatched at 2025-12-02T00:00:00.000Z, revision \"r42\""
        );
        assert_eq!(lines[1], "request: GET /returns/123?page=&sort= (request id \"req-1\")");
        assert_eq!(
            lines[2],
            "status: legacy 200 (served the client), candidate 200 (shadow)"
        );
        let text = lines.join("\n");
        let head = lines.iter().find(|l| l.contains("FIELD")).unwrap();
        assert!(
            head.find("LEGACY (SERVING)") < head.find("CANDIDATE (SHADOW)"),
            "{text}"
        );
        let row = |start: &str| {
            lines
                .iter()
                .find(|l| l.trim_start().starts_with(start))
                .cloned()
                .unwrap_or_else(|| panic!("no {start} in\n{text}"))
        };
        let hash = row("* ");
        assert!(
            hash.contains("hash") && hash.contains("9f2c4e1a0b3d5e7f") && hash.contains("0b3d5e7f9f2c4e1a"),
            "{text}"
        );
        assert!(
            row("/items/0/price").contains("hint: rounding relative delta 3.2e-9"),
            "{text}"
        );
        let value = lines.iter().find(|l| l.contains("value  ")).unwrap();
        assert!(
            value.contains("\"2026-12-01T10:00:00Z\"") && value.contains("(redacted)"),
            "{text}"
        );
        assert!(!value.starts_with('*'), "{text}");
        // Equal properties carry no mark.
        let shape = lines.iter().find(|l| l.contains("shape")).unwrap();
        assert!(!shape.starts_with('*'), "{text}");
        assert_eq!(
            show_json(&stored)["record"]["fields"][1]["relative_delta"],
            json!(3.2e-9)
        );
    }
}
