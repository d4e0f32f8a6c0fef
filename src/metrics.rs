//! Metric handles: defined once per VM and name, and the per-operation
//! counters, gauges and histograms of one configuration, defined lazily.
//!
//! Envoy allocates a new handle on every `define_metric` call, so defining
//! the counters again on each configuration push would grow the VM's
//! tables forever: the handle caches live in the VM, which survives
//! pushes. Names known only at run time (a diff path's counter, the
//! global counters) are cached by name; the per-operation lists of core
//! ([`Counter`], [`Gauge`], [`Histogram`]) by operation id, one array of
//! handles per operation and kind, so that a stat's name is built only
//! when it is defined and not kept after. The readiness leader defines the
//! mode of every operation and 12 more stats of each one that shadows: with
//! the bench's 2,001 operations (1,000 shadowing, 14,003 stats) its linear
//! memory was 3,140 KiB with the names cached and is 2,504 KiB with
//! handles by operation id (`python -m bench.vm_memory`, two rounds, the
//! same to the KiB; bench/RESULTS.md, session 21).
//!
//! Per-operation metrics are defined on first use, not when a
//! configuration is applied: an operation that never sees traffic costs
//! no stats. Measured with 2,001 operations (bench/OPTIMISATIONS.md,
//! PROFILE): defining all of them in every VM cost 23.9 MiB of proxy
//! memory, about 11 KiB per operation, for stats that mostly stayed 0.
//! An operation's counters are defined together, at its first count, so
//! that its series appear in Prometheus together (the shipped rules treat
//! an operation without series as one with no traffic); gauges and
//! histograms one by one, when first set. The outcome counters of an
//! operation whose mode shadows are defined up front by the readiness
//! leader ([`OUTCOMES`], readiness.rs): Prometheus' `increase()` misses what
//! a series counted before its first scrape, so the comparisons the shipped
//! rules and alerts judge must exist at 0 before the first one.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use hashbrown::HashMap;
use parallel_run_core::counters::{self, Counter, Gauge, Histogram};
use parallel_run_core::Plan;

use crate::host::{Host, MetricKind};

/// Every metric this VM defined. Cheap to clone: the clones share the
/// tables, so that a configuration's lazily defined metrics land in the
/// VM's cache without borrowing the VM (a stream counts while the root
/// may hold it).
#[derive(Default, Clone)]
pub struct Metrics {
    /// Metrics named at run time, by name.
    defined: Rc<RefCell<HashMap<String, u32>>>,
    /// The per-operation lists' handles, by operation id.
    operations: Rc<RefCell<HashMap<Box<str>, Rc<Handles>>>>,
}

impl Metrics {
    fn id(&self, host: &impl Host, kind: MetricKind, name: &str) -> Option<u32> {
        if let Some(id) = self.existing(name) {
            return Some(id);
        }
        // No borrow is held across the hostcall.
        let id = host.define_metric(kind, name)?;
        self.defined.borrow_mut().insert(name.to_string(), id);
        Some(id)
    }

    /// The handle of a metric this VM already defined, without defining it.
    pub fn existing(&self, name: &str) -> Option<u32> {
        self.defined.borrow().get(name).copied()
    }

    /// A counter's handle, defined on first use.
    pub fn counter(&self, host: &impl Host, name: &str) -> Option<u32> {
        self.id(host, MetricKind::Counter, name)
    }

