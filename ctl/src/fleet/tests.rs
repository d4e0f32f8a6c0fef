//! Unit tests of the fleet source: the queries it builds, what absent
//! series mean, and that its verdict is core's rule on the pooled counts.

use super::*;
use parallel_run_core::Plan;
use std::collections::BTreeMap;

const CONFIG: &[u8] = br#"{"revision":"r1","legacy":{"cluster":"l"},"candidate":{"cluster":"c"},
    "defaults":{"mode":"shadow","min_samples":20,"target_match_rate":0.9},
    "operations":[
        {"id":"getReturn","method":"GET","path":"/returns/{id}"},
        {"id":"getLabel","method":"GET","path":"/labels/{id}","readiness":{"max_latency_ratio":2}},
        {"id":"listReturns","method":"GET","path":"/returns","readiness":{"window_s":60}},
        {"id":"gone","method":"GET","path":"/gone"}]}"#;

fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        value,
    }
}

/// A fake Prometheus: query -> samples; an unknown query has no series.
struct Answers(BTreeMap<String, Vec<Sample>>);

impl Answers {
    fn new() -> Answers {
        Answers(BTreeMap::new())
    }

    fn with(mut self, expr: String, samples: Vec<Sample>) -> Answers {
        self.0.insert(expr, samples);
        self
    }

    fn counts(self, window_s: u64, op: &str, counter: Counter, value: f64) -> Answers {
        let expr = Queries::count(counter, window_s);
        let mut answers = self;
        answers
            .0
            .entry(expr)
            .or_default()
            .push(sample(&[("operation_id", op)], value));
        answers
    }

    fn snapshot(&self, window_s: Option<u64>, plan: &Plan) -> Snapshot {
        Snapshot::collect(
            "http://p:9090",
            window_s,
            &plan.operations,
            &["r1".to_string()],
            |expr| Ok(self.0.get(expr).cloned().unwrap_or_default()),
        )
        .unwrap()
    }
}

fn fp(revision: &str) -> String {
    revision_fingerprint(revision).to_string()
}

#[test]
fn the_queries_are_the_recording_rules_expressions_on_the_raw_counters() {
    assert_eq!(
        Queries::count(Counter::Unmatched, 600),
        "sum by (operation_id) (increase(parallel_run_operation_unmatched[600s]))"
    );
    assert_eq!(
        Queries::latency_p99(3600),
        "histogram_quantile(0.99, sum by (operation_id, side, le) (rate(parallel_run_operation_latency_ms_bucket[3600s])))"
    );
    assert_eq!(
        Queries::threshold(Gauge::TargetMatchRateBp),
        "max by (operation_id) (parallel_run_operation_target_match_rate_bp)"
    );
    assert_eq!(
        Queries::threshold(Gauge::MaxFailureRateBp),
        "min by (operation_id) (parallel_run_operation_max_failure_rate_bp)"
    );
    assert_eq!(
        Queries::threshold(Gauge::MaxLatencyRatioBp),
        "min by (operation_id) (parallel_run_operation_max_latency_ratio_bp > 0)"
    );
    assert!(Queries::replicas()
        .contains("group_left (revision) count_values without () (\"revision\", parallel_run_config_revision)"));
    // The shipped rules pool with the same expression (for their window).
    let rules = include_str!("../../../prometheus/rules.yml");
    assert!(rules.contains("sum by (operation_id) (increase(parallel_run_operation_unmatched[10m]))"));
}

#[test]
fn one_query_set_per_window_and_every_query_is_listed() {
    let plan = Plan::parse(CONFIG).unwrap();
    let snapshot = Answers::new().snapshot(None, &plan);
    // Windows 600 and 60: 5 counters + latency each, then replicas, 2 modes, 4 thresholds, revisions.
    assert_eq!(snapshot.queries.len(), 2 * 6 + 1 + 2 + 4 + 1);
    assert!(snapshot.queries.contains(&Queries::count(Counter::Matched, 60)));
    assert!(snapshot.queries.contains(&Queries::count(Counter::Matched, 600)));
    let one = Answers::new().snapshot(Some(3600), &plan);
    assert_eq!(one.queries.len(), 6 + 1 + 2 + 4 + 1);
}

