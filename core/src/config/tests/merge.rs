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
    let inherits = &op(&plan, "inherits").compare;
    assert_eq!(inherits.ignore_headers.len(), 1);
    let own = &op(&plan, "own").compare;
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
    let own = &op(&plan, "own").compare;
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
