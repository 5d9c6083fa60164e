"""Backup sets on disk: `<file>.backup_YYYYMMDD_HHMMSS`, grouped by suffix, checked cheaply or fully."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

from core import constants as C
from core.domain import BackupSet, artifact_checksums
from core.errors import InvalidInput, NotFound
from core.storage import sha256_file

# What a listing keeps of each set's metadata (`summary`); model_performance keeps only its metrics.
SUMMARY_KEYS: tuple[str, ...] = (
    "version",
    "training_date",
    "promoted_at",
    "model_performance",
    "data_source",
    "trigger",
    "actor",
    "previous_version",
    "training_duration_seconds",
    "training_data_stats",
    "artifacts",
)

_meta_cache: dict[tuple[str, int, int], dict[str, Any] | None] = {}
_meta_cache_lock = threading.Lock()


def validate_timestamp(text: object) -> str:
    """A backup suffix shaped YYYYMMDD_HHMMSS, or InvalidInput (this also rules out path tricks).

    The date itself is not checked here: a set named by hand with an impossible date is listed and can be
    deleted; it is refused only for restore.
    """
    if not isinstance(text, str) or not C.BACKUP_TS_RE.match(text):
        shown = repr(text)[:40]
        raise InvalidInput(
            f"{shown} is not a backup timestamp; use the YYYYMMDD_HHMMSS suffix shown by `manage_models.py backups`"
        )
    return text


def timestamp_to_datetime(ts: str) -> dt.datetime | None:
    """The suffix as a UTC time, or None when it names no real date and time."""
    if not C.BACKUP_TS_RE.match(ts):
        return None
    try:  # sliced, not strptime: a listing converts thousands of suffixes and strptime is ten times slower
        return dt.datetime(
            int(ts[0:4]), int(ts[4:6]), int(ts[6:8]), int(ts[9:11]), int(ts[11:13]), int(ts[13:15]), tzinfo=dt.UTC
        )
    except ValueError:
        return None


def backup_name(file_name: str, ts: str) -> str:
    return f"{file_name}{C.BACKUP_MARKER}{ts}"


def unique_timestamp(models_dir: Path, now: dt.datetime, taken: set[str] | None = None) -> str:
    """The UTC timestamp of `now`, or a second after the newest backup when that is later.

    Suffixes therefore sort in the order the sets were made, even when several are made within one second.
    """
    taken = set(taken or ()) | {s for s in scan(models_dir)}
    moment = now.astimezone(dt.UTC).replace(microsecond=0)
    # Ignore suffixes far in the future (named by hand): they must not drag every later backup after them.
    made = [t for t in map(timestamp_to_datetime, taken) if t is not None and t <= moment + dt.timedelta(hours=1)]
    if made and max(made) >= moment:
        moment = max(made) + dt.timedelta(seconds=1)
    while moment.strftime(C.BACKUP_TS_FORMAT) in taken:
        moment += dt.timedelta(seconds=1)
    return moment.strftime(C.BACKUP_TS_FORMAT)


def scan(models_dir: Path) -> dict[str, dict[str, os.DirEntry]]:
    """One directory scan: {timestamp: {file_name: entry}} for files that look like backups."""
    sets: dict[str, dict[str, os.DirEntry]] = {}
    try:
        entries = os.scandir(models_dir)
    except FileNotFoundError:
        return sets
    with entries:
        for entry in entries:
            name = entry.name
            base, sep, ts = name.rpartition(C.BACKUP_MARKER)
            if not sep or base not in C.SET_FILES or not C.BACKUP_TS_RE.match(ts):
                continue
            sets.setdefault(ts, {})[base] = entry
    return sets


def read_metadata(path: Path, stat: os.stat_result | None = None) -> dict[str, Any] | None:
    """Parsed metadata JSON (cached by path, size and mtime), or None when unreadable."""
    try:
        stat = stat or path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _meta_cache_lock:
        if key in _meta_cache:
            return _meta_cache[key]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        parsed = data if isinstance(data, dict) else None
    except (OSError, ValueError):
        parsed = None
    with _meta_cache_lock:
        if len(_meta_cache) > 50_000:
            _meta_cache.clear()
        _meta_cache[key] = parsed
    return parsed


def build_set(ts: str, entries: dict[str, os.DirEntry | Path], *, verify: bool = False) -> BackupSet:
    """Describe one backup set from its files on disk; `verify` hashes every file against the metadata's sha256."""
    files: dict[str, Path] = {}
    sizes: dict[str, int] = {}
    stats: dict[str, os.stat_result] = {}
    for name, entry in entries.items():
        path = Path(entry.path) if isinstance(entry, os.DirEntry) else Path(entry)
        try:
            st = entry.stat() if isinstance(entry, os.DirEntry) else path.stat()
        except FileNotFoundError:
            continue
        files[name] = path
        sizes[name] = st.st_size
        stats[name] = st
    metadata = read_metadata(files[C.METADATA_FILE], stats[C.METADATA_FILE]) if C.METADATA_FILE in files else None
    return describe_set(ts, files, sizes, metadata, verify=verify)


