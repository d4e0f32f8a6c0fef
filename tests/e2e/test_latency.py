"""Latency per side: Envoy histograms per operation for the serving
response and the shadow response, labelled `side` by the shipped stats tags."""

import re

from harness import Response, http, settle, wait_until

CONFIG = {
    "revision": "latency",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"}],
}


def bucket_counts(text, side):
    """{le: count} of the operation's latency histogram for `side`."""
    pattern = (r'^parallel_run_operation_latency_ms_bucket\{operation_id="getReturn",side="%s",le="([^"]+)"\} (\d+)$'
               % side)
    return {le: int(n) for le, n in re.findall(pattern, text, re.M)}


def test_histograms_carry_both_sides_and_show_the_slower_one(backend, envoy, wasm_path):
    legacy = backend(lambda r: Response(200, [("content-type", "application/json")], b"{}"), name="legacy")
    # The candidate takes 300 ms: its side's samples land in higher buckets.
    candidate = backend(lambda r: Response(200, [("content-type", "application/json")], b"{}", delay_s=0.3),
                        name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
    for n in range(6):
        assert http("GET", proxy.url(f"/returns/{n}"))[0] == 200
    settle(proxy, 6, "getReturn")

    def flushed():
        # Envoy flushes histograms into /stats on its stats flush interval.
        text = proxy.prometheus()
        serving, shadow = bucket_counts(text, "serving"), bucket_counts(text, "shadow")
        return (serving, shadow) if serving.get("+Inf") == 6 and shadow.get("+Inf") == 6 else None

    serving, shadow = wait_until(flushed, timeout=15, message="both histograms to hold 6 samples")
    fast = {le for le, n in serving.items() if le != "+Inf" and n == 6}
    slow = {le for le, n in shadow.items() if le != "+Inf" and n == 6}
    # Every serving sample is under 250 ms; no shadow sample is.
    assert "250" in fast, serving
    assert "250" not in slow and shadow.get("250", 0) == 0, shadow
