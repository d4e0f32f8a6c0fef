//! The fleet's readiness, from Prometheus: the third readiness source
//! ([`crate::readiness::Source`]), for `status`, `cutover`, `set-mode`,
//! `apply` and `watch` with `--prometheus URL [--window W]`.
//!
//! What it reads, per operation, with one instant query each (the
//! expressions are [`Queries`]; `-o json` lists them):
//!
//! - the pooled window counts, `sum by (operation_id) (increase(
//!   parallel_run_operation_<counter>[W]))` for shadowed, matched,
//!   unmatched, failed and routing_mismatch: the raw counters rather than
//!   the recording rules, so that any `--window` can be asked and nothing
//!   depends on the rules being loaded (for W equal to the rules' window,
//!   this is the very expression of `operation_id:parallel_run_*:increase_window`);
//! - the p99 of each side's latency over W, pooled the same way;
//! - the thresholds Envoy runs (the filter's config gauges): the strictest
//!   value any replica reports, as the recording rules take it;
//! - the replicas: how many report the operation, in which modes, on which
//!   revisions (`parallel_run_config_revision`, per `instance` and `job`).
//!
//! Then core's rule judges: `window::evaluate` on the pooled tally (the
//! counts rounded to whole comparisons: `increase()` extrapolates to the
//! window's edges, so a count can be off by about one scrape interval's
//! worth of traffic), and `window::latency_meets`. A single instant query
//! has no history: the fleet verdict is "the rule is met over W now";
//! `ready_after_s` is the filter's hold and ReadyForCutover's `for:`, not
//! applied here (ask a longer `--window` for a sustained verdict).
//!
//! Absent series are zero, never a dropped operation: an operation with no
//! `unmatched` series has 0 unmatched; one no replica reports is shown with
//! 0 replicas and 0 comparisons (collecting, not READY).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parallel_run_core::counters::{revision_fingerprint, Counter, Gauge};
use parallel_run_core::readiness::Counts;
use parallel_run_core::window::{self, Rule, Tally};
use parallel_run_core::{Mode, Operation};
use serde_json::{json, Value};

use crate::error::{Error, Kind, Result};
use crate::prometheus::{Prometheus, Sample};
use crate::readiness::{Evidence, Readiness, Source, Windowed};
use crate::transition;

pub mod status;

/// The counters pooled over the window, in this order in [`Facts::counts`].
const COUNTERS: [Counter; 5] = [
    Counter::Shadowed,
    Counter::Matched,
    Counter::Unmatched,
    Counter::Failed,
    Counter::RoutingMismatch,
];

/// Prometheus' name of a per-operation stat (the shipped stats tags turn
/// `parallel_run.operation.<id>.<name>` into `parallel_run_operation_<name>{operation_id="<id>"}`).
fn metric(name: &str) -> String {
    format!("parallel_run_operation_{}", name.replace('.', "_"))
}

/// A PromQL range: whole seconds.
fn range(window_s: u64) -> String {
    format!("{window_s}s")
}

/// Every query the fleet source runs, for one window.
pub struct Queries;

impl Queries {
    pub fn count(counter: Counter, window_s: u64) -> String {
        format!(
            "sum by (operation_id) (increase({}[{}]))",
            metric(counter.name()),
            range(window_s)
        )
    }

    pub fn latency_p99(window_s: u64) -> String {
        format!(
            "histogram_quantile(0.99, sum by (operation_id, side, le) (rate({}_bucket[{}])))",
            metric("latency_ms"),
            range(window_s)
        )
    }

    /// Replicas per operation and revision: each replica's mode gauge,
    /// joined with its revision gauge on the target's labels.
    pub fn replicas() -> String {
        format!(
            "count by (operation_id, revision) ({} * on (instance, job) group_left (revision) \
             count_values without () (\"revision\", parallel_run_config_revision))",
            metric(Gauge::Mode.name())
        )
    }

    /// The lowest and highest mode code per operation: they differ while
    /// replicas disagree.
    pub fn mode(aggregation: &str) -> String {
        format!("{aggregation} by (operation_id) ({})", metric(Gauge::Mode.name()))
    }

    /// A threshold gauge's strictest value over the replicas.
    pub fn threshold(gauge: Gauge) -> String {
        match gauge {
            Gauge::MaxFailureRateBp => format!("min by (operation_id) ({})", metric(gauge.name())),
            // 0 means "not set": the strictest set value, when any replica sets one.
            Gauge::MaxLatencyRatioBp => format!("min by (operation_id) ({} > 0)", metric(gauge.name())),
            _ => format!("max by (operation_id) ({})", metric(gauge.name())),
        }
    }

