//! Metric handles: defined once per VM and name, and the per-operation
//! counters of one configuration.
//!
//! Envoy allocates a new handle on every `define_metric` call, so defining
//! the counters again on each configuration push would grow the VM's
//! tables forever: the name → handle cache lives in the VM, which survives
//! pushes.

use hashbrown::HashMap;
use parallel_run_core::counters::{self, Counter, Gauge, Histogram};
use parallel_run_core::Plan;

use crate::host::{Host, MetricKind};

/// Every metric this VM defined, by name.
#[derive(Default)]
pub struct Metrics {
    defined: HashMap<String, u32>,
}

impl Metrics {
    fn id(&mut self, host: &impl Host, kind: MetricKind, name: &str) -> Option<u32> {
        if let Some(&id) = self.defined.get(name) {
            return Some(id);
        }
        let id = host.define_metric(kind, name)?;
        self.defined.insert(name.to_string(), id);
        Some(id)
    }

    /// A counter known only at run time, such as one per diff path.
    pub fn increment(&mut self, host: &impl Host, name: &str) {
        if let Some(id) = self.id(host, MetricKind::Counter, name) {
            host.increment_metric(id);
        }
    }

    /// A gauge; counter and gauge names never coincide.
    pub fn set_gauge(&mut self, host: &impl Host, name: &str, value: u64) {
        if let Some(id) = self.id(host, MetricKind::Gauge, name) {
            host.record_metric(id, value);
        }
    }
}

/// The counter handles of one plan's operations, by operation index.
pub struct OperationCounters {
    operations: Vec<[Option<u32>; Counter::ALL.len()]>,
    unknown_operation: Option<u32>,
}

impl OperationCounters {
    pub fn define(host: &impl Host, metrics: &mut Metrics, plan: &Plan) -> OperationCounters {
        let mut counter = |name: &str| metrics.id(host, MetricKind::Counter, name);
        let operations = plan
            .operations
            .iter()
            .map(|op| Counter::ALL.map(|c| counter(&counters::operation_counter(&op.id, c))))
            .collect();
        OperationCounters {
            operations,
            unknown_operation: counter(counters::UNKNOWN_OPERATION_REQUESTS),
        }
    }

    pub fn count(&self, host: &impl Host, operation: usize, counter: Counter) {
        let id = self
            .operations
            .get(operation)
            .and_then(|ids| ids.get(counter.index()))
            .copied()
            .flatten();
        if let Some(id) = id {
            host.increment_metric(id);
        }
    }

    /// A counter's value, summed over every VM of the proxy.
    pub fn value(&self, host: &impl Host, operation: usize, counter: Counter) -> Option<u64> {
        let id = self
            .operations
            .get(operation)?
            .get(counter.index())
            .copied()
            .flatten()?;
        host.metric_value(id)
    }

    pub fn count_unknown(&self, host: &impl Host) {
        if let Some(id) = self.unknown_operation {
            host.increment_metric(id);
        }
    }
}

/// The gauge handles of one plan's operations, by operation index.
pub struct OperationGauges {
    operations: Vec<[Option<u32>; Gauge::ALL.len()]>,
}

impl OperationGauges {
    pub fn define(host: &impl Host, metrics: &mut Metrics, plan: &Plan) -> OperationGauges {
        let operations = plan
            .operations
            .iter()
            .map(|op| Gauge::ALL.map(|g| metrics.id(host, MetricKind::Gauge, &counters::operation_gauge(&op.id, g))))
            .collect();
        OperationGauges { operations }
    }

    pub fn set(&self, host: &impl Host, operation: usize, gauge: Gauge, value: u64) {
        let id = self
            .operations
            .get(operation)
            .and_then(|ids| ids.get(gauge.index()))
            .copied()
            .flatten();
        if let Some(id) = id {
            host.record_metric(id, value);
        }
    }
}

/// The histogram handles of one plan's operations, by operation index.
pub struct OperationHistograms {
    operations: Vec<[Option<u32>; Histogram::ALL.len()]>,
}

impl OperationHistograms {
    pub fn define(host: &impl Host, metrics: &mut Metrics, plan: &Plan) -> OperationHistograms {
        let operations = plan
            .operations
            .iter()
            .map(|op| {
                Histogram::ALL
                    .map(|h| metrics.id(host, MetricKind::Histogram, &counters::operation_histogram(&op.id, h)))
            })
            .collect();
        OperationHistograms { operations }
    }

    pub fn record(&self, host: &impl Host, operation: usize, histogram: Histogram, value: u64) {
        let id = self
            .operations
            .get(operation)
            .and_then(|ids| ids.get(histogram.index()))
            .copied()
            .flatten();
        if let Some(id) = id {
            host.record_metric(id, value);
        }
    }
}
