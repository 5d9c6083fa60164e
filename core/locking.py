"""Named operation locks across threads and processes (filelock), with who holds them and since when."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from core import constants as C
from core.errors import Conflict
from core.storage import atomic_write_json, remove_quietly

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock: what they are doing, since when, from which process."""

    what: str
    actor: str
    since: dt.datetime
    pid: int
    host: str
    details: dict[str, Any]

    def describe(self) -> str:
        return (
            f"{self.what} by {self.actor}, since {self.since.strftime('%Y-%m-%d %H:%M:%S')} UTC "
            f"(pid {self.pid} on {self.host})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "actor": self.actor,
            "since": self.since.isoformat(),
            "pid": self.pid,
            "host": self.host,
            "details": self.details,
        }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OperationLock:
    """One exclusive lock file plus a JSON note naming the holder; optional PostgreSQL advisory lock."""

    def __init__(self, directory: Path, lock_name: str, info_name: str, *, label: str, engine: Any = None) -> None:
        self.directory = Path(directory)
        self.lock_path = self.directory / lock_name
        self.info_path = self.directory / info_name
        self.label = label
        self._engine = engine if engine is not None and engine.dialect.name == "postgresql" else None

    def holder(self) -> LockInfo | None:
        """The current holder, or None when the lock is free (stale notes from dead processes are ignored)."""
        try:
            raw = json.loads(self.info_path.read_text())
            info = LockInfo(
                what=str(raw["what"]),
                actor=str(raw["actor"]),
                since=dt.datetime.fromisoformat(raw["since"]),
                pid=int(raw["pid"]),
                host=str(raw.get("host", "")),
                details=dict(raw.get("details") or {}),
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if info.host == socket.gethostname() and not _pid_alive(info.pid):
            return None
        if not self._is_locked():
            return None
        return info

    def _is_locked(self) -> bool:
        probe = FileLock(str(self.lock_path), timeout=0, thread_local=False)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return True
        probe.release()
        return False

    @contextmanager
    def hold(
        self, what: str, actor: str, *, timeout: float = 10.0, details: dict[str, Any] | None = None
    ) -> Iterator[LockInfo]:
        """Hold the lock for `what`; raise Conflict naming the holder after `timeout` seconds."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path), timeout=timeout, thread_local=False)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            holder = self.holder()
            who = holder.describe() if holder else "unknown holder"
            log.warning("%s lock: %s by %s refused: another operation is running: %s", self.label, what, actor, who)
            raise Conflict(
                f"another {self.label} operation is running: {who}; wait for it to finish and try again"
            ) from None
        advisory = None
        try:
            advisory = self._acquire_advisory(timeout)
            info = LockInfo(
                what=what,
                actor=actor,
                since=dt.datetime.now(dt.UTC),
                pid=os.getpid(),
                host=socket.gethostname(),
                details=dict(details or {}),
            )
            atomic_write_json(self.info_path, info.to_dict())
            try:
                yield info
            finally:
                remove_quietly(self.info_path)
        finally:
            if advisory is not None:
                self._release_advisory(advisory)
            lock.release()

    def _advisory_key(self) -> int:
        """From the registry's own id (stored with it), so replicas mounting the volume at other paths agree."""
        return zlib.crc32(f"{registry_id(self.directory)}:{self.lock_path.name}".encode()) & 0x7FFFFFFF

    def _acquire_advisory(self, timeout: float) -> Any:
        """Across hosts sharing the models volume, PostgreSQL's advisory lock serialises writers too."""
        if self._engine is None:
            return None
        from sqlalchemy import text

        conn = self._engine.connect()
        deadline = time.monotonic() + timeout
        key = self._advisory_key()
        while True:
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                return conn
            if time.monotonic() >= deadline:
                conn.close()
                raise Conflict(
                    f"another {self.label} operation holds the database lock on another host; try again later"
                )
            time.sleep(0.1)

    def _release_advisory(self, conn: Any) -> None:
        from sqlalchemy import text

        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._advisory_key()})
        finally:
            conn.close()


def registry_id(directory: Path) -> str:
    """The registry's id, made once (first writer wins, atomically) and stored in its directory."""
    path = Path(directory) / C.REGISTRY_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    candidate = uuid.uuid4().hex
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(candidate + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return candidate


def registry_lock(models_dir: Path, engine: Any = None) -> OperationLock:
    return OperationLock(models_dir, C.LOCK_FILE, C.LOCK_INFO_FILE, label="registry", engine=engine)


def training_lock(models_dir: Path, engine: Any = None) -> OperationLock:
    return OperationLock(models_dir, C.TRAINING_LOCK_FILE, C.TRAINING_LOCK_INFO_FILE, label="training", engine=engine)
