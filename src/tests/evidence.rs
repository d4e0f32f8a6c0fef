//! Evidence through the glue: records built on the root from unmatched
//! comparisons, posted to the collector on the tick, counted sent or
//! dropped; nothing at all when evidence is off.

use proxy_wasm::traits::{Context, RootContext};
use serde_json::Value;

use super::{Vmx, CONFIG};
use crate::evidence::MAX_QUEUED_RECORDS;
use crate::fake::Fake;

const KEY: &str = "glue-test-secret-0123456789";

fn config(collector_extra: &str, evidence_extra: &str) -> String {
    format!(
        r#"{{"revision":"r9","legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}},
            "evidence_collector":{{"cluster":"otel","hash_key":"{KEY}"{collector_extra}}},
            "operations":[{{"id":"getReturn","method":"GET","path":"/returns/{{id}}","mode":"shadow",
                            "evidence":{{"enabled":true{evidence_extra}}}}}]}}"#
    )
}

fn start(config: &str) -> Vmx {
    Vmx::on(Fake::new(&["legacy", "candidate", "otel"]), config)
}

/// One shadowed request whose shadow answers `shadow` against `serving`.
fn compare(proxy: &mut Vmx, path: &str, serving: &str, shadow: &str) {
    let mut stream = proxy.request("GET", path, &[("x-request-id", "req-1")], None);
    proxy.respond(&mut stream, 200, serving);
    proxy.wake();
    let token = *proxy.tokens().last().unwrap();
    proxy.reply(token, 200, shadow);
}

fn posts(proxy: &Vmx) -> Vec<crate::fake::SentCall> {
    proxy
        .fake
        .state()
        .calls
        .iter()
        .filter(|c| c.cluster == "otel")
        .cloned()
        .collect()
}

#[test]
fn evidence_off_makes_no_callout_and_defines_no_counter() {
    let mut proxy = Vmx::start(CONFIG);
    compare(
        &mut proxy,
        "/returns/1",
        r#"{"a":"ann@example.com"}"#,
        r#"{"a":"bob@example.com"}"#,
    );
    proxy.root.on_tick();
    assert_eq!(proxy.counter("getReturn", "unmatched"), 1);
    assert!(proxy.fake.state().calls.iter().all(|c| c.cluster == "candidate"));
    let names: Vec<String> = proxy.fake.state().metrics.iter().map(|m| m.1.clone()).collect();
    assert!(names.iter().all(|n| !n.contains("evidence")), "{names:?}");
    assert!(proxy.fake.state().shared.keys().all(|k| !k.contains("evidence")));
}

