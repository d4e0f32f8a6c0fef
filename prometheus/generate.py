#!/usr/bin/env python3
"""Writes the Prometheus recording rules and alerts of parallel-run.

    python3 prometheus/generate.py            # rewrites prometheus/rules.yml and alerts.yml
    python3 prometheus/generate.py --check    # exit 1 if the shipped files differ from this script's output
    python3 prometheus/generate.py --window 30m --fleet-label cluster --out /etc/prometheus/parallel-run
    python3 prometheus/generate.py --out /tmp/k8s --prometheus-rule monitoring/parallel-run --rule-label release=prometheus

One generator rather than two hand-written files, because a PromQL range
cannot be read from a gauge: the readiness window (`readiness.window_s`,
default 600 s), the hold time of ReadyForCutover and the drain bound of
ShadowsUnaccounted are baked into the rules. An operator who changes them
regenerates; the end-to-end test (tests/e2e/test_prometheus.py) generates the
same rules with a window of seconds, so what it proves is what ships; and
`--check` (run by `make prometheus-test`) keeps the shipped files equal to
this script's default output.

Standard library only: `make prometheus-test` runs it before any venv exists.
"""

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
ALERTS = ("ReadyForCutover", "RegressionAfterCutover", "ShadowFailing", "ShadowsUnaccounted", "ConfigRejected",
          "ConfigDrift", "RoutingMismatch", "UnknownOperationTraffic", "DiffFieldsOverflow")
# How long each alert's condition must hold before it fires (`for:`), by default.
# ReadyForCutover's is `ready_for` (the `readiness.ready_after_s` hysteresis);
# the others: long enough that a rollout in progress (ConfigDrift) or one slow
# minute (ShadowFailing) does not page, zero where one event is already wrong.
DEFAULT_FOR = {
    "RegressionAfterCutover": "5m",
    "ShadowFailing": "10m",
    "ShadowsUnaccounted": "5m",
    "ConfigRejected": "0s",
    "ConfigDrift": "10m",
    "RoutingMismatch": "0s",
    "UnknownOperationTraffic": "15m",
    "DiffFieldsOverflow": "0s",
}


def seconds(duration):
    """A Prometheus duration (`10m`, `1h30m`) in seconds."""
    return sum(int(n) * SECONDS[unit] for n, unit in DURATION_PART.findall(duration))


