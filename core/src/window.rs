//! Readiness over a window: the one rule that says whether an operation is
//! ready for its next step, from its recent comparisons only, so that
//! comparisons made before a candidate fix, or in another phase, stop
//! weighing once they age out.
//!
//! Per operation, over the last `window_s` seconds: comparisons = matched +
//! unmatched; the match rate is matched / comparisons, judged on the lower
//! bound of its Wilson score interval at `confidence` (20 of 20 is not
//! "100%"); the failure rate is failed / shadowed. It *meets* the rule when
//! comparisons ≥ `min_samples`, the lower bound ≥ `target_match_rate` and
//! the failure rate ≤ `max_failure_rate`; it is READY once it has met the
//! rule continuously for `ready_after_s` (a flap starts the wait again).
//!
//! The filter evaluates this on one VM per proxy ([`Window`] fed from the
//! shared counters, gauges out); `parallel-run-ctl` and the Prometheus rules
//! evaluate the same definition over their own windows.

use std::collections::VecDeque;

/// The rule's parameters for one operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub window_s: u64,
    /// Of the Wilson interval, in (0, 1).
    pub confidence: f64,
    pub max_failure_rate: f64,
    /// Candidate p99 / serving p99 at most this; `None`: latency not judged.
    pub max_latency_ratio: Option<f64>,
    pub ready_after_s: u64,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            window_s: 600,
            confidence: 0.95,
            max_failure_rate: 0.05,
            max_latency_ratio: None,
            ready_after_s: 300,
        }
    }
}

/// The counts the rule reads, over some span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub shadowed: u64,
    pub matched: u64,
    pub unmatched: u64,
    pub failed: u64,
}

impl Tally {
    pub fn comparisons(&self) -> u64 {
        self.matched.saturating_add(self.unmatched)
    }

    fn add(&mut self, other: &Tally) {
        self.shadowed = self.shadowed.saturating_add(other.shadowed);
        self.matched = self.matched.saturating_add(other.matched);
        self.unmatched = self.unmatched.saturating_add(other.unmatched);
        self.failed = self.failed.saturating_add(other.failed);
    }

    /// What grew from `earlier` to `self`. A counter that went down was
    /// reset (a new proxy): what it reads now is all new.
    fn since(&self, earlier: &Tally) -> Tally {
        let grew = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now);
        Tally {
            shadowed: grew(self.shadowed, earlier.shadowed),
            matched: grew(self.matched, earlier.matched),
            unmatched: grew(self.unmatched, earlier.unmatched),
            failed: grew(self.failed, earlier.failed),
        }
    }
}

