"""The Prometheus rules, Alertmanager routing and Grafana dashboard in collector-config/,
checked with the real promtool and amtool (Debian's prometheus and prometheus-alertmanager).

- ``promtool check rules`` / ``check config`` on every rule file and the Prometheus config;
- ``promtool test rules`` on every unit-test file, which together fire every alert and also
  hold it quiet;
- ``amtool check-config`` and ``amtool config routes test`` for the routing tree;
- names: every metric the rules and the dashboard read is an otel-mlmon metric under its
  Prometheus name, or a series the recording rules define.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prom_servers import dashboard_exprs, prometheus_name, require_binary, require_module  # noqa: E402

from otel_mlmon import semconv  # noqa: E402

yaml = require_module("yaml", "PyYAML>=6.0")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
PROM_DIR = CONFIG_DIR / "prometheus"
RULE_FILES = sorted(PROM_DIR.glob("*.rules.yml"))
UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = CONFIG_DIR / "alertmanager" / "alertmanager.yml"
DASHBOARD = CONFIG_DIR / "grafana" / "otel-mlmon.json"
SEVERITIES = {"critical", "warning", "info"}


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def _rules(kind: str) -> list[dict]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(rule for rule in group["rules"] if kind in rule)
    return out


def _alert_names() -> list[str]:
    return [rule["alert"] for rule in _rules("alert")]


# Everything a metric selector can name: otel-mlmon metrics under both exporters' names (and
# the histogram series), the spanmetrics connector's metrics, Prometheus' own ALERTS.
def _known_metric_names() -> set[str]:
    names = {"ALERTS", "traces_span_metrics_calls_total", "traces_span_metrics_duration_seconds_bucket"}
    for spec in semconv.METRICS:
        for collector in (False, True):
            name = prometheus_name(spec.name, spec.instrument, spec.unit, collector)
            if spec.instrument == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            else:
                names.add(name)
    return names


_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile",
    "avg_over_time", "max_over_time", "vector", "round", "label_values", "by", "without", "on",
    "group_left", "group_right", "unless", "and", "or", "offset", "bool", "le", "ignoring", "ln", "scalar", "abs",
}


def _metric_names_in(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (identifiers outside {...} and strings,
    plus __name__ regex alternatives)."""
    names = set()
    for match in re.finditer(r'__name__=~"([^"]+)"', expr):
        base, _, optional = match.group(1).partition("(")
        names.add(base)
        if optional:
            names.add(base + optional.rstrip(")?"))
    stripped = re.sub(r'"[^"]*"', '""', expr)
    stripped = re.sub(r"\{[^}]*\}", "{}", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "[]", stripped)
    stripped = re.sub(r"\b\d[\d.]*[a-z]*", " ", stripped)  # numbers and durations (offset 1h)
    stripped = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
        if token not in _FUNCTIONS and not token.startswith("$"):
            names.add(token)
    return names


