"""Comparison tuning and noise learning, end to end: a real Envoy with the
built filter, real HTTP backends on 127.0.0.1, outcomes read from Envoy's
admin /stats and /stats/prometheus.

Each tuning rule is shown with a control in the same Envoy: the same pair of
answers on an operation without the rule is unmatched, so a rule that
silently stopped applying (or a comparison that always matches) fails the
test.

Noise learning is timed by the filter's root tick: once a second each worker
merges its counts into shared data and reads back what is noise. The tests
wait for the `parallel-run: noise` log line (or the `noise_path.<field>`
gauge) and then for one more tick, so that every worker has read the
verdict, before sending the requests that must be judged with it.
"""

import gzip
import itertools
import json
import re
import threading
import time
import uuid

from harness import (OPERATION_STATS, Client, Response, assert_counters, balanced, http, json_response, nonzero,
                     settle, wait_until)
from harness import operation_counters as counters

STAT_PREFIX = OPERATION_STATS

# Every worker reads the shared noise verdict on its next tick (src/root.rs:
# one second); waiting this long after the verdict was announced lets all of
# them have read it.
SYNC_WAIT_S = 1.5
MARKER = "x-parallel-run-shadow"


# ---------------------------------------------------------------------------
# helpers


def plugin_config(operations, **top):
    config = {
        "revision": "test-tuning",
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "operation_header": "x-operation-id",
        "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000, "name_keys": True},
        "operations": operations,
    }
    config.update(top)
    return config


def operation(id, path, method="GET", mode="shadow", **settings):  # noqa: A002
    return {"id": id, "method": method, "path": path, "mode": mode, **settings}


def _stats(proxy, prefix):
    return proxy.stats(filter="^" + re.escape(prefix))


def diff_paths(proxy, op):
    """The `unmatched_path.<field>` counters of `op` as {field: value}."""
    prefix = STAT_PREFIX + op + ".unmatched_path."
    return {name[len(prefix):]: value for name, value in _stats(proxy, prefix).items()}


def noise_gauges(proxy, op):
    """The `noise_path.<field>` gauges of `op` as {field: value}."""
    prefix = STAT_PREFIX + op + ".noise_path."
    return {name[len(prefix):]: value for name, value in _stats(proxy, prefix).items()}


def wait_counter(proxy, op, name, value, timeout=10.0):
    """Poll until counter `name` of `op` is `value`; return all counters."""
    last = {}

    def done():
        last.update(counters(proxy, op))
        return dict(last) if last[name] == value else None

    try:
        return wait_until(done, timeout=timeout, interval=0.05, message=f"{op}.{name} == {value}")
    except AssertionError as err:
        raise AssertionError(f"{err}\ncounters: {nonzero(last)}") from None


def noise_lines(proxy, op):
    return [line for line in proxy.log_text().splitlines() if f"parallel-run: noise operation={op} " in line]


def wait_noise(proxy, op, fields, timeout=15.0):
    """Wait until the filter announced exactly `fields` as `op`'s noise and
    every worker has had a tick to read it. Returns the announcing line."""
    needle = f"parallel-run: noise operation={op} fields=[{','.join(fields)}]"

    def found():
        return [line for line in noise_lines(proxy, op) if needle in line]

    try:
        lines = wait_until(found, timeout=timeout, interval=0.1, message=repr(needle))
    except AssertionError as err:
        raise AssertionError(f"{err}\nnoise lines: {noise_lines(proxy, op)}\n"
                             f"counters: {nonzero(counters(proxy, op))}") from None
    time.sleep(SYNC_WAIT_S)
    return lines[-1]


def routes(table):
    """A handler dispatching on the first path segment: {"/sorted": fn(request) -> Response}."""

    def handle(request):
        first = "/" + request.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        return table[first](request)

    return handle


