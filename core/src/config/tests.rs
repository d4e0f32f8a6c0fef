#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::compare::json::PointerPattern;
use crate::compare::{HeaderPattern, NumberTolerance, StatusMatch};
use crate::plan::{Backend, Mode, Operation};
use std::sync::Arc;

/// The example configuration of the issue.
const EXAMPLE: &str = r#"{"revision":"2026-11-22.1","route_header":"x-parallel-run-cluster","legacy":{"cluster":"legacy"},"candidate":{"cluster":"candidate","authority":"returns.internal"},"operation_header":"x-operation-id","defaults":{"mode":"legacy","shadow_percent":100,"shadow_timeout_ms":3000,"max_body_bytes":1048576,"target_match_rate":0.99,"min_samples":100},"operations":[{"id":"getReturn","method":"GET","path":"/returns/{id}","mode":"shadow","candidate":{"cluster":"returns-v2"},"target_match_rate":0.95},{"id":"createReturn","method":"POST","path":"/returns","mode":"legacy"}]}"#;

/// A minimal configuration around `rest` (top-level members after the
/// backends, without a leading comma).
fn config(rest: &str) -> String {
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!(",{rest}")
    };
    format!(r#"{{"legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}}{rest}}}"#)
}

/// A configuration with these operations (a JSON array body, without brackets).
fn with_ops(ops: &str) -> String {
    config(&format!(r#""operations":[{ops}]"#))
}

fn parse_ok(json: &str) -> Plan {
    match parse(json.as_bytes()) {
        Ok(plan) => plan,
        Err(err) => panic!("refused: {err}\n{json}"),
    }
}

fn parse_err(json: &str) -> ConfigError {
    match parse(json.as_bytes()) {
        Ok(_) => panic!("accepted: {json}"),
        Err(err) => err,
    }
}

fn op<'a>(plan: &'a Plan, id: &str) -> &'a Operation {
    plan.operations.iter().find(|o| o.id == id).expect(id)
}

#[test]
fn the_example_configuration_parses() {
    let plan = parse_ok(EXAMPLE);
    assert_eq!(plan.revision, "2026-11-22.1");
    assert_eq!(plan.route_header, "x-parallel-run-cluster");
    assert_eq!(plan.operation_header.as_deref(), Some("x-operation-id"));
    assert_eq!(plan.max_inflight_shadows, DEFAULT_MAX_INFLIGHT_SHADOWS);
    assert_eq!(
        plan.legacy,
        Backend {
            cluster: "legacy".into(),
            authority: None
        }
    );
    assert_eq!(plan.candidate.authority.as_deref(), Some("returns.internal"));
    let ids: Vec<_> = plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["getReturn", "createReturn"]);
}

#[test]
fn an_operation_overrides_the_defaults_and_inherits_the_rest() {
    let plan = parse_ok(EXAMPLE);
    let get = op(&plan, "getReturn");
    assert_eq!(get.method, "GET");
    assert_eq!(get.path, "/returns/{id}");
    assert_eq!(get.mode, Mode::Shadow);
    assert_eq!(get.settings.target_match_rate, 0.95);
    // Inherited from `defaults`.
    assert_eq!(get.settings.min_samples, 100);
    assert_eq!(get.settings.sample_per_million, 1_000_000);
    assert_eq!(get.settings.shadow_timeout_ms, 3000);
    assert_eq!(get.settings.max_body_bytes, 1_048_576);
    assert!(!get.settings.shadow_unsafe);

    let create = op(&plan, "createReturn");
    assert_eq!(create.mode, Mode::Legacy);
    assert_eq!(create.settings.target_match_rate, 0.99);
}

#[test]
fn operations_that_set_nothing_but_their_mode_share_one_set_of_settings() {
    let plan = parse_ok(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a"},
           {"id":"b","method":"GET","path":"/b","mode":"shadow"},
           {"id":"c","method":"GET","path":"/c","mode":"cutover"},
           {"id":"d","method":"GET","path":"/d","mode":"shadow","min_samples":7},
           {"id":"e","method":"GET","path":"/e","mode":"legacy","legacy":{"cluster":"old"}}"#,
    ));
    let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|id| op(&plan, id));
    assert_eq!(
        [a.mode, b.mode, c.mode, e.mode],
        [Mode::Legacy, Mode::Shadow, Mode::Cutover, Mode::Legacy]
    );
    for other in [b, c, e] {
        assert!(Arc::ptr_eq(&a.settings, &other.settings), "{}", other.id);
    }
    // A setting of its own: settings of its own.
    assert!(!Arc::ptr_eq(&a.settings, &d.settings));
    assert_eq!(
        (a.settings.min_samples, d.settings.min_samples),
        (DEFAULT_MIN_SAMPLES, 7)
    );
    // The backends are shared too, and an override is the operation's own.
    assert!(Arc::ptr_eq(&a.legacy.cluster, &plan.legacy.cluster));
    assert!(Arc::ptr_eq(&d.candidate.cluster, &plan.candidate.cluster));
    assert_eq!(&*e.legacy.cluster, "old");
}

