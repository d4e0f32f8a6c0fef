//! Counter handles, defined once per VM and name.
//!
//! Envoy allocates a new handle on every `define_metric` call, so defining
//! the counters again on each configuration push would grow the VM's
//! tables forever; the cache survives pushes (the VM does).

use std::cell::RefCell;

use hashbrown::HashMap;
use parallel_run_core::counters::{self, Counter};
use parallel_run_core::Plan;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

thread_local! {
    static DEFINED: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn counter_id(name: &str) -> Option<u32> {
    metric_id(MetricType::Counter, name)
}

fn metric_id(kind: MetricType, name: &str) -> Option<u32> {
    if let Some(id) = DEFINED.with(|defined| defined.borrow().get(name).copied()) {
        return Some(id);
    }
    match hostcalls::define_metric(kind, name) {
        Ok(id) => {
            DEFINED.with(|defined| defined.borrow_mut().insert(name.to_string(), id));
            Some(id)
        }
        Err(status) => {
            log::warn!("parallel-run: cannot define metric {name}: {status:?}");
            None
        }
    }
}

fn increment(id: Option<u32>) {
    if let Some(id) = id {
        // A failed increment loses one count; failing the request for it
        // would be worse.
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// The counters of one plan's operations.
pub struct Metrics {
    operations: Vec<[Option<u32>; Counter::ALL.len()]>,
    unknown_requests: Option<u32>,
}

impl Metrics {
    pub fn define(plan: &Plan) -> Metrics {
        let operations = plan
            .operations
            .iter()
            .map(|op| Counter::ALL.map(|counter| counter_id(&counters::operation_counter(&op.id, counter))))
            .collect();
        Metrics {
            operations,
            unknown_requests: counter_id(counters::UNKNOWN_OPERATION_REQUESTS),
        }
    }

    pub fn count(&self, operation: usize, counter: Counter) {
        increment(
            self.operations
                .get(operation)
                .and_then(|ids| ids.get(counter.index()))
                .copied()
                .flatten(),
        );
    }

    pub fn count_unknown(&self) {
        increment(self.unknown_requests);
    }
}

/// A counter known only at run time, such as one per differing path.
pub fn increment_named(name: &str) {
    increment(counter_id(name));
}

/// A gauge known only at run time. Counter and gauge names never coincide.
pub fn set_gauge(name: &str, value: u64) {
    if let Some(id) = metric_id(MetricType::Gauge, name) {
        let _ = hostcalls::record_metric(id, value);
    }
}
