"""A large configuration pushed into a running Envoy (concurrency 2, ECDS):
validated whole on the main thread, applied by the workers a slice at a time
while they keep serving the previous one, refused when its error lies past
the first slice. Real Envoy, real backends on 127.0.0.1.
"""

import copy
import json

from harness import http, wait_until
from test_live_config import SERVING, assert_still_serving, backends, filter_stats, op_stat, start_envoy, wait_log  # noqa: F401

# Past the workers' first slice of 500 (src/root.rs OPERATIONS_PER_SLICE)
# and up to the configuration's limit of operations.
MORE = 9_990


def large(revision, broken_at=None):
    config = copy.deepcopy(SERVING)
    config["revision"] = revision
    for i in range(MORE):
        op = {"id": f"bulk{i}", "method": "GET", "path": f"/bulk{i}/{{id}}"}
        if i == broken_at:
            op["path"] = f"/bulk{i}/{{id"
        config["operations"].append(op)
    return config


def push(proxy, config):
    resource = json.loads(proxy.ecds_file.read_text())
    resource["resources"][0]["typed_config"]["config"]["configuration"]["value"] = json.dumps(config)
    before = proxy.ecds_counts()
    proxy.write_ecds(json.dumps(resource))
    return before


def test_a_large_configuration_is_applied_by_every_worker_and_then_serves(wasm_path, backends, envoy):  # noqa: F811
    proxy = start_envoy(envoy, wasm_path, backends, SERVING)
    wait_log(proxy, 'configuration applied: revision="serving-1"')
    before = push(proxy, large("large-1"))
    proxy.wait_config_applied(before, timeout=60)
    # The validating VM, the main thread's and each of the two workers'.
    wait_until(lambda: proxy.log_text().count('configuration applied: revision="large-1"') >= 4, 30,
               message="every VM applied it")
    # At least the two workers applied it in slices, serving meanwhile.
    assert proxy.log_text().count("configuration validated; applying its other") >= 2
    stats_before = filter_stats(proxy)
    # The last operation of the list, far past the first slice, on both workers.
    for _ in range(8):
        status, _, body = http("GET", proxy.url(f"/bulk{MORE - 1}/7"))
        assert status == 200 and json.loads(body)["backend"] == "legacy", body
    stats = filter_stats(proxy)
    assert stats.get(op_stat(f"bulk{MORE - 1}", "requests"), 0) - stats_before.get(op_stat(f"bulk{MORE - 1}", "requests"), 0) == 8
    assert_still_serving(proxy, backends, filter_stats(proxy))


def test_a_large_configuration_broken_past_the_first_slice_is_refused(wasm_path, backends, envoy):  # noqa: F811
    proxy = start_envoy(envoy, wasm_path, backends, SERVING)
    wait_log(proxy, 'configuration applied: revision="serving-1"')
    stats_before = filter_stats(proxy)
    before = push(proxy, large("large-broken", broken_at=MORE - 10))
    counts = proxy.wait_config_rejected(before, timeout=60)
    assert counts["update_success"] == before["update_success"], counts
    index = len(SERVING["operations"]) + MORE - 10
    wait_log(proxy, f"configuration refused: operations[{index}].path: unbalanced '{{'")
    log = proxy.log_text()
    assert 'configuration applied: revision="large-broken"' not in log
    assert "refused after it was accepted" not in log
    assert_still_serving(proxy, backends, stats_before)
