//! One guarded change of the configuration, whatever asked for it
//! (`cutover`, `rollback`, `set-mode`, `apply`, `rollback --to-revision`):
//!
//! 1. read the file and validate it; work out the new configuration and
//!    which operations change mode;
//! 2. refuse what is not a migration step: unknown operations, a group
//!    split, a skipped phase, more than one cutover at once, an operation
//!    that is not READY (the last three unless `--force`, recorded);
//! 3. under the file's lock, re-read it and refuse if it changed since step
//!    1 (compare-and-swap on its SHA-256), append the audit record, replace
//!    the file atomically, commit it with `--git`;
//! 4. wait until Envoy runs the new revision, or report that it refused it.
//!
//! Every refusal comes before anything is written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use parallel_run_core::counters::revision_fingerprint;
use parallel_run_core::{Mode, Plan};
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::audit::{self, ModeChange, Record};
use crate::document::{self, Document, Format};
use crate::error::{Error, Kind, Result};
use crate::jsonedit::{self, Step};
use crate::live::{self, Live, Outcome};
use crate::readiness::{EnvoyAdmin, Evidence, Source};
use crate::{ecds, git, groups, lock, report, revision, transition};

/// What to change.
#[derive(Debug, Clone)]
pub enum Action {
    /// `cutover OP...`: shadow -> cutover.
    Cutover(Vec<String>),
    /// `rollback OP...`: cutover or candidate -> shadow.
    Rollback(Vec<String>),
    /// `set-mode OP MODE`.
    SetMode(Vec<String>, Mode),
    /// `apply CONFIG`: a whole new configuration (its JSON text, and where it came from).
    Apply { config: String, source: String },
    /// `rollback --to-revision R`: the configuration the audit log recorded for R.
    Restore(String),
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Cutover(_) => "cutover",
            Action::Rollback(_) => "rollback",
            Action::SetMode(..) => "set-mode",
            Action::Apply { .. } => "apply",
            Action::Restore(_) => "restore",
        }
    }
}

/// The operator's guard options.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub reason: Option<String>,
    pub force: bool,
    pub allow_batch: bool,
    pub git: bool,
    pub dry_run: bool,
    /// Refuse unless the file's SHA-256 is this (from an earlier `status -o json`).
    pub if_match: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Wait {
    pub enabled: bool,
    pub timeout: Duration,
}

/// Where the change goes and how Envoy is reached.
pub struct Target<'a> {
    pub path: &'a Path,
    pub admin: &'a Admin,
    /// `None`: next to the file (audit::path_for).
    pub audit_log: Option<PathBuf>,
    /// `--prometheus`: readiness from the fleet instead of this Envoy's gauges.
    pub fleet: Option<crate::fleet::Fleet>,
}

/// What happened, for the output: text lines and the `-o json` document.
/// `error` is set when the file was written but Envoy refused it or did not
/// confirm it.
#[derive(Debug)]
pub struct Report {
    pub lines: Vec<String>,
    pub json: Value,
    pub error: Option<Error>,
}

/// One operation's planned change.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub operation: String,
    pub group: Option<String>,
    pub from: Option<Mode>,
    pub to: Option<Mode>,
}

impl Planned {
    fn to_record(&self) -> ModeChange {
        ModeChange {
            operation: self.operation.clone(),
            group: self.group.clone(),
            from: self.from.map(|m| m.as_str().to_string()),
            to: self.to.map(|m| m.as_str().to_string()),
        }
    }

    fn words(&self) -> String {
        let mode = |m: Option<Mode>| m.map_or("(none)", Mode::as_str);
        match (self.from, self.to) {
            (None, Some(to)) => format!("{}: added in {}", self.operation, to.as_str()),
            (Some(from), None) => format!("{}: removed (was {})", self.operation, from.as_str()),
            _ => format!("{}: {} -> {}", self.operation, mode(self.from), mode(self.to)),
        }
    }

    fn needs_readiness(&self) -> bool {
        match (self.from, self.to) {
            (Some(from), Some(to)) => transition::needs_readiness(from, to),
            // A new operation that starts on the candidate has no evidence at all.
            (None, Some(to)) => matches!(to, Mode::Cutover | Mode::Candidate),
            _ => false,
        }
    }
}

