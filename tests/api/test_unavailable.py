"""An unreachable database: some endpoints still answer from the models directory; the rest is 503.

Status, health, version, backups and versions still answer.
"""

from __future__ import annotations

import dataclasses

import pytest

from api.factory import create_api
from core import constants as C
from tests.api.conftest import API_KEY, AUTH, REASON, P, TestClient, error_of, snapshot


@pytest.fixture
def broken(settings, tmp_path, two_versions):
    # A directory is not a database file: SQLite cannot open it, as if the server were unreachable.
    return dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}", api_key=API_KEY)


@pytest.fixture
def down(broken):
    # API_KEY is checked without the database; accounts and named keys live in it.
    with TestClient(
        create_api(broken, predict_requires_key=False), base_url="http://localhost", headers=AUTH
    ) as client:
        yield client


def test_models_directory_endpoints_still_answer(down):
    status = down.get(f"{P}/models/status").json()
    assert status["is_trained"] and status["model_metadata"]["model_performance"]["accuracy"] == 0.84
    assert down.get(f"{P}/models/version").json()["version"] == "1.0.1"
    backups = down.get(f"{P}/models/backups").json()
    assert backups["count"] == 2 and [b["version"] for b in backups["backups"]] == ["1.0.1", "1.0.0"]
    versions = down.get(f"{P}/models/versions").json()
    assert versions["history_available"] is False and versions["current_version"] == "1.0.1"
    health = down.get(f"{P}/models/health").json()
    assert health["files_ok"] is True and health["database"]["reachable"] is False and health["database"]["error"]
    # Without the database there is no history, no training and no prediction: action needed, on every answer.
    assert health["healthy"] is False and health["level"] == status["level"] == "red"
    assert health["problems"] == status["problems"] and "database is unreachable" in status["problems"][0]
    assert down.get(f"{P}/models/compare").json()["comparison_available"] is True


@pytest.mark.parametrize(
    "method, path, payload",
    [
        ("get", f"{P}/models/events", None),
        ("post", f"{P}/train", {"days_back": 30}),
        ("get", f"{P}/train/0123456789abcdef0123456789abcdef", None),
        ("post", f"{P}/models/restore", {"version": "1.0.0", "reason": REASON}),
        ("post", f"{P}/predict", {"device_id": "d", "metrics": {}}),
    ],
)
def test_database_endpoints_are_503_with_a_clear_detail(down, settings, method, path, payload):
    r = getattr(down, method)(path, **({"json": payload} if payload is not None else {}))
    detail = error_of(r, 503, "unavailable")
    assert "database" in detail and "unreachable" in detail
    # What failed, never where: no database URL, no server path (those are in the server's log).
    assert str(settings.models_dir.parent) not in detail and "sqlite:" not in detail


def test_without_the_database_writes_change_nothing_and_auth_never_falls_open(settings, tmp_path, two_versions):
    """Database down: with no account or key ever made (local mode, loopback only) a keyless write is 503 and
    changes nothing; once authentication has been on, the marker keeps it on, so a keyless write is 401."""
    broken = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}")
    with TestClient(create_api(broken, predict_requires_key=False), base_url="http://localhost") as client:
        before = snapshot(settings)
        payload = {"version": "1.0.0", "reason": REASON}
        error_of(client.post(f"{P}/models/restore", json=payload), 503, "unavailable")
        error_of(client.post(f"{P}/train", json={"days_back": 30}), 503, "unavailable")
        assert client.get(f"{P}/models/version").json()["version"] == "1.0.1"
        assert snapshot(settings)["files"] == before["files"]

        (settings.models_dir / C.AUTHENTICATION_MARKER).write_text("on\n")
        before = snapshot(settings)
        error_of(client.post(f"{P}/models/restore", json=payload), 401, "unauthorized")
        error_of(client.post(f"{P}/train", json={"days_back": 30}), 401, "unauthorized")
        assert client.get(f"{P}/models/version").json()["version"] == "1.0.1"
        assert snapshot(settings)["files"] == before["files"]
        # A named key cannot be checked either: that is the database being unavailable, not a bad key.
        named = {"Authorization": "Bearer dimo_0123abcd_notarealsecret"}
        error_of(client.post(f"{P}/train", json={"days_back": 30}, headers=named), 503, "unavailable")
