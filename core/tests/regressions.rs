//! Inputs found by `make fuzz`, minimised, kept as tests. Each names the
//! target and the property that failed.

// A test crate: its helpers may panic (clippy allows that in #[test] functions only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use parallel_run_core::compare::{compare, CompareRules};
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::Response;
use parallel_run_core::Plan;

fn json(body: &str) -> Response {
    Response {
        status: 200,
        headers: HeaderMap::from_pairs([("content-type", "application/json")]),
        body: body.as_bytes().to_vec(),
    }
}

/// fuzz target `compare`, re-serialisation oracle: `900719925474099354740993889`
/// and serde_json's own re-serialisation of it, `9.007199254740993e+26`, are
/// the same double (0x45874876e8000001), but serde_json's default float
/// parser is not correctly rounded and reads the second one ULP low
/// (0x45874876e8000000), so the comparator reports `(root)` as different.
/// Not exotic: about 10% of full-precision doubles in [0, 1e6) are affected
/// when one side writes the shortest form (Go, JavaScript, Python, Java 19+)
/// and the other 17 significant digits (printf %.17g, older Java), e.g. a
/// price of 778921.7150000001 written as 778921.71500000008.
/// The fix is serde_json's `float_roundtrip` feature in core/Cargo.toml.
#[test]
fn one_double_in_two_spellings_is_one_number() {
    let pairs = [
        ("900719925474099354740993889", "9.007199254740993e+26"),
        (r#"{"total":778921.7150000001}"#, r#"{"total":778921.71500000008}"#),
        (r#"{"total":778921.7150000001}"#, r#"{"total":7.7892171500000008e5}"#),
    ];
    for (left, right) in pairs {
        // The premise: Rust's own (correctly rounded) parser agrees.
        let number = |s: &str| {
            s.trim_start_matches(r#"{"total":"#)
                .trim_end_matches('}')
                .parse::<f64>()
        };
        assert_eq!(number(left), number(right), "{left} / {right}");
        let diff = compare(&CompareRules::default(), &json(left), &json(right));
        assert!(diff.is_match(), "{left} / {right}: {diff:?}");
    }
}

/// core/tests/adversarial.rs (unordered arrays with a number tolerance):
/// elements of an unordered array that do not pair by equality are paired
/// in the order of their canonical byte form, which is not numeric order
/// (`#10;` sorts before `#2;`, `#2.01e0;` before `#9.99e0;`). So 2 meets
/// 2.01 only by luck: `[2, 10]` against `[2.01, 9.99]`, within an absolute
/// tolerance of 0.1, is reported as two differences at `/*`, while `[9, 10]`
/// against `[9.05, 10.05]` matches. Same for numbers inside elements
/// (`[{"p":2},{"p":10}]`).
/// Fixed: numbers' canonical form sorts in numeric order, and under a
/// tolerance the elements of two unordered arrays of one length are first
/// paired all in that order.
#[test]
fn unordered_numbers_within_tolerance_pair_up() {
    let config = r#"{"legacy": {"cluster": "legacy"}, "candidate": {"cluster": "candidate"},
        "operations": [{"id": "op", "method": "GET", "path": "/items",
                        "compare": {"unordered_arrays": [""], "number_tolerance": {"absolute": 0.1}}}]}"#;
    let rules = &Plan::parse(config.as_bytes()).unwrap().operations[0].settings.compare;
    for (left, right) in [
        ("[9, 10]", "[9.05, 10.05]"),
        ("[2, 10]", "[2.01, 9.99]"),
        ("[2, 10]", "[9.99, 2.01]"),
        (r#"[{"p": 2}, {"p": 10}]"#, r#"[{"p": 2.01}, {"p": 9.99}]"#),
    ] {
        let diff = compare(rules, &json(left), &json(right));
        assert!(diff.is_match(), "{left} / {right}: {diff:?}");
    }
}
