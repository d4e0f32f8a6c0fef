"""Header rules for the copies of a request: a candidate in another trust
zone gets a test credential instead of the client's, and no cookie, while
the request the client is served with is untouched."""

from harness import http, nonzero, operation_counters, settle

CONFIG = {
    "revision": "headers",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "legacy"},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow",
                    "shadow_headers": {"remove": ["cookie"], "set": {"authorization": "Bearer candidate-test"}}}],
}


def test_the_copy_carries_the_rules_and_the_served_request_does_not(backend, envoy, wasm_path):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
    headers = {"authorization": "Bearer real-user", "cookie": "session=abc", "accept": "application/json"}
    assert http("GET", proxy.url("/returns/1"), headers=headers)[0] == 200
    settle(proxy, 1, "getReturn")
    [served] = legacy.wait_for(1)
    [copy] = candidate.wait_for(1)
    assert (served.header("authorization"), served.header("cookie")) == ("Bearer real-user", "session=abc")
    assert copy.header("authorization") == "Bearer candidate-test"
    assert copy.header("cookie") is None
    assert copy.header("accept") == "application/json"
    assert [v for k, v in copy.headers if k == "authorization"] == ["Bearer candidate-test"], "replaced, not added"


def test_header_bytes_that_are_not_utf8_are_never_copied_lossily(backend, envoy, wasm_path):
    """A Latin-1 byte (HTTP/1.1's obs-text) reaches legacy unchanged; the copy
    could only carry it as U+FFFD, so the request is not shadowed and
    `skipped_header_bytes` says so. UTF-8 beyond ASCII is copied byte for byte."""
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
    status, _, body = http("GET", proxy.url("/returns/1"), headers={"x-name": b"caf\xe9"})
    assert status == 200
    [served] = legacy.wait_for(1)
    # http.server reads header bytes as Latin-1: the byte arrived as it was sent.
    assert served.header("x-name") == "caf\xe9"
    counters = operation_counters(proxy, "getReturn")
    assert (counters["skipped_header_bytes"], counters["shadowed"]) == (1, 0), nonzero(counters)
    assert candidate.received == [], "no lossy copy went out"

    assert http("GET", proxy.url("/returns/2"), headers={"x-name": "café".encode()})[0] == 200
    settle(proxy, 1, "getReturn")
    served = legacy.wait_for(2)[1]
    [copy] = candidate.wait_for(1)
    assert copy.header("x-name") == served.header("x-name") == "café".encode().decode("latin-1")
