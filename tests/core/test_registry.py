"""Registry behaviour on real files: versions, backups, restore, delete, clean-up, compare, bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core import constants as C
from core.errors import Conflict, IntegrityError, InvalidInput, NotFound
from core.registry import Registry
from tests.factories import promote


@pytest.fixture
def db(any_db):
    """Every registry test runs on SQLite and on PostgreSQL."""
    return any_db


def snapshot(directory: Path) -> dict[str, str]:
    """Every file's sha256, to prove a failed operation changed nothing."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".registry.lock")
    }


def test_first_promotion_writes_the_guides_files_with_checksums(registry, settings):
    v = promote(registry)
    assert v.version == "1.0.0"
    for name in C.SET_FILES:
        assert (settings.models_dir / name).is_file()
    meta = json.loads((settings.models_dir / C.METADATA_FILE).read_text())
    assert meta["version"] == "1.0.0" and meta["previous_version"] is None
    for name in C.MODEL_FILES:
        assert (
            meta["artifacts"][name]["sha256"] == hashlib.sha256((settings.models_dir / name).read_bytes()).hexdigest()
        )
    # The promoted set has a complete backup from the start: a hand-made copy over it loses nothing.
    [backup] = registry.backups()
    assert backup.version == "1.0.0" and backup.integrity == "ok"
    for name in C.SET_FILES:
        assert backup.files[name].read_bytes() == (settings.models_dir / name).read_bytes()
    assert registry.health().ok


def test_training_twice_gives_increasing_versions_and_a_complete_backup_of_each(registry):
    v1, v2 = promote(registry, seed=1), promote(registry, seed=2)
    assert (v1.version, v2.version) == ("1.0.0", "1.0.1")
    newest, older = registry.backups()
    assert (newest.version, older.version) == ("1.0.1", "1.0.0")  # newest first: the live set's own backup
    assert all(b.complete and b.integrity == "ok" and set(b.files) == set(C.SET_FILES) for b in (newest, older))
    assert registry.current().metadata["previous_version"] == "1.0.0"
    promote_event = registry.history.events(kinds=["promote"])[0]
    assert promote_event.details["live_backup"] == newest.timestamp
    assert promote_event.details["backup_timestamp"] == older.timestamp  # the replaced set's backup, not a copy


def test_versions_bump_patch_minor_or_major_as_the_original_service_numbered_them(registry):
    assert promote(registry).version == "1.0.0"
    assert promote(registry, seed=1).version == "1.0.1"  # retrained: same features, same parameters
    assert promote(registry, seed=2, classifier="hgb").version == "1.1.0"  # other training parameters
    assert promote(registry, seed=3, classifier="hgb").version == "1.1.1"
    assert promote(registry, feature_columns=["x1", "x2", "x3", "x4"]).version == "2.0.0"  # other features


def test_versions_are_never_reused_after_restore_and_cleanup(registry):
    promote(registry, seed=1)
    promote(registry, seed=2)
    registry.restore("1.0.0", actor="op", reason="rollback", hold=False)
    registry.cleanup(0, actor="op")
    v = promote(registry, seed=3)
    assert v.version == "1.0.2"
    assert [e.version for e in registry.versions()] == ["1.0.2", "1.0.1", "1.0.0"]


def test_backup_timestamps_stay_unique_within_one_second(settings, db):
    fixed = dt.datetime(2026, 11, 16, 2, 0, 0, tzinfo=dt.UTC)
    reg = Registry(settings.models_dir, db, clock=lambda: fixed)
    for seed in range(4):
        promote(reg, seed=seed)
    stamps = [b.timestamp for b in reg.backups()]
    assert stamps == ["20261116_020003", "20261116_020002", "20261116_020001", "20261116_020000"]
    assert [b.version for b in reg.backups()] == ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]  # names sort as made
    assert all(b.complete for b in reg.backups())


