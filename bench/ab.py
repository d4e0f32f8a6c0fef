#!/usr/bin/env python3
"""A/B of two filter builds: what one change buys, measured in one run.

    .venv/bin/python bench/ab.py --a OLD.wasm --b NEW.wasm [--mode shadow] [--rounds 5]

Interleaved rounds of: native mirror (or plain Envoy for --mode legacy),
the filter built as A, the filter built as B; each a fresh proxy Envoy, the
same closed-loop oha load as `make bench` (POST /bench/2k, 16 connections).
Prints, per variant, the median req/s and the median of the per-round ratio
to the native baseline; ratios are the figure of merit on a shared machine.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402  (bench/run.py: backend, load generator, setups)
from harness import Envoy  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="baseline .wasm")
    p.add_argument("--b", required=True, help="changed .wasm")
    p.add_argument("--mode", choices=("shadow", "legacy"), default="shadow")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    args = p.parse_args()
    wasm = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    native = 2 if args.mode == "shadow" else 1
    results = {"native": [], "A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="parallel-run-ab-") as tmp:
        tmp = Path(tmp)
        body = tmp / "request.json"
        body.write_bytes(bench.json_body(bench.SIZES[bench.MAIN_SIZE], "req"))
        backend = bench.BackendEnvoy(tmp, 1).start()
        try:
            for rnd in range(1, args.rounds + 1):
                for variant in ("native", "A", "B"):
                    if variant == "native":
                        proxy = bench.start_proxy(native, tmp, backend, 1)
                    else:
                        proxy = Envoy(tmp, dict(backend.ports), config=bench.plugin_config(args.mode),
                                      wasm_path=wasm[variant], concurrency=1, log_level="warning")
                    try:
                        url = proxy.url(f"/bench/{bench.MAIN_SIZE}")
                        bench.oha(url, body, 1, args.connections)
                        rps = bench.oha(url, body, args.duration, args.connections)["rps"]
                    finally:
                        proxy.stop()
                    results[variant].append(rps)
                    print(f"round {rnd} {variant:6}: {rps:9,.0f} req/s", flush=True)
        finally:
            backend.stop()
    base = "mirror" if native == 2 else "plain Envoy"
    print(f"\n| variant | req/s (median) | ratio to {base} (median of rounds) |\n|---|---:|---:|")
    for variant in ("native", "A", "B"):
        ratios = [v / n for v, n in zip(results[variant], results["native"])]
        print(f"| {variant} | {statistics.median(results[variant]):,.0f} | {statistics.median(ratios):.3f} |")
    b_over_a = [b / a for a, b in zip(results["A"], results["B"])]
    print(f"\nB / A per round: {', '.join(f'{r:.3f}' for r in b_over_a)}; median {statistics.median(b_over_a):.3f}")


if __name__ == "__main__":
    main()