def fixed(body, status=200, headers=None):
    """A handler answering always the same JSON (`body` as an object, or raw bytes)."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = [("content-type", "application/json")] + list(headers or [])
    return lambda _request: Response(status, all_headers, payload)


def path_number(request):
    """The trailing number of a path such as /orders/17."""
    return int(request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1])


def start(backend, envoy, legacy_handler, candidate_handler, operations, **options):
    legacy = backend(legacy_handler, name="legacy")
    candidate = backend(candidate_handler, name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=plugin_config(operations), **options)
    return legacy, candidate, proxy


def send(proxy, paths, prefix, method="GET", body=None, reuse=False):
    """One request per path, each with its own x-request-id `<prefix>-<i>`.

    A fresh connection per request by default, so that both Envoy workers get
    traffic; `reuse=True` sends them all over one keep-alive connection."""
    statuses = []
    if reuse:
        with Client(proxy.url()) as client:
            for i, path in enumerate(paths):
                statuses.append(client.request(method, path, {"x-request-id": f"{prefix}-{i}"}, body)[0])
    else:
        for i, path in enumerate(paths):
            statuses.append(http(method, proxy.url(path), {"x-request-id": f"{prefix}-{i}"}, body)[0])
    return statuses


def prometheus_value(text, metric, **labels):
    """The value of `metric` carrying (at least) `labels` in /stats/prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != metric:
            continue
        found = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


# ---------------------------------------------------------------------------
# tuning rules


def test_unordered_arrays_match_reordered_elements_and_the_control_does_not(backend, envoy, wasm_path):
    legacy_body = {"id": 1, "tags": ["red", "green", "blue", "green"], "nested": {"ids": [3, 1, 2]}}
    candidate_body = {"id": 1, "tags": ["green", "blue", "green", "red"], "nested": {"ids": [1, 2, 3]}}
    # The multiset keeps multiplicity: one "green" less is a difference.
    short_body = {"id": 1, "tags": ["green", "blue", "red", "red"], "nested": {"ids": [1, 2, 3]}}
    rules = {"unordered_arrays": ["/tags", "/nested/ids"]}
    ops = [
        operation("unordered", "/unordered/{id}", compare=rules),
        operation("ordered", "/ordered/{id}"),
        operation("multiset", "/multiset/{id}", compare=rules),
    ]
    legacy_handler = fixed(legacy_body)
    candidate_handler = routes({"/unordered": fixed(candidate_body), "/ordered": fixed(candidate_body),
                                "/multiset": fixed(short_body)})
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    assert send(proxy, ["/unordered/1", "/unordered/2", "/ordered/1", "/multiset/1"], "unordered") == [200] * 4

    assert_counters(settle(proxy, 2, "unordered"), requests=2, served_legacy=2, shadowed=2, matched=2)
    assert_counters(settle(proxy, 1, "ordered"), requests=1, served_legacy=1, shadowed=1,
                    unmatched=1, unmatched_body=1)
    assert_counters(settle(proxy, 1, "multiset"), requests=1, served_legacy=1, shadowed=1,
                    unmatched=1, unmatched_body=1)
    assert diff_paths(proxy, "unordered") == {}
    assert set(diff_paths(proxy, "ordered")) == {"/tags/*", "/nested/ids/*"}, diff_paths(proxy, "ordered")


def test_keyed_arrays_pair_elements_by_key_and_name_the_generalised_path(backend, envoy, wasm_path):
    items = [{"id": 1, "price": 10, "name": "a"}, {"id": 2, "price": 20, "name": "b"},
             {"id": 3, "price": 30, "name": "c"}]
    reordered = [items[2], items[0], items[1]]
    changed = [dict(items[1], price=21), items[2], items[0]]
    ops = [operation("keyed", "/keyed/{id}", compare={"unordered_arrays": [{"path": "/items", "key": "/id"}]})]

    def candidate_handler(request):
        return json_response({"items": changed if path_number(request) == 99 else reordered})

    legacy, candidate, proxy = start(backend, envoy, fixed({"items": items}), candidate_handler, ops)

    assert send(proxy, ["/keyed/1", "/keyed/2", "/keyed/3"], "keyed-same") == [200] * 3
    assert_counters(settle(proxy, 3, "keyed"), requests=3, served_legacy=3, shadowed=3, matched=3)
    assert diff_paths(proxy, "keyed") == {}

    assert send(proxy, ["/keyed/99"], "keyed-changed") == [200]
    assert_counters(settle(proxy, 4, "keyed"), requests=4, served_legacy=4, shadowed=4, matched=3,
                    unmatched=1, unmatched_body=1)
    # The element has no position in an unordered array: `*`, never the key value.
    assert diff_paths(proxy, "keyed") == {"/items/*/price": 1}

    text = proxy.prometheus()
    assert prometheus_value(text, "parallel_run_operation_unmatched_path",
                            operation_id="keyed", diff_path="/items/*/price") == 1, \
        [line for line in text.splitlines() if "unmatched_path" in line]
    assert prometheus_value(text, "parallel_run_operation_unmatched",
                            operation_id="keyed") == 1


