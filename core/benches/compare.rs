//! The comparator's cost per body size and case, natively and (the same
//! source, built for wasm32-wasip1) in a wasm VM: `make bench-compare`, which
//! writes bench/COMPARE.md.
//!
//! No benchmark framework, so that it builds for wasm32-wasip1 as it is: a
//! timing loop around `compare`, iterations calibrated to at least
//! `RUN_TIME` per run, the median of `RUNS` runs.
//!
//! Output: one tab-separated line per case, `case  size  body_bytes
//! ns_per_compare`, after a header line. `--quick` shortens the runs.

use std::hint::black_box;
use std::time::Duration;

mod common;

use common::measure;
use parallel_run_core::compare::{compare, CompareRules};
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::Response;

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// Byte-identical bodies: must not be parsed at all.
    Equal,
    /// The same records, every object's keys in reverse order: parsed and
    /// walked, and equal.
    Reordered,
    /// One value differs in every record: parsed, walked, a bounded report.
    Different,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Equal => "equal",
            Case::Reordered => "reordered",
            Case::Different => "different",
        }
    }
}

/// One record of a typical API list response, about 230 bytes.
fn record(out: &mut String, i: usize, reversed: bool, qty_offset: usize) {
    let fields = [
        format!(r#""id":"ret-{i:08}""#),
        format!(r#""status":"{}""#, if i.is_multiple_of(3) { "open" } else { "closed" }),
        format!(r#""qty":{}"#, i % 7 + qty_offset),
        format!(r#""price":{}.{:02}"#, i % 500, i % 100),
        format!(
            r#""customer":{{"name":"Customer {i}","email":"c{i}@example.com","vip":{}}}"#,
            i.is_multiple_of(11)
        ),
        r#""tags":["returns","priority"]"#.to_string(),
        r#""updated_at":"2026-11-22T10:00:00Z""#.to_string(),
    ];
    out.push('{');
    let ordered: Vec<&String> = if reversed {
        fields.iter().rev().collect()
    } else {
        fields.iter().collect()
    };
    out.push_str(&ordered.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(","));
    out.push('}');
}

/// A list response of about `size` bytes.
fn document(size: usize, reversed: bool, qty_offset: usize) -> Vec<u8> {
    let mut items = String::with_capacity(size + 512);
    let mut i = 0;
    // Leaves room for the envelope, so that the whole is close to `size`.
    while items.len() + 64 < size {
        if i > 0 {
            items.push(',');
        }
        record(&mut items, i, reversed, qty_offset);
        i += 1;
    }
    let body = if reversed {
        format!(r#"{{"next":null,"count":{i},"items":[{items}]}}"#)
    } else {
        format!(r#"{{"items":[{items}],"count":{i},"next":null}}"#)
    };
    body.into_bytes()
}

fn response(body: Vec<u8>) -> Response {
    Response {
        status: 200,
        headers: HeaderMap::from_pairs([
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("date", "Mon, 23 Nov 2026 10:00:00 GMT"),
        ]),
        body,
    }
}

fn pair(case: Case, size: usize) -> (Response, Response) {
    let serving = document(size, false, 0);
    let shadow = match case {
        Case::Equal => serving.clone(),
        Case::Reordered => document(size, true, 0),
        Case::Different => document(size, false, 1),
    };
    (response(serving), response(shadow))
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let run_time = Duration::from_millis(if quick { 10 } else { 100 });
    let rules = CompareRules::default();
    println!("case\tsize\tbody_bytes\tns_per_compare");
    for case in [Case::Equal, Case::Reordered, Case::Different] {
        for (size_name, size) in SIZES {
            let (serving, shadow) = pair(case, size);
            // The case is what it claims to be.
            let diff = compare(&rules, &serving, &shadow);
            let expect_match = case != Case::Different;
            if diff.is_match() != expect_match || (case == Case::Equal) != (serving.body == shadow.body) {
                eprintln!("{} {size_name}: unexpected {diff:?}", case.name());
                std::process::exit(1);
            }
            let ns = measure(run_time, || {
                black_box(compare(black_box(&rules), black_box(&serving), black_box(&shadow)));
            });
            println!("{}\t{size_name}\t{}\t{ns:.0}", case.name(), serving.body.len());
        }
    }
}
