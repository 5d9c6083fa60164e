"""The fleet simulator: realistic, reproducible frames and fast bulk writes to a real database."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import simulator
from core.constants import METRIC_NAMES, METRIC_RANGES, METRIC_UNITS
from core.db import Database, Device, HealthMetric
from core.errors import Conflict, InvalidInput
from core.features import load_telemetry
from core.simulator import delete_simulated, simulate_fleet, simulate_frames, telemetry_counts
from tests.core.conftest import FIXED_END, SMALL_FLEET

ROOT = Path(__file__).resolve().parents[2]
# 12 devices x 4 days to FIXED_END, seed 42, drawn by the simulator before it had parts: rows, failures, digest.
EXPECTED_ONE_PART = (2090, 2, "15a4bbb20fa6eee8")


def test_frames_have_the_service_schema_and_plausible_values(small_frames):
    metrics, failures, devices = small_frames
    assert list(metrics.columns) == ["device_id", "metric_name", "metric_value", "metric_unit", "timestamp"]
    assert set(metrics["metric_name"].astype(str)) == set(METRIC_NAMES)
    pairs = metrics[["metric_name", "metric_unit"]].drop_duplicates().astype(str)
    assert (
        len(pairs) == len(METRIC_NAMES)
        and dict(zip(pairs["metric_name"], pairs["metric_unit"], strict=True)) == METRIC_UNITS
    )
    start = FIXED_END - dt.timedelta(days=SMALL_FLEET["days"])
    assert metrics["timestamp"].min() >= start and metrics["timestamp"].max() <= FIXED_END
    for name, (low, high) in METRIC_RANGES.items():
        values = metrics.loc[metrics["metric_name"] == name, "metric_value"]
        assert values.between(low, high).all(), name
        assert values.std() > 0, f"{name} never varies"
    assert devices["simulated"].all() and len(devices) == SMALL_FLEET["devices"]
    assert devices["device_type"].nunique() >= 4
    assert set(failures["device_id"]) <= set(devices["id"]) and len(failures) > 10
    assert failures["failed_at"].between(start - dt.timedelta(days=10), FIXED_END).all()


def test_same_seed_same_fleet_other_seed_other_fleet():
    a = simulate_frames(devices=5, days=10, seed=1, end=FIXED_END)[0]
    b = simulate_frames(devices=5, days=10, seed=1, end=FIXED_END)[0]
    c = simulate_frames(devices=5, days=10, seed=2, end=FIXED_END)[0]
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["metric_value"].to_numpy(), c["metric_value"].to_numpy()[: len(a)])


def test_a_seed_gives_the_same_fleet_in_another_process():
    code = (
        "import datetime as dt, hashlib;"
        "from core.simulator import simulate_frames;"
        "m = simulate_frames(devices=20, days=20, seed=5, end=dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc))[0];"
        "print(hashlib.sha256(m['metric_value'].to_numpy().tobytes()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code, str(ROOT)], env=env, capture_output=True, text=True, check=True)
    here = simulate_frames(devices=20, days=20, seed=5, end=FIXED_END)[0]
    assert other.stdout.strip() == hashlib.sha256(here["metric_value"].to_numpy().tobytes()).hexdigest()


@pytest.mark.parametrize(
    "params",
    [
        {"devices": 0},
        {"devices": -3},
        {"days": 0},
        {"interval_hours": 0},
        {"interval_hours": -1},
        {"interval_hours": 24 * 7 + 1},
    ],
)
def test_bad_parameters_are_refused(params, empty_db):
    with pytest.raises(InvalidInput):
        simulate_frames(**params)
    with pytest.raises(InvalidInput):
        simulate_fleet(empty_db, **params)
    assert not telemetry_counts(empty_db).has_telemetry


def _zscores(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per reading: mean |z| over the 11 metrics, z against the device's own median and spread."""
    wide = metrics.pivot_table(
        index=["device_id", "timestamp"], columns="metric_name", values="metric_value", observed=True
    )
    grouped = wide.groupby(level="device_id", observed=True)
    spread = (grouped.transform("quantile", 0.75) - grouped.transform("quantile", 0.25)).replace(0, np.nan)
    z = ((wide - grouped.transform("median")) / spread).abs()
    return z.mean(axis=1).rename("z").reset_index()


def _near(z: pd.DataFrame, failures: pd.DataFrame, lo_days: float, hi_days: float) -> pd.Series:
    """Readings within [failure + lo, failure + hi) of one of their device's failures."""
    events = failures[["device_id", "failed_at"]].astype({"device_id": str})
    joined = z.merge(events, left_on=z["device_id"].astype(str), right_on="device_id")
    delta = (joined["timestamp"] - joined["failed_at"]) / pd.Timedelta(days=1)
    return joined.loc[(delta >= lo_days) & (delta < hi_days), "z"]


