"""The backup and event indexes agree with the files and the database after every change, however it was made."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import joblib
import pytest
from sqlalchemy import delete, insert

from core import backup_index as BI
from core import backups as B
from core import constants as C
from core.artifacts import unpickle
from core.backup_index import BackupIndex
from core.db import Database, RegistryEvent, utcnow
from core.registry import Registry
from tests.factories import metadata_fields, promote, tiny_models


def listed(sets: list[Any]) -> list[tuple[Any, ...]]:
    """What a listing shows of each set (the index keeps a summary of the metadata: compare what it shows)."""
    return [
        (
            s.timestamp,
            s.version,
            s.integrity,
            s.missing,
            s.size_bytes,
            s.problems,
            s.performance,
            sorted(p.name for p in s.files.values()),
            (s.metadata or {}).get("training_date"),
        )
        for s in sets
    ]


def agrees(registry: Registry) -> None:
    """The index lists exactly what a plain scan of every backup file finds, and versions point at those sets."""
    plain = B.list_sets(registry.models_dir)
    assert listed(registry.backups()) == listed(plain)
    holding: dict[str, list[str]] = {}
    for s in plain:
        if s.version:
            holding.setdefault(s.version, []).append(s.timestamp)
    for entry in registry.versions():
        assert list(entry.backup_timestamps) == holding.get(entry.version, []), entry.version


@pytest.fixture
def large_dir_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules a directory of thousands of backup files gets: no stat of every file on every call."""
    monkeypatch.setattr(BI, "DEEP_ALWAYS_FILES", 0)


def test_the_index_agrees_with_the_files_after_every_registry_operation(registry: Registry, large_dir_rules) -> None:
    agrees(registry)
    for seed in range(3):
        promote(registry, seed=seed, accuracy=0.8 + seed / 100)
        agrees(registry)
    registry.backup_now(actor="t")
    agrees(registry)
    old = next(s for s in registry.backups() if s.version == "1.0.0")
    registry.restore(old.timestamp, actor="t", reason="test")
    agrees(registry)
    assert next(e for e in registry.versions() if e.is_current).version == "1.0.0"
    registry.delete_backup(registry.backups()[-1].timestamp, actor="t", reason="test")
    agrees(registry)
    registry.cleanup(2, actor="t")
    agrees(registry)
    assert len(registry.backups()) <= 3  # two kept, plus the live set's own backup


def test_the_guides_rm_and_cp_restore_are_noticed(registry: Registry, large_dir_rules) -> None:
    for seed in range(4):
        promote(registry, seed=seed, accuracy=0.8 + seed / 100)
    agrees(registry)
    models = registry.models_dir
    # The guide's clean-up, as written (keeping the newest 7 backup files, which splits a set).
    subprocess.run("ls -t *.backup_* | tail -n +8 | xargs rm -f", shell=True, cwd=models, check=True)
    agrees(registry)
    assert any(s.missing for s in registry.backups())
    # The guide's restore: two cp commands over the live files (the directory's names do not change).
    target = next(s for s in registry.backups() if s.complete and s.version != registry.current().version)
    for name in (C.FAILURE_MODEL_FILE, C.METADATA_FILE):
        subprocess.run(["cp", B.backup_name(name, target.timestamp), name], cwd=models, check=True)
    agrees(registry)
    assert next(e for e in registry.versions() if e.is_current).version == target.version


def edit_in_place(path: Path, **changes: Any) -> None:
    """A metadata file edited by hand where it is (no rename: the directory's mtime stays as it was)."""
    data = json.loads(path.read_text())
    data.update(changes)
    with open(path, "r+") as fh:
        fh.seek(0)
        fh.write(json.dumps(data))
        fh.truncate()


def test_a_backup_metadata_file_edited_by_hand_is_noticed(registry: Registry) -> None:
    for seed in range(2):
        promote(registry, seed=seed)
    agrees(registry)
    chosen = registry.backups()[-1]
    edit_in_place(chosen.files[C.METADATA_FILE], version="7.7.7")
    agrees(registry)  # few files: every file's stat is checked on every call
    assert chosen.timestamp in [s.timestamp for s in registry.backups() if s.version == "7.7.7"]


