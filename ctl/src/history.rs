//! `history [OP]`: the audit trail of a configuration file, oldest first,
//! one line per change with its outcome.

use serde_json::{json, Value};

use crate::audit::{self, Record};
use crate::cli::HistoryArgs;
use crate::error::Error;
use crate::{target_path, Printed};

pub fn run(args: &HistoryArgs) -> Result<Printed, Error> {
    let path = target_path(&args.target, "history");
    let log = args.target.audit_log.clone().unwrap_or_else(|| audit::path_for(&path));
    let records = audit::read(&log)?;
    let shown: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind != "outcome")
        .filter(|r| match &args.operation {
            Some(op) => r.changes.iter().any(|c| c.operation == *op),
            None => true,
        })
        .collect();
    let mut lines = vec![format!(
        "{}: {} change(s)",
        log.display(),
        shown.iter().filter(|r| r.kind == "change").count()
    )];
    for record in &shown {
        let outcome = outcome_of(&records, record);
        lines.push(line(record, outcome));
    }
    let entries: Vec<Value> = shown
        .iter()
        .map(|record| {
            let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.remove("config");
                object.insert(
                    "outcome".into(),
                    json!(outcome_of(&records, record).and_then(|o| o.outcome.clone())),
                );
                object.insert(
                    "outcome_detail".into(),
                    json!(outcome_of(&records, record).and_then(|o| o.detail.clone())),
                );
            }
            value
        })
        .collect();
    Ok(Printed {
        lines,
        json: json!({"audit_log": log.display().to_string(), "records": entries}),
    })
}

/// The outcome record of a change (same new revision, after it).
fn outcome_of<'a>(records: &'a [Record], change: &Record) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.kind == "outcome" && r.new_revision == change.new_revision)
}

fn line(record: &Record, outcome: Option<&Record>) -> String {
    let changes: Vec<String> = record
        .changes
        .iter()
        .map(|c| {
            format!(
                "{} {} -> {}",
                c.operation,
                c.from.as_deref().unwrap_or("(new)"),
                c.to.as_deref().unwrap_or("(removed)")
            )
        })
        .collect();
    let mut text = format!(
        "{} {}@{} {} {} -> {}",
        record.time,
        record.user,
        record.host,
        record.action,
        record.old_revision.as_deref().unwrap_or("-"),
        record.new_revision
    );
    if !changes.is_empty() {
        text.push_str(&format!(": {}", changes.join(", ")));
    }
    if record.force {
        text.push_str(" FORCED");
    }
    if record.allow_batch {
        text.push_str(" (batch)");
    }
    if let Some(reason) = &record.reason {
        text.push_str(&format!(" {reason:?}"));
    }
    if let Some(outcome) = outcome.and_then(|o| o.outcome.as_deref()) {
        text.push_str(&format!(" [{outcome}]"));
    }
    text
}
