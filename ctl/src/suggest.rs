//! `suggest`: what the filter learned, turned into a proposed configuration
//! change that only the operator applies. Nothing live is touched: the
//! proposal is printed (a readable diff, or `-o json`), and `--write FILE`
//! puts the proposed configuration into a new file, validated by the
//! filter's own code, to review and then `apply`.
//!
//! Sources and the rules they give (README "Suggested rules"):
//! - Envoy's `noise_path.<field>` gauges at 1 (learned noise: the serving
//!   backend's own answers differ there) ⇒ `compare.ignore_json_paths`, or
//!   `compare.ignore_headers` for `header:<name>`;
//! - evidence records (`evidence serve`), per differing field:
//!   - a string whose shape on both sides is uuid, iso8601 or http_date,
//!     with different hashes ⇒ the built-in mask of that name (a header
//!     of that shape ⇒ `ignore_headers`, since masks apply to bodies);
//!   - hint `permutation` ⇒ `unordered_arrays` (with `array_key` as the
//!     key when it names a member);
//!   - hint `rounding` ⇒ `number_tolerance.relative`, the largest
//!     `relative_delta` seen rounded up to one significant digit;
//!   - hint `case_only` ⇒ `compare.case_insensitive_keys: true`.
//!
//! Minimal: a rule the operation already has (its own `compare`, or the
//! defaults' it inherits) is not proposed again, and an ignore path already
//! covered by a wildcard or a parent path is left out. Proposals go into the
//! operation's own `compare`; since an operation's list replaces the
//! defaults' (README "Settings"), an inherited list is copied in first.
//!
//! Paths: evidence paths are concrete (`/items/3/id`); rules name every
//! index `*`. A key the filter hid (`{}`, per `name_keys`) becomes `*`; a
//! path of nothing but wildcards would ignore too much and is not proposed
//! (listed under "not proposed", with the reason).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::admin::Admin;
use crate::cli::SuggestArgs;
use crate::document::{self, Document};
use crate::error::{Error, Kind};
use crate::evidence::record::Record;
use crate::evidence::store::{Query, Store};
use crate::jsonedit::{self, Step};
use crate::live::{self, Live, STATS_PREFIX};
use crate::{parse_admin, usage, Printed, Run};

/// The built-in masks a field's shape can call for (core/src/compare/mask.rs).
const MASKED_SHAPES: [&str; 3] = ["uuid", "iso8601", "http_date"];

/// Records one run reads, newest first: enough for every pattern a team
/// would act on, and a bound on memory (a record is at most 256 fields).
pub const MAX_RECORDS: usize = 10_000;

/// Request ids printed per proposal; the count says how many more.
const SHOWN_REQUEST_IDS: usize = 5;

/// One proposed rule, before it is checked against the configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    IgnoreJsonPath(String),
    IgnoreHeader(String),
    Mask(String),
    UnorderedArray { path: String, key: Option<String> },
    NumberTolerance,
    CaseInsensitiveKeys,
}

impl Rule {
    /// The `compare` member the rule goes into.
    pub fn member(&self) -> &'static str {
        match self {
            Rule::IgnoreJsonPath(_) => "ignore_json_paths",
            Rule::IgnoreHeader(_) => "ignore_headers",
            Rule::Mask(_) => "masks",
            Rule::UnorderedArray { .. } => "unordered_arrays",
            Rule::NumberTolerance => "number_tolerance",
            Rule::CaseInsensitiveKeys => "case_insensitive_keys",
        }
    }

    /// The list entry (for list members).
    fn entry(&self) -> Option<Value> {
        match self {
            Rule::IgnoreJsonPath(path) | Rule::IgnoreHeader(path) | Rule::Mask(path) => Some(json!(path)),
            Rule::UnorderedArray { path, key: Some(key) } => Some(json!({"path": path, "key": key})),
            Rule::UnorderedArray { path, key: None } => Some(json!(path)),
            Rule::NumberTolerance | Rule::CaseInsensitiveKeys => None,
        }
    }
}

