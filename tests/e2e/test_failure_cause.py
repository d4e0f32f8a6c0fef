"""A shadow call's failure is classified by what Envoy reports: a 5xx counts
as `failed_5xx` only when a backend sent it (Envoy's router marks those with
x-envoy-upstream-service-time); Envoy's own replies for garbage, a reset in
the middle of the headers or a refused connection are `failed_error`."""

import socket
import threading

import pytest

from harness import HOST, assert_counters, free_port, http, settle

CONFIG = {
    "revision": "causes",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"}],
}


class RawServer:
    """Accepts connections on loopback and answers each with `reply` bytes, then closes."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("name,reply", [
    ("garbage", b"\x00\x01 this is not HTTP \xff\r\n\r\n"),
    ("reset in the headers", b"HTTP/1.1 200 OK\r\ncontent-type: appl"),
])
def test_envoys_own_replies_are_errors_not_the_candidates_5xx(backend, envoy, wasm_path, name, reply):
    legacy = backend(name="legacy")
    candidate = RawServer(reply)
    try:
        proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
        for n in range(3):
            assert http("GET", proxy.url(f"/returns/{n}"))[0] == 200, name  # the client never notices
        assert_counters(settle(proxy, 3, "getReturn"), requests=3, served_legacy=3, shadowed=3,
                        failed=3, failed_error=3)
    finally:
        candidate.close()


def test_a_refused_connection_is_an_error(backend, envoy, wasm_path):
    legacy = backend(name="legacy")
    proxy = envoy({"legacy": legacy.port, "candidate": free_port()}, wasm_path=wasm_path, config=CONFIG)
    assert http("GET", proxy.url("/returns/1"))[0] == 200
    assert_counters(settle(proxy, 1, "getReturn"), requests=1, served_legacy=1, shadowed=1, failed=1, failed_error=1)
