//! Where the readiness verdict that guards a cutover comes from, behind one
//! small interface so that another source can replace it (Prometheus for a
//! fleet, later).
//!
//! The default is the filter's own windowed rule ([`parallel_run_core::window`]),
//! read from its per-operation gauges: READY means the filter's `ready`
//! gauge is 1, and the evidence shown (comparisons, lower bound, failure
//! rate over `window_s`) comes from the window gauges. The CLI re-applies
//! `window::evaluate` to the gauges' tally only to say *why* an operation is
//! not ready; it never overrules the gauge. An older filter exports no
//! window gauges: then, and only then, the cumulative counters since Envoy
//! started are judged by `parallel_run_core::readiness::assess`, and the
//! output says so ([`Basis`]).
//!
//! Whatever the rule says, an operation with `routing_mismatch > 0` is
//! NOT ROUTED: Envoy sent its requests to another cluster than the filter
//! chose, so a cutover would change nothing. It is never READY.
//!
//! The third source is a fleet's Prometheus ([`crate::fleet`]): the same
//! rule, `window::evaluate`, applied to the replicas' pooled counters over
//! a window (`--prometheus URL [--window W]`).

use std::collections::BTreeMap;
use std::fmt;

use parallel_run_core::counters::{self, Counter, Gauge};
use parallel_run_core::readiness::{self, Counts, Verdict};
use parallel_run_core::window::{self, Evaluation, Rule, Short, Tally};
use parallel_run_core::{Mode, Operation};
use serde_json::{json, Value};

use crate::live::{Live, STATS_PREFIX};

/// Which rule judged an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The filter's windowed rule, from its gauges.
    Window,
    /// The cumulative counters since Envoy started: the fallback for a
    /// filter without window gauges.
    Cumulative,
    /// A fleet's pooled counters over a window, from Prometheus.
    Prometheus,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::Window => "window",
            Basis::Cumulative => "cumulative",
            Basis::Prometheus => "prometheus",
        }
    }
}

/// One operation's window gauges, as the filter set them on its last
/// evaluation (every few seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowGauges {
    pub comparisons: u64,
    pub matched: u64,
    pub failed: u64,
    pub match_rate_bp: u64,
    pub match_rate_lower_bp: u64,
    pub ready: bool,
    pub ready_for_s: u64,
    pub window_s: u64,
    pub target_match_rate_bp: u64,
    pub min_samples: u64,
    pub max_failure_rate_bp: u64,
}

impl WindowGauges {
    /// The gauges of operation `id` among all stats by name; `None` when the
    /// filter does not export its `ready` gauge (an older build).
    pub fn read(stats: &BTreeMap<String, u64>, id: &str) -> Option<WindowGauges> {
        let gauge = |g: Gauge| {
            stats
                .get(&format!("{STATS_PREFIX}{}", counters::operation_gauge(id, g)))
                .copied()
        };
        let ready = gauge(Gauge::Ready)?;
        let value = |g: Gauge| gauge(g).unwrap_or(0);
        Some(WindowGauges {
            comparisons: value(Gauge::WindowComparisons),
            matched: value(Gauge::WindowMatched),
            failed: value(Gauge::WindowFailed),
            match_rate_bp: value(Gauge::MatchRateBp),
            match_rate_lower_bp: value(Gauge::MatchRateLowerBp),
            ready: ready == 1,
            ready_for_s: value(Gauge::ReadyForS),
            window_s: value(Gauge::WindowS),
            target_match_rate_bp: value(Gauge::TargetMatchRateBp),
            min_samples: value(Gauge::MinSamples),
            max_failure_rate_bp: value(Gauge::MaxFailureRateBp),
        })
    }

    /// The window's counts. The filter exports no windowed `shadowed`:
    /// it is taken as comparisons + failed, which leaves out abandoned and
    /// in-flight calls, so the failure rate shown can only err high.
    pub fn tally(&self) -> Tally {
        Tally {
            shadowed: self.comparisons.saturating_add(self.failed),
            matched: self.matched.min(self.comparisons),
            unmatched: self.comparisons.saturating_sub(self.matched),
            failed: self.failed,
        }
    }

    /// The rule Envoy runs: its window and failure bound from the gauges;
    /// confidence and `ready_after_s`, which have no gauge, from the file.
    pub fn rule(&self, file: &Rule) -> Rule {
        Rule {
            window_s: self.window_s,
            max_failure_rate: bp(self.max_failure_rate_bp),
            ..*file
        }
    }

    pub fn target_match_rate(&self) -> f64 {
        bp(self.target_match_rate_bp)
    }
}

fn bp(value: u64) -> f64 {
    value as f64 / 10_000.0
}

