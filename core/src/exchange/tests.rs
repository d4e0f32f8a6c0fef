#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::rc::Rc;

use super::*;
use crate::header_map::HeaderMap;

fn call(cluster: &str) -> CallSpec {
    CallSpec {
        cluster: cluster.into(),
        headers: vec![(":path".into(), "/r/1".into())],
        timeout_ms: 1000,
    }
}

fn outgoing(repeat: bool) -> Outgoing {
    Outgoing {
        shadow: call("candidate"),
        repeat: repeat.then(|| call("legacy")),
        body: Vec::new(),
    }
}

fn response(status: u16) -> Response {
    Response {
        status,
        headers: HeaderMap::default(),
        body: Vec::new(),
    }
}

fn complete(status: u16, body: &str) -> CallReply {
    CallReply::Complete(Response {
        body: body.as_bytes().to_vec(),
        ..response(status)
    })
}

/// Opens an exchange and walks its request to "sent".
fn sent<O: Clone>(book: &mut Exchanges<O>, operation: O, repeat: bool) -> ExchangeId {
    let id = book.open(operation, "rid".into(), 16, outgoing(repeat));
    assert!(book.request_complete(id));
    assert!(book.take_outgoing(id).is_some());
    id
}

fn serve<O: Clone>(book: &mut Exchanges<O>, id: ExchangeId, body: &str) -> Vec<Settled<O>> {
    book.serving_headers(id, response(200));
    book.copy_serving_body(id, body.len(), || Some(body.as_bytes().to_vec()));
    book.serving_done(id)
}

/// The one call that settled.
fn one<O>(mut settled: Vec<Settled<O>>) -> Settled<O> {
    assert_eq!(settled.len(), 1, "exactly one call settles");
    settled.remove(0)
}

fn served(status: u16, body: &str) -> Rc<ServingReply> {
    Rc::new(ServingReply::Complete(Response {
        body: body.as_bytes().to_vec(),
        ..response(status)
    }))
}

// ------------------------------------------------------------------ the request copy

#[test]
fn the_request_copy_fills_as_it_streams_and_goes_out_once() {
    let mut book = Exchanges::default();
    let id = book.open("op", "rid".into(), 16, outgoing(false));
    assert_eq!(book.take_outgoing(id), None, "not complete yet");
    assert!(book.copy_request_body(id, 6, || Some(b"hello ".to_vec())).is_ok());
    assert!(book.copy_request_body(id, 5, || Some(b"world".to_vec())).is_ok());
    assert!(book.request_complete(id));
    assert!(!book.request_complete(id), "queued once");
    let outgoing = book.take_outgoing(id).unwrap();
    assert_eq!(outgoing.body, b"hello world");
    assert_eq!(&*outgoing.shadow.cluster, "candidate");
    assert_eq!(book.take_outgoing(id), None, "taken once");
    assert!(!book.request_complete(id), "a sent request is not queued again");
    assert_eq!(book.open_count(), 1, "open until settled");
}

#[test]
fn a_request_body_past_the_limit_withdraws_the_exchange_for_a_skip() {
    let mut book = Exchanges::default();
    let id = book.open("op", "rid".into(), 16, outgoing(true));
    assert!(
        book.copy_request_body(id, 16, || Some(vec![b'x'; 16])).is_ok(),
        "the limit itself fits"
    );
    let past = book.copy_request_body(id, 1, || panic!("a chunk past the limit is not read"));
    assert_eq!(past, Err((BodyTooLarge, "op")));
    assert_eq!(book.open_count(), 0);
    // Nothing about it can happen afterwards.
    assert!(!book.request_complete(id));
    assert!(book.stream_ended(id).is_empty());
    assert!(book.reply(id, Leg::Shadow, complete(200, "")).is_empty());
}

#[test]
fn an_unreadable_body_withdraws_only_while_copying() {
    let mut book = Exchanges::default();
    let id = book.open("op", "rid".into(), 16, outgoing(false));
    assert_eq!(book.copy_request_body(id, 3, || None), Err((BodyTooLarge, "op")));
    let id = sent(&mut book, "sent", false);
    assert!(
        book.copy_request_body(id, 3, || None).is_ok(),
        "already sent: it must get an outcome"
    );
    assert_eq!(book.open_count(), 1);
}