#[test]
fn absent_series_are_zero_and_never_drop_an_operation_or_make_it_ready() {
    let plan = Plan::parse(CONFIG).unwrap();
    // getReturn has matched and shadowed series only: no unmatched, no failed series at all.
    let answers = Answers::new()
        .counts(600, "getReturn", Counter::Shadowed, 60.0)
        .counts(600, "getReturn", Counter::Matched, 60.0)
        .with(
            Queries::replicas(),
            vec![sample(&[("operation_id", "getReturn"), ("revision", &fp("r1"))], 2.0)],
        )
        .with(Queries::revisions(), vec![sample(&[("revision", &fp("r1"))], 2.0)]);
    let snapshot = answers.snapshot(None, &plan);
    let get = snapshot.evidence(&plan.operations[0]);
    let facts = get.fleet.as_ref().unwrap();
    assert_eq!(
        facts.tally,
        Tally {
            shadowed: 60,
            matched: 60,
            unmatched: 0,
            failed: 0
        }
    );
    assert!(get.ready(), "{}", get.verdict);
    assert_eq!(facts.replicas_words(), "2 of 2 replicas, on \"r1\"");
    assert_eq!(get.basis().name(), "prometheus");

    // `gone`: no series at all. Still there, 0 replicas, collecting, not READY.
    let gone = snapshot.evidence(&plan.operations[3]);
    let facts = gone.fleet.as_ref().unwrap();
    assert_eq!(facts.replicas, 0);
    assert_eq!(facts.tally, Tally::default());
    assert!(!gone.ready());
    assert_eq!(gone.verdict.name(), "collecting");
    assert_eq!(gone.verdict.to_string(), "collecting 0/20 comparisons in 600 s");
}

#[test]
fn the_verdict_is_core_rule_on_the_pooled_counts() {
    let plan = Plan::parse(CONFIG).unwrap();
    let op = &plan.operations[0];
    // A grid of pooled tallies, as increase() reports them (fractions included).
    for (shadowed, matched, unmatched, failed) in [
        (60.0, 60.0, 0.0, 0.0),
        (60.4, 50.2, 9.8, 0.4),
        (40.0, 18.0, 2.0, 20.0),
        (19.0, 19.0, 0.0, 0.0),
        (100.0, 90.0, 10.0, 0.0),
        (300.0, 290.0, 10.0, 0.0),
    ] {
        let answers = Answers::new()
            .counts(600, "getReturn", Counter::Shadowed, shadowed)
            .counts(600, "getReturn", Counter::Matched, matched)
            .counts(600, "getReturn", Counter::Unmatched, unmatched)
            .counts(600, "getReturn", Counter::Failed, failed);
        let evidence = answers.snapshot(None, &plan).evidence(op);
        // Whole events: rounded, and any growth is at least one.
        let whole = |v: f64| if v > 0.0 { (v.round() as u64).max(1) } else { 0 };
        let tally = Tally {
            shadowed: whole(shadowed),
            matched: whole(matched),
            unmatched: whole(unmatched),
            failed: whole(failed),
        };
        let core = window::evaluate(
            tally,
            &op.settings.readiness,
            op.settings.target_match_rate,
            op.settings.min_samples,
        );
        assert_eq!(evidence.ready(), core.meets.is_ok(), "{tally:?}: {}", evidence.verdict);
        let json = evidence.fleet.as_ref().unwrap().to_json();
        assert_eq!(json["comparisons"], tally.comparisons());
        assert_eq!(json["match_rate_lower"], core.match_rate_lower);
        assert_eq!(json["failure_rate"], core.failure_rate);
    }
}

#[test]
fn thresholds_come_from_what_the_replicas_run_and_latency_gates_when_set() {
    let plan = Plan::parse(CONFIG).unwrap();
    let label = &plan.operations[1];
    let base = || {
        Answers::new().counts(600, "getLabel", Counter::Shadowed, 100.0).counts(
            600,
            "getLabel",
            Counter::Matched,
            100.0,
        )
    };
    // The replicas run a stricter target than the file (0.99 > 0.9): 100 of 100 has a lower bound of 0.963.
    let strict = base().with(
        Queries::threshold(Gauge::TargetMatchRateBp),
        vec![sample(&[("operation_id", "getLabel")], 9900.0)],
    );
    let evidence = strict.snapshot(None, &plan).evidence(label);
    assert_eq!(evidence.target_match_rate, 0.99);
    assert_eq!(evidence.verdict.name(), "below_target");

    // The file sets max_latency_ratio 2 and no replica reports thresholds: the file's applies.
    let evidence = base().snapshot(None, &plan).evidence(label);
    assert_eq!(
        evidence.verdict.name(),
        "slow",
        "no latency measured: {}",
        evidence.verdict
    );
    let timed = |shadow: f64| {
        base()
            .with(
                Queries::latency_p99(600),
                vec![
                    sample(&[("operation_id", "getLabel"), ("side", "serving")], 10.0),
                    sample(&[("operation_id", "getLabel"), ("side", "shadow")], shadow),
                ],
            )
            .snapshot(None, &plan)
            .evidence(label)
    };
    assert!(timed(19.0).ready());
    let slow = timed(31.0);
    assert_eq!(
        slow.verdict.to_string(),
        "too slow: shadow p99 3.10x serving p99 > 2.00x"
    );
    // NaN (no observations in the range) is no measurement.
    assert_eq!(timed(f64::NAN).verdict.name(), "slow");
}

