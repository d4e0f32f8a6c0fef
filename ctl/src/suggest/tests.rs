//! Proposals from hand-written records in the evidence specification's
//! exact format (parsed by the receiver's own code), and from noise gauges.

use super::*;
use crate::evidence::record::parse_request;
use crate::evidence::record::tests::{field_json, record_json, request_json, side_json, timestamp_field, LIMITS};
use crate::testutil::TempDir;

const CONFIG: &str = r#"{
  "revision": "r42",
  "legacy": {"cluster": "legacy"},
  "candidate": {"cluster": "candidate"},
  "defaults": {"mode": "shadow", "compare": {"ignore_json_paths": ["/trace"]}},
  "operations": [
    {"id": "getReturn", "method": "GET", "path": "/returns/{id}",
     "compare": {"masks": ["uuid"], "number_tolerance": {"absolute": 0.5}}},
    {"id": "listReturns", "method": "GET", "path": "/returns"}
  ]
}"#;

fn config() -> Value {
    serde_json::from_str(CONFIG).unwrap()
}

/// Records as the receiver stores them: parsed from spec-format JSON.
fn records(bodies: Vec<Value>) -> Vec<(i64, Record)> {
    let body = request_json(bodies);
    parse_request(body.to_string().as_bytes(), LIMITS)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as i64 + 1, r))
        .collect()
}

fn hint(name: &str) -> (&'static str, Value) {
    ("hint", json!({"stringValue": name}))
}

fn permutation(path: &str, key: Option<&str>) -> Value {
    let mut extra = vec![hint("permutation")];
    if let Some(key) = key {
        extra.push(("array_key", json!({"stringValue": key})));
    }
    field_json(
        "body",
        path,
        side_json("array", None, 3, "1111", None),
        side_json("array", None, 3, "2222", None),
        &extra,
    )
}

fn rounding(path: &str, delta: f64) -> Value {
    field_json(
        "body",
        path,
        side_json("number", None, 5, "aaaa", None),
        side_json("number", None, 5, "bbbb", None),
        &[hint("rounding"), ("relative_delta", json!({"doubleValue": delta}))],
    )
}

fn suggest(records: &[(i64, Record)], min_records: usize) -> (Vec<Proposal>, BTreeSet<Skipped>) {
    let mut findings = Findings::new();
    let mut skipped = BTreeSet::new();
    learn_records(records, &mut findings, &mut skipped);
    let proposals = propose(&config(), &findings, min_records, &mut skipped);
    (proposals, skipped)
}

fn only<'a>(proposals: &'a [Proposal], operation: &str, member: &str) -> &'a Proposal {
    let found: Vec<&Proposal> = proposals
        .iter()
        .filter(|p| p.operation == operation && p.rule.member() == member)
        .collect();
    assert_eq!(found.len(), 1, "{proposals:#?}");
    found[0]
}

#[test]
fn a_timestamp_that_differs_on_both_sides_gets_its_mask_with_its_evidence() {
    let records = records(vec![
        record_json("listReturns", "r41", "req-1", vec![timestamp_field()]),
        record_json("listReturns", "r42", "req-2", vec![timestamp_field()]),
    ]);
    let (proposals, _) = suggest(&records, 1);
    let mask = only(&proposals, "listReturns", "masks");
    assert_eq!(mask.rule, Rule::Mask("iso8601".into()));
    assert_eq!(mask.value, json!(["iso8601"]));
    assert_eq!(mask.was, Value::Null);
    assert_eq!(mask.backing.records, 2);
    assert_eq!(
        mask.backing.request_ids,
        BTreeSet::from(["req-1".to_string(), "req-2".to_string()])
    );
    assert_eq!(
        mask.backing.revisions,
        BTreeSet::from(["r41".to_string(), "r42".to_string()])
    );
    assert_eq!(mask.backing.fields, BTreeSet::from(["/at".to_string()]));
    // On getReturn, the mask joins the operation's own list.
    let records = records_for("getReturn", vec![timestamp_field()]);
    let (proposals, _) = suggest(&records, 1);
    assert_eq!(only(&proposals, "getReturn", "masks").value, json!(["uuid", "iso8601"]));
}

fn records_for(operation: &str, fields: Vec<Value>) -> Vec<(i64, Record)> {
    records(vec![record_json(operation, "r42", "req-9", fields)])
}

