"""`parallel-run-ctl watch` on a real Envoy with real backends: it cuts over
an operation that stays READY, rolls back one in cutover whose candidate
starts failing, audits both with their evidence; `--dry-run` writes nothing;
SIGTERM ends it after the current step.
"""

import json
import signal
import subprocess
import threading
import time

from harness import CTL_PATH, Client, json_response

CONFIG = {
    "revision": "watch-1",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    # READY is the filter's windowed rule, judged at once (ready_after_s 0);
    # the background traffic fills the window well past its lower bound.
    "defaults": {"target_match_rate": 0.9, "min_samples": 10,
                 "readiness": {"window_s": 60, "ready_after_s": 0}},
    "operations": [
        {"id": "getItem", "method": "GET", "path": "/items/{id}", "mode": "shadow"},
        {"id": "getOrder", "method": "GET", "path": "/orders/{id}", "mode": "cutover"},
    ],
}
TRAFFIC_S = 40  # bound of the background traffic


class Backends:
    """Legacy and candidate answering the same; `break_orders` makes the candidate answer 503 on /orders."""

    def __init__(self, backend):
        self.orders_broken = threading.Event()
        self.legacy = backend(self.handler("legacy"), name="legacy")
        self.candidate = backend(self.handler("candidate"), name="candidate")

    def handler(self, name):
        def handle(request):
            path = request.path.split("?")[0]
            if name == "candidate" and path.startswith("/orders/") and self.orders_broken.is_set():
                return json_response({"error": "down"}, status=503)
            return json_response({"path": path})

        return handle


def traffic(proxy, stop):
    """Requests to both operations, 50 per second at most, until `stop` or TRAFFIC_S."""
    deadline = time.monotonic() + TRAFFIC_S
    with Client(proxy.url()) as client:
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            for path in (f"/items/{n}", f"/orders/{n}"):
                try:
                    client.get(path)
                except OSError:
                    client.close()
                    client = Client(proxy.url())
            n += 1
            time.sleep(0.02)


def watch(proxy, *args):
    return subprocess.Popen([str(CTL_PATH), "watch", "--ecds", str(proxy.ecds_file), "--admin", proxy.admin_url(),
                             "--interval", "0.3s", "--ready-for", "1s", "-o", "json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events(proc, until, timeout=30):
    """Reads watch's JSON lines until `until(event)` is true; returns them all."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(json.loads(line))
        if until(seen[-1]):
            return seen
    raise AssertionError(f"watch did not get there: {seen}\n{proc.stderr.read() if proc.poll() is not None else ''}")


def modes(ecds_file):
    resource = json.loads(ecds_file.read_text())
    config = json.loads(resource["resources"][0]["typed_config"]["config"]["configuration"]["value"])
    return {op["id"]: op["mode"] for op in config["operations"]}


def test_watch_promotes_a_ready_operation_and_rolls_back_a_failing_cutover(backend, envoy):
    backends = Backends(backend)
    proxy = envoy({"legacy": backends.legacy.port, "candidate": backends.candidate.port}, config=CONFIG, ecds=True)
    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(proxy, stop), daemon=True)
    sender.start()
    proc = watch(proxy, "--duration", "60s", "--max-changes", "2")
    try:
        seen = events(proc, lambda e: e["event"] == "change")
        promoted = seen[-1]
        assert (promoted["action"], promoted["unit"]) == ("cutover", "getItem"), seen
        assert promoted["report"]["confirmation"]["outcome"] == "active", promoted
        assert modes(proxy.ecds_file) == {"getItem": "cutover", "getOrder": "cutover"}

        backends.orders_broken.set()  # the candidate now fails getOrder, which it serves
        seen = events(proc, lambda e: e["event"] == "change")
        rolled = seen[-1]
        assert (rolled["action"], rolled["unit"]) == ("rollback", "getOrder"), seen
        assert "failure rate" in rolled["why"], rolled
        assert rolled["report"]["confirmation"]["outcome"] == "active"
        end = events(proc, lambda e: e["event"] == "end")[-1]
        assert end == {"event": "end", "reason": "max changes", "changes": 2}
        assert proc.wait(timeout=10) == 0
    finally:
        stop.set()
        sender.join(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert modes(proxy.ecds_file) == {"getItem": "cutover", "getOrder": "shadow"}

    log = proxy.ecds_file.with_name("parallel-run.audit.jsonl")
    changes = [json.loads(line) for line in log.read_text().splitlines() if '"kind":"change"' in line]
    assert [(c["action"], c["changes"][0]["operation"]) for c in changes] == [("cutover", "getItem"), ("rollback", "getOrder")]
    assert changes[0]["reason"].startswith("watch: getItem: READY for 1 s or more")
    assert changes[0]["evidence"][0]["verdict"] == "ready" and changes[0]["force"] is False
    assert changes[1]["reason"].startswith("watch: getOrder: failure rate")
    assert changes[1]["evidence"][0]["failed"] > 0


def test_watch_dry_run_writes_nothing_and_sigterm_ends_it(backend, envoy):
    backends = Backends(backend)
    proxy = envoy({"legacy": backends.legacy.port, "candidate": backends.candidate.port}, config=CONFIG, ecds=True)
    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(proxy, stop), daemon=True)
    sender.start()
    before = proxy.ecds_file.read_bytes()
    try:
        proc = watch(proxy, "--dry-run", "--duration", "60s", "--max-changes", "1")
        seen = events(proc, lambda e: e["event"] == "end")
        would = [e for e in seen if e["event"] == "would_change"]
        assert [(e["action"], e["unit"]) for e in would] == [("cutover", "getItem")], seen
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()
        assert proxy.ecds_file.read_bytes() == before
        assert not proxy.ecds_file.with_name("parallel-run.audit.jsonl").exists()

        proc = watch(proxy, "--dry-run", "--no-promote", "--duration", "60s")
        events(proc, lambda e: e["event"] == "start")
        time.sleep(1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        end = events(proc, lambda e: e["event"] == "end")[-1]
        assert end["reason"] == "signal" and proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        proc.stdout.close()
        proc.stderr.close()
    finally:
        stop.set()
        sender.join(timeout=10)
    assert proxy.ecds_file.read_bytes() == before