#[test]
fn replicas_in_different_modes_or_revisions_are_loud_and_not_ready() {
    let plan = Plan::parse(CONFIG).unwrap();
    let op = &plan.operations[0];
    let mode = |code: f64| vec![sample(&[("operation_id", "getReturn")], code)];
    let answers = Answers::new()
        .counts(600, "getReturn", Counter::Shadowed, 60.0)
        .counts(600, "getReturn", Counter::Matched, 60.0)
        .with(Queries::mode("min"), mode(1.0))
        .with(Queries::mode("max"), mode(2.0))
        .with(
            Queries::replicas(),
            vec![
                sample(&[("operation_id", "getReturn"), ("revision", &fp("r1"))], 1.0),
                sample(&[("operation_id", "getReturn"), ("revision", &fp("r2"))], 1.0),
            ],
        )
        .with(
            Queries::revisions(),
            vec![
                sample(&[("revision", &fp("r1"))], 1.0),
                sample(&[("revision", &fp("r2"))], 1.0),
            ],
        );
    let snapshot = answers.snapshot(None, &plan);
    let evidence = snapshot.evidence(op);
    let low = transition::from_code(1).unwrap();
    let high = transition::from_code(2).unwrap();
    assert_eq!(evidence.verdict, Readiness::ModeDrift { low, high });
    assert!(!evidence.ready());
    let facts = evidence.fleet.as_ref().unwrap();
    assert!(facts.drift());
    assert_eq!(
        facts.replicas_words(),
        format!("2 of 2 replicas, on \"r1\" 1, fingerprint {} 1", fp("r2"))
    );
    let rows = status::rows(&snapshot, &plan, &["getReturn".to_string()], &BTreeMap::new());
    let lines = status::lines(&snapshot, "c.json", &plan, &rows);
    assert!(
        lines[1].starts_with("fleet: CONFIG DRIFT: 2 replicas run 2 revisions: "),
        "{}",
        lines[1]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("getReturn: CONFIG DRIFT: 2 of 2 replicas")),
        "{lines:#?}"
    );
    let json = status::to_json(&snapshot, "c.json", &plan, &rows);
    assert_eq!(json["fleet"]["drift"], true);
    assert_eq!(json["operations"][0]["verdict"], "mode_drift");
    assert_eq!(json["operations"][0]["ready"], false);
    assert_eq!(json["operations"][0]["replicas"], 2);
}

#[test]
fn a_routing_mismatch_in_the_window_is_not_routed() {
    let plan = Plan::parse(CONFIG).unwrap();
    let answers = Answers::new()
        .counts(600, "getReturn", Counter::Shadowed, 60.0)
        .counts(600, "getReturn", Counter::Matched, 60.0)
        // increase() extrapolated one mismatch to less than half: it still happened.
        .counts(600, "getReturn", Counter::RoutingMismatch, 0.4);
    let evidence = answers.snapshot(None, &plan).evidence(&plan.operations[0]);
    assert_eq!(evidence.verdict, Readiness::NotRouted { mismatches: 1 });
}

