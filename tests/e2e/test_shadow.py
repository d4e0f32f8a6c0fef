"""Shadowing and comparison, end to end: a real Envoy with the built filter,
real HTTP backends on 127.0.0.1, outcomes read from Envoy's admin /stats.

Comparisons complete asynchronously (the shadow answer reaches the root
context, maybe after the client was answered), so every test first polls
until the books balance (`shadowed == matched + unmatched + failed +
abandoned`) at the expected number of shadowed requests, then asserts the
exact value of every outcome and skip counter.
"""

import hashlib
import json
import math
import os
import socket
import threading
import time
from http.client import HTTPConnection

import pytest

import harness
from harness import (HOST, Client, Response, assert_counters, free_port, http,
                     json_response, nonzero, operation_counters, wait_until, without_header_guard)

OP = "getItem"

# ---------------------------------------------------------------------------
# helpers


def plugin_config(operations=None, candidate=None, **top):
    """A plugin configuration with one GET operation `getItem` on /items/{id}
    in shadow mode unless `operations` says otherwise."""
    config = {
        "revision": "test-shadow",
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": candidate or {"cluster": "candidate"},
        "operation_header": "x-operation-id",
        "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000, "name_keys": True},
        "operations": operations if operations is not None else [operation()],
    }
    config.update(top)
    return config


def operation(id=OP, method="GET", path="/items/{id}", mode="shadow", **settings):  # noqa: A002
    return {"id": id, "method": method, "path": path, "mode": mode, **settings}


def counters(proxy, op=OP):
    return operation_counters(proxy, op)


def settle(proxy, shadowed, op=OP, timeout=10.0):
    return harness.settle(proxy, shadowed, op, timeout)


def get(proxy, path, request_id, headers=None):
    h = {"x-request-id": request_id}
    h.update(headers or {})
    return http("GET", proxy.url(path), h)


def unmatched_lines(proxy):
    return [line for line in proxy.log_text().splitlines() if "parallel-run: unmatched" in line]


def wait_log_line(proxy, needle, timeout=5.0):
    """The one unmatched log line containing `needle` (e.g. the request id)."""
    def found():
        return [line for line in unmatched_lines(proxy) if needle in line]

    lines = wait_until(found, timeout=timeout, message=f"an unmatched log line with {needle!r}")
    assert len(lines) == 1, lines
    return lines[0]


def fixed(body=None, status=200, headers=None, delay_s=0.0, raw=None):
    """A handler answering always the same response."""
    payload = raw if raw is not None else json.dumps(body if body is not None else {"ok": True}).encode()
    all_headers = [("content-type", "application/json")] + list(headers or [])

    def handle(_request):
        return Response(status, all_headers, payload, delay_s)

    return handle


def start(backend, envoy, legacy_handler=None, candidate_handler=None, config=None, candidate_port=None, **options):
    legacy = backend(legacy_handler or fixed(), name="legacy")
    candidate = backend(candidate_handler or fixed(), name="candidate")
    clusters = {"legacy": legacy.port, "candidate": candidate_port or candidate.port}
    proxy = envoy(clusters, config=config or plugin_config(), **options)
    return legacy, candidate, proxy


def request_ids(requests):
    return [r.header("x-request-id") for r in requests]


# ---------------------------------------------------------------------------
# comparison outcomes


def test_identical_responses_match(backend, envoy, wasm_path):
    body = {"id": "42", "status": "open", "items": [1, 2, 3]}
    handler = fixed(body, headers=[("x-api-version", "7")])
    legacy, candidate, proxy = start(backend, envoy, handler, handler)

    for i in range(3):
        status, headers, got = get(proxy, f"/items/{i}", f"same-{i}")
        assert status == 200 and json.loads(got) == body

    c = settle(proxy, 3)
    assert_counters(c, requests=3, served_legacy=3, shadowed=3, matched=3)
    assert sorted(request_ids(candidate.received)) == ["same-0", "same-1", "same-2"]
    assert [r.header("x-parallel-run-shadow") for r in candidate.received] == [OP] * 3
    assert [r.header("x-parallel-run-shadow") for r in legacy.received] == [None] * 3
    assert unmatched_lines(proxy) == []