#[test]
fn a_cluster_override_keeps_the_top_level_authority() {
    let plan = parse_ok(EXAMPLE);
    let get = op(&plan, "getReturn");
    assert_eq!(
        get.candidate,
        Backend {
            cluster: "returns-v2".into(),
            authority: Some("returns.internal".into())
        }
    );
    assert_eq!(get.legacy, plan.legacy);
    // No override: the top-level backend as is.
    assert_eq!(op(&plan, "createReturn").candidate, plan.candidate);
}

#[test]
fn an_authority_override_keeps_the_top_level_cluster() {
    let plan = parse_ok(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","legacy":{"authority":"old.internal:8080"}}"#,
    ));
    assert_eq!(
        plan.operations[0].legacy,
        Backend {
            cluster: "legacy".into(),
            authority: Some("old.internal:8080".into())
        }
    );
}

#[test]
fn built_in_defaults_apply_without_a_defaults_section() {
    let plan = parse_ok(&with_ops(r#"{"id":"a","method":"GET","path":"/a"}"#));
    assert_eq!(plan.revision, "");
    assert_eq!(plan.route_header, DEFAULT_ROUTE_HEADER);
    assert_eq!(plan.operation_header, None);
    let a = &plan.operations[0];
    assert_eq!(a.mode, Mode::Legacy);
    assert_eq!(a.settings.sample_per_million, 1_000_000);
    assert_eq!(a.settings.shadow_timeout_ms, DEFAULT_SHADOW_TIMEOUT_MS);
    assert_eq!(a.settings.max_body_bytes as u64, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(a.settings.target_match_rate, DEFAULT_TARGET_MATCH_RATE);
    assert_eq!(a.settings.min_samples, DEFAULT_MIN_SAMPLES);
    assert!(a.settings.compare.ignore_headers.is_empty() && a.settings.compare.ignore_json_paths.is_empty());
}

#[test]
fn no_operations_is_a_valid_configuration() {
    let plan = parse_ok(&config(""));
    assert!(plan.operations.is_empty());
    assert_eq!(plan.classify("GET", "/anything", None), None);
}

#[test]
fn shadow_percent_becomes_parts_per_million() {
    let plan = parse_ok(&with_ops(
        r#"{"id":"half","method":"GET","path":"/a","shadow_percent":0.5},
           {"id":"none","method":"GET","path":"/b","shadow_percent":0},
           {"id":"third","method":"GET","path":"/c","shadow_percent":33.3333}"#,
    ));
    assert_eq!(op(&plan, "half").settings.sample_per_million, 5_000);
    assert_eq!(op(&plan, "none").settings.sample_per_million, 0);
    assert_eq!(op(&plan, "third").settings.sample_per_million, 333_333);
}

#[test]
fn header_names_are_lower_cased() {
    let plan = parse_ok(&config(
        r#""route_header":"X-Route","operation_header":"X-Operation-Id""#,
    ));
    assert_eq!(plan.route_header, "x-route");
    assert_eq!(plan.operation_header.as_deref(), Some("x-operation-id"));
}

#[test]
fn compare_lists_of_an_operation_add_to_those_of_the_defaults_per_field() {
    let plan = parse_ok(&config(
        r#""defaults":{"compare":{"ignore_headers":["etag"],"ignore_json_paths":["/meta"]}},
           "operations":[
             {"id":"own","method":"GET","path":"/a","compare":{"ignore_headers":["X-Trace-*"]}},
             {"id":"inherits","method":"GET","path":"/b"}]"#,
    ));
    let own = &op(&plan, "own").settings.compare;
    assert_eq!(
        own.ignore_headers,
        [
            HeaderPattern::parse("x-trace-*").unwrap(),
            HeaderPattern::parse("etag").unwrap()
        ],
        "added to the defaults' list, not replacing it"
    );
    assert_eq!(own.ignore_json_paths, [PointerPattern::parse("/meta").unwrap()]);
    let inherits = &op(&plan, "inherits").settings.compare;
    assert_eq!(inherits.ignore_headers, [HeaderPattern::parse("etag").unwrap()]);
    assert_eq!(inherits.ignore_json_paths, [PointerPattern::parse("/meta").unwrap()]);
}

#[test]
fn replace_with_an_empty_list_clears_the_inherited_one() {
    let plan = parse_ok(&config(
        r#""defaults":{"compare":{"ignore_headers":["etag"]}},
           "operations":[{"id":"a","method":"GET","path":"/a","compare":{"ignore_headers":{"replace":[]}}}]"#,
    ));
    assert!(plan.operations[0].settings.compare.ignore_headers.is_empty());
}

#[test]
fn shadow_unsafe_is_off_unless_set() {
    let plan = parse_ok(&config(
        r#""defaults":{"shadow_unsafe":true},
           "operations":[{"id":"a","method":"POST","path":"/a"},
                         {"id":"b","method":"POST","path":"/b","shadow_unsafe":false}]"#,
    ));
    assert!(op(&plan, "a").settings.shadow_unsafe);
    assert!(!op(&plan, "b").settings.shadow_unsafe);
}

// ------------------------------------------------------------------ errors

#[test]
fn an_unbalanced_template_names_the_operation_and_the_problem() {
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a"},
           {"id":"b","method":"GET","path":"/b"},
           {"id":"c","method":"GET","path":"/returns/{id"}"#,
    ));
    assert_eq!(err.path, "operations[2].path");
    let text = err.to_string();
    assert!(text.starts_with("operations[2].path: unbalanced '{'"), "{text}");
    assert!(text.contains("\"{id\""), "{text}");
}

#[test]
fn other_template_errors_are_reported_at_the_path() {
    for (template, problem) in [
        ("returns", "must start with '/'"),
        ("/a}", "unbalanced '}'"),
        ("/a{id}", "a parameter must be a whole segment"),
        ("/a/{}", "empty parameter name"),
        ("/a/{id}/{id}", "appears twice"),
        ("/a?x=1", "no query string"),
        ("/a//b", "empty segment"),
    ] {
        let err = parse_err(&with_ops(&format!(
            r#"{{"id":"a","method":"GET","path":"{template}"}}"#
        )));
        assert_eq!(err.path, "operations[0].path", "{template}");
        assert!(err.message.contains(problem), "{template}: {err}");
    }
}

#[test]
fn a_duplicate_id_names_both_operations() {
    let err = parse_err(&with_ops(
        r#"{"id":"getReturn","method":"GET","path":"/a"},{"id":"getReturn","method":"GET","path":"/b"}"#,
    ));
    let text = err.to_string();
    assert!(
        text.starts_with("operations[1].id: duplicate id \"getReturn\""),
        "{text}"
    );
    assert!(text.contains("operations[0]"), "{text}");
}

#[test]
fn an_unknown_mode_lists_the_modes() {
    let err = parse_err(&with_ops(r#"{"id":"a","method":"GET","path":"/a","mode":"shadowing"}"#));
    assert_eq!(err.path, "operations[0].mode");
    let text = err.to_string();
    assert!(
        text.starts_with("operations[0].mode: unknown variant `shadowing`"),
        "{text}"
    );
    for mode in ["legacy", "shadow", "cutover", "candidate"] {
        assert!(text.contains(&format!("`{mode}`")), "{mode}: {text}");
    }
    assert!(!text.contains(" at line "), "{text}");
}

#[test]
fn modes_are_lower_case() {
    let err = parse_err(&with_ops(r#"{"id":"a","method":"GET","path":"/a","mode":"Shadow"}"#));
    assert_eq!(err.path, "operations[0].mode");
}

#[test]
fn unknown_fields_are_errors_wherever_they_are() {
    let cases = [
        (config(r#""revison":"1""#), "revison"),
        (config(r#""defaults":{"shadow_pct":5}"#), "defaults.shadow_pct"),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","moode":"shadow"}"#),
            "operations[0].moode",
        ),
        (
            r#"{"legacy":{"cluster":"l","autority":"x"},"candidate":{"cluster":"c"}}"#.to_string(),
            "legacy.autority",
        ),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","candidate":{"clustr":"x"}}"#),
            "operations[0].candidate.clustr",
        ),
        (
            config(r#""defaults":{"compare":{"ignore_header":["etag"]}}"#),
            "defaults.compare.ignore_header",
        ),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","compare":{"ignore_paths":[]}}"#),
            "operations[0].compare.ignore_paths",
        ),
    ];
    for (json, path) in cases {
        let err = parse_err(&json);
        assert_eq!(err.path, path, "{err}");
        let field = path.rsplit('.').next().unwrap();
        assert!(
            err.message.starts_with(&format!("unknown field `{field}`, expected")),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_field_error_lists_the_known_ones() {
    let err = parse_err(&with_ops(r#"{"id":"a","method":"GET","path":"/a","shadow_pecent":5}"#));
    assert!(err.message.contains("`shadow_percent`"), "{err}");
    assert!(err.message.contains("`target_match_rate`"), "{err}");
}

#[test]
fn ids_must_be_usable_in_a_stats_name() {
    for id in ["get.return", "get return", "", "getReturn!", "überall"] {
        let err = parse_err(&with_ops(&format!(r#"{{"id":"{id}","method":"GET","path":"/a"}}"#)));
        assert_eq!(err.path, "operations[0].id", "{id:?}");
        assert!(err.message.contains("[A-Za-z0-9_-]+"), "{err}");
    }
    parse_ok(&with_ops(r#"{"id":"get_Return-2","method":"GET","path":"/a"}"#));
}

#[test]
fn methods_must_be_upper_case_tokens() {
    for method in ["get", "", "GET ", "G3T", "Post"] {
        let err = parse_err(&with_ops(&format!(r#"{{"id":"a","method":"{method}","path":"/a"}}"#)));
        assert_eq!(err.path, "operations[0].method", "{method:?}");
        assert!(err.message.contains(&format!("\"{method}\"")), "{err}");
    }
}

#[test]
fn missing_operation_fields_are_named() {
    let err = parse_err(&with_ops(r#"{"id":"a","method":"GET"}"#));
    assert_eq!(err.to_string(), "operations[0]: missing field `path`");
}

#[test]
fn shadow_percent_must_be_a_percentage() {
    for value in ["100.5", "-1", "1000"] {
        let err = parse_err(&with_ops(&format!(
            r#"{{"id":"a","method":"GET","path":"/a","shadow_percent":{value}}}"#
        )));
        assert_eq!(err.path, "operations[0].shadow_percent");
        assert!(err.message.contains("between 0 and 100"), "{err}");
    }
    parse_ok(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","shadow_percent":100}"#,
    ));
}

#[test]
fn target_match_rate_must_be_a_fraction() {
    for value in ["1.01", "-0.1", "95"] {
        let err = parse_err(&with_ops(&format!(
            r#"{{"id":"a","method":"GET","path":"/a","target_match_rate":{value}}}"#
        )));
        assert_eq!(err.path, "operations[0].target_match_rate");
        assert!(err.message.contains("between 0 and 1"), "{err}");
    }
    parse_ok(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","target_match_rate":1}"#,
    ));
}

#[test]
fn min_samples_must_be_positive() {
    let err = parse_err(&with_ops(r#"{"id":"a","method":"GET","path":"/a","min_samples":0}"#));
    assert_eq!(err.to_string(), "operations[0].min_samples: must be at least 1");
    let err = parse_err(&config(r#""defaults":{"min_samples":-5}"#));
    assert_eq!(err.path, "defaults.min_samples");
    parse_ok(&with_ops(r#"{"id":"a","method":"GET","path":"/a","min_samples":1}"#));
}

#[test]
fn timeouts_sizes_and_the_inflight_bound_are_range_checked() {
    for (field, value) in [
        ("shadow_timeout_ms", "0"),
        ("shadow_timeout_ms", "600001"),
        ("max_body_bytes", "67108865"),
    ] {
        let err = parse_err(&with_ops(&format!(
            r#"{{"id":"a","method":"GET","path":"/a","{field}":{value}}}"#
        )));
        assert_eq!(err.path, format!("operations[0].{field}"));
        assert!(err.message.starts_with(value), "{err}");
    }
    for value in ["0", "100001"] {
        let err = parse_err(&config(&format!(r#""max_inflight_shadows":{value}"#)));
        assert_eq!(err.path, "max_inflight_shadows");
    }
    let plan = parse_ok(&config(r#""max_inflight_shadows":1"#));
    assert_eq!(plan.max_inflight_shadows, 1);
    for value in ["0", "1000001", "2.5", "-1"] {
        let err = parse_err(&config(&format!(r#""max_shadows_per_second":{value}"#)));
        assert_eq!(err.path, "max_shadows_per_second", "{value}: {err}");
    }
    assert_eq!(parse_ok(&config("")).max_shadows_per_second, None);
    let plan = parse_ok(&config(r#""max_shadows_per_second":1000000"#));
    assert_eq!(plan.max_shadows_per_second, Some(1_000_000));
}

#[test]
fn a_wrong_type_names_the_field_without_a_position() {
    let err = parse_err(&config(r#""defaults":{"shadow_percent":"50%"}"#));
    assert_eq!(err.path, "defaults.shadow_percent");
    assert!(err.message.starts_with("invalid type: string \"50%\""), "{err}");
    assert!(!err.message.contains(" at line "), "{err}");
}

#[test]
fn bad_header_names_are_refused() {
    for (member, path) in [
        (r#""route_header":"x route""#, "route_header"),
        (r#""route_header":"""#, "route_header"),
        (r#""operation_header":"x:op""#, "operation_header"),
        (r#""operation_header":"x-op\n""#, "operation_header"),
    ] {
        let err = parse_err(&config(member));
        assert_eq!(err.path, path, "{member}");
        assert!(err.message.contains("is not a valid header name"), "{err}");
    }
}

#[test]
fn the_operation_header_cannot_be_the_route_header() {
    let err = parse_err(&config(r#""operation_header":"X-Parallel-Run-Cluster""#));
    assert_eq!(err.path, "operation_header");
    assert!(err.message.contains("route_header"), "{err}");
}

#[test]
fn both_top_level_backends_need_a_cluster() {
    let err = parse_err(r#"{"legacy":{},"candidate":{"cluster":"c"}}"#);
    assert_eq!(err.to_string(), "legacy.cluster: missing field");
    let err = parse_err(r#"{"legacy":{"cluster":"l"},"candidate":{"authority":"c.internal"}}"#);
    assert_eq!(err.to_string(), "candidate.cluster: missing field");
    let err = parse_err(r#"{"legacy":{"cluster":"l"}}"#);
    assert_eq!(err.to_string(), "missing field `candidate`");
}

#[test]
fn cluster_names_and_authorities_must_fit_in_a_header() {
    let err = parse_err(r#"{"legacy":{"cluster":"my legacy"},"candidate":{"cluster":"c"}}"#);
    assert_eq!(err.path, "legacy.cluster");
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","candidate":{"cluster":""}}"#,
    ));
    assert_eq!(err.path, "operations[0].candidate.cluster");
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","legacy":{"authority":"host/path"}}"#,
    ));
    assert_eq!(err.path, "operations[0].legacy.authority");
    assert!(err.message.contains("host[:port]"), "{err}");
}

#[test]
fn invalid_json_says_so() {
    for json in ["", "{", "nope", r#"{"legacy":{"cluster":"l"},}"#] {
        let err = parse_err(json);
        assert!(err.message.starts_with("invalid JSON: "), "{json:?}: {err}");
        assert!(err.message.contains(" at line "), "{json:?}: {err}");
        assert!(!err.path.contains('?'), "{json:?}: {err}");
    }
}

#[test]
fn a_syntax_error_inside_an_operation_names_the_operation_not_a_question_mark() {
    let err = parse_err(&with_ops(r#"{"id":"a","method":"GET","path":"/a",}"#));
    assert_eq!(err.path, "operations[0]");
    assert!(err.message.starts_with("invalid JSON: trailing comma"), "{err}");
}

#[test]
fn the_configuration_must_be_an_object() {
    for json in ["[]", "42", r#""legacy""#] {
        let err = parse_err(json);
        assert_eq!(err.to_string(), "the configuration must be a JSON object", "{json}");
    }
    let err = parse_err(r#"{"legacy":"l","candidate":{"cluster":"c"}}"#);
    assert_eq!(err.path, "legacy");
    assert!(!err.message.contains("Raw"), "internal type names leak: {err}");
}

#[test]
fn the_same_method_and_path_twice_is_an_error() {
    let err = parse_err(&with_ops(
        r#"{"id":"getReturn","method":"GET","path":"/returns/{id}"},
           {"id":"getReturn2","method":"GET","path":"/returns/{returnId}/"}"#,
    ));
    assert_eq!(err.path, "operations[1].path");
    assert!(
        err.message.contains("already matched by operations[0] (\"getReturn\")"),
        "{err}"
    );
    // Same path, another method: fine.
    parse_ok(&with_ops(
        r#"{"id":"getReturn","method":"GET","path":"/returns/{id}"},
           {"id":"deleteReturn","method":"DELETE","path":"/returns/{id}"}"#,
    ));
}

#[test]
fn errors_in_defaults_are_reported_at_defaults() {
    let ops = r#""operations":[{"id":"a","method":"GET","path":"/a"}]"#;
    for (defaults, path) in [
        (r#"{"shadow_percent":150}"#, "defaults.shadow_percent"),
        (r#"{"target_match_rate":2}"#, "defaults.target_match_rate"),
        (r#"{"shadow_timeout_ms":0}"#, "defaults.shadow_timeout_ms"),
        (r#"{"min_samples":0}"#, "defaults.min_samples"),
        (r#"{"mode":"off"}"#, "defaults.mode"),
        (
            r#"{"compare":{"ignore_headers":["bad header"]}}"#,
            "defaults.compare.ignore_headers[0]",
        ),
        (
            r#"{"compare":{"ignore_json_paths":["/ok","items"]}}"#,
            "defaults.compare.ignore_json_paths[1]",
        ),
    ] {
        let err = parse_err(&config(&format!(r#""defaults":{defaults},{ops}"#)));
        assert_eq!(err.path, path, "{defaults}: {err}");
        // Also with no operation inheriting them.
        let err = parse_err(&config(&format!(r#""defaults":{defaults}"#)));
        assert_eq!(err.path, path, "{defaults}: {err}");
    }
}

#[test]
fn compare_patterns_are_validated_per_operation() {
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","compare":{"ignore_json_paths":["/a~2b"]}}"#,
    ));
    assert_eq!(err.path, "operations[0].compare.ignore_json_paths[0]");
    assert!(err.message.contains("~0 is '~', ~1 is '/'"), "{err}");
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","compare":{"ignore_headers":["x-*-id"]}}"#,
    ));
    assert_eq!(err.path, "operations[0].compare.ignore_headers[0]");
    let err = parse_err(&with_ops(
        r#"{"id":"a","method":"GET","path":"/a","compare":{"ignore_json_paths":[""]}}"#,
    ));
    assert!(err.message.contains("must start with '/'"), "{err}");
}

#[test]
fn display_without_a_path_is_just_the_message() {
    let err = ConfigError::new("", "boom");
    assert_eq!(err.to_string(), "boom");
    let err = ConfigError::new("a.b", "boom");
    assert_eq!(err.to_string(), "a.b: boom");
}

#[test]
fn whole_numbers_may_come_as_doubles_as_istio_renders_them() {
    let plan = Plan::parse(
        br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"max_inflight_shadows":8.0,
            "defaults":{"shadow_timeout_ms":3000.0,"max_body_bytes":1.048576e6,"min_samples":100.0},
            "operations":[{"id":"a","method":"GET","path":"/a"}]}"#,
    )
    .unwrap();
    assert_eq!(plan.max_inflight_shadows, 8);
    assert_eq!(plan.operations[0].settings.shadow_timeout_ms, 3000);
    assert_eq!(plan.operations[0].settings.max_body_bytes, 1_048_576);
    assert_eq!(plan.operations[0].settings.min_samples, 100);
}

#[test]
fn fractional_or_negative_whole_numbers_are_refused_where_they_are() {
    for (settings, at) in [
        (r#""shadow_timeout_ms":3000.5"#, "defaults.shadow_timeout_ms"),
        (r#""max_body_bytes":-1"#, "defaults.max_body_bytes"),
        (r#""min_samples":"100""#, "defaults.min_samples"),
    ] {
        let json = format!(r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},"defaults":{{{settings}}}}}"#);
        let err = Plan::parse(json.as_bytes()).unwrap_err();
        assert_eq!(err.path, at, "{err}");
    }
    let err = Plan::parse(br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"max_inflight_shadows":5e9}"#)
        .unwrap_err();
    assert_eq!(err.path, "max_inflight_shadows", "{err}");
    assert!(err.message.contains("whole number"), "{err}");
}

// ------------------------------------------------------------------ comparison rules

/// A configuration with one operation `a` whose `compare` is `compare`.
fn with_compare(compare: &str) -> String {
    with_ops(&format!(
        r#"{{"id":"x","method":"GET","path":"/x"}},{{"id":"a","method":"GET","path":"/a","compare":{compare}}}"#
    ))
}

fn compare_err(compare: &str) -> ConfigError {
    parse_err(&with_compare(compare))
}

#[test]
fn the_new_comparison_rules_parse() {
    let plan = parse_ok(&with_compare(
        r#"{"unordered_arrays":["/tags",{"path":"/items","key":"/id"},{"path":""}],
            "number_tolerance":{"absolute":0.001,"relative":1e-6},
            "null_equals_missing":true,
            "status":"class","status_equivalent":[[200,201.0],[404,410]],
            "masks":["uuid","iso8601","pdf_creation_date",{"pattern":"ORD-\\d+","name":"order"},{"pattern":"x+"}]}"#,
    ));
    let rules = &op(&plan, "a").settings.compare;
    assert_eq!(rules.unordered_arrays.len(), 3);
    assert_eq!(rules.unordered_arrays[0].key, None);
    assert_eq!(rules.unordered_arrays[1].key.as_deref(), Some("/id"));
    assert_eq!(
        rules.number_tolerance,
        Some(NumberTolerance {
            absolute: Some(0.001),
            relative: Some(1e-6)
        })
    );
    assert!(rules.null_equals_missing);
    assert_eq!(rules.status.matching, StatusMatch::Class);
    assert_eq!(rules.status.equivalent, [vec![200, 201], vec![404, 410]]);
    let names: Vec<&str> = rules.masks.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["uuid", "iso8601", "pdf_creation_date", "order", "masked"]);
    assert_eq!(rules.max_decoded_bytes, DEFAULT_MAX_BODY_BYTES as usize);
    // The defaults of the defaults.
    let x = &op(&plan, "x").settings.compare;
    assert!(x.unordered_arrays.is_empty() && x.masks.is_empty() && x.number_tolerance.is_none());
    assert!(!x.null_equals_missing);
    assert_eq!(x.status.matching, StatusMatch::Exact);
}

#[test]
fn the_decode_limit_is_the_operation_s_max_body_bytes() {
    let plan = parse_ok(&config(
        r#""defaults":{"max_body_bytes":1000},"operations":[{"id":"a","method":"GET","path":"/a"},
           {"id":"b","method":"GET","path":"/b","max_body_bytes":5000}]"#,
    ));
    assert_eq!(op(&plan, "a").settings.compare.max_decoded_bytes, 1000);
    assert_eq!(op(&plan, "b").settings.compare.max_decoded_bytes, 5000);
}

#[test]
fn new_comparison_rules_are_inherited_per_field() {
    let plan = parse_ok(&config(
        r#""defaults":{"compare":{"unordered_arrays":["/tags"],"masks":["uuid"],"status":"class",
                                  "number_tolerance":{"absolute":1},"null_equals_missing":true,
                                  "status_equivalent":[[404,410]]}},
           "operations":[{"id":"inherits","method":"GET","path":"/a"},
                         {"id":"own","method":"GET","path":"/b","compare":{"masks":{"replace":[]},"status":"exact",
                          "number_tolerance":{"relative":0.1},"null_equals_missing":false}}]"#,
    ));
    let inherits = &op(&plan, "inherits").settings.compare;
    assert_eq!(inherits.unordered_arrays.len(), 1);
    assert_eq!(inherits.masks.len(), 1);
    assert_eq!(inherits.status.matching, StatusMatch::Class);
    assert_eq!(inherits.status.equivalent, [vec![404, 410]]);
    assert!(inherits.null_equals_missing);
    let own = &op(&plan, "own").settings.compare;
    assert_eq!(own.unordered_arrays.len(), 1, "not overridden: inherited");
    assert!(own.masks.is_empty(), "{{\"replace\": []}} clears");
    assert_eq!(own.status.matching, StatusMatch::Exact);
    assert_eq!(own.status.equivalent, [vec![404, 410]]);
    // An object replaces the defaults' object as a whole.
    assert_eq!(
        own.number_tolerance,
        Some(NumberTolerance {
            absolute: None,
            relative: Some(0.1)
        })
    );
    assert!(!own.null_equals_missing);
}

#[test]
fn comparison_rule_errors_name_the_field() {
    for (compare, path, message) in [
        (
            r#"{"unordered_arrays":["items"]}"#,
            "unordered_arrays[0]",
            "must start with '/'",
        ),
        (
            r#"{"unordered_arrays":["/a",{"path":"/b","key":"id"}]}"#,
            "unordered_arrays[1].key",
            "write \"/id\"",
        ),
        (
            r#"{"unordered_arrays":[{"path":"/b","key":"/*"}]}"#,
            "unordered_arrays[0].key",
            "'*' is not allowed",
        ),
        (
            r#"{"unordered_arrays":[{"path":"b"}]}"#,
            "unordered_arrays[0].path",
            "must start with '/'",
        ),
        (
            r#"{"unordered_arrays":[{"key":"/id"}]}"#,
            "unordered_arrays[0]",
            "missing field `path`",
        ),
        (
            r#"{"unordered_arrays":[{"path":"/a","by":"/id"}]}"#,
            "unordered_arrays[0].by",
            "unknown field `by`",
        ),
        (
            r#"{"unordered_arrays":[3]}"#,
            "unordered_arrays[0]",
            "a JSON Pointer string or an object",
        ),
        (
            r#"{"unordered_arrays":"/a"}"#,
            "unordered_arrays",
            "a list (added to the defaults' list)",
        ),
        (
            r#"{"number_tolerance":{}}"#,
            "number_tolerance",
            "set \"absolute\" and/or \"relative\"",
        ),
        (
            r#"{"number_tolerance":{"absolute":-1}}"#,
            "number_tolerance.absolute",
            "not a finite number >= 0",
        ),
        (
            r#"{"number_tolerance":{"relative":-0.5}}"#,
            "number_tolerance.relative",
            "not a finite number >= 0",
        ),
        (
            r#"{"number_tolerance":{"abs":1}}"#,
            "number_tolerance.abs",
            "unknown field `abs`",
        ),
        (
            r#"{"number_tolerance":0.1}"#,
            "number_tolerance",
            "an object with \"absolute\" and/or \"relative\"",
        ),
        (
            r#"{"null_equals_missing":"yes"}"#,
            "null_equals_missing",
            "expected a boolean",
        ),
        (
            r#"{"status":"family"}"#,
            "status",
            "unknown variant `family`, expected `exact` or `class`",
        ),
        (
            r#"{"status_equivalent":[[200]]}"#,
            "status_equivalent[0]",
            "at least two status codes",
        ),
        (
            r#"{"status_equivalent":[[200,99]]}"#,
            "status_equivalent[0][1]",
            "99 is not a status code (100-599)",
        ),
        (
            r#"{"status_equivalent":[[200,201.5]]}"#,
            "status_equivalent[0][1]",
            "is not a status code",
        ),
        (
            r#"{"status_equivalent":[[200,200]]}"#,
            "status_equivalent[0][1]",
            "appears twice",
        ),
        (
            r#"{"status_equivalent":[[200,201],[404,201]]}"#,
            "status_equivalent[1][1]",
            "201 is already in status_equivalent[0]",
        ),
        (
            r#"{"status_equivalent":[["200","201"]]}"#,
            "status_equivalent[0][0]",
            "invalid type",
        ),
        (r#"{"masks":["guid"]}"#, "masks[0]", "\"guid\" is not a built-in mask"),
        (
            r#"{"masks":["uuid",{"pattern":"(a|b)"}]}"#,
            "masks[1].pattern",
            "groups, alternation",
        ),
        (
            r#"{"masks":[{"pattern":"a","name":"a b"}]}"#,
            "masks[0].name",
            "[A-Za-z0-9_-]+",
        ),
        (r#"{"masks":[{"name":"x"}]}"#, "masks[0]", "missing field `pattern`"),
        (
            r#"{"masks":[{"pattern":"a","regex":"b"}]}"#,
            "masks[0].regex",
            "unknown field `regex`",
        ),
        (r#"{"masks":[true]}"#, "masks[0]", "a built-in mask name or an object"),
        (
            r#"{"unordred_arrays":[]}"#,
            "unordred_arrays",
            "unknown field `unordred_arrays`",
        ),
    ] {
        let err = compare_err(compare);
        assert_eq!(err.path, format!("operations[1].compare.{path}"), "{compare}: {err}");
        assert!(err.message.contains(message), "{compare}: {err}");
        // The same in `defaults`, reported there.
        let err = parse_err(&config(&format!(r#""defaults":{{"compare":{compare}}}"#)));
        assert_eq!(err.path, format!("defaults.compare.{path}"), "{compare}: {err}");
    }
}

#[test]
fn the_number_of_masks_is_bounded() {
    let many = vec![r#""uuid""#; 33].join(",");
    let err = compare_err(&format!(r#"{{"masks":[{many}]}}"#));
    assert_eq!(err.path, "operations[1].compare.masks");
    assert!(err.message.contains("at most 32"), "{err}");
}

#[test]
fn an_unknown_compare_field_error_lists_the_new_ones() {
    let err = compare_err(r#"{"statuses":"class"}"#);
    for field in [
        "unordered_arrays",
        "number_tolerance",
        "null_equals_missing",
        "status",
        "status_equivalent",
        "masks",
        "header_masks",
        "case_insensitive_keys",
        "body",
    ] {
        assert!(err.message.contains(field), "{err}");
    }
}

#[test]
fn noise_learning_and_diff_path_settings() {
    let plan = Plan::parse(
        br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"defaults":{"noise_percent":5,"max_diff_paths":3},
            "operations":[{"id":"a","method":"GET","path":"/a","learn_noise":true},
                          {"id":"b","method":"GET","path":"/b","noise_percent":0}]}"#,
    )
    .unwrap();
    let (a, b) = (&plan.operations[0], &plan.operations[1]);
    assert_eq!(
        (
            a.settings.noise_per_million,
            a.settings.learn_noise,
            a.settings.max_diff_paths
        ),
        (50_000, true, 3)
    );
    assert_eq!(
        (
            b.settings.noise_per_million,
            b.settings.learn_noise,
            b.settings.max_diff_paths
        ),
        (0, false, 3)
    );
    let default = Plan::parse(br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"operations":[{"id":"a","method":"GET","path":"/a"}]}"#).unwrap();
    assert_eq!(
        default.operations[0].settings.max_diff_paths,
        crate::config::DEFAULT_MAX_DIFF_PATHS
    );
}

#[test]
fn noise_learning_errors_name_the_field() {
    for (operation, at, needle) in [
        (r#""learn_noise":true"#, "operations[0].learn_noise", "noise_percent"),
        (
            r#""noise_percent":101"#,
            "operations[0].noise_percent",
            "between 0 and 100",
        ),
        (r#""max_diff_paths":501"#, "operations[0].max_diff_paths", "limit"),
    ] {
        let json = format!(
            r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},"operations":[{{"id":"a","method":"GET","path":"/a",{operation}}}]}}"#
        );
        let err = Plan::parse(json.as_bytes()).unwrap_err();
        assert_eq!(err.path, at, "{err}");
        assert!(err.message.contains(needle), "{err}");
    }
}

mod evidence;
mod guards;
mod headers;
mod locate;
mod merge;
mod scoping;
mod slices;

#[test]
fn an_array_is_not_an_object_even_with_the_fields_in_order() {
    for (json, path, expected) in [
        (r#"["legacy",null]"#.to_string(), "", "must be a JSON object"),
        (
            r#"{"legacy":["l",null],"candidate":{"cluster":"c"}}"#.to_string(),
            "legacy",
            "expected an object with \"cluster\"",
        ),
        (
            config(r#""defaults":[]"#),
            "defaults",
            "expected an object of operation settings",
        ),
        (
            with_ops(r#"["a","GET","/a",null,null,null,null]"#),
            "operations[0]",
            "expected an operation object",
        ),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","compare":[]}"#),
            "operations[0].compare",
            "expected an object of comparison rules",
        ),
        (
            with_ops(r#"{"id":"a","method":"GET","path":"/a","compare":{"number_tolerance":[1,null]}}"#),
            "operations[0].compare.number_tolerance",
            "expected an object with \"absolute\"",
        ),
    ] {
        let err = parse_err(&json);
        assert_eq!(err.path, path, "{json}: {err}");
        assert!(err.message.contains(expected), "{json}: {err}");
    }
}

#[test]
fn noise_settings_of_an_unsafe_operation_are_refused_as_without_effect() {
    for (method, settings, at) in [
        ("POST", r#""noise_percent":5"#, "operations[0].noise_percent"),
        (
            "DELETE",
            r#""noise_percent":100,"learn_noise":true"#,
            "operations[0].noise_percent",
        ),
        ("PUT", r#""learn_noise":true"#, "operations[0].learn_noise"),
    ] {
        let err = parse_err(&config(&format!(
            r#""defaults":{{"noise_percent":10}},"operations":[{{"id":"a","method":"{method}","path":"/a","shadow_unsafe":true,{settings}}}]"#
        )));
        assert_eq!(err.path, at, "{method} {settings}: {err}");
        assert!(err.message.contains("safe methods only"), "{err}");
        assert!(err.message.contains("no effect"), "{err}");
    }
    // Zero is no claim; inherited settings apply where they can; safe methods may.
    let plan = parse_ok(&config(
        r#""defaults":{"noise_percent":10,"learn_noise":true},
           "operations":[{"id":"a","method":"POST","path":"/a","noise_percent":0,"learn_noise":false},
                         {"id":"b","method":"POST","path":"/b"},
                         {"id":"c","method":"GET","path":"/c","noise_percent":50}]"#,
    ));
    assert_eq!(op(&plan, "b").settings.noise_per_million, 100_000);
    assert_eq!(op(&plan, "c").settings.noise_per_million, 500_000);
}