@dataclass(frozen=True)
class Params:
    """Everything the generated rules depend on; the defaults are what ships."""

    # The readiness window: the filter's `readiness.window_s` default (600 s).
    window: str = "10m"
    # ReadyForCutover's hold: READY on every evaluation for this long (a flap
    # resets it); the filter's `readiness.ready_after_s` default (300 s).
    ready_for: str = "5m"
    # ShadowsUnaccounted: a shadow dispatched longer ago than this must have its
    # outcome. The filter accounts every shadow within its shadow_timeout_ms
    # (at most 600 s, refused above) plus 2 s, so 15m is safe for every valid configuration.
    drain: str = "15m"
    # The Wilson score interval's confidence (`readiness.confidence`, default 0.95: z = 1.959964).
    confidence: float = 0.95
    # Labels that tell fleets apart when one Prometheus scrapes several (e.g. `cluster`, `namespace`):
    # every aggregation keeps them. Empty: every scraped replica is one fleet.
    fleet: tuple = ()
    # The ECDS name of the filter's configuration (envoy/envoy-ecds.yaml: `parallel-run`).
    ecds_name: str = "parallel-run"
    # Minimum shadows in 5 minutes before ShadowFailing judges a failure rate.
    failing_min_shadows: int = 10
    # `for:` per alert, overriding DEFAULT_FOR (and `ready_for` for ReadyForCutover).
    alert_for: dict = field(default_factory=dict)
    # Also write prometheusrule.yaml, both groups as one prometheus-operator
    # PrometheusRule: "NAMESPACE/NAME", and the labels its ruleSelector needs.
    prometheus_rule: str = ""
    rule_labels: dict = field(default_factory=dict)

    def validate(self):
        for name in ("window", "ready_for", "drain"):
            value = getattr(self, name)
            if not DURATION.match(value) or seconds(value) <= 0:
                raise ValueError(f"--{name.replace('_', '-')}: {value!r} is not a positive Prometheus duration (e.g. 10m, 90s)")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"--confidence: {self.confidence} is not a confidence from 0.5 up to (not including) 1, "
                             "such as 0.95")
        for label in self.fleet:
            if not LABEL.match(label) or label in ("operation_id", "le", "side", "diff_path", "__name__"):
                raise ValueError(f"--fleet-label: {label!r} is not a label name that can tell fleets apart")
        if not re.match(r"^[A-Za-z0-9_.~/-]+$", self.ecds_name):
            raise ValueError(f"--ecds-name: {self.ecds_name!r} has characters an ECDS stat name cannot have")
        for alert, value in self.alert_for.items():
            if alert not in ALERTS:
                raise ValueError(f"--for: unknown alert {alert!r} (one of {', '.join(ALERTS)})")
            if not DURATION.match(value):
                raise ValueError(f"--for {alert}: {value!r} is not a Prometheus duration")
        if self.failing_min_shadows < 1:
            raise ValueError("--failing-min-shadows: must be at least 1")
        if self.prometheus_rule and not re.match(rf"^{DNS_LABEL}/{DNS_LABEL}$", self.prometheus_rule):
            raise ValueError(f"--prometheus-rule: {self.prometheus_rule!r} is not NAMESPACE/NAME "
                             "(lower-case letters, digits and '-')")
        for key, value in self.rule_labels.items():
            if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$", key) or \
                    not re.match(r"^([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?)?$", value):
                raise ValueError(f"--rule-label: {key}={value} is not a Kubernetes label")
        if self.rule_labels and not self.prometheus_rule:
            raise ValueError("--rule-label: only with --prometheus-rule")
        return self

    def for_(self, alert):
        default = self.ready_for if alert == "ReadyForCutover" else DEFAULT_FOR[alert]
        return self.alert_for.get(alert, default)


def z_score(confidence):
    """The z of a two-sided normal interval at `confidence`: the quantile at
    (1 + confidence) / 2 by Acklam's rational approximation, the same
    computation as the filter's (core/src/window.rs, z_score), so that the
    rules' lower bound is the filter's to the last digits."""
    p = max((1.0 + min(max(confidence, 0.0), 0.999999999)) / 2.0, 0.5)
    a = (-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2,
         -3.066479806614716e1, 2.506628277459239)
    b = (-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
         -1.328068155288572e1)
    c = (-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)
    d = (7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416)
    if p <= 0.97525:
        q = p - 0.5
        r = q * q
        return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0))
    q = math.sqrt(-2.0 * math.log(1.0 - p))
    return (-(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0))


# ---------------------------------------------------------------- text helpers


def number(x):
    """A float as PromQL reads it, every digit kept (Python's shortest round-trip form)."""
    return repr(x)


class Out:
    """A YAML document written line by line, so that it can carry comments."""

    def __init__(self):
        self.lines = []

    def line(self, text=""):
        self.lines.append(text)

    def comment(self, text, indent):
        for row in text.strip("\n").splitlines():
            self.line((" " * indent + "# " + row).rstrip())

    def block(self, key, text, indent):
        """`key: |-` and the text, indented under it."""
        rows = text.strip("\n").splitlines()
        # YAML takes a block's indentation from its first line.
        if rows[0] != rows[0].lstrip():
            raise ValueError(f"{key}: a block must not start indented: {rows[0]!r}")
        self.line(" " * indent + key + ": |-")
        for row in rows:
            self.line((" " * (indent + 2) + row).rstrip())

    def text(self):
        return "\n".join(self.lines) + "\n"


def quoted(text):
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- the rules


