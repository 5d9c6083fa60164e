"""Drift: PSI and KS between the live version's training window and the last days, on simulated fleets with drift."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import joblib
import numpy as np
import pytest

from core import constants as C
from core import drift as D
from core.config import Settings
from core.db import Database, HealthMetric
from core.errors import DataError, InvalidInput, NotFound
from core.modelops import ModelOps
from core.simulator import simulate_fleet
from core.storage import sha256_bytes
from tests.drift_world import DRIFT_DAYS_AGO, FLEET, SHIFTED, UNSHIFTED, DriftWorld, build_drift_world, midnight


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DriftWorld:
    return build_drift_world(tmp_path_factory.mktemp("drift"))


@pytest.fixture
def ops(world: DriftWorld, tmp_path: Path):
    ops = ModelOps(world.copy(tmp_path / "copy"))
    yield ops
    ops.dispose()


def _add_reading(db: Database, at: dt.datetime) -> None:
    """One more reading of a simulated device."""
    with db.session() as s:
        s.add(
            HealthMetric(device_id="sim-0001", metric_name="humidity", metric_value=40.0, metric_unit="%", timestamp=at)
        )


def _by_name(scores):
    return {s.name: s for s in scores}


# ------------------------------------------------------------------ the simulated firmware change
def test_the_shifted_metrics_are_significant_and_the_others_stable(ops, caplog):
    with caplog.at_level(logging.INFO, logger="core.drift"):
        report = ops.drift()
    metrics = _by_name(report.metrics)
    assert set(metrics) == set(C.METRIC_NAMES)
    for name in SHIFTED:
        s = metrics[name]
        assert s.band == "significant" and s.psi > C.PSI_SIGNIFICANT, f"{name}: PSI {s.psi}"
        assert s.ks_drift, f"{name}: KS statistic {s.ks_statistic}, p {s.ks_pvalue}"
    for name in UNSHIFTED:
        s = metrics[name]
        assert s.band == "stable" and s.psi < C.PSI_MODERATE, f"{name}: PSI {s.psi}"
        assert not s.ks_drift, f"{name}: KS statistic {s.ks_statistic}, p {s.ks_pvalue}"
    # Ranked: the five shifted metrics are the top five.
    assert {s.name for s in report.metrics[:5]} == SHIFTED
    assert [s.psi for s in report.metrics] == sorted((s.psi for s in report.metrics), reverse=True)
    # The features of the shifted metrics drift, those of the unshifted ones mostly do not.
    features = _by_name(report.features)
    assert set(features) == set(D.FEATURE_COLUMNS)
    for name in SHIFTED:
        assert features[f"{name}_day_mean"].band == "significant", features[f"{name}_day_mean"]
    for name in UNSHIFTED:
        assert features[f"{name}_day_mean"].band == "stable", features[f"{name}_day_mean"]
    assert sum(line.startswith("drift: version 1.0.0") for line in caplog.messages) == 1


def test_the_reference_is_the_live_versions_training_window(ops):
    live = ops.current()
    date_range = live.metadata["training_data_stats"]["date_range"]
    report = ops.drift()
    assert report.version == live.version
    assert report.reference_start.isoformat().replace("+00:00", "Z") == date_range["start"]
    assert report.reference_end - dt.timedelta(days=1) == D._parse_utc(date_range["end"])
    assert report.window_days == C.DEFAULT_DRIFT_WINDOW_DAYS
    assert report.current_end - report.current_start == dt.timedelta(days=7)
    # The training window ends before the last 7 days begin: nothing diluted.
    assert report.reference_end <= report.current_start and report.notes == ()
    # Feature rows: exactly the samples the model was trained on (train + holdout), and one per device-day since.
    stats = live.metadata["training_data_stats"]
    feature = report.features[0]
    assert feature.reference_count == stats["sample_count"]
    assert 6 * FLEET["devices"] <= feature.current_count <= 8 * FLEET["devices"]


def test_prediction_scores_of_the_live_model_are_compared(ops):
    report = ops.drift()
    assert report.score is not None and report.score.kind == "score"
    # The reference scores are the live model's probabilities on the very samples training used (loaded here the
    # way training loads them), the recent ones on the last 7 days' device-days.
    from core.training import load_training_data

    training_rows, _ = load_training_data(ops.db, days_back=90)
    model = ops.registry.load_models().failure_model
    probabilities = model.predict_proba(training_rows.X.to_numpy(dtype=float))[:, list(model.classes_).index(1)]
    assert report.score.reference_count == len(training_rows)
    assert report.score.reference_median == pytest.approx(float(np.median(probabilities)), rel=1e-9)
    assert report.score.current_count == report.features[0].current_count
    assert C.DRIFT_SCORE_NAME in report.histograms


def test_drift_over_time_is_a_psi_per_day_that_rises_after_the_update(ops, world):
    report = ops.drift()
    days = sorted({p.day for p in report.over_time})
    # One point a day from HISTORY_DAYS days ago to the fleet's last full day (its readings end at midnight).
    first = midnight() - dt.timedelta(days=D.HISTORY_DAYS - 1)
    assert days[0] == first and days == [first + dt.timedelta(days=i) for i in range(len(days))]
    assert days[-1] >= world.midnight - dt.timedelta(days=1)
    temperature = {p.day: p.psi for p in report.over_time if p.metric == "temperature"}
    before = [v for d, v in temperature.items() if d < world.midnight - dt.timedelta(days=DRIFT_DAYS_AGO + 1)]
    after = [v for d, v in temperature.items() if d >= world.midnight - dt.timedelta(days=DRIFT_DAYS_AGO - 3)]
    assert max(before) < C.PSI_SIGNIFICANT < min(after), (before, after)


def test_histograms_hold_both_windows_on_shared_bins(ops):
    report = ops.drift()
    for name in (*C.METRIC_NAMES, "temperature_win_mean"):
        h = report.histograms[name]
        assert len(h.edges) == D.HIST_BINS + 1 and len(h.reference) == len(h.current) == D.HIST_BINS
        assert sum(h.reference) == pytest.approx(1.0, abs=1e-4) and sum(h.current) == pytest.approx(1.0, abs=1e-4)
    h = report.histograms["temperature"]
    centers = (np.array(h.edges[:-1]) + np.array(h.edges[1:])) / 2
    assert np.dot(centers, h.current) > np.dot(centers, h.reference) + 2.0  # the firmware runs 4 degrees warmer


def test_an_undrifted_fleet_is_stable_everywhere_it_was_shifted(world, tmp_path):
    """Control: the same fleet without the firmware change, against the same model, shows none of that drift."""
    db = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        simulate_fleet(db, **FLEET, end=world.midnight)
        ops = ModelOps(world.settings)
        try:
            loaded = ops.registry.load_models()
        finally:
            ops.dispose()
        report = D.compute_drift(db, loaded.metadata, loaded.failure_model, now=world.midnight)
    finally:
        db.dispose()
    metrics = _by_name(report.metrics)
    for name in SHIFTED | UNSHIFTED:
        assert metrics[name].band == "stable", f"{name}: PSI {metrics[name].psi}"
    assert report.score is not None and report.score.band != "significant", report.score


# ------------------------------------------------------------------ windows, errors, cache
def test_a_wider_window_is_a_parameter_and_bad_ones_are_refused(ops):
    assert ops.drift(14).window_days == 14
    assert ops.drift("3").current_end - ops.drift("3").current_start == dt.timedelta(days=3)
    for bad in (0, -1, 91, "seven", 2.5, True, None.__class__):
        with pytest.raises(InvalidInput, match="whole number of days between 1 and 90"):
            ops.drift(bad)
    with pytest.raises(InvalidInput, match="DRIFT_WINDOW_DAYS must be between 1 and 90"):
        Settings.from_env({"DRIFT_WINDOW_DAYS": "0"})
    assert Settings.from_env({"DRIFT_WINDOW_DAYS": "5"}).drift_window_days == 5


def test_no_telemetry_in_the_recent_window_is_a_clear_message(ops, world):
    live = ops.registry.load_models()
    later = world.midnight + dt.timedelta(days=30)
    with pytest.raises(DataError, match="no telemetry in the last 7 days"):
        D.compute_drift(ops.db, live.metadata, live.failure_model, now=later)


def test_a_version_without_a_training_window_says_retrain(ops):
    live = ops.registry.load_models()
    for broken in ({}, {"date_range": None}, {"date_range": {"start": "yesterday", "end": None}}):
        metadata = {**live.metadata, "training_data_stats": broken}
        with pytest.raises(DataError, match=r"records no training window .*: retrain to get one"):
            D.compute_drift(ops.db, metadata, live.failure_model)


def test_no_model_yet_is_not_found(tmp_path):
    ops = ModelOps(Settings.from_env({}, database_url=f"sqlite:///{tmp_path / 'e.db'}", models_dir=tmp_path / "m"))
    try:
        with pytest.raises(NotFound, match="no model has been trained yet"):
            ops.drift()
    finally:
        ops.dispose()


def test_the_report_is_cached_until_the_telemetry_or_the_window_changes(ops, world):
    first = ops.drift()
    assert ops.drift() is first
    assert ops.drift(14) is not first
    _add_reading(ops.db, world.midnight)
    assert ops.drift() is not first


class Planted:
    """Unpickling this creates a file: proof that a planted pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_a_planted_model_file_never_runs_and_the_metrics_still_report(ops, tmp_path):
    marker = tmp_path / "planted-code-ran"
    path = ops.settings.models_dir / C.FAILURE_MODEL_FILE
    joblib.dump(Planted(str(marker)), path)
    meta_path = ops.settings.models_dir / C.METADATA_FILE
    meta = json.loads(meta_path.read_text())
    data = path.read_bytes()
    meta["artifacts"][C.FAILURE_MODEL_FILE] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    meta_path.write_text(json.dumps(meta))
    report = ops.drift()
    assert not marker.exists(), "drift unpickled a planted model file"
    assert report.score is None and any("could not be loaded" in n for n in report.notes)
    assert _by_name(report.metrics)["temperature"].band == "significant"


