"""The model registry: current set, versions, backups, promote, restore, delete, clean-up, hand-made changes."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import backups as B
from core import constants as C
from core import journal as J
from core.artifacts import RESTORE_HINT, load_checked, unpickle
from core.backup_index import index_for
from core.db import Database
from core.domain import (
    ArtifactStatus,
    BackupSet,
    CandidateSet,
    Comparison,
    Health,
    Hold,
    MetricChange,
    ModelVersion,
    RestoreResult,
    VersionEntry,
    artifact_checksums,
    parse_time,
)
from core.errors import Conflict, Held, IntegrityError, InvalidInput, NotFound, RegistryError, Unavailable, Unchanged
from core.event_index import EventIndex
from core.history import History
from core.locking import OperationLock, registry_lock
from core.provenance import Provenance
from core.storage import (
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    json_bytes,
    remove_quietly,
    set_signature,
    sha256_bytes,
    sha256_file,
)
from core.versions import Version, next_version

log = logging.getLogger(__name__)
PICKLE_PROTOCOL = 5  # numpy arrays in-band as raw bytes (Python 3.8+)

COMPARED_DATA_KEYS: tuple[str, ...] = (
    "sample_count",
    "unique_devices",
    "positive_rate",
    "days_back",
    "date_range",
    "train_samples",
    "holdout_samples",
)


@dataclass(frozen=True)
class LoadedModels:
    """The current set, loaded after its checksums and provenance were verified."""

    failure_model: Any
    anomaly_model: Any
    metadata: dict[str, Any]
    version: str


@dataclass(frozen=True)
class ExternalChange:
    """A change to the current set made outside the registry (e.g. the guide's `cp` restore)."""

    from_version: str | None
    to_version: str | None
    changed_files: tuple[str, ...]
    detected_at: dt.datetime


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _dump_bytes(obj: Any) -> bytes:
    """A model file's bytes: a standard pickle, which `joblib.load` (the guide's service) reads as it always did.

    Not `joblib.dump`: joblib's format needs its pure-Python unpickler, ten times slower to load than the
    standard C one (an IsolationForest of 100 trees: ~35 ms against ~3 ms here).
    """
    return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)


