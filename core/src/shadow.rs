//! Whether a request gets a shadow copy (and a noise repeat), and what the
//! copies carry.

use crate::breaker::Breaker;
use crate::counters::Counter;
use crate::exchange::{CallSpec, Outgoing};
use crate::header_map::HeaderMap;
use crate::http::{is_hop_by_hop_or_framing, is_unsafe_method, SHADOW_MARKER_HEADER};
use crate::plan::{Backend, Operation};
use crate::sampling::sampled;

/// What the filter knows about a request when its headers arrive.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// What sampling hashes: the request id, so that every replica and every
    /// rerun picks the same requests.
    pub sample_key: &'a [u8],
    /// From `content-length`, when the client sent one.
    pub content_length: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Shadow to the operation's shadow backend; with `repeat`, also send
    /// the request again to the serving backend, for noise learning.
    Shadow { repeat: bool },
    /// Not shadowed; the counter says why.
    Skip(Counter),
    /// The operation's mode shadows nothing.
    Off,
}

/// What the worker (its VM) may still spend on shadows when a request
/// arrives: its open exchanges against the plan's `max_inflight_shadows`
/// (memory), and the exchanges it opened in the current second against
/// `max_shadows_per_second` (CPU: a worker at 2,000 shadowed requests a
/// second was 92% busy on the benchmark machine, README "Sizing the
/// proxy's CPU").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub open: usize,
    pub max_open: usize,
    pub opened_this_second: u32,
    /// `None`: no bound.
    pub per_second: Option<u32>,
}

impl Budget {
    /// Whether one more shadow would go over either bound.
    pub fn spent(&self) -> bool {
        self.open >= self.max_open || self.per_second.is_some_and(|limit| self.opened_this_second >= limit)
    }
}

/// Decides in order of cost to the operator's trust: an unsafe method is
/// never shadowed by accident, then sampling, then the body limit, then the
/// worker's shadow budget, and last the operation's circuit breaker, which
/// lets a probe through only for a request that would be shadowed.
pub fn decide(
    operation: &Operation,
    request: RequestFacts<'_>,
    budget: Budget,
    breaker: Option<&mut Breaker>,
) -> Decision {
    if operation.shadow().is_none() {
        return Decision::Off;
    }
    if is_unsafe_method(request.method) && !operation.settings.shadow_unsafe {
        return Decision::Skip(Counter::SkippedUnsafeMethod);
    }
    if !sampled(request.sample_key, operation.settings.sample_per_million) {
        return Decision::Skip(Counter::SkippedSampledOut);
    }
    if request
        .content_length
        .is_some_and(|length| length > operation.settings.max_body_bytes as u64)
    {
        return Decision::Skip(Counter::SkippedBodyTooLarge);
    }
    if budget.spent() {
        return Decision::Skip(Counter::SkippedOverload);
    }
    if breaker.is_some_and(|breaker| !breaker.allow()) {
        return Decision::Skip(Counter::SkippedCircuitOpen);
    }
    // Asking the serving backend twice is only harmless for safe methods.
    // A sample of its own, salted, so it is not the same slice of traffic
    // as the shadow sample.
    let repeat = operation.settings.noise_per_million > 0
        && !is_unsafe_method(request.method)
        && sampled(
            &[request.sample_key, b"#noise"].concat(),
            operation.settings.noise_per_million,
        );
    Decision::Shadow { repeat }
}

/// How the copies of a request (the shadow call and the noise repeat)
/// differ from it: headers removed, and headers set (replacing the
/// client's). By default a copy carries the client's headers as they are,
/// credentials included: a candidate that serves the same users must
/// authorize the same requests, or every comparison differs. A candidate in
/// another trust zone, or one that must use a test credential, says so here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Lower-case names.
    pub remove: Vec<String>,
    /// Lower-case names and their values.
    pub set: Vec<(String, String)>,
}

impl HeaderRules {
    fn drops(&self, name: &str) -> bool {
        self.remove.iter().any(|n| n == name) || self.set.iter().any(|(n, _)| n == name)
    }
}

/// The calls of a shadowed request, with an empty body to fill as the
/// request streams; `None` when the operation shadows nothing, and
/// `Some(Err(counter))` when the request cannot be copied faithfully
/// ([`NotText`]), to be counted instead of shadowed.
pub fn outgoing(
    operation: &Operation,
    request: &HeaderMap,
    route_header: &str,
    repeat: bool,
) -> Option<Result<Outgoing, Counter>> {
    let shadow = operation.shadow()?;
    let call = |backend: &Backend| -> Result<CallSpec, NotText> {
        Ok(CallSpec {
            cluster: std::sync::Arc::clone(&backend.cluster),
            headers: copy_headers(
                request,
                route_header,
                backend,
                &operation.id,
                &operation.settings.shadow_headers,
            )?,
            timeout_ms: operation.settings.shadow_timeout_ms,
        })
    };
    let copy = || -> Result<Outgoing, NotText> {
        Ok(Outgoing {
            shadow: call(shadow)?,
            repeat: if repeat {
                Some(call(operation.serving().0)?)
            } else {
                None
            },
            body: Vec::new(),
        })
    };
    Some(copy().map_err(|NotText| Counter::SkippedHeaderBytes))
}

