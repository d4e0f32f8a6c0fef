//! HTTP facts the filter relies on: messages as captured, framing headers,
//! method safety.

use crate::header_map::HeaderMap;

/// A response as captured from either backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The header map as the host handed it over, kept whole and read in
    /// place: names as Envoy gives them (lower-case), in arrival order,
    /// repeated headers repeated, pseudo-headers included ([`Response::fields`]
    /// leaves them out). Copied into a name and a value per header, as it
    /// was until session 28, it cost a shadowed request with the
    /// benchmark's five or six headers a side 7,000 instructions more
    /// (1.5%, bench/OPTIMISATIONS.md).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// A response from the header map the host hands over, `:status`
    /// parsed (0 when missing or not a number).
    pub fn from_headers(headers: HeaderMap, body: Vec<u8>) -> Response {
        Response {
            status: status(&headers),
            headers,
            body,
        }
    }

    /// The headers that are fields of the message: pseudo-headers left out.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers.iter().filter(|(name, _)| !name.starts_with(b":"))
    }

    /// The first value of the field `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// The `:status` of a response's header map; 0 when missing or not a number.
pub fn status(headers: &HeaderMap) -> u16 {
    headers
        .get(":status")
        .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok())
        .unwrap_or(0)
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
    fn from_headers_parses_the_status_and_drops_pseudo_headers() {
        let headers = HeaderMap::from_pairs([(":status", "201"), ("etag", "x")]);
        let response = Response::from_headers(headers, b"{}".to_vec());
        assert_eq!(response.status, 201);
        assert_eq!(response.fields().collect::<Vec<_>>(), [(&b"etag"[..], &b"x"[..])]);
        assert_eq!(response.header(":status"), None);
        assert_eq!(
            Response::from_headers(HeaderMap::from_pairs([(":status", "abc")]), Vec::new()).status,
            0
        );
    }

    #[test]
    fn header_lookup_ignores_case() {
        let response = Response {
            status: 200,
            headers: HeaderMap::from_pairs([("content-type", "application/json")]),
            body: Vec::new(),
        };
        assert_eq!(response.header("Content-Type"), Some(&b"application/json"[..]));
        assert_eq!(response.header("date"), None);
    }
}