    /// Replicas per revision, over the whole fleet.
    pub fn revisions() -> String {
        "count_values(\"revision\", parallel_run_config_revision)".to_string()
    }
}

const THRESHOLDS: [Gauge; 4] = [
    Gauge::TargetMatchRateBp,
    Gauge::MinSamples,
    Gauge::MaxFailureRateBp,
    Gauge::MaxLatencyRatioBp,
];

/// One operation's replicas.
#[derive(Debug, Clone, Default, PartialEq)]
struct Replicas {
    /// Revision fingerprint -> replicas running the operation on it.
    revisions: BTreeMap<u64, u64>,
    low_mode: Option<Mode>,
    high_mode: Option<Mode>,
}

/// (serving p99, shadow p99) of one operation, in ms; `None`: not measured.
type P99s = (Option<f64>, Option<f64>);

/// What Prometheus said, read once; judged per operation by [`Source::evidence`].
pub struct Snapshot {
    pub url: String,
    /// `--window`, in seconds; `None`: each operation's `readiness.window_s`.
    pub window_s: Option<u64>,
    /// Window -> operation -> pooled increase per [`COUNTERS`] entry.
    counts: BTreeMap<u64, BTreeMap<String, [f64; 5]>>,
    /// Window -> operation -> (serving p99, shadow p99), in ms.
    latency: BTreeMap<u64, BTreeMap<String, P99s>>,
    replicas: BTreeMap<String, Replicas>,
    /// Operation -> threshold gauge -> strictest value.
    thresholds: BTreeMap<String, BTreeMap<&'static str, f64>>,
    /// Revision fingerprint -> replicas, over the fleet.
    pub fleet_revisions: BTreeMap<u64, u64>,
    /// Fingerprint -> revision label, from the file and the audit log.
    names: BTreeMap<u64, String>,
    /// Every expression run, in order.
    pub queries: Vec<String>,
}

/// `--prometheus URL [--window W]`, checked: where a guard or a watch reads
/// the fleet's readiness.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub prometheus: Prometheus,
    pub window_s: Option<u64>,
}

impl Fleet {
    /// `None` without `--prometheus`.
    pub fn from_args(args: &crate::cli::FleetArgs) -> Result<Option<Fleet>> {
        let Some(url) = &args.prometheus else {
            return Ok(None);
        };
        Ok(Some(Fleet {
            prometheus: Prometheus::parse(url).map_err(Error::io)?,
            window_s: window_seconds(args.window)?,
        }))
    }

    /// The snapshot for `operations`, naming the revisions in `names`.
    pub fn read(&self, operations: &[Operation], names: &[String]) -> Result<Snapshot> {
        Snapshot::read(&self.prometheus, self.window_s, operations, names)
    }
}

/// Distinct windows judged without `--window`: six queries each. A
/// configuration has one or a few; thousands would be thousands of queries.
const MAX_WINDOWS: usize = 32;

/// The window an operation is judged over.
fn window_of(window: Option<u64>, operation: &Operation) -> u64 {
    window.unwrap_or(operation.settings.readiness.window_s).max(1)
}

/// `--window`: a duration of at least a second, in whole seconds.
pub fn window_seconds(window: Option<Duration>) -> Result<Option<u64>> {
    match window {
        None => Ok(None),
        Some(w) if w.as_secs() >= 1 => Ok(Some(w.as_secs())),
        Some(w) => Err(Error::io(format!(
            "--window {} ms: at least 1 s (Prometheus needs a range that holds two scrapes)",
            w.as_millis()
        ))),
    }
}

impl Snapshot {
    /// Runs every query for `plan`'s operations. `names`: revision labels
    /// known from the file and the audit log, to name fingerprints.
    pub fn read(
        prometheus: &Prometheus,
        window_s: Option<u64>,
        operations: &[Operation],
        names: &[String],
    ) -> Result<Snapshot> {
        // One instant for every query (this machine's clock, as a
        // dashboard's): the snapshot is what Prometheus held then.
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Snapshot::collect(&prometheus.url(), window_s, operations, names, |expr| {
            prometheus
                .query(expr, at)
                .map_err(|err| Error::new(Kind::Unreachable, err))
        })
    }

