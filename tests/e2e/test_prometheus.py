"""A real Prometheus (Debian's package) scrapes two real Envoy replicas
running the filter, with the shipped rules generated for a short window:
the fleet numbers it records are the two replicas' counters pooled, and its
alerts fire for what is true and not for what is not.

The rules come from prometheus/generate.py, the script that writes the
shipped rules.yml and alerts.yml, with a 60 s window and a 2 s hold instead
of 10 minutes each: the same expressions, shorter ranges.

Prometheus' increase() extrapolates a counter's growth to the edges of its
range, so a windowed count is exact only up to that extrapolation: at most
about one scrape interval out of the sampled span (here 1 s out of 20 s or
more). The test bounds each recorded value by it, and first checks the raw
scraped counters, which are exact.
"""

import json
import math
import subprocess
import sys
import time

import harness
import pytest
from harness import REPO, Client, operation_counters, settle, wait_until
from metric_names import derived_from_pending, pending_names, selectors
from prometheus_server import Prometheus, generate, label_handler, write_rules

WINDOW_S = 60
INTERVAL_S = 1.0
Z = generate.z_score(0.95)  # the filter's z for readiness.confidence 0.95

CONFIG = {
    "revision": "prometheus-e2e-1",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "shadow", "target_match_rate": 0.9, "min_samples": 20},
    "operations": [
        # Every answer the same on both sides: READY once 20 compared (60 of 60: lower bound 0.94).
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}"},
        # 20 of 20 at a 0.99 target: a match rate of 1, a lower bound of 0.84: not READY.
        {"id": "listReturns", "method": "GET", "path": "/returns", "target_match_rate": 0.99, "min_samples": 10},
        # The candidate differs on /labels/d*: 36 of 60 pooled (0.6), not READY.
        {"id": "getLabel", "method": "GET", "path": "/labels/{id}", "readiness": {"max_latency_ratio": 3}},
    ],
}
OPS = [op["id"] for op in CONFIG["operations"]]

# Per replica: operation -> (requests, of which the candidate answers differently).
# Unequal on purpose, so that pooling (36 / 60 = 0.6) and averaging the
# replicas' rates ((30/40 + 6/20) / 2 = 0.525) give different answers.
TRAFFIC = {
    "a": {"getReturn": (40, 0), "listReturns": (12, 0), "getLabel": (40, 10)},
    "b": {"getReturn": (20, 0), "listReturns": (8, 0), "getLabel": (20, 14)},
}




def path_of(op, i, differs):
    return {"getReturn": f"/returns/{i}", "listReturns": "/returns",
            "getLabel": f"/labels/{'d' if differs else 's'}{i}"}[op]


def send(proxy, traffic):
    with Client(proxy.url()) as client:
        for op, (requests, differing) in traffic.items():
            for i in range(requests):
                status, _, _ = client.get(path_of(op, i, i < differing))
                assert status == 200, (op, i, status)


def wilson_lower(matched, n, z=Z):
    p = matched / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def fingerprint(revision):
    """The revision gauge's value, from the script the README tells operators to run."""
    out = subprocess.run([sys.executable, str(REPO / "envoy" / "istio" / "fingerprint.py"), revision],
                         capture_output=True, text=True, timeout=10, check=True)
    return int(out.stdout)


def start_fleet(backend, envoy, wasm_path, **options):
    legacy, candidate = backend(label_handler("legacy"), "legacy"), backend(label_handler("candidate"), "candidate")
    clusters = {"legacy": legacy.port, "candidate": candidate.port}
    return {name: envoy(clusters, wasm_path=wasm_path, config=CONFIG, concurrency=1, **options) for name in "ab"}


@pytest.fixture
def prometheus(tmp, request):
    """Factory: prometheus(replicas, **rule params) -> a started Prometheus, stopped after the test."""
    started = []

    def make(replicas, **params):
        rules = write_rules(tmp / "rules", window=f"{WINDOW_S}s", **params)
        prom = Prometheus(tmp, [r.admin_url() for r in replicas.values()], rules, interval=f"{INTERVAL_S:g}s")
        started.append(prom)
        return prom

    yield make
    for prom in started:
        prom.stop()
        if getattr(getattr(request.node, "report_call", None), "failed", False):
            print(f"--- prometheus log ({prom.log_file}) ---\n{prom.log_tail(80)}")


def instance(proxy):
    return f"127.0.0.1:{proxy.admin_port}"


