//! What differs most: per operation, a counter
//! `unmatched_path.<diff path>` for each of the first `max_diff_paths`
//! distinct diff paths seen in unmatched comparisons; each other field of a
//! comparison adds one to `unmatched_path_overflow`. Every field of a
//! comparison is counted once (core lists them all, [`parallel_run_core::compare::BodyDiff::fields`]).
//!
//! The slots belong to a configuration revision. Which diff paths were
//! admitted is kept in shared data, one line each under a first line
//! `#<revision fingerprint>`, so that every VM counts the same ones and the
//! bound holds for the whole proxy. A configuration with another revision
//! starts a fresh list, and sets the old list's `unmatched_path_current`
//! gauges (and `unmatched_path_overflow_current`) to 0; the counters,
//! cumulative by contract, keep counting since Envoy started. Each VM
//! remembers what it saw admitted in the current revision, so a known path
//! costs no read of shared data.
//!
//! Taking up a revision costs a worker's configuration one shared-data
//! read, whatever the number of operations: with 10,000 operations,
//! replacing every list at configuration took 26 ms of every worker, each
//! of the 10,000 writes under Envoy's process-wide shared-data lock
//! (bench/push.py, 2026-12-02); now 0.03–0.8 ms. Instead:
//!
//! - One key, [`REVISION_KEY`], names the revision configured last and a
//!   digest of its operation ids. The first VM to take up a revision
//!   creates the lists that do not exist yet (one read per operation, and
//!   a write for a new one), then writes that key; the next VMs find it and
//!   walk nothing. In Envoy that first VM is the configuration canary on
//!   the main thread, which applies every configuration before the workers
//!   get it: the walk never runs on a worker unless two pushes overlap
//!   (10,000 operations: 85 ms there creating them, 166 ms reading them on
//!   a push of the same ones, on the busy 2-core machine; no client
//!   request waits for the main thread).
//!   Lists are created there only: a key that does not exist has no
//!   compare-and-swap token, and two VMs creating one at once could each
//!   take the last slot.
//! - An admission that finds a list of another revision replaces it itself
//!   when the revision configured last is its own (clearing the old list's
//!   gauges), and otherwise finds no slot: a VM still on the previous
//!   revision counts its fields as overflow until its own configuration
//!   arrives, a moment later, and two revisions never take a list in turn.
//! - The lists of operations that get no traffic are replaced by the
//!   readiness leader alone (readiness.rs), [`SWEEP_PER_TICK`] operations
//!   at its configuration and at each tick: every old list's gauges are 0
//!   within `operations / SWEEP_PER_TICK` ticks of the leader after the
//!   push (10,000 operations: 40 s), a few more when many old lists had
//!   paths ([`SWEEP_DEFINES`]), and at the first tick for up to
//!   [`SWEEP_PER_TICK`] operations.
//!
//! A VM still on the previous revision counts the paths it knows admitted
//! there until its configuration arrives, so an old gauge it sets after
//! the list was replaced stays above 0; the counters are exact either way.

use hashbrown::{HashMap, HashSet};
use parallel_run_core::counters::{self, Counter, Gauge};
use parallel_run_core::fnv::Fnv1a;
use parallel_run_core::Plan;

use crate::host::Host;
use crate::metrics::Metrics;
use crate::vm::OperationRef;

/// `<revision fingerprint> <digest of its operation ids>`: the revision
/// configured last, whose operations all have a list.
const REVISION_KEY: &str = "parallel_run.diff_paths.revision";

/// Operations the leader's sweep looks at per call: one shared-data read
/// each, and a write and gauge settings for an old list. Timed in Envoy
/// with 10,000 operations (bench/push.py's configuration, 2026-12-02, on
/// the busy 2-core machine): 2,000 lists of the current revision took a
/// tick 4.4–11 ms (2.2 µs each at best), 2,000 lists of the previous one,
/// replaced, 8–17 ms (4 µs at best). 250 is about 1 ms (0.4–10 ms
/// measured at load 4.5), beside the leader's own
/// [`crate::metrics::DEFINES_PER_TICK`] in the same tick.
pub const SWEEP_PER_TICK: usize = 250;

