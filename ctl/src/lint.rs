//! `lint`: stale routes and risky rules, from the configuration, the audit
//! log (how long an operation has been in its mode) and Envoy's counters.
//! Errors make the exit status 1 (warnings too with `--strict`).

use parallel_run_core::counters::{self, Counter};
use parallel_run_core::http::is_unsafe_method;
use parallel_run_core::{Mode, Plan};
use std::collections::BTreeMap;
use std::io::BufRead;

use serde_json::{json, Value};

use crate::audit::{self, Record};
use crate::cli::LintArgs;
use crate::error::{Error, Kind};
use crate::live::{self, Live, STATS_PREFIX};
use crate::readiness::EnvoyAdmin;
use crate::{openapi, parse_admin, read_target, revision, Printed, Run};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    /// A stable name, for scripts.
    pub rule: &'static str,
    pub operation: Option<String>,
    pub message: String,
}

impl Finding {
    fn to_json(&self) -> Value {
        json!({
            "severity": match self.severity { Severity::Error => "error", Severity::Warning => "warning" },
            "rule": self.rule,
            "operation": self.operation,
            "message": self.message,
        })
    }
}

const DAY: u64 = 86_400;

/// The rules that need the configuration alone.
pub fn config_rules(plan: &Plan) -> Vec<Finding> {
    let mut out = Vec::new();
    for op in &plan.operations {
        let id = Some(op.id.clone());
        if op.legacy.cluster == op.candidate.cluster {
            out.push(Finding {
                severity: Severity::Error,
                rule: "same_cluster",
                operation: id.clone(),
                message: format!(
                    "{}: legacy and candidate are both cluster {:?}: it would be compared with itself, and a cutover moves nothing",
                    op.id, op.legacy.cluster
                ),
            });
        }
        if op.mode == Mode::Shadow && is_unsafe_method(&op.method) && !op.settings.shadow_unsafe {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "unsafe_method_not_shadowed",
                operation: id.clone(),
                message: format!(
                    "{}: {} in shadow without shadow_unsafe: every request is skipped (skipped_unsafe_method), so it can never become READY",
                    op.id, op.method
                ),
            });
        }
        if op.settings.noise_per_million > 0 && is_unsafe_method(&op.method) {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "noise_on_unsafe_method",
                operation: id,
                message: format!(
                    "{}: noise_percent (set or inherited) is ignored for {}: only safe methods are repeated",
                    op.id, op.method
                ),
            });
        }
    }
    out
}

/// Since when (seconds since the epoch) each operation has been in its
/// current mode, by the audit log's last change that put it there.
fn in_mode_since(records: &[Record], id: &str, mode: Mode) -> Option<u64> {
    records
        .iter()
        .rev()
        .filter(|r| r.kind == "change")
        .find(|r| {
            r.changes
                .iter()
                .any(|c| c.operation == id && c.to.as_deref() == Some(mode.as_str()))
        })
        .and_then(|r| parse_rfc3339(&r.time))
}

/// The rules that need the audit log: operations left in `candidate` or
/// `cutover` for longer than `stale_days`.
pub fn age_rules(plan: &Plan, records: &[Record], now: u64, stale_days: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    for op in &plan.operations {
        let (rule, advice) = match op.mode {
            Mode::Candidate => (
                "stale_candidate",
                "the legacy route and the operation's rule can go (clean up)",
            ),
            Mode::Cutover => (
                "long_cutover",
                "legacy still gets every request as a reverse shadow: move it to candidate, or roll back",
            ),
            _ => continue,
        };
        let Some(since) = in_mode_since(records, &op.id, op.mode) else {
            continue;
        };
        let days = now.saturating_sub(since) / DAY;
        if days >= stale_days {
            out.push(Finding {
                severity: Severity::Warning,
                rule,
                operation: Some(op.id.clone()),
                message: format!(
                    "{}: in {} for {days} days (since {}): {advice}",
                    op.id,
                    op.mode.as_str(),
                    revision::rfc3339(since)
                ),
            });
        }
    }
    out
}

