"""API fixtures: a TestClient over create_api on real SQLite files, models on FEATURE_COLUMNS, and disk snapshots."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette suggests httpx2 for its TestClient; the brief asks for fastapi.testclient with the installed httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.factory import create_api
from core.config import Settings
from core.db import Database
from core.domain import ModelVersion
from core.features import FEATURE_COLUMNS
from core.identity import local_principal
from core.modelops import get_ops, reset_ops
from core.registry import Registry
from tests.factories import metadata_fields, promote, tiny_models

API_KEY = "test-key-7f3a"
KEY_NAME = "ops-bot"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
P = "/predictions"
REASON = "rollback after a regression"


@pytest.fixture(autouse=True)
def _fresh_contexts() -> Iterator[None]:
    """Each test gets its own process-wide context (engines disposed afterwards)."""
    reset_ops()
    yield
    reset_ops()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(settings, predict_requires_key=False), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def keyed_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, api_key=API_KEY, api_key_name=KEY_NAME)


@pytest.fixture
def keyed_client(keyed_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(keyed_settings, predict_requires_key=False), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def api_registry(settings: Settings) -> Registry:
    """The registry the API itself uses (same process-wide context)."""
    return get_ops(settings).registry


def _build_template(root: Path, build: Any) -> Path:
    """A database and models directory filled once by `build(registry)`."""
    (root / "models").mkdir()
    db = Database(f"sqlite:///{root / 'test.db'}")
    build(Registry(root / "models", db))
    db.dispose()
    return root


def _install_template(root: Path, settings: Settings) -> None:
    """Copy a template's database and models into this test's (before anything here opened the database)."""
    reset_ops()
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    for stale in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(root / "test.db", db_file)
    shutil.copytree(root / "models", settings.models_dir, dirs_exist_ok=True)


@pytest.fixture(scope="session")
def _two_version_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(registry: Registry) -> None:
        promote(registry, seed=1, accuracy=0.80)
        promote(registry, seed=2, accuracy=0.84)

    return _build_template(tmp_path_factory.mktemp("two_versions"), build)


@pytest.fixture
def two_versions(settings: Settings, _two_version_template: Path) -> str:
    """Versions 1.0.0 (accuracy 0.80) and 1.0.1 (0.84, current), each in its own backup.

    Returns the timestamp of the backup holding 1.0.0 (the one a restore goes back to).
    """
    _install_template(_two_version_template, settings)
    sets = get_ops(settings).registry.backups()
    assert [s.version for s in sets] == ["1.0.1", "1.0.0"], "every promoted set is backed up when it is promoted"
    return next(s.timestamp for s in sets if s.version == "1.0.0")


@pytest.fixture(scope="session")
def _feature_model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_template(
        tmp_path_factory.mktemp("feature_model"), lambda registry: promote_feature_model(registry, seed=3)
    )


@pytest.fixture
def feature_model(settings: Settings, _feature_model_template: Path) -> str:
    """Version 1.0.0 fitted on FEATURE_COLUMNS (what POST predict needs); returns its version."""
    _install_template(_feature_model_template, settings)
    return "1.0.0"


def promote_feature_model(registry: Registry, *, seed: int = 0, **fields: Any) -> ModelVersion:
    """Promote tiny real models fitted on len(FEATURE_COLUMNS) columns, as POST predict needs."""
    failure, anomaly = tiny_models(seed, n_features=len(FEATURE_COLUMNS))
    meta = metadata_fields(feature_columns=list(FEATURE_COLUMNS), **fields)
    return registry.promote(failure, anomaly, meta, actor="tester", trigger="test")


def snapshot(settings: Settings) -> dict[str, Any]:
    """Every file in the models directory (name -> sha256, mtime) and the history row counts."""
    files = {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(Path(settings.models_dir).iterdir())
        if p.is_file()
    }
    ops = get_ops(settings)
    counts = None
    if ops.history is not None:
        counts = (ops.history.count_events(), len(ops.history.runs(limit=10_000)))
    return {"files": files, "history": counts}


def make_key(settings: Settings, name: str, role: str) -> dict[str, str]:
    """A named API key with this role, made by an admin (local mode); returns its Authorization header.

    From then on authentication is configured: writes without a key are 401.
    """
    _, token = get_ops(settings).create_api_key(name, role, actor=local_principal("setup"))
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any, status: int, code: str | None = None) -> str:
    """Assert an error response's status and JSON shape; return its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body["detail"]
