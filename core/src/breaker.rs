//! The circuit breaker: a shadow backend that fails most calls is not
//! shadowed at full rate forever. It would cost the proxy a callout per
//! request that teaches nothing, and could keep a struggling candidate
//! down.
//!
//! Per operation and VM: the root counts each shadow outcome as failed or
//! not; every `window_s` it looks at the window just ended, and when at
//! least `min_calls` outcomes came in and the failed share reached
//! `failure_rate`, the circuit opens: requests are not shadowed
//! (`skipped_circuit_open`) for `cooldown_s`. Then it lets `probes`
//! requests through; the circuit closes again when none of them failed,
//! and opens for another cooldown when one did. The breaker moves on the
//! root's tick only, so deciding costs a request no clock read.

/// The breaker's settings for one operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Failed share of a window's outcomes that opens the circuit, in (0, 1].
    pub failure_rate: f64,
    /// Fewer outcomes than this in a window never open it.
    pub min_calls: u64,
    pub window_s: u64,
    pub cooldown_s: u64,
    /// Requests let through after a cooldown to see if the backend is back.
    pub probes: u32,
}

impl Default for Settings {
    /// Half the calls failing over 10 s, with at least 20 calls, pauses
    /// shadowing for 30 s: a backend that is down is noticed within one
    /// window, and a few timeouts in a busy second never trip it.
    fn default() -> Self {
        Settings {
            failure_rate: 0.5,
            min_calls: 20,
            window_s: 10,
            cooldown_s: 30,
            probes: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    /// Until this second.
    Open {
        until_s: u64,
    },
    /// Probes left to let through, whether one has failed, how many were
    /// answered, and since when: probes that never answer (abandoned) end
    /// the round after a cooldown, as a failure.
    Probing {
        left: u32,
        failed: bool,
        answered: u32,
        since_s: u64,
    },
}

/// What a tick changed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Shadowing pauses: `failures` of `outcomes` failed in the last window.
    Opened { failures: u64, outcomes: u64 },
    /// A probe failed, or none answered: another cooldown.
    Reopened,
    /// Every probe succeeded: shadowing resumes.
    Closed,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    settings: Settings,
    state: State,
    window_start_s: Option<u64>,
    outcomes: u64,
    failures: u64,
}

impl Breaker {
    pub fn new(settings: Settings) -> Breaker {
        Breaker {
            settings,
            state: State::Closed,
            window_start_s: None,
            outcomes: 0,
            failures: 0,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed)
    }

    /// Whether to shadow a request that would otherwise be shadowed.
    pub fn allow(&mut self) -> bool {
        match &mut self.state {
            State::Closed => true,
            State::Open { .. } => false,
            State::Probing { left, .. } => {
                let allowed = *left > 0;
                *left = left.saturating_sub(1);
                allowed
            }
        }
    }

    /// A shadow call's outcome: `failed` for a timeout, an error or a 5xx.
    pub fn record(&mut self, failed: bool) {
        match &mut self.state {
            State::Closed => {
                self.outcomes += 1;
                self.failures += u64::from(failed);
            }
            State::Probing {
                failed: any, answered, ..
            } => {
                *any |= failed;
                *answered += 1;
            }
            State::Open { .. } => {}
        }
    }