class Rules:
    """Names and expressions of the recording rules for one set of parameters."""

    def __init__(self, p):
        self.p = p
        self.by_op = ", ".join(p.fleet + ("operation_id",))
        self.by_fleet = ", ".join(p.fleet)
        self.windows = [("5m", "5m"), ("1h", "1h"), (p.window, "_window")]

    # Names: `level:metric:operation`, per Prometheus' naming practice. The
    # suffix is the range: 5m, 1h, or _window (the readiness window, whatever
    # its length, so that the CLI and the dashboard need not know it).
    @staticmethod
    def increase(counter, suffix):
        return f"operation_id:parallel_run_{counter}:increase{suffix}"

    @staticmethod
    def comparisons(suffix):
        return f"operation_id:parallel_run_comparisons:increase{suffix}"

    @staticmethod
    def match_rate(suffix):
        return f"operation_id:parallel_run_match_rate:ratio{suffix}"

    @staticmethod
    def lower(suffix):
        return f"operation_id:parallel_run_match_rate_lower:wilson{suffix}"

    @staticmethod
    def failure_rate(suffix):
        return f"operation_id:parallel_run_failure_rate:ratio{suffix}"

    @staticmethod
    def p99(suffix):
        return f"operation_id_side:parallel_run_latency_ms:p99_{suffix.lstrip('_')}"

    @staticmethod
    def p99_ratio(suffix):
        return f"operation_id:parallel_run_latency_p99:ratio{suffix}"

    TARGET = "operation_id:parallel_run_target_match_rate:max"
    MIN_SAMPLES = "operation_id:parallel_run_min_samples:max"
    MAX_FAILURE = "operation_id:parallel_run_max_failure_rate:min"
    MAX_LATENCY = "operation_id:parallel_run_max_latency_ratio:min"
    READY = "operation_id:parallel_run_ready:window"
    WINDOW_SECONDS = "parallel_run:readiness_window:seconds"
    UNACCOUNTED = "replica:parallel_run_shadows_unaccounted:drain"

    def on(self):
        return f"on ({self.by_op})"

    def write(self, out):
        p, by, on = self.p, self.by_op, self.on()
        z = z_score(p.confidence)
        z2 = z * z
        out.comment(f"""
Recording rules of parallel-run: readiness per operation, fleet-wide.
Generated by prometheus/generate.py (window={p.window}, confidence={p.confidence}{', fleet=' + ','.join(p.fleet) if p.fleet else ''}):
edit that script, not this file. Load with rule_files (README, "Prometheus").

Every count is `sum by ({by})` of `increase` over the replicas, so
a fleet is judged on its pooled comparisons, not on an average of per-replica
rates. Thresholds come from the filter's own gauges, joined with `max by` /
`min by` (the strictest replica's value, and one series per operation however
many replicas report it), so no threshold file is needed.

Absent series. `a + b` between two vectors keeps only the label sets present
on both sides: an operation (or a replica) with a `matched` series but no
`unmatched` one would vanish from `matched + unmatched`. So sums of two
counters are written `a + b or a or b` (both, else whichever exists), and
ratios `(a or 0 * b) / (b > 0)`: 0 when the numerator's series is absent, no
sample (rather than NaN) when nothing was compared.""", 0)
        out.line("groups:")
        out.line("  - name: parallel-run.rules")
        out.line("    rules:")

        def rule(record, expr, comment=None):
            if comment:
                out.comment(comment, 6)
            out.line(f"      - record: {record}")
            out.block("expr", expr, 8)

        rule(self.WINDOW_SECONDS, f"vector({number(seconds(p.window))})",
             f"The readiness window these rules were generated with ({p.window}), for the CLI and dashboards.")

        out.line()
        out.comment("Thresholds, per operation, from the configuration Envoy runs.", 6)
        rule(self.TARGET, f"max by ({by}) (parallel_run_operation_target_match_rate_bp) / 10000")
        rule(self.MIN_SAMPLES, f"max by ({by}) (parallel_run_operation_min_samples)")
        rule(self.MAX_FAILURE, f"""
min by ({by}) (parallel_run_operation_max_failure_rate_bp) / 10000
or {on}
0 * {self.MIN_SAMPLES} + 0.05""",
             "`readiness.max_failure_rate`; 0.05 (its default) from a filter that does not export the gauge.")
        rule(self.MAX_LATENCY, f"min by ({by}) (parallel_run_operation_max_latency_ratio_bp > 0) / 10000",
             "`readiness.max_latency_ratio`; no sample when it is not set (0): then latency does not gate.")

        for rng, sfx in self.windows:
            out.line()
            out.comment(f"Over {'the readiness window, ' if sfx == '_window' else ''}{rng}.", 6)
            for counter in ("matched", "unmatched", "shadowed", "failed"):
                rule(self.increase(counter, sfx), f"sum by ({by}) (increase(parallel_run_operation_{counter}[{rng}]))")
            m, u = self.increase("matched", sfx), self.increase("unmatched", sfx)
            rule(self.comparisons(sfx), f"""
{m} + {u}
or {m}
or {u}""", "comparisons = matched + unmatched")
            n = self.comparisons(sfx)
            rule(self.match_rate(sfx), f"({m} or 0 * {n}) / ({n} > 0)")
            rate = self.match_rate(sfx)
            rule(self.lower(sfx), f"""
(
    {rate}
  + {number(z2 / 2)} / {n}
  - {number(z)} * sqrt(
        {rate} * (1 - {rate}) / {n}
      + {number(z2 / 4)} / {n} ^ 2
    )
)
/
(1 + {number(z2)} / {n})""",
                 f"The lower bound of the Wilson score interval of the match rate at confidence {p.confidence}\n"
                 f"(z = {z:.6f}, as the filter computes it):\n"
                 "(p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n). 20 of 20 is 0.839, not 1.")
            sh = self.increase("shadowed", sfx)
            rule(self.failure_rate(sfx), f"({self.increase('failed', sfx)} or 0 * {sh}) / ({sh} > 0)",
                 "failure rate = failed / shadowed")
            rule(self.p99(sfx), f"""
histogram_quantile(0.99,
  sum by ({by}, side, le) (rate(parallel_run_operation_latency_ms_bucket[{rng}])))""",
                 "p99 of each side's response time (side: serving, shadow), in ms.")
            ps = self.p99(sfx)
            rule(self.p99_ratio(sfx), f'{ps}{{side="shadow"}} / ignoring (side) {ps}{{side="serving"}}',
                 "shadow p99 / serving p99: in shadow mode, the candidate's p99 over legacy's.")

        out.line()
        rule(self.READY, f"""
(
    (
        {self.comparisons('_window')}
      >= {on} {self.MIN_SAMPLES}
    )
  and {on}
    (
        {self.lower('_window')}
      >= {on} {self.TARGET}
    )
  and {on}
    (
        {self.failure_rate('_window')}
      <= {on} {self.MAX_FAILURE}
    )
  and {on}
    (
        (
            {self.p99_ratio('_window')}
          <= {on} {self.MAX_LATENCY}
        )
      or {on}
        (
            {self.comparisons('_window')}
          unless {on} {self.MAX_LATENCY}
        )
    )
) * 0 + 1
or {on}
  0 * {self.MIN_SAMPLES}""", f"""
READY (1) or not (0), per operation, over the window ({p.window}): the one readiness rule of
the filter and the CLI. comparisons >= min_samples, and the Wilson lower bound
>= target_match_rate, and failure rate <= max_failure_rate, and, when
max_latency_ratio is set, shadow p99 <= that × serving p99 (no latency data
then means not READY). 0 for every operation the filter reports, so a
dashboard shows "not ready" rather than nothing.""")

        out.line()
        rule(self.UNACCOUNTED, f"""
(
    parallel_run_operation_shadowed offset {p.drain}
  - (
        sum without () ({{__name__=~"parallel_run_operation_(matched|unmatched|failed|abandoned)"}})
      or
        0 * parallel_run_operation_shadowed
    )
)
unless
  resets(parallel_run_operation_shadowed[{seconds(p.drain) + 300:.0f}s]) > 0""", f"""
Per replica and operation: shadows dispatched more than {p.drain} ago that
still have no outcome (matched, unmatched, failed or abandoned) now. Every
shadow gets one within its shadow_timeout_ms (at most 600 s) + 2 s, so any
value above 0 is a shadow the filter lost. In flight now (shadowed - outcomes)
is not the signal: under load it is never 0. Not judged across a restart
(a counter reset), when the older sample belongs to the previous process.""")