def test_devices_degrade_before_failures_and_recover_after_repair(default_frames):
    metrics, failures, _ = default_frames
    z = _zscores(metrics)
    before = _near(z, failures, -2, 0).mean()
    after = _near(z, failures, 3, 5).mean()
    typical = z["z"].median()
    assert before > 2 * typical, (before, typical)
    assert after < 0.5 * before, (after, before)


def test_nothing_is_reported_while_a_device_waits_for_repair(default_frames):
    metrics, failures, _ = default_frames
    stamps = metrics.drop_duplicates(["device_id", "timestamp"])[["device_id", "timestamp"]]
    z = stamps.assign(z=0.0)
    # Repairs take at least 6 hours.
    assert len(_near(z, failures, 0, 0.25)) == 0


def test_learnable_but_noisy_some_failures_give_little_warning(default_frames):
    metrics, failures, _ = default_frames
    z = _zscores(metrics)
    last_day = z.merge(failures.astype({"device_id": str}), left_on=z["device_id"].astype(str), right_on="device_id")
    delta = (last_day["timestamp"] - last_day["failed_at"]) / pd.Timedelta(days=1)
    per_failure = last_day[(delta >= -1) & (delta < 0)].groupby("failed_at")["z"].max()
    quiet = (per_failure < z["z"].quantile(0.9)).mean()
    assert 0.02 < quiet < 0.5, quiet


def _response_times(frame: pd.DataFrame) -> pd.Series:
    return frame.loc[frame["metric_name"] == "response_time"].set_index(["device_id", "timestamp"])["metric_value"]


def test_drift_shifts_baselines_from_the_given_date_only():
    drift_day = (FIXED_END - dt.timedelta(days=10)).date()
    plain, _, plain_devices = simulate_frames(devices=10, days=30, seed=3, end=FIXED_END)
    drifted, _, devices = simulate_frames(devices=10, days=30, seed=3, end=FIXED_END, drift_from=drift_day)
    a, b = _response_times(plain), _response_times(drifted)
    cut = pd.Timestamp(drift_day, tz="UTC")
    early = a.index.get_level_values("timestamp") < cut
    late = a.index.get_level_values("timestamp") >= cut + pd.Timedelta(days=3)
    np.testing.assert_allclose(a[early], b[early])
    # Baselines scale by 0.7; where a device was degrading, the new firmware also hides most of it (masking), so
    # those readings are lower still: the shift is exact away from degradation, and never upwards.
    ratio = b[late] / a[late]
    assert (np.abs(ratio - 0.7) < 1e-3).mean() > 0.85
    assert (b[late] <= a[late] * 0.7 + 1e-3).all()
    assert (devices["firmware"] != plain_devices["firmware"]).all()


def test_simulate_fleet_writes_what_it_simulates(sim_db):
    metrics, failures, devices = simulate_frames(**SMALL_FLEET)
    counts = telemetry_counts(sim_db)
    assert counts.simulated_devices == len(devices) and counts.simulated_metric_rows == len(metrics)
    assert counts.failures == len(failures) and not counts.has_real_telemetry
    loaded = load_telemetry(sim_db, days_back=SMALL_FLEET["days"], end=FIXED_END)
    key = ["device_id", "timestamp", "metric_name"]
    got = loaded.metrics_long.astype({"device_id": str, "metric_name": str}).sort_values(key).reset_index(drop=True)
    want = metrics.astype({"device_id": str, "metric_name": str}).sort_values(key).reset_index(drop=True)
    assert len(got) == len(want)
    np.testing.assert_array_equal(got["metric_value"].to_numpy(), want["metric_value"].to_numpy())
    assert (got["timestamp"].to_numpy() == want["timestamp"].to_numpy()).all()
    assert sorted(loaded.failures["failed_at"]) == sorted(failures["failed_at"])
    with sim_db.session() as s:
        assert s.query(Device).filter(Device.simulated.is_(False)).count() == 0


