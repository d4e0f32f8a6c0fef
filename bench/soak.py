#!/usr/bin/env python3
"""Soak: parallel-run in shadow mode under a steady load for minutes, with live
configuration pushes, watching Envoy's resident memory. Run it with
`make soak` (SOAK_SECONDS=300 by default; see bench/README.md).

    make soak                          # 5 minutes of load -> bench/SOAK.md
    make soak SOAK_SECONDS=60          # a short one (write it elsewhere: SOAK_ARGS=--output=/tmp/s.md)
    .venv/bin/python -m bench.soak --seconds 60 --output /tmp/s.md   # the same, from the repository root

Everything on 127.0.0.1:
  - a backend Envoy (bench/backend-envoy.yaml, direct_response) with two
    listeners, legacy and candidate, serving POST /soak/same (both answer the
    same 2 KiB JSON) and POST /soak/diff (the candidate's JSON differs in one
    value: every comparison there is unmatched);
  - the proxy Envoy (--concurrency 2) with parallel-run delivered by ECDS
    (envoy/envoy-ecds.yaml via the testbed), two operations `same` and
    `diff`, both mode shadow (--mode legacy: the same load passed through);
  - oha at a fixed rate (default 2000 req/s, --latency-correction), 2 KiB
    JSON request bodies, the path drawn per request (3 of 4 /soak/same).

Every --sample-every seconds: VmRSS and its parts, the filter's counters.
Every --push-every seconds: a new plugin configuration through ECDS
(testbed Envoy.push_config + wait_config_applied), alternating two revisions.
At the end (load stopped, in-flight comparisons drained): the RSS series, the
slope over the second half (linear fit, MiB/min), and per operation the check
shadowed == matched + unmatched + failed + abandoned. Beside the load, a probe
on a connection of its own sends a pass-through request every 20 ms and
keeps each one's latency, so that the report can tell the client latency in
the seconds around a push from the rest; and a watcher reads once a second
each process's CPU, the proxy's upstream connections and queues, and the
kernel's TCP counters, which the report shows around every stall the probe
saw (saturation, connection churn and dropped SYNs each look different
there). Exit status 1 when the
books do not balance, a push was refused, or the client saw errors.
"""

import argparse
import datetime
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import setups
from bench.setups import SKIPPED, log, memory_sample, settled
from testbed import load
from testbed.envoy import CTL_PATH, Envoy
from testbed.net import HOST
from testbed.process import children_cpu_seconds, cpu_seconds
from testbed.table import quantile

REPO = setups.REPO
BENCH = setups.BENCH
BODY_SIZE = 2048
OPS = ("same", "diff")


# ---------------------------------------------------------------- set-up


class SoakBackend(setups.BackendEnvoy):
    """The benchmark's backend plus /soak/same (identical on both sides) and /soak/diff (the candidate differs)."""

    def __init__(self, tmp, concurrency):
        super().__init__(tmp, concurrency)
        boot = json.loads(self.bootstrap_file.read_text())
        legacy_body = setups.json_body(BODY_SIZE, "resp")
        # Same size, one value changed: a body difference for the comparison.
        candidate_body = legacy_body.replace(b'"id":0,', b'"id":9,', 1)
        assert candidate_body != legacy_body and len(candidate_body) == len(legacy_body)
        files = {"same": self.tmp / "soak-same.json", "legacy-diff": self.tmp / "soak-diff-legacy.json",
                 "candidate-diff": self.tmp / "soak-diff-candidate.json"}
        files["same"].write_bytes(legacy_body)
        files["legacy-diff"].write_bytes(legacy_body)
        files["candidate-diff"].write_bytes(candidate_body)
        for listener in boot["static_resources"]["listeners"]:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
            template = routes[0]
            for op in OPS:
                route = json.loads(json.dumps(template))
                route["match"] = {"path": f"/soak/{op}"}
                key = "same" if op == "same" else f"{listener['name']}-diff"
                route["direct_response"]["body"] = {"filename": str(files[key])}
                routes.append(route)
        self.bootstrap_file.write_text(json.dumps(boot, indent=2))


def plugin_config(revision, timeout_ms, mode="shadow", per_second=None):
    bound = {"max_shadows_per_second": per_second} if per_second else {}
    return {
        **bound,
        "revision": revision,
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "defaults": {"mode": mode, "shadow_percent": 100, "shadow_timeout_ms": timeout_ms,
                     "max_body_bytes": 1 << 20, "min_samples": 100},
        # POST is not shadowed unless the operation says it is safe to.
        "operations": [{"id": op, "method": "POST", "path": f"/soak/{op}", "shadow_unsafe": True} for op in OPS],
    }


REVISIONS = (("soak-a", 3000), ("soak-b", 2500))


