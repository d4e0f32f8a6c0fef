"""Smoke tests of the harness itself: real backends and a real Envoy, no wasm needed."""

import socket
import threading
import time

from harness import Client, Response, free_port, http


def test_backend_records_requests_and_reads_bodies(backend):
    legacy = backend(name="legacy")
    status, _, body = http("POST", legacy.url("/returns?x=1"), {"X-Test": "a"}, b"hello")
    assert status == 200 and b'"backend": "legacy"' in body

    # chunked request body, sent by hand since http.client only chunks iterables
    with socket.create_connection(("127.0.0.1", legacy.port)) as sock:
        sock.sendall(b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")

    first, second = legacy.wait_for(2)
    assert (first.method, first.path, first.body) == ("POST", "/returns?x=1", b"hello")
    assert first.header("x-test") == "a"
    assert (second.method, second.body) == ("PUT", b"abcde")


def test_backend_delay_does_not_block_others(backend):
    def handler(request):
        return Response(200, [], b"slow" if request.path == "/slow" else b"fast", delay_s=2 if request.path == "/slow" else 0)

    b = backend(handler)
    slow = threading.Thread(target=http, args=("GET", b.url("/slow")))
    slow.start()
    b.wait_for(1)
    started = time.monotonic()
    assert http("GET", b.url("/fast"))[2] == b"fast"
    assert time.monotonic() - started < 1
    slow.join()


def test_client_keeps_connection_alive(backend):
    b = backend()
    with Client(b.url()) as client:
        assert client.get("/a")[0] == 200
        sock = client.conn.sock
        assert client.get("/b")[0] == 200
        assert client.conn.sock is sock


def test_envoy_without_filter_routes_to_fixed_cluster(backend, envoy):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, with_filter=False, route_cluster="legacy")

    status, headers, body = http("GET", proxy.url("/returns/1"))
    assert status == 200, body
    assert headers.get("x-envoy-upstream-service-time") is not None  # it really went through Envoy
    [request] = legacy.received
    assert request.path == "/returns/1"
    assert request.header("x-request-id")  # generate_request_id is on
    assert candidate.received == []

    stats = proxy.stats()
    assert stats["cluster.legacy.upstream_rq_total"] == 1
    assert proxy.counter("cluster.candidate.upstream_rq_total") == 0
    assert proxy.counter("http.ingress.downstream_rq_completed") >= 1
    assert "envoy_cluster_upstream_rq_total" in proxy.prometheus()


def test_envoy_without_filter_follows_cluster_header(backend, envoy):
    """With the filter gone the shipped route obeys whatever the client sends: the
    filter must overwrite this header on every request. Also: extra clusters and
    a cluster on a closed port."""
    legacy, v2 = backend(name="legacy"), backend(name="returns-v2")
    proxy = envoy({"legacy": legacy.port, "candidate": free_port(), "returns-v2": v2.port}, with_filter=False)

    assert http("GET", proxy.url("/a"), {"x-parallel-run-cluster": "returns-v2"})[0] == 200
    assert [r.path for r in v2.received] == ["/a"]
    assert http("GET", proxy.url("/b"), {"x-parallel-run-cluster": "candidate"})[0] == 503  # nothing listens
    assert http("GET", proxy.url("/c"))[0] == 200  # no header: the fallback route to legacy
    assert http("GET", proxy.url("/d"), {"x-parallel-run-cluster": "nope"})[0] == 503
    assert [r.path for r in legacy.received] == ["/c"]


def test_stopped_backend_looks_dead_to_envoy(backend, envoy):
    """stop() also cuts Envoy's pooled keep-alive connections, so nothing answers."""
    legacy = backend(name="legacy")
    proxy = envoy({"legacy": legacy.port}, with_filter=False, route_cluster="legacy")
    assert http("GET", proxy.url("/a"))[0] == 200
    legacy.stop()
    assert http("GET", proxy.url("/b"))[0] == 503
    assert [r.path for r in legacy.received] == ["/a"]
