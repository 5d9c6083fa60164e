"""The same-data world: a simulated fleet and two real versions trained on different windows (see
tests/core/test_samedata.py for why these seeds and windows)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.db import Database
from core.errors import NotFound
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate
from core.validation import validate_candidate

DATA_END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
FLEET = {"devices": 40, "days": 90, "seed": 12, "end": DATA_END}
OLD = {"days_back": 30, "end": DATA_END - dt.timedelta(days=10)}
NEW = {"days_back": 60, "end": DATA_END}


@dataclass(frozen=True)
class World:
    root: Path
    old: str  # versions
    new: str
    new_gate: dict

    def settings(self, root: Path | None = None) -> Settings:
        root = root or self.root
        return Settings.from_env({}, database_url=f"sqlite:///{root / 'world.db'}", models_dir=root / "models")


def _train_and_promote(registry: Registry, db: Database, window: dict, *, actor: str) -> tuple[str, dict]:
    """What a training run does (load, train, gate against the live model, promote), on a chosen data window."""
    features, source = load_training_data(db, days_back=window["days_back"], end=window["end"])
    candidate = train_candidate(features, days_back=window["days_back"], data_source=source)
    try:
        live = registry.load_models()
        current_model, columns = live.failure_model, live.metadata["feature_columns"]
    except NotFound:
        current_model, columns = None, None
    gate = validate_candidate(candidate, Settings().thresholds, current_model, columns)
    assert gate.valid, gate.reason
    fields = {**candidate.metadata_fields(), "validation": gate.to_dict()}
    return registry.promote(
        candidate.failure_model, candidate.anomaly_model, fields, actor=actor, trigger="test"
    ).version, gate.to_dict()


def build_world(root: Path) -> World:
    """Seed the fleet, then train, gate and promote the older and the newer version."""
    (root / "models").mkdir(parents=True)
    db = Database(f"sqlite:///{root / 'world.db'}")
    try:
        simulate_fleet(db, **FLEET)
        registry = Registry(root / "models", db)
        old, _ = _train_and_promote(registry, db, OLD, actor="scheduler")
        new, gate = _train_and_promote(registry, db, NEW, actor="scheduler")
    finally:
        db.dispose()
    return World(root, old, new, gate)
