"""The prediction log: every prediction served or scored, written off the request path and pruned by age."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from core.db import Database, PredictionError, PredictionRecord, unavailable

log = logging.getLogger(__name__)

# A prediction is a positive decision when the failure class is the more probable one (what predict() returns,
# and what the holdout precision and recall were computed from).
DECISION_THRESHOLD = 0.5
QUEUE_ROWS = 10_000  # predictions waiting to be written; beyond this they are counted as dropped, never waited on
FLUSH_ROWS = 500  # rows per INSERT
FLUSH_SECONDS = 0.5  # the writer wakes at least this often
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 20_000
DROP_LOG_EVERY_SECONDS = 60.0
NS_PER_DAY = 86_400_000_000_000
_ERROR = "_failed_request"  # marks a queued failed predict request among the predictions


def decision(probability: float) -> int:
    """1 when the model predicts a failure within the horizon."""
    return int(probability > DECISION_THRESHOLD)


def day_of(moment: dt.datetime) -> dt.datetime:
    """Midnight UTC of the calendar day `moment` falls on: the day whose features a prediction scores."""
    moment = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class LogStats:
    """What the writer did since the process started."""

    written: int
    dropped: int
    failed: int
    pending: int


def _row(
    device_id: str,
    predicted_at: dt.datetime,
    model_version: str,
    probability: float,
    latency_ms: float,
    *,
    role: str = "live",
    source: str = "api",
    day: dt.datetime | None = None,
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "predicted_at": predicted_at,
        "day": day or day_of(predicted_at),
        "model_version": model_version,
        "role": role,
        "source": source,
        "probability": float(probability),
        "decision": decision(probability),
        "latency_ms": float(latency_ms),
    }


COLUMNS = (
    "device_id",
    "predicted_at",
    "day",
    "model_version",
    "role",
    "source",
    "probability",
    "decision",
    "latency_ms",
)
_TIMES = (1, 2)  # positions of the datetime columns in COLUMNS


def _stored(moment: dt.datetime, sqlite: bool) -> Any:
    """A UTC datetime as UTCDateTime stores it: naive UTC (SQLite: its text form, which sorts like time)."""
    naive = moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return naive.isoformat(sep=" ", timespec="microseconds") if sqlite else naive


def _insert(conn: Any, rows: Sequence[dict[str, Any]], sqlite: bool) -> None:
    """Rows straight to the driver's executemany, FLUSH_ROWS at a time.

    Skipping SQLAlchemy's per-row processing keeps the writer thread's hold on the GIL short, so it does not
    add to the latency of the predictions served meanwhile.
    """
    mark = "?" if sqlite else "%s"
    values = ", ".join([mark] * len(COLUMNS))
    sql = f"INSERT INTO {PredictionRecord.__tablename__} ({', '.join(COLUMNS)}) VALUES ({values})"
    for start in range(0, len(rows), FLUSH_ROWS):
        params = [
            tuple(_stored(r[c], sqlite) if i in _TIMES else r[c] for i, c in enumerate(COLUMNS))
            for r in rows[start : start + FLUSH_ROWS]
        ]
        conn.exec_driver_sql(sql, params)


def insert_rows(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Insert prediction rows, one transaction."""
    if not rows:
        return
    try:
        with db.engine.begin() as conn:
            _insert(conn, rows, db.dialect == "sqlite")
    except (OperationalError, InterfaceError) as exc:
        raise unavailable(exc, db.url) from None


def replace_batch(
    db: Database, rows: Sequence[dict[str, Any]], days: Iterable[dt.datetime], versions: Iterable[str]
) -> None:
    """Batch rows for these days and versions, replacing any earlier batch scoring of them (one transaction)."""
    table = PredictionRecord.__table__
    c = table.c
    days, versions = sorted(set(days)), sorted(set(versions))
    try:
        with db.engine.begin() as conn:
            if days and versions:
                conn.execute(
                    delete(table).where(and_(c.source == "batch", c.day.in_(days), c.model_version.in_(versions)))
                )
            _insert(conn, rows, db.dialect == "sqlite")
    except (OperationalError, InterfaceError) as exc:
        raise unavailable(exc, db.url) from None


