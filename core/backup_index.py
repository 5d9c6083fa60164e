"""The index of backup sets: listings read it instead of every backup file, and it follows the files.

Kept in memory (one per models directory and process) and in a small JSON file, so a new process (the CLI,
a restarted server) reads one file instead of thousands. Before it is used it is checked against the files:
- on every call, the directory's (inode, mtime): a file added, removed or renamed (a backup, the guide's `rm`)
  changes it;
- the directory's names, while that mtime is too recent to be trusted (a second change within one tick of the
  filesystem's clock leaves the mtime as it was);
- every backup file's (size, mtime, inode) when the index comes from its file, on every call while there are
  few (DEEP_ALWAYS_FILES), else every `deep_every` seconds: a file changed in place (a metadata file edited by
  hand) keeps the directory's mtime.
What disagrees is read again from its files; the rest is kept. Restores never trust it: they read and hash the
chosen set's files.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import backups as B
from core import constants as C
from core.domain import BackupSet
from core.storage import remove_quietly, temp_path_for

log = logging.getLogger(__name__)

FileStat = tuple[int, int, int]  # size, mtime_ns, inode
INDEX_FORMAT = 2
# A directory or file whose mtime is this close to when it was looked at may change again without its mtime
# moving: a filesystem's clock ticks every few ms (at most 10), and some keep whole seconds only.
RACY_NS = 20_000_000
RACY_WHOLE_SECONDS_NS = 2_000_000_000


def racy(mtime_ns: int, looked_ns: int) -> bool:
    """Whether a change after `looked_ns` could leave this mtime as it is (whole-second mtimes: a longer wait)."""
    window = RACY_NS if mtime_ns % 1_000_000_000 else RACY_WHOLE_SECONDS_NS
    return mtime_ns >= looked_ns - window


DEEP_CHECK_SECONDS = 30.0
# Up to this many backup files (~1 ms of stat calls) every file is checked on every call; beyond it, every
# DEEP_CHECK_SECONDS (10,000 files take 50-75 ms to stat on this machine).
DEEP_ALWAYS_FILES = 300
# A reader saves the index after reading this many sets from their files (a write saves it every time).
SAVE_AFTER = 20
STALE_TEMP_SECONDS = 60.0


@dataclass(frozen=True)
class SetRecord:
    """One set as last read: its files' stats and its metadata summary (None: no metadata, or unreadable)."""

    stats: dict[str, FileStat]
    summary: dict[str, Any] | None
    readable: bool  # the metadata file holds a JSON object
    seen_ns: int = field(default=0, compare=False)  # when the stats were taken (what "too recent" is measured from)