/// Where a rule comes from, and what backs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backing {
    /// `noise` (Envoy's gauges) or `evidence` (records).
    pub source: &'static str,
    /// Records behind it (0 for noise).
    pub records: usize,
    pub request_ids: BTreeSet<String>,
    pub revisions: BTreeSet<String>,
    /// The fields (as the filter named them) behind it.
    pub fields: BTreeSet<String>,
    /// Why, in words.
    pub why: String,
    /// For `number_tolerance`: the largest relative delta seen.
    pub max_delta: f64,
    /// The record ids seen, so one record counts once per rule.
    seen: BTreeSet<i64>,
}

/// What was found for one operation, by rule.
pub type Findings = BTreeMap<String, BTreeMap<Rule, Backing>>;

/// Something learned that is deliberately not proposed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub operation: String,
    pub field: String,
    pub reason: String,
}

/// One proposal, checked against the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub operation: String,
    pub rule: Rule,
    /// The member's value after the change.
    pub value: Value,
    /// Its value before (`null`: not set on the operation or the defaults).
    pub was: Value,
    pub backing: Backing,
}

// ---------------------------------------------------------------------------
// what was learned

/// Learned noise per operation: fields whose `noise_path` gauge is not 0.
pub fn noise_from_stats(stats: &BTreeMap<String, u64>, operations: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for operation in operations {
        let prefix = format!("{STATS_PREFIX}parallel_run.operation.{operation}.noise_path.");
        let fields: Vec<String> = stats
            .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
            .map_while(|(name, value)| Some((name.strip_prefix(&prefix)?, *value)))
            .filter(|(_, value)| *value != 0)
            .map(|(field, _)| field.to_string())
            .collect();
        if !fields.is_empty() {
            out.insert(operation.clone(), fields);
        }
    }
    out
}

pub fn learn_noise(
    noise: &BTreeMap<String, Vec<String>>,
    admin: &str,
    findings: &mut Findings,
    skipped: &mut BTreeSet<Skipped>,
) {
    for (operation, fields) in noise {
        for field in fields {
            let rule = if let Some(name) = field.strip_prefix("header:") {
                Rule::IgnoreHeader(name.to_string())
            } else if field.starts_with('/') {
                match rule_path(field) {
                    Ok(path) => Rule::IgnoreJsonPath(path),
                    Err(reason) => {
                        skipped.insert(Skipped {
                            operation: operation.clone(),
                            field: field.clone(),
                            reason: format!("learned noise, but {reason}"),
                        });
                        continue;
                    }
                }
            } else {
                // `status`, `(body)`, `(root)`: whole answers are never noise
                // (the filter does not learn them); nothing to ignore.
                continue;
            };
            let backing = findings
                .entry(operation.clone())
                .or_default()
                .entry(rule)
                .or_insert_with(|| Backing {
                    source: "noise",
                    why: format!("learned noise: the serving backend's own answers differ here (noise_path gauge at 1 on {admin})"),
                    ..Backing::default()
                });
            backing.fields.insert(field.clone());
        }
    }
}

/// A rule's path from a diff or evidence path: indices and hidden keys
/// become `*`. Refused when nothing but wildcards would be left.
fn rule_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Ok(String::new());
    }
    let tokens: Vec<&str> = path
        .split('/')
        .skip(1)
        .map(|token| {
            let index = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
            if index || token == crate_hidden_key() || token == "*" {
                "*"
            } else {
                token
            }
        })
        .collect();
    if tokens.iter().all(|t| *t == "*") && path.contains(crate_hidden_key()) {
        return Err(format!(
            "its keys are hidden (name_keys), and {:?} would cover every field at that depth: name the keys in name_keys to get a precise rule",
            format!("/{}", tokens.join("/"))
        ));
    }
    Ok(format!("/{}", tokens.join("/")))
}

fn crate_hidden_key() -> &'static str {
    parallel_run_core::diff_path::HIDDEN_KEY
}