/// Gauge definitions a sweep makes in the leader's VM before it stops (it
/// finishes the list at hand: at most `MAX_DIFF_PATHS` + 1 more). A gauge
/// the leader never set needs a definition, about 19 µs each in Envoy at
/// best ([`crate::metrics::DEFINES_PER_TICK`]): 50 is about 1 ms.
pub const SWEEP_DEFINES: usize = 50;

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

    /// The paths whose gauges go to 0 when this list is replaced; `None`
    /// for a list of no revision: no gauge of it exists to clear, and
    /// defining them now would cost the operation its stats before any
    /// traffic (metrics.rs defines lazily).
    fn stale(&self) -> Option<Vec<String>> {
        self.revision
            .map(|_| self.paths.iter().map(|p| p.to_string()).collect())
    }
}

fn fresh(revision: u64) -> Vec<u8> {
    format!("#{revision}\n").into_bytes()
}

/// FNV-1a over the operation ids: a configuration that keeps its revision
/// label but adds an operation still has that operation's list created.
fn digest(plan: &Plan) -> u64 {
    let mut hash = Fnv1a::default();
    for operation in &plan.operations {
        hash.write(operation.id.as_bytes());
        hash.write(b"\n");
    }
    hash.finish()
}

/// The revision configured last and its digest, from [`REVISION_KEY`].
fn configured_last(host: &impl Host) -> Option<(u64, u64)> {
    let (value, _) = host.shared_data(REVISION_KEY)?;
    let value = value?;
    let (revision, digest) = std::str::from_utf8(&value).ok()?.split_once(' ')?;
    Some((revision.parse().ok()?, digest.parse().ok()?))
}

/// What an admission found.
enum Admission {
    Admitted,
    NoSlot,
    /// It replaced a list of another revision (whose paths these were),
    /// and took a slot of the fresh one if it has any.
    Replaced {
        stale: Option<Vec<String>>,
        admitted: bool,
    },
}

#[derive(Default)]
pub struct DiffPaths {
    /// The fingerprint of the revision this VM runs.
    revision: u64,
    /// Per operation id: the diff paths this VM knows to be admitted in it.
    admitted: HashMap<String, HashSet<String>>,
    /// The leader's sweep: the revision it is for and the next operation.
    sweep: (u64, usize),
}

impl DiffPaths {
    /// Takes up `plan`'s revision: creates the lists that do not exist yet
    /// unless another VM did for this revision (see the module doc).
    pub fn prepare(&mut self, host: &impl Host, plan: &Plan) {
        let revision = counters::revision_fingerprint(&plan.revision);
        if revision != self.revision {
            self.admitted.clear();
            self.revision = revision;
        }
        let digest = digest(plan);
        if configured_last(host) == Some((revision, digest)) {
            return;
        }
        let mut created = true;
        for operation in &plan.operations {
            let key = shared_key(&operation.id);
            created &= match host.shared_data(&key) {
                Some((None, _)) => host.set_shared_data(&key, &fresh(revision), None).is_ok(),
                Some(_) => true,
                None => false,
            };
        }
        // Not written after a failed call: the next VM tries again.
        if created {
            let _ = host.set_shared_data(REVISION_KEY, format!("{revision} {digest}").as_bytes(), None);
        }
    }

    /// Counts one unmatched comparison's diff paths (each once).
    pub fn count(&mut self, host: &impl Host, metrics: &mut Metrics, operation: &OperationRef, paths: &[String]) {
        let Some(op) = operation.operation() else { return };
        for path in paths {
            let admitted = match self.admit(host, &op.id, path, op.settings.max_diff_paths) {
                Admission::Admitted => true,
                Admission::NoSlot => false,
                Admission::Replaced { stale, admitted } => {
                    if let Some(stale) = stale {
                        clear(host, metrics, &op.id, &stale, op.settings.max_diff_paths);
                    }
                    admitted
                }
            };
            if admitted {
                metrics.increment(host, &counters::diff_path_counter(&op.id, path));
                metrics.increment_gauge(host, &counters::diff_path_current_gauge(&op.id, path));
            } else {
                operation.count(host, Counter::DiffPathsOverflow);
                let overflow = metrics.of_operation(host, &op.id, Gauge::DiffPathsOverflowCurrent);
                if let Some(id) = overflow.id {
                    host.increment_metric(id);
                }
            }
        }
    }

