//! `watch`: guarded automation per operation. On every tick it reads the
//! configuration and Envoy's counters, and makes at most one change:
//!
//! - an operation (or group) in `shadow` that has been READY for
//!   `--ready-for` without a break is cut over, unless it (or a member of
//!   its group) sets `auto_promote: false`;
//! - an operation in `cutover` whose reverse-shadow comparisons since the
//!   watch saw it enter cutover fall below its floor (`--rollback-below`,
//!   else its `rollback_below`, else its `target_match_rate`) over at least `min_samples`, or whose
//!   failure rate exceeds `--max-failure-rate`, is rolled back (its group
//!   with it). A rollback goes first.
//!
//! With `--prometheus URL [--window W]` the fleet's verdict
//! ([`crate::fleet`]) is what must hold for `--ready-for`, and the rollback
//! floor is judged on the fleet's pooled window (choose W shorter than the
//! time since the cutover, or shadow-phase comparisons still weigh).
//!
//! Every change goes through the guarded, audited, confirmed path
//! (crate::change) with the evidence in its reason. Bounded by `--duration`
//! and `--max-changes`; SIGTERM or SIGINT ends it after the current step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_run_core::counters::Counter;
use parallel_run_core::readiness::Counts;
use parallel_run_core::{Mode, Plan};
use serde_json::json;

use crate::change::{self, Action};
use crate::cli::{Output, WatchArgs};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::live::{self, Live};
use crate::readiness::{EnvoyAdmin, Evidence, Source};
use crate::{groups, parse_admin, target_path, Run};

/// What the watch knows about one operation between ticks.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// When it was first seen READY in shadow, without a break since.
    pub ready_since: Option<Instant>,
    /// Its counters when the watch first saw it in cutover: the reverse
    /// shadow is judged on what came after.
    pub cutover_baseline: Option<Counts>,
}

/// One operation as seen on a tick.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub group: Option<String>,
    /// The mode in the file (what a change starts from).
    pub mode: Mode,
    pub evidence: Evidence,
    /// The operation's `auto_promote`: `Some(false)` is never cut over.
    pub auto_promote: Option<bool>,
    /// The operation's `rollback_below`; `--rollback-below` overrides it.
    pub rollback_below: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Promote { unit: String, why: String },
    Rollback { unit: String, why: String },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub ready_for: Duration,
    pub rollback_below: Option<f64>,
    pub max_failure_rate: f64,
    pub promote: bool,
    pub rollback: bool,
}

fn unit_of(seen: &Seen) -> String {
    seen.group
        .as_ref()
        .map_or_else(|| seen.id.clone(), |group| format!("group:{group}"))
}

