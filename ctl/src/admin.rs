//! Envoy's admin endpoint: where it is, and `/stats?format=json` read as
//! integer stats by name.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::http;

/// The shipped bootstraps' admin address.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";

/// An admin address: `http://host:port[/prefix]`, or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// `host:port` as given (brackets kept for IPv6).
    authority: String,
    /// Path prefix, without a trailing slash (usually empty).
    prefix: String,
}

impl Admin {
    pub fn parse(url: &str) -> Result<Admin, String> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{url}: only http:// admin addresses are supported, not {scheme}://"
                ))
            }
            None => url,
        };
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let has_port = match authority.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty() && (!host.contains(':') || host.ends_with(']')) && port.parse::<u16>().is_ok()
            }
            None => false,
        };
        if !has_port {
            return Err(format!("{url}: expected http://HOST:PORT"));
        }
        Ok(Admin {
            authority: authority.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("http://{}", self.authority)
        } else {
            format!("http://{}/{}", self.authority, self.prefix)
        }
    }

    /// `GET path` (which starts with `/`): the body of a 200 answer.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let target = if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("/{}{path}", self.prefix)
        };
        let at = |what: String| format!("Envoy admin at {}: {what}", self.url());
        let url = format!("http://{}{target}", self.authority);
        let answer = http::get(&url, &self.authority, http::MAX_BODY).map_err(|err| {
            at(if err.starts_with("cannot connect") {
                format!("{err} (is Envoy running, admin on this address?)")
            } else {
                format!("GET {target}: {err}")
            })
        })?;
        if answer.status != 200 {
            let text = String::from_utf8_lossy(&answer.body);
            let first = text.lines().next().unwrap_or("").trim();
            return Err(at(format!("GET {target}: HTTP {} {first}", answer.status)));
        }
        Ok(answer.body)
    }
}

/// Integer stats from a `/stats?format=json` body, by name: counters and
/// gauges (histograms and text readouts have no integer `value`).
pub fn parse_stats(body: &[u8]) -> Result<BTreeMap<String, u64>, String> {
    let document: Value = serde_json::from_slice(body).map_err(|err| format!("stats: invalid JSON: {err}"))?;
    let entries = document
        .get("stats")
        .and_then(Value::as_array)
        .ok_or("stats: no \"stats\" array in the answer")?;
    Ok(entries
        .iter()
        .filter_map(|entry| Some((entry.get("name")?.as_str()?.to_string(), entry.get("value")?.as_u64()?)))
        .collect())
}

/// `/stats?format=json&filter=<regex>` with the regex percent-encoded.
pub fn stats_path(filter: &str) -> String {
    let mut path = "/stats?format=json&filter=".to_string();
    for byte in filter.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn admin_addresses_parse() {
        let admin = Admin::parse("http://127.0.0.1:9901").unwrap();
        assert_eq!(admin.url(), "http://127.0.0.1:9901");
        assert_eq!(Admin::parse("127.0.0.1:9901/").unwrap(), admin);
        assert_eq!(Admin::parse("http://[::1]:9901").unwrap().url(), "http://[::1]:9901");
        assert_eq!(
            Admin::parse("http://envoy:15000/admin/").unwrap().url(),
            "http://envoy:15000/admin"
        );
        for bad in [
            "https://127.0.0.1:9901",
            "127.0.0.1",
            "http://:9901",
            "http://h:port",
            "::1:9901",
            "",
        ] {
            assert!(Admin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_filter_is_percent_encoded() {
        assert_eq!(
            stats_path(r"^wasmcustom\.parallel_run\."),
            "/stats?format=json&filter=%5Ewasmcustom%5C.parallel_run%5C."
        );
    }

    #[test]
    fn stats_keep_integer_values_only() {
        let body = br#"{"stats":[{"name":"a.b","value":3},{"name":"t","value":"text"},{"histograms":{}}]}"#;
        assert_eq!(parse_stats(body).unwrap(), BTreeMap::from([("a.b".to_string(), 3)]));
        assert!(parse_stats(b"{}").unwrap_err().contains("no \"stats\" array"));
        assert!(parse_stats(b"<html>").unwrap_err().starts_with("stats: invalid JSON"));
    }

    /// Serves one connection with `answer`, returning what the client sent.
    fn serve_once(answer: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            reader.get_mut().write_all(answer).unwrap();
            head
        });
        (format!("http://{addr}"), handle)
    }

    #[test]
    fn get_over_a_real_socket() {
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        let admin = Admin::parse(&url).unwrap();
        assert_eq!(admin.get("/stats?format=json").unwrap(), b"{}");
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /stats?format=json HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: {}\r\n", url.trim_start_matches("http://"))),
            "{head}"
        );

        let (url, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nnot ready");
        let err = Admin::parse(&url).unwrap().get("/x").unwrap_err();
        assert_eq!(err, format!("Envoy admin at {url}: GET /x: HTTP 503 not ready"));
        server.join().unwrap();
    }

    #[test]
    fn answers_are_bounded_and_chunked_ones_read() {
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 64\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123");
        let authority = url.trim_start_matches("http://").to_string();
        let err = http::get(&format!("{url}/x"), &authority, 10).err().unwrap();
        assert_eq!(err, "answer larger than 10 bytes");
        server.join().unwrap();
        let (url, server) =
            serve_once(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
        assert_eq!(Admin::parse(&url).unwrap().get("/x").unwrap(), b"hello");
        server.join().unwrap();
    }

    #[test]
    fn an_unreachable_admin_is_named() {
        // A port that was free a moment ago.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = Admin::parse(&format!("127.0.0.1:{port}"))
            .unwrap()
            .get("/x")
            .unwrap_err();
        assert!(
            err.starts_with(&format!(
                "Envoy admin at http://127.0.0.1:{port}: cannot connect to 127.0.0.1:{port}: "
            )),
            "{err}"
        );
    }
}
