"""HTTP backends for the rig: a real HTTP/1.1 server on 127.0.0.1 whose
answers a handler function decides, recording every request it receives;
and the faults a bad day brings, as real sockets on loopback too:

    Backend + slow_handler / status_handler / oversized_handler
                   an HTTP backend that answers late, with a 5xx, or too much
    FaultBackend   a TCP server that reads each request and then misbehaves
                   below HTTP: resets before the headers, closes in the
                   middle of them, resets in the middle of the body, or
                   answers bytes that are not HTTP
    DownBackend    a port that refuses connections (bound, never listening)
"""

import json
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.net import HOST, wait_until


@dataclass
class Request:
    """What a Backend received. Header names are lowercased; path keeps the query."""

    method: str
    path: str
    headers: list
    body: bytes
    backend: str = ""
    time: float = 0.0

    def header(self, name, default=None):
        """First value of header `name` (case-insensitive), or `default`."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default


@dataclass
class Response:
    """What a handler returns. `delay_s` sleeps before answering (only this request waits).

    Content-Length is added unless the headers set it or ask for
    `transfer-encoding: chunked` (then the body is sent as one chunk).
    No Date/Server headers are added, so responses are byte-for-byte predictable.
    """

    status: int = 200
    headers: list = field(default_factory=list)
    body: bytes = b""
    delay_s: float = 0.0


def json_response(obj, status=200, headers=None, delay_s=0.0):
    """A Response with a JSON body and content-type."""
    body = json.dumps(obj).encode()
    return Response(status, [("content-type", "application/json")] + list(headers or []), body, delay_s)


def echo_handler(name):
    """Default handler: answers 200 with JSON naming the backend and the request."""

    def handle(request):
        return json_response({"backend": name, "method": request.method, "path": request.path})

    return handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs under a burst of new
    # upstream connections from Envoy: connect failures of the test server,
    # not of the backend under test.
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # A client that hung up first (Envoy resetting a shadow call at its
        # timeout, before a slow answer) is part of the test, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def get_request(self):
        # The handler writes headers and body separately: without NODELAY each
        # answer on a keep-alive connection waits ~40 ms for a delayed ACK.
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class _Handler(BaseHTTPRequestHandler):
    """Turns one HTTP/1.1 exchange into Request -> handler -> Response."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real service behind Envoy
    backend = None  # set on the per-Backend subclass

    def setup(self):
        super().setup()
        self.backend._track(self.connection, add=True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.backend._track(self.connection, add=False)

    def log_message(self, format, *args):  # noqa: A002 - signature is fixed by the base class
        pass  # keep test output quiet

    def _read_body(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self):
        body = bytearray()
        while True:
            size_line = self.rfile.readline().split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline()  # CRLF after each chunk

    def _serve(self):
        request = Request(
            method=self.command,
            path=self.path,
            headers=[(k.lower(), v) for k, v in self.headers.items()],
            body=self._read_body(),
            backend=self.backend.name,
            time=time.time(),
        )
        self.backend._record(request)
        try:
            response = self.backend.handler(request)
        except Exception as exc:  # a broken test handler should show up as a 500, not a hang
            response = Response(500, [("content-type", "text/plain")], f"handler error: {exc!r}".encode())
        if response.delay_s:
            time.sleep(response.delay_s)
        self._send(response)

    def _send(self, response):
        names = {k.lower() for k, _ in response.headers}
        chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in response.headers)
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        self.send_response_only(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if not no_body and not chunked and "content-length" not in names:
            self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if no_body:
            pass
        elif chunked:
            if response.body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(response.body), response.body))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(response.body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class Backend:
    """A real HTTP/1.1 server on 127.0.0.1 in a daemon thread.

    `handler(request) -> Response`; every request is recorded in `received`
    (in arrival order, before the handler runs). Each connection has its own
    thread, so a slow handler does not block other requests.
    """

    def __init__(self, handler=None, name="backend", port=0):
        self.name = name
        self.handler = handler or echo_handler(name)
        self._lock = threading.Lock()
        self._received = []
        self._connections = set()
        handler_class = type(f"Handler_{name}", (_Handler,), {"backend": self})
        self._server = _Server((HOST, port), handler_class)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"backend-{name}", daemon=True)
        self._thread.start()

    @property
    def received(self):
        """A snapshot (copy) of the requests received so far."""
        with self._lock:
            return list(self._received)

    def clear(self):
        with self._lock:
            self._received.clear()

    def wait_for(self, count, timeout=10.0):
        """Wait until at least `count` requests arrived; returns them."""
        return wait_until(lambda: len(self.received) >= count and self.received, timeout,
                          message=f"{count} request(s) at backend {self.name}")

    def url(self, path="/"):
        return f"http://{HOST}:{self.port}{path}"

    def stop(self):
        """Stop listening and cut open keep-alive connections, so the port looks dead."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def _record(self, request):
        with self._lock:
            self._received.append(request)

    def _track(self, conn, add):
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- faults


def slow_handler(handler, delay_s):
    """`handler`'s answers, each `delay_s` late (only the request being answered waits)."""

    def handle(request):
        response = handler(request)
        response.delay_s = delay_s
        return response

    return handle


def status_handler(status, body=b"backend failure"):
    """Every request answered with `status` (e.g. 503) and a short text body."""
    return lambda request: Response(status, [("content-type", "text/plain")], body)


def oversized_handler(size):
    """Every request answered 200 with a JSON body of `size` bytes."""
    filler = size - len(b'{"filler":""}')
    body = b'{"filler":"' + b"x" * max(0, filler) + b'"}'
    return lambda request: Response(200, [("content-type", "application/json")], body)


def _reset(conn):
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


def _reset_before_headers(conn):
    _reset(conn)


def _reset_mid_body(conn):
    # Headers promising 1,000 bytes, 17 of them, then the reset.
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
                 b'{"id": 1, "stat')
    time.sleep(0.01)  # let the headers leave before the RST overtakes them
    _reset(conn)


def _cut_in_headers(conn):
    # The status line and half a header, then the connection closes.
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: appl")
    conn.close()


def _garbage(conn):
    conn.sendall(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
    conn.close()


# What FaultBackend does after reading a request, by name.
FAULTS = {
    "reset_before_headers": _reset_before_headers,
    "reset_mid_body": _reset_mid_body,
    "cut_in_headers": _cut_in_headers,
    "garbage": _garbage,
}

# A request head is read up to this; the rig's requests are far smaller.
_MAX_HEAD_BYTES = 65536


class FaultBackend:
    """A TCP server on 127.0.0.1 that reads each request (head and a
    content-length body) and then does `fault` (a name in FAULTS) on its
    connection instead of answering with HTTP. Each connection is served by
    its own daemon thread and carries one request. `received` counts the
    requests read."""

    def __init__(self, fault, name="fault", port=0):
        self.name = name
        self.fault = FAULTS[fault]
        self._lock = threading.Lock()
        self._received = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name=f"fault-{name}", daemon=True)
        self._thread.start()

    @property
    def received(self):
        with self._lock:
            return self._received

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(5)
        try:
            if self._read_request(conn):
                with self._lock:
                    self._received += 1
                self.fault(conn)
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk or len(data) > _MAX_HEAD_BYTES:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class DownBackend:
    """A loopback port where nothing listens: connecting is refused at once.
    The port stays bound (never listening) while this object lives, so no
    other process of the machine can take it meanwhile."""

    name = "down"

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0

    def stop(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
