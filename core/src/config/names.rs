//! The names a configuration is made of: ids, methods, header names, cluster
//! names, authorities, the revision. Each is checked for length before
//! anything quotes it back in an error.

use std::fmt::Display;

use super::ConfigError;
use crate::http::{is_token_byte, SHADOW_MARKER_HEADER};
use crate::limits::{
    MAX_AUTHORITY_BYTES, MAX_CLUSTER_NAME_BYTES, MAX_HEADER_NAME_BYTES, MAX_ID_BYTES, MAX_METHOD_BYTES,
    MAX_REVISION_BYTES,
};

/// `"<len> bytes, at most <max>"` when `value` is too long.
fn check_length(value: &str, max: usize, at: impl Display + Copy, what: &str) -> Result<(), ConfigError> {
    if value.len() > max {
        return Err(ConfigError::new(
            at,
            format!("{} bytes, {what} has at most {max}", value.len()),
        ));
    }
    Ok(())
}

/// The length of a name made like an id (a mask name), before it is quoted.
pub(super) fn check_id_length(value: &str, at: impl Display + Copy) -> Result<(), ConfigError> {
    check_length(value, MAX_ID_BYTES, at, "a name")
}

/// The length of a header name or pattern, before it is quoted.
pub(super) fn check_header_length(value: &str, at: impl Display + Copy) -> Result<(), ConfigError> {
    check_length(value, MAX_HEADER_NAME_BYTES, at, "a header name")
}

/// An operation id or a group: `[A-Za-z0-9_-]+`, because it becomes part
/// of stats names and labels.
pub(super) fn id(value: String, at: impl Display + Copy) -> Result<String, ConfigError> {
    check_length(&value, MAX_ID_BYTES, at, "an id")?;
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::new(
            at,
            format!("\"{value}\" must match [A-Za-z0-9_-]+ (it becomes part of a stats name)"),
        ));
    }
    Ok(value)
}

pub(super) fn method(value: String, at: impl Display + Copy) -> Result<String, ConfigError> {
    check_length(&value, MAX_METHOD_BYTES, at, "a method")?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ConfigError::new(
            at,
            format!("\"{value}\" is not an upper-case HTTP method such as GET or POST"),
        ));
    }
    Ok(value)
}

pub(super) fn revision(value: &str) -> Result<String, ConfigError> {
    check_length(value, MAX_REVISION_BYTES, "revision", "a revision")?;
    if value.chars().any(char::is_control) {
        // It is logged as it is: no line breaks or escapes in a log line.
        return Err(ConfigError::new("revision", "control characters are not allowed"));
    }
    Ok(value.to_string())
}

/// A header name, lower-cased.
pub(super) fn header_name(name: &str, at: impl Display + Copy) -> Result<String, ConfigError> {
    check_header_length(name, at)?;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(ConfigError::new(at, format!("\"{name}\" is not a valid header name")));
    }
    Ok(name.to_ascii_lowercase())
}

/// A header the filter writes (`route_header`) or reads and has stripped
/// from clients (`operation_header`): never one that Envoy, the backends or
/// the client already give a meaning, because writing it would break or
/// redirect the request, and stripping it would lose what the client sent.
pub(super) fn routing_header(name: &str, at: impl Display + Copy) -> Result<String, ConfigError> {
    if name.starts_with(':') && name.len() <= MAX_HEADER_NAME_BYTES {
        return Err(ConfigError::new(
            at,
            format!("\"{name}\" is a pseudo-header: Envoy sets it from the request line, it cannot carry this"),
        ));
    }
    let lower = header_name(name, at)?;
    if let Some(why) = reserved(&lower) {
        return Err(ConfigError::new(at, format!("\"{lower}\" cannot be used: {why}")));
    }
    Ok(lower)
}

/// Why a lower-case header name is not the filter's to write or strip.
fn reserved(name: &str) -> Option<&'static str> {
    const PREFIXES: &[(&str, &str)] = &[
        (
            "content-",
            "the content-* headers describe the body; another value misreads it",
        ),
        (
            "x-forwarded-",
            "it tells backends who the client is and how it connected",
        ),
        (
            "x-envoy-",
            "Envoy's router acts on x-envoy-* headers (timeouts, retries, internal marking)",
        ),
        ("grpc-", "gRPC acts on grpc-* headers (grpc-timeout sets the deadline)"),
        ("x-b3-", "a tracing header: Envoy's tracers read and write it"),
    ];
    let exact = match name {
        "transfer-encoding" | "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "upgrade"
        | "expect" => {
            Some("a framing or hop-by-hop header: Envoy acts on it and strips it, a value there breaks the request")
        }
        "host" => Some("HTTP/1's :authority, which chooses the virtual host and names the backend's host"),
        "authorization" | "proxy-authorization" | "cookie" | "x-api-key" => {
            Some("it carries the client's credentials: writing it would replace them, stripping it would drop them")
        }
        "x-request-id" => Some("Envoy's request id: shadow sampling hashes it, and traces and logs follow it"),
        "forwarded" | "via" | "x-real-ip" => Some("it tells backends who the client is and how it connected"),
        "traceparent" | "tracestate" | "b3" => Some("a tracing header: Envoy's tracers read and write it"),
        _ if name == SHADOW_MARKER_HEADER => Some("the filter marks shadow copies with it"),
        _ => None,
    };
    exact.or_else(|| {
        PREFIXES
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map(|(_, why)| *why)
    })
}

pub(super) fn cluster_name(name: &str, at: impl Display + Copy) -> Result<String, ConfigError> {
    check_length(name, MAX_CLUSTER_NAME_BYTES, at, "a cluster name")?;
    // Envoy cluster names are free-form, but this value travels in a request
    // header: refuse what a header value cannot carry.
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ConfigError::new(at, format!("\"{name}\" is not a valid cluster name")));
    }
    Ok(name.to_string())
}

pub(super) fn authority(value: &str, at: impl Display + Copy) -> Result<String, ConfigError> {
    check_length(value, MAX_AUTHORITY_BYTES, at, "an authority")?;
    if value.is_empty() || value.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'/') {
        return Err(ConfigError::new(at, format!("\"{value}\" is not a host[:port]")));
    }
    Ok(value.to_string())
}
