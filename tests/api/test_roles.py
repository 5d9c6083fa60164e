"""Roles over the API: named keys (ops.create_api_key) act with their role; too low a role is 403 and changes nothing.

viewer < operator < admin: POST train and POST models/restore need operator; a revoked key is refused like a wrong one.
"""

from __future__ import annotations

import time

import pytest

from api.factory import create_api
from core.identity import local_principal
from core.modelops import get_ops
from tests.api.conftest import REASON, P, TestClient, error_of, make_key, snapshot

TRAIN = (f"{P}/train", {"force_retrain": True, "days_back": 30})
RESTORE = (f"{P}/models/restore", {"version": "1.0.0", "reason": REASON})


@pytest.mark.parametrize("path, payload", [TRAIN, RESTORE], ids=["train", "restore"])
def test_a_viewer_key_is_403_on_writes_and_changes_nothing(client, settings, two_versions, path, payload):
    viewer = make_key(settings, "dash-reader", "viewer")
    before = snapshot(settings)
    detail = error_of(client.post(path, json=payload, headers=viewer), 403, "forbidden")
    assert "dash-reader (viewer)" in detail and "operator" in detail
    assert snapshot(settings) == before
    assert client.get(f"{P}/models/version").json()["version"] == "1.0.1"
    assert get_ops(settings).runs() == []
    # The key still reads.
    assert client.get(f"{P}/models/status", headers=viewer).status_code == 200


def test_an_operator_key_restores_with_a_reason_recorded_under_its_name(client, settings, two_versions):
    operator = make_key(settings, "release-bot", "operator")
    path, payload = RESTORE
    r = client.post(path, json=payload, headers=operator)
    assert r.status_code == 200, r.text
    assert (r.json()["actor"], r.json()["version"]) == ("release-bot", "1.0.0")
    event = client.get(f"{P}/models/events", params={"kind": "restore"}).json()["events"][0]
    assert (event["actor"], event["reason"], event["to_version"]) == ("release-bot", REASON, "1.0.0")


def test_an_operator_key_still_needs_a_reason_to_restore(client, settings, two_versions):
    operator = make_key(settings, "release-bot", "operator")
    before = snapshot(settings)
    r = client.post(f"{P}/models/restore", json={"version": "1.0.0"}, headers=operator)
    assert "give a reason" in error_of(r, 422, "invalid_input")
    assert snapshot(settings) == before


def test_an_operator_key_starts_training_recorded_under_its_name(client, settings):
    operator = make_key(settings, "nightly", "operator")
    path, payload = TRAIN
    r = client.post(path, json=payload, headers=operator)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 60
    run = client.get(f"{P}/train/{job_id}").json()
    while not run["finished"] and time.monotonic() < deadline:
        time.sleep(0.1)
        run = client.get(f"{P}/train/{job_id}").json()
    assert run["finished"] and (run["actor"], run["trigger"]) == ("nightly", "api")
    assert run["outcome"] == "failed"  # an empty database cannot train; who started it is what matters here


@pytest.mark.parametrize("path, payload", [TRAIN, RESTORE], ids=["train", "restore"])
def test_a_revoked_key_is_403_and_changes_nothing(client, settings, two_versions, path, payload):
    revoked = make_key(settings, "old-bot", "admin")
    get_ops(settings).revoke_api_key("old-bot", actor=local_principal("setup"))
    before = snapshot(settings)
    assert "revoked" in error_of(client.post(path, json=payload, headers=revoked), 403, "forbidden")
    assert snapshot(settings) == before


def test_once_a_named_key_exists_keyless_writes_are_401(client, settings, two_versions):
    make_key(settings, "release-bot", "operator")
    before = snapshot(settings)
    for path, payload in (TRAIN, RESTORE):
        error_of(client.post(path, json=payload), 401, "unauthorized")
    assert snapshot(settings) == before
    assert client.get(f"{P}/models/status").status_code == 200  # reads stay open on loopback


def test_reads_need_a_key_when_the_server_is_reachable_beyond_loopback(settings, two_versions):
    viewer = make_key(settings, "dash-reader", "viewer")
    with TestClient(create_api(settings, reads_need_key=True), base_url="http://localhost") as exposed:
        error_of(exposed.get(f"{P}/models/status"), 401, "unauthorized")
        error_of(exposed.get(f"{P}/models/status", headers={"Authorization": "Bearer dimo_bad_key"}), 403)
        assert exposed.get(f"{P}/models/status", headers=viewer).status_code == 200
        error_of(exposed.post(RESTORE[0], json=RESTORE[1], headers=viewer), 403, "forbidden")
