"""The application layer: every use-case of the dashboard, the HTTP API and the CLIs, one verb each.

Interfaces parse their input, call one verb here and render the domain object it returns; none of them
composes registry, history or training calls itself, so they cannot disagree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hmac
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from core import constants as C
from core.alerting import AlertBoard, AlertEngine, AlertRecord, Evaluation, now_utc
from core.alerts import Alert
from core.archive import archive_name, backup_archive
from core.config import PROJECT_ROOT, Settings
from core.db import Database
from core.domain import (
    BackupSet,
    CandidateSet,
    Comparison,
    DiskUsage,
    EventRecord,
    Health,
    Hold,
    ModelVersion,
    RestoreResult,
    RunRecord,
    VersionEntry,
)
from core.errors import (
    Conflict,
    DataError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    RegistryError,
    Unavailable,
)
from core.history import History, RunSummary
from core.identity import Account, Identities, KeyInfo, Principal, local_principal
from core.jobs import JobRunner, JobStart
from core.locking import LockInfo, training_lock
from core.registry import Registry, compare_versions
from core.schedule import ScheduleReport, read_schedule, recipes
from core.status import StatusReport, build_status
from core.storage import FileSignature, set_signature
from core.training_run import Progress, TrainingRequest, TrainOutcome, training_due
from core.trends import LIVE_EVENT_KINDS, Trends, VersionPoints, build_trends

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from core.autorollback import Decision as AutoRollbackDecision
    from core.autorollback import State as AutoRollbackState
    from core.drift import DriftReport
    from core.fleet_scoring import ScoringRun
    from core.metrics import SlowRefresher
    from core.notify import Attempt, Delivery, DispatchReport, NotificationSetup, Notifier
    from core.predict import Prediction, Predictor
    from core.prediction_log import PredictionLogWriter
    from core.realised import RealisedReport, ShadowFigures
    from core.samedata import SameDataCache, SameDataComparison, Window
    from core.simulator import SimulationSummary

log = logging.getLogger(__name__)

# An unreachable database is tried again at most this often (every interface shares the throttle).
DB_RETRY_SECONDS = 10.0
HISTORY_LIMIT = 5000
MAX_ACTOR_LENGTH = 128
MAX_REASON_LENGTH = 1000
MAX_DEVICE_ID_LENGTH = 64
LOGIN_FAILURES, LOGIN_WINDOW = 5, 300  # failed logins for one name, within this many seconds, before a pause
# Database work runs on these threads with a deadline, so a database that stops answering makes calls fail
# fast instead of holding every caller (and every web worker thread) until it answers again.
DB_WORKERS = 8
T = TypeVar("T")
_in_db_worker = threading.local()


class _DatabaseThreads:
    """DB_WORKERS daemon threads running submitted calls, each with a Future: ThreadPoolExecutor's contract, except
    that a call stuck on a database that never answers does not hold the process at exit (the executor joins its
    threads then, so a server stopped during a database outage waited for the database, without end)."""

    def __init__(self, workers: int, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._calls.put((future, fn))
        return future

    def shutdown(self) -> None:
        """Cancel the calls not started yet and let the threads end (one stuck on the database ends when it returns)."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call[0].cancel()
        for _ in self._threads:
            self._calls.put(None)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # the caller gets it from the future
                future.set_exception(exc)
            else:
                future.set_result(result)


def _reads(method: Callable[..., T]) -> Callable[..., T]:
    """A read verb that touches the database: bounded by the database deadline."""

    @functools.wraps(method)
    def bounded(self: ModelOps, *args: Any, **kwargs: Any) -> T:
        return self._bounded(method, self, *args, timeout=self.settings.db_timeout_seconds * 3, **kwargs)

    return bounded


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """A registry change: bounded by its write deadline (it is abandoned, unapplied, if not applied by then)."""

    @functools.wraps(method)
    def bounded(self: ModelOps, *args: Any, **kwargs: Any) -> T:
        timeout = self.settings.write_deadline_seconds + self.settings.db_timeout_seconds * 2
        return self._bounded(method, self, *args, timeout=timeout, write=True, **kwargs)

    return bounded


@dataclass(frozen=True)
class CleanupPlan:
    """What a clean-up keeping the newest `keep` sets would remove, newest first."""

    keep: int
    sets: tuple[BackupSet, ...]

    @property
    def timestamps(self) -> list[str]:
        return [s.timestamp for s in self.sets]

    @property
    def size_bytes(self) -> int:
        return sum(s.size_bytes for s in self.sets)


@dataclass(frozen=True)
class RestorePreview:
    """What restoring a backup would change, and anything in flight that could undo it."""

    comparison: Comparison  # a: the backup's version, b: the live one
    backup: BackupSet
    training: LockInfo | None


@dataclass(frozen=True)
class Stamps:
    """Cheap values that change whenever what the views show changes (cache keys for every interface)."""

    directory: int  # the models directory's mtime: any file added, removed or replaced
    current_set: FileSignature
    history: tuple[str, ...]


def _actor(principal: Principal, action: str) -> str:
    """The name History records for `principal`, once its role allows `action` (Forbidden otherwise)."""
    if not isinstance(principal, Principal):
        raise Forbidden("every change needs an identified principal (a login, an API key, or local mode)")
    name = principal.name.strip()
    if not name or len(name) > MAX_ACTOR_LENGTH or any(ch in name for ch in "\r\n\x00"):
        raise InvalidInput(f"the actor must be one line of at most {MAX_ACTOR_LENGTH} characters")
    principal.require(action)
    return name


def _reason(reason: str | None, *, required: bool = False) -> str | None:
    """A reason, checked once: at most MAX_REASON_LENGTH characters, no NUL; `required` for what undoes work."""
    text = (reason or "").strip()
    if "\x00" in text or len(text) > MAX_REASON_LENGTH:
        raise InvalidInput(f"the reason must be text of at most {MAX_REASON_LENGTH} characters, without NUL")
    if required and not text:
        raise InvalidInput("give a reason: it is recorded in History with the change")
    return text or None


