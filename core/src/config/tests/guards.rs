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
    assert_eq!(plan.operations[0].readiness, Rule::default());
    assert_eq!(plan.operations[0].circuit_breaker, Some(breaker::Settings::default()));
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
        a.readiness,
        Rule {
            window_s: 300,
            confidence: 0.99,
            ready_after_s: 0,
            ..Rule::default()
        }
    );
    let breaker = a.circuit_breaker.unwrap();
    assert_eq!((breaker.cooldown_s, breaker.probes), (60, 2));
    assert_eq!(plan.operations[1].circuit_breaker, None, "switched off");
    assert_eq!(plan.operations[1].readiness.window_s, 1200);
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
