"""`parallel-run-ctl evidence serve`, `evidence list/show` and `suggest`, end
to end: the real CLI binary receiving OTLP/HTTP JSON records over loopback
(written here in the evidence record format, EVIDENCE-SPEC / README
"Evidence records"), a real Envoy with the built filter learning noise, and
real backends. `suggest` turns the noise gauge and the records into a new
file; applied, it makes the operations that differed match.
"""

import json
import re
import signal
import subprocess
import time

import pytest

from harness import CTL_PATH, http, json_response, settle, wait_until

STOP_TIMEOUT_S = 10


# ---------------------------------------------------------------------------
# records in the specification's format


def s(text):
    return {"stringValue": text}


def i(number):
    return {"intValue": str(number)}


def kv(**members):
    return {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in members.items()]}}


def side(kind, length, hash_, shape=None, value=None):
    members = {"type": s(kind)}
    if shape:
        members["shape"] = s(shape)
    members["length"] = i(length)
    members["hash"] = s(hash_)
    if value is not None:
        members["value"] = s(value)
    return kv(**members)


def field(axis, path, serving, shadow, **extra):
    return kv(axis=s(axis), path=s(path), serving=serving, shadow=shadow, **extra)


def record(operation, request_id, fields, revision="e2e-1", path="/x/1", outcome="unmatched", omitted=0):
    attributes = {
        "parallel_run.operation_id": s(operation),
        "parallel_run.revision": s(revision),
        "parallel_run.request_id": s(request_id),
        "parallel_run.outcome": s(outcome),
        "parallel_run.serving": s("legacy"),
        "http.request.method": s("GET"),
        "url.path": s(path),
        "url.query": s("page="),
        "parallel_run.status.serving": i(200),
        "parallel_run.status.shadow": i(200),
        "parallel_run.fields_omitted": i(omitted),
        "parallel_run.fields": {"arrayValue": {"values": fields}},
    }
    return {
        "timeUnixNano": str(time.time_ns()),
        "severityNumber": 13,
        "severityText": "WARN",
        "eventName": "parallel_run.unmatched" if outcome == "unmatched" else "parallel_run.failed",
        "body": s(f"{outcome} {operation}"),
        "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
    }


def logs(records):
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": s("parallel-run")}]},
        "scopeLogs": [{"scope": {"name": "parallel-run", "version": "0.1.0"}, "logRecords": records}],
    }]}


def timestamp_field(serving_hash, shadow_hash, value=None):
    return field("body", "/at", side("string", 27, serving_hash, "iso8601", value),
                 side("string", 27, shadow_hash, "iso8601"))


def permutation_field():
    return field("body", "/items", side("array", 3, "a1a1a1a1"), side("array", 3, "b2b2b2b2"),
                 hint=s("permutation"), array_key=s("/id"))


# ---------------------------------------------------------------------------
# the receiver


