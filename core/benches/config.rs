//! What applying a large configuration costs one VM: parsing, validating
//! and compiling it into a [`Plan`], natively and (the same source, built
//! for wasm32-wasip1) in a wasm VM: `make bench-config`. Every worker's VM
//! does this once per push, on its own thread, so its time is how long that
//! worker's requests wait (issue 13 item 7).
//!
//! Output: one tab-separated line per case, `operations  config_bytes
//! ms_per_parse  ms_to_start  plan_bytes  peak_bytes`, after a header line;
//! `ms_to_start` is what [`parallel_run_core::config::compiler`] takes, the
//! reading a VM does before its first slice of operations; `plan_bytes`
//! is the heap the finished [`Plan`] holds (counted by this binary's
//! allocator), what every VM keeps for as long as the configuration
//! serves; `peak_bytes` the most the parse held at once, what a VM's
//! linear memory grows to (it never shrinks). `--quick` shortens the runs.
//! `--profile N` parses the 10,000-operation configuration exactly N times
//! and prints nothing, for `perf stat -e instructions` or `perf record`: on
//! a shared machine a count of instructions is steadier than a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

mod common;

use common::measure;
use parallel_run_core::Plan;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(by: isize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes a parsed plan of `json` holds, and the most the parse
/// held at once (a wasm VM's linear memory never shrinks: the peak stays).
fn plan_bytes(json: &[u8]) -> (isize, isize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let plan = Plan::parse(json);
    let held = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    drop(black_box(plan));
    (held, peak)
}

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
    println!("operations\tconfig_bytes\tms_per_parse\tms_to_start\tplan_bytes\tpeak_bytes");
    for n in [1, 100, 1000, 10_000] {
        let json = config(n);
        if let Err(err) = Plan::parse(&json) {
            eprintln!("config({n}) is refused: {err}");
            std::process::exit(1);
        }
        let ns = measure(run_time, || {
            black_box(Plan::parse(black_box(&json)).ok());
        });
        let start_ns = measure(run_time, || {
            black_box(parallel_run_core::config::compiler(black_box(&json)).ok());
        });
        let (held, peak) = plan_bytes(&json);
        println!(
            "{n}\t{}\t{:.3}\t{:.3}\t{held}\t{peak}",
            json.len(),
            ns / 1e6,
            start_ns / 1e6
        );
    }
}
