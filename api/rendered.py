"""JSON bodies of the most-polled reads, rendered once per state of the current set's files."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from core.storage import FileSignature

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
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature:
            return None
        if time.monotonic() - entry[1] <= self.max_age:
            return entry[2]
        with self._lock:
            if key in self._refreshing:
                return entry[2]
            self._refreshing.add(key)
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