def describe_set(
    ts: str,
    files: dict[str, Path],
    sizes: dict[str, int],
    metadata: dict[str, Any] | None,
    *,
    verify: bool = False,
) -> BackupSet:
    """A backup set from its files' paths and sizes and its parsed metadata (None: absent or unreadable)."""
    missing = tuple(n for n in C.SET_FILES if n not in files)
    created = timestamp_to_datetime(ts)
    problems: list[str] = []
    if created is None:
        problems.append(f"the suffix {ts} is not a real date and time (named by hand?)")
    if C.METADATA_FILE in files and metadata is None:
        problems.append(f"{backup_name(C.METADATA_FILE, ts)} is not a JSON object in UTF-8")
    if missing:
        problems.append("missing " + ", ".join(backup_name(n, ts) for n in missing))
    checksums = artifact_checksums(metadata or {})
    mismatch = False
    if metadata is not None and not all(n in checksums for n in C.MODEL_FILES):
        problems.append("metadata has no checksums for its model files (made by an older tool)")
    for name in C.MODEL_FILES:
        expected = checksums.get(name)
        if name not in files or expected is None:
            continue
        if expected.get("bytes") is not None and expected["bytes"] != sizes[name]:
            problems.append(f"{backup_name(name, ts)} is {sizes[name]} bytes, metadata says {expected['bytes']}")
            mismatch = True
        elif verify and sha256_file(files[name]) != expected["sha256"]:
            problems.append(f"{backup_name(name, ts)} does not match its sha256 in the metadata")
            mismatch = True
    if created is None:
        integrity = "bad_name"
    elif metadata is None and C.METADATA_FILE in files:
        integrity = "unreadable"
    elif mismatch:
        integrity = "mismatch"
    elif missing:
        integrity = "incomplete"
    elif not all(n in checksums for n in C.MODEL_FILES):
        integrity = "unverified"
    else:
        integrity = "ok"
    version = metadata.get("version") if metadata else None
    return BackupSet(
        timestamp=ts,
        created_at=created,
        files=files,
        missing=missing,
        size_bytes=sum(sizes.values()),
        version=str(version)[:32] if version is not None else None,
        metadata=metadata,
        integrity=integrity,
        problems=tuple(problems),
    )


def summary(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata keys a listing shows (version, metrics, dates, who, checksums); the rest stays in the file.

    Listings hold this summary; one set's whole metadata is read from its file (`get_set`) when it is needed.
    """
    out = {k: metadata[k] for k in SUMMARY_KEYS if k in metadata}
    perf = metadata.get("model_performance")
    if isinstance(perf, dict):
        out["model_performance"] = {k: perf[k] for k in (*C.PERFORMANCE_METRICS, "evaluated_at") if k in perf}
    return out


def list_sets(models_dir: Path) -> list[BackupSet]:
    """Every backup set, newest first (cheap: sizes are checked, hashes are not)."""
    sets = [build_set(ts, entries) for ts, entries in scan(models_dir).items()]
    sets.sort(key=lambda b: b.timestamp, reverse=True)
    return sets


def get_set(models_dir: Path, ts: str, *, verify: bool = False) -> BackupSet:
    validate_timestamp(ts)
    # Its three possible names, not a scan of the directory (which may hold thousands of backup files).
    entries: dict[str, os.DirEntry | Path] = {
        n: path for n in C.SET_FILES if (path := models_dir / backup_name(n, ts)).is_file()
    }
    if not entries:
        raise NotFound(f"no backup with timestamp {ts}; list them with `manage_models.py backups`")
    return build_set(ts, entries, verify=verify)