# ------------------------------------------------------------------ the statistics
def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 50_000)
    assert D.psi(ref, rng.normal(0, 1, 50_000)) < 0.01
    shifts = [D.psi(ref, rng.normal(m, 1, 50_000)) for m in (0.1, 0.3, 0.6, 1.0)]
    assert shifts == sorted(shifts) and shifts[0] < C.PSI_MODERATE and shifts[-1] > C.PSI_SIGNIFICANT
    assert [D.band(v) for v in (0.05, 0.1, 0.25, 0.2501)] == ["stable", "moderate", "moderate", "significant"]


def test_an_empty_bin_gives_a_finite_psi():
    ref = np.arange(1000, dtype=float)
    value = D.psi(ref, np.full(100, 5000.0))  # every current value lands in the top bin
    assert np.isfinite(value) and value > C.PSI_SIGNIFICANT


def test_a_count_that_is_mostly_zero_is_binned_by_its_values():
    rng = np.random.default_rng(1)
    ref = rng.poisson(0.2, 20_000).astype(float)
    edges = D.bin_edges(ref)
    assert list(edges) == [0.0, 1.0]  # quantile edges collapse to the values the count takes
    assert D.psi(ref, rng.poisson(0.2, 5_000)) < C.PSI_MODERATE
    assert D.psi(ref, rng.poisson(0.02, 5_000)) > C.PSI_SIGNIFICANT


