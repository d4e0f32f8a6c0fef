"""parallel-run benchmark: what the filter costs, in proxy CPU per request,
throughput, latency and memory, next to plain Envoy, Envoy's native mirror
an empty proxy-wasm module and a minimal shadowing one (the shadow
floor). Run it with `make bench` (see
bench/README.md); `make bench BENCH_ARGS=--quick` for a one-minute run.

Everything runs on 127.0.0.1:
  - one backend Envoy (bench/backend-envoy.yaml) with two listeners, legacy
    and candidate, answering every POST /bench/<size> with the same fixed
    JSON body (direct_response);
  - the proxy Envoy under test, started from envoy/envoy.yaml through the
    testbed, fresh for every measurement (one setup, one round);
  - wrk (closed loop) and oha (fixed rate; closed loop for the comparison of
    the two generators) as load generators.

Setups (bench/setups.py), interleaved in rounds: envoy, mirror, empty,
shadow-floor, pr-legacy, pr-shadow, pr-legacy-2001. Each run: warm-up, closed loop
(saturation), closed loop with the other generator, fixed rate; the proxy's
CPU time (/proc/PID/stat) over each, divided by the requests it served.
Then the body-size sweep (mirror and pr-shadow, 1 KiB to 512 KiB).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import setups
from bench.setups import MAIN_SIZE, OPERATION, SETUPS, SIZES, SKIPPED, SWEEP_SIZES, log, settled
from testbed import load
from testbed.process import MachineTime, cpu_seconds, load_average, rss_kib, syscalls
from testbed.table import fmt, markdown_table, med

OUT = setups.OUT
SWEEP_SETUPS = ("mirror", "pr-shadow")

# A proxy process using at least this share of its worker threads' cores in
# a closed loop is the bottleneck (what the run should measure). Measured on
# a quiet machine (bench/RESULTS.md of 2026-11-23, oha): the setups the proxy
# bound used 0.98-0.99 core with one worker, the baselines the load generator
# starved 0.87-0.89. Below it, something else kept the proxy waiting: the
# generator, the backend, or other work on the machine ("machine full": at
# least this share of all cores busy).
PROXY_BOUND = 0.95
MACHINE_FULL = 0.9

# The targets (bench/README.md "Targets"): (key, figure, target text, test on the measured value).
TARGETS = [
    ("cpu_legacy_empty", "pass-through: proxy CPU per request vs the empty-module floor", "≤ 1.05×", lambda v: v <= 1.05),
    ("tput_legacy_empty", "pass-through: throughput vs the empty-module floor", "≥ 0.95×", lambda v: v >= 0.95),
    ("cpu_shadow_mirror", "shadow + compare: proxy CPU per request vs native mirror", "≤ 1.2×", lambda v: v <= 1.2),
    ("tput_shadow_mirror", "shadow + compare: throughput vs native mirror", "≥ 0.9×", lambda v: v >= 0.9),
    ("p99_rate_shadow_mirror", "shadow p99 at a fixed rate vs native mirror", "≤ 1.1×", lambda v: v <= 1.1),
    ("p99_sat_shadow_mirror", "shadow p99 at saturation vs native mirror", "≤ 1.1×", lambda v: v <= 1.1),
    ("mem_filter_floor", "the filter's own resident memory above the floor (pass-through)", "≤ 4 MiB",
     lambda v: v <= 4.0),
    ("mem_2000_ops", "memory for 2,000 more operations", "≤ 2 MiB", lambda v: v <= 2.0),
    ("cpu_2001_1", "matching cost with 2,001 operations vs 1 (CPU per request)", "≤ 1.02×", lambda v: v <= 1.02),
    ("cpu_legacy_envoy", "stretch: pass-through vs plain Envoy, CPU per request", "≤ 1.05×", lambda v: v <= 1.05),
]


# ---------------------------------------------------------------- one run


def loaded(proxy_pid, backend_pid, run_load):
    """Run `run_load()` (one generator run) and add what the processes and the
    machine spent meanwhile: CPU seconds of proxy, backend, generator, other
    processes, interrupts, steal; and the proxy's CPU per request served."""
    proxy0, backend0, machine0 = cpu_seconds(proxy_pid), cpu_seconds(backend_pid), MachineTime()
    io0 = syscalls(proxy_pid)
    result = run_load()
    machine = MachineTime() - machine0
    io1 = syscalls(proxy_pid)
    result["proxy_cpu_s"] = cpu_seconds(proxy_pid) - proxy0
    result["backend_cpu_s"] = cpu_seconds(backend_pid) - backend0
    result["irq_cpu_s"], result["steal_cpu_s"] = machine.irq, machine.steal
    result["machine_cpu_s"] = machine.busy
    result["other_cpu_s"] = max(0.0, machine.processes - result["proxy_cpu_s"] - result["backend_cpu_s"]
                                - result["generator_cpu_s"])
    served = result["ok"]
    result["proxy_us_per_req"] = result["proxy_cpu_s"] / served * 1e6 if served else None
    result["generator_us_per_req"] = result["generator_cpu_s"] / served * 1e6 if served else None
    result["backend_us_per_req"] = result["backend_cpu_s"] / served * 1e6 if served else None
    # Read and write system calls of the proxy per request: how the client's
    # writes (headers and body in one segment or two) reach the proxy.
    if io0 and io1 and served:
        result["proxy_reads_per_req"] = (io1[0] - io0[0]) / served
        result["proxy_writes_per_req"] = (io1[1] - io0[1]) / served
    return result


