"""GET /api/metrics on the REAL server (streamlit run dashboard/server.py): counters move with real HTTP requests."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.factory import create_api
from core.db import Database
from core.history import History
from core.registry import Registry
from tests.api.conftest import AUTH, promote_feature_model
from tests.api.test_predict import body as predict_body
from tests.metrics_world import Samples, labelled, parse, value
from tests.server import free_port, http_get, launch, server_command, stop, wait_until

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("metrics-server")
    models = tmp / "models"
    models.mkdir()
    db_url = f"sqlite:///{tmp / 'server.db'}"
    db = Database(db_url)
    registry = Registry(models, db)
    promote_feature_model(registry, seed=3)
    port = free_port()
    env = {"DATABASE_URL": db_url, "MODELS_DIR": str(models), "DASHBOARD_BOOTSTRAP": "0"}
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (open for the server's lifetime, closed below)
    proc = launch(env, log, server_command(port))
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until(proc, lambda: http_get(f"{base}/api/metrics")[0] == 200, timeout=60):
            pytest.fail(f"server did not start: {(tmp / 'server.log').read_text()[-3000:]}")
        yield {"base": base, "registry": registry, "db_file": str(tmp / "server.db"), "db_url": db_url}
    finally:
        stop(proc)
        log.close()
        db.dispose()


def scrape(base: str) -> Samples:
    status, raw = http_get(f"{base}/api/metrics", timeout=10)
    assert status == 200, raw[:500]
    return parse(raw)


def post(base: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"{base}/api/predictions/predict", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)


def test_requests_errors_and_latency_move_with_real_requests(server):
    base, live = server["base"], server["registry"].current().version
    before = scrape(base)
    started = time.perf_counter()
    statuses = [post(base, json.dumps(predict_body(f"dev-{i}")).encode(), JSON) for i in range(3)]
    statuses.append(post(base, json.dumps({"device_id": "dev-x", "metrics": {"temperature": "hot"}}).encode(), JSON))
    statuses.append(post(base, b"device_id=dev-y", {"Content-Type": "application/x-www-form-urlencoded"}))
    elapsed = time.perf_counter() - started
    assert statuses == [200, 200, 200, 422, 415]
    after = scrape(base)
    assert delta(before, after, "model_ops_prediction_requests_total", model_version=live) == 5
    assert delta(before, after, "model_ops_prediction_errors_total", model_version=live, status="422") == 1
    assert delta(before, after, "model_ops_prediction_errors_total", model_version=live, status="415") == 1
    assert delta(before, after, "model_ops_prediction_latency_seconds_count", model_version=live) == 5
    assert delta(before, after, "model_ops_prediction_latency_seconds_bucket", model_version=live, le="+Inf") == 5
    assert 0 < delta(before, after, "model_ops_prediction_latency_seconds_sum", model_version=live) < elapsed
    # the scrape itself is not a prediction
    assert delta(before, scrape(base), "model_ops_prediction_requests_total", model_version=live) == 5


def test_each_prediction_is_counted_under_the_version_that_served_it(server):
    base, registry = server["base"], server["registry"]
    old = registry.current().version
    new = promote_feature_model(registry, seed=9).version
    assert new != old
    before = scrape(base)
    answers = []
    for i in range(2):
        request = urllib.request.Request(
            f"{base}/api/predictions/predict", data=json.dumps(predict_body(f"d{i}")).encode(), headers=JSON
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append(json.loads(response.read())["model_version"])
    after = scrape(base)
    assert answers == [new, new]
    assert delta(before, after, "model_ops_prediction_requests_total", model_version=new) == 2
    assert delta(before, after, "model_ops_prediction_latency_seconds_count", model_version=new) == 2
    assert delta(before, after, "model_ops_prediction_requests_total", model_version=old) == 0
    assert value(after, "model_ops_live_model_info", model_version=new, data_source="database") == 1


def test_training_runs_written_by_another_process_are_counted_from_the_database(server):
    db = Database(server["db_url"])
    try:
        history = History(db)
        for status in ("promoted", "rejected", "rejected", "failed"):
            history.finish_run(history.start_run(trigger="cron", actor="cron", params={}), status=status)
    finally:
        db.dispose()
    samples = scrape(server["base"])
    with sqlite3.connect(server["db_file"]) as conn:
        expected = dict(conn.execute("SELECT status, COUNT(*) FROM training_runs GROUP BY status").fetchall())
    assert expected == {"promoted": 1, "rejected": 2, "failed": 1}
    runs = {dict(k)["outcome"]: v for k, v in labelled(samples, "model_ops_training_runs_total").items()}
    assert runs == {"promoted": 1, "rejected": 2, "failed": 1, "candidate": 0, "skipped": 0}
    assert 0 <= value(samples, "model_ops_seconds_since_last_successful_training") < 60


def test_metrics_need_a_key_where_reads_do(keyed_settings):
    api = create_api(keyed_settings, predict_requires_key=False, reads_need_key=True)
    with TestClient(api, base_url="http://localhost") as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(parse(answer.text), "model_ops_database_up") == 1


def test_a_prediction_refused_without_the_database_counts_as_an_error_of_the_live_version(
    settings, tmp_path, two_versions
):
    # A directory is not a database file: SQLite cannot open it, as if the server were unreachable.
    broken = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}")
    with TestClient(create_api(broken, predict_requires_key=False), base_url="http://localhost") as client:
        before = parse(client.get("/metrics").text)
        answer = client.post("/predictions/predict", json=predict_body())
        after = parse(client.get("/metrics").text)
    assert answer.status_code == 503
    assert delta(before, after, "model_ops_prediction_errors_total", model_version="1.0.1", status="503") == 1
    assert delta(before, after, "model_ops_prediction_requests_total", model_version="1.0.1") == 1
    assert value(after, "model_ops_database_up") == 0
