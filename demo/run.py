"""The parallel-run demo: `make demo` (or `.venv/bin/python -m demo.run` from the repo root).

Starts a legacy and a candidate "Returns" service (demo/backends.py) and a
real Envoy with the parallel-run filter delivered by ECDS, all on 127.0.0.1,
then tells the migration story (sections headed "== "):

  setup:       the first configuration push (demo/config.json)
  1. shadow:   legacy serves, the candidate gets shadow copies; per-operation
               counters and match rates, and a few of the filter's log lines
  2. cutover:  `parallel-run-ctl cutover getReturn` is refused (getReturn is
               not READY); the demo then overrides the guard with --force and
               a reason it prints (recorded in the audit log); getReturn alone
               moves to the candidate by a live push, confirmed by Envoy
  3. refused:  a broken configuration is refused by parallel-run-ctl (and,
               written directly into the ECDS file, by the filter in Envoy);
               Envoy keeps serving with the last good one
  4. rollback: `parallel-run-ctl rollback getReturn`: legacy serves it again;
               `parallel-run-ctl history` shows the audit trail
  5. result:   all expectations held, or which did not

Every expectation is checked; the script exits non-zero with the list of
failed checks if one does not hold. Everything it starts is stopped at the
end, also on error. Set DEMO_KEEP=1 to keep the temp dir (Envoy log, configs).
"""

import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from demo.backends import CUSTOMERS, IDS, NEW_CUSTOMERS, expected_differences, start_backends
from testbed.counters import by_operation
from testbed.envoy import CTL_PATH, REPO, WASM_PATH, Envoy, envoy_binary, set_plugin_config
from testbed.net import Client, http, wait_until
from testbed.table import text_table

CONFIG_FILE = REPO / "demo" / "config.json"
UNMATCHED_LOG = "parallel-run: unmatched"
OPERATIONS = ["getReturn", "listReturns", "createReturn", "getLabel", "getRefund"]
CLIENTS = 4  # keep-alive client connections per traffic phase
PHASE_DEADLINE_S = 45  # a traffic phase that takes longer is a failure
SETTLE_TIMEOUT_S = 15  # for every shadow to be judged after a phase

# Requests per operation in one traffic phase (shuffled, deterministic).
TRAFFIC = {"getReturn": 160, "listReturns": 80, "createReturn": 40, "getLabel": 60, "getRefund": 60}


class DemoError(Exception):
    """Something the demo cannot continue after."""


class Checks:
    """Expectations: printed as one line per step, collected for the exit code."""

    def __init__(self):
        self.failed = []
        self._step = []

    def expect(self, condition, what):
        self._step.append((bool(condition), what))
        if not condition:
            self.failed.append(what)
        return bool(condition)

    def report(self, label):
        ok = sum(1 for passed, _ in self._step if passed)
        print(f"  checks ({label}): {ok}/{len(self._step)} passed")
        for passed, what in self._step:
            if not passed:
                print(f"    FAILED: {what}")
        self._step = []


# ---------------------------------------------------------------- configuration


def load_config():
    return json.loads(CONFIG_FILE.read_text())


def with_mode(config, operation, mode, revision):
    new = copy.deepcopy(config)
    new["revision"] = revision
    for op in new["operations"]:
        if op["id"] == operation:
            op["mode"] = mode
    return new


def settings(config):
    """{operation id: {mode, target_match_rate, min_samples}} with defaults applied."""
    defaults = config.get("defaults", {})
    out = {}
    for op in config["operations"]:
        out[op["id"]] = {key: op.get(key, defaults.get(key, fallback))
                         for key, fallback in (("mode", "legacy"), ("target_match_rate", 0.99), ("min_samples", 100))}
    return out


