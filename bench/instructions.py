"""Instructions per request, counted: the proxy's cost without the noise.

    .venv/bin/python -m bench.instructions [--setups envoy empty pr-legacy ...] [--requests 600] [--rounds 2]
    .venv/bin/python -m bench.instructions --wasm B=/tmp/B.wasm --mode legacy   # one more build beside

(from the repository root; `make bench-instructions`). On a shared 2-core
machine a proxy's CPU time per request moves by 10-30% between rounds
(bench/OPTIMISATIONS.md), more than most changes to the filter are worth.
The instructions the proxy executes per request do not move: this runs
each setup's proxy Envoy under Valgrind's callgrind and counts them.

Per setup, a fresh proxy Envoy (`--concurrency 1`) under callgrind, the
native backend Envoy of `make bench` beside it (not under Valgrind):

  1. warm-up: `--warmup` requests (the operation's counters are defined,
     the worker's VM allocates what a request needs once, and V8 moves the
     module's hot functions to its optimising tier: after 100 requests a
     pass-through request counted 237,800 instructions over all threads,
     after 3,000 233,700), the shadows drained, then a dump that zeroes
     the counts;
  2. load: `--requests` POST /bench/2k (2 KiB JSON both ways) one after
     another over one keep-alive connection, the shadows drained, a dump;
  3. idle: as long as the load took, no request, a dump: what the proxy
     does anyway (its timers, the filter's 1 s ticks), subtracted in
     proportion to the time.

Instructions per request = (load - idle x load seconds / idle seconds) /
requests, on the worker thread: it serves every request and makes every
shadow call (`--concurrency 1`). The other threads' work is not the
request's: above all the main thread answering this harness's own reads
of the admin `/stats` (the wait for the filter's shadows to be counted,
inside the load window: 3.4 million instructions for a filter setup, 5,000
a request, and none for the setups with no counters to wait on), then
Envoy's periodic work and V8's compiler threads. The count over all
threads is reported beside.

Counted in user space only (callgrind sees no kernel work, which is the
same for every setup that does the same socket I/O) and split by where
the instructions are (`Places`): Envoy's code; its allocator (tcmalloc,
linked into the binary: 33,000 of the empty module's 210,000 a request);
the code V8 made at run time (the module's compiled functions, the
wrappers between C++ and wasm: 1,700 for the empty module); the C
library.

`--keep DIR` keeps each run's dumps (`callgrind.out.N-T`, dump N of
thread T; the load is dump 2) for a closer look: per function, Envoy's
binary has no symbols, but the addresses are the same in every run.

What it is not: time. One instruction of hashing is not one cache miss. It
is the instrument for a change that moves a few percent (an A/B below the
machine's noise); the wall-clock benchmarks (`make bench`, bench/ab.py)
stay the measure of what a user pays.
"""

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import setups
from bench.setups import MAIN_SIZE, SETUPS, BackendEnvoy, json_body, log
from testbed.envoy import envoy_binary
from testbed.net import Client
from testbed.table import fmt, markdown_table, med

DEFAULT_SETUPS = ("envoy", "empty", "pr-legacy", "mirror", "shadow-floor", "pr-shadow")
# Ratios reported, (numerator, denominator): the targets, counted.
RATIOS = (
    ("pr-legacy", "empty", "pass-through vs the empty module (the floor)"),
    ("pr-legacy", "envoy", "pass-through vs plain Envoy"),
    ("empty", "envoy", "the empty module vs plain Envoy (the runtime's floor)"),
    ("pr-shadow", "mirror", "shadow + compare vs the native mirror"),
    ("pr-shadow", "shadow-floor", "shadow + compare vs the minimal shadowing module"),
    ("pr-candidate", "pr-legacy", "candidate-served vs pass-through (the route check on every request)"),
)
# Where the instructions are (Places.part), with the report's column headers.
PARTS = (
    ("envoy", "in Envoy's code"),
    ("allocator", "in its allocator (tcmalloc)"),
    ("anonymous", "in code V8 made (the module, wrappers)"),
    ("libc", "in libc"),
    ("other", "other"),
)
VALGRIND = ("valgrind", "--tool=callgrind", "--dump-line=no", "--dump-instr=no", "--smc-check=all-non-file",
            "--separate-threads=yes")
# Under callgrind the proxy runs some 50x slower: V8 compiling the 1.1 MB
# module at start took 40-70 s here.
READY_TIMEOUT_S = 300