def test_fleet_match_rate_is_the_replicas_pooled_and_ready_for_cutover_fires_only_when_ready(
        wasm_path, backend, envoy, prometheus):
    replicas = start_fleet(backend, envoy, wasm_path, ecds=True)
    prom = prometheus(replicas, ready_for="2s")
    # Two scrapes of every counter at 0 before any traffic: increase() then
    # needs no extrapolation towards the start of the window.
    prom.wait_scraped(count=2)
    seen = time.time()

    for name, proxy in replicas.items():
        send(proxy, TRAFFIC[name])
    counters = {}
    for name, proxy in replicas.items():
        for op, (requests, _) in TRAFFIC[name].items():
            settle(proxy, requests, op)
        counters[name] = {op: operation_counters(proxy, op) for op in OPS}
    traffic_done = time.time()

    def pooled(counter, op):
        return sum(counters[name][op][counter] for name in replicas)

    # The filter counted what was sent (the premise of everything below).
    for op in OPS:
        sent = sum(TRAFFIC[name][op][0] for name in replicas)
        differing = sum(TRAFFIC[name][op][1] for name in replicas)
        assert (pooled("shadowed", op), pooled("matched", op), pooled("unmatched", op)) == \
            (sent, sent - differing, differing), (op, counters)

    # 1. What Prometheus scraped equals the replicas' /stats, exactly.
    def scraped():
        got = {c: prom.by(f"sum by (operation_id) (parallel_run_operation_{c})") for c in ("matched", "unmatched")}
        want = {c: {op: float(pooled(c, op)) for op in OPS} for c in ("matched", "unmatched")}
        return got if got == want else None

    wait_until(scraped, 10, 0.2, "Prometheus to scrape the final counters")

    # 2. ReadyForCutover fires for the operation that is READY.
    firing = wait_until(lambda: prom.alerts("ReadyForCutover", "firing"), 20, 0.2, "ReadyForCutover to fire")
    assert [a["labels"]["operation_id"] for a in firing] == ["getReturn"], firing
    assert firing[0]["labels"]["severity"] == "info"
    assert "getReturn is READY for cutover" in firing[0]["annotations"]["summary"]

    # Let the sampled span grow, so that the extrapolation bound is tight.
    time.sleep(max(0.0, seen + 22 - time.time()))
    assert time.time() - traffic_done < WINDOW_S - 10, "the traffic must still be inside the window"
    # All five from one rule evaluation: the same instant, far enough back
    # that the evaluation it selects has finished. (Five queries at "now"
    # once straddled an evaluation: the lower bound of one, the rate of the
    # next, 1e-5 apart as the extrapolated span grew.)
    at = time.time() - 1.5 * INTERVAL_S
    recorded = {
        "comparisons": prom.by("operation_id:parallel_run_comparisons:increase_window", at=at),
        "matched": prom.by("operation_id:parallel_run_matched:increase_window", at=at),
        "rate": prom.by("operation_id:parallel_run_match_rate:ratio_window", at=at),
        "lower": prom.by("operation_id:parallel_run_match_rate_lower:wilson_window", at=at),
        "ready": prom.by("operation_id:parallel_run_ready:window", at=at),
    }
    # Every scraped series has one factor f in [1, f_max] for its growth; the
    # span is at least (at - seen) less two intervals (the last scrape and
    # the last evaluation), with slack for a late scrape.
    f_max = 1 + 1.5 * INTERVAL_S / (at - seen - 2.5 * INTERVAL_S)
    assert f_max < 1.1

    for op in OPS:
        exact_n = pooled("matched", op) + pooled("unmatched", op)
        n, m = recorded["comparisons"][op], recorded["matched"][op]
        assert exact_n <= n <= exact_n * f_max, (op, n, exact_n, f_max)
        assert pooled("matched", op) <= m <= pooled("matched", op) * f_max, (op, m, f_max)
        # The fleet rate lies between the extremes of the two replicas' factors.
        per = [(counters[name][op]["matched"], counters[name][op]["matched"] + counters[name][op]["unmatched"])
               for name in replicas]
        bounds = [(fa * per[0][0] + fb * per[1][0]) / (fa * per[0][1] + fb * per[1][1])
                  for fa, fb in ((1, f_max), (f_max, 1))]
        lo, hi = min(bounds) - 1e-12, max(bounds) + 1e-12
        assert lo <= recorded["rate"][op] <= hi, (op, recorded["rate"][op], lo, hi)
        # The recorded lower bound is Wilson's on the recorded numbers.
        assert recorded["lower"][op] == pytest.approx(wilson_lower(recorded["rate"][op] * n, n), abs=1e-12)

    # The bound is tight enough to tell pooling from averaging the replicas.
    averaged = sum(mt / c for mt, c in [(counters[r]["getLabel"]["matched"],
                                        counters[r]["getLabel"]["matched"] + counters[r]["getLabel"]["unmatched"])
                                       for r in replicas]) / 2
    assert abs(recorded["rate"]["getLabel"] - 0.6) < 0.03 and abs(averaged - 0.525) < 1e-9

    # 3. The verdicts: READY only for getReturn. The others are 0, not
    # absent, and ReadyForCutover is not even pending for them.
    assert recorded["ready"] == {"getReturn": 1, "listReturns": 0, "getLabel": 0}, recorded["ready"]
    assert recorded["rate"]["listReturns"] == 1 and recorded["lower"]["listReturns"] < 0.99
    assert recorded["lower"]["getReturn"] >= 0.9
    active = prom.alerts("ReadyForCutover")
    assert [a["labels"]["operation_id"] for a in active] == ["getReturn"], active
    # No other alert is pending or firing on this healthy fleet, and every rule evaluates.
    assert {a["labels"]["alertname"] for a in prom.alerts()} == {"ReadyForCutover"}, prom.alerts()
    assert prom.rule_health() == {}

    # The thresholds come from the filter's gauges (max_failure_rate: its default).
    assert prom.by("operation_id:parallel_run_max_failure_rate:min") == {op: 0.05 for op in OPS}
    assert prom.by("operation_id:parallel_run_target_match_rate:max") == {"getReturn": 0.9, "listReturns": 0.99,
                                                                          "getLabel": 0.9}

    # The filter's own window (one per replica, 600 s, on its 5 s tick) saw the
    # same comparisons: its gauges, summed over the replicas, are the exact counts.
    def filter_windows():
        got = prom.by("sum by (operation_id) (parallel_run_operation_window_comparisons)")
        want = {op: float(pooled("matched", op) + pooled("unmatched", op)) for op in OPS}
        return got if got == want else None

    wait_until(filter_windows, 15, 0.5, "the filter's window_comparisons gauges, scraped")

    # 4. Every query of the Grafana dashboard runs on this Prometheus, for the
    # operation with differences, and returns data unless it reads a metric
    # the filter has announced but does not export yet (or a rule made of one).
    pending = pending_names() | derived_from_pending()
    empty = []
    for title, expr in dashboard_queries(operation="getLabel"):
        result = prom.query(expr)
        if not result and not {name for name, _ in selectors(expr)} & pending:
            empty.append((title, expr))
    assert empty == []


