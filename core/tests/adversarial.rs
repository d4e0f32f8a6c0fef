//! Hostile bodies: whatever a backend sends, the comparator answers, quickly,
//! without overflowing the stack (1 MiB in the wasm VM) and without panicking
//! (a panic aborts the filter). Each case runs well under a second in a debug
//! build; the time limit below only catches a hang or a quadratic blow-up.

// A test crate: its helpers may panic (clippy allows that in #[test] functions only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use parallel_run_core::compare::{compare, BodyProblem, CompareRules, Diff, MAX_REPORTED};
use parallel_run_core::header_map::HeaderMap;
use parallel_run_core::http::Response;
use parallel_run_core::Plan;

/// Generous: a debug build on a loaded CI machine, not a performance target.
#[cfg(not(target_arch = "wasm32"))]
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

fn typed(content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Response {
    Response {
        status: 200,
        headers: HeaderMap::from_pairs(content_type.map(|ct| ("content-type", ct))),
        body: body.into(),
    }
}

fn json(body: impl Into<Vec<u8>>) -> Response {
    typed(Some("application/json"), body)
}

/// `compare`, checked against the time limit (not in wasm32-unknown-unknown,
/// which has no clock).
fn timed_compare(rules: &CompareRules, serving: &Response, shadow: &Response) -> Diff {
    #[cfg(not(target_arch = "wasm32"))]
    let start = std::time::Instant::now();
    let diff = compare(rules, serving, shadow);
    #[cfg(not(target_arch = "wasm32"))]
    assert!(start.elapsed() < TIME_LIMIT, "took {:?}", start.elapsed());
    diff
}

fn body_paths(diff: &Diff) -> Vec<String> {
    diff.body.as_ref().map(|b| b.json_paths.clone()).unwrap_or_default()
}

/// The compare rules of a configuration with one operation.
fn rules(compare_section: &str) -> CompareRules {
    let config = format!(
        r#"{{"legacy": {{"cluster": "legacy"}}, "candidate": {{"cluster": "candidate"}},
            "operations": [{{"id": "op", "method": "GET", "path": "/items", "compare": {compare_section}}}]}}"#
    );
    let plan = Plan::parse(config.as_bytes()).unwrap();
    plan.operations[0].settings.compare.clone()
}

// ------------------------------------------------------------------ nesting

#[test]
fn hundred_thousand_open_brackets_differ_without_overflowing_the_stack() {
    let deep = "[".repeat(100_000);
    let deeper = format!("{deep}1");
    let diff = timed_compare(&CompareRules::default(), &json(deep.clone()), &json(deeper));
    assert!(!diff.status && diff.headers.is_empty(), "{diff:?}");
    assert!(diff.body.is_some(), "{diff:?}");
    // Byte-identical: equal without parsing at all.
    let diff = timed_compare(&CompareRules::default(), &json(deep.clone()), &json(deep));
    assert!(diff.is_match(), "{diff:?}");
}