/// A header value the copy would carry is not UTF-8. Envoy takes such bytes
/// from a client (HTTP/1.1 allows obs-text), but the SDK's
/// `dispatch_http_call` carries header values as `&str` and registers the
/// callout only through itself, so those bytes cannot reach the candidate
/// unchanged; a lossy copy (U+FFFD) would make it answer another request.
/// Such a request is not shadowed, and `skipped_header_bytes` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotText;

/// The headers of the shadow copy: the client's request minus hop-by-hop
/// and framing headers (Envoy re-frames the copy) and minus the route header
/// (routing is the filter's business, not the shadow backend's), with
/// `:authority` set for the shadow backend and the shadow marker added.
pub fn shadow_headers(
    request: &HeaderMap,
    route_header: &str,
    shadow: &Backend,
    operation_id: &str,
) -> Result<Vec<(String, String)>, NotText> {
    copy_headers(request, route_header, shadow, operation_id, &HeaderRules::default())
}

/// [`shadow_headers`] with the operation's header rules applied.
pub fn copy_headers(
    request: &HeaderMap,
    route_header: &str,
    shadow: &Backend,
    operation_id: &str,
    rules: &HeaderRules,
) -> Result<Vec<(String, String)>, NotText> {
    let mut headers = Vec::with_capacity(request.len() + rules.set.len() + 2);
    let mut authority = shadow.authority.as_deref().map(str::to_string);
    for (name, value) in request.iter() {
        let name = std::str::from_utf8(name).map_err(|_| NotText)?.to_ascii_lowercase();
        if name == ":authority" || name == "host" {
            authority.get_or_insert_with(|| String::from_utf8_lossy(value).into_owned());
            continue;
        }
        if is_hop_by_hop_or_framing(&name) || name == route_header || name == SHADOW_MARKER_HEADER || rules.drops(&name)
        {
            continue;
        }
        let value = std::str::from_utf8(value).map_err(|_| NotText)?;
        headers.push((name, value.to_string()));
    }
    headers.extend(rules.set.iter().cloned());
    // dispatch_http_call refuses a request without :authority.
    headers.push((
        ":authority".to_string(),
        authority.unwrap_or_else(|| shadow.cluster.to_string()),
    ));
    headers.push((SHADOW_MARKER_HEADER.to_string(), operation_id.to_string()));
    Ok(headers)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::Plan;

    fn plan(extra: &str) -> Plan {
        let json = format!(
            r#"{{"legacy":{{"cluster":"legacy"}},"candidate":{{"cluster":"candidate","authority":"returns.internal"}},
               "operations":[{{"id":"op","method":"GET","path":"/r/{{id}}","mode":"shadow"{extra}}}]}}"#
        );
        match Plan::parse(json.as_bytes()) {
            Ok(plan) => plan,
            Err(err) => panic!("{err}"),
        }
    }

    fn facts<'a>(method: &'a str, key: &'a [u8], content_length: Option<u64>) -> RequestFacts<'a> {
        RequestFacts {
            method,
            sample_key: key,
            content_length,
        }
    }

    /// A budget of 8 open exchanges and no bound per second, `open` of them open.
    fn room(open: usize) -> Budget {
        Budget {
            open,
            max_open: 8,
            opened_this_second: 0,
            per_second: None,
        }
    }

    #[test]
    fn safe_request_in_shadow_mode_is_shadowed() {
        let plan = plan("");
        assert_eq!(
            decide(&plan.operations[0], facts("GET", b"id", None), room(0), None),
            Decision::Shadow { repeat: false }
        );
    }

    #[test]
    fn modes_without_a_shadow_are_off() {
        let json = br#"{"legacy":{"cluster":"l"},"candidate":{"cluster":"c"},
            "operations":[{"id":"a","method":"GET","path":"/a","mode":"legacy"},
                          {"id":"b","method":"GET","path":"/b","mode":"candidate"},
                          {"id":"c","method":"GET","path":"/c","mode":"cutover"}]}"#;
        let plan = Plan::parse(json).unwrap();
        let get = facts("GET", b"id", None);
        assert_eq!(decide(&plan.operations[0], get, room(0), None), Decision::Off);
        assert_eq!(decide(&plan.operations[1], get, room(0), None), Decision::Off);
        assert_eq!(
            decide(&plan.operations[2], get, room(0), None),
            Decision::Shadow { repeat: false }
        );
    }

    #[test]
    fn unsafe_methods_need_the_opt_in() {
        let plan_default = plan("");
        let plan_opt_in = plan(r#","shadow_unsafe":true"#);
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(
                decide(&plan_default.operations[0], facts(method, b"id", None), room(0), None),
                Decision::Skip(Counter::SkippedUnsafeMethod),
                "{method}"
            );
            assert_eq!(
                decide(&plan_opt_in.operations[0], facts(method, b"id", None), room(0), None),
                Decision::Shadow { repeat: false }
            );
        }
    }

    #[test]
    fn sampling_body_limit_and_overload_are_counted_apart() {
        let none = plan(r#","shadow_percent":0"#);
        assert_eq!(
            decide(&none.operations[0], facts("GET", b"id", None), room(0), None),
            Decision::Skip(Counter::SkippedSampledOut)
        );
        let small = plan(r#","max_body_bytes":10"#);
        assert_eq!(
            decide(&small.operations[0], facts("GET", b"id", Some(11)), room(0), None),
            Decision::Skip(Counter::SkippedBodyTooLarge)
        );
        assert_eq!(
            decide(&small.operations[0], facts("GET", b"id", Some(10)), room(0), None),
            Decision::Shadow { repeat: false }
        );
        assert_eq!(
            decide(&small.operations[0], facts("GET", b"id", None), room(8), None),
            Decision::Skip(Counter::SkippedOverload)
        );
    }

    #[test]
    fn the_budget_per_second_skips_as_overload_once_spent() {
        let plan = plan("");
        let get = facts("GET", b"id", None);
        let per_second = |opened| Budget {
            opened_this_second: opened,
            per_second: Some(3),
            ..room(0)
        };
        assert_eq!(
            decide(&plan.operations[0], get, per_second(2), None),
            Decision::Shadow { repeat: false }
        );
        assert_eq!(
            decide(&plan.operations[0], get, per_second(3), None),
            Decision::Skip(Counter::SkippedOverload)
        );
        // Without a bound per second, only the open exchanges count.
        let unbounded = Budget {
            opened_this_second: u32::MAX,
            ..room(7)
        };
        assert_eq!(
            decide(&plan.operations[0], get, unbounded, None),
            Decision::Shadow { repeat: false }
        );
        // Sampled-out requests never reach the budget: they do not spend it.
        let none = self::plan(r#","shadow_percent":0"#);
        assert_eq!(
            decide(&none.operations[0], get, per_second(3), None),
            Decision::Skip(Counter::SkippedSampledOut)
        );
    }

    #[test]
    fn an_open_circuit_skips_only_requests_that_would_be_shadowed() {
        use crate::breaker::Settings;
        let plan = plan("");
        let mut breaker = Breaker::new(Settings::default());
        breaker.tick(0);
        for _ in 0..20 {
            breaker.record(true);
        }
        breaker.tick(10);
        let get = facts("GET", b"id", None);
        assert_eq!(
            decide(&plan.operations[0], get, room(0), Some(&mut breaker)),
            Decision::Skip(Counter::SkippedCircuitOpen)
        );
        // Overload is decided first: it does not touch the breaker.
        assert_eq!(
            decide(&plan.operations[0], get, room(8), Some(&mut breaker)),
            Decision::Skip(Counter::SkippedOverload)
        );
        assert_eq!(
            decide(
                &plan.operations[0],
                get,
                room(0),
                Some(&mut Breaker::new(Settings::default()))
            ),
            Decision::Shadow { repeat: false }
        );
    }

    #[test]
    fn the_noise_repeat_is_a_sample_of_safe_shadowed_requests() {
        let learning = plan(r#","noise_percent":30"#);
        let operation = &learning.operations[0];
        let repeats = (0..2_000)
            .filter(|i| {
                let key = format!("req-{i}");
                decide(operation, facts("GET", key.as_bytes(), None), room(0), None)
                    == Decision::Shadow { repeat: true }
            })
            .count();
        // 30% of 2,000 = 600; the binomial sd is ~20.
        assert!((480..=720).contains(&repeats), "{repeats}");
        // Never for an unsafe method, even when it is shadowed.
        let unsafe_too = plan(r#","noise_percent":100,"shadow_unsafe":true"#);
        assert_eq!(
            decide(&unsafe_too.operations[0], facts("POST", b"id", None), room(0), None),
            Decision::Shadow { repeat: false }
        );
        let all = plan(r#","noise_percent":100"#);
        assert_eq!(
            decide(&all.operations[0], facts("GET", b"id", None), room(0), None),
            Decision::Shadow { repeat: true }
        );
    }

    #[test]
    fn the_repeat_goes_to_the_serving_backend_with_the_same_request() {
        let plan = plan("");
        let request = HeaderMap::from_pairs([(":path", "/r/1")]);
        let outgoing = outgoing(&plan.operations[0], &request, "x-route", true)
            .unwrap()
            .unwrap();
        assert_eq!(&*outgoing.shadow.cluster, "candidate");
        let repeat = outgoing.repeat.unwrap();
        assert_eq!(&*repeat.cluster, "legacy");
        assert_eq!(repeat.timeout_ms, outgoing.shadow.timeout_ms);
        assert!(repeat.headers.contains(&(":path".to_string(), "/r/1".to_string())));
        assert!(outgoing.body.is_empty());
    }

    #[test]
    fn shadow_copy_drops_framing_and_routing_and_is_marked() {
        let plan = plan("");
        let request = HeaderMap::from_pairs([
            (":method", "GET"),
            (":path", "/r/1?x=1"),
            (":authority", "api.example"),
            ("Content-Length", "0"),
            ("transfer-encoding", "chunked"),
            ("connection", "keep-alive"),
            ("x-parallel-run-cluster", "legacy"),
            ("x-parallel-run-shadow", "spoofed"),
            ("x-request-id", "abc"),
            ("accept", "a"),
            ("accept", "b"),
        ]);
        let candidate = plan.operations[0].shadow().unwrap();
        let headers = shadow_headers(&request, "x-parallel-run-cluster", candidate, "op").unwrap();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (":method", "GET"),
                (":path", "/r/1?x=1"),
                ("x-request-id", "abc"),
                ("accept", "a"),
                ("accept", "b"),
                (":authority", "returns.internal"),
                ("x-parallel-run-shadow", "op"),
            ]
        );
    }

    #[test]
    fn header_rules_remove_and_set_on_the_copy_only() {
        let rules = plan(r#","shadow_headers":{"remove":["Cookie"],"set":{"authorization":"Bearer test-credential"}}"#);
        let operation = &rules.operations[0];
        let request = HeaderMap::from_pairs([
            (":path", "/r/1"),
            ("authorization", "Bearer real-user"),
            ("cookie", "session=abc"),
            ("accept", "a"),
        ]);
        let outgoing = outgoing(operation, &request, "x-route", true).unwrap().unwrap();
        for call in [&outgoing.shadow, outgoing.repeat.as_ref().unwrap()] {
            let get = |name: &str| {
                call.headers
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                get("authorization"),
                ["Bearer test-credential"],
                "set replaces the client's"
            );
            assert!(get("cookie").is_empty(), "removed");
            assert_eq!(get("accept"), ["a"], "the rest as it is");
        }
        // Without rules, credentials travel as they came.
        let plain = plan("");
        let headers = &outgoing_of(&plain, &request).shadow.headers;
        assert!(headers.contains(&("authorization".to_string(), "Bearer real-user".to_string())));
        assert!(headers.contains(&("cookie".to_string(), "session=abc".to_string())));
    }

    fn outgoing_of(plan: &Plan, request: &HeaderMap) -> Outgoing {
        outgoing(&plan.operations[0], request, "x-route", false)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn shadow_copy_keeps_the_request_authority_by_default() {
        let backend = Backend {
            cluster: "candidate".into(),
            authority: None,
        };
        let request = HeaderMap::from_pairs([(":authority", "api.example")]);
        let headers = shadow_headers(&request, "x-route", &backend, "op").unwrap();
        assert!(headers.contains(&(":authority".to_string(), "api.example".to_string())));
    }

    #[test]
    fn header_bytes_that_are_not_utf8_make_the_request_uncopyable() {
        let plan = plan("");
        let operation = &plan.operations[0];
        let latin1 = HeaderMap::from_pairs([(":path", &b"/r/1"[..]), ("x-name", b"caf\xe9")]);
        assert_eq!(
            outgoing(operation, &latin1, "x-route", false),
            Some(Err(Counter::SkippedHeaderBytes)),
            "a lossy copy would send the candidate another request"
        );
        // Nor a name: the SDK's decoding would have panicked the VM on one.
        let name = HeaderMap::from_pairs([(&b"x-caf\xe9"[..], "a")]);
        assert_eq!(
            outgoing(operation, &name, "x-route", false),
            Some(Err(Counter::SkippedHeaderBytes))
        );
        // UTF-8 beyond ASCII travels byte for byte.
        let utf8 = HeaderMap::from_pairs([("x-name", "café")]);
        let copy = outgoing_of(&plan, &utf8);
        assert!(copy
            .shadow
            .headers
            .contains(&("x-name".to_string(), "café".to_string())));
        // A header the copy leaves out cannot spoil it.
        let routed = HeaderMap::from_pairs([("x-route", &b"\xff"[..]), ("accept", b"a")]);
        assert!(matches!(outgoing(operation, &routed, "x-route", false), Some(Ok(_))));
    }
}
