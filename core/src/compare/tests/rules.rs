//! The rules added for the long tail: header value masks, case-insensitive
//! JSON keys, and comparing a body by its length or media type only.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn with_header(name: &str, value: &str) -> Response {
    response(200, &[(name, value)], "")
}

#[test]
fn a_header_mask_hides_what_it_matches_in_that_header_only() {
    let rules = CompareRules {
        header_masks: vec![
            (
                HeaderPattern::parse("x-request-*").unwrap(),
                Mask::builtin("uuid").unwrap(),
            ),
            (
                HeaderPattern::parse("location").unwrap(),
                Mask::custom("id", r"\d+").unwrap(),
            ),
        ],
        ..CompareRules::default()
    };
    let a = with_header("X-Request-Trace", "req 3f0c8a52-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    let b = with_header("x-request-trace", "req 9a0c8a52-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    assert!(compare(&rules, &a, &b).is_match());
    assert_eq!(
        compare(&no_rules(), &a, &b).headers,
        ["x-request-trace"],
        "the control differs"
    );
    // What the mask does not match still differs.
    let c = with_header("x-request-trace", "rq 9a0c8a52-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    assert_eq!(compare(&rules, &a, &c).headers, ["x-request-trace"]);
    assert!(compare(
        &rules,
        &with_header("location", "/r/17"),
        &with_header("location", "/r/18")
    )
    .is_match());
    assert_eq!(
        compare(
            &rules,
            &with_header("location", "/r/17"),
            &with_header("location", "/s/18")
        )
        .headers,
        ["location"]
    );
    // Another header is not masked.
    let d = with_header("etag", "3f0c8a52-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    let e = with_header("etag", "9a0c8a52-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    assert_eq!(compare(&rules, &d, &e).headers, ["etag"]);
}

fn case_keys(rule: CaseKeys) -> CompareRules {
    CompareRules {
        case_insensitive_keys: rule,
        key_names: crate::diff_path::KeyNames::All,
        ..CompareRules::default()
    }
}

#[test]
fn keys_compare_case_insensitively_in_the_whole_body_or_where_named() {
    let left = r#"{"Headers":{"Content-Type":"a","X-Id":1},"Items":[{"Name":"x"}]}"#;
    let right = r#"{"headers":{"content-type":"a","x-id":1},"items":[{"name":"x"}]}"#;
    assert!(compare(&case_keys(CaseKeys::All), &json(left), &json(right)).is_match());
    assert!(
        !compare(&no_rules(), &json(left), &json(right)).is_match(),
        "the control differs"
    );
    // Only the objects named: /headers (keys of the root stay exact).
    let at = |patterns: &[&str]| {
        case_keys(CaseKeys::At(
            patterns
                .iter()
                .map(|p| PointerPattern::parse_location(p).unwrap())
                .collect(),
        ))
    };
    let left = r#"{"headers":{"Content-Type":"a"},"items":[{"Name":"x"}],"Top":1}"#;
    let right = r#"{"headers":{"content-type":"a"},"items":[{"name":"x"}],"Top":1}"#;
    assert!(compare(&at(&["/headers", "/items/*"]), &json(left), &json(right)).is_match());
    let diff = compare(&at(&["/headers"]), &json(left), &json(right));
    assert_eq!(diff.body.unwrap().fields, ["/items/*/Name", "/items/*/name"]);
    let top = r#"{"headers":{},"items":[],"top":1}"#;
    let diff = compare(
        &at(&["/headers"]),
        &json(r#"{"headers":{},"items":[],"Top":1}"#),
        &json(top),
    );
    assert!(!diff.is_match(), "the root is not named");
    assert!(
        compare(&at(&[""]), &json(r#"{"Top":1}"#), &json(r#"{"top":1}"#)).is_match(),
        "\"\" is the root"
    );
    // Values are never folded.
    assert!(!compare(&case_keys(CaseKeys::All), &json(r#"{"a":"X"}"#), &json(r#"{"a":"x"}"#)).is_match());
}

#[test]
fn an_object_with_keys_equal_but_for_case_is_compared_exactly() {
    let rules = case_keys(CaseKeys::All);
    // Folding would keep one of the two values and could hide a difference.
    let left = r#"{"Id":1,"id":2}"#;
    assert!(!compare(&rules, &json(left), &json(r#"{"id":1}"#)).is_match());
    assert!(!compare(&rules, &json(left), &json(r#"{"id":2}"#)).is_match());
    assert!(compare(&rules, &json(left), &json(left)).is_match());
}

#[test]
fn a_body_compares_by_length_only() {
    let rules = CompareRules {
        body: BodyMode::Length,
        ..CompareRules::default()
    };
    assert!(compare(&rules, &text("abc"), &text("xyz")).is_match());
    let diff = compare(&rules, &text("abc"), &text("abcd"));
    assert_eq!(diff.body, Some(BodyDiff::default()));
    // The decoded length: gzip of the same length matches.
    let zipped = encoded("gzip", "text/plain", gzip(b"xyz"));
    assert!(compare(&rules, &zipped, &text("abc")).is_match());
    // Status and headers are still compared.
    assert!(compare(&rules, &response(200, &[], "a"), &response(201, &[], "b")).status);
}

#[test]
fn a_body_compares_by_media_type_only() {
    let rules = CompareRules {
        body: BodyMode::MediaType,
        ..CompareRules::default()
    };
    let pdf = |body: &str, media: &str| response(200, &[("content-type", media)], body);
    assert!(compare(
        &rules,
        &pdf("%PDF-1.7 a", "application/pdf"),
        &pdf("%PDF-1.4 b", "Application/PDF")
    )
    .is_match());
    let diff = compare(&rules, &pdf("x", "application/pdf"), &pdf("x!", "text/html"));
    assert_eq!(diff.body, Some(BodyDiff::default()));
    // A body too large to decode is not decoded at all.
    let big = encoded("gzip", "application/pdf", gzip(&vec![b'a'; 1 << 20]));
    let small = CompareRules {
        max_decoded_bytes: 1024,
        ..rules
    };
    assert!(compare(&small, &big, &pdf("x", "application/pdf")).body.is_none());
}
