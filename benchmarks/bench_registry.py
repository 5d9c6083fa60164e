#!/usr/bin/env python3
"""Registry writes and reads, each with its target and a baseline timed in the same process.

- promote (backup + write + fsync + history row), target < 100 ms; baseline: a bare `joblib.dump` of both
  models plus `json.dump` of the metadata (no backup, no fsync, no lock, no history row);
- load the current set (checksums, provenance, unpickle), target <= 15 ms; baseline: `joblib.load` of both
  files (the old loader, no checks);
- list 1,000 versions, target <= 5 ms, and backups with 10,000 backup files, target <= 10 ms, from the indexes;
  baseline: a plain scan (parse every backup metadata file; read every promote event);
- the same listings right after a change made by another process, and in a new process (index from its file).
Medians; the load average is printed, since the machine is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import joblib

from core import backups as B
from core import constants as C
from core.backup_index import BackupIndex
from core.db import Database
from core.history import History
from core.registry import Registry
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate


def ms(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.2f} ms  "
        f"(min {min(samples) * 1000:.2f}, max {max(samples) * 1000:.2f}, n={len(samples)})"
    )


def main() -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared)")
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

        load_t = timed(registry.load_models, args.repeat)
        blobs = []  # the same models as joblib.dump wrote them before (the old format and loader)
        for model in (cand.failure_model, cand.anomaly_model):
            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            blobs.append(buffer.getvalue())
        plain_t = timed(lambda: [joblib.load(io.BytesIO(b)) for b in blobs], args.repeat)
        base = "joblib.dump'd files, joblib.load, no checks"
        report("load current set (sha256 + provenance + unpickle)", load_t, 15.0, base, plain_t)
        listings(tmp_path, args.repeat)


def timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def report(label: str, samples: list[float], target_ms: float, base_label: str, base: list[float]) -> None:
    median, base_median = statistics.median(samples) * 1000, statistics.median(base) * 1000
    verdict = "ok" if median <= target_ms else "OVER TARGET"
    print(f"{label}: {ms(samples)}   target <= {target_ms:g} ms  {verdict}")
    print(f"  baseline {base_label}: {ms(base)}   ratio {base_median / median:.1f}x faster")


def listings(tmp_path: Path, repeat: int) -> None:
    """1,000 versions in history and 10,000 backup files (3,334 sets), as bench_dashboard seeds them."""
    from benchmarks.bench_dashboard import change, seed_backup_files, seed_history
    from tests.factories import metadata_fields, promote, tiny_models

    url = f"sqlite:///{tmp_path / 'listing.db'}"
    db = Database(url)
    models = tmp_path / "listing"
    models.mkdir()
    seed_history(db, 1000)
    registry = Registry(models, db)
    promote(registry, seed=1, accuracy=0.81)
    promote(registry, seed=2, accuracy=0.83)
    seed_backup_files(models, 10_000, 1000)
    files = sum(1 for n in os.listdir(models) if C.BACKUP_MARKER in n)
    t0 = time.perf_counter()
    registry.index.refresh(save=True)  # what the first write or reader does once: read every set, save the index
    first = time.perf_counter() - t0
    time.sleep(0.05)  # past the racy window of the files just written
    registry.versions()

    def plain_backups() -> None:
        B.list_sets(models)  # the old listing: every file stat'ed, every metadata file parsed
        B._meta_cache.clear()

    history = History(db)

    def plain_versions() -> None:
        events = history.events(kinds=["promote"], ascending=True, limit=1_000_000)
        plain_backups()
        assert len(events) >= 1000

    print(f"\nlistings: 1,000 versions in history, {files} backup files; first index build {first * 1000:.0f} ms")
    report("list backups (index)", timed(registry.backups, repeat), 10.0, "plain scan", timed(plain_backups, 3))
    report(
        "list versions (indexes)",
        timed(registry.versions, repeat),
        5.0,
        "plain scan + every promote event",
        timed(plain_versions, 3),
    )
    after: dict[str, list[float]] = {"backups": [], "versions": []}
    for n, kind in enumerate(("promote", "restore", "cleanup") * 3):
        change(kind, models, url, n)
        after["versions"].append(timed(registry.versions, 1)[0])  # reads the backups too
        after["backups"].append(timed(registry.backups, 1)[0])
    print(f"first list versions after a change by another process: {ms(after['versions'])}")
    writes = []
    for n in range(5):  # a write keeps the index in step and saves it under the lock
        failure, anomaly = tiny_models(200 + n)
        t0 = time.perf_counter()
        registry.promote(failure, anomaly, metadata_fields(), actor="bench", trigger="bench", respect_hold=False)
        writes.append(time.perf_counter() - t0)
    print(f"promote (tiny models) into 10,000 backup files, index saved: {ms(writes)}")
    fresh = []
    for _ in range(3):
        index = BackupIndex(models)  # a new process: the index from its file, every file's stat checked
        fresh.append(timed(index.sets, 1)[0])
        reread = index.reread
    print(f"list backups in a new process (index file + stat of every file): {ms(fresh)}; sets read again: {reread}")
    db.dispose()


if __name__ == "__main__":
    main()
