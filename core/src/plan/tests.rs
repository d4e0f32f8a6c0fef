#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

const CONFIG: &str = r#"{
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate", "authority": "returns.internal"},
    "operation_header": "x-operation-id",
    "operations": [
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"},
        {"id": "createReturn", "method": "POST", "path": "/returns", "mode": "legacy"},
        {"id": "refundReturn", "method": "POST", "path": "/returns/{id}/refund", "mode": "cutover"},
        {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "candidate"}
    ]
}"#;

fn plan() -> Plan {
    Plan::parse(CONFIG.as_bytes()).unwrap()
}

fn id(plan: &Plan, index: Option<usize>) -> Option<&str> {
    index.map(|i| plan.operation(i).unwrap().id.as_str())
}

#[test]
fn classify_by_method_and_path() {
    let plan = plan();
    assert_eq!(id(&plan, plan.classify("GET", "/returns/42", None)), Some("getReturn"));
    assert_eq!(id(&plan, plan.classify("POST", "/returns", None)), Some("createReturn"));
    assert_eq!(
        id(&plan, plan.classify("POST", "/returns/42/refund?x=1", None)),
        Some("refundReturn")
    );
    assert_eq!(id(&plan, plan.classify("GET", "/returns/", None)), Some("listReturns"));
    assert_eq!(plan.classify("DELETE", "/returns/42", None), None);
    assert_eq!(plan.classify("GET", "/orders/42", None), None);
}

#[test]
fn a_known_id_in_the_operation_header_wins_over_method_and_path() {
    let plan = plan();
    assert_eq!(
        id(&plan, plan.classify("POST", "/returns", Some(b"refundReturn"))),
        Some("refundReturn")
    );
    // Even where the path matches nothing.
    assert_eq!(
        id(&plan, plan.classify("POST", "/legacy/v1/ret", Some(b"createReturn"))),
        Some("createReturn")
    );
}

#[test]
fn the_operation_header_cannot_change_the_method() {
    let plan = plan();
    // A POST naming a GET operation is matched by its own method and path.
    assert_eq!(
        id(&plan, plan.classify("POST", "/returns", Some(b"listReturns"))),
        Some("createReturn")
    );
    assert_eq!(plan.classify("PATCH", "/legacy/v1/ret", Some(b"createReturn")), None);
}

#[test]
fn an_unknown_id_in_the_operation_header_falls_back_to_matching() {
    let plan = plan();
    for header in [&b"nope"[..], b"", b"GETRETURN", b"getReturn ", b"\xff\xfe"] {
        assert_eq!(
            id(&plan, plan.classify("POST", "/returns", Some(header))),
            Some("createReturn"),
            "{header:?}"
        );
        assert_eq!(plan.classify("PUT", "/returns", Some(header)), None, "{header:?}");
    }
}

#[test]
fn operation_out_of_range_is_none() {
    let plan = plan();
    assert!(plan.operation(3).is_some());
    assert!(plan.operation(4).is_none());
}

fn by_id<'a>(plan: &'a Plan, name: &str) -> &'a Operation {
    plan.operations.iter().find(|o| o.id == name).unwrap()
}

#[test]
fn serving_and_shadow_follow_the_mode() {
    let plan = plan();
    let legacy = &plan.legacy;
    let candidate = &plan.candidate;

    let legacy_mode = by_id(&plan, "createReturn");
    assert_eq!(legacy_mode.mode, Mode::Legacy);
    assert_eq!(legacy_mode.serving(), (legacy, Side::Legacy));
    assert_eq!(legacy_mode.shadow(), None);

    let shadow_mode = by_id(&plan, "getReturn");
    assert_eq!(shadow_mode.mode, Mode::Shadow);
    assert_eq!(shadow_mode.serving(), (legacy, Side::Legacy));
    assert_eq!(shadow_mode.shadow(), Some(candidate));

    let cutover_mode = by_id(&plan, "refundReturn");
    assert_eq!(cutover_mode.mode, Mode::Cutover);
    assert_eq!(cutover_mode.serving(), (candidate, Side::Candidate));
    assert_eq!(cutover_mode.shadow(), Some(legacy));

    let candidate_mode = by_id(&plan, "listReturns");
    assert_eq!(candidate_mode.mode, Mode::Candidate);
    assert_eq!(candidate_mode.serving(), (candidate, Side::Candidate));
    assert_eq!(candidate_mode.shadow(), None);
}