#[test]
fn the_status_json_is_stable() {
    let plan = Plan::parse(CONFIG).unwrap();
    let answers = Answers::new()
        .counts(600, "getReturn", Counter::Shadowed, 61.2)
        .counts(600, "getReturn", Counter::Matched, 61.2)
        .with(
            Queries::replicas(),
            vec![sample(&[("operation_id", "getReturn"), ("revision", &fp("r1"))], 2.0)],
        )
        .with(Queries::revisions(), vec![sample(&[("revision", &fp("r1"))], 2.0)]);
    let snapshot = answers.snapshot(None, &plan);
    let ids: Vec<String> = plan.operations.iter().map(|op| op.id.clone()).collect();
    let rows = status::rows(&snapshot, &plan, &ids, &BTreeMap::new());
    let json = status::to_json(&snapshot, "c.json", &plan, &rows);
    let get = &json["operations"][0];
    let mut keys: Vec<&str> = get.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "basis",
            "comparisons",
            "confidence",
            "drift",
            "failed",
            "failure_rate",
            "file_mode",
            "fleet_replicas",
            "group",
            "id",
            "latency_p99_ms",
            "latency_ratio",
            "match_rate",
            "match_rate_lower",
            "matched",
            "max_failure_rate",
            "max_latency_ratio",
            "min_samples",
            "mode",
            "modes",
            "prometheus",
            "ready",
            "replicas",
            "revisions",
            "routing_mismatch",
            "shadowed",
            "summary",
            "target_match_rate",
            "unmatched",
            "verdict",
            "window_s",
        ]
    );
    assert_eq!(get["comparisons"], 61);
    assert_eq!(get["ready"], true);
    assert_eq!(
        get["revisions"],
        json!([{"fingerprint": revision_fingerprint("r1"), "revision": "r1", "replicas": 2}])
    );
    assert_eq!(json["fleet"]["replicas"], 2);
    assert_eq!(json["window_s"], Value::Null);
    assert_eq!(json["queries"].as_array().unwrap().len(), snapshot.queries.len());
    let lines = status::lines(&snapshot, "c.json", &plan, &rows);
    assert_eq!(lines[1], "fleet: 2 replicas, 2 on \"r1\" (this file's)");
    assert!(
        lines.iter().any(|l| l.starts_with("gone: no replica reports it")),
        "{lines:#?}"
    );
}

#[test]
fn a_failed_query_is_an_unreachable_error_and_nothing_is_judged() {
    let plan = Plan::parse(CONFIG).unwrap();
    let err = Snapshot::collect("http://p:9090", None, &plan.operations, &[], |expr| {
        Err(Error::new(
            Kind::Unreachable,
            format!("Prometheus at http://p:9090: query `{expr}`: HTTP 500"),
        ))
    })
    .err()
    .unwrap();
    assert_eq!(err.kind, Kind::Unreachable);
    // The first query (the shortest window's first counter) is the one named.
    assert!(
        err.message
            .contains(&format!("query `{}`", Queries::count(Counter::Shadowed, 60))),
        "{err}"
    );
    assert!(window_seconds(Some(Duration::from_millis(500))).is_err());
    assert_eq!(window_seconds(Some(Duration::from_secs(3600))).unwrap(), Some(3600));
}

#[test]
fn too_many_distinct_windows_need_window() {
    let operations: Vec<String> = (1..=33)
        .map(|i| format!(r#"{{"id":"op{i}","method":"GET","path":"/p{i}","readiness":{{"window_s":{i}}}}}"#))
        .collect();
    let config = format!(
        r#"{{"legacy":{{"cluster":"l"}},"candidate":{{"cluster":"c"}},"operations":[{}]}}"#,
        operations.join(",")
    );
    let plan = Plan::parse(config.as_bytes()).unwrap();
    let mut asked = 0;
    let err = Snapshot::collect("http://p:9090", None, &plan.operations, &[], |_| {
        asked += 1;
        Ok(vec![])
    })
    .err()
    .unwrap();
    assert!(err.message.contains("33 different readiness.window_s values"), "{err}");
    assert_eq!(asked, 0, "refused before any query");
    assert!(Snapshot::collect("http://p:9090", Some(600), &plan.operations, &[], |_| Ok(vec![])).is_ok());
}

/// Every query of one reading is evaluated at the same instant: a scrape
/// landing between two of them must not split the snapshot (seen in CI:
/// the fleet's revisions already showed a push the modes did not).
#[test]
fn one_reading_evaluates_every_query_at_one_instant() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut lines = Vec::new();
        // Bounded: one reading of this plan runs fewer than 64 queries.
        for stream in listener.incoming().take(64) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.starts_with("GET /stop") {
                break;
            }
            lines.push(line.clone());
            while line != "\r\n" {
                line.clear();
                reader.read_line(&mut line).unwrap();
            }
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        lines
    });
    let plan = Plan::parse(CONFIG).unwrap();
    let prometheus = Prometheus::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    Snapshot::read(&prometheus, None, &plan.operations, &[]).unwrap();
    let _ =
        std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| s.write_all(b"GET /stop HTTP/1.1\r\n\r\n"));
    let lines = server.join().unwrap();
    let times: BTreeSet<&str> = lines
        .iter()
        .map(|line| {
            line.split("&time=")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .unwrap_or("none")
        })
        .collect();
    assert!(lines.len() > 10, "{lines:?}");
    assert_eq!(times.len(), 1, "{lines:?}");
    assert!(!times.contains("none"), "{lines:?}");
}