/// Operation ids named by a command: `OP` or `group:NAME` (all its
/// members). Unknown ids and groups are refused together, by name.
pub fn resolve(
    tokens: &[String],
    plan: &Plan,
    groups: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    for token in tokens {
        if let Some(group) = token.strip_prefix("group:") {
            let members = groups::members(groups, group);
            if members.is_empty() {
                unknown.push(format!("group {group:?}"));
            }
            for member in members {
                if !ids.iter().any(|id| id == member) {
                    ids.push(member.to_string());
                }
            }
        } else if plan.operations.iter().any(|op| op.id == *token) {
            if !ids.contains(token) {
                ids.push(token.clone());
            }
        } else {
            unknown.push(format!("{token:?}"));
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = plan.operations.iter().map(|op| op.id.as_str()).collect();
        return Err(Error::new(
            Kind::UnknownOperation,
            format!(
                "unknown operation{} {}: the configuration has {}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                if known.is_empty() {
                    "no operations".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    Ok(ids)
}

/// The whole change, computed from the file as read; nothing is written.
struct Draft {
    new_config: String,
    new_revision: String,
    planned: Vec<Planned>,
    /// Changes other than modes, in words (`apply`).
    other_changes: Vec<String>,
    overrides: Vec<String>,
    notes: Vec<String>,
}

pub fn run(target: &Target, action: &Action, guard: &Guard, wait: &Wait) -> Result<Report> {
    if target.path == Path::new("-") {
        return Err(Error::io(
            "cannot write to standard input: name the configuration file with --config or --ecds",
        ));
    }
    let doc = Document::read(target.path)?;
    let label = doc.label();
    if let Some(expected) = &guard.if_match {
        let actual = doc.sha256();
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::new(
                Kind::Stale,
                format!(
                    "{label}: changed since it was read (SHA-256 {actual}, --if-match {expected}): nothing written"
                ),
            ));
        }
    }
    let log = target.audit_log.clone().unwrap_or_else(|| audit::path_for(target.path));
    let records = audit::read(&log)?;
    let old_plan = match (doc.plan(), action) {
        (Ok(plan), _) => Some(plan),
        // `apply` may replace a configuration that does not validate.
        (Err(_), Action::Apply { .. }) => None,
        (Err(err), _) => return Err(err),
    };
    let old_revision = old_plan.as_ref().map(|p| p.revision.clone());
    let mut draft = draft(&doc, old_plan.as_ref(), action, guard, &records)?;
    let new_plan = document::validate(&draft.new_config).map_err(|err| err.context("the new configuration"))?;
    let new_groups = groups::of(&new_plan);

    // Groups flip together: every group a change touches moves whole.
    let moved: Vec<&str> = draft.planned.iter().map(|p| p.operation.as_str()).collect();
    if let Some((group, missing)) = groups::splits(&moved, &new_groups).into_iter().next() {
        return Err(Error::new(
            Kind::GroupSplit,
            format!(
                "group {group:?} would be split: {} must change with {} (name group:{group} to move all of it)",
                missing.join(", "),
                moved
                    .iter()
                    .filter(|id| new_groups.get(**id) == Some(&group))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    for p in &mut draft.planned {
        p.group = new_groups.get(&p.operation).cloned();
    }
    check_group_modes(&draft.planned, &new_groups, guard, &mut draft.overrides)?;

    // One cutover (one operation or one group) per command.
    let cutover_ids: Vec<&str> = draft
        .planned
        .iter()
        .filter(|p| p.needs_readiness())
        .map(|p| p.operation.as_str())
        .collect();
    let units = groups::units(&cutover_ids, &new_groups);
    if units.len() > 1 && !guard.allow_batch {
        return Err(Error::new(
            Kind::Batch,
            format!(
                "{} cutovers in one command ({}): one operation or one group at a time, or --allow-batch",
                units.len(),
                units.join(", ")
            ),
        ));
    }

    // What Envoy runs, and the readiness evidence.
    let unchanged = draft.new_config == doc.config;
    // With --prometheus the fleet judges readiness; Envoy is still what confirms.
    let needs_live = (!cutover_ids.is_empty() && target.fleet.is_none())
        || (wait.enabled && doc.format == Format::Ecds && !unchanged);
    let live = if needs_live || !draft.planned.is_empty() {
        match Live::read(
            target.admin,
            doc.ecds_name.as_deref().unwrap_or(live::DEFAULT_FILTER_NAME),
        ) {
            Ok(live) => Some(live),
            Err(err) if !needs_live => {
                draft.notes.push(format!("no readiness evidence recorded: {err}"));
                None
            }
            Err(err) if guard.force && !(wait.enabled && doc.format == Format::Ecds) => {
                draft.overrides.push(format!("readiness unknown: {err}"));
                None
            }
            Err(err) => {
                let hint = if wait.enabled && doc.format == Format::Ecds {
                    " (nothing written; --no-wait writes without confirmation)"
                } else {
                    " (nothing written)"
                };
                return Err(Error::unreachable(format!("{err}{hint}")));
            }
        }
    } else {
        None
    };
    let mut evidence: Vec<Evidence> = Vec::new();
    let moving: Vec<parallel_run_core::Operation> = draft
        .planned
        .iter()
        .filter_map(|p| {
            old_plan
                .as_ref()
                .and_then(|plan| plan.operations.iter().find(|op| op.id == p.operation))
                .or_else(|| new_plan.operations.iter().find(|op| op.id == p.operation))
                .cloned()
        })
        .collect();
    let mut fleet_read = false;
    if let (Some(fleet), false) = (&target.fleet, moving.is_empty()) {
        let mut names: Vec<String> = records.iter().map(|r| r.new_revision.clone()).collect();
        names.extend(old_revision.clone());
        match fleet.read(&moving, &names) {
            Ok(snapshot) => {
                evidence.extend(moving.iter().map(|op| snapshot.evidence(op)));
                fleet_read = true;
            }
            Err(err) if cutover_ids.is_empty() => {
                draft.notes.push(format!("no readiness evidence recorded: {err}"));
            }
            Err(err) if guard.force => draft.overrides.push(format!("readiness unknown: {err}")),
            Err(err) => return Err(err.context("the fleet's readiness (nothing written)")),
        }
    }
    if let Some(live) = &live {
        let source = EnvoyAdmin {
            live,
            url: target.admin.url(),
        };
        if target.fleet.is_none() {
            evidence.extend(moving.iter().map(|op| source.evidence(op)));
        }
        if let Some(plan) = &old_plan {
            if !live.runs(&plan.revision) && live.revision_fingerprint().is_some() {
                draft.notes.push(format!(
                    "Envoy does not run the file's revision {:?} (refused, or not loaded yet?); {}",
                    plan.revision,
                    identify(live, &records)
                ));
            }
        }
    }
    check_readiness(
        &draft.planned,
        &evidence,
        &new_groups,
        guard,
        &mut draft.overrides,
        if target.fleet.is_some() {
            fleet_read
        } else {
            live.is_some()
        },
    )?;

    let mut report = Reporter::new(action, &doc, old_revision.as_deref(), &draft, &evidence, guard, &log);
    if unchanged {
        report.unchanged();
        return Ok(report.finish(None));
    }
    if guard.dry_run {
        report.line(format!("dry run: {label} not written"));
        return Ok(report.finish(None));
    }

    // Compare-and-swap under the lock.
    let rendered = doc.render(&draft.new_config)?;
    let new_sha = document::sha256(&rendered);
    let lock = lock::acquire(target.path)?;
    let now = document::read_file(target.path)?;
    if document::sha256(&now) != doc.sha256() {
        let latest = audit::read(&log)
            .ok()
            .and_then(|r| r.into_iter().rev().find(|r| r.kind == "change"));
        let by = latest.map_or_else(String::new, |r| {
            format!(
                " (last audited change: {} by {}@{} at {}, revision {:?})",
                r.action, r.user, r.host, r.time, r.new_revision
            )
        });
        return Err(Error::new(
            Kind::Stale,
            format!("{label}: changed since it was read{by}: nothing written; re-run the command against the new file"),
        ));
    }
    let now_s = revision::rfc3339(revision::now_seconds());
    let record = Record {
        version: audit::VERSION,
        kind: "change".into(),
        time: now_s.clone(),
        user: audit::user(),
        host: audit::host(),
        action: action.name().into(),
        reason: guard.reason.clone(),
        file: label.clone(),
        old_revision: old_revision.clone(),
        new_revision: draft.new_revision.clone(),
        new_revision_fingerprint: revision_fingerprint(&draft.new_revision),
        old_sha256: Some(doc.sha256()),
        new_sha256: Some(new_sha.clone()),
        changes: draft.planned.iter().map(Planned::to_record).collect(),
        evidence: evidence.iter().map(Evidence::to_json).collect(),
        force: guard.force,
        overrides: draft.overrides.clone(),
        allow_batch: guard.allow_batch,
        outcome: None,
        detail: None,
        config: Some(draft.new_config.clone()),
    };
    if records.is_empty() {
        let mut baseline = record.clone();
        baseline.kind = "baseline".into();
        baseline.action = "baseline".into();
        baseline.reason = Some("the configuration before the first audited change".into());
        baseline.old_revision = None;
        baseline.new_revision = old_revision.clone().unwrap_or_default();
        baseline.new_revision_fingerprint = revision_fingerprint(&baseline.new_revision);
        baseline.old_sha256 = None;
        baseline.new_sha256 = Some(doc.sha256());
        baseline.changes = Vec::new();
        baseline.evidence = Vec::new();
        baseline.force = false;
        baseline.overrides = Vec::new();
        baseline.allow_batch = false;
        baseline.config = Some(doc.config.clone());
        audit::append(&log, &baseline)?;
    }
    audit::append(&log, &record)?;
    let before = live.clone();
    if let Err(err) = ecds::write_atomically(target.path, &rendered) {
        let _ = audit::append(&log, &outcome_record(&record, "write_failed", &err));
        return Err(Error::io(err));
    }
    report.line(format!("{label}: written"));
    crate::set_field(&mut report.json, "written", json!(true));
    crate::set_field(&mut report.json, "new_sha256", json!(new_sha));
    if guard.git {
        match git::commit(target.path, &record) {
            Ok(commit) => {
                report.line(format!("git: committed {commit}"));
                crate::set_field(&mut report.json, "git_commit", json!(commit));
            }
            Err(err) => {
                drop(lock);
                let _ = audit::append(&log, &outcome_record(&record, "git_failed", &err.message));
                return Ok(report.finish(Some(err.context("written, but not committed"))));
            }
        }
    }
    drop(lock);

    // Confirmation.
    let (outcome_name, detail, error) = match (&before, wait.enabled, doc.format) {
        (Some(before), true, Format::Ecds) => {
            let outcome = live::wait(target.admin, before, &draft.new_revision, wait.timeout);
            let outcome = superseded(outcome, &log, &draft.new_revision);
            confirmation(&outcome, &draft.new_revision, wait.timeout, before, &records, &log)
        }
        (_, false, _) => (
            "not_waited".to_string(),
            format!("not waiting for Envoy (--no-wait): `parallel-run-ctl wait --revision {}` confirms", draft.new_revision),
            None,
        ),
        (_, true, _) => (
            "not_waited".to_string(),
            format!(
                "Envoy does not read {label} directly: push it (git, kubectl apply -f {label}), then `parallel-run-ctl wait --revision {}`",
                draft.new_revision
            ),
            None,
        ),
    };
    let _ = audit::append(&log, &outcome_record(&record, &outcome_name, &detail));
    report.line(detail.clone());
    crate::set_field(
        &mut report.json,
        "confirmation",
        json!({"outcome": outcome_name, "detail": detail}),
    );
    Ok(report.finish(error))
}

fn outcome_record(change: &Record, outcome: &str, detail: &str) -> Record {
    let mut record = change.clone();
    record.kind = "outcome".into();
    record.time = revision::rfc3339(revision::now_seconds());
    record.outcome = Some(outcome.into());
    record.detail = Some(detail.into());
    record.changes = Vec::new();
    record.evidence = Vec::new();
    record.overrides = Vec::new();
    record.config = None;
    record
}

/// A later audited revision that descends from ours and is what Envoy runs
/// counts as ours being active: two operators' pushes in quick succession
/// can reach Envoy as one.
fn superseded(outcome: Outcome, log: &Path, ours: &str) -> Outcome {
    let fingerprint = match &outcome {
        Outcome::NotConfirmed {
            live_fingerprint: Some(fp),
            ..
        } => *fp,
        _ => return outcome,
    };
    let Ok(records) = audit::read(log) else { return outcome };
    match descendant(&records, ours, fingerprint) {
        Some(_) => Outcome::Active { seconds: 0.0 },
        None => outcome,
    }
}

/// The revision with `fingerprint` among those written after `ours` on top of it.
pub fn descendant(records: &[Record], ours: &str, fingerprint: u64) -> Option<String> {
    let mut line = vec![ours.to_string()];
    for record in records.iter().filter(|r| r.kind == "change") {
        if record.old_revision.as_ref().is_some_and(|old| line.contains(old)) {
            line.push(record.new_revision.clone());
            if revision_fingerprint(&record.new_revision) == fingerprint {
                return Some(record.new_revision.clone());
            }
        }
    }
    None
}

/// Which revision Envoy runs, in words, from the audit log's fingerprints.
pub fn identify(live: &Live, records: &[Record]) -> String {
    match live.revision_fingerprint() {
        None => "Envoy exports no revision gauge (an older filter build?)".to_string(),
        Some(fp) => match records
            .iter()
            .rev()
            .find(|r| revision_fingerprint(&r.new_revision) == fp)
        {
            Some(r) => format!(
                "Envoy runs revision {:?} (fingerprint {fp}, from the audit log)",
                r.new_revision
            ),
            None => format!("Envoy runs a revision with fingerprint {fp}, not in the audit log"),
        },
    }
}

fn confirmation(
    outcome: &Outcome,
    revision: &str,
    timeout: Duration,
    before: &Live,
    records: &[Record],
    log: &Path,
) -> (String, String, Option<Error>) {
    let running = |fp: Option<u64>| {
        let mut view = before.clone();
        if let Some(fp) = fp {
            view.stats.insert(
                format!("{}{}", live::STATS_PREFIX, parallel_run_core::counters::REVISION_GAUGE),
                fp,
            );
        }
        let all = audit::read(log).unwrap_or_else(|_| records.to_vec());
        identify(&view, &all)
    };
    match outcome {
        Outcome::Active { seconds } => (
            outcome.name().into(),
            format!("Envoy runs revision {revision:?} (active after {seconds:.1} s)"),
            None,
        ),
        Outcome::AcceptedByCounters { seconds } => (
            outcome.name().into(),
            format!(
                "Envoy accepted the update after {seconds:.1} s (ECDS counters; the filter exports no revision gauge)"
            ),
            None,
        ),
        Outcome::Refused {
            counters,
            live_fingerprint,
        } => {
            let message = format!(
                "Envoy REFUSED revision {revision:?}: {counters}; {}. The filter logs why in Envoy's log: \
                 `parallel-run: configuration refused: <field>: <reason>`",
                running(*live_fingerprint)
            );
            (
                "refused".into(),
                message.clone(),
                Some(Error::new(Kind::Refused, message)),
            )
        }
        Outcome::NotConfirmed {
            seconds,
            counters,
            live_fingerprint,
        } => {
            let message = format!(
                "revision {revision:?} not active after {seconds:.1} s (--timeout {} s): {counters}; {}",
                timeout.as_secs(),
                running(*live_fingerprint)
            );
            (
                "not_confirmed".into(),
                message.clone(),
                Some(Error::new(Kind::NotConfirmed, message)),
            )
        }
    }
}

fn draft(doc: &Document, old_plan: Option<&Plan>, action: &Action, guard: &Guard, records: &[Record]) -> Result<Draft> {
    let mut overrides = Vec::new();
    let mut notes = Vec::new();
    let mut taken: Vec<&str> = audit::revisions(records);
    if let Some(plan) = old_plan {
        taken.push(&plan.revision);
    }
    match action {
        Action::Cutover(tokens) | Action::Rollback(tokens) | Action::SetMode(tokens, _) => {
            let plan = old_plan.ok_or_else(|| Error::invalid("no valid configuration"))?;
            let groups = groups::of(plan);
            let ids = resolve(tokens, plan, &groups)?;
            let mut planned = Vec::new();
            let mut refusals = Vec::new();
            for id in &ids {
                let Some(op) = plan.operations.iter().find(|op| op.id == *id) else {
                    continue;
                };
                let from = op.mode;
                let to = match action {
                    Action::Cutover(_) => Mode::Cutover,
                    Action::SetMode(_, mode) => *mode,
                    _ => match transition::rollback_target(from) {
                        Some(to) => to,
                        None => {
                            notes.push(format!("{id}: in {}, legacy already serves it", from.as_str()));
                            continue;
                        }
                    },
                };
                match transition::step(from, to) {
                    transition::Step::Unchanged => {
                        notes.push(format!("{id}: already in {}", to.as_str()));
                        continue;
                    }
                    transition::Step::Skip => {
                        refusals.push(format!("{id}: {}", transition::refusal(from, to).unwrap_or_default()))
                    }
                    transition::Step::Back if matches!(action, Action::Cutover(_)) => refusals.push(format!(
                        "{id}: {} -> cutover goes back (use rollback or set-mode)",
                        from.as_str()
                    )),
                    _ => {}
                }
                planned.push(Planned {
                    operation: id.clone(),
                    group: None,
                    from: Some(from),
                    to: Some(to),
                });
            }
            if !refusals.is_empty() {
                if !guard.force {
                    return Err(Error::new(
                        Kind::InvalidTransition,
                        format!(
                            "{} (nothing written; --force with a --reason overrides)",
                            refusals.join("; ")
                        ),
                    ));
                }
                overrides.extend(refusals.into_iter().map(|r| format!("transition {r}")));
            }
            if planned.is_empty() {
                return Ok(Draft {
                    new_config: doc.config.clone(),
                    new_revision: plan.revision.clone(),
                    planned,
                    other_changes: Vec::new(),
                    overrides,
                    notes,
                });
            }
            let new_revision = revision::new_revision(&taken);
            let new_config = edit(&doc.config, &planned, &new_revision)?;
            Ok(Draft {
                new_config,
                new_revision,
                planned,
                other_changes: Vec::new(),
                overrides,
                notes,
            })
        }
        Action::Apply { config, source } => {
            let wanted = document::validate(config).map_err(|err| err.context(source))?;
            let config = if doc.format == Format::Ecds {
                ecds::compact(config).map_err(|err| Error::invalid(format!("{source}: {err}")))?
            } else {
                config.clone()
            };
            let same_content = old_plan.is_some() && same_json(&config, &doc.config);
            let (new_config, new_revision) = if same_content {
                (doc.config.clone(), wanted.revision.clone())
            } else if !wanted.revision.is_empty() && !taken.contains(&wanted.revision.as_str()) {
                (config, wanted.revision.clone())
            } else {
                let fresh = revision::new_revision(&taken);
                notes.push(if wanted.revision.is_empty() {
                    format!("{source} has no revision: written as {fresh:?}")
                } else {
                    format!("revision {:?} is already used: written as {fresh:?}", wanted.revision)
                });
                let edited = set_revision(&config, &fresh)?;
                (edited, fresh)
            };
            let new_plan = document::validate(&new_config)?;
            let (planned, other_changes) = match old_plan {
                Some(old) => (mode_diff(old, &new_plan), report::changes(old, &new_plan)),
                None => {
                    notes.push(format!(
                        "the current configuration of {} does not validate; replacing it",
                        doc.label()
                    ));
                    (mode_diff_from_nothing(&new_plan), report::table(&new_plan))
                }
            };
            let other_changes = without_mode_lines(other_changes, &planned);
            Ok(Draft {
                new_config,
                new_revision,
                planned,
                other_changes,
                overrides,
                notes,
            })
        }
        Action::Restore(wanted) => {
            let record = audit::config_of(records, wanted).ok_or_else(|| {
                Error::new(
                    Kind::Io,
                    format!("revision {wanted:?} is not in the audit log (history lists the recorded ones)"),
                )
            })?;
            let config = record.config.clone().unwrap_or_default();
            let new_revision = revision::new_revision(&taken);
            let new_config = set_revision(&config, &new_revision)?;
            let new_plan = document::validate(&new_config)?;
            let (planned, other_changes) = match old_plan {
                Some(old) => (mode_diff(old, &new_plan), report::changes(old, &new_plan)),
                None => (mode_diff_from_nothing(&new_plan), Vec::new()),
            };
            let other_changes = without_mode_lines(other_changes, &planned);
            notes.push(format!(
                "restores the configuration of revision {wanted:?} as revision {new_revision:?}"
            ));
            Ok(Draft {
                new_config: if doc.format == Format::Ecds {
                    ecds::compact(&new_config).map_err(Error::invalid)?
                } else {
                    new_config
                },
                new_revision,
                planned,
                other_changes,
                overrides,
                notes,
            })
        }
    }
}

/// `report::changes` lines minus those that say what `planned` says.
fn without_mode_lines(lines: Vec<String>, planned: &[Planned]) -> Vec<String> {
    lines
        .into_iter()
        .filter(|line| {
            !planned.iter().any(|p| {
                line.strip_prefix(&format!("{}: ", p.operation)).is_some_and(|rest| {
                    rest.starts_with("added")
                        || rest.starts_with("removed")
                        || transition::ORDER
                            .iter()
                            .any(|m| rest.starts_with(&format!("{} -> ", m.as_str())))
                })
            })
        })
        .collect()
}

fn same_json(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn mode_diff(old: &Plan, new: &Plan) -> Vec<Planned> {
    let mut out = Vec::new();
    for op in &new.operations {
        match old.operations.iter().find(|o| o.id == op.id) {
            Some(before) if before.mode != op.mode => out.push(Planned {
                operation: op.id.clone(),
                group: None,
                from: Some(before.mode),
                to: Some(op.mode),
            }),
            Some(_) => {}
            None => out.push(Planned {
                operation: op.id.clone(),
                group: None,
                from: None,
                to: Some(op.mode),
            }),
        }
    }
    for op in &old.operations {
        if !new.operations.iter().any(|o| o.id == op.id) {
            out.push(Planned {
                operation: op.id.clone(),
                group: None,
                from: Some(op.mode),
                to: None,
            });
        }
    }
    out
}

fn mode_diff_from_nothing(new: &Plan) -> Vec<Planned> {
    new.operations
        .iter()
        .map(|op| Planned {
            operation: op.id.clone(),
            group: None,
            from: None,
            to: Some(op.mode),
        })
        .collect()
}

/// `config` with `revision` set, everything else kept.
fn set_revision(config: &str, revision: &str) -> Result<String> {
    let edited = jsonedit::set_member(config, &[], "revision", &json!(revision)).map_err(Error::invalid)?;
    let mut expected: Value =
        serde_json::from_str(config).map_err(|err| Error::invalid(format!("invalid JSON: {err}")))?;
    if let Some(object) = expected.as_object_mut() {
        object.insert("revision".into(), json!(revision));
    }
    check_edit(&edited, &expected)?;
    Ok(edited)
}

/// `config` with the planned modes and the new revision, everything else kept.
fn edit(config: &str, planned: &[Planned], revision: &str) -> Result<String> {
    let mut expected: Value =
        serde_json::from_str(config).map_err(|err| Error::invalid(format!("invalid JSON: {err}")))?;
    let mut text = config.to_string();
    for p in planned {
        let Some(to) = p.to else { continue };
        let index = expected
            .get("operations")
            .and_then(Value::as_array)
            .and_then(|ops| {
                ops.iter()
                    .position(|op| op.get("id").and_then(Value::as_str) == Some(&p.operation))
            })
            .ok_or_else(|| Error::invalid(format!("operation {:?} not found in the JSON", p.operation)))?;
        text = jsonedit::set_member(
            &text,
            &[Step::Key("operations"), Step::Index(index)],
            "mode",
            &json!(to.as_str()),
        )
        .map_err(Error::invalid)?;
        if let Some(op) = expected
            .pointer_mut(&format!("/operations/{index}"))
            .and_then(Value::as_object_mut)
        {
            op.insert("mode".into(), json!(to.as_str()));
        }
    }
    text = jsonedit::set_member(&text, &[], "revision", &json!(revision)).map_err(Error::invalid)?;
    if let Some(object) = expected.as_object_mut() {
        object.insert("revision".into(), json!(revision));
    }
    check_edit(&text, &expected)?;
    Ok(text)
}

fn check_edit(text: &str, expected: &Value) -> Result<()> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value == *expected => Ok(()),
        _ => Err(Error::invalid(
            "cannot edit the configuration in place (please report this)",
        )),
    }
}

/// Members of one group must start from one mode, or the group would not
/// be in one phase after the change.
fn check_group_modes(
    planned: &[Planned],
    groups: &std::collections::BTreeMap<String, String>,
    guard: &Guard,
    overrides: &mut Vec<String>,
) -> Result<()> {
    let mut seen: Vec<&str> = Vec::new();
    for p in planned {
        let Some(group) = groups.get(&p.operation) else {
            continue;
        };
        if seen.contains(&group.as_str()) {
            continue;
        }
        seen.push(group);
        let members: Vec<&Planned> = planned
            .iter()
            .filter(|q| groups.get(&q.operation) == Some(group))
            .collect();
        let froms: Vec<Option<Mode>> = members.iter().map(|q| q.from).collect();
        let tos: Vec<Option<Mode>> = members.iter().map(|q| q.to).collect();
        let mixed = |modes: &[Option<Mode>]| modes.windows(2).any(|w| w.first() != w.get(1));
        if mixed(&froms) || mixed(&tos) {
            let words: Vec<String> = members.iter().map(|q| q.words()).collect();
            let problem = format!("group {group:?} does not move as one: {}", words.join(", "));
            if !guard.force {
                return Err(Error::new(
                    Kind::GroupSplit,
                    format!("{problem} (nothing written; --force with a --reason overrides)"),
                ));
            }
            overrides.push(problem);
        }
    }
    Ok(())
}

fn check_readiness(
    planned: &[Planned],
    evidence: &[Evidence],
    groups: &std::collections::BTreeMap<String, String>,
    guard: &Guard,
    overrides: &mut Vec<String>,
    have_live: bool,
) -> Result<()> {
    if !have_live {
        return Ok(());
    }
    let mut not_ready = Vec::new();
    for p in planned.iter().filter(|p| p.needs_readiness()) {
        match evidence.iter().find(|e| e.operation == p.operation) {
            Some(e) if e.ready() => {}
            Some(e) => {
                let group = groups.get(&p.operation).map_or_else(String::new, |g| {
                    format!(" (group {g:?} is ready only when all its members are)")
                });
                not_ready.push(format!("{} is not READY: {}{group}", p.operation, e.verdict));
            }
            None => not_ready.push(format!("{} is not READY: no evidence", p.operation)),
        }
    }
    if not_ready.is_empty() {
        return Ok(());
    }
    if !guard.force {
        return Err(Error::new(
            Kind::NotReady,
            format!(
                "{} (nothing written; --force with a --reason overrides, and is recorded)",
                not_ready.join("; ")
            ),
        ));
    }
    overrides.extend(not_ready);
    Ok(())
}

/// Builds the output of a change as it goes.
struct Reporter {
    lines: Vec<String>,
    json: Value,
}

impl Reporter {
    fn new(
        action: &Action,
        doc: &Document,
        old_revision: Option<&str>,
        draft: &Draft,
        evidence: &[Evidence],
        guard: &Guard,
        log: &Path,
    ) -> Reporter {
        let label = doc.label();
        let old = old_revision.map_or_else(|| "unknown".to_string(), |r| format!("revision {r:?}"));
        let head = match action {
            Action::Apply { source, .. } => {
                format!("apply {source} to {label}: {old} -> revision {:?}", draft.new_revision)
            }
            _ => format!(
                "{} in {label}: {old} -> revision {:?}",
                action.name(),
                draft.new_revision
            ),
        };
        let mut lines = vec![head];
        for p in &draft.planned {
            let verdict = evidence
                .iter()
                .find(|e| e.operation == p.operation)
                .map_or_else(String::new, |e| format!(" [{}]", e.verdict));
            let group = p.group.as_ref().map_or_else(String::new, |g| format!(" (group {g})"));
            lines.push(format!("  {}{group}{verdict}", p.words()));
        }
        lines.extend(draft.other_changes.iter().map(|line| format!("  {line}")));
        if draft.planned.is_empty() && draft.other_changes.is_empty() {
            lines.push("  no changes".to_string());
        }
        lines.extend(draft.notes.iter().map(|note| format!("  note: {note}")));
        for o in &draft.overrides {
            lines.push(format!("  FORCED: {o}"));
        }
        let json = json!({
            "command": action.name(),
            "file": label,
            "format": doc.format.name(),
            "old_revision": old_revision,
            "new_revision": draft.new_revision,
            "new_revision_fingerprint": revision_fingerprint(&draft.new_revision),
            "old_sha256": doc.sha256(),
            "changes": draft.planned.iter().map(|p| json!({
                "operation": p.operation,
                "group": p.group,
                "from": p.from.map(Mode::as_str),
                "to": p.to.map(Mode::as_str),
            })).collect::<Vec<_>>(),
            "other_changes": draft.other_changes,
            "notes": draft.notes,
            "evidence": evidence.iter().map(Evidence::to_json).collect::<Vec<_>>(),
            "reason": guard.reason,
            "force": guard.force,
            "overrides": draft.overrides,
            "allow_batch": guard.allow_batch,
            "audit_log": log.display().to_string(),
            "dry_run": guard.dry_run,
            "unchanged": false,
            "written": false,
            "git_commit": Value::Null,
            "confirmation": Value::Null,
        });
        Reporter { lines, json }
    }

    fn line(&mut self, line: String) {
        self.lines.push(line);
    }

    fn unchanged(&mut self) {
        crate::set_field(&mut self.json, "unchanged", json!(true));
        self.lines.push("unchanged: nothing written".to_string());
    }

    fn finish(self, error: Option<Error>) -> Report {
        Report {
            lines: self.lines,
            json: self.json,
            error,
        }
    }
}

#[cfg(test)]
mod tests;
