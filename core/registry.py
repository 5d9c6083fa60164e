"""The model registry: current set, versions, backups, promote, restore, delete, clean-up, compare."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from core import backups as B
from core import constants as C
from core.db import Database
from core.domain import (
    ArtifactStatus,
    BackupSet,
    Comparison,
    EventRecord,
    Health,
    MetricChange,
    ModelVersion,
    RestoreResult,
    VersionEntry,
    parse_time,
)
from core.errors import Conflict, IntegrityError, InvalidInput, NotFound, RegistryError, Unavailable
from core.history import History
from core.locking import OperationLock, registry_lock
from core.storage import (
    atomic_write_json,
    copy_to_temp,
    fsync_dir,
    json_bytes,
    remove_quietly,
    sha256_bytes,
    sha256_file,
    write_temp_bytes,
)
from core.versions import Version, next_version

log = logging.getLogger(__name__)

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
    """The current set, loaded after its checksums were verified."""

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
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


class Registry:
    """Domain verbs over the models directory, with history in the database when one is given."""

    def __init__(
        self,
        models_dir: Path | str,
        db: Database | None = None,
        *,
        lock_timeout: float = 10.0,
        keep_backups: int = C.DEFAULT_KEEP_BACKUPS,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.db = db
        self.history = History(db) if db is not None else None
        self.lock_timeout = lock_timeout
        self.keep_backups = keep_backups
        self.clock = clock
        self.lock: OperationLock = registry_lock(self.models_dir, db.engine if db is not None else None)

    @classmethod
    def from_settings(cls, settings: Any, db: Database | None = None) -> Registry:
        return cls(
            settings.models_dir, db, lock_timeout=settings.lock_timeout_seconds, keep_backups=settings.keep_backups
        )

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        return self.models_dir / name

    # ------------------------------------------------------------------ reads
    def read_current_metadata(self) -> dict[str, Any] | None:
        """The current metadata, None when there is no model, IntegrityError when the file is not valid JSON."""
        path = self.path(C.METADATA_FILE)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(
                f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                "restore a backup with `manage_models.py restore <timestamp>` or retrain with `train_models.py --force`"
            ) from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{path.name} does not hold a JSON object; restore a backup or retrain")
        return data

    def current(self) -> ModelVersion | None:
        """The live model's version and metadata, or None when no model has been trained yet."""
        metadata = self.read_current_metadata()
        if metadata is None:
            return None
        return ModelVersion.from_metadata(metadata, location="current")

    def health(self, *, load: bool = False) -> Health:
        """Check every file of the current set against the metadata (sha256, size; optionally load matching ones)."""
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
        expected = (metadata or {}).get("artifacts") or {}
        if metadata is not None:
            version = str(metadata.get("version"))
            if not expected:
                problems.append(
                    f"{C.METADATA_FILE} has no artifact checksums (written by an older tool); retrain to add them"
                )
        for name in C.MODEL_FILES:
            path = self.path(name)
            exp = expected.get(name) or {}
            if not path.exists():
                artifacts.append(ArtifactStatus(name, False, None, None, exp.get("sha256"), None, "missing"))
                problems.append(f"{name} is missing")
                continue
            actual = sha256_file(path)
            size = path.stat().st_size
            problem = None
            if exp.get("sha256") and exp["sha256"] != actual:
                problem = "sha256 differs from the metadata (changed or copied by hand?)"
                problems.append(
                    f"{name} does not match {C.METADATA_FILE} (sha256 {actual[:12]}… vs {exp['sha256'][:12]}…); "
                    "restore a whole set with `manage_models.py restore <timestamp>`"
                )
            loadable = None
            # Only a file whose checksum matches the metadata is ever unpickled: a planted file never runs here.
            if load and problem is None and exp.get("sha256"):
                try:
                    joblib.load(path)
                    loadable = True
                except Exception as exc:  # any unpickling failure means the file is unusable
                    loadable = False
                    problem = problem or f"cannot be loaded: {type(exc).__name__}"
                    problems.append(f"{name} cannot be loaded ({type(exc).__name__}: {exc})")
            artifacts.append(ArtifactStatus(name, True, size, actual, exp.get("sha256"), loadable, problem))
        return Health(not problems, version, tuple(artifacts), tuple(problems), self.clock())

    def load_models(self) -> LoadedModels:
        """Load the current set; refuses (IntegrityError) when a checksum does not match the metadata."""
        metadata = self.read_current_metadata()
        if metadata is None:
            raise NotFound("no model has been trained yet; run `python scripts/train_models.py --force`")
        expected = metadata.get("artifacts") or {}
        loaded = {}
        for name in C.MODEL_FILES:
            path = self.path(name)
            if not path.exists():
                raise IntegrityError(f"{name} is missing from {self.models_dir}; restore a backup set or retrain")
            data = path.read_bytes()
            exp = (expected.get(name) or {}).get("sha256")
            if exp and sha256_bytes(data) != exp:
                raise IntegrityError(
                    f"{name} does not match the checksum in {C.METADATA_FILE}; "
                    "restore a whole backup set with `manage_models.py restore <timestamp>` or retrain"
                )
            try:
                loaded[name] = joblib.load(io.BytesIO(data))
            except Exception as exc:
                raise IntegrityError(
                    f"{name} cannot be loaded ({type(exc).__name__}); restore a backup set or retrain"
                ) from None
        return LoadedModels(
            loaded[C.FAILURE_MODEL_FILE], loaded[C.ANOMALY_MODEL_FILE], metadata, str(metadata.get("version"))
        )

    def backups(self) -> list[BackupSet]:
        """Every backup set, newest first; broken sets are listed as incomplete, never skipped."""
        return B.list_sets(self.models_dir)

    def backup(self, timestamp: str, *, verify: bool = True) -> BackupSet:
        return B.get_set(self.models_dir, timestamp, verify=verify)

    def versions(self) -> list[VersionEntry]:
        """Every version ever promoted (from history), newest first, with the backups that still hold it."""
        current = self._current_quiet()
        sets = self.backups()
        by_version: dict[str, list[BackupSet]] = {}
        for s in sets:
            if s.version:
                by_version.setdefault(s.version, []).append(s)
        entries: dict[str, VersionEntry] = {}
        for version, meta, promoted_at in self._promoted_history():
            entries[version] = self._entry(version, meta, promoted_at, by_version, current)
        for version, group in by_version.items():
            if version not in entries:
                entries[version] = self._entry(version, group[0].metadata or {}, None, by_version, current)
        if current is not None and current.version not in entries:
            entries[current.version] = self._entry(current.version, current.metadata, None, by_version, current)
        return sorted(entries.values(), key=lambda e: _version_key(e.version), reverse=True)

    def _entry(
        self,
        version: str,
        meta: Mapping[str, Any],
        promoted_at: dt.datetime | None,
        by_version: dict[str, list[BackupSet]],
        current: ModelVersion | None,
    ) -> VersionEntry:
        mv = ModelVersion.from_metadata(meta, location="history")
        return VersionEntry(
            version=version,
            trained_at=mv.training_date,
            promoted_at=promoted_at or parse_time(meta.get("promoted_at")),
            performance=mv.performance,
            data_source=mv.data_source,
            trigger=mv.trigger,
            actor=mv.actor,
            is_current=current is not None and current.version == version,
            backup_timestamps=tuple(s.timestamp for s in by_version.get(version, [])),
            metadata=dict(meta) if meta else None,
            previous_version=mv.previous_version,
        )

    def get_version(self, version: str) -> ModelVersion:
        """A version's metadata: from the current set, the newest backup holding it, or history."""
        Version.parse(version)
        current = self._current_quiet()
        if current is not None and current.version == version:
            return current
        for s in self.backups():
            if s.version == version and s.metadata is not None:
                return ModelVersion.from_metadata(s.metadata, location="backup", backup_timestamp=s.timestamp)
        for known, meta, _ in self._promoted_history():
            if known == version and meta:
                return ModelVersion.from_metadata(meta, location="history")
        raise NotFound(f"version {version} is not known; list versions with `manage_models.py versions`")

    def compare(self, a: str | None = None, b: str | None = None) -> Comparison:
        """Compare two versions (default: the current model against the newest backup)."""
        if a is None:
            left = self.current()
            if left is None:
                raise NotFound("no current model to compare; train one first")
        else:
            left = self.get_version(a)
        if b is None:
            newest = next((s for s in self.backups() if s.metadata is not None), None)
            if newest is None:
                raise NotFound("there is no backup to compare with yet: a backup appears after the second promotion")
            right = ModelVersion.from_metadata(newest.metadata, location="backup", backup_timestamp=newest.timestamp)
        else:
            right = self.get_version(b)
        return compare_versions(left, right)

    # ------------------------------------------------------------------ writes
    @contextmanager
    def _writing(self, op: str, actor: str, details: dict[str, Any] | None = None) -> Iterator[_Write]:
        """The one write skeleton: lock, finish an interrupted swap, record hand-made changes, stage, clean up.

        The body stages files and swaps them; anything it staged but did not swap is removed if it raises.
        """
        with self.lock.hold(op, actor, timeout=self.lock_timeout, details=details):
            self._recover()
            self.reconcile(locked=True)
            write = _Write(self, op)
            try:
                yield write
            finally:
                write.discard()

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
    ) -> ModelVersion:
        """Back up the current set, then atomically install the new one under a new, never-used version."""
        with self._writing("promote", actor) as write:
            previous = self._current_quiet()
            previous_columns = list(previous.feature_columns) if previous else None
            features_changed = previous is not None and previous_columns != list(
                metadata_fields.get("feature_columns") or []
            )
            version = str(next_version(self._versions_seen(), features_changed=features_changed))
            blobs = {C.FAILURE_MODEL_FILE: _dump_bytes(failure_model), C.ANOMALY_MODEL_FILE: _dump_bytes(anomaly_model)}
            now = self.clock()
            metadata = dict(metadata_fields)
            metadata.update(
                version=version,
                previous_version=previous.version if previous else None,
                trigger=trigger,
                actor=actor,
                promoted_at=now.isoformat(),
                artifacts={n: {"sha256": sha256_bytes(b), "bytes": len(b)} for n, b in blobs.items()},
            )
            blobs[C.METADATA_FILE] = json_bytes(metadata)
            for name, data in blobs.items():
                write.stage_bytes(name, data)
            backup_ts = write.backup_current(now)
            write.swap()
            self._write_state(metadata, blobs[C.METADATA_FILE])
            self._event(
                "promote",
                actor=actor,
                from_version=previous.version if previous else None,
                to_version=version,
                reason=reason,
                details={"backup_timestamp": backup_ts, "run_id": run_id, "trigger": trigger, "metadata": metadata},
            )
            return ModelVersion.from_metadata(metadata, location="current")

    def restore(self, target: str, *, actor: str, reason: str | None = None) -> RestoreResult:
        """Make a backup set current (by timestamp or version), after checking it; the replaced set is backed up."""
        target = str(target).strip()
        with self._writing("restore", actor, details={"target": target}) as write:
            chosen = self._resolve_backup(target)
            self._check_restorable(chosen)
            previous = self._current_quiet()
            for name in C.SET_FILES:
                write.stage_copy(chosen.files[name], name)
            undo = write.backup_current(self.clock(), taken={chosen.timestamp})
            write.swap()
            self._write_state(chosen.metadata or {}, self.path(C.METADATA_FILE).read_bytes())
            result = RestoreResult(
                restored=ModelVersion.from_metadata(chosen.metadata or {}, location="current"),
                replaced_version=previous.version if previous else None,
                source_backup=chosen.timestamp,
                undo_backup=undo,
            )
            self._event(
                "restore",
                actor=actor,
                from_version=result.replaced_version,
                to_version=result.restored.version,
                reason=reason,
                details={"restored_from": chosen.timestamp, "undo_backup": undo},
            )
            return result

    def backup_now(self, *, actor: str, reason: str | None = None) -> BackupSet:
        """Copy the current set to a new backup set."""
        with self._writing("backup", actor) as write:
            current = self.current()
            if current is None:
                raise NotFound("there is no current model to back up")
            ts = write.backup_current(self.clock())
            self._event(
                "backup",
                actor=actor,
                from_version=current.version,
                to_version=current.version,
                reason=reason,
                details={"backup_timestamp": ts},
            )
            return self.backup(str(ts), verify=False)

    def delete_backup(self, timestamp: str, *, actor: str, reason: str | None = None) -> BackupSet:
        """Remove every file of one backup set."""
        B.validate_timestamp(timestamp)
        with self._writing("delete_backup", actor, details={"timestamp": timestamp}) as write:
            target = self.backup(timestamp, verify=False)
            write.remove(target)
            self._event(
                "delete_backup",
                actor=actor,
                from_version=target.version,
                reason=reason,
                details={
                    "timestamp": timestamp,
                    "files": sorted(p.name for p in target.files.values()),
                    "bytes": target.size_bytes,
                },
            )
            return target

    def cleanup_plan(self, keep: int | None = None) -> list[BackupSet]:
        """The backup sets a clean-up keeping the newest `keep` would remove (oldest last)."""
        keep = self.keep_backups if keep is None else keep
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise InvalidInput(f"keep must be a whole number of backup sets, 0 or more; got {keep!r}")
        return self.backups()[keep:]

    def cleanup(
        self, keep: int | None = None, *, actor: str, dry_run: bool = False, expected: list[str] | None = None
    ) -> list[BackupSet]:
        """Remove all but the newest `keep` backup sets; `expected` guards against the list changing after a preview."""
        if dry_run:
            return self.cleanup_plan(keep)
        with self._writing("cleanup", actor) as write:
            plan = self.cleanup_plan(keep)
            if expected is not None and sorted(expected) != sorted(s.timestamp for s in plan):
                raise Conflict("the backups changed since the preview; review the new preview and confirm again")
            write.remove(*plan)
            if plan:
                self._event(
                    "cleanup",
                    actor=actor,
                    details={
                        "keep": self.keep_backups if keep is None else keep,
                        "removed": [s.timestamp for s in plan],
                        "versions": [s.version for s in plan],
                        "bytes": sum(s.size_bytes for s in plan),
                    },
                )
            return plan

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
        """Bytes used by the current set, by backups, and in total."""
        current = backups = 0
        with os.scandir(self.models_dir) as entries:
            for entry in entries:
                if not entry.is_file():
                    continue
                size = entry.stat().st_size
                if C.BACKUP_MARKER in entry.name:
                    backups += size
                elif entry.name in C.SET_FILES:
                    current += size
        return {"current_bytes": current, "backup_bytes": backups, "total_bytes": current + backups}

    # ------------------------------------------------------ external changes
    def reconcile(self, *, locked: bool = False) -> ExternalChange | None:
        """Detect a current set changed by hand since the registry last wrote it; record it once as external_change."""
        meta_path = self.path(C.METADATA_FILE)
        state = self._read_state()
        try:
            meta_bytes = meta_path.read_bytes()
        except FileNotFoundError:
            return None
        actual_sha = sha256_bytes(meta_bytes)
        if state.get("metadata_sha256") == actual_sha:
            return None
        if not locked:
            try:
                with self.lock.hold("reconcile", "registry", timeout=0.5):
                    return self.reconcile(locked=True)
            except Conflict:
                return None
        try:
            metadata = json.loads(meta_bytes)
            new_version = str(metadata.get("version")) if isinstance(metadata, dict) else None
        except ValueError:
            metadata, new_version = None, None
        if not state:
            # First sight of a directory the registry did not create: adopt it as the baseline.
            self._write_state(metadata if isinstance(metadata, dict) else {}, meta_bytes)
            return None
        changed = [C.METADATA_FILE]
        expected = (metadata or {}).get("artifacts") if isinstance(metadata, dict) else None
        for name in C.MODEL_FILES:
            path = self.path(name)
            known = (state.get("artifacts") or {}).get(name)
            if path.exists() and known and sha256_file(path) != known:
                changed.append(name)
        change = ExternalChange(state.get("version"), new_version, tuple(changed), self.clock())
        mismatched = [
            n
            for n in C.MODEL_FILES
            if isinstance(expected, dict)
            and self.path(n).exists()
            and (expected.get(n) or {}).get("sha256") not in (None, sha256_file(self.path(n)))
        ]
        self._write_state(metadata if isinstance(metadata, dict) else {}, meta_bytes)
        self._event(
            "external_change",
            actor="external",
            from_version=change.from_version,
            to_version=change.to_version,
            reason="model files changed outside the registry (manual copy?)",
            details={"changed_files": list(change.changed_files), "files_not_matching_metadata": mismatched},
        )
        return change

    # ------------------------------------------------------------ internals
    def _current_quiet(self) -> ModelVersion | None:
        try:
            return self.current()
        except IntegrityError:
            return None

    def _promoted_history(self) -> list[tuple[str, dict[str, Any], dt.datetime | None]]:
        """(version, metadata, promoted_at) for every promotion the database remembers, oldest first."""
        if self.history is None:
            return []
        try:
            events = self.history.events(kinds=["promote"], ascending=True, limit=1_000_000)
        except Unavailable as exc:
            log.warning("history unavailable: %s", exc)
            return []
        return [(e.to_version, dict(e.details.get("metadata") or {}), e.at) for e in events if e.to_version]

    def _versions_seen(self) -> set[str]:
        seen: set[str] = set()
        state = self._read_state()
        seen.update(v for v in (state.get("max_version"), state.get("version")) if v)
        current = self._current_quiet()
        if current is not None:
            seen.add(current.version)
        seen.update(s.version for s in self.backups() if s.version)
        if self.history is not None:
            seen |= self.history.versions_seen()
        return seen

    def _resolve_backup(self, target: str) -> BackupSet:
        if C.BACKUP_TS_RE.match(target):
            return self.backup(target, verify=True)
        if Version.is_valid(target):
            current = self._current_quiet()
            if current is not None and current.version == target:
                raise Conflict(f"version {target} is already the current model; nothing to restore")
            for s in self.backups():
                if s.version == target and s.restorable:
                    return self.backup(s.timestamp, verify=True)
            raise NotFound(
                f"no complete backup holds version {target}; list restorable versions with `manage_models.py backups`"
            )
        raise InvalidInput(
            f"{target!r} is neither a backup timestamp (YYYYMMDD_HHMMSS) nor a version (MAJOR.MINOR.PATCH)"
        )

    def _check_restorable(self, chosen: BackupSet) -> None:
        if chosen.missing:
            raise IntegrityError(
                f"backup {chosen.timestamp} is incomplete (missing {', '.join(chosen.missing)}); pick a complete set"
            )
        if chosen.integrity not in ("ok", "unverified"):
            raise IntegrityError(
                f"backup {chosen.timestamp} failed its checks: {'; '.join(chosen.problems)}; pick another set"
            )
        for name in C.MODEL_FILES:
            try:
                joblib.load(chosen.files[name])
            except Exception as exc:
                raise IntegrityError(
                    f"backup {chosen.timestamp}: {name} cannot be loaded ({type(exc).__name__}); pick another set"
                ) from None

    def _recover(self) -> None:
        """Finish (roll forward) a swap a crash interrupted, and drop orphaned temp files."""
        journal = self.path(C.JOURNAL_FILE)
        if journal.exists():
            try:
                entries = json.loads(journal.read_text())["staged"]
            except (ValueError, KeyError, TypeError):
                entries = []
            for tmp_name, final_name in entries:
                tmp = self.path(tmp_name)
                if tmp.exists():
                    os.replace(tmp, self.path(final_name))
            fsync_dir(self.models_dir)
            remove_quietly(journal)
            log.warning("completed an interrupted registry operation from %s", journal)
        for entry in os.scandir(self.models_dir):
            if entry.name.startswith(C.TMP_PREFIX):
                remove_quietly(Path(entry.path))

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path(C.STATE_FILE).read_text())
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, metadata: Mapping[str, Any], metadata_bytes: bytes) -> None:
        state = self._read_state()
        version = metadata.get("version")
        max_version = state.get("max_version")
        if Version.is_valid(version) and (
            not Version.is_valid(max_version) or Version.parse(version) > Version.parse(max_version)
        ):
            max_version = version
        artifacts = {n: a.get("sha256") for n, a in (metadata.get("artifacts") or {}).items() if isinstance(a, dict)}
        atomic_write_json(
            self.path(C.STATE_FILE),
            {
                "metadata_sha256": sha256_bytes(metadata_bytes),
                "version": version,
                "max_version": max_version,
                "artifacts": artifacts,
            },
        )

    def _event(self, kind: str, **kwargs: Any) -> EventRecord | None:
        if self.history is None:
            return None
        try:
            return self.history.record_event(kind, **kwargs)
        except Unavailable as exc:
            # The files changed already; losing the audit row must not undo that, but it must be visible.
            log.error("could not record %s event: %s", kind, exc)
            return None