#[test]
fn a_client_that_leaves_before_its_request_is_complete_is_never_shadowed() {
    let mut book = Exchanges::default();
    let id = book.open("op", "rid".into(), 16, outgoing(false));
    assert!(book.stream_ended(id).is_empty());
    assert_eq!(book.open_count(), 0);
    assert_eq!(book.take_outgoing(id), None);
}

// ------------------------------------------------------------------ settling

#[test]
fn serving_first_settles_once_when_the_shadow_arrives() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, "op", false);
    assert!(serve(&mut book, id, "{}").is_empty());
    let settled = one(book.reply(id, Leg::Shadow, complete(200, "{}")));
    assert_eq!(settled.operation, "op");
    assert_eq!(settled.request_id, "rid");
    assert_eq!(settled.leg, Leg::Shadow);
    assert_eq!(settled.serving, served(200, "{}"));
    assert_eq!(settled.reply, complete(200, "{}"));
    assert_eq!(book.open_count(), 0);
    // Late duplicates find nothing to settle.
    assert!(book.reply(id, Leg::Shadow, CallReply::Timeout).is_empty());
    assert!(book.stream_ended(id).is_empty());
}

#[test]
fn shadow_first_settles_when_the_serving_side_arrives() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, 7u32, false);
    assert!(book.reply(id, Leg::Shadow, complete(200, "[1]")).is_empty());
    let settled = one(serve(&mut book, id, "[2]"));
    assert_eq!(settled.operation, 7);
    assert_eq!(settled.reply, complete(200, "[1]"));
    assert!(
        serve(&mut book, id, "[2]").is_empty(),
        "the serving side completes once"
    );
}

#[test]
fn the_first_reply_of_a_call_is_the_one_kept() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, (), false);
    assert!(book.reply(id, Leg::Shadow, CallReply::Timeout).is_empty());
    assert!(book.reply(id, Leg::Shadow, complete(200, "late")).is_empty());
    assert_eq!(one(serve(&mut book, id, "{}")).reply, CallReply::Timeout);
}

#[test]
fn each_call_settles_on_its_own_so_a_slow_repeat_never_holds_back_the_shadow() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, "op", true);
    assert!(serve(&mut book, id, "{}").is_empty());
    let shadow = one(book.reply(id, Leg::Shadow, complete(200, "s")));
    assert_eq!((shadow.leg, shadow.reply), (Leg::Shadow, complete(200, "s")));
    assert_eq!(book.open_count(), 1, "open until the repeat settles");
    let repeat = one(book.reply(id, Leg::Repeat, complete(200, "r")));
    assert_eq!((repeat.leg, repeat.reply), (Leg::Repeat, complete(200, "r")));
    assert!(
        Rc::ptr_eq(&shadow.serving, &repeat.serving),
        "one copy of the serving response"
    );
    assert_eq!(book.open_count(), 0);

    // Both calls in before the serving side: both settle with it.
    let id = sent(&mut book, "op", true);
    assert!(book.reply(id, Leg::Repeat, complete(200, "r")).is_empty());
    assert!(book.reply(id, Leg::Shadow, complete(200, "s")).is_empty());
    let both = serve(&mut book, id, "{}");
    assert_eq!(
        both.iter().map(|s| s.leg).collect::<Vec<_>>(),
        [Leg::Shadow, Leg::Repeat]
    );
    assert_eq!(book.open_count(), 0);

    // A repeat reply to an exchange without a repeat changes nothing.
    let id = sent(&mut book, "op", false);
    assert!(book.reply(id, Leg::Repeat, complete(200, "r")).is_empty());
    assert!(serve(&mut book, id, "{}").is_empty());
    assert_eq!(one(book.reply(id, Leg::Shadow, complete(200, "s"))).leg, Leg::Shadow);
}

#[test]
fn a_serving_body_past_the_limit_is_too_large_and_stops_copying() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, "op", false);
    book.serving_headers(id, response(200));
    book.copy_serving_body(id, 17, || panic!("a chunk past the limit is not read"));
    book.copy_serving_body(id, 4, || panic!("nothing is read after the copy was dropped"));
    assert!(book.serving_done(id).is_empty());
    let settled = one(book.reply(id, Leg::Shadow, complete(200, "")));
    assert_eq!(*settled.serving, ServingReply::TooLarge);
    // An unreadable chunk drops the copy the same way.
    let id = sent(&mut book, "op", false);
    book.serving_headers(id, response(200));
    book.copy_serving_body(id, 4, || None);
    assert!(book.serving_done(id).is_empty());
    let settled = one(book.reply(id, Leg::Shadow, complete(200, "")));
    assert_eq!(*settled.serving, ServingReply::TooLarge);
}

