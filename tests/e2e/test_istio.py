"""The filter on a real Envoy configured as Istio configures an ingress gateway for envoy/istio/.

The Envoy is built from the shipped documents by istio_proxy.IstioGateway
(Istio's cluster names, the VirtualService's header-matched routes with
legacy last, the early-header-mutation guard, the WasmPlugin delivered
through ECDS under Istio's name, Istio's stats matcher and the bootstrap
override), with two real backends playing the Services. The story an
operator runs through (README, "Loading it into Istio"): shadow, readiness,
cutover of one operation by a new pluginConfig, confirmation from the
revision and mode gauges, a refused push, rollback; and what a client's
forged headers do with the VM alive, dead and absent.

Who served a request is read from the backends, not from counters: the
backend that received it without the shadow marker served it.
"""

import copy
import json
import http.client
import re
import subprocess
import sys
import time

import pytest

import istio_proxy
from harness import CTL_PATH, REPO, WINDOW_START_S, Client, Response, json_response, settle, wait_ready, wait_until

SHADOW_MARKER = "x-parallel-run-shadow"
OPERATION_HEADER = "x-operation-id"
FINGERPRINT = REPO / "envoy" / "istio" / "fingerprint.py"
MODE_CODES = {"legacy": 0, "shadow": 1, "cutover": 2, "candidate": 3}
LEGACY_HOST = "returns-legacy.default.svc.cluster.local"
CANDIDATE_HOST = "returns-candidate.default.svc.cluster.local"
# A response large enough to exhaust the memory-limited VM below (8 MiB).
BIG_BODY = b'{"blob":"' + b"x" * (8 << 20) + b'"}'


def handler(request):
    """Both Services answer alike (the comparisons match); /returns/big is large."""
    if request.path.startswith("/returns/big"):
        return Response(200, [("content-type", "application/json")], BIG_BODY)
    return json_response({"path": request.path, "status": "open"})


@pytest.fixture
def services(backend):
    return {"legacy": backend(handler, "legacy"), "candidate": backend(handler, "candidate")}


@pytest.fixture
def gateway(tmp, services, request):
    """Factory: gateway(module_path, **options) -> started IstioGateway, stopped after the test."""
    started = []

    def make(module_path, **options):
        ports = {LEGACY_HOST: services["legacy"].port, CANDIDATE_HOST: services["candidate"].port}
        proxy = istio_proxy.IstioGateway(tmp, ports, module_path, **options)
        started.append(proxy)
        return proxy.start()

    yield make
    for proxy in started:
        proxy.stop()
        if any(getattr(getattr(request.node, "report_" + w, None), "failed", False) for w in ("setup", "call")):
            print(f"--- istio gateway #{proxy.n} log ({proxy.log_file}) ---\n{proxy.log_tail(80)}")


def served(backend):
    """Requests the backend served (not shadow copies)."""
    return [r for r in backend.received if r.header(SHADOW_MARKER) is None]


def shadowed(backend):
    return [r for r in backend.received if r.header(SHADOW_MARKER) is not None]


def edited(plugin, revision, **modes):
    """The WasmPlugin with a new revision and some operations' modes changed: what an operator commits."""
    plugin = copy.deepcopy(plugin)
    config = plugin["spec"]["pluginConfig"]
    config["revision"] = revision
    for op in config["operations"]:
        op["mode"] = modes.get(op["id"], op["mode"])
    return plugin


def fingerprint(revision):
    """The revision gauge's expected value, from the script the README tells operators to run."""
    out = subprocess.run([sys.executable, str(FINGERPRINT), revision], capture_output=True, text=True, timeout=10, check=True)
    return int(out.stdout)


def assert_runs(proxy, plugin):
    """What the README's confirmation checks: the proxy runs this revision, with these modes."""
    config = plugin["spec"]["pluginConfig"]
    assert proxy.gauge("parallel_run.config.revision") == fingerprint(config["revision"])
    # Every VM sets the revision as it applies a configuration; the modes come
    # from the readiness leader, at its first tick after start (about a second)
    # and when it applies a push (src/readiness.rs).
    for op in config["operations"]:
        want = MODE_CODES[op["mode"]]
        wait_until(lambda: proxy.gauge(f"parallel_run.operation.{op['id']}.mode") == want, timeout=5,
                   message=f"{op['id']}: mode gauge {want}")


def send(proxy, paths, headers=None):
    """GET each path over one keep-alive connection with the gateway's host; every answer must be 200."""
    with Client(proxy.url()) as client:
        for path in paths:
            status, _, body = client.request("GET", path, headers={"host": proxy.host, **(headers or {})})
            assert status == 200, (path, status, body[:200])


