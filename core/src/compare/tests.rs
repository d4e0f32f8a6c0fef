#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn json(body: &str) -> Response {
    response(200, &[("content-type", "application/json")], body)
}

fn rules(ignore_headers: &[&str], ignore_json_paths: &[&str]) -> CompareRules {
    CompareRules {
        ignore_headers: ignore_headers
            .iter()
            .map(|h| HeaderPattern::parse(h).unwrap())
            .collect(),
        ignore_json_paths: ignore_json_paths
            .iter()
            .map(|p| PointerPattern::parse(p).unwrap())
            .collect(),
    }
}

fn no_rules() -> CompareRules {
    CompareRules::default()
}

/// The differing JSON paths; panics unless only the body differs.
fn body_paths(rules: &CompareRules, left: &str, right: &str) -> Vec<String> {
    let diff = compare(rules, &json(left), &json(right));
    assert!(!diff.status && diff.headers.is_empty(), "{diff:?}");
    diff.body.map(|b| b.json_paths).unwrap_or_default()
}

// ------------------------------------------------------------------ status, headers

#[test]
fn identical_responses_match() {
    let r = response(
        201,
        &[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("set-cookie", "a=1"),
        ],
        r#"{"id":"r-1","items":[1,2]}"#,
    );
    let diff = compare(&no_rules(), &r, &r.clone());
    assert!(diff.is_match(), "{diff:?}");
    assert_eq!(diff, Diff::default());
}

#[test]
fn a_different_status_is_a_difference_on_its_own() {
    let diff = compare(
        &no_rules(),
        &json("{}"),
        &response(404, &[("content-type", "application/json")], "{}"),
    );
    assert!(diff.status);
    assert!(diff.headers.is_empty());
    assert_eq!(diff.body, None);
    assert!(!diff.is_match());
}

#[test]
fn header_names_compare_case_insensitively() {
    let left = response(200, &[("ETag", "\"1\""), ("Cache-Control", "no-store")], "");
    let right = response(200, &[("etag", "\"1\""), ("cache-control", "no-store")], "");
    assert!(compare(&no_rules(), &left, &right).is_match());
}

#[test]
fn header_values_compare_exactly() {
    let left = response(200, &[("etag", "\"1\"")], "");
    let right = response(200, &[("etag", "\"2\"")], "");
    assert_eq!(compare(&no_rules(), &left, &right).headers, ["etag"]);
    // A header on one side only.
    let right = response(200, &[("etag", "\"1\""), ("Cache-Control", "no-store")], "");
    assert_eq!(compare(&no_rules(), &left, &right).headers, ["cache-control"]);
    assert_eq!(compare(&no_rules(), &right, &left).headers, ["cache-control"]);
}