/// The z value of a two-sided normal interval at `confidence`: the
/// quantile at (1 + confidence) / 2, by Acklam's rational approximation
/// (relative error below 1.2e-9, far inside what a readiness verdict needs).
pub fn z_score(confidence: f64) -> f64 {
    let p = ((1.0 + confidence.clamp(0.0, 0.999_999_999)) / 2.0).max(0.5);
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let [a0, a1, a2, a3, a4, a5] = A;
    let [b0, b1, b2, b3, b4] = B;
    let [c0, c1, c2, c3, c4, c5] = C;
    let [d0, d1, d2, d3] = D;
    if p <= 0.975_25 {
        let q = p - 0.5;
        let r = q * q;
        (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q
            / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    }
}

/// The lower bound of the Wilson score interval for `successes` of
/// `trials` at `z`; 0 for no trials.
pub fn wilson_lower_bound(successes: u64, trials: u64, z: f64) -> f64 {
    if trials == 0 {
        return 0.0;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

/// Why an operation does not meet the rule, first reason first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Short {
    /// Fewer comparisons than `min_samples` in the window.
    Samples,
    /// The failure rate is above `max_failure_rate`.
    Failures,
    /// The lower bound of the match rate is under the target.
    MatchRate,
}

/// The rule applied to one window's counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub tally: Tally,
    /// `None` before the first comparison.
    pub match_rate: Option<f64>,
    pub match_rate_lower: f64,
    pub failure_rate: f64,
    /// `Ok` when the rule is met now.
    pub meets: Result<(), Short>,
}

/// Applies the rule (all but its time condition) to `tally`.
pub fn evaluate(tally: Tally, rule: &Rule, target_match_rate: f64, min_samples: u64) -> Evaluation {
    let comparisons = tally.comparisons();
    let match_rate = (comparisons > 0).then(|| tally.matched as f64 / comparisons as f64);
    let match_rate_lower = wilson_lower_bound(tally.matched, comparisons, z_score(rule.confidence));
    let failure_rate = if tally.shadowed == 0 {
        0.0
    } else {
        tally.failed as f64 / tally.shadowed as f64
    };
    let meets = if comparisons < min_samples.max(1) {
        Err(Short::Samples)
    } else if failure_rate > rule.max_failure_rate {
        Err(Short::Failures)
    } else if match_rate_lower < target_match_rate {
        Err(Short::MatchRate)
    } else {
        Ok(())
    };
    Evaluation {
        tally,
        match_rate,
        match_rate_lower,
        failure_rate,
        meets,
    }
}

/// The latency condition of the rule: when `max_latency_ratio` is set, the
/// shadow side's p99 over the serving side's (`ratio`; in shadow mode the
/// candidate's over legacy's) is at most it. Without a measured ratio (no
/// latency observed on a side) a set condition is not met; unset, it always is.
/// The filter cannot read histogram quantiles: its `ready` gauge leaves this
/// out, and the readers of the histograms (Prometheus' rules, the CLI's
/// fleet verdict) apply it.
pub fn latency_meets(rule: &Rule, ratio: Option<f64>) -> bool {
    match rule.max_latency_ratio {
        None => true,
        Some(max) => ratio.is_some_and(|ratio| ratio <= max),
    }
}

/// Basis points of a fraction, for gauges (0.9876 is 9876).
pub fn basis_points(fraction: f64) -> u64 {
    (fraction.clamp(0.0, 1.0) * 10_000.0).floor() as u64
}

/// The recent counts of one operation: a ring of per-slot deltas of its
/// cumulative counters, covering the window; a slot in which nothing
/// arrived is not kept. Memory is bounded by the number of slots, whatever
/// the traffic.
#[derive(Debug, Clone)]
pub struct Window {
    slot_s: u64,
    window_s: u64,
    /// (slot start in seconds, counts that arrived in it), oldest first.
    slots: VecDeque<(u64, Tally)>,
    last: Option<Tally>,
    /// Since when the rule has been met without a break.
    met_since: Option<u64>,
}

/// Slots per window: the window ages out in steps of a sixtieth of itself.
const SLOTS: u64 = 60;

impl Window {
    pub fn new(window_s: u64) -> Window {
        let window_s = window_s.max(1);
        Window {
            slot_s: window_s.div_ceil(SLOTS).max(1),
            window_s,
            slots: VecDeque::new(),
            last: None,
            met_since: None,
        }
    }

    /// Feeds the cumulative counters as read at `now_s`. The first reading
    /// is the baseline: what happened before the window existed is not in it.
    pub fn observe(&mut self, now_s: u64, cumulative: Tally) {
        let delta = match &self.last {
            Some(last) => cumulative.since(last),
            None => Tally::default(),
        };
        self.last = Some(cumulative);
        let start = now_s - now_s % self.slot_s;
        match self.slots.back_mut() {
            Some((slot, tally)) if *slot == start => tally.add(&delta),
            // A slot without counts is no slot: the sum is the same, and an
            // idle operation keeps no list (60 slots of 40 bytes and their
            // room each, in the leading VM's memory, which never shrinks).
            _ if delta == Tally::default() => {}
            _ => self.slots.push_back((start, delta)),
        }
        let oldest = now_s.saturating_sub(self.window_s);
        while self.slots.front().is_some_and(|(slot, _)| slot + self.slot_s <= oldest) {
            self.slots.pop_front();
        }
    }

    /// The counts over the window.
    pub fn tally(&self) -> Tally {
        let mut total = Tally::default();
        for (_, tally) in &self.slots {
            total.add(tally);
        }
        total
    }

    /// Evaluates the rule at `now_s` and returns it with how long it has
    /// held: READY is `ready_for_s >= rule.ready_after_s` while it meets it.
    pub fn judge(&mut self, now_s: u64, rule: &Rule, target_match_rate: f64, min_samples: u64) -> (Evaluation, u64) {
        let evaluation = evaluate(self.tally(), rule, target_match_rate, min_samples);
        let held_for = match evaluation.meets {
            Ok(()) => now_s.saturating_sub(*self.met_since.get_or_insert(now_s)),
            Err(_) => {
                self.met_since = None;
                0
            }
        };
        (evaluation, held_for)
    }
}

#[cfg(test)]
mod tests;
