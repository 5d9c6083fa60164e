"""Process-wide wiring of settings, database, registry and job runner, shared by the API and the dashboard."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.db import Database
from core.errors import DataError
from core.history import History
from core.jobs import JobRunner
from core.registry import Registry


@dataclass
class AppContext:
    """One per process and settings: the database may be unavailable (db is None, db_error says why)."""

    settings: Settings
    db: Database | None
    db_error: str | None
    registry: Registry
    history: History | None
    jobs: JobRunner | None
    predictor_cache: dict[str, Any]


_contexts: dict[tuple[str, str], AppContext] = {}
_lock = threading.Lock()


def get_context(settings: Settings | None = None) -> AppContext:
    """The shared context for these settings (from the environment by default); retries an unreachable database."""
    settings = settings or Settings.from_env()
    key = (settings.database_url, str(settings.models_dir))
    with _lock:
        ctx = _contexts.get(key)
        if ctx is not None and ctx.db is not None:
            return ctx
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        try:
            db: Database | None = Database(settings.database_url)
            error = None
        except DataError as exc:
            db, error = None, exc.message
        registry = Registry.from_settings(settings, db)
        ctx = AppContext(
            settings=settings,
            db=db,
            db_error=error,
            registry=registry,
            history=History(db) if db is not None else None,
            jobs=JobRunner(settings, db, registry) if db is not None else None,
            predictor_cache={},
        )
        _contexts[key] = ctx
        return ctx


def reset_contexts() -> None:
    """Forget every context (tests)."""
    with _lock:
        for ctx in _contexts.values():
            if ctx.db is not None:
                ctx.db.dispose()
        _contexts.clear()
