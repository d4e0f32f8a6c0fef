//! The guarded change, against real files and a stand-in admin endpoint
//! (a loopback HTTP server answering /stats with chosen counters).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::testutil::{ecds_file, plugin_config, TempDir};

const CONFIG: &str = r#"{
  "revision": "r1",
  "legacy": {"cluster": "legacy"},
  "candidate": {"cluster": "candidate"},
  "defaults": {"min_samples": 10, "target_match_rate": 0.9},
  "operations": [
    {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"},
    {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "shadow"},
    {"id": "createReturn", "method": "POST", "path": "/returns", "mode": "legacy"}
  ]
}"#;

/// Answers every GET with Envoy-shaped stats until dropped.
struct FakeAdmin {
    url: String,
    stop: Arc<AtomicBool>,
}

impl FakeAdmin {
    fn new(stats: Vec<(String, u64)>) -> FakeAdmin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let body = serde_json::json!({"stats": stats.iter().map(|(n, v)| serde_json::json!({"name": n, "value": v})).collect::<Vec<_>>()}).to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        FakeAdmin { url, stop }
    }

    fn admin(&self) -> Admin {
        Admin::parse(&self.url).unwrap()
    }
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn op_stat(id: &str, counter: &str) -> String {
    format!("wasmcustom.parallel_run.operation.{id}.{counter}")
}

/// getReturn READY (19/20 >= 90%), listReturns below target (5/10).
fn evidence_stats() -> Vec<(String, u64)> {
    vec![
        (op_stat("getReturn", "shadowed"), 20),
        (op_stat("getReturn", "matched"), 19),
        (op_stat("getReturn", "unmatched"), 1),
        (op_stat("getReturn", "mode"), 1),
        (op_stat("listReturns", "shadowed"), 10),
        (op_stat("listReturns", "matched"), 5),
        (op_stat("listReturns", "unmatched"), 5),
        (op_stat("listReturns", "mode"), 1),
        (
            "wasmcustom.parallel_run.config.revision".into(),
            revision_fingerprint("r1"),
        ),
    ]
}

fn guard(reason: &str) -> Guard {
    Guard {
        reason: Some(reason.into()),
        ..Guard::default()
    }
}

fn no_wait() -> Wait {
    Wait {
        enabled: false,
        timeout: Duration::from_secs(1),
    }
}

struct Setup {
    dir: TempDir,
    path: PathBuf,
    admin: FakeAdmin,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = TempDir::new("change");
        let path = dir.write("parallel-run.json", &ecds_file(&ecds::compact(config).unwrap()));
        Setup {
            dir,
            path,
            admin: FakeAdmin::new(evidence_stats()),
        }
    }

    fn run(&self, action: &Action, guard: &Guard) -> Result<Report> {
        let admin = self.admin.admin();
        run(
            &Target {
                path: &self.path,
                admin: &admin,
                audit_log: None,
                fleet: None,
            },
            action,
            guard,
            &no_wait(),
        )
    }

    fn config(&self) -> Value {
        serde_json::from_str(&plugin_config(&std::fs::read_to_string(&self.path).unwrap())).unwrap()
    }

    fn records(&self) -> Vec<Record> {
        audit::read(&audit::path_for(&self.path)).unwrap()
    }
}

