"""`parallel-run-ctl cutover / rollback / set-mode / history / status` against a
real Envoy (ECDS), real backends on 127.0.0.1: traffic moves when a READY
operation is cut over, the audit record carries the evidence, rollback moves
it back; a push Envoy refuses is reported as refused and `status` shows what
Envoy really runs; the readiness guard refuses a not-ready operation and
`--force` is recorded; two operators cutting over at once never lose a change.
"""

import json
import subprocess
import time

from harness import CTL_PATH, WINDOW_START_S, http, json_response, wait_ready, wait_until

MIN_SAMPLES = 20

CONFIG = {
    "revision": "guarded-1",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    # READY is the filter's windowed rule, judged at once over a window longer
    # than the test: 25 of 25 matched has a lower bound of 86.7% >= 80%.
    "defaults": {"mode": "shadow", "target_match_rate": 0.8, "min_samples": MIN_SAMPLES,
                 "compare": {"ignore_headers": ["x-impl"]},
                 "readiness": {"window_s": 60, "ready_after_s": 0}},
    "operations": [
        {"id": "getItem", "method": "GET", "path": "/items/{id}"},
        {"id": "getOrder", "method": "GET", "path": "/orders/{id}"},
        {"id": "getUser", "method": "GET", "path": "/users/{id}"},
        {"id": "listItems", "method": "GET", "path": "/items", "mode": "legacy"},
    ],
}
PATHS = {"getItem": "/items/", "getOrder": "/orders/", "getUser": "/users/"}


def handler(name, differs=()):
    """Both sides answer the same JSON (with x-impl naming the side), except
    the candidate for the operations in `differs`, which it gets wrong."""

    def handle(request):
        path = request.path.split("?")[0]
        wrong = name == "candidate" and any(path.startswith(PATHS[op]) for op in differs)
        return json_response({"path": path, "v": 2 if wrong else 1}, headers=[("x-impl", name)])

    return handle


def ctl(*args, timeout=60):
    assert CTL_PATH.exists(), f"{CTL_PATH} not found: cargo build --release -p parallel-run-ctl"
    return subprocess.run([str(CTL_PATH), *args], capture_output=True, text=True, timeout=timeout)


def start(backend, envoy, differs=()):
    legacy = backend(handler("legacy"), name="legacy")
    candidate = backend(handler("candidate", differs), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=CONFIG, ecds=True)
    time.sleep(WINDOW_START_S)
    return proxy, legacy, candidate


def where(proxy, ecds_file):
    return ["--ecds", str(ecds_file), "--admin", proxy.admin_url()]


def served_by(proxy, path):
    status, headers, _ = http("GET", proxy.url(path))
    assert status == 200, (path, status)
    return headers.get("x-impl")


def drive(proxy, op, count=MIN_SAMPLES + 5):
    """`count` requests to `op`, then waits until every shadow has an outcome."""
    prefix = f"wasmcustom.parallel_run.operation.{op}."
    before = proxy.stats(filter="^" + prefix.replace(".", r"\.") + "shadowed$").get(prefix + "shadowed", 0)
    for n in range(count):
        assert http("GET", proxy.url(f"{PATHS[op]}{n}"))[0] == 200

    def judged():
        s = proxy.stats(filter="^" + prefix.replace(".", r"\."))
        shadowed = s.get(prefix + "shadowed", 0)
        outcomes = sum(s.get(prefix + k, 0) for k in ("matched", "unmatched", "failed", "abandoned"))
        return shadowed >= before + count and outcomes == shadowed

    wait_until(judged, timeout=15, message=f"{op}: every shadow judged")


