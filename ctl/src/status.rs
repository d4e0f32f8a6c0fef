//! `status`: every configured operation's live counters, the mode Envoy
//! runs it in and its readiness verdict (the filter's windowed rule, or the
//! cumulative fallback for an older filter: [`crate::readiness`]), read from
//! Envoy's admin endpoint; says so when the file and Envoy disagree, and
//! loudly when Envoy does not route an operation where the filter chose.
//! And `wait`: until Envoy runs a revision.

use std::collections::{BTreeMap, BTreeSet};

use parallel_run_core::counters::{self, revision_fingerprint, Counter};
use parallel_run_core::readiness::{self, Counts};
use parallel_run_core::{Mode, Operation, Plan};
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::audit;
use crate::change;
use crate::cli::{StatusArgs, WaitCommandArgs};
use crate::error::{Error, Kind};
use crate::live::{self, Live, STATS_PREFIX};
use crate::readiness::{window_json, Basis, Readiness, WindowGauges};
use crate::{groups, parse_admin, read_target, report, Printed, Run};

pub fn run(args: &StatusArgs) -> Run {
    let doc = read_target(&args.target, "status")?;
    let plan = doc.plan()?;
    let admin = parse_admin(&args.admin.admin)?;
    let groups = groups::of(&plan);
    let selected = if args.operations.is_empty() {
        plan.operations.iter().map(|op| op.id.clone()).collect()
    } else {
        change::resolve(&args.operations, &plan, &groups)?
    };
    if let Some(url) = &args.fleet.prometheus {
        return fleet_status(args, url, &doc, &plan, &selected, &groups);
    }
    let filter_name = doc
        .ecds_name
        .clone()
        .unwrap_or_else(|| live::DEFAULT_FILTER_NAME.to_string());
    let live = match Live::read(&admin, &filter_name) {
        Ok(live) => live,
        Err(err) if args.exit_code => return Err(Error::new(Kind::UnreachableStatus, err.message)),
        Err(err) => return Err(err),
    };
    let target = args
        .target
        .audit_log
        .clone()
        .or_else(|| doc.path.as_ref().map(|p| audit::path_for(p)));
    let records = target.and_then(|log| audit::read(&log).ok()).unwrap_or_default();
    let status = Status::new(&plan, &live.stats, &selected, &groups);
    let label = doc.label();
    let mut printed = Printed {
        lines: status.lines(&admin, &label, &plan, &live, &records),
        json: status.to_json(&admin, &label, &plan, &live, &records),
    };
    crate::set_field(&mut printed.json, "sha256", json!(doc.sha256()));
    crate::set_field(&mut printed.json, "format", json!(doc.format.name()));
    let error = if args.exit_code {
        // Named operations must each be READY; without names, every
        // operation being compared (shadow, cutover) must be.
        let named = !args.operations.is_empty();
        let not_ready: Vec<&str> = status
            .rows
            .iter()
            .filter(|row| named || row.verdict.shadowed())
            .filter(|row| !row.verdict.is_ready())
            .map(|row| row.operation.id.as_str())
            .collect();
        (!not_ready.is_empty())
            .then(|| Error::new(Kind::NotReadyStatus, format!("not ready: {}", not_ready.join(", "))))
    } else {
        None
    };
    Ok((printed, error))
}

/// `status --prometheus URL`: the fleet verdict ([`crate::fleet`]).
fn fleet_status(
    args: &StatusArgs,
    url: &str,
    doc: &crate::document::Document,
    plan: &Plan,
    selected: &[String],
    groups: &BTreeMap<String, String>,
) -> Run {
    use crate::fleet::{self, status as table};
    let prometheus = crate::prometheus::Prometheus::parse(url).map_err(Error::io)?;
    let window_s = fleet::window_seconds(args.fleet.window)?;
    let log = args
        .target
        .audit_log
        .clone()
        .or_else(|| doc.path.as_ref().map(|p| audit::path_for(p)));
    let records = log.and_then(|log| audit::read(&log).ok()).unwrap_or_default();
    let mut names: Vec<String> = records.iter().map(|r| r.new_revision.clone()).collect();
    names.push(plan.revision.clone());
    let snapshot = match fleet::Snapshot::read(&prometheus, window_s, &plan.operations, &names) {
        Ok(snapshot) => snapshot,
        Err(err) if args.exit_code => return Err(Error::new(Kind::UnreachableStatus, err.message)),
        Err(err) => return Err(err),
    };
    let rows = table::rows(&snapshot, plan, selected, groups);
    let label = doc.label();
    let mut printed = Printed {
        lines: table::lines(&snapshot, &label, plan, &rows),
        json: table::to_json(&snapshot, &label, plan, &rows),
    };
    crate::set_field(&mut printed.json, "sha256", json!(doc.sha256()));
    crate::set_field(&mut printed.json, "format", json!(doc.format.name()));
    let error = args.exit_code.then(|| {
        let named = !args.operations.is_empty();
        let not_ready: Vec<&str> = rows
            .iter()
            .filter(|row| named || row.evidence.verdict.shadowed())
            .filter(|row| !row.evidence.ready())
            .map(|row| row.operation.id.as_str())
            .collect();
        (!not_ready.is_empty())
            .then(|| Error::new(Kind::NotReadyStatus, format!("not ready: {}", not_ready.join(", "))))
    });
    Ok((printed, error.flatten()))
}