def test_a_shadow_call_leaves_when_the_request_is_complete_not_on_the_tick(backend, envoy, wasm_path):
    """A stream wakes its VM's root through the shared queue (src/wake.rs),
    whose wake-up carries no bytes: the root makes the shadow call at once.
    Were the wake-up lost (an enqueue Envoy refused, a root that missed its
    callback), the call would still leave, but on the root's next 1 s tick,
    batched with the others (a build with the wake-up taken out: every call
    left 0.83-0.87 s after its request)."""
    arrived = []
    answer = fixed({"a": 1})

    def candidate_handler(request):
        arrived.append(time.monotonic())
        return answer(request)

    legacy, candidate, proxy = start(backend, envoy, fixed({"a": 1}), candidate_handler)
    delays = []
    for i in range(8):
        time.sleep(0.13)  # the requests fall at different points of a tick
        complete = time.monotonic()
        status, _, _ = get(proxy, "/items/1", f"wake-{i}")
        assert status == 200
        candidate.wait_for(i + 1, timeout=5)
        delays.append(arrived[i] - complete)
    assert_counters(settle(proxy, 8), requests=8, served_legacy=8, shadowed=8, matched=8)
    delays.sort()
    assert delays[len(delays) // 2] < 0.2, f"shadow calls left {delays} s after their requests"


def test_json_with_reordered_keys_matches(backend, envoy, wasm_path):
    legacy_body = b'{"id": "42", "status": "open", "nested": {"a": 1, "b": [true, null]}}'
    candidate_body = b'{"nested":{"b":[true,null],"a":1},"status":"open","id":"42"}'
    assert legacy_body != candidate_body
    legacy, candidate, proxy = start(backend, envoy, fixed(raw=legacy_body), fixed(raw=candidate_body))

    status, _, got = get(proxy, "/items/1", "reordered-1")
    assert (status, got) == (200, legacy_body)
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, matched=1)


def test_json_number_spelling_matches(backend, envoy, wasm_path):
    legacy_body = b'{"count": 1, "price": 10, "ratio": 0.5, "list": [2, 3]}'
    candidate_body = b'{"count": 1.0, "price": 10.00, "ratio": 0.50, "list": [2.0, 3]}'
    legacy, candidate, proxy = start(backend, envoy, fixed(raw=legacy_body), fixed(raw=candidate_body))

    assert get(proxy, "/items/1", "numbers-1")[0] == 200
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, matched=1)


def test_differing_json_field_is_unmatched_body_and_log_names_path_not_values(backend, envoy, wasm_path):
    legacy_body = {"id": "42", "status": "open-legacy-5f1e", "owner": "alice"}
    candidate_body = {"id": "42", "status": "closed-candidate-9a7c", "owner": "alice"}
    legacy, candidate, proxy = start(backend, envoy, fixed(legacy_body), fixed(candidate_body))

    status, _, got = get(proxy, "/items/42", "diff-body-1")
    assert status == 200 and json.loads(got) == legacy_body  # the client sees legacy only

    c = settle(proxy, 1)
    assert_counters(c, requests=1, served_legacy=1, shadowed=1, unmatched=1, unmatched_body=1)

    line = wait_log_line(proxy, "request_id=diff-body-1")
    assert f"operation={OP}" in line
    assert "axes=body" in line and "axes=body," not in line
    assert "json_paths=[/status]" in line
    assert "headers=[]" in line
    for secret in ("open-legacy-5f1e", "closed-candidate-9a7c", "alice"):
        assert secret not in proxy.log_text(), f"value {secret!r} leaked into the Envoy log"


def test_differing_status_is_unmatched_status(backend, envoy, wasm_path):
    body = {"error": "not here"}
    legacy, candidate, proxy = start(backend, envoy, fixed(body, status=404), fixed(body, status=410))

    status, _, _ = get(proxy, "/items/9", "diff-status-1")
    assert status == 404
    c = settle(proxy, 1)
    assert_counters(c, requests=1, served_legacy=1, shadowed=1, unmatched=1, unmatched_status=1)
    line = wait_log_line(proxy, "request_id=diff-status-1")
    assert "axes=status " in line and "json_paths=[]" in line


