"""First run in this process: seed the simulated fleet when the database is empty, train when there is no model."""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import streamlit as st
from sqlalchemy import select

from core import constants as C
from core.context import AppContext
from core.db import HealthMetric
from core.errors import Conflict, IntegrityError
from core.jobs import conflict_message

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "DASHBOARD_BOOTSTRAP"


@dataclass
class BootstrapState:
    """First-run set-up in this process: seed the simulated fleet, train the first model."""

    stage: str = "checking"  # checking | seeding | training | done | failed | skipped
    message: str = "checking the database and the models directory"
    run_id: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> bool:
        return self.stage in ("checking", "seeding", "training")


_boot_lock = threading.Lock()
_boot: dict[tuple[str, str], BootstrapState] = {}


def bootstrap_enabled() -> bool:
    """False when DASHBOARD_BOOTSTRAP=0 (tests, or an operator who seeds by hand)."""
    return os.environ.get(BOOTSTRAP_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_bootstrap(ctx: AppContext) -> BootstrapState | None:
    """Start the first-run set-up once per process (in a background thread); None when it does not apply."""
    if not bootstrap_enabled() or ctx.db is None or ctx.jobs is None:
        return None
    key = (ctx.settings.database_url, str(ctx.settings.models_dir))
    with _boot_lock:
        state = _boot.get(key)
        if state is None:
            state = _boot[key] = BootstrapState()
            threading.Thread(target=_bootstrap_worker, args=(ctx, state), name="dashboard-bootstrap", daemon=True).start()
    return state


def _has_telemetry(ctx: AppContext) -> bool:
    assert ctx.db is not None
    with ctx.db.session() as s:
        return s.scalar(select(HealthMetric.id).limit(1)) is not None


def _bootstrap_worker(ctx: AppContext, state: BootstrapState) -> None:
    """Seed when the database has no telemetry; train when there is no model; record each step in `state`."""
    assert ctx.jobs is not None
    try:
        seeded = False
        if not _has_telemetry(ctx):
            from core.simulator import simulate_fleet

            state.stage, state.message = "seeding", "the database has no telemetry: simulating a fleet (150 devices, 120 days)"
            summary = simulate_fleet(ctx.db)
            state.message = f"simulated {summary.devices} devices, {summary.metric_rows:,} metric rows, {summary.failures} failures"
            seeded = True
        try:
            has_model = ctx.registry.current() is not None
        except IntegrityError:
            has_model = True  # a broken model is the operator's call (restore or retrain), not the bootstrap's
        if has_model:
            state.stage, state.message = "done", state.message if seeded else "nothing to set up"
            return
        state.stage, state.message = "training", "no model yet: training the first one"
        try:
            job = ctx.jobs.start(days_back=C.DEFAULT_DAYS_BACK, force=True, actor="dashboard-bootstrap", trigger="bootstrap")
        except Conflict:
            state.message = f"waiting for the training already running: {conflict_message(ctx.jobs.holder())}"
            while ctx.jobs.holder() is not None:
                time.sleep(1.0)
            state.stage, state.message = "done", "the other training run finished"
            return
        state.run_id = job.run_id
        run = ctx.jobs.wait(job.run_id)
        outcome = run.status if run else "unknown"
        state.stage = "done" if outcome == "promoted" else "failed"
        state.message = f"first model {run.version} trained and promoted" if run and run.version else f"first training run ended {outcome}: {(run.error if run else None) or 'see Retrain'}"
    except Exception as exc:  # the page shows it; the operator can still retrain by hand
        log.exception("dashboard bootstrap failed")
        state.stage, state.message = "failed", f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


def reset() -> None:
    """Forget every bootstrap state (tests)."""
    with _boot_lock:
        _boot.clear()
