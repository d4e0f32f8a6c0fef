"""The memory bound of shadow calls. Envoy buffers a callout's whole response
before the filter sees any of it, so `max_body_bytes` alone bounds nothing
there; the shipped bootstraps bound it with the runtime limit
`http.async_response_buffer_limit` (1 MiB), beyond which Envoy resets the
call and the filter counts `failed_error`. The client path is unchanged.

Measured on Envoy 1.40 (16 shadow calls, the candidate sending 20 MB and then
stalling): Envoy's RSS +306 MiB and +308 MiB with Envoy's default limit
(32 MiB per call), +1 MiB and +0 MiB with the shipped one."""

import socket
import threading
import time

from harness import Response, http, json_response, operation_counters, settle, wait_until

CALLS = 16
BIG = 20_000_000
STALL_S = 6.0
# The shipped limit (envoy/envoy.yaml, layered_runtime).
LIMIT = 1 << 20
# Far above the +1 MiB measured with the limit, far below the +306 MiB without.
RSS_BOUND_MIB = 48

CONFIG = {
    "revision": "memory",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "legacy", "shadow_timeout_ms": 20000},
    "operations": [{"id": "big", "method": "GET", "path": "/big/{id}", "mode": "shadow"}],
}


class RawCandidate:
    """A candidate on a raw socket: answers every request with `size` bytes
    under a content-length of `size + missing`, then holds the connection
    for `stall_s` (the missing bytes never come) and closes it."""

    def __init__(self, size, missing=0, stall_s=0.0):
        self.size, self.missing, self.stall_s = size, missing, stall_s
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                         b"content-length: %d\r\n\r\n" % (self.size + self.missing))
            block = b"x" * (1 << 20)
            sent = 0
            while sent < self.size:
                n = min(len(block), self.size - sent)
                conn.sendall(block[:n])
                sent += n
            time.sleep(self.stall_s)
        except OSError:
            pass  # Envoy reset the call: the point of the limit
        finally:
            conn.close()

    def stop(self):
        self.listener.close()


def rss_mib(proxy):
    with open(f"/proc/{proxy.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_stalled_20_mb_shadow_responses_stay_within_the_bound(backend, envoy, wasm_path):
    legacy = backend(lambda request: json_response({"backend": "legacy"}), name="legacy")
    candidate = RawCandidate(BIG, missing=1, stall_s=STALL_S)
    try:
        proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
        for i in range(3):  # not an operation: warms the VM, shadows nothing
            assert http("GET", proxy.url(f"/warm/{i}"))[0] == 200
        before = rss_mib(proxy)
        answers = []

        def client(i):
            started = time.monotonic()
            status, _, body = http("GET", proxy.url(f"/big/{i}"))
            answers.append((status, body, time.monotonic() - started))

        clients = [threading.Thread(target=client, args=(i,)) for i in range(CALLS)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        peak = before
        until = time.monotonic() + STALL_S - 2
        while time.monotonic() < until:  # while a call without the bound would still hold its 20 MB
            peak = max(peak, rss_mib(proxy))
            time.sleep(0.1)
        c = settle(proxy, CALLS, "big", timeout=STALL_S + 10)
        assert peak - before < RSS_BOUND_MIB, f"RSS {before:.0f} -> {peak:.0f} MiB for {CALLS} stalled calls"
        assert (c["failed"], c["failed_error"]) == (CALLS, CALLS), c
        # The client path: every client got legacy's answer, whole.
        assert [(s, b) for s, b, _ in answers] == [(200, b'{"backend": "legacy"}')] * CALLS
    finally:
        candidate.stop()


def test_a_shadow_response_above_the_limit_is_failed_error_and_at_the_limit_is_compared(backend, envoy, wasm_path):
    # The same bytes as RawCandidate's, so that a compared answer matches.
    at_limit = Response(200, [("content-type", "application/octet-stream")], b"x" * LIMIT)
    legacy = backend(lambda request: at_limit, name="legacy")
    exact, over = RawCandidate(LIMIT), RawCandidate(LIMIT + 1)
    try:
        config = dict(CONFIG, operations=[
            {"id": "exact", "method": "GET", "path": "/exact/{id}", "mode": "shadow", "candidate": {"cluster": "exact"}},
            {"id": "over", "method": "GET", "path": "/over/{id}", "mode": "shadow", "candidate": {"cluster": "over"}},
        ])
        proxy = envoy({"legacy": legacy.port, "candidate": exact.port, "exact": exact.port, "over": over.port},
                      wasm_path=wasm_path, config=config)
        status, _, body = http("GET", proxy.url("/exact/1"))
        assert (status, len(body)) == (200, LIMIT)
        assert http("GET", proxy.url("/over/1"))[0] == 200
        assert settle(proxy, 1, "exact")["matched"] == 1, "a response of exactly the limit is compared"
        c = wait_until(lambda: (c := operation_counters(proxy, "over"))["failed"] and c, message="over: an outcome")
        assert (c["failed"], c["failed_error"]) == (1, 1), c
    finally:
        exact.stop()
        over.stop()
