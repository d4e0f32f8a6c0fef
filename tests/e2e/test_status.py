"""`parallel-run-ctl status` against a real Envoy: its numbers are the admin
endpoint's counters, and its verdicts are the filter's windowed readiness
rule: READY exactly where the filter's `ready` gauge is 1, the evidence from
its window gauges.

Five operations, each driven into one verdict by a bounded, deterministic
amount of traffic (every request is shadowed, the candidate differs or fails
for chosen ids): READY, below target, collecting, failing, not shadowed.
"""

import json
import re
import subprocess
import time

from harness import CTL_PATH, OPERATION_GAUGES, free_port, http, json_response, wait_until

STAT_PREFIX = "wasmcustom.parallel_run.operation."
OUTCOMES = ("matched", "unmatched", "failed", "abandoned")
SKIPS = ("skipped_unsafe_method", "skipped_sampled_out", "skipped_body_too_large", "skipped_overload")
COLUMNS = ["ID", "MODE", "REQUESTS", "SHADOWED", "MATCHED", "UNMATCHED", "FAILED", "ABANDONED", "SKIPPED",
           "IN-FLIGHT", "RATE", "TARGET", "VERDICT"]

CONFIG = {
    "revision": "status-1",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    # A window far longer than the test, judged at once (ready_after_s 0).
    "defaults": {"mode": "shadow", "target_match_rate": 0.95, "min_samples": 20, "name_keys": True,
                 "readiness": {"window_s": 60, "ready_after_s": 0}},
    "operations": [
        {"id": "getItem", "method": "GET", "path": "/items/{id}", "target_match_rate": 0.8},
        {"id": "getOrder", "method": "GET", "path": "/orders/{id}"},
        {"id": "listItems", "method": "GET", "path": "/items", "min_samples": 100},
        {"id": "getUser", "method": "GET", "path": "/users/{id}", "min_samples": 2},
        {"id": "createItem", "method": "POST", "path": "/items", "mode": "legacy"},
    ],
}

# path -> how many requests; ids 0..n-1 for templated paths
TRAFFIC = {"/items/": 40, "/orders/": 40, "/items": 10, "/users/": 10}
POSTS = 5
UNKNOWN = 3
SHADOWED = {"getItem": 40, "getOrder": 40, "listItems": 10, "getUser": 10, "createItem": 0}
EXPECTED_VERDICTS = {
    "getItem": "ready",           # 38/40: Wilson lower bound 83.5% >= 80% over 40 >= 20
    "getOrder": "below_target",   # 30/40: lower bound 59.8% < 95%
    "listItems": "collecting",    # 10 < 100 comparisons
    "getUser": "failing",         # 8 of 10 shadows failed (503) > 5%
    "createItem": "not_shadowed",  # mode legacy
}


def legacy_handler(request):
    return json_response({"path": request.path.split("?")[0], "v": 1})


def candidate_handler(request):
    path = request.path.split("?")[0]
    segments = path.strip("/").split("/")
    n = int(segments[1]) if len(segments) > 1 and segments[1].isdigit() else -1
    if segments[0] == "items" and n >= 0 and n % 20 == 0:  # 2 of 40 differ
        return json_response({"path": path, "v": 2})
    if segments[0] == "orders" and n % 4 == 0:  # 10 of 40 differ
        return json_response({"path": path, "v": 2})
    if segments[0] == "users" and n >= 2:  # 8 of 10 fail
        return json_response({"error": "not implemented"}, status=503)
    return json_response({"path": path, "v": 1})


def counters(proxy):
    """{operation id: {counter: value}} for the configured operations, from the admin endpoint."""
    stats = proxy.stats(filter="^" + re.escape(STAT_PREFIX))
    result = {}
    for op in (o["id"] for o in CONFIG["operations"]):
        prefix = STAT_PREFIX + op + "."
        # Fixed counters only: the per-field ones (unmatched_path.<field>) hold
        # a dot, and the gauges are not counters (see test_counter_names.py).
        result[op] = {name[len(prefix):]: value for name, value in stats.items()
                      if name.startswith(prefix) and "." not in name[len(prefix):]
                      and name[len(prefix):] not in OPERATION_GAUGES}
    return result


def diff_paths(proxy, op):
    """The non-zero `unmatched_path.<field>` counters of `op` as {field: value}."""
    prefix = STAT_PREFIX + op + ".unmatched_path."
    return {name[len(prefix):]: value for name, value in proxy.stats(filter="^" + re.escape(prefix)).items() if value}


def drained(proxy):
    now = counters(proxy)
    for op, shadowed in SHADOWED.items():
        c = now[op]
        if c.get("shadowed", 0) != shadowed or sum(c.get(k, 0) for k in OUTCOMES) != shadowed:
            return None
    return now


