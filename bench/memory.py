#!/usr/bin/env python3
"""Where parallel-run's fixed memory comes from: Envoy's resident memory with
no filter, with a do-nothing wasm filter, and with parallel-run (modes legacy
and shadow), at proxy --concurrency 1 and 2.

    .venv/bin/python bench/memory.py            # about 4 minutes -> bench/MEMORY.md
    .venv/bin/python bench/memory.py --rounds 1 --output /tmp/m.md

Needs what `make bench` sets up (the release filter, oha in .tools/bin, the
venv with Envoy). The do-nothing module (bench/empty-filter, proxy-wasm 0.2.5,
a root context that accepts any configuration and an HTTP context that lets
everything through) is built here into target/empty-filter/.

Every measurement starts a fresh proxy Envoy (the e2e harness, the shipped
envoy/envoy.yaml, the same bootstrap for every setup: only the wasm module and
its configuration differ), lets it settle, reads its memory idle, runs a
closed-loop load (oha, POST /bench/2k, 2 KiB JSON both ways), and reads it
again. Setups and concurrencies are interleaved in rounds.

Per sample: VmRSS (/proc/<pid>/status); its anonymous and file-backed parts
(/proc/<pid>/smaps_rollup); what tcmalloc holds (admin /memory,
total_physical_bytes: Envoy's C++ heap, where V8's own malloc'd objects live
too); anonymous memory outside tcmalloc (V8's page allocator: the JS/wasm
heap, compiled code, wasm linear memories; and thread stacks); and the number
of live wasm VMs (admin stat wasm.envoy.wasm.runtime.v8.active).
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run as bench  # bench/run.py: backend Envoy, oha, bodies, machine description
from harness import Envoy, http

REPO = bench.REPO
BENCH = bench.BENCH
PR_WASM = REPO / "target/wasm32-wasip1/release/parallel_run.wasm"
EMPTY_SRC = BENCH / "empty-filter"
EMPTY_TARGET = REPO / "target" / "empty-filter"
EMPTY_WASM = EMPTY_TARGET / "wasm32-wasip1/release/empty_filter.wasm"
SIZE = "2k"

SETUPS = {
    "envoy": "Envoy, no wasm filter",
    "empty": "Envoy + do-nothing wasm module",
    "pr-legacy": "parallel-run, mode legacy",
    "pr-shadow": "parallel-run, mode shadow",
}

log = bench.log


def build_empty_filter():
    cmd = ["cargo", "build", "--release", "--target", "wasm32-wasip1", "--manifest-path", str(EMPTY_SRC / "Cargo.toml")]
    env = {**os.environ, "CARGO_TARGET_DIR": str(EMPTY_TARGET)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"building the empty filter failed:\n{out.stderr[-3000:]}")
    return EMPTY_WASM


def smaps_rollup(pid):
    """Rss, Anonymous (KiB) from /proc/<pid>/smaps_rollup."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return values


def admin_memory(envoy):
    status, _, body = http("GET", envoy.admin_url("/memory"), timeout=5)
    return {k: int(v) for k, v in json.loads(body).items() if str(v).isdigit()} if status == 200 else {}


def sample(envoy):
    pid = envoy.proc.pid
    roll = smaps_rollup(pid)
    mem = admin_memory(envoy)
    stats = envoy.stats(filter=r"^wasm\.envoy\.wasm\.runtime\.v8\.(active|created)$")
    rss = bench.proc_rss_kib(pid)
    anon = roll.get("Anonymous", 0)
    tc = mem.get("total_physical_bytes", 0) // 1024
    return {
        "rss_kib": rss,
        "anon_kib": anon,
        "file_kib": roll.get("Rss", rss) - anon,
        "tcmalloc_physical_kib": tc,
        "tcmalloc_allocated_kib": mem.get("allocated", 0) // 1024,
        "anon_outside_tcmalloc_kib": anon - tc,
        "threads": int(next((line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                             if line.startswith("Threads:")), 0)),
        "vms_active": stats.get("wasm.envoy.wasm.runtime.v8.active", 0),
        "vms_created": stats.get("wasm.envoy.wasm.runtime.v8.created", 0),
    }