/// The windowed rule's verdict on one operation, in the mode Envoy runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Windowed {
    /// The mode sends no shadow copies.
    NotShadowed,
    /// Fewer comparisons in the window than `min_samples`.
    Collecting { have: u64, need: u64, window_s: u64 },
    /// More of the window's shadows failed than `max_failure_rate` allows.
    Failing { rate: f64, max: f64 },
    /// The lower bound of the match rate is under the target.
    BelowTarget {
        lower: f64,
        target: f64,
        comparisons: u64,
        window_s: u64,
    },
    /// The rule is met, but not yet for `ready_after_s`.
    NotYet { for_s: u64, after_s: u64 },
    /// `max_latency_ratio` is set and the shadow side's p99 over the
    /// serving side's is above it, or was not measured (`ratio` `None`).
    Slow { ratio: Option<f64>, max: f64 },
    /// The filter's `ready` gauge is 1 (`for_s`: for how long), or the
    /// fleet's pooled window meets the rule now (`for_s` `None`).
    Ready {
        lower: f64,
        target: f64,
        comparisons: u64,
        window_s: u64,
        for_s: Option<u64>,
    },
}

impl Windowed {
    /// The verdict from the gauges of an operation Envoy runs in `mode`;
    /// `file` is the operation's rule in the configuration read.
    pub fn judge(gauges: &WindowGauges, mode: Mode, file: &Rule) -> Windowed {
        if matches!(mode, Mode::Legacy | Mode::Candidate) {
            return Windowed::NotShadowed;
        }
        let rule = gauges.rule(file);
        let target = gauges.target_match_rate();
        let evaluation = window::evaluate(gauges.tally(), &rule, target, gauges.min_samples);
        let window_s = gauges.window_s;
        let comparisons = gauges.comparisons;
        // The filter's gauge decides; the CLI's evaluation only explains.
        if gauges.ready {
            return Windowed::Ready {
                lower: evaluation.match_rate_lower,
                target,
                comparisons,
                window_s,
                for_s: Some(gauges.ready_for_s),
            };
        }
        Windowed::short(&evaluation, &rule, target, gauges.min_samples).unwrap_or(Windowed::NotYet {
            for_s: gauges.ready_for_s,
            after_s: rule.ready_after_s,
        })
    }

    /// Why `evaluation` (of `rule`, over `rule.window_s`) does not meet the
    /// rule; `None` when it does.
    pub fn short(evaluation: &Evaluation, rule: &Rule, target: f64, min_samples: u64) -> Option<Windowed> {
        let comparisons = evaluation.tally.comparisons();
        let window_s = rule.window_s;
        match evaluation.meets {
            Ok(()) => None,
            Err(Short::Samples) => Some(Windowed::Collecting {
                have: comparisons,
                need: min_samples.max(1),
                window_s,
            }),
            Err(Short::Failures) => Some(Windowed::Failing {
                rate: evaluation.failure_rate,
                max: rule.max_failure_rate,
            }),
            Err(Short::MatchRate) => Some(Windowed::BelowTarget {
                lower: evaluation.match_rate_lower,
                target,
                comparisons,
                window_s,
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Windowed::NotShadowed => "not_shadowed",
            Windowed::Collecting { .. } => "collecting",
            Windowed::Failing { .. } => "failing",
            Windowed::BelowTarget { .. } => "below_target",
            Windowed::NotYet { .. } => "not_yet",
            Windowed::Slow { .. } => "slow",
            Windowed::Ready { .. } => "ready",
        }
    }
}

/// `READY (lower bound 99.2% >= 99.0% over 1234 comparisons in 600 s, for 320 s)`,
/// `not yet: met for 40 s of 300`, `below target: lower bound 97.1% < 99.0% over
/// 800 comparisons in 600 s`, `failing: 7.1% failed > 5.0%`,
/// `collecting 40/100 comparisons in 600 s`, `not shadowed`.
impl fmt::Display for Windowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Windowed::NotShadowed => f.write_str("not shadowed"),
            Windowed::Collecting { have, need, window_s } => {
                write!(f, "collecting {have}/{need} comparisons in {window_s} s")
            }
            Windowed::Failing { rate, max } => {
                let (rate, max) = readiness::percents(rate, max);
                write!(f, "failing: {rate} failed > {max}")
            }
            Windowed::BelowTarget {
                lower,
                target,
                comparisons,
                window_s,
            } => {
                let (lower, target) = readiness::percents(lower, target);
                write!(
                    f,
                    "below target: lower bound {lower} < {target} over {comparisons} {} in {window_s} s",
                    plural(comparisons)
                )
            }
            Windowed::NotYet { for_s, after_s } => write!(f, "not yet: met for {for_s} s of {after_s}"),
            Windowed::Slow {
                ratio: Some(ratio),
                max,
            } => {
                write!(f, "too slow: shadow p99 {ratio:.2}x serving p99 > {max:.2}x")
            }
            Windowed::Slow { ratio: None, max } => write!(
                f,
                "latency not measured on both sides (max_latency_ratio {max:.2}x is set)"
            ),
            Windowed::Ready {
                lower,
                target,
                comparisons,
                window_s,
                for_s,
            } => {
                let (lower, target) = readiness::percents(lower, target);
                let held = for_s.map_or_else(String::new, |s| format!(", for {s} s"));
                write!(
                    f,
                    "READY (lower bound {lower} >= {target} over {comparisons} {} in {window_s} s{held})",
                    plural(comparisons)
                )
            }
        }
    }
}

