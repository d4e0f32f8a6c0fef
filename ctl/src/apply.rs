//! `apply CONFIG`: a whole new configuration, from a plugin JSON file, a
//! WasmPlugin manifest's pluginConfig, or standard input, put into the
//! target file through the guarded change (crate::change).

use std::path::Path;

use crate::change::{self, Action};
use crate::cli::ApplyArgs;
use crate::document::{Document, Format};
use crate::error::Error;
use crate::{parse_admin, read_target, target_path, Printed, Run};

/// The new configuration's JSON text, and a label for messages.
pub fn source(path: &Path) -> Result<(String, String), Error> {
    let doc = Document::read(path)?;
    // Validate first: an invalid configuration is refused before the target is read.
    doc.plan()?;
    let config = match doc.format {
        Format::Plain | Format::WasmPlugin => doc.config.clone(),
        // An ECDS file as the source: its plugin configuration.
        Format::Ecds => doc.config.clone(),
    };
    Ok((config, doc.label()))
}

pub fn run(args: &ApplyArgs) -> Run {
    let (config, label) = source(&args.source)?;
    let path = target_path(&args.target, "apply");
    if args.target.ecds.is_some() {
        read_target(&args.target, "apply")?;
    }
    let admin = parse_admin(&args.admin.admin)?;
    let guard = change::Guard {
        reason: args.reason.clone(),
        force: args.force,
        allow_batch: args.allow_batch,
        git: args.git,
        dry_run: args.dry_run,
        if_match: args.if_match.clone(),
    };
    let wait = change::Wait {
        enabled: !args.wait.no_wait,
        timeout: args.wait.timeout,
    };
    let report = change::run(
        &change::Target {
            path: &path,
            admin: &admin,
            audit_log: args.target.audit_log.clone(),
            fleet: crate::fleet::Fleet::from_args(&args.fleet)?,
        },
        &Action::Apply { config, source: label },
        &guard,
        &wait,
    )?;
    Ok((
        Printed {
            lines: report.lines,
            json: report.json,
        },
        report.error,
    ))
}
