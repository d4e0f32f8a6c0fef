"""One list of counters: the filter (core/src/counters.rs) is the source;
the harness's list and the README's metrics reference are checked against
what the real filter defines in a real Envoy."""

import re

from harness import OPERATION_COUNTERS, OPERATION_GAUGES, REPO, Client, settle, wait_until
from testbed.counters import by_operation

CONFIG = {
    "revision": "names",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"},
                   {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "legacy"}],
}
# Defined by the leader before any comparison (src/metrics.rs OUTCOMES).
OUTCOMES = {"shadowed", "matched", "unmatched", "failed", "abandoned", "routing_mismatch"}
CONFIG_GAUGES = {"mode", "target_match_rate_bp", "min_samples", "window_s", "max_failure_rate_bp",
                 "max_latency_ratio_bp"}


def prometheus_types(text, prefix):
    """{metric name: type} from the `# TYPE` lines of /stats/prometheus."""
    types = {}
    for match in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if match.group(1).startswith(prefix):
            types[match.group(1)[len(prefix):]] = match.group(2)
    return types


def test_the_harness_and_the_readme_name_exactly_the_counters_the_filter_defines(wasm_path, backend, envoy):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)

    def metrics():
        types = prometheus_types(proxy.prometheus(), "parallel_run_operation_")
        return ({name for name, kind in types.items() if kind == "counter"},
                {name for name, kind in types.items() if kind == "gauge"},
                {name for name, kind in types.items() if kind == "histogram"})

    # Before any traffic (src/metrics.rs): the readiness leader's first tick
    # sets every operation's mode gauge, the threshold gauges and the outcome
    # counters of the one that shadows (at 0, for Prometheus' increase()); the legacy
    # operation, without traffic, has no other stat.
    def published():
        ops = by_operation(proxy)
        ready = {"getReturn", "listReturns"} <= {op for op, stats in ops.items() if "mode" in stats}
        return ops if ready and OUTCOMES <= set(ops["getReturn"]) else None

    ops = wait_until(published, timeout=10, message="the configuration gauges")
    # Nothing judges an operation that does not shadow: its mode is all it has.
    assert set(ops["listReturns"]) == {"mode"}, ops["listReturns"]
    assert CONFIG_GAUGES <= set(ops["getReturn"]), ops["getReturn"]
    assert OUTCOMES <= set(ops["getReturn"]) and "requests" not in ops["getReturn"], ops["getReturn"]
    assert not any(ops["getReturn"][name] for name in OUTCOMES)
    # One shadowed request defines the counters, both histograms, and the
    # leader's next evaluation the window gauges (`ready` alone before: the
    # others would read 0, as an absent one does).
    with Client(proxy.url("")) as client:
        status, _, _ = client.get("/returns/1")
        assert status == 200
    settle(proxy, 1, "getReturn")
    wait_until(lambda: "window_comparisons" in metrics()[1], timeout=15, message="the window gauges")
    counters, gauges, histograms = metrics()
    # The two backends answer differently: the request also counted its
    # differing field (`unmatched_path`, with a `diff_path` label).
    assert "unmatched_path" in counters
    assert counters - {"unmatched_path"} == set(OPERATION_COUNTERS), (counters ^ set(OPERATION_COUNTERS))
    # The same field's count since this revision began (`unmatched_path_current`,
    # labelled like `unmatched_path`); the current overflow gauge appears only
    # once a field found no slot, or a new revision reset the list.
    assert "unmatched_path_current" in gauges
    fixed = set(OPERATION_GAUGES) - {"unmatched_path_overflow_current"}
    assert gauges - {"unmatched_path_current"} == fixed, (gauges ^ fixed)
    assert histograms == {"latency_ms"}, "one histogram, the side a label"

    readme = (REPO / "README.md").read_text()
    metrics = readme.split("## Metrics reference", 1)[1].split("\n## ", 1)[0]
    # Every word of every code span: `parallel_run.operation.<id>.mode` names `mode`.
    documented = {word for span in re.findall(r"`([^`]+)`", metrics) for word in re.findall(r"[a-z0-9_]+", span)}
    missing = (counters | gauges | histograms) - documented
    assert not missing, f"README's metrics reference does not name {sorted(missing)}"
