"""Host scoping on a shared gateway: requests to hosts the configuration
does not name pass through the filter untouched, on the real Envoy."""

from harness import http, operation_counters, wait_until

CONFIG = {
    "revision": "hosts",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "hosts": ["api.example", "*.returns.example"],
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "cutover"}],
}


def served(backend):
    return [r for r in backend.received if r.header("x-parallel-run-shadow") is None]


def test_only_the_configured_hosts_are_routed_shadowed_and_counted(backend, envoy, wasm_path):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
    for host in ("api.example", "eu.returns.example:8080"):
        assert http("GET", proxy.url("/returns/1"), headers={"host": host})[0] == 200
    # Another tenant of the gateway, even with a forged route header.
    for host in ("other.example", "returns.example.evil"):
        assert http("GET", proxy.url("/returns/2"), headers={"host": host, "x-parallel-run-cluster": "candidate"})[0] == 200
    c = wait_until(lambda: (c := operation_counters(proxy, "getReturn"))["shadowed"] == 2 and c, message="2 shadows")
    assert c["requests"] == 2 and c["served_candidate"] == 2
    assert [r.path for r in served(candidate)] == ["/returns/1", "/returns/1"]
    # Out of scope: untouched by the filter, served by the gateway's own
    # route (here the fallback to legacy), never shadowed, counted nowhere.
    assert [r.path for r in served(legacy)] == ["/returns/2", "/returns/2"]
    assert all(r.header("x-parallel-run-cluster") is None for r in served(legacy)), "the forged header is stripped"
    assert proxy.counter("wasmcustom.parallel_run.unknown_operation.requests") == 0
