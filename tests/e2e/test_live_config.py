"""Live configuration through ECDS: cutover and rollback under traffic without
restart, invalid pushes refused while the previous configuration serves, and
the revision in the log. Real Envoy (ecds=True), real backends on 127.0.0.1.
"""

import copy
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

from harness import CTL_PATH, Client, http, wait_until

ROUTE_HEADER = "x-parallel-run-cluster"
SHADOW_MARKER = "x-parallel-run-shadow"
UNKNOWN = "wasmcustom.parallel_run.unknown_operation.requests"

# After wait_config_applied returns, requests started this much later must
# see the new configuration (workers pick it up within milliseconds).
SETTLE_S = 0.3

BASE = {
    "revision": "live-1",
    "route_header": ROUTE_HEADER,
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    "operation_header": "x-operation-id",
    "defaults": {"mode": "legacy", "shadow_percent": 100, "shadow_timeout_ms": 3000},
    "operations": [
        {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "legacy"},
        {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "legacy"},
        {"id": "getOrder", "method": "GET", "path": "/orders/{id}", "mode": "legacy"},
    ],
}
PATHS = {"getReturn": "/returns/17", "listReturns": "/returns", "getOrder": "/orders/5"}


def config_with(revision, **modes):
    config = copy.deepcopy(BASE)
    config["revision"] = revision
    for op in config["operations"]:
        op["mode"] = modes.get(op["id"], op["mode"])
    return config


def op_stat(op, counter):
    return f"wasmcustom.parallel_run.operation.{op}.{counter}"


def filter_stats(proxy):
    return proxy.stats(filter=r"^wasmcustom\.parallel_run\.")


def push(proxy, config):
    """Pushes through harness.push_config (parallel-run-ctl when built) and waits until applied."""
    before = proxy.ecds_counts()
    result = proxy.push_config(config)
    assert result.returncode == 0, f"push of {config['revision']} failed: {result.args}\n{result.stdout}\n{result.stderr}"
    proxy.wait_config_applied(before)


def wait_log(proxy, text, timeout=10):
    return wait_until(lambda: text in proxy.log_text(), timeout, message=f"log line containing {text!r}")


@pytest.fixture
def backends(backend):
    return {"legacy": backend(name="legacy"), "candidate": backend(name="candidate")}


def start_envoy(envoy, wasm_path, backends, config):
    return envoy({name: b.port for name, b in backends.items()}, wasm_path=wasm_path, ecds=True, config=config)


# ---------------------------------------------------------------------------
# 5. live cutover and rollback under continuous traffic


@dataclass
class Sample:
    thread: int
    seq: int
    op: str
    start: float
    end: float
    status: int = 0
    backend: str = ""
    error: str = ""


class Traffic:
    """Keep-alive clients sending round-robin to the operations until stopped.

    Bounded by `max_seconds` and `max_per_thread`, whichever comes first.
    Each request carries ?t=<thread>&n=<seq>; each Sample records when it was
    sent and answered and which backend answered (from the echo body).
    """

    def __init__(self, proxy, ops, threads=3, max_seconds=20.0, max_per_thread=5000):
        self.proxy = proxy
        self.ops = ops
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.max_per_thread = max_per_thread
        self.lock = threading.Lock()
        self.samples = []
        self.sockets = {}  # thread -> set of local ports used
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, t):
        client = Client(self.proxy.url())
        sockets = self.sockets.setdefault(t, set())
        try:
            for seq in range(self.max_per_thread):
                if self.stop_event.is_set() or time.monotonic() >= self.deadline:
                    return
                op = self.ops[(seq + t) % len(self.ops)]
                sample = Sample(t, seq, op, time.monotonic(), 0.0)
                try:
                    status, _, body = client.get(f"{PATHS[op]}?t={t}&n={seq}")
                    sample.status = status
                    sample.backend = json.loads(body).get("backend", "") if status == 200 else body[:200].decode(errors="replace")
                    sockets.add(client.conn.sock.getsockname()[1])  # local port: a new one means a reconnect
                except Exception as exc:  # recorded, and the test fails on it
                    sample.error = repr(exc)
                    client.close()
                    client = Client(self.proxy.url())
                sample.end = time.monotonic()
                with self.lock:
                    self.samples.append(sample)
        finally:
            client.close()

    def snapshot(self):
        with self.lock:
            return list(self.samples)

    def wait_for(self, op, count, started_after, timeout=10):
        """Waits until `count` requests for `op` sent after `started_after` have been answered."""
        def enough():
            alive = any(t.is_alive() for t in self.threads)  # read first: a last sample may land meanwhile
            if len([s for s in self.snapshot() if s.op == op and s.start >= started_after]) >= count:
                return True
            if not alive:
                raise AssertionError(f"traffic stopped (time or count bound) before {count} {op} requests")
            return False

        wait_until(enough, timeout, message=f"{count} answered {op} requests sent after t={started_after:.3f}")

    def stop(self):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=15)
        assert not any(t.is_alive() for t in self.threads), "traffic threads did not stop"
        return self.snapshot()


