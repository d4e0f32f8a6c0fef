#!/usr/bin/env python3
"""Where parallel-run's fixed memory comes from: Envoy's resident memory with
no filter, with a do-nothing wasm filter, and with parallel-run (modes legacy
and shadow), at proxy --concurrency 1 and 2.

    .venv/bin/python -m bench.memory            # about 4 minutes -> bench/MEMORY.md
    .venv/bin/python -m bench.memory --rounds 1 --output /tmp/m.md

Run from the repository root. Needs what `make bench` sets up (the release
filter, oha in .tools/bin, the venv with Envoy). The do-nothing module
(bench/empty-filter, proxy-wasm 0.2.5, a root context that accepts any
configuration and an HTTP context that lets everything through) is built
here into target/empty-filter/ (bench/setups.py).

Every measurement starts a fresh proxy Envoy (the testbed, the shipped
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
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import setups
from bench.setups import SETUPS as BENCH_SETUPS
from bench.setups import log, memory_sample as sample
from testbed import load
from testbed.table import med

BENCH = setups.BENCH
SIZE = "2k"

SETUPS = {
    "envoy": "Envoy, no wasm filter",
    "empty": "Envoy + do-nothing wasm module",
    "pr-legacy": "parallel-run, mode legacy",
    "pr-shadow": "parallel-run, mode shadow",
    "pr-legacy-2001": "parallel-run, mode legacy, 2,001 operations",
}


def measure(setup, concurrency, tmp, backend, args, body_file, wasm, wrapper):
    """One fresh proxy: idle sample, closed-loop load, sample, settle, sample.
    `wasm`: {"filter": parallel-run's module, "empty": the empty one};
    `wrapper`: the command prefix the proxy starts under (`--processors`)."""
    kind = BENCH_SETUPS[setup].kind
    envoy = BENCH_SETUPS[setup].start(tmp, backend, concurrency, wasm.get(kind), wrapper=wrapper)
    started = time.monotonic()
    try:
        published_s = BENCH_SETUPS[setup].published(envoy)
        time.sleep(args.settle)
        run = {"setup": setup, "concurrency": concurrency, "published_s": published_s, "idle": sample(envoy)}
        url = envoy.url(f"/bench/{SIZE}")
        result = load.oha(url, body_file, args.duration, args.connections)
        run["load"] = {"rps": result["rps"], "ok": result["ok"], "errors": result["errors"] + result["non2xx"]}
        run["after_load"] = sample(envoy)
        time.sleep(args.settle)
        run["after_settle"] = sample(envoy)
        if args.hold:
            # tcmalloc returns freed memory only once the demand of the last
            # minutes no longer needs it (envoy/envoy.yaml,
            # memory_allocator_manager): what a long-running proxy keeps.
            time.sleep(max(0.0, started + args.hold - time.monotonic()))
            run["held"] = sample(envoy)
            run["held_s"] = round(time.monotonic() - started)
        run["log_problems"] = setups.log_problems(envoy)
        return run
    finally:
        envoy.stop()


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
        f" do-nothing module `{meta['empty_wasm']}` ({meta['empty_wasm_bytes']:,} bytes"
        + (", given with --empty-wasm)." if meta.get("empty_given") else ", source bench/empty-filter/)."))
    if meta.get("processors"):
        add(f"- Processors as the proxy sees them: {meta['processors']} (`--processors`, bench/processors.c:"
            " sysconf's count, from which V8 sizes the pool it compiles the module on).")
    add(f"- Per run: fresh proxy Envoy (envoy/envoy.yaml via the e2e harness), {args.settle} s settle, idle sample,"
        f" {args.duration} s closed loop ({args.connections} connections, POST /bench/{SIZE}, 2 KiB JSON both ways),"
        f" sample, {args.settle} s settle, sample"
        f"{f', idle until {args.hold:.0f} s after start, sample' if getattr(args, 'hold', 0) else ''}."
        f" {meta['rounds_done']} interleaved round(s); medians below.")
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
    held = [r for r in runs if "held" in r]
    if held:
        add(f"## After holding (idle, about {med([r['held_s'] for r in held]):.0f} s after start, medians, MiB)")
        add("")
        add("What a long-running proxy keeps: tcmalloc returns freed memory only once the demand of the last"
            " minutes no longer needs it (`memory_allocator_manager` in envoy/envoy.yaml).")
        add("")
        add("| setup | conc. | RSS | tcmalloc held | of which in use | of which free, kept | anon outside tcmalloc | RSS - empty module |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for conc in args.concurrency:
            empty = mk("empty", conc, "held", "rss_kib") if any("held" in r for r in runs_of("empty", conc)) else None
            for setup, desc in SETUPS.items():
                if not any("held" in r for r in runs_of(setup, conc)):
                    continue
                rss = mk(setup, conc, "held", "rss_kib")
                tc = mk(setup, conc, "held", "tcmalloc_physical_kib")
                used = mk(setup, conc, "held", "tcmalloc_allocated_kib")
                add(f"| {desc} | {conc} | {mib(rss)} | {mib(tc)} | {mib(used)} | {mib(tc - used)}"
                    f" | {mib(mk(setup, conc, 'held', 'anon_outside_tcmalloc_kib'))}"
                    f" | {'' if empty is None or setup in ('envoy', 'empty') else f'{(rss - empty) / 1024:+.1f}'} |")
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


NOTES = "<!-- notes: written by hand, kept when bench.memory rewrites the report above -->"


def kept_notes(output):
    """What follows the NOTES marker in the report being replaced (the
    analysis written by hand), marker included; empty if there is none."""
    try:
        old = Path(output).read_text()
    except OSError:
        return ""
    i = old.find(NOTES)
    return "" if i < 0 else "\n" + old[i:]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2], help="proxy --concurrency values (default 1 2)")
    p.add_argument("--duration", type=float, default=5, help="seconds of closed-loop load per run (default 5)")
    p.add_argument("--settle", type=float, default=2, help="seconds idle before each idle sample (default 2)")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--hold", type=float, default=0,
                   help="also sample each proxy this many seconds after its start, idle (default 0: not)")
    p.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS),
                   help="which setups to measure (default all)")
    p.add_argument("--max-minutes", type=float, default=8, help="stop starting rounds after this (default 8)")
    p.add_argument("--output", default=str(BENCH / "MEMORY.md"))
    p.add_argument("--wasm", default=str(setups.PR_WASM), help="parallel-run's module (default: the release build)")
    p.add_argument("--empty-wasm", help="the do-nothing module (default: bench/empty-filter's build); e.g. one with "
                   "functions added by bench/functions.py, to price their compilation")
    p.add_argument("--processors", type=int, metavar="N",
                   help="start each proxy believing the machine has N processors (bench/processors.c): V8 compiles "
                   "the module at load on a pool of N - 1 threads, at most 16; default: the machine's own")
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--from-json", help="only rewrite the report from an earlier run's bench/out/memory.json")
    return p.parse_args()


def main():
    args = parse_args()
    if args.from_json:
        return setups.rewrite_report(args.from_json, args.output,
                                     lambda data, saved: report(data["runs"], data["meta"], saved, data["meta"].get("elapsed_s", 0.0))
                                     + kept_notes(args.output))
    if not load.available("oha"):
        sys.exit(f"load generator not found at {load.OHA}: run `make bench` once (it installs oha)")
    pr_wasm = Path(args.wasm)
    if not pr_wasm.exists():
        sys.exit(f"{pr_wasm} missing: cargo build --release --target wasm32-wasip1 -p parallel-run")
    if args.empty_wasm:
        empty_src = Path(args.empty_wasm)
        if not empty_src.exists():
            sys.exit(f"{empty_src} missing")
    else:
        log("building the do-nothing wasm module (bench/empty-filter)")
        empty_src = setups.build_empty_filter()
    tmp = Path(tempfile.mkdtemp(prefix="parallel-run-memory-"))
    # Private copies: a rebuild of the filter during the run must not change what is measured.
    wasm = {"filter": tmp / "parallel_run.wasm", "empty": tmp / "empty_filter.wasm"}
    shutil.copy(pr_wasm, wasm["filter"])
    shutil.copy(empty_src, wasm["empty"])

    setups.OUT.mkdir(exist_ok=True)
    meta = setups.header("MEMORY_COMMAND", "bench.memory", pr_wasm=pr_wasm, empty_wasm=empty_src)
    meta["empty_given"] = bool(args.empty_wasm)
    meta["processors"] = args.processors
    wrapper = setups.processors_wrapper(args.processors) if args.processors else ()
    meta["rounds_done"] = 0
    body_file = tmp / f"request-{SIZE}.json"
    body_file.write_bytes(setups.json_body(setups.SIZES[SIZE], "req"))
    backend = setups.BackendEnvoy(tmp, 1)
    runs = []
    deadline = setups.STARTED + args.max_minutes * 60
    setups.stop_on_sigterm()
    try:
        backend.start()
        log(f"backend Envoy up (pid {backend.proc.pid})")
        for rnd in range(1, args.rounds + 1):
            if rnd > 1 and time.monotonic() > deadline:
                log("time budget reached")
                break
            for conc in args.concurrency:
                for setup in (s for s in SETUPS if s in args.setups):
                    r = measure(setup, conc, tmp, backend, args, body_file, wasm, wrapper)
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
        setups.remove_tmp(tmp, args.keep_tmp)
    if not runs:
        sys.exit("no measurements")
    meta["elapsed_s"] = time.monotonic() - setups.STARTED
    text = report(runs, meta, args, meta["elapsed_s"])
    Path(args.output).write_text(text + kept_notes(args.output))
    (setups.OUT / "memory.json").write_text(json.dumps({"meta": meta, "args": vars(args), "runs": runs}, indent=1))
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
