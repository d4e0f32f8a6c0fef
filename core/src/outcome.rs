//! The outcome of a settled exchange, and everything that follows from it:
//! which counters go up, which diff paths are counted, what noise learning
//! observes, and the log line. The filter carries this out and decides
//! nothing of its own.

use crate::compare::{self, CompareRules, Diff};
use crate::counters::Counter;
use crate::diff_path::{self, KeyNames};
use crate::exchange::{CallReply, Leg, ServingReply, Settled};
use crate::noise::only_noise;
use crate::plan::Operation;
use crate::reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Error,
    Status5xx,
    BodyTooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    Unmatched(Diff),
    Failed(Failure),
    /// The comparison lost a side: the stream ended early, or a
    /// configuration push retired the call.
    Abandoned,
}

impl Outcome {
    /// The counters this outcome adds one to, the total first.
    pub fn counters(&self) -> Vec<Counter> {
        match self {
            Outcome::Matched => vec![Counter::Matched],
            Outcome::Unmatched(diff) => {
                let mut counters = vec![Counter::Unmatched];
                if diff.status {
                    counters.push(Counter::UnmatchedStatus);
                }
                if !diff.headers.is_empty() {
                    counters.push(Counter::UnmatchedHeaders);
                }
                if diff.body.is_some() {
                    counters.push(Counter::UnmatchedBody);
                }
                counters
            }
            Outcome::Failed(failure) => vec![
                Counter::Failed,
                match failure {
                    Failure::Timeout => Counter::FailedTimeout,
                    Failure::Error => Counter::FailedError,
                    Failure::Status5xx => Counter::Failed5xx,
                    Failure::BodyTooLarge => Counter::FailedBodyTooLarge,
                },
            ],
            Outcome::Abandoned => vec![Counter::Abandoned],
        }
    }
}

/// Compares a call's reply with the serving response. Failures come
/// first: a comparison involving a timeout, an error or a 5xx carries no
/// information about equivalence.
pub fn compare_replies(rules: &CompareRules, serving: &ServingReply, reply: &CallReply) -> Outcome {
    let serving = match serving {
        ServingReply::Incomplete => return Outcome::Abandoned,
        ServingReply::TooLarge => None,
        ServingReply::Complete(response) => Some(response),
    };
    let reply = match reply {
        CallReply::Cancelled => return Outcome::Abandoned,
        CallReply::Timeout => return Outcome::Failed(Failure::Timeout),
        CallReply::Error => return Outcome::Failed(Failure::Error),
        CallReply::TooLarge => None,
        CallReply::Complete(response) => Some(response),
    };
    // Envoy's own 5xx to the client (legacy reset, refused, timed out)
    // says why there was no answer, like the same reply to a shadow call.
    match serving.and_then(reply::envoys_own) {
        Some(CallReply::Timeout) => return Outcome::Failed(Failure::Timeout),
        Some(_) => return Outcome::Failed(Failure::Error),
        None => {}
    }
    if serving.is_some_and(|r| r.status >= 500) || reply.is_some_and(|r| r.status >= 500) {
        return Outcome::Failed(Failure::Status5xx);
    }
    let (Some(serving), Some(reply)) = (serving, reply) else {
        return Outcome::Failed(Failure::BodyTooLarge);
    };
    let diff = compare::compare(rules, serving, reply);
    if diff.too_large() {
        // A body decoded (gzip, deflate) beyond `max_body_bytes`.
        return Outcome::Failed(Failure::BodyTooLarge);
    }
    if diff.is_match() {
        Outcome::Matched
    } else {
        Outcome::Unmatched(diff)
    }
}

/// What a settled call comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The exchange's one outcome, after learned noise; `None` for the
    /// noise repeat, which is no outcome of the parallel run.
    pub outcome: Option<Outcome>,
    /// Diff paths to count under `unmatched_path`: real differences only,
    /// never learned noise.
    pub diff_paths: Vec<String>,
    /// Noise learning, same backend: the diff paths in which two answers of
    /// the serving backend differed (empty: they were equal). `None` unless
    /// this is a repeat that could be compared.
    pub repeat_diff: Option<Vec<String>>,
    /// Noise learning, against the candidate: the diff paths of this
    /// comparison before noise is left out. `None` unless the operation
    /// learns noise and the comparison was made.
    pub candidate_diff: Option<Vec<String>>,
}

impl Judgement {
    /// Every counter to add one to.
    pub fn counters(&self) -> Vec<Counter> {
        let mut counters = self.outcome.as_ref().map(Outcome::counters).unwrap_or_default();
        if self.repeat_diff.is_some() {
            counters.push(Counter::NoiseSamples);
        }
        counters
    }
}