def test_number_tolerance(backend, envoy, wasm_path):
    ops = [
        operation("tolerant", "/tolerant/{id}", compare={"number_tolerance": {"absolute": 0.001}}),
        operation("strict", "/strict/{id}"),
    ]

    def candidate_handler(request):
        value = 10.1 if path_number(request) == 99 else 10.0004
        return json_response({"amount": value, "count": 3})

    legacy, candidate, proxy = start(backend, envoy, fixed({"amount": 10.0, "count": 3}), candidate_handler, ops)

    assert send(proxy, ["/tolerant/1", "/tolerant/2", "/strict/1"], "tolerance") == [200] * 3
    assert_counters(settle(proxy, 2, "tolerant"), requests=2, served_legacy=2, shadowed=2, matched=2)
    assert_counters(settle(proxy, 1, "strict"), requests=1, served_legacy=1, shadowed=1,
                    unmatched=1, unmatched_body=1)

    assert send(proxy, ["/tolerant/99"], "tolerance-far") == [200]
    assert_counters(settle(proxy, 3, "tolerant"), requests=3, served_legacy=3, shadowed=3, matched=2,
                    unmatched=1, unmatched_body=1)
    assert diff_paths(proxy, "tolerant") == {"/amount": 1}


def test_gzip_legacy_equals_identity_candidate_with_the_same_json(backend, envoy, wasm_path):
    document = {"id": 7, "status": "open", "lines": [{"sku": "A-1", "qty": 2}] * 20}
    other = dict(document, status="closed")
    plain = json.dumps(document).encode()
    zipped = gzip.compress(plain)
    assert zipped != plain

    def legacy_handler(_request):
        return Response(200, [("content-type", "application/json"), ("content-encoding", "gzip")], zipped)

    def candidate_handler(request):
        return json_response(other if path_number(request) == 99 else document)

    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler,
                                     [operation("gzipped", "/gzipped/{id}")])

    status, headers, got = http("GET", proxy.url("/gzipped/1"), {"x-request-id": "gzip-same"})
    assert status == 200 and headers.get("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(got)) == document  # the client gets legacy's bytes untouched
    assert_counters(settle(proxy, 1, "gzipped"), requests=1, served_legacy=1, shadowed=1, matched=1)

    assert send(proxy, ["/gzipped/99"], "gzip-other") == [200]
    assert_counters(settle(proxy, 2, "gzipped"), requests=2, served_legacy=2, shadowed=2, matched=1,
                    unmatched=1, unmatched_body=1)
    # Decoded, the bodies compare as JSON: the field is named, not "(body)",
    # and content-encoding is not a header difference.
    assert diff_paths(proxy, "gzipped") == {"/status": 1}


def test_status_class_and_status_equivalent(backend, envoy, wasm_path):
    ops = [
        operation("byClass", "/class/{id}", compare={"status": "class"}),
        operation("byGroup", "/group/{id}", compare={"status_equivalent": [[200, 201], [404, 410]]}),
        operation("exact", "/exact/{id}"),
    ]
    body = {"ok": True}

    def legacy_handler(request):
        return json_response(body, status=404 if 50 <= path_number(request) < 90 else 200)

    def candidate_handler(request):
        n = path_number(request)
        if n >= 90:
            return json_response(body, status=202)  # not in any group
        return json_response(body, status=410 if n >= 50 else 201)

    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    # class: 200/201 and 404/410 share their first digit; 200/202 too.
    assert send(proxy, ["/class/1", "/class/50", "/class/90"], "class") == [200, 404, 200]
    assert_counters(settle(proxy, 3, "byClass"), requests=3, served_legacy=3, shadowed=3, matched=3)

    # groups: 200=201 and 404=410 match, 200 against 202 does not.
    assert send(proxy, ["/group/1", "/group/50", "/group/90"], "group") == [200, 404, 200]
    assert_counters(settle(proxy, 3, "byGroup"), requests=3, served_legacy=3, shadowed=3, matched=2,
                    unmatched=1, unmatched_status=1)
    assert diff_paths(proxy, "byGroup") == {"status": 1}

    # control: exact codes.
    assert send(proxy, ["/exact/1", "/exact/50"], "exact") == [200, 404]
    assert_counters(settle(proxy, 2, "exact"), requests=2, served_legacy=2, shadowed=2,
                    unmatched=2, unmatched_status=2)
    assert diff_paths(proxy, "exact") == {"status": 2}


def test_uuid_mask_matches_fresh_uuids_on_each_side(backend, envoy, wasm_path):
    ops = [
        operation("masked", "/masked/{id}", compare={"masks": ["uuid"]}),
        operation("unmasked", "/unmasked/{id}"),
    ]

    def fresh(_request):
        return json_response({"id": 1, "trace": str(uuid.uuid4()), "upper": str(uuid.uuid4()).upper()})

    legacy, candidate, proxy = start(backend, envoy, fresh, fresh, ops)

    assert send(proxy, ["/masked/1", "/masked/2", "/masked/3", "/unmasked/1"], "mask") == [200] * 4
    assert_counters(settle(proxy, 3, "masked"), requests=3, served_legacy=3, shadowed=3, matched=3)
    assert_counters(settle(proxy, 1, "unmasked"), requests=1, served_legacy=1, shadowed=1,
                    unmatched=1, unmatched_body=1)
    assert diff_paths(proxy, "unmasked") == {"/trace": 1, "/upper": 1}


def test_max_diff_paths_bounds_the_per_field_counters(backend, envoy, wasm_path):
    fields = ("alpha", "bravo", "charlie", "delta")
    legacy_body = {name: 1 for name in fields}
    candidate_body = {name: 2 for name in fields}
    ops = [operation("bounded", "/bounded/{id}", max_diff_paths=2)]
    legacy, candidate, proxy = start(backend, envoy, fixed(legacy_body), fixed(candidate_body), ops)

    # One request first: its worker picks the two fields that get a counter.
    assert send(proxy, ["/bounded/0"], "bounded-first") == [200]
    settle(proxy, 1, "bounded")
    assert send(proxy, [f"/bounded/{i}" for i in range(1, 5)], "bounded") == [200] * 4
    c = settle(proxy, 5, "bounded")
    assert_counters(c, requests=5, served_legacy=5, shadowed=5, unmatched=5, unmatched_body=5,
                    unmatched_path_overflow=10)
    paths = diff_paths(proxy, "bounded")
    assert len(paths) == 2, paths
    assert set(paths) <= {f"/{name}" for name in fields}, paths
    assert set(paths.values()) == {5}, paths

    text = proxy.prometheus()
    labelled = [line for line in text.splitlines()
                if line.startswith("parallel_run_operation_unmatched_path{") and 'operation_id="bounded"' in line]
    assert len(labelled) == 2, labelled
    assert prometheus_value(text, "parallel_run_operation_unmatched_path_overflow", operation_id="bounded") == 10


# ---------------------------------------------------------------------------
# noise learning


def timestamps():
    """A source of values that differ on every call, like `updated_at`."""
    counter = itertools.count()
    return lambda: f"2026-11-22T10:00:00.{time.time_ns()}-{next(counter)}"


def test_noise_learning_turns_a_field_that_changes_on_every_call_into_a_match(backend, envoy, wasm_path):
    stamp = timestamps()
    release_repeats = threading.Event()

    def legacy_handler(request):
        if request.header(MARKER) is not None:
            # The repeat of phase 1 waits, so that nothing is learned before
            # every phase-1 comparison has been judged.
            release_repeats.wait(timeout=8)
        return json_response({"id": path_number(request), "updated_at": stamp()})

    def candidate_handler(request):
        return json_response({"id": path_number(request), "updated_at": stamp()})

    ops = [operation("noisy", "/noisy/{id}", noise_percent=100, learn_noise=True, shadow_timeout_ms=10000)]
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    # Phase 1: nothing learned yet, every comparison differs on /updated_at.
    phase1 = 15
    assert send(proxy, [f"/noisy/{i}" for i in range(phase1)], "phase1") == [200] * phase1
    c = settle(proxy, phase1, "noisy")
    assert_counters(c, requests=phase1, served_legacy=phase1, shadowed=phase1,
                    unmatched=phase1, unmatched_body=phase1)
    assert diff_paths(proxy, "noisy") == {"/updated_at": phase1}
    wait_until(lambda: sum(1 for r in legacy.received if r.header(MARKER)) == phase1,
               message="the phase-1 repeats at legacy")
    assert noise_lines(proxy, "noisy") == []

    release_repeats.set()
    wait_counter(proxy, "noisy", "noise_samples", phase1)
    line = wait_noise(proxy, "noisy", ["/updated_at"])
    assert "learned from" in line
    assert wait_until(lambda: noise_gauges(proxy, "noisy").get("/updated_at") == 1,
                      message="gauge noise_path./updated_at == 1")
    assert noise_gauges(proxy, "noisy") == {"/updated_at": 1}

    # Phase 2: /updated_at is noise now; the same difference matches.
    phase2 = 10
    assert send(proxy, [f"/noisy/{100 + i}" for i in range(phase2)], "phase2") == [200] * phase2
    total = phase1 + phase2
    c = settle(proxy, total, "noisy")
    c = wait_counter(proxy, "noisy", "noise_samples", total)
    assert_counters(c, requests=total, served_legacy=total, shadowed=total, matched=phase2,
                    unmatched=phase1, unmatched_body=phase1, noise_samples=total)
    # Learned noise is not on the to-do list.
    assert diff_paths(proxy, "noisy") == {"/updated_at": phase1}

    # Legacy received every request twice: once served, once repeated with
    # the shadow marker; the candidate once, with the marker.
    by_id = {}
    for request in legacy.received:
        by_id.setdefault(request.header("x-request-id"), []).append(request.header(MARKER))
    assert len(by_id) == total
    assert all(sorted(markers, key=str) == sorted([None, "noisy"], key=str) for markers in by_id.values()), by_id
    assert len(candidate.received) == total
    assert {r.header(MARKER) for r in candidate.received} == {"noisy"}

    text = proxy.prometheus()
    assert prometheus_value(text, "parallel_run_operation_noise_path",
                            operation_id="noisy", diff_path="/updated_at") == 1, \
        [line for line in text.splitlines() if "noise_path" in line]
    assert prometheus_value(text, "parallel_run_operation_noise_samples", operation_id="noisy") == total


def test_noise_repeats_only_safe_methods(backend, envoy, wasm_path):
    stamp = timestamps()

    def handler(request):
        return json_response({"updated_at": stamp()})

    # Inherited from the defaults: set on the POST operation itself, noise
    # settings are refused as having no effect; inherited, the filter must
    # still never repeat a POST.
    defaults = {"mode": "legacy", "shadow_timeout_ms": 3000, "noise_percent": 100, "learn_noise": True,
                "shadow_unsafe": True}
    ops = [operation("createOrder", "/orders", method="POST"), operation("getOrder", "/orders/{id}")]
    legacy = backend(handler, name="legacy")
    candidate = backend(handler, name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=plugin_config(ops, defaults=defaults))

    posts = 5
    assert send(proxy, ["/orders"] * posts, "post", method="POST", body={"amount": 1}) == [200] * posts
    settle(proxy, posts, "createOrder")
    # Control, sent after the POSTs: GETs of the same configuration are repeated.
    gets = 3
    assert send(proxy, [f"/orders/{i}" for i in range(gets)], "get") == [200] * gets
    settle(proxy, gets, "getOrder")
    wait_counter(proxy, "getOrder", "noise_samples", gets)

    c = counters(proxy, "createOrder")
    assert_counters(c, requests=posts, served_legacy=posts, shadowed=posts, unmatched=posts, unmatched_body=posts)
    legacy_posts = [r for r in legacy.received if r.method == "POST"]
    assert len(legacy_posts) == posts, "a POST was sent twice to the serving backend"
    assert [r.header(MARKER) for r in legacy_posts] == [None] * posts
    assert [r.body for r in legacy_posts] == [b'{"amount": 1}'] * posts
    assert len([r for r in candidate.received if r.method == "POST"]) == posts
    assert len([r for r in legacy.received if r.method == "GET"]) == 2 * gets


def test_a_field_that_really_differs_is_not_learned_as_noise(backend, envoy, wasm_path):
    stamp = timestamps()

    def legacy_handler(request):
        return json_response({"updated_at": stamp(), "total": 100})

    def candidate_handler(request):
        return json_response({"updated_at": stamp(), "total": 200})

    ops = [operation("totals", "/totals/{id}", noise_percent=100, learn_noise=True)]
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    phase1 = 15
    assert send(proxy, [f"/totals/{i}" for i in range(phase1)], "phase1") == [200] * phase1
    settle(proxy, phase1, "totals")
    wait_counter(proxy, "totals", "noise_samples", phase1)
    wait_noise(proxy, "totals", ["/updated_at"])

    phase2 = 10
    assert send(proxy, [f"/totals/{100 + i}" for i in range(phase2)], "phase2") == [200] * phase2
    total = phase1 + phase2
    settle(proxy, total, "totals")
    c = wait_counter(proxy, "totals", "noise_samples", total)
    time.sleep(SYNC_WAIT_S)  # the phase-2 counts are merged too

    assert_counters(c, requests=total, served_legacy=total, shadowed=total,
                    unmatched=total, unmatched_body=total, noise_samples=total)
    paths = diff_paths(proxy, "totals")
    assert paths["/total"] == total, paths
    assert paths.get("/updated_at", 0) <= phase1, paths
    assert noise_gauges(proxy, "totals") == {"/updated_at": 1}
    lines = noise_lines(proxy, "totals")
    assert lines and not [line for line in lines if "/total," in line or "/total]" in line], lines


def test_a_field_noisy_in_legacy_but_differing_far_more_against_the_candidate_stays_real(backend, envoy, wasm_path):
    # Driven by the request number, so the rates are exact: legacy's repeat
    # differs from legacy on /total for n % 10 == 0 (10% of repeats), the
    # candidate differs on /total for every request (100%). 1.0 > 0.1 + 0.1.
    stamp = timestamps()

    def legacy_handler(request):
        n = path_number(request)
        repeat = request.header(MARKER) is not None
        return json_response({"updated_at": stamp(), "total": 101 if repeat and n % 10 == 0 else 100})

    def candidate_handler(request):
        return json_response({"updated_at": stamp(), "total": 999})

    ops = [operation("racy", "/racy/{id}", noise_percent=100, learn_noise=True)]
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    phase1 = 30
    assert send(proxy, [f"/racy/{i}" for i in range(phase1)], "phase1") == [200] * phase1
    settle(proxy, phase1, "racy")
    wait_counter(proxy, "racy", "noise_samples", phase1)
    wait_noise(proxy, "racy", ["/updated_at"])
    time.sleep(SYNC_WAIT_S)  # every worker's counts are merged: 3 of 30 self differences on /total

    phase2 = 10
    assert send(proxy, [f"/racy/{100 + i}" for i in range(phase2)], "phase2") == [200] * phase2
    total = phase1 + phase2
    settle(proxy, total, "racy")
    c = wait_counter(proxy, "racy", "noise_samples", total)
    time.sleep(SYNC_WAIT_S)

    assert_counters(c, requests=total, served_legacy=total, shadowed=total,
                    unmatched=total, unmatched_body=total, noise_samples=total)
    assert diff_paths(proxy, "racy")["/total"] == total
    assert noise_gauges(proxy, "racy") == {"/updated_at": 1}
    lines = noise_lines(proxy, "racy")
    assert lines and not [line for line in lines if "/total," in line or "/total]" in line], lines


def test_a_field_differing_as_often_against_the_candidate_as_against_itself_is_noise(backend, envoy, wasm_path):
    # The other side of the rule: /flag differs between two legacy answers
    # for even n (50% of repeats) and between legacy and the candidate for
    # even n too (50% of comparisons): 0.5 <= 0.5 + 0.1, so it is noise. The
    # candidate rate is over all comparisons, the matched ones included.
    def legacy_handler(request):
        n = path_number(request)
        repeat = request.header(MARKER) is not None
        return json_response({"id": n, "flag": 1 if repeat and n % 2 == 0 else 0})

    def candidate_handler(request):
        n = path_number(request)
        return json_response({"id": n, "flag": 1 if n % 2 == 0 else 0})

    ops = [operation("flappy", "/flappy/{id}", noise_percent=100, learn_noise=True)]
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    phase1 = 20
    assert send(proxy, [f"/flappy/{i}" for i in range(phase1)], "phase1") == [200] * phase1
    c = settle(proxy, phase1, "flappy")
    # Odd n match; even n differ on /flag until it is learned.
    assert c["matched"] >= 10 and c["unmatched"] <= 10, nonzero(c)
    wait_counter(proxy, "flappy", "noise_samples", phase1)
    wait_noise(proxy, "flappy", ["/flag"])
    before = counters(proxy, "flappy")
    assert noise_gauges(proxy, "flappy") == {"/flag": 1}

    phase2 = 10
    assert send(proxy, [f"/flappy/{100 + i}" for i in range(phase2)], "phase2") == [200] * phase2
    total = phase1 + phase2
    settle(proxy, total, "flappy")
    c = wait_counter(proxy, "flappy", "noise_samples", total)
    # Every phase-2 comparison matches, the even ones through learned noise.
    assert c["matched"] - before["matched"] == phase2, (nonzero(before), nonzero(c))
    assert c["unmatched"] == before["unmatched"], (nonzero(before), nonzero(c))


def test_books_balance_with_noise_sampling_on(backend, envoy, wasm_path):
    # Candidate: n % 4 == 0 -> 503 (failed), n % 4 == 1 -> another body
    # (unmatched), else the same (matched). Legacy's repeat: n % 5 == 0 ->
    # 503, a failed repeat that teaches nothing and is no outcome.
    def legacy_handler(request):
        n = path_number(request)
        if request.header(MARKER) is not None and n % 5 == 0:
            return json_response({"error": "busy"}, status=503)
        return json_response({"id": n, "state": "open"})

    def candidate_handler(request):
        n = path_number(request)
        if n % 4 == 0:
            return json_response({"error": "busy"}, status=503)
        return json_response({"id": n, "state": "closed" if n % 4 == 1 else "open"})

    ops = [operation("books", "/books/{id}", noise_percent=100, learn_noise=True)]
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)

    n = 40
    assert send(proxy, [f"/books/{i}" for i in range(n)], "books") == [200] * n
    settle(proxy, n, "books")
    repeats_ok = sum(1 for i in range(n) if i % 5 != 0)
    wait_counter(proxy, "books", "noise_samples", repeats_ok)
    wait_until(lambda: len(legacy.received) == 2 * n, message="every request served and repeated at legacy")
    time.sleep(0.3)  # nothing more may arrive
    c = counters(proxy, "books")
    assert balanced(c), nonzero(c)
    failed = sum(1 for i in range(n) if i % 4 == 0)
    unmatched = sum(1 for i in range(n) if i % 4 == 1)
    assert_counters(c, requests=n, served_legacy=n, shadowed=n, matched=n - failed - unmatched,
                    unmatched=unmatched, unmatched_body=unmatched, failed=failed, failed_5xx=failed,
                    noise_samples=repeats_ok)
    assert len(legacy.received) == 2 * n and len(candidate.received) == n


