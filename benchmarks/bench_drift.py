#!/usr/bin/env python3
"""Drift computation time (PSI + KS for 11 metrics, 66 features and the score, PSI per day) on simulated fleets.

Fleets: 150 devices x 120 days (the default) and 1,500 devices x 120 days, 6-hourly readings, the firmware update
10 days before the end; a model trained and promoted on each. Baseline, in the same process: the plain load of the
same telemetry from the database (the two `load_telemetry` calls drift makes, nothing computed), so the ratio is
what drift adds on top of reading its data. Also: the application layer's cached answer for the same live set,
window and telemetry, and the PSI measured per metric.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from core.config import Settings
from core.db import Database
from core.drift import compute_drift, windows
from core.features import load_telemetry
from core.identity import local_principal
from core.modelops import ModelOps
from core.simulator import simulate_fleet
from core.training_run import TrainingRequest

SHIFTED = ("response_time", "error_rate", "temperature", "data_transfer_rate", "connection_drops")


def secs(samples: list[float]) -> str:
    spread = f"min {min(samples):.2f}, max {max(samples):.2f}, n={len(samples)}"
    return f"median {statistics.median(samples):7.2f} s  ({spread})"


def plain_load(db: Database, metadata: dict, now: dt.datetime) -> int:
    """What drift reads, read and nothing else: the reference and the recent telemetry."""
    w = windows(metadata, window_days=7, now=now)
    rows = 0
    for start, end in (w.reference_load, w.recent_load):
        days = max(1, round((end - start) / dt.timedelta(days=1) + 0.4999))
        rows += len(load_telemetry(db, days_back=days, end=end).metrics_long)
    return rows


def bench(root: Path, devices: int, days: int, repeat: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    settings = Settings.from_env({}, database_url=f"sqlite:///{root / 'bench.db'}", models_dir=root / "models")
    db = Database(settings.database_url)
    t0 = time.perf_counter()
    summary = simulate_fleet(
        db, devices=devices, days=days, end=midnight, drift_from=(midnight - dt.timedelta(days=10)).date()
    )
    seeded = time.perf_counter() - t0
    ops = ModelOps(settings)
    try:
        t0 = time.perf_counter()
        outcome = ops.train(TrainingRequest(days + 30, force=True), actor=local_principal("bench"), trigger="bench")
        trained = time.perf_counter() - t0
        if outcome.status != "promoted":
            raise SystemExit(f"the benchmark's model was not promoted: {outcome.message}")
        loaded = ops.registry.load_models()
        print(
            f"\n{devices} devices x {days} days: {summary.metric_rows:,} readings "
            f"(seeded in {seeded:.1f} s, trained in {trained:.1f} s)"
        )
        drift_t, load_t, rows = [], [], 0
        report = None
        for _ in range(repeat):  # interleaved, so both see the same machine load
            t0 = time.perf_counter()
            rows = plain_load(db, loaded.metadata, now)
            load_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            report = compute_drift(db, loaded.metadata, loaded.failure_model, now=now)
            drift_t.append(time.perf_counter() - t0)
        assert report is not None
        ops.drift()  # fills the application layer's cache
        cached_t = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            ops.drift()
            cached_t.append(time.perf_counter() - t0)
        print(f"  drift (load + PSI/KS of 11 metrics, 66 features, score; PSI per day): {secs(drift_t)}")
        print(f"  baseline: plain load of the same telemetry ({rows:,} rows):          {secs(load_t)}")
        print(f"  ratio drift / plain load (medians): {statistics.median(drift_t) / statistics.median(load_t):.2f}x")
        print(f"  cached answer (same live set, window, telemetry): median {statistics.median(cached_t) * 1000:.1f} ms")
        psi = ", ".join(f"{s.name} {s.psi:.3f} ({s.band})" for s in report.metrics)
        print(f"  PSI per metric, most drifted first: {psi}")
        flagged = {s.name for s in report.metrics if s.band == "significant"}
        print(f"  significant = the five shifted metrics: {flagged == set(SHIFTED)}")
        if report.score is not None:
            print(f"  prediction score PSI {report.score.psi:.3f} ({report.score.band})")
    finally:
        ops.dispose()
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--large-devices", type=int, default=1500)
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    for devices in (150, args.large_devices):
        with tempfile.TemporaryDirectory() as tmp:
            bench(Path(tmp), devices, args.days, args.repeat)


if __name__ == "__main__":
    main()
