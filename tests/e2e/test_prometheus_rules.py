"""The shipped Prometheus rules and alerts (prometheus/): generated, valid
for promtool, unit-tested, and naming only metrics that exist.

No Envoy here; tests/e2e/test_prometheus.py runs the same rules in a real
Prometheus against real Envoys.
"""

import subprocess
import sys

import pytest
import yaml
from harness import REPO
from metric_names import ALERTS, PENDING, RULES, filter_metrics, known_names, pending_names, unknown_names
from prometheus_server import generate, promtool, write_rules

GENERATOR = REPO / "prometheus" / "generate.py"


def rules_of(path):
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def run_generator(*args):
    return subprocess.run([sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=30)


def test_the_shipped_files_are_the_generators_default_output():
    result = run_generator("--check")
    assert result.returncode == 0, result.stderr
    shipped = {name: (REPO / "prometheus" / name).read_text() for name in ("rules.yml", "alerts.yml")}
    assert generate.render(generate.Params()) == shipped


def test_promtool_accepts_the_shipped_rules_and_their_unit_tests_pass():
    check = promtool("check", "rules", RULES, ALERTS)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    unit = promtool("test", "rules", REPO / "prometheus" / "tests.yml")
    assert unit.returncode == 0, unit.stdout + unit.stderr


@pytest.mark.parametrize("params", [
    {"window": "90s", "ready_for": "2s", "alert_for": {"ConfigDrift": "1s"}},
    {"window": "1h", "confidence": 0.99, "fleet": ("cluster", "namespace"), "drain": "30m"},
    {"ecds_name": "extensions.istio.io/wasmplugin/istio-system.parallel-run"},
])
def test_promtool_accepts_the_rules_generated_with_other_parameters(tmp, params):
    paths = write_rules(tmp, **params)
    check = promtool("check", "rules", *paths)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_fleet_label_is_kept_by_every_aggregation(tmp):
    rules, alerts = write_rules(tmp, fleet=("cluster",))
    text = rules.read_text() + alerts.read_text()
    assert "by (operation_id)" not in text and "on (operation_id)" not in text
    assert "sum by (cluster, operation_id)" in text and "on (cluster, operation_id)" in text
    assert 'count_values by (cluster) ("revision", parallel_run_config_revision)' in text


@pytest.mark.parametrize("args, message", [
    (["--window", "10"], "--window: '10' is not a positive Prometheus duration"),
    (["--ready-for", "0s"], "--ready-for: '0s' is not a positive Prometheus duration"),
    (["--fleet-label", "operation_id"], "--fleet-label: 'operation_id' is not a label name"),
    (["--fleet-label", "bad-label"], "--fleet-label: 'bad-label' is not a label name"),
    (["--for", "Nope=1m"], "--for: unknown alert 'Nope'"),
    (["--for", "ConfigDrift=soon"], "--for ConfigDrift: 'soon' is not a Prometheus duration"),
    (["--confidence", "1"], "--confidence: 1.0 is not a confidence from 0.5 up to (not including) 1"),
    (["--ecds-name", "a b"], "--ecds-name: 'a b' has characters"),
])
def test_bad_parameters_are_refused_naming_the_flag_and_nothing_is_written(tmp, args, message):
    result = run_generator(*args, "--out", str(tmp))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list(tmp.iterdir()) == []


def test_the_wilson_z_is_the_filters_normal_quantile():
    """generate.z_score is core/src/window.rs's z_score, ported: the true
    quantiles to 1e-8 (Acklam's approximation is good to 1.2e-9)."""
    for confidence, z in [(0.5, 0.6744897502), (0.9, 1.6448536270), (0.95, 1.9599639845), (0.99, 2.5758293035)]:
        assert abs(generate.z_score(confidence) - z) < 1e-8, confidence
    assert "1.959963986120195 * sqrt(" in RULES.read_text()


def test_check_reports_stale_files(tmp):
    assert run_generator("--out", str(tmp)).returncode == 0
    (tmp / "alerts.yml").write_text((tmp / "alerts.yml").read_text().replace("for: 5m", "for: 1m", 1))
    result = run_generator("--check", "--out", str(tmp))
    assert result.returncode == 1 and "alerts.yml" in result.stderr and "rules.yml" not in result.stderr


def test_every_alert_tells_on_call_what_it_means_and_what_to_do():
    alerts = rules_of(ALERTS)
    assert [a["alert"] for a in alerts] == list(generate.ALERTS)
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), alert["alert"]
        summary, description = alert["annotations"]["summary"], alert["annotations"]["description"]
        assert summary and len(description.splitlines()) >= 4, alert["alert"]
        # Something to run or look at: a command, a query or a file.
        assert "parallel-run-ctl" in description or "`" in description, alert["alert"]
    pages = {a["alert"] for a in alerts if a["labels"]["severity"] == "critical"}
    assert pages == {"RegressionAfterCutover", "RoutingMismatch"}


