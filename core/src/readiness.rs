//! Is an operation ready for the next step of its migration? The verdict an
//! operator reads before a cutover, from the operation's counters and its
//! `target_match_rate` / `min_samples`.
//!
//! Only `matched` and `unmatched` are comparisons: `failed` and `abandoned`
//! carry no information about whether the two backends agree, so they do not
//! count towards the rate or the sample size. But a candidate that mostly
//! fails (times out, answers 5xx) must not look ready because of the few
//! requests it did answer, so failures that outnumber comparisons block the
//! verdict.

use std::fmt;

use crate::counters::Counter;
use crate::plan::{Mode, Operation};

/// One operation's counter values, indexed by [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    values: [u64; Counter::ALL.len()],
}

impl Counts {
    pub fn get(&self, counter: Counter) -> u64 {
        self.values.get(counter.index()).copied().unwrap_or(0)
    }

    pub fn set(&mut self, counter: Counter, value: u64) {
        if let Some(slot) = self.values.get_mut(counter.index()) {
            *slot = value;
        }
    }

    /// Builder form of [`Counts::set`].
    pub fn with(mut self, counter: Counter, value: u64) -> Counts {
        self.set(counter, value);
        self
    }

    /// Comparisons that carry information: `matched + unmatched`.
    pub fn comparisons(&self) -> u64 {
        self.get(Counter::Matched).saturating_add(self.get(Counter::Unmatched))
    }

    /// Requests never shadowed, all reasons together.
    pub fn skipped(&self) -> u64 {
        [
            Counter::SkippedUnsafeMethod,
            Counter::SkippedSampledOut,
            Counter::SkippedBodyTooLarge,
            Counter::SkippedOverload,
        ]
        .iter()
        .fold(0u64, |sum, &c| sum.saturating_add(self.get(c)))
    }

    /// Shadow calls without an outcome yet:
    /// `shadowed - (matched + unmatched + failed + abandoned)`. About 0 once
    /// traffic stops; persistently non-zero means the books do not balance.
    pub fn in_flight(&self) -> i64 {
        let outcomes = [
            Counter::Matched,
            Counter::Unmatched,
            Counter::Failed,
            Counter::Abandoned,
        ]
        .iter()
        .fold(0i128, |sum, &c| sum + i128::from(self.get(c)));
        let in_flight = i128::from(self.get(Counter::Shadowed)) - outcomes;
        i64::try_from(in_flight).unwrap_or(if in_flight < 0 { i64::MIN } else { i64::MAX })
    }

    /// `matched / (matched + unmatched)`; `None` before the first comparison.
    pub fn match_rate(&self) -> Option<f64> {
        let comparisons = self.comparisons();
        // Counters beyond 2^53 would lose precision; irrelevant for a ratio.
        (comparisons > 0).then(|| self.get(Counter::Matched) as f64 / comparisons as f64)
    }
}

/// What the counters say about the next step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The mode (`legacy`, `candidate`) sends no shadow copies: nothing is
    /// being compared now.
    NotShadowed,
    /// More shadows failed than were compared: the shadow backend is not
    /// comparable yet (down, too slow for `shadow_timeout_ms`, answering
    /// 5xx), whatever the rate over the few comparisons says.
    MostlyFailing { failed: u64, comparisons: u64 },
    /// Fewer than `min_samples` comparisons: the rate does not mean anything yet.
    Collecting { have: u64, need: u64 },
    /// The match rate holds the target over at least `min_samples` comparisons.
    Ready { rate: f64, target: f64, comparisons: u64 },
    /// Enough comparisons, but the match rate is under the target.
    BelowTarget { rate: f64, target: f64 },
}

impl Verdict {
    /// A stable lower-case name, for machine-readable output.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::NotShadowed => "not_shadowed",
            Verdict::MostlyFailing { .. } => "mostly_failing",
            Verdict::Collecting { .. } => "collecting",
            Verdict::Ready { .. } => "ready",
            Verdict::BelowTarget { .. } => "below_target",
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Verdict::Ready { .. })
    }
}