# ---------------------------------------------------------------- the alerts


def write_alerts(p, out):
    r = Rules(p)
    by, on = r.by_op, r.on()
    op = "{{ $labels.operation_id }}"

    def q(record, template="{record}{{{sel}}}"):
        """A template fragment printing `record` for the alert's operation;
        `template` makes another query of it ({sel}: the label matchers)."""
        sel = ", ".join([f"{label}=%q" for label in p.fleet + ("operation_id",)])
        args = " ".join(f"$labels.{label}" for label in p.fleet + ("operation_id",))
        expr = template.format(record=record, sel=sel)
        return f'{{{{ with printf "{expr}" {args} | query }}}}{{{{ . | first | value | printf "%.4g" }}}}{{{{ else }}}}none{{{{ end }}}}'

    out.comment(f"""
Alerts of parallel-run. Generated by prometheus/generate.py (window={p.window},
ready_for={p.ready_for}): edit that script, not this file. They use the
recording rules of rules.yml: load both (README, "Prometheus").
Severity: critical = clients are affected now (act); warning = the migration's
signal is wrong or stuck (fix in working hours); info = a decision to make.""", 0)
    out.line("groups:")
    out.line("  - name: parallel-run.alerts")
    out.line("    rules:")

    def alert(name, expr, severity, summary, description):
        out.line(f"      - alert: {name}")
        out.block("expr", expr, 8)
        out.line(f"        for: {p.for_(name)}")
        out.line("        labels:")
        out.line(f"          severity: {severity}")
        out.line("        annotations:")
        out.line(f"          summary: {quoted(summary)}")
        out.block("description", description, 10)

    w = p.window
    alert("ReadyForCutover", f"""
{r.lower('_window')}
and {on} {r.READY} == 1
and {on} min by ({by}) (parallel_run_operation_mode) == 1
and {on} max by ({by}) (parallel_run_operation_mode) == 1""", "info",
          f"{op} is READY for cutover (match-rate lower bound {{{{ $value | humanizePercentage }}}} over {w})",
          f"""
{op} has been READY on every evaluation for {p.for_('ReadyForCutover')}, every replica in shadow mode.
Over the last {w}: {q(r.comparisons('_window'))} comparisons (min_samples {q(r.MIN_SAMPLES)}),
match rate {q(r.match_rate('_window'))}, Wilson lower bound {{{{ $value | printf "%.4g" }}}} >= target {q(r.TARGET)},
failure rate {q(r.failure_rate('_window'))} <= {q(r.MAX_FAILURE)}.
Nothing is broken: this is a decision for the migration team, not a page.
To cut over: check `parallel-run-ctl status {op}` (verdict, fields that differ),
then `parallel-run-ctl cutover {op} --reason "..."` (or set "mode": "cutover"
with a new revision and apply it). Rollback is the previous revision.""")

    alert("RegressionAfterCutover", f"""
(
    (
        {r.match_rate('_window')} < {on} {r.TARGET}
      and {on}
        {r.comparisons('_window')} >= {on} {r.MIN_SAMPLES}
    )
  or {on}
    (
        {r.failure_rate('_window')} > {on} {r.MAX_FAILURE}
      and {on}
        {r.increase('shadowed', '_window')} >= {on} {r.MIN_SAMPLES}
    )
)
and {on}
  max by ({by}) (parallel_run_operation_mode == 2)""", "critical",
          f"{op} is in cutover and its candidate no longer matches legacy",
          f"""
{op} is in cutover on at least one replica: the candidate serves clients and
legacy is the shadow. Over the last {w} its match rate is {q(r.match_rate('_window'))}
(target {q(r.TARGET)}, over {q(r.comparisons('_window'))} comparisons) or its
failure rate {q(r.failure_rate('_window'))} is above {q(r.MAX_FAILURE)}: clients may be getting
answers legacy would not have given.
Now: roll back, `parallel-run-ctl rollback {op} --reason "regression"` (or apply the
previous revision), and confirm with `parallel-run-ctl status {op}` that the mode is shadow.
Then look at what differs: `parallel-run-ctl status {op}` or the dashboard's
"differs most" panel (parallel_run_operation_unmatched_path).""")

    breaker = "sum(increase(parallel_run_operation_skipped_circuit_open{{{sel}}}[5m]))"
    alert("ShadowFailing", f"""
(
    (
        {r.failure_rate('5m')} > {on} {r.MAX_FAILURE}
      and {on}
        {r.increase('shadowed', '5m')} >= {p.failing_min_shadows}
    )
  or {on}
    sum by ({by}) (increase(parallel_run_operation_skipped_circuit_open[5m])) > 0
)
and {on}
  max by ({by}) (parallel_run_operation_mode == 1)""", "warning",
          f"{op}: shadow calls to the candidate fail",
          f"""
{op} is in shadow mode and its shadow calls to the candidate fail: over 5m the failure
rate is {q(r.failure_rate('5m'))} (maximum {q(r.MAX_FAILURE)}), and {q('', breaker)} requests were not
shadowed because its circuit breaker is open (skipped_circuit_open: most shadows failed,
so shadowing pauses and probes). Timeouts, connection errors, 5xx or bodies above
max_body_bytes: failed comparisons count neither way, so the operation cannot become
READY, and the candidate is unhealthy or too slow. Clients are not affected (legacy
serves). Which failure: `parallel-run-ctl status {op}`, or the failed_timeout,
failed_error, failed_5xx and failed_body_too_large counters, e.g.
`sum by (instance) (rate(parallel_run_operation_failed_timeout{{operation_id="{op}"}}[5m]))`.
Check the candidate's health and shadow_timeout_ms.""")

    alert("ShadowsUnaccounted", f"{r.UNACCOUNTED} > 0", "warning",
          f"{op}: shadow calls on {{{{ $labels.instance }}}} never got an outcome",
          f"""
{{{{ $value | printf "%.0f" }}}} shadows of {op} dispatched more than {p.drain} ago on
{{{{ $labels.instance }}}} have no outcome (matched, unmatched, failed or abandoned),
although every shadow gets one within its shadow_timeout_ms + 2 s. The filter is
losing comparisons, so its match rate is judged on part of the traffic. Clients are
not affected. Collect the Envoy log of that replica (`parallel-run` lines) and its
counters (`parallel-run-ctl status --admin ...`) and file a bug; restarting the
replica resets the counters.""")

    ecds_plain = "envoy_extension_config_discovery_http_filter_" + re.sub(r"[^A-Za-z0-9_]", "_", p.ecds_name)
    ecds_tagged = p.ecds_name.replace(".", "\\\\.")  # a PromQL string holding a regex
    tagged = f'{{extension_config_name=~".*{ecds_tagged}.*"}}'
    alert("ConfigRejected", f"""
increase({ecds_plain}_config_fail[10m]) > 0
or increase({ecds_plain}_update_rejected[10m]) > 0
or increase(envoy_extension_config_discovery_http_filter_config_fail{tagged}[10m]) > 0
or increase(envoy_extension_config_discovery_http_filter_update_rejected{tagged}[10m]) > 0""",
          "warning", "Envoy {{ $labels.instance }} refused a parallel-run configuration",
          f"""
{{{{ $labels.instance }}}} refused a new parallel-run configuration in the last 10m
(ECDS config_fail / update_rejected). It keeps running the previous one: the change
you pushed (a cutover, or a ROLLBACK) has NOT happened there.
Why: the proxy's log, `grep 'configuration refused'` (it names the field), or run
`parallel-run-ctl validate FILE` on what you pushed. Fix and push again; confirm
with `parallel-run-ctl status` (or the revision gauge, parallel_run_config_revision).""")

    alert("ConfigDrift", f"""
count by ({r.by_fleet}) (
  count_values by ({r.by_fleet}) ("revision", parallel_run_config_revision)
) > 1""" if p.fleet else """
count(count_values("revision", parallel_run_config_revision)) > 1""", "warning",
          "Replicas run {{ $value }} different parallel-run revisions",
          f"""
The replicas of the fleet{' ' + ' '.join('{{ $labels.' + label + ' }}' for label in p.fleet) if p.fleet else ''} have run {{{{ $value }}}} different configuration
revisions for {p.for_('ConfigDrift')} (parallel_run_config_revision is a fingerprint of each
replica's running revision): some replicas serve an operation from legacy, others
from the candidate, and the fleet's counters mix two rule sets.
Which replica runs what: query `parallel_run_config_revision` (one value per replica);
`python3 envoy/istio/fingerprint.py REVISION` prints the value a revision has.
A replica left behind usually refused the push (see ConfigRejected and its log) or
did not receive it (`istioctl proxy-status`); push again or restart it.""")

    alert("RoutingMismatch", f"""
sum by ({by}) (increase(parallel_run_operation_routing_mismatch[5m])) > 0""", "critical",
          f"{op}: Envoy routes to another cluster than parallel-run chose",
          f"""
{{{{ $value | printf "%.0f" }}}} requests of {op} in the last 5m were sent by Envoy to another
upstream cluster than the filter chose: the route ignores the route header
(x-parallel-run-cluster). A cutover is then a silent no-op (legacy still serves while
served_candidate counts up) and legacy may be compared with itself.
Which replicas: `sum by (instance) (increase(parallel_run_operation_routing_mismatch{{operation_id="{op}"}}[5m]))`;
`parallel-run-ctl status {op}` on one of them shows it too.
Fix the route: it must forward with cluster_header (README, "Loading it into Envoy") or,
on Istio, the VirtualService must match the header. Until then {op} is NOT cut over,
whatever its mode says: roll the cutover back (`parallel-run-ctl rollback {op}`) so that
the configuration says what really happens.""")

    alert("UnknownOperationTraffic", f"""
sum by ({r.by_fleet}) (increase(parallel_run_unknown_operation_requests[15m])) > 0""" if p.fleet else """
sum(increase(parallel_run_unknown_operation_requests[15m])) > 0""", "info",
          "Requests that match no parallel-run operation",
          """
{{ $value | printf "%.0f" }} requests in the last 15m matched no operation of the configuration:
they are served by legacy and never compared. An endpoint is missing from the rule set;
when legacy is switched off, they will break. `parallel-run-ctl status` counts them
("requests matching no operation"); find their paths in Envoy's access log or legacy's,
and add the operation (mode legacy or shadow).""")

    alert("DiffFieldsOverflow", f"""
sum by ({by}) (increase(parallel_run_operation_unmatched_path_overflow[1h])) > 0""", "info",
          f"{op}: more differing fields than max_diff_paths",
          f"""
{op} had differences in more distinct fields than max_diff_paths in the last hour;
those fields have no parallel_run_operation_unmatched_path counter, so the
"differs most" list is incomplete. Fix the top fields first
(`parallel-run-ctl status {op}`), or raise max_diff_paths for {op}.""")