def start_oha(url_regex, body_file, seconds, rate, connections, out_file):
    """oha in the background at a fixed rate, the path drawn per request from `url_regex`."""
    cmd = load.oha_command(url_regex, body_file, seconds, connections, rate, extra=["--rand-regex-url"])
    return subprocess.Popen(cmd, stdout=open(out_file, "wb"), stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def fit_slope(points):
    """Least-squares slope of (x, y) points; None with fewer than 2."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else None


# ---------------------------------------------------------------- probe

# The probe's pace: 50 requests a second, 2.5% of the default load, on a
# connection of its own. Often enough to catch a stall of a few tens of
# milliseconds; rare enough not to be part of the load.
PROBE_EVERY_S = 0.02
# A push's effect on the workers (a new plugin's configuration, maybe a new
# VM) shows within this long after the push was sent.
PUSH_WINDOW_S = 2.0
# /bench/2k is no operation of the soak's configuration: the filter lets it
# through to legacy (pass-through), which the backend answers.
PROBE_PATH = "/bench/2k"


class Probe(threading.Thread):
    """Sends POST PROBE_PATH every PROBE_EVERY_S until stopped or `seconds`
    are up, and keeps (t, latency ms) per request, t from `t0`. A latency
    is measured from when the request was due, not from when it went out,
    so that a stall counts for the requests it held back (as oha's
    --latency-correction does). Bounded: at most seconds / PROBE_EVERY_S
    requests, each with a 10 s timeout."""

    def __init__(self, port, body, t0, seconds):
        super().__init__(daemon=True)
        self.port, self.body, self.t0, self.seconds = port, body, t0, seconds
        self.points, self.errors = [], 0
        self.stopped = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        headers = {"content-type": "application/json"}
        for n in range(int(self.seconds / PROBE_EVERY_S)):
            due = self.t0 + n * PROBE_EVERY_S
            wait = due - time.monotonic()
            if self.stopped.wait(max(0.0, wait)):
                break
            try:
                conn.request("POST", PROBE_PATH, body=self.body, headers=headers)
                reply = conn.getresponse()
                reply.read()
                if reply.status != 200:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                continue
            self.points.append((due - self.t0, (time.monotonic() - due) * 1000))
        conn.close()


def probe_summary(points, pushes, errors, window_s):
    """The probe's latencies near a push (within PUSH_WINDOW_S after one was
    sent) and elsewhere, and per sampling window."""
    near, away, windows = [], [], {}
    for t, ms in points:
        pushed = any(0 <= t - p["t"] < PUSH_WINDOW_S for p in pushes)
        (near if pushed else away).append(ms)
        windows.setdefault(int(t // window_s), []).append(ms)

    def spread(values):
        return {"n": len(values), "p50": quantile(values, 0.5) or 0.0, "p99": quantile(values, 0.99) or 0.0,
                "max": max(values, default=0.0)}

    # Stall episodes: a slow probe request was held from when it was due
    # until it was answered; overlapping holds are one episode.
    stalls = []
    for t, ms in points:
        if ms < STALL_MS:
            continue
        end = t + ms / 1000
        if stalls and t <= stalls[-1]["end"]:
            stalls[-1]["end"] = max(stalls[-1]["end"], end)
            stalls[-1]["max"] = max(stalls[-1]["max"], ms)
        else:
            stalls.append({"start": t, "end": end, "max": ms})
    return {
        "requests": len(points),
        "errors": errors,
        "stalls": stalls,
        "near_push": spread(near),
        "elsewhere": spread(away),
        "windows": [{"t": k * window_s, **spread(v)} for k, v in sorted(windows.items())],
    }


# ---------------------------------------------------------------- watch

# What the watcher reads once a second, to tell a client stall's cause:
# the proxy's upstream connections and queues per cluster (a stall waiting
# for a connection shows as pending requests and new connections), the
# kernel's TCP counters (a full accept queue drops SYNs, and the retry after
# 1 s, 3 s, 7 s is the classic multi-second stall), and each process's CPU
# (a starved proxy or backend).
WATCH_EVERY_S = 1.0
UPSTREAM_STATS = ("upstream_cx_total", "upstream_cx_active", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
                  "upstream_cx_destroy_local", "upstream_cx_destroy_remote", "upstream_cx_overflow",
                  "upstream_rq_active", "upstream_rq_pending_active", "upstream_rq_pending_overflow",
                  "upstream_rq_timeout", "upstream_rq_total")
TCP_STATS = (("TcpExt", "ListenOverflows"), ("TcpExt", "ListenDrops"), ("TcpExt", "TCPSynRetrans"),
             ("TcpExt", "TCPTimeouts"), ("TcpExt", "TCPAbortOnData"), ("Tcp", "RetransSegs"))


def tcp_counters():
    """The kernel's TCP counters named in TCP_STATS (/proc/net/netstat and
    /proc/net/snmp: pairs of lines, names then values, per group)."""
    found = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            rows = Path(path).read_text().splitlines()
        except OSError:
            continue
        for names, values in zip(rows[::2], rows[1::2]):
            group, names = names.split(":", 1)
            found.update({(group, n): int(v) for n, v in zip(names.split(), values.split(":", 1)[1].split())
                          if (group, n) in TCP_STATS})
    return {f"{g}.{n}": found.get((g, n), 0) for g, n in TCP_STATS}


def thread_cpu_seconds(pid, prefix):
    """user + system CPU seconds of the threads of `pid` whose name starts
    with `prefix` (Envoy names its workers wrk:worker_N); None if unreadable."""
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            if (task / "comm").read_text().startswith(prefix):
                total += cpu_seconds(f"{pid}/task/{task.name}") or 0.0
    except OSError:
        return None
    return total


def machine_ticks():
    """(busy, steal, total) clock ticks of all CPUs so far (/proc/stat's
    first line): steal is time the hypervisor gave this machine's CPUs to
    someone else, which no process here sees as its own."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return (total - idle - steal, steal, total)


