"""The Grafana dashboard (prometheus/grafana/parallel-run.json): built with
Grafana's SDK (grafana-foundation-sdk), decoded back by the same SDK without
losing a key, and every query parsed with a real PromQL parser and naming
only metrics the filter exports (or has announced) and recording rules of
prometheus/rules.yml. tests/e2e/test_prometheus.py runs every query against a
real Prometheus.
"""

import json
import subprocess
import sys

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.models.prometheus import Dataquery
from harness import REPO
from metric_names import known_names, pending_names, selectors, unknown_names

BUILDER = REPO / "prometheus" / "grafana" / "build.py"
DASHBOARD = REPO / "prometheus" / "grafana" / "parallel-run.json"

# Grafana's variables, replaced by something PromQL parses.
VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$operation": "getReturn"}


def dashboard():
    return json.loads(DASHBOARD.read_text())


def promql(expr):
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def panels_and_queries(board):
    """[(panel title, PromQL with the variables replaced)] of every panel target."""
    return [(panel["title"], promql(target["expr"])) for panel in board["panels"] for target in panel.get("targets", [])]


def test_the_shipped_dashboard_is_the_builders_output():
    result = subprocess.run([sys.executable, str(BUILDER), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_sdk_decodes_every_key_and_every_query_as_a_prometheus_query():
    plugins.register_default_plugins()
    data = dashboard()
    decoded = Dashboard.from_json(data)
    # Decoding keeps only what the SDK's models know: a misspelt key or a
    # value of the wrong shape would not come back.
    assert json.loads(json.dumps(decoded, cls=JSONEncoder)) == data
    targets = [t for p in decoded.panels for t in (getattr(p, "targets", None) or [])]
    assert targets and all(isinstance(t, Dataquery) for t in targets)
    assert all(p.datasource and p.datasource.uid == "${datasource}" for p in decoded.panels if p.type_val != "row")


def test_a_misspelt_key_does_not_survive_the_round_trip():
    """The check above can fail: the SDK drops what its models do not know."""
    plugins.register_default_plugins()
    data = dashboard()
    data["panels"][1]["targets"][0]["exrp"] = data["panels"][1]["targets"][0].pop("expr")
    assert json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder)) != data


def test_every_query_names_only_existing_metrics_and_recording_rules():
    known = known_names()
    queries = panels_and_queries(dashboard())
    assert len(queries) >= 25
    for title, expr in queries:
        assert unknown_names(expr, known) == [], (title, expr)
    variable = next(v for v in dashboard()["templating"]["list"] if v["name"] == "operation")
    assert variable["query"]["query"] == "label_values(parallel_run_operation_mode, operation_id)"
    assert "parallel_run_operation_mode" in known - pending_names()


def test_it_shows_what_the_issue_asks_for_per_operation():
    board = dashboard()
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Fleet", "$operation"] and rows[1]["repeat"] == "operation"
    start = board["panels"].index(rows[1])
    per_operation = {name for panel in board["panels"][start:] for target in panel.get("targets", [])
                     for name, _ in selectors(promql(target["expr"])) if name}
    for name in [
        "operation_id:parallel_run_match_rate:ratio_window",         # match rate
        "operation_id:parallel_run_match_rate_lower:wilson_window",  # and lower bound
        "operation_id:parallel_run_target_match_rate:max",           # vs target
        "parallel_run_operation_matched", "parallel_run_operation_unmatched", "parallel_run_operation_failed",
        "parallel_run_operation_unmatched_path",                     # what differs most
        "operation_id_side:parallel_run_latency_ms:p99_5m",          # latency per side
        "operation_id:parallel_run_ready:window",                    # ready state (fleet)
        "parallel_run_operation_ready",                              # and per replica
        "parallel_run_operation_routing_mismatch",
        "parallel_run_operation_mode",
    ]:
        assert name in per_operation, name
    fleet = {name for panel in board["panels"][:start] for target in panel.get("targets", [])
             for name, _ in selectors(promql(target["expr"])) if name}
    assert "parallel_run_config_revision" in fleet  # revision per replica


@pytest.mark.parametrize("expr", ['sum(rate(parallel_run_operation_matchd[5m]))', "nonexistent:rule:name"])
def test_the_name_check_catches_a_typo(expr):
    assert unknown_names(expr, known_names()) != []