def window_gauges(proxy):
    """{operation id: {gauge: value}} of the readiness window, from the admin endpoint."""
    stats = proxy.stats(filter="^" + re.escape(STAT_PREFIX))
    return {op["id"]: {g: stats.get(f"{STAT_PREFIX}{op['id']}.{g}") for g in OPERATION_GAUGES}
            for op in CONFIG["operations"]}


def window_settled(proxy, live):
    """The gauges once the filter's window holds every outcome counted."""
    g = window_gauges(proxy)
    for op_id, c in live.items():
        if SHADOWED[op_id] and (g[op_id]["window_comparisons"] != c["matched"] + c["unmatched"]
                                or g[op_id]["window_failed"] != c["failed"]):
            return None
    return g


def without_held_for(summary):
    """A READY summary says for how long; that moves between two reads."""
    return re.sub(r", for \d+ s\)$", ", for N s)", summary)


def run_ctl(*args):
    assert CTL_PATH.exists(), f"{CTL_PATH} not found: cargo build --release -p parallel-run-ctl"
    return subprocess.run([str(CTL_PATH), *args], capture_output=True, text=True, timeout=30)


def parse_table(stdout):
    """The operation rows of the text output as {id: {column: cell}}."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("ID "))
    assert lines[header].split() == COLUMNS, lines[header]
    rows = {}
    for line in lines[header + 1:header + 1 + len(CONFIG["operations"])]:
        cells = line.split(None, len(COLUMNS) - 1)
        rows[cells[0]] = dict(zip(COLUMNS, cells))
    return rows


def percent(fraction):
    return f"{fraction * 100:.1f}%"


def test_status_reports_the_live_counters_and_verdicts(backend, envoy, wasm_path, tmp):
    legacy = backend(legacy_handler, name="legacy")
    candidate = backend(candidate_handler, name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=CONFIG, ecds=True)
    # A window starts at its first evaluation (within about a second of the
    # configuration): traffic before it would not be in the window.
    time.sleep(2.5)

    for prefix, count in TRAFFIC.items():
        for n in range(count):
            path = f"{prefix}{n}" if prefix.endswith("/") else f"{prefix}?page={n}"
            status, _, body = http("GET", proxy.url(path))
            assert status == 200, (path, body)  # the client always gets legacy's answer
    for n in range(POSTS):
        assert http("POST", proxy.url("/items"), body={"n": n})[0] == 200
    for n in range(UNKNOWN):
        assert http("GET", proxy.url(f"/nothing/{n}"))[0] == 200

    live = wait_until(lambda: drained(proxy), timeout=15, message="every shadow to have an outcome")
    # The filter evaluates its windows every 5 s.
    gauges = wait_until(lambda: window_settled(proxy, live), timeout=15, message="the window gauges to count it all")
    assert [op for op, g in gauges.items() if g["ready"] == 1] == ["getItem"], gauges

    # -- machine-readable
    result = run_ctl("status", "--admin", proxy.admin_url(), "--ecds", str(proxy.ecds_file), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["revision"] == "status-1"
    assert document["admin"] == proxy.admin_url().rstrip("/")
    assert document["unknown_operation_requests"] == proxy.counter("wasmcustom.parallel_run.unknown_operation.requests")
    assert document["unknown_operation_requests"] == UNKNOWN
    assert document["not_configured"] == []
    ops = {op["id"]: op for op in document["operations"]}
    assert list(ops) == [o["id"] for o in CONFIG["operations"]]
    for op_id, op in ops.items():
        c = live[op_id]
        assert op["in_envoy"] is True, op_id
        assert op["counters"] == {k: c.get(k, 0) for k in op["counters"]}, op_id
        assert set(op["counters"]) == set(c), op_id  # every counter the filter defines, no more
        for key in ("requests", "shadowed") + OUTCOMES:
            assert op[key] == c[key], (op_id, key)
        assert op["skipped"] == sum(c[k] for k in SKIPS), op_id
        assert op["in_flight"] == c["shadowed"] - sum(c[k] for k in OUTCOMES) == 0, op_id
        compared = c["matched"] + c["unmatched"]
        assert op["comparisons"] == compared, op_id
        assert op["match_rate"] == (c["matched"] / compared if compared else None), op_id
        assert op["verdict"] == EXPECTED_VERDICTS[op_id], (op_id, op, c)
        # READY is the filter's own ready gauge; the evidence is its window.
        # An operation that never shadowed has no window gauges (src/readiness.rs):
        # its verdict, not shadowed, comes from its mode and counters.
        assert op["basis"] == ("window" if SHADOWED[op_id] else "cumulative"), op_id
        assert op["ready"] is (gauges[op_id]["ready"] == 1), (op_id, op, gauges[op_id])
        assert op["routed"] is True and op["routing_mismatch"] == 0, op_id
        if not SHADOWED[op_id]:
            assert op["window"] is None and op["ready"] is False, op_id
            continue
        assert op["window"]["ready"] is op["ready"], op_id
        assert op["window"]["comparisons"] == gauges[op_id]["window_comparisons"], op_id
        assert op["window"]["window_s"] == 60, op_id

    # The traffic itself, seen through the counters.
    assert ops["getItem"]["requests"] == 40 and ops["getItem"]["matched"] == 38 and ops["getItem"]["unmatched"] == 2
    assert ops["getOrder"]["matched"] == 30 and ops["getOrder"]["unmatched"] == 10
    assert ops["getUser"]["failed"] == 8 and live["getUser"]["failed_5xx"] == 8
    assert ops["createItem"]["requests"] == POSTS and ops["createItem"]["shadowed"] == 0
    assert without_held_for(ops["getItem"]["summary"]) == \
        "READY (lower bound 83.5% >= 80.0% over 40 comparisons in 60 s, for N s)", ops["getItem"]["summary"]
    assert ops["getItem"]["window"]["match_rate_lower"] == gauges["getItem"]["match_rate_lower_bp"] / 10000
    assert ops["getOrder"]["summary"] == "below target: lower bound 59.8% < 95.0% over 40 comparisons in 60 s"
    assert ops["listItems"]["summary"] == "collecting 10/100 comparisons in 60 s"
    assert ops["getUser"]["summary"] == "failing: 80.0% failed > 5.0%"
    assert ops["createItem"]["summary"] == "not shadowed"

    # What differs most: the admin's per-field counters, most first.
    for op_id, op in ops.items():
        admin_paths = diff_paths(proxy, op_id)
        assert {d["field"]: d["count"] for d in op["differs_most"]} == admin_paths, op_id
        assert [d["count"] for d in op["differs_most"]] == sorted(admin_paths.values(), reverse=True), op_id
        assert op["noise"] == [], op_id  # noise_percent is 0: nothing learned
    assert ops["getOrder"]["differs_most"] == [{"field": "/v", "count": 10}]  # n % 4 == 0 answers v 2

    # -- for people: the same numbers, one line per operation
    result = run_ctl("status", "--admin", proxy.admin_url(), "--ecds", str(proxy.ecds_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Envoy {document['admin']}, {proxy.ecds_file}: revision \"status-1\", 5 operations", lines[0]
    assert lines[2].startswith("readiness: the filter's windowed rule"), lines[2]
    rows = parse_table(result.stdout)
    assert list(rows) == list(ops)
    for op_id, row in rows.items():
        op = ops[op_id]
        assert row["MODE"] == op["mode"]
        for column, key in [("REQUESTS", "requests"), ("SHADOWED", "shadowed"), ("MATCHED", "matched"),
                            ("UNMATCHED", "unmatched"), ("FAILED", "failed"), ("ABANDONED", "abandoned"),
                            ("SKIPPED", "skipped"), ("IN-FLIGHT", "in_flight")]:
            assert int(row[column]) == op[key], (op_id, column, row)
        assert row["RATE"] == (percent(op["match_rate"]) if op["match_rate"] is not None else "-"), row
        assert row["TARGET"] == percent(op["target_match_rate"]), row
        assert without_held_for(row["VERDICT"]) == without_held_for(op["summary"]), row
    assert "getOrder differs most in: /v 10" in lines, result.stdout
    assert lines[-1] == f"requests matching no operation: {UNKNOWN}"
    assert not any(line.startswith("note:") for line in lines), result.stdout

    # -- the same thresholds from a plain configuration file
    config_file = tmp / "status-config.json"
    config_file.write_text(json.dumps(CONFIG))
    result = run_ctl("status", "--admin", proxy.admin_url(), "--config", str(config_file), "--json")
    assert result.returncode == 0, result.stderr
    assert {op["id"]: op["verdict"] for op in json.loads(result.stdout)["operations"]} == EXPECTED_VERDICTS


def test_status_names_an_unreachable_envoy(tmp):
    config_file = tmp / "config.json"
    config_file.write_text(json.dumps(CONFIG))
    port = free_port()  # nothing listens there
    result = run_ctl("status", "--admin", f"http://127.0.0.1:{port}", "--config", str(config_file))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"Envoy admin at http://127.0.0.1:{port}: cannot connect to 127.0.0.1:{port}" in result.stderr, result.stderr

    result = run_ctl("status", "--config", str(config_file), "--ecds", str(config_file))
    assert result.returncode == 2 and "not both" in result.stderr