def ctl(envoy, *args):
    """Runs parallel-run-ctl against the demo's Envoy (its ECDS file and admin endpoint)."""
    command = [str(CTL_PATH), *args, "--ecds", str(envoy.ecds_file), "--admin", envoy.admin_url()]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def push(envoy, config, tmp):
    """`parallel-run-ctl apply` of `config`: validated, audited, and confirmed by Envoy."""
    config_file = Path(tmp) / f"{config['revision']}.json"
    config_file.write_text(json.dumps(config, indent=2))
    before = envoy.ecds_counts()
    result = ctl(envoy, "apply", str(config_file), "--reason", "demo: the starting configuration")
    if result.returncode != 0:
        raise DemoError(f"parallel-run-ctl refused revision {config.get('revision')!r} (exit {result.returncode}):\n"
                        f"{result.stdout}{result.stderr}")
    after = envoy.ecds_counts()
    print(f"  $ {command_line(result)}  -> exit 0")
    for line in ctl_changes(result):
        print(f"    {line}")
    print(f"  Envoy ECDS: update_success {before['update_success']} -> {after['update_success']}, "
          f"config_reload {before['config_reload']} -> {after['config_reload']} (no restart)")
    return result


def command_line(result):
    """The ctl command as a reader would type it (file names without the temp dir, no --ecds/--admin)."""
    args = list(result.args)
    for option in ("--ecds", "--admin"):
        if option in args:
            at = args.index(option)
            del args[at:at + 2]
    args = [Path(a).name if "/" in a else a for a in args]
    args[0] = "parallel-run-ctl" if args[0] == CTL_PATH.name else args[0]
    return " ".join(f'"{a}"' if " " in a else a for a in args)


def ctl_output(result, tmp=None):
    """parallel-run-ctl's output lines, with the temp dir cut out of file names."""
    text = (result.stdout + result.stderr).strip()
    if tmp:
        text = text.replace(str(tmp) + "/", "")
    for arg in result.args:
        if "/" in str(arg):
            text = text.replace(str(Path(arg).parent) + "/", "")
    return [line for line in text.splitlines() if line.strip()]


