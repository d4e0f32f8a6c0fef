//! A plain-HTTP GET with timeouts and a size limit, on ureq: enough for
//! Envoy's admin endpoint and Prometheus' query API.

use std::time::Duration;

/// Connecting and the whole exchange: an admin endpoint on loopback or
/// behind a port-forward answers in milliseconds; a stuck one must not hang
/// a pipeline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Refuse answers above this: the filtered stats of thousands of operations
/// stay far below it (about 200 bytes per stat).
pub const MAX_BODY: u64 = 64 << 20;

/// What a GET returned: the status and the body (at most [`MAX_BODY`]).
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET url`. Errors say what failed, without the URL (the caller names the
/// endpoint).
pub fn get(url: &str, authority: &str, limit: u64) -> Result<Answer, String> {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("parallel-run-ctl/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent
        .get(url)
        .header("accept", "application/json")
        .call()
        .map_err(|err| describe(&err, authority))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|err| match err {
            ureq::Error::BodyExceedsLimit(_) => format!("answer larger than {limit} bytes"),
            other => format!("reading the answer: {other}"),
        })?;
    Ok(Answer { status, body })
}

fn describe(err: &ureq::Error, authority: &str) -> String {
    match err {
        ureq::Error::Io(io) => format!("cannot connect to {authority}: {io}"),
        ureq::Error::ConnectionFailed => format!("cannot connect to {authority}"),
        ureq::Error::HostNotFound => format!("cannot resolve {authority}"),
        ureq::Error::Timeout(what) => format!("no answer from {authority} in time ({what})"),
        other => format!("{authority}: {other}"),
    }
}
