"""Each wasm VM's linear memory, resident, in one Envoy per module.

    .venv/bin/python -m bench.vm_memory --a A.wasm --b B.wasm [--rounds 2] [--setup pr-legacy-2001]

A fresh proxy per run (`--concurrency 1`: the base VM that compiles the
module, the main thread's VM and one worker's), modules A and B in
interleaved rounds, no traffic. Each proxy is read once the readiness
leader has published every operation's gauges (`Setup.published`), so
both builds are read in the same steady state.

How a VM's memory is found: V8 reserves a wasm memory's whole range
inaccessible (many GiB) and makes pages accessible as the memory grows, so
the kernel splits the mapping in two, and the accessible part ends where a
huge inaccessible rest begins (/proc/PID/smaps). Its resident KiB is what
that VM has touched; a linear memory never shrinks, so it is the VM's
peak. Unlike the process's RSS, this does not depend on when tcmalloc
returns memory, so one round repeats to the KiB.
"""

import argparse
import tempfile
from pathlib import Path

from bench import setups

# A reservation this large is a wasm memory's (V8 reserves 8 GiB and more
# per memory on 64-bit hosts); nothing else in Envoy maps so much at once.
RESERVATION = 4 << 30


def linear_memories(pid):
    """The resident KiB of each wasm linear memory of process `pid`, sorted."""
    maps, current = [], None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and not parts[0].endswith(":"):
                low, high = (int(x, 16) for x in parts[0].split("-"))
                current = {"low": low, "high": high, "perms": parts[1], "rss": 0}
                maps.append(current)
            elif parts and parts[0] == "Rss:" and current is not None:
                current["rss"] = int(parts[1])
    accessible = {m["high"]: m for m in maps if m["perms"].startswith("rw")}
    return sorted(accessible[m["low"]]["rss"] for m in maps
                  if m["perms"].startswith("---") and m["high"] - m["low"] >= RESERVATION and m["low"] in accessible)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, type=Path, help="module A")
    parser.add_argument("--b", required=True, type=Path, help="module B")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--setup", default="pr-legacy-2001", choices=[n for n, s in setups.SETUPS.items()
                                                                      if s.kind == "filter"])
    args = parser.parse_args()
    setup = setups.SETUPS[args.setup]
    tmp = Path(tempfile.mkdtemp(prefix="parallel-run-vm-memory-"))
    backend = setups.BackendEnvoy(tmp, 1)
    backend.start()
    try:
        for n in range(args.rounds):
            for label, wasm in (("A", args.a), ("B", args.b)):
                envoy = setup.start(tmp / f"{label}{n}", backend, 1, wasm.resolve())
                try:
                    took = setup.published(envoy)
                    stats = len(envoy.stats(filter=r"^wasmcustom\.parallel_run\."))
                    memories = linear_memories(envoy.proc.pid)
                finally:
                    envoy.stop()
                print(f"round {n + 1} {label}: {stats:,} stats, published after {took} s; "
                      f"linear memories (KiB): {', '.join(f'{m:,}' for m in memories)}; sum {sum(memories):,}",
                      flush=True)
    finally:
        backend.stop()
        setups.remove_tmp(tmp, keep=False)


if __name__ == "__main__":
    main()