def start_proxy(setup, tmp, backend, concurrency, empty_wasm):
    clusters = dict(backend.ports)
    common = {"concurrency": concurrency, "log_level": "warning"}
    if setup == "envoy":
        return Envoy(tmp, clusters, with_filter=False, route_cluster="legacy", **common)
    if setup == "empty":
        # The empty module ignores its configuration; the route falls through to legacy.
        return Envoy(tmp, clusters, wasm_path=empty_wasm, config={"ignored": True}, **common)
    return Envoy(tmp, clusters, config=bench.plugin_config("legacy" if setup == "pr-legacy" else "shadow"), **common)


def measure(setup, concurrency, tmp, backend, args, body_file, empty_wasm):
    envoy = start_proxy(setup, tmp, backend, concurrency, empty_wasm)
    try:
        time.sleep(args.settle)
        run = {"setup": setup, "concurrency": concurrency, "idle": sample(envoy)}
        url = envoy.url(f"/bench/{SIZE}")
        load = bench.oha(url, body_file, args.duration, args.connections)
        run["load"] = {"rps": load["rps"], "ok": load["ok"], "errors": load["errors"] + load["non2xx"]}
        run["after_load"] = sample(envoy)
        time.sleep(args.settle)
        run["after_settle"] = sample(envoy)
        run["log_problems"] = bench.log_problems(envoy)
        return run
    finally:
        envoy.stop()


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def report(runs, meta, args, elapsed):
    lines = []
    add = lines.append
    m = meta["machine"]

    def runs_of(setup, conc):
        return [r for r in runs if r["setup"] == setup and r["concurrency"] == conc]

    def mk(setup, conc, phase, key):
        return med([r[phase][key] for r in runs_of(setup, conc)])

    add("# Where parallel-run's fixed memory comes from")
    add("")
    add(f"- Date: {meta['date']}")
    add(f"- Command: `{meta['command']}` (took {elapsed / 60:.1f} min)")
    add(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, {m['kernel']}")
    add(f"- Envoy {m['envoy']}; {m['oha']}")
    add(f"- Modules: parallel-run `{meta['pr_wasm']}` ({meta['pr_wasm_bytes']:,} bytes);"
        f" do-nothing module `{meta['empty_wasm']}` ({meta['empty_wasm_bytes']:,} bytes, source bench/empty-filter/).")
    add(f"- Per run: fresh proxy Envoy (envoy/envoy.yaml via the e2e harness), {args.settle} s settle, idle sample,"
        f" {args.duration} s closed loop ({args.connections} connections, POST /bench/{SIZE}, 2 KiB JSON both ways),"
        f" sample, {args.settle} s settle, sample. {meta['rounds_done']} interleaved round(s); medians below.")
    add("")
    add("## Resident memory (VmRSS, MiB)")
    add("")
    add("| setup | conc. | VMs | RSS idle | RSS after load | after load - Envoy | after load - empty module | req/s |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for conc in args.concurrency:
        base = mk("envoy", conc, "after_load", "rss_kib")
        empty = mk("empty", conc, "after_load", "rss_kib")
        for setup, desc in SETUPS.items():
            if not runs_of(setup, conc):
                continue
            after = mk(setup, conc, "after_load", "rss_kib")
            add(f"| {desc} | {conc} | {mk(setup, conc, 'idle', 'vms_active'):.0f}"
                f" | {mib(mk(setup, conc, 'idle', 'rss_kib'))} | {mib(after)}"
                f" | {'' if base is None or setup == 'envoy' else f'{(after - base) / 1024:+.1f}'}"
                f" | {'' if empty is None or setup in ('envoy', 'empty') else f'{(after - empty) / 1024:+.1f}'}"
                f" | {med([r['load']['rps'] for r in runs_of(setup, conc)]):,.0f} |")
    add("")
    add("VMs: live V8 VMs after start (admin gauge `wasm.envoy.wasm.runtime.v8.active`): the base VM that"
        " loads and compiles the module, plus a clone for the main thread and one per worker thread; the clones"
        " share the base VM's compiled code (proxy-wasm-cpp-host, `Cloneable::CompiledBytecode`).")
    add("")
    add("## Breakdown after load (MiB)")
    add("")
    add("| setup | conc. | RSS | file-backed | anonymous | tcmalloc held | of which in use | of which free, kept | anonymous outside tcmalloc | threads |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for conc in args.concurrency:
        for setup, desc in SETUPS.items():
            if not runs_of(setup, conc):
                continue
            add(f"| {desc} | {conc} | {mib(mk(setup, conc, 'after_load', 'rss_kib'))}"
                f" | {mib(mk(setup, conc, 'after_load', 'file_kib'))}"
                f" | {mib(mk(setup, conc, 'after_load', 'anon_kib'))}"
                f" | {mib(mk(setup, conc, 'after_load', 'tcmalloc_physical_kib'))}"
                f" | {mib(mk(setup, conc, 'after_load', 'tcmalloc_allocated_kib'))}"
                f" | {mib(mk(setup, conc, 'after_load', 'tcmalloc_physical_kib') - mk(setup, conc, 'after_load', 'tcmalloc_allocated_kib'))}"
                f" | {mib(mk(setup, conc, 'after_load', 'anon_outside_tcmalloc_kib'))}"
                f" | {mk(setup, conc, 'after_load', 'threads'):.0f} |")
    add("")
    add("file-backed: pages of the Envoy binary (and libraries) read in, mostly code; tcmalloc held: Envoy's C++"
        " heap as the OS sees it (`total_physical_bytes` of admin /memory), V8's malloc'd memory included; in use:"
        " allocated right now (`allocated`); free, kept: freed memory tcmalloc has not returned to the OS;"
        " anonymous outside tcmalloc: V8's own pages (compiled wasm code, isolate heaps, linear memories) and"
        " thread stacks.")
    add("")
    add("## Where the difference is (after load, medians, MiB)")
    add("")
    add("| conc. | difference | RSS | file-backed | tcmalloc in use | tcmalloc free, kept | anon outside tcmalloc |")
    add("|---:|---|---:|---:|---:|---:|---:|")
    for conc in args.concurrency:
        for a, b in (("empty", "envoy"), ("pr-legacy", "empty"), ("pr-shadow", "empty")):
            if not runs_of(a, conc) or not runs_of(b, conc):
                continue

            def d(key, a=a, b=b, conc=conc):
                return (mk(a, conc, "after_load", key) - mk(b, conc, "after_load", key)) / 1024

            free = d("tcmalloc_physical_kib") - d("tcmalloc_allocated_kib")
            add(f"| {conc} | {SETUPS[a]} - {SETUPS[b]} | {d('rss_kib'):+.1f} | {d('file_kib'):+.1f}"
                f" | {d('tcmalloc_allocated_kib'):+.1f} | {free:+.1f} | {d('anon_outside_tcmalloc_kib'):+.1f} |")
    add("")
    add("## Shares")
    add("")
    shares = {}
    for conc in args.concurrency:
        base = mk("envoy", conc, "after_load", "rss_kib")
        empty = mk("empty", conc, "after_load", "rss_kib")
        for setup in ("pr-legacy", "pr-shadow"):
            pr = mk(setup, conc, "after_load", "rss_kib")
            if None in (base, empty, pr) or pr <= base:
                continue
            share = (empty - base) / (pr - base)
            shares[(setup, conc)] = share
            add(f"- `--concurrency {conc}`, {SETUPS[setup]}: {(pr - base) / 1024:+.1f} MiB over plain Envoy, of which"
                f" {(empty - base) / 1024:+.1f} MiB ({share:.0%}) is paid by the do-nothing module too (V8's"
                f" code paged in, its isolates and heaps), {(pr - empty) / 1024:+.1f} MiB ({1 - share:.0%}) is parallel-run's own"
                f" (mostly freed memory tcmalloc keeps after the module's compilation, see the table above).")
    for setup in SETUPS:
        if setup == "envoy":
            continue
        a, b = (mk(setup, c, "after_load", "rss_kib") for c in (1, 2)) if set(args.concurrency) >= {1, 2} else (None, None)
        e1, e2 = (mk("envoy", c, "after_load", "rss_kib") for c in (1, 2)) if set(args.concurrency) >= {1, 2} else (None, None)
        if None not in (a, b, e1, e2):
            add(f"- {SETUPS[setup]}: one more worker (`--concurrency` 1 -> 2) costs {(b - a) / 1024:+.1f} MiB,"
                f" plain Envoy {(e2 - e1) / 1024:+.1f} MiB: {((b - a) - (e2 - e1)) / 1024:+.1f} MiB per extra wasm VM.")
    problems = [(r, line) for r in runs for line in r["log_problems"]]
    errors = [r for r in runs if r["load"]["errors"]]
    add("")
    if problems:
        add("Log problems: " + "; ".join(f"{r['setup']} c{r['concurrency']}: {line[:200]}" for r, line in problems[:10]))
    else:
        add("No warning/error/critical line or panic in any proxy log (apart from Envoy's stock ones).")
    if errors:
        add("Client errors in: " + ", ".join(f"{r['setup']} c{r['concurrency']}" for r in errors))
    add("")
    add("How this is measured and what it means: bench/README.md (section \"Memory\").")
    return "\n".join(lines) + "\n"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2], help="proxy --concurrency values (default 1 2)")
    p.add_argument("--duration", type=float, default=5, help="seconds of closed-loop load per run (default 5)")
    p.add_argument("--settle", type=float, default=2, help="seconds idle before each idle sample (default 2)")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--max-minutes", type=float, default=8, help="stop starting rounds after this (default 8)")
    p.add_argument("--output", default=str(BENCH / "MEMORY.md"))
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--from-json", help="only rewrite the report from an earlier run's bench/out/memory.json")
    return p.parse_args()


def main():
    args = parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        saved = argparse.Namespace(**{**data["args"], "output": args.output})
        text = report(data["runs"], data["meta"], saved, data["meta"].get("elapsed_s", 0.0))
        Path(args.output).write_text(text)
        print(text)
        return 0
    if not bench.OHA.exists():
        sys.exit(f"load generator not found at {bench.OHA}: run `make bench` once (it installs oha)")
    if not PR_WASM.exists():
        sys.exit(f"{PR_WASM} missing: cargo build --release --target wasm32-wasip1 -p parallel-run")
    log("building the do-nothing wasm module (bench/empty-filter)")
    empty_src = build_empty_filter()
    tmp = Path(tempfile.mkdtemp(prefix="parallel-run-memory-"))
    # Private copies: a rebuild of the filter during the run must not change what is measured.
    pr_wasm, empty_wasm = tmp / "parallel_run.wasm", tmp / "empty_filter.wasm"
    shutil.copy(PR_WASM, pr_wasm)
    shutil.copy(empty_src, empty_wasm)
    import harness
    harness.WASM_PATH = pr_wasm

    bench.OUT.mkdir(exist_ok=True)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("MEMORY_COMMAND") or "python bench/memory.py " + " ".join(sys.argv[1:]),
        "machine": bench.machine(),
        "pr_wasm": str(PR_WASM.relative_to(REPO)),
        "pr_wasm_bytes": pr_wasm.stat().st_size,
        "empty_wasm": str(EMPTY_WASM.relative_to(REPO)),
        "empty_wasm_bytes": empty_wasm.stat().st_size,
        "rounds_done": 0,
    }
    body_file = tmp / f"request-{SIZE}.json"
    body_file.write_bytes(bench.json_body(bench.SIZES[SIZE], "req"))
    backend = bench.BackendEnvoy(tmp, 1)
    runs = []
    deadline = bench.STARTED + args.max_minutes * 60

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        backend.start()
        log(f"backend Envoy up (pid {backend.proc.pid})")
        for rnd in range(1, args.rounds + 1):
            if rnd > 1 and time.monotonic() > deadline:
                log("time budget reached")
                break
            for conc in args.concurrency:
                for setup in SETUPS:
                    r = measure(setup, conc, tmp, backend, args, body_file, empty_wasm)
                    r["round"] = rnd
                    runs.append(r)
                    log(f"round {rnd} c{conc} {setup:9}: VMs {r['idle']['vms_active']} RSS idle {mib(r['idle']['rss_kib'])}"
                        f" after load {mib(r['after_load']['rss_kib'])} MiB (tcmalloc {mib(r['after_load']['tcmalloc_physical_kib'])},"
                        f" anon outside {mib(r['after_load']['anon_outside_tcmalloc_kib'])}) {r['load']['rps']:,.0f} req/s")
            meta["rounds_done"] = rnd
    except KeyboardInterrupt as err:
        log(f"interrupted ({err})")
    finally:
        backend.stop()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if not runs:
        sys.exit("no measurements")
    meta["elapsed_s"] = time.monotonic() - bench.STARTED
    text = report(runs, meta, args, meta["elapsed_s"])
    Path(args.output).write_text(text)
    (bench.OUT / "memory.json").write_text(json.dumps({"meta": meta, "args": vars(args), "runs": runs}, indent=1))
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
