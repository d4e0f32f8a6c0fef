//! The cost of one evidence record, natively and (the same source, built
//! for wasm32-wasip1) in a wasm VM: `make bench-evidence`, whose figures
//! are in bench/RESULTS.md ("Evidence").
//!
//! A record is built only for a comparison the rate limit sampled; its
//! cost is what it adds to that comparison: decoding, masking and parsing
//! both bodies again, walking them, redacting and hashing the values, and
//! the OTLP JSON. So each case times the comparison alone, then the
//! comparison and its record, and prints both and the difference.
//!
//! Output: one tab-separated line per case, `case  size  body_bytes
//! ns_compare  ns_compare_and_record  ns_per_record  record_bytes`, after a
//! header line. `--quick` shortens the runs.

use std::hint::black_box;
use std::time::Duration;

mod common;

use common::measure;
use parallel_run_core::evidence::{self, HashKey, Request};
use parallel_run_core::exchange::{CallReply, ServingReply};
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::Response;
use parallel_run_core::outcome::compare_replies;
use parallel_run_core::Plan;

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

/// One record of a typical API list response, about 230 bytes; `changed`
/// records differ in `qty`.
fn item(out: &mut String, i: usize, changed: bool) {
    let qty = i % 7 + usize::from(changed);
    out.push_str(&format!(
        r#"{{"id":"ret-{i:08}","status":"open","qty":{qty},"price":{}.{:02},"customer":{{"name":"Customer {i}","email":"c{i}@example.com","vip":false}},"tags":["returns","priority"],"updated_at":"2026-11-22T10:00:00Z"}}"#,
        i % 500,
        i % 100
    ));
}

/// A list of about `size` bytes; in the shadow, record 0 differs (`One`)
/// or every record does (`Every`).
fn document(size: usize, shadow: bool, every: bool) -> Vec<u8> {
    let mut items = String::with_capacity(size + 512);
    let mut i = 0;
    while items.len() + 64 < size {
        if i > 0 {
            items.push(',');
        }
        item(&mut items, i, shadow && (every || i == 0));
        i += 1;
    }
    format!(r#"{{"items":[{items}],"count":{i},"next":null}}"#).into_bytes()
}

fn response(body: Vec<u8>) -> Response {
    Response {
        status: 200,
        headers: HeaderMap::from_pairs([("content-type", "application/json")]),
        body,
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let run_time = Duration::from_millis(if quick { 10 } else { 100 });
    let config = br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},
        "evidence_collector":{"cluster":"otel","hash_key":"bench-secret-0123456789"},
        "operations":[{"id":"list","method":"GET","path":"/r","mode":"shadow","evidence":{"enabled":true}}]}"#;
    let plan = match Plan::parse(config) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    let Some(operation) = plan.operations.first() else {
        return;
    };
    let key = HashKey::from_secret(b"bench-secret-0123456789");
    let request = Request {
        request_id: "bench",
        path: "/r?page=1",
        time_unix_nano: 1,
    };
    println!("case\tsize\tbody_bytes\tns_compare\tns_compare_and_record\tns_per_record\trecord_bytes");
    for (case, every) in [("one_field", false), ("every_item", true)] {
        for (size_name, size) in SIZES {
            let serving = ServingReply::Complete(response(document(size, false, false)));
            let reply = CallReply::Complete(response(document(size, true, every)));
            let compare = || compare_replies(&operation.settings.compare, &serving, &reply);
            let outcome = compare();
            let Some(record) = evidence::record(operation, "", &key, &request, &serving, &reply, &outcome) else {
                eprintln!("{case} {size_name}: no record for {outcome:?}");
                std::process::exit(1);
            };
            let record_bytes = evidence::log_record(&record).len();
            let ns_compare = measure(run_time, || {
                black_box(compare());
            });
            let ns_both = measure(run_time, || {
                let outcome = compare();
                let record = evidence::record(operation, "", &key, &request, &serving, &reply, &outcome);
                black_box(record.map(|r| evidence::log_record(&r)));
            });
            let ServingReply::Complete(body) = &serving else { return };
            println!(
                "{case}\t{size_name}\t{}\t{ns_compare:.0}\t{ns_both:.0}\t{:.0}\t{record_bytes}",
                body.body.len(),
                ns_both - ns_compare
            );
        }
    }
}
