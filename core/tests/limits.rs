//! Every documented bound (`parallel_run_core::limits`), tried at the limit
//! and one past it: accepted at the limit, refused past it with the field
//! path and a message that says what the bound is. The request-side bounds
//! are tried the same way: past them a request matches no operation.

// A test crate: its helpers may panic (clippy allows that in #[test] functions only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use parallel_run_core::limits::*;
use parallel_run_core::{ConfigError, Plan};

/// A configuration with these top-level members (no leading comma) after
/// the two backends.
fn config(rest: &str) -> String {
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!(",{rest}")
    };
    format!(r#"{{"legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}}{rest}}}"#)
}

/// A configuration with one operation with these members (after `id`,
/// `method`, `path`).
fn with_op(members: &str) -> String {
    let members = if members.is_empty() {
        String::new()
    } else {
        format!(",{members}")
    };
    config(&format!(
        r#""operations":[{{"id":"op","method":"GET","path":"/op"{members}}}]"#
    ))
}

fn accepted(json: &str) -> Plan {
    match Plan::parse(json.as_bytes()) {
        Ok(plan) => plan,
        Err(err) => panic!("refused: {err}"),
    }
}

fn refused(json: &str) -> ConfigError {
    match Plan::parse(json.as_bytes()) {
        Ok(_) => panic!("accepted"),
        Err(err) => err,
    }
}

/// The limit is accepted; one past it is refused at `path`, with a message
/// that names the bound and does not quote the over-long value.
fn bound(at_limit: &str, past: &str, path: &str, limit: usize) {
    accepted(at_limit);
    let err = refused(past);
    assert_eq!(err.path, path, "{err}");
    assert!(err.message.contains(&limit.to_string()), "{err}");
    assert!(err.to_string().len() < 300, "quotes the value: {err}");
}

/// A string of `len` bytes made of `c`.
fn n(c: char, len: usize) -> String {
    c.to_string().repeat(len)
}

// ------------------------------------------------------------------ the document

#[test]
fn the_configuration_size() {
    let base = config("");
    let padded = |len: usize| format!("{base}{}", " ".repeat(len - base.len()));
    bound(
        &padded(MAX_CONFIG_BYTES),
        &padded(MAX_CONFIG_BYTES + 1),
        "",
        MAX_CONFIG_BYTES,
    );
    assert!(refused(&padded(MAX_CONFIG_BYTES + 1)).message.contains("8 MiB"));
}

#[test]
fn ten_thousand_operations_are_accepted_and_one_more_is_refused() {
    let ops = |count: usize| {
        let list: Vec<String> = (0..count)
            .map(|i| format!(r#"{{"id":"op{i}","method":"GET","path":"/items/{i}/{{id}}","mode":"shadow"}}"#))
            .collect();
        config(&format!(r#""operations":[{}]"#, list.join(",")))
    };
    let plan = accepted(&ops(MAX_OPERATIONS));
    assert_eq!(plan.operations.len(), 10_000);
    assert_eq!(plan.classify("GET", "/items/9999/x", None), Some(9999));
    let err = refused(&ops(MAX_OPERATIONS + 1));
    assert_eq!(err.to_string(), "operations: 10001 operations, at most 10000");
}

#[test]
fn trailing_garbage_is_refused_and_trailing_whitespace_is_not() {
    accepted(&format!("{}\n \t\r\n", config("")));
    for tail in ["x", "{}", ",", "]", "\u{0}", r#"{"legacy":{"cluster":"other"}}"#] {
        let err = refused(&format!("{}{tail}", config("")));
        assert_eq!(err.path, "", "{tail:?}");
        assert!(
            err.message.starts_with("invalid JSON: trailing characters"),
            "{tail:?}: {err}"
        );
        assert!(
            err.message.ends_with("after the configuration object"),
            "{tail:?}: {err}"
        );
    }
}

#[test]
fn serde_json_still_refuses_nesting_deeper_than_128() {
    // The limit the parser leans on, checked against the serde_json in use.
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH)).is_ok());
    let err = serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH + 1)).unwrap_err();
    assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
}

