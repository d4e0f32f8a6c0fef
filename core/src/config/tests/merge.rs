//! Lists under `compare` add to the defaults' lists, unless written
//! `{"replace": [...]}`; settings that could have no effect are refused.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{config, op, parse_err, parse_ok};
use crate::compare::HeaderPattern;

fn patterns(names: &[&str]) -> Vec<HeaderPattern> {
    names.iter().map(|n| HeaderPattern::parse(n).unwrap()).collect()
}

fn with_defaults(defaults: &str, own: &str) -> String {
    config(&format!(
        r#""defaults":{{"compare":{defaults}}},
           "operations":[{{"id":"inherits","method":"GET","path":"/a"}},
                         {{"id":"own","method":"GET","path":"/b","compare":{own}}}]"#
    ))
}

#[test]
fn an_operations_lists_add_to_the_defaults() {
    let plan = parse_ok(&with_defaults(
        r#"{"ignore_headers":["x-trace-*"],"ignore_json_paths":["/at"],"unordered_arrays":["/tags"],
            "masks":["uuid"],"status_equivalent":[[404,410]]}"#,
        r#"{"ignore_headers":["etag"],"ignore_json_paths":["/id"],"unordered_arrays":[{"path":"/tags","key":"/id"}],
            "masks":["iso8601"],"status_equivalent":[[200,201]]}"#,
    ));
    let inherits = &op(&plan, "inherits").settings.compare;
    assert_eq!(inherits.ignore_headers.len(), 1);
    let own = &op(&plan, "own").settings.compare;
    assert_eq!(
        own.ignore_headers,
        patterns(&["etag", "x-trace-*"]),
        "its own first, then the defaults'"
    );
    assert_eq!(own.ignore_json_paths.len(), 2);
    assert_eq!(own.masks.len(), 2);
    assert_eq!(own.status.equivalent, [vec![200, 201], vec![404, 410]]);
    // Its own entry first: for /tags its keyed rule wins over the defaults'.
    assert_eq!(own.unordered_arrays.len(), 2);
    assert_eq!(own.unordered_arrays[0].key.as_deref(), Some("/id"));
}

#[test]
fn replace_replaces_the_defaults_list() {
    let plan = parse_ok(&with_defaults(
        r#"{"ignore_headers":["x-trace-*"],"masks":["uuid"]}"#,
        r#"{"ignore_headers":{"replace":["etag"]},"masks":{"replace":[]}}"#,
    ));
    let own = &op(&plan, "own").settings.compare;
    assert_eq!(own.ignore_headers, patterns(&["etag"]));
    assert!(own.masks.is_empty());
}