fn mode_of(config: &Value, id: &str) -> String {
    config["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["id"] == id)
        .unwrap()["mode"]
        .as_str()
        .unwrap_or("(inherited)")
        .to_string()
}

#[test]
fn a_ready_cutover_is_written_with_a_new_revision_and_audited_with_its_evidence() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read_to_string(&setup.path).unwrap();
    let report = setup
        .run(&Action::Cutover(vec!["getReturn".into()]), &guard("matches for a week"))
        .unwrap();
    assert!(report.error.is_none());
    let config = setup.config();
    assert_eq!(mode_of(&config, "getReturn"), "cutover");
    assert_eq!(mode_of(&config, "listReturns"), "shadow");
    let revision = config["revision"].as_str().unwrap().to_string();
    assert_ne!(revision, "r1");
    // Only the mode and the revision changed, in place.
    let inner_before = plugin_config(&before);
    let expected = inner_before
        .replacen("\"mode\":\"shadow\"", "\"mode\":\"cutover\"", 1)
        .replace("\"revision\":\"r1\"", &format!("\"revision\":\"{revision}\""));
    assert_eq!(plugin_config(&std::fs::read_to_string(&setup.path).unwrap()), expected);

    let records = setup.records();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["baseline", "change", "outcome"]);
    let change = &records[1];
    assert_eq!(change.action, "cutover");
    assert_eq!(change.reason.as_deref(), Some("matches for a week"));
    assert_eq!(change.old_revision.as_deref(), Some("r1"));
    assert_eq!(change.new_revision, revision);
    assert_eq!(change.new_revision_fingerprint, revision_fingerprint(&revision));
    assert_eq!(
        change.changes,
        [ModeChange {
            operation: "getReturn".into(),
            group: None,
            from: Some("shadow".into()),
            to: Some("cutover".into())
        }]
    );
    assert_eq!(change.evidence[0]["verdict"], "ready");
    assert_eq!(change.evidence[0]["comparisons"], 20);
    assert_eq!(change.evidence[0]["match_rate"], 0.95);
    assert_eq!(change.evidence[0]["min_samples"], 10);
    assert!(!change.force);
    assert_eq!(change.config.as_deref(), Some(expected.as_str()));
    assert_eq!(records[0].config.as_deref(), Some(inner_before.as_str()));
    assert_eq!(records[2].outcome.as_deref(), Some("not_waited"));
    assert_eq!(report.json["changes"][0]["to"], "cutover");
    assert_eq!(report.json["written"], true);
}

#[test]
fn a_not_ready_operation_is_refused_and_force_records_the_override() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read(&setup.path).unwrap();
    let err = setup
        .run(&Action::Cutover(vec!["listReturns".into()]), &guard("try"))
        .err()
        .unwrap();
    assert_eq!(err.kind, Kind::NotReady);
    assert!(
        err.message
            .starts_with("listReturns is not READY: below target 50.0% < 90.0%"),
        "{err}"
    );
    assert_eq!(std::fs::read(&setup.path).unwrap(), before, "nothing written");
    assert!(setup.records().is_empty(), "nothing audited");

    let forced = Guard {
        force: true,
        ..guard("the differences are known and accepted")
    };
    let report = setup
        .run(&Action::Cutover(vec!["listReturns".into()]), &forced)
        .unwrap();
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.starts_with("  FORCED: listReturns is not READY")),
        "{:?}",
        report.lines
    );
    let change = &setup.records()[1];
    assert!(change.force);
    assert_eq!(change.overrides.len(), 1);
    assert_eq!(change.evidence[0]["verdict"], "below_target");
    assert_eq!(mode_of(&setup.config(), "listReturns"), "cutover");
}

#[test]
fn refusals_name_the_operation_and_write_nothing() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read(&setup.path).unwrap();
    let cases: Vec<(Action, Kind, &str)> =
        vec![
        (
            Action::Cutover(vec!["getReturns".into(), "nope".into()]),
            Kind::UnknownOperation,
            "unknown operations \"getReturns\", \"nope\": the configuration has getReturn, listReturns, createReturn",
        ),
        (
            Action::SetMode(vec!["createReturn".into()], Mode::Candidate),
            Kind::InvalidTransition,
            "createReturn: legacy -> candidate skips shadow and cutover",
        ),
        (
            Action::Cutover(vec!["createReturn".into()]),
            Kind::InvalidTransition,
            "createReturn: legacy -> cutover skips shadow",
        ),
        (
            Action::Cutover(vec!["getReturn".into(), "listReturns".into()]),
            Kind::Batch,
            "2 cutovers in one command (getReturn, listReturns)",
        ),
        (Action::Restore("r0".into()), Kind::Io, "revision \"r0\" is not in the audit log"),
    ];
    for (action, kind, message) in cases {
        let err = setup.run(&action, &guard("x")).err().unwrap();
        assert_eq!(err.kind, kind, "{action:?}: {err}");
        assert!(err.message.starts_with(message), "{action:?}: {err}");
        assert_eq!(std::fs::read(&setup.path).unwrap(), before, "{action:?}");
    }
    assert!(setup.records().is_empty());
    assert_eq!(
        setup.dir.names(),
        ["parallel-run.json"],
        "no lock or log file for a refusal"
    );
}

