//! The audit trail: an append-only JSON Lines log next to the configuration
//! file (`<name>.audit.jsonl`), one record per change with who, why, what
//! changed, the readiness evidence at the time, and the whole new
//! configuration (so `rollback --to-revision` needs no git); plus one
//! `outcome` record when Envoy confirmed or refused it.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The record format's version, for readers of the log.
pub const VERSION: u32 = 1;
/// A line above this is not ours (a record with the largest configuration
/// the CLI reads is below it).
const MAX_LINE: u64 = 65 << 20;

/// One operation's mode change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeChange {
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `None`: the operation is new.
    pub from: Option<String>,
    /// `None`: the operation was removed.
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// `change` (a configuration written), `outcome` (what Envoy did with
    /// it), `baseline` (the configuration before the first audited change).
    pub kind: String,
    pub time: String,
    pub user: String,
    pub host: String,
    /// `cutover`, `rollback`, `set-mode`, `apply`, `restore`, `baseline`.
    pub action: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub file: String,
    #[serde(default)]
    pub old_revision: Option<String>,
    pub new_revision: String,
    /// `revision_fingerprint(new_revision)`: the value of the filter's
    /// revision gauge once Envoy runs it.
    pub new_revision_fingerprint: u64,
    #[serde(default)]
    pub old_sha256: Option<String>,
    #[serde(default)]
    pub new_sha256: Option<String>,
    #[serde(default)]
    pub changes: Vec<ModeChange>,
    /// Readiness evidence per moved operation (readiness::Evidence::to_json).
    #[serde(default)]
    pub evidence: Vec<Value>,
    #[serde(default)]
    pub force: bool,
    /// The guards `--force` overrode, in words.
    #[serde(default)]
    pub overrides: Vec<String>,
    #[serde(default)]
    pub allow_batch: bool,
    /// For `outcome` records: active, accepted, refused, not_confirmed, not_waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The whole new plugin configuration (change and baseline records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// `dir/parallel-run.audit.jsonl` for `dir/parallel-run.json`.
pub fn path_for(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| "config".into(), |s| s.to_string_lossy().into_owned());
    config.with_file_name(format!("{stem}.audit.jsonl"))
}

/// Appends one record as one line (one write, then fsync).
pub fn append(log: &Path, record: &Record) -> Result<()> {
    let mut line = serde_json::to_string(record).map_err(|err| Error::io(format!("cannot serialise: {err}")))?;
    line.push('\n');
    let at = |err: std::io::Error| Error::io(format!("{}: cannot append the audit record: {err}", log.display()));
    let mut file = OpenOptions::new().create(true).append(true).open(log).map_err(at)?;
    file.write_all(line.as_bytes()).map_err(at)?;
    file.sync_all().map_err(at)
}

/// Every record, oldest first. A missing log is empty; a line that is not a
/// record is an error naming its number.
pub fn read(log: &Path) -> Result<Vec<Record>> {
    let file = match std::fs::File::open(log) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io(format!("{}: cannot read: {err}", log.display()))),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    for number in 1.. {
        let mut line = Vec::new();
        let read = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|err| Error::io(format!("{}: cannot read: {err}", log.display())))?;
        if read == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = serde_json::from_slice(&line)
            .map_err(|err| Error::io(format!("{}: line {number}: not an audit record: {err}", log.display())))?;
        records.push(record);
    }
    Ok(records)
}

/// Every revision the log knows, for new revisions not to repeat them.
pub fn revisions(records: &[Record]) -> Vec<&str> {
    let mut out = Vec::new();
    for record in records {
        out.push(record.new_revision.as_str());
        if let Some(old) = &record.old_revision {
            out.push(old.as_str());
        }
    }
    out
}

/// The configuration recorded for `revision` (the last record that wrote it).
pub fn config_of<'a>(records: &'a [Record], revision: &str) -> Option<&'a Record> {
    records
        .iter()
        .rev()
        .find(|r| r.new_revision == revision && r.config.is_some() && r.kind != "outcome")
}

/// Who runs the command: `$USER` (or `$LOGNAME`), else the name of the
/// process's user id in /etc/passwd (containers often set neither).
pub fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_string())
}

fn user_from_passwd() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::TempDir;

    pub fn record(kind: &str, revision: &str) -> Record {
        Record {
            version: VERSION,
            kind: kind.into(),
            time: "2026-12-01T21:00:00Z".into(),
            user: "alice".into(),
            host: "laptop".into(),
            action: "cutover".into(),
            reason: Some("ready".into()),
            file: "parallel-run.json".into(),
            old_revision: Some("r0".into()),
            new_revision: revision.into(),
            new_revision_fingerprint: 1,
            old_sha256: None,
            new_sha256: None,
            changes: vec![ModeChange {
                operation: "getReturn".into(),
                group: None,
                from: Some("shadow".into()),
                to: Some("cutover".into()),
            }],
            evidence: vec![],
            force: false,
            overrides: vec![],
            allow_batch: false,
            outcome: None,
            detail: None,
            config: Some(format!("{{\"revision\":\"{revision}\"}}")),
        }
    }

    #[test]
    fn records_append_one_line_each_and_read_back() {
        let dir = TempDir::new("audit");
        let log = path_for(&dir.path.join("parallel-run.json"));
        assert_eq!(log.file_name().unwrap(), "parallel-run.audit.jsonl");
        assert!(read(&log).unwrap().is_empty());
        append(&log, &record("change", "r1")).unwrap();
        let mut outcome = record("outcome", "r1");
        outcome.config = None;
        outcome.outcome = Some("active".into());
        append(&log, &outcome).unwrap();
        append(&log, &record("change", "r2")).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 3);
        let records = read(&log).unwrap();
        assert_eq!(records[1], outcome);
        assert_eq!(config_of(&records, "r1").unwrap().kind, "change");
        assert!(config_of(&records, "r9").is_none());
        assert_eq!(revisions(&records), ["r1", "r0", "r1", "r0", "r2", "r0"]);

        std::fs::write(&log, format!("{text}not json\n")).unwrap();
        let err = read(&log).unwrap_err();
        assert!(err.message.contains("line 4: not an audit record"), "{err}");
    }
}
