"""Two implementations of a tiny "Returns" API, for the parallel-run demo.

`legacy` is the system being replaced; `candidate` is its rewrite. Both serve
the same fixed data set (returns 1..50) and differ the way real rewrites do:

Differences the comparator must tolerate (they still MATCH):
  - JSON: the candidate sorts keys and pretty-prints; legacy writes compact
    JSON in its own key order.
  - Numbers: the candidate writes whole amounts as floats (25.0) where legacy
    writes integers (25).
  - Headers: each sends its own `Date` and `Server` (ignored by default) and
    an `x-implementation` header naming itself (the demo configuration
    ignores it with compare.ignore_headers).

Real, deterministic bugs in the candidate (they must show as UNMATCHED):
  - getReturn: returns whose id is divisible by 7 were migrated with an
    unmapped status, so the candidate says "PENDING" (json path /status).
  - getReturn: returns 48 and 49 were not migrated yet: the candidate answers
    404 where legacy answers 200 (status and body differ).
  - listReturns: the candidate orders a customer's returns by creation time,
    legacy by id. Returns imported from the previous system (id divisible by
    9) are backdated, so for customers that own one the order differs.
  - getLabel (text/plain): the label prints the date the return was created.
    Legacy prints it in UTC, the candidate in Europe/Berlin (UTC+1 in
    November), so for returns created at 23:xx UTC the date is a day later.

getRefund has no bug: it is what a READY operation looks like.

POST /returns creates a return in that implementation's own store (ids from
51 up), as two real services with separate databases would. (createReturn
stays in mode "legacy", so only legacy's store grows; the demo creates
returns for customers W01..W05 and lists only C01..C10.)

Run standalone for a manual look, from the repository root:
    .venv/bin/python -m demo.backends      # prints the two ports, Ctrl-C stops
"""

import json
import re
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from email.utils import formatdate

from testbed.backend import Backend, Response

SHADOW_MARKER = "x-parallel-run-shadow"  # core/src/http.rs: set on every shadow copy
IDS = range(1, 51)
STATUSES = ["REQUESTED", "RECEIVED", "INSPECTED", "REFUNDED", "REJECTED"]
REASONS = ["damaged", "wrong_size", "not_as_described", "changed_mind"]
CUSTOMERS = [f"C{n:02d}" for n in range(1, 11)]
# Customers who create returns during the demo. Writes are not shadowed and the
# two stores are separate, so lists of these customers differ by design; the
# demo's listReturns traffic asks for CUSTOMERS only.
NEW_CUSTOMERS = [f"W{n:02d}" for n in range(1, 6)]
BERLIN = timezone(timedelta(hours=1))  # CET; all created dates are in November

# Which operation a request belongs to, mirroring demo/config.json; used to
# count what each backend received per operation.
OPERATIONS = [
    ("getReturn", "GET", re.compile(r"^/returns/[^/]+$")),
    ("listReturns", "GET", re.compile(r"^/returns/?$")),
    ("createReturn", "POST", re.compile(r"^/returns/?$")),
    ("getLabel", "GET", re.compile(r"^/returns/[^/]+/label$")),
    ("getRefund", "GET", re.compile(r"^/returns/[^/]+/refund$")),
]


def operation_of(method, path):
    """The demo operation id of a request (path may carry a query), or None."""
    path = path.split("?", 1)[0]
    for op_id, op_method, pattern in OPERATIONS:
        if method == op_method and pattern.match(path):
            return op_id
    return None