def test_ignored_json_path_matches_and_is_needed(backend, envoy, wasm_path):
    """`/items/*/etag` hides the etags; a second operation without the rule
    proves the bodies really differ there."""
    legacy_body = {"items": [{"id": 1, "etag": "e-legacy-1"}, {"id": 2, "etag": "e-legacy-2"}], "total": 2}
    candidate_body = {"items": [{"id": 1, "etag": "e-cand-1"}, {"id": 2, "etag": "e-cand-2"}], "total": 2}
    config = plugin_config([
        operation("listTolerant", path="/tolerant", compare={"ignore_json_paths": ["/items/*/etag"]}),
        operation("listStrict", path="/strict"),
    ])
    legacy, candidate, proxy = start(backend, envoy, fixed(legacy_body), fixed(candidate_body), config=config)

    assert get(proxy, "/tolerant", "etag-tolerant")[0] == 200
    assert get(proxy, "/strict", "etag-strict")[0] == 200

    assert_counters(settle(proxy, 1, "listTolerant"), requests=1, served_legacy=1, shadowed=1, matched=1)
    assert_counters(settle(proxy, 1, "listStrict"), requests=1, served_legacy=1, shadowed=1,
                    unmatched=1, unmatched_body=1)
    line = wait_log_line(proxy, "request_id=etag-strict")
    assert "json_paths=[/items/0/etag,/items/1/etag]" in line
    assert unmatched_lines(proxy) == [line]


def test_differing_date_header_only_matches(backend, envoy, wasm_path):
    body = {"id": "1"}
    legacy_h = [("date", "Mon, 23 Nov 2026 10:00:00 GMT"), ("x-api-version", "3")]
    candidate_h = [("date", "Tue, 24 Nov 2026 11:11:11 GMT"), ("x-api-version", "3")]
    legacy, candidate, proxy = start(backend, envoy, fixed(body, headers=legacy_h), fixed(body, headers=candidate_h))

    assert get(proxy, "/items/1", "date-1")[0] == 200
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, matched=1)


def test_differing_custom_header_is_unmatched_headers(backend, envoy, wasm_path):
    body = {"id": "1"}
    legacy, candidate, proxy = start(backend, envoy,
                                     fixed(body, headers=[("x-api-version", "v-legacy-3")]),
                                     fixed(body, headers=[("x-api-version", "v-cand-4")]))

    assert get(proxy, "/items/1", "hdr-1")[0] == 200
    c = settle(proxy, 1)
    assert_counters(c, requests=1, served_legacy=1, shadowed=1, unmatched=1, unmatched_headers=1)
    line = wait_log_line(proxy, "request_id=hdr-1")
    assert "axes=headers " in line
    assert "headers=[x-api-version]" in line
    assert "v-legacy-3" not in proxy.log_text() and "v-cand-4" not in proxy.log_text()


def test_header_present_on_one_side_only_is_unmatched_headers(backend, envoy, wasm_path):
    body = {"id": "1"}
    legacy, candidate, proxy = start(backend, envoy, fixed(body, headers=[("x-cache", "hit")]), fixed(body))

    assert get(proxy, "/items/1", "hdr-missing-1")[0] == 200
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, unmatched=1, unmatched_headers=1)
    assert "headers=[x-cache]" in wait_log_line(proxy, "request_id=hdr-missing-1")


def test_ignore_headers_makes_a_differing_header_match(backend, envoy, wasm_path):
    body = {"id": "1"}
    config = plugin_config([operation(compare={"ignore_headers": ["X-Api-Version", "x-trace-*"]})])
    legacy, candidate, proxy = start(
        backend, envoy,
        fixed(body, headers=[("x-api-version", "3"), ("x-trace-span", "aaa"), ("x-same", "1")]),
        fixed(body, headers=[("x-api-version", "4"), ("x-trace-span", "bbb"), ("x-trace-extra", "c"), ("x-same", "1")]),
        config=config)

    assert get(proxy, "/items/1", "ignored-hdr-1")[0] == 200
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, matched=1)
    assert unmatched_lines(proxy) == []


# ---------------------------------------------------------------------------
# shadow failures


def test_candidate_503_is_failed_5xx(backend, envoy, wasm_path):
    legacy, candidate, proxy = start(backend, envoy, fixed({"id": "1"}),
                                     fixed(raw=b"overloaded", status=503, headers=[("content-type", "text/plain")]))
    status, _, body = get(proxy, "/items/1", "c503-1")
    assert (status, json.loads(body)) == (200, {"id": "1"})
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, failed=1, failed_5xx=1)
    assert len(candidate.received) == 1


def test_candidate_slower_than_shadow_timeout_is_failed_timeout(backend, envoy, wasm_path):
    config = plugin_config([operation(shadow_timeout_ms=300)])
    legacy, candidate, proxy = start(backend, envoy, fixed({"id": "1"}), fixed({"id": "1"}, delay_s=1.5),
                                     config=config)
    started = time.monotonic()
    status, _, _ = get(proxy, "/items/1", "timeout-1")
    assert status == 200
    assert time.monotonic() - started < 0.5
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, failed=1, failed_timeout=1)
    assert len(candidate.received) == 1


