"""Routing through the filter: which backend serves each request, what it sees,
and which counters move. Real Envoy, real backends on 127.0.0.1, no mocks.

The served request is the one that carries the route header; a shadow copy
carries `x-parallel-run-shadow` instead (and never the route header). Every
request gets a unique `n=` query parameter so it can be found at the backends.
"""

import itertools
import json
import re
from http.client import HTTPConnection

import pytest

from harness import http, keep_raw_paths, trust_operation_header, wait_until

ROUTE_HEADER = "x-parallel-run-cluster"
SHADOW_MARKER = "x-parallel-run-shadow"
OP_PREFIX = "wasmcustom.parallel_run.operation."
UNKNOWN = "wasmcustom.parallel_run.unknown_operation.requests"

CONFIG = {
    "revision": "routing-test-1",
    "route_header": ROUTE_HEADER,
    # Legacy sets the Host its backend sees; candidate keeps the client's own.
    "legacy": {"cluster": "legacy", "authority": "legacy.internal"},
    "candidate": {"cluster": "candidate"},
    "operation_header": "x-operation-id",
    "defaults": {"mode": "legacy", "shadow_percent": 100, "shadow_timeout_ms": 3000},
    "operations": [
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"},
        {"id": "getSummary", "method": "GET", "path": "/returns/summary", "mode": "cutover"},
        {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "legacy"},
        {"id": "createReturn", "method": "POST", "path": "/returns", "mode": "candidate"},
        {"id": "getReturnItems", "method": "GET", "path": "/returns/{id}/items", "mode": "candidate"},
        {"id": "getRefund", "method": "GET", "path": "/refunds/{id}", "mode": "cutover",
         "candidate": {"cluster": "returns-v2", "authority": "refunds.v2.internal"}},
    ],
}
OPERATION_IDS = [op["id"] for op in CONFIG["operations"]]
MODES = {op["id"]: op["mode"] for op in CONFIG["operations"]}

_seq = itertools.count(1)


def tagged(path):
    """`path` with a unique n= query parameter appended; returns (path, tag)."""
    tag = f"n={next(_seq)}"
    return path + ("&" if "?" in path else "?") + tag, tag


def op_stat(op, counter):
    return f"{OP_PREFIX}{op}.{counter}"


def filter_stats(proxy):
    """All of the filter's counters in one admin call."""
    return proxy.stats(filter=r"^wasmcustom\.parallel_run\.")


def wait_delta(proxy, before, name, delta):
    """Waits until counter `name` is `delta` above its value in `before`; returns all the filter's counters."""
    def moved():
        stats = filter_stats(proxy)
        return stats if stats.get(name, 0) - before.get(name, 0) == delta else None

    return wait_until(moved, message=f"{name} to move by {delta}")


def served(backend, tag):
    """Requests at `backend` served for the request tagged `tag` (not shadow copies)."""
    return [r for r in backend.received if _has_tag(r, tag) and r.header(SHADOW_MARKER) is None]


def shadows(backend, tag):
    return [r for r in backend.received if _has_tag(r, tag) and r.header(SHADOW_MARKER) is not None]


def _has_tag(request, tag):
    query = request.path.partition("?")[2]
    return tag in query.split("&")


def header_values(request, name):
    return [v for k, v in request.headers if k == name.lower()]


def filter_sees_what_the_client_sent(boot):
    """These tests are about the filter's own rules: the operation header
    reaches it (as on a listener only a trusted gateway reaches) and so does the
    path as sent (the shipped bootstraps normalise it first: test_guard.py)."""
    trust_operation_header(boot)
    keep_raw_paths(boot)


@pytest.fixture
def setup(wasm_path, backend, envoy):
    legacy = backend(name="legacy")
    candidate = backend(name="candidate")
    v2 = backend(name="returns-v2")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port, "returns-v2": v2.port},
                  wasm_path=wasm_path, config=CONFIG, tweak=filter_sees_what_the_client_sent)
    return proxy, {"legacy": legacy, "candidate": candidate, "returns-v2": v2}


def send(proxy, method, path, headers=None):
    """Sends a tagged request, checks it was answered 2xx; returns (tag, body as dict)."""
    full, tag = tagged(path)
    status, _, body = http(method, proxy.url(full), headers)
    assert 200 <= status < 300, (method, full, status, body)
    return tag, json.loads(body)


