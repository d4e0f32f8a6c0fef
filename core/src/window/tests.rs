#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn tally(shadowed: u64, matched: u64, unmatched: u64, failed: u64) -> Tally {
    Tally {
        shadowed,
        matched,
        unmatched,
        failed,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

#[test]
fn z_scores_match_the_normal_table() {
    assert!(close(z_score(0.95), 1.959_964), "{}", z_score(0.95));
    assert!(close(z_score(0.99), 2.575_829), "{}", z_score(0.99));
    assert!(close(z_score(0.90), 1.644_854), "{}", z_score(0.90));
    assert!(close(z_score(0.999), 3.290_527), "{}", z_score(0.999));
}

#[test]
fn twenty_of_twenty_is_not_a_hundred_percent() {
    let z = z_score(0.95);
    // Known values of the Wilson lower bound.
    assert!(
        close(wilson_lower_bound(20, 20, z), 0.838_9),
        "{}",
        wilson_lower_bound(20, 20, z)
    );
    assert!(
        close(wilson_lower_bound(99, 100, z), 0.945_5),
        "{}",
        wilson_lower_bound(99, 100, z)
    );
    assert!(close(wilson_lower_bound(0, 10, z), 0.0));
    assert_eq!(wilson_lower_bound(0, 0, z), 0.0);
    // More evidence at the same rate raises the bound.
    assert!(wilson_lower_bound(990, 1000, z) > wilson_lower_bound(99, 100, z));
    let rule = Rule::default();
    let few = evaluate(tally(20, 20, 0, 0), &rule, 0.99, 20);
    assert_eq!(few.match_rate, Some(1.0));
    assert_eq!(few.meets, Err(Short::MatchRate), "the bound, not the rate, is judged");
    let many = evaluate(tally(2000, 2000, 0, 0), &rule, 0.99, 20);
    assert_eq!(many.meets, Ok(()));
}

#[test]
fn samples_then_failures_then_the_rate_decide() {
    let rule = Rule::default();
    assert_eq!(
        evaluate(tally(50, 50, 0, 0), &rule, 0.9, 100).meets,
        Err(Short::Samples)
    );
    assert_eq!(
        evaluate(tally(0, 0, 0, 0), &rule, 0.0, 0).meets,
        Err(Short::Samples),
        "never on nothing"
    );
    // 6% of the shadowed failed: above the default 5%.
    assert_eq!(
        evaluate(tally(1000, 940, 0, 60), &rule, 0.9, 100).meets,
        Err(Short::Failures)
    );
    assert_eq!(evaluate(tally(1000, 950, 0, 50), &rule, 0.9, 100).meets, Ok(()));
    assert_eq!(
        evaluate(tally(1000, 800, 200, 0), &rule, 0.9, 100).meets,
        Err(Short::MatchRate)
    );
    let lenient = Rule {
        max_failure_rate: 0.5,
        ..rule
    };
    assert_eq!(evaluate(tally(1000, 600, 0, 400), &lenient, 0.9, 100).meets, Ok(()));
}

#[test]
fn the_first_reading_is_a_baseline_and_deltas_add_up() {
    let mut window = Window::new(600);
    window.observe(1_000, tally(500, 400, 50, 50));
    assert_eq!(
        window.tally(),
        Tally::default(),
        "history before the window is not in it"
    );
    window.observe(1_010, tally(510, 409, 50, 51));
    window.observe(1_020, tally(530, 429, 50, 51));
    assert_eq!(window.tally(), tally(30, 29, 0, 1));
}

#[test]
fn an_old_burst_of_mismatches_ages_out_of_the_window() {
    let mut window = Window::new(600);
    window.observe(0, Tally::default());
    // A burst of mismatches before the candidate's fix...
    window.observe(10, tally(100, 0, 100, 0));
    // ...then only matches, for longer than the window.
    for t in (20..=700).step_by(10) {
        window.observe(t, tally(100 + t, t, 100, 0));
    }
    let total = window.tally();
    assert_eq!(total.unmatched, 0, "{total:?}");
    assert!(total.matched >= 590, "{total:?}");
    // Memory is bounded by the slots, not the readings.
    assert!(window.slots.len() <= 61, "{}", window.slots.len());
}

#[test]
fn a_quiet_window_keeps_no_slots_and_a_burst_still_ages_out() {
    let mut window = Window::new(600);
    for t in (0..=1_200).step_by(5) {
        window.observe(t, Tally::default());
    }
    assert!(window.slots.is_empty(), "{}", window.slots.len());
    // One burst, then quiet: it stays in the window for the window's length.
    window.observe(1_205, tally(10, 0, 10, 0));
    for t in (1_210..=1_800).step_by(5) {
        window.observe(t, tally(10, 0, 10, 0));
    }
    assert_eq!(window.tally(), tally(10, 0, 10, 0));
    assert_eq!(window.slots.len(), 1);
    for t in (1_805..=1_830).step_by(5) {
        window.observe(t, tally(10, 0, 10, 0));
    }
    assert_eq!(window.tally(), Tally::default(), "aged out without a slot after it");
    assert!(window.slots.is_empty());
}

#[test]
fn a_counter_reset_counts_what_it_reads_as_new() {
    let mut window = Window::new(600);
    window.observe(0, tally(1000, 1000, 0, 0));
    window.observe(10, tally(5, 5, 0, 0));
    assert_eq!(window.tally(), tally(5, 5, 0, 0));
}

#[test]
fn ready_needs_the_rule_met_continuously_and_a_flap_starts_over() {
    let rule = Rule {
        ready_after_s: 60,
        ..Rule::default()
    };
    let mut window = Window::new(600);
    let mut t = 0;
    let mut matched = 0;
    window.observe(t, Tally::default());
    let step = |window: &mut Window, t: &mut u64, matched: &mut u64, unmatched: u64| {
        *t += 10;
        *matched += 1000;
        window.observe(*t, tally(*matched + unmatched, *matched, unmatched, 0));
        window.judge(*t, &rule, 0.9, 100).1
    };
    assert_eq!(step(&mut window, &mut t, &mut matched, 0), 0, "met from now");
    let mut held = 0;
    for _ in 0..6 {
        held = step(&mut window, &mut t, &mut matched, 0);
    }
    assert_eq!(held, 60);
    // A burst of mismatches breaks the rule: the wait starts again.
    assert_eq!(step(&mut window, &mut t, &mut matched, 50_000), 0);
    let (evaluation, held) = window.judge(t, &rule, 0.9, 100);
    assert_eq!((evaluation.meets, held), (Err(Short::MatchRate), 0));
}

#[test]
fn basis_points_round_down_and_stay_in_range() {
    assert_eq!(basis_points(0.98765), 9876);
    assert_eq!(basis_points(1.0), 10_000);
    assert_eq!(basis_points(-0.1), 0);
    assert_eq!(basis_points(f64::NAN), 0);
}

#[test]
fn latency_is_judged_only_when_a_ratio_is_set_and_no_data_does_not_meet_it() {
    let unset = Rule::default();
    assert!(latency_meets(&unset, None));
    assert!(latency_meets(&unset, Some(10.0)));
    let set = Rule {
        max_latency_ratio: Some(1.5),
        ..Rule::default()
    };
    assert!(latency_meets(&set, Some(1.5)));
    assert!(latency_meets(&set, Some(0.2)));
    assert!(!latency_meets(&set, Some(1.51)));
    assert!(!latency_meets(&set, None), "no latency observed is not fast enough");
}
