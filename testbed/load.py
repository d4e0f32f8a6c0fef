"""Load generators: one bounded run of oha or wrk against a loopback URL,
POSTing a JSON body, summarised as one dict (JSON-serialisable, so a run's
raw numbers can be written out as they are).

Every run is bounded twice: by the generator's own duration and by a
process timeout on top. The generator's CPU (user + system, its whole life)
is part of the result, so that a setup in which the load generator rather
than the proxy is the bottleneck can be recognised.

    oha  closed loop (`-c` connections, each sending as soon as it has its
         answer) or a fixed rate (`-q` with `--latency-correction`: latency
         counted from when a request should have left, so a stall is not
         hidden by the generator waiting). `-w`: requests in flight at the
         end are awaited, so every request sent is answered.
    wrk  closed loop only, one thread by default; a Lua script sets the body
         and prints the summary as JSON. At the end of its duration wrk closes
         its connections with up to one request each still in flight: those
         reached the proxy but have no answer.

And a Python client for comparing proxies answer by answer (oha and wrk
only count statuses):

    SideBySide  the same requests to several proxies, each request to each
                proxy in turn, recording every answer (status, header
                names, body, latency), bounded in count and time
    not_slower  whether one latency distribution is worse than another
                beyond the other's own noise
"""

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path

from testbed.net import HOST
from testbed.process import children_cpu_seconds
from testbed.table import quantile

REPO = Path(__file__).resolve().parents[1]
OHA = Path(os.environ.get("OHA") or REPO / ".tools" / "bin" / "oha")
WRK = Path(os.environ.get("WRK") or shutil.which("wrk") or "/usr/bin/wrk")

# On top of the generator's own duration: start-up, awaiting the last answers (-w), exit.
PROCESS_SLACK_S = 60

WRK_SCRIPT = """-- written by testbed/load.py: POST the body file, print the summary as JSON.
local file = assert(io.open(%(body)s, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def available(generator):
    """Is the generator's binary there?"""
    return (OHA if generator == "oha" else WRK).exists()


def version(generator):
    """The generator's name and version, e.g. "oha 1.14.0", "wrk debian/4.1.0-3+b2"."""
    binary = OHA if generator == "oha" else WRK
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    words = (out.stdout or out.stderr).split()
    return " ".join(words[:2]) if words else generator


def _run(cmd, timeout):
    before = children_cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return out, children_cpu_seconds() - before


def oha_command(url, body_file, duration, connections, rate=None, extra=()):
    """The oha command line: closed loop, or a fixed `rate` (req/s) with latency correction."""
    cmd = [str(OHA), "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-c", str(connections),
           "-w", "-t", "20s", "-m", "POST", "-T", "application/json", "-D", str(body_file)]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    return cmd + list(extra) + [url]


