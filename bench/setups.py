"""What the benchmarks run: the backend Envoy, the JSON bodies, the plugin
configurations, and the proxy setups measured side by side.

Shared by bench/run.py (`make bench`), bench/ab.py, bench/memory.py and
bench/soak.py; the processes, /proc readers and load generators themselves
are the rig's (the `testbed` package).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml  # PyYAML comes with the project venv

from testbed import load
from testbed.counters import OPERATION_COUNTERS, OPERATION_STATS
from testbed.envoy import Envoy, envoy_binary
from testbed.net import HOST, free_port, http, wait_until
from testbed.process import machine, rss_kib, smaps_rollup, status_field, stop_process

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
BACKEND_TEMPLATE = BENCH / "backend-envoy.yaml"
PR_WASM = REPO / "target/wasm32-wasip1/release/parallel_run.wasm"
EMPTY_SRC = BENCH / "empty-filter"
EMPTY_TARGET = REPO / "target" / "empty-filter"
EMPTY_WASM = EMPTY_TARGET / "wasm32-wasip1/release/empty_filter.wasm"
FLOOR_SRC = BENCH / "shadow-floor"
FLOOR_TARGET = REPO / "target" / "shadow-floor"
FLOOR_WASM = FLOOR_TARGET / "wasm32-wasip1/release/shadow_floor.wasm"

SIZES = {"1k": 1024, "2k": 2048, "64k": 64 * 1024, "512k": 512 * 1024}
MAIN_SIZE = "2k"
SWEEP_SIZES = ("1k", "64k", "512k")
MAX_BODY_BYTES = 1 << 20

# The one operation every benchmark request matches: POST /bench/<size>.
OPERATION = "bench"
# Operations added for the large-configuration setup (the 2,001).
EXTRA_OPERATIONS = 2000

SKIPPED = tuple(c for c in OPERATION_COUNTERS if c.startswith("skipped_"))

STARTED = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - STARTED:6.1f}s] {msg}", flush=True)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- bodies


def json_body(size, kind):
    """A JSON document of exactly `size` bytes: an array of small objects plus a pad string."""
    items = []
    i = 0
    while True:
        item = (f'{{"id":{i},"sku":"{kind}-{i:08d}","name":"bench {kind} item {i}",'
                f'"price":{(i * 37) % 10000 / 100:.2f},"in_stock":{"true" if i % 3 else "false"},'
                f'"tags":["t{i % 7}","t{i % 11}"]}}')
        candidate = '{"items":[' + ",".join(items + [item]) + '],"pad":""}'
        if len(candidate) > size:
            break
        items.append(item)
        i += 1
    doc = '{"items":[' + ",".join(items) + '],"pad":"' + '"}'
    doc = doc[:-2] + "x" * (size - len(doc)) + '"}'
    assert len(doc) == size, (len(doc), size)
    json.loads(doc)
    return doc.encode()


def request_bodies(tmp):
    """{size name: file with a JSON request body of that size}."""
    files = {}
    for name, size in SIZES.items():
        files[name] = Path(tmp) / f"request-{name}.json"
        files[name].write_bytes(json_body(size, "req"))
    return files


# ---------------------------------------------------------------- the backend


class BackendEnvoy:
    """One Envoy with two direct_response listeners, legacy and candidate,
    answering POST /bench/<size> with the same JSON body of that size."""

    def __init__(self, tmp, concurrency):
        self.tmp = Path(tmp)
        self.concurrency = concurrency
        self.admin_port = free_port()
        self.ports = {"legacy": free_port(), "candidate": free_port()}
        boot = yaml.safe_load(BACKEND_TEMPLATE.read_text())
        boot["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        template = boot["static_resources"]["listeners"][0]
        hcm = template["filter_chains"][0]["filters"][0]["typed_config"]
        route_template = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
        routes = []
        for name, size in SIZES.items():
            body_file = self.tmp / f"response-{name}.json"
            body_file.write_bytes(json_body(size, "resp"))
            route = json.loads(json.dumps(route_template))
            route["match"] = {"path": f"/bench/{name}"}
            route["direct_response"]["body"] = {"filename": str(body_file)}
            routes.append(route)
        hcm["route_config"]["virtual_hosts"][0]["routes"] = routes
        listeners = []
        for side, port in self.ports.items():
            listener = json.loads(json.dumps(template))
            listener["name"] = side
            listener["address"]["socket_address"]["port_value"] = port
            listener["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"] = side
            listeners.append(listener)
        boot["static_resources"]["listeners"] = listeners
        self.bootstrap_file = self.tmp / "backend-envoy.json"
        self.bootstrap_file.write_text(json.dumps(boot, indent=2))
        self.log_file = self.tmp / "backend-envoy.log"
        self.proc = None
        self._log = None

    def start(self):
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", str(self.bootstrap_file), "--concurrency", str(self.concurrency),
             "--use-dynamic-base-id", "-l", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"backend Envoy exited ({self.proc.returncode}):\n{self.log_file.read_text()[-3000:]}")
            try:
                status, _, _ = http("POST", self.url("legacy", MAIN_SIZE), body=b"{}", timeout=1)
                return status == 200
            except OSError:
                return False

        wait_until(ready, 30, 0.05, "backend Envoy")
        return self

    def url(self, side, size):
        return f"http://{HOST}:{self.ports[side]}/bench/{size}"

    def stop(self):
        stop_process(self.proc)
        if self._log:
            self._log.close()
            self._log = None


# ---------------------------------------------------------------- plugin configurations


def plugin_config(mode, extra_operations=0):
    """One operation, POST /bench/{size}, in `mode`; with `extra_operations`
    more before it that no benchmark request matches.

    The extra operations look like a real migration's: every method, paths
    under the same /bench/{size} prefix as the measured one (the matcher has
    to go down the same branch of its trie, then choose among 2,000 literal
    segments), all four modes, comparison rules on every fourth. The measured
    operation comes last, the worst place for anything that scans the list.
    """
    methods = ("GET", "PUT", "DELETE", "PATCH", "POST")
    modes = ("legacy", "shadow", "cutover", "candidate")
    operations = []
    for i in range(extra_operations):
        op = {"id": f"op{i:04d}", "method": methods[i % len(methods)], "path": f"/bench/{{size}}/part{i}/{{id}}",
              "mode": modes[i % len(modes)]}
        if i % 4 == 3:
            op["compare"] = {"ignore_headers": ["x-trace-*"], "ignore_json_paths": [f"/items/*/etag{i}"]}
        operations.append(op)
    measured = {"id": OPERATION, "method": "POST", "path": "/bench/{size}", "mode": mode}
    if mode == "shadow":
        measured["shadow_unsafe"] = True  # POST is not shadowed otherwise
    operations.append(measured)
    return {
        "revision": f"bench-{mode}-{len(operations)}ops",
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "defaults": {"shadow_percent": 100, "shadow_timeout_ms": 3000, "max_body_bytes": MAX_BODY_BYTES,
                     "min_samples": 100},
        "operations": operations,
    }


def add_mirror(boot):
    """Envoy's native mirror of every request to the candidate cluster."""
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["request_mirror_policies"] = [{"cluster": "candidate"}]  # no runtime_fraction: every request


