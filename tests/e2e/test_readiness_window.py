"""Readiness over a window, on the real Envoy: the main-thread VM keeps each
operation's window from the shared counters and sets the readiness gauges;
`ready` flips at the threshold and back when the candidate regresses, and an
old burst of mismatches ages out of the window."""

import threading
import time

from harness import http, json_response, wait_until

PREFIX = "wasmcustom.parallel_run.operation.getReturn."
WINDOW_S = 8

CONFIG = {
    "revision": "window",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"min_samples": 20, "target_match_rate": 0.9,
                 "readiness": {"window_s": WINDOW_S, "ready_after_s": 0}},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"}],
}


def gauges(proxy):
    stats = proxy.stats(filter="^" + PREFIX.replace(".", r"\."))
    return {name[len(PREFIX):]: value for name, value in stats.items() if name.startswith(PREFIX)}


def send(proxy, count, spread_s=0.0):
    for n in range(count):
        assert http("GET", proxy.url(f"/returns/{n}"))[0] == 200
        if spread_s:
            time.sleep(spread_s / count)


def test_ready_follows_the_window(backend, envoy, wasm_path):
    agrees = threading.Event()
    legacy = backend(lambda r: json_response({"status": "open"}), name="legacy")
    candidate = backend(lambda r: json_response({"status": "open" if agrees.is_set() else "OPEN"}), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
    g = wait_until(lambda: (g := gauges(proxy)).get("window_s") == WINDOW_S and g, message="config gauges")
    assert (g["target_match_rate_bp"], g["min_samples"], g["max_failure_rate_bp"]) == (9000, 20, 500)

    # A window starts from the counters at its first evaluation (within a
    # tick of the configuration): what came before is history, not in it.
    time.sleep(2.5)
    # A burst of mismatches: counted in the window, not ready.
    send(proxy, 30)
    # A window gauge is absent while it would read 0 (before the first shadowed request).
    g = wait_until(lambda: (g := gauges(proxy)).get("window_comparisons", 0) >= 30 and g, timeout=15,
                   message="the burst in the window")
    assert g["window_matched"] == 0 and g["ready"] == 0 and g["match_rate_lower_bp"] == 0, g

    # The candidate is fixed; matches arrive for longer than the window, and
    # the burst ages out: ready, judged on the Wilson lower bound.
    agrees.set()
    send(proxy, 60, spread_s=WINDOW_S + 2)
    g = wait_until(lambda: (g := gauges(proxy))["ready"] == 1 and g, timeout=15, message="ready == 1")
    assert g["window_matched"] == g["window_comparisons"] >= 20, g
    assert g["match_rate_bp"] == 10000 and 9000 <= g["match_rate_lower_bp"] < 10000, g

    # The candidate regresses: not ready at the next evaluation.
    agrees.clear()
    send(proxy, 40)
    g = wait_until(lambda: (g := gauges(proxy))["ready"] == 0 and g, timeout=15, message="ready == 0")
    assert g["window_comparisons"] > g["window_matched"], g
    assert g["ready_for_s"] == 0
