"""A/B of two filter builds: what one change buys, measured in one run.

    .venv/bin/python -m bench.ab --a OLD.wasm --b NEW.wasm [--mode shadow] [--rounds 5] [--operations 2000]

(from the repository root). Interleaved rounds of: the baseline (Envoy's
native mirror for --mode shadow, the empty proxy-wasm module for --mode
legacy), the filter built as A, the filter built as B; each a fresh proxy
Envoy, the same closed-loop load as `make bench` (POST /bench/2k, 16
connections, wrk by default). Prints, per variant, the medians of req/s, of
the proxy's CPU per request (/proc/PID/stat over the run, divided by the
requests served) and of p99, the per-round ratios to the baseline, and B / A.
On a shared machine the ratios, and CPU per request above all, are the
figures of merit. With --operations N, A and B run N more operations
before the measured one (the pr-legacy-2001 configuration of `make bench`),
and the proxy's VmRSS after the load is compared too: what the extra
operations cost in memory. `--more NAME=PATH` (repeatable) adds more
builds to the same rounds, each reported beside A and B and against A: a
bisection of where a cost is, in one run.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from bench import setups
from bench.run import loaded
from bench.setups import MAIN_SIZE, SETUPS, Setup
from testbed import load
from testbed.process import rss_kib
from testbed.table import fmt, markdown_table, med


def ratios(xs, ys):
    return [x / y for x, y in zip(xs, ys) if x is not None and y]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="baseline .wasm")
    p.add_argument("--b", required=True, help="changed .wasm")
    p.add_argument("--more", action="append", default=[], metavar="NAME=PATH",
                   help="one more build in the same rounds, reported against A (repeatable)")
    p.add_argument("--mode", choices=("shadow", "legacy"), default="shadow")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--generator", choices=("wrk", "oha"), default="wrk")
    p.add_argument("--operations", type=int, default=0,
                   help="more operations before the measured one, for A and B (make bench's 2,001: 2000)")
    args = p.parse_args()
    if not load.available(args.generator):
        sys.exit(f"{args.generator} not found: run `make bench` once (it installs oha and wrk)")
    wasm = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    for more in args.more:
        name, sep, path = more.partition("=")
        if not sep or not name or name in wasm or name == "baseline":
            sys.exit(f"--more {more}: expected NAME=PATH with a name other than A, B and baseline")
        wasm[name] = Path(path).resolve()
    for name, path in wasm.items():
        if not path.exists():
            sys.exit(f"{name} {path}: no such file")
    filter_setup = SETUPS["pr-shadow" if args.mode == "shadow" else "pr-legacy"]
    if args.operations:
        filter_setup = Setup(f"{filter_setup.name}-{args.operations + 1}", filter_setup.label, "filter",
                             filter_setup.mode, args.operations)
    baseline = SETUPS["mirror" if args.mode == "shadow" else "empty"]
    baseline_wasm = setups.build_empty_filter() if baseline.kind == "empty" else None
    variants = ("baseline", *wasm)
    results = {v: [] for v in variants}
    options = {"threads": 1} if args.generator == "wrk" else {}
    with tempfile.TemporaryDirectory(prefix="parallel-run-ab-") as tmp:
        tmp = Path(tmp)
        body = tmp / "request.json"
        body.write_bytes(setups.json_body(setups.SIZES[MAIN_SIZE], "req"))
        backend = setups.BackendEnvoy(tmp, 1).start()
        try:
            for rnd in range(1, args.rounds + 1):
                for variant in variants:
                    if variant == "baseline":
                        proxy = baseline.start(tmp, backend, 1, baseline_wasm)
                    else:
                        proxy = filter_setup.start(tmp, backend, 1, wasm[variant])
                    try:
                        url = proxy.url(f"/bench/{MAIN_SIZE}")
                        load.closed_loop(args.generator, url, body, 1, args.connections, **options)
                        r = loaded(proxy.proc.pid, backend.proc.pid, lambda: load.closed_loop(
                            args.generator, url, body, args.duration, args.connections, **options))
                        r["rss_mib"] = (rss_kib(proxy.proc.pid) or 0) / 1024
                    finally:
                        proxy.stop()
                    results[variant].append(r)
                    print(f"round {rnd} {variant[:12]:12}: {r['rps']:9,.0f} req/s {r['proxy_us_per_req'] or 0:7.1f} µs/req"
                          f" p99 {r['p99_ms']:.2f} ms RSS {r['rss_mib']:.1f} MiB (proxy {r['proxy_cpu_s'] / r['elapsed_s']:.2f} core,"
                          f" generator {r['generator_cpu_s'] / r['elapsed_s']:.2f})", flush=True)
        finally:
            backend.stop()

    def series(variant, key):
        return [r[key] for r in results[variant]]

    rows = []
    for variant in variants:
        row = [variant if variant != "baseline" else f"baseline ({baseline.name})"]
        for key, digits in (("rps", 0), ("proxy_us_per_req", 1), ("p99_ms", 2), ("rss_mib", 1)):
            row.append(fmt(med(series(variant, key)), digits))
        for key in ("rps", "proxy_us_per_req"):
            row.append(fmt(med(ratios(series(variant, key), series("baseline", key))), 3))
        rows.append(row)
    print()
    print("\n".join(markdown_table([("variant", "<"), ("req/s", ">"), ("proxy µs/req", ">"), ("p99 ms", ">"), ("RSS MiB", ">"),
                                    (f"throughput / {baseline.name}", ">"), (f"CPU/req / {baseline.name}", ">")], rows)))
    print()
    for name in list(wasm)[1:]:
        for key, label in (("rps", "throughput"), ("proxy_us_per_req", "CPU per request")):
            per = ratios(series(name, key), series("A", key))
            print(f"{name} / A {label} per round: {', '.join(f'{x:.3f}' for x in per)}; median {fmt(med(per), 3)}")
        diff = [b["rss_mib"] - a["rss_mib"] for a, b in zip(results["A"], results[name])]
        print(f"{name} - A RSS per round: {', '.join(f'{x:+.1f}' for x in diff)} MiB; median {fmt(med(diff), 1)} MiB")


if __name__ == "__main__":
    main()