/// `wait [--revision R]`: until the revision gauge shows R (default: the file's).
pub fn wait(args: &WaitCommandArgs) -> Run {
    let admin = parse_admin(&args.admin.admin)?;
    let (revision, filter_name) = match (&args.revision, &args.target.config, &args.target.ecds) {
        (Some(revision), None, None) => (revision.clone(), live::DEFAULT_FILTER_NAME.to_string()),
        (revision, _, _) => {
            let doc = read_target(&args.target, "wait")?;
            let plan = doc.plan()?;
            (
                revision.clone().unwrap_or(plan.revision),
                doc.ecds_name.unwrap_or_else(|| live::DEFAULT_FILTER_NAME.to_string()),
            )
        }
    };
    let before = Live::read(&admin, &filter_name)?;
    let outcome = live::wait(&admin, &before, &revision, args.timeout);
    let json = json!({
        "revision": revision,
        "revision_fingerprint": revision_fingerprint(&revision),
        "outcome": outcome.name(),
    });
    let lines = if outcome.ok() {
        vec![format!("Envoy runs revision {revision:?}")]
    } else {
        Vec::new()
    };
    let error = (!outcome.ok()).then(|| {
        Error::new(
            if matches!(outcome, live::Outcome::Refused { .. }) {
                Kind::Refused
            } else {
                Kind::NotConfirmed
            },
            format!(
                "revision {revision:?} not active after {} s ({})",
                args.timeout.as_secs(),
                outcome.name()
            ),
        )
    });
    Ok((Printed { lines, json }, error))
}

/// One configured operation and its counters.
struct Row<'a> {
    operation: &'a Operation,
    /// The mode Envoy runs it in (its mode gauge); `None` when Envoy has no gauge for it.
    live_mode: Option<Mode>,
    group: Option<String>,
    counts: Counts,
    /// Whether Envoy has any counter of this operation: it has not when the
    /// configuration it runs is not the one read (e.g. Envoy refused it).
    in_envoy: bool,
    verdict: Readiness,
    /// The filter's window gauges; `None` from an older filter.
    gauges: Option<WindowGauges>,
    /// The current revision's fields that differed, by count (highest
    /// first), then field ([`per_field`]).
    differs_most: Vec<(String, u64)>,
    /// Fields that found no `max_diff_paths` slot ([`overflow`]).
    overflow: u64,
    /// Fields whose `noise_path.<field>` gauge is set: learned noise now.
    noise: Vec<String>,
}

/// The per-field stats of one operation, from all stats by name: the
/// fields that differed, most first, and the fields whose
/// `noise_path.<field>` gauge is not 0. `operation_prefix` is
/// `wasmcustom.parallel_run.operation.<id>.`; ids hold no dot, and the filter
/// writes a field's dots as `_`, so what follows `unmatched_path.` is the
/// whole field.
///
/// The fields that differed are the current revision's list, from the
/// `unmatched_path_current.<field>` gauges (a new revision sets the old
/// list's to 0); from an older filter without them, the cumulative
/// `unmatched_path.<field>` counters.
fn per_field(operation_prefix: &str, stats: &BTreeMap<String, u64>) -> (Vec<(String, u64)>, Vec<String>) {
    let mut cumulative = Vec::new();
    let mut current = Vec::new();
    let mut has_current = false;
    let mut noise = Vec::new();
    let own = stats
        .range::<str, _>((std::ops::Bound::Included(operation_prefix), std::ops::Bound::Unbounded))
        .map_while(|(name, &value)| Some((name.strip_prefix(operation_prefix)?, value)));
    for (rest, value) in own {
        if let Some(field) = rest.strip_prefix(DIFF_PATH_CURRENT) {
            has_current = true;
            if value > 0 {
                current.push((field.to_string(), value));
            }
        } else if rest == OVERFLOW_CURRENT {
            has_current = true;
        } else if value == 0 {
            continue;
        } else if let Some(field) = rest.strip_prefix(DIFF_PATH) {
            cumulative.push((field.to_string(), value));
        } else if let Some(field) = rest.strip_prefix(NOISE_PATH) {
            noise.push(field.to_string());
        }
    }
    let mut differs = if has_current { current } else { cumulative };
    differs.sort_by(|(a_field, a), (b_field, b)| b.cmp(a).then_with(|| a_field.cmp(b_field)));
    (differs, noise)
}

