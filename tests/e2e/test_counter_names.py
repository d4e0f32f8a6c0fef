"""One list of counters: the filter (core/src/counters.rs) is the source;
the harness's list and the README's metrics reference are checked against
what the real filter defines in a real Envoy."""

import re

from harness import OPERATION_COUNTERS, OPERATION_GAUGES, REPO

CONFIG = {
    "revision": "names",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"}],
}


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
    # The filter defines every per-operation metric when it applies the
    # configuration, before any traffic.
    types = prometheus_types(proxy.prometheus(), "parallel_run_operation_")
    counters = {name for name, kind in types.items() if kind == "counter"}
    gauges = {name for name, kind in types.items() if kind == "gauge"}
    assert counters == set(OPERATION_COUNTERS), (counters ^ set(OPERATION_COUNTERS))
    assert gauges == set(OPERATION_GAUGES), (gauges ^ set(OPERATION_GAUGES))
    histograms = {name for name, kind in types.items() if kind == "histogram"}
    assert histograms == {"latency_ms"}, "one histogram, the side a label"

    readme = (REPO / "README.md").read_text()
    metrics = readme.split("## Metrics reference", 1)[1].split("\n## ", 1)[0]
    # Every word of every code span: `parallel_run.operation.<id>.mode` names `mode`.
    documented = {word for span in re.findall(r"`([^`]+)`", metrics) for word in re.findall(r"[a-z0-9_]+", span)}
    missing = (counters | gauges | histograms) - documented
    assert not missing, f"README's metrics reference does not name {sorted(missing)}"