def test_every_name_the_rules_and_alerts_select_exists():
    known = known_names()
    for rule in rules_of(RULES) + rules_of(ALERTS):
        assert unknown_names(rule["expr"], known) == [], rule.get("record") or rule.get("alert")


def test_pending_names_land_together_or_not_at_all():
    """The rules use names the filter announced but does not define yet. When
    some land, all of their group must, under these names: otherwise the
    rules would match nothing without anyone noticing."""
    defined = set(filter_metrics())
    for group, names in PENDING.items():
        landed = names & defined
        assert not landed or landed == names, f"{group}: the filter defines {sorted(landed)} but not " \
            f"{sorted(names - landed)}: adapt prometheus/generate.py and tests/e2e/metric_names.py to its names"


def test_the_prometheus_rule_manifest_holds_the_same_groups(tmp):
    result = run_generator("--out", str(tmp), "--prometheus-rule", "monitoring/parallel-run",
                           "--rule-label", "release=prometheus")
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load((tmp / "prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"] == {"name": "parallel-run", "namespace": "monitoring", "labels": {"release": "prometheus"}}
    groups = [g for name in ("rules.yml", "alerts.yml") for g in yaml.safe_load((tmp / name).read_text())["groups"]]
    assert manifest["spec"]["groups"] == groups
    # What the operator hands Prometheus is a rule file with these groups: promtool accepts it.
    (tmp / "from-manifest.yml").write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}))
    check = promtool("check", "rules", tmp / "from-manifest.yml")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("args, message", [
    (["--prometheus-rule", "parallel-run"], "is not NAMESPACE/NAME"),
    (["--prometheus-rule", "Monitoring/x"], "is not NAMESPACE/NAME"),
    (["--prometheus-rule", "m/x", "--rule-label", "release=a b"], "--rule-label: release=a b is not a Kubernetes label"),
    (["--rule-label", "release=prometheus"], "--rule-label: only with --prometheus-rule"),
])
def test_bad_prometheus_rule_options_are_refused(tmp, args, message):
    result = run_generator(*args, "--out", str(tmp))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list(tmp.iterdir()) == []


def test_the_readmes_match_rate_query_keeps_operations_whose_unmatched_series_is_absent(tmp):
    readme = (REPO / "README.md").read_text()
    query = readme.split("match rate of an operation is `matched / (matched + unmatched)`", 1)[1]
    query = query.split("```promql\n", 1)[1].split("```", 1)[0]
    series = {
        # no `unmatched` series at all
        'parallel_run_operation_matched{instance="a", operation_id="onlyMatched"}': "0+5x70",
        # replica b has no `unmatched` series: 420 of 480
        'parallel_run_operation_matched{instance="a", operation_id="pooled"}': "0+3x70",
        'parallel_run_operation_unmatched{instance="a", operation_id="pooled"}': "0+1x70",
        'parallel_run_operation_matched{instance="b", operation_id="pooled"}': "0+4x70",
        # no `matched` series: 0, not absent
        'parallel_run_operation_unmatched{instance="a", operation_id="onlyUnmatched"}': "0+2x70",
        # nothing compared: no sample
        'parallel_run_operation_matched{instance="a", operation_id="idle"}': "0+0x70",
        'parallel_run_operation_unmatched{instance="a", operation_id="idle"}': "0+0x70",
    }
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in series.items()],
            "promql_expr_test": [{"expr": query, "eval_time": "60m", "exp_samples": [
                {"labels": '{operation_id="onlyMatched"}', "value": 1},
                {"labels": '{operation_id="pooled"}', "value": 0.875},
                {"labels": '{operation_id="onlyUnmatched"}', "value": 0},
            ]}],
        }],
    }
    (tmp / "readme-test.yml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", tmp / "readme-test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
