//! What Envoy runs, from its admin endpoint: the revision gauge (a
//! fingerprint of the revision the filter accepted last), each operation's
//! mode gauge, and Envoy's ECDS counters for the filter. And waiting until
//! a pushed revision is active, or refused.
//!
//! Measured on Envoy 1.40 (tests/e2e/test_ctl_confirm.py): a push the filter
//! refuses moves `update_attempt`, `update_rejected`, `config_fail` and, oddly,
//! `config_reload` by one, not `update_success`; the revision gauge keeps the
//! previous value; `/config_dump` then shows the *refused* configuration as
//! if it were current, so it is not a source of truth. The filter's reason
//! is only in Envoy's log (`parallel-run: configuration refused: <reason>`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parallel_run_core::counters::{self, revision_fingerprint};
use parallel_run_core::Mode;
use serde_json::{json, Value};

use crate::admin::{self, Admin};
use crate::error::{Error, Result};
use crate::transition;

pub const STATS_PREFIX: &str = "wasmcustom.";
const ECDS_PREFIX: &str = "extension_config_discovery.http_filter.";
/// The shipped ECDS resource's name (envoy/ecds/parallel-run.json).
pub const DEFAULT_FILTER_NAME: &str = "parallel-run";
/// Envoy's ECDS counters, in the order they are printed.
pub const ECDS_COUNTERS: [&str; 6] = [
    "update_attempt",
    "update_success",
    "update_rejected",
    "update_failure",
    "config_reload",
    "config_fail",
];

/// One read of Envoy's stats.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Every integer stat under `wasmcustom.parallel_run.` and the filter's ECDS ones, by name.
    pub stats: BTreeMap<String, u64>,
    /// The ECDS resource name the counters are read for.
    pub filter_name: String,
}

impl Live {
    pub fn read(admin: &Admin, filter_name: &str) -> Result<Live> {
        let filter = format!(
            r"^({}|{}{}\.)",
            regex_escape(&format!("{STATS_PREFIX}{}.", counters::PREFIX)),
            regex_escape(ECDS_PREFIX),
            regex_escape(filter_name)
        );
        let body = admin.get(&admin::stats_path(&filter)).map_err(Error::unreachable)?;
        let stats = admin::parse_stats(&body)
            .map_err(|err| Error::unreachable(format!("Envoy admin at {}: {err}", admin.url())))?;
        Ok(Live {
            stats,
            filter_name: filter_name.to_string(),
        })
    }

    fn stat(&self, name: &str) -> Option<u64> {
        self.stats.get(&format!("{STATS_PREFIX}{name}")).copied()
    }

    /// The revision gauge: `None` when the filter does not export it (an
    /// older build) or has not accepted a configuration yet.
    pub fn revision_fingerprint(&self) -> Option<u64> {
        self.stat(counters::REVISION_GAUGE).filter(|&v| v != 0)
    }

    /// Whether Envoy runs `revision`.
    pub fn runs(&self, revision: &str) -> bool {
        self.revision_fingerprint() == Some(revision_fingerprint(revision))
    }

    /// The mode Envoy runs operation `id` in, from its gauge.
    pub fn mode(&self, id: &str) -> Option<Mode> {
        self.stat(&counters::mode_gauge(id)).and_then(transition::from_code)
    }

    /// One of [`ECDS_COUNTERS`] for the filter; 0 when absent.
    pub fn ecds(&self, counter: &str) -> u64 {
        self.stats
            .get(&format!("{ECDS_PREFIX}{}.{counter}", self.filter_name))
            .copied()
            .unwrap_or(0)
    }

    pub fn ecds_json(&self) -> Value {
        let counters: serde_json::Map<String, Value> = ECDS_COUNTERS
            .iter()
            .map(|&c| (c.to_string(), json!(self.ecds(c))))
            .collect();
        Value::Object(counters)
    }

    /// `update_success 3 -> 4, config_reload 3 -> 4` for the counters that moved.
    pub fn ecds_moves(&self, before: &Live) -> String {
        let moved: Vec<String> = ECDS_COUNTERS
            .iter()
            .filter(|&&c| self.ecds(c) != before.ecds(c))
            .map(|&c| format!("{c} {} -> {}", before.ecds(c), self.ecds(c)))
            .collect();
        if moved.is_empty() {
            "no ECDS counter moved".to_string()
        } else {
            moved.join(", ")
        }
    }
}

