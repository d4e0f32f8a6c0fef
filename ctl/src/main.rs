//! `parallel-run-ctl`: validate a parallel-run configuration with the very
//! code the filter runs; apply it, cut operations over and roll them back
//! guarded by readiness, audited, and confirmed by what Envoy reports; show
//! each operation's live counters, mode and readiness.

mod admin;
mod apply;
mod audit;
mod change;
mod cli;
mod document;
mod ecds;
mod error;
mod evidence;
mod fleet;
mod git;
mod groups;
mod history;
mod http;
mod jsonedit;
mod lint;
mod live;
mod lock;
mod openapi;
mod prometheus;
mod readiness;
mod report;
mod revision;
mod status;
mod suggest;
#[cfg(test)]
mod testutil;
mod transition;
mod wasmplugin;
mod watch;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::{json, Value};

use admin::Admin;
use cli::{Cli, Command, Output, TargetArgs};
use document::{Document, Format};
use error::{exit, Error, Kind};

/// What a command prints: lines for people, one document for scripts.
#[derive(Debug)]
pub struct Printed {
    pub lines: Vec<String>,
    pub json: Value,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = match &cli.command {
        Command::Status(args) if args.json => Output::Json,
        _ => cli.output,
    };
    let stdout = &mut io::stdout().lock();
    match run(cli) {
        Ok((printed, error)) => {
            print(stdout, output, &printed, error.as_ref());
            match error {
                None => ExitCode::SUCCESS,
                Some(error) => {
                    eprintln!("{error}");
                    ExitCode::from(exit_status(&error))
                }
            }
        }
        Err(error) => {
            if output == Output::Json {
                let document = json!({"error": error_json(&error)});
                let _ = writeln!(stdout, "{}", pretty(&document));
            }
            eprintln!("{error}");
            ExitCode::from(exit_status(&error))
        }
    }
}

/// Sets `key` in a JSON object (does nothing to anything else).
pub fn set_field(document: &mut Value, key: &str, value: Value) {
    if let Some(object) = document.as_object_mut() {
        object.insert(key.to_string(), value);
    }
}

fn exit_status(error: &Error) -> u8 {
    match error.kind {
        Kind::NotReadyStatus => exit::NOT_READY,
        Kind::UnreachableStatus => exit::UNREACHABLE,
        _ => exit::FAILED,
    }
}

fn error_json(error: &Error) -> Value {
    json!({"kind": error.kind.name(), "message": error.message})
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn print(out: &mut dyn Write, output: Output, printed: &Printed, error: Option<&Error>) {
    let result = match output {
        Output::Text => printed.lines.iter().try_for_each(|line| writeln!(out, "{line}")),
        Output::Json => {
            let mut document = printed.json.clone();
            if let (Some(error), Some(object)) = (error, document.as_object_mut()) {
                object.insert("error".into(), error_json(error));
            }
            writeln!(out, "{}", pretty(&document))
        }
    };
    if let Err(err) = result {
        eprintln!("parallel-run-ctl: cannot write the output: {err}");
    }
}

/// A usage error found after parsing: printed like clap's, exit status 2.
fn usage(message: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// The configuration file named by `--config`, `--ecds` or `$PARALLEL_RUN_CONFIG`.
fn target_path(args: &TargetArgs, command: &str) -> PathBuf {
    match (&args.config, &args.ecds) {
        (Some(_), Some(_)) => usage(&format!("{command} takes --ecds PATH or --config FILE, not both")),
        (Some(path), None) | (None, Some(path)) => path.clone(),
        (None, None) => match std::env::var_os("PARALLEL_RUN_CONFIG") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => usage(&format!(
                "{command} needs --ecds PATH or --config FILE (or PARALLEL_RUN_CONFIG)"
            )),
        },
    }
}

/// Reads the target, checking that `--ecds` names an ECDS resource file.
fn read_target(args: &TargetArgs, command: &str) -> Result<Document, Error> {
    let path = target_path(args, command);
    let doc = Document::read(&path)?;
    if args.ecds.is_some() && doc.format != Format::Ecds {
        return Err(Error::io(format!(
            "{}: --ecds names a {} file, not an ECDS resource file (use --config)",
            doc.label(),
            doc.format.name()
        )));
    }
    Ok(doc)
}

fn parse_admin(url: &str) -> Result<Admin, Error> {
    Admin::parse(url).map_err(|err| Error::new(Kind::Io, err))
}

type Run = Result<(Printed, Option<Error>), Error>;

fn run(cli: Cli) -> Run {
    match cli.command {
        Command::Validate { config } => validate(&config).map(|p| (p, None)),
        Command::Apply(args) => apply::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Cutover(args) => {
            let action = change::Action::Cutover(args.operations.clone());
            change_command(&args.target, &args.admin.admin, &action, &args.guard, &args.wait)
        }
        Command::Rollback(args) => {
            let action = match &args.to_revision {
                Some(revision) => change::Action::Restore(revision.clone()),
                None => change::Action::Rollback(args.operations.clone()),
            };
            change_command(&args.target, &args.admin.admin, &action, &args.guard, &args.wait)
        }
        Command::SetMode(args) => {
            let action = change::Action::SetMode(vec![args.operation.clone()], args.mode.mode());
            change_command(&args.target, &args.admin.admin, &action, &args.guard, &args.wait)
        }
        Command::History(args) => history::run(&args).map(|p| (p, None)),
        Command::Wait(args) => status::wait(&args),
        Command::Lint(args) => lint::run(&args),
        Command::Watch(args) => watch::run(&args, cli.output),
        Command::Init(args) => openapi::run(&args),
        Command::Evidence(args) => evidence::run(&args),
        Command::Suggest(args) => suggest::run(&args),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut command, "parallel-run-ctl", &mut bytes);
            raw(bytes)
        }
        Command::Man => {
            let mut bytes = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut bytes)
                .map_err(|err| Error::io(format!("cannot render the man page: {err}")))?;
            raw(bytes)
        }
    }
}