/// Updates the tracks with this tick and picks at most one change.
pub fn decide(
    seen: &[Seen],
    tracks: &mut BTreeMap<String, Track>,
    now: Instant,
    settings: &Settings,
) -> Option<Decision> {
    for s in seen {
        let track = tracks.entry(s.id.clone()).or_default();
        if s.mode == Mode::Shadow && s.evidence.ready() {
            track.ready_since.get_or_insert(now);
        } else {
            track.ready_since = None;
        }
        if s.mode == Mode::Cutover && s.evidence.mode == Mode::Cutover {
            track.cutover_baseline.get_or_insert(s.evidence.counts);
        } else {
            track.cutover_baseline = None;
        }
    }
    if settings.rollback {
        for s in seen.iter().filter(|s| s.mode == Mode::Cutover) {
            let Some(baseline) = tracks.get(&s.id).and_then(|t| t.cutover_baseline) else {
                continue;
            };
            // The fleet's counts are already a window (--window): judged as they are.
            let delta = |c: Counter| match s.evidence.fleet {
                Some(_) => s.evidence.counts.get(c),
                None => s.evidence.counts.get(c).saturating_sub(baseline.get(c)),
            };
            let (matched, unmatched) = (delta(Counter::Matched), delta(Counter::Unmatched));
            let (failed, shadowed) = (delta(Counter::Failed), delta(Counter::Shadowed));
            let comparisons = matched + unmatched;
            let floor = settings
                .rollback_below
                .or(s.rollback_below)
                .unwrap_or(s.evidence.target_match_rate);
            let rate = (comparisons > 0).then(|| matched as f64 / comparisons as f64);
            let failure = (shadowed > 0).then(|| failed as f64 / shadowed as f64);
            let why = if comparisons >= s.evidence.min_samples.max(1) && rate.is_some_and(|r| r < floor) {
                Some(format!(
                    "{}: reverse-shadow match rate {:.1}% < floor {:.1}% over {comparisons} comparisons since the cutover",
                    s.id,
                    rate.unwrap_or(0.0) * 100.0,
                    floor * 100.0
                ))
            } else if shadowed >= s.evidence.min_samples.max(1)
                && failure.is_some_and(|f| f > settings.max_failure_rate)
            {
                Some(format!(
                    "{}: failure rate {:.1}% > {:.1}% over {shadowed} shadows since the cutover ({failed} failed)",
                    s.id,
                    failure.unwrap_or(0.0) * 100.0,
                    settings.max_failure_rate * 100.0
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Some(Decision::Rollback { unit: unit_of(s), why });
            }
        }
    }
    if settings.promote {
        for s in seen.iter().filter(|s| s.mode == Mode::Shadow) {
            // A group goes when every member has been ready long enough.
            let members: Vec<&Seen> = match &s.group {
                Some(group) => seen.iter().filter(|o| o.group.as_ref() == Some(group)).collect(),
                None => vec![s],
            };
            let held = |m: &Seen| {
                m.mode == Mode::Shadow
                    && m.auto_promote != Some(false)
                    && tracks
                        .get(&m.id)
                        .and_then(|t| t.ready_since)
                        .is_some_and(|since| now.duration_since(since) >= settings.ready_for)
            };
            if members.iter().all(|m| held(m)) {
                return Some(Decision::Promote {
                    unit: unit_of(s),
                    why: format!(
                        "{}: READY for {} s or more ({})",
                        unit_of(s),
                        settings.ready_for.as_secs(),
                        s.evidence.verdict
                    ),
                });
            }
        }
    }
    None
}

fn observe(plan: &Plan, source: &dyn Source, selected: &[String]) -> Result<Vec<Seen>> {
    let groups = groups::of(plan);
    Ok(plan
        .operations
        .iter()
        .filter(|op| selected.is_empty() || selected.contains(&op.id))
        .map(|op| Seen {
            id: op.id.clone(),
            group: groups.get(&op.id).cloned(),
            mode: op.mode,
            evidence: source.evidence(op),
            auto_promote: op.settings.auto_promote,
            rollback_below: op.settings.rollback_below,
        })
        .collect())
}

pub fn run(args: &WatchArgs, output: Output) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|err| Error::io(format!("cannot handle signals: {err}")))?;
    }
    let path = target_path(&args.target, "watch");
    let admin = parse_admin(&args.admin.admin)?;
    let fleet = crate::fleet::Fleet::from_args(&args.fleet)?;
    let settings = Settings {
        ready_for: args.ready_for,
        rollback_below: args.rollback_below,
        max_failure_rate: args.max_failure_rate,
        promote: !args.no_promote,
        rollback: !args.no_rollback,
    };
    let started = Instant::now();
    let mut tracks = BTreeMap::new();
    let mut changes = 0u32;
    let mut events = 0usize;
    let emit = |line: String, document: serde_json::Value| match output {
        Output::Text => println!("{line}"),
        Output::Json => println!("{document}"),
    };
    emit(
        format!(
            "watch {}: every {} s for at most {} s{}",
            path.display(),
            args.interval.as_secs_f64(),
            args.duration.as_secs(),
            if args.dry_run {
                " (dry run: nothing is written)"
            } else {
                ""
            }
        ),
        json!({"event": "start", "file": path.display().to_string(), "dry_run": args.dry_run}),
    );
    let mut selected: Option<Vec<String>> = None;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < args.duration {
        let tick = Instant::now();
        let step = (|| -> Result<Option<Decision>> {
            let doc = Document::read(&path)?;
            let plan = doc.plan()?;
            if selected.is_none() {
                let groups = groups::of(&plan);
                selected = Some(if args.operations.is_empty() {
                    Vec::new()
                } else {
                    change::resolve(&args.operations, &plan, &groups)?
                });
            }
            let filter = doc
                .ecds_name
                .clone()
                .unwrap_or_else(|| live::DEFAULT_FILTER_NAME.to_string());
            let selected = selected.as_deref().unwrap_or_default();
            let seen = match &fleet {
                Some(fleet) => {
                    let snapshot = fleet.read(&plan.operations, std::slice::from_ref(&plan.revision))?;
                    observe(&plan, &snapshot, selected)?
                }
                None => {
                    let live = Live::read(&admin, &filter)?;
                    let source = EnvoyAdmin {
                        live: &live,
                        url: admin.url(),
                    };
                    observe(&plan, &source, selected)?
                }
            };
            Ok(decide(&seen, &mut tracks, Instant::now(), &settings))
        })();
        match step {
            Err(err) if err.kind == crate::error::Kind::UnknownOperation => return Err(err),
            Err(err) => emit(
                format!("skipped a tick: {err}"),
                json!({"event": "error", "message": err.message}),
            ),
            Ok(None) => {}
            Ok(Some(decision)) => {
                let (action, unit, why, verb) = match &decision {
                    Decision::Promote { unit, why } => (Action::Cutover(vec![unit.clone()]), unit, why, "cut over"),
                    Decision::Rollback { unit, why } => (Action::Rollback(vec![unit.clone()]), unit, why, "roll back"),
                };
                events += 1;
                if args.dry_run {
                    emit(
                        format!("would {verb} {unit}: {why}"),
                        json!({"event": "would_change", "action": action.name(), "unit": unit, "why": why}),
                    );
                } else {
                    let guard = change::Guard {
                        reason: Some(format!("watch: {why}")),
                        ..change::Guard::default()
                    };
                    let wait = change::Wait {
                        enabled: true,
                        timeout: args.timeout,
                    };
                    let target = change::Target {
                        path: &path,
                        admin: &admin,
                        audit_log: args.target.audit_log.clone(),
                        fleet: fleet.clone(),
                    };
                    match change::run(&target, &action, &guard, &wait) {
                        Ok(report) => {
                            let outcome = report.error.as_ref().map_or("done".to_string(), |e| e.message.clone());
                            emit(
                                format!(
                                    "{verb} {unit}: {why}: {}",
                                    report.lines.last().cloned().unwrap_or_default()
                                ),
                                json!({"event": "change", "action": action.name(), "unit": unit, "why": why,
                                       "report": report.json, "outcome": outcome}),
                            );
                        }
                        Err(err) => emit(
                            format!("could not {verb} {unit}: {err}"),
                            json!({"event": "refused", "action": action.name(), "unit": unit, "message": err.message}),
                        ),
                    }
                    // The operation's history restarts with the new mode.
                    tracks.clear();
                }
                changes += 1;
                if args.max_changes.is_some_and(|max| changes >= max) {
                    break;
                }
            }
        }
        // Sleep out the interval, waking for a signal.
        while !stop.load(Ordering::Relaxed) && tick.elapsed() < args.interval && started.elapsed() < args.duration {
            std::thread::sleep(Duration::from_millis(50).min(args.interval));
        }
    }
    let why = if stop.load(Ordering::Relaxed) {
        "signal"
    } else if args.max_changes.is_some_and(|max| changes >= max) {
        "max changes"
    } else {
        "duration"
    };
    // Streamed output (one line, or one JSON document, per event): the
    // end is one more event.
    emit(
        format!("watch ended ({why}): {events} change(s)"),
        json!({"event": "end", "reason": why, "changes": events}),
    );
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallel_run_core::readiness::{self, Verdict};

    fn seen(id: &str, group: Option<&str>, mode: Mode, counts: Counts) -> Seen {
        let verdict = readiness::assess(&counts, mode, 0.9, 10);
        Seen {
            id: id.into(),
            group: group.map(String::from),
            mode,
            evidence: Evidence {
                operation: id.into(),
                mode,
                verdict: verdict.into(),
                counts,
                gauges: None,
                fleet: None,
                rule: Default::default(),
                target_match_rate: 0.9,
                min_samples: 10,
                source: "test".into(),
                window: "test".into(),
            },
            auto_promote: None,
            rollback_below: None,
        }
    }

    fn counts(matched: u64, unmatched: u64, failed: u64) -> Counts {
        Counts::default()
            .with(Counter::Matched, matched)
            .with(Counter::Unmatched, unmatched)
            .with(Counter::Failed, failed)
            .with(Counter::Shadowed, matched + unmatched + failed)
    }

    fn settings() -> Settings {
        Settings {
            ready_for: Duration::from_secs(60),
            rollback_below: None,
            max_failure_rate: 0.05,
            promote: true,
            rollback: true,
        }
    }

    #[test]
    fn ready_operations_are_promoted_after_holding_ready() {
        let mut tracks = BTreeMap::new();
        let t0 = Instant::now();
        let ready = [seen("a", None, Mode::Shadow, counts(20, 0, 0))];
        assert_eq!(decide(&ready, &mut tracks, t0, &settings()), None);
        assert_eq!(
            decide(&ready, &mut tracks, t0 + Duration::from_secs(30), &settings()),
            None
        );
        // A flap resets the clock.
        let flap = [seen("a", None, Mode::Shadow, counts(20, 10, 0))];
        assert!(!flap[0].evidence.ready());
        decide(&flap, &mut tracks, t0 + Duration::from_secs(40), &settings());
        assert_eq!(
            decide(&ready, &mut tracks, t0 + Duration::from_secs(61), &settings()),
            None
        );
        assert_eq!(
            decide(&ready, &mut tracks, t0 + Duration::from_secs(102), &settings()),
            None
        );
        let decision = decide(&ready, &mut tracks, t0 + Duration::from_secs(122), &settings());
        assert!(
            matches!(&decision, Some(Decision::Promote { unit, .. }) if unit == "a"),
            "{decision:?}"
        );
        let off = Settings {
            promote: false,
            ..settings()
        };
        assert_eq!(decide(&ready, &mut tracks, t0 + Duration::from_secs(200), &off), None);
    }

    #[test]
    fn per_operation_auto_promote_and_rollback_below_are_read_and_the_flag_overrides() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(61);
        // auto_promote: false is never cut over, READY or not; in a group it holds the group.
        let mut tracks = BTreeMap::new();
        let mut held = seen("a", None, Mode::Shadow, counts(20, 0, 0));
        held.auto_promote = Some(false);
        decide(std::slice::from_ref(&held), &mut tracks, t0, &settings());
        assert_eq!(
            decide(std::slice::from_ref(&held), &mut tracks, later, &settings()),
            None
        );
        let mut tracks = BTreeMap::new();
        let mut b = seen("b", Some("g"), Mode::Shadow, counts(20, 0, 0));
        b.auto_promote = Some(false);
        let group = [seen("a", Some("g"), Mode::Shadow, counts(20, 0, 0)), b];
        decide(&group, &mut tracks, t0, &settings());
        assert_eq!(decide(&group, &mut tracks, later, &settings()), None);
        // auto_promote: true goes as before.
        let mut tracks = BTreeMap::new();
        held.auto_promote = Some(true);
        decide(std::slice::from_ref(&held), &mut tracks, t0, &settings());
        assert!(decide(std::slice::from_ref(&held), &mut tracks, later, &settings()).is_some());

        // rollback_below 0.8: 50 of 60 (83.3%) after the cutover is above its floor, below the target 0.9.
        let mut tracks = BTreeMap::new();
        let with_floor = |c: Counts| {
            let mut s = seen("c", None, Mode::Cutover, c);
            s.rollback_below = Some(0.8);
            [s]
        };
        decide(&with_floor(counts(0, 0, 0)), &mut tracks, t0, &settings());
        assert_eq!(
            decide(&with_floor(counts(50, 10, 0)), &mut tracks, t0, &settings()),
            None
        );
        // --rollback-below overrides the operation's.
        let flag = Settings {
            rollback_below: Some(0.9),
            ..settings()
        };
        let decision = decide(&with_floor(counts(50, 10, 0)), &mut tracks, t0, &flag);
        assert!(matches!(decision, Some(Decision::Rollback { .. })), "{decision:?}");
    }

    #[test]
    fn a_group_is_promoted_when_every_member_held_ready() {
        let mut tracks = BTreeMap::new();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(61);
        let one_ready = [
            seen("a", Some("g"), Mode::Shadow, counts(20, 0, 0)),
            seen("b", Some("g"), Mode::Shadow, counts(2, 0, 0)),
        ];
        decide(&one_ready, &mut tracks, t0, &settings());
        assert_eq!(decide(&one_ready, &mut tracks, later, &settings()), None);
        let both = [
            seen("a", Some("g"), Mode::Shadow, counts(20, 0, 0)),
            seen("b", Some("g"), Mode::Shadow, counts(20, 0, 0)),
        ];
        decide(&both, &mut tracks, later, &settings());
        let decision = decide(&both, &mut tracks, later + Duration::from_secs(61), &settings());
        assert!(
            matches!(&decision, Some(Decision::Promote { unit, .. }) if unit == "group:g"),
            "{decision:?}"
        );
    }

    #[test]
    fn a_cutover_is_rolled_back_on_what_came_after_it() {
        let mut tracks = BTreeMap::new();
        let t0 = Instant::now();
        // 100 bad comparisons from the shadow phase do not count against it.
        let start = [seen("c", None, Mode::Cutover, counts(0, 100, 0))];
        assert_eq!(decide(&start, &mut tracks, t0, &settings()), None);
        let good = [seen("c", None, Mode::Cutover, counts(50, 100, 0))];
        assert_eq!(decide(&good, &mut tracks, t0, &settings()), None);
        let bad = [seen("c", None, Mode::Cutover, counts(50, 110, 0))];
        let decision = decide(&bad, &mut tracks, t0, &settings());
        assert!(
            matches!(&decision, Some(Decision::Rollback { why, .. }) if why.starts_with("c: reverse-shadow match rate 83.3% < floor 90.0% over 60")),
            "{decision:?}"
        );
        // Failures alone break the floor too.
        let mut tracks = BTreeMap::new();
        decide(&start, &mut tracks, t0, &settings());
        let failing = [seen("c", None, Mode::Cutover, counts(9, 100, 2))];
        let decision = decide(&failing, &mut tracks, t0, &settings());
        assert!(
            matches!(&decision, Some(Decision::Rollback { why, .. }) if why.contains("failure rate 18.2% > 5.0% over 11 shadows")),
            "{decision:?}"
        );
        assert_eq!(
            failing[0].evidence.verdict,
            Verdict::BelowTarget {
                rate: 9.0 / 109.0,
                target: 0.9
            }
            .into()
        );
    }
}
