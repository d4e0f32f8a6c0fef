//! The names of the filter's counters: one source for the filter, the CLI,
//! the shipped stats tags and the documentation.
//!
//! Per operation: `parallel_run.operation.<id>.<counter>`; the shipped
//! bootstrap's `stats_tags` turn `<id>` into an `operation_id` label.

/// Every per-operation counter, in a stable order (the filter indexes its
/// metric handles by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Requests,
    ServedLegacy,
    ServedCandidate,
    Shadowed,
    Matched,
    Unmatched,
    UnmatchedStatus,
    UnmatchedHeaders,
    UnmatchedBody,
    Failed,
    FailedTimeout,
    FailedError,
    Failed5xx,
    FailedBodyTooLarge,
    Abandoned,
    SkippedUnsafeMethod,
    SkippedSampledOut,
    SkippedBodyTooLarge,
    SkippedOverload,
    NoiseSamples,
    DiffPathsOverflow,
}

impl Counter {
    pub const ALL: [Counter; 21] = [
        Counter::Requests,
        Counter::ServedLegacy,
        Counter::ServedCandidate,
        Counter::Shadowed,
        Counter::Matched,
        Counter::Unmatched,
        Counter::UnmatchedStatus,
        Counter::UnmatchedHeaders,
        Counter::UnmatchedBody,
        Counter::Failed,
        Counter::FailedTimeout,
        Counter::FailedError,
        Counter::Failed5xx,
        Counter::FailedBodyTooLarge,
        Counter::Abandoned,
        Counter::SkippedUnsafeMethod,
        Counter::SkippedSampledOut,
        Counter::SkippedBodyTooLarge,
        Counter::SkippedOverload,
        Counter::NoiseSamples,
        Counter::DiffPathsOverflow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Requests => "requests",
            Counter::ServedLegacy => "served_legacy",
            Counter::ServedCandidate => "served_candidate",
            Counter::Shadowed => "shadowed",
            Counter::Matched => "matched",
            Counter::Unmatched => "unmatched",
            Counter::UnmatchedStatus => "unmatched_status",
            Counter::UnmatchedHeaders => "unmatched_headers",
            Counter::UnmatchedBody => "unmatched_body",
            Counter::Failed => "failed",
            Counter::FailedTimeout => "failed_timeout",
            Counter::FailedError => "failed_error",
            Counter::Failed5xx => "failed_5xx",
            Counter::FailedBodyTooLarge => "failed_body_too_large",
            Counter::Abandoned => "abandoned",
            Counter::SkippedUnsafeMethod => "skipped_unsafe_method",
            Counter::SkippedSampledOut => "skipped_sampled_out",
            Counter::SkippedBodyTooLarge => "skipped_body_too_large",
            Counter::SkippedOverload => "skipped_overload",
            Counter::NoiseSamples => "noise_samples",
            Counter::DiffPathsOverflow => "unmatched_path_overflow",
        }
    }

    /// Position in [`Counter::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

pub const PREFIX: &str = "parallel_run";

/// `parallel_run.operation.<id>.<counter>`.
pub fn operation_counter(operation_id: &str, counter: Counter) -> String {
    format!("{PREFIX}.operation.{operation_id}.{}", counter.name())
}

/// `parallel_run.operation.<id>.unmatched_path.<field>`: unmatched
/// comparisons in which `<field>` differed (a generalised JSON path,
/// `header:<name>`, `status` or `(body)`). The shipped `stats_tags` turn
/// `<field>` into a `diff_path` label; dots would end it early, so they are
/// written as `_`.
pub fn diff_path_counter(operation_id: &str, field: &str) -> String {
    format!(
        "{PREFIX}.operation.{operation_id}.unmatched_path.{}",
        field.replace('.', "_")
    )
}

/// `parallel_run.operation.<id>.noise_path.<field>`: a gauge, 1 while
/// `<field>` is learned noise for the operation.
pub fn noise_path_gauge(operation_id: &str, field: &str) -> String {
    format!(
        "{PREFIX}.operation.{operation_id}.noise_path.{}",
        field.replace('.', "_")
    )
}

/// Requests that matched no operation (served by the default legacy backend).
pub const UNKNOWN_OPERATION_REQUESTS: &str = "parallel_run.unknown_operation.requests";

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(counter.index(), i);
        }
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn names_have_no_dots_so_the_stats_tag_regex_holds() {
        assert_eq!(
            operation_counter("getReturn", Counter::Requests),
            "parallel_run.operation.getReturn.requests"
        );
        assert!(Counter::ALL.iter().all(|c| !c.name().contains('.')));
    }
}