def _created(rid):
    """Creation time of return `rid`: deterministic. Every 6th return was created
    at 23:xx UTC (the label bug); every 9th was imported from the previous
    system and backdated (the list-order bug)."""
    if rid % 9 == 0:
        return datetime(2025, 6, 1, 8, 0, tzinfo=timezone.utc) + timedelta(days=rid)
    hour = 23 if rid % 6 == 0 else (rid * 5) % 23
    return datetime(2026, 11, 1, hour, (rid * 7) % 60, tzinfo=timezone.utc) + timedelta(days=rid // 3)


def _amount(rid):
    """Refund amount: whole for most returns (where 25 vs 25.0 shows), cents for some."""
    return round(10 + rid * 3 + (0.99 if rid % 4 == 0 else 0), 2)


def seed_returns():
    """The fixed data set, returns 1..50, as legacy stores it."""
    data = {}
    for rid in IDS:
        data[rid] = {
            "id": rid,
            "customer": CUSTOMERS[(rid - 1) % len(CUSTOMERS)],
            "status": STATUSES[rid % len(STATUSES)],
            "reason": REASONS[rid % len(REASONS)],
            "created": _created(rid).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "refund": {"amount": _amount(rid), "currency": "EUR"},
            "items": [{"sku": f"SKU-{(rid * 37) % 1000:04d}", "quantity": 1 + rid % 3}],
        }
    return data


class ReturnsService:
    """One implementation: a store, a JSON writer, and its quirks."""

    def __init__(self, name, server, candidate):
        self.name = name
        self.server = server
        self.candidate = candidate
        self._lock = threading.Lock()
        self._returns = seed_returns()
        # Refunds live in their own table, migrated completely (getRefund has no bug).
        self._refunds = {rid: {"return_id": rid, "amount": r["refund"]["amount"], "currency": r["refund"]["currency"],
                               "method": "original_payment", "status": "DONE" if r["status"] == "REFUNDED" else "OPEN"}
                         for rid, r in self._returns.items()}
        if candidate:
            for rid in (48, 49):  # not migrated yet
                del self._returns[rid]
            for rid, ret in self._returns.items():
                if rid % 7 == 0:  # unmapped status from the migration
                    ret["status"] = "PENDING"
        self._next_id = max(IDS) + 1

    # -- serialisation

    def _json(self, obj, status=200, extra=()):
        if self.candidate:
            body = json.dumps(_floats(obj), sort_keys=True, indent=2) + "\n"
        else:
            body = json.dumps(obj, separators=(",", ":"))
        return Response(status, self._headers("application/json") + list(extra), body.encode())

    def _headers(self, content_type):
        return [("content-type", content_type), ("date", formatdate(usegmt=True)),
                ("server", self.server), ("x-implementation", self.server)]

    def _not_found(self, what):
        return self._json({"error": "not_found", "message": f"{what} not found"}, 404)

    # -- the API

    def handle(self, request):
        parts = urllib.parse.urlsplit(request.path)
        segments = [s for s in parts.path.split("/") if s]
        query = urllib.parse.parse_qs(parts.query)
        if not segments or segments[0] != "returns":
            return self._not_found("resource")
        if len(segments) == 1:
            if request.method == "GET":
                return self.list_returns(query.get("customer", [None])[0])
            if request.method == "POST":
                return self.create_return(request.body)
            return self._json({"error": "method_not_allowed"}, 405)
        if request.method != "GET":
            return self._json({"error": "method_not_allowed"}, 405)
        try:
            rid = int(segments[1])
        except ValueError:
            return self._not_found("return")
        if segments[2:] == ["refund"]:
            with self._lock:
                refund = dict(self._refunds[rid]) if rid in self._refunds else None
            return self._json(refund) if refund else self._not_found(f"refund for return {rid}")
        with self._lock:
            ret = json.loads(json.dumps(self._returns[rid])) if rid in self._returns else None
        if ret is None:
            return self._not_found(f"return {rid}")
        if len(segments) == 2:
            return self._json(self._public(ret))
        if segments[2:] == ["label"]:
            return self.label(ret)
        return self._not_found("resource")

    def _public(self, ret):
        if self.candidate:  # the rewrite nests differently internally, but renders the same document
            return {"items": ret["items"], "refund": ret["refund"], "id": ret["id"], "status": ret["status"],
                    "customer": ret["customer"], "created": ret["created"], "reason": ret["reason"]}
        return ret

    def list_returns(self, customer):
        with self._lock:
            rows = [r for r in self._returns.values() if customer is None or r["customer"] == customer]
            rows = json.loads(json.dumps(rows))
        if self.candidate:
            rows.sort(key=lambda r: r["created"])  # the rewrite orders by creation time
        else:
            rows.sort(key=lambda r: r["id"])
        items = [{"id": r["id"], "created": r["created"], "amount": r["refund"]["amount"]} for r in rows]
        return self._json({"customer": customer, "count": len(items), "returns": items},
                          extra=[("x-total-count", str(len(items)))])

    def create_return(self, body):
        try:
            doc = json.loads(body or b"{}")
            customer = str(doc["customer"])
            items = list(doc.get("items") or [])
            reason = str(doc.get("reason", "changed_mind"))
        except (ValueError, KeyError, TypeError):
            return self._json({"error": "bad_request", "message": "need {customer, items, reason}"}, 400)
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            ret = {"id": rid, "customer": customer, "status": "REQUESTED", "reason": reason,
                   "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "refund": {"amount": 0, "currency": "EUR"}, "items": items}
            self._returns[rid] = ret
        return self._json(self._public(json.loads(json.dumps(ret))), 201, [("location", f"/returns/{rid}")])

    def label(self, ret):
        created = datetime.strptime(ret["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        tz = BERLIN if self.candidate else timezone.utc  # the candidate prints local dates
        lines = [
            "RETURN LABEL",
            f"Return:   R-{ret['id']:06d}",
            f"Customer: {ret['customer']}",
            f"Created:  {created.astimezone(tz).strftime('%Y-%m-%d')}",
            "Ship to:  Returns Center, Dock 4, 12345 Example City",
            "Items:    " + ", ".join(f"{i['quantity']}x {i['sku']}" for i in ret["items"]),
        ]
        body = ("\n".join(lines) + "\n").encode()
        return Response(200, self._headers("text/plain; charset=utf-8"), body)


def _floats(obj):
    """Whole numbers (not ids or counts) as floats, as the candidate's serializer writes them."""
    if isinstance(obj, dict):
        return {k: (float(v) if k == "amount" and isinstance(v, int) else _floats(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_floats(v) for v in obj]
    return obj


class ReturnsBackend(Backend):
    """A harness Backend serving one implementation, with per-operation request counts."""

    def __init__(self, name, candidate, port=0):
        self.service = ReturnsService(name, "returns-svc/1.0.0" if candidate else "returns-legacy/4.2.1", candidate)
        super().__init__(self.service.handle, name=name, port=port)

    def counts(self):
        """{operation: {"live": n, "shadow": n}} of the requests received so far."""
        out = {}
        for request in self.received:
            op = operation_of(request.method, request.path) or "(other)"
            kind = "shadow" if request.header(SHADOW_MARKER) is not None else "live"
            out.setdefault(op, {"live": 0, "shadow": 0})[kind] += 1
        return out


def start_backends():
    """(legacy, candidate), both listening on free 127.0.0.1 ports."""
    legacy = ReturnsBackend("legacy", candidate=False)
    try:
        candidate = ReturnsBackend("candidate", candidate=True)
    except BaseException:
        legacy.stop()
        raise
    return legacy, candidate


def expected_differences():
    """What the candidate answers differently, computed by asking both
    implementations directly (no proxy): {operation: {input: axes}}, where
    input is an id (or a customer for listReturns) and axes a subset of
    {"status", "headers", "body"}. Inputs missing from the map answer the same."""
    legacy, candidate = ReturnsService("legacy", "l", False), ReturnsService("candidate", "c", True)

    def axes(path):
        a, b = legacy.handle(_Get(path)), candidate.handle(_Get(path))
        found = {"status"} if a.status != b.status else set()
        ignored = {"date", "server", "x-implementation", "content-length"}  # see demo/config.json
        if sorted(h for h in a.headers if h[0] not in ignored) != sorted(h for h in b.headers if h[0] not in ignored):
            found.add("headers")
        try:
            same_body = json.loads(a.body) == json.loads(b.body)  # 25 == 25.0 in Python too
        except ValueError:
            same_body = a.body == b.body
        if not same_body:
            found.add("body")
        return found

    paths = {
        "getReturn": {rid: f"/returns/{rid}" for rid in IDS},
        "listReturns": {c: f"/returns?customer={c}" for c in CUSTOMERS},
        "getLabel": {rid: f"/returns/{rid}/label" for rid in IDS},
        "getRefund": {rid: f"/returns/{rid}/refund" for rid in IDS},
    }
    out = {}
    for op, by_input in paths.items():
        out[op] = {key: found for key, path in by_input.items() if (found := axes(path))}
    return out


class _Get:
    method = "GET"
    body = b""

    def __init__(self, path):
        self.path = path


if __name__ == "__main__":
    legacy, candidate = start_backends()
    print(f"legacy    http://127.0.0.1:{legacy.port}/returns/7")
    print(f"candidate http://127.0.0.1:{candidate.port}/returns/7")
    print("differences:", expected_differences())
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        legacy.stop()
        candidate.stop()
