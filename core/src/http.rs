//! HTTP facts the filter relies on: messages as captured, framing headers,
//! method safety.

/// A response as captured from either backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names lower-case, in arrival order; repeated headers stay repeated.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Marks a shadow copy, so the receiving service can recognise it.
pub const SHADOW_MARKER_HEADER: &str = "x-parallel-run-shadow";

/// RFC 9110 token characters, the alphabet of header names.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Methods whose shadow copy could change state on the receiving side: a
/// shadowed refund is a real refund.
pub fn is_unsafe_method(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Request headers that must not travel into a shadow copy: hop-by-hop and
/// framing headers (Envoy re-frames the copy), and pseudo-headers that the
/// callout sets itself.
pub fn is_hop_by_hop_or_framing(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "expect"
            | "host"
            | ":authority"
            | ":scheme"
            | ":protocol"
    )
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn unsafe_methods_are_the_state_changing_ones() {
        for method in ["POST", "PUT", "PATCH", "DELETE", "CONNECT"] {
            assert!(is_unsafe_method(method), "{method}");
        }
        for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(!is_unsafe_method(method), "{method}");
        }
    }

    #[test]
    fn header_lookup_ignores_case() {
        let response = Response {
            status: 200,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: Vec::new(),
        };
        assert_eq!(response.header("Content-Type"), Some(&b"application/json"[..]));
        assert_eq!(response.header("date"), None);
    }
}
