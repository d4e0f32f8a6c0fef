"""The fault suite (`make chaos`; `make test` runs it with the other e2e
tests): a bad day for either backend, under modest load, never reaches a
client through the filter, and every shadow still gets its one outcome,
for the reason Envoy reports.

For each fault the same requests go, each in turn, to two real Envoys in
front of the same backends: one with the filter (operation getReturn in
`shadow`), one without it (plain Envoy from the same bootstrap, which routes
everything to legacy). The faults are real sockets on loopback
(testbed/backend.py): a candidate that refuses connections, answers after
the shadow timeout, resets before its headers or in the middle of its body,
answers bytes that are not HTTP, answers more than `max_body_bytes`, or a
503; a legacy that is slow or resets. Asserted per fault:

  (a) every client saw the same through both proxies (status, header names,
      body, or the same broken answer), and the filter's latencies are not
      worse than plain Envoy's beyond noise (the distributions side by side);
  (b) the accounting invariant: shadowed == matched + unmatched + failed +
      abandoned, and every request was shadowed (the breaker is off here);
  (c) exactly the outcome counter the fault means (core/src/reply.rs and
      core/src/outcome.rs classify; README, "Metrics reference").

And the circuit breaker end to end: a real candidate goes down, the breaker
opens and shadowing drops to probes, the candidate comes back, the breaker
closes on its own and comparisons resume, while clients see no change.
"""

import re
import time
from dataclasses import dataclass, field

import pytest

from harness import (Backend, assert_counters, balanced, json_response, nonzero, operation_counters, settle,
                     wait_until)
from testbed.backend import DownBackend, FaultBackend, oversized_handler, slow_handler, status_handler
from testbed.load import SideBySide, not_slower
from testbed.table import text_table

# Latency distributions side by side and load: not beside other tests.
pytestmark = pytest.mark.alone

OP = "getReturn"
# Per proxy. 4 threads x 60 requests: modest load, about 2 s per fault, and
# enough answers for the 90th percentile to be the 6th slowest, not the slowest.
REQUESTS = 60
THREADS = 4
DEADLINE_S = 60
SHADOW_TIMEOUT_MS = 300
MAX_BODY_BYTES = 65536
# A slow candidate answers well after the shadow timeout; a slow legacy is
# slower than any answer of the rig's backends otherwise (~1 ms).
CANDIDATE_SLOW_S = 0.9
LEGACY_SLOW_S = 0.15


def plugin_config(**defaults):
    return {
        "revision": "chaos",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "defaults": {"mode": "legacy", "shadow_timeout_ms": SHADOW_TIMEOUT_MS, "max_body_bytes": MAX_BODY_BYTES,
                     "circuit_breaker": {"enabled": False}, **defaults},
        "operations": [{"id": OP, "method": "GET", "path": "/returns/{id}", "mode": "shadow"}],
    }


def path_for(n):
    return f"/returns/{n}"


def returns(request):
    """Both backends' healthy answer: the same JSON for the same return."""
    return json_response({"id": request.path.rsplit("/", 1)[1], "status": "open", "items": [1, 2, 3]})


@dataclass
class Fault:
    """One fault: how to make legacy and the candidate, and the counters it
    must produce for `n` requests, beyond requests = served_legacy = shadowed = n."""

    name: str
    legacy: object = None  # () -> server; None: a healthy Backend
    candidate: object = None
    outcome: dict = field(default_factory=dict)  # counter -> share of n (1: every shadow)
    requests: int = REQUESTS
    threads: int = THREADS


FAULTS = [
    Fault("candidate down", candidate=lambda: DownBackend(), outcome={"failed": 1, "failed_error": 1}),
    Fault("candidate slow", candidate=lambda: Backend(slow_handler(returns, CANDIDATE_SLOW_S), "candidate"),
          outcome={"failed": 1, "failed_timeout": 1}),
    Fault("candidate reset before headers", candidate=lambda: FaultBackend("reset_before_headers", "candidate"),
          outcome={"failed": 1, "failed_error": 1}),
    Fault("candidate reset mid-body", candidate=lambda: FaultBackend("reset_mid_body", "candidate"),
          outcome={"failed": 1, "failed_error": 1}),
    Fault("candidate garbage", candidate=lambda: FaultBackend("garbage", "candidate"),
          outcome={"failed": 1, "failed_error": 1}),
    Fault("candidate oversized", candidate=lambda: Backend(oversized_handler(4 * MAX_BODY_BYTES), "candidate"),
          outcome={"failed": 1, "failed_body_too_large": 1}),
    Fault("candidate 5xx", candidate=lambda: Backend(status_handler(503), "candidate"),
          outcome={"failed": 1, "failed_5xx": 1}),
    Fault("legacy slow", legacy=lambda: Backend(slow_handler(returns, LEGACY_SLOW_S), "legacy"),
          outcome={"matched": 1}),
    # Envoy answers the client its own 503 (no backend sent it): an error,
    # like the same reply to a shadow call.
    Fault("legacy reset before headers", legacy=lambda: FaultBackend("reset_before_headers", "legacy"),
          outcome={"failed": 1, "failed_error": 1}),
    # The client gets the headers and a cut body, about a second later with
    # or without the filter (measured: Envoy's delayed close of the client
    # connection, 1 s by default); the comparison lost its serving side.
    # Fewer requests and more clients, since each takes that second.
    Fault("legacy reset mid-body", legacy=lambda: FaultBackend("reset_mid_body", "legacy"),
          outcome={"abandoned": 1}, requests=24, threads=8),
]


