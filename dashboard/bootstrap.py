"""First run in this process: the application layer seeds and trains in a thread; the banner follows its state."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from core.modelops import ModelOps

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "DASHBOARD_BOOTSTRAP"


@dataclass
class BootstrapState:
    """First-run set-up in this process: seed the simulated fleet, train the first model."""

    stage: str = "checking"  # checking | seeding | training | done | failed
    message: str = "checking the database and the models directory"
    run_id: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> bool:
        return self.stage in ("checking", "seeding", "training")

    def report(self, stage: str, message: str, run_id: str | None) -> None:
        self.stage, self.message = stage, message
        self.run_id = run_id or self.run_id


_boot_lock = threading.Lock()
_boot: dict[tuple[str, str], BootstrapState] = {}


def bootstrap_enabled() -> bool:
    """False when DASHBOARD_BOOTSTRAP=0 (tests, or an operator who seeds by hand)."""
    return os.environ.get(BOOTSTRAP_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_bootstrap(ops: ModelOps) -> BootstrapState | None:
    """Start the first-run set-up once per process (in a background thread); None when it does not apply."""
    if not bootstrap_enabled() or ops.database_error is not None:
        return None
    key = (ops.settings.database_url, str(ops.settings.models_dir))
    with _boot_lock:
        state = _boot.get(key)
        if state is None:
            state = _boot[key] = BootstrapState()
            threading.Thread(target=_worker, args=(ops, state), name="dashboard-bootstrap", daemon=True).start()
    return state


def _worker(ops: ModelOps, state: BootstrapState) -> None:
    try:
        ops.first_run(state.report)
        ops.warm_up()  # the server's own warm-up ran before there was a model: load the first one now
    except Exception as exc:  # the page shows it; the operator can still retrain by hand
        log.exception("dashboard bootstrap failed")
        state.report("failed", f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", None)
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


def reset() -> None:
    """Forget every bootstrap state (tests)."""
    with _boot_lock:
        _boot.clear()
