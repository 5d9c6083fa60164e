"""ASGI middleware that turns Nagle's algorithm off on the client's connection."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

# Streamlit binds its listening socket with proto 0, so asyncio never sets TCP_NODELAY on accepted connections;
# uvicorn then writes a response's headers and body separately, and on a keep-alive connection the body waits
# for the client's delayed ACK: about 40 ms per request.
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _client_socket(receive: Receive) -> Any:
    """The connection's socket, when the server is uvicorn.

    Uvicorn's receive is a method of an object holding the transport.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    return transport.get_extra_info("socket") if transport is not None else None


class TcpNoDelay:
    """Set TCP_NODELAY on each HTTP connection that reaches the API (a no-op on servers that do not expose it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sock = _client_socket(receive)
            if sock is not None and sock.family in _TCP_FAMILIES:
                # OSError: the client already went away, nothing to speed up
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await self.app(scope, receive, send)
