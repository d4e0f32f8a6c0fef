"""The shipped bootstraps load the built filter and route through it; ECDS pushes
are applied without restart and bad ones are refused while the old config serves.

These need the .wasm (make test builds it first); the filter's own behaviour is
tested elsewhere.
"""

import json

from harness import SHADOW_MARKER, example_plugin_config, http


def served(backend):
    """The requests `backend` served (not shadow copies)."""
    return [r for r in backend.received if r.header(SHADOW_MARKER) is None]


def test_static_bootstrap_routes_through_filter(wasm_path, backend, envoy):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path)

    status, _, body = http("GET", proxy.url("/returns/1"))
    assert status == 200, body
    request = legacy.wait_for(1)[0]
    assert request.path == "/returns/1"
    assert request.header("x-parallel-run-cluster") is None, "the route header stops at the route"
    assert served(candidate) == [], "legacy serves; the candidate only gets shadow copies"


def test_ecds_push_applies_and_bad_push_is_refused(wasm_path, backend, envoy):
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm_path, ecds=True)
    assert http("GET", proxy.url("/returns/1"))[0] == 200

    config = example_plugin_config()
    config["revision"] = "test-2"
    before = proxy.ecds_counts()
    result = proxy.push_config(config)
    assert result.returncode == 0, result.stderr
    proxy.wait_config_applied(before)
    assert http("GET", proxy.url("/returns/1"))[0] == 200

    # Plugin JSON that the filter's on_configure must refuse, written directly
    # (parallel-run-ctl would refuse it before Envoy sees it).
    resource = json.loads(proxy.ecds_file.read_text())
    resource["resources"][0]["typed_config"]["config"]["configuration"]["value"] = "{not json"
    before = proxy.ecds_counts()
    proxy.write_ecds(json.dumps(resource))
    proxy.wait_config_rejected(before)

    before = proxy.ecds_counts()
    proxy.write_ecds("{ this is not a discovery response")
    proxy.wait_config_rejected(before)

    legacy.clear()
    status, _, body = http("GET", proxy.url("/returns/1"))
    assert status == 200, body  # the last good config still serves
    assert legacy.wait_for(1)[0].path == "/returns/1"
    assert served(candidate) == [], "legacy serves; the candidate only gets shadow copies"