#[test]
fn the_default_ignore_list_is_not_compared() {
    let left = response(
        200,
        &[
            ("date", "Sun, 22 Nov 2026 10:00:00 GMT"),
            ("Server", "legacy/1.0"),
            ("x-request-id", "a"),
            ("transfer-encoding", "chunked"),
            ("content-length", "10"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("via", "1.1 legacy"),
            ("age", "3"),
            ("x-envoy-upstream-service-time", "12"),
            ("X-Parallel-Run-Shadow", "1"),
            (":status", "200"),
        ],
        "",
    );
    let right = response(
        200,
        &[
            ("date", "Sun, 22 Nov 2026 10:00:01 GMT"),
            ("x-envoy-decorator-operation", "x"),
            ("x-parallel-run-exchange", "9"),
            (":status", "201"),
        ],
        "",
    );
    let diff = compare(&no_rules(), &left, &right);
    assert!(diff.is_match(), "{diff:?}");
}

#[test]
fn the_default_ignore_list_is_the_documented_one() {
    assert_eq!(
        DEFAULT_IGNORED_HEADERS,
        [
            "date",
            "server",
            "x-request-id",
            "transfer-encoding",
            "content-length",
            "connection",
            "keep-alive",
            "via",
            "age",
            "x-envoy-*",
            "x-parallel-run-*"
        ]
    );
}

#[test]
fn a_default_ignored_prefix_is_only_a_prefix() {
    // `x-envoy-*` must not swallow `x-envoyish` or `my-x-envoy-thing`.
    let left = response(200, &[("x-envoyish", "1"), ("my-x-envoy-thing", "1")], "");
    let right = response(200, &[], "");
    assert_eq!(
        compare(&no_rules(), &left, &right).headers,
        ["my-x-envoy-thing", "x-envoyish"]
    );
}

#[test]
fn per_operation_ignore_headers_exact_and_prefix() {
    let left = response(
        200,
        &[
            ("ETag", "1"),
            ("x-trace-id", "a"),
            ("X-Trace-Span", "b"),
            ("x-tracer", "c"),
            ("vary", "accept"),
        ],
        "",
    );
    let right = response(
        200,
        &[
            ("etag", "2"),
            ("x-trace-id", "z"),
            ("x-tracer", "d"),
            ("vary", "accept"),
        ],
        "",
    );
    let rules = rules(&["etag", "X-Trace-*"], &[]);
    assert_eq!(compare(&rules, &left, &right).headers, ["x-tracer"]);
    assert_eq!(
        compare(&no_rules(), &left, &right).headers,
        ["etag", "x-trace-id", "x-trace-span", "x-tracer"]
    );
}

#[test]
fn repeated_headers_keep_their_order() {
    let left = response(200, &[("set-cookie", "a"), ("set-cookie", "b")], "");
    let swapped = response(200, &[("set-cookie", "b"), ("set-cookie", "a")], "");
    let same = response(200, &[("Set-Cookie", "a"), ("x-other", "1"), ("set-cookie", "b")], "");
    let fewer = response(200, &[("set-cookie", "a")], "");
    assert_eq!(compare(&no_rules(), &left, &swapped).headers, ["set-cookie"]);
    assert_eq!(compare(&no_rules(), &left, &same).headers, ["x-other"]);
    assert_eq!(compare(&no_rules(), &left, &fewer).headers, ["set-cookie"]);
}

#[test]
fn header_differences_are_sorted_and_bounded() {
    let names = ["h-g", "h-a", "h-f", "h-b", "h-e", "h-c", "h-d"];
    let left: Vec<(&str, &str)> = names.iter().map(|n| (*n, "1")).collect();
    let right: Vec<(&str, &str)> = names.iter().map(|n| (*n, "2")).collect();
    let diff = compare(&no_rules(), &response(200, &left, ""), &response(200, &right, ""));
    assert_eq!(diff.headers.len(), MAX_REPORTED);
    assert_eq!(diff.headers, ["h-a", "h-b", "h-c", "h-d", "h-e"]);
}

#[test]
fn header_patterns_are_validated() {
    assert!(HeaderPattern::parse("x-trace-*").is_ok());
    assert!(HeaderPattern::parse("ETag").is_ok());
    for bad in ["", "x trace", "x-*-id", "**", "x:y"] {
        let err = HeaderPattern::parse(bad).unwrap_err();
        assert!(err.contains("is not a header name"), "{bad:?}: {err}");
    }
}

// ------------------------------------------------------------------ bodies

#[test]
fn json_key_order_and_whitespace_do_not_matter() {
    assert_eq!(
        body_paths(
            &no_rules(),
            r#"{"a":1,"b":{"c":[1,2],"d":null}}"#,
            "{ \"b\" : {\"d\":null,\"c\":[1, 2]},\n\"a\":1 }"
        ),
        Vec::<String>::new()
    );
}

#[test]
fn numbers_compare_by_value() {
    assert!(body_paths(
        &no_rules(),
        r#"{"n":1,"m":-2,"f":0.5}"#,
        r#"{"n":1.0,"m":-2.0,"f":5e-1}"#
    )
    .is_empty());
    assert_eq!(body_paths(&no_rules(), r#"{"n":1}"#, r#"{"n":1.5}"#), ["/n"]);
    assert_eq!(body_paths(&no_rules(), r#"{"n":1}"#, r#"{"n":"1"}"#), ["/n"]);
    // Large integers do not go through f64.
    assert_eq!(
        body_paths(&no_rules(), r#"{"id":9007199254740993}"#, r#"{"id":9007199254740992}"#),
        ["/id"]
    );
    assert!(body_paths(
        &no_rules(),
        r#"{"id":18446744073709551615}"#,
        r#"{"id":18446744073709551615}"#
    )
    .is_empty());
}

#[test]
fn differing_paths_are_json_pointers() {
    assert_eq!(
        body_paths(
            &no_rules(),
            r#"{"status":"open","items":[{"sku":"A","qty":1},{"sku":"B","qty":2}],"gone":true}"#,
            r#"{"status":"closed","items":[{"sku":"A","qty":1},{"sku":"B","qty":3}],"new":true}"#,
        ),
        ["/gone", "/items/1/qty", "/status", "/new"]
    );
}

#[test]
fn reported_paths_escape_tilde_and_slash() {
    assert_eq!(
        body_paths(&no_rules(), r#"{"a/b":1,"c~d":1}"#, r#"{"a/b":2,"c~d":2}"#),
        ["/a~1b", "/c~0d"]
    );
}

#[test]
fn an_array_length_difference_is_one_entry() {
    assert_eq!(
        body_paths(&no_rules(), r#"{"items":[1,2,3,4]}"#, r#"{"items":[1,2]}"#),
        ["/items/length"]
    );
    assert_eq!(body_paths(&no_rules(), "[1,2]", "[1,3,3]"), ["/1", "/length"]);
}

#[test]
fn a_root_difference_is_reported_as_root() {
    assert_eq!(body_paths(&no_rules(), r#"{"a":1}"#, "[1]"), ["(root)"]);
}

#[test]
fn at_most_max_reported_paths_and_a_count_of_the_rest() {
    let left = r#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"same":0}"#;
    let right = r#"{"a":2,"b":2,"c":2,"d":2,"e":2,"f":2,"g":2,"same":0}"#;
    let diff = compare(&no_rules(), &json(left), &json(right));
    let body = diff.body.unwrap();
    assert_eq!(body.json_paths.len(), MAX_REPORTED);
    assert_eq!(body.more, 2);
    assert_eq!(body.json_paths, ["/a", "/b", "/c", "/d", "/e"]);
}

#[test]
fn ignored_json_paths_are_removed_before_comparing() {
    let rules = rules(&[], &["/updatedAt", "/items/*/etag", "/meta/*/ts"]);
    let left = r#"{"id":1,"updatedAt":"t1","items":[{"sku":"A","etag":"x"},{"sku":"B","etag":"y"}],
                   "meta":{"legacy":{"ts":1,"v":1},"cache":{"ts":2}}}"#;
    let right = r#"{"id":1,"updatedAt":"t2","items":[{"sku":"A","etag":"p"},{"sku":"B","etag":"q"}],
                    "meta":{"legacy":{"ts":9,"v":1},"cache":{"ts":8}}}"#;
    assert!(body_paths(&rules, left, right).is_empty());
    // Only what the patterns name: a difference next to them still counts.
    let right = right
        .replace(r#""sku":"B""#, r#""sku":"C""#)
        .replace(r#""v":1"#, r#""v":2"#);
    assert_eq!(body_paths(&rules, left, &right), ["/items/1/sku", "/meta/legacy/v"]);
}

#[test]
fn an_ignored_key_missing_on_one_side_is_not_a_difference() {
    let rules = rules(&[], &["/trace"]);
    assert!(body_paths(&rules, r#"{"a":1,"trace":"x"}"#, r#"{"a":1}"#).is_empty());
}

#[test]
fn ignored_array_elements_keep_the_indices_aligned() {
    let rules = rules(&[], &["/items/0"]);
    assert!(body_paths(&rules, "{\"items\":[\"x\",1,2]}", "{\"items\":[\"y\",1,2]}").is_empty());
    assert_eq!(
        body_paths(&rules, "{\"items\":[\"x\",1,2]}", "{\"items\":[\"y\",1,3]}"),
        ["/items/2"]
    );
    let all = self::rules(&[], &["/items/*"]);
    assert!(body_paths(&all, "{\"items\":[1,2]}", "{\"items\":[3,4]}").is_empty());
    assert_eq!(
        body_paths(&all, "{\"items\":[1,2]}", "{\"items\":[3]}"),
        ["/items/length"]
    );
}

#[test]
fn ignore_patterns_use_json_pointer_escapes() {
    let rules = rules(&[], &["/links/self~1href", "/x~0y"]);
    assert!(body_paths(
        &rules,
        r#"{"links":{"self/href":"a"},"x~y":1,"x/y":1}"#,
        r#"{"links":{"self/href":"b"},"x~y":2,"x/y":1}"#
    )
    .is_empty());
    // "~1" is '/', not a path separator: "/links/self/href" does not reach it.
    let literal = self::rules(&[], &["/links/self/href"]);
    assert_eq!(
        body_paths(
            &literal,
            r#"{"links":{"self/href":"a"}}"#,
            r#"{"links":{"self/href":"b"}}"#
        ),
        ["/links/self~1href"]
    );
}

#[test]
fn a_wildcard_matches_one_level_only() {
    let rules = rules(&[], &["/*/etag"]);
    assert!(body_paths(
        &rules,
        r#"{"a":{"etag":1},"b":{"etag":1}}"#,
        r#"{"a":{"etag":2},"b":{"etag":3}}"#
    )
    .is_empty());
    assert_eq!(
        body_paths(&rules, r#"{"a":{"x":{"etag":1}}}"#, r#"{"a":{"x":{"etag":2}}}"#),
        ["/a/x/etag"]
    );
}

#[test]
fn pointer_patterns_are_validated() {
    assert!(PointerPattern::parse("/a~0~1b/*/0").is_ok());
    for bad in ["", "a/b", "*", "/a~", "/a~2"] {
        assert!(PointerPattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn invalid_json_on_one_side_is_an_unmatched_body() {
    for (left, right) in [
        (r#"{"a":1}"#, r#"{"a":1"#),
        (r#"{"a":"#, r#"{"a":1}"#),
        (r#"{"a":1}"#, "<html>oops</html>"),
        (r#"{"a":1}"#, ""),
        (r#"{"n":1e999}"#, r#"{"n":1}"#),
    ] {
        let diff = compare(&no_rules(), &json(left), &json(right));
        assert_eq!(diff.body, Some(BodyDiff::default()), "{left} vs {right}");
        assert!(!diff.is_match());
    }
}

#[test]
fn bodies_that_are_not_json_compare_byte_for_byte() {
    let text = |body: &str| response(200, &[("content-type", "text/plain")], body);
    assert!(compare(&no_rules(), &text("ok"), &text("ok")).is_match());
    let diff = compare(&no_rules(), &text(r#"{"a":1,"b":2}"#), &text(r#"{"b":2,"a":1}"#));
    assert_eq!(diff.body, Some(BodyDiff::default()));
    // JSON on one side only: bytes.
    let diff = compare(&no_rules(), &json(r#"{"a":1}"#), &text(r#"{ "a":1}"#));
    assert_eq!(diff.body, Some(BodyDiff::default()));
    // Binary bodies.
    let mut left = response(200, &[("content-type", "application/octet-stream")], "");
    left.body = vec![0, 159, 146, 150];
    let mut right = left.clone();
    assert!(compare(&no_rules(), &left, &right).is_match());
    right.body.push(0);
    assert_eq!(compare(&no_rules(), &left, &right).body, Some(BodyDiff::default()));
}

#[test]
fn json_is_recognised_by_media_type_or_by_shape() {
    assert!(json::looks_like_json(&response(
        200,
        &[("Content-Type", "application/json; charset=utf-8")],
        "1"
    )));
    assert!(json::looks_like_json(&response(
        200,
        &[("content-type", "application/problem+json")],
        ""
    )));
    assert!(json::looks_like_json(&response(
        200,
        &[("content-type", " APPLICATION/JSON ")],
        ""
    )));
    assert!(!json::looks_like_json(&response(
        200,
        &[("content-type", "text/json-ish")],
        "{}"
    )));
    assert!(!json::looks_like_json(&response(
        200,
        &[("content-type", "json")],
        "{}"
    )));
    assert!(json::looks_like_json(&response(200, &[], "  \n[1]")));
    assert!(json::looks_like_json(&response(200, &[], "{}")));
    assert!(!json::looks_like_json(&response(200, &[], "1")));
    assert!(!json::looks_like_json(&response(200, &[], "")));

    // Without a media type, shape decides: key order then does not matter.
    let untyped = |body: &str| response(200, &[], body);
    assert!(compare(&no_rules(), &untyped(r#"{"a":1,"b":2}"#), &untyped(r#"{"b":2,"a":1}"#)).is_match());
}

#[test]
fn a_header_difference_and_a_body_difference_are_both_reported() {
    let left = response(
        200,
        &[("content-type", "application/json"), ("etag", "1")],
        r#"{"a":1}"#,
    );
    let right = response(
        200,
        &[("content-type", "application/json"), ("etag", "2")],
        r#"{"a":2}"#,
    );
    let diff = compare(&no_rules(), &left, &right);
    assert!(!diff.status);
    assert_eq!(diff.headers, ["etag"]);
    assert_eq!(
        diff.body,
        Some(BodyDiff {
            json_paths: vec!["/a".into()],
            more: 0
        })
    );
}
