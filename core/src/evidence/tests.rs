#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::Value;

use super::*;
use crate::exchange::{CallReply, ServingReply};
use crate::header_map::HeaderMap;
use crate::http::Response;
use crate::lcg::Lcg;
use crate::outcome::compare_replies;
use crate::Plan;

const SECRET: &str = "0123456789abcdef-operator-secret";

/// A plan with one shadowed operation, evidence on, and `extra` members
/// (after a comma) in the operation and `evidence` object.
fn plan_with(operation_extra: &str, evidence_extra: &str) -> Plan {
    let json = format!(
        r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},
           "evidence_collector":{{"cluster":"otel","hash_key":"{SECRET}"}},
           "operations":[{{"id":"op","method":"GET","path":"/r/{{id}}","mode":"shadow",
             "evidence":{{"enabled":true{evidence_extra}}}{operation_extra}}}]}}"#
    );
    match Plan::parse(json.as_bytes()) {
        Ok(plan) => plan,
        Err(err) => panic!("{err}"),
    }
}

fn json(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: HeaderMap::from_pairs([("content-type", "application/json")]),
        body: body.as_bytes().to_vec(),
    }
}

fn request() -> Request<'static> {
    Request {
        request_id: "rid-1",
        path: "/r/7?page=2&sort=name&flag",
        time_unix_nano: 1_764_633_600_000_000_000,
    }
}

/// The record of comparing these two responses under the plan's rules.
fn record_of(plan: &Plan, serving: Response, shadow: Response) -> Record {
    let operation = &plan.operations[0];
    let serving = ServingReply::Complete(serving);
    let reply = CallReply::Complete(shadow);
    let outcome = compare_replies(&operation.settings.compare, &serving, &reply);
    let key = &plan.evidence_collector.as_ref().unwrap().hash_key;
    record(operation, &plan.revision, key, &request(), &serving, &reply, &outcome)
        .expect("an unmatched comparison has a record")
}

fn paths(record: &Record) -> Vec<&str> {
    record.fields.iter().map(|f| f.path.as_str()).collect()
}

fn field<'r>(record: &'r Record, path: &str) -> &'r Field {
    record
        .fields
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no field {path} in {:?}", paths(record)))
}

