"""The module `make build` ships: cargo's build with `proxy_on_log` taken
out of its exports (envoy/exports.py), and nothing else changed. Every other
e2e test runs on that module in a real Envoy, so the streams ending in
`proxy_on_delete` instead are exercised (and counted) there."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "target/wasm32-wasip1/release/parallel_run.wasm"
CARGO_OUTPUT = REPO / "target/wasm32-wasip1/release/deps/parallel_run.wasm"

spec = importlib.util.spec_from_file_location("exports", REPO / "envoy/exports.py")
exports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exports)


def sections(module):
    """[(id, body)] of a module, in order."""
    return [(section, module[body_at:end]) for section, _, body_at, end in exports.sections(module)]


def names(module):
    return [name for name, _ in exports.exports_of(module)]


def test_the_shipped_module_lacks_only_proxy_on_log():
    shipped, built = SHIPPED.read_bytes(), CARGO_OUTPUT.read_bytes()
    assert "proxy_on_log" in names(built)
    assert names(shipped) == [n for n in names(built) if n != "proxy_on_log"]
    # The callbacks a stream needs are all still there.
    for needed in ("proxy_on_context_create", "proxy_on_request_headers", "proxy_on_request_body",
                   "proxy_on_response_headers", "proxy_on_response_body", "proxy_on_done", "proxy_on_delete",
                   "proxy_on_http_call_response", "proxy_on_queue_ready", "proxy_on_tick",
                   "proxy_on_memory_allocate"):
        assert needed in names(shipped), needed
    # Every section but the exports is the same, byte for byte.
    assert [s for s in sections(shipped) if s[0] != 7] == [s for s in sections(built) if s[0] != 7]


def test_taking_out_is_idempotent_and_refuses_what_is_not_a_module():
    shipped = SHIPPED.read_bytes()
    again, removed = exports.without(shipped, exports.UNNEEDED)
    assert (again, removed) == (shipped, [])
    with pytest.raises(exports.Malformed, match="not a WebAssembly"):
        exports.without(b"MZ" + shipped[2:], exports.UNNEEDED)
    with pytest.raises(exports.Malformed, match="runs past the end"):
        exports.without(shipped[:len(shipped) // 2], exports.UNNEEDED)
