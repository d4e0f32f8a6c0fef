"""The books balance under concurrent load, across live configuration pushes.

A real Envoy with the filter delivered by ECDS, real backends on 127.0.0.1.
Several client threads send a bounded number of requests for two operations
while the candidate answers after a random (seeded) 0-300 ms, with a mix of
identical, different, etag-only-different and 503 answers. Halfway, the
configuration is pushed twice (new revision, a changed ignore rule). After
the traffic stops and the in-flight shadows drain, every operation must have
exactly one outcome per shadowed request, and the backends' own request logs
must agree with the counters.
"""

import json
import random
import threading
import time

from harness import Client, Response, balanced, nonzero, wait_until
from harness import operation_counters as counters

SKIPS = ("skipped_unsafe_method", "skipped_sampled_out", "skipped_body_too_large", "skipped_overload")

THREADS = 4
REQUESTS_PER_THREAD = 300
TRAFFIC_DEADLINE_S = 30
DRAIN_TIMEOUT_S = 10
# operation id -> path prefix the clients use
OPERATIONS = {"getItem": "/items/", "getOrder": "/orders/"}


def plugin_config(revision, ignore_json_paths):
    return {
        "revision": revision,
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "operation_header": "x-operation-id",
        "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000, "name_keys": True,
                     "compare": {"ignore_json_paths": ignore_json_paths}},
        "operations": [
            {"id": "getItem", "method": "GET", "path": "/items/{id}", "mode": "shadow"},
            # Some candidate answers take longer than this: those shadows time out.
            {"id": "getOrder", "method": "GET", "path": "/orders/{id}", "mode": "shadow", "shadow_timeout_ms": 1000},
        ],
    }


def number(path):
    return int(path.rsplit("/", 1)[1].split("?")[0])


def legacy_handler(request):
    n = number(request.path)
    body = {"id": n, "status": "open", "etag": "legacy"}
    return Response(200, [("content-type", "application/json")], json.dumps(body).encode())