/// Judges a settled call. `noise` is what the proxy has learned to be noise
/// for the operation so far.
pub fn judge<O>(operation: &Operation, settled: &Settled<O>, noise: &[String]) -> Judgement {
    let compared = compare_replies(&operation.settings.compare, &settled.serving, &settled.reply);
    let mut judgement = Judgement {
        outcome: None,
        diff_paths: Vec::new(),
        repeat_diff: None,
        candidate_diff: None,
    };
    if settled.leg == Leg::Repeat {
        // Two answers of the serving backend: what differs is noise. A
        // failed repeat teaches nothing.
        judgement.repeat_diff = match compared {
            Outcome::Matched => Some(Vec::new()),
            Outcome::Unmatched(diff) => Some(diff_path::of(&diff, &operation.settings.key_names).0),
            Outcome::Failed(_) | Outcome::Abandoned => None,
        };
        return judgement;
    }
    let learns = operation.settings.noise_per_million > 0;
    judgement.outcome = Some(match compared {
        Outcome::Matched => {
            // The candidate rate counts every comparison, equal ones too.
            judgement.candidate_diff = learns.then(Vec::new);
            Outcome::Matched
        }
        Outcome::Unmatched(diff) => {
            let (paths, _) = diff_path::of(&diff, &operation.settings.key_names);
            let noise = if operation.settings.learn_noise { noise } else { &[] };
            let matched = only_noise(&diff, &operation.settings.key_names, noise);
            if !matched {
                judgement.diff_paths = paths.iter().filter(|p| !noise.contains(p)).cloned().collect();
            }
            judgement.candidate_diff = learns.then_some(paths);
            if matched {
                Outcome::Matched
            } else {
                Outcome::Unmatched(diff)
            }
        }
        outcome => outcome,
    });
    judgement
}

/// Names per axis in a log line: a few, to act on.
const LOGGED_NAMES: usize = 5;

/// A request id is the client's: it is cut to this many bytes in a log line.
const LOGGED_REQUEST_ID_BYTES: usize = 64;

/// The log line of an unmatched comparison. It names what differs, never a
/// value, and JSON object keys only as `names` allows: bodies carry
/// personal data. `suppressed` is how many lines the rate limit held back
/// before this one.
pub fn unmatched_line(operation_id: &str, request_id: &str, diff: &Diff, names: &KeyNames, suppressed: u64) -> String {
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
        Some(body) => {
            let pointers: Vec<String> = body
                .json_paths
                .iter()
                .take(LOGGED_NAMES)
                .map(|p| diff_path::redact(p, names))
                .collect();
            (
                first(&pointers),
                body.more + body.json_paths.len().saturating_sub(LOGGED_NAMES),
            )
        }
        None => (String::new(), 0),
    };
    let mut line = format!(
        "parallel-run: unmatched operation={operation_id} request_id={} axes={} headers=[{}] json_paths=[{paths}]",
        escaped(request_id, LOGGED_REQUEST_ID_BYTES),
        axes.join(","),
        first(&diff.headers),
    );
    if more > 0 {
        line.push_str(&format!(" (+{more} more)"));
    }
    if suppressed > 0 {
        line.push_str(&format!(" ({suppressed} unmatched lines suppressed before this one)"));
    }
    line
}

/// Which side of a comparison failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedSide {
    /// The response the client was served with: nothing to say about the
    /// shadow backend (its circuit breaker does not count it).
    Serving,
    Shadow,
}

/// The side a failed comparison's `failure` came from.
pub fn failed_side<O>(settled: &Settled<O>, failure: Failure) -> FailedSide {
    let serving_failed = match &*settled.serving {
        ServingReply::Complete(response) => response.status >= 500,
        ServingReply::TooLarge => failure == Failure::BodyTooLarge,
        ServingReply::Incomplete => false,
    };
    if serving_failed {
        FailedSide::Serving
    } else {
        FailedSide::Shadow
    }
}

/// The log line of a failed comparison: which side failed and why, so a
/// burst of failures on unrelated operations can be traced to a backend.
pub fn failed_line<O>(operation_id: &str, settled: &Settled<O>, failure: Failure, suppressed: u64) -> String {
    let serving_failed = failed_side(settled, failure) == FailedSide::Serving;
    let side = if serving_failed { "serving" } else { "shadow" };
    let (reason, status) = match (&settled.reply, &*settled.serving) {
        (CallReply::Complete(r), _) if failure == Failure::Status5xx && !serving_failed => ("5xx", Some(r.status)),
        (_, ServingReply::Complete(r)) if failure == Failure::Status5xx => ("5xx", Some(r.status)),
        _ => (
            match failure {
                Failure::Timeout => "timeout",
                Failure::Error => "error",
                Failure::Status5xx => "5xx",
                Failure::BodyTooLarge => "body_too_large",
            },
            None,
        ),
    };
    let mut line = format!(
        "parallel-run: failed operation={operation_id} request_id={} reason={reason} side={side}",
        escaped(&settled.request_id, LOGGED_REQUEST_ID_BYTES),
    );
    if let Some(status) = status {
        line.push_str(&format!(" status={status}"));
    }
    if suppressed > 0 {
        line.push_str(&format!(" ({suppressed} failed lines suppressed before this one)"));
    }
    line
}

fn first(names: &[String]) -> String {
    names
        .iter()
        .take(LOGGED_NAMES)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// At most `limit` bytes of `text`, with anything but printable ASCII
/// other than space written as `\xNN`: a client-chosen value must not
/// forge log lines or fields.
pub(crate) fn escaped(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit));
    for &b in text.as_bytes().iter().take(limit) {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if text.len() > limit {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;