    /// [`Snapshot::read`] with the answers from `answer` (a query -> its samples).
    pub fn collect(
        url: &str,
        window_s: Option<u64>,
        operations: &[Operation],
        names: &[String],
        mut answer: impl FnMut(&str) -> Result<Vec<Sample>>,
    ) -> Result<Snapshot> {
        let mut queries = Vec::new();
        let mut run = |expr: String| -> Result<Vec<Sample>> {
            let samples = answer(&expr)?;
            queries.push(expr);
            Ok(samples)
        };
        let windows: BTreeSet<u64> = operations.iter().map(|op| window_of(window_s, op)).collect();
        if windows.len() > MAX_WINDOWS {
            return Err(Error::io(format!(
                "the operations have {} different readiness.window_s values, each a set of queries: give --window (at most {MAX_WINDOWS} without it)",
                windows.len()
            )));
        }
        let mut counts = BTreeMap::new();
        let mut latency = BTreeMap::new();
        for &w in &windows {
            let mut per_op: BTreeMap<String, [f64; 5]> = BTreeMap::new();
            for (i, &counter) in COUNTERS.iter().enumerate() {
                for sample in run(Queries::count(counter, w))? {
                    if let Some(slot) = per_op
                        .entry(sample.label("operation_id").to_string())
                        .or_default()
                        .get_mut(i)
                    {
                        *slot = finite(sample.value).unwrap_or(0.0);
                    }
                }
            }
            counts.insert(w, per_op);
            let mut sides: BTreeMap<String, P99s> = BTreeMap::new();
            for sample in run(Queries::latency_p99(w))? {
                let entry = sides.entry(sample.label("operation_id").to_string()).or_default();
                match sample.label("side") {
                    "serving" => entry.0 = finite(sample.value),
                    "shadow" => entry.1 = finite(sample.value),
                    _ => {}
                }
            }
            latency.insert(w, sides);
        }
        let mut replicas: BTreeMap<String, Replicas> = BTreeMap::new();
        for sample in run(Queries::replicas())? {
            let fingerprint = sample.label("revision").parse::<f64>().map_or(0, |v| v as u64);
            let entry = replicas.entry(sample.label("operation_id").to_string()).or_default();
            *entry.revisions.entry(fingerprint).or_default() += whole(sample.value);
        }
        for (aggregation, low) in [("min", true), ("max", false)] {
            for sample in run(Queries::mode(aggregation))? {
                let mode = transition::from_code(whole(sample.value));
                let entry = replicas.entry(sample.label("operation_id").to_string()).or_default();
                if low {
                    entry.low_mode = mode;
                } else {
                    entry.high_mode = mode;
                }
            }
        }
        let mut thresholds: BTreeMap<String, BTreeMap<&'static str, f64>> = BTreeMap::new();
        for gauge in THRESHOLDS {
            for sample in run(Queries::threshold(gauge))? {
                if let Some(value) = finite(sample.value) {
                    thresholds
                        .entry(sample.label("operation_id").to_string())
                        .or_default()
                        .insert(gauge.name(), value);
                }
            }
        }
        let mut fleet_revisions = BTreeMap::new();
        for sample in run(Queries::revisions())? {
            let fingerprint = sample.label("revision").parse::<f64>().map_or(0, |v| v as u64);
            *fleet_revisions.entry(fingerprint).or_default() += whole(sample.value);
        }
        let names = names
            .iter()
            .map(|name| (revision_fingerprint(name), name.clone()))
            .collect();
        Ok(Snapshot {
            url: url.to_string(),
            window_s,
            counts,
            latency,
            replicas,
            thresholds,
            fleet_revisions,
            names,
            queries,
        })
    }

    /// A revision by name when the file or the audit log knows it.
    pub fn revision_name(&self, fingerprint: u64) -> Option<&str> {
        self.names.get(&fingerprint).map(String::as_str)
    }

    /// Replicas that report a revision, over the fleet.
    pub fn fleet_replicas(&self) -> u64 {
        self.fleet_revisions.values().sum()
    }