def test_an_edit_in_place_in_a_large_directory_is_noticed_by_the_periodic_check(registry, large_dir_rules) -> None:
    for seed in range(2):
        promote(registry, seed=seed)
    agrees(registry)
    chosen = registry.backups()[-1]
    time.sleep(0.05)  # past the racy window: only the periodic check of every file's stat can see the edit
    edit_in_place(chosen.files[C.METADATA_FILE], version="7.7.8")
    registry.index.deep_every = 0.0  # the periodic check is due
    agrees(registry)
    assert [s.version for s in registry.backups() if s.timestamp == chosen.timestamp] == ["7.7.8"]


def saved_index(registry: Registry) -> BackupIndex:
    """The index saved after its files settled (past the racy window), and a new process's index on it."""
    time.sleep(0.05)
    registry.index.refresh(deep=True, save=True)
    return BackupIndex(registry.models_dir)


def test_a_new_process_lists_every_set_from_the_index_file_without_reading_them(registry: Registry) -> None:
    for seed in range(3):
        promote(registry, seed=seed)
    fresh = saved_index(registry)
    assert listed(fresh.sets()) == listed(B.list_sets(registry.models_dir))
    assert fresh.reread == 0  # every set came from the file, checked by its files' stats


def test_the_index_is_rebuilt_where_it_disagrees_with_the_files(registry: Registry) -> None:
    for seed in range(3):
        promote(registry, seed=seed)
    fresh = saved_index(registry)
    # While no process watched: a metadata file edited in place and a set removed by hand.
    edited, removed = registry.backups()[0], registry.backups()[-1]
    edit_in_place(edited.files[C.METADATA_FILE], version="9.9.9")
    for path in removed.files.values():
        path.unlink()
    sets = fresh.sets()
    assert listed(sets) == listed(B.list_sets(registry.models_dir))
    assert [s.version for s in sets if s.timestamp == edited.timestamp] == ["9.9.9"]
    assert removed.timestamp not in [s.timestamp for s in sets]
    assert fresh.reread == 1  # only the edited set was read again


def test_an_unreadable_index_file_is_rebuilt_from_the_files(registry: Registry) -> None:
    for seed in range(2):
        promote(registry, seed=seed)
    index_file = registry.models_dir / C.INDEX_DIR / C.BACKUP_INDEX_FILE
    assert index_file.exists()  # every write saves it
    index_file.write_text('{"format": 2, "sets": {"20250101_000000": {"stats": 5}}}')
    fresh = BackupIndex(registry.models_dir)
    assert listed(fresh.sets()) == listed(B.list_sets(registry.models_dir))


def test_a_change_reads_only_the_sets_it_touched(registry: Registry, large_dir_rules) -> None:
    promote(registry, seed=1)
    payload = b"model"
    for n in range(40):  # forty more sets (three files each) made by hand
        ts = f"202501{1 + n // 24:02d}_{n % 24:02d}0000"
        for name in C.MODEL_FILES:
            (registry.models_dir / B.backup_name(name, ts)).write_bytes(payload)
        meta = {"version": f"0.{n}.0", "artifacts": {}}
        (registry.models_dir / B.backup_name(C.METADATA_FILE, ts)).write_text(json.dumps(meta))
    agrees(registry)
    before = registry.index.reread
    promote(registry, seed=2)
    agrees(registry)
    assert registry.index.reread - before <= 2  # the promote's new sets, not the 41 others