@pytest.fixture
def servers():
    """Factory: servers(make) -> make(), stopped after the test."""
    started = []

    def start(make):
        server = make()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def assert_same_for_clients(load, with_filter, without_filter):
    """(a): request by request, the same answer through both proxies; and
    the latency distributions side by side, printed and compared."""
    sent = load.sent
    assert sent > 0
    differ = [(n, a.seen(), b.seen()) for n, (a, b) in
              enumerate(zip(load.answers[with_filter.port], load.answers[without_filter.port])) if n < sent
              and a.seen() != b.seen()]
    assert differ == [], f"{len(differ)} of {sent} answers differ (n, with filter, without), first: {differ[:2]}"

    def ms(port):
        return [a.latency_s * 1000 for a in load.of(port)]

    # Not worse beyond the noise of plain Envoy in the same run (testbed.load.not_slower):
    # a client that waited for a shadow (the 300 ms timeout, the 900 ms
    # candidate) would be slower than every plain answer.
    verdict, side_by_side = not_slower(ms(with_filter.port), ms(without_filter.port))
    rows = [[f"p{round(q * 100)}", f"{ours:.1f}", f"{theirs:.1f}"] for q, (ours, theirs) in side_by_side.items()]
    print("\n".join(text_table([("latency ms", "<"), ("with filter", ">"), ("without", ">")], rows)))
    assert verdict, f"slower with the filter beyond plain Envoy's noise: {side_by_side}"


def test_the_latency_verdict_fails_a_client_that_waits_and_passes_noise():
    # What a plain Envoy looked like in one of these runs: 1-3 ms, a tail to 9 ms.
    plain = [1.0 + 0.03 * i for i in range(66)] + [4.0, 5.0, 7.0, 9.0]
    assert not_slower([t * 1.3 for t in plain], plain)[0]  # the filter's own work, in the noise
    assert not not_slower([t + 300 for t in plain], plain)[0]  # waited for a 300 ms shadow timeout
    assert not not_slower(plain[:50] + [t + 300 for t in plain[50:]], plain)[0]  # a fifth of the clients waited
    # Answers that all wait for Envoy's 1 s delayed close: a tail a few ms
    # longer is noise (a fresh-clone run: p90 1020.7 against p99 1016.6,
    # p50 1013.1), a 300 ms wait is not.
    timer = [1013.0 + 0.05 * i for i in range(70)]
    assert not_slower(timer[:56] + [t + 5 for t in timer[56:]], timer)[0]
    assert not not_slower([t + 300 for t in timer], timer)[0]
    assert not not_slower(timer[:56] + [t + 300 for t in timer[56:]], timer)[0]


def first_answer(load, port):
    answer = load.of(port)[0]
    return answer.status, answer.error, answer.body[:120]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name.replace(" ", "-") for f in FAULTS])
def test_a_fault_changes_nothing_for_clients_and_is_counted_for_its_cause(servers, envoy, wasm_path, fault):
    legacy = servers(fault.legacy or (lambda: Backend(returns, "legacy")))
    candidate = servers(fault.candidate or (lambda: Backend(returns, "candidate")))
    clusters = {"legacy": legacy.port, "candidate": candidate.port}
    with_filter = envoy(clusters, wasm_path=wasm_path, config=plugin_config())
    without_filter = envoy(clusters, with_filter=False)

    n = fault.requests
    load = SideBySide([with_filter.port, without_filter.port], path_for, n, DEADLINE_S, fault.threads).run()
    assert load.sent == n, f"only {load.sent} of {n} requests within {DEADLINE_S} s"
    print(f"\n{fault.name}: clients got {first_answer(load, with_filter.port)}")
    assert_same_for_clients(load, with_filter, without_filter)

    counters = settle(with_filter, n, OP)  # (b): every shadow has its outcome
    assert balanced(counters)
    assert_counters(counters, requests=n, served_legacy=n, shadowed=n,  # (c)
                    **{name: round(share * n) for name, share in fault.outcome.items()})
    if fault.candidate and not isinstance(candidate, DownBackend):
        received = candidate.received if isinstance(candidate, FaultBackend) else len(candidate.received)
        assert received == n, f"the candidate read {received} of {n} shadow copies"


# ---------------------------------------------------------------- circuit breaker

