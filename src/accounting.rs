//! Judging settled exchanges and counting the outcomes.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use parallel_run_core::compare::Diff;
use parallel_run_core::counters::Counter;
use parallel_run_core::ledger::{judge, Failure, Outcome, Settled};
use parallel_run_core::noise::{fields as noise_fields, only_noise};
use proxy_wasm::hostcalls;

use crate::worker::{Kind, Tag};
use crate::{diff_paths, noise};

/// Judges an exchange with both sides in and counts its one outcome.
pub fn record(settled: Settled<Tag>) {
    let Settled { tag, serving, shadow } = settled;
    let Some(operation) = tag.runtime.plan.operation(tag.operation) else {
        return;
    };
    let outcome = judge(&operation.compare, &serving, &shadow);
    if tag.kind == Kind::Noise {
        // Two answers of the serving backend: what differs is noise. A
        // failed repeat teaches nothing and is not an outcome of the run.
        match &outcome {
            Outcome::Matched => noise::record_self(&operation.id, &[]),
            Outcome::Unmatched(diff) => noise::record_self(&operation.id, &noise_fields(diff).0),
            Outcome::Failed(_) | Outcome::Abandoned => return,
        }
        tag.runtime.metrics.count(tag.operation, Counter::NoiseSamples);
        return;
    }
    let outcome = match outcome {
        Outcome::Matched => {
            // The candidate rate counts every comparison, equal ones too.
            if operation.noise_per_million > 0 {
                noise::record_candidate(&operation.id, &[]);
            }
            Outcome::Matched
        }
        Outcome::Unmatched(diff) => {
            let (fields, _) = noise_fields(&diff);
            if operation.noise_per_million > 0 {
                noise::record_candidate(&operation.id, &fields);
            }
            let learned = |f: &dyn Fn(&[String]) -> bool| operation.learn_noise && noise::with_noise(&operation.id, f);
            if learned(&|noise| only_noise(&diff, noise)) {
                Outcome::Matched
            } else {
                // The to-do list names real differences, not learned noise.
                let real: Vec<String> = fields
                    .into_iter()
                    .filter(|f| !learned(&|noise| noise.contains(f)))
                    .collect();
                diff_paths::count(&tag, &operation.id, operation.max_diff_paths, &real);
                Outcome::Unmatched(diff)
            }
        }
        outcome => outcome,
    };
    count_outcome(&tag, &outcome);
    if let Outcome::Unmatched(diff) = &outcome {
        log_unmatched(&operation.id, &tag.request_id, diff);
    }
}

pub fn count_outcome(tag: &Tag, outcome: &Outcome) {
    let count = |counter| tag.runtime.metrics.count(tag.operation, counter);
    match outcome {
        Outcome::Matched => count(Counter::Matched),
        Outcome::Unmatched(diff) => {
            count(Counter::Unmatched);
            if diff.status {
                count(Counter::UnmatchedStatus);
            }
            if !diff.headers.is_empty() {
                count(Counter::UnmatchedHeaders);
            }
            if diff.body.is_some() {
                count(Counter::UnmatchedBody);
            }
        }
        Outcome::Failed(failure) => {
            count(Counter::Failed);
            count(match failure {
                Failure::Timeout => Counter::FailedTimeout,
                Failure::Error => Counter::FailedError,
                Failure::Status5xx => Counter::Failed5xx,
                Failure::BodyTooLarge => Counter::FailedBodyTooLarge,
            });
        }
        Outcome::Abandoned => count(Counter::Abandoned),
    }
}

/// At most this many unmatched lines per second and worker: a candidate
/// that differs on every request must not flood the proxy's log.
const LOG_LINES_PER_SECOND: u32 = 5;

thread_local! {
    static LOG_WINDOW: Cell<(u64, u32, u64)> = const { Cell::new((0, 0, 0)) };
}

/// Names what differs, never the values: bodies carry personal data.
fn log_unmatched(operation: &str, request_id: &str, diff: &Diff) {
    let second = hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (window, lines, suppressed) = LOG_WINDOW.with(Cell::get);
    let (lines, suppressed) = if window == second {
        (lines, suppressed)
    } else {
        (0, suppressed)
    };
    if lines >= LOG_LINES_PER_SECOND {
        LOG_WINDOW.with(|w| w.set((second, lines, suppressed + 1)));
        return;
    }
    LOG_WINDOW.with(|w| w.set((second, lines + 1, 0)));

    let mut axes = Vec::with_capacity(3);
    if diff.status {
        axes.push("status");
    }
    if !diff.headers.is_empty() {
        axes.push("headers");
    }
    if diff.body.is_some() {
        axes.push("body");
    }
    let (paths, more) = match &diff.body {
        Some(body) => (
            first(&body.json_paths),
            body.more + body.json_paths.len().saturating_sub(LOGGED_NAMES),
        ),
        None => (String::new(), 0),
    };
    let more = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    let suppressed = if suppressed > 0 {
        format!(" ({suppressed} unmatched lines suppressed before this one)")
    } else {
        String::new()
    };
    log::info!(
        "parallel-run: unmatched operation={operation} request_id={request_id} axes={} headers=[{}] json_paths=[{paths}]{more}{suppressed}",
        axes.join(","),
        first(&diff.headers),
    );
}

/// Names per axis in a log line: a few, to act on.
const LOGGED_NAMES: usize = 5;

fn first(names: &[String]) -> String {
    names
        .iter()
        .take(LOGGED_NAMES)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}
