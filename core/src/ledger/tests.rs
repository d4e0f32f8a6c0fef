#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::compare::HeaderPattern;

fn ok(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.as_bytes().to_vec(),
    }
}

fn serving(status: u16, body: &str) -> ServingReply {
    ServingReply::Complete(ok(status, body))
}

fn shadow(status: u16, body: &str) -> ShadowReply {
    ShadowReply::Complete(ok(status, body))
}

// ------------------------------------------------------------------ pairing

#[test]
fn exchanges_get_distinct_ids_and_keep_their_tag() {
    let mut ledger = Ledger::default();
    let a = ledger.open("getReturn");
    let b = ledger.open("createReturn");
    assert_ne!(a, b);
    assert_eq!(ledger.tag(a), Some(&"getReturn"));
    assert_eq!(ledger.tag(b), Some(&"createReturn"));
    assert_eq!(ledger.open_count(), 2);
    assert_eq!(ledger.in_flight(), 0);
}

#[test]
fn serving_first_settles_once_when_the_shadow_arrives() {
    let mut ledger = Ledger::default();
    let id = ledger.open("op");
    ledger.dispatched(id);
    assert!(ledger.serving_reply(id, serving(200, "{}")).is_none());
    assert_eq!(ledger.open_count(), 1);
    assert_eq!(ledger.in_flight(), 1);

    let settled = ledger.shadow_reply(id, shadow(200, "{}")).expect("settles");
    assert_eq!(settled.tag, "op");
    assert_eq!(settled.serving, serving(200, "{}"));
    assert_eq!(settled.shadow, shadow(200, "{}"));
    assert_eq!(ledger.open_count(), 0);
    assert_eq!(ledger.in_flight(), 0);

    // Late duplicates find nothing to settle.
    assert!(ledger.shadow_reply(id, ShadowReply::Timeout).is_none());
    assert!(ledger.serving_reply(id, ServingReply::Incomplete).is_none());
    assert_eq!(ledger.tag(id), None);
    assert_eq!(ledger.in_flight(), 0);
}

#[test]
fn shadow_first_settles_once_when_the_serving_side_arrives() {
    let mut ledger = Ledger::default();
    let id = ledger.open(7u32);
    ledger.dispatched(id);
    assert!(ledger.shadow_reply(id, shadow(200, "[1]")).is_none());
    // The callout is answered: no longer in flight, but still open.
    assert_eq!(ledger.in_flight(), 0);
    assert_eq!(ledger.open_count(), 1);

    let settled = ledger.serving_reply(id, serving(200, "[2]")).expect("settles");
    assert_eq!(settled.tag, 7);
    assert_eq!(settled.serving, serving(200, "[2]"));
    assert_eq!(settled.shadow, shadow(200, "[1]"));
    assert_eq!(ledger.open_count(), 0);
    assert!(ledger.serving_reply(id, serving(200, "[2]")).is_none());
    assert!(ledger.shadow_reply(id, shadow(200, "[1]")).is_none());
}

#[test]
fn the_first_reply_of_a_side_is_the_one_kept() {
    let mut ledger = Ledger::default();
    let id = ledger.open(());
    ledger.dispatched(id);
    assert!(ledger.serving_reply(id, serving(200, "first")).is_none());
    assert!(ledger.serving_reply(id, ServingReply::Incomplete).is_none());
    let settled = ledger.shadow_reply(id, ShadowReply::Error).unwrap();
    assert_eq!(settled.serving, serving(200, "first"));

    let id = ledger.open(());
    ledger.dispatched(id);
    assert!(ledger.shadow_reply(id, ShadowReply::Timeout).is_none());
    assert!(ledger.shadow_reply(id, shadow(200, "late")).is_none());
    assert_eq!(ledger.in_flight(), 0, "a second shadow reply must not count twice");
    let settled = ledger.serving_reply(id, serving(200, "{}")).unwrap();
    assert_eq!(settled.shadow, ShadowReply::Timeout);
}

#[test]
fn unknown_ids_are_ignored() {
    let mut ledger: Ledger<&str> = Ledger::default();
    let id = ledger.open("op");
    let unknown = id + 1000;
    ledger.dispatched(unknown);
    assert_eq!(ledger.in_flight(), 0);
    assert!(ledger.serving_reply(unknown, ServingReply::Incomplete).is_none());
    assert!(ledger.shadow_reply(unknown, ShadowReply::Error).is_none());
    assert_eq!(ledger.withdraw(unknown), None);
    assert_eq!(ledger.abandon(unknown), None);
    assert_eq!(ledger.open_count(), 1);
}

