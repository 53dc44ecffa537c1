"""deploy/monitoring: the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules`` on alerts_test.yaml: each alert fires on a failing series and stays
quiet on a healthy one); the PrometheusRule carries exactly the same groups; the rules and the
Grafana dashboard use only metrics and labels the worker (or the Pushgateway) really exports.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploy.monitoring.make_prometheusrule import render as render_prometheusrule
from tests.deploy.manifests import DEPLOY
from worker.observability.metrics import BatchMetrics

MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "picscore.rules.yaml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yaml")
DASHBOARD = MONITORING / "grafana-dashboard.json"
#: Added by the Pushgateway to every pushed group; not the worker's own.
PUSHGATEWAY_METRICS = {"push_time_seconds": set(), "push_failure_time_seconds": set()}
#: Labels from where a series was collected: the Pushgateway grouping key or the PodMonitor.
TARGET_LABELS = {"job", "instance", "shard", "namespace", "pod", "app_kubernetes_io_component"}
_SELECTOR = re.compile(r"\b((?:picscore|push)[a-z_:]*)\s*(\{[^}]*\})?")
_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make test-deps` (it installs Debian's prometheus package "
                    "as root, or prints the apt-get command)", pytrace=False)
    return found


def exported_metrics() -> dict[str, set[str]]:
    """Every sample name ``picscore run`` exposes, with its label names, read off a real
    :class:`BatchMetrics` (prometheus_client keeps a collector's type and label names on it)."""
    out: dict[str, set[str]] = {}
    collectors = [value for value in vars(BatchMetrics()).values() if hasattr(value, "_labelnames")]
    assert len(collectors) >= 12
    for collector in collectors:
        labels = set(collector._labelnames)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}[collector._type]
        for suffix in suffixes:
            out[collector._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def recorded_names() -> set[str]:
    return {rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
            if "record" in rule}


def rule_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def _check_names(where: str, expr: str) -> None:
    known = {**exported_metrics(), **PUSHGATEWAY_METRICS}
    for name in recorded_names():
        known[name] = set().union(*known.values())  # a recording keeps its sources' labels
    for name, selector in _SELECTOR.findall(expr):
        assert name in known, f"{where}: {name} is not a metric picscore exports"
        for label in _LABEL.findall(selector or ""):
            allowed = known[name] | TARGET_LABELS
            assert label in allowed, f"{where}: {name} has no label {label!r}"


# ------------------------------------------------------------------------------ promtool


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_each_alert_fires_on_failure_and_stays_quiet_when_healthy() -> None:
    done = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {name for name, _ in rule_expressions() if not name.startswith("picscore:")}
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case.get("alert_rule_test", []) if check["exp_alerts"]}
    quiet = {check["alertname"] for case in cases for check in case.get("alert_rule_test", [])
             if not check["exp_alerts"]}
    assert alerts == fired == quiet


def test_promtool_test_catches_a_rule_that_never_fires(tmp_path: Path) -> None:
    """The unit tests are not vacuous: with one threshold raised out of reach they fail."""
    broken = RULES.read_text().replace("> 0.2\n", "> 1000\n")
    assert broken != RULES.read_text()
    (tmp_path / "deploy/monitoring").mkdir(parents=True)
    (tmp_path / "deploy/monitoring/picscore.rules.yaml").write_text(broken)
    (tmp_path / "tests/deploy").mkdir(parents=True)
    (tmp_path / "tests/deploy" / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    done = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=tmp_path / "tests/deploy",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "PicscoreRetrySurge" in done.stdout + done.stderr


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses PromQL only inside rule files: each panel query becomes a recording rule."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(dashboard_expressions())]}]}
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------ consistency


def test_prometheusrule_has_exactly_the_rules_file_groups() -> None:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert (MONITORING / "prometheusrule.yaml").read_text() == render_prometheusrule(RULES.read_text())


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_queries_use_only_real_metrics_and_labels(source: str) -> None:
    expressions = list(rule_expressions() if source == "rules" else dashboard_expressions())
    assert expressions
    for where, expr in expressions:
        _check_names(where, expr)


def test_name_check_rejects_an_unknown_metric_or_label() -> None:
    with pytest.raises(AssertionError, match="not a metric"):
        _check_names("probe", 'picscore_objects_failed_total{job="picscore"}')
    with pytest.raises(AssertionError, match="no label"):
        _check_names("probe", 'picscore_throttled_total{status="failed"}')


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
        assert all(target["refId"] for target in panel["targets"])


def test_podmonitor_scrapes_the_pods_metrics_port() -> None:
    monitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert {"targetLabel": "job", "replacement": "picscore-live"} in endpoint["relabelings"]
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "picscore"}