def test_restore_by_timestamp_backs_up_current_and_records_event(registry, settings):
    promote(registry, seed=1, accuracy=0.80)
    promote(registry, seed=2, accuracy=0.90)
    live_backup, old = registry.backups()
    result = registry.restore(old.timestamp, actor="alice", reason="v1.1 misbehaves")
    assert (result.restored.version, result.replaced_version, result.source_backup) == ("1.0.0", "1.0.1", old.timestamp)
    # What it replaced already had a complete backup (made when 1.0.1 was promoted): that is the way back.
    assert result.undo_backup == live_backup.timestamp and registry.backup(result.undo_backup).version == "1.0.1"
    assert registry.current().version == "1.0.0"
    assert registry.health().ok
    assert sorted(b.version for b in registry.backups()) == ["1.0.0", "1.0.1"]  # no duplicate was made
    event = registry.history.events(kinds=["restore"])[0]
    assert (event.actor, event.from_version, event.to_version, event.reason) == (
        "alice",
        "1.0.1",
        "1.0.0",
        "v1.1 misbehaves",
    )
    assert event.details["restored_from"] == old.timestamp
    # Undo works: restore the set the restore made.
    registry.restore(event.details["undo_backup"], actor="alice", reason="undo")
    assert registry.current().version == "1.0.1"


def test_restore_by_version_and_current_version_conflict(registry):
    promote(registry, seed=1)
    promote(registry, seed=2)
    with pytest.raises(Conflict, match="already the current"):
        registry.restore("1.0.1", actor="op")
    assert registry.restore("1.0.0", actor="op").restored.version == "1.0.0"


@pytest.mark.parametrize(
    "target,error",
    [
        ("../x", InvalidInput),
        ("20261301_000000", NotFound),
        ("20251116_020000/../../etc", InvalidInput),
        ("not-a-thing", InvalidInput),
        ("20200101_000000", NotFound),
        ("9.9.9", NotFound),
    ],
)
def test_restore_bad_targets_change_nothing(registry, settings, target, error):
    promote(registry, seed=1)
    promote(registry, seed=2)
    before = snapshot(settings.models_dir)
    with pytest.raises(error):
        registry.restore(target, actor="op")
    assert snapshot(settings.models_dir) == before


def test_restore_refuses_corrupt_or_mismatched_or_incomplete_backups(registry, settings):
    promote(registry, seed=1)
    promote(registry, seed=2)
    promote(registry, seed=3)
    _, newest, oldest = registry.backups()  # the live 1.0.2's own backup first
    # Same size, different bytes: only the sha256 can tell.
    pkl = newest.files[C.FAILURE_MODEL_FILE]
    data = bytearray(pkl.read_bytes())
    data[-20] ^= 0xFF
    pkl.write_bytes(bytes(data))
    oldest.files[C.ANOMALY_MODEL_FILE].unlink()
    before = snapshot(settings.models_dir)
    with pytest.raises(IntegrityError, match="sha256"):
        registry.restore(newest.timestamp, actor="op")
    with pytest.raises(IntegrityError, match="incomplete"):
        registry.restore(oldest.timestamp, actor="op")
    assert snapshot(settings.models_dir) == before
    assert registry.current().version == "1.0.2"


def test_restore_refuses_a_planted_file_even_with_matching_metadata(registry, settings):
    """A file and a checksum both written by hand: its checksum is in no set the registry recorded."""
    promote(registry, seed=1)
    promote(registry, seed=2)
    [b] = [s for s in registry.backups() if s.version == "1.0.0"]
    path = b.files[C.FAILURE_MODEL_FILE]
    planted = b"not a pickle" * 10
    path.write_bytes(planted)
    meta_path = b.files[C.METADATA_FILE]
    meta = json.loads(meta_path.read_text())
    meta["artifacts"][C.FAILURE_MODEL_FILE] = {"sha256": hashlib.sha256(planted).hexdigest(), "bytes": len(planted)}
    meta_path.write_text(json.dumps(meta))
    before = snapshot(settings.models_dir)
    with pytest.raises(IntegrityError, match="not a file this registry wrote"):
        registry.restore(b.timestamp, actor="op")
    assert snapshot(settings.models_dir) == before


