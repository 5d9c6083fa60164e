"""Daily aggregates: training reads device-days that give the same features as the raw readings, kept up to date."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from core import daily_aggregates
from core.constants import METRIC_NAMES, METRIC_UNITS
from core.daily_aggregates import daily_training_features, daily_unlabelled_features, refresh_daily_aggregates
from core.db import Database, Device, HealthMetric, device_day_metrics
from core.features import FeatureSet, build_features, daily_features, load_telemetry
from core.simulator import append_readings, delete_simulated, simulate_fleet, simulate_frames
from core.training import load_training_data, train_candidate
from tests.core.conftest import FIXED_END, SMALL_FLEET

DAY = dt.timedelta(days=1)


@pytest.fixture
def fleet_db(any_db: Database) -> Iterator[Database]:
    """The small fleet seeded into SQLite and into PostgreSQL."""
    simulate_fleet(any_db, **SMALL_FLEET)
    yield any_db


def raw_features(db: Database, *, days_back: int, end: dt.datetime) -> FeatureSet:
    """Today's reference: every reading loaded into pandas and aggregated there."""
    telemetry = load_telemetry(db, days_back=days_back, end=end)
    return build_features(telemetry.metrics_long, telemetry.failures)


def assert_same(raw: FeatureSet, daily: FeatureSet) -> None:
    """Same rows in the same order, same labels, features equal within float rounding of SQL sums."""
    assert len(raw) == len(daily) > 0
    assert list(raw.X.columns) == list(daily.X.columns)
    assert (raw.day.to_numpy() == daily.day.to_numpy()).all()
    assert (raw.device_id.to_numpy() == daily.device_id.to_numpy()).all()
    assert (raw.y.to_numpy() == daily.y.to_numpy()).all()
    np.testing.assert_allclose(daily.X.to_numpy(), raw.X.to_numpy(), rtol=1e-9, atol=1e-7)


def add_readings(db: Database, device_id: str, at: dt.datetime, values: dict[str, float]) -> None:
    """Readings written as the service writes them: straight into device_health_metrics."""
    rows = [
        {
            "device_id": device_id,
            "metric_name": k,
            "metric_value": v,
            "metric_unit": METRIC_UNITS.get(k, ""),
            "timestamp": at,
        }
        for k, v in values.items()
    ]
    with db.engine.begin() as conn:
        conn.execute(insert(HealthMetric), rows)


def full_reading(scale: float) -> dict[str, float]:
    """All 11 metrics with plausible, distinct values."""
    return {name: round(1.0 + scale * (i + 1), 3) for i, name in enumerate(METRIC_NAMES)}


@pytest.mark.parametrize(
    "end, days_back",
    [
        (FIXED_END, 60),  # noon: both edge days are partial
        (FIXED_END.replace(hour=0), 45),  # midnight: the last day holds a single instant
        (FIXED_END - 20 * DAY + dt.timedelta(hours=7, minutes=13), 30),  # inside the data, odd time of day
        (FIXED_END - 5 * DAY, 50),  # noon, both edges cut into the readings
    ],
)
def test_features_from_device_days_equal_features_from_readings(fleet_db, end, days_back):
    assert_same(
        raw_features(fleet_db, days_back=days_back, end=end),
        daily_training_features(fleet_db, days_back=days_back, end=end),
    )


def assert_same_unlabelled(db: Database, *, days_back: int, end: dt.datetime) -> None:
    """Unlabelled features (every device-day, the newest included) equal both ways."""
    telemetry = load_telemetry(db, days_back=days_back, end=end)
    raw = daily_features(telemetry.metrics_long)
    daily = daily_unlabelled_features(db, days_back=days_back, end=end)
    assert list(raw.columns) == list(daily.columns) and len(raw) == len(daily) > 0
    assert (raw["device_id"].to_numpy() == daily["device_id"].to_numpy()).all()
    assert (raw["day"].to_numpy() == daily["day"].to_numpy()).all()
    np.testing.assert_allclose(daily.iloc[:, 2:].to_numpy(float), raw.iloc[:, 2:].to_numpy(float), rtol=1e-9, atol=1e-7)


def test_unlabelled_features_match_too(fleet_db):
    assert_same_unlabelled(fleet_db, days_back=20, end=FIXED_END)


def test_seeding_builds_the_table_and_training_reads_it(fleet_db):
    with fleet_db.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(device_day_metrics)).scalar_one()
        devices = conn.execute(select(func.count(func.distinct(device_day_metrics.c.device_id)))).scalar_one()
    assert devices == SMALL_FLEET["devices"] and stored > SMALL_FLEET["devices"] * (SMALL_FLEET["days"] - 10)
    # Nothing new since seeding: the refresh before a retrain touches nothing.
    again = refresh_daily_aggregates(fleet_db)
    assert not again.full and again.device_days == 0
    features, source = load_training_data(fleet_db, days_back=60, end=FIXED_END, min_samples=100)
    assert source == "database"
    assert_same(raw_features(fleet_db, days_back=60, end=FIXED_END), features)