class Watch(threading.Thread):
    """Every WATCH_EVERY_S until stopped: CPU seconds of the proxy, the
    backend and oha; the proxy's upstream stats for legacy and candidate (and
    how long the admin call took: the admin runs on Envoy's main thread);
    the kernel's TCP counters. Bounded: at most `seconds` / WATCH_EVERY_S
    points."""

    def __init__(self, envoy, pids, t0, seconds):
        super().__init__(daemon=True)
        self.envoy, self.pids, self.t0, self.seconds = envoy, pids, t0, seconds
        self.points = []
        self.stopped = threading.Event()

    def run(self):
        pattern = r"^cluster\.(legacy|candidate)\.(" + "|".join(UPSTREAM_STATS) + ")$"
        for n in range(int(self.seconds / WATCH_EVERY_S) + 1):
            if self.stopped.wait(max(0.0, self.t0 + n * WATCH_EVERY_S - time.monotonic())):
                break
            point = {"t": time.monotonic() - self.t0, "tcp": tcp_counters(),
                     "cpu": {name: cpu_seconds(pid) for name, pid in self.pids.items()},
                     "machine": machine_ticks()}
            point["cpu"]["proxy-worker"] = thread_cpu_seconds(self.pids["proxy"], "wrk:")
            started = time.monotonic()
            try:
                point["upstream"] = self.envoy.stats(filter=pattern)
            except (OSError, AssertionError):
                point["upstream"] = {}
            point["admin_ms"] = (time.monotonic() - started) * 1000
            self.points.append(point)


def watch_rows(points):
    """Per interval between two watch points: CPU share per process (%), the
    change of each counter and the level of each gauge."""
    rows = []
    for a, b in zip(points, points[1:]):
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        row = {"t": b["t"], "admin_ms": b["admin_ms"]}
        for name, cpu in b["cpu"].items():
            before = a["cpu"].get(name)
            row[f"cpu.{name}"] = 100 * (cpu - before) / dt if cpu is not None and before is not None else None
        if a.get("machine") and b.get("machine") and b["machine"][2] > a["machine"][2]:
            ticks = b["machine"][2] - a["machine"][2]
            row["machine.busy"] = 100 * (b["machine"][0] - a["machine"][0]) / ticks
            row["machine.steal"] = 100 * (b["machine"][1] - a["machine"][1]) / ticks
        for key, value in b["tcp"].items():
            row[key] = value - a["tcp"].get(key, 0)
        for key, value in b["upstream"].items():
            gauge = key.endswith(("_active",))
            row[key] = value if gauge else value - a["upstream"].get(key, 0)
        rows.append(row)
    return rows


# A probe window is a stall worth a look when its slowest request took this
# long: 20 times the probe's usual p99 on this machine (~5 ms).
STALL_MS = 100.0


# ---------------------------------------------------------------- report


