//! The command line, declared once with clap: parsing, `--help` per
//! command, `--version`, suggestions for typos, and the shell completions
//! and man page generated from the same definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admin::DEFAULT_ADMIN;

const AFTER_HELP: &str = "\
Exit status: 0 done; 1 refused or failed (invalid configuration, unknown
operation, not ready, stale file, Envoy unreachable, Envoy refused the push,
not confirmed in time); 2 usage error. `status --exit-code`: 0 ready, 3 not
ready, 4 Envoy (or, with --prometheus, Prometheus) unreachable.

Environment: PARALLEL_RUN_CONFIG (the configuration file when neither
--config nor --ecds is given), PARALLEL_RUN_ADMIN (Envoy's admin URL).";

#[derive(Debug, Parser)]
#[command(
    name = "parallel-run-ctl",
    version,
    about = "Operate a parallel-run migration: validate, apply, cut over and roll back operations, guarded, audited and confirmed",
    after_help = AFTER_HELP,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Output format: text for people, json (one document, stable) for scripts
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a configuration exactly as the filter does, and list its operations
    Validate {
        /// A plugin configuration (JSON), an ECDS resource file, a WasmPlugin YAML, or - for standard input
        #[arg(value_name = "CONFIG")]
        config: PathBuf,
    },
    /// Put a whole configuration in place: validated, guarded like a cutover, audited, confirmed
    Apply(ApplyArgs),
    /// Live counters, modes and readiness per operation (the filter's windowed rule), from what Envoy runs
    Status(StatusArgs),
    /// Move operations from shadow to cutover (the candidate serves); guarded by readiness
    Cutover(ChangeArgs),
    /// Move operations back to shadow (legacy serves again), or restore a recorded revision
    Rollback(RollbackArgs),
    /// Move one operation (or group) to a mode: legacy, shadow, cutover, candidate
    SetMode(SetModeArgs),
    /// The audit trail: every change, who made it, why, with the evidence
    History(HistoryArgs),
    /// Wait until Envoy runs a revision (e.g. after `kubectl apply`)
    Wait(WaitCommandArgs),
    /// Stale routes and risky rules; exit status 1 on errors
    Lint(LintArgs),
    /// Guarded automation: cut over what stays READY, roll back what breaks its floor
    Watch(WatchArgs),
    /// A configuration from an OpenAPI 3.0 or 3.1 spec: one operation per operationId
    Init(InitArgs),
    /// Evidence records of unmatched and failed comparisons: receive them (OTLP/HTTP JSON), list them, show one side by side
    Evidence(EvidenceArgs),
    /// Propose configuration rules from what the filter learned (noise gauges, evidence records); writes only a new file
    Suggest(SuggestArgs),
    /// Shell completions, generated from these definitions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page (roff), generated from these definitions
    Man,
}

