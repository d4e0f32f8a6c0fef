"""Fixtures for the end-to-end tests: temp dir, the built .wasm, and
factories for Backends and Envoys that are always stopped after the test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import harness  # noqa: E402 - needs the path above


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome on the test item, so teardown knows about failures."""
    report = yield
    setattr(item, "report_" + report.when, report)
    return report


def _failed(request):
    return any(getattr(getattr(request.node, "report_" + when, None), "failed", False) for when in ("setup", "call"))


@pytest.fixture
def tmp(tmp_path):
    """Per-test directory for generated bootstraps, ECDS files and Envoy logs."""
    return tmp_path


@pytest.fixture
def wasm_path():
    """The release .wasm. Missing means the build step was skipped: fail, do not skip."""
    if not harness.WASM_PATH.exists():
        pytest.fail(f"{harness.WASM_PATH} not found: build it first "
                    "(make test does; or cargo build --release --target wasm32-wasip1)", pytrace=False)
    return harness.WASM_PATH


@pytest.fixture
def backend():
    """Factory: backend(handler=None, name="backend") -> started Backend, stopped after the test."""
    started = []

    def make(handler=None, name="backend", port=0):
        b = harness.Backend(handler, name, port)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def envoy(tmp, request):
    """Factory: envoy(clusters, **options) -> started harness.Envoy, stopped after the test.

    On failure the tail of each Envoy log is printed (shown under "Captured stdout teardown").
    """
    started = []

    def make(clusters, **options):
        e = harness.Envoy(tmp, clusters, start=False, **options)
        started.append(e)
        return e.start()

    yield make
    for e in started:
        e.stop()
        if _failed(request):
            print(f"--- envoy #{e.n} log ({e.log_file}) ---\n{e.log_tail(80)}")
