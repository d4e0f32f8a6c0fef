"""A shadow call's failure is classified by what Envoy reports: a 5xx counts
as `failed_5xx` only when a backend sent it (Envoy's router marks those with
x-envoy-upstream-service-time); Envoy's own replies for garbage, a reset in
the middle of the headers or a refused connection are `failed_error`."""

import pytest

from harness import assert_counters, free_port, http, settle
from testbed.backend import FaultBackend

CONFIG = {
    "revision": "causes",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000},
    "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"}],
}


@pytest.mark.parametrize("name", ["garbage", "cut_in_headers"])
def test_envoys_own_replies_are_errors_not_the_candidates_5xx(backend, envoy, wasm_path, name):
    legacy = backend(name="legacy")
    candidate = FaultBackend(name, "candidate")
    try:
        proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, config=CONFIG)
        for n in range(3):
            assert http("GET", proxy.url(f"/returns/{n}"))[0] == 200, name  # the client never notices
        assert_counters(settle(proxy, 3, "getReturn"), requests=3, served_legacy=3, shadowed=3,
                        failed=3, failed_error=3)
    finally:
        candidate.stop()


def test_a_refused_connection_is_an_error(backend, envoy, wasm_path):
    legacy = backend(name="legacy")
    proxy = envoy({"legacy": legacy.port, "candidate": free_port()}, wasm_path=wasm_path, config=CONFIG)
    assert http("GET", proxy.url("/returns/1"))[0] == 200
    assert_counters(settle(proxy, 1, "getReturn"), requests=1, served_legacy=1, shadowed=1, failed=1, failed_error=1)
