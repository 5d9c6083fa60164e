"""Shared fixtures: real SQLite files and model directories under tmp_path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from core.config import Settings

# Servers the tests start append their training lines here, not to the repository's training.log.
os.environ.setdefault("TRAINING_LOG", str(Path(tempfile.mkdtemp(prefix="dimo-tests-")) / "training.log"))
from core.db import Database
from core.registry import Registry


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    models = tmp_path / "models"
    models.mkdir()
    return Settings.from_env(
        {}, database_url=f"sqlite:///{tmp_path / 'test.db'}", models_dir=models, lock_timeout_seconds=2.0
    )


@pytest.fixture
def db(settings: Settings) -> Database:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def registry(settings: Settings, db: Database) -> Registry:
    return Registry.from_settings(settings, db)


PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh PostgreSQL database for this session on the local server (skips when none is running)."""
    import uuid

    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"dimo_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server: say so instead of failing every test
        if os.environ.get("CI_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not reachable ({type(exc).__name__}); start it to run these tests")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def fresh_postgres(url: str) -> Database:
    """The session's PostgreSQL database with every table emptied."""
    from sqlalchemy import text

    from core.db import Base

    database = Database(url)
    with database.engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return database


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, settings: Settings) -> Database:
    """The same test on SQLite and on the real PostgreSQL server."""
    if request.param == "sqlite":
        database = Database(settings.database_url)
    else:
        database = fresh_postgres(request.getfixturevalue("postgres_url"))
    yield database
    database.dispose()
