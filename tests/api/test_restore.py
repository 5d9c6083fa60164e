"""POST models/restore: by timestamp or version, with a reason (required), audited.

Bad requests change nothing on disk or in history.
"""

from __future__ import annotations

import dataclasses

import pytest

from api.factory import create_api
from core.locking import registry_lock
from core.modelops import reset_ops
from tests.api.conftest import REASON, P, TestClient, error_of, snapshot


def test_restore_by_timestamp(client, two_versions, settings, api_registry):
    before = {b.timestamp: b.version for b in api_registry.backups()}
    live_backup = next(ts for ts, version in before.items() if version == "1.0.1")
    r = client.post(f"{P}/models/restore", json={"backup_timestamp": two_versions, "reason": "1.0.1 is worse"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["version"], body["from_version"], body["backup_timestamp"]) == ("1.0.0", "1.0.1", two_versions)
    # The replaced set already had its backup (from its promotion): that is the undo backup, no new one is made.
    assert body["undo_backup_timestamp"] == live_backup
    assert {b.timestamp: b.version for b in api_registry.backups()} == before
    assert body["actor"] == "anonymous-localhost"
    status = client.get(f"{P}/models/status").json()
    assert status["model_metadata"]["version"] == "1.0.0"
    assert status["model_metadata"]["model_performance"]["accuracy"] == 0.80
    event = client.get(f"{P}/models/events", params={"kind": "restore"}).json()["events"][0]
    assert (event["actor"], event["reason"], event["from_version"], event["to_version"]) == (
        "anonymous-localhost",
        "1.0.1 is worse",
        "1.0.1",
        "1.0.0",
    )
    assert (event["details"]["restored_from"], event["details"]["undo_backup"]) == (two_versions, live_backup)


def test_restore_by_version(client, two_versions):
    r = client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON})
    assert r.status_code == 200, r.text
    assert r.json()["backup_timestamp"] == two_versions
    assert client.get(f"{P}/models/version").json()["version"] == "1.0.0"


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"backup_timestamp": "20200101_000000"}, 404),
        ({"version": "7.0.0"}, 404),
        ({"backup_timestamp": "../x"}, 422),
        ({"backup_timestamp": "../../etc/passwd"}, 422),
        ({"backup_timestamp": "20200101_000000/../../x"}, 422),
        ({"backup_timestamp": "20201341_000000"}, 404),
        ({"backup_timestamp": "2020-01-01"}, 422),
        ({"version": "1.x"}, 422),
        ({"version": "../1.0.0"}, 422),
        ({}, 422),
        ({"reason": "no target"}, 422),
        ({"backup_timestamp": "20200101_000000", "version": "1.0.0"}, 422),
        ({"version": "1.0.0", "force": True}, 422),
        ({"version": 1}, 422),
        ({"version": "1.0.0", "reason": ["not", "text"]}, 422),
    ],
)
def test_bad_restore_changes_nothing(client, two_versions, settings, payload, status):
    before = snapshot(settings)
    # With a reason, so each request is refused for what it names (a missing reason is 422 by itself).
    error_of(client.post(f"{P}/models/restore", json={"reason": REASON, **payload}), status)
    assert snapshot(settings) == before


@pytest.mark.parametrize("reason", [None, "", "   ", "\n\t"])
def test_restore_without_a_reason_is_422_and_changes_nothing(client, two_versions, settings, reason):
    before = snapshot(settings)
    payload = {"backup_timestamp": two_versions} | ({} if reason is None else {"reason": reason})
    assert "give a reason" in error_of(client.post(f"{P}/models/restore", json=payload), 422, "invalid_input")
    assert snapshot(settings) == before
    assert client.get(f"{P}/models/version").json()["version"] == "1.0.1"


def test_restore_of_the_current_version_is_a_conflict(client, two_versions, settings):
    before = snapshot(settings)
    error_of(client.post(f"{P}/models/restore", json={"version": "1.0.1", "reason": REASON}), 409, "conflict")
    assert snapshot(settings) == before


def test_restore_while_the_registry_lock_is_held_is_409_naming_the_holder(settings, two_versions):
    reset_ops()  # the context is per (database, models dir): start one with the short lock timeout
    quick = dataclasses.replace(settings, lock_timeout_seconds=0.3)
    with TestClient(create_api(quick, predict_requires_key=False), base_url="http://localhost") as client:
        with registry_lock(settings.models_dir).hold("cleanup", "alice"):
            before = snapshot(quick)
            body = {"backup_timestamp": two_versions, "reason": REASON}
            detail = error_of(client.post(f"{P}/models/restore", json=body), 409, "conflict")
            assert snapshot(quick) == before
        assert "alice" in detail and "since" in detail
        assert client.post(f"{P}/models/restore", json=body).status_code == 200


def test_restore_malformed_json_is_422(client, two_versions, settings):
    before = snapshot(settings)
    r = client.post(f"{P}/models/restore", content=b"{not json", headers={"Content-Type": "application/json"})
    error_of(r, 422, "invalid_input")
    assert snapshot(settings) == before