/// The verdict for an operation in `mode` with these counters. The rules, in
/// order: a mode that does not shadow is `NotShadowed`; failures outnumbering
/// comparisons is `MostlyFailing`; fewer than `min_samples` comparisons (and
/// never zero) is `Collecting`; then the rate against the target decides.
pub fn assess(counts: &Counts, mode: Mode, target_match_rate: f64, min_samples: u64) -> Verdict {
    if matches!(mode, Mode::Legacy | Mode::Candidate) {
        return Verdict::NotShadowed;
    }
    let comparisons = counts.comparisons();
    let failed = counts.get(Counter::Failed);
    if failed > comparisons {
        return Verdict::MostlyFailing { failed, comparisons };
    }
    let need = min_samples.max(1);
    match counts.match_rate() {
        Some(rate) if comparisons >= need => {
            if rate >= target_match_rate {
                Verdict::Ready {
                    rate,
                    target: target_match_rate,
                    comparisons,
                }
            } else {
                Verdict::BelowTarget {
                    rate,
                    target: target_match_rate,
                }
            }
        }
        _ => Verdict::Collecting {
            have: comparisons,
            need,
        },
    }
}

/// [`assess`] with the operation's own mode and thresholds.
pub fn assess_operation(counts: &Counts, operation: &Operation) -> Verdict {
    assess(
        counts,
        operation.mode,
        operation.settings.target_match_rate,
        operation.settings.min_samples,
    )
}

/// In words: `READY (98.7% >= 95.0% over 1234 comparisons)`,
/// `below target 91.2% < 95.0%`, `collecting 40/100`, `not shadowed`,
/// `MOSTLY FAILING (60 failed, 12 compared): the shadow backend is not comparable yet`.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Verdict::NotShadowed => f.write_str("not shadowed"),
            Verdict::MostlyFailing { failed, comparisons } => write!(
                f,
                "MOSTLY FAILING ({failed} failed, {comparisons} compared): the shadow backend is not comparable yet"
            ),
            Verdict::Collecting { have, need } => write!(f, "collecting {have}/{need}"),
            Verdict::Ready {
                rate,
                target,
                comparisons,
            } => {
                let (rate, target) = percents(rate, target);
                let plural = if comparisons == 1 { "" } else { "s" };
                write!(f, "READY ({rate} >= {target} over {comparisons} comparison{plural})")
            }
            Verdict::BelowTarget { rate, target } => {
                let (rate, target) = percents(rate, target);
                write!(f, "below target {rate} < {target}")
            }
        }
    }
}

