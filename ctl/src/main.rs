//! `parallel-run-ctl`: validate a parallel-run configuration with the very
//! code the filter runs, apply it to Envoy by rewriting the ECDS resource
//! file atomically, and show each operation's live counters and readiness.

mod admin;
mod apply;
mod ecds;
mod report;
mod status;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use parallel_run_core::Plan;

use status::Source;

const SYNOPSIS: &str = "\
Usage:
  parallel-run-ctl validate CONFIG.json
  parallel-run-ctl apply CONFIG.json --ecds PATH [--dry-run]
  parallel-run-ctl status [--admin URL] (--ecds PATH | --config CONFIG.json) [--json]
  parallel-run-ctl --help
";

const DETAILS: &str = "
validate  Checks CONFIG.json exactly as the filter does, and prints one line
          per operation: id, method and path, mode, serving cluster, shadow
          cluster (or -).
apply     Validates CONFIG.json, then puts it into the ECDS resource file PATH
          (resources[0].typed_config.config.configuration.value) by writing a
          temporary file next to it and renaming it over PATH, which makes
          Envoy reload the filter configuration. Prints what changes first.
          --dry-run prints the changes and writes nothing.
status    Reads the live counters from Envoy's admin endpoint URL (default
          http://127.0.0.1:9901) and the operations, modes and thresholds from
          the ECDS resource file or a configuration file, and prints one line
          per operation: requests, shadowed, matched, unmatched, failed,
          abandoned, skipped, in-flight (shadowed minus outcomes: about 0 when
          idle), match rate = matched / (matched + unmatched), target, and the
          verdict: READY (rate >= target over at least min_samples
          comparisons), below target, collecting N/min_samples, MOSTLY FAILING
          (more failed shadows than comparisons), or not shadowed (mode legacy
          or candidate). Then, per operation, the three fields that differ
          most (unmatched_path counters) and the learned noise fields
          (noise_path gauges). Counters are since Envoy started. --json
          prints the same as JSON, with every differing field.

Exit status: 0 success, 1 invalid configuration, I/O error or Envoy
unreachable, 2 usage error.
";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Validate {
        config: PathBuf,
    },
    Apply {
        config: PathBuf,
        ecds: PathBuf,
        dry_run: bool,
    },
    Status {
        admin: String,
        source: Source,
        json: bool,
    },
}

/// The value name of an option that takes one, for this command.
fn option_value(command: &str, option: &str) -> Option<&'static str> {
    match (command, option) {
        ("apply" | "status", "--ecds") => Some("PATH"),
        ("status", "--config") => Some("CONFIG.json"),
        ("status", "--admin") => Some("URL"),
        _ => None,
    }
}