def audit_records(ecds_file):
    log = ecds_file.with_name(ecds_file.stem + ".audit.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def plugin_config(ecds_file):
    resource = json.loads(ecds_file.read_text())
    return json.loads(resource["resources"][0]["typed_config"]["config"]["configuration"]["value"])


def modes(ecds_file):
    config = plugin_config(ecds_file)
    default = config.get("defaults", {}).get("mode", "legacy")
    return {op["id"]: op.get("mode", default) for op in config["operations"]}


def test_cutover_moves_traffic_is_audited_with_evidence_and_rolls_back(backend, envoy):
    proxy, legacy, candidate = start(backend, envoy)
    ecds = proxy.ecds_file
    drive(proxy, "getItem")
    wait_ready(proxy, "getItem", comparisons=MIN_SAMPLES)
    assert served_by(proxy, "/items/1") == "legacy"

    result = ctl("cutover", "getItem", "--reason", "matched for a week", *where(proxy, ecds), "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["changes"] == [{"operation": "getItem", "group": None, "from": "shadow", "to": "cutover"}]
    assert report["confirmation"]["outcome"] == "active", report
    assert report["written"] is True and report["force"] is False
    new_revision = report["new_revision"]
    assert new_revision != "guarded-1"
    # Confirmed means Envoy runs it: the next request is served by the candidate,
    # the other operations stay on legacy.
    assert served_by(proxy, "/items/2") == "candidate"
    assert served_by(proxy, "/orders/2") == "legacy"
    assert modes(ecds)["getItem"] == "cutover" and plugin_config(ecds)["revision"] == new_revision
    assert f'configuration applied: revision="{new_revision}"' in proxy.log_text()

    # The audit record: who, why, what, and the evidence at the time.
    records = audit_records(ecds)
    assert [r["kind"] for r in records] == ["baseline", "change", "outcome"]
    change, outcome = records[1], records[2]
    assert change["action"] == "cutover" and change["reason"] == "matched for a week"
    assert change["old_revision"] == "guarded-1" and change["new_revision"] == new_revision
    assert change["changes"] == [{"operation": "getItem", "from": "shadow", "to": "cutover"}]
    evidence = change["evidence"][0]
    counters = proxy.stats(filter=r"^wasmcustom\.parallel_run\.operation\.getItem\.")
    assert evidence["verdict"] == "ready" and evidence["operation"] == "getItem"
    assert evidence["comparisons"] >= MIN_SAMPLES and evidence["match_rate"] == 1.0
    assert evidence["comparisons"] <= counters["wasmcustom.parallel_run.operation.getItem.matched"]
    assert evidence["failure_rate"] == 0.0
    assert evidence["basis"] == "window" and evidence["window_evidence"]["ready"] is True
    assert evidence["window_evidence"]["comparisons"] >= MIN_SAMPLES
    assert evidence["summary"].startswith("READY (lower bound "), evidence["summary"]
    assert evidence["min_samples"] == MIN_SAMPLES and evidence["target_match_rate"] == 0.8
    assert change["user"] and change["host"] and change["time"].endswith("Z")
    assert change["force"] is False and change["allow_batch"] is False
    assert json.loads(change["config"])["revision"] == new_revision
    assert outcome["outcome"] == "active" and outcome["new_revision"] == new_revision

    # status reads the mode from Envoy and agrees with the file.
    result = ctl("status", *where(proxy, ecds), "-o", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["live"]["runs_file_revision"] is True
    assert status["live"]["revision"] == new_revision
    by_id = {op["id"]: op for op in status["operations"]}
    assert by_id["getItem"]["live_mode"] == "cutover" == by_id["getItem"]["mode"]
    assert by_id["listItems"]["live_mode"] == "legacy"

    # Rollback: legacy serves again, and history tells the story.
    result = ctl("rollback", "getItem", "--reason", "5xx after the cutover", *where(proxy, ecds))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "getItem: cutover -> shadow" in result.stdout
    assert "Envoy runs revision" in result.stdout
    assert served_by(proxy, "/items/3") == "legacy"
    assert modes(ecds)["getItem"] == "shadow"

    result = ctl("history", "getItem", "--ecds", str(ecds), "-o", "json")
    assert result.returncode == 0, result.stderr
    history = json.loads(result.stdout)["records"]
    assert [(r["action"], r["outcome"]) for r in history] == [("cutover", "active"), ("rollback", "active")]
    assert history[1]["reason"] == "5xx after the cutover"
    result = ctl("history", "--ecds", str(ecds))
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and "cutover guarded-1 -> " in lines[2] and lines[2].endswith("[active]"), lines

    # And back to the cut-over configuration, from the audit log alone.
    result = ctl("rollback", "--to-revision", new_revision, "--reason", "fixed", *where(proxy, ecds), "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["confirmation"]["outcome"] == "active"
    assert served_by(proxy, "/items/4") == "candidate"


def test_a_push_envoy_refuses_is_reported_refused_and_status_shows_the_live_revision(backend, envoy):
    proxy, legacy, candidate = start(backend, envoy)
    ecds = proxy.ecds_file
    # A resource Envoy cannot load (the module is missing) around a valid
    # plugin configuration: the CLI validates the plugin JSON, Envoy refuses
    # the resource. (Put there by hand; the CLI keeps the rest of the file.)
    resource = json.loads(ecds.read_text())
    resource["resources"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = "/nonexistent.wasm"
    before = proxy.ecds_counts()
    proxy.write_ecds(json.dumps(resource, indent=2))
    proxy.wait_config_rejected(before)

    before = proxy.ecds_counts()
    result = ctl("set-mode", "listItems", "shadow", "--reason", "start comparing", *where(proxy, ecds), "-o", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Envoy REFUSED revision" in result.stderr, result.stderr
    assert "update_rejected" in result.stderr and 'Envoy runs revision "guarded-1"' in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report["error"]["kind"] == "refused"
    assert report["confirmation"]["outcome"] == "refused" and report["written"] is True
    after = proxy.ecds_counts()
    assert after["update_rejected"] == before["update_rejected"] + 1, (before, after)
    assert after["update_success"] == before["update_success"]
    assert audit_records(ecds)[-1]["outcome"] == "refused"

    # The file says shadow; Envoy still runs guarded-1, where listItems is legacy.
    result = ctl("status", *where(proxy, ecds), "-o", "json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["revision"] == report["new_revision"]
    assert status["live"]["runs_file_revision"] is False
    assert status["live"]["revision"] == "guarded-1"
    op = {o["id"]: o for o in status["operations"]}["listItems"]
    assert (op["mode"], op["live_mode"], op["file_mode"]) == ("legacy", "legacy", "shadow")
    result = ctl("status", *where(proxy, ecds))
    assert 'live: Envoy runs revision "guarded-1"' in result.stdout, result.stdout
    assert "note: Envoy and " in result.stdout and "listItems runs in legacy, the file says shadow" in result.stdout
    # And Envoy indeed still serves by guarded-1.
    assert served_by(proxy, "/items") == "legacy"
    assert not [r for r in candidate.received if r.path.startswith("/items?") or r.path == "/items"]


def test_the_readiness_guard_refuses_a_not_ready_operation_and_force_is_recorded(backend, envoy):
    proxy, legacy, candidate = start(backend, envoy, differs=("getOrder",))
    ecds = proxy.ecds_file
    drive(proxy, "getOrder")
    wait_ready(proxy, "getOrder", ready=0, comparisons=MIN_SAMPLES + 5)
    before = ecds.read_bytes()
    counts = proxy.ecds_counts()

    result = ctl("cutover", "getOrder", "--reason", "ship it", *where(proxy, ecds))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "getOrder is not READY: below target: lower bound 0.0% < 80.0% over 25 comparisons in 60 s" \
        in result.stderr, result.stderr
    assert "nothing written" in result.stderr
    assert ecds.read_bytes() == before and proxy.ecds_counts() == counts
    assert not ecds.with_name(ecds.stem + ".audit.jsonl").exists()
    # Other refusals name what is wrong, and write nothing either.
    for args, message in [
        (["cutover", "getOrdr"], 'unknown operation "getOrdr": the configuration has getItem, getOrder, getUser, listItems'),
        (["set-mode", "listItems", "candidate"], "listItems: legacy -> candidate skips shadow and cutover"),
        (["cutover", "getItem", "getUser"], "2 cutovers in one command (getItem, getUser)"),
    ]:
        result = ctl(*args, "--reason", "x", *where(proxy, ecds), "-o", "json")
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        assert json.loads(result.stdout)["error"]["message"].startswith(message.split(":")[0])
        assert ecds.read_bytes() == before
    result = ctl("cutover", "getOrder", *where(proxy, ecds))
    assert result.returncode == 2 and "--reason" in result.stderr

    result = ctl("cutover", "getOrder", "--force", "--reason", "the v field is a known, accepted difference",
                 *where(proxy, ecds), "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["force"] is True and report["confirmation"]["outcome"] == "active"
    change = [r for r in audit_records(ecds) if r["kind"] == "change"][-1]
    assert change["force"] is True
    assert change["reason"] == "the v field is a known, accepted difference"
    assert change["overrides"] and change["overrides"][0].startswith("getOrder is not READY: below target")
    assert change["evidence"][0]["verdict"] == "below_target"
    assert change["evidence"][0]["unmatched"] >= MIN_SAMPLES
    assert served_by(proxy, "/orders/1") == "candidate"
    result = ctl("history", "--ecds", str(ecds))
    assert "FORCED" in result.stdout


def test_two_operators_cutting_over_at_once_never_lose_a_change(backend, envoy):
    proxy, legacy, candidate = start(backend, envoy)
    ecds = proxy.ecds_file
    for op in ("getItem", "getOrder"):
        drive(proxy, op)
    stale = 0
    for op in ("getItem", "getOrder"):
        wait_ready(proxy, op, comparisons=MIN_SAMPLES)
    for round_ in range(4):
        # The filter starts an operation's window afresh when its mode
        # changes, so after a rollback it is not READY until new traffic has
        # been judged: later rounds force (recorded), this test is about
        # concurrent writes.
        force = ["--force"] if round_ else []
        procs = {op: subprocess.Popen([str(CTL_PATH), "cutover", op, "--reason", f"round {round_}", *force,
                                       *where(proxy, ecds), "-o", "json"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for op in ("getItem", "getOrder")}
        results = {op: (p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for op, p in procs.items()}
        for p in procs.values():
            p.stdout.close()
            p.stderr.close()
        now = modes(ecds)
        succeeded = [op for op, (code, _, _) in results.items() if code == 0]
        assert succeeded, results
        for op, (code, out, err) in results.items():
            if code == 0:
                # A success is in the file, and live in Envoy.
                assert now[op] == "cutover", (op, now, results)
                assert json.loads(out)["confirmation"]["outcome"] == "active", out
            else:
                # A refusal says why and changed nothing of its own.
                assert code == 1 and "changed since it was read" in err, (op, code, err)
                assert now[op] == "shadow", (op, now)
                stale += 1
        changes = [r for r in audit_records(ecds) if r["kind"] == "change" and r["reason"] == f"round {round_}"]
        assert sorted(c["changes"][0]["operation"] for c in changes) == sorted(succeeded)
        # Each write built on the one before: the revisions form one line.
        chain = [r for r in audit_records(ecds) if r["kind"] in ("baseline", "change")]
        for earlier, later in zip(chain, chain[1:]):
            assert later["old_revision"] == earlier["new_revision"], (earlier, later)
        # Envoy runs the file.
        live = json.loads(ctl("status", *where(proxy, ecds), "-o", "json").stdout)
        assert live["live"]["runs_file_revision"] is True
        result = ctl("rollback", "getItem", "getOrder", "--reason", f"reset {round_}", *where(proxy, ecds))
        assert result.returncode == 0, result.stdout + result.stderr
        assert set(modes(ecds).values()) <= {"shadow", "legacy"}
    print(f"stale refusals over 4 rounds: {stale}")