def test_candidate_down_is_failed_error(backend, envoy, wasm_path):
    legacy, candidate, proxy = start(backend, envoy, fixed({"id": "1"}), candidate_port=free_port())
    for i in range(2):
        status, _, body = get(proxy, f"/items/{i}", f"down-{i}")
        assert (status, json.loads(body)) == (200, {"id": "1"})
    assert_counters(settle(proxy, 2), requests=2, served_legacy=2, shadowed=2, failed=2, failed_error=2)
    assert candidate.received == []  # the real candidate backend is not in the cluster


class StallingBackend:
    """A raw HTTP/1.1 server on 127.0.0.1 that sends its response headers at
    once and the body only after `body_delay_s`: an answer that starts in
    time and finishes too late. (The harness Backend delays whole answers.)"""

    def __init__(self, body, body_delay_s):
        self.body = body
        self.body_delay_s = body_delay_s
        self.received = 0
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.received += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % len(self.body))
                if self._stop.wait(self.body_delay_s):
                    return
                conn.sendall(self.body)
                self._stop.wait(1)
            except OSError:
                pass  # Envoy gave up on us: expected

    def stop(self):
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)


def test_candidate_answer_finishing_after_shadow_timeout_is_failed_timeout(backend, envoy, wasm_path):
    """The candidate starts answering in time but its body arrives after
    `shadow_timeout_ms`. Envoy counts an upstream timeout for the callout;
    the filter must count failed_timeout (the candidate is slow), not
    failed_error (which says the candidate could not be reached)."""
    body = json.dumps({"id": "1"}).encode()
    stalling = StallingBackend(body, body_delay_s=1.0)
    try:
        config = plugin_config([operation(shadow_timeout_ms=300)])
        legacy, _, proxy = start(backend, envoy, fixed({"id": "1"}), config=config, candidate_port=stalling.port)
        started = time.monotonic()
        assert get(proxy, "/items/1", "stall-1")[0] == 200
        assert time.monotonic() - started < 0.5
        c = settle(proxy, 1)
        assert stalling.received == 1
        assert proxy.counter("cluster.candidate.upstream_rq_timeout") == 1  # Envoy's own verdict
        assert_counters(c, requests=1, served_legacy=1, shadowed=1, failed=1, failed_timeout=1)
    finally:
        stalling.stop()


def test_client_gone_before_the_serving_answer_is_abandoned(backend, envoy, wasm_path):
    """The client hangs up while legacy is still working: the comparison lost
    its serving side and ends as abandoned, not as a phantom match."""
    body = {"id": "1"}
    legacy, candidate, proxy = start(backend, envoy, fixed(body, delay_s=1.0), fixed(body))

    conn = HTTPConnection(HOST, proxy.port, timeout=0.3)
    try:
        conn.request("GET", "/items/1", headers={"x-request-id": "gone-1"})
        with pytest.raises(OSError):  # socket.timeout
            conn.getresponse()
    finally:
        conn.close()
    candidate.wait_for(1)
    c = settle(proxy, 1, timeout=5)
    assert_counters(c, requests=1, served_legacy=1, shadowed=1, abandoned=1)
    time.sleep(1.0)  # legacy's late answer must not turn it into a second outcome
    assert_counters(counters(proxy), requests=1, served_legacy=1, shadowed=1, abandoned=1)


@pytest.mark.alone  # asserts a client's latency
def test_slow_candidate_inside_timeout_matches_after_the_client_was_answered(backend, envoy, wasm_path):
    """Delay 1.5 s, timeout 3 s: the client gets legacy's answer at once, the
    comparison completes when the shadow answers, long after."""
    delay = 1.5
    body = {"id": "7", "status": "open"}
    legacy, candidate, proxy = start(backend, envoy, fixed(body), fixed(body, delay_s=delay))

    started = time.monotonic()
    status, _, got = get(proxy, "/items/7", "slow-1")
    client_latency = time.monotonic() - started
    client_done = time.time()
    assert status == 200 and json.loads(got) == body
    assert client_latency < 0.5, f"client waited {client_latency:.3f}s for a slow shadow"

    # The candidate has the copy but has not answered: the comparison is pending.
    [shadow] = candidate.wait_for(1, timeout=2)
    at_client_done = counters(proxy)
    assert at_client_done["shadowed"] == 1 and at_client_done["matched"] == 0, nonzero(at_client_done)
    candidate_answer = shadow.time + delay
    assert candidate_answer - client_done > 1.0, (
        f"client answered {candidate_answer - client_done:.3f}s before the candidate; expected > 1s")

    c = settle(proxy, 1, timeout=6)
    settled_at = time.time()
    assert settled_at >= candidate_answer - 0.05
    assert_counters(c, requests=1, served_legacy=1, shadowed=1, matched=1)