#[test]
fn hundred_thousand_balanced_levels_differ_without_overflowing_the_stack() {
    let levels = 100_000;
    let left = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let right = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    let diff = timed_compare(&CompareRules::default(), &json(left), &json(right));
    assert!(diff.body.is_some(), "{diff:?}");

    let objects = format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
    let diff = timed_compare(&CompareRules::default(), &json(objects), &json(r#"{"a":1}"#));
    assert!(diff.body.is_some(), "{diff:?}");
}

#[test]
fn deep_but_parseable_documents_report_the_deep_path() {
    // Below serde_json's nesting limit (128): parsed, walked, reported.
    let depth = 100;
    let left = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let right = format!("{}2{}", "[".repeat(depth), "]".repeat(depth));
    let diff = timed_compare(&CompareRules::default(), &json(left), &json(right));
    assert_eq!(body_paths(&diff), vec!["/0".repeat(depth)]);
}

#[test]
fn deep_documents_under_ignore_rules() {
    let depth = 120;
    let left = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let right = format!("{}2{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let rules = rules(r#"{"ignore_json_paths": ["/*/*/*/*/*/*/*/*", "/a/a/a/meta"]}"#);
    let diff = timed_compare(&rules, &json(left), &json(right));
    assert!(diff.body.is_none(), "everything below depth 8 is ignored: {diff:?}");
}

// ------------------------------------------------------------------ size

fn zeros(len: usize, last: &str) -> String {
    let mut body = String::with_capacity(2 * len + 2);
    body.push('[');
    for _ in 1..len {
        body.push_str("0,");
    }
    body.push_str(last);
    body.push(']');
    body
}

#[test]
fn a_million_element_array_is_compared_element_by_element() {
    let n = 1_000_000;
    let diff = timed_compare(&CompareRules::default(), &json(zeros(n, "0")), &json(zeros(n, "1")));
    assert_eq!(body_paths(&diff), vec![format!("/{}", n - 1)]);
}

#[test]
fn a_million_element_array_against_a_shorter_one_is_one_length_difference() {
    let diff = timed_compare(
        &CompareRules::default(),
        &json(zeros(1_000_000, "0")),
        &json(zeros(999_999, "0")),
    );
    let body = diff.body.unwrap();
    assert_eq!((body.json_paths, body.more), (vec!["/length".to_string()], 0));
}

#[test]
fn a_million_differing_elements_report_a_bounded_list() {
    let n = 1_000_000;
    let ones = zeros(n, "1").replace('0', "1");
    let diff = timed_compare(&CompareRules::default(), &json(zeros(n, "0")), &json(ones));
    let body = diff.body.unwrap();
    assert_eq!(body.json_paths.len(), MAX_REPORTED, "{:?}", body.json_paths);
    assert_eq!(body.json_paths.len() + body.more, n);
}

#[test]
fn a_hundred_thousand_keys() {
    let object = |value: u32| {
        let fields: Vec<String> = (0..100_000).map(|i| format!(r#""k{i}":{value}"#)).collect();
        format!("{{{}}}", fields.join(","))
    };
    let diff = timed_compare(&CompareRules::default(), &json(object(1)), &json(object(2)));
    let body = diff.body.unwrap();
    assert_eq!(body.json_paths.len() + body.more, 100_000);
}

// ------------------------------------------------------------------ broken documents

#[test]
fn invalid_utf8_in_a_json_typed_body_is_a_difference_not_a_crash() {
    let cases: [(&[u8], &[u8]); 4] = [
        (b"{\"name\":\"\xff\xfe\"}", b"{\"name\":\"x\"}"),
        (b"{\"\xc3\x28\":1}", b"{\"\xc3\x28\":2}"),
        (b"[\"\xed\xa0\x80\"]", b"[\"\\ud800\"]"),
        (b"\xef\xbb\xbf{}", b"{}"),
    ];
    for (left, right) in cases {
        let diff = timed_compare(&CompareRules::default(), &json(left), &json(right));
        assert!(diff.body.is_some(), "{left:?} / {right:?}: {diff:?}");
        // And the same bytes on both sides are equal, parseable or not.
        assert!(timed_compare(&CompareRules::default(), &json(left), &json(left)).is_match());
    }
}

#[test]
fn truncated_json_is_a_difference_not_a_crash() {
    let whole = r#"{"id":"r-1","items":[{"sku":"A-1","qty":2}],"total":19.5}"#;
    for cut in 0..whole.len() {
        let truncated = &whole[..cut];
        let diff = timed_compare(&CompareRules::default(), &json(truncated), &json(whole));
        assert!(diff.body.is_some(), "cut at {cut}: {diff:?}");
        let diff = timed_compare(&CompareRules::default(), &json(whole), &json(truncated));
        assert!(diff.body.is_some(), "cut at {cut}: {diff:?}");
    }
}

#[test]
fn absurd_numbers_and_strings() {
    let cases = [
        ("[1e999999]", "[1]"),
        ("[-1e-999999]", "[0]"),
        ("[123456789012345678901234567890123456789]", "[1.2345678901234568e38]"),
        ("[18446744073709551616]", "[18446744073709551615]"),
        ("[-9223372036854775809]", "[-9223372036854775808]"),
    ];
    for (left, right) in cases {
        // Equal or not, an answer.
        let _ = timed_compare(&CompareRules::default(), &json(left), &json(right));
    }
    let long_digits = format!("[{}]", "9".repeat(100_000));
    let _ = timed_compare(&CompareRules::default(), &json(long_digits), &json("[9]"));
    let long_string = format!(r#"["{}"]"#, "\\u00e9".repeat(200_000));
    let diff = timed_compare(&CompareRules::default(), &json(long_string), &json(r#"["é"]"#));
    assert_eq!(body_paths(&diff), vec!["/0".to_string()]);
}

// ------------------------------------------------------------------ JSON against text

#[test]
fn one_side_json_one_side_text() {
    let document = r#"{"error":"not found"}"#;
    let diff = timed_compare(
        &CompareRules::default(),
        &json(document),
        &typed(Some("text/plain"), "not found"),
    );
    assert_eq!(diff.headers, vec!["content-type".to_string()]);
    assert_eq!(body_paths(&diff), Vec::<String>::new());
    assert!(diff.body.is_some(), "{diff:?}");

    // The same document typed as text on one side: not both JSON, so bytes
    // decide, and a reformatted document differs.
    let diff = timed_compare(
        &CompareRules::default(),
        &json(document),
        &typed(Some("text/plain"), r#"{ "error": "not found" }"#),
    );
    assert!(diff.body.is_some(), "{diff:?}");

    // An HTML error page where JSON was expected, and an empty body.
    let html = typed(Some("text/html"), "<html><body>502 Bad Gateway</body></html>");
    assert!(timed_compare(&CompareRules::default(), &json(document), &html)
        .body
        .is_some());
    assert!(timed_compare(&CompareRules::default(), &json(document), &json(""))
        .body
        .is_some());
    // Sniffed as JSON (no media type) against JSON that is not.
    let sniffed = typed(None, "[unterminated");
    assert!(timed_compare(&CompareRules::default(), &sniffed, &json("[]"))
        .body
        .is_some());
}

#[test]
fn hostile_header_values_are_compared_as_bytes() {
    let mut left = json("{}");
    let mut right = json("{}");
    left.headers = left.headers.with("x-bin", &[0xff, 0x00, b'\n', 0xc3]);
    right.headers = right.headers.with("x-bin", &[0xff, 0x00, b'\n']);
    left.headers = left.headers.with("content-type", b"application/json; charset=\xff");
    let diff = timed_compare(&CompareRules::default(), &left, &right);
    assert_eq!(diff.headers, vec!["content-type".to_string(), "x-bin".to_string()]);
}

// ------------------------------------------------------------------ rules on big inputs

#[test]
fn a_hundred_thousand_element_unordered_array() {
    let rules = rules(r#"{"unordered_arrays": [""], "number_tolerance": {"absolute": 0.5}}"#);
    let n = 100_000;
    let forward: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let backward: Vec<String> = (0..n).rev().map(|i| i.to_string()).collect();
    let left = format!("[{}]", forward.join(","));
    let right = format!("[{}]", backward.join(","));
    assert!(timed_compare(&rules, &json(left.clone()), &json(right)).is_match());
    // Nothing pairs by equality: every element pairs within the tolerance,
    // in numeric order (regressions.rs).
    let shifted: Vec<String> = (0..n).rev().map(|i| format!("{i}.25")).collect();
    let shifted = format!("[{}]", shifted.join(","));
    assert!(timed_compare(&rules, &json(left.clone()), &json(shifted)).is_match());
    // Nor within the tolerance: every element is left over and compared in
    // depth, the report stays bounded.
    let shifted: Vec<String> = (0..n).rev().map(|i| format!("{i}.75")).collect();
    let diff = timed_compare(&rules, &json(left), &json(format!("[{}]", shifted.join(","))));
    assert!(diff.body.is_some_and(|b| b.json_paths == ["/*"] && b.more == n - 1));
}

#[test]
fn long_runs_of_near_matches_for_masks() {
    let rules = rules(r#"{"masks": ["uuid", "iso8601", {"pattern": "a+b", "name": "ab"}]}"#);
    // Near-misses everywhere: many starts that run long and fail. (64 KiB:
    // a debug build scans about 1 MB/s with these masks.)
    let size = 64 << 10;
    let left = "a".repeat(size);
    let right = format!("{}b", "a".repeat(size - 1));
    let text = |body: String| typed(Some("text/plain"), body);
    assert!(timed_compare(&rules, &text(left), &text(right)).body.is_some());
    let digits = "2026-11-22T".repeat(size / 11);
    let _ = timed_compare(&rules, &text(digits), &text("x".to_string()));
}

/// A gzip member whose deflate stream is one literal `0` byte and then
/// copies of 258 bytes at distance 1 (fixed Huffman codes): `len` bytes of
/// '0' in about len/160 bytes.
fn gzip_zeros(len: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        /// `count` bits of `value`, least significant first.
        fn put(&mut self, value: u64, count: u32) {
            self.acc |= value << self.n;
            self.n += count;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code: most significant bit first.
        fn code(&mut self, code: u64, count: u32) {
            let reversed = (0..count).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(reversed, count);
        }
    }
    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30 + u64::from(b'0'), 8); // literal '0'
    let mut written = 1;
    while written + 258 <= len {
        bits.code(0b1100_0101, 8); // length code 285: 258 bytes
        bits.code(0, 5); // distance code 0: distance 1
        written += 258;
    }
    while written < len {
        bits.code(0x30 + u64::from(b'0'), 8);
        written += 1;
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.put(0, 8 - bits.n);
    }
    let crc = {
        let mut crc = !0u32;
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            *entry = (0..8).fold(
                i as u32,
                |c, _| if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 },
            );
        }
        for _ in 0..len {
            crc = table[((crc ^ u32::from(b'0')) & 0xff) as usize] ^ (crc >> 8);
        }
        !crc
    };
    bits.out.extend_from_slice(&crc.to_le_bytes());
    bits.out.extend_from_slice(&(len as u32).to_le_bytes());
    bits.out
}

fn gzipped(body: Vec<u8>) -> Response {
    let mut response = json(body);
    response.headers = response.headers.with("content-encoding", b"gzip");
    response
}

#[test]
fn a_gzip_bomb_stops_at_the_decoding_limit() {
    // 16 MiB of '0' in about 100 KiB; the default limit is 1 MiB.
    let bomb = gzip_zeros(16 << 20);
    assert!(bomb.len() < 128 << 10, "{}", bomb.len());
    let diff = timed_compare(&CompareRules::default(), &gzipped(bomb), &json("0"));
    assert_eq!(diff.body.and_then(|b| b.problem), Some(BodyProblem::DecodedTooLarge));
}

#[test]
fn a_small_gzip_body_decodes_and_compares() {
    // Checks the hand-made gzip above: within the limit it is just zeros.
    let diff = timed_compare(
        &CompareRules::default(),
        &gzipped(gzip_zeros(100_000)),
        &typed(Some("application/json"), "0".repeat(100_000)),
    );
    assert!(diff.is_match(), "{diff:?}");
}
