//! What differs most: per operation, a counter
//! `unmatched_path.<diff path>` for each of the first `max_diff_paths`
//! distinct diff paths seen in unmatched comparisons; later ones go to the
//! `unmatched_path_overflow` counter.
//!
//! Which diff paths were admitted is kept in shared data (one line each),
//! so that every VM counts the same ones and the bound holds for the whole
//! proxy; each VM remembers what it saw admitted, so a known path costs no
//! hostcall.

use hashbrown::{HashMap, HashSet};
use parallel_run_core::counters::{self, Counter};
use parallel_run_core::Plan;

use crate::host::Host;
use crate::metrics::Metrics;
use crate::vm::OperationRef;

fn shared_key(operation_id: &str) -> String {
    format!("parallel_run.diff_paths.{operation_id}")
}

#[derive(Default)]
pub struct DiffPaths {
    /// Per operation id: the diff paths this VM knows to be admitted.
    admitted: HashMap<String, HashSet<String>>,
}

impl DiffPaths {
    /// Creates every operation's shared list, empty.
    pub fn prepare(host: &impl Host, plan: &Plan) {
        for operation in &plan.operations {
            let key = shared_key(&operation.id);
            if let Some((None, None)) = host.shared_data(&key) {
                let _ = host.set_shared_data(&key, b"", None);
            }
        }
    }

    /// Counts one unmatched comparison's diff paths.
    pub fn count(&mut self, host: &impl Host, metrics: &mut Metrics, operation: &OperationRef, paths: &[String]) {
        let Some(op) = operation.operation() else { return };
        for path in paths {
            if self.admit(host, &op.id, path, op.max_diff_paths) {
                metrics.increment(host, &counters::diff_path_counter(&op.id, path));
            } else {
                operation.count(host, Counter::DiffPathsOverflow);
            }
        }
    }

    fn admit(&mut self, host: &impl Host, operation_id: &str, path: &str, limit: usize) -> bool {
        let known = self.admitted.entry_ref(operation_id).or_default();
        if known.contains(path) {
            return true;
        }
        let admitted = host.update(&shared_key(operation_id), |value| {
            let text = value.and_then(|v| std::str::from_utf8(v).ok()).unwrap_or_default();
            let listed: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
            known.extend(listed.iter().map(|p| p.to_string()));
            if listed.contains(&path) {
                return (None, true);
            }
            if listed.len() >= limit {
                return (None, false);
            }
            (Some(format!("{text}{path}\n").into_bytes()), true)
        });
        let admitted = admitted.unwrap_or(false);
        if admitted {
            known.insert(path.to_string());
        }
        admitted
    }
}