def ctl_changes(result, limit=4):
    """What a change said: "revision A -> revision B", one line per change, and Envoy's confirmation."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    out = []
    for line in lines:
        if line.startswith(("apply ", "cutover ", "rollback ", "set-mode ")) and ": " in line:
            out.append(line.split(": ", 1)[1])
        elif line.startswith((" ", "\t")) or line.startswith("Envoy "):
            out.append(line.strip())
    if len(out) > limit:
        out = out[:limit - 1] + [f"... ({len(out) - limit + 1} more changes)"]
    return out


def serving_now(envoy, rids=(1, 2, 3)):
    """[(status, implementation)] for GET /returns/<rid>, on fresh connections."""
    out = []
    for rid in rids:
        status, headers, _ = http("GET", envoy.url(f"/returns/{rid}"))
        out.append((status, (headers.get("x-implementation") or "?").split("/")[0]))
    return out


# ---------------------------------------------------------------- traffic


def traffic_plan(seed, counts):
    """A deterministic, shuffled list of (operation, method, path, body, input key)."""
    rng = random.Random(seed)
    plan = []
    for op, n in counts.items():
        for _ in range(n):
            rid = rng.choice(IDS)
            customer = rng.choice(CUSTOMERS)
            if op == "getReturn":
                plan.append((op, "GET", f"/returns/{rid}", None, rid))
            elif op == "listReturns":
                plan.append((op, "GET", f"/returns?customer={customer}", None, customer))
            elif op == "createReturn":
                body = {"customer": rng.choice(NEW_CUSTOMERS), "items": [{"sku": f"SKU-{rng.randrange(1000):04d}", "quantity": 1}],
                        "reason": rng.choice(["damaged", "wrong_size"])}
                plan.append((op, "POST", "/returns", body, None))
            elif op == "getLabel":
                plan.append((op, "GET", f"/returns/{rid}/label", None, rid))
            elif op == "getRefund":
                plan.append((op, "GET", f"/returns/{rid}/refund", None, rid))
    rng.shuffle(plan)
    return plan


def send(envoy, plan):
    """Sends `plan` over CLIENTS keep-alive connections. Returns the client's view:
    {operation: {(status, implementation): count}} plus a list of transport errors."""
    seen = {}
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + PHASE_DEADLINE_S

    def worker(part):
        client = Client(envoy.url(), timeout=10)
        try:
            for op, method, path, body, _ in part:
                if time.monotonic() > deadline:
                    with lock:
                        errors.append("phase deadline passed")
                    return
                headers = {"content-type": "application/json"} if body is not None else {}
                try:
                    status, resp_headers, _ = client.request(method, path, headers, body)
                    key = (status, (resp_headers.get("x-implementation") or "?").split("/")[0])
                except OSError as err:  # one reconnect per failure, bounded by the plan's length
                    key = None
                    with lock:
                        errors.append(f"{method} {path}: {err!r}")
                    client.close()
                    client = Client(envoy.url(), timeout=10)
                if key:
                    with lock:
                        per_op = seen.setdefault(op, {})
                        per_op[key] = per_op.get(key, 0) + 1
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(plan[i::CLIENTS],), daemon=True) for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic() + 5))
    if any(t.is_alive() for t in threads):
        errors.append("client threads still running after the phase deadline")
    return seen, errors, time.monotonic() - started


# ---------------------------------------------------------------- counters


def delta(after, before):
    return {op: {k: v - before.get(op, {}).get(k, 0) for k, v in values.items()} for op, values in after.items()}


def judged(values):
    return sum(values.get(k, 0) for k in ("matched", "unmatched", "failed", "abandoned"))


def settle(envoy, before, plan):
    """Waits until Envoy counted every request of `plan` and judged every shadow; returns the deltas."""
    sent = {}
    for op, *_ in plan:
        sent[op] = sent.get(op, 0) + 1
    last = {}

    def done():
        nonlocal last
        last = delta(by_operation(envoy), before)
        for op, n in sent.items():
            values = last.get(op, {})
            if values.get("requests", 0) < n or judged(values) < values.get("shadowed", 0):
                return False
        return True

    try:
        wait_until(done, timeout=SETTLE_TIMEOUT_S, interval=0.1, message="all shadows judged")
    except AssertionError:
        pass  # the checks below say what is missing
    return last


def print_table(phase_delta, config):
    modes = settings(config)
    rows = []
    for op in OPERATIONS:
        v = phase_delta.get(op, {})
        s = modes[op]
        skipped = sum(value for key, value in v.items() if key.startswith("skipped_"))
        samples = v.get("matched", 0) + v.get("unmatched", 0)
        if samples:
            rate = v.get("matched", 0) / samples
            rate_text = f"{rate:.1%}"
            if samples < s["min_samples"]:
                verdict = f"too few samples (<{s['min_samples']})"
            else:
                verdict = "meets target" if rate >= s["target_match_rate"] else "below target"
        else:
            rate_text, verdict = "-", "not compared"
        breakdown = f"({v.get('unmatched_status', 0)}/{v.get('unmatched_headers', 0)}/{v.get('unmatched_body', 0)})"
        rows.append([op, s["mode"], v.get("requests", 0), v.get("served_legacy", 0), v.get("served_candidate", 0),
                     v.get("shadowed", 0), v.get("matched", 0), v.get("unmatched", 0), breakdown, v.get("failed", 0),
                     skipped, rate_text, f"{s['target_match_rate']:.0%}", verdict])
    columns = [("operation", "<"), ("mode", "<"), ("reqs", ">"), ("legacy", ">"), ("cand", ">"), ("shadow", ">"),
               ("match", ">"), ("unmatch", ">"), ("(st/hd/bd)", "<"), ("fail", ">"), ("skip", ">"), ("rate", ">"),
               ("target", ">"), ("verdict", "<")]
    for line in text_table(columns, rows):
        print(line)


def backend_counts(legacy, candidate):
    return {"legacy": legacy.counts(), "candidate": candidate.counts()}


def backend_delta(after, before, backend, op, kind):
    return after[backend].get(op, {}).get(kind, 0) - before[backend].get(op, {}).get(kind, 0)


def run_phase(label, envoy, legacy, candidate, config, seed, counts, checks, diffs):
    """One traffic phase: send, settle, print the table, check what both sides saw."""
    plan = traffic_plan(seed, counts)
    before, seen_before = by_operation(envoy), backend_counts(legacy, candidate)
    seen, errors, took = send(envoy, plan)
    phase = settle(envoy, before, plan)
    seen_after = backend_counts(legacy, candidate)
    print(f"  sent {len(plan)} requests in {took:.1f}s over {CLIENTS} keep-alive connections "
          f"(counters below: this phase only)")
    print_table(phase, config)

    checks.expect(not errors, f"{label}: no client errors ({errors[:3]})")
    modes = settings(config)
    for op, n in counts.items():
        v = phase.get(op, {})
        mode = modes[op]["mode"]
        serving = "candidate" if mode in ("cutover", "candidate") else "legacy"
        other = "legacy" if serving == "candidate" else "candidate"
        shadows = mode in ("shadow", "cutover") and op != "createReturn"
        checks.expect(v.get("requests") == n, f"{label}: {op} requests counter = {v.get('requests')}, sent {n}")
        checks.expect(v.get("served_" + serving) == n and v.get("served_" + other, 0) == 0,
                      f"{label}: {op} served_{serving} = {v.get('served_' + serving)} (expected {n}), "
                      f"served_{other} = {v.get('served_' + other, 0)} (expected 0)")
        live = backend_delta(seen_after, seen_before, serving, op, "live")
        stray = backend_delta(seen_after, seen_before, other, op, "live")
        checks.expect(live == n and stray == 0,
                      f"{label}: {op} live requests at {serving} backend = {live} (expected {n}), at {other} = {stray} (expected 0)")
        client_view = seen.get(op, {})
        wrong = {k: c for k, c in client_view.items() if k[1] != f"returns-{'svc' if serving == 'candidate' else 'legacy'}"}
        checks.expect(not wrong, f"{label}: {op} clients were answered by {serving} only (also: {wrong})")
        shadow_calls = backend_delta(seen_after, seen_before, other, op, "shadow")
        if not shadows:
            checks.expect(v.get("shadowed", 0) == 0 and shadow_calls == 0,
                          f"{label}: {op} not shadowed (shadowed = {v.get('shadowed', 0)}, copies at {other} = {shadow_calls})")
            continue
        checks.expect(v.get("shadowed") == n and shadow_calls == n,
                      f"{label}: {op} shadowed = {v.get('shadowed')}, shadow copies at {other} backend = {shadow_calls}, expected {n}")
        checks.expect(v.get("failed", 0) == 0 and v.get("abandoned", 0) == 0,
                      f"{label}: {op} failed = {v.get('failed', 0)}, abandoned = {v.get('abandoned', 0)} (expected 0)")
        # What the comparator must find, from asking both implementations directly.
        keys = [key for o, *_, key in plan if o == op]
        want_unmatched = sum(1 for key in keys if key in diffs.get(op, {}))
        want = [sum(1 for key in keys if axis in diffs.get(op, {}).get(key, ())) for axis in ("status", "headers", "body")]
        got = [v.get("unmatched_" + axis, 0) for axis in ("status", "headers", "body")]
        checks.expect(v.get("matched") == n - want_unmatched and v.get("unmatched") == want_unmatched,
                      f"{label}: {op} matched/unmatched = {v.get('matched')}/{v.get('unmatched')}, "
                      f"expected {n - want_unmatched}/{want_unmatched}")
        checks.expect(got == want, f"{label}: {op} unmatched st/hd/bd = {'/'.join(map(str, got))}, "
                                   f"expected {'/'.join(map(str, want))}")
    return phase, seen


def unmatched_lines(envoy, limit=5):
    """All of the filter's unmatched log lines, and a few to show: the first
    one of each (operation, axes) kind, request ids shortened."""
    lines = [line[line.index(UNMATCHED_LOG):] for line in envoy.log_text().splitlines() if UNMATCHED_LOG in line]
    by_op, kinds = {}, set()
    for line in lines:
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        kind = (fields.get("operation"), fields.get("axes"))
        if kind in kinds:
            continue
        kinds.add(kind)
        request_id = fields.get("request_id", "")
        short = line.replace(request_id, request_id[:8] + "..") if len(request_id) > 10 else line
        by_op.setdefault(kind[0], []).append(short)
    picked = []
    for round_ in range(limit):  # one kind per operation first, then the next kind of each
        for op in OPERATIONS + sorted(set(by_op) - set(OPERATIONS)):
            if len(by_op.get(op, [])) > round_ and len(picked) < limit:
                picked.append(by_op[op][round_])
    return lines, picked


def differing_fields(envoy):
    """{operation: [(count, field), ...]} from the per-field counters, most first."""
    fields = {}
    for op, values in by_operation(envoy).items():
        for name, value in values.items():
            if name.startswith("unmatched_path."):
                fields.setdefault(op, []).append((value, name.removeprefix("unmatched_path.")))
    return {op: sorted(found, reverse=True) for op, found in fields.items()}


# ---------------------------------------------------------------- the story


def heading(text):
    print(f"\n== {text}")


def prerequisites():
    missing = [str(p.relative_to(REPO)) for p in (WASM_PATH, CTL_PATH) if not p.exists()]
    if missing:
        raise DemoError(f"not built: {', '.join(missing)} (run `make demo`, which builds them first)")
    envoy_binary()


def story(tmp, checks):
    prerequisites()
    config = load_config()
    diffs = expected_differences()

    heading("Setup: two Returns services and Envoy with the parallel-run filter (all on 127.0.0.1)")
    legacy, candidate = start_backends()
    envoy = None
    completed = False
    try:
        envoy = Envoy(tmp, {"legacy": legacy.port, "candidate": candidate.port}, ecds=True)
        print(f"  legacy  :{legacy.port}   candidate :{candidate.port}   Envoy :{envoy.port} (admin :{envoy.admin_port})")
        print(f"  known candidate bugs: getReturn ids {sorted(diffs['getReturn'])}, listReturns customers "
              f"{sorted(diffs['listReturns'])}, getLabel ids {sorted(diffs['getLabel'])}")
        push(envoy, config, tmp)

        heading("1. Shadow: legacy serves every client; GETs are copied to the candidate and compared")
        run_phase("shadow", envoy, legacy, candidate, config, "phase-1", TRAFFIC, checks, diffs)
        print("  (rate = matched/(matched+unmatched) in this phase; READY, which the cutover guard checks, is the"
              " filter's own rule: the Wilson lower bound over its window, held for ready_after_s;"
              " st/hd/bd = status/headers/body)")
        all_lines, lines = unmatched_lines(envoy)
        print(f"  the filter logged {len(all_lines)} unmatched lines (rate-limited; values are never logged), e.g.:")
        for line in lines:
            print("    " + line)
        checks.expect(lines, "shadow: the Envoy log has 'parallel-run: unmatched' lines")
        top = differing_fields(envoy)
        print("  what differs most, per operation (counters unmatched_path.<field>, label diff_path): the to-do list")
        for op in OPERATIONS:
            if top.get(op):
                print(f"    {op:12} " + ", ".join(f"{field} {count}" for count, field in top[op][:3]))
        checks.expect(top.get("getReturn") and top["getReturn"][0][1] == "/status",
                      "shadow: getReturn's most frequent difference is /status (the candidate's status bug)")
        checks.report("shadow")

        heading("2. Cutover: guarded by readiness; getReturn is not READY, so the demo says --force and why")
        reason = "demo: cut over a not-ready operation to show the mechanism and its risk"
        before_file = envoy.ecds_file.read_bytes()
        result = ctl(envoy, "cutover", "getReturn", "--reason", "the candidate looks fine to me")
        print(f"  $ {command_line(result)}  -> exit {result.returncode}")
        for line in ctl_output(result)[:2]:
            print(f"    {line[:200]}")
        checks.expect(result.returncode == 1 and "getReturn is not READY" in result.stderr,
                      f"cutover: the guard refuses the not-ready getReturn (exit {result.returncode}: {result.stderr[:200]})")
        checks.expect(envoy.ecds_file.read_bytes() == before_file, "cutover: the refused cutover wrote nothing")
        result = ctl(envoy, "cutover", "getReturn", "--force", "--reason", reason)
        print(f"  $ {command_line(result)}  -> exit {result.returncode}")
        for line in ctl_changes(result, limit=6):
            print(f"    {line[:200]}")
        checks.expect(result.returncode == 0 and "Envoy runs revision" in result.stdout,
                      f"cutover: the forced cutover is confirmed by Envoy (exit {result.returncode}: {result.stderr[:300]})")
        records = [json.loads(line) for line in envoy.ecds_file.with_name("parallel-run.audit.jsonl").read_text().splitlines()]
        forced = [r for r in records if r["kind"] == "change" and r["action"] == "cutover"]
        checks.expect(forced and forced[-1]["force"] and forced[-1]["reason"] == reason and forced[-1]["evidence"],
                      "cutover: the audit log records the override, the reason and the readiness evidence")
        if forced:
            evidence = forced[-1]["evidence"][0]
            print(f"  audit record: {forced[-1]['user']}@{forced[-1]['host']} FORCED, evidence {evidence['summary']} "
                  f"({evidence['comparisons']} comparisons, target {evidence['target_match_rate']:.0%})")
        cutover = with_mode(config, "getReturn", "cutover", "demo-2-cutover-getReturn")
        _, seen = run_phase("cutover", envoy, legacy, candidate, cutover, "phase-2", TRAFFIC, checks, diffs)
        got = seen.get("getReturn", {})
        print(f"  clients' getReturn answers now come from the candidate: "
              + ", ".join(f"{n}x {status} from {impl}" for (status, impl), n in sorted(got.items())))
        print("  (getReturn was NOT READY: a real operator fixes the candidate first; the demo forced it to\n"
              "   show the mechanism - and clients now get the candidate's bugs, e.g. the 404s. Hence step 4.)")
        checks.expect(any(status == 404 for status, _ in got) or not any(k in diffs["getReturn"] for k in (48, 49)),
                      "cutover: clients see the candidate's 404 for the unmigrated returns")
        checks.report("cutover")

        heading("3. A broken config is refused; Envoy keeps serving with the last good one")
        broken = copy.deepcopy(cutover)
        broken["revision"] = "demo-3-broken"
        for op in broken["operations"]:
            if op["id"] == "getReturn":
                op["target_match_rate"] = 95  # a percentage where a fraction belongs
        broken_file = Path(tmp) / "demo-3-broken.json"
        broken_file.write_text(json.dumps(broken, indent=2))
        before = envoy.ecds_counts()
        result = ctl(envoy, "apply", str(broken_file), "--reason", "demo: a typo")
        message = ctl_output(result) or ["(no message)"]
        print(f"  $ {command_line(result)}   (getReturn target_match_rate: 95)  -> exit {result.returncode}")
        for line in message[:3]:
            print(f"    {line[:160]}")
        checks.expect(result.returncode != 0, f"refused: parallel-run-ctl exits non-zero (got {result.returncode})")
        checks.expect("target_match_rate" in "\n".join(message), "refused: the message names target_match_rate")
        time.sleep(0.5)
        after = envoy.ecds_counts()
        checks.expect(after == before, f"refused: parallel-run-ctl did not write the ECDS file (ECDS counters {before} -> {after})")
        # Second line of defence: the same config written straight into the ECDS
        # file, bypassing the CLI, is refused by the filter inside Envoy.
        good_text = envoy.ecds_file.read_text()
        resource = json.loads(good_text)
        # (a new revision, so it differs from anything Envoy has seen: Envoy treats a
        # resource identical to the last one it read as a no-op success)
        set_plugin_config(resource["resources"][0]["typed_config"], dict(broken, revision="demo-3-broken-direct"))
        before = envoy.ecds_counts()
        envoy.write_ecds(json.dumps(resource, indent=2))
        try:
            after = envoy.wait_config_rejected(before)
            print(f"  the same config written straight into the ECDS file (bypassing the CLI): the filter refuses it,\n"
                  f"  Envoy counts update_rejected {before['update_rejected']} -> {after['update_rejected']}"
                  f" (then the file is put back as it was)")
        except AssertionError as err:
            checks.expect(False, f"refused: Envoy refuses the broken config written directly ({err})")
        before = envoy.ecds_counts()
        envoy.write_ecds(good_text)  # so that the next `apply` diffs against the config in use
        envoy.wait_config_applied(before)
        answers = serving_now(envoy)
        print(f"  Envoy still serving the last good config: GET /returns/1..3 -> "
              + ", ".join(f"{n}x {status} from {impl}" for (status, impl), n in sorted(
                  {a: answers.count(a) for a in answers}.items())) + " (getReturn still cut over)")
        checks.expect(answers == [(200, "returns-svc")] * 3,
                      f"refused: Envoy still answers 200 from the candidate (cutover kept): {answers}")
        checks.report("refused")

        heading("4. Rollback: getReturn back to shadow mode (legacy serves it again), audited and confirmed")
        result = ctl(envoy, "rollback", "getReturn", "--reason", "demo: clients got the candidate's 404s")
        print(f"  $ {command_line(result)}  -> exit {result.returncode}")
        for line in ctl_changes(result, limit=6):
            print(f"    {line[:200]}")
        checks.expect(result.returncode == 0 and "Envoy runs revision" in result.stdout,
                      f"rollback: confirmed by Envoy (exit {result.returncode}: {result.stderr[:300]})")
        rollback = with_mode(config, "getReturn", "shadow", "demo-4-rollback-getReturn")
        run_phase("rollback", envoy, legacy, candidate, rollback, "phase-4", TRAFFIC, checks, diffs)
        result = subprocess.run([str(CTL_PATH), "history", "--ecds", str(envoy.ecds_file)],
                                capture_output=True, text=True, timeout=60)
        print("  $ parallel-run-ctl history   (the audit trail, next to the ECDS file)")
        for line in ctl_output(result)[1:]:
            print(f"    {line[:220]}")
        checks.expect(result.returncode == 0 and sum(" FORCED" in line for line in result.stdout.splitlines()) == 1,
                      "rollback: history lists the changes, the forced cutover marked")
        checks.report("rollback")
        completed = True
    finally:
        if envoy is not None:
            envoy.stop()
            if checks.failed or not completed:
                print("\n--- Envoy log tail ---\n" + envoy.log_tail(25))
        legacy.stop()
        candidate.stop()


def main():
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="parallel-run-demo-")
    checks = Checks()
    print("parallel-run demo: a legacy and a candidate Returns API behind Envoy, compared per operation")
    try:
        story(tmp, checks)
    except DemoError as err:
        checks.failed.append(str(err))
        print(f"\nDEMO STOPPED: {err}")
    except (AssertionError, OSError, RuntimeError) as err:
        checks.failed.append(repr(err))
        print(f"\nDEMO STOPPED: {err}")
    finally:
        if os.environ.get("DEMO_KEEP"):
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    heading(f"5. Result ({time.monotonic() - started:.0f}s)")
    if checks.failed:
        print(f"  DEMO FAILED: {len(checks.failed)} expectation(s) did not hold:")
        for what in checks.failed:
            print(f"   - {what}")
        return 1
    print("  all expectations held: shadow counts and comparisons, the readiness guard, a forced and audited "
          "cutover of getReturn alone, refused bad config, rollback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
