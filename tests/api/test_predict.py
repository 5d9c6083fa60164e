"""POST predict: validated readings, history from the database, model reloads on promote/restore, integrity refusal."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading

import pandas as pd
import pytest

from core import constants as C
from core.db import Device, HealthMetric
from core.features import single_row_features
from core.modelops import get_ops
from core.predict import risk_level
from tests.api.conftest import REASON, P, error_of, promote_feature_model, snapshot
from tests.factories import promote

READING = {
    "response_time": 180.0,
    "error_rate": 0.02,
    "battery_level": 76.0,
    "signal_strength": -67.0,
    "usage_frequency": 11.0,
    "temperature": 24.5,
    "humidity": 47.0,
    "uptime_hours": 300.0,
    "restart_count": 1.0,
    "connection_drops": 2.0,
    "data_transfer_rate": 5.5,
}


def body(device_id: str = "dev-1", **changes: object) -> dict:
    metrics = {**READING, **changes}
    return {"device_id": device_id, "metrics": {k: v for k, v in metrics.items() if v is not None}}


@pytest.fixture
def model(feature_model: str) -> str:
    return feature_model


def add_history(settings, device_id: str, at: dt.datetime, scale: float = 1.0) -> None:
    """One reading of every metric for `device_id` at `at`."""
    db = get_ops(settings).db
    with db.session() as s:
        if s.get(Device, device_id) is None:
            s.add(Device(id=device_id, name=device_id, device_type="sensor", installed_at=at - dt.timedelta(days=400)))
        for name, value in READING.items():
            s.add(
                HealthMetric(
                    device_id=device_id,
                    metric_name=name,
                    metric_value=value * scale,
                    metric_unit=C.METRIC_UNITS[name],
                    timestamp=at,
                )
            )


def test_prediction_shape(client, model):
    r = client.post(f"{P}/predict", json=body())
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) >= {
        "device_id",
        "failure_probability",
        "risk_level",
        "anomaly_score",
        "is_anomaly",
        "model_version",
        "predicted_at",
    }
    assert out["device_id"] == "dev-1" and out["model_version"] == model
    assert 0.0 <= out["failure_probability"] <= 1.0
    assert out["risk_level"] == risk_level(out["failure_probability"])
    assert isinstance(out["is_anomaly"], bool) and math.isfinite(out["anomaly_score"])
    assert out["is_anomaly"] == (out["anomaly_score"] > 0)
    assert dt.datetime.fromisoformat(out["predicted_at"]).tzinfo is not None
    assert out["history_points"] == 0  # an unknown device has an empty history


def test_prediction_uses_the_devices_history_in_the_feature_window(client, model, settings, api_registry):
    now = dt.datetime.now(dt.UTC)
    inside, too_old, future = now - dt.timedelta(hours=30), now - dt.timedelta(days=30), now + dt.timedelta(hours=2)
    add_history(settings, "dev-h", inside, scale=1.3)
    add_history(settings, "dev-h", too_old, scale=5.0)
    add_history(settings, "dev-h", future, scale=9.0)
    out = client.post(f"{P}/predict", json=body("dev-h")).json()
    assert out["history_points"] == len(READING)
    # The same features built from the in-window readings alone give the same probability.
    at = dt.datetime.fromisoformat(out["predicted_at"])
    history = pd.DataFrame(
        [(n, v * 1.3, inside) for n, v in READING.items()], columns=["metric_name", "metric_value", "timestamp"]
    )
    X = single_row_features(history, READING, at)
    loaded = api_registry.load_models()
    assert out["failure_probability"] == pytest.approx(float(loaded.failure_model.predict_proba(X)[0][1]), abs=1e-6)
    assert out["anomaly_score"] == pytest.approx(-float(loaded.anomaly_model.decision_function(X)[0]), abs=1e-6)
    without = client.post(f"{P}/predict", json=body("dev-unknown")).json()
    assert without["history_points"] == 0 and without["anomaly_score"] != out["anomaly_score"]


def test_a_new_promotion_and_a_restore_are_picked_up_without_restart(client, model, api_registry):
    assert client.post(f"{P}/predict", json=body()).json()["model_version"] == "1.0.0"
    promote_feature_model(api_registry, seed=9)
    assert client.post(f"{P}/predict", json=body()).json()["model_version"] == "1.0.1"
    assert client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}).status_code == 200
    assert client.post(f"{P}/predict", json=body()).json()["model_version"] == "1.0.0"


def test_predictions_while_promotions_swap_files_never_fail(client, model, api_registry):
    done = threading.Event()

    def promote_six() -> None:
        try:
            for seed in range(10, 16):
                promote_feature_model(api_registry, seed=seed)
        finally:
            done.set()

    worker = threading.Thread(target=promote_six)
    worker.start()
    seen = set()
    while not done.is_set():
        r = client.post(f"{P}/predict", json=body())
        assert r.status_code == 200, r.text
        seen.add(r.json()["model_version"])
    worker.join()
    assert client.post(f"{P}/predict", json=body()).json()["model_version"] == "1.0.6"
    assert len(seen) > 1


def test_a_model_file_that_fails_its_checksum_is_refused(client, model, api_registry, settings):
    assert client.post(f"{P}/predict", json=body()).status_code == 200
    promote_feature_model(api_registry, seed=9)
    older = next(b for b in api_registry.backups() if b.version == "1.0.0")
    backup = older.files[C.FAILURE_MODEL_FILE]
    assert backup.read_bytes() != (settings.models_dir / C.FAILURE_MODEL_FILE).read_bytes()
    (settings.models_dir / C.FAILURE_MODEL_FILE).write_bytes(backup.read_bytes())  # a valid model, but not this set's
    detail = error_of(client.post(f"{P}/predict", json=body()), 409, "integrity")
    assert C.FAILURE_MODEL_FILE in detail and "does not match" in detail


def test_a_model_on_other_features_is_refused(client, api_registry):
    promote(api_registry)  # the factory's 4 made-up features
    detail = error_of(client.post(f"{P}/predict", json=body()), 409, "integrity")
    assert "feature" in detail and "retrain" in detail


def test_no_model_is_404(client):
    error_of(client.post(f"{P}/predict", json=body()), 404, "not_found")


@pytest.mark.parametrize(
    "change, named",
    [
        ({"battery_level": None}, "battery_level"),
        ({"temperature": "hot"}, "temperature"),
        ({"humidity": "47"}, "humidity"),
        ({"error_rate": True}, "error_rate"),
        ({"restart_count": [1]}, "restart_count"),
        ({"battery_level": 150.0}, "battery_level"),
        ({"signal_strength": 12.0}, "signal_strength"),
        ({"error_rate": -0.5}, "error_rate"),
        ({"wind_speed": 3.0}, "wind_speed"),
    ],
)
def test_bad_metrics_are_422_naming_the_metric(client, model, settings, change, named):
    before = snapshot(settings)
    payload = body()
    for key, value in change.items():
        if value is None:
            payload["metrics"].pop(key)
        else:
            payload["metrics"][key] = value
    detail = error_of(client.post(f"{P}/predict", json=payload), 422, "invalid_input")
    assert named in detail
    assert snapshot(settings) == before


def test_nan_in_raw_json_is_422(client, model):
    raw = json.dumps(body()).replace("24.5", "NaN")
    detail = error_of(client.post(f"{P}/predict", content=raw, headers={"Content-Type": "application/json"}), 422)
    assert "temperature" in detail


@pytest.mark.parametrize(
    "payload",
    [
        {"metrics": READING},
        {"device_id": "", "metrics": READING},
        {"device_id": 7, "metrics": READING},
        {"device_id": "x" * 65, "metrics": READING},
        {"device_id": "d", "metrics": [1, 2]},
        {"device_id": "d", "metrics": READING, "timestamp": "2024-01-01"},
    ],
)
def test_malformed_predict_bodies_are_422(client, model, payload):
    error_of(client.post(f"{P}/predict", json=payload), 422, "invalid_input")


@pytest.mark.parametrize(
    "p, level", [(0.0, "low"), (0.29, "low"), (0.3, "medium"), (0.69, "medium"), (0.7, "high"), (1.0, "high")]
)
def test_risk_levels_follow_the_constants(p, level):
    assert risk_level(p) == level


def test_numbers_beyond_float_range_and_bad_device_ids_are_422_not_500(client, model):
    fields = ", ".join(f'"{k}": {"1" + "0" * 400 if k == "temperature" else v}' for k, v in READING.items())
    huge = '{"device_id": "dev-1", "metrics": {' + fields + "}}"
    r = client.post(f"{P}/predict", content=huge, headers={"Content-Type": "application/json"})
    assert "temperature" in error_of(r, 422, "invalid_input")
    assert "device_id" in error_of(client.post(f"{P}/predict", json=body(device_id="nul\x00")), 422)


def test_metrics_left_out_take_the_devices_latest_readings_and_are_named(client, model, settings):
    now = dt.datetime.now(dt.UTC)
    add_history(settings, "dev-p", now - dt.timedelta(hours=20), scale=1.0)
    add_history(settings, "dev-p", now - dt.timedelta(hours=2), scale=1.1)  # the latest
    partial = {"device_id": "dev-p", "metrics": {"battery_level": 15.0, "error_rate": 0.2}}
    out = client.post(f"{P}/predict", json=partial).json()
    filled = out["filled_metrics"]
    assert set(filled) == set(C.METRIC_NAMES) - {"battery_level", "error_rate"}
    assert filled["temperature"]["value"] == pytest.approx(READING["temperature"] * 1.1)
    # The same prediction as sending the filled values explicitly.
    explicit = {**{k: v["value"] for k, v in filled.items()}, "battery_level": 15.0, "error_rate": 0.2}
    full = client.post(f"{P}/predict", json={"device_id": "dev-p", "metrics": explicit}).json()
    assert full["failure_probability"] == out["failure_probability"] and full["filled_metrics"] == {}
    assert out["failure_probability_percent"] == pytest.approx(round(out["failure_probability"] * 100, 2))
    advice = " ".join(out["recommendations"]).lower()
    assert "battery at 15%" in advice and "error rate 20%" in advice
    # A device with nothing stored: only what is unknown is refused, by name.
    detail = error_of(client.post(f"{P}/predict", json={"device_id": "dev-new", "metrics": {"humidity": 40}}), 422)
    assert "no value for response_time" in detail and "humidity" not in detail.split("no value for")[1].split(":")[0]


def test_a_healthy_reading_gets_one_calm_recommendation(client, model):
    out = client.post(f"{P}/predict", json=body()).json()
    if out["risk_level"] == "low" and not out["is_anomaly"]:
        assert out["recommendations"] == ["Device operating normally: keep monitoring"]
    else:
        assert out["recommendations"] and all(isinstance(r, str) for r in out["recommendations"])