#[test]
fn no_mask_for_equal_hashes_other_shapes_or_a_present_mask() {
    let same = field_json(
        "body",
        "/at",
        side_json("string", Some("iso8601"), 20, "9f2c", None),
        side_json("string", Some("iso8601"), 20, "9f2c", None),
        &[],
    );
    let text = field_json(
        "body",
        "/name",
        side_json("string", Some("text"), 4, "aa", None),
        side_json("string", Some("text"), 4, "bb", None),
        &[],
    );
    let mixed = field_json(
        "body",
        "/at",
        side_json("string", Some("iso8601"), 20, "aa", None),
        side_json("string", Some("text"), 20, "bb", None),
        &[],
    );
    let (proposals, _) = suggest(&records_for("listReturns", vec![same, text, mixed]), 1);
    assert!(proposals.is_empty(), "{proposals:#?}");
    let uuid = field_json(
        "body",
        "/id",
        side_json("string", Some("uuid"), 36, "aa", None),
        side_json("string", Some("uuid"), 36, "bb", None),
        &[],
    );
    let (proposals, skipped) = suggest(&records_for("getReturn", vec![uuid]), 1);
    assert!(proposals.is_empty(), "{proposals:#?}");
    assert!(
        skipped
            .iter()
            .any(|s| s.reason == "masks \"uuid\": already in the configuration"),
        "{skipped:#?}"
    );
}

#[test]
fn a_header_of_a_timestamp_shape_is_ignored_since_masks_are_for_bodies() {
    let date = field_json(
        "header",
        "Last-Modified",
        side_json("string", Some("http_date"), 29, "aa", None),
        side_json("string", Some("http_date"), 29, "bb", None),
        &[],
    );
    let (proposals, _) = suggest(&records_for("listReturns", vec![date]), 1);
    let p = only(&proposals, "listReturns", "ignore_headers");
    assert_eq!(p.value, json!(["last-modified"]));
    assert_eq!(p.backing.fields, BTreeSet::from(["header:Last-Modified".to_string()]));
}

#[test]
fn a_permutation_gets_an_unordered_array_with_its_key_and_indices_generalised() {
    let records = records_for(
        "listReturns",
        vec![
            permutation("/items", Some("/id")),
            permutation("/orders/3/lines", None),
            permutation("/x", Some("/{}")),
        ],
    );
    let (proposals, _) = suggest(&records, 1);
    // One proposal per array; the last holds the list with all of them. A
    // hidden key cannot pair elements: that array is compared as a multiset.
    let entries: Vec<Option<Value>> = proposals.iter().map(|p| p.rule.entry()).collect();
    assert_eq!(
        entries,
        [
            Some(json!({"path": "/items", "key": "/id"})),
            Some(json!("/orders/*/lines")),
            Some(json!("/x"))
        ]
    );
    assert_eq!(
        proposals[2].value,
        json!([{"path": "/items", "key": "/id"}, "/orders/*/lines", "/x"])
    );
    assert_eq!(proposals[1].was, json!([{"path": "/items", "key": "/id"}]));
    // An array already unordered (any entry naming it) is not proposed again.
    let mut config = config();
    config["operations"][1]["compare"] = json!({"unordered_arrays": ["/items"]});
    let mut findings = Findings::new();
    let mut skipped = BTreeSet::new();
    learn_records(
        &records_for("listReturns", vec![permutation("/items", Some("/id"))]),
        &mut findings,
        &mut skipped,
    );
    assert!(propose(&config, &findings, 1, &mut skipped).is_empty());
}

