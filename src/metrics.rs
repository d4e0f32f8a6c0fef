//! Metric handles: defined once per VM and name, and the per-operation
//! counters, gauges and histograms of one configuration.
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

    /// A counter's handle, defined on first use.
    pub fn counter(&mut self, host: &impl Host, name: &str) -> Option<u32> {
        self.id(host, MetricKind::Counter, name)
    }

    /// A counter known only at run time, such as one per diff path.
    pub fn increment(&mut self, host: &impl Host, name: &str) {
        if let Some(id) = self.id(host, MetricKind::Counter, name) {
            host.increment_metric(id);
        }
    }

    /// Adds one to a gauge known only at run time (Envoy adds a positive
    /// offset to a gauge as to a counter).
    pub fn increment_gauge(&mut self, host: &impl Host, name: &str) {
        if let Some(id) = self.id(host, MetricKind::Gauge, name) {
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

/// One of core's lists of per-operation metrics ([`Counter`], [`Gauge`],
/// [`Histogram`]), as the host defines them.
pub trait PerOperation: Copy + 'static {
    const KIND: MetricKind;
    fn all() -> &'static [Self];
    fn index(self) -> usize;
    /// `parallel_run.operation.<id>.<name>`.
    fn stat_name(self, operation_id: &str) -> String;
}

impl PerOperation for Counter {
    const KIND: MetricKind = MetricKind::Counter;
    fn all() -> &'static [Counter] {
        &Counter::ALL
    }
    fn index(self) -> usize {
        Counter::index(self)
    }
    fn stat_name(self, operation_id: &str) -> String {
        counters::operation_counter(operation_id, self)
    }
}

impl PerOperation for Gauge {
    const KIND: MetricKind = MetricKind::Gauge;
    fn all() -> &'static [Gauge] {
        &Gauge::ALL
    }
    fn index(self) -> usize {
        Gauge::index(self)
    }
    fn stat_name(self, operation_id: &str) -> String {
        counters::operation_gauge(operation_id, self)
    }
}

impl PerOperation for Histogram {
    const KIND: MetricKind = MetricKind::Histogram;
    fn all() -> &'static [Histogram] {
        &Histogram::ALL
    }
    fn index(self) -> usize {
        Histogram::index(self)
    }
    fn stat_name(self, operation_id: &str) -> String {
        counters::operation_histogram(operation_id, self)
    }
}

/// The handles of one kind of per-operation metric for one plan, by
/// operation index, then by the metric's index in its list.
pub struct OperationMetrics<M> {
    operations: Vec<Box<[Option<u32>]>>,
    kind: std::marker::PhantomData<M>,
}

impl<M: PerOperation> OperationMetrics<M> {
    pub fn define(host: &impl Host, metrics: &mut Metrics, plan: &Plan) -> OperationMetrics<M> {
        let operations = plan
            .operations
            .iter()
            .map(|op| {
                M::all()
                    .iter()
                    .map(|m| metrics.id(host, M::KIND, &m.stat_name(&op.id)))
                    .collect()
            })
            .collect();
        OperationMetrics {
            operations,
            kind: std::marker::PhantomData,
        }
    }

    fn id(&self, operation: usize, metric: M) -> Option<u32> {
        self.operations.get(operation)?.get(metric.index()).copied().flatten()
    }
}

impl OperationMetrics<Counter> {
    pub fn count(&self, host: &impl Host, operation: usize, counter: Counter) {
        if let Some(id) = self.id(operation, counter) {
            host.increment_metric(id);
        }
    }

    /// A counter's value, summed over every VM of the proxy.
    pub fn value(&self, host: &impl Host, operation: usize, counter: Counter) -> Option<u64> {
        host.metric_value(self.id(operation, counter)?)
    }
}

impl OperationMetrics<Gauge> {
    pub fn set(&self, host: &impl Host, operation: usize, gauge: Gauge, value: u64) {
        if let Some(id) = self.id(operation, gauge) {
            host.record_metric(id, value);
        }
    }
}

impl OperationMetrics<Histogram> {
    pub fn record(&self, host: &impl Host, operation: usize, histogram: Histogram, value: u64) {
        if let Some(id) = self.id(operation, histogram) {
            host.record_metric(id, value);
        }
    }
}
