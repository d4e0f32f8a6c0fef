"""The three evaluations of readiness agree on the same traffic: a real
Prometheus scrapes two real Envoy replicas running the filter; traffic makes
one operation READY and another not. Then

1. `parallel-run-ctl status` on each Envoy (the filter's window gauges),
2. `parallel-run-ctl status --prometheus` (PromQL over the pooled counters,
   judged by core's rule), and
3. the rule as the README defines it, applied here to the replicas' counters
   summed (the test's own oracle)

give the same comparisons and the same verdicts; and `cutover --prometheus`
refuses the operation that is not READY and cuts over the one that is, with
the fleet named in the audit record's evidence. After that cutover one
replica runs a new revision and the other does not: `status --prometheus`
says so loudly (config drift, replicas in different modes).

increase() extrapolates a counter's growth to the end of its range (here by
at most one scrape interval out of the sampled span), so Prometheus' counts
are exact only up to that; the CLI rounds to whole comparisons. The test
bounds them by the same factor as tests/e2e/test_prometheus.py.
"""

import json
import math
import socket
import subprocess
import time

from harness import CTL_PATH, WINDOW_START_S, Client, operation_counters, settle, wait_ready, wait_until
from prometheus_server import Prometheus, generate, label_handler, write_rules

INTERVAL_S = 0.5
WINDOW = "10m"  # longer than the test: every counter's first sample (0) is inside it
Z = generate.z_score(0.95)
TARGET = 0.85
MIN_SAMPLES = 20

CONFIG = {
    "revision": "fleet-e2e-1",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    # ready_after_s 0: the filter's gauge is the rule met now, as the fleet verdict is.
    "defaults": {"mode": "shadow", "target_match_rate": TARGET, "min_samples": MIN_SAMPLES,
                 "readiness": {"ready_after_s": 0}},
    "operations": [
        # Every answer the same: 30 and 25 of them are each READY (lower bounds 0.886 and
        # 0.867 >= 0.85), and 55 pooled (0.935).
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}"},
        # The candidate differs on /labels/d*: 22/30 and 8/20, 30/50 pooled: never READY.
        {"id": "getLabel", "method": "GET", "path": "/labels/{id}"},
        # No traffic at all: counters at 0, nothing to judge, not READY.
        {"id": "listReturns", "method": "GET", "path": "/returns"},
    ],
}
OPS = [op["id"] for op in CONFIG["operations"]]
TRAFFIC = {
    "a": {"getReturn": (30, 0), "getLabel": (30, 8)},
    "b": {"getReturn": (25, 0), "getLabel": (20, 12)},
}




def path_of(op, i, differs):
    return {"getReturn": f"/returns/{i}", "getLabel": f"/labels/{'d' if differs else 's'}{i}"}[op]


def ctl(*args, timeout=60):
    assert CTL_PATH.exists(), f"{CTL_PATH} not found: cargo build --release -p parallel-run-ctl"
    return subprocess.run([str(CTL_PATH), *args], capture_output=True, text=True, timeout=timeout)


def rule(matched, unmatched, shadowed, failed):
    """The README's rule ("Readiness"), independently of the code under test:
    comparisons >= min_samples, Wilson lower bound at 0.95 >= target,
    failed / shadowed <= 0.05 (the default max_failure_rate)."""
    n = matched + unmatched
    if n < MIN_SAMPLES:
        return False, 0.0
    p = matched / n
    lower = (p + Z * Z / (2 * n) - Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))) / (1 + Z * Z / n)
    failure = failed / shadowed if shadowed else 0.0
    return lower >= TARGET and failure <= 0.05, lower


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gauges_promql_and_the_rule_agree_and_cutover_is_guarded_by_the_fleet(
        wasm_path, backend, envoy, tmp):
    legacy, candidate = backend(label_handler("legacy"), "legacy"), backend(label_handler("candidate"), "candidate")
    clusters = {"legacy": legacy.port, "candidate": candidate.port}
    replicas = {name: envoy(clusters, wasm_path=wasm_path, config=CONFIG, concurrency=1, ecds=True) for name in "ab"}
    prom = Prometheus(tmp, [r.admin_url() for r in replicas.values()], write_rules(tmp / "rules", window="60s"),
                      interval=f"{int(INTERVAL_S * 1000)}ms")
    try:
        run(replicas, prom)
    except AssertionError:
        print(f"--- prometheus log ---\n{prom.log_tail(60)}")
        raise
    finally:
        prom.stop()


