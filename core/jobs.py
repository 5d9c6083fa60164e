"""Background training jobs in this process; their state lives in training_runs so any process can read it."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.db import Database
from core.domain import RunRecord
from core.history import History
from core.locking import LockInfo
from core.registry import Registry
from core.service import Trainer, validate_days_back

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStart:
    """A job that was accepted and is running in the background."""

    run_id: str
    started_at: dt.datetime
    days_back: int
    force: bool


class JobRunner:
    """Starts at most one training job at a time (per models directory, across processes via the training lock)."""

    def __init__(self, settings: Settings, db: Database, registry: Registry | None = None) -> None:
        self.trainer = Trainer(settings, db, registry)
        self.history = History(db)
        self._guard = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    def holder(self) -> LockInfo | None:
        """Who is training right now (this process or another), or None."""
        return self.trainer.lock.holder()

    def start(self, *, days_back: object, force: bool, actor: str, trigger: str = "dashboard", allow_sample_data: bool = False) -> JobStart:
        """Take the training lock now (so a second caller gets Conflict at once) and train in a thread."""
        days = validate_days_back(days_back)
        run_id = uuid.uuid4().hex
        with self._guard:
            stack = ExitStack()
            stack.enter_context(
                self.trainer.lock.hold(
                    f"training (days_back={days})", actor, timeout=0.2, details={"trigger": trigger, "run_id": run_id}
                )
            )
            try:
                self._close_abandoned()
                params = {"days_back": days, "force": force, "classifier": self.trainer.settings.classifier, "allow_sample_data": allow_sample_data}
                self.history.start_run(trigger=trigger, actor=actor, params=params, run_id=run_id)
            except BaseException:
                stack.close()
                raise
            thread = threading.Thread(
                target=self._work,
                name=f"train-{run_id[:8]}",
                kwargs=dict(stack=stack, run_id=run_id, days=days, force=force, actor=actor, trigger=trigger, allow_sample_data=allow_sample_data),
                daemon=True,
            )
            self._threads[run_id] = thread
            thread.start()
            return JobStart(run_id, dt.datetime.now(dt.timezone.utc), days, force)

    def _work(self, *, stack: ExitStack, run_id: str, days: int, force: bool, actor: str, trigger: str, allow_sample_data: bool) -> None:
        try:
            self.trainer.run(
                days_back=days, force=force, trigger=trigger, actor=actor, allow_sample_data=allow_sample_data, run_id=run_id, held_lock=stack
            )
        except Exception:
            log.exception("background training %s failed", run_id)
        finally:
            stack.close()
            self._threads.pop(run_id, None)

    def _close_abandoned(self) -> None:
        """We hold the training lock, so any run still marked running belongs to a process that died."""
        self.history.mark_abandoned(dt.datetime.now(dt.timezone.utc), "the process running this job stopped before it finished")

    def get(self, run_id: str) -> RunRecord | None:
        return self.history.get_run(run_id)

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord | None:
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(run_id)

    def running(self) -> dict[str, Any] | None:
        holder = self.holder()
        return holder.to_dict() if holder else None


def conflict_message(holder: LockInfo | None) -> str:
    if holder is None:
        return "another training job is running; wait for it to finish"
    return f"training is already running: {holder.describe()}"