/// The rules that need Envoy's counters.
pub fn traffic_rules(plan: &Plan, live: &Live, url: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let source = EnvoyAdmin {
        live,
        url: url.to_string(),
    };
    for op in &plan.operations {
        let (counts, _) = source.counts(&op.id);
        if counts.get(Counter::Requests) == 0 {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "no_traffic",
                operation: Some(op.id.clone()),
                message: format!(
                    "{}: no request since Envoy started: is {} {} still called, or the template wrong?",
                    op.id, op.method, op.path
                ),
            });
        }
    }
    let unknown = live
        .stats
        .get(&format!("{STATS_PREFIX}{}", counters::UNKNOWN_OPERATION_REQUESTS))
        .copied()
        .unwrap_or(0);
    if unknown > 0 {
        out.push(Finding {
            severity: Severity::Warning,
            rule: "unknown_operation_traffic",
            operation: None,
            message: format!(
                "{unknown} requests matched no operation since Envoy started (served by legacy, never compared): an endpoint missing from the configuration? (which paths: lint --envoy-log)"
            ),
        });
    }
    out
}

/// What the filter's sampled lines say of requests that matched no
/// operation: `parallel-run: unknown operation method=GET path=/returns/*/labels`
/// (core/src/unknown.rs; known literals kept, every other segment `*`).
const UNKNOWN_LINE: &str = "parallel-run: unknown operation method=";

/// The path shapes the log names most, at most this many findings.
const MAX_UNKNOWN_FINDINGS: usize = 20;

/// Envoy's log lines about unknown operations, counted by method and path
/// shape, most frequent first.
pub fn unknown_paths(log: impl BufRead) -> Vec<((String, String), u64)> {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in log.split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line);
        let Some((_, rest)) = line.split_once(UNKNOWN_LINE) else {
            continue;
        };
        let Some((method, rest)) = rest.split_once(" path=") else {
            continue;
        };
        // A line may end in "(N ... suppressed ...)": lines held back, of
        // no known shape, so counted for none.
        let shape = rest.split(" (").next().unwrap_or_default().trim_end();
        *counts.entry((method.to_string(), shape.to_string())).or_default() += 1;
    }
    let mut counted: Vec<_> = counts.into_iter().collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counted
}

fn unknown_path_rules(counted: &[((String, String), u64)]) -> Vec<Finding> {
    let mut out: Vec<Finding> = counted
        .iter()
        .take(MAX_UNKNOWN_FINDINGS)
        .map(|((method, shape), lines)| Finding {
            severity: Severity::Warning,
            rule: "unknown_operation_path",
            operation: None,
            message: format!(
                "{method} {shape}: {lines} sampled request(s) matched no operation (Envoy's log; `*` is a segment no template names): an endpoint missing from the configuration?"
            ),
        })
        .collect();
    if counted.len() > MAX_UNKNOWN_FINDINGS {
        out.push(Finding {
            severity: Severity::Warning,
            rule: "unknown_operation_path",
            operation: None,
            message: format!(
                "{} more path shapes matched no operation",
                counted.len() - MAX_UNKNOWN_FINDINGS
            ),
        });
    }
    out
}

/// `2026-12-01T21:30:05Z` (what the audit log writes) as seconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 20 || bytes.get(10) != Some(&b'T') || bytes.get(19) != Some(&b'Z') {
        return None;
    }
    let number = |from: usize, to: usize| text.get(from..to)?.parse::<u64>().ok();
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970
    {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * DAY + hour * 3600 + minute * 60 + second)
}