def test_ks_needs_an_effect_size_so_huge_samples_do_not_flag_trivial_shifts():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, 400_000)
    trivial = D.score("x", "metric", ref, rng.normal(0.03, 1, 400_000))
    assert trivial.ks_pvalue < 1e-10, "a shift this size is 'significant' at this sample size"
    assert not trivial.ks_drift and trivial.band == "stable"
    real = D.score("x", "metric", ref, rng.normal(0.5, 1, 2_000))
    assert real.ks_drift and real.ks_statistic >= C.KS_MIN_STATISTIC


# ------------------------------------------------------------------ PostgreSQL
def test_drift_on_postgresql(postgres_url, world):
    from tests.conftest import fresh_postgres

    db = fresh_postgres(postgres_url)
    try:
        small = dict(devices=20, days=40, seed=5)
        simulate_fleet(db, **small, end=world.midnight, drift_from=(world.midnight - dt.timedelta(days=8)).date())
        first = D.data_stamp(db)
        start, end = world.midnight - dt.timedelta(days=40), world.midnight - dt.timedelta(days=12)
        metadata = {
            "version": "1.0.0",
            "training_data_stats": {"date_range": {"start": start.isoformat(), "end": end.isoformat()}},
        }
        report = D.compute_drift(db, metadata, None, now=world.midnight)
        metrics = _by_name(report.metrics)
        assert metrics["temperature"].band == "significant" and metrics["humidity"].band == "stable"
        assert report.score is None and len(report.features) == len(D.FEATURE_COLUMNS)
        _add_reading(db, world.midnight)
        assert D.data_stamp(db) != first
    finally:
        db.dispose()
