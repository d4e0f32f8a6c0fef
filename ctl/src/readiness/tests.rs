//! Unit tests of the readiness sources: the window gauges, the cumulative
//! fallback and routing mismatches.

use super::*;
use parallel_run_core::Plan;

const CONFIG: &[u8] = br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},
    "defaults":{"min_samples":10,"target_match_rate":0.9,"readiness":{"ready_after_s":300}},
    "operations":[{"id":"a","method":"GET","path":"/a","mode":"shadow"}]}"#;

fn stat(name: &str) -> String {
    format!("wasmcustom.parallel_run.operation.a.{name}")
}

fn live(entries: &[(&str, u64)]) -> Live {
    Live {
        stats: entries.iter().map(|(name, value)| (stat(name), *value)).collect(),
        filter_name: "parallel-run".into(),
    }
}

/// The gauges the filter sets for `tally` (src/readiness.rs), with
/// `ready_after_s` 0 so that `ready` is whether the rule is met.
fn gauges_as_the_filter_sets(tally: Tally, rule: &Rule, target: f64, min_samples: u64) -> WindowGauges {
    let evaluation = window::evaluate(tally, rule, target, min_samples);
    WindowGauges {
        comparisons: evaluation.tally.comparisons(),
        matched: evaluation.tally.matched,
        failed: evaluation.tally.failed,
        match_rate_bp: evaluation.match_rate.map_or(0, window::basis_points),
        match_rate_lower_bp: window::basis_points(evaluation.match_rate_lower),
        ready: evaluation.meets.is_ok(),
        ready_for_s: 0,
        window_s: rule.window_s,
        target_match_rate_bp: (target * 10_000.0).round() as u64,
        min_samples,
        max_failure_rate_bp: (rule.max_failure_rate * 10_000.0).round() as u64,
    }
}

#[test]
fn the_verdict_from_the_gauges_agrees_with_the_core_rule_on_the_same_tally() {
    let rules = [
        Rule {
            ready_after_s: 0,
            ..Rule::default()
        },
        Rule {
            window_s: 10,
            confidence: 0.99,
            max_failure_rate: 0.2,
            max_latency_ratio: None,
            ready_after_s: 0,
        },
    ];
    let mut seen = std::collections::BTreeSet::new();
    for rule in &rules {
        for target in [0.0, 0.5, 0.9, 0.99, 1.0] {
            for min_samples in [0, 1, 10, 100] {
                for (matched, unmatched, failed) in [
                    (0, 0, 0),
                    (5, 0, 0),
                    (20, 0, 0),
                    (99, 1, 0),
                    (990, 10, 0),
                    (9_990, 10, 0),
                    (50, 50, 0),
                    (100, 0, 6),
                    (100, 0, 30),
                    (3, 0, 7),
                    (1_000_000, 1, 1),
                ] {
                    // The filter's shadowed, as the CLI reads the window: comparisons + failed.
                    let tally = Tally {
                        shadowed: matched + unmatched + failed,
                        matched,
                        unmatched,
                        failed,
                    };
                    let core = window::evaluate(tally, rule, target, min_samples);
                    let gauges = gauges_as_the_filter_sets(tally, rule, target, min_samples);
                    assert_eq!(gauges.tally(), tally);
                    let cli = Windowed::judge(&gauges, Mode::Shadow, rule);
                    let expected = match core.meets {
                        Ok(()) => "ready",
                        Err(Short::Samples) => "collecting",
                        Err(Short::Failures) => "failing",
                        Err(Short::MatchRate) => "below_target",
                    };
                    assert_eq!(cli.name(), expected, "{tally:?} {rule:?} {target} {min_samples}: {cli}");
                    assert_eq!(
                        Readiness::Window(cli).is_ready(),
                        core.meets.is_ok(),
                        "{tally:?} {rule:?} {target} {min_samples}"
                    );
                    seen.insert(expected);
                }
            }
        }
    }
    assert_eq!(seen.len(), 4, "every verdict exercised: {seen:?}");
}