# ---------------------------------------------------------------- the setups


class Setup:
    """One proxy configuration under test.

    `start(tmp, backend, concurrency, wasm)` returns a started testbed Envoy;
    `wasm` overrides the module (parallel-run's, the empty one's or the
    shadow floor's).
    `shadows`: every request is also sent to the candidate; `books`: the
    filter's counters are read and checked after the load; `timed`: `make
    bench` runs it when no --setups are named.
    """

    def __init__(self, name, label, kind, mode=None, extra_operations=0, timed=True):
        self.name, self.label, self.kind, self.mode = name, label, kind, mode
        self.extra_operations = extra_operations
        self.timed = timed
        self.shadows = kind in ("mirror", "shadow-floor") or mode == "shadow"
        self.books = kind == "filter"

    def start(self, tmp, backend, concurrency, wasm=None, **options):
        """`options` go to the testbed Envoy (e.g. `wrapper`, `ready_timeout`)."""
        clusters = dict(backend.ports)
        common = {"concurrency": concurrency, "log_level": "warning", **options}
        if self.kind == "envoy":
            return Envoy(tmp, clusters, with_filter=False, route_cluster="legacy", **common)
        if self.kind == "mirror":
            return Envoy(tmp, clusters, with_filter=False, route_cluster="legacy", tweak=add_mirror, **common)
        if self.kind == "empty":
            # The same bootstrap as the filter's (header guard, routes); the empty
            # module sets no route header, so the fallback route to legacy serves.
            return Envoy(tmp, clusters, wasm_path=wasm or EMPTY_WASM, config={"ignored": True}, **common)
        if self.kind == "shadow-floor":
            # The filter's shadow bootstrap too; the module shadows every
            # request to the candidate cluster, reads no configuration and
            # sets no route header (the fallback route to legacy serves).
            return Envoy(tmp, clusters, wasm_path=wasm or FLOOR_WASM, config={"ignored": True}, **common)
        return Envoy(tmp, clusters, wasm_path=wasm or PR_WASM,
                     config=plugin_config(self.mode, self.extra_operations), **common)

    def published(self, envoy, timeout=400):
        """Waits until the readiness leader has set every operation's gauges
        (the number of the filter's stats holds for 6 s), and returns the
        seconds it took. The leader defines at most DEFINES_PER_TICK stats a
        second (src/metrics.rs), and the window gauges of an operation that
        shadows only at its evaluations, every EVALUATE_EVERY_TICKS (5) s
        (src/readiness.rs): a hold shorter than that ended the wait between
        two of them, with 57 of 1,000 such operations' window gauges
        defined. 2,001 operations' take minutes, and memory read before
        that misses most of their stats."""
        if self.kind != "filter":
            return 0.0
        started = time.monotonic()
        last, since = -1, started
        while time.monotonic() - started < timeout:
            count = len(envoy.stats(filter=r"^wasmcustom\.parallel_run\."))
            now = time.monotonic()
            if count != last:
                last, since = count, now
            elif now - since >= 6:
                break
            time.sleep(0.5)
        return round(time.monotonic() - started, 1)