def _dir_key(directory: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _names(directory: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except FileNotFoundError:
        return frozenset()


def _timestamp(name: str) -> str | None:
    """The backup timestamp in a backup file's name, or None for any other file."""
    base, sep, ts = name.rpartition(C.BACKUP_MARKER)
    return ts if sep and base in C.SET_FILES and C.BACKUP_TS_RE.match(ts) else None


def _parse(path: Path) -> dict[str, Any] | None:
    """A metadata file as a JSON object, or None (read here, not through a cache keyed by size and mtime)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _child(directory: Path, name: str) -> Path:
    """directory / name for a plain file name; pathlib's own unparsed join when it has one (10,000 paths: ~0.2 s
    of parsing saved on this machine)."""
    join = getattr(directory, "_make_child_relpath", None)
    return join(name) if join is not None else directory / name


def _stat(path: str) -> FileStat | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class BackupIndex:
    """The backup sets of one models directory, newest first, re-read only where the files changed."""

    def __init__(self, models_dir: Path, *, deep_every: float = DEEP_CHECK_SECONDS) -> None:
        self.models_dir = Path(models_dir)
        self.deep_every = deep_every
        self.file = self.models_dir / C.INDEX_DIR / C.BACKUP_INDEX_FILE
        self.reread = 0  # sets read again from their files, ever (tests and benchmarks watch it)
        self._lock = threading.Lock()
        self._records: dict[str, SetRecord] | None = None
        self._sets: dict[str, BackupSet] = {}
        self._ordered: list[BackupSet] = []
        self._dir: tuple[int, int] | None = None
        self._names: frozenset[str] = frozenset()
        self._files = 0  # backup files listed
        self._listed_ns = 0
        self._deep_at = float("-inf")
        self._unsaved = 0
        self.generation = 0  # changes whenever the listing does

    def sets(self) -> list[BackupSet]:
        """Every backup set, newest first, after the checks above."""
        with self._lock:
            self._refresh(deep=False)
            return list(self._ordered)

    def refresh(self, *, deep: bool = False, save: bool = False) -> None:
        """Bring the index in step with the files now (a write calls it under the registry lock, with `save`)."""
        with self._lock:
            self._refresh(deep=deep)
            if save:  # every write saves it, so the steps of a write do not depend on what readers did before
                self._save()

    # ------------------------------------------------------------ checking
    def _refresh(self, *, deep: bool) -> None:
        if self._records is None:
            self._records = self._load()
            self._sets = {ts: self._describe(ts, r) for ts, r in self._records.items()}
            self._ordered = sorted(self._sets.values(), key=lambda s: s.timestamp, reverse=True)
            self._dir = None
            deep = True  # what happened while nobody watched: check every file
        if deep or self._files <= DEEP_ALWAYS_FILES or time.monotonic() - self._deep_at >= self.deep_every:
            self._rescan(deep=True)
        elif _dir_key(self.models_dir) != self._dir or self._racy():
            self._rescan(deep=False)
        else:
            return
        if self._unsaved >= SAVE_AFTER:
            self._save()

    def _racy(self) -> bool:
        return self._dir is None or racy(self._dir[1], self._listed_ns)

    def _rescan(self, *, deep: bool) -> None:
        """List the directory; stat and read again the sets whose names (or, when `deep`, any stat) changed."""
        assert self._records is not None
        listed_ns = time.time_ns()
        before = _dir_key(self.models_dir)
        names = _names(self.models_dir)
        if deep:
            affected = {ts for n in names if (ts := _timestamp(n))} | self._records.keys()
        else:
            # Only the sets a name was added to or removed from (one set difference, not 10,000 stat calls).
            affected = {ts for n in names.symmetric_difference(self._names) if (ts := _timestamp(n))}
        old, new = self._records, dict(self._records)
        for ts in affected:
            previous = old.get(ts)
            present = {n: name for n in C.SET_FILES if (name := B.backup_name(n, ts)) in names}
            stats = {n: st for n, name in present.items() if (st := _stat(os.path.join(self.models_dir, name)))}
            if not stats:
                new.pop(ts, None)
            elif previous is None or previous.stats != stats or self._racy_record(previous):
                new[ts] = self._read(ts, stats, previous, listed_ns)
        changed = {ts for ts in affected if old.get(ts) != new.get(ts)}
        # Records read again with the same content (only their seen_ns is newer) are saved too, not shown again.
        self._unsaved += sum(1 for ts in affected if old.get(ts) is not new.get(ts) and ts not in changed)
        self._records, self._names, self._dir, self._listed_ns = new, names, before, listed_ns
        self._files = sum(len(r.stats) for r in new.values())
        if deep:
            self._deep_at = time.monotonic()
        if changed:
            for ts in changed:
                self._sets.pop(ts, None)
                if ts in new:
                    self._sets[ts] = self._describe(ts, new[ts])
            self._ordered = sorted(self._sets.values(), key=lambda s: s.timestamp, reverse=True)
            self._unsaved += len(changed)
            self.generation += 1

    @staticmethod
    def _racy_record(record: SetRecord) -> bool:
        """A file changed within RACY_NS of when it was looked at may have changed again since with the same stat."""
        return any(racy(st[1], record.seen_ns) for st in record.stats.values())

    def _read(self, ts: str, stats: dict[str, FileStat], previous: SetRecord | None, seen: int) -> SetRecord:
        """A set's record (its stats taken after `seen`); its metadata is parsed again only when its stat changed."""
        self.reread += 1
        meta = stats.get(C.METADATA_FILE)
        if meta is None:
            return SetRecord(stats, None, False, seen)
        if previous is not None and previous.stats.get(C.METADATA_FILE) == meta and not racy(meta[1], previous.seen_ns):
            return SetRecord(stats, previous.summary, previous.readable, seen)
        metadata = _parse(self.models_dir / B.backup_name(C.METADATA_FILE, ts))
        return SetRecord(stats, B.summary(metadata) if metadata is not None else None, metadata is not None, seen)

    def _describe(self, ts: str, record: SetRecord) -> BackupSet:
        files = {n: _child(self.models_dir, B.backup_name(n, ts)) for n in record.stats}
        sizes = {n: st[0] for n, st in record.stats.items()}
        return B.describe_set(ts, files, sizes, record.summary if record.readable else None)

    # ------------------------------------------------------------ the file
    def _load(self) -> dict[str, SetRecord]:
        """The saved index (checked file by file before use), or nothing when it is absent or not ours."""
        try:
            data = json.loads(self.file.read_bytes())
            if data.get("format") != INDEX_FORMAT:
                return {}
            records = {}
            for ts, raw in data["sets"].items():
                stats = {str(n): (int(s[0]), int(s[1]), int(s[2])) for n, s in raw["stats"].items()}
                summary = raw["summary"] if isinstance(raw["summary"], dict) else None
                readable = bool(raw["readable"]) and summary is not None
                records[str(ts)] = SetRecord(stats, summary, readable, int(raw["seen_ns"]))
            return records
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            log.warning("model registry: backup index %s unreadable; rebuilding it from the files", self.file)
            return {}

    def _save(self) -> None:
        """Write the index (temp file, os.replace): a cache, checked before use, so it is not fsynced."""
        assert self._records is not None
        payload = {
            "format": INDEX_FORMAT,
            "sets": {
                ts: {"stats": r.stats, "summary": r.summary, "readable": r.readable, "seen_ns": r.seen_ns}
                for ts, r in self._records.items()
            },
        }
        try:
            self.file.parent.mkdir(exist_ok=True)
            _remove_stale_temps(self.file.parent)
            tmp = temp_path_for(self.file)
            try:
                tmp.write_bytes(json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8"))
                os.replace(tmp, self.file)
            finally:
                remove_quietly(tmp)
        except OSError as exc:  # a read-only directory: the index stays in memory
            log.warning("model registry: backup index not saved: %s", exc)
        self._unsaved = 0


def _remove_stale_temps(folder: Path) -> None:
    """Temp files a killed process left while saving (not a save in progress: those are younger)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for entry in os.scandir(folder):
        try:
            if entry.name.startswith(C.TMP_PREFIX) and entry.stat().st_mtime < cutoff:
                remove_quietly(Path(entry.path))
        except FileNotFoundError:
            continue


_indexes: dict[str, BackupIndex] = {}
_indexes_lock = threading.Lock()


def index_for(models_dir: Path) -> BackupIndex:
    """The process's index of this models directory (every registry on it shares one)."""
    key = os.path.realpath(models_dir)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = BackupIndex(Path(models_dir))
        return index
