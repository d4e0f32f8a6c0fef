#!/usr/bin/env python3
"""parallel-run benchmark: what the filter costs next to plain Envoy and to
Envoy's native request mirroring. Run it with `make bench` (see
bench/README.md); `make bench BENCH_ARGS=--quick` for a short run.

Everything runs on 127.0.0.1:
  - one backend Envoy (bench/backend-envoy.yaml) with two listeners, legacy
    and candidate, answering every POST /bench/<size> with the same fixed
    JSON body (direct_response);
  - the proxy Envoy under test, started from envoy/envoy.yaml through the
    e2e harness, fresh for every measurement (one setup, one round);
  - oha (installed project-locally in .tools/bin) as the load generator.

Setups (the same load for each, interleaved in rounds 1 2 3 4 1 2 3 4 ...):
  1 envoy      Envoy, no wasm filter, route to the legacy cluster
  2 mirror     Envoy, no wasm filter, route to legacy + native
               request_mirror_policies to the candidate cluster
  3 pr-legacy  Envoy + parallel-run, the operation in mode "legacy"
  4 pr-shadow  Envoy + parallel-run, the operation in mode "shadow"
               (shadow call to candidate + response comparison)
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import yaml  # noqa: E402  (PyYAML comes with the project venv)

from harness import HOST, Envoy, envoy_binary, free_port, http, stop_process, wait_until  # noqa: E402

OHA = Path(os.environ.get("OHA") or REPO / ".tools" / "bin" / "oha")
BACKEND_TEMPLATE = BENCH / "backend-envoy.yaml"
OUT = BENCH / "out"

SIZES = {"1k": 1024, "2k": 2048, "64k": 64 * 1024, "512k": 512 * 1024}
MAIN_SIZE = "2k"
SWEEP_SIZES = ("1k", "64k", "512k")
MAX_BODY_BYTES = 1 << 20

SETUPS = {
    1: ("envoy", "Envoy, no filter"),
    2: ("mirror", "Envoy + native request_mirror_policies"),
    3: ("pr-legacy", "parallel-run, mode legacy"),
    4: ("pr-shadow", "parallel-run, mode shadow"),
}

COUNTERS = ("requests", "served_legacy", "served_candidate", "shadowed", "matched", "unmatched",
            "unmatched_status", "unmatched_headers", "unmatched_body", "failed", "failed_timeout",
            "failed_error", "failed_5xx", "failed_body_too_large", "abandoned", "skipped_unsafe_method",
            "skipped_sampled_out", "skipped_body_too_large", "skipped_overload")
SKIPPED = tuple(c for c in COUNTERS if c.startswith("skipped_"))
CLK_TCK = os.sysconf("SC_CLK_TCK")

STARTED = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - STARTED:6.1f}s] {msg}", flush=True)


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


# ---------------------------------------------------------------- processes


def proc_rss_kib(pid):
    """VmRSS of a live process in KiB (None if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_s(pid):
    """user+system CPU seconds a live process used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def system_cpu():
    """Jiffies of the whole machine from /proc/stat: (user+nice+system, irq+softirq, steal).

    Interrupt time (loopback networking, mostly ours) and steal (the
    hypervisor) belong to no process, so they are kept apart.
    """
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]] + [0] * 8
    return f[0] + f[1] + f[2], f[5] + f[6], f[7]


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class BackendEnvoy:
    """One Envoy with two direct_response listeners, legacy and candidate."""

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

    def stats(self):
        status, _, body = http("GET", f"http://{HOST}:{self.admin_port}/stats?format=json")
        return {s["name"]: s["value"] for s in json.loads(body)["stats"] if isinstance(s.get("value"), int)}

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


# ---------------------------------------------------------------- load


def oha(url, body_file, duration, connections, rate=None):
    """One bounded oha run (POST, JSON body). Returns a summary dict."""
    cmd = [str(OHA), "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-c", str(connections),
           "-w", "-t", "20s", "-m", "POST", "-T", "application/json", "-D", str(body_file)]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    cmd.append(url)
    before = children_cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    cpu = children_cpu_s() - before
    if out.returncode != 0:
        raise RuntimeError(f"oha failed ({out.returncode}): {out.stderr[-2000:]}")
    data = json.loads(out.stdout)
    summary = data["summary"]
    codes = {str(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values())
    errors = sum((data.get("errorDistribution") or {}).values())
    elapsed = summary.get("total") or duration
    pct = data.get("latencyPercentiles") or {}
    return {
        "rps": ok / elapsed if elapsed else 0.0,
        "ok": ok,
        "non2xx": total - ok,
        "errors": errors,
        "error_kinds": data.get("errorDistribution") or {},
        "p50_ms": (pct.get("p50") or 0.0) * 1000,
        "p99_ms": (pct.get("p99") or 0.0) * 1000,
        "max_ms": (summary.get("slowest") or 0.0) * 1000,
        "elapsed_s": elapsed,
        "oha_cpu_s": cpu,
        "target_rate": rate,
    }


# ---------------------------------------------------------------- proxy setups


def plugin_config(mode):
    operations = []
    for name in SIZES:
        op = {"id": f"post{name}", "method": "POST", "path": f"/bench/{name}", "mode": mode}
        if mode == "shadow":
            op["shadow_unsafe"] = True  # POST is not shadowed otherwise
        operations.append(op)
    return {
        "revision": f"bench-{mode}",
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "defaults": {"shadow_percent": 100, "shadow_timeout_ms": 3000, "max_body_bytes": MAX_BODY_BYTES,
                     "min_samples": 100},
        "operations": operations,
    }


def add_mirror(boot):
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["request_mirror_policies"] = [{"cluster": "candidate"}]  # no runtime_fraction: every request


def start_proxy(setup, tmp, backend, concurrency):
    clusters = dict(backend.ports)
    common = {"concurrency": concurrency, "log_level": "warning"}
    if setup == 1:
        return Envoy(tmp, clusters, with_filter=False, route_cluster="legacy", **common)
    if setup == 2:
        return Envoy(tmp, clusters, with_filter=False, route_cluster="legacy", tweak=add_mirror, **common)
    return Envoy(tmp, clusters, config=plugin_config("legacy" if setup == 3 else "shadow"), **common)


def filter_counters(envoy, op_id):
    prefix = f"wasmcustom.parallel_run.operation.{op_id}."
    stats = envoy.stats(filter="^" + re.escape(prefix))
    return {c: stats.get(prefix + c, 0) for c in COUNTERS}


def cluster_counts(envoy):
    stats = envoy.stats(filter=r"^cluster\.(legacy|candidate)\.upstream_(rq_completed|rq_2xx|cx_total|rq_pending_overflow)$")
    return {k.removeprefix("cluster."): v for k, v in stats.items()}


def settled(c):
    return c["matched"] + c["unmatched"] + c["failed"] + c["abandoned"]


def drain(envoy, op_id, timeout):
    """Wait until every shadow call made has an outcome and the counters stand still."""
    start = time.monotonic()
    last = None
    while True:
        now = filter_counters(envoy, op_id)
        if now == last and now["shadowed"] == settled(now):
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


def measure(setup, size, tmp, backend, args, body_files, latency_rate, tag):
    """Start a fresh proxy for `setup`, warm it up, measure, stop it."""
    t0 = time.monotonic()
    envoy = start_proxy(setup, tmp, backend, args.proxy_concurrency)
    run = {"setup": setup, "size": size, "tag": tag, "start_s": time.monotonic() - t0}
    try:
        pid = envoy.proc.pid
        url = envoy.url(f"/bench/{size}")
        run["rss_idle_kib"] = proc_rss_kib(pid)
        warm = oha(url, body_files[size], args.warmup, args.connections)
        cpu_proxy, cpu_backend, sys0 = proc_cpu_s(pid), proc_cpu_s(backend.proc.pid), system_cpu()
        run["tput"] = oha(url, body_files[size], args.duration, args.connections)
        tput = run["tput"]
        tput["proxy_cpu_s"] = proc_cpu_s(pid) - cpu_proxy
        tput["backend_cpu_s"] = proc_cpu_s(backend.proc.pid) - cpu_backend
        sys1 = system_cpu()
        # Whole-machine busy time over the run, and the part no process of ours used
        # (other work on this shared machine): the noise indicator.
        tput["process_cpu_s"] = (sys1[0] - sys0[0]) / CLK_TCK
        tput["irq_cpu_s"] = (sys1[1] - sys0[1]) / CLK_TCK
        tput["steal_cpu_s"] = (sys1[2] - sys0[2]) / CLK_TCK
        tput["machine_cpu_s"] = tput["process_cpu_s"] + tput["irq_cpu_s"] + tput["steal_cpu_s"]
        tput["foreign_cpu_s"] = max(0.0, tput["process_cpu_s"] - tput["proxy_cpu_s"] - tput["backend_cpu_s"] - tput["oha_cpu_s"])
        run["rss_after_tput_kib"] = proc_rss_kib(pid)
        sent = warm["ok"] + warm["non2xx"] + run["tput"]["ok"] + run["tput"]["non2xx"]
        if latency_rate:
            run["lat"] = oha(url, body_files[size], args.latency_duration, args.connections, rate=latency_rate)
            run["rss_after_lat_kib"] = proc_rss_kib(pid)
            sent += run["lat"]["ok"] + run["lat"]["non2xx"]
        run["answered"] = sent
        if setup == 4:
            counters, waited, drained = drain(envoy, f"post{size}", args.drain_timeout)
            run["counters"], run["drain_s"], run["drained"] = counters, waited, drained
            run["rss_after_drain_kib"] = proc_rss_kib(pid)
        run["clusters"] = cluster_counts(envoy)
        run["log_problems"] = log_problems(envoy)
        if run["log_problems"]:
            OUT.mkdir(exist_ok=True)
            shutil.copy(envoy.log_file, OUT / f"proxy-{tag}-setup{setup}-{size}.log")
    finally:
        envoy.stop()
    return run


# ---------------------------------------------------------------- checks


def counter_check(run):
    """For a setup-4 run: did every shadow call end in an outcome, and was anything skipped?"""
    c = run["counters"]
    skipped = sum(c[k] for k in SKIPPED)
    errors = run["tput"]["errors"] + run["tput"]["non2xx"] + run.get("lat", {}).get("errors", 0) + run.get("lat", {}).get("non2xx", 0)
    balanced = c["shadowed"] == settled(c)
    complete = (balanced and run["drained"] and skipped == 0 and c["abandoned"] == 0 and c["failed"] == 0
                and c["unmatched"] == 0 and c["shadowed"] == c["requests"] == run["answered"] and errors == 0)
    return {"balanced": balanced, "skipped": skipped, "complete": complete, "client_errors": errors}


# ---------------------------------------------------------------- report


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0, unit=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = next((line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "?")
    version = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    version = version.split("version:", 1)[-1].strip()
    oha_version = subprocess.run([str(OHA), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "envoy": version,
        "oha": oha_version,
        "python": platform.python_version(),
    }


def runs_of(runs, setup, size=MAIN_SIZE, tag="main"):
    return [r for r in runs if r["setup"] == setup and r["size"] == size and r["tag"] == tag]


def per_round_ratio(runs, a, b, key, tag="main", size=MAIN_SIZE):
    """Median over rounds of key(run of a) / key(run of b), pairing runs of the same round."""
    ra, rb = runs_of(runs, a, size, tag), runs_of(runs, b, size, tag)
    ratios = []
    for x in ra:
        y = next((y for y in rb if y["round"] == x["round"]), None)
        if y is None:
            continue
        kx, ky = key(x), key(y)
        if kx is not None and ky:
            ratios.append(kx / ky)
    return med(ratios), ratios


def report(runs, meta, args, elapsed):
    lines = []
    add = lines.append
    m = meta["machine"]
    add("# parallel-run benchmark results")
    add("")
    add(f"- Date: {meta['date']}")
    add(f"- Command: `{meta['command']}` (mode: {'quick' if args.quick else 'full'}; took {elapsed / 60:.1f} min)")
    add(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['kernel']}")
    add(f"- Envoy {m['envoy']}; load generator {m['oha']}; filter {meta['wasm']} ({meta['wasm_bytes']:,} bytes, release)")
    add(f"- Proxy Envoy `--concurrency {args.proxy_concurrency}`, backend Envoy `--concurrency {args.backend_concurrency}`;"
        f" load generator, proxy and backend share the {m['cores']} cores.")
    add(f"- Load: POST /bench/{MAIN_SIZE} with a {SIZES[MAIN_SIZE]:,}-byte JSON body, {SIZES[MAIN_SIZE]:,}-byte JSON reply;"
        f" {args.connections} connections, HTTP/1.1 keep-alive.")
    add(f"  Throughput: closed loop for {args.duration} s after a {args.warmup} s warm-up."
        f" Latency: fixed rate {args.rate} req/s for {args.latency_duration} s with oha `--latency-correction`.")
    add(f"- {meta['rounds_done']} interleaved round(s) (1 2 3 4 1 2 3 4 ...), a fresh proxy Envoy per setup and round.")
    if meta.get("truncated"):
        add(f"- **Time budget reached: stopped after {meta['rounds_done']} of {args.rounds} rounds.**")
    add("")
    add("## Main table (median of rounds)")
    add("")
    add("| # | setup | req/s | p50 @rate | p99 @rate | RSS after load | RSS idle | proxy CPU/s | errors |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for setup, (short, desc) in SETUPS.items():
        rs = runs_of(runs, setup)
        if not rs:
            continue
        errors = sum(r["tput"]["errors"] + r["tput"]["non2xx"] + r.get("lat", {}).get("errors", 0)
                     + r.get("lat", {}).get("non2xx", 0) for r in rs)
        add(f"| {setup} | {desc} | {fmt(med([r['tput']['rps'] for r in rs]))}"
            f" | {fmt(med([r['lat']['p50_ms'] for r in rs if 'lat' in r]), 2, ' ms')}"
            f" | {fmt(med([r['lat']['p99_ms'] for r in rs if 'lat' in r]), 2, ' ms')}"
            f" | {fmt(med([rss_after(r) for r in rs]) / 1024 if rs else None, 1, ' MiB')}"
            f" | {fmt(med([r['rss_idle_kib'] for r in rs]) / 1024, 1, ' MiB')}"
            f" | {fmt(med([r['tput']['proxy_cpu_s'] / r['tput']['elapsed_s'] for r in rs]), 2)}"
            f" | {errors} |")
    add("")
    add("Per round, req/s: " + "; ".join(
        f"{SETUPS[s][0]} " + ", ".join(fmt(r["tput"]["rps"]) for r in runs_of(runs, s)) for s in SETUPS if runs_of(runs, s)))
    add("")
    add("Per round, p99 at the fixed rate: " + "; ".join(
        f"{SETUPS[s][0]} " + ", ".join(fmt(r["lat"]["p99_ms"], 2) for r in runs_of(runs, s) if "lat" in r)
        for s in SETUPS if runs_of(runs, s)))
    unsustained = [(r["setup"], r["round"], r["lat"]["rps"]) for r in runs if r["tag"] == "main" and "lat" in r
                   and r["lat"]["rps"] < 0.95 * args.rate]
    if unsustained:
        add("")
        add("**Fixed rate not sustained** (achieved < 95% of the target; its latencies are queueing): "
            + ", ".join(f"setup {s} round {rd}: {rps:,.0f} req/s" for s, rd, rps in unsustained))
    add("")
    add("## Ratios (the figures of merit; median of the per-round ratios)")
    add("")
    add("| ratio | value | per round |")
    add("|---|---:|---|")
    ratio_defs = [
        ("throughput 3 / 1 (filter pass-through vs no filter)", 3, 1, lambda r: r["tput"]["rps"], 3),
        ("throughput 4 / 2 (shadow+compare vs native mirror)", 4, 2, lambda r: r["tput"]["rps"], 3),
        ("throughput 4 / 1 (shadow+compare vs no filter)", 4, 1, lambda r: r["tput"]["rps"], 3),
        ("p99 at fixed rate, 4 / 2", 4, 2, lambda r: r.get("lat", {}).get("p99_ms"), 2),
        ("p99 at fixed rate, 3 / 1", 3, 1, lambda r: r.get("lat", {}).get("p99_ms"), 2),
        ("RSS after load, 4 / 2", 4, 2, rss_after, 2),
        ("RSS after load, 3 / 1", 3, 1, rss_after, 2),
    ]
    ratios = {}
    for label, a, b, key, digits in ratio_defs:
        value, per = per_round_ratio(runs, a, b, key)
        ratios[label] = value
        add(f"| {label} | {fmt(value, digits)} | {', '.join(fmt(x, digits) for x in per)} |")
    rss4 = med([rss_after(r) for r in runs_of(runs, 4)])
    rss2 = med([rss_after(r) for r in runs_of(runs, 2)])
    if rss4 and rss2:
        add("")
        add(f"Memory 4 - 2: {(rss4 - rss2) / 1024:+.1f} MiB of resident memory (medians).")

    add("")
    add("## Shadow bookkeeping (every setup-4 run)")
    add("")
    add("Counters `wasmcustom.parallel_run.operation.<id>.*` read from the proxy's admin after the load,"
        " once the in-flight comparisons drained. `settled` = matched + unmatched + failed + abandoned;"
        " `answered` = responses the load generator got (warm-up included). A run is complete when"
        " shadowed = settled = requests = answered and nothing was skipped, failed, unmatched or abandoned.")
    add("")
    add("| run | size | answered | requests | shadowed | matched | unmatched | failed | abandoned | skipped | shadowed = settled | drain | complete |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    all_complete = True
    for r in runs:
        if r["setup"] != 4:
            continue
        c, chk = r["counters"], counter_check(r)
        all_complete &= chk["complete"]
        add(f"| {r['tag']} r{r['round']} | {r['size']} | {r['answered']:,} | {c['requests']:,} | {c['shadowed']:,}"
            f" | {c['matched']:,} | {c['unmatched']:,} | {c['failed']:,} | {c['abandoned']:,} | {chk['skipped']:,}"
            f" | {'yes' if chk['balanced'] else '**NO**'} | {r['drain_s']:.1f} s{'' if r['drained'] else ' (timeout)'}"
            f" | {'yes' if chk['complete'] else '**NO**'} |")
    add("")
    add("All setup-4 runs complete: " + ("yes" if all_complete else "**NO** (see the rows marked NO)"))
    mirror = [r for r in runs if r["setup"] == 2]
    if mirror:
        gaps = [r["clusters"].get("legacy.upstream_rq_completed", 0) - r["clusters"].get("candidate.upstream_rq_completed", 0)
                for r in mirror]
        add("")
        add("Native mirror (setup 2) for comparison: legacy minus candidate upstream requests per run: "
            + ", ".join(str(g) for g in gaps) + " (the mirror keeps no books of its own).")

    sweep = [r for r in runs if r["tag"] == "sweep"]
    if sweep:
        add("")
        add("## Body-size sweep: setup 4 vs setup 2 (median of rounds)")
        add("")
        add(f"Request and response bodies of the same size; closed loop, {args.connections} connections,"
            f" {args.sweep_duration} s after a {args.warmup} s warm-up; fresh proxy per run; max_body_bytes {MAX_BODY_BYTES:,}."
            + (f" Latency at a fixed {args.sweep_rate} req/s for {args.sweep_duration} s." if args.sweep_rate else ""))
        add("")
        lat_cols = " p99 @rate 2 | p99 @rate 4 |" if args.sweep_rate else ""
        add("| size | req/s 2 | req/s 4 | 4 / 2 | p99 closed-loop 2 | p99 closed-loop 4 |" + lat_cols
            + " RSS 2 | RSS 4 | 4 complete |")
        add("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.sweep_rate else "") + "---:|---:|---|")
        for size in SWEEP_SIZES:
            r2, r4 = runs_of(runs, 2, size, "sweep"), runs_of(runs, 4, size, "sweep")
            if not r2 or not r4:
                continue
            ratio, _ = per_round_ratio(runs, 4, 2, lambda r: r["tput"]["rps"], tag="sweep", size=size)
            row = (f"| {size} ({SIZES[size]:,} B) | {fmt(med([r['tput']['rps'] for r in r2]))}"
                   f" | {fmt(med([r['tput']['rps'] for r in r4]))} | {fmt(ratio, 3)}"
                   f" | {fmt(med([r['tput']['p99_ms'] for r in r2]), 1, ' ms')}"
                   f" | {fmt(med([r['tput']['p99_ms'] for r in r4]), 1, ' ms')} |")
            if args.sweep_rate:
                row += (f" {fmt(med([r['lat']['p99_ms'] for r in r2 if 'lat' in r]), 2, ' ms')} |"
                        f" {fmt(med([r['lat']['p99_ms'] for r in r4 if 'lat' in r]), 2, ' ms')} |")
            complete = all(counter_check(r)["complete"] for r in r4)
            row += (f" {fmt(med([rss_after(r) for r in r2]) / 1024, 1, ' MiB')}"
                    f" | {fmt(med([rss_after(r) for r in r4]) / 1024, 1, ' MiB')} | {'yes' if complete else '**NO**'} |")
            add(row)

    add("")
    add("## Is the backend the bottleneck?")
    add("")
    b = meta["backend_check"]
    add(f"- oha straight at the backend Envoy (legacy listener, same body and connections, {args.duration} s):"
        f" {fmt(b['rps'])} req/s, p99 {fmt(b['p99_ms'], 2, ' ms')}; backend CPU {b['backend_cpu_s'] / b['elapsed_s']:.2f} core.")
    main = [r for r in runs if r["tag"] == "main"]
    for setup in SETUPS:
        rs = runs_of(runs, setup)
        if rs:
            add(f"- setup {setup} throughput runs: proxy {med([r['tput']['proxy_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f} core,"
                f" backend {med([r['tput']['backend_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f} core,"
                f" load generator {med([r['tput']['oha_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f} core,"
                f" other processes {med([r['tput']['foreign_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f} core,"
                f" interrupts {med([r['tput']['irq_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f},"
                f" steal {med([r['tput']['steal_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f}"
                f" (medians; whole machine busy {med([r['tput']['machine_cpu_s'] / r['tput']['elapsed_s'] for r in rs]):.2f} of {m['cores']}).")
    if main:
        best = max(med([r["tput"]["rps"] for r in runs_of(runs, s)]) or 0 for s in SETUPS)
        backend_share = max(med([r["tput"]["backend_cpu_s"] / r["tput"]["elapsed_s"] for r in runs_of(runs, s)]) or 0
                            for s in SETUPS)
        proxy_share = min(med([r["tput"]["proxy_cpu_s"] / r["tput"]["elapsed_s"] for r in runs_of(runs, s)]) or 0
                          for s in SETUPS)
        verdict = ("not the bottleneck" if b["rps"] > 1.5 * best and backend_share < proxy_share
                   else "possibly a bottleneck: read the numbers above with care")
        add(f"- The backend alone served {b['rps'] / best:.1f}x the best proxied median throughput ({best:,.0f} req/s),"
            f" and in every setup it used less CPU than the proxy (at most {backend_share:.2f} core vs at least"
            f" {proxy_share:.2f}): the backend is {verdict}.")
        foreign = med([r["tput"]["foreign_cpu_s"] / r["tput"]["elapsed_s"] for r in runs])
        add(f"- Median CPU used by processes outside the benchmark during the throughput runs: {foreign:.2f} core."
            " Anything well above 0 means the absolute numbers are depressed by other work; the interleaved"
            " ratios are meant to cancel that out.")

    problems = [(r, line) for r in runs for line in r["log_problems"]]
    add("")
    add("## Filter problems seen")
    add("")
    if problems:
        add(f"{len(problems)} warning/error line(s) in the proxy logs (copies in bench/out/):")
        add("")
        add("```")
        for r, line in problems[:20]:
            add(f"[{r['tag']} r{r['round']} setup {r['setup']} {r['size']}] {line[:300]}")
        add("```")
    else:
        add("No warning, error, critical or panic line in any proxy log (apart from Envoy's stock"
            " \"no configured limit ... downstream connections\" and \"caught ENVOY_SIGTERM\").")
    errs = [(r, r["tput"]["error_kinds"]) for r in runs if r["tput"]["errors"] or r["tput"]["non2xx"]]
    if errs:
        add("")
        add("Client-side errors: " + "; ".join(f"{r['tag']} r{r['round']} setup {r['setup']}: {k} non2xx={r['tput']['non2xx']}" for r, k in errs))
    add("")
    add("How to read this: bench/README.md.")
    return "\n".join(lines) + "\n", ratios


def rss_after(run):
    return run.get("rss_after_lat_kib") or run.get("rss_after_tput_kib")


# ---------------------------------------------------------------- main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run for development (about 1-2 minutes)")
    p.add_argument("--rounds", type=int, help="interleaved rounds of setups 1-4 (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per throughput run (default 10, quick 3)")
    p.add_argument("--latency-duration", type=float, help="seconds per fixed-rate run (default 10, quick 3)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per proxy start (default 1, quick 0.5)")
    p.add_argument("--rate", type=int, default=1000, help="fixed request rate for the latency runs (default 1000)")
    p.add_argument("--connections", type=int, default=16, help="load generator connections (default 16)")
    p.add_argument("--sweep-rounds", type=int, help="rounds of the body-size sweep (default 2, quick 1)")
    p.add_argument("--sweep-duration", type=float, help="seconds per sweep run (default 5, quick 2)")
    p.add_argument("--sweep-rate", type=int, default=200, help="fixed rate for sweep latency runs (default 200; 0: none)")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--proxy-concurrency", type=int, default=1)
    p.add_argument("--backend-concurrency", type=int, default=1)
    p.add_argument("--drain-timeout", type=float, default=10.0)
    p.add_argument("--max-minutes", type=float, help="stop starting new runs after this (default 9, quick 3)")
    p.add_argument("--output", help="markdown file (default bench/RESULTS.md, quick: bench/out/RESULTS-quick.md)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory with Envoy logs")
    args = p.parse_args()
    quick = args.quick
    defaults = {"rounds": (3, 1), "duration": (10, 3), "latency_duration": (10, 3), "warmup": (1, 0.5),
                "sweep_rounds": (2, 1), "sweep_duration": (5, 2), "max_minutes": (9, 3)}
    for name, (full, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    if args.output is None:
        args.output = str(OUT / "RESULTS-quick.md") if quick else str(BENCH / "RESULTS.md")
    return args


def main():
    args = parse_args()
    if not OHA.exists():
        sys.exit(f"load generator not found at {OHA}: run `make bench` (it installs oha) or set OHA=")
    wasm = REPO / "target/wasm32-wasip1/release/parallel_run.wasm"
    if not wasm.exists():
        sys.exit(f"{wasm} missing: run `make bench` (it builds the filter)")
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("proxy-*.log"):
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="parallel-run-bench-"))
    deadline = STARTED + args.max_minutes * 60
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("BENCH_COMMAND") or " ".join([sys.executable] + sys.argv),
        "machine": machine(),
        "wasm": str(wasm.relative_to(REPO)),
        "wasm_bytes": wasm.stat().st_size,
        "rounds_done": 0,
    }
    body_files = {}
    for name, size in SIZES.items():
        body_files[name] = tmp / f"request-{name}.json"
        body_files[name].write_bytes(json_body(size, "req"))

    backend = BackendEnvoy(tmp, args.backend_concurrency)
    runs = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        backend.start()
        log(f"backend Envoy up (pid {backend.proc.pid}); proxy --concurrency {args.proxy_concurrency}")
        cpu_b = proc_cpu_s(backend.proc.pid)
        check = oha(backend.url("legacy", MAIN_SIZE), body_files[MAIN_SIZE], args.duration, args.connections)
        check["backend_cpu_s"] = proc_cpu_s(backend.proc.pid) - cpu_b
        meta["backend_check"] = check
        log(f"backend alone: {check['rps']:,.0f} req/s, p99 {check['p99_ms']:.2f} ms")

        per_run = args.warmup + args.duration + args.latency_duration + 4
        for rnd in range(1, args.rounds + 1):
            if time.monotonic() + 4 * per_run > deadline and rnd > 1:
                meta["truncated"] = True
                log("time budget reached: no more main rounds")
                break
            for setup in SETUPS:
                run = measure(setup, MAIN_SIZE, tmp, backend, args, body_files, args.rate, "main")
                run["round"] = rnd
                runs.append(run)
                lat = run["lat"]
                extra = ""
                if setup == 4:
                    c, chk = run["counters"], counter_check(run)
                    extra = (f" | shadowed {c['shadowed']} settled {settled(c)} skipped {chk['skipped']}"
                             f" matched {c['matched']} complete={chk['complete']}")
                log(f"round {rnd} setup {setup} {SETUPS[setup][0]:9}: {run['tput']['rps']:8,.0f} req/s"
                    f" | @{args.rate}/s p50 {lat['p50_ms']:.2f} p99 {lat['p99_ms']:.2f} ms"
                    f" | RSS {rss_after(run) / 1024:.1f} MiB{extra}")
            meta["rounds_done"] = rnd

        if not args.no_sweep:
            per_sweep = args.warmup + args.sweep_duration * (2 if args.sweep_rate else 1) + 4
            for rnd in range(1, args.sweep_rounds + 1):
                if time.monotonic() + 6 * per_sweep > deadline and rnd > 1:
                    meta["sweep_truncated"] = True
                    log("time budget reached: no more sweep rounds")
                    break
                for size in SWEEP_SIZES:
                    for setup in (2, 4):
                        sweep_args = argparse.Namespace(**{**vars(args), "duration": args.sweep_duration,
                                                           "latency_duration": args.sweep_duration})
                        run = measure(setup, size, tmp, backend, sweep_args, body_files, args.sweep_rate, "sweep")
                        run["round"] = rnd
                        runs.append(run)
                        extra = ""
                        if setup == 4:
                            c, chk = run["counters"], counter_check(run)
                            extra = f" | shadowed {c['shadowed']} settled {settled(c)} skipped {chk['skipped']} complete={chk['complete']}"
                        log(f"sweep {rnd} {size:>4} setup {setup}: {run['tput']['rps']:8,.0f} req/s"
                            f" p99 {run['tput']['p99_ms']:.1f} ms | RSS {rss_after(run) / 1024:.1f} MiB{extra}")
    except KeyboardInterrupt as err:
        log(f"interrupted ({err}); reporting what was measured")
        meta["truncated"] = True
    finally:
        backend.stop()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    if not runs or "backend_check" not in meta:
        sys.exit("no measurements")
    elapsed = time.monotonic() - STARTED
    text, ratios = report(runs, meta, args, elapsed)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    (OUT / ("results-quick.json" if args.quick else "results.json")).write_text(
        json.dumps({"meta": meta, "args": vars(args), "runs": runs}, indent=1))
    print()
    print(text)
    log(f"wrote {os.path.relpath(args.output, REPO)} in {elapsed / 60:.1f} min")
    incomplete = [r for r in runs if r["setup"] == 4 and not counter_check(r)["complete"]]
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