def parse_dump(path):
    """(total instructions, {(object, function): self instructions}) of one dump.

    The format (Valgrind's callgrind format specification): `ob=` and `fn=`
    name the object and function of the cost lines that follow, compressed:
    `(id) name` the first time, `(id)` after. `ob=` and `cob=` (a call's
    object) share one table per file, `fn=` and `cfn=` another, and an
    object seen first as a callee (Envoy's binary, libc) is named in a
    `cob=` line, after cost lines of its own may already have used the id:
    both kinds of line name ids, and ids are resolved at the end. A `calls=`
    line is followed by one line with the inclusive cost of that call, which
    is not the caller's own.
    """
    objects, functions = {}, {}
    current, total = ("?", "?"), None
    costs = {}
    skip_next = False
    for line in path.read_text(errors="replace").splitlines():
        key, eq, rest = line.partition("=")
        if eq and key in ("ob", "cob", "fn", "cfn"):
            ident, _, name = rest.partition(" ")
            table = objects if key in ("ob", "cob") else functions
            if name:
                table[ident] = name
            if key == "ob":
                current = (ident, current[1])
            elif key == "fn":
                current = (current[0], ident)
        elif line.startswith("calls="):
            skip_next = True
        elif line.startswith(("totals:", "summary:")):
            total = int(line.split()[1])
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            if len(fields) >= 2:
                costs[current] = costs.get(current, 0) + int(fields[1])
    if total is None:
        raise RuntimeError(f"{path}: no totals line")
    resolved = {}
    for (obj, fn), n in costs.items():
        key = (objects.get(obj, obj), functions.get(fn, fn))
        resolved[key] = resolved.get(key, 0) + n
    return total, resolved