def only_server(backends, tag):
    """The single backend that served `tag`, and that request; fails if none or several did."""
    hits = [(name, r) for name, b in backends.items() for r in served(b, tag)]
    assert len(hits) == 1, f"request {tag} served by {[(n, r.path) for n, r in hits]} (expected exactly one)"
    return hits[0]


# ---------------------------------------------------------------------------
# 1. routing per mode


EXPECTED_SERVER = {"legacy": "legacy", "shadow": "legacy", "cutover": "candidate", "candidate": "candidate"}


@pytest.mark.parametrize("op,method,path", [
    ("listReturns", "GET", "/returns"),          # legacy
    ("getReturn", "GET", "/returns/42"),         # shadow
    ("getSummary", "GET", "/returns/summary"),   # cutover
    ("createReturn", "POST", "/returns"),        # candidate
])
def test_each_mode_is_served_by_the_right_backend(setup, op, method, path):
    proxy, backends = setup
    mode = MODES[op]
    server = EXPECTED_SERVER[mode]
    other = "candidate" if server == "legacy" else "legacy"
    before = filter_stats(proxy)

    tags = []
    for _ in range(3):
        tag, body = send(proxy, method, path)
        assert body["backend"] == server, f"{op} ({mode}) answered by {body['backend']}"
        tags.append(tag)

    for tag in tags:
        name, request = only_server(backends, tag)
        assert name == server, f"{op} ({mode}) served by {name}"
        # Who served is the evidence; the route header itself stops at the route.
        assert header_values(request, ROUTE_HEADER) == []
        assert request.method == method

    after = wait_delta(proxy, before, op_stat(op, "requests"), 3)
    delta = lambda name: after.get(name, 0) - before.get(name, 0)  # noqa: E731
    assert delta(op_stat(op, "served_" + server)) == 3
    assert delta(op_stat(op, "served_" + other)) == 0
    assert delta(UNKNOWN) == 0
    for other_op in OPERATION_IDS:
        if other_op != op:
            assert delta(op_stat(other_op, "requests")) == 0, other_op

    # Shadow copies: shadow and cutover copy every (GET) request to the other
    # side; legacy and candidate modes copy nothing.
    if mode in ("shadow", "cutover"):
        for tag in tags:
            wait_until(lambda: shadows(backends[other], tag), message=f"shadow copy of {tag} at {other}")
            copy = shadows(backends[other], tag)
            assert len(copy) == 1 and copy[0].header(SHADOW_MARKER) == op
            assert header_values(copy[0], ROUTE_HEADER) == []
            assert shadows(backends[server], tag) == []
        wait_delta(proxy, before, op_stat(op, "shadowed"), 3)
    else:
        # A later shadowed request is copied and lands; by then a copy of
        # these would have landed too.
        probe, _ = send(proxy, "GET", "/returns/probe")
        wait_until(lambda: shadows(backends["candidate"], probe), message="probe shadow copy")
        for tag in tags:
            assert [r for b in backends.values() for r in b.received if _has_tag(r, tag)] == served(backends[server], tag)
        assert filter_stats(proxy).get(op_stat(op, "shadowed"), 0) == before.get(op_stat(op, "shadowed"), 0)


def test_per_operation_candidate_override_and_authority(setup):
    proxy, backends = setup
    before = filter_stats(proxy)
    tag, body = send(proxy, "GET", "/refunds/7")
    assert body["backend"] == "returns-v2"
    name, request = only_server(backends, tag)
    assert name == "returns-v2"
    assert header_values(request, ROUTE_HEADER) == []
    assert request.header("host") == "refunds.v2.internal"
    # cutover: legacy keeps getting a copy (with legacy's own authority)
    copy = wait_until(lambda: shadows(backends["legacy"], tag), message="shadow copy at legacy")
    assert copy[0].header(SHADOW_MARKER) == "getRefund"
    assert copy[0].header("host") == "legacy.internal"
    assert shadows(backends["candidate"], tag) == [] and served(backends["candidate"], tag) == []

    after = filter_stats(proxy)
    assert after[op_stat("getRefund", "requests")] - before.get(op_stat("getRefund", "requests"), 0) == 1
    assert after[op_stat("getRefund", "served_candidate")] - before.get(op_stat("getRefund", "served_candidate"), 0) == 1
    assert after.get(op_stat("getRefund", "served_legacy"), 0) == before.get(op_stat("getRefund", "served_legacy"), 0)