def test_versions_follow_history_rows_added_and_removed_outside_the_registry(settings, any_db: Database) -> None:
    db = any_db
    registry = Registry.from_settings(settings, db)
    for seed in range(2):
        promote(registry, seed=seed)
    assert [e.version for e in registry.versions()] == ["1.0.1", "1.0.0"]
    meta = metadata_fields(accuracy=0.9)
    meta.update(version="1.5.0")
    with db.session() as s:
        s.execute(
            insert(RegistryEvent),
            [dict(kind="promote", actor="x", at=utcnow(), to_version="1.5.0", details={"metadata": meta})],
        )
    assert [e.version for e in registry.versions()] == ["1.5.0", "1.0.1", "1.0.0"]
    assert registry.event_index is not None
    reads = registry.event_index.full_reads
    with db.session() as s:  # one row removed and two added: more rows than before, but not the ones read
        s.execute(delete(RegistryEvent).where(RegistryEvent.to_version == "1.5.0"))
        rows = []
        for version in ("1.6.0", "1.7.0"):
            meta = metadata_fields(accuracy=0.9)
            meta.update(version=version)
            rows.append(dict(kind="promote", actor="x", at=utcnow(), to_version=version, details={"metadata": meta}))
        s.execute(insert(RegistryEvent), rows)
    assert [e.version for e in registry.versions()] == ["1.7.0", "1.6.0", "1.0.1", "1.0.0"]
    assert registry.event_index.full_reads == reads + 1  # the count disagreed: every event read again


def test_model_files_are_standard_pickles_the_guides_joblib_load_reads(registry: Registry) -> None:
    promote(registry, seed=3)
    loaded = joblib.load(registry.path(C.FAILURE_MODEL_FILE))
    assert callable(loaded.predict_proba)
    # Sets written by joblib.dump before (joblib's own format) still load.
    failure, _ = tiny_models(3)
    buffer = io.BytesIO()
    joblib.dump(failure, buffer)
    assert callable(unpickle(C.FAILURE_MODEL_FILE, buffer.getvalue()).predict_proba)
    assert registry.load_models().version == "1.0.0"


def test_a_change_within_one_tick_of_the_directorys_clock_is_noticed(registry: Registry, large_dir_rules) -> None:
    promote(registry, seed=1)
    models = registry.models_dir
    registry.backups()
    # The directory's mtime as a clock that has not ticked since the listing: the same value before and after
    # the change below (set a second ahead, so the listing is always within the racy window of it).
    tick = time.time_ns() + 1_000_000_000
    os.utime(models, ns=(tick, tick))
    before = {s.timestamp for s in registry.backups()}
    ts = "20250101_000000"
    for name in C.SET_FILES:
        (models / B.backup_name(name, ts)).write_bytes(b"{}")
    os.utime(models, ns=(tick, tick))
    assert {s.timestamp for s in registry.backups()} == before | {ts}
    agrees(registry)


def test_versions_keep_each_untouched_entry_and_make_again_those_a_change_touched(settings, db: Database) -> None:
    registry = Registry.from_settings(settings, db)
    for seed in range(3):
        promote(registry, seed=seed)
    before = {e.version: e for e in registry.versions()}
    assert [v for v, e in before.items() if e.is_current] == ["1.0.2"]
    elsewhere = Registry(settings.models_dir, Database(settings.database_url))  # as the CLI would, in its process
    try:
        first = next(s for s in elsewhere.backups() if s.version == "1.0.0")
        elsewhere.restore(first.timestamp, actor="cli", reason="regression", hold=False)
        after = {e.version: e for e in registry.versions()}
        assert (after["1.0.0"].is_current, after["1.0.2"].is_current) == (True, False)
        assert after["1.0.1"] is before["1.0.1"]  # nothing it is made from changed
        agrees(registry)
        kept = next(s for s in elsewhere.backups() if s.version == "1.0.1")
        elsewhere.delete_backup(kept.timestamp, actor="cli", reason="space")
        assert registry.versions()[1].backup_timestamps == () and registry.versions()[1].version == "1.0.1"
        agrees(registry)
        promote(elsewhere, seed=5)
        newest = registry.versions()
        assert [e.version for e in newest] == ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
        assert newest[0].is_current and not any(e.is_current for e in newest[1:])
    finally:
        elsewhere.db.dispose()
