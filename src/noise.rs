//! Noise learning, the filter's side: each worker counts what differs
//! between two answers of the serving backend and between the serving
//! backend and the candidate, and once a second merges its counts into
//! shared data, where the whole proxy's totals decide what is noise
//! (`parallel_run_core::noise`).
//!
//! The fields found to be noise are logged when they change and exposed as
//! gauges `parallel_run.operation.<id>.noise_path.<field>` (1 while noise).

use std::cell::RefCell;

use hashbrown::HashMap;
use parallel_run_core::noise::NoiseBook;
use parallel_run_core::{counters, Plan};
use proxy_wasm::hostcalls;

use crate::{metrics, shared_data};

thread_local! {
    /// Per operation id: this worker's counts since the last sync.
    static PENDING: RefCell<HashMap<String, NoiseBook>> = RefCell::new(HashMap::new());
    /// Per operation id: the fields that are noise, as of the last sync.
    static NOISE: RefCell<HashMap<String, Vec<String>>> = RefCell::new(HashMap::new());
}

fn shared_key(operation_id: &str) -> String {
    format!("parallel_run.noise.{operation_id}")
}

/// Creates the shared counts of every operation that learns.
pub fn prepare(plan: &Plan) {
    for operation in plan.operations.iter().filter(|op| op.noise_per_million > 0) {
        shared_data::create(&shared_key(&operation.id), NoiseBook::default().encode().as_bytes());
    }
}

fn pending(operation_id: &str, f: impl FnOnce(&mut NoiseBook)) {
    PENDING.with(|pending| f(pending.borrow_mut().entry(operation_id.to_string()).or_default()));
}

/// Two answers of the serving backend differed in these fields (or none).
pub fn record_self(operation_id: &str, fields: &[String]) {
    pending(operation_id, |book| book.record_self(fields.iter().map(String::as_str)));
}

/// The serving backend and the candidate differed in these fields.
pub fn record_candidate(operation_id: &str, fields: &[String]) {
    pending(operation_id, |book| {
        book.record_candidate(fields.iter().map(String::as_str))
    });
}

/// Runs `f` on the operation's current noise fields.
pub fn with_noise<R>(operation_id: &str, f: impl FnOnce(&[String]) -> R) -> R {
    NOISE.with(|noise| f(noise.borrow().get(operation_id).map(Vec::as_slice).unwrap_or_default()))
}

/// Merges this worker's counts into the shared totals and reads back what
/// is noise now, for every operation that learns.
pub fn sync(plan: &Plan) {
    let mut pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
    for operation in plan.operations.iter().filter(|op| op.noise_per_million > 0) {
        let delta = pending.remove(&operation.id).unwrap_or_default();
        if let Some(noise) = merge(&operation.id, &delta) {
            NOISE.with(|n| n.borrow_mut().insert(operation.id.clone(), noise));
        }
    }
}

fn merge(operation_id: &str, delta: &NoiseBook) -> Option<Vec<String>> {
    let key = shared_key(operation_id);
    for _ in 0..8 {
        let (value, cas) = hostcalls::get_shared_data(&key).ok()?;
        let mut book = value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|text| NoiseBook::decode(&text))
            .unwrap_or_default();
        if delta.is_empty() {
            return Some(book.noise());
        }
        let before = book.noise();
        book.merge(delta);
        if hostcalls::set_shared_data(&key, Some(book.encode().as_bytes()), cas).is_ok() {
            let after = book.noise();
            if after != before {
                announce(operation_id, &before, &after, book.self_samples());
            }
            return Some(after);
        }
    }
    None
}

/// The worker whose counts changed the verdict tells the operator.
fn announce(operation_id: &str, before: &[String], after: &[String], samples: u64) {
    log::info!(
        "parallel-run: noise operation={operation_id} fields=[{}] (learned from {samples} repeated requests)",
        after.join(",")
    );
    for field in before.iter().filter(|f| !after.contains(f)) {
        metrics::set_gauge(&counters::noise_path_gauge(operation_id, field), 0);
    }
    for field in after {
        metrics::set_gauge(&counters::noise_path_gauge(operation_id, field), 1);
    }
}