#[test]
fn interleaved_exchanges_each_settle_exactly_once() {
    let mut ledger = Ledger::default();
    let ids: Vec<_> = (0..50u32).map(|i| ledger.open(i)).collect();
    for &id in &ids {
        ledger.dispatched(id);
    }
    assert_eq!(ledger.in_flight(), 50);
    let mut settled = Vec::new();
    // Even exchanges: serving first; odd ones: shadow first; replies of
    // different exchanges interleave.
    for (i, &id) in ids.iter().enumerate() {
        let first = if i % 2 == 0 {
            ledger.serving_reply(id, serving(200, "{}"))
        } else {
            ledger.shadow_reply(id, shadow(200, "{}"))
        };
        assert!(first.is_none());
    }
    for (i, &id) in ids.iter().enumerate().rev() {
        let second = if i % 2 == 0 {
            ledger.shadow_reply(id, shadow(200, "{}"))
        } else {
            ledger.serving_reply(id, serving(200, "{}"))
        };
        settled.push(second.expect("second side settles").tag);
        // And never again.
        assert!(ledger.shadow_reply(id, shadow(200, "{}")).is_none());
        assert!(ledger.serving_reply(id, serving(200, "{}")).is_none());
    }
    settled.sort_unstable();
    assert_eq!(settled, (0..50).collect::<Vec<_>>());
    assert_eq!(ledger.open_count(), 0);
    assert_eq!(ledger.in_flight(), 0);
}

// ------------------------------------------------------------------ in flight, withdraw, abandon

#[test]
fn in_flight_counts_dispatched_unanswered_calls_only() {
    let mut ledger = Ledger::default();
    let a = ledger.open("a");
    let b = ledger.open("b");
    assert_eq!(ledger.in_flight(), 0, "opening is not dispatching");
    ledger.dispatched(a);
    ledger.dispatched(a);
    assert_eq!(ledger.in_flight(), 1, "dispatched twice counts once");
    ledger.dispatched(b);
    assert_eq!(ledger.in_flight(), 2);
    // The serving side does not touch the callout count.
    assert!(ledger.serving_reply(a, serving(200, "{}")).is_none());
    assert_eq!(ledger.in_flight(), 2);
    assert!(ledger.shadow_reply(b, shadow(200, "{}")).is_none());
    assert_eq!(ledger.in_flight(), 1);
    assert!(ledger.shadow_reply(a, shadow(200, "{}")).is_some());
    assert_eq!(ledger.in_flight(), 0);
}

#[test]
fn a_reply_to_a_call_never_dispatched_does_not_underflow() {
    let mut ledger = Ledger::default();
    let id = ledger.open("op");
    // Dispatch refused, reported as an error without `dispatched`.
    assert!(ledger.shadow_reply(id, ShadowReply::Error).is_none());
    assert_eq!(ledger.in_flight(), 0);
    // A late `dispatched` after the answer must not count a call in flight.
    ledger.dispatched(id);
    assert_eq!(ledger.in_flight(), 0);
    let other = ledger.open("other");
    ledger.dispatched(other);
    assert_eq!(ledger.in_flight(), 1);
    assert!(ledger.serving_reply(id, serving(200, "{}")).is_some());
    assert_eq!(ledger.in_flight(), 1);
}

#[test]
fn withdraw_drops_an_exchange_without_outcome() {
    let mut ledger = Ledger::default();
    let id = ledger.open("op");
    assert!(ledger.serving_reply(id, serving(200, "{}")).is_none());
    assert_eq!(ledger.withdraw(id), Some("op"));
    assert_eq!(ledger.open_count(), 0);
    assert_eq!(ledger.in_flight(), 0);
    // Nothing settles afterwards, and withdrawing again finds nothing.
    assert!(ledger.shadow_reply(id, shadow(200, "{}")).is_none());
    assert_eq!(ledger.withdraw(id), None);
}

#[test]
fn withdrawing_a_dispatched_call_releases_its_in_flight_slot() {
    let mut ledger = Ledger::default();
    let id = ledger.open("op");
    ledger.dispatched(id);
    assert_eq!(ledger.withdraw(id), Some("op"));
    assert_eq!(ledger.in_flight(), 0);

    // Answered then withdrawn: the slot was already released, not twice.
    let keep = ledger.open("keep");
    ledger.dispatched(keep);
    let id = ledger.open("op");
    ledger.dispatched(id);
    assert!(ledger.shadow_reply(id, ShadowReply::Timeout).is_none());
    assert_eq!(ledger.withdraw(id), Some("op"));
    assert_eq!(ledger.in_flight(), 1);
}