def kind(n):
    """What the candidate does with request number n (the two operations
    alternate, so both see every kind): 0 answers 503, 1-2 differ in
    `status`, 3-4 differ in `etag` only, 5 is too slow for getOrder's
    timeout, the rest answer like legacy."""
    return (n // 2) % 10


SLOW_S = 1.3  # getOrder times out at 1 s; 0-300 ms and 1.3 s are far from it on both sides


def make_candidate_handler(seed):
    rng = random.Random(seed)
    lock = threading.Lock()

    def handle(request):
        with lock:
            delay = rng.uniform(0.0, 0.3)
        n = number(request.path)
        k = kind(n)
        if k == 5 and request.path.startswith("/orders/"):
            delay = SLOW_S
        if k == 0:
            return Response(503, [("content-type", "text/plain")], b"candidate overloaded", delay)
        body = {"id": n, "status": "open", "etag": "legacy"}
        if k in (1, 2):
            body["status"] = "closed"  # a real difference
        elif k in (3, 4):
            body["etag"] = "candidate"  # only differs where the pushed rule ignores
        return Response(200, [("content-type", "application/json")], json.dumps(body).encode(), delay)

    return handle


def test_books_balance_under_load_across_config_pushes(backend, envoy, wasm_path):
    legacy = backend(legacy_handler, name="legacy")
    candidate = backend(make_candidate_handler(seed=20261123), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, ecds=True)
    before = proxy.ecds_counts()
    result = proxy.push_config(plugin_config("acct-1", []))
    assert result.returncode == 0, result.stderr + result.stdout
    proxy.wait_config_applied(before)

    sent = {op: 0 for op in OPERATIONS}
    bad = []
    progress = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + TRAFFIC_DEADLINE_S

    def client(t):
        with Client(proxy.url(), timeout=10) as conn:
            for i in range(REQUESTS_PER_THREAD):
                if time.monotonic() >= stop_at:
                    return
                op = "getItem" if i % 2 == 0 else "getOrder"
                n = t * REQUESTS_PER_THREAD + i
                try:
                    status, _, body = conn.get(f"{OPERATIONS[op]}{n}", {"x-request-id": f"acct-{t}-{i}"})
                except OSError as err:  # a reset would be a real failure: count it, do not hang
                    status, body = None, repr(err).encode()
                with lock:
                    sent[op] += 1
                    progress[0] += 1
                    if status != 200 or json.loads(body).get("id") != n:
                        bad.append((op, n, status, body[:200]))
                time.sleep(0.005)

    threads = [threading.Thread(target=client, args=(t,), name=f"client-{t}") for t in range(THREADS)]
    started = time.monotonic()
    for t in threads:
        t.start()

    # Two pushes while the traffic flows: a new revision and a changed ignore rule.
    total = THREADS * REQUESTS_PER_THREAD
    pushes = [(total // 3, plugin_config("acct-2", ["/etag"])), (2 * total // 3, plugin_config("acct-3", ["/etag", "/x"]))]
    pushed_at = []
    for threshold, config in pushes:
        wait_until(lambda: progress[0] >= threshold or not any(t.is_alive() for t in threads),
                   timeout=TRAFFIC_DEADLINE_S, message=f"{threshold} requests sent")
        before = proxy.ecds_counts()
        result = proxy.push_config(config)
        assert result.returncode == 0, result.stderr + result.stdout
        proxy.wait_config_applied(before)
        pushed_at.append(progress[0])

    for t in threads:
        t.join(timeout=TRAFFIC_DEADLINE_S + 5)
    assert not any(t.is_alive() for t in threads), "client threads did not stop"
    traffic_s = time.monotonic() - started
    assert bad == [], f"{len(bad)} bad client answers, first: {bad[:3]}"
    assert all(pushed < sum(sent.values()) for pushed in pushed_at), (pushed_at, sent)
    log = proxy.log_text()
    for revision in ("acct-1", "acct-2", "acct-3"):
        assert f'configuration applied: revision="{revision}"' in log, revision

    # Drain: every shadowed request gets its outcome, and the candidate's
    # request log stops moving.
    last = {}

    def drained():
        snapshot = {op: counters(proxy, op) for op in OPERATIONS}
        last.update(snapshot)
        done = all(balanced(c) for c in snapshot.values()) and \
            sum(c["requests"] for c in snapshot.values()) == sum(sent.values())
        return snapshot if done else None

    try:
        wait_until(drained, timeout=DRAIN_TIMEOUT_S, interval=0.1, message="every shadowed request to have an outcome")
    except AssertionError as err:
        raise AssertionError(f"{err}\ncounters: { {op: nonzero(c) for op, c in last.items()} }") from None
    time.sleep(0.5)  # nothing may move after the books balanced
    final = {op: counters(proxy, op) for op in OPERATIONS}

    shadows_by_op = {op: 0 for op in OPERATIONS}
    for r in candidate.received:
        shadows_by_op[r.header("x-parallel-run-shadow")] = shadows_by_op.get(r.header("x-parallel-run-shadow"), 0) + 1
    served_by_op = {op: sum(1 for r in legacy.received if r.path.startswith(prefix)) for op, prefix in OPERATIONS.items()}

    report = {op: nonzero(c) for op, c in final.items()}
    print(f"\naccounting: traffic {traffic_s:.1f}s, sent {sent}, pushes after {pushed_at} requests, "
          f"candidate got {shadows_by_op}\n counters {json.dumps(report)}")

    for op, c in final.items():
        assert balanced(c), (op, nonzero(c))
        assert c["requests"] == sent[op] == c["served_legacy"] == served_by_op[op], (op, nonzero(c), served_by_op)
        assert c["served_candidate"] == 0
        assert c["requests"] == c["shadowed"] + sum(c[s] for s in SKIPS), (op, nonzero(c))
        assert c["skipped_unsafe_method"] == c["skipped_sampled_out"] == c["skipped_body_too_large"] == 0
        assert shadows_by_op[op] == c["shadowed"] - c["failed_error"], (op, shadows_by_op, nonzero(c))
        assert c["unmatched"] >= c["unmatched_body"] > 0, (op, nonzero(c))
        assert c["failed"] == c["failed_timeout"] + c["failed_error"] + c["failed_5xx"] + c["failed_body_too_large"]
        assert c["failed_5xx"] > 0 and c["matched"] > 0, (op, nonzero(c))
    assert final["getOrder"]["failed_timeout"] > 0, nonzero(final["getOrder"])

    # The pushed ignore rule took effect mid-traffic: etag-only differences
    # counted as unmatched before the first push, as matched after it.
    items = [number(r.path) for r in legacy.received if r.path.startswith(OPERATIONS["getItem"])]
    real = sum(1 for n in items if kind(n) in (1, 2))
    etag_only = sum(1 for n in items if kind(n) in (3, 4))
    assert real < final["getItem"]["unmatched"] < real + etag_only, (real, etag_only, nonzero(final["getItem"]))

    # Each operation's failures are exactly the requests built to fail.
    orders = [number(r.path) for r in legacy.received if r.path.startswith(OPERATIONS["getOrder"])]
    for op, numbers, slow in (("getItem", items, 0), ("getOrder", orders, sum(1 for n in orders if kind(n) == 5))):
        c = final[op]
        assert c["failed_5xx"] == sum(1 for n in numbers if kind(n) == 0), (op, nonzero(c))
        assert c["failed_timeout"] == slow, (op, nonzero(c))
        assert c["failed_error"] == 0, (op, nonzero(c))
    assert set(shadows_by_op) == set(OPERATIONS), shadows_by_op