/// Fields beyond `max_diff_paths`: since the current revision began (the
/// gauge), or since Envoy started from an older filter (the counter).
fn overflow(operation_prefix: &str, stats: &BTreeMap<String, u64>, counts: &Counts) -> u64 {
    stats
        .get(&format!("{operation_prefix}{OVERFLOW_CURRENT}"))
        .copied()
        .unwrap_or_else(|| counts.get(Counter::DiffPathsOverflow))
}

/// How many fields the `differs most in` line names.
const TOP_FIELDS: usize = 3;
const DIFF_PATH: &str = "unmatched_path.";
const DIFF_PATH_CURRENT: &str = "unmatched_path_current.";
const OVERFLOW_CURRENT: &str = "unmatched_path_overflow_current";
const NOISE_PATH: &str = "noise_path.";

struct Status<'a> {
    rows: Vec<Row<'a>>,
    unknown_operation_requests: u64,
    /// Operations Envoy has counters for that the configuration does not name.
    not_configured: Vec<String>,
}

impl<'a> Status<'a> {
    fn new(
        plan: &'a Plan,
        stats: &BTreeMap<String, u64>,
        selected: &[String],
        groups: &BTreeMap<String, String>,
    ) -> Status<'a> {
        let stat = |name: String| stats.get(&format!("{STATS_PREFIX}{name}")).copied();
        let operation_prefix = format!("{STATS_PREFIX}{}.operation.", counters::PREFIX);
        let rows = plan
            .operations
            .iter()
            .filter(|operation| selected.contains(&operation.id))
            .map(|operation| {
                let live_mode = stat(counters::mode_gauge(&operation.id)).and_then(crate::transition::from_code);
                let (counts, in_envoy) = crate::readiness::counts(stats, &operation.id);
                // Judged in the mode Envoy runs, whatever the file says.
                let mode = live_mode.unwrap_or(operation.mode);
                let (verdict, gauges) = Readiness::judge(stats, operation, mode, &counts);
                let own_prefix = format!("{operation_prefix}{}.", operation.id);
                let (differs_most, noise) = per_field(&own_prefix, stats);
                let overflow = overflow(&own_prefix, stats, &counts);
                Row {
                    operation,
                    live_mode,
                    group: groups.get(&operation.id).cloned(),
                    counts,
                    in_envoy,
                    verdict,
                    gauges,
                    differs_most,
                    overflow,
                    noise,
                }
            })
            .collect();
        let configured: BTreeSet<&str> = plan.operations.iter().map(|op| op.id.as_str()).collect();
        let not_configured: BTreeSet<String> = stats
            .keys()
            // Ids hold no dots; what follows the first one may (unmatched_path.<field>).
            .filter_map(|name| name.strip_prefix(&operation_prefix)?.split_once('.'))
            .map(|(id, _)| id)
            .filter(|id| !configured.contains(id))
            .map(String::from)
            .collect();
        Status {
            rows,
            unknown_operation_requests: stat(counters::UNKNOWN_OPERATION_REQUESTS.to_string()).unwrap_or(0),
            not_configured: not_configured.into_iter().collect(),
        }
    }

    fn lines(&self, admin: &Admin, label: &str, plan: &Plan, live: &Live, records: &[audit::Record]) -> Vec<String> {
        let mut lines = vec![format!("Envoy {}, {label}: {}", admin.url(), report::headline(plan))];
        lines.push(match live.revision_fingerprint() {
            Some(_) if live.runs(&plan.revision) => format!("live: Envoy runs this revision ({:?})", plan.revision),
            Some(_) => format!("live: {}", change::identify(live, records)),
            None => {
                "live: the filter exports no revision gauge (an older build?): modes below are the file's".to_string()
            }
        });
        lines.push(self.basis_line());
        let header = [
            "ID",
            "MODE",
            "REQUESTS",
            "SHADOWED",
            "MATCHED",
            "UNMATCHED",
            "FAILED",
            "ABANDONED",
            "SKIPPED",
            "IN-FLIGHT",
            "RATE",
            "TARGET",
            "VERDICT",
        ]
        .map(String::from)
        .to_vec();
        let mut table = vec![header];
        table.extend(self.rows.iter().map(|row| {
            let c = &row.counts;
            vec![
                row.operation.id.clone(),
                row.live_mode.unwrap_or(row.operation.mode).as_str().to_string(),
                c.get(Counter::Requests).to_string(),
                c.get(Counter::Shadowed).to_string(),
                c.get(Counter::Matched).to_string(),
                c.get(Counter::Unmatched).to_string(),
                c.get(Counter::Failed).to_string(),
                c.get(Counter::Abandoned).to_string(),
                c.skipped().to_string(),
                c.in_flight().to_string(),
                c.match_rate().map_or_else(|| "-".to_string(), readiness::percent),
                target_percent(row.operation.settings.target_match_rate),
                row.verdict.to_string(),
            ]
        }));
        // Id, mode and verdict left-aligned; the numbers right-aligned.
        lines.extend(align(&table, |column| !matches!(column, 0 | 1 | 12)));
        for row in &self.rows {
            if let Readiness::NotRouted { mismatches } = row.verdict {
                lines.push(format!(
                    "{} NOT ROUTED: {mismatches} requests went to another cluster than the filter chose; fix the route to honour the route header (cluster_header) before any cutover",
                    row.operation.id
                ));
            }
            lines.extend(field_lines(row));
        }
        let missing: Vec<&str> = self
            .rows
            .iter()
            .filter(|row| !row.in_envoy)
            .map(|row| row.operation.id.as_str())
            .collect();
        if live.revision_fingerprint().is_some() && !live.runs(&plan.revision) {
            lines.push(format!(
                "note: Envoy does not run {label}'s revision {:?} (fingerprint {}): the modes above are what Envoy runs; the file's did not go live (refused, or not loaded yet?)",
                plan.revision,
                revision_fingerprint(&plan.revision)
            ));
        }
        let differ: Vec<String> = self
            .rows
            .iter()
            .filter_map(|row| {
                let live = row.live_mode?;
                (live != row.operation.mode).then(|| {
                    format!(
                        "{} runs in {}, the file says {}",
                        row.operation.id,
                        live.as_str(),
                        row.operation.mode.as_str()
                    )
                })
            })
            .collect();
        if !differ.is_empty() {
            lines.push(format!("note: Envoy and {label} disagree: {}", differ.join("; ")));
        }
        if !missing.is_empty() {
            lines.push(format!(
                "note: Envoy has no counters for {}: it does not run this configuration (refused, or not loaded yet?)",
                missing.join(", ")
            ));
        }
        if !self.not_configured.is_empty() {
            lines.push(format!(
                "note: Envoy has counters for operations not in this configuration: {}",
                self.not_configured.join(", ")
            ));
        }
        lines.push(format!(
            "requests matching no operation: {}",
            self.unknown_operation_requests
        ));
        lines
    }

    fn to_json(&self, admin: &Admin, label: &str, plan: &Plan, live: &Live, records: &[audit::Record]) -> Value {
        let operations: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let (op, c) = (row.operation, &row.counts);
                let all: serde_json::Map<String, Value> = Counter::ALL
                    .iter()
                    .map(|&counter| (counter.name().to_string(), json!(c.get(counter))))
                    .collect();
                json!({
                    "id": op.id,
                    "mode": row.live_mode.unwrap_or(op.mode).as_str(),
                    "live_mode": row.live_mode.map(Mode::as_str),
                    "file_mode": op.mode.as_str(),
                    "group": row.group,
                    "requests": c.get(Counter::Requests),
                    "shadowed": c.get(Counter::Shadowed),
                    "matched": c.get(Counter::Matched),
                    "unmatched": c.get(Counter::Unmatched),
                    "failed": c.get(Counter::Failed),
                    "abandoned": c.get(Counter::Abandoned),
                    "skipped": c.skipped(),
                    "in_flight": c.in_flight(),
                    "comparisons": c.comparisons(),
                    "match_rate": c.match_rate(),
                    "target_match_rate": op.settings.target_match_rate,
                    "min_samples": op.settings.min_samples,
                    "verdict": row.verdict.name(),
                    "summary": row.verdict.to_string(),
                    "ready": row.verdict.is_ready(),
                    "basis": row.basis().name(),
                    "window": row.gauges.as_ref().map(|g| window_json(g, &op.settings.readiness)),
                    "routing_mismatch": c.get(Counter::RoutingMismatch),
                    "routed": c.get(Counter::RoutingMismatch) == 0,
                    "in_envoy": row.in_envoy,
                    "counters": all,
                    "differs_most": row
                        .differs_most
                        .iter()
                        .map(|(field, count)| json!({"field": field, "count": count}))
                        .collect::<Vec<Value>>(),
                    "differs_most_overflow": row.overflow,
                    "noise": row.noise,
                })
            })
            .collect();
        let live_fp = live.revision_fingerprint();
        json!({
            "admin": admin.url(),
            "config": label,
            "revision": plan.revision,
            "live": {
                "revision_fingerprint": live_fp,
                "runs_file_revision": live.runs(&plan.revision),
                "revision": live_fp.and_then(|fp| records.iter().rev()
                    .find(|r| revision_fingerprint(&r.new_revision) == fp)
                    .map(|r| r.new_revision.clone())
                    .or_else(|| (revision_fingerprint(&plan.revision) == fp).then(|| plan.revision.clone()))),
                "ecds": live.ecds_json(),
            },
            "operations": operations,
            "unknown_operation_requests": self.unknown_operation_requests,
            "not_configured": self.not_configured,
        })
    }
}