def test_new_readings_refresh_only_the_days_they_touch(fleet_db):
    past = FIXED_END.replace(hour=0) - 10 * DAY + dt.timedelta(hours=3)  # an existing, already aggregated day
    new_day = FIXED_END.replace(hour=0) + 2 * DAY  # a day after the fleet's last reading
    add_readings(fleet_db, "sim-0001", past, full_reading(50.0))
    add_readings(fleet_db, "sim-0002", past, {"temperature": 99.5, "not_a_metric": 5.0})
    for hour in (1, 9, 17):
        for device in ("sim-0001", "sim-0003"):
            add_readings(fleet_db, device, new_day + dt.timedelta(hours=hour), full_reading(hour))
    summary = refresh_daily_aggregates(fleet_db)
    # An end two days after the new day puts both touched days inside the range, where rows come from the table.
    end = new_day + 3 * DAY
    assert_same(raw_features(fleet_db, days_back=70, end=end), daily_training_features(fleet_db, days_back=70, end=end))
    assert_same_unlabelled(fleet_db, days_back=20, end=end)
    assert not summary.full
    assert summary.device_days == 4  # (sim-0001, past), (sim-0002, past), (sim-0001, new), (sim-0003, new)
    assert summary.readings_seen == 11 + 2 + 3 * 2 * 11
    with fleet_db.engine.connect() as conn:
        row = conn.execute(
            select(device_day_metrics.c.temperature__n, device_day_metrics.c.temperature__max).where(
                device_day_metrics.c.device_id == "sim-0003", device_day_metrics.c.day == new_day.date()
            )
        ).one()
    assert row == (3, full_reading(17)["temperature"])


def test_a_new_device_gets_its_own_days(fleet_db):
    with fleet_db.engine.begin() as conn:
        conn.execute(
            insert(Device),
            [{"id": "real-1", "name": "Real 1", "device_type": "sensor", "installed_at": FIXED_END - 400 * DAY}],
        )
    start = FIXED_END.replace(hour=0) - 15 * DAY
    for i in range(15 * 4):
        add_readings(fleet_db, "real-1", start + dt.timedelta(hours=6 * i + 2), full_reading(1 + i % 7))
    features = daily_training_features(fleet_db, days_back=40, end=FIXED_END)  # refreshes first
    assert "real-1" in set(features.device_id)
    assert_same(raw_features(fleet_db, days_back=40, end=FIXED_END), features)


def test_deleting_and_reseeding_a_larger_fleet_rebuilds_what_changed(fleet_db):
    delete_simulated(fleet_db)
    with fleet_db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(device_day_metrics)).scalar_one() == 0
    # More readings than before: on SQLite the new rows reuse the deleted ids, some below the old mark.
    simulate_fleet(fleet_db, **{**SMALL_FLEET, "devices": 50, "seed": 7})
    assert_same(
        raw_features(fleet_db, days_back=60, end=FIXED_END),
        daily_training_features(fleet_db, days_back=60, end=FIXED_END),
    )


def test_a_work_set_that_outnumbers_the_stored_days_is_rebuilt_instead(fleet_db, monkeypatch, caplog):
    monkeypatch.setattr(daily_aggregates, "REBUILD_MIN_DEVICE_DAYS", 3)
    for device in ("sim-0001", "sim-0002", "sim-0003", "sim-0004"):  # 4 touched days of some 1,500 stored
        add_readings(fleet_db, device, FIXED_END.replace(hour=0) + 2 * DAY, full_reading(2.0))
    assert not refresh_daily_aggregates(fleet_db).full
    delete_simulated(fleet_db)
    with caplog.at_level("INFO", logger="core.daily_aggregates"):
        simulate_fleet(fleet_db, **{**SMALL_FLEET, "seed": 7})  # every day of the new fleet is touched
    assert "daily aggregates: rebuilt" in caplog.text
    assert_same(
        raw_features(fleet_db, days_back=60, end=FIXED_END),
        daily_training_features(fleet_db, days_back=60, end=FIXED_END),
    )


def test_a_model_trained_on_device_days_scores_as_one_trained_on_readings(fleet_db):
    raw = train_candidate(raw_features(fleet_db, days_back=60, end=FIXED_END), seed=3)
    daily = train_candidate(daily_training_features(fleet_db, days_back=60, end=FIXED_END), seed=3)
    for name in ("accuracy", "precision", "recall", "f1_score", "roc_auc"):
        assert daily.metrics[name] == pytest.approx(raw.metrics[name], abs=1e-9), name
    assert daily.metrics["confusion_matrix"] == raw.metrics["confusion_matrix"]
    assert daily.training_data_stats == raw.training_data_stats


