"""Evidence on the real Envoy: unmatched comparisons reach a real OTLP/HTTP
receiver (a small http.server on loopback, written here, that stores what it
is sent) as records whose values are redacted, raw only where allowed, with
equal hashes for equal values; a collector that is down or slow never delays
a client and its drops are counted; evidence off makes no callout at all."""

import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import HOST, OPERATION_STATS, free_port, http, json_response, settle, wait_until

KEY = "e2e-evidence-hash-key-0123456789"


class Receiver:
    """An OTLP/HTTP logs receiver: stores every JSON body POSTed to /v1/logs.
    `delay_s` sleeps before answering; `status` is the answer's status."""

    def __init__(self, delay_s=0.0, status=200):
        self.delay_s = delay_s
        self.status = status
        self.bodies = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the base class's naming
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.bodies.append((self.path, self.headers.get("content-type"), body))
                time.sleep(receiver.delay_s)
                reply = b"{}"
                try:
                    self.send_response(receiver.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the filter gave up waiting (its timeout) and closed

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self):
        with self.lock:
            return list(self.bodies)

    def records(self):
        """Every logRecord received, in order."""
        out = []
        for _, _, body in self.posts():
            doc = json.loads(body)
            for resource in doc["resourceLogs"]:
                for scope in resource["scopeLogs"]:
                    out.extend(scope["logRecords"])
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def attributes(record):
    return {a["key"]: a["value"] for a in record["attributes"]}


def kv(value):
    """An OTLP kvlistValue as a dict of plain values."""
    out = {}
    for entry in value["kvlistValue"]["values"]:
        v = entry["value"]
        out[entry["key"]] = next(iter(v.values())) if "kvlistValue" not in v else kv(v)
    return out


def fields(record):
    return [kv(f) for f in attributes(record)["parallel_run.fields"]["arrayValue"]["values"]]


def config(collector, evidence=None, **top):
    operation = {"id": "getReturn", "method": "GET", "path": "/returns/{id}", "mode": "shadow",
                 "name_keys": ["note", "price", "email", "mail"]}
    if evidence is not None:
        operation["evidence"] = evidence
    doc = {
        "revision": "evidence-e2e",
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        "operations": [operation, {"id": "listReturns", "method": "GET", "path": "/returns", "mode": "shadow",
                                   "evidence": {"enabled": False}}],
        **top,
    }
    if collector is not None:
        doc["evidence_collector"] = {"cluster": "otel", "hash_key": KEY, "records_per_minute": 6000,
                                     **collector}
    return doc


def legacy_handler(request):
    rid = request.path.split("/")[-1].split("?")[0]
    return json_response({"email": "ann@example.com", "note": f"note-{rid}", "price": 10, "id": rid})


def candidate_handler(request):
    rid = request.path.split("/")[-1].split("?")[0]
    # The e-mail moved to another member; the note differs; the price is equal.
    return json_response({"mail": "ann@example.com", "note": f"note-{rid}-v2", "price": 10.0, "id": rid})


def counter(proxy, name):
    return proxy.counter(f"{OPERATION_STATS}getReturn.{name}")


def test_unmatched_comparisons_arrive_redacted_raw_only_where_allowed(backend, envoy, wasm_path):
    legacy, candidate = backend(legacy_handler, "legacy"), backend(candidate_handler, "candidate")
    receiver = Receiver()
    try:
        proxy = envoy({"legacy": legacy.port, "candidate": candidate.port, "otel": receiver.port},
                      wasm_path=wasm_path,
                      config=config({}, {"enabled": True, "records_per_minute": 600, "raw_values": ["/note"]}))
        for n in (1, 2):
            status, _, body = http("GET", proxy.url(f"/returns/{n}?email=ann@example.com&page=1"))
            assert status == 200 and b"ann@example.com" in body  # the client's answer is legacy's, untouched
        settle(proxy, 2, "getReturn")
        wait_until(lambda: len(receiver.records()) >= 2, timeout=10, message="2 records at the collector")
        path, content_type, _ = receiver.posts()[0]
        assert (path, content_type) == ("/v1/logs", "application/json")
        raw = b"".join(body for _, _, body in receiver.posts())
        assert b"ann@example.com" not in raw, "a value that was not allowed"
        assert KEY.encode() not in raw
        records = sorted(receiver.records(), key=lambda r: attributes(r)["url.path"]["stringValue"])
        for n, record in zip((1, 2), records):
            attrs = attributes(record)
            assert record["eventName"] == "parallel_run.unmatched"
            assert attrs["parallel_run.operation_id"]["stringValue"] == "getReturn"
            assert attrs["parallel_run.revision"]["stringValue"] == "evidence-e2e"
            assert attrs["parallel_run.serving"]["stringValue"] == "legacy"
            assert attrs["url.path"]["stringValue"] == f"/returns/{n}"
            assert attrs["url.query"]["stringValue"] == "email=&page="
            assert attrs["parallel_run.status.serving"]["intValue"] == "200"
            assert attrs["parallel_run.fields_omitted"]["intValue"] == "0"
            by_path = {f["path"]: f for f in fields(record)}
            assert set(by_path) == {"/email", "/mail", "/note"}, by_path
            # Raw where allowed: the note, both sides.
            assert by_path["/note"]["serving"]["value"] == json.dumps(f"note-{n}")
            assert by_path["/note"]["shadow"]["value"] == json.dumps(f"note-{n}-v2")
            # Redacted elsewhere: type, shape, length, hash; the hash of the
            # moved e-mail is the same on both sides.
            email = by_path["/email"]["serving"]
            assert "value" not in email
            assert (email["type"], email["shape"], email["length"]) == ("string", "text", "15")
            assert by_path["/email"]["shadow"]["type"] == "missing"
            assert by_path["/mail"]["shadow"]["hash"] == email["hash"]
        # Equal values, equal hashes, across records too.
        assert fields(records[0])[0]["serving"]["hash"] == fields(records[1])[0]["serving"]["hash"]
        wait_until(lambda: counter(proxy, "evidence_sent") == 2, timeout=10, message="evidence_sent 2")
        assert counter(proxy, "evidence_dropped") == 0
    finally:
        receiver.stop()


