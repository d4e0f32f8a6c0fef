//! `evidence` and `evidence_collector`: off by default, merged field by
//! field, refused with the field path when out of bounds or without effect,
//! and the hash key never quoted.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{config, parse_err, parse_ok, with_ops};
use crate::evidence::{Policy, RawValues, DEFAULT_COLLECTOR_PATH, DEFAULT_RECORDS_PER_MINUTE};

const KEY: &str = "a-secret-of-sixteen-bytes-or-more";

fn collector(extra: &str) -> String {
    format!(r#""evidence_collector":{{"cluster":"otel","hash_key":"{KEY}"{extra}}}"#)
}

/// One GET operation with `op` members, the collector with `extra` members.
fn with(op: &str, extra: &str) -> String {
    config(&format!(
        r#"{},"operations":[{{"id":"a","method":"GET","path":"/a"{op}}}]"#,
        collector(extra)
    ))
}

#[test]
fn evidence_is_off_unless_an_operation_turns_it_on() {
    let plan = parse_ok(&with_ops(r#"{"id":"a","method":"GET","path":"/a"}"#));
    assert_eq!(plan.operations[0].settings.evidence, None);
    assert!(plan.evidence_collector.is_none());
    let plan = parse_ok(&with(r#","evidence":{"enabled":true}"#, ""));
    assert_eq!(
        plan.operations[0].settings.evidence,
        Some(Policy {
            records_per_minute: DEFAULT_RECORDS_PER_MINUTE,
            failed: false,
            raw_values: RawValues::None,
        })
    );
    let collector = plan.evidence_collector.unwrap();
    assert_eq!(collector.path, DEFAULT_COLLECTOR_PATH);
    assert_eq!(
        (
            collector.timeout_ms,
            collector.max_inflight,
            collector.records_per_minute
        ),
        (1000, 2, 60)
    );
}

#[test]
fn an_operation_merges_its_evidence_over_the_defaults_field_by_field() {
    let plan = parse_ok(&config(&format!(
        r#"{},"defaults":{{"evidence":{{"records_per_minute":12,"failed":true}}}},
           "operations":[{{"id":"a","method":"GET","path":"/a","evidence":{{"enabled":true,"raw_values":["/items/*/price","ETag"]}}}},
                         {{"id":"b","method":"GET","path":"/b"}}]"#,
        collector(r#","path":"/otlp/v1/logs","timeout_ms":250,"max_inflight":4,"records_per_minute":100"#)
    )));
    let policy = plan.operations[0].settings.evidence.as_ref().unwrap();
    assert_eq!((policy.records_per_minute, policy.failed), (12, true));
    let RawValues::Only { json_paths, headers } = &policy.raw_values else {
        panic!("{:?}", policy.raw_values);
    };
    assert_eq!((json_paths.len(), headers.as_slice()), (1, &["etag".to_string()][..]));
    assert_eq!(
        plan.operations[1].settings.evidence, None,
        "defaults alone do not turn it on"
    );
    let collector = plan.evidence_collector.unwrap();
    assert_eq!((collector.path.as_str(), collector.timeout_ms), ("/otlp/v1/logs", 250));
    assert_eq!((collector.max_inflight, collector.records_per_minute), (4, 100));
}

#[test]
fn settings_without_effect_are_refused() {
    // Raw values, failed outcomes or a rate for an operation without evidence.
    for (field, value) in [("raw_values", "true"), ("failed", "true"), ("records_per_minute", "5")] {
        let err = parse_err(&with(&format!(r#","evidence":{{"{field}":{value}}}"#), ""));
        assert_eq!(err.path, format!("operations[0].evidence.{field}"), "{err}");
        assert!(err.message.contains("no effect"), "{err}");
    }
    // Evidence that goes nowhere.
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","evidence":{"enabled":true}}"#,
    ));
    assert_eq!(err.path, "operations[0].evidence.enabled");
    assert!(err.message.contains("evidence_collector"), "{err}");
    // A collector nothing sends to.
    let err = parse_err(&with("", ""));
    assert_eq!(err.path, "evidence_collector");
    // Defaults that no operation uses.
    let err = parse_err(&config(&format!(
        r#"{},"defaults":{{"evidence":{{"raw_values":true}}}},"operations":[{{"id":"a","method":"GET","path":"/a"}}]"#,
        collector("")
    )));
    assert_eq!(err.path, "defaults.evidence.raw_values");
    // An unsafe method that is never shadowed has no comparison to record.
    let err = parse_err(&config(&format!(
        r#"{},"operations":[{{"id":"a","method":"POST","path":"/a","evidence":{{"enabled":true}}}}]"#,
        collector("")
    )));
    assert_eq!(err.path, "operations[0].evidence.enabled");
    let plan = parse_ok(&config(&format!(
        r#"{},"defaults":{{"shadow_unsafe":true}},"operations":[{{"id":"a","method":"POST","path":"/a","evidence":{{"enabled":true}}}}]"#,
        collector("")
    )));
    assert!(plan.operations[0].settings.evidence.is_some());
}

#[test]
fn collector_settings_are_bounded() {
    let on = r#","evidence":{"enabled":true}"#;
    for (extra, path) in [
        (r#","timeout_ms":0"#, "evidence_collector.timeout_ms"),
        (r#","timeout_ms":60001"#, "evidence_collector.timeout_ms"),
        (r#","max_inflight":0"#, "evidence_collector.max_inflight"),
        (r#","max_inflight":17"#, "evidence_collector.max_inflight"),
        (r#","records_per_minute":6001"#, "evidence_collector.records_per_minute"),
        (r#","path":"v1/logs""#, "evidence_collector.path"),
        (r#","path":"/a b""#, "evidence_collector.path"),
        (r#","authority":"a b""#, "evidence_collector.authority"),
        (r#","colour":"red""#, "evidence_collector.colour"),
    ] {
        let err = parse_err(&with(on, extra));
        assert_eq!(err.path, path, "{extra}: {err}");
    }
    for (op, path) in [
        (
            r#","evidence":{"enabled":true,"records_per_minute":0}"#,
            "operations[0].evidence.records_per_minute",
        ),
        (
            r#","evidence":{"enabled":true,"records_per_minute":601}"#,
            "operations[0].evidence.records_per_minute",
        ),
        (
            r#","evidence":{"enabled":true,"raw_values":["a b"]}"#,
            "operations[0].evidence.raw_values[0]",
        ),
        (
            r#","evidence":{"enabled":true,"raw_values":["/a~2"]}"#,
            "operations[0].evidence.raw_values[0]",
        ),
        (
            r#","evidence":{"enabled":true,"raw_values":[""]}"#,
            "operations[0].evidence.raw_values[0]",
        ),
        (r#","evidence":{"enabled":"yes"}"#, "operations[0].evidence.enabled"),
    ] {
        let err = parse_err(&with(op, ""));
        assert_eq!(err.path, path, "{op}: {err}");
    }
    let long = format!(
        r#","evidence":{{"enabled":true,"raw_values":["/{}"]}}"#,
        "a".repeat(1024)
    );
    assert_eq!(parse_err(&with(&long, "")).path, "operations[0].evidence.raw_values[0]");
    let many: Vec<String> = (0..65).map(|i| format!("\"/f{i}\"")).collect();
    let op = format!(r#","evidence":{{"enabled":true,"raw_values":[{}]}}"#, many.join(","));
    let err = parse_err(&with(&op, ""));
    assert_eq!(err.path, "operations[0].evidence.raw_values");
}

#[test]
fn the_hash_key_is_required_bounded_and_never_quoted() {
    let on = r#","operations":[{"id":"a","method":"GET","path":"/a","evidence":{"enabled":true}}]"#;
    let err = parse_err(&config(&format!(r#""evidence_collector":{{"cluster":"otel"}}{on}"#)));
    assert_eq!(err.path, "evidence_collector.hash_key");
    for key in ["short-secret-15b", "x".repeat(257).as_str()] {
        let key = if key.len() == 16 { &key[..15] } else { key };
        let err = parse_err(&config(&format!(
            r#""evidence_collector":{{"cluster":"otel","hash_key":"{key}"}}{on}"#
        )));
        assert_eq!(err.path, "evidence_collector.hash_key");
        assert!(!err.to_string().contains(key), "{err}");
    }
    // A plan's debug form, what a log of it would show, hides the key.
    let plan = parse_ok(&with(r#","evidence":{"enabled":true}"#, ""));
    assert!(!format!("{plan:?}").contains(KEY));
}