def measure(setup, size, tmp, backend, args, body_files, wasm, tag, phases):
    """Start a fresh proxy for `setup`, warm it up, run `phases`, stop it.

    phases: the closed-loop generator ("wrk"/"oha") for saturation, an optional
    second closed-loop generator for the comparison, the fixed rate (oha) or
    None, and the seconds of each.
    """
    t0 = time.monotonic()
    envoy = setup.start(tmp, backend, args.proxy_concurrency, wasm.get(setup.kind))
    run = {"setup": setup.name, "size": size, "tag": tag, "start_s": time.monotonic() - t0}
    url = envoy.url(f"/bench/{size}")
    body = body_files[size]
    pid, bpid = envoy.proc.pid, backend.proc.pid
    try:
        # What a proxy that runs the configuration holds: every gauge set.
        run["published_s"] = setup.published(envoy)
        run["rss_idle_kib"] = rss_kib(pid)
        closed = phases["closed"]
        options = {"threads": args.wrk_threads} if closed == "wrk" else {}
        warm = load.closed_loop(closed, url, body, args.warmup, args.connections, **options)
        answered, unanswered = warm["ok"] + warm["non2xx"], warm["unanswered_max"]
        run["sat"] = loaded(pid, bpid, lambda: load.closed_loop(closed, url, body, phases["closed_s"],
                                                                 args.connections, **options))
        runs_done = [run["sat"]]
        if phases.get("other"):
            other = phases["other"]
            other_options = {"threads": args.wrk_threads} if other == "wrk" else {}
            run["sat_other"] = loaded(pid, bpid, lambda: load.closed_loop(other, url, body, phases["other_s"],
                                                                           args.connections, **other_options))
            runs_done.append(run["sat_other"])
        run["rss_after_sat_kib"] = rss_kib(pid)
        if phases.get("rate"):
            run["rate"] = loaded(pid, bpid, lambda: load.oha(url, body, phases["rate_s"], args.connections,
                                                              rate=phases["rate"]))
            runs_done.append(run["rate"])
        run["rss_after_kib"] = rss_kib(pid)
        for r in runs_done:
            answered += r["ok"] + r["non2xx"]
            unanswered += r["unanswered_max"]
        run["answered"], run["unanswered_max"] = answered, unanswered
        if setup.books:
            found, waited, drained = setups.drain(envoy, [OPERATION], args.drain_timeout)
            run["counters"], run["drain_s"], run["drained"] = found[OPERATION], waited, drained
        run["clusters"] = envoy.stats(filter=r"^cluster\.(legacy|candidate)\.upstream_rq_completed$")
        if setup.kind == "shadow-floor":
            run["floor"] = floor_counters(envoy, args.drain_timeout)
        run["log_problems"] = setups.log_problems(envoy)
        if run["log_problems"]:
            OUT.mkdir(exist_ok=True)
            shutil.copy(envoy.log_file, OUT / f"proxy-{tag}-{setup.name}-{size}.log")
    finally:
        envoy.stop()
    return run


def floor_counters(envoy, timeout):
    """The shadow floor's outcomes {matched, unmatched, failed}, once they
    stand still (two reads 0.2 s apart; at most `timeout` s)."""
    start, last = time.monotonic(), None
    while True:
        stats = envoy.stats(filter=r"^wasmcustom\.shadow_floor\.")
        now = {k: stats.get(f"wasmcustom.shadow_floor.{k}", 0) for k in ("matched", "unmatched", "failed")}
        if now == last or time.monotonic() - start > timeout:
            return now
        last = now
        time.sleep(0.2)


def books(run):
    """For a run with the filter: does every request and every shadow call add up?

    cut = requests the filter counted minus answers the generators got: the
    requests wrk cut in flight at the end of its runs (at most one per
    connection and run; oha cuts none). In shadow mode every answered request
    was shadowed and matched (the backends answer alike); a cut one may end
    abandoned (its client left before the serving answer). Every shadow call
    ends in exactly one outcome; nothing skipped, failed or unmatched.
    """
    c = run["counters"]
    shadow = SETUPS[run["setup"]].shadows
    client_errors = sum(run[k]["errors"] + run[k]["non2xx"] for k in ("sat", "sat_other", "rate") if k in run)
    cut = c["requests"] - run["answered"]
    balanced = c["shadowed"] == settled(c)
    counted = 0 <= cut <= run["unanswered_max"] and c["served_legacy"] == c["requests"]
    skipped = sum(c[k] for k in SKIPPED)
    if shadow:
        expected = (c["requests"] - cut <= c["shadowed"] <= c["requests"] and c["abandoned"] <= cut
                    and c["matched"] >= run["answered"] - (c["requests"] - c["shadowed"]))
    else:
        expected = c["shadowed"] == 0 and c["abandoned"] == 0
    complete = (balanced and run["drained"] and counted and expected and skipped == 0 and c["failed"] == 0
                and c["unmatched"] == 0 and client_errors == 0)
    return {"balanced": balanced, "counted": counted, "cut": cut, "skipped": skipped, "client_errors": client_errors,
            "complete": complete}


# ---------------------------------------------------------------- figures


def runs_of(runs, setup, size=MAIN_SIZE, tag="main"):
    return [r for r in runs if r["setup"] == setup and r["size"] == size and r["tag"] == tag]


def value(run, phase, key):
    return run.get(phase, {}).get(key)


def paired(runs, a, b, key, combine, tag="main", size=MAIN_SIZE):
    """Median over rounds of combine(key(run of a), key(run of b)), pairing runs of the same round."""
    out = []
    for x in runs_of(runs, a, size, tag):
        y = next((y for y in runs_of(runs, b, size, tag) if y["round"] == x["round"]), None)
        if y is None:
            continue
        kx, ky = key(x), key(y)
        if kx is not None and ky:
            out.append(combine(kx, ky))
    return med(out), out


def ratio(runs, a, b, key, **where):
    return paired(runs, a, b, key, lambda x, y: x / y, **where)


def difference(runs, a, b, key, **where):
    return paired(runs, a, b, key, lambda x, y: x - y, **where)


def sat(key):
    return lambda r: value(r, "sat", key)


def at_rate(key):
    return lambda r: value(r, "rate", key)


def rss_after_mib(run):
    return run["rss_after_kib"] / 1024 if run.get("rss_after_kib") else None


