//! A configuration, then requests against it: the input is decoded into a
//! configuration of a few operations (methods, path templates of literals
//! and parameters, `hosts` at both levels, an operation header) that goes
//! through `Plan::parse`, and a sequence of requests (method, path,
//! authority, operation header) that goes through `Plan::classify_request`,
//! `Plan::classify` and `Plan::in_scope`. Besides "no panic, no hang":
//! - classification agrees with a reference written from the README's
//!   matching rules, naively (every operation tried, the most literal match
//!   wins, ties to the first), with host scoping reimplemented on strings;
//! - a literal-only template matches exactly its own path, on a host its
//!   operation serves;
//! - an accepted plan holds every operation, in order.
//!
//! Input layout: a stream of bytes read as small choices (each byte picks
//! from a short list, see `Input`); when the input runs out every further
//! choice is 0. The last requests take their paths and authorities from the
//! raw rest of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallel_run_core::limits::{MAX_AUTHORITY_BYTES, MAX_REQUEST_PATH_BYTES};
use parallel_run_core::Plan;
use serde_json::{json, Value};

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
/// Literal segments of templates and requests: some equal but for case or
/// encoding, some that look like a template's syntax in a request.
const LITERALS: &[&str] = &["a", "b", "ab", "A", "%61", "items", "x.y", "-", "_", "1"];
/// Request-only segment values.
const VALUES: &[&str] = &["", "v", "{id}", "%2F", "a b", "\u{fc}", "?", "#", ".", ".."];
const HOST_PATTERNS: &[&str] = &[
    "a.example.com",
    "*.example.com",
    "b.example.com",
    "*.a.example.com",
    "example.com",
    "EXAMPLE.org.",
    "[::1]",
];
const AUTHORITIES: &[&str] = &[
    "a.example.com",
    "A.EXAMPLE.COM:8080",
    "x.a.example.com",
    "example.com",
    "example.com.",
    "b.example.com:1",
    "example.org",
    "[::1]:80",
    "[::1]",
    "",
    ":443",
    "evil.com",
    "a.example.com.evil.com",
];

/// Choices read from the fuzz input.
struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.bytes.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.bytes = rest;
        first
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn pick<'s>(&mut self, list: &[&'s str]) -> &'s str {
        list[self.below(list.len())]
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

fn host_list(input: &mut Input<'_>) -> Vec<String> {
    let count = 1 + input.below(2);
    (0..count).map(|_| input.pick(HOST_PATTERNS).to_string()).collect()
}

fn configuration(input: &mut Input<'_>) -> Value {
    let mut operations = Vec::new();
    for i in 0..1 + input.below(8) {
        let mut path = String::new();
        for s in 0..input.below(5) {
            if input.flag() {
                path.push_str(&format!("/{{p{s}}}"));
            } else {
                path.push('/');
                path.push_str(input.pick(LITERALS));
            }
        }
        if path.is_empty() || input.below(4) == 0 {
            path.push('/');
        }
        let mut op = json!({"id": format!("op{i}"), "method": input.pick(METHODS), "path": path});
        if input.below(3) == 0 {
            op["hosts"] = json!(host_list(input));
        }
        operations.push(op);
    }
    let mut config = json!({
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "operations": operations,
    });
    if input.below(3) == 0 {
        config["hosts"] = json!(host_list(input));
    }
    if input.flag() {
        config["operation_header"] = json!("x-op");
    }
    config
}

struct Request {
    method: String,
    path: String,
    authority: Vec<u8>,
    header: Option<Vec<u8>>,
}

fn request(input: &mut Input<'_>, operations: usize) -> Request {
    let method = input.pick(METHODS).to_string();
    let mut path = String::new();
    for _ in 0..input.below(6) {
        path.push('/');
        path.push_str(if input.flag() { input.pick(LITERALS) } else { input.pick(VALUES) });
    }
    match input.below(6) {
        0 => path.push('/'),
        1 => path.push_str("?q=/a/b"),
        2 => path.push_str("/?x#f"),
        3 => path = format!("/{}", "a/".repeat(MAX_REQUEST_PATH_BYTES / 2)),
        _ => {}
    }
    if path.is_empty() && input.flag() {
        path.push('/');
    }
    let authority = if input.below(16) == 0 {
        format!("{}.example.com", "a".repeat(MAX_AUTHORITY_BYTES)).into_bytes()
    } else {
        input.pick(AUTHORITIES).as_bytes().to_vec()
    };
    let header = match input.below(4) {
        0 => None,
        1 => Some(b"nope".to_vec()),
        _ => Some(format!("op{}", input.below(operations + 1)).into_bytes()),
    };
    Request { method, path, authority, header }
}

// ---------------------------------------------------------------- the reference

/// A template as kinds: `None` a parameter, `Some(text)` a literal.
fn template(path: &str) -> Vec<Option<&str>> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split('/').map(|s| if s.starts_with('{') { None } else { Some(s) }).collect()
}

/// A request path's segments, by the README's rules, or `None` when it can
/// match no template.
fn request_segments(path: &str) -> Option<Vec<&str>> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.len() > MAX_REQUEST_PATH_BYTES {
        return None;
    }
    let rest = path.strip_prefix('/')?;
    let rest = match rest.strip_suffix('/') {
        Some("") => return None,
        Some(trimmed) => trimmed,
        None => rest,
    };
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    (!segments.iter().any(|s| s.is_empty())).then_some(segments)
}

