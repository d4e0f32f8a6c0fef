"""HTTP backends for the rig: a real HTTP/1.1 server on 127.0.0.1 whose
answers a handler function decides, recording every request it receives."""

import json
import socket
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