#[test]
fn unchanged_requests_write_nothing() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read(&setup.path).unwrap();
    let report = setup
        .run(&Action::Rollback(vec!["getReturn".into()]), &guard("x"))
        .unwrap();
    assert_eq!(report.json["unchanged"], true);
    assert!(report
        .lines
        .iter()
        .any(|l| l.contains("getReturn: in shadow, legacy already serves it")));
    let report = setup
        .run(&Action::SetMode(vec!["createReturn".into()], Mode::Legacy), &guard("x"))
        .unwrap();
    assert_eq!(report.json["unchanged"], true);
    assert_eq!(std::fs::read(&setup.path).unwrap(), before);
}

#[test]
fn rollback_and_restore_go_back_and_keep_revisions_unique() {
    let setup = Setup::new(CONFIG);
    setup
        .run(&Action::Cutover(vec!["getReturn".into()]), &guard("ready"))
        .unwrap();
    let cut = setup.config()["revision"].as_str().unwrap().to_string();
    setup
        .run(&Action::Rollback(vec!["getReturn".into()]), &guard("5xx"))
        .unwrap();
    let back = setup.config();
    assert_eq!(mode_of(&back, "getReturn"), "shadow");
    let rolled = back["revision"].as_str().unwrap().to_string();
    assert_ne!(rolled, cut);
    // Restore the cutover configuration: same modes, a new revision.
    setup
        .run(&Action::Restore(cut.clone()), &guard("fixed, back to the cutover"))
        .unwrap();
    let restored = setup.config();
    assert_eq!(mode_of(&restored, "getReturn"), "cutover");
    let revision = restored["revision"].as_str().unwrap();
    assert!(![cut.as_str(), rolled.as_str(), "r1"].contains(&revision));
    let actions: Vec<String> = setup
        .records()
        .iter()
        .filter(|r| r.kind == "change")
        .map(|r| r.action.clone())
        .collect();
    assert_eq!(actions, ["cutover", "rollback", "restore"]);
    // And the first revision, from the baseline record.
    setup.run(&Action::Restore("r1".into()), &guard("start over")).unwrap();
    assert_eq!(mode_of(&setup.config(), "getReturn"), "shadow");
}

#[test]
fn a_file_changed_since_it_was_read_is_refused() {
    let setup = Setup::new(CONFIG);
    let doc = Document::read(&setup.path).unwrap();
    let err = setup
        .run(
            &Action::Cutover(vec!["getReturn".into()]),
            &Guard {
                if_match: Some("0".repeat(64)),
                ..guard("x")
            },
        )
        .err()
        .unwrap();
    assert_eq!(err.kind, Kind::Stale);
    let ok = Guard {
        if_match: Some(doc.sha256()),
        ..guard("x")
    };
    setup.run(&Action::Cutover(vec!["getReturn".into()]), &ok).unwrap();
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let setup = Setup::new(CONFIG);
    let before = std::fs::read(&setup.path).unwrap();
    let report = setup
        .run(
            &Action::Cutover(vec!["getReturn".into()]),
            &Guard {
                dry_run: true,
                ..guard("x")
            },
        )
        .unwrap();
    assert!(report.lines.last().unwrap().starts_with("dry run:"));
    assert!(
        report.lines[1].contains("getReturn: shadow -> cutover [READY"),
        "{:?}",
        report.lines
    );
    assert_eq!(std::fs::read(&setup.path).unwrap(), before);
    assert!(setup.records().is_empty());
}