#[test]
fn rounding_proposes_the_largest_delta_rounded_up_next_to_an_absolute_tolerance() {
    let records = records(vec![
        record_json("getReturn", "r42", "a", vec![rounding("/items/0/price", 1.5e-9)]),
        record_json("getReturn", "r42", "b", vec![rounding("/items/1/price", 3.2e-9)]),
    ]);
    let (proposals, _) = suggest(&records, 1);
    let p = only(&proposals, "getReturn", "number_tolerance");
    assert_eq!(p.value, json!({"absolute": 0.5, "relative": 4e-9}));
    assert_eq!(p.was, json!({"absolute": 0.5}));
    assert_eq!(p.backing.max_delta, 3.2e-9);
    assert_eq!(p.backing.records, 2);
    // A larger relative tolerance already there: nothing to propose.
    let mut config = config();
    config["operations"][0]["compare"]["number_tolerance"] = json!({"relative": 1e-6});
    let mut findings = Findings::new();
    let mut skipped = BTreeSet::new();
    learn_records(&records, &mut findings, &mut skipped);
    assert!(propose(&config, &findings, 1, &mut skipped).is_empty());
    assert_eq!(round_up(3.2e-9), 4e-9);
    assert_eq!(round_up(1e-6), 1e-6);
    assert_eq!(round_up(9.5e-7), 1e-6);
    assert_eq!(round_up(3e-9), 3e-9);
}

#[test]
fn case_only_proposes_case_insensitive_keys() {
    let case = field_json(
        "body",
        "/Items",
        side_json("array", None, 1, "aa", None),
        side_json("missing", None, 0, "bb", None),
        &[hint("case_only")],
    );
    let (proposals, _) = suggest(&records_for("listReturns", vec![case]), 1);
    let p = only(&proposals, "listReturns", "case_insensitive_keys");
    assert_eq!(p.value, json!(true));
}

#[test]
fn too_few_records_are_not_proposed_and_say_so() {
    let (proposals, skipped) = suggest(&records_for("listReturns", vec![timestamp_field()]), 2);
    assert!(proposals.is_empty());
    let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons, ["masks \"iso8601\": only 1 record(s), --min-records 2"]);
}

#[test]
fn learned_noise_becomes_ignore_paths_and_headers_minimally() {
    let mut stats = BTreeMap::new();
    let gauge = |op: &str, field: &str| format!("wasmcustom.parallel_run.operation.{op}.noise_path.{field}");
    stats.insert(gauge("listReturns", "/updated_at"), 1);
    stats.insert(gauge("listReturns", "/was_noise"), 0);
    stats.insert(gauge("listReturns", "header:etag"), 1);
    stats.insert(gauge("listReturns", "/{}"), 1);
    stats.insert(gauge("listReturns", "/trace/span"), 1);
    stats.insert(gauge("listReturnsV2", "/other"), 1);
    stats.insert(gauge("getReturn", "/items/*/{}/at"), 1);
    let noise = noise_from_stats(&stats, &["listReturns".to_string(), "getReturn".to_string()]);
    assert_eq!(
        noise["listReturns"],
        ["/trace/span", "/updated_at", "/{}", "header:etag"]
    );
    let mut findings = Findings::new();
    let mut skipped = BTreeSet::new();
    learn_noise(&noise, "http://127.0.0.1:9901", &mut findings, &mut skipped);
    let proposals = propose(&config(), &findings, 1, &mut skipped);
    // The operation's own list gets the new entry only (the filter adds the
    // defaults' list to it); /trace/span is under the inherited /trace already.
    let p = only(&proposals, "listReturns", "ignore_json_paths");
    assert_eq!(p.value, json!(["/updated_at"]));
    assert_eq!(p.backing.source, "noise");
    assert_eq!(only(&proposals, "listReturns", "ignore_headers").value, json!(["etag"]));
    assert_eq!(
        only(&proposals, "getReturn", "ignore_json_paths").value,
        json!(["/items/*/*/at"])
    );
    let reasons: Vec<String> = skipped
        .iter()
        .map(|s| format!("{} {}: {}", s.operation, s.field, s.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("listReturns /{}: learned noise, but its keys are hidden")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("listReturns /trace/span: ignore_json_paths \"/trace/span\": already")),
        "{reasons:#?}"
    );
}

