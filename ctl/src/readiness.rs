//! Where the readiness verdict that guards a cutover comes from, behind one
//! small interface so that another source can replace it: today Envoy's
//! admin counters (cumulative since Envoy started) judged by the core's
//! rule; a windowed rule from the filter's gauges, and Prometheus for a
//! fleet, implement the same trait later.

use parallel_run_core::counters::{self, Counter};
use parallel_run_core::readiness::{self, Counts, Verdict};
use parallel_run_core::{Mode, Operation};
use serde_json::{json, Value};

use crate::live::{Live, STATS_PREFIX};

/// The readiness of one operation, with what it was judged on: this is
/// what the audit trail records.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub operation: String,
    /// The mode the counters were gathered in (what Envoy runs).
    pub mode: Mode,
    pub verdict: Verdict,
    pub counts: Counts,
    pub target_match_rate: f64,
    pub min_samples: u64,
    /// `Envoy admin http://127.0.0.1:9901`.
    pub source: String,
    /// Which comparisons count: `since Envoy started`.
    pub window: String,
}

impl Evidence {
    pub fn ready(&self) -> bool {
        self.verdict.is_ready()
    }

    /// `failed / shadowed`; `None` before the first shadow.
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

/// A readiness source: the evidence for one operation of the plan.
pub trait Source {
    fn evidence(&self, operation: &Operation) -> Evidence;
}

/// Envoy's admin counters (one Envoy, since it started), judged by
/// `parallel_run_core::readiness::assess` in the mode Envoy runs.
pub struct EnvoyAdmin<'a> {
    pub live: &'a Live,
    pub url: String,
}

impl EnvoyAdmin<'_> {
    pub fn counts(&self, id: &str) -> (Counts, bool) {
        let mut counts = Counts::default();
        let mut present = false;
        for counter in Counter::ALL {
            let name = format!("{STATS_PREFIX}{}", counters::operation_counter(id, counter));
            if let Some(&value) = self.live.stats.get(&name) {
                counts.set(counter, value);
                present = true;
            }
        }
        (counts, present)
    }
}

impl Source for EnvoyAdmin<'_> {
    fn evidence(&self, operation: &Operation) -> Evidence {
        let (counts, _) = self.counts(&operation.id);
        // Judged in the mode Envoy runs: the counters are its comparisons.
        let mode = self.live.mode(&operation.id).unwrap_or(operation.mode);
        Evidence {
            operation: operation.id.clone(),
            mode,
            verdict: readiness::assess(&counts, mode, operation.target_match_rate, operation.min_samples),
            counts,
            target_match_rate: operation.target_match_rate,
            min_samples: operation.min_samples,
            source: format!("Envoy admin {}", self.url),
            window: "since Envoy started".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_run_core::Plan;

    #[test]
    fn evidence_comes_from_the_counters_in_the_live_mode() {
        let plan = Plan::parse(
            br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"defaults":{"min_samples":10,"target_match_rate":0.9},
                 "operations":[{"id":"a","method":"GET","path":"/a","mode":"shadow"}]}"#,
        )
        .unwrap();
        let op = &plan.operations[0];
        let stat = |c: &str| format!("wasmcustom.parallel_run.operation.a.{c}");
        let mut live = Live {
            stats: [
                (stat("matched"), 19),
                (stat("unmatched"), 1),
                (stat("shadowed"), 22),
                (stat("failed"), 2),
            ]
            .into_iter()
            .collect(),
            filter_name: "parallel-run".into(),
        };
        let source = EnvoyAdmin {
            live: &live,
            url: "http://127.0.0.1:9901".into(),
        };
        let evidence = source.evidence(op);
        assert!(evidence.ready(), "{evidence:?}");
        assert_eq!(evidence.failure_rate(), Some(2.0 / 22.0));
        let document = evidence.to_json();
        assert_eq!(document["comparisons"], 20);
        assert_eq!(document["match_rate"], 0.95);
        assert_eq!(document["source"], "Envoy admin http://127.0.0.1:9901");
        assert_eq!(document["summary"], "READY (95.0% >= 90.0% over 20 comparisons)");

        // Envoy still runs it in legacy (the file's shadow never went live): nothing compared.
        live.stats.insert(stat("mode"), 0);
        let source = EnvoyAdmin {
            live: &live,
            url: "x".into(),
        };
        assert_eq!(source.evidence(op).verdict, Verdict::NotShadowed);
    }
}
