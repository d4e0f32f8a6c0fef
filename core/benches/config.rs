//! What applying a large configuration costs one VM: parsing, validating
//! and compiling it into a [`Plan`], natively and (the same source, built
//! for wasm32-wasip1) in a wasm VM: `make bench-config`. Every worker's VM
//! does this once per push, on its own thread, so its time is how long that
//! worker's requests wait (issue 13 item 7).
//!
//! Output: one tab-separated line per case, `operations  config_bytes
//! ms_per_parse`, after a header line. `--quick` shortens the runs.
//! `--profile N` parses the 10,000-operation configuration exactly N times
//! and prints nothing, for `perf stat -e instructions` or `perf record`: on
//! a shared machine a count of instructions is steadier than a time.

use std::hint::black_box;
use std::time::Duration;

mod common;

use common::measure;
use parallel_run_core::Plan;

/// The shape bench/push.py pushes: one operation in shadow mode, then
/// `n - 1` legacy operations with a path parameter each, no request matches.
fn config(n: usize) -> Vec<u8> {
    let mut ops = String::from(r#"{"id":"getReturn","method":"GET","path":"/returns/{id}","mode":"shadow"}"#);
    for i in 1..n {
        ops.push_str(&format!(r#",{{"id":"op{i}","method":"GET","path":"/p{i}/{{id}}"}}"#));
    }
    format!(
        r#"{{"revision":"big-{n}","legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}},"defaults":{{"mode":"legacy"}},"operations":[{ops}]}}"#
    )
    .into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = args.iter().position(|a| a == "--profile").and_then(|i| args.get(i + 1)) {
        let json = config(10_000);
        for _ in 0..n.parse::<u32>().unwrap_or(1) {
            black_box(Plan::parse(black_box(&json)).ok());
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let run_time = Duration::from_millis(if quick { 200 } else { 2000 });
    println!("operations\tconfig_bytes\tms_per_parse");
    for n in [1, 100, 1000, 10_000] {
        let json = config(n);
        if let Err(err) = Plan::parse(&json) {
            eprintln!("config({n}) is refused: {err}");
            std::process::exit(1);
        }
        let ns = measure(run_time, || {
            black_box(Plan::parse(black_box(&json)).ok());
        });
        println!("{n}\t{}\t{:.3}", json.len(), ns / 1e6);
    }
}
