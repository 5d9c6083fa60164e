"""The prediction log: rows on SQLite and PostgreSQL, a writer that never blocks a prediction, flushed on close."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from core import prediction_log as P
from core.db import Database

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def test_rows_round_trip_replace_and_prune_on_each_backend(any_db: Database) -> None:
    served = [P._row(f"d{i}", NOW - dt.timedelta(minutes=i), "1.2.0", i / 10, 0.8) for i in range(10)]
    P.insert_rows(any_db, served)
    day = P.day_of(NOW)
    batch = [P._row(f"d{i}", NOW, "1.2.0", 0.9, 0.01, source="batch", day=day) for i in range(5)]
    P.replace_batch(any_db, batch, [day], ["1.2.0"])
    P.replace_batch(any_db, batch[:3], [day], ["1.2.0"])  # scoring the day again replaces, never duplicates
    frame = P.read_frame(any_db, full=True)
    assert len(frame) == 13
    assert sorted(frame["source"].value_counts().items()) == [("api", 10), ("batch", 3)]
    assert set(frame["decision"][frame["source"] == "api"]) == {0, 1}  # probability > 0.5 decides
    assert (frame["day"] == day).all() and frame["predicted_at"].dt.tz is not None
    old = [P._row("d1", NOW - dt.timedelta(days=d), "1.1.0", 0.2, 1.0) for d in (200, 300)]
    P.insert_rows(any_db, old)
    assert P.prune(any_db, 180, now=NOW) == 2 and P.count(any_db) == 13


def test_a_slow_database_never_blocks_a_prediction_drops_are_counted_and_the_rest_is_written(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    db = Database(f"sqlite:///{path}", timeout=5.0)
    writer = P.PredictionLogWriter(db, keep_days=3650, maxsize=20)
    writer.record("warm", NOW, "1.0.0", 0.1, 1.0)
    assert writer.flush(5.0)
    # Another process holds the write lock: the writer's INSERT waits, its queue fills up.
    blocker = sqlite3.connect(path, timeout=5.0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        accepted, slowest = 0, 0.0
        for i in range(200):
            started = time.perf_counter()
            accepted += writer.record(f"d{i}", NOW, "1.0.0", 0.6, 1.0)
            slowest = max(slowest, time.perf_counter() - started)
        stats = writer.stats()
        assert slowest < 0.01, f"record() waited {slowest * 1000:.1f} ms for the database"
        assert stats.dropped == 200 - accepted and stats.dropped >= 150, stats
    finally:
        blocker.rollback()
        blocker.close()
    writer.close()
    assert writer.stats().written == 1 + accepted and P.count(db) == 1 + accepted
    db.dispose()


def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'log.db'}")
    writer = P.PredictionLogWriter(db, keep_days=3650)
    for i in range(1200):
        writer.record(f"d{i % 30}", NOW, "1.0.0", 0.4, 0.5)
    writer.close()
    assert P.count(db) == 1200 and writer.stats().dropped == 0
    assert not writer.record("late", NOW, "1.0.0", 0.4, 0.5)  # closed: refused, counted, never raised
    db.dispose()
