"""Who may write: API keys, JSON-only writes from allowed hosts, and no serving beyond loopback without a key."""

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
    """Whether a bind address only accepts local connections.

    Unset or empty means what Streamlit then does: listen on every interface (not loopback).
    """
    host = (address or "").strip()
    if not host:
        return False
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
    where = repr(address) if (address or "").strip() else "every interface (no server.address set)"
    raise InsecureBindError(
        f"refusing to serve on {where} without an API key: the write endpoints (train, restore) would be open "
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


def _hostname(value: str) -> str:
    """The host part of a Host header or an Origin, lower-case, without port or brackets."""
    value = value.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1].split("/", 1)[0]
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def check_write_request(request: Request, settings: Settings) -> None:
    """A write must be JSON (a cross-site HTML form cannot send that) and name an allowed host (no DNS rebinding)."""
    allowed = settings.allowed_hosts
    if "*" not in allowed:
        host = _hostname(request.headers.get("host", ""))
        if host not in allowed:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"host {host!r} is not allowed to write; add it to ALLOWED_HOSTS on the server",
            )
        origin = request.headers.get("origin")
        if origin and origin != "null" and _hostname(origin) not in allowed:
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="cross-site requests may not write")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send the request as JSON: Content-Type: application/json (an empty body is {} or nothing)",
        )


async def writer(request: Request) -> str:
    """FastAPI dependency for write endpoints: checks the request, returns the audited actor or raises 401/403."""
    settings = request.app.state.settings
    check_write_request(request, settings)
    return authenticate(request, settings)


async def predictor_caller(request: Request) -> str:
    """FastAPI dependency for POST predict: a write endpoint only when PREDICT_REQUIRES_KEY is set."""
    settings = request.app.state.settings
    check_write_request(request, settings)
    if not request.app.state.predict_requires_key:
        return ANONYMOUS_ACTOR
    return authenticate(request, settings)