#[test]
fn the_filters_ready_gauge_decides_and_the_window_gauges_are_the_evidence() {
    let plan = Plan::parse(CONFIG).unwrap();
    let op = &plan.operations[0];
    let mut live = live(&[
        ("matched", 5000),
        ("unmatched", 4000),
        ("shadowed", 9000),
        ("window_comparisons", 1234),
        ("window_matched", 1230),
        ("window_failed", 0),
        ("match_rate_bp", 9967),
        ("match_rate_lower_bp", 9917),
        ("ready", 1),
        ("ready_for_s", 320),
        ("window_s", 600),
        ("target_match_rate_bp", 9900),
        ("min_samples", 10),
        ("max_failure_rate_bp", 500),
    ]);
    let evidence = |live: &Live| {
        EnvoyAdmin {
            live,
            url: "http://127.0.0.1:9901".into(),
        }
        .evidence(op)
    };
    // Cumulatively 55% (below the file's 90%), but the window is what counts.
    let e = evidence(&live);
    assert!(e.ready(), "{e:?}");
    assert_eq!(e.basis(), Basis::Window);
    assert_eq!(
        e.verdict.to_string(),
        "READY (lower bound 99.2% >= 99.0% over 1234 comparisons in 600 s, for 320 s)"
    );
    let document = e.to_json();
    assert_eq!(document["basis"], "window");
    assert_eq!(document["window"], "the filter's last 600 s");
    assert_eq!(document["window_evidence"]["comparisons"], 1234);
    assert_eq!(document["window_evidence"]["match_rate_lower"], 0.9917);
    assert_eq!(document["window_evidence"]["ready_for_s"], 320);
    assert_eq!(document["comparisons"], 9000);

    // The rule met, but not for ready_after_s yet.
    live.stats.insert(stat("ready"), 0);
    live.stats.insert(stat("ready_for_s"), 40);
    let e = evidence(&live);
    assert!(!e.ready());
    assert_eq!(e.verdict.to_string(), "not yet: met for 40 s of 300");

    // The rule not met: why, from the same gauges.
    live.stats.insert(stat("ready_for_s"), 0);
    live.stats.insert(stat("window_matched"), 1100);
    assert_eq!(
        evidence(&live).verdict.to_string(),
        "below target: lower bound 87.3% < 99.0% over 1234 comparisons in 600 s"
    );
    live.stats.insert(stat("window_matched"), 1234);
    live.stats.insert(stat("window_failed"), 95);
    assert_eq!(evidence(&live).verdict.to_string(), "failing: 7.1% failed > 5.0%");
    live.stats.insert(stat("window_comparisons"), 4);
    live.stats.insert(stat("window_matched"), 4);
    live.stats.insert(stat("window_failed"), 0);
    assert_eq!(
        evidence(&live).verdict.to_string(),
        "collecting 4/10 comparisons in 600 s"
    );
    // Envoy runs it in legacy: nothing compared.
    live.stats.insert(stat("mode"), 0);
    assert_eq!(evidence(&live).verdict, Readiness::Window(Windowed::NotShadowed));
    assert!(!evidence(&live).verdict.shadowed());
}

#[test]
fn without_window_gauges_the_cumulative_counters_judge_and_say_so() {
    let plan = Plan::parse(CONFIG).unwrap();
    let op = &plan.operations[0];
    let mut live = live(&[("matched", 19), ("unmatched", 1), ("shadowed", 22), ("failed", 2)]);
    let source = EnvoyAdmin {
        live: &live,
        url: "http://127.0.0.1:9901".into(),
    };
    let evidence = source.evidence(op);
    assert!(evidence.ready(), "{evidence:?}");
    assert_eq!(evidence.basis(), Basis::Cumulative);
    assert_eq!(evidence.failure_rate(), Some(2.0 / 22.0));
    let document = evidence.to_json();
    assert_eq!(document["basis"], "cumulative");
    assert_eq!(document["window_evidence"], Value::Null);
    assert_eq!(document["comparisons"], 20);
    assert_eq!(document["match_rate"], 0.95);
    assert_eq!(document["source"], "Envoy admin http://127.0.0.1:9901");
    assert_eq!(document["summary"], "READY (95.0% >= 90.0% over 20 comparisons)");
    assert_eq!(
        document["window"],
        "since Envoy started (the filter exports no window gauges)"
    );

    // Envoy still runs it in legacy (the file's shadow never went live): nothing compared.
    live.stats.insert(stat("mode"), 0);
    let source = EnvoyAdmin {
        live: &live,
        url: "x".into(),
    };
    assert_eq!(source.evidence(op).verdict, Readiness::Cumulative(Verdict::NotShadowed));
}

#[test]
fn a_routing_mismatch_is_never_ready() {
    let plan = Plan::parse(CONFIG).unwrap();
    let op = &plan.operations[0];
    for window in [true, false] {
        let mut entries = vec![("matched", 100), ("shadowed", 100), ("routing_mismatch", 3)];
        if window {
            entries.extend([("ready", 1), ("window_comparisons", 100), ("window_matched", 100)]);
        }
        let live = live(&entries);
        let evidence = EnvoyAdmin {
            live: &live,
            url: "x".into(),
        }
        .evidence(op);
        assert!(!evidence.ready());
        assert_eq!(evidence.verdict, Readiness::NotRouted { mismatches: 3 });
        assert!(evidence
            .verdict
            .to_string()
            .starts_with("NOT ROUTED (3 routing_mismatch"));
        let document = evidence.to_json();
        assert_eq!(document["verdict"], "not_routed");
        assert_eq!(document["routing_mismatch"], 3);
    }
}