#[test]
fn an_unmatched_comparison_is_posted_on_the_tick_redacted_and_counted_sent() {
    let mut proxy = start(&config("", ""));
    assert_eq!(proxy.counter("getReturn", "evidence_sent"), 0);
    compare(
        &mut proxy,
        "/returns/1?email=ann%40example.com&page=2",
        r#"{"owner":"ann@example.com","n":1}"#,
        r#"{"owner":"bob@example.com","n":1}"#,
    );
    assert!(
        posts(&proxy).is_empty(),
        "never on the comparison's callback: the tick posts"
    );
    proxy.root.on_tick();
    let posted = posts(&proxy);
    assert_eq!(posted.len(), 1);
    let post = &posted[0];
    assert_eq!(post.header(":method"), Some("POST"));
    assert_eq!(post.header(":path"), Some("/v1/logs"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let text = String::from_utf8(post.body.clone()).unwrap();
    for secret in ["ann@example.com", "bob@example.com", "ann%40example.com", "owner", KEY] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let doc: Value = serde_json::from_str(&text).unwrap();
    let log = &doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(log["eventName"], "parallel_run.unmatched");
    let attribute = |key: &str| {
        log["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
            .unwrap()
    };
    assert_eq!(attribute("url.path")["stringValue"], "/returns/1");
    assert_eq!(attribute("url.query")["stringValue"], "email=&page=");
    assert_eq!(attribute("parallel_run.request_id")["stringValue"], "req-1");
    assert_eq!(attribute("parallel_run.revision")["stringValue"], "r9");
    let fields = attribute("parallel_run.fields");
    assert_eq!(fields["arrayValue"]["values"].as_array().unwrap().len(), 1);
    // The collector answers: counted sent, once.
    proxy.fake.state().call_reply = (vec![(":status".into(), b"200".to_vec())], b"{}".to_vec());
    proxy.root.on_http_call_response(post.token, 1, 2, 0);
    assert_eq!(proxy.counter("getReturn", "evidence_sent"), 1);
    assert_eq!(proxy.counter("getReturn", "evidence_dropped"), 0);
    proxy.root.on_tick();
    assert_eq!(posts(&proxy).len(), 1, "nothing left to post");
}

#[test]
fn a_collector_that_fails_or_does_not_answer_loses_the_records_counted() {
    let mut proxy = start(&config("", ""));
    for status in [b"503".to_vec(), Vec::new()] {
        compare(&mut proxy, "/returns/1", "[1]", "[2]");
        proxy.root.on_tick();
        let token = posts(&proxy).last().unwrap().token;
        if status.is_empty() {
            // A reset or a timeout: no headers at all.
            proxy.root.on_http_call_response(token, 0, 0, 0);
        } else {
            proxy.fake.state().call_reply = (vec![(":status".into(), status)], Vec::new());
            proxy.root.on_http_call_response(token, 1, 0, 0);
        }
    }
    assert_eq!(proxy.counter("getReturn", "evidence_dropped"), 2);
    assert_eq!(proxy.counter("getReturn", "evidence_sent"), 0);
    // A collector cluster Envoy does not know.
    let mut proxy = Vmx::on(Fake::new(&["legacy", "candidate"]), &config("", ""));
    compare(&mut proxy, "/returns/1", "[1]", "[2]");
    proxy.root.on_tick();
    assert_eq!(proxy.counter("getReturn", "evidence_dropped"), 1);
}

#[test]
fn posts_in_flight_and_the_queue_are_bounded_and_the_rate_limits_sample() {
    let mut proxy = start(&config(
        r#","max_inflight":1,"records_per_minute":1000"#,
        r#","records_per_minute":600"#,
    ));
    for _ in 0..3 {
        compare(&mut proxy, "/returns/1", "[1]", "[2]");
    }
    proxy.root.on_tick();
    assert_eq!(posts(&proxy).len(), 1, "one batch for the three");
    compare(&mut proxy, "/returns/1", "[1]", "[2]");
    proxy.root.on_tick();
    assert_eq!(posts(&proxy).len(), 1, "max_inflight 1: the record waits");
    // A slow collector: the queue fills and the rest is dropped, counted.
    for _ in 0..MAX_QUEUED_RECORDS + 5 {
        compare(&mut proxy, "/returns/1", "[1]", "[2]");
    }
    assert_eq!(proxy.vm.borrow().evidence.queued(), MAX_QUEUED_RECORDS);
    assert_eq!(proxy.counter("getReturn", "evidence_dropped"), 6);
    // The rate limit: records per minute, across the proxy's VMs.
    let mut limited = start(&config("", r#","records_per_minute":2"#));
    for _ in 0..5 {
        compare(&mut limited, "/returns/1", "[1]", "[2]");
    }
    assert_eq!(limited.vm.borrow().evidence.queued(), 2);
    assert_eq!(limited.counter("getReturn", "unmatched"), 5);
    limited.fake.advance(std::time::Duration::from_secs(60));
    compare(&mut limited, "/returns/1", "[1]", "[2]");
    assert_eq!(limited.vm.borrow().evidence.queued(), 3, "a new minute");
    // The global bound holds across operations and VMs.
    let mut global = start(&config(r#","records_per_minute":1"#, ""));
    compare(&mut global, "/returns/1", "[1]", "[2]");
    compare(&mut global, "/returns/1", "[1]", "[2]");
    assert_eq!(global.vm.borrow().evidence.queued(), 1);
}

#[test]
fn matched_comparisons_and_failures_unless_asked_for_have_no_record() {
    let mut proxy = start(&config("", ""));
    compare(&mut proxy, "/returns/1", "[1]", "[1]");
    let mut stream = proxy.request("GET", "/returns/2", &[], None);
    proxy.respond(&mut stream, 200, "[1]");
    proxy.wake();
    let token = *proxy.tokens().last().unwrap();
    proxy.reply(token, 503, "down");
    assert_eq!(proxy.vm.borrow().evidence.queued(), 0);
    let mut proxy = start(&config("", r#","failed":true"#));
    let mut stream = proxy.request("GET", "/returns/2", &[], None);
    proxy.respond(&mut stream, 200, "[1]");
    proxy.wake();
    let token = *proxy.tokens().last().unwrap();
    proxy.fake.state().call_reply = (
        vec![
            (":status".into(), b"503".to_vec()),
            ("x-envoy-upstream-service-time".into(), b"1".to_vec()),
        ],
        Vec::new(),
    );
    proxy.root.on_http_call_response(token, 2, 0, 0);
    assert_eq!(proxy.counter("getReturn", "failed_5xx"), 1);
    assert_eq!(proxy.vm.borrow().evidence.queued(), 1);
}

#[test]
fn a_retired_root_finishes_its_posts_and_drops_what_is_never_answered() {
    let mut proxy = start(&config("", ""));
    compare(&mut proxy, "/returns/1", "[1]", "[2]");
    proxy.root.on_tick();
    assert!(!proxy.root.on_done(), "a post in flight keeps the root");
    drop(proxy.root);
    assert_eq!(
        proxy.fake.metric("parallel_run.operation.getReturn.evidence_dropped"),
        1
    );
}
