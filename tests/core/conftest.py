"""Fixtures for simulator, features, training and validation tests: simulated fleets and a trained candidate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from core.db import Database
from core.features import FeatureSet, build_features
from core.simulator import simulate_fleet, simulate_frames
from core.training import Candidate, train_candidate

# A fixed end keeps every simulated fleet, and so every test, deterministic.
FIXED_END = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)
SMALL_FLEET = {"devices": 40, "days": 60, "seed": 42, "end": FIXED_END}


@pytest.fixture(scope="session")
def default_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The default fleet (150 devices, 120 days, 6 h) in memory."""
    return simulate_frames(end=FIXED_END)


@pytest.fixture(scope="session")
def default_features(default_frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> FeatureSet:
    metrics, failures, _ = default_frames
    return build_features(metrics, failures)


@pytest.fixture(scope="session")
def candidate(default_features: FeatureSet) -> Candidate:
    """The default classifier trained on the default fleet."""
    return train_candidate(default_features, seed=42)


@pytest.fixture(scope="session")
def small_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return simulate_frames(**SMALL_FLEET)


@pytest.fixture
def sim_db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file seeded with the small fleet."""
    database = Database(f"sqlite:///{tmp_path / 'telemetry.db'}")
    simulate_fleet(database, **SMALL_FLEET)
    yield database
    database.dispose()


@pytest.fixture
def empty_db(tmp_path: Path) -> Iterator[Database]:
    """A real SQLite file with the schema and no rows."""
    database = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    yield database
    database.dispose()
