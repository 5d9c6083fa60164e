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
    """Bodies keyed by what they were built from: the current set's file signature, and at most MAX_AGE old."""

    def __init__(self, max_age: float = MAX_AGE_SECONDS) -> None:
        self.max_age = max_age
        self._entries: dict[str, tuple[FileSignature, float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, signature: FileSignature) -> bytes | None:
        """The stored body when it still describes these files and is fresh enough, else None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != signature or time.monotonic() - entry[1] > self.max_age:
            return None
        return entry[2]

    def render(self, key: str, signature: FileSignature, build: Callable[[], dict[str, Any]]) -> bytes:
        """Build, render and store the body for `key` (the signature is the one seen before building)."""
        body = json.dumps(build(), separators=(",", ":"), allow_nan=False).encode("utf-8")
        with self._lock:
            self._entries[key] = (signature, time.monotonic(), body)
        return body