/// The configuration file a command reads or changes.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The configuration file: the ECDS resource file Envoy watches, a plugin configuration (JSON), or an Istio WasmPlugin (YAML); - reads standard input [env: PARALLEL_RUN_CONFIG]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ECDS resource file Envoy watches (like --config, which must not be given too)
    #[arg(long, value_name = "PATH")]
    pub ecds: Option<PathBuf>,
    /// The audit log [default: <file name>.audit.jsonl next to the file]
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Envoy's admin endpoint
    #[arg(long, env = "PARALLEL_RUN_ADMIN", default_value = DEFAULT_ADMIN, value_name = "URL")]
    pub admin: String,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Do not wait for Envoy to report the new revision active
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for Envoy: 30s, 2m, 500ms
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// The fleet's readiness source: a Prometheus that scrapes every replica.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Judge readiness on the whole fleet from this Prometheus (every replica's counters pooled over a window) instead of one Envoy's gauges
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// With --prometheus: the window to pool over, e.g. 10m, 1h [default: each operation's readiness.window_s]
    #[arg(long, requires = "prometheus", value_parser = parse_long_duration, value_name = "DURATION")]
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Why: recorded in the audit log (and the git commit)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Override the readiness guard, a skipped phase or a group in mixed modes (recorded)
    #[arg(long)]
    pub force: bool,
    /// Allow more than one cutover (operation or group) in one command (recorded)
    #[arg(long)]
    pub allow_batch: bool,
    /// Commit the new file with git, the audit record as the message
    #[arg(long)]
    pub git: bool,
    /// Say what would change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse unless the file's SHA-256 is this one (from `status -o json`)
    #[arg(long, value_name = "SHA256")]
    pub if_match: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// The new configuration: plugin JSON, a WasmPlugin YAML (its pluginConfig), or - for standard input
    #[arg(value_name = "CONFIG")]
    pub source: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Why: recorded in the audit log (and the git commit)
    #[arg(long, value_name = "TEXT", required_if_eq("force", "true"))]
    pub reason: Option<String>,
    /// Override the readiness guard on mode changes in the new configuration (recorded)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Allow more than one cutover in the new configuration (recorded)
    #[arg(long)]
    pub allow_batch: bool,
    /// Commit the new file with git, the audit record as the message
    #[arg(long)]
    pub git: bool,
    /// Say what would change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse unless the file's SHA-256 is this one (from `status -o json`)
    #[arg(long, value_name = "SHA256")]
    pub if_match: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Only these operations (or group:NAME)
    #[arg(value_name = "OP")]
    pub operations: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Exit 0 when every operation shown that is being compared is READY (the filter's ready gauge, or the fleet's verdict with --prometheus; never when NOT ROUTED), 3 when one is not, 4 when Envoy (or Prometheus) is unreachable
    #[arg(long)]
    pub exit_code: bool,
    /// Same as -o json (kept for scripts written for earlier versions)
    #[arg(long, hide = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    /// Operation ids, or group:NAME for all members of a group
    #[arg(value_name = "OP", required = true)]
    pub operations: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// Operation ids, or group:NAME for all members of a group
    #[arg(
        value_name = "OP",
        required_unless_present = "to_revision",
        conflicts_with = "to_revision"
    )]
    pub operations: Vec<String>,
    /// Restore the whole configuration the audit log recorded for this revision
    #[arg(long, value_name = "REVISION")]
    pub to_revision: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SetModeArgs {
    /// The operation id, or group:NAME
    #[arg(value_name = "OP")]
    pub operation: String,
    /// The new mode
    #[arg(value_enum)]
    pub mode: ModeArg,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Legacy,
    Shadow,
    Cutover,
    Candidate,
}

