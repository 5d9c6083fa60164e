"""ASGI middleware that turns Nagle's algorithm off on the client's connection."""

from __future__ import annotations

import contextlib
import socket
import weakref
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

# Streamlit binds its listening socket with proto 0, so asyncio never sets TCP_NODELAY on accepted connections;
# uvicorn then writes a response's headers and body separately, and on a keep-alive connection the body waits
# for the client's delayed ACK: about 40 ms per request.
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
# Connections already set: once per keep-alive connection, not per request (with uvloop every socket call on a
# transport's socket builds and detaches a socket object).
_done: weakref.WeakSet[Any] = weakref.WeakSet()


def _transport(receive: Receive) -> Any:
    """The connection's transport, when the server is uvicorn (its receive is a method of an object holding it)."""
    return getattr(getattr(receive, "__self__", None), "transport", None)


def no_delay(receive: Receive) -> None:
    """Set TCP_NODELAY on the connection this request came on (nothing on servers that do not expose it)."""
    transport = _transport(receive)
    if transport is None or transport in _done:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in _TCP_FAMILIES:
        # OSError: the client already went away, nothing to speed up
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(TypeError):  # a transport that cannot be weakly referenced is set on every request
        _done.add(transport)


class TcpNoDelay:
    """Set TCP_NODELAY on each HTTP connection that reaches the API (a no-op on servers that do not expose it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            no_delay(receive)
        await self.app(scope, receive, send)
