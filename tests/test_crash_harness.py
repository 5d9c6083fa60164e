"""SIGKILL at every filesystem step of promote and restore, and at random moments: nothing torn, nothing unaudited.

Each kill is a forked child (the parent has imported everything once, so a kill costs milliseconds) running a
real registry on a real SQLite file and models directory. After each kill the next process recovers as it
would in production (a status read), and then:
- no journal is left, and the live set loads (checksums match its metadata and provenance);
- the audit trail is exactly the truth: the promote/restore events chain from version to version and end at
  the live version, no operation is recorded twice, and no hand-made change is invented;
- the next operation succeeds and leaves no temp file of the killed one.
The number of kills is printed (`-s`) and asserted.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core import constants as C
from core.config import Settings
from core.db import Database
from core.errors import RegistryError
from core.history import History
from core.identity import local_principal
from core.modelops import ModelOps
from core.registry import Registry
from tests.factories import metadata_fields, tiny_models

RANDOM_KILLS = 160
MODELS = [tiny_models(seed) for seed in range(3)]


def open_registry(settings: Settings) -> tuple[Registry, Database]:
    db = Database(settings.database_url, timeout=5)
    return Registry(settings.models_dir, db, lock_timeout=10, keep_backups=3, auto_cleanup=True), db


def promote(registry: Registry, i: int) -> None:
    """A promotion as an admin makes it after a restore: release the restore's hold (its own audited write), then
    promote. A kill between the two leaves the hold released and the old version live, which is the truth."""
    if registry.active_hold() is not None:
        registry.release_hold(actor="crash-test", reason=f"crash test {i}: promote again")
    failure, anomaly = MODELS[i % len(MODELS)]
    registry.promote(
        failure, anomaly, metadata_fields(accuracy=0.8 + (i % 7) / 100), actor="crash-test", trigger="test"
    )


def restore(registry: Registry, i: int) -> None:
    current = registry.current()
    candidates = [s for s in registry.backups() if s.restorable and s.version != (current.version if current else None)]
    if not candidates:  # every kept backup holds the live version: make another one
        return promote(registry, i)
    registry.restore(candidates[i % len(candidates)].timestamp, actor="crash-test", reason=f"crash test {i}")


OPERATIONS: dict[str, Callable[[Registry, int], None]] = {"promote": promote, "restore": restore}


def run_child(settings: Settings, body: Callable[[Registry], None], kill_at: int | None) -> int:
    """Fork; the child counts filesystem and database steps and SIGKILLs itself before step `kill_at`.

    Returns the number of steps the child took (when it was not killed), via its exit status.
    """
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            steps = [0]

            def step() -> None:
                steps[0] += 1
                if kill_at is not None and steps[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            def counted(real: Callable[..., object]) -> Callable[..., object]:
                def wrapper(*args: object, **kwargs: object) -> object:
                    step()
                    return real(*args, **kwargs)

                return wrapper

            os.replace = counted(os.replace)  # type: ignore[assignment]
            os.fsync = counted(os.fsync)  # type: ignore[assignment]
            os.unlink = counted(os.unlink)  # type: ignore[assignment]
            History.record_event = counted(History.record_event)  # type: ignore[method-assign]
            registry, db = open_registry(settings)
            body(registry)
            db.dispose()
            code = min(steps[0], 250)
        except BaseException:  # a failure (not a kill) shows as 255
            import traceback

            traceback.print_exc()
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return -1
    code = os.WEXITSTATUS(status)
    assert code != 255, "the child failed without being killed"
    return code


def recover_and_check(settings: Settings) -> None:
    """What the next process sees after a kill, as production recovers it (a status read), must be the truth."""
    ops = ModelOps(settings)
    try:
        report = ops.status()
        assert report.pending is None, report.pending
        assert not (settings.models_dir / C.JOURNAL_FILE).exists()
        assert report.health.ok, report.health.problems
        loaded = ops.registry.load_models()  # checksums against metadata and provenance, then unpickled
        events = ops.history.events(ascending=True, limit=100_000)
        assert not [e for e in events if e.kind == "external_change"], "a crash was recorded as a hand-made change"
        op_ids = [e.details.get("op_id") for e in events if e.details.get("op_id")]
        assert len(op_ids) == len(set(op_ids)), "an operation was recorded twice"
        live = [e for e in events if e.kind in ("promote", "restore")]
        for before, after in zip(live, live[1:], strict=False):
            assert after.from_version == before.to_version, (before, after)
        assert live and live[-1].to_version == loaded.version, (live[-1], loaded.version)
        # A restore's hold is recorded with its event: never one without the other, never on another version.
        hold = ops.registry.active_hold()
        released_since = [e for e in events if e.kind == "hold" and e.id > live[-1].id]
        if live[-1].kind == "restore" and not released_since:
            assert hold is not None and hold.version == loaded.version, (live[-1], hold)
        if hold is not None:
            assert hold.version == loaded.version, (hold, loaded.version)
        # The next change goes through, and (as every writer does first) clears what the kill left staged.
        ops.cleanup(3, actor=local_principal("crash-test"), reason="after a kill")
        assert not list(settings.models_dir.glob(f"{C.TMP_PREFIX}*"))
    finally:
        ops.dispose()


@pytest.fixture
def world(settings: Settings) -> Settings:
    registry, db = open_registry(settings)
    for i in range(3):
        promote(registry, i)
    db.dispose()
    recover_and_check(settings)
    return settings


def test_a_kill_at_every_step_of_promote_and_restore_leaves_the_truth(world: Settings) -> None:
    kills = 0
    for name, operation in OPERATIONS.items():
        total = run_child(world, lambda r, op=operation: op(r, 0), kill_at=None)
        assert total > 5, f"{name} took only {total} steps"
        recover_and_check(world)
        for kill_at in range(1, total + 1):
            assert run_child(world, lambda r, op=operation, i=kill_at: op(r, i), kill_at=kill_at) == -1
            kills += 1
            recover_and_check(world)
        run_child(world, lambda r: promote(r, 1), kill_at=None)  # and the next operation goes through
        recover_and_check(world)
    print(f"\ndeterministic kills survived: {kills}")
    assert kills >= 30


def test_random_kills_during_a_stream_of_operations_leave_the_truth(world: Settings) -> None:
    rng = random.Random(20261128)
    kills = 0
    for round_ in range(RANDOM_KILLS):

        def stream(registry: Registry, start: int = round_) -> None:
            for i in range(start, start + 50):
                OPERATIONS["promote" if i % 3 else "restore"](registry, i)

        pid = os.fork()
        if pid == 0:
            try:
                registry, _ = open_registry(world)
                stream(registry)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        recover_and_check(world)
    print(f"\nrandom kills survived: {kills}")
    assert kills == RANDOM_KILLS
    registry, db = open_registry(world)
    promote(registry, 99)  # the registry still works after all of it
    db.dispose()
    recover_and_check(world)
    assert Path(world.models_dir, C.METADATA_FILE).exists()


def test_concurrent_writers_in_separate_processes_keep_one_true_history(world: Settings) -> None:
    """Six processes promoting and restoring at once: every change applied whole and recorded once."""
    writers, each = 6, 8
    before = len(ModelOps(world).events(kinds=("promote", "restore")))
    pids = []
    for w in range(writers):
        pid = os.fork()
        if pid == 0:
            done = 0
            try:
                registry, _ = open_registry(world)
                for i in range(each):
                    try:
                        OPERATIONS["promote" if (w + i) % 2 else "restore"](registry, w * 100 + i)
                        done += 1
                    except RegistryError:
                        pass  # e.g. the backup it picked was cleaned up by another writer meanwhile: refused whole
            finally:
                os._exit(done)
        pids.append(pid)
    applied = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        applied += os.WEXITSTATUS(status)
    recover_and_check(world)
    after = len(ModelOps(world).events(kinds=("promote", "restore")))
    print(f"\nconcurrent writers: {writers} processes, {applied} changes applied, {after - before} recorded")
    assert applied >= writers * each // 2 and after - before == applied
