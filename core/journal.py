"""The write journal: a registry change is staged completely, then applied under a journal that names its event.

Whoever finds a journal (the writer itself, or the next process that takes the registry lock) finishes the
change it describes: it moves the remaining staged files into place, removes what was to be removed, and the
registry records the planned audit event unless it already was. A crash can delay the event, never lose it
or turn it into a guessed one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import backups as B
from core import constants as C
from core.domain import BackupSet
from core.storage import atomic_write_json, copy_to_temp, fsync_dir, remove_quietly, write_temp_bytes


@dataclass(frozen=True)
class PlannedEvent:
    """The audit event a change will be recorded with, written into its journal before anything is applied."""

    kind: str
    actor: str
    from_version: str | None = None
    to_version: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any) -> PlannedEvent | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str) or not isinstance(raw.get("actor"), str):
            return None
        details = raw.get("details")
        return cls(
            kind=raw["kind"],
            actor=raw["actor"],
            from_version=raw.get("from_version"),
            to_version=raw.get("to_version"),
            reason=raw.get("reason"),
            details=details if isinstance(details, dict) else {},
        )


@dataclass(frozen=True)
class JournalEntry:
    """A change that was started: its files, its event, and whether only its event is still missing."""

    op: str
    op_id: str
    at: str
    staged: tuple[tuple[str, str], ...]
    remove: tuple[str, ...]
    event: PlannedEvent | None
    rewrite_state: bool
    event_error: str | None  # set once the files are in place but the event could not be recorded

    @property
    def event_pending(self) -> bool:
        return self.event_error is not None


def journal_path(models_dir: Path) -> Path:
    return models_dir / C.JOURNAL_FILE


def read_journal(models_dir: Path) -> JournalEntry | None:
    """The unfinished change, or None. A journal that cannot be read still names its staged files if it can."""
    try:
        raw = json.loads(journal_path(models_dir).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    staged = raw.get("staged") if isinstance(raw.get("staged"), list) else []
    pairs = tuple(
        (str(p[0]), str(p[1])) for p in staged if isinstance(p, list | tuple) and len(p) == 2 and _safe(p[0], p[1])
    )
    remove = tuple(str(n) for n in (raw.get("remove") or []) if isinstance(n, str) and _safe(n))
    return JournalEntry(
        op=str(raw.get("op", "unknown")),
        op_id=str(raw.get("op_id", "")),
        at=str(raw.get("at", "")),
        staged=pairs,
        remove=remove,
        event=PlannedEvent.from_dict(raw.get("event")),
        rewrite_state=bool(raw.get("rewrite_state")),
        event_error=raw.get("event_error") if isinstance(raw.get("event_error"), str) else None,
    )


def _safe(*names: object) -> bool:
    """Plain file names inside the models directory only (a hand-edited journal must not point elsewhere)."""
    return all(isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..") for n in names)


def _write(models_dir: Path, entry: JournalEntry) -> None:
    payload = asdict(entry)
    payload["staged"] = [list(p) for p in entry.staged]
    payload["remove"] = list(entry.remove)
    payload["event"] = asdict(entry.event) if entry.event else None
    atomic_write_json(journal_path(models_dir), payload)


def mark_event_pending(models_dir: Path, entry: JournalEntry, error: str) -> JournalEntry:
    """The files are in place but the event could not be recorded: keep the journal, saying so."""
    pending = JournalEntry(**{**entry.__dict__, "event_error": error})
    _write(models_dir, pending)
    return pending


def finish(models_dir: Path) -> None:
    remove_quietly(journal_path(models_dir))
    fsync_dir(models_dir)


def roll_forward(models_dir: Path, entry: JournalEntry) -> None:
    """Apply whatever of the journal's file steps a crash left undone (each step is idempotent)."""
    for tmp_name, final_name in entry.staged:
        tmp = models_dir / tmp_name
        if tmp.exists():
            os.replace(tmp, models_dir / final_name)
    for name in entry.remove:
        remove_quietly(models_dir / name)
    fsync_dir(models_dir)


class StagedWrite:
    """The staging area of one registry write: temp files beside their targets, applied together under a journal."""

    def __init__(self, models_dir: Path, op: str, now: dt.datetime, *, deadline: float | None = None) -> None:
        self.models_dir = models_dir
        self.op = op
        self.now = now
        self.deadline = deadline  # time.monotonic() after which the write gives up before applying anything
        self.op_id = uuid.uuid4().hex
        self.staged: list[tuple[Path, Path]] = []
        self.removals: list[Path] = []
        self.entry: JournalEntry | None = None  # set once journaled: the staged files then belong to the journal
        self.timestamps: set[str] = set()  # backup suffixes this write stages

    def stage_bytes(self, name: str, data: bytes) -> None:
        target = self.models_dir / name
        self.staged.append((write_temp_bytes(target, data), target))

    def stage_copy(self, source: Path, name: str) -> None:
        target = self.models_dir / name
        self.staged.append((copy_to_temp(source, target), target))

    def _timestamp(self, taken: set[str] | None) -> str:
        ts = B.unique_timestamp(self.models_dir, self.now, set(taken or ()) | self.timestamps)
        self.timestamps.add(ts)
        return ts

    def stage_backup(self, taken: set[str] | None = None) -> str | None:
        """Stage a copy of whichever current files exist as a new backup set; its timestamp, or None."""
        present = [n for n in C.SET_FILES if (self.models_dir / n).exists()]
        if not present:
            return None
        ts = self._timestamp(taken)
        for name in present:
            self.stage_copy(self.models_dir / name, B.backup_name(name, ts))
        return ts

    def stage_backup_of(self, blobs: dict[str, bytes], taken: set[str] | None = None) -> str:
        """Stage a backup set holding these files (the set about to go live); its timestamp."""
        ts = self._timestamp(taken)
        for name, data in blobs.items():
            self.stage_bytes(B.backup_name(name, ts), data)
        return ts

    def remove(self, *sets: BackupSet) -> None:
        """Remove every file of these backup sets when the write is applied."""
        for backup_set in sets:
            self.removals.extend(backup_set.files.values())

    def apply(self, event: PlannedEvent | None, *, rewrite_state: bool) -> JournalEntry:
        """Journal the change with its event, then move the staged files into place and remove what goes."""
        self.entry = JournalEntry(
            op=self.op,
            op_id=self.op_id,
            at=self.now.isoformat(),
            staged=tuple((tmp.name, final.name) for tmp, final in self.staged),
            remove=tuple(p.name for p in self.removals),
            event=event,
            rewrite_state=rewrite_state,
            event_error=None,
        )
        _write(self.models_dir, self.entry)
        roll_forward(self.models_dir, self.entry)
        return self.entry

    def discard(self) -> None:
        """Remove staged files that were never journaled (the body raised before applying)."""
        if self.entry is None:
            for tmp, _ in self.staged:
                remove_quietly(tmp)
            self.staged = []
