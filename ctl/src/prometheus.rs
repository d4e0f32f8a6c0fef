//! Prometheus' HTTP query API (`GET /api/v1/query`): where it is, an
//! instant query, and its JSON answer read as a vector of samples. Every
//! failure (no answer, an HTTP error, `"status": "error"`, an answer that
//! is not a vector) is an error that names the query.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admin::Admin;
use crate::http;

/// Answers above this are refused: a vector of one sample per operation
/// (or per operation and side) of a few thousand operations is far below
/// it (about 150 bytes per sample).
const MAX_ANSWER: u64 = 16 << 20;

/// A Prometheus server: `http://host:port[/prefix]` (the prefix for one
/// behind a path, e.g. `--web.route-prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prometheus {
    /// `http://host:port[/prefix]`, no trailing slash.
    base: String,
}

/// One sample of an instant vector: its labels (without `__name__`) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    /// NaN and infinities as Prometheus wrote them (`"NaN"`, `"+Inf"`).
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

impl Prometheus {
    pub fn parse(url: &str) -> Result<Prometheus, String> {
        if let Some((scheme, _)) = url.split_once("://") {
            if scheme != "http" {
                return Err(format!(
                    "--prometheus {url}: only http:// is supported, not {scheme}:// (use a port-forward or a local proxy)"
                ));
            }
        }
        // The same address syntax as the admin endpoint's.
        let endpoint = Admin::parse(url).map_err(|_| format!("--prometheus {url}: expected http://HOST:PORT"))?;
        Ok(Prometheus { base: endpoint.url() })
    }

    pub fn url(&self) -> String {
        self.base.clone()
    }

    /// An instant query evaluated at `at` (Unix seconds). The queries of
    /// one reading share their `at`, so they all see the same scrapes:
    /// evaluated "now" each, a scrape landing between two of them made
    /// one answer show a new revision and the next one the old modes.
    pub fn query(&self, expr: &str, at: f64) -> Result<Vec<Sample>, String> {
        let url = format!("{}/api/v1/query?query={}&time={at:.3}", self.base, encode(expr));
        let failed = |what: String| format!("Prometheus at {}: query `{expr}`: {what}", self.base);
        let answer = http::get(&url, &self.base, MAX_ANSWER).map_err(failed)?;
        parse_vector(answer.status, &answer.body).map_err(failed)
    }
}

/// Percent-encodes a query string value (every byte but the unreserved ones).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The samples of a query API answer. Prometheus answers errors with a
/// JSON body too (400 bad_data, 422 execution, 503 unavailable), so the
/// body is read first and the HTTP status only when it is not JSON.
pub fn parse_vector(status: u16, body: &[u8]) -> Result<Vec<Sample>, String> {
    let document: Value = match serde_json::from_slice(body) {
        Ok(document) => document,
        Err(err) if status == 200 => return Err(format!("the answer is not JSON: {err}")),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let first: String = text.lines().next().unwrap_or("").trim().chars().take(200).collect();
            return Err(format!("HTTP {status} {first}"));
        }
    };
    match document.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let kind = document.get("errorType").and_then(Value::as_str).unwrap_or("error");
            let message = document.get("error").and_then(Value::as_str).unwrap_or("(no message)");
            return Err(format!("Prometheus refused it (HTTP {status}, {kind}): {message}"));
        }
        _ => return Err(format!("HTTP {status}: not a query API answer (no \"status\")")),
    }
    let data = document.get("data").ok_or("no \"data\" in the answer")?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {}
        other => return Err(format!("expected a vector, got {}", other.unwrap_or("nothing"))),
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or("no \"result\" array in the answer")?;
    result
        .iter()
        .enumerate()
        .map(|(i, item)| sample(item).map_err(|err| format!("result[{i}]: {err}")))
        .collect()
}

fn sample(item: &Value) -> Result<Sample, String> {
    let metric = item
        .get("metric")
        .and_then(Value::as_object)
        .ok_or("no \"metric\" object")?;
    let mut labels = BTreeMap::new();
    for (name, value) in metric {
        let value = value
            .as_str()
            .ok_or_else(|| format!("label {name:?} is not a string"))?;
        if name != "__name__" {
            labels.insert(name.clone(), value.to_string());
        }
    }
    let text = item
        .get("value")
        .and_then(Value::as_array)
        .and_then(|pair| pair.get(1))
        .and_then(Value::as_str)
        .ok_or("no [time, \"value\"] pair")?;
    Ok(Sample {
        labels,
        value: number(text).ok_or_else(|| format!("value {text:?} is not a number"))?,
    })
}

