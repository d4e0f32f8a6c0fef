"""The shipped bootstraps keep routing in the proxy's hands: a client can choose
neither a backend nor an operation, whether the wasm VM is alive, dead or
absent, and tricks in the path cannot route around a cutover.

Real Envoy from envoy/envoy.yaml and envoy/envoy-ecds.yaml, real backends on
127.0.0.1. The dead VM is a module that traps on every request (wasm_stub.py):
the VM of each worker dies on its first request, as it would after any guest
fault, and FAIL_OPEN lets the following requests through without the filter.
"""

import copy
import itertools
import json
import socket
from http.client import HTTPConnection

import pytest

from harness import (FILTER_NAME, HCM, HEADER_GUARD, HOST, OPERATION_HEADER, SHADOW_MARKER, connection_manager,
                     free_port, keep_raw_paths, operation_counters, trust_operation_header, wait_until)
from wasm_stub import TRAP_LOG, write_trapping_module

ROUTE_HEADER = "x-parallel-run-cluster"
UNKNOWN = "wasmcustom.parallel_run.unknown_operation.requests"
# A cluster that exists in Envoy but that no configuration routes to: a request
# arriving there was routed by the client.
BYSTANDER = "returns-v2"
FORGED_MARKER = "forged-marker"


def operation(op_id, method, path, mode, **extra):
    return {"id": op_id, "method": method, "path": path, "mode": mode, **extra}


def plugin_config(operations):
    return {
        "revision": "guard-test",
        "route_header": ROUTE_HEADER,
        "legacy": {"cluster": "legacy"},
        "candidate": {"cluster": "candidate"},
        # Set on purpose: the guard, not the configuration, is what keeps a
        # client from naming its operation.
        "operation_header": OPERATION_HEADER,
        "defaults": {"mode": "legacy", "shadow_percent": 100, "shadow_timeout_ms": 3000},
        "operations": operations,
    }


_seq = itertools.count(1)


def tagged(path):
    """`path` with a unique n= query parameter; returns (path, tag)."""
    tag = f"n={next(_seq)}"
    return path + ("&" if "?" in path else "?") + tag, tag


def has_tag(request, tag):
    return tag in request.path.partition("?")[2].split("&")


def untagged(path, tag):
    """`path` as it was before tagged() added `tag` (always the last parameter)."""
    return path[:-len(tag) - 1] if path.endswith(tag) else path


def raw_request(port, method, target, header_pairs=(), source=None):
    """One request with exactly this request target and these header lines
    (case and repeats kept), on a fresh connection. Returns (status, body)."""
    conn = HTTPConnection(HOST, port, timeout=10, source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in header_pairs:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def values(request, name):
    return [v for k, v in request.headers if k == name]


def start_backends(backend):
    return {name: backend(name=name) for name in ("legacy", "candidate", BYSTANDER)}


def ports(backends):
    return {name: b.port for name, b in backends.items()}


def hits(backends, tag):
    """(backend name, request) for every request carrying `tag`, served or shadow copy."""
    return [(name, r) for name, b in backends.items() for r in b.received if has_tag(r, tag)]


def without_wasm_filter(boot):
    """The shipped bootstrap with the wasm filter taken out and nothing else
    changed (the header guard and the fallback route stay)."""
    hcm = connection_manager(boot)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != FILTER_NAME]


def kill_the_vm(proxy, workers):
    """Sends requests until every worker's VM has trapped once (each on a fresh
    connection, so they spread over the workers); bounded. The request whose
    callback trapped is answered 503 by Envoy, every later one is served (by
    legacy, through the fallback route)."""
    statuses = []
    for _ in range(50 * workers):
        if proxy.log_text().count(TRAP_LOG) >= workers:
            break
        statuses.append(raw_request(proxy.port, "GET", "/prime")[0])
    dead = proxy.log_text().count(TRAP_LOG)
    assert dead == workers, f"{dead} of {workers} VMs died"
    assert sorted(set(statuses)) in ([503], [200, 503]) and statuses.count(503) == workers, statuses


# ---------------------------------------------------------------------------
# 1. the header guard: VM alive, VM dead, filter absent

GUARD_OPERATIONS = [
    operation("listReturns", "GET", "/returns", "legacy"),
    operation("getReturn", "GET", "/returns/{id}", "shadow"),
    operation("getSummary", "GET", "/returns/summary", "candidate"),
]