#[test]
fn the_record_names_the_concrete_locations_with_keys_hidden_like_diff_paths() {
    let plan = plan_with("", "");
    let record = record_of(
        &plan,
        json(200, r#"{"items":[{"price":10},{"price":20}],"total":30}"#),
        json(200, r#"{"items":[{"price":10},{"price":21}],"total":31}"#),
    );
    assert_eq!(paths(&record), ["/{}/1/{}", "/{}"]);
    assert_eq!(record.fields_omitted, 0);
    // Named where name_keys allows, indices always concrete.
    let plan = plan_with(r#","name_keys":["items","price"]"#, "");
    let record = record_of(
        &plan,
        json(200, r#"{"items":[{"price":10},{"price":20}],"total":30}"#),
        json(200, r#"{"items":[{"price":10},{"price":21}],"total":31}"#),
    );
    assert_eq!(paths(&record), ["/items/1/price", "/{}"]);
    // Each path generalises to the diff path the counters use.
    assert_eq!(crate::diff_path::generalize("/items/1/price"), "/items/*/price");
}

#[test]
fn values_are_redacted_by_default_to_type_shape_length_and_a_keyed_hash() {
    let plan = plan_with(r#","name_keys":true"#, "");
    let record = record_of(
        &plan,
        json(
            200,
            r#"{"at":"2026-12-01T10:00:00Z","id":"7d9f8a52-2c4b-4d0e-9a1f-3b6c5d7e8f90","n":"12"}"#,
        ),
        json(
            200,
            r#"{"at":"2026-12-01T10:00:01Z","id":"8d9f8a52-2c4b-4d0e-9a1f-3b6c5d7e8f90","n":"12.5"}"#,
        ),
    );
    let at = field(&record, "/at");
    assert_eq!(at.serving.kind, "string");
    assert_eq!(at.serving.shape, Some("iso8601"));
    assert_eq!(at.serving.length, 20);
    assert!(at.serving.value.is_none() && at.shadow.value.is_none());
    assert_ne!(at.serving.hash, at.shadow.hash);
    assert_eq!(field(&record, "/id").serving.shape, Some("uuid"));
    assert_eq!(field(&record, "/n").serving.shape, Some("integer"));
    assert_eq!(field(&record, "/n").shadow.shape, Some("decimal"));
}

#[test]
fn equal_values_hash_equal_and_the_hash_depends_on_the_key() {
    let plan = plan_with(r#","name_keys":true"#, "");
    // The value moved from one member to another: the hashes show it.
    let record = record_of(
        &plan,
        json(200, r#"{"a":"ann@example.com","b":{"x":1,"y":[1.0,2]}}"#),
        json(200, r#"{"a":"bob@example.com","c":{"y":[1,2],"x":1}}"#),
    );
    let b = field(&record, "/b");
    let c = field(&record, "/c");
    assert_eq!(b.shadow.kind, "missing");
    assert_eq!(c.serving.kind, "missing");
    assert_eq!(b.serving.hash, c.shadow.hash, "key order and 1 vs 1.0 do not matter");
    assert!(b.serving.hash.is_some());
    assert_eq!(b.shadow.hash, None);
    // Another operator's key, other hashes: nobody can test a guess without it.
    let other = HashKey::from_secret(b"another-secret-of-16+bytes");
    let mine = &plan.evidence_collector.as_ref().unwrap().hash_key;
    let value = serde_json::json!("ann@example.com");
    assert_ne!(
        Observed::json(&value, other.key(), false).hash,
        Observed::json(&value, mine.key(), false).hash
    );
    assert_eq!(
        field(&record, "/a").serving.hash,
        Observed::json(&value, mine.key(), false).hash
    );
}

#[test]
fn personal_data_reaches_a_record_neither_as_value_nor_as_key() {
    // A map keyed by account numbers, e-mail addresses as values.
    let serving = r#"{"accounts":{"DE89370400440532013000":{"owner":"ann@example.com","balance":10},
                      "GB29NWBK60161331926819":{"owner":"bob@example.com","balance":5}}}"#;
    let shadow = r#"{"accounts":{"DE89370400440532013000":{"owner":"ann.smith@example.com","balance":11},
                     "FR1420041010050500013M02606":{"owner":"carl@example.com","balance":5}}}"#;
    let secrets = [
        "DE89370400440532013000",
        "GB29NWBK60161331926819",
        "FR1420041010050500013M02606",
        "ann@example.com",
        "ann.smith@example.com",
        "bob@example.com",
        "carl@example.com",
        "owner",
        "balance",
        "accounts",
        SECRET,
    ];
    let plan = plan_with("", "");
    let record = record_of(&plan, json(200, serving), json(200, shadow));
    let text = log_record(&record);
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    assert_eq!(record.fields.len(), 4, "{:?}", paths(&record));
    assert!(paths(&record).iter().all(|p| p.starts_with("/{}/{}")));
    // Allowed: the keys by name_keys, one field's raw value by raw_values;
    // the account numbers stay hidden.
    let plan = plan_with(
        r#","name_keys":["accounts","owner","balance"]"#,
        r#","raw_values":["/accounts/*/owner"]"#,
    );
    let record = record_of(&plan, json(200, serving), json(200, shadow));
    let text = log_record(&record);
    assert!(text.contains("ann.smith@example.com"), "{text}");
    assert!(text.contains("/accounts/{}/owner"), "{text}");
    for secret in &secrets[..3] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
    let balance = field(&record, "/accounts/{}/balance");
    assert!(balance.serving.value.is_none(), "balance is not allowed raw");
}

#[test]
fn raw_values_for_the_whole_operation_and_for_headers_by_name() {
    let mut serving = json(200, r#"{"a":1}"#);
    let mut shadow = json(200, r#"{"a":2}"#);
    serving.headers = serving.headers.with("etag", b"\"v1\"");
    shadow.headers = shadow.headers.with("etag", b"\"v2\"");
    serving.headers = serving.headers.with("x-user", b"ann");
    shadow.headers = shadow.headers.with("x-user", b"bob");
    let plan = plan_with("", r#","raw_values":["ETag"]"#);
    let record = record_of(&plan, serving.clone(), shadow.clone());
    assert_eq!(field(&record, "etag").serving.value.as_deref(), Some(r#""\"v1\"""#));
    assert_eq!(field(&record, "etag").serving.shape, Some("text"));
    assert_eq!(field(&record, "x-user").serving.value, None);
    assert_eq!(field(&record, "/{}").serving.value, None);
    let plan = plan_with("", r#","raw_values":true"#);
    let record = record_of(&plan, serving, shadow);
    assert_eq!(field(&record, "x-user").shadow.value.as_deref(), Some("\"bob\""));
    assert_eq!(field(&record, "/{}").shadow.value.as_deref(), Some("2"));
}

#[test]
fn the_record_bound_is_exact_about_what_it_leaves_out() {
    let plan = plan_with("", "");
    let serving: Vec<String> = (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let shadow: Vec<String> = (0..100).map(|i| format!(r#""k{i}":{}"#, i + 1)).collect();
    let record = record_of(
        &plan,
        json(200, &format!("{{{}}}", serving.join(","))),
        json(500 - 99, &format!("{{{}}}", shadow.join(","))),
    );
    // 100 body fields and the status.
    assert_eq!(record.fields.len(), MAX_FIELDS);
    assert_eq!(record.fields_omitted, 101 - MAX_FIELDS as u64);
    assert_eq!(record.fields[0].axis, Axis::Status);
    assert_eq!(record.fields[0].path, "");
    assert_eq!(record.fields[0].serving.value.as_deref(), Some("200"));
    assert_eq!(record.fields[0].shadow.value.as_deref(), Some("401"));
}

#[test]
fn a_permutation_is_one_field_with_the_key_that_would_pair_it() {
    let plan = plan_with(r#","name_keys":true"#, "");
    let record = record_of(
        &plan,
        json(
            200,
            r#"{"items":[{"sku":"a","id":1,"n":2},{"sku":"b","id":2,"n":2}],"tags":[1,2,3]}"#,
        ),
        json(
            200,
            r#"{"items":[{"sku":"b","id":2,"n":2},{"sku":"a","id":1,"n":2}],"tags":[3,2,1]}"#,
        ),
    );
    assert_eq!(paths(&record), ["/items", "/tags"]);
    assert_eq!(
        field(&record, "/items").hint,
        Some(Hint::Permutation {
            array_key: Some("/id".into())
        })
    );
    assert_eq!(
        field(&record, "/tags").hint,
        Some(Hint::Permutation { array_key: None })
    );
    // The key is shown as name_keys allows.
    let plan = plan_with("", "");
    let record = record_of(
        &plan,
        json(200, r#"[{"id":1},{"id":2}]"#),
        json(200, r#"[{"id":2},{"id":1}]"#),
    );
    assert_eq!(
        field(&record, "").hint,
        Some(Hint::Permutation {
            array_key: Some("/{}".into())
        })
    );
}

#[test]
fn unordered_arrays_pair_as_the_comparison_does() {
    let plan = plan_with(
        r#","name_keys":true,"compare":{"unordered_arrays":[{"path":"/items","key":"/id"},"/tags"]}"#,
        "",
    );
    let record = record_of(
        &plan,
        json(200, r#"{"items":[{"id":1,"p":5},{"id":2,"p":6}],"tags":["x","y"]}"#),
        json(200, r#"{"items":[{"id":2,"p":7},{"id":1,"p":5}],"tags":["y","z"]}"#),
    );
    // The pair with id 2 differs in p (at the serving element's index); the
    // tags differ in one element, compared in depth as a leftover pair.
    assert_eq!(paths(&record), ["/items/1/p", "/tags/0"]);
}

#[test]
fn keys_that_differ_only_in_case_are_one_field_with_the_hint() {
    let plan = plan_with(r#","name_keys":true"#, "");
    let record = record_of(
        &plan,
        json(200, r#"{"Content-Type":"a","x":1}"#),
        json(200, r#"{"content-type":"a","y":1}"#),
    );
    assert_eq!(field(&record, "/Content-Type").hint, Some(Hint::CaseOnly));
    assert_eq!(field(&record, "/Content-Type").shadow.kind, "string");
    assert_eq!(field(&record, "/x").shadow.kind, "missing");
    assert_eq!(field(&record, "/y").serving.kind, "missing");
    assert_eq!(record.fields.len(), 3);
}

#[test]
fn numbers_carry_their_relative_delta_and_rounding_is_hinted() {
    let plan = plan_with(r#","name_keys":true"#, "");
    let record = record_of(
        &plan,
        json(200, r#"{"a":0.30000000000000004,"b":10,"c":0}"#),
        json(200, r#"{"a":0.3,"b":12,"c":0.0}"#),
    );
    let a = field(&record, "/a");
    assert_eq!(a.hint, Some(Hint::Rounding));
    assert!(a.relative_delta.unwrap() < 1e-15);
    let b = field(&record, "/b");
    assert_eq!(b.hint, None);
    assert!((b.relative_delta.unwrap() - 2.0 / 12.0).abs() < 1e-12);
    assert_eq!(record.fields.len(), 2, "0 equals 0.0");
}

#[test]
fn the_rules_leave_out_what_they_excuse() {
    let plan = plan_with(
        r#","name_keys":true,"compare":{"ignore_json_paths":["/etag"],"masks":["uuid"],"null_equals_missing":true,
            "number_tolerance":{"absolute":0.5}}"#,
        "",
    );
    let record = record_of(
        &plan,
        json(
            200,
            r#"{"etag":"1","id":"7d9f8a52-2c4b-4d0e-9a1f-3b6c5d7e8f90","n":1.0,"gone":null,"x":1}"#,
        ),
        json(
            200,
            r#"{"etag":"2","id":"8d9f8a52-2c4b-4d0e-9a1f-3b6c5d7e8f90","n":1.2,"x":2}"#,
        ),
    );
    assert_eq!(paths(&record), ["/x"]);
}

#[test]
fn deep_documents_are_walked_without_recursion_to_the_bound() {
    let plan = plan_with("", "");
    let nested = |leaf: u8| format!("{}{leaf}{}", "[".repeat(120), "]".repeat(120));
    let record = record_of(&plan, json(200, &nested(1)), json(200, &nested(2)));
    assert_eq!(record.fields.len(), 1);
    assert_eq!(record.fields[0].path, format!("{}", "/0".repeat(120)));
    // Many differing elements: counted, not all listed.
    let left: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    let right: Vec<String> = (0..5000).map(|i| (i + 1).to_string()).collect();
    let record = record_of(
        &plan,
        json(200, &format!("[{}]", left.join(","))),
        json(200, &format!("[{}]", right.join(","))),
    );
    assert_eq!(record.fields.len() as u64 + record.fields_omitted, 5000);
}

#[test]
fn a_body_that_is_not_json_is_one_field_of_bytes() {
    let plan = plan_with("", "");
    let text = |body: &str| Response {
        status: 200,
        headers: HeaderMap::from_pairs([("content-type", "text/plain")]),
        body: body.as_bytes().to_vec(),
    };
    let record = record_of(&plan, text("hello ann@example.com"), text("hello bob@example.com"));
    assert_eq!(paths(&record), [""]);
    let body = &record.fields[0];
    assert_eq!(
        (body.axis, body.serving.kind, body.serving.length),
        (Axis::Body, "bytes", 21)
    );
    assert_eq!(body.serving.value, None);
    assert!(!log_record(&record).contains("example.com"));
    let plan = plan_with("", r#","raw_values":true"#);
    let record = record_of(&plan, text("hello ann"), text("hello bob"));
    assert_eq!(record.fields[0].shadow.value.as_deref(), Some("\"hello bob\""));
    // Every value is JSON text, and a long one is cut before it is quoted.
    let long = "x".repeat(5000);
    let record = record_of(&plan, text(&long), text("y"));
    let value: Value = serde_json::from_str(record.fields[0].serving.value.as_deref().unwrap()).unwrap();
    assert_eq!(value.as_str().map(str::len), Some(MAX_RAW_VALUE_BYTES));
    assert_eq!(record.fields[0].serving.length, 5000);
}

#[test]
fn query_values_are_dropped_and_their_names_kept() {
    let plan = plan_with("", "");
    let record = record_of(&plan, json(200, "[1]"), json(200, "[2]"));
    assert_eq!(record.url_path, "/r/7");
    assert_eq!(record.url_query, "page=&sort=&flag=");
    assert_eq!(record.method, "GET");
    assert_eq!(record.serving_side, "legacy");
    assert_eq!(record.request_id, "rid-1");
    let (path, query) = split_url("/a?x=ann%40example.com");
    assert_eq!((path.as_str(), query.as_str()), ("/a", "x="));
}

#[test]
fn failed_outcomes_have_a_record_only_when_asked_for() {
    let key = HashKey::from_secret(SECRET.as_bytes());
    let serving = ServingReply::Complete(json(200, "{}"));
    let timeout = Outcome::Failed(Failure::Timeout);
    let plan = plan_with("", "");
    let operation = &plan.operations[0];
    assert!(record(operation, "", &key, &request(), &serving, &CallReply::Timeout, &timeout).is_none());
    let plan = plan_with("", r#","failed":true"#);
    let operation = &plan.operations[0];
    let failed = record(
        operation,
        "r1",
        &key,
        &request(),
        &serving,
        &CallReply::Timeout,
        &timeout,
    )
    .unwrap();
    assert_eq!(failed.outcome, "failed_timeout");
    assert_eq!(failed.event_name(), "parallel_run.failed");
    assert_eq!((failed.status_serving, failed.status_shadow), (Some(200), None));
    assert!(failed.fields.is_empty());
    let text = log_record(&failed);
    assert!(!text.contains("parallel_run.status.shadow"), "{text}");
    assert!(record(
        operation,
        "",
        &key,
        &request(),
        &serving,
        &CallReply::Timeout,
        &Outcome::Matched
    )
    .is_none());
}

/// The value of an OTLP attribute list entry.
fn attribute<'v>(attributes: &'v Value, key: &str) -> &'v Value {
    attributes
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn the_otlp_json_is_the_documented_format() {
    let plan = plan_with(r#","name_keys":true"#, r#","raw_values":["/price"]"#);
    let record = record_of(
        &plan,
        json(200, r#"{"price":10.0,"tags":[1,2]}"#),
        json(404, r#"{"price":10.00000001,"tags":[2,1]}"#),
    );
    let text = batch(&[log_record(&record), log_record(&record)], "0.1.0");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let resource = &doc["resourceLogs"][0];
    assert_eq!(
        attribute(&resource["resource"]["attributes"], "service.name")["stringValue"],
        "parallel-run"
    );
    let scope = &resource["scopeLogs"][0];
    assert_eq!(scope["scope"]["name"], "parallel-run");
    assert_eq!(scope["scope"]["version"], "0.1.0");
    let logs = scope["logRecords"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    let log = &logs[0];
    assert_eq!(log["timeUnixNano"], "1764633600000000000");
    assert_eq!(log["severityNumber"], 13);
    assert_eq!(log["severityText"], "WARN");
    assert_eq!(log["eventName"], "parallel_run.unmatched");
    assert_eq!(log["body"]["stringValue"], "unmatched op");
    let attributes = &log["attributes"];
    assert_eq!(attribute(attributes, "parallel_run.operation_id")["stringValue"], "op");
    assert_eq!(
        attribute(attributes, "parallel_run.outcome")["stringValue"],
        "unmatched"
    );
    assert_eq!(attribute(attributes, "parallel_run.serving")["stringValue"], "legacy");
    assert_eq!(attribute(attributes, "http.request.method")["stringValue"], "GET");
    assert_eq!(attribute(attributes, "url.path")["stringValue"], "/r/7");
    assert_eq!(attribute(attributes, "url.query")["stringValue"], "page=&sort=&flag=");
    assert_eq!(attribute(attributes, "parallel_run.status.serving")["intValue"], "200");
    assert_eq!(attribute(attributes, "parallel_run.status.shadow")["intValue"], "404");
    assert_eq!(attribute(attributes, "parallel_run.fields_omitted")["intValue"], "0");
    let fields = attribute(attributes, "parallel_run.fields")["arrayValue"]["values"]
        .as_array()
        .unwrap();
    assert_eq!(fields.len(), 3);
    let entry = |i: usize| &fields[i]["kvlistValue"]["values"];
    assert_eq!(attribute(entry(0), "axis")["stringValue"], "status");
    assert_eq!(attribute(entry(0), "path")["stringValue"], "");
    let price = entry(1);
    assert_eq!(attribute(price, "path")["stringValue"], "/price");
    assert_eq!(attribute(price, "hint")["stringValue"], "rounding");
    assert!(attribute(price, "relative_delta")["doubleValue"].as_f64().unwrap() < 1e-6);
    let serving = &attribute(price, "serving")["kvlistValue"]["values"];
    assert_eq!(attribute(serving, "type")["stringValue"], "number");
    assert_eq!(attribute(serving, "length")["intValue"], "4");
    assert_eq!(attribute(serving, "value")["stringValue"], "10.0");
    assert_eq!(attribute(serving, "hash")["stringValue"].as_str().unwrap().len(), 16);
    let tags = entry(2);
    assert_eq!(attribute(tags, "hint")["stringValue"], "permutation");
    let tags_serving = &attribute(tags, "serving")["kvlistValue"]["values"];
    assert!(
        tags_serving.as_array().unwrap().iter().all(|kv| kv["key"] != "value"),
        "/tags is not allowed raw"
    );
}

#[test]
fn the_hash_key_is_never_shown() {
    let plan = plan_with("", "");
    let shown = format!("{plan:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("HashKey(<secret>)"));
}

#[test]
fn string_shapes() {
    for (text, expected) in [
        ("", "empty"),
        ("7d9f8a52-2c4b-4d0e-9a1f-3b6c5d7e8f90", "uuid"),
        ("2026-12-01T10:00:00Z", "iso8601"),
        ("2026-12-01 10:00", "iso8601"),
        ("2026-12-01", "integer_or_text"),
        ("Sun, 06 Nov 1994 08:49:37 GMT", "http_date"),
        ("-42", "integer"),
        ("3.14", "decimal"),
        ("deadbeef", "hex"),
        ("ann@example.com", "text"),
    ] {
        let got = shape(text);
        if expected == "integer_or_text" {
            assert_eq!(got, "text", "{text}: a date alone is text");
        } else {
            assert_eq!(got, expected, "{text}");
        }
    }
}

#[test]
fn the_written_json_escapes_what_a_client_or_a_backend_chose() {
    let plan = plan_with(r#","name_keys":true"#, r#","raw_values":true"#);
    let record = record_of(
        &plan,
        json(200, r#"{"a\"b\\c\n":"x\u0001\"y","e":"é"}"#),
        json(200, r#"{"a\"b\\c\n":"z\t","e":"ü"}"#),
    );
    let doc: Value = serde_json::from_str(&batch(&[log_record(&record)], "v\"1")).unwrap();
    let log = &doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    let fields = attribute(&log["attributes"], "parallel_run.fields")["arrayValue"]["values"]
        .as_array()
        .unwrap();
    let first = &fields[0]["kvlistValue"]["values"];
    assert_eq!(attribute(first, "path")["stringValue"], "/a\"b\\c\n");
    let serving = &attribute(first, "serving")["kvlistValue"]["values"];
    assert_eq!(attribute(serving, "value")["stringValue"], r#""x\u0001\"y""#);
    assert_eq!(doc["resourceLogs"][0]["scopeLogs"][0]["scope"]["version"], "v\"1");
}

/// A document no one wrote, from the tests' generator.
fn value(lcg: &mut Lcg, depth: usize) -> Value {
    match lcg.next(if depth > 6 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(lcg.next(2) == 1),
        2 => serde_json::json!(lcg.next(5) as f64 / 2.0),
        3 => Value::String(["a", "A", "ann@example.com", "", "2026-12-01T10:00:00Z"][lcg.next(5) as usize].into()),
        4 | 5 => Value::Array((0..lcg.next(5)).map(|_| value(lcg, depth + 1)).collect()),
        _ => Value::Object(
            (0..lcg.next(5))
                .map(|_| {
                    (
                        ["id", "Id", "x", "k~/"][lcg.next(4) as usize].to_string(),
                        value(lcg, depth + 1),
                    )
                })
                .collect(),
        ),
    }
}

#[test]
fn any_two_documents_give_a_bounded_record_without_panicking() {
    let plans = [
        plan_with("", ""),
        plan_with(
            r#","name_keys":true,"compare":{"unordered_arrays":[{"path":"/*","key":"/id"},""],"null_equals_missing":true,"number_tolerance":{"relative":0.1}}"#,
            r#","raw_values":["/x","/*/id"]"#,
        ),
    ];
    let mut lcg = Lcg(7);
    for round in 0..2000 {
        let plan = &plans[round % plans.len()];
        let (left, right) = (value(&mut lcg, 0), value(&mut lcg, 0));
        let serving = json(200, &left.to_string());
        let shadow = json(200, &right.to_string());
        let operation = &plan.operations[0];
        let served = ServingReply::Complete(serving);
        let reply = CallReply::Complete(shadow);
        let outcome = compare_replies(&operation.settings.compare, &served, &reply);
        let key = &plan.evidence_collector.as_ref().unwrap().hash_key;
        let Some(record) = record(operation, "", key, &request(), &served, &reply, &outcome) else {
            assert!(matches!(outcome, Outcome::Matched), "{left} / {right}: {outcome:?}");
            continue;
        };
        assert!(
            !record.fields.is_empty(),
            "{left} / {right}: an unmatched comparison lists a field"
        );
        assert!(record.fields.len() <= MAX_FIELDS);
        let text = batch(&[log_record(&record)], "t");
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
        if round % plans.len() == 0 {
            assert!(!text.contains("ann@example.com"), "{text}");
        }
    }
}