#[test]
fn apply_keeps_an_unused_revision_and_replaces_a_used_one() {
    let setup = Setup::new(CONFIG);
    let new = CONFIG.replace("\"r1\"", "\"r2\"").replace("0.9}", "0.8}");
    let report = setup
        .run(
            &Action::Apply {
                config: new.clone(),
                source: "v2.json".into(),
            },
            &Guard::default(),
        )
        .unwrap();
    assert_eq!(
        report.lines[0],
        format!(
            "apply v2.json to {}: revision \"r1\" -> revision \"r2\"",
            setup.path.display()
        )
    );
    assert!(
        report
            .lines
            .contains(&"  getReturn: target_match_rate 0.9 -> 0.8".to_string()),
        "{:?}",
        report.lines
    );
    assert_eq!(setup.config()["revision"], "r2");
    // The same file again: unchanged.
    let report = setup
        .run(
            &Action::Apply {
                config: new.clone(),
                source: "v2.json".into(),
            },
            &Guard::default(),
        )
        .unwrap();
    assert_eq!(report.json["unchanged"], true);
    // A used revision with other content gets a new one.
    let reused = new.replace("0.8}", "0.85}");
    let report = setup
        .run(
            &Action::Apply {
                config: reused,
                source: "v3.json".into(),
            },
            &Guard::default(),
        )
        .unwrap();
    let revision = setup.config()["revision"].as_str().unwrap().to_string();
    assert_ne!(revision, "r2");
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains("revision \"r2\" is already used")),
        "{:?}",
        report.lines
    );
    // A mode change in apply is guarded like a cutover.
    let cut = CONFIG.replace("\"r1\"", "\"r4\"").replace(
        "\"path\": \"/returns\", \"mode\": \"shadow\"",
        "\"path\": \"/returns\", \"mode\": \"cutover\"",
    );
    let err = setup
        .run(
            &Action::Apply {
                config: cut,
                source: "v4.json".into(),
            },
            &Guard::default(),
        )
        .err()
        .unwrap();
    assert_eq!(err.kind, Kind::NotReady, "{err}");
}