def test_seeding_twice_is_a_conflict_until_simulated_rows_are_deleted(sim_db):
    with pytest.raises(Conflict, match="--replace"):
        simulate_fleet(sim_db, **SMALL_FLEET)
    with sim_db.session() as s:
        s.add(Device(id="real-1", name="Real 1", device_type="sensor", installed_at=FIXED_END, simulated=False))
        s.flush()
        s.add(
            HealthMetric(
                device_id="real-1", metric_name="temperature", metric_value=21.0, metric_unit="C", timestamp=FIXED_END
            )
        )
    removed = delete_simulated(sim_db)
    counts = telemetry_counts(sim_db)
    assert removed > 0 and counts.simulated_metric_rows == 0 and counts.simulated_devices == 0
    assert counts.real_devices == 1 and counts.real_metric_rows == 1 and counts.failures == 0
    summary = simulate_fleet(sim_db, devices=3, days=5, end=FIXED_END)
    assert telemetry_counts(sim_db).simulated_metric_rows == summary.metric_rows


def test_default_fleet_seeds_a_fresh_sqlite_file_in_under_30_seconds(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'default.db'}")
    summary = simulate_fleet(db, end=FIXED_END)
    assert summary.seconds < 30, f"seeding took {summary.seconds:.1f} s"
    assert summary.devices == 150 and summary.metric_rows > 700_000 and summary.failures > 100
    assert summary.end - summary.start == dt.timedelta(days=120)
    # The bulk load rebuilt the indexes it dropped.
    with db.engine.connect() as conn:
        names = {row[1] for row in conn.exec_driver_sql("PRAGMA index_list('device_health_metrics')")}
    assert {"ix_metrics_timestamp", "ix_metrics_device_timestamp"} <= names
    db.dispose()


def test_a_large_fleet_is_simulated_and_written_part_by_part(any_db, monkeypatch):
    """Parts of SIM_PART_DEVICES devices, each with its own stream; the database gets exactly what the frames hold."""
    monkeypatch.setattr(simulator, "SIM_PART_DEVICES", 4)
    monkeypatch.setattr(simulator, "COPY_ROWS", 500)
    fleet = {"devices": 10, "days": 6, "end": FIXED_END}
    metrics, failures, devices = simulate_frames(**fleet)
    assert devices["id"].tolist() == [f"sim-{i:04d}" for i in range(1, 11)]
    assert metrics["device_id"].dtype == "category" and metrics["device_id"].nunique() == 10
    # Parts are not copies of each other: the same position in two parts draws other baselines.
    first, second = (metrics[metrics["device_id"] == d]["metric_value"].to_numpy() for d in ("sim-0001", "sim-0005"))
    assert not np.array_equal(first[: len(second)], second[: len(first)])
    summary = simulate_fleet(any_db, **fleet)
    assert (summary.devices, summary.metric_rows, summary.failures) == (10, len(metrics), len(failures))
    loaded = load_telemetry(any_db, days_back=fleet["days"], end=FIXED_END)
    key = ["device_id", "timestamp", "metric_name"]
    got = loaded.metrics_long.astype({"device_id": str, "metric_name": str}).sort_values(key).reset_index(drop=True)
    want = metrics.astype({"device_id": str, "metric_name": str}).sort_values(key).reset_index(drop=True)
    np.testing.assert_array_equal(got["metric_value"].to_numpy(), want["metric_value"].to_numpy())
    assert got["device_id"].tolist() == want["device_id"].tolist()
    assert sorted(loaded.failures["failed_at"]) == sorted(failures["failed_at"])


def test_a_fleet_within_one_part_draws_as_before_parts_existed():
    """Up to SIM_PART_DEVICES devices the fleet is one part seeded with the seed itself: fleets seeded before parts
    existed are drawn again unchanged (the digest was taken from the simulator before parts)."""
    metrics, failures, devices = simulate_frames(devices=12, days=4, end=FIXED_END)
    digest = hashlib.sha256(metrics["metric_value"].to_numpy().tobytes()).hexdigest()[:16]
    assert (len(metrics), len(failures), len(devices)) == (EXPECTED_ONE_PART[0], EXPECTED_ONE_PART[1], 12)
    assert digest == EXPECTED_ONE_PART[2]


def test_seeding_and_replacing_a_fleet_outlast_the_interactive_statement_timeout(postgres_url):
    from tests.conftest import fresh_postgres

    fresh_postgres(postgres_url).dispose()  # emptied; then a connection whose statements may run for 50 ms
    db = Database(postgres_url, timeout=0.05)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "50ms"
        fleet = {**SMALL_FLEET, "devices": 80, "days": 60}  # ~210,000 readings: a COPY of well over 50 ms
        summary = simulate_fleet(db, **fleet)
        assert summary.metric_rows > 200_000
        assert delete_simulated(db) == summary.metric_rows
        assert telemetry_counts(db).simulated_metric_rows == 0
    finally:
        db.dispose()