#[test]
fn deep_nesting_anywhere_is_refused_where_it_starts() {
    let deep = "[".repeat(100_000);
    let deep_objects = r#"{"a":"#.repeat(50_000);
    for (json, path) in [
        (deep.clone(), ""),
        (format!(r#"{{"legacy":{deep}"#), "legacy"),
        (format!(r#"{{"operations":{deep}"#), "operations[0]"),
        (config(&format!(r#""hosts":{deep}"#)), "hosts[0]"),
        (with_op(&format!(r#""mode":{deep}"#)), "operations[0].mode"),
        (
            with_op(&format!(r#""compare":{{"status_equivalent":{deep}"#)),
            "operations[0].compare.status_equivalent[0][0]",
        ),
        // A mask is a string or an object: given an array of arrays, the
        // refusal is located one level into it (config::locate's known
        // difference, measured in its tests).
        (
            with_op(&format!(r#""compare":{{"masks":{deep}"#)),
            "operations[0].compare.masks[0][0]",
        ),
        (
            with_op(&format!(r#""compare":{{"masks":[{deep_objects}"#)),
            "operations[0].compare.masks[0].a",
        ),
        (
            with_op(&format!(r#""shadow_timeout_ms":{deep}"#)),
            "operations[0].shadow_timeout_ms",
        ),
    ] {
        let err = refused(&json);
        assert_eq!(err.path, path, "{err}");
    }
}

// ------------------------------------------------------------------ names

#[test]
fn ids_and_groups() {
    let id = |len: usize| with_op("").replace(r#""id":"op""#, &format!(r#""id":"{}""#, n('a', len)));
    bound(
        &id(MAX_ID_BYTES),
        &id(MAX_ID_BYTES + 1),
        "operations[0].id",
        MAX_ID_BYTES,
    );
    let group = |len: usize| with_op(&format!(r#""group":"{}""#, n('g', len)));
    bound(
        &group(MAX_ID_BYTES),
        &group(MAX_ID_BYTES + 1),
        "operations[0].group",
        MAX_ID_BYTES,
    );
}

#[test]
fn a_seventy_thousand_byte_id_is_refused_without_being_quoted() {
    let json = with_op("").replace(r#""id":"op""#, &format!(r#""id":"{}""#, n('a', 70_000)));
    let err = refused(&json);
    assert_eq!(err.to_string(), "operations[0].id: 70000 bytes, an id has at most 128");
}

#[test]
fn methods() {
    let method = |len: usize| with_op("").replace(r#""method":"GET""#, &format!(r#""method":"{}""#, n('M', len)));
    bound(
        &method(MAX_METHOD_BYTES),
        &method(MAX_METHOD_BYTES + 1),
        "operations[0].method",
        MAX_METHOD_BYTES,
    );
}

#[test]
fn header_names() {
    for field in ["route_header", "operation_header"] {
        let header = |len: usize| config(&format!(r#""{field}":"x-{}""#, n('h', len - 2)));
        bound(
            &header(MAX_HEADER_NAME_BYTES),
            &header(MAX_HEADER_NAME_BYTES + 1),
            field,
            MAX_HEADER_NAME_BYTES,
        );
    }
    let ignored = |len: usize| with_op(&format!(r#""compare":{{"ignore_headers":["{}"]}}"#, n('h', len)));
    bound(
        &ignored(MAX_HEADER_NAME_BYTES),
        &ignored(MAX_HEADER_NAME_BYTES + 1),
        "operations[0].compare.ignore_headers[0]",
        MAX_HEADER_NAME_BYTES,
    );
}

#[test]
fn cluster_names_and_authorities() {
    let cluster = |len: usize| with_op(&format!(r#""candidate":{{"cluster":"{}"}}"#, n('c', len)));
    bound(
        &cluster(MAX_CLUSTER_NAME_BYTES),
        &cluster(MAX_CLUSTER_NAME_BYTES + 1),
        "operations[0].candidate.cluster",
        MAX_CLUSTER_NAME_BYTES,
    );
    let top = |len: usize| config("").replace(r#""cluster":"legacy""#, &format!(r#""cluster":"{}""#, n('l', len)));
    bound(
        &top(MAX_CLUSTER_NAME_BYTES),
        &top(MAX_CLUSTER_NAME_BYTES + 1),
        "legacy.cluster",
        MAX_CLUSTER_NAME_BYTES,
    );
    let authority = |len: usize| {
        with_op(&format!(
            r#""legacy":{{"authority":"{}.example:8080"}}"#,
            n('a', len - 13)
        ))
    };
    bound(
        &authority(MAX_AUTHORITY_BYTES),
        &authority(MAX_AUTHORITY_BYTES + 1),
        "operations[0].legacy.authority",
        MAX_AUTHORITY_BYTES,
    );
}

#[test]
fn the_revision() {
    let revision = |len: usize| config(&format!(r#""revision":"{}""#, n('r', len)));
    bound(
        &revision(MAX_REVISION_BYTES),
        &revision(MAX_REVISION_BYTES + 1),
        "revision",
        MAX_REVISION_BYTES,
    );
    let err = refused(&config(r#""revision":"r1\nINFO forged log line""#));
    assert_eq!(err.path, "revision");
}

// ------------------------------------------------------------------ hosts

#[test]
fn hosts_lists_and_names() {
    let list = |count: usize| {
        let names: Vec<String> = (0..count).map(|i| format!(r#""h{i}.example.com""#)).collect();
        config(&format!(r#""hosts":[{}]"#, names.join(",")))
    };
    bound(&list(MAX_HOSTS), &list(MAX_HOSTS + 1), "hosts", MAX_HOSTS);
    let per_op = |count: usize| {
        let names: Vec<String> = (0..count).map(|i| format!(r#""h{i}.example.com""#)).collect();
        with_op(&format!(r#""hosts":[{}]"#, names.join(",")))
    };
    bound(
        &per_op(MAX_HOSTS),
        &per_op(MAX_HOSTS + 1),
        "operations[0].hosts",
        MAX_HOSTS,
    );
    // Labels of at most 63 bytes, as DNS has them.
    let name = |len: usize| {
        let label = n('a', 63);
        let last = n('b', len - 3 * 64);
        config(&format!(r#""hosts":["{label}.{label}.{label}.{last}"]"#))
    };
    bound(
        &name(MAX_HOST_BYTES),
        &name(MAX_HOST_BYTES + 1),
        "hosts[0]",
        MAX_HOST_BYTES,
    );
}

// ------------------------------------------------------------------ paths

/// A template of `segments` segments: parameters and literals alternating.
fn template(segments: usize) -> String {
    (0..segments)
        .map(|i| {
            if i % 2 == 0 {
                format!("/s{i}")
            } else {
                format!("/{{p{i}}}")
            }
        })
        .collect()
}

/// A request path for [`template`].
fn request(segments: usize) -> String {
    (0..segments)
        .map(|i| if i % 2 == 0 { format!("/s{i}") } else { format!("/v{i}") })
        .collect()
}

#[test]
fn segments_per_template() {
    let op = |segments: usize| {
        config(&format!(
            r#""operations":[{{"id":"deep","method":"GET","path":"{}"}}]"#,
            template(segments)
        ))
    };
    bound(
        &op(MAX_TEMPLATE_SEGMENTS),
        &op(MAX_TEMPLATE_SEGMENTS + 1),
        "operations[0].path",
        MAX_TEMPLATE_SEGMENTS,
    );
    let plan = accepted(&op(MAX_TEMPLATE_SEGMENTS));
    assert_eq!(plan.classify("GET", &request(MAX_TEMPLATE_SEGMENTS), None), Some(0));
    // Deeper than every template: not matched, not walked.
    assert_eq!(plan.classify("GET", &request(MAX_TEMPLATE_SEGMENTS + 1), None), None);
}

#[test]
fn bytes_per_template() {
    let op = |len: usize| {
        config(&format!(
            r#""operations":[{{"id":"long","method":"GET","path":"/{}"}}]"#,
            n('t', len - 1)
        ))
    };
    bound(
        &op(MAX_TEMPLATE_BYTES),
        &op(MAX_TEMPLATE_BYTES + 1),
        "operations[0].path",
        MAX_TEMPLATE_BYTES,
    );
}

#[test]
fn a_request_path_longer_than_the_bound_matches_nothing() {
    let plan = accepted(&config(
        r#""operations":[{"id":"item","method":"GET","path":"/items/{id}"}]"#,
    ));
    let path = |len: usize| format!("/items/{}", n('x', len - 7));
    assert_eq!(plan.classify("GET", &path(MAX_REQUEST_PATH_BYTES), None), Some(0));
    assert_eq!(plan.classify("GET", &path(MAX_REQUEST_PATH_BYTES + 1), None), None);
    // The query does not count: it is not matched.
    let with_query = format!("{}?q={}", path(MAX_REQUEST_PATH_BYTES), n('q', 100_000));
    assert_eq!(plan.classify("GET", &with_query, None), Some(0));
    // Nor is a path of a million bytes walked: this returns at once.
    assert_eq!(plan.classify("GET", &path(1 << 20), None), None);
}

#[test]
fn a_request_with_thousands_of_segments_matches_nothing() {
    let plan = accepted(&config(
        r#""operations":[{"id":"a","method":"GET","path":"/{a}/{b}/{c}"}]"#,
    ));
    assert_eq!(plan.classify("GET", "/x/y/z", None), Some(0));
    assert_eq!(plan.classify("GET", &"/x".repeat(4000), None), None);
    assert_eq!(plan.classify("GET", "/x/y/z/w", None), None);
}

// ------------------------------------------------------------------ comparison rules

#[test]
fn comparison_rule_lists() {
    let list = |field: &str, entry: &dyn Fn(usize) -> String, count: usize| {
        let entries: Vec<String> = (0..count).map(entry).collect();
        with_op(&format!(r#""compare":{{"{field}":[{}]}}"#, entries.join(",")))
    };
    let header = |i: usize| format!(r#""x-h{i}""#);
    let pointer = |i: usize| format!(r#""/p{i}""#);
    let mask = |_: usize| r#""uuid""#.to_string();
    for (field, entry, limit) in [
        (
            "ignore_headers",
            &header as &dyn Fn(usize) -> String,
            MAX_IGNORE_HEADERS,
        ),
        ("ignore_json_paths", &pointer, MAX_IGNORE_JSON_PATHS),
        ("unordered_arrays", &pointer, MAX_UNORDERED_ARRAYS),
        ("masks", &mask, MAX_MASKS),
    ] {
        bound(
            &list(field, entry, limit),
            &list(field, entry, limit + 1),
            &format!("operations[0].compare.{field}"),
            limit,
        );
    }
}

#[test]
fn json_pointers() {
    let pointer = |len: usize| format!("/{}", n('p', len - 1));
    for (members, path) in [
        (
            &(|len: usize| format!(r#""ignore_json_paths":["{}"]"#, pointer(len))) as &dyn Fn(usize) -> String,
            "ignore_json_paths[0]",
        ),
        (
            &|len: usize| format!(r#""unordered_arrays":["{}"]"#, pointer(len)),
            "unordered_arrays[0]",
        ),
        (
            &|len: usize| format!(r#""unordered_arrays":[{{"path":"{}"}}]"#, pointer(len)),
            "unordered_arrays[0].path",
        ),
        (
            &|len: usize| format!(r#""unordered_arrays":[{{"path":"/a","key":"{}"}}]"#, pointer(len)),
            "unordered_arrays[0].key",
        ),
    ] {
        let op = |len: usize| with_op(&format!(r#""compare":{{{}}}"#, members(len)));
        bound(
            &op(MAX_POINTER_BYTES),
            &op(MAX_POINTER_BYTES + 1),
            &format!("operations[0].compare.{path}"),
            MAX_POINTER_BYTES,
        );
    }
}

#[test]
fn status_groups_hold_every_code_at_most_once() {
    let all: Vec<String> = (100..=599).map(|c| c.to_string()).collect();
    let plan = accepted(&with_op(&format!(
        r#""compare":{{"status_equivalent":[[{}]]}}"#,
        all.join(",")
    )));
    assert_eq!(plan.operations[0].settings.compare.status.equivalent[0].len(), 500);
    let err = refused(&with_op(&format!(
        r#""compare":{{"status_equivalent":[[{}],[200,201]]}}"#,
        all.join(",")
    )));
    assert_eq!(err.path, "operations[0].compare.status_equivalent[1][0]");
}

#[test]
fn error_messages_are_bounded() {
    // serde quotes an unknown field; a megabyte-long one is cut.
    let err = refused(&config(&format!(r#""{}":1"#, n('k', 1 << 20))));
    assert!(err.path.len() < 1100, "{} bytes", err.path.len());
    assert!(err.message.len() < 1100, "{} bytes", err.message.len());
    assert!(
        err.message.contains("bytes in all"),
        "{}",
        &err.message[err.message.len() - 40..]
    );
}
