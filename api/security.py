"""Who may write: API keys, JSON-only writes from allowed hosts, and no serving beyond loopback without a key."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from fastapi import HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from api import deps
from core.config import Settings
from core.identity import Principal, local_principal

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


def check_bind_address(address: str | None, authentication_configured: bool) -> None:
    """Refuse a non-loopback bind address unless authentication is configured (anyone could act otherwise)."""
    if authentication_configured or is_loopback(address):
        return
    where = repr(address) if (address or "").strip() else "every interface (no server.address set)"
    raise InsecureBindError(
        f"refusing to serve on {where} without authentication: anyone who can reach this host could train, "
        "restore and delete. Configure a login (accounts: `manage_users.py add NAME --role admin`; or an "
        "identity provider in .streamlit/secrets.toml) and API keys (`manage_users.py key-create`, or API_KEY), "
        f"or bind to {DEFAULT_BIND_ADDRESS} (--server.address {DEFAULT_BIND_ADDRESS})."
    )


def _unauthorized(detail: str, code: int) -> HTTPException:
    return HTTPException(status_code=code, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="model-ops"'})


def _bearer(request: Request) -> str | None:
    """The presented key, None when there is no Authorization header, 401 when it is malformed."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            "malformed Authorization header: use `Authorization: Bearer <API key>`", status.HTTP_401_UNAUTHORIZED
        )
    return token.strip()


def authenticate(request: Request, *, write: bool) -> Principal:
    """Who is calling: the principal of the presented key; without one, the local operator when no
    authentication is configured (the server then listens on loopback only), an anonymous viewer for reads
    on loopback, else 401."""
    ops = deps.ops(request)
    token = _bearer(request)
    if token is not None:
        principal = ops.key_principal(token)
        if principal is None:
            raise _unauthorized("the API key is not valid (or was revoked)", status.HTTP_403_FORBIDDEN)
        return principal
    if not ops.authentication_configured():
        return local_principal(ANONYMOUS_ACTOR)
    if write or request.app.state.reads_need_key:
        raise _unauthorized(
            "this endpoint needs an API key: send `Authorization: Bearer <API key>`", status.HTTP_401_UNAUTHORIZED
        )
    return Principal("anonymous", "viewer", "api")


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


def writer(request: Request) -> Principal:
    """FastAPI dependency for write endpoints: checks the request, returns the principal or raises 401/403."""
    check_write_request(request, request.app.state.settings)
    return authenticate(request, write=True)


async def json_write(request: Request) -> None:
    """FastAPI dependency for POST predict: a JSON request to an allowed host, checked on the event loop (no I/O).

    Who calls is checked with the prediction, on its database thread: a read, unless PREDICT_REQUIRES_KEY makes it
    need a key.
    """
    check_write_request(request, request.app.state.settings)


async def reader(request: Request) -> None:
    """Router dependency: reads are open on loopback; on a server reachable from elsewhere they need a key."""
    if request.method in ("GET", "HEAD") and request.app.state.reads_need_key:
        await run_in_threadpool(authenticate, request, write=False)
