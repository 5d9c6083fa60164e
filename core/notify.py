"""Notifications by webhook: History events of the configured kinds, sent once per target, signed, retried."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core import history as H
from core.config import Settings
from core.db import Database, NotificationCursor, NotificationDelivery, RegistryEvent, utcnow
from core.domain import EventRecord
from core.errors import Unavailable

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Model-Ops-Timestamp"
SIGNATURE_HEADER = "X-Model-Ops-Signature"
EVENT_HEADER = "X-Model-Ops-Event"
TEST_KIND = "notification_test"
SOURCE = "device-intelligence-model-ops"
BACKOFF_BASE_SECONDS = 1.0  # after attempt n fails, the next waits BASE * 2**(n-1) seconds
BACKOFF_MAX_SECONDS = 3600.0
FAILURE_LOG_SECONDS = 60.0  # a dispatcher that keeps failing says so this often
POLL_SECONDS = 2.0  # how often the dispatcher looks for new events and retries that are due
# An event id taken by a transaction that commits later than this is not waited for (cursors move past it).
SETTLE = dt.timedelta(minutes=10)
PAGE = 1000  # events read per query while looking for ones without a delivery
BATCH = 100  # events enqueued, and deliveries attempted, per target and pass
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Target:
    """One configured webhook: its name and URL (the URL is never shown: its path may hold a token)."""

    name: str
    url: str

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


@dataclass(frozen=True)
class NotificationSetup:
    """What is configured, as pages and the API may show it: names, hosts, whether a secret is set."""

    targets: tuple[Target, ...]
    secret_set: bool  # WEBHOOK_SECRET, shared by the targets without their own
    events: tuple[str, ...]
    timeout_seconds: float
    max_attempts: int
    own_secrets: frozenset[str] = frozenset()  # the targets signed with their own WEBHOOK_SECRET_<NAME>

    def signing(self, target: str) -> str:
        """How messages to this target are signed: "own secret", "shared secret" or "unsigned"."""
        if target in self.own_secrets:
            return "own secret"
        return "shared secret" if self.secret_set else "unsigned"

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": [{"name": t.name, "host": t.host, "signing": self.signing(t.name)} for t in self.targets],
            "secret_set": self.secret_set,
            "events": list(self.events),
            "timeout_seconds": self.timeout_seconds,
            "max_attempts": self.max_attempts,
        }


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to one target, as the delivery log shows it."""

    id: int
    event_id: int
    kind: str
    summary: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    http_status: int | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    delivered_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        stamp = lambda t: t.isoformat() if t else None  # noqa: E731
        return {
            "id": self.id,
            "event_id": self.event_id,
            "kind": self.kind,
            "summary": self.summary,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "http_status": self.http_status,
            "next_attempt_at": stamp(self.next_attempt_at) if self.status == "pending" else None,
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "delivered_at": stamp(self.delivered_at),
        }


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt to deliver one event to one target."""

    delivery_id: int
    event_id: int
    kind: str
    target: str
    attempt: int
    status: str  # delivered | pending (will be retried) | failed (no attempts left)
    http_status: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DispatchReport:
    """One pass of the dispatcher: deliveries enqueued for new events, and every attempt made."""

    enqueued: int
    attempts: tuple[Attempt, ...]

    def count(self, status: str) -> int:
        return sum(1 for a in self.attempts if a.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {"enqueued": self.enqueued, "attempts": [a.to_dict() for a in self.attempts]}


# ------------------------------------------------------------------ the message
def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: what a receiver recomputes to trust a message."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def describe(event: EventRecord) -> str:
    """One line a person reads in a chat channel."""
    d, who = event.details or {}, event.actor
    versions = f"v{event.from_version or '-'} -> v{event.to_version or '-'}"
    why = f": {event.reason}" if event.reason else ""
    if event.kind == "promote":
        return f"Model v{event.to_version} promoted by {who} (was v{event.from_version or 'none'}){why}"
    if event.kind == "restore":
        return f"Model v{event.to_version} restored by {who} (was v{event.from_version or 'none'}){why}"
    if event.kind == "auto_rollback":
        dry = " (dry run: nothing changed)" if d.get("dry_run") else ""
        return f"Automatic rollback{dry} {versions} by {who}{why}"
    if event.kind == "reject":
        run = str(d.get("run_id") or "")[:8]
        return f"Training run {run} by {who} rejected by the validation gate{why}"
    if event.kind.startswith("alert_"):
        state = event.kind.removeprefix("alert_")
        level = f"[{d['level']}] " if d.get("level") else ""
        return f"Alert {state}: {level}{d.get('message') or d.get('rule') or event.reason or ''}".rstrip()
    if event.kind == TEST_KIND:
        return f"Test notification from Device Intelligence Model Ops, sent by {who}"
    changed = f" ({versions})" if event.from_version or event.to_version else ""
    return f"{event.kind.replace('_', ' ').capitalize()} by {who}{changed}{why}"


def payload(event: EventRecord) -> dict[str, Any]:
    """Slack-compatible (`text`) plus the event's fields; a promotion's full metadata is cut to its metrics."""
    details = {k: v for k, v in (event.details or {}).items() if k != "metadata"}
    performance = ((event.details or {}).get("metadata") or {}).get("model_performance")
    if isinstance(performance, dict):
        details["model_performance"] = performance
    return {
        "text": f"[Model Ops] {describe(event)}",
        "kind": event.kind,
        "event_id": event.id,
        "actor": event.actor,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "reason": event.reason,
        "at": event.at.isoformat(),
        "details": details,
        "source": SOURCE,
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following it would resend a signed body somewhere nobody configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST the body; (HTTP status, None) on a 2xx, else (status or None, why) without the URL."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, f"unreachable: {exc.reason}"
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _backoff(attempt: int) -> float:
    return min(BACKOFF_BASE_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


def _event_record(row: RegistryEvent) -> EventRecord:
    return EventRecord(
        row.id, row.kind, row.actor, row.at, row.from_version, row.to_version, row.reason, dict(row.details or {})
    )


# ------------------------------------------------------------------ the outbox
class Notifier:
    """Enqueues new History events for every configured target, then claims and sends what is due."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.targets = tuple(Target(name, url) for name, url in settings.webhook_urls)
        self.lease = dt.timedelta(seconds=settings.webhook_timeout_seconds * 2 + 10)

    @staticmethod
    def setup_of(s: Settings) -> NotificationSetup:
        return NotificationSetup(
            tuple(Target(n, u) for n, u in s.webhook_urls),
            bool(s.webhook_secret),
            s.webhook_events,
            s.webhook_timeout_seconds,
            s.webhook_max_attempts,
            frozenset(name for name, _ in s.webhook_secrets),
        )

    def _insert(self, table: type, values: list[dict[str, Any]], keys: list[str]) -> int:
        """Insert rows, skipping any whose key exists (two processes may race to add the same row)."""
        if not values:
            return 0
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        stmt = insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
        with self.db.session() as s:
            return len(s.execute(stmt.returning(getattr(table, keys[0]))).all())

    def cursors(self) -> dict[str, int]:
        """Each target's cursor; a target seen for the first time starts after the newest event (no replay)."""
        with self.db.session() as s:
            known = {c.target: c.after_event_id for c in s.scalars(select(NotificationCursor))}
            newest = int(s.scalar(select(func.max(RegistryEvent.id))) or 0)
        fresh = [{"target": t.name, "after_event_id": newest, "created_at": utcnow()} for t in self.targets]
        fresh = [row for row in fresh if row["target"] not in known]
        if fresh:
            self._insert(NotificationCursor, fresh, ["target"])
            for row in fresh:
                log.info("notify: target %s starts after History event %d", row["target"], newest)
            with self.db.session() as s:
                known = {c.target: c.after_event_id for c in s.scalars(select(NotificationCursor))}
        return known

    def enqueue(self) -> int:
        """A pending delivery for each new event of a notified kind and each target that has none yet."""
        if not self.targets or not self.settings.webhook_events:
            return 0
        added, now = 0, utcnow()
        for target, after in ((t.name, c) for t, c in zip(self.targets, self._cursor_list(), strict=True)):
            ids, caught_up = self._new_events(target, after)
            added += self._insert(NotificationDelivery, [self._new_row(i, target, now) for i in ids], _KEY)
            if caught_up:
                self._advance(target, after, now)
        return added

    def _new_events(self, target: str, after: int) -> tuple[list[int], bool]:
        """Events after the cursor, of a sent kind, without a delivery to `target`; and whether that is all of them.

        Two range scans per page, not an anti-join: on PostgreSQL before its first ANALYZE the planner would run one
        as a nested loop over every delivery, quadratic in the backlog.
        """
        e, d, found = RegistryEvent, NotificationDelivery, []
        while len(found) < BATCH:
            with self.db.session() as s:
                ids = list(
                    s.scalars(
                        select(e.id)
                        .where(e.id > after, e.kind.in_(self.settings.webhook_events))
                        .order_by(e.id)
                        .limit(PAGE)
                    )
                )
                if not ids:
                    return found, True
                have = set(s.scalars(select(d.event_id).where(d.target == target, d.event_id.between(ids[0], ids[-1]))))
            found += [i for i in ids if i not in have]
            if len(ids) < PAGE:
                return found[:BATCH], len(found) <= BATCH
            after = ids[-1]
        return found[:BATCH], False

    def _advance(self, target: str, after: int, now: dt.datetime) -> None:
        """Move a caught-up cursor past events old enough that no earlier id can still commit (keeps passes cheap)."""
        c = NotificationCursor
        with self.db.session() as s:
            settled = s.scalar(
                select(func.max(RegistryEvent.id)).where(RegistryEvent.id > after, RegistryEvent.at < now - SETTLE)
            )
            if settled:
                s.execute(
                    update(c).where(c.target == target, c.after_event_id < settled).values(after_event_id=settled)
                )

    def _cursor_list(self) -> list[int]:
        known = self.cursors()
        return [known[t.name] for t in self.targets]

    @staticmethod
    def _new_row(event_id: int, target: str, now: dt.datetime) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "target": target,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    def _due(self, now: dt.datetime) -> list[int]:
        """Deliveries to attempt now: pending and due, or claimed by a dispatcher whose lease ran out."""
        d = NotificationDelivery
        stmt = (
            select(d.id)
            .where(
                d.target.in_([t.name for t in self.targets]),
                or_(
                    and_(d.status == "pending", d.next_attempt_at <= now),
                    and_(d.status == "sending", d.claimed_until < now),
                ),
            )
            .order_by(d.id)
            .limit(BATCH)
        )
        with self.db.session() as s:
            return list(s.scalars(stmt))

    def _claim(self, delivery_id: int, now: dt.datetime) -> tuple[str, NotificationDelivery, EventRecord] | None:
        """Take one delivery for this dispatcher alone: a conditional update only one process can win."""
        d, token = NotificationDelivery, uuid.uuid4().hex
        claimable = or_(
            and_(d.status == "pending", d.next_attempt_at <= now), and_(d.status == "sending", d.claimed_until < now)
        )
        with self.db.session() as s:
            won = s.execute(
                update(d)
                .where(d.id == delivery_id, claimable)
                .values(status="sending", claim=token, claimed_until=now + self.lease, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if won != 1:
                return None
            row = s.get(d, delivery_id)
            event = s.get(RegistryEvent, row.event_id)
            return token, row, _event_record(event)

    def _attempt(self, delivery_id: int, now: dt.datetime) -> Attempt | None:
        claimed = self._claim(delivery_id, now)
        return None if claimed is None else self._send(*claimed)

    def _send(self, token: str, row: NotificationDelivery, event: EventRecord) -> Attempt:
        """Sign and POST one claimed delivery, then record the outcome (only while the claim is still ours)."""
        target = next(t for t in self.targets if t.name == row.target)
        body = json.dumps(payload(event), default=str, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp, EVENT_HEADER: event.kind}
        headers["User-Agent"] = SOURCE
        secret = self.settings.webhook_secret_for(target.name)
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, stamp, body)
        code, error = post(target.url, body, headers, self.settings.webhook_timeout_seconds)
        return self._finish(token, row, event, target, code, error)

    def _finish(
        self,
        token: str,
        row: NotificationDelivery,
        event: EventRecord,
        target: Target,
        code: int | None,
        error: str | None,
    ) -> Attempt:
        attempt, now = row.attempts + 1, utcnow()
        if error is None:
            status = "delivered"
        else:
            status = "failed" if attempt >= self.settings.webhook_max_attempts else "pending"
        values: dict[str, Any] = {
            "status": status,
            "attempts": attempt,
            "http_status": code,
            "last_error": error[:MAX_ERROR_CHARS] if error else row.last_error,
            "claim": None,
            "claimed_until": None,
            "updated_at": now,
        }
        if status == "delivered":
            values["delivered_at"] = now
        if status == "pending":
            values["next_attempt_at"] = now + dt.timedelta(seconds=_backoff(attempt))
        d = NotificationDelivery
        with self.db.session() as s:
            s.execute(
                update(d)
                .where(d.id == row.id, d.claim == token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        outcome = Attempt(row.id, event.id, event.kind, target.name, attempt, status, code, error)
        _log_attempt(outcome, target, self.settings.webhook_max_attempts, values.get("next_attempt_at"))
        return outcome

    def dispatch(self) -> DispatchReport:
        """One pass: enqueue new events, then attempt every delivery that is due."""
        if not self.targets:
            return DispatchReport(0, ())
        enqueued = self.enqueue()
        attempts = []
        for delivery_id in self._due(utcnow()):
            done = self._attempt(delivery_id, utcnow())
            if done is not None:
                attempts.append(done)
        return DispatchReport(enqueued, tuple(attempts))

    def send_test(self, actor: str) -> list[Attempt]:
        """A signed test message to every target now (recorded in History and the delivery log)."""
        self.cursors()  # a target seen for the first time starts before the test event, so it gets it
        names = [t.name for t in self.targets]
        event = H.History(self.db).record_event(
            TEST_KIND, actor=actor, reason=f"test notification to {', '.join(names)}", details={"targets": names}
        )
        # Born claimed by this call, so the background dispatcher (woken by the event) leaves them to it.
        now, token = utcnow(), uuid.uuid4().hex
        claimed = {"status": "sending", "claim": token, "claimed_until": now + self.lease}
        self._insert(NotificationDelivery, [self._new_row(event.id, n, now) | claimed for n in names], _KEY)
        d = NotificationDelivery
        with self.db.session() as s:
            rows = list(s.scalars(select(d).where(d.event_id == event.id, d.claim == token).order_by(d.id)))
        return [self._send(token, row, event) for row in rows]

    def deliveries(self, limit: int = 200) -> list[Delivery]:
        """The delivery log, newest first."""
        d = NotificationDelivery
        stmt = select(d, RegistryEvent).join(RegistryEvent, RegistryEvent.id == d.event_id)
        with self.db.session() as s:
            rows = s.execute(stmt.order_by(d.event_id.desc(), d.target).limit(limit)).all()
        return [
            Delivery(
                r.id,
                r.event_id,
                e.kind,
                describe(_event_record(e)),
                r.target,
                r.status,
                r.attempts,
                r.last_error,
                r.http_status,
                r.next_attempt_at,
                r.created_at,
                r.updated_at,
                r.delivered_at,
            )
            for r, e in rows
        ]


_KEY = ["event_id", "target"]


def _log_attempt(a: Attempt, target: Target, max_attempts: int, retry_at: dt.datetime | None) -> None:
    """One line per attempt outcome, for operators who grep (never the URL: it may hold a token)."""
    where = f"event {a.event_id} ({a.kind}) -> {a.target} ({target.host}), attempt {a.attempt} of {max_attempts}"
    if a.status == "delivered":
        log.info("notify: %s: delivered, HTTP %s", where, a.http_status)
    elif a.status == "pending":
        log.warning("notify: %s: %s; retrying at %s", where, a.error, f"{retry_at:%H:%M:%S} UTC" if retry_at else "?")
    else:
        log.error("notify: %s: %s; failed, no attempts left", where, a.error)


# ------------------------------------------------------------------ the background dispatcher
class Dispatcher:
    """A daemon thread that runs a pass every POLL_SECONDS, and at once when this process records an event."""

    def __init__(self, settings: Settings, interval: float = POLL_SECONDS) -> None:
        self.settings = settings
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._db: Database | None = None
        self._thread = threading.Thread(target=self._run, name="notify-dispatcher", daemon=True)
        self._unlisten: Callable[[], None] | None = None
        self._failing_since: float | None = None
        self._reported: float | None = None

    def start(self) -> None:
        self._unlisten = H.on_event(self._wake.set)
        self._thread.start()
        names = ", ".join(f"{n} ({Target(n, u).host})" for n, u in self.settings.webhook_urls)
        log.info("notify: dispatcher started for %s, every %.0f s", names, self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._unlisten is not None:
            self._unlisten()
        self._thread.join(timeout)
        if self._db is not None:
            self._db.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._db is None:
                    self._db = Database(self.settings.database_url, timeout=self.settings.db_timeout_seconds)
                Notifier(self._db, self.settings).dispatch()
            except Exception as exc:
                self._failed(exc)
            else:
                if self._failing_since is not None:
                    log.info("notify: dispatcher running again")
                    self._failing_since = self._reported = None
            self._wake.wait(self.interval)
            self._wake.clear()

    def _failed(self, exc: Exception) -> None:
        """Log a failing pass when it starts failing and then once a minute, not every few seconds."""
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        if self._reported is not None and now - self._reported < FAILURE_LOG_SECONDS:
            return
        self._reported = now
        if isinstance(exc, Unavailable):
            log.warning("notify: dispatcher waits for the database: %s", exc.message)
        else:
            log.error("notify: dispatcher pass failed", exc_info=exc)


_dispatchers: dict[Settings, Dispatcher] = {}
_dispatchers_lock = threading.Lock()


def start_dispatcher(settings: Settings) -> Dispatcher | None:
    """The process's dispatcher for these settings, started once; None when no webhook is configured."""
    if not settings.webhook_urls:
        return None
    with _dispatchers_lock:
        running = _dispatchers.get(settings)
        if running is None:
            running = _dispatchers[settings] = Dispatcher(settings)
            running.start()
        return running


def stop_dispatchers() -> None:
    """Stop every dispatcher of this process (tests)."""
    with _dispatchers_lock:
        for running in _dispatchers.values():
            running.stop()
        _dispatchers.clear()
