"""Background training jobs in this process; their state lives in training_runs so any process can read it."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from core.config import Settings
from core.db import Database
from core.domain import RunRecord
from core.errors import Conflict
from core.history import History
from core.locking import LockInfo
from core.registry import Registry
from core.training_run import Trainer, TrainingRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStart:
    """A job that was accepted and is running in the background."""

    run_id: str
    started_at: dt.datetime
    request: TrainingRequest


class JobRunner:
    """Starts at most one training job at a time (per models directory, across processes via the training lock)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        registry: Registry | None = None,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self.trainer = Trainer(settings, db, registry)
        self._on_finish = on_finish  # called after each job (the alert engine evaluates)
        self.history = History(db)
        self._guard = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    def holder(self) -> LockInfo | None:
        """Who is training right now (this process or another), or None."""
        return self.trainer.lock.holder()

    def start(self, request: TrainingRequest, *, actor: str, trigger: str) -> JobStart:
        """Take the training lock now (so a second caller gets Conflict at once, naming the holder) and train."""
        run_id = uuid.uuid4().hex
        with self._guard:
            stack = ExitStack()
            details = {"trigger": trigger, "run_id": run_id}
            try:
                stack.enter_context(self.trainer.lock.hold(request.lock_label, actor, timeout=0.2, details=details))
            except Conflict:
                raise Conflict(conflict_message(self.holder())) from None
            try:
                self._close_abandoned()
                self.history.start_run(trigger=trigger, actor=actor, params=request.params, run_id=run_id)
            except BaseException:
                stack.close()
                raise
            thread = threading.Thread(
                target=self._work,
                name=f"train-{run_id[:8]}",
                kwargs=dict(stack=stack, run_id=run_id, request=request, actor=actor, trigger=trigger),
                daemon=True,
            )
            self._threads[run_id] = thread
            thread.start()
            return JobStart(run_id, dt.datetime.now(dt.UTC), request)

    def _work(self, *, stack: ExitStack, run_id: str, request: TrainingRequest, actor: str, trigger: str) -> None:
        try:
            self.trainer.run(request, trigger=trigger, actor=actor, run_id=run_id, held_lock=stack)
        except Exception:
            log.exception("background training %s failed", run_id)
        finally:
            stack.close()
            if self._on_finish is not None:
                self._on_finish()
            self._threads.pop(run_id, None)

    def _close_abandoned(self) -> None:
        """We hold the training lock, so any run still marked running belongs to a process that died."""
        self.history.mark_abandoned(dt.datetime.now(dt.UTC), "the process running this job stopped before it finished")

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord | None:
        """Wait for a job started by this process; its record afterwards."""
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
        return self.history.get_run(run_id)


def conflict_message(holder: LockInfo | None) -> str:
    """Why a training run cannot start now."""
    if holder is None:
        return "another training job is running; wait for it to finish"
    return f"training is already running: {holder.describe()}"
