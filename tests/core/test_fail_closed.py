"""Fail closed: planted files never run, unaudited changes are never silent, bad files never stop the tools."""

from __future__ import annotations

import json
import shutil
import sqlite3

import joblib
import pytest

from core import constants as C
from core.errors import IntegrityError, Unavailable
from core.identity import local_principal
from core.modelops import ModelOps
from core.storage import sha256_bytes
from tests.factories import promote


class Planted:
    """Unpickling this creates a file: proof that a planted pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


@pytest.fixture
def ops(settings):
    ops = ModelOps(settings)
    yield ops
    ops.dispose()


def plant(path, marker, metadata_path=None) -> None:
    """Replace a model file with a pickle that runs code, and (optionally) make its metadata agree with it."""
    joblib.dump(Planted(str(marker)), path)
    if metadata_path is not None:
        meta = json.loads(metadata_path.read_text())
        data = path.read_bytes()
        meta["artifacts"][path.name.split(C.BACKUP_MARKER)[0]] = {"sha256": sha256_bytes(data), "bytes": len(data)}
        metadata_path.write_text(json.dumps(meta))


def test_a_planted_pickle_with_matching_metadata_never_runs(ops, settings, tmp_path):
    promote(ops.registry, seed=1)
    marker = tmp_path / "planted-code-ran"
    plant(settings.models_dir / C.FAILURE_MODEL_FILE, marker, settings.models_dir / C.METADATA_FILE)
    report = ops.status()
    assert any("not a file this registry wrote" in p for p in report.problems) and report.level == "red"
    with pytest.raises(IntegrityError, match="not a file this registry wrote"):
        ops.registry.load_models()
    assert not ops.registry.health(load=True).ok
    assert not marker.exists(), "a planted pickle was unpickled"


def test_a_set_without_checksums_is_restored_only_when_an_admin_trusts_it(ops, settings, tmp_path):
    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    [backup] = [b for b in ops.backups() if b.version == "1.0.0"]
    meta_path = backup.files[C.METADATA_FILE]
    meta = json.loads(meta_path.read_text())
    del meta["artifacts"]  # as an older tool wrote it
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="no checksums"):
        ops.restore(backup.timestamp, actor=local_principal("alice"), reason="rollback")
    assert ops.current().version == "1.0.1"

    result = ops.restore(
        backup.timestamp, actor=local_principal("admin"), reason="made by the old tool", trust_unrecorded=True
    )
    assert result.restored.version == "1.0.0" and result.audit_pending is None
    event = ops.events(kinds=("restore",))[0]
    assert event.actor == "admin" and event.details["trusted_unrecorded"] is True
    loaded = ops.registry.load_models()  # checksums now in the live metadata and recorded as trusted
    assert loaded.version == "1.0.0" and set(loaded.metadata["artifacts"]) == set(C.MODEL_FILES)
    assert all(ops.registry.provenance.known(a["sha256"]) for a in loaded.metadata["artifacts"].values())

    # Trusted or not, a file must hold a fitted model of the right kind before it is installed.
    marker = tmp_path / "x"
    [newest] = [b for b in ops.backups() if b.version == "1.0.1"]  # the set promoted second (live before)
    joblib.dump(0, newest.files[C.FAILURE_MODEL_FILE])
    meta = json.loads(newest.files[C.METADATA_FILE].read_text())
    del meta["artifacts"]
    newest.files[C.METADATA_FILE].write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="holds a int"):
        ops.restore(newest.timestamp, actor=local_principal("admin"), reason="x", trust_unrecorded=True)
    assert ops.current().version == "1.0.0" and not marker.exists()


def test_a_change_whose_event_cannot_be_recorded_is_reported_applied_and_recorded_later(settings):
    promote_ops = ModelOps(settings)
    promote(promote_ops.registry, seed=1)
    promote(promote_ops.registry, seed=2)
    promote_ops.dispose()
    import dataclasses

    ops = ModelOps(dataclasses.replace(settings, db_timeout_seconds=0.5))
    [timestamp] = [b.timestamp for b in ops.backups() if b.version == "1.0.0"]
    blocker = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: reads work, writes wait and fail
    try:
        result = ops.restore(timestamp, actor=local_principal("alice"), reason="rollback")
        # Applied, and the caller is told so, with why the audit row is missing for now.
        assert result.restored.version == "1.0.0" and "locked" in result.audit_pending
        assert ops.current().version == "1.0.0"
        report = ops.status()
        assert report.pending is not None and report.pending.event_pending
        assert report.level == "red" and any(a.kind == "audit_pending" for a in report.alerts)
        with pytest.raises(Unavailable, match="audit event cannot be recorded"):
            ops.backup_now(actor=local_principal("bob"))  # no further change until the record is complete
    finally:
        blocker.rollback()
        blocker.close()
    report = ops.status()  # the next read records it: exactly once, as what it was
    assert report.pending is None and not any(a.kind == "audit_pending" for a in report.alerts)
    restores = ops.events(kinds=("restore",))
    assert len(restores) == 1 and (restores[0].actor, restores[0].to_version) == ("alice", "1.0.0")
    assert ops.events(kinds=("external_change",)) == []
    ops.backup_now(actor=local_principal("bob"))
    ops.dispose()


def test_a_backup_named_with_an_impossible_date_is_listed_refused_for_restore_and_removable(ops, settings):
    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    good = ops.backups()[0]
    for name, path in good.files.items():
        shutil.copyfile(path, settings.models_dir / f"{name}{C.BACKUP_MARKER}20261131_120000")
    listed = {b.timestamp: b for b in ops.backups()}
    odd = listed["20261131_120000"]
    assert odd.integrity == "bad_name" and not odd.restorable and odd.created_at is None
    with pytest.raises(IntegrityError, match="not a real date"):
        ops.restore("20261131_120000", actor=local_principal("alice"), reason="x")
    assert ops.cleanup_plan(1).timestamps  # planning works around it
    promote(ops.registry, seed=3)  # and so does training
    ops.delete_backup("20261131_120000", actor=local_principal("alice"), reason="named by hand")
    assert "20261131_120000" not in {b.timestamp for b in ops.backups()}


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8 \x00",
        b'{"version": 5, "artifacts": [1, 2], "model_performance": "x", "training_data_stats": 3}',
        b'{"version": "1.0.0", "artifacts": {"failure_prediction_model.pkl": "abc"}, "feature_columns": "abc"}',
        b"[1, 2, 3]",
    ],
)
def test_hand_edited_metadata_is_reported_and_the_fixes_still_work(ops, settings, content):
    promote(ops.registry, seed=1)
    promote(ops.registry, seed=2)
    (settings.models_dir / C.METADATA_FILE).write_bytes(content)
    report = ops.status()
    assert report.level == "red" and report.problems
    ops.versions()
    ops.backups()
    # Both fixes the messages recommend go through: restore a backup, or promote a retrained model.
    ops.restore(ops.backups()[0].timestamp, actor=local_principal("alice"), reason="fix the hand edit")
    assert ops.status().health.ok
    ops.release_hold(actor=local_principal("admin"), reason="fixed; retraining may go live again")
    (settings.models_dir / C.METADATA_FILE).write_bytes(content)
    promote(ops.registry, seed=3)
    assert ops.status().health.ok


def test_a_hand_edited_version_is_reported_and_never_the_base_of_numbering(ops, settings):
    promote(ops.registry, seed=1)
    path = settings.models_dir / C.METADATA_FILE
    meta = json.loads(path.read_text())
    meta["version"] = "99999999999999999999.0.0"
    path.write_text(json.dumps(meta))
    assert any("not MAJOR.MINOR.PATCH" in p for p in ops.status().problems)
    assert promote(ops.registry, seed=2).version == "1.0.1"
    meta = json.loads(path.read_text())
    meta["version"] = "7.0.0"  # plausible, but no version this registry wrote
    path.write_text(json.dumps(meta))
    ops.status()  # seen, and recorded as a hand-made change
    assert promote(ops.registry, seed=3).version == "1.0.2"


def test_a_run_left_running_by_a_killed_process_is_closed_by_the_next_status(ops):
    promote(ops.registry, seed=1)
    run_id = ops.history.start_run(trigger="cli", actor="cron", params={})
    import datetime as dt

    from core.db import TrainingRun

    with ops.db.session() as s:
        s.get(TrainingRun, run_id).started_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    report = ops.status()
    assert report.running is None
    run = ops.run(run_id)
    assert run.status == "failed" and "stopped before it finished" in run.error
