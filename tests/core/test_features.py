"""Features and labels: trailing windows per (device, day), labels only from recorded failures, one-row parity."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from core.constants import METRIC_NAMES, METRIC_RANGES
from core.errors import InvalidInput
from core.features import (
    FEATURE_COLUMNS,
    build_features,
    daily_features,
    load_telemetry,
    single_row_features,
    validate_reading,
)
from tests.core.conftest import FIXED_END, SMALL_FLEET

DAY0 = pd.Timestamp("2026-03-01", tz="UTC")
UTC = dt.UTC


def synthetic(days: int = 30, devices: tuple[str, ...] = ("dev-a",), per_day: int = 4) -> pd.DataFrame:
    """Every metric every 24/per_day hours; the value is day index + reading index / 10 (so windows are checkable)."""
    stamps = DAY0 + pd.to_timedelta(np.arange(days * per_day) * 24 / per_day, unit="h")
    values = np.arange(days * per_day) // per_day + (np.arange(days * per_day) % per_day) / 10
    rows = [
        pd.DataFrame({"device_id": d, "metric_name": m, "metric_value": values + i, "timestamp": stamps})
        for d in devices
        for i, m in enumerate(METRIC_NAMES)
    ]
    return pd.concat(rows, ignore_index=True)


def failures_at(*events: tuple[str, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame({"device_id": [d for d, _ in events], "failed_at": [t for _, t in events], "kind": "hardware"})


def labels_by_day(features) -> pd.Series:
    return pd.Series(features.y.to_numpy(), index=(features.day - DAY0).dt.days.to_numpy())


def test_a_failure_labels_exactly_the_seven_days_before_it():
    failure_day = 15
    features = build_features(synthetic(), failures_at(("dev-a", DAY0 + pd.Timedelta(days=failure_day, hours=13))))
    labels = labels_by_day(features)
    assert sorted(labels[labels == 1].index) == list(range(failure_day - 7, failure_day))
    assert failure_day not in labels.index  # the day it failed is dropped
    assert (labels.drop(range(failure_day - 7, failure_day)) == 0).all()


def test_rows_whose_horizon_passes_the_data_end_are_dropped():
    features = build_features(synthetic(days=30), failures_at())
    # Data ends on day 29 at 18:00: a day d is labelled only if days d+1..d+7 all lie before that.
    assert labels_by_day(features).index.max() == 29 - 8
    assert labels_by_day(build_features(synthetic(days=30), failures_at(), horizon_days=3)).index.max() == 29 - 4


def test_without_failures_every_label_is_zero_even_for_degraded_devices(small_frames):
    metrics, failures, _ = small_frames
    with_failures = build_features(metrics, failures)
    without = build_features(metrics, failures.iloc[0:0])
    assert with_failures.y.sum() > 50
    assert without.y.sum() == 0
    # Same metrics, no failure days to drop: at least as many rows.
    assert len(without) >= len(with_failures)


def test_failures_of_other_devices_or_outside_the_data_do_not_label():
    metrics = synthetic(devices=("dev-a", "dev-b"))
    events = failures_at(
        ("dev-b", DAY0 + pd.Timedelta(days=12, hours=3)),
        ("dev-z", DAY0 + pd.Timedelta(days=12)),
        ("dev-a", DAY0 - pd.Timedelta(days=3)),
    )
    features = build_features(metrics, events)
    labelled = features.device_id[features.y == 1]
    assert set(labelled) == {"dev-b"} and len(labelled) == 7


def test_window_statistics_match_a_plain_pandas_computation():
    metrics = synthetic(days=20)
    features = build_features(metrics, failures_at(), window_days=3)
    row = features.X.iloc[int(np.flatnonzero((features.day == DAY0 + pd.Timedelta(days=10)).to_numpy())[0])]
    temp = metrics[(metrics["metric_name"] == "temperature")]
    window = temp[
        (temp["timestamp"] >= DAY0 + pd.Timedelta(days=8)) & (temp["timestamp"] < DAY0 + pd.Timedelta(days=11))
    ]
    today = window[window["timestamp"] >= DAY0 + pd.Timedelta(days=10)]["metric_value"]
    values = window["metric_value"]
    assert row["temperature_day_mean"] == pytest.approx(today.mean())
    assert row["temperature_win_mean"] == pytest.approx(values.mean())
    assert row["temperature_win_std"] == pytest.approx(values.std(ddof=0))
    assert row["temperature_win_min"] == values.min() and row["temperature_win_max"] == values.max()
    assert row["temperature_day_delta"] == pytest.approx(today.mean() - values.mean())


def test_feature_set_shape_order_and_types(default_features):
    fs = default_features
    assert (
        list(fs.X.columns)
        == list(FEATURE_COLUMNS)
        == [
            f"{m}_{s}"
            for m in METRIC_NAMES
            for s in ("day_mean", "win_mean", "win_std", "win_min", "win_max", "day_delta")
        ]
    )
    assert len(fs.X) == len(fs.y) == len(fs.day) == len(fs.device_id)
    assert np.isfinite(fs.X.to_numpy()).all()
    assert set(fs.y.unique()) == {0, 1} and 0.05 < fs.y.mean() < 0.3
    assert fs.day.is_monotonic_increasing
    assert not fs.X.duplicated().any()


def test_a_day_missing_a_metric_is_not_a_row():
    metrics = synthetic(days=20)
    gap = (metrics["metric_name"] == "humidity") & (metrics["timestamp"].dt.floor("D") == DAY0 + pd.Timedelta(days=5))
    days = labels_by_day(build_features(metrics[~gap], failures_at())).index
    assert 5 not in days and 4 in days and 6 in days


def test_empty_metrics_give_an_empty_feature_set():
    empty = synthetic().iloc[0:0]
    fs = build_features(empty, failures_at())
    assert len(fs) == 0 and list(fs.X.columns) == list(FEATURE_COLUMNS)


def _split_last_reading(
    metrics: pd.DataFrame, device: str, cutoff: pd.Timestamp
) -> tuple[pd.DataFrame, dict, dt.datetime]:
    """A device's readings before its last one at or before `cutoff`, and that last reading."""
    own = metrics[(metrics["device_id"] == device) & (metrics["timestamp"] <= cutoff)]
    at = own["timestamp"].max()
    last = own[own["timestamp"] == at]
    return (
        own[own["timestamp"] < at],
        dict(zip(last["metric_name"].astype(str), last["metric_value"], strict=True)),
        at.to_pydatetime(),
    )


