//! The names of the filter's counters: one source for the filter, the CLI,
//! the shipped stats tags and the documentation.
//!
//! Per operation: `parallel_run.operation.<id>.<counter>`; the shipped
//! bootstrap's `stats_tags` turn `<id>` into an `operation_id` label.

/// Declares a list of per-operation metrics once: the enum, `ALL` in
/// declaration order (the filter indexes its metric handles by it) and each
/// metric's name. The e2e suite checks the harness's list and the README's
/// metrics reference against what the filter defines.
macro_rules! metrics {
    ($(#[$enum_doc:meta])* $kind:ident { $($(#[$doc:meta])* $metric:ident => $name:literal,)* }) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $kind {
            $($(#[$doc])* $metric,)*
        }

        impl $kind {
            pub const ALL: [$kind; [$($name),*].len()] = [$($kind::$metric),*];

            pub fn name(self) -> &'static str {
                match self {
                    $($kind::$metric => $name,)*
                }
            }

            /// Position in `ALL`.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

metrics! {
    /// Every per-operation counter: `parallel_run.operation.<id>.<name>`.
    Counter {
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
    /// The operation's circuit breaker is open ([`crate::breaker`]).
    SkippedCircuitOpen => "skipped_circuit_open",
    /// A header the copy would carry is not UTF-8 ([`crate::shadow::NotText`]).
    SkippedHeaderBytes => "skipped_header_bytes",
    NoiseSamples => "noise_samples",
    /// Diff paths past `max_diff_paths`, which got no counter of their own.
    DiffPathsOverflow => "unmatched_path_overflow",
    /// Envoy routed the request to another cluster than the filter chose:
    /// the route does not honour the route header ([`crate::routing`]).
    RoutingMismatch => "routing_mismatch",
}}

metrics! {
    /// Every per-operation gauge: `parallel_run.operation.<id>.<name>`. The
    /// configuration in force is visible in metrics, so an operator sees
    /// which replica runs which rules, and alerts need no threshold files.
    Gauge {
    /// The mode Envoy runs ([`crate::Mode::code`]: 0 legacy, 1 shadow,
    /// 2 cutover, 3 candidate).
    Mode => "mode",
    /// `target_match_rate` in basis points (0.99 is 9900).
    TargetMatchRateBp => "target_match_rate_bp",
    MinSamples => "min_samples",
    /// The readiness window (`readiness.window_s`), seconds.
    WindowS => "window_s",
    /// `readiness.max_failure_rate` in basis points.
    MaxFailureRateBp => "max_failure_rate_bp",
    /// `readiness.max_latency_ratio` in basis points (1.5 is 15000); 0
    /// when it is not set and latency does not gate readiness.
    MaxLatencyRatioBp => "max_latency_ratio_bp",
    /// Over the window (`parallel_run_core::window`): matched + unmatched.
    WindowComparisons => "window_comparisons",
    WindowMatched => "window_matched",
    WindowFailed => "window_failed",
    /// The window's match rate, in basis points (0 before a comparison).
    MatchRateBp => "match_rate_bp",
    /// The lower bound of its Wilson interval at `readiness.confidence`.
    MatchRateLowerBp => "match_rate_lower_bp",
    /// 1 while the rule has held for `readiness.ready_after_s`.
    Ready => "ready",
    /// How long the rule has held without a break (0 when it does not).
    ReadyForS => "ready_for_s",
    /// Fields that found no `max_diff_paths` slot since the configuration
    /// revision Envoy runs began (`unmatched_path_overflow` counts since
    /// Envoy started).
    DiffPathsOverflowCurrent => "unmatched_path_overflow_current",
}}

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

/// `parallel_run.operation.<id>.unmatched_path_current.<field>`: a gauge,
/// the comparisons in which `<field>` differed since the configuration
/// revision Envoy runs began ([`diff_path_counter`] counts since Envoy
/// started). A new revision starts a fresh list of fields and sets the old
/// list's gauges to 0, so `status` shows the current list only.
pub fn diff_path_current_gauge(operation_id: &str, field: &str) -> String {
    format!(
        "{PREFIX}.operation.{operation_id}.unmatched_path_current.{}",
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

/// Per operation with evidence on ([`crate::evidence`]), defined when the
/// configuration is applied (no other operation has them):
/// `parallel_run.operation.<id>.evidence_sent`, records the collector
/// accepted (a 2xx reply), and `evidence_dropped`, records lost because the
/// collector was down, slow (past its `timeout_ms`), answered an error, or
/// the queue for it was full.
pub const EVIDENCE_COUNTERS: [&str; 2] = [EVIDENCE_SENT, EVIDENCE_DROPPED];
pub const EVIDENCE_SENT: &str = "evidence_sent";
pub const EVIDENCE_DROPPED: &str = "evidence_dropped";

/// `parallel_run.operation.<id>.<evidence counter>`.
pub fn evidence_counter(operation_id: &str, name: &str) -> String {
    format!("{PREFIX}.operation.{operation_id}.{name}")
}

/// Requests that matched no operation (served by the default legacy backend).
pub const UNKNOWN_OPERATION_REQUESTS: &str = "parallel_run.unknown_operation.requests";

metrics! {
    /// Every per-operation histogram: `parallel_run.operation.<id>.<name>`,
    /// in milliseconds. The shipped `stats_tags` turn the last segment into
    /// a `side` label (`serving`, `shadow`).
    Histogram {
    /// The serving backend: from the complete request to the last byte of
    /// its response, for shadowed requests.
    ServingLatencyMs => "latency_ms.serving",
    /// The shadow call: from dispatch to its reply.
    ShadowLatencyMs => "latency_ms.shadow",
}}

/// `parallel_run.operation.<id>.<histogram>`.
pub fn operation_histogram(operation_id: &str, histogram: Histogram) -> String {
    format!("{PREFIX}.operation.{operation_id}.{}", histogram.name())
}

/// `parallel_run.operation.<id>.<gauge>`.
pub fn operation_gauge(operation_id: &str, gauge: Gauge) -> String {
    format!("{PREFIX}.operation.{operation_id}.{}", gauge.name())
}

/// The value of an operation's configuration gauge; `None` for the gauges
/// the readiness window sets ([`crate::window`]), and for the thresholds
/// of an operation that does not shadow: nothing judges it, its mode is
/// all the fleet reads (mode drift), and every gauge is a stat Envoy keeps
/// for good (with 1,000 such operations, 5,000 fewer saved 0.5 MiB of its
/// heap: bench/RESULTS.md).
pub fn config_gauge_value(operation: &crate::Operation, gauge: Gauge) -> Option<u64> {
    let rule = &operation.settings.readiness;
    if gauge != Gauge::Mode && operation.shadow().is_none() {
        return None;
    }
    Some(match gauge {
        Gauge::Mode => operation.mode.code(),
        // Rates in [0, 1], validated: the casts cannot overflow.
        Gauge::TargetMatchRateBp => (operation.settings.target_match_rate * 10_000.0).round() as u64,
        Gauge::MinSamples => operation.settings.min_samples,
        Gauge::WindowS => rule.window_s,
        Gauge::MaxFailureRateBp => (rule.max_failure_rate * 10_000.0).round() as u64,
        // At most 1000, validated: 10,000,000 basis points.
        Gauge::MaxLatencyRatioBp => rule.max_latency_ratio.map_or(0, |r| (r * 10_000.0).round() as u64),
        Gauge::WindowComparisons
        | Gauge::WindowMatched
        | Gauge::WindowFailed
        | Gauge::MatchRateBp
        | Gauge::MatchRateLowerBp
        | Gauge::Ready
        | Gauge::ReadyForS
        | Gauge::DiffPathsOverflowCurrent => return None,
    })
}

/// `parallel_run.operation.<id>.mode`: what is live, not what a file says.
pub fn mode_gauge(operation_id: &str) -> String {
    operation_gauge(operation_id, Gauge::Mode)
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
    (crate::fnv::fnv1a(revision.as_bytes()) & MASK).max(1)
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
        for (i, gauge) in Gauge::ALL.iter().enumerate() {
            assert_eq!(gauge.index(), i);
        }
        // Counter and gauge names never coincide: they share one namespace.
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.extend(Gauge::ALL.iter().map(|g| g.name()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len() + Gauge::ALL.len());
    }

    #[test]
    fn an_operation_that_does_not_shadow_has_its_mode_gauge_alone() {
        let plan = crate::Plan::parse(
            br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},"operations":[
                {"id":"a","method":"GET","path":"/a","mode":"legacy"},
                {"id":"b","method":"GET","path":"/b","mode":"candidate"},
                {"id":"c","method":"GET","path":"/c","mode":"shadow"},
                {"id":"d","method":"GET","path":"/d","mode":"cutover"}]}"#,
        )
        .unwrap();
        let gauges = |i: usize| -> Vec<&str> {
            Gauge::ALL
                .iter()
                .filter(|&&g| config_gauge_value(&plan.operations[i], g).is_some())
                .map(|g| g.name())
                .collect()
        };
        assert_eq!(gauges(0), ["mode"]);
        assert_eq!(gauges(1), ["mode"]);
        let thresholds = [
            "mode",
            "target_match_rate_bp",
            "min_samples",
            "window_s",
            "max_failure_rate_bp",
            "max_latency_ratio_bp",
        ];
        for i in [2, 3] {
            let mut names = gauges(i);
            names.sort_unstable();
            let mut expected = thresholds.to_vec();
            expected.sort_unstable();
            assert_eq!(names, expected);
        }
        assert_eq!(config_gauge_value(&plan.operations[1], Gauge::Mode), Some(3));
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
