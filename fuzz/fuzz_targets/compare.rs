//! Two responses derived from the fuzz input, compared under one of a few
//! fixed rule sets (each a `compare` section of a real configuration, through
//! `Plan::parse`). Besides "no panic, no hang", checks properties every
//! comparator must keep:
//! - symmetry: `compare(a, b)` matches exactly when `compare(b, a)` does (in
//!   cutover the candidate serves, so the sides swap);
//! - equal status codes never differ; reports stay bounded (MAX_REPORTED
//!   examples; every header at most once; every field once, sorted);
//! - byte-identical bodies with the same Content-Encoding never differ;
//! - re-serialisation: a JSON body and serde_json's re-serialisation of it
//!   (keys sorted, whitespace and number spelling changed) compare equal
//!   when both sides are typed as JSON (rule sets without text masks);
//! - encoding: gzip or deflate applied to one body (with its
//!   Content-Encoding) changes nothing in the diff, within the size limit.
//!
//! Input layout (see corpus/compare/ for examples):
//! byte 0  rule set (index into RULES, modulo)
//! byte 1  flags: bits 0-1 left content type, bits 2-3 right content type,
//!         bit 4 right status differs (by class and by equivalence group);
//!         bit 5 re-serialisation mode (bit 6: pretty-printed);
//!         bit 7 encoding mode (bit 6: deflate instead of gzip)
//! byte 2  which of HEADERS the left side carries (bit mask)
//! byte 3  which of HEADERS the right side carries
//! rest    left body, a NUL byte, the right body; without a NUL both bodies
//!         are the same bytes
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use parallel_run_core::compare::{compare, CompareRules, Diff, MAX_REPORTED};
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::Response;
use parallel_run_core::Plan;

/// `compare` sections, and the operation's `max_body_bytes` (the decoding
/// limit). Each becomes a whole configuration.
const RULES: &[(&str, u32)] = &[
    ("null", 1 << 20),
    (
        r#"{"ignore_headers": ["etag", "x-trace-*"], "ignore_json_paths": ["/updated_at", "/items/*/etag"]}"#,
        1 << 20,
    ),
    (
        r#"{"ignore_json_paths": ["/a~1b", "/~0", "/0/*/x", "/*/id"], "unordered_arrays": ["", "/items", "/*/*"],
            "null_equals_missing": true}"#,
        4096,
    ),
    (
        r#"{"ignore_headers": ["*"], "unordered_arrays": [{"path": "/items", "key": "/sku"}, "/*/tags"],
            "number_tolerance": {"absolute": 0.01, "relative": 1e-9}, "status": "class",
            "status_equivalent": [[404, 410], [200, 304]]}"#,
        1 << 20,
    ),
    (
        r#"{"masks": ["uuid", "iso8601", {"pattern": "[a-f0-9]{8}", "name": "hex"}, {"pattern": "x\\d+y?", "name": "xd"}],
            "unordered_arrays": [{"path": "", "key": "/id"}], "number_tolerance": {"relative": 0.5}}"#,
        65536,
    ),
];

/// Rule sets whose masks rewrite text: a re-serialisation (other escapes)
/// may legitimately mask differently.
fn has_masks(rule: usize) -> bool {
    RULES
        .get(rule)
        .is_some_and(|(section, _)| section.contains("\"masks\""))
}

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/problem+json; charset=utf-8"),
    Some("text/plain"),
    None,
];

const HEADERS: [(&str, &str); 8] = [
    ("etag", "\"v1\""),
    ("Date", "Mon, 23 Nov 2026 10:00:00 GMT"),
    ("x-envoy-upstream-service-time", "3"),
    ("set-cookie", "a=1"),
    ("set-cookie", "b=2"),
    ("x-trace-id", "abc"),
    ("content-encoding", "gzip"),
    ("Content-Encoding", "deflate, identity"),
];
const ENCODING_HEADERS: u8 = 0xc0;

fn rule_sets() -> &'static [(CompareRules, usize)] {
    static SETS: OnceLock<Vec<(CompareRules, usize)>> = OnceLock::new();
    SETS.get_or_init(|| {
        RULES
            .iter()
            .map(|(compare, max_body_bytes)| {
                let config = format!(
                    r#"{{"legacy": {{"cluster": "legacy"}}, "candidate": {{"cluster": "candidate"}},
                        "operations": [{{"id": "op", "method": "GET", "path": "/items/{{id}}", "mode": "shadow",
                                         "max_body_bytes": {max_body_bytes}, "compare": {compare}}}]}}"#
                );
                let plan = Plan::parse(config.as_bytes()).unwrap_or_else(|e| panic!("fixed rule set {compare}: {e}"));
                (plan.operations[0].settings.compare.clone(), *max_body_bytes as usize)
            })
            .collect()
    })
}

