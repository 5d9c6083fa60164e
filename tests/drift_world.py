"""A simulated fleet whose firmware changed 10 days ago, and a model trained on it: shared by the drift tests."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.constants import METRIC_NAMES
from core.db import Database
from core.identity import local_principal
from core.modelops import ModelOps
from core.simulator import simulate_fleet
from core.training_run import TrainingRequest

# What the simulator's firmware update shifts (core/simulator.py, _metric_grid), and what it leaves alone.
SHIFTED = {"response_time", "error_rate", "temperature", "data_transfer_rate", "connection_drops"}
UNSHIFTED = set(METRIC_NAMES) - SHIFTED
FLEET = dict(devices=60, days=60, seed=7)
DRIFT_DAYS_AGO = 10


@dataclass(frozen=True)
class DriftWorld:
    root: Path
    settings: Settings
    midnight: dt.datetime

    def copy(self, root: Path) -> Settings:
        """A private copy of the world's database and models directory, and settings on it."""
        root.mkdir(parents=True, exist_ok=True)
        source, target = sqlite3.connect(self.root / "drift.db"), sqlite3.connect(root / "drift.db")
        source.backup(target)
        source.close()
        target.close()
        shutil.copytree(self.settings.models_dir, root / "models")
        return Settings.from_env({}, database_url=f"sqlite:///{root / 'drift.db'}", models_dir=root / "models")


def midnight() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def build_drift_world(root: Path) -> DriftWorld:
    """Seed the fleet up to today's midnight with the firmware change, and train and promote a model on it.

    The model's training window ends before the last 7 days begin (its last labelled day is 8 days back).
    """
    end = midnight()
    settings = Settings.from_env({}, database_url=f"sqlite:///{root / 'drift.db'}", models_dir=root / "models")
    db = Database(settings.database_url)
    simulate_fleet(db, **FLEET, end=end, drift_from=(end - dt.timedelta(days=DRIFT_DAYS_AGO)).date())
    db.dispose()
    ops = ModelOps(settings)
    try:
        outcome = ops.train(TrainingRequest(90, force=True), actor=local_principal("test"), trigger="test")
        if outcome.status != "promoted":
            raise RuntimeError(f"the drift world's model was not promoted: {outcome.message}")
    finally:
        ops.dispose()
    return DriftWorld(root, settings, end)