def test_cutover_and_rollback_under_traffic(wasm_path, backends, envoy):
    proxy = start_envoy(envoy, wasm_path, backends, BASE)
    pid = proxy.proc.pid
    ops = list(PATHS)
    moved = "getReturn"
    stats_before = filter_stats(proxy)

    traffic = Traffic(proxy, ops)
    try:
        for op in ops:
            traffic.wait_for(op, 20, 0.0)

        t_push1 = time.monotonic()
        push(proxy, config_with("live-cutover", getReturn="cutover"))
        t_cutover = time.monotonic() + SETTLE_S
        traffic.wait_for(moved, 30, t_cutover)
        for op in ops:
            traffic.wait_for(op, 10, t_cutover)

        t_push2 = time.monotonic()
        push(proxy, config_with("live-rollback"))
        t_rollback = time.monotonic() + SETTLE_S
        for op in ops:
            traffic.wait_for(op, 30, t_rollback)
    finally:
        samples = traffic.stop()

    # No error of any kind, on the same keep-alive connections, same Envoy.
    bad = [s for s in samples if s.error or not 200 <= s.status < 300]
    assert not bad, f"{len(bad)} failed requests of {len(samples)}, e.g. {bad[:5]}"
    assert proxy.proc.poll() is None and proxy.proc.pid == pid, "Envoy restarted or died"
    assert all(len(ids) == 1 for ids in traffic.sockets.values()), f"clients had to reconnect: {traffic.sockets}"

    # The moved operation: legacy before the push, candidate between the
    # pushes (answered before the rollback started), legacy after.
    def backends_of(op, predicate):
        return {s.backend for s in samples if s.op == op and predicate(s)}

    before = [s for s in samples if s.op == moved and s.end <= t_push1]
    during = [s for s in samples if s.op == moved and s.start >= t_cutover and s.end <= t_push2]
    after = [s for s in samples if s.op == moved and s.start >= t_rollback]
    assert len(before) >= 20 and len(during) >= 30 and len(after) >= 30, (len(before), len(during), len(after))
    assert {s.backend for s in before} == {"legacy"}
    assert {s.backend for s in during} == {"candidate"}, \
        [(s.seq, s.backend) for s in during if s.backend != "candidate"][:10]
    assert {s.backend for s in after} == {"legacy"}, [(s.seq, s.backend) for s in after if s.backend != "legacy"][:10]
    # Requests straddling a push may go either way, but nowhere else.
    assert backends_of(moved, lambda s: True) <= {"legacy", "candidate"}

    # The other operations never left legacy, not even during the cutover.
    for op in ops:
        if op != moved:
            assert backends_of(op, lambda s: True) == {"legacy"}, op
            assert len([s for s in samples if s.op == op and t_cutover <= s.start and s.end <= t_push2]) >= 10

    # What the backends saw agrees: the candidate only ever served the moved
    # operation, and never got a shadow copy (no operation was in shadow mode).
    at_candidate = backends["candidate"].received
    served_by_candidate = [s for s in samples if s.backend == "candidate"]
    assert len(at_candidate) == len(served_by_candidate)
    assert all(r.path.startswith(PATHS[moved] + "?") for r in at_candidate), \
        sorted({r.path.partition("?")[0] for r in at_candidate})
    assert all(r.header(SHADOW_MARKER) is None and r.header(ROUTE_HEADER) is None for r in at_candidate)
    # In cutover legacy keeps getting shadow copies, of the moved operation only.
    copies = [r for r in backends["legacy"].received if r.header(SHADOW_MARKER) is not None]
    assert copies, "no shadow copy reached legacy during the cutover"
    assert {r.header(SHADOW_MARKER) for r in copies} == {moved}
    assert all(r.header(ROUTE_HEADER) is None for r in copies)

    # Counters agree with what the clients saw, exactly.
    stats = filter_stats(proxy)
    for op in ops:
        mine = [s for s in samples if s.op == op]
        delta = lambda counter: stats.get(op_stat(op, counter), 0) - stats_before.get(op_stat(op, counter), 0)  # noqa: E731
        assert delta("requests") == len(mine), op
        assert delta("served_legacy") == len([s for s in mine if s.backend == "legacy"]), op
        assert delta("served_candidate") == len([s for s in mine if s.backend == "candidate"]), op
    assert stats.get(UNKNOWN, 0) == stats_before.get(UNKNOWN, 0)

    # Each applied configuration logged its revision.
    log = proxy.log_text()
    for revision in ("live-1", "live-cutover", "live-rollback"):
        assert f'parallel-run: configuration applied: revision="{revision}"' in log, revision
    assert log.index('revision="live-cutover"') < log.rindex('revision="live-rollback"')