SETUPS = {s.name: s for s in (
    Setup("envoy", "Envoy, no filter", "envoy"),
    Setup("mirror", "Envoy + native request_mirror_policies", "mirror"),
    Setup("empty", "Envoy + empty proxy-wasm module (the floor)", "empty"),
    Setup("shadow-floor", "Envoy + minimal shadowing wasm module (the shadow floor)", "shadow-floor"),
    Setup("pr-legacy", "parallel-run, mode legacy (pass-through)", "filter", "legacy"),
    Setup("pr-shadow", "parallel-run, mode shadow (shadow + compare)", "filter", "shadow"),
    Setup("pr-legacy-2001", f"parallel-run pass-through, {EXTRA_OPERATIONS + 1:,} operations", "filter", "legacy",
          EXTRA_OPERATIONS),
    # Cut over: the candidate serves, through the route the filter's header
    # picks, and the filter checks the route Envoy took (src/stream.rs).
    # Counted (bench/instructions.py), not timed by default: `make bench`
    # keeps its length.
    Setup("pr-candidate", "parallel-run, mode candidate (the candidate serves)", "filter", "candidate", timed=False),
)}
# What `make bench` times when no --setups are named.
TIMED = tuple(name for name, setup in SETUPS.items() if setup.timed)


def build_module(src, target, wasm, what):
    """Build a bench module (its own cargo workspace, proxy-wasm 0.2.5) from
    `src` into `target`; a no-op when it is up to date. Returns `wasm`."""
    cmd = ["cargo", "build", "--release", "--target", "wasm32-wasip1", "--manifest-path", str(src / "Cargo.toml")]
    env = {**os.environ, "CARGO_TARGET_DIR": str(target)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"building {what} failed:\n{out.stderr[-3000:]}")
    return wasm


PROCESSORS_SRC = BENCH / "processors.c"
PROCESSORS_LIB = REPO / "target" / "processors" / "processors.so"


