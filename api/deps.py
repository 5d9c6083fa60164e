"""Per-request access to the shared context, and the database-unavailable error (HTTP 503)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from fastapi import Request

from core.config import Settings
from core.context import AppContext, get_context
from core.db import Database
from core.errors import DataError, RegistryError
from core.history import History
from core.jobs import JobRunner

if TYPE_CHECKING:
    from core.predict import Predictor

PREDICTOR_KEY = "predictor"


class Unavailable(RegistryError):
    """A dependency (the database) cannot be reached; the request may succeed later."""

    code = "unavailable"


def settings_of(request: Request) -> Settings:
    """The settings this API was created with."""
    return request.app.state.settings


def context(request: Request) -> AppContext:
    """The process-wide context for this API's settings (re-tries an unreachable database)."""
    return get_context(settings_of(request))


def _unreachable(ctx: AppContext) -> Unavailable:
    return Unavailable(f"the database is unreachable ({ctx.db_error}); this endpoint needs it, try again later")


def require_db(ctx: AppContext) -> Database:
    """The database, or Unavailable (503) naming why it cannot be used."""
    if ctx.db is None:
        raise _unreachable(ctx)
    return ctx.db


def require_history(ctx: AppContext) -> History:
    """Training runs and registry events, or Unavailable (503)."""
    if ctx.history is None:
        raise _unreachable(ctx)
    return ctx.history


def require_jobs(ctx: AppContext) -> JobRunner:
    """The background job runner, or Unavailable (503)."""
    if ctx.jobs is None:
        raise _unreachable(ctx)
    return ctx.jobs


def predictor(ctx: AppContext) -> Predictor:
    """The context's one Predictor (its model cache follows promotions and restores)."""
    from core.predict import Predictor  # scikit-learn and pandas load on first use, not at server start

    found = ctx.predictor_cache.get(PREDICTOR_KEY)
    if found is None:
        found = ctx.predictor_cache.setdefault(PREDICTOR_KEY, Predictor(ctx.registry, require_db(ctx)))
    return found


@contextmanager
def database_call() -> Iterator[None]:
    """Turn a database failure in the middle of a request into 503 instead of a client error."""
    try:
        yield
    except DataError as exc:
        raise Unavailable(f"{exc.message}; try again later") from None