def figures(runs):
    """The target figures: {key: (median, per-round values)}."""
    return {
        "cpu_legacy_empty": ratio(runs, "pr-legacy", "empty", sat("proxy_us_per_req")),
        "tput_legacy_empty": ratio(runs, "pr-legacy", "empty", sat("rps")),
        "cpu_shadow_mirror": ratio(runs, "pr-shadow", "mirror", sat("proxy_us_per_req")),
        "tput_shadow_mirror": ratio(runs, "pr-shadow", "mirror", sat("rps")),
        "p99_rate_shadow_mirror": ratio(runs, "pr-shadow", "mirror", at_rate("p99_ms")),
        "p99_sat_shadow_mirror": ratio(runs, "pr-shadow", "mirror", sat("p99_ms")),
        "mem_filter_floor": difference(runs, "pr-legacy", "empty", rss_after_mib),
        "mem_2000_ops": difference(runs, "pr-legacy-2001", "pr-legacy", rss_after_mib),
        "cpu_2001_1": ratio(runs, "pr-legacy-2001", "pr-legacy", sat("proxy_us_per_req")),
        "cpu_legacy_envoy": ratio(runs, "pr-legacy", "envoy", sat("proxy_us_per_req")),
        # Not targets: how the shadow target splits (bench/README.md "The shadow floor").
        "cpu_floor_mirror": ratio(runs, "shadow-floor", "mirror", sat("proxy_us_per_req")),
        "cpu_shadow_floor": ratio(runs, "pr-shadow", "shadow-floor", sat("proxy_us_per_req")),
    }


def bound_by(run, phase, args, cores):
    """Who limited a closed-loop run: the proxy, or (when it was not saturated) the full machine or the generator."""
    r = run[phase]
    t = r["elapsed_s"]
    proxy = r["proxy_cpu_s"] / t
    if proxy >= PROXY_BOUND * args.proxy_concurrency:
        return "proxy"
    if r["machine_cpu_s"] / t >= MACHINE_FULL * cores:
        return (f"starved: machine full (generator {r['generator_cpu_s'] / t:.2f}, backend {r['backend_cpu_s'] / t:.2f},"
                f" others {r['other_cpu_s'] / t:.2f} core)")
    return f"not saturated: proxy {proxy:.2f} core with CPU to spare (generator {r['generator_cpu_s'] / t:.2f} core)"


# ---------------------------------------------------------------- report


