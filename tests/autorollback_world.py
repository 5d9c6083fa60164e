"""A simulated fleet scored daily by a good version, then by a worse one promoted over it (trained on a few days),
past the label horizon: the world automatic rollback is tested in."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Settings
from core.identity import local_principal
from core.modelops import ModelOps
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate

END = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)
FLEET = {"devices": 40, "days": 80, "seed": 42, "end": END}
GOOD_UNTIL = END - dt.timedelta(days=40)  # the good version: 35 days of data up to here
BAD_FROM = END - dt.timedelta(days=25)  # the worse version (20 days of data up to here) goes live this day
GOOD_DAYS, BAD_DAYS = 35, 20
ACTOR = local_principal("tester")


@dataclass(frozen=True)
class World:
    root: Path
    good: str  # versions
    bad: str

    def copy(self, root: Path, **settings: Any) -> ModelOps:
        """The application layer on a private copy of the world's database and models directory."""
        root.mkdir(parents=True, exist_ok=True)
        source, target = sqlite3.connect(self.root / "world.db"), sqlite3.connect(root / "world.db")
        source.backup(target)
        source.close()
        target.close()
        shutil.copytree(self.root / "models", root / "models")
        return ModelOps(settings_for(root, **settings))


def settings_for(root: Path, **overrides: Any) -> Settings:
    return Settings.from_env({}, database_url=f"sqlite:///{root / 'world.db'}", models_dir=root / "models", **overrides)


def _promote(ops: ModelOps, days_back: int, end: dt.datetime) -> str:
    features, _ = load_training_data(ops.db, days_back=days_back, end=end)
    trained = train_candidate(features, seed=42)
    fields = trained.metadata_fields()
    return ops.registry.promote(
        trained.failure_model, trained.anomaly_model, fields, actor="tester", trigger="test"
    ).version


def build_world(root: Path) -> World:
    """Seed the fleet; the good version goes live and scores the fleet daily until the worse one is promoted over
    it, which scores every day since (so its first 17 days have outcomes by END)."""
    (root / "models").mkdir(parents=True)
    ops = ModelOps(settings_for(root))
    try:
        assert ops.db is not None
        simulate_fleet(ops.db, **FLEET)
        good = _promote(ops, GOOD_DAYS, GOOD_UNTIL)
        ops.score_fleet(actor=ACTOR, as_of=BAD_FROM, start=GOOD_UNTIL.date(), end=BAD_FROM.date())
        bad = _promote(ops, BAD_DAYS, BAD_FROM)
        first = BAD_FROM.date() + dt.timedelta(days=1)
        ops.score_fleet(actor=ACTOR, as_of=END, start=first, end=END.date())
    finally:
        ops.dispose()
    return World(root, good, bad)
