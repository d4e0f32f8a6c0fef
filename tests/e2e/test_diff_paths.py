"""The `max_diff_paths` slots belong to a configuration revision, end to
end: a real Envoy with the built filter (ECDS), real backends on 127.0.0.1.
After a push under a new revision the list starts empty, the old list's
`unmatched_path_current` gauges read 0 while the cumulative counters keep
their counts, and a field that found no slot before gets one.
"""

import json

from harness import OPERATION_STATS, Response, assert_counters, http, settle, wait_until

OP = "bounded"


def config(revision):
    return {
        "revision": revision,
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000, "name_keys": True},
        "operations": [{"id": OP, "method": "GET", "path": "/b/{id}", "mode": "shadow", "max_diff_paths": 1}],
    }


def answer(value):
    def handle(request):
        # /b/a/… differs in "a", /b/z/… in "z".
        field = request.path.split("/")[2]
        return Response(200, [("content-type", "application/json")], json.dumps({field: value}).encode())
    return handle


def per_field(proxy, name):
    prefix = f"{OPERATION_STATS}{OP}.{name}."
    return {k[len(prefix):]: v for k, v in proxy.stats(filter="^" + prefix.replace(".", r"\.")).items()}


def test_a_new_revision_starts_a_fresh_list_of_fields(backend, envoy, wasm_path):
    legacy, candidate = backend(answer(1), name="legacy"), backend(answer(2), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, ecds=True,
                  config=config("r1"))
    assert http("GET", proxy.url("/b/a"), {"x-request-id": "a-1"})[0] == 200
    settle(proxy, 1, OP)
    assert http("GET", proxy.url("/b/z"), {"x-request-id": "z-1"})[0] == 200
    c = settle(proxy, 2, OP)
    assert_counters(c, requests=2, served_legacy=2, shadowed=2, unmatched=2, unmatched_body=2,
                    unmatched_path_overflow=1)
    assert per_field(proxy, "unmatched_path") == {"/a": 1}
    assert per_field(proxy, "unmatched_path_current") == {"/a": 1}

    before = proxy.ecds_counts()
    result = proxy.push_config(config("r2"))
    assert result.returncode == 0, result
    proxy.wait_config_applied(before)
    # The readiness leader replaces the lists of operations without traffic
    # (src/diff_paths.rs): at its configuration, or at its next tick (1 s).
    wait_until(lambda: per_field(proxy, "unmatched_path_current") == {"/a": 0}, timeout=5,
               message="r1's list is gone")
    assert proxy.stats()[f"{OPERATION_STATS}{OP}.unmatched_path_overflow_current"] == 0

    assert http("GET", proxy.url("/b/z"), {"x-request-id": "z-2"})[0] == 200
    settle(proxy, 3, OP)
    assert per_field(proxy, "unmatched_path") == {"/a": 1, "/z": 1}, "counters stay cumulative"
    assert per_field(proxy, "unmatched_path_current") == {"/a": 0, "/z": 1}, "/z got the slot"
