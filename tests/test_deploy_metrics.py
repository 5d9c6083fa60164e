"""deploy/ for metrics: the scrape config hits our route, compose provisions Grafana from real files, and every
panel of the Grafana dashboard queries metrics (and labels) a real scrape exports (Grafana cannot run here)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from core.modelops import ModelOps
from tests.metrics_world import build_metrics_world, parse
from tests.test_deploy import api_paths, compose

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "model-ops-dashboard.json"
SELECTOR = re.compile(r"\b(model_ops_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")


def prometheus_config() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus.yml").read_text())


def mounts(service: dict) -> dict[str, str]:
    """container path -> host path (relative to deploy/) of a compose service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = source
    return found


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def targets() -> list[tuple[str, dict]]:
    return [(panel["title"], target) for panel in dashboard()["panels"] for target in panel.get("targets", [])]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[str, str]]]:
    """Sample name -> its (label, value) pairs, from a real scrape of a world with a model, runs, drift, realised
    figures, an alert (the model is past a tiny retraining interval) and a prediction counted: every family the
    dashboard plots has series then."""
    world = build_metrics_world(tmp_path_factory.mktemp("deploy-metrics"))
    ops = ModelOps(dataclasses.replace(world.settings, retrain_interval_hours=0.0001))
    try:
        ops.observe_prediction("1.0.0", 422, 0.004)
        ops.metrics()
        ops.metrics_refresher.wait(60)
        samples = parse(ops.metrics()[0])
    finally:
        ops.dispose()
    labels: dict[str, set[tuple[str, str]]] = {}
    for name, pairs in samples:
        labels.setdefault(name, set()).update(pairs)
    return labels


def test_the_scrape_job_reads_our_metrics_route_on_the_compose_service():
    (job,) = prometheus_config()["scrape_configs"]
    assert ("GET", job["metrics_path"]) in api_paths()
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    services = compose()["services"]
    assert host in services and services[host]["ports"] == [f"{port}:{port}"]
    # The service listens beyond loopback, so reads need a key: the file Prometheus reads is the one compose writes.
    assert job["authorization"]["type"] == "Bearer"
    command = " ".join(services["prometheus"]["command"])
    assert f"> {job['authorization']['credentials_file']}" in command and "$${API_KEY}" in command
    config_flag = re.search(r"--config\.file=(\S+)", command).group(1)
    assert mounts(services["prometheus"])[config_flag] == "./prometheus.yml"


def test_grafana_is_provisioned_from_files_that_exist_and_point_at_prometheus():
    services = compose()["services"]
    grafana = mounts(services["grafana"])
    for source in grafana.values():
        assert (DEPLOY / source).exists(), source
    provisioning = DEPLOY / grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "model-ops.yml").read_text())["providers"]
    dashboard_in_container = next(t for t, s in grafana.items() if s.endswith("model-ops-dashboard.json"))
    assert str(Path(dashboard_in_container).parent) == provider["options"]["path"]
    assert (DEPLOY / grafana[dashboard_in_container]).resolve() == DASHBOARD


def test_the_dashboard_has_a_prometheus_datasource_variable_used_by_every_panel():
    board = dashboard()
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == ref, panel["title"]
        assert panel["targets"] and all(t["datasource"] == ref and t["expr"].strip() for t in panel["targets"])


def test_the_dashboard_plots_what_the_brief_asks_for():
    exprs = " ".join(t["expr"] for _, t in targets())
    for needed in (
        "rate(model_ops_prediction_requests_total",
        "rate(model_ops_prediction_errors_total",
        "histogram_quantile(0.5, sum by (le, model_version) (rate(model_ops_prediction_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, model_version) (rate(model_ops_prediction_latency_seconds_bucket",
        'model_ops_holdout_metric{metric="f1_score"}',
        'model_ops_realised_metric{metric="f1_score"}',
        "model_ops_drift_psi",
        "model_ops_seconds_since_last_successful_training",
        "model_ops_alerts_firing",
        "model_ops_training_runs_total",
    ):
        assert needed in exprs, needed


def test_every_panel_queries_metrics_and_labels_the_endpoint_exports(exported):
    assert exported, "the scrape exported nothing"
    for title, target in targets():
        expr = target["expr"]
        used = SELECTOR.findall(expr)
        assert used, f"{title}: no model_ops_ metric in {expr!r}"
        labels_available: set[str] = set()
        for name, matchers in used:
            assert name in exported, f"{title}: {name} is not exported"
            own = {label for label, _ in exported[name]}
            labels_available |= own
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in own, f"{title}: {name} has no label {label}"
            for pair in re.findall(r'(\w+)\s*=\s*"([^"]*)"', matchers):
                assert pair in exported[name], f"{title}: no {name} series has {pair[0]}={pair[1]!r}"
        for group in GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in labels_available, f"{title}: no metric in {expr!r} has label {label}"
        for legend in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            assert legend in labels_available, f"{title}: legend label {legend} is not on its series"
