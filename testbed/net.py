"""The client side of the rig: loopback addresses, plain HTTP requests and
polling. Standard library only."""

import itertools
import json
import os
import socket
import time
import urllib.parse
from http.client import HTTPConnection

HOST = "127.0.0.1"


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (outgoing connections)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_ports():
    """This pytest-xdist worker's share of the ports below the ephemeral
    range, as an iterator that goes round it, or None outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit()):
        return None
    index, count = int(worker[2:]), max(int(count), 1)
    low, high = PORTS_FROM, max(_ephemeral_low(), PORTS_FROM + count * 100)
    share = (high - low) // count
    first = low + index * share
    return itertools.cycle(range(first, first + share))


# Where the workers' shares start: above the well-known and registered
# services a developer's machine may run (1024-9999).
PORTS_FROM = 10000
_PORTS = None


def free_port():
    """A TCP port that is free now, for a server that binds it a moment later.

    Alone, the OS picks one (bind to port 0). Under pytest-xdist
    (`make e2e` runs the suite on two workers) each worker hands out the
    ports of its own share of the range below the kernel's ephemeral ports,
    in turn: two workers never hand out the same port, and no outgoing
    connection can be given one between this check and the server's bind.
    """
    global _PORTS
    if _PORTS is None:
        _PORTS = _worker_ports() or False
    if not _PORTS:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            return sock.getsockname()[1]
    for _ in range(1000):
        port = next(_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise OSError("no free port in this worker's share after 1,000 tries")


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