#[test]
fn a_stream_that_ends_before_its_response_did_is_incomplete() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, "op", false);
    book.serving_headers(id, response(200));
    assert!(book.stream_ended(id).is_empty(), "the shadow is still out");
    let settled = one(book.reply(id, Leg::Shadow, complete(200, "")));
    assert_eq!(*settled.serving, ServingReply::Incomplete);
    // After a complete response, the end of the stream changes nothing.
    let id = sent(&mut book, "op", false);
    assert!(serve(&mut book, id, "{}").is_empty());
    assert!(book.stream_ended(id).is_empty());
    let settled = one(book.reply(id, Leg::Shadow, complete(200, "")));
    assert!(matches!(*settled.serving, ServingReply::Complete(_)));
}

#[test]
fn a_cancelled_exchange_settles_at_once_whatever_comes_later() {
    let mut book = Exchanges::default();
    let id = sent(&mut book, "op", true);
    assert!(book.reply(id, Leg::Shadow, complete(200, "s")).is_empty());
    let settled = book.cancel(id);
    let parts: Vec<_> = settled.iter().map(|s| (s.leg, s.reply.clone())).collect();
    assert_eq!(
        parts,
        [(Leg::Shadow, complete(200, "s")), (Leg::Repeat, CallReply::Cancelled)],
        "a reply already in is kept"
    );
    assert!(settled.iter().all(|s| *s.serving == ServingReply::Incomplete));
    assert_eq!(book.open_count(), 0);
    assert!(serve(&mut book, id, "{}").is_empty());
    assert!(book.reply(id, Leg::Repeat, complete(200, "")).is_empty());
    assert!(book.cancel(id).is_empty());
}

#[test]
fn unknown_ids_are_ignored() {
    let mut book: Exchanges<&str> = Exchanges::default();
    let id = book.open("op", "rid".into(), 16, outgoing(false));
    let unknown = id + 1000;
    assert!(book.copy_request_body(unknown, 1, || Some(b"x".to_vec())).is_ok());
    assert!(!book.request_complete(unknown));
    assert_eq!(book.take_outgoing(unknown), None);
    book.serving_headers(unknown, response(200));
    book.copy_serving_body(unknown, 1, || Some(b"x".to_vec()));
    assert!(book.serving_done(unknown).is_empty());
    assert!(book.stream_ended(unknown).is_empty());
    assert!(book.reply(unknown, Leg::Shadow, CallReply::Error).is_empty());
    assert!(book.cancel(unknown).is_empty());
    assert_eq!(book.operation(unknown), None);
    assert_eq!(book.open_count(), 1);
}

#[test]
fn interleaved_exchanges_each_settle_every_call_exactly_once() {
    let mut book = Exchanges::default();
    let ids: Vec<_> = (0..50u32).map(|i| sent(&mut book, i, i % 3 == 0)).collect();
    let mut settled = Vec::new();
    // Even exchanges: serving first; odd ones: the calls first.
    for (i, &id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            settled.extend(serve(&mut book, id, "{}"));
        } else {
            settled.extend(book.reply(id, Leg::Repeat, complete(200, "{}")));
            settled.extend(book.reply(id, Leg::Shadow, complete(200, "{}")));
        }
    }
    assert!(settled.is_empty());
    for (i, &id) in ids.iter().enumerate().rev() {
        if i % 2 == 0 {
            settled.extend(book.reply(id, Leg::Repeat, complete(200, "{}")));
            settled.extend(book.reply(id, Leg::Shadow, complete(200, "{}")));
        } else {
            settled.extend(serve(&mut book, id, "{}"));
        }
        assert!(book.reply(id, Leg::Shadow, complete(200, "{}")).is_empty());
        assert!(book.stream_ended(id).is_empty());
    }
    let mut shadows: Vec<_> = settled
        .iter()
        .filter(|s| s.leg == Leg::Shadow)
        .map(|s| s.operation)
        .collect();
    shadows.sort_unstable();
    assert_eq!(shadows, (0..50).collect::<Vec<_>>());
    let repeats: Vec<_> = settled
        .iter()
        .filter(|s| s.leg == Leg::Repeat)
        .map(|s| s.operation)
        .collect();
    assert_eq!(repeats.len(), (0..50).filter(|i| i % 3 == 0).count());
    assert_eq!(book.open_count(), 0);
}
