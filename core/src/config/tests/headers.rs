//! `route_header` and `operation_header`: never a header that Envoy, the
//! backends or the client already give a meaning.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{config, parse_err, parse_ok};

/// Each with a word of the reason it must give.
const REFUSED: &[(&str, &str)] = &[
    ("content-length", "body"),
    ("Content-Type", "body"),
    ("content-encoding", "body"),
    ("transfer-encoding", "framing"),
    ("connection", "hop-by-hop"),
    ("keep-alive", "hop-by-hop"),
    ("proxy-connection", "hop-by-hop"),
    ("te", "hop-by-hop"),
    ("trailer", "hop-by-hop"),
    ("upgrade", "hop-by-hop"),
    ("expect", "hop-by-hop"),
    ("host", "virtual host"),
    ("Authorization", "credentials"),
    ("proxy-authorization", "credentials"),
    ("cookie", "credentials"),
    ("x-api-key", "credentials"),
    ("x-request-id", "sampling"),
    ("x-forwarded-for", "who the client is"),
    ("x-forwarded-proto", "who the client is"),
    ("forwarded", "who the client is"),
    ("via", "who the client is"),
    ("x-real-ip", "who the client is"),
    ("x-envoy-upstream-rq-timeout-ms", "router"),
    ("x-envoy-original-path", "router"),
    ("grpc-timeout", "deadline"),
    ("traceparent", "tracing"),
    ("x-b3-traceid", "tracing"),
    ("x-parallel-run-shadow", "shadow copies"),
];

#[test]
fn headers_with_a_meaning_of_their_own_are_refused() {
    for field in ["route_header", "operation_header"] {
        for (name, why) in REFUSED {
            let err = parse_err(&config(&format!(r#""{field}":"{name}""#)));
            assert_eq!(err.path, field, "{name}: {err}");
            assert!(err.message.contains("cannot be used"), "{name}: {err}");
            assert!(err.message.contains(why), "{name}: {err}");
        }
    }
}

#[test]
fn pseudo_headers_are_refused_as_such() {
    for name in [":authority", ":path", ":method", ":scheme", ":status"] {
        for field in ["route_header", "operation_header"] {
            let err = parse_err(&config(&format!(r#""{field}":"{name}""#)));
            assert_eq!(err.path, field);
            assert!(err.message.contains("pseudo-header"), "{name}: {err}");
        }
    }
}

#[test]
fn ordinary_names_are_accepted() {
    for (route, operation) in [
        ("x-parallel-run-cluster", "x-operation-id"),
        ("x-route", "x-op"),
        ("x-gateway-backend", "x-api-operation"),
        // Looks like a reserved one, is not.
        ("x-contents", "x-hosted-by"),
    ] {
        let plan = parse_ok(&config(&format!(
            r#""route_header":"{route}","operation_header":"{operation}""#
        )));
        assert_eq!(plan.route_header, route);
        assert_eq!(plan.operation_header.as_deref(), Some(operation));
    }
}