#[test]
fn the_proposal_is_written_to_a_new_file_validated_the_rest_kept() {
    let records = records(vec![
        record_json("getReturn", "r42", "a", vec![timestamp_field(), rounding("/p", 2e-9)]),
        record_json(
            "listReturns",
            "r42",
            "b",
            vec![permutation("/items", Some("/id")), timestamp_field()],
        ),
    ]);
    let (proposals, _) = suggest(&records, 1);
    let text = rewrite(CONFIG, &config(), &proposals).unwrap();
    // Only the compare members changed.
    let written: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(written["operations"][0]["compare"]["masks"], json!(["uuid", "iso8601"]));
    assert_eq!(
        written["operations"][0]["compare"]["number_tolerance"],
        json!({"absolute": 0.5, "relative": 2e-9})
    );
    assert_eq!(
        written["operations"][1]["compare"],
        // Two members into an operation that had no compare: one object.
        json!({"unordered_arrays": [{"path": "/items", "key": "/id"}], "masks": ["iso8601"]})
    );
    assert!(text.starts_with("{\n  \"revision\": \"r42\",\n  \"legacy\""), "{text}");
    document::validate(&text).unwrap();

    let dir = TempDir::new("suggest");
    let doc = Document::from_bytes(Some(dir.path.join("c.json")), CONFIG.as_bytes().to_vec()).unwrap();
    let out = dir.path.join("proposed.json");
    write(&doc, &config(), &proposals, &out).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    // Never over an existing file.
    let err = write(&doc, &config(), &proposals, &out).unwrap_err();
    assert!(err.message.contains("it must be a new file"), "{err}");
    // Nothing to propose: nothing written.
    let err = write(&doc, &config(), &[], &dir.path.join("empty.json")).unwrap_err();
    assert!(err.message.ends_with("nothing to propose"), "{err}");
    assert!(!dir.path.join("empty.json").exists());
}

#[test]
fn the_text_shows_each_proposal_with_its_evidence_and_the_compare_diff() {
    let records = records_for("listReturns", vec![timestamp_field()]);
    let (proposals, skipped) = suggest(&records, 1);
    let lines = text_lines(
        "c.json",
        "r42",
        &["e.db (1 records)".into()],
        &proposals,
        &config(),
        &skipped,
    );
    assert_eq!(
        lines,
        [
            "suggest: 1 proposals for 1 operations of c.json (revision \"r42\"); nothing is changed",
            "from: e.db (1 records)",
            "",
            "listReturns:",
            "  + compare.masks += \"iso8601\"",
            "      /at: a value shaped iso8601 on both sides, different values",
            "      evidence: 1 records, revision \"r42\", request ids \"req-9\"",
            "  - \"compare\": {}",
            "  + \"compare\": {\"masks\":[\"iso8601\"]}",
        ]
    );
    let json = proposal_json(&proposals[0]);
    assert_eq!(json["member"], "compare.masks");
    assert_eq!(json["entry"], "iso8601");
    assert_eq!(json["evidence"]["request_ids"], json!(["req-9"]));
}

#[test]
fn a_noise_field_that_a_proposed_mask_covers_is_not_ignored_too() {
    let mut findings = Findings::new();
    let mut skipped = BTreeSet::new();
    let noise = BTreeMap::from([("listReturns".to_string(), vec!["/at".to_string(), "/n".to_string()])]);
    learn_noise(&noise, "http://127.0.0.1:9901", &mut findings, &mut skipped);
    learn_records(
        &records_for("listReturns", vec![timestamp_field()]),
        &mut findings,
        &mut skipped,
    );
    let proposals = propose(&config(), &findings, 1, &mut skipped);
    let rules: Vec<&Rule> = proposals.iter().map(|p| &p.rule).collect();
    assert_eq!(
        rules,
        [&Rule::IgnoreJsonPath("/n".into()), &Rule::Mask("iso8601".into())]
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.field == "/at" && s.reason == "learned noise, but the proposed mask \"iso8601\" covers it"),
        "{skipped:#?}"
    );
}

#[test]
fn a_list_adds_to_the_defaults_and_a_replacing_list_keeps_its_shape() {
    let config = json!({"defaults": {"compare": {"ignore_json_paths": ["/trace"]}}});
    // Merged: the defaults' entries count as present, and are not copied in.
    let own = json!(["/a"]);
    assert_eq!(
        running_list(&config, &own, "ignore_json_paths"),
        [json!("/a"), json!("/trace")]
    );
    assert_eq!(with_entry(&own, json!("/b")), json!(["/a", "/b"]));
    // Replaced: only the operation's own entries run, and the shape stays.
    let replacing = json!({"replace": ["/a"]});
    assert_eq!(running_list(&config, &replacing, "ignore_json_paths"), [json!("/a")]);
    assert_eq!(
        with_entry(&replacing, json!("/trace")),
        json!({"replace": ["/a", "/trace"]})
    );
}