class Registry:
    """Domain verbs over the models directory, with history and provenance in the database when one is given."""

    def __init__(
        self,
        models_dir: Path | str,
        db: Database | None = None,
        *,
        lock_timeout: float = 10.0,
        keep_backups: int = C.DEFAULT_KEEP_BACKUPS,
        auto_cleanup: bool = False,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.db = db
        self.history = History(db) if db is not None else None
        self.provenance = Provenance(db) if db is not None else None
        self.lock_timeout = lock_timeout
        self.keep_backups = keep_backups
        self.auto_cleanup = auto_cleanup
        self.clock = clock
        self.lock: OperationLock = registry_lock(self.models_dir, db.engine if db is not None else None)
        self.index = index_for(self.models_dir)
        self.event_index = EventIndex(db) if db is not None else None
        self._versions: tuple[Any, list[VersionEntry]] | None = None
        self._entries: dict[str, EntryRecord] = {}  # the versions' entries last made (see _entry)

    @classmethod
    def from_settings(cls, settings: Any, db: Database | None = None) -> Registry:
        return cls(
            settings.models_dir,
            db,
            lock_timeout=settings.lock_timeout_seconds,
            keep_backups=settings.keep_backups,
            auto_cleanup=settings.auto_cleanup,
        )

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        return self.models_dir / name

    # ------------------------------------------------------------------ reads
    def read_current_metadata(self) -> dict[str, Any] | None:
        """The current metadata, None when there is no model, IntegrityError when it is not a JSON object in UTF-8."""
        path = self.path(C.METADATA_FILE)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise IntegrityError(f"{path.name} is not UTF-8 text (edited or copied by hand?); {RESTORE_HINT}") from None
        except ValueError as exc:
            where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise IntegrityError(f"{path.name} is not valid JSON{where}; {RESTORE_HINT}") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{path.name} does not hold a JSON object; {RESTORE_HINT}")
        return data

    def current(self) -> ModelVersion | None:
        """The live model's version and metadata, or None when no model has been trained yet."""
        metadata = self.read_current_metadata()
        if metadata is None:
            return None
        return ModelVersion.from_metadata(metadata, location="current")

    def health(self, *, load: bool = False) -> Health:
        """Check every file of the current set against the metadata; with `load`, unpickle the verified ones.

        A file is unpickled only when its checksum matches the metadata and a set this registry recorded:
        a planted file never runs here.
        """
        problems: list[str] = []
        artifacts: list[ArtifactStatus] = []
        version = None
        try:
            metadata = self.read_current_metadata()
        except IntegrityError as exc:
            metadata = None
            problems.append(exc.message)
        if metadata is None and not problems:
            problems.append("no model has been trained yet; run `python scripts/train_models.py --force`")
        checksums = artifact_checksums(metadata or {})
        if metadata is not None:
            version = str(metadata.get("version"))[:40]
            if not Version.is_valid(metadata.get("version")):
                problems.append(f"{C.METADATA_FILE} names version {version!r}, not MAJOR.MINOR.PATCH (edited by hand?)")
            if not all(n in checksums for n in C.MODEL_FILES):
                problems.append(f"{C.METADATA_FILE} has no checksums for its model files, so they are not loaded")
        for name in C.MODEL_FILES:
            expected = (checksums.get(name) or {}).get("sha256")
            try:
                data = self.path(name).read_bytes()
            except FileNotFoundError:
                artifacts.append(ArtifactStatus(name, False, None, None, expected, None, "missing"))
                problems.append(f"{name} is missing; {RESTORE_HINT}")
                continue
            actual = sha256_bytes(data)
            problem, loadable = None, None
            if expected is not None and expected != actual:
                problem = "sha256 differs from the metadata (changed or copied by hand?)"
                problems.append(
                    f"{name} does not match {C.METADATA_FILE} (sha256 {actual[:12]}… vs {expected[:12]}…); "
                    f"{RESTORE_HINT}"
                )
            elif load and expected is not None and metadata is not None:
                try:
                    load_checked(name, data, expected, self.provenance)
                    loadable = True
                except IntegrityError as exc:
                    loadable, problem = False, exc.message
                    problems.append(exc.message)
                except Unavailable:
                    pass  # provenance lives in the database: unverified, and the database problem is reported
            artifacts.append(ArtifactStatus(name, True, len(data), actual, expected, loadable, problem))
        return Health(not problems, version, tuple(artifacts), tuple(problems), self.clock())

    def load_models(self) -> LoadedModels:
        """Load the current set; IntegrityError when a file is not the one its metadata and provenance name."""
        metadata = self.read_current_metadata()
        if metadata is None:
            raise NotFound("no model has been trained yet; run `python scripts/train_models.py --force`")
        checksums = artifact_checksums(metadata)
        loaded = {}
        for name in C.MODEL_FILES:
            try:
                data = self.path(name).read_bytes()
            except FileNotFoundError:
                raise IntegrityError(f"{name} is missing; {RESTORE_HINT}") from None
            loaded[name] = load_checked(name, data, (checksums.get(name) or {}).get("sha256"), self.provenance)
        return LoadedModels(
            loaded[C.FAILURE_MODEL_FILE], loaded[C.ANOMALY_MODEL_FILE], metadata, str(metadata.get("version"))
        )

    def backups(self) -> list[BackupSet]:
        """Every backup set, newest first; broken sets are listed with their problems, never skipped.

        From the index (core/backup_index.py): each set's metadata is its summary (`backups.summary`);
        `backup(timestamp)` reads one set whole.
        """
        return self.index.sets()

    def backup(self, timestamp: str, *, verify: bool = True) -> BackupSet:
        return B.get_set(self.models_dir, timestamp, verify=verify)

    def versions(self) -> list[VersionEntry]:
        """Every version ever promoted (from history), newest first, with the backups that still hold it.

        Built again only when the promotions, the backup listing or the current set changed.
        """
        sets = self.backups()
        stamp, promoted = self._promotions()
        key = (stamp, self.index.generation, set_signature(self.models_dir))
        cached = self._versions
        if cached is not None and cached[0] == key and stamp is not None:
            return list(cached[1])
        current = self._current_quiet()
        by_version: dict[str, list[BackupSet]] = {}
        for s in sets:
            if s.version:
                by_version.setdefault(s.version, []).append(s)
        kept, made = self._entries, {}
        for version, meta, promoted_at, mv in promoted:
            made[version] = _entry(kept.get(version), version, meta, promoted_at, by_version, current, mv)
        for version, group in by_version.items():
            if version not in made:
                made[version] = _entry(kept.get(version), version, group[0].metadata or {}, None, by_version, current)
        if current is not None and current.version not in made:
            live = current.version
            made[live] = _entry(kept.get(live), live, current.metadata, None, by_version, current)
        result = sorted((m[3] for m in made.values()), key=lambda e: _version_key(e.version), reverse=True)
        self._entries, self._versions = made, (key, result)
        return list(result)

    def get_version(self, version: str) -> ModelVersion:
        """A version's metadata: from the current set, the newest backup holding it, or history."""
        Version.parse(version)
        current = self._current_quiet()
        if current is not None and current.version == version:
            return current
        for s in self.backups():
            if s.version == version and s.metadata is not None:
                try:
                    whole = self.backup(s.timestamp, verify=False)  # the listing holds a summary: read the file
                except NotFound:
                    continue  # removed since it was listed
                if whole.metadata is not None and whole.version == version:
                    return ModelVersion.from_metadata(whole.metadata, location="backup", backup_timestamp=s.timestamp)
        for known, meta, _, _ in self._promotions()[1]:
            if known == version and meta:
                return ModelVersion.from_metadata(meta, location="history")
        raise NotFound(f"version {version} is not known; list versions with `manage_models.py versions`")

    def pending(self) -> J.JournalEntry | None:
        """A change that was started and not finished (in progress, or applied with its audit event pending)."""
        return J.read_journal(self.models_dir)

    def settle(self, *, record_events: bool = True) -> J.JournalEntry | None:
        """For reads: finish an interrupted change when no write is running; what is still pending afterwards.

        Without `record_events` (the database is not answering) only the files are finished.
        """
        if self.pending() is None:
            return None
        try:
            with self.lock.hold("recover", "registry", timeout=0.5):
                self._recover(record=record_events)
        except (Conflict, Unavailable):
            pass  # a write is running (it finishes its own journal), or the event waits for the database
        return self.pending()

    # ------------------------------------------------------------------ writes
    @contextmanager
    def _writing(
        self, op: str, actor: str, details: dict[str, Any] | None = None, *, deadline: float | None = None
    ) -> Iterator[J.StagedWrite]:
        """The one write skeleton: lock, finish an interrupted change, record hand-made changes, stage, clean up.

        The body stages files and calls `_commit`; anything staged but never journaled is removed if it raises.
        """
        with self.lock.hold(op, actor, timeout=self.lock_timeout, details=details):
            self._recover()
            self._reconcile_locked()
            write = J.StagedWrite(self.models_dir, op, self.clock(), deadline=deadline)
            try:
                yield write
            finally:
                write.discard()

    def _commit(self, write: J.StagedWrite, event: J.PlannedEvent, *, rewrite_state: bool) -> str | None:
        """Apply a staged write with its event; None when the event is recorded, else why it is pending.

        Nothing is applied when the deadline passed or the database cannot take the event: the caller learns
        the truth either way, and a change is never reported as failed once it was applied.
        """
        if write.deadline is not None and time.monotonic() > write.deadline:
            raise Unavailable(f"the {write.op} took too long and was abandoned before changing anything; try again")
        if self.history is not None:
            self.history.ping()
        details = {**event.details, "op_id": write.op_id}
        entry = write.apply(J.PlannedEvent(**{**event.__dict__, "details": details}), rewrite_state=rewrite_state)
        if rewrite_state:
            self._state_from_disk(bump=True)
        self._index_in_step()
        return self._record(entry)

    def _index_in_step(self) -> None:
        """Bring the backup index in step with a change just applied, still under the lock, and save it."""
        try:
            self.index.refresh(save=True)
        except OSError as exc:  # the change stands; readers find the index out of step and re-read what changed
            log.warning("model registry: backup index not updated: %s", exc)

    def _record(self, entry: J.JournalEntry) -> str | None:
        """Record a journal's event unless it already is; finish the journal, or mark the event pending."""
        if entry.event is not None and self.history is not None:
            event = entry.event
            try:
                if not self.history.has_operation(entry.op_id, event.kind):
                    self.history.record_event(
                        event.kind,
                        actor=event.actor,
                        from_version=event.from_version,
                        to_version=event.to_version,
                        reason=event.reason,
                        details=event.details,
                    )
            except Unavailable as exc:
                J.mark_event_pending(self.models_dir, entry, exc.message)
                log.error(
                    "model registry: %s by %s applied; its audit event is pending: %s", entry.op, event.actor, exc
                )
                return exc.message
        J.finish(self.models_dir)
        if entry.event is not None:
            e = entry.event
            log.info("model registry: %s by %s (%s -> %s)", e.kind, e.actor, e.from_version or "-", e.to_version or "-")
        return None

    def promote(
        self,
        failure_model: Any,
        anomaly_model: Any,
        metadata_fields: Mapping[str, Any],
        *,
        actor: str,
        trigger: str,
        reason: str | None = None,
        run_id: str | None = None,
        deadline: float | None = None,
        respect_hold: bool = True,
        manual: bool = False,
        unless_identical: bool = False,
    ) -> ModelVersion:
        """Install a new set under a new, never-used version, with a backup of it from the start.

        The set it replaces is backed up first unless a backup already holds it, so a hand-made copy over
        the live files (the guide's `cp` restore) can never lose a version. Held (and nothing changes) when
        the live version is held, or when promotion waits for approval (`manual`): checked under the lock,
        so a restore that holds its version can never be overtaken by a run that was already training.
        With `unless_identical` (training runs), artifacts byte-identical to the live set's are refused
        (`Unchanged`): the same data and parameters make the same model, which is not a new version.
        """
        blobs = {C.FAILURE_MODEL_FILE: _dump_bytes(failure_model), C.ANOMALY_MODEL_FILE: _dump_bytes(anomaly_model)}
        return self._promote_blobs(
            blobs,
            metadata_fields,
            actor=actor,
            trigger=trigger,
            reason=reason,
            details={"run_id": run_id},
            deadline=deadline,
            respect_hold=respect_hold,
            manual=manual,
            unless_identical=unless_identical,
        )

    def _promote_blobs(
        self,
        model_blobs: dict[str, bytes],
        metadata_fields: Mapping[str, Any],
        *,
        actor: str,
        trigger: str,
        reason: str | None,
        details: dict[str, Any],
        deadline: float | None,
        respect_hold: bool,
        manual: bool,
        after: Callable[[], None] | None = None,
        unless_identical: bool = False,
    ) -> ModelVersion:
        with self._writing("promote", actor, deadline=deadline) as write:
            if unless_identical:
                self._refuse_identical(model_blobs)
            if manual:
                raise Held("promotion waits for an admin's approval (PROMOTION=manual)")
            hold = self.history.active_hold() if respect_hold and self.history is not None else None
            if hold is not None:
                raise Held(
                    f"version {hold.version} is held by {hold.placed_by} since {hold.placed_at:%Y-%m-%d %H:%M} UTC"
                    + (f" ({hold.reason})" if hold.reason else "")
                )
            previous = self._current_quiet()
            version = str(next_version(self._versions_seen(), change=_version_change(previous, metadata_fields)))
            blobs = dict(model_blobs)
            metadata = dict(metadata_fields)
            metadata.update(
                version=version,
                previous_version=previous.version if previous else None,
                trigger=trigger,
                actor=actor,
                promoted_at=write.now.isoformat(),
                artifacts={n: {"sha256": sha256_bytes(b), "bytes": len(b)} for n, b in blobs.items()},
            )
            blobs[C.METADATA_FILE] = json_bytes(metadata)
            held = self._backup_of_live()
            backup_ts = held.timestamp if held is not None else write.stage_backup()
            live_backup = write.stage_backup_of(blobs)
            for name, data in blobs.items():
                write.stage_bytes(name, data)
            if self.provenance is not None:
                self.provenance.record(metadata["artifacts"], version=version, source="promote", actor=actor)
            details = {
                "backup_timestamp": backup_ts,
                "live_backup": live_backup,
                **details,
                "trigger": trigger,
                "metadata": metadata,
            }
            event = J.PlannedEvent("promote", actor, previous.version if previous else None, version, reason, details)
            self._commit(write, event, rewrite_state=True)
            if after is not None:
                after()
            if self.auto_cleanup:
                self._retention()
            return ModelVersion.from_metadata(metadata, location="current")

    # ------------------------------------------------------------ holds
    def place_hold(self, *, actor: str, reason: str) -> Hold:
        """Hold the live version: gate-passing runs are kept as candidates until the hold is released."""
        with self.lock.hold("hold", actor, timeout=self.lock_timeout):
            live = self.current()
            if live is None:
                raise NotFound("there is no live version to hold")
            history = self._history_for("hold")
            history.record_event(
                "hold",
                actor=actor,
                from_version=live.version,
                to_version=live.version,
                reason=reason,
                details={"action": "placed"},
            )
            hold = history.active_hold()
        assert hold is not None
        log.info("model registry: hold on %s placed by %s (%s)", hold.version, actor, reason)
        return hold

    def release_hold(self, *, actor: str, reason: str) -> Hold:
        """Release the hold: the next gate-passing run is promoted again (PROMOTION=auto)."""
        with self.lock.hold("release hold", actor, timeout=self.lock_timeout):
            history = self._history_for("release a hold")
            hold = history.active_hold()
            if hold is None:
                raise NotFound("nothing is held")
            history.record_event(
                "hold",
                actor=actor,
                from_version=hold.version,
                to_version=None,
                reason=reason,
                details={"action": "released", "hold_id": hold.id, "placed_by": hold.placed_by},
            )
        log.info("model registry: hold on %s released by %s (%s)", hold.version, actor, reason)
        return hold

    def active_hold(self) -> Hold | None:
        return self.history.active_hold() if self.history is not None else None

    def _history_for(self, action: str) -> History:
        if self.history is None:
            raise Unavailable(f"cannot {action} without the database (holds live there)")
        return self.history

    # ------------------------------------------------------------ candidates
    def candidates_dir(self) -> Path:
        return self.models_dir / C.CANDIDATES_DIR

    def keep_candidate(
        self,
        failure_model: Any,
        anomaly_model: Any,
        metadata_fields: Mapping[str, Any],
        *,
        actor: str,
        trigger: str,
        because: str,
        run_id: str | None = None,
    ) -> CandidateSet:
        """Keep a gate-passing run aside, whole and verified, instead of promoting it."""
        blobs = {C.FAILURE_MODEL_FILE: _dump_bytes(failure_model), C.ANOMALY_MODEL_FILE: _dump_bytes(anomaly_model)}
        candidate_id = (run_id or uuid.uuid4().hex)[:12]
        metadata = dict(metadata_fields)
        metadata.update(
            candidate_id=candidate_id,
            run_id=run_id,
            kept_because=because,
            kept_at=self.clock().isoformat(),
            trigger=trigger,
            actor=actor,
            artifacts={n: {"sha256": sha256_bytes(b), "bytes": len(b)} for n, b in blobs.items()},
        )
        blobs[C.METADATA_FILE] = json_bytes(metadata)
        with self.lock.hold("keep candidate", actor, timeout=self.lock_timeout):
            if self.provenance is not None:
                self.provenance.record(metadata["artifacts"], version=None, source="candidate", actor=actor)
            root = self.candidates_dir()
            root.mkdir(exist_ok=True)
            staging = root / f"{C.TMP_PREFIX}{candidate_id}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                for name, data in blobs.items():
                    atomic_write_bytes(staging / name, data)
                os.replace(staging, root / candidate_id)  # the whole set appears at once
                fsync_dir(root)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if self.history is not None:
                self.history.record_event(
                    "candidate",
                    actor=actor,
                    reason=f"kept as candidate {candidate_id}: {because}",
                    details={"candidate_id": candidate_id, "run_id": run_id, "action": "kept"},
                )
        log.info("model registry: run %s kept as candidate %s: %s", run_id, candidate_id, because)
        return self.candidate(candidate_id)

    def candidates(self) -> list[CandidateSet]:
        """Every candidate waiting, newest first."""
        root = self.candidates_dir()
        if not root.is_dir():
            return []
        found = [self._candidate(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(C.TMP_PREFIX)]
        return sorted(
            (c for c in found if c is not None),
            key=lambda c: c.kept_at or dt.datetime.min.replace(tzinfo=dt.UTC),
            reverse=True,
        )

    def candidate(self, candidate_id: str) -> CandidateSet:
        if not candidate_id or len(candidate_id) > 64 or not set(candidate_id) <= set("0123456789abcdef"):
            raise InvalidInput(
                f"{candidate_id[:40]!r} is not a candidate id; list them with `manage_models.py candidates`"
            )
        found = self._candidate(self.candidates_dir() / candidate_id)
        if found is None:
            raise NotFound(f"no candidate {candidate_id}; list them with `manage_models.py candidates`")
        return found

    def _candidate(self, path: Path) -> CandidateSet | None:
        try:
            metadata = json.loads((path / C.METADATA_FILE).read_bytes())
        except (FileNotFoundError, ValueError, NotADirectoryError):
            return None
        if not isinstance(metadata, dict):
            return None
        mv = ModelVersion.from_metadata(metadata, location="candidate")
        return CandidateSet(
            id=path.name,
            run_id=metadata.get("run_id"),
            trained_at=mv.training_date,
            kept_at=parse_time(metadata.get("kept_at")),
            kept_because=str(metadata.get("kept_because", "")),
            performance=mv.performance,
            gate=metadata.get("validation") if isinstance(metadata.get("validation"), dict) else {},
            metadata=metadata,
            files={n: path / n for n in C.SET_FILES if (path / n).exists()},
        )

    def approve_candidate(self, candidate_id: str, *, actor: str, reason: str | None) -> ModelVersion:
        """Promote a candidate (an admin's decision: it goes live even over a hold, which it releases)."""
        chosen = self.candidate(candidate_id)
        checksums = artifact_checksums(chosen.metadata)
        blobs: dict[str, bytes] = {}
        for name in C.MODEL_FILES:
            if name not in chosen.files:
                raise IntegrityError(f"candidate {candidate_id} is missing {name}; discard it")
            data = chosen.files[name].read_bytes()
            load_checked(name, data, (checksums.get(name) or {}).get("sha256"), self.provenance)
            blobs[name] = data
        fields = {
            k: v
            for k, v in chosen.metadata.items()
            if k not in ("candidate_id", "kept_because", "kept_at", "artifacts", "run_id", "trigger", "actor")
        }

        def done() -> None:
            shutil.rmtree(self.candidates_dir() / candidate_id, ignore_errors=True)

        return self._promote_blobs(
            blobs,
            fields,
            actor=actor,
            trigger="approval",
            reason=reason,
            details={"run_id": chosen.run_id, "candidate_id": candidate_id, "release_hold": True},
            deadline=None,
            respect_hold=False,
            manual=False,
            after=done,
        )

    def discard_candidate(self, candidate_id: str, *, actor: str, reason: str | None) -> CandidateSet:
        chosen = self.candidate(candidate_id)
        with self.lock.hold("discard candidate", actor, timeout=self.lock_timeout):
            # Set aside (one rename), record, then delete: an event that cannot be recorded puts the folder back,
            # so a discard is either audited or did not happen.
            folder = self.candidates_dir() / candidate_id
            aside = self.candidates_dir() / f"{C.TMP_PREFIX}discard-{candidate_id}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(folder, aside)
            try:
                if self.history is not None:
                    self.history.record_event(
                        "candidate",
                        actor=actor,
                        reason=reason,
                        details={"candidate_id": candidate_id, "run_id": chosen.run_id, "action": "discarded"},
                    )
            except BaseException:
                os.replace(aside, folder)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        log.info("model registry: candidate %s discarded by %s", candidate_id, actor)
        return chosen

    def restore(
        self,
        target: str,
        *,
        actor: str,
        reason: str | None = None,
        trust_unrecorded: bool = False,
        deadline: float | None = None,
        hold: bool = True,
        expect_live: str | None = None,
        yield_to_holds: bool = False,
    ) -> RestoreResult:
        """Make a backup set current (by timestamp or version), after checking it; the replaced set is backed up.

        A set whose files are in no recorded set is refused unless `trust_unrecorded` (an admin's explicit,
        audited decision): its checksums are then recorded and written into the restored metadata.
        With `expect_live` (an undo), the restore is refused unless that version is still the live one,
        checked under the lock: an undo never reverts a change somebody made after the one it undoes.
        With `yield_to_holds` (a rule acting), a hold placed by anyone else refuses it, also checked under the lock.
        """
        target = str(target).strip()
        with self._writing("restore", actor, details={"target": target}, deadline=deadline) as write:
            chosen = self._resolve_backup(target)
            checked = self._check_restorable(chosen, trust_unrecorded)
            previous = self._current_quiet()
            if expect_live is not None and (previous is None or previous.version != expect_live):
                raise Conflict(
                    f"version {expect_live} is no longer live (now: "
                    f"{previous.version if previous else 'none'}): somebody changed it since, so this restore "
                    "was not made; pick the set to restore on Backups"
                )
            hold_now = self.history.active_hold() if yield_to_holds and self.history is not None else None
            if hold_now is not None and hold_now.placed_by != actor:
                raise Conflict(
                    f"v{hold_now.version} is held by {hold_now.placed_by} since {hold_now.placed_at:%Y-%m-%d %H:%M} "
                    f"UTC: {actor} does not act over it, so this restore was not made"
                )
            held = self._backup_of_live()
            undo = held.timestamp if held is not None else write.stage_backup(taken={chosen.timestamp})
            metadata = dict(chosen.metadata or {})
            for name in C.MODEL_FILES:
                write.stage_copy(chosen.files[name], name)
            if trust_unrecorded:
                metadata["artifacts"] = checked
                write.stage_bytes(C.METADATA_FILE, json_bytes(metadata))
                blobs = {n: chosen.files[n].read_bytes() for n in C.MODEL_FILES} | {
                    C.METADATA_FILE: json_bytes(metadata)
                }
                write.stage_backup_of(blobs, taken={chosen.timestamp})  # the set as it now goes live
                if self.provenance is not None:
                    version = str(metadata.get("version"))
                    self.provenance.record(checked, version=version, source="trusted", actor=actor)
            else:
                write.stage_copy(chosen.files[C.METADATA_FILE], C.METADATA_FILE)
            restored = ModelVersion.from_metadata(metadata, location="current")
            details = {"restored_from": chosen.timestamp, "undo_backup": undo}
            if trust_unrecorded:
                details["trusted_unrecorded"] = True
            replaced = previous.version if previous else None
            # The hold is recorded with the event, under the lock a promotion checks it in; while the event is
            # pending every write (a promotion too) first records it or refuses, so a run that was already
            # training is kept as a candidate instead of undoing this restore.
            if hold and self.history is not None:
                details["hold"] = True
            event = J.PlannedEvent("restore", actor, replaced, restored.version, reason, details)
            pending = self._commit(write, event, rewrite_state=True)
            return RestoreResult(restored, replaced, chosen.timestamp, undo, audit_pending=pending)

    def backup_now(self, *, actor: str, reason: str | None = None, deadline: float | None = None) -> BackupSet:
        """Copy the current set to a new backup set."""
        with self._writing("backup", actor, deadline=deadline) as write:
            current = self.current()
            if current is None:
                raise NotFound("there is no current model to back up")
            ts = write.stage_backup()
            details = {"backup_timestamp": ts}
            event = J.PlannedEvent("backup", actor, current.version, current.version, reason, details)
            self._commit(write, event, rewrite_state=False)
            return self.backup(str(ts), verify=False)

    def delete_backup(
        self, timestamp: str, *, actor: str, reason: str | None = None, deadline: float | None = None
    ) -> BackupSet:
        """Remove every file of one backup set."""
        B.validate_timestamp(timestamp)
        with self._writing("delete_backup", actor, details={"timestamp": timestamp}, deadline=deadline) as write:
            target = self.backup(timestamp, verify=False)
            write.remove(target)
            files = sorted(p.name for p in target.files.values())
            details = {"timestamp": timestamp, "files": files, "bytes": target.size_bytes}
            self._commit(
                write,
                J.PlannedEvent("delete_backup", actor, target.version, None, reason, details),
                rewrite_state=False,
            )
            return target

    def cleanup_plan(self, keep: int | None = None) -> list[BackupSet]:
        """The backup sets a clean-up keeping the newest `keep` would remove (oldest last).

        The backup holding the live set is never among them: it is what a hand-made copy would fall back on.
        """
        keep = self.keep_backups if keep is None else keep
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise InvalidInput(f"keep must be a whole number of backup sets, 0 or more; got {keep!r}")
        live = self._backup_of_live()
        return [s for s in self.backups()[keep:] if live is None or s.timestamp != live.timestamp]

    def _backup_of_live(self) -> BackupSet | None:
        """A complete backup holding exactly the live set (its metadata file byte for byte), or None."""
        try:
            meta_bytes = self.path(C.METADATA_FILE).read_bytes()
        except FileNotFoundError:
            return None
        return self._backup_with_metadata(meta_bytes)

    def _backup_with_metadata(self, meta_bytes: bytes) -> BackupSet | None:
        """The newest complete backup set whose metadata file is these bytes."""
        wanted = sha256_bytes(meta_bytes)
        for listed in self.backups():  # from the index, newest first: usually the first one is it
            if not listed.complete:
                continue
            meta = listed.files[C.METADATA_FILE]
            try:
                if meta.stat().st_size != len(meta_bytes) or sha256_file(meta) != wanted:
                    continue
                found = self.backup(listed.timestamp, verify=False)  # as its files are now, not as listed
            except (FileNotFoundError, NotFound):
                continue
            if found.complete:
                return found
        return None

    def cleanup(
        self,
        keep: int | None = None,
        *,
        actor: str,
        reason: str | None = None,
        expected: list[str] | None = None,
        deadline: float | None = None,
    ) -> list[BackupSet]:
        """Remove all but the newest `keep` backup sets; `expected` guards against the list changing after a preview."""
        with self._writing("cleanup", actor, deadline=deadline) as write:
            plan = self.cleanup_plan(keep)
            if expected is not None and sorted(expected) != sorted(s.timestamp for s in plan):
                raise Conflict("the backups changed since the preview; review the new preview and confirm again")
            if plan:
                write.remove(*plan)
                self._commit(
                    write,
                    _cleanup_event(actor, keep if keep is not None else self.keep_backups, plan, reason=reason),
                    rewrite_state=False,
                )
            return plan

    def _retention(self) -> None:
        """After a promotion: keep the newest `keep_backups` sets, never the undo backup of the last restore."""
        protected = self._last_undo_backup()
        plan = [s for s in self.cleanup_plan() if s.timestamp != protected]
        if not plan:
            return
        write = J.StagedWrite(self.models_dir, "cleanup", self.clock())
        try:
            write.remove(*plan)
            event = _cleanup_event("retention", self.keep_backups, plan, automatic=True)
            self._commit(write, event, rewrite_state=False)
        except RegistryError as exc:  # the promotion stands; the next one tries again
            log.warning("model registry: automatic clean-up skipped: %s", exc.message)
        finally:
            write.discard()

    def _last_undo_backup(self) -> str | None:
        if self.history is None:
            return None
        last = next(iter(self.history.events(kinds=["restore"], limit=1)), None)
        return (last.details or {}).get("undo_backup") if last else None

    def directory_stamp(self) -> int:
        """Changes whenever a file is added to, removed from or replaced in the models directory."""
        try:
            return os.stat(self.models_dir).st_mtime_ns
        except FileNotFoundError:
            return 0

    def files_changed_at(self) -> dt.datetime | None:
        """When a file of the current set last changed."""
        mtimes = []
        for name in C.SET_FILES:
            try:
                mtimes.append(os.stat(self.path(name)).st_mtime)
            except FileNotFoundError:
                continue
        return dt.datetime.fromtimestamp(max(mtimes), dt.UTC) if mtimes else None

    def disk_usage(self) -> dict[str, int]:
        """Bytes used by the current set, by backup sets (from the index), and in total."""
        current = 0
        for name in C.SET_FILES:
            try:
                current += os.stat(self.path(name)).st_size
            except FileNotFoundError:
                continue
        backups = sum(s.size_bytes for s in self.backups())
        return {"current_bytes": current, "backup_bytes": backups, "total_bytes": current + backups}

    # ------------------------------------------------------ external changes
    def reconcile(self) -> ExternalChange | None:
        """Detect and record (once) a current set changed by hand.

        Not while a change is unfinished: whoever finishes it (settle, or the next write) rewrites the state first.
        """
        if self.pending() is not None or self._state_matches():
            return None
        try:
            with self.lock.hold("reconcile", "registry", timeout=0.5):
                return self._reconcile_locked()
        except Conflict:
            return None  # a write is running; it reconciles first itself

    def _state_matches(self) -> bool:
        try:
            meta_bytes = self.path(C.METADATA_FILE).read_bytes()
        except FileNotFoundError:
            return True
        return self._read_state().get("metadata_sha256") == sha256_bytes(meta_bytes)

    def _reconcile_locked(self) -> ExternalChange | None:
        meta_path = self.path(C.METADATA_FILE)
        state = self._read_state()
        try:
            meta_bytes = meta_path.read_bytes()
        except FileNotFoundError:
            return None
        if state.get("metadata_sha256") == sha256_bytes(meta_bytes):
            return None
        try:
            metadata = json.loads(meta_bytes)
        except ValueError:
            metadata = None
        metadata = metadata if isinstance(metadata, dict) else {}
        new_version = str(metadata["version"])[:32] if "version" in metadata else None
        if not state:
            # First sight of a directory the registry did not create: adopt it as the baseline.
            self._write_state(metadata, meta_bytes, bump=False)
            return None
        changed = [C.METADATA_FILE]
        for name in C.MODEL_FILES:
            path = self.path(name)
            known = (state.get("artifacts") or {}).get(name)
            if path.exists() and known and sha256_file(path) != known:
                changed.append(name)
        change = ExternalChange(state.get("version"), new_version, tuple(changed), self.clock())
        checksums = artifact_checksums(metadata)
        mismatched = [
            n
            for n in C.MODEL_FILES
            if n in checksums and self.path(n).exists() and checksums[n]["sha256"] != sha256_file(self.path(n))
        ]
        if self.history is not None and mismatched:
            source = self._backup_with_metadata(meta_bytes)
            if source is not None and all(sha256_file(source.files[n]) == checksums[n]["sha256"] for n in mismatched):
                self._complete_hand_restore(change, source, mismatched)
                return change
        if self.history is not None:
            # The event first: if the database cannot take it, the change is detected (and recorded) next time.
            self.history.record_event(
                "external_change",
                actor="external",
                from_version=change.from_version,
                to_version=change.to_version,
                reason="model files changed outside the registry (manual copy?)",
                details={"changed_files": list(change.changed_files), "files_not_matching_metadata": mismatched},
            )
        log.warning(
            "model registry: model files changed by hand: %s -> %s (%s)",
            change.from_version,
            change.to_version,
            ", ".join(changed),
        )
        self._write_state(metadata, meta_bytes, bump=False)
        return change

    def _complete_hand_restore(self, change: ExternalChange, source: BackupSet, missing: list[str]) -> None:
        """The guide's two-file `cp` restore: copy the files it left out from the same backup, audited."""
        write = J.StagedWrite(self.models_dir, "complete_restore", self.clock())
        try:
            for name in missing:
                write.stage_copy(source.files[name], name)
            reason = (
                f"hand-made restore of backup {source.timestamp} completed: "
                f"{', '.join(missing)} copied from the same backup"
            )
            details = {
                "completed_from": source.timestamp,
                "completed_files": missing,
                "changed_files": list(change.changed_files),
            }
            event = J.PlannedEvent(
                "external_change", "external", change.from_version, change.to_version, reason, details
            )
            self._commit(write, event, rewrite_state=True)
        finally:
            write.discard()
        log.warning("model registry: %s", reason)

    # ------------------------------------------------------------ internals
    def _refuse_identical(self, model_blobs: Mapping[str, bytes]) -> None:
        """Raise Unchanged when every artifact is byte-identical to the live set's (checked under the lock)."""
        live = self._current_quiet()
        recorded = (live.metadata.get("artifacts") if live is not None else None) or {}
        if not model_blobs or not all(
            isinstance(recorded.get(name), Mapping) and recorded[name].get("sha256") == sha256_bytes(data)
            for name, data in model_blobs.items()
        ):
            return
        raise Unchanged(
            f"the new model's files are byte-identical to live version {live.version} (same data and parameters): "
            "nothing to promote, no version or backup made"
        )

    def _current_quiet(self) -> ModelVersion | None:
        try:
            return self.current()
        except IntegrityError:
            return None

    def _promotions(self) -> tuple[Any, list[tuple[str, dict[str, Any], dt.datetime | None, ModelVersion]]]:
        """A key that changes with the promotions (None without history) and each promotion's
        (version, metadata, promoted_at, parsed metadata), oldest first."""
        if self.event_index is None:
            return None, []
        try:
            promotions = self.event_index.snapshot().promotions
        except Unavailable as exc:
            log.warning("history unavailable: %s", exc)
            return None, []
        key = (len(promotions), promotions[-1].event.id if promotions else None)
        return key, [(p.version, p.model.metadata, p.event.at, p.model) for p in promotions if p.version]

    def _versions_seen(self) -> set[str]:
        """Versions this registry wrote: numbering continues after them, never after a version edited by hand."""
        seen: set[str] = set()
        state_max = self._read_state().get("max_version")
        if Version.is_valid(state_max):
            seen.add(state_max)
        if self.history is not None:
            seen |= self.history.versions_seen()
            if self.provenance is not None:
                seen |= self.provenance.versions()
        if self.history is None or not seen:
            # No history yet (a directory made by an older tool): its plausible versions are the baseline.
            current = self._current_quiet()
            on_disk = [s.version for s in self.backups()] + [current.version if current else None]
            seen |= {v for v in on_disk if Version.is_valid(v)}
        return seen

    def _resolve_backup(self, target: str) -> BackupSet:
        if C.BACKUP_TS_RE.match(target):
            return self.backup(target, verify=True)
        if Version.is_valid(target):
            current = self._current_quiet()
            if current is not None and current.version == target:
                raise Conflict(f"version {target} is already the current model; nothing to restore")
            for s in self.backups():
                if s.version == target and s.complete and s.integrity in ("ok", "unverified"):
                    return self.backup(s.timestamp, verify=True)
            raise NotFound(
                f"no complete backup holds version {target}; list restorable versions with `manage_models.py backups`"
            )
        shown = repr(target)[:40]
        raise InvalidInput(f"{shown} is neither a backup timestamp (YYYYMMDD_HHMMSS) nor a version (MAJOR.MINOR.PATCH)")

    def _check_restorable(self, chosen: BackupSet, trust_unrecorded: bool) -> dict[str, dict[str, Any]]:
        """IntegrityError unless every file of the set is the one its metadata and provenance name; its checksums."""
        if chosen.missing:
            raise IntegrityError(
                f"backup {chosen.timestamp} is incomplete (missing {', '.join(chosen.missing)}); pick a complete set"
            )
        if chosen.integrity not in ("ok", "unverified"):
            problems = "; ".join(chosen.problems)
            raise IntegrityError(f"backup {chosen.timestamp} failed its checks: {problems}; pick another set")
        if chosen.integrity == "unverified" and not trust_unrecorded:
            raise IntegrityError(
                f"backup {chosen.timestamp} has no checksums, so where its files came from is unknown and they are "
                "not loaded; an admin can restore it anyway, explicitly trusting it (audited)"
            )
        checksums = artifact_checksums(chosen.metadata or {})
        checked: dict[str, dict[str, Any]] = {}
        for name in C.MODEL_FILES:
            data = chosen.files[name].read_bytes()
            try:
                if trust_unrecorded:
                    unpickle(name, data)
                else:
                    load_checked(name, data, (checksums.get(name) or {}).get("sha256"), self.provenance)
            except IntegrityError as exc:
                raise IntegrityError(f"backup {chosen.timestamp}: {exc.message}") from None
            checked[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
        return checked

    def _recover(self, *, record: bool = True) -> None:
        """Finish (roll forward) a change a crash interrupted, record its event, and drop orphaned temp files.

        Called with the registry lock held. Unavailable when the files are done but the event still cannot be
        recorded: the journal stays, and no new change starts until it is.
        """
        entry = J.read_journal(self.models_dir)
        if entry is not None:
            J.roll_forward(self.models_dir, entry)
            if entry.rewrite_state:
                self._state_from_disk(bump=True)
            self._index_in_step()
            who = entry.event.actor if entry.event else "?"
            log.warning("model registry: finished an interrupted %s by %s (started %s)", entry.op, who, entry.at)
            if not record:
                return
            pending = self._record(entry)
            if pending is not None:
                raise Unavailable(
                    f"an interrupted {entry.op} by {who} is finished on disk, but its audit event cannot be recorded "
                    f"yet ({pending}); no other change is made until it is: try again when the database answers"
                )
        for dir_entry in os.scandir(self.models_dir):
            if dir_entry.name.startswith(C.TMP_PREFIX):
                remove_quietly(Path(dir_entry.path))

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path(C.STATE_FILE).read_text())
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def _state_from_disk(self, *, bump: bool) -> None:
        """Remember the current set the registry itself just installed (what reconcile compares against)."""
        try:
            meta_bytes = self.path(C.METADATA_FILE).read_bytes()
            metadata = json.loads(meta_bytes)
        except (FileNotFoundError, ValueError):
            return
        self._write_state(metadata if isinstance(metadata, dict) else {}, meta_bytes, bump=bump)

    def _write_state(self, metadata: Mapping[str, Any], metadata_bytes: bytes, *, bump: bool) -> None:
        """`bump` raises the highest version seen: only for sets the registry wrote, never for hand-made ones."""
        state = self._read_state()
        version = metadata.get("version")
        max_version = state.get("max_version")
        if (
            bump
            and Version.is_valid(version)
            and (not Version.is_valid(max_version) or Version.parse(version) > Version.parse(max_version))
        ):
            max_version = version
        checksums = {n: a["sha256"] for n, a in artifact_checksums(metadata).items()}
        atomic_write_json(
            self.path(C.STATE_FILE),
            {
                "metadata_sha256": sha256_bytes(metadata_bytes),
                "version": str(version)[:32] if version is not None else None,
                "max_version": max_version,
                "artifacts": checksums,
            },
        )


def _stable_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Training parameters without what differs on every run (the split's dates)."""
    return {k: v for k, v in parameters.items() if k != "split"}


def _version_change(previous: ModelVersion | None, fields: Mapping[str, Any]) -> str:
    """major when the feature set changed, minor when the training parameters did, else patch."""
    if previous is None:
        return "patch"
    if list(previous.feature_columns) != list(fields.get("feature_columns") or []):
        return "major"
    parameters = fields.get("training_parameters")
    if _stable_parameters(previous.parameters) != _stable_parameters(
        parameters if isinstance(parameters, Mapping) else {}
    ):
        return "minor"
    return "patch"


def _cleanup_event(
    actor: str, keep: int, plan: list[BackupSet], *, automatic: bool = False, reason: str | None = None
) -> J.PlannedEvent:
    details: dict[str, Any] = {
        "keep": keep,
        "removed": [s.timestamp for s in plan],
        "versions": [s.version for s in plan],
        "bytes": sum(s.size_bytes for s in plan),
    }
    if automatic:
        details["automatic"] = True
    return J.PlannedEvent("cleanup", actor, reason=reason, details=details)


EntryRecord = tuple[Any, Any, tuple[Any, ...], VersionEntry]  # metadata, parsed metadata, other inputs, the entry


def _entry(
    previous: EntryRecord | None,
    version: str,
    meta: Mapping[str, Any],
    promoted_at: dt.datetime | None,
    by_version: dict[str, list[BackupSet]],
    current: ModelVersion | None,
    mv: ModelVersion | None = None,
) -> EntryRecord:
    """A version's entry, with what it is made from; `previous` (the last one made) is kept when that is the same:
    the same metadata objects (the promotion and backup indexes keep them), promotion time, backups and liveness.
    After a promote only the new version's entry is made (1,000 versions: ~23 ms -> ~3 ms)."""
    inputs = (promoted_at, tuple(s.timestamp for s in by_version.get(version, [])), _is(current, version))
    if previous is not None and previous[0] is meta and previous[1] is mv and previous[2] == inputs:
        return previous
    parsed = mv or ModelVersion.from_metadata(meta, location="history")
    entry = VersionEntry(
        version=version,
        trained_at=parsed.training_date,
        promoted_at=promoted_at or parse_time(meta.get("promoted_at")),
        performance=parsed.performance,
        data_source=parsed.data_source,
        trigger=parsed.trigger,
        actor=parsed.actor,
        is_current=inputs[2],
        backup_timestamps=inputs[1],
        metadata=meta if meta else None,  # shared with the promotion index: domain objects are never changed
        previous_version=parsed.previous_version,
    )
    return (meta, mv, inputs, entry)


def _is(current: ModelVersion | None, version: str) -> bool:
    """Whether `version` is the live one."""
    return current is not None and current.version == version


@functools.lru_cache(maxsize=65_536)  # sorting 1,000 versions parses each of them once per process
def _version_key(version: str) -> tuple[int, int, int]:
    try:
        v = Version.parse(version)
        return (v.major, v.minor, v.patch)
    except RegistryError:
        return (-1, -1, -1)


def compare_versions(a: ModelVersion, b: ModelVersion) -> Comparison:
    """Metric changes (a relative to b), plus data and parameter differences."""
    metrics: dict[str, MetricChange] = {}
    for name in C.PERFORMANCE_METRICS:
        cur, prev = a.performance.get(name), b.performance.get(name)
        if cur is None or prev is None:
            metrics[name] = MetricChange(cur, prev, None, None, None)
            continue
        diff = cur - prev
        pct = (diff / prev * 100.0) if prev != 0 else None
        metrics[name] = MetricChange(cur, prev, round(diff, 6), None if pct is None else round(pct, 4), diff > 0)
    a_stats, b_stats = a.data_stats, b.data_stats
    data = {k: (a_stats.get(k), b_stats.get(k)) for k in COMPARED_DATA_KEYS if k in a_stats or k in b_stats}
    data["data_source"] = (a.data_source, b.data_source)
    data["training_duration_seconds"] = (
        a.metadata.get("training_duration_seconds"),
        b.metadata.get("training_duration_seconds"),
    )
    data["training_date"] = (a.metadata.get("training_date"), b.metadata.get("training_date"))
    a_params, b_params = a.parameters, b.parameters
    params = {k: (a_params.get(k), b_params.get(k)) for k in sorted(set(a_params) | set(b_params))}
    return Comparison(a, b, metrics, data, params)
