#!/usr/bin/env python3
"""Promote latency (backup + write + fsync + history row) for the default model; target median < 100 ms.

Baseline, in the same process: a bare `joblib.dump` of both models plus `json.dump` of the metadata
(no backup, no fsync, no lock, no history row), the old service's way of writing.
Also times listing backups with 10,000 backup files on disk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import joblib

from core.db import Database
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate


def ms(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.2f} ms  "
        f"(min {min(samples) * 1000:.2f}, max {max(samples) * 1000:.2f}, n={len(samples)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        db = Database(f"sqlite:///{tmp_path / 'bench.db'}")
        simulate_fleet(db, devices=60, days=90)
        features, source = load_training_data(
            db, days_back=90, min_samples=100, allow_sample_data=False, horizon_days=7
        )
        cand = train_candidate(features)
        cand.data_source = source
        fields = cand.metadata_fields()
        registry = Registry(tmp_path / "models", db)
        (tmp_path / "models").mkdir()
        registry.promote(cand.failure_model, cand.anomaly_model, fields, actor="bench", trigger="bench")

        promote_t = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            registry.promote(cand.failure_model, cand.anomaly_model, fields, actor="bench", trigger="bench")
            promote_t.append(time.perf_counter() - t0)
        size = sum(
            (tmp_path / "models" / n).stat().st_size
            for n in ("failure_prediction_model.pkl", "anomaly_detection_model.pkl")
        )

        base_dir = tmp_path / "baseline"
        base_dir.mkdir()
        base_t = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            joblib.dump(cand.failure_model, base_dir / "failure_prediction_model.pkl")
            joblib.dump(cand.anomaly_model, base_dir / "anomaly_detection_model.pkl")
            (base_dir / "model_metadata.json").write_text(json.dumps(fields, default=str))
            base_t.append(time.perf_counter() - t0)

        print(f"classifier: {fields['training_parameters'].get('classifier')}, model files: {size / 1024:.0f} KiB")
        print(f"promote (backup + write + fsync + history row): {ms(promote_t)}   target < 100 ms")
        print(f"baseline bare joblib.dump, no backup/fsync:      {ms(base_t)}")
        print(f"ratio promote / baseline (medians): {statistics.median(promote_t) / statistics.median(base_t):.1f}x")

        # Listing with 10,000 backup files: 3,333 sets of 3 files (small stand-in files; listing reads metadata only).
        many = tmp_path / "many"
        many.mkdir()
        meta = json.dumps({"version": "1.0.0", "model_performance": {"accuracy": 0.8}, "artifacts": {}})
        for i in range(3334):
            ts = f"2025{1 + (i // 2678) % 12:02d}{1 + (i // 96) % 28:02d}_{(i // 4) % 24:02d}{(i % 60):02d}{i % 60:02d}"
            for name in ("failure_prediction_model.pkl", "anomaly_detection_model.pkl"):
                (many / f"{name}.backup_{ts}").write_bytes(b"x")
            (many / f"model_metadata.json.backup_{ts}").write_text(meta)
        files = len(list(many.iterdir()))
        reg_many = Registry(many, None)
        list_t = []
        for _ in range(5):
            t0 = time.perf_counter()
            sets = reg_many.backups()
            list_t.append(time.perf_counter() - t0)
        print(f"list backups, {files} backup files ({len(sets)} sets): {ms(list_t)}")


if __name__ == "__main__":
    main()
