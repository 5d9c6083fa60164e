"""Operation locks: who holds them, refusal naming the holder across threads, stale notes, independent locks."""

from __future__ import annotations

import json
import os
import threading

import pytest

from core import constants as C
from core.errors import Conflict
from core.locking import registry_lock, training_lock


def test_the_holder_is_named_while_held_and_gone_after(tmp_path):
    lock = registry_lock(tmp_path)
    assert lock.holder() is None
    with lock.hold("restore", "alice", details={"target": "1.0.0"}) as info:
        holder = lock.holder()
        assert holder == info and (holder.what, holder.actor, holder.pid) == ("restore", "alice", os.getpid())
        assert "restore by alice" in holder.describe() and holder.details == {"target": "1.0.0"}
    assert lock.holder() is None and not (tmp_path / C.LOCK_INFO_FILE).exists()


def test_a_second_caller_is_refused_with_who_holds_it(tmp_path):
    lock = registry_lock(tmp_path)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.hold("cleanup", "bob"):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(10)
        refused = pytest.raises(Conflict, match="another registry operation is running: cleanup by bob")
        with refused, registry_lock(tmp_path).hold("promote", "alice", timeout=0.2):
            pass
    finally:
        release.set()
        thread.join(10)
    with registry_lock(tmp_path).hold("promote", "alice", timeout=0.2):
        pass  # free again once bob is done


def test_a_note_left_by_a_dead_process_names_nobody(tmp_path):
    note = {"what": "promote", "actor": "ghost", "since": "2026-01-01T00:00:00+00:00", "pid": 2**22 + 12345}
    (tmp_path / C.LOCK_INFO_FILE).write_text(json.dumps({**note, "host": os.uname().nodename}))
    assert registry_lock(tmp_path).holder() is None
    with registry_lock(tmp_path).hold("restore", "alice", timeout=0.2):
        pass


def test_training_and_registry_locks_are_independent(tmp_path):
    with (
        training_lock(tmp_path).hold("training", "cron", timeout=0.2),
        registry_lock(tmp_path).hold("restore", "alice", timeout=0.2),
    ):
        assert training_lock(tmp_path).holder().actor == "cron"
        assert registry_lock(tmp_path).holder().actor == "alice"
