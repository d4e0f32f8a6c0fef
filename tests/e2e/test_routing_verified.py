"""Routing is verified, not assumed: the filter reads back the cluster Envoy
routed each request to and counts `routing_mismatch` when a route ignores
its choice (a missing route patch makes a cutover a silent no-op)."""

from harness import connection_manager, http, operation_counters, wait_until

CONFIG = {
    "revision": "routing",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "operations": [
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "cutover"},
        {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "shadow"},
    ],
}


def route_ignoring_the_header(boot):
    """The first route sends everything to legacy, whatever the filter chose."""
    routes = connection_manager(boot)["route_config"]["virtual_hosts"][0]["routes"]
    routes[0]["route"] = {"cluster": "legacy", "timeout": "15s"}


def start(backend, envoy, wasm_path, tweak=None):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path,
                  config=CONFIG, tweak=tweak)
    return proxy, legacy, candidate


def served_by(backend):
    return [r for r in backend.received if r.header("x-parallel-run-shadow") is None]


def test_a_route_that_honours_the_header_counts_no_mismatch(backend, envoy, wasm_path):
    proxy, legacy, candidate = start(backend, envoy, wasm_path)
    for n in range(5):
        assert http("GET", proxy.url(f"/returns/{n}"))[0] == 200
        assert http("GET", proxy.url("/returns"))[0] == 200
    assert len(served_by(candidate)) == 5 and len(served_by(legacy)) == 5
    for op in ("getReturn", "listReturns"):
        c = wait_until(lambda op=op: (c := operation_counters(proxy, op))["requests"] == 5 and c,
                       message=f"{op} requests")
        assert c["routing_mismatch"] == 0, c


def test_a_route_that_ignores_the_header_is_counted_as_a_routing_mismatch(backend, envoy, wasm_path):
    proxy, legacy, candidate = start(backend, envoy, wasm_path, tweak=route_ignoring_the_header)
    for n in range(5):
        assert http("GET", proxy.url(f"/returns/{n}"))[0] == 200
    # The silent no-op the counter exists for: the filter chose the
    # candidate, Envoy served every request from legacy.
    assert served_by(candidate) == []
    assert len(served_by(legacy)) == 5
    c = wait_until(lambda: (c := operation_counters(proxy, "getReturn"))["routing_mismatch"] == 5 and c,
                   message="routing_mismatch == 5")
    assert c["served_candidate"] == 5
    # An operation served by legacy is routed where chosen, even here.
    for n in range(3):
        assert http("GET", proxy.url("/returns"))[0] == 200
    c = wait_until(lambda: (c := operation_counters(proxy, "listReturns"))["requests"] == 3 and c,
                   message="listReturns requests")
    assert c["routing_mismatch"] == 0
    text = proxy.prometheus()
    assert 'parallel_run_operation_routing_mismatch{operation_id="getReturn"} 5' in text