impl Row<'_> {
    fn basis(&self) -> Basis {
        if self.gauges.is_some() {
            Basis::Window
        } else {
            Basis::Cumulative
        }
    }
}

impl Status<'_> {
    /// Which rule the verdicts come from.
    fn basis_line(&self) -> String {
        let cumulative: Vec<&str> = self
            .rows
            .iter()
            .filter(|row| row.in_envoy && row.basis() == Basis::Cumulative)
            .map(|row| row.operation.id.as_str())
            .collect();
        let windowed = self.rows.iter().any(|row| row.basis() == Basis::Window);
        match (windowed, cumulative.is_empty()) {
            (true, true) => "readiness: the filter's windowed rule (its ready gauge; evidence from the window gauges)"
                .to_string(),
            (true, false) => format!(
                "readiness: the filter's windowed rule; cumulative counters since Envoy started for {} (no window gauges)",
                cumulative.join(", ")
            ),
            (false, _) => "readiness: cumulative counters since Envoy started (the filter exports no window gauges: an older build?)"
                .to_string(),
        }
    }
}

/// What differs most in an operation, and its learned noise: a line each,
/// when there is any.
fn field_lines(row: &Row) -> Vec<String> {
    let id = &row.operation.id;
    let mut lines = Vec::new();
    let overflow = row.overflow;
    if !row.differs_most.is_empty() || overflow > 0 {
        let top: Vec<String> = row
            .differs_most
            .iter()
            .take(TOP_FIELDS)
            .map(|(field, count)| format!("{field} {count}"))
            .collect();
        let mut text = top.join(", ");
        if overflow > 0 {
            let space = if text.is_empty() { "" } else { " " };
            text.push_str(&format!("{space}(+{overflow} in fields beyond max_diff_paths)"));
        }
        lines.push(format!("{id} differs most in: {text}"));
    }
    if !row.noise.is_empty() {
        lines.push(format!("{id} noise: {}", row.noise.join(", ")));
    }
    lines
}