#[test]
fn serving_and_shadow_use_the_operation_s_own_backends() {
    let plan = Plan::parse(
        br#"{"legacy":{"cluster":"legacy"},"candidate":{"cluster":"candidate"},
             "operations":[{"id":"a","method":"GET","path":"/a","mode":"cutover",
                            "legacy":{"cluster":"legacy-eu"},"candidate":{"cluster":"returns-v2"}}]}"#,
    )
    .unwrap();
    let a = &plan.operations[0];
    assert_eq!(&*a.serving().0.cluster, "returns-v2");
    assert_eq!(a.shadow().map(|b| &*b.cluster), Some("legacy-eu"));
}

#[test]
fn mode_names_round_trip_through_the_configuration() {
    for mode in [Mode::Legacy, Mode::Shadow, Mode::Cutover, Mode::Candidate] {
        let json = format!(
            r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},"operations":[{{"id":"a","method":"GET","path":"/a","mode":"{}"}}]}}"#,
            mode.as_str()
        );
        assert_eq!(Plan::parse(json.as_bytes()).unwrap().operations[0].mode, mode);
    }
}

// ------------------------------------------------------------------ host scoping

const SCOPED: &str = r#"{
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "hosts": ["*.example.com", "shop.example.net"],
    "operation_header": "x-operation-id",
    "operations": [
        {"id": "euOrder", "method": "GET", "path": "/orders/{id}", "hosts": ["eu.example.com"]},
        {"id": "usOrder", "method": "GET", "path": "/orders/{id}", "hosts": ["us.example.com", "*.us.example.com"]},
        {"id": "anyOrder", "method": "GET", "path": "/orders/{id}", "hosts": ["shop.example.net"]},
        {"id": "summary", "method": "GET", "path": "/orders/summary", "hosts": ["eu.example.com"]},
        {"id": "health", "method": "GET", "path": "/health"}
    ]
}"#;

fn scoped() -> Plan {
    Plan::parse(SCOPED.as_bytes()).unwrap()
}

fn classify_at<'a>(plan: &'a Plan, method: &str, path: &str, authority: &str) -> Option<&'a str> {
    id(plan, plan.classify_request(method, path, authority.as_bytes(), None))
}

#[test]
fn without_hosts_every_authority_is_in_scope() {
    let plan = plan();
    for authority in ["", "api.example.com", "10.0.0.1:8080", "[::1]:80", "\u{fc}ber"] {
        assert!(plan.in_scope(authority.as_bytes()), "{authority}");
        assert_eq!(
            classify_at(&plan, "GET", "/returns/42", authority),
            Some("getReturn"),
            "{authority}"
        );
    }
}

#[test]
fn the_top_level_hosts_decide_the_scope() {
    let plan = scoped();
    for authority in [
        "eu.example.com",
        "EU.Example.COM:8443",
        "a.b.example.com",
        "shop.example.net",
        "shop.example.net.",
    ] {
        assert!(plan.in_scope(authority.as_bytes()), "{authority}");
    }
    for authority in [
        "example.com",
        "shop.example.org",
        "www.example.net",
        "",
        ":443",
        "example.com.evil.org",
    ] {
        assert!(!plan.in_scope(authority.as_bytes()), "{authority}");
        // Out of scope, nothing is classified, not even by id.
        assert_eq!(classify_at(&plan, "GET", "/health", authority), None, "{authority}");
        assert_eq!(
            plan.classify_request("GET", "/health", authority.as_bytes(), Some(b"health")),
            None
        );
    }
}

#[test]
fn an_operation_s_hosts_pick_it_among_same_path_operations() {
    let plan = scoped();
    assert_eq!(
        classify_at(&plan, "GET", "/orders/1", "eu.example.com"),
        Some("euOrder")
    );
    assert_eq!(
        classify_at(&plan, "GET", "/orders/1", "us.example.com:443"),
        Some("usOrder")
    );
    assert_eq!(
        classify_at(&plan, "GET", "/orders/1", "east.us.example.com"),
        Some("usOrder")
    );
    assert_eq!(
        classify_at(&plan, "GET", "/orders/1", "SHOP.example.net"),
        Some("anyOrder")
    );
    // In scope, but no operation of this path answers on this host.
    assert_eq!(classify_at(&plan, "GET", "/orders/1", "asia.example.com"), None);
    // Without hosts of its own, an operation answers on every host in scope.
    assert_eq!(classify_at(&plan, "GET", "/health", "asia.example.com"), Some("health"));
}