# (path, forged header lines, operation the path matches or None). Every value
# names something a client should not get: a cluster the configuration never
# routes to, another operation (getSummary would be served by the candidate),
# a shadow marker.
FORGERIES = [
    ("/returns", [(ROUTE_HEADER, BYSTANDER)], "listReturns"),
    ("/returns", [("X-Parallel-Run-Cluster", "candidate"), (ROUTE_HEADER, BYSTANDER)], "listReturns"),
    ("/returns", [(OPERATION_HEADER, "getSummary")], "listReturns"),
    ("/returns", [("X-Operation-Id", "getSummary"), (OPERATION_HEADER, "getSummary")], "listReturns"),
    ("/returns", [(SHADOW_MARKER, FORGED_MARKER)], "listReturns"),
    ("/returns/7", [(SHADOW_MARKER, FORGED_MARKER), ("X-Parallel-Run-Shadow", "getReturn")], "getReturn"),
    ("/returns/7", [(OPERATION_HEADER, "getSummary"), (ROUTE_HEADER, "candidate")], "getReturn"),
    ("/returns/summary", [(ROUTE_HEADER, BYSTANDER), (OPERATION_HEADER, "listReturns"),
                          (SHADOW_MARKER, FORGED_MARKER)], "getSummary"),
    ("/nowhere", [(OPERATION_HEADER, "getSummary"), (ROUTE_HEADER, "candidate")], None),
]
SERVER_BY_MODE = {"legacy": "legacy", "shadow": "legacy", "cutover": "candidate", "candidate": "candidate"}
MODES = {op["id"]: op["mode"] for op in GUARD_OPERATIONS}


def check_forgeries(proxy, backends, vm_alive):
    """Sends every forgery; checks who served it, what reached the backends and
    (VM alive) what the filter counted. Returns the failures as text."""
    failures = []
    for path, pairs, op in FORGERIES:
        # Dead or absent filter: the fallback route, legacy, serves everything.
        expected = SERVER_BY_MODE[MODES[op]] if vm_alive and op else "legacy"
        before = operation_counters(proxy, op) if vm_alive and op else None
        unknown_before = proxy.counter(UNKNOWN)
        target, tag = tagged(path)
        status, body = raw_request(proxy.port, "GET", target, pairs)
        served = [(name, r) for name, r in hits(backends, tag) if not values(r, SHADOW_MARKER)]
        seen = f"{path} {pairs}: status {status}, served by {[n for n, _ in served]}"
        if status != 200 or json.loads(body)["backend"] != expected or [n for n, _ in served] != [expected]:
            failures.append(f"{seen}, expected {expected}")
            continue
        request = served[0][1]
        route = values(request, ROUTE_HEADER)
        if route != [] or values(request, OPERATION_HEADER):
            failures.append(f"{seen}: the backend saw {ROUTE_HEADER}={route} {OPERATION_HEADER}="
                            f"{values(request, OPERATION_HEADER)}")
        if vm_alive and op:
            after = operation_counters(proxy, op)
            moved = {k: after[k] - before[k] for k in ("requests", "served_legacy", "served_candidate")}
            if moved != {"requests": 1, "served_legacy": int(expected == "legacy"),
                         "served_candidate": int(expected == "candidate")}:
                failures.append(f"{seen}: counted {moved} against {op}")
        if vm_alive and op is None and proxy.counter(UNKNOWN) != unknown_before + 1:
            failures.append(f"{seen}: not counted as unknown")
    return failures


def check_nothing_forged_arrived(backends):
    """Over everything the backends received: no forged marker, no operation
    header, nothing at the cluster no configuration names."""
    everything = [(name, r) for name, b in backends.items() for r in b.received]
    assert [r.path for r in backends[BYSTANDER].received] == []
    leaked = [(name, r.path, r.headers) for name, r in everything
              if FORGED_MARKER in values(r, SHADOW_MARKER) or values(r, OPERATION_HEADER)
              or len(values(r, SHADOW_MARKER)) > 1]
    assert leaked == []


BOOTSTRAPS = pytest.mark.parametrize("ecds", [False, True], ids=["static", "ecds"])


@BOOTSTRAPS
def test_vm_alive_client_chooses_neither_backend_nor_operation(wasm_path, backend, envoy, ecds):
    backends = start_backends(backend)
    proxy = envoy(ports(backends), wasm_path=wasm_path, ecds=ecds, config=plugin_config(GUARD_OPERATIONS))
    failures = check_forgeries(proxy, backends, vm_alive=True)
    assert not failures, "\n".join(failures)

    # getReturn is in shadow mode: its two requests were copied to the
    # candidate, with the filter's marker only.
    def two_copies():
        found = [r for r in backends["candidate"].received if values(r, SHADOW_MARKER)]
        return found if len(found) == 2 else None

    copies = wait_until(two_copies, message="two shadow copies")
    assert [values(r, SHADOW_MARKER) for r in copies] == [["getReturn"], ["getReturn"]]
    assert [values(r, ROUTE_HEADER) for r in copies] == [[], []]
    check_nothing_forged_arrived(backends)