def test_readings_deleted_or_changed_by_anyone_refresh_their_days(fleet_db):
    day = FIXED_END.replace(hour=0) - 12 * DAY
    m = HealthMetric.__table__.c
    with fleet_db.engine.begin() as conn:
        # Plain SQL, as an operator's clean-up would run it: only the triggers can notice.
        conn.execute(
            HealthMetric.__table__.delete().where(
                m.device_id == "sim-0004", m.timestamp >= day, m.timestamp < day + DAY, m.metric_name == "humidity"
            )
        )
        conn.execute(
            HealthMetric.__table__.update()
            .where(m.device_id == "sim-0005", m.timestamp >= day, m.timestamp < day + DAY)
            .values(metric_value=m.metric_value * 1.5)
        )
    daily = daily_training_features(fleet_db, days_back=60, end=FIXED_END)
    assert_same(raw_features(fleet_db, days_back=60, end=FIXED_END), daily)
    # sim-0004 lost a metric that day: like the raw path, it has no row for it any more.
    assert not ((daily.device_id == "sim-0004") & (daily.day == day)).any()


def test_new_readings_after_the_last_written_were_deleted_are_folded_in(fleet_db):
    m = HealthMetric.__table__.c
    with fleet_db.engine.begin() as conn:
        top = conn.execute(select(func.max(m.id))).scalar_one()
        deleted = conn.execute(HealthMetric.__table__.delete().where(m.id > top - 100))
    # SQLite hands the deleted top ids out again: without the mark moving down, the new readings holding them
    # would never be folded in. More new readings than deleted ones, so the highest id passes the old mark.
    new_day = FIXED_END.replace(hour=0) + 2 * DAY
    for device in ("sim-0006", "sim-0007", "sim-0008"):
        for hour in (2, 8, 14, 20):
            add_readings(fleet_db, device, new_day + dt.timedelta(hours=hour), full_reading(hour / 3))
    assert 0 < deleted.rowcount < 3 * 4 * len(METRIC_NAMES)
    end = new_day + 3 * DAY
    # The newest days have no labels yet: unlabelled features show every device-day.
    assert_same_unlabelled(fleet_db, days_back=20, end=end)
    assert_same(raw_features(fleet_db, days_back=70, end=end), daily_training_features(fleet_db, days_back=70, end=end))


def test_a_grid_that_outgrows_its_first_size_holds_the_same_numbers(fleet_db):
    from core.daily_aggregates import _GridBuilder, _read_into, _window_select

    start, end = FIXED_END - 10 * DAY, FIXED_END
    grids = []
    for capacity in (1, SMALL_FLEET["devices"]):
        builder = _GridBuilder(start.date(), 11, capacity)
        with fleet_db.engine.connect() as conn:
            _read_into(conn, _window_select(start, end), builder)
        grids.append(builder.grid(end))
    small, exact = grids
    assert list(small.devices) == list(exact.devices) and len(exact.devices) == SMALL_FLEET["devices"]
    for name in ("count", "total", "squares", "low", "high"):
        np.testing.assert_array_equal(getattr(small, name), getattr(exact, name))


def test_appending_a_day_of_readings_refreshes_just_that_day(fleet_db):
    next_day = FIXED_END.replace(hour=0) + DAY
    metrics, _, _ = simulate_frames(devices=5, days=2, seed=9, end=next_day + DAY)
    stamps = metrics["timestamp"]
    metrics = metrics[(stamps >= next_day) & (stamps < next_day + DAY)].reset_index(drop=True)
    summary = append_readings(fleet_db, metrics)
    assert not summary.full and summary.readings_seen == len(metrics) > 0
    assert summary.device_days == metrics["device_id"].nunique()
    assert_same_unlabelled(fleet_db, days_back=10, end=next_day + 2 * DAY)


def test_a_window_far_longer_than_the_data_sizes_the_grid_by_the_data(fleet_db):
    """days_back of ten times the data gives the same features and allocates no more than the data's own window (the
    grid used to span the whole window: here ~10x the memory; for 10,000 devices asked a year of 180 days, 0.8 GB)."""

    def peak_of(days_back: int) -> tuple[int, object]:
        daily_training_features(fleet_db, days_back=days_back, end=FIXED_END)  # warm: refresh, caches, imports
        tracemalloc.start()
        try:
            features = daily_training_features(fleet_db, days_back=days_back, end=FIXED_END)
            return tracemalloc.get_traced_memory()[1], features
        finally:
            tracemalloc.stop()

    exact_peak, exact = peak_of(SMALL_FLEET["days"])
    long_peak, long = peak_of(10 * SMALL_FLEET["days"])
    assert_same(exact, long)
    assert long_peak < 1.5 * exact_peak, f"{long_peak / 2**20:.1f} MiB vs {exact_peak / 2**20:.1f} MiB"