    /// A counter known only at run time, such as one per diff path.
    pub fn increment(&self, host: &impl Host, name: &str) {
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
    pub fn set_gauge(&self, host: &impl Host, name: &str, value: u64) {
        if let Some(id) = self.id(host, MetricKind::Gauge, name) {
            host.record_metric(id, value);
        }
    }

    /// A metric of core's per-operation lists named by its operation id,
    /// for a caller without the plan's [`OperationMetrics`] (the diff
    /// paths' overflow gauge): the same cache, so that no stat is defined
    /// twice. Whether this call defined it, and its handle.
    pub fn of_operation<M: PerOperation>(&self, host: &impl Host, operation_id: &str, metric: M) -> Defined {
        let handles = self.operation(operation_id);
        match handles.slots::<M>().get(metric.index()) {
            Some(slot) => handle(host, operation_id, slot, metric),
            None => Defined { id: None, now: false },
        }
    }

    /// The handles of operation `id` in this VM, under every configuration
    /// that has it.
    fn operation(&self, id: &str) -> Rc<Handles> {
        if let Some(handles) = self.operations.borrow().get(id) {
            return Rc::clone(handles);
        }
        let handles = Rc::new(Handles::default());
        self.operations.borrow_mut().insert(Box::from(id), Rc::clone(&handles));
        handles
    }
}

/// A slot not defined yet.
const UNDEFINED: u32 = u32::MAX;
/// A slot whose definition the host refused: not asked again (every
/// refusal is a warning in Envoy's log).
const REFUSED: u32 = u32::MAX - 1;

/// One kind of an operation's metrics, by the metric's index in its list;
/// allocated at the first use of that kind.
type Slots = OnceCell<Box<[Cell<u32>]>>;

/// One operation's handles in one VM.
#[derive(Default)]
pub struct Handles {
    counters: Slots,
    gauges: Slots,
    histograms: Slots,
}

impl Handles {
    /// The slots of kind `M`, allocated at its first use.
    fn slots<M: PerOperation>(&self) -> &[Cell<u32>] {
        M::slots(self).get_or_init(|| M::all().iter().map(|_| Cell::new(UNDEFINED)).collect())
    }
}

/// A metric looked up by [`Metrics::of_operation`].
pub struct Defined {
    /// Its handle; `None` when the host refused it.
    pub id: Option<u32>,
    /// This lookup defined it.
    pub now: bool,
}

/// The handle in `slot`, defined now if it was not.
fn handle<M: PerOperation>(host: &impl Host, operation_id: &str, slot: &Cell<u32>, metric: M) -> Defined {
    match slot.get() {
        UNDEFINED => Defined {
            id: define(host, operation_id, slot, metric),
            now: true,
        },
        REFUSED => Defined { id: None, now: false },
        id => Defined {
            id: Some(id),
            now: false,
        },
    }
}

/// Defines the metric of an undefined slot. The name is built for the
/// hostcall and dropped: the slot is the cache.
fn define<M: PerOperation>(host: &impl Host, operation_id: &str, slot: &Cell<u32>, metric: M) -> Option<u32> {
    let defined = host.define_metric(M::KIND, &metric.stat_name(operation_id));
    slot.set(defined.unwrap_or(REFUSED));
    defined
}

/// One of core's lists of per-operation metrics ([`Counter`], [`Gauge`],
/// [`Histogram`]), as the host defines them.
pub trait PerOperation: Copy + 'static {
    const KIND: MetricKind;
    fn all() -> &'static [Self];
    fn index(self) -> usize;
    /// `parallel_run.operation.<id>.<name>`.
    fn stat_name(self, operation_id: &str) -> String;
    /// This kind's slots among an operation's handles.
    fn slots(handles: &Handles) -> &Slots;
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
    fn slots(handles: &Handles) -> &Slots {
        &handles.counters
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
    fn slots(handles: &Handles) -> &Slots {
        &handles.gauges
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
    fn slots(handles: &Handles) -> &Slots {
        &handles.histograms
    }
}

/// The counters the shipped Prometheus rules and alerts judge an operation
/// that shadows by (prometheus/rules.yml, alerts.yml), defined before its
/// first comparison. Not all 23: with 1,000 operations in shadow mode the
/// rest cost about 4 MiB for series that stay 0 until traffic comes.
pub const OUTCOMES: [Counter; 6] = [
    Counter::Shadowed,
    Counter::Matched,
    Counter::Unmatched,
    Counter::Failed,
    Counter::Abandoned,
    Counter::RoutingMismatch,
];

/// New stat definitions one tick may make. Envoy runs every new stat name
/// through the stats tag extractors' regular expressions: measured on the
/// busy 2-core machine (bench.ab --operations 2000, 2026-12-02), a leader
/// that defined the gauges and counters of 2,001 operations in one tick
/// (about 25,000 definitions) held its worker for about a second (p99
/// 585 ms in that run), some 40 µs per definition. 500 per tick holds it
/// for about 20 ms there; a large configuration's stats then appear over
/// a few seconds to minutes (2,001 operations in the benchmark: 36 ticks).
/// Issue 13 asks for no client request held 50 ms by a push, and one tick
/// of the leader is one stall of its worker: timed in Envoy with 10,000
/// operations (a push of 9,999 new ones, bench/push.py's configuration,
/// 2026-12-02, host.now() around the calls), a leader's tick that made 500
/// definitions took 9.6 ms at best and 20–150 ms while other builds ran
/// on the 2 cores (about 19 µs each at best). 200 per tick is about 4 ms
/// there at best (8–25 ms measured with 200 at load 4.5 on the 2 cores);
/// 10,000 new operations then take 50 ticks in legacy (a mode gauge
/// each), 600 in shadow (6 gauges and 6 outcome counters each).
pub const DEFINES_PER_TICK: usize = 200;

/// What is left of a tick's [`DEFINES_PER_TICK`].
pub struct Budget(usize);

/// The budget is spent: go on at the next tick.
#[derive(Debug)]
pub struct Spent;

impl Budget {
    pub fn per_tick() -> Budget {
        Budget(DEFINES_PER_TICK)
    }

    fn take(&mut self) -> Result<(), Spent> {
        self.0 = self.0.checked_sub(1).ok_or(Spent)?;
        Ok(())
    }
}

/// The handles of one kind of per-operation metric for one plan, by
/// operation index. They are the VM's: a push that keeps an operation
/// keeps its handles, and a stat is defined once per VM whatever the
/// configurations that count it.
pub struct OperationMetrics<M> {
    metrics: Metrics,
    /// The operations' ids, by index, for the stat names.
    ids: Rc<[Box<str>]>,
    /// Each operation's handles in this VM, looked up at its first use.
    operations: Box<[OnceCell<Rc<Handles>>]>,
    kind: std::marker::PhantomData<M>,
}

/// The operation ids of a plan, shared by its three kinds of metrics.
pub fn operation_ids(plan: &Plan) -> Rc<[Box<str>]> {
    plan.operations.iter().map(|op| Box::from(op.id.as_str())).collect()
}

impl<M: PerOperation> OperationMetrics<M> {
    /// Handles for `ids`, none looked up yet.
    pub fn new(metrics: &Metrics, ids: &Rc<[Box<str>]>) -> OperationMetrics<M> {
        OperationMetrics {
            metrics: metrics.clone(),
            ids: Rc::clone(ids),
            operations: ids.iter().map(|_| OnceCell::new()).collect(),
            kind: std::marker::PhantomData,
        }
    }

    fn slots(&self, operation: usize) -> Option<&[Cell<u32>]> {
        let cell = self.operations.get(operation)?;
        if cell.get().is_none() {
            let id = self.ids.get(operation)?;
            let _ = cell.set(self.metrics.operation(id));
        }
        Some(cell.get()?.slots::<M>())
    }

    fn slot(&self, operation: usize, metric: M) -> Option<&Cell<u32>> {
        self.slots(operation)?.get(metric.index())
    }

    fn define(&self, host: &impl Host, operation: usize, slot: &Cell<u32>, metric: M) -> Option<u32> {
        define(host, self.ids.get(operation)?, slot, metric)
    }

    /// The handle within `budget`: a stat this VM defined already (under
    /// any configuration) costs nothing, a new definition one from the
    /// budget. `Err` when none is left; `Ok(None)` when the host refused it.
    fn id_within(
        &self,
        host: &impl Host,
        operation: usize,
        metric: M,
        budget: &mut Budget,
    ) -> Result<Option<u32>, Spent> {
        let Some(slot) = self.slot(operation, metric) else {
            return Ok(None);
        };
        match slot.get() {
            REFUSED => Ok(None),
            UNDEFINED => {
                budget.take()?;
                Ok(self.define(host, operation, slot, metric))
            }
            id => Ok(Some(id)),
        }
    }

    /// The handle, defined now if it was not.
    fn id(&self, host: &impl Host, operation: usize, metric: M) -> Option<u32> {
        let slot = self.slot(operation, metric)?;
        handle(host, self.ids.get(operation)?, slot, metric).id
    }
}

impl OperationMetrics<Counter> {
    /// Counts one, defining the operation's counters together on its first
    /// count in this VM.
    pub fn count(&self, host: &impl Host, operation: usize, counter: Counter) {
        let Some(slot) = self.slot(operation, counter) else {
            return;
        };
        if slot.get() == UNDEFINED {
            self.define_all(host, operation);
        }
        let id = slot.get();
        if id != REFUSED && id != UNDEFINED {
            host.increment_metric(id);
        }
    }

    /// Defines every counter of an operation this VM has not defined yet.
    fn define_all(&self, host: &impl Host, operation: usize) {
        let Some(slots) = self.slots(operation) else { return };
        for (&counter, slot) in Counter::ALL.iter().zip(slots) {
            if slot.get() == UNDEFINED {
                self.define(host, operation, slot, counter);
            }
        }
    }

    /// Defines `counters` of an operation within `budget`.
    pub fn define_within(
        &self,
        host: &impl Host,
        operation: usize,
        counters: &[Counter],
        budget: &mut Budget,
    ) -> Result<(), Spent> {
        for &counter in counters {
            self.id_within(host, operation, counter, budget)?;
        }
        Ok(())
    }

    /// A counter's value, summed over every VM; defined within `budget`.
    pub fn value_within(
        &self,
        host: &impl Host,
        operation: usize,
        counter: Counter,
        budget: &mut Budget,
    ) -> Result<Option<u64>, Spent> {
        Ok(self
            .id_within(host, operation, counter, budget)?
            .and_then(|id| host.metric_value(id)))
    }
}

impl OperationMetrics<Gauge> {
    /// Sets a gauge, defined within `budget`.
    pub fn set_within(
        &self,
        host: &impl Host,
        operation: usize,
        gauge: Gauge,
        value: u64,
        budget: &mut Budget,
    ) -> Result<(), Spent> {
        if let Some(id) = self.id_within(host, operation, gauge, budget)? {
            host.record_metric(id, value);
        }
        Ok(())
    }
}

impl OperationMetrics<Histogram> {
    pub fn record(&self, host: &impl Host, operation: usize, histogram: Histogram, value: u64) {
        if let Some(id) = self.id(host, operation, histogram) {
            host.record_metric(id, value);
        }
    }
}