# ---------------------------------------------------------------------------
# the shadow copy


def test_shadow_copy_carries_the_request_and_the_marker(backend, envoy, wasm_path):
    legacy, candidate, proxy = start(backend, envoy)
    headers = {
        "x-request-id": "copy-1",
        "x-custom": "custom value",
        "accept": "application/json",
        "authorization": "Bearer t0ken",
        "x-parallel-run-cluster": "candidate",  # a client trying to pick a backend
        "x-parallel-run-shadow": "spoofed",
        "host": "api.example.test",
    }
    status, _, _ = http("GET", proxy.url("/items/42?x=1&y=two%20words"), headers)
    assert status == 200

    [served] = legacy.wait_for(1)
    [shadow] = candidate.wait_for(1)
    assert_counters(settle(proxy, 1), requests=1, served_legacy=1, shadowed=1, matched=1)

    assert (shadow.method, shadow.path) == ("GET", "/items/42?x=1&y=two%20words")
    assert shadow.body == b""
    for name in ("x-request-id", "x-custom", "accept", "authorization"):
        assert shadow.header(name) == headers[name] == served.header(name), name
    assert shadow.header("x-parallel-run-shadow") == OP
    assert shadow.header("host") == "api.example.test" == served.header("host")
    assert shadow.header("x-parallel-run-cluster") is None
    assert [v for k, v in shadow.headers if k == "x-parallel-run-shadow"] == [OP]  # the spoofed value is gone
    # the live request went to legacy (it is the one legacy.wait_for found)
    # despite the client's route header, which stops at the route
    assert served.header("x-parallel-run-cluster") is None
    assert served.header("x-parallel-run-shadow") is None


def test_filter_alone_strips_client_routing_and_marker_headers(backend, envoy, wasm_path):
    """Without the native header guard in front, the filter itself overwrites
    the route header and removes a client's shadow marker on live requests."""

    config = plugin_config([operation(OP, mode="legacy")])
    legacy, candidate, proxy = start(backend, envoy, config=config, tweak=without_header_guard)
    headers = {"x-parallel-run-cluster": "candidate", "X-Parallel-Run-Shadow": "spoofed"}
    assert http("GET", proxy.url("/items/1"), headers)[0] == 200
    [served] = legacy.wait_for(1)
    # served by legacy; the filter's route header stopped at the route
    assert [v for k, v in served.headers if k == "x-parallel-run-cluster"] == []
    assert served.header("x-parallel-run-shadow") is None
    assert candidate.received == []