def dashboard_queries(operation):
    board = json.loads((REPO / "prometheus" / "grafana" / "parallel-run.json").read_text())
    variables = {"$__rate_interval": "5s", "$__range": "1m", "$operation": operation}
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            queries.append((panel["title"], expr))
    assert len(queries) >= 25
    return queries


def test_config_rejected_and_config_drift_from_two_real_replicas(wasm_path, backend, envoy, prometheus):
    replicas = start_fleet(backend, envoy, wasm_path, ecds=True)
    a, b = replicas["a"], replicas["b"]
    prom = prometheus(replicas, ready_for="2s", alert_for={"ConfigDrift": "2s"})
    prom.wait_scraped(count=3)

    first = fingerprint(CONFIG["revision"])
    assert prom.by("parallel_run_config_revision", "instance") == {instance(a): first, instance(b): first}
    assert prom.alerts() == [], prom.alerts()

    # Envoy on b refuses a configuration (the filter's own validation): ConfigRejected for b only.
    resource = json.loads(b.ecds_file.read_text())
    bad = dict(CONFIG, revision="prometheus-e2e-bad", operations=[dict(CONFIG["operations"][0], path="/returns/{id")])
    harness.set_plugin_config(resource["resources"][0]["typed_config"], bad)
    before = b.ecds_counts()
    b.write_ecds(json.dumps(resource))
    b.wait_config_rejected(before)
    rejected = wait_until(lambda: prom.alerts("ConfigRejected", "firing"), 10, 0.2, "ConfigRejected to fire")
    assert [alert["labels"]["instance"] for alert in rejected] == [instance(b)], rejected
    # The refused push left b on the first revision: no drift.
    assert prom.by("parallel_run_config_revision", "instance")[instance(b)] == first

    # b accepts a new revision, a does not get it: ConfigDrift after its hold.
    second = dict(CONFIG, revision="prometheus-e2e-2")
    before = b.ecds_counts()
    result = b.push_config(second)
    assert result.returncode == 0, result
    b.wait_config_applied(before)
    drift = wait_until(lambda: prom.alerts("ConfigDrift", "firing"), 15, 0.2, "ConfigDrift to fire")
    assert len(drift) == 1 and float(drift[0]["value"]) == 2, drift
    assert prom.by("parallel_run_config_revision", "instance") == {instance(a): first,
                                                                    instance(b): fingerprint(second["revision"])}

    # a catches up: the drift resolves.
    before = a.ecds_counts()
    assert a.push_config(second).returncode == 0
    a.wait_config_applied(before)
    wait_until(lambda: not prom.alerts("ConfigDrift"), 15, 0.2, "ConfigDrift to resolve")
    assert prom.rule_health() == {}