class _Write:
    """The staging area of one registry write: temp files beside their targets, swapped together under a journal."""

    def __init__(self, registry: Registry, op: str) -> None:
        self.registry = registry
        self.op = op
        self.staged: list[tuple[Path, Path]] = []

    def stage_bytes(self, name: str, data: bytes) -> None:
        target = self.registry.path(name)
        self.staged.append((write_temp_bytes(target, data), target))

    def stage_copy(self, source: Path, name: str) -> None:
        target = self.registry.path(name)
        self.staged.append((copy_to_temp(source, target), target))

    def backup_current(self, now: dt.datetime, taken: set[str] | None = None) -> str | None:
        """Copy whichever current files exist to a new backup set; its timestamp, or None if there was nothing."""
        models_dir = self.registry.models_dir
        present = [n for n in C.SET_FILES if (models_dir / n).exists()]
        if not present:
            return None
        ts = B.unique_timestamp(models_dir, now, taken)
        copies: list[tuple[Path, Path]] = []
        try:
            for name in present:
                final = models_dir / B.backup_name(name, ts)
                copies.append((copy_to_temp(models_dir / name, final), final))
        except BaseException:
            for tmp, _ in copies:
                remove_quietly(tmp)
            raise
        for tmp, final in copies:
            os.replace(tmp, final)
        fsync_dir(models_dir)
        return ts

    def swap(self) -> None:
        """Install every staged file; a journal lets the next writer finish a swap a crash interrupted."""
        registry = self.registry
        journal = registry.path(C.JOURNAL_FILE)
        entries = [[tmp.name, final.name] for tmp, final in self.staged]
        atomic_write_json(journal, {"op": self.op, "at": registry.clock().isoformat(), "staged": entries})
        # From here the staged files belong to the journal: a crash is finished (rolled forward) by the next writer.
        staged, self.staged = self.staged, []
        for tmp, final in staged:
            os.replace(tmp, final)
        fsync_dir(registry.models_dir)
        remove_quietly(journal)
        fsync_dir(registry.models_dir)

    def remove(self, *sets: BackupSet) -> None:
        """Delete every file of these backup sets."""
        for backup_set in sets:
            for path in backup_set.files.values():
                remove_quietly(path)
        fsync_dir(self.registry.models_dir)

    def discard(self) -> None:
        """Remove staged files that were never swapped in nor journaled (the body raised before the swap)."""
        for tmp, _ in self.staged:
            remove_quietly(tmp)
        self.staged = []


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