def test_shadow_copy_of_a_chunked_body_is_reframed(backend, envoy, wasm_path):
    """A chunked POST: legacy gets it chunked, the shadow copy carries the
    same bytes with its own framing (transfer-encoding does not travel)."""
    config = plugin_config([operation("createItem", method="POST", path="/items", shadow_unsafe=True)])
    legacy, candidate, proxy = start(backend, envoy, config=config)
    chunks = [b'{"name": "', b"x" * 5000, b'", "n": 1}']
    payload = b"".join(chunks)

    conn = HTTPConnection(HOST, proxy.port, timeout=10)
    try:
        conn.request("POST", "/items?dry=0", body=iter(chunks),
                     headers={"x-request-id": "chunked-1", "content-type": "application/json"},
                     encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()

    [served] = legacy.wait_for(1)
    [shadow] = candidate.wait_for(1)
    assert served.body == payload and served.header("transfer-encoding") == "chunked"
    assert shadow.body == payload
    assert shadow.path == "/items?dry=0" and shadow.method == "POST"
    assert shadow.header("transfer-encoding") is None
    assert shadow.header("content-length") == str(len(payload))
    assert shadow.header("content-type") == "application/json"
    assert_counters(settle(proxy, 1, "createItem"), requests=1, served_legacy=1, shadowed=1, matched=1)


def test_shadow_authority_comes_from_candidate_config(backend, envoy, wasm_path):
    config = plugin_config(
        [operation(), operation("getOrder", path="/orders/{id}", candidate={"authority": "orders.v2.internal"})],
        candidate={"cluster": "candidate", "authority": "items.v2.internal:8443"})
    legacy, candidate, proxy = start(backend, envoy, config=config)

    assert http("GET", proxy.url("/items/1"), {"x-request-id": "auth-1", "host": "api.example.test"})[0] == 200
    assert http("GET", proxy.url("/orders/1"), {"x-request-id": "auth-2", "host": "api.example.test"})[0] == 200
    settle(proxy, 1, OP)
    settle(proxy, 1, "getOrder")

    by_id = {r.header("x-request-id"): r for r in candidate.received}
    assert by_id["auth-1"].header("host") == "items.v2.internal:8443"
    assert by_id["auth-2"].header("host") == "orders.v2.internal"
    assert [r.header("host") for r in legacy.received] == ["api.example.test"] * 2


# ---------------------------------------------------------------------------
# unsafe methods and body limits


def test_post_is_not_shadowed_by_default(backend, envoy, wasm_path):
    config = plugin_config([operation("createItem", method="POST", path="/items"),
                            operation("deleteItem", method="DELETE", path="/items/{id}")])
    legacy, candidate, proxy = start(backend, envoy, config=config)

    status, _, _ = http("POST", proxy.url("/items"), {"x-request-id": "post-1"}, {"name": "refund me once"})
    assert status == 200
    assert http("DELETE", proxy.url("/items/3"), {"x-request-id": "del-1"})[0] == 200
    assert [r.method for r in legacy.wait_for(2)] == ["POST", "DELETE"]

    assert_counters(counters(proxy, "createItem"), requests=1, served_legacy=1, skipped_unsafe_method=1)
    assert_counters(counters(proxy, "deleteItem"), requests=1, served_legacy=1, skipped_unsafe_method=1)
    time.sleep(0.5)  # a shadow copy would be there by now
    assert candidate.received == []
    assert counters(proxy, "createItem")["shadowed"] == 0


def test_post_is_shadowed_with_its_body_when_unsafe_is_allowed(backend, envoy, wasm_path):
    config = plugin_config([operation("createItem", method="POST", path="/items", shadow_unsafe=True)])
    legacy, candidate, proxy = start(backend, envoy, config=config)
    payload = os.urandom(64 * 1024)  # binary, so any re-encoding shows

    status, _, _ = http("POST", proxy.url("/items?v=2"), {"x-request-id": "post-unsafe-1",
                                                          "content-type": "application/octet-stream"}, payload)
    assert status == 200
    [served] = legacy.wait_for(1)
    [shadow] = candidate.wait_for(1)
    assert served.body == payload
    assert (shadow.method, shadow.path) == ("POST", "/items?v=2")
    assert len(shadow.body) == len(payload) and shadow.body == payload
    assert shadow.header("content-type") == "application/octet-stream"
    assert_counters(settle(proxy, 1, "createItem"), requests=1, served_legacy=1, shadowed=1, matched=1)


def _body_limit_config():
    return plugin_config([operation("upload", method="POST", path="/uploads", shadow_unsafe=True,
                                    max_body_bytes=1024 * 1024)])


def _digest_handler(name):
    def handle(request):
        return json_response({"backend": name, "size": len(request.body),
                              "sha256": hashlib.sha256(request.body).hexdigest()})
    return handle


def test_large_post_with_content_length_is_served_and_skipped_body_too_large(backend, envoy, wasm_path):
    legacy, candidate, proxy = start(backend, envoy, _digest_handler("legacy"), _digest_handler("candidate"),
                                     config=_body_limit_config())
    payload = os.urandom(2 * 1024 * 1024)

    status, _, body = http("POST", proxy.url("/uploads"), {"x-request-id": "big-1"}, payload, timeout=20)
    assert status == 200, body
    assert json.loads(body)["sha256"] == hashlib.sha256(payload).hexdigest()
    [served] = legacy.wait_for(1)
    assert served.body == payload

    assert_counters(counters(proxy, "upload"), requests=1, served_legacy=1, skipped_body_too_large=1)
    time.sleep(0.5)
    assert candidate.received == []
    assert counters(proxy, "upload")["shadowed"] == 0


def test_large_chunked_post_is_served_and_skipped_body_too_large(backend, envoy, wasm_path):
    legacy, candidate, proxy = start(backend, envoy, _digest_handler("legacy"), _digest_handler("candidate"),
                                     config=_body_limit_config())
    chunks = [os.urandom(64 * 1024) for _ in range(32)]  # 2 MiB, no content-length
    payload = b"".join(chunks)

    conn = HTTPConnection(HOST, proxy.port, timeout=20)
    try:
        conn.request("POST", "/uploads", body=iter(chunks), headers={"x-request-id": "big-chunked-1"},
                     encode_chunked=True)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, body
    assert json.loads(body)["sha256"] == hashlib.sha256(payload).hexdigest()
    [served] = legacy.wait_for(1)
    assert served.header("content-length") is None
    assert served.body == payload

    c = wait_until(lambda: (lambda c: c if c["skipped_body_too_large"] else None)(counters(proxy, "upload")),
                   timeout=5, message="skipped_body_too_large")
    time.sleep(0.5)
    assert_counters(counters(proxy, "upload"), requests=1, served_legacy=1, skipped_body_too_large=1)
    assert c["shadowed"] == 0
    assert candidate.received == []


def test_post_just_under_the_body_limit_is_shadowed(backend, envoy, wasm_path):
    """The control for the two tests above: the limit is what skips them."""
    legacy, candidate, proxy = start(backend, envoy, _digest_handler("x"), _digest_handler("x"),
                                     config=_body_limit_config())
    payload = os.urandom(1024 * 1024)
    assert http("POST", proxy.url("/uploads"), {"x-request-id": "limit-1"}, payload, timeout=20)[0] == 200
    [shadow] = candidate.wait_for(1)
    assert shadow.body == payload
    assert_counters(settle(proxy, 1, "upload"), requests=1, served_legacy=1, shadowed=1, matched=1)


def test_response_bodies_over_max_body_bytes_are_failed_body_too_large(backend, envoy, wasm_path):
    """Responses are only compared up to max_body_bytes: a bigger serving or
    shadow answer is failed_body_too_large, and the client still gets all of it."""
    big = json.dumps({"id": "1", "pad": "p" * 4000}).encode()
    small = json.dumps({"id": "1"}).encode()

    def legacy_handler(request):
        return Response(200, [("content-type", "application/json")], big if request.path.startswith("/both") else small)

    def candidate_handler(request):
        return Response(200, [("content-type", "application/json")], big)

    config = plugin_config([operation("bothBig", path="/both/{id}", max_body_bytes=1024),
                            operation("shadowBig", path="/shadow/{id}", max_body_bytes=1024)])
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, config=config)

    status, _, got = get(proxy, "/both/1", "big-resp-1")
    assert (status, got) == (200, big)
    assert get(proxy, "/shadow/1", "big-resp-2")[0] == 200
    for op in ("bothBig", "shadowBig"):
        assert_counters(settle(proxy, 1, op), requests=1, served_legacy=1, shadowed=1,
                        failed=1, failed_body_too_large=1)