/// Generated text (completions, man page) is printed as it is, in either output mode.
fn raw(bytes: Vec<u8>) -> Run {
    io::stdout()
        .lock()
        .write_all(&bytes)
        .map_err(|err| Error::io(format!("cannot write the output: {err}")))?;
    std::process::exit(i32::from(exit::OK));
}

fn change_command(
    target: &TargetArgs,
    admin: &str,
    action: &change::Action,
    guard: &cli::GuardArgs,
    wait: &cli::WaitArgs,
) -> Run {
    let path = target_path(target, action.name());
    if target.ecds.is_some() {
        read_target(target, action.name())?;
    }
    let admin = parse_admin(admin)?;
    let fleet = fleet::Fleet::from_args(&guard.fleet)?;
    let guard = change::Guard {
        reason: Some(guard.reason.clone()),
        force: guard.force,
        allow_batch: guard.allow_batch,
        git: guard.git,
        dry_run: guard.dry_run,
        if_match: guard.if_match.clone(),
    };
    let wait = change::Wait {
        enabled: !wait.no_wait,
        timeout: wait.timeout,
    };
    let report = change::run(
        &change::Target {
            path: &path,
            admin: &admin,
            audit_log: target.audit_log.clone(),
            fleet,
        },
        action,
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

fn validate(config: &Path) -> Result<Printed, Error> {
    let doc = Document::read(config)?;
    let plan = doc.plan()?;
    let groups = groups::of(&plan);
    let mut lines = vec![format!("{}: valid, {}", doc.label(), report::headline(&plan))];
    lines.extend(report::table(&plan));
    let operations: Vec<Value> = plan
        .operations
        .iter()
        .map(|op| {
            json!({
                "id": op.id,
                "method": op.method,
                "path": op.path,
                "mode": op.mode.as_str(),
                "group": groups.get(&op.id),
                "serving": &*op.serving().0.cluster,
                "shadow": op.shadow().map(|b| b.cluster.to_string()),
                "target_match_rate": op.settings.target_match_rate,
                "min_samples": op.settings.min_samples,
            })
        })
        .collect();
    Ok(Printed {
        lines,
        json: json!({
            "file": doc.label(),
            "format": doc.format.name(),
            "valid": true,
            "revision": plan.revision,
            "sha256": doc.sha256(),
            "operations": operations,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TempDir, CONFIG_V1};

    #[test]
    fn validate_reports_the_file_and_the_field() {
        let dir = TempDir::new("validate");
        let good = dir.write("good.json", CONFIG_V1);
        let printed = validate(&good).unwrap();
        assert_eq!(
            printed.lines[0],
            format!("{}: valid, revision \"r1\", 2 operations", good.display())
        );
        assert!(printed.lines.iter().any(|l| l.contains("getReturn")));
        assert_eq!(printed.json["operations"][0]["mode"], "shadow");
        assert_eq!(printed.json["format"], "json");

        let bad = dir.write("bad.json", &CONFIG_V1.replace("\"shadow\"", "\"shadw\""));
        let err = validate(&bad).unwrap_err();
        assert_eq!(err.kind, Kind::InvalidConfig);
        assert!(
            err.message.starts_with(&format!(
                "{}: operations[0].mode: unknown variant `shadw`",
                bad.display()
            )),
            "{err}"
        );
        let missing = dir.path.join("missing.json");
        let err = validate(&missing).unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("{}: cannot read: ", missing.display())),
            "{err}"
        );
    }
}