pub fn learn_records(records: &[(i64, Record)], findings: &mut Findings, skipped: &mut BTreeSet<Skipped>) {
    for (id, record) in records {
        for field in &record.fields {
            let (rule, why) = match rule_of(field) {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(reason) => {
                    skipped.insert(Skipped {
                        operation: record.operation.clone(),
                        field: field.path.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let backing = findings
                .entry(record.operation.clone())
                .or_default()
                .entry(rule)
                .or_insert_with(|| Backing {
                    source: "evidence",
                    why,
                    ..Backing::default()
                });
            if backing.seen.insert(*id) {
                backing.records += 1;
            }
            backing.request_ids.insert(record.request_id.clone());
            backing.revisions.insert(record.revision.clone());
            backing.fields.insert(match field.axis.as_str() {
                "header" => format!("header:{}", field.path),
                _ => field.path.clone(),
            });
            if let Some(delta) = field.relative_delta {
                backing.max_delta = backing.max_delta.max(delta);
            }
        }
    }
}

/// The rule one differing field calls for, if any.
fn rule_of(field: &crate::evidence::record::Field) -> Result<Option<(Rule, String)>, String> {
    let (a, b) = (&field.serving, &field.shadow);
    let body = field.axis == "body";
    match field.hint.as_deref() {
        Some("permutation") if body => {
            let path = rule_path(&field.path)?;
            let key = field
                .array_key
                .clone()
                .filter(|k| k.starts_with('/') && !k.contains(crate_hidden_key()) && !k.contains('*'));
            let why = match &key {
                Some(key) => format!("the same elements in another order, each with a unique {key}"),
                None => "the same elements in another order".to_string(),
            };
            return Ok(Some((Rule::UnorderedArray { path, key }, why)));
        }
        Some("rounding") if body => {
            if field.relative_delta.is_none() {
                return Err("rounding hint without a relative_delta".into());
            }
            return Ok(Some((
                Rule::NumberTolerance,
                "numbers that differ by rounding only".to_string(),
            )));
        }
        Some("case_only") if body => {
            return Ok(Some((
                Rule::CaseInsensitiveKeys,
                "keys that differ in ASCII case only".to_string(),
            )));
        }
        _ => {}
    }
    let shaped = a.kind == "string"
        && b.kind == "string"
        && a.shape.is_some()
        && a.shape == b.shape
        && a.shape.as_deref().is_some_and(|s| MASKED_SHAPES.contains(&s));
    let hashes_differ = a.hash.is_some() && b.hash.is_some() && a.hash != b.hash;
    if !(shaped && hashes_differ) {
        return Ok(None);
    }
    let shape = a.shape.clone().unwrap_or_default();
    match field.axis.as_str() {
        "body" => Ok(Some((
            Rule::Mask(shape.clone()),
            format!("a value shaped {shape} on both sides, different values"),
        ))),
        "header" => Ok(Some((
            Rule::IgnoreHeader(field.path.to_ascii_lowercase()),
            format!("a header value shaped {shape} on both sides, different values (masks apply to bodies only)"),
        ))),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// checked against the configuration

/// Proposals for each finding that the configuration does not already have,
/// and the findings it has ("already covered") or that lack records.
pub fn propose(
    config: &Value,
    findings: &Findings,
    min_records: usize,
    skipped: &mut BTreeSet<Skipped>,
) -> Vec<Proposal> {
    let mut proposals = Vec::new();
    let operations = config
        .get("operations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (operation, rules) in findings {
        let Some(index) = operations
            .iter()
            .position(|op| op.get("id").and_then(Value::as_str) == Some(operation))
        else {
            continue;
        };
        // Per member, the value it has now and gets; lists grow in place.
        let mut now: BTreeMap<&'static str, Value> = BTreeMap::new();
        // Fields a proposed mask takes care of: ignoring them as well would
        // compare less for nothing (a mask still compares the rest).
        let masked: BTreeMap<String, &str> = rules
            .iter()
            .filter(|(_, b)| b.source == "evidence" && b.records >= min_records)
            .filter_map(|(rule, b)| match rule {
                Rule::Mask(name) => Some((b, name.as_str())),
                _ => None,
            })
            .flat_map(|(b, name)| b.fields.iter().filter_map(move |f| Some((rule_path(f).ok()?, name))))
            .collect();
        for (rule, backing) in rules {
            if let (Rule::IgnoreJsonPath(path), Some(mask)) = (rule, rule_masked(rule, &masked)) {
                skipped.insert(Skipped {
                    operation: operation.clone(),
                    field: path.clone(),
                    reason: format!("learned noise, but the proposed mask {mask:?} covers it"),
                });
                continue;
            }
            if backing.source == "evidence" && backing.records < min_records {
                skipped.insert(Skipped {
                    operation: operation.clone(),
                    field: fields_text(backing),
                    reason: format!(
                        "{} {}: only {} record(s), --min-records {min_records}",
                        rule.member(),
                        rule_text(rule, backing),
                        backing.records
                    ),
                });
                continue;
            }
            let member = rule.member();
            let was = effective(config, index, member);
            let current = now.entry(member).or_insert_with(|| was.clone()).clone();
            let running = if is_list_member(member) {
                running_list(config, &current, member)
            } else {
                Vec::new()
            };
            match next_value(rule, backing, &current, &running) {
                Some(value) => {
                    now.insert(member, value.clone());
                    proposals.push(Proposal {
                        operation: operation.clone(),
                        rule: rule.clone(),
                        value,
                        was: current,
                        backing: backing.clone(),
                    });
                }
                None => {
                    skipped.insert(Skipped {
                        operation: operation.clone(),
                        field: fields_text(backing),
                        reason: format!("{member} {}: already in the configuration", rule_text(rule, backing)),
                    });
                }
            }
        }
    }
    proposals
}

/// The mask proposed for the field an ignore path names, if any.
fn rule_masked<'a>(rule: &Rule, masked: &BTreeMap<String, &'a str>) -> Option<&'a str> {
    match rule {
        Rule::IgnoreJsonPath(path) => masked.get(path).copied(),
        _ => None,
    }
}

/// The member's value as the operation writes it: its own, or, for a
/// value that is not a list, the defaults' (a proposal then writes the
/// whole value into the operation). A list is the operation's own entries
/// only: the filter adds the defaults' list to it (core/src/config/rules.rs),
/// so copying them in would repeat them.
fn effective(config: &Value, index: usize, member: &str) -> Value {
    let own = config
        .pointer(&format!("/operations/{index}/compare"))
        .and_then(|c| c.get(member));
    if is_list_member(member) {
        return own.cloned().unwrap_or(Value::Null);
    }
    let inherited = config.pointer("/defaults/compare").and_then(|c| c.get(member));
    own.or(inherited).cloned().unwrap_or(Value::Null)
}

fn is_list_member(member: &str) -> bool {
    matches!(
        member,
        "ignore_json_paths" | "ignore_headers" | "masks" | "unordered_arrays"
    )
}

/// The entries of a list member the operation runs with: its own (a list,
/// or `{"replace": [...]}`) and, unless it replaces them, the defaults'.
fn running_list(config: &Value, own: &Value, member: &str) -> Vec<Value> {
    if let Some(replaced) = own.get("replace").and_then(Value::as_array) {
        return replaced.clone();
    }
    let mut entries = own.as_array().cloned().unwrap_or_default();
    if let Some(inherited) = config
        .pointer("/defaults/compare")
        .and_then(|c| c.get(member))
        .and_then(Value::as_array)
    {
        entries.extend(inherited.iter().cloned());
    }
    entries
}

/// `own` (a list, `{"replace": [...]}` or nothing) with `entry` added, in
/// the same shape.
fn with_entry(own: &Value, entry: Value) -> Value {
    if let Some(replaced) = own.get("replace").and_then(Value::as_array) {
        let mut list = replaced.clone();
        list.push(entry);
        return json!({ "replace": list });
    }
    let mut list = own.as_array().cloned().unwrap_or_default();
    list.push(entry);
    Value::Array(list)
}

/// The member's value with the rule in it; `None` when it is there already
/// (for a list: in the entries the operation runs with, `running`).
fn next_value(rule: &Rule, backing: &Backing, current: &Value, running: &[Value]) -> Option<Value> {
    match rule {
        Rule::NumberTolerance => {
            let wanted = round_up(backing.max_delta);
            let had = current.get("relative").and_then(Value::as_f64);
            if had.is_some_and(|had| had >= wanted) {
                return None;
            }
            let mut object = current.as_object().cloned().unwrap_or_default();
            object.insert("relative".into(), json!(wanted));
            Some(Value::Object(object))
        }
        Rule::CaseInsensitiveKeys => (*current != json!(true)).then_some(json!(true)),
        _ => {
            if running.iter().any(|entry| covers(rule, entry)) {
                return None;
            }
            rule.entry().map(|entry| with_entry(current, entry))
        }
    }
}

/// Whether an existing list entry already does what `rule` would.
fn covers(rule: &Rule, entry: &Value) -> bool {
    match rule {
        Rule::IgnoreJsonPath(path) => entry.as_str().is_some_and(|p| pointer_covers(p, path, true)),
        Rule::IgnoreHeader(name) => entry.as_str().is_some_and(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == *name,
            }
        }),
        Rule::Mask(name) => entry.as_str() == Some(name) || entry.get("name").and_then(Value::as_str) == Some(name),
        // The first entry naming an array wins: any entry for it, keyed or not.
        Rule::UnorderedArray { path, .. } => entry
            .as_str()
            .or_else(|| entry.get("path").and_then(Value::as_str))
            .is_some_and(|p| pointer_covers(p, path, false)),
        Rule::NumberTolerance | Rule::CaseInsensitiveKeys => false,
    }
}

/// Whether pointer pattern `pattern` (`*` for any token) names `path`, or
/// with `parents`, one of its ancestors (removing `/a` removes `/a/b`).
fn pointer_covers(pattern: &str, path: &str, parents: bool) -> bool {
    if pattern.is_empty() || path.is_empty() {
        return pattern == path || (parents && pattern.is_empty());
    }
    let pattern: Vec<&str> = pattern.split('/').skip(1).collect();
    let path: Vec<&str> = path.split('/').skip(1).collect();
    let fits = pattern.len() == path.len() || (parents && pattern.len() < path.len());
    fits && pattern.iter().zip(&path).all(|(p, t)| *p == "*" || p == t)
}

/// Up to one significant digit: 3.2e-9 ⇒ 4e-9, 1e-6 ⇒ 1e-6.
pub fn round_up(delta: f64) -> f64 {
    if !(delta.is_finite() && delta > 0.0) {
        return 0.0;
    }
    let exponent = delta.log10().floor() as i32;
    let scale = 10f64.powi(exponent);
    // Shave float noise (3e-9 / 1e-9 = 3.0000000000000004) before ceil.
    let digit = (delta / scale * 1e9).round() / 1e9;
    let digit = digit.ceil();
    let rounded = digit * scale;
    // Printed exactly as written: 4e-9, not 4.000000000000001e-9.
    format!("{digit}e{exponent}").parse().unwrap_or(rounded)
}

fn fields_text(backing: &Backing) -> String {
    backing.fields.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn rule_text(rule: &Rule, backing: &Backing) -> String {
    match rule {
        Rule::NumberTolerance => format!("relative {}", round_up(backing.max_delta)),
        Rule::CaseInsensitiveKeys => "true".into(),
        _ => rule.entry().map(|e| e.to_string()).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------
// the new configuration

/// The configuration text with every proposal in the operations' own
/// `compare`, everything else byte for byte.
pub fn rewrite(config_text: &str, config: &Value, proposals: &[Proposal]) -> Result<String, String> {
    let mut text = config_text.to_string();
    let mut expected = config.clone();
    // The last proposal per (operation, member) holds the member's final value.
    let mut finals: BTreeMap<(&str, &str), &Value> = BTreeMap::new();
    for proposal in proposals {
        finals.insert((proposal.operation.as_str(), proposal.rule.member()), &proposal.value);
    }
    let operations = config
        .get("operations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for ((operation, member), value) in finals {
        let index = operations
            .iter()
            .position(|op| op.get("id").and_then(Value::as_str) == Some(operation))
            .ok_or_else(|| format!("operation {operation} is not in the configuration"))?;
        let has_compare = config
            .pointer(&format!("/operations/{index}/compare"))
            .is_some_and(Value::is_object);
        let compare_now = expected
            .pointer(&format!("/operations/{index}/compare"))
            .is_some_and(Value::is_object);
        if has_compare || compare_now {
            text = jsonedit::set_member(
                &text,
                &[Step::Key("operations"), Step::Index(index), Step::Key("compare")],
                member,
                value,
            )?;
        } else {
            text = jsonedit::set_member(
                &text,
                &[Step::Key("operations"), Step::Index(index)],
                "compare",
                &json!({ member: value }),
            )?;
        }
        if let Some(op) = expected
            .pointer_mut(&format!("/operations/{index}"))
            .and_then(Value::as_object_mut)
        {
            let compare = op.entry("compare").or_insert_with(|| Value::Object(Map::new()));
            if let Some(compare) = compare.as_object_mut() {
                compare.insert(member.to_string(), (*value).clone());
            }
        }
    }
    let parsed: Value = serde_json::from_str(&text).map_err(|err| format!("the edit broke the JSON: {err}"))?;
    if parsed != expected {
        return Err("the edited text does not hold the proposed configuration".into());
    }
    Ok(text)
}

// ---------------------------------------------------------------------------
// the command

pub fn run(args: &SuggestArgs) -> Run {
    if args.admin.is_none() && args.evidence_db.is_none() {
        usage("suggest needs --admin URL (learned noise) or --evidence-db FILE (evidence records), or both");
    }
    let doc = Document::read(&args.config)?;
    let plan = doc.plan()?;
    let config: Value = serde_json::from_str(&doc.config)
        .map_err(|err| Error::invalid(format!("{}: invalid JSON: {err}", doc.label())))?;
    let all: Vec<String> = plan.operations.iter().map(|op| op.id.clone()).collect();
    let selected: Vec<String> = if args.operations.is_empty() {
        all.clone()
    } else {
        for op in &args.operations {
            if !all.contains(op) {
                return Err(Error::new(
                    Kind::UnknownOperation,
                    format!("{}: no operation {op:?}", doc.label()),
                ));
            }
        }
        args.operations.clone()
    };
    let mut findings = Findings::new();
    let mut skipped = BTreeSet::new();
    let mut sources = Vec::new();
    let mut sources_json = Map::new();
    if let Some(url) = &args.admin {
        let admin: Admin = parse_admin(url)?;
        let filter_name = doc
            .ecds_name
            .clone()
            .unwrap_or_else(|| live::DEFAULT_FILTER_NAME.to_string());
        let live = Live::read(&admin, &filter_name)?;
        let noise = noise_from_stats(&live.stats, &selected);
        let fields: usize = noise.values().map(Vec::len).sum();
        sources.push(format!("Envoy {} ({fields} learned noise fields)", admin.url()));
        sources_json.insert("admin".into(), json!({"url": admin.url(), "noise_fields": fields}));
        learn_noise(&noise, &admin.url(), &mut findings, &mut skipped);
    }
    if let Some(db) = &args.evidence_db {
        let store = Store::read(db).map_err(Error::io)?;
        let stored = store
            .list(&Query {
                operations: &selected,
                since_unix_nano: None,
                limit: MAX_RECORDS,
            })
            .map_err(Error::io)?;
        let bound = if stored.len() == MAX_RECORDS {
            format!(", the newest {MAX_RECORDS}")
        } else {
            String::new()
        };
        sources.push(format!("{} ({} records{bound})", db.display(), stored.len()));
        sources_json.insert(
            "evidence_db".into(),
            json!({"file": db.display().to_string(), "records": stored.len()}),
        );
        let records: Vec<(i64, Record)> = stored.into_iter().map(|s| (s.id, s.record)).collect();
        learn_records(&records, &mut findings, &mut skipped);
    }
    let proposals = propose(&config, &findings, args.min_records, &mut skipped);
    let mut written = None;
    if let Some(out) = &args.write {
        written = Some(write(&doc, &config, &proposals, out)?);
    }
    let label = doc.label();
    let mut lines = text_lines(&label, &plan.revision, &sources, &proposals, &config, &skipped);
    if let Some(out) = &written {
        lines.push(format!(
            "wrote {out} (validated; {label} is unchanged): review it, then `parallel-run-ctl apply {out} --config {label}`"
        ));
    }
    let json = json!({
        "config": label,
        "revision": plan.revision,
        "sources": sources_json,
        "proposals": proposals.iter().map(proposal_json).collect::<Vec<_>>(),
        "not_proposed": skipped.iter().map(|s| json!({"operation": s.operation, "field": s.field, "reason": s.reason})).collect::<Vec<_>>(),
        "written": written,
    });
    Ok((Printed { lines, json }, None))
}

/// Writes the proposed configuration to a new file, in the source's format.
fn write(doc: &Document, config: &Value, proposals: &[Proposal], out: &Path) -> Result<String, Error> {
    let label = out.display().to_string();
    if proposals.is_empty() {
        return Err(Error::io(format!("{label}: not written: nothing to propose")));
    }
    let text = rewrite(&doc.config, config, proposals).map_err(|err| Error::io(format!("{label}: {err}")))?;
    document::validate(&text).map_err(|err| err.context(format!("{label}: the proposed configuration is refused")))?;
    let bytes = doc.render(&text)?;
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|err| Error::io(format!("{label}: cannot create (it must be a new file): {err}")))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|err| Error::io(format!("{label}: cannot write: {err}")))?;
    Ok(label)
}

fn proposal_json(p: &Proposal) -> Value {
    let b = &p.backing;
    json!({
        "operation": p.operation,
        "member": format!("compare.{}", p.rule.member()),
        "entry": p.rule.entry(),
        "value": p.value,
        "was": p.was,
        "evidence": {
            "source": b.source,
            "why": b.why,
            "fields": b.fields,
            "records": b.records,
            "request_ids": b.request_ids,
            "revisions": b.revisions,
            "max_relative_delta": (p.rule == Rule::NumberTolerance).then_some(b.max_delta),
        },
    })
}

fn text_lines(
    label: &str,
    revision: &str,
    sources: &[String],
    proposals: &[Proposal],
    config: &Value,
    skipped: &BTreeSet<Skipped>,
) -> Vec<String> {
    let operations: BTreeSet<&str> = proposals.iter().map(|p| p.operation.as_str()).collect();
    let mut lines = vec![
        format!(
            "suggest: {} proposals for {} operations of {label} (revision {revision:?}); nothing is changed",
            proposals.len(),
            operations.len()
        ),
        format!("from: {}", sources.join("; ")),
    ];
    for operation in &operations {
        lines.push(String::new());
        lines.push(format!("{operation}:"));
        let mine: Vec<&Proposal> = proposals.iter().filter(|p| p.operation == *operation).collect();
        for p in &mine {
            let b = &p.backing;
            let head = match (&p.rule, p.rule.entry()) {
                (_, Some(entry)) => format!("  + compare.{} += {entry}", p.rule.member()),
                (_, None) => format!("  ~ compare.{} = {} (was {})", p.rule.member(), p.value, p.was),
            };
            lines.push(head);
            lines.push(format!("      {}: {}", fields_text(b), b.why));
            if b.source == "evidence" {
                let ids: Vec<&String> = b.request_ids.iter().take(SHOWN_REQUEST_IDS).collect();
                let more = b.request_ids.len().saturating_sub(SHOWN_REQUEST_IDS);
                let mut ids = ids.iter().map(|id| format!("{id:?}")).collect::<Vec<_>>().join(", ");
                if more > 0 {
                    ids.push_str(&format!(" (+{more})"));
                }
                let revisions: Vec<String> = b.revisions.iter().map(|r| format!("{r:?}")).collect();
                lines.push(format!(
                    "      evidence: {} records, revision {}, request ids {ids}",
                    b.records,
                    revisions.join(", ")
                ));
            }
        }
        let index = config.get("operations").and_then(Value::as_array).and_then(|ops| {
            ops.iter()
                .position(|op| op.get("id").and_then(Value::as_str) == Some(operation))
        });
        let before = index
            .and_then(|i| config.pointer(&format!("/operations/{i}/compare")))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut after = before.as_object().cloned().unwrap_or_default();
        for p in &mine {
            after.insert(p.rule.member().to_string(), p.value.clone());
        }
        lines.push(format!("  - \"compare\": {before}"));
        lines.push(format!("  + \"compare\": {}", Value::Object(after)));
    }
    if proposals.is_empty() {
        lines.push("nothing to propose".into());
    }
    if !skipped.is_empty() {
        lines.push(String::new());
        lines.push("not proposed:".into());
        for s in skipped {
            lines.push(format!("  {} {}: {}", s.operation, s.field, s.reason));
        }
    }
    lines
}

#[cfg(test)]
mod tests;
