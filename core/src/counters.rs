//! The names of the filter's counters: one source for the filter, the CLI,
//! the shipped stats tags and the documentation.
//!
//! Per operation: `parallel_run.operation.<id>.<counter>`; the shipped
//! bootstrap's `stats_tags` turn `<id>` into an `operation_id` label.

/// Declares the per-operation counters once: the enum, [`Counter::ALL`]
/// in declaration order (the filter indexes its metric handles by it) and
/// each counter's name. The e2e suite checks the harness's list and the
/// README's metrics table against what the filter defines.
macro_rules! counters {
    ($($(#[$doc:meta])* $counter:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter {
            $($(#[$doc])* $counter,)*
        }

        impl Counter {
            pub const ALL: [Counter; [$($name),*].len()] = [$(Counter::$counter),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Counter::$counter => $name,)*
                }
            }
        }
    };
}

counters! {
    Requests => "requests",
    ServedLegacy => "served_legacy",
    ServedCandidate => "served_candidate",
    Shadowed => "shadowed",
    Matched => "matched",
    Unmatched => "unmatched",
    UnmatchedStatus => "unmatched_status",
    UnmatchedHeaders => "unmatched_headers",
    UnmatchedBody => "unmatched_body",
    Failed => "failed",
    FailedTimeout => "failed_timeout",
    FailedError => "failed_error",
    Failed5xx => "failed_5xx",
    FailedBodyTooLarge => "failed_body_too_large",
    Abandoned => "abandoned",
    SkippedUnsafeMethod => "skipped_unsafe_method",
    SkippedSampledOut => "skipped_sampled_out",
    SkippedBodyTooLarge => "skipped_body_too_large",
    SkippedOverload => "skipped_overload",
    NoiseSamples => "noise_samples",
    /// Diff paths past `max_diff_paths`, which got no counter of their own.
    DiffPathsOverflow => "unmatched_path_overflow",
    /// Envoy routed the request to another cluster than the filter chose:
    /// the route does not honour the route header ([`crate::routing`]).
    RoutingMismatch => "routing_mismatch",
}

impl Counter {
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

/// `parallel_run.operation.<id>.mode`: a gauge, the operation's mode in the
/// configuration Envoy runs ([`crate::Mode::code`]), so that an operator
/// sees what is live, not what a file says.
pub fn mode_gauge(operation_id: &str) -> String {
    format!("{PREFIX}.operation.{operation_id}.mode")
}

/// A gauge whose value is [`revision_fingerprint`] of the revision the
/// filter runs. Every VM of a proxy sets it when a configuration is
/// accepted, so a refused push leaves the previous value.
pub const REVISION_GAUGE: &str = "parallel_run.config.revision";

/// A stable number for a revision label: FNV-1a over its bytes, cut to 52
/// bits so that it survives Prometheus' float64 samples exactly. Never 0,
/// which a gauge reads before anything set it.
pub fn revision_fingerprint(revision: &str) -> u64 {
    const MASK: u64 = (1 << 52) - 1;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in revision.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash & MASK).max(1)
}

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

    #[test]
    fn revision_fingerprints_are_stable_exact_in_a_float_and_never_zero() {
        // The CLI and the PromQL rules compare this value; it must not move.
        assert_eq!(revision_fingerprint("r1"), revision_fingerprint("r1"));
        assert_ne!(revision_fingerprint("r1"), revision_fingerprint("r2"));
        for revision in ["", "r1", "2026-12-01T21:00Z", "a much longer revision label"] {
            let value = revision_fingerprint(revision);
            assert!(value > 0 && value < (1 << 52), "{revision}: {value}");
            assert_eq!(value as f64 as u64, value);
        }
    }
}