#[test]
fn merging_errors_name_the_field() {
    for (defaults, own, path, message) in [
        (
            r#"{"masks":["uuid"]}"#,
            r#"{"masks":[]}"#,
            "operations[1].compare.masks",
            "[] adds nothing to the defaults' list; to clear it, write {\"replace\": []}",
        ),
        (
            r#"{"masks":{"replace":["uuid"]}}"#,
            r#"{}"#,
            "defaults.compare.masks.replace",
            "the defaults have no list to replace",
        ),
        (
            r#"{}"#,
            r#"{"ignore_headers":{"replace":["ok","bad name"]}}"#,
            "operations[1].compare.ignore_headers.replace[1]",
            "",
        ),
        (
            r#"{}"#,
            r#"{"ignore_headers":{"replace":[3]}}"#,
            "operations[1].compare.ignore_headers.replace[0]",
            "invalid type",
        ),
        (
            r#"{}"#,
            r#"{"ignore_headers":{"replce":["etag"]}}"#,
            "operations[1].compare.ignore_headers.replce",
            "unknown field `replce`",
        ),
        (
            r#"{"status_equivalent":[[404,410]]}"#,
            r#"{"status_equivalent":[[200,201],[410,451]]}"#,
            "operations[1].compare.status_equivalent[1][0]",
            "410 is already in defaults.compare.status_equivalent[0]",
        ),
    ] {
        let err = parse_err(&with_defaults(defaults, own));
        assert_eq!(err.path, path, "{own}: {err}");
        assert!(err.message.contains(message), "{own}: {err}");
    }
    // Replacing, an overlapping group is no conflict.
    parse_ok(&with_defaults(
        r#"{"status_equivalent":[[404,410]]}"#,
        r#"{"status_equivalent":{"replace":[[410,451]]}}"#,
    ));
    // `[]` in defaults is harmless (generated configurations write it).
    parse_ok(&with_defaults(r#"{"masks":[]}"#, "{}"));
}

#[test]
fn the_new_rules_parse_merge_and_are_refused_with_the_field_path() {
    use crate::compare::{BodyMode, CaseKeys};
    let plan = parse_ok(&with_defaults(
        r#"{"header_masks":{"Date":"http_date","x-request-*":"uuid"},"case_insensitive_keys":["/headers"],
            "body":"length"}"#,
        r#"{"header_masks":{"date":null,"location":{"pattern":"\\d+","name":"id"}},
            "case_insensitive_keys":["/items/*"],"body":"media_type"}"#,
    ));
    let inherits = &op(&plan, "inherits").settings.compare;
    assert_eq!(inherits.header_masks.len(), 2);
    assert_eq!(inherits.body, BodyMode::Length);
    assert!(matches!(&inherits.case_insensitive_keys, CaseKeys::At(p) if p.len() == 1));
    let own = &op(&plan, "own").settings.compare;
    // date dropped, location added, x-request-* inherited.
    let names: Vec<_> = own.header_masks.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names, patterns(&["location", "x-request-*"]));
    assert_eq!(own.body, BodyMode::MediaType);
    assert!(matches!(&own.case_insensitive_keys, CaseKeys::At(p) if p.len() == 2));
    // true everywhere; false switches an inherited rule off.
    let plan = parse_ok(&with_defaults(
        r#"{"case_insensitive_keys":true}"#,
        r#"{"case_insensitive_keys":false}"#,
    ));
    assert_eq!(
        op(&plan, "inherits").settings.compare.case_insensitive_keys,
        CaseKeys::All
    );
    assert_eq!(op(&plan, "own").settings.compare.case_insensitive_keys, CaseKeys::None);

    for (defaults, own, path, message) in [
        (
            r#"{}"#,
            r#"{"body":"size"}"#,
            "operations[1].compare.body",
            "unknown variant `size`",
        ),
        (
            r#"{}"#,
            r#"{"header_masks":{"date":"nope"}}"#,
            "operations[1].compare.header_masks.date",
            "not a built-in mask",
        ),
        (
            r#"{}"#,
            r#"{"header_masks":{"bad name":"uuid"}}"#,
            "operations[1].compare.header_masks.bad name",
            "not a header name",
        ),
        (
            r#"{}"#,
            r#"{"header_masks":{"date":{"pattern":"(a|b)"}}}"#,
            "operations[1].compare.header_masks.date.pattern",
            "groups, alternation",
        ),
        (
            r#"{"header_masks":{"date":null}}"#,
            r#"{}"#,
            "defaults.compare.header_masks.date",
            "inherit none",
        ),
        (
            r#"{}"#,
            r#"{"case_insensitive_keys":["headers"]}"#,
            "operations[1].compare.case_insensitive_keys[0]",
            "must start with '/'",
        ),
        (
            r#"{}"#,
            r#"{"case_insensitive_keys":[]}"#,
            "operations[1].compare.case_insensitive_keys",
            "[] adds nothing",
        ),
        (
            r#"{}"#,
            r#"{"case_insensitive_keys":"yes"}"#,
            "operations[1].compare.case_insensitive_keys",
            "true, false, a list",
        ),
    ] {
        let err = parse_err(&with_defaults(defaults, own));
        assert_eq!(err.path, path, "{own}: {err}");
        assert!(err.message.contains(message), "{own}: {err}");
    }
}
