"""The client side of the rig: loopback addresses, plain HTTP requests and
polling. Standard library only."""

import json
import socket
import time
import urllib.parse
from http.client import HTTPConnection

HOST = "127.0.0.1"


def free_port():
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll `predicate` until it returns something truthy and return that.

    Raises AssertionError on timeout, so a test fails with a readable reason.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {value!r})")
        time.sleep(interval)


def _split(url):
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port, path


def _encode(body):
    if isinstance(body, (dict, list)):
        return json.dumps(body).encode()
    if isinstance(body, str):
        return body.encode()
    return body


def http(method, url, headers=None, body=None, timeout=10):
    """One request on a fresh connection. Returns (status, headers, body bytes).

    `headers` of the answer is an http.client.HTTPMessage: `.get(name)` is
    case-insensitive, `.get_all(name)` gives repeated headers.
    `body` may be bytes, str, or a dict/list (sent as JSON).
    """
    host, port, path = _split(url)
    conn = HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=_encode(body), headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


class Client:
    """Requests over one reused keep-alive connection (like a pooled client)."""

    def __init__(self, base_url, timeout=10):
        host, port, _ = _split(base_url)
        self.conn = HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, headers=None, body=None):
        self.conn.request(method, path, body=_encode(body), headers=dict(headers or {}))
        resp = self.conn.getresponse()
        return resp.status, resp.headers, resp.read()

    def get(self, path, headers=None):
        return self.request("GET", path, headers)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