def report(runs, meta, args):
    lines = []
    add = lines.append
    m = meta["machine"]
    cores = m["cores"]
    closed, other = args.generator, ("oha" if args.generator == "wrk" else "wrk")
    add("# parallel-run benchmark results")
    add("")
    add(f"- Date: {meta['date']}")
    add(f"- Command: `{meta['command']}` (mode: {'quick' if args.quick else 'full'}; took {meta['elapsed_s'] / 60:.1f} min)")
    add(f"- Machine: {m['cpu']}, {cores} cores, {m['memory']} RAM, {m['kernel']}")
    add(f"- Envoy {m['envoy']}; load generators {', '.join(m['generators'].values())};"
        f" filter {meta['wasm']} ({meta['wasm_bytes']:,} bytes); empty module {meta['empty_wasm']}"
        f" ({meta['empty_wasm_bytes']:,} bytes)"
        + (f"; shadow floor {meta['floor_wasm']} ({meta['floor_wasm_bytes']:,} bytes)" if "floor_wasm" in meta else ""))
    add(f"- Proxy Envoy `--concurrency {args.proxy_concurrency}`, backend Envoy `--concurrency {args.backend_concurrency}`;"
        f" load generator, proxy and backend share the {cores} cores.")
    busy = med([r["sat"]["other_cpu_s"] / r["sat"]["elapsed_s"] for r in runs])
    add(f"- Load on the machine from outside the benchmark: 1-minute load average {meta['load_before']:.1f} before,"
        f" {meta.get('load_after', 0):.1f} after; median CPU of other processes during the closed loops"
        f" {busy:.2f} core." + (" **A busy machine: absolute figures are depressed and noisy; the per-round ratios"
                                 " are the figures to read.**" if busy is not None and busy > 0.15 else ""))
    if args.note:
        add(f"- Note: {args.note}")
    add(f"- Load: POST /bench/{MAIN_SIZE}, a {SIZES[MAIN_SIZE]:,}-byte JSON body and reply, {args.connections}"
        f" connections, HTTP/1.1 keep-alive. Saturation: {closed} closed loop for {args.duration} s after a"
        f" {args.warmup} s warm-up."
        + (f" Fixed rate: oha `-q {args.rate} --latency-correction` for {args.rate_duration} s." if args.rate else "")
        + (f" Generator comparison: {other} closed loop for {args.other_duration} s." if args.other_duration else ""))
    measured = [name for name in SETUPS if runs_of(runs, name)]
    add(f"- {meta['rounds_done']} interleaved round(s) of {', '.join(measured)}; a fresh proxy per setup and round;"
        " medians of rounds, ratios are medians of the per-round ratios.")
    if meta.get("truncated"):
        add(f"- **Time budget reached: stopped after {meta['rounds_done']} of {args.rounds} rounds.**")
    add("")

    figs = figures(runs)
    add("## Targets (issue 15; ratios measured side by side in this run)")
    add("")
    rows = []
    for key, label, target, test in TARGETS:
        v, per = figs[key]
        mib = key.startswith("mem_")
        shown = fmt(v, 1, " MiB") if mib else fmt(v, 3, "×")
        verdict = "n/a" if v is None else ("met" if test(v) else "**not met**")
        if v is not None and len({test(x) for x in per}) > 1:
            verdict += " (rounds on both sides)"
        rows.append([label, target, shown, ", ".join(fmt(x, 1 if mib else 3) for x in per), verdict])
    rows.append(["RSS over a soak with pushes", "flat", "not measured here", "`make soak`, bench/SOAK.md", "—"])
    lines += markdown_table([("figure", "<"), ("target", "<"), ("measured", ">"), ("per round", "<"),
                             ("", "<")], rows)
    add("")
    main = [r for r in runs if r["tag"] == "main"]
    starved = sum(bound_by(r, "sat", args, cores) != "proxy" for r in main)
    if starved:
        add(f"**{starved} of {len(main)} closed loops were not bound by the proxy** (see \"Who used the CPU\"): their"
            " throughput is not the proxy's, and the throughput and saturation-p99 figures above say little. CPU per"
            " request is the figure to read; its per-round spread says how far to trust it.")
        add("")
    floor, own = figs["cpu_floor_mirror"], figs["cpu_shadow_floor"]
    if floor[0] is not None:
        add(f"**The shadow floor** (bench/shadow-floor/: the least a stock-SDK module does to shadow and compare):"
            f" proxy CPU per request {fmt(floor[0], 3, '×')} the native mirror (per round"
            f" {', '.join(fmt(x, 3) for x in floor[1])}), so a shadow + compare target of ≤ 1.2× the mirror is"
            f" {'within' if floor[0] <= 1.2 else '**out of**'} reach of any filter on Envoy's wasm runtime with this SDK"
            + (" (by the median; rounds on both sides of 1.2)." if len({x <= 1.2 for x in floor[1]}) > 1 else ".")
            + (f" parallel-run's shadow mode is {fmt(own[0], 3, '×')} the floor (per round"
               f" {', '.join(fmt(x, 3) for x in own[1])}): its own work above the floor." if own[0] is not None else ""))
        add("")
    add("CPU per request: the proxy process's user + system time (/proc/PID/stat, all threads) over the"
        f" {closed} closed loop, divided by the 2xx answers it served. Memory: VmRSS after the load, per-round"
        " difference. p99 at saturation: the closed loop's; at a fixed rate: oha's, coordinated-omission corrected.")
    add("")

    add("## Setups (median of rounds)")
    add("")
    add(f"Saturation = {closed} closed loop; rate = fixed {args.rate} req/s. µs/req = CPU time per request served.")
    add("")
    rows = []
    for name, setup in SETUPS.items():
        rs = runs_of(runs, name)
        if not rs:
            continue
        rows.append([name, setup.label,
                     fmt(med([sat("rps")(r) for r in rs])),
                     fmt(med([sat("proxy_us_per_req")(r) for r in rs]), 1),
                     fmt(med([sat("p99_ms")(r) for r in rs]), 2),
                     fmt(med([r["sat"]["proxy_cpu_s"] / r["sat"]["elapsed_s"] for r in rs]), 2),
                     fmt(med([sat("generator_us_per_req")(r) for r in rs]), 1),
                     fmt(med([at_rate("proxy_us_per_req")(r) for r in rs]), 1),
                     fmt(med([at_rate("p50_ms")(r) for r in rs]), 2),
                     fmt(med([at_rate("p99_ms")(r) for r in rs]), 2),
                     fmt(med([rss_after_mib(r) for r in rs]), 1),
                     fmt(med([r["rss_idle_kib"] / 1024 for r in rs if r.get("rss_idle_kib")]), 1)])
    lines += markdown_table([("setup", "<"), ("", "<"), ("req/s sat.", ">"), ("proxy µs/req sat.", ">"),
                             ("p99 sat. ms", ">"), ("proxy cores sat.", ">"), ("generator µs/req sat.", ">"),
                             ("proxy µs/req rate", ">"), ("p50 rate ms", ">"), ("p99 rate ms", ">"),
                             ("RSS MiB", ">"), ("RSS idle MiB", ">")], rows)
    add("")
    add("Per round, proxy µs/req at saturation: " + "; ".join(
        f"{name} " + ", ".join(fmt(sat("proxy_us_per_req")(r), 1) for r in runs_of(runs, name))
        for name in SETUPS if runs_of(runs, name)))
    add("")
    add("Per round, req/s at saturation: " + "; ".join(
        f"{name} " + ", ".join(fmt(sat("rps")(r)) for r in runs_of(runs, name)) for name in SETUPS if runs_of(runs, name)))
    unsustained = [(r["setup"], r["tag"], r["size"], r["round"], r["rate"]["rps"]) for r in runs if "rate" in r
                   and r["rate"]["rps"] < 0.95 * (r["rate"]["target_rate"] or 0)]
    if unsustained:
        add("")
        add("**Fixed rate not sustained** (achieved < 95% of the target; its latencies are queueing): "
            + ", ".join(f"{name} ({tag} {size}) round {rd}: {rps:,.0f} req/s" for name, tag, size, rd, rps in unsustained))
    add("")

    add("## Other ratios (median of the per-round ratios)")
    add("")
    rows = []
    for label, a, b, key, digits in (
        ("proxy CPU/req, empty module / plain Envoy (the runtime's floor)", "empty", "envoy", sat("proxy_us_per_req"), 3),
        ("proxy CPU/req, pass-through / plain Envoy", "pr-legacy", "envoy", sat("proxy_us_per_req"), 3),
        ("proxy CPU/req, native mirror / plain Envoy", "mirror", "envoy", sat("proxy_us_per_req"), 3),
        ("proxy CPU/req, shadow / plain Envoy", "pr-shadow", "envoy", sat("proxy_us_per_req"), 3),
        ("proxy CPU/req, shadow floor / native mirror", "shadow-floor", "mirror", sat("proxy_us_per_req"), 3),
        ("proxy CPU/req, parallel-run shadow / shadow floor", "pr-shadow", "shadow-floor", sat("proxy_us_per_req"), 3),
        ("proxy CPU/req at the fixed rate, shadow floor / mirror", "shadow-floor", "mirror", at_rate("proxy_us_per_req"),
         3),
        ("proxy CPU/req at the fixed rate, shadow / shadow floor", "pr-shadow", "shadow-floor",
         at_rate("proxy_us_per_req"), 3),
        ("proxy CPU/req at the fixed rate, pass-through / empty", "pr-legacy", "empty", at_rate("proxy_us_per_req"), 3),
        ("proxy CPU/req at the fixed rate, shadow / mirror", "pr-shadow", "mirror", at_rate("proxy_us_per_req"), 3),
        ("proxy CPU/req at the fixed rate, 2,001 ops / 1", "pr-legacy-2001", "pr-legacy", at_rate("proxy_us_per_req"), 3),
        ("throughput, pass-through / plain Envoy", "pr-legacy", "envoy", sat("rps"), 3),
        ("throughput, empty module / plain Envoy", "empty", "envoy", sat("rps"), 3),
        ("throughput, 2,001 ops / 1", "pr-legacy-2001", "pr-legacy", sat("rps"), 3),
        ("throughput, shadow floor / native mirror", "shadow-floor", "mirror", sat("rps"), 3),
        ("throughput, parallel-run shadow / shadow floor", "pr-shadow", "shadow-floor", sat("rps"), 3),
        ("p99 at the fixed rate, pass-through / empty", "pr-legacy", "empty", at_rate("p99_ms"), 2),
    ):
        v, per = ratio(runs, a, b, key)
        rows.append([label, fmt(v, digits), ", ".join(fmt(x, digits) for x in per)])
    for label, a, b in (("RSS, empty module − plain Envoy", "empty", "envoy"),
                        ("RSS, shadow − empty module", "pr-shadow", "empty"),
                        ("RSS, shadow − native mirror", "pr-shadow", "mirror")):
        v, per = difference(runs, a, b, rss_after_mib)
        rows.append([label, fmt(v, 1, " MiB"), ", ".join(fmt(x, 1) for x in per)])
    lines += markdown_table([("ratio", "<"), ("value", ">"), ("per round", "<")], rows)
    add("")

    add("## Who used the CPU in the closed loops (median cores)")
    add("")
    rows = []
    for name in SETUPS:
        rs = runs_of(runs, name)
        if not rs:
            continue

        def cores_of(key, rs=rs):
            return fmt(med([r["sat"][key] / r["sat"]["elapsed_s"] for r in rs]), 2)

        verdicts = [bound_by(r, "sat", args, cores) for r in rs]
        kinds = {v.split(":")[0] for v in verdicts}
        summary = "; ".join(f"{kind} ({sum(v.startswith(kind) for v in verdicts)} of {len(rs)})" for kind in sorted(kinds))
        rows.append([name, cores_of("proxy_cpu_s"), cores_of("generator_cpu_s"), cores_of("backend_cpu_s"),
                     cores_of("other_cpu_s"), cores_of("irq_cpu_s"), cores_of("steal_cpu_s"),
                     cores_of("machine_cpu_s"), summary])
    lines += markdown_table([("setup", "<"), ("proxy", ">"), (f"generator ({closed})", ">"), ("backend", ">"),
                             ("other processes", ">"), ("interrupts", ">"), ("steal", ">"),
                             (f"machine (of {cores})", ">"), ("bound by", "<")], rows)
    add("")
    add(f"\"proxy\": the proxy used at least {PROXY_BOUND:.0%} of a core per worker, so it was the bottleneck and"
        " the run measures it. \"starved\": the machine's cores were full and the proxy got less: the generator,"
        " the backend or other work took the CPU, and throughput is then not the proxy's. Other processes:"
        " CPU time of processes outside the benchmark (this machine is shared).")
    b = meta["backend_check"]
    best = max((med([sat("rps")(r) for r in runs_of(runs, s)]) or 0) for s in SETUPS)
    add("")
    add(f"Backend alone ({closed} straight at the backend Envoy, same body and connections): {fmt(b['rps'])} req/s,"
        f" {b['backend_cpu_s'] / b['elapsed_s']:.2f} core, {fmt(b['backend_us_per_req'], 1)} µs/req:"
        f" {b['rps'] / best if best else 0:.1f}× the best proxied throughput"
        f" ({'not the bottleneck' if best and b['rps'] > 1.5 * best else 'possibly a bottleneck: read with care'}).")
    add("")

    if any("sat_other" in r for r in runs):
        add(f"## The two load generators ({closed} vs {other}, closed loop, same connections)")
        add("")
        rows = []
        for name in SETUPS:
            rs = [r for r in runs_of(runs, name) if "sat_other" in r]
            if not rs:
                continue
            rows.append([name,
                         fmt(med([r["sat"]["rps"] for r in rs])), fmt(med([r["sat_other"]["rps"] for r in rs])),
                         fmt(med([r["sat"]["proxy_us_per_req"] for r in rs]), 1),
                         fmt(med([r["sat_other"]["proxy_us_per_req"] for r in rs]), 1),
                         fmt(med([r["sat"]["generator_us_per_req"] for r in rs]), 1),
                         fmt(med([r["sat_other"]["generator_us_per_req"] for r in rs]), 1),
                         fmt(med([r["sat_other"]["proxy_cpu_s"] / r["sat_other"]["elapsed_s"] for r in rs]), 2),
                         fmt(med([r["sat"].get("proxy_reads_per_req") for r in rs]), 2),
                         fmt(med([r["sat_other"].get("proxy_reads_per_req") for r in rs]), 2),
                         fmt(med([r["sat"].get("proxy_writes_per_req") for r in rs]), 2),
                         fmt(med([r["sat_other"].get("proxy_writes_per_req") for r in rs]), 2)])
        lines += markdown_table([("setup", "<"), (f"req/s {closed}", ">"), (f"req/s {other}", ">"),
                                 (f"proxy µs/req {closed}", ">"), (f"proxy µs/req {other}", ">"),
                                 (f"generator µs/req {closed}", ">"), (f"generator µs/req {other}", ">"),
                                 (f"proxy cores {other}", ">"), (f"proxy reads/req {closed}", ">"),
                                 (f"proxy reads/req {other}", ">"), (f"proxy writes/req {closed}", ">"),
                                 (f"proxy writes/req {other}", ">")], rows)
        add("")
        rows = []
        for label, a, b in (("pass-through / empty", "pr-legacy", "empty"), ("pass-through / plain", "pr-legacy", "envoy"),
                            ("shadow / mirror", "pr-shadow", "mirror"), ("shadow floor / mirror", "shadow-floor", "mirror"),
                            ("shadow / shadow floor", "pr-shadow", "shadow-floor")):
            t1, _ = ratio(runs, a, b, sat("rps"))
            t2, _ = ratio(runs, a, b, lambda r: value(r, "sat_other", "rps"))
            c1, _ = ratio(runs, a, b, sat("proxy_us_per_req"))
            c2, _ = ratio(runs, a, b, lambda r: value(r, "sat_other", "proxy_us_per_req"))
            predicted = predicted_ratio(runs, a, b, "sat_other", cores)
            predicted_closed = predicted_ratio(runs, a, b, "sat", cores)
            rows.append([label, fmt(t1, 3), fmt(predicted_closed, 3), fmt(t2, 3), fmt(predicted, 3), fmt(c1, 3),
                         fmt(c2, 3)])
        lines += markdown_table([("ratio", "<"), (f"throughput {closed}", ">"), (f"predicted {closed}", ">"),
                                 (f"throughput {other}", ">"), (f"predicted {other}", ">"), (f"proxy CPU/req {closed}", ">"),
                                 (f"proxy CPU/req {other}", ">")], rows)
        add("")
        add(f"\"predicted\": when the benchmark has the {cores} cores to itself and they are full, throughput is"
            " about the cores divided by the CPU one request costs the benchmark (proxy + generator + backend +"
            " interrupts), so the ratio of two setups is the inverse ratio of those sums: a generator that costs more"
            " per request pulls every throughput ratio towards 1. (On a machine busy with other work the prediction"
            " is off by as much as the others' share moved between the two runs.) The proxy's CPU per request hardly"
            " depends on the generator: it is the figure to compare across harnesses. bench/README.md explains the"
            " gap.")
        add("")

    sweep = [r for r in runs if r["tag"] == "sweep"]
    if sweep:
        add("## Body-size sweep: shadow vs native mirror (median of rounds)")
        add("")
        add(f"Request and response bodies of the same size; {closed} closed loop {args.sweep_duration} s, then oha at a"
            f" fixed {args.sweep_rate} req/s for {args.sweep_duration} s; fresh proxy per run; max_body_bytes"
            f" {setups.MAX_BODY_BYTES:,}.")
        add("")
        rows = []
        for size in SWEEP_SIZES:
            r2, r4 = runs_of(runs, "mirror", size, "sweep"), runs_of(runs, "pr-shadow", size, "sweep")
            if not r2 or not r4:
                continue
            where = {"tag": "sweep", "size": size}
            rows.append([f"{size} ({SIZES[size]:,} B)",
                         fmt(med([sat("rps")(r) for r in r2])), fmt(med([sat("rps")(r) for r in r4])),
                         fmt(ratio(runs, "pr-shadow", "mirror", sat("rps"), **where)[0], 3),
                         fmt(med([sat("proxy_us_per_req")(r) for r in r2]), 1),
                         fmt(med([sat("proxy_us_per_req")(r) for r in r4]), 1),
                         fmt(ratio(runs, "pr-shadow", "mirror", sat("proxy_us_per_req"), **where)[0], 3),
                         fmt(med([at_rate("p99_ms")(r) for r in r2]), 2),
                         fmt(med([at_rate("p99_ms")(r) for r in r4]), 2),
                         fmt(med([rss_after_mib(r) for r in r2]), 1), fmt(med([rss_after_mib(r) for r in r4]), 1),
                         "yes" if all(books(r)["complete"] for r in r4) else "**NO**"])
        lines += markdown_table([("size", "<"), ("req/s mirror", ">"), ("req/s shadow", ">"), ("shadow / mirror", ">"),
                                 ("µs/req mirror", ">"), ("µs/req shadow", ">"), ("CPU shadow / mirror", ">"),
                                 ("p99 rate mirror ms", ">"), ("p99 rate shadow ms", ">"), ("RSS mirror", ">"),
                                 ("RSS shadow", ">"), ("books", "<")], rows)
        add("")

    add("## The filter's books (every run with the filter)")
    add("")
    add(f"Counters `wasmcustom.parallel_run.operation.{OPERATION}.*` after the load, once the comparisons in flight"
        " drained. settled = matched + unmatched + failed + abandoned; answered = answers the generators got (warm-up"
        " included); cut = requests − answered: the requests wrk cut in flight at the end of its runs (at most one per"
        " connection and run). Complete: every request counted and served by legacy, every shadow call settled, in"
        " shadow mode every answered request shadowed and matched (the backends answer alike) and only cut ones"
        " abandoned; nothing skipped, failed or unmatched; no client error.")
    add("")
    rows = []
    all_complete = True
    for r in runs:
        if not SETUPS[r["setup"]].books:
            continue
        c, chk = r["counters"], books(r)
        all_complete &= chk["complete"]
        rows.append([f"{r['tag']} r{r['round']} {r['setup']}", r["size"], f"{r['answered']:,}",
                     f"{chk['cut']} of ≤ {r['unanswered_max']}",
                     f"{c['requests']:,}", f"{c['shadowed']:,}", f"{c['matched']:,}", f"{c['unmatched']:,}",
                     f"{c['failed']:,}", f"{c['abandoned']:,}", f"{chk['skipped']:,}",
                     "yes" if chk["balanced"] else "**NO**",
                     f"{r['drain_s']:.1f} s" + ("" if r["drained"] else " (timeout)"),
                     "yes" if chk["complete"] else "**NO**"])
    lines += markdown_table([("run", "<"), ("size", "<"), ("answered", ">"), ("cut", ">"), ("requests", ">"),
                             ("shadowed", ">"), ("matched", ">"), ("unmatched", ">"), ("failed", ">"),
                             ("abandoned", ">"), ("skipped", ">"), ("settled", "<"), ("drain", ">"),
                             ("complete", "<")], rows)
    add("")
    add("All runs complete: " + ("yes" if all_complete else "**NO** (see the rows marked NO)"))
    mirrored = [r for r in runs if r["setup"] == "mirror" and "clusters" in r]
    if mirrored:
        gaps = [r["clusters"].get("cluster.legacy.upstream_rq_completed", 0)
                - r["clusters"].get("cluster.candidate.upstream_rq_completed", 0) for r in mirrored]
        add("")
        add("Native mirror for comparison (it keeps no books): legacy minus candidate upstream requests per run: "
            + ", ".join(str(g) for g in gaps) + ".")

    floored = [r for r in runs if "floor" in r]
    if floored:
        add("")
        add("The shadow floor's own outcomes per run (`wasmcustom.shadow_floor.*`; it keeps no other books, and"
            " answered includes the warm-up): " + "; ".join(
                f"{r['tag']} r{r['round']}: answered {r['answered']:,}, matched {r['floor']['matched']:,},"
                f" unmatched {r['floor']['unmatched']:,}, failed {r['floor']['failed']:,}" for r in floored) + ".")

    problems = [(r, line) for r in runs for line in r["log_problems"]]
    add("")
    add("## Problems seen")
    add("")
    if problems:
        add(f"{len(problems)} warning/error line(s) in the proxy logs (copies in bench/out/):")
        add("")
        add("```")
        for r, line in problems[:20]:
            add(f"[{r['tag']} r{r['round']} {r['setup']} {r['size']}] {line[:300]}")
        add("```")
    else:
        add("No warning, error, critical or panic line in any proxy log (apart from Envoy's stock"
            " \"no configured limit ... downstream connections\" and \"caught ENVOY_SIGTERM\").")
    errs = [(r, k) for r in runs for k in ("sat", "sat_other", "rate") if k in r and (r[k]["errors"] or r[k]["non2xx"])]
    if errs:
        add("")
        add("Client-side errors: " + "; ".join(f"{r['tag']} r{r['round']} {r['setup']} {k}: {r[k]['error_kinds']}"
                                              f" non2xx={r[k]['non2xx']}" for r, k in errs[:20]))
    add("")
    add("How to read this: bench/README.md.")
    return "\n".join(lines) + "\n"