/// A sample value as Prometheus writes it: a decimal, `NaN`, `+Inf`, `-Inf`.
fn number(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    #[test]
    fn addresses_parse_like_the_admin_endpoint() {
        assert_eq!(
            Prometheus::parse("http://127.0.0.1:9090").unwrap().url(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            Prometheus::parse("127.0.0.1:9090/").unwrap().url(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            Prometheus::parse("http://[::1]:9090/prom/").unwrap().url(),
            "http://[::1]:9090/prom"
        );
        let err = Prometheus::parse("https://prom:9090").unwrap_err();
        assert!(err.contains("only http://"), "{err}");
        let err = Prometheus::parse("prometheus").unwrap_err();
        assert_eq!(err, "--prometheus prometheus: expected http://HOST:PORT");
    }

    #[test]
    fn a_vector_answer_is_its_samples() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"operation_id":"getReturn"},"value":[1764633600.123,"40.5"]},
            {"metric":{"__name__":"x","operation_id":"getLabel","side":"shadow"},"value":[1764633600.123,"NaN"]},
            {"metric":{},"value":[1764633600.123,"+Inf"]}]}}"#;
        let samples = parse_vector(200, body).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].label("operation_id"), "getReturn");
        assert_eq!(samples[0].value, 40.5);
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[1].labels.get("__name__"), None, "the name is not a label");
        assert_eq!(samples[1].label("side"), "shadow");
        assert_eq!(samples[2].value, f64::INFINITY);
        assert_eq!(samples[2].label("operation_id"), "");
        // No series at all: an empty vector, not an error (the caller decides what absent means).
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_vector(200, empty).unwrap(), vec![]);
    }

    #[test]
    fn errors_say_what_prometheus_said() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        assert_eq!(
            parse_vector(400, bad).unwrap_err(),
            "Prometheus refused it (HTTP 400, bad_data): 1:5: parse error: unexpected"
        );
        assert_eq!(
            parse_vector(502, b"<html>Bad Gateway</html>\nmore").unwrap_err(),
            "HTTP 502 <html>Bad Gateway</html>"
        );
        assert!(parse_vector(200, b"not json")
            .unwrap_err()
            .starts_with("the answer is not JSON"));
        assert!(parse_vector(200, br#"{"data":{}}"#)
            .unwrap_err()
            .contains("not a query API answer"));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(parse_vector(200, scalar).unwrap_err(), "expected a vector, got scalar");
        let broken = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#;
        assert_eq!(
            parse_vector(200, broken).unwrap_err(),
            "result[0]: value \"x\" is not a number"
        );
        let label =
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"2"]}]}}"#;
        assert_eq!(
            parse_vector(200, label).unwrap_err(),
            "result[0]: label \"a\" is not a string"
        );
    }

    #[test]
    fn queries_are_percent_encoded_and_failures_name_the_query() {
        assert_eq!(encode("sum by (a) (x[5m])"), "sum%20by%20%28a%29%20%28x%5B5m%5D%29");
        // A server that answers one request with an HTTP error page.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let body = r#"{"status":"error","errorType":"execution","error":"query timed out"}"#;
            write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let _ = stream.read(&mut [0; 16]);
            request_line
        });
        let prometheus = Prometheus::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = prometheus.query("up == 1", 1_800_000_000.25).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Prometheus at http://127.0.0.1:{port}: query `up == 1`: Prometheus refused it (HTTP 503, execution): query timed out"
            )
        );
        assert_eq!(
            server.join().unwrap(),
            "GET /api/v1/query?query=up%20%3D%3D%201&time=1800000000.250 HTTP/1.1\r\n"
        );

        // Nobody listening: a connection error, naming the query too.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let prometheus = Prometheus::parse(&format!("127.0.0.1:{port}")).unwrap();
        let err = prometheus.query("up", 0.0).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "Prometheus at http://127.0.0.1:{port}: query `up`: cannot connect"
            )),
            "{err}"
        );
    }
}