    /// The root's tick: ends windows, cooldowns and probing rounds.
    pub fn tick(&mut self, now_s: u64) -> Option<Change> {
        let settings = self.settings;
        match self.state {
            State::Closed => {
                let start = *self.window_start_s.get_or_insert(now_s);
                if now_s.saturating_sub(start) < settings.window_s {
                    return None;
                }
                let (failures, outcomes) = (self.failures, self.outcomes);
                self.window_start_s = Some(now_s);
                self.outcomes = 0;
                self.failures = 0;
                let trips =
                    outcomes >= settings.min_calls.max(1) && failures as f64 >= settings.failure_rate * outcomes as f64;
                if !trips {
                    return None;
                }
                self.state = State::Open {
                    until_s: now_s.saturating_add(settings.cooldown_s),
                };
                Some(Change::Opened { failures, outcomes })
            }
            State::Open { until_s } if now_s >= until_s => {
                self.state = State::Probing {
                    left: settings.probes.max(1),
                    failed: false,
                    answered: 0,
                    since_s: now_s,
                };
                None
            }
            State::Open { .. } => None,
            State::Probing {
                failed: false,
                answered,
                ..
            } if answered >= settings.probes.max(1) => {
                self.state = State::Closed;
                self.window_start_s = Some(now_s);
                Some(Change::Closed)
            }
            State::Probing { failed, since_s, .. }
                if failed || now_s.saturating_sub(since_s) >= settings.cooldown_s =>
            {
                self.state = State::Open {
                    until_s: now_s.saturating_add(settings.cooldown_s),
                };
                Some(Change::Reopened)
            }
            State::Probing { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn run(breaker: &mut Breaker, from_s: u64, to_s: u64) -> Vec<Change> {
        (from_s..=to_s).filter_map(|t| breaker.tick(t)).collect()
    }

    #[test]
    fn a_backend_failing_most_calls_opens_the_circuit_and_a_healthy_one_closes_it() {
        let mut breaker = Breaker::new(Settings::default());
        breaker.tick(0);
        for i in 0..30 {
            assert!(breaker.allow());
            breaker.record(i % 3 != 0); // two thirds fail
        }
        assert_eq!(
            run(&mut breaker, 1, 10),
            [Change::Opened {
                failures: 20,
                outcomes: 30
            }]
        );
        assert!(breaker.is_open());
        assert!(!breaker.allow(), "skipped while open");
        run(&mut breaker, 11, 39);
        assert!(!breaker.allow(), "cooldown of 30 s");
        breaker.tick(40);
        // Probing: five requests through, the sixth waits.
        let allowed = (0..6).filter(|_| breaker.allow()).count();
        assert_eq!(allowed, 5);
        for _ in 0..5 {
            breaker.record(false);
        }
        assert_eq!(breaker.tick(41), Some(Change::Closed));
        assert!(!breaker.is_open(), "the backend is back");
        assert!(breaker.allow());
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let mut breaker = Breaker::new(Settings::default());
        breaker.tick(0);
        for _ in 0..20 {
            breaker.record(true);
        }
        run(&mut breaker, 1, 40);
        assert!(breaker.allow());
        breaker.record(true);
        assert_eq!(breaker.tick(41), Some(Change::Reopened));
        assert!(!breaker.allow());
        run(&mut breaker, 42, 70);
        assert!(!breaker.allow(), "a new cooldown from the failed probe");
        breaker.tick(71);
        assert!(breaker.allow());
    }

    #[test]
    fn few_calls_or_a_minority_of_failures_never_trip_it() {
        let mut breaker = Breaker::new(Settings::default());
        breaker.tick(0);
        for _ in 0..19 {
            breaker.record(true);
        }
        run(&mut breaker, 1, 10);
        assert!(!breaker.is_open(), "19 calls are under min_calls");
        for i in 0..100 {
            breaker.record(i % 10 == 0);
        }
        run(&mut breaker, 11, 20);
        assert!(!breaker.is_open(), "10% failing is not most");
    }

    #[test]
    fn probes_that_never_answer_end_the_round_as_a_failure() {
        let mut breaker = Breaker::new(Settings::default());
        breaker.tick(0);
        for _ in 0..20 {
            breaker.record(true);
        }
        run(&mut breaker, 1, 40);
        assert!((0..5).all(|_| breaker.allow()));
        run(&mut breaker, 41, 69);
        assert!(breaker.is_open() && !breaker.allow(), "still probing");
        breaker.tick(70);
        assert!(!breaker.allow(), "open again after a cooldown without answers");
        run(&mut breaker, 71, 100);
        assert!(breaker.allow(), "probing anew");
    }

    #[test]
    fn probing_waits_for_its_answers() {
        let mut breaker = Breaker::new(Settings::default());
        breaker.tick(0);
        for _ in 0..20 {
            breaker.record(true);
        }
        run(&mut breaker, 1, 40);
        assert!((0..5).all(|_| breaker.allow()));
        breaker.record(false);
        run(&mut breaker, 41, 45);
        assert!(breaker.is_open(), "four probes still out");
        assert!(!breaker.allow());
        for _ in 0..4 {
            breaker.record(false);
        }
        breaker.tick(46);
        assert!(!breaker.is_open());
    }
}