fn is_flag(command: &str, option: &str) -> bool {
    matches!((command, option), ("apply", "--dry-run") | ("status", "--json"))
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    let Some((command, rest)) = args.split_first() else {
        return Err("missing command".to_string());
    };
    let command = command.as_str();
    let mut positional = None;
    let mut values: Vec<(&str, String)> = Vec::new();
    let mut flags: Vec<&str> = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        if let Some((option, value)) = arg.split_once('=').filter(|(o, _)| o.starts_with("--")) {
            if option_value(command, option).is_some() {
                values.push((option, value.to_string()));
                continue;
            }
        }
        if let Some(name) = option_value(command, arg) {
            let value = rest
                .next()
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| format!("{arg} needs a {name}"))?;
            values.push((arg.as_str(), value.clone()));
        } else if is_flag(command, arg) {
            flags.push(arg);
        } else if arg.starts_with('-') && arg.len() > 1 {
            return Err(format!("unknown option {arg}"));
        } else if positional.is_some() || command == "status" {
            return Err(format!("unexpected argument {arg:?}"));
        } else {
            positional = Some(PathBuf::from(arg));
        }
    }
    // The last occurrence of an option wins.
    let value = |option: &str| values.iter().rev().find(|(o, _)| *o == option).map(|(_, v)| v.clone());
    match command {
        "help" => Ok(Command::Help),
        "validate" => Ok(Command::Validate {
            config: positional.ok_or("validate needs CONFIG.json")?,
        }),
        "apply" => Ok(Command::Apply {
            config: positional.ok_or("apply needs CONFIG.json")?,
            ecds: value("--ecds")
                .map(PathBuf::from)
                .ok_or("apply needs --ecds PATH (the ECDS resource file Envoy watches)")?,
            dry_run: flags.contains(&"--dry-run"),
        }),
        "status" => Ok(Command::Status {
            admin: value("--admin").unwrap_or_else(|| admin::DEFAULT_ADMIN.to_string()),
            source: match (value("--ecds"), value("--config")) {
                (Some(ecds), None) => Source::Ecds(ecds.into()),
                (None, Some(config)) => Source::Config(config.into()),
                (None, None) => return Err("status needs --ecds PATH or --config CONFIG.json".to_string()),
                (Some(_), Some(_)) => {
                    return Err("status takes --ecds PATH or --config CONFIG.json, not both".to_string())
                }
            },
            json: flags.contains(&"--json"),
        }),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Reads and validates a configuration file: its bytes, and the plan the
/// filter would build from them.
fn load_config(path: &Path) -> Result<(Vec<u8>, Plan), String> {
    let bytes = std::fs::read(path).map_err(|err| format!("{}: cannot read: {err}", path.display()))?;
    let plan = Plan::parse(&bytes).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok((bytes, plan))
}

fn validate(config: &Path, out: &mut dyn Write) -> Result<(), String> {
    let (_, plan) = load_config(config)?;
    let mut lines = vec![format!("{}: valid, {}", config.display(), report::headline(&plan))];
    lines.extend(report::table(&plan));
    print_lines(out, &lines)
}

fn print_lines(out: &mut dyn Write, lines: &[String]) -> Result<(), String> {
    lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .map_err(|err| format!("cannot write the output: {err}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("parallel-run-ctl: {problem}\n{SYNOPSIS}");
            return ExitCode::from(2);
        }
    };
    let stdout = &mut io::stdout().lock();
    let result = match command {
        Command::Help => print_lines(stdout, &[format!("{SYNOPSIS}{}", DETAILS.trim_end())]),
        Command::Validate { config } => validate(&config, stdout),
        Command::Apply { config, ecds, dry_run } => apply::apply(&config, &ecds, dry_run, stdout),
        Command::Status { admin, source, json } => status::status(&admin, &source, json, stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("{problem}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_args(&args("validate c.json")),
            Ok(Command::Validate {
                config: "c.json".into()
            })
        );
        let apply = Command::Apply {
            config: "c.json".into(),
            ecds: "e/p.json".into(),
            dry_run: false,
        };
        assert_eq!(parse_args(&args("apply c.json --ecds e/p.json")).as_ref(), Ok(&apply));
        assert_eq!(parse_args(&args("apply --ecds e/p.json c.json")).as_ref(), Ok(&apply));
        assert_eq!(parse_args(&args("apply c.json --ecds=e/p.json")).as_ref(), Ok(&apply));
        assert_eq!(
            parse_args(&args("apply --dry-run c.json --ecds e/p.json")),
            Ok(Command::Apply {
                config: "c.json".into(),
                ecds: "e/p.json".into(),
                dry_run: true
            })
        );
        assert_eq!(
            parse_args(&args("status --ecds e/p.json")),
            Ok(Command::Status {
                admin: "http://127.0.0.1:9901".into(),
                source: Source::Ecds("e/p.json".into()),
                json: false
            })
        );
        assert_eq!(
            parse_args(&args("status --json --admin=http://10.0.0.1:15000 --config c.json")),
            Ok(Command::Status {
                admin: "http://10.0.0.1:15000".into(),
                source: Source::Config("c.json".into()),
                json: true
            })
        );
        for help in ["--help", "-h", "help", "apply c.json --help", "status --help"] {
            assert_eq!(parse_args(&args(help)), Ok(Command::Help), "{help}");
        }
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (line, problem) in [
            ("", "missing command"),
            ("check c.json", "unknown command \"check\""),
            ("validate", "validate needs CONFIG.json"),
            ("validate a.json b.json", "unexpected argument \"b.json\""),
            ("validate c.json --ecds e.json", "unknown option --ecds"),
            ("validate --dry-run c.json", "unknown option --dry-run"),
            ("apply c.json", "apply needs --ecds PATH"),
            ("apply c.json --ecds", "--ecds needs a PATH"),
            ("apply c.json --ecds --dry-run", "--ecds needs a PATH"),
            ("apply --ecds e.json", "apply needs CONFIG.json"),
            ("apply c.json --ecds e.json --force", "unknown option --force"),
            ("apply c.json --ecds e.json --json", "unknown option --json"),
            ("validate c.json --admin x:1", "unknown option --admin"),
            ("status", "status needs --ecds PATH or --config CONFIG.json"),
            ("status --admin 127.0.0.1:9901", "status needs --ecds PATH or --config"),
            (
                "status --ecds e.json --config c.json",
                "status takes --ecds PATH or --config CONFIG.json, not both",
            ),
            ("status --ecds e.json c.json", "unexpected argument \"c.json\""),
            ("status --ecds e.json --admin", "--admin needs a URL"),
            ("status --config --json", "--config needs a CONFIG.json"),
            ("status --ecds e.json --dry-run", "unknown option --dry-run"),
        ] {
            let err = parse_args(&args(line)).unwrap_err();
            assert!(err.starts_with(problem), "{line:?}: {err}");
        }
    }

    #[test]
    fn validate_reports_the_file_and_the_field() {
        let dir = apply::tests::TempDir::new("validate");
        let good = dir.write("good.json", apply::tests::CONFIG_V1);
        let mut out = Vec::new();
        validate(&good, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with(&format!("{}: valid, revision \"r1\", 2 operations\n", good.display())));
        assert!(out.contains("getReturn"), "{out}");

        let bad = dir.write("bad.json", &apply::tests::CONFIG_V1.replace("\"shadow\"", "\"shadw\""));
        let err = validate(&bad, &mut Vec::new()).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "{}: operations[0].mode: unknown variant `shadw`",
                bad.display()
            )),
            "{err}"
        );
        let missing = dir.path.join("missing.json");
        let err = validate(&missing, &mut Vec::new()).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{err}"
        );
    }
}
