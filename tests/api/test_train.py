"""POST train and GET train/{job_id}: validation, 409 while a job runs, and one real background run end to end."""

from __future__ import annotations

import dataclasses
import time

import pytest

from api.factory import create_api
from core.locking import training_lock
from core.modelops import get_ops
from tests.api.conftest import P, TestClient, error_of, snapshot

BAD_BODIES = [
    {"days_back": 0},
    {"days_back": -1},
    {"days_back": 100000},
    {"days_back": 3651},
    {"days_back": "x"},
    {"days_back": "180"},
    {"days_back": 1.5},
    {"days_back": True},
    {"days_back": None},
    {"force_retrain": "yes"},
    {"force_retrain": 1},
    {"force_retrain": True, "days": 30},
    {"force": True},
    [180],
    "train",
]


@pytest.mark.parametrize("payload", BAD_BODIES)
def test_bad_train_bodies_are_422_and_start_nothing(client, settings, payload):
    before = snapshot(settings)
    error_of(client.post(f"{P}/train", json=payload), 422, "invalid_input")
    assert snapshot(settings) == before


def test_422_names_the_field(client):
    assert "colour" in error_of(client.post(f"{P}/train", json={"days_back": 30, "colour": "red"}), 422)
    assert "days_back" in error_of(client.post(f"{P}/train", json={"days_back": 0}), 422, "invalid_input")


def test_train_while_a_job_runs_is_409_naming_the_holder(client, settings):
    with training_lock(settings.models_dir).hold("training (days_back=180)", "nightly-cron"):
        before = snapshot(settings)
        detail = error_of(
            client.post(f"{P}/train", json={"force_retrain": True, "days_back": 30}),
            409,
            "conflict",
        )
        assert snapshot(settings) == before
    assert "nightly-cron" in detail and "since" in detail


def test_unknown_job_is_404(client):
    error_of(client.get(f"{P}/train/0123456789abcdef0123456789abcdef"), 404, "not_found")
    error_of(client.get(f"{P}/train/..%2F..%2Fetc"), 404)


def _wait(client, job_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    seen_stages = set()
    while time.monotonic() < deadline:
        r = client.get(f"{P}/train/{job_id}")
        assert r.status_code == 200, r.text
        run = r.json()
        seen_stages.add(run["stage"])
        if run["finished"]:
            run["seen_stages"] = seen_stages
            return run
        time.sleep(0.2)
    raise AssertionError(f"training job {job_id} did not finish in {timeout:g} s")


def test_train_end_to_end_with_a_missing_body(settings):
    pytest.importorskip("core.training", reason="core/training.py (a colleague's) is not there yet")
    from core.simulator import simulate_fleet

    # The logistic classifier keeps this real run short; the path (job, gate, promote, history) is the same.
    fast = dataclasses.replace(settings, classifier="logistic")
    simulate_fleet(get_ops(fast).db, devices=30, days=45, seed=7)
    with TestClient(create_api(fast, predict_requires_key=False), base_url="http://localhost") as client:
        _train_end_to_end(client)


def _train_end_to_end(client) -> None:
    r = client.post(f"{P}/train", headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "started" and started["force_retrain"] is False and started["days_back"] == 180
    assert started["status_url"].endswith(started["job_id"])
    # A second request while the first runs is refused with the holder named.
    second = client.post(f"{P}/train", json={"force_retrain": True, "days_back": 30})
    later = None
    if second.status_code == 202:  # only if the first run already finished
        later = _wait(client, second.json()["job_id"])
    else:
        assert "anonymous-localhost" in error_of(second, 409, "conflict")
    run = _wait(client, started["job_id"])
    assert run["outcome"] in ("promoted", "rejected"), run
    assert run["actor"] == "anonymous-localhost" and run["trigger"] == "api"
    assert run["progress"] == 1.0 and run["stage"] == "done" and run["log"]
    assert run["metrics"]["accuracy"] is not None and run["checks"]
    assert run["params"]["days_back"] == 180
    status = client.get(f"{P}/models/status").json()
    # The second run, when it was let start (this one had ended), may have promoted a version over this one's.
    promoted_later = later is not None and later["outcome"] == "promoted"
    if run["outcome"] == "promoted":
        live = later["version"] if promoted_later else run["version"]
        assert status["is_trained"] and status["model_metadata"]["version"] == live
        assert client.post(f"{P}/predict", json={"device_id": "nobody", "metrics": _reading()}).status_code == 200
    else:  # nothing went live, unless the second run was promoted
        assert run["version"] is None and status["is_trained"] is promoted_later


def _reading() -> dict:
    from core.constants import METRIC_RANGES

    return {name: (low + high) / 2 for name, (low, high) in METRIC_RANGES.items()}