def wait_served(backend, count, timeout=10):
    return wait_until(lambda: len(served(backend)) >= count and served(backend), timeout,
                      message=f"{count} request(s) served by {backend.name}")


def status_report(proxy, plugin, tmp):
    """`parallel-run-ctl status` against the gateway's admin, with the pluginConfig pulled out of the WasmPlugin."""
    config_file = tmp / f"status-{plugin['spec']['pluginConfig']['revision']}.json"
    config_file.write_text(istio_proxy.plugin_json(plugin["spec"]["pluginConfig"]))
    result = subprocess.run([str(CTL_PATH), "status", "--admin", proxy.admin_url("").rstrip("/"), "--config", str(config_file)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def operation_line(report, op):
    [line] = [line for line in report.splitlines() if line.split()[:1] == [op]]
    return line


def prometheus_value(proxy, metric, **labels):
    """The value of one series on /stats/prometheus (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in proxy.prometheus().splitlines():
        if line.startswith(f"{metric}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


# --------------------------------------------------------------------------- the operator's story


def test_shadow_readiness_cutover_confirmation_rollback(wasm_path, gateway, services, tmp):
    legacy, candidate = services["legacy"], services["candidate"]
    proxy = gateway(wasm_path)
    assert_runs(proxy, proxy.plugin)
    # The shipped rule holds READY back until it has held for 300 s; the
    # test holds it 0 s (pushed as istiod would), and lets the window start.
    shipped = copy.deepcopy(proxy.plugin)
    shipped["spec"]["pluginConfig"]["defaults"]["readiness"] = {"ready_after_s": 0}
    shipped["spec"]["pluginConfig"]["revision"] += "-hold-0"
    proxy.apply_plugin(shipped)
    assert_runs(proxy, shipped)
    time.sleep(WINDOW_START_S)
    config = shipped["spec"]["pluginConfig"]

    # Shadow: legacy serves, the candidate gets a marked copy, every copy compared.
    samples = config["defaults"]["min_samples"] + 10
    send(proxy, [f"/returns/{i}" for i in range(samples)])
    counts = settle(proxy, samples, "getReturn")
    wait_ready(proxy, "getReturn", comparisons=samples)
    assert (counts["requests"], counts["served_legacy"], counts["matched"]) == (samples, samples, samples)
    assert len(served(legacy)) == samples and not served(candidate)
    assert {r.header(SHADOW_MARKER) for r in shadowed(candidate)} == {"getReturn"}
    # The VirtualService removes the route header: no backend sees it.
    assert all(r.header(config["route_header"]) is None for r in legacy.received + candidate.received)

    # Readiness, as the README reads it: status against the gateway's admin port, and Prometheus labels.
    assert "READY" in operation_line(status_report(proxy, shipped, tmp), "getReturn")
    assert prometheus_value(proxy, "parallel_run_operation_matched", operation_id="getReturn") == samples

    # Cutover of getReturn: a new pluginConfig pushed as istiod pushes it.
    cutover = edited(shipped, config["revision"] + "-cutover-getReturn", getReturn="cutover")
    proxy.apply_plugin(cutover)
    assert_runs(proxy, cutover)
    assert prometheus_value(proxy, "parallel_run_operation_mode", operation_id="getReturn") == MODE_CODES["cutover"]
    assert prometheus_value(proxy, "parallel_run_config_revision") == fingerprint(cutover["spec"]["pluginConfig"]["revision"])
    legacy.clear()
    candidate.clear()
    send(proxy, [f"/returns/{i}" for i in range(20)])
    wait_served(candidate, 20)
    assert not served(legacy), "after the cutover the candidate serves, really (not only in the counters)"
    wait_until(lambda: len(shadowed(legacy)) == 20, message="20 shadow copies at legacy")
    send(proxy, ["/returns"])  # listReturns is still in shadow: legacy serves it
    assert [r.path for r in served(legacy)] == ["/returns"]

    # A pluginConfig the filter refuses: Envoy counts it where the stats inclusion lets us see it,
    # and the cutover keeps running.
    broken = edited(cutover, config["revision"] + "-broken")
    broken["spec"]["pluginConfig"]["operations"][1]["path"] = "/returns/{id"
    proxy.wait_config_rejected(proxy.push_plugin(broken))
    assert_runs(proxy, cutover)
    assert prometheus_value(proxy, "envoy_extension_config_discovery_http_filter_config_fail",
                            extension_config_name=proxy.filter_name) == 1
    assert "operations[1].path" in proxy.log_text()
    candidate.clear()
    send(proxy, ["/returns/99"])
    wait_served(candidate, 1)

    # Rollback: the previous WasmPlugin (git revert, kubectl apply).
    proxy.apply_plugin(shipped)
    assert_runs(proxy, shipped)
    legacy.clear()
    candidate.clear()
    send(proxy, [f"/returns/{i}" for i in range(10)])
    wait_served(legacy, 10)
    assert not served(candidate)
    wait_until(lambda: len(shadowed(candidate)) == 10, message="10 shadow copies at the candidate")


# --------------------------------------------------------------------------- a client's forged headers


def forged_headers(proxy):
    config = proxy.plugin["spec"]["pluginConfig"]
    return {
        config["route_header"]: istio_proxy.cluster_name({"host": CANDIDATE_HOST, "port": {"number": 8080}}),
        SHADOW_MARKER: "getReturn",
        OPERATION_HEADER: "createReturn",
    }


def assert_forged_headers_ignored(proxy, legacy, candidate, paths):
    """Requests with every forged header are served by legacy, and no backend sees the client's copies."""
    legacy.clear()
    candidate.clear()
    send(proxy, paths, headers=forged_headers(proxy))
    wait_until(lambda: len(served(legacy)) + len(served(candidate)) >= len(paths), message=f"{len(paths)} requests served")
    assert not served(candidate), "a client chose the candidate"
    assert len(served(legacy)) == len(paths)
    for request in served(legacy):
        for name in forged_headers(proxy):
            assert request.header(name) is None, f"{name} reached the backend"


def test_forged_headers_are_ignored_while_the_filter_runs(wasm_path, gateway, services):
    legacy, candidate = services["legacy"], services["candidate"]
    proxy = gateway(wasm_path)
    # getReturn in shadow, listReturns in shadow, /unknown matches no operation.
    assert_forged_headers_ignored(proxy, legacy, candidate, ["/returns/1", "/returns", "/unknown"])
    # The shadow copies carry the filter's marker, not the client's, and the operation comes from the path.
    wait_until(lambda: len(shadowed(candidate)) == 2, message="2 shadow copies")
    assert sorted(r.header(SHADOW_MARKER) for r in shadowed(candidate)) == ["getReturn", "listReturns"]
    # No request matched createReturn: it has no counters at all (defined on first use).
    assert proxy.gauge("parallel_run.operation.createReturn.requests") is None
    assert proxy.gauge("parallel_run.unknown_operation.requests") == 1


def limit_memory(module, extra_pages):
    """The module with its linear memory capped at its initial size plus `extra_pages` (64 KiB each).

    Only the memory section's limits change (flags 0 -> 1 and a maximum); the
    code is the filter's own. Rust's allocator asks V8 for more pages with
    memory.grow; past the maximum V8 says no, the allocation fails, the
    filter aborts, and the abort is a wasm trap: the VM is dead, as when a
    real filter runs out of its 4 GiB or hits any other trap.
    """
    def leb(data, i):
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, i

    def uleb(value):
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    assert module[:8] == b"\0asm\x01\0\0\0"
    out, i, patched = bytearray(module[:8]), 8, False
    while i < len(module):
        section = module[i]
        size, size_end = leb(module, i + 1)
        body = module[size_end:size_end + size]
        if section == 5:  # memory section: one memory, limits without a maximum
            count, j = leb(body, 0)
            assert count == 1 and body[j] == 0, "expected one memory without a maximum"
            initial, k = leb(body, j + 1)
            body = uleb(1) + b"\x01" + uleb(initial) + uleb(initial + extra_pages) + body[k:]
            patched = True
        out += bytes([section]) + uleb(len(body)) + body
        i = size_end + size
    assert patched, "no memory section"
    return bytes(out)


def test_vm_dead_fail_open_serves_legacy_and_ignores_forged_headers(wasm_path, gateway, services, tmp):
    """The VM dies for real: the filter's module with its memory capped at 4 MiB above its initial size,
    and a response of 8 MiB that the filter buffers to compare. One worker, so that the one VM serving
    requests is the one that dies."""
    legacy, candidate = services["legacy"], services["candidate"]
    module = tmp / "parallel_run.limited.wasm"
    module.write_bytes(limit_memory(wasm_path.read_bytes(), extra_pages=64))
    plugin = edited(istio_proxy.load_documents()["WasmPlugin"], "vm-dies", getReturn="cutover")
    plugin["spec"]["pluginConfig"]["defaults"]["max_body_bytes"] = 64 << 20
    proxy = gateway(module, plugin=plugin, concurrency=1)

    send(proxy, ["/returns/1"])
    wait_served(candidate, 1)  # alive: the cutover routes to the candidate
    assert proxy.gauge("parallel_run.operation.getReturn.requests") == 1

    try:
        proxy.request("GET", "/returns/big", timeout=30)
    except (OSError, http.client.HTTPException):
        pass  # Envoy resets the stream whose callback trapped (measured: the client gets a truncated body)
    wait_until(lambda: "Uncaught RuntimeError" in proxy.log_text(), message="the VM's trap in Envoy's log")
    log = proxy.log_text()
    assert "memory allocation of" in log and "failed" in log, "the trap is the allocation failure"
    counted = proxy.gauge("parallel_run.operation.getReturn.requests")  # the killing request included

    # Dead VM, FAIL_OPEN: requests skip the filter, nothing routes them, the fallback route serves: legacy,
    # although getReturn is in cutover; and a client's headers still choose nothing.
    time.sleep(0.2)
    assert_forged_headers_ignored(proxy, legacy, candidate, ["/returns/1", "/returns/2", "/returns"])
    time.sleep(0.5)
    assert not shadowed(candidate) and not shadowed(legacy), "nothing is shadowed by a dead VM"
    assert proxy.gauge("parallel_run.operation.getReturn.requests") == counted, "the dead VM counted requests"

    # The next push (a fix, a new revision) brings the filter back: the cutover serves again.
    revived = edited(plugin, "vm-revived")
    proxy.apply_plugin(revived)
    assert_runs(proxy, revived)
    candidate.clear()
    send(proxy, ["/returns/3"])
    wait_served(candidate, 1)


def test_module_absent_fail_open_serves_legacy_and_ignores_forged_headers(wasm_path, gateway, services):
    """When the agent cannot fetch a FAIL_OPEN plugin's module (registry down, digest mismatch) it gives
    Envoy an allow-all RBAC filter under the plugin's name instead: the filter is absent."""
    legacy, candidate = services["legacy"], services["candidate"]
    plugin = edited(istio_proxy.load_documents()["WasmPlugin"], "absent", getReturn="cutover")
    proxy = gateway(wasm_path, plugin=plugin)
    send(proxy, ["/returns/1"])
    wait_served(candidate, 1)

    before = proxy.ecds_counts()
    proxy.push_resource(istio_proxy.allow_all_extension_config(plugin))
    proxy.wait_config_applied(before)
    requests_before = proxy.gauge("parallel_run.operation.getReturn.requests") or 0
    assert_forged_headers_ignored(proxy, legacy, candidate, ["/returns/1", "/returns/2"])
    time.sleep(0.5)
    assert not shadowed(candidate)
    assert (proxy.gauge("parallel_run.operation.getReturn.requests") or 0) == requests_before


# --------------------------------------------------------------------------- stats as Istio keeps them


def test_istio_keeps_the_filters_stats_but_drops_ecds_without_the_inclusion(wasm_path, gateway):
    proxy = gateway(wasm_path, stats_inclusions=False)
    proxy.request("GET", "/returns/1")
    stats = proxy.stats()
    assert stats.get("wasmcustom.parallel_run.config.revision") == fingerprint(proxy.plugin["spec"]["pluginConfig"]["revision"])
    assert "wasmcustom.parallel_run.operation.getReturn.requests" in stats
    ecds = [name for name in stats if name.startswith("extension_config_discovery.")]
    assert ecds == [], "Istio's matcher alone drops the refused-config signal"
    # And the tags of the bootstrap override apply whatever the matcher.
    text = proxy.prometheus()
    assert re.search(r'^parallel_run_operation_requests\{operation_id="getReturn"\} 1$', text, re.M), \
        [line for line in text.splitlines() if "parallel_run_operation_requests" in line]


def test_the_bootstrap_override_bounds_what_envoy_buffers_of_a_shadow_response(wasm_path, gateway):
    """The override's runtime layer reaches the gateway's Envoy (README, "Memory")."""
    proxy = gateway(wasm_path)
    status, _, body = istio_proxy.http("GET", proxy.admin_url("/runtime"))
    assert status == 200
    entry = json.loads(body)["entries"]["http.async_response_buffer_limit"]
    # Admin prints a JSON number's value with six digits ("1.04858e+06"); the
    # async client reads it as the integer (test_callout_memory.py measures the bound).
    assert abs(float(entry["final_value"]) - 1048576) < 10, entry