/// A target as a percentage with as few decimals (one to four) as show it
/// exactly: `95.0%`, `99.95%`.
fn target_percent(fraction: f64) -> String {
    let percent = fraction * 100.0;
    (1..=4)
        .map(|decimals| format!("{percent:.decimals$}"))
        .find(|text| text.parse::<f64>().is_ok_and(|p| (p - percent).abs() < 1e-9))
        .map_or_else(|| readiness::percent(fraction), |text| format!("{text}%"))
}

/// Columns padded to their widest cell; `right(column)` right-aligns.
pub fn align(rows: &[Vec<String>], right: impl Fn(usize) -> bool) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(column) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(column, (cell, &w))| {
                    if right(column) {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"revision":"r7","legacy":{"cluster":"legacy"},"candidate":{"cluster":"candidate"},
        "defaults":{"mode":"shadow","min_samples":10,"target_match_rate":0.95},
        "operations":[{"id":"getReturn","method":"GET","path":"/returns/{id}"},
                      {"id":"listReturns","method":"GET","path":"/returns","target_match_rate":0.9995},
                      {"id":"createReturn","method":"POST","path":"/returns","mode":"legacy"}]}"#;

    fn ids(plan: &Plan) -> Vec<String> {
        plan.operations.iter().map(|op| op.id.clone()).collect()
    }

    fn live_of(stats: &BTreeMap<String, u64>) -> Live {
        Live {
            stats: stats.clone(),
            filter_name: "parallel-run".into(),
        }
    }

    fn stats(entries: &[(&str, &str, u64)]) -> BTreeMap<String, u64> {
        entries
            .iter()
            .map(|(id, counter, value)| (format!("wasmcustom.parallel_run.operation.{id}.{counter}"), *value))
            .chain([("wasmcustom.parallel_run.unknown_operation.requests".to_string(), 4)])
            .collect()
    }

    #[test]
    fn one_line_per_operation_with_counters_and_verdict() {
        let plan = Plan::parse(CONFIG.as_bytes()).unwrap();
        let stats = stats(&[
            ("getReturn", "requests", 25),
            ("getReturn", "shadowed", 22),
            ("getReturn", "matched", 18),
            ("getReturn", "unmatched", 2),
            ("getReturn", "failed", 1),
            ("getReturn", "skipped_sampled_out", 2),
            ("getReturn", "skipped_overload", 1),
            ("listReturns", "requests", 3),
            ("listReturns", "shadowed", 3),
            ("listReturns", "matched", 3),
            ("removedOp", "requests", 9),
        ]);
        let admin = Admin::parse("127.0.0.1:9901").unwrap();
        let lines = Status::new(&plan, &stats, &ids(&plan), &BTreeMap::new()).lines(
            &admin,
            "c.json",
            &plan,
            &live_of(&stats),
            &[],
        );
        assert_eq!(
            lines,
            [
                "Envoy http://127.0.0.1:9901, c.json: revision \"r7\", 3 operations",
                "live: the filter exports no revision gauge (an older build?): modes below are the file's",
                "readiness: cumulative counters since Envoy started (the filter exports no window gauges: an older build?)",
                "ID            MODE    REQUESTS  SHADOWED  MATCHED  UNMATCHED  FAILED  ABANDONED  SKIPPED  IN-FLIGHT    RATE  TARGET  VERDICT",
                "getReturn     shadow        25        22       18          2       1          0        3          1   90.0%   95.0%  below target 90.0% < 95.0%",
                "listReturns   shadow         3         3        3          0       0          0        0          0  100.0%  99.95%  collecting 3/10",
                "createReturn  legacy         0         0        0          0       0          0        0          0       -   95.0%  not shadowed",
                "note: Envoy has no counters for createReturn: it does not run this configuration (refused, or not loaded yet?)",
                "note: Envoy has counters for operations not in this configuration: removedOp",
                "requests matching no operation: 4",
            ]
        );
    }

    #[test]
    fn json_has_the_numbers_and_the_verdict() {
        let plan = Plan::parse(CONFIG.as_bytes()).unwrap();
        let stats = stats(&[("getReturn", "shadowed", 10), ("getReturn", "matched", 10)]);
        let admin = Admin::parse("http://127.0.0.1:9901").unwrap();
        let document = Status::new(&plan, &stats, &ids(&plan), &BTreeMap::new()).to_json(
            &admin,
            "c.json",
            &plan,
            &live_of(&stats),
            &[],
        );
        assert_eq!(document["revision"], "r7");
        assert_eq!(document["unknown_operation_requests"], 4);
        let get = &document["operations"][0];
        assert_eq!(get["id"], "getReturn");
        assert_eq!(get["verdict"], "ready");
        assert_eq!(get["summary"], "READY (100.0% >= 95.0% over 10 comparisons)");
        assert_eq!(get["match_rate"], 1.0);
        assert_eq!(get["in_flight"], 0);
        assert_eq!(get["counters"]["matched"], 10);
        assert_eq!(get["counters"]["skipped_overload"], 0);
        assert_eq!(document["operations"][1]["match_rate"], Value::Null);
        assert_eq!(document["operations"][1]["in_envoy"], false);
    }

    #[test]
    fn the_window_gauges_judge_and_a_routing_mismatch_is_not_routed() {
        let plan = Plan::parse(CONFIG.as_bytes()).unwrap();
        let window = |id: &'static str, ready: u64| {
            [
                (id, "window_comparisons", 40),
                (id, "window_matched", 40),
                (id, "match_rate_bp", 10_000),
                (id, "match_rate_lower_bp", 9123),
                (id, "ready", ready),
                (id, "ready_for_s", 12),
                (id, "window_s", 600),
                (id, "target_match_rate_bp", 9000),
                (id, "min_samples", 10),
                (id, "max_failure_rate_bp", 500),
                (id, "matched", 40),
                (id, "shadowed", 40),
            ]
        };
        let mut entries: Vec<(&str, &str, u64)> = window("getReturn", 1).to_vec();
        entries.extend(window("listReturns", 1));
        entries.push(("listReturns", "routing_mismatch", 2));
        let stats = stats(&entries);
        let admin = Admin::parse("127.0.0.1:9901").unwrap();
        let status = Status::new(&plan, &stats, &ids(&plan), &BTreeMap::new());
        let lines = status.lines(&admin, "c.json", &plan, &live_of(&stats), &[]);
        assert_eq!(
            lines[2],
            "readiness: the filter's windowed rule (its ready gauge; evidence from the window gauges)"
        );
        assert!(
            lines[4].ends_with("READY (lower bound 91.2% >= 90.0% over 40 comparisons in 600 s, for 12 s)"),
            "{}",
            lines[4]
        );
        assert!(lines[5].contains("NOT ROUTED (2 routing_mismatch"), "{}", lines[5]);
        assert!(lines
            .iter()
            .any(|l| l.starts_with("listReturns NOT ROUTED: 2 requests")));
        let document = status.to_json(&admin, "c.json", &plan, &live_of(&stats), &[]);
        let get = &document["operations"][0];
        assert_eq!(get["basis"], "window");
        assert_eq!(get["ready"], true);
        assert_eq!(get["routed"], true);
        assert_eq!(get["window"]["comparisons"], 40);
        assert_eq!(get["window"]["match_rate_lower"], 0.9123);
        let list = &document["operations"][1];
        assert_eq!(list["verdict"], "not_routed");
        assert_eq!(list["ready"], false);
        assert_eq!(list["routed"], false);
        assert_eq!(list["routing_mismatch"], 2);
        // createReturn: no stats at all, so no window either.
        assert_eq!(document["operations"][2]["basis"], "cumulative");
        assert_eq!(document["operations"][2]["window"], Value::Null);
    }

    #[test]
    fn per_field_counters_and_noise_gauges_are_split_from_their_operation() {
        let stats = stats(&[
            ("getReturn", "unmatched", 30),
            ("getReturn", "unmatched_path.status", 25),
            ("getReturn", "unmatched_path.header:etag", 7),
            ("getReturn", "unmatched_path./items/*/price", 3),
            ("getReturn", "unmatched_path./a_b", 3),
            ("getReturn", "unmatched_path.(body)", 1),
            ("getReturn", "unmatched_path./zero", 0),
            ("getReturn", "unmatched_path_overflow", 4),
            ("getReturn", "noise_path./updated_at", 1),
            ("getReturn", "noise_path.header:date2", 1),
            ("getReturn", "noise_path./was_noise", 0),
            // Another operation whose id starts with the same letters.
            ("getReturnV2", "unmatched_path./other", 9),
            ("getReturnV2", "noise_path./other", 1),
        ]);
        let (differs, noise) = per_field("wasmcustom.parallel_run.operation.getReturn.", &stats);
        assert_eq!(
            differs,
            [
                ("status".to_string(), 25),
                ("header:etag".to_string(), 7),
                ("/a_b".to_string(), 3),
                ("/items/*/price".to_string(), 3),
                ("(body)".to_string(), 1),
            ]
        );
        assert_eq!(noise, ["/updated_at", "header:date2"]);
        assert_eq!(
            per_field("wasmcustom.parallel_run.operation.listReturns.", &stats),
            (vec![], vec![])
        );
    }

    #[test]
    fn what_differs_most_and_the_noise_follow_the_table() {
        let plan = Plan::parse(CONFIG.as_bytes()).unwrap();
        let stats = stats(&[
            ("getReturn", "shadowed", 40),
            ("getReturn", "matched", 10),
            ("getReturn", "unmatched", 30),
            ("getReturn", "unmatched_path.status", 25),
            ("getReturn", "unmatched_path.header:etag", 7),
            ("getReturn", "unmatched_path./items/*/price", 3),
            ("getReturn", "unmatched_path./items/*/name", 1),
            ("getReturn", "unmatched_path_overflow", 4),
            ("getReturn", "noise_path./updated_at", 1),
            ("getReturn", "noise_path.header:date2", 1),
            ("getReturn", "noise_path./was_noise", 0),
            ("listReturns", "shadowed", 2),
            ("listReturns", "unmatched", 2),
            ("listReturns", "unmatched_path./id", 2),
            ("createReturn", "requests", 1),
            ("createReturn", "noise_path./now", 1),
        ]);
        let admin = Admin::parse("127.0.0.1:9901").unwrap();
        let status = Status::new(&plan, &stats, &ids(&plan), &BTreeMap::new());
        let lines = status.lines(&admin, "c.json", &plan, &live_of(&stats), &[]);
        let after_table: Vec<&str> = lines.iter().skip(7).map(String::as_str).collect();
        assert_eq!(
            after_table,
            [
                "getReturn differs most in: status 25, header:etag 7, /items/*/price 3 (+4 in fields beyond max_diff_paths)",
                "getReturn noise: /updated_at, header:date2",
                "listReturns differs most in: /id 2",
                "createReturn noise: /now",
                "requests matching no operation: 4",
            ]
        );

        let document = status.to_json(&admin, "c.json", &plan, &live_of(&stats), &[]);
        let get = &document["operations"][0];
        assert_eq!(
            get["differs_most"],
            json!([
                {"field": "status", "count": 25},
                {"field": "header:etag", "count": 7},
                {"field": "/items/*/price", "count": 3},
                {"field": "/items/*/name", "count": 1},
            ])
        );
        assert_eq!(get["noise"], json!(["/updated_at", "header:date2"]));
        assert_eq!(get["counters"]["unmatched_path_overflow"], 4);
        assert_eq!(
            document["operations"][1]["differs_most"],
            json!([{"field": "/id", "count": 2}])
        );
        assert_eq!(document["operations"][1]["noise"], json!([]));
        // Per-field stats are not operations: nothing unconfigured here.
        assert_eq!(document["not_configured"], json!([]));
    }

    #[test]
    fn only_the_current_revisions_fields_are_shown() {
        let stats = stats(&[
            // Cumulative since Envoy started: /old differed under r1.
            ("getReturn", "unmatched_path./old", 50),
            ("getReturn", "unmatched_path./new", 2),
            ("getReturn", "unmatched_path_overflow", 9),
            // r2 began: /old's gauge went to 0.
            ("getReturn", "unmatched_path_current./old", 0),
            ("getReturn", "unmatched_path_current./new", 2),
            ("getReturn", "unmatched_path_overflow_current", 1),
        ]);
        let prefix = "wasmcustom.parallel_run.operation.getReturn.";
        let (differs, _) = per_field(prefix, &stats);
        assert_eq!(differs, [("/new".to_string(), 2)]);
        let plan = Plan::parse(CONFIG.as_bytes()).unwrap();
        let row = Status::new(&plan, &stats, &ids(&plan), &BTreeMap::new())
            .rows
            .into_iter()
            .next()
            .unwrap();
        assert_eq!(
            field_lines(&row),
            ["getReturn differs most in: /new 2 (+1 in fields beyond max_diff_paths)"]
        );
        // A fresh revision with nothing yet: nothing shown, not r1's list.
        let fresh = self::stats(&[
            ("getReturn", "unmatched_path./old", 50),
            ("getReturn", "unmatched_path_current./old", 0),
            ("getReturn", "unmatched_path_overflow_current", 0),
        ]);
        assert_eq!(per_field(prefix, &fresh), (vec![], vec![]));
    }

    #[test]
    fn overflow_alone_is_shown() {
        let plan = Plan::parse(CONFIG.as_bytes()).unwrap();
        let stats = stats(&[
            ("getReturn", "unmatched", 3),
            ("getReturn", "unmatched_path_overflow", 3),
        ]);
        let row = Status::new(&plan, &stats, &ids(&plan), &BTreeMap::new())
            .rows
            .into_iter()
            .next()
            .unwrap();
        assert_eq!(
            field_lines(&row),
            ["getReturn differs most in: (+3 in fields beyond max_diff_paths)"]
        );
    }

    #[test]
    fn targets_print_exactly() {
        assert_eq!(target_percent(0.95), "95.0%");
        assert_eq!(target_percent(0.9995), "99.95%");
        assert_eq!(target_percent(1.0), "100.0%");
        assert_eq!(target_percent(0.123456), "12.3456%");
        assert_eq!(target_percent(0.1234567), "12.3%");
    }
}