# ---------------------------------------------------------------- main


def prometheus_rule(params, files):
    """Both rule files as one PrometheusRule (prometheus-operator): the same
    groups under `spec.groups`, so that Kubernetes users apply one manifest."""
    namespace, name = params.prometheus_rule.split("/")
    out = Out()
    out.comment("""
parallel-run's recording rules and alerts as a prometheus-operator PrometheusRule.
Generated by prometheus/generate.py --prometheus-rule: the groups of rules.yml
and alerts.yml, unchanged. kubectl apply -f prometheusrule.yaml""", 0)
    out.line("apiVersion: monitoring.coreos.com/v1")
    out.line("kind: PrometheusRule")
    out.line("metadata:")
    out.line(f"  name: {name}")
    out.line(f"  namespace: {namespace}")
    if params.rule_labels:
        out.line("  labels:")
        for key, value in sorted(params.rule_labels.items()):
            out.line(f"    {key}: {quoted(value)}")
    out.line("spec:")
    out.line("  groups:")
    for text in (files["rules.yml"], files["alerts.yml"]):
        rows = text.splitlines()
        for row in rows[rows.index("groups:") + 1:]:
            out.line(("  " + row).rstrip())
    return out.text()


def render(params):
    """{file name: text} for these parameters."""
    params.validate()
    rules, alerts = Out(), Out()
    Rules(params).write(rules)
    write_alerts(params, alerts)
    files = {"rules.yml": rules.text(), "alerts.yml": alerts.text()}
    if params.prometheus_rule:
        files["prometheusrule.yaml"] = prometheus_rule(params, files)
    return files