def test_single_row_features_equal_the_batch_features_for_the_same_readings(default_frames, default_features):
    metrics, _, _ = default_frames
    device = "sim-0007"
    # The batch row of a day with a known label: the last reading of that day is the "new" one.
    day = default_features.day[default_features.device_id == device].iloc[-1]
    history, reading, at = _split_last_reading(
        metrics, device, day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    )
    batch = default_features.X[(default_features.device_id == device) & (default_features.day == day)].to_numpy()
    np.testing.assert_allclose(single_row_features(history, reading, at), batch, rtol=1e-9, atol=1e-9)
    # And the very last row of the device's data (unlabelled, so only in daily_features).
    history, reading, at = _split_last_reading(metrics, device, metrics["timestamp"].max())
    last = daily_features(metrics[metrics["device_id"] == device]).iloc[[-1]][list(FEATURE_COLUMNS)].to_numpy()
    np.testing.assert_allclose(single_row_features(history, reading, at), last, rtol=1e-9, atol=1e-9)


def test_single_row_features_accept_history_as_the_api_reads_it(default_frames):
    metrics, _, _ = default_frames
    history, reading, at = _split_last_reading(metrics, "sim-0003", metrics["timestamp"].max())
    expected = single_row_features(history, reading, at)
    compact = pd.DataFrame(
        {
            "metric_name": pd.Categorical(history["metric_name"].astype(str)),
            "metric_value": history["metric_value"].to_numpy(),
            "timestamp": history["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
    )
    later = compact.iloc[:11].assign(timestamp=(at + dt.timedelta(hours=1)).isoformat(), metric_value=1e6)
    unknown = compact.iloc[:1].assign(metric_name="firmware_build")
    mixed = pd.concat([compact.astype({"metric_name": str}), later, unknown], ignore_index=True)
    np.testing.assert_allclose(single_row_features(mixed, reading, at), expected)
    assert single_row_features(compact, reading, at).shape == (1, len(FEATURE_COLUMNS))


def test_without_history_the_window_is_the_reading_alone():
    reading = {m: float(i + 1) for i, m in enumerate(METRIC_NAMES)}
    x = pd.Series(
        single_row_features(None, reading, dt.datetime(2026, 1, 1, tzinfo=UTC))[0], index=list(FEATURE_COLUMNS)
    )
    for name, value in reading.items():
        assert x[f"{name}_day_mean"] == x[f"{name}_win_mean"] == x[f"{name}_win_min"] == x[f"{name}_win_max"] == value
        assert x[f"{name}_win_std"] == 0 and x[f"{name}_day_delta"] == 0
    empty = pd.DataFrame({"metric_name": [], "metric_value": [], "timestamp": pd.to_datetime([], utc=True)})
    np.testing.assert_array_equal(
        single_row_features(empty, reading, dt.datetime(2026, 1, 1, tzinfo=UTC)), x.to_numpy()[None, :]
    )


def test_single_row_features_are_fast(default_frames):
    metrics, _, _ = default_frames
    history, reading, at = _split_last_reading(metrics, "sim-0011", metrics["timestamp"].max())
    history = history[history["timestamp"] >= at - dt.timedelta(days=7)]
    times = []
    for _ in range(200):
        started = time.perf_counter()
        single_row_features(history, reading, at)
        times.append(time.perf_counter() - started)
    # Typically well under 1 ms; the bound leaves room for a busy CI host.
    assert np.median(times) < 0.005, f"median {np.median(times) * 1000:.2f} ms with {len(history)} history rows"


GOOD = {m: (low + high) / 2 for m, (low, high) in METRIC_RANGES.items()}


def test_validate_reading_returns_floats_in_metric_order():
    clean = validate_reading({**GOOD, "restart_count": 3})
    assert list(clean) == list(METRIC_NAMES) and clean["restart_count"] == 3.0
    assert all(type(v) is float for v in clean.values())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"temperature": None}, "missing: temperature"),
        ({"colour": 3.0}, "unknown: colour"),
        ({"humidity": "wet"}, "humidity is not a number"),
        ({"uptime_hours": True}, "uptime_hours is not a number"),
        ({"error_rate": float("nan")}, "error_rate is nan"),
        ({"response_time": float("inf")}, "response_time is inf"),
        ({"battery_level": 101.0}, "battery_level=101 is outside [0, 100]"),
        ({"signal_strength": 5.0}, "signal_strength=5 is outside [-150, 0]"),
    ],
)
def test_validate_reading_names_the_bad_metric(change, named):
    reading = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(InvalidInput) as err:
        validate_reading(reading)
    assert named in err.value.message


