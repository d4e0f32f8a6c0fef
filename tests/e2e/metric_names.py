"""Which metric names a PromQL expression of ours may name: the filter's (read
from core/src/counters.rs, the source of every name), the ones announced for
it and not defined yet (PENDING), Envoy's configuration-discovery counters,
and our own recording rules. Expressions are parsed with a real PromQL parser
(promql-parser), not searched with regexes.
"""

import re

import promql_parser
import yaml
from harness import REPO

COUNTERS_RS = REPO / "core" / "src" / "counters.rs"
RULES = REPO / "prometheus" / "rules.yml"
ALERTS = REPO / "prometheus" / "alerts.yml"

# Announced for the filter and used by the rules before the filter defines
# them. Grouped by what will land together: once one name of a group is in
# counters.rs, all must be (test_prometheus_rules checks it), so a filter that
# lands them under other names fails here instead of leaving rules that match
# nothing. None at the moment.
PENDING = {}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")

# Envoy's own ECDS counters (harness.ECDS_COUNTERS) on /stats/prometheus:
# with the ECDS name in the stat name (plain Envoy, ECDS name parallel-run),
# or as the extension_config_name label (Istio's stats tags).
ECDS = ("update_attempt", "update_success", "update_rejected", "update_failure", "config_reload", "config_fail")
ENVOY = ({f"envoy_extension_config_discovery_http_filter_parallel_run_{c}" for c in ECDS}
         | {f"envoy_extension_config_discovery_http_filter_{c}" for c in ECDS})


def filter_metrics():
    """{per-operation metric name: kind} as core/src/counters.rs declares them."""
    source = COUNTERS_RS.read_text()
    names = {}
    for kind, body in re.findall(r"metrics!\s*\{.*?\b(Counter|Gauge|Histogram)\s*\{(.*?)\}\}", source, re.S):
        for name in re.findall(r'=>\s*"([a-z0-9_.]+)"', body):
            # `latency_ms.serving`: the shipped `side` tag takes the last segment.
            names[name.split(".")[0] if kind == "Histogram" else name] = kind.lower()
    return names


def filter_names():
    """Every Prometheus name the filter exports today."""
    names = set()
    for name, kind in filter_metrics().items():
        base = f"parallel_run_operation_{name}"
        names |= {base + s for s in HISTOGRAM_SERIES} if kind == "histogram" else {base}
    names |= {"parallel_run_operation_unmatched_path", "parallel_run_operation_unmatched_path_current",
              "parallel_run_operation_noise_path"}
    source = COUNTERS_RS.read_text()
    for constant in ("UNKNOWN_OPERATION_REQUESTS", "REVISION_GAUGE"):
        dotted = re.search(rf'pub const {constant}: &str = "([a-z0-9_.]+)";', source).group(1)
        names.add(dotted.replace(".", "_"))
    # Per operation, only for operations with evidence on.
    for constant in ("EVIDENCE_SENT", "EVIDENCE_DROPPED"):
        name = re.search(rf'pub const {constant}: &str = "([a-z0-9_]+)";', source).group(1)
        names.add(f"parallel_run_operation_{name}")
    return names


def pending_names():
    names = set()
    for group in PENDING.values():
        for name in group:
            base = f"parallel_run_operation_{name}"
            names.add(base)
    return names


def recorded_names():
    return {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}


def derived_from_pending():
    """Recording rules that read (directly or through other rules) a pending name:
    they may have no sample until the filter exports it."""
    rules = {r["record"]: r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
             if "record" in r}
    tainted = pending_names()
    while True:
        more = {record for record, expr in rules.items()
                if record not in tainted and {name for name, _ in selectors(expr)} & tainted}
        if not more:
            return tainted - pending_names()
        tainted |= more


def known_names():
    return filter_names() | pending_names() | ENVOY | recorded_names() | {"up"}


def selectors(expr):
    """[(metric name or None, [(label, op, value)])] of every vector selector in `expr`."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, [(m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers]))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def unknown_names(expr, known):
    """The names `expr` selects that are not in `known` (a `__name__` regex must match at least one)."""
    unknown = []
    for name, matchers in selectors(expr):
        if name:
            if name not in known:
                unknown.append(name)
            continue
        for label, op, value in matchers:
            if label == "__name__":
                if op == "Re":
                    if not any(re.fullmatch(value, k) for k in known):
                        unknown.append(f"__name__=~{value!r}")
                elif value not in known:
                    unknown.append(value)
    return unknown