#[test]
fn a_literal_of_another_host_falls_back_to_the_template() {
    let plan = scoped();
    assert_eq!(
        classify_at(&plan, "GET", "/orders/summary", "eu.example.com"),
        Some("summary")
    );
    assert_eq!(
        classify_at(&plan, "GET", "/orders/summary", "us.example.com"),
        Some("usOrder")
    );
}

#[test]
fn the_operation_header_cannot_cross_hosts() {
    let plan = scoped();
    let header = |authority: &str, id: &[u8]| {
        let index = plan.classify_request("GET", "/elsewhere", authority.as_bytes(), Some(id));
        index.map(|i| plan.operations[i].id.as_str())
    };
    assert_eq!(header("eu.example.com", b"euOrder"), Some("euOrder"));
    assert_eq!(header("us.example.com", b"euOrder"), None);
    assert_eq!(header("us.example.com", b"health"), Some("health"));
}

#[test]
fn the_authority_agnostic_classify_ignores_hosts() {
    let plan = scoped();
    // The first operation of the path, whatever the host: what the filter did
    // before host scoping, kept for callers that do not know the authority.
    assert_eq!(id(&plan, plan.classify("GET", "/orders/1", None)), Some("euOrder"));
    assert_eq!(
        id(&plan, plan.classify("GET", "/orders/summary", None)),
        Some("summary")
    );
    assert_eq!(
        id(&plan, plan.classify("GET", "/orders/1", Some(b"usOrder"))),
        Some("usOrder")
    );
}

#[test]
fn an_over_long_operation_header_is_not_looked_up() {
    let plan = plan();
    let long = vec![b'a'; 100_000];
    assert_eq!(
        plan.classify("POST", "/returns", Some(&long)),
        by_index(&plan, "createReturn")
    );
}

#[test]
fn without_an_operation_header_configured_a_header_value_is_ignored() {
    let plan = Plan::parse(
        br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"operations":[
            {"id":"a","method":"GET","path":"/a"},{"id":"b","method":"GET","path":"/b"}]}"#,
    )
    .unwrap();
    assert_eq!(plan.classify("GET", "/a", Some(b"b")), Some(0));
    assert_eq!(plan.classify_request("GET", "/x", b"h", Some(b"b")), None);
}

fn by_index(plan: &Plan, name: &str) -> Option<usize> {
    plan.operations.iter().position(|o| o.id == name)
}

#[test]
fn groups_are_exposed() {
    let plan = Plan::parse(
        br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"operations":[
            {"id":"a","method":"GET","path":"/a","group":"pair"},
            {"id":"b","method":"PUT","path":"/a","group":"pair"},
            {"id":"c","method":"GET","path":"/c"}]}"#,
    )
    .unwrap();
    let groups: Vec<_> = plan.operations.iter().map(|o| o.group.as_deref()).collect();
    assert_eq!(groups, [Some("pair"), Some("pair"), None]);
}

#[test]
fn the_applied_line_is_bounded_whatever_the_number_of_operations() {
    let operations: Vec<String> = (0..2_000)
        .map(|n| {
            let mode = if n % 2 == 0 { "shadow" } else { "legacy" };
            format!(r#"{{"id":"op{n}","method":"GET","path":"/r{n}","mode":"{mode}"}}"#)
        })
        .collect();
    let json = format!(
        r#"{{"revision":"big","legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},"operations":[{}]}}"#,
        operations.join(",")
    );
    let plan = Plan::parse(json.as_bytes()).unwrap();
    let line = plan.summary();
    assert!(
        line.starts_with(r#"revision="big" operations=2000 (legacy=1000 shadow=1000) [op0=shadow,op1=legacy,"#),
        "{line}"
    );
    assert!(line.ends_with(",…]"), "{line}");
    assert!(line.contains("op31=legacy") && !line.contains("op32="), "{line}");
    assert!(line.len() < 1_000, "{} bytes", line.len());
}