#[test]
fn an_unreachable_envoy_refuses_a_guarded_change() {
    let setup = Setup::new(CONFIG);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = Admin::parse(&format!("127.0.0.1:{port}")).unwrap();
    let target = Target {
        path: &setup.path,
        admin: &admin,
        audit_log: None,
        fleet: None,
    };
    let err = run(
        &target,
        &Action::Cutover(vec!["getReturn".into()]),
        &guard("x"),
        &no_wait(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind, Kind::Unreachable);
    assert!(err.message.contains("cannot connect"), "{err}");
    // A rollback with --no-wait does not need Envoy.
    let err = run(
        &target,
        &Action::SetMode(vec!["getReturn".into()], Mode::Legacy),
        &guard("x"),
        &no_wait(),
    );
    assert!(err.is_ok());
    let waiting = Wait {
        enabled: true,
        timeout: Duration::from_secs(1),
    };
    let err = run(
        &target,
        &Action::SetMode(vec!["getReturn".into()], Mode::Shadow),
        &guard("x"),
        &waiting,
    )
    .err()
    .unwrap();
    assert_eq!(err.kind, Kind::Unreachable);
    assert!(err.message.contains("--no-wait"), "{err}");
}

#[test]
fn groups_move_whole_or_not_at_all() {
    let planned = |id: &str, from: Mode, to: Mode| Planned {
        operation: id.into(),
        group: None,
        from: Some(from),
        to: Some(to),
    };
    let groups: std::collections::BTreeMap<String, String> =
        [("a".to_string(), "g".to_string()), ("b".to_string(), "g".to_string())].into();
    let mut overrides = Vec::new();
    let same = [
        planned("a", Mode::Shadow, Mode::Cutover),
        planned("b", Mode::Shadow, Mode::Cutover),
    ];
    check_group_modes(&same, &groups, &guard("x"), &mut overrides).unwrap();
    let mixed = [
        planned("a", Mode::Shadow, Mode::Cutover),
        planned("b", Mode::Legacy, Mode::Cutover),
    ];
    let err = check_group_modes(&mixed, &groups, &guard("x"), &mut overrides).unwrap_err();
    assert_eq!(err.kind, Kind::GroupSplit);
    assert!(err
        .message
        .starts_with("group \"g\" does not move as one: a: shadow -> cutover, b: legacy -> cutover"));

    // A group is ready only when all its members are.
    let ready = Evidence {
        operation: "a".into(),
        mode: Mode::Shadow,
        verdict: parallel_run_core::readiness::Verdict::Ready {
            rate: 1.0,
            target: 0.9,
            comparisons: 10,
        }
        .into(),
        counts: Default::default(),
        gauges: None,
        fleet: None,
        rule: Default::default(),
        target_match_rate: 0.9,
        min_samples: 10,
        source: "s".into(),
        window: "w".into(),
    };
    let not_ready = Evidence {
        operation: "b".into(),
        verdict: parallel_run_core::readiness::Verdict::Collecting { have: 2, need: 10 }.into(),
        ..ready.clone()
    };
    let err = check_readiness(
        &same,
        &[ready.clone(), not_ready],
        &groups,
        &guard("x"),
        &mut overrides,
        true,
    )
    .unwrap_err();
    assert_eq!(err.kind, Kind::NotReady);
    assert!(
        err.message
            .starts_with("b is not READY: collecting 2/10 (group \"g\" is ready only when all its members are)"),
        "{err}"
    );
    let both = Evidence {
        operation: "b".into(),
        ..ready.clone()
    };
    check_readiness(&same, &[ready, both], &groups, &guard("x"), &mut overrides, true).unwrap();
    assert!(overrides.is_empty());
}

#[test]
fn a_later_revision_built_on_ours_counts_as_ours_being_active() {
    let mut a = crate::audit::tests::record("change", "rA");
    a.old_revision = Some("r0".into());
    let mut b = crate::audit::tests::record("change", "rB");
    b.old_revision = Some("rA".into());
    let mut other = crate::audit::tests::record("change", "rX");
    other.old_revision = Some("r0".into());
    let records = [a, b, other];
    assert_eq!(
        descendant(&records, "rA", revision_fingerprint("rB")).as_deref(),
        Some("rB")
    );
    assert_eq!(descendant(&records, "rA", revision_fingerprint("rX")), None);
    assert_eq!(descendant(&records, "rB", revision_fingerprint("rA")), None);
}

#[test]
fn git_commits_the_new_file_alone_with_the_record_as_message() {
    let setup = Setup::new(CONFIG);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&setup.dir.path)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "--quiet"]);
    git(&["config", "user.email", "ops@example.invalid"]);
    git(&["config", "user.name", "ops"]);
    git(&["add", "parallel-run.json"]);
    git(&["commit", "--quiet", "-m", "start"]);
    let unrelated = setup.dir.write("notes.txt", "staged, not part of the cutover");
    git(&["add", "notes.txt"]);

    let report = setup
        .run(
            &Action::Cutover(vec!["getReturn".into()]),
            &Guard {
                git: true,
                ..guard("ready for a week")
            },
        )
        .unwrap();
    assert!(report.error.is_none(), "{:?}", report.error);
    let head = git(&["rev-parse", "HEAD"]);
    assert_eq!(report.json["git_commit"], head.trim());
    let message = git(&["log", "-1", "--format=%B"]);
    let revision = setup.config()["revision"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(&format!(
            "parallel-run: cutover getReturn cutover (revision {revision})\n\nready for a week\n"
        )),
        "{message}"
    );
    assert!(message.contains("\"evidence\""), "{message}");
    assert_eq!(git(&["show", "--name-only", "--format="]).trim(), "parallel-run.json");
    assert_eq!(
        git(&["diff", "--cached", "--name-only"]).trim(),
        "notes.txt",
        "other staged files stay staged"
    );
    drop(unrelated);

    // Outside a repository: the file is written, the failure is reported.
    let outside = Setup::new(CONFIG);
    let report = outside
        .run(
            &Action::Cutover(vec!["getReturn".into()]),
            &Guard {
                git: true,
                ..guard("x")
            },
        )
        .unwrap();
    let err = report.error.unwrap();
    assert_eq!(err.kind, Kind::Git);
    assert!(err.message.starts_with("written, but not committed: git add"), "{err}");
    assert_eq!(mode_of(&outside.config(), "getReturn"), "cutover");
}