def test_every_differing_field_counts_in_every_comparison(backend, envoy, wasm_path):
    # 30 fields that legacy lists first, then the one that matters: each of
    # 100 comparisons differs in all 31 (the filter once kept only 16 paths
    # of a comparison, legacy's keys first, and counted the rest nowhere).
    names = [f"a{i:02}" for i in range(30)] + ["zz_bug"]
    legacy_body = {name: 1 for name in names}
    candidate_body = {name: 2 for name in names}
    ops = [operation("wide", "/wide/{id}", max_diff_paths=40),
           operation("narrow", "/narrow/{id}", max_diff_paths=10)]
    legacy, candidate, proxy = start(backend, envoy, fixed(legacy_body), fixed(candidate_body), ops)

    n = 100
    assert send(proxy, [f"/wide/{i}" for i in range(n)], "wide") == [200] * n
    assert send(proxy, [f"/narrow/{i}" for i in range(n)], "narrow") == [200] * n
    assert_counters(settle(proxy, n, "wide"), requests=n, served_legacy=n, shadowed=n, unmatched=n,
                    unmatched_body=n)
    paths = diff_paths(proxy, "wide")
    assert paths == {f"/{name}": n for name in names}, paths
    c = settle(proxy, n, "narrow")
    # Ten slots; every other field of every comparison is overflow, exactly.
    assert c["unmatched_path_overflow"] == (len(names) - 10) * n, nonzero(c)
    narrow = diff_paths(proxy, "narrow")
    assert len(narrow) == 10 and set(narrow.values()) == {n}, narrow
    # The current revision's gauges say the same, under their own label.
    text = proxy.prometheus()
    assert prometheus_value(text, "parallel_run_operation_unmatched_path_current",
                            operation_id="wide", diff_path="/zz_bug") == n
    assert prometheus_value(text, "parallel_run_operation_unmatched_path_overflow_current",
                            operation_id="narrow") == (len(names) - 10) * n


