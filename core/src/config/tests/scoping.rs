//! `hosts` (top level and per operation) and `group`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{config, parse_err, parse_ok, with_ops};
use crate::hosts::HostPattern;

#[test]
fn hosts_parse_at_both_levels() {
    let plan = parse_ok(&config(
        r#""hosts":["*.Example.com","api.example.net"],
           "operations":[{"id":"a","method":"GET","path":"/a","hosts":["EU.example.com"]},
                         {"id":"b","method":"GET","path":"/b"}]"#,
    ));
    let top = plan.hosts.as_ref().unwrap();
    assert_eq!(
        top.patterns(),
        [
            HostPattern::Suffix(".example.com".into()),
            HostPattern::Exact("api.example.net".into())
        ]
    );
    let a = plan.operations[0].hosts.as_ref().unwrap();
    assert_eq!(a.patterns(), [HostPattern::Exact("eu.example.com".into())]);
    assert!(plan.operations[1].hosts.is_none());
    assert!(parse_ok(&config("")).hosts.is_none());
}

#[test]
fn host_errors_name_the_entry() {
    for (json, path, needle) in [
        (config(r#""hosts":[]"#), "hosts", "leave \"hosts\" out"),
        (
            config(r#""hosts":["a.example.com","b.example.com:443"]"#),
            "hosts[1]",
            "port",
        ),
        (
            config(r#""hosts":["*.example.com","a.example.com"]"#),
            "hosts[1]",
            "overlap",
        ),
        (config(r#""hosts":"a.example.com""#), "hosts", "a sequence"),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","hosts":["a b"]}"#),
            "operations[0].hosts[0]",
            "not a host name",
        ),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","hosts":[]}"#),
            "operations[0].hosts",
            "matches no host",
        ),
    ] {
        let err = parse_err(&json);
        assert_eq!(err.path, path, "{json}: {err}");
        assert!(err.message.contains(needle), "{json}: {err}");
    }
}

#[test]
fn an_operation_host_outside_the_top_level_hosts_is_refused() {
    let err = parse_err(&config(
        r#""hosts":["*.example.com"],
           "operations":[{"id":"a","method":"GET","path":"/a","hosts":["a.example.com","example.com"]}]"#,
    ));
    assert_eq!(err.path, "operations[0].hosts[1]");
    assert!(err.message.contains("outside the top-level hosts"), "{err}");
    parse_ok(&config(
        r#""hosts":["*.example.com"],
           "operations":[{"id":"a","method":"GET","path":"/a","hosts":["*.eu.example.com","a.example.com"]}]"#,
    ));
}

#[test]
fn one_route_may_serve_different_operations_on_disjoint_hosts() {
    let plan = parse_ok(&with_ops(
        r#"{"id":"a","method":"GET","path":"/orders/{id}","hosts":["a.example.com"]},
           {"id":"b","method":"GET","path":"/orders/{orderId}","hosts":["*.b.example.com", "b.example.com"]}"#,
    ));
    assert_eq!(plan.operations.len(), 2);
}

#[test]
fn one_route_on_overlapping_hosts_is_a_clash() {
    for (a_hosts, b_hosts) in [
        (r#","hosts":["a.example.com"]"#, r#","hosts":["*.example.com"]"#),
        (r#","hosts":["a.example.com"]"#, ""),
        ("", r#","hosts":["a.example.com"]"#),
    ] {
        let err = parse_err(&with_ops(&format!(
            r#"{{"id":"a","method":"GET","path":"/orders/{{id}}"{a_hosts}}},
               {{"id":"b","method":"GET","path":"/orders/{{id}}"{b_hosts}}}"#
        )));
        assert_eq!(err.path, "operations[1].path", "{err}");
        assert!(
            err.message
                .contains("already matched by operations[0] (\"a\") on the same hosts"),
            "{err}"
        );
    }
}

#[test]
fn a_group_is_named_like_an_id() {
    let plan = parse_ok(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","group":"returns-v2_pair"}"#,
    ));
    assert_eq!(plan.operations[0].group.as_deref(), Some("returns-v2_pair"));
    for group in [r#""""#, r#""a b""#, r#""grp.1""#, "7"] {
        let err = parse_err(&with_ops(&format!(
            r#"{{"id":"a","method":"GET","path":"/a","group":{group}}}"#
        )));
        assert_eq!(err.path, "operations[0].group", "{group}: {err}");
    }
    // `group` belongs to an operation, not to the defaults.
    let err = parse_err(&config(r#""defaults":{"group":"g"}"#));
    assert_eq!(err.path, "defaults.group");
}