# ---------------------------------------------------------------------------
# 6. invalid configurations while serving


SERVING = config_with("serving-1", getReturn="cutover")


def assert_still_serving(proxy, backends, stats_before):
    """getReturn (cutover) is answered by candidate, listReturns (legacy) by legacy,
    and the counters count both."""
    status, _, body = http("GET", proxy.url("/returns/3"))
    assert status == 200 and json.loads(body)["backend"] == "candidate", body
    status, _, body = http("GET", proxy.url("/returns"))
    assert status == 200 and json.loads(body)["backend"] == "legacy", body
    stats = filter_stats(proxy)
    delta = lambda name: stats.get(name, 0) - stats_before.get(name, 0)  # noqa: E731
    assert delta(op_stat("getReturn", "requests")) == 1
    assert delta(op_stat("getReturn", "served_candidate")) == 1
    assert delta(op_stat("getReturn", "served_legacy")) == 0
    assert delta(op_stat("listReturns", "served_legacy")) == 1
    assert delta(op_stat("listReturns", "served_candidate")) == 0


def test_ctl_refuses_invalid_config_and_leaves_ecds_file_alone(wasm_path, backends, envoy, tmp):
    if not CTL_PATH.exists():
        pytest.skip(f"{CTL_PATH} not built")
    proxy = start_envoy(envoy, wasm_path, backends, SERVING)
    ecds_before = proxy.ecds_file.read_bytes()
    inode_before = os.stat(proxy.ecds_file).st_ino
    counts_before = proxy.ecds_counts()

    bad = copy.deepcopy(SERVING)
    bad["revision"] = "ctl-bad"
    bad["operations"][0]["mode"] = "shadowing"
    bad_file = tmp / "ctl-bad.json"
    bad_file.write_text(json.dumps(bad))
    result = subprocess.run([str(CTL_PATH), "apply", str(bad_file), "--ecds", str(proxy.ecds_file)],
                            capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"parallel-run-ctl accepted an invalid mode:\n{output}"
    assert "operations[0].mode" in output, output
    assert proxy.ecds_file.read_bytes() == ecds_before
    assert os.stat(proxy.ecds_file).st_ino == inode_before, "the ECDS file was replaced"
    assert [p.name for p in proxy.ecds_dir.iterdir()] == [proxy.ecds_file.name], "files left in the watched directory"

    stats_before = filter_stats(proxy)
    assert_still_serving(proxy, backends, stats_before)
    assert proxy.ecds_counts() == counts_before
    assert 'revision="ctl-bad"' not in proxy.log_text()


def _invalid_json(config):
    return '{"revision": "bad-json", "legacy": {"cluster": "legacy"'


def _unknown_field(config):
    config["revision"] = "bad-unknown-field"
    config["operations"][0]["moode"] = "legacy"
    return json.dumps(config)


def _duplicate_id(config):
    config["revision"] = "bad-duplicate-id"
    config["operations"][1]["id"] = "getReturn"
    return json.dumps(config)


def _bad_template(config):
    config["revision"] = "bad-template"
    config["operations"][0]["path"] = "/returns/{id"
    return json.dumps(config)


def _bad_mode(config):
    config["revision"] = "bad-mode"
    config["operations"][0]["mode"] = "shadowing"
    return json.dumps(config)


INVALID = [
    # (how to break the config, what the filter must log: a regex)
    # A syntax error names the field serde was in when the text ended, if any.
    (_invalid_json, r"parallel-run: configuration refused: (legacy: )?invalid JSON: EOF while parsing"),
    (_unknown_field, r"parallel-run: configuration refused: operations\[0\]\.moode: unknown field `moode`"),
    (_duplicate_id, r'parallel-run: configuration refused: operations\[1\]\.id: duplicate id "getReturn"'),
    (_bad_template, r"parallel-run: configuration refused: operations\[0\]\.path: unbalanced '\{'"),
    (_bad_mode, r"parallel-run: configuration refused: operations\[0\]\.mode: unknown variant `shadowing`"),
]


def test_invalid_configs_written_to_ecds_are_refused_and_previous_keeps_serving(wasm_path, backends, envoy):
    proxy = start_envoy(envoy, wasm_path, backends, SERVING)
    wait_log(proxy, 'configuration applied: revision="serving-1"')
    good_resource = json.loads(proxy.ecds_file.read_text())

    for make, message in INVALID:
        # Each bad config would also flip getReturn to legacy and listReturns
        # to candidate, so a partial or silent apply shows up in routing.
        config = copy.deepcopy(SERVING)
        config["operations"][0]["mode"] = "legacy"
        config["operations"][1]["mode"] = "candidate"
        resource = copy.deepcopy(good_resource)
        resource["resources"][0]["typed_config"]["config"]["configuration"]["value"] = make(config)
        assert not re.search(message, proxy.log_text())

        stats_before = filter_stats(proxy)
        counts_before = proxy.ecds_counts()
        proxy.write_ecds(json.dumps(resource))
        counts = proxy.wait_config_rejected(counts_before)
        assert counts["update_success"] == counts_before["update_success"], (make.__name__, counts)
        wait_until(lambda: re.search(message, proxy.log_text()), message=f"log line matching {message!r}")
        assert_still_serving(proxy, backends, stats_before)

    log = proxy.log_text()
    assert "configuration applied: revision=\"bad-" not in log, [l for l in log.splitlines() if 'revision="bad-' in l]

    # A valid push after the refused ones is applied.
    push(proxy, config_with("after-refusals", listReturns="cutover"))
    wait_log(proxy, 'parallel-run: configuration applied: revision="after-refusals"')
    status, _, body = http("GET", proxy.url("/returns/3"))
    assert status == 200 and json.loads(body)["backend"] == "legacy", body
    status, _, body = http("GET", proxy.url("/returns"))
    assert status == 200 and json.loads(body)["backend"] == "candidate", body
