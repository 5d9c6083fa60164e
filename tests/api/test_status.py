"""GET models/status, models/version and models/health: the guide's jq paths, no-model and broken-model answers."""

from __future__ import annotations

import datetime as dt
import os

from api.schemas import StatusResponse
from core import constants as C
from tests.api.conftest import P
from tests.factories import promote


def test_status_without_model_is_200_with_nulls(client):
    r = client.get(f"{P}/models/status")
    assert r.status_code == 200
    body = r.json()
    assert body["is_trained"] is False
    for key in ("model_performance", "feature_columns", "model_metadata", "last_updated"):
        assert body[key] is None
    StatusResponse.model_validate(body)


def test_status_keeps_the_guides_jq_paths(client, api_registry):
    promote(api_registry, accuracy=0.65)
    body = client.get(f"{P}/models/status").json()
    assert body["is_trained"] is True
    meta = body["model_metadata"]
    assert meta["model_performance"]["accuracy"] == 0.65
    assert meta["version"] == "1.0.0"
    assert dt.datetime.fromisoformat(meta["training_date"])
    assert body["model_performance"]["accuracy"] == 0.65
    # The feature names once, not twice: the payload stays small enough to read in a terminal.
    assert body["feature_columns"] == api_registry.current().metadata["feature_columns"]
    assert body["feature_count"] == len(body["feature_columns"]) and "feature_columns" not in meta
    assert meta["artifacts"][C.FAILURE_MODEL_FILE]["sha256"]
    StatusResponse.model_validate(body)


def test_status_follows_each_promotion_at_once(client, api_registry):
    for seed, accuracy in ((1, 0.71), (2, 0.72), (3, 0.73)):
        promote(api_registry, seed=seed, accuracy=accuracy)
        assert client.get(f"{P}/models/status").json()["model_metadata"]["model_performance"]["accuracy"] == accuracy


def test_last_updated_is_when_the_files_changed_not_the_request_time(client, api_registry, settings):
    promote(api_registry)
    past = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    newest = past + 3600
    for i, name in enumerate(C.SET_FILES):
        os.utime(settings.models_dir / name, (past, newest if i == 1 else past))
    body = client.get(f"{P}/models/status").json()
    assert dt.datetime.fromisoformat(body["last_updated"]) == dt.datetime(2024, 3, 1, 13, 0, tzinfo=dt.UTC)


def test_status_with_unreadable_metadata_reports_not_trained(client, api_registry, settings):
    promote(api_registry)
    (settings.models_dir / C.METADATA_FILE).write_text("{not json")
    body = client.get(f"{P}/models/status").json()
    assert body["is_trained"] is False and body["model_metadata"] is None
    assert any("not valid JSON" in p for p in body["problems"])


def test_status_with_a_missing_model_file_is_not_trained(client, api_registry, settings):
    promote(api_registry)
    (settings.models_dir / C.ANOMALY_MODEL_FILE).unlink()
    body = client.get(f"{P}/models/status").json()
    assert body["is_trained"] is False
    assert body["model_metadata"]["version"] == "1.0.0"
    assert any(C.ANOMALY_MODEL_FILE in p for p in body["problems"])


def test_version_follows_promotions(client, api_registry):
    assert client.get(f"{P}/models/version").json()["version"] is None
    promote(api_registry, seed=1)
    promote(api_registry, seed=2)
    body = client.get(f"{P}/models/version").json()
    assert (body["version"], body["previous_version"], body["is_trained"]) == ("1.0.1", "1.0.0", True)
    assert body["actor"] == "tester" and body["trigger"] == "test"


def test_health_of_a_good_set(client, api_registry):
    promote(api_registry)
    r = client.get(f"{P}/models/health")
    assert r.status_code == 200
    body = r.json()
    assert body["healthy"] is True and body["version"] == "1.0.0"
    for name in C.MODEL_FILES:
        f = body["files"][name]
        assert f["present"] and f["loadable"] and f["checksum_ok"] and f["bytes"] > 0
        assert f["sha256"] == f["expected_sha256"]
    assert body["database"]["reachable"] is True


def test_health_of_a_tampered_set_is_200_unhealthy(client, api_registry, settings):
    promote(api_registry)
    with open(settings.models_dir / C.FAILURE_MODEL_FILE, "ab") as fh:
        fh.write(b"tampered")
    r = client.get(f"{P}/models/health")
    assert r.status_code == 200
    body = r.json()
    assert body["healthy"] is False
    assert body["files"][C.FAILURE_MODEL_FILE]["checksum_ok"] is False
    assert body["files"][C.ANOMALY_MODEL_FILE]["checksum_ok"] is True


def test_health_without_model_is_200_unhealthy(client):
    r = client.get(f"{P}/models/health")
    assert r.status_code == 200 and r.json()["healthy"] is False


def test_health_records_a_hand_made_copy_as_an_external_change(client, api_registry, settings):
    promote(api_registry, seed=1)
    promote(api_registry, seed=2)
    ts = next(b.timestamp for b in api_registry.backups() if b.version == "1.0.0")
    for name in C.SET_FILES:  # the guide's manual `cp` restore, all three files
        (settings.models_dir / name).write_bytes((settings.models_dir / f"{name}.backup_{ts}").read_bytes())
    health = client.get(f"{P}/models/health").json()
    assert health["version"] == "1.0.0" and health["files_ok"] is True
    events = client.get(f"{P}/models/events", params={"kind": "external_change"}).json()["events"]
    assert [(e["from_version"], e["to_version"]) for e in events] == [("1.0.1", "1.0.0")]
    # Every file was copied: nothing was left to complete from the backup.
    assert "completed_from" not in events[0]["details"]


def test_the_original_health_endpoint_answers_with_its_keys(client, api_registry, settings):
    body = client.get(f"{P}/health").json()
    assert (body["service"], body["status"], body["models_trained"]) == ("Predictive Analytics", "error", False)
    promote(api_registry, accuracy=0.9)
    body = client.get(f"{P}/health").json()
    assert (body["status"], body["models_trained"], body["model_version"]) == ("operational", True, "1.0.0")
    assert body["feature_count"] == 4 and body["problems"] == []
    (settings.models_dir / C.ANOMALY_MODEL_FILE).write_bytes(b"broken")
    body = client.get(f"{P}/health").json()
    assert body["status"] == "degraded" and body["level"] == "red" and body["problems"]