def parse_args(argv):
    d = Params()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", default=d.window, help=f"readiness window (default {d.window})")
    ap.add_argument("--ready-for", default=d.ready_for, help=f"ReadyForCutover hold time (default {d.ready_for})")
    ap.add_argument("--drain", default=d.drain, help=f"ShadowsUnaccounted bound (default {d.drain})")
    ap.add_argument("--confidence", type=float, default=d.confidence,
                    help=f"of the Wilson lower bound, as readiness.confidence (default {d.confidence})")
    ap.add_argument("--fleet-label", action="append", default=[], help="label telling fleets apart (repeatable)")
    ap.add_argument("--ecds-name", default=d.ecds_name, help=f"ECDS name of the filter config (default {d.ecds_name})")
    ap.add_argument("--failing-min-shadows", type=int, default=d.failing_min_shadows)
    ap.add_argument("--for", dest="alert_for", action="append", default=[], metavar="ALERT=DURATION",
                    help="override one alert's `for:` (repeatable)")
    ap.add_argument("--prometheus-rule", default="", metavar="NAMESPACE/NAME",
                    help="also write prometheusrule.yaml, a prometheus-operator PrometheusRule")
    ap.add_argument("--rule-label", action="append", default=[], metavar="KEY=VALUE",
                    help="a label of the PrometheusRule, e.g. the one your Prometheus' ruleSelector matches")
    ap.add_argument("--out", type=Path, default=HERE, help="directory to write rules.yml and alerts.yml to")
    ap.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.alert_for:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--for {item!r}: expected ALERT=DURATION")
        overrides[name] = value
    labels = {}
    for item in args.rule_label:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--rule-label {item!r}: expected KEY=VALUE")
        labels[key] = value
    params = Params(window=args.window, ready_for=args.ready_for, drain=args.drain, confidence=args.confidence,
                    fleet=tuple(args.fleet_label), ecds_name=args.ecds_name,
                    failing_min_shadows=args.failing_min_shadows, alert_for=overrides,
                    prometheus_rule=args.prometheus_rule, rule_labels=labels)
    return args, params


def main(argv=None):
    args, params = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        files = render(params)
    except ValueError as err:
        print(f"generate.py: {err}", file=sys.stderr)
        return 2
    stale = []
    for name, text in files.items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"generate.py: {', '.join(stale)} differ from the generator's output: "
              "run `python3 prometheus/generate.py` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