@BOOTSTRAPS
def test_vm_dead_client_chooses_no_backend_and_legacy_serves(backend, envoy, tmp, ecds):
    backends = start_backends(backend)
    proxy = envoy(ports(backends), wasm_path=write_trapping_module(tmp), ecds=ecds,
                  config=plugin_config(GUARD_OPERATIONS))
    kill_the_vm(proxy, proxy.concurrency)
    failures = check_forgeries(proxy, backends, vm_alive=False)
    assert not failures, "\n".join(failures)
    check_nothing_forged_arrived(backends)
    # Dead, not reloaded: no request after the priming ones reached the module.
    assert proxy.log_text().count(TRAP_LOG) == proxy.concurrency


@BOOTSTRAPS
def test_filter_absent_client_chooses_no_backend(backend, envoy, ecds):
    backends = start_backends(backend)
    proxy = envoy(ports(backends), ecds=ecds, tweak=without_wasm_filter)
    failures = check_forgeries(proxy, backends, vm_alive=False)
    assert not failures, "\n".join(failures)
    check_nothing_forged_arrived(backends)


def test_an_http_filter_guard_comes_too_late_for_a_dead_vm(backend, envoy, tmp):
    """Why the guard is in the connection manager: the same removal done by the
    header_mutation HTTP filter (the bootstraps before) runs after the route
    was chosen from the client's header, so with the VM dead the client picks
    the backend. If this stops being true, the guard could move back."""

    def old_guard(boot):
        hcm = connection_manager(boot)
        hcm.pop("early_header_mutation_extensions")
        hcm["http_filters"].insert(0, {"name": HEADER_GUARD, "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"remove": ROUTE_HEADER}, {"remove": SHADOW_MARKER}]}}})

    backends = start_backends(backend)
    proxy = envoy(ports(backends), wasm_path=write_trapping_module(tmp), config=plugin_config(GUARD_OPERATIONS),
                  tweak=old_guard)
    kill_the_vm(proxy, proxy.concurrency)
    target, tag = tagged("/returns")
    status, body = raw_request(proxy.port, "GET", target, [(ROUTE_HEADER, BYSTANDER)])
    assert (status, json.loads(body)["backend"]) == (200, BYSTANDER)
    [(name, request)] = hits(backends, tag)
    assert name == BYSTANDER and values(request, ROUTE_HEADER) == []  # removed, but only after routing


# ---------------------------------------------------------------------------
# 2. the operation header, trusted on a gateway's own listener only


def add_gateway_listener(port, gateway_address):
    """Tweak: the shipped listener copied into a second one, as README
    "Trusting a gateway's operation header" describes: its own address, an RBAC
    network filter that admits only the gateway's address, and a header guard
    that lets the operation header through. The public listener is unchanged."""

    def tweak(boot):
        listeners = boot["static_resources"]["listeners"]
        gateway = copy.deepcopy(listeners[0])
        gateway["name"] = "gateway"
        gateway["address"] = {"socket_address": {"address": HOST, "port_value": port}}
        hcm = next(f for f in gateway["filter_chains"][0]["filters"] if f["name"] == HCM)
        hcm["typed_config"]["stat_prefix"] = "gateway"
        gateway["filter_chains"][0]["filters"].insert(0, {
            "name": "envoy.filters.network.rbac",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
                "stat_prefix": "gateway.",
                "rules": {"action": "ALLOW", "policies": {"gateway-only": {
                    "permissions": [{"any": True}],
                    "principals": [{"direct_remote_ip": {"address_prefix": gateway_address, "prefix_len": 32}}]}}}}})
        listeners.append(gateway)
        trust_operation_header(boot, OPERATION_HEADER, listener=1)

    return tweak


def test_operation_header_is_trusted_only_on_the_gateway_listener(wasm_path, backend, envoy):
    backends = start_backends(backend)
    gateway_port = free_port()
    # 127.0.0.1 plays the gateway; 127.0.0.2 (also loopback) a client that
    # found the internal listener.
    proxy = envoy(ports(backends), wasm_path=wasm_path, ecds=True, config=plugin_config(GUARD_OPERATIONS),
                  tweak=add_gateway_listener(gateway_port, "127.0.0.1"))
    wait_until(lambda: socket.create_connection((HOST, gateway_port), timeout=1).close() or True,
               message="the gateway listener")
    names_summary = [(OPERATION_HEADER, "getSummary")]

    # Public listener: the header is removed, the path decides (listReturns, legacy).
    before = operation_counters(proxy, "listReturns")
    target, tag = tagged("/returns")
    assert raw_request(proxy.port, "GET", target, names_summary)[0] == 200
    [(name, request)] = hits(backends, tag)
    assert name == "legacy" and values(request, OPERATION_HEADER) == []
    assert operation_counters(proxy, "listReturns")["requests"] == before["requests"] + 1

    # Gateway listener, from the gateway: the header names the operation.
    before = operation_counters(proxy, "getSummary")
    target, tag = tagged("/returns")
    assert raw_request(gateway_port, "GET", target, names_summary, source="127.0.0.1")[0] == 200
    [(name, request)] = hits(backends, tag)
    assert name == "candidate" and values(request, OPERATION_HEADER) == ["getSummary"]
    after = operation_counters(proxy, "getSummary")
    assert (after["requests"], after["served_candidate"]) == (before["requests"] + 1, before["served_candidate"] + 1)
    # ... but it still cannot pick a backend or mark a shadow copy.
    target, tag = tagged("/returns")
    assert raw_request(gateway_port, "GET", target, [(ROUTE_HEADER, BYSTANDER), (SHADOW_MARKER, FORGED_MARKER)],
                       source="127.0.0.1")[0] == 200
    [(name, request)] = hits(backends, tag)
    assert name == "legacy" and values(request, ROUTE_HEADER) == [] and values(request, SHADOW_MARKER) == []

    # Gateway listener, from anyone else: the connection is refused.
    target, tag = tagged("/returns")
    with pytest.raises(OSError):  # closed by RBAC before any response: RemoteDisconnected or a reset
        raw_request(gateway_port, "GET", target, names_summary, source="127.0.0.2")
    assert hits(backends, tag) == []
    assert proxy.counter("gateway.rbac.denied") == 1


# ---------------------------------------------------------------------------
# 3. paths: what Envoy routes on is what the filter classified and what the
#    backend is sent

PATH_OPERATIONS = [
    operation("listReturns", "GET", "/returns", "legacy"),
    operation("getReturn", "GET", "/returns/{id}", "cutover"),
    # A literal beside the template, on a backend of its own, so that a path
    # classified as the template instead shows at another backend.
    operation("getSummary", "GET", "/returns/summary", "cutover", candidate={"cluster": BYSTANDER}),
]
SERVERS = {"listReturns": "legacy", "getReturn": "candidate", "getSummary": BYSTANDER}

# (request target, operation, the path the backend must be sent)
PATH_TRICKS = [
    ("//returns/1", "getReturn", "/returns/1"),
    ("/returns//1", "getReturn", "/returns/1"),
    ("///returns///1///", "getReturn", "/returns/1/"),
    ("/returns/./1", "getReturn", "/returns/1"),
    ("/./returns/1", "getReturn", "/returns/1"),
    ("/returns/../returns/1", "getReturn", "/returns/1"),
    ("/elsewhere/../returns/1", "getReturn", "/returns/1"),
    ("/../returns/1", "getReturn", "/returns/1"),
    ("/returns/1/.", "getReturn", "/returns/1/"),
    ("/returns/%2e/1", "getReturn", "/returns/1"),
    ("/returns/%2E%2E/returns/1", "getReturn", "/returns/1"),
    ("/returns/.%2e/returns/1", "getReturn", "/returns/1"),
    ("/%72eturns/1", "getReturn", "/returns/1"),
    ("/r%65turns/%31", "getReturn", "/returns/1"),
    ("/returns\\1", "getReturn", "/returns/1"),
    ("/returns/1?next=/../x//y", "getReturn", "/returns/1?next=/../x//y"),  # the query is left alone
    ("http://api.example.test/returns/./1", "getReturn", "/returns/1"),  # absolute form
    ("/returns/summ%61ry", "getSummary", "/returns/summary"),
    ("/returns/%73ummary/", "getSummary", "/returns/summary/"),
    ("//returns//summary", "getSummary", "/returns/summary"),
    ("/returns/1/../summary", "getSummary", "/returns/summary"),
    ("/returns/1/..", "listReturns", "/returns/"),  # resolves to the collection, for everybody
]
# Refused by Envoy (400) before any filter: encoded slashes and backslashes
# (either case), and NUL.
REFUSED = ["/returns%2F1", "/returns%2f1", "/returns/%2F1", "/returns%5C1", "/returns%5c1",
           "/returns/..%2f..%2freturns/1", "/returns/%00"]


def send_path_tricks(proxy, backends):
    """Each trick once; returns [(target, status, operations counted, [(served by, path sent)], tag)]."""
    seen = []
    for target, _, _ in PATH_TRICKS:
        before = {op: operation_counters(proxy, op)["requests"] for op in SERVERS}
        unknown = proxy.counter(UNKNOWN)
        full, tag = tagged(target)
        status, _ = raw_request(proxy.port, "GET", full)
        served = [(name, untagged(r.path, tag)) for name, r in hits(backends, tag) if not values(r, SHADOW_MARKER)]
        counted = [op for op in SERVERS if operation_counters(proxy, op)["requests"] != before[op]]
        if proxy.counter(UNKNOWN) != unknown:
            counted.append("unknown")
        seen.append((target, status, counted, served, tag))
    return seen


def test_path_tricks_reach_the_operation_envoy_routes_and_the_backend_sees(wasm_path, backend, envoy):
    backends = start_backends(backend)
    proxy = envoy(ports(backends), wasm_path=wasm_path, config=plugin_config(PATH_OPERATIONS))
    seen = send_path_tricks(proxy, backends)
    got = [s[:4] for s in seen]
    want = [(target, 200, [op], [(SERVERS[op], path)]) for target, op, path in PATH_TRICKS]
    assert got == want, "\n".join(f"{w[0]!r}: expected {w[1:]}, got {g[1:]}" for g, w in zip(got, want) if g != w)
    for op in ("getReturn", "getSummary"):
        c = operation_counters(proxy, op)
        assert c["served_candidate"] == c["requests"] and c["served_legacy"] == 0, (op, c)

    # In cutover legacy gets the shadow copy: the same normalised path.
    for (target, op, path), (_, _, _, _, tag) in zip(PATH_TRICKS, seen):
        if op == "listReturns":
            continue
        copies = wait_until(lambda: [r for r in backends["legacy"].received if has_tag(r, tag)],
                            message=f"the shadow copy of {target!r}")
        assert [(untagged(r.path, tag), values(r, SHADOW_MARKER)) for r in copies] == [(path, [op])], target


def test_encoded_slashes_are_refused_before_any_filter(wasm_path, backend, envoy):
    backends = start_backends(backend)
    proxy = envoy(ports(backends), wasm_path=wasm_path, config=plugin_config(PATH_OPERATIONS))
    refused_before = proxy.counter("http.ingress.downstream_rq_failed_path_normalization")
    for target in REFUSED:
        full, tag = tagged(target)
        assert raw_request(proxy.port, "GET", full)[0] == 400, target
        assert hits(backends, tag) == [], target
    assert proxy.counter("http.ingress.downstream_rq_failed_path_normalization") == refused_before + len(REFUSED)
    assert proxy.counter(UNKNOWN) == 0
    assert [operation_counters(proxy, op)["requests"] for op in SERVERS] == [0, 0, 0]


def test_without_normalisation_the_tricks_route_around_a_cutover(wasm_path, backend, envoy):
    """The control: the same tricks with the connection manager's path settings
    taken out are classified unknown (or as the template) and served by legacy
    (or the wrong backend), while a backend that normalises would treat them as
    the operation in cutover. This is what the shipped settings prevent."""
    backends = start_backends(backend)
    proxy = envoy(ports(backends), wasm_path=wasm_path, config=plugin_config(PATH_OPERATIONS), tweak=keep_raw_paths)
    got = {target: (counted, [name for name, _ in served])
           for target, _, counted, served, _ in send_path_tricks(proxy, backends)}
    assert got["/returns/./1"] == (["unknown"], ["legacy"])
    assert got["/returns/../returns/1"] == (["unknown"], ["legacy"])
    assert got["/returns/%2e/1"] == (["unknown"], ["legacy"])
    assert got["/r%65turns/%31"] == (["unknown"], ["legacy"])
    assert got["/returns/summ%61ry"] == (["getReturn"], ["candidate"])
    full, tag = tagged("/returns%2F1")
    assert raw_request(proxy.port, "GET", full)[0] == 200 and [n for n, _ in hits(backends, tag)] == ["legacy"]
