//! `status --prometheus URL [--window W]`: the fleet verdict per operation,
//! as a table and as the `-o json` document (README, "status --prometheus").
//! Config drift is loud: replicas on different revisions, an operation that
//! some replicas do not report, replicas in different modes.

use parallel_run_core::readiness;
use parallel_run_core::window;
use parallel_run_core::{Operation, Plan};
use serde_json::{json, Value};

use super::{Facts, Snapshot};
use crate::readiness::{Evidence, Source};

/// One operation's row: its evidence (with the fleet facts) and group.
pub struct Row<'a> {
    pub operation: &'a Operation,
    pub group: Option<String>,
    pub evidence: Evidence,
}

impl Row<'_> {
    fn facts(&self) -> Option<&Facts> {
        self.evidence.fleet.as_ref()
    }
}

pub fn rows<'a>(
    snapshot: &Snapshot,
    plan: &'a Plan,
    selected: &[String],
    groups: &std::collections::BTreeMap<String, String>,
) -> Vec<Row<'a>> {
    plan.operations
        .iter()
        .filter(|op| selected.contains(&op.id))
        .map(|operation| Row {
            operation,
            group: groups.get(&operation.id).cloned(),
            evidence: snapshot.evidence(operation),
        })
        .collect()
}

fn revision_words(snapshot: &Snapshot, plan: &Plan) -> String {
    let parts: Vec<String> = snapshot
        .fleet_revisions
        .iter()
        .map(|(&fp, &n)| {
            let name = match snapshot.revision_name(fp) {
                Some(name) if name == plan.revision => format!("{name:?} (this file's)"),
                Some(name) => format!("{name:?}"),
                None => format!("fingerprint {fp} (not this file's, not in the audit log)"),
            };
            format!("{n} on {name}")
        })
        .collect();
    parts.join(", ")
}

pub fn lines(snapshot: &Snapshot, label: &str, plan: &Plan, rows: &[Row]) -> Vec<String> {
    let mut lines = vec![format!(
        "Prometheus {}, {label}: {}",
        snapshot.url,
        crate::report::headline(plan)
    )];
    let replicas = snapshot.fleet_replicas();
    lines.push(match snapshot.fleet_revisions.len() {
        0 => {
            "fleet: no replica reports parallel_run_config_revision (is Prometheus scraping Envoy's /stats/prometheus?)"
                .to_string()
        }
        1 => format!("fleet: {replicas} replicas, {}", revision_words(snapshot, plan)),
        n => format!(
            "fleet: CONFIG DRIFT: {replicas} replicas run {n} revisions: {}",
            revision_words(snapshot, plan)
        ),
    });
    let window = snapshot.window_s.map_or_else(
        || "each operation's readiness.window_s".to_string(),
        |w| format!("{w} s (--window)"),
    );
    lines.push(format!(
        "readiness: core's windowed rule on the replicas' pooled counters (increase over {window}), met now; thresholds from what the replicas run"
    ));
    let header = [
        "ID",
        "MODE",
        "REPLICAS",
        "WINDOW",
        "COMPARISONS",
        "MATCHED",
        "FAILED",
        "RATE",
        "LOWER",
        "FAILURE",
        "TARGET",
        "VERDICT",
    ]
    .map(String::from)
    .to_vec();
    let mut table = vec![header];
    for row in rows {
        let Some(f) = row.facts() else { continue };
        let evaluation = window::evaluate(f.tally, &f.rule, f.target_match_rate, f.min_samples);
        table.push(vec![
            row.operation.id.clone(),
            match f.mode(row.operation.mode) {
                Ok(mode) => mode.as_str().to_string(),
                Err((low, high)) => format!("{}+{}", low.as_str(), high.as_str()),
            },
            format!("{}/{}", f.replicas, f.fleet_replicas),
            format!("{} s", f.window_s),
            f.tally.comparisons().to_string(),
            f.tally.matched.to_string(),
            f.tally.failed.to_string(),
            evaluation
                .match_rate
                .map_or_else(|| "-".to_string(), readiness::percent),
            if f.tally.comparisons() > 0 {
                readiness::percent(evaluation.match_rate_lower)
            } else {
                "-".to_string()
            },
            if f.tally.shadowed > 0 {
                readiness::percent(evaluation.failure_rate)
            } else {
                "-".to_string()
            },
            readiness::percent(f.target_match_rate),
            row.evidence.verdict.to_string(),
        ]);
    }
    lines.extend(crate::status::align(&table, |column| !matches!(column, 0 | 1 | 11)));
    for row in rows {
        let Some(f) = row.facts() else { continue };
        let id = &row.operation.id;
        if f.replicas == 0 {
            lines.push(format!(
                "{id}: no replica reports it (not in the configuration Envoy runs, or not scraped): nothing to judge"
            ));
        } else if f.replicas < f.fleet_replicas {
            lines.push(format!(
                "{id}: reported by {} (the others do not run it)",
                f.replicas_words()
            ));
        } else if f.drift() {
            lines.push(format!("{id}: CONFIG DRIFT: {}", f.replicas_words()));
        }
        if let (Some(serving), Some(shadow)) = (f.serving_p99_ms, f.shadow_p99_ms) {
            let bound = f
                .rule
                .max_latency_ratio
                .map_or_else(String::new, |m| format!(" (max {m:.2}x)"));
            lines.push(format!(
                "{id} latency p99: serving {serving:.1} ms, shadow {shadow:.1} ms, ratio {:.2}x{bound}",
                shadow / serving.max(f64::MIN_POSITIVE)
            ));
        }
        if row.evidence.mode != row.operation.mode {
            lines.push(format!(
                "note: {id} runs in {}, the file says {}",
                row.evidence.mode.as_str(),
                row.operation.mode.as_str()
            ));
        }
    }
    lines
}

pub fn to_json(snapshot: &Snapshot, label: &str, plan: &Plan, rows: &[Row]) -> Value {
    let operations: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut fleet = row.facts().map_or(Value::Null, Facts::to_json);
            for (key, value) in [
                ("id", json!(row.operation.id)),
                ("mode", json!(row.evidence.mode.as_str())),
                ("file_mode", json!(row.operation.mode.as_str())),
                ("group", json!(row.group)),
                ("verdict", json!(row.evidence.verdict.name())),
                ("summary", json!(row.evidence.verdict.to_string())),
                ("ready", json!(row.evidence.ready())),
                ("basis", json!(row.evidence.basis().name())),
            ] {
                crate::set_field(&mut fleet, key, value);
            }
            fleet
        })
        .collect();
    json!({
        "prometheus": snapshot.url,
        "config": label,
        "revision": plan.revision,
        "window_s": snapshot.window_s,
        "fleet": {
            "replicas": snapshot.fleet_replicas(),
            "revisions": snapshot.fleet_revisions.iter().map(|(&fp, &n)| json!({
                "fingerprint": fp,
                "revision": snapshot.revision_name(fp),
                "replicas": n,
            })).collect::<Vec<Value>>(),
            "drift": snapshot.fleet_revisions.len() > 1,
        },
        "operations": operations,
        "queries": snapshot.queries,
    })
}