    fn admit(&mut self, host: &impl Host, operation_id: &str, path: &str, limit: usize) -> Admission {
        let revision = self.revision;
        let known = self.admitted.entry_ref(operation_id).or_default();
        if known.contains(path) {
            return Admission::Admitted;
        }
        // Read at most once, and only for a list of another revision.
        let mut current = None;
        let admission = host.update(&shared_key(operation_id), |value| {
            let list = List::parse(value);
            if list.revision != Some(revision) {
                // No list at all: created at configuration only.
                let ours = value.is_some()
                    && *current.get_or_insert_with(|| configured_last(host).is_some_and(|(last, _)| last == revision));
                if !ours {
                    return (None, Admission::NoSlot);
                }
                let mut text = fresh(revision);
                let admitted = limit > 0;
                if admitted {
                    text.extend_from_slice(path.as_bytes());
                    text.push(b'\n');
                }
                let stale = list.stale();
                return (Some(text), Admission::Replaced { stale, admitted });
            }
            known.extend(list.paths.iter().map(|p| p.to_string()));
            if list.paths.contains(&path) {
                return (None, Admission::Admitted);
            }
            if list.paths.len() >= limit {
                return (None, Admission::NoSlot);
            }
            let mut text = value.map(<[u8]>::to_vec).unwrap_or_default();
            text.extend_from_slice(path.as_bytes());
            text.push(b'\n');
            (Some(text), Admission::Admitted)
        });
        let admission = admission.unwrap_or(Admission::NoSlot);
        match admission {
            Admission::Admitted => {
                known.insert(path.to_string());
            }
            Admission::Replaced { admitted, .. } => {
                // What it knew was of an older list of this revision.
                known.clear();
                if admitted {
                    known.insert(path.to_string());
                }
            }
            Admission::NoSlot => {}
        }
        admission
    }

    /// The readiness leader's part: replaces the lists of another revision
    /// of up to [`SWEEP_PER_TICK`] operations of `plan`, from where its last
    /// call stopped, and sets their gauges to 0. A leader whose revision is
    /// not the one configured last replaces nothing.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub fn sweep(&mut self, host: &impl Host, metrics: &mut Metrics, plan: &Plan) {
        let revision = self.revision;
        if self.sweep.0 != revision {
            self.sweep = (revision, 0);
        }
        if self.sweep.1 >= plan.operations.len() || configured_last(host).is_none_or(|(last, _)| last != revision) {
            return;
        }
        let mut defined = 0;
        for _ in 0..SWEEP_PER_TICK {
            let Some(operation) = plan.operations.get(self.sweep.1) else {
                break;
            };
            if defined >= SWEEP_DEFINES {
                break;
            }
            self.sweep.1 += 1;
            let stale = host.update(&shared_key(&operation.id), |value| {
                let list = List::parse(value);
                if value.is_none() || list.revision == Some(revision) {
                    return (None, None);
                }
                (Some(fresh(revision)), list.stale())
            });
            if let Some(Some(stale)) = stale {
                self.admitted.remove(operation.id.as_str());
                defined += clear(host, metrics, &operation.id, &stale, operation.settings.max_diff_paths);
            }
        }
    }
}

/// Sets the gauges of a replaced list's paths to 0; how many of them this
/// VM had to define.
fn clear(
    host: &impl Host,
    metrics: &mut Metrics,
    operation_id: &str,
    stale: &[String],
    max_diff_paths: usize,
) -> usize {
    let mut defined = 0;
    let mut zero = |name: String| {
        defined += usize::from(metrics.existing(&name).is_none());
        metrics.set_gauge(host, &name, 0);
    };
    for path in stale {
        zero(counters::diff_path_current_gauge(operation_id, path));
    }
    // An overflow needs full slots, so a list with no path had none
    // (unless it has no slots at all): its gauge is left undefined.
    if !stale.is_empty() || max_diff_paths == 0 {
        let overflow = metrics.of_operation(host, operation_id, Gauge::DiffPathsOverflowCurrent);
        defined += usize::from(overflow.now);
        if let Some(id) = overflow.id {
            host.record_metric(id, 0);
        }
    }
    defined
}