def prune(db: Database, keep_days: int, *, now: dt.datetime | None = None) -> int:
    """Delete predictions older than `keep_days`, PRUNE_BATCH rows per statement; how many were deleted."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=keep_days)
    c = PredictionRecord.__table__.c
    removed = 0
    while True:
        with db.session() as s:
            ids = list(s.scalars(select(c.id).where(c.predicted_at < cutoff).limit(PRUNE_BATCH)))
            if ids:
                s.execute(delete(PredictionRecord.__table__).where(c.id.in_(ids)))
        removed += len(ids)
        if len(ids) < PRUNE_BATCH:
            break
    if removed:
        log.info("prediction log: pruned %d predictions older than %d days", removed, keep_days)
    return removed


def insert_errors(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    """Record failed predict requests (at, device_id, code), one transaction."""
    if rows:
        with db.session() as s:
            s.execute(PredictionError.__table__.insert(), [dict(r) for r in rows])


def request_counts(db: Database, *, since: dt.datetime) -> tuple[int, int]:
    """Predict requests since `since`: (failed, served through the API)."""
    served = PredictionRecord.__table__.c
    failed = PredictionError.__table__.c
    with db.session() as s:
        errors = s.scalar(select(func.count()).select_from(PredictionError).where(failed.at >= since))
        answered = s.scalar(
            select(func.count())
            .select_from(PredictionRecord)
            .where(served.source == "api", served.predicted_at >= since)
        )
    return int(errors or 0), int(answered or 0)


def count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(PredictionRecord)) or 0)


def read_frame(
    db: Database,
    *,
    since_day: dt.datetime | None = None,
    until_day: dt.datetime | None = None,
    full: bool = False,
) -> pd.DataFrame:
    """Logged predictions: id, device, day, version, probability, decision (`full`: also role, source and time)."""
    c = PredictionRecord.__table__.c
    columns = [c.id, c.device_id, c.day, c.model_version, c.probability, c.decision]
    if full:
        columns += [c.role, c.source, c.predicted_at]
    names = [col.name for col in columns]
    sqlite = db.dialect == "sqlite"
    with db.engine.connect() as conn:
        if sqlite:
            # Straight from the driver's cursor, timestamps as their stored text: a Row per prediction and a
            # datetime parse per value would take most of the time.
            where, params = [], []
            for op, bound in ((">=", since_day), ("<=", until_day)):
                if bound is not None:
                    where.append(f"day {op} ?")
                    params.append(_stored(bound, True))
            sql = f"SELECT {', '.join(names)} FROM {PredictionRecord.__tablename__}"
            sql += f" WHERE {' AND '.join(where)}" if where else ""
            frame = pd.read_sql(sql, conn.connection.dbapi_connection, params=tuple(params))
        else:
            stmt = select(*columns)
            if since_day is not None:
                stmt = stmt.where(c.day >= since_day)
            if until_day is not None:
                stmt = stmt.where(c.day <= until_day)
            frame = pd.read_sql(stmt, conn)
    for name in ("day", "predicted_at") if full else ("day",):
        frame[name] = _utc_times(frame[name], sqlite)
    kinds = {"device_id": "category", "model_version": "category", "probability": float, "decision": np.int8}
    return frame.astype({**kinds, "id": np.int64})


def roles(db: Database) -> dict[str, str]:
    """Each logged model version's role (live or shadow)."""
    c = PredictionRecord.__table__.c
    with db.engine.connect() as conn:
        return {
            str(v): str(r) for v, r in conn.execute(select(c.model_version, c.role).group_by(c.model_version, c.role))
        }


def _utc_times(values: pd.Series, sqlite_text: bool) -> pd.Series:
    if sqlite_text and len(values) and values.dtype == object:
        try:
            return pd.Series(pd.DatetimeIndex(np.array(values, dtype="datetime64[us]")).tz_localize("UTC"))
        except ValueError:
            pass  # another format: let pandas work it out
    return pd.to_datetime(values, utc=True, format="ISO8601")


class PredictionLogWriter:
    """Writes served predictions on its own thread: `record` only queues, never blocks, never raises.

    A full queue (the database is slow or down) drops the prediction from the log, counted and logged; the
    prediction itself is always answered. `close` flushes what is queued.
    """

    def __init__(self, db: Database, *, keep_days: int, maxsize: int = QUEUE_ROWS) -> None:
        self.db = db
        self.keep_days = keep_days
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=maxsize)
        self._written = self._dropped = self._failed = 0
        self._last_drop_log = 0.0
        self._last_prune = 0.0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # what is queued at exit is written, not lost

    def record(
        self, device_id: str, predicted_at: dt.datetime, model_version: str, probability: float, latency_ms: float
    ) -> bool:
        """Queue one served prediction; False (and counted) when the queue is full or the writer is closed."""
        if self._closed.is_set():
            self._dropped += 1
            return False
        try:
            self._queue.put_nowait(_row(device_id, predicted_at, model_version, probability, latency_ms))
            return True
        except queue.Full:
            self._dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_EVERY_SECONDS:
                self._last_drop_log = now
                log.warning(
                    "prediction log: queue full (%d waiting), %d predictions not logged so far; "
                    "the database is slower than the prediction rate",
                    self._queue.qsize(),
                    self._dropped,
                )
            return False

    def record_error(self, device_id: str, at: dt.datetime, code: str) -> bool:
        """Queue one failed predict request (the error rate's numerator); False when it cannot be queued."""
        if self._closed.is_set():
            return False
        try:
            self._queue.put_nowait({_ERROR: True, "at": at, "device_id": device_id[:64], "code": code[:32]})
            return True
        except queue.Full:
            self._dropped += 1
            return False

    def stats(self) -> LogStats:
        return LogStats(self._written, self._dropped, self._failed, self._queue.qsize())

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking predictions, write what is queued, stop the thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(queue.Full):  # the writer is stuck: join gives up after the timeout too
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _take(self) -> tuple[list[dict[str, Any]], bool]:
        """Up to FLUSH_ROWS queued rows (waiting at most FLUSH_SECONDS for the first); and whether to stop."""
        rows: list[dict[str, Any]] = []
        try:
            item = self._queue.get(timeout=FLUSH_SECONDS)
        except queue.Empty:
            return rows, False
        while True:
            if item is None:
                self._queue.task_done()
                return rows, True
            rows.append(item)
            if len(rows) >= FLUSH_ROWS:
                return rows, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rows, False

    def _run(self) -> None:
        stop = False
        while not stop:
            rows, stop = self._take()
            if rows:
                try:
                    errors = [{k: v for k, v in r.items() if k != _ERROR} for r in rows if r.get(_ERROR)]
                    served = [r for r in rows if not r.get(_ERROR)]
                    insert_rows(self.db, served)
                    insert_errors(self.db, errors)
                    self._written += len(served)
                except Exception as exc:  # the log must never take the serving thread down
                    self._failed += len(rows)
                    log.warning("prediction log: %d predictions not written: %s", len(rows), exc)
                finally:
                    for _ in rows:
                        self._queue.task_done()
            if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
                self._last_prune = time.monotonic()
                try:
                    prune(self.db, self.keep_days)
                except Exception as exc:
                    log.warning("prediction log: pruning failed: %s", exc)
