"""SQLAlchemy 2.x schema and engine set-up for telemetry and registry history (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from core.constants import METRIC_NAMES
from core.errors import Unavailable

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    device_type: Mapped[str] = mapped_column(String(64), index=True)
    installed_at: Mapped[dt.datetime]
    firmware: Mapped[str] = mapped_column(String(32), default="1.0")
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)


class HealthMetric(Base):
    __tablename__ = "device_health_metrics"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"))
    metric_name: Mapped[str] = mapped_column(String(64))
    metric_value: Mapped[float] = mapped_column(Float)
    metric_unit: Mapped[str] = mapped_column(String(16))
    timestamp: Mapped[dt.datetime]

    __table_args__ = (
        Index("ix_metrics_timestamp", "timestamp"),
        Index("ix_metrics_device_timestamp", "device_id", "timestamp"),
    )


class DeviceFailure(Base):
    __tablename__ = "device_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), index=True)
    failed_at: Mapped[dt.datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(64))


# Daily aggregates (issue 14): per (device, UTC day) and metric, the count, sum, sum of squares, min and max of its
# readings. Sums, not means or stds, so multi-day windows combine exactly; one wide row per device-day reads fast.
DAY_STATS: tuple[str, ...] = ("n", "sum", "sumsq", "min", "max")


def day_column(metric: str, stat: str) -> str:
    """The device_day_metrics column holding one statistic of one metric."""
    return f"{metric}__{stat}"


device_day_metrics = Table(
    "device_day_metrics",
    Base.metadata,
    Column("day", Date, primary_key=True),
    Column("device_id", String(64), primary_key=True),
    *(
        Column(day_column(m, s), Integer if s == "n" else Float, nullable=s != "n")
        for m in METRIC_NAMES
        for s in DAY_STATS
    ),
)


class DailyAggregateState(Base):
    """How far device_day_metrics is up to date: the highest reading id it has folded in."""

    __tablename__ = "device_day_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_metric_id: Mapped[int] = mapped_column(BigInteger)
    refreshed_at: Mapped[dt.datetime | None]


class DirtyDeviceDay(Base):
    """A (device, day) whose aggregates must be recomputed from the readings at the next refresh."""

    __tablename__ = "device_day_dirty"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)


class PendingDeviceDay(Base):
    """PostgreSQL: a (device, day) whose readings a transaction inserted, deleted or changed; one row per transaction.

    Keyed by the writer's transaction id, so each mark commits with its own readings and no writer waits on
    another's mark; a refresh moves the committed ones into device_day_dirty (SQLite does not use this table).
    """

    __tablename__ = "device_day_pending"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(32), index=True)
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data_stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    duration_seconds: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(index=True)
    finished_at: Mapped[dt.datetime | None]


class RegistryEvent(Base):
    __tablename__ = "registry_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(index=True)
    from_version: Mapped[str | None] = mapped_column(String(32))
    to_version: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ArtifactRecord(Base):
    """A model file the registry wrote (or an admin explicitly trusted): only these are ever unpickled."""

    __tablename__ = "artifact_provenance"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(32), index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # promote | trusted | history
    actor: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[dt.datetime]


class RegistryHold(Base):
    """A hold on the live version: while it is active, training keeps gate-passing runs as candidates."""

    __tablename__ = "registry_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(32))
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[dt.datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    released_by: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    release_reason: Mapped[str | None] = mapped_column(Text)


class UserAccount(Base):
    """A built-in dashboard account: the Argon2 hash of its password, never the password."""

    __tablename__ = "user_accounts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    password_changed_at: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]


class ApiKey(Base):
    """A named API key with a role: the SHA-256 of its 256-bit secret, never the secret."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class PredictionRecord(Base):
    """One prediction served (API) or made by the daily fleet scoring (batch, live or a shadow candidate)."""

    __tablename__ = "prediction_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    predicted_at: Mapped[dt.datetime]
    day: Mapped[dt.datetime]  # the UTC calendar day whose features were scored (midnight), as training labels it
    model_version: Mapped[str] = mapped_column(String(32))  # "1.4.0", or "candidate:<id>" for a shadow
    role: Mapped[str] = mapped_column(String(8))  # live | shadow
    source: Mapped[str] = mapped_column(String(8))  # api | batch
    probability: Mapped[float] = mapped_column(Float)
    decision: Mapped[int] = mapped_column(Integer)  # 1: the model predicts a failure within the horizon
    latency_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_prediction_log_version_time", "model_version", "predicted_at"),
        Index("ix_prediction_log_time", "predicted_at"),
        Index("ix_prediction_log_day_device", "day", "device_id"),
    )


