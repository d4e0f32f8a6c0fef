#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::compare::HeaderPattern;
use crate::diff_path::KeyNames;
use crate::exchange::Leg;
use crate::header_map::HeaderMap;
use crate::http::Response;
use crate::Plan;

fn ok(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: HeaderMap::from_pairs([("content-type", "application/json")]),
        body: body.as_bytes().to_vec(),
    }
}

/// The serving response as a backend sent it: Envoy's router adds its
/// timing header to every upstream response, never to its own replies.
fn serving(status: u16, body: &str) -> ServingReply {
    let mut response = ok(status, body);
    response.headers = response.headers.with("x-envoy-upstream-service-time", b"3");
    ServingReply::Complete(response)
}

fn shadow(status: u16, body: &str) -> CallReply {
    CallReply::Complete(ok(status, body))
}

// ------------------------------------------------------------------ comparing two replies

fn judged(serving: ServingReply, shadow: CallReply) -> Outcome {
    compare_replies(&CompareRules::default(), &serving, &shadow)
}

#[test]
fn equal_responses_are_matched() {
    assert_eq!(
        judged(serving(200, r#"{"a":1,"b":2}"#), shadow(200, r#"{"b":2,"a":1.0}"#)),
        Outcome::Matched
    );
    // Equal client errors are an equivalence too.
    assert_eq!(judged(serving(404, "{}"), shadow(404, "{}")), Outcome::Matched);
}

#[test]
fn different_responses_are_unmatched_with_the_diff() {
    match judged(serving(200, r#"{"a":1}"#), shadow(200, r#"{"a":2}"#)) {
        Outcome::Unmatched(diff) => {
            assert!(!diff.status);
            assert_eq!(diff.body.unwrap().json_paths, ["/a"]);
        }
        other => panic!("{other:?}"),
    }
    match judged(serving(200, "{}"), shadow(404, "{}")) {
        Outcome::Unmatched(diff) => assert!(diff.status && diff.body.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_operation_s_rules_are_applied() {
    let rules = CompareRules {
        ignore_headers: vec![HeaderPattern::parse("content-type").unwrap()],
        ignore_json_paths: vec![crate::compare::json::PointerPattern::parse("/ts").unwrap()],
        ..CompareRules::default()
    };
    let mut left = ok(200, r#"{"ts":1,"a":1}"#);
    left.headers = HeaderMap::from_pairs([("content-type", "application/json")]);
    let mut right = ok(200, r#"{"ts":2,"a":1}"#);
    right.headers = HeaderMap::from_pairs([("content-type", "application/json; charset=utf-8")]);
    let outcome = compare_replies(
        &rules,
        &ServingReply::Complete(left.clone()),
        &CallReply::Complete(right.clone()),
    );
    assert_eq!(outcome, Outcome::Matched);
    assert!(matches!(
        judged(ServingReply::Complete(left), CallReply::Complete(right)),
        Outcome::Unmatched(_)
    ));
}

#[test]
fn a_shadow_timeout_or_error_is_a_failure() {
    for serving_side in [serving(200, "{}"), serving(500, "{}"), ServingReply::TooLarge] {
        assert_eq!(
            judged(serving_side.clone(), CallReply::Timeout),
            Outcome::Failed(Failure::Timeout)
        );
        assert_eq!(judged(serving_side, CallReply::Error), Outcome::Failed(Failure::Error));
    }
}

#[test]
fn a_5xx_on_either_side_is_a_failure() {
    assert_eq!(
        judged(serving(500, "{}"), shadow(200, "{}")),
        Outcome::Failed(Failure::Status5xx)
    );
    assert_eq!(
        judged(serving(200, "{}"), shadow(503, "{}")),
        Outcome::Failed(Failure::Status5xx)
    );
    // Even the same 5xx on both sides says nothing about equivalence.
    assert_eq!(
        judged(serving(502, "{}"), shadow(502, "{}")),
        Outcome::Failed(Failure::Status5xx)
    );
    // A 5xx is reported before a missing body.
    assert_eq!(
        judged(serving(500, "{}"), CallReply::TooLarge),
        Outcome::Failed(Failure::Status5xx)
    );
    assert_eq!(
        judged(ServingReply::TooLarge, shadow(504, "")),
        Outcome::Failed(Failure::Status5xx)
    );
    // 4xx is not a failure.
    assert_eq!(judged(serving(499, "{}"), shadow(499, "{}")), Outcome::Matched);
}

#[test]
fn envoys_own_5xx_to_the_client_is_an_error_or_a_timeout_not_a_5xx() {
    // Legacy reset or refused: Envoy answers the client 503 itself.
    for status in [502, 503] {
        assert_eq!(
            judged(ServingReply::Complete(ok(status, "")), shadow(200, "{}")),
            Outcome::Failed(Failure::Error)
        );
    }
    assert_eq!(
        judged(ServingReply::Complete(ok(504, "")), shadow(200, "{}")),
        Outcome::Failed(Failure::Timeout)
    );
    // The shadow call's own failure still comes first.
    assert_eq!(
        judged(ServingReply::Complete(ok(503, "")), CallReply::Timeout),
        Outcome::Failed(Failure::Timeout)
    );
}

#[test]
fn a_body_too_large_on_either_side_is_a_failure() {
    assert_eq!(
        judged(ServingReply::TooLarge, shadow(200, "{}")),
        Outcome::Failed(Failure::BodyTooLarge)
    );
    assert_eq!(
        judged(serving(200, "{}"), CallReply::TooLarge),
        Outcome::Failed(Failure::BodyTooLarge)
    );
    assert_eq!(
        judged(ServingReply::TooLarge, CallReply::TooLarge),
        Outcome::Failed(Failure::BodyTooLarge)
    );
}

#[test]
fn an_incomplete_serving_side_is_abandoned_whatever_the_shadow_did() {
    for shadow_side in [
        shadow(200, "{}"),
        shadow(500, "{}"),
        CallReply::Timeout,
        CallReply::Error,
        CallReply::TooLarge,
    ] {
        assert_eq!(judged(ServingReply::Incomplete, shadow_side), Outcome::Abandoned);
    }
    // A call its configuration retired is abandoned too.
    assert_eq!(judged(serving(200, "{}"), CallReply::Cancelled), Outcome::Abandoned);
}

#[test]
fn a_body_decoding_beyond_the_limit_fails_as_too_large() {
    let big = vec![b'a'; 64 << 10];
    let mut bomb = ok(200, "");
    bomb.headers = HeaderMap::from_pairs([("content-encoding", "deflate")]);
    bomb.body = miniz_oxide::deflate::compress_to_vec_zlib(&big, 6);
    let rules = CompareRules {
        max_decoded_bytes: 4096,
        ..CompareRules::default()
    };
    let outcome = compare_replies(
        &rules,
        &ServingReply::Complete(ok(200, "a")),
        &CallReply::Complete(bomb.clone()),
    );
    assert_eq!(outcome, Outcome::Failed(Failure::BodyTooLarge));
    // Within the limit it is compared (and differs).
    let outcome = compare_replies(
        &CompareRules::default(),
        &ServingReply::Complete(ok(200, "a")),
        &CallReply::Complete(bomb),
    );
    assert!(matches!(outcome, Outcome::Unmatched(_)), "{outcome:?}");
}

// ------------------------------------------------------------------ judging an exchange

fn operation(extra: &str) -> crate::Operation {
    let json = format!(
        r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},
           "defaults":{{"name_keys":true}},
           "operations":[{{"id":"op","method":"GET","path":"/r","mode":"shadow"{extra}}}]}}"#
    );
    match Plan::parse(json.as_bytes()) {
        Ok(plan) => plan.operations.into_iter().next().unwrap(),
        Err(err) => panic!("{err}"),
    }
}

fn settled(leg: Leg, serving_body: &str, reply_body: &str) -> Settled<()> {
    Settled {
        operation: (),
        request_id: "rid".into(),
        request_path: None,
        leg,
        serving: std::rc::Rc::new(serving(200, serving_body)),
        reply: shadow(200, reply_body),
    }
}

fn shadowed(serving_body: &str, reply_body: &str) -> Settled<()> {
    settled(Leg::Shadow, serving_body, reply_body)
}

#[test]
fn a_match_counts_matched_and_no_diff_paths() {
    let judgement = judge(&operation(""), &shadowed(r#"{"a":1}"#, r#"{"a":1}"#), &[]);
    assert_eq!(judgement.outcome, Some(Outcome::Matched));
    assert_eq!(judgement.counters(), [Counter::Matched]);
    assert!(judgement.diff_paths.is_empty());
    assert_eq!((judgement.repeat_diff, judgement.candidate_diff), (None, None));
}

#[test]
fn diff_paths_name_keys_only_as_the_operation_allows() {
    let call = shadowed(r#"{"DE001":{"n":1}}"#, r#"{"DE001":{"n":2}}"#);
    let hidden = judge(&operation(r#","name_keys":false"#), &call, &[]);
    assert_eq!(hidden.diff_paths, ["/{}/{}"]);
    let some = judge(&operation(r#","name_keys":["n"]"#), &call, &[]);
    assert_eq!(some.diff_paths, ["/{}/n"]);
}

#[test]
fn an_unmatched_comparison_counts_its_axes_and_its_diff_paths() {
    let judgement = judge(&operation(""), &shadowed(r#"{"a":[1,2]}"#, r#"{"a":[1,3]}"#), &[]);
    assert!(matches!(judgement.outcome, Some(Outcome::Unmatched(_))));
    assert_eq!(judgement.counters(), [Counter::Unmatched, Counter::UnmatchedBody]);
    assert_eq!(judgement.diff_paths, ["/a/*"]);
}

#[test]
fn failures_count_the_total_and_the_reason() {
    let mut call = shadowed("{}", "{}");
    call.reply = CallReply::Timeout;
    assert_eq!(
        judge(&operation(""), &call, &[]).counters(),
        [Counter::Failed, Counter::FailedTimeout]
    );
    call.reply = CallReply::Cancelled;
    assert_eq!(judge(&operation(""), &call, &[]).counters(), [Counter::Abandoned]);
}

#[test]
fn the_repeat_feeds_noise_learning_counts_a_noise_sample_and_is_no_outcome() {
    let learning = operation(r#","noise_percent":100"#);
    let repeat = judge(
        &learning,
        &settled(Leg::Repeat, r#"{"t":1,"a":1}"#, r#"{"t":3,"a":1}"#),
        &[],
    );
    assert_eq!(repeat.outcome, None);
    assert_eq!(repeat.repeat_diff.as_deref(), Some(&["/t".to_string()][..]));
    assert_eq!(repeat.counters(), [Counter::NoiseSamples]);
    assert!(
        repeat.diff_paths.is_empty(),
        "a repeat's differences are not the candidate's"
    );
    // An equal repeat is a sample too; a failed one teaches nothing.
    let equal = judge(&learning, &settled(Leg::Repeat, "{}", "{}"), &[]);
    assert_eq!(equal.repeat_diff, Some(Vec::new()));
    let mut failed = settled(Leg::Repeat, "{}", "{}");
    failed.reply = CallReply::Timeout;
    let failed = judge(&learning, &failed, &[]);
    assert!(failed.counters().is_empty());
    assert_eq!((failed.outcome, failed.repeat_diff), (None, None));
    // The shadow's side of learning: the candidate rate counts every
    // comparison, equal ones too.
    let shadow = judge(&learning, &shadowed(r#"{"t":1}"#, r#"{"t":2}"#), &[]);
    assert_eq!(shadow.candidate_diff.as_deref(), Some(&["/t".to_string()][..]));
    assert_eq!(
        judge(&learning, &shadowed("{}", "{}"), &[]).candidate_diff,
        Some(Vec::new())
    );
}

#[test]
fn learned_noise_is_left_out_only_when_the_operation_uses_it() {
    let noise = ["/t".to_string()];
    let call = shadowed(r#"{"t":1,"a":1}"#, r#"{"t":2,"a":1}"#);
    let using = judge(&operation(r#","noise_percent":10,"learn_noise":true"#), &call, &noise);
    assert_eq!(using.outcome, Some(Outcome::Matched), "only noise differs");
    assert!(using.diff_paths.is_empty());
    assert_eq!(
        using.candidate_diff.as_deref(),
        Some(&["/t".to_string()][..]),
        "learning sees the raw diff"
    );
    let not_using = judge(&operation(r#","noise_percent":10"#), &call, &noise);
    assert!(matches!(not_using.outcome, Some(Outcome::Unmatched(_))));
    assert_eq!(not_using.diff_paths, ["/t"]);
    // A real difference beside the noise: unmatched, and only it is counted.
    let both = shadowed(r#"{"t":1,"a":1}"#, r#"{"t":2,"a":2}"#);
    let judgement = judge(&operation(r#","noise_percent":10,"learn_noise":true"#), &both, &noise);
    assert!(matches!(judgement.outcome, Some(Outcome::Unmatched(_))));
    assert_eq!(judgement.diff_paths, ["/a"]);
}

#[test]
fn the_log_line_names_fields_never_values_and_escapes_the_request_id() {
    let Outcome::Unmatched(diff) = compare_replies(
        &CompareRules::default(),
        &serving(200, r#"{"iban":"DE001","n":1}"#),
        &shadow(200, r#"{"iban":"DE002","n":2}"#),
    ) else {
        panic!("differs");
    };
    let line = unmatched_line("getReturn", "abc\nop=forged x", &diff, &KeyNames::All, 3);
    assert!(line.contains("operation=getReturn"), "{line}");
    assert!(line.contains("json_paths=[/iban,/n]"), "{line}");
    assert!(!line.contains("DE00"), "{line}");
    assert!(line.contains("request_id=abc\\x0aop=forged\\x20x"), "{line}");
    assert!(
        line.ends_with("(3 unmatched lines suppressed before this one)"),
        "{line}"
    );
    let long = "r".repeat(200);
    assert!(
        unmatched_line("op", &long, &diff, &KeyNames::All, 0).contains(&format!("request_id={}...", "r".repeat(64)))
    );
    // Keys the operator did not allow are not named.
    let hidden = unmatched_line("op", "r", &diff, &KeyNames::Hidden, 0);
    assert!(
        hidden.contains("json_paths=[/{},/{}]") && !hidden.contains("iban"),
        "{hidden}"
    );
}

#[test]
fn the_failed_line_names_the_side_and_the_reason() {
    let mut call = shadowed("{}", "{}");
    call.reply = CallReply::Timeout;
    assert_eq!(
        failed_line("getReturn", &call, Failure::Timeout, 0),
        "parallel-run: failed operation=getReturn request_id=rid reason=timeout side=shadow"
    );
    call.reply = shadow(503, "down");
    assert!(failed_line("op", &call, Failure::Status5xx, 2)
        .ends_with("reason=5xx side=shadow status=503 (2 failed lines suppressed before this one)"));
    let mut call = shadowed("{}", "{}");
    call.serving = std::rc::Rc::new(serving(500, "oops"));
    assert!(failed_line("op", &call, Failure::Status5xx, 0).ends_with("reason=5xx side=serving status=500"));
}