# ---------------------------------------------------------------------------
# sampling and overload


def _send_ids(proxy, ids):
    with Client(proxy.url()) as client:
        for rid in ids:
            status, _, _ = client.get(f"/items/{rid}", {"x-request-id": rid})
            assert status == 200


def test_shadow_percent_samples_about_half_and_deterministically(backend, envoy, wasm_path):
    n = 200
    ids = [f"sample-{i:03d}-{i * 7919 % 1000:03d}" for i in range(n)]
    config = plugin_config([operation(shadow_percent=50)])
    legacy, candidate, proxy = start(backend, envoy, config=config)

    _send_ids(proxy, ids)
    decided = wait_until(lambda: (lambda c: c if c["shadowed"] + c["skipped_sampled_out"] == n else None)(counters(proxy)),
                         timeout=5, message="every request shadowed or sampled out")
    c = settle(proxy, decided["shadowed"])
    shadowed = c["shadowed"]
    assert 60 <= shadowed <= 140, f"shadow_percent 50 shadowed {shadowed} of {n}"
    assert_counters(c, requests=n, served_legacy=n, shadowed=shadowed, matched=shadowed,
                    skipped_sampled_out=n - shadowed)
    first = wait_until(lambda: len(candidate.received) == shadowed and candidate.received, timeout=5,
                       message="candidate to have every shadow copy")
    first_ids = request_ids(first)
    assert len(set(first_ids)) == shadowed and set(first_ids) <= set(ids)

    # Same ids through the same Envoy: the same requests are chosen.
    candidate.clear()
    _send_ids(proxy, ids)
    c2 = settle(proxy, 2 * shadowed)
    assert c2["skipped_sampled_out"] == 2 * (n - shadowed)
    assert sorted(request_ids(candidate.received)) == sorted(first_ids)

    # And through a fresh Envoy (new VMs, new root contexts).
    candidate.clear()
    proxy2 = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=config)
    _send_ids(proxy2, ids)
    c3 = settle(proxy2, shadowed)
    assert c3["skipped_sampled_out"] == n - shadowed
    assert sorted(request_ids(candidate.received)) == sorted(first_ids)


