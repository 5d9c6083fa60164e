"""API key on write endpoints, audited actors, PREDICT_REQUIRES_KEY, and the bind-address guard.

A missing key gives 401, a wrong one 403; with no authentication configured (local mode) keyless writes work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from api.factory import create_api
from api.security import ANONYMOUS_ACTOR, InsecureBindError, check_bind_address, is_loopback, predict_requires_key_from
from core.identity import local_principal
from core.locking import training_lock
from core.modelops import get_ops
from tests.api.conftest import AUTH, KEY_NAME, REASON, P, TestClient, error_of, snapshot

WRITES = [
    ("post", f"{P}/train", {"force_retrain": True, "days_back": 30}),
    ("post", f"{P}/models/restore", {"version": "1.0.0", "reason": REASON}),
]


@pytest.mark.parametrize("method, path, payload", WRITES)
def test_missing_key_is_401_and_changes_nothing(keyed_client, keyed_settings, two_versions, method, path, payload):
    before = snapshot(keyed_settings)
    r = getattr(keyed_client, method)(path, json=payload)
    error_of(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert snapshot(keyed_settings) == before


@pytest.mark.parametrize("method, path, payload", WRITES)
@pytest.mark.parametrize("header", ["Bearer wrong-key", "Bearer test-key-7f3aX", "Bearer " + "x" * 500])
def test_wrong_key_is_403_and_changes_nothing(
    keyed_client, keyed_settings, two_versions, method, path, payload, header
):
    before = snapshot(keyed_settings)
    error_of(getattr(keyed_client, method)(path, json=payload, headers={"Authorization": header}), 403, "forbidden")
    assert snapshot(keyed_settings) == before


@pytest.mark.parametrize("header", ["test-key-7f3a", "Basic test-key-7f3a", "Bearer ", "Token test-key-7f3a"])
def test_malformed_authorization_is_401(keyed_client, two_versions, header):
    error_of(
        keyed_client.post(
            f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}, headers={"Authorization": header}
        ),
        401,
    )


def test_auth_is_checked_before_the_body(keyed_client, two_versions):
    error_of(keyed_client.post(f"{P}/train", json={"days_back": "x"}), 401)


def test_right_key_restores_and_audits_the_key_name(keyed_client, two_versions):
    r = keyed_client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": "audit me"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["actor"] == KEY_NAME
    event = keyed_client.get(f"{P}/models/events", params={"kind": "restore"}).json()["events"][0]
    assert (event["actor"], event["reason"]) == (KEY_NAME, "audit me")


def test_right_key_reaches_train(keyed_client, keyed_settings):
    # With the training lock held the accepted key ends in 409 rather than starting a real job.
    with training_lock(keyed_settings.models_dir).hold("training (test)", "someone"):
        error_of(keyed_client.post(f"{P}/train", json={"days_back": 30}, headers=AUTH), 409, "conflict")


def test_reads_stay_open_when_a_key_is_configured(keyed_client, two_versions):
    for path in (
        "models/status",
        "models/version",
        "models/compare",
        "models/health",
        "models/versions",
        "models/backups",
        "models/events",
    ):
        assert keyed_client.get(f"{P}/{path}").status_code == 200, path


def test_without_a_key_writes_are_audited_as_anonymous_localhost(client, two_versions):
    # Local mode: no API_KEY, no account, no named key.
    r = client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON})
    assert r.status_code == 200 and r.json()["actor"] == ANONYMOUS_ACTOR
    event = client.get(f"{P}/models/events", params={"kind": "restore"}).json()["events"][0]
    assert (event["actor"], event["reason"]) == (ANONYMOUS_ACTOR, REASON)


READING = {"device_id": "d-1", "metrics": {"not_a_metric": 1}}


def test_predict_is_open_by_default_even_with_a_key(keyed_client):
    # 422 for the unknown metric means the request got past authentication.
    error_of(keyed_client.post(f"{P}/predict", json=READING), 422)


def test_predict_requires_the_key_when_asked(keyed_settings):
    with TestClient(create_api(keyed_settings, predict_requires_key=True), base_url="http://localhost") as c:
        error_of(c.post(f"{P}/predict", json=READING), 401)
        error_of(c.post(f"{P}/predict", json=READING, headers={"Authorization": "Bearer nope"}), 403)
        error_of(c.post(f"{P}/predict", json=READING, headers=AUTH), 422)


def test_predict_requires_key_is_read_from_the_environment(monkeypatch, keyed_settings):
    assert predict_requires_key_from({"PREDICT_REQUIRES_KEY": "1"}) is True
    assert predict_requires_key_from({"PREDICT_REQUIRES_KEY": "0"}) is False
    assert predict_requires_key_from({}) is False
    monkeypatch.setenv("PREDICT_REQUIRES_KEY", "1")
    with TestClient(create_api(keyed_settings), base_url="http://localhost") as c:
        error_of(c.post(f"{P}/predict", json=READING), 401)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses_need_no_key(settings, address):
    assert is_loopback(address)
    check_bind_address(address, get_ops(settings).authentication_configured())


# Unset or empty: Streamlit then listens on every interface (as when started from another directory).
@pytest.mark.parametrize(
    "address", [None, "", " ", "0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", "128.0.0.1"]
)
def test_public_addresses_without_a_key_are_refused(settings, address):
    assert get_ops(settings).authentication_configured() is False  # local mode
    with pytest.raises(InsecureBindError, match="without authentication") as refused:
        check_bind_address(address, False)
    assert "API_KEY" in str(refused.value) and "manage_users.py" in str(refused.value)


def test_public_address_with_a_key_is_allowed(settings):
    keyed = dataclasses.replace(settings, api_key="k")
    assert get_ops(keyed).authentication_configured() is True
    check_bind_address("0.0.0.0", get_ops(keyed).authentication_configured())


@pytest.mark.parametrize("configure", ["account", "named key"])
def test_an_account_or_a_named_key_configures_authentication(settings, configure):
    ops = get_ops(settings)
    assert not ops.authentication_configured()
    admin = local_principal("setup")
    if configure == "account":
        ops.add_account("alice", "admin", "correct horse battery", actor=admin)
    else:
        ops.create_api_key("ci-bot", "operator", actor=admin)
    assert ops.authentication_configured()
    check_bind_address("0.0.0.0", ops.authentication_configured())


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Host": "evil.example"}, 403),  # DNS rebinding: a page on another name that resolves here
        ({"Origin": "http://evil.example"}, 403),  # a cross-site page posting to localhost
        ({"Content-Type": "text/plain"}, 415),  # what an HTML form can send cross-site without a preflight
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_writes_need_json_from_an_allowed_host(client, two_versions, settings, headers, status):
    before = snapshot(settings)
    request = {"Content-Type": "application/json", **headers}
    for path, body in ((f"{P}/train", b"{}"), (f"{P}/models/restore", b'{"version": "1.0.0", "reason": "r"}')):
        error_of(client.post(path, content=body, headers=request), status)
    assert snapshot(settings) == before


def test_allowed_hosts_come_from_the_environment():
    from core.config import Settings

    assert Settings.from_env({"ALLOWED_HOSTS": "Model-Ops.internal, 10.0.0.5"}).allowed_hosts == (
        "model-ops.internal",
        "10.0.0.5",
    )


def test_a_refused_caller_is_not_a_failed_prediction_but_a_failure_after_it_is(keyed_settings):
    from core.prediction_log import request_counts

    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with TestClient(create_api(keyed_settings, predict_requires_key=True), base_url="http://localhost") as c:
        reading = {"device_id": "dev-1", "metrics": {"temperature": 40.0}}
        error_of(c.post(f"{P}/predict", json=reading), 401)
        error_of(c.post(f"{P}/predict", json=reading, headers={"Authorization": "Bearer nope"}), 403)
        ops = get_ops(keyed_settings)
        ops.prediction_log().flush()
        assert request_counts(ops.db, since=since)[0] == 0
        error_of(c.post(f"{P}/predict", json=reading, headers=AUTH), 404, "not_found")  # no model yet
        ops.prediction_log().flush()
        assert request_counts(ops.db, since=since)[0] == 1