/// A fraction as a percentage with one decimal (`0.987` is `98.7%`).
pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Both as percentages, with as many decimals (one to four) as it takes for
/// two different values not to print the same (`94.96%` is not `95.0%`).
pub fn percents(a: f64, b: f64) -> (String, String) {
    let mut pair = (percent(a), percent(b));
    for decimals in 2..=4 {
        if a == b || pair.0 != pair.1 {
            break;
        }
        pair = (
            format!("{:.*}%", decimals, a * 100.0),
            format!("{:.*}%", decimals, b * 100.0),
        );
    }
    pair
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn counts(matched: u64, unmatched: u64, failed: u64) -> Counts {
        Counts::default()
            .with(Counter::Matched, matched)
            .with(Counter::Unmatched, unmatched)
            .with(Counter::Failed, failed)
    }

    #[test]
    fn match_rate_counts_only_comparisons() {
        assert_eq!(Counts::default().match_rate(), None);
        let c = counts(3, 1, 100).with(Counter::Abandoned, 50);
        assert_eq!(c.comparisons(), 4);
        assert_eq!(c.match_rate(), Some(0.75));
        assert_eq!(counts(0, 2, 0).match_rate(), Some(0.0));
    }

    #[test]
    fn skipped_sums_every_reason_and_in_flight_balances_the_books() {
        let c = counts(5, 2, 1)
            .with(Counter::Abandoned, 1)
            .with(Counter::Shadowed, 12)
            .with(Counter::SkippedUnsafeMethod, 1)
            .with(Counter::SkippedSampledOut, 20)
            .with(Counter::SkippedBodyTooLarge, 300)
            .with(Counter::SkippedOverload, 4000);
        assert_eq!(c.skipped(), 4321);
        assert_eq!(c.in_flight(), 3);
        // More outcomes than calls read at one instant: shown, not hidden.
        assert_eq!(counts(2, 0, 0).with(Counter::Shadowed, 1).in_flight(), -1);
        assert_eq!(
            Counts::default().with(Counter::Shadowed, u64::MAX).in_flight(),
            i64::MAX
        );
        assert_eq!(Counts::default().with(Counter::Matched, u64::MAX).skipped(), 0);
    }

    #[test]
    fn modes_without_shadow_are_not_shadowed_whatever_the_history() {
        for mode in [Mode::Legacy, Mode::Candidate] {
            assert_eq!(assess(&counts(1000, 0, 0), mode, 0.9, 10), Verdict::NotShadowed);
            assert_eq!(assess(&counts(0, 0, 50), mode, 0.9, 10), Verdict::NotShadowed);
        }
    }

    #[test]
    fn collecting_until_min_samples_comparisons() {
        assert_eq!(
            assess(&Counts::default(), Mode::Shadow, 0.95, 100),
            Verdict::Collecting { have: 0, need: 100 }
        );
        // 40 comparisons, all matched: still not enough to mean anything.
        assert_eq!(
            assess(&counts(40, 0, 0), Mode::Shadow, 0.95, 100),
            Verdict::Collecting { have: 40, need: 100 }
        );
        // Failures and abandoned do not count as samples.
        let c = counts(30, 9, 39).with(Counter::Abandoned, 500);
        assert_eq!(
            assess(&c, Mode::Cutover, 0.95, 100),
            Verdict::Collecting { have: 39, need: 100 }
        );
        // Never ready over zero comparisons, even with min_samples 0.
        assert_eq!(
            assess(&Counts::default(), Mode::Shadow, 0.0, 0),
            Verdict::Collecting { have: 0, need: 1 }
        );
    }

    #[test]
    fn the_rate_against_the_target_decides_once_there_are_enough_samples() {
        assert_eq!(
            assess(&counts(95, 5, 0), Mode::Shadow, 0.95, 100),
            Verdict::Ready {
                rate: 0.95,
                target: 0.95,
                comparisons: 100
            }
        );
        assert_eq!(
            assess(&counts(94, 6, 3), Mode::Cutover, 0.95, 100),
            Verdict::BelowTarget {
                rate: 0.94,
                target: 0.95
            }
        );
        assert!(assess(&counts(1, 0, 0), Mode::Shadow, 1.0, 1).is_ready());
        assert!(!assess(&counts(999, 1, 0), Mode::Shadow, 1.0, 1).is_ready());
    }

    #[test]
    fn failures_outnumbering_comparisons_block_the_verdict() {
        // 100% over 100 comparisons, but 101 shadows failed: not ready.
        assert_eq!(
            assess(&counts(100, 0, 101), Mode::Shadow, 0.95, 100),
            Verdict::MostlyFailing {
                failed: 101,
                comparisons: 100
            }
        );
        // Also before min_samples: collecting would never finish.
        assert_eq!(
            assess(&counts(0, 0, 1), Mode::Shadow, 0.95, 100).name(),
            "mostly_failing"
        );
        // As many failures as comparisons is not "mostly".
        assert!(assess(&counts(100, 0, 100), Mode::Shadow, 0.95, 100).is_ready());
    }

    #[test]
    fn verdicts_in_words() {
        let words = |c: &Counts, target: f64, min: u64| assess(c, Mode::Shadow, target, min).to_string();
        assert_eq!(
            words(&counts(987, 13, 0), 0.95, 100),
            "READY (98.7% >= 95.0% over 1000 comparisons)"
        );
        assert_eq!(
            words(&counts(1, 0, 0), 0.95, 1),
            "READY (100.0% >= 95.0% over 1 comparison)"
        );
        assert_eq!(words(&counts(912, 88, 0), 0.95, 100), "below target 91.2% < 95.0%");
        assert_eq!(words(&counts(40, 0, 0), 0.95, 100), "collecting 40/100");
        assert_eq!(
            words(&counts(10, 2, 60), 0.95, 100),
            "MOSTLY FAILING (60 failed, 12 compared): the shadow backend is not comparable yet"
        );
        assert_eq!(
            assess(&counts(1, 0, 0), Mode::Legacy, 0.95, 1).to_string(),
            "not shadowed"
        );
        // Close to the target: enough decimals to tell them apart.
        assert_eq!(words(&counts(9496, 504, 0), 0.95, 100), "below target 94.96% < 95.00%");
        assert_eq!(
            words(&counts(94999, 5001, 0), 0.95, 100),
            "below target 94.999% < 95.000%"
        );
        assert_eq!(percent(0.5), "50.0%");
    }

    #[test]
    fn an_operation_is_assessed_with_its_own_settings() {
        let plan = crate::Plan::parse(
            br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},
                 "defaults":{"mode":"shadow","target_match_rate":0.9,"min_samples":10},
                 "operations":[{"id":"a","method":"GET","path":"/a"},
                               {"id":"b","method":"GET","path":"/b","target_match_rate":0.99,"min_samples":20},
                               {"id":"c","method":"GET","path":"/c","mode":"legacy"}]}"#,
        )
        .unwrap();
        let c = counts(19, 1, 0);
        let verdicts: Vec<_> = plan
            .operations
            .iter()
            .map(|op| assess_operation(&c, op).name())
            .collect();
        assert_eq!(verdicts, ["ready", "below_target", "not_shadowed"]);
    }
}
