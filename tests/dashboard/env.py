"""Point the dashboard run by AppTest at a test's database and models directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.config import Settings
from core.modelops import reset_ops
from dashboard import services as svc


@contextmanager
def dashboard_on(settings: Settings, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[Settings]:
    """The dashboard reads `settings`' database and models directory (plus `env`), with no first-run set-up and
    fresh caches before and after."""
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "MODELS_DIR": str(settings.models_dir),
        "DASHBOARD_BOOTSTRAP": "0",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    # AppTest's client is a MagicMock, whose cookies would answer every name with a mock: make it a browser that
    # sent no cookie, so a session's token is read from session_state as the router does after a login.
    monkeypatch.setattr("streamlit.runtime.context._get_client_context", lambda: None)
    reset_ops()
    svc.reset()
    try:
        yield settings
    finally:
        reset_ops()
        svc.reset()