#[test]
fn abandon_ends_the_exchange_whatever_comes_later() {
    let mut ledger = Ledger::default();
    let id = ledger.open("op");
    ledger.dispatched(id);
    assert_eq!(ledger.abandon(id), Some("op"));
    assert_eq!(ledger.in_flight(), 0);
    assert_eq!(ledger.open_count(), 0);
    assert!(ledger.serving_reply(id, serving(200, "{}")).is_none());
    assert!(ledger.shadow_reply(id, shadow(200, "{}")).is_none());
    assert_eq!(ledger.abandon(id), None);
    assert_eq!(ledger.in_flight(), 0);
}

#[test]
fn abandon_after_one_side_arrived() {
    let mut ledger = Ledger::default();
    let id = ledger.open("op");
    ledger.dispatched(id);
    assert!(ledger.serving_reply(id, serving(200, "{}")).is_none());
    assert_eq!(ledger.abandon(id), Some("op"));
    assert_eq!((ledger.open_count(), ledger.in_flight()), (0, 0));
}

// ------------------------------------------------------------------ judge

fn judged(serving: ServingReply, shadow: ShadowReply) -> Outcome {
    judge(&CompareRules::default(), &serving, &shadow)
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
    left.headers = vec![("content-type".into(), b"application/json".to_vec())];
    let mut right = ok(200, r#"{"ts":2,"a":1}"#);
    right.headers = vec![("content-type".into(), b"application/json; charset=utf-8".to_vec())];
    let outcome = judge(
        &rules,
        &ServingReply::Complete(left.clone()),
        &ShadowReply::Complete(right.clone()),
    );
    assert_eq!(outcome, Outcome::Matched);
    assert!(matches!(
        judged(ServingReply::Complete(left), ShadowReply::Complete(right)),
        Outcome::Unmatched(_)
    ));
}

#[test]
fn a_shadow_timeout_or_error_is_a_failure() {
    for serving_side in [serving(200, "{}"), serving(500, "{}"), ServingReply::TooLarge] {
        assert_eq!(
            judged(serving_side.clone(), ShadowReply::Timeout),
            Outcome::Failed(Failure::Timeout)
        );
        assert_eq!(
            judged(serving_side, ShadowReply::Error),
            Outcome::Failed(Failure::Error)
        );
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
        judged(serving(500, "{}"), ShadowReply::TooLarge),
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
fn a_body_too_large_on_either_side_is_a_failure() {
    assert_eq!(
        judged(ServingReply::TooLarge, shadow(200, "{}")),
        Outcome::Failed(Failure::BodyTooLarge)
    );
    assert_eq!(
        judged(serving(200, "{}"), ShadowReply::TooLarge),
        Outcome::Failed(Failure::BodyTooLarge)
    );
    assert_eq!(
        judged(ServingReply::TooLarge, ShadowReply::TooLarge),
        Outcome::Failed(Failure::BodyTooLarge)
    );
}

#[test]
fn an_incomplete_serving_side_is_abandoned_whatever_the_shadow_did() {
    for shadow_side in [
        shadow(200, "{}"),
        shadow(500, "{}"),
        ShadowReply::Timeout,
        ShadowReply::Error,
        ShadowReply::TooLarge,
    ] {
        assert_eq!(judged(ServingReply::Incomplete, shadow_side), Outcome::Abandoned);
    }
}

#[test]
fn a_settled_exchange_judges_like_its_parts() {
    let mut ledger = Ledger::default();
    let id = ledger.open(CompareRules::default());
    ledger.dispatched(id);
    assert!(ledger.shadow_reply(id, shadow(200, r#"{"x":[1,2]}"#)).is_none());
    let settled = ledger.serving_reply(id, serving(200, r#"{"x":[1,2]}"#)).unwrap();
    assert_eq!(judge(&settled.tag, &settled.serving, &settled.shadow), Outcome::Matched);
}

#[test]
fn a_body_decoding_beyond_the_limit_fails_as_too_large() {
    let big = vec![b'a'; 64 << 10];
    let mut bomb = ok(200, "");
    bomb.headers = vec![("content-encoding".into(), b"deflate".to_vec())];
    bomb.body = miniz_oxide::deflate::compress_to_vec_zlib(&big, 6);
    let rules = CompareRules {
        max_decoded_bytes: 4096,
        ..CompareRules::default()
    };
    let outcome = judge(
        &rules,
        &ServingReply::Complete(ok(200, "a")),
        &ShadowReply::Complete(bomb.clone()),
    );
    assert_eq!(outcome, Outcome::Failed(Failure::BodyTooLarge));
    // Within the limit it is compared (and differs).
    let outcome = judge(
        &CompareRules::default(),
        &ServingReply::Complete(ok(200, "a")),
        &ShadowReply::Complete(bomb),
    );
    assert!(matches!(outcome, Outcome::Unmatched(_)), "{outcome:?}");
}