def test_validate_reading_lists_every_problem_at_once():
    reading = {k: v for k, v in GOOD.items() if k != "humidity"} | {"error_rate": -1.0, "x": 1}
    with pytest.raises(InvalidInput) as err:
        validate_reading(reading)
    assert all(part in err.value.message for part in ("missing: humidity", "unknown: x", "error_rate=-1"))
    with pytest.raises(InvalidInput):
        validate_reading([1, 2, 3])  # type: ignore[arg-type]


def test_load_telemetry_reads_the_requested_range(sim_db, small_frames):
    metrics, failures, _ = small_frames
    end = FIXED_END - dt.timedelta(days=10)
    telemetry = load_telemetry(sim_db, days_back=20, end=end)
    start = end - dt.timedelta(days=20)
    assert telemetry.start == start and telemetry.end == end and telemetry.days_back == 20
    loaded = telemetry.metrics_long
    expected = metrics[(metrics["timestamp"] >= start) & (metrics["timestamp"] <= end)]
    assert len(loaded) == len(expected) > 0
    assert loaded["timestamp"].min() >= start and loaded["timestamp"].max() <= end
    assert str(loaded["timestamp"].dt.tz) == "UTC"
    assert len(telemetry.failures) == int((failures["failed_at"] <= end).sum())
    assert (telemetry.failures["failed_at"] <= end).all()


def test_load_telemetry_on_an_empty_database(empty_db):
    telemetry = load_telemetry(empty_db, days_back=30)
    assert len(telemetry.metrics_long) == 0 and len(telemetry.failures) == 0
    assert len(build_features(telemetry.metrics_long, telemetry.failures)) == 0


def test_database_and_in_memory_features_agree(sim_db, small_frames):
    metrics, failures, _ = small_frames
    telemetry = load_telemetry(sim_db, days_back=SMALL_FLEET["days"], end=FIXED_END)
    from_db = build_features(telemetry.metrics_long, telemetry.failures)
    in_memory = build_features(metrics, failures)
    np.testing.assert_allclose(from_db.X.to_numpy(), in_memory.X.to_numpy())
    np.testing.assert_array_equal(from_db.y.to_numpy(), in_memory.y.to_numpy())
