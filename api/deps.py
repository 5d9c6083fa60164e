"""Per-request access to the application layer for this API's settings."""

from __future__ import annotations

from fastapi import Request

from core.config import Settings
from core.modelops import ModelOps, get_ops


def settings_of(request: Request) -> Settings:
    """The settings this API was created with."""
    return request.app.state.settings


def ops(request: Request) -> ModelOps:
    """The process-wide application layer (it retries an unreachable database on its own)."""
    return get_ops(settings_of(request))
