//! A configuration compiled a slice of operations at a time (the
//! [`Compiler`] a VM uses to apply a large push between requests) is the
//! configuration [`parse`] compiles in one go, down to its first error.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

/// `n` operations, some of them with settings of their own, so that both
/// the inherited and the own resolution are stepped through.
fn many(n: usize, broken: Option<usize>) -> String {
    let ops: Vec<String> = (0..n)
        .map(|i| match i {
            _ if Some(i) == broken => format!(r#"{{"id":"op{i}","method":"get","path":"/p{i}"}}"#),
            _ if i % 7 == 0 => {
                format!(r#"{{"id":"op{i}","method":"GET","path":"/p{i}/{{id}}","mode":"shadow","shadow_percent":5}}"#)
            }
            _ => format!(r#"{{"id":"op{i}","method":"GET","path":"/p{i}/{{id}}"}}"#),
        })
        .collect();
    config(&format!(
        r#""defaults":{{"mode":"legacy","shadow_percent":50}},"operations":[{}]"#,
        ops.join(",")
    ))
}

/// Steps `json` through in slices of `budget`, as a VM does on its ticks.
fn stepped(json: &str, budget: usize) -> Result<(Plan, usize), ConfigError> {
    let mut compiler = compiler(json.as_bytes())?;
    let mut steps = 0;
    while !compiler.step(budget)? {
        steps += 1;
        assert!(steps <= 10_000, "no end to the steps");
    }
    assert_eq!(compiler.remaining(), 0);
    Ok((compiler.finish()?, steps))
}

#[test]
fn a_plan_compiled_in_slices_is_the_plan_compiled_at_once() {
    let json = many(1_001, None);
    let whole = parse_ok(&json);
    for budget in [1, 10, 500, 5_000] {
        let (plan, steps) = stepped(&json, budget).unwrap();
        // Every step but the last leaves operations to compile.
        assert_eq!(steps, (1_001 - 1) / budget, "budget {budget}");
        assert_eq!(plan.summary(), whole.summary(), "budget {budget}");
        assert_eq!(plan.operations.len(), whole.operations.len());
        for (a, b) in plan.operations.iter().zip(&whole.operations) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        // The matcher was built as well: every operation is found by path.
        for i in (0..1_001).step_by(97) {
            let path = format!("/p{i}/x");
            assert_eq!(
                plan.classify_request("GET", &path, b"", None),
                Some(i),
                "budget {budget}"
            );
        }
    }
}

#[test]
fn a_plan_compiled_in_slices_stops_at_the_same_first_error() {
    let json = many(1_200, Some(777));
    let whole = parse_err(&json);
    assert_eq!(whole.path, "operations[777].method");
    for budget in [1, 100, 776, 777, 778] {
        assert_eq!(stepped(&json, budget).unwrap_err(), whole, "budget {budget}");
    }
}

#[test]
fn the_whole_document_is_checked_before_any_operation_is_compiled() {
    // Read and top-level errors come out of `compiler` itself, so nothing
    // of a refused document is ever stepped through.
    let err =
        compiler(b"{\"legacy\":{\"cluster\":\"legacy\"},\"candidate\":{\"cluster\":\"c\"},\"operations\":[]} x").err();
    assert!(err.is_some_and(|e| e.message.contains("after the configuration object")));
    let err = compiler(config(r#""max_inflight_shadows":0"#).as_bytes()).err();
    assert_eq!(err.map(|e| e.path), Some("max_inflight_shadows".to_string()));
}

#[test]
fn the_fingerprint_tells_configurations_apart() {
    let a = many(3, None);
    let b = many(4, None);
    assert_eq!(fingerprint(a.as_bytes()), fingerprint(a.as_bytes()));
    assert_ne!(fingerprint(a.as_bytes()), fingerprint(b.as_bytes()));
    assert_ne!(fingerprint(b"{}"), fingerprint(b"{} "));
}