fn response(status: u16, content_type: u8, header_mask: u8, body: Vec<u8>) -> Response {
    let mut headers: Vec<(String, Vec<u8>)> = HEADERS
        .iter()
        .enumerate()
        .filter(|(i, _)| header_mask & (1 << i) != 0)
        .map(|(_, (name, value))| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    if let Some(media_type) = CONTENT_TYPES[usize::from(content_type & 3)] {
        headers.insert(0, ("content-type".to_string(), media_type.as_bytes().to_vec()));
    }
    Response {
        status,
        headers: HeaderMap::from_pairs(headers),
        body,
    }
}

fn is_json_type(content_type: u8) -> bool {
    content_type & 3 < 2
}

fn encode(body: &[u8], deflate: bool) -> Vec<u8> {
    let written = if deflate {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(body).and_then(|()| encoder.finish())
    } else {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(body).and_then(|()| encoder.finish())
    };
    written.unwrap_or_else(|e| panic!("encoding in memory: {e}"))
}

fn check_bounded(diff: &Diff) {
    assert!(diff.headers.windows(2).all(|w| w[0] < w[1]), "headers sorted, each once: {diff:?}");
    if let Some(body) = &diff.body {
        assert!(body.json_paths.len() <= MAX_REPORTED, "{diff:?}");
        assert!(body.fields.windows(2).all(|w| w[0] < w[1]), "fields sorted, each once: {diff:?}");
        assert!(body.json_paths.is_empty() || !body.fields.is_empty() || body.fields_dropped > 0, "{diff:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [rule, flags, left_headers, right_headers, rest @ ..] = data else {
        return;
    };
    let rule = usize::from(*rule) % RULES.len();
    let (rules, max_body_bytes) = &rule_sets()[rule];
    let left_type = flags & 3;
    let right_type = (flags >> 2) & 3;
    let (left_body, right_body) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, rest),
    };

    // Re-serialisation: a document and its re-serialisation are the same
    // document.
    if flags & 0xa0 == 0x20 {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(left_body) else {
            return;
        };
        let again = if flags & 0x40 != 0 {
            serde_json::to_vec_pretty(&value)
        } else {
            serde_json::to_vec(&value)
        }
        .unwrap_or_default();
        let headers = left_headers & !ENCODING_HEADERS;
        let left = response(200, left_type, headers, left_body.to_vec());
        let right = response(200, left_type, headers, again);
        let diff = compare(rules, &left, &right);
        if is_json_type(left_type) && !has_masks(rule) {
            assert!(diff.is_match(), "re-serialised JSON differs: {diff:?}");
        }
        assert_eq!(diff, compare(rules, &left, &right), "not deterministic");
        return;
    }

    let right_status = if flags & 0x10 != 0 { 410 } else { 404 };
    let left = response(404, left_type, *left_headers, left_body.to_vec());
    let right = response(right_status, right_type, *right_headers, right_body.to_vec());

    // Encoding: gzip or deflate on the right body changes nothing.
    if flags & 0x80 != 0 {
        let deflate = flags & 0x40 != 0;
        let left = response(404, left_type, left_headers & !ENCODING_HEADERS, left_body.to_vec());
        let plain = response(
            right_status,
            right_type,
            right_headers & !ENCODING_HEADERS,
            right_body.to_vec(),
        );
        let mut encoded = plain.clone();
        encoded.body = encode(right_body, deflate);
        let coding: &[u8] = if deflate { b"deflate" } else { b"gzip" };
        encoded.headers = encoded.headers.with("content-encoding", coding);
        let want = compare(rules, &left, &plain);
        let got = compare(rules, &left, &encoded);
        if right_body.len() <= *max_body_bytes && left_body.len() <= *max_body_bytes {
            assert_eq!(got, want, "an encoded body compares differently");
        } else {
            assert!(got.too_large() || got == want, "{got:?}");
        }
        return;
    }

    let forward = compare(rules, &left, &right);
    let backward = compare(rules, &right, &left);
    assert_eq!(
        forward.is_match(),
        backward.is_match(),
        "not symmetric: {forward:?} / {backward:?}"
    );
    if left.status == right.status {
        assert!(!forward.status, "{forward:?}");
    }
    check_bounded(&forward);
    check_bounded(&backward);
    if left_body == right_body && (left_headers & ENCODING_HEADERS) == (right_headers & ENCODING_HEADERS) {
        assert!(forward.body.is_none(), "byte-identical bodies differ: {forward:?}");
    }
});
