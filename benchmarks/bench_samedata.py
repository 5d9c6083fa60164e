#!/usr/bin/env python3
"""Same-data compare: two versions scored on the default window (14 days), cold and from the cache.

Cold: load the window's telemetry, build features and labels, unpickle both checked models, score (a fresh cache
each time). Cached: the same request again (resolve both sets, one telemetry-stamp query, a dictionary look-up);
the restore dialog's look-up is timed too. Baseline, in the same process: Compare's stored-figure comparison of the
same two versions (metadata only), what the page does on every run anyway. Fleet: the default simulated fleet
(150 devices, 120 days, 6 h) in SQLite, two versions trained on different windows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from core.config import Settings
from core.modelops import ModelOps
from core.samedata import SameDataCache
from core.simulator import simulate_fleet
from core.training import load_training_data, train_candidate

END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def ms(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:8.2f} ms  "
        f"(min {min(samples) * 1000:.2f}, max {max(samples) * 1000:.2f}, n={len(samples)})"
    )


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=7)
    parser.add_argument("--cached", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings.from_env({}, database_url=f"sqlite:///{root / 'bench.db'}", models_dir=root / "models")
        ops = ModelOps(settings)
        simulate_fleet(ops.db, devices=150, days=120, end=END)
        versions = []
        for days_back, end in ((60, END - dt.timedelta(days=20)), (90, END)):
            features, source = load_training_data(ops.db, days_back=days_back, end=end)
            cand = train_candidate(features, days_back=days_back, data_source=source)
            fields = cand.metadata_fields()
            versions.append(
                ops.registry.promote(cand.failure_model, cand.anomaly_model, fields, actor="bench", trigger="bench")
            )
        new, old = versions[1].version, versions[0].version

        def cold() -> None:
            ops.__dict__["_same_data_cache"] = SameDataCache()  # forget every result: the full computation
            ops.compare_same_data(new, old)

        cold_t = timed(cold, args.cold)
        first = ops.compare_same_data(new, old)
        cached_t = timed(lambda: ops.compare_same_data(new, old), args.cached)
        assert ops.compare_same_data(new, old).cached
        dialog_t = timed(lambda: ops.same_data_cached(old, new), args.cached)
        stored_t = timed(lambda: ops.compare(new, old), args.cached)
        ops.dispose()

    f1_new, f1_old = first.a.metrics["f1_score"], first.b.metrics["f1_score"]
    print(
        f"window {first.window.describe()}: {first.sample_count:,} samples, {first.positives:,} positive, "
        f"{first.devices} devices; f1 v{new} {f1_new:.3f} vs v{old} {f1_old:.3f}"
    )
    print(f"cold (load + features + unpickle + score): {ms(cold_t)}")
    print(f"cached (same request again):               {ms(cached_t)}")
    print(f"restore dialog look-up (other order):      {ms(dialog_t)}")
    print(f"baseline: stored-figure compare:           {ms(stored_t)}")
    c, w, s = (statistics.median(x) for x in (cold_t, cached_t, stored_t))
    print(f"ratio cold / cached (medians): {c / w:.0f}x;  cached / stored-figure compare: {w / s:.1f}x")


if __name__ == "__main__":
    main()
