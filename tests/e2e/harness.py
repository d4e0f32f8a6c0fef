"""End-to-end harness: real HTTP backends and a real Envoy, all on 127.0.0.1.

The parts live in the repository's `testbed` package, shared with the
benchmarks (bench/) and the demo (demo/); this module gathers the names the
tests import, so that a test needs one `from harness import ...`.

    with Backend(name="legacy") as legacy, Backend(name="candidate") as candidate:
        with Envoy(tmp_dir, {"legacy": legacy.port, "candidate": candidate.port}) as envoy:
            status, headers, body = http("GET", envoy.url("/returns/1"))
"""

import sys

from testbed.backend import Backend, Request, Response, echo_handler, json_response
from testbed.counters import (OPERATION_COUNTERS, OPERATION_GAUGES, OPERATION_STATS, WINDOW_START_S, assert_counters,
                              balanced, nonzero, operation_counters, settle, wait_ready)
from testbed.envoy import (BOOTSTRAP, BOOTSTRAP_ECDS, CTL_PATH, EARLY_HEADER_GUARD, ECDS_COUNTERS, ECDS_RESOURCE,
                           ECDS_STAT, FILTER_NAME, HCM, HEADER_GUARD, OPERATION_HEADER, PLUGIN_CONFIG, REPO,
                           SHADOW_MARKER, WASM_PATH, Envoy, connection_manager, envoy_binary, example_plugin_config,
                           guarded_headers, keep_raw_paths, set_plugin_config, static_cluster,
                           trust_operation_header, without_header_guard, write_atomic)
from testbed.net import HOST, Client, free_port, http, wait_until
from testbed.process import stop_process

# Private helpers that lived here before the move, for a test that reached for one.
from testbed.backend import _Handler, _Server  # noqa: E402,F401
from testbed.envoy import _instances, _socket_address  # noqa: E402,F401
from testbed.envoy import regex_escape as _regex_escape  # noqa: E402,F401
from testbed.net import _encode, _split  # noqa: E402,F401

__all__ = [
    "BOOTSTRAP", "BOOTSTRAP_ECDS", "CTL_PATH", "EARLY_HEADER_GUARD", "ECDS_COUNTERS", "ECDS_RESOURCE", "ECDS_STAT",
    "FILTER_NAME", "HCM", "HEADER_GUARD", "HOST", "OPERATION_COUNTERS", "OPERATION_GAUGES", "OPERATION_HEADER",
    "OPERATION_STATS", "PLUGIN_CONFIG", "REPO", "SHADOW_MARKER", "WASM_PATH", "connection_manager",
    "guarded_headers", "keep_raw_paths", "trust_operation_header", "without_header_guard",
    "Backend", "Client", "Envoy", "Request", "Response", "assert_counters", "balanced", "echo_handler",
    "envoy_binary", "example_plugin_config", "free_port", "http", "json_response", "nonzero", "operation_counters",
    "set_plugin_config", "settle", "static_cluster", "stop_process", "wait_until", "write_atomic",
    "WINDOW_START_S", "wait_ready",
]

if __name__ == "__main__":  # quick manual check, from the repository root: PYTHONPATH=. python tests/e2e/harness.py
    print(envoy_binary(), file=sys.stderr)
