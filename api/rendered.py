"""JSON bodies of the most-polled reads, rendered once per state of the current set's files, and the middleware
that answers them without going through the server's middleware and routing while the body is unchanged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.nodelay import no_delay
from core.storage import FileSignature, set_signature

# History (runs, events) lives in the database: a body is rebuilt at least this often to pick up its changes.
MAX_AGE_SECONDS = 1.0


class RenderedCache:
    """Bodies keyed by the current set's file signature, refreshed at most MAX_AGE old by one caller at a time."""

    def __init__(self, max_age: float = MAX_AGE_SECONDS) -> None:
        self.max_age = max_age
        self._entries: dict[str, tuple[FileSignature, float, bytes]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def get(self, key: str, signature: FileSignature) -> bytes | None:
        """The body to serve, or None when the caller must render it.

        A body for other files is never served. One that is only old is served to everyone but the one
        caller that refreshes it, so a burst of requests never rebuilds it (and queries the database) at once.
        """
        body = self.peek(key, signature)
        if body is not None:
            return body
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            return None
        with self._lock:
            if key in self._refreshing:
                return entry[2]
            self._refreshing.add(key)
        return None

    def peek(self, key: str, signature: FileSignature) -> bytes | None:
        """The body `get` would serve without making anyone refresh it: one for these files, younger than
        MAX_AGE or being refreshed by another caller; None otherwise (then `get` decides who renders)."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            return None
        if time.monotonic() - entry[1] <= self.max_age or key in self._refreshing:
            return entry[2]
        return None

    def render(self, key: str, signature: FileSignature, build: Callable[[], dict[str, Any]]) -> bytes:
        """Build, render and store the body for `key` (the signature is the one seen before building)."""
        try:
            body = json.dumps(build(), separators=(",", ":"), allow_nan=False).encode("utf-8")
            with self._lock:
                self._entries[key] = (signature, time.monotonic(), body)
            return body
        finally:
            with self._lock:
                self._refreshing.discard(key)


def _complete(start: Message, body: Message) -> bool:
    """A 200 whose whole body is in this one message (no more body, no trailers): one that can be replayed."""
    return start.get("status") == 200 and not body.get("more_body", False) and not start.get("trailers", False)


@dataclass(frozen=True)
class Reply:
    """A 200 the whole server sent for a rendered read: its headers, as its middleware made them, and its body."""

    headers: list[tuple[bytes, bytes]]
    body: bytes


class RenderedReads:
    """Outermost middleware: a plain GET of a rendered read (models/status, version, health) is answered here with
    the reply the whole server last sent for it, while the rendered cache would serve that same body.

    What the middleware and routing in between would do to such a request does not depend on anything but the
    body: a reply is recorded from a request that went through them, and replayed only for requests of the same
    kind (no gzip wanted, no key needed) and only while its body is the one `RenderedCache.peek` returns for the
    files as they are now. Anything else (another body, a signature change, an old body to refresh, gzip, a
    server that needs keys for reads) goes through the whole server, which renders and checks as always.
    """

    def __init__(self, app: ASGIApp, *, state: Any, paths: Mapping[str, str]) -> None:
        self.app = app
        self.state = state  # the API's app.state: settings, rendered, reads_need_key
        self.paths = dict(paths)  # full path -> rendered cache key
        self._replies: dict[str, Reply] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self.paths.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if key is None or not self._plain(scope):
            await self.app(scope, receive, send)
            return
        body = self.state.rendered.peek(key, set_signature(self.state.settings.models_dir))
        reply = self._replies.get(key)
        if body is not None and reply is not None and reply.body == body:
            no_delay(receive)
            await send({"type": "http.response.start", "status": 200, "headers": list(reply.headers)})
            await send({"type": "http.response.body", "body": reply.body})
            return
        await self.app(scope, receive, self._recorder(key, send))

    def _plain(self, scope: Scope) -> bool:
        """A request the server answers with the body alone: reads need no key, and the client wants no gzip."""
        if self.state.reads_need_key:
            return False
        return not any(name == b"accept-encoding" and b"gzip" in value for name, value in scope["headers"])

    def _recorder(self, key: str, send: Send) -> Callable[[Message], Any]:
        """A send that passes everything on and records a complete 200 in one body message as the reply for `key`."""
        start: dict[str, Any] = {}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body" and _complete(start, message):
                self._replies[key] = Reply(list(start.get("headers", [])), bytes(message.get("body", b"")))
            await send(message)

        return record
