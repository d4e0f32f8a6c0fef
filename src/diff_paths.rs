//! What differs most: per operation, a counter
//! `unmatched_path.<diff path>` for each of the first `max_diff_paths`
//! distinct diff paths seen in unmatched comparisons; each other field of a
//! comparison adds one to `unmatched_path_overflow`. Every field of a
//! comparison is counted once (core lists them all, [`parallel_run_core::compare::BodyDiff::fields`]).
//!
//! The slots belong to a configuration revision. Which diff paths were
//! admitted is kept in shared data, one line each under a first line
//! `#<revision fingerprint>`, so that every VM counts the same ones and the
//! bound holds for the whole proxy; a configuration with another revision
//! starts a fresh list, and sets the old list's `unmatched_path_current`
//! gauges to 0 (the counters, cumulative by contract, keep counting since
//! Envoy started). Each VM remembers what it saw admitted in the current
//! revision, so a known path costs no read of shared data.
//!
//! A VM still on the previous revision while another already reset the
//! list finds no slot (the list is not its revision's): its fields count as
//! overflow until its own configuration arrives, a moment later.

use hashbrown::{HashMap, HashSet};
use parallel_run_core::counters::{self, Counter};
use parallel_run_core::Plan;

use crate::host::Host;
use crate::metrics::Metrics;
use crate::vm::OperationRef;

fn shared_key(operation_id: &str) -> String {
    format!("parallel_run.diff_paths.{operation_id}")
}

/// A shared list: the revision it belongs to and its admitted paths.
struct List<'a> {
    revision: Option<u64>,
    paths: Vec<&'a str>,
}

impl<'a> List<'a> {
    fn parse(value: Option<&'a [u8]>) -> List<'a> {
        let text = value.and_then(|v| std::str::from_utf8(v).ok()).unwrap_or_default();
        let mut lines = text.lines().filter(|line| !line.is_empty());
        let revision = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix('#'))
            .and_then(|fp| fp.parse::<u64>().ok());
        if revision.is_some() {
            lines.next();
        }
        List {
            revision,
            paths: lines.collect(),
        }
    }
}

fn fresh(revision: u64) -> Vec<u8> {
    format!("#{revision}\n").into_bytes()
}

#[derive(Default)]
pub struct DiffPaths {
    /// The fingerprint of the revision this VM runs.
    revision: u64,
    /// Per operation id: the diff paths this VM knows to be admitted in it.
    admitted: HashMap<String, HashSet<String>>,
}

impl DiffPaths {
    /// Takes up `plan`'s revision: an operation's list of another revision
    /// (or none) is replaced by an empty one of this revision, and the
    /// gauges of the paths it listed go to 0.
    pub fn prepare(&mut self, host: &impl Host, metrics: &mut Metrics, plan: &Plan) {
        let revision = counters::revision_fingerprint(&plan.revision);
        if revision != self.revision {
            self.admitted.clear();
            self.revision = revision;
        }
        for operation in &plan.operations {
            let key = shared_key(&operation.id);
            let stale = host.update(&key, |value| {
                let list = List::parse(value);
                if list.revision == Some(revision) {
                    return (None, None);
                }
                // A list of no revision is a new one: no gauge of it exists
                // to clear, and defining them now would cost every operation
                // its stats before any traffic (metrics.rs defines lazily).
                let stale = list
                    .revision
                    .map(|_| list.paths.iter().map(|p| p.to_string()).collect::<Vec<String>>());
                (Some(fresh(revision)), stale)
            });
            let Some(Some(stale)) = stale else { continue };
            for path in &stale {
                metrics.set_gauge(host, &counters::diff_path_current_gauge(&operation.id, path), 0);
            }
            // An overflow needs full slots, so a list with no path had none
            // (unless it has no slots at all): its gauge is left undefined.
            if !stale.is_empty() || operation.max_diff_paths == 0 {
                metrics.set_gauge(host, &counters::diff_path_overflow_current_gauge(&operation.id), 0);
            }
        }
    }

    /// Counts one unmatched comparison's diff paths (each once).
    pub fn count(&mut self, host: &impl Host, metrics: &mut Metrics, operation: &OperationRef, paths: &[String]) {
        let Some(op) = operation.operation() else { return };
        for path in paths {
            if self.admit(host, &op.id, path, op.max_diff_paths) {
                metrics.increment(host, &counters::diff_path_counter(&op.id, path));
                metrics.increment_gauge(host, &counters::diff_path_current_gauge(&op.id, path));
            } else {
                operation.count(host, Counter::DiffPathsOverflow);
                metrics.increment_gauge(host, &counters::diff_path_overflow_current_gauge(&op.id));
            }
        }
    }

    fn admit(&mut self, host: &impl Host, operation_id: &str, path: &str, limit: usize) -> bool {
        let revision = self.revision;
        let known = self.admitted.entry_ref(operation_id).or_default();
        if known.contains(path) {
            return true;
        }
        let admitted = host.update(&shared_key(operation_id), |value| {
            let list = List::parse(value);
            if list.revision != Some(revision) {
                // Another revision's list: no slot for this VM's counts.
                return (None, false);
            }
            known.extend(list.paths.iter().map(|p| p.to_string()));
            if list.paths.contains(&path) {
                return (None, true);
            }
            if list.paths.len() >= limit {
                return (None, false);
            }
            let mut text = value.map(<[u8]>::to_vec).unwrap_or_default();
            text.extend_from_slice(path.as_bytes());
            text.push(b'\n');
            (Some(text), true)
        });
        let admitted = admitted.unwrap_or(false);
        if admitted {
            known.insert(path.to_string());
        }
        admitted
    }
}