class NotificationDelivery(Base):
    """One History event to one webhook target: the outbox row every dispatcher claims before sending."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(Integer, ForeignKey("registry_events.id"))
    target: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | sending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime]
    claimed_until: Mapped[dt.datetime | None]  # a dispatcher that died mid-send leaves this to run out
    claim: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("event_id", "target", name="uq_notification_event_target"),
        Index("ix_notification_due", "status", "next_attempt_at"),
    )


class NotificationCursor(Base):
    """Per target, the last History event that existed when it was first configured: older ones are not sent."""

    __tablename__ = "notification_cursors"

    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    after_event_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]


class AlertEpisode(Base):
    """One episode of an alert rule: fired once, open until its condition clears (then resolved, for good)."""

    __tablename__ = "alert_episodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(96), index=True)
    # The rule while the episode is open, NULL once resolved: unique, so two evaluators racing to fire the same
    # rule open one episode (every backend allows many NULLs in a unique column).
    open_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    fired_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledge_reason: Mapped[str | None] = mapped_column(Text)
    silenced_until: Mapped[dt.datetime | None]
    silenced_by: Mapped[str | None] = mapped_column(String(128))
    silence_reason: Mapped[str | None] = mapped_column(Text)


class PredictionError(Base):
    """A predict request that failed (not a client's invalid input): the alert engine's error rate counts them."""

    __tablename__ = "prediction_errors"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(32))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def describe_url(url: str) -> str:
    """The URL without its password, for the server log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable DATABASE_URL>"


DEFAULT_TIMEOUT_SECONDS = 5.0
_SYMPTOMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("timeout", "timed out", "canceling statement"), "it did not answer in time"),
    (("refused",), "connection refused"),
    (("database is locked",), "it is locked by another writer"),
    (("password", "authentication"), "authentication failed"),
    (("does not exist",), "the database does not exist"),
    (("unable to open", "readonly", "read-only"), "the database file cannot be opened for writing"),
    (("could not translate host", "name or service not known"), "its host name does not resolve"),
)


def unavailable(exc: Exception, url: str) -> Unavailable:
    """What to tell a client about a database failure: the symptom, never its URL, host or path (those: the log)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    symptom = next((say for needles, say in _SYMPTOMS if any(n in text for n in needles)), type(exc).__name__)
    log.error("database %s: %s", describe_url(url), getattr(exc, "orig", None) or exc)
    return Unavailable(f"the database is unreachable: {symptom}; check DATABASE_URL and the database server")


# Bulk work (seeding, a rebuild of the device-day aggregates, a fleet's read) runs statements far longer than
# the interactive statement timeout each connection gets on PostgreSQL.
BULK_STATEMENT_TIMEOUT_MS = 30 * 60 * 1000


def allow_bulk_statements(conn: Connection) -> None:
    """PostgreSQL: this transaction's statements may run for BULK_STATEMENT_TIMEOUT_MS (SQLite has no such limit)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {BULK_STATEMENT_TIMEOUT_MS}")


class Database:
    """One engine and session factory for a DATABASE_URL; creates the schema on first use.

    Every wait is bounded: connecting, each statement (PostgreSQL) and a busy lock (SQLite) give up after
    `timeout` seconds with Unavailable.
    """

    def __init__(self, url: str, *, create: bool = True, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout
        try:
            parsed = make_url(url)
        except Exception:
            raise Unavailable("DATABASE_URL is not a valid SQLAlchemy URL (e.g. sqlite:///data/app.db)") from None
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": timeout}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_timeout"] = timeout
            if parsed.drivername == "postgresql":
                url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
            if self.dialect == "postgresql":
                ms = int(timeout * 1000)
                kwargs["connect_args"] = {
                    "connect_timeout": max(1, round(timeout)),
                    "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
                }
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except (OperationalError, InterfaceError) as exc:
            raise unavailable(exc, self.url) from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error, maps connection errors to Unavailable."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except (OperationalError, InterfaceError) as exc:
            session.rollback()
            raise unavailable(exc, self.url) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