def predicted_ratio(runs, a, b, phase, cores):
    """Throughput ratio a/b predicted from whole-machine CPU per request, for runs whose machine was full."""
    def per_request(r):
        x = r.get(phase)
        if not x or not x["ok"]:
            return None
        return (x["proxy_cpu_s"] + x["generator_cpu_s"] + x["backend_cpu_s"] + x["irq_cpu_s"]) / x["ok"]

    v, _ = ratio(runs, b, a, per_request)
    return v


# ---------------------------------------------------------------- main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run for development (about a minute)")
    p.add_argument("--rounds", type=int, help="interleaved rounds of all setups (default 3, quick 1)")
    p.add_argument("--generator", choices=("wrk", "oha"), default="wrk", help="closed-loop load generator (default wrk)")
    p.add_argument("--duration", type=float, help="seconds per closed-loop run (default 10, quick 2)")
    p.add_argument("--other-duration", type=float,
                   help="seconds per closed-loop run with the other generator, for the comparison (default 5, quick 1; 0: none)")
    p.add_argument("--rate-duration", type=float, help="seconds per fixed-rate run (default 10, quick 2)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per proxy start (default 1)")
    p.add_argument("--rate", type=int, default=1000, help="the fixed request rate (default 1000 req/s; 0: none)")
    p.add_argument("--connections", type=int, default=16, help="load generator connections (default 16)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--sweep-rounds", type=int, help="rounds of the body-size sweep (default 2, quick 1)")
    p.add_argument("--sweep-duration", type=float, help="seconds per sweep run and phase (default 5, quick 2)")
    p.add_argument("--sweep-rate", type=int, default=200, help="fixed rate of the sweep (default 200 req/s; 0: none)")
    p.add_argument("--sweep-sizes", nargs="+", choices=SWEEP_SIZES, help=f"default {' '.join(SWEEP_SIZES)}, quick 64k")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--setups", nargs="+", choices=list(SETUPS),
                   help="measure only these (default: all but pr-candidate, which bench/instructions.py counts)")
    p.add_argument("--proxy-concurrency", type=int, default=1)
    p.add_argument("--backend-concurrency", type=int, default=1)
    p.add_argument("--drain-timeout", type=float, default=10.0)
    p.add_argument("--wasm", help="the parallel-run module to measure (default the release build)")
    p.add_argument("--max-minutes", type=float, help="stop starting new runs after this (default 15, quick 3)")
    p.add_argument("--note", help="a line for the report's header, e.g. what else the machine was doing")
    p.add_argument("--output", help="markdown file (default bench/RESULTS.md, quick: bench/out/RESULTS-quick.md)")
    p.add_argument("--from-json", help="only rewrite the report from an earlier run's results.json")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory with Envoy logs")
    args = p.parse_args()
    quick = args.quick
    defaults = {"rounds": (3, 1), "duration": (10, 2), "other_duration": (5, 1), "rate_duration": (10, 2),
                "warmup": (1, 1), "sweep_rounds": (2, 1), "sweep_duration": (5, 2), "max_minutes": (15, 3),
                "sweep_sizes": (list(SWEEP_SIZES), ["64k"])}
    for name, (full, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    if args.output is None:
        args.output = str(OUT / "RESULTS-quick.md") if quick else str(setups.BENCH / "RESULTS.md")
    return args


def kept_sections(old, text):
    """The sections of the previous report that this run does not write:
    the A/B runs and notes appended to bench/RESULTS.md by hand, from the
    first `## ` heading of `old` that `text` does not have. A new run
    replaces its own sections and keeps that history after them."""
    own = {line for line in text.splitlines() if line.startswith("## ")}
    lines = old.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("## ") and line.rstrip("\n") not in own:
            return "".join(lines[i:])
    return ""


def write_report(runs, meta, args):
    text = report(runs, meta, args)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    history = kept_sections(output.read_text(), text) if output.exists() else ""
    output.write_text(text + ("\n" + history if history else ""))
    print()
    print(text)
    incomplete = [r for r in runs if SETUPS[r["setup"]].books and not books(r)["complete"]]
    return 1 if incomplete else 0


def main():
    args = parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        saved = argparse.Namespace(**{**data["args"], "output": args.output})
        return write_report(data["runs"], data["meta"], saved)
    other = "oha" if args.generator == "wrk" else "wrk"
    needed = {args.generator} | ({"oha"} if args.rate or args.sweep_rate else set()) | ({other} if args.other_duration else set())
    for generator in sorted(needed):
        if not load.available(generator):
            sys.exit(f"load generator {generator} not found: run `make bench` (it installs oha and wrk)"
                     " or set OHA= / WRK=")
    source = Path(args.wasm).resolve() if args.wasm else setups.PR_WASM
    if not source.exists():
        sys.exit(f"{source} missing: run `make bench` (it builds the filter)")
    log("building the empty proxy-wasm module (bench/empty-filter)")
    empty_source = setups.build_empty_filter()
    log("building the shadow floor (bench/shadow-floor)")
    floor_source = setups.build_shadow_floor()
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("proxy-*.log"):
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="parallel-run-bench-"))
    # Private copies: a rebuild during the run must not change what is measured.
    wasm = {"filter": tmp / "parallel_run.wasm", "empty": tmp / "empty_filter.wasm",
            "shadow-floor": tmp / "shadow_floor.wasm"}
    shutil.copy(source, wasm["filter"])
    shutil.copy(empty_source, wasm["empty"])
    shutil.copy(floor_source, wasm["shadow-floor"])
    deadline = setups.STARTED + args.max_minutes * 60
    meta = setups.header("BENCH_COMMAND", "bench.run", ("oha", "wrk"), wasm=source, empty_wasm=empty_source,
                         floor_wasm=floor_source)
    meta.update(load_before=load_average(), rounds_done=0)
    body_files = setups.request_bodies(tmp)
    backend = setups.BackendEnvoy(tmp, args.backend_concurrency)
    chosen = [SETUPS[name] for name in (args.setups or setups.TIMED)]
    main_phases = {"closed": args.generator, "closed_s": args.duration, "rate": args.rate, "rate_s": args.rate_duration}
    if args.other_duration:
        main_phases.update(other=other, other_s=args.other_duration)
    sweep_phases = {"closed": args.generator, "closed_s": args.sweep_duration, "rate": args.sweep_rate,
                    "rate_s": args.sweep_duration}
    runs = []
    setups.stop_on_sigterm()

    def one(setup, size, tag, phases, rnd):
        run = measure(setup, size, tmp, backend, args, body_files, wasm, tag, phases)
        run["round"] = rnd
        runs.append(run)
        s = run["sat"]
        extra = ""
        if setup.books:
            c = run["counters"]
            extra = f" | requests {c['requests']} shadowed {c['shadowed']} settled {settled(c)} complete={books(run)['complete']}"
        elif "floor" in run:
            extra = " | " + " ".join(f"{k} {v}" for k, v in run["floor"].items())
        rate = (f" | @{phases['rate']}/s {run['rate']['proxy_us_per_req'] or 0:.1f} µs/req p99 {run['rate']['p99_ms']:.2f} ms"
                if "rate" in run else "")
        log(f"{tag} {rnd} {size:>4} {setup.name:14}: {s['rps']:8,.0f} req/s {s['proxy_us_per_req'] or 0:6.1f} µs/req"
            f" p99 {s['p99_ms']:.2f} ms (proxy {s['proxy_cpu_s'] / s['elapsed_s']:.2f} core, generator"
            f" {s['generator_cpu_s'] / s['elapsed_s']:.2f}){rate} | RSS {rss_after_mib(run):.1f} MiB{extra}")

    try:
        backend.start()
        log(f"backend Envoy up (pid {backend.proc.pid}); proxy --concurrency {args.proxy_concurrency}")
        url = backend.url("legacy", MAIN_SIZE)
        options = {"threads": args.wrk_threads} if args.generator == "wrk" else {}
        check = loaded(backend.proc.pid, backend.proc.pid,
                       lambda: load.closed_loop(args.generator, url, body_files[MAIN_SIZE], args.duration,
                                                args.connections, **options))
        meta["backend_check"] = check
        log(f"backend alone: {check['rps']:,.0f} req/s, {check['backend_us_per_req'] or 0:.1f} µs/req")

        per_run = args.warmup + args.duration + args.other_duration + args.rate_duration + 4
        for rnd in range(1, args.rounds + 1):
            if rnd > 1 and time.monotonic() + len(chosen) * per_run > deadline:
                meta["truncated"] = True
                log("time budget reached: no more main rounds")
                break
            for setup in chosen:
                one(setup, MAIN_SIZE, "main", main_phases, rnd)
            meta["rounds_done"] = rnd

        if not args.no_sweep:
            per_sweep = args.warmup + 2 * args.sweep_duration + 4
            sweep = [SETUPS[name] for name in SWEEP_SETUPS if SETUPS[name] in chosen]
            for rnd in range(1, args.sweep_rounds + 1):
                if rnd > 1 and time.monotonic() + len(args.sweep_sizes) * len(sweep) * per_sweep > deadline:
                    meta["sweep_truncated"] = True
                    log("time budget reached: no more sweep rounds")
                    break
                for size in args.sweep_sizes:
                    for setup in sweep:
                        one(setup, size, "sweep", sweep_phases, rnd)
    except KeyboardInterrupt as err:
        log(f"interrupted ({err}); reporting what was measured")
        meta["truncated"] = True
    finally:
        backend.stop()
        setups.remove_tmp(tmp, args.keep_tmp)

    if not runs or "backend_check" not in meta:
        sys.exit("no measurements")
    meta["elapsed_s"] = time.monotonic() - setups.STARTED
    meta["load_after"] = load_average()
    (OUT / ("results-quick.json" if args.quick else "results.json")).write_text(
        json.dumps({"meta": meta, "args": vars(args), "runs": runs}, indent=1))
    status = write_report(runs, meta, args)
    log(f"wrote {os.path.relpath(args.output, setups.REPO)} in {meta['elapsed_s'] / 60:.1f} min")
    return status


if __name__ == "__main__":
    sys.exit(main())