/// RE2-safe escaping for Envoy's stats filter.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How a push ended, as far as Envoy's admin endpoint tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The revision gauge shows the new revision.
    Active { seconds: f64 },
    /// The filter exports no revision gauge; Envoy's ECDS counters say the
    /// update was accepted and installed.
    AcceptedByCounters { seconds: f64 },
    /// Envoy counted a rejection and the revision is not active.
    Refused {
        counters: String,
        live_fingerprint: Option<u64>,
    },
    /// Neither within the timeout.
    NotConfirmed {
        seconds: f64,
        counters: String,
        live_fingerprint: Option<u64>,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Active { .. } => "active",
            Outcome::AcceptedByCounters { .. } => "accepted",
            Outcome::Refused { .. } => "refused",
            Outcome::NotConfirmed { .. } => "not_confirmed",
        }
    }

    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Active { .. } | Outcome::AcceptedByCounters { .. })
    }
}

/// Poll interval: Envoy applies a file within tens of milliseconds of the
/// rename (measured: update_success ~5 ms, config_reload ~1 ms later).
const POLL: Duration = Duration::from_millis(100);
/// After a rejection is counted, how long the gauge may still catch up (a
/// rejection of somebody else's push racing ours).
const REJECTION_GRACE: Duration = Duration::from_millis(300);

/// Waits until Envoy runs `revision` (or says it refused it), polling the
/// admin endpoint; `before` was read just before the file was written.
pub fn wait(admin: &Admin, before: &Live, revision: &str, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let mut rejected_at: Option<Instant> = None;
    let mut last = before.clone();
    loop {
        if let Ok(now) = Live::read(admin, &before.filter_name) {
            last = now;
        }
        let seconds = started.elapsed().as_secs_f64();
        if last.runs(revision) {
            return Outcome::Active { seconds };
        }
        let gauge_missing = last.revision_fingerprint().is_none() && before.revision_fingerprint().is_none();
        let accepted = last.ecds("update_success") > before.ecds("update_success")
            && last.ecds("config_reload") > before.ecds("config_reload");
        let rejected = last.ecds("update_rejected") > before.ecds("update_rejected")
            || last.ecds("update_failure") > before.ecds("update_failure");
        if gauge_missing && accepted && !rejected {
            return Outcome::AcceptedByCounters { seconds };
        }
        if rejected {
            let first = *rejected_at.get_or_insert_with(Instant::now);
            if first.elapsed() >= REJECTION_GRACE {
                return Outcome::Refused {
                    counters: last.ecds_moves(before),
                    live_fingerprint: last.revision_fingerprint(),
                };
            }
        }
        if started.elapsed() >= timeout {
            return Outcome::NotConfirmed {
                seconds,
                counters: last.ecds_moves(before),
                live_fingerprint: last.revision_fingerprint(),
            };
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(entries: &[(&str, u64)]) -> Live {
        Live {
            stats: entries.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            filter_name: "parallel-run".to_string(),
        }
    }

    #[test]
    fn the_live_view_reads_the_gauges_and_the_ecds_counters() {
        let fp = revision_fingerprint("r2");
        let view = live(&[
            ("wasmcustom.parallel_run.config.revision", fp),
            ("wasmcustom.parallel_run.operation.getReturn.mode", 2),
            ("wasmcustom.parallel_run.operation.bad.mode", 9),
            ("extension_config_discovery.http_filter.parallel-run.update_success", 4),
            ("extension_config_discovery.http_filter.other.update_success", 7),
        ]);
        assert!(view.runs("r2"));
        assert!(!view.runs("r1"));
        assert_eq!(view.mode("getReturn"), Some(Mode::Cutover));
        assert_eq!(view.mode("bad"), None);
        assert_eq!(view.mode("missing"), None);
        assert_eq!(view.ecds("update_success"), 4);
        let before = live(&[("extension_config_discovery.http_filter.parallel-run.update_success", 3)]);
        assert_eq!(view.ecds_moves(&before), "update_success 3 -> 4");
        assert_eq!(view.ecds_moves(&view), "no ECDS counter moved");
        assert_eq!(
            live(&[("wasmcustom.parallel_run.config.revision", 0)]).revision_fingerprint(),
            None
        );
        assert_eq!(
            regex_escape("wasmcustom.parallel_run.a-b"),
            r"wasmcustom\.parallel_run\.a\-b"
        );
    }
}