def oha_summary(data, duration, generator_cpu_s, rate=None):
    """The summary of oha's JSON output `data` (a dict)."""
    summary = data["summary"]
    codes = {str(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    elapsed = summary.get("total") or duration
    pct = data.get("latencyPercentiles") or {}
    return {
        "generator": "oha",
        "rps": ok / elapsed if elapsed else 0.0,
        "ok": ok,
        "non2xx": sum(codes.values()) - ok,
        "errors": sum((data.get("errorDistribution") or {}).values()),
        "error_kinds": data.get("errorDistribution") or {},
        "p50_ms": (pct.get("p50") or 0.0) * 1000,
        "p99_ms": (pct.get("p99") or 0.0) * 1000,
        "max_ms": (summary.get("slowest") or 0.0) * 1000,
        "elapsed_s": elapsed,
        "generator_cpu_s": generator_cpu_s,
        "target_rate": rate,
        "unanswered_max": 0,  # -w: every request sent is answered
    }


def oha(url, body_file, duration, connections, rate=None):
    """One oha run: closed loop, or a fixed `rate` (req/s) with latency correction."""
    out, cpu = _run(oha_command(url, body_file, duration, connections, rate), duration + PROCESS_SLACK_S)
    if out.returncode != 0:
        raise RuntimeError(f"oha failed ({out.returncode}): {out.stderr[-2000:]}")
    return oha_summary(json.loads(out.stdout), duration, cpu, rate)


def wrk(url, body_file, duration, connections, threads=1, script_dir=None):
    """One wrk run: closed loop. `duration` is rounded to whole seconds (wrk's unit)."""
    seconds = max(1, round(duration))
    script = Path(script_dir or body_file.parent) / f"wrk-{Path(body_file).stem}.lua"
    script.write_text(WRK_SCRIPT % {"body": json.dumps(str(body_file))})
    cmd = [str(WRK), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "20s",
           "-s", str(script), url]
    out, cpu = _run(cmd, seconds + PROCESS_SLACK_S)
    line = next((line for line in out.stdout.splitlines() if line.startswith('{"requests"')), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-1500:]} {out.stderr[-1500:]}")
    data = json.loads(line)
    elapsed = data["duration_us"] / 1e6 or seconds
    # wrk counts every answer in `requests`; answers with a status >= 400 in `status` as well.
    ok = data["requests"] - data["status"]
    kinds = {k: data[k] for k in ("connect", "read", "write", "timeout") if data[k]}
    return {
        "generator": "wrk",
        "rps": ok / elapsed,
        "ok": ok,
        "non2xx": data["status"],
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "max_ms": data["max_us"] / 1000,
        "elapsed_s": elapsed,
        "generator_cpu_s": cpu,
        "target_rate": None,
        "unanswered_max": connections,  # cut at the end: at most one in flight per connection
    }


def closed_loop(generator, url, body_file, duration, connections, **options):
    """A closed-loop run with the named generator ("oha" or "wrk")."""
    if generator == "wrk":
        return wrk(url, body_file, duration, connections, **options)
    return oha(url, body_file, duration, connections)


@dataclass(frozen=True)
class Answer:
    """What a client got for one request. `status` is None when there was no
    complete answer; `error` then names the exception (e.g. IncompleteRead).
    `headers` are the answer's header names, lowercased and sorted, without
    `date` (its value is the only one that changes by itself)."""

    status: object
    headers: tuple
    body: bytes
    error: str
    latency_s: float

    def seen(self):
        """What the client saw, latency aside: the thing two proxies must agree on."""
        return (self.status, self.headers, self.body, self.error)


class SideBySide:
    """Requests `path_for(0)`, `path_for(1)`, ... sent to every proxy in
    `ports`, from `threads` client threads, each holding one keep-alive
    connection per proxy (reconnecting after an error). Request i goes to
    the proxies in turn, in an order that alternates with i, so that no
    proxy always goes first; the answers of one request were therefore
    made under the same conditions, and their latencies can be compared as
    distributions.

    Bounded twice: at most `max_requests` requests (per proxy), and none
    started after `deadline_s`. `pause_s` between a thread's requests keeps
    the rate modest. `run()` sends everything and returns; `start()` runs in
    the background until `stop()` (or a bound). `answers[port]` is a list
    with one Answer per request number (None for a number not sent)."""

    def __init__(self, ports, path_for, max_requests, deadline_s, threads=4, pause_s=0.0, timeout_s=10):
        self.ports = list(ports)
        self.path_for = path_for
        self.max_requests = max_requests
        self.deadline_s = deadline_s
        self.threads = threads
        self.pause_s = pause_s
        self.timeout_s = timeout_s
        self.answers = {port: [None] * max_requests for port in self.ports}
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []

    @property
    def sent(self):
        """How many request numbers were handed out so far."""
        with self._lock:
            return self._next

    def _take(self, stop_at):
        with self._lock:
            if self._stop.is_set() or self._next >= self.max_requests or time.monotonic() >= stop_at:
                return None
            n = self._next
            self._next += 1
            return n

    def _one(self, conns, port, path):
        started = time.monotonic()
        try:
            conn = conns.get(port) or HTTPConnection(HOST, port, timeout=self.timeout_s)
            conns[port] = conn
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            names = tuple(sorted({name.lower() for name in response.headers.keys()} - {"date"}))
            return Answer(response.status, names, body, "", time.monotonic() - started)
        except (OSError, HTTPException) as err:
            stale = conns.pop(port, None)
            if stale:
                stale.close()  # a fresh connection for the next request
            return Answer(None, (), b"", type(err).__name__, time.monotonic() - started)

    def _work(self, stop_at):
        conns = {}
        try:
            while (n := self._take(stop_at)) is not None:
                path = self.path_for(n)
                order = self.ports if n % 2 == 0 else self.ports[::-1]
                for port in order:
                    self.answers[port][n] = self._one(conns, port, path)
                if self.pause_s:
                    self._stop.wait(self.pause_s)
        finally:
            for conn in conns.values():
                conn.close()

    def start(self):
        stop_at = time.monotonic() + self.deadline_s
        self._workers = [threading.Thread(target=self._work, args=(stop_at,), name=f"side-by-side-{t}", daemon=True)
                         for t in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self):
        """Start no more requests, and wait for those in flight."""
        self._stop.set()
        return self.join()

    def join(self):
        for worker in self._workers:
            worker.join(timeout=self.deadline_s + self.timeout_s + 5)
        assert not any(w.is_alive() for w in self._workers), "client threads did not stop"
        return self

    def run(self):
        return self.start().join()

    def of(self, port):
        """The answers the proxy on `port` gave, in request order, without the numbers not sent."""
        return [a for a in self.answers[port] if a is not None]


LATENCY_QUANTILES = (0.5, 0.9, 0.99)


def not_slower(latencies, baseline):
    """Is the distribution `latencies` not worse than `baseline` beyond
    noise? Both in the same unit, measured side by side in one run. Returns
    (verdict, {q: (quantile, baseline quantile)}).

    The noise is the baseline's own spread in that run, its p99 minus its
    p50, not a fixed time: on a shared machine it is what one request's
    latency varies by anyway. Not slower: the median within the baseline's
    p99, and the p90 within the baseline's p99 plus that spread. The
    proxy doing more work (a shadow call per request on the same worker,
    and the machine's other processes) moves a few requests into the tail;
    a client waiting for something moves every request by that time, and
    fails as soon as the wait exceeds the spread.

    The spread is at least 1% of the baseline's median. Answers that all
    take one timer's length (Envoy's 1 s delayed close after a backend
    reset) spread by a few milliseconds only, less than the machine's
    jitter: a fresh-clone run failed such a case with the p90 at 1020.7 ms
    against 1016.6 + 3.4. A wait for a shadow call (300 ms and more) is
    far beyond that floor."""
    ours = {q: quantile(latencies, q) for q in LATENCY_QUANTILES}
    theirs = {q: quantile(baseline, q) for q in LATENCY_QUANTILES}
    noise = max(theirs[0.99] - theirs[0.5], theirs[0.5] / 100)
    verdict = ours[0.5] <= theirs[0.99] and ours[0.9] <= theirs[0.99] + noise
    return verdict, {q: (ours[q], theirs[q]) for q in LATENCY_QUANTILES}