def run(replicas, prom):
    prom.wait_scraped(count=3)
    time.sleep(WINDOW_START_S)  # the filter's windows start after the configuration
    seen = time.time()
    for name, proxy in replicas.items():
        with Client(proxy.url()) as client:
            for op, (requests, differing) in TRAFFIC[name].items():
                for i in range(requests):
                    assert client.get(path_of(op, i, i < differing))[0] == 200
    counters = {}
    for name, proxy in replicas.items():
        for op, (requests, _) in TRAFFIC[name].items():
            settle(proxy, requests, op)
        counters[name] = {op: operation_counters(proxy, op) for op in OPS}

    def pooled(counter, op):
        return sum(counters[name][op][counter] for name in replicas)

    # 3. The rule on the summed counters: the oracle.
    oracle = {}
    for op in OPS:
        ready, _ = rule(pooled("matched", op), pooled("unmatched", op), pooled("shadowed", op), pooled("failed", op))
        oracle[op] = {"comparisons": pooled("matched", op) + pooled("unmatched", op), "ready": ready}
    assert {op: o["ready"] for op, o in oracle.items()} == {"getReturn": True, "getLabel": False,
                                                           "listReturns": False}, oracle
    assert oracle["getReturn"]["comparisons"] == 55 and oracle["getLabel"]["comparisons"] == 50

    # 1. Each Envoy's status, from its gauges (after the filter's next evaluation).
    for name, proxy in replicas.items():
        wait_ready(proxy, "getReturn", ready=1, comparisons=TRAFFIC[name]["getReturn"][0])
        wait_ready(proxy, "getLabel", ready=0, comparisons=TRAFFIC[name]["getLabel"][0])
    gauges = {}
    for name, proxy in replicas.items():
        result = ctl("status", "--ecds", str(proxy.ecds_file), "--admin", proxy.admin_url(), "-o", "json")
        assert result.returncode == 0, result.stderr
        gauges[name] = {o["id"]: o for o in json.loads(result.stdout)["operations"]}
        for op in OPS:
            assert gauges[name][op]["basis"] == "window", gauges[name][op]
            # Per replica, the same verdict as the fleet's (the traffic is chosen so).
            assert gauges[name][op]["ready"] == oracle[op]["ready"], (name, op, gauges[name][op])
    for op in OPS:
        summed = sum(gauges[name][op]["window"]["comparisons"] for name in replicas)
        assert summed == oracle[op]["comparisons"], (op, summed, oracle[op])

    # 2. The fleet verdict from Prometheus, once it has scraped the final counters.
    def scraped():
        got = prom.by("sum by (operation_id) (parallel_run_operation_matched)")
        return got if got == {op: float(pooled("matched", op)) for op in OPS} else None

    wait_until(scraped, 10, 0.2, "Prometheus to scrape the final counters")
    time.sleep(max(0.0, seen + 15 - time.time()))  # a sampled span long enough for a tight bound
    a = replicas["a"]
    where = ["--ecds", str(a.ecds_file), "--admin", a.admin_url()]
    result = ctl("status", *where, "--prometheus", prom.url(), "--window", WINDOW, "-o", "json")
    assert result.returncode == 0, result.stderr
    fleet = json.loads(result.stdout)
    f_max = 1 + 1.5 * INTERVAL_S / (time.time() - seen - 2.5 * INTERVAL_S)
    assert f_max < 1.1
    by_id = {o["id"]: o for o in fleet["operations"]}
    assert list(by_id) == OPS, "no operation dropped, absent traffic included"
    assert fleet["window_s"] == 600 and fleet["fleet"]["replicas"] == 2 and fleet["fleet"]["drift"] is False
    for op in OPS:
        o, exact = by_id[op], oracle[op]["comparisons"]
        assert exact <= o["comparisons"] <= round(exact * f_max) + 1, (op, o["comparisons"], exact, f_max)
        assert o["ready"] == oracle[op]["ready"], (op, o)
        assert o["basis"] == "prometheus" and o["replicas"] == 2, o
        assert o["revisions"] == [{"fingerprint": o["revisions"][0]["fingerprint"], "revision": CONFIG["revision"],
                                   "replicas": 2}], o
        # The lower bound shown is the rule's on the counts shown.
        _, lower = rule(o["matched"], o["unmatched"], o["shadowed"], o["failed"])
        if o["comparisons"] >= MIN_SAMPLES:
            assert abs(o["match_rate_lower"] - lower) < 1e-12, (op, o, lower)
    assert by_id["getReturn"]["verdict"] == "ready"
    assert by_id["getLabel"]["verdict"] == "below_target"
    assert by_id["listReturns"]["verdict"] == "collecting" and by_id["listReturns"]["comparisons"] == 0

    text = ctl("status", *where, "--prometheus", prom.url(), "--window", WINDOW)
    assert text.returncode == 0, text.stderr
    assert f"fleet: 2 replicas, 2 on \"{CONFIG['revision']}\" (this file's)" in text.stdout, text.stdout
    assert "READY (lower bound" in text.stdout

    # --exit-code: 3 (not ready: getLabel, listReturns); 0 for the ready one alone; 4 when Prometheus is unreachable.
    gate = ctl("status", *where, "--prometheus", prom.url(), "--window", WINDOW, "--exit-code")
    assert gate.returncode == 3 and "not ready: getLabel, listReturns" in gate.stderr, gate
    gate = ctl("status", "getReturn", *where, "--prometheus", prom.url(), "--window", WINDOW, "--exit-code")
    assert gate.returncode == 0, gate
    down = ctl("status", *where, "--prometheus", f"http://127.0.0.1:{closed_port()}", "--exit-code")
    assert down.returncode == 4, down
    assert "query `sum by (operation_id) (increase(parallel_run_operation_shadowed[600s]))`" in down.stderr, down

    # watch --prometheus: the fleet's verdict is what it acts on (dry run: nothing written).
    watch = ctl("watch", "getReturn", "getLabel", *where, "--prometheus", prom.url(), "--window", WINDOW,
                "--interval", "1s", "--ready-for", "0s", "--duration", "20s", "--max-changes", "1", "--dry-run",
                "-o", "json")
    assert watch.returncode == 0, watch.stderr
    events = [json.loads(line) for line in watch.stdout.splitlines()]
    would = [e for e in events if e["event"] == "would_change"]
    assert [(e["action"], e["unit"]) for e in would] == [("cutover", "getReturn")], events
    assert "READY (lower bound" in would[0]["why"], would

    # The cutover guard, on the fleet's verdict.
    before = a.ecds_file.read_text()
    refused = ctl("cutover", "getLabel", "--reason", "looks fine", *where, "--prometheus", prom.url(),
                  "--window", WINDOW)
    assert refused.returncode == 1, refused
    assert "getLabel is not READY: below target" in refused.stderr, refused.stderr
    assert a.ecds_file.read_text() == before, "nothing written"

    unreachable = ctl("cutover", "getReturn", "--reason", "fleet ready", *where, "--prometheus",
                      f"http://127.0.0.1:{closed_port()}")
    assert unreachable.returncode == 1, unreachable
    assert "the fleet's readiness (nothing written): Prometheus at" in unreachable.stderr, unreachable.stderr
    assert "query `sum by (operation_id) (increase(parallel_run_operation_shadowed[600s]))`" in unreachable.stderr
    assert a.ecds_file.read_text() == before, "nothing written"

    done = ctl("cutover", "getReturn", "--reason", "fleet ready", *where, "--prometheus", prom.url(),
               "--window", WINDOW, "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["written"] is True and report["confirmation"]["outcome"] == "active", report
    audit = [json.loads(line) for line in a.ecds_file.with_name("parallel-run.audit.jsonl").read_text().splitlines()]
    change = [r for r in audit if r["kind"] == "change"][-1]
    assert change["action"] == "cutover" and change["reason"] == "fleet ready", change
    evidence = change["evidence"][0]
    assert evidence["basis"] == "prometheus" and evidence["verdict"] == "ready", evidence
    assert evidence["source"].startswith(f"Prometheus {prom.url().rstrip('/')} (2 of 2 replicas"), evidence
    assert evidence["fleet"]["window_s"] == 600 and evidence["fleet"]["replicas"] == 2, evidence
    assert evidence["fleet"]["prometheus"] == prom.url().rstrip("/")

    # Replica a now runs a new revision with getReturn in cutover; b does not: loud drift.
    # Each reading is one instant (ctl's unit test); across a push, a VM sets
    # its revision gauge before the readiness leader republishes the modes,
    # so a scrape may fall between the two: wait for the scrape after it.
    def drifted():
        r = ctl("status", "--ecds", str(a.ecds_file), "--admin", a.admin_url(), "--prometheus", prom.url(),
                "-o", "json")
        document = json.loads(r.stdout)
        get = {o["id"]: o for o in document["operations"]}["getReturn"]
        return document if document["fleet"]["drift"] and get["verdict"] == "mode_drift" else None

    document = wait_until(drifted, 15, 0.5, "Prometheus to see the two revisions")
    get = {o["id"]: o for o in document["operations"]}["getReturn"]
    assert get["verdict"] == "mode_drift" and get["ready"] is False and get["drift"] is True, get
    text = ctl("status", "--ecds", str(a.ecds_file), "--admin", a.admin_url(), "--prometheus", prom.url())
    assert "CONFIG DRIFT: 2 replicas run 2 revisions" in text.stdout, text.stdout
    assert "MODE DRIFT: replicas run it in shadow and cutover" in text.stdout, text.stdout
    assert any(line.startswith("getReturn") and "shadow+cutover" in line for line in text.stdout.splitlines()), text.stdout
