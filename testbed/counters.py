"""The filter's per-operation counters as the rig reads them from Envoy's
admin, and the accounting invariant every shadowed request must keep."""

from testbed.envoy import regex_escape
from testbed.net import wait_until

OPERATION_STATS = "wasmcustom.parallel_run.operation."

# Every fixed per-operation counter (core/src/counters.rs), so that "exactly
# these moved" can be asserted: a counter not named in an expectation is 0.
OPERATION_COUNTERS = (
    "requests", "served_legacy", "served_candidate", "shadowed",
    "matched", "unmatched", "unmatched_status", "unmatched_headers", "unmatched_body",
    "failed", "failed_timeout", "failed_error", "failed_5xx", "failed_body_too_large",
    "abandoned",
    "skipped_unsafe_method", "skipped_sampled_out", "skipped_body_too_large", "skipped_overload",
    "skipped_circuit_open", "skipped_header_bytes", "noise_samples", "unmatched_path_overflow", "routing_mismatch",
)

# Every fixed per-operation gauge (core/src/counters.rs, `Gauge`): the
# configuration in force, as Envoy runs it, and the readiness window.
OPERATION_GAUGES = (
    "mode", "target_match_rate_bp", "min_samples", "window_s", "max_failure_rate_bp", "max_latency_ratio_bp",
    "window_comparisons", "window_matched", "window_failed", "match_rate_bp", "match_rate_lower_bp",
    "ready", "ready_for_s", "unmatched_path_overflow_current",
)


def operation_counters(proxy, op):
    """Every fixed counter of operation `op` as {name: value} (0 when absent)."""
    prefix = OPERATION_STATS + op + "."
    stats = proxy.stats(filter="^" + regex_escape(prefix))
    return {name: stats.get(prefix + name, 0) for name in OPERATION_COUNTERS}


def balanced(c):
    """The accounting invariant: every shadowed request has one outcome."""
    return c["shadowed"] == c["matched"] + c["unmatched"] + c["failed"] + c["abandoned"]


def nonzero(c):
    return {k: v for k, v in c.items() if v}


def assert_counters(c, **expected):
    """Every counter equals `expected[name]`, or 0 when not named."""
    want = {name: expected.pop(name, 0) for name in OPERATION_COUNTERS}
    assert not expected, f"unknown counters in expectation: {expected}"
    assert nonzero(c) == nonzero(want), f"counters differ:\n observed {nonzero(c)}\n expected {nonzero(want)}"


def settle(proxy, shadowed, op, timeout=10.0):
    """Poll until `op` has `shadowed` shadowed requests and every one of them
    has an outcome; return the counters. Fails with the last counters seen."""
    last = {}

    def done():
        last.update(operation_counters(proxy, op))
        return dict(last) if last["shadowed"] == shadowed and balanced(last) else None

    try:
        return wait_until(done, timeout=timeout, interval=0.05, message=f"{op}: shadowed={shadowed} and balanced")
    except AssertionError as err:
        raise AssertionError(f"{err}\ncounters: {nonzero(last)}") from None


def by_operation(proxy):
    """Every counter and gauge of every operation, {op: {name: value}}, with
    the per-field ones (`unmatched_path.<field>`, ...) under their full names."""
    out = {}
    for name, value in proxy.stats(filter="^" + regex_escape(OPERATION_STATS)).items():
        op, _, counter = name[len(OPERATION_STATS):].partition(".")
        out.setdefault(op, {})[counter] = value
    return out


# The filter evaluates each operation's readiness window every 5 ticks of
# 1 s (src/readiness.rs), and a window starts at its first evaluation, about
# a second after the configuration: traffic sent earlier is not in it.
WINDOW_START_S = 2.5


def wait_ready(proxy, op, ready=1, comparisons=0, timeout=15):
    """Until the filter's `ready` gauge of `op` reads `ready` (the windowed
    readiness rule, which the CLI's guard follows) with at least
    `comparisons` in its window; returns the window gauges."""
    prefix = OPERATION_STATS + op + "."

    def read():
        stats = proxy.stats(filter="^" + regex_escape(prefix))
        gauges = {name: stats.get(prefix + name) for name in OPERATION_GAUGES}
        ok = gauges["ready"] == ready and (gauges["window_comparisons"] or 0) >= comparisons
        return gauges if ok else None

    return wait_until(read, timeout=timeout, message=f"{op}: ready gauge == {ready}")