pub fn run(args: &LintArgs) -> Run {
    let doc = read_target(&args.target, "lint")?;
    let plan = doc.plan()?;
    let mut findings = config_rules(&plan);
    let log = args
        .target
        .audit_log
        .clone()
        .or_else(|| doc.path.as_ref().map(|p| audit::path_for(p)));
    let records = match &log {
        Some(log) => audit::read(log)?,
        None => Vec::new(),
    };
    findings.extend(age_rules(&plan, &records, revision::now_seconds(), args.stale_days));
    if let Some(spec_path) = &args.openapi {
        let text = openapi::read(spec_path)?;
        let spec = openapi::parse(&text, &spec_path.display().to_string(), &args.base_path)?;
        let (missing, extra) = openapi::compare(&spec, &plan);
        for op in missing {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "not_configured",
                operation: Some(op.id.clone()),
                message: format!(
                    "{} {} ({}) is in the spec but not in the configuration",
                    op.method, op.path, op.at
                ),
            });
        }
        for id in extra {
            findings.push(Finding {
                severity: Severity::Warning,
                rule: "not_in_spec",
                operation: Some(id.clone()),
                message: format!(
                    "{id} is in the configuration but not in the spec: removed from the API, or a stale rule?"
                ),
            });
        }
    }
    if let Some(path) = &args.envoy_log {
        let counted = if path.as_os_str() == "-" {
            unknown_paths(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(path).map_err(|err| {
                Error::new(
                    Kind::Io,
                    format!("lint: cannot read the Envoy log {}: {err}", path.display()),
                )
            })?;
            unknown_paths(std::io::BufReader::new(file))
        };
        findings.extend(unknown_path_rules(&counted));
    }
    let mut notes = Vec::new();
    if args.no_envoy {
        notes.push("Envoy not asked (--no-envoy): traffic rules skipped".to_string());
    } else {
        let admin = parse_admin(&args.admin.admin)?;
        let filter = doc
            .ecds_name
            .clone()
            .unwrap_or_else(|| live::DEFAULT_FILTER_NAME.to_string());
        let live = Live::read(&admin, &filter)?;
        findings.extend(traffic_rules(&plan, &live, &admin.url()));
    }
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.len() - errors;
    let mut lines: Vec<String> = findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            format!("{level}[{}]: {}", f.rule, f.message)
        })
        .collect();
    lines.extend(notes.iter().map(|n| format!("note: {n}")));
    lines.push(format!("{}: {errors} error(s), {warnings} warning(s)", doc.label()));
    let failed = errors > 0 || (args.strict && warnings > 0);
    let error = failed.then(|| Error::new(Kind::Lint, format!("lint: {errors} error(s), {warnings} warning(s)")));
    Ok((
        Printed {
            lines,
            json: json!({
                "file": doc.label(),
                "findings": findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
                "errors": errors,
                "warnings": warnings,
                "notes": notes,
            }),
        },
        error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(operations: &str) -> Plan {
        Plan::parse(
            format!(r#"{{"legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate"}},"operations":[{operations}]}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn rules(findings: &[Finding]) -> Vec<(&str, Option<&str>)> {
        findings.iter().map(|f| (f.rule, f.operation.as_deref())).collect()
    }

    #[test]
    fn risky_rules_in_the_configuration() {
        // An operation's own noise_percent on an unsafe method is refused by
        // the validator; one inherited from `defaults` is what lint flags.
        let plan = Plan::parse(
            br#"{"legacy":{"cluster":"legacy"},"candidate":{"cluster":"candidate"},
                "defaults":{"noise_percent":5},
                "operations":[
               {"id":"same","method":"GET","path":"/a","mode":"shadow","candidate":{"cluster":"legacy"}},
               {"id":"post","method":"POST","path":"/b","mode":"shadow","noise_percent":0},
               {"id":"postOk","method":"POST","path":"/c","mode":"shadow","shadow_unsafe":true,"noise_percent":0},
               {"id":"noisy","method":"PUT","path":"/d","mode":"legacy"},
               {"id":"fine","method":"GET","path":"/e","mode":"shadow"}]}"#,
        )
        .unwrap();
        let findings = config_rules(&plan);
        assert_eq!(
            rules(&findings),
            [
                ("same_cluster", Some("same")),
                ("unsafe_method_not_shadowed", Some("post")),
                ("noise_on_unsafe_method", Some("noisy")),
            ]
        );
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains("both cluster \"legacy\""));
    }

    #[test]
    fn operations_left_in_candidate_or_cutover_are_stale() {
        let plan = plan(
            r#"{"id":"old","method":"GET","path":"/a","mode":"candidate"},
               {"id":"cut","method":"GET","path":"/b","mode":"cutover"},
               {"id":"new","method":"GET","path":"/c","mode":"candidate"},
               {"id":"unknown","method":"GET","path":"/d","mode":"candidate"}"#,
        );
        let change = |id: &str, to: &str, time: &str| {
            let mut r = audit::tests::record("change", "r");
            r.time = time.into();
            r.changes = vec![audit::ModeChange {
                operation: id.into(),
                group: None,
                from: None,
                to: Some(to.into()),
            }];
            r
        };
        let records = [
            change("old", "candidate", "2026-10-01T00:00:00Z"),
            change("cut", "cutover", "2026-11-01T00:00:00Z"),
            change("new", "candidate", "2026-11-30T00:00:00Z"),
        ];
        let now = parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let findings = age_rules(&plan, &records, now, 14);
        assert_eq!(
            rules(&findings),
            [("stale_candidate", Some("old")), ("long_cutover", Some("cut"))]
        );
        assert!(findings[0]
            .message
            .starts_with("old: in candidate for 61 days (since 2026-10-01T00:00:00Z)"));
    }

    #[test]
    fn traffic_rules_read_envoys_counters() {
        let plan = plan(
            r#"{"id":"busy","method":"GET","path":"/a","mode":"shadow"},{"id":"idle","method":"GET","path":"/b"}"#,
        );
        let live = Live {
            stats: [
                ("wasmcustom.parallel_run.operation.busy.requests".to_string(), 5),
                ("wasmcustom.parallel_run.operation.idle.requests".to_string(), 0),
                ("wasmcustom.parallel_run.unknown_operation.requests".to_string(), 3),
            ]
            .into_iter()
            .collect(),
            filter_name: "parallel-run".into(),
        };
        let findings = traffic_rules(&plan, &live, "x");
        assert_eq!(
            rules(&findings),
            [("no_traffic", Some("idle")), ("unknown_operation_traffic", None)]
        );
    }

    #[test]
    fn audit_times_parse_back() {
        for seconds in [0, 951_782_400, 1_796_160_180, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&revision::rfc3339(seconds)), Some(seconds));
        }
        for bad in [
            "2026-12-01 21:00:00Z",
            "2026-13-01T00:00:00Z",
            "x",
            "2026-12-01T21:00:00+01:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn unknown_paths_are_counted_from_envoys_log_most_frequent_first() {
        let log = "\
[2026-12-02 01:00:00.000][1][info][wasm] wasm log parallel_run: parallel-run: unknown operation method=GET path=/returns/*/labels
[2026-12-02 01:00:00.100][1][info][wasm] wasm log parallel_run: parallel-run: configuration applied: revision=\"r\"
[2026-12-02 01:00:01.000][1][info][wasm] wasm log parallel_run: parallel-run: unknown operation method=POST path=/* (7 unknown-operation lines suppressed before this one)
[2026-12-02 01:00:02.000][2][info][wasm] wasm log parallel_run: parallel-run: unknown operation method=GET path=/returns/*/labels
";
        let counted = unknown_paths(log.as_bytes());
        assert_eq!(
            counted,
            [
                (("GET".to_string(), "/returns/*/labels".to_string()), 2),
                (("POST".to_string(), "/*".to_string()), 1)
            ]
        );
        let findings = unknown_path_rules(&counted);
        assert_eq!(rules(&findings), [("unknown_operation_path", None); 2]);
        assert!(
            findings[0].message.starts_with("GET /returns/*/labels: 2 sampled"),
            "{}",
            findings[0].message
        );
    }
}