def processors_wrapper(count):
    """The command prefix that starts a proxy believing the machine has
    `count` processors (bench/processors.c, built with the C compiler on
    first use): V8 sizes the pool it compiles the module on from that."""
    if not PROCESSORS_LIB.exists() or PROCESSORS_LIB.stat().st_mtime < PROCESSORS_SRC.stat().st_mtime:
        PROCESSORS_LIB.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["cc", "-shared", "-fPIC", "-O2", "-o", str(PROCESSORS_LIB), str(PROCESSORS_SRC), "-ldl"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            sys.exit(f"building {PROCESSORS_SRC} failed:\n{out.stderr[-3000:]}")
    return ["env", f"LD_PRELOAD={PROCESSORS_LIB}", f"PARALLEL_RUN_PROCESSORS={count}"]


def build_empty_filter():
    """Build bench/empty-filter into target/empty-filter/."""
    return build_module(EMPTY_SRC, EMPTY_TARGET, EMPTY_WASM, "the empty filter")


def build_shadow_floor():
    """Build bench/shadow-floor into target/shadow-floor/."""
    return build_module(FLOOR_SRC, FLOOR_TARGET, FLOOR_WASM, "the shadow floor")


# ---------------------------------------------------------------- after the load


def counters(envoy, ops):
    """{op: {counter: value}} for the named operations (0 when absent)."""
    stats = envoy.stats(filter="^" + re.escape(OPERATION_STATS))
    return {op: {c: stats.get(f"{OPERATION_STATS}{op}.{c}", 0) for c in OPERATION_COUNTERS} for op in ops}


def settled(c):
    return c["matched"] + c["unmatched"] + c["failed"] + c["abandoned"]


def drain(envoy, ops, timeout):
    """Wait until every shadow call made has an outcome and the counters stand
    still (two reads 0.2 s apart). Returns (counters, seconds waited, drained)."""
    start = time.monotonic()
    last = None
    while True:
        now = counters(envoy, ops)
        if now == last and all(c["shadowed"] == settled(c) for c in now.values()):
            return now, time.monotonic() - start, True
        if time.monotonic() - start > timeout:
            return now, time.monotonic() - start, False
        last = now
        time.sleep(0.2)


LOG_PROBLEM = re.compile(r"\[(warning|error|critical)\]|panic", re.I)
# Printed by every Envoy of this benchmark, filter or not.
LOG_BENIGN = re.compile(r"no configured limit to the number of allowed active downstream connections|caught ENVOY_SIGTERM")


def log_problems(envoy):
    """Warning/error/critical lines (and panics) in the proxy log, minus Envoy's two stock warnings."""
    return [line for line in envoy.log_text().splitlines() if LOG_PROBLEM.search(line) and not LOG_BENIGN.search(line)]


def describe(generators=("oha",)):
    """The machine, the Envoy and the load generators' versions, for a report's header."""
    m = machine()
    version = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    m["envoy"] = version.split("version:", 1)[-1].strip()
    m["generators"] = {g: load.version(g) for g in generators if load.available(g)}
    m["oha"] = m["generators"].get("oha", "oha")
    return m


def memory_sample(envoy):
    """Envoy's resident memory and its parts, with its live wasm VMs.

    VmRSS; its anonymous and file-backed parts (/proc/PID/smaps_rollup); what
    tcmalloc holds (admin /memory total_physical_bytes: Envoy's C++ heap, where
    V8's malloc'd objects live too) and has allocated; anonymous memory outside
    tcmalloc (V8's page allocator: JS/wasm heaps, compiled code, wasm linear
    memories; and thread stacks); live and created V8 VMs (admin gauges).
    """
    pid = envoy.proc.pid
    roll = smaps_rollup(pid)
    status, _, body = http("GET", envoy.admin_url("/memory"), timeout=5)
    mem = {k: int(v) for k, v in json.loads(body).items() if str(v).isdigit()} if status == 200 else {}
    stats = envoy.stats(filter=r"^wasm\.envoy\.wasm\.runtime\.v8\.(active|created)$")
    rss = rss_kib(pid)
    anon = roll.get("Anonymous", 0)
    tc = mem.get("total_physical_bytes", 0) // 1024
    return {
        "rss_kib": rss,
        "anon_kib": anon,
        "file_kib": roll.get("Rss", rss) - anon,
        "tcmalloc_physical_kib": tc,
        "tcmalloc_allocated_kib": mem.get("allocated", 0) // 1024,
        "anon_outside_tcmalloc_kib": anon - tc,
        "threads": status_field(pid, "Threads") or 0,
        "vms_active": stats.get("wasm.envoy.wasm.runtime.v8.active", 0),
        "vms_created": stats.get("wasm.envoy.wasm.runtime.v8.created", 0),
    }


# ---------------------------------------------------------------- the scripts around it


def header(command_var, module, generators=("oha",), **modules):
    """What every report starts from: date, the command (from $`command_var`,
    set by the Makefile, or this process's own), the machine and versions,
    and for each module path `name=path` its `name` (relative) and `name_bytes`."""
    meta = {
        "date": utc_now(),
        "command": os.environ.get(command_var) or f"python -m {module} " + " ".join(sys.argv[1:]),
        "machine": describe(generators),
    }
    for name, path in modules.items():
        meta[name] = os.path.relpath(path, REPO)
        meta[name + "_bytes"] = Path(path).stat().st_size
    return meta


def rewrite_report(from_json, output, render):
    """Write the report of an earlier run again from its saved JSON:
    render(data, args of that run with `output`) -> markdown text."""
    data = json.loads(Path(from_json).read_text())
    saved = argparse.Namespace(**{**data["args"], "output": output})
    text = render(data, saved)
    Path(output).write_text(text)
    print(text)
    return 0


def stop_on_sigterm():
    """SIGTERM ends the run the way Ctrl-C does: stop the processes, report what was measured."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)


def remove_tmp(tmp, keep):
    if keep:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
