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
    assert_eq!(a.serving().0.cluster, "returns-v2");
    assert_eq!(a.shadow().map(|b| b.cluster.as_str()), Some("legacy-eu"));
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