def test_authority_sets_host_only_on_the_backend_that_has_one(setup):
    proxy, backends = setup
    # legacy has authority "legacy.internal": a legacy-served request sees it
    tag, _ = send(proxy, "GET", "/returns")
    assert only_server(backends, tag)[1].header("host") == "legacy.internal"
    # unknown operations go to the default legacy backend, with its authority
    tag, _ = send(proxy, "GET", "/nowhere")
    assert only_server(backends, tag)[1].header("host") == "legacy.internal"
    # candidate has none: the client's Host goes through unchanged
    tag, _ = send(proxy, "POST", "/returns", {"Host": "api.example.com"})
    name, request = only_server(backends, tag)
    assert name == "candidate"
    assert request.header("host") == "api.example.com"


# ---------------------------------------------------------------------------
# 2. matching


MATCH_CASES = [
    # (method, path, headers, expected operation or None for unknown)
    ("GET", "/returns/summary", None, "getSummary"),            # literal wins over {id}
    ("GET", "/returns/summar", None, "getReturn"),
    ("GET", "/returns/summary/items", None, "getReturnItems"),  # literal leads nowhere: falls back to {id}
    ("GET", "/returns/9/items", None, "getReturnItems"),
    ("GET", "/returns?id=5&x=/returns/5", None, "listReturns"),  # query string ignored
    ("GET", "/returns/summary?full=1", None, "getSummary"),
    ("GET", "/returns/", None, "listReturns"),                   # one trailing slash ignored
    ("GET", "/returns/summary/", None, "getSummary"),
    ("GET", "/returns/5/", None, "getReturn"),
    ("GET", "/returns//", None, None),                           # an empty segment matches nothing
    ("GET", "/returns/5//", None, None),
    ("GET", "/returns//5", None, None),
    ("POST", "/returns", None, "createReturn"),                  # method matters
    ("GET", "/returns", None, "listReturns"),
    ("DELETE", "/returns", None, None),
    ("POST", "/returns/5", None, None),
    ("GET", "/Returns/5", None, None),                           # case-sensitive segments
    ("GET", "/returns/5/items/extra", None, None),
    ("GET", "/", None, None),
    ("GET", "/elsewhere", None, None),
    # the operation header with a configured id wins over the path
    ("GET", "/returns/5", {"x-operation-id": "getSummary"}, "getSummary"),
    ("GET", "/nowhere", {"X-Operation-Id": "getSummary"}, "getSummary"),
    ("POST", "/nowhere", {"x-operation-id": "createReturn"}, "createReturn"),
    # ... but only when the method agrees: a header naming a POST operation
    # does not turn a GET into it (falls back to matching)
    ("GET", "/returns/5", {"x-operation-id": "createReturn"}, "getReturn"),
    ("GET", "/nowhere", {"x-operation-id": "createReturn"}, None),
    # an unknown id falls back to matching
    ("GET", "/returns/5", {"x-operation-id": "noSuchOperation"}, "getReturn"),
    ("GET", "/nowhere", {"x-operation-id": "noSuchOperation"}, None),
]


