"""The audit trail in memory, read once per process and then incrementally (what listings and pages filter).

History is append-only: a call asks for the events' count and highest id (one small query), reads only the
events added since, and reads them all again when they disagree with what was read: the count does not add up,
or the row that had the highest id is not the one read (SQLite hands a removed last row's id out again).
Promotions are parsed into ModelVersions once, when they are first read.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from core.db import Database, RegistryEvent
from core.domain import EventRecord, ModelVersion
from core.history import _event_record

Stamp = tuple[int, int | None]  # events: how many, highest id


@dataclass(frozen=True)
class Promotion:
    """One promotion: its event and the metadata it promoted, parsed."""

    event: EventRecord
    model: ModelVersion

    @property
    def version(self) -> str:
        return self.event.to_version or ""


@dataclass(frozen=True)
class Snapshot:
    """Every event (oldest first, by time then id) and every promotion, as of one stamp."""

    stamp: Stamp
    events: tuple[EventRecord, ...]
    promotions: tuple[Promotion, ...]


class EventIndex:
    """The registry events of one database, kept in step with it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.full_reads = 0  # how often every event was read again (tests and benchmarks watch it)
        self._lock = threading.Lock()
        self._snapshot = Snapshot((0, None), (), ())

    def stamp(self) -> Stamp:
        table = RegistryEvent.__table__.c
        with self.db.session() as s:
            count, top = s.execute(select(func.count(), func.max(table.id))).one()
        return int(count), top

    def snapshot(self) -> Snapshot:
        """The events as they are now: only those added since the last call are read."""
        stamp = self.stamp()
        with self._lock:
            old = self._snapshot
            if stamp == old.stamp:
                return old
            known, last = old.stamp
            if last is not None and stamp[1] is not None and stamp[0] > known and self._unchanged(old, last):
                added = self._read(after=last)
                if known + len(added) == stamp[0]:
                    self._keep(stamp, old, added)
                    return self._snapshot
            self.full_reads += 1
            self._keep(stamp, Snapshot(stamp, (), ()), self._read(after=None))
            return self._snapshot

    def events(
        self,
        *,
        kinds: Sequence[str] = (),
        actor: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 500,
    ) -> list[EventRecord]:
        """Events newest first, filtered as `History.events` filters them."""
        wanted = set(kinds)
        out: list[EventRecord] = []
        for e in reversed(self.snapshot().events):
            if len(out) >= limit:
                break
            if (wanted and e.kind not in wanted) or (actor and e.actor != actor) or (since and e.at < since):
                continue
            out.append(e)
        return out

    def _unchanged(self, old: Snapshot, last: int) -> bool:
        """Whether the row with id `last` is still the event read under that id."""
        read = next((e for e in reversed(old.events) if e.id == last), None)
        with self.db.session() as s:
            row = s.get(RegistryEvent, last)
            now = _event_record(row) if row is not None else None
        return (
            read is not None
            and now is not None
            and (now.kind, now.at, now.to_version)
            == (
                read.kind,
                read.at,
                read.to_version,
            )
        )

    def _keep(self, stamp: Stamp, old: Snapshot, added: tuple[EventRecord, ...]) -> None:
        promoted = tuple(
            Promotion(e, ModelVersion.from_metadata(dict(e.details.get("metadata") or {}), location="history"))
            for e in added
            if e.kind == "promote"
        )
        key = lambda e: (e.at, e.id)  # noqa: E731
        in_order = not old.events or not added or key(added[0]) >= key(old.events[-1])
        events = (*old.events, *added)
        promotions = (*old.promotions, *promoted)
        if not in_order:
            events = tuple(sorted(events, key=key))
            promotions = tuple(sorted(promotions, key=lambda p: key(p.event)))
        self._snapshot = Snapshot(stamp, events, promotions)

    def _read(self, *, after: int | None) -> tuple[EventRecord, ...]:
        """Events (all, or those with an id above `after`), oldest first."""
        stmt = select(RegistryEvent).order_by(RegistryEvent.at.asc(), RegistryEvent.id.asc())
        if after is not None:
            stmt = stmt.where(RegistryEvent.id > after)
        with self.db.session() as s:
            return tuple(_event_record(r) for r in s.scalars(stmt))