def elf_sections(path):
    """{name: (address, size)} of an ELF64 little-endian file's sections."""
    with open(path, "rb") as f:
        data = f.read(64)
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise RuntimeError(f"{path}: not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        f.seek(shoff)
        headers = [struct.unpack_from("<IIQQQQ", f.read(shentsize)) for _ in range(shnum)]
        _, _, _, _, str_offset, str_size = headers[shstrndx]
        f.seek(str_offset)
        strings = f.read(str_size)
    sections = {}
    for name_at, _, _, address, _, size in headers:
        name = strings[name_at:strings.index(b"\0", name_at)].decode(errors="replace")
        sections[name] = (address, size)
    return sections


class Places:
    """Which part of the proxy a function is in.

    Valgrind names Envoy's binary as the object of most of its code, but
    not of the sections after `.text`: tcmalloc's (`google_malloc`,
    `malloc_hook`) come out as `???` with absolute addresses, like the
    code V8 makes at run time. The binary's load address (from the
    process's maps) and its section table tell them apart.
    """

    ALLOCATOR_SECTIONS = ("google_malloc", "malloc_hook")

    def __init__(self, base, sections):
        self.allocator = [(base + a, base + a + n) for name, (a, n) in sections.items()
                          if name in self.ALLOCATOR_SECTIONS]
        self.binary = [(base + a, base + a + n) for a, n in sections.values() if a]

    @classmethod
    def of_process(cls, binary, pid):
        """Where `binary` is loaded in process `pid` (its offset-0 mapping)."""
        binary = str(Path(binary).resolve())
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[5] == binary and int(fields[2], 16) == 0:
                return cls(int(fields[0].split("-")[0], 16), elf_sections(binary))
        raise RuntimeError(f"{binary} is not mapped in process {pid}")

    def part(self, obj, fn):
        if obj in ("???", "?"):
            try:
                address = int(fn, 16)
            except ValueError:
                return "anonymous"
            if any(lo <= address < hi for lo, hi in self.allocator):
                return "allocator"
            if any(lo <= address < hi for lo, hi in self.binary):
                return "envoy"
            return "anonymous"
        name = Path(obj).name
        if name == "envoy":
            return "envoy"
        if name.startswith(("libc.", "libm.", "libpthread.", "ld-linux", "libdl.", "librt.")):
            return "libc"
        return "other"


class Counted:
    """One proxy Envoy under callgrind, and its dumps."""

    def __init__(self, name, setup, tmp, backend, wasm):
        # One directory per run: callgrind names its dumps by number only.
        self.dir = tmp / f"{name}-cg"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = self.dir / "callgrind.out"
        wrapper = [*VALGRIND, f"--callgrind-out-file={self.out}"]
        self.envoy = setup.start(tmp / name, backend, 1, wasm, wrapper=wrapper, ready_timeout=READY_TIMEOUT_S)
        # Valgrind maps the program into its own process: its maps are the program's.
        self.places = Places.of_process(envoy_binary(), self.envoy.proc.pid)

    def dump(self, timeout=120):
        """Dump and zero the counts: {thread: (total, by part)} since the last dump."""
        before = set(self.dir.glob("callgrind.out*"))
        # callgrind_control asks the running tool through a command file it
        # polls; it returns once the dump is written, one file per thread.
        subprocess.run(["callgrind_control", "--dump", str(self.envoy.proc.pid)], check=True,
                       capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while not set(self.dir.glob("callgrind.out*")) - before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no callgrind dump appeared in {self.dir}")
            time.sleep(0.1)
        time.sleep(0.5)  # every thread's file is written by the time callgrind_control returns; be safe
        threads = {}
        for path in sorted(set(self.dir.glob("callgrind.out*")) - before):
            total, by_function = parse_dump(path)
            parts = {}
            for (obj, fn), n in by_function.items():
                part = self.places.part(obj, fn)
                parts[part] = parts.get(part, 0) + n
            threads[path.name.rpartition("-")[2]] = (total, parts)
        return threads

    def stop(self):
        self.envoy.stop()


def send(url, body, count):
    """`count` POSTs one after another on one connection; all must be 200."""
    with Client(url, timeout=60) as client:
        for i in range(count):
            status, _, _ = client.request("POST", f"/bench/{MAIN_SIZE}", {"content-type": "application/json"}, body)
            if status != 200:
                raise RuntimeError(f"request {i}: status {status}")


def settle(setup, envoy):
    """Wait for the filter's shadows to be counted (nothing to wait for otherwise)."""
    if setup.books:
        _, _, drained = setups.drain(envoy, [setups.OPERATION], timeout=120)
        if not drained:
            raise RuntimeError(f"{setup.name}: shadows not settled")
    elif setup.shadows:
        time.sleep(1.0)  # the mirror's and the floor's copies: no counter to wait on


def measure(name, setup, tmp, backend, wasm, args, body):
    counted = Counted(name.replace("@", "-"), setup, tmp, backend, wasm)
    try:
        if setup.kind == "filter":
            setup.published(counted.envoy, timeout=120)
        send(counted.envoy.url(), body, args.warmup)
        settle(setup, counted.envoy)
        counted.dump()
        started = time.monotonic()
        send(counted.envoy.url(), body, args.requests)
        settle(setup, counted.envoy)
        load = counted.dump()
        load_s = time.monotonic() - started
        started = time.monotonic()
        time.sleep(load_s)
        idle = counted.dump()
        idle_s = time.monotonic() - started
        scale = load_s / idle_s
        # The worker (one, `--concurrency 1`) serves every request and makes
        # every shadow call: the thread with the most instructions under
        # load. The other threads' work is not the request's (the module's
        # doc); it is reported beside.
        worker = max(load, key=lambda thread: load[thread][0])

        def per_request(threads):
            per = {}
            for thread in threads:
                load_total, load_parts = load.get(thread, (0, {}))
                idle_total, idle_parts = idle.get(thread, (0, {}))
                for part in set(load_parts) | set(idle_parts):
                    n = load_parts.get(part, 0) - idle_parts.get(part, 0) * scale
                    per[part] = per.get(part, 0) + n / args.requests
                per["total"] = per.get("total", 0) + (load_total - idle_total * scale) / args.requests
            return per

        problems = setups.log_problems(counted.envoy)
        return {"setup": setup.name, "requests": args.requests, "load_s": load_s, "idle_s": idle_s,
                "worker": worker, "per_request": per_request([worker]),
                "all_threads": per_request(set(load) | set(idle)), "log_problems": problems}
    finally:
        counted.stop()


def report(runs, args, wasm_names):
    names = list(dict.fromkeys(r["setup"] for r in runs))

    def values(name, part="total", key="per_request"):
        return [r[key].get(part, 0) for r in runs if r["setup"] == name]

    lines = [
        "# Instructions per request, counted (callgrind)",
        "",
        f"- Date: {setups.utc_now()}",
        f"- Command: `.venv/bin/python -m bench.instructions {' '.join(sys.argv[1:])}`".rstrip(),
        f"- {args.requests} requests per setup after {args.warmup} of warm-up, {args.rounds} round(s); "
        "POST /bench/2k, 2 KiB JSON both ways, one keep-alive connection, proxy `--concurrency 1` under "
        "callgrind; the idle count of the same duration subtracted. Counted on the worker thread, which "
        "serves the requests and makes the shadow calls; all threads beside (their work is not the "
        "request's: above all the main thread answering the harness's reads of the admin stats).",
        "",
    ]
    rows = []
    for name in names:
        label = wasm_names.get(name) or SETUPS[name.split("@")[0]].label
        total = values(name)
        rows.append([name, label, fmt(med(total), 0), ", ".join(fmt(v, 0) for v in total)]
                    + [fmt(med(values(name, part)), 0) for part, _ in PARTS]
                    + [fmt(med(values(name, key="all_threads")), 0)])
    lines += markdown_table([("setup", "<"), ("what", "<"), ("instructions / request (worker)", ">"),
                             ("rounds", ">")] + [(header, ">") for _, header in PARTS]
                            + [("all threads", ">")], rows)
    lines += ["", "## Ratios (medians)", ""]
    rows = []
    builds = [n for n in names if "@" in n]
    # Another build beside: against the floor, and against the first build
    # named (the A of an A/B).
    pairs = list(RATIOS)
    pairs += [(n, "empty", f"{n} vs the empty module") for n in builds]
    pairs += [(n, builds[0], f"{n} vs {builds[0]}") for n in builds[1:]]
    for a, b, what in pairs:
        if a in names and b in names:
            rows.append([what, f"{a} / {b}", fmt(med(values(a)) / med(values(b)), 3),
                         fmt(med(values(a)) - med(values(b)), 0)])
    lines += markdown_table([("figure", "<"), ("setups", "<"), ("ratio", ">"), ("difference (instructions)", ">")],
                            rows)
    problems = [(r["setup"], p) for r in runs for p in r["log_problems"]]
    lines += ["", "Proxy log problems: " + ("none." if not problems else f"{len(problems)}: " + "; ".join(
        f"{s}: {p[:160]}" for s, p in problems[:5]))]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", nargs="+", default=list(DEFAULT_SETUPS), choices=sorted(SETUPS))
    p.add_argument("--wasm", action="append", default=[], metavar="NAME=PATH",
                   help="another filter build, run as pr-<mode>@NAME beside the others (repeatable)")
    p.add_argument("--mode", choices=("legacy", "shadow", "candidate"), default="legacy", help="the mode of the --wasm builds")
    p.add_argument("--requests", type=int, default=600)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--output", type=Path, help="also write the report here (markdown)")
    p.add_argument("--json", type=Path, help="write the raw runs here")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep each run's callgrind dumps in DIR/<round>/<setup>")
    args = p.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: install Valgrind (Debian: apt-get install valgrind)")
    if not 1 <= args.requests <= 100_000 or not 0 <= args.warmup <= 100_000:
        sys.exit("--requests must be 1..100000 and --warmup 0..100000")
    extra = {}
    for item in args.wasm:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).exists():
            sys.exit(f"--wasm {item}: expected NAME=PATH of an existing file")
        extra[f"pr-{args.mode}@{name}"] = Path(path).resolve()
    built = {"empty": setups.build_empty_filter() if "empty" in args.setups else None,
             "shadow-floor": setups.build_shadow_floor() if "shadow-floor" in args.setups else None}
    built.update({name: setups.PR_WASM for name in args.setups if name.startswith("pr-")})
    tmp = Path(tempfile.mkdtemp(prefix="pr-instructions-"))
    # Each module is copied first: a run takes long enough for a rebuild.
    copies = {}
    for path in [p for p in built.values() if p] + list(extra.values()):
        if path not in copies:
            copies[path] = tmp / f"module-{len(copies)}.wasm"
            shutil.copy2(path, copies[path])
    plan = [(name, SETUPS[name], copies.get(built.get(name))) for name in args.setups]
    plan += [(name, SETUPS[f"pr-{args.mode}"], copies[path]) for name, path in extra.items()]
    body = json_body(2048, "req")
    runs = []
    backend = BackendEnvoy(tmp, 1).start()
    try:
        for round_ in range(1, args.rounds + 1):
            for name, setup, wasm in plan:
                log(f"round {round_}: {name} under callgrind")
                run = measure(name, setup, tmp / f"r{round_}", backend, wasm, args, body)
                run["setup"] = name
                runs.append(run)
                per = run["per_request"]
                log(f"  {per['total']:,.0f} instructions per request on the worker: "
                    + ", ".join(f"{part} {per.get(part, 0):,.0f}" for part, _ in PARTS)
                    + f"; all threads {run['all_threads']['total']:,.0f}"
                    + f" (load {run['load_s']:.1f} s, idle {run['idle_s']:.1f} s)")
                if args.json:  # kept as it goes: a long run's rounds survive a later failure
                    args.json.write_text(json.dumps(runs, indent=2))
    finally:
        backend.stop()
        if args.keep:
            for dumps in tmp.glob("r*/*-cg"):
                target = args.keep / dumps.parent.name / dumps.name.removesuffix("-cg")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(dumps, target, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(runs, args, {n: f"parallel-run built as {n.split('@')[1]} ({p})" for n, p in extra.items()})
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
