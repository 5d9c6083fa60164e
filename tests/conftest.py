"""Shared fixtures: real SQLite files and model directories under tmp_path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import Settings  # noqa: E402
from core.db import Database  # noqa: E402
from core.registry import Registry  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    models = tmp_path / "models"
    models.mkdir()
    return Settings.from_env({}, database_url=f"sqlite:///{tmp_path / 'test.db'}", models_dir=models, lock_timeout_seconds=2.0)


@pytest.fixture
def db(settings: Settings) -> Database:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def registry(settings: Settings, db: Database) -> Registry:
    return Registry.from_settings(settings, db)
