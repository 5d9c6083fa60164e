"""POST predict is recorded in the prediction log; GET models/performance reports realised figures with counts."""

from __future__ import annotations

import dataclasses
import datetime as dt

from core import prediction_log as P
from core.db import DeviceFailure
from core.modelops import get_ops
from tests.api.conftest import P as PREFIX
from tests.api.conftest import TestClient, create_api, error_of
from tests.api.test_predict import READING, add_history, body


def test_every_prediction_served_is_logged_with_version_probability_decision_and_latency(
    client, feature_model, settings
):
    add_history(settings, "dev-log", dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    answers = [client.post(f"{PREFIX}/predict", json=body("dev-log")).json() for _ in range(3)]
    writer = get_ops(settings).prediction_log()
    assert writer is not None and writer.flush(5.0)
    frame = P.read_frame(get_ops(settings).db, full=True)
    assert len(frame) == 3 and set(frame["device_id"]) == {"dev-log"}
    assert set(frame["model_version"]) == {feature_model} and set(frame["source"]) == {"api"}
    assert sorted(frame["probability"]) == sorted(a["failure_probability"] for a in answers)
    assert (frame["decision"] == (frame["probability"] > 0.5).astype(int)).all()
    row = P.read_frame(get_ops(settings).db, full=True)
    assert (row["day"] == row["predicted_at"].dt.floor("D")).all()
    assert writer.stats().written == 3 and writer.stats().dropped == 0


def test_an_invalid_reading_is_not_logged(client, feature_model, settings):
    error_of(client.post(f"{PREFIX}/predict", json=body(error_rate=7.0)), 422)
    get_ops(settings).prediction_log().flush(5.0)
    assert P.count(get_ops(settings).db) == 0


def test_prediction_log_off_writes_nothing(settings, feature_model):
    off = dataclasses.replace(settings, prediction_log=False)
    with TestClient(create_api(off, predict_requires_key=False), base_url="http://localhost") as c:
        assert c.post(f"{PREFIX}/predict", json={"device_id": "d", "metrics": READING}).status_code == 200
        assert get_ops(off).prediction_log() is None
        assert P.count(get_ops(off).db) == 0


def test_performance_reports_each_version_with_counts_and_says_too_few(client, feature_model, settings):
    db = get_ops(settings).db
    now = dt.datetime.now(dt.UTC)
    rows = []
    for day_back in range(20, 25):  # horizons long passed
        at = now - dt.timedelta(days=day_back)
        rows += [P._row(f"dev-{i}", at, feature_model, 0.9 if i < 2 else 0.1, 1.0) for i in range(4)]
    P.insert_rows(db, rows)
    add_history(settings, "dev-0", now - dt.timedelta(days=40))  # the device must exist for its failure row
    with db.session() as s:
        s.add(DeviceFailure(device_id="dev-0", failed_at=now - dt.timedelta(days=18), kind="hardware"))
    out = client.get(f"{PREFIX}/models/performance").json()
    assert out["live_version"] == feature_model and out["horizon_days"] == 7
    (version,) = out["versions"]
    realised = version["realised"]
    assert version["model_version"] == feature_model and version["role"] == "live"
    # dev-0 failed 18 days ago: its 5 scored days all had the failure within 7 days; dev-0 and dev-1 were flagged.
    assert realised["outcomes"] == 20 and realised["positives"] == 5 and realised["predicted_positive"] == 10
    assert realised["precision"] == 0.5 and realised["recall"] == 1.0 and realised["roc_auc"] > 0.5
    assert realised["enough_outcomes"] is False and realised["note"].startswith("too few outcomes yet")
    assert sum(w["outcomes"] for w in version["weeks"]) == 20
    assert "holdout" in version and version["holdout"]["f1_score"] == 0.70
    error_of(client.get(f"{PREFIX}/models/performance", params={"since": "yesterday"}), 422)
    error_of(client.get(f"{PREFIX}/models/performance", params={"since": "2026-02-02", "until": "2026-01-01"}), 422)


def test_performance_with_nothing_logged_is_an_empty_list(client, feature_model):
    out = client.get(f"{PREFIX}/models/performance").json()
    assert out["versions"] == [] and out["min_outcomes"] == 30