@pytest.mark.alone  # asserts a client's latency
def test_overload_skips_shadows_beyond_max_inflight(backend, envoy, wasm_path):
    """max_inflight_shadows 2 on one worker, a candidate taking 2 s and 10
    concurrent clients: 2 are shadowed, 8 skipped as overload, nobody waits."""
    config = plugin_config([operation()], max_inflight_shadows=2)
    body = {"id": "1"}
    legacy, candidate, proxy = start(backend, envoy, fixed(body), fixed(body, delay_s=2.0), config=config,
                                     concurrency=1)
    results = [None] * 10
    barrier = threading.Barrier(10)

    def client(i):
        barrier.wait(timeout=5)
        started = time.monotonic()
        status = get(proxy, f"/items/{i}", f"overload-{i}")[0]
        results[i] = (status, time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    assert all(r is not None for r in results), results
    assert [status for status, _ in results] == [200] * 10
    assert max(latency for _, latency in results) < 1.0, results

    before = counters(proxy)
    assert before["skipped_overload"] >= 1, nonzero(before)
    c = settle(proxy, 10 - before["skipped_overload"], timeout=8)
    assert_counters(c, requests=10, served_legacy=10, shadowed=2, matched=2, skipped_overload=8)
    assert len(candidate.received) == 2

    # The bound frees up once the slow shadows are done.
    assert get(proxy, "/items/99", "overload-after")[0] == 200
    assert settle(proxy, 3, timeout=6)["matched"] == 3


def test_shadows_per_second_are_bounded_per_worker(backend, envoy, wasm_path):
    """max_shadows_per_second 5 on one worker and 40 requests as fast as one
    client sends them: every request served, at most 5 shadowed per second
    (the root's tick), the rest counted skipped_overload; a second later the
    budget is there again."""
    config = plugin_config([operation()], max_shadows_per_second=5)
    body = {"id": "1"}
    legacy, candidate, proxy = start(backend, envoy, fixed(body), fixed(body), config=config, concurrency=1)
    started = time.monotonic()
    statuses = [get(proxy, f"/items/{i}", f"rate-{i}")[0] for i in range(40)]
    elapsed = time.monotonic() - started
    assert statuses == [200] * 40
    first = counters(proxy)
    shadowed = 40 - first["skipped_overload"]
    # One budget per tick: the burst spans at most ceil(elapsed) + 1 ticks.
    assert 5 <= shadowed <= 5 * (math.ceil(elapsed) + 1), (elapsed, nonzero(first))
    c = settle(proxy, shadowed)
    assert_counters(c, requests=40, served_legacy=40, shadowed=shadowed, matched=shadowed,
                    skipped_overload=40 - shadowed)
    assert len(candidate.received) == shadowed

    time.sleep(1.5)
    assert [get(proxy, f"/items/after-{i}", f"rate-after-{i}")[0] for i in range(3)] == [200] * 3
    assert settle(proxy, shadowed + 3)["skipped_overload"] == 40 - shadowed


# ---------------------------------------------------------------------------
# cutover


def test_cutover_serves_from_candidate_and_shadows_to_legacy(backend, envoy, wasm_path):
    def legacy_handler(request):
        if request.path.startswith("/items/diff"):
            return json_response({"id": "x", "v": "legacy"})
        return json_response({"id": "x", "v": "same"})

    def candidate_handler(request):
        if request.path.startswith("/items/diff"):
            return json_response({"id": "x", "v": "candidate"})
        return json_response({"id": "x", "v": "same"})

    config = plugin_config([operation(mode="cutover")])
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, config=config)

    status, _, body = get(proxy, "/items/1", "cut-1")
    assert (status, json.loads(body)) == (200, {"id": "x", "v": "same"})
    status, _, body = get(proxy, "/items/diff", "cut-2")
    assert (status, json.loads(body)["v"]) == (200, "candidate")  # the candidate answers the client

    c = settle(proxy, 2)
    assert_counters(c, requests=2, served_candidate=2, shadowed=2, matched=1, unmatched=1, unmatched_body=1)
    assert sorted(request_ids(candidate.received)) == ["cut-1", "cut-2"]
    assert [r.header("x-parallel-run-shadow") for r in candidate.received] == [None, None]
    assert sorted(request_ids(legacy.received)) == ["cut-1", "cut-2"]
    assert [r.header("x-parallel-run-shadow") for r in legacy.received] == [OP, OP]
    assert "json_paths=[/v]" in wait_log_line(proxy, "request_id=cut-2")