def report(meta, args, samples, pushes, final, drain_s, drained, load, problems, elapsed, probe=None, watch=None):
    lines = []
    add = lines.append
    m = meta["machine"]
    add("# parallel-run soak: memory under steady shadow load with live reconfiguration")
    add("")
    add(f"- Date: {meta['date']}")
    add(f"- Command: `{meta['command']}` (took {elapsed / 60:.1f} min)")
    add(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['kernel']}; load generator, proxy and"
        " backend share the cores.")
    add(f"- Envoy {m['envoy']}; {m['oha']}; filter `{meta['wasm']}` ({meta['wasm_bytes']:,} bytes, built {meta['wasm_mtime']})")
    add(f"- Proxy: envoy/envoy-ecds.yaml via the testbed, `--concurrency {args.concurrency}`, parallel-run by ECDS;"
        f" operations `same` and `diff`, mode {getattr(args, 'mode', 'shadow')}, `shadow_unsafe: true`, shadow_percent 100"
        + (f", max_shadows_per_second {args.max_shadows_per_second}" if getattr(args, "max_shadows_per_second", None)
           else "") + ".")
    add("- Backend: one Envoy, direct_response; `/soak/same` identical on both sides, `/soak/diff` the candidate's"
        " JSON differs in one value (every comparison unmatched).")
    add(f"- Load: oha, fixed {args.rate} req/s with `--latency-correction` for {args.seconds} s, {args.connections}"
        f" connections, POST with a {BODY_SIZE:,}-byte JSON body, {BODY_SIZE:,}-byte JSON replies; path drawn per"
        f" request from `{args.url_regex_path}`.")
    add(f"- Memory sampled every {args.sample_every} s; a new plugin configuration pushed through ECDS every"
        f" {args.push_every} s, alternating revisions {', '.join(r for r, _ in REVISIONS)} (they differ in"
        f" `shadow_timeout_ms`), push via {meta['push_via']}.")
    add("")

    add("## Result")
    add("")
    loaded = [s for s in samples if s["phase"] == "load"]
    rss0 = samples[0]["rss_kib"]
    half = [s for s in loaded if s["t"] >= args.seconds / 2]
    slope = fit_slope([(s["t"] / 60, s["rss_kib"] / 1024) for s in half])
    slope_all = fit_slope([(s["t"] / 60, s["rss_kib"] / 1024) for s in loaded])
    slope_alloc = fit_slope([(s["t"] / 60, s["tcmalloc_allocated_kib"] / 1024) for s in half])
    books = {op: final[op]["shadowed"] == settled(final[op]) for op in OPS}
    requests = sum(final[op]["requests"] for op in OPS)
    answered = load.get("ok", 0) + load.get("non2xx", 0)
    ok_pushes = sum(1 for p in pushes if p["ok"])
    add(f"- RSS: {rss0 / 1024:.1f} MiB idle before the load, {loaded[0]['rss_kib'] / 1024:.1f} MiB at the first"
        f" sample under load, {loaded[-1]['rss_kib'] / 1024:.1f} MiB at the last, max"
        f" {max(s['rss_kib'] for s in samples) / 1024:.1f} MiB, {samples[-1]['rss_kib'] / 1024:.1f} MiB after the drain.")
    add(f"- **Slope over the second half** ({len(half)} samples, t >= {args.seconds / 2:.0f} s, linear least squares):"
        f" **{slope:+.3f} MiB/min** of RSS" if slope is not None else "- Slope: not enough samples")
    if slope_all is not None and slope_alloc is not None:
        add(f"  (whole load period: {slope_all:+.3f} MiB/min; tcmalloc bytes in use, second half:"
            f" {slope_alloc:+.3f} MiB/min).")
    steps = []
    for a, b in zip(loaded, loaded[1:]):
        delta = b["rss_kib"] - a["rss_kib"]
        if abs(delta) >= 512:
            why = [f"push {p['revision']}" for p in pushes if a["t"] < p["t"] <= b["t"]]
            if b["vms_created"] > a["vms_created"]:
                why.append(f"wasm VMs created {a['vms_created']} -> {b['vms_created']}")
            steps.append(f"t={a['t']:.0f}-{b['t']:.0f} s {delta / 1024:+.1f} MiB ({', '.join(why) or 'no push'})")
    add("- Steps of 0.5 MiB or more between two samples under load: " + ("; ".join(steps) if steps else "none") + ".")
    add(f"- Config pushes: {len(pushes)}, accepted and applied {ok_pushes};"
        f" ECDS counters at the end: {json.dumps(meta.get('ecds_end', {}))}.")
    add(f"- Load: {answered:,} answers ({load.get('rps', 0):,.0f} req/s 2xx), non-2xx {load.get('non2xx', 0)},"
        f" errors {load.get('errors', 0)}; latency p50 {load.get('p50_ms', 0):.2f} ms, p99 {load.get('p99_ms', 0):.2f} ms,"
        f" max {load.get('max_ms', 0):.1f} ms (coordinated-omission corrected).")
    add(f"- Filter requests counted {requests:,} = answers {answered:,}: {'yes' if requests == answered else '**NO**'}.")
    if probe:
        near, away = probe["near_push"], probe["elsewhere"]
        add(f"- **Client latency around pushes** (the probe: POST {PROBE_PATH}, pass-through, every"
            f" {PROBE_EVERY_S * 1000:.0f} ms on a connection of its own, latency from when each request was due):"
            f" within {PUSH_WINDOW_S:.0f} s after a push p50 {near['p50']:.2f} ms, p99 {near['p99']:.2f} ms, max"
            f" {near['max']:.1f} ms ({near['n']:,} requests); elsewhere p50 {away['p50']:.2f} ms, p99"
            f" {away['p99']:.2f} ms, max {away['max']:.1f} ms ({away['n']:,}); probe errors {probe['errors']}.")
    add(f"- Wasm VMs: {samples[-1]['vms_active']} live at the end, {samples[-1]['vms_created']} created in all"
        f" ({samples[0]['vms_created']} at start).")
    add("")
    add("## Accounting after the drain (per operation)")
    add("")
    add(f"Read once the comparisons in flight were settled and the counters stood still ({drain_s:.1f} s"
        f"{'' if drained else ', **timed out**'}).")
    add("")
    add("| operation | requests | shadowed | matched | unmatched | failed | abandoned | skipped | shadowed = matched + unmatched + failed + abandoned |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for op in OPS:
        c = final[op]
        skipped = sum(c[k] for k in SKIPPED)
        add(f"| {op} | {c['requests']:,} | {c['shadowed']:,} | {c['matched']:,} | {c['unmatched']:,} | {c['failed']:,}"
            f" | {c['abandoned']:,} | {skipped:,} | {'yes' if books[op] else '**NO**'} |")
    add("")
    add("Expected: `same` all matched, `diff` all unmatched (unmatched_body); nothing failed, abandoned or skipped.")
    d = final["diff"]
    add(f"`diff` unmatched by cause: status {d['unmatched_status']:,}, headers {d['unmatched_headers']:,},"
        f" body {d['unmatched_body']:,}.")
    add("")
    add("## RSS series")
    add("")
    add("| t (s) | phase | RSS MiB | vs first load sample | tcmalloc in use MiB | tcmalloc held MiB | anon outside tcmalloc MiB | req/s in interval | revision | VMs live/created |")
    add("|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
    first = loaded[0]["rss_kib"] if loaded else rss0
    prev = None
    for s in samples:
        rate = ""
        if prev is not None and s["t"] > prev["t"] and s["phase"] == "load":
            rate = f"{(s['requests'] - prev['requests']) / (s['t'] - prev['t']):,.0f}"
        add(f"| {s['t']:.0f} | {s['phase']} | {s['rss_kib'] / 1024:.1f} | {(s['rss_kib'] - first) / 1024:+.1f}"
            f" | {s['tcmalloc_allocated_kib'] / 1024:.1f} | {s['tcmalloc_physical_kib'] / 1024:.1f}"
            f" | {s['anon_outside_tcmalloc_kib'] / 1024:.1f} | {rate} | {s['revision']} | {s['vms_active']}/{s['vms_created']} |")
        prev = s
    add("")
    if probe:
        add("## Client latency per window (the probe)")
        add("")
        add("| t (s) | probe requests | p50 ms | p99 ms | max ms | push in window |")
        add("|---:|---:|---:|---:|---:|---|")
        for w in probe["windows"]:
            pushed = [p["revision"] for p in pushes if w["t"] <= p["t"] < w["t"] + args.sample_every]
            add(f"| {w['t']:.0f} | {w['n']:,} | {w['p50']:.2f} | {w['p99']:.2f} | {w['max']:.1f} |"
                f" {', '.join(pushed)} |")
        add("")
    if watch:
        add_stalls(add, watch_rows(watch), probe.get("stalls", []) if probe else [])
    add("## Config pushes")
    add("")
    add(", ".join(f"t={p['t']:.0f}s {p['revision']} {'ok' if p['ok'] else '**refused**'} ({p['took_s']:.2f} s)"
                  for p in pushes) or "none")
    add("")
    add("## Problems")
    add("")
    if problems:
        add("```")
        add("\n".join(line[:300] for line in problems[:30]))
        add("```")
    else:
        add("No warning, error, critical or panic line in the proxy log (apart from Envoy's stock"
            " \"no configured limit ... downstream connections\" and \"caught ENVOY_SIGTERM\").")
    if load.get("error_kinds"):
        add("")
        add(f"Client errors: {json.dumps(load['error_kinds'])}")
    add("")
    add("## Reading this")
    add("")
    add("- A leak shows as a steady climb: the slope over the second half (after warm-up, pools and caches have"
        " filled) is the figure; sampling noise here is a few hundred KiB, so anything well under 0.1 MiB/min over"
        " minutes is flat. tcmalloc *in use* is what Envoy and V8 have allocated right now; *held* adds what tcmalloc"
        " keeps for reuse; *anon outside tcmalloc* is V8's own page allocator (wasm linear memories, compiled code,"
        " the JS heap) plus thread stacks: a leak in the filter's wasm memory would grow that column.")
    add("- Each push makes Envoy build a new filter configuration: a new plugin (root context) in each existing wasm"
        " VM, since the VM configuration (code, vm_id) is unchanged; the old one is torn down when its last stream ends."
        " Comparisons in flight at that moment end as abandoned if the old root goes before their replies arrive;"
        " the accounting must still balance.")
    add("- A push may make Envoy create a wasm VM (`VMs created` moves, `live` does not: it is gone again). Its"
        " memory stays with V8 and tcmalloc for reuse: a one-off step is that; a step at every push would be a leak.")
    add("- bench/MEMORY.md explains the fixed part of the memory (the ~35 MiB above plain Envoy are there from the start).")
    return "\n".join(lines) + "\n", slope, books


def add_stalls(add, rows, stalls):
    """The whole run's connection and TCP figures, then, per stall the probe
    saw, what the watcher read from 3 s before it to 1 s after."""
    add("## Connections, queues and CPU (the watcher, once a second)")
    add("")
    total = lambda key: sum(r.get(key) or 0 for r in rows)  # noqa: E731
    peak = lambda key: max((r.get(key) or 0 for r in rows), default=0)  # noqa: E731
    for side in ("legacy", "candidate"):
        c = f"cluster.{side}."
        add(f"- `{side}`: {total(c + 'upstream_cx_total'):,} upstream connections opened, at most"
            f" {peak(c + 'upstream_cx_active'):,} open; destroyed local {total(c + 'upstream_cx_destroy_local'):,},"
            f" remote {total(c + 'upstream_cx_destroy_remote'):,}; connect failures"
            f" {total(c + 'upstream_cx_connect_fail'):,}; at most {peak(c + 'upstream_rq_pending_active'):,}"
            f" requests waiting for a connection, pending overflows {total(c + 'upstream_rq_pending_overflow'):,};"
            f" timeouts {total(c + 'upstream_rq_timeout'):,}.")
    add("- Kernel TCP (whole machine): " + ", ".join(f"{k.split('.')[1]} {total(k):,}" for k in
                                                   (f"{g}.{n}" for g, n in TCP_STATS)) + ".")
    cpus = sorted({k for r in rows for k in r if k.startswith("cpu.")})
    add("- CPU per process (100% is one core; `proxy-worker`: Envoy's worker threads together), median and max of"
        " the 1 s intervals: " + ", ".join(
        f"{k[4:]} {quantile([r[k] for r in rows if r.get(k) is not None], 0.5) or 0:.0f}%"
        f" / {max((r[k] for r in rows if r.get(k) is not None), default=0):.0f}%" for k in cpus) + ".")
    for k, what in (("machine.busy", "busy"), ("machine.steal", "stolen by the hypervisor")):
        values = [r[k] for r in rows if r.get(k) is not None]
        add(f"- Machine CPU {what} (% of all cores), median {quantile(values, 0.5) or 0:.0f}%, max"
            f" {max(values, default=0):.0f}%.")
    add(f"- Admin call (Envoy's main thread) median {quantile([r['admin_ms'] for r in rows], 0.5) or 0:.1f} ms,"
        f" max {max((r['admin_ms'] for r in rows), default=0):.0f} ms.")
    add("")
    if not stalls:
        add(f"No probe request took {STALL_MS:.0f} ms or more.")
        add("")
        return
    add(f"Probe stalls (a request held {STALL_MS:.0f} ms or more; overlapping holds are one stall):"
        f" {len(stalls)}, the longest {max(s['max'] for s in stalls) / 1000:.2f} s.")
    add("")
    cols = ["machine.busy", "machine.steal", "cpu.proxy", "cpu.proxy-worker", "cpu.backend", "cpu.oha"]
    for side in ("legacy", "candidate"):
        cols += [f"cluster.{side}.upstream_cx_total", f"cluster.{side}.upstream_rq_pending_active",
                 f"cluster.{side}.upstream_rq_active"]
    cols += ["TcpExt.ListenOverflows", "TcpExt.TCPSynRetrans", "Tcp.RetransSegs"]
    short = {"machine.busy": "machine busy %", "machine.steal": "steal %", "cpu.proxy-worker": "proxy worker %",
             "cpu.proxy": "proxy CPU %", "cpu.backend": "backend CPU %", "cpu.oha": "oha CPU %",
             "TcpExt.ListenOverflows": "listen overflows", "TcpExt.TCPSynRetrans": "SYN retrans",
             "Tcp.RetransSegs": "retrans segs"}
    for k in cols:
        if k.startswith("cluster."):
            side, stat = k.split(".")[1:3]
            short[k] = f"{side} {stat.replace('upstream_', '').replace('_active', '')}"
    for stall in stalls[:10]:
        add(f"### Stall at t={stall['start']:.1f}-{stall['end']:.1f} s (longest request {stall['max']:.0f} ms)")
        add("")
        add("| t (s) | admin ms | " + " | ".join(short[k] for k in cols) + " |")
        add("|---:|---:|" + "---:|" * len(cols))
        for r in rows:
            if stall["start"] - 3 <= r["t"] <= stall["end"] + 1:
                cells = []
                for k in cols:
                    v = r.get(k)
                    cells.append("" if v is None else f"{v:.0f}" if isinstance(v, float) else f"{v:,}")
                add(f"| {r['t']:.0f} | {r['admin_ms']:.0f} | " + " | ".join(cells) + " |")
        add("")
    add("Counters are the change over the second before `t`; `pending` and `rq` are the gauges at `t`"
        " (requests waiting for a connection, requests in flight).")
    add("")


# ---------------------------------------------------------------- main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 300),
                   help="seconds of load (default $SOAK_SECONDS or 300)")
    p.add_argument("--rate", type=int, default=2000, help="fixed request rate (default 2000)")
    # oha keeps one request in flight per connection: 16 connections at
    # 2,000 req/s hold the rate only while a request takes under 8 ms, and
    # past that its latency correction counts the backlog as latency (a
    # soak on 2026-12-03 read p99 2,058 ms while the probe, on its own
    # connection, read 12.8 ms). 64 leave room up to 32 ms.
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--sample-every", type=float, default=10)
    p.add_argument("--push-every", type=float, default=30)
    # Two workers: at 2,000 shadowed req/s one worker of the benchmark
    # machine is 92% busy (median of 1 s intervals), and a worker that
    # close to saturation queues its clients for seconds at a time (probe
    # stalls up to 11 s); two workers at about half each held the probe's
    # longest stall to 0.31 s (README, "Sizing the proxy's CPU").
    p.add_argument("--concurrency", type=int, default=2, help="proxy --concurrency (default 2)")
    p.add_argument("--url-regex-path", default="/soak/(same|same|same|diff)",
                   help="the paths oha draws from, a regex (default 3 of 4 /soak/same, 1 of 4 /soak/diff)")
    p.add_argument("--max-shadows-per-second", type=int,
                   help="the configuration's max_shadows_per_second (default: none, no bound)")
    p.add_argument("--mode", choices=("shadow", "legacy"), default="shadow",
                   help="the operations' mode (default shadow; legacy: the same load through the filter, no shadow)")
    p.add_argument("--drain-timeout", type=float, default=15)
    p.add_argument("--output", default=str(BENCH / "SOAK.md"))
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--from-json", help="only rewrite the report from a soak.json of an earlier run (bench/out/soak.json)")
    args = p.parse_args()
    return args


def main():
    args = parse_args()
    if args.from_json:
        return setups.rewrite_report(args.from_json, args.output, lambda data, saved: report(
            data["meta"], saved, data["samples"], data["pushes"], data["final"], data.get("drain_s", 0.0),
            data.get("drained", True), data["load"], data.get("problems", []), data.get("elapsed_s", 0.0),
            data.get("probe"), data.get("watch"))[0])
    if not load.available("oha"):
        sys.exit(f"load generator not found at {load.OHA}: run `make soak` (it installs oha) or set OHA=")
    if not setups.PR_WASM.exists():
        sys.exit(f"{setups.PR_WASM} missing: run `make soak` (it builds the filter)")
    tmp = Path(tempfile.mkdtemp(prefix="parallel-run-soak-"))
    wasm = tmp / "parallel_run.wasm"
    shutil.copy(setups.PR_WASM, wasm)  # a rebuild during the soak must not change what runs
    meta = setups.header("SOAK_COMMAND", "bench.soak", wasm=setups.PR_WASM)
    meta["wasm_mtime"] = datetime.datetime.fromtimestamp(setups.PR_WASM.stat().st_mtime, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")
    meta["push_via"] = (f"`{os.path.relpath(CTL_PATH, REPO)} apply`" if CTL_PATH.exists()
                        else "the testbed's Python fallback (atomic rename of the ECDS file)")
    body_file = tmp / "request.json"
    body_file.write_bytes(setups.json_body(BODY_SIZE, "req"))
    backend = SoakBackend(tmp, 1)
    envoy = None
    oha = None
    probe = None
    watch = None
    samples, pushes = [], []
    status = 1
    setups.stop_on_sigterm()
    try:
        backend.start()
        revision, timeout_ms = REVISIONS[0]
        envoy = Envoy(tmp, dict(backend.ports), config=plugin_config(revision, timeout_ms, args.mode, args.max_shadows_per_second), ecds=True, wasm_path=wasm,
                      concurrency=args.concurrency, log_level="warning")
        log(f"backend pid {backend.proc.pid}, proxy pid {envoy.proc.pid} (ECDS, revision {revision})")
        current = {"revision": revision}

        def take(t, phase):
            s = memory_sample(envoy)
            c = setups.counters(envoy, OPS)
            s.update(t=t, phase=phase, revision=current["revision"], requests=sum(c[op]["requests"] for op in OPS),
                     counters=c)
            samples.append(s)
            log(f"t={t:5.0f}s {phase:5} RSS {s['rss_kib'] / 1024:6.1f} MiB  tcmalloc in use"
                f" {s['tcmalloc_allocated_kib'] / 1024:5.1f} held {s['tcmalloc_physical_kib'] / 1024:5.1f}"
                f"  anon outside {s['anon_outside_tcmalloc_kib'] / 1024:5.1f}  requests {s['requests']:,}"
                f"  matched {sum(c[op]['matched'] for op in OPS):,} unmatched {sum(c[op]['unmatched'] for op in OPS):,}")
            return s

        take(0.0, "idle")
        oha_out = tmp / "oha.json"
        url = f"http://{HOST}:{envoy.port}{args.url_regex_path}"
        oha_cpu0 = children_cpu_seconds()
        oha = start_oha(url, body_file, args.seconds, args.rate, args.connections, oha_out)
        t0 = time.monotonic()
        probe = Probe(envoy.port, body_file.read_bytes(), t0, args.seconds)
        probe.start()
        watch = Watch(envoy, {"proxy": envoy.proc.pid, "backend": backend.proc.pid, "oha": oha.pid}, t0,
                      args.seconds + 5)
        watch.start()
        next_sample, next_push, n_push = args.sample_every, args.push_every, 0
        while oha.poll() is None:
            now = time.monotonic() - t0
            if now >= next_push and now < args.seconds - 1:
                n_push += 1
                revision, timeout_ms = REVISIONS[n_push % 2]
                before = envoy.ecds_counts()
                started = time.monotonic()
                res = envoy.push_config(plugin_config(revision, timeout_ms, args.mode, args.max_shadows_per_second))
                ok = res.returncode == 0
                if ok:
                    try:
                        envoy.wait_config_applied(before)
                        current["revision"] = revision
                    except AssertionError as err:
                        ok = False
                        log(f"push refused: {str(err)[:500]}")
                else:
                    log(f"push failed ({res.returncode}): {res.stderr[-500:]}")
                pushes.append({"t": now, "revision": revision, "ok": ok, "took_s": time.monotonic() - started})
                log(f"t={now:5.0f}s push {revision}: {'applied' if ok else 'REFUSED'}")
                next_push += args.push_every
            if now >= next_sample:
                take(now, "load")
                next_sample += args.sample_every
            time.sleep(0.1)
            if now > args.seconds + 90:
                raise RuntimeError("oha did not stop")
        _, err = oha.communicate()
        probe.stopped.set()
        probe.join(timeout=15)
        watch.stopped.set()
        watch.join(timeout=15)
        if oha.returncode != 0:
            raise RuntimeError(f"oha failed ({oha.returncode}): {err.decode(errors='replace')[-2000:]}")
        served = load.oha_summary(json.loads(oha_out.read_text()), args.seconds, children_cpu_seconds() - oha_cpu0,
                                  args.rate)
        final, drain_s, drained = setups.drain(envoy, OPS, args.drain_timeout)
        take(time.monotonic() - t0, "drain")
        meta["ecds_end"] = envoy.ecds_counts()
        problems = setups.log_problems(envoy)
        setups.OUT.mkdir(exist_ok=True)
        if problems:
            shutil.copy(envoy.log_file, setups.OUT / "soak-proxy.log")
        probed = probe_summary(probe.points, pushes, probe.errors, args.sample_every)
        text, slope, books = report(meta, args, samples, pushes, final, drain_s, drained, served, problems,
                                    time.monotonic() - setups.STARTED, probed, watch.points)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        (setups.OUT / "soak.json").write_text(json.dumps({"meta": meta, "args": vars(args), "samples": samples,
                                                         "pushes": pushes, "final": final, "load": served,
                                                         "drain_s": drain_s, "drained": drained, "problems": problems,
                                                         "probe": probed, "watch": watch.points,
                                                         "elapsed_s": time.monotonic() - setups.STARTED}, indent=1))
        print()
        print(text)
        log(f"wrote {os.path.relpath(args.output, REPO)}")
        answered = served["ok"] + served["non2xx"]
        good = (all(books.values()) and drained and all(p["ok"] for p in pushes) and served["errors"] == 0
                and probe.errors == 0
                and served["non2xx"] == 0 and sum(final[op]["requests"] for op in OPS) == answered)
        status = 0 if good else 1
    except KeyboardInterrupt as err:
        log(f"interrupted ({err})")
    finally:
        if probe:
            probe.stopped.set()
        if watch:
            watch.stopped.set()
        if oha and oha.poll() is None:
            oha.terminate()
            oha.wait()
        if envoy:
            envoy.stop()
        backend.stop()
        setups.remove_tmp(tmp, args.keep_tmp)
    return status


if __name__ == "__main__":
    sys.exit(main())
