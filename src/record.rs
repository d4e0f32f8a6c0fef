//! The end of the data path: a settled exchange is judged by the core and
//! its judgement carried out — counters, diff paths, noise counts, and the
//! log line of an unmatched or failed comparison, and the evidence record
//! of one the operation samples ([`crate::evidence`]).

use parallel_run_core::exchange::Settled;
use parallel_run_core::outcome::{self, FailedSide, Failure, Outcome};

use crate::host::Host;
use crate::vm::{OperationRef, Vm};

/// At most this many unmatched lines, and as many failed lines, per second
/// and VM: a candidate that differs or fails on every request must not
/// flood the proxy's log.
const LOG_LINES_PER_SECOND: u32 = 5;

/// Judges a settled call and counts what it comes to: the exchange's one
/// outcome for the shadow call, a noise sample for the repeat.
pub fn record(host: &impl Host, vm: &mut Vm, settled: Settled<OperationRef>) {
    let operation = &settled.operation;
    let Some(op) = operation.operation() else { return };
    let judgement = outcome::judge(op, &settled, vm.noise.learned(&op.id));
    if let (Some(outcome), Some(breaker)) = (&judgement.outcome, vm.breakers.get_mut(&op.id)) {
        match outcome {
            // A failing serving backend (Envoy's own 503 for a dead legacy)
            // says nothing about the shadow backend: it must not pause the
            // shadowing of a healthy candidate.
            Outcome::Failed(failure @ (Failure::Timeout | Failure::Error | Failure::Status5xx)) => {
                if outcome::failed_side(&settled, *failure) == FailedSide::Shadow {
                    breaker.record(true);
                }
            }
            Outcome::Matched | Outcome::Unmatched(_) => breaker.record(false),
            // Neither says anything about the shadow backend's health.
            Outcome::Failed(Failure::BodyTooLarge) | Outcome::Abandoned => {}
        }
    }
    if let Some(paths) = &judgement.repeat_diff {
        vm.noise.record_repeat(&op.id, paths);
    }
    if let Some(paths) = &judgement.candidate_diff {
        vm.noise.record_candidate(&op.id, paths);
    }
    vm.diff_paths
        .count(host, &mut vm.metrics, operation, &judgement.diff_paths);
    if let (Some(outcome), Some(_)) = (&judgement.outcome, &op.settings.evidence) {
        vm.evidence.consider(host, &mut vm.metrics, &settled, outcome);
    }
    // The outcome last: whoever sees it counted in Envoy's stats (an
    // operator, a scrape, a test settling on it) sees its diff paths and
    // evidence counted too. Counted first, a scrape on the admin thread
    // could fall between the two while the worker defined a new diff-path
    // stat and updated its shared list (an e2e run on the busy 2-core
    // machine read `unmatched` 1 and no `unmatched_path` at all).
    for counter in judgement.counters() {
        operation.count(host, counter);
    }
    let second = || host.now_s().unwrap_or(0);
    match &judgement.outcome {
        Some(Outcome::Unmatched(diff)) => {
            if let Some(suppressed) = vm.log_limit.admit(second(), LOG_LINES_PER_SECOND) {
                host.log(
                    log::Level::Info,
                    &outcome::unmatched_line(&op.id, &settled.request_id, diff, &op.settings.key_names, suppressed),
                );
            }
        }
        Some(Outcome::Failed(failure)) => {
            if let Some(suppressed) = vm.failed_log_limit.admit(second(), LOG_LINES_PER_SECOND) {
                host.log(
                    log::Level::Info,
                    &outcome::failed_line(&op.id, &settled, *failure, suppressed),
                );
            }
        }
        Some(Outcome::Matched | Outcome::Abandoned) | None => {}
    }
}
