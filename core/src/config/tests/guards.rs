//! `readiness` and `circuit_breaker`: defaults, merging field by field, and
//! refusals with the field path.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{config, parse_err, parse_ok, with_ops};
use crate::breaker;
use crate::window::Rule;

#[test]
fn built_in_defaults_apply_without_settings() {
    let plan = parse_ok(&with_ops(r#"{"id":"a","method":"GET","path":"/a"}"#));
    assert_eq!(plan.operations[0].settings.readiness, Rule::default());
    assert_eq!(
        plan.operations[0].settings.circuit_breaker,
        Some(breaker::Settings::default())
    );
}

#[test]
fn an_operation_overrides_the_defaults_field_by_field() {
    let plan = parse_ok(&config(
        r#""defaults":{"readiness":{"window_s":1200,"confidence":0.99},"circuit_breaker":{"cooldown_s":60}},
           "operations":[{"id":"a","method":"GET","path":"/a","readiness":{"window_s":300.0,"ready_after_s":0},
                          "circuit_breaker":{"probes":2}},
                         {"id":"b","method":"GET","path":"/b","circuit_breaker":{"enabled":false}}]"#,
    ));
    let a = &plan.operations[0];
    assert_eq!(
        a.settings.readiness,
        Rule {
            window_s: 300,
            confidence: 0.99,
            ready_after_s: 0,
            ..Rule::default()
        }
    );
    let breaker = a.settings.circuit_breaker.unwrap();
    assert_eq!((breaker.cooldown_s, breaker.probes), (60, 2));
    assert_eq!(plan.operations[1].settings.circuit_breaker, None, "switched off");
    assert_eq!(plan.operations[1].settings.readiness.window_s, 1200);
}

#[test]
fn bad_values_are_refused_with_the_field_path() {
    let cases = [
        (r#""readiness":{"window_s":0}"#, "defaults.readiness.window_s"),
        (r#""readiness":{"window_s":86401}"#, "defaults.readiness.window_s"),
        (r#""readiness":{"confidence":1}"#, "defaults.readiness.confidence"),
        (
            r#""readiness":{"max_failure_rate":1.5}"#,
            "defaults.readiness.max_failure_rate",
        ),
        (
            r#""readiness":{"max_latency_ratio":0.5}"#,
            "defaults.readiness.max_latency_ratio",
        ),
        (
            r#""readiness":{"ready_after_s":604801}"#,
            "defaults.readiness.ready_after_s",
        ),
        (r#""readiness":{"window":600}"#, "defaults.readiness"),
        (
            r#""circuit_breaker":{"failure_rate":0}"#,
            "defaults.circuit_breaker.failure_rate",
        ),
        (
            r#""circuit_breaker":{"min_calls":0}"#,
            "defaults.circuit_breaker.min_calls",
        ),
        (r#""circuit_breaker":{"probes":101}"#, "defaults.circuit_breaker.probes"),
        (r#""circuit_breaker":true"#, "defaults.circuit_breaker"),
    ];
    for (settings, path) in cases {
        let err = parse_err(&config(&format!(r#""defaults":{{{settings}}}"#)));
        assert!(err.path.starts_with(path), "{settings}: {err}");
    }
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","readiness":{"confidence":0.2}}"#,
    ));
    assert_eq!(err.path, "operations[0].readiness.confidence", "{err}");
}

#[test]
fn object_keys_are_named_only_where_allowed() {
    use crate::diff_path::KeyNames;
    let plan = parse_ok(&config(
        r#""defaults":{"name_keys":["status","items"]},
           "operations":[{"id":"a","method":"GET","path":"/a"},
                         {"id":"b","method":"GET","path":"/b","name_keys":true},
                         {"id":"c","method":"GET","path":"/c","name_keys":false}]"#,
    ));
    assert_eq!(
        plan.operations[0].settings.key_names,
        KeyNames::Only(vec!["status".into(), "items".into()])
    );
    assert_eq!(plan.operations[1].settings.key_names, KeyNames::All);
    assert_eq!(plan.operations[2].settings.key_names, KeyNames::Hidden);
    let default = parse_ok(&with_ops(r#"{"id":"a","method":"GET","path":"/a"}"#));
    assert_eq!(
        default.operations[0].settings.key_names,
        KeyNames::Hidden,
        "keys can be data: hidden by default"
    );
    let err = parse_err(&config(r#""defaults":{"name_keys":"yes"}"#));
    assert!(
        err.path.starts_with("defaults.name_keys") && err.message.contains("true, false, or a list"),
        "{err}"
    );
    let err = parse_err(&config(r#""defaults":{"name_keys":["ok",""]}"#));
    assert_eq!(err.path, "defaults.name_keys[1]", "{err}");
}

#[test]
fn shadow_header_rules_are_validated_and_inherited_whole() {
    let plan = parse_ok(&config(
        r#""defaults":{"shadow_headers":{"remove":["Authorization","cookie"]}},
           "operations":[{"id":"a","method":"GET","path":"/a"},
                         {"id":"b","method":"GET","path":"/b","shadow_headers":{"set":{"X-Api-Key":"test"}}}]"#,
    ));
    assert_eq!(
        plan.operations[0].settings.shadow_headers.remove,
        ["authorization", "cookie"]
    );
    assert_eq!(
        plan.operations[1].settings.shadow_headers.remove,
        ["authorization", "cookie"],
        "remove inherited"
    );
    assert_eq!(
        plan.operations[1].settings.shadow_headers.set,
        [("x-api-key".to_string(), "test".to_string())]
    );
    let cases = [
        (r#"{"remove":[":authority"]}"#, "defaults.shadow_headers.remove[0]"),
        (
            r#"{"remove":["x-parallel-run-shadow"]}"#,
            "defaults.shadow_headers.remove[0]",
        ),
        (r#"{"remove":["content-length"]}"#, "defaults.shadow_headers.remove[0]"),
        (
            r#"{"set":{"authorization":"a\r\nx-evil: 1"}}"#,
            "defaults.shadow_headers.set.authorization",
        ),
        (r#"{"set":{"bad name":"v"}}"#, "defaults.shadow_headers.set.bad name"),
        (r#"{"keep":["a"]}"#, "defaults.shadow_headers"),
    ];
    for (rules, path) in cases {
        let err = parse_err(&config(&format!(r#""defaults":{{"shadow_headers":{rules}}}"#)));
        assert!(err.path.starts_with(path), "{rules}: {err}");
    }
    let many: Vec<String> = (0..33).map(|i| format!("\"x-h{i}\"")).collect();
    let err = parse_err(&config(&format!(
        r#""defaults":{{"shadow_headers":{{"remove":[{}]}}}}"#,
        many.join(",")
    )));
    assert_eq!(err.path, "defaults.shadow_headers.remove", "{err}");
}

#[test]
fn watch_settings_are_inherited_and_refused_with_the_field_path() {
    let plan = parse_ok(&config(
        r#""defaults":{"auto_promote":true,"rollback_below":0.97},
           "operations":[{"id":"a","method":"GET","path":"/a"},
                         {"id":"b","method":"GET","path":"/b","auto_promote":false,"rollback_below":0.9}]"#,
    ));
    assert_eq!(
        (
            plan.operations[0].settings.auto_promote,
            plan.operations[0].settings.rollback_below
        ),
        (Some(true), Some(0.97))
    );
    assert_eq!(
        (
            plan.operations[1].settings.auto_promote,
            plan.operations[1].settings.rollback_below
        ),
        (Some(false), Some(0.9))
    );
    let unset = parse_ok(&with_ops(r#"{"id":"a","method":"GET","path":"/a"}"#));
    assert_eq!(
        (
            unset.operations[0].settings.auto_promote,
            unset.operations[0].settings.rollback_below
        ),
        (None, None)
    );
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","rollback_below":95}"#,
    ));
    assert_eq!(err.path, "operations[0].rollback_below", "{err}");
    let err = parse_err(&config(r#""defaults":{"auto_promote":"yes"}"#));
    assert!(err.path.starts_with("defaults.auto_promote"), "{err}");
}