def test_matching_rules(setup):
    proxy, backends = setup
    failures = []
    for method, path, headers, expected in MATCH_CASES:
        before = filter_stats(proxy)
        tag, body = send(proxy, method, path, headers)
        after = filter_stats(proxy)
        moved = sorted(name for name in set(after) | set(before)
                       if (name.endswith(".requests")) and after.get(name, 0) != before.get(name, 0))
        want = [UNKNOWN] if expected is None else [op_stat(expected, "requests")]
        server = "legacy" if expected is None else EXPECTED_SERVER[MODES[expected]]
        name, request = only_server(backends, tag)
        got = (moved, [after.get(n, 0) - before.get(n, 0) for n in moved], name, body["backend"],
               header_values(request, ROUTE_HEADER))
        if got != (want, [1], server, server, []):
            failures.append(f"{method} {path} {headers or ''}: expected {expected} on {server}, got counters "
                            f"{got[0]} +{got[1]}, served by {name} (answer from {body['backend']}), route header {got[4]}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------
# 3. the client cannot choose the backend


def raw_request(proxy, method, path, header_pairs):
    """A request with exactly these header lines (repeats allowed, case kept)."""
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.putrequest(method, path)
        for name, value in header_pairs:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("client_headers", [
    [("x-parallel-run-cluster", "candidate")],
    [("X-Parallel-Run-Cluster", "candidate")],
    [("X-PARALLEL-RUN-CLUSTER", "returns-v2")],
    [("x-parallel-run-cluster", "candidate"), ("X-Parallel-Run-Cluster", "candidate")],
    [("x-parallel-run-cluster", "legacy"), ("x-parallel-run-cluster", "candidate")],
    [("x-parallel-run-cluster", "no-such-cluster")],
], ids=["lower", "mixed-case", "upper-other-cluster", "twice", "twice-different", "unknown-cluster"])
def test_client_route_header_is_ignored(setup, client_headers):
    proxy, backends = setup
    before = filter_stats(proxy)
    # a legacy-mode operation, an unknown path, and a cutover one (client asks for legacy there)
    cases = [("/returns", "legacy", client_headers),
             ("/no/such/operation", "legacy", client_headers),
             ("/returns/summary", "candidate", [(n, "legacy") for n, _ in client_headers])]
    for path, expected, pairs in cases:
        full, tag = tagged(path)
        status, body = raw_request(proxy, "GET", full, pairs)
        assert status == 200, (path, pairs, status, body)
        assert json.loads(body)["backend"] == expected, (path, pairs)
        name, request = only_server(backends, tag)
        assert name == expected, (path, pairs)
        assert header_values(request, ROUTE_HEADER) == [], (path, pairs, request.headers)
    after = filter_stats(proxy)
    assert after[UNKNOWN] - before.get(UNKNOWN, 0) == 1
    assert after[op_stat("listReturns", "served_legacy")] - before.get(op_stat("listReturns", "served_legacy"), 0) == 1
    assert after.get(op_stat("listReturns", "served_candidate"), 0) == before.get(op_stat("listReturns", "served_candidate"), 0)


# ---------------------------------------------------------------------------
# 4. Prometheus


def prometheus_value(text, metric, operation_id):
    pattern = re.compile(r'^' + re.escape(metric) + r'\{operation_id="' + re.escape(operation_id) + r'"\} (\d+)$', re.M)
    found = pattern.findall(text)
    assert len(found) == 1, f"{metric}{{operation_id={operation_id!r}}} appears {len(found)} times in /stats/prometheus"
    return int(found[0])


def test_prometheus_has_per_operation_labels(setup):
    proxy, _ = setup
    for i in range(5):
        send(proxy, "GET", f"/returns/{i}")
    for _ in range(2):
        send(proxy, "GET", "/returns/summary")
    text = proxy.prometheus()
    assert prometheus_value(text, "parallel_run_operation_requests", "getReturn") == 5
    assert prometheus_value(text, "parallel_run_operation_served_legacy", "getReturn") == 5
    assert prometheus_value(text, "parallel_run_operation_served_candidate", "getReturn") == 0
    assert prometheus_value(text, "parallel_run_operation_requests", "getSummary") == 2
    assert prometheus_value(text, "parallel_run_operation_served_candidate", "getSummary") == 2
    # An operation without traffic has no counters yet (src/metrics.rs: defined
    # on first use), but its configuration gauges, from the readiness leader.
    assert 'parallel_run_operation_requests{operation_id="listReturns"}' not in text
    def with_list_returns():
        text = proxy.prometheus()
        return text if 'operation_id="listReturns"' in text else None

    text = wait_until(with_list_returns, message="listReturns' configuration gauges")
    assert prometheus_value(text, "parallel_run_operation_mode", "listReturns") == 0
    # the stats tag removed the id from the metric name
    assert "parallel_run_operation_getReturn" not in text


# ---------------------------------------------------------------------------
# 7. the revision is logged when a configuration is applied


def test_revision_is_logged_at_startup(setup):
    proxy, _ = setup
    line = wait_until(lambda: next((l for l in proxy.log_text().splitlines()
                                    if 'parallel-run: configuration applied: revision="routing-test-1"' in l), None),
                      message="configuration applied log line")
    assert "getSummary=cutover" in line and "getReturn=shadow" in line, line