/// The host of an authority, lower-case, without port and trailing dot.
fn reference_host(authority: &[u8]) -> Option<String> {
    if authority.len() > MAX_AUTHORITY_BYTES {
        return None;
    }
    let text = String::from_utf8_lossy(authority).to_ascii_lowercase();
    let host = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => text[..=end].to_string(),
            None => text,
        }
    } else {
        text.split(':').next().unwrap_or_default().to_string()
    };
    Some(host.strip_suffix('.').unwrap_or(&host).to_string())
}

fn host_matches(patterns: &[String], host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    patterns.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        let pattern = pattern.strip_suffix('.').unwrap_or(&pattern);
        match pattern.strip_prefix('*') {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => host == pattern,
        }
    })
}

fn hosts_of(value: &Value) -> Option<Vec<String>> {
    value.get("hosts").map(|list| {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(String::from))
            .collect()
    })
}

/// What classification must answer: `hosts` honoured or not.
fn reference(config: &Value, request: &Request, use_hosts: bool, with_header: bool) -> Option<usize> {
    let host = reference_host(&request.authority);
    if use_hosts && !hosts_of(config).is_none_or(|top| host_matches(&top, host.as_deref())) {
        return None;
    }
    let ops = config["operations"].as_array()?;
    let serves = |op: &Value| !use_hosts || hosts_of(op).is_none_or(|own| host_matches(&own, host.as_deref()));
    let fits = |op: &Value| op["method"] == request.method.as_str() && serves(op);
    if with_header && config.get("operation_header").is_some() {
        if let Some(id) = request.header.as_deref().and_then(|h| std::str::from_utf8(h).ok()) {
            if let Some(index) = ops.iter().position(|op| op["id"] == id) {
                if fits(&ops[index]) {
                    return Some(index);
                }
            }
        }
    }
    let segments = request_segments(&request.path)?;
    // The most literal template wins: compare kinds position by position,
    // a literal before a parameter; ties go to the first operation.
    let mut best: Option<(Vec<bool>, usize)> = None;
    for (index, op) in ops.iter().enumerate() {
        let kinds = template(op["path"].as_str()?);
        let matches = kinds.len() == segments.len()
            && kinds.iter().zip(&segments).all(|(kind, seg)| kind.is_none_or(|lit| lit == *seg));
        if !matches || !fits(op) {
            continue;
        }
        let rank: Vec<bool> = kinds.iter().map(Option::is_none).collect();
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, index));
        }
    }
    best.map(|(_, index)| index)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { bytes: data };
    let config = configuration(&mut input);
    let Ok(plan) = Plan::parse(config.to_string().as_bytes()) else {
        return;
    };
    let ops = config["operations"].as_array().map_or(0, Vec::len);
    assert_eq!(plan.operations.len(), ops);
    for (index, op) in plan.operations.iter().enumerate() {
        assert_eq!(op.id, format!("op{index}"));
        // A literal-only template is matched by its own path, on a host
        // its operation serves (if there is one in the list).
        if op.path.contains('{') {
            continue;
        }
        for authority in AUTHORITIES {
            let host = reference_host(authority.as_bytes());
            let own = hosts_of(&config["operations"][index]);
            let top = hosts_of(&config);
            let serves = |list: Option<Vec<String>>| list.is_none_or(|l| host_matches(&l, host.as_deref()));
            if serves(own) && serves(top) {
                assert_eq!(
                    plan.classify_request(&op.method, &op.path, authority.as_bytes(), None),
                    Some(index),
                    "{} {} on {authority}",
                    op.method,
                    op.path
                );
            }
        }
    }
    let count = 1 + input.below(16);
    for _ in 0..count {
        let request = request(&mut input, ops);
        check(&plan, &config, &request);
    }
    // The rest of the input, raw, as a path and as an authority.
    let raw = String::from_utf8_lossy(input.bytes).into_owned();
    let request = Request {
        method: "GET".into(),
        path: raw.clone(),
        authority: input.bytes.to_vec(),
        header: Some(input.bytes.to_vec()),
    };
    check(&plan, &config, &request);
});

fn check(plan: &Plan, config: &Value, request: &Request) {
    let header = request.header.as_deref();
    let top = hosts_of(config);
    let host = reference_host(&request.authority);
    assert_eq!(
        plan.in_scope(&request.authority),
        top.is_none_or(|t| host_matches(&t, host.as_deref())),
        "in_scope({:?})",
        String::from_utf8_lossy(&request.authority)
    );
    assert_eq!(
        plan.classify_request(&request.method, &request.path, &request.authority, header),
        reference(config, request, true, true),
        "classify_request {} {:?} on {:?}, header {:?}",
        request.method,
        request.path,
        String::from_utf8_lossy(&request.authority),
        header.map(String::from_utf8_lossy)
    );
    assert_eq!(
        plan.classify(&request.method, &request.path, None),
        reference(config, request, false, false),
        "classify {} {:?}",
        request.method,
        request.path
    );
}
