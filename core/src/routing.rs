//! Whether Envoy sent a request where the filter chose.
//!
//! The filter only names the serving cluster in the route header; the route
//! must honour it (`cluster_header`, or header-matched routes in Istio). A
//! route that ignores it makes a cutover a silent no-op: legacy keeps
//! serving while `served_candidate` counts up, and in `cutover` legacy is
//! compared with itself. So the filter reads back the cluster Envoy routed
//! to and counts `routing_mismatch` when it is not the one chosen.

/// True when Envoy routed to another cluster than `chosen`. Nothing routed
/// (a local reply, no route) is not a mismatch: nothing served the request.
pub fn misrouted(chosen: &str, routed: Option<&[u8]>) -> bool {
    routed.is_some_and(|routed| !routed.is_empty() && routed != chosen.as_bytes())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn only_a_request_routed_elsewhere_is_misrouted() {
        assert!(!misrouted("candidate", Some(b"candidate")));
        assert!(misrouted("candidate", Some(b"legacy")));
        assert!(misrouted(
            "outbound|80||candidate.svc",
            Some(b"outbound|80||legacy.svc")
        ));
        assert!(
            !misrouted("candidate", None),
            "no route, no upstream: nothing was misrouted"
        );
        assert!(!misrouted("candidate", Some(b"")));
    }
}