fn plural(comparisons: u64) -> &'static str {
    if comparisons == 1 {
        "comparison"
    } else {
        "comparisons"
    }
}

/// The verdict on one operation, whichever rule gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Readiness {
    /// `routing_mismatch` > 0: Envoy routed requests elsewhere than the
    /// filter chose. Never READY, whatever the rule says.
    NotRouted {
        mismatches: u64,
    },
    /// The fleet's replicas run the operation in different modes (a
    /// rollout in progress, or configuration drift): not judged.
    ModeDrift {
        low: Mode,
        high: Mode,
    },
    Window(Windowed),
    Cumulative(Verdict),
}

impl From<Verdict> for Readiness {
    fn from(verdict: Verdict) -> Readiness {
        Readiness::Cumulative(verdict)
    }
}

impl Readiness {
    /// The verdict for `operation` from all stats by name, in the mode
    /// Envoy runs; `counts` are its cumulative counters.
    pub fn judge(
        stats: &BTreeMap<String, u64>,
        operation: &Operation,
        mode: Mode,
        counts: &Counts,
    ) -> (Readiness, Option<WindowGauges>) {
        let gauges = WindowGauges::read(stats, &operation.id);
        let mismatches = counts.get(Counter::RoutingMismatch);
        let readiness = if mismatches > 0 {
            Readiness::NotRouted { mismatches }
        } else if let Some(gauges) = &gauges {
            Readiness::Window(Windowed::judge(gauges, mode, &operation.settings.readiness))
        } else {
            Readiness::Cumulative(readiness::assess(
                counts,
                mode,
                operation.settings.target_match_rate,
                operation.settings.min_samples,
            ))
        };
        (readiness, gauges)
    }

    pub fn is_ready(&self) -> bool {
        match self {
            Readiness::NotRouted { .. } | Readiness::ModeDrift { .. } => false,
            Readiness::Window(w) => matches!(w, Windowed::Ready { .. }),
            Readiness::Cumulative(v) => v.is_ready(),
        }
    }

    /// Whether the operation is being compared now (its mode shadows).
    pub fn shadowed(&self) -> bool {
        !matches!(
            self,
            Readiness::Window(Windowed::NotShadowed) | Readiness::Cumulative(Verdict::NotShadowed)
        )
    }

    /// A stable lower-case name, for machine-readable output.
    pub fn name(&self) -> &'static str {
        match self {
            Readiness::NotRouted { .. } => "not_routed",
            Readiness::ModeDrift { .. } => "mode_drift",
            Readiness::Window(w) => w.name(),
            Readiness::Cumulative(v) => v.name(),
        }
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::NotRouted { mismatches } => write!(
                f,
                "NOT ROUTED ({mismatches} routing_mismatch: Envoy sent requests to another cluster than the filter chose; the route ignores the route header, so a cutover would change nothing)"
            ),
            Readiness::ModeDrift { low, high } => write!(
                f,
                "MODE DRIFT: replicas run it in {} and {} (a rollout in progress, or configuration drift)",
                low.as_str(),
                high.as_str()
            ),
            Readiness::Window(w) => w.fmt(f),
            Readiness::Cumulative(v) => v.fmt(f),
        }
    }
}

/// The window evidence as JSON: the filter's gauges and what they mean.
pub fn window_json(gauges: &WindowGauges, file: &Rule) -> Value {
    let rule = gauges.rule(file);
    let evaluation = window::evaluate(gauges.tally(), &rule, gauges.target_match_rate(), gauges.min_samples);
    json!({
        "window_s": gauges.window_s,
        "comparisons": gauges.comparisons,
        "matched": gauges.matched,
        "failed": gauges.failed,
        "match_rate": (gauges.comparisons > 0).then(|| bp(gauges.match_rate_bp)),
        "match_rate_lower": bp(gauges.match_rate_lower_bp),
        "failure_rate": evaluation.failure_rate,
        "ready": gauges.ready,
        "ready_for_s": gauges.ready_for_s,
        "ready_after_s": rule.ready_after_s,
        "target_match_rate": gauges.target_match_rate(),
        "min_samples": gauges.min_samples,
        "max_failure_rate": rule.max_failure_rate,
        "confidence": rule.confidence,
    })
}

