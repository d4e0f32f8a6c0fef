//! "What differs most": per operation, a counter for each field that
//! differed in unmatched comparisons, for the first `max_diff_paths`
//! distinct fields; later ones go to an overflow counter.
//!
//! Which fields got a counter is kept in shared data, so that every worker
//! counts the same ones and the bound holds for the whole proxy.

use std::cell::RefCell;

use hashbrown::{HashMap, HashSet};
use parallel_run_core::counters::{self, Counter};
use parallel_run_core::Plan;
use proxy_wasm::hostcalls;

use crate::worker::Tag;
use crate::{metrics, shared_data};

thread_local! {
    /// Per operation id: the fields this worker knows to have a counter.
    static KNOWN: RefCell<HashMap<String, HashSet<String>>> = RefCell::new(HashMap::new());
}

fn shared_key(operation_id: &str) -> String {
    format!("parallel_run.diff_paths.{operation_id}")
}

/// Creates the shared list of every operation, empty.
pub fn prepare(plan: &Plan) {
    for operation in &plan.operations {
        shared_data::create(&shared_key(&operation.id), b"");
    }
}

/// Counts one unmatched comparison's differing fields.
pub fn count(tag: &Tag, operation_id: &str, limit: usize, fields: &[String]) {
    for field in fields {
        if admitted(operation_id, field, limit) {
            metrics::increment_named(&counters::diff_path_counter(operation_id, field));
        } else {
            tag.runtime.metrics.count(tag.operation, Counter::DiffPathsOverflow);
        }
    }
}

fn admitted(operation_id: &str, field: &str, limit: usize) -> bool {
    let known = KNOWN.with(|known| known.borrow().get(operation_id).is_some_and(|set| set.contains(field)));
    if known {
        return true;
    }
    let key = shared_key(operation_id);
    // A few attempts: another worker may be adding a field at the same time.
    for _ in 0..8 {
        let Ok((value, cas)) = hostcalls::get_shared_data(&key) else {
            return false;
        };
        let text = value.and_then(|v| String::from_utf8(v).ok()).unwrap_or_default();
        let fields: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
        remember(operation_id, &fields);
        if fields.contains(&field) {
            return true;
        }
        if fields.len() >= limit {
            return false;
        }
        let mut updated = text.clone();
        updated.push_str(field);
        updated.push('\n');
        if hostcalls::set_shared_data(&key, Some(updated.as_bytes()), cas).is_ok() {
            remember(operation_id, &[field]);
            return true;
        }
    }
    false
}

fn remember(operation_id: &str, fields: &[&str]) {
    KNOWN.with(|known| {
        let mut known = known.borrow_mut();
        let set = known.entry(operation_id.to_string()).or_default();
        set.extend(fields.iter().map(|f| f.to_string()));
    });
}
