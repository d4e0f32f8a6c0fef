#!/usr/bin/env python3
"""Builds the Grafana dashboard of parallel-run, prometheus/grafana/parallel-run.json,
with Grafana's own SDK (the grafana-foundation-sdk package, tests/requirements.txt):

    .venv/bin/python prometheus/grafana/build.py           # rewrites parallel-run.json
    .venv/bin/python prometheus/grafana/build.py --check   # exit 1 if it differs

A fleet row (revisions per replica, refused configurations, requests that
match no operation), then one row per operation, repeated over the
`operation` variable: the READY verdict (fleet and per replica), the match
rate and its Wilson lower bound against the target, the outcomes, the
comparisons against min_samples, the failure rate against its maximum, what
differs most, latency per side and their ratio, the mode per replica and
routing mismatches. The panels read the recording rules of rules.yml (load
them first) and the filter's metrics; tests/e2e/test_grafana_dashboard.py
checks every name they use exists, and tests/e2e/test_prometheus.py runs
every query against a real Prometheus.
"""

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, common, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (DatasourceVariable, Dashboard, QueryVariable, Row,
                                                       ThresholdsConfig)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (BigValueColorMode, LegendDisplayMode, LegendPlacement, SortOrder,
                                                  TableCellHeight, TooltipDisplayMode)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
OUT = HERE / "parallel-run.json"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
OP = 'operation_id=~"$operation"'
MODES = {"0": ("legacy", "blue"), "1": ("shadow", "purple"), "2": ("cutover", "orange"), "3": ("candidate", "green")}


def query(expr, legend=None, instant=False, ref="A"):
    q = Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def targets(panel, *queries):
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, ref=chr(ord("A") + i)))
    return panel


def steps(*pairs):
    """Thresholds: [(value or None for the base, color)]."""
    return ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in pairs])


def value_map(mapping):
    return [model.ValueMap(options={k: model.ValueMappingResult(text=t, color=c, index=i)
                                    for i, (k, (t, c)) in enumerate(mapping.items())})]


def last():
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def series(title, description, *queries, unit=None, lo=None, hi=None, w=12, h=8):
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE).span(w).height(h)
             .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                     .placement(LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "min", "max"]))
             .tooltip(common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
             .line_width(1).fill_opacity(10).span_nulls(False))
    if unit:
        panel = panel.unit(unit)
    if lo is not None:
        panel = panel.min(lo)
    if hi is not None:
        panel = panel.max(hi)
    return targets(panel, *queries)


