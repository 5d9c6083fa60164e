"""GET alerts, POST acknowledge and silence: the alert engine over HTTP, with the write rules of every other change."""

from __future__ import annotations

import dataclasses

from api.factory import create_api
from core.config import Settings
from core.registry import Registry
from tests.api.conftest import P, TestClient, error_of, make_key
from tests.factories import promote

LOW = "metric_below_threshold:accuracy"


def _low_accuracy(client: TestClient, api_registry: Registry) -> dict:
    promote(api_registry, seed=1, accuracy=0.65)
    body = client.get(f"{P}/alerts").json()
    return next(a for a in body["alerts"] if a["rule"] == LOW)


def _fired(client: TestClient) -> list[dict]:
    return client.get(f"{P}/models/events", params={"kind": "alert_fired"}).json()["events"]


def test_reading_alerts_fires_each_rule_once(client: TestClient, api_registry: Registry) -> None:
    alert = _low_accuracy(client, api_registry)
    assert alert["state"] == "firing" and alert["level"] == "red" and alert["kind"] == "metric_below_threshold"
    for _ in range(3):
        body = client.get(f"{P}/alerts").json()
    assert body["firing"] == body["counts"]["firing"] >= 1 and body["evaluated_at"]
    low = [e for e in _fired(client) if e["details"]["alert_id"] == alert["id"]]
    assert len(low) == 1 and low[0]["details"]["rule"] == "metric_below_threshold"


def test_acknowledge_and_silence_need_an_operator_and_a_reason(settings: Settings, client, api_registry) -> None:
    alert = _low_accuracy(client, api_registry)
    viewer, operator = make_key(settings, "watcher", "viewer"), make_key(settings, "oncall", "operator")
    url = f"{P}/alerts/{alert['id']}"
    error_of(client.post(f"{url}/acknowledge", json={"reason": "x"}), 401)
    error_of(client.post(f"{url}/acknowledge", json={"reason": "x"}, headers=viewer), 403, "forbidden")
    error_of(client.post(f"{url}/acknowledge", json={}, headers=operator), 422, "invalid_input")
    error_of(client.post(f"{P}/alerts/999/acknowledge", json={"reason": "x"}, headers=operator), 404, "not_found")
    done = client.post(f"{url}/acknowledge", json={"reason": "retraining tonight"}, headers=operator)
    assert done.status_code == 200, done.text
    assert done.json()["alert"]["state"] == "acknowledged"
    assert done.json()["alert"]["acknowledged"]["by"] == "oncall"
    error_of(client.post(f"{url}/acknowledge", json={"reason": "again"}, headers=operator), 409, "conflict")

    error_of(client.post(f"{url}/silence", json={"minutes": 0, "reason": "x"}, headers=operator), 422)
    error_of(client.post(f"{url}/silence", json={"minutes": 30}, headers=operator), 422, "invalid_input")
    silenced = client.post(f"{url}/silence", json={"minutes": 30, "reason": "maintenance"}, headers=operator)
    assert silenced.status_code == 200 and silenced.json()["alert"]["state"] == "silenced"
    listed = next(a for a in client.get(f"{P}/alerts").json()["alerts"] if a["id"] == alert["id"])
    assert listed["state"] == "silenced" and listed["silenced"]["reason"] == "maintenance"
    kinds = [e["kind"] for e in client.get(f"{P}/models/events").json()["events"] if e["kind"].startswith("alert_")]
    assert kinds.count("alert_acknowledged") == 1 and kinds.count("alert_silenced") == 1


def test_a_better_model_resolves_the_alert(client: TestClient, api_registry: Registry) -> None:
    alert = _low_accuracy(client, api_registry)
    promote(api_registry, seed=2, accuracy=0.85)
    body = client.get(f"{P}/alerts").json()  # the files changed: the read evaluates first
    assert alert["id"] not in [a["id"] for a in body["alerts"]]
    assert body["recent"][0]["id"] == alert["id"] and body["recent"][0]["state"] == "resolved"


def test_without_the_database_alerts_are_503_with_the_reason(settings: Settings, tmp_path) -> None:
    # A directory is not a database file: SQLite cannot open it, as if the server were unreachable.
    broken = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}")
    with TestClient(create_api(broken, predict_requires_key=False), base_url="http://localhost") as down:
        assert "unreachable" in error_of(down.get(f"{P}/alerts"), 503, "unavailable")
        error_of(down.post(f"{P}/alerts/1/acknowledge", json={"reason": "x"}), 503, "unavailable")
