"""A faithful comparison: the shadow copy and the noise repeat carry the
client's request as the serving backend received it.

The backends here echo their request (method, path and query, every header,
the body) as JSON, and both legacy and candidate are that echo: through the
filter in shadow mode, every comparison must then be matched, and noise
learning must learn nothing, however the request looks. Before the shipped
bootstraps' upstream filter (envoy/envoy.yaml, cluster `legacy`) every copy
differed from the served request in x-envoy-internal and
x-envoy-expected-rq-timeout-ms, and the route header reached the served
request only: every comparison was unmatched, and noise learning learned the
proxy's own headers as legacy noise."""

import json
import time

from harness import SHADOW_MARKER, http, json_response, nonzero, operation_counters, settle

CONFIG = {
    "revision": "faithful",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "legacy"},
    "operations": [
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow",
         "noise_percent": 100, "learn_noise": True},
        {"id": "createReturn", "method": "POST", "path": "/returns", "mode": "shadow", "shadow_unsafe": True},
    ],
}
# Noise learning decides after 10 repeats (README, "Noise learning").
REPEATS = 14
# Every worker merges its noise counts and reads the verdict back once a second.
NOISE_TICKS_S = 3.0

# What clients send: the headers a client controls, including ones a proxy
# often touches (x-forwarded-for, x-request-id, authorization, cookie).
CLIENT_HEADERS = [
    {"accept": "application/json"},
    {"accept": "*/*", "x-forwarded-for": "203.0.113.7", "user-agent": "faithful/1"},
    {"authorization": "Bearer user-1", "cookie": "session=abc; theme=dark"},
    {"x-custom": "one", "accept-language": "de-CH, en;q=0.5", "cache-control": "no-cache"},
]


def echo(consumes_marker):
    """An echo of the whole request. A service that acts on the shadow marker
    treats it as a control header and does not echo it (`consumes_marker`);
    a plain echo returns it like any other header."""

    def handle(request):
        headers = {}
        for name, value in request.headers:
            if consumes_marker and name == SHADOW_MARKER:
                continue
            headers.setdefault(name, []).append(value)
        return json_response({"method": request.method, "path": request.path, "headers": headers,
                              "body": request.body.decode("utf-8", "replace")})

    return handle


def drop_marker_at_the_backends(bootstrap):
    """The README's option for a backend that needs no marker: one more removal
    in the clusters' upstream header filter."""
    for cluster in bootstrap["static_resources"]["clusters"]:
        for options in cluster.get("typed_extension_protocol_options", {}).values():
            for upstream_filter in options.get("http_filters", []):
                if upstream_filter["name"] == "parallel-run.same-request":
                    mutations = upstream_filter["typed_config"]["mutations"]["request_mutations"]
                    if {"remove": SHADOW_MARKER} not in mutations:
                        mutations.append({"remove": SHADOW_MARKER})


def without_marker(request):
    return sorted((name, value) for name, value in request.headers if name != SHADOW_MARKER)


def run(backend, envoy, wasm_path, consumes_marker, tweak=None):
    legacy = backend(echo(consumes_marker), name="legacy")
    candidate = backend(echo(consumes_marker), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG,
                  tweak=tweak)
    for i in range(REPEATS):
        headers = CLIENT_HEADERS[i % len(CLIENT_HEADERS)]
        status, _, body = http("GET", proxy.url(f"/returns/{i}?page={i}&q=a%20b"), headers=headers)
        assert status == 200, body
        assert json.loads(body)["path"] == f"/returns/{i}?page={i}&q=a%20b"
    posts = [json.dumps({"item": i, "reason": "späť", "note": "x" * (i * 300)}).encode() for i in range(4)]
    for i, payload in enumerate(posts):
        headers = dict(CLIENT_HEADERS[i], **{"content-type": "application/json"})
        assert http("POST", proxy.url("/returns?source=web"), headers=headers, body=payload)[0] == 200
    gets = settle(proxy, REPEATS, "getReturn")
    creates = settle(proxy, len(posts), "createReturn")
    time.sleep(NOISE_TICKS_S)
    return proxy, legacy, candidate, gets, creates


def assert_faithful(proxy, legacy, candidate, gets, creates):
    assert nonzero(gets) == {"requests": REPEATS, "served_legacy": REPEATS, "shadowed": REPEATS,
                             "matched": REPEATS, "noise_samples": REPEATS}, "a GET copy or repeat differed"
    assert nonzero(creates) == {"requests": 4, "served_legacy": 4, "shadowed": 4, "matched": 4}, \
        "a POST copy differed"
    noise = proxy.stats(filter=r"^wasmcustom\.parallel_run\.operation\.getReturn\.noise_path")
    assert nonzero(noise) == {}, f"noise learned from the proxy's own headers: {noise}"
    assert "parallel-run: noise" not in proxy.log_text()

    # What the backends saw, side by side: a GET's served request, its
    # repeat (legacy) and its shadow copy (candidate), a POST's served request
    # and its copy, are one request but for the marker.
    received = legacy.received + candidate.received
    groups = {}
    for request in received:
        groups.setdefault((request.method, request.path, request.body), []).append(request)
    assert sorted(len(g) for g in groups.values()) == [2] * 4 + [3] * REPEATS
    for group in groups.values():
        assert len({tuple(without_marker(r)) for r in group}) == 1, [r.headers for r in group]
    for name in ("x-parallel-run-cluster", "x-envoy-internal", "x-envoy-expected-rq-timeout-ms"):
        assert all(r.header(name) is None for r in received), name
    return groups


def test_an_echo_matches_itself_through_the_filter(backend, envoy, wasm_path):
    proxy, legacy, candidate, gets, creates = run(backend, envoy, wasm_path, consumes_marker=True)
    groups = assert_faithful(proxy, legacy, candidate, gets, creates)
    # The marker still reaches every copy, for a candidate that must skip
    # side effects, and only the copies.
    for group in groups.values():
        assert sorted(r.header(SHADOW_MARKER) or "" for r in group)[0] == "", "the served request has no marker"
        assert len({r.header(SHADOW_MARKER) for r in group if r.header(SHADOW_MARKER)}) == 1
        assert sum(r.header(SHADOW_MARKER) is None for r in group) == 1


def test_a_plain_echo_matches_when_the_backends_need_no_marker(backend, envoy, wasm_path):
    proxy, legacy, candidate, gets, creates = run(backend, envoy, wasm_path, consumes_marker=False,
                                                  tweak=drop_marker_at_the_backends)
    assert_faithful(proxy, legacy, candidate, gets, creates)
    assert all(r.header(SHADOW_MARKER) is None for r in legacy.received + candidate.received)
    # The filter still told one request from the other: the copies were made.
    assert len(candidate.received) == REPEATS + 4
    assert operation_counters(proxy, "getReturn")["noise_samples"] == REPEATS