    /// The facts about one operation, before judging.
    fn facts(&self, operation: &Operation) -> Facts {
        let window_s = window_of(self.window_s, operation);
        let raw = self
            .counts
            .get(&window_s)
            .and_then(|per_op| per_op.get(&operation.id))
            .copied()
            .unwrap_or_default();
        let [shadowed, matched, unmatched, failed, routing_mismatch] = raw.map(whole_count);
        let (serving_p99_ms, shadow_p99_ms) = self
            .latency
            .get(&window_s)
            .and_then(|per_op| per_op.get(&operation.id))
            .copied()
            .unwrap_or_default();
        let replicas = self.replicas.get(&operation.id).cloned().unwrap_or_default();
        let gauges = self.thresholds.get(&operation.id);
        let gauge = |g: Gauge| gauges.and_then(|t| t.get(g.name())).copied();
        // What Envoy runs when a replica reports it; the file's otherwise.
        let target_match_rate = gauge(Gauge::TargetMatchRateBp).map_or(operation.settings.target_match_rate, bp);
        let min_samples =
            gauge(Gauge::MinSamples).map_or(operation.settings.min_samples, |v| v.max(0.0).round() as u64);
        let rule = Rule {
            window_s,
            max_failure_rate: gauge(Gauge::MaxFailureRateBp).map_or(operation.settings.readiness.max_failure_rate, bp),
            max_latency_ratio: gauge(Gauge::MaxLatencyRatioBp).map(bp).or(if gauges.is_some() {
                // The replicas report the operation, none sets a latency bound.
                None
            } else {
                operation.settings.readiness.max_latency_ratio
            }),
            ..operation.settings.readiness
        };
        Facts {
            prometheus: self.url.clone(),
            window_s,
            tally: Tally {
                shadowed,
                matched,
                unmatched,
                failed,
            },
            routing_mismatch,
            serving_p99_ms,
            shadow_p99_ms,
            replicas: replicas.revisions.values().sum(),
            revisions: replicas
                .revisions
                .iter()
                .map(|(&fp, &n)| (fp, self.revision_name(fp).map(String::from), n))
                .collect(),
            fleet_replicas: self.fleet_replicas(),
            low_mode: replicas.low_mode,
            high_mode: replicas.high_mode,
            rule,
            target_match_rate,
            min_samples,
        }
    }
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn whole(value: f64) -> u64 {
    finite(value).map_or(0, |v| v.max(0.0).round() as u64)
}

/// An `increase()` as whole events: rounded, except that any growth at all
/// is at least one (a routing mismatch extrapolated to 0.4 still happened).
fn whole_count(value: f64) -> u64 {
    match finite(value) {
        Some(v) if v > 0.0 => (v.round() as u64).max(1),
        _ => 0,
    }
}

fn bp(value: f64) -> f64 {
    value / 10_000.0
}

/// One operation's fleet evidence: what was read and the rule it was judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub prometheus: String,
    pub window_s: u64,
    /// Pooled over the replicas, over the window.
    pub tally: Tally,
    pub routing_mismatch: u64,
    pub serving_p99_ms: Option<f64>,
    pub shadow_p99_ms: Option<f64>,
    /// Replicas that report the operation (with a revision gauge).
    pub replicas: u64,
    /// (fingerprint, name if known, replicas) of the replicas that report it.
    pub revisions: Vec<(u64, Option<String>, u64)>,
    /// Replicas that report a revision at all.
    pub fleet_replicas: u64,
    pub low_mode: Option<Mode>,
    pub high_mode: Option<Mode>,
    /// The rule applied: thresholds from the replicas' gauges (strictest),
    /// the file's where none reports them.
    pub rule: Rule,
    pub target_match_rate: f64,
    pub min_samples: u64,
}

impl Facts {
    /// Shadow p99 / serving p99, when both were measured.
    pub fn latency_ratio(&self) -> Option<f64> {
        match (self.shadow_p99_ms, self.serving_p99_ms) {
            (Some(shadow), Some(serving)) if serving > 0.0 => Some(shadow / serving),
            _ => None,
        }
    }

    /// The mode the replicas run; `Err((low, high))` when they disagree.
    pub fn mode(&self, file: Mode) -> std::result::Result<Mode, (Mode, Mode)> {
        match (self.low_mode, self.high_mode) {
            (Some(low), Some(high)) if low != high => Err((low, high)),
            (Some(mode), _) | (None, Some(mode)) => Ok(mode),
            (None, None) => Ok(file),
        }
    }