/// The readiness of one operation, with what it was judged on: this is
/// what the audit trail records.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub operation: String,
    /// The mode the counters were gathered in (what Envoy runs).
    pub mode: Mode,
    pub verdict: Readiness,
    /// Cumulative, since Envoy started.
    pub counts: Counts,
    /// The filter's window gauges; `None` from an older filter.
    pub gauges: Option<WindowGauges>,
    /// The fleet's window from Prometheus (then `counts` are its pooled
    /// window counts, not cumulative ones).
    pub fleet: Option<crate::fleet::Facts>,
    /// The operation's rule in the configuration read.
    pub rule: Rule,
    pub target_match_rate: f64,
    pub min_samples: u64,
    /// `Envoy admin http://127.0.0.1:9901`.
    pub source: String,
    /// Which comparisons count: `the filter's last 600 s`, `since Envoy started`.
    pub window: String,
}

impl Evidence {
    pub fn ready(&self) -> bool {
        self.verdict.is_ready()
    }

    pub fn basis(&self) -> Basis {
        if self.fleet.is_some() {
            Basis::Prometheus
        } else if self.gauges.is_some() {
            Basis::Window
        } else {
            Basis::Cumulative
        }
    }

    /// `failed / shadowed`, cumulative; `None` before the first shadow.
    pub fn failure_rate(&self) -> Option<f64> {
        let shadowed = self.counts.get(Counter::Shadowed);
        (shadowed > 0).then(|| self.counts.get(Counter::Failed) as f64 / shadowed as f64)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "operation": self.operation,
            "mode": self.mode.as_str(),
            "verdict": self.verdict.name(),
            "summary": self.verdict.to_string(),
            "basis": self.basis().name(),
            "window_evidence": self.gauges.as_ref().map(|g| window_json(g, &self.rule)),
            "fleet": self.fleet.as_ref().map(crate::fleet::Facts::to_json),
            "routing_mismatch": self.counts.get(Counter::RoutingMismatch),
            "comparisons": self.counts.comparisons(),
            "matched": self.counts.get(Counter::Matched),
            "unmatched": self.counts.get(Counter::Unmatched),
            "failed": self.counts.get(Counter::Failed),
            "shadowed": self.counts.get(Counter::Shadowed),
            "match_rate": self.counts.match_rate(),
            "failure_rate": self.failure_rate(),
            "target_match_rate": self.target_match_rate,
            "min_samples": self.min_samples,
            "source": self.source,
            "window": self.window,
        })
    }
}

/// Which comparisons a verdict counted, in words.
pub fn window_words(gauges: Option<&WindowGauges>) -> String {
    match gauges {
        Some(g) => format!("the filter's last {} s", g.window_s),
        None => "since Envoy started (the filter exports no window gauges)".to_string(),
    }
}

/// A readiness source: the evidence for one operation of the plan.
pub trait Source {
    fn evidence(&self, operation: &Operation) -> Evidence;
}

/// Envoy's admin endpoint: the filter's window gauges, else its
/// cumulative counters, in the mode Envoy runs.
pub struct EnvoyAdmin<'a> {
    pub live: &'a Live,
    pub url: String,
}

impl EnvoyAdmin<'_> {
    pub fn counts(&self, id: &str) -> (Counts, bool) {
        counts(&self.live.stats, id)
    }
}

/// Operation `id`'s cumulative counters among all stats by name, and
/// whether Envoy has any of them.
pub fn counts(stats: &BTreeMap<String, u64>, id: &str) -> (Counts, bool) {
    let mut counts = Counts::default();
    let mut present = false;
    for counter in Counter::ALL {
        let name = format!("{STATS_PREFIX}{}", counters::operation_counter(id, counter));
        if let Some(&value) = stats.get(&name) {
            counts.set(counter, value);
            present = true;
        }
    }
    (counts, present)
}

impl Source for EnvoyAdmin<'_> {
    fn evidence(&self, operation: &Operation) -> Evidence {
        let (counts, _) = self.counts(&operation.id);
        // Judged in the mode Envoy runs: the counters are its comparisons.
        let mode = self.live.mode(&operation.id).unwrap_or(operation.mode);
        let (verdict, gauges) = Readiness::judge(&self.live.stats, operation, mode, &counts);
        Evidence {
            operation: operation.id.clone(),
            mode,
            verdict,
            counts,
            gauges,
            fleet: None,
            rule: operation.settings.readiness,
            target_match_rate: operation.settings.target_match_rate,
            min_samples: operation.settings.min_samples,
            source: format!("Envoy admin {}", self.url),
            window: window_words(gauges.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests;