class ModelOps:
    """One per settings and process: the database (None while unreachable), the registry, history and jobs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.created = time.monotonic()
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        self._db_pool = _DatabaseThreads(DB_WORKERS, "db")
        self._disposed = False
        self._stuck: set[Future[Any]] = set()
        self.db: Database | None = None
        self._db_error: str | None = None
        try:
            connect = functools.partial(Database, settings.database_url, timeout=settings.db_timeout_seconds)
            self.db = self._bounded(connect, timeout=settings.db_timeout_seconds * 3)
        except Unavailable as exc:
            self._db_error = exc.message
        self.registry = Registry.from_settings(settings, self.db)
        self.history = History(self.db) if self.db is not None else None
        self._jobs = (
            JobRunner(settings, self.db, self.registry, on_finish=self._evaluate_after_change)
            if self.db is not None
            else None
        )
        self.identities = Identities(self.db, settings.models_dir) if self.db is not None else None
        self._auth_configured: tuple[float, bool] | None = None
        self._failed_logins: dict[str, list[float]] = {}
        self._login_lock = threading.Lock()
        self._training_lock = training_lock(settings.models_dir, self.db.engine if self.db is not None else None)
        self._guard = threading.Lock()
        self._health: tuple[FileSignature, Health, bool] | None = None
        self._predictor: Predictor | None = None
        self._drift_cache: dict[tuple[Any, ...], DriftReport] = {}
        self._log_writer: PredictionLogWriter | None = None
        self._alert_engine = AlertEngine(self.db) if self.db is not None else None
        self._version_points = VersionPoints()  # Trends' points of the versions, each made once per entry
        self._alerts_evaluated: tuple[float, dt.datetime, Stamps] | None = None  # monotonic, when, stamps then
        self._evaluating = threading.Lock()

    # ------------------------------------------------------------ wiring
    @property
    def database_error(self) -> str | None:
        """Why the database cannot be used right now (unreachable, or not answering), or None."""
        if self._db_error is not None:
            return self._db_error
        if self._stalled():
            return self._stall_message()
        return None

    def _stalled(self) -> bool:
        self._stuck = {f for f in self._stuck if not f.done()}
        return bool(self._stuck)

    def _stall_message(self) -> str:
        return (
            "the database is not answering: a call has waited longer than its deadline and has not returned yet; "
            "try again later"
        )

    def _bounded(self, fn: Callable[..., T], *args: Any, timeout: float, write: bool = False, **kwargs: Any) -> T:
        """Run `fn` on a database thread and wait at most `timeout` seconds (Unavailable after that).

        While an earlier call is still stuck, fail at once instead of queueing more work behind it. A write
        that gave up is never applied later: its own deadline is checked before anything changes.
        """
        if getattr(_in_db_worker, "active", False):
            return fn(*args, **kwargs)  # already on a database thread with a deadline
        future = self._submit(fn, *args, **kwargs)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise self._gave_up(future, timeout, write) from None

    async def _bounded_async(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """_bounded for a caller on an event loop: awaits the database thread instead of blocking a thread on it."""
        future = self._submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise self._gave_up(future, timeout, False) from None

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Start `fn` on a database thread (at once Unavailable while an earlier call is stuck)."""
        if self._stalled():
            raise Unavailable(self._stall_message())

        def run() -> T:
            _in_db_worker.active = True
            try:
                return fn(*args, **kwargs)
            finally:
                _in_db_worker.active = False

        return self._db_pool.submit(run)

    def _gave_up(self, future: Future[Any], timeout: float, write: bool) -> Unavailable:
        """A call outlived its deadline: remember it as stuck (unless it never started) and say what that means."""
        if not future.cancel():
            self._stuck.add(future)
        log.error("database: a call did not return within %.0f s; failing fast until it does", timeout)
        if write:
            return Unavailable(
                f"the database did not answer within {timeout:.0f} s; the change was either abandoned or is "
                "finished and recorded as soon as the database answers: Status shows which"
            )
        return Unavailable(f"the database did not answer within {timeout:.0f} s; try again later")

    def _require_history(self) -> History:
        if self.history is None:
            raise Unavailable(
                f"the database is unreachable ({self.database_error}); it holds the history and the audit trail, "
                "so this waits until it is back: try again later"
            )
        return self.history

    def _require_jobs(self) -> JobRunner:
        if self._jobs is None:
            raise Unavailable(f"training needs the database, which is unreachable ({self.database_error})")
        return self._jobs

    def dispose(self) -> None:
        self._disposed = True
        if self._log_writer is not None:
            self._log_writer.close()
        if self.db is not None:
            self.db.dispose()
        self._db_pool.shutdown()

    # ------------------------------------------------------------ status
    def status(self) -> StatusReport:
        """The live model, its files, how it became live, the last and running runs, and every alert."""
        if self.history is not None and not self._stalled():
            try:
                return self._bounded(self._status, timeout=self.settings.db_timeout_seconds * 3)
            except Unavailable:
                pass  # not answering: the files alone, saying so
        pending = self.registry.settle(record_events=False)
        return build_status(
            self.registry,
            None,
            self.settings,
            health=self.health(offline=True),
            database_error=self.database_error,
            pending=pending,
            training_holder=self._training_lock.holder(),
        )

    def _status(self) -> StatusReport:
        # Before the files are checked: a torn set is finished, and a hand-made copy recorded (and completed).
        pending = self.registry.settle()
        try:
            self.registry.reconcile()
        except Unavailable:
            raise
        except RegistryError as exc:  # a busy lock or a bad file: the files below still tell the truth
            log.warning("model registry: reconcile skipped: %s", exc.message)
        return build_status(
            self.registry,
            self.history,
            self.settings,
            health=self.health(),
            database_error=None,
            pending=pending,
            training_holder=self._training_lock.holder(),
        )

    def health(self, *, offline: bool = False) -> Health:
        """Every file of the current set checked against the metadata (recomputed only when a file changes).

        Online, the verified files are also loaded; offline (no database to check provenance) they are not.
        """
        signature = set_signature(self.registry.models_dir)
        cached = self._health
        if cached is not None and cached[0] == signature and (offline or cached[2]):
            return cached[1]
        health = self.registry.health(load=not offline)
        self._health = (signature, health, not offline)
        return health

    def stamps(self) -> Stamps:
        """Cache keys: the models directory, the current set's files and the history."""
        history: tuple[str, ...] = ("no-db",)
        if self.history is not None:
            try:
                history = self._bounded(self.history.stamp, timeout=self.settings.db_timeout_seconds)
            except Unavailable:
                history = ("db-error", str(time.monotonic()))
        return Stamps(self.registry.directory_stamp(), set_signature(self.registry.models_dir), history)

    def registry_busy(self) -> LockInfo | None:
        """Who holds the registry lock right now (another write is in progress), or None."""
        return self.registry.lock.holder()

    # ------------------------------------------------------------ versions
    def current(self) -> ModelVersion | None:
        return self.registry.current()

    @_reads
    def versions(self) -> list[VersionEntry]:
        """Every version ever promoted, newest first, with the backups that still hold it."""
        return self.registry.versions()

    @_reads
    def version(self, version: str) -> ModelVersion:
        return self.registry.get_version(version)

    @_reads
    def compare(self, a: str | None = None, b: str | None = None) -> Comparison:
        """Version a relative to version b; a defaults to the live version, b to the newest other backed-up one."""
        if a is not None and a == b:
            raise InvalidInput(f"pick two different versions to compare (both are {a})")
        left = self.registry.get_version(a) if a is not None else self.registry.current()
        if left is None:
            raise NotFound("no model has been trained yet, so there is nothing to compare")
        if b is not None:
            return compare_versions(left, self.registry.get_version(b))
        other = next((s for s in self.registry.backups() if s.metadata and s.version != left.version), None)
        if other is None:
            raise NotFound(
                f"no backup holds a version other than {left.version} to compare with yet: "
                "the first backup is made when a second model is promoted"
            )
        # The listing holds a summary of each set's metadata: read this set's file whole.
        whole = self.registry.backup(other.timestamp, verify=False)
        if whole.metadata is None:
            raise NotFound(f"backup {other.timestamp} changed while it was read; try again")
        return compare_versions(
            left, ModelVersion.from_metadata(whole.metadata, location="backup", backup_timestamp=other.timestamp)
        )

    @_reads
    def trends(self) -> Trends:
        """Metric points (promotions, rejected runs, restores) and the live-version timeline."""
        entries = self.registry.versions()
        now = dt.datetime.now(dt.UTC)
        if self.history is None:
            return build_trends(entries, None, None, now, self._version_points)
        runs = self.history.runs(limit=HISTORY_LIMIT, statuses=["rejected"])
        assert self.registry.event_index is not None  # there with the history
        events = self.registry.event_index.events(kinds=LIVE_EVENT_KINDS, limit=HISTORY_LIMIT)
        return build_trends(entries, runs, events, now, self._version_points)

    # ------------------------------------------------------------ backups
    def backups(self) -> list[BackupSet]:
        return self.registry.backups()

    def backup(self, timestamp: str) -> BackupSet:
        return self.registry.backup(timestamp, verify=False)

    def disk_usage(self) -> DiskUsage:
        usage = self.registry.disk_usage()
        return DiskUsage(**usage, free_bytes=shutil.disk_usage(self.registry.models_dir).free)

    def archive(self, timestamp: str) -> tuple[str, bytes]:
        """File name and .tar.gz bytes of one backup set."""
        chosen = self.registry.backup(timestamp, verify=False)
        return archive_name(timestamp, chosen.version), backup_archive(self.registry.models_dir, timestamp)

    def restore_preview(self, timestamp: str) -> RestorePreview:
        """What restoring this backup would change, relative to the live version."""
        chosen = self.registry.backup(timestamp, verify=False)
        if chosen.metadata is None:
            raise IntegrityError(f"backup {timestamp} has no readable metadata; it cannot be restored")
        target = ModelVersion.from_metadata(chosen.metadata, location="backup", backup_timestamp=timestamp)
        try:
            live = self.registry.current()
        except IntegrityError:
            live = None
        live = live or ModelVersion.from_metadata({"version": "none"}, location="current")
        return RestorePreview(compare_versions(target, live), chosen, self._training_lock.holder())

    def _deadline(self) -> float:
        """When a registry change starting now is abandoned if it has not been applied yet."""
        return time.monotonic() + self.settings.write_deadline_seconds

    def restore(
        self,
        target: str,
        *,
        actor: Principal,
        reason: str | None = None,
        trust_unrecorded: bool = False,
        during_training: bool = False,
        expect_live: str | None = None,
        yield_to_holds: bool = False,
    ) -> RestoreResult:
        """Make a backup set live and hold it (see `_restore`); alerts are then evaluated on a thread."""
        done = self._restore(
            target,
            actor=actor,
            reason=reason,
            trust_unrecorded=trust_unrecorded,
            during_training=during_training,
            expect_live=expect_live,
            yield_to_holds=yield_to_holds,
        )
        self._evaluate_after_change(wait=False)
        return done

    @_writes
    def _restore(
        self,
        target: str,
        *,
        actor: Principal,
        reason: str | None = None,
        trust_unrecorded: bool = False,
        during_training: bool = False,
        expect_live: str | None = None,
        yield_to_holds: bool = False,
    ) -> RestoreResult:
        """Make a backup set live (by timestamp or version) and hold it; the replaced set is backed up first.

        While a training run is in flight the restore needs `during_training` (the caller has said so to the
        operator): the run is then kept as a candidate, because the restored version is held.
        `trust_unrecorded` restores a set whose files are in no recorded set (made by an older tool): an admin's
        explicit decision, recorded with the event. With `expect_live` (a rule deciding on the live version's
        figures) it is refused unless that version is still live, and with `yield_to_holds` when somebody else
        holds a version; both checked under the registry lock.
        """
        name, reason = _actor(actor, "restore"), _reason(reason, required=True)
        if trust_unrecorded:
            actor.require("restore an unrecorded set")
        self._require_history()  # no registry change without its audit row
        running = self._training_lock.holder()
        if running is not None and not during_training:
            raise Conflict(
                f"a training run started by {running.actor} at {running.since:%H:%M:%S} UTC is in flight; the "
                "restore would hold its version and the run would be kept as a candidate instead of going live. "
                'Confirm to restore anyway (dashboard: tick the box; API: "during_training": true; '
                "CLI: --during-training)"
            )
        return self.registry.restore(
            target,
            actor=name,
            reason=reason,
            trust_unrecorded=trust_unrecorded,
            deadline=self._deadline(),
            expect_live=expect_live,
            yield_to_holds=yield_to_holds,
        )

    @_writes
    def undo_restore(self, done: RestoreResult, *, actor: Principal, reason: str | None = None) -> RestoreResult:
        """Put back the set a restore replaced (from its undo backup), if the restored version is still live.

        The undo is itself an audited restore (it holds the version it puts back, as every restore does).
        """
        if not done.undo_backup or not done.replaced_version:
            raise InvalidInput("this restore replaced no live set: there is nothing to put back")
        name = _actor(actor, "restore")
        why = _reason(reason) or f"undo: put v{done.replaced_version} back after restoring v{done.restored.version}"
        self._require_history()
        return self.registry.restore(
            done.undo_backup, actor=name, reason=why, deadline=self._deadline(), expect_live=done.restored.version
        )

    # ------------------------------------------------------------ holds and candidates
    @_reads
    def hold(self) -> Hold | None:
        """The active hold on the live version, or None."""
        return self._require_history().active_hold()

    @_writes
    def place_hold(self, *, actor: Principal, reason: str | None) -> Hold:
        """Hold the live version: gate-passing runs wait as candidates until the hold is released."""
        name, reason = _actor(actor, "manage holds"), _reason(reason, required=True)
        self._require_history()
        return self.registry.place_hold(actor=name, reason=str(reason))

    @_writes
    def release_hold(self, *, actor: Principal, reason: str | None) -> Hold:
        """Release the hold (an audited decision): the next gate-passing run goes live again."""
        name, reason = _actor(actor, "manage holds"), _reason(reason, required=True)
        self._require_history()
        return self.registry.release_hold(actor=name, reason=str(reason))

    def candidates(self) -> list[CandidateSet]:
        """Gate-passing runs kept aside (a hold, or PROMOTION=manual), newest first."""
        return self.registry.candidates()

    def candidate(self, candidate_id: str) -> CandidateSet:
        return self.registry.candidate(candidate_id)

    def compare_candidate(self, candidate_id: str) -> Comparison:
        """A candidate relative to the live version."""
        chosen = self.registry.candidate(candidate_id)
        live = self.registry.current()
        if live is None:
            raise NotFound("there is no live version to compare the candidate with")
        return compare_versions(chosen.model, live)

    @_writes
    def approve_candidate(self, candidate_id: str, *, actor: Principal, reason: str | None = None) -> ModelVersion:
        """Promote a candidate; it goes live even over a hold, which its promotion releases."""
        name, reason = _actor(actor, "approve candidates"), _reason(reason)
        self._require_history()
        return self.registry.approve_candidate(candidate_id, actor=name, reason=reason)

    @_writes
    def discard_candidate(self, candidate_id: str, *, actor: Principal, reason: str | None = None) -> CandidateSet:
        name, reason = _actor(actor, "discard candidates"), _reason(reason)
        self._require_history()
        return self.registry.discard_candidate(candidate_id, actor=name, reason=reason)

    @_writes
    def backup_now(self, *, actor: Principal, reason: str | None = None) -> BackupSet:
        name, reason = _actor(actor, "backup"), _reason(reason)
        self._require_history()
        return self.registry.backup_now(actor=name, reason=reason, deadline=self._deadline())

    @_writes
    def delete_backup(self, timestamp: str, *, actor: Principal, reason: str | None = None) -> BackupSet:
        name, reason = _actor(actor, "delete backups"), _reason(reason, required=True)
        self._require_history()
        return self.registry.delete_backup(timestamp, actor=name, reason=reason, deadline=self._deadline())

    def cleanup_plan(self, keep: int | None = None) -> CleanupPlan:
        keep = self.settings.keep_backups if keep is None else keep
        return CleanupPlan(keep, tuple(self.registry.cleanup_plan(keep)))

    @_writes
    def cleanup(
        self,
        keep: int | None = None,
        *,
        actor: Principal,
        reason: str | None = None,
        expected: Sequence[str] | None = None,
    ) -> CleanupPlan:
        """Remove all but the newest `keep` sets; `expected` (a preview's timestamps) refuses if the list changed."""
        keep = self.settings.keep_backups if keep is None else keep
        name, reason = _actor(actor, "clean up backups"), _reason(reason, required=True)
        self._require_history()
        removed = self.registry.cleanup(
            keep,
            actor=name,
            reason=reason,
            expected=None if expected is None else list(expected),
            deadline=self._deadline(),
        )
        return CleanupPlan(keep, tuple(removed))

    # ------------------------------------------------------------ history
    @_reads
    def events(
        self,
        *,
        kinds: Sequence[str] = (),
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = HISTORY_LIMIT,
    ) -> list[EventRecord]:
        """Registry events, newest first."""
        unknown = [k for k in kinds if k not in C.EVENT_KINDS]
        if unknown:
            raise InvalidInput(f"unknown event kind {unknown[0]!r}; use one of {', '.join(C.EVENT_KINDS)}")
        self._require_history()
        assert self.registry.event_index is not None  # there with the history
        found = self.registry.event_index.events(kinds=kinds, actor=actor or None, since=since, limit=limit)
        return [e for e in found if until is None or e.at <= until]

    @_reads
    def run_summary(self) -> RunSummary:
        """Training runs per status (by every process) and when the newest successful one finished."""
        return self._require_history().run_summary()

    @_reads
    def actors(self) -> list[str]:
        return self._require_history().actors()

    @_reads
    def runs(self, *, limit: int = 50, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        return self._require_history().runs(limit=limit, statuses=statuses)

    @_reads
    def run(self, run_id: str) -> RunRecord:
        record = self._require_history().get_run(run_id)
        if record is None:
            raise NotFound(f"no training run {run_id!r}; starting a run returns the id to follow")
        return record

    # ------------------------------------------------------------ training
    def training_due(self) -> tuple[bool, str]:
        """Whether a non-forced run would train now, and why."""
        return training_due(self.registry, self.settings)

    def schedule(self, now: dt.datetime | None = None) -> ScheduleReport:
        """The training schedule: next runs, the last scheduled run and its outcome, missed or failed."""
        now = now or dt.datetime.now(dt.UTC)
        if self.history is None or self._stalled():
            return read_schedule(self.settings, None, now=now, database_error=self.database_error)
        try:
            return self._bounded(
                read_schedule, self.settings, self.history, now=now, timeout=self.settings.db_timeout_seconds * 3
            )
        except Unavailable as exc:
            return read_schedule(self.settings, None, now=now, database_error=exc.message)

    def schedule_recipes(self) -> dict[str, str]:
        """The crontab line, CronJob `schedule:` and compose command generated from TRAINING_SCHEDULE."""
        return recipes(self.settings.training_schedule, PROJECT_ROOT)

    def training_holder(self) -> LockInfo | None:
        """Who is training right now (any process), or None."""
        return self._training_lock.holder()

    @_reads
    def start_training(self, request: TrainingRequest, *, actor: Principal, trigger: str) -> JobStart:
        """Start a run in the background; Conflict (naming who) when one is already running."""
        return self._require_jobs().start(request, actor=_actor(actor, "train"), trigger=trigger)

    def train(
        self, request: TrainingRequest, *, actor: Principal, trigger: str, progress: Progress | None = None
    ) -> TrainOutcome:
        """Run training in this thread (the CLI and the schedule); alerts are evaluated after it."""
        name = _actor(actor, "train")
        try:
            return self._require_jobs().trainer.run(request, actor=name, trigger=trigger, progress=progress)
        finally:
            self._evaluate_after_change()

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait for a run this process started to end."""
        record = self._require_jobs().wait(run_id, timeout)
        if record is None:
            raise NotFound(f"no training run {run_id!r}")
        return record

    def telemetry_present(self) -> bool:
        from core.simulator import telemetry_counts

        if self.db is None:
            raise Unavailable(f"the database is unreachable ({self.database_error})")
        return telemetry_counts(self.db).has_telemetry

    def seed(self, *, replace: bool = False, **fleet: Any) -> SimulationSummary:
        """Fill the database with a simulated fleet; refuses to add to existing telemetry unless `replace`."""
        from core.simulator import delete_simulated, simulate_fleet, telemetry_counts

        if self.db is None:
            raise Unavailable(f"the database is unreachable ({self.database_error})")
        counts = telemetry_counts(self.db)
        if counts.has_telemetry and not replace:
            rows = counts.simulated_metric_rows + counts.real_metric_rows
            raise Conflict(
                f"the database already holds telemetry ({rows:,} metric rows); "
                "pass --replace to delete the simulated rows and seed again"
            )
        if replace:
            delete_simulated(self.db)
            if telemetry_counts(self.db).has_real_telemetry:
                raise Conflict("the database holds real (non-simulated) telemetry; refusing to mix simulated data in")
        summary = simulate_fleet(self.db, **fleet)
        log.info(
            "telemetry: seeded %d simulated devices, %d metric rows, %d failures in %.1f s",
            summary.devices,
            summary.metric_rows,
            summary.failures,
            summary.seconds,
        )
        return summary

    def first_run(self, report: Callable[[str, str, str | None], None]) -> str:
        """On a fresh install: seed a simulated fleet when there is no telemetry, train when there is no model.

        `report(stage, message, run_id)` follows the steps, the last call with the final stage (done or failed).
        """
        message = "nothing to set up"

        listener = report

        def report(stage: str, message: str, run_id: str | None) -> None:
            log.info("first run: %s: %s", stage, message)
            listener(stage, message, run_id)

        if not self.telemetry_present():
            report("seeding", "the database has no telemetry: simulating a fleet (150 devices, 120 days)", None)
            summary = self.seed()
            message = (
                f"simulated {summary.devices} devices, {summary.metric_rows:,} metric rows, {summary.failures} failures"
            )
            report("seeding", message, None)
        try:
            has_model = self.registry.current() is not None
        except IntegrityError:
            has_model = True  # a broken model is the operator's call (restore or retrain), not the first run's
        if has_model:
            report("done", message, None)
            return "done"
        report("training", "no model yet: training the first one", None)
        try:
            first = Principal("first-run", "operator", "local")
            job = self.start_training(TrainingRequest(force=True), actor=first, trigger="bootstrap")
        except Conflict as exc:
            report("training", f"waiting for the training already running: {exc.message}", None)
            while self.training_holder() is not None:
                time.sleep(1.0)
            report("done", "the other training run finished", None)
            return "done"
        report("training", "training the first model", job.run_id)
        run = self.wait(job.run_id)
        if run.status == "promoted":
            report("done", f"first model {run.version} trained and promoted", job.run_id)
            return "done"
        report("failed", f"first training run ended {run.status}: {run.error or 'see Retrain'}", job.run_id)
        return "failed"

    # ------------------------------------------------------------ identity
    def _require_identities(self) -> Identities:
        if self.identities is None:
            raise Unavailable(f"accounts and keys live in the database, which is unreachable ({self.database_error})")
        return self.identities

    def authentication_configured(self, *, oidc: bool = False) -> bool:
        """Whether anyone must prove who they are: an identity provider, accounts, API keys or API_KEY.

        Once an account or key has existed, a marker in the models directory keeps the answer yes for good
        (database down, last key revoked). Without one and without a database the answer is no: local mode,
        which the servers only offer on a loopback address.
        """
        marker = self.settings.models_dir / C.AUTHENTICATION_MARKER
        if oidc or self.settings.api_key or marker.exists():
            return True
        cached = self._auth_configured
        if cached is not None and time.monotonic() - cached[0] < 2.0:
            return cached[1]
        try:
            identities = self._require_identities()
            configured = self._bounded(lambda: identities.has_accounts() or identities.has_keys(), timeout=5.0)
        except Unavailable:
            configured = False
        if configured:
            self._mark_authentication_on()
        self._auth_configured = (time.monotonic(), configured)
        return configured

    def _mark_authentication_on(self) -> None:
        try:
            marker = self.settings.models_dir / C.AUTHENTICATION_MARKER
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("accounts or API keys exist: authentication is required (see README, Security)\n")
        except OSError as exc:
            log.warning("access: could not record that authentication is on (%s)", exc)

    def login(self, name: str, password: str) -> tuple[Principal, str]:
        """A built-in account's principal and a signed session token (Forbidden for a wrong name or password).

        After LOGIN_FAILURES failures for one name within LOGIN_WINDOW seconds the name is refused until the
        window has passed (guessing costs minutes, not milliseconds).
        """
        key, now = name.strip().lower(), time.monotonic()
        with self._login_lock:
            recent = [t for t in self._failed_logins.get(key, []) if now - t < LOGIN_WINDOW]
            self._failed_logins[key] = recent
        if len(recent) >= LOGIN_FAILURES:
            wait = int(LOGIN_WINDOW - (now - recent[0])) + 1
            log.warning("access: login for %s refused: %d failures in %d s", key[:64], len(recent), LOGIN_WINDOW)
            raise Forbidden(f"too many failed logins for this name; try again in {wait} s")
        try:
            principal = self._require_identities().login(name, password)
        except Forbidden:
            with self._login_lock:
                self._failed_logins.setdefault(key, []).append(now)
            log.info("access: failed login for %s", key[:64])
            raise
        log.info("access: %s logged in (%s)", principal.name, principal.role)
        return principal, self._require_identities().issue_session(principal, self.settings.session_hours)

    def session(self, token: str | None) -> Principal | None:
        """The account behind a session token, or None (expired, tampered, disabled, or password changed since)."""
        if not token or self.identities is None:
            return None
        return self.identities.session_principal(token)

    def key_principal(self, token: str | None) -> Principal | None:
        """The principal of an API key: API_KEY (an operator key named API_KEY_NAME) or a named key; else None."""
        if not token:
            return None
        if self.settings.api_key and hmac.compare_digest(token.encode(), self.settings.api_key.encode()):
            return Principal(self.settings.api_key_name, "operator", "api_key")
        if self.identities is None:
            raise Unavailable(f"API keys live in the database, which is unreachable ({self.database_error})")
        return self.identities.key_principal(token)

    def shell_principal(self, os_user: str) -> Principal:
        """Who a command run on this host acts as: local mode, else the account named like the shell's user."""
        if not self.authentication_configured():
            return local_principal(os_user)
        found = self._require_identities().account_principal(os_user)
        if found is None:
            raise Forbidden(
                f"there is no enabled account named {os_user!r}: create one (`manage_users.py add {os_user} "
                "--role operator`, as an admin) or set MODEL_OPS_API_KEY to an API key"
            )
        return found

    def training_principal(self, os_user: str) -> Principal:
        """Who the host's scheduled training (the guide's cron line) acts as: like `shell_principal`, but a
        shell user without an account trains as `host:<user>` with the operator role, so cron keeps working
        once logins are on. Whoever can run it on this host can already write the models directory."""
        try:
            return self.shell_principal(os_user)
        except Forbidden:
            log.info("access: %s has no account; scheduled training acts as host:%s (operator)", os_user, os_user)
            return Principal(f"host:{os_user}", "operator", "host")

    def accounts(self, *, actor: Principal) -> list[Account]:
        _actor(actor, "manage users")
        return self._require_identities().accounts()

    def add_account(self, name: str, role: str, password: str, *, actor: Principal) -> Account:
        by = _actor(actor, "manage users")
        account = self._require_identities().add_account(name, role, password)
        self._access_event(by, f"account {account.name} added with role {account.role}", account=account.name)
        return account

    def change_account(
        self,
        name: str,
        *,
        actor: Principal,
        password: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> None:
        by, identities = _actor(actor, "manage users"), self._require_identities()
        if password is not None:
            identities.set_password(name, password)
            self._access_event(by, f"password of {name} changed (its sessions end)", account=name)
        if role is not None:
            identities.set_role(name, role)
            self._access_event(by, f"role of {name} set to {role}", account=name)
        if disabled is not None:
            identities.set_disabled(name, disabled)
            self._access_event(by, f"account {name} {'disabled' if disabled else 'enabled'}", account=name)

    def api_keys(self, *, actor: Principal) -> list[KeyInfo]:
        _actor(actor, "manage API keys")
        return self._require_identities().keys()

    def create_api_key(self, name: str, role: str, *, actor: Principal) -> tuple[KeyInfo, str]:
        """A new named key; its secret is returned this once."""
        by = _actor(actor, "manage API keys")
        info, token = self._require_identities().create_key(name, role, created_by=by)
        self._access_event(by, f"API key {info.name} created with role {info.role}", key=info.name)
        return info, token

    def revoke_api_key(self, name: str, *, actor: Principal) -> KeyInfo:
        by = _actor(actor, "manage API keys")
        info = self._require_identities().revoke_key(name)
        self._access_event(by, f"API key {info.name} revoked", key=info.name)
        return info

    def _access_event(self, by: str, what: str, **details: str) -> None:
        self._auth_configured = None
        if self.authentication_configured():
            self._mark_authentication_on()
        self._require_history().record_event("access", actor=by, reason=what, details=details)
        log.info("access: %s by %s", what, by)

    # ------------------------------------------------------------ serving
    def predict(self, device_id: str, metrics: dict[str, Any]) -> Prediction:
        """Failure probability, risk and anomaly score for one reading, with the device's recent history.

        A request that fails for any reason but the caller's input is recorded for the alert engine's error rate.
        """
        try:
            return self._predict(device_id, metrics)
        except InvalidInput:
            raise
        except Exception as exc:
            self._record_prediction_error(device_id, exc)
            raise

    async def predict_async(
        self, device_id: str, metrics: dict[str, Any], *, authorise: Callable[[], Any]
    ) -> Prediction:
        """predict for a caller on an event loop (the HTTP API): `authorise` (which may read API keys) and the
        prediction run on one database thread, awaited, instead of three thread hand-offs; the same deadline and
        error accounting as predict (a refused caller is not a failed prediction)."""
        authorised = threading.Event()

        def serve() -> Prediction:
            authorise()
            authorised.set()
            return self._predict(device_id, metrics)

        try:
            return await self._bounded_async(serve, timeout=self.settings.db_timeout_seconds * 3)
        except InvalidInput:
            raise
        except Exception as exc:
            if authorised.is_set():
                self._record_prediction_error(device_id, exc)
            raise

    def _record_prediction_error(self, device_id: str, exc: Exception) -> None:
        """A prediction that failed for any reason but the caller's input, for the alert engine's error rate."""
        writer = self.prediction_log()
        if writer is not None:
            writer.record_error(str(device_id), dt.datetime.now(dt.UTC), getattr(exc, "code", type(exc).__name__))

    @_reads
    def _predict(self, device_id: str, metrics: dict[str, Any]) -> Prediction:
        if not device_id or len(device_id) > MAX_DEVICE_ID_LENGTH or "\x00" in device_id:
            raise InvalidInput(f"device_id must be 1 to {MAX_DEVICE_ID_LENGTH} characters, without NUL")
        started = time.perf_counter()
        prediction = self.predictor().predict(device_id, metrics)
        self._log_served(prediction, time.perf_counter() - started)
        return prediction

    def warm_up(self) -> None:
        """Load scikit-learn, pandas and the live set now, so the first prediction does not pay for them.

        Nothing to load (no model yet, database down) is not an error here: the first prediction reports it.
        """
        started = time.perf_counter()
        try:
            version = self.predictor().models().version
        except Exception as exc:
            log.info("warm-up: no live set loaded (%s); the first prediction loads it", getattr(exc, "message", exc))
            return
        log.info("warm-up: live set %s loaded in %.2f s", version, time.perf_counter() - started)

    def predictor(self) -> Predictor:
        """The process's Predictor (scikit-learn and pandas load on first use, not at server start)."""
        predictor = self._predictor
        if predictor is None:
            from core.predict import Predictor

            if self.db is None:
                raise Unavailable(f"predictions need the database, which is unreachable ({self.database_error})")
            with self._guard:
                predictor = self._predictor = self._predictor or Predictor(self.registry, self.db)
        return predictor

    # ------------------------------------------------------------ drift
    def drift(self, window_days: object = None, *, cached_only: bool = False) -> DriftReport:
        """Drift of the last `window_days` days (default DRIFT_WINDOW_DAYS) against the live version's training window.

        Cached by live set, window, telemetry stamp and a DRIFT_CACHE_SECONDS bucket (the recent window moves).
        `cached_only`: DataError instead of computing a report that is not cached (seconds on a large fleet).
        """
        from core.drift import DRIFT_CACHE_SECONDS, compute_drift, data_stamp, parse_window_days

        days = parse_window_days(self.settings.drift_window_days if window_days is None else window_days)
        db = self.db
        if db is None:
            raise Unavailable(f"drift reads the telemetry, and the database is unreachable ({self.database_error})")
        live = self.registry.current()
        if live is None:
            raise NotFound("no model has been trained yet, so there is no training window to compare with")
        stamp = self._bounded(data_stamp, db, timeout=self.settings.db_timeout_seconds * 3)
        key = (set_signature(self.registry.models_dir), days, stamp, int(time.time() // DRIFT_CACHE_SECONDS))
        with self._guard:
            cached = self._drift_cache.get(key)
        if cached is not None:
            return cached
        if cached_only:
            raise DataError("no drift report is computed for the live set and this window yet")
        try:
            model = self.registry.load_models().failure_model  # checksums and provenance checked before unpickling
        except IntegrityError as exc:
            log.warning("drift: version %s: score drift skipped: %s", live.version, exc.message)
            model = None
        report = compute_drift(db, live.metadata, model, window_days=days)
        with self._guard:
            self._drift_cache = {k: v for k, v in self._drift_cache.items() if k[3] == key[3]}
            self._drift_cache[key] = report
        return report

    # ------------------------------------------------------------ same-data compare
    @functools.cached_property
    def _same_data_cache(self) -> SameDataCache:
        from core.samedata import SameDataCache

        return SameDataCache()

    def _default_pair(self, a: str | None, b: str | None) -> tuple[str, str]:
        """A defaults to the live version; B to the one Compare would pick (the newest other backed-up version), or
        to the live version when A is a candidate or a backup set."""
        from core.versions import Version

        if a is not None and b is not None:
            return a, b
        if a is not None and not Version.is_valid(a):
            live = self.registry.current()
            if live is None:
                raise NotFound("there is no live version to compare with; name both sides")
            return a, live.version
        c = self.compare(a, b)
        return a or c.a.version, b or c.b.version

    # Not bounded by the database deadline: scoring a long window is CPU work that may outlast a read's deadline
    # (and would then mark the database as stuck); its queries have their own statement timeouts.
    def compare_same_data(
        self,
        a: str | None = None,
        b: str | None = None,
        *,
        window_start: dt.date | None = None,
        window_end: dt.date | None = None,
        days: int | None = None,
    ) -> SameDataComparison:
        """Score A and B on one labelled window (default: the most recent complete one), from their checked files.

        A and B are versions (the live set or a complete backup set holding them), backup timestamps, or
        `candidate:<id>`. Cached by both artifacts' checksums, the window and the telemetry's stamp.
        """
        from core.samedata import compare_on_window

        if self.db is None:
            raise Unavailable(f"scoring needs the telemetry, and the database is unreachable ({self.database_error})")
        a, b = self._default_pair(a, b)
        return compare_on_window(
            self.registry,
            self.db,
            self._same_data_cache,
            a,
            b,
            horizon_days=self.settings.horizon_days,
            default_days=self.settings.same_data_days,
            start=window_start,
            end=window_end,
            days=days,
        )

    @_reads
    def same_data_cached(self, a: str, b: str) -> SameDataComparison | None:
        """The newest same-data figures already computed for A and B on today's telemetry (any window), or None."""
        from core.samedata import cached_on_window

        if self.db is None:
            return None
        try:
            return cached_on_window(self.registry, self.db, self._same_data_cache, a, b)
        except (NotFound, IntegrityError, InvalidInput):
            return None

    @_reads
    def same_data_window(self) -> Window:
        """The window same-data compare scores on by default: the most recent complete one."""
        from core.samedata import default_window

        if self.db is None:
            raise Unavailable(f"the telemetry is in the database, which is unreachable ({self.database_error})")
        return default_window(self.db, horizon_days=self.settings.horizon_days, days=self.settings.same_data_days)

    def holdout_notice(self, comparison: Comparison) -> str | None:
        """Said next to the verdicts when the two versions' stored holdout figures come from different windows."""
        from core.samedata import window_notice

        return window_notice(comparison.a, comparison.b)

    # ------------------------------------------------------------ prediction log, fleet scoring, realised
    def prediction_log(self) -> PredictionLogWriter | None:
        """The process's prediction-log writer (None when PREDICTION_LOG=0 or without a database)."""
        writer = self._log_writer
        if writer is None and self.settings.prediction_log and self.db is not None:
            from core.prediction_log import PredictionLogWriter

            with self._guard:
                writer = self._log_writer = self._log_writer or PredictionLogWriter(
                    self.db, keep_days=self.settings.prediction_log_days
                )
        return writer

    def _log_served(self, prediction: Prediction, seconds: float) -> None:
        """Queue a served prediction for the log (never blocks, never raises)."""
        writer = self.prediction_log()
        if writer is not None:
            writer.record(
                prediction.device_id,
                prediction.predicted_at,
                prediction.model_version,
                prediction.failure_probability,
                seconds * 1000,
            )

    def score_fleet(
        self,
        *,
        actor: Principal,
        as_of: dt.datetime | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        days: int | None = None,
        shadow: bool = True,
    ) -> ScoringRun:
        """Score every device-day of the chosen days with the live model and, in the shadow, each candidate."""
        from core.fleet_scoring import score_fleet, scoring_days

        _actor(actor, "train")
        if self.db is None:
            raise Unavailable(f"fleet scoring needs the database, which is unreachable ({self.database_error})")
        moment = (as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        chosen = scoring_days(as_of=moment, start=start, end=end, days=days)
        run = score_fleet(
            self.db, self.registry, chosen, as_of=moment, keep_days=self.settings.prediction_log_days, shadow=shadow
        )
        if self.settings.auto_rollback != "off":  # realised figures change only when predictions or outcomes arrive
            from core.autorollback import safely

            decision = safely(self, now=moment)
            run = dataclasses.replace(run, auto_rollback=decision.to_dict() if decision else None)
        self._evaluate_after_change()
        return run

    def _realised_inputs(
        self, as_of: dt.datetime | None, since: dt.date | None = None, until: dt.date | None = None
    ) -> tuple[Any, Any, dt.datetime]:
        from core import prediction_log as P
        from core.realised import load_failures

        if self.db is None:
            raise Unavailable(f"realised performance needs the database, which is unreachable ({self.database_error})")
        if since is not None and until is not None and since > until:
            raise InvalidInput(f"since ({since}) is after until ({until})")
        moment = (as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        first = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC) if since else None
        last = min(moment, dt.datetime.combine(until, dt.time(), tzinfo=dt.UTC)) if until else moment
        predictions = P.read_frame(self.db, since_day=first, until_day=last)
        return predictions, load_failures(self.db, until=moment), moment

    @_reads
    def realised_performance(
        self, *, as_of: dt.datetime | None = None, since: dt.date | None = None, until: dt.date | None = None
    ) -> RealisedReport:
        """Logged predictions joined with recorded failures once the horizon passed: per version and per week.

        `since` / `until` keep the predictions for those days only (UTC calendar days, inclusive).
        """
        from core.realised import build_report

        started = time.monotonic()
        predictions, failures, moment = self._realised_inputs(as_of, since, until)
        holdout = {e.version: dict(e.performance) for e in self.registry.versions()}
        try:
            live = self.registry.current()
        except IntegrityError:
            live = None
        from core.prediction_log import roles

        return build_report(
            predictions,
            failures,
            as_of=moment,
            horizon_days=self.settings.horizon_days,
            live_version=live.version if live else None,
            holdout=holdout,
            roles=roles(self.db),
            seconds_so_far=time.monotonic() - started,
        )

    @_reads
    def shadow_performance(self, *, as_of: dt.datetime | None = None) -> list[ShadowFigures]:
        """Each waiting candidate's realised figures beside the live version's on the same device-days."""
        from core.fleet_scoring import shadow_version
        from core.realised import shadow_beside_live

        waiting = self.registry.candidates()
        if not waiting:
            return []
        predictions, failures, moment = self._realised_inputs(as_of)
        try:
            live = self.registry.current()
        except IntegrityError:
            live = None
        return [
            shadow_beside_live(
                predictions,
                failures,
                as_of=moment,
                horizon_days=self.settings.horizon_days,
                candidate_version=shadow_version(c.id),
                candidate_id=c.id,
                live_version=live.version if live else None,
            )
            for c in waiting
        ]

    # ------------------------------------------------------------ alerts (issue 13)
    def _require_alerts(self) -> AlertEngine:
        if self._alert_engine is None:
            raise Unavailable(f"alerts live in the database, which is unreachable ({self.database_error})")
        return self._alert_engine

    def alert_conditions(
        self, now: dt.datetime | None = None, *, fresh_drift: bool = True
    ) -> tuple[list[Alert], set[str]]:
        """Every condition holding now (status, realised performance, drift, error rate), and the kinds whose
        input could not be read this time. Without `fresh_drift` only a cached drift report is judged."""
        from core.alerting import gather_conditions

        return gather_conditions(self, now_utc(now), fresh_drift=fresh_drift)

    @_reads
    def predict_requests(self, *, since: dt.datetime) -> tuple[int, int]:
        """Predict requests since `since`: (failed, served), from the prediction log and its failed requests."""
        from core.prediction_log import request_counts

        if self.db is None:
            raise Unavailable(f"the database is unreachable ({self.database_error})")
        return request_counts(self.db, since=since)

    def evaluate_alerts(self, now: dt.datetime | None = None, *, fresh_drift: bool = True) -> Evaluation:
        """Turn the conditions holding now into alert episodes: fire new ones once, resolve cleared ones."""
        moment = now_utc(now)
        engine = self._require_alerts()
        timeout = self.settings.write_deadline_seconds
        with self._evaluating:  # one evaluation at a time in this process (background, after changes, reads)
            stamps = self.stamps()
            # Episodes first, then conditions: an episode fired meanwhile (by another process) is not resolved by
            # conditions read before its cause was recorded.
            opened = self._bounded(engine.open_episodes, timeout=timeout)
            conditions, unknown = self.alert_conditions(moment, fresh_drift=fresh_drift)
            done = self._bounded(
                engine.evaluate, conditions, unknown=unknown, now=moment, opened=opened, timeout=timeout
            )
            self._alerts_evaluated = (time.monotonic(), moment, stamps)
        return done

    def _evaluate_after_change(self, *, wait: bool = True) -> None:
        """After a run, a scoring or a restore: evaluate now (`wait`) or on a thread; never raises."""

        def run() -> None:
            try:
                self.evaluate_alerts()
            except Exception as exc:  # the change itself succeeded; the background evaluation catches up
                if self._disposed:  # closed meanwhile (a CLI command that exits right after a restore): no one to tell
                    return
                log.warning("alerts: evaluation after a change failed: %s", getattr(exc, "message", exc))

        if self._alert_engine is None:
            return
        if wait:
            run()
        else:
            threading.Thread(target=run, name="alerts-after-change", daemon=True).start()

    def alerts(
        self, include_resolved: bool = False, *, now: dt.datetime | None = None, refresh: bool = False
    ) -> AlertBoard:
        """Open alert episodes (and, with `include_resolved`, recently resolved ones).

        `refresh` evaluates first when this process last did longer than ALERT_EVALUATE_SECONDS ago or
        when the files or the history changed since (cheap stamps): a read stays a read otherwise. Such an
        evaluation judges drift from a cached report only, so a read never waits for a drift computation.
        """
        engine = self._require_alerts()
        moment = now_utc(now)
        if refresh:
            seen = self._alerts_evaluated
            stale = seen is None or time.monotonic() - seen[0] >= max(self.settings.alert_evaluate_seconds, 1.0)
            if stale or seen is None or self.stamps() != seen[2]:
                try:
                    self.evaluate_alerts(fresh_drift=False)
                except RegistryError as exc:
                    log.warning("alerts: evaluation before the read failed: %s", exc.message)
        evaluated = self._alerts_evaluated[1] if self._alerts_evaluated else None
        return self._bounded(
            engine.board,
            include_resolved=include_resolved,
            now=moment,
            evaluated_at=evaluated,
            timeout=self.settings.db_timeout_seconds * 3,
        )

    def acknowledge_alert(self, alert_id: int, *, actor: Principal, reason: str | None) -> AlertRecord:
        """Someone is on it: the alert stops counting as firing until it resolves (operator; reason required)."""
        name, why = _actor(actor, "acknowledge"), _reason(reason, required=True)
        engine = self._require_alerts()
        return self._bounded(
            engine.acknowledge, _alert_id(alert_id), actor=name, reason=str(why), now=now_utc(None), timeout=15
        )

    def silence_alert(
        self, alert_id: int, *, until: dt.datetime, actor: Principal, reason: str | None, now: dt.datetime | None = None
    ) -> AlertRecord:
        """The alert stops counting as firing until `until` (operator; reason required); it still resolves."""
        name, why = _actor(actor, "silence alerts"), _reason(reason, required=True)
        engine = self._require_alerts()
        moment = now_utc(now)
        return self._bounded(
            engine.silence, _alert_id(alert_id), until=until, actor=name, reason=str(why), now=moment, timeout=15
        )

    # ------------------------------------------------------------ automatic rollback
    # Not bounded by the database deadline: it may score the previous version on a window (CPU work, as
    # compare_same_data); the restore it makes is a bounded write.
    def evaluate_auto_rollback(self, now: dt.datetime | None = None) -> AutoRollbackDecision:
        """Roll back (AUTO_ROLLBACK=on), or record what it would do (dry-run), when the live version's realised F1
        falls behind the previous live version's on the same days by more than AUTO_ROLLBACK_MARGIN."""
        from core.autorollback import evaluate

        return evaluate(self, now=(now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))

    def auto_rollback_state(self) -> AutoRollbackState:
        """The AUTO_ROLLBACK setting and the last decision any process recorded (None before the first)."""
        from core.autorollback import state

        return state(self.settings)

    # ------------------------------------------------------------ metrics for Prometheus
    @functools.cached_property
    def metrics_refresher(self) -> SlowRefresher:
        """Drift and realised performance for the metrics, recomputed in the background at most every few minutes."""
        from core.metrics import SlowRefresher

        return SlowRefresher(self.settings.metrics_refresh_seconds)

    @functools.cached_property
    def _metrics_registry(self) -> CollectorRegistry:
        from core.metrics import build_registry

        return build_registry(self, self.metrics_refresher)

    def metrics(self) -> tuple[bytes, str]:
        """(body, content type) of a Prometheus scrape of this process: serving counters, model, runs, alerts, drift."""
        from core.metrics import CONTENT_TYPE, render

        return render(self._metrics_registry), CONTENT_TYPE

    def observe_prediction(self, model_version: str | None, status: int, seconds: float) -> None:
        """Count one POST predict answered by this process (`model_version` None: the live one, for a failure)."""
        from core.metrics import SERVING, live_version_label

        SERVING.observe(model_version or live_version_label(self), status, seconds)

    # ------------------------------------------------------------ notifications by webhook
    def _notifier(self) -> Notifier:
        from core.notify import Notifier

        if self.db is None:
            raise Unavailable(
                f"notifications are sent from History, and the database is unreachable ({self.database_error})"
            )
        return Notifier(self.db, self.settings)

    def notification_setup(self) -> NotificationSetup:
        """The webhook targets (names and hosts only), whether a secret is set, the kinds sent."""
        from core.notify import Notifier

        return Notifier.setup_of(self.settings)

    @_reads
    def notification_log(self, *, limit: int = 200) -> list[Delivery]:
        """Every delivery attempt's state, newest first."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be from 1 to 1000, got {limit}")
        return self._notifier().deliveries(limit)

    # Not bounded by the read deadline: a pass waits on receivers (WEBHOOK_TIMEOUT_SECONDS each), not the database.
    def dispatch_notifications(self) -> DispatchReport:
        """One pass: deliveries for new History events, then every send that is due (CLI, cron)."""
        return self._notifier().dispatch()

    def send_test_notification(self, *, actor: Principal) -> list[Attempt]:
        """A signed test message to every target now; each result is in the delivery log."""
        name = _actor(actor, "send test notifications")
        if not self.settings.webhook_urls:
            raise InvalidInput("no webhook is configured: set WEBHOOK_URLS (e.g. ops=https://hooks.example.com/x)")
        return self._notifier().send_test(name)

    def start_notifications(self) -> bool:
        """Start this process's background dispatcher (the server does, once); False when no webhook is set."""
        from core.notify import start_dispatcher

        return start_dispatcher(self.settings) is not None


def _alert_id(value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidInput(f"an alert id is a number, not {value!r}") from None
    if number < 1:
        raise InvalidInput(f"an alert id is a positive number, not {value!r}")
    return number


_instances: dict[Settings, ModelOps] = {}
_instances_lock = threading.Lock()


def get_ops(settings: Settings | None = None) -> ModelOps:
    """The process-wide application layer for these settings (from the environment by default).

    While the database is unreachable the same instance is returned; it is built again (and the database
    tried again) at most every DB_RETRY_SECONDS.
    """
    settings = settings or Settings.from_env()
    with _instances_lock:
        ops = _instances.get(settings)
        if ops is not None and (ops.db is not None or time.monotonic() - ops.created < DB_RETRY_SECONDS):
            return ops
        if ops is not None:
            ops.dispose()
        ops = _instances[settings] = ModelOps(settings)
        return ops


_evaluators: dict[Settings, threading.Event] = {}


def start_alert_evaluator(settings: Settings) -> bool:
    """Evaluate alerts every ALERT_EVALUATE_SECONDS on a thread of this process (the server), once per settings.

    Each round asks `get_ops` again, so an application layer rebuilt after a database outage is the one used.
    False when ALERT_EVALUATE_SECONDS=0 or one runs already.
    """
    interval = settings.alert_evaluate_seconds
    with _instances_lock:
        if interval <= 0 or settings in _evaluators:
            return False
        stop = _evaluators[settings] = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                get_ops(settings).evaluate_alerts()
            except Exception as exc:  # a database that does not answer: try again next round
                log.warning("alerts: background evaluation failed: %s", getattr(exc, "message", exc))
            stop.wait(interval)

    threading.Thread(target=loop, name="alert-evaluator", daemon=True).start()
    log.info("alerts: evaluating every %g s in the background", interval)
    return True


def reset_ops() -> None:
    """Forget every instance and dispose their engines (tests, benchmarks)."""
    with _instances_lock:
        for stop in _evaluators.values():
            stop.set()
        _evaluators.clear()
        for ops in _instances.values():
            ops.dispose()
        _instances.clear()