def build():
    d = (
        Dashboard("parallel-run: readiness per operation")
        .uid("parallel-run-readiness")
        .description("Parallel run and per-operation cutover (parallel-run filter): is each operation READY, "
                     "what differs, and does every replica run the same rules. Needs prometheus/rules.yml.")
        .tags(["parallel-run", "envoy", "migration"])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            QueryVariable("operation").label("Operation").datasource(DATASOURCE)
            .query({"query": "label_values(parallel_run_operation_mode, operation_id)", "refId": "operations"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True))
    )

    # ------------------------------------------------------------ the fleet
    d = d.with_row(Row("Fleet"))
    d = d.with_panel(
        stat.Panel().title("Revisions running").span(4).height(5).datasource(DATASOURCE)
        .description("Distinct configuration revisions across the replicas (parallel_run_config_revision). "
                     "1 once a push has converged; more for longer than a rollout: ConfigDrift.")
        .with_target(query('count(count_values("revision", parallel_run_config_revision))'))
        .thresholds(steps((None, "green"), (2, "red"))).reduce_options(last())
        .color_mode(BigValueColorMode.BACKGROUND))
    d = d.with_panel(
        table.Panel().title("Revision per replica").span(8).height(5).datasource(DATASOURCE)
        .description("The fingerprint of each replica's running revision: "
                     "`python3 envoy/istio/fingerprint.py REVISION` prints a revision's.")
        .with_target(query("parallel_run_config_revision", instant=True))
        .show_header(True).cell_height(TableCellHeight.SM))
    d = d.with_panel(
        stat.Panel().title("Refused configurations (1h)").span(4).height(5).datasource(DATASOURCE)
        .description("ECDS pushes Envoy refused: those replicas still run the previous configuration "
                     "(ConfigRejected). Plain Envoy and Istio stat names.")
        .with_target(query(
            'sum(increase(envoy_extension_config_discovery_http_filter_parallel_run_config_fail[1h]) '
            'or increase(envoy_extension_config_discovery_http_filter_config_fail'
            '{extension_config_name=~".*parallel-run.*"}[1h]))'))
        .thresholds(steps((None, "green"), (1, "red"))).reduce_options(last())
        .color_mode(BigValueColorMode.BACKGROUND))
    d = d.with_panel(
        stat.Panel().title("Requests matching no operation (1h)").span(4).height(5).datasource(DATASOURCE)
        .description("Served by legacy and never compared: an endpoint missing from the rule set "
                     "(UnknownOperationTraffic).")
        .with_target(query("sum(increase(parallel_run_unknown_operation_requests[1h]))"))
        .thresholds(steps((None, "green"), (1, "orange"))).reduce_options(last()))
    d = d.with_panel(
        stat.Panel().title("Readiness window").span(4).height(5).datasource(DATASOURCE).unit("s")
        .description("The window the recording rules were generated with (prometheus/generate.py --window).")
        .with_target(query("parallel_run:readiness_window:seconds")).reduce_options(last()))

    # ------------------------------------------------------------ per operation
    d = d.with_row(Row("$operation").repeat("operation"))
    d = d.with_panel(
        stat.Panel().title("READY (fleet, window)").span(4).height(6).datasource(DATASOURCE)
        .description("The readiness rule over the window, on every replica's comparisons pooled: comparisons "
                     ">= min_samples, Wilson lower bound >= target, failure rate <= maximum, and the latency "
                     "ratio when max_latency_ratio is set.")
        .with_target(query(f"operation_id:parallel_run_ready:window{{{OP}}}", "{{operation_id}}"))
        .mappings(value_map({"0": ("not ready", "red"), "1": ("READY", "green")}))
        .reduce_options(last()).color_mode(BigValueColorMode.BACKGROUND))
    d = d.with_panel(
        stat.Panel().title("READY per replica (filter)").span(8).height(6).datasource(DATASOURCE)
        .description("Each replica's own windowed verdict (the filter's `ready` gauge) and for how long "
                     "(`ready_for_s`).")
        .with_target(query(f"parallel_run_operation_ready{{{OP}}}", "{{instance}}", ref="A"))
        .with_target(query(f"parallel_run_operation_ready_for_s{{{OP}}}", "{{instance}} ready for (s)", ref="B"))
        .mappings(value_map({"0": ("not ready", "red"), "1": ("READY", "green")}))
        .reduce_options(last()))
    d = d.with_panel(
        stat.Panel().title("Mode per replica").span(6).height(6).datasource(DATASOURCE)
        .description("The mode each replica runs: what is live, not what a file says.")
        .with_target(query(f"parallel_run_operation_mode{{{OP}}}", "{{instance}}"))
        .mappings(value_map(MODES)).reduce_options(last()))
    d = d.with_panel(
        stat.Panel().title("Routing mismatches (5m)").span(6).height(6).datasource(DATASOURCE)
        .description("Requests Envoy sent to another cluster than the filter chose: the route ignores the "
                     "route header and a cutover is a silent no-op (RoutingMismatch). Must be 0.")
        .with_target(query(f"sum(increase(parallel_run_operation_routing_mismatch{{{OP}}}[5m]))"))
        .thresholds(steps((None, "green"), (1, "red"))).reduce_options(last())
        .color_mode(BigValueColorMode.BACKGROUND))
    d = d.with_panel(series(
        "Match rate and lower bound vs target",
        "matched / (matched + unmatched), pooled over the replicas, and the lower bound of its 95% Wilson "
        "interval: READY needs the lower bound at or above the target. The filter's own lower bound per "
        "replica (its window, its traffic) for comparison.",
        (f"operation_id:parallel_run_match_rate:ratio_window{{{OP}}}", "match rate (window)"),
        (f"operation_id:parallel_run_match_rate_lower:wilson_window{{{OP}}}", "lower bound (window)"),
        (f"operation_id:parallel_run_match_rate:ratio1h{{{OP}}}", "match rate (1h)"),
        (f"operation_id:parallel_run_target_match_rate:max{{{OP}}}", "target"),
        (f"parallel_run_operation_match_rate_lower_bp{{{OP}}} / 10000", "lower bound, {{instance}} (filter)"),
        unit="percentunit", lo=0, hi=1, w=8))
    d = d.with_panel(series(
        "Outcomes",
        "Per second, over the replicas: every shadow ends in one of matched, unmatched, failed, abandoned; "
        "skipped requests were never shadowed.",
        *[(f"sum(rate(parallel_run_operation_{c}{{{OP}}}[$__rate_interval]))", c)
          for c in ("requests", "shadowed", "matched", "unmatched", "failed", "abandoned")],
        unit="reqps", lo=0, w=8))
    d = d.with_panel(series(
        "Not shadowed, by reason",
        "Requests never compared: a match rate judged on part of the traffic only. One query per counter "
        "(rate() over several names at once is an error in Prometheus).",
        *[(f"sum(rate(parallel_run_operation_skipped_{c}{{{OP}}}[$__rate_interval]))", c)
          for c in ("unsafe_method", "sampled_out", "body_too_large", "overload", "circuit_open")],
        unit="reqps", lo=0, w=8))
    d = d.with_panel(series(
        "Comparisons in the window vs min_samples",
        "READY needs at least min_samples comparisons in the window.",
        (f"operation_id:parallel_run_comparisons:increase_window{{{OP}}}", "comparisons (window)"),
        (f"operation_id:parallel_run_min_samples:max{{{OP}}}", "min_samples"),
        lo=0, w=8))
    d = d.with_panel(series(
        "Failure rate vs maximum",
        "failed / shadowed: timeouts, errors, 5xx, bodies too large. Above the maximum: not READY "
        "(ShadowFailing in shadow, RegressionAfterCutover in cutover).",
        (f"operation_id:parallel_run_failure_rate:ratio5m{{{OP}}}", "failure rate (5m)"),
        (f"operation_id:parallel_run_failure_rate:ratio_window{{{OP}}}", "failure rate (window)"),
        (f"operation_id:parallel_run_max_failure_rate:min{{{OP}}}", "maximum"),
        unit="percentunit", lo=0, w=8))
    d = d.with_panel(
        bargauge.Panel().title("What differs most (1h)").span(8).height(8).datasource(DATASOURCE)
        .description("The fields behind the most unmatched comparisons: the migration's to-do list. "
                     "Fields past max_diff_paths are only counted in the overflow.")
        .with_target(query(f"topk(10, sum by (diff_path) "
                           f"(increase(parallel_run_operation_unmatched_path{{{OP}}}[1h])))", "{{diff_path}}", ref="A"))
        .with_target(query(f"sum(increase(parallel_run_operation_unmatched_path_overflow{{{OP}}}[1h]))",
                           "(fields not counted: overflow)", ref="B"))
        .reduce_options(last()))
    d = d.with_panel(series(
        "Latency p99 per side",
        "p99 of the serving response and of the shadow response (dispatch to last byte), over the replicas. "
        "In shadow mode the shadow is the candidate.",
        (f"operation_id_side:parallel_run_latency_ms:p99_5m{{{OP}}}", "{{side}} p99"),
        unit="ms", lo=0))
    d = d.with_panel(series(
        "Latency ratio shadow / serving vs max_latency_ratio",
        "READY needs the candidate's p99 within max_latency_ratio × legacy's, when it is set.",
        (f"operation_id:parallel_run_latency_p99:ratio5m{{{OP}}}", "p99 ratio (5m)"),
        (f"operation_id:parallel_run_latency_p99:ratio_window{{{OP}}}", "p99 ratio (window)"),
        (f"operation_id:parallel_run_max_latency_ratio:min{{{OP}}}", "max_latency_ratio"),
        lo=0))
    return d


def numbered(board):
    """Panel ids 1, 2, ... in layout order: Grafana keys links and repeats on them."""
    for i, panel in enumerate(board.panels, start=1):
        panel.id_val = i
    return board


def render():
    return json.dumps(numbered(build().build()), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with parallel-run.json instead of writing it")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"build.py: {OUT} differs from the builder's output: run "
                  "`.venv/bin/python prometheus/grafana/build.py` and commit the result", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