VECTORS = __import__("pathlib").Path(__file__).resolve().parents[2] / "core" / "src" / "compare" / "tests" / "vectors"


def test_brotli_and_zstd_candidates_equal_an_identity_legacy(backend, envoy, wasm_path):
    # Encoded by real encoders (see core/src/compare/tests/vectors/README.md).
    plain = (VECTORS / "body.json").read_bytes()
    coded = {"br": (VECTORS / "body.json.br").read_bytes(), "zstd": (VECTORS / "body.stream.zst").read_bytes()}
    other = json.dumps(dict(json.loads(plain), id=8)).encode()

    def legacy_handler(request):
        return Response(200, [("content-type", "application/json")], other if path_number(request) == 99 else plain)

    def candidate_handler(request):
        coding = request.path.split("/")[1]
        return Response(200, [("content-type", "application/json"), ("content-encoding", coding)], coded[coding])

    ops = [operation("brotli", "/br/{id}"), operation("zstd", "/zstd/{id}")]
    legacy, candidate, proxy = start(backend, envoy, legacy_handler, candidate_handler, ops)
    assert send(proxy, ["/br/1", "/br/2", "/zstd/1", "/br/99"], "coded") == [200] * 4
    assert_counters(settle(proxy, 3, "brotli"), requests=3, served_legacy=3, shadowed=3, matched=2,
                    unmatched=1, unmatched_body=1)
    assert_counters(settle(proxy, 1, "zstd"), requests=1, served_legacy=1, shadowed=1, matched=1)
    # Decoded, the bodies compare as JSON: the field is named, and
    # content-encoding is no header difference.
    assert diff_paths(proxy, "brotli") == {"/id": 1}


def test_a_header_mask_matches_fresh_ids_in_one_header(backend, envoy, wasm_path):
    def fresh(_request):
        return Response(200, [("content-type", "application/json"), ("x-request-trace", f"t={uuid.uuid4()}")],
                        b'{"ok":true}')

    ops = [operation("masked", "/masked/{id}", compare={"header_masks": {"x-request-trace": "uuid"}}),
           operation("unmasked", "/unmasked/{id}")]
    legacy, candidate, proxy = start(backend, envoy, fresh, fresh, ops)
    assert send(proxy, ["/masked/1", "/masked/2", "/unmasked/1"], "hmask") == [200] * 3
    assert_counters(settle(proxy, 2, "masked"), requests=2, served_legacy=2, shadowed=2, matched=2)
    assert_counters(settle(proxy, 1, "unmasked"), requests=1, served_legacy=1, shadowed=1, unmatched=1,
                    unmatched_headers=1)
    assert diff_paths(proxy, "unmasked") == {"header:x-request-trace": 1}
