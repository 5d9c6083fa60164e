"""API-key checks for write endpoints, and the refusal to serve beyond loopback without a key."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping

from fastapi import HTTPException, Request, status

from core.config import Settings

ANONYMOUS_ACTOR = "anonymous-localhost"
DEFAULT_BIND_ADDRESS = "127.0.0.1"
_TRUE = {"1", "true", "yes", "on"}


class InsecureBindError(RuntimeError):
    """The server would accept writes from other hosts without an API key."""


def predict_requires_key_from(env: Mapping[str, str] | None = None) -> bool:
    """PREDICT_REQUIRES_KEY=1 makes POST predict a write endpoint (key required)."""
    env = os.environ if env is None else env
    return (env.get("PREDICT_REQUIRES_KEY") or "").strip().lower() in _TRUE


def is_loopback(address: str | None) -> bool:
    """Whether a bind address only accepts local connections (empty means the configured default, 127.0.0.1)."""
    host = (address or "").strip() or DEFAULT_BIND_ADDRESS
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_address(address: str | None, settings: Settings) -> None:
    """Refuse a non-loopback bind address unless API_KEY is set (write endpoints would be open to the network)."""
    if settings.api_key or is_loopback(address):
        return
    raise InsecureBindError(
        f"refusing to serve on {address!r} without an API key: the write endpoints (train, restore) would be open "
        "to anyone who can reach this host. Set API_KEY (clients send `Authorization: Bearer <key>`), "
        f"or bind to {DEFAULT_BIND_ADDRESS} (--server.address {DEFAULT_BIND_ADDRESS})."
    )


def _unauthorized(detail: str, code: int) -> HTTPException:
    return HTTPException(status_code=code, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="model-ops"'})


def authenticate(request: Request, settings: Settings) -> str:
    """The actor for an audited write: the key's name, or anonymous-localhost when no key is configured."""
    if not settings.api_key:
        return ANONYMOUS_ACTOR
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized(
            "this endpoint needs an API key: send `Authorization: Bearer <API_KEY>`", status.HTTP_401_UNAUTHORIZED
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            "malformed Authorization header: use `Authorization: Bearer <API_KEY>`", status.HTTP_401_UNAUTHORIZED
        )
    if not hmac.compare_digest(token.strip().encode("utf-8"), settings.api_key.encode("utf-8")):
        raise _unauthorized("the API key is not valid", status.HTTP_403_FORBIDDEN)
    return settings.api_key_name


async def writer(request: Request) -> str:
    """FastAPI dependency for write endpoints: returns the audited actor or raises 401/403."""
    return authenticate(request, request.app.state.settings)


async def predictor_caller(request: Request) -> str:
    """FastAPI dependency for POST predict: a write endpoint only when PREDICT_REQUIRES_KEY is set."""
    if not request.app.state.predict_requires_key:
        return ANONYMOUS_ACTOR
    return authenticate(request, request.app.state.settings)
