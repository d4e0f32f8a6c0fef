//! The state of one VM (one worker thread): what the streams and the roots
//! of that VM share, and what outlives a configuration push. One struct, so
//! that a test starts from a clean VM.

use std::rc::Rc;

use hashbrown::HashMap;
use parallel_run_core::breaker::Breaker;

use parallel_run_core::counters::{Counter, Gauge, Histogram};
use parallel_run_core::exchange::{ExchangeId, Exchanges, Settled};
use parallel_run_core::log_limit::LogLimit;
use parallel_run_core::{Operation, Plan};

use crate::diff_paths::DiffPaths;
use crate::evidence::Evidence;
use crate::host::Host;
use crate::metrics::{Metrics, OperationMetrics};
use crate::noise::Noise;
use crate::readiness::Readiness;
use crate::wake::Wake;

/// One accepted plugin configuration: its plan and its counter handles. A
/// push replaces it whole; exchanges it started keep it alive until their
/// outcome is counted.
pub struct Plugin {
    pub plan: Plan,
    pub counters: OperationMetrics<Counter>,
    pub gauges: OperationMetrics<Gauge>,
    pub histograms: OperationMetrics<Histogram>,
    /// `parallel_run.unknown_operation.requests`.
    pub unknown_operation: Option<u32>,
}

impl Plugin {
    pub fn count_unknown(&self, host: &impl Host) {
        if let Some(id) = self.unknown_operation {
            host.increment_metric(id);
        }
    }
}

/// The operation an exchange belongs to, in the configuration that
/// started it.
#[derive(Clone)]
pub struct OperationRef {
    pub plugin: Rc<Plugin>,
    pub index: usize,
}

impl OperationRef {
    pub fn operation(&self) -> Option<&Operation> {
        self.plugin.plan.operation(self.index)
    }

    pub fn count(&self, host: &impl Host, counter: Counter) {
        self.plugin.counters.count(host, self.index, counter);
    }

    pub fn record(&self, host: &impl Host, histogram: Histogram, value: u64) {
        self.plugin.histograms.record(host, self.index, histogram, value);
    }
}

/// One in this many requests served by legacy has its route read back
/// (measured: reading `xds.cluster_name` on every request cost pass-through
/// about 5% more proxy CPU per request, bench/ab.py).
pub const ROUTE_CHECK_EVERY: u64 = 16;

/// Counts requests, for the sampled route check.
#[derive(Default)]
pub struct RouteChecks(u64);

impl RouteChecks {
    pub fn sample(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        self.0 % ROUTE_CHECK_EVERY == 1
    }
}

#[derive(Default)]
pub struct Vm {
    pub exchanges: Exchanges<OperationRef>,
    /// Exchanges whose request is complete, for the root to dispatch.
    pub outbox: Vec<ExchangeId>,
    /// Exchanges a stream settled, judged later by the root so that the
    /// comparison never runs on the client's path.
    pub settled: Vec<Settled<OperationRef>>,
    pub wake: Wake,
    pub metrics: Metrics,
    pub noise: Noise,
    pub diff_paths: DiffPaths,
    /// Bounds the unmatched log lines of this VM.
    pub log_limit: LogLimit,
    /// Bounds the failed log lines, apart: failures never crowd out the
    /// unmatched lines, nor the other way round.
    pub failed_log_limit: LogLimit,
    /// Lines about requests that matched no operation since the last tick
    /// (about a second), and those held back: the root's tick resets the
    /// count, so the path of unconfigured traffic reads no clock.
    pub unknown_lines: u32,
    pub unknown_suppressed: u64,
    /// Exchanges opened since the last tick, against the plan's
    /// `max_shadows_per_second`; the root's tick resets it.
    pub opened_this_tick: u32,
    pub readiness: Readiness,
    /// Per operation id: its circuit breaker. Kept across pushes, like the
    /// backend's health it tracks.
    pub breakers: HashMap<String, Breaker>,
    pub route_checks: RouteChecks,
    /// Evidence records waiting for the collector, and posts in flight.
    pub evidence: Evidence,
    /// The configuration this VM installed last: what a root still
    /// applying a newer one serves with meanwhile (`root.rs`).
    pub serving: Option<Rc<Plugin>>,
}

impl Vm {
    /// Takes the work waiting for the root.
    pub fn take_work(&mut self) -> (Vec<ExchangeId>, Vec<Settled<OperationRef>>) {
        self.wake.reset();
        (std::mem::take(&mut self.outbox), std::mem::take(&mut self.settled))
    }
}
