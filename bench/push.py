"""How long client requests are held up while a large configuration is
applied, and what it leaves in memory (issue 13 item 7), for two builds.

    .venv/bin/python -m bench.push --a OLD.wasm --b NEW.wasm [--operations 9999] [--rounds 2]

(from the repository root). For each round and build: a fresh proxy Envoy
(the testbed, `envoy/envoy-ecds.yaml`, `--concurrency 2`) with one operation
in shadow mode, four client threads sending GET /returns/1 to it in a loop
(each request waits for the last: a bounded closed loop, at most 120 s),
then after 3 s an ECDS push of the same configuration plus `--operations`
(default 9,999: with the first, the 10,000 the configuration allows)
legacy operations no request matches. Reports the slowest request before
the push, how long until Envoy ran the new revision (its revision gauge,
polled every 0.5 s), the slowest and the p99 of the requests from the push
until 3 s after that, how many took more than 50 ms, and the proxy's VmRSS
before and after: the target is
no request slower than 50 ms because of the push. Backends are the
testbed's Python HTTP servers on 127.0.0.1.
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from testbed.backend import Backend, json_response
from testbed.envoy import Envoy, set_plugin_config, write_atomic
from testbed.net import Client, http
from testbed.process import rss_kib

LOAD_THREADS = 4
# Load before the push; after the revision is live, load for this long more;
# no run loads for longer than MAX_S in all.
BEFORE_S, SETTLE_S, MAX_S = 3.0, 3.0, 120.0
CLIENT_TIMEOUT_S = 10


def fingerprint(revision):
    """core/src/counters.rs revision_fingerprint: FNV-1a, cut to 52 bits, never 0."""
    h = 0xcbf29ce484222325
    for b in revision.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return max(h & ((1 << 52) - 1), 1)


def running(envoy, revision):
    """Whether Envoy's filter runs `revision`, from the revision gauge every VM
    sets. The admin endpoint answers on Envoy's main thread, which is busy
    while its VM applies a large configuration: a generous timeout, and a
    timeout counts as not yet."""
    query = "/stats?format=json&filter=" + quote(r"^wasmcustom\.parallel_run\.config\.revision$")
    try:
        status, _, body = http("GET", envoy.admin_url(query), timeout=30)
    except OSError:
        return False
    stats = {s["name"]: s.get("value") for s in json.loads(body).get("stats", [])} if status == 200 else {}
    return stats.get("wasmcustom.parallel_run.config.revision") == fingerprint(revision)


def wait_running(envoy, revision, since, timeout):
    """Seconds from `since` until Envoy runs `revision` (an upper bound:
    polled); None if it did not within `timeout`."""
    while time.monotonic() - since < timeout:
        if running(envoy, revision):
            return time.monotonic() - since
        time.sleep(0.5)
    return None


def configs(n):
    base = {"revision": "small", "legacy": {"cluster": "legacy"}, "candidate": {"cluster": "candidate"},
            "defaults": {"mode": "legacy"},
            "operations": [{"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow"}]}
    big = dict(base, revision=f"big-{n}", operations=base["operations"] + [
        {"id": f"op{i}", "method": "GET", "path": f"/p{i}/{{id}}"} for i in range(n)])
    return base, big


def one_run(wasm, n):
    base, big = configs(n)
    with tempfile.TemporaryDirectory(prefix="parallel-run-push-") as tmp, \
            Backend(lambda r: json_response({}), name="legacy") as legacy, \
            Backend(lambda r: json_response({}), name="candidate") as candidate:
        envoy = Envoy(tmp, {"legacy": legacy.port, "candidate": candidate.port}, wasm_path=wasm, config=base,
                      ecds=True, concurrency=2, log_level="warning")
        try:
            latencies, timeouts, stop = [], [], threading.Event()

            def load():
                client = Client(envoy.url(""), timeout=CLIENT_TIMEOUT_S)
                deadline = time.monotonic() + MAX_S
                while not stop.is_set() and time.monotonic() < deadline:
                    t = time.monotonic()
                    try:
                        client.get("/returns/1")
                    except OSError:
                        # Held past the client's timeout: counted at its
                        # full wait, on a new connection.
                        timeouts.append(t)
                        client = Client(envoy.url(""), timeout=CLIENT_TIMEOUT_S)
                    latencies.append((t, time.monotonic() - t))

            threads = [threading.Thread(target=load) for _ in range(LOAD_THREADS)]
            for th in threads:
                th.start()
            time.sleep(BEFORE_S)
            rss_before = rss_kib(envoy.proc.pid) or 0
            push = time.monotonic()
            resource = envoy._resource
            set_plugin_config(resource["resources"][0]["typed_config"], big)
            write_atomic(envoy.ecds_file, json.dumps(resource))
            # Requests go on while every VM applies it, and a little after.
            applied_after_s = wait_running(envoy, big["revision"], push, timeout=MAX_S - BEFORE_S - SETTLE_S)
            time.sleep(SETTLE_S)
            end = time.monotonic()
            stop.set()
            for th in threads:
                th.join()
            rss_after = rss_kib(envoy.proc.pid) or 0
        finally:
            envoy.stop()
    before = sorted(d for t, d in latencies if t < push)
    after = sorted(d for t, d in latencies if push <= t < end)
    return {
        "applied_after_s": applied_after_s,
        "before_max_ms": max(before) * 1000 if before else None,
        "before_n": len(before),
        # The load generator's own stalls (Python threads on a shared
        # machine) show here as well: the baseline for the count after.
        "before_over_50ms": sum(1 for d in before if d > 0.05),
        "after_n": len(after),
        "after_s": end - push,
        "after_max_ms": max(after) * 1000 if after else None,
        "after_p99_ms": after[int(len(after) * 0.99)] * 1000 if after else None,
        "over_50ms": sum(1 for d in after if d > 0.05),
        "timeouts": sum(1 for t in timeouts if t >= push),
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--operations", type=int, default=9_999,
                   help="more operations in the push (default 9,999: with the first, MAX_OPERATIONS)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    wasm = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    runs = {"A": [], "B": []}
    for rnd in range(1, args.rounds + 1):
        for name in ("A", "B"):
            r = one_run(wasm[name], args.operations)
            runs[name].append(r)
            applied = f"{r['applied_after_s']:.1f} s" if r["applied_after_s"] is not None else "NOT in time"
            print(f"round {rnd} {name}: applied after {applied}; before the push ({BEFORE_S:g} s): {r['before_n']} requests, max {r['before_max_ms']:.1f} ms, {r['before_over_50ms']} over 50 ms; "
                  f"from the push until {SETTLE_S:g} s after it was live ({r['after_s']:.0f} s): {r['after_n']} requests, max {r['after_max_ms']:.1f} ms, "
                  f"p99 {r['after_p99_ms']:.1f} ms, {r['over_50ms']} over 50 ms, {r['timeouts']} held past {CLIENT_TIMEOUT_S} s; "
                  f"RSS {r['rss_before_mib']:.1f} -> {r['rss_after_mib']:.1f} MiB", flush=True)
    for name in ("A", "B"):
        rs = runs[name]
        live = [r["applied_after_s"] for r in rs if r["applied_after_s"] is not None]
        print(f"{name}: live after (median) {statistics.median(live) if live else float('nan'):.1f} s, "
              f"max after push median {statistics.median(r['after_max_ms'] for r in rs):.1f} ms, "
              f"p99 median {statistics.median(r['after_p99_ms'] for r in rs):.1f} ms, "
              f"over 50 ms {[r['over_50ms'] for r in rs]} (before the push {[r['before_over_50ms'] for r in rs]}), "
              f"RSS growth median {statistics.median(r['rss_after_mib'] - r['rss_before_mib'] for r in rs):.1f} MiB")


if __name__ == "__main__":
    main()
