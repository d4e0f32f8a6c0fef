"""Header rules for the copies of a request: a candidate in another trust
zone gets a test credential instead of the client's, and no cookie, while
the request the client is served with is untouched."""

from harness import http, settle

CONFIG = {
    "revision": "headers",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "legacy"},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow",
                    "shadow_headers": {"remove": ["cookie"], "set": {"authorization": "Bearer candidate-test"}}}],
}


def test_the_copy_carries_the_rules_and_the_served_request_does_not(backend, envoy, wasm_path):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
    headers = {"authorization": "Bearer real-user", "cookie": "session=abc", "accept": "application/json"}
    assert http("GET", proxy.url("/returns/1"), headers=headers)[0] == 200
    settle(proxy, 1, "getReturn")
    [served] = legacy.wait_for(1)
    [copy] = candidate.wait_for(1)
    assert (served.header("authorization"), served.header("cookie")) == ("Bearer real-user", "session=abc")
    assert copy.header("authorization") == "Bearer candidate-test"
    assert copy.header("cookie") is None
    assert copy.header("accept") == "application/json"
    assert [v for k, v in copy.headers if k == "authorization"] == ["Bearer candidate-test"], "replaced, not added"
