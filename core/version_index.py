"""Every promotion the database remembers, parsed once per process and then read incrementally.

History is append-only: a call asks for the promote events' count and highest id (one small query), reads only
the events added since, and reads them all again when the count disagrees (rows removed, or added out of order).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from core.db import Database, RegistryEvent
from core.domain import ModelVersion

Stamp = tuple[int, int | None]  # promote events: how many, highest id


@dataclass(frozen=True)
class Promotion:
    """One promotion: the version, its metadata as promoted, when, and that metadata parsed."""

    event_id: int
    version: str
    metadata: dict[str, Any]
    at: dt.datetime
    model: ModelVersion


class PromotionIndex:
    """The promotions of one database, oldest first (by time, then id), as `Registry.versions` reads them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.full_reads = 0  # how often every promote event was read again (tests and benchmarks watch it)
        self._lock = threading.Lock()
        self._stamp: Stamp = (0, None)
        self._rows: tuple[Promotion, ...] = ()

    def stamp(self) -> Stamp:
        events = RegistryEvent.__table__.c
        stmt = select(func.count(), func.max(events.id)).where(events.kind == "promote")
        with self.db.session() as s:
            count, top = s.execute(stmt).one()
        return int(count), top

    def promotions(self) -> tuple[Stamp, tuple[Promotion, ...]]:
        """The stamp they were read at and every promotion with a version, oldest first."""
        stamp = self.stamp()
        with self._lock:
            if stamp == self._stamp:
                return stamp, self._rows
            known, last = self._stamp
            if last is not None and stamp[1] is not None and stamp[0] > known:
                added = self._read(after=last)
                if known + len(added) == stamp[0]:
                    self._keep(stamp, (*self._rows, *added), sort=True)
                    return stamp, self._rows
            self.full_reads += 1
            self._keep(stamp, self._read(after=None), sort=False)
            return stamp, self._rows

    def _keep(self, stamp: Stamp, rows: tuple[Promotion, ...], *, sort: bool) -> None:
        self._stamp = stamp
        self._rows = tuple(sorted(rows, key=lambda p: (p.at, p.event_id))) if sort else rows

    def _read(self, *, after: int | None) -> tuple[Promotion, ...]:
        """Promote events (all, or those with an id above `after`), oldest first; every one counts."""
        e = RegistryEvent
        stmt = select(e.id, e.to_version, e.at, e.details).where(e.kind == "promote").order_by(e.at.asc(), e.id.asc())
        if after is not None:
            stmt = stmt.where(e.id > after)
        with self.db.session() as s:
            rows = s.execute(stmt).all()
        out = []
        for event_id, version, at, details in rows:
            meta = dict((details or {}).get("metadata") or {})
            model = ModelVersion.from_metadata(meta, location="history")
            out.append(Promotion(event_id, version or "", meta, at, model))
        return tuple(out)