class Receiver:
    """`parallel-run-ctl evidence serve` on a free loopback port."""

    def __init__(self, db, *options):
        assert CTL_PATH.exists(), f"{CTL_PATH} not found: cargo build --release -p parallel-run-ctl"
        self.db = db
        self.proc = subprocess.Popen([str(CTL_PATH), "evidence", "serve", "--db", str(db),
                                      "--listen", "127.0.0.1:0", *options],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1/logs", line)
        assert found, f"no listening line: {line!r}"
        self.url = found.group(1)

    def post(self, document, content_type="application/json"):
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        status, _, answer = http("POST", self.url + "/v1/logs", {"content-type": content_type}, body)
        return status, answer.decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        stdout, stderr = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode, stdout, stderr


@pytest.fixture
def receiver(tmp):
    started = []

    def make(*options, name="evidence.db"):
        r = Receiver(tmp / name, *options)
        started.append(r)
        return r

    yield make
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


def ctl(*args):
    return subprocess.run([str(CTL_PATH), *args], capture_output=True, text=True, timeout=60)


def ctl_json(*args):
    done = ctl(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------


def test_serve_stores_spec_records_refuses_bad_requests_whole_and_stops_on_sigterm(receiver):
    r = receiver("--max-body-bytes", "65536", "--max-records-per-request", "3", "--max-records", "4")
    first = record("getReturn", "req-1", [timestamp_field("9f2c4e1a0b3d5e7f", "0b3d5e7f9f2c4e1a",
                                                          value='"2026-12-01T10:00:00.000001Z"')])
    assert r.post(logs([first])) == (200, "{}")

    # A request with one good record and one malformed: 400 naming where, nothing kept.
    bad = record("getReturn", "req-bad", [field("body", "/x", kv(length=i(1)), side("string", 1, "aa"))])
    status, answer = r.post(logs([record("getReturn", "req-2", []), bad]))
    assert status == 400
    assert json.loads(answer)["message"] == ("resourceLogs[0].scopeLogs[0].logRecords[1]"
                                             ".attributes[parallel_run.fields][0].serving: type is missing")
    status, answer = r.post(b'{"resourceLogs": [')
    assert status == 400 and json.loads(answer)["message"].startswith("body: invalid JSON"), answer
    # Bounds: records per request, body size; protobuf is not read.
    status, answer = r.post(logs([record("getReturn", f"q{n}", []) for n in range(4)]))
    assert (status, json.loads(answer)["message"]) == (413, "more than 3 records in one request")
    status, _ = r.post(logs([record("getReturn", "big", [], path="/" + "x" * 70000)]))
    assert status == 413
    assert r.post(b"\x0a\x00", content_type="application/x-protobuf")[0] == 415

    listed = ctl_json("evidence", "list", "--db", str(r.db))
    assert [x["request_id"] for x in listed["records"]] == ["req-1"]
    assert (listed["stored"], listed["pruned"]) == (1, 0)

    # The side-by-side view: serving and shadow next to each other, the differing hash marked,
    # the value only where exported.
    shown = ctl("evidence", "show", "getReturn", "--db", str(r.db))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"record {listed['records'][0]['id']}: getReturn unmatched at ")
    assert "request: GET /x/1?page= (request id \"req-1\")" in lines
    head = next(line for line in lines if "FIELD" in line)
    assert head.index("LEGACY (SERVING)") < head.index("CANDIDATE (SHADOW)")
    hash_row = next(line for line in lines if " hash " in line)
    assert hash_row.startswith("*") and hash_row.index("9f2c4e1a0b3d5e7f") < hash_row.index("0b3d5e7f9f2c4e1a")
    value_row = next(line for line in lines if " value " in line)
    assert '"2026-12-01T10:00:00.000001Z"' in value_row and "(redacted)" in value_row
    by_id = ctl_json("evidence", "show", str(listed["records"][0]["id"]), "--db", str(r.db))
    assert by_id["record"]["fields"][0]["serving"] == {"type": "string", "shape": "iso8601", "length": 27,
                                                      "hash": "9f2c4e1a0b3d5e7f",
                                                      "value": '"2026-12-01T10:00:00.000001Z"'}
    assert by_id["record"]["fields"][0]["shadow"] == {"type": "string", "shape": "iso8601", "length": 27,
                                                     "hash": "0b3d5e7f9f2c4e1a"}
    missing = ctl("evidence", "show", "nosuchop", "--db", str(r.db))
    assert missing.returncode == 1 and "no record of operation \"nosuchop\"" in missing.stderr

    # Past --max-records the oldest go, counted.
    for batch in (["a1", "a2", "a3"], ["b1", "b2"]):
        assert r.post(logs([record("listReturns", q, []) for q in batch]))[0] == 200
    listed = ctl_json("evidence", "list", "--db", str(r.db), "-n", "0")
    assert [x["request_id"] for x in listed["records"]] == ["b2", "b1", "a3", "a2"]
    assert (listed["stored"], listed["pruned"]) == (4, 2)
    only = ctl_json("evidence", "list", "listReturns", "--db", str(r.db), "-n", "1", "--since", "10m")
    assert [x["request_id"] for x in only["records"]] == ["b2"]

    code, stdout, stderr = r.stop()
    assert code == 0, stderr
    assert "requests, 6 records stored, 5 requests refused, 2 old records pruned" in stdout, stdout
    assert stderr.count("evidence serve: refused a request") == 5, stderr


def test_serve_warns_when_not_on_loopback(tmp):
    # Binding every address is refused nowhere, but said loudly; the test
    # sends it nothing and stops it at once.
    proc = subprocess.Popen([str(CTL_PATH), "evidence", "serve", "--db", str(tmp / "w.db"), "--listen", "0.0.0.0:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert "warning: listening on 0.0.0.0:0, not loopback" in first, first
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=STOP_TIMEOUT_S)
    assert proc.returncode == 0


def plugin_config(revision="e2e-1"):
    return {
        "revision": revision,
        "route_header": "x-parallel-run-cluster",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "defaults": {"mode": "legacy", "shadow_timeout_ms": 3000, "name_keys": True},
        "operations": [
            {"id": "stamped", "method": "GET", "path": "/stamped/{id}", "mode": "shadow", "noise_percent": 100},
            {"id": "listed", "method": "GET", "path": "/listed/{id}", "mode": "shadow"},
        ],
    }


ITEMS = [{"id": n, "name": f"item {n}"} for n in (1, 2, 3)]
OPERATIONS = ("stamped", "listed")


def stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 1_000_000:06d}Z"


def answer(reverse):
    """Both backends: `stamped` answers a fresh timestamp (it differs on every
    call), `listed` the same items, reversed on the candidate (`reverse`)."""
    def handle(request):
        n = int(request.path.rsplit("/", 1)[1])
        if request.path.startswith("/stamped/"):
            return json_response({"id": n, "at": stamp()})
        return json_response({"id": n, "items": list(reversed(ITEMS)) if reverse else ITEMS})
    return handle


def traffic(proxy, count, first=0, tag=""):
    """`count` requests to each of OPERATIONS, with request ids `<op>-<tag><n>`."""
    for n in range(count):
        for op in OPERATIONS:
            assert http("GET", proxy.url(f"/{op}/{first + n}"), {"x-request-id": f"{op}-{tag}{n}"})[0] == 200


def test_suggest_proposes_a_mask_and_a_keyed_unordered_array_and_applying_them_makes_both_match(
        tmp, backend, envoy, receiver):
    legacy = backend(answer(False), name="legacy")
    candidate = backend(answer(True), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=plugin_config(), ecds=True)
    before = 12
    traffic(proxy, before)
    for op in OPERATIONS:
        check(settle(proxy, before, op), before, matched=0)
    # The filter learns /at as legacy's own noise (repeats of the served request).
    wait_until(lambda: proxy.stats(filter="noise_path").get(
        "wasmcustom.parallel_run.operation.stamped.noise_path./at") == 1, timeout=20, message="noise_path./at")

    # What the filter would have sent for two of those comparisons.
    r = receiver()
    assert r.post(logs([
        record("stamped", "stamped-3", [timestamp_field("1111aaaa", "2222bbbb")], path="/stamped/3"),
        record("stamped", "stamped-4", [timestamp_field("3333cccc", "4444dddd")], path="/stamped/4"),
        record("listed", "listed-5", [permutation_field()], path="/listed/5"),
    ])) == (200, "{}")

    live = proxy.ecds_file.read_bytes()
    out = tmp / "proposed.json"
    done = ctl("suggest", "--config", str(proxy.ecds_file), "--admin", proxy.admin_url(),
               "--evidence-db", str(r.db), "--write", str(out))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "stamped:\n  + compare.masks += \"iso8601\"\n" in text, text
    assert "evidence: 2 records, revision \"e2e-1\", request ids \"stamped-3\", \"stamped-4\"" in text, text
    assert "listed:\n  + compare.unordered_arrays += {\"key\":\"/id\",\"path\":\"/items\"}\n" in text, text
    # The noise field is covered by the mask: not ignored on top of it.
    assert "stamped /at: learned noise, but the proposed mask \"iso8601\" covers it" in text, text
    assert proxy.ecds_file.read_bytes() == live, "suggest changed the live file"

    report = ctl_json("suggest", "--config", str(proxy.ecds_file), "--admin", proxy.admin_url(),
                      "--evidence-db", str(r.db))
    proposals = {(p["operation"], p["member"]): p for p in report["proposals"]}
    assert set(proposals) == {("stamped", "compare.masks"), ("listed", "compare.unordered_arrays")}
    assert proposals[("listed", "compare.unordered_arrays")]["value"] == [{"path": "/items", "key": "/id"}]
    assert proposals[("stamped", "compare.masks")]["evidence"]["request_ids"] == ["stamped-3", "stamped-4"]
    assert report["sources"]["admin"]["noise_fields"] == 1
    # Without the mask's evidence, the learned noise alone proposes the ignore path.
    noise_only = ctl_json("suggest", "stamped", "--config", str(proxy.ecds_file), "--admin", proxy.admin_url())
    assert [(p["member"], p["entry"], p["evidence"]["source"]) for p in noise_only["proposals"]] == [
        ("compare.ignore_json_paths", "/at", "noise")]

    # The operator applies the reviewed file; both operations now match.
    applied = ctl("apply", str(out), "--ecds", str(proxy.ecds_file), "--admin", proxy.admin_url(),
                  "--reason", "suggested rules", "--force")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = 10
    traffic(proxy, after, first=100, tag="after-")
    for op in OPERATIONS:
        check(settle(proxy, before + after, op), before + after, matched=after)
    # Nothing left to propose: the new file already holds the rules.
    again = ctl_json("suggest", "--config", str(proxy.ecds_file), "--evidence-db", str(r.db))
    assert again["proposals"] == [], again


def check(c, total, matched):
    """The outcome counters (noise repeats run beside them, on their own clock)."""
    seen = {k: c[k] for k in ("requests", "served_legacy", "shadowed", "matched", "unmatched", "failed")}
    assert seen == {"requests": total, "served_legacy": total, "shadowed": total, "matched": matched,
                    "unmatched": total - matched, "failed": 0}, c


def test_suggest_needs_a_source_and_a_known_operation(tmp):
    config = tmp / "c.json"
    config.write_text(json.dumps(plugin_config()))
    done = ctl("suggest", "--config", str(config))
    assert done.returncode == 2 and "suggest needs --admin URL" in done.stderr, done.stderr
    empty = tmp / "e.db"
    r = Receiver(empty)
    r.stop()
    done = ctl("suggest", "nosuch", "--config", str(config), "--evidence-db", str(empty))
    assert done.returncode == 1 and "no operation \"nosuch\"" in done.stderr, done.stderr


def test_the_filters_own_records_reach_evidence_serve_and_suggest_makes_the_operations_match(
        tmp, backend, envoy, receiver):
    """The whole loop with nothing written by hand: the filter samples its
    unmatched comparisons, posts them to the real `evidence serve`, values
    redacted; `suggest` reads them back, proposes the iso8601 mask and the
    keyed unordered array; applied, both operations match."""
    legacy = backend(answer(False), name="legacy")
    candidate = backend(answer(True), name="candidate")
    r = receiver()
    config = plugin_config("e2e-join")
    config["evidence_collector"] = {"cluster": "otel", "hash_key": "e2e-join-hash-key-0123456789"}
    for op in config["operations"]:
        op.pop("noise_percent", None)
        op["evidence"] = {"enabled": True, "records_per_minute": 60}
    otel_port = int(r.url.rsplit(":", 1)[1])
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port, "otel": otel_port}, config=config, ecds=True)
    before = 6
    traffic(proxy, before)
    for op in OPERATIONS:
        check(settle(proxy, before, op), before, matched=0)

    def stored():
        listed = ctl_json("evidence", "list", "--db", str(r.db), "-n", "0")
        return listed if len(listed["records"]) >= 2 * before else None
    listed = wait_until(stored, timeout=20, message="the filter's records in evidence serve")
    ops = {rec["operation"] for rec in listed["records"]}
    assert ops == {"stamped", "listed"}, listed
    # Redacted: the differing timestamp is a shape, a length and a hash, no value.
    [at] = ctl_json("evidence", "show", "stamped", "--db", str(r.db))["record"]["fields"]
    assert at["path"] == "/at" and at["serving"]["shape"] == at["shadow"]["shape"] == "iso8601", at
    assert "value" not in at["serving"] and "value" not in at["shadow"], at
    assert at["serving"]["hash"] != at["shadow"]["hash"], at
    stored_bytes = b"".join(p.read_bytes() for p in r.db.parent.glob(r.db.name + "*"))  # the file and its WAL
    assert b"item 1" not in stored_bytes and b"item 2" not in stored_bytes

    out = tmp / "proposed.json"
    done = ctl("suggest", "--config", str(proxy.ecds_file), "--evidence-db", str(r.db), "--write", str(out))
    assert done.returncode == 0, done.stderr
    assert "stamped:\n  + compare.masks += \"iso8601\"\n" in done.stdout, done.stdout
    assert "listed:\n  + compare.unordered_arrays += {\"key\":\"/id\",\"path\":\"/items\"}\n" in done.stdout, done.stdout

    applied = ctl("apply", str(out), "--ecds", str(proxy.ecds_file), "--admin", proxy.admin_url(),
                  "--reason", "suggested rules", "--force")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = 6
    traffic(proxy, after, first=100, tag="after-")
    for op in OPERATIONS:
        check(settle(proxy, before + after, op), before + after, matched=after)