def test_restore_while_another_process_holds_the_lock(registry, settings):
    promote(registry, seed=1)
    promote(registry, seed=2)
    [b] = [s for s in registry.backups() if s.version == "1.0.0"]
    code = (
        "import sys,time;"
        "from core.locking import registry_lock; from pathlib import Path;"
        "ctx = registry_lock(Path(sys.argv[2])).hold('cleanup', 'bob');"
        "ctx.__enter__(); print('locked', flush=True); time.sleep(30)"
    )
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(root), str(settings.models_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        holder = registry.lock.holder()
        assert holder is not None and holder.actor == "bob" and holder.what == "cleanup"
        before = snapshot(settings.models_dir)
        reg = Registry(settings.models_dir, registry.db, lock_timeout=0.3)
        with pytest.raises(Conflict, match="cleanup by bob"):
            reg.restore(b.timestamp, actor="alice")
        assert snapshot(settings.models_dir) == before
    finally:
        child.kill()
        child.wait()
    assert registry.lock.holder() is None
    assert registry.restore(b.timestamp, actor="alice").restored.version == "1.0.0"


def test_concurrent_promotions_from_threads_get_distinct_versions(registry):
    promote(registry, seed=0)
    results: list[str] = []
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            results.append(promote(registry, seed=seed).version)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == ["1.0.1", "1.0.2", "1.0.3", "1.0.4"]
    assert len(registry.backups()) == 5 and all(b.complete and b.integrity == "ok" for b in registry.backups())
    assert sorted(b.version for b in registry.backups()) == ["1.0.0", *sorted(results)]  # one per version


def test_delete_backup_and_cleanup_with_preview(registry):
    for seed in range(6):
        promote(registry, seed=seed)
    sets = registry.backups()
    assert len(sets) == 6
    gone = registry.delete_backup(sets[-1].timestamp, actor="op", reason="old")
    assert gone.timestamp not in [b.timestamp for b in registry.backups()]
    plan = registry.cleanup_plan(2)
    assert [b.timestamp for b in plan] == [b.timestamp for b in sets[2:5]]
    assert len(registry.backups()) == 5  # the preview removed nothing
    with pytest.raises(Conflict, match="changed since the preview"):
        registry.cleanup(1, actor="op", expected=[b.timestamp for b in plan])
    removed = registry.cleanup(2, actor="op", expected=[b.timestamp for b in plan])
    assert [b.timestamp for b in removed] == [b.timestamp for b in plan]
    assert [b.timestamp for b in registry.backups()] == [b.timestamp for b in sets[:2]]
    kinds = [e.kind for e in registry.history.events()]
    assert kinds.count("cleanup") == 1 and kinds.count("delete_backup") == 1
    with pytest.raises(InvalidInput):
        registry.cleanup_plan(-1)
    with pytest.raises(NotFound):
        registry.delete_backup("20000101_000000", actor="op")


def test_versions_survive_backup_cleanup(registry):
    for seed in range(3):
        promote(registry, seed=seed)
    registry.cleanup(0, actor="op")
    entries = registry.versions()
    assert [e.version for e in entries] == ["1.0.2", "1.0.1", "1.0.0"]
    assert entries[0].is_current and not entries[1].restorable
    assert registry.get_version("1.0.0").location == "history"


def test_guide_manual_cp_restore_is_completed_from_the_same_backup_and_audited(registry, settings):
    promote(registry, seed=1)
    promote(registry, seed=2)
    [b] = [s for s in registry.backups() if s.version == "1.0.0"]
    models = settings.models_dir
    # The guide's commands, verbatim in effect.
    subprocess.run(
        f"cp failure_prediction_model.pkl.backup_{b.timestamp} failure_prediction_model.pkl",
        shell=True,
        cwd=models,
        check=True,
    )
    subprocess.run(
        f"cp model_metadata.json.backup_{b.timestamp} model_metadata.json", shell=True, cwd=models, check=True
    )
    assert registry.current().version == "1.0.0"
    assert not registry.health().ok  # the guide forgot the anomaly model: 1.0.1's is still there
    change = registry.reconcile()
    assert change is not None and (change.from_version, change.to_version) == ("1.0.1", "1.0.0")
    assert registry.reconcile() is None  # recorded once
    [event] = registry.history.events(kinds=["external_change"])
    assert (event.from_version, event.to_version) == ("1.0.1", "1.0.0")
    assert event.details["completed_from"] == b.timestamp
    assert event.details["completed_files"] == [C.ANOMALY_MODEL_FILE]
    assert "hand-made restore of backup" in event.reason
    # Completed from the same backup: the set is whole, verified and serves again.
    assert (models / C.ANOMALY_MODEL_FILE).read_bytes() == b.files[C.ANOMALY_MODEL_FILE].read_bytes()
    assert registry.health(load=True).ok and registry.load_models().version == "1.0.0"
    # 1.0.1, which the copy overwrote, lost nothing: it has its own backup since it was promoted.
    assert any(s.version == "1.0.1" and s.restorable for s in registry.backups())
    assert promote(registry, seed=3).version == "1.0.2"


def test_a_hand_made_copy_that_matches_no_backup_is_reported_not_completed(registry, settings):
    promote(registry, seed=1)
    promote(registry, seed=2)
    (settings.models_dir / C.ANOMALY_MODEL_FILE).write_bytes(b"copied from somewhere else")
    metadata = settings.models_dir / C.METADATA_FILE
    metadata.write_text(metadata.read_text().replace('"1.0.1"', '"1.0.1"', 1) + " ")  # edited by hand
    registry.reconcile()
    [event] = registry.history.events(kinds=["external_change"])
    assert "completed_from" not in event.details
    assert not registry.health().ok
    with pytest.raises(IntegrityError):
        registry.load_models()


def test_guide_cleanup_one_liner_splits_sets_and_listing_still_works(registry, settings):
    for seed in range(6):
        promote(registry, seed=seed)  # 5 backup sets = 15 files
    # Make mtimes distinct and ordered so `ls -t` is deterministic.
    for i, path in enumerate(sorted(settings.models_dir.glob("*.backup_*"))):
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    subprocess.run("ls -t *.backup_* | tail -n +11 | xargs rm -f", shell=True, cwd=settings.models_dir, check=True)
    sets = registry.backups()
    assert len(list(settings.models_dir.glob("*.backup_*"))) == 10
    incomplete = [b for b in sets if not b.complete]
    assert incomplete, "the one-liner counts files, not sets, so one set must be split"
    assert all(b.integrity == "incomplete" and b.problems for b in incomplete)
    with pytest.raises(IntegrityError, match="incomplete"):
        registry.restore(incomplete[0].timestamp, actor="op")


def test_invalid_json_metadata_is_a_clear_error(registry, settings):
    promote(registry)
    (settings.models_dir / C.METADATA_FILE).write_text("{ not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        registry.current()
    health = registry.health()
    assert not health.ok and "not valid JSON" in health.problems[0]


def test_corrupt_current_pickle_is_reported_not_loaded(registry, settings):
    promote(registry)
    (settings.models_dir / C.FAILURE_MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match="does not match"):
        registry.load_models()
    assert not registry.health(load=True).ok


def test_crash_in_the_middle_of_a_swap_is_rolled_forward(registry, settings, monkeypatch):
    promote(registry, seed=1)
    real_replace = os.replace
    calls = {"n": 0}

    def crashing_replace(src, dst):
        # Let the backup copies through, die after the first file of the swap.
        if Path(dst).name in C.SET_FILES:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("simulated power loss")
        return real_replace(src, dst)

    monkeypatch.setattr("core.registry.os.replace", crashing_replace)
    with pytest.raises(OSError):
        promote(registry, seed=2)
    monkeypatch.setattr("core.registry.os.replace", real_replace)
    assert (settings.models_dir / C.JOURNAL_FILE).exists()
    assert not registry.health().ok  # torn set is detected, not trusted
    # The next write finishes the interrupted swap first.
    v = promote(registry, seed=3)
    assert v.version == "1.0.2"
    assert not (settings.models_dir / C.JOURNAL_FILE).exists()
    assert registry.health().ok
    assert not list(settings.models_dir.glob(f"{C.TMP_PREFIX}*"))
    assert {b.version for b in registry.backups()} == {"1.0.0", "1.0.1", "1.0.2"}


@pytest.mark.parametrize("operation", ["promote", "restore"])
def test_a_write_that_fails_before_its_swap_leaves_no_staged_file_and_no_change(registry, settings, operation):
    """A full disk while staging: the write skeleton removes what it staged already, and the set is intact."""
    promote(registry, seed=1)
    promote(registry, seed=2)
    before = snapshot(settings.models_dir)
    events = len(registry.history.events())
    import core.journal

    staged: list[Path] = []

    def full_after_one(real):
        def stage(*args):
            if staged:
                raise OSError(28, "No space left on device")
            staged.append(real(*args))
            return staged[-1]

        return stage

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("core.journal.copy_to_temp", full_after_one(core.journal.copy_to_temp))
        patch.setattr("core.journal.write_temp_bytes", full_after_one(core.journal.write_temp_bytes))
        with pytest.raises(OSError, match="No space left"):
            if operation == "promote":
                promote(registry, seed=3)
            else:
                registry.restore("1.0.0", actor="op", reason="rollback")
    assert staged and not staged[0].exists()  # one file was staged, then removed
    assert not list(settings.models_dir.glob(f"{C.TMP_PREFIX}*"))
    assert snapshot(settings.models_dir) == before and registry.health().ok
    assert len(registry.history.events()) == events
    assert promote(registry, seed=4).version == "1.0.2"  # and the next write goes through


def test_backup_now_and_disk_usage(registry):
    promote(registry)
    made = registry.backup_now(actor="op", reason="before maintenance")
    assert made.complete and made.version == "1.0.0"
    usage = registry.disk_usage()
    assert usage["backup_bytes"] == sum(b.size_bytes for b in registry.backups()) == 2 * made.size_bytes
    assert usage["current_bytes"] == made.size_bytes


def test_registry_works_without_a_database(settings):
    reg = Registry(settings.models_dir, None)
    promote(reg, seed=1)
    promote(reg, seed=2)
    assert [e.version for e in reg.versions()] == ["1.0.1", "1.0.0"]
    assert reg.restore("1.0.0", actor="op").restored.version == "1.0.0"


def test_retention_after_promote_keeps_the_newest_and_the_undo_backup_of_the_last_restore(settings, db):
    registry = Registry(settings.models_dir, db, keep_backups=2, auto_cleanup=True)
    for seed in range(4):
        promote(registry, seed=seed)
    assert [b.version for b in registry.backups()] == ["1.0.3", "1.0.2"]  # the live set's and the one before
    cleanup = registry.history.events(kinds=["cleanup"])[0]
    assert cleanup.actor == "retention" and cleanup.details["automatic"] is True
    undo = registry.restore("1.0.2", actor="op", reason="rollback", hold=False).undo_backup  # 1.0.3's own backup
    for seed in range(4, 7):
        promote(registry, seed=seed)
    kept = {b.timestamp: b.version for b in registry.backups()}
    assert undo in kept and sorted(kept.values()) == ["1.0.3", "1.0.5", "1.0.6"]  # newest two + the way back


def test_the_advisory_lock_key_comes_from_the_registry_not_its_mount_path(tmp_path):
    from core.locking import registry_id, registry_lock

    host_a = tmp_path / "srv" / "models"  # one shared volume, mounted at two paths on two hosts
    host_b = tmp_path / "mnt" / "volume"
    host_a.mkdir(parents=True)
    host_b.mkdir(parents=True)
    made = registry_id(host_a)
    assert registry_id(host_a) == made  # made once, then read
    (host_b / C.REGISTRY_ID_FILE).write_text((host_a / C.REGISTRY_ID_FILE).read_text())  # the same files
    assert registry_lock(host_b)._advisory_key() == registry_lock(host_a)._advisory_key()
    other = tmp_path / "another-registry"
    other.mkdir()
    assert registry_lock(other)._advisory_key() != registry_lock(host_a)._advisory_key()
