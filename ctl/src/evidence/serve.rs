//! `evidence serve`: the embedded OTLP/HTTP JSON logs receiver. `POST
//! /v1/logs` with `Content-Type: application/json`; each request's records
//! are parsed whole, then stored in one transaction (all or none).
//!
//! Answers: 200 `{}` (OTLP's empty ExportLogsServiceResponse); 400 with a
//! `google.rpc.Status`-shaped `{"code": 3, "message": ...}` naming what is
//! wrong and where; 413 past the body or record bound; 415 for protobuf or
//! a compressed body (the filter sends plain JSON); 404/405 elsewhere.
//!
//! One thread, one connection to the database: the filter batches records
//! per tick, so requests are few and small. Stops on SIGTERM or SIGINT
//! within [`POLL`], after the request in hand.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tiny_http::{Header, Method, Request, Response, Server};

use super::record::{parse_request, Limits, Refusal};
use super::store::Store;

/// How often the loop looks at the stop flag while no request comes.
const POLL: Duration = Duration::from_millis(200);

pub const LOGS_PATH: &str = "/v1/logs";

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub max_body_bytes: u64,
    pub limits: Limits,
    pub max_records: u64,
}

/// What one run of the receiver did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub stored: u64,
    pub refused: u64,
    pub pruned: u64,
}

/// Serves until SIGTERM or SIGINT.
pub fn serve_until_signal(db: &Path, settings: &Settings, ready: impl FnOnce(SocketAddr)) -> Result<Totals, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|err| format!("cannot handle signals: {err}"))?;
    }
    serve(db, settings, &stop, ready)
}

/// Serves until `stop` is set; `ready` is told the bound address (port 0
/// picks one).
pub fn serve(
    db: &Path,
    settings: &Settings,
    stop: &AtomicBool,
    ready: impl FnOnce(SocketAddr),
) -> Result<Totals, String> {
    let mut store = Store::open(db, settings.max_records)?;
    let server = Server::http(settings.listen).map_err(|err| format!("cannot listen on {}: {err}", settings.listen))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("cannot listen on {}: not an IP address", settings.listen))?;
    ready(bound);
    let mut totals = Totals::default();
    while !stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(POLL) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            // EINTR from the signal itself: the loop condition decides.
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("receiving: {err}")),
        };
        totals.requests += 1;
        let mut request = request;
        let (status, (code, message)) = answer(&mut request, &mut store, settings, &mut totals);
        let text = if status == 200 {
            "{}".to_string()
        } else {
            totals.refused += 1;
            eprintln!("evidence serve: refused a request ({status}): {message}");
            json!({"code": code, "message": message}).to_string()
        };
        respond(request, status, text);
    }
    Ok(totals)
}

/// Status, and for a refusal `(google.rpc.Code, message)`.
type Answer = (u16, (u8, String));

fn answer(request: &mut Request, store: &mut Store, settings: &Settings, totals: &mut Totals) -> Answer {
    let path = request.url().split('?').next().unwrap_or("");
    if path != LOGS_PATH {
        // NOT_FOUND
        return (
            404,
            (5, format!("{path}: not found (records are POSTed to {LOGS_PATH})")),
        );
    }
    if *request.method() != Method::Post {
        return (405, (12, format!("{LOGS_PATH}: only POST")));
    }
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_ascii_lowercase())
    };
    let media_type = header("Content-Type").unwrap_or_default();
    if media_type.split(';').next().map(str::trim) != Some("application/json") {
        // UNIMPLEMENTED: OTLP's protobuf encoding is not read here.
        return (
            415,
            (
                12,
                "Content-Type: only application/json (OTLP/HTTP JSON) is accepted".into(),
            ),
        );
    }
    if header("Content-Encoding").is_some_and(|e| e != "identity") {
        return (
            415,
            (12, "Content-Encoding: only an uncompressed body is accepted".into()),
        );
    }
    let max = settings.max_body_bytes;
    if request.body_length().is_some_and(|n| n as u64 > max) {
        return refusal(Refusal::TooLarge(format!("body: larger than {max} bytes")));
    }
    let mut body = Vec::new();
    if let Err(err) = request.as_reader().take(max + 1).read_to_end(&mut body) {
        return (400, (3, format!("body: cannot be read: {err}")));
    }
    if body.len() as u64 > max {
        return refusal(Refusal::TooLarge(format!("body: larger than {max} bytes")));
    }
    let records = match parse_request(&body, settings.limits) {
        Ok(records) => records,
        Err(refused) => return refusal(refused),
    };
    match store.insert(&records, now_ms()) {
        Ok(pruned) => {
            totals.stored += records.len() as u64;
            totals.pruned += pruned;
            (200, (0, String::new()))
        }
        // UNAVAILABLE: the sender may retry; nothing of this request was kept.
        Err(err) => (503, (14, format!("not stored: {err}"))),
    }
}

