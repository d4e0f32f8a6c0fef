//! `--git`: commit the new configuration file, with the audit record as
//! the commit message, in the repository the file is in.

use std::path::Path;
use std::process::Command;

use crate::audit::Record;
use crate::error::{Error, Kind, Result};

/// Commits `file` alone (other staged changes stay staged) and returns the
/// new commit's hash.
pub fn commit(file: &Path, record: &Record) -> Result<String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .ok_or_else(|| Error::new(Kind::Git, format!("{}: not a file", file.display())))?;
    let mut summary = record.clone();
    summary.config = None; // the commit holds the file itself
    let body = serde_json::to_string_pretty(&summary).map_err(|err| Error::new(Kind::Git, err.to_string()))?;
    let moved: Vec<String> = record
        .changes
        .iter()
        .map(|c| format!("{} {}", c.operation, c.to.as_deref().unwrap_or("removed")))
        .collect();
    let title = if moved.is_empty() {
        format!("parallel-run: {} -> revision {}", record.action, record.new_revision)
    } else {
        format!(
            "parallel-run: {} {} (revision {})",
            record.action,
            moved.join(", "),
            record.new_revision
        )
    };
    let message = format!("{title}\n\n{}\n\n{body}\n", record.reason.as_deref().unwrap_or(""));
    run(dir, &["add", "--"], name)?;
    run_args(dir, &["commit", "--quiet", "-m", &message, "--"], Some(name))?;
    let head = run_args(dir, &["rev-parse", "HEAD"], None)?;
    Ok(head.trim().to_string())
}

fn run(dir: &Path, args: &[&str], file: &std::ffi::OsStr) -> Result<String> {
    run_args(dir, args, Some(file))
}

fn run_args(dir: &Path, args: &[&str], file: Option<&std::ffi::OsStr>) -> Result<String> {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args);
    if let Some(file) = file {
        command.arg(file);
    }
    let output = command
        .output()
        .map_err(|err| Error::new(Kind::Git, format!("cannot run git: {err}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::new(
            Kind::Git,
            format!(
                "git {} in {}: {}",
                args.first().unwrap_or(&""),
                dir.display(),
                stderr.trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