def latencies(proxy, n, path="/returns"):
    out = []
    for i in range(n):
        start = time.monotonic()
        status, _, _ = http("GET", proxy.url(f"{path}/{i}"))
        out.append(time.monotonic() - start)
        assert status == 200
    return out


@pytest.mark.alone  # asserts clients' latency
def test_a_slow_or_down_collector_never_delays_a_client_and_its_drops_are_counted(backend, envoy, wasm_path):
    legacy, candidate = backend(legacy_handler, "legacy"), backend(candidate_handler, "candidate")
    slow = Receiver(delay_s=3.0)
    try:
        evidence = {"enabled": True, "records_per_minute": 600}
        collector = {"timeout_ms": 200, "max_inflight": 1}
        clusters = {"legacy": legacy.port, "candidate": candidate.port}
        with_slow = envoy({**clusters, "otel": slow.port}, wasm_path=wasm_path, config=config(collector, evidence))
        with_down = envoy({**clusters, "otel": free_port()}, wasm_path=wasm_path, config=config(collector, evidence))
        without = envoy({**clusters, "otel": slow.port}, wasm_path=wasm_path, config=config(None))
        rounds = {"slow": [], "down": [], "off": []}
        # Interleaved, so that the machine's load weighs on each alike.
        for _ in range(6):
            rounds["slow"] += latencies(with_slow, 5)
            rounds["down"] += latencies(with_down, 5)
            rounds["off"] += latencies(without, 5)
        medians = {name: statistics.median(values) for name, values in rounds.items()}
        worst = {name: max(values) for name, values in rounds.items()}
        print("client latency medians (s):", medians, "worst:", worst)
        for name in ("slow", "down"):
            # A record waits for nobody: no request came near the collector's
            # 3 s, nor its 200 ms timeout on the client's path.
            assert medians[name] < medians["off"] + 0.05, (name, medians)
            assert worst[name] < 1.0, (name, worst)
        for proxy in (with_slow, with_down):
            settle(proxy, 30, "getReturn")
            wait_until(lambda: counter(proxy, "evidence_dropped") >= 1, timeout=15, message="drops counted")
            assert counter(proxy, "evidence_sent") == 0
        assert slow.posts(), "the slow collector was reached and timed out"
    finally:
        slow.stop()


def test_evidence_off_makes_no_callout(backend, envoy, wasm_path):
    legacy, candidate = backend(legacy_handler, "legacy"), backend(candidate_handler, "candidate")
    receiver = Receiver()
    try:
        # listReturns has evidence off; only getReturn records.
        proxy = envoy({"legacy": legacy.port, "candidate": candidate.port, "otel": receiver.port},
                      wasm_path=wasm_path, config=config({}, {"enabled": True}))
        for _ in range(5):
            assert http("GET", proxy.url("/returns"))[0] == 200
        settle(proxy, 5, "listReturns")
        time.sleep(2.5)  # two ticks at least
        assert receiver.posts() == [], "an operation without evidence posted"
        assert proxy.stats(filter="listReturns.evidence") == {}
        # The same proxy does post for the operation that records evidence.
        assert http("GET", proxy.url("/returns/1"))[0] == 200
        wait_until(lambda: receiver.records(), timeout=10, message="a record for getReturn")
        # A configuration without evidence: no counters, no callout.
        plain = envoy({"legacy": legacy.port, "candidate": candidate.port, "otel": receiver.port},
                      wasm_path=wasm_path, config=config(None))
        before = len(receiver.posts())
        for n in range(5):
            assert http("GET", plain.url(f"/returns/{n}"))[0] == 200
        settle(plain, 5, "getReturn")
        time.sleep(2.5)
        assert len(receiver.posts()) == before
        assert plain.stats(filter="evidence") == {}
    finally:
        receiver.stop()