fn refusal(refusal: Refusal) -> Answer {
    match refusal {
        // INVALID_ARGUMENT
        Refusal::Malformed(message) => (400, (3, message)),
        // RESOURCE_EXHAUSTED
        Refusal::TooLarge(message) => (413, (8, message)),
    }
}

fn respond(request: Request, status: u16, text: String) {
    let mut response = Response::from_string(text).with_status_code(status);
    if let Ok(header) = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        response.add_header(header);
    }
    // A client gone before its answer is no concern of the receiver's.
    let _ = request.respond(response);
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::tests::{record_json, request_json, timestamp_field};
    use crate::evidence::store::Query;
    use crate::testutil::TempDir;
    use std::io::Write as _;
    use std::net::TcpStream;

    /// One raw HTTP/1.1 exchange: status and body.
    fn exchange(addr: SocketAddr, request: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    fn post(addr: SocketAddr, content_type: &str, body: &[u8]) -> (u16, String) {
        let head = format!(
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        exchange(addr, &head, body)
    }

    #[test]
    fn the_receiver_stores_whole_requests_and_refuses_bad_ones_with_the_reason() {
        let dir = TempDir::new("serve");
        let db = dir.path.join("e.db");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 4096,
            limits: Limits { records: 2 },
            max_records: 100,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (db, settings, stop) = (db.clone(), settings.clone(), stop.clone());
            std::thread::spawn(move || serve(&db, &settings, &stop, |addr| tx.send(addr).unwrap()))
        };
        let addr = rx.recv().unwrap();
        let good = request_json(vec![record_json("getReturn", "r1", "q1", vec![timestamp_field()])]).to_string();
        assert_eq!(post(addr, "application/json", good.as_bytes()), (200, "{}".into()));
        // One good record and one bad: nothing of the request is kept.
        let mut bad = record_json("getReturn", "r1", "q2", vec![]);
        bad["eventName"] = json!("other");
        let mixed = request_json(vec![record_json("getReturn", "r1", "q3", vec![]), bad]).to_string();
        let (status, body) = post(addr, "application/json", mixed.as_bytes());
        assert_eq!(status, 400);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], 3);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("resourceLogs[0].scopeLogs[0].logRecords[1].eventName: not a parallel-run record"),
            "{body}"
        );
        let three = request_json((0..3).map(|i| record_json("op", "r", &i.to_string(), vec![])).collect()).to_string();
        assert_eq!(post(addr, "application/json", three.as_bytes()).0, 413);
        assert_eq!(post(addr, "application/json", &vec![b' '; 5000]).0, 413);
        assert_eq!(post(addr, "application/x-protobuf", b"\x0a").0, 415);
        assert_eq!(
            exchange(
                addr,
                "GET /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b""
            )
            .0,
            405
        );
        assert_eq!(
            exchange(
                addr,
                "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                b""
            )
            .0,
            404
        );
        stop.store(true, Ordering::Relaxed);
        let totals = thread.join().unwrap().unwrap();
        assert_eq!(
            totals,
            Totals {
                requests: 7,
                stored: 1,
                refused: 6,
                pruned: 0
            }
        );
        let stored = Store::read(&db).unwrap().list(&Query::default()).unwrap();
        let ids: Vec<&str> = stored.iter().map(|s| s.record.request_id.as_str()).collect();
        assert_eq!(ids, ["q1"]);
    }
}