impl ModeArg {
    pub fn mode(self) -> parallel_run_core::Mode {
        use parallel_run_core::Mode;
        match self {
            ModeArg::Legacy => Mode::Legacy,
            ModeArg::Shadow => Mode::Shadow,
            ModeArg::Cutover => Mode::Cutover,
            ModeArg::Candidate => Mode::Candidate,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Only changes of this operation
    #[arg(value_name = "OP")]
    pub operation: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WaitCommandArgs {
    /// The revision to wait for [default: the configuration file's]
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// How long to wait: 30s, 2m, 500ms
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Operations in candidate (or cutover) for this many days are reported stale
    #[arg(long, default_value_t = 14, value_name = "DAYS")]
    pub stale_days: u64,
    /// Only the rules that need no Envoy (configuration and audit log)
    #[arg(long)]
    pub no_envoy: bool,
    /// Warnings fail too
    #[arg(long)]
    pub strict: bool,
    /// Also compare with an OpenAPI spec: operations missing on either side
    #[arg(long, value_name = "SPEC")]
    pub openapi: Option<PathBuf>,
    /// The prefix the configuration's paths have over the spec's
    #[arg(long, default_value = "", value_name = "PATH")]
    pub base_path: String,
    /// Envoy's log (`-`: standard input, e.g. from `kubectl logs`): which
    /// paths matched no operation, from the filter's sampled lines
    #[arg(long, value_name = "FILE")]
    pub envoy_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The OpenAPI 3.0 or 3.1 document (JSON or YAML)
    #[arg(long, value_name = "SPEC")]
    pub openapi: PathBuf,
    /// Where to write the configuration [default: standard output]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// The Envoy cluster of the legacy implementation
    #[arg(long, default_value = "legacy", value_name = "CLUSTER")]
    pub legacy_cluster: String,
    /// The Envoy cluster of the candidate
    #[arg(long, default_value = "candidate", value_name = "CLUSTER")]
    pub candidate_cluster: String,
    /// A prefix for every path (the spec's paths are relative to its server URL)
    #[arg(long, default_value = "", value_name = "PATH")]
    pub base_path: String,
    /// The mode of safe methods (GET, HEAD, OPTIONS, TRACE); unsafe ones start in legacy
    #[arg(long, value_enum, default_value_t = ModeArg::Shadow)]
    pub mode: ModeArg,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Only these operations (or group:NAME) [default: every operation]
    #[arg(value_name = "OP")]
    pub operations: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// How often to look, and at most one change per look
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Cut over an operation in shadow once READY this long without a break
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub ready_for: Duration,
    /// Roll back an operation in cutover whose reverse-shadow match rate falls below this [default: its rollback_below, else its target_match_rate]
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rollback_below: Option<f64>,
    /// Roll back an operation in cutover whose failed/shadowed rises above this
    #[arg(long, default_value_t = 0.05, value_name = "RATE", value_parser = parse_rate)]
    pub max_failure_rate: f64,
    /// Never cut over, only roll back (overrides every operation's auto_promote)
    #[arg(long)]
    pub no_promote: bool,
    /// Never roll back, only cut over
    #[arg(long)]
    pub no_rollback: bool,
    /// Say what it would do, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after this long: 30m, 8h
    #[arg(long, default_value = "1h", value_parser = parse_long_duration, value_name = "DURATION")]
    pub duration: Duration,
    /// Stop after this many changes
    #[arg(long, value_name = "N")]
    pub max_changes: Option<u32>,
    /// How long each change waits for Envoy
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// A fraction between 0 and 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?}: a fraction between 0 and 1 (0.95 means 95%)")),
    }
}

/// Like [`parse_duration`], and hours, up to a week.
pub fn parse_long_duration(text: &str) -> Result<Duration, String> {
    if let Some(hours) = text.strip_suffix('h') {
        let hours: f64 = hours
            .parse()
            .map_err(|_| format!("{text:?}: expected a duration such as 30m or 8h"))?;
        if !(0.0..=168.0).contains(&hours) {
            return Err(format!("{text:?}: at most a week"));
        }
        return Ok(Duration::from_secs_f64(hours * 3600.0));
    }
    parse_duration(text)
}

/// `30s`, `2m`, `500ms`, or plain seconds (`30`). At most an hour.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 30s, 2m or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s or m)")),
    };
    if !(0.0..=3600.0).contains(&seconds) {
        return Err(format!("{text:?}: between 0 and 1 hour"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Debug, Clone, Args)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    pub command: EvidenceCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EvidenceCommand {
    /// Receive evidence records (POST /v1/logs, OTLP/HTTP JSON) into a SQLite file, until SIGTERM or SIGINT
    Serve(EvidenceServeArgs),
    /// Stored records, newest first
    List(EvidenceListArgs),
    /// One record: each differing field, serving and shadow side by side
    Show(EvidenceShowArgs),
}

#[derive(Debug, Clone, Args)]
pub struct EvidenceServeArgs {
    /// The SQLite file records are stored in (created when absent)
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Address to listen on, IP:PORT; anything but loopback is warned about (records describe clients' requests)
    #[arg(long, default_value = "127.0.0.1:4318", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Larger request bodies are refused (413)
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_body_bytes: u64,
    /// Requests with more records are refused whole (413)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_records_per_request: usize,
    /// The file keeps at most this many records; the oldest are deleted (and counted) past it
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_records: u64,
}

#[derive(Debug, Clone, Args)]
pub struct EvidenceListArgs {
    /// Only these operations [default: every operation]
    #[arg(value_name = "OP")]
    pub operations: Vec<String>,
    /// The evidence database
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Only records from the last: 30m, 8h, 7d
    #[arg(long, value_parser = parse_since, value_name = "DURATION")]
    pub since: Option<Duration>,
    /// At most this many records (0: all)
    #[arg(short = 'n', long = "limit", default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

#[derive(Debug, Clone, Args)]
pub struct EvidenceShowArgs {
    /// A record id (from `evidence list`), or an operation id for its latest record
    #[arg(value_name = "ID|OP")]
    pub record: String,
    /// The evidence database
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SuggestArgs {
    /// Only these operations [default: every operation]
    #[arg(value_name = "OP")]
    pub operations: Vec<String>,
    /// The configuration the proposal starts from (ECDS resource file, plugin JSON or WasmPlugin YAML); never changed
    #[arg(short = 'c', long = "config", env = "PARALLEL_RUN_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Envoy's admin endpoint, for the learned noise fields (noise_path gauges)
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// The evidence database (`evidence serve --db`), for masks, unordered arrays, number tolerance, case-insensitive keys
    #[arg(long, value_name = "FILE")]
    pub evidence_db: Option<PathBuf>,
    /// Write the proposed configuration to this NEW file (refused if it exists), validated; review it, then `apply` it
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// A rule from evidence needs at least this many records behind it
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_records: usize,
}

/// `30m`, `8h`, `7d`: how far back, up to a year.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    if let Some(days) = text.strip_suffix('d') {
        return match days.parse::<u64>() {
            Ok(days) if (1..=366).contains(&days) => Ok(Duration::from_secs(days * 86_400)),
            _ => Err(format!("{text:?}: expected 1d to 366d")),
        };
    }
    parse_long_duration(text).map_err(|_| format!("{text:?}: expected a duration such as 30m, 8h or 7d"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("2h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("61m").unwrap_err().contains("1 hour"));
        assert_eq!(parse_long_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_long_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_long_duration("200h").is_err());
        assert_eq!(parse_rate("0.95"), Ok(0.95));
        assert!(parse_rate("95").unwrap_err().contains("0.95 means 95%"));
    }

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("parallel-run-ctl").chain(line.split_whitespace()))
    }

    #[test]
    fn commands_parse() {
        let cli = parse("cutover getReturn --reason ready --ecds e.json -o json").unwrap();
        assert_eq!(cli.output, Output::Json);
        let Command::Cutover(args) = cli.command else { panic!() };
        assert_eq!(args.operations, ["getReturn"]);
        assert_eq!(args.guard.reason, "ready");
        assert_eq!(args.wait.timeout, Duration::from_secs(30));
        assert!(!args.wait.no_wait);

        let cli = parse("set-mode getReturn candidate --reason r --force --no-wait --timeout 5s").unwrap();
        let Command::SetMode(args) = cli.command else { panic!() };
        assert_eq!(args.mode, ModeArg::Candidate);
        assert!(args.guard.force && args.wait.no_wait);

        let cli = parse("rollback --to-revision r7 --reason oops").unwrap();
        let Command::Rollback(args) = cli.command else { panic!() };
        assert_eq!(args.to_revision.as_deref(), Some("r7"));
        assert!(args.operations.is_empty());
    }

    #[test]
    fn usage_errors_are_clap_errors_with_suggestions() {
        let err = parse("cutovr getReturn").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("similar subcommand exists: 'cutover'"),
            "{err}"
        );
        assert!(parse("cutover getReturn").unwrap_err().to_string().contains("--reason"));
        assert!(parse("cutover --reason r").is_err(), "an operation is required");
        assert!(parse("rollback a --to-revision r --reason x").is_err());
        assert!(parse("set-mode a shadw --reason r")
            .unwrap_err()
            .to_string()
            .contains("shadow"));
        assert!(parse("apply c.json --force")
            .unwrap_err()
            .to_string()
            .contains("--reason"));
        let cli = parse("status --prometheus http://127.0.0.1:9090 --window 1h").unwrap();
        let Command::Status(args) = cli.command else { panic!() };
        assert_eq!(args.fleet.prometheus.as_deref(), Some("http://127.0.0.1:9090"));
        assert_eq!(args.fleet.window, Some(Duration::from_secs(3600)));
        let cli = parse("cutover a --reason r --prometheus 127.0.0.1:9090").unwrap();
        let Command::Cutover(args) = cli.command else { panic!() };
        assert_eq!(args.guard.fleet.prometheus.as_deref(), Some("127.0.0.1:9090"));
        assert!(parse("status --window 1h")
            .unwrap_err()
            .to_string()
            .contains("--prometheus"));
        let err = parse("status --ecds e.json --dry-run").unwrap_err();
        assert!(err.to_string().contains("--dry-run"), "{err}");
    }

    #[test]
    fn evidence_since_takes_minutes_hours_and_days() {
        assert_eq!(parse_since("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_since("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_since("400d"), Err("\"400d\": expected 1d to 366d".into()));
        assert_eq!(
            parse_since("2y"),
            Err("\"2y\": expected a duration such as 30m, 8h or 7d".into())
        );
    }
}
