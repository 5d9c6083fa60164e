"""An unreachable database: some endpoints still answer from the models directory; the rest is 503.

Status, health, version, backups and versions still answer.
"""

from __future__ import annotations

import dataclasses

import pytest

from api.factory import create_api
from tests.api.conftest import P, TestClient, error_of


@pytest.fixture
def down(settings, tmp_path, two_versions):
    # A directory is not a database file: SQLite cannot open it, as if the server were unreachable.
    broken = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}")
    with TestClient(create_api(broken, predict_requires_key=False), base_url="http://localhost") as client:
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
        ("post", f"{P}/models/restore", {"version": "1.0.0"}),
        ("post", f"{P}/predict", {"device_id": "d", "metrics": {}}),
    ],
)
def test_database_endpoints_are_503_with_a_clear_detail(down, settings, method, path, payload):
    r = getattr(down, method)(path, **({"json": payload} if payload is not None else {}))
    detail = error_of(r, 503, "unavailable")
    assert "database" in detail and "unreachable" in detail
    # What failed, never where: no database URL, no server path (those are in the server's log).
    assert str(settings.models_dir.parent) not in detail and "sqlite:" not in detail
