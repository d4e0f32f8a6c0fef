//! What a callout's reply means: the shadow backend's answer, a timeout, or
//! an error, from what the host hands the root context.

use std::time::{Duration, SystemTime};

use crate::exchange::CallReply;
use crate::header_map::HeaderMap;
use crate::http::Response;

/// Envoy's clock as the VM reads it lags its timers by a few milliseconds
/// (measured: a reset from the timeout arrived 2 ms "before" the deadline).
const DEADLINE_SLACK: Duration = Duration::from_millis(20);

/// When a call dispatched at `now` with `timeout` counts as timed out.
/// Past the response headers Envoy cannot send its own 504 and resets the
/// call instead, so a reply without headers at this point is a timeout,
/// not a connection failure. The slack is at most a tenth of the timeout.
pub fn deadline(now: SystemTime, timeout: Duration) -> Option<SystemTime> {
    now.checked_add(timeout.saturating_sub(DEADLINE_SLACK.min(timeout / 10)))
}

/// A reply that arrived without headers: a connection failure or reset, or
/// a timeout when it came at or after the deadline.
pub fn without_headers(now: Option<SystemTime>, deadline: Option<SystemTime>) -> CallReply {
    match (now, deadline) {
        (Some(now), Some(deadline)) if now >= deadline => CallReply::Timeout,
        _ => CallReply::Error,
    }
}

/// Envoy's router adds this to every response a backend sent, and never to
/// a reply it makes up itself (no healthy upstream, connection failure,
/// reset, protocol error, overflow, timeout).
const UPSTREAM_HEADER: &str = "x-envoy-upstream-service-time";

/// What a 5xx that no backend sent means: Envoy got no answer from the
/// backend, and made this one up, on the shadow call or on the serving
/// side alike. `None` for any other response.
pub fn envoys_own(response: &Response) -> Option<CallReply> {
    if response.status < 500 || response.header(UPSTREAM_HEADER).is_some() {
        return None;
    }
    Some(if response.status == 504 {
        CallReply::Timeout
    } else {
        CallReply::Error
    })
}

/// A reply with headers and its body (`None`: larger than the limit, not
/// read). A 5xx that no backend sent is Envoy's own: it says nothing about
/// the backend's behaviour, only that Envoy got no answer from it, so it is
/// a timeout (504) or an error, never `failed_5xx`. That is decided from
/// the router's own header, not from the reply's text, which Envoy may
/// word differently in any release.
pub fn classify(headers: HeaderMap, body: Option<Vec<u8>>) -> CallReply {
    let response = Response::from_headers(headers, Vec::new());
    if let Some(failure) = envoys_own(&response) {
        return failure;
    }
    let Some(body) = body else {
        return CallReply::TooLarge;
    };
    CallReply::Complete(Response { body, ..response })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn headers(status: &str) -> HeaderMap {
        HeaderMap::from_pairs([(":status", status), ("content-type", "text/plain")])
    }

    #[test]
    fn a_headerless_reply_is_a_timeout_only_from_the_deadline_on() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let deadline = deadline(start, Duration::from_millis(500));
        assert_eq!(deadline, Some(start + Duration::from_millis(480)));
        assert_eq!(
            without_headers(Some(start + Duration::from_millis(479)), deadline),
            CallReply::Error
        );
        assert_eq!(
            without_headers(Some(start + Duration::from_millis(480)), deadline),
            CallReply::Timeout
        );
        assert_eq!(without_headers(None, deadline), CallReply::Error);
        // A short timeout keeps 90% of itself.
        assert_eq!(
            super::deadline(start, Duration::from_millis(50)),
            Some(start + Duration::from_millis(45))
        );
    }

    #[test]
    fn envoys_own_replies_are_not_the_backends() {
        // Envoy's local replies carry no upstream header, whatever their text.
        assert_eq!(
            classify(headers("504"), Some(b"upstream request timeout".to_vec())),
            CallReply::Timeout
        );
        for text in [
            &b"upstream connect error or disconnect/reset"[..],
            b"no healthy upstream",
            b"protocol error",
            b"",
        ] {
            assert_eq!(classify(headers("503"), Some(text.to_vec())), CallReply::Error);
            assert_eq!(classify(headers("502"), Some(text.to_vec())), CallReply::Error);
        }
        assert_eq!(classify(headers("200"), None), CallReply::TooLarge);
        // A backend's own 5xx (the router's header is there) is its answer.
        let backend = HeaderMap::from_pairs([(":status", "503"), ("x-envoy-upstream-service-time", "3")]);
        let CallReply::Complete(response) = classify(backend, Some(b"down for maintenance".to_vec())) else {
            panic!("a backend's own 503 is its answer");
        };
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"down for maintenance");
        // A 200 never needs the header.
        assert!(matches!(
            classify(headers("200"), Some(b"{}".to_vec())),
            CallReply::Complete(_)
        ));
    }
}