# Short windows, so that the whole story takes seconds: open after a 1 s
# window with at least 5 outcomes, half of them failed; probe 2 requests
# after a 2 s cooldown.
BREAKER = {"failure_rate": 0.5, "min_calls": 5, "window_s": 1, "cooldown_s": 2, "probes": 2}
WORKERS = 2  # Envoy's --concurrency in the rig: one breaker per worker VM
BREAKER_LOAD_REQUESTS = 5000
BREAKER_DEADLINE_S = 90
PHASE_TIMEOUT_S = 20


def test_the_circuit_opens_on_a_dead_candidate_and_closes_when_it_is_back(servers, envoy, wasm_path):
    legacy = servers(lambda: Backend(returns, "legacy"))
    candidate = servers(lambda: Backend(returns, "candidate"))
    port = candidate.port
    clusters = {"legacy": legacy.port, "candidate": port}
    config = plugin_config()
    config["defaults"]["circuit_breaker"] = {"enabled": True, **BREAKER}
    with_filter = envoy(clusters, wasm_path=wasm_path, config=config, concurrency=WORKERS)
    without_filter = envoy(clusters, with_filter=False, concurrency=WORKERS)

    def now():
        return operation_counters(with_filter, OP)

    def grown(since, **at_least):
        def check():
            c = now()
            return c if all(c[k] - since[k] >= v for k, v in at_least.items()) else None
        return check

    load = SideBySide([with_filter.port, without_filter.port], path_for, BREAKER_LOAD_REQUESTS, BREAKER_DEADLINE_S,
                      threads=2, pause_s=0.01).start()
    try:
        # Healthy: comparisons are made.
        healthy = wait_until(grown(now(), matched=20), PHASE_TIMEOUT_S, message="matched comparisons")
        assert healthy["failed"] == healthy["skipped_circuit_open"] == 0, nonzero(healthy)

        # Down: shadows fail until the breaker opens.
        candidate.stop()
        down = now()
        opened = wait_until(grown(down, skipped_circuit_open=20), PHASE_TIMEOUT_S, message="the circuit to open")
        assert opened["failed_error"] > down["failed_error"], nonzero(opened)
        assert "circuit open operation=getReturn" in with_filter.log_text()
        # While it stays down, shadow dispatches drop to the probes: at most
        # `probes` per worker per cooldown (and a round that fails reopens on
        # the next tick), while the rest of the traffic is skipped.
        started = time.monotonic()
        held = wait_until(grown(opened, requests=150), PHASE_TIMEOUT_S, message="traffic while open")
        elapsed = time.monotonic() - started
        probes = held["shadowed"] - opened["shadowed"]
        rounds = elapsed / BREAKER["cooldown_s"] + 2
        assert probes <= WORKERS * BREAKER["probes"] * rounds, (probes, elapsed, nonzero(held))
        skipped = held["skipped_circuit_open"] - opened["skipped_circuit_open"]
        assert skipped >= 4 * probes and skipped + probes == held["requests"] - opened["requests"], nonzero(held)
        assert held["matched"] == opened["matched"], nonzero(held)

        # Back: the probes succeed, the breaker closes by itself, and every
        # request is shadowed and compared again.
        candidate = servers(lambda: Backend(returns, "candidate", port=port))
        back = now()
        wait_until(lambda: "circuit closed operation=getReturn" in with_filter.log_text(), PHASE_TIMEOUT_S,
                   message="the circuit to close")
        wait_until(grown(back, matched=20), PHASE_TIMEOUT_S, message="matched comparisons again")
        # Until every worker's breaker is closed, some requests may still be
        # skipped: wait for a stretch of traffic with none skipped.
        last = [now()]

        def closed_everywhere():
            c, previous = now(), last[0]
            if c["requests"] - previous["requests"] < 20:
                return None
            last[0] = c
            skipped = c["skipped_circuit_open"] - previous["skipped_circuit_open"]
            return c if skipped == 0 and c["shadowed"] - previous["shadowed"] == c["requests"] - previous["requests"] \
                else None

        wait_until(closed_everywhere, PHASE_TIMEOUT_S, interval=0.2, message="a stretch of traffic all shadowed")
    finally:
        load.stop()

    final = settle(with_filter, now()["shadowed"], OP)
    print(f"\ncircuit breaker: {load.sent} requests, counters {nonzero(final)}")
    log = with_filter.log_text()
    print("\n".join(line for line in log.splitlines() if "circuit" in line))
    assert balanced(final)
    assert final["requests"] == final["served_legacy"] == load.sent
    assert final["requests"] == final["shadowed"] + final["skipped_circuit_open"]
    assert final["failed"] == final["failed_error"] > 0 and final["unmatched"] == 0, nonzero(final)
    assert final["matched"] >= healthy["matched"] + 20
    assert len(re.findall(r"circuit closed operation=getReturn", log)) >= 1
    # The clients saw no change throughout: legacy answered every request,
    # exactly as through plain Envoy.
    assert all(a.status == 200 for a in load.of(with_filter.port))
    assert_same_for_clients(load, with_filter, without_filter)
