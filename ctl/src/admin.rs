//! Envoy's admin endpoint: a minimal HTTP/1.1 GET over a TCP stream, enough
//! for `/stats?format=json` (Content-Length, chunked, or close-delimited
//! bodies), with a timeout on connecting and on every read and write.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

/// The shipped bootstraps' admin address.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";
const TIMEOUT: Duration = Duration::from_secs(5);
/// Refuse answers above this: the filtered stats of thousands of operations
/// stay far below it.
const MAX_BODY: u64 = 64 << 20;

/// An admin address: `http://host:port[/prefix]`, or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// `host:port` as given (brackets kept for IPv6), for `Host:` and connecting.
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
        let mut stream = self.connect().map_err(at)?;
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: parallel-run-ctl\r\n\r\n",
            self.authority
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|err| at(format!("cannot send the request: {err}")))?;
        let (status, body) = read_response(BufReader::new(stream)).map_err(|err| at(format!("GET {target}: {err}")))?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            let first = text.lines().next().unwrap_or("").trim();
            return Err(at(format!("GET {target}: HTTP {status} {first}")));
        }
        Ok(body)
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let addrs: Vec<SocketAddr> = self
            .authority
            .to_socket_addrs()
            .map_err(|err| format!("cannot resolve {}: {err}", self.authority))?
            .collect();
        let mut last = format!("no address for {}", self.authority);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(TIMEOUT))
                        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
                        .map_err(|err| format!("{addr}: {err}"))?;
                    return Ok(stream);
                }
                Err(err) => {
                    last = format!("cannot connect to {addr}: {err} (is Envoy running, admin on this address?)")
                }
            }
        }
        Err(last)
    }
}

/// Status code and body of one HTTP/1.1 response.
fn read_response(mut reader: impl BufRead) -> Result<(u16, Vec<u8>), String> {
    let status_line = read_line(&mut reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("not an HTTP/1.x response: {:?}", truncate(&status_line)))?;

    let mut length = None;
    let mut chunked = false;
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {:?}", truncate(&line)));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| format!("bad content-length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)?
    } else if let Some(length) = length {
        if length > MAX_BODY {
            return Err(format!("answer too large ({length} bytes)"));
        }
        let mut body = Vec::new();
        reader
            .take(length)
            .read_to_end(&mut body)
            .map_err(|err| format!("reading the body: {err}"))?;
        if body.len() as u64 != length {
            return Err(format!("connection closed after {} of {length} bytes", body.len()));
        }
        body
    } else {
        read_limited(&mut reader, MAX_BODY)?
    };
    Ok((status, body))
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {:?}", truncate(&line)))?;
        if size == 0 {
            // Trailers, up to the empty line (or the end of the stream).
            while !read_line(reader).unwrap_or_default().is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err("answer too large".to_string());
        }
        let before = body.len();
        reader
            .by_ref()
            .take(size)
            .read_to_end(&mut body)
            .map_err(|err| format!("reading a chunk: {err}"))?;
        if (body.len() - before) as u64 != size {
            return Err("connection closed inside a chunk".to_string());
        }
        if !read_line(reader)?.is_empty() {
            return Err("chunk not followed by CRLF".to_string());
        }
    }
}

fn read_limited(reader: &mut impl Read, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|err| format!("reading the body: {err}"))?;
    if body.len() as u64 > limit {
        return Err("answer too large".to_string());
    }
    Ok(body)
}

/// One line without its CRLF (or LF); an error at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(|err| format!("reading the answer: {err}"))?;
    if line.last() != Some(&b'\n') {
        return Err("connection closed before the answer was complete".to_string());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| "non-UTF-8 line in the answer head".to_string())
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
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

    fn response(raw: &str) -> Result<(u16, Vec<u8>), String> {
        read_response(raw.as_bytes())
    }

    #[test]
    fn responses_are_framed_by_length_chunks_or_close() {
        assert_eq!(
            response("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA").unwrap(),
            (200, b"hello".to_vec())
        );
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n")
                .unwrap(),
            (200, b"hello".to_vec())
        );
        assert_eq!(
            response("HTTP/1.0 404 Not Found\n\nnope").unwrap(),
            (404, b"nope".to_vec())
        );
        for (raw, problem) in [
            ("", "connection closed"),
            ("SSH-2.0-OpenSSH\r\n", "not an HTTP/1.x response"),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
                "connection closed after 5 of 9 bytes",
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
                "connection closed inside a chunk",
            ),
            ("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", "bad content-length"),
            ("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header line"),
        ] {
            let err = response(raw).unwrap_err();
            assert!(err.starts_with(problem), "{raw:?}: {err}");
        }
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
            head.contains(&format!("Host: {}\r\n", url.trim_start_matches("http://"))),
            "{head}"
        );

        let (url, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nnot ready");
        let err = Admin::parse(&url).unwrap().get("/x").unwrap_err();
        assert_eq!(err, format!("Envoy admin at {url}: GET /x: HTTP 503 not ready"));
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