# ----------------------------------------------------------------------------- promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path):
    result = _run([require_binary("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config():
    result = _run([require_binary("promtool"), "check", "config", "prometheus.yml"], cwd=PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    # the config loads both rule files
    for path in RULE_FILES:
        assert path.name in result.stdout


@pytest.mark.parametrize("path", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(path):
    result = _run([require_binary("promtool"), "test", "rules", path.name], cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout


def test_every_alert_is_unit_tested_firing_and_quiet():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        document = yaml.safe_load(path.read_text())
        assert {f"../{p.name}" for p in RULE_FILES} <= set(document["rule_files"]), path.name
        for test in document["tests"]:
            for case in test.get("alert_rule_test", ()):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = set(_alert_names())
    assert alerts - firing == set(), f"alerts never fired in a unit test: {sorted(alerts - firing)}"
    assert alerts - quiet == set(), f"alerts never held quiet in a unit test: {sorted(alerts - quiet)}"
    assert firing | quiet <= alerts, f"unit tests of unknown alerts: {sorted((firing | quiet) - alerts)}"


# ----------------------------------------------------------------------------- rule content
def test_alerts_have_severity_and_text():
    names = _alert_names()
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in _rules("alert"):
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["alert"].startswith("ML"), rule["alert"]


def test_rules_read_only_otel_mlmon_metrics_and_recorded_series():
    recorded = {rule["record"] for rule in _rules("record")}
    known = _known_metric_names() | recorded
    for rule in _rules("record") + _rules("alert"):
        unknown = _metric_names_in(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads unknown series {sorted(unknown)}"
    # every recorded series is used by an alert, another rule or the dashboard
    used = set()
    for rule in _rules("record") + _rules("alert"):
        used |= _metric_names_in(rule["expr"])
    used |= {name for expr in _dashboard_exprs() for name in _metric_names_in(expr)}
    assert recorded <= used, f"recorded but never read: {sorted(recorded - used)}"


def test_latency_slo_bound_is_one_bucket_boundary():
    bounds = set()
    for rule in _rules("record"):
        if "inference_latency_slo_errors" in rule["record"]:
            bounds |= set(re.findall(r'le="([^"]+)"', rule["expr"]))
    assert len(bounds) == 1, f"the SLO rules disagree on the bound: {bounds}"
    assert float(bounds.pop()) in semconv.DURATION_BUCKETS
    windows = {rule["record"].rsplit("_", 1)[1] for rule in _rules("record")
               if "inference_latency_slo_errors" in rule["record"]}
    assert windows == {"rate5m", "rate30m", "rate1h", "rate2h", "rate6h", "rate1d"}
    for rule in _rules("record"):
        if "inference_latency_slo_errors" in rule["record"]:
            window = rule["record"].rsplit("_rate", 1)[1]
            assert set(re.findall(r"\[(\w+)\]", rule["expr"])) == {window}, rule["record"]


def test_recording_rules_aggregate_the_semconv_attributes():
    # every label a rule groups by is a Prometheus form of an otel-mlmon attribute (or job/le)
    attributes = {a.replace(".", "_") for spec in semconv.METRICS for a in spec.attributes}
    for rule in _rules("record") + _rules("alert"):
        for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            for label in (label.strip() for label in group.split(",")):
                assert label in attributes | {"job", "instance", "le"}, (rule.get("record") or rule.get("alert"), label)


# ----------------------------------------------------------------------------- alertmanager
def test_amtool_check_config():
    result = _run([require_binary("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"severity": "critical", "ml_model_name": "churn"}, "ml-oncall-critical"),
    ({"severity": "warning", "ml_model_name": "churn"}, "ml-team-warning"),
    ({"severity": "info", "ml_model_name": "churn"}, "ml-team-info"),
    ({"severity": "critical", "ml_model_name": "fraud-scorer"}, "fraud-team,ml-oncall-critical"),
    ({"severity": "warning", "ml_model_name": "fraud-scorer"}, "fraud-team,ml-team-warning"),
])
def test_alertmanager_routes(labels, receivers):
    args = [require_binary("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}"]
    args += [f"{key}={value}" for key, value in labels.items()]
    result = _run(args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_alertmanager_routes_every_severity_and_inhibits_known_alerts():
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    routed = {m.split("=")[-1].strip().strip('"') for route in config["route"]["routes"]
              for m in route.get("matchers", ()) if m.startswith("severity")}
    assert {rule["labels"]["severity"] for rule in _rules("alert")} <= routed
    alerts = set(_alert_names())
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            assert matcher.split("=")[-1].strip().strip('"') in alerts, matcher
    receivers = {r["name"] for r in config["receivers"]}
    assert all(r.get("webhook_configs") for r in config["receivers"])
    assert {route["receiver"] for route in config["route"]["routes"]} | {config["route"]["receiver"]} <= receivers


# ----------------------------------------------------------------------------- dashboard
def _panels() -> list[dict]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", ()))
    return out


def _dashboard_exprs() -> list[str]:
    return dashboard_exprs(DASHBOARD)


def test_dashboard_panels_and_names():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "otel-mlmon" and dashboard["panels"]
    titles = " | ".join(p["title"] for p in _panels()).lower()
    for topic in ("latency", "throughput", "error", "drift", "realized vs estimated", "anomal", "cpu",
                  "memory", "gpu"):
        assert topic in titles, f"no panel about {topic}"
    ids = [p["id"] for p in _panels()]
    assert len(ids) == len(set(ids))
    recorded = {rule["record"] for rule in _rules("record")}
    known = _known_metric_names() | recorded
    for expr in _dashboard_exprs():
        unknown = _metric_names_in(expr) - known
        assert not unknown, f"dashboard query {expr!r} reads unknown series {sorted(unknown)}"
    for panel in _panels():
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    # resources and GPU memory use the semconv names
    exprs = " ".join(_dashboard_exprs())
    for spec in (semconv.PROCESS_CPU_TIME, semconv.PROCESS_MEMORY_USAGE, semconv.GPU_MEMORY_USAGE,
                 semconv.GPU_MEMORY_LIMIT, semconv.GPU_MEMORY_RESERVED):
        assert prometheus_name(spec.name, spec.instrument, spec.unit) in exprs, spec.name


def test_readme_name_table_matches_the_translation():
    readme = (CONFIG_DIR / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[1] in {s.instrument for s in semconv.METRICS}:
            rows[cells[0].strip("`")] = cells
    assert set(rows) == {spec.name for spec in semconv.METRICS}, "README table out of date with semconv"
    for spec in semconv.METRICS:
        _, instrument, unit, python_cell, collector_cell = rows[spec.name]
        assert (instrument, unit) == (spec.instrument, f"`{spec.unit}`")
        assert f"`{prometheus_name(spec.name, spec.instrument, spec.unit)}" in python_cell
        assert f"`{prometheus_name(spec.name, spec.instrument, spec.unit, collector=True)}" in collector_cell