    /// Core's rule on the pooled window.
    pub fn judge(&self, file_mode: Mode) -> Readiness {
        if self.routing_mismatch > 0 {
            return Readiness::NotRouted {
                mismatches: self.routing_mismatch,
            };
        }
        let mode = match self.mode(file_mode) {
            Ok(mode) => mode,
            Err((low, high)) => return Readiness::ModeDrift { low, high },
        };
        if matches!(mode, Mode::Legacy | Mode::Candidate) {
            return Readiness::Window(Windowed::NotShadowed);
        }
        let evaluation = window::evaluate(self.tally, &self.rule, self.target_match_rate, self.min_samples);
        if let Some(short) = Windowed::short(&evaluation, &self.rule, self.target_match_rate, self.min_samples) {
            return Readiness::Window(short);
        }
        if !window::latency_meets(&self.rule, self.latency_ratio()) {
            return Readiness::Window(Windowed::Slow {
                ratio: self.latency_ratio(),
                max: self.rule.max_latency_ratio.unwrap_or(0.0),
            });
        }
        Readiness::Window(Windowed::Ready {
            lower: evaluation.match_rate_lower,
            target: self.target_match_rate,
            comparisons: self.tally.comparisons(),
            window_s: self.window_s,
            for_s: None,
        })
    }

    /// Whether the replicas that report the operation run more than one revision.
    pub fn drift(&self) -> bool {
        self.revisions.len() > 1
    }

    /// `2 of 2 replicas, on "r1"`, `1 of 2 replicas, on "r1" 1, fingerprint 123 1`.
    pub fn replicas_words(&self) -> String {
        let revisions: Vec<String> = self
            .revisions
            .iter()
            .map(|(fp, name, n)| {
                let name = name
                    .as_ref()
                    .map_or_else(|| format!("fingerprint {fp}"), |n| format!("{n:?}"));
                if self.revisions.len() == 1 {
                    name
                } else {
                    format!("{name} {n}")
                }
            })
            .collect();
        let on = if revisions.is_empty() {
            String::new()
        } else {
            format!(", on {}", revisions.join(", "))
        };
        format!("{} of {} replicas{on}", self.replicas, self.fleet_replicas)
    }

    pub fn to_json(&self) -> Value {
        let evaluation = window::evaluate(self.tally, &self.rule, self.target_match_rate, self.min_samples);
        json!({
            "prometheus": self.prometheus,
            "window_s": self.window_s,
            "comparisons": self.tally.comparisons(),
            "matched": self.tally.matched,
            "unmatched": self.tally.unmatched,
            "failed": self.tally.failed,
            "shadowed": self.tally.shadowed,
            "routing_mismatch": self.routing_mismatch,
            "match_rate": evaluation.match_rate,
            "match_rate_lower": evaluation.match_rate_lower,
            "failure_rate": evaluation.failure_rate,
            "latency_p99_ms": {"serving": self.serving_p99_ms, "shadow": self.shadow_p99_ms},
            "latency_ratio": self.latency_ratio(),
            "replicas": self.replicas,
            "fleet_replicas": self.fleet_replicas,
            "revisions": self.revisions.iter().map(|(fp, name, n)| json!({
                "fingerprint": fp, "revision": name, "replicas": n,
            })).collect::<Vec<Value>>(),
            "drift": self.drift(),
            "modes": [self.low_mode.map(Mode::as_str), self.high_mode.map(Mode::as_str)],
            "target_match_rate": self.target_match_rate,
            "min_samples": self.min_samples,
            "max_failure_rate": self.rule.max_failure_rate,
            "max_latency_ratio": self.rule.max_latency_ratio,
            "confidence": self.rule.confidence,
        })
    }
}

impl Source for Snapshot {
    fn evidence(&self, operation: &Operation) -> Evidence {
        let facts = self.facts(operation);
        let verdict = facts.judge(operation.mode);
        let mode = facts.mode(operation.mode).unwrap_or(operation.mode);
        let mut counts = Counts::default();
        for (counter, value) in COUNTERS.iter().zip([
            facts.tally.shadowed,
            facts.tally.matched,
            facts.tally.unmatched,
            facts.tally.failed,
            facts.routing_mismatch,
        ]) {
            counts.set(*counter, value);
        }
        Evidence {
            operation: operation.id.clone(),
            mode,
            verdict,
            counts,
            gauges: None,
            rule: facts.rule,
            target_match_rate: facts.target_match_rate,
            min_samples: facts.min_samples,
            source: format!("Prometheus {} ({})", self.url, facts.replicas_words()),
            window: format!(
                "the fleet's last {} s (pooled increase over its replicas)",
                facts.window_s
            ),
            fleet: Some(facts),
        }
    }
}

#[cfg(test)]
mod tests;
